//! Storage: one set of transactional operations ([`ops`]) written once against the small
//! [`Tx`] interface, and two backends that run them ([`sqlite`], the embedded default, and
//! [`mysql`]).
//!
//! Every write goes through a group-commit writer: operations queue up, a writer takes every one
//! already waiting, runs them together, makes the batch durable once, and only then answers each
//! caller. A batch first runs without savepoints; if a job fails after changing a row, the batch is
//! rolled back and run again with a savepoint per job, so one failing operation never undoes the
//! others. An answer therefore always means "durable" (or a typed failure that changed nothing).

pub mod mysql;
pub mod ops;
pub mod schema;
pub mod search;
pub mod sqlite;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use thiserror::Error;
use tokio::sync::oneshot;

use crate::ids::Snowflake;
use ops::Effects;
use ops::messages::{SendReq, Sent};

/// A storage failure, or a business rule an operation refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum StoreError {
    #[error("not found: {0}")]
    NotFound(&'static str),
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("conflict: {0}")]
    Conflict(&'static str),
    #[error("name taken")]
    NameTaken,
    #[error("limit reached: {0}")]
    LimitReached(&'static str),
    /// Allowed again after this many milliseconds.
    #[error("too soon: {0}")]
    TooSoon(&'static str, u32),
    #[error("authentication failed")]
    AuthFailed,
    #[error("invalid: {0}")]
    Invalid(&'static str),
    /// A unique key was violated (mapped to a business error by the operation).
    #[error("duplicate key")]
    Duplicate,
    /// The write queue is full: the caller should back off.
    #[error("storage busy")]
    Busy,
    /// The database is unreachable or failed; nothing was committed.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A value read back from the database had an unexpected type or range.
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A bound statement parameter. SQL text is always a `&'static str`: values travel only as
/// parameters, never inside the SQL.
#[derive(Debug, Clone, Copy)]
pub enum Param<'a> {
    Null,
    Int(i64),
    Text(&'a str),
    Blob(&'a [u8]),
}

impl From<i64> for Param<'_> {
    fn from(v: i64) -> Self {
        Param::Int(v)
    }
}

impl From<u64> for Param<'_> {
    fn from(v: u64) -> Self {
        // Ids and seqs stay far below 2^63; saturate rather than wrap if one ever does not.
        Param::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl From<bool> for Param<'_> {
    fn from(v: bool) -> Self {
        Param::Int(i64::from(v))
    }
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(v: &'a str) -> Self {
        Param::Text(v)
    }
}

impl<'a> From<&'a String> for Param<'a> {
    fn from(v: &'a String) -> Self {
        Param::Text(v)
    }
}

impl<'a> From<&'a [u8]> for Param<'a> {
    fn from(v: &'a [u8]) -> Self {
        Param::Blob(v)
    }
}

impl<'a> From<&'a Vec<u8>> for Param<'a> {
    fn from(v: &'a Vec<u8>) -> Self {
        Param::Blob(v)
    }
}

/// Builds a `&[Param]` from values of mixed types.
#[macro_export]
macro_rules! params {
    ($($v:expr),* $(,)?) => { &[$($crate::store::Param::from($v)),*][..] };
}

/// A value read from a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

/// One result row, read by column index.
#[derive(Debug, Clone, Default)]
pub struct Row(pub Vec<Value>);

impl Row {
    fn get(&self, i: usize) -> StoreResult<&Value> {
        self.0
            .get(i)
            .ok_or_else(|| StoreError::Corrupt(format!("missing column {i}")))
    }

    pub fn i64(&self, i: usize) -> StoreResult<i64> {
        match self.get(i)? {
            Value::Int(v) => Ok(*v),
            Value::Text(s) => s
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("column {i} is not an integer"))),
            other => Err(StoreError::Corrupt(format!("column {i}: {other:?}"))),
        }
    }

    pub fn opt_i64(&self, i: usize) -> StoreResult<Option<i64>> {
        match self.get(i)? {
            Value::Null => Ok(None),
            _ => self.i64(i).map(Some),
        }
    }

    pub fn u64(&self, i: usize) -> StoreResult<u64> {
        let v = self.i64(i)?;
        u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("column {i} is negative")))
    }

    pub fn bool(&self, i: usize) -> StoreResult<bool> {
        Ok(self.i64(i)? != 0)
    }

    pub fn text(&self, i: usize) -> StoreResult<String> {
        match self.get(i)? {
            Value::Text(s) => Ok(s.clone()),
            Value::Blob(b) => String::from_utf8(b.clone())
                .map_err(|_| StoreError::Corrupt(format!("column {i} is not UTF-8"))),
            Value::Null => Ok(String::new()),
            Value::Int(v) => Ok(v.to_string()),
        }
    }

    pub fn blob(&self, i: usize) -> StoreResult<Vec<u8>> {
        match self.get(i)? {
            Value::Blob(b) => Ok(b.clone()),
            Value::Text(s) => Ok(s.clone().into_bytes()),
            Value::Null => Ok(Vec::new()),
            other => Err(StoreError::Corrupt(format!("column {i}: {other:?}"))),
        }
    }
}

