//! What several inputs do alike: show a thread, mark it read, send, retry, scroll, and fold
//! a thread or a message into the state.

use confab_wire::pb;

use super::keymap::Action;
use super::layout;
use super::msg::Cmd;
use super::state::{Kind, Pending, SendState, State, ThreadView};
use crate::client::relations;
use crate::text::nfc;

/// Folds a thread from the list or a push into the state (counts, name, order).
pub(super) fn upsert_thread(s: &mut State, t: pb::Thread, cmds: &mut Vec<Cmd>) {
    if let Some(at) = s.hidden.get(&t.thread_id) {
        if t.activity_id <= *at {
            return;
        }
        // Something new since it was closed: back in the list.
        s.hidden.remove(&t.thread_id);
        save_hidden(s, cmds);
    }
    let visible = s.visible(t.thread_id);
    let me = s.my_id();
    let peer_deleted = t
        .peer
        .as_ref()
        .filter(|p| p.name.is_empty())
        .map(|p| p.user_id);
    if let Some(id) = peer_deleted {
        // Messages cached under the old name show as a deleted account's from now on.
        s.deleted_users.insert(id);
    }
    let th = s.thread_entry(t.thread_id);
    if let Some(p) = &t.peer {
        th.kind = Kind::Private;
        th.name = crate::text::user_name(&p.name);
        th.peer_id = p.user_id;
    }
    // A description older than the entries shown (the core's listing from before a join, a
    // rename) must not take the header back: the entries since have updated it.
    let older = t.last_seq < th.last_seq && th.group.is_some();
    if let Some(g) = &t.group
        && !older
    {
        th.kind = Kind::Group;
        th.name = nfc(&g.name);
        th.group = Some(g.clone());
    }
    if t.kind == pb::ThreadKind::Group as i32 {
        th.kind = Kind::Group;
    }
    if th.marker_seq == super::state::MARKER_UNKNOWN {
        // The server's marker, not one this view set while the thread was unknown.
        th.marker_seq = t.read_seq;
    }
    th.info_known = true;
    th.last_seq = th.last_seq.max(t.last_seq);
    th.read_seq = th.read_seq.max(t.read_seq);
    th.peer_read_seq = th.peer_read_seq.max(t.peer_read_seq);
    th.activity_id = th.activity_id.max(t.activity_id);
    th.can_send = t.can_send;
    if t.can_send {
        th.read_only = None;
    } else if th.read_only.is_none() {
        th.read_only = Some(if t.group.is_some() {
            "read only: you are no longer a member of this group".to_owned()
        } else if peer_deleted.is_some() {
            "read only: this account was deleted".to_owned()
        } else {
            "read only: you are no longer friends".to_owned()
        });
    }
    if visible {
        let seq = th.last_seq;
        if seq > th.read_seq {
            th.read_seq = seq;
            cmds.push(Cmd::MarkRead {
                thread_id: th.id,
                seq,
            });
        }
        th.unread = 0;
        th.mentions = 0;
    } else {
        th.unread = th.count_unread(me);
        if th.unread == 0 {
            th.mentions = 0;
        }
    }
    s.sort_threads();
}

/// Shows the first thread when none is shown yet.
/// Opens a conversation when none is: the one left open at the last run, once it is listed,
/// else the most active.
pub(super) fn ensure_selection(s: &mut State, cmds: &mut Vec<Cmd>) {
    if let Some(id) = s.last_open
        && s.thread(id).is_some()
    {
        s.last_open = None;
        select(s, id, cmds);
        return;
    }
    if s.selected.is_none()
        && let Some(id) = s.threads.first().map(|t| t.id)
    {
        select(s, id, cmds);
    }
}

