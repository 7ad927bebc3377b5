//! The composer's editing model: a string and a cursor that always sits on a grapheme cluster
//! boundary, readline-style operations, a kill buffer, undo, and the caret position after
//! wrapping (where the real terminal cursor goes, so IME candidate windows appear there).

use unicode_segmentation::UnicodeSegmentation;

use super::{Ambiguous, cluster_width};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Editor {
    text: String,
    /// Byte offset, always on a cluster boundary.
    cursor: usize,
    kill: String,
    undo: Vec<(String, usize)>,
}

const UNDO_MAX: usize = 200;

impl Editor {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn cursor(&self) -> usize {
        self.cursor
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    fn snapshot(&mut self) {
        if self.undo.last().is_none_or(|(t, _)| *t != self.text) {
            self.undo.push((self.text.clone(), self.cursor));
            if self.undo.len() > UNDO_MAX {
                self.undo.remove(0);
            }
        }
    }

    /// Byte offsets of cluster boundaries, 0 and len included.
    fn boundaries(&self) -> Vec<usize> {
        let mut b: Vec<usize> = self.text.grapheme_indices(true).map(|(i, _)| i).collect();
        b.push(self.text.len());
        b
    }

    /// Puts the cursor back on a boundary after an edit: removing text can join its neighbours
    /// into one cluster (two regional indicators, a base and a combining mark), leaving the old
    /// position inside it. The cursor goes to the start of that cluster.
    fn snap_back(&mut self) {
        let b = self.boundaries();
        if !b.contains(&self.cursor) {
            self.cursor = b.into_iter().rfind(|x| *x <= self.cursor).unwrap_or(0);
        }
    }

    fn prev_boundary(&self) -> usize {
        self.text[..self.cursor]
            .grapheme_indices(true)
            .next_back()
            .map_or(0, |(i, _)| i)
    }

    fn next_boundary(&self) -> usize {
        self.text[self.cursor..]
            .graphemes(true)
            .next()
            .map_or(self.cursor, |g| self.cursor + g.len())
    }

    /// Inserts text (a key, a paste, an IME commit) at the cursor. The cursor lands after it,
    /// on the nearest boundary (inserted combining marks join the cluster before them).
    pub fn insert(&mut self, s: &str) {
        if s.is_empty() {
            return;
        }
        self.snapshot();
        self.text.insert_str(self.cursor, s);
        let target = self.cursor + s.len();
        self.cursor = self
            .boundaries()
            .into_iter()
            .find(|b| *b >= target)
            .unwrap_or(self.text.len());
    }

    pub fn left(&mut self) {
        self.cursor = self.prev_boundary();
    }

    pub fn right(&mut self) {
        self.cursor = self.next_boundary();
    }

    pub fn home(&mut self) {
        self.cursor = self.text[..self.cursor].rfind('\n').map_or(0, |i| i + 1);
    }

    pub fn end(&mut self) {
        self.cursor = self.text[self.cursor..]
            .find('\n')
            .map_or(self.text.len(), |i| self.cursor + i);
    }

    /// Up one line of a multi-line text, to the same column (in cells) or that line's end.
    /// False on the first line (the caller then recalls history instead).
    pub fn up(&mut self, amb: Ambiguous) -> bool {
        let start = self.text[..self.cursor].rfind('\n').map_or(0, |i| i + 1);
        if start == 0 {
            return false;
        }
        let col = super::width(&self.text[start..self.cursor], amb);
        let prev = self.text[..start - 1].rfind('\n').map_or(0, |i| i + 1);
        self.cursor = prev + offset_at_col(&self.text[prev..start - 1], col, amb);
        true
    }

    /// Down one line; false on the last line.
    pub fn down(&mut self, amb: Ambiguous) -> bool {
        let start = self.text[..self.cursor].rfind('\n').map_or(0, |i| i + 1);
        let col = super::width(&self.text[start..self.cursor], amb);
        let Some(nl) = self.text[self.cursor..].find('\n') else {
            return false;
        };
        let next = self.cursor + nl + 1;
        let end = self.text[next..]
            .find('\n')
            .map_or(self.text.len(), |i| next + i);
        self.cursor = next + offset_at_col(&self.text[next..end], col, amb);
        true
    }

