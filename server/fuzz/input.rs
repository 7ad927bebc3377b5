//! The fuzz inputs: what `arbitrary` picks (operations, requests, small domains of names,
//! texts and ids) and how a pick becomes a request body in the state of the input so far.
//! Part of the service fuzz target's body (harness.rs).

use arbitrary::Arbitrary;
use confab_wire::pb;
use confab_wire::{Body, PROTOCOL_MAJOR, PROTOCOL_MINOR};

/// An id no one has: unknown users, threads, groups.
const NO_SUCH_ID: u64 = 1 << 60;
const PASSWORDS: [&str; 3] = ["correct horse", "battery staple", "short"];

#[derive(Arbitrary, Debug)]
pub enum Op {
    /// One request (or, with `notify`, a notification: req_id 0) on a connection.
    Send { conn: u8, notify: bool, req: Req },
    /// Requests sent back to back on one connection: they run concurrently, as in the
    /// connection task (those that change authentication run alone).
    Pipeline { conn: u8, reqs: Vec<Req> },
    /// Any envelope a decoder can produce.
    Raw { conn: u8, bytes: Vec<u8> },
    /// The connection closes; a new one takes its place, and says Hello if `hello`.
    Reconnect { conn: u8, hello: bool },
    /// Store the delivery markers kept in memory (the server does this every second).
    FlushDelivered,
    /// Let spawned tasks (fan-out, presence) run.
    Yield,
}

/// A user of this input: index into [`SUFFIXES`].
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct Who(u8);

const SUFFIXES: [&str; 3] = ["al", "bo", "cy"];

