//! The writer thread (runs batches on one open transaction, appends them to the redo log, commits)
//! and the syncer thread (makes the log durable, then answers the batch's jobs in order).

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::conn::*;
use super::maintenance::restart_wal;
use super::recover::*;
use super::shared::*;
use tracing::{error, warn};

use super::redo;
use crate::store::{Committed, StoreError, StoreResult, WriteJob};

/// A run batch on its way to its callers: after its log record is on disk (`sync`), or
/// straight away when the database commit itself made it durable (or failed).
pub(super) struct Done {
    pub(super) jobs: Vec<WriteJob<SqliteConn>>,
    pub(super) result: Committed,
    pub(super) sync: Option<Arc<File>>,
}

/// The single writer: owns the write connection and the redo log.
pub(super) struct Writer {
    pub(super) conn: SqliteConn,
    pub(super) shared: Arc<Shared>,
    pub(super) wal: PathBuf,
    pub(super) wal_file: Option<Arc<File>>,
    pub(super) commit_every: Duration,
    /// The database's lock file, held while this writer lives.
    pub(super) _lock: File,
    /// `None` once the log failed: each batch is then committed and synced on its own.
    pub(super) log: Option<redo::Log>,
    pub(super) done: crossbeam_channel::Sender<Done>,
    /// A transaction is open.
    pub(super) open: bool,
    pub(super) opened_at: Instant,
    /// Jobs run since the last commit.
    pub(super) uncommitted: usize,
    /// The framed records of the batches run since the last commit, to run again if the
    /// transaction has to be rolled back.
    pub(super) pending: Vec<u8>,
    pub(super) epoch: u64,
    /// The last batch number of this epoch.
    pub(super) batch: u64,
}

impl Writer {
    pub(super) fn run(mut self, rx: &crossbeam_channel::Receiver<Msg>, batch_max: usize) {
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
                crate::metrics::store_batch(batch.len(), rx.len());
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

    pub(super) fn begin(&mut self) -> StoreResult<()> {
        run(&self.conn.conn, "BEGIN IMMEDIATE").map_err(map_err)?;
        self.open = true;
        self.opened_at = Instant::now();
        Ok(())
    }

    pub(super) fn answer(
        &self,
        jobs: Vec<WriteJob<SqliteConn>>,
        result: Committed,
        sync: Option<Arc<File>>,
    ) {
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

    pub(super) fn run_batch(&mut self, mut jobs: Vec<WriteJob<SqliteConn>>) {
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
    pub(super) fn roll_back_to_last_batch(&mut self) -> StoreResult<()> {
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

    pub(super) fn replay_pending(&mut self) -> StoreResult<()> {
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

    pub(super) fn fail(&mut self) {
        self.shared.failed.store(true, Ordering::SeqCst);
        self.shared.committed_cv.notify_all();
    }

    /// Commits the open transaction; `durable` also syncs the WAL, for a commit no log
    /// record covers.
    pub(super) fn commit(&mut self, durable: bool) -> StoreResult<()> {
        if !self.open {
            return Ok(());
        }
        let mut result = crate::metrics::time(crate::metrics::SQLITE_COMMIT, || self.commit_once());
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
    pub(super) fn start_wal_writeback(&mut self) {
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
    pub(super) fn wal_handle(&mut self) -> Option<Arc<File>> {
        if self.wal_file.is_none() {
            self.wal_file = File::open(&self.wal).ok().map(Arc::new);
        }
        self.wal_file.clone()
    }

    /// Makes the last commit durable (see [`sync_file`]).
    pub(super) fn sync_wal(&mut self) -> StoreResult<()> {
        match self.wal_handle() {
            Some(f) => f
                .sync_data()
                .map_err(|e| StoreError::Unavailable(format!("{}: {e}", self.wal.display()))),
            None => sync_file(&self.wal),
        }
    }

    pub(super) fn commit_once(&mut self) -> StoreResult<()> {
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
pub(super) fn syncer_loop(rx: &crossbeam_channel::Receiver<Done>, shared: &Shared, coalesce: bool) {
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
                        // A batch's record, or the WAL written back after a commit (no jobs).
                        let what = match done.jobs.is_empty() {
                            true => crate::metrics::WAL_FSYNC,
                            false => crate::metrics::REDO_FSYNC,
                        };
                        let r = crate::metrics::time(what, || file.sync_data())
                            .map_err(|e| e.to_string());
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
