//! The embedded backend: SQLite in WAL mode with `synchronous=FULL`.
//!
//! One writer thread owns the only write connection: it takes the first queued job, drains up to
//! `batch_max` more that are already waiting (no timer: batches form while the previous commit
//! is on disk), runs them in one transaction with a savepoint each, commits, then completes them.
//! Reads run on a small pool of read-only connections on their own threads; WAL lets them read a
//! consistent snapshot while the writer commits.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, ToSql};
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use super::schema::{SCHEMA_VERSION, SQLITE_SCHEMA};
use super::{
    Backend, BoxFut, Counter, Dialect, Param, ReadJob, Row, SendSeq, StoreError, StoreResult, Tx,
    Value, WriteJob, WriterStats,
};

/// Settings of the embedded store.
#[derive(Debug, Clone)]
pub struct SqliteConfig {
    pub path: PathBuf,
    /// Largest number of jobs committed in one transaction.
    pub batch_max: usize,
    /// Capacity of the write queue; a full queue answers `Busy`.
    pub queue: usize,
    /// Read connections (threads).
    pub readers: usize,
}

impl SqliteConfig {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            batch_max: 512,
            queue: 16_384,
            readers: 2,
        }
    }
}

/// A SQLite connection usable as a [`Tx`].
pub struct SqliteConn {
    conn: Connection,
    /// A data-changing statement ran since the writer last cleared this (at each job's
    /// start): a job that fails after writing must be undone.
    wrote: bool,
    /// The writer's view of `threads.last_seq` inside its transaction, so a seq allocation
    /// needs no read after its UPDATE. Only this connection writes the database and every
    /// change of `last_seq` goes through it; the writer clears this whenever it rolls anything
    /// back.
    seqs: HashMap<u64, u64>,
}

/// Threads whose last seq the writer remembers before starting over.
const SEQ_CACHE_MAX: usize = 100_000;

impl SqliteConn {
    fn new(conn: Connection) -> Self {
        Self {
            conn,
            wrote: false,
            seqs: HashMap::new(),
        }
    }

    /// The seq a successful `last_seq = last_seq + 1` on `thread_id` just allocated.
    fn bumped_seq(&mut self, thread_id: u64) -> StoreResult<u64> {
        let seq = match self.seqs.get(&thread_id) {
            Some(prev) => prev + 1,
            None => {
                let v = self
                    .query_int(
                        "SELECT last_seq FROM threads WHERE id = ?1",
                        &[Param::from(thread_id)],
                    )?
                    .ok_or(StoreError::NotFound("thread"))?;
                u64::try_from(v).map_err(|_| StoreError::Corrupt("negative seq".into()))?
            }
        };
        if self.seqs.len() >= SEQ_CACHE_MAX {
            self.seqs.clear();
        }
        self.seqs.insert(thread_id, seq);
        Ok(seq)
    }

    fn run_exec(&mut self, sql: &'static str, params: &[Param<'_>]) -> StoreResult<u64> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(map_err)?;
        // A statement that fails changes nothing (SQLite undoes it alone), nor does one that
        // matched no row.
        let n = stmt
            .execute(rusqlite::params_from_iter(params.iter().map(SqlParam)))
            .map_err(map_err)?;
        self.wrote |= n > 0;
        Ok(n as u64)
    }

    /// The first column of the first row as an integer, without building rows.
    fn query_int(&mut self, sql: &'static str, params: &[Param<'_>]) -> StoreResult<Option<i64>> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(map_err)?;
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params.iter().map(SqlParam)))
            .map_err(map_err)?;
        match rows.next().map_err(map_err)? {
            Some(row) => row.get::<_, i64>(0).map(Some).map_err(map_err),
            None => Ok(None),
        }
    }

    fn run_query(&mut self, sql: &'static str, params: &[Param<'_>]) -> StoreResult<Vec<Row>> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(map_err)?;
        let cols = stmt.column_count();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params.iter().map(SqlParam)))
            .map_err(map_err)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(map_err)? {
            let mut vals = Vec::with_capacity(cols);
            for i in 0..cols {
                vals.push(match row.get_ref(i).map_err(map_err)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(v) => Value::Int(v),
                    ValueRef::Real(v) => Value::Int(v as i64),
                    ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(b) => Value::Blob(b.to_vec()),
                });
            }
            out.push(Row(vals));
        }
        Ok(out)
    }
}

struct SqlParam<'a>(&'a Param<'a>);