/// Applies an entry to a thread's message map (edits, recalls and reactions change their
/// target; edits and recalls the quotes of the replies to it too). `me`: whose reactions are
/// mine.
pub(super) fn insert_message(t: &mut ThreadView, mut m: pb::ChatMessage, me: u64) {
    m.body = nfc(&m.body);
    if let Some(u) = m.sender.as_mut() {
        u.name = nfc(&u.name);
    }
    let kind = pb::MessageKind::try_from(m.kind).unwrap_or(pb::MessageKind::Text);
    match kind {
        pb::MessageKind::Edit | pb::MessageKind::Recall => {
            if let Some(target) = t
                .messages
                .values_mut()
                .find(|x| x.message_id == m.target_message_id)
            {
                if kind == pb::MessageKind::Edit {
                    target.body = m.body.clone();
                    target.edited_ts_ms = m.server_ts_ms;
                } else {
                    target.recalled = true;
                    target.body.clear();
                }
            }
            if kind == pb::MessageKind::Recall {
                // Its edits held its text too.
                for e in t.messages.values_mut().filter(|x| {
                    x.kind == pb::MessageKind::Edit as i32
                        && x.target_message_id == m.target_message_id
                }) {
                    e.recalled = true;
                    e.body.clear();
                }
            }
            for r in t.messages.values_mut() {
                relations::amend_quote(r, &m);
            }
            for p in &mut t.pending {
                if let Some(q) = p
                    .quote
                    .as_mut()
                    .filter(|q| q.message_id == m.target_message_id)
                {
                    let mut shell = pb::ChatMessage {
                        quote: Some(q.clone()),
                        ..Default::default()
                    };
                    relations::amend_quote(&mut shell, &m);
                    *q = shell.quote.unwrap_or_default();
                }
            }
        }
        pb::MessageKind::ReactionAdded | pb::MessageKind::ReactionRemoved => {
            if let Some(target) = t
                .messages
                .values_mut()
                .find(|x| x.message_id == m.target_message_id)
            {
                relations::apply_reaction(target, &m, me);
            }
        }
        _ => {
            // A copy of a message already here (a page fetched again) keeps the newer counts.
            if let Some(old) = t.messages.get(&m.seq) {
                relations::keep_newer_reactions(&mut m, old);
            }
        }
    }
    let seq = m.seq;
    if m.quote.is_none() && m.reply_to != 0 {
        // My reply, settled by its ack (a cache that did not hold the target has no quote).
        m.quote = t
            .pending
            .iter()
            .find(|p| matches!(p.state, SendState::Acked(s) if s == seq))
            .and_then(|p| p.quote.clone());
    }
    t.pending
        .retain(|p| !matches!(p.state, SendState::Acked(s) if s == seq));
    t.last_seq = t.last_seq.max(seq);
    if !relations::is_reaction(&m) {
        // A reaction is not news: the conversation keeps its place (as the server orders it).
        t.activity_id = t.activity_id.max(m.message_id);
    }
    t.messages.insert(seq, m);
}

/// Marks everything in a thread read (and tells the server when that moves its marker).
pub(super) fn mark_read(s: &mut State, id: u64, cmds: &mut Vec<Cmd>) {
    if let Some(t) = s.thread_mut(id) {
        if t.last_seq > t.read_seq {
            t.read_seq = t.last_seq;
            cmds.push(Cmd::MarkRead {
                thread_id: id,
                seq: t.last_seq,
            });
        }
        t.unread = 0;
        t.mentions = 0;
    }
}

