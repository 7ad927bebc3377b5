//! One task per connection: reads frames, runs requests (up to `max_in_flight` at once), writes
//! replies and pushes, and enforces the hello and idle timeouts, the rate limit and the write
//! deadline.
//!
//! Memory matters here (thousands of idle connections): the read and write buffers are
//! released whenever they are empty, so an idle connection holds no buffer at all.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use confab_wire::pb::{self, ErrorCode};
use confab_wire::{Body, Envelope, EnvelopeCodec, Frame, FrameError};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use governor::{Quota, RateLimiter};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_util::codec::{Decoder, Encoder};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, debug_span};

use super::stream::Stream;
use crate::hub::{ConnCtl, Kick};
use crate::service::gate::{self, Step};
use crate::service::{AuthChange, ConnCtx, Outcome, Service, Session, err, error_reply};
use crate::store::Backend;

/// Stop reading while this much output is waiting for the socket.
const WRITE_HIGH_WATER: usize = 256 * 1024;
/// Read at most this much per wakeup, so one busy peer cannot starve the others.
const READ_CHUNK: usize = 16 * 1024;
/// Buffers above this size are released when they empty.
const KEEP_BUFFER: usize = 0;
/// Time allowed to flush a final error frame.
const CLOSE_FLUSH: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitHello,
    Ready,
}

/// Why the loop ended.
enum Close {
    /// Peer closed or the socket failed; nothing more to say.
    Quiet,
    /// Send this error (with this req_id: the request it answers, or 0), flush, close.
    Fatal(pb::Error, u64),
}

struct Conn<B: Backend> {
    svc: Arc<Service<B>>,
    stream: Stream,
    ctx: ConnCtx,
    codec: EnvelopeCodec,
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// Bytes at the start of `wbuf` that end a frame the socket already took part of (0: `wbuf`
    /// starts at a frame boundary). Lets a close drop whole queued frames and still end the
    /// stream on a boundary.
    wbuf_head: usize,
    phase: Phase,
    /// A request that changes authentication is running: read nothing else until it ends.
    exclusive: bool,
    inflight: FuturesUnordered<futures::future::BoxFuture<'static, Outcome>>,
    limiter: governor::DefaultDirectRateLimiter,
    last_rx: Instant,
    opened: Instant,
    write_blocked_since: Option<Instant>,
}

