//! The client core: everything that talks to a confab server, with no terminal dependencies.
//!
//! [`Client::start`] spawns one engine task that owns the connection and the local cache. The
//! caller holds a cheap, cloneable [`Client`] handle for commands (each answered: success, typed
//! error or timeout) and an [`Events`] stream of everything that happens. The engine reconnects
//! by itself (exponential backoff, full jitter), resumes by token, syncs events and threads after
//! every connect, applies the gap rule to pushes, and retries the outbox until each send is acked.

pub mod api;
mod backoff;
pub mod cache;
mod engine;
pub mod known_servers;
pub mod paths;
pub mod relations;
pub mod tls;

pub use engine::written_ms;
pub(crate) use engine::{new_client_msg_id, retryable};

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use confab_wire::Body;
use confab_wire::pb::{self, ErrorCode};
use tokio::sync::{mpsc, oneshot};

pub use api::ApiError;
pub use backoff::Backoff;
pub use cache::{FailedItem, OutboxItem};

/// Why a command failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error.
    #[error("{0}")]
    Server(pb::Error),
    #[error("no reply in time")]
    Timeout,
    #[error("not connected")]
    Disconnected,
    #[error("the client has stopped")]
    Stopped,
    #[error("{0}")]
    Cache(String),
    /// The server answered with a body other than the one the request calls for.
    #[error("unexpected reply: wanted {wanted}, got {got}")]
    Unexpected {
        wanted: &'static str,
        got: &'static str,
    },
}

impl ClientError {
    /// The reply `got` where a `wanted` body was due: the one place this error is made.
    pub fn unexpected(wanted: &'static str, got: &Body) -> Self {
        ClientError::Unexpected {
            wanted,
            got: confab_wire::body_name(got),
        }
    }

    /// The server's error code, if the server answered.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server(e) => ErrorCode::try_from(e.code).ok(),
            _ => None,
        }
    }
}

/// How the engine authenticates on its first connection (later ones resume by token).
#[derive(Debug, Clone)]
pub enum Auth {
    /// Resume a stored device session.
    Token(String),
    /// Log in with a password (kept in memory only, to log in again if the token is refused).
    Login { name: String, password: String },
    /// Create the account (`invite`: the code a server with invite-only registration asks
    /// for; empty otherwise).
    Register {
        name: String,
        password: String,
        invite: String,
    },
}

/// Settings of a client.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `host:port` of the server (or the load balancer).
    pub addr: String,
    pub client_name: String,
    /// Where the cache lives.
    pub cache: CacheMode,
    /// Source address to bind (load tests use several 127.0.0.x).
    pub bind: Option<IpAddr>,
    pub request_timeout: Duration,
    pub backoff: Backoff,
    /// Capacity of the event stream; a full stream pauses the engine (backpressure).
    pub event_capacity: usize,
    /// Run the full sync (events, threads) after each connect.
    pub sync_on_connect: bool,
    /// How often delivered-up-to markers are reported.
    pub delivered_every: Duration,
    /// Fetch history of threads this client has not seen before (false: start at the newest
    /// entry, as load generators without a cache do).
    pub backlog: bool,
    /// Emit this device's own acked sends as [`Event::Message`] too (a UI shows them in
    /// place; a load generator that tracks its sends by ack does not need them).
    pub echo_own: bool,
    /// What a `tls://` connection trusts (system roots, `--ca-file`, pins).
    pub trust: tls::TrustOptions,
    /// A connector shared by many clients (load generators: the roots are read once);
    /// otherwise the engine makes its own from `trust`.
    pub connector: Option<Arc<tls::Connector>>,
    /// The session file shared by every process of this account on the machine: read before
    /// each resume, replaced after each authentication (the CLI and the terminal client set
    /// it; tests and load generators that keep their token in memory leave it `None`).
    pub session: Option<paths::SessionFile>,
    /// A short command's connection (`Hello.quiet`): it does not make the user online, so a
    /// `confab send` does not flash online/offline at every friend. Off for the terminal
    /// client and `confab watch`.
    pub quiet: bool,
}