/// Shows a thread: the composer's text goes back to the old thread's draft and the new
/// thread's draft comes out (drafts are per thread and never discarded).
pub(super) fn select(s: &mut State, id: u64, cmds: &mut Vec<Cmd>) {
    if s.selected == Some(id) {
        return;
    }
    // An edit in progress is abandoned, not kept as the old conversation's draft; a search
    // ends.
    super::amend::cancel_edit(s);
    s.find = None;
    s.pick = None;
    let mut composer = std::mem::take(&mut s.composer);
    if let Some(old) = s.current_mut() {
        std::mem::swap(&mut old.draft, &mut composer);
        old.search = None;
    }
    s.prev_selected = s.selected.or(s.prev_selected);
    s.selected = Some(id);
    s.history_pos = None;
    let mut composer = std::mem::take(&mut s.composer);
    let t = s.thread_entry(id);
    std::mem::swap(&mut t.draft, &mut composer);
    s.composer = composer;
    let t = s.thread_entry(id);
    t.marker_seq = if t.info_known {
        t.read_seq
    } else {
        super::state::MARKER_UNKNOWN
    };
    t.scroll = 0;
    t.new_below = 0;
    if !t.loaded && !t.loading {
        t.loading = true;
        cmds.push(Cmd::History {
            thread_id: id,
            before_seq: 0,
        });
    }
    if t.members.is_none()
        && let Some(g) = &t.group
        && t.can_send
    {
        // For @-completion (app/complete.rs); the group's entries keep it current after.
        cmds.push(Cmd::Op(super::msg::Op::Members(g.group_id)));
    }
    mark_read(s, id, cmds);
    super::notify::seen(s, id);
}

/// `/close`: the shown conversation leaves the list (a group one left, say) until something new
/// arrives in it; the next one is shown.
pub(super) fn close_current(s: &mut State, cmds: &mut Vec<Cmd>) {
    let Some(i) = s
        .selected
        .and_then(|id| s.threads.iter().position(|t| t.id == id))
    else {
        s.error("no conversation to close");
        return;
    };
    let t = s.threads.remove(i);
    s.hidden.insert(t.id, t.activity_id);
    s.selected = None;
    s.composer = crate::text::editor::Editor::new();
    s.notice(format!(
        "closed {} (it comes back with its next message)",
        t.name
    ));
    save_hidden(s, cmds);
    if let Some(id) = s
        .threads
        .get(i.min(s.threads.len().saturating_sub(1)))
        .map(|t| t.id)
    {
        select(s, id, cmds);
    }
}

/// Keeps the closed conversations for the next run.
pub(super) fn save_hidden(s: &State, cmds: &mut Vec<Cmd>) {
    if let Some(me) = &s.me {
        cmds.push(Cmd::SaveHidden {
            name: me.name.clone(),
            hidden: s.hidden.clone(),
        });
    }
}

pub(super) fn select_index(s: &mut State, i: usize, cmds: &mut Vec<Cmd>) {
    if let Some(id) = s.threads.get(i).map(|t| t.id) {
        select(s, id, cmds);
    }
}

/// Whether `text` is over the server's body limit; if so the notice says so. Checked before
/// sending or editing, so the text stays in the composer to be shortened.
pub(super) fn too_long(s: &mut State, text: &str) -> bool {
    if text.len() <= s.max_body_bytes {
        return false;
    }
    s.error(format!(
        "too long: {} of {} bytes (shorten or split it)",
        text.len(),
        s.max_body_bytes
    ));
    true
}

/// Queues text in the current thread; false (with a notice) when it cannot be sent there.
pub(super) fn send_text(s: &mut State, text: String, cmds: &mut Vec<Cmd>) -> bool {
    let Some(id) = s.selected else {
        s.error("no conversation selected: add a friend (/add NAME) or join a group");
        return false;
    };
    if too_long(s, &text) {
        return false;
    }
    let key = s.take_key();
    let now = s.now_ms;
    let Some(t) = s.thread_mut(id) else {
        return false;
    };
    if !t.can_send {
        s.error("you can no longer write here");
        return false;
    }
    let quote = super::relations::take_reply_to(s, id);
    let reply_to = quote.as_ref().map_or(0, |q| q.message_id);
    let Some(t) = s.thread_mut(id) else {
        return false;
    };
    t.pending.push(Pending {
        key,
        local_id: None,
        body: text.clone(),
        created_ms: now,
        state: SendState::Queued,
        quote,
    });
    t.scroll = 0;
    t.new_below = 0;
    s.last_typing_ms = i64::MIN / 2;
    if s.notice.as_ref().is_some_and(|n| n.1) {
        // An error about the draft (too long, say) no longer holds once it is sent.
        s.notice = None;
    }
    s.typing_in = None;
    cmds.push(Cmd::Send {
        thread_id: id,
        key,
        body: text,
        reply_to,
    });
    true
}

