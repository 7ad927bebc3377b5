//! Threads and their entries: send, recall, edit, markers, sync and history.

use crate::store::search::{index_terms, mysql_terms};
use confab_wire::pb;

use std::collections::{HashMap, HashSet};

use super::{
    Effects, NewEntry, access, append, clamp_i64, insert_entry, message_cols, message_from_row,
    message_joins, stored_entry,
};
use crate::ids::{Snowflake, now_ms};
use crate::params;
use crate::store::{Dialect, SendSeq, StoreError, StoreResult, Tx, TxExt};

/// A send as the writer sees it.
#[derive(Debug, Clone)]
pub struct SendReq {
    pub sender: pb::User,
    pub device_id: u64,
    pub thread_id: u64,
    pub client_msg_id: String,
    pub body: String,
    /// The message this one answers (0: none).
    pub reply_to: u64,
}

/// The ack of a stored entry (`duplicate` for a retry of an earlier send); the entry itself
/// is in the operation's effects.
#[derive(Debug, Clone)]
pub struct Sent {
    pub ack: pb::SendAck,
}

/// Looks for an earlier entry from this device with this client_msg_id.
async fn earlier<T: Tx>(
    tx: &mut T,
    device: u64,
    cmid: &str,
    thread_id: u64,
) -> StoreResult<Option<Sent>> {
    let row = tx
        .query_opt(
            "SELECT thread_id, message_id, seq, created_ms FROM messages \
             WHERE sender_device_id = ? AND client_msg_id = ?",
            params![device, cmid],
        )
        .await?;
    let Some(r) = row else { return Ok(None) };
    if r.u64(0)? != thread_id {
        return Err(StoreError::Conflict(
            "client_msg_id already used in another thread",
        ));
    }
    Ok(Some(Sent {
        ack: pb::SendAck {
            thread_id,
            message_id: r.u64(1)?,
            seq: r.u64(2)?,
            server_ts_ms: r.i64(3)?,
            duplicate: true,
            client_msg_id: cmid.to_owned(),
        },
    }))
}

/// An entry a client sent (text, recall, edit).
struct OwnEntry<'a> {
    sender: &'a pb::User,
    device_id: u64,
    thread_id: u64,
    client_msg_id: &'a str,
    kind: pb::MessageKind,
    body: &'a str,
    target_message_id: u64,
    quote: Option<pb::Quote>,
}

async fn append_own<T: Tx>(
    tx: &mut T,
    ids: &Snowflake,
    fx: &mut Effects,
    e: OwnEntry<'_>,
) -> StoreResult<pb::SendAck> {
    append(
        tx,
        ids,
        fx,
        e.thread_id,
        NewEntry {
            sender: e.sender,
            sender_device_id: e.device_id,
            client_msg_id: Some(e.client_msg_id),
            kind: e.kind,
            body: e.body,
            target_message_id: e.target_message_id,
            group_change: None,
            quote: e.quote,
        },
    )
    .await
}