impl ClientConfig {
    pub fn new(addr: impl Into<String>) -> Self {
        Self {
            addr: addr.into(),
            client_name: "confab".into(),
            cache: CacheMode::Memory,
            bind: None,
            request_timeout: Duration::from_secs(15),
            backoff: Backoff::default(),
            event_capacity: 4096,
            sync_on_connect: true,
            delivered_every: Duration::from_millis(500),
            backlog: true,
            echo_own: true,
            trust: tls::TrustOptions::default(),
            connector: None,
            session: None,
            quiet: false,
        }
    }
}

/// Where the client keeps its cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheMode {
    /// A SQLite file (history without the network; outbox survives restarts).
    File(PathBuf),
    /// In memory for the life of the process (tests).
    Memory,
    /// Nothing kept beyond cursors and the outbox in memory (load generators).
    Off,
}

/// The connection as the user should see it.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnState {
    Connecting {
        attempt: u32,
    },
    /// Connected, authenticated and (once `synced`) caught up.
    Online {
        synced: bool,
    },
    /// Waiting before the next attempt.
    Offline {
        retry_in: Duration,
        reason: String,
    },
    /// Stopped trying: the session was displaced or refused; a command must restart it.
    /// `code` says why (the server's code; `UNAUTHENTICATED` when a stored session was not
    /// resumed and there is no password to log in with); `reason` is the text to show.
    Stopped {
        code: ErrorCode,
        reason: String,
    },
}

/// Everything the engine reports.
#[derive(Debug, Clone)]
pub enum Event {
    State(ConnState),
    /// Authenticated; the token to keep for next time.
    Session {
        user: pb::User,
        device_id: u64,
        token: String,
    },
    /// A thread entry, delivered in seq order per thread, each exactly once.
    Message(pb::ChatMessage),
    /// A thread's summary changed (listed, added, or its last_seq/read marker moved).
    Thread(pb::Thread),
    /// An outbox entry was stored by the server.
    Acked {
        local_id: u64,
        ack: pb::SendAck,
    },
    /// An outbox entry was refused for good (the error is not retryable).
    SendFailed {
        local_id: u64,
        error: pb::Error,
    },
    /// An outbox entry got a retryable error (rate limited, unavailable); it is retried.
    SendRetry {
        local_id: u64,
        error: pb::Error,
    },
    UserEvent(pb::UserEvent),
    Presence(pb::PresencePush),
    Typing(pb::TypingPush),
    ReadReceipt(pb::ReadReceiptPush),
    /// The sync after a (re)connect finished: the cache holds everything up to now.
    Synced,
    /// The server has not answered a ping (or anything) for a while: the connection may be
    /// dead. `drop_in` is how long until the engine gives up on it and reconnects.
    Silent {
        silent: Duration,
        drop_in: Duration,
    },
    /// The server answered again after [`Event::Silent`].
    Answering,
    /// Frames received on this connection (diagnostics and tests).
    Frames {
        received: u64,
    },
    /// The limits the server announced in its HelloOk (body size, page, recall window, ...),
    /// after every connect: a client checks a message's size before sending it.
    Limits(pb::Limits),
    /// A connection was opened (before Hello): whether it is encrypted, and the server
    /// certificate's fingerprint for TLS.
    Transport {
        encrypted: bool,
        fingerprint: Option<known_servers::Fingerprint>,
    },
    /// The server's certificate is not trusted; the engine stopped (retrying cannot help
    /// without the user). Followed by `State(Stopped)`.
    Untrusted(TrustProblem),
}

/// Why the server's identity was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustProblem {
    /// No trusted root signed its certificate and nothing pins it: the user may compare the
    /// fingerprint with the operator's and record it (`known_servers`), then reconnect.
    Unknown {
        server: String,
        fingerprint: known_servers::Fingerprint,
    },
    /// A pinned server presented another certificate, or a signed one is broken (expired,
    /// wrong name): never to be waved through from a prompt.
    Refused { server: String, message: String },
}

/// The stream of events.
pub struct Events(mpsc::Receiver<Event>);

impl Events {
    pub async fn recv(&mut self) -> Option<Event> {
        self.0.recv().await
    }

    pub fn try_recv(&mut self) -> Option<Event> {
        self.0.try_recv().ok()
    }
}

/// A message to send: its text and, for a reply, the message it answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Draft {
    pub body: String,
    /// The message_id of the message this one answers (0: none).
    pub reply_to: u64,
}

