//! The `Tx` implementation on a SQLite connection, opening connections, and the schema.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, ToSql};

use super::redo;
use crate::store::schema::{SCHEMA_VERSION, SQLITE_SCHEMA};
use crate::store::{
    BoxFut, Counter, Dialect, Param, Row, SendSeq, StoreError, StoreResult, Tx, Value,
};

/// A SQLite connection usable as a [`Tx`].
pub struct SqliteConn {
    pub(super) conn: Connection,
    /// A data-changing statement ran since the writer last cleared this (at each job's
    /// start): a job that fails after writing must be undone.
    pub(super) wrote: bool,
    /// The writer's view of `threads.last_seq` inside its transaction, so a seq allocation
    /// needs no read after its UPDATE. Only this connection writes the database and every
    /// change of `last_seq` goes through it; the writer clears this whenever it rolls anything
    /// back.
    pub(super) seqs: HashMap<u64, u64>,
    /// The writer's record of the statements that changed rows, for the redo log.
    pub(super) redo: Option<redo::Encoder>,
}

/// Threads whose last seq the writer remembers before starting over.
pub(super) const SEQ_CACHE_MAX: usize = 100_000;

impl SqliteConn {
    pub(super) fn new(conn: Connection) -> Self {
        Self {
            conn,
            wrote: false,
            seqs: HashMap::new(),
            redo: None,
        }
    }

    /// The seq a successful `last_seq = last_seq + 1` on `thread_id` just allocated.
    pub(super) fn bumped_seq(&mut self, thread_id: u64) -> StoreResult<u64> {
        let seq = match self.seqs.get(&thread_id) {
            Some(prev) => prev + 1,
            None => {
                let v = self
                    .query_int(
                        "SELECT last_seq FROM threads WHERE id = ?1",
                        &[Param::from(thread_id)],
                    )?
                    .ok_or(StoreError::NotFound("thread"))?;
                u64::try_from(v).map_err(|_| StoreError::Corrupt("negative seq".into()))?
            }
        };
        if self.seqs.len() >= SEQ_CACHE_MAX {
            self.seqs.clear();
        }
        self.seqs.insert(thread_id, seq);
        Ok(seq)
    }

    pub(super) fn run_exec(&mut self, sql: &'static str, params: &[Param<'_>]) -> StoreResult<u64> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(map_err)?;
        // A statement that fails changes nothing (SQLite undoes it alone), nor does one that
        // matched no row.
        let n = stmt
            .execute(rusqlite::params_from_iter(params.iter().map(SqlParam)))
            .map_err(map_err)?;
        self.wrote |= n > 0;
        // A statement that changed nothing changes nothing when replayed either.
        if n > 0
            && let Some(enc) = self.redo.as_mut()
        {
            enc.stmt(sql, params, n);
        }
        Ok(n as u64)
    }

    /// The first column of the first row as an integer, without building rows.
    pub(super) fn query_int(
        &mut self,
        sql: &'static str,
        params: &[Param<'_>],
    ) -> StoreResult<Option<i64>> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(map_err)?;
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params.iter().map(SqlParam)))
            .map_err(map_err)?;
        match rows.next().map_err(map_err)? {
            Some(row) => row.get::<_, i64>(0).map(Some).map_err(map_err),
            None => Ok(None),
        }
    }

    pub(super) fn run_query(
        &mut self,
        sql: &'static str,
        params: &[Param<'_>],
    ) -> StoreResult<Vec<Row>> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(map_err)?;
        let cols = stmt.column_count();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params.iter().map(SqlParam)))
            .map_err(map_err)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(map_err)? {
            let mut vals = Vec::with_capacity(cols);
            for i in 0..cols {
                vals.push(match row.get_ref(i).map_err(map_err)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(v) => Value::Int(v),
                    ValueRef::Real(v) => Value::Int(v as i64),
                    ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(b) => Value::Blob(b.to_vec()),
                });
            }
            out.push(Row(vals));
        }
        Ok(out)
    }
}

pub(super) struct SqlParam<'a>(pub(super) &'a Param<'a>);

