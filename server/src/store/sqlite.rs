//! The embedded backend: SQLite in WAL mode, made durable by a redo log of its own.
//!
//! One writer thread owns the only write connection: it takes the first queued job, drains up to
//! `batch_max` more that are already waiting (no timer: batches form while the previous one is
//! on its way to disk), and runs them on a transaction it keeps open across batches. Each
//! batch's statements go to the redo log ([`super::redo`]) in one write; the syncer thread
//! `fdatasync`s the log and only then answers the batch's jobs, in batch order, while the writer
//! runs the next batch. The database commits (without waiting for the disk) every
//! `commit_every`, after `COMMIT_JOBS` jobs, or as soon as a reader needs what it holds: a read
//! waits until the database has committed every batch run before the read was asked for, so
//! nothing a caller was told of is missing from it. After a crash, the log's batches past the
//! database's last commit are replayed before the server takes connections.
//! Reads run on a small pool of read-only connections on their own threads; WAL lets them read a
//! consistent snapshot while the writer works.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, ToSql};
use tracing::{debug, error, info, warn};

use super::redo;
use super::schema::{SCHEMA_VERSION, SQLITE_SCHEMA};
use super::{
    Backend, BoxFut, Committed, Counter, Dialect, Param, ReadJob, Row, SendSeq, StoreError,
    StoreResult, Tx, Value, WriteJob, WriterStats,
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
    /// Longest time the writer keeps its transaction open: a page written by many batches
    /// costs one WAL write per this interval instead of one per batch. Every batch is durable
    /// in the redo log before its callers hear of it either way.
    pub commit_every: Duration,
    /// How long opening waits for another server's writer to release the database.
    pub lock_wait: Duration,
}

impl SqliteConfig {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            batch_max: 512,
            queue: 16_384,
            readers: 2,
            commit_every: Duration::from_millis(100),
            lock_wait: Duration::from_secs(5),
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
    /// The writer's record of the statements that changed rows, for the redo log.
    redo: Option<redo::Encoder>,
}

/// Threads whose last seq the writer remembers before starting over.
const SEQ_CACHE_MAX: usize = 100_000;