    /// Start of the previous word (Alt-B).
    pub fn word_left(&mut self) {
        let words: Vec<usize> = self.text[..self.cursor]
            .split_word_bound_indices()
            .filter(|(_, w)| w.chars().any(char::is_alphanumeric))
            .map(|(i, _)| i)
            .collect();
        self.cursor = words.last().copied().unwrap_or(0);
    }

    /// End of the next word (Alt-F).
    pub fn word_right(&mut self) {
        let rest = &self.text[self.cursor..];
        let end = rest
            .split_word_bound_indices()
            .find(|(_, w)| w.chars().any(char::is_alphanumeric))
            .map_or(rest.len(), |(i, w)| i + w.len());
        self.cursor += end;
    }

    pub fn backspace(&mut self) {
        if self.cursor == 0 {
            return;
        }
        self.snapshot();
        let start = self.prev_boundary();
        self.text.replace_range(start..self.cursor, "");
        self.cursor = start;
        self.snap_back();
    }

    pub fn delete(&mut self) {
        let end = self.next_boundary();
        if end == self.cursor {
            return;
        }
        self.snapshot();
        self.text.replace_range(self.cursor..end, "");
        self.snap_back();
    }

    fn kill_range(&mut self, start: usize, end: usize) {
        if start == end {
            return;
        }
        self.snapshot();
        self.kill = self.text[start..end].to_owned();
        self.text.replace_range(start..end, "");
        self.cursor = start;
        self.snap_back();
    }

    /// Ctrl-W: the word before the cursor (and the spaces after it).
    pub fn kill_word_back(&mut self) {
        let end = self.cursor;
        self.word_left();
        let start = self.cursor;
        self.cursor = end;
        self.kill_range(start, end);
    }

    /// Ctrl-U: everything before the cursor on its line.
    pub fn kill_to_start(&mut self) {
        let end = self.cursor;
        self.home();
        let start = self.cursor;
        self.cursor = end;
        self.kill_range(start, end);
    }

    /// Ctrl-K: everything after the cursor on its line.
    pub fn kill_to_end(&mut self) {
        let start = self.cursor;
        self.end();
        let end = self.cursor;
        self.cursor = start;
        self.kill_range(start, end);
    }

    /// Ctrl-Y: the last killed text.
    pub fn yank(&mut self) {
        let k = self.kill.clone();
        self.insert(&k);
    }

    pub fn undo(&mut self) {
        if let Some((t, c)) = self.undo.pop() {
            self.text = t;
            self.cursor = c;
        }
    }

    /// Replaces everything (recalled history, a draft); the change can be undone.
    pub fn set(&mut self, s: &str) {
        self.snapshot();
        self.text = s.to_owned();
        self.cursor = self.text.len();
    }

    /// Takes the text out (on send), leaving the editor empty.
    pub fn take(&mut self) -> String {
        self.snapshot();
        self.cursor = 0;
        std::mem::take(&mut self.text)
    }

