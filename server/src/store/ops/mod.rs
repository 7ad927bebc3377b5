//! The business operations, each one transaction, written once against [`Tx`] so every backend
//! runs identical rules. Permission checks happen inside the same transaction as the writes they
//! guard, so a concurrent change cannot slip between check and write.

pub mod accounts;
pub mod admin;
pub mod audit;
pub mod bans;
pub mod blocks;
pub mod friends;
pub mod groups;
pub mod invites;
pub mod messages;
pub mod reactions;
pub mod removal;
pub mod search;
pub mod views;

use confab_wire::pb;
use prost::Message as _;

use super::{Counter, StoreError, StoreResult, Tx, TxExt};
use crate::ids::{Snowflake, now_ms};
use crate::params;

/// What an operation changed that online devices should hear about.
#[derive(Debug, Default, Clone)]
pub struct Effects {
    /// New per-user events, to push to that user's devices.
    pub events: Vec<(u64, pb::UserEvent)>,
    /// New thread entries, to push to the thread's active members.
    pub messages: Vec<pb::ChatMessage>,
    /// Threads whose active member set changed.
    pub members_changed: Vec<u64>,
}

/// Request states as stored.
pub(crate) mod state {
    pub const PENDING: i64 = 1;
    pub const ACCEPTED: i64 = 2;
    pub const DECLINED: i64 = 3;
    pub const CANCELLED: i64 = 4;
}

/// Thread kinds as stored.
pub(crate) mod kind {
    pub const PRIVATE: i64 = 1;
    pub const GROUP: i64 = 2;
}

pub(crate) fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Loads a user's public identity.
/// Rows of (user id, name) as users.
pub(super) fn users_of_rows(rows: &[crate::store::Row]) -> StoreResult<Vec<pb::User>> {
    rows.iter()
        .map(|r| {
            Ok(pb::User {
                user_id: r.u64(0)?,
                name: r.text(1)?,
            })
        })
        .collect()
}

pub async fn user<T: Tx>(tx: &mut T, id: u64) -> StoreResult<pb::User> {
    let row = tx
        .query_opt("SELECT id, name FROM users WHERE id = ?", params![id])
        .await?
        .ok_or(StoreError::NotFound("user"))?;
    Ok(pb::User {
        user_id: row.u64(0)?,
        name: row.text(1)?,
    })
}

/// A user whose account was not deleted (NOT_FOUND otherwise): whom one may befriend or
/// invite.
pub async fn live_user<T: Tx>(tx: &mut T, id: u64) -> StoreResult<pb::User> {
    let row = tx
        .query_opt(
            "SELECT id, name FROM users WHERE id = ? AND deleted_ms = 0",
            params![id],
        )
        .await?
        .ok_or(StoreError::NotFound("user"))?;
    Ok(pb::User {
        user_id: row.u64(0)?,
        name: row.text(1)?,
    })
}

/// Appends a durable event to `user_id`'s stream.
pub async fn emit<T: Tx>(
    tx: &mut T,
    fx: &mut Effects,
    user_id: u64,
    kind: pb::user_event::Kind,
) -> StoreResult<()> {
    let event_seq = tx
        .bump(Counter::UserEvent, user_id)
        .await?
        .ok_or(StoreError::NotFound("user"))?;
    let event = pb::UserEvent {
        event_seq,
        ts_ms: now_ms(),
        kind: Some(kind),
    };
    let payload = event.encode_to_vec();
    tx.exec(
        "INSERT INTO user_events (user_id, event_seq, ts_ms, payload) VALUES (?, ?, ?, ?)",
        params![user_id, event_seq, event.ts_ms, &payload],
    )
    .await?;
    fx.events.push((user_id, event));
    Ok(())
}

/// A new thread entry before it has a seq.
pub struct NewEntry<'a> {
    pub sender: &'a pb::User,
    pub sender_device_id: u64,
    pub client_msg_id: Option<&'a str>,
    pub kind: pb::MessageKind,
    pub body: &'a str,
    pub target_message_id: u64,
    pub group_change: Option<pb::GroupChange>,
    /// A reply: the message it answers, as it reads now.
    pub quote: Option<pb::Quote>,
}

/// Appends an entry to a thread: allocates the next seq with an atomic update of the thread
/// row (so seq order is commit order) and inserts the message. The entry goes to `fx` (for the
/// fan-out); what an ack needs is returned.
pub async fn append<T: Tx>(
    tx: &mut T,
    ids: &Snowflake,
    fx: &mut Effects,
    thread_id: u64,
    entry: NewEntry<'_>,
) -> StoreResult<pb::SendAck> {
    let message_id = ids.next_id();
    let seq = tx
        .bump(
            Counter::ThreadSeq {
                activity_id: message_id,
            },
            thread_id,
        )
        .await?
        .ok_or(StoreError::NotFound("thread"))?;
    insert_entry(tx, fx, thread_id, seq, message_id, entry).await
}

