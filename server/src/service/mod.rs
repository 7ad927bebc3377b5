//! Requests to results: validation, rate limits, authentication, store operations, and the
//! pushes they cause. No sockets here: the connection task hands requests in and writes what
//! comes back.
//!
//! Writes that change threads or events return [`Effects`]; the store's writer hands them, in
//! commit order, to one fan-out task, which pushes them to the online devices. So pushes of one
//! thread leave this node in seq order.

pub mod auth;
pub mod validate;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use confab_wire::pb::{self, ErrorCode};
use confab_wire::{Body, Envelope, Frame, PROTOCOL_MAJOR, PROTOCOL_MINOR};
use futures::future::BoxFuture;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use prost::Message as _;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::cluster::{Bus, KickScope, LocalBus};
use crate::config::Config;
use crate::hub::{ConnCtl, ConnHandle, Hub, Kick};
use crate::ids::{Snowflake, now_ms};
use crate::store::ops::{self, Effects, accounts, friends, groups, messages};
use crate::store::{Backend, BoxFut, Store, StoreError, StoreResult};

pub use auth::Hasher;

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
}

/// Effects on their way to the fan-out task.
struct Fanout {
    fx: Effects,
    /// The connection that caused them: it gets an ack, not a push, for its own entries.
    origin_conn: u64,
}

/// A result of the service: a reply body or a wire error.
type Res<T> = Result<T, pb::Error>;

