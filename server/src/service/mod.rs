//! Requests to results: validation, rate limits, authentication, store operations, and the
//! pushes they cause. No sockets here: the connection task hands requests in and writes what
//! comes back.
//!
//! Writes that change threads or events return [`Effects`]; the store's writer hands them, in
//! commit order, to one fan-out task, which pushes them to the online devices. So pushes of one
//! thread leave this node in seq order.

/// Runs a read on the store and unwraps its result (`?`).
macro_rules! read {
    ($svc:expr, $tx:ident => $e:expr) => {
        $svc.store
            .read(move |$tx| Box::pin(async move { $e }))
            .await?
    };
}

/// Runs a write whose effects go to the fan-out task, for the connection `$conn`.
macro_rules! write {
    ($svc:expr, $conn:expr, $tx:ident => $e:expr) => {
        $svc.write_fx_await($conn, move |$tx| Box::pin(async move { $e }))
            .await?
    };
}

mod admin;
pub mod auth;
mod fanout;
mod friends;
pub mod gate;
mod groups;
mod markers;
mod paging;
mod presence;
mod session;
mod threads;
pub mod validate;

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use confab_wire::pb::{self, ErrorCode};
use confab_wire::{Body, Envelope, Frame};
use futures::future::BoxFuture;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::cluster::{Bus, LocalBus};
use crate::config::Config;
use crate::hub::{ConnCtl, Hub};
use crate::ids::Snowflake;
use crate::store::ops::{Effects, accounts};
use crate::store::{Backend, BoxFut, Store, StoreError, StoreResult};

pub use auth::Hasher;
use gate::{Admit, SignIn};
use paging::{Cut, Page};

/// An authenticated device session on a connection.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: pb::User,
    pub device_id: u64,
}

/// What the connection tells the service about itself with each request.
#[derive(Clone)]
pub struct ConnCtx {
    pub conn_id: u64,
    pub peer: IpAddr,
    pub session: Option<Session>,
    pub out: mpsc::Sender<Frame>,
    pub ctl: Arc<ConnCtl>,
    /// The Hello said `quiet`: this connection does not count for presence.
    pub quiet: bool,
    /// The Hello's client_name (at most 64 bytes, no control characters): a new device
    /// session records it.
    pub client: String,
    /// The operator's admin socket: the console's session, Admin requests only.
    pub operator: bool,
}

/// How a request changed the connection's authentication.
#[derive(Debug, Clone)]
pub enum AuthChange {
    Unchanged,
    LoggedIn(Session),
    LoggedOut,
}

/// The answer to one request: the reply frame (none for a successful notification) and any
/// change of authentication.
#[derive(Debug)]
pub struct Outcome {
    pub reply: Option<Envelope>,
    pub auth: AuthChange,
}

impl Outcome {
    fn reply(env: Envelope) -> Self {
        Self {
            reply: Some(env),
            auth: AuthChange::Unchanged,
        }
    }

    /// An error reply to `req_id`, authentication unchanged.
    fn error(req_id: u64, e: pb::Error) -> Self {
        Self::reply(error_reply(req_id, e))
    }

    /// No reply (a notification that succeeded, or an echo to ignore).
    fn none() -> Self {
        Self {
            reply: None,
            auth: AuthChange::Unchanged,
        }
    }
}

/// A result of the service: a reply body or a wire error.
type Res<T> = Result<T, pb::Error>;

/// A wire error: how the service and the connection make every error they send.
pub(crate) fn err(code: ErrorCode, msg: impl Into<String>) -> pb::Error {
    pb::Error::new(code, msg)
}

/// The frame that carries error `e` in answer to request `req_id` (0: to no request in
/// particular): how the service and the connection make every error reply.
pub(crate) fn error_reply(req_id: u64, e: pb::Error) -> Envelope {
    Envelope::new(req_id, Body::Error(e))
}

