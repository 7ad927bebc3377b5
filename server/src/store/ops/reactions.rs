//! Reactions to text messages: at most one per user and emoji, each change an entry of the
//! thread (REACTION_ADDED / REACTION_REMOVED) so sync and the gap rule carry them like any
//! other entry; the `reactions` table holds the current set, for the counts a page shows.

use std::collections::HashMap;

use confab_wire::pb;

use super::{Effects, NewEntry, access, append};
use crate::ids::{Snowflake, now_ms};
use crate::params;
use crate::store::{StoreError, StoreResult, Tx, TxExt};

use super::messages::Sent;

/// A reaction added or taken back, as the writer sees it.
#[derive(Debug, Clone)]
pub struct ReactReq {
    pub sender: pb::User,
    pub device_id: u64,
    pub thread_id: u64,
    pub message_id: u64,
    /// Validated: one grapheme cluster, NFC.
    pub emoji: String,
    pub remove: bool,
    /// Distinct emoji a message may hold.
    pub max_kinds: usize,
}

/// The text message a reply or a reaction refers to: its seq, sender and text, checked to be
/// a TEXT message of the thread that was not recalled.
pub(crate) struct Target {
    pub seq: u64,
    pub sender: pb::User,
    pub body: String,
}

pub(crate) async fn target<T: Tx>(
    tx: &mut T,
    thread_id: u64,
    message_id: u64,
) -> StoreResult<Target> {
    let row = tx
        .query_opt(
            "SELECT m.seq, m.kind, m.recalled, m.sender_id, u.name, m.body FROM messages m \
             JOIN users u ON u.id = m.sender_id WHERE m.thread_id = ? AND m.message_id = ?",
            params![thread_id, message_id],
        )
        .await?
        .ok_or(StoreError::NotFound("message"))?;
    if row.i64(1)? != i64::from(pb::MessageKind::Text as i32) {
        return Err(StoreError::NotFound("message"));
    }
    if row.bool(2)? {
        return Err(StoreError::Conflict("the message was recalled"));
    }
    Ok(Target {
        seq: row.u64(0)?,
        sender: pb::User {
            user_id: row.u64(3)?,
            name: row.text(4)?,
        },
        body: row.text(5)?,
    })
}

/// Adds or takes back a reaction. Nothing changes (and no entry is stored) when the reaction
/// is already in the asked state: the ack then says `duplicate` with seq 0.
pub async fn react<T: Tx>(
    tx: &mut T,
    ids: &Snowflake,
    req: &ReactReq,
) -> StoreResult<(Sent, Effects)> {
    let mut fx = Effects::default();
    // Without a thread (a CLI given only the message id) the message names it.
    let thread_id = if req.thread_id != 0 {
        req.thread_id
    } else {
        tx.query_opt(
            "SELECT thread_id FROM messages WHERE message_id = ?",
            params![req.message_id],
        )
        .await?
        .ok_or(StoreError::NotFound("message"))?
        .u64(0)?
    };
    let req = &ReactReq {
        thread_id,
        ..req.clone()
    };
    let acc = access(tx, req.sender.user_id, req.thread_id).await?;
    if !acc.active {
        return Err(StoreError::Forbidden(
            "you can no longer send to this thread",
        ));
    }
    let t = target(tx, req.thread_id, req.message_id).await?;
    let row = tx
        .query_opt(
            // COUNT, not SUM: an integer on both stores (MySQL's SUM is a DECIMAL).
            "SELECT COUNT(DISTINCT emoji), COUNT(CASE WHEN emoji = ? THEN 1 END), \
             COUNT(CASE WHEN emoji = ? AND user_id = ? THEN 1 END) \
             FROM reactions WHERE thread_id = ? AND target_seq = ?",
            params![
                req.emoji.as_str(),
                req.emoji.as_str(),
                req.sender.user_id,
                req.thread_id,
                t.seq
            ],
        )
        .await?
        .ok_or(StoreError::Corrupt("reaction count returned no row".into()))?;
    let (kinds, this_kind, mine) = (row.u64(0)?, row.u64(1)?, row.u64(2)? > 0);
    if mine != req.remove {
        let ack = pb::SendAck {
            thread_id: req.thread_id,
            server_ts_ms: now_ms(),
            duplicate: true,
            ..Default::default()
        };
        return Ok((Sent { ack }, fx));
    }
    if !req.remove && this_kind == 0 && kinds >= req.max_kinds as u64 {
        return Err(StoreError::LimitReached(
            "the message has as many kinds of reaction as it may",
        ));
    }
    let kind = if req.remove {
        pb::MessageKind::ReactionRemoved
    } else {
        pb::MessageKind::ReactionAdded
    };
    // A reaction is not news: the thread keeps its place in lists (its activity).
    let activity = tx
        .query_opt(
            "SELECT activity_id FROM threads WHERE id = ?",
            params![req.thread_id],
        )
        .await?
        .ok_or(StoreError::NotFound("thread"))?
        .u64(0)?;
    let ack = append(
        tx,
        ids,
        &mut fx,
        req.thread_id,
        NewEntry {
            sender: &req.sender,
            sender_device_id: req.device_id,
            client_msg_id: None,
            kind,
            body: &req.emoji,
            target_message_id: req.message_id,
            group_change: None,
            quote: None,
        },
    )
    .await?;
    if req.remove {
        tx.exec(
            "DELETE FROM reactions WHERE thread_id = ? AND target_seq = ? AND user_id = ? AND emoji = ?",
            params![req.thread_id, t.seq, req.sender.user_id, req.emoji.as_str()],
        )
        .await?;
    } else {
        tx.exec(
            "INSERT INTO reactions (thread_id, target_seq, user_id, emoji, seq) VALUES (?, ?, ?, ?, ?)",
            params![req.thread_id, t.seq, req.sender.user_id, req.emoji.as_str(), ack.seq],
        )
        .await?;
    }
    tx.exec(
        "UPDATE messages SET reactions_seq = ? WHERE thread_id = ? AND seq = ?",
        params![ack.seq, req.thread_id, t.seq],
    )
    .await?;
    tx.exec(
        "UPDATE threads SET activity_id = ? WHERE id = ?",
        params![activity, req.thread_id],
    )
    .await?;
    Ok((Sent { ack }, fx))
}

