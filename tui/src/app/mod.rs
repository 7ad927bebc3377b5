//! The terminal client's state and its reducer: `update(&mut State, Msg) -> Vec<Cmd>`.
//!
//! Pure: no I/O, no clock (the run loop sets `State::now_ms`), no terminal. Everything the
//! client does (requests, sends, notifications) leaves as a [`Cmd`]; the run loop executes it on
//! the client core and feeds the result back as a [`Msg`]. The UI therefore never waits on the
//! network: it shows pending states instead.

pub mod commands;
pub mod config;
pub mod keymap;

use std::collections::{BTreeMap, HashMap};

use confab_wire::pb;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use unicode_normalization::UnicodeNormalization;

use crate::client::{Auth, ConnState, Event, OutboxItem};
use crate::text::editor::Editor;
use config::Settings;
use keymap::Action;

/// History pages loaded from the cache at a time.
pub const PAGE: u32 = 200;
/// How long a notice stays on the status line.
const NOTICE_MS: i64 = 8_000;
/// Typing notifications are sent at most this often (the server forwards one per 2 s).
const TYPING_EVERY_MS: i64 = 3_000;

#[derive(Debug, Clone, Default)]
pub struct LoginForm {
    pub server: Editor,
    pub name: Editor,
    pub password: Editor,
    /// 0 server, 1 name, 2 password.
    pub field: usize,
    pub register: bool,
    pub error: Option<String>,
    /// Waiting for the server.
    pub busy: bool,
}

impl LoginForm {
    pub fn field_mut(&mut self) -> &mut Editor {
        match self.field {
            0 => &mut self.server,
            1 => &mut self.name,
            _ => &mut self.password,
        }
    }
}

#[derive(Debug, Clone)]
pub enum Screen {
    Login(Box<LoginForm>),
    Main,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendState {
    /// In the outbox (offline, or waiting for the ack).
    Queued,
    /// Stored by the server as this seq; the entry itself has not arrived yet.
    Acked(u64),
    Failed(String),
}

/// One of my messages not yet in the thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// UI key (the outbox id is only known once queued).
    pub key: u64,
    pub local_id: Option<u64>,
    pub body: String,
    pub created_ms: i64,
    pub state: SendState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Private,
    Group,
}

#[derive(Debug, Clone)]
pub struct ThreadView {
    pub id: u64,
    pub kind: Kind,
    pub name: String,
    pub peer_id: u64,
    pub group: Option<pb::Group>,
    pub last_seq: u64,
    pub read_seq: u64,
    pub peer_read_seq: u64,
    pub activity_id: u64,
    pub unread: u64,
    pub mentions: u64,
    pub can_send: bool,
    pub messages: BTreeMap<u64, pb::ChatMessage>,
    pub pending: Vec<Pending>,
    /// The composer's text while another thread is shown.
    pub draft: Editor,
    /// Lines scrolled up from the bottom (0 = following new messages).
    pub scroll: usize,
    /// Messages that arrived while scrolled up.
    pub new_below: u64,
    /// History requested from the cache at least once.
    pub loaded: bool,
    pub loading: bool,
    /// Nothing older exists.
    pub oldest_done: bool,
    /// Entries after this seq were unread when the thread was opened ("new" divider).
    pub marker_seq: u64,
    /// (name, until_ms).
    pub typing: Vec<(String, i64)>,
    pub search: Option<String>,
}

impl ThreadView {
    pub fn new(id: u64) -> Self {
        Self {
            id,
            kind: Kind::Private,
            name: format!("#{id}"),
            peer_id: 0,
            group: None,
            last_seq: 0,
            read_seq: 0,
            peer_read_seq: 0,
            activity_id: 0,
            unread: 0,
            mentions: 0,
            can_send: true,
            messages: BTreeMap::new(),
            pending: Vec::new(),
            draft: Editor::new(),
            scroll: 0,
            new_below: 0,
            loaded: false,
            loading: false,
            oldest_done: false,
            marker_seq: u64::MAX,
            typing: Vec::new(),
            search: None,
        }
    }

    pub fn preview(&self) -> Option<&pb::ChatMessage> {
        self.messages.values().next_back()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Conn {
    Connecting,
    Online,
    /// Reconnecting at `retry_at_ms`.
    Offline {
        retry_at_ms: i64,
        reason: String,
    },
    Stopped(String),
}

#[derive(Debug, Clone)]
pub enum Popup {
    Help {
        scroll: usize,
    },
    Requests {
        sel: usize,
    },
    AddFriend {
        query: Editor,
        results: Vec<pb::Profile>,
        sel: usize,
        searched: String,
    },
    Group {
        name: Editor,
        join: bool,
    },
    Members {
        group_id: u64,
        members: Vec<pb::GroupMember>,
        sel: usize,
    },
    Switcher {
        query: Editor,
        sel: usize,
    },
}

/// Everything on screen.
#[derive(Debug, Clone)]
pub struct State {
    pub settings: Settings,
    pub screen: Screen,
    pub server: String,
    pub me: Option<pb::User>,
    /// The server accepted us on this run (a Session event arrived).
    pub authed: bool,
    pub conn: Conn,
    pub synced_once: bool,
    /// Sorted by activity, newest first.
    pub threads: Vec<ThreadView>,
    pub selected: Option<u64>,
    pub composer: Editor,
    pub friends: Vec<pb::Friend>,
    pub requests: Vec<pb::FriendRequest>,
    pub presence: HashMap<u64, bool>,
    pub popup: Option<Popup>,
    /// (text, is_error, until_ms).
    pub notice: Option<(String, bool, i64)>,
    pub focused: bool,
    pub size: (u16, u16),
    pub now_ms: i64,
    pub sent_history: Vec<String>,
    pub history_pos: Option<usize>,
    pub quit_armed: bool,
    pub quit: bool,
    /// Ctrl-R search through sent messages: (query, index of the match, text before).
    pub rsearch: Option<(String, Option<usize>, String)>,
    /// vim preset: reading mode (keys scroll and switch instead of typing).
    pub normal_mode: bool,
    next_key: u64,
    last_typing_ms: i64,
}

/// Inputs to the reducer.
// Messages are moved once from the loop into `update`, never stored in bulk: boxing the core
// event would only add an allocation per event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Msg {
    Key(KeyEvent),
    /// A bracketed paste (crossterm delivers it whole).
    Paste(String),
    Resize(u16, u16),
    Focus(bool),
    /// Time passed (countdowns, typing expiry, notices).
    Tick,
    Core(Event),
    Threads(Vec<(pb::Thread, u64)>),
    Outbox(Vec<OutboxItem>),
    History {
        thread_id: u64,
        msgs: Vec<pb::ChatMessage>,
    },
    Queued {
        thread_id: u64,
        key: u64,
        result: Result<u64, String>,
    },
    Done(Done),
}

/// Results of [`Op`]s.
#[derive(Debug, Clone)]
pub enum Done {
    Friends(Vec<pb::Friend>),
    Requests(Vec<pb::FriendRequest>),
    Users(Vec<pb::Profile>),
    Members(u64, Vec<pb::GroupMember>),
    /// A conversation to show (and text to send there).
    Open(Box<pb::Thread>, Option<String>),
    Info(String),
    Error(String),
    LoggedOut,
}

/// Multi-step operations on the client core, run as tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    LoadFriends,
    LoadRequests,
    SearchUsers(String),
    AddFriend(String),
    Respond { request_id: u64, accept: bool },
    CreateGroup(String),
    JoinGroup(String),
    LeaveGroup(u64),
    Invite(u64, String),
    Kick(u64, u64, String),
    SetRole(u64, u64, String, pb::Role),
    Members(u64),
    OpenDm(String, Option<String>),
    Logout,
}

