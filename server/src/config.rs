//! Settings from flags, `CONFAB_*` environment variables and a TOML file (in that order of
//! precedence), with defaults for everything.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

/// Who may register (`--registration`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Registration {
    /// Anyone who reaches the server.
    Open,
    /// Only with an invitation code an admin made (`confab-server admin invite create`).
    Invite,
    /// Nobody: only accounts that exist log in.
    Closed,
}

/// What to do instead of serving.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum Command {
    /// Print the SHA-256 fingerprint of the certificate the server presents (--tls-cert, or the
    /// self-signed one in --data-dir, made first if --tls-self-signed is given) and exit.
    Fingerprint,
    /// Administer the store this configuration names: users, groups, invitations, statistics,
    /// the audit log. Embedded store: through the running server's admin socket, or the
    /// database itself when no server runs; MySQL: directly (and the cluster bus, if set).
    Admin(crate::admin::AdminArgs),
}

/// Every setting, all optional: what flags, environment and file provided.
#[derive(Debug, Clone, Default, Parser, Deserialize)]
#[command(name = "confab-server", version = crate::metrics::VERSION, about = "The confab chat server")]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct Settings {
    #[command(subcommand)]
    #[serde(skip)]
    pub command: Option<Command>,
    /// TOML file with any of these settings (snake_case keys).
    #[arg(long, env = "CONFAB_CONFIG", global = true)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:7000].
    #[arg(long, env = "CONFAB_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory of the embedded store (and of the --tls-self-signed pair)
    /// [default: ./confab-data]. CONFAB_DATA_DIR (the client's variable) is still read when
    /// CONFAB_SERVER_DATA_DIR is not set, with a warning; it will not be.
    #[arg(long, env = "CONFAB_SERVER_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// PEM certificate chain (leaf first) to serve TLS with; needs --tls-key. Reloaded on
    /// SIGHUP.
    #[arg(long, env = "CONFAB_TLS_CERT", global = true)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of --tls-cert. Reloaded on SIGHUP.
    #[arg(long, env = "CONFAB_TLS_KEY", global = true)]
    pub tls_key: Option<PathBuf>,
    /// Serve TLS with a self-signed certificate made in --data-dir on first start and reused
    /// afterwards; its fingerprint is logged at every start [default: false].
    #[arg(
        long,
        env = "CONFAB_TLS_SELF_SIGNED",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        global = true
    )]
    pub tls_self_signed: Option<bool>,
    /// Allow plain text on an address that is not loopback (nodes behind a TLS-terminating
    /// balancer); without TLS the server otherwise listens on loopback only [default: false].
    #[arg(
        long,
        env = "CONFAB_PLAINTEXT",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub plaintext: Option<bool>,
    /// Store: `sqlite` (embedded, in --data-dir) or `mysql://user:password@host:port/db`
    /// [default: sqlite].
    #[arg(long, env = "CONFAB_STORE")]
    pub store: Option<String>,
    /// MySQL connection pool size [default: 16].
    #[arg(long, env = "CONFAB_MYSQL_POOL")]
    pub mysql_pool: Option<usize>,
    /// MySQL writer connections, each group-committing the threads routed to it [default: 2].
    #[arg(long, env = "CONFAB_MYSQL_WRITERS")]
    pub mysql_writers: Option<usize>,
    /// How long a MySQL writer that found fewer than 64 writes waiting lingers for more before
    /// it runs them, µs; 0 runs at once [default: 1000].
    #[arg(long, env = "CONFAB_MYSQL_LINGER_US")]
    pub mysql_linger_us: Option<u64>,
    /// How long the embedded store keeps its database transaction open across batches, ms:
    /// each batch is durable in the redo log before it is acknowledged, and the database
    /// commits at most this often (sooner when a read needs it) [default: 100].
    #[arg(long, env = "CONFAB_SQLITE_COMMIT_MS")]
    pub sqlite_commit_ms: Option<u64>,
    /// Cluster bus: `redis://host:port[/db]` makes this node a cluster member (give each node
    /// its own --node-id); without it the node runs alone.
    #[arg(long, env = "CONFAB_BUS")]
    pub bus: Option<String>,
    /// Pushes waiting to be published to other nodes; beyond this they are dropped, and once
    /// Redis takes publishes again every node tells its clients to resync [default: 65536].
    #[arg(long, env = "CONFAB_BUS_QUEUE")]
    pub bus_queue: Option<usize>,
    /// Expect a PROXY protocol v1 or v2 header on every connection (behind nginx or HAProxy
    /// with proxy_protocol / send-proxy); connections without one are refused [default: false].
    #[arg(long, env = "CONFAB_PROXY_PROTOCOL", num_args = 0..=1, default_missing_value = "true")]
    pub proxy_protocol: Option<bool>,
    /// How long to keep trying to reach MySQL at start, ms [default: 30000].
    #[arg(long, env = "CONFAB_MYSQL_CONNECT_TIMEOUT_MS")]
    pub mysql_connect_timeout_ms: Option<u64>,
    /// InnoDB lock wait timeout of the MySQL writers, s; a batch that times out runs again
    /// [default: 5].
    #[arg(long, env = "CONFAB_MYSQL_LOCK_WAIT_SECS")]
    pub mysql_lock_wait_secs: Option<u32>,
    /// Node id (0-1023), part of every message id [default: 1].
    #[arg(long, env = "CONFAB_NODE_ID")]
    pub node_id: Option<u16>,
    /// Log format [default: human].
    #[arg(long, env = "CONFAB_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Largest frame payload in bytes [default: 65536].
    #[arg(long, env = "CONFAB_MAX_FRAME_BYTES")]
    pub max_frame_bytes: Option<u32>,
    /// Time allowed for the Hello frame, ms [default: 5000].
    #[arg(long, env = "CONFAB_HELLO_TIMEOUT_MS")]
    pub hello_timeout_ms: Option<u64>,
    /// Heartbeat interval announced to clients, ms [default: 10000].
    #[arg(long, env = "CONFAB_HEARTBEAT_MS")]
    pub heartbeat_ms: Option<u32>,
    /// Close connections silent for this long, ms [default: 30000].
    #[arg(long, env = "CONFAB_IDLE_TIMEOUT_MS")]
    pub idle_timeout_ms: Option<u32>,
    /// Largest message body in bytes, at most half of --max-frame-bytes [default: 4096].
    #[arg(long, env = "CONFAB_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<u32>,
    /// Largest page of sync/history/lists [default: 200].
    #[arg(long, env = "CONFAB_MAX_PAGE")]
    pub max_page: Option<u32>,
    /// Largest group [default: 2000].
    #[arg(long, env = "CONFAB_MAX_GROUP_MEMBERS")]
    pub max_group_members: Option<u32>,
    /// Unanswered friend requests one user may have sent [default: 200].
    #[arg(long, env = "CONFAB_MAX_PENDING_FRIEND_REQUESTS")]
    pub max_pending_friend_requests: Option<u32>,
    /// Users one user may block [default: 1000].
    #[arg(long, env = "CONFAB_MAX_BLOCKED")]
    pub max_blocked: Option<u32>,
    /// After a decline, how long the sender must wait to ask the same person again, in ms
    /// [default: 86400000, a day].
    #[arg(long, env = "CONFAB_FRIEND_REQUEST_COOLDOWN_MS")]
    pub friend_request_cooldown_ms: Option<u64>,
    /// Requests awaiting a reply per connection [default: 32].
    #[arg(long, env = "CONFAB_MAX_IN_FLIGHT")]
    pub max_in_flight: Option<u32>,
    /// Sustained requests per second per connection [default: 200].
    #[arg(long, env = "CONFAB_REQUESTS_PER_SECOND")]
    pub requests_per_second: Option<u32>,
    /// Request burst per connection [default: 400].
    #[arg(long, env = "CONFAB_REQUEST_BURST")]
    pub request_burst: Option<u32>,
    /// Logins and registrations per minute per client IP [default: 60].
    #[arg(long, env = "CONFAB_AUTH_PER_IP_PER_MINUTE")]
    pub auth_per_ip_per_minute: Option<u32>,
    /// Login attempts per minute per account name [default: 10].
    #[arg(long, env = "CONFAB_AUTH_PER_NAME_PER_MINUTE")]
    pub auth_per_name_per_minute: Option<u32>,
    /// Frames queued for one connection before it is dropped as a slow consumer [default: 1024].
    #[arg(long, env = "CONFAB_OUTBOUND_QUEUE")]
    pub outbound_queue: Option<usize>,
    /// A connection whose socket accepts nothing for this long is dropped, ms [default: 10000].
    #[arg(long, env = "CONFAB_WRITE_TIMEOUT_MS")]
    pub write_timeout_ms: Option<u64>,
    /// Most concurrent connections [default: derived from the open-file limit].
    #[arg(long, env = "CONFAB_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Window for recalling or editing one's message, ms [default: 120000].
    #[arg(long, env = "CONFAB_RECALL_WINDOW_MS")]
    pub recall_window_ms: Option<u32>,
    /// Concurrent password hashes [default: 2].
    #[arg(long, env = "CONFAB_HASH_CONCURRENCY")]
    pub hash_concurrency: Option<usize>,
    /// Most writes committed in one transaction [default: 512].
    #[arg(long, env = "CONFAB_BATCH_MAX")]
    pub batch_max: Option<usize>,
    /// Time allowed for a graceful shutdown, ms [default: 5000].
    #[arg(long, env = "CONFAB_SHUTDOWN_GRACE_MS")]
    pub shutdown_grace_ms: Option<u64>,
    /// How long a resume token keeps working after its first use, ms [default: 60000]: a
    /// client that lost the reply can resume with it again.
    #[arg(long, env = "CONFAB_TOKEN_GRACE_MS")]
    pub token_grace_ms: Option<u32>,
    /// A device session not used (no login or resume) for this many days expires: its resume
    /// token no longer works [default: 90].
    #[arg(long, env = "CONFAB_SESSION_IDLE_DAYS")]
    pub session_idle_days: Option<u32>,
    /// Who may register: open, invite (a code from `confab-server admin invite create`) or
    /// closed [default: open when listening on loopback only, invite otherwise].
    #[arg(long, env = "CONFAB_REGISTRATION", value_enum, global = true)]
    pub registration: Option<Registration>,
    /// Days a deleted account's name stays reserved before anyone may register it
    /// [default: 30].
    #[arg(long, env = "CONFAB_DELETED_NAME_HOLD_DAYS", global = true)]
    pub deleted_name_hold_days: Option<u32>,
    /// Keep the message search index (written with every message): off saves its cost on the
    /// send path and answers SearchMessages with UNSUPPORTED [default: true].
    #[arg(
        long,
        env = "CONFAB_SEARCH_INDEX",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub search_index: Option<bool>,
    /// Searches per minute per connection (SearchMessages) [default: 60].
    #[arg(long, env = "CONFAB_SEARCH_PER_MINUTE")]
    pub search_per_minute: Option<u32>,
    /// Serve Prometheus metrics at /metrics and health checks at /healthz and /readyz on this
    /// HTTP address (docs/OPERATIONS.md); loopback only unless --metrics-public [default: off].
    #[arg(long, env = "CONFAB_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Allow --metrics-listen on an address that is not loopback: the endpoint has no
    /// authentication, so firewall it to the scrapers and balancers [default: false].
    #[arg(
        long,
        env = "CONFAB_METRICS_PUBLIC",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub metrics_public: Option<bool>,
    /// A server admin, by name (repeat, or commas in CONFAB_ADMINS); also `admin user promote`.
    #[arg(long, env = "CONFAB_ADMINS", value_delimiter = ',', global = true)]
    pub admin: Option<Vec<String>>,
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// TLS from these PEM files (both or neither).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// TLS with the self-signed pair in `data_dir`.
    pub tls_self_signed: bool,
    /// Plain text allowed on an address that is not loopback.
    pub plaintext: bool,
    /// `None`: the embedded store; `Some(url)`: MySQL.
    pub mysql_url: Option<String>,
    pub mysql_pool: usize,
    pub mysql_writers: usize,
    pub mysql_linger: Duration,
    pub sqlite_commit: Duration,
    /// `None`: a single node; `Some(url)`: a cluster member on this Redis.
    pub bus_url: Option<String>,
    pub bus_queue: usize,
    pub proxy_protocol: bool,
    pub mysql_connect_timeout: Duration,
    pub mysql_lock_wait_secs: u32,
    pub node_id: u16,
    pub log_format: LogFormat,
    pub max_frame_bytes: u32,
    pub hello_timeout: Duration,
    pub heartbeat_ms: u32,
    pub idle_timeout_ms: u32,
    pub max_body_bytes: u32,
    pub max_page: u32,
    pub max_group_members: u32,
    pub max_pending_friend_requests: u32,
    pub max_blocked: u32,
    pub friend_request_cooldown: Duration,
    pub max_in_flight: u32,
    pub requests_per_second: u32,
    pub request_burst: u32,
    pub auth_per_ip_per_minute: u32,
    pub auth_per_name_per_minute: u32,
    pub outbound_queue: usize,
    pub write_timeout: Duration,
    pub max_connections: usize,
    pub recall_window_ms: u32,
    pub hash_concurrency: usize,
    pub batch_max: usize,
    pub shutdown_grace: Duration,
    /// A used resume token expires this long after its first use.
    pub token_grace_ms: u32,
    /// A device session unused this long expires.
    pub session_idle: Duration,
    pub registration: Registration,
    /// A deleted account's name is held this long.
    pub deleted_name_hold: Duration,
    /// Names given by `--admin`, folded (name keys).
    pub admins: Vec<String>,
    pub search_per_minute: u32,
    pub search_index: bool,
    /// The operator's HTTP endpoint (metrics and health checks), if on.
    pub metrics_listen: Option<SocketAddr>,
}

