//! What the writer, the syncer, the readers and the checkpointer share: the write queue's
//! messages, the commit bookkeeping, and the limits they all keep.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use super::conn::*;

use crate::store::WriteJob;

/// What the write queue carries.
pub(super) enum Msg {
    Job(WriteJob<SqliteConn>),
    /// A reader waits for data the database has not committed yet.
    Commit,
    /// The server is shutting down: commit, sync, and stop.
    Close,
}

/// State the writer, the syncer, the readers and the checkpointer share.
#[derive(Default)]
pub(super) struct Shared {
    pub(super) batches: AtomicU64,
    pub(super) jobs: AtomicU64,
    pub(super) failed_commits: AtomicU64,
    pub(super) retried_batches: AtomicU64,
    /// Set by the checkpointer: the writer should restart the WAL after its next commit.
    pub(super) restart_wal: AtomicBool,
    /// Batches run on the writer's transaction so far.
    pub(super) executed: AtomicU64,
    /// Batches the database has committed (`executed` at the last commit).
    pub(super) committed: Mutex<u64>,
    pub(super) committed_cv: Condvar,
    /// A reader waits for a commit.
    pub(super) read_waiting: AtomicBool,
    /// A sync of the redo log failed: the writer stops using it.
    pub(super) log_broken: AtomicBool,
    /// The writer gave up (its transaction could not be committed, nor its batches replayed):
    /// every job is answered as unavailable until a restart replays the log, and readers stop
    /// waiting.
    pub(super) failed: AtomicBool,
}

impl Shared {
    pub(super) fn committed(&self) -> std::sync::MutexGuard<'_, u64> {
        self.committed.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn publish_commit(&self) {
        let executed = self.executed.load(Ordering::SeqCst);
        *self.committed() = executed;
        self.read_waiting.store(false, Ordering::SeqCst);
        self.committed_cv.notify_all();
    }

    /// Blocks a reader until the database holds every batch run before its read was asked
    /// for; false if the writer failed and it never will.
    pub(super) fn wait_committed(
        &self,
        needed: u64,
        wake: &crossbeam_channel::Sender<Msg>,
    ) -> bool {
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
pub(super) const COMMIT_JOBS: usize = 8192;
/// Size of the redo log file, laid out once. Past it the writer makes the database durable
/// and starts the log over (a few seconds of sends at full load; ~300 bytes a send).
pub(super) const LOG_BYTES: u64 = 16 << 20;
/// The writer's page cache, in KiB: uncommitted pages stay in it (a spill writes them to the
/// WAL early).
pub(super) const WRITER_CACHE_KIB: i64 = 64 * 1024;

/// The bookkeeping table of the redo log: the last batch the database holds.
pub(super) const REDO_STATE: &str = "CREATE TABLE IF NOT EXISTS redo_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    epoch INTEGER NOT NULL,
    batch INTEGER NOT NULL
);
INSERT OR IGNORE INTO redo_state (id, epoch, batch) VALUES (1, 0, 0);";
pub(super) const SET_REDO_STATE: &str = "UPDATE redo_state SET epoch = ?1, batch = ?2 WHERE id = 1";