/// Effects, executed by the run loop.
#[derive(Debug, Clone)]
pub enum Cmd {
    Connect {
        server: String,
        auth: Auth,
        name: String,
    },
    /// Stop the client core (login cancelled or refused).
    Disconnect,
    SaveSession {
        user: pb::User,
        device_id: u64,
        token: String,
    },
    Send {
        thread_id: u64,
        key: u64,
        body: String,
    },
    History {
        thread_id: u64,
        before_seq: u64,
    },
    LoadThreads,
    LoadOutbox,
    Op(Op),
    MarkRead {
        thread_id: u64,
        seq: u64,
    },
    Typing(u64),
    Notify {
        title: String,
        body: String,
    },
    ReconnectNow,
    /// Repaint everything (Ctrl-L).
    Redraw,
    /// Stop the process like any terminal program (Ctrl-Z); `fg` resumes and repaints.
    Suspend,
    Quit,
}

fn nfc(s: &str) -> String {
    s.nfc().collect()
}

/// Text safe for a notification or the title: no control characters.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

impl State {
    pub fn new(settings: Settings, server: String) -> Self {
        let mut form = LoginForm::default();
        form.server.set(&server);
        form.field = 1;
        State {
            settings,
            screen: Screen::Login(Box::new(form)),
            server,
            me: None,
            authed: false,
            conn: Conn::Connecting,
            synced_once: false,
            threads: Vec::new(),
            selected: None,
            composer: Editor::new(),
            friends: Vec::new(),
            requests: Vec::new(),
            presence: HashMap::new(),
            popup: None,
            notice: None,
            focused: true,
            size: (80, 24),
            now_ms: 0,
            sent_history: Vec::new(),
            history_pos: None,
            quit_armed: false,
            quit: false,
            rsearch: None,
            normal_mode: false,
            next_key: 1,
            last_typing_ms: i64::MIN / 2,
        }
    }

    /// Starts on the main screen resuming a stored session of `me`: the cached conversations
    /// show before the server answers (or while it cannot be reached).
    pub fn resuming(mut self, me: Option<pb::User>) -> Self {
        self.screen = Screen::Main;
        self.me = me;
        self
    }

    pub fn thread(&self, id: u64) -> Option<&ThreadView> {
        self.threads.iter().find(|t| t.id == id)
    }

    fn thread_mut(&mut self, id: u64) -> Option<&mut ThreadView> {
        self.threads.iter_mut().find(|t| t.id == id)
    }

    fn thread_entry(&mut self, id: u64) -> &mut ThreadView {
        if let Some(i) = self.threads.iter().position(|t| t.id == id) {
            return &mut self.threads[i];
        }
        self.threads.push(ThreadView::new(id));
        let last = self.threads.len() - 1;
        &mut self.threads[last]
    }

    pub fn current(&self) -> Option<&ThreadView> {
        self.selected.and_then(|id| self.thread(id))
    }

    fn current_mut(&mut self) -> Option<&mut ThreadView> {
        let id = self.selected?;
        self.thread_mut(id)
    }

    pub fn my_id(&self) -> u64 {
        self.me.as_ref().map_or(0, |u| u.user_id)
    }

    pub fn total_unread(&self) -> u64 {
        self.threads.iter().map(|t| t.unread).sum()
    }

    /// The terminal title.
    pub fn title(&self) -> String {
        let n = self.total_unread();
        let name = self.current().map(|t| t.name.as_str()).unwrap_or("");
        let base = if name.is_empty() {
            "confab".to_owned()
        } else {
            format!("{} - confab", sanitize(name))
        };
        if n > 0 { format!("({n}) {base}") } else { base }
    }

    /// When the run loop should send a Tick next, if anything changes with time.
    pub fn next_wakeup(&self) -> Option<i64> {
        let mut t: Option<i64> = None;
        let mut at = |x: i64| t = Some(t.map_or(x, |y| y.min(x)));
        if let Conn::Offline { .. } = self.conn {
            // The countdown shows whole seconds.
            at(self.now_ms + 1000 - self.now_ms.rem_euclid(1000));
        }
        if let Some((_, _, until)) = &self.notice {
            at(*until);
        }
        for th in &self.threads {
            for (_, until) in &th.typing {
                at(*until);
            }
        }
        t
    }

    pub fn notice(&mut self, text: impl Into<String>) {
        self.notice = Some((text.into(), false, self.now_ms + NOTICE_MS));
    }

    pub fn error(&mut self, text: impl Into<String>) {
        self.notice = Some((text.into(), true, self.now_ms + NOTICE_MS));
    }

    fn sort_threads(&mut self) {
        self.threads
            .sort_by(|a, b| b.activity_id.cmp(&a.activity_id).then(a.id.cmp(&b.id)));
    }

    /// Names to complete: friends, groups, conversations.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .friends
            .iter()
            .filter_map(|f| f.user.as_ref().map(|u| u.name.clone()))
            .chain(self.threads.iter().map(|t| t.name.clone()))
            .collect();
        v.sort();
        v.dedup();
        v
    }

    fn visible(&self, thread_id: u64) -> bool {
        self.focused && self.selected == Some(thread_id) && matches!(self.screen, Screen::Main)
    }

    /// Chat rows available (the run loop keeps `size` current).
    pub fn chat_height(&self) -> usize {
        usize::from(self.size.1).saturating_sub(4).max(1)
    }
}