fn err(code: ErrorCode, msg: impl Into<String>) -> pb::Error {
    pb::Error::new(code, msg)
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
const TYPING_SHOWN_MS: u32 = 5000;
const MEMBER_CACHE_MAX: usize = 100_000;
/// Delivery markers waiting to be stored; past this, reports are stored one by one.
const DELIVERED_PENDING_MAX: usize = 100_000;
/// Bytes kept free in a frame for the envelope around a page.
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
                let cutoff = Instant::now();
                if let Ok(mut t) = svc.typing.lock() {
                    t.retain(|_, at| cutoff.duration_since(*at) < TYPING_EVERY);
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

    /// Turns one request into a future of its outcome. Work that must keep the connection's
    /// order (queuing a send) happens here, before the future is returned.
    pub fn dispatch(
        self: &Arc<Self>,
        ctx: &ConnCtx,
        req_id: u64,
        body: Body,
    ) -> BoxFuture<'static, Outcome> {
        let notification = req_id == 0;
        if notification && confab_wire::is_server_body(&body) {
            // A reply or push echoed back: nothing to answer.
            return ready(Outcome {
                reply: None,
                auth: AuthChange::Unchanged,
            });
        }
        if confab_wire::is_server_body(&body) {
            // Wrong direction, before the state check: UNSUPPORTED in every state (§3).
            return ready(Outcome::reply(Envelope::error(
                req_id,
                ErrorCode::Unsupported,
                format!("{} is not a request", confab_wire::body_name(&body)),
            )));
        }
        if notification
            && !matches!(
                body,
                Body::Typing(_) | Body::DeliveredUpTo(_) | Body::ReadUpTo(_)
            )
        {
            let e = bad("only Typing, DeliveredUpTo and ReadUpTo may be sent without a req_id");
            return ready(Outcome::reply(Envelope::new(0, Body::Error(e))));
        }
        let Some(session) = ctx.session.clone() else {
            return self.dispatch_unauthenticated(ctx, req_id, body);
        };
        if let (true, Body::DeliveredUpTo(d)) = (notification, &body)
            && self.note_delivered(&session, d)
        {
            return ready(Outcome {
                reply: None,
                auth: AuthChange::Unchanged,
            });
        }
        // Sends are queued now so one connection's sends keep their order.
        if let Body::Send(send) = body {
            return match self.queue_send(ctx, &session, send) {
                Ok(rx) => Box::pin(async move {
                    let res = match rx.await {
                        Ok(Ok((sent, _))) => Ok(Body::SendAck(sent.ack)),
                        Ok(Err(e)) => Err(e.into()),
                        Err(_) => Err(StoreError::Unavailable("writer stopped".into()).into()),
                    };
                    Outcome::reply(finish(req_id, res))
                }),
                Err(e) => ready(Outcome::reply(Envelope::new(req_id, Body::Error(e)))),
            };
        }
        let svc = self.clone();
        let ctx = ctx.clone();
        Box::pin(async move {
            match body {
                Body::Logout(l) => svc.logout(&ctx, &session, req_id, l).await,
                Body::ChangePassword(c) => svc.change_password(&ctx, &session, req_id, c).await,
                Body::Hello(_) | Body::Register(_) | Body::Login(_) | Body::Resume(_) => {
                    Outcome::reply(Envelope::error(
                        req_id,
                        ErrorCode::Conflict,
                        "already authenticated",
                    ))
                }
                body => {
                    let res = svc.handle(&ctx, &session, body).await;
                    match res {
                        Ok(None) if notification => Outcome {
                            reply: None,
                            auth: AuthChange::Unchanged,
                        },
                        Ok(None) => Outcome::reply(Envelope::new(req_id, Body::Ok(pb::Ok {}))),
                        Ok(Some(b)) if notification => {
                            debug!(
                                body = confab_wire::body_name(&b),
                                "reply to a notification dropped"
                            );
                            Outcome {
                                reply: None,
                                auth: AuthChange::Unchanged,
                            }
                        }
                        Ok(Some(b)) => Outcome::reply(Envelope::new(req_id, b)),
                        Err(e) => Outcome::reply(Envelope::new(req_id, Body::Error(e))),
                    }
                }
            }
        })
    }

    fn dispatch_unauthenticated(
        self: &Arc<Self>,
        ctx: &ConnCtx,
        req_id: u64,
        body: Body,
    ) -> BoxFuture<'static, Outcome> {
        let svc = self.clone();
        let ctx = ctx.clone();
        Box::pin(async move {
            match body {
                Body::Register(r) => svc.register(&ctx, req_id, r).await,
                Body::Login(l) => svc.login(&ctx, req_id, l).await,
                Body::Resume(r) => svc.resume(&ctx, req_id, &r.resume_token).await,
                Body::Ping(p) => Outcome::reply(pong(req_id, p)),
                Body::Hello(_) => Outcome::reply(Envelope::error(
                    req_id,
                    ErrorCode::Conflict,
                    "Hello was already sent",
                )),
                _ => Outcome::reply(Envelope::error(
                    req_id,
                    ErrorCode::Unauthenticated,
                    "log in first",
                )),
            }
        })
    }

    /// Answers a Hello (the connection checked the major version). With a resume token, the
    /// connection is authenticated in the same round trip.
    pub async fn hello(self: &Arc<Self>, ctx: &ConnCtx, req_id: u64, hello: pb::Hello) -> Outcome {
        // A no-op while the server's minor is 0; it matters once minors are added.
        #[allow(clippy::unnecessary_min_or_max)]
        let minor = hello.protocol_minor.min(PROTOCOL_MINOR);
        let mut ok = pb::HelloOk {
            protocol_major: PROTOCOL_MAJOR,
            protocol_minor: minor,
            server_name: "confab-server".into(),
            server_version: env!("CARGO_PKG_VERSION").into(),
            heartbeat_interval_ms: self.cfg.heartbeat_ms,
            idle_timeout_ms: self.cfg.idle_timeout_ms,
            max_frame_bytes: self.cfg.max_frame_bytes,
            server_time_ms: now_ms(),
            limits: Some(self.limits()),
            auth: None,
            resume_failed: false,
            node_id: u64::from(self.cfg.node_id),
        };
        let mut auth = AuthChange::Unchanged;
        if !hello.resume_token.is_empty() {
            match self.resume_session(ctx, &hello.resume_token).await {
                Ok((auth_ok, session)) => {
                    ok.auth = Some(auth_ok);
                    auth = AuthChange::LoggedIn(session);
                }
                Err(e) if e.code == ErrorCode::AuthFailed as i32 => ok.resume_failed = true,
                Err(e) => return Outcome::reply(Envelope::new(req_id, Body::Error(e.fatal()))),
            }
        }
        Outcome {
            reply: Some(Envelope::new(req_id, Body::HelloOk(ok))),
            auth,
        }
    }

    // ---------------------------------------------------------------------------------------
    // Accounts

    fn check_auth_rate(&self, ip: IpAddr, name_key: Option<&str>) -> Res<()> {
        use governor::clock::{Clock, DefaultClock};
        let clock = DefaultClock::default();
        let wait = |nu: governor::NotUntil<_>| {
            let ms = nu.wait_time_from(clock.now()).as_millis();
            err(ErrorCode::RateLimited, "too many attempts; wait and retry")
                .retry_after(u32::try_from(ms).unwrap_or(u32::MAX).max(1))
        };
        self.ip_limiter.check_key(&ip).map_err(wait)?;
        if let Some(key) = name_key {
            self.name_limiter.check_key(&key.to_owned()).map_err(wait)?;
        }
        Ok(())
    }

    /// Puts the connection in the hub (and its route in the cluster, before the AuthOk goes
    /// out) and announces presence if it is the user's first.
    async fn attach(self: &Arc<Self>, ctx: &ConnCtx, session: &Session) {
        let reg = self.hub.register(ConnHandle {
            conn_id: ctx.conn_id,
            user_id: session.user.user_id,
            device_id: session.device_id,
            tx: ctx.out.clone(),
            ctl: ctx.ctl.clone(),
        });
        self.bus
            .attached(session.user.user_id, session.device_id)
            .await;
        if reg.first {
            let svc = self.clone();
            let user = session.user.clone();
            tokio::spawn(async move { svc.announce_presence(user, true).await });
        }
    }

    /// Called by the connection when it closes.
    pub fn detach(self: &Arc<Self>, conn_id: u64, session: &Session) {
        let last = self.hub.unregister(session.user.user_id, conn_id);
        if self.bus.clustered() {
            let svc = self.clone();
            let (uid, dev) = (session.user.user_id, session.device_id);
            let user = session.user.clone();
            // The route goes first: the presence check below must not count this device.
            tokio::spawn(async move {
                svc.bus.detached(uid, dev).await;
                if last {
                    svc.went_offline(user).await;
                }
            });
        } else if last {
            let svc = self.clone();
            let user = session.user.clone();
            tokio::spawn(async move { svc.went_offline(user).await });
        }
    }

    /// The user's last connection on this node closed.
    async fn went_offline(self: Arc<Self>, user: pb::User) {
        let uid = user.user_id;
        if let Err(e) = self
            .store
            .write(move |tx| {
                Box::pin(async move { accounts::set_last_seen(tx, uid, now_ms()).await })
            })
            .await
        {
            debug!(error = %e, "could not record last seen");
        }
        self.announce_presence(user, false).await;
    }

    async fn announce_presence(&self, user: pb::User, online: bool) {
        let uid = user.user_id;
        let friends = match self
            .store
            .read(move |tx| Box::pin(async move { friends::friend_ids(tx, uid).await }))
            .await
        {
            Ok(f) => f,
            Err(e) => {
                debug!(error = %e, "presence: cannot list friends");
                return;
            }
        };
        // The user may have come back (or left) while the friends were read; in a cluster,
        // "online" means on any node.
        if self.is_online(uid).await != online {
            return;
        }
        let push = Envelope::push(Body::PresencePush(pb::PresencePush {
            user: Some(user),
            online,
            last_seen_ms: now_ms(),
        }));
        if let Some(frame) = self.frame(&push) {
            for f in &friends {
                self.hub.push_user(*f, &frame, 0);
            }
            self.bus.forward(&friends, &frame);
        }
    }

    /// Which of `users` are online (on any node in a cluster).
    async fn online_among(&self, users: &[u64]) -> HashSet<u64> {
        self.bus.online(users).await
    }

    async fn is_online(&self, user: u64) -> bool {
        self.online_among(&[user]).await.contains(&user)
    }

    fn auth_ok(&self, s: &accounts::Session, token: String) -> pb::AuthOk {
        pb::AuthOk {
            user: Some(s.user.clone()),
            device_id: s.device_id,
            resume_token: token,
            last_event_seq: s.last_event_seq,
        }
    }

    async fn logged_in(
        self: &Arc<Self>,
        ctx: &ConnCtx,
        req_id: u64,
        s: accounts::Session,
        token: String,
    ) -> Outcome {
        let session = Session {
            user: s.user.clone(),
            device_id: s.device_id,
        };
        self.attach(ctx, &session).await;
        Outcome {
            reply: Some(Envelope::new(req_id, Body::AuthOk(self.auth_ok(&s, token)))),
            auth: AuthChange::LoggedIn(session),
        }
    }

    async fn register(self: &Arc<Self>, ctx: &ConnCtx, req_id: u64, r: pb::Register) -> Outcome {
        let res: Res<(accounts::Session, String)> = async {
            let name = validate::user_name(&r.name).map_err(bad)?;
            validate::password(&r.password).map_err(bad)?;
            self.check_auth_rate(ctx.peer, Some(&name.key))?;
            let hash = self.hasher.hash(r.password).await.map_err(hash_err)?;
            let (token, token_hash) = auth::new_token();
            let device = validate::device_name(&r.device_name);
            let s = self
                .store
                .write(move |tx| {
                    Box::pin(async move {
                        accounts::register(
                            tx,
                            &name.display,
                            &name.key,
                            &hash,
                            &device,
                            &token_hash,
                        )
                        .await
                    })
                })
                .await?;
            Ok((s, token))
        }
        .await;
        match res {
            Ok((s, token)) => self.logged_in(ctx, req_id, s, token).await,
            Err(e) => Outcome::reply(Envelope::new(req_id, Body::Error(e))),
        }
    }

    async fn login(self: &Arc<Self>, ctx: &ConnCtx, req_id: u64, l: pb::Login) -> Outcome {
        let res: Res<(accounts::Session, String)> = async {
            let failed = || err(ErrorCode::AuthFailed, "wrong name or password");
            let key = validate::name_key(&l.name);
            self.check_auth_rate(ctx.peer, Some(&key))?;
            let lookup = key.clone();
            let creds = self
                .store
                .read(move |tx| Box::pin(async move { accounts::credentials(tx, &lookup).await }))
                .await?;
            // Unknown names are verified against a dummy hash: the same time either way.
            let ok = self
                .hasher
                .verify(l.password, creds.as_ref().map(|c| c.password_hash.clone()))
                .await
                .map_err(hash_err)?;
            let creds = match creds {
                Some(c) if ok => c,
                _ => return Err(failed()),
            };
            let (token, token_hash) = auth::new_token();
            let device = validate::device_name(&l.device_name);
            let s = self
                .store
                .write(move |tx| {
                    Box::pin(
                        async move { accounts::login(tx, creds.user, &device, &token_hash).await },
                    )
                })
                .await?;
            Ok((s, token))
        }
        .await;
        match res {
            Ok((s, token)) => self.logged_in(ctx, req_id, s, token).await,
            Err(e) => Outcome::reply(Envelope::new(req_id, Body::Error(e))),
        }
    }

    async fn resume_session(
        self: &Arc<Self>,
        ctx: &ConnCtx,
        token: &str,
    ) -> Res<(pb::AuthOk, Session)> {
        if token.is_empty() || token.len() > 256 {
            return Err(err(ErrorCode::AuthFailed, "invalid resume token"));
        }
        let old_hash = auth::token_hash(token);
        let (new_token, new_hash) = auth::new_token();
        let s = self
            .store
            .write(move |tx| {
                Box::pin(async move { accounts::resume(tx, &old_hash, &new_hash, 60_000).await })
            })
            .await
            .map_err(|e| match e {
                StoreError::AuthFailed => {
                    err(ErrorCode::AuthFailed, "invalid or revoked resume token")
                }
                other => other.into(),
            })?;
        let session = Session {
            user: s.user.clone(),
            device_id: s.device_id,
        };
        self.attach(ctx, &session).await;
        Ok((self.auth_ok(&s, new_token), session))
    }

    async fn resume(self: &Arc<Self>, ctx: &ConnCtx, req_id: u64, token: &str) -> Outcome {
        match self.resume_session(ctx, token).await {
            Ok((ok, session)) => Outcome {
                reply: Some(Envelope::new(req_id, Body::AuthOk(ok))),
                auth: AuthChange::LoggedIn(session),
            },
            Err(e) => Outcome::reply(Envelope::new(req_id, Body::Error(e))),
        }
    }

    async fn logout(
        self: &Arc<Self>,
        ctx: &ConnCtx,
        s: &Session,
        req_id: u64,
        l: pb::Logout,
    ) -> Outcome {
        let (uid, dev, all) = (s.user.user_id, s.device_id, l.all_devices);
        let res = self
            .store
            .write(move |tx| Box::pin(async move { accounts::logout(tx, uid, dev, all).await }))
            .await;
        match res {
            Ok(()) => {
                // Every other connection of the revoked session(s) is closed.
                let me = ctx.conn_id;
                self.hub.kick_where(uid, Kick::Revoked, |c| {
                    c.conn_id != me && (all || c.device_id == dev)
                });
                self.bus.kick(
                    uid,
                    if all {
                        KickScope::All
                    } else {
                        KickScope::Device(dev)
                    },
                );
                self.detach(ctx.conn_id, s);
                Outcome {
                    reply: Some(Envelope::new(req_id, Body::Ok(pb::Ok {}))),
                    auth: AuthChange::LoggedOut,
                }
            }
            Err(e) => Outcome::reply(Envelope::new(req_id, Body::Error(e.into()))),
        }
    }

    async fn change_password(
        self: &Arc<Self>,
        _ctx: &ConnCtx,
        s: &Session,
        req_id: u64,
        c: pb::ChangePassword,
    ) -> Outcome {
        let res: Res<(accounts::Session, String)> = async {
            validate::password(&c.new_password).map_err(bad)?;
            let uid = s.user.user_id;
            let stored = self
                .store
                .read(move |tx| Box::pin(async move { accounts::password_hash(tx, uid).await }))
                .await?;
            let ok = self
                .hasher
                .verify(c.old_password, Some(stored))
                .await
                .map_err(hash_err)?;
            if !ok {
                return Err(err(ErrorCode::AuthFailed, "the old password is wrong"));
            }
            let hash = self.hasher.hash(c.new_password).await.map_err(hash_err)?;
            let (token, token_hash) = auth::new_token();
            let (user, dev) = (s.user.clone(), s.device_id);
            let session = self
                .store
                .write(move |tx| {
                    Box::pin(async move {
                        accounts::change_password(tx, user, dev, &hash, &token_hash).await
                    })
                })
                .await?;
            self.hub
                .kick_where(uid, Kick::Revoked, |c| c.device_id != dev);
            self.bus.kick(uid, KickScope::AllBut(dev));
            Ok((session, token))
        }
        .await;
        match res {
            Ok((session, token)) => Outcome::reply(Envelope::new(
                req_id,
                Body::AuthOk(self.auth_ok(&session, token)),
            )),
            Err(e) => Outcome::reply(Envelope::new(req_id, Body::Error(e))),
        }
    }

    // ---------------------------------------------------------------------------------------
    // Everything else needs a session; Ok(None) means a plain `Ok`.

    async fn handle(self: &Arc<Self>, ctx: &ConnCtx, s: &Session, body: Body) -> Res<Option<Body>> {
        let me = s.user.user_id;
        let conn = ctx.conn_id;
        macro_rules! read {
            ($tx:ident => $e:expr) => {
                self.store
                    .read(move |$tx| Box::pin(async move { $e }))
                    .await?
            };
        }
        macro_rules! write {
            ($tx:ident => $e:expr) => {
                self.write_fx_await(conn, move |$tx| Box::pin(async move { $e }))
                    .await?
            };
        }
        if missing_id(&body) {
            return Err(bad("a required id is 0"));
        }
        let ids = self.ids.clone();
        let user = s.user.clone();
        Ok(match body {
            Body::Ping(p) => Some(Body::Pong(pb::Pong {
                nonce: p.nonce,
                server_time_ms: now_ms(),
            })),
            Body::GetProfile(g) => {
                let id = match (g.user_id, g.name.is_empty()) {
                    (0, false) => {
                        let key = validate::name_key(&g.name);
                        read!(tx => accounts::user_id_by_key(tx, &key).await)
                    }
                    (id, true) if id != 0 => id,
                    _ => return Err(bad("give exactly one of user_id or name")),
                };
                let mut p = read!(tx => accounts::profile(tx, me, id).await);
                self.fill_presence(std::slice::from_mut(&mut p)).await;
                Some(Body::Profile(p))
            }
            Body::SearchUsers(q) => {
                let query = validate::query(&q.query).map_err(bad)?;
                let limit = if q.limit == 0 {
                    20
                } else {
                    self.page_limit(q.limit)
                };
                let mut users = read!(tx => accounts::search(tx, me, &query, limit).await);
                self.fill_presence(&mut users).await;
                let mut has_more = false;
                self.fit(&mut users, &mut has_more, false, |u| {
                    Body::UserList(pb::UserList {
                        users: u.to_vec(),
                        has_more: true,
                    })
                });
                Some(Body::UserList(pb::UserList { users, has_more }))
            }

            // Friends
            Body::SendFriendRequest(r) => {
                let note = validate::note(&r.note).map_err(bad)?;
                let to = r.user_id;
                let limits = friends::RequestLimits {
                    max_pending: self.cfg.max_pending_friend_requests,
                    cooldown_ms: i64::try_from(self.cfg.friend_request_cooldown.as_millis())
                        .unwrap_or(i64::MAX),
                };
                let req =
                    write!(tx => friends::send_request(tx, &ids, me, to, &note, limits).await);
                Some(Body::FriendRequest(req))
            }
            Body::RespondFriendRequest(r) => {
                let req =
                    write!(tx => friends::respond(tx, &ids, r.request_id, me, r.accept).await);
                Some(Body::FriendRequest(req))
            }
            Body::CancelFriendRequest(r) => {
                write!(tx => friends::cancel(tx, r.request_id, me).await.map(|fx| ((), fx)));
                None
            }
            Body::RemoveFriend(r) => {
                write!(tx => friends::remove(tx, me, r.user_id).await.map(|fx| ((), fx)));
                None
            }
            Body::ListFriends(l) => {
                let (after, limit) = (l.after_user_id, self.page_limit(l.limit));
                let (mut friends, mut has_more) =
                    read!(tx => friends::list(tx, me, after, limit).await);
                self.fit(&mut friends, &mut has_more, false, |f| {
                    Body::FriendList(pb::FriendList {
                        friends: f.to_vec(),
                        has_more: true,
                    })
                });
                let ids: Vec<u64> = friends
                    .iter()
                    .filter_map(|f| f.user.as_ref())
                    .map(|u| u.user_id)
                    .collect();
                let online = self.online_among(&ids).await;
                for f in &mut friends {
                    f.online = f.user.as_ref().is_some_and(|u| online.contains(&u.user_id));
                }
                Some(Body::FriendList(pb::FriendList { friends, has_more }))
            }
            Body::ListFriendRequests(l) => {
                let (after, limit) = (l.after_request_id, self.page_limit(l.limit));
                let (mut page, mut has_more) =
                    read!(tx => friends::pending(tx, me, after, limit).await);
                // One page over both directions, in request order, cut to fit a frame.
                let split = |page: &[pb::FriendRequest], has_more: bool| {
                    let (incoming, outgoing) = page
                        .iter()
                        .cloned()
                        .partition(|r| r.to.as_ref().is_some_and(|u| u.user_id == me));
                    pb::FriendRequestList {
                        incoming,
                        outgoing,
                        has_more,
                    }
                };
                self.fit(&mut page, &mut has_more, false, |p| {
                    Body::FriendRequestList(split(p, true))
                });
                Some(Body::FriendRequestList(split(&page, has_more)))
            }

            // Groups
            Body::CreateGroup(c) => {
                let name = validate::group_name(&c.name).map_err(bad)?;
                let desc = validate::note(&c.description).map_err(bad)?;
                let g = write!(tx => groups::create(tx, &ids, &user, &name, &desc, c.open).await);
                Some(Body::Group(g))
            }
            Body::JoinGroup(j) => {
                let max = self.cfg.max_group_members;
                let g = write!(tx => groups::join(tx, &ids, &user, j.group_id, max).await);
                Some(Body::Group(g))
            }
            Body::InviteToGroup(i) => {
                write!(tx => groups::invite(tx, me, i.group_id, i.user_id).await.map(|fx| ((), fx)));
                None
            }
            Body::DeclineGroupInvite(d) => {
                write!(tx => groups::decline(tx, me, d.group_id).await.map(|fx| ((), fx)));
                None
            }
            Body::LeaveGroup(l) => {
                write!(tx => groups::leave(tx, &ids, &user, l.group_id).await.map(|fx| ((), fx)));
                None
            }
            Body::KickMember(k) => {
                write!(tx => groups::kick(tx, &ids, &user, k.group_id, k.user_id).await.map(|fx| ((), fx)));
                None
            }
            Body::SetMemberRole(r) => {
                let role = pb::Role::try_from(r.role).map_err(|_| bad("unknown role"))?;
                write!(tx => groups::set_role(tx, &ids, &user, r.group_id, r.user_id, role).await.map(|fx| ((), fx)));
                None
            }
            Body::UpdateGroup(u) => {
                let name = u
                    .name
                    .as_deref()
                    .map(validate::group_name)
                    .transpose()
                    .map_err(bad)?;
                let desc = u
                    .description
                    .as_deref()
                    .map(validate::note)
                    .transpose()
                    .map_err(bad)?;
                let g = write!(tx => groups::update(tx, &ids, &user, u.group_id, name.as_deref(), desc.as_deref(), u.open).await);
                Some(Body::Group(g))
            }
            Body::TransferOwnership(t) => {
                write!(tx => groups::transfer(tx, &ids, &user, t.group_id, t.user_id).await.map(|fx| ((), fx)));
                None
            }
            Body::ListGroups(l) => {
                let (after, limit) = (l.after_group_id, self.page_limit(l.limit));
                let (mut groups, mut has_more) =
                    read!(tx => groups::list_mine(tx, me, after, limit).await);
                self.fit(&mut groups, &mut has_more, false, |g| {
                    Body::GroupList(pb::GroupList {
                        groups: g.to_vec(),
                        has_more: true,
                    })
                });
                Some(Body::GroupList(pb::GroupList { groups, has_more }))
            }
            Body::SearchGroups(q) => {
                let query = validate::query(&q.query).map_err(bad)?;
                let limit = self.page_limit(q.limit);
                let mut groups = read!(tx => groups::search(tx, me, &query, limit).await);
                let mut has_more = false;
                self.fit(&mut groups, &mut has_more, false, |g| {
                    Body::GroupList(pb::GroupList {
                        groups: g.to_vec(),
                        has_more: true,
                    })
                });
                Some(Body::GroupList(pb::GroupList { groups, has_more }))
            }
            Body::ListGroupMembers(m) => {
                let limit = self.page_limit(m.limit);
                let mut list =
                    read!(tx => groups::members(tx, me, m.group_id, m.after_user_id, limit).await);
                let ids: Vec<u64> = list
                    .members
                    .iter()
                    .filter_map(|m| m.user.as_ref())
                    .map(|u| u.user_id)
                    .collect();
                let online = self.online_among(&ids).await;
                for member in &mut list.members {
                    member.online = member
                        .user
                        .as_ref()
                        .is_some_and(|u| online.contains(&u.user_id));
                }
                self.fit(&mut list.members, &mut list.has_more, false, |m| {
                    Body::GroupMemberList(pb::GroupMemberList {
                        group_id: list.group_id,
                        members: m.to_vec(),
                        has_more: true,
                    })
                });
                Some(Body::GroupMemberList(list))
            }

            // Threads
            Body::ListThreads(l) => {
                let limit = self.page_limit(l.limit);
                let mut list =
                    read!(tx => messages::list_threads(tx, me, l.before_activity_id, limit).await);
                self.fit(&mut list.threads, &mut list.has_more, false, |l| {
                    Body::ThreadList(pb::ThreadList {
                        threads: l.to_vec(),
                        has_more: true,
                    })
                });
                Some(Body::ThreadList(list))
            }
            Body::GetThread(g) => {
                if [g.thread_id, g.user_id, g.group_id]
                    .iter()
                    .filter(|v| **v != 0)
                    .count()
                    != 1
                {
                    return Err(bad("give exactly one of thread_id, user_id, group_id"));
                }
                Some(Body::Thread(
                    read!(tx => messages::find_thread(tx, me, g.thread_id, g.user_id, g.group_id).await),
                ))
            }
            Body::SyncThread(q) => {
                let limit = self.page_limit(q.limit);
                let mut page =
                    read!(tx => messages::sync(tx, me, q.thread_id, q.since_seq, limit).await);
                self.fit(&mut page.messages, &mut page.has_more, false, page_body);
                Some(Body::MessagePage(page))
            }
            Body::History(q) => {
                let limit = self.page_limit(q.limit);
                let mut page =
                    read!(tx => messages::history(tx, me, q.thread_id, q.before_seq, limit).await);
                self.fit(&mut page.messages, &mut page.has_more, true, page_body);
                Some(Body::MessagePage(page))
            }
            Body::Recall(r) => Some(Body::SendAck(
                self.amend(s, conn, r.thread_id, r.message_id, r.client_msg_id, None)
                    .await?,
            )),
            Body::Edit(e) => {
                match validate::body(&e.body, self.cfg.max_body_bytes as usize) {
                    Ok(()) => {}
                    Err(validate::BodyError::TooLarge) => {
                        return Err(err(ErrorCode::TooLarge, "the body is too large"));
                    }
                    Err(_) => return Err(bad("the body is empty or holds control characters")),
                }
                Some(Body::SendAck(
                    self.amend(
                        s,
                        conn,
                        e.thread_id,
                        e.message_id,
                        e.client_msg_id,
                        Some(e.body),
                    )
                    .await?,
                ))
            }
            Body::ReadUpTo(r) => {
                let thread = r.thread_id;
                let moved = self
                    .store
                    .write(move |tx| {
                        Box::pin(async move { messages::read_up_to(tx, me, thread, r.seq).await })
                    })
                    .await?;
                if let Some(moved) = moved {
                    let push = Envelope::push(Body::ReadReceiptPush(pb::ReadReceiptPush {
                        thread_id: thread,
                        user: Some(s.user.clone()),
                        read_seq: moved.seq,
                    }));
                    if let Some(frame) = self.frame(&push) {
                        if moved.active {
                            self.push_thread(thread, &frame, 0, 0).await;
                        } else {
                            // A former member's marker concerns only its own devices.
                            self.hub.push_user(me, &frame, 0);
                            self.bus.forward(&[me], &frame);
                        }
                    }
                }
                None
            }
            Body::DeliveredUpTo(d) => {
                let dev = s.device_id;
                self.store
                    .write(move |tx| {
                        Box::pin(async move {
                            messages::delivered_up_to(tx, me, dev, d.thread_id, d.seq).await
                        })
                    })
                    .await?;
                None
            }
            Body::Typing(t) => {
                self.typing(s, ctx.conn_id, t.thread_id).await?;
                None
            }
            Body::SyncEvents(q) => {
                let limit = self.page_limit(q.limit);
                let mut page =
                    read!(tx => ops::sync_events(tx, me, q.since_event_seq, limit).await);
                self.fit(&mut page.events, &mut page.has_more, false, |e| {
                    Body::EventPage(pb::EventPage {
                        events: e.to_vec(),
                        has_more: true,
                        last_event_seq: 0,
                    })
                });
                Some(Body::EventPage(page))
            }
            other => {
                return Err(err(
                    ErrorCode::Unsupported,
                    format!("{} is not a request", confab_wire::body_name(&other)),
                ));
            }
        })
    }

    /// Presence shows only to friends (and oneself).
    async fn fill_presence(&self, profiles: &mut [pb::Profile]) {
        let shows = |p: &pb::Profile| {
            matches!(
                pb::FriendState::try_from(p.friend_state),
                Ok(pb::FriendState::Friend | pb::FriendState::Self_)
            )
        };
        let ids: Vec<u64> = profiles
            .iter()
            .filter(|p| shows(p))
            .filter_map(|p| p.user.as_ref().map(|u| u.user_id))
            .collect();
        let online = self.online_among(&ids).await;
        for p in profiles {
            p.online = shows(p) && p.user.as_ref().is_some_and(|u| online.contains(&u.user_id));
        }
    }

    /// Drops entries until the reply fits in a frame: from the end of a forward page, from the
    /// start of a backward (history) page.
    fn fit<T: Clone>(
        &self,
        items: &mut Vec<T>,
        has_more: &mut bool,
        from_front: bool,
        wrap: impl Fn(&[T]) -> Body,
    ) {
        let max = (self.cfg.max_frame_bytes as usize).saturating_sub(PAGE_SLACK);
        // One item always stays: an empty page that says `has_more` would never advance (the
        // configuration keeps every single item within a frame).
        while items.len() > 1 && Envelope::new(u64::MAX, wrap(items)).encoded_len() > max {
            let drop = (items.len() / 8).max(1);
            if from_front {
                items.drain(..drop);
            } else {
                items.truncate(items.len() - drop);
            }
            *has_more = true;
        }
    }

    fn queue_send(
        &self,
        ctx: &ConnCtx,
        s: &Session,
        send: pb::Send,
    ) -> Res<tokio::sync::oneshot::Receiver<StoreResult<(messages::Sent, Effects)>>> {
        validate::client_msg_id(&send.client_msg_id).map_err(bad)?;
        match validate::body(&send.body, self.cfg.max_body_bytes as usize) {
            Ok(()) => {}
            Err(validate::BodyError::TooLarge) => {
                return Err(err(
                    ErrorCode::TooLarge,
                    format!("the body exceeds {} bytes", self.cfg.max_body_bytes),
                ));
            }
            Err(validate::BodyError::Empty) => return Err(bad("the body is empty")),
            Err(validate::BodyError::Control) => {
                return Err(bad("the body holds control characters"));
            }
        }
        if send.thread_id == 0 {
            return Err(bad("thread_id is required"));
        }
        let req = messages::SendReq {
            sender: s.user.clone(),
            device_id: s.device_id,
            thread_id: send.thread_id,
            client_msg_id: send.client_msg_id,
            body: send.body,
        };
        // Shared, so a backend that runs the job again clones a pointer, not the body.
        Ok(self
            .store
            .enqueue_send(Arc::new(req), self.ids.clone(), self.to_fanout(ctx.conn_id))?)
    }

    async fn amend(
        &self,
        s: &Session,
        conn: u64,
        thread_id: u64,
        message_id: u64,
        client_msg_id: String,
        new_body: Option<String>,
    ) -> Res<pb::SendAck> {
        validate::client_msg_id(&client_msg_id).map_err(bad)?;
        let req = messages::Amend {
            sender: s.user.clone(),
            device_id: s.device_id,
            thread_id,
            message_id,
            client_msg_id,
            new_body,
            window_ms: i64::from(self.cfg.recall_window_ms),
        };
        let ids = self.ids.clone();
        let sent = self
            .write_fx_await(conn, move |tx| {
                Box::pin(async move { messages::amend(tx, &ids, &req).await })
            })
            .await?;
        Ok(sent.ack)
    }

    /// Keeps a delivery marker sent as a notification for the next [`Service::flush_delivered`],
    /// when the sender is a known active member of the thread (the member cache says so
    /// without a read). `false`: store it now instead (which also answers refusals).
    fn note_delivered(&self, s: &Session, d: &pb::DeliveredUpTo) -> bool {
        let member = self
            .cached_members(d.thread_id)
            .is_some_and(|l| l.contains(&s.user.user_id));
        if !member {
            return false;
        }
        let Ok(mut pending) = self.delivered.lock() else {
            return false;
        };
        let key = (s.device_id, d.thread_id);
        if pending.len() >= DELIVERED_PENDING_MAX && !pending.contains_key(&key) {
            return false;
        }
        let e = pending.entry(key).or_insert((s.user.user_id, 0));
        e.1 = e.1.max(d.seq);
        true
    }

    /// Stores the delivery markers noted since the last call, in one write.
    /// The end of a graceful shutdown: the store makes its writes durable in the database
    /// itself and stops (see [`Backend::close`]).
    pub fn close_store(&self) {
        self.store.close();
    }

    pub async fn flush_delivered(&self) {
        let pending = match self.delivered.lock() {
            Ok(mut p) if !p.is_empty() => std::mem::take(&mut *p),
            _ => return,
        };
        let marks: Arc<Vec<messages::DeliveredMark>> = Arc::new(
            pending
                .into_iter()
                .map(|((device, thread), (user, seq))| messages::DeliveredMark {
                    user,
                    device,
                    thread,
                    seq,
                })
                .collect(),
        );
        let n = marks.len();
        if let Err(e) = self
            .store
            .write(move |tx| Box::pin(async move { messages::delivered_many(tx, &marks).await }))
            .await
        {
            warn!(error = %e, markers = n, "delivery markers not stored");
        }
    }

    async fn typing(&self, s: &Session, conn: u64, thread_id: u64) -> Res<()> {
        let key = (s.user.user_id, thread_id);
        let now = Instant::now();
        {
            let mut t = self.typing.lock().unwrap_or_else(|p| p.into_inner());
            if t.get(&key)
                .is_some_and(|at| now.duration_since(*at) < TYPING_EVERY)
            {
                return Ok(());
            }
            t.insert(key, now);
        }
        let members = self.members_of(thread_id).await?;
        if !members.contains(&s.user.user_id) {
            return Err(err(ErrorCode::Forbidden, "not a member of this thread"));
        }
        let push = Envelope::push(Body::TypingPush(pb::TypingPush {
            thread_id,
            user: Some(s.user.clone()),
            expires_ms: TYPING_SHOWN_MS,
        }));
        if let Some(frame) = self.frame(&push) {
            for u in members.iter().filter(|u| **u != s.user.user_id) {
                self.hub.push_user(*u, &frame, conn);
            }
            if self.bus.clustered() {
                let others: Vec<u64> = members
                    .iter()
                    .copied()
                    .filter(|u| *u != s.user.user_id)
                    .collect();
                self.bus.forward(&others, &frame);
            }
        }
        Ok(())
    }

    /// Active members of a thread, cached until a membership change.
    /// The thread's active members if this node has them cached.
    fn cached_members(&self, thread_id: u64) -> Option<Arc<Vec<u64>>> {
        self.members
            .lock()
            .ok()
            .and_then(|m| m.get(&thread_id).cloned())
    }

    async fn members_of(&self, thread_id: u64) -> Res<Arc<Vec<u64>>> {
        if let Some(m) = self.cached_members(thread_id) {
            return Ok(m);
        }
        let seen_gen = self.members_gen.load(std::sync::atomic::Ordering::Acquire);
        let list = Arc::new(
            self.store
                .read(move |tx| {
                    Box::pin(async move { messages::active_members(tx, thread_id).await })
                })
                .await?,
        );
        if let Ok(mut m) = self.members.lock() {
            if m.len() >= MEMBER_CACHE_MAX {
                m.clear();
            }
            if self.members_gen.load(std::sync::atomic::Ordering::Acquire) == seen_gen {
                m.insert(thread_id, list.clone());
            }
        }
        Ok(list)
    }

    /// Pushes a frame to every active member's devices, except connection `skip_conn` of
    /// `skip_user`.
    async fn push_thread(&self, thread_id: u64, frame: &Frame, skip_user: u64, skip_conn: u64) {
        match self.members_of(thread_id).await {
            Ok(members) => {
                for u in members.iter() {
                    self.hub
                        .push_user(*u, frame, if *u == skip_user { skip_conn } else { 0 });
                }
                self.bus.forward(&members, frame);
            }
            Err(e) => debug!(thread_id, error = %e, "cannot list members for a push"),
        }
    }

    async fn deliver(&self, f: Fanout) {
        if let Ok(mut m) = self.members.lock() {
            if !f.fx.members_changed.is_empty() {
                self.members_gen
                    .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            }
            for t in &f.fx.members_changed {
                m.remove(t);
            }
        }
        self.bus.members_changed(&f.fx.members_changed);
        for (user, event) in f.fx.events {
            let push = Envelope::push(Body::EventPush(pb::EventPush { event: Some(event) }));
            if let Some(frame) = self.frame(&push) {
                self.hub.push_user(user, &frame, 0);
                self.bus.forward(&[user], &frame);
            }
        }
        for msg in f.fx.messages {
            let sender = msg.sender.as_ref().map_or(0, |u| u.user_id);
            // The sending connection has its ack; SYSTEM entries reach the actor too.
            let skip = if msg.kind == pb::MessageKind::System as i32 {
                0
            } else {
                f.origin_conn
            };
            let Ok(mut members) = self.members_of(msg.thread_id).await else {
                continue;
            };
            // Whoever left or was removed is no longer a member, but sees its own exit.
            if let Some(gc) = &msg.group_change
                && matches!(
                    pb::group_change::Kind::try_from(gc.kind),
                    Ok(pb::group_change::Kind::Left | pb::group_change::Kind::Kicked)
                )
                && let Some(subject) = gc.subject.as_ref().map(|u| u.user_id)
                && !members.contains(&subject)
            {
                let mut with = members.as_ref().clone();
                with.push(subject);
                members = Arc::new(with);
            }
            // One envelope, encoded at most twice: with client_msg_id for the sender's other
            // connections (only if it has one here, or may have one on another node), then
            // without for everyone else.
            let mut env = Envelope::push(Body::MessagePush(pb::MessagePush { message: Some(msg) }));
            let own = if self.bus.clustered() || self.hub.has_other_conn(sender, skip) {
                self.frame(&env)
            } else {
                None
            };
            if let Some(Body::MessagePush(pb::MessagePush { message: Some(m) })) = &mut env.body {
                m.client_msg_id.clear();
            }
            let other = self.frame(&env);
            for u in members.iter() {
                if *u == sender {
                    if let Some(fr) = &own {
                        self.hub.push_user(*u, fr, skip);
                    }
                } else if let Some(fr) = &other {
                    self.hub.push_user(*u, fr, 0);
                }
            }
            // The same, in the same (commit) order, to the other nodes.
            if self.bus.clustered() {
                if let Some(fr) = &own
                    && members.contains(&sender)
                {
                    self.bus.forward(&[sender], fr);
                }
                if let Some(fr) = &other {
                    let rest: Vec<u64> = members.iter().copied().filter(|u| *u != sender).collect();
                    self.bus.forward(&rest, fr);
                }
            }
        }
    }
}

fn page_body(m: &[pb::ChatMessage]) -> Body {
    Body::MessagePage(pb::MessagePage {
        thread_id: u64::MAX,
        messages: m.to_vec(),
        has_more: true,
        last_seq: u64::MAX,
    })
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

fn ready(o: Outcome) -> BoxFuture<'static, Outcome> {
    Box::pin(std::future::ready(o))
}

fn finish(req_id: u64, res: Res<Body>) -> Envelope {
    match res {
        Ok(b) => Envelope::new(req_id, b),
        Err(e) => Envelope::new(req_id, Body::Error(e)),
    }
}

fn pong(req_id: u64, p: pb::Ping) -> Envelope {
    Envelope::new(
        req_id,
        Body::Pong(pb::Pong {
            nonce: p.nonce,
            server_time_ms: now_ms(),
        }),
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
        Body::DeliveredUpTo(r) => &[r.thread_id],
        Body::ReadUpTo(r) => &[r.thread_id],
        Body::Typing(r) => &[r.thread_id],
        _ => &[],
    };
    ids.contains(&0)
}
