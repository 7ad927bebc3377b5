//! The local cache: one SQLite file per server and account, holding threads, their cursors,
//! messages, the event cursor and the outbox, so history shows without the network, sync is
//! incremental, and unsent messages survive a restart.

use std::path::Path;

use confab_wire::pb;

use super::relations;
use prost::Message as _;
use rusqlite::{Connection, OptionalExtension, params};

/// A cache failure.
#[derive(Debug, thiserror::Error)]
#[error("local cache: {0}")]
pub struct CacheError(String);

impl From<rusqlite::Error> for CacheError {
    fn from(e: rusqlite::Error) -> Self {
        Self(e.to_string())
    }
}

impl From<prost::DecodeError> for CacheError {
    fn from(e: prost::DecodeError) -> Self {
        Self(format!("corrupt cached record: {e}"))
    }
}

type Res<T> = Result<T, CacheError>;

/// An unsent (or unacknowledged) message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    pub local_id: u64,
    pub thread_id: u64,
    pub client_msg_id: String,
    pub body: String,
    pub created_ms: i64,
    /// The message this one answers (0: none).
    pub reply_to: u64,
}

/// A message the server refused for good: kept (out of the outbox) until the user deletes or
/// resends it, so it does not vanish at the next start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedItem {
    pub local_id: u64,
    pub thread_id: u64,
    pub body: String,
    pub created_ms: i64,
    /// The server's `ErrorCode` (INTERNAL for a local failure).
    pub code: i32,
    pub reason: String,
}

