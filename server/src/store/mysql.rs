//! The MySQL / MariaDB backend (mysql_async): prepared statements only, the same operations as
//! the embedded store, and the same group-commit writer shape: one writer task on one pooled
//! connection runs queued jobs in one transaction (a savepoint each) and commits once. Reads run
//! on pooled connections. A lost connection fails the batch with `Unavailable` (nothing of it was
//! acked) and the writer takes a fresh connection, waiting with backoff while MySQL is down.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use super::schema::SCHEMA_VERSION;
use super::{
    Backend, BoxFut, Counter, Dialect, Param, ReadJob, Row, SendSeq, StoreError, StoreResult, Tx,
    Value, WriteJob, WriterStats,
};

/// The MySQL schema, applied when its tables are missing.
pub const MYSQL_SCHEMA: &str = include_str!("../../../schema.sql");

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

/// A batch at least this big runs without lingering (see [`MysqlConfig::linger`]).
const LINGER_BELOW: usize = 64;

/// ER_LOCK_DEADLOCK: InnoDB rolled the whole transaction back.
const ER_LOCK_DEADLOCK: u16 = 1213;
/// ER_LOCK_WAIT_TIMEOUT: the statement was rolled back (the transaction too, with
/// `innodb_rollback_on_timeout`).
const ER_LOCK_WAIT_TIMEOUT: u16 = 1205;
/// How many times a batch is run before its jobs are answered `UNAVAILABLE`.
const BATCH_ATTEMPTS: u32 = 4;

fn map_err(e: mysql_async::Error) -> StoreError {
    if let mysql_async::Error::Server(s) = &e
        && s.code == 1062
    {
        return StoreError::Duplicate;
    }
    StoreError::Unavailable(e.to_string())
}

/// The error code when MySQL rolled back (part of) a transaction that is worth running again.
fn rollback_code(e: &mysql_async::Error) -> Option<u16> {
    match e {
        mysql_async::Error::Server(s)
            if s.code == ER_LOCK_DEADLOCK || s.code == ER_LOCK_WAIT_TIMEOUT =>
        {
            Some(s.code)
        }
        _ => None,
    }
}

fn to_value(p: &Param<'_>) -> mysql_async::Value {
    match *p {
        Param::Null => mysql_async::Value::NULL,
        Param::Int(v) => mysql_async::Value::Int(v),
        Param::Text(s) => mysql_async::Value::Bytes(s.as_bytes().to_vec()),
        Param::Blob(b) => mysql_async::Value::Bytes(b.to_vec()),
    }
}