/// SQL dialects the operations know about; a few statements differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Mysql,
}

/// Per-row counters that must be allocated atomically inside a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// `threads.last_seq` (also sets `threads.activity_id` to the given id).
    ThreadSeq { activity_id: u64 },
    /// `users.event_seq`.
    UserEvent,
}

pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A connection inside a transaction. The operations in [`ops`] are written against this
/// interface only, so every backend runs the same business logic.
pub trait Tx: Send {
    fn dialect(&self) -> Dialect;
    /// Runs a statement; returns the number of affected rows.
    fn exec<'a>(
        &'a mut self,
        sql: &'static str,
        params: &'a [Param<'a>],
    ) -> BoxFut<'a, StoreResult<u64>>;
    /// Runs an INSERT; returns the new row's auto-increment id.
    fn insert<'a>(
        &'a mut self,
        sql: &'static str,
        params: &'a [Param<'a>],
    ) -> BoxFut<'a, StoreResult<u64>>;
    /// Runs a query and collects its rows.
    fn query<'a>(
        &'a mut self,
        sql: &'static str,
        params: &'a [Param<'a>],
    ) -> BoxFut<'a, StoreResult<Vec<Row>>>;
    /// Increments a counter on row `id` and returns the new value (`None` if no such row).
    fn bump(&mut self, counter: Counter, id: u64) -> BoxFut<'_, StoreResult<Option<u64>>>;
    /// The common case of a send in one statement: allocates the next seq of `thread` (setting
    /// its activity id) if `user` is an active member and `(device, client_msg_id)` names no
    /// stored entry yet. `None` when any of that fails (nothing was changed; the caller finds
    /// out which).
    fn send_seq<'a>(&'a mut self, s: SendSeq<'a>) -> BoxFut<'a, StoreResult<Option<u64>>>;
}

/// The arguments of [`Tx::send_seq`].
#[derive(Debug, Clone, Copy)]
pub struct SendSeq<'a> {
    pub thread_id: u64,
    pub user_id: u64,
    pub device_id: u64,
    pub client_msg_id: &'a str,
    pub activity_id: u64,
}

/// Convenience queries on any `Tx`.
pub trait TxExt: Tx {
    fn query_opt<'a>(
        &'a mut self,
        sql: &'static str,
        params: &'a [Param<'a>],
    ) -> BoxFut<'a, StoreResult<Option<Row>>> {
        Box::pin(async move { Ok(self.query(sql, params).await?.into_iter().next()) })
    }
}

impl<T: Tx + ?Sized> TxExt for T {}

/// What a committed batch reports to each operation's completion.
pub type Committed = StoreResult<()>;

/// A queued write. The writer runs it on its transaction, possibly more than once (the MySQL
/// writer re-runs a whole batch after a deadlock or lock wait timeout rolled it back); only the
/// last run's result reaches the caller, and only once the batch's commit is known.
pub trait Job<T>: Send {
    /// Runs the operation on the writer's transaction and says whether it succeeded, so the
    /// writer can roll back its savepoint. `again` is false when the writer will not run this
    /// job a second time (the operation is then not cloned).
    fn run<'a>(&'a mut self, tx: &'a mut T, again: bool) -> BoxFut<'a, bool>;
    /// Answers the caller with the last run's result, if `committed` is `Ok`.
    fn complete(self: Box<Self>, committed: Committed);
    /// The text send this job stores, if it is one: a writer may store a run of them with a
    /// few statements in all ([`ops::messages::send_many`]) instead of running each.
    fn text_send(&self) -> Option<(&Arc<SendReq>, &Arc<Snowflake>)> {
        None
    }
    /// The result of storing this send with others; it stands for a run of this job.
    fn sent_together(&mut self, _sent: (Sent, Effects)) {}
}

pub type WriteJob<T> = Box<dyn Job<T>>;

/// A read: runs on a read connection, which it hands back.
pub type ReadJob<T> = Box<dyn FnOnce(T) -> BoxFut<'static, T> + Send>;

