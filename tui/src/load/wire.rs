//! `dm --wire`: pairs driven over the wire protocol directly, without the client core.
//!
//! The client core costs a task, a command channel and an event channel per connection, and at
//! tens of thousands of messages a second on a shared 2-core machine the load generator's
//! share of the CPU decides what the server can show. Here one task owns both connections of a
//! pair and reads their frames itself. The server's work is the same: the same requests, a
//! `DeliveredUpTo` per connection and thread once a second as the client core sends it. The
//! ledger checks every message as in [`super::dm`]; a push the server drops shows as lost (this
//! loop does not resync).

use std::collections::HashMap;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::tls::ClientStream;
use confab_wire::{Body, Envelope, EnvelopeCodec, PROTOCOL_MAJOR, PROTOCOL_MINOR, pb};
use futures::{SinkExt, StreamExt};
use tokio::sync::Semaphore;
use tokio_util::codec::Framed;

use super::dm::{Pace, Pacer};
use super::ledger::Ledger;
use super::report::{Progress, Report};
use super::{LoadError, LoadOpts, Users, my_share, pair_threads};

/// How often each connection reports its delivery marker (the client core's default).
const DELIVERED_EVERY: Duration = Duration::from_secs(1);

/// Why a raw connection failed; the text goes into the report.
#[derive(Debug, thiserror::Error)]
enum WireError {
    /// A step of connecting failed (resolve, socket, bind, connect).
    #[error("{0}")]
    Connect(String),
    #[error("write failed: {0}")]
    Write(confab_wire::FrameError),
    #[error("no answer to Hello in 60 s")]
    HelloTimeout,
    #[error("the server closed the connection")]
    Closed,
    #[error("bad frame: {0}")]
    BadFrame(confab_wire::FrameError),
    #[error("the token was not accepted: run setup again")]
    TokenRefused,
    #[error("Hello refused: {0}")]
    Refused(pb::Error),
}

/// A send not answered yet: what a retry sends again (same client_msg_id).
struct Outstanding {
    local: u64,
    client_msg_id: String,
    body: String,
}

/// One authenticated connection.
struct Conn {
    framed: Framed<ClientStream, EnvelopeCodec>,
    next_req: u64,
    /// Highest seq pushed in the pair's thread, and the last one reported.
    cursor: u64,
    reported: u64,
    /// Sends by request id.
    outstanding: HashMap<u64, Outstanding>,
    /// Sends refused with a retryable error, due again at the instant given.
    retries: Vec<(Instant, Outstanding)>,
    next_local: u64,
}

impl Conn {
    async fn send_text(&mut self, thread_id: u64, o: Outstanding) -> Result<(), WireError> {
        let id = self
            .send(Body::Send(pb::Send {
                reply_to: 0,
                thread_id,
                client_msg_id: o.client_msg_id.clone(),
                body: o.body.clone(),
            }))
            .await?;
        self.outstanding.insert(id, o);
        Ok(())
    }

    async fn send(&mut self, body: Body) -> Result<u64, WireError> {
        let id = self.next_req;
        self.next_req += 1;
        self.framed
            .send(Envelope::new(id, body))
            .await
            .map_err(WireError::Write)?;
        Ok(id)
    }
}

async fn open(opts: &LoadOpts, i: usize, token: &str) -> Result<(Conn, String), WireError> {
    let g = i * opts.shard.1.max(1) + opts.shard.0;
    let stream = opts
        .open_stream(opts.server(g), opts.bind_addr(g))
        .await
        .map_err(WireError::Connect)?;
    let mut conn = Conn {
        framed: Framed::new(stream, EnvelopeCodec::new()),
        next_req: 1,
        cursor: 0,
        reported: 0,
        outstanding: HashMap::new(),
        retries: Vec::new(),
        next_local: 1,
    };
    let id = conn
        .send(Body::Hello(pb::Hello {
            protocol_major: PROTOCOL_MAJOR,
            protocol_minor: PROTOCOL_MINOR,
            client_name: "confab-load".into(),
            client_version: env!("CARGO_PKG_VERSION").into(),
            resume_token: token.to_owned(),
            ..Default::default()
        }))
        .await?;
    loop {
        let env = tokio::time::timeout(Duration::from_secs(60), conn.framed.next())
            .await
            .map_err(|_| WireError::HelloTimeout)?
            .ok_or(WireError::Closed)?
            .map_err(WireError::BadFrame)?;
        match env.body {
            Some(Body::HelloOk(ok)) if env.req_id == id => {
                let auth = ok.auth.ok_or(WireError::TokenRefused)?;
                return Ok((conn, auth.resume_token));
            }
            Some(Body::Error(e)) if env.req_id == id || e.fatal => {
                return Err(WireError::Refused(e));
            }
            _ => {}
        }
    }
}