/// A recalled message loses its reactions (it shows as recalled, with nothing under it).
pub(crate) async fn clear<T: Tx>(tx: &mut T, thread_id: u64, target_seq: u64) -> StoreResult<()> {
    tx.exec(
        "DELETE FROM reactions WHERE thread_id = ? AND target_seq = ?",
        params![thread_id, target_seq],
    )
    .await?;
    Ok(())
}

/// Fills in the reactions of the messages that have any (`reactions_seq` > 0, as read from the
/// row), as `viewer` sees them: a former member counts the reactions added before it left that
/// are still there, and its `reactions_seq` stops where its view does. One query per thread.
pub(crate) async fn attach<T: Tx>(
    tx: &mut T,
    viewer: u64,
    messages: &mut [pb::ChatMessage],
) -> StoreResult<()> {
    // thread -> (lowest, highest) seq of its messages that have reactions.
    let mut ranges: HashMap<u64, (u64, u64)> = HashMap::new();
    for m in messages.iter().filter(|m| m.reactions_seq > 0) {
        let r = ranges.entry(m.thread_id).or_insert((m.seq, m.seq));
        r.0 = r.0.min(m.seq);
        r.1 = r.1.max(m.seq);
    }
    for (thread, (lo, hi)) in ranges {
        let visible = access(tx, viewer, thread).await?.visible_seq;
        let rows = tx
            .query(
                "SELECT target_seq, emoji, COUNT(*), COUNT(CASE WHEN user_id = ? THEN 1 END), \
                 MIN(seq) \
                 FROM reactions WHERE thread_id = ? AND target_seq >= ? AND target_seq <= ? \
                 AND seq <= ? GROUP BY target_seq, emoji ORDER BY target_seq, MIN(seq)",
                params![viewer, thread, lo, hi, visible],
            )
            .await?;
        let mut by_seq: HashMap<u64, Vec<pb::Reaction>> = HashMap::new();
        for r in &rows {
            by_seq.entry(r.u64(0)?).or_default().push(pb::Reaction {
                emoji: r.text(1)?,
                count: u32::try_from(r.u64(2)?).unwrap_or(u32::MAX),
                mine: r.u64(3)? > 0,
            });
        }
        for m in messages
            .iter_mut()
            .filter(|m| m.thread_id == thread && m.reactions_seq > 0)
        {
            m.reactions = by_seq.remove(&m.seq).unwrap_or_default();
            m.reactions_seq = m.reactions_seq.min(visible);
        }
    }
    Ok(())
}
