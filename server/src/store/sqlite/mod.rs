//! The embedded backend: SQLite in WAL mode, made durable by a redo log of its own.
//!
//! One writer thread owns the only write connection: it takes the first queued job, drains up to
//! `batch_max` more that are already waiting (no timer: batches form while the previous one is
//! on its way to disk), and runs them on a transaction it keeps open across batches. Each
//! batch's statements go to the redo log ([`redo`]) in one write; the syncer thread
//! `fdatasync`s the log and only then answers the batch's jobs, in batch order, while the writer
//! runs the next batch. The database commits (without waiting for the disk) every
//! `commit_every`, after `COMMIT_JOBS` jobs, or as soon as a reader needs what it holds: a read
//! waits until the database has committed every batch run before the read was asked for, so
//! nothing a caller was told of is missing from it. After a crash, the log's batches past the
//! database's last commit are replayed before the server takes connections.
//! Reads run on a small pool of read-only connections on their own threads; WAL lets them read a
//! consistent snapshot while the writer works.

mod conn;
mod maintenance;
mod recover;
pub mod redo;
mod shared;
mod writer;

pub use conn::SqliteConn;
use conn::*;
use maintenance::*;
use recover::*;
use shared::*;
use writer::*;

use std::fs::File;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing::info;

use super::{Backend, Param, ReadJob, StoreError, StoreResult, WriteJob, WriterStats};

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

/// The embedded backend.
pub struct SqliteBackend {
    writes: crossbeam_channel::Sender<Msg>,
    reads: crossbeam_channel::Sender<(u64, ReadJob<SqliteConn>)>,
    shared: Arc<Shared>,
}

/// Opens `path` for writing, creating it with mode 0600 if it is missing (an existing file
/// keeps its mode: the operator may have chosen one).
fn private_file(path: &std::path::Path) -> StoreResult<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))
}

impl SqliteBackend {
    /// Opens (creating if needed) the database, replays what the redo log holds beyond it,
    /// and starts the writer, syncer, reader and checkpointer threads.
    pub fn open(cfg: &SqliteConfig) -> StoreResult<Self> {
        if let Some(dir) = cfg.path.parent()
            && !dir.as_os_str().is_empty()
        {
            // Only the server's user may read the store (passwords' hashes, tokens, messages).
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| StoreError::Unavailable(format!("{}: {e}", dir.display())))?;
        }
        // SQLite gives its -wal and -shm files the database file's mode: create it 0600.
        private_file(&cfg.path)?;
        // One server per database: a second one would replay the redo log under the first
        // one's feet and write the same log file. The lock is held by the writer thread and
        // released when it exits (or the process dies).
        let lock_path = PathBuf::from(format!("{}-lock", cfg.path.display()));
        let lock = private_file(&lock_path)?;
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
