//! A MySQL connection as a [`Tx`]: statements, values, the error mapping.

use std::sync::atomic::AtomicU64;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use crate::store::{
    BoxFut, Counter, Dialect, Param, Row, SendSeq, StoreError, StoreResult, Tx, Value,
};

/// A batch at least this big runs without lingering (see [`MysqlConfig::linger`]).
pub(super) const LINGER_BELOW: usize = 64;

/// ER_LOCK_DEADLOCK: InnoDB rolled the whole transaction back.
pub(super) const ER_LOCK_DEADLOCK: u16 = 1213;
/// ER_LOCK_WAIT_TIMEOUT: the statement was rolled back (the transaction too, with
/// `innodb_rollback_on_timeout`).
pub(super) const ER_LOCK_WAIT_TIMEOUT: u16 = 1205;
/// How many times a batch is run before its jobs are answered `UNAVAILABLE`.
pub(super) const BATCH_ATTEMPTS: u32 = 4;

pub(super) fn map_err(e: mysql_async::Error) -> StoreError {
    if let mysql_async::Error::Server(s) = &e
        && s.code == 1062
    {
        return StoreError::Duplicate;
    }
    StoreError::Unavailable(e.to_string())
}

/// The error code when MySQL rolled back (part of) a transaction that is worth running again.
pub(super) fn rollback_code(e: &mysql_async::Error) -> Option<u16> {
    match e {
        mysql_async::Error::Server(s)
            if s.code == ER_LOCK_DEADLOCK || s.code == ER_LOCK_WAIT_TIMEOUT =>
        {
            Some(s.code)
        }
        _ => None,
    }
}

pub(super) fn to_value(p: &Param<'_>) -> mysql_async::Value {
    match *p {
        Param::Null => mysql_async::Value::NULL,
        Param::Int(v) => mysql_async::Value::Int(v),
        Param::Text(s) => mysql_async::Value::Bytes(s.as_bytes().to_vec()),
        Param::Blob(b) => mysql_async::Value::Bytes(b.to_vec()),
    }
}

pub(super) fn params(ps: &[Param<'_>]) -> mysql_async::Params {
    if ps.is_empty() {
        mysql_async::Params::Empty
    } else {
        mysql_async::Params::Positional(ps.iter().map(to_value).collect())
    }
}

pub(super) fn from_value(v: mysql_async::Value) -> Value {
    match v {
        mysql_async::Value::NULL => Value::Null,
        mysql_async::Value::Int(i) => Value::Int(i),
        mysql_async::Value::UInt(u) => Value::Int(i64::try_from(u).unwrap_or(i64::MAX)),
        mysql_async::Value::Bytes(b) => Value::Blob(b),
        mysql_async::Value::Float(f) => Value::Int(f as i64),
        mysql_async::Value::Double(f) => Value::Int(f as i64),
        other => Value::Text(format!("{other:?}")),
    }
}

/// A pooled MySQL connection usable as a [`Tx`].
pub struct MysqlConn {
    pub(super) conn: Conn,
    /// In the writer's batch transaction. With `savepoints`, a savepoint is set before a job's
    /// first write, so a job that fails before writing (most refusals) costs no savepoint round
    /// trip; a batch runs without them first (see [`run_batch`]).
    pub(super) in_batch: bool,
    pub(super) savepoints: bool,
    pub(super) savepoint_set: bool,
    /// The current job ran a data-changing statement.
    pub(super) wrote: bool,
    /// Set when MySQL rolled back the batch's transaction (deadlock, lock wait timeout): every
    /// later statement of the batch fails without reaching the server, where it would run
    /// outside any transaction, and the writer runs the batch again.
    pub(super) aborted: Option<u16>,
}

impl MysqlConn {
    pub(super) fn new(conn: Conn) -> Self {
        Self {
            conn,
            in_batch: false,
            savepoints: false,
            savepoint_set: false,
            wrote: false,
            aborted: None,
        }
    }

    /// Refuses statements once the batch was rolled back.
    pub(super) fn check(&self) -> StoreResult<()> {
        match self.aborted {
            Some(code) => Err(StoreError::Unavailable(format!(
                "the transaction was rolled back (MySQL error {code})"
            ))),
            None => Ok(()),
        }
    }

    /// Maps a failed statement, noting a rollback of the batch.
    pub(super) fn fail(&mut self, e: mysql_async::Error) -> StoreError {
        if self.in_batch
            && let Some(code) = rollback_code(&e)
        {
            self.aborted = Some(code);
        }
        map_err(e)
    }

    pub(super) async fn before_write(&mut self) -> StoreResult<()> {
        self.check()?;
        if self.in_batch && self.savepoints && !self.savepoint_set {
            // A savepoint of the same name replaces the previous job's, so none is released.
            if let Err(e) = self.conn.query_drop("SAVEPOINT job").await {
                return Err(self.fail(e));
            }
            self.savepoint_set = true;
        }
        Ok(())
    }

    /// Runs a data-changing statement (after the job's savepoint, if one is due).
    pub(super) async fn write(&mut self, sql: &'static str, ps: &[Param<'_>]) -> StoreResult<()> {
        self.before_write().await?;
        match self.conn.exec_drop(sql, params(ps)).await {
            // A failed statement is undone alone by InnoDB; one that changed no row wrote
            // nothing either.
            Ok(()) => {
                self.wrote |= self.conn.affected_rows() > 0;
                Ok(())
            }
            Err(e) => Err(self.fail(e)),
        }
    }
}

