//! The connection: connect, Hello, log in or resume, serve until it ends, wait the backoff,
//! again. [`open_stream`] is the one place that makes the byte stream (TCP, then TLS for
//! `tls://`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use confab_wire::pb::{self, ErrorCode};
use confab_wire::{Body, Envelope, EnvelopeCodec, PROTOCOL_MAJOR, PROTOCOL_MINOR};
use futures::{SinkExt, StreamExt};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::codec::Framed;
use tracing::debug;

use super::Engine;
use crate::client::tls::{self, AddrError, ClientStream, ConnectError, Connector, ServerAddr};
use crate::client::{Auth, ClientError, Command, ConnState, Event, TrustProblem};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const TICK: Duration = Duration::from_millis(100);
/// How long past a heartbeat the server may take to answer before the user is told it is
/// silent (the connection is dropped only at the idle timeout or a request's timeout).
pub(super) const SILENT_GRACE: Duration = Duration::from_secs(3);

/// The byte stream under the frames: plain TCP or TLS.
pub(super) type Stream = ClientStream;

/// What a request on the link is for (its reply goes there).
pub(super) enum Pending {
    External(oneshot::Sender<Result<Body, ClientError>>),
    Sync(u64),
    Events,
    List,
    Send(u64),
    Ping,
    /// A `ReadUpTo` (thread, seq): confirmed by its reply.
    ReadMark(u64, u64),
    /// A `GetThread` after a user event changed a thread (a friendship ended, a group left,
    /// joined or changed): the fresh description replaces the listing's.
    ThreadInfo,
}

/// One live, authenticated connection.
pub(super) struct Link {
    framed: Framed<Stream, EnvelopeCodec>,
    next_req: u64,
    pub(super) pending: HashMap<u64, (Pending, Instant)>,
    pub(super) last_tx: Instant,
    pub(super) last_rx: Instant,
    pub(super) heartbeat: Duration,
    pub(super) idle: Duration,
    frames: u64,
    pub(super) events_syncing: bool,
    pub(super) listing: bool,
    pub(super) synced_sent: bool,
    /// [`Event::Silent`] was reported and nothing has arrived since.
    pub(super) silent: bool,
    /// The protocol minor both sides speak (HelloOk): what may be sent.
    pub(super) minor: u32,
}

/// How a connection ended.
pub(super) enum End {
    Shutdown(Option<oneshot::Sender<()>>),
    Lost {
        reason: String,
        retry_after: Duration,
    },
    /// Refused for good: reconnecting would not help until the user acts.
    Fatal {
        code: ErrorCode,
        reason: String,
    },
}

impl End {
    pub(super) fn lost(reason: impl Into<String>) -> End {
        End::Lost {
            reason: reason.into(),
            retry_after: Duration::ZERO,
        }
    }
}

enum Wake {
    Now,
    Elapsed,
    Shutdown(Option<oneshot::Sender<()>>),
}

fn finish(reply: Option<oneshot::Sender<()>>) {
    if let Some(r) = reply {
        let _ = r.send(());
    }
}

/// A TLS refusal, sorted: the server's identity (stop and ask the user) or anything else
/// (retry with backoff).
enum Refusal {
    Untrusted(TrustProblem, String),
    Other(String),
}

impl From<ConnectError> for Refusal {
    fn from(e: ConnectError) -> Refusal {
        let message = e.to_string();
        let refused = |server: &str| {
            Refusal::Untrusted(
                TrustProblem::Refused {
                    server: server.to_owned(),
                    message: message.clone(),
                },
                message.clone(),
            )
        };
        match &e {
            ConnectError::UnknownServer {
                server,
                fingerprint,
            } => Refusal::Untrusted(
                TrustProblem::Unknown {
                    server: server.clone(),
                    fingerprint: *fingerprint,
                },
                message,
            ),
            ConnectError::FingerprintChanged { server, .. }
            | ConnectError::FingerprintMismatch { server, .. }
            | ConnectError::Certificate { server, .. } => refused(server),
            // An unreadable known_servers or CA file will not heal by retrying either.
            ConnectError::KnownServers(_) | ConnectError::CaFile { .. } => refused(""),
            ConnectError::Connect { .. } | ConnectError::Handshake { .. } => {
                Refusal::Other(message)
            }
        }
    }
}

/// Opens the stream ([`tls::open`]), sorting a failure into stop or retry.
async fn open_stream(
    server: &ServerAddr,
    bind: Option<IpAddr>,
    connector: Option<&Connector>,
) -> Result<Stream, Refusal> {
    Ok(tls::open(server, bind, connector).await?)
}

