//! The one form of a reaction's emoji (PROTOCOL.md §5.6.2), so that the forms keyboards send
//! for one emoji are one reaction: NFC, then emoji presentation made explicit. Every variation
//! selector 16 (U+FE0F) is dropped, then one is put back after each emoji character whose
//! default is text presentation (❤ and ❤️ both become ❤️; a keycap's digit gets one before
//! U+20E3). Characters that are not emoji (a CJK character, say) are left as they are.

use icu_properties::CodePointSetData;
use icu_properties::props::{Emoji, EmojiPresentation};
use unicode_normalization::UnicodeNormalization;

const VS16: char = '\u{fe0f}';
const KEYCAP: char = '\u{20e3}';

/// The canonical form of `raw` (see the module's documentation).
pub fn canonical(raw: &str) -> String {
    let emoji = CodePointSetData::new::<Emoji>();
    let presentation = CodePointSetData::new::<EmojiPresentation>();
    let chars: Vec<char> = raw.nfc().filter(|c| *c != VS16).collect();
    let mut out = String::with_capacity(raw.len() + 3);
    for (i, &c) in chars.iter().enumerate() {
        out.push(c);
        let next = chars.get(i + 1).copied();
        // Digits, # and * are emoji only as keycaps: alone they stay text.
        let keycap_base = c.is_ascii_digit() || c == '#' || c == '*';
        let wants = if keycap_base {
            next == Some(KEYCAP)
        } else {
            emoji.contains(c) && !presentation.contains(c)
        };
        if wants {
            out.push(VS16);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::canonical;

    #[test]
    fn the_forms_of_one_emoji_are_one() {
        assert_eq!(canonical("❤"), "❤\u{fe0f}");
        assert_eq!(canonical("❤\u{fe0f}"), "❤\u{fe0f}");
        assert_eq!(canonical("❤\u{fe0f}\u{fe0f}"), "❤\u{fe0f}");
        assert_eq!(canonical("1\u{20e3}"), "1\u{fe0f}\u{20e3}");
        assert_eq!(canonical("1\u{fe0f}\u{20e3}"), "1\u{fe0f}\u{20e3}");
        // Already emoji by default: unchanged.
        for same in ["👍", "👍🏽", "🇨🇳", "👨\u{200d}👩\u{200d}👧", "好", "1"] {
            assert_eq!(canonical(same), same);
        }
        // A ZWJ sequence with a text-default part: the part gets its selector.
        assert_eq!(
            canonical("🏃\u{200d}♀"),
            "🏃\u{200d}♀\u{fe0f}",
            "woman running"
        );
        // NFC first.
        assert_eq!(canonical("e\u{301}"), "é");
    }
}
