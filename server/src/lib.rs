//! confab-server: accounts, friends, groups, chat and sync over the confab wire protocol.
//!
//! Layers (dependencies point down): [`net`] (listener, connection tasks) -> [`service`]
//! (requests, rules, fan-out) -> [`store`] (durable state), [`hub`] (who is online here) and
//! [`cluster`] (the bus to the other nodes, if any); [`tls`] holds the listener's certificate;
//! [`metrics`] counts what they do and serves `--metrics-listen`.

pub mod admin;
pub mod cluster;
pub mod config;
pub mod hub;
pub mod ids;
pub mod metrics;
pub mod net;
pub mod service;
pub mod store;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::service::{Hasher, Service};
use crate::store::mysql::{MysqlBackend, MysqlConfig};
use crate::store::sqlite::{SqliteBackend, SqliteConfig};
use crate::store::{Backend, Store};

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot open the store: {0}")]
    Store(#[from] store::StoreError),
    #[error("cannot set up password hashing: {0}")]
    Hasher(#[from] service::auth::HashError),
    #[error("cannot join the cluster: {0}")]
    Cluster(#[from] cluster::ClusterError),
    #[error(transparent)]
    Transport(#[from] config::ConfigError),
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    #[error("cannot serve metrics on {addr}: {source}")]
    MetricsListen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Metrics(#[from] metrics::InstallError),
    #[error("cannot open the admin socket {path}: {source}")]
    AdminSocket {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// A running server (for tests and the binary).
pub struct Running {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<()>,
    /// The service; dropping the last reference closes the store's write queue.
    pub service: Arc<dyn std::any::Any + Send + Sync>,
    /// The cluster bus (local when alone); `close` it after the connections are gone.
    pub bus: Arc<dyn cluster::Bus>,
    /// The listener's TLS, if on: [`tls::Tls::reload`] is what SIGHUP runs.
    pub tls: Option<Arc<tls::Tls>>,
}

/// Connections waiting to be accepted. Tokio's default (128, as std) makes a burst of reconnects
/// after a restart wait out SYN retries; the kernel caps this at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Opens the store (embedded in `cfg.data_dir`, or MySQL), joins the cluster if `cfg.bus_url`
/// is set (subscribed before the first connection is accepted), binds `cfg.listen` and serves
/// until the token is cancelled.
pub async fn start(cfg: Config) -> Result<Running, StartError> {
    cfg.check_transport()?;
    if cfg.node_id == admin::NODE_ID {
        return Err(StartError::Transport(config::ConfigError::Invalid(
            "node_id 1023 is reserved for confab-server admin",
        )));
    }
    let tls = match tls::KeyPair::from_config(&cfg) {
        Some(pair) => {
            let tls = tls::Tls::open(pair)?;
            // Logged at every start: clients that pin it compare with this.
            tracing::info!(fingerprint = %tls.fingerprint(), "TLS certificate");
            Some(Arc::new(tls))
        }
        None => None,
    };
    let hasher = Hasher::new(cfg.hash_concurrency)?;
    store::search::set_indexing(cfg.search_index);
    let listener = bind(cfg.listen).map_err(|source| StartError::Listen {
        addr: cfg.listen,
        source,
    })?;
    let addr = listener.local_addr().map_err(|source| StartError::Listen {
        addr: cfg.listen,
        source,
    })?;
    let metrics = match cfg.metrics_listen {
        Some(maddr) => {
            let l =
                metrics::http::bind(maddr)
                    .await
                    .map_err(|source| StartError::MetricsListen {
                        addr: maddr,
                        source,
                    })?;
            Some((l, metrics::install()?))
        }
        None => None,
    };
    let front = Front {
        listener,
        addr,
        tls,
        metrics,
    };
    match cfg.mysql_url.clone() {
        Some(url) => {
            let backend = MysqlBackend::open(&mysql_config(&cfg, url)).await?;
            let admin = admin_socket(&cfg)?;
            let hub = Arc::new(hub::Hub::new());
            let bus = cluster::connect(&cfg, hub.clone()).await?;
            Ok(serve(cfg, front, backend, hasher, hub, bus, admin))
        }
        None => {
            let backend = SqliteBackend::open(&sqlite_config(&cfg))?;
            // Bound once the store's lock is ours: a stale socket is then safe to replace.
            let admin = admin_socket(&cfg)?;
            let hub = Arc::new(hub::Hub::new());
            let bus = cluster::connect(&cfg, hub.clone()).await?;
            Ok(serve(cfg, front, backend, hasher, hub, bus, admin))
        }
    }
}

/// Binds the admin socket in the data directory (made 0700 if missing).
fn admin_socket(
    cfg: &Config,
) -> Result<(tokio::net::UnixListener, std::path::PathBuf), StartError> {
    let path = net::admin::socket_path(&cfg.data_dir);
    let fail = |source| StartError::AdminSocket {
        path: path.clone(),
        source,
    };
    if !cfg.data_dir.exists() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&cfg.data_dir)
            .map_err(fail)?;
    }
    let listener = net::admin::bind(&path).map_err(fail)?;
    // Said at start, before the listener's own lines.
    tracing::info!(socket = %path.display(), "admin socket");
    Ok((listener, path))
}

/// The embedded store's settings for `cfg`.
pub fn sqlite_config(cfg: &Config) -> SqliteConfig {
    let mut scfg = SqliteConfig::new(cfg.data_dir.join("confab.db"));
    scfg.batch_max = cfg.batch_max;
    scfg.commit_every = cfg.sqlite_commit;
    scfg
}

/// MySQL's settings for `cfg` (`url`: its --store).
pub fn mysql_config(cfg: &Config, url: String) -> MysqlConfig {
    let mut mcfg = MysqlConfig::new(url);
    mcfg.batch_max = cfg.batch_max;
    mcfg.pool_size = cfg.mysql_pool;
    mcfg.writers = cfg.mysql_writers;
    mcfg.linger = cfg.mysql_linger;
    mcfg.connect_timeout = cfg.mysql_connect_timeout;
    mcfg.lock_wait_secs = cfg.mysql_lock_wait_secs;
    mcfg
}

/// The bound listener and what it speaks.
struct Front {
    listener: TcpListener,
    addr: SocketAddr,
    tls: Option<Arc<tls::Tls>>,
    /// `--metrics-listen`: its bound listener and the recorder's handle.
    metrics: Option<(TcpListener, metrics_exporter_prometheus::PrometheusHandle)>,
}

fn serve<B: Backend>(
    cfg: Config,
    front: Front,
    backend: B,
    hasher: Hasher,
    hub: Arc<hub::Hub>,
    bus: Arc<dyn cluster::Bus>,
    admin: (tokio::net::UnixListener, std::path::PathBuf),
) -> Running {
    let Front {
        listener,
        addr,
        tls,
        metrics,
    } = front;
    let service = Service::start_with(cfg, Store::new(backend), hasher, hub, bus.clone());
    tokio::spawn(log_writer_stats(Arc::downgrade(&service)));
    tokio::spawn(flush_delivered(Arc::downgrade(&service)));
    if service.cfg.search_index {
        tokio::spawn(search_backfill(Arc::downgrade(&service)));
    }
    let shutdown = CancellationToken::new();
    let (admin_listener, admin_path) = admin;
    tokio::spawn(net::admin::serve(
        admin_listener,
        admin_path,
        service.clone(),
        shutdown.child_token(),
    ));
    if let Some((l, handle)) = metrics {
        let ready = ready_check(Arc::downgrade(&service), shutdown.clone(), bus.clone());
        tokio::spawn(metrics::http::serve(l, handle, ready));
    }
    let acceptor = tls.as_ref().map(|t| t.acceptor());
    let task = tokio::spawn(net::serve(
        listener,
        service.clone(),
        acceptor,
        shutdown.clone(),
    ));
    Running {
        addr,
        shutdown,
        task,
        service,
        bus,
        tls,
    }
}

/// `/readyz`: not draining, the bus subscribed (in a cluster), and the store takes a write
/// (an empty job through the writer: a failing disk, a lost MySQL or a stuck writer shows).
fn ready_check<B: Backend>(
    svc: std::sync::Weak<Service<B>>,
    shutdown: CancellationToken,
    bus: Arc<dyn cluster::Bus>,
) -> metrics::http::ReadyCheck {
    Arc::new(move || {
        let (svc, shutdown, bus) = (svc.clone(), shutdown.clone(), bus.clone());
        Box::pin(async move {
            if shutdown.is_cancelled() {
                return Err("draining (shutting down)".to_owned());
            }
            bus.ready().map_err(|why| format!("bus: {why}"))?;
            let Some(svc) = svc.upgrade() else {
                return Err("stopped".to_owned());
            };
            svc.store()
                .write(|_tx| Box::pin(async { Ok(()) }))
                .await
                .map_err(|e| format!("store: {e}"))
        })
    })
}

/// Messages indexed per backfill write: small enough that sends waiting behind it barely notice.
const BACKFILL_BATCH: u32 = 500;

/// Indexes for search the messages stored before the index existed (an upgrade to schema 7),
/// in the background, a batch per write, oldest first, with progress in the log.
async fn search_backfill<B: Backend>(svc: std::sync::Weak<Service<B>>) {
    let mut batches = 0u64;
    loop {
        let Some(s) = svc.upgrade() else { return };
        let step = s
            .store()
            .write(|tx| {
                Box::pin(async move { store::ops::search::backfill_step(tx, BACKFILL_BATCH).await })
            })
            .await;
        drop(s);
        match step {
            Ok(None) => return,
            Ok(Some((upto, target))) => {
                batches += 1;
                if upto >= target {
                    tracing::info!(batches, "search index: every older message is indexed");
                    return;
                }
                if batches == 1 || batches.is_multiple_of(50) {
                    tracing::info!(
                        batches,
                        upto_message_id = upto,
                        target_message_id = target,
                        "search index: indexing older messages"
                    );
                }
                tokio::task::yield_now().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "search index: backfill failed; retrying in 5 s");
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            }
        }
    }
}

/// Stores the delivery markers that notifications left pending, every second.
async fn flush_delivered<B: Backend>(svc: std::sync::Weak<Service<B>>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Some(svc) = svc.upgrade() else { return };
        svc.flush_delivered().await;
    }
}

/// Logs the group-commit writer's batch sizes every 10 s while there is traffic.
async fn log_writer_stats<B: Backend>(svc: std::sync::Weak<Service<B>>) {
    let mut last = crate::store::WriterStats::default();
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(10));
    loop {
        tick.tick().await;
        let Some(svc) = svc.upgrade() else { return };
        let now = svc.store().backend().stats();
        let (batches, jobs) = (now.batches - last.batches, now.jobs - last.jobs);
        if batches > 0 {
            tracing::info!(
                batches,
                jobs,
                avg_batch = jobs as f64 / batches as f64,
                failed_commits = now.failed_commits - last.failed_commits,
                retried_batches = now.retried_batches - last.retried_batches,
                sent_together = now.sent_together - last.sent_together,
                connections = svc.hub.connections(),
                "writer"
            );
        }
        last = now;
    }
}
