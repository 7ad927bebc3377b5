//! Text for the terminal: display width by grapheme cluster, wrapping at UAX #14 break
//! opportunities, truncation that never splits a cluster, and the composer's editing model.
//!
//! Everything measures grapheme clusters, never chars or bytes: `👨‍👩‍👧` is one cluster two
//! cells wide, `e\u{301}` one cluster one cell wide, `中` two cells.

pub mod clock;
pub mod editor;

use unicode_normalization::UnicodeNormalization;
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

/// How to count East Asian Ambiguous characters (`±`, `①`, Cyrillic in some fonts...): one
/// cell (most terminals) or two (CJK locales with a wide setting).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Ambiguous {
    #[default]
    Narrow,
    Wide,
}

/// Text in NFC: names and messages compare and search the same however they were typed.
pub fn nfc(s: &str) -> String {
    s.nfc().collect()
}

/// A user's name as shown: NFC, or "deleted account" for the empty name a deleted account has
/// (protocol 1.5).
pub fn user_name(name: &str) -> String {
    if name.is_empty() {
        "deleted account".to_owned()
    } else {
        nfc(name)
    }
}

/// Text safe for a notification or the title: no control characters.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Cells one grapheme cluster takes: 0 for controls, at most 2 (a terminal draws a cluster in
/// one or two cells).
pub fn cluster_width(g: &str, amb: Ambiguous) -> usize {
    if g.chars().all(char::is_control) {
        return 0;
    }
    let w = match amb {
        Ambiguous::Narrow => g.width(),
        Ambiguous::Wide => g.width_cjk(),
    };
    // VS16 asks for the emoji (wide) presentation of a base that is narrow as text.
    let w = if g.contains('\u{fe0f}') { w.max(2) } else { w };
    w.clamp(1, 2)
}

/// Cells a string takes.
pub fn width(s: &str, amb: Ambiguous) -> usize {
    s.graphemes(true).map(|g| cluster_width(g, amb)).sum()
}

/// The longest prefix of `s` that fits in `max` cells, with `…` when something was cut. Never
/// splits a grapheme cluster.
pub fn truncate(s: &str, max: usize, amb: Ambiguous) -> String {
    if width(s, amb) <= max {
        return s.to_owned();
    }
    if max == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    for g in s.graphemes(true) {
        let w = cluster_width(g, amb);
        if used + w > max - 1 {
            break;
        }
        out.push_str(g);
        used += w;
    }
    out.push('…');
    out
}

/// Splits `s` into lines of at most `max` cells: at UAX #14 break opportunities (between CJK
/// ideographs, after spaces, never before closing punctuation), at every newline, and inside a
/// word only when the word alone is wider than a line. Trailing spaces are dropped.
pub fn wrap(s: &str, max: usize, amb: Ambiguous) -> Vec<String> {
    let max = max.max(2);
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut line_w = 0;
    let mut start = 0;
    for (end, op) in unicode_linebreak::linebreaks(s) {
        let segment = &s[start..end];
        start = end;
        let mandatory = op == unicode_linebreak::BreakOpportunity::Mandatory;
        let content = segment.trim_end_matches(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}']);
        let seg_w = width(content.trim_end(), amb);
        if line_w + seg_w > max && !line.is_empty() {
            lines.push(line.trim_end().to_owned());
            line.clear();
            line_w = 0;
        }
        if seg_w > max {
            // A word wider than the line: break it between clusters.
            for g in content.graphemes(true) {
                let w = cluster_width(g, amb);
                if line_w + w > max {
                    lines.push(std::mem::take(&mut line));
                    line_w = 0;
                }
                line.push_str(g);
                line_w += w;
            }
        } else {
            line.push_str(content);
            line_w += width(content, amb);
        }
        if mandatory {
            lines.push(line.trim_end().to_owned());
            line.clear();
            line_w = 0;
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line.trim_end().to_owned());
    }
    // linebreaks() reports the end of text as a mandatory break: drop the empty line it adds
    // after text ending in a newline only if the text did not end with one.
    if lines.len() > 1 && lines.last().is_some_and(String::is_empty) && !s.ends_with('\n') {
        lines.pop();
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: Ambiguous = Ambiguous::Narrow;

    #[test]
    fn widths_of_the_hard_cases() {
        assert_eq!(width("中文abc", N), 7);
        assert_eq!(width("，。！", N), 6, "full-width punctuation");
        assert_eq!(width("\u{3000}", N), 2, "ideographic space");
        assert_eq!(
            width("👨\u{200d}👩\u{200d}👧", N),
            2,
            "family emoji is one cluster"
        );
        assert_eq!(width("🇨🇳", N), 2, "flag");
        assert_eq!(width("❤\u{fe0f}", N), 2, "VS16 emoji presentation");
        assert_eq!(width("e\u{301}", N), 1, "combining mark");
        assert_eq!(width("ｶﾀｶﾅ", N), 4, "halfwidth katakana");
        assert_eq!(width("±", N), 1);
        assert_eq!(width("±", Ambiguous::Wide), 2);
    }

    #[test]
    fn truncation_keeps_clusters_whole() {
        assert_eq!(truncate("中文abc", 7, N), "中文abc");
        assert_eq!(truncate("中文abc", 4, N), "中…");
        assert_eq!(truncate("中文abc", 5, N), "中文…");
        assert_eq!(
            truncate("👨\u{200d}👩\u{200d}👧abc", 3, N),
            "👨\u{200d}👩\u{200d}👧…"
        );
        assert_eq!(truncate("e\u{301}e\u{301}e\u{301}", 2, N), "e\u{301}…");
        for max in 0..12 {
            let t = truncate("中文abc 👨\u{200d}👩\u{200d}👧 e\u{301}", max, N);
            assert!(width(&t, N) <= max, "{t:?} wider than {max}");
        }
    }

    #[test]
    fn wrapping_breaks_between_ideographs_not_before_closing_punctuation() {
        let lines = wrap("今天天气很好，我们去公园散步吧。", 10, N);
        for l in &lines {
            assert!(width(l, N) <= 10, "{l:?}");
            assert!(
                !l.starts_with('，') && !l.starts_with('。'),
                "closing punctuation starts {l:?}"
            );
        }
        assert_eq!(lines.concat(), "今天天气很好，我们去公园散步吧。");
        assert_eq!(
            wrap("hello world again", 11, N),
            vec!["hello world", "again"]
        );
        assert_eq!(
            wrap("line one\nline two", 40, N),
            vec!["line one", "line two"]
        );
        assert_eq!(wrap("", 10, N), vec![""]);
        let long = wrap("abcdefghijklmnop", 5, N);
        assert_eq!(long, vec!["abcde", "fghij", "klmno", "p"]);
        let emoji = wrap(&"👨\u{200d}👩\u{200d}👧".repeat(5), 4, N);
        assert!(emoji.iter().all(|l| width(l, N) <= 4));
        assert_eq!(emoji.concat(), "👨\u{200d}👩\u{200d}👧".repeat(5));
    }
}