fn hash_err(e: auth::HashError) -> pb::Error {
    match e {
        auth::HashError::Busy => err(
            ErrorCode::RateLimited,
            "too many logins at once; retry shortly",
        )
        .retry_after(1000),
        other => {
            warn!(error = %other, "password hashing failed");
            err(ErrorCode::Internal, "internal error")
        }
    }
}

fn bad(msg: &str) -> pb::Error {
    err(ErrorCode::BadRequest, msg)
}

impl From<StoreError> for pb::Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => err(ErrorCode::NotFound, format!("{what} not found")),
            StoreError::Forbidden(why) => err(ErrorCode::Forbidden, why),
            StoreError::Conflict(why) => err(ErrorCode::Conflict, why),
            StoreError::NameTaken => err(ErrorCode::NameTaken, "that name is taken"),
            StoreError::LimitReached(why) => err(ErrorCode::LimitReached, why),
            StoreError::TooSoon(why, after) => err(ErrorCode::RateLimited, why).retry_after(after),
            StoreError::AuthFailed => err(ErrorCode::AuthFailed, "authentication failed"),
            StoreError::Invalid(why) => err(ErrorCode::BadRequest, why),
            StoreError::Duplicate => err(ErrorCode::Conflict, "already exists"),
            StoreError::Busy => err(ErrorCode::Unavailable, "the server is busy").retry_after(100),
            StoreError::Unavailable(why) => {
                warn!(%why, "storage unavailable");
                err(ErrorCode::Unavailable, "storage is unavailable").retry_after(1000)
            }
            StoreError::Corrupt(why) => {
                warn!(%why, "corrupt data");
                err(ErrorCode::Internal, "internal error")
            }
        }
    }
}

/// The chat service of one node.
pub struct Service<B: Backend> {
    pub cfg: Config,
    store: Store<B>,
    pub hub: Arc<Hub>,
    ids: Arc<Snowflake>,
    hasher: Hasher,
    ip_limiter: DefaultKeyedRateLimiter<IpAddr>,
    name_limiter: DefaultKeyedRateLimiter<String>,
    /// SearchMessages per connection (`--search-per-minute`).
    search_limiter: DefaultKeyedRateLimiter<u64>,
    typing: Mutex<HashMap<(u64, u64), Instant>>,
    members: Mutex<HashMap<u64, Arc<Vec<u64>>>>,
    /// Bumped (under the `members` lock) by every invalidation: a list read while one happened
    /// may predate it and is not cached (another node's change can land mid-read).
    members_gen: std::sync::atomic::AtomicU64,
    fanout: mpsc::UnboundedSender<Fanout>,
    /// The other nodes (a no-op when alone): every push to users also goes here.
    bus: Arc<dyn Bus>,
    /// Delivery markers sent as notifications, (device, thread) -> (user, seq), stored together
    /// about once a second ([`Service::flush_delivered`]): every online device reports each
    /// thread it receives in, and one write per report was a third of MySQL's statements under
    /// load. A marker is advisory and only moves forward, so one that a crash loses costs
    /// nothing but a stale marker until the device reports again.
    delivered: Mutex<HashMap<(u64, u64), (u64, u64)>>,
}

const TYPING_EVERY: Duration = Duration::from_secs(2);
/// Hits a SearchMessages returns when it asks for no number.
const SEARCH_PAGE: u32 = 20;
const TYPING_SHOWN_MS: u32 = 5000;
const MEMBER_CACHE_MAX: usize = 100_000;
/// Delivery markers waiting to be stored; past this, reports are stored one by one.
const DELIVERED_PENDING_MAX: usize = 100_000;
/// Bytes a page's reply leaves unused below the frame limit (a margin; the measure already
/// counts the envelope).
const PAGE_SLACK: usize = 256;

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN))
}

impl<B: Backend> Service<B> {
    /// Builds a single-node service and starts its fan-out task (needs a tokio runtime).
    pub fn start(cfg: Config, store: Store<B>, hasher: Hasher) -> Arc<Self> {
        let hub = Arc::new(Hub::new());
        let bus = Arc::new(LocalBus::new(hub.clone()));
        Self::start_with(cfg, store, hasher, hub, bus)
    }