/// A name to use: one of this input's users, a case variant, someone unknown, or invalid.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum NamePick {
    User(Who),
    Upper(Who),
    Unknown,
    Empty,
    Spaces,
    TooLong,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum TextPick {
    Short,
    Empty,
    Newlines,
    Unicode,
    Control,
    /// Exactly the body limit.
    Longest,
    /// One byte over the body limit.
    TooLong,
    /// Over the note limit, within the body limit.
    LongNote,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum QueryPick {
    /// Every user or group of this input.
    Mine,
    Exact(Who),
    /// LIKE wildcards, taken literally.
    Wild,
    Empty,
    TooLong,
}

/// An id from what this input's replies revealed (by index), 0, or one no one has.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum IdPick {
    Known(u8),
    Zero,
    Nobody,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum SeqPick {
    Small(u8),
    Max,
}

/// A request, by feature.
#[derive(Arbitrary, Debug)]
pub enum Req {
    Session(SessionReq),
    Friends(FriendReq),
    Groups(GroupReq),
    Threads(ThreadReq),
}

#[derive(Arbitrary, Debug)]
pub enum SessionReq {
    Hello {
        token: Option<u8>,
        minor: u8,
        wrong_major: bool,
    },
    Ping(u64),
    Register {
        name: NamePick,
        password: u8,
    },
    Login {
        name: NamePick,
        password: u8,
    },
    Resume {
        token: u8,
    },
    Logout {
        all: bool,
    },
    ChangePassword {
        old: u8,
        new: u8,
    },
}

#[derive(Arbitrary, Debug)]
pub enum FriendReq {
    GetProfile { id: IdPick, name: Option<NamePick> },
    SearchUsers { q: QueryPick, limit: u8 },
    SendFriendRequest { to: IdPick, note: TextPick },
    RespondFriendRequest { req: IdPick, accept: bool },
    CancelFriendRequest(IdPick),
    RemoveFriend(IdPick),
    ListFriends { after: IdPick, limit: u8 },
    ListFriendRequests { after: IdPick, limit: u8 },
}

#[derive(Arbitrary, Debug)]
pub enum GroupReq {
    CreateGroup {
        name: u8,
        desc: TextPick,
        open: bool,
    },
    JoinGroup(IdPick),
    InviteToGroup {
        group: IdPick,
        user: IdPick,
    },
    DeclineGroupInvite(IdPick),
    LeaveGroup(IdPick),
    KickMember {
        group: IdPick,
        user: IdPick,
    },
    SetMemberRole {
        group: IdPick,
        user: IdPick,
        role: u8,
    },
    UpdateGroup {
        group: IdPick,
        name: Option<u8>,
        desc: Option<TextPick>,
        open: Option<bool>,
    },
    TransferOwnership {
        group: IdPick,
        user: IdPick,
    },
    ListGroups {
        after: IdPick,
        limit: u8,
    },
    SearchGroups {
        q: QueryPick,
        limit: u8,
    },
    ListGroupMembers {
        group: IdPick,
        after: IdPick,
        limit: u8,
    },
}

#[derive(Arbitrary, Debug)]
pub enum ThreadReq {
    ListThreads {
        before: IdPick,
        limit: u8,
    },
    GetThread {
        thread: IdPick,
        user: IdPick,
        group: IdPick,
    },
    SyncThread {
        thread: IdPick,
        since: SeqPick,
        limit: u8,
    },
    History {
        thread: IdPick,
        before: SeqPick,
        limit: u8,
    },
    Send {
        thread: IdPick,
        cmid: u8,
        body: TextPick,
    },
    Recall {
        thread: IdPick,
        message: IdPick,
        cmid: u8,
    },
    Edit {
        thread: IdPick,
        message: IdPick,
        cmid: u8,
        body: TextPick,
    },
    ReadUpTo {
        thread: IdPick,
        seq: SeqPick,
    },
    DeliveredUpTo {
        thread: IdPick,
        seq: SeqPick,
    },
    Typing(IdPick),
    SyncEvents {
        since: SeqPick,
        limit: u8,
    },
    Reply {
        thread: IdPick,
        cmid: u8,
        body: TextPick,
        to: IdPick,
    },
    React {
        thread: IdPick,
        message: IdPick,
        emoji: TextPick,
        remove: bool,
    },
}

/// What this input's replies and pushes revealed.
#[derive(Default)]
pub struct Known {
    users: Vec<u64>,
    threads: Vec<u64>,
    groups: Vec<u64>,
    messages: Vec<u64>,
    requests: Vec<u64>,
    tokens: Vec<String>,
}

fn remember(list: &mut Vec<u64>, id: u64) {
    if id != 0 && !list.contains(&id) {
        list.push(id);
    }
}

impl Known {
    fn pick(list: &[u64], p: IdPick) -> u64 {
        match p {
            IdPick::Known(i) if !list.is_empty() => list[usize::from(i) % list.len()],
            IdPick::Known(_) | IdPick::Nobody => NO_SUCH_ID,
            IdPick::Zero => 0,
        }
    }

    fn user(&mut self, u: Option<&pb::User>) {
        if let Some(u) = u {
            remember(&mut self.users, u.user_id);
        }
    }

    fn group(&mut self, g: Option<&pb::Group>) {
        if let Some(g) = g {
            remember(&mut self.groups, g.group_id);
            remember(&mut self.threads, g.thread_id);
        }
    }

    fn message(&mut self, m: Option<&pb::ChatMessage>) {
        if let Some(m) = m {
            remember(&mut self.threads, m.thread_id);
            remember(&mut self.messages, m.message_id);
            self.user(m.sender.as_ref());
        }
    }

    fn request(&mut self, r: &pb::FriendRequest) {
        remember(&mut self.requests, r.request_id);
        remember(&mut self.threads, r.thread_id);
        self.user(r.from.as_ref());
        self.user(r.to.as_ref());
    }

    fn thread(&mut self, t: &pb::Thread) {
        remember(&mut self.threads, t.thread_id);
        self.user(t.peer.as_ref());
        self.group(t.group.as_ref());
        self.message(t.last_message.as_ref());
    }

    fn auth(&mut self, a: &pb::AuthOk) {
        self.user(a.user.as_ref());
        if !a.resume_token.is_empty() {
            self.tokens.push(a.resume_token.clone());
        }
    }

    fn event(&mut self, e: &pb::UserEvent) {
        use pb::user_event::Kind;
        match &e.kind {
            Some(
                Kind::FriendRequestReceived(r)
                | Kind::FriendRequestAnswered(r)
                | Kind::FriendRequestCancelled(r),
            ) => self.request(r),
            Some(Kind::FriendRemoved(u) | Kind::UserBlocked(u) | Kind::UserUnblocked(u)) => {
                self.user(Some(u))
            }
            Some(
                Kind::GroupInvited(g)
                | Kind::GroupJoined(g)
                | Kind::GroupLeft(g)
                | Kind::GroupUpdated(g),
            ) => self.group(Some(g)),
            Some(Kind::ThreadAdded(t)) => self.thread(t),
            None => {}
        }
    }

    /// Learns the ids (and resume tokens) in a reply or push.
    pub fn learn(&mut self, body: &Body) {
        match body {
            Body::HelloOk(h) => {
                if let Some(a) = &h.auth {
                    self.auth(a);
                }
            }
            Body::AuthOk(a) => self.auth(a),
            Body::Profile(p) => self.user(p.user.as_ref()),
            Body::UserList(l) => l.users.iter().for_each(|p| self.user(p.user.as_ref())),
            Body::FriendRequest(r) => self.request(r),
            Body::FriendRequestList(l) => {
                l.incoming
                    .iter()
                    .chain(&l.outgoing)
                    .for_each(|r| self.request(r));
            }
            Body::FriendList(l) => l.friends.iter().for_each(|f| {
                self.user(f.user.as_ref());
                remember(&mut self.threads, f.thread_id);
            }),
            Body::Group(g) => self.group(Some(g)),
            Body::GroupList(l) => l.groups.iter().for_each(|g| self.group(Some(g))),
            Body::GroupMemberList(l) => {
                remember(&mut self.groups, l.group_id);
                l.members.iter().for_each(|m| self.user(m.user.as_ref()));
            }
            Body::ThreadList(l) => l.threads.iter().for_each(|t| self.thread(t)),
            Body::Thread(t) => self.thread(t),
            Body::SendAck(a) => {
                remember(&mut self.threads, a.thread_id);
                remember(&mut self.messages, a.message_id);
            }
            Body::MessagePush(p) => self.message(p.message.as_ref()),
            Body::MessagePage(p) => p.messages.iter().for_each(|m| self.message(Some(m))),
            Body::EventPush(p) => {
                if let Some(e) = &p.event {
                    self.event(e);
                }
            }
            Body::EventPage(p) => p.events.iter().for_each(|e| self.event(e)),
            _ => {}
        }
    }
}

/// What a pick resolves against: this input's name prefix, what it learned, the body limit.
pub struct Domain<'a> {
    pub ns: &'a str,
    pub known: &'a Known,
    pub max_body: usize,
}