/// Errors reading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("invalid setting: {0}")]
    Invalid(&'static str),
    #[error(
        "refusing to listen in plain text on {0}, which is not a loopback address: give \
         --tls-cert and --tls-key, or --tls-self-signed, or --plaintext if a TLS-terminating \
         balancer is in front"
    )]
    PlaintextNotLoopback(SocketAddr),
    #[error(
        "refusing to serve metrics on {0}, which is not a loopback address: the endpoint has no \
         authentication; give --metrics-public if a firewall keeps it to your scrapers"
    )]
    MetricsNotLoopback(SocketAddr),
}

impl Settings {
    /// Fills every unset field from `file`.
    fn or(self, file: Settings) -> Settings {
        macro_rules! merge {
            ($($f:ident),*) => {
                Settings { command: self.command, config: self.config, $($f: self.$f.or(file.$f)),* }
            };
        }
        merge!(
            listen,
            data_dir,
            tls_cert,
            tls_key,
            tls_self_signed,
            plaintext,
            store,
            mysql_pool,
            mysql_writers,
            mysql_linger_us,
            sqlite_commit_ms,
            bus,
            bus_queue,
            proxy_protocol,
            mysql_connect_timeout_ms,
            mysql_lock_wait_secs,
            node_id,
            log_format,
            max_frame_bytes,
            hello_timeout_ms,
            heartbeat_ms,
            idle_timeout_ms,
            max_body_bytes,
            max_page,
            max_group_members,
            max_pending_friend_requests,
            max_blocked,
            friend_request_cooldown_ms,
            max_in_flight,
            requests_per_second,
            request_burst,
            auth_per_ip_per_minute,
            auth_per_name_per_minute,
            outbound_queue,
            write_timeout_ms,
            max_connections,
            recall_window_ms,
            hash_concurrency,
            batch_max,
            shutdown_grace_ms,
            token_grace_ms,
            session_idle_days,
            registration,
            deleted_name_hold_days,
            admin,
            search_per_minute,
            search_index,
            metrics_listen,
            metrics_public
        )
    }

