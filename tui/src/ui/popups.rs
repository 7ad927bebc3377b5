//! Popups, boxed over the main screen: help, friend requests, add a friend, groups, members,
//! the quick switcher. One function draws each inside the box.

use confab_wire::pb;
use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::Clear;

use super::paint::{bordered, fg, input, put};
use crate::app::{Kind, Popup, State, switcher_matches};
use crate::text::editor::Editor;
use crate::text::{truncate, width};

fn popup_rect(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width.saturating_sub(2)).max(10);
    let h = h.min(area.height.saturating_sub(2)).max(5);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

/// The inside of a popup's box.
#[derive(Clone, Copy)]
struct Inner {
    r: Rect,
}

impl Inner {
    fn x(self) -> u16 {
        self.r.x
    }
    fn w(self) -> usize {
        usize::from(self.r.width)
    }
    fn h(self) -> usize {
        usize::from(self.r.height)
    }
    /// The screen row of line `i`.
    fn row(self, i: usize) -> u16 {
        self.r.y + u16::try_from(i).unwrap_or(0)
    }
    /// The hint on the last line.
    fn hint(self, buf: &mut Buffer, text: &str) {
        put(buf, self.x(), self.row(self.h() - 1), text, self.w(), dim());
    }
}

fn dim() -> Style {
    Style::default().add_modifier(Modifier::DIM)
}

fn rev() -> Style {
    Style::default().add_modifier(Modifier::REVERSED)
}

/// Draws a popup; returns where the cursor goes (popups with an input field).
pub(super) fn draw_popup(f: &mut Frame, s: &State, p: &Popup) -> Option<Position> {
    let (title, w, h) = match p {
        Popup::Help { .. } => (
            " Help (Esc closes) ",
            crate::app::help::BOX.0,
            crate::app::help::BOX.1,
        ),
        Popup::Requests { .. } => (" Friend requests ", 50, 12),
        Popup::AddFriend { .. } => (" Add a friend ", 50, 14),
        Popup::Group { .. } => (" Groups ", 50, 8),
        Popup::Members { .. } => (" Members ", 50, 16),
        Popup::Switcher { .. } => (" Go to (Ctrl-K) ", 50, 14),
        Popup::Password { .. } => (" Change your password ", 50, 10),
        Popup::Devices { .. } => (" Your sessions ", 70, 14),
        Popup::DeleteAccount { .. } => (" Delete your account ", 56, 11),
        Popup::Search { .. } => (" Search every conversation (F6) ", 76, 20),
    };
    let r = popup_rect(f.area(), w, h);
    f.render_widget(Clear, r);
    let block = bordered(s, title);
    let inner = Inner { r: block.inner(r) };
    f.render_widget(block, r);
    let buf = f.buffer_mut();
    match p {
        Popup::Help { scroll } => help(buf, s, inner, *scroll),
        Popup::Requests { sel } => requests(buf, s, inner, *sel),
        Popup::AddFriend {
            query,
            results,
            sel,
            searched,
        } => add_friend(buf, s, inner, query, results, *sel, searched),
        Popup::Group { name, join } => group(buf, s, inner, name, *join),
        Popup::Members { members, sel, .. } => self::members(buf, s, inner, members, *sel),
        Popup::Switcher { query, sel } => switcher(buf, s, inner, query, *sel),
        Popup::Password {
            old,
            new,
            again,
            field,
        } => password(buf, s, inner, [old, new, again], *field),
        Popup::Devices { devices, sel } => self::devices(buf, s, inner, devices, *sel),
        Popup::DeleteAccount { password } => delete_account(buf, s, inner, password),
        Popup::Search {
            query,
            hits,
            sel,
            searched,
            more,
            loading,
            error,
        } => search(
            buf,
            s,
            inner,
            query,
            hits,
            *sel,
            searched,
            (*more, *loading, error.as_deref()),
        ),
    }
}

