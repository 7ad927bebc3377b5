//! The main screen's geometry and the rows a thread's messages take, computed once for both
//! the reducer (how far a page scrolls, where the top is) and the renderer (where things are
//! drawn), so the two cannot disagree. No styling: the renderer picks colours for these rows.

use confab_wire::pb;

use super::keymap::Action;
use super::state::{Conn, Kind, SendState, State, ThreadView};
use crate::text::clock::day_time;
use crate::text::editor::Editor;
use crate::text::{self, Ambiguous, cluster_width, truncate, width};

/// Smallest usable terminal.
pub const MIN_W: u16 = 40;
pub const MIN_H: u16 = 10;
/// The composer grows up to this many rows.
pub const COMPOSER_MAX: usize = 5;
/// Columns before a message's text: pad, `HH:MM`, space, 8-cell sender, space.
pub const GUTTER: usize = 16;
const SENDER_W: usize = 8;

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

/// Visual rows of the composer text wrapped by cluster at `w` cells (the same rule as
/// `Editor::caret`, so the caret maps exactly).
pub fn composer_rows(text: &str, w: usize, amb: Ambiguous) -> Vec<String> {
    use unicode_segmentation::UnicodeSegmentation;
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

/// The most rows the offline banner takes (wrapped; the rest of a long reason is cut).
const BANNER_MAX: usize = 3;

/// The banner under the title while the connection is down: what happened and when the next
/// try is. None while connected (or before any session: the login screen says it there).
pub fn banner(s: &State) -> Option<String> {
    match &s.conn {
        Conn::Offline {
            retry_at_ms,
            reason,
        } => {
            let left = retry_at_ms - s.now_ms;
            let secs = left.max(0).div_euclid(1000) + i64::from(left.max(0).rem_euclid(1000) > 0);
            Some(format!(
                "OFFLINE, reconnecting in {secs}s (/reconnect now): {reason}"
            ))
        }
        Conn::Stopped(_, reason) if s.me.is_some() => {
            Some(format!("DISCONNECTED: {reason} (/reconnect)"))
        }
        Conn::Online => s.silent.map(|(since, drop_at)| {
            format!(
                "the server is not answering ({}s); reconnecting in {}s unless it does",
                secs(s.now_ms - since),
                secs(drop_at - s.now_ms)
            )
        }),
        // A connect that takes long (a frozen server accepts but never answers) says so, and
        // gives up by itself (the core's connect and handshake timeouts).
        Conn::Connecting if s.me.is_some() => s
            .connecting_since
            .filter(|since| s.now_ms - since >= CONNECTING_QUIET_MS)
            .map(|since| {
                format!(
                    "connecting to {}… {}s (no answer yet)",
                    s.server,
                    secs(s.now_ms - since)
                )
            }),
        _ => None,
    }
}

/// A connect quicker than this shows no banner (it would only flash).
const CONNECTING_QUIET_MS: i64 = 2_000;

/// Whole seconds, rounded down, never negative.
fn secs(ms: i64) -> i64 {
    ms.max(0) / 1000
}

/// The main screen from top to bottom: a title row, the offline banner (when down, wrapped to
/// at most [`BANNER_MAX`] rows), the body (thread list, a rule, the chat pane), a separator,
/// the composer (one to [`COMPOSER_MAX`] rows), the status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MainLayout {
    /// Width of the thread list (0: hidden); the chat pane starts at `chat_x`.
    pub list_w: u16,
    pub chat_x: u16,
    pub chat_w: u16,
    /// The banner's rows (from row 1), empty while connected.
    pub banner: Vec<String>,
    pub body_y: u16,
    /// Rows of the thread list and of the chat pane.
    pub body_h: u16,
    pub sep_y: u16,
    pub composer_y: u16,
    /// Rows the composer shows.
    pub composer_h: usize,
    /// Cells for the composer's text (after the `> ` prompt).
    pub composer_w: usize,
    /// The composer's text wrapped into rows.
    pub composer_rows: Vec<String>,
    /// The caret's (row, column) in `composer_rows`.
    pub caret: (usize, usize),
    /// The first composer row shown (the caret stays visible).
    pub composer_top: usize,
    pub status_y: u16,
}