impl ToSql for SqlParam<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match *self.0 {
            Param::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Param::Int(v) => ToSqlOutput::Borrowed(ValueRef::Integer(v)),
            Param::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Param::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

fn map_err(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e
        && f.code == rusqlite::ErrorCode::ConstraintViolation
    {
        return StoreError::Duplicate;
    }
    StoreError::Unavailable(e.to_string())
}

impl Tx for SqliteConn {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn exec<'a>(
        &'a mut self,
        sql: &'static str,
        params: &'a [Param<'a>],
    ) -> BoxFut<'a, StoreResult<u64>> {
        let r = self.run_exec(sql, params);
        Box::pin(std::future::ready(r))
    }

    fn insert<'a>(
        &'a mut self,
        sql: &'static str,
        params: &'a [Param<'a>],
    ) -> BoxFut<'a, StoreResult<u64>> {
        let r = self
            .run_exec(sql, params)
            .map(|_| self.conn.last_insert_rowid() as u64);
        Box::pin(std::future::ready(r))
    }

    fn query<'a>(
        &'a mut self,
        sql: &'static str,
        params: &'a [Param<'a>],
    ) -> BoxFut<'a, StoreResult<Vec<Row>>> {
        let r = self.run_query(sql, params);
        Box::pin(std::future::ready(r))
    }

    fn send_seq<'a>(&'a mut self, s: SendSeq<'a>) -> BoxFut<'a, StoreResult<Option<u64>>> {
        let r = self
            .run_exec(
                "UPDATE threads SET last_seq = last_seq + 1, activity_id = ?1 WHERE id = ?2 \
                 AND EXISTS (SELECT 1 FROM thread_members \
                             WHERE thread_id = ?2 AND user_id = ?3 AND active = 1) \
                 AND NOT EXISTS (SELECT 1 FROM messages \
                                 WHERE sender_device_id = ?4 AND client_msg_id = ?5)",
                &[
                    Param::from(s.activity_id),
                    Param::from(s.thread_id),
                    Param::from(s.user_id),
                    Param::from(s.device_id),
                    Param::Text(s.client_msg_id),
                ],
            )
            .and_then(|n| {
                if n == 0 {
                    return Ok(None);
                }
                self.bumped_seq(s.thread_id).map(Some)
            });
        Box::pin(std::future::ready(r))
    }

    fn bump(&mut self, counter: Counter, id: u64) -> BoxFut<'_, StoreResult<Option<u64>>> {
        // UPDATE then SELECT of the same row (cached by the UPDATE): RETURNING would build an
        // ephemeral table per statement, several times the cost of the read. The writer's
        // transaction is exclusive, so nothing changes the row in between.
        let id_param = Param::from(id);
        let updated = match counter {
            Counter::ThreadSeq { activity_id } => self.run_exec(
                "UPDATE threads SET last_seq = last_seq + 1, activity_id = ?1 WHERE id = ?2",
                &[Param::from(activity_id), id_param],
            ),
            Counter::UserEvent => self.run_exec(
                "UPDATE users SET event_seq = event_seq + 1 WHERE id = ?1",
                &[id_param],
            ),
        };
        let r = updated.and_then(|n| {
            if n == 0 {
                return Ok(None);
            }
            if let Counter::ThreadSeq { .. } = counter {
                return self.bumped_seq(id).map(Some);
            }
            match self.query_int("SELECT event_seq FROM users WHERE id = ?1", &[id_param])? {
                Some(v) => u64::try_from(v)
                    .map(Some)
                    .map_err(|_| StoreError::Corrupt("negative counter".into())),
                None => Ok(None),
            }
        });
        Box::pin(std::future::ready(r))
    }
}

fn open(path: &Path, read_only: bool) -> StoreResult<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags).map_err(map_err)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(map_err)?;
    if !read_only {
        // Small pages: a commit writes every page it dirtied to the WAL, and a send dirties
        // pages all over (its thread's messages, its device's dedupe keys); 1 KiB pages write a
        // quarter of the bytes of the 4 KiB default. Only takes effect on a new database.
        conn.pragma_update(None, "page_size", 1024)
            .map_err(map_err)?;
        // WAL + FULL: a commit is on disk before it returns, so an ack is never ahead of the
        // data. WAL lets readers run beside the single writer.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(map_err)?;
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(map_err)?;
    conn.pragma_update(None, "foreign_keys", "OFF")
        .map_err(map_err)?;
    conn.set_prepared_statement_cache_capacity(128);
    Ok(conn)
}

