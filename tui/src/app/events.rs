//! What the client core reports (connection state, the session, pushes, acks) and what the
//! run loop loads for the reducer (the thread list, the outbox, history pages).

use confab_wire::pb::{self, ErrorCode};

use super::actions::{ensure_selection, insert_message, upsert_thread};
use super::config::Level;
use super::highlight::highlighted;
use super::keymap::Action;
use super::msg::{Cmd, Op};
use super::state::{
    Conn, LoginForm, PAGE, Pending, Screen, SendState, State, TrustAsk, worth_retrying,
};
use crate::client::{ClientError, ConnState, Event, FailedItem, OutboxItem, TrustProblem};
use crate::text::{nfc, sanitize};

/// Time passed: typing notices and the status line's notice expire.
pub(super) fn tick(s: &mut State, cmds: &mut Vec<Cmd>) {
    super::notify::tick(s, cmds);
    let now = s.now_ms;
    for t in &mut s.threads {
        t.typing.retain(|(_, until)| *until > now);
    }
    if s.notice.as_ref().is_some_and(|(_, _, u)| *u <= now) {
        s.notice = None;
    }
}

/// The thread list from the cache or the server.
pub(super) fn threads(s: &mut State, list: Vec<(pb::Thread, u64)>, cmds: &mut Vec<Cmd>) {
    for (t, _) in list {
        upsert_thread(s, t, cmds);
    }
    ensure_selection(s, cmds);
    // Unread counted by seq until the entries are here (group changes and one's own do not
    // count): the newest page of each such thread comes from the cache to count them.
    for t in &mut s.threads {
        if t.unread > 0 && !t.loaded && !t.loading {
            t.loading = true;
            cmds.push(Cmd::History {
                thread_id: t.id,
                before_seq: 0,
            });
        }
    }
}

/// The outbox at start: messages queued by an earlier run show as pending, and those the
/// server refused as failed, where they were written.
pub(super) fn outbox(s: &mut State, items: Vec<OutboxItem>, failed: Vec<FailedItem>) {
    for f in failed {
        let known = s
            .thread(f.thread_id)
            .is_some_and(|t| t.pending.iter().any(|p| p.local_id == Some(f.local_id)));
        if !known {
            let key = s.take_key();
            s.thread_entry(f.thread_id).pending.push(Pending {
                key,
                local_id: Some(f.local_id),
                body: f.body,
                created_ms: f.created_ms,
                state: SendState::Failed {
                    reason: f.reason,
                    retry: worth_retrying(f.code),
                },
                quote: None,
            });
        }
    }
    for it in items {
        let known = s
            .thread(it.thread_id)
            .is_some_and(|t| t.pending.iter().any(|p| p.local_id == Some(it.local_id)));
        if !known {
            let key = s.take_key();
            s.thread_entry(it.thread_id).pending.push(Pending {
                key,
                local_id: Some(it.local_id),
                body: it.body,
                created_ms: it.created_ms,
                state: SendState::Queued,
                quote: None,
            });
        }
    }
}

/// A page of history from the cache.
pub(super) fn history(s: &mut State, thread_id: u64, msgs: Vec<pb::ChatMessage>) {
    let me = s.my_id();
    let visible = s.visible(thread_id);
    let t = s.thread_entry(thread_id);
    t.loading = false;
    t.loaded = true;
    if (msgs.len() as u64) < u64::from(PAGE) || msgs.first().is_some_and(|m| m.seq <= 1) {
        t.oldest_done = true;
    }
    for m in msgs {
        insert_message(t, m, me);
    }
    if !visible {
        t.unread = t.count_unread(me);
        if t.unread == 0 {
            t.mentions = 0;
        }
    }
}

/// A send reached the outbox (its local id) or could not be queued.
pub(super) fn queued(s: &mut State, thread_id: u64, key: u64, result: Result<u64, ClientError>) {
    if let Some(t) = s.thread_mut(thread_id)
        && let Some(p) = t.pending.iter_mut().find(|p| p.key == key)
    {
        match result {
            Ok(local) => p.local_id = Some(local),
            Err(e) => {
                p.state = SendState::Failed {
                    reason: e.to_string(),
                    retry: true,
                }
            }
        }
    }
}

