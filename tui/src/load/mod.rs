//! Load scenarios on the client core, with honest accounting: every message is tracked from
//! send to ack to each recipient's delivery, so a throughput figure always comes with its
//! lost, duplicated and out-of-order counts, and a report whose counts do not add up fails.
//!
//! Scenarios: [`dm`], [`group`], [`idle`], [`login`], [`storm`], [`mixed`]; users come from
//! [`Users::setup`]. Several processes split the work with [`LoadOpts::shard`] and their JSON
//! reports merge exactly ([`procs`]).

mod dm;
mod group;
mod idle;
pub mod ledger;
mod login;
mod mixed;
pub mod procs;
pub mod report;
mod storm;
pub mod users;
mod wire;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use confab_wire::Body;
use confab_wire::pb;
use tokio::sync::Semaphore;

use crate::client::tls::{
    AddrError, ClientStream, ConnectError, Connector, ServerAddr, TrustOptions,
};
use crate::client::{Auth, Backoff, CacheMode, Client, ClientConfig, ConnState, Event, Events};
pub use dm::{Pace, dm};
pub use group::group;
pub use idle::idle;
pub use login::{LoginKinds, login};
pub use mixed::{MixedPlan, mixed};
pub use report::Report;
pub use storm::storm;
pub use users::{UserRecord, Users};
pub use wire::dm_wire;

/// Options shared by the scenarios.
#[derive(Debug, Clone)]
pub struct LoadOpts {
    /// Server addresses; clients are spread over them round-robin.
    pub servers: Vec<String>,
    /// Source addresses to bind, round-robin (more than ~28k connections to one address).
    pub bind: Vec<IpAddr>,
    pub duration: Duration,
    pub warmup: Duration,
    /// Time after sending stops for deliveries to arrive before counting losses.
    pub drain: Duration,
    /// Messages per second per pair (dm) or per sender (group), logins per second per worker
    /// (login); 0 = closed loop (as fast as deliveries or acks allow).
    pub rate: f64,
    /// Show a progress bar.
    pub progress: bool,
    /// This process's share of the work: (index, count); (0, 1) = all of it.
    pub shard: (usize, usize),
    /// Clients connecting at once.
    pub connect_concurrency: usize,
    /// What `tls://` servers are trusted by (`--ca-file`, `--trust-fingerprint`).
    pub trust: TrustOptions,
    /// Made from `trust` at the first TLS connection and shared by all of them.
    connector: std::sync::OnceLock<Result<Arc<Connector>, String>>,
}

impl LoadOpts {
    pub fn new(server: impl Into<String>) -> Self {
        Self {
            servers: vec![server.into()],
            bind: Vec::new(),
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            drain: Duration::from_secs(3),
            rate: 0.0,
            progress: false,
            shard: (0, 1),
            connect_concurrency: 64,
            trust: TrustOptions::default(),
            connector: std::sync::OnceLock::new(),
        }
    }

    /// The connector shared by this run's TLS connections.
    pub(crate) fn connector(&self) -> Result<Arc<Connector>, String> {
        self.connector
            .get_or_init(|| {
                Connector::new(self.trust.clone())
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            })
            .clone()
    }

    /// Opens connection `i`'s stream to `server` (from its source address, if any): TCP, and
    /// for `tls://` the verified handshake. For the scenarios that speak the protocol
    /// themselves; the others go through the client core.
    pub(crate) async fn open_stream(
        &self,
        server: &str,
        bind: Option<IpAddr>,
    ) -> Result<ClientStream, String> {
        let addr: ServerAddr = server.parse().map_err(|e: AddrError| e.to_string())?;
        let connector = if addr.tls {
            Some(self.connector()?)
        } else {
            None
        };
        crate::client::tls::open(&addr, bind, connector.as_deref())
            .await
            .map_err(|e| match e {
                // The report counts errors by text: the kind, not the OS's wording.
                ConnectError::Connect { source, .. } => format!("connect: {}", source.kind()),
                e => e.to_string(),
            })
    }

    /// The server for connection `i` (round-robin).
    pub fn server(&self, i: usize) -> &str {
        self.servers
            .get(i % self.servers.len().max(1))
            .map_or("127.0.0.1:7000", String::as_str)
    }

    /// The source address for connection `i` (round-robin), if any.
    pub fn bind_addr(&self, i: usize) -> Option<IpAddr> {
        (!self.bind.is_empty()).then(|| self.bind[i % self.bind.len()])
    }

    /// A global index for this process's `i`th connection, so round-robin spreads over
    /// processes too.
    fn global(&self, i: usize) -> usize {
        i * self.shard.1.max(1) + self.shard.0
    }

    pub(crate) fn client_config(&self, i: usize) -> ClientConfig {
        let g = self.global(i);
        let mut cfg = ClientConfig::new(self.server(g).to_owned());
        cfg.client_name = "confab-load".into();
        if self.servers.iter().any(|s| s.starts_with("tls://")) {
            cfg.connector = self.connector().ok();
            cfg.trust = self.trust.clone();
        }
        // No SQLite work per message: cursors and the outbox in memory only.
        cfg.cache = CacheMode::Off;
        cfg.bind = self.bind_addr(g);
        cfg.event_capacity = 1024;
        cfg.backoff = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(5),
            reset_after: Duration::from_secs(10),
        };
        cfg.delivered_every = Duration::from_secs(1);
        cfg.backlog = false;
        cfg.echo_own = false;
        cfg
    }
}