/// Inserts an entry whose seq was allocated; it goes to `fx`, and what an ack needs is
/// returned.
pub(crate) async fn insert_entry<T: Tx>(
    tx: &mut T,
    fx: &mut Effects,
    thread_id: u64,
    seq: u64,
    message_id: u64,
    entry: NewEntry<'_>,
) -> StoreResult<pb::SendAck> {
    let now = now_ms();
    let system = entry.group_change.as_ref().map(|g| g.encode_to_vec());
    let system_param = match &system {
        Some(b) => super::Param::Blob(b),
        None => super::Param::Null,
    };
    let cmid = match entry.client_msg_id {
        Some(c) => super::Param::Text(c),
        None => super::Param::Null,
    };
    let reply_to = entry.quote.as_ref().map_or(0, |q| q.message_id);
    tx.exec(
        "INSERT INTO messages (thread_id, seq, message_id, sender_id, sender_device_id, \
         client_msg_id, kind, body, target_message_id, group_change, created_ms, reply_to) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        &[
            thread_id.into(),
            seq.into(),
            message_id.into(),
            entry.sender.user_id.into(),
            entry.sender_device_id.into(),
            cmid,
            i64::from(entry.kind as i32).into(),
            entry.body.into(),
            entry.target_message_id.into(),
            system_param,
            now.into(),
            reply_to.into(),
        ],
    )
    .await?;
    if entry.kind == pb::MessageKind::Text && crate::store::search::indexing() {
        search::index(tx, message_id, entry.body).await?;
    }
    Ok(stored_entry(fx, thread_id, seq, message_id, now, entry))
}

/// An entry now stored at `seq`: it goes to `fx` (for the fan-out), and its sender's ack is
/// returned.
pub(crate) fn stored_entry(
    fx: &mut Effects,
    thread_id: u64,
    seq: u64,
    message_id: u64,
    now: i64,
    entry: NewEntry<'_>,
) -> pb::SendAck {
    let client_msg_id = entry.client_msg_id.unwrap_or_default().to_owned();
    let ack = pb::SendAck {
        thread_id,
        message_id,
        seq,
        server_ts_ms: now,
        duplicate: false,
        client_msg_id: client_msg_id.clone(),
    };
    fx.messages.push(pb::ChatMessage {
        thread_id,
        seq,
        message_id,
        sender: Some(entry.sender.clone()),
        sender_device_id: entry.sender_device_id,
        client_msg_id,
        server_ts_ms: now,
        kind: entry.kind as i32,
        body: entry.body.to_owned(),
        target_message_id: entry.target_message_id,
        group_change: entry.group_change,
        recalled: false,
        edited_ts_ms: 0,
        reply_to: entry.quote.as_ref().map_or(0, |q| q.message_id),
        quote: entry.quote,
        reactions: Vec::new(),
        reactions_seq: 0,
    });
    ack
}

/// The caller's view of a thread: whether it is a member, may send, and the highest seq it may
/// read.
#[derive(Debug, Clone, Copy)]
pub struct Access {
    pub active: bool,
    pub visible_seq: u64,
    pub read_seq: u64,
    pub last_seq: u64,
}

/// Checks that `user` may read `thread_id`; NOT_FOUND for a thread that does not exist or that
/// the user never belonged to.
pub async fn access<T: Tx>(tx: &mut T, user: u64, thread_id: u64) -> StoreResult<Access> {
    let row = tx
        .query_opt(
            "SELECT tm.active, tm.left_seq, tm.read_seq, t.last_seq FROM thread_members tm \
             JOIN threads t ON t.id = tm.thread_id WHERE tm.thread_id = ? AND tm.user_id = ?",
            params![thread_id, user],
        )
        .await?;
    match row {
        Some(r) => {
            let active = r.bool(0)?;
            let last_seq = r.u64(3)?;
            Ok(Access {
                active,
                visible_seq: if active {
                    last_seq
                } else {
                    r.u64(1)?.min(last_seq)
                },
                read_seq: r.u64(2)?,
                last_seq,
            })
        }
        // A thread the user never belonged to is not visible: the same answer as one that
        // does not exist (PROTOCOL.md: NOT_FOUND for reads and markers), so ids reveal nothing.
        None => Err(StoreError::NotFound("thread")),
    }
}

pub(crate) async fn thread_missing_or_forbidden<T: Tx>(tx: &mut T, thread_id: u64) -> StoreError {
    match tx
        .query_opt("SELECT id FROM threads WHERE id = ?", params![thread_id])
        .await
    {
        Ok(Some(_)) => StoreError::Forbidden("not a member of this thread"),
        Ok(None) => StoreError::NotFound("thread"),
        Err(e) => e,
    }
}

/// Columns of `messages m` and its [`message_joins`] that [`message_from_row`] reads (a macro,
/// so it can be part of a `concat!`ed static statement).
macro_rules! message_cols {
    () => {
        "m.thread_id, m.seq, m.message_id, m.sender_id, u.name, m.sender_device_id, \
         m.client_msg_id, m.created_ms, m.kind, m.body, m.target_message_id, m.group_change, \
         m.recalled, m.edited_ms, m.reply_to, m.reactions_seq, q.seq, q.sender_id, qu.name, \
         q.body, q.recalled"
    };
}
pub(crate) use message_cols;