/// The query, then two rows a hit (where, who and when; the text with the matches
/// highlighted, from a little before the first one), the selected one reversed.
#[allow(clippy::too_many_arguments)]
fn search(
    buf: &mut Buffer,
    s: &State,
    b: Inner,
    query: &Editor,
    hits: &[pb::SearchHit],
    sel: usize,
    searched: &str,
    (more, loading, error): (bool, bool, Option<&str>),
) -> Option<Position> {
    let cx = query_line(buf, s, b, query);
    let rows = b.h().saturating_sub(3) / 2;
    if hits.is_empty() {
        let (note, st) = match error {
            Some(e) => (e.to_owned(), fg(s, Color::Red)),
            None if searched.is_empty() => (
                "Type words, prefix*, \"a phrase\"; Enter searches.".to_owned(),
                dim(),
            ),
            None if loading => ("Searching…".to_owned(), dim()),
            None if !searched.chars().any(char::is_alphanumeric) => {
                ("No words to search for in that.".to_owned(), dim())
            }
            None => ("Nothing found.".to_owned(), dim()),
        };
        put(buf, b.x() + 1, b.row(2), &note, b.w().saturating_sub(1), st);
    }
    // The window of hits that keeps the selection in view.
    let first = sel.saturating_sub(rows.saturating_sub(1));
    for (i, h) in hits.iter().enumerate().skip(first).take(rows) {
        let Some(m) = &h.message else { continue };
        let y = b.row(2 + (i - first) * 2);
        let base = if i == sel { rev() } else { Style::default() };
        let (place, group) = s.thread(m.thread_id).map_or_else(
            || (format!("#{}", m.thread_id), false),
            |t| (t.name.clone(), t.kind == Kind::Group),
        );
        let who = m
            .sender
            .as_ref()
            .map_or(String::new(), |u| crate::text::user_name(&u.name));
        let (_, at) =
            crate::text::clock::day_time(m.server_ts_ms, s.settings.zone.offset_s(m.server_ts_ms));
        // A friend's own message in your conversation with them: the name once.
        let head = match (group, who == place) {
            (true, _) => format!("#{place} · {who} · {at}"),
            (false, true) => format!("{place} · {at}"),
            (false, false) => format!("{place} · {who} · {at}"),
        };
        put(
            buf,
            b.x() + 1,
            y,
            &head,
            b.w().saturating_sub(1),
            base.add_modifier(Modifier::DIM),
        );
        search_text(buf, s, b, y + 1, m, &h.spans, base);
    }
    let hint = if more {
        "Enter search / show  Up/Down pick (Down past the last: older)  Esc close"
    } else {
        "Enter search / show  Up/Down pick  Esc close"
    };
    b.hint(buf, hint);
    Some(Position::new(cx, b.row(0)))
}

/// A hit's text on one row, the matches bold: from a few characters before the first match
/// when the start would push it out of sight.
fn search_text(
    buf: &mut Buffer,
    s: &State,
    b: Inner,
    y: u16,
    m: &pb::ChatMessage,
    spans: &[pb::TextSpan],
    base: Style,
) {
    let amb = s.settings.ambiguous;
    let body = &m.body;
    let room = b.w().saturating_sub(2);
    let first = spans.first().map_or(0, |sp| sp.start as usize);
    let mut from = 0;
    if first <= body.len() && body.is_char_boundary(first) && width(&body[..first], amb) + 8 > room
    {
        // Start 10 characters before the first match, with an ellipsis.
        from = body[..first]
            .char_indices()
            .rev()
            .nth(9)
            .map_or(0, |(i, _)| i);
    }
    let mut x = b.x() + 2;
    if from > 0 {
        x = put(buf, x, y, "…", 1, base);
    }
    let end = b.x() + u16::try_from(b.w()).unwrap_or(0);
    let mut at = from;
    let mut pieces: Vec<(&str, bool)> = Vec::new();
    for sp in spans {
        let (st, en) = (sp.start as usize, sp.end as usize);
        if st < at || en > body.len() || !body.is_char_boundary(st) || !body.is_char_boundary(en) {
            continue;
        }
        pieces.push((&body[at..st], false));
        pieces.push((&body[st..en], true));
        at = en;
    }
    pieces.push((&body[at..], false));
    for (text, hit) in pieces {
        if x >= end {
            break;
        }
        let text = text.replace(['\n', '\r', '\t'], " ");
        let st = if hit {
            base.add_modifier(Modifier::BOLD).fg(Color::Yellow)
        } else {
            base
        };
        let left = usize::from(end - x);
        let shown = truncate(&text, left, amb);
        x = put(buf, x, y, &shown, left, st);
    }
}

/// What deleting does, and the password that confirms it.
fn delete_account(buf: &mut Buffer, s: &State, b: Inner, password: &Editor) -> Option<Position> {
    let lines = [
        "This cannot be undone. Every session ends, you leave",
        "every group and your friends. Your messages stay,",
        "shown as a deleted account's; your name is held for",
        "a while, then free for anyone.",
    ];
    for (i, l) in lines.iter().enumerate() {
        put(buf, b.x() + 1, b.row(i), l, b.w(), Style::default());
    }
    let y = b.row(lines.len() + 1);
    put(
        buf,
        b.x() + 1,
        y,
        "password",
        9,
        Style::default().add_modifier(Modifier::BOLD),
    );
    let cx = input(
        buf,
        b.x() + 11,
        y,
        b.w().saturating_sub(12),
        password,
        true,
        s.settings.ambiguous,
    );
    b.hint(buf, "Enter delete for good  Esc keep my account");
    Some(Position::new(cx, y))
}

