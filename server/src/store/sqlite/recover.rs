//! Start-up recovery: the redo log's batches past the database's last commit run again.

use std::fs::File;
use std::path::Path;

use super::conn::*;
use super::shared::*;
use rusqlite::Connection;
use tracing::info;

use super::redo;
use crate::store::{StoreError, StoreResult};

/// Replays the batches the log holds beyond the database's last commit; returns the epoch
/// the next log must pass.
pub(super) fn recover(conn: &Connection, log_path: &Path, wal: &Path) -> StoreResult<u64> {
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
pub(super) fn replay(
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
pub(super) fn sync_file(path: &Path) -> StoreResult<()> {
    File::open(path)
        .and_then(|f| f.sync_data())
        .map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))
}