/// Stores a text message: membership check, dedupe, seq allocation and insert in one
/// transaction. The sender's read marker moves to its own message.
pub async fn send<T: Tx>(
    tx: &mut T,
    ids: &Snowflake,
    req: &SendReq,
) -> StoreResult<(Sent, Effects)> {
    let mut fx = Effects::default();
    // The common case, an active member's new entry, in one statement; anything else (a
    // retry, a refusal) finds out why below, with nothing changed yet.
    // A reply looks its target up once membership is known (below), so a stranger learns
    // nothing of a thread's message ids.
    let message_id = ids.next_id();
    let seq = if req.reply_to != 0 {
        None
    } else {
        tx.send_seq(SendSeq {
            thread_id: req.thread_id,
            user_id: req.sender.user_id,
            device_id: req.device_id,
            client_msg_id: &req.client_msg_id,
            activity_id: message_id,
        })
        .await?
    };
    if let Some(seq) = seq {
        let ack = insert_entry(
            tx,
            &mut fx,
            req.thread_id,
            seq,
            message_id,
            NewEntry {
                sender: &req.sender,
                sender_device_id: req.device_id,
                client_msg_id: Some(&req.client_msg_id),
                kind: pb::MessageKind::Text,
                body: &req.body,
                target_message_id: 0,
                group_change: None,
                quote: None,
            },
        )
        .await?;
        mark_own_read(tx, req, ack.seq).await?;
        return Ok((Sent { ack }, fx));
    }
    // One query answers both "may they send?" and "is this a retry?".
    let row = tx
        .query_opt(
            "SELECT tm.active, m.thread_id, m.message_id, m.seq, m.created_ms FROM thread_members tm \
             LEFT JOIN messages m ON m.sender_device_id = ? AND m.client_msg_id = ? \
             WHERE tm.thread_id = ? AND tm.user_id = ?",
            params![req.device_id, &req.client_msg_id, req.thread_id, req.sender.user_id],
        )
        .await?;
    let Some(row) = row else {
        // Not a member: a retry of a message sent before leaving is still answered.
        if let Some(sent) = earlier(tx, req.device_id, &req.client_msg_id, req.thread_id).await? {
            return Ok((sent, fx));
        }
        return Err(super::thread_missing_or_forbidden(tx, req.thread_id).await);
    };
    if let Some(prev_thread) = row.opt_i64(1)? {
        if u64::try_from(prev_thread).ok() != Some(req.thread_id) {
            return Err(StoreError::Conflict(
                "client_msg_id already used in another thread",
            ));
        }
        let ack = pb::SendAck {
            thread_id: req.thread_id,
            message_id: row.u64(2)?,
            seq: row.u64(3)?,
            server_ts_ms: row.i64(4)?,
            duplicate: true,
            client_msg_id: req.client_msg_id.clone(),
        };
        return Ok((Sent { ack }, fx));
    }
    if !row.bool(0)? {
        return Err(StoreError::Forbidden(
            "you can no longer send to this thread",
        ));
    }
    let quote = if req.reply_to == 0 {
        None
    } else {
        let t = super::reactions::target(tx, req.thread_id, req.reply_to).await?;
        Some(super::quote(req.reply_to, t.seq, t.sender, &t.body, false))
    };
    let ack = append_own(
        tx,
        ids,
        &mut fx,
        OwnEntry {
            sender: &req.sender,
            device_id: req.device_id,
            thread_id: req.thread_id,
            client_msg_id: &req.client_msg_id,
            kind: pb::MessageKind::Text,
            body: &req.body,
            target_message_id: 0,
            quote,
        },
    )
    .await?;
    mark_own_read(tx, req, ack.seq).await?;
    Ok((Sent { ack }, fx))
}

/// Per send of a run: may it go in bulk (thread exists, sender an active member, its
/// client_msg_id unused), and the thread's last seq. One locking read; `STRAIGHT_JOIN` and the
/// index hints keep it on primary-key lookups, so it locks exactly the rows it names (the
/// writers run in READ COMMITTED: no gap locks).
const BULK_CHECK: &str = "SELECT j.i, t.last_seq, tm.active, m.thread_id \
     FROM JSON_TABLE(?, '$[*]' COLUMNS (i BIGINT PATH '$[0]', t BIGINT PATH '$[1]', \
         u BIGINT PATH '$[2]', d BIGINT PATH '$[3]', \
         c VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$[4]')) AS j \
     STRAIGHT_JOIN threads t FORCE INDEX (PRIMARY) ON t.id = j.t \
     LEFT JOIN thread_members tm FORCE INDEX (PRIMARY) ON tm.thread_id = j.t AND tm.user_id = j.u \
     LEFT JOIN messages m FORCE INDEX (messages_dedupe) \
         ON m.sender_device_id = j.d AND m.client_msg_id = j.c \
     FOR UPDATE";

/// Each thread's new last seq and activity id, and each sender's read marker, in one
/// statement: a row per (thread, sender), every row of a thread carrying the same thread values.
const BULK_MARK: &str = "UPDATE JSON_TABLE(?, '$[*]' COLUMNS (t BIGINT PATH '$[0]', \
         u BIGINT PATH '$[1]', r BIGINT PATH '$[2]', s BIGINT PATH '$[3]', \
         a BIGINT PATH '$[4]')) AS j \
     STRAIGHT_JOIN threads t FORCE INDEX (PRIMARY) ON t.id = j.t \
     STRAIGHT_JOIN thread_members tm FORCE INDEX (PRIMARY) \
         ON tm.thread_id = j.t AND tm.user_id = j.u \
     SET t.last_seq = j.s, t.activity_id = j.a, tm.read_seq = GREATEST(tm.read_seq, j.r)";