impl MainLayout {
    /// The layout at a terminal size (columns, rows) with the composer holding `composer` and
    /// the banner (if any) saying `banner`.
    pub fn new(size: (u16, u16), composer: &Editor, amb: Ambiguous, banner: Option<&str>) -> Self {
        let (w, h) = size;
        let mut banner_rows = banner.map_or_else(Vec::new, |b| {
            text::wrap(b, usize::from(w).saturating_sub(2).max(8), amb)
        });
        banner_rows.truncate(BANNER_MAX.min(usize::from(h) / 6).max(1));
        let composer_w = usize::from(w).saturating_sub(2);
        let rows = composer_rows(composer.text(), composer_w, amb);
        let caret = composer.caret(composer_w, amb);
        let max_rows = COMPOSER_MAX.min(usize::from(h) / 4).max(1);
        let composer_h = rows.len().max(caret.0 + 1).clamp(1, max_rows);
        let banner_h = u16::try_from(banner_rows.len()).unwrap_or(0);
        let body_y = 1 + banner_h;
        let body_h = h.saturating_sub(3 + banner_h + u16::try_from(composer_h).unwrap_or(1));
        let sep_y = body_y + body_h;
        let list_w = list_width(w);
        let chat_x = if list_w > 0 { list_w + 1 } else { 0 };
        MainLayout {
            list_w,
            chat_x,
            chat_w: w.saturating_sub(chat_x),
            banner: banner_rows,
            body_y,
            body_h,
            sep_y,
            composer_y: sep_y + 1,
            composer_h,
            composer_w,
            composer_rows: rows,
            caret,
            composer_top: (caret.0 + 1).saturating_sub(composer_h),
            status_y: h.saturating_sub(1),
        }
    }

    /// The layout the state is drawn with (the run loop keeps `size` current).
    pub fn of(s: &State) -> Self {
        Self::new(
            s.size,
            &s.composer,
            s.settings.ambiguous,
            banner(s).as_deref(),
        )
    }
}

/// Chat rows on screen: what a page scrolls by.
pub fn chat_height(s: &State) -> usize {
    usize::from(MainLayout::of(s).body_h).max(1)
}

/// A mark after a message: edited, read by the peer, or how its send is going.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub kind: MarkKind,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkKind {
    Edited,
    Read,
    Sending,
    Sent,
    Failed,
}

/// The time and sender in front of a message's first row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// `HH:MM` in the configured zone.
    pub time: String,
    /// The sender's name, cut to fit; empty in a run of messages from one sender.
    pub name: String,
    /// Blanks after the name up to the text column.
    pub pad: usize,
    pub sender_id: u64,
    /// The message's seq (None for my sends not yet stored).
    pub seq: Option<u64>,
}

/// One row of the chat pane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Row {
    /// A day separator (the day number since 1970-01-01).
    Day(i64),
    /// The "new" divider before the first message unread when the thread was opened.
    New,
    /// Above the oldest message once nothing older exists: scrolling to the top shows it,
    /// however long the conversation.
    Start,
    /// A row of a message's text; the first carries the head, the last the mark if it fits.
    Text {
        head: Option<Head>,
        text: String,
        /// System text or a recalled message.
        dim: bool,
        mark: Option<Mark>,
        /// Byte ranges of `text` that mention me or hold a highlight word.
        hl: Vec<std::ops::Range<usize>>,
        /// The message is the one picked (Alt-Up, app/pick.rs).
        picked: bool,
    },
    /// A mark that did not fit after the text, on a row of its own.
    Mark(Mark),
    /// The reactions under a message, `👍 3  🎉 1`: the pieces, and which are mine.
    Reactions(Vec<(String, bool)>),
}

/// The rows of a thread's newest messages.
#[derive(Debug, Clone)]
pub struct ChatRows {
    pub rows: Vec<Row>,
    /// The rows start at the oldest loaded message.
    pub complete: bool,
}

/// A message or a pending send, before it is cut into rows.
struct Item {
    ts_ms: i64,
    sender: String,
    sender_id: u64,
    body: String,
    dim: bool,
    mark: Option<Mark>,
    /// None for my sends not yet in the thread.
    seq: Option<u64>,
    system: bool,
    /// Someone else's text: mentions of me and highlight words are marked in it.
    scan: bool,
    target: Target,
    /// A reply: the line that quotes what it answers.
    quote: Option<String>,
    /// The counts under it (app/relations.rs).
    reactions: Vec<(String, bool)>,
}

/// What a message on screen is, to pick it: a stored entry (its seq) or one of my sends not
/// stored yet (its pending key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Seq(u64),
    Pending(u64),
}

/// The messages that can be picked, oldest first, as shown (group changes cannot).
pub fn targets(s: &State, t: &ThreadView) -> Vec<Target> {
    items(s, t, 0)
        .into_iter()
        .filter(|i| !i.system)
        .map(|i| i.target)
        .collect()
}