/// Runs `pairs` pairs (this process's share) over raw connections.
pub async fn dm_wire(
    opts: &LoadOpts,
    users: &mut Users,
    pairs: usize,
    size: usize,
    pace: Pace,
) -> Result<Report, LoadError> {
    let mine = my_share(opts, users.pairs(), pairs, super::NO_PAIRS)?;
    let (threads, who) = pair_threads(&mine)?;
    let started = Instant::now();
    let sem = Arc::new(Semaphore::new(opts.connect_concurrency.max(1)));
    let mut tasks = Vec::with_capacity(who.len());
    for (i, u) in who.iter().enumerate() {
        let (sem, opts, u) = (sem.clone(), opts.clone(), u.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await;
            open(&opts, i, &u.token)
                .await
                .map(|(c, token)| (c, u.name.clone(), token))
                .map_err(|e| LoadError::Client(u.name.clone(), e.to_string()))
        }));
    }
    let mut conns = Vec::with_capacity(who.len());
    for t in tasks {
        let (c, name, token) = t.await.map_err(|e| LoadError::Setup(e.to_string()))??;
        users.update_token(&name, token);
        conns.push(c);
    }
    let connect_time = started.elapsed();
    let measure_from = Instant::now() + opts.warmup;
    let stop_at = measure_from + opts.duration;
    let progress = Progress::new(opts.progress, (opts.warmup + opts.duration).as_secs());
    let interval = (opts.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / opts.rate));
    let mut conns = conns.into_iter();
    let mut tasks = Vec::with_capacity(threads.len());
    for thread in threads {
        let (Some(a), Some(b)) = (conns.next(), conns.next()) else {
            break;
        };
        let run = PairRun {
            thread,
            size,
            pace,
            interval,
            measure_from,
            stop_at,
            drain_until: stop_at + opts.drain,
            progress: progress.clone(),
        };
        tasks.push(tokio::spawn(run.run([a, b])));
    }
    let report =
        Report::of_tasks("dm", tasks, "pair", opts.duration, who.len(), connect_time).await;
    progress.finish();
    Ok(report)
}

struct PairRun {
    thread: u64,
    size: usize,
    pace: Pace,
    interval: Option<Duration>,
    measure_from: Instant,
    stop_at: Instant,
    drain_until: Instant,
    progress: Progress,
}

impl PairRun {
    async fn run(self, sides: [Conn; 2]) -> Report {
        let [mut a, mut b] = sides;
        let mut ledger = Ledger::new("dm", 2, 2, self.measure_from);
        let mut pacer = Pacer::new(self.interval, self.pace);
        let mut tick = pacer.timer();
        let mut last_report = Instant::now();
        loop {
            let now = Instant::now();
            let sending = now < self.stop_at;
            if !sending && (now >= self.drain_until || ledger.settled()) {
                break;
            }
            if sending {
                for (side, conn) in [&mut a, &mut b].into_iter().enumerate() {
                    if pacer.take(side) {
                        let body = ledger.next_body(side, self.size);
                        let at = Instant::now();
                        let local = conn.next_local;
                        conn.next_local += 1;
                        let o = Outstanding {
                            local,
                            client_msg_id: crate::client::new_client_msg_id(),
                            body,
                        };
                        if let Err(e) = conn.send_text(self.thread, o).await {
                            ledger.post_failed(&e.to_string());
                            return ledger.finish(Duration::ZERO);
                        }
                        ledger.posted(side, local, 1, at);
                    }
                }
            }
            // Sends refused for now go again when the server said they may.
            let now = Instant::now();
            for conn in [&mut a, &mut b] {
                let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut conn.retries)
                    .into_iter()
                    .partition(|(t, _)| *t <= now);
                conn.retries = later;
                for (_, o) in due {
                    if let Err(e) = conn.send_text(self.thread, o).await {
                        ledger.post_failed(&e.to_string());
                        return ledger.finish(Duration::ZERO);
                    }
                }
            }
            let next_retry = a
                .retries
                .iter()
                .chain(&b.retries)
                .map(|(t, _)| *t)
                .min()
                .unwrap_or(self.drain_until);
            let wait = if sending {
                self.stop_at
            } else {
                self.drain_until
            };
            let (side, frame) = tokio::select! {
                f = a.framed.next() => (0usize, f),
                f = b.framed.next() => (1usize, f),
                _ = tick.tick() => {
                    pacer.tick();
                    if last_report.elapsed() >= DELIVERED_EVERY {
                        last_report = Instant::now();
                        for conn in [&mut a, &mut b] {
                            if conn.cursor > conn.reported {
                                let seq = conn.cursor;
                                let marker = Envelope::new(0, Body::DeliveredUpTo(pb::DeliveredUpTo {
                                    thread_id: self.thread,
                                    seq,
                                }));
                                if conn.framed.send(marker).await.is_ok() {
                                    conn.reported = seq;
                                }
                            }
                        }
                    }
                    continue;
                }
                _ = tokio::time::sleep_until(wait.min(next_retry).into()) => continue,
            };
            let env = match frame {
                Some(Ok(env)) => env,
                Some(Err(e)) => {
                    ledger.report.error(format!("bad frame from server: {e}"));
                    break;
                }
                None => {
                    ledger.report.error("the server closed a connection");
                    break;
                }
            };
            let conn = if side == 0 { &mut a } else { &mut b };
            match env.body {
                Some(Body::SendAck(_)) => {
                    if let Some(o) = conn.outstanding.remove(&env.req_id)
                        && ledger.acked(side, o.local)
                    {
                        pacer.acked(side);
                    }
                }
                Some(Body::Error(e)) => {
                    match conn.outstanding.remove(&env.req_id) {
                        Some(o) if crate::client::retryable(&e) => {
                            ledger.retried(&e);
                            let wait = Duration::from_millis(u64::from(e.retry_after_ms.max(20)));
                            conn.retries.push((Instant::now() + wait, o));
                        }
                        Some(o) => {
                            ledger.failed(side, o.local, &e);
                            pacer.failed(side);
                        }
                        // A notification refused (a delivery marker): counted, not fatal.
                        None => ledger.report.error(format!("server: {e}")),
                    }
                    if e.fatal {
                        break;
                    }
                }
                Some(Body::MessagePush(p)) => {
                    let Some(m) = p.message else { continue };
                    if m.thread_id != self.thread {
                        continue;
                    }
                    conn.cursor = conn.cursor.max(m.seq);
                    if ledger.delivered(side, &m).is_some() {
                        self.progress.inc();
                        pacer.delivered(side);
                    }
                }
                _ => {}
            }
        }
        ledger.finish(Duration::ZERO)
    }
}