pub(super) fn core_event(s: &mut State, ev: Event, cmds: &mut Vec<Cmd>) {
    match ev {
        Event::State(st) => conn_state(s, st, cmds),
        Event::Session {
            user,
            device_id,
            token,
        } => {
            s.me = Some(user.clone());
            s.authed = true;
            if let Screen::Login(_) = s.screen {
                s.screen = Screen::Main;
            }
            cmds.push(Cmd::SaveSession {
                user,
                device_id,
                token,
            });
        }
        Event::Synced => {
            s.conn = Conn::Online;
            s.synced_once = true;
            cmds.push(Cmd::LoadThreads);
            cmds.push(Cmd::LoadOutbox);
            cmds.push(Cmd::Op(Op::LoadFriends));
            cmds.push(Cmd::Op(Op::LoadRequests));
            cmds.push(Cmd::Op(Op::LoadBlocked));
        }
        Event::Thread(t) => {
            upsert_thread(s, t, cmds);
            ensure_selection(s, cmds);
        }
        Event::Message(m) => incoming(s, m, cmds),
        Event::Acked { local_id, ack } => {
            if let Some(t) = s.thread_mut(ack.thread_id) {
                let seq = ack.seq;
                let have = t.messages.contains_key(&seq);
                t.pending.retain_mut(|p| {
                    if p.local_id == Some(local_id) {
                        p.state = SendState::Acked(seq);
                        !have
                    } else {
                        true
                    }
                });
            }
        }
        Event::SendFailed { local_id, error } => {
            let retry = worth_retrying(error.code);
            for t in &mut s.threads {
                for p in &mut t.pending {
                    if p.local_id == Some(local_id) {
                        p.state = SendState::Failed {
                            reason: error.message.clone(),
                            retry,
                        };
                    }
                }
            }
            let keys = &s.settings.keymap;
            let what = if retry {
                format!(
                    "{} retries, {} deletes",
                    keys.first(Action::Retry),
                    keys.first(Action::DeleteFailed)
                )
            } else {
                format!("{} deletes it", keys.first(Action::DeleteFailed))
            };
            // What to do first: a long reason is what a narrow status line cuts.
            s.error(format!("not sent ({what}): {}", error.message));
        }
        Event::SendRetry { error, .. } => s.notice(format!("send delayed: {}", error.message)),
        Event::UserEvent(e) => user_event(s, e, cmds),
        Event::Presence(p) => {
            if let Some(u) = p.user {
                s.presence.insert(u.user_id, p.online);
                for f in &mut s.friends {
                    if f.user.as_ref().is_some_and(|x| x.user_id == u.user_id) {
                        f.online = p.online;
                    }
                }
            }
        }
        Event::Typing(t) => {
            let me = s.my_id();
            let now = s.now_ms;
            if let Some(u) = t.user
                && u.user_id != me
                && let Some(th) = s.thread_mut(t.thread_id)
            {
                let name = nfc(&u.name);
                th.typing.retain(|(n, _)| *n != name);
                // expires_ms 0: they stopped (cleared the draft).
                if t.expires_ms > 0 {
                    th.typing
                        .push((name, now + i64::from(t.expires_ms.max(1000))));
                }
            }
        }
        Event::ReadReceipt(r) => {
            let me = s.my_id();
            let visible = s.visible(r.thread_id);
            if let Some(t) = s.thread_mut(r.thread_id) {
                if r.user.as_ref().is_some_and(|u| u.user_id == me) {
                    t.read_seq = t.read_seq.max(r.read_seq);
                    if !visible {
                        t.unread = t.count_unread(me);
                        if t.unread == 0 {
                            t.mentions = 0;
                        }
                    }
                } else {
                    t.peer_read_seq = t.peer_read_seq.max(r.read_seq);
                }
            }
        }
        Event::Frames { .. } => {}
        Event::Silent { silent, drop_in } => {
            let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4);
            s.silent = Some((s.now_ms - ms(silent), s.now_ms + ms(drop_in)));
        }
        Event::Answering => s.silent = None,
        Event::Transport { encrypted, .. } => s.encrypted = Some(encrypted),
        Event::Limits(l) => {
            if l.max_body_bytes > 0 {
                s.max_body_bytes = l.max_body_bytes as usize;
            }
            s.recall_window_ms = l.recall_window_ms;
        }
        Event::Untrusted(TrustProblem::Unknown {
            server,
            fingerprint,
        }) => {
            s.trust = Some(TrustAsk {
                server,
                fingerprint,
            })
        }
        // The refusal's reason comes with the Stopped state that follows.
        Event::Untrusted(TrustProblem::Refused { .. }) => {}
    }
}