impl SqliteConn {
    fn new(conn: Connection) -> Self {
        Self {
            conn,
            wrote: false,
            seqs: HashMap::new(),
            redo: None,
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
        // A statement that changed nothing changes nothing when replayed either.
        if n > 0
            && let Some(enc) = self.redo.as_mut()
        {
            enc.stmt(sql, params, n);
        }
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
    writes: crossbeam_channel::Sender<Msg>,
    reads: crossbeam_channel::Sender<(u64, ReadJob<SqliteConn>)>,
    shared: Arc<Shared>,
}

/// What the write queue carries.
enum Msg {
    Job(WriteJob<SqliteConn>),
    /// A reader waits for data the database has not committed yet.
    Commit,
    /// The server is shutting down: commit, sync, and stop.
    Close,
}

/// State the writer, the syncer, the readers and the checkpointer share.
#[derive(Default)]
struct Shared {
    batches: AtomicU64,
    jobs: AtomicU64,
    failed_commits: AtomicU64,
    retried_batches: AtomicU64,
    /// Set by the checkpointer: the writer should restart the WAL after its next commit.
    restart_wal: AtomicBool,
    /// Batches run on the writer's transaction so far.
    executed: AtomicU64,
    /// Batches the database has committed (`executed` at the last commit).
    committed: Mutex<u64>,
    committed_cv: Condvar,
    /// A reader waits for a commit.
    read_waiting: AtomicBool,
    /// A sync of the redo log failed: the writer stops using it.
    log_broken: AtomicBool,
    /// The writer gave up (its transaction could not be committed, nor its batches replayed):
    /// every job is answered as unavailable until a restart replays the log, and readers stop
    /// waiting.
    failed: AtomicBool,
}

impl Shared {
    fn committed(&self) -> std::sync::MutexGuard<'_, u64> {
        self.committed.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish_commit(&self) {
        let executed = self.executed.load(Ordering::SeqCst);
        *self.committed() = executed;
        self.read_waiting.store(false, Ordering::SeqCst);
        self.committed_cv.notify_all();
    }

    /// Blocks a reader until the database holds every batch run before its read was asked
    /// for; false if the writer failed and it never will.
    fn wait_committed(&self, needed: u64, wake: &crossbeam_channel::Sender<Msg>) -> bool {
        let mut committed = self.committed();
        while *committed < needed {
            if self.failed.load(Ordering::SeqCst) {
                return false;
            }
            self.read_waiting.store(true, Ordering::SeqCst);
            // A full queue is a busy writer: it checks `read_waiting` after each batch.
            let _ = wake.try_send(Msg::Commit);
            committed = self
                .committed_cv
                .wait_timeout(committed, Duration::from_millis(500))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }
}

/// Jobs after which the writer commits whatever the time: bounds the pages held dirty in
/// memory and the work a restart replays.
const COMMIT_JOBS: usize = 8192;
/// Size of the redo log file, laid out once. Past it the writer makes the database durable
/// and starts the log over (a few seconds of sends at full load; ~300 bytes a send).
const LOG_BYTES: u64 = 16 << 20;
/// The writer's page cache, in KiB: uncommitted pages stay in it (a spill writes them to the
/// WAL early).
const WRITER_CACHE_KIB: i64 = 64 * 1024;

/// The bookkeeping table of the redo log: the last batch the database holds.
const REDO_STATE: &str = "CREATE TABLE IF NOT EXISTS redo_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    epoch INTEGER NOT NULL,
    batch INTEGER NOT NULL
);
INSERT OR IGNORE INTO redo_state (id, epoch, batch) VALUES (1, 0, 0);";
const SET_REDO_STATE: &str = "UPDATE redo_state SET epoch = ?1, batch = ?2 WHERE id = 1";

impl SqliteBackend {
    /// Opens (creating if needed) the database, replays what the redo log holds beyond it,
    /// and starts the writer, syncer, reader and checkpointer threads.
    pub fn open(cfg: &SqliteConfig) -> StoreResult<Self> {
        if let Some(dir) = cfg.path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Unavailable(format!("{}: {e}", dir.display())))?;
        }
        // One server per database: a second one would replay the redo log under the first
        // one's feet and write the same log file. The lock is held by the writer thread and
        // released when it exits (or the process dies).
        let lock_path = PathBuf::from(format!("{}-lock", cfg.path.display()));
        let lock = File::create(&lock_path)
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", lock_path.display())))?;
        // A server started right after another one on this database stopped (a restart, a
        // service manager) waits for the old writer to let go.
        let deadline = Instant::now() + cfg.lock_wait;
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(StoreError::Unavailable(format!(
                        "{} is in use by another confab-server ({} is locked)",
                        cfg.path.display(),
                        lock_path.display()
                    )));
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(StoreError::Unavailable(format!(
                        "{}: {e}",
                        lock_path.display()
                    )));
                }
            }
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
        // The redo log makes batches durable; the database's own commits need not wait for
        // the disk (NORMAL still syncs at checkpoints, so a crash cannot corrupt it).
        writer
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(map_err)?;
        writer
            .pragma_update(None, "cache_size", -WRITER_CACHE_KIB)
            .map_err(map_err)?;
        writer.execute_batch(REDO_STATE).map_err(map_err)?;
        let wal = PathBuf::from(format!("{}-wal", cfg.path.display()));
        let log_path = PathBuf::from(format!("{}-redo", cfg.path.display()));
        let epoch = recover(&writer, &log_path, &wal)? + 1;
        let log = redo::Log::start(&log_path, epoch, LOG_BYTES)?;
        info!(path = %cfg.path.display(), epoch, "embedded store open");

        let shared = Arc::new(Shared::default());
        let (wtx, wrx) = crossbeam_channel::bounded(cfg.queue.max(1));
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        let batch_max = cfg.batch_max.max(1);
        let mut conn = SqliteConn::new(writer);
        conn.redo = Some(redo::Encoder::default());
        let w = Writer {
            conn,
            shared: shared.clone(),
            wal,
            wal_file: None,
            commit_every: cfg.commit_every,
            _lock: lock,
            log: Some(log),
            done: done_tx,
            open: false,
            opened_at: Instant::now(),
            uncommitted: 0,
            pending: Vec::new(),
            epoch,
            batch: 0,
        };
        std::thread::Builder::new()
            .name("confab-sqlite-writer".into())
            .spawn(move || w.run(&wrx, batch_max))
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let sshared = shared.clone();
        std::thread::Builder::new()
            .name("confab-sqlite-sync".into())
            .spawn(move || syncer_loop(&done_rx, &sshared, batch_max > 1))
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;

        let checkpointer = open(&cfg.path, false)?;
        let weak = Arc::downgrade(&shared);
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
            let rshared = shared.clone();
            let wake = wtx.clone();
            std::thread::Builder::new()
                .name(format!("confab-sqlite-reader-{i}"))
                .spawn(move || reader_loop(SqliteConn::new(conn), &rrx, &rshared, &wake))
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        }
        Ok(Self {
            writes: wtx,
            reads: rtx,
            shared,
        })
    }
}