/// The answering side of a write job: its last run's result, the hook that runs after the
/// commit, and the caller waiting for both.
struct Answer<R, H> {
    result: Option<StoreResult<R>>,
    then: H,
    reply: oneshot::Sender<StoreResult<R>>,
}

impl<R, H: FnOnce(&mut R)> Answer<R, H> {
    fn new(then: H) -> (Self, oneshot::Receiver<StoreResult<R>>) {
        let (reply, rx) = oneshot::channel();
        let answer = Self {
            result: None,
            then,
            reply,
        };
        (answer, rx)
    }

    /// Answers the caller with the last run's result, if `committed` is `Ok`.
    fn send(self, committed: Committed) {
        let result = committed.and_then(|()| {
            self.result
                .unwrap_or_else(|| Err(StoreError::Unavailable("write job never ran".into())))
        });
        let result = result.map(|mut r| {
            (self.then)(&mut r);
            r
        });
        let _ = self.reply.send(result);
    }
}

struct OpJob<F, H, R> {
    op: Option<F>,
    answer: Answer<R, H>,
}

impl<T, F, H, R> Job<T> for OpJob<F, H, R>
where
    T: Tx + 'static,
    R: Send + 'static,
    F: for<'t> FnOnce(&'t mut T) -> BoxFut<'t, StoreResult<R>> + Clone + Send + 'static,
    H: FnOnce(&mut R) + Send + 'static,
{
    fn run<'a>(&'a mut self, tx: &'a mut T, again: bool) -> BoxFut<'a, bool> {
        // A job that may run again keeps its operation; otherwise it is used up, uncloned.
        let op = if again {
            self.op.clone()
        } else {
            self.op.take()
        };
        Box::pin(async move {
            let result = match op {
                Some(op) => op(tx).await,
                None => Err(StoreError::Unavailable("write job ran twice".into())),
            };
            let ok = result.is_ok();
            self.answer.result = Some(result);
            ok
        })
    }

    fn complete(self: Box<Self>, committed: Committed) {
        self.answer.send(committed);
    }
}

/// Wraps an operation into a [`WriteJob`] whose result reaches the receiver only after commit.
/// `then` runs on the writer right after a successful commit, in commit order, before the
/// caller hears of it (the service uses it to hand effects to the ordered fan-out). The
/// operation is `Clone` because a backend may have to run it again (see [`Job`]).
pub fn write_job<T, R, F, H>(op: F, then: H) -> (WriteJob<T>, oneshot::Receiver<StoreResult<R>>)
where
    T: Tx + 'static,
    R: Send + 'static,
    F: for<'t> FnOnce(&'t mut T) -> BoxFut<'t, StoreResult<R>> + Clone + Send + 'static,
    H: FnOnce(&mut R) + Send + 'static,
{
    let (answer, rx) = Answer::new(then);
    let job: WriteJob<T> = Box::new(OpJob {
        op: Some(op),
        answer,
    });
    (job, rx)
}

/// A text send: runs [`ops::messages::send`], or is stored with its neighbours in the batch.
struct SendJob<H> {
    req: Arc<SendReq>,
    ids: Arc<Snowflake>,
    answer: Answer<(Sent, Effects), H>,
}

impl<T, H> Job<T> for SendJob<H>
where
    T: Tx + 'static,
    H: FnOnce(&mut (Sent, Effects)) + Send + 'static,
{
    fn run<'a>(&'a mut self, tx: &'a mut T, _again: bool) -> BoxFut<'a, bool> {
        Box::pin(async move {
            let result = ops::messages::send(tx, &self.ids, &self.req).await;
            let ok = result.is_ok();
            self.answer.result = Some(result);
            ok
        })
    }

    fn complete(self: Box<Self>, committed: Committed) {
        self.answer.send(committed);
    }

    fn text_send(&self) -> Option<(&Arc<SendReq>, &Arc<Snowflake>)> {
        Some((&self.req, &self.ids))
    }

    fn sent_together(&mut self, sent: (Sent, Effects)) {
        self.answer.result = Some(Ok(sent));
    }
}

/// Wraps a text send into a [`WriteJob`] (see [`write_job`] for `then`).
pub fn send_job<T, H>(
    req: Arc<SendReq>,
    ids: Arc<Snowflake>,
    then: H,
) -> (WriteJob<T>, oneshot::Receiver<StoreResult<(Sent, Effects)>>)
where
    T: Tx + 'static,
    H: FnOnce(&mut (Sent, Effects)) + Send + 'static,
{
    let (answer, rx) = Answer::new(then);
    let job: WriteJob<T> = Box::new(SendJob { req, ids, answer });
    (job, rx)
}

