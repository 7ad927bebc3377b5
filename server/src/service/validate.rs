//! Input rules for names, passwords, bodies and ids. Each failure is a message for BAD_REQUEST
//! (or TOO_LARGE for bodies).

use unicode_normalization::UnicodeNormalization;

pub const NAME_MAX_CHARS: usize = 32;
pub const GROUP_NAME_MAX_CHARS: usize = 64;
pub const PASSWORD_MIN_BYTES: usize = 8;
pub const PASSWORD_MAX_BYTES: usize = 256;
pub const NOTE_MAX_BYTES: usize = 512;
pub const CLIENT_MSG_ID_MAX_BYTES: usize = 64;
pub const DEVICE_NAME_MAX_BYTES: usize = 64;
pub const QUERY_MAX_CHARS: usize = 64;
pub const EMOJI_MAX_BYTES: usize = 64;
pub const REACTION_KINDS_MAX: usize = 20;

/// A validated user name: its display form (NFC) and its uniqueness key (NFC, lowercase).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    pub display: String,
    pub key: String,
}

/// The comparison key of a name: NFC, lowercased, NFC again (lowercasing can denormalize).
pub fn name_key(s: &str) -> String {
    crate::store::ops::fold(s)
}

fn name_char_ok(c: char) -> bool {
    use icu_properties::props::{DefaultIgnorableCodePoint, GeneralCategory};
    use icu_properties::{CodePointMapData, CodePointSetData};
    // Invisible: format characters, variation selectors, Hangul fillers (which count as
    // letters), the combining grapheme joiner. A name must look like what it is.
    if CodePointSetData::new::<DefaultIgnorableCodePoint>().contains(c) {
        return false;
    }
    // Alphabetic covers letters of every script (CJK included); nonspacing and spacing marks
    // (viramas, vowel signs, accents) complete them. Enclosing marks draw over their base.
    let mark = matches!(
        CodePointMapData::<GeneralCategory>::new().get(c),
        GeneralCategory::NonspacingMark | GeneralCategory::SpacingMark
    );
    c.is_alphabetic() || c.is_numeric() || mark || matches!(c, '_' | '-' | '.')
}

/// Checks a user name: 1-32 characters after NFC; letters, marks, digits and `_-.`, nothing
/// invisible.
pub fn user_name(raw: &str) -> Result<Name, &'static str> {
    let display: String = raw.nfc().collect();
    let chars = display.chars().count();
    if chars == 0 {
        return Err("the name is empty");
    }
    if chars > NAME_MAX_CHARS {
        return Err("the name is longer than 32 characters");
    }
    let starts_with_mark = display
        .chars()
        .next()
        .is_some_and(unicode_normalization::char::is_combining_mark);
    if starts_with_mark || !display.chars().all(name_char_ok) {
        return Err("names hold letters, digits, '_', '-' and '.' only");
    }
    Ok(Name {
        key: name_key(&display),
        display,
    })
}

pub fn password(p: &str) -> Result<(), &'static str> {
    match p.len() {
        n if n < PASSWORD_MIN_BYTES => Err("the password is shorter than 8 bytes"),
        n if n > PASSWORD_MAX_BYTES => Err("the password is longer than 256 bytes"),
        _ => Ok(()),
    }
}

fn has_control(s: &str, allow_newlines: bool) -> bool {
    s.chars()
        .any(|c| c.is_control() && !(allow_newlines && matches!(c, '\n' | '\t')))
}

/// A group name: 1-64 characters, no control characters, trimmed.
pub fn group_name(raw: &str) -> Result<String, &'static str> {
    let name: String = raw.trim().nfc().collect();
    let chars = name.chars().count();
    if chars == 0 {
        return Err("the group name is empty");
    }
    if chars > GROUP_NAME_MAX_CHARS {
        return Err("the group name is longer than 64 characters");
    }
    if has_control(&name, false) {
        return Err("the group name holds control characters");
    }
    Ok(name)
}

/// A note or description: at most 512 bytes, newlines allowed, no other control characters.
pub fn note(raw: &str) -> Result<String, &'static str> {
    if raw.len() > NOTE_MAX_BYTES {
        return Err("the text is longer than 512 bytes");
    }
    if has_control(raw, true) {
        return Err("the text holds control characters");
    }
    Ok(raw.nfc().collect())
}

/// Why a message body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    Empty,
    TooLarge,
    Control,
}

/// A message body: 1..=max bytes, not only whitespace, no control characters but newline and
/// tab. (Protobuf already guarantees valid UTF-8 for string fields.)
pub fn body(raw: &str, max: usize) -> Result<(), BodyError> {
    if raw.trim().is_empty() {
        return Err(BodyError::Empty);
    }
    if raw.len() > max {
        return Err(BodyError::TooLarge);
    }
    if has_control(raw, true) {
        return Err(BodyError::Control);
    }
    Ok(())
}

/// A reaction: one grapheme cluster (an emoji with its modifiers, a flag, a keycap, or any
/// other single visible character) in its canonical form (`confab_wire::emoji::canonical`:
/// NFC, emoji presentation explicit), at most 64 bytes, with no whitespace, controls or
/// invisible-only content. Returns that form, which is what is stored and compared.
pub fn emoji(raw: &str) -> Result<String, &'static str> {
    use unicode_segmentation::UnicodeSegmentation;
    let e = confab_wire::emoji::canonical(raw);
    if e.is_empty() || e.len() > EMOJI_MAX_BYTES {
        return Err("a reaction is 1-64 bytes");
    }
    if e.graphemes(true).count() != 1 {
        return Err("a reaction is a single emoji (one grapheme cluster)");
    }
    if e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("a reaction holds no whitespace or control characters");
    }
    // A lone joiner or variation selector is one cluster too, but shows nothing.
    if !e.chars().any(visible) {
        return Err("a reaction must show something");
    }
    Ok(e)
}