/// The connection's state: the status line, and the login screen when a session is refused
/// or has ended.
fn conn_state(s: &mut State, st: ConnState, cmds: &mut Vec<Cmd>) {
    s.silent = None;
    s.connecting_since = matches!(st, ConnState::Connecting { .. }).then_some(s.now_ms);
    s.conn = match st {
        ConnState::Connecting { .. } => Conn::Connecting,
        ConnState::Online { .. } => {
            if s.notice
                .as_ref()
                .is_some_and(|n| n.0 == "reconnecting now…")
            {
                s.notice = None;
            }
            Conn::Online
        }
        ConnState::Offline { retry_in, reason } => Conn::Offline {
            retry_at_ms: s.now_ms + i64::try_from(retry_in.as_millis()).unwrap_or(i64::MAX / 4),
            reason,
        },
        ConnState::Stopped { code, reason } => Conn::Stopped(code, reason),
    };
    if matches!(s.conn, Conn::Stopped(..)) && s.trust.is_some() {
        // Stopped for the trust prompt: the core waits for its answer (keys.rs).
        if let Screen::Login(f) = &mut s.screen {
            f.busy = false;
            f.error = None;
        }
        return;
    }
    if matches!(s.conn, Conn::Offline { .. } | Conn::Stopped(..)) {
        // Presence seen before the drop is stale; the next sync reloads friends.
        s.presence.clear();
        for f in &mut s.friends {
            f.online = false;
        }
    }
    if let Screen::Login(f) = &mut s.screen
        && f.busy
    {
        match &s.conn {
            Conn::Stopped(code, r) => {
                f.busy = false;
                f.error = Some(stopped_text(*code, r));
                // An invite-only server asks for the code: the caret goes where it is typed.
                if f.register && *code == ErrorCode::Forbidden && r.contains("invitation") {
                    f.field = 4;
                }
                cmds.push(Cmd::Disconnect);
            }
            Conn::Offline { reason, .. } => {
                f.error = Some(format!("cannot connect: {reason} (retrying; Esc cancels)"));
            }
            _ => {}
        }
    } else if let Conn::Stopped(code, r) = &s.conn
        && s.authed
        && matches!(
            code,
            ErrorCode::AuthFailed | ErrorCode::Unauthenticated | ErrorCode::AccountDisabled
        )
    {
        // The session ended under us (logged out or revoked elsewhere, expired with no
        // newer token in the session file): back to the login screen, saying why.
        let reason = r.clone();
        let disabled = *code == ErrorCode::AccountDisabled;
        let name = s.me.as_ref().map(|u| u.name.clone()).unwrap_or_default();
        let (open, now) = (s.selected, s.now_ms);
        *s = State::new(s.settings.clone(), s.server.clone());
        s.last_open = open;
        s.now_ms = now;
        if let Screen::Login(f) = &mut s.screen {
            f.name.set(&name);
            f.field = 2;
            f.error = Some(if disabled {
                // Logging in again would not help: say only what happened.
                stopped_text(ErrorCode::AccountDisabled, &reason)
            } else {
                format!("the session ended ({reason}): log in again")
            });
        }
        cmds.push(Cmd::Disconnect);
    } else if let Conn::Stopped(code, r) = &s.conn
        && !s.authed
        && !matches!(s.screen, Screen::Login(_))
    {
        // The stored session was refused: log in again. (Already at the login screen, after a
        // logout or a deletion, the old core's last word changes nothing.)
        let mut form = LoginForm::default();
        form.server.set(&s.server);
        form.field = 1;
        form.error = Some(stopped_text(*code, r));
        s.screen = Screen::Login(Box::new(form));
        cmds.push(Cmd::Disconnect);
    }
}

/// What to tell the user when the core stopped: by the server's code, the server's message
/// otherwise (without the `BAD_REQUEST: ` code in front: that is for logs).
fn stopped_text(code: ErrorCode, reason: &str) -> String {
    match code {
        ErrorCode::AuthFailed => "wrong name or password".into(),
        ErrorCode::AccountDisabled => "this account was deactivated by an administrator".into(),
        ErrorCode::NameTaken => "that name is taken".into(),
        ErrorCode::RateLimited => "too many attempts: wait a little and try again".into(),
        _ => without_code(reason).to_owned(),
    }
}

/// `CODE_NAME: message` -> `message`; anything else as it is.
fn without_code(reason: &str) -> &str {
    match reason.split_once(": ") {
        Some((code, rest))
            if !code.is_empty() && code.chars().all(|c| c.is_ascii_uppercase() || c == '_') =>
        {
            rest
        }
        _ => reason,
    }
}