impl Tx for MysqlConn {
    fn dialect(&self) -> Dialect {
        Dialect::Mysql
    }

    fn exec<'a>(
        &'a mut self,
        sql: &'static str,
        ps: &'a [Param<'a>],
    ) -> BoxFut<'a, StoreResult<u64>> {
        Box::pin(async move {
            self.write(sql, ps).await?;
            Ok(self.conn.affected_rows())
        })
    }

    fn insert<'a>(
        &'a mut self,
        sql: &'static str,
        ps: &'a [Param<'a>],
    ) -> BoxFut<'a, StoreResult<u64>> {
        Box::pin(async move {
            self.write(sql, ps).await?;
            self.conn
                .last_insert_id()
                .ok_or_else(|| StoreError::Corrupt("insert returned no id".into()))
        })
    }

    fn query<'a>(
        &'a mut self,
        sql: &'static str,
        ps: &'a [Param<'a>],
    ) -> BoxFut<'a, StoreResult<Vec<Row>>> {
        Box::pin(async move {
            self.check()?;
            let rows: Vec<mysql_async::Row> = match self.conn.exec(sql, params(ps)).await {
                Ok(rows) => rows,
                Err(e) => return Err(self.fail(e)),
            };
            Ok(rows
                .into_iter()
                .map(|r| Row(r.unwrap().into_iter().map(from_value).collect()))
                .collect())
        })
    }

    fn bump(&mut self, counter: Counter, id: u64) -> BoxFut<'_, StoreResult<Option<u64>>> {
        Box::pin(async move {
            self.before_write().await?;
            // LAST_INSERT_ID(expr) hands the new value back in the OK packet: the row update and
            // the read are one atomic statement under the row lock.
            let done = match counter {
                Counter::ThreadSeq { activity_id } => {
                    self.conn
                        .exec_drop(
                            "UPDATE threads SET last_seq = LAST_INSERT_ID(last_seq + 1), activity_id = ? WHERE id = ?",
                            params(&[Param::from(activity_id), Param::from(id)]),
                        )
                        .await
                }
                Counter::UserEvent => {
                    self.conn
                        .exec_drop(
                            "UPDATE users SET event_seq = LAST_INSERT_ID(event_seq + 1) WHERE id = ?",
                            params(&[Param::from(id)]),
                        )
                        .await
                }
            };
            if let Err(e) = done {
                return Err(self.fail(e));
            }
            if self.conn.affected_rows() == 0 {
                return Ok(None);
            }
            self.wrote = true;
            Ok(self.conn.last_insert_id())
        })
    }

    fn send_seq<'a>(&'a mut self, s: SendSeq<'a>) -> BoxFut<'a, StoreResult<Option<u64>>> {
        Box::pin(async move {
            // The membership and dedupe checks ride on the row update: one round trip.
            self.write(
                "UPDATE threads SET last_seq = LAST_INSERT_ID(last_seq + 1), activity_id = ? \
                 WHERE id = ? \
                 AND EXISTS (SELECT 1 FROM thread_members \
                             WHERE thread_id = ? AND user_id = ? AND active = 1) \
                 AND NOT EXISTS (SELECT 1 FROM messages \
                                 WHERE sender_device_id = ? AND client_msg_id = ?)",
                &[
                    Param::from(s.activity_id),
                    Param::from(s.thread_id),
                    Param::from(s.thread_id),
                    Param::from(s.user_id),
                    Param::from(s.device_id),
                    Param::Text(s.client_msg_id),
                ],
            )
            .await?;
            if self.conn.affected_rows() == 0 {
                return Ok(None);
            }
            Ok(self.conn.last_insert_id())
        })
    }
}

#[derive(Default)]
pub(super) struct Stats {
    pub(super) batches: AtomicU64,
    pub(super) jobs: AtomicU64,
    pub(super) failed_commits: AtomicU64,
    pub(super) retried_batches: AtomicU64,
    pub(super) sent_together: AtomicU64,
}