fn help(buf: &mut Buffer, s: &State, b: Inner, scroll: usize) -> Option<Position> {
    let lines = crate::app::help::lines(s, b.w());
    let rows = crate::app::help::view_rows(s.size, lines.len()).min(b.h());
    let sc = scroll.min(lines.len().saturating_sub(rows));
    for (i, l) in lines.iter().skip(sc).take(rows).enumerate() {
        put(buf, b.x(), b.row(i), l, b.w(), Style::default());
    }
    if rows < lines.len() {
        let last = (sc + rows).min(lines.len());
        let more = if last < lines.len() {
            "PgDn more"
        } else {
            "end, PgUp back"
        };
        b.hint(
            buf,
            &format!("{}-{last} of {}  {more}", sc + 1, lines.len()),
        );
    }
    None
}

/// Requests to me (with their notes), then mine waiting for an answer.
fn requests(buf: &mut Buffer, s: &State, b: Inner, sel: usize) -> Option<Position> {
    let amb = s.settings.ambiguous;
    if s.requests.is_empty() && s.outgoing.is_empty() {
        put(
            buf,
            b.x() + 1,
            b.row(0),
            "No pending requests.",
            b.w(),
            dim(),
        );
    }
    let mut rows: Vec<(String, bool)> = s
        .requests
        .iter()
        .map(|r| {
            let name = r.from.as_ref().map_or("?", |u| u.name.as_str());
            let note = if r.note.is_empty() {
                String::new()
            } else {
                format!(": {}", r.note)
            };
            (format!(" {name}{note}"), false)
        })
        .collect();
    rows.extend(s.outgoing.iter().map(|r| {
        let name = r.to.as_ref().map_or("?", |u| u.name.as_str());
        (format!(" sent to {name}, waiting"), true)
    }));
    let room = b.h().saturating_sub(2);
    let first = (sel + 1).saturating_sub(room);
    for (i, (text, mine)) in rows.iter().enumerate().skip(first).take(room) {
        let st = if i == sel {
            rev()
        } else if *mine {
            dim()
        } else {
            Style::default()
        };
        put(
            buf,
            b.x(),
            b.row(i - first),
            &truncate(text, b.w(), amb),
            b.w(),
            st,
        );
    }
    let hint = if sel >= s.requests.len() && !s.outgoing.is_empty() {
        "c take back  Esc close"
    } else {
        "a/Enter accept  d decline  Esc close"
    };
    b.hint(buf, hint);
    None
}

/// Each session: its name, client and address, when it was last seen, and which is this one.
fn devices(
    buf: &mut Buffer,
    s: &State,
    b: Inner,
    devices: &[pb::Device],
    sel: usize,
) -> Option<Position> {
    let amb = s.settings.ambiguous;
    if devices.is_empty() {
        put(buf, b.x() + 1, b.row(0), "loading…", b.w(), dim());
    }
    let rows = b.h().saturating_sub(2);
    let first = (sel + 1).saturating_sub(rows);
    for (i, d) in devices.iter().enumerate().skip(first).take(rows) {
        let offset = s.settings.zone.offset_s(d.last_seen_ms);
        let (day, time) = crate::text::clock::day_time(d.last_seen_ms, offset);
        let seen = format!("{} {time}", crate::text::clock::day_label(day));
        let this = if d.current { " (this one)" } else { "" };
        // The client after the name, unless the name says it already.
        let client = if d.name.is_empty() || d.client.is_empty() || d.client == d.name {
            String::new()
        } else {
            format!(" {}", crate::app::sanitize(&d.client))
        };
        // What matters most first: a narrow popup cuts the end.
        let text = format!(
            " {}{this}{client}  {}  {seen}",
            crate::app::sanitize(&crate::app::device_label(d)),
            d.address
        );
        let st = if i == sel { rev() } else { Style::default() };
        put(
            buf,
            b.x(),
            b.row(i - first),
            &truncate(&text, b.w(), amb),
            b.w(),
            st,
        );
    }
    b.hint(buf, "x x sign out  Esc close");
    None
}

fn password(
    buf: &mut Buffer,
    s: &State,
    b: Inner,
    fields: [&Editor; 3],
    field: usize,
) -> Option<Position> {
    let amb = s.settings.ambiguous;
    let labels = ["current", "new", "again"];
    let mut cursor = None;
    for (i, (label, e)) in labels.iter().zip(fields).enumerate() {
        let y = b.row(i * 2);
        let st = if i == field {
            Style::default().add_modifier(Modifier::BOLD)
        } else {
            Style::default()
        };
        put(buf, b.x() + 1, y, label, 8, st);
        let cx = input(buf, b.x() + 10, y, b.w().saturating_sub(11), e, true, amb);
        if i == field {
            cursor = Some(Position::new(cx, y));
        }
    }
    b.hint(buf, "Tab next  Enter change  Esc cancel");
    cursor
}