fn user_event(s: &mut State, e: pb::UserEvent, cmds: &mut Vec<Cmd>) {
    use pb::user_event::Kind as K;
    let Some(kind) = e.kind else { return };
    match kind {
        K::FriendRequestReceived(r) => {
            let from = r.from.as_ref().map(|u| nfc(&u.name)).unwrap_or_default();
            if !s.requests.iter().any(|x| x.request_id == r.request_id) {
                s.requests.push(r);
            }
            s.notice(format!(
                "friend request from {from} ({} to answer)",
                s.settings.keymap.first(Action::Requests)
            ));
            if s.synced_once {
                cmds.push(Cmd::Notify {
                    title: "confab".into(),
                    body: sanitize(&format!("friend request from {from}")),
                });
            }
        }
        K::FriendRequestAnswered(r) | K::FriendRequestCancelled(r) => {
            s.requests.retain(|x| x.request_id != r.request_id);
            cmds.push(Cmd::Op(Op::LoadFriends));
            cmds.push(Cmd::LoadThreads);
        }
        K::FriendRemoved(u) => {
            // Not a friend: their presence is no longer ours to see (the core refreshes the
            // conversation, which turns read only).
            s.presence.remove(&u.user_id);
            cmds.push(Cmd::Op(Op::LoadFriends));
        }
        K::GroupInvited(g) => {
            let n = nfc(&g.name);
            s.notice(format!(
                "invited to {n} (/group join {n}, or /group decline {n})"
            ))
        }
        K::GroupJoined(_) | K::GroupLeft(_) | K::GroupUpdated(_) => cmds.push(Cmd::LoadThreads),
        K::ThreadAdded(t) => {
            upsert_thread(s, t, cmds);
            ensure_selection(s, cmds);
        }
        // From this device or another: their messages hide (or show) at once.
        K::UserBlocked(u) => {
            s.blocked.insert(u.user_id);
        }
        K::UserUnblocked(u) => {
            s.blocked.remove(&u.user_id);
        }
    }
}

/// A group change that ends one's own membership: why the group is now read only.
fn removed_me(c: &pb::GroupChange, me: u64) -> Option<String> {
    use pb::group_change::Kind;
    let about_me = c.subject.as_ref().is_some_and(|u| u.user_id == me);
    let by = c.actor.as_ref().map(|u| nfc(&u.name)).unwrap_or_default();
    match Kind::try_from(c.kind) {
        Ok(Kind::Kicked) if about_me => {
            Some(format!("read only: {by} removed you from this group"))
        }
        Ok(Kind::Banned) if about_me => Some(format!("read only: {by} banned you from this group")),
        Ok(Kind::Left) if about_me => Some("read only: you left this group".to_owned()),
        _ => None,
    }
}

/// A group's header follows its system entries as they arrive (the next listing confirms):
/// the member count after joins, leaves and kicks, the name after a rename.
fn apply_group_change(g: &mut pb::Group, c: &pb::GroupChange) {
    use pb::group_change::Kind;
    match Kind::try_from(c.kind) {
        Ok(Kind::Joined) => g.member_count = g.member_count.saturating_add(1),
        Ok(Kind::Left | Kind::Kicked | Kind::Banned) => {
            g.member_count = g.member_count.saturating_sub(1).max(1)
        }
        // The entry carries all three, changed or not.
        Ok(Kind::Updated) if !c.name.is_empty() => {
            g.name = c.name.clone();
            g.description = c.description.clone();
            g.open = c.open;
        }
        _ => {}
    }
}

/// The member list (for @-completion) follows joins, leaves and kicks.
fn follow_members(list: &mut Vec<(u64, String)>, c: &pb::GroupChange, u: &pb::User) {
    use pb::group_change::Kind;
    match Kind::try_from(c.kind) {
        Ok(Kind::Joined) if !list.iter().any(|m| m.0 == u.user_id) => {
            list.push((u.user_id, nfc(&u.name)));
        }
        Ok(Kind::Left | Kind::Kicked | Kind::Banned) => list.retain(|m| m.0 != u.user_id),
        _ => {}
    }
}