    /// Reads the TOML file named by `--config`, if any, and resolves defaults.
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let merged = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                let file: Settings =
                    toml::from_str(&text).map_err(|source| ConfigError::Parse {
                        path: path.clone(),
                        source: Box::new(source),
                    })?;
                self.or(file)
            }
            None => self,
        };
        merged.finish()
    }

    fn finish(self) -> Result<Config, ConfigError> {
        let node_id = self.node_id.unwrap_or(1);
        if node_id > crate::ids::MAX_NODE_ID {
            return Err(ConfigError::Invalid("node_id must be 0-1023"));
        }
        let max_frame_bytes = self.max_frame_bytes.unwrap_or(64 * 1024);
        // Every single item a reply can page (a thread with its group and a last message of
        // max_body_bytes, an event, a member) must fit a frame on its own, or paging stalls:
        // with bodies at most half a frame, 8 KiB leaves 4 KiB for the rest.
        if max_frame_bytes < 8192 {
            return Err(ConfigError::Invalid(
                "max_frame_bytes must be at least 8192",
            ));
        }
        let heartbeat_ms = self.heartbeat_ms.unwrap_or(10_000);
        let idle_timeout_ms = self.idle_timeout_ms.unwrap_or(30_000);
        if idle_timeout_ms <= heartbeat_ms {
            return Err(ConfigError::Invalid(
                "idle_timeout_ms must exceed heartbeat_ms",
            ));
        }
        let max_body_bytes = self.max_body_bytes.unwrap_or(4096);
        if max_body_bytes == 0 || max_body_bytes > max_frame_bytes / 2 {
            return Err(ConfigError::Invalid(
                "max_body_bytes must be 1..max_frame_bytes/2",
            ));
        }
        let tls_self_signed = self.tls_self_signed.unwrap_or(false);
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) | (None, Some(_)) => {
                return Err(ConfigError::Invalid("tls_cert and tls_key go together"));
            }
            (Some(_), Some(_)) if tls_self_signed => {
                return Err(ConfigError::Invalid(
                    "tls_self_signed and tls_cert/tls_key are exclusive",
                ));
            }
            _ => {}
        }
        let plaintext = self.plaintext.unwrap_or(false);
        if plaintext && (tls_self_signed || self.tls_cert.is_some()) {
            return Err(ConfigError::Invalid(
                "plaintext and TLS (tls_cert or tls_self_signed) are exclusive",
            ));
        }
        let nonzero = |v: u32, what| {
            if v == 0 {
                Err(ConfigError::Invalid(what))
            } else {
                Ok(v)
            }
        };
        let listen = self
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7000)));
        if let Some(addr) = self.metrics_listen
            && !addr.ip().is_loopback()
            && !self.metrics_public.unwrap_or(false)
        {
            return Err(ConfigError::MetricsNotLoopback(addr));
        }
        Ok(Config {
            listen,
            data_dir: self
                .data_dir
                .unwrap_or_else(|| PathBuf::from("confab-data")),
            tls_cert: self.tls_cert,
            tls_key: self.tls_key,
            tls_self_signed,
            plaintext,
            mysql_url: match self.store.as_deref() {
                None | Some("sqlite") | Some("") => None,
                Some(url) if url.starts_with("mysql://") => Some(url.to_owned()),
                Some(_) => return Err(ConfigError::Invalid("store must be sqlite or mysql://...")),
            },
            mysql_pool: self.mysql_pool.unwrap_or(16).max(2),
            mysql_writers: self.mysql_writers.unwrap_or(2).max(1),
            mysql_linger: Duration::from_micros(self.mysql_linger_us.unwrap_or(1000).min(100_000)),
            sqlite_commit: Duration::from_millis(
                self.sqlite_commit_ms.unwrap_or(100).min(3_600_000),
            ),
            bus_url: match self.bus.as_deref() {
                None | Some("") | Some("local") => None,
                Some(url) if url.starts_with("redis://") => Some(url.to_owned()),
                Some(_) => return Err(ConfigError::Invalid("bus must be redis://host:port")),
            },
            bus_queue: self.bus_queue.unwrap_or(65_536).max(1),
            proxy_protocol: self.proxy_protocol.unwrap_or(false),
            mysql_connect_timeout: Duration::from_millis(
                self.mysql_connect_timeout_ms.unwrap_or(30_000),
            ),
            mysql_lock_wait_secs: self.mysql_lock_wait_secs.unwrap_or(5).max(1),
            node_id,
            log_format: self.log_format.unwrap_or_default(),
            max_frame_bytes,
            hello_timeout: Duration::from_millis(self.hello_timeout_ms.unwrap_or(5000)),
            heartbeat_ms,
            idle_timeout_ms,
            max_body_bytes,
            max_page: nonzero(self.max_page.unwrap_or(200), "max_page must be positive")?,
            max_group_members: nonzero(
                self.max_group_members.unwrap_or(2000),
                "max_group_members must be positive",
            )?,
            max_pending_friend_requests: nonzero(
                self.max_pending_friend_requests.unwrap_or(200),
                "max_pending_friend_requests must be positive",
            )?,
            max_blocked: nonzero(
                self.max_blocked.unwrap_or(1000),
                "max_blocked must be positive",
            )?,
            friend_request_cooldown: Duration::from_millis(
                self.friend_request_cooldown_ms.unwrap_or(86_400_000),
            ),
            max_in_flight: nonzero(
                self.max_in_flight.unwrap_or(32),
                "max_in_flight must be positive",
            )?,
            requests_per_second: nonzero(
                self.requests_per_second.unwrap_or(200),
                "requests_per_second must be positive",
            )?,
            request_burst: nonzero(
                self.request_burst.unwrap_or(400),
                "request_burst must be positive",
            )?,
            auth_per_ip_per_minute: nonzero(
                self.auth_per_ip_per_minute.unwrap_or(60),
                "auth_per_ip_per_minute must be positive",
            )?,
            auth_per_name_per_minute: nonzero(
                self.auth_per_name_per_minute.unwrap_or(10),
                "auth_per_name_per_minute must be positive",
            )?,
            outbound_queue: self.outbound_queue.unwrap_or(1024).max(16),
            write_timeout: Duration::from_millis(self.write_timeout_ms.unwrap_or(10_000)),
            max_connections: self.max_connections.unwrap_or_else(default_max_connections),
            recall_window_ms: self.recall_window_ms.unwrap_or(120_000),
            hash_concurrency: self.hash_concurrency.unwrap_or(2).max(1),
            batch_max: self.batch_max.unwrap_or(512).max(1),
            shutdown_grace: Duration::from_millis(self.shutdown_grace_ms.unwrap_or(5000)),
            token_grace_ms: self.token_grace_ms.unwrap_or(60_000),
            session_idle: Duration::from_secs(
                u64::from(nonzero(
                    self.session_idle_days.unwrap_or(90),
                    "session_idle_days must be positive",
                )?) * 86_400,
            ),
            registration: self.registration.unwrap_or(if listen.ip().is_loopback() {
                Registration::Open
            } else {
                Registration::Invite
            }),
            deleted_name_hold: Duration::from_secs(
                u64::from(self.deleted_name_hold_days.unwrap_or(30)) * 86_400,
            ),
            search_index: self.search_index.unwrap_or(true),
            metrics_listen: self.metrics_listen,
            search_per_minute: nonzero(
                self.search_per_minute.unwrap_or(60),
                "search_per_minute must be positive",
            )?,
            admins: self
                .admin
                .unwrap_or_default()
                .iter()
                .map(|n| crate::store::ops::fold(n.trim()))
                .filter(|k| !k.is_empty())
                .collect(),
        })
    }
}