impl Backend for SqliteBackend {
    type Tx = SqliteConn;

    fn submit_write(&self, _key: u64, job: WriteJob<SqliteConn>) -> StoreResult<()> {
        self.writes.try_send(Msg::Job(job)).map_err(|e| match e {
            crossbeam_channel::TrySendError::Full(_) => StoreError::Busy,
            crossbeam_channel::TrySendError::Disconnected(_) => {
                StoreError::Unavailable("writer stopped".into())
            }
        })
    }

    fn submit_read(&self, job: ReadJob<SqliteConn>) -> StoreResult<()> {
        // Whatever a caller may have been told of (an ack, a push) was run by now: the read
        // waits until the database holds it.
        let needed = self.shared.executed.load(Ordering::SeqCst);
        self.reads.try_send((needed, job)).map_err(|e| match e {
            crossbeam_channel::TrySendError::Full(_) => StoreError::Busy,
            crossbeam_channel::TrySendError::Disconnected(_) => {
                StoreError::Unavailable("readers stopped".into())
            }
        })
    }

    fn stats(&self) -> WriterStats {
        WriterStats {
            batches: self.shared.batches.load(Ordering::Relaxed),
            jobs: self.shared.jobs.load(Ordering::Relaxed),
            failed_commits: self.shared.failed_commits.load(Ordering::Relaxed),
            retried_batches: self.shared.retried_batches.load(Ordering::Relaxed),
            sent_together: 0,
        }
    }

    fn close(&self) {
        // Behind every write already queued; blocks only while the queue is full.
        let _ = self.writes.send(Msg::Close);
    }
}

/// Replays the batches the log holds beyond the database's last commit; returns the epoch
/// the next log must pass.
fn recover(conn: &Connection, log_path: &Path, wal: &Path) -> StoreResult<u64> {
    let (db_epoch, db_batch) = conn
        .query_row(
            "SELECT epoch, batch FROM redo_state WHERE id = 1",
            [],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
        )
        .map_err(map_err)?;
    let (db_epoch, db_batch) = (db_epoch.max(0) as u64, db_batch.max(0) as u64);
    let Some(log) = redo::read(log_path)? else {
        return Ok(db_epoch);
    };
    if log.epoch < db_epoch {
        return Err(StoreError::Corrupt(format!(
            "the redo log {} (epoch {}) is older than the database (epoch {db_epoch})",
            log_path.display(),
            log.epoch
        )));
    }
    run(conn, "BEGIN IMMEDIATE").map_err(map_err)?;
    let mut texts = Vec::new();
    let mut replayed = 0u64;
    let mut last = db_batch;
    for payload in &log.payloads {
        let r = replay(conn, payload, &mut texts, |b| {
            log.epoch > db_epoch || b > db_batch
        });
        match r {
            Ok(Some(b)) => {
                replayed += 1;
                last = b;
            }
            Ok(None) => {}
            Err(e) => {
                let _ = run(conn, "ROLLBACK");
                return Err(e);
            }
        }
    }
    if replayed == 0 {
        run(conn, "ROLLBACK").map_err(map_err)?;
    } else {
        let done = conn
            .execute(
                SET_REDO_STATE,
                rusqlite::params![log.epoch as i64, last as i64],
            )
            .and_then(|_| run(conn, "COMMIT"));
        if let Err(e) = done {
            let _ = run(conn, "ROLLBACK");
            return Err(map_err(e));
        }
        sync_file(wal)?;
    }
    info!(batches = replayed, epoch = log.epoch, "redo log replayed");
    Ok(log.epoch.max(db_epoch))
}