/// The reducer.
pub fn update(s: &mut State, msg: Msg) -> Vec<Cmd> {
    let mut cmds = Vec::new();
    match msg {
        Msg::Key(k) => {
            if k.kind == crossterm::event::KeyEventKind::Release {
                return cmds;
            }
            // Suspending works on every screen and in every popup.
            if s.settings.keymap.action(&k) == Some(Action::Suspend) {
                cmds.push(Cmd::Suspend);
                return cmds;
            }
            match s.screen {
                Screen::Login(_) => login_key(s, k, &mut cmds),
                Screen::Main => main_key(s, k, &mut cmds),
            }
        }
        Msg::Paste(text) => paste(s, &text),
        Msg::Resize(w, h) => s.size = (w, h),
        Msg::Focus(f) => {
            s.focused = f;
            if f && let Some(id) = s.selected {
                mark_read(s, id, &mut cmds);
            }
        }
        Msg::Tick => {
            let now = s.now_ms;
            for t in &mut s.threads {
                t.typing.retain(|(_, until)| *until > now);
            }
            if s.notice.as_ref().is_some_and(|(_, _, u)| *u <= now) {
                s.notice = None;
            }
        }
        Msg::Core(ev) => core_event(s, ev, &mut cmds),
        Msg::Threads(list) => {
            for (t, _) in list {
                upsert_thread(s, t, &mut cmds);
            }
            ensure_selection(s, &mut cmds);
        }
        Msg::Outbox(items) => {
            for it in items {
                let known = s
                    .thread(it.thread_id)
                    .is_some_and(|t| t.pending.iter().any(|p| p.local_id == Some(it.local_id)));
                if !known {
                    let key = s.next_key;
                    s.next_key += 1;
                    s.thread_entry(it.thread_id).pending.push(Pending {
                        key,
                        local_id: Some(it.local_id),
                        body: it.body,
                        created_ms: it.created_ms,
                        state: SendState::Queued,
                    });
                }
            }
        }
        Msg::History { thread_id, msgs } => {
            let t = s.thread_entry(thread_id);
            t.loading = false;
            t.loaded = true;
            if (msgs.len() as u64) < u64::from(PAGE) || msgs.first().is_some_and(|m| m.seq <= 1) {
                t.oldest_done = true;
            }
            for m in msgs {
                insert_message(t, m);
            }
        }
        Msg::Queued {
            thread_id,
            key,
            result,
        } => {
            if let Some(t) = s.thread_mut(thread_id)
                && let Some(p) = t.pending.iter_mut().find(|p| p.key == key)
            {
                match result {
                    Ok(local) => p.local_id = Some(local),
                    Err(e) => p.state = SendState::Failed(e),
                }
            }
        }
        Msg::Done(d) => done(s, d, &mut cmds),
    }
    cmds
}

fn done(s: &mut State, d: Done, cmds: &mut Vec<Cmd>) {
    match d {
        Done::Friends(mut f) => {
            // The server pages by user id; people look for names.
            f.sort_by_cached_key(|fr| fr.user.as_ref().map(|u| u.name.to_lowercase()));
            for fr in &f {
                if let Some(u) = &fr.user {
                    s.presence.insert(u.user_id, fr.online);
                }
            }
            s.friends = f;
        }
        Done::Requests(r) => {
            s.requests = r
                .into_iter()
                .filter(|r| r.state == pb::RequestState::Pending as i32)
                .collect();
            if let Some(Popup::Requests { sel }) = &mut s.popup {
                *sel = (*sel).min(s.requests.len().saturating_sub(1));
            }
        }
        Done::Users(u) => {
            if let Some(Popup::AddFriend { results, sel, .. }) = &mut s.popup {
                *results = u;
                *sel = 0;
            }
        }
        Done::Members(gid, m) => {
            if let Some(Popup::Members {
                group_id,
                members,
                sel,
            }) = &mut s.popup
                && *group_id == gid
            {
                *members = m;
                *sel = (*sel).min(members.len().saturating_sub(1));
            }
        }
        Done::Open(t, text) => {
            let id = t.thread_id;
            upsert_thread(s, *t, cmds);
            select(s, id, cmds);
            if let Some(text) = text {
                send_text(s, text, cmds);
            }
        }
        Done::Info(i) => s.notice(i),
        Done::Error(e) => s.error(e),
        Done::LoggedOut => {
            let server = s.server.clone();
            let settings = s.settings.clone();
            *s = State::new(settings, server);
            s.notice("logged out");
        }
    }
}

