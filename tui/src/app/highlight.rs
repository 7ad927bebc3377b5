//! Mentions and highlight words: what counts as one (for the list's `N@M`, notifications at the
//! `mentions` level, and the words the chat pane highlights), in one place.

use std::ops::Range;

/// Whether `c` joins letters into a word for the purpose of `@bob` vs `@bobby`.
fn word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-'
}

/// Whether a match's edge needs a word boundary: Latin-like words do (`bob` is not in `bobby`),
/// CJK words do not (no spaces between words).
fn needs_boundary(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// `body` lowercased, with each lowered byte's offset in `body` (plus one past the end), so a
/// match in the lowered text maps back to the original exactly.
pub(super) fn lowered(body: &str) -> (String, Vec<usize>) {
    let mut low = String::with_capacity(body.len());
    let mut at = Vec::with_capacity(body.len() + 1);
    for (i, c) in body.char_indices() {
        for l in c.to_lowercase() {
            let before = low.len();
            low.push(l);
            at.extend(std::iter::repeat_n(i, low.len() - before));
        }
    }
    at.push(body.len());
    (low, at)
}

/// The byte ranges of `body` that mention `me` (`@me`, as a whole name) or hold one of the
/// highlight `words` (case-insensitive; a Latin word only as a whole word), in order, not
/// overlapping.
pub fn ranges(body: &str, me: &str, words: &[String]) -> Vec<Range<usize>> {
    let (low, at) = lowered(body);
    let mut found: Vec<Range<usize>> = Vec::new();
    let mut add = |needle: &str, after_rule: fn(char) -> bool, before_rule: bool| {
        if needle.is_empty() {
            return;
        }
        let first = needle.chars().next().unwrap_or(' ');
        let last = needle.chars().next_back().unwrap_or(' ');
        for (i, _) in low.match_indices(needle) {
            let end = i + needle.len();
            let next = low[end..].chars().next();
            let prev = low[..i].chars().next_back();
            let after_ok = next.is_none_or(|c| !(after_rule(c) && after_rule(last)));
            let before_ok =
                !before_rule || prev.is_none_or(|c| !(needs_boundary(c) && needs_boundary(first)));
            if after_ok && before_ok {
                found.push(at[i]..at[end]);
            }
        }
    };
    if !me.is_empty() {
        let at_me = format!("@{}", me.to_lowercase());
        // After `@name` no name character may follow, whatever the script.
        add(&at_me, word_char, false);
    }
    for w in words {
        add(&w.trim().to_lowercase(), needs_boundary, true);
    }
    found.sort_by_key(|r| (r.start, std::cmp::Reverse(r.end)));
    let mut out: Vec<Range<usize>> = Vec::with_capacity(found.len());
    for r in found {
        match out.last_mut() {
            Some(prev) if r.start < prev.end => prev.end = prev.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// `@me` in the body, as a whole name: `@bobby` is not a mention of bob.
pub fn mentions(body: &str, me: &str) -> bool {
    !me.is_empty() && !ranges(body, me, &[]).is_empty()
}

/// A mention of `me` or one of the highlight words.
pub fn highlighted(body: &str, me: &str, words: &[String]) -> bool {
    !ranges(body, me, words).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn whole_names_and_words_only_in_latin_any_in_cjk() {
        assert!(mentions("@bob look", "bob"));
        assert!(mentions("hi @Bob", "bob"));
        assert!(!mentions("@bobby look", "bob"));
        assert!(!mentions("bob look", "bob"));
        assert!(mentions("@小明 看这里", "小明"));
        assert!(!mentions("@小明明 看这里", "小明"));
        let w = words(&["deploy", "部署"]);
        assert!(highlighted("Deploy at ten", "x", &w));
        assert!(!highlighted("redeployment", "x", &w));
        assert!(highlighted("今天部署吗", "x", &w));
    }

    #[test]
    fn ranges_map_back_to_the_original_text() {
        let body = "İx @小明 deploy 部署";
        let r = ranges(body, "小明", &words(&["DEPLOY", "部署"]));
        let got: Vec<&str> = r.iter().map(|r| &body[r.clone()]).collect();
        assert_eq!(got, vec!["@小明", "deploy", "部署"]);
        // Overlapping matches merge.
        let r = ranges("@bob", "bob", &words(&["bob"]));
        assert_eq!(r, vec![0..4]);
    }
}