    /// Builds the service on a given hub and cluster bus (the bus delivers into that hub).
    pub fn start_with(
        cfg: Config,
        store: Store<B>,
        hasher: Hasher,
        hub: Arc<Hub>,
        bus: Arc<dyn Bus>,
    ) -> Arc<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let svc = Arc::new(Self {
            ids: Arc::new(Snowflake::new(cfg.node_id)),
            ip_limiter: RateLimiter::keyed(per_minute(cfg.auth_per_ip_per_minute)),
            name_limiter: RateLimiter::keyed(per_minute(cfg.auth_per_name_per_minute)),
            search_limiter: RateLimiter::keyed(per_minute(cfg.search_per_minute)),
            cfg,
            store,
            hub,
            hasher,
            typing: Mutex::new(HashMap::new()),
            members: Mutex::new(HashMap::new()),
            members_gen: std::sync::atomic::AtomicU64::new(0),
            fanout: tx,
            bus,
            delivered: Mutex::new(HashMap::new()),
        });
        tokio::spawn(fanout_loop(Arc::downgrade(&svc), rx));
        // Other nodes' membership changes invalidate this node's member cache.
        let weak = Arc::downgrade(&svc);
        svc.bus.on_members_changed(Box::new(move |threads| {
            let Some(svc) = weak.upgrade() else { return };
            if let Ok(mut m) = svc.members.lock() {
                svc.members_gen
                    .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                match threads {
                    Some(ts) => ts.iter().for_each(|t| {
                        m.remove(t);
                    }),
                    None => m.clear(),
                }
            }
        }));
        // A dead node's users went offline without a goodbye: tell their friends.
        let weak = Arc::downgrade(&svc);
        svc.bus.on_users_lost(Box::new(move |users| {
            let Some(svc) = weak.upgrade() else { return };
            tokio::spawn(async move {
                for uid in users {
                    let profile = svc
                        .store
                        .read(move |tx| {
                            Box::pin(async move { accounts::profile(tx, uid, uid).await })
                        })
                        .await;
                    if let Ok(pb::Profile {
                        user: Some(user), ..
                    }) = profile
                    {
                        svc.announce_presence(user, false).await;
                    }
                }
            });
        }));
        let weak = Arc::downgrade(&svc);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                let Some(svc) = weak.upgrade() else { return };
                svc.ip_limiter.retain_recent();
                svc.name_limiter.retain_recent();
                svc.search_limiter.retain_recent();
                let cutoff = Instant::now();
                if let Ok(mut t) = svc.typing.lock() {
                    // Kept while the indicator shows: a stop is forwarded only then.
                    let shown = Duration::from_millis(u64::from(TYPING_SHOWN_MS));
                    t.retain(|_, at| cutoff.duration_since(*at) < shown);
                }
            }
        });
        svc
    }

    pub fn store(&self) -> &Store<B> {
        &self.store
    }

    /// The limits announced in HelloOk.
    pub fn limits(&self) -> pb::Limits {
        pb::Limits {
            max_body_bytes: self.cfg.max_body_bytes,
            max_page: self.cfg.max_page,
            max_group_members: self.cfg.max_group_members,
            max_in_flight: self.cfg.max_in_flight,
            requests_per_second: self.cfg.requests_per_second,
            request_burst: self.cfg.request_burst,
            recall_window_ms: self.cfg.recall_window_ms,
            max_name_chars: validate::NAME_MAX_CHARS as u32,
            max_note_bytes: validate::NOTE_MAX_BYTES as u32,
            max_reaction_kinds: validate::REACTION_KINDS_MAX as u32,
        }
    }

    fn frame(&self, env: &Envelope) -> Option<Frame> {
        match Frame::encode(env, self.cfg.max_frame_bytes as usize) {
            Ok(f) => Some(f),
            Err(e) => {
                warn!(error = %e, body = env.body_name(), "push too large to send");
                None
            }
        }
    }

    fn page_limit(&self, limit: u32) -> u32 {
        if limit == 0 {
            self.cfg.max_page
        } else {
            limit.min(self.cfg.max_page)
        }
    }

    /// Runs a write; its effects go to the ordered fan-out after commit.
    fn write_fx<R, F>(
        &self,
        key: u64,
        origin_conn: u64,
        op: F,
    ) -> StoreResult<tokio::sync::oneshot::Receiver<StoreResult<(R, Effects)>>>
    where
        R: Send + 'static,
        F: for<'t> FnOnce(&'t mut B::Tx) -> BoxFut<'t, StoreResult<(R, Effects)>>
            + Clone
            + Send
            + 'static,
    {
        self.store
            .enqueue_write(key, op, self.to_fanout(origin_conn))
    }

    /// Hands a committed write's effects to the ordered fan-out (it runs on the writer, in
    /// commit order).
    fn to_fanout<R>(&self, origin_conn: u64) -> impl FnOnce(&mut (R, Effects)) + Send + 'static {
        let sink = self.fanout.clone();
        move |(_, fx): &mut (R, Effects)| {
            let fx = std::mem::take(fx);
            if !(fx.events.is_empty() && fx.messages.is_empty() && fx.members_changed.is_empty()) {
                let _ = sink.send(Fanout { fx, origin_conn });
            }
        }
    }

    async fn write_fx_await<R, F>(&self, origin_conn: u64, op: F) -> Res<R>
    where
        R: Send + 'static,
        F: for<'t> FnOnce(&'t mut B::Tx) -> BoxFut<'t, StoreResult<(R, Effects)>>
            + Clone
            + Send
            + 'static,
    {
        let rx = self.write_fx(0, origin_conn, op)?;
        let (r, _) = rx
            .await
            .map_err(|_| pb::Error::from(StoreError::Unavailable("writer stopped".into())))??;
        Ok(r)
    }

    // ---------------------------------------------------------------------------------------
    // Dispatch

    /// Turns one request that [`gate::frame`] passed on ([`Step::Request`](gate::Step)) into a
    /// future of its outcome: [`gate::admit`] answers what this state does not run, the rest
    /// goes to its feature's handler. Work that must keep the connection's order (queuing a
    /// send) happens here, before the future is returned.
    ///
    /// Needs no socket: `ctx` is all it knows of the connection, which applies the outcome's
    /// [`AuthChange`] to `ctx.session` before its next request (the service fuzz target,
    /// server/fuzz, drives it this way).
    pub fn dispatch(
        self: &Arc<Self>,
        ctx: &ConnCtx,
        req_id: u64,
        body: Body,
    ) -> BoxFuture<'static, Outcome> {
        let (session, body) = match gate::admit(ctx.session.as_ref(), req_id, body) {
            Admit::Answer(answer) => return ready(answer),
            Admit::Session(session, body) => (session, body),
            Admit::SignIn(sign_in) => {
                let (svc, ctx) = (self.clone(), ctx.clone());
                return Box::pin(async move {
                    match sign_in {
                        SignIn::Register(r) => svc.register(&ctx, req_id, r).await,
                        SignIn::Login(l) => svc.login(&ctx, req_id, l).await,
                        SignIn::Resume(r) => svc.resume(&ctx, req_id, &r.resume_token).await,
                    }
                });
            }
        };
        if ctx.operator && !admin::is_admin_body(&body) {
            return ready(Outcome::error(
                req_id,
                err(
                    ErrorCode::Forbidden,
                    "the admin socket runs Admin requests only",
                ),
            ));
        }
        let notification = req_id == 0;
        if let (true, Body::DeliveredUpTo(d)) = (notification, &body)
            && self.note_delivered(&session, d)
        {
            return ready(Outcome::none());
        }
        // Sends are queued now so one connection's sends keep their order.
        if let Body::Send(send) = body {
            return match self.queue_send(ctx, &session, send) {
                Ok(rx) => Box::pin(async move {
                    let res = match rx.await {
                        Ok(Ok((sent, _))) => {
                            crate::metrics::message_stored(&sent.ack);
                            Ok(Body::SendAck(sent.ack))
                        }
                        Ok(Err(e)) => Err(e.into()),
                        Err(_) => Err(StoreError::Unavailable("writer stopped".into()).into()),
                    };
                    Outcome::reply(finish(req_id, res))
                }),
                Err(e) => ready(Outcome::error(req_id, e)),
            };
        }
        let svc = self.clone();
        let ctx = ctx.clone();
        Box::pin(async move {
            match body {
                Body::Logout(l) => svc.logout(&ctx, &session, req_id, l).await,
                Body::ChangePassword(c) => svc.change_password(&ctx, &session, req_id, c).await,
                Body::RevokeDevice(r) => svc.revoke_device(&session, req_id, r).await,
                Body::DeleteAccount(d) => svc.delete_account(&ctx, &session, req_id, d).await,
                body => match svc.handle(&ctx, &session, body).await {
                    Ok(None) if notification => Outcome::none(),
                    Ok(None) => Outcome::reply(Envelope::new(req_id, Body::Ok(pb::Ok {}))),
                    Ok(Some(b)) if notification => {
                        debug!(
                            body = confab_wire::body_name(&b),
                            "reply to a notification dropped"
                        );
                        Outcome::none()
                    }
                    Ok(Some(b)) => Outcome::reply(Envelope::new(req_id, b)),
                    Err(e) => Outcome::error(req_id, e),
                },
            }
        })
    }

    /// Everything else a session may ask, by feature; Ok(None) means a plain `Ok`.
    async fn handle(self: &Arc<Self>, ctx: &ConnCtx, s: &Session, body: Body) -> Res<Option<Body>> {
        if missing_id(&body) {
            return Err(bad("a required id is 0"));
        }
        match body {
            b @ (Body::GetProfile(_)
            | Body::SearchUsers(_)
            | Body::SendFriendRequest(_)
            | Body::RespondFriendRequest(_)
            | Body::CancelFriendRequest(_)
            | Body::RemoveFriend(_)
            | Body::BlockUser(_)
            | Body::UnblockUser(_)
            | Body::ListBlocked(_)
            | Body::ListFriends(_)
            | Body::ListFriendRequests(_)) => self.friends_request(ctx, s, b).await,
            b @ (Body::CreateGroup(_)
            | Body::JoinGroup(_)
            | Body::InviteToGroup(_)
            | Body::DeclineGroupInvite(_)
            | Body::LeaveGroup(_)
            | Body::KickMember(_)
            | Body::SetMemberRole(_)
            | Body::UpdateGroup(_)
            | Body::TransferOwnership(_)
            | Body::ListGroups(_)
            | Body::SearchGroups(_)
            | Body::ListGroupMembers(_)
            | Body::UnbanMember(_)
            | Body::ListBans(_)) => self.groups_request(ctx, s, b).await,
            b @ (Body::ListThreads(_)
            | Body::GetThread(_)
            | Body::SyncThread(_)
            | Body::History(_)
            | Body::Recall(_)
            | Body::Edit(_)
            | Body::ReadUpTo(_)
            | Body::DeliveredUpTo(_)
            | Body::SyncEvents(_)
            | Body::SearchMessages(_)
            | Body::React(_)) => self.threads_request(ctx, s, b).await,
            b @ Body::Typing(_) => self.presence_request(ctx, s, b).await,
            b if admin::is_admin_body(&b) => self.admin_request(ctx, s, b).await,
            Body::ListDevices(_) => {
                let (uid, dev) = (s.user.user_id, s.device_id);
                let devices = self
                    .store
                    .read(move |tx| Box::pin(async move { accounts::devices(tx, uid, dev).await }))
                    .await?;
                Ok(Some(Body::DeviceList(pb::DeviceList { devices })))
            }
            other => Err(not_a_request(&other)),
        }
    }

    /// Cuts a list reply to fit in a frame (see [`paging::fit`]).
    fn fit<P: Page>(&self, page: P, cut: Cut) -> P {
        let max = (self.cfg.max_frame_bytes as usize).saturating_sub(PAGE_SLACK);
        paging::fit(page, max, cut)
    }

    /// The end of a graceful shutdown: the store makes its writes durable in the database
    /// itself and stops (see [`Backend::close`]).
    pub fn close_store(&self) {
        self.store.close();
    }
}