fn core_event(s: &mut State, ev: Event, cmds: &mut Vec<Cmd>) {
    match ev {
        Event::State(st) => {
            s.conn = match st {
                ConnState::Connecting { .. } => Conn::Connecting,
                ConnState::Online { .. } => Conn::Online,
                ConnState::Offline { retry_in, reason } => Conn::Offline {
                    retry_at_ms: s.now_ms
                        + i64::try_from(retry_in.as_millis()).unwrap_or(i64::MAX / 4),
                    reason,
                },
                ConnState::Stopped { reason } => Conn::Stopped(reason),
            };
            if matches!(s.conn, Conn::Offline { .. } | Conn::Stopped(_)) {
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
                    Conn::Stopped(r) => {
                        f.busy = false;
                        f.error = Some(friendly_auth_error(r));
                        cmds.push(Cmd::Disconnect);
                    }
                    Conn::Offline { reason, .. } => {
                        f.error = Some(format!("cannot connect: {reason} (retrying; Esc cancels)"));
                    }
                    _ => {}
                }
            } else if let Conn::Stopped(r) = &s.conn
                && !s.authed
            {
                // The stored session was refused: log in again.
                let mut form = LoginForm::default();
                form.server.set(&s.server);
                form.field = 1;
                form.error = Some(friendly_auth_error(r));
                s.screen = Screen::Login(Box::new(form));
                cmds.push(Cmd::Disconnect);
            }
        }
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
            for t in &mut s.threads {
                for p in &mut t.pending {
                    if p.local_id == Some(local_id) {
                        p.state = SendState::Failed(error.message.clone());
                    }
                }
            }
            s.error(format!(
                "not sent: {} ({} retries)",
                error.message,
                s.settings.keymap.first(Action::Retry)
            ));
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
                let until = now + i64::from(t.expires_ms.max(1000));
                th.typing.retain(|(n, _)| *n != u.name);
                th.typing.push((nfc(&u.name), until));
            }
        }
        Event::ReadReceipt(r) => {
            let me = s.my_id();
            let visible = s.visible(r.thread_id);
            if let Some(t) = s.thread_mut(r.thread_id) {
                if r.user.as_ref().is_some_and(|u| u.user_id == me) {
                    t.read_seq = t.read_seq.max(r.read_seq);
                    if !visible {
                        t.unread = t.last_seq.saturating_sub(t.read_seq);
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
    }
}

fn friendly_auth_error(r: &str) -> String {
    if r.contains("AUTH_FAILED") {
        "wrong name or password".into()
    } else if r.contains("CONFLICT") || r.contains("taken") {
        "that name is taken".into()
    } else {
        r.to_owned()
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
        K::FriendRemoved(_) => cmds.push(Cmd::Op(Op::LoadFriends)),
        K::GroupInvited(g) => s.notice(format!(
            "invited to {} (/group join {})",
            nfc(&g.name),
            nfc(&g.name)
        )),
        K::GroupJoined(_) | K::GroupLeft(_) | K::GroupUpdated(_) => cmds.push(Cmd::LoadThreads),
        K::ThreadAdded(t) => {
            upsert_thread(s, t, cmds);
            ensure_selection(s, cmds);
        }
    }
}

fn upsert_thread(s: &mut State, t: pb::Thread, cmds: &mut Vec<Cmd>) {
    let visible = s.visible(t.thread_id);
    let th = s.thread_entry(t.thread_id);
    if let Some(p) = &t.peer {
        th.kind = Kind::Private;
        th.name = nfc(&p.name);
        th.peer_id = p.user_id;
    }
    if let Some(g) = &t.group {
        th.kind = Kind::Group;
        th.name = nfc(&g.name);
        th.group = Some(g.clone());
    }
    if t.kind == pb::ThreadKind::Group as i32 {
        th.kind = Kind::Group;
    }
    th.last_seq = th.last_seq.max(t.last_seq);
    th.read_seq = th.read_seq.max(t.read_seq);
    th.peer_read_seq = th.peer_read_seq.max(t.peer_read_seq);
    th.activity_id = th.activity_id.max(t.activity_id);
    th.can_send = t.can_send;
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
        th.unread = th.last_seq.saturating_sub(th.read_seq);
        if th.unread == 0 {
            th.mentions = 0;
        }
    }
    s.sort_threads();
}

fn ensure_selection(s: &mut State, cmds: &mut Vec<Cmd>) {
    if s.selected.is_none()
        && let Some(id) = s.threads.first().map(|t| t.id)
    {
        select(s, id, cmds);
    }
}

/// Applies an entry to a thread's message map (edits and recalls change their target).
fn insert_message(t: &mut ThreadView, mut m: pb::ChatMessage) {
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
        }
        _ => {}
    }
    let seq = m.seq;
    t.pending
        .retain(|p| !matches!(p.state, SendState::Acked(s) if s == seq));
    t.last_seq = t.last_seq.max(seq);
    t.activity_id = t.activity_id.max(m.message_id);
    t.messages.insert(seq, m);
}

fn mentions(body: &str, me: &str) -> bool {
    !me.is_empty()
        && body
            .to_lowercase()
            .contains(&format!("@{}", me.to_lowercase()))
}

fn incoming(s: &mut State, m: pb::ChatMessage, cmds: &mut Vec<Cmd>) {
    let me = s.me.clone().unwrap_or_default();
    let visible = s.visible(m.thread_id);
    let notify_ok = s.synced_once;
    let thread_id = m.thread_id;
    let mine = m.sender.as_ref().is_some_and(|u| u.user_id == me.user_id);
    let is_text = m.kind == pb::MessageKind::Text as i32;
    let sender = m.sender.as_ref().map(|u| nfc(&u.name)).unwrap_or_default();
    let t = s.thread_entry(thread_id);
    let fresh = m.seq > t.last_seq;
    let dup = t.messages.contains_key(&m.seq);
    let body = nfc(&m.body);
    insert_message(t, m.clone());
    t.typing.retain(|(n, _)| *n != sender);
    if dup {
        return;
    }
    if !mine && is_text {
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
            if mentions(&body, &me.name) {
                t.mentions += 1;
            }
        }
        if s.selected == Some(thread_id)
            && let Some(t) = s.thread_mut(thread_id)
            && t.scroll > 0
        {
            t.new_below += 1;
        }
        if fresh && notify_ok && !visible {
            let tname = s
                .thread(thread_id)
                .map(|t| t.name.clone())
                .unwrap_or_default();
            let title = if tname == sender {
                sender.clone()
            } else {
                format!("{sender} in {tname}")
            };
            cmds.push(Cmd::Notify {
                title: sanitize(&title),
                body: sanitize(&crate::text::truncate(&body, 120, s.settings.ambiguous)),
            });
        }
    } else if visible && let Some(t) = s.thread_mut(thread_id) {
        t.read_seq = t.read_seq.max(t.last_seq.min(m.seq));
    }
    s.sort_threads();
}