/// Sends a request during the handshake and waits for its reply.
async fn handshake(link: &mut Link, body: Body) -> Result<Body, End> {
    let id = link.next_req;
    link.next_req += 1;
    link.framed
        .send(Envelope::new(id, body))
        .await
        .map_err(|e| End::lost(format!("write failed: {e}")))?;
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    loop {
        let env = tokio::time::timeout_at(deadline, link.framed.next())
            .await
            .map_err(|_| End::lost("the server did not answer"))?
            .ok_or_else(|| End::lost("the server closed the connection"))?
            .map_err(|e| End::lost(format!("bad frame: {e}")))?;
        link.frames += 1;
        if env.req_id == id
            || (env.req_id == 0 && matches!(env.body, Some(Body::Error(ref e)) if e.fatal))
        {
            return env.body.ok_or_else(|| End::lost("empty reply"));
        }
    }
}

/// What a server error means for the connection.
pub(super) fn error_end(e: &pb::Error) -> End {
    let reason = e.to_string();
    match ErrorCode::try_from(e.code) {
        Ok(
            code @ (ErrorCode::Displaced
            | ErrorCode::AuthFailed
            | ErrorCode::AccountDisabled
            // Only a Register or Login is refused at connection level: registration closed,
            // or no valid invitation. Trying again would not change that.
            | ErrorCode::Forbidden
            | ErrorCode::UnsupportedVersion
            | ErrorCode::NameTaken
            | ErrorCode::BadRequest),
        ) => End::Fatal { code, reason },
        _ => End::Lost {
            reason,
            retry_after: Duration::from_millis(u64::from(e.retry_after_ms)),
        },
    }
}

impl Engine {
    pub(crate) async fn run(mut self) {
        let mut attempt: u32 = 0;
        let mut stopped: Option<(ErrorCode, String)> = None;
        loop {
            if let Some((code, reason)) = stopped.take() {
                self.emit(Event::State(ConnState::Stopped { code, reason }))
                    .await;
                match self.wait_offline(None).await {
                    Wake::Shutdown(r) => return finish(r),
                    Wake::Now | Wake::Elapsed => attempt = 0,
                }
            }
            self.emit(Event::State(ConnState::Connecting { attempt }))
                .await;
            let end = match self.connect().await {
                Ok(link) => {
                    let started = Instant::now();
                    let end = self.serve(link).await;
                    if started.elapsed() >= self.cfg.backoff.reset_after {
                        attempt = 0;
                    }
                    end
                }
                Err(end) => end,
            };
            let (reason, retry_after) = match end {
                End::Shutdown(r) => return finish(r),
                End::Fatal { code, reason } => {
                    if self.refused_for_stale_token(code) {
                        // Another process of this account rotated the token: reconnect at
                        // once with the file's (the next connect reads it).
                        debug!(%reason, "refused with a token the session file has replaced");
                        continue;
                    }
                    stopped = Some((code, reason));
                    continue;
                }
                End::Lost {
                    reason,
                    retry_after,
                } => (reason, retry_after),
            };
            let delay = self.cfg.backoff.delay(attempt).max(retry_after);
            attempt = attempt.saturating_add(1);
            debug!(%reason, ?delay, "disconnected");
            self.emit(Event::State(ConnState::Offline {
                retry_in: delay,
                reason,
            }))
            .await;
            if let Wake::Shutdown(r) = self.wait_offline(Some(delay)).await {
                return finish(r);
            }
        }
    }

    /// Answers commands while offline until the delay passes (or forever with `None`).
    async fn wait_offline(&mut self, delay: Option<Duration>) -> Wake {
        let until = delay.map(|d| Instant::now() + d);
        loop {
            let cmd = match until {
                Some(u) => match tokio::time::timeout_at(u, self.cmds.recv()).await {
                    Ok(c) => c,
                    Err(_) => return Wake::Elapsed,
                },
                None => self.cmds.recv().await,
            };
            let Some(cmd) = cmd else {
                return Wake::Shutdown(None);
            };
            match cmd {
                Command::ReconnectNow => return Wake::Now,
                Command::Shutdown { reply } => return Wake::Shutdown(Some(reply)),
                Command::Request { reply, .. } => {
                    let _ = reply.send(Err(ClientError::Disconnected));
                }
                other => self.local_command(other),
            }
        }
    }

