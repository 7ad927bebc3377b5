//! The title bar (the conversation, or the offline banner) and the status line (hints,
//! notices, reverse search, the connection).

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};

use super::paint::{fg, fill, put};
use crate::app::config::Level;
use crate::app::keymap::Action;
use crate::app::{Conn, Kind, State};
use crate::text::{truncate, width};

/// The offline banner's rows, under the title (which keeps naming the conversation).
pub(super) fn draw_banner(buf: &mut Buffer, s: &State, rows: &[String], r: Rect) {
    let st = match s.conn {
        Conn::Offline { .. } if s.settings.color => {
            Style::default().fg(Color::White).bg(Color::Red)
        }
        _ => Style::default().add_modifier(Modifier::REVERSED),
    };
    let w = usize::from(r.width);
    for (i, row) in rows.iter().enumerate() {
        let y = r.y + u16::try_from(i).unwrap_or(0);
        if y >= r.bottom() {
            break;
        }
        fill(buf, Rect::new(r.x, y, r.width, 1), st);
        put(
            buf,
            r.x + 1,
            y,
            row,
            w.saturating_sub(1),
            st.add_modifier(Modifier::BOLD),
        );
    }
}

pub(super) fn draw_title(buf: &mut Buffer, s: &State, r: Rect) {
    let w = usize::from(r.width);
    let st = Style::default().add_modifier(Modifier::REVERSED);
    fill(buf, r, st);
    let mut left = " confab".to_owned();
    if let Some(t) = s.current() {
        let mut topic = String::new();
        let extra = match t.kind {
            Kind::Group => t
                .group
                .as_ref()
                .map(|g| {
                    let n = match g.member_count {
                        1 => "1 member".to_owned(),
                        n => format!("{n} members"),
                    };
                    let closed = if g.open { "" } else { ", closed" };
                    // The topic goes last: a narrow terminal cuts it first.
                    if !g.description.is_empty() {
                        topic = format!(
                            ": {}",
                            crate::text::sanitize(&g.description).replace('\n', " ")
                        );
                    }
                    format!(" ({n}{closed})")
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
        let level = match s.settings.level(&t.name) {
            Level::All => "",
            Level::Mentions => " [mentions only]",
            Level::None => " [muted]",
        };
        left = format!(" {mark}{}{extra}{level}{topic}", t.name);
    }
    let right = match (&s.conn, &s.me) {
        (Conn::Connecting, _) => "connecting… ".to_owned(),
        (_, Some(me)) => format!("{} ", me.name),
        _ => String::new(),
    };
    let rw = width(&right, s.settings.ambiguous);
    // Cut with an ellipsis, so a cut title says so.
    let left = truncate(&left, w.saturating_sub(rw + 1), s.settings.ambiguous);
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
    // An error said while a message is picked (not yours to edit) shows over the pick's keys.
    let error_shown = s.notice.as_ref().is_some_and(|n| n.1);
    let find = crate::app::find::status(s).or_else(|| {
        s.pick
            .filter(|_| !error_shown)
            .map(|_| crate::app::pick::hint(s))
    });
    let (left, lst) = match (&s.rsearch, &s.notice) {
        _ if find.is_some() => (find.unwrap_or_default(), fg(s, Color::Yellow)),
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