fn mark_read(s: &mut State, id: u64, cmds: &mut Vec<Cmd>) {
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
fn select(s: &mut State, id: u64, cmds: &mut Vec<Cmd>) {
    if s.selected == Some(id) {
        return;
    }
    let mut composer = std::mem::take(&mut s.composer);
    if let Some(old) = s.current_mut() {
        std::mem::swap(&mut old.draft, &mut composer);
        old.search = None;
    }
    s.selected = Some(id);
    s.history_pos = None;
    let mut composer = std::mem::take(&mut s.composer);
    let t = s.thread_entry(id);
    std::mem::swap(&mut t.draft, &mut composer);
    s.composer = composer;
    let t = s.thread_entry(id);
    t.marker_seq = t.read_seq;
    t.scroll = 0;
    t.new_below = 0;
    if !t.loaded && !t.loading {
        t.loading = true;
        cmds.push(Cmd::History {
            thread_id: id,
            before_seq: 0,
        });
    }
    mark_read(s, id, cmds);
}

fn select_index(s: &mut State, i: usize, cmds: &mut Vec<Cmd>) {
    if let Some(id) = s.threads.get(i).map(|t| t.id) {
        select(s, id, cmds);
    }
}

fn paste(s: &mut State, text: &str) {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let lines = text.lines().count();
    match (&mut s.screen, &mut s.popup) {
        (Screen::Login(f), _) => f.field_mut().insert(text.lines().next().unwrap_or("")),
        (Screen::Main, Some(p)) => {
            if let Some(e) = popup_input(p) {
                e.insert(text.lines().next().unwrap_or(""));
            }
        }
        (Screen::Main, None) => {
            s.composer.insert(&text);
            if lines > 1 {
                s.notice(format!("pasted {lines} lines (not sent: Enter sends)"));
            }
        }
    }
}

fn popup_input(p: &mut Popup) -> Option<&mut Editor> {
    match p {
        Popup::AddFriend { query, .. } => Some(query),
        Popup::Group { name, .. } => Some(name),
        Popup::Switcher { query, .. } => Some(query),
        _ => None,
    }
}

/// Plain text keys: a character without Ctrl/Alt.
fn typed_char(k: &KeyEvent) -> Option<char> {
    match k.code {
        KeyCode::Char(c)
            if !k.modifiers.contains(KeyModifiers::CONTROL)
                && !k.modifiers.contains(KeyModifiers::ALT) =>
        {
            Some(c)
        }
        _ => None,
    }
}

/// Basic line editing for single-line inputs (login fields, popup queries).
fn edit_line(e: &mut Editor, k: &KeyEvent) -> bool {
    if let Some(c) = typed_char(k) {
        e.insert(c.encode_utf8(&mut [0; 4]));
        return true;
    }
    let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
    match (k.code, ctrl) {
        (KeyCode::Backspace, _) | (KeyCode::Char('h'), true) => e.backspace(),
        (KeyCode::Delete, _) => e.delete(),
        (KeyCode::Left, _) | (KeyCode::Char('b'), true) => e.left(),
        (KeyCode::Right, _) | (KeyCode::Char('f'), true) => e.right(),
        (KeyCode::Home, _) | (KeyCode::Char('a'), true) => e.home(),
        (KeyCode::End, _) | (KeyCode::Char('e'), true) => e.end(),
        (KeyCode::Char('u'), true) => e.kill_to_start(),
        (KeyCode::Char('w'), true) => e.kill_word_back(),
        (KeyCode::Char('y'), true) => e.yank(),
        _ => return false,
    }
    true
}

fn login_key(s: &mut State, k: KeyEvent, cmds: &mut Vec<Cmd>) {
    let Screen::Login(f) = &mut s.screen else {
        return;
    };
    let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
    match k.code {
        KeyCode::Char('c') if ctrl => {
            s.quit = true;
            cmds.push(Cmd::Quit);
        }
        KeyCode::Char('t') if ctrl => f.register = !f.register,
        KeyCode::Esc if f.busy => {
            f.busy = false;
            f.error = Some("cancelled".into());
            cmds.push(Cmd::Disconnect);
        }
        KeyCode::Tab | KeyCode::Down => f.field = (f.field + 1) % 3,
        KeyCode::BackTab | KeyCode::Up => f.field = (f.field + 2) % 3,
        KeyCode::Enter if f.field < 2 => f.field += 1,
        KeyCode::Enter => {
            if f.busy {
                return;
            }
            let server = f.server.text().trim().to_owned();
            let name = nfc(f.name.text().trim());
            let password = f.password.text().to_owned();
            if server.is_empty() || name.is_empty() || password.is_empty() {
                f.error = Some("server, name and password are all needed".into());
                return;
            }
            f.busy = true;
            f.error = None;
            s.server = server.clone();
            let auth = if f.register {
                Auth::Register {
                    name: name.clone(),
                    password,
                }
            } else {
                Auth::Login {
                    name: name.clone(),
                    password,
                }
            };
            cmds.push(Cmd::Connect { server, auth, name });
        }
        _ => {
            if !f.busy {
                edit_line(f.field_mut(), &k);
            }
        }
    }
}

fn open_popup(s: &mut State, p: Popup, cmds: &mut Vec<Cmd>) {
    match &p {
        Popup::Requests { .. } => cmds.push(Cmd::Op(Op::LoadRequests)),
        Popup::Members { group_id, .. } => cmds.push(Cmd::Op(Op::Members(*group_id))),
        _ => {}
    }
    s.popup = Some(p);
}

fn members_popup(s: &mut State, cmds: &mut Vec<Cmd>) {
    match s
        .current()
        .and_then(|t| t.group.as_ref().map(|g| g.group_id))
    {
        Some(group_id) => open_popup(
            s,
            Popup::Members {
                group_id,
                members: Vec::new(),
                sel: 0,
            },
            cmds,
        ),
        None => s.error("this conversation is not a group"),
    }
}

/// Threads matching a switcher query, best first: a case-insensitive subsequence match,
/// scored by how early and how tightly the letters match.
pub fn switcher_matches(s: &State, query: &str) -> Vec<u64> {
    let q: Vec<char> = query.to_lowercase().chars().collect();
    let mut scored: Vec<(i64, usize, u64)> = s
        .threads
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            let name: Vec<char> = t.name.to_lowercase().chars().collect();
            let mut score = 0i64;
            let mut pos = 0usize;
            let mut last: Option<usize> = None;
            for c in &q {
                let found = name[pos..].iter().position(|x| x == c)? + pos;
                score += match last {
                    Some(l) if found == l + 1 => 3,
                    _ => 1,
                };
                if found == 0 {
                    score += 2;
                }
                last = Some(found);
                pos = found + 1;
            }
            Some((score, i, t.id))
        })
        .collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().map(|(_, _, id)| id).collect()
}