fn visible(c: char) -> bool {
    use icu_properties::CodePointSetData;
    use icu_properties::props::DefaultIgnorableCodePoint;
    !CodePointSetData::new::<DefaultIgnorableCodePoint>().contains(c)
}

/// A client_msg_id: 1-64 bytes of printable ASCII.
pub fn client_msg_id(raw: &str) -> Result<(), &'static str> {
    if raw.is_empty() || raw.len() > CLIENT_MSG_ID_MAX_BYTES {
        return Err("client_msg_id must be 1-64 bytes");
    }
    if !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("client_msg_id must be printable ASCII");
    }
    Ok(())
}

/// A device label: at most 64 bytes, control characters removed.
pub fn device_name(raw: &str) -> String {
    let mut s: String = raw.chars().filter(|c| !c.is_control()).collect();
    while s.len() > DEVICE_NAME_MAX_BYTES {
        s.pop();
    }
    s
}

/// A search query: trimmed, at most 64 characters, matched against name keys.
pub fn query(raw: &str) -> Result<String, &'static str> {
    let q = raw.trim();
    if q.is_empty() {
        return Err("the query is empty");
    }
    if q.chars().count() > QUERY_MAX_CHARS || has_control(q, false) {
        return Err("the query is too long or holds control characters");
    }
    Ok(name_key(q))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(user_name("小明").map(|n| n.key), Ok("小明".to_owned()));
        assert_eq!(
            user_name("Alice_1.x-y").map(|n| n.key),
            Ok("alice_1.x-y".to_owned())
        );
        assert!(
            user_name("हिन्दी").is_ok(),
            "combining vowel signs are allowed"
        );
        assert!(user_name("").is_err());
        assert!(user_name(&"a".repeat(33)).is_err());
        assert!(user_name(&"字".repeat(32)).is_ok());
        assert!(user_name("bad name").is_err());
        assert!(user_name("tab\there").is_err());
        assert!(user_name("zero\u{200b}width").is_err());
        assert!(user_name("rtl\u{202e}x").is_err());
        assert!(user_name("nul\0").is_err());
        // Invisible characters, even those that count as letters or marks, and enclosing marks.
        for bad in [
            "a\u{fe0f}",  // variation selector
            "a\u{34f}",   // combining grapheme joiner
            "a\u{17b4}",  // Khmer inherent vowel (invisible)
            "a\u{20dd}",  // combining enclosing circle
            "\u{3164}",   // Hangul filler (Alphabetic, but blank)
            "a\u{115f}b", // Hangul choseong filler
            "\u{ffa0}x",  // halfwidth Hangul filler
            "a\u{e0041}", // tag character
            "a\u{ad}b",   // soft hyphen
            "\u{301}a",   // a mark with nothing before it
        ] {
            assert!(user_name(bad).is_err(), "{bad:?} accepted");
        }
        // Marks that complete letters stay: Devanagari virama, a free-standing accent on q,
        // Thai vowel and tone marks.
        for good in ["क्षत्रिय", "q\u{301}", "สมชาย", "ผู้ใช้"]
        {
            assert!(user_name(good).is_ok(), "{good:?} refused");
        }
        // NFC and case folding: composed and decomposed forms are the same name.
        assert_eq!(name_key("Ångström"), name_key("A\u{30a}ngstro\u{308}m"));
        assert_eq!(name_key("ÉCOLE"), name_key("école"));
    }

    #[test]
    fn bodies() {
        assert_eq!(body("hi", 10), Ok(()));
        assert_eq!(body("line\nline", 10), Ok(()));
        assert_eq!(body("   ", 10), Err(BodyError::Empty));
        assert_eq!(body("12345678901", 10), Err(BodyError::TooLarge));
        assert_eq!(body("bell\u{7}", 10), Err(BodyError::Control));
        assert!(client_msg_id("abc-123").is_ok());
        assert!(client_msg_id("").is_err());
        assert!(client_msg_id("has space").is_err());
        assert!(password("1234567").is_err());
        assert!(password("12345678").is_ok());
    }

    #[test]
    fn reactions_are_one_visible_grapheme() {
        // ZWJ family, flag, keycap, skin tone, VS16 heart, a CJK character: one cluster each.
        for good in [
            "👍",
            "👨\u{200d}👩\u{200d}👧",
            "🇨🇳",
            "1\u{fe0f}\u{20e3}",
            "👍🏽",
            "❤\u{fe0f}",
            "好",
        ] {
            assert!(emoji(good).is_ok(), "{good:?} refused");
        }
        for bad in [
            "",
            "👍👍",
            "+1",
            " ",
            "👍 ",
            "\u{200d}",
            "\u{fe0f}",
            "\u{7}",
            &"👍🏽".repeat(9),
        ] {
            assert!(emoji(bad).is_err(), "{bad:?} accepted");
        }
        // Stored in one form: decomposed and composed, text and emoji presentation.
        assert_eq!(emoji("e\u{301}"), emoji("é"));
        assert_eq!(emoji("❤"), emoji("❤\u{fe0f}"));
    }
}