/// Every entry of the run in one statement (a NULL from a malformed row fails it whole).
const BULK_INSERT: &str = "INSERT INTO messages (thread_id, seq, message_id, sender_id, \
         sender_device_id, client_msg_id, kind, body, created_ms) \
     SELECT j.t, j.s, j.mid, j.u, j.d, j.c, ?, j.b, j.ts \
     FROM JSON_TABLE(?, '$[*]' COLUMNS (t BIGINT PATH '$[0]', s BIGINT PATH '$[1]', \
         mid BIGINT PATH '$[2]', u BIGINT PATH '$[3]', d BIGINT PATH '$[4]', \
         c VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$[5]', \
         b LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$[6]', \
         ts BIGINT PATH '$[7]')) AS j";

/// The run's search terms, one row per message (message_id, terms).
const BULK_INDEX: &str = "INSERT INTO message_search (message_id, terms) SELECT j.mid, j.x \
     FROM JSON_TABLE(?, '$[*]' COLUMNS (mid BIGINT PATH '$[0]', \
         x LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$[1]')) AS j";

/// One row of [`BULK_INSERT`]: (thread, seq, message_id, sender, device, client_msg_id, body,
/// created_ms).
type BulkEntry<'a> = (u64, u64, u64, u64, u64, &'a str, &'a str, i64);

fn to_json<S: serde::Serialize>(rows: &S) -> StoreResult<String> {
    serde_json::to_string(rows)
        .map_err(|_| StoreError::Invalid("a send could not be encoded for the database"))
}