/// Serves one accepted connection until it closes. An `operator` connection (the admin
/// socket) is the console's from the start and runs Admin requests only.
pub async fn serve<B: Backend>(
    svc: Arc<Service<B>>,
    stream: Stream,
    peer: SocketAddr,
    conn_id: u64,
    shutdown: CancellationToken,
    operator: bool,
) {
    let _ = stream.set_nodelay(true);
    let (out_tx, out_rx) = mpsc::channel(svc.cfg.outbound_queue);
    let quota =
        Quota::per_second(NonZeroU32::new(svc.cfg.requests_per_second).unwrap_or(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(svc.cfg.request_burst).unwrap_or(NonZeroU32::MIN));
    let now = Instant::now();
    let opened = stream.accepted_at();
    let conn = Conn {
        ctx: ConnCtx {
            conn_id,
            peer: peer.ip(),
            session: operator.then(Session::console),
            out: out_tx,
            ctl: Arc::new(ConnCtl::default()),
            quiet: operator,
            client: String::new(),
            operator,
        },
        codec: EnvelopeCodec::with_max_frame(svc.cfg.max_frame_bytes as usize),
        svc,
        stream,
        rbuf: BytesMut::new(),
        wbuf: BytesMut::new(),
        wbuf_head: 0,
        phase: Phase::AwaitHello,
        exclusive: false,
        inflight: FuturesUnordered::new(),
        limiter: RateLimiter::direct(quota),
        last_rx: now,
        opened,
        write_blocked_since: None,
    };
    // A debug span: at the default level it is disabled and costs nothing per poll, while
    // entering an enabled one on every wakeup is a measurable share of a message's CPU.
    conn.run(out_rx, shutdown)
        .instrument(debug_span!("conn", id = conn_id, %peer))
        .await;
}

impl<B: Backend> Conn<B> {
    async fn run(mut self, mut out_rx: mpsc::Receiver<Frame>, shutdown: CancellationToken) {
        let ctl = self.ctx.ctl.clone();
        // Made once, not per wakeup: each of these registers a waiter (a lock) or a timer when
        // it is created and deregisters it when dropped, and a busy connection wakes up several
        // times per message.
        let kicked = ctl.kicked();
        let cancelled = shutdown.cancelled();
        let mut armed = self.deadline();
        let timer = sleep_until(armed);
        tokio::pin!(kicked, cancelled, timer);
        let close = loop {
            let can_read = !self.exclusive && self.wbuf.len() < WRITE_HIGH_WATER;
            // Deadlines only move later as traffic arrives; the timer is moved earlier at once
            // (a write that blocks) and later only when it fires.
            let deadline = self.deadline();
            if deadline < armed && deadline > Instant::now() {
                armed = deadline;
                timer.as_mut().reset(armed);
            }
            tokio::select! {
                biased;
                _ = &mut kicked => break Close::Fatal(kick_error(ctl.reason()), 0),
                _ = &mut cancelled => break self.drain_for_shutdown().await,
                Some(outcome) = self.inflight.next(), if !self.inflight.is_empty() => {
                    if let Err(c) = self.finish(outcome) { break c; }
                    // A finished exclusive request may unblock frames already buffered.
                    if let Err(c) = self.process_input() { break c; }
                }
                Some(frame) = out_rx.recv(), if self.wbuf.len() < WRITE_HIGH_WATER => {
                    self.wbuf.extend_from_slice(frame.as_bytes());
                    // Take whatever else is queued: one write for a burst of pushes.
                    while self.wbuf.len() < WRITE_HIGH_WATER {
                        match out_rx.try_recv() {
                            Ok(f) => self.wbuf.extend_from_slice(f.as_bytes()),
                            Err(_) => break,
                        }
                    }
                }
                r = self.stream.readable(), if can_read => {
                    if r.is_err() { break Close::Quiet; }
                    match self.read_some() {
                        Ok(true) => {}
                        Ok(false) => break Close::Quiet,
                        Err(c) => break c,
                    }
                    if let Err(c) = self.process_input() { break c; }
                }
                r = self.stream.writable(), if !self.wbuf.is_empty() || self.stream.pending_output() => {
                    if r.is_err() { break Close::Quiet; }
                }
                _ = &mut timer => {
                    if let Some(c) = self.check_timers() { break c; }
                    // A deadline that passed without closing (a Hello still running) is looked
                    // at again shortly rather than in a busy loop.
                    armed = self.deadline().max(Instant::now() + Duration::from_millis(50));
                    timer.as_mut().reset(armed);
                }
            }
            if let Err(()) = self.flush_some() {
                break Close::Quiet;
            }
        };
        // Off the hub first: no more pushes, and presence says offline while the goodbye
        // waits for the socket.
        if let Some(session) = self.ctx.session.take()
            && !self.ctx.operator
        {
            self.svc.detach(self.ctx.conn_id, &session);
        }
        if let Close::Fatal(e, req_id) = close {
            debug!(error = %e, "closing with an error");
            self.send_final(e, req_id).await;
        }
    }

    /// The next moment a timer may fire.
    fn deadline(&self) -> Instant {
        let cfg = &self.svc.cfg;
        let mut d = match self.phase {
            Phase::AwaitHello => self.opened + cfg.hello_timeout,
            Phase::Ready => self.last_rx + Duration::from_millis(u64::from(cfg.idle_timeout_ms)),
        };
        if let Some(since) = self.write_blocked_since {
            d = d.min(since + cfg.write_timeout);
        }
        d
    }

    fn check_timers(&mut self) -> Option<Close> {
        let now = Instant::now();
        let cfg = &self.svc.cfg;
        if let Some(since) = self.write_blocked_since
            && now >= since + cfg.write_timeout
        {
            return Some(Close::Fatal(
                err(ErrorCode::SlowConsumer, "the connection stopped reading").fatal(),
                0,
            ));
        }
        match self.phase {
            Phase::AwaitHello if now >= self.opened + cfg.hello_timeout && !self.exclusive => Some(
                Close::Fatal(err(ErrorCode::Timeout, "no Hello in time").fatal(), 0),
            ),
            Phase::Ready
                if now >= self.last_rx + Duration::from_millis(u64::from(cfg.idle_timeout_ms)) =>
            {
                Some(Close::Fatal(
                    err(ErrorCode::Timeout, "idle timeout").fatal(),
                    0,
                ))
            }
            _ => None,
        }
    }

    /// Reads what the socket has (up to a chunk). Ok(false) on EOF.
    fn read_some(&mut self) -> Result<bool, Close> {
        let mut total = 0;
        while total < READ_CHUNK {
            self.rbuf.reserve(4096);
            match self.stream.try_read_buf(&mut self.rbuf) {
                Ok(0) => {
                    if !self.rbuf.is_empty() {
                        debug!(buffered = self.rbuf.len(), "peer closed inside a frame");
                    }
                    return Ok(false);
                }
                Ok(n) => total += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Decodes and handles every complete frame in the read buffer, unless a request that
    /// changes authentication is running.
    fn process_input(&mut self) -> Result<(), Close> {
        while !self.exclusive {
            let env = match self.codec.decode(&mut self.rbuf) {
                Ok(Some(env)) => env,
                Ok(None) => break,
                Err(e) => {
                    let msg = match &e {
                        FrameError::TooLarge { .. } => e.to_string(),
                        _ => format!("undecodable frame: {e}"),
                    };
                    return Err(Close::Fatal(err(ErrorCode::ProtocolError, msg).fatal(), 0));
                }
            };
            // Only a complete frame counts as traffic: a peer trickling bytes of a frame it
            // never finishes is idle.
            self.last_rx = Instant::now();
            self.handle(env)?;
        }
        if self.rbuf.is_empty() && self.rbuf.capacity() > KEEP_BUFFER {
            self.rbuf = BytesMut::new();
        }
        Ok(())
    }

    fn reply(&mut self, env: &Envelope) {
        if let Err(e) = self.codec.encode(env, &mut self.wbuf) {
            debug!(error = %e, "reply too large; sending an error instead");
            let fallback = error_reply(
                env.req_id,
                err(ErrorCode::TooLarge, "the reply exceeds the frame limit"),
            );
            let _ = self.codec.encode(&fallback, &mut self.wbuf);
        }
    }

    /// One decoded envelope: the protocol's state rules ([`gate::frame`]) say what it is; what
    /// runs is counted against the rate limit and the in-flight cap first.
    fn handle(&mut self, env: Envelope) -> Result<(), Close> {
        let req_id = env.req_id;
        let (body, exclusive) = match gate::frame(self.phase == Phase::Ready, req_id, env.body) {
            Step::Ignore => return Ok(()),
            Step::Reply(reply) => {
                self.reply(&reply);
                return Ok(());
            }
            Step::Close(e, req_id) => return Err(Close::Fatal(e, req_id)),
            Step::Hello(hello) => {
                // Set before the Hello's own resume attaches the session.
                self.ctx.quiet = hello.quiet;
                self.ctx.client = crate::service::validate::device_name(&hello.client_name);
                let svc = self.svc.clone();
                let ctx = self.ctx.clone();
                self.exclusive = true;
                let resumes = !hello.resume_token.is_empty();
                self.inflight.push(crate::metrics::hello(
                    resumes,
                    Box::pin(async move { svc.hello(&ctx, req_id, hello).await }),
                ));
                return Ok(());
            }
            Step::Request { body, exclusive } => (body, exclusive),
        };
        if let Err(not_until) = self.limiter.check() {
            use governor::clock::{Clock, DefaultClock};
            let wait = not_until
                .wait_time_from(DefaultClock::default().now())
                .as_millis();
            let e = err(ErrorCode::RateLimited, "too many requests")
                .retry_after(u32::try_from(wait).unwrap_or(u32::MAX).max(1));
            crate::metrics::rate_limited("requests");
            self.reply(&error_reply(req_id, e));
            return Ok(());
        }
        if self.inflight.len() >= self.svc.cfg.max_in_flight as usize {
            let e = err(ErrorCode::RateLimited, "too many requests in flight").retry_after(50);
            crate::metrics::rate_limited("in_flight");
            self.reply(&error_reply(req_id, e));
            return Ok(());
        }
        self.exclusive |= exclusive;
        let counted = crate::metrics::enabled().then(|| crate::metrics::kind(&body));
        let fut = crate::metrics::requests(counted, self.svc.dispatch(&self.ctx, req_id, body));
        self.inflight.push(fut);
        Ok(())
    }

    fn finish(&mut self, outcome: Outcome) -> Result<(), Close> {
        if let Some(reply) = &outcome.reply {
            if let Some(Body::Error(e)) = &reply.body
                && e.fatal
            {
                return Err(Close::Fatal(e.clone(), reply.req_id));
            }
            if self.phase == Phase::AwaitHello && matches!(reply.body, Some(Body::HelloOk(_))) {
                self.phase = Phase::Ready;
                self.last_rx = Instant::now();
            }
            self.reply(reply);
        }
        match outcome.auth {
            AuthChange::Unchanged => {}
            AuthChange::LoggedIn(s) => self.ctx.session = Some(s),
            AuthChange::LoggedOut => self.ctx.session = None,
        }
        if self.inflight.is_empty() {
            self.exclusive = false;
        }
        Ok(())
    }

    /// Writes what the socket takes now. Err on a broken socket.
    fn flush_some(&mut self) -> Result<(), ()> {
        while !self.wbuf.is_empty() {
            match self.stream.try_write(&self.wbuf) {
                Ok(0) => return Err(()),
                Ok(n) => {
                    self.written(n);
                    self.write_blocked_since = None;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    self.write_blocked_since.get_or_insert_with(Instant::now);
                    return Ok(());
                }
                Err(_) => return Err(()),
            }
        }
        // TLS: records rustls holds for the socket.
        match self.stream.flush_pending() {
            Ok(true) => {}
            Ok(false) => {
                self.write_blocked_since.get_or_insert_with(Instant::now);
                return Ok(());
            }
            Err(_) => return Err(()),
        }
        self.write_blocked_since = None;
        if self.wbuf.capacity() > KEEP_BUFFER {
            self.wbuf = BytesMut::new();
        }
        Ok(())
    }

    /// Drops `n` written bytes from `wbuf`, keeping `wbuf_head` on the frame boundaries.
    fn written(&mut self, n: usize) {
        let mut at = self.wbuf_head;
        while at < n {
            // Every frame in `wbuf` is whole: a u32 big-endian length, then that many bytes.
            let Some(len) = self
                .wbuf
                .get(at..at + 4)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(u32::from_be_bytes)
            else {
                at = n;
                break;
            };
            at += 4 + len as usize;
        }
        self.wbuf_head = at - n;
        self.wbuf.advance(n);
    }

    /// On shutdown: stop reading, let running requests finish (their writes are committed and
    /// acked), then say goodbye.
    async fn drain_for_shutdown(&mut self) -> Close {
        let grace = self.svc.cfg.shutdown_grace / 2;
        let until = Instant::now() + grace;
        while !self.inflight.is_empty() {
            match tokio::time::timeout_at(until, self.inflight.next()).await {
                Ok(Some(outcome)) => {
                    let _ = self.finish(outcome);
                }
                _ => break,
            }
        }
        // Spread reconnects over a few seconds.
        let retry = 500 + (self.ctx.conn_id % 2500) as u32;
        Close::Fatal(
            err(ErrorCode::ShuttingDown, "the server is shutting down")
                .retry_after(retry)
                .fatal(),
            0,
        )
    }

    async fn send_final(&mut self, e: pb::Error, req_id: u64) {
        let mut flush = CLOSE_FLUSH;
        if e.code == ErrorCode::SlowConsumer as i32 {
            crate::metrics::slow_consumer();
            // The queued pushes are moot (the client must resync); the error goes right after
            // the frame the socket is part way through. A client that reads again within the
            // write deadline then sees whole frames and the reason, not a cut-off stream.
            self.wbuf.truncate(self.wbuf_head);
            flush = flush.max(self.svc.cfg.write_timeout);
        }
        self.reply(&error_reply(req_id, e));
        let _ = tokio::time::timeout(flush, async {
            while !self.wbuf.is_empty() || self.stream.pending_output() {
                if self.stream.writable().await.is_err() || self.flush_some().is_err() {
                    return;
                }
            }
        })
        .await;
    }
}

fn kick_error(reason: Kick) -> pb::Error {
    match reason {
        Kick::SlowConsumer => err(
            ErrorCode::SlowConsumer,
            "too many pushes waiting; resync after reconnecting",
        ),
        Kick::Revoked => err(ErrorCode::AuthFailed, "this session was revoked"),
        Kick::Disabled => err(
            ErrorCode::AccountDisabled,
            "this account was deactivated by an administrator",
        ),
        Kick::None => err(ErrorCode::Internal, "closed"),
    }
    .fatal()
}