fn add_friend(
    buf: &mut Buffer,
    s: &State,
    b: Inner,
    query: &Editor,
    results: &[pb::Profile],
    sel: usize,
    searched: &str,
) -> Option<Position> {
    let amb = s.settings.ambiguous;
    put(buf, b.x(), b.row(0), "name:", 6, Style::default());
    let cx = input(
        buf,
        b.x() + 6,
        b.row(0),
        b.w().saturating_sub(6),
        query,
        false,
        amb,
    );
    for (i, p) in results.iter().enumerate().take(b.h().saturating_sub(3)) {
        let name = p.user.as_ref().map_or("?", |u| u.name.as_str());
        let st = if i == sel { rev() } else { Style::default() };
        put(buf, b.x(), b.row(i + 2), &format!(" {name}"), b.w(), st);
    }
    if results.is_empty() && !searched.is_empty() {
        put(buf, b.x() + 1, b.row(2), "no match", b.w(), dim());
    }
    b.hint(buf, "Enter search, then Enter adds  Esc close");
    Some(Position::new(cx, b.row(0)))
}

fn group(buf: &mut Buffer, s: &State, b: Inner, name: &Editor, join: bool) -> Option<Position> {
    let (x, y) = if join {
        ("  create ", "[join]")
    } else {
        ("[create]", "  join ")
    };
    let tabs = format!("{x} {y}   (Tab switches)");
    put(buf, b.x(), b.row(0), &tabs, b.w(), Style::default());
    put(buf, b.x(), b.row(2), "name:", 6, Style::default());
    let cx = input(
        buf,
        b.x() + 6,
        b.row(2),
        b.w().saturating_sub(6),
        name,
        false,
        s.settings.ambiguous,
    );
    b.hint(buf, "Enter confirm  Esc close");
    Some(Position::new(cx, b.row(2)))
}

fn members(
    buf: &mut Buffer,
    s: &State,
    b: Inner,
    members: &[pb::GroupMember],
    sel: usize,
) -> Option<Position> {
    let amb = s.settings.ambiguous;
    let iw = b.w();
    if members.is_empty() {
        put(buf, b.x() + 1, b.row(0), "loading…", iw, dim());
    }
    let rows = b.h().saturating_sub(2);
    let first = (sel + 1).saturating_sub(rows);
    for (i, m) in members.iter().enumerate().skip(first).take(rows) {
        let name = m.user.as_ref().map_or("?", |u| u.name.as_str());
        let role = match pb::Role::try_from(m.role) {
            Ok(pb::Role::Owner) => "owner",
            Ok(pb::Role::Admin) => "admin",
            _ => "",
        };
        let on = if m.online { "*" } else { " " };
        let st = if i == sel { rev() } else { Style::default() };
        let nw = iw.saturating_sub(9);
        let text = format!("{on}{}", truncate(name, nw, amb));
        let pad = nw + 1 - width(&text, amb).min(nw + 1);
        let line = format!("{text}{} {role}", " ".repeat(pad));
        put(buf, b.x(), b.row(i - first), &line, iw, st);
    }
    // Kick and promote are offered to the owner and admins (the server decides anyway).
    let my_role = s
        .current()
        .and_then(|t| t.group.as_ref())
        .map_or(0, |g| g.my_role);
    b.hint(
        buf,
        if my_role >= pb::Role::Admin as i32 {
            "x x remove  p admin on/off  b block  Esc close"
        } else {
            "b block  Esc close"
        },
    );
    None
}

/// A popup's first row: `> ` and the query being typed; returns the caret's x.
fn query_line(buf: &mut Buffer, s: &State, b: Inner, query: &Editor) -> u16 {
    put(buf, b.x(), b.row(0), "> ", 2, fg(s, Color::Cyan));
    input(
        buf,
        b.x() + 2,
        b.row(0),
        b.w().saturating_sub(2),
        query,
        false,
        s.settings.ambiguous,
    )
}

fn switcher(buf: &mut Buffer, s: &State, b: Inner, query: &Editor, sel: usize) -> Option<Position> {
    let cx = query_line(buf, s, b, query);
    let m = switcher_matches(s, query.text());
    let sel = sel.min(m.len().saturating_sub(1));
    for (i, id) in m.iter().enumerate().take(b.h().saturating_sub(1)) {
        if let Some(t) = s.thread(*id) {
            let st = if i == sel { rev() } else { Style::default() };
            let mark = if t.kind == Kind::Group { "#" } else { " " };
            let badge = if t.unread > 0 {
                format!("  {}", t.unread)
            } else {
                String::new()
            };
            let line = format!("{mark}{}{badge}", t.name);
            put(buf, b.x(), b.row(i + 1), &line, b.w(), st);
        }
    }
    Some(Position::new(cx, b.row(0)))
}
