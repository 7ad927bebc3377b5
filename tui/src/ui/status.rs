//! The title bar (the conversation, or the offline banner) and the status line (hints,
//! notices, reverse search, the connection).

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};

use super::paint::{fg, fill, put};
use crate::app::keymap::Action;
use crate::app::{Conn, Kind, State};
use crate::text::{truncate, width};

pub(super) fn draw_title(buf: &mut Buffer, s: &State, r: Rect) {
    let w = usize::from(r.width);
    match &s.conn {
        Conn::Offline {
            retry_at_ms,
            reason,
        } => {
            let secs = (retry_at_ms - s.now_ms).max(0).div_euclid(1000)
                + i64::from((retry_at_ms - s.now_ms).rem_euclid(1000) > 0);
            // The countdown first: on a narrow terminal the reason is what gets cut.
            let text = format!(" OFFLINE, reconnecting in {secs}s (/reconnect now): {reason}");
            let st = if s.settings.color {
                Style::default().fg(Color::White).bg(Color::Red)
            } else {
                Style::default().add_modifier(Modifier::REVERSED)
            };
            fill(buf, r, st);
            put(buf, r.x, r.y, &text, w, st.add_modifier(Modifier::BOLD));
            return;
        }
        Conn::Stopped(_, reason) if s.me.is_some() => {
            let text = format!(" DISCONNECTED: {reason} (/reconnect)");
            let st = Style::default().add_modifier(Modifier::REVERSED);
            fill(buf, r, st);
            put(buf, r.x, r.y, &text, w, st);
            return;
        }
        _ => {}
    }
    let st = Style::default().add_modifier(Modifier::REVERSED);
    fill(buf, r, st);
    let mut left = " confab".to_owned();
    if let Some(t) = s.current() {
        let extra = match t.kind {
            Kind::Group => t
                .group
                .as_ref()
                .map(|g| match g.member_count {
                    1 => " (1 member)".to_owned(),
                    n => format!(" ({n} members)"),
                })
                .unwrap_or_default(),
            Kind::Private => {
                if s.presence.get(&t.peer_id).copied().unwrap_or(false) {
                    " (online)".into()
                } else {
                    String::new()
                }
            }
        };
        let mark = if t.kind == Kind::Group { "#" } else { "" };
        left = format!(" {mark}{}{extra}", t.name);
    }
    let right = match (&s.conn, &s.me) {
        (Conn::Connecting, _) => "connecting… ".to_owned(),
        (_, Some(me)) => format!("{} ", me.name),
        _ => String::new(),
    };
    let rw = width(&right, s.settings.ambiguous);
    put(
        buf,
        r.x,
        r.y,
        &left,
        w.saturating_sub(rw + 1),
        st.add_modifier(Modifier::BOLD),
    );
    let rx = r.x + u16::try_from(w.saturating_sub(rw)).unwrap_or(0);
    put(buf, rx, r.y, &right, rw, st);
}

pub(super) fn draw_status(buf: &mut Buffer, s: &State, r: Rect) {
    let w = usize::from(r.width);
    let km = &s.settings.keymap;
    let (right, rst) = match &s.conn {
        Conn::Online => ("online", fg(s, Color::Green)),
        Conn::Connecting => ("connecting", fg(s, Color::Yellow)),
        Conn::Offline { .. } => ("offline", fg(s, Color::Red)),
        Conn::Stopped(..) => ("stopped", fg(s, Color::Red)),
    };
    let rw = right.len() + 1;
    let waiting = crate::app::busy::waiting(s);
    let (left, lst) = match (&s.rsearch, &s.notice) {
        (None, None) if s.normal_mode => (
            "-- NORMAL --  i insert  j/k scroll  g/G top/bottom  J/K conversations  : command"
                .to_owned(),
            fg(s, Color::Yellow).add_modifier(Modifier::BOLD),
        ),
        (Some((q, found, _)), _) => (
            format!(
                "reverse search: {q}{}  (Ctrl-R older, Esc cancel)",
                if found.is_none() && !q.is_empty() {
                    " (no match)"
                } else {
                    ""
                }
            ),
            fg(s, Color::Yellow),
        ),
        (None, notice) => match notice {
            Some((n, true, _)) => (n.clone(), fg(s, Color::Red)),
            Some((n, false, _)) => (n.clone(), Style::default()),
            None if waiting.is_some() => (waiting.unwrap_or_default(), fg(s, Color::Yellow)),
            None => (
                format!(
                    "{} send  {} newline  {} switch  {} help",
                    km.first(Action::Send),
                    km.first(Action::Newline),
                    km.first(Action::Switcher),
                    km.first(Action::Help)
                ),
                Style::default().add_modifier(Modifier::DIM),
            ),
        },
    };
    let left = left.replace('\n', " ");
    put(
        buf,
        r.x,
        r.y,
        &truncate(&left, w.saturating_sub(rw + 1), s.settings.ambiguous),
        w,
        lst,
    );
    put(
        buf,
        r.x + u16::try_from(w - rw).unwrap_or(0),
        r.y,
        right,
        rw,
        rst,
    );
}