/// Stores a run of text sends with three statements in all instead of three each: on MySQL
/// every statement is a network round trip and a fixed cost in the server (~200 µs of MariaDB
/// CPU here, against ~25 µs per row when rows travel together as one JSON parameter read by
/// `JSON_TABLE`). The rules are those of [`send`]: a send that is not plainly acceptable (a
/// retry, a refusal, a thread that does not exist, a client_msg_id repeated in the run) gets
/// `None` and is left to [`send`], which the writer runs after this; those never take a seq,
/// so seqs stay gap-free and in queue order. The embedded store answers `None` for all: there
/// a statement costs microseconds and its writer runs sends one by one.
///
/// On `Err` something may have been written: the caller rolls the transaction back.
pub async fn send_many<T: Tx>(
    tx: &mut T,
    ids: &Snowflake,
    reqs: &[&SendReq],
) -> StoreResult<Vec<Option<(Sent, Effects)>>> {
    let mut out: Vec<Option<(Sent, Effects)>> = reqs.iter().map(|_| None).collect();
    if tx.dialect() != Dialect::Mysql || reqs.is_empty() {
        return Ok(out);
    }
    // Only the first send of a repeated client_msg_id goes in bulk; the single path then finds
    // it stored and answers the others as duplicates.
    let mut seen = HashSet::new();
    let mut check: Vec<(usize, u64, u64, u64, &str)> = reqs
        .iter()
        .enumerate()
        // Replies take the single path, which checks and quotes their target.
        .filter(|(_, r)| r.reply_to == 0 && seen.insert((r.device_id, r.client_msg_id.as_str())))
        .map(|(i, r)| {
            (
                i,
                r.thread_id,
                r.sender.user_id,
                r.device_id,
                r.client_msg_id.as_str(),
            )
        })
        .collect();
    // The locking read takes row locks in the order of its rows: in thread order, every
    // writer (on every node) locks the threads of its runs in one global order, so two runs
    // wait for each other instead of deadlocking. The results are keyed by `i`.
    check.sort_unstable_by_key(|&(i, thread, user, ..)| (thread, user, i));
    let rows = tx
        .query(BULK_CHECK, params![to_json(&check)?.as_str()])
        .await?;
    let mut last_seq: HashMap<u64, u64> = HashMap::new();
    let mut plain = vec![false; reqs.len()];
    for row in rows {
        let i = usize::try_from(row.u64(0)?)
            .ok()
            .filter(|i| *i < reqs.len())
            .ok_or_else(|| StoreError::Corrupt("bulk check returned a bad index".into()))?;
        last_seq.insert(reqs[i].thread_id, row.u64(1)?);
        plain[i] = row.opt_i64(2)? == Some(1) && row.opt_i64(3)?.is_none();
    }
    let now = now_ms();
    let mut entries: Vec<BulkEntry<'_>> = Vec::new();
    // Which send each entry is.
    let mut placed: Vec<usize> = Vec::new();
    let mut threads: HashMap<u64, (u64, u64)> = HashMap::new();
    let mut read: HashMap<(u64, u64), u64> = HashMap::new();
    for (i, r) in reqs.iter().enumerate() {
        if !plain[i] {
            continue;
        }
        let Some(last) = last_seq.get_mut(&r.thread_id) else {
            continue;
        };
        *last += 1;
        let (seq, message_id) = (*last, ids.next_id());
        entries.push((
            r.thread_id,
            seq,
            message_id,
            r.sender.user_id,
            r.device_id,
            r.client_msg_id.as_str(),
            r.body.as_str(),
            now,
        ));
        placed.push(i);
        threads.insert(r.thread_id, (seq, message_id));
        read.insert((r.thread_id, r.sender.user_id), seq);
    }
    if entries.is_empty() {
        return Ok(out);
    }
    let mut marks: Vec<(u64, u64, u64, u64, u64)> = Vec::with_capacity(read.len());
    for ((t, u), r) in &read {
        let (s, a) = threads.get(t).copied().unwrap_or_default();
        marks.push((*t, *u, *r, s, a));
    }
    tx.exec(BULK_MARK, params![to_json(&marks)?.as_str()])
        .await?;
    let text = i64::from(pb::MessageKind::Text as i32);
    let inserted = tx
        .exec(BULK_INSERT, params![text, to_json(&entries)?.as_str()])
        .await?;
    if inserted != entries.len() as u64 {
        return Err(StoreError::Corrupt(format!(
            "bulk insert stored {inserted} of {} entries",
            entries.len()
        )));
    }
    if crate::store::search::indexing() {
        let terms: Vec<(u64, String)> = entries
            .iter()
            .map(|e| (e.2, mysql_terms(&index_terms(e.6))))
            .collect();
        tx.exec(BULK_INDEX, params![to_json(&terms)?.as_str()])
            .await?;
    }
    for (&i, &(thread_id, seq, message_id, ..)) in placed.iter().zip(&entries) {
        let r = reqs[i];
        let mut fx = Effects::default();
        let ack = stored_entry(
            &mut fx,
            thread_id,
            seq,
            message_id,
            now,
            NewEntry {
                sender: &r.sender,
                sender_device_id: r.device_id,
                client_msg_id: Some(&r.client_msg_id),
                kind: pb::MessageKind::Text,
                body: &r.body,
                target_message_id: 0,
                group_change: None,
                quote: None,
            },
        );
        out[i] = Some((Sent { ack }, fx));
    }
    Ok(out)
}

/// The sender has read its own entry.
async fn mark_own_read<T: Tx>(tx: &mut T, req: &SendReq, seq: u64) -> StoreResult<()> {
    tx.exec(
        "UPDATE thread_members SET read_seq = ? WHERE thread_id = ? AND user_id = ? AND read_seq < ?",
        params![seq, req.thread_id, req.sender.user_id, seq],
    )
    .await?;
    Ok(())
}

/// Recall (body `None`) or edit (body `Some`) of the caller's own recent TEXT message.
#[derive(Debug, Clone)]
pub struct Amend {
    pub sender: pb::User,
    pub device_id: u64,
    pub thread_id: u64,
    pub message_id: u64,
    pub client_msg_id: String,
    pub new_body: Option<String>,
    pub window_ms: i64,
}