/// Users as a `UserList` of bare profiles (the block and ban lists).
fn user_list(users: Vec<pb::User>) -> pb::UserList {
    pb::UserList {
        users: users
            .into_iter()
            .map(|u| pb::Profile {
                user: Some(u),
                ..Default::default()
            })
            .collect(),
        has_more: false,
    }
}

fn ready(o: Outcome) -> BoxFuture<'static, Outcome> {
    Box::pin(std::future::ready(o))
}

fn finish(req_id: u64, res: Res<Body>) -> Envelope {
    match res {
        Ok(b) => Envelope::new(req_id, b),
        Err(e) => error_reply(req_id, e),
    }
}

/// The error for a body a handler does not take (the feature handlers' fallback; `handle`
/// routes each body to the one that takes it).
fn not_a_request(other: &Body) -> pb::Error {
    err(
        ErrorCode::Unsupported,
        format!("{} is not a request", confab_wire::body_name(other)),
    )
}

/// Whether a request leaves a required id at 0 ("none"): that is a malformed request
/// (`BAD_REQUEST`), not a lookup of something that does not exist.
fn missing_id(body: &Body) -> bool {
    let ids: &[u64] = match body {
        Body::SendFriendRequest(r) => &[r.user_id],
        Body::RespondFriendRequest(r) => &[r.request_id],
        Body::CancelFriendRequest(r) => &[r.request_id],
        Body::RemoveFriend(r) => &[r.user_id],
        Body::BlockUser(r) => &[r.user_id],
        Body::RevokeDevice(r) => &[r.device_id],
        Body::AdminDeleteGroup(r) => &[r.group_id],
        Body::AdminTransferGroup(r) => &[r.group_id],
        Body::AdminRevokeInvite(r) => &[r.invite_id],
        Body::UnbanMember(r) => &[r.group_id, r.user_id],
        Body::ListBans(r) => &[r.group_id],
        Body::UnblockUser(r) => &[r.user_id],
        Body::JoinGroup(r) => &[r.group_id],
        Body::InviteToGroup(r) => &[r.group_id, r.user_id],
        Body::DeclineGroupInvite(r) => &[r.group_id],
        Body::LeaveGroup(r) => &[r.group_id],
        Body::KickMember(r) => &[r.group_id, r.user_id],
        Body::SetMemberRole(r) => &[r.group_id, r.user_id],
        Body::UpdateGroup(r) => &[r.group_id],
        Body::TransferOwnership(r) => &[r.group_id, r.user_id],
        Body::ListGroupMembers(r) => &[r.group_id],
        Body::SyncThread(r) => &[r.thread_id],
        Body::History(r) => &[r.thread_id],
        Body::Recall(r) => &[r.thread_id, r.message_id],
        Body::Edit(r) => &[r.thread_id, r.message_id],
        Body::React(r) => &[r.message_id],
        Body::DeliveredUpTo(r) => &[r.thread_id],
        Body::ReadUpTo(r) => &[r.thread_id],
        Body::Typing(r) => &[r.thread_id],
        _ => &[],
    };
    ids.contains(&0)
}

/// Effects on their way to the fan-out task.
struct Fanout {
    fx: Effects,
    /// The connection that caused them: it gets an ack, not a push, for its own entries.
    origin_conn: u64,
}

async fn fanout_loop<B: Backend>(
    svc: std::sync::Weak<Service<B>>,
    mut rx: mpsc::UnboundedReceiver<Fanout>,
) {
    while let Some(f) = rx.recv().await {
        let Some(svc) = svc.upgrade() else { return };
        svc.deliver(f).await;
    }
}