fn params(ps: &[Param<'_>]) -> mysql_async::Params {
    if ps.is_empty() {
        mysql_async::Params::Empty
    } else {
        mysql_async::Params::Positional(ps.iter().map(to_value).collect())
    }
}

fn from_value(v: mysql_async::Value) -> Value {
    match v {
        mysql_async::Value::NULL => Value::Null,
        mysql_async::Value::Int(i) => Value::Int(i),
        mysql_async::Value::UInt(u) => Value::Int(i64::try_from(u).unwrap_or(i64::MAX)),
        mysql_async::Value::Bytes(b) => Value::Blob(b),
        mysql_async::Value::Float(f) => Value::Int(f as i64),
        mysql_async::Value::Double(f) => Value::Int(f as i64),
        other => Value::Text(format!("{other:?}")),
    }
}

/// A pooled MySQL connection usable as a [`Tx`].
pub struct MysqlConn {
    conn: Conn,
    /// In the writer's batch transaction. With `savepoints`, a savepoint is set before a job's
    /// first write, so a job that fails before writing (most refusals) costs no savepoint round
    /// trip; a batch runs without them first (see [`run_batch`]).
    in_batch: bool,
    savepoints: bool,
    savepoint_set: bool,
    /// The current job ran a data-changing statement.
    wrote: bool,
    /// Set when MySQL rolled back the batch's transaction (deadlock, lock wait timeout): every
    /// later statement of the batch fails without reaching the server, where it would run
    /// outside any transaction, and the writer runs the batch again.
    aborted: Option<u16>,
}

impl MysqlConn {
    fn new(conn: Conn) -> Self {
        Self {
            conn,
            in_batch: false,
            savepoints: false,
            savepoint_set: false,
            wrote: false,
            aborted: None,
        }
    }

    /// Refuses statements once the batch was rolled back.
    fn check(&self) -> StoreResult<()> {
        match self.aborted {
            Some(code) => Err(StoreError::Unavailable(format!(
                "the transaction was rolled back (MySQL error {code})"
            ))),
            None => Ok(()),
        }
    }

    /// Maps a failed statement, noting a rollback of the batch.
    fn fail(&mut self, e: mysql_async::Error) -> StoreError {
        if self.in_batch
            && let Some(code) = rollback_code(&e)
        {
            self.aborted = Some(code);
        }
        map_err(e)
    }

    async fn before_write(&mut self) -> StoreResult<()> {
        self.check()?;
        if self.in_batch && self.savepoints && !self.savepoint_set {
            // A savepoint of the same name replaces the previous job's, so none is released.
            if let Err(e) = self.conn.query_drop("SAVEPOINT job").await {
                return Err(self.fail(e));
            }
            self.savepoint_set = true;
        }
        Ok(())
    }

    /// Runs a data-changing statement (after the job's savepoint, if one is due).
    async fn write(&mut self, sql: &'static str, ps: &[Param<'_>]) -> StoreResult<()> {
        self.before_write().await?;
        match self.conn.exec_drop(sql, params(ps)).await {
            // A failed statement is undone alone by InnoDB; one that changed no row wrote
            // nothing either.
            Ok(()) => {
                self.wrote |= self.conn.affected_rows() > 0;
                Ok(())
            }
            Err(e) => Err(self.fail(e)),
        }
    }
}

impl Tx for MysqlConn {
    fn dialect(&self) -> Dialect {
        Dialect::Mysql
    }

    fn exec<'a>(
        &'a mut self,
        sql: &'static str,
        ps: &'a [Param<'a>],
    ) -> BoxFut<'a, StoreResult<u64>> {
        Box::pin(async move {
            self.write(sql, ps).await?;
            Ok(self.conn.affected_rows())
        })
    }

    fn insert<'a>(
        &'a mut self,
        sql: &'static str,
        ps: &'a [Param<'a>],
    ) -> BoxFut<'a, StoreResult<u64>> {
        Box::pin(async move {
            self.write(sql, ps).await?;
            self.conn
                .last_insert_id()
                .ok_or_else(|| StoreError::Corrupt("insert returned no id".into()))
        })
    }

    fn query<'a>(
        &'a mut self,
        sql: &'static str,
        ps: &'a [Param<'a>],
    ) -> BoxFut<'a, StoreResult<Vec<Row>>> {
        Box::pin(async move {
            self.check()?;
            let rows: Vec<mysql_async::Row> = match self.conn.exec(sql, params(ps)).await {
                Ok(rows) => rows,
                Err(e) => return Err(self.fail(e)),
            };
            Ok(rows
                .into_iter()
                .map(|r| Row(r.unwrap().into_iter().map(from_value).collect()))
                .collect())
        })
    }

    fn bump(&mut self, counter: Counter, id: u64) -> BoxFut<'_, StoreResult<Option<u64>>> {
        Box::pin(async move {
            self.before_write().await?;
            // LAST_INSERT_ID(expr) hands the new value back in the OK packet: the row update and
            // the read are one atomic statement under the row lock.
            let done = match counter {
                Counter::ThreadSeq { activity_id } => {
                    self.conn
                        .exec_drop(
                            "UPDATE threads SET last_seq = LAST_INSERT_ID(last_seq + 1), activity_id = ? WHERE id = ?",
                            params(&[Param::from(activity_id), Param::from(id)]),
                        )
                        .await
                }
                Counter::UserEvent => {
                    self.conn
                        .exec_drop(
                            "UPDATE users SET event_seq = LAST_INSERT_ID(event_seq + 1) WHERE id = ?",
                            params(&[Param::from(id)]),
                        )
                        .await
                }
            };
            if let Err(e) = done {
                return Err(self.fail(e));
            }
            if self.conn.affected_rows() == 0 {
                return Ok(None);
            }
            self.wrote = true;
            Ok(self.conn.last_insert_id())
        })
    }

    fn send_seq<'a>(&'a mut self, s: SendSeq<'a>) -> BoxFut<'a, StoreResult<Option<u64>>> {
        Box::pin(async move {
            // The membership and dedupe checks ride on the row update: one round trip.
            self.write(
                "UPDATE threads SET last_seq = LAST_INSERT_ID(last_seq + 1), activity_id = ? \
                 WHERE id = ? \
                 AND EXISTS (SELECT 1 FROM thread_members \
                             WHERE thread_id = ? AND user_id = ? AND active = 1) \
                 AND NOT EXISTS (SELECT 1 FROM messages \
                                 WHERE sender_device_id = ? AND client_msg_id = ?)",
                &[
                    Param::from(s.activity_id),
                    Param::from(s.thread_id),
                    Param::from(s.thread_id),
                    Param::from(s.user_id),
                    Param::from(s.device_id),
                    Param::Text(s.client_msg_id),
                ],
            )
            .await?;
            if self.conn.affected_rows() == 0 {
                return Ok(None);
            }
            Ok(self.conn.last_insert_id())
        })
    }
}