    /// Opens the stream within [`CONNECT_TIMEOUT`]. An untrusted server stops the engine
    /// (reported as [`Event::Untrusted`] first); other failures retry. Reports whether the
    /// connection is encrypted.
    async fn open(&mut self) -> Result<Stream, End> {
        let server: ServerAddr = self.cfg.addr.parse().map_err(|e: AddrError| End::Fatal {
            code: ErrorCode::Unspecified,
            reason: e.to_string(),
        })?;
        if self.connector.is_none() {
            self.connector = self.cfg.connector.clone();
        }
        if server.tls && self.connector.is_none() {
            let c = Connector::new(self.cfg.trust.clone()).map_err(|e| End::Fatal {
                code: ErrorCode::Unspecified,
                reason: e.to_string(),
            })?;
            self.connector = Some(Arc::new(c));
        }
        let connector = self.connector.clone();
        let opened = tokio::time::timeout(
            CONNECT_TIMEOUT,
            open_stream(&server, self.cfg.bind, connector.as_deref()),
        )
        .await
        .unwrap_or_else(|_| Err(Refusal::Other(format!("connecting to {server} timed out"))));
        match opened {
            Ok(stream) => {
                self.emit(Event::Transport {
                    encrypted: stream.is_encrypted(),
                    fingerprint: stream.peer_fingerprint(),
                })
                .await;
                Ok(stream)
            }
            Err(Refusal::Other(reason)) => Err(End::lost(reason)),
            Err(Refusal::Untrusted(problem, reason)) => {
                self.emit(Event::Untrusted(problem)).await;
                Err(End::Fatal {
                    code: ErrorCode::Unspecified,
                    reason,
                })
            }
        }
    }

    /// Connects, says Hello, and logs in unless the Hello resumed a session.
    async fn connect(&mut self) -> Result<Link, End> {
        let stream = self.open().await?;
        let now = Instant::now();
        let mut link = Link {
            framed: Framed::new(stream, EnvelopeCodec::new()),
            next_req: 1,
            pending: HashMap::new(),
            last_tx: now,
            last_rx: now,
            heartbeat: Duration::from_secs(10),
            idle: Duration::from_secs(30),
            frames: 0,
            events_syncing: false,
            listing: false,
            synced_sent: false,
            silent: false,
            minor: 0,
        };
        let sent = self.resume_token().unwrap_or_default();
        let hello = Body::Hello(pb::Hello {
            protocol_major: PROTOCOL_MAJOR,
            protocol_minor: PROTOCOL_MINOR,
            client_name: self.cfg.client_name.clone(),
            client_version: env!("CARGO_PKG_VERSION").into(),
            resume_token: sent.clone(),
            quiet: self.cfg.quiet,
        });
        let ok = match handshake(&mut link, hello).await? {
            Body::HelloOk(ok) => ok,
            Body::Error(e) => return Err(error_end(&e)),
            other => {
                return Err(End::lost(
                    ClientError::unexpected("HelloOk", &other).to_string(),
                ));
            }
        };
        link.minor = ok.protocol_minor;
        if let Some(limits) = ok.limits {
            self.emit(Event::Limits(limits)).await;
        }
        link.heartbeat = Duration::from_millis(u64::from(ok.heartbeat_interval_ms.max(1000)));
        link.idle = Duration::from_millis(u64::from(ok.idle_timeout_ms.max(2000)));
        let (auth, by_password) = match ok.auth {
            Some(auth) => (auth, false),
            None => match self.resume_again(&mut link, &sent).await? {
                Some(auth) => (auth, false),
                None => (self.sign_in(&mut link).await?, true),
            },
        };
        // Later connections resume; a password stays in memory only to log in again.
        if let Auth::Register { name, password, .. } = &self.auth {
            self.auth = Auth::Login {
                name: name.clone(),
                password: password.clone(),
            };
        }
        self.token = Some(auth.resume_token.clone());
        self.device_id = auth.device_id;
        self.user = auth.user.clone();
        self.store_session(&auth, by_password);
        if let Some(user) = auth.user.clone() {
            self.emit(Event::Session {
                user,
                device_id: auth.device_id,
                token: auth.resume_token.clone(),
            })
            .await;
        }
        Ok(link)
    }