/// The last `need` (or a few more) rows of a thread in a pane `pane_w` cells wide, and whether
/// they start at the oldest loaded message. Only the messages that can be on screen are laid
/// out, so a frame costs the same with 10,000 messages in memory as with 20.
pub fn chat_rows(s: &State, t: &ThreadView, pane_w: usize, need: usize) -> ChatRows {
    let amb = s.settings.ambiguous;
    let text_w = pane_w.saturating_sub(GUTTER).max(8);
    let mut from_seq = 0;
    if t.search.is_none() && need != usize::MAX {
        // A lower bound (separators and marks only add rows): when the loop stops early the
        // window holds at least `need` rows.
        let mut est = t.pending.len();
        for m in t.messages.values().rev() {
            if est > need {
                break;
            }
            // Entries that show nothing of their own (edits, recalls, reactions) count no
            // rows, or a run of them would end the window before the messages it needs.
            if shown(m) {
                est += text::wrap(&m.body, text_w, amb).len();
            }
            from_seq = m.seq;
        }
    }
    let complete = t
        .messages
        .keys()
        .next()
        .is_none_or(|first| from_seq <= *first);
    let items = items(s, t, from_seq);
    let me = s.my_id();
    let my_name = s.me.as_ref().map_or("", |u| u.name.as_str());
    let picked = s.pick.filter(|_| s.selected == Some(t.id));
    let find_query = s
        .find
        .as_ref()
        .filter(|_| s.selected == Some(t.id))
        .map(|f| f.query.text())
        .filter(|q| !q.is_empty());
    let mut rows = Vec::new();
    let mut last_day = None;
    let mut prev: Option<(u64, i64)> = None;
    let mut marker_done = t.marker_seq >= t.last_seq || (!complete && t.marker_seq < from_seq);
    if complete && t.oldest_done && t.search.is_none() && !t.messages.is_empty() {
        rows.push(Row::Start);
    }
    for it in items {
        // Each message with the offset in effect at its own time (DST).
        let (day, time) = day_time(it.ts_ms, s.settings.zone.offset_s(it.ts_ms));
        if last_day != Some(day) {
            rows.push(Row::Day(day));
            last_day = Some(day);
            prev = None;
        }
        if !marker_done
            && let Some(seq) = it.seq
            && seq > t.marker_seq
            && it.sender_id != me
        {
            rows.push(Row::New);
            marker_done = true;
        }
        let same = prev.is_some_and(|(id, ts)| {
            id == it.sender_id && !it.system && it.ts_ms - ts < 5 * 60 * 1000
        });
        prev = (!it.system).then_some((it.sender_id, it.ts_ms));
        let name = if same || it.system {
            String::new()
        } else {
            truncate(&it.sender, SENDER_W, amb)
        };
        let mut head = Some(Head {
            time,
            pad: SENDER_W.saturating_sub(width(&name, amb)),
            name,
            sender_id: it.sender_id,
            seq: it.seq,
        });
        if let Some(q) = &it.quote {
            // One row, cut to the pane: the quote names what is answered, the text follows.
            rows.push(Row::Text {
                head: head.take(),
                text: truncate(q, text_w, amb),
                dim: true,
                mark: None,
                hl: Vec::new(),
                picked: picked == Some(it.target),
            });
        }
        let wrapped = text::wrap(&it.body, text_w, amb);
        let n = wrapped.len();
        for (i, line) in wrapped.into_iter().enumerate() {
            let mut mark = None;
            let mut own_rows = Vec::new();
            if i + 1 == n
                && let Some(m) = &it.mark
            {
                // The mark goes on rows of its own when it does not fit after the text,
                // wrapped like text (a failure's reason is long).
                if width(&line, amb) + width(&m.text, amb) <= text_w {
                    mark = Some(m.clone());
                } else {
                    own_rows = text::wrap(m.text.trim_start(), text_w, amb)
                        .into_iter()
                        .map(|text| Mark { kind: m.kind, text })
                        .collect();
                }
            }
            let mut hl = if it.scan {
                super::highlight::ranges(&line, my_name, &s.settings.highlight)
            } else {
                Vec::new()
            };
            if let Some(q) = find_query.filter(|_| it.seq.is_some()) {
                // What Ctrl-S finds, in every message (one's own too).
                hl.extend(super::find::ranges(&line, q));
                hl.sort_by_key(|r| r.start);
                hl.dedup_by(|b, a| b.start < a.end);
            }
            rows.push(Row::Text {
                head: head.take(),
                text: line,
                dim: it.dim,
                mark,
                hl,
                picked: picked == Some(it.target),
            });
            rows.extend(own_rows.into_iter().map(Row::Mark));
        }
        reaction_rows(&it.reactions, text_w, amb, &mut rows);
    }
    ChatRows { rows, complete }
}

