//! Prometheus metrics and the operator's HTTP endpoint (`--metrics-listen`): `/metrics`,
//! `/healthz`, `/readyz` ([`http`]).
//!
//! Every metric's name is a constant here and every place that records one calls a helper of
//! this module, so the instrumented files carry one line each. Until [`install`] runs (no
//! `--metrics-listen`), each helper is one relaxed atomic load and returns: no label vectors
//! are built, no clock is read. The `metrics` facade does the rest; the exposition format is
//! `metrics-exporter-prometheus`'s. docs/OPERATIONS.md describes every metric.

pub mod http;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use confab_wire::pb::{self, ErrorCode, envelope::Body};
use futures::future::BoxFuture;
use metrics::{
    Counter, Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::service::Outcome;

/// The version `--version` and `confab_build_info` report: the crate's and the git commit it
/// was built from (server/build.rs; "unknown" outside a git checkout).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("CONFAB_GIT_COMMIT"),
    ")"
);

pub const BUILD_INFO: &str = "confab_build_info";
pub const CONNECTIONS_OPEN: &str = "confab_connections_open";
pub const CONNECTIONS_ACCEPTED: &str = "confab_connections_accepted_total";
pub const LOGINS: &str = "confab_logins_total";
pub const REGISTRATIONS: &str = "confab_registrations_total";
pub const REQUESTS: &str = "confab_requests_total";
pub const MESSAGES_STORED: &str = "confab_messages_stored_total";
pub const PUSHES_QUEUED: &str = "confab_pushes_queued_total";
pub const PUSHES_DROPPED: &str = "confab_pushes_dropped_total";
pub const RESYNCS_ANNOUNCED: &str = "confab_bus_resyncs_announced_total";
pub const RESYNCS_LOCAL: &str = "confab_resyncs_total";
pub const SLOW_CONSUMERS: &str = "confab_slow_consumers_total";
pub const RATE_LIMITED: &str = "confab_rate_limited_total";
pub const STORE_BATCH_JOBS: &str = "confab_store_batch_jobs";
pub const STORE_QUEUE_DEPTH: &str = "confab_store_writer_queue_depth";
pub const REDO_FSYNC: &str = "confab_store_redo_fsync_seconds";
pub const WAL_FSYNC: &str = "confab_store_wal_fsync_seconds";
pub const SQLITE_COMMIT: &str = "confab_store_sqlite_commit_seconds";
pub const MYSQL_TRANSACTION: &str = "confab_store_mysql_transaction_seconds";
pub const BUS_PUBLISH: &str = "confab_bus_publish_seconds";
pub const BUS_QUEUE_DEPTH: &str = "confab_bus_queue_depth";
pub const ARGON2_WAIT: &str = "confab_argon2_queue_wait_seconds";

/// Latency buckets, seconds: 50 µs (an fsync on a fast SSD) to 5 s (a stalled disk or Redis).
const SECONDS_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0,
];
/// Batch sizes, jobs: 1 up to the default `--batch-max` (512).
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

static ENABLED: AtomicBool = AtomicBool::new(false);
static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
/// Counters bumped per message or per push, registered once: recording is then an atomic add,
/// with no key hashed into the registry.
static HOT: OnceLock<Hot> = OnceLock::new();

struct Hot {
    stored: Counter,
    pushes: Counter,
    slow_push: Counter,
    send_ok: Counter,
}

/// Errors installing the recorder.
#[derive(Debug, thiserror::Error)]
#[error("cannot install the metrics recorder: {0}")]
pub struct InstallError(String);

/// Installs the process's Prometheus recorder (once; a second server in the same process, as
/// in tests, shares it) and returns the handle that renders `/metrics`.
pub fn install() -> Result<PrometheusHandle, InstallError> {
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full(STORE_BATCH_JOBS.into()), BATCH_BUCKETS)
        })
        .map_err(|e| InstallError(e.to_string()))?;
    let handle = builder
        .install_recorder()
        .map_err(|e| InstallError(e.to_string()))?;
    let handle = HANDLE.get_or_init(|| handle).clone();
    describe();
    let _ = HOT.set(Hot {
        stored: counter!(MESSAGES_STORED),
        pushes: counter!(PUSHES_QUEUED),
        slow_push: counter!(PUSHES_DROPPED, "reason" => "slow_consumer"),
        send_ok: counter!(REQUESTS, "body" => "send", "code" => "ok"),
    });
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "commit" => env!("CONFAB_GIT_COMMIT"))
        .set(1.0);
    gauge!(CONNECTIONS_OPEN).set(0.0);
    ENABLED.store(true, Ordering::Release);
    Ok(handle)
}

