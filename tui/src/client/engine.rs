//! The engine task: connection, authentication, sync, gap rule, outbox, reconnects.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use confab_wire::pb::{self, ErrorCode};
use confab_wire::{Body, Envelope, EnvelopeCodec, PROTOCOL_MAJOR, PROTOCOL_MINOR};
use futures::{SinkExt, StreamExt};
use rand::Rng;
use tokio::net::{TcpSocket, TcpStream};

use super::tls::{ClientStream, ConnectError, Connector, ServerAddr};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::codec::Framed;
use tracing::{debug, warn};

use super::cache::{Cache, OutboxItem};
use super::{Auth, ClientConfig, ClientError, Command, ConnState, Event};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const TICK: Duration = Duration::from_millis(100);
/// How long a push beyond a gap waits for the missing entries before a sync fetches them. In a
/// cluster, entries of one thread committed through different nodes can reach us out of order,
/// a few milliseconds apart; syncing at once would cost a round trip per such pair.
const GAP_GRACE: Duration = Duration::from_millis(200);
/// Pushes held beyond a gap, per thread, before a sync is asked for without waiting.
const HOLD_MAX: usize = 64;

#[derive(Default)]
struct ThreadSt {
    info: Option<pb::Thread>,
    /// Highest seq held with nothing missing below it.
    cursor: u64,
    /// Highest seq known to exist (from pushes and listings).
    known: u64,
    syncing: bool,
    /// Last seq reported with DeliveredUpTo.
    reported: u64,
    /// Entries beyond the cursor waiting for their turn: this device's own acked entries (the
    /// server pushes them to the other devices only, so they are built from the ack), and a
    /// push held while our own send's ack, which likely fills the gap below it, is on the way.
    own: BTreeMap<u64, pb::ChatMessage>,
    /// The seq of a push held in `own` for a send's ack.
    held: Option<u64>,
    /// Since when entries in `own` have waited on a gap below them (see [`GAP_GRACE`]).
    gap_since: Option<Instant>,
    /// The cursor was moved to the newest entry without fetching history (`backlog: false`).
    skipped: bool,
}

enum Pending {
    External(oneshot::Sender<Result<Body, ClientError>>),
    Sync(u64),
    Events,
    List,
    Send(u64),
    Ping,
}

/// One live, authenticated connection.
struct Link {
    framed: Framed<ClientStream, EnvelopeCodec>,
    next_req: u64,
    pending: HashMap<u64, (Pending, Instant)>,
    last_tx: Instant,
    last_rx: Instant,
    heartbeat: Duration,
    idle: Duration,
    frames: u64,
    /// Thread -> local id of the send in flight there (one per thread keeps order).
    inflight: HashMap<u64, u64>,
    events_syncing: bool,
    listing: bool,
    synced_sent: bool,
}

/// How a connection ended.
enum End {
    Shutdown(Option<oneshot::Sender<()>>),
    /// Only while opening: the server's identity was refused (see [`Event::Untrusted`]).
    Untrusted(super::TrustProblem, String),
    Lost {
        reason: String,
        retry_after: Duration,
    },
    Fatal(String),
}

pub(crate) struct Engine {
    cfg: ClientConfig,
    auth: Auth,
    cmds: mpsc::Receiver<Command>,
    ev: mpsc::Sender<Event>,
    cache: Cache,
    token: Option<String>,
    device_id: u64,
    user: Option<pb::User>,
    threads: HashMap<u64, ThreadSt>,
    event_seq: u64,
    outbox: BTreeMap<u64, OutboxItem>,
    retry_at: HashMap<u64, Instant>,
    /// Outbox ids, shared with the `Client` handles (`Client::post` allocates there).
    next_local: Arc<AtomicU64>,
    /// The first full sync of this engine's life has finished.
    synced_once: bool,
    ack_waiters: HashMap<u64, oneshot::Sender<Result<pb::SendAck, ClientError>>>,
    /// Made at the first `tls://` connect (roots read once, TLS sessions kept for resumption).
    connector: Option<Arc<Connector>>,
}

/// A TLS refusal, sorted: the server's identity (stop) or anything else (retry).
enum Refusal {
    Untrusted(super::TrustProblem, String),
    Other(String),
}

impl From<ConnectError> for Refusal {
    fn from(e: ConnectError) -> Refusal {
        let msg = e.to_string();
        match e {
            ConnectError::UnknownServer {
                server,
                fingerprint,
            } => Refusal::Untrusted(
                super::TrustProblem::Unknown {
                    server,
                    fingerprint,
                },
                msg,
            ),
            ConnectError::FingerprintChanged { ref server, .. }
            | ConnectError::FingerprintMismatch { ref server, .. }
            | ConnectError::Certificate { ref server, .. } => Refusal::Untrusted(
                super::TrustProblem::Refused {
                    server: server.clone(),
                    message: msg.clone(),
                },
                msg,
            ),
            // An unreadable known_servers file will not heal by retrying either.
            ConnectError::KnownServers(_) | ConnectError::CaFile { .. } => Refusal::Untrusted(
                super::TrustProblem::Refused {
                    server: String::new(),
                    message: msg.clone(),
                },
                msg,
            ),
            ConnectError::Connect { .. } | ConnectError::Handshake { .. } => Refusal::Other(msg),
        }
    }
}