    /// After the Hello's token was refused: once, at once, the session file's current token
    /// if another process replaced the one we sent. `None` when there is none or it was
    /// refused too.
    async fn resume_again(
        &mut self,
        link: &mut Link,
        sent: &str,
    ) -> Result<Option<pb::AuthOk>, End> {
        let Some(token) = self.newer_file_token(sent) else {
            return Ok(None);
        };
        debug!("resume refused; retrying with the session file's newer token");
        let token_sent = token.clone();
        match handshake(
            link,
            Body::Resume(pb::Resume {
                resume_token: token,
            }),
        )
        .await?
        {
            Body::AuthOk(a) => Ok(Some(a)),
            Body::Error(e) if ErrorCode::try_from(e.code) == Ok(ErrorCode::AuthFailed) => {
                // Tried: a reconnect need not try it again.
                self.token = Some(token_sent);
                Ok(None)
            }
            Body::Error(e) => Err(error_end(&e)),
            other => Err(End::lost(
                ClientError::unexpected("AuthOk", &other).to_string(),
            )),
        }
    }

    /// Logs in (or registers) with the password, if there is one; with only a token the
    /// session has ended.
    async fn sign_in(&mut self, link: &mut Link) -> Result<pb::AuthOk, End> {
        let body = match &self.auth {
            Auth::Login { name, password } => Body::Login(pb::Login {
                name: name.clone(),
                password: password.clone(),
                device_name: self.cfg.client_name.clone(),
            }),
            Auth::Register {
                name,
                password,
                invite,
            } => Body::Register(pb::Register {
                name: name.clone(),
                password: password.clone(),
                device_name: self.cfg.client_name.clone(),
                invite_code: invite.clone(),
            }),
            Auth::Token(_) => {
                // The stored session was not resumed and there is no password.
                return Err(End::Fatal {
                    code: ErrorCode::Unauthenticated,
                    reason: "the session expired: log in again".into(),
                });
            }
        };
        match handshake(link, body).await? {
            Body::AuthOk(a) => Ok(a),
            Body::Error(e) => Err(error_end(&e)),
            other => Err(End::lost(
                ClientError::unexpected("AuthOk", &other).to_string(),
            )),
        }
    }

    /// Runs an authenticated connection until it ends.
    async fn serve(&mut self, mut link: Link) -> End {
        self.sync.new_link();
        self.outbox.new_link();
        self.emit(Event::State(ConnState::Online { synced: false }))
            .await;
        if let Err(e) = self.start(&mut link).await {
            return e;
        }
        let mut tick = tokio::time::interval(TICK);
        let mut last_report = Instant::now();
        let end = loop {
            // Frames written while handling the last wake-up go out together: one write (and,
            // over TLS, one record) instead of one per frame.
            if let Err(e) = SinkExt::<Envelope>::flush(&mut link.framed).await {
                break End::lost(format!("write failed: {e}"));
            }
            tokio::select! {
                cmd = self.cmds.recv() => {
                    let Some(cmd) = cmd else { break End::Shutdown(None) };
                    if let Err(e) = self.online_command(&mut link, cmd).await { break e; }
                }
                frame = link.framed.next() => {
                    match frame {
                        Some(Ok(env)) => {
                            link.frames += 1;
                            link.last_rx = Instant::now();
                            if std::mem::take(&mut link.silent) {
                                self.emit(Event::Answering).await;
                            }
                            if let Err(e) = self.on_frame(&mut link, env).await { break e; }
                        }
                        Some(Err(e)) => break End::lost(format!("bad frame from server: {e}")),
                        None => break End::lost("the server closed the connection"),
                    }
                }
                _ = tick.tick() => {
                    if let Err(e) = self.on_tick(&mut link, &mut last_report).await { break e; }
                }
            }
        };
        // What the last command wrote (a logout, say) still goes out.
        let _ = SinkExt::<Envelope>::flush(&mut link.framed).await;
        for (_, (p, _)) in link.pending.drain() {
            if let Pending::External(reply) = p {
                let _ = reply.send(Err(ClientError::Disconnected));
            }
        }
        self.emit(Event::Frames {
            received: link.frames,
        })
        .await;
        end
    }

    /// Queues a frame; the serve loop flushes before it waits again.
    pub(super) async fn write(&mut self, link: &mut Link, env: Envelope) -> Result<(), End> {
        link.last_tx = Instant::now();
        link.framed
            .feed(env)
            .await
            .map_err(|e| End::lost(format!("write failed: {e}")))
    }

    pub(super) async fn request(
        &mut self,
        link: &mut Link,
        body: Body,
        p: Pending,
    ) -> Result<(), End> {
        let id = link.next_req;
        link.next_req += 1;
        link.pending
            .insert(id, (p, Instant::now() + self.cfg.request_timeout));
        self.write(link, Envelope::new(id, body)).await
    }
}
