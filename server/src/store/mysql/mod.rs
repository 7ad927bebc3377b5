//! The MySQL / MariaDB backend (mysql_async): prepared statements only, the same operations as
//! the embedded store, and the same group-commit shape: `--mysql-writers` writer tasks
//! ([`writer`]), each on its own connection, with writes routed by thread id so one thread's
//! entries keep their order. A writer runs its batch as one transaction and commits once
//! (savepoints only when a batch must run again); runs of text sends are stored together in a few
//! statements. Reads run on pooled connections ([`conn`]). A lost connection fails the batch with
//! `Unavailable` (nothing of it was acked) and the writer takes a fresh connection, waiting with
//! backoff while MySQL is down.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::schema::SCHEMA_VERSION;
use super::{Backend, ReadJob, StoreError, StoreResult, WriteJob, WriterStats};

mod conn;
mod writer;
pub use conn::MysqlConn;
use conn::*;
use writer::*;

/// The MySQL schema, applied when its tables are missing.
pub const MYSQL_SCHEMA: &str = include_str!("../../../../schema.sql");

/// Settings of the MySQL store.
#[derive(Debug, Clone)]
pub struct MysqlConfig {
    /// `mysql://user:password@host:port/db`
    pub url: String,
    pub pool_size: usize,
    /// Writer connections, each with its own group-commit batches; writes are routed by thread
    /// so one thread's entries keep their order and rarely contend for its row.
    pub writers: usize,
    pub batch_max: usize,
    pub queue: usize,
    /// How long a writer that found only a few writes waiting (fewer than [`LINGER_BELOW`])
    /// waits for more before running them. Each batch costs MySQL a fixed handful of
    /// statements and a commit, so on a busy node a millisecond here buys bigger batches and
    /// less MySQL CPU per write; on an idle one it adds that millisecond to a send.
    pub linger: Duration,
    /// How long to keep retrying the first connection at start.
    pub connect_timeout: Duration,
    /// `innodb_lock_wait_timeout` of the writer connections, in seconds: a writer stuck behind
    /// a row lock holds up every send routed to it, so it gives up sooner than InnoDB's 50 s
    /// default and runs its batch again.
    pub lock_wait_secs: u32,
}

impl MysqlConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pool_size: 16,
            writers: 2,
            batch_max: 512,
            queue: 16_384,
            linger: Duration::from_millis(1),
            connect_timeout: Duration::from_secs(30),
            lock_wait_secs: 5,
        }
    }
}

/// The MySQL backend.
pub struct MysqlBackend {
    pool: Pool,
    writes: Vec<mpsc::Sender<WriteJob<MysqlConn>>>,
    stats: Arc<Stats>,
}

/// Server errors that another attempt cannot fix (bad credentials, no such database).
fn permanent(e: &mysql_async::Error) -> bool {
    matches!(
        e,
        mysql_async::Error::Server(_) | mysql_async::Error::Url(_)
    )
}

impl MysqlBackend {
    /// Connects (retrying with backoff up to `connect_timeout`), applies the schema when its
    /// tables are missing, and starts the writer. Needs a tokio runtime.
    pub async fn open(cfg: &MysqlConfig) -> StoreResult<Self> {
        let opts = Opts::from_url(&cfg.url)
            .map_err(|e| StoreError::Unavailable(format!("bad MySQL URL: {e}")))?;
        // For logs: where, never the password.
        let addr = format!("{}:{}", opts.ip_or_hostname(), opts.tcp_port());
        let writers = cfg.writers.max(1);
        let pool_size = cfg.pool_size.max(writers + 1);
        let constraints = PoolConstraints::new(1, pool_size)
            .ok_or_else(|| StoreError::Unavailable("bad pool size".into()))?;
        // No session reset when a reader's connection goes back to the pool: the reset drops
        // the connection's prepared statements, so every read paid a re-prepare (and the reset
        // a round trip). Readers change no session state; writers do, and opt back in.
        let opts = OptsBuilder::from_opts(opts).stmt_cache_size(256).pool_opts(
            PoolOpts::default()
                .with_constraints(constraints)
                .with_reset_connection(false)
                // With the default (0) the pool keeps only `min` idle connections and
                // closes every other one as it comes back: concurrent reads then paid a
                // connect, a login and their prepares each (~1,600 connects/s in a busy
                // group run). Idle connections now stay up to `max` for a minute.
                .with_inactive_connection_ttl(Duration::from_secs(60)),
        );
        let pool = Pool::new(opts);

        let started = tokio::time::Instant::now();
        let deadline = started + cfg.connect_timeout;
        let mut delay = Duration::from_millis(200);
        let mut attempt = 1u32;
        let mut conn = loop {
            // An address that drops packets would otherwise hang the attempt.
            let outcome = tokio::time::timeout_at(deadline, pool.get_conn()).await;
            let e = match outcome {
                Ok(Ok(c)) => break c,
                Ok(Err(e)) if permanent(&e) => {
                    return Err(StoreError::Unavailable(format!(
                        "MySQL at {addr} refused the connection: {e}"
                    )));
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => "connection attempt timed out".to_owned(),
            };
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(StoreError::Unavailable(format!(
                    "cannot reach MySQL at {addr}: gave up after {attempt} attempts in {:.1} s; last error: {e}",
                    (now - started).as_secs_f64()
                )));
            }
            let wait = delay.min(deadline - now);
            warn!(
                %addr,
                attempt,
                error = %e,
                retry_in_ms = wait.as_millis() as u64,
                "MySQL is not reachable; retrying"
            );
            tokio::time::sleep(wait).await;
            delay = (delay * 2).min(Duration::from_secs(5));
            attempt += 1;
        };
        apply_schema(&mut conn).await?;
        info!(%addr, "MySQL store ready");
        drop(conn);
        let stats = Arc::new(Stats::default());
        let mut writes = Vec::with_capacity(writers);
        for _ in 0..writers {
            let (tx, rx) = mpsc::channel(cfg.queue.max(1));
            tokio::spawn(writer_loop(
                pool.clone(),
                rx,
                cfg.batch_max.max(1),
                cfg.linger,
                cfg.lock_wait_secs.max(1),
                stats.clone(),
            ));
            writes.push(tx);
        }
        Ok(Self {
            pool,
            writes,
            stats,
        })
    }
}