/// Sends the current thread's failed messages again, those worth it: each goes as a new
/// message and its failed copy is forgotten. One the server can never take stays, to be
/// deleted (or copied and shortened).
pub(super) fn retry(s: &mut State, cmds: &mut Vec<Cmd>) {
    let Some(id) = s.selected else { return };
    let Some(t) = s.thread_mut(id) else { return };
    let (again, stuck): (Vec<Pending>, Vec<Pending>) = t
        .pending
        .iter()
        .filter(|p| p.state.failed())
        .cloned()
        .partition(|p| matches!(p.state, SendState::Failed { retry: true, .. }));
    if again.is_empty() {
        if let Some(p) = stuck.last() {
            let why = match &p.state {
                SendState::Failed { reason, .. } => reason.clone(),
                _ => String::new(),
            };
            s.error(format!(
                "sending it again cannot help ({why}): {} deletes it",
                s.settings.keymap.first(Action::DeleteFailed)
            ));
        } else {
            s.notice("nothing to retry");
        }
        return;
    }
    let keys: Vec<u64> = again.iter().map(|p| p.key).collect();
    t.pending.retain(|p| !keys.contains(&p.key));
    for p in again {
        if let Some(local_id) = p.local_id {
            cmds.push(Cmd::Discard { local_id });
        }
        send_text(s, p.body, cmds);
    }
}

/// Deletes the newest failed message of the current thread (it was never sent).
pub(super) fn delete_failed(s: &mut State, cmds: &mut Vec<Cmd>) {
    let Some(t) = s.current_mut() else { return };
    let Some(i) = t.pending.iter().rposition(|p| p.state.failed()) else {
        s.notice("no failed message to delete here");
        return;
    };
    let p = t.pending.remove(i);
    let left = t.pending.iter().filter(|p| p.state.failed()).count();
    if let Some(local_id) = p.local_id {
        cmds.push(Cmd::Discard { local_id });
    }
    let preview = crate::text::truncate(&p.body.replace('\n', " "), 30, s.settings.ambiguous);
    s.notice(if left > 0 {
        format!("deleted the unsent \"{preview}\" ({left} more failed here)")
    } else {
        format!("deleted the unsent \"{preview}\"")
    });
}

/// Scrolls by `lines` (None: a page); at the top, asks for older history.
pub(super) fn scroll_by(s: &mut State, up: bool, lines: Option<usize>, cmds: &mut Vec<Cmd>) {
    let h = layout::chat_height(s);
    let page = lines.unwrap_or(h.saturating_sub(2).max(1));
    let width = layout::chat_width(s.size.0);
    let Some(id) = s.selected else { return };
    let (total, complete) = s.thread(id).map_or((0, true), |t| {
        let need = t.scroll.saturating_add(page).saturating_add(h);
        let laid = layout::chat_rows(s, t, width, need);
        (laid.rows.len(), laid.complete)
    });
    // Without every loaded message laid out, the top is further up than `total`.
    let max = if complete {
        total.saturating_sub(h)
    } else {
        usize::MAX
    };
    let Some(t) = s.thread_mut(id) else { return };
    if up {
        t.scroll = t.scroll.saturating_add(page).min(max);
        if t.scroll >= max && !t.oldest_done && !t.loading {
            t.loading = true;
            let before = t.messages.keys().next().copied().unwrap_or(0);
            cmds.push(Cmd::History {
                thread_id: id,
                before_seq: before,
            });
        }
    } else {
        t.scroll = t.scroll.saturating_sub(page);
        if t.scroll == 0 {
            t.new_below = 0;
            mark_read(s, id, cmds);
        }
    }
}

