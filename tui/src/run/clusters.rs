//! A backend wrapper for emoji sequences that terminals measure differently from ratatui.
//!
//! ratatui gives a ZWJ family (👨‍👩‍👧), a flag (🇨🇳) or an emoji with VS16 (❤️) the width of the
//! whole cluster, 2; tmux and many terminals measure each code point, so the family takes 6
//! cells there and spills over its neighbours. ratatui's diff only rewrites cells it thinks
//! changed, so after a scroll the spilled parts stay on screen (`x=1   🇵 🇳 🇸`) until Ctrl-L.
//! Here every row that holds such a cluster, now or in the frame before, is rewritten whole
//! whenever anything in it changes, cell by cell in order with a cursor move after each cluster
//! (the crossterm backend moves after every wide cell), so whatever a terminal spilled is
//! overwritten in the same frame and everything after the cluster sits where ratatui put it.

use std::collections::{BTreeSet, HashSet};
use std::io::{self, Write};

use ratatui::backend::{Backend, ClearType, WindowSize};
use ratatui::buffer::{Buffer, Cell};
use ratatui::layout::{Position, Rect, Size};
use unicode_width::UnicodeWidthStr;

/// Whether terminals may draw this cluster wider than ratatui does: several code points with a
/// joiner, a variation selector, a keycap, skin tones, or regional indicators.
pub fn risky(symbol: &str) -> bool {
    let mut chars = 0;
    let mut marked = false;
    for c in symbol.chars() {
        chars += 1;
        marked |= matches!(c,
            '\u{200D}' | '\u{FE0F}' | '\u{20E3}' | '\u{1F1E6}'..='\u{1F1FF}' | '\u{1F3FB}'..='\u{1F3FF}');
    }
    marked
        && (chars > 1
            || symbol
                .chars()
                .any(|c| matches!(c, '\u{1F1E6}'..='\u{1F1FF}')))
}

/// The wrapped backend and what it last put on screen.
pub struct ClusterSafe<B> {
    inner: B,
    shadow: Buffer,
    /// Rows that hold a risky cluster on screen now.
    risky_rows: HashSet<u16>,
}

impl<B: Backend> ClusterSafe<B> {
    /// `area`: the screen as the terminal will be drawn (grown as frames need).
    pub fn new(inner: B, area: Rect) -> Self {
        Self {
            inner,
            shadow: Buffer::empty(area),
            risky_rows: HashSet::new(),
        }
    }

    pub fn inner(&self) -> &B {
        &self.inner
    }

    fn row_risky(&self, y: u16) -> bool {
        let a = self.shadow.area;
        (a.x..a.right()).any(|x| risky(self.shadow[(x, y)].symbol()))
    }

    /// Grows the shadow to hold `(x, y)` (after a resize).
    fn cover(&mut self, x: u16, y: u16) {
        let a = self.shadow.area;
        if x >= a.right() || y >= a.bottom() {
            let area = Rect::new(
                a.x,
                a.y,
                a.width.max(x.saturating_add(1).saturating_sub(a.x)),
                a.height.max(y.saturating_add(1).saturating_sub(a.y)),
            );
            self.shadow.resize(area);
        }
    }
}

impl<B: Backend> Backend for ClusterSafe<B> {
    type Error = B::Error;

    fn draw<'a, I>(&mut self, content: I) -> Result<(), Self::Error>
    where
        I: Iterator<Item = (u16, u16, &'a Cell)>,
    {
        let mut cells: Vec<(u16, u16)> = Vec::new();
        let mut rows = BTreeSet::new();
        for (x, y, c) in content {
            self.cover(x, y);
            self.shadow[(x, y)] = c.clone();
            // The cells a wide glyph covers are blank underneath, as in ratatui's own buffer
            // (it never sends them): a stale glyph there would come back in a rewrite.
            let w = u16::try_from(c.symbol().width()).unwrap_or(1);
            for k in 1..w {
                if x + k < self.shadow.area.right() {
                    self.shadow[(x + k, y)].reset();
                }
            }
            cells.push((x, y));
            rows.insert(y);
        }
        let mut whole = BTreeSet::new();
        for y in rows {
            let now = self.row_risky(y);
            if now || self.risky_rows.contains(&y) {
                whole.insert(y);
            }
            if now {
                self.risky_rows.insert(y);
            } else {
                self.risky_rows.remove(&y);
            }
        }
        if !whole.is_empty() {
            // The other rows' cells as ratatui gave them, then each rewritten row left to
            // right (the backend moves the cursor wherever cells are not consecutive).
            cells.retain(|(_, y)| !whole.contains(y));
            let a = self.shadow.area;
            for y in &whole {
                let mut x = a.x;
                while x < a.right() {
                    let sym = self.shadow[(x, *y)].symbol();
                    let w = sym.width().max(1);
                    if risky(sym) && w > 1 && x + 1 < a.right() {
                        // The blank under the cluster's second cell goes first: a terminal that
                        // draws the cluster one cell wide (❤️ in tmux) would otherwise keep what
                        // was there before; one that draws it wide covers the blank again.
                        cells.push((x + 1, *y));
                    }
                    cells.push((x, *y));
                    x = x.saturating_add(u16::try_from(w).unwrap_or(1));
                }
            }
        }
        let shadow = &self.shadow;
        self.inner
            .draw(cells.iter().map(|(x, y)| (*x, *y, &shadow[(*x, *y)])))
    }

    fn hide_cursor(&mut self) -> Result<(), Self::Error> {
        self.inner.hide_cursor()
    }

    fn show_cursor(&mut self) -> Result<(), Self::Error> {
        self.inner.show_cursor()
    }

    fn get_cursor_position(&mut self) -> Result<Position, Self::Error> {
        self.inner.get_cursor_position()
    }

    fn set_cursor_position<P: Into<Position>>(&mut self, position: P) -> Result<(), Self::Error> {
        self.inner.set_cursor_position(position)
    }

    fn clear(&mut self) -> Result<(), Self::Error> {
        self.shadow.reset();
        self.risky_rows.clear();
        self.inner.clear()
    }

    fn clear_region(&mut self, clear_type: ClearType) -> Result<(), Self::Error> {
        if clear_type == ClearType::All {
            self.shadow.reset();
            self.risky_rows.clear();
        }
        self.inner.clear_region(clear_type)
    }

    fn size(&self) -> Result<Size, Self::Error> {
        self.inner.size()
    }

    fn window_size(&mut self) -> Result<WindowSize, Self::Error> {
        self.inner.window_size()
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        Backend::flush(&mut self.inner)
    }
}

/// Escape sequences the run loop queues itself (synchronized updates) go straight through.
impl<B: Write> Write for ClusterSafe<B> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Write::flush(&mut self.inner)
    }
}

#[cfg(test)]
mod tests {
    use super::risky;

    #[test]
    fn which_clusters_are_risky() {
        for s in [
            "👨\u{200D}👩\u{200D}👧",
            "🇨🇳",
            "❤\u{FE0F}",
            "1\u{FE0F}\u{20E3}",
            "👍🏽",
            "🇵",
        ] {
            assert!(risky(s), "{s:?}");
        }
        for s in ["a", "中", "😀", "é", "e\u{301}", "ｶﾞ", "❤"] {
            assert!(!risky(s), "{s:?}");
        }
    }
}
