//! Everything on screen: the state the reducer changes and the renderer reads.

use std::collections::{BTreeMap, HashMap};

use confab_wire::pb;

use super::config::Settings;
use crate::client::known_servers::Fingerprint;
use crate::text::editor::Editor;
use crate::text::sanitize;

/// History pages loaded from the cache at a time.
pub const PAGE: u32 = 200;
/// How long a notice stays on the status line.
const NOTICE_MS: i64 = 8_000;

#[derive(Debug, Clone, Default)]
pub struct LoginForm {
    pub server: Editor,
    pub name: Editor,
    pub password: Editor,
    /// The password again (registration only).
    pub confirm: Editor,
    /// The invitation code an invite-only server asks for (registration only, may stay empty).
    pub invite: Editor,
    /// 0 server, 1 name, 2 password, 3 the password again, 4 the invitation (registration).
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
            2 => &mut self.password,
            3 => &mut self.confirm,
            _ => &mut self.invite,
        }
    }

    /// How many fields the form has: registering asks the password twice, and an invitation.
    pub fn fields(&self) -> usize {
        if self.register { 5 } else { 3 }
    }
}

/// Trust on first use: the prompt for a server with an unknown certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustAsk {
    /// `host:port`.
    pub server: String,
    pub fingerprint: Fingerprint,
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
    /// Refused for good. `retry`: sending it again may work later (not a member or not
    /// friends yet, a local failure); a body the server can never take is not retried.
    Failed { reason: String, retry: bool },
}

impl SendState {
    pub fn failed(&self) -> bool {
        matches!(self, SendState::Failed { .. })
    }
}

/// Whether a message refused with `code` may be taken if sent again later: not when the
/// message itself is what the server refuses (too large, malformed).
pub fn worth_retrying(code: i32) -> bool {
    use pb::ErrorCode as E;
    !matches!(
        E::try_from(code),
        Ok(E::TooLarge | E::BadRequest | E::Unsupported | E::ProtocolError)
    )
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
    /// The message it answers, shown above it.
    pub quote: Option<confab_wire::pb::Quote>,
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
    /// Why the composer is read only, when the client knows (`you were removed by 张三`).
    pub read_only: Option<String>,
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
    /// Entries after this seq were unread when the thread was opened ("new" divider);
    /// [`MARKER_UNKNOWN`] until the server's read marker is known.
    pub marker_seq: u64,
    /// The server has described this thread (a listing or a push): its read marker is real.
    pub info_known: bool,
    /// A group's members (id, name) as last listed; None until loaded.
    pub members: Option<Vec<(u64, String)>>,
    /// (name, until_ms).
    pub typing: Vec<(String, i64)>,
    pub search: Option<String>,
}

/// The "new" divider of a thread opened before the server said how far it was read (its
/// messages came first, as on a new device): no divider until the listing sets it.
pub const MARKER_UNKNOWN: u64 = u64::MAX - 1;

/// PROTOCOL.md §8's default `max_body_bytes`, used until a server says otherwise.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4096;

/// Whether an entry counts as unread for user `me`: another user's text. One's own entries and
/// system entries (group changes, edits, recalls) never do, live or after a sync.
pub fn counts_unread(m: &pb::ChatMessage, me: u64) -> bool {
    m.kind == pb::MessageKind::Text as i32 && m.sender.as_ref().is_none_or(|u| u.user_id != me)
}