    /// (row, column) of the caret when the text is laid out `width` cells wide, wrapping
    /// between clusters (the composer wraps by cluster so the caret maps exactly).
    pub fn caret(&self, width: usize, amb: Ambiguous) -> (usize, usize) {
        let width = width.max(2);
        let (mut row, mut col) = (0, 0);
        for (i, g) in self.text.grapheme_indices(true) {
            if i >= self.cursor {
                break;
            }
            if g == "\n" || g == "\r\n" {
                row += 1;
                col = 0;
                continue;
            }
            let w = cluster_width(g, amb);
            if col + w > width {
                row += 1;
                col = 0;
            }
            col += w;
        }
        if col >= width {
            (row + 1, 0)
        } else {
            (row, col)
        }
    }
}

/// Byte offset in `line` of the cluster at display column `col` (or the end).
fn offset_at_col(line: &str, col: usize, amb: Ambiguous) -> usize {
    let mut w = 0;
    for (i, g) in line.grapheme_indices(true) {
        let cw = cluster_width(g, amb);
        if w + cw > col {
            return i;
        }
        w += cw;
    }
    line.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cjk_input_moves_the_caret_by_cells() {
        let mut e = Editor::new();
        e.insert("中文");
        assert_eq!(e.caret(80, Ambiguous::Narrow), (0, 4));
        e.insert("abc");
        assert_eq!(e.caret(80, Ambiguous::Narrow), (0, 7));
        e.left();
        e.left();
        e.left();
        e.left();
        assert_eq!(
            e.caret(80, Ambiguous::Narrow),
            (0, 2),
            "left over a wide char moves two cells"
        );
        e.backspace();
        assert_eq!(e.text(), "文abc");
        // Wrapping: 5 cells wide, 中文中 = 6 cells -> the third ideograph starts row 1.
        let mut e = Editor::new();
        e.insert("中文中");
        assert_eq!(e.caret(5, Ambiguous::Narrow), (1, 2));
    }

    #[test]
    fn clusters_are_never_split() {
        let mut e = Editor::new();
        e.insert("a👨\u{200d}👩\u{200d}👧b");
        e.left();
        e.left();
        assert_eq!(e.cursor(), 1, "one step over the whole family");
        e.delete();
        assert_eq!(e.text(), "ab");
        let mut e = Editor::new();
        e.insert("e");
        e.insert("\u{301}");
        assert_eq!(e.text(), "e\u{301}");
        e.backspace();
        assert!(e.is_empty(), "the mark goes with its base");
    }

    #[test]
    fn deleting_between_regional_indicators_keeps_the_cursor_on_a_boundary() {
        let mut e = Editor::new();
        e.insert("🇨x🇳");
        e.left();
        e.backspace();
        assert_eq!(e.text(), "🇨🇳");
        assert_eq!(
            e.cursor(),
            0,
            "the flag is one cluster now; the cursor moves to its start"
        );
    }

    #[test]
    fn readline_kills_yank_and_undo() {
        let mut e = Editor::new();
        e.insert("hello brave new world");
        e.kill_word_back();
        assert_eq!(e.text(), "hello brave new ");
        e.kill_to_start();
        assert_eq!(e.text(), "");
        e.yank();
        assert_eq!(e.text(), "hello brave new ");
        e.undo();
        assert_eq!(e.text(), "");
        e.undo();
        assert_eq!(e.text(), "hello brave new ");
        e.home();
        e.word_right();
        assert_eq!(e.cursor(), 5);
        e.kill_to_end();
        assert_eq!(e.text(), "hello");
        let sent = e.take();
        assert_eq!(sent, "hello");
        assert!(e.is_empty());
    }

    fn op() -> impl Strategy<Value = u8> {
        0u8..12
    }

    proptest! {
        #[test]
        fn the_cursor_always_sits_on_a_cluster_boundary(
            inserts in proptest::collection::vec(
                prop_oneof![
                    Just("中".to_owned()), Just("a".to_owned()), Just("\u{301}".to_owned()),
                    Just("👨\u{200d}👩\u{200d}👧".to_owned()), Just("🇨".to_owned()), Just("🇳".to_owned()),
                    Just("\n".to_owned()), Just(" ".to_owned()), Just("\u{fe0f}".to_owned()),
                ], 0..20),
            ops in proptest::collection::vec(op(), 0..40),
        ) {
            let mut e = Editor::new();
            let mut ins = inserts.iter().cycle();
            for o in ops {
                match o {
                    0..=2 => { if let Some(s) = ins.next() { e.insert(s) } }
                    3 => e.left(),
                    4 => e.right(),
                    5 => e.backspace(),
                    6 => e.delete(),
                    7 => e.word_left(),
                    8 => e.word_right(),
                    9 => e.kill_word_back(),
                    10 => e.yank(),
                    _ => e.undo(),
                }
                let bounds = e.boundaries();
                prop_assert!(bounds.contains(&e.cursor()), "cursor {} not in {:?} for {:?}", e.cursor(), bounds, e.text());
                let (_, col) = e.caret(7, Ambiguous::Narrow);
                prop_assert!(col < 7);
            }
        }
    }

    #[test]
    fn up_and_down_keep_the_column_in_cells() {
        let amb = Ambiguous::Narrow;
        let mut e = Editor::new();
        e.insert("中文ab\nxy\n很长的一行");
        assert!(!e.down(amb), "already on the last line");
        e.left();
        e.left();
        assert_eq!(e.caret(80, amb), (2, 6));
        assert!(e.up(amb));
        assert_eq!(e.caret(80, amb), (1, 2), "a shorter line: its end");
        assert!(e.up(amb));
        assert_eq!(e.caret(80, amb), (0, 2), "column 2 is after 中");
        assert!(!e.up(amb));
        assert!(e.down(amb));
        assert!(e.down(amb));
        assert_eq!(e.caret(80, amb), (2, 2));
    }
}
