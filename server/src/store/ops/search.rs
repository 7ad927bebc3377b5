//! The message search index (schema 7) and the search itself. A text message's terms
//! (store/search.rs) are written in the transaction that stores, edits or recalls it, so what is
//! acknowledged is searchable after a crash as everything else is. SQLite: an FTS5 table whose
//! rowid is the message id; MySQL: an InnoDB FULLTEXT index on prefixed terms.

use confab_wire::pb;

use super::{message_cols, message_from_row, message_joins};
use crate::params;
use crate::store::search::{Query, index_terms, mysql_terms};
use crate::store::{Dialect, StoreResult, Tx, TxExt};

/// The terms as this store keeps them.
fn stored_terms<T: Tx>(tx: &T, body: &str) -> String {
    let terms = index_terms(body);
    match tx.dialect() {
        Dialect::Sqlite => terms,
        Dialect::Mysql => mysql_terms(&terms),
    }
}

/// Indexes a new text message.
pub async fn index<T: Tx>(tx: &mut T, message_id: u64, body: &str) -> StoreResult<()> {
    let terms = stored_terms(tx, body);
    let sql = match tx.dialect() {
        Dialect::Sqlite => "INSERT INTO message_search (rowid, terms) VALUES (?, ?)",
        Dialect::Mysql => "INSERT INTO message_search (message_id, terms) VALUES (?, ?)",
    };
    tx.exec(sql, params![message_id, &terms]).await?;
    Ok(())
}

/// An edited message is found by its new text only.
pub async fn reindex<T: Tx>(tx: &mut T, message_id: u64, body: &str) -> StoreResult<()> {
    match tx.dialect() {
        // A contentless FTS5 table takes a delete and an insert, not an update.
        Dialect::Sqlite => {
            let n = tx
                .exec(
                    "DELETE FROM message_search WHERE rowid = ?",
                    params![message_id],
                )
                .await?;
            // Not indexed yet (an upgrade's backfill has not reached it): it will be, as it is now.
            if n > 0 {
                index(tx, message_id, body).await?;
            }
        }
        Dialect::Mysql => {
            let terms = stored_terms(tx, body);
            tx.exec(
                "UPDATE message_search SET terms = ? WHERE message_id = ?",
                params![&terms, message_id],
            )
            .await?;
        }
    }
    Ok(())
}

/// A recalled message is never found.
pub async fn unindex<T: Tx>(tx: &mut T, message_id: u64) -> StoreResult<()> {
    let sql = match tx.dialect() {
        Dialect::Sqlite => "DELETE FROM message_search WHERE rowid = ?",
        Dialect::Mysql => "DELETE FROM message_search WHERE message_id = ?",
    };
    tx.exec(sql, params![message_id]).await?;
    Ok(())
}

const SQLITE_SEARCH: &str = concat!(
    "SELECT ",
    message_cols!(),
    " FROM message_search s JOIN messages m ON m.message_id = s.rowid",
    message_joins!(),
    "JOIN thread_members tm ON tm.thread_id = m.thread_id AND tm.user_id = ? \
     WHERE message_search MATCH ? AND s.rowid < ? AND m.recalled = 0 \
     AND (tm.active = 1 OR m.seq <= tm.left_seq) AND (? = 0 OR m.thread_id = ?) \
     ORDER BY s.rowid DESC LIMIT ?"
);

const MYSQL_SEARCH: &str = concat!(
    "SELECT ",
    message_cols!(),
    " FROM message_search s JOIN messages m ON m.message_id = s.message_id",
    message_joins!(),
    "JOIN thread_members tm ON tm.thread_id = m.thread_id AND tm.user_id = ? \
     WHERE MATCH (s.terms) AGAINST (? IN BOOLEAN MODE) AND s.message_id < ? AND m.recalled = 0 \
     AND (tm.active = 1 OR m.seq <= tm.left_seq) AND (? = 0 OR m.thread_id = ?) \
     ORDER BY s.message_id DESC LIMIT ?"
);

/// A page of `user`'s messages that match, newest first, older than `before` (0: from the
/// newest), in `thread` only if not 0; `has_more` when older hits remain.
pub async fn search<T: Tx>(
    tx: &mut T,
    user: u64,
    query: &Query,
    thread: u64,
    before: u64,
    limit: u32,
) -> StoreResult<(Vec<pb::SearchHit>, bool)> {
    if query.is_empty() {
        return Ok((Vec::new(), false));
    }
    let before = if before == 0 {
        i64::MAX
    } else {
        super::clamp_i64(before)
    };
    let (sql, q) = match tx.dialect() {
        Dialect::Sqlite => (SQLITE_SEARCH, query.fts5()),
        Dialect::Mysql => (MYSQL_SEARCH, query.mysql()),
    };
    let rows = tx
        .query(
            sql,
            params![user, &q, before, thread, thread, i64::from(limit) + 1],
        )
        .await?;
    let has_more = rows.len() > limit as usize;
    let mut messages = rows
        .iter()
        .take(limit as usize)
        .map(|r| message_from_row(r, user))
        .collect::<StoreResult<Vec<_>>>()?;
    super::reactions::attach(tx, user, &mut messages).await?;
    let hits = messages
        .into_iter()
        .map(|message| {
            let spans = query
                .spans(&message.body)
                .into_iter()
                .map(|(s, e)| pb::TextSpan {
                    start: u32::try_from(s).unwrap_or(u32::MAX),
                    end: u32::try_from(e).unwrap_or(u32::MAX),
                })
                .collect();
            pb::SearchHit {
                message: Some(message),
                spans,
            }
        })
        .collect();
    Ok((hits, has_more))
}

/// Indexes up to `batch` messages stored before the index existed, oldest first; returns
/// (done so far, the newest to do), or None once nothing is left (the backfill row is gone).
pub async fn backfill_step<T: Tx>(tx: &mut T, batch: u32) -> StoreResult<Option<(u64, u64)>> {
    let Some(row) = tx
        .query_opt("SELECT upto, target FROM search_backfill WHERE id = 1", &[])
        .await?
    else {
        return Ok(None);
    };
    let (upto, target) = (row.u64(0)?, row.u64(1)?);
    let rows = tx
        .query(
            "SELECT message_id, body FROM messages WHERE message_id > ? AND message_id <= ? \
             AND kind = ? AND recalled = 0 ORDER BY message_id LIMIT ?",
            params![
                upto,
                target,
                i64::from(pb::MessageKind::Text as i32),
                i64::from(batch)
            ],
        )
        .await?;
    let mut last = upto;
    for r in &rows {
        let (id, body) = (r.u64(0)?, r.text(1)?);
        // A message sent since the upgrade is indexed already: replaced, not doubled.
        unindex(tx, id).await?;
        index(tx, id, &body).await?;
        last = id;
    }
    if rows.len() < batch as usize {
        tx.exec("DELETE FROM search_backfill WHERE id = 1", &[])
            .await?;
        return Ok(Some((target, target)));
    }
    tx.exec(
        "UPDATE search_backfill SET upto = ? WHERE id = 1",
        params![last],
    )
    .await?;
    Ok(Some((last, target)))
}