/// The `# HELP` lines (docs/OPERATIONS.md says more).
fn describe() {
    describe_gauge!(BUILD_INFO, "The running build (always 1).");
    describe_gauge!(
        CONNECTIONS_OPEN,
        "Client connections open, handshakes included."
    );
    describe_counter!(CONNECTIONS_ACCEPTED, "Accepted TCP connections by outcome.");
    describe_counter!(LOGINS, "Sign-ins by method (password, token) and result.");
    describe_counter!(REGISTRATIONS, "Registrations by result.");
    describe_counter!(
        REQUESTS,
        "Requests answered, by body and code (ok or the error)."
    );
    describe_counter!(
        MESSAGES_STORED,
        "Messages stored and acknowledged (not duplicates)."
    );
    describe_counter!(PUSHES_QUEUED, "Pushes queued to connections.");
    describe_counter!(PUSHES_DROPPED, "Pushes dropped, by reason.");
    describe_counter!(RESYNCS_ANNOUNCED, "Resyncs this node announced on the bus.");
    describe_counter!(
        RESYNCS_LOCAL,
        "Times this node told all its clients to resync."
    );
    describe_counter!(SLOW_CONSUMERS, "Connections dropped as slow consumers.");
    describe_counter!(RATE_LIMITED, "Requests refused by a rate limit, by limit.");
    describe_histogram!(STORE_BATCH_JOBS, "Jobs per group-commit batch.");
    describe_gauge!(
        STORE_QUEUE_DEPTH,
        "Write jobs waiting when a writer took a batch."
    );
    describe_histogram!(
        REDO_FSYNC,
        Unit::Seconds,
        "Redo log fdatasync (embedded store)."
    );
    describe_histogram!(
        WAL_FSYNC,
        Unit::Seconds,
        "WAL sync after a commit (embedded store)."
    );
    describe_histogram!(
        SQLITE_COMMIT,
        Unit::Seconds,
        "Database commit (embedded store)."
    );
    describe_histogram!(
        MYSQL_TRANSACTION,
        Unit::Seconds,
        "A batch's MySQL transaction."
    );
    describe_histogram!(
        BUS_PUBLISH,
        Unit::Seconds,
        "Publishing a batch to other nodes."
    );
    describe_gauge!(
        BUS_QUEUE_DEPTH,
        "Pushes waiting to be published to other nodes."
    );
    describe_histogram!(
        ARGON2_WAIT,
        Unit::Seconds,
        "Wait for a password hashing thread."
    );
}

/// Whether metrics are recorded (`--metrics-listen` given).
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// A start time for a latency, `None` when metrics are off (no clock read).
#[inline]
pub fn timer() -> Option<Instant> {
    enabled().then(Instant::now)
}

/// Records the time since `start` in histogram `name` (seconds).
#[inline]
pub fn observe(name: &'static str, start: Option<Instant>) {
    if let Some(t) = start {
        histogram!(name).record(t.elapsed().as_secs_f64());
    }
}

/// Runs `f`, recording how long it took in histogram `name`.
#[inline]
pub fn time<T>(name: &'static str, f: impl FnOnce() -> T) -> T {
    let start = timer();
    let r = f();
    observe(name, start);
    r
}

/// An accepted TCP connection's fate: `served` (handed to its connection task), or why it was
/// refused (`full`, `proxy_header`, `tls`).
#[inline]
pub fn accepted(outcome: &'static str) {
    if enabled() {
        counter!(CONNECTIONS_ACCEPTED, "outcome" => outcome).increment(1);
    }
}

/// Counts an accepted connection as open (from its accept, handshakes included: it holds a
/// descriptor and a place under `--max-connections`) until the guard drops.
pub struct OpenConnection(bool);

#[inline]
pub fn connection_open() -> OpenConnection {
    let on = enabled();
    if on {
        gauge!(CONNECTIONS_OPEN).increment(1.0);
    }
    OpenConnection(on)
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        if self.0 {
            gauge!(CONNECTIONS_OPEN).decrement(1.0);
        }
    }
}

/// A request refused by a limit: `requests` (the per-connection rate), `in_flight`; the
/// service's own limits are counted from their replies ([`requests`]).
#[inline]
pub fn rate_limited(limit: &'static str) {
    if enabled() {
        counter!(RATE_LIMITED, "limit" => limit).increment(1);
    }
}

/// The label a request is counted under (its body's name), taken before the service takes
/// the body.
#[inline]
pub fn kind(body: &Body) -> &'static str {
    confab_wire::body_name(body)
}