impl Draft {
    pub fn text(body: impl Into<String>) -> Self {
        Self {
            body: body.into(),
            reply_to: 0,
        }
    }

    pub fn reply(body: impl Into<String>, reply_to: u64) -> Self {
        Self {
            body: body.into(),
            reply_to,
        }
    }
}

impl From<String> for Draft {
    fn from(body: String) -> Self {
        Self::text(body)
    }
}

impl From<&str> for Draft {
    fn from(body: &str) -> Self {
        Self::text(body)
    }
}

impl From<&String> for Draft {
    fn from(body: &String) -> Self {
        Self::text(body.as_str())
    }
}

pub(crate) enum Command {
    Request {
        body: Box<Body>,
        reply: oneshot::Sender<Result<Body, ClientError>>,
    },
    Send {
        thread_id: u64,
        draft: Draft,
        reply: oneshot::Sender<Result<u64, ClientError>>,
        acked: Option<oneshot::Sender<Result<pb::SendAck, ClientError>>>,
    },
    /// A send without a reply: the caller allocated `local_id` (see [`Client::post`]).
    Post {
        local_id: u64,
        thread_id: u64,
        draft: Draft,
    },
    History {
        thread_id: u64,
        before_seq: u64,
        limit: u32,
        reply: oneshot::Sender<Result<Vec<pb::ChatMessage>, ClientError>>,
    },
    Threads {
        reply: oneshot::Sender<Vec<(pb::Thread, u64)>>,
    },
    Outbox {
        reply: oneshot::Sender<Vec<OutboxItem>>,
    },
    Failed {
        reply: oneshot::Sender<Result<Vec<FailedItem>, ClientError>>,
    },
    /// Forget a failed message.
    Discard {
        local_id: u64,
    },
    /// A read marker: kept until the server confirms it, sent again after a reconnect.
    MarkRead {
        thread_id: u64,
        seq: u64,
    },
    /// A notification (`Typing`, `ReadUpTo`): sent with req_id 0, no reply; dropped offline.
    Notify {
        body: Box<Body>,
    },
    ReconnectNow,
    /// Drop the connection without logging out (tests and the storm scenario).
    Disconnect,
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// A handle on a running client engine. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    tx: mpsc::Sender<Command>,
    timeout: Duration,
    /// Outbox ids, shared with the engine so [`Client::post`] needs no round trip.
    local_ids: Arc<AtomicU64>,
}

