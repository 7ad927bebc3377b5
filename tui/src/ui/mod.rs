//! Drawing: pure functions from `&State` to a ratatui frame. No borders around the main panes
//! (they cost two columns and two rows at 80x24); popups are boxed. The real terminal cursor is
//! placed at the composer's caret so IME candidate windows appear there.

pub mod chat;

use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Clear, Widget};
use unicode_segmentation::UnicodeSegmentation;

use crate::app::keymap::Action;
use crate::app::{Conn, Kind, LoginForm, Popup, Screen, State, switcher_matches};
use crate::text::editor::Editor;
use crate::text::{Ambiguous, cluster_width, truncate, width};

/// Smallest usable terminal.
pub const MIN_W: u16 = 40;
pub const MIN_H: u16 = 10;
/// The composer grows up to this many rows.
pub const COMPOSER_MAX: usize = 5;

/// Width of the thread list at a terminal width (0: hidden).
pub fn list_width(w: u16) -> u16 {
    match w {
        120.. => 24,
        80.. => 18,
        60.. => 14,
        _ => 0,
    }
}

/// Width of the chat pane.
pub fn chat_width(w: u16) -> usize {
    let l = list_width(w);
    usize::from(w.saturating_sub(l + u16::from(l > 0)))
}

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
fn bordered<'a>(s: &State, title: &'a str) -> Block<'a> {
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

fn vline(s: &State) -> &'static str {
    if s.settings.ambiguous == Ambiguous::Wide {
        "|"
    } else {
        "│"
    }
}

fn hline(s: &State) -> &'static str {
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

fn put(buf: &mut Buffer, x: u16, y: u16, text: &str, max: usize, style: Style) -> u16 {
    let area = buf.area;
    if y >= area.bottom() || x >= area.right() {
        return x;
    }
    let max = max.min(usize::from(area.right() - x));
    buf.set_stringn(x, y, text, max, style).0
}

fn fill(buf: &mut Buffer, r: Rect, style: Style) {
    for y in r.top()..r.bottom() {
        for x in r.left()..r.right() {
            if let Some(c) = buf.cell_mut((x, y)) {
                c.set_symbol(" ");
                c.set_style(style);
            }
        }
    }
}

/// Draws the whole screen.
pub fn draw(f: &mut Frame, s: &State) {
    let area = f.area();
    if area.width < MIN_W || area.height < MIN_H {
        let msg = format!("terminal too small: {}x{}", area.width, area.height);
        let need = format!("need {MIN_W}x{MIN_H}");
        let buf = f.buffer_mut();
        put(buf, 0, 0, &msg, usize::from(area.width), Style::default());
        put(buf, 0, 1, &need, usize::from(area.width), Style::default());
        return;
    }
    match &s.screen {
        Screen::Login(form) => draw_login(f, s, form),
        Screen::Main => draw_main(f, s),
    }
}