fn popup_key(s: &mut State, k: KeyEvent, cmds: &mut Vec<Cmd>) {
    let Some(mut p) = s.popup.take() else { return };
    let keep = match &mut p {
        Popup::Help { scroll } => match k.code {
            KeyCode::Esc | KeyCode::Enter | KeyCode::Char('q') | KeyCode::F(1) => false,
            KeyCode::Down | KeyCode::Char('j') => {
                *scroll += 1;
                true
            }
            KeyCode::Up | KeyCode::Char('k') => {
                *scroll = scroll.saturating_sub(1);
                true
            }
            KeyCode::PageDown => {
                *scroll += 10;
                true
            }
            KeyCode::PageUp => {
                *scroll = scroll.saturating_sub(10);
                true
            }
            _ => true,
        },
        Popup::Requests { sel } => match k.code {
            KeyCode::Esc | KeyCode::Char('q') => false,
            KeyCode::Down | KeyCode::Char('j') => {
                *sel = (*sel + 1).min(s.requests.len().saturating_sub(1));
                true
            }
            KeyCode::Up | KeyCode::Char('k') => {
                *sel = sel.saturating_sub(1);
                true
            }
            KeyCode::Char('a') | KeyCode::Enter | KeyCode::Char('d') | KeyCode::Char('x') => {
                if let Some(r) = s.requests.get(*sel) {
                    let accept = matches!(k.code, KeyCode::Char('a') | KeyCode::Enter);
                    cmds.push(Cmd::Op(Op::Respond {
                        request_id: r.request_id,
                        accept,
                    }));
                    let id = r.request_id;
                    s.requests.retain(|x| x.request_id != id);
                    *sel = (*sel).min(s.requests.len().saturating_sub(1));
                }
                true
            }
            _ => true,
        },
        Popup::AddFriend {
            query,
            results,
            sel,
            searched,
        } => match k.code {
            KeyCode::Esc => false,
            KeyCode::Down => {
                *sel = (*sel + 1).min(results.len().saturating_sub(1));
                true
            }
            KeyCode::Up => {
                *sel = sel.saturating_sub(1);
                true
            }
            KeyCode::Enter => {
                let q = query.text().trim().to_owned();
                if !results.is_empty() && *searched == q {
                    if let Some(u) = results.get(*sel).and_then(|p| p.user.clone()) {
                        cmds.push(Cmd::Op(Op::AddFriend(u.name)));
                    }
                    false
                } else if !q.is_empty() {
                    *searched = q.clone();
                    cmds.push(Cmd::Op(Op::SearchUsers(q)));
                    true
                } else {
                    true
                }
            }
            _ => {
                edit_line(query, &k);
                true
            }
        },
        Popup::Group { name, join } => match k.code {
            KeyCode::Esc => false,
            KeyCode::Tab | KeyCode::BackTab => {
                *join = !*join;
                true
            }
            KeyCode::Enter => {
                let n = nfc(name.text().trim());
                if n.is_empty() {
                    true
                } else {
                    cmds.push(Cmd::Op(if *join {
                        Op::JoinGroup(n)
                    } else {
                        Op::CreateGroup(n)
                    }));
                    false
                }
            }
            _ => {
                edit_line(name, &k);
                true
            }
        },
        Popup::Members {
            group_id,
            members,
            sel,
        } => match k.code {
            KeyCode::Esc | KeyCode::Char('q') => false,
            KeyCode::Down | KeyCode::Char('j') => {
                *sel = (*sel + 1).min(members.len().saturating_sub(1));
                true
            }
            KeyCode::Up | KeyCode::Char('k') => {
                *sel = sel.saturating_sub(1);
                true
            }
            KeyCode::Char('x') | KeyCode::Char('p') => {
                let allowed = s
                    .threads
                    .iter()
                    .filter_map(|t| t.group.as_ref())
                    .any(|g| g.group_id == *group_id && g.my_role >= pb::Role::Admin as i32);
                if !allowed {
                    s.error("only the owner and admins can do that");
                } else if let Some(m) = members.get(*sel)
                    && let Some(u) = &m.user
                {
                    if k.code == KeyCode::Char('x') {
                        cmds.push(Cmd::Op(Op::Kick(*group_id, u.user_id, u.name.clone())));
                    } else {
                        let role = if m.role == pb::Role::Admin as i32 {
                            pb::Role::Member
                        } else {
                            pb::Role::Admin
                        };
                        cmds.push(Cmd::Op(Op::SetRole(
                            *group_id,
                            u.user_id,
                            u.name.clone(),
                            role,
                        )));
                    }
                }
                true
            }
            _ => true,
        },
        Popup::Switcher { query, sel } => match k.code {
            KeyCode::Esc => false,
            KeyCode::Down | KeyCode::Tab => {
                *sel += 1;
                true
            }
            KeyCode::Up | KeyCode::BackTab => {
                *sel = sel.saturating_sub(1);
                true
            }
            KeyCode::Enter => {
                let m = switcher_matches(s, query.text());
                if let Some(id) = m.get((*sel).min(m.len().saturating_sub(1))) {
                    select(s, *id, cmds);
                }
                false
            }
            _ => {
                if edit_line(query, &k) {
                    *sel = 0;
                }
                true
            }
        },
    };
    if keep && s.popup.is_none() {
        s.popup = Some(p);
    }
}