/// What the cache holds at start.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub event_seq: u64,
    pub threads: Vec<(pb::Thread, u64)>,
    pub outbox: Vec<OutboxItem>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS threads (thread_id INTEGER PRIMARY KEY, info BLOB NOT NULL, cursor INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    thread_id INTEGER NOT NULL, seq INTEGER NOT NULL, data BLOB NOT NULL,
    message_id INTEGER NOT NULL, PRIMARY KEY (thread_id, seq)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS messages_id ON messages(message_id);
CREATE TABLE IF NOT EXISTS outbox (
    local_id INTEGER PRIMARY KEY, thread_id INTEGER NOT NULL, client_msg_id TEXT NOT NULL,
    body TEXT NOT NULL, created_ms INTEGER NOT NULL, reply_to INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS failed (
    local_id INTEGER PRIMARY KEY, thread_id INTEGER NOT NULL, body TEXT NOT NULL,
    created_ms INTEGER NOT NULL, code INTEGER NOT NULL, reason TEXT NOT NULL);
";

/// Columns added after a cache was first written: a cache from an older client gains them.
fn add_columns(db: &Connection) -> Res<()> {
    let has: bool = db.query_row(
        "SELECT COUNT(*) FROM pragma_table_info('outbox') WHERE name = 'reply_to'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    if !has {
        db.execute_batch("ALTER TABLE outbox ADD COLUMN reply_to INTEGER NOT NULL DEFAULT 0")?;
    }
    Ok(())
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The SQLite cache. The connection sits behind a mutex only so the engine future is `Send`;
/// one task uses it.
pub struct Cache {
    /// `None`: persistence is off (load generators); every call is a no-op.
    db: Option<std::sync::Mutex<Connection>>,
}

impl Cache {
    /// Opens or creates the cache file (mode 0600 on Unix).
    pub fn open(path: &Path) -> Res<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| CacheError(format!("{}: {e}", dir.display())))?;
        }
        let db = Connection::open(path)?;
        restrict_permissions(path);
        db.pragma_update(None, "journal_mode", "WAL")?;
        // A lost cache write costs a re-sync, never data: the server is the truth.
        db.pragma_update(None, "synchronous", "NORMAL")?;
        db.execute_batch(SCHEMA)?;
        add_columns(&db)?;
        Ok(Self {
            db: Some(std::sync::Mutex::new(db)),
        })
    }

    /// An in-memory cache (tests, load generators).
    pub fn memory() -> Res<Self> {
        let db = Connection::open_in_memory()?;
        db.execute_batch(SCHEMA)?;
        add_columns(&db)?;
        Ok(Self {
            db: Some(std::sync::Mutex::new(db)),
        })
    }

    /// No persistence at all: nothing is stored, history is empty.
    pub fn off() -> Self {
        Self { db: None }
    }

    fn conn(&self) -> Option<std::sync::MutexGuard<'_, Connection>> {
        self.db
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn load(&self) -> Res<Snapshot> {
        let event_seq = self.meta("event_seq")?;
        let Some(db) = self.conn() else {
            return Ok(Snapshot::default());
        };
        let mut stmt = db.prepare("SELECT info, cursor FROM threads")?;
        let threads = stmt
            .query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))?
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .map(|(info, cursor)| Ok((pb::Thread::decode(info.as_slice())?, to_u64(cursor))))
            .collect::<Res<Vec<_>>>()?;
        let mut stmt = db
            .prepare("SELECT local_id, thread_id, client_msg_id, body, created_ms, reply_to FROM outbox ORDER BY local_id")?;
        let outbox = stmt
            .query_map([], |r| {
                Ok(OutboxItem {
                    local_id: to_u64(r.get(0)?),
                    thread_id: to_u64(r.get(1)?),
                    client_msg_id: r.get(2)?,
                    body: r.get(3)?,
                    created_ms: r.get(4)?,
                    reply_to: to_u64(r.get(5)?),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Snapshot {
            event_seq,
            threads,
            outbox,
        })
    }

    fn meta(&self, key: &str) -> Res<u64> {
        let Some(db) = self.conn() else { return Ok(0) };
        Ok(db
            .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get::<_, i64>(0)
            })
            .optional()?
            .map_or(0, to_u64))
    }

    fn set_meta(&self, key: &str, v: u64) -> Res<()> {
        let Some(db) = self.conn() else { return Ok(()) };
        db.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, to_i64(v)],
        )?;
        Ok(())
    }

    pub fn set_event_seq(&self, v: u64) -> Res<()> {
        self.set_meta("event_seq", v)
    }

    pub fn save_thread(&self, t: &pb::Thread, cursor: u64) -> Res<()> {
        let Some(db) = self.conn() else { return Ok(()) };
        db.execute(
            "INSERT INTO threads (thread_id, info, cursor) VALUES (?1, ?2, ?3) \
             ON CONFLICT(thread_id) DO UPDATE SET info = excluded.info, cursor = MAX(cursor, excluded.cursor)",
            params![to_i64(t.thread_id), t.encode_to_vec(), to_i64(cursor)],
        )?;
        Ok(())
    }

    /// Stores messages (already in seq order) and moves the thread's cursor, in one transaction.
    /// Stores entries of a thread (a copy of a cached one replaces it, keeping the newer
    /// reaction counts) and applies recalls, edits and reactions to their targets; `me` is
    /// the account's user id (whose reactions are `mine`).
    pub fn save_messages(
        &self,
        thread_id: u64,
        msgs: &[pb::ChatMessage],
        cursor: u64,
        me: u64,
    ) -> Res<()> {
        let Some(mut db) = self.conn() else {
            return Ok(());
        };
        let tx = db.transaction()?;
        {
            let mut ins = tx.prepare_cached(
                "INSERT OR IGNORE INTO messages (thread_id, seq, data, message_id) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for m in msgs {
                let added = ins.execute(params![
                    to_i64(m.thread_id),
                    to_i64(m.seq),
                    m.encode_to_vec(),
                    to_i64(m.message_id)
                ])?;
                if added == 0 {
                    replace_message(&tx, m)?;
                }
                if m.target_message_id != 0 {
                    amend_target(&tx, m, me)?;
                }
            }
            tx.execute(
                "UPDATE threads SET cursor = MAX(cursor, ?2) WHERE thread_id = ?1",
                params![to_i64(thread_id), to_i64(cursor)],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The cached entry of a thread with this message id (0: none).
    pub fn message_by_id(&self, thread_id: u64, message_id: u64) -> Res<Option<pb::ChatMessage>> {
        let Some(db) = self.conn() else {
            return Ok(None);
        };
        if message_id == 0 {
            return Ok(None);
        }
        let data: Option<Vec<u8>> = db
            .query_row(
                "SELECT data FROM messages WHERE thread_id = ?1 AND message_id = ?2",
                params![to_i64(thread_id), to_i64(message_id)],
                |r| r.get(0),
            )
            .optional()?;
        data.map(|d| pb::ChatMessage::decode(d.as_slice()).map_err(Into::into))
            .transpose()
    }

    /// Up to `limit` messages before `before_seq` (0 = newest), ascending.
    pub fn messages(
        &self,
        thread_id: u64,
        before_seq: u64,
        limit: u32,
    ) -> Res<Vec<pb::ChatMessage>> {
        let before = if before_seq == 0 {
            i64::MAX
        } else {
            to_i64(before_seq)
        };
        let Some(db) = self.conn() else {
            return Ok(Vec::new());
        };
        let mut stmt = db.prepare_cached(
            "SELECT data FROM messages WHERE thread_id = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3",
        )?;
        let mut out = stmt
            .query_map(params![to_i64(thread_id), before, i64::from(limit)], |r| {
                r.get::<_, Vec<u8>>(0)
            })?
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .map(|b| Ok(pb::ChatMessage::decode(b.as_slice())?))
            .collect::<Res<Vec<_>>>()?;
        out.reverse();
        Ok(out)
    }

    pub fn message_count(&self) -> Res<u64> {
        let Some(db) = self.conn() else { return Ok(0) };
        Ok(to_u64(db.query_row(
            "SELECT COUNT(*) FROM messages",
            [],
            |r| r.get(0),
        )?))
    }

    pub fn outbox_add(&self, item: &OutboxItem) -> Res<()> {
        let Some(db) = self.conn() else { return Ok(()) };
        db.execute(
            "INSERT OR REPLACE INTO outbox (local_id, thread_id, client_msg_id, body, created_ms, reply_to) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![to_i64(item.local_id), to_i64(item.thread_id), item.client_msg_id, item.body, item.created_ms, to_i64(item.reply_to)],
        )?;
        Ok(())
    }

    pub fn outbox_remove(&self, local_id: u64) -> Res<()> {
        let Some(db) = self.conn() else { return Ok(()) };
        db.execute(
            "DELETE FROM outbox WHERE local_id = ?1",
            params![to_i64(local_id)],
        )?;
        Ok(())
    }

    /// Moves a refused outbox entry to the failed messages, in one transaction.
    pub fn outbox_fail(&self, local_id: u64, code: i32, reason: &str) -> Res<()> {
        let Some(mut db) = self.conn() else {
            return Ok(());
        };
        let tx = db.transaction()?;
        tx.execute(
            "INSERT OR REPLACE INTO failed (local_id, thread_id, body, created_ms, code, reason)
             SELECT local_id, thread_id, body, created_ms, ?2, ?3 FROM outbox WHERE local_id = ?1",
            params![to_i64(local_id), code, reason],
        )?;
        tx.execute(
            "DELETE FROM outbox WHERE local_id = ?1",
            params![to_i64(local_id)],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The failed messages, oldest first.
    pub fn failed(&self) -> Res<Vec<FailedItem>> {
        let Some(db) = self.conn() else {
            return Ok(Vec::new());
        };
        let mut stmt = db.prepare(
            "SELECT local_id, thread_id, body, created_ms, code, reason FROM failed ORDER BY local_id",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok(FailedItem {
                    local_id: to_u64(r.get(0)?),
                    thread_id: to_u64(r.get(1)?),
                    body: r.get(2)?,
                    created_ms: r.get(3)?,
                    code: r.get(4)?,
                    reason: r.get(5)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// A failed message the user deleted (or sent again as a new one).
    pub fn failed_remove(&self, local_id: u64) -> Res<()> {
        let Some(db) = self.conn() else { return Ok(()) };
        db.execute(
            "DELETE FROM failed WHERE local_id = ?1",
            params![to_i64(local_id)],
        )?;
        Ok(())
    }
}

/// A cached entry seen again: the fresh copy, with the newer of the two reaction counts.
fn replace_message(tx: &rusqlite::Transaction<'_>, m: &pb::ChatMessage) -> Res<()> {
    let (thread, seq) = (to_i64(m.thread_id), to_i64(m.seq));
    let old: Option<Vec<u8>> = tx
        .query_row(
            "SELECT data FROM messages WHERE thread_id = ?1 AND seq = ?2",
            params![thread, seq],
            |r| r.get(0),
        )
        .optional()?;
    let mut fresh = m.clone();
    if let Some(old) = old {
        relations::keep_newer_reactions(&mut fresh, &pb::ChatMessage::decode(old.as_slice())?);
    }
    tx.execute(
        "UPDATE messages SET data = ?3, message_id = ?4 WHERE thread_id = ?1 AND seq = ?2",
        params![thread, seq, fresh.encode_to_vec(), to_i64(m.message_id)],
    )?;
    Ok(())
}

/// Applies a RECALL, EDIT or REACTION entry to the cached original (and a recall or an edit
/// to the quotes of the replies to it).
fn amend_target(tx: &rusqlite::Transaction<'_>, m: &pb::ChatMessage, me: u64) -> Res<()> {
    let row: Option<(i64, Vec<u8>)> = tx
        .query_row(
            "SELECT seq, data FROM messages WHERE thread_id = ?1 AND message_id = ?2",
            params![to_i64(m.thread_id), to_i64(m.target_message_id)],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((seq, data)) = row else {
        return Ok(());
    };
    let mut orig = pb::ChatMessage::decode(data.as_slice())?;
    let recall = m.kind == pb::MessageKind::Recall as i32;
    let edit = m.kind == pb::MessageKind::Edit as i32;
    if recall {
        orig.recalled = true;
        orig.body.clear();
        orig.reactions.clear();
    } else if edit {
        orig.body = m.body.clone();
        orig.edited_ts_ms = m.server_ts_ms;
    } else if !(relations::is_reaction(m) && relations::apply_reaction(&mut orig, m, me)) {
        return Ok(());
    }
    tx.execute(
        "UPDATE messages SET data = ?3 WHERE thread_id = ?1 AND seq = ?2",
        params![to_i64(m.thread_id), seq, orig.encode_to_vec()],
    )?;
    if recall || edit {
        // Its edits held its text too (they follow it in the thread, before this recall), and
        // the replies to it quote it.
        let mut changed = Vec::new();
        {
            let mut q = tx.prepare(
                "SELECT seq, data FROM messages WHERE thread_id = ?1 AND seq > ?2 AND seq < ?3",
            )?;
            let rows = q.query_map(params![to_i64(m.thread_id), seq, to_i64(m.seq)], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
            })?;
            for row in rows {
                let (s, data) = row?;
                let mut e = pb::ChatMessage::decode(data.as_slice())?;
                if recall
                    && e.kind == pb::MessageKind::Edit as i32
                    && e.target_message_id == m.target_message_id
                {
                    e.body.clear();
                    e.recalled = true;
                    changed.push((s, e.encode_to_vec()));
                } else if relations::amend_quote(&mut e, m) {
                    changed.push((s, e.encode_to_vec()));
                }
            }
        }
        for (s, data) in changed {
            tx.execute(
                "UPDATE messages SET data = ?3 WHERE thread_id = ?1 AND seq = ?2",
                params![to_i64(m.thread_id), s, data],
            )?;
        }
    }
    Ok(())
}

#[cfg(unix)]
fn restrict_permissions(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}

#[cfg(not(unix))]
fn restrict_permissions(_: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(thread: u64, seq: u64, body: &str) -> pb::ChatMessage {
        pb::ChatMessage {
            thread_id: thread,
            seq,
            message_id: 1000 + seq,
            body: body.into(),
            kind: pb::MessageKind::Text as i32,
            ..Default::default()
        }
    }

    #[test]
    fn messages_cursors_outbox_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        {
            let c = Cache::open(&path).unwrap();
            c.save_thread(
                &pb::Thread {
                    thread_id: 7,
                    last_seq: 3,
                    ..Default::default()
                },
                0,
            )
            .unwrap();
            c.save_messages(7, &[msg(7, 1, "a"), msg(7, 2, "b"), msg(7, 3, "c")], 3, 0)
                .unwrap();
            let mut recall = msg(7, 4, "");
            recall.kind = pb::MessageKind::Recall as i32;
            recall.target_message_id = 1002;
            c.save_messages(7, &[recall], 4, 0).unwrap();
            c.set_event_seq(9).unwrap();
            c.outbox_add(&OutboxItem {
                local_id: 1,
                thread_id: 7,
                client_msg_id: "x".into(),
                body: "later".into(),
                created_ms: 5,
                reply_to: 0,
            })
            .unwrap();
        }
        let c = Cache::open(&path).unwrap();
        let snap = c.load().unwrap();
        assert_eq!(snap.event_seq, 9);
        assert_eq!(snap.threads.len(), 1);
        assert_eq!(snap.threads[0].1, 4);
        assert_eq!(snap.outbox.len(), 1);
        // A refusal moves the entry to the failed messages, which outlive a reopen.
        c.outbox_fail(1, pb::ErrorCode::TooLarge as i32, "too big")
            .unwrap();
        drop(c);
        let c = Cache::open(&path).unwrap();
        assert!(c.load().unwrap().outbox.is_empty());
        let failed = c.failed().unwrap();
        assert_eq!(failed.len(), 1);
        assert_eq!(
            (
                failed[0].local_id,
                failed[0].thread_id,
                failed[0].body.as_str()
            ),
            (1, 7, "later")
        );
        assert_eq!(
            (failed[0].created_ms, failed[0].reason.as_str()),
            (5, "too big")
        );
        c.failed_remove(1).unwrap();
        assert!(c.failed().unwrap().is_empty());
        let msgs = c.messages(7, 0, 10).unwrap();
        assert_eq!(
            msgs.iter().map(|m| m.seq).collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
        assert!(msgs[1].recalled);
        assert_eq!(c.messages(7, 3, 1).unwrap()[0].seq, 2);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_recall_empties_the_edits_of_its_target() {
        let c = Cache::memory().unwrap();
        let amend = |seq, kind: pb::MessageKind, target, body: &str| {
            let mut m = msg(7, seq, body);
            m.kind = kind as i32;
            m.target_message_id = target;
            m
        };
        c.save_messages(
            7,
            &[
                msg(7, 1, "secret"),
                msg(7, 2, "other"),
                amend(3, pb::MessageKind::Edit, 1001, "secret, edited"),
                amend(4, pb::MessageKind::Edit, 1002, "other, edited"),
            ],
            4,
            0,
        )
        .unwrap();
        c.save_messages(7, &[amend(5, pb::MessageKind::Recall, 1001, "")], 5, 0)
            .unwrap();
        let msgs = c.messages(7, 0, 10).unwrap();
        assert!(msgs[0].recalled && msgs[0].body.is_empty());
        assert!(msgs[2].recalled && msgs[2].body.is_empty(), "{:?}", msgs[2]);
        assert_eq!(msgs[1].body, "other, edited");
        assert_eq!(msgs[3].body, "other, edited");
        assert!(!msgs[3].recalled);
    }
}
