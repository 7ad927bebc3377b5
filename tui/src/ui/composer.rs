//! The rows under the chat: the separator (who is typing, the search) and the composer.

use ratatui::buffer::Buffer;
use ratatui::style::{Color, Modifier, Style};

use super::paint::{fg, hline, put, rule};
use crate::app::State;
use crate::app::layout::MainLayout;

/// The separator across the screen, labelled with who is typing or the active search.
pub(super) fn draw_separator(buf: &mut Buffer, s: &State, l: &MainLayout, w: u16) {
    let mut label = String::new();
    if let Some(t) = s.current() {
        let names: Vec<&str> = t
            .typing
            .iter()
            .filter(|(_, u)| *u > s.now_ms)
            .map(|(n, _)| n.as_str())
            .collect();
        if s.editing.is_some() {
            label = "editing your message: Enter saves, Esc cancels".to_owned();
        } else if let Some(l) = crate::app::relations::reacting_label(s) {
            label = l;
        } else if let Some(l) = crate::app::relations::replying_label(s) {
            label = l;
        } else if !names.is_empty() {
            label = format!("{} typing…", names.join(", "));
        } else if let Some(q) = &t.search {
            label = format!("filter: {q} (Esc clears)");
        }
    }
    // The draft's size once it nears the server's limit: the limit is in bytes, and a CJK
    // character takes three.
    let bytes = s.composer.text().len();
    let over = bytes > s.max_body_bytes;
    if over || (label.is_empty() && bytes > s.max_body_bytes / 4 * 3) {
        label = format!(
            "{bytes}/{} bytes{}",
            s.max_body_bytes,
            if over { ": too long to send" } else { "" }
        );
    }
    let sep = if label.is_empty() {
        hline(s).repeat(usize::from(w))
    } else {
        rule(s, &label, usize::from(w))
    };
    let style = if over {
        fg(s, Color::Red)
    } else {
        Style::default().add_modifier(Modifier::DIM)
    };
    put(buf, 0, l.sep_y, &sep, usize::from(w), style);
}

/// The composer: its visible rows behind a `> ` prompt, or a hint when it is empty.
pub(super) fn draw_composer(buf: &mut Buffer, s: &State, l: &MainLayout) {
    if s.composer.is_empty() {
        put(buf, 0, l.composer_y, "> ", 2, fg(s, Color::Cyan));
        let hint = match s.current() {
            Some(t) if t.can_send => format!("message {}", t.name),
            Some(t) => format!(
                "{} (/close takes it off the list)",
                t.read_only.as_deref().unwrap_or("read only")
            ),
            None => "type /help".to_owned(),
        };
        put(
            buf,
            2,
            l.composer_y,
            &hint,
            l.composer_w,
            Style::default().add_modifier(Modifier::DIM),
        );
        return;
    }
    let offset = l.composer_top;
    for (i, row) in l
        .composer_rows
        .iter()
        .skip(offset)
        .take(l.composer_h)
        .enumerate()
    {
        let y = l.composer_y + u16::try_from(i).unwrap_or(0);
        let prompt = if i + offset == 0 { "> " } else { "  " };
        put(buf, 0, y, prompt, 2, fg(s, Color::Cyan));
        put(buf, 2, y, row, l.composer_w, Style::default());
    }
}