fn main_key(s: &mut State, k: KeyEvent, cmds: &mut Vec<Cmd>) {
    if s.popup.is_some() {
        popup_key(s, k, cmds);
        return;
    }
    let action = s.settings.keymap.action(&k);
    if s.rsearch.is_some() && reverse_search_key(s, &k, action) {
        return;
    }
    if s.normal_mode && normal_key(s, &k, cmds) {
        return;
    }
    if action != Some(Action::Interrupt) {
        s.quit_armed = false;
    }
    let Some(action) = action else {
        if let Some(c) = typed_char(&k) {
            s.composer.insert(c.encode_utf8(&mut [0; 4]));
            s.history_pos = None;
            typing(s, cmds);
        }
        return;
    };
    let e = &mut s.composer;
    match action {
        Action::Send => {
            let text = s.composer.text().to_owned();
            if text.trim().is_empty() {
                return;
            }
            if text.starts_with('/') && !text.starts_with("//") {
                s.composer.take();
                remember(s, &text);
                run_command(s, &text, cmds);
            } else {
                let text = text.strip_prefix('/').map_or(text.clone(), str::to_owned);
                if send_text(s, text.clone(), cmds) {
                    s.composer.take();
                    remember(s, &text);
                }
            }
        }
        Action::Newline => e.insert("\n"),
        Action::Left => e.left(),
        Action::Right => e.right(),
        Action::WordLeft => e.word_left(),
        Action::WordRight => e.word_right(),
        Action::LineStart => e.home(),
        Action::LineEnd => e.end(),
        Action::Backspace => e.backspace(),
        Action::Delete => e.delete(),
        Action::KillWord => e.kill_word_back(),
        Action::KillToStart => e.kill_to_start(),
        Action::KillToEnd => e.kill_to_end(),
        Action::Yank => e.yank(),
        Action::Undo => e.undo(),
        Action::HistoryPrev | Action::HistoryNext => {
            // In a multi-line draft Up/Down move between its lines first.
            let amb = s.settings.ambiguous;
            let moved = if action == Action::HistoryPrev {
                s.composer.up(amb)
            } else {
                s.composer.down(amb)
            };
            if moved || s.sent_history.is_empty() {
                return;
            }
            let n = s.sent_history.len();
            let pos = match (s.history_pos, action) {
                (None, Action::HistoryPrev) => Some(n - 1),
                (None, _) => None,
                (Some(p), Action::HistoryPrev) => Some(p.saturating_sub(1)),
                (Some(p), _) if p + 1 < n => Some(p + 1),
                (Some(_), _) => None,
            };
            if pos.is_none() && s.history_pos.is_none() {
                return;
            }
            s.history_pos = pos;
            let text = pos.map_or(String::new(), |p| s.sent_history[p].clone());
            s.composer.set(&text);
        }
        Action::ReverseSearch => {
            let original = s.composer.text().to_owned();
            s.rsearch = Some((String::new(), None, original));
        }
        Action::Complete => {
            let names = s.names();
            let (new, cands) = commands::complete(s.composer.text(), &names);
            if let Some(t) = new {
                s.composer.set(&t);
            }
            if cands.len() > 1 {
                s.notice(cands.join("  "));
            }
        }
        Action::NextThread | Action::PrevThread => {
            let n = s.threads.len();
            if n == 0 {
                return;
            }
            let cur = s
                .selected
                .and_then(|id| s.threads.iter().position(|t| t.id == id))
                .unwrap_or(0);
            let i = if action == Action::NextThread {
                (cur + 1) % n
            } else {
                (cur + n - 1) % n
            };
            select_index(s, i, cmds);
        }
        Action::NextUnread => {
            let next = s
                .threads
                .iter()
                .filter(|t| Some(t.id) != s.selected)
                .max_by_key(|t| (t.mentions > 0, t.unread > 0, t.activity_id))
                .filter(|t| t.unread > 0)
                .map(|t| t.id);
            match next {
                Some(id) => select(s, id, cmds),
                None => s.notice("no unread messages"),
            }
        }
        Action::ScrollUp => scroll(s, true, cmds),
        Action::ScrollDown => scroll(s, false, cmds),
        Action::ScrollBottom => {
            if let Some(t) = s.current_mut() {
                t.scroll = 0;
                t.new_below = 0;
            }
            if let Some(id) = s.selected {
                mark_read(s, id, cmds);
            }
        }
        Action::Switcher => open_popup(
            s,
            Popup::Switcher {
                query: Editor::new(),
                sel: 0,
            },
            cmds,
        ),
        Action::Help => open_popup(s, Popup::Help { scroll: 0 }, cmds),
        Action::Requests => open_popup(s, Popup::Requests { sel: 0 }, cmds),
        Action::AddFriend => open_popup(
            s,
            Popup::AddFriend {
                query: Editor::new(),
                results: Vec::new(),
                sel: 0,
                searched: String::new(),
            },
            cmds,
        ),
        Action::Group => open_popup(
            s,
            Popup::Group {
                name: Editor::new(),
                join: false,
            },
            cmds,
        ),
        Action::Members => members_popup(s, cmds),
        Action::Retry => retry(s, cmds),
        Action::Cancel => {
            // Esc never touches the draft: it only closes things (and, in the vim preset,
            // enters normal mode).
            if s.settings.keymap.vim
                && s.notice.is_none()
                && s.current().is_some_and(|t| t.search.is_none())
            {
                s.normal_mode = true;
            }
            s.notice = None;
            if let Some(t) = s.current_mut() {
                t.search = None;
            }
        }
        Action::Interrupt => {
            if !s.composer.is_empty() {
                // Undo brings it back.
                s.composer.set("");
            } else if s.quit_armed {
                s.quit = true;
                cmds.push(Cmd::Quit);
            } else {
                s.quit_armed = true;
                s.notice(format!(
                    "press {} again to quit",
                    s.settings.keymap.first(Action::Interrupt)
                ));
            }
        }
        Action::Thread1
        | Action::Thread2
        | Action::Thread3
        | Action::Thread4
        | Action::Thread5
        | Action::Thread6
        | Action::Thread7
        | Action::Thread8
        | Action::Thread9 => {
            if let Some(i) = action.thread_index() {
                select_index(s, i, cmds);
            }
        }
        Action::Redraw => cmds.push(Cmd::Redraw),
        Action::Suspend => cmds.push(Cmd::Suspend),
    }
}

/// The newest sent message at or before `from` containing `q`.
fn find_sent(s: &State, q: &str, from: usize) -> Option<usize> {
    let from = from.min(s.sent_history.len());
    s.sent_history[..from].iter().rposition(|h| h.contains(q))
}

/// Keys while Ctrl-R search is on. Returns true when the key was used; any other key ends the
/// search (keeping the found text) and then does what it normally does.
fn reverse_search_key(s: &mut State, k: &KeyEvent, action: Option<Action>) -> bool {
    let Some((mut q, pos, original)) = s.rsearch.take() else {
        return false;
    };
    let mut pos = pos;
    if let Some(c) = typed_char(k) {
        q.push(c);
        pos = find_sent(s, &q, pos.map_or(usize::MAX, |p| p + 1));
    } else if k.code == KeyCode::Backspace {
        q.pop();
        pos = find_sent(s, &q, usize::MAX);
    } else if action == Some(Action::ReverseSearch) {
        if let Some(p) = pos {
            pos = find_sent(s, &q, p).or(Some(p));
        }
    } else if k.code == KeyCode::Esc {
        s.composer.set(&original);
        return true;
    } else {
        return false;
    }
    if let Some(p) = pos {
        let text = s.sent_history[p].clone();
        s.composer.set(&text);
    }
    s.rsearch = Some((q, pos, original));
    true
}

fn remember(s: &mut State, text: &str) {
    if s.sent_history.last().is_none_or(|l| l != text) {
        s.sent_history.push(text.to_owned());
        if s.sent_history.len() > 500 {
            s.sent_history.remove(0);
        }
    }
    s.history_pos = None;
}

fn typing(s: &mut State, cmds: &mut Vec<Cmd>) {
    if s.composer.text().starts_with('/') || s.conn != Conn::Online {
        return;
    }
    if let Some(id) = s.selected
        && s.now_ms - s.last_typing_ms >= TYPING_EVERY_MS
    {
        s.last_typing_ms = s.now_ms;
        cmds.push(Cmd::Typing(id));
    }
}

/// Queues text in the current thread; false (with a notice) when it cannot be sent there.
fn send_text(s: &mut State, text: String, cmds: &mut Vec<Cmd>) -> bool {
    let Some(id) = s.selected else {
        s.error("no conversation selected: add a friend (/add NAME) or join a group");
        return false;
    };
    let key = s.next_key;
    s.next_key += 1;
    let now = s.now_ms;
    let Some(t) = s.thread_mut(id) else {
        return false;
    };
    if !t.can_send {
        s.error("you can no longer write here");
        return false;
    }
    t.pending.push(Pending {
        key,
        local_id: None,
        body: text.clone(),
        created_ms: now,
        state: SendState::Queued,
    });
    t.scroll = 0;
    t.new_below = 0;
    s.last_typing_ms = i64::MIN / 2;
    cmds.push(Cmd::Send {
        thread_id: id,
        key,
        body: text,
    });
    true
}