/// Runs the statements of one logged batch if `apply` says so for its number (its texts are
/// learned either way). Returns the batch number if it ran.
fn replay(
    conn: &Connection,
    payload: &[u8],
    texts: &mut Vec<String>,
    apply: impl Fn(u64) -> bool,
) -> StoreResult<Option<u64>> {
    let (batch, entries) = redo::decode(payload)?;
    let apply = apply(batch);
    for e in entries {
        match e {
            redo::Entry::Text(id, text) => {
                let id = id as usize;
                if id == texts.len() {
                    texts.push(text.to_owned());
                } else if texts.get(id).map(String::as_str) != Some(text) {
                    return Err(StoreError::Corrupt(
                        "redo log: statement ids out of order".into(),
                    ));
                }
            }
            redo::Entry::Stmt(s) if apply => {
                let sql = texts.get(s.text as usize).ok_or_else(|| {
                    StoreError::Corrupt("redo log: statement of an unknown text".into())
                })?;
                let mut stmt = conn.prepare_cached(sql).map_err(map_err)?;
                let n = stmt
                    .execute(rusqlite::params_from_iter(s.params.iter().map(SqlParam)))
                    .map_err(map_err)?;
                if n != s.affected {
                    return Err(StoreError::Corrupt(format!(
                        "redo log replay diverged: batch {batch} changed {n} rows where it \
                         first changed {} ({sql})",
                        s.affected
                    )));
                }
            }
            redo::Entry::Stmt(_) => {}
        }
    }
    Ok(apply.then_some(batch))
}

/// Makes the database's last commit durable: under `synchronous=NORMAL` a commit is in the
/// WAL file but not yet on disk.
fn sync_file(path: &Path) -> StoreResult<()> {
    File::open(path)
        .and_then(|f| f.sync_data())
        .map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))
}

/// A run batch on its way to its callers: after its log record is on disk (`sync`), or
/// straight away when the database commit itself made it durable (or failed).
struct Done {
    jobs: Vec<WriteJob<SqliteConn>>,
    result: Committed,
    sync: Option<Arc<File>>,
}

/// The single writer: owns the write connection and the redo log.
struct Writer {
    conn: SqliteConn,
    shared: Arc<Shared>,
    wal: PathBuf,
    wal_file: Option<Arc<File>>,
    commit_every: Duration,
    /// The database's lock file, held while this writer lives.
    _lock: File,
    /// `None` once the log failed: each batch is then committed and synced on its own.
    log: Option<redo::Log>,
    done: crossbeam_channel::Sender<Done>,
    /// A transaction is open.
    open: bool,
    opened_at: Instant,
    /// Jobs run since the last commit.
    uncommitted: usize,
    /// The framed records of the batches run since the last commit, to run again if the
    /// transaction has to be rolled back.
    pending: Vec<u8>,
    epoch: u64,
    /// The last batch number of this epoch.
    batch: u64,
}