impl ToSql for SqlParam<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match *self.0 {
            Param::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Param::Int(v) => ToSqlOutput::Borrowed(ValueRef::Integer(v)),
            Param::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Param::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

pub(super) fn map_err(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e
        && f.code == rusqlite::ErrorCode::ConstraintViolation
    {
        return StoreError::Duplicate;
    }
    StoreError::Unavailable(e.to_string())
}

impl Tx for SqliteConn {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn exec<'a>(
        &'a mut self,
        sql: &'static str,
        params: &'a [Param<'a>],
    ) -> BoxFut<'a, StoreResult<u64>> {
        let r = self.run_exec(sql, params);
        Box::pin(std::future::ready(r))
    }

    fn insert<'a>(
        &'a mut self,
        sql: &'static str,
        params: &'a [Param<'a>],
    ) -> BoxFut<'a, StoreResult<u64>> {
        let r = self
            .run_exec(sql, params)
            .map(|_| self.conn.last_insert_rowid() as u64);
        Box::pin(std::future::ready(r))
    }

    fn query<'a>(
        &'a mut self,
        sql: &'static str,
        params: &'a [Param<'a>],
    ) -> BoxFut<'a, StoreResult<Vec<Row>>> {
        let r = self.run_query(sql, params);
        Box::pin(std::future::ready(r))
    }

    fn send_seq<'a>(&'a mut self, s: SendSeq<'a>) -> BoxFut<'a, StoreResult<Option<u64>>> {
        let r = self
            .run_exec(
                "UPDATE threads SET last_seq = last_seq + 1, activity_id = ?1 WHERE id = ?2 \
                 AND EXISTS (SELECT 1 FROM thread_members \
                             WHERE thread_id = ?2 AND user_id = ?3 AND active = 1) \
                 AND NOT EXISTS (SELECT 1 FROM messages \
                                 WHERE sender_device_id = ?4 AND client_msg_id = ?5)",
                &[
                    Param::from(s.activity_id),
                    Param::from(s.thread_id),
                    Param::from(s.user_id),
                    Param::from(s.device_id),
                    Param::Text(s.client_msg_id),
                ],
            )
            .and_then(|n| {
                if n == 0 {
                    return Ok(None);
                }
                self.bumped_seq(s.thread_id).map(Some)
            });
        Box::pin(std::future::ready(r))
    }

    fn bump(&mut self, counter: Counter, id: u64) -> BoxFut<'_, StoreResult<Option<u64>>> {
        // UPDATE then SELECT of the same row (cached by the UPDATE): RETURNING would build an
        // ephemeral table per statement, several times the cost of the read. The writer's
        // transaction is exclusive, so nothing changes the row in between.
        let id_param = Param::from(id);
        let updated = match counter {
            Counter::ThreadSeq { activity_id } => self.run_exec(
                "UPDATE threads SET last_seq = last_seq + 1, activity_id = ?1 WHERE id = ?2",
                &[Param::from(activity_id), id_param],
            ),
            Counter::UserEvent => self.run_exec(
                "UPDATE users SET event_seq = event_seq + 1 WHERE id = ?1",
                &[id_param],
            ),
        };
        let r = updated.and_then(|n| {
            if n == 0 {
                return Ok(None);
            }
            if let Counter::ThreadSeq { .. } = counter {
                return self.bumped_seq(id).map(Some);
            }
            match self.query_int("SELECT event_seq FROM users WHERE id = ?1", &[id_param])? {
                Some(v) => u64::try_from(v)
                    .map(Some)
                    .map_err(|_| StoreError::Corrupt("negative counter".into())),
                None => Ok(None),
            }
        });
        Box::pin(std::future::ready(r))
    }
}

pub(super) fn open(path: &Path, read_only: bool) -> StoreResult<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags).map_err(map_err)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(map_err)?;
    if !read_only {
        // Small pages: a commit writes every page it dirtied to the WAL, and a send dirties
        // pages all over (its thread's messages, its device's dedupe keys); 1 KiB pages write a
        // quarter of the bytes of the 4 KiB default. Only takes effect on a new database.
        conn.pragma_update(None, "page_size", 1024)
            .map_err(map_err)?;
        // WAL + FULL: a commit is on disk before it returns, so an ack is never ahead of the
        // data. WAL lets readers run beside the single writer.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(map_err)?;
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(map_err)?;
    conn.pragma_update(None, "foreign_keys", "OFF")
        .map_err(map_err)?;
    conn.set_prepared_statement_cache_capacity(128);
    Ok(conn)
}

/// Creates the tables in a new database; brings an older one up to this version with the steps
/// it lacks (each in a transaction with its version row); refuses a newer one.
pub(super) fn apply_schema(conn: &Connection) -> StoreResult<()> {
    let has_version_table: bool = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(map_err)?
        > 0;
    if has_version_table {
        let found: Option<i64> = conn
            .query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))
            .map_err(map_err)?;
        for step in crate::store::schema::steps_from(found)? {
            tracing::info!(to = step.to, what = step.what, "migrating the database");
            let tx = conn.unchecked_transaction().map_err(map_err)?;
            tx.execute_batch(step.sqlite).map_err(map_err)?;
            tx.execute(
                "INSERT INTO schema_version (version, applied_ms) VALUES (?1, ?2)",
                rusqlite::params![step.to, crate::ids::now_ms()],
            )
            .map_err(map_err)?;
            tx.commit().map_err(map_err)?;
        }
        return Ok(());
    }
    conn.execute_batch(SQLITE_SCHEMA).map_err(map_err)?;
    conn.execute(
        "INSERT INTO schema_version (version, applied_ms) VALUES (?1, ?2)",
        rusqlite::params![SCHEMA_VERSION, crate::ids::now_ms()],
    )
    .map_err(map_err)?;
    Ok(())
}

/// Runs a statement through the statement cache (no re-parsing per job).
pub(super) fn run(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}