#[derive(Default)]
struct Stats {
    batches: AtomicU64,
    jobs: AtomicU64,
    failed_commits: AtomicU64,
    retried_batches: AtomicU64,
    sent_together: AtomicU64,
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
    super::schema::check_version(found.flatten())
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

async fn run(conn: &mut Conn, sql: &'static str) -> Result<(), mysql_async::Error> {
    conn.query_drop(sql).await
}

/// A writer connection: a pooled one with the writer's lock wait timeout, autocommit off (see
/// [`run_batch`]; the pool resets the session when a connection goes back to it), in READ
/// COMMITTED.
/// Every check a write depends on is a locking read or rides on the row update it guards (a
/// send's thread row lock orders it against every other entry of that thread), so the
/// repeatable-read snapshot buys nothing; its gap locks, taken by the dedupe probes, would
/// make writers wait on each other's unrelated sends.
async fn writer_conn(pool: &Pool, lock_wait_secs: u32) -> Result<MysqlConn, mysql_async::Error> {
    let mut conn = pool.get_conn().await?;
    // Back in the pool it must be a plain session again.
    conn.reset_connection(true);
    conn.exec_drop(
        "SET SESSION innodb_lock_wait_timeout = ?",
        (i64::from(lock_wait_secs),),
    )
    .await?;
    conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        .await?;
    conn.query_drop("SET SESSION autocommit = 0").await?;
    Ok(MysqlConn::new(conn))
}

/// How one run of a batch ended.
enum BatchEnd {
    Committed,
    /// MySQL rolled the transaction back (deadlock or lock wait timeout): worth another run.
    RolledBack(u16),
    /// A job failed after writing in a run without savepoints: run again with them.
    NeedsSavepoints,
    /// The connection or the transaction failed otherwise; nothing was committed.
    Failed(StoreError),
}

/// Runs every job of the batch in one transaction and commits. Without `savepoints` (the first
/// run: one round trip fewer per job), a job that fails after writing cannot be undone alone,
/// so the batch is rolled back and must run again with them. Returns the connection when it is
/// still usable.
async fn run_batch(
    mut c: MysqlConn,
    batch: &mut [WriteJob<MysqlConn>],
    again: bool,
    savepoints: bool,
    stats: &Stats,
) -> (Option<MysqlConn>, BatchEnd) {
    // The writer session runs with autocommit off: the batch's transaction begins with its
    // first statement (no START TRANSACTION round trip) and ends at COMMIT or ROLLBACK.
    c.in_batch = true;
    c.savepoints = savepoints;
    c.aborted = None;
    let mut broken = false;
    let mut redo = false;
    let mut k = 0;
    while k < batch.len() {
        // A run of text sends is stored together (first run only: a run with savepoints is
        // a retry after something failed, and goes one job at a time).
        let end = if savepoints {
            k
        } else {
            (k..batch.len())
                .find(|&j| batch[j].text_send().is_none())
                .unwrap_or(batch.len())
        };
        if end - k >= 2 {
            c.wrote = false;
            let (back, outcome) = send_run(c, &mut batch[k..end], again, stats).await;
            c = back;
            match outcome {
                RunEnd::Done => {
                    k = end;
                    continue;
                }
                // Something in the run may be written: the batch runs again without runs.
                RunEnd::Undo => {
                    redo = true;
                    break;
                }
                RunEnd::Aborted => break,
            }
        }
        let job = &mut batch[k];
        k += 1;
        c.savepoint_set = false;
        c.wrote = false;
        let ok = job.run(&mut c, again).await;
        if c.aborted.is_some() || ok {
            if c.aborted.is_some() {
                break;
            }
            continue;
        }
        if !savepoints {
            if c.wrote {
                redo = true;
                break;
            }
        } else if c.savepoint_set && run(&mut c.conn, "ROLLBACK TO SAVEPOINT job").await.is_err() {
            broken = true;
            break;
        }
    }
    c.in_batch = false;
    if let Some(code) = c.aborted.take() {
        // A lock wait timeout leaves the transaction open: end it before running again.
        return match run(&mut c.conn, "ROLLBACK").await {
            Ok(()) => (Some(c), BatchEnd::RolledBack(code)),
            Err(_) => (None, BatchEnd::RolledBack(code)),
        };
    }
    if redo {
        return match run(&mut c.conn, "ROLLBACK").await {
            Ok(()) => (Some(c), BatchEnd::NeedsSavepoints),
            Err(e) => (None, BatchEnd::Failed(map_err(e))),
        };
    }
    if broken {
        let _ = run(&mut c.conn, "ROLLBACK").await;
        return (
            None,
            BatchEnd::Failed(StoreError::Unavailable("the transaction failed".into())),
        );
    }
    match run(&mut c.conn, "COMMIT").await {
        Ok(()) => (Some(c), BatchEnd::Committed),
        Err(e) => match rollback_code(&e) {
            Some(code) => (Some(c), BatchEnd::RolledBack(code)),
            None => (None, BatchEnd::Failed(map_err(e))),
        },
    }
}

/// How a run of sends ended.
enum RunEnd {
    Done,
    /// A statement failed after the run wrote: the batch must be rolled back.
    Undo,
    /// MySQL rolled the transaction back (`aborted` is set).
    Aborted,
}

/// Stores a run of text sends with [`send_many`](super::ops::messages::send_many), then runs
/// the sends it left to the single path (retries and refusals, which fail before writing).
async fn send_run(
    mut c: MysqlConn,
    jobs: &mut [WriteJob<MysqlConn>],
    again: bool,
    stats: &Stats,
) -> (MysqlConn, RunEnd) {
    let reqs: Vec<Arc<super::ops::messages::SendReq>> = jobs
        .iter()
        .filter_map(|j| j.text_send().map(|(r, _)| r.clone()))
        .collect();
    let Some(ids) = jobs
        .first()
        .and_then(|j| j.text_send().map(|(_, ids)| ids.clone()))
    else {
        return (c, RunEnd::Done);
    };
    let refs: Vec<&super::ops::messages::SendReq> = reqs.iter().map(|r| r.as_ref()).collect();
    let stored = match super::ops::messages::send_many(&mut c, &ids, &refs).await {
        Ok(stored) => stored,
        Err(e) if c.aborted.is_some() => {
            warn!(error = %e, "a run of sends was rolled back by MySQL");
            return (c, RunEnd::Aborted);
        }
        Err(e) => {
            warn!(error = %e, sends = jobs.len(), "storing a run of sends together failed; running the batch again one by one");
            return (c, RunEnd::Undo);
        }
    };
    // Counted per run: a batch run again counts its runs again.
    let together = stored.iter().filter(|s| s.is_some()).count();
    stats
        .sent_together
        .fetch_add(together as u64, Ordering::Relaxed);
    for (job, sent) in jobs.iter_mut().zip(stored) {
        if let Some(sent) = sent {
            job.sent_together(sent);
            continue;
        }
        c.savepoint_set = false;
        c.wrote = false;
        let ok = job.run(&mut c, again).await;
        if c.aborted.is_some() {
            return (c, RunEnd::Aborted);
        }
        if !ok && c.wrote {
            return (c, RunEnd::Undo);
        }
    }
    (c, RunEnd::Done)
}

/// Pause before running a rolled-back batch again: exponential with full jitter, so writers
/// that deadlocked each other do not collide again in step.
fn retry_delay(attempt: u32) -> Duration {
    let cap_ms = 10u64 << attempt.min(6);
    Duration::from_millis(rand::random_range(1..=cap_ms))
}

async fn writer_loop(
    pool: Pool,
    mut rx: mpsc::Receiver<WriteJob<MysqlConn>>,
    batch_max: usize,
    linger: Duration,
    lock_wait_secs: u32,
    stats: Arc<Stats>,
) {
    let mut conn: Option<MysqlConn> = None;
    let mut batch: Vec<WriteJob<MysqlConn>> = Vec::with_capacity(batch_max);
    let drain = |rx: &mut mpsc::Receiver<WriteJob<MysqlConn>>, batch: &mut Vec<_>| {
        while batch.len() < batch_max {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
    };
    while let Some(first) = rx.recv().await {
        batch.push(first);
        drain(&mut rx, &mut batch);
        if !linger.is_zero() && batch.len() < LINGER_BELOW.min(batch_max) {
            tokio::time::sleep(linger).await;
            drain(&mut rx, &mut batch);
        }
        let mut attempt = 1;
        let mut savepoints = false;
        let mut pause = false;
        let committed = loop {
            // (Re)connect; while MySQL is down, the waiting jobs fail fast with Unavailable.
            let c = match conn.take() {
                Some(c) => c,
                None => match writer_conn(&pool, lock_wait_secs).await {
                    Ok(c) => c,
                    Err(e) => {
                        warn!(error = %e, jobs = batch.len(), "MySQL unavailable; failing the batch");
                        pause = true;
                        break Err(map_err(e));
                    }
                },
            };
            // A run without savepoints may be followed by one with them.
            let again = !savepoints || attempt < BATCH_ATTEMPTS;
            let (back, end) = run_batch(c, &mut batch, again, savepoints, &stats).await;
            conn = back;
            match end {
                BatchEnd::Committed => break Ok(()),
                BatchEnd::NeedsSavepoints => {
                    stats.retried_batches.fetch_add(1, Ordering::Relaxed);
                    savepoints = true;
                }
                BatchEnd::Failed(e) => break Err(e),
                BatchEnd::RolledBack(code) if attempt < BATCH_ATTEMPTS => {
                    stats.retried_batches.fetch_add(1, Ordering::Relaxed);
                    let wait = retry_delay(attempt);
                    warn!(
                        code,
                        attempt,
                        jobs = batch.len(),
                        retry_in_ms = wait.as_millis() as u64,
                        "MySQL rolled the batch back (deadlock or lock wait timeout); running it again"
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                BatchEnd::RolledBack(code) => {
                    break Err(StoreError::Unavailable(format!(
                        "MySQL rolled the batch back {attempt} times (error {code})"
                    )));
                }
            }
        };
        if let Err(err) = &committed {
            error!(%err, jobs = batch.len(), "commit failed; the batch is answered as unavailable");
            stats.failed_commits.fetch_add(1, Ordering::Relaxed);
        }
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats.jobs.fetch_add(batch.len() as u64, Ordering::Relaxed);
        for job in batch.drain(..) {
            job.complete(committed.clone());
        }
        if pause {
            // Do not spin on connection attempts while MySQL is down.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