/// Connections the open-file limit allows, keeping 64 descriptors for the store, logs and
/// listeners.
pub fn default_max_connections() -> usize {
    let soft = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft);
    usize::try_from(soft.saturating_sub(64))
        .unwrap_or(usize::MAX)
        .max(16)
}

impl Config {
    /// Defaults for everything (tests start from this).
    pub fn defaults() -> Result<Config, ConfigError> {
        Settings::default().finish()
    }

    /// Whether the listener speaks TLS.
    pub fn tls(&self) -> bool {
        self.tls_self_signed || (self.tls_cert.is_some() && self.tls_key.is_some())
    }

    /// Secure by default: plain text only on loopback, unless `plaintext` says a TLS-terminating
    /// balancer is in front.
    pub fn check_transport(&self) -> Result<(), ConfigError> {
        if !self.tls() && !self.plaintext && !self.listen.ip().is_loopback() {
            return Err(ConfigError::PlaintextNotLoopback(self.listen));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        let mut argv = vec!["confab-server"];
        argv.extend_from_slice(args);
        Settings::try_parse_from(argv)
            .map_err(|_| ConfigError::Invalid("bad flags"))?
            .finish()
    }

    #[test]
    fn cluster_settings() {
        let alone = parse(&[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(alone.bus_url, None);
        assert!(!alone.proxy_protocol);
        let member = parse(&[
            "--bus",
            "redis://10.0.0.6:6379",
            "--node-id",
            "7",
            "--proxy-protocol",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(member.bus_url.as_deref(), Some("redis://10.0.0.6:6379"));
        assert_eq!(member.node_id, 7);
        assert!(member.proxy_protocol);
        assert!(parse(&["--proxy-protocol", "false"]).is_ok_and(|c| !c.proxy_protocol));
        assert!(parse(&["--bus", "nats://x:4222"]).is_err());
        let file: Settings = toml::from_str("bus = \"redis://r:6379\"\nproxy_protocol = true\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let from_file = Settings::default()
            .or(file)
            .finish()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(from_file.bus_url.as_deref(), Some("redis://r:6379"));
        assert!(from_file.proxy_protocol);
    }

    #[test]
    fn token_grace() {
        assert_eq!(parse(&[]).map(|c| c.token_grace_ms).ok(), Some(60_000));
        assert_eq!(
            parse(&["--token-grace-ms", "1000"])
                .map(|c| c.token_grace_ms)
                .ok(),
            Some(1000)
        );
        let file: Settings =
            toml::from_str("token_grace_ms = 2500\n").unwrap_or_else(|e| panic!("{e}"));
        let from_file = Settings::default()
            .or(file)
            .finish()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(from_file.token_grace_ms, 2500);
    }

    #[test]
    fn transport_settings() {
        let plain = parse(&[]).unwrap_or_else(|e| panic!("{e}"));
        assert!(!plain.tls() && plain.check_transport().is_ok());
        let open = parse(&["--listen", "0.0.0.0:7000"]).unwrap_or_else(|e| panic!("{e}"));
        let err = open.check_transport().err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "refusing to listen in plain text on 0.0.0.0:7000, which is not a loopback \
                 address: give --tls-cert and --tls-key, or --tls-self-signed, or --plaintext if \
                 a TLS-terminating balancer is in front"
            )
        );
        let behind =
            parse(&["--listen", "10.0.0.11:7101", "--plaintext"]).unwrap_or_else(|e| panic!("{e}"));
        assert!(behind.plaintext && behind.check_transport().is_ok());
        let v6 = parse(&["--listen", "[::1]:7000"]).unwrap_or_else(|e| panic!("{e}"));
        assert!(v6.check_transport().is_ok());
        let tls = parse(&[
            "--listen",
            "0.0.0.0:7000",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(tls.tls() && tls.check_transport().is_ok());
        let selfsigned = parse(&["--listen", "[::]:7000", "--tls-self-signed"])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(selfsigned.tls() && selfsigned.check_transport().is_ok());
        assert!(parse(&["--tls-cert", "c.pem"]).is_err());
        assert!(parse(&["--tls-key", "k.pem"]).is_err());
        assert!(parse(&["--tls-self-signed", "--tls-cert", "c", "--tls-key", "k"]).is_err());
        assert!(parse(&["--tls-self-signed", "--plaintext"]).is_err());
        let file: Settings = toml::from_str(
            "tls_cert = \"/etc/confab/cert.pem\"\ntls_key = \"/etc/confab/key.pem\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let from_file = Settings::default()
            .or(file)
            .finish()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            from_file.tls_key.as_deref(),
            Some(std::path::Path::new("/etc/confab/key.pem"))
        );
        let cmd = Settings::try_parse_from(["confab-server", "fingerprint", "--data-dir", "d"])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cmd.command, Some(Command::Fingerprint));
        assert_eq!(cmd.data_dir.as_deref(), Some(std::path::Path::new("d")));
        let cmd = Settings::try_parse_from(["confab-server", "--tls-self-signed", "fingerprint"])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (cmd.command, cmd.tls_self_signed),
            (Some(Command::Fingerprint), Some(true))
        );
        assert!(parse(&["--tls-self-signed=false"]).is_ok_and(|c| !c.tls()));
    }

    #[test]
    fn metrics_listen_is_loopback_unless_public() {
        assert_eq!(parse(&[]).map(|c| c.metrics_listen).ok(), Some(None));
        let local = parse(&["--metrics-listen", "127.0.0.1:9100"]).map(|c| c.metrics_listen);
        assert_eq!(
            local.ok().flatten(),
            Some(SocketAddr::from(([127, 0, 0, 1], 9100)))
        );
        let open = parse(&["--metrics-listen", "0.0.0.0:9100"])
            .err()
            .map(|e| e.to_string());
        assert!(open.is_some_and(|e| e.starts_with("refusing to serve metrics on 0.0.0.0:9100")));
        assert!(parse(&["--metrics-listen", "[::]:9100", "--metrics-public"]).is_ok());
        let file: Settings = toml::from_str("metrics_listen = \"10.0.0.5:9100\"\n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(Settings::default().or(file).finish().is_err());
    }

    #[test]
    fn frames_hold_any_single_item() {
        // A page item (a thread with its group and a last message) must fit a frame alone.
        assert!(parse(&["--max-frame-bytes", "4096", "--max-body-bytes", "1024"]).is_err());
        assert!(parse(&["--max-frame-bytes", "8192", "--max-body-bytes", "4097"]).is_err());
        let small = parse(&["--max-frame-bytes", "8192", "--max-body-bytes", "4096"])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((small.max_frame_bytes, small.max_body_bytes), (8192, 4096));
    }
}