impl Domain<'_> {
    fn name(&self, p: NamePick) -> String {
        let who = |w: Who| SUFFIXES[usize::from(w.0) % SUFFIXES.len()];
        match p {
            NamePick::User(w) => format!("{}{}", self.ns, who(w)),
            NamePick::Upper(w) => format!("{}{}", self.ns, who(w)).to_uppercase(),
            NamePick::Unknown => format!("{}nobody", self.ns),
            NamePick::Empty => String::new(),
            NamePick::Spaces => format!("{} al", self.ns),
            NamePick::TooLong => format!("{}{}", self.ns, "z".repeat(32)),
        }
    }

    fn group_name(&self, n: u8) -> String {
        match n % 4 {
            0 => String::new(),
            1 => format!("{}{}", self.ns, "g".repeat(64)),
            n => format!("{}g{n}", self.ns),
        }
    }

    fn text(&self, t: TextPick) -> String {
        let max = self.max_body;
        match t {
            TextPick::Short => "hello".into(),
            TextPick::Empty => String::new(),
            TextPick::Newlines => "one\ntwo\tthree".into(),
            TextPick::Unicode => "héllo 世界 🎉".into(),
            TextPick::Control => "bell\u{7}".into(),
            TextPick::Longest => "m".repeat(max),
            TextPick::TooLong => "m".repeat(max + 1),
            TextPick::LongNote => "n".repeat(600),
        }
    }

    fn query(&self, q: QueryPick) -> String {
        match q {
            QueryPick::Mine => self.ns.to_owned(),
            QueryPick::Exact(w) => self.name(NamePick::User(w)),
            QueryPick::Wild => format!("{}%_!", self.ns),
            QueryPick::Empty => String::new(),
            QueryPick::TooLong => format!("{}{}", self.ns, "q".repeat(64)),
        }
    }

    fn token(&self, i: u8) -> String {
        let t = &self.known.tokens;
        match (i, t.is_empty()) {
            (0, _) | (_, true) => "not-a-token".into(),
            (1, _) => "x".repeat(300),
            (i, false) => t[usize::from(i) % t.len()].clone(),
        }
    }

    fn password(i: u8) -> String {
        PASSWORDS[usize::from(i) % PASSWORDS.len()].into()
    }

    fn limit(l: u8) -> u32 {
        u32::from(l % 10)
    }

    fn seq(s: SeqPick) -> u64 {
        match s {
            SeqPick::Small(n) => u64::from(n % 8),
            SeqPick::Max => u64::MAX,
        }
    }

    fn cmid(c: u8) -> String {
        match c % 5 {
            0 => String::new(),
            1 => "c".repeat(65),
            n => format!("c{n}"),
        }
    }

    fn user(&self, p: IdPick) -> u64 {
        Known::pick(&self.known.users, p)
    }

    fn thread(&self, p: IdPick) -> u64 {
        Known::pick(&self.known.threads, p)
    }

    fn group(&self, p: IdPick) -> u64 {
        Known::pick(&self.known.groups, p)
    }

    fn message(&self, p: IdPick) -> u64 {
        Known::pick(&self.known.messages, p)
    }

    fn request(&self, p: IdPick) -> u64 {
        Known::pick(&self.known.requests, p)
    }

    /// The request body `req` stands for, in this input's state.
    pub fn body(&self, req: Req) -> Body {
        match req {
            Req::Session(r) => self.session(r),
            Req::Friends(r) => self.friends(r),
            Req::Groups(r) => self.groups(r),
            Req::Threads(r) => self.threads(r),
        }
    }

    fn session(&self, req: SessionReq) -> Body {
        match req {
            SessionReq::Hello {
                token,
                minor,
                wrong_major,
            } => Body::Hello(pb::Hello {
                protocol_major: if wrong_major {
                    PROTOCOL_MAJOR + 1
                } else {
                    PROTOCOL_MAJOR
                },
                protocol_minor: u32::from(minor % 4).min(PROTOCOL_MINOR + 1),
                client_name: "fuzz".into(),
                client_version: String::new(),
                resume_token: token.map(|t| self.token(t)).unwrap_or_default(),
                // The high bit, so the corpus's inputs keep their meaning otherwise.
                quiet: minor & 0x80 != 0,
            }),
            SessionReq::Ping(nonce) => Body::Ping(pb::Ping { nonce }),
            SessionReq::Register { name, password } => Body::Register(pb::Register {
                name: self.name(name),
                password: Self::password(password),
                device_name: "fuzz".into(),
                invite_code: String::new(),
            }),
            SessionReq::Login { name, password } => Body::Login(pb::Login {
                name: self.name(name),
                password: Self::password(password),
                device_name: String::new(),
            }),
            SessionReq::Resume { token } => Body::Resume(pb::Resume {
                resume_token: self.token(token),
            }),
            SessionReq::Logout { all } => Body::Logout(pb::Logout { all_devices: all }),
            SessionReq::ChangePassword { old, new } => Body::ChangePassword(pb::ChangePassword {
                old_password: Self::password(old),
                new_password: Self::password(new),
            }),
        }
    }

    fn friends(&self, req: FriendReq) -> Body {
        match req {
            FriendReq::GetProfile { id, name } => Body::GetProfile(pb::GetProfile {
                user_id: name.map_or_else(|| self.user(id), |_| 0),
                name: name.map(|n| self.name(n)).unwrap_or_default(),
            }),
            FriendReq::SearchUsers { q, limit } => Body::SearchUsers(pb::SearchUsers {
                query: self.query(q),
                limit: Self::limit(limit),
            }),
            FriendReq::SendFriendRequest { to, note } => {
                Body::SendFriendRequest(pb::SendFriendRequest {
                    user_id: self.user(to),
                    note: self.text(note),
                })
            }
            FriendReq::RespondFriendRequest { req, accept } => {
                Body::RespondFriendRequest(pb::RespondFriendRequest {
                    request_id: self.request(req),
                    accept,
                })
            }
            FriendReq::CancelFriendRequest(r) => {
                Body::CancelFriendRequest(pb::CancelFriendRequest {
                    request_id: self.request(r),
                })
            }
            FriendReq::RemoveFriend(u) => Body::RemoveFriend(pb::RemoveFriend {
                user_id: self.user(u),
            }),
            FriendReq::ListFriends { after, limit } => Body::ListFriends(pb::ListFriends {
                after_user_id: self.user(after),
                limit: Self::limit(limit),
            }),
            FriendReq::ListFriendRequests { after, limit } => {
                Body::ListFriendRequests(pb::ListFriendRequests {
                    after_request_id: self.request(after),
                    limit: Self::limit(limit),
                })
            }
        }
    }

    fn groups(&self, req: GroupReq) -> Body {
        let (group, user) = (|p| self.group(p), |p| self.user(p));
        match req {
            GroupReq::CreateGroup { name, desc, open } => Body::CreateGroup(pb::CreateGroup {
                name: self.group_name(name),
                description: self.text(desc),
                open,
            }),
            GroupReq::JoinGroup(g) => Body::JoinGroup(pb::JoinGroup { group_id: group(g) }),
            GroupReq::InviteToGroup { group: g, user: u } => {
                Body::InviteToGroup(pb::InviteToGroup {
                    group_id: group(g),
                    user_id: user(u),
                })
            }
            GroupReq::DeclineGroupInvite(g) => {
                Body::DeclineGroupInvite(pb::DeclineGroupInvite { group_id: group(g) })
            }
            GroupReq::LeaveGroup(g) => Body::LeaveGroup(pb::LeaveGroup { group_id: group(g) }),
            GroupReq::KickMember { group: g, user: u } => Body::KickMember(pb::KickMember {
                group_id: group(g),
                user_id: user(u),
                ..Default::default()
            }),
            GroupReq::SetMemberRole {
                group: g,
                user: u,
                role,
            } => Body::SetMemberRole(pb::SetMemberRole {
                group_id: group(g),
                user_id: user(u),
                role: i32::from(role % 5),
            }),
            GroupReq::UpdateGroup {
                group: g,
                name,
                desc,
                open,
            } => Body::UpdateGroup(pb::UpdateGroup {
                group_id: group(g),
                name: name.map(|n| self.group_name(n)),
                description: desc.map(|d| self.text(d)),
                open,
            }),
            GroupReq::TransferOwnership { group: g, user: u } => {
                Body::TransferOwnership(pb::TransferOwnership {
                    group_id: group(g),
                    user_id: user(u),
                })
            }
            GroupReq::ListGroups { after, limit } => Body::ListGroups(pb::ListGroups {
                after_group_id: group(after),
                limit: Self::limit(limit),
            }),
            GroupReq::SearchGroups { q, limit } => Body::SearchGroups(pb::SearchGroups {
                query: self.query(q),
                limit: Self::limit(limit),
            }),
            GroupReq::ListGroupMembers {
                group: g,
                after,
                limit,
            } => Body::ListGroupMembers(pb::ListGroupMembers {
                group_id: group(g),
                after_user_id: user(after),
                limit: Self::limit(limit),
            }),
        }
    }

    fn threads(&self, req: ThreadReq) -> Body {
        let thread = |p| self.thread(p);
        match req {
            ThreadReq::ListThreads { before, limit } => Body::ListThreads(pb::ListThreads {
                before_activity_id: self.message(before),
                limit: Self::limit(limit),
            }),
            ThreadReq::GetThread {
                thread: t,
                user,
                group,
            } => Body::GetThread(pb::GetThread {
                thread_id: thread(t),
                user_id: self.user(user),
                group_id: self.group(group),
            }),
            ThreadReq::SyncThread {
                thread: t,
                since,
                limit,
            } => Body::SyncThread(pb::SyncThread {
                thread_id: thread(t),
                since_seq: Self::seq(since),
                limit: Self::limit(limit),
            }),
            ThreadReq::History {
                thread: t,
                before,
                limit,
            } => Body::History(pb::History {
                thread_id: thread(t),
                before_seq: Self::seq(before),
                limit: Self::limit(limit),
            }),
            ThreadReq::Send {
                thread: t,
                cmid,
                body,
            } => Body::Send(pb::Send {
                thread_id: thread(t),
                client_msg_id: Self::cmid(cmid),
                body: self.text(body),
                reply_to: 0,
            }),
            ThreadReq::Reply {
                thread: t,
                cmid,
                body,
                to,
            } => Body::Send(pb::Send {
                thread_id: thread(t),
                client_msg_id: Self::cmid(cmid),
                body: self.text(body),
                reply_to: self.message(to),
            }),
            ThreadReq::React {
                thread: t,
                message,
                emoji,
                remove,
            } => Body::React(pb::React {
                thread_id: thread(t),
                message_id: self.message(message),
                emoji: self.text(emoji),
                remove,
            }),
            ThreadReq::Recall {
                thread: t,
                message,
                cmid,
            } => Body::Recall(pb::Recall {
                thread_id: thread(t),
                message_id: self.message(message),
                client_msg_id: Self::cmid(cmid),
            }),
            ThreadReq::Edit {
                thread: t,
                message,
                cmid,
                body,
            } => Body::Edit(pb::Edit {
                thread_id: thread(t),
                message_id: self.message(message),
                body: self.text(body),
                client_msg_id: Self::cmid(cmid),
            }),
            ThreadReq::ReadUpTo { thread: t, seq } => Body::ReadUpTo(pb::ReadUpTo {
                thread_id: thread(t),
                seq: Self::seq(seq),
            }),
            ThreadReq::DeliveredUpTo { thread: t, seq } => Body::DeliveredUpTo(pb::DeliveredUpTo {
                thread_id: thread(t),
                seq: Self::seq(seq),
            }),
            ThreadReq::Typing(t) => Body::Typing(pb::Typing {
                thread_id: thread(t),
                ..Default::default()
            }),
            ThreadReq::SyncEvents { since, limit } => Body::SyncEvents(pb::SyncEvents {
                since_event_seq: Self::seq(since),
                limit: Self::limit(limit),
            }),
        }
    }
}