/// Draws a single-line input; returns the caret's x. Scrolls horizontally to keep the caret
/// visible; `mask` shows one `*` per cluster (passwords).
fn input(
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

fn draw_login(f: &mut Frame, s: &State, form: &LoginForm) {
    let area = f.area();
    let w = area.width.min(60);
    let h = 12.min(area.height);
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
    let amb = s.settings.ambiguous;
    let labels = ["server", "name", "password"];
    let fw = usize::from(inner.width).saturating_sub(11);
    let mut cursor = None;
    for (i, label) in labels.iter().enumerate() {
        let y = inner.y + 1 + u16::try_from(i).unwrap_or(0) * 2;
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
            _ => &form.password,
        };
        let cx = input(buf, inner.x + 11, y, fw, ed, i == 2, amb);
        if active {
            cursor = Some(Position::new(cx, y));
        }
    }
    let buf = f.buffer_mut();
    let y = inner.y + 7;
    if form.busy {
        put(
            buf,
            inner.x + 1,
            y,
            "connecting… (Esc cancels)",
            usize::from(inner.width) - 1,
            fg(s, Color::Yellow),
        );
    } else if let Some(e) = &form.error {
        put(
            buf,
            inner.x + 1,
            y,
            e,
            usize::from(inner.width) - 1,
            fg(s, Color::Red),
        );
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
        inner.y + 9,
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

/// Visual rows of the composer text wrapped by cluster at `w` cells (the same rule as
/// `Editor::caret`, so the caret maps exactly).
pub fn composer_rows(text: &str, w: usize, amb: Ambiguous) -> Vec<String> {
    let w = w.max(2);
    let mut rows = vec![String::new()];
    let mut col = 0;
    for g in text.graphemes(true) {
        if g == "\n" || g == "\r\n" {
            rows.push(String::new());
            col = 0;
            continue;
        }
        let cw = cluster_width(g, amb);
        if col + cw > w {
            rows.push(String::new());
            col = 0;
        }
        if let Some(r) = rows.last_mut() {
            r.push_str(g);
        }
        col += cw;
    }
    rows
}

fn draw_main(f: &mut Frame, s: &State) {
    let area = f.area();
    let amb = s.settings.ambiguous;
    let (w, h) = (area.width, area.height);
    let text_w = usize::from(w).saturating_sub(2);
    let rows = composer_rows(s.composer.text(), text_w, amb);
    let (crow, ccol) = s.composer.caret(text_w, amb);
    let max_rows = COMPOSER_MAX.min(usize::from(h) / 4).max(1);
    let comp_h = rows.len().max(crow + 1).clamp(1, max_rows);
    let comp_h16 = u16::try_from(comp_h).unwrap_or(1);
    let body_top = 1;
    let body_h = h.saturating_sub(3 + comp_h16);
    let sep_y = body_top + body_h;
    let comp_y = sep_y + 1;
    let status_y = h - 1;

    draw_title(f.buffer_mut(), s, Rect::new(0, 0, w, 1));
    let lw = list_width(w);
    if lw > 0 {
        draw_list(f.buffer_mut(), s, Rect::new(0, body_top, lw, body_h));
        for y in body_top..body_top + body_h {
            put(
                f.buffer_mut(),
                lw,
                y,
                vline(s),
                1,
                Style::default().add_modifier(Modifier::DIM),
            );
        }
    }
    let cx = if lw > 0 { lw + 1 } else { 0 };
    let chat = Rect::new(cx, body_top, w - cx, body_h);
    draw_chat(f.buffer_mut(), s, chat);

    // Separator, with who is typing.
    let mut label = String::new();
    if let Some(t) = s.current() {
        let names: Vec<&str> = t
            .typing
            .iter()
            .filter(|(_, u)| *u > s.now_ms)
            .map(|(n, _)| n.as_str())
            .collect();
        if !names.is_empty() {
            label = format!("{} typing…", names.join(", "));
        } else if let Some(q) = &t.search {
            label = format!("search: {q} (Esc clears)");
        }
    }
    let sep = if label.is_empty() {
        hline(s).repeat(usize::from(w))
    } else {
        rule(s, &label, usize::from(w))
    };
    put(
        f.buffer_mut(),
        0,
        sep_y,
        &sep,
        usize::from(w),
        Style::default().add_modifier(Modifier::DIM),
    );

    // Composer.
    let offset = (crow + 1).saturating_sub(comp_h);
    let buf = f.buffer_mut();
    if s.composer.is_empty() {
        put(buf, 0, comp_y, "> ", 2, fg(s, Color::Cyan));
        let hint = match s.current() {
            Some(t) if t.can_send => format!("message {}", t.name),
            Some(_) => "read only".to_owned(),
            None => "type /help".to_owned(),
        };
        put(
            buf,
            2,
            comp_y,
            &hint,
            text_w,
            Style::default().add_modifier(Modifier::DIM),
        );
    } else {
        for (i, row) in rows.iter().skip(offset).take(comp_h).enumerate() {
            let y = comp_y + u16::try_from(i).unwrap_or(0);
            let prompt = if i + offset == 0 { "> " } else { "  " };
            put(buf, 0, y, prompt, 2, fg(s, Color::Cyan));
            put(buf, 2, y, row, text_w, Style::default());
        }
    }
    draw_status(f.buffer_mut(), s, Rect::new(0, status_y, w, 1));

    match &s.popup {
        Some(p) => {
            if let Some(pos) = draw_popup(f, s, p) {
                f.set_cursor_position(pos);
            }
        }
        None => {
            let y = comp_y + u16::try_from(crow - offset).unwrap_or(0);
            let x = 2 + u16::try_from(ccol).unwrap_or(0);
            f.set_cursor_position(Position::new(x.min(w - 1), y));
        }
    }
}

fn draw_title(buf: &mut Buffer, s: &State, r: Rect) {
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
        Conn::Stopped(reason) if s.me.is_some() => {
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

fn draw_list(buf: &mut Buffer, s: &State, r: Rect) {
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
        let badge = if t.mentions > 0 {
            format!("@{}", t.mentions)
        } else if t.unread > 0 {
            t.unread.to_string()
        } else {
            String::new()
        };
        let bw = width(&badge, amb);
        let name_w = w.saturating_sub(2 + bw + usize::from(bw > 0));
        let name = truncate(&t.name, name_w, amb);
        let mut st = if t.unread > 0 {
            Style::default().add_modifier(Modifier::BOLD)
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
            let bst = if t.mentions > 0 {
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

fn draw_chat(buf: &mut Buffer, s: &State, r: Rect) {
    let h = usize::from(r.height);
    let w = usize::from(r.width);
    let dim = Style::default().add_modifier(Modifier::DIM);
    let Some(t) = s.current() else {
        let help = [
            "No conversation yet.".to_owned(),
            String::new(),
            format!(
                "{}  add a friend (or /add NAME)",
                s.settings.keymap.first(Action::AddFriend)
            ),
            format!(
                "{}  create or join a group",
                s.settings.keymap.first(Action::Group)
            ),
            format!(
                "{}  friend requests",
                s.settings.keymap.first(Action::Requests)
            ),
            format!("{}  all keys", s.settings.keymap.first(Action::Help)),
        ];
        for (i, l) in help.iter().enumerate().take(h) {
            put(
                buf,
                r.x + 2,
                r.y + 1 + u16::try_from(i).unwrap_or(0),
                l,
                w.saturating_sub(2),
                dim,
            );
        }
        return;
    };
    let (lines, complete) = chat::window(s, t, w, h + t.scroll);
    if lines.is_empty() {
        let msg = if t.loading {
            "loading…"
        } else {
            "No messages yet. Say hello!"
        };
        put(buf, r.x + 2, r.y + 1, msg, w.saturating_sub(2), dim);
        return;
    }
    let total = lines.len();
    let scroll = t.scroll.min(total.saturating_sub(h));
    let end = total - scroll;
    let start = end.saturating_sub(h);
    // Short threads sit at the bottom, next to the composer, like every chat.
    let top_pad = h.saturating_sub(end - start);
    for (i, line) in lines[start..end].iter().enumerate() {
        let y = r.y + u16::try_from(top_pad + i).unwrap_or(0);
        buf.set_line(r.x, y, line, r.width);
    }
    if start == 0 && complete && t.loading {
        put(
            buf,
            r.x,
            r.y,
            &rule(s, "loading older messages…", w),
            w,
            dim,
        );
    } else if start == 0 && complete && t.oldest_done && top_pad > 0 {
        put(
            buf,
            r.x,
            r.y + u16::try_from(top_pad - 1).unwrap_or(0),
            &rule(s, "start of conversation", w),
            w,
            dim,
        );
    }
    if scroll > 0 {
        let label = if t.new_below > 0 {
            format!(
                "{} new below ({})",
                t.new_below,
                s.settings.keymap.first(Action::ScrollBottom)
            )
        } else {
            format!(
                "more below ({})",
                s.settings.keymap.first(Action::ScrollBottom)
            )
        };
        let st = fg(s, Color::Yellow).add_modifier(Modifier::BOLD);
        let line = Line::styled(rule(s, &label, w), st);
        buf.set_line(r.x, r.bottom() - 1, &line, r.width);
    }
}

fn draw_status(buf: &mut Buffer, s: &State, r: Rect) {
    let w = usize::from(r.width);
    let km = &s.settings.keymap;
    let (right, rst) = match &s.conn {
        Conn::Online => ("online", fg(s, Color::Green)),
        Conn::Connecting => ("connecting", fg(s, Color::Yellow)),
        Conn::Offline { .. } => ("offline", fg(s, Color::Red)),
        Conn::Stopped(_) => ("stopped", fg(s, Color::Red)),
    };
    let rw = right.len() + 1;
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

/// Draws a popup; returns where the cursor goes (popups with an input field).
fn draw_popup(f: &mut Frame, s: &State, p: &Popup) -> Option<Position> {
    let area = f.area();
    let amb = s.settings.ambiguous;
    let dim = Style::default().add_modifier(Modifier::DIM);
    let rev = Style::default().add_modifier(Modifier::REVERSED);
    let (title, w, h) = match p {
        Popup::Help { .. } => (" Help (Esc closes) ", 76, 40),
        Popup::Requests { .. } => (" Friend requests ", 50, 12),
        Popup::AddFriend { .. } => (" Add a friend ", 50, 14),
        Popup::Group { .. } => (" Groups ", 50, 8),
        Popup::Members { .. } => (" Members ", 50, 16),
        Popup::Switcher { .. } => (" Go to (Ctrl-K) ", 50, 14),
    };
    let r = popup_rect(area, w, h);
    f.render_widget(Clear, r);
    let block = bordered(s, title);
    let inner = block.inner(r);
    f.render_widget(block, r);
    let iw = usize::from(inner.width);
    let ih = usize::from(inner.height);
    let buf = f.buffer_mut();
    let row = |i: usize| inner.y + u16::try_from(i).unwrap_or(0);
    match p {
        Popup::Help { scroll } => {
            let mut lines: Vec<String> = s
                .settings
                .keymap
                .help_rows()
                .into_iter()
                .map(|(k, d)| format!("{:<22} {d}", truncate(&k, 22, amb)))
                .collect();
            lines.push(String::new());
            lines.push("Commands (Tab completes):".into());
            for (_, u) in crate::app::commands::COMMANDS {
                lines.push(format!("  {u}"));
            }
            lines.push(String::new());
            lines.push("Popups: Up/Down select, Enter confirm, Esc close;".into());
            lines.push("requests: a accept, d decline; members: x kick, p admin".into());
            let sc = (*scroll).min(lines.len().saturating_sub(ih));
            for (i, l) in lines.iter().skip(sc).take(ih).enumerate() {
                put(buf, inner.x, row(i), l, iw, Style::default());
            }
            None
        }
        Popup::Requests { sel } => {
            if s.requests.is_empty() {
                put(buf, inner.x + 1, row(0), "No pending requests.", iw, dim);
            }
            for (i, r) in s.requests.iter().enumerate().take(ih.saturating_sub(2)) {
                let name = r.from.as_ref().map_or("?", |u| u.name.as_str());
                let note = if r.note.is_empty() {
                    String::new()
                } else {
                    format!(": {}", r.note)
                };
                let st = if i == *sel { rev } else { Style::default() };
                put(
                    buf,
                    inner.x,
                    row(i),
                    &truncate(&format!(" {name}{note}"), iw, amb),
                    iw,
                    st,
                );
            }
            put(
                buf,
                inner.x,
                row(ih - 1),
                "a/Enter accept  d decline  Esc close",
                iw,
                dim,
            );
            None
        }
        Popup::AddFriend {
            query,
            results,
            sel,
            searched,
        } => {
            put(buf, inner.x, row(0), "name:", 6, Style::default());
            let cx = input(
                buf,
                inner.x + 6,
                row(0),
                iw.saturating_sub(6),
                query,
                false,
                amb,
            );
            for (i, p) in results.iter().enumerate().take(ih.saturating_sub(3)) {
                let name = p.user.as_ref().map_or("?", |u| u.name.as_str());
                let st = if i == *sel { rev } else { Style::default() };
                put(buf, inner.x, row(i + 2), &format!(" {name}"), iw, st);
            }
            if results.is_empty() && !searched.is_empty() {
                put(buf, inner.x + 1, row(2), "no match", iw, dim);
            }
            put(
                buf,
                inner.x,
                row(ih - 1),
                "Enter search, then Enter adds  Esc close",
                iw,
                dim,
            );
            Some(Position::new(cx, row(0)))
        }
        Popup::Group { name, join } => {
            let (a, b) = if *join {
                ("  create ", "[join]")
            } else {
                ("[create]", "  join ")
            };
            put(
                buf,
                inner.x,
                row(0),
                &format!("{a} {b}   (Tab switches)"),
                iw,
                Style::default(),
            );
            put(buf, inner.x, row(2), "name:", 6, Style::default());
            let cx = input(
                buf,
                inner.x + 6,
                row(2),
                iw.saturating_sub(6),
                name,
                false,
                amb,
            );
            put(
                buf,
                inner.x,
                row(ih - 1),
                "Enter confirm  Esc close",
                iw,
                dim,
            );
            Some(Position::new(cx, row(2)))
        }
        Popup::Members { members, sel, .. } => {
            if members.is_empty() {
                put(buf, inner.x + 1, row(0), "loading…", iw, dim);
            }
            let rows = ih.saturating_sub(2);
            let first = (*sel + 1).saturating_sub(rows);
            for (i, m) in members.iter().enumerate().skip(first).take(rows) {
                let name = m.user.as_ref().map_or("?", |u| u.name.as_str());
                let role = match confab_wire::pb::Role::try_from(m.role) {
                    Ok(confab_wire::pb::Role::Owner) => "owner",
                    Ok(confab_wire::pb::Role::Admin) => "admin",
                    _ => "",
                };
                let on = if m.online { "*" } else { " " };
                let st = if i == *sel { rev } else { Style::default() };
                let nw = iw.saturating_sub(9);
                let text = format!("{on}{}", truncate(name, nw, amb));
                let pad = nw + 1 - width(&text, amb).min(nw + 1);
                put(
                    buf,
                    inner.x,
                    row(i - first),
                    &format!("{text}{} {role}", " ".repeat(pad)),
                    iw,
                    st,
                );
            }
            // Kick and promote are offered to the owner and admins (the server decides anyway).
            let my_role = s
                .current()
                .and_then(|t| t.group.as_ref())
                .map_or(0, |g| g.my_role);
            let hint = if my_role >= confab_wire::pb::Role::Admin as i32 {
                "x kick  p admin on/off  Esc close"
            } else {
                "Esc close"
            };
            put(buf, inner.x, row(ih - 1), hint, iw, dim);
            None
        }
        Popup::Switcher { query, sel } => {
            put(buf, inner.x, row(0), "> ", 2, fg(s, Color::Cyan));
            let cx = input(
                buf,
                inner.x + 2,
                row(0),
                iw.saturating_sub(2),
                query,
                false,
                amb,
            );
            let m = switcher_matches(s, query.text());
            let sel = (*sel).min(m.len().saturating_sub(1));
            for (i, id) in m.iter().enumerate().take(ih.saturating_sub(1)) {
                if let Some(t) = s.thread(*id) {
                    let st = if i == sel { rev } else { Style::default() };
                    let mark = if t.kind == Kind::Group { "#" } else { " " };
                    let badge = if t.unread > 0 {
                        format!("  {}", t.unread)
                    } else {
                        String::new()
                    };
                    put(
                        buf,
                        inner.x,
                        row(i + 1),
                        &format!("{mark}{}{badge}", t.name),
                        iw,
                        st,
                    );
                }
            }
            Some(Position::new(cx, row(0)))
        }
    }
}
