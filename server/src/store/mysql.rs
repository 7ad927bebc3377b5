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
    Backend, BoxFut, Counter, Dialect, Param, ReadJob, Row, StoreError, StoreResult, Tx, Value,
    WriteJob, WriterStats,
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
    /// How long to keep retrying the first connection at start.
    pub connect_timeout: Duration,
}

impl MysqlConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pool_size: 16,
            writers: 4,
            batch_max: 512,
            queue: 16_384,
            connect_timeout: Duration::from_secs(30),
        }
    }
}

fn map_err(e: mysql_async::Error) -> StoreError {
    if let mysql_async::Error::Server(s) = &e
        && s.code == 1062
    {
        return StoreError::Duplicate;
    }
    StoreError::Unavailable(e.to_string())
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
    /// In the writer's batch transaction: a savepoint is set before a job's first write, so a
    /// job that fails before writing (most refusals) costs no savepoint round trip.
    in_batch: bool,
    savepoint_set: bool,
}

impl MysqlConn {
    fn new(conn: Conn) -> Self {
        Self {
            conn,
            in_batch: false,
            savepoint_set: false,
        }
    }

    async fn before_write(&mut self) -> StoreResult<()> {
        if self.in_batch && !self.savepoint_set {
            // A savepoint of the same name replaces the previous job's, so none is released.
            self.conn
                .query_drop("SAVEPOINT job")
                .await
                .map_err(map_err)?;
            self.savepoint_set = true;
        }
        Ok(())
    }

    /// Runs a data-changing statement (after the job's savepoint, if one is due).
    async fn write(&mut self, sql: &'static str, ps: &[Param<'_>]) -> StoreResult<()> {
        self.before_write().await?;
        self.conn.exec_drop(sql, params(ps)).await.map_err(map_err)
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
            let rows: Vec<mysql_async::Row> =
                self.conn.exec(sql, params(ps)).await.map_err(map_err)?;
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
            match counter {
                Counter::ThreadSeq { activity_id } => {
                    self.conn
                        .exec_drop(
                            "UPDATE threads SET last_seq = LAST_INSERT_ID(last_seq + 1), activity_id = ? WHERE id = ?",
                            params(&[Param::from(activity_id), Param::from(id)]),
                        )
                        .await
                        .map_err(map_err)?;
                }
                Counter::UserEvent => {
                    self.conn
                        .exec_drop(
                            "UPDATE users SET event_seq = LAST_INSERT_ID(event_seq + 1) WHERE id = ?",
                            params(&[Param::from(id)]),
                        )
                        .await
                        .map_err(map_err)?;
                }
            }
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
}

/// The MySQL backend.
pub struct MysqlBackend {
    pool: Pool,
    writes: Vec<mpsc::Sender<WriteJob<MysqlConn>>>,
    stats: Arc<Stats>,
}

impl MysqlBackend {
    /// Connects (retrying with backoff up to `connect_timeout`), applies the schema when its
    /// tables are missing, and starts the writer. Needs a tokio runtime.
    pub async fn open(cfg: &MysqlConfig) -> StoreResult<Self> {
        let opts = Opts::from_url(&cfg.url)
            .map_err(|e| StoreError::Unavailable(format!("bad MySQL URL: {e}")))?;
        let writers = cfg.writers.max(1);
        let pool_size = cfg.pool_size.max(writers + 1);
        let constraints = PoolConstraints::new(1, pool_size)
            .ok_or_else(|| StoreError::Unavailable("bad pool size".into()))?;
        let opts = OptsBuilder::from_opts(opts)
            .stmt_cache_size(256)
            .pool_opts(PoolOpts::default().with_constraints(constraints));
        let pool = Pool::new(opts);

        let deadline = tokio::time::Instant::now() + cfg.connect_timeout;
        let mut delay = Duration::from_millis(200);
        let mut conn = loop {
            match pool.get_conn().await {
                Ok(c) => break c,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    warn!(error = %e, retry_in = ?delay, "MySQL is not reachable yet");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    return Err(StoreError::Unavailable(format!(
                        "cannot reach MySQL after {:?}: {e}",
                        cfg.connect_timeout
                    )));
                }
            }
        };
        apply_schema(&mut conn).await?;
        info!("MySQL store ready");
        drop(conn);
        let stats = Arc::new(Stats::default());
        let mut writes = Vec::with_capacity(writers);
        for _ in 0..writers {
            let (tx, rx) = mpsc::channel(cfg.queue.max(1));
            tokio::spawn(writer_loop(
                pool.clone(),
                rx,
                cfg.batch_max.max(1),
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

async fn apply_schema(conn: &mut Conn) -> StoreResult<()> {
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
        }
    }
}

async fn run(conn: &mut Conn, sql: &'static str) -> Result<(), mysql_async::Error> {
    conn.query_drop(sql).await
}

async fn writer_loop(
    pool: Pool,
    mut rx: mpsc::Receiver<WriteJob<MysqlConn>>,
    batch_max: usize,
    stats: Arc<Stats>,
) {
    let mut conn: Option<MysqlConn> = None;
    let mut batch = Vec::with_capacity(batch_max);
    let mut done: Vec<Box<dyn FnOnce(StoreResult<()>) + Send>> = Vec::with_capacity(batch_max);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < batch_max {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // (Re)connect; while MySQL is down, the waiting jobs fail fast with Unavailable.
        let mut c = match conn.take() {
            Some(c) => c,
            None => match pool.get_conn().await {
                Ok(c) => MysqlConn::new(c),
                Err(e) => {
                    warn!(error = %e, jobs = batch.len(), "MySQL unavailable; failing the batch");
                    batch.clear();
                    stats.failed_commits.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
        };
        if let Err(e) = run(&mut c.conn, "START TRANSACTION").await {
            error!(error = %e, "cannot begin a write transaction");
            batch.clear();
            stats.failed_commits.fetch_add(1, Ordering::Relaxed);
            continue; // the connection is dropped; the next batch takes a new one
        }
        let mut broken = false;
        c.in_batch = true;
        for job in batch.drain(..) {
            c.savepoint_set = false;
            let (back, ok, completion) = job(c).await;
            c = back;
            if !ok
                && c.savepoint_set
                && run(&mut c.conn, "ROLLBACK TO SAVEPOINT job").await.is_err()
            {
                broken = true;
            }
            done.push(completion);
        }
        c.in_batch = false;
        let committed = if broken {
            let _ = run(&mut c.conn, "ROLLBACK").await;
            Err(StoreError::Unavailable("the transaction failed".into()))
        } else {
            run(&mut c.conn, "COMMIT").await.map_err(map_err)
        };
        if let Err(err) = &committed {
            error!(%err, jobs = done.len(), "commit failed; the batch is answered as unavailable");
            stats.failed_commits.fetch_add(1, Ordering::Relaxed);
        } else {
            conn = Some(c);
        }
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats.jobs.fetch_add(done.len() as u64, Ordering::Relaxed);
        for completion in done.drain(..) {
            completion(committed.clone());
        }
    }
}