/// Whether an entry has rows of its own: edits, recalls and reactions change another one.
fn shown(m: &pb::ChatMessage) -> bool {
    !matches!(
        pb::MessageKind::try_from(m.kind),
        Ok(pb::MessageKind::Edit
            | pb::MessageKind::Recall
            | pb::MessageKind::ReactionAdded
            | pb::MessageKind::ReactionRemoved)
    )
}

/// The reactions under a message, as many rows as their pieces need at `text_w`.
fn reaction_rows(pieces: &[(String, bool)], text_w: usize, amb: Ambiguous, rows: &mut Vec<Row>) {
    let mut row: Vec<(String, bool)> = Vec::new();
    let mut used = 0;
    for (p, mine) in pieces {
        let w = width(p, amb);
        if !row.is_empty() && used + 2 + w > text_w {
            rows.push(Row::Reactions(std::mem::take(&mut row)));
            used = 0;
        }
        used += if row.is_empty() { w } else { w + 2 };
        row.push((p.clone(), *mine));
    }
    if !row.is_empty() {
        rows.push(Row::Reactions(row));
    }
}

/// A system message's text (group changes).
pub(super) fn system_text(m: &pb::ChatMessage) -> String {
    use pb::group_change::Kind as G;
    let Some(c) = &m.group_change else {
        return m.body.clone();
    };
    let actor = c.actor.as_ref().map_or("someone", |u| u.name.as_str());
    let subject = c.subject.as_ref().map_or("someone", |u| u.name.as_str());
    match G::try_from(c.kind) {
        Ok(G::Created) => format!("{actor} created the group"),
        Ok(G::Joined) => format!("{subject} joined"),
        Ok(G::Left) => format!("{subject} left"),
        Ok(G::Kicked) => format!("{actor} removed {subject}"),
        Ok(G::Banned) => format!("{actor} banned {subject}"),
        // The entry carries the group's new name, description and openness, changed or not.
        Ok(G::Updated) if !c.name.is_empty() => {
            let topic = if c.description.is_empty() {
                "no topic".to_owned()
            } else {
                format!("topic: {}", c.description)
            };
            let open = if c.open { "open" } else { "closed" };
            format!("{actor} updated the group: {}, {topic}, {open}", c.name)
        }
        Ok(G::Updated) => format!("{actor} updated the group"),
        Ok(G::OwnerTransferred) => format!("{actor} made {subject} the owner"),
        Ok(G::RoleChanged) => match pb::Role::try_from(c.role) {
            Ok(pb::Role::Admin) => format!("{actor} made {subject} an admin"),
            Ok(pb::Role::Member) => format!("{actor} made {subject} a member (no longer admin)"),
            Ok(pb::Role::Owner) => format!("{actor} made {subject} the owner"),
            _ => format!("{actor} changed {subject}'s role"),
        },
        _ => format!("{actor} changed the group"),
    }
}

/// When one of my messages was written, if that was over a minute before the server stored it
/// (queued offline); from its client_msg_id, which our client makes time-first.
fn written_offline(m: &pb::ChatMessage, me: u64) -> Option<i64> {
    if m.sender.as_ref().is_none_or(|u| u.user_id != me) || m.kind != pb::MessageKind::Text as i32 {
        return None;
    }
    let w = crate::client::written_ms(&m.client_msg_id)?;
    let late = m.server_ts_ms - w;
    (60_000..30 * 86_400_000).contains(&late).then_some(w)
}

fn mark(kind: MarkKind, text: impl Into<String>) -> Option<Mark> {
    Some(Mark {
        kind,
        text: text.into(),
    })
}