fn retry(s: &mut State, cmds: &mut Vec<Cmd>) {
    let Some(id) = s.selected else { return };
    let Some(t) = s.thread_mut(id) else { return };
    let failed: Vec<Pending> = t
        .pending
        .iter()
        .filter(|p| matches!(p.state, SendState::Failed(_)))
        .cloned()
        .collect();
    if failed.is_empty() {
        s.notice("nothing to retry");
        return;
    }
    t.pending
        .retain(|p| !matches!(p.state, SendState::Failed(_)));
    for p in failed {
        send_text(s, p.body, cmds);
    }
}

/// Keys of the vim preset's normal mode; false lets the key go to the keymap.
fn normal_key(s: &mut State, k: &KeyEvent, cmds: &mut Vec<Cmd>) -> bool {
    let Some(c) = typed_char(k) else {
        if k.code == KeyCode::Enter {
            s.normal_mode = false;
            return true;
        }
        return false;
    };
    match c {
        'i' => s.normal_mode = false,
        'a' => {
            s.normal_mode = false;
            s.composer.right();
        }
        'A' => {
            s.normal_mode = false;
            s.composer.end();
        }
        'I' => {
            s.normal_mode = false;
            s.composer.home();
        }
        'j' => scroll_by(s, false, Some(1), cmds),
        'k' => scroll_by(s, true, Some(1), cmds),
        'G' => {
            if let Some(t) = s.current_mut() {
                t.scroll = 0;
                t.new_below = 0;
            }
        }
        'g' => scroll_by(s, true, Some(usize::MAX / 2), cmds),
        'J' => main_key(
            s,
            KeyEvent::new(KeyCode::Char('n'), KeyModifiers::CONTROL),
            cmds,
        ),
        'K' => main_key(
            s,
            KeyEvent::new(KeyCode::Char('p'), KeyModifiers::CONTROL),
            cmds,
        ),
        ':' | '/' => {
            s.normal_mode = false;
            if s.composer.is_empty() {
                s.composer.set(if c == ':' { "/" } else { "/search " });
            }
        }
        _ => {}
    }
    true
}

fn scroll(s: &mut State, up: bool, cmds: &mut Vec<Cmd>) {
    scroll_by(s, up, None, cmds);
}

/// Scrolls by `lines` (None: a page); at the top, asks for older history.
fn scroll_by(s: &mut State, up: bool, lines: Option<usize>, cmds: &mut Vec<Cmd>) {
    let h = s.chat_height();
    let page = lines.unwrap_or(h.saturating_sub(2).max(1));
    let width = crate::ui::chat_width(s.size.0);
    let Some(id) = s.selected else { return };
    let (total, complete) = s.thread(id).map_or((0, true), |t| {
        let (l, complete) =
            crate::ui::chat::window(s, t, width, t.scroll.saturating_add(page).saturating_add(h));
        (l.len(), complete)
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

fn find_request(s: &State, name: Option<&str>) -> Option<u64> {
    s.requests
        .iter()
        .find(|r| {
            name.is_none_or(|n| {
                r.from
                    .as_ref()
                    .is_some_and(|u| u.name.to_lowercase() == n.to_lowercase())
            })
        })
        .map(|r| r.request_id)
}

fn current_group(s: &mut State) -> Option<u64> {
    let g = s
        .current()
        .and_then(|t| t.group.as_ref().map(|g| g.group_id));
    if g.is_none() {
        s.error("this conversation is not a group");
    }
    g
}

fn member_id(s: &State, name: &str) -> Option<u64> {
    let n = name.to_lowercase();
    if let Some(Popup::Members { members, .. }) = &s.popup {
        for m in members {
            if let Some(u) = &m.user
                && u.name.to_lowercase() == n
            {
                return Some(u.user_id);
            }
        }
    }
    None
}

fn run_command(s: &mut State, line: &str, cmds: &mut Vec<Cmd>) {
    use commands::Command as C;
    let c = match commands::parse(line) {
        Ok(c) => c,
        Err(e) => {
            s.error(e);
            return;
        }
    };
    match c {
        C::Add(name) => cmds.push(Cmd::Op(Op::AddFriend(nfc(&name)))),
        C::Accept(name) | C::Decline(name) => {
            let accept = line.trim_start().starts_with("/accept");
            match find_request(s, name.as_deref()) {
                Some(request_id) => {
                    s.requests.retain(|r| r.request_id != request_id);
                    cmds.push(Cmd::Op(Op::Respond { request_id, accept }));
                }
                None => s.error(match name {
                    Some(n) => format!("no pending request from {n}"),
                    None => "no pending friend requests".into(),
                }),
            }
        }
        C::Msg(name, text) => cmds.push(Cmd::Op(Op::OpenDm(nfc(&name), text))),
        C::GroupCreate(n) => cmds.push(Cmd::Op(Op::CreateGroup(nfc(&n)))),
        C::GroupJoin(n) => cmds.push(Cmd::Op(Op::JoinGroup(nfc(&n)))),
        C::GroupLeave => {
            if let Some(g) = current_group(s) {
                cmds.push(Cmd::Op(Op::LeaveGroup(g)));
            }
        }
        C::GroupInvite(n) => {
            if let Some(g) = current_group(s) {
                cmds.push(Cmd::Op(Op::Invite(g, nfc(&n))));
            }
        }
        C::GroupKick(n) => {
            if let Some(g) = current_group(s) {
                let id = member_id(s, &n).unwrap_or(0);
                cmds.push(Cmd::Op(Op::Kick(g, id, nfc(&n))));
            }
        }
        C::GroupRole(n, role) => {
            if let Some(g) = current_group(s) {
                let role = match role.to_lowercase().as_str() {
                    "admin" => pb::Role::Admin,
                    "member" => pb::Role::Member,
                    _ => {
                        s.error("role is admin or member");
                        return;
                    }
                };
                let id = member_id(s, &n).unwrap_or(0);
                cmds.push(Cmd::Op(Op::SetRole(g, id, nfc(&n), role)));
            }
        }
        C::Members => members_popup(s, cmds),
        C::Search(q) => {
            if let Some(t) = s.current_mut() {
                t.search = q.map(|q| nfc(&q));
                t.scroll = 0;
            }
        }
        C::Retry => retry(s, cmds),
        C::Reconnect => cmds.push(Cmd::ReconnectNow),
        C::Logout => cmds.push(Cmd::Op(Op::Logout)),
        C::Quit => {
            s.quit = true;
            cmds.push(Cmd::Quit);
        }
        C::Help => open_popup(s, Popup::Help { scroll: 0 }, cmds),
    }
}
