//! The thread list: one row per conversation with its unread badge, and the friend-requests
//! row at the bottom.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};

use super::paint::{fg, fill, put};
use crate::app::config::Level;
use crate::app::{Kind, State};
use crate::text::{truncate, width};

pub(super) fn draw_list(buf: &mut Buffer, s: &State, r: Rect) {
    let w = usize::from(r.width);
    let amb = s.settings.ambiguous;
    let req_row = !s.requests.is_empty();
    let rows = usize::from(r.height).saturating_sub(usize::from(req_row));
    let sel_i = s
        .selected
        .and_then(|id| s.threads.iter().position(|t| t.id == id))
        .unwrap_or(0);
    let first = (sel_i + 1).saturating_sub(rows);
    for (i, t) in s.threads.iter().enumerate().skip(first).take(rows) {
        let y = r.y + u16::try_from(i - first).unwrap_or(0);
        let selected = s.selected == Some(t.id);
        let mark = match t.kind {
            Kind::Group => "#",
            Kind::Private if s.presence.get(&t.peer_id).copied().unwrap_or(false) => "*",
            Kind::Private => " ",
        };
        // Mentions beside the unread count: `3@1`.
        let badge = if t.mentions > 0 {
            format!("{}@{}", t.unread.max(t.mentions), t.mentions)
        } else if t.unread > 0 {
            t.unread.to_string()
        } else {
            String::new()
        };
        let bw = width(&badge, amb);
        let name_w = w.saturating_sub(2 + bw + usize::from(bw > 0));
        let name = truncate(&t.name, name_w, amb);
        let muted = s.settings.level(&t.name) == Level::None;
        let mut st = if t.unread > 0 && !muted {
            Style::default().add_modifier(Modifier::BOLD)
        } else if !t.can_send || muted {
            // A group one left or was removed from: still readable, greyed.
            Style::default().add_modifier(Modifier::DIM)
        } else {
            Style::default()
        };
        if selected {
            st = st.add_modifier(Modifier::REVERSED);
            fill(buf, Rect::new(r.x, y, r.width, 1), st);
        }
        let mark_st = if mark == "*" {
            st.patch(fg(s, Color::Green))
        } else {
            st
        };
        put(buf, r.x, y, mark, 1, mark_st);
        put(buf, r.x + 1, y, &name, name_w, st);
        if bw > 0 {
            let bst = if muted {
                st
            } else if t.mentions > 0 {
                st.patch(fg(s, Color::Red)).add_modifier(Modifier::BOLD)
            } else {
                st.patch(fg(s, Color::Yellow))
            };
            let bx = r.x + u16::try_from(w.saturating_sub(bw)).unwrap_or(0);
            put(buf, bx, y, &badge, bw, bst);
        }
    }
    if s.threads.is_empty() {
        put(
            buf,
            r.x + 1,
            r.y,
            "no conversations",
            w.saturating_sub(1),
            Style::default().add_modifier(Modifier::DIM),
        );
    }
    if req_row {
        let n = s.requests.len();
        let long = format!("+ friend requests ({n})");
        let text = if width(&long, amb) <= w {
            long
        } else {
            format!("+ requests ({n})")
        };
        put(
            buf,
            r.x,
            r.bottom() - 1,
            &text,
            w,
            fg(s, Color::Yellow).add_modifier(Modifier::BOLD),
        );
    }
}