/// The messages from `from_seq` on as shown (search applied, edits and recalls folded in),
/// then my pending sends.
fn items(s: &State, t: &ThreadView, from_seq: u64) -> Vec<Item> {
    let me = s.my_id();
    let query = t.search.as_ref().map(|q| q.to_lowercase());
    // The newest of my messages the peer has read (DM read receipt).
    let read_mark = if t.kind == Kind::Private {
        t.messages
            .values()
            .filter(|m| m.sender.as_ref().is_some_and(|u| u.user_id == me))
            // On a message shown: my edits, recalls and reactions are entries too.
            .filter(|m| m.seq <= t.peer_read_seq && shown(m))
            .map(|m| m.seq)
            .next_back()
    } else {
        None
    };
    let mut items = Vec::new();
    for m in t.messages.range(from_seq..).map(|(_, m)| m) {
        let kind = pb::MessageKind::try_from(m.kind).unwrap_or(pb::MessageKind::Text);
        if !shown(m) {
            continue;
        }
        let system = kind == pb::MessageKind::System;
        let (body, dim) = if system {
            (system_text(m), true)
        } else if m.recalled {
            ("(message recalled)".to_owned(), true)
        } else if m
            .sender
            .as_ref()
            .is_some_and(|u| s.blocked.contains(&u.user_id))
        {
            ("(a message from someone you blocked)".to_owned(), true)
        } else {
            (m.body.clone(), false)
        };
        if let Some(q) = &query
            && !body.to_lowercase().contains(q)
        {
            continue;
        }
        let mut suffix = None;
        if m.edited_ts_ms != 0 && !m.recalled {
            suffix = mark(MarkKind::Edited, " (edited)");
        }
        if Some(m.seq) == read_mark {
            // Read by the peer, and still saying it was edited.
            let edited = if suffix.is_some() { " (edited)" } else { "" };
            suffix = mark(MarkKind::Read, format!("{edited} ✓ read"));
        }
        let sender = m.sender.as_ref();
        if let Some(w) = written_offline(m, me) {
            // Written while offline: the time it was written too, beside the time it was stored
            // (the gutter, which keeps the conversation's order).
            let (_, at) = day_time(w, s.settings.zone.offset_s(w));
            let (kind, after) = suffix
                .take()
                .map_or((MarkKind::Edited, String::new()), |m| (m.kind, m.text));
            suffix = mark(kind, format!(" (written {at}){after}"));
        }
        items.push(Item {
            ts_ms: m.server_ts_ms,
            sender: sender.map_or(String::new(), |u| {
                if u.name.is_empty() || s.deleted_users.contains(&u.user_id) {
                    // The sender column is 8 cells: the short form.
                    "deleted".to_owned()
                } else {
                    crate::text::nfc(&u.name)
                }
            }),
            sender_id: sender.map_or(0, |u| u.user_id),
            body,
            dim,
            mark: suffix,
            seq: Some(m.seq),
            system,
            scan: !system && !m.recalled && sender.is_none_or(|u| u.user_id != me),
            target: Target::Seq(m.seq),
            quote: m
                .quote
                .as_ref()
                .filter(|_| !m.recalled)
                .map(|q| format!("↪ {}", super::export::quote_line(q))),
            reactions: if m.recalled {
                Vec::new()
            } else {
                super::relations::pieces(m)
            },
        });
    }
    if query.is_none() {
        let my_name = s.me.as_ref().map_or("me".to_owned(), |u| u.name.clone());
        let keys = &s.settings.keymap;
        for p in &t.pending {
            let suffix = match &p.state {
                SendState::Queued => mark(MarkKind::Sending, " (sending…)"),
                SendState::Acked(_) => mark(MarkKind::Sent, " (sent)"),
                SendState::Failed { reason, retry } => {
                    let del = keys.first(Action::DeleteFailed);
                    let how = if *retry {
                        format!("{} retries, {del} deletes", keys.first(Action::Retry))
                    } else {
                        format!("{del} deletes")
                    };
                    mark(MarkKind::Failed, format!(" (not sent: {reason}; {how})"))
                }
            };
            let item = Item {
                ts_ms: p.created_ms,
                sender: my_name.clone(),
                sender_id: me,
                body: p.body.clone(),
                dim: false,
                mark: suffix,
                seq: None,
                system: false,
                scan: false,
                target: Target::Pending(p.key),
                quote: p
                    .quote
                    .as_ref()
                    .map(|q| format!("↪ {}", super::export::quote_line(q))),
                reactions: Vec::new(),
            };
            // A failed message stays where it was written, among the others: what arrives
            // after it shows below it. One older than the laid-out window is left out (it is
            // laid out once the window reaches back to it).
            if p.state.failed() {
                match items
                    .iter()
                    .position(|i| i.seq.is_some() && i.ts_ms > p.created_ms)
                {
                    Some(0) if from_seq > 0 && t.messages.keys().next() != Some(&from_seq) => {}
                    Some(at) => items.insert(at, item),
                    None => items.push(item),
                }
            } else {
                items.push(item);
            }
        }
    }
    items
}