/// Recalls or edits a message: marks the original and appends a RECALL/EDIT entry.
pub async fn amend<T: Tx>(
    tx: &mut T,
    ids: &Snowflake,
    req: &Amend,
) -> StoreResult<(Sent, Effects)> {
    let mut fx = Effects::default();
    if let Some(sent) = earlier(tx, req.device_id, &req.client_msg_id, req.thread_id).await? {
        return Ok((sent, fx));
    }
    let acc = access(tx, req.sender.user_id, req.thread_id).await?;
    if !acc.active {
        return Err(StoreError::Forbidden(
            "you can no longer send to this thread",
        ));
    }
    let row = tx
        .query_opt(
            "SELECT sender_id, kind, created_ms, recalled, seq FROM messages WHERE thread_id = ? AND message_id = ?",
            params![req.thread_id, req.message_id],
        )
        .await?
        .ok_or(StoreError::NotFound("message"))?;
    if row.u64(0)? != req.sender.user_id {
        return Err(StoreError::Forbidden(
            "only the sender recalls or edits a message",
        ));
    }
    if row.i64(1)? != i64::from(pb::MessageKind::Text as i32) {
        return Err(StoreError::Forbidden(
            "only text messages are recalled or edited",
        ));
    }
    if row.bool(3)? {
        return Err(StoreError::Conflict("the message was recalled"));
    }
    if now_ms() - row.i64(2)? > req.window_ms {
        return Err(StoreError::Forbidden(
            "the message is too old to recall or edit",
        ));
    }
    let (kind, body) = match &req.new_body {
        None => {
            tx.exec(
                "UPDATE messages SET recalled = 1, body = '' WHERE thread_id = ? AND message_id = ?",
                params![req.thread_id, req.message_id],
            )
            .await?;
            // Its edits carried its text too: they go with it (they follow it in the thread).
            tx.exec(
                "UPDATE messages SET recalled = 1, body = '' \
                 WHERE thread_id = ? AND seq > ? AND target_message_id = ? AND kind = ?",
                params![
                    req.thread_id,
                    row.u64(4)?,
                    req.message_id,
                    i64::from(pb::MessageKind::Edit as i32)
                ],
            )
            .await?;
            super::search::unindex(tx, req.message_id).await?;
            super::reactions::clear(tx, req.thread_id, row.u64(4)?).await?;
            (pb::MessageKind::Recall, "")
        }
        Some(b) => {
            tx.exec(
                "UPDATE messages SET body = ?, edited_ms = ? WHERE thread_id = ? AND message_id = ?",
                params![b, now_ms(), req.thread_id, req.message_id],
            )
            .await?;
            super::search::reindex(tx, req.message_id, b).await?;
            (pb::MessageKind::Edit, b.as_str())
        }
    };
    let ack = append_own(
        tx,
        ids,
        &mut fx,
        OwnEntry {
            sender: &req.sender,
            device_id: req.device_id,
            thread_id: req.thread_id,
            client_msg_id: &req.client_msg_id,
            kind,
            body,
            target_message_id: req.message_id,
            quote: None,
        },
    )
    .await?;
    Ok((Sent { ack }, fx))
}

/// A read marker that moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadMoved {
    pub seq: u64,
    /// The reader is still a member (a former member's receipts are its own business).
    pub active: bool,
}

/// Moves the user's read marker forward; returns the new marker if it moved.
pub async fn read_up_to<T: Tx>(
    tx: &mut T,
    user: u64,
    thread_id: u64,
    seq: u64,
) -> StoreResult<Option<ReadMoved>> {
    let acc = access(tx, user, thread_id).await?;
    let seq = seq.min(acc.visible_seq);
    if seq <= acc.read_seq {
        return Ok(None);
    }
    tx.exec(
        "UPDATE thread_members SET read_seq = ? WHERE thread_id = ? AND user_id = ? AND read_seq < ?",
        params![seq, thread_id, user, seq],
    )
    .await?;
    Ok(Some(ReadMoved {
        seq,
        active: acc.active,
    }))
}