impl ThreadView {
    /// Unread entries after the read marker: the cached ones that [`counts_unread`], plus
    /// every seq not cached yet (unknown until fetched; a fetched one that does not count is
    /// taken off then).
    pub fn count_unread(&self, me: u64) -> u64 {
        if self.last_seq <= self.read_seq {
            return 0;
        }
        let range = self.read_seq + 1..=self.last_seq;
        let (mut cached, mut counted) = (0u64, 0u64);
        for m in self.messages.range(range).map(|(_, m)| m) {
            cached += 1;
            counted += u64::from(counts_unread(m, me));
        }
        (self.last_seq - self.read_seq) - cached + counted
    }

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
            read_only: None,
            messages: BTreeMap::new(),
            pending: Vec::new(),
            draft: Editor::new(),
            scroll: 0,
            new_below: 0,
            loaded: false,
            loading: false,
            oldest_done: false,
            marker_seq: u64::MAX,
            info_known: false,
            members: None,
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
    /// The core stopped trying: why (the server's code) and the reason it gave.
    Stopped(pb::ErrorCode, String),
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
    /// `/devices`: the account's sessions (x twice revokes one).
    Devices {
        devices: Vec<pb::Device>,
        sel: usize,
    },
    /// `/password`: the current password and the new one twice (0, 1, 2).
    Password {
        old: Editor,
        new: Editor,
        again: Editor,
        field: usize,
    },
    /// `/delete-account`: the password confirms it.
    DeleteAccount {
        password: Editor,
    },
    /// F6: the server's search over every conversation.
    Search {
        query: Editor,
        hits: Vec<pb::SearchHit>,
        sel: usize,
        /// The query the hits are for.
        searched: String,
        /// Older hits remain (Down past the last loads them).
        more: bool,
        /// A page was asked for and has not come yet (Down does not ask again).
        loading: bool,
        /// Why the last search failed, shown in the popup.
        error: Option<String>,
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
    /// The conversation shown before the current one (Alt-/ goes back to it).
    pub prev_selected: Option<u64>,
    pub composer: Editor,
    pub friends: Vec<pb::Friend>,
    pub requests: Vec<pb::FriendRequest>,
    /// Users I blocked: their messages show as hidden, and never notify or count as unread.
    pub blocked: std::collections::HashSet<u64>,
    /// Users whose accounts were deleted (seen with an empty name): cached messages of theirs
    /// show as a deleted account's, not under the name they had.
    pub deleted_users: std::collections::HashSet<u64>,
    /// `/block` alone is waiting for the list, to show it.
    pub blocking_listed: bool,
    /// My requests others have not answered yet.
    pub outgoing: Vec<pb::FriendRequest>,
    pub presence: HashMap<u64, bool>,
    pub popup: Option<Popup>,
    /// (text, is_error, until_ms).
    pub notice: Option<(String, bool, i64)>,
    /// The connection is up but the server has not answered since the first time, and the
    /// core gives up on it at the second (both ms; see `Event::Silent`).
    pub silent: Option<(i64, i64)>,
    /// When the current connection attempt started (while `Conn::Connecting`).
    pub connecting_since: Option<i64>,
    /// Whether the current connection is encrypted (known once one is open).
    pub encrypted: Option<bool>,
    /// The conversation left open at the last run: opened first when it is listed.
    pub last_open: Option<u64>,
    /// Conversations closed from the list (`/close`): thread -> its activity then. A newer
    /// message brings one back.
    pub hidden: BTreeMap<u64, u64>,
    /// The member a first `x` in the members popup picked; a second `x` removes them.
    pub kick_armed: Option<u64>,
    /// The device a first `x` in the devices popup picked; a second `x` revokes it.
    pub revoke_armed: Option<u64>,
    /// Operations waiting for the server (see app/busy.rs).
    pub busy: super::busy::Busy,
    /// When each conversation last notified (see app/notify.rs).
    pub notify_gates: super::notify::Gates,
    /// The largest message body the server takes, in UTF-8 bytes (its HelloOk's limits; the
    /// protocol's default until the first connect).
    pub max_body_bytes: usize,
    /// How long after sending a message may be edited or recalled (the server's limits; 0:
    /// not known, the server decides).
    pub recall_window_ms: u32,
    /// A server whose certificate nobody vouches for, waiting for the user's yes or no.
    pub trust: Option<TrustAsk>,
    pub focused: bool,
    pub size: (u16, u16),
    pub now_ms: i64,
    pub sent_history: Vec<String>,
    pub history_pos: Option<usize>,
    pub quit_armed: bool,
    pub quit: bool,
    /// Ctrl-R search through sent messages: (query, index of the match, text before).
    pub rsearch: Option<(String, Option<usize>, String)>,
    /// The message picked in the shown conversation (Alt-Up; see app/pick.rs).
    pub pick: Option<super::layout::Target>,
    /// A search hit being brought into view (older pages loading).
    pub jump: Option<super::search_all::Jump>,
    /// The F6 popup as it was closed: F6 opens it again with its hits.
    pub last_search: Option<Box<Popup>>,
    /// Finding text in the shown conversation (see app/find.rs).
    pub find: Option<super::find::Find>,
    /// One's message being edited in the composer (see app/amend.rs).
    pub editing: Option<super::amend::Editing>,
    /// The message the draft answers, and the one `+` reacts to (see app/relations.rs).
    pub replying: Option<super::relations::Replying>,
    pub reacting: Option<super::relations::Reacting>,
    /// Reaction changes sent and not answered: (message, emoji, when).
    pub reacts_in_flight: Vec<(u64, String, i64)>,
    /// A picked message's `r` or `b` pressed once: the same key again does it.
    pub pick_confirm: Option<char>,
    /// Tab completion cycling through several candidates (see app/complete.rs).
    pub completion: Option<super::complete::Cycle>,
    /// vim preset: reading mode (keys scroll and switch instead of typing).
    pub normal_mode: bool,
    next_key: u64,
    /// When the last typing notification left (the composer sends one per few seconds).
    pub(super) last_typing_ms: i64,
    /// The conversation the last typing notification was for (see `input::typing_stopped`).
    pub(super) typing_in: Option<u64>,
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
            encrypted: None,
            silent: None,
            connecting_since: None,
            notify_gates: Default::default(),
            busy: Default::default(),
            kick_armed: None,
            revoke_armed: None,
            last_open: None,
            hidden: BTreeMap::new(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            recall_window_ms: 0,
            trust: None,
            conn: Conn::Connecting,
            synced_once: false,
            threads: Vec::new(),
            selected: None,
            prev_selected: None,
            composer: Editor::new(),
            friends: Vec::new(),
            requests: Vec::new(),
            outgoing: Vec::new(),
            blocked: Default::default(),
            deleted_users: Default::default(),
            jump: None,
            last_search: None,
            blocking_listed: false,
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
            completion: None,
            editing: None,
            replying: None,
            reacting: None,
            pick_confirm: None,
            reacts_in_flight: Vec::new(),
            find: None,
            pick: None,
            normal_mode: false,
            next_key: 1,
            last_typing_ms: i64::MIN / 2,
            typing_in: None,
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

    pub(super) fn thread_mut(&mut self, id: u64) -> Option<&mut ThreadView> {
        self.threads.iter_mut().find(|t| t.id == id)
    }

    pub(super) fn thread_entry(&mut self, id: u64) -> &mut ThreadView {
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

    pub(super) fn current_mut(&mut self) -> Option<&mut ThreadView> {
        let id = self.selected?;
        self.thread_mut(id)
    }

    /// A fresh UI key for a pending message.
    pub(super) fn take_key(&mut self) -> u64 {
        let key = self.next_key;
        self.next_key += 1;
        key
    }

    pub fn my_id(&self) -> u64 {
        self.me.as_ref().map_or(0, |u| u.user_id)
    }

    /// Unread messages in the conversations that are not muted (the terminal title's count).
    pub fn total_unread(&self) -> u64 {
        self.threads
            .iter()
            .filter(|t| self.settings.level(&t.name) != super::config::Level::None)
            .map(|t| t.unread)
            .sum()
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
        if matches!(self.conn, Conn::Offline { .. })
            || self.silent.is_some()
            || self.connecting_since.is_some()
            || super::busy::waiting(self).is_some()
        {
            // The countdowns and waiting times show whole seconds.
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

    pub(super) fn sort_threads(&mut self) {
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

    pub(super) fn visible(&self, thread_id: u64) -> bool {
        self.focused && self.selected == Some(thread_id) && matches!(self.screen, Screen::Main)
    }
}