/// Wraps a request's future so its reply is counted: `confab_requests_total{body, code}`,
/// logins and registrations by result, and the service's rate limits. `kind` is the
/// request's [`kind`], `None` when metrics are off: the future is then returned as it is.
pub fn requests(
    kind: Option<&'static str>,
    fut: BoxFuture<'static, Outcome>,
) -> BoxFuture<'static, Outcome> {
    let Some(name) = kind else { return fut };
    Box::pin(async move {
        let outcome = fut.await;
        let code = match outcome.reply.as_ref().and_then(|r| r.body.as_ref()) {
            Some(Body::Error(e)) => code_name(e),
            _ => "ok",
        };
        record_request(name, code);
        outcome
    })
}

/// Wraps a Hello's future: one carrying a resume token is a sign-in, counted in
/// `confab_logins_total{method="token"}` (`ok`, `AUTH_FAILED` when the token no longer works,
/// or the error that closed the connection).
pub fn hello(resumes: bool, fut: BoxFuture<'static, Outcome>) -> BoxFuture<'static, Outcome> {
    if !resumes || !enabled() {
        return fut;
    }
    Box::pin(async move {
        let outcome = fut.await;
        let result = match outcome.reply.as_ref().and_then(|r| r.body.as_ref()) {
            Some(Body::HelloOk(ok)) if ok.auth.is_some() => "ok",
            Some(Body::HelloOk(_)) => ErrorCode::AuthFailed.as_str_name(),
            Some(Body::Error(e)) => code_name(e),
            _ => "UNKNOWN",
        };
        counter!(LOGINS, "method" => "token", "result" => result).increment(1);
        outcome
    })
}

fn code_name(e: &pb::Error) -> &'static str {
    ErrorCode::try_from(e.code).map_or("UNKNOWN", |c| c.as_str_name())
}

fn record_request(body: &'static str, code: &'static str) {
    match (body, code, HOT.get()) {
        ("send", "ok", Some(hot)) => hot.send_ok.increment(1),
        _ => counter!(REQUESTS, "body" => body, "code" => code).increment(1),
    }
    match body {
        "login" => counter!(LOGINS, "method" => "password", "result" => code).increment(1),
        "resume" => counter!(LOGINS, "method" => "token", "result" => code).increment(1),
        "register" => counter!(REGISTRATIONS, "result" => code).increment(1),
        _ => {}
    }
    if code == "RATE_LIMITED" {
        let limit = match body {
            "login" | "resume" | "register" => "sign_in",
            "search_messages" => "search",
            _ => "other",
        };
        rate_limited(limit);
    }
}

/// A send was acknowledged; counted unless it was a retry of a stored message.
#[inline]
pub fn message_stored(ack: &pb::SendAck) {
    if let (false, Some(hot)) = (ack.duplicate, HOT.get()) {
        hot.stored.increment(1);
    }
}

/// A push went into a connection's queue.
#[inline]
pub fn push_queued() {
    if let Some(hot) = HOT.get() {
        hot.pushes.increment(1);
    }
}

/// A push was dropped: `slow_consumer` (the connection's queue was full), `bus_queue_full`,
/// `bus_publish_failed`, `bus_too_old` (on the way to other nodes).
#[inline]
pub fn push_dropped(reason: &'static str, n: usize) {
    match (reason, HOT.get()) {
        ("slow_consumer", Some(hot)) => hot.slow_push.increment(n as u64),
        (_, Some(_)) => counter!(PUSHES_DROPPED, "reason" => reason).increment(n as u64),
        _ => {}
    }
}

/// A connection was dropped as a slow consumer (its push queue filled, or its socket took
/// nothing for the write timeout).
#[inline]
pub fn slow_consumer() {
    if enabled() {
        counter!(SLOW_CONSUMERS).increment(1);
    }
}

/// This node told its clients to resync: `cause` is `recovery` (its subscription was
/// interrupted, or Redis lost its routes) or `announcement` (a node dropped pushes).
#[inline]
pub fn resync_local(cause: &'static str) {
    if enabled() {
        counter!(RESYNCS_LOCAL, "cause" => cause).increment(1);
    }
}

/// This node announced on `confab:resync` that it dropped pushes.
#[inline]
pub fn resync_announced() {
    if enabled() {
        counter!(RESYNCS_ANNOUNCED).increment(1);
    }
}

/// A batch of `jobs` taken by a store writer, with `waiting` jobs left in its queue.
#[inline]
pub fn store_batch(jobs: usize, waiting: usize) {
    if enabled() {
        histogram!(STORE_BATCH_JOBS).record(jobs as f64);
        gauge!(STORE_QUEUE_DEPTH).set(waiting as f64);
    }
}

/// Pushes waiting to be published to other nodes.
#[inline]
pub fn bus_queue(depth: usize) {
    if enabled() {
        gauge!(BUS_QUEUE_DEPTH).set(depth as f64);
    }
}

/// Renders the text exposition (after the histograms' upkeep).
pub(crate) fn render(handle: &PrometheusHandle) -> String {
    handle.run_upkeep();
    handle.render()
}