/// Records that a device holds every entry of the thread up to `seq`.
pub async fn delivered_up_to<T: Tx>(
    tx: &mut T,
    user: u64,
    device: u64,
    thread_id: u64,
    seq: u64,
) -> StoreResult<()> {
    let acc = access(tx, user, thread_id).await?;
    let seq = seq.min(acc.visible_seq);
    let sql = match tx.dialect() {
        crate::store::Dialect::Sqlite => {
            "INSERT INTO device_cursors (device_id, thread_id, delivered_seq) VALUES (?, ?, ?) \
             ON CONFLICT (device_id, thread_id) DO UPDATE SET \
             delivered_seq = MAX(delivered_seq, excluded.delivered_seq)"
        }
        crate::store::Dialect::Mysql => {
            "INSERT INTO device_cursors (device_id, thread_id, delivered_seq) VALUES (?, ?, ?) \
             ON DUPLICATE KEY UPDATE delivered_seq = GREATEST(delivered_seq, VALUES(delivered_seq))"
        }
    };
    tx.exec(sql, params![device, thread_id, seq]).await?;
    Ok(())
}

/// A device's delivery marker for a thread, as [`delivered_up_to`] stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveredMark {
    pub user: u64,
    pub device: u64,
    pub thread: u64,
    pub seq: u64,
}

/// Many markers at once, each clamped like [`delivered_up_to`] (to what its user may read);
/// markers of threads the user never belonged to are skipped. On MySQL one statement.
pub async fn delivered_many<T: Tx>(tx: &mut T, marks: &[DeliveredMark]) -> StoreResult<()> {
    if marks.is_empty() {
        return Ok(());
    }
    match tx.dialect() {
        Dialect::Mysql => {
            let rows: Vec<(u64, u64, u64, u64)> = marks
                .iter()
                .map(|m| (m.user, m.device, m.thread, m.seq))
                .collect();
            tx.exec(
                "INSERT INTO device_cursors (device_id, thread_id, delivered_seq) \
                 SELECT j.d, j.t, LEAST(j.s, IF(tm.active = 1, t.last_seq, tm.left_seq)) \
                 FROM JSON_TABLE(?, '$[*]' COLUMNS (u BIGINT PATH '$[0]', d BIGINT PATH '$[1]', \
                     t BIGINT PATH '$[2]', s BIGINT PATH '$[3]')) AS j \
                 STRAIGHT_JOIN thread_members tm FORCE INDEX (PRIMARY) \
                     ON tm.thread_id = j.t AND tm.user_id = j.u \
                 STRAIGHT_JOIN threads t FORCE INDEX (PRIMARY) ON t.id = j.t \
                 ON DUPLICATE KEY UPDATE \
                 delivered_seq = GREATEST(delivered_seq, VALUES(delivered_seq))",
                params![to_json(&rows)?.as_str()],
            )
            .await?;
        }
        Dialect::Sqlite => {
            for m in marks {
                tx.exec(
                    "INSERT INTO device_cursors (device_id, thread_id, delivered_seq) \
                     SELECT ?, tm.thread_id, \
                     MIN(?, CASE WHEN tm.active = 1 THEN t.last_seq ELSE tm.left_seq END) \
                     FROM thread_members tm JOIN threads t ON t.id = tm.thread_id \
                     WHERE tm.thread_id = ? AND tm.user_id = ? \
                     ON CONFLICT (device_id, thread_id) DO UPDATE SET \
                     delivered_seq = MAX(delivered_seq, excluded.delivered_seq)",
                    params![m.device, m.seq, m.thread, m.user],
                )
                .await?;
            }
        }
    }
    Ok(())
}

/// Entries after `since`, ascending, at most `limit`.
pub async fn sync<T: Tx>(
    tx: &mut T,
    user: u64,
    thread_id: u64,
    since: u64,
    limit: u32,
) -> StoreResult<pb::MessagePage> {
    let acc = access(tx, user, thread_id).await?;
    let rows = tx
        .query(
            concat!(
                "SELECT ",
                message_cols!(),
                " FROM messages m",
                message_joins!(),
                "WHERE m.thread_id = ? AND m.seq > ? AND m.seq <= ? ORDER BY m.seq LIMIT ?"
            ),
            params![thread_id, since, acc.visible_seq, i64::from(limit) + 1],
        )
        .await?;
    let has_more = rows.len() > limit as usize;
    let mut messages = rows
        .iter()
        .take(limit as usize)
        .map(|r| message_from_row(r, user))
        .collect::<StoreResult<Vec<_>>>()?;
    super::reactions::attach(tx, user, &mut messages).await?;
    Ok(pb::MessagePage {
        thread_id,
        messages,
        has_more,
        last_seq: acc.visible_seq,
    })
}