async fn tcp_connect(addr: SocketAddr, bind: Option<std::net::IpAddr>) -> std::io::Result<TcpStream> {
    match bind {
        Some(ip) => {
            let sock = if ip.is_ipv4() {
                TcpSocket::new_v4()
            } else {
                TcpSocket::new_v6()
            }?;
            sock.bind(SocketAddr::new(ip, 0))?;
            sock.connect(addr).await
        }
        None => TcpStream::connect(addr).await,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub(crate) fn new_client_msg_id() -> String {
    // 24 hex digits written by hand (this runs for every message a load client sends): the
    // time in ms first, so one device's ids sort by time and the server's dedupe index grows
    // at its end instead of in a random page per message; then 13 random digits.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let ms = u64::try_from(now_ms()).unwrap_or(0) & ((1 << 44) - 1);
    let r: u64 = rand::rng().random();
    let mut s = String::with_capacity(24);
    for i in (0..11).rev() {
        s.push(char::from(HEX[((ms >> (i * 4)) & 0xf) as usize]));
    }
    for i in (0..13).rev() {
        s.push(char::from(HEX[((r >> (i * 4)) & 0xf) as usize]));
    }
    s
}

pub(crate) fn retryable(e: &pb::Error) -> bool {
    matches!(
        ErrorCode::try_from(e.code),
        Ok(ErrorCode::Unavailable
            | ErrorCode::RateLimited
            | ErrorCode::Timeout
            | ErrorCode::ShuttingDown
            | ErrorCode::Internal)
    )
}

impl Engine {
    pub(crate) fn new(
        cfg: ClientConfig,
        auth: Auth,
        cmds: mpsc::Receiver<Command>,
        ev: mpsc::Sender<Event>,
    ) -> Result<Self, ClientError> {
        let cache = match &cfg.cache {
            super::CacheMode::File(p) => Cache::open(p),
            super::CacheMode::Memory => Cache::memory(),
            super::CacheMode::Off => Ok(Cache::off()),
        }
        .map_err(|e| ClientError::Cache(e.to_string()))?;
        let snap = cache
            .load()
            .map_err(|e| ClientError::Cache(e.to_string()))?;
        let mut threads = HashMap::new();
        for (info, cursor) in snap.threads {
            threads.insert(
                info.thread_id,
                ThreadSt {
                    known: info.last_seq.max(cursor),
                    info: Some(info),
                    cursor,
                    reported: cursor,
                    ..Default::default()
                },
            );
        }
        let max_local = snap.outbox.iter().map(|o| o.local_id).max().unwrap_or(0);
        let outbox = snap.outbox.into_iter().map(|o| (o.local_id, o)).collect();
        let token = match &auth {
            Auth::Token(t) => Some(t.clone()),
            _ => None,
        };
        Ok(Self {
            next_local: Arc::new(AtomicU64::new(
                max_local.max(u64::try_from(now_ms()).unwrap_or(0) * 1000) + 1,
            )),
            cfg,
            auth,
            cmds,
            ev,
            cache,
            token,
            device_id: 0,
            user: None,
            threads,
            event_seq: snap.event_seq,
            outbox,
            retry_at: HashMap::new(),
            synced_once: false,
            ack_waiters: HashMap::new(),
            connector: None,
        })
    }

    pub(crate) fn local_ids(&self) -> Arc<AtomicU64> {
        self.next_local.clone()
    }

    /// Sends an event; waits while the stream is full (backpressure). Does not borrow `self`
    /// across the wait (the cache connection is not `Sync`).
    fn emit(&self, e: Event) -> impl std::future::Future<Output = ()> + Send + 'static {
        let tx = self.ev.clone();
        async move {
            let _ = tx.send(e).await;
        }
    }

    pub(crate) async fn run(mut self) {
        let mut attempt: u32 = 0;
        let mut stopped: Option<String> = None;
        loop {
            if let Some(reason) = stopped.take() {
                self.emit(Event::State(ConnState::Stopped { reason })).await;
                match self.wait_offline(None).await {
                    Wake::Shutdown(r) => return finish(r),
                    Wake::Now | Wake::Elapsed => attempt = 0,
                }
            }
            self.emit(Event::State(ConnState::Connecting { attempt }))
                .await;
            let (reason, retry_after) = match self.connect().await {
                Ok(link) => {
                    let started = Instant::now();
                    let end = self.serve(link).await;
                    if started.elapsed() >= self.cfg.backoff.reset_after {
                        attempt = 0;
                    }
                    match end {
                        End::Shutdown(r) => return finish(r),
                        End::Fatal(reason) | End::Untrusted(_, reason) => {
                            stopped = Some(reason);
                            continue;
                        }
                        End::Lost {
                            reason,
                            retry_after,
                        } => (reason, retry_after),
                    }
                }
                Err(End::Fatal(reason) | End::Untrusted(_, reason)) => {
                    stopped = Some(reason);
                    continue;
                }
                Err(End::Lost {
                    reason,
                    retry_after,
                }) => (reason, retry_after),
                Err(End::Shutdown(r)) => return finish(r),
            };
            let delay = self.cfg.backoff.delay(attempt).max(retry_after);
            attempt = attempt.saturating_add(1);
            debug!(%reason, ?delay, "disconnected");
            self.emit(Event::State(ConnState::Offline {
                retry_in: delay,
                reason,
            }))
            .await;
            if let Wake::Shutdown(r) = self.wait_offline(Some(delay)).await {
                return finish(r);
            }
        }
    }

    /// Answers commands while offline until the delay passes (or forever with `None`).
    async fn wait_offline(&mut self, delay: Option<Duration>) -> Wake {
        let until = delay.map(|d| Instant::now() + d);
        loop {
            let cmd = match until {
                Some(u) => match tokio::time::timeout_at(u, self.cmds.recv()).await {
                    Ok(c) => c,
                    Err(_) => return Wake::Elapsed,
                },
                None => self.cmds.recv().await,
            };
            let Some(cmd) = cmd else {
                return Wake::Shutdown(None);
            };
            match cmd {
                Command::ReconnectNow => return Wake::Now,
                Command::Shutdown { reply } => return Wake::Shutdown(Some(reply)),
                Command::Request { reply, .. } => {
                    let _ = reply.send(Err(ClientError::Disconnected));
                }
                other => self.local_command(other),
            }
        }
    }

    /// Commands that need no connection.
    fn local_command(&mut self, cmd: Command) {
        match cmd {
            Command::Send {
                thread_id,
                body,
                reply,
                acked,
            } => {
                let _ = reply.send(self.queue(thread_id, body, acked));
            }
            Command::Post {
                local_id,
                thread_id,
                body,
            } => {
                if let Err(e) = self.queue_as(local_id, thread_id, body, None) {
                    self.post_refused(local_id, &e);
                }
            }
            Command::History {
                thread_id,
                before_seq,
                limit,
                reply,
            } => {
                let _ = reply.send(
                    self.cache
                        .messages(thread_id, before_seq, limit)
                        .map_err(|e| ClientError::Cache(e.to_string())),
                );
            }
            Command::Threads { reply } => {
                let list = self
                    .threads
                    .values()
                    .filter_map(|t| t.info.clone().map(|i| (i, t.cursor)))
                    .collect();
                let _ = reply.send(list);
            }
            Command::Outbox { reply } => {
                let _ = reply.send(self.outbox.values().cloned().collect());
            }
            Command::Request { reply, .. } => {
                let _ = reply.send(Err(ClientError::Disconnected));
            }
            Command::ReconnectNow
            | Command::Disconnect
            | Command::Shutdown { .. }
            | Command::Notify { .. } => {}
        }
    }

    fn queue(
        &mut self,
        thread_id: u64,
        body: String,
        acked: Option<oneshot::Sender<Result<pb::SendAck, ClientError>>>,
    ) -> Result<u64, ClientError> {
        let local_id = self.next_local.fetch_add(1, Ordering::Relaxed);
        self.queue_as(local_id, thread_id, body, acked)
    }

    fn queue_as(
        &mut self,
        local_id: u64,
        thread_id: u64,
        body: String,
        acked: Option<oneshot::Sender<Result<pb::SendAck, ClientError>>>,
    ) -> Result<u64, ClientError> {
        let item = OutboxItem {
            local_id,
            thread_id,
            client_msg_id: new_client_msg_id(),
            body,
            created_ms: now_ms(),
        };
        self.cache
            .outbox_add(&item)
            .map_err(|e| ClientError::Cache(e.to_string()))?;
        self.outbox.insert(local_id, item);
        if let Some(w) = acked {
            self.ack_waiters.insert(local_id, w);
        }
        Ok(local_id)
    }

    /// A posted message the cache would not take: reported like a refusal.
    fn post_refused(&self, local_id: u64, e: &ClientError) {
        let error = pb::Error {
            code: ErrorCode::Internal as i32,
            message: e.to_string(),
            ..Default::default()
        };
        // Not awaited here (a sync context); the event channel is drained by the caller.
        let _ = self.ev.try_send(Event::SendFailed { local_id, error });
    }

    // -------------------------------------------------------------------------------------
    // Connecting

    /// Opens the connection: TCP (from the configured source address, if any), then for
    /// `tls://` the verified handshake. Nothing is sent before it returns. An untrusted
    /// server stops the engine (reported as [`Event::Untrusted`]); other failures retry.
    async fn open_socket(&mut self) -> Result<ClientStream, End> {
        let lost = |reason: String| End::Lost {
            reason,
            retry_after: Duration::ZERO,
        };
        let server: ServerAddr = self
            .cfg
            .addr
            .parse()
            .map_err(|e: super::tls::AddrError| End::Fatal(e.to_string()))?;
        if self.connector.is_none() {
            self.connector = self.cfg.connector.clone();
        }
        if server.tls && self.connector.is_none() {
            let c = Connector::new(self.cfg.trust.clone()).map_err(|e| End::Fatal(e.to_string()))?;
            self.connector = Some(Arc::new(c));
        }
        let connector = self.connector.clone();
        let bind = self.cfg.bind;
        let open = async {
            let addr = tokio::net::lookup_host((server.host.as_str(), server.port))
                .await
                .map_err(|e| lost(format!("cannot resolve {}: {e}", server.host)))?
                .next()
                .ok_or_else(|| lost(format!("no address for {}", server.host)))?;
            let tcp = tcp_connect(addr, bind)
                .await
                .map_err(|e| lost(format!("cannot connect to {addr}: {e}")))?;
            let _ = tcp.set_nodelay(true);
            match &connector {
                Some(c) if server.tls => c.secure(tcp, &server).await.map_err(Refusal::from),
                _ => Ok(ClientStream::Plain(tcp)),
            }
            .map_err(|r| match r {
                Refusal::Untrusted(p, msg) => End::Untrusted(p, msg),
                Refusal::Other(msg) => lost(msg),
            })
        };
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, open).await {
            Ok(r) => r,
            Err(_) => Err(lost(format!("connecting to {server} timed out"))),
        };
        match stream {
            Err(End::Untrusted(problem, msg)) => {
                self.emit(Event::Untrusted(problem)).await;
                Err(End::Fatal(msg))
            }
            Err(e) => Err(e),
            Ok(stream) => {
                self.emit(Event::Transport {
                    encrypted: stream.is_encrypted(),
                    fingerprint: stream.peer_fingerprint(),
                })
                .await;
                Ok(stream)
            }
        }
    }

    async fn connect(&mut self) -> Result<Link, End> {
        let lost = |reason: String| End::Lost {
            reason,
            retry_after: Duration::ZERO,
        };
        let stream = self.open_socket().await?;
        let now = Instant::now();
        let mut link = Link {
            framed: Framed::new(stream, EnvelopeCodec::new()),
            next_req: 1,
            pending: HashMap::new(),
            last_tx: now,
            last_rx: now,
            heartbeat: Duration::from_secs(10),
            idle: Duration::from_secs(30),
            frames: 0,
            inflight: HashMap::new(),
            events_syncing: false,
            listing: false,
            synced_sent: false,
        };
        let hello = Body::Hello(pb::Hello {
            protocol_major: PROTOCOL_MAJOR,
            protocol_minor: PROTOCOL_MINOR,
            client_name: self.cfg.client_name.clone(),
            client_version: env!("CARGO_PKG_VERSION").into(),
            resume_token: self.token.clone().unwrap_or_default(),
        });
        let ok = match handshake(&mut link, hello).await? {
            Body::HelloOk(ok) => ok,
            Body::Error(e) => return Err(error_end(&e)),
            _ => return Err(lost("unexpected reply to Hello".into())),
        };
        link.heartbeat = Duration::from_millis(u64::from(ok.heartbeat_interval_ms.max(1000)));
        link.idle = Duration::from_millis(u64::from(ok.idle_timeout_ms.max(2000)));
        let auth = match ok.auth {
            Some(auth) => auth,
            None => {
                let body = match &self.auth {
                    Auth::Login { name, password } => Body::Login(pb::Login {
                        name: name.clone(),
                        password: password.clone(),
                        device_name: self.cfg.client_name.clone(),
                    }),
                    Auth::Register { name, password } => Body::Register(pb::Register {
                        name: name.clone(),
                        password: password.clone(),
                        device_name: self.cfg.client_name.clone(),
                    }),
                    Auth::Token(_) => {
                        return Err(End::Fatal("the session expired: log in again".into()));
                    }
                };
                match handshake(&mut link, body).await? {
                    Body::AuthOk(a) => a,
                    Body::Error(e) => return Err(error_end(&e)),
                    _ => return Err(lost("unexpected reply to login".into())),
                }
            }
        };
        // Later connections resume; a password stays in memory only to log in again.
        if let Auth::Register { name, password } = &self.auth {
            self.auth = Auth::Login {
                name: name.clone(),
                password: password.clone(),
            };
        }
        self.token = Some(auth.resume_token.clone());
        self.device_id = auth.device_id;
        self.user = auth.user.clone();
        if let Some(user) = auth.user.clone() {
            self.emit(Event::Session {
                user,
                device_id: auth.device_id,
                token: auth.resume_token.clone(),
            })
            .await;
        }
        Ok(link)
    }

    // -------------------------------------------------------------------------------------
    // Online

    async fn serve(&mut self, mut link: Link) -> End {
        self.emit(Event::State(ConnState::Online { synced: false }))
            .await;
        if self.cfg.sync_on_connect {
            if let Err(e) = self.start_event_sync(&mut link).await {
                return e;
            }
            link.listing = true;
            if let Err(e) = self
                .request(
                    &mut link,
                    Body::ListThreads(pb::ListThreads::default()),
                    Pending::List,
                )
                .await
            {
                return e;
            }
        } else {
            link.synced_sent = true;
        }
        if let Err(e) = self.pump_outbox(&mut link).await {
            return e;
        }
        let mut tick = tokio::time::interval(TICK);
        let mut last_report = Instant::now();
        let end = loop {
            tokio::select! {
                cmd = self.cmds.recv() => {
                    let Some(cmd) = cmd else { break End::Shutdown(None) };
                    if let Err(e) = self.online_command(&mut link, cmd).await { break e; }
                }
                frame = link.framed.next() => {
                    match frame {
                        Some(Ok(env)) => {
                            link.frames += 1;
                            link.last_rx = Instant::now();
                            if let Err(e) = self.on_frame(&mut link, env).await { break e; }
                        }
                        Some(Err(e)) => break End::Lost { reason: format!("bad frame from server: {e}"), retry_after: Duration::ZERO },
                        None => break End::Lost { reason: "the server closed the connection".into(), retry_after: Duration::ZERO },
                    }
                }
                _ = tick.tick() => {
                    if let Err(e) = self.on_tick(&mut link, &mut last_report).await { break e; }
                }
            }
        };
        for (_, (p, _)) in link.pending.drain() {
            if let Pending::External(reply) = p {
                let _ = reply.send(Err(ClientError::Disconnected));
            }
        }
        self.emit(Event::Frames {
            received: link.frames,
        })
        .await;
        end
    }

    async fn write(&mut self, link: &mut Link, env: Envelope) -> Result<(), End> {
        link.last_tx = Instant::now();
        link.framed.send(env).await.map_err(|e| End::Lost {
            reason: format!("write failed: {e}"),
            retry_after: Duration::ZERO,
        })
    }

    async fn request(&mut self, link: &mut Link, body: Body, p: Pending) -> Result<(), End> {
        let id = link.next_req;
        link.next_req += 1;
        link.pending
            .insert(id, (p, Instant::now() + self.cfg.request_timeout));
        self.write(link, Envelope::new(id, body)).await
    }

    async fn online_command(&mut self, link: &mut Link, cmd: Command) -> Result<(), End> {
        match cmd {
            Command::Request { body, reply } => {
                self.request(link, *body, Pending::External(reply)).await
            }
            Command::Send {
                thread_id,
                body,
                reply,
                acked,
            } => {
                let r = self.queue(thread_id, body, acked);
                let ok = r.is_ok();
                let _ = reply.send(r);
                if ok {
                    self.pump_thread(link, thread_id).await
                } else {
                    Ok(())
                }
            }
            Command::Notify { body } => self.write(link, Envelope::new(0, *body)).await,
            Command::Post {
                local_id,
                thread_id,
                body,
            } => match self.queue_as(local_id, thread_id, body, None) {
                Ok(_) => self.pump_thread(link, thread_id).await,
                Err(e) => {
                    self.post_refused(local_id, &e);
                    Ok(())
                }
            },
            Command::ReconnectNow => Ok(()),
            Command::Disconnect => Err(End::Lost {
                reason: "disconnected on request".into(),
                retry_after: Duration::ZERO,
            }),
            Command::Shutdown { reply } => Err(End::Shutdown(Some(reply))),
            other => {
                self.local_command(other);
                Ok(())
            }
        }
    }

    async fn on_tick(&mut self, link: &mut Link, last_report: &mut Instant) -> Result<(), End> {
        let now = Instant::now();
        if now.duration_since(link.last_rx) > link.idle {
            return Err(End::Lost {
                reason: "the server stopped answering".into(),
                retry_after: Duration::ZERO,
            });
        }
        let expired: Vec<u64> = link
            .pending
            .iter()
            .filter(|(_, (_, d))| *d <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some((p, _)) = link.pending.remove(&id) {
                match p {
                    Pending::External(reply) => {
                        let _ = reply.send(Err(ClientError::Timeout));
                    }
                    // Internal work that got no answer: the connection is not healthy.
                    _ => {
                        return Err(End::Lost {
                            reason: "a request timed out".into(),
                            retry_after: Duration::ZERO,
                        });
                    }
                }
            }
        }
        let overdue: Vec<u64> = self
            .threads
            .iter_mut()
            .filter(|(_, t)| {
                t.gap_since
                    .is_some_and(|g| now.duration_since(g) >= GAP_GRACE)
            })
            .map(|(id, t)| {
                t.gap_since = None;
                *id
            })
            .collect();
        for id in overdue {
            self.start_sync(link, id).await?;
        }
        if now.duration_since(link.last_tx) >= link.heartbeat {
            self.request(link, Body::Ping(pb::Ping { nonce: 0 }), Pending::Ping)
                .await?;
        }
        if now.duration_since(*last_report) >= self.cfg.delivered_every {
            *last_report = now;
            let due: Vec<(u64, u64)> = self
                .threads
                .iter()
                .filter(|(_, t)| t.cursor > t.reported)
                .map(|(id, t)| (*id, t.cursor))
                .collect();
            for (thread_id, seq) in due {
                self.write(
                    link,
                    Envelope::new(0, Body::DeliveredUpTo(pb::DeliveredUpTo { thread_id, seq })),
                )
                .await?;
                if let Some(t) = self.threads.get_mut(&thread_id) {
                    t.reported = seq;
                }
            }
        }
        if !self.retry_at.is_empty() {
            self.pump_outbox(link).await?;
        }
        Ok(())
    }

    /// Sends the oldest unsent message of every thread that has none in flight.
    async fn pump_outbox(&mut self, link: &mut Link) -> Result<(), End> {
        let now = Instant::now();
        let mut seen = HashSet::new();
        let mut to_send = Vec::new();
        for item in self.outbox.values() {
            if !seen.insert(item.thread_id) || link.inflight.contains_key(&item.thread_id) {
                continue;
            }
            if self.retry_at.get(&item.local_id).is_some_and(|t| *t > now) {
                continue;
            }
            to_send.push(item.clone());
        }
        for item in to_send {
            self.retry_at.remove(&item.local_id);
            link.inflight.insert(item.thread_id, item.local_id);
            let body = Body::Send(pb::Send {
                thread_id: item.thread_id,
                client_msg_id: item.client_msg_id.clone(),
                body: item.body.clone(),
            });
            self.request(link, body, Pending::Send(item.local_id))
                .await?;
        }
        Ok(())
    }

    /// Sends the oldest unsent message of one thread if it has none in flight: the common
    /// case after a send or an ack, without walking the whole outbox.
    async fn pump_thread(&mut self, link: &mut Link, thread_id: u64) -> Result<(), End> {
        if link.inflight.contains_key(&thread_id) {
            return Ok(());
        }
        let now = Instant::now();
        let Some(item) = self.outbox.values().find(|i| i.thread_id == thread_id) else {
            return Ok(());
        };
        if self.retry_at.get(&item.local_id).is_some_and(|t| *t > now) {
            return Ok(());
        }
        let local_id = item.local_id;
        let body = Body::Send(pb::Send {
            thread_id,
            client_msg_id: item.client_msg_id.clone(),
            body: item.body.clone(),
        });
        self.retry_at.remove(&local_id);
        link.inflight.insert(thread_id, local_id);
        self.request(link, body, Pending::Send(local_id)).await
    }

    async fn start_event_sync(&mut self, link: &mut Link) -> Result<(), End> {
        if link.events_syncing {
            return Ok(());
        }
        link.events_syncing = true;
        let body = Body::SyncEvents(pb::SyncEvents {
            since_event_seq: self.event_seq,
            limit: 0,
        });
        self.request(link, body, Pending::Events).await
    }

    async fn start_sync(&mut self, link: &mut Link, thread_id: u64) -> Result<(), End> {
        let t = self.threads.entry(thread_id).or_default();
        if t.syncing {
            return Ok(());
        }
        t.syncing = true;
        let since = t.cursor;
        self.request(
            link,
            Body::SyncThread(pb::SyncThread {
                thread_id,
                since_seq: since,
                limit: 0,
            }),
            Pending::Sync(thread_id),
        )
        .await
    }

    async fn maybe_synced(&mut self, link: &mut Link) {
        if link.synced_sent
            || link.events_syncing
            || link.listing
            || self.threads.values().any(|t| t.syncing)
        {
            return;
        }
        link.synced_sent = true;
        self.synced_once = true;
        self.emit(Event::State(ConnState::Online { synced: true }))
            .await;
        self.emit(Event::Synced).await;
    }

    async fn on_frame(&mut self, link: &mut Link, env: Envelope) -> Result<(), End> {
        let Some(body) = env.body else { return Ok(()) };
        if env.req_id != 0 {
            let Some((p, _)) = link.pending.remove(&env.req_id) else {
                debug!(req_id = env.req_id, "reply to an unknown request");
                return Ok(());
            };
            return self.on_reply(link, p, body).await;
        }
        match body {
            Body::MessagePush(p) => {
                if let Some(m) = p.message {
                    self.on_push(link, m).await?;
                }
            }
            Body::EventPush(p) => {
                if let Some(e) = p.event {
                    if e.event_seq == self.event_seq + 1 {
                        self.apply_events(link, vec![e]).await?;
                    } else if e.event_seq > self.event_seq {
                        self.start_event_sync(link).await?;
                    }
                }
            }
            Body::PresencePush(p) => self.emit(Event::Presence(p)).await,
            Body::TypingPush(t) => self.emit(Event::Typing(t)).await,
            Body::ReadReceiptPush(r) => {
                self.note_receipt(&r);
                self.emit(Event::ReadReceipt(r)).await;
            }
            Body::ResyncPush(r) => {
                self.start_event_sync(link).await?;
                let ids: Vec<u64> = if r.thread_ids.is_empty() {
                    self.threads.keys().copied().collect()
                } else {
                    r.thread_ids
                };
                for id in ids {
                    self.start_sync(link, id).await?;
                }
            }
            Body::Error(e) if e.fatal => return Err(error_end(&e)),
            Body::Error(e) => debug!(error = %e, "error notice from the server"),
            other => debug!(body = confab_wire::body_name(&other), "unexpected push"),
        }
        Ok(())
    }

    fn note_receipt(&mut self, r: &pb::ReadReceiptPush) {
        let Some(info) = self
            .threads
            .get_mut(&r.thread_id)
            .and_then(|t| t.info.as_mut())
        else {
            return;
        };
        let reader = r.user.as_ref().map_or(0, |u| u.user_id);
        let peer = info.peer.as_ref().map(|p| p.user_id);
        if Some(reader) == peer {
            info.peer_read_seq = info.peer_read_seq.max(r.read_seq);
        } else {
            info.read_seq = info.read_seq.max(r.read_seq);
        }
    }

    async fn on_reply(&mut self, link: &mut Link, p: Pending, body: Body) -> Result<(), End> {
        match p {
            Pending::External(reply) => {
                let _ = reply.send(match body {
                    Body::Error(e) => Err(ClientError::Server(e)),
                    b => Ok(b),
                });
            }
            Pending::Ping => {}
            Pending::Send(local_id) => self.on_send_reply(link, local_id, body).await?,
            Pending::Events => {
                link.events_syncing = false;
                match body {
                    Body::EventPage(page) => {
                        let more = page.has_more;
                        self.apply_events(link, page.events).await?;
                        if more {
                            self.start_event_sync(link).await?;
                        }
                    }
                    Body::Error(e) => warn!(error = %e, "event sync failed"),
                    _ => {}
                }
                self.maybe_synced(link).await;
            }
            Pending::List => {
                match body {
                    Body::ThreadList(list) => {
                        let next = list.threads.last().map(|t| t.activity_id);
                        for t in list.threads {
                            self.on_thread_info(link, t).await?;
                        }
                        if list.has_more
                            && let Some(before) = next
                        {
                            let body = Body::ListThreads(pb::ListThreads {
                                before_activity_id: before,
                                limit: 0,
                            });
                            return self.request(link, body, Pending::List).await;
                        }
                    }
                    Body::Error(e) => warn!(error = %e, "listing threads failed"),
                    _ => {}
                }
                link.listing = false;
                self.maybe_synced(link).await;
            }
            Pending::Sync(thread_id) => {
                if let Some(t) = self.threads.get_mut(&thread_id) {
                    t.syncing = false;
                }
                match body {
                    Body::MessagePage(page) => {
                        let before = self.threads.get(&thread_id).map_or(0, |t| t.cursor);
                        if let Some(t) = self.threads.get_mut(&thread_id) {
                            t.known = t.known.max(page.last_seq);
                        }
                        self.accept(thread_id, page.messages).await;
                        let (after, behind) = self
                            .threads
                            .get(&thread_id)
                            .map_or((0, false), |t| (t.cursor, t.cursor < t.known));
                        // Only ask again when this page moved the cursor: a server that cannot
                        // fill a gap must not be asked in a loop (the next push or reconnect
                        // tries again).
                        if after > before && (page.has_more || behind) {
                            self.start_sync(link, thread_id).await?;
                        }
                    }
                    Body::Error(e) => debug!(thread_id, error = %e, "thread sync refused"),
                    _ => {}
                }
                self.maybe_synced(link).await;
            }
        }
        Ok(())
    }

    async fn on_send_reply(
        &mut self,
        link: &mut Link,
        local_id: u64,
        body: Body,
    ) -> Result<(), End> {
        // A sync may have found this send stored and taken it off the outbox before its reply
        // came: its thread is then known only by its in-flight entry, which must go too, or
        // the thread would never send again.
        let thread = self.outbox.get(&local_id).map(|i| i.thread_id).or_else(|| {
            link.inflight
                .iter()
                .find(|(_, l)| **l == local_id)
                .map(|(t, _)| *t)
        });
        if let Some(t) = thread {
            link.inflight.remove(&t);
        }
        match body {
            Body::SendAck(ack) => self.acked(local_id, ack).await,
            Body::Error(e) if retryable(&e) => {
                // The server's hint, at least 20 ms so a burst does not spin.
                let wait = Duration::from_millis(u64::from(e.retry_after_ms.max(20)));
                self.retry_at.insert(local_id, Instant::now() + wait);
                self.emit(Event::SendRetry { local_id, error: e }).await;
            }
            Body::Error(e) => {
                self.outbox.remove(&local_id);
                let _ = self.cache.outbox_remove(local_id);
                if let Some(w) = self.ack_waiters.remove(&local_id) {
                    let _ = w.send(Err(ClientError::Server(e.clone())));
                }
                self.emit(Event::SendFailed { local_id, error: e }).await;
            }
            _ => {}
        }
        let Some(thread) = thread else {
            return self.pump_outbox(link).await;
        };
        // A push held for this send's ack that the ack did not reach: fetch what is missing.
        if let Some(t) = self.threads.get_mut(&thread)
            && t.held.take().is_some_and(|seq| seq > t.cursor)
        {
            self.start_sync(link, thread).await?;
        }
        self.pump_thread(link, thread).await
    }

    async fn acked(&mut self, local_id: u64, ack: pb::SendAck) {
        let Some(item) = self.outbox.remove(&local_id) else {
            return;
        };
        // Our own entry, as the server stored it: it fills our cursor without a sync.
        let own = pb::ChatMessage {
            thread_id: ack.thread_id,
            seq: ack.seq,
            message_id: ack.message_id,
            sender: self.user.clone(),
            sender_device_id: self.device_id,
            client_msg_id: item.client_msg_id,
            server_ts_ms: ack.server_ts_ms,
            kind: pb::MessageKind::Text as i32,
            body: item.body,
            ..Default::default()
        };
        let thread_id = ack.thread_id;
        {
            let t = self.threads.entry(thread_id).or_default();
            if own.seq > t.cursor {
                t.own.insert(own.seq, own);
            }
        }
        if let Err(e) = self.cache.outbox_remove(local_id) {
            warn!(error = %e, "cache");
        }
        let t = self.threads.entry(ack.thread_id).or_default();
        t.known = t.known.max(ack.seq);
        if let Some(w) = self.ack_waiters.remove(&local_id) {
            let _ = w.send(Ok(ack.clone()));
        }
        self.emit(Event::Acked { local_id, ack }).await;
        Box::pin(self.accept(thread_id, Vec::new())).await;
    }

    async fn on_thread_info(&mut self, link: &mut Link, info: pb::Thread) -> Result<(), End> {
        let id = info.thread_id;
        let backlog = self.cfg.backlog;
        let t = self.threads.entry(id).or_default();
        if !backlog && !self.synced_once && (t.cursor == 0 || t.skipped) && t.own.is_empty() {
            // A client without history starts at the newest entry: during its first sync only
            // (later, everything after the cursor is wanted), and to the newest listing (an
            // event may have made the thread known first, with the last_seq of its time).
            t.cursor = t.cursor.max(info.last_seq);
            t.reported = t.cursor;
            t.skipped = true;
        }
        t.known = t.known.max(info.last_seq);
        let cursor = t.cursor;
        t.info = Some(info.clone());
        if let Err(e) = self.cache.save_thread(&info, cursor) {
            warn!(error = %e, "cache");
        }
        self.emit(Event::Thread(info)).await;
        if self.threads.get(&id).is_some_and(|t| t.known > t.cursor) {
            self.start_sync(link, id).await?;
        }
        Ok(())
    }

    /// The gap rule: the next seq is applied, an old one dropped, a later one fetched by sync.
    async fn on_push(&mut self, link: &mut Link, m: pb::ChatMessage) -> Result<(), End> {
        let thread_id = m.thread_id;
        let t = self.threads.entry(thread_id).or_default();
        t.known = t.known.max(m.seq);
        if m.seq <= t.cursor {
            return Ok(());
        }
        // Own entries waiting below it may close the gap.
        let mut next = t.cursor + 1;
        while t.own.contains_key(&next) {
            next += 1;
        }
        if m.seq == next {
            self.accept(thread_id, vec![m]).await;
            return Ok(());
        }
        if m.seq == next + 1 && link.inflight.contains_key(&thread_id) {
            // One entry missing while our own send there awaits its ack: the server most
            // likely gave it that seq and pushed this one before our ack got here. Hold the
            // push; the ack fills the gap (or, if it does not, the check after the reply
            // syncs). Saves a SyncThread round trip in every fast exchange.
            t.held = Some(m.seq);
            t.own.insert(m.seq, m);
            return Ok(());
        }
        // A gap: the missing entries are most likely a moment behind (pushes committed through
        // other cluster nodes), so hold this one for a while; the tick syncs if they do not come.
        let far = m.seq.saturating_sub(next) > HOLD_MAX as u64;
        if !far && t.own.len() < HOLD_MAX {
            t.own.insert(m.seq, m);
            t.gap_since.get_or_insert_with(Instant::now);
            return Ok(());
        }
        t.own.insert(m.seq, m);
        t.gap_since = None;
        self.start_sync(link, thread_id).await
    }

    /// Applies entries (ascending) that continue the thread; stores, emits, settles acks.
    async fn accept(&mut self, thread_id: u64, msgs: Vec<pb::ChatMessage>) {
        let t = self.threads.entry(thread_id).or_default();
        let mut fresh = Vec::with_capacity(msgs.len());
        let mut incoming = msgs.into_iter().peekable();
        loop {
            // Skip what we already hold.
            while incoming.peek().is_some_and(|m| m.seq <= t.cursor) {
                incoming.next();
            }
            let next = t.cursor + 1;
            let m = if incoming.peek().is_some_and(|m| m.seq == next) {
                t.own.remove(&next);
                incoming.next()
            } else {
                t.own.remove(&next)
            };
            let Some(m) = m else { break };
            t.cursor = m.seq;
            fresh.push(m);
        }
        t.own.retain(|seq, _| *seq > t.cursor);
        if t.own.is_empty() {
            t.gap_since = None;
        } else if t.held.is_none() {
            // Something waits on a gap (an own acked entry above someone else's missing push):
            // the tick syncs if the gap does not close.
            t.gap_since.get_or_insert_with(Instant::now);
        }
        if fresh.is_empty() {
            return;
        }
        let cursor = t.cursor;
        if let Some(info) = t.info.as_mut() {
            info.last_seq = info.last_seq.max(cursor);
            if let Some(last) = fresh.last() {
                info.last_message = Some(last.clone());
                info.activity_id = info.activity_id.max(last.message_id);
            }
        }
        if t.info.is_none()
            && let Err(e) = self.cache.save_thread(
                &pb::Thread {
                    thread_id,
                    ..Default::default()
                },
                0,
            )
        {
            warn!(error = %e, "cache");
        }
        if let Err(e) = self.cache.save_messages(thread_id, &fresh, cursor) {
            warn!(error = %e, "cache");
        }
        for m in fresh {
            let own = m.sender_device_id == self.device_id;
            // Our own send whose ack was lost: the synced entry settles it.
            if own && !m.client_msg_id.is_empty() && !self.outbox.is_empty() {
                let local = self
                    .outbox
                    .values()
                    .find(|o| o.client_msg_id == m.client_msg_id)
                    .map(|o| o.local_id);
                if let Some(local_id) = local {
                    let ack = pb::SendAck {
                        thread_id,
                        message_id: m.message_id,
                        seq: m.seq,
                        server_ts_ms: m.server_ts_ms,
                        duplicate: true,
                        client_msg_id: m.client_msg_id.clone(),
                    };
                    self.acked(local_id, ack).await;
                }
            }
            if own && !self.cfg.echo_own {
                continue;
            }
            self.emit(Event::Message(m)).await;
        }
    }

    async fn apply_events(
        &mut self,
        link: &mut Link,
        events: Vec<pb::UserEvent>,
    ) -> Result<(), End> {
        for e in events {
            if e.event_seq <= self.event_seq {
                continue;
            }
            if e.event_seq != self.event_seq + 1 {
                return self.start_event_sync(link).await;
            }
            self.event_seq = e.event_seq;
            if let Some(pb::user_event::Kind::ThreadAdded(t)) = &e.kind {
                self.on_thread_info(link, t.clone()).await?;
            }
            self.emit(Event::UserEvent(e)).await;
        }
        if let Err(err) = self.cache.set_event_seq(self.event_seq) {
            warn!(error = %err, "cache");
        }
        Ok(())
    }
}

