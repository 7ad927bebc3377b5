//! The F1 help's text, laid out for the popup's width: keys and what they do (generated from the
//! keymap), the commands, the popups' keys. Wrapped, never cut: below 50 columns each key's
//! description goes under it. The reducer scrolls by the same lines the renderer draws.

use super::state::State;
use crate::text::{width, wrap};

/// The help popup's size, box included; smaller terminals get what fits.
pub const BOX: (u16, u16) = (76, 40);
/// Width of the keys column when the description fits beside it.
const KEYS_W: usize = 22;

/// The inside of the help box at a terminal size (the box is clamped like every popup's).
pub fn inner(size: (u16, u16)) -> (usize, usize) {
    let w = BOX.0.min(size.0.saturating_sub(2)).max(10);
    let h = BOX.1.min(size.1.saturating_sub(2)).max(5);
    (usize::from(w - 2), usize::from(h - 2))
}

/// The help as rows of at most `w` cells.
pub fn lines(s: &State, w: usize) -> Vec<String> {
    let amb = s.settings.ambiguous;
    let w = w.max(8);
    let mut out = Vec::new();
    let narrow = w < KEYS_W + 28;
    for (keys, what) in s.settings.keymap.help_rows() {
        if narrow {
            out.extend(wrap(&keys, w, amb));
            out.extend(wrap(what, w - 2, amb).into_iter().map(|l| format!("  {l}")));
        } else {
            // Keys too long for their column get a row of their own.
            let k = if width(&keys, amb) > KEYS_W {
                out.extend(wrap(&keys, w, amb));
                String::new()
            } else {
                keys
            };
            let pad = " ".repeat(KEYS_W + 1 - width(&k, amb));
            for (i, l) in wrap(what, w - KEYS_W - 1, amb).into_iter().enumerate() {
                out.push(if i == 0 {
                    format!("{k}{pad}{l}")
                } else {
                    format!("{}{l}", " ".repeat(KEYS_W + 1))
                });
            }
        }
    }
    out.push(String::new());
    out.push("Commands (Tab completes):".into());
    for (_, usage) in super::commands::COMMANDS {
        for (i, l) in wrap(usage, w - 4, amb).into_iter().enumerate() {
            out.push(format!("{}{l}", if i == 0 { "  " } else { "    " }));
        }
    }
    out.push(String::new());
    let popups = "Popups: Up/Down select, Enter confirm, Esc close; requests: a accept, \
                  d decline; members: x twice removes, p admin on/off.";
    out.extend(wrap(popups, w, amb));
    out
}

/// Rows of text the popup shows (the last row says where the view is when it scrolls).
pub fn view_rows(size: (u16, u16), total: usize) -> usize {
    let (_, h) = inner(size);
    if total > h {
        h.saturating_sub(1).max(1)
    } else {
        h
    }
}

/// At the state's terminal size: how far the help can scroll, and how many lines a page moves
/// (what the popup shows).
pub fn scroll_limits(s: &State) -> (usize, usize) {
    let (w, _) = inner(s.size);
    let n = lines(s, w).len();
    let rows = view_rows(s.size, n);
    (n.saturating_sub(rows), rows.max(1))
}