/// Creates the tables in a new database; refuses a database of another schema version (there
/// are no migrations yet, and running on a different layout would fail every write).
fn apply_schema(conn: &Connection) -> StoreResult<()> {
    let has_version_table: bool = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(map_err)?
        > 0;
    if has_version_table {
        let found: Option<i64> = conn
            .query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))
            .map_err(map_err)?;
        super::schema::check_version(found)?;
        return Ok(());
    }
    conn.execute_batch(SQLITE_SCHEMA).map_err(map_err)?;
    conn.execute(
        "INSERT INTO schema_version (version, applied_ms) VALUES (?1, ?2)",
        rusqlite::params![SCHEMA_VERSION, crate::ids::now_ms()],
    )
    .map_err(map_err)?;
    Ok(())
}

/// The embedded backend.
pub struct SqliteBackend {
    writes: mpsc::Sender<WriteJob<SqliteConn>>,
    reads: crossbeam_channel::Sender<ReadJob<SqliteConn>>,
    stats: Arc<Stats>,
}

#[derive(Default)]
struct Stats {
    batches: AtomicU64,
    jobs: AtomicU64,
    failed_commits: AtomicU64,
    retried_batches: AtomicU64,
    /// Set by the checkpointer: the writer should restart the WAL before its next batch.
    restart_wal: AtomicBool,
}

impl SqliteBackend {
    /// Opens (creating if needed) the database and starts the writer and reader threads.
    pub fn open(cfg: &SqliteConfig) -> StoreResult<Self> {
        if let Some(dir) = cfg.path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Unavailable(format!("{}: {e}", dir.display())))?;
        }
        let writer = open(&cfg.path, false)?;
        apply_schema(&writer)?;
        writer
            .pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(map_err)?;
        // When the log restarts, a file grown past this is cut back to it.
        writer
            .pragma_update(None, "journal_size_limit", WAL_RESTART_BYTES as i64)
            .map_err(map_err)?;
        info!(path = %cfg.path.display(), "embedded store open");

        let stats = Arc::new(Stats::default());
        let (wtx, wrx) = mpsc::channel(cfg.queue.max(1));
        let batch_max = cfg.batch_max.max(1);
        let wstats = stats.clone();
        std::thread::Builder::new()
            .name("confab-sqlite-writer".into())
            .spawn(move || writer_loop(SqliteConn::new(writer), wrx, batch_max, &wstats))
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;

        let checkpointer = open(&cfg.path, false)?;
        let weak = Arc::downgrade(&stats);
        std::thread::Builder::new()
            .name("confab-sqlite-checkpoint".into())
            .spawn({
                let wal = PathBuf::from(format!("{}-wal", cfg.path.display()));
                move || checkpoint_loop(checkpointer, wal, weak)
            })
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;

        let (rtx, rrx) = crossbeam_channel::bounded(cfg.queue.max(1));
        for i in 0..cfg.readers.max(1) {
            let conn = open(&cfg.path, true)?;
            let rrx = rrx.clone();
            std::thread::Builder::new()
                .name(format!("confab-sqlite-reader-{i}"))
                .spawn(move || reader_loop(SqliteConn::new(conn), &rrx))
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        }
        Ok(Self {
            writes: wtx,
            reads: rtx,
            stats,
        })
    }
}

impl Backend for SqliteBackend {
    type Tx = SqliteConn;

    fn submit_write(&self, _key: u64, job: WriteJob<SqliteConn>) -> StoreResult<()> {
        self.writes.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => StoreError::Busy,
            mpsc::error::TrySendError::Closed(_) => {
                StoreError::Unavailable("writer stopped".into())
            }
        })
    }

    fn submit_read(&self, job: ReadJob<SqliteConn>) -> StoreResult<()> {
        self.reads.try_send(job).map_err(|e| match e {
            crossbeam_channel::TrySendError::Full(_) => StoreError::Busy,
            crossbeam_channel::TrySendError::Disconnected(_) => {
                StoreError::Unavailable("readers stopped".into())
            }
        })
    }

    fn stats(&self) -> WriterStats {
        WriterStats {
            batches: self.stats.batches.load(Ordering::Relaxed),
            jobs: self.stats.jobs.load(Ordering::Relaxed),
            failed_commits: self.stats.failed_commits.load(Ordering::Relaxed),
            retried_batches: self.stats.retried_batches.load(Ordering::Relaxed),
            sent_together: 0,
        }
    }
}