impl Writer {
    fn run(mut self, rx: &crossbeam_channel::Receiver<Msg>, batch_max: usize) {
        let mut jobs: Vec<WriteJob<SqliteConn>> = Vec::with_capacity(batch_max);
        loop {
            let first = if self.open {
                match rx.recv_deadline(self.opened_at + self.commit_every) {
                    Ok(m) => Some(m),
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match rx.recv() {
                    Ok(m) => Some(m),
                    // Every sender is gone: the store was dropped, so no caller waits any more.
                    Err(_) => break,
                }
            };
            let mut commit_now = first.is_none();
            let mut closing = false;
            let mut next = first;
            while let Some(m) = next {
                match m {
                    Msg::Job(j) => jobs.push(j),
                    Msg::Commit => commit_now = true,
                    Msg::Close => closing = true,
                }
                next = if jobs.len() < batch_max && !closing {
                    rx.try_recv().ok()
                } else {
                    None
                };
            }
            if !jobs.is_empty() {
                let batch = std::mem::replace(&mut jobs, Vec::with_capacity(batch_max));
                self.run_batch(batch);
            }
            if closing {
                break;
            }
            if self.open
                && (commit_now
                    || self.shared.read_waiting.load(Ordering::SeqCst)
                    || self.uncommitted >= COMMIT_JOBS
                    || self.opened_at.elapsed() >= self.commit_every
                    || self.log.as_ref().is_some_and(|l| l.written() >= LOG_BYTES))
            {
                let _ = self.commit(false);
            }
        }
        if self.open {
            let _ = self.commit(true);
        }
    }

    fn begin(&mut self) -> StoreResult<()> {
        run(&self.conn.conn, "BEGIN IMMEDIATE").map_err(map_err)?;
        self.open = true;
        self.opened_at = Instant::now();
        Ok(())
    }

    fn answer(&self, jobs: Vec<WriteJob<SqliteConn>>, result: Committed, sync: Option<Arc<File>>) {
        self.shared.batches.fetch_add(1, Ordering::Relaxed);
        self.shared
            .jobs
            .fetch_add(jobs.len() as u64, Ordering::Relaxed);
        if let Err(e) = self.done.send(Done { jobs, result, sync }) {
            // The syncer is gone only if it panicked: answer here, unsynced work as failed.
            for job in e.0.jobs {
                job.complete(Err(StoreError::Unavailable(
                    "the store's syncer stopped".into(),
                )));
            }
        }
    }

    fn run_batch(&mut self, mut jobs: Vec<WriteJob<SqliteConn>>) {
        if self.log.is_some() && self.shared.log_broken.load(Ordering::SeqCst) {
            error!("the redo log cannot be synced; committing every batch on its own from now");
            self.log = None;
            let _ = self.commit(true);
        }
        if self.shared.failed.load(Ordering::SeqCst) {
            let err = StoreError::Unavailable(
                "the embedded store stopped after a failed commit; restart the server".into(),
            );
            return self.answer(jobs, Err(err), None);
        }
        if !self.open
            && let Err(err) = self.begin()
        {
            error!(%err, "cannot begin a write transaction");
            return self.answer(jobs, Err(err), None);
        }
        self.batch += 1;
        self.shared.executed.fetch_add(1, Ordering::SeqCst);
        let batch_start = self.conn.redo.as_mut().map(|enc| {
            let m = enc.mark();
            enc.begin(self.batch);
            m
        });
        // Optimistic first: no savepoints, whose page copies (every page a job touches is
        // saved to the sub-journal) cost more than the statements. A job that fails after it
        // wrote cannot be undone alone then, so the transaction is rolled back, the batches
        // before this one since the last commit are run again from their log records, and
        // this one runs with a savepoint per job. Refusals fail before writing and need
        // neither.
        let mut savepoints = false;
        loop {
            let mut redo = false;
            for job in &mut jobs {
                let mark = self.conn.redo.as_ref().map(redo::Encoder::mark);
                let savepoint = if savepoints {
                    run(&self.conn.conn, "SAVEPOINT job")
                } else {
                    Ok(())
                };
                self.conn.wrote = false;
                let ok = futures::executor::block_on(job.run(&mut self.conn, !savepoints));
                if savepoints {
                    if !(ok && savepoint.is_ok()) {
                        self.conn.seqs.clear();
                        if let Err(e) = run(&self.conn.conn, "ROLLBACK TO job") {
                            warn!(error = %e, "rollback to savepoint failed");
                        }
                        if let (Some(enc), Some(m)) = (self.conn.redo.as_mut(), mark) {
                            enc.truncate(m);
                        }
                    }
                    if let Err(e) = run(&self.conn.conn, "RELEASE job") {
                        warn!(error = %e, "savepoint release failed");
                    }
                } else if !ok && self.conn.wrote {
                    redo = true;
                    break;
                }
            }
            if !redo {
                break;
            }
            self.shared.retried_batches.fetch_add(1, Ordering::Relaxed);
            if let Err(err) = self.roll_back_to_last_batch() {
                return self.answer(jobs, Err(err), None);
            }
            if let (Some(enc), Some(m)) = (self.conn.redo.as_mut(), batch_start) {
                enc.truncate(m);
                enc.begin(self.batch);
            }
            savepoints = true;
        }
        if let (Some(log), Some(enc)) = (self.log.as_mut(), self.conn.redo.as_ref()) {
            let start = self.pending.len();
            redo::frame(self.epoch, enc.payload(), &mut self.pending);
            match log.append(&self.pending[start..]) {
                Ok(()) => {
                    self.uncommitted += jobs.len();
                    let file = log.file();
                    return self.answer(jobs, Ok(()), Some(file));
                }
                Err(err) => {
                    error!(%err, "cannot write the redo log; committing every batch on its own from now");
                    self.pending.truncate(start);
                    self.log = None;
                }
            }
        }
        let result = self.commit(true);
        self.answer(jobs, result, None);
    }

    /// Rolls the transaction back and runs the batches since the last commit again.
    fn roll_back_to_last_batch(&mut self) -> StoreResult<()> {
        self.conn.seqs.clear();
        if let Err(e) = run(&self.conn.conn, "ROLLBACK") {
            warn!(error = %e, "rollback failed");
        }
        self.open = false;
        let opened_at = self.opened_at;
        let replayed = self.begin().and_then(|()| self.replay_pending());
        self.opened_at = opened_at;
        if let Err(err) = &replayed {
            error!(%err, "cannot run the uncommitted batches again; the writer stops");
            self.fail();
        }
        replayed
    }

    fn replay_pending(&mut self) -> StoreResult<()> {
        let mut texts: Vec<String> = self
            .conn
            .redo
            .as_ref()
            .map(|e| e.texts().iter().map(|t| (*t).to_owned()).collect())
            .unwrap_or_default();
        // Framed by this writer and never on disk in between: no CRC to check.
        for (_, payload) in redo::records(&self.pending) {
            replay(&self.conn.conn, payload, &mut texts, |_| true)?;
        }
        Ok(())
    }

    fn fail(&mut self) {
        self.shared.failed.store(true, Ordering::SeqCst);
        self.shared.committed_cv.notify_all();
    }

    /// Commits the open transaction; `durable` also syncs the WAL, for a commit no log
    /// record covers.
    fn commit(&mut self, durable: bool) -> StoreResult<()> {
        if !self.open {
            return Ok(());
        }
        let mut result = self.commit_once();
        if let Err(err) = &result {
            error!(%err, "commit failed");
            self.shared.failed_commits.fetch_add(1, Ordering::Relaxed);
            self.conn.seqs.clear();
            let _ = run(&self.conn.conn, "ROLLBACK");
            self.open = false;
            if !self.pending.is_empty() {
                // Acknowledged batches are in the log; the database must hold them too before
                // it takes anything else. (The caller's own batch, if it has one, stays
                // failed: it was not logged.)
                let again = self
                    .begin()
                    .and_then(|()| self.replay_pending())
                    .and_then(|()| self.commit_once());
                if let Err(err) = again {
                    error!(%err, "cannot commit the acknowledged batches; the writer stops until a restart replays the redo log");
                    let _ = run(&self.conn.conn, "ROLLBACK");
                    self.open = false;
                    self.fail();
                    return result;
                }
            }
        }
        self.open = false;
        self.pending.clear();
        self.uncommitted = 0;
        let rotate = self.log.as_ref().is_some_and(|l| l.written() >= LOG_BYTES);
        let mut synced = false;
        if result.is_ok() && (durable || rotate) {
            result = self.sync_wal();
            if let Err(err) = &result {
                error!(%err, "cannot sync the WAL");
            }
            synced = result.is_ok();
        }
        // Every batch run so far is in the database or was answered as failed: no reader has
        // anything more to wait for.
        self.shared.publish_commit();
        if result.is_ok() && !durable {
            self.start_wal_writeback();
        }
        if self.shared.restart_wal.swap(false, Ordering::Relaxed) {
            restart_wal(&self.conn.conn);
        }
        if rotate && synced {
            let restarted = match self.log.as_mut() {
                Some(log) => log.restart(self.epoch + 1),
                None => Ok(()),
            };
            match restarted {
                Ok(()) => {
                    self.epoch += 1;
                    self.batch = 0;
                    if let Some(enc) = self.conn.redo.as_mut() {
                        enc.reset();
                    }
                }
                Err(err) => {
                    error!(%err, "cannot start a new redo log; committing every batch on its own from now");
                    self.log = None;
                }
            }
        }
        result
    }

    /// Has the syncer sync the WAL pages this commit wrote, off the writer's path. Left to
    /// the next checkpoint, a second of them would reach the disk in one burst, and every
    /// `fdatasync` of the redo log queued behind it on the device would stall (70-100 ms
    /// measured here); synced after each commit, they go in small pieces between the log's
    /// syncs.
    fn start_wal_writeback(&mut self) {
        if let Some(f) = self.wal_handle()
            && self.log.is_some()
        {
            let _ = self.done.send(Done {
                jobs: Vec::new(),
                result: Ok(()),
                sync: Some(f.clone()),
            });
        }
    }

    /// The WAL file, opened once (it lives as long as the database is open).
    fn wal_handle(&mut self) -> Option<Arc<File>> {
        if self.wal_file.is_none() {
            self.wal_file = File::open(&self.wal).ok().map(Arc::new);
        }
        self.wal_file.clone()
    }

    /// Makes the last commit durable (see [`sync_file`]).
    fn sync_wal(&mut self) -> StoreResult<()> {
        match self.wal_handle() {
            Some(f) => f
                .sync_data()
                .map_err(|e| StoreError::Unavailable(format!("{}: {e}", self.wal.display()))),
            None => sync_file(&self.wal),
        }
    }

    fn commit_once(&mut self) -> StoreResult<()> {
        self.conn
            .conn
            .prepare_cached(SET_REDO_STATE)
            .and_then(|mut s| s.execute(rusqlite::params![self.epoch as i64, self.batch as i64]))
            .and_then(|_| run(&self.conn.conn, "COMMIT"))
            .map_err(map_err)
    }
}

/// Answers batches in the order they ran, each once its log record is on disk. One sync
/// covers every record written before it, so a backlog costs one; without `coalesce`
/// (`batch_max` 1: no group commit, for comparison) each batch gets a sync of its own.
fn syncer_loop(rx: &crossbeam_channel::Receiver<Done>, shared: &Shared, coalesce: bool) {
    let mut backlog = Vec::new();
    while let Ok(first) = rx.recv() {
        backlog.push(first);
        backlog.extend(rx.try_iter());
        let mut synced: Vec<(Arc<File>, Result<(), String>)> = Vec::new();
        for done in backlog.drain(..) {
            let mut result = done.result;
            if let (Ok(()), Some(file)) = (&result, &done.sync) {
                let earlier = synced
                    .iter()
                    .find(|(f, _)| coalesce && Arc::ptr_eq(f, file));
                let r = match earlier {
                    Some((_, r)) => r.clone(),
                    None => {
                        let r = file.sync_data().map_err(|e| e.to_string());
                        if let Err(e) = &r {
                            error!(error = %e, "cannot sync the redo log");
                            shared.log_broken.store(true, Ordering::SeqCst);
                        }
                        synced.push((file.clone(), r.clone()));
                        r
                    }
                };
                if let Err(e) = r {
                    result = Err(StoreError::Unavailable(format!(
                        "redo log sync failed: {e}"
                    )));
                }
            }
            for job in done.jobs {
                job.complete(result.clone());
            }
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
fn checkpoint_loop(conn: Connection, wal: PathBuf, stop: std::sync::Weak<Shared>) {
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

fn reader_loop(
    mut conn: SqliteConn,
    rx: &crossbeam_channel::Receiver<(u64, ReadJob<SqliteConn>)>,
    shared: &Shared,
    wake: &crossbeam_channel::Sender<Msg>,
) {
    while let Ok((needed, job)) = rx.recv() {
        // Dropped unrun if the writer failed: its caller hears the store is unavailable.
        if shared.wait_committed(needed, wake) {
            conn = futures::executor::block_on(job(conn));
        }
    }
}