/// Wraps an operation into a [`ReadJob`].
pub fn read_job<T, R, F>(op: F) -> (ReadJob<T>, oneshot::Receiver<StoreResult<R>>)
where
    T: Tx + 'static,
    R: Send + 'static,
    F: for<'t> FnOnce(&'t mut T) -> BoxFut<'t, StoreResult<R>> + Send + 'static,
{
    let (reply, rx) = oneshot::channel();
    let job: ReadJob<T> = Box::new(move |mut tx: T| {
        Box::pin(async move {
            let result = op(&mut tx).await;
            let _ = reply.send(result);
            tx
        })
    });
    (job, rx)
}

/// A storage backend: somewhere to run write jobs (batched, group-committed) and read jobs.
pub trait Backend: Send + Sync + 'static {
    type Tx: Tx + 'static;
    /// Queues a write; fails at once with `Busy` when the queue is full. Writes with the same
    /// `key` (a thread id; 0 for the rest) run in the order they were queued.
    fn submit_write(&self, key: u64, job: WriteJob<Self::Tx>) -> StoreResult<()>;
    /// Runs a read on a read connection.
    fn submit_read(&self, job: ReadJob<Self::Tx>) -> StoreResult<()>;
    /// Statistics of the group-commit writer.
    fn stats(&self) -> WriterStats;
    /// Makes what was written durable in the database itself and stops taking writes (the
    /// server's last step of a graceful shutdown). Later writes answer `Unavailable`.
    fn close(&self) {}
}

/// Counters of the group-commit writer, for benchmarks and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    pub batches: u64,
    pub jobs: u64,
    pub failed_commits: u64,
    /// Batches run a second time: on MySQL after a deadlock or lock wait timeout rolled them
    /// back; on SQLite when a job failed after writing in a batch run without savepoints.
    pub retried_batches: u64,
    /// Text sends stored in runs by a few set-based statements (MySQL; see
    /// [`ops::messages::send_many`]) rather than one by one.
    pub sent_together: u64,
}

/// The store: business operations on a backend.
pub struct Store<B: Backend> {
    backend: B,
}

impl<B: Backend> Store<B> {
    pub fn new(backend: B) -> Self {
        Self { backend }
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// See [`Backend::close`].
    pub fn close(&self) {
        self.backend.close();
    }

    /// Runs `op` in the group-commit writer; resolves after the commit.
    pub async fn write<R, F>(&self, op: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: for<'t> FnOnce(&'t mut B::Tx) -> BoxFut<'t, StoreResult<R>> + Clone + Send + 'static,
    {
        let rx = self.enqueue_write(0, op, |_| {})?;
        rx.await
            .map_err(|_| StoreError::Unavailable("writer stopped".into()))?
    }

    /// Queues `op` now (so writes from one caller keep their order) and returns the receiver of
    /// its committed result; `then` runs on the writer after the commit (see [`write_job`]).
    pub fn enqueue_write<R, F, H>(
        &self,
        key: u64,
        op: F,
        then: H,
    ) -> StoreResult<oneshot::Receiver<StoreResult<R>>>
    where
        R: Send + 'static,
        F: for<'t> FnOnce(&'t mut B::Tx) -> BoxFut<'t, StoreResult<R>> + Clone + Send + 'static,
        H: FnOnce(&mut R) + Send + 'static,
    {
        let (job, rx) = write_job(op, then);
        self.backend.submit_write(key, job)?;
        Ok(rx)
    }

    /// Queues a text send (see [`Store::enqueue_write`]; sends of one thread keep their order).
    pub fn enqueue_send<H>(
        &self,
        req: Arc<SendReq>,
        ids: Arc<Snowflake>,
        then: H,
    ) -> StoreResult<oneshot::Receiver<StoreResult<(Sent, Effects)>>>
    where
        H: FnOnce(&mut (Sent, Effects)) + Send + 'static,
    {
        let key = req.thread_id;
        let (job, rx) = send_job(req, ids, then);
        self.backend.submit_write(key, job)?;
        Ok(rx)
    }

    /// Runs `op` on a read connection.
    pub async fn read<R, F>(&self, op: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: for<'t> FnOnce(&'t mut B::Tx) -> BoxFut<'t, StoreResult<R>> + Send + 'static,
    {
        let (job, rx) = read_job(op);
        self.backend.submit_read(job)?;
        rx.await
            .map_err(|_| StoreError::Unavailable("reader stopped".into()))?
    }
}