pub(super) fn incoming(s: &mut State, m: pb::ChatMessage, cmds: &mut Vec<Cmd>) {
    let me = s.me.clone().unwrap_or_default();
    let visible = s.visible(m.thread_id);
    let notify_ok = s.synced_once;
    let thread_id = m.thread_id;
    let mine = m.sender.as_ref().is_some_and(|u| u.user_id == me.user_id);
    // Someone I blocked: stored, shown as hidden, never unread or notified.
    let from_blocked = m
        .sender
        .as_ref()
        .is_some_and(|u| s.blocked.contains(&u.user_id));
    let is_text = m.kind == pb::MessageKind::Text as i32;
    let sender = m.sender.as_ref().map(|u| nfc(&u.name)).unwrap_or_default();
    let body = nfc(&m.body);
    // A reply to one of mine counts as a mention.
    let answers_me = m
        .quote
        .as_ref()
        .and_then(|q| q.sender.as_ref())
        .is_some_and(|u| u.user_id == me.user_id);
    let hl =
        !mine && is_text && (answers_me || highlighted(&body, &me.name, &s.settings.highlight));
    if s.hidden.remove(&thread_id).is_some() {
        // A closed conversation with something new: back in the list, named by the listing.
        super::actions::save_hidden(s, cmds);
        cmds.push(Cmd::LoadThreads);
    }
    if m.kind == pb::MessageKind::Recall as i32
        && s.replying
            .as_ref()
            .is_some_and(|r| r.message_id == m.target_message_id)
    {
        s.replying = None;
        s.notice("the message you were answering was recalled: the draft is a plain message now");
    }
    let t = s.thread_entry(thread_id);
    let fresh = m.seq > t.last_seq;
    let dup = t.messages.contains_key(&m.seq);
    let mut renamed = None;
    if fresh && let (Some(c), Some(g)) = (&m.group_change, t.group.as_mut()) {
        apply_group_change(g, c);
        if let (Some(list), Some(u)) = (t.members.as_mut(), c.subject.as_ref()) {
            follow_members(list, c, u);
        }
        if !g.name.is_empty() && nfc(&g.name) != t.name {
            renamed = Some((std::mem::replace(&mut t.name, nfc(&g.name)), t.name.clone()));
        }
        if let Some(why) = removed_me(c, me.user_id) {
            t.can_send = false;
            t.read_only = Some(why);
        }
    }
    insert_message(t, m.clone(), me.user_id);
    t.typing.retain(|(n, _)| *n != sender);
    if let Some((old, new)) = renamed {
        // Levels are kept by name: a renamed group keeps its level.
        if let Some(level) = s.settings.levels.remove(&old) {
            s.settings.levels.insert(new.clone(), level);
            cmds.push(Cmd::SaveLevel {
                name: old,
                level: super::config::Level::All,
            });
            cmds.push(Cmd::SaveLevel { name: new, level });
        }
    }
    if dup {
        return;
    }
    // Each entry reaches the reducer once from the core (its cursor applies it once): the log
    // gets it once.
    if s.settings.log_dir.is_some()
        && let Some(t) = s.thread(thread_id)
        && let Some(line) = super::export::line(&m, &s.settings.zone)
    {
        let file = super::export::file_name(&t.name, t.kind == super::state::Kind::Group);
        cmds.push(Cmd::Log { file, line });
    }
    let Some(t) = s.thread_mut(thread_id) else {
        return;
    };
    // Counted unread by seq before it was fetched: it does not count after all.
    let me_id = me.user_id;
    if !fresh
        && !visible
        && !super::state::counts_unread(&m, me_id)
        && m.seq > t.read_seq
        && m.seq <= t.last_seq
    {
        t.unread = t.unread.saturating_sub(1);
    }
    if !mine && is_text && !from_blocked {
        if visible && t.scroll == 0 {
            if m.seq > t.read_seq {
                t.read_seq = m.seq;
                cmds.push(Cmd::MarkRead {
                    thread_id,
                    seq: m.seq,
                });
            }
        } else if fresh {
            t.unread += 1;
            if hl {
                t.mentions += 1;
            }
        }
        if s.selected == Some(thread_id)
            && let Some(t) = s.thread_mut(thread_id)
            && t.scroll > 0
        {
            t.new_below += 1;
        }
        let tname = s
            .thread(thread_id)
            .map(|t| t.name.clone())
            .unwrap_or_default();
        let wanted = match s.settings.level(&tname) {
            Level::All => true,
            Level::Mentions => hl,
            Level::None => false,
        };
        if fresh && notify_ok && !visible && wanted {
            let title = if tname == sender {
                sender.clone()
            } else {
                format!("{sender} in {tname}")
            };
            super::notify::incoming(s, thread_id, title, &body, cmds);
        }
    } else if visible && let Some(t) = s.thread_mut(thread_id) {
        let read = t.last_seq.min(m.seq);
        if !mine && t.scroll == 0 && read > t.read_seq {
            // Someone's reaction, edit or group change while the conversation is read: the
            // server's marker follows too, or other devices and the CLI would count it unread.
            cmds.push(Cmd::MarkRead {
                thread_id,
                seq: read,
            });
        }
        t.read_seq = t.read_seq.max(read);
    }
    s.sort_threads();
}