/// What `messages m` joins for [`message_cols`]: its sender, and the message it replies to
/// with that one's sender (none for most entries: `reply_to` 0 matches no message).
macro_rules! message_joins {
    () => {
        " JOIN users u ON u.id = m.sender_id \
         LEFT JOIN messages q ON q.message_id = m.reply_to \
         LEFT JOIN users qu ON qu.id = q.sender_id "
    };
}
pub(crate) use message_joins;

/// How much of the replied-to text a quote carries.
pub const EXCERPT_MAX_BYTES: usize = 120;

/// The start of a text, whole grapheme clusters, at most [`EXCERPT_MAX_BYTES`]; and whether
/// more follows.
pub(crate) fn excerpt(body: &str) -> (String, bool) {
    use unicode_segmentation::UnicodeSegmentation;
    let mut end = 0;
    for (i, g) in body.grapheme_indices(true) {
        if i + g.len() > EXCERPT_MAX_BYTES {
            return (body[..end].to_owned(), true);
        }
        end = i + g.len();
    }
    (body.to_owned(), false)
}

/// The quote of message `message_id` for a reply, from its seq, sender, text and recalled
/// flag.
pub(crate) fn quote(
    message_id: u64,
    seq: u64,
    sender: pb::User,
    body: &str,
    recalled: bool,
) -> pb::Quote {
    let (excerpt, truncated) = if recalled {
        (String::new(), false)
    } else {
        excerpt(body)
    };
    pb::Quote {
        message_id,
        seq,
        sender: Some(sender),
        excerpt,
        truncated,
        recalled,
    }
}

/// Builds a message from a row of `message_cols!()`; `viewer`'s own entries keep their
/// client_msg_id, others' do not.
pub(crate) fn message_from_row(row: &super::Row, viewer: u64) -> StoreResult<pb::ChatMessage> {
    let sender_id = row.u64(3)?;
    let system = row.blob(11)?;
    let group_change = if system.is_empty() {
        None
    } else {
        Some(
            pb::GroupChange::decode(system.as_slice())
                .map_err(|e| StoreError::Corrupt(format!("group change: {e}")))?,
        )
    };
    Ok(pb::ChatMessage {
        thread_id: row.u64(0)?,
        seq: row.u64(1)?,
        message_id: row.u64(2)?,
        sender: Some(pb::User {
            user_id: sender_id,
            name: row.text(4)?,
        }),
        sender_device_id: row.u64(5)?,
        client_msg_id: if sender_id == viewer {
            row.text(6)?
        } else {
            String::new()
        },
        server_ts_ms: row.i64(7)?,
        kind: i32::try_from(row.i64(8)?).unwrap_or(0),
        body: row.text(9)?,
        target_message_id: row.u64(10)?,
        group_change,
        recalled: row.bool(12)?,
        edited_ts_ms: row.i64(13)?,
        reply_to: row.u64(14)?,
        quote: match row.opt_i64(16)? {
            Some(seq) if row.u64(14)? != 0 => Some(quote(
                row.u64(14)?,
                u64::try_from(seq).unwrap_or(0),
                pb::User {
                    user_id: row.u64(17)?,
                    name: row.text(18)?,
                },
                &row.text(19)?,
                row.bool(20)?,
            )),
            _ => None,
        },
        // The reactions themselves come from [`reactions::attach`], which every reader of
        // these rows calls.
        reactions: Vec::new(),
        reactions_seq: row.u64(15)?,
    })
}

/// The comparison form of a name: NFC, lowercased (all scripts), NFC again.
pub fn fold(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    s.nfc().collect::<String>().to_lowercase().nfc().collect()
}

/// Escapes `%`, `_` and `!` for a LIKE pattern used with `ESCAPE '!'` (not backslash, which
/// MySQL also treats as a string escape).
pub(crate) fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '%' | '_' | '!') {
            out.push('!');
        }
        out.push(c);
    }
    out
}

/// The event stream after `since`, ascending.
pub async fn sync_events<T: Tx>(
    tx: &mut T,
    user: u64,
    since: u64,
    limit: u32,
) -> StoreResult<pb::EventPage> {
    let rows = tx
        .query(
            "SELECT payload FROM user_events WHERE user_id = ? AND event_seq > ? \
             ORDER BY event_seq LIMIT ?",
            params![user, since, i64::from(limit) + 1],
        )
        .await?;
    let has_more = rows.len() > limit as usize;
    let mut events = Vec::with_capacity(rows.len().min(limit as usize));
    for row in rows.iter().take(limit as usize) {
        let bytes = row.blob(0)?;
        events.push(
            pb::UserEvent::decode(bytes.as_slice())
                .map_err(|e| StoreError::Corrupt(format!("event: {e}")))?,
        );
    }
    let last = tx
        .query_opt("SELECT event_seq FROM users WHERE id = ?", params![user])
        .await?
        .ok_or(StoreError::NotFound("user"))?
        .u64(0)?;
    Ok(pb::EventPage {
        events,
        has_more,
        last_event_seq: last,
    })
}