/// The newest `limit` entries before `before` (0 = the end), returned ascending.
pub async fn history<T: Tx>(
    tx: &mut T,
    user: u64,
    thread_id: u64,
    before: u64,
    limit: u32,
) -> StoreResult<pb::MessagePage> {
    let acc = access(tx, user, thread_id).await?;
    let upper = if before == 0 {
        acc.visible_seq + 1
    } else {
        before.min(acc.visible_seq + 1)
    };
    let rows = tx
        .query(
            concat!(
                "SELECT ",
                message_cols!(),
                " FROM messages m",
                message_joins!(),
                "WHERE m.thread_id = ? AND m.seq < ? ORDER BY m.seq DESC LIMIT ?"
            ),
            params![thread_id, upper, i64::from(limit) + 1],
        )
        .await?;
    let has_more = rows.len() > limit as usize;
    let mut messages = rows
        .iter()
        .take(limit as usize)
        .map(|r| message_from_row(r, user))
        .collect::<StoreResult<Vec<_>>>()?;
    messages.reverse();
    super::reactions::attach(tx, user, &mut messages).await?;
    Ok(pb::MessagePage {
        thread_id,
        messages,
        has_more,
        last_seq: acc.visible_seq,
    })
}

/// The caller's threads, most recent activity first.
pub async fn list_threads<T: Tx>(
    tx: &mut T,
    user: u64,
    before_activity: u64,
    limit: u32,
) -> StoreResult<pb::ThreadList> {
    let before = if before_activity == 0 {
        i64::MAX
    } else {
        clamp_i64(before_activity)
    };
    let rows = tx
        .query(
            // A former member's activity stops at the entry that ended its membership.
            "SELECT t.id FROM thread_members tm JOIN threads t ON t.id = tm.thread_id \
             LEFT JOIN messages m ON tm.active = 0 AND m.thread_id = tm.thread_id AND m.seq = tm.left_seq \
             WHERE tm.user_id = ? \
             AND CASE WHEN tm.active = 1 THEN t.activity_id ELSE COALESCE(m.message_id, t.activity_id) END < ? \
             ORDER BY CASE WHEN tm.active = 1 THEN t.activity_id ELSE COALESCE(m.message_id, t.activity_id) END DESC \
             LIMIT ?",
            params![user, before, i64::from(limit) + 1],
        )
        .await?;
    let has_more = rows.len() > limit as usize;
    let mut threads = Vec::with_capacity(rows.len().min(limit as usize));
    for r in rows.iter().take(limit as usize) {
        threads.push(super::views::thread_info(tx, user, r.u64(0)?).await?);
    }
    Ok(pb::ThreadList { threads, has_more })
}

/// Finds a thread by id, by peer (private) or by group.
pub async fn find_thread<T: Tx>(
    tx: &mut T,
    user: u64,
    thread_id: u64,
    peer: u64,
    group_id: u64,
) -> StoreResult<pb::Thread> {
    let id = if thread_id != 0 {
        thread_id
    } else if peer != 0 {
        let (lo, hi) = (user.min(peer), user.max(peer));
        tx.query_opt(
            "SELECT id FROM threads WHERE user_a = ? AND user_b = ?",
            params![lo, hi],
        )
        .await?
        .ok_or(StoreError::NotFound("thread"))?
        .u64(0)?
    } else {
        tx.query_opt(
            "SELECT thread_id FROM chat_groups WHERE id = ?",
            params![group_id],
        )
        .await?
        .ok_or(StoreError::NotFound("group"))?
        .u64(0)?
    };
    super::views::thread_info(tx, user, id).await
}

/// Active members of a thread: the recipients of its pushes.
pub async fn active_members<T: Tx>(tx: &mut T, thread_id: u64) -> StoreResult<Vec<u64>> {
    let rows = tx
        .query(
            "SELECT user_id FROM thread_members WHERE thread_id = ? AND active = 1",
            params![thread_id],
        )
        .await?;
    rows.iter().map(|r| r.u64(0)).collect()
}
