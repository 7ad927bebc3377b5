//! The login and registration form.

use ratatui::Frame;
use ratatui::layout::{Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::Widget;

use super::paint::{bordered, fg, input, put};
use crate::app::{LoginForm, State};
use crate::text::wrap;

/// Draws the form centred on the screen, the caret in the active field.
pub(super) fn draw_login(f: &mut Frame, s: &State, form: &LoginForm) {
    let area = f.area();
    let w = area.width.min(60);
    let amb = s.settings.ambiguous;
    // An error may need several rows (a changed certificate names both fingerprints): the
    // form grows for it.
    let errors = match (&form.error, form.busy) {
        (Some(e), false) => wrap(e, usize::from(w).saturating_sub(3), amb),
        _ => Vec::new(),
    };
    let extra = u16::try_from(errors.len().saturating_sub(1)).unwrap_or(0);
    // Registration asks for the password twice and for an invitation: two more rows.
    let reg = 2 * u16::from(form.register);
    let h = (12 + extra + reg).min(area.height);
    let r = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    let title = if form.register {
        " confab: create an account "
    } else {
        " confab: log in "
    };
    let block = bordered(s, title);
    let inner = block.inner(r);
    block.render(r, f.buffer_mut());
    let labels = ["server", "name", "password", "again", "invite"];
    let fw = usize::from(inner.width).saturating_sub(11);
    let mut cursor = None;
    for (i, label) in labels.iter().enumerate().take(form.fields()) {
        // The second password and the invitation sit right under the first password.
        let y = inner.y + 1 + u16::try_from(i.min(2) * 2 + i.saturating_sub(2)).unwrap_or(0);
        let active = form.field == i;
        let st = if active {
            Style::default().add_modifier(Modifier::BOLD)
        } else {
            Style::default()
        };
        let buf = f.buffer_mut();
        put(buf, inner.x + 1, y, label, 9, st);
        let ed = match i {
            0 => &form.server,
            1 => &form.name,
            2 => &form.password,
            3 => &form.confirm,
            _ => &form.invite,
        };
        let cx = input(buf, inner.x + 11, y, fw, ed, (2..4).contains(&i), amb);
        if i == 4 && !active && ed.text().is_empty() {
            let hint = "only if the server asks for one";
            put(
                buf,
                inner.x + 11,
                y,
                hint,
                fw,
                Style::default().add_modifier(Modifier::DIM),
            );
        }
        if active {
            cursor = Some(Position::new(cx, y));
        }
    }
    let buf = f.buffer_mut();
    let full = usize::from(inner.width) - 1;
    // Whether the password will cross the network encrypted: known once connected,
    // otherwise what the address says.
    let tls = s.encrypted.unwrap_or_else(|| {
        form.server
            .text()
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("tls://")
    });
    let (note, st) = if tls {
        ("TLS: encrypted", fg(s, Color::Green))
    } else {
        (
            "not encrypted (plain text; tls:// encrypts)",
            fg(s, Color::Yellow),
        )
    };
    put(
        buf,
        inner.x + 11,
        inner.y + 6 + reg,
        note,
        fw,
        st.add_modifier(Modifier::DIM),
    );
    let y = inner.y + 7 + reg;
    if form.busy {
        put(
            buf,
            inner.x + 1,
            y,
            "connecting… (Esc cancels)",
            usize::from(inner.width) - 1,
            fg(s, Color::Yellow),
        );
    } else if !errors.is_empty() {
        for (i, line) in errors.iter().enumerate() {
            let row = y + u16::try_from(i).unwrap_or(0);
            if row + 2 >= inner.y + inner.height {
                break;
            }
            put(buf, inner.x + 1, row, line, full, fg(s, Color::Red));
        }
    } else if let Some((n, _, _)) = &s.notice {
        put(
            buf,
            inner.x + 1,
            y,
            n,
            usize::from(inner.width) - 1,
            Style::default(),
        );
    }
    let other = if form.register { "log in" } else { "register" };
    let hint = format!("Tab next  Enter submit  Ctrl-T {other}  Ctrl-C quit");
    put(
        buf,
        inner.x + 1,
        (inner.y + 9 + extra + reg).min(inner.y + inner.height.saturating_sub(1)),
        &hint,
        usize::from(inner.width) - 1,
        Style::default().add_modifier(Modifier::DIM),
    );
    if let Some(p) = cursor
        && !form.busy
    {
        f.set_cursor_position(p);
    }
}