/// Whether unit `i` (a pair, a group, a user) belongs to this process.
pub(crate) fn shard(opts: &LoadOpts, i: usize) -> bool {
    i % opts.shard.1.max(1) == opts.shard.0
}

/// This process's share of the first `take` units (pairs, groups); `missing` explains an
/// empty users file.
pub(crate) fn my_share<T>(
    opts: &LoadOpts,
    all: Vec<T>,
    take: usize,
    missing: &str,
) -> Result<Vec<T>, LoadError> {
    if all.is_empty() {
        return Err(LoadError::Setup(missing.into()));
    }
    Ok(all
        .into_iter()
        .take(take)
        .enumerate()
        .filter(|(i, _)| shard(opts, *i))
        .map(|(_, x)| x)
        .collect())
}

/// The private thread of each pair, and both sides in pair order (a0, b0, a1, b1, ...).
pub(crate) fn pair_threads(
    pairs: &[(UserRecord, UserRecord)],
) -> Result<(Vec<u64>, Vec<UserRecord>), LoadError> {
    let mut threads = Vec::with_capacity(pairs.len());
    let mut who = Vec::with_capacity(pairs.len() * 2);
    for (a, b) in pairs {
        let thread = a.thread_with(&b.name).ok_or_else(|| {
            LoadError::Setup(format!("{} and {} share no thread", a.name, b.name))
        })?;
        threads.push(thread);
        who.push(a.clone());
        who.push(b.clone());
    }
    Ok((threads, who))
}

const NO_PAIRS: &str = "no pairs in the users file: run setup with --pairs";

/// Errors that stop a scenario.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("client {0}: {1}")]
    Client(String, String),
    #[error("users file: {0}")]
    Users(String),
    #[error("{0}")]
    Setup(String),
    #[error("child process: {0}")]
    Child(String),
}

/// Starts a client and waits until it is authenticated and synced.
pub async fn connect(
    cfg: ClientConfig,
    auth: Auth,
    label: &str,
) -> Result<(Client, Events, pb::User, String), LoadError> {
    let sync = cfg.sync_on_connect;
    let (client, mut events) =
        Client::start(cfg, auth).map_err(|e| LoadError::Client(label.into(), e.to_string()))?;
    let mut session = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let ev = tokio::time::timeout_at(deadline, events.recv())
            .await
            .map_err(|_| LoadError::Client(label.into(), "did not come online in 60 s".into()))?
            .ok_or_else(|| LoadError::Client(label.into(), "stopped".into()))?;
        match ev {
            Event::Session { user, token, .. } => {
                session = Some((user, token));
                if !sync {
                    break;
                }
            }
            Event::Synced => break,
            Event::State(ConnState::Stopped { reason, .. }) => {
                return Err(LoadError::Client(label.into(), reason));
            }
            _ => {}
        }
    }
    let (user, token) =
        session.ok_or_else(|| LoadError::Client(label.into(), "no session".into()))?;
    Ok((client, events, user, token))
}

/// A client that is online, with its event stream.
pub struct Online {
    pub client: Client,
    pub events: Events,
    pub user_id: u64,
    pub name: String,
}

/// Connects one client per record (by token), `connect_concurrency` at a time, and keeps
/// the rotated tokens. In order of `who`; fails if any does.
pub(crate) async fn connect_all(
    opts: &LoadOpts,
    users: &mut Users,
    who: &[UserRecord],
    sync: bool,
) -> Result<Vec<Online>, LoadError> {
    let sem = Arc::new(Semaphore::new(opts.connect_concurrency.max(1)));
    let mut tasks = Vec::with_capacity(who.len());
    for (i, u) in who.iter().enumerate() {
        let mut cfg = opts.client_config(i);
        cfg.sync_on_connect = sync;
        let (sem, u) = (sem.clone(), u.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await;
            let (client, events, user, token) =
                connect(cfg, Auth::Token(u.token.clone()), &u.name).await?;
            Ok::<_, LoadError>((
                Online {
                    client,
                    events,
                    user_id: user.user_id,
                    name: u.name,
                },
                token,
            ))
        }));
    }
    let mut out = Vec::with_capacity(who.len());
    let mut first_err = None;
    for t in tasks {
        match t.await {
            Ok(Ok((online, token))) => {
                users.update_token(&online.name, token);
                out.push(online);
            }
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(e) => {
                first_err.get_or_insert(LoadError::Setup(e.to_string()));
            }
        }
    }
    if let Some(e) = first_err {
        for o in out {
            o.client.shutdown().await;
        }
        return Err(e);
    }
    Ok(out)
}

/// Checks the server is up before a scenario: a request round trip on one user.
pub async fn ping(opts: &LoadOpts, user: &UserRecord) -> Result<Duration, LoadError> {
    let (c, _e, _, _) = connect(
        opts.client_config(0),
        Auth::Token(user.token.clone()),
        &user.name,
    )
    .await?;
    let t = std::time::Instant::now();
    c.request(Body::Ping(pb::Ping { nonce: 1 }))
        .await
        .map_err(|e| LoadError::Client(user.name.clone(), e.to_string()))?;
    let rtt = t.elapsed();
    c.shutdown().await;
    Ok(rtt)
}