fn writer_loop(
    mut conn: SqliteConn,
    mut rx: mpsc::Receiver<WriteJob<SqliteConn>>,
    batch_max: usize,
    stats: &Stats,
) {
    let mut batch: Vec<WriteJob<SqliteConn>> = Vec::with_capacity(batch_max);
    // Ends when every sender is gone: the store was dropped, so no caller waits any more.
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < batch_max {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if stats.restart_wal.swap(false, Ordering::Relaxed) {
            restart_wal(&conn.conn);
        }
        // Optimistic first: no savepoints, whose page copies (every page a job touches is
        // saved to the sub-journal) cost more than the statements. A job that fails after it
        // wrote cannot be undone alone then, so the batch is rolled back and run again with a
        // savepoint per job. Refusals fail before writing and need neither.
        let mut savepoints = false;
        let committed = loop {
            if let Err(e) = run(&conn.conn, "BEGIN IMMEDIATE") {
                let err = map_err(e);
                error!(%err, "cannot begin a write transaction");
                break Err(err);
            }
            let mut redo = false;
            for job in &mut batch {
                let savepoint = if savepoints {
                    run(&conn.conn, "SAVEPOINT job")
                } else {
                    Ok(())
                };
                conn.wrote = false;
                let (c, ok) = futures::executor::block_on(job.run(conn, !savepoints));
                conn = c;
                if savepoints {
                    if !(ok && savepoint.is_ok()) {
                        conn.seqs.clear();
                        if let Err(e) = run(&conn.conn, "ROLLBACK TO job") {
                            warn!(error = %e, "rollback to savepoint failed");
                        }
                    }
                    if let Err(e) = run(&conn.conn, "RELEASE job") {
                        warn!(error = %e, "savepoint release failed");
                    }
                } else if !ok && conn.wrote {
                    redo = true;
                    break;
                }
            }
            if redo {
                conn.seqs.clear();
                if let Err(e) = run(&conn.conn, "ROLLBACK") {
                    let err = map_err(e);
                    error!(%err, "cannot roll back a write transaction");
                    break Err(err);
                }
                stats.retried_batches.fetch_add(1, Ordering::Relaxed);
                savepoints = true;
                continue;
            }
            let committed = run(&conn.conn, "COMMIT").map_err(map_err);
            if committed.is_err() {
                conn.seqs.clear();
                let _ = run(&conn.conn, "ROLLBACK");
            }
            break committed;
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
    }
}

/// Runs a statement through the statement cache (no re-parsing per job).
fn run(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// How often the checkpointer copies the WAL into the database file. Rarely enough that a page
/// written by many commits in between (a thread's newest leaf, the threads table) is copied
/// once, not once per commit.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// The WAL size past which the writer restarts the log. Under constant writes a passive
/// checkpoint never finds the log idle, so SQLite would never start it over and the file would
/// grow without bound.
const WAL_RESTART_BYTES: u64 = 64 * 1024 * 1024;

/// Copies the WAL into the database file off the commit path: PASSIVE never blocks the writer
/// or readers (the writer's own automatic checkpoints are off). When the log has grown past
/// [`WAL_RESTART_BYTES`], it asks the writer to restart it (see [`restart_wal`]).
fn checkpoint_loop(conn: Connection, wal: PathBuf, stop: std::sync::Weak<Stats>) {
    loop {
        std::thread::sleep(CHECKPOINT_EVERY);
        let Some(stats) = stop.upgrade() else { return };
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            warn!(error = %e, "checkpoint failed");
        }
        if std::fs::metadata(&wal).is_ok_and(|m| m.len() > WAL_RESTART_BYTES) {
            stats.restart_wal.store(true, Ordering::Relaxed);
        }
    }
}

/// Run by the writer between batches when the checkpointer asks: a RESTART checkpoint copies
/// what the last passive one left (little: it just ran) and makes the next commit write the WAL
/// from its start again. On the writer, it holds up one batch for about one checkpoint's fsync,
/// instead of the writer sleeping in SQLite's busy handler behind another connection's lock.
fn restart_wal(conn: &Connection) {
    match conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
    }) {
        Ok((0, frames)) => debug!(frames, "WAL restarted"),
        Ok((_, frames)) => debug!(frames, "WAL restart deferred: readers busy"),
        Err(e) => warn!(error = %e, "WAL restart failed"),
    }
}

fn reader_loop(mut conn: SqliteConn, rx: &crossbeam_channel::Receiver<ReadJob<SqliteConn>>) {
    while let Ok(job) = rx.recv() {
        conn = futures::executor::block_on(job(conn));
    }
}