/// Alt-U: the view moves so the "new" divider (the first message unread when the conversation
/// was opened) is at the top. Unread older than what is loaded: the older pages load first.
pub(super) fn first_unread(s: &mut State, cmds: &mut Vec<Cmd>) {
    let h = layout::chat_height(s);
    let width = layout::chat_width(s.size.0);
    let Some(t) = s.current() else { return };
    let marker = t.marker_seq;
    if marker >= t.last_seq || marker == super::state::MARKER_UNKNOWN {
        s.notice("nothing new here since you opened it");
        return;
    }
    let oldest = t.messages.keys().next().copied().unwrap_or(0);
    if marker + 1 < oldest && !t.oldest_done {
        if !t.loading {
            let id = t.id;
            if let Some(t) = s.current_mut() {
                t.loading = true;
            }
            cmds.push(Cmd::History {
                thread_id: id,
                before_seq: oldest,
            });
        }
        s.notice("loading older messages… (again to jump)");
        return;
    }
    let rows = layout::chat_rows(s, t, width, usize::MAX).rows;
    let Some(at) = rows.iter().position(|r| matches!(r, layout::Row::New)) else {
        s.notice("nothing new here since you opened it");
        return;
    };
    let scroll = rows.len().saturating_sub(at + h);
    if let Some(t) = s.current_mut() {
        t.scroll = scroll;
        if scroll == 0 {
            t.new_below = 0;
        }
    }
}

/// A new terminal size. Scrolled up, the view keeps the message at its top there (rows are
/// counted from the bottom, and a different width wraps them differently).
pub(super) fn resize(s: &mut State, size: (u16, u16)) {
    let anchor = top_message(s);
    s.size = size;
    let Some(seq) = anchor else { return };
    let h = layout::chat_height(s);
    let width = layout::chat_width(s.size.0);
    let Some(t) = s.current() else { return };
    let rows = layout::chat_rows(s, t, width, usize::MAX).rows;
    let Some(idx) = rows
        .iter()
        .position(|r| matches!(r, layout::Row::Text { head: Some(hd), .. } if hd.seq == Some(seq)))
    else {
        return;
    };
    let scroll = rows
        .len()
        .saturating_sub(idx + h)
        .min(rows.len().saturating_sub(h));
    if let Some(t) = s.current_mut() {
        t.scroll = scroll;
    }
}

/// The seq of the message whose rows are at the top of the chat pane, when scrolled up.
fn top_message(s: &State) -> Option<u64> {
    let t = s.current()?;
    if t.scroll == 0 {
        return None;
    }
    let h = layout::chat_height(s);
    let rows = layout::chat_rows(s, t, layout::chat_width(s.size.0), usize::MAX).rows;
    let top = rows.len().saturating_sub(h + t.scroll);
    // The first message that starts at or below the top row (a cut one above it would move).
    rows[top..].iter().find_map(|r| match r {
        layout::Row::Text { head: Some(hd), .. } => hd.seq,
        _ => None,
    })
}

/// Back to the newest message without marking anything read (the caller will).
pub(super) fn scroll_bottom_quiet(s: &mut State) {
    if let Some(t) = s.current_mut() {
        t.scroll = 0;
        t.new_below = 0;
    }
}

/// Back to the newest message, which is then read.
pub(super) fn scroll_bottom(s: &mut State, cmds: &mut Vec<Cmd>) {
    if let Some(t) = s.current_mut() {
        t.scroll = 0;
        t.new_below = 0;
    }
    if let Some(id) = s.selected {
        mark_read(s, id, cmds);
    }
}

/// The next (or previous) thread in the list, wrapping around.
pub(super) fn step_thread(s: &mut State, forward: bool, cmds: &mut Vec<Cmd>) {
    let n = s.threads.len();
    if n == 0 {
        return;
    }
    let cur = s
        .selected
        .and_then(|id| s.threads.iter().position(|t| t.id == id))
        .unwrap_or(0);
    let i = if forward {
        (cur + 1) % n
    } else {
        (cur + n - 1) % n
    };
    select_index(s, i, cmds);
}