/// Applies the schema under a named lock, so nodes started together on an empty database do
/// not race: one creates the tables and records the version, the others wait, then check it.
async fn apply_schema(conn: &mut Conn) -> StoreResult<()> {
    let got: Option<Option<i64>> = conn
        .query_first("SELECT GET_LOCK(CONCAT('confab_schema:', DATABASE()), 60)")
        .await
        .map_err(map_err)?;
    if got.flatten() != Some(1) {
        return Err(StoreError::Unavailable(
            "another node held the schema lock for 60 s".into(),
        ));
    }
    let result = apply_schema_locked(conn).await;
    // The lock also ends with the session; releasing it early lets waiting nodes go on.
    if let Err(e) = conn
        .query_drop("DO RELEASE_LOCK(CONCAT('confab_schema:', DATABASE()))")
        .await
    {
        tracing::debug!(error = %e, "schema lock release failed");
    }
    result
}

async fn apply_schema_locked(conn: &mut Conn) -> StoreResult<()> {
    let present: Option<i64> = conn
        .query_first(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'schema_version'",
        )
        .await
        .map_err(map_err)?;
    if present.unwrap_or(0) == 0 {
        info!("applying the MySQL schema");
        for stmt in MYSQL_SCHEMA.split(";\n").map(str::trim) {
            let body: String = stmt
                .lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n");
            if body.trim().is_empty() {
                continue;
            }
            conn.query_drop(body).await.map_err(map_err)?;
        }
    }
    // A new database gets its version recorded; an existing one must be at this version.
    if present.unwrap_or(0) == 0 {
        conn.exec_drop(
            "INSERT INTO schema_version (version, applied_ms) VALUES (?, ?)",
            (SCHEMA_VERSION, crate::ids::now_ms()),
        )
        .await
        .map_err(map_err)?;
        return Ok(());
    }
    let found: Option<Option<i64>> = conn
        .query_first("SELECT MAX(version) FROM schema_version")
        .await
        .map_err(map_err)?;
    // Under the schema lock, so two nodes starting together migrate once.
    for step in super::schema::steps_from(found.flatten())? {
        info!(to = step.to, what = step.what, "migrating the MySQL schema");
        for stmt in step.mysql.split(";\n").map(str::trim) {
            if !stmt.is_empty() {
                conn.query_drop(stmt).await.map_err(map_err)?;
            }
        }
        conn.exec_drop(
            "INSERT IGNORE INTO schema_version (version, applied_ms) VALUES (?, ?)",
            (step.to, crate::ids::now_ms()),
        )
        .await
        .map_err(map_err)?;
    }
    Ok(())
}

impl Backend for MysqlBackend {
    type Tx = MysqlConn;

    fn submit_write(&self, key: u64, job: WriteJob<MysqlConn>) -> StoreResult<()> {
        let i = usize::try_from(key % self.writes.len() as u64).unwrap_or(0);
        self.writes[i].try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => StoreError::Busy,
            mpsc::error::TrySendError::Closed(_) => {
                StoreError::Unavailable("writer stopped".into())
            }
        })
    }

    fn submit_read(&self, job: ReadJob<MysqlConn>) -> StoreResult<()> {
        let pool = self.pool.clone();
        tokio::spawn(async move {
            match pool.get_conn().await {
                Ok(conn) => {
                    let _ = job(MysqlConn::new(conn)).await;
                }
                // Dropping the job answers its caller with Unavailable.
                Err(e) => warn!(error = %e, "no MySQL connection for a read"),
            }
        });
        Ok(())
    }

    fn stats(&self) -> WriterStats {
        WriterStats {
            batches: self.stats.batches.load(Ordering::Relaxed),
            jobs: self.stats.jobs.load(Ordering::Relaxed),
            failed_commits: self.stats.failed_commits.load(Ordering::Relaxed),
            retried_batches: self.stats.retried_batches.load(Ordering::Relaxed),
            sent_together: self.stats.sent_together.load(Ordering::Relaxed),
        }
    }
}