impl Client {
    /// Starts the engine. It connects in the background; watch [`Events`] for progress.
    pub fn start(cfg: ClientConfig, auth: Auth) -> Result<(Client, Events), ClientError> {
        let (tx, rx) = mpsc::channel(256);
        let (ev_tx, ev_rx) = mpsc::channel(cfg.event_capacity.max(16));
        let timeout = cfg.request_timeout;
        let engine = engine::Engine::new(cfg, auth, rx, ev_tx)?;
        let local_ids = engine.local_ids();
        tokio::spawn(engine.run());
        Ok((
            Client {
                tx,
                timeout,
                local_ids,
            },
            Events(ev_rx),
        ))
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, ClientError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| ClientError::Stopped)?;
        match tokio::time::timeout(self.timeout + Duration::from_secs(1), rx).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err(ClientError::Stopped),
            Err(_) => Err(ClientError::Timeout),
        }
    }

    /// Any request; the reply body, or the server's error.
    pub async fn request(&self, body: Body) -> Result<Body, ClientError> {
        self.call(|reply| Command::Request {
            body: Box::new(body),
            reply,
        })
        .await?
    }

    /// Sends a notification (`Typing`, `ReadUpTo`, `DeliveredUpTo`): no reply is awaited, and
    /// nothing is sent while offline (these are hints the next sync makes up for).
    pub async fn notify(&self, body: Body) -> Result<(), ClientError> {
        self.tx
            .send(Command::Notify {
                body: Box::new(body),
            })
            .await
            .map_err(|_| ClientError::Stopped)
    }

    /// Marks a thread read up to `seq`. Unlike a `ReadUpTo` notification, the marker is kept
    /// until the server confirms it: one set offline, or as the connection drops, is sent
    /// after the next connect.
    pub async fn mark_read(&self, thread_id: u64, seq: u64) -> Result<(), ClientError> {
        self.tx
            .send(Command::MarkRead { thread_id, seq })
            .await
            .map_err(|_| ClientError::Stopped)
    }

    /// Queues a message in the outbox (persisted); returns its local id. The ack arrives as
    /// [`Event::Acked`]; it is retried across reconnects until then.
    pub async fn send(&self, thread_id: u64, body: impl Into<String>) -> Result<u64, ClientError> {
        self.send_draft(thread_id, Draft::text(body)).await
    }

    /// [`Client::send`] of a draft that may answer another message (protocol 1.7).
    pub async fn send_draft(&self, thread_id: u64, draft: Draft) -> Result<u64, ClientError> {
        self.call(|reply| Command::Send {
            thread_id,
            draft,
            reply,
            acked: None,
        })
        .await?
    }

    /// Queues a message without waiting for the engine to answer: the local id is allocated
    /// here, and the outcome arrives as [`Event::Acked`] or [`Event::SendFailed`] (also when
    /// the cache refuses the entry). The cheap path for load generators: no reply channel, no
    /// task switch per message.
    pub async fn post(&self, thread_id: u64, body: impl Into<String>) -> Result<u64, ClientError> {
        let local_id = self.local_ids.fetch_add(1, Ordering::Relaxed);
        self.tx
            .send(Command::Post {
                local_id,
                thread_id,
                draft: Draft::text(body),
            })
            .await
            .map_err(|_| ClientError::Stopped)?;
        Ok(local_id)
    }

    /// Queues a message and waits until the server acknowledges it (or refuses it for good).
    pub async fn send_acked(
        &self,
        thread_id: u64,
        draft: impl Into<Draft>,
        wait: Duration,
    ) -> Result<pb::SendAck, ClientError> {
        let draft = draft.into();
        let (ack_tx, ack_rx) = oneshot::channel();
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Send {
                thread_id,
                draft,
                reply,
                acked: Some(ack_tx),
            })
            .await
            .map_err(|_| ClientError::Stopped)?;
        rx.await.map_err(|_| ClientError::Stopped)??;
        match tokio::time::timeout(wait, ack_rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(ClientError::Stopped),
            Err(_) => Err(ClientError::Timeout),
        }
    }

    /// Cached messages of a thread before `before_seq` (0 = newest), ascending. No network.
    pub async fn history(
        &self,
        thread_id: u64,
        before_seq: u64,
        limit: u32,
    ) -> Result<Vec<pb::ChatMessage>, ClientError> {
        self.call(|reply| Command::History {
            thread_id,
            before_seq,
            limit,
            reply,
        })
        .await?
    }

    /// Known threads with the client's cursor in each.
    pub async fn threads(&self) -> Result<Vec<(pb::Thread, u64)>, ClientError> {
        self.call(|reply| Command::Threads { reply }).await
    }

    /// Messages not yet acknowledged.
    pub async fn outbox(&self) -> Result<Vec<OutboxItem>, ClientError> {
        self.call(|reply| Command::Outbox { reply }).await
    }

    /// Messages the server refused for good, kept until [`Client::discard`].
    pub async fn failed(&self) -> Result<Vec<FailedItem>, ClientError> {
        self.call(|reply| Command::Failed { reply }).await?
    }

    /// Forgets a failed message (deleted, or sent again as a new one).
    pub async fn discard(&self, local_id: u64) -> Result<(), ClientError> {
        self.tx
            .send(Command::Discard { local_id })
            .await
            .map_err(|_| ClientError::Stopped)
    }

    /// Skip the backoff wait and try now.
    pub async fn reconnect_now(&self) -> Result<(), ClientError> {
        self.tx
            .send(Command::ReconnectNow)
            .await
            .map_err(|_| ClientError::Stopped)
    }

    /// Drops the connection (it reconnects by itself).
    pub async fn disconnect(&self) -> Result<(), ClientError> {
        self.tx
            .send(Command::Disconnect)
            .await
            .map_err(|_| ClientError::Stopped)
    }

    /// Stops the engine (the session stays valid for next time).
    pub async fn shutdown(&self) {
        let _ = self.call(|reply| Command::Shutdown { reply }).await;
    }
}
