//! The checkpointer (keeps the WAL bounded) and the read-only connections' threads.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use super::conn::*;
use super::shared::*;
use rusqlite::Connection;
use tracing::{debug, warn};

use crate::store::ReadJob;

/// How often the checkpointer copies the WAL into the database file. Rarely enough that a page
/// written by many commits in between (a thread's newest leaf, the threads table) is copied
/// once, not once per commit.
pub(super) const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// The WAL size past which the writer restarts the log. Under constant writes a passive
/// checkpoint never finds the log idle, so SQLite would never start it over and the file would
/// grow without bound.
pub(super) const WAL_RESTART_BYTES: u64 = 64 * 1024 * 1024;

/// Copies the WAL into the database file off the commit path: PASSIVE never blocks the writer
/// or readers (the writer's own automatic checkpoints are off). When the log has grown past
/// [`WAL_RESTART_BYTES`], it asks the writer to restart it (see [`restart_wal`]).
pub(super) fn checkpoint_loop(conn: Connection, wal: PathBuf, stop: std::sync::Weak<Shared>) {
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
pub(super) fn restart_wal(conn: &Connection) {
    match conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
    }) {
        Ok((0, frames)) => debug!(frames, "WAL restarted"),
        Ok((_, frames)) => debug!(frames, "WAL restart deferred: readers busy"),
        Err(e) => warn!(error = %e, "WAL restart failed"),
    }
}

pub(super) fn reader_loop(
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
