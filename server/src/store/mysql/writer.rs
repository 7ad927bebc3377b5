//! The MySQL writer tasks: one connection each, batches run as one transaction, runs of text
//! sends stored together, deadlocks and lock waits retried.

use super::conn::*;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Pool};
use tokio::sync::mpsc;
use tracing::{error, warn};

use crate::store::{StoreError, WriteJob};

pub(super) async fn run(conn: &mut Conn, sql: &'static str) -> Result<(), mysql_async::Error> {
    conn.query_drop(sql).await
}

/// A writer connection: a pooled one with the writer's lock wait timeout, autocommit off (see
/// [`run_batch`]; the pool resets the session when a connection goes back to it), in READ
/// COMMITTED.
/// Every check a write depends on is a locking read or rides on the row update it guards (a
/// send's thread row lock orders it against every other entry of that thread), so the
/// repeatable-read snapshot buys nothing; its gap locks, taken by the dedupe probes, would
/// make writers wait on each other's unrelated sends.
pub(super) async fn writer_conn(
    pool: &Pool,
    lock_wait_secs: u32,
) -> Result<MysqlConn, mysql_async::Error> {
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
pub(super) enum BatchEnd {
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
pub(super) async fn run_batch(
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
pub(super) enum RunEnd {
    Done,
    /// A statement failed after the run wrote: the batch must be rolled back.
    Undo,
    /// MySQL rolled the transaction back (`aborted` is set).
    Aborted,
}

/// Stores a run of text sends with [`send_many`](crate::store::ops::messages::send_many), then runs
/// the sends it left to the single path (retries and refusals, which fail before writing).
pub(super) async fn send_run(
    mut c: MysqlConn,
    jobs: &mut [WriteJob<MysqlConn>],
    again: bool,
    stats: &Stats,
) -> (MysqlConn, RunEnd) {
    let reqs: Vec<Arc<crate::store::ops::messages::SendReq>> = jobs
        .iter()
        .filter_map(|j| j.text_send().map(|(r, _)| r.clone()))
        .collect();
    let Some(ids) = jobs
        .first()
        .and_then(|j| j.text_send().map(|(_, ids)| ids.clone()))
    else {
        return (c, RunEnd::Done);
    };
    let refs: Vec<&crate::store::ops::messages::SendReq> =
        reqs.iter().map(|r| r.as_ref()).collect();
    let stored = match crate::store::ops::messages::send_many(&mut c, &ids, &refs).await {
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
pub(super) fn retry_delay(attempt: u32) -> Duration {
    let cap_ms = 10u64 << attempt.min(6);
    Duration::from_millis(rand::random_range(1..=cap_ms))
}

pub(super) async fn writer_loop(
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
        crate::metrics::store_batch(batch.len(), rx.len());
        let started = crate::metrics::timer();
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
        crate::metrics::observe(crate::metrics::MYSQL_TRANSACTION, started);
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
