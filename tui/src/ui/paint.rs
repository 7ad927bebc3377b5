//! Drawing primitives shared by the panes and popups: colours that respect NO_COLOR, rules
//! and borders that stay ASCII when ambiguous-width characters are wide, clipped text, and
//! the single-line input fields.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::widgets::Block;
use unicode_segmentation::UnicodeSegmentation;

use crate::app::State;
use crate::text::editor::Editor;
use crate::text::{Ambiguous, cluster_width, width};

/// A foreground colour, or none when colours are off (NO_COLOR).
pub fn fg(s: &State, c: Color) -> Style {
    if s.settings.color {
        Style::default().fg(c)
    } else {
        Style::default()
    }
}

/// Popup borders: ASCII when ambiguous-width characters are drawn wide (box drawing is
/// ambiguous and would push the frame out of line).
pub(super) fn bordered<'a>(s: &State, title: &'a str) -> Block<'a> {
    const ASCII: ratatui::symbols::border::Set = ratatui::symbols::border::Set {
        top_left: "+",
        top_right: "+",
        bottom_left: "+",
        bottom_right: "+",
        vertical_left: "|",
        vertical_right: "|",
        horizontal_top: "-",
        horizontal_bottom: "-",
    };
    let b = Block::bordered().title(title);
    if s.settings.ambiguous == Ambiguous::Wide {
        b.border_set(ASCII)
    } else {
        b
    }
}

pub(super) fn vline(s: &State) -> &'static str {
    if s.settings.ambiguous == Ambiguous::Wide {
        "|"
    } else {
        "│"
    }
}

pub(super) fn hline(s: &State) -> &'static str {
    // Box drawing is East Asian ambiguous: ASCII when the terminal draws those wide.
    if s.settings.ambiguous == Ambiguous::Wide {
        "-"
    } else {
        "─"
    }
}

/// `── label ──────` filling `w` cells.
pub fn rule(s: &State, label: &str, w: usize) -> String {
    let h = hline(s);
    let head = format!("{h}{h} {label} ");
    let used = width(&head, s.settings.ambiguous);
    format!("{head}{}", h.repeat(w.saturating_sub(used)))
}

pub(super) fn put(buf: &mut Buffer, x: u16, y: u16, text: &str, max: usize, style: Style) -> u16 {
    let area = buf.area;
    if y >= area.bottom() || x >= area.right() {
        return x;
    }
    let max = max.min(usize::from(area.right() - x));
    buf.set_stringn(x, y, text, max, style).0
}

pub(super) fn fill(buf: &mut Buffer, r: Rect, style: Style) {
    for y in r.top()..r.bottom() {
        for x in r.left()..r.right() {
            if let Some(c) = buf.cell_mut((x, y)) {
                c.set_symbol(" ");
                c.set_style(style);
            }
        }
    }
}

/// Draws a single-line input; returns the caret's x. Scrolls horizontally to keep the caret
/// visible; `mask` shows one `*` per cluster (passwords).
pub(super) fn input(
    buf: &mut Buffer,
    x: u16,
    y: u16,
    w: usize,
    e: &Editor,
    mask: bool,
    amb: Ambiguous,
) -> u16 {
    let cells: Vec<(usize, String, usize)> = e
        .text()
        .grapheme_indices(true)
        .map(|(i, g)| {
            if mask {
                (i, "*".to_owned(), 1)
            } else {
                (i, g.to_owned(), cluster_width(g, amb))
            }
        })
        .collect();
    let caret: usize = cells
        .iter()
        .take_while(|(i, _, _)| *i < e.cursor())
        .map(|(_, _, w)| *w)
        .sum();
    let start = caret.saturating_sub(w.saturating_sub(1));
    let mut col = 0;
    let mut out = String::new();
    for (_, g, cw) in &cells {
        if col >= start && col + cw <= start + w {
            out.push_str(g);
        }
        col += cw;
    }
    put(buf, x, y, &out, w, Style::default());
    x + u16::try_from(caret - start).unwrap_or(0)
}
