//! The reducer's vocabulary: what goes in ([`Msg`], with the [`Done`] results of [`Op`]s) and
//! what comes out ([`Cmd`], executed by the run loop).

use confab_wire::pb;
use crossterm::event::KeyEvent;

use crate::client::{Auth, ClientError, Event, FailedItem, OutboxItem};

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
    /// The outbox and the failed messages (at start, and after each sync).
    Outbox {
        queued: Vec<OutboxItem>,
        failed: Vec<FailedItem>,
    },
    History {
        thread_id: u64,
        msgs: Vec<pb::ChatMessage>,
    },
    Queued {
        thread_id: u64,
        key: u64,
        result: Result<u64, ClientError>,
    },
    Done(Done),
}

/// Results of [`Op`]s.
#[derive(Debug, Clone)]
pub enum Done {
    Friends(Vec<pb::Friend>),
    /// Pending friend requests: to me, and mine to others.
    Requests {
        incoming: Vec<pb::FriendRequest>,
        outgoing: Vec<pb::FriendRequest>,
    },
    Users(Vec<pb::Profile>),
    /// The users this account blocked (their messages are hidden here), and what to say.
    Blocked {
        users: Vec<pb::User>,
        info: Option<String>,
    },
    /// The account's device sessions, and what to say (after a revoke).
    Devices {
        devices: Vec<pb::Device>,
        info: Option<String>,
    },
    /// A user search that got no answer (offline, timed out): not the same as no match.
    SearchFailed(String),
    Members(u64, Vec<pb::GroupMember>),
    /// A kick or role change went through: the members now, and what to say.
    MembersChanged {
        group_id: u64,
        members: Vec<pb::GroupMember>,
        info: String,
    },
    /// A conversation to show (and text to send there).
    Open(Box<pb::Thread>, Option<String>),
    Info(String),
    Error(String),
    LoggedOut,
    /// The account is deleted: back to the login screen, the stored session gone.
    AccountDeleted,
    /// A page of the server's search for `query` (`append`: older hits of the same query).
    SearchHits {
        query: String,
        hits: Vec<pb::SearchHit>,
        more: bool,
        append: bool,
    },
    /// The newest hit of a SearchThread: its conversation and seq, or none.
    ThreadHit {
        thread: u64,
        query: String,
        seq: Option<u64>,
    },
    /// `/admin invite` made this code (for `uses` registrations).
    Invitation {
        code: String,
        uses: u32,
    },
    /// A background load that could not be sent (no connection): nothing to show.
    Dropped,
    /// One's own EDIT or RECALL entry as the server stored it (its reply), shown at once:
    /// the server pushes it to one's other devices, not to the one that asked.
    Changed {
        ack: pb::SendAck,
        kind: pb::MessageKind,
        target: u64,
        body: String,
    },
}

/// A password in an [`Op`]: never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Multi-step operations on the client core, run as tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    LoadFriends,
    LoadRequests,
    SearchUsers(String),
    /// A friend request (name, note).
    AddFriend(String, String),
    Unfriend(String),
    /// Block (true) or unblock a user by name.
    Block(String, bool),
    LoadBlocked,
    LoadDevices,
    /// End a device session (id, what to call it).
    RevokeDevice(u64, String),
    /// Take back my request to this user.
    CancelRequest(String),
    ChangePassword {
        old: Secret,
        new: Secret,
    },
    /// End every session of the account.
    LogoutEverywhere,
    /// Delete the account for good (its password).
    DeleteAccount(Secret),
    /// A server admin's request (`/admin ...`).
    Admin(AdminOp),
    /// Add (or take back) my reaction to a message.
    React {
        thread: u64,
        message_id: u64,
        emoji: String,
        remove: bool,
    },
    /// The server's newest hit in one conversation (Ctrl-S found nothing loaded).
    SearchThread {
        thread: u64,
        query: String,
    },
    /// The server's search, a page of hits older than `before` (0: the newest).
    SearchAll {
        query: String,
        before: u64,
    },
    Respond {
        request_id: u64,
        accept: bool,
    },
    /// A new group: its name, and whether anyone may join (else by invitation).
    CreateGroup(String, bool),
    /// A group's new name, topic or openness (the fields set).
    UpdateGroup(pb::UpdateGroup),
    /// Hand the group to a member (group, name).
    Transfer(u64, String),
    /// Turn down the invitation to the group of that name.
    DeclineInvite(String),
    JoinGroup(String),
    LeaveGroup(u64),
    Invite(u64, String),
    Kick(u64, u64, String),
    /// Ban (true) or unban someone from a group (group, name).
    Ban(u64, String, bool),
    SetRole(u64, u64, String, pb::Role),
    Members(u64),
    OpenDm(String, Option<String>),
    /// Replace the text of one's message (thread, message id, text).
    Edit(u64, u64, String),
    /// Recall one's message (thread, message id).
    Recall(u64, u64),
    Logout,
}

/// What `/admin` asks of the server (server admins only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminOp {
    /// A user action by name (deactivate, reactivate, revoke their sessions...).
    User(String, pb::AdminUserAction),
    /// A new invitation code for this many registrations.
    Invite(u32),
    Stats,
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
        /// The message it answers (0: none).
        reply_to: u64,
    },
    History {
        thread_id: u64,
        before_seq: u64,
    },
    LoadThreads,
    LoadOutbox,
    /// Keep the closed conversations of account `name` (thread -> activity when closed).
    SaveHidden {
        name: String,
        hidden: std::collections::BTreeMap<u64, u64>,
    },
    /// Keep a conversation's notification level in the config file.
    SaveLevel {
        name: String,
        level: super::config::Level,
    },
    /// Append to a conversation's log (`log_dir/<server>/<file>`).
    Log {
        file: String,
        line: String,
    },
    /// Write the shown conversation, all of it the cache holds, to `path` (None: the default).
    Export {
        thread_id: u64,
        file: String,
        path: Option<String>,
    },
    /// Put text on the terminal's clipboard (OSC 52).
    Copy(String),
    /// Forget a failed message (deleted, or sent again under a new id).
    Discard {
        local_id: u64,
    },
    Op(Op),
    MarkRead {
        thread_id: u64,
        seq: u64,
    },
    /// A typing notification; `stopped` once the draft it was for is cleared.
    Typing {
        thread_id: u64,
        stopped: bool,
    },
    Notify {
        title: String,
        body: String,
    },
    ReconnectNow,
    /// Record the server's fingerprint in known_servers (the user said yes), then connect.
    TrustServer {
        server: String,
        fingerprint: crate::client::known_servers::Fingerprint,
    },
    /// Forget this server's stored session and stop the core (the account was deleted).
    ForgetSession,
    /// Repaint everything (Ctrl-L).
    Redraw,
    /// Stop the process like any terminal program (Ctrl-Z); `fg` resumes and repaints.
    Suspend,
    Quit,
}
