//! The trust-on-first-use prompt: a server whose certificate no trusted authority signed.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::{Clear, Widget};

use super::paint::{bordered, fg, put};
use crate::app::State;
use crate::app::state::TrustAsk;

/// Draws the prompt over whatever screen is showing.
pub(super) fn draw_trust(f: &mut Frame, s: &State, ask: &TrustAsk) {
    let area = f.area();
    let w = area.width.min(64);
    let h = 11.min(area.height);
    let r = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    Clear.render(r, f.buffer_mut());
    let block = bordered(s, " unknown server ");
    let inner = block.inner(r);
    block.render(r, f.buffer_mut());
    let fp = ask.fingerprint.to_string();
    let lines: [(&str, Style); 8] = [
        (&ask.server, Style::default().add_modifier(Modifier::BOLD)),
        (
            "presented a certificate no trusted authority signed.",
            Style::default(),
        ),
        ("", Style::default()),
        ("Its fingerprint:", Style::default()),
        (&fp, fg(s, Color::Yellow).add_modifier(Modifier::BOLD)),
        (
            "Compare it with `confab-server fingerprint` there.",
            Style::default(),
        ),
        ("", Style::default()),
        ("Trust it and remember it?  y yes   n no", Style::default()),
    ];
    let buf = f.buffer_mut();
    let width = usize::from(inner.width.saturating_sub(2));
    for (i, (text, st)) in lines.iter().enumerate() {
        let y = inner.y + u16::try_from(i).unwrap_or(0);
        if y >= inner.y + inner.height {
            break;
        }
        put(buf, inner.x + 1, y, text, width, *st);
    }
}