enum Wake {
    Now,
    Elapsed,
    Shutdown(Option<oneshot::Sender<()>>),
}

fn finish(reply: Option<oneshot::Sender<()>>) {
    if let Some(r) = reply {
        let _ = r.send(());
    }
}

/// Sends a request during the handshake and waits for its reply.
async fn handshake(link: &mut Link, body: Body) -> Result<Body, End> {
    let id = link.next_req;
    link.next_req += 1;
    let lost = |reason: String| End::Lost {
        reason,
        retry_after: Duration::ZERO,
    };
    link.framed
        .send(Envelope::new(id, body))
        .await
        .map_err(|e| lost(format!("write failed: {e}")))?;
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    loop {
        let env = tokio::time::timeout_at(deadline, link.framed.next())
            .await
            .map_err(|_| lost("the server did not answer".into()))?
            .ok_or_else(|| lost("the server closed the connection".into()))?
            .map_err(|e| lost(format!("bad frame: {e}")))?;
        link.frames += 1;
        if env.req_id == id
            || (env.req_id == 0 && matches!(env.body, Some(Body::Error(ref e)) if e.fatal))
        {
            return env.body.ok_or_else(|| lost("empty reply".into()));
        }
    }
}

/// What a server error means for the connection.
fn error_end(e: &pb::Error) -> End {
    let reason = e.to_string();
    match ErrorCode::try_from(e.code) {
        Ok(
            ErrorCode::Displaced
            | ErrorCode::AuthFailed
            | ErrorCode::UnsupportedVersion
            | ErrorCode::NameTaken
            | ErrorCode::BadRequest,
        ) => End::Fatal(reason),
        _ => End::Lost {
            reason,
            retry_after: Duration::from_millis(u64::from(e.retry_after_ms)),
        },
    }
}
