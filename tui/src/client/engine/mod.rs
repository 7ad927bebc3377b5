//! The engine task: the one task that owns the connection, the cache and all client state.
//!
//! - [`link`]: connect, Hello, log in or resume, serve, reconnect with backoff;
//! - [`outbox`]: pending sends, one in flight per thread, retries, acks;
//! - [`sync`]: the per-thread cursor and the gap rule, without I/O (it returns what to apply
//!   and what to fetch; this file carries that out on the link and the cache);
//! - here: commands, frames, replies, the user-event stream, the tick.

mod link;
mod marks;
mod outbox;
mod session;
mod sync;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use confab_wire::pb::{self, ErrorCode};
use confab_wire::{Body, Envelope};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, warn};

use self::link::{End, Link, Pending, SILENT_GRACE, error_end};
pub use self::outbox::written_ms;
use self::outbox::{AckWaiter, Outbox};
pub(crate) use self::outbox::{new_client_msg_id, retryable};
use self::sync::{Action, ThreadSync};
use super::cache::Cache;
use super::{Auth, ClientConfig, ClientError, Command, ConnState, Draft, Event};

pub(crate) struct Engine {
    cfg: ClientConfig,
    auth: Auth,
    cmds: mpsc::Receiver<Command>,
    ev: mpsc::Sender<Event>,
    cache: Cache,
    token: Option<String>,
    device_id: u64,
    user: Option<pb::User>,
    sync: ThreadSync,
    event_seq: u64,
    outbox: Outbox,
    /// Made at the first `tls://` connect (roots read once, TLS sessions kept for
    /// resumption), unless the config shares one.
    connector: Option<std::sync::Arc<super::tls::Connector>>,
    /// Read markers not confirmed by the server yet.
    marks: marks::Marks,
}

impl Engine {
    pub(crate) fn new(
        cfg: ClientConfig,
        auth: Auth,
        cmds: mpsc::Receiver<Command>,
        ev: mpsc::Sender<Event>,
    ) -> Result<Self, ClientError> {
        let cache = match &cfg.cache {
            super::CacheMode::File(p) => Cache::open(p),
            super::CacheMode::Memory => Cache::memory(),
            super::CacheMode::Off => Ok(Cache::off()),
        }
        .map_err(|e| ClientError::Cache(e.to_string()))?;
        let snap = cache
            .load()
            .map_err(|e| ClientError::Cache(e.to_string()))?;
        let token = match &auth {
            Auth::Token(t) => Some(t.clone()),
            _ => None,
        };
        Ok(Self {
            sync: ThreadSync::new(cfg.backlog, snap.threads),
            outbox: Outbox::new(snap.outbox),
            connector: None,
            marks: marks::Marks::default(),
            cfg,
            auth,
            cmds,
            ev,
            cache,
            token,
            device_id: 0,
            user: None,
            event_seq: snap.event_seq,
        })
    }

    pub(crate) fn local_ids(&self) -> Arc<AtomicU64> {
        self.outbox.local_ids()
    }

    /// Sends an event; waits while the stream is full (backpressure). Does not borrow `self`
    /// across the wait (the cache connection is not `Sync`).
    fn emit(&self, e: Event) -> impl std::future::Future<Output = ()> + Send + 'static {
        let tx = self.ev.clone();
        async move {
            let _ = tx.send(e).await;
        }
    }

    /// Commands that need no connection.
    fn local_command(&mut self, cmd: Command) {
        match cmd {
            Command::Send {
                thread_id,
                draft,
                reply,
                acked,
            } => {
                let _ = reply.send(self.queue(thread_id, draft, acked));
            }
            Command::Post {
                local_id,
                thread_id,
                draft,
            } => {
                if let Err(e) = self
                    .outbox
                    .queue_as(&self.cache, local_id, thread_id, draft, None)
                {
                    self.post_refused(local_id, &e);
                }
            }
            Command::History {
                thread_id,
                before_seq,
                limit,
                reply,
            } => {
                let _ = reply.send(
                    self.cache
                        .messages(thread_id, before_seq, limit)
                        .map_err(|e| ClientError::Cache(e.to_string())),
                );
            }
            Command::Threads { reply } => {
                let _ = reply.send(self.sync.listing());
            }
            Command::Outbox { reply } => {
                let _ = reply.send(self.outbox.list());
            }
            Command::Failed { reply } => {
                let _ = reply.send(
                    self.cache
                        .failed()
                        .map_err(|e| ClientError::Cache(e.to_string())),
                );
            }
            Command::Discard { local_id } => {
                if let Err(e) = self.cache.failed_remove(local_id) {
                    warn!(error = %e, "cache");
                }
            }
            Command::Request { reply, .. } => {
                let _ = reply.send(Err(ClientError::Disconnected));
            }
            Command::MarkRead { thread_id, seq } => self.mark_read_later(thread_id, seq),
            Command::ReconnectNow
            | Command::Disconnect
            | Command::Shutdown { .. }
            | Command::Notify { .. } => {}
        }
    }

    fn queue(
        &mut self,
        thread_id: u64,
        draft: Draft,
        acked: Option<AckWaiter>,
    ) -> Result<u64, ClientError> {
        self.outbox.queue(&self.cache, thread_id, draft, acked)
    }

    /// A posted message the cache would not take: reported like a refusal.
    fn post_refused(&self, local_id: u64, e: &ClientError) {
        let error = pb::Error {
            code: ErrorCode::Internal as i32,
            message: e.to_string(),
            ..Default::default()
        };
        // Not awaited here (a sync context); the event channel is drained by the caller.
        let _ = self.ev.try_send(Event::SendFailed { local_id, error });
    }

    /// A connection came up: the full sync (events, threads) and the outbox.
    async fn start(&mut self, link: &mut Link) -> Result<(), End> {
        if self.cfg.sync_on_connect {
            self.start_event_sync(link).await?;
            link.listing = true;
            self.request(
                link,
                Body::ListThreads(pb::ListThreads::default()),
                Pending::List,
            )
            .await?;
        } else {
            link.synced_sent = true;
        }
        self.pump_outbox(link).await?;
        self.resend_marks(link).await
    }

    async fn online_command(&mut self, link: &mut Link, cmd: Command) -> Result<(), End> {
        match cmd {
            Command::Request { body, reply } => {
                self.request(link, *body, Pending::External(reply)).await
            }
            Command::Send {
                thread_id,
                draft,
                reply,
                acked,
            } => {
                let r = self.queue(thread_id, draft, acked);
                let ok = r.is_ok();
                let _ = reply.send(r);
                if ok {
                    self.pump_thread(link, thread_id).await
                } else {
                    Ok(())
                }
            }
            // A 1.2 server would forward a stop as a start: not sent there (PROTOCOL.md §9).
            Command::Notify { body }
                if matches!(&*body, Body::Typing(t) if t.stopped) && link.minor < 3 =>
            {
                Ok(())
            }
            Command::Notify { body } => self.write(link, Envelope::new(0, *body)).await,
            Command::MarkRead { thread_id, seq } => self.mark_read(link, thread_id, seq).await,
            Command::Post {
                local_id,
                thread_id,
                draft,
            } => match self
                .outbox
                .queue_as(&self.cache, local_id, thread_id, draft, None)
            {
                Ok(_) => self.pump_thread(link, thread_id).await,
                Err(e) => {
                    self.post_refused(local_id, &e);
                    Ok(())
                }
            },
            Command::ReconnectNow => Ok(()),
            Command::Disconnect => Err(End::lost("disconnected on request")),
            Command::Shutdown { reply } => Err(End::Shutdown(Some(reply))),
            other => {
                self.local_command(other);
                Ok(())
            }
        }
    }

    async fn on_tick(&mut self, link: &mut Link, last_report: &mut Instant) -> Result<(), End> {
        let now = Instant::now();
        let silent = now.duration_since(link.last_rx);
        if silent > link.idle {
            return Err(End::lost(format!(
                "the server stopped answering (nothing for {} s)",
                silent.as_secs()
            )));
        }
        if !link.silent && !link.pending.is_empty() && silent >= link.heartbeat + SILENT_GRACE {
            // Asked and not answered: tell the user now, not only when the connection is
            // given up (at the idle timeout, or when the oldest request times out).
            link.silent = true;
            let give_up = link
                .pending
                .values()
                .filter(|(p, _)| !matches!(p, Pending::External(_)))
                .map(|(_, d)| d.saturating_duration_since(now))
                .min()
                .unwrap_or(link.idle)
                .min(link.idle.saturating_sub(silent));
            self.emit(Event::Silent {
                silent,
                drop_in: give_up,
            })
            .await;
        }
        let expired: Vec<u64> = link
            .pending
            .iter()
            .filter(|(_, (_, d))| *d <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some((p, _)) = link.pending.remove(&id) {
                match p {
                    Pending::External(reply) => {
                        let _ = reply.send(Err(ClientError::Timeout));
                    }
                    // Internal work that got no answer: the connection is not healthy.
                    _ => {
                        return Err(End::lost(format!(
                            "the server stopped answering (no reply in {} s)",
                            self.cfg.request_timeout.as_secs()
                        )));
                    }
                }
            }
        }
        let overdue = self.sync.overdue(now);
        self.act(link, overdue).await?;
        if now.duration_since(link.last_tx) >= link.heartbeat {
            self.request(link, Body::Ping(pb::Ping { nonce: 0 }), Pending::Ping)
                .await?;
        }
        if now.duration_since(*last_report) >= self.cfg.delivered_every {
            *last_report = now;
            for (thread_id, seq) in self.sync.unreported() {
                self.write(
                    link,
                    Envelope::new(0, Body::DeliveredUpTo(pb::DeliveredUpTo { thread_id, seq })),
                )
                .await?;
                self.sync.reported(thread_id, seq);
            }
        }
        if self.outbox.has_retries() {
            self.pump_outbox(link).await?;
        }
        Ok(())
    }

    /// Sends the oldest unsent message of every thread that has none in flight.
    async fn pump_outbox(&mut self, link: &mut Link) -> Result<(), End> {
        for (local_id, send) in self.outbox.due(Instant::now()) {
            self.request(link, Body::Send(send), Pending::Send(local_id))
                .await?;
        }
        Ok(())
    }

    /// Sends the oldest unsent message of one thread if it has none in flight.
    async fn pump_thread(&mut self, link: &mut Link, thread_id: u64) -> Result<(), End> {
        match self.outbox.due_in(thread_id, Instant::now()) {
            Some((local_id, send)) => {
                self.request(link, Body::Send(send), Pending::Send(local_id))
                    .await
            }
            None => Ok(()),
        }
    }

    async fn start_event_sync(&mut self, link: &mut Link) -> Result<(), End> {
        if link.events_syncing {
            return Ok(());
        }
        link.events_syncing = true;
        let body = Body::SyncEvents(pb::SyncEvents {
            since_event_seq: self.event_seq,
            limit: 0,
        });
        self.request(link, body, Pending::Events).await
    }

    /// Carries out what the sync state asked for, in order.
    async fn act(&mut self, link: &mut Link, actions: Vec<Action>) -> Result<(), End> {
        for a in actions {
            match a {
                Action::Apply {
                    thread_id,
                    messages,
                } => self.deliver(thread_id, messages).await,
                Action::Fetch {
                    thread_id,
                    since_seq,
                } => {
                    let body = Body::SyncThread(pb::SyncThread {
                        thread_id,
                        since_seq,
                        limit: 0,
                    });
                    self.request(link, body, Pending::Sync(thread_id)).await?;
                }
            }
        }
        Ok(())
    }

    async fn maybe_synced(&mut self, link: &mut Link) {
        if link.synced_sent || link.events_syncing || link.listing || self.sync.syncing() {
            return;
        }
        link.synced_sent = true;
        self.sync.first_sync_done();
        self.emit(Event::State(ConnState::Online { synced: true }))
            .await;
        self.emit(Event::Synced).await;
    }

    async fn on_frame(&mut self, link: &mut Link, env: Envelope) -> Result<(), End> {
        let Some(body) = env.body else { return Ok(()) };
        if env.req_id != 0 {
            let Some((p, _)) = link.pending.remove(&env.req_id) else {
                debug!(req_id = env.req_id, "reply to an unknown request");
                return Ok(());
            };
            return self.on_reply(link, p, body).await;
        }
        match body {
            Body::MessagePush(p) => {
                if let Some(m) = p.message {
                    let in_flight = self.outbox.in_flight(m.thread_id);
                    let actions = self.sync.push(m, in_flight, Instant::now());
                    self.act(link, actions).await?;
                }
            }
            Body::EventPush(p) => {
                if let Some(e) = p.event {
                    if e.event_seq == self.event_seq + 1 {
                        self.apply_events(link, vec![e]).await?;
                    } else if e.event_seq > self.event_seq {
                        self.start_event_sync(link).await?;
                    }
                }
            }
            Body::PresencePush(p) => self.emit(Event::Presence(p)).await,
            Body::TypingPush(t) => self.emit(Event::Typing(t)).await,
            Body::ReadReceiptPush(r) => {
                self.sync.receipt(&r);
                // Kept in the cache too: the next start's "new" divider sits where reading
                // stopped, not where it stood when the thread was last listed.
                if let Some(info) = self.sync.info(r.thread_id)
                    && let Err(e) = self.cache.save_thread(&info, self.sync.cursor(r.thread_id))
                {
                    warn!(error = %e, "cache");
                }
                self.emit(Event::ReadReceipt(r)).await;
            }
            Body::ResyncPush(r) => {
                self.start_event_sync(link).await?;
                let actions = self.sync.resync(r.thread_ids);
                self.act(link, actions).await?;
            }
            Body::Error(e) if e.fatal => return Err(error_end(&e)),
            Body::Error(e) => debug!(error = %e, "error notice from the server"),
            other => debug!(body = confab_wire::body_name(&other), "unexpected push"),
        }
        Ok(())
    }

    async fn on_reply(&mut self, link: &mut Link, p: Pending, body: Body) -> Result<(), End> {
        match p {
            Pending::External(reply) => {
                if let Body::AuthOk(auth) = &body {
                    // A new token for this device (a password change signs every other
                    // session out): kept before the caller hears of it, as after a login.
                    self.adopt_session(auth).await;
                }
                let _ = reply.send(match body {
                    Body::Error(e) => Err(ClientError::Server(e)),
                    b => Ok(b),
                });
            }
            Pending::Ping => {}
            Pending::ReadMark(thread_id, seq) => self.on_mark_reply(thread_id, seq, &body),
            Pending::Send(local_id) => self.on_send_reply(link, local_id, body).await?,
            Pending::Events => {
                link.events_syncing = false;
                match body {
                    Body::EventPage(page) => {
                        let more = page.has_more;
                        self.apply_events(link, page.events).await?;
                        if more {
                            self.start_event_sync(link).await?;
                        }
                    }
                    Body::Error(e) => warn!(error = %e, "event sync failed"),
                    _ => {}
                }
                self.maybe_synced(link).await;
            }
            Pending::List => {
                match body {
                    Body::ThreadList(list) => {
                        let next = list.threads.last().map(|t| t.activity_id);
                        for t in list.threads {
                            self.on_thread_info(link, t).await?;
                        }
                        if list.has_more
                            && let Some(before) = next
                        {
                            let body = Body::ListThreads(pb::ListThreads {
                                before_activity_id: before,
                                limit: 0,
                            });
                            return self.request(link, body, Pending::List).await;
                        }
                    }
                    Body::Error(e) => warn!(error = %e, "listing threads failed"),
                    _ => {}
                }
                link.listing = false;
                self.maybe_synced(link).await;
            }
            Pending::ThreadInfo => match body {
                Body::Thread(t) => self.on_thread_info(link, t).await?,
                other => debug!(reply = confab_wire::body_name(&other), "thread refresh"),
            },
            Pending::Sync(thread_id) => {
                match body {
                    Body::MessagePage(page) => {
                        let actions = self.sync.page(thread_id, page, Instant::now());
                        self.act(link, actions).await?;
                    }
                    Body::Error(e) => {
                        self.sync.refused(thread_id);
                        debug!(thread_id, error = %e, "thread sync refused");
                    }
                    _ => self.sync.refused(thread_id),
                }
                self.maybe_synced(link).await;
            }
        }
        Ok(())
    }

    async fn on_send_reply(
        &mut self,
        link: &mut Link,
        local_id: u64,
        body: Body,
    ) -> Result<(), End> {
        let thread = self.outbox.answered(local_id);
        match body {
            Body::SendAck(ack) => self.acked(local_id, ack).await,
            Body::Error(e) if retryable(&e) => {
                self.outbox.retry_later(local_id, &e, Instant::now());
                self.emit(Event::SendRetry { local_id, error: e }).await;
            }
            Body::Error(e) => {
                self.outbox.refused(&self.cache, local_id, &e);
                self.emit(Event::SendFailed { local_id, error: e }).await;
            }
            _ => {}
        }
        let Some(thread) = thread else {
            return self.pump_outbox(link).await;
        };
        let actions = self.sync.send_answered(thread);
        self.act(link, actions).await?;
        self.pump_thread(link, thread).await
    }

    /// The server stored an outbox entry: settled, and our own entry fills the cursor.
    async fn acked(&mut self, local_id: u64, ack: pb::SendAck) {
        let thread_id = ack.thread_id;
        let Some(item) = self.settle(local_id, ack.clone()).await else {
            return;
        };
        // Our own entry, as the server stored it.
        let own = pb::ChatMessage {
            thread_id,
            seq: ack.seq,
            message_id: ack.message_id,
            sender: self.user.clone(),
            sender_device_id: self.device_id,
            client_msg_id: item.client_msg_id,
            server_ts_ms: ack.server_ts_ms,
            kind: pb::MessageKind::Text as i32,
            body: item.body,
            reply_to: item.reply_to,
            // A reply quotes what it answers, as the server would: from the cached copy (none
            // when that is not cached; the next fetch of the reply brings it).
            quote: self
                .cache
                .message_by_id(thread_id, item.reply_to)
                .ok()
                .flatten()
                .map(|m| crate::client::relations::quote_of(&m)),
            ..Default::default()
        };
        let fresh = self.sync.acked(own, Instant::now());
        self.deliver(thread_id, fresh).await;
    }

    /// Takes an acked entry off the outbox and reports the ack.
    async fn settle(&mut self, local_id: u64, ack: pb::SendAck) -> Option<super::OutboxItem> {
        let item = self.outbox.acked(&self.cache, local_id, &ack)?;
        self.emit(Event::Acked { local_id, ack }).await;
        Some(item)
    }

    async fn on_thread_info(&mut self, link: &mut Link, info: pb::Thread) -> Result<(), End> {
        let id = info.thread_id;
        let actions = self.sync.thread_info(info.clone());
        if let Err(e) = self.cache.save_thread(&info, self.sync.cursor(id)) {
            warn!(error = %e, "cache");
        }
        self.emit(Event::Thread(info)).await;
        self.act(link, actions).await
    }

    /// Entries the sync state let through (ascending, each once): stored, emitted, and our
    /// own sends among them settled.
    async fn deliver(&mut self, thread_id: u64, fresh: Vec<pb::ChatMessage>) {
        let Some(cursor) = fresh.last().map(|m| m.seq) else {
            return;
        };
        if !self.sync.has_info(thread_id)
            && let Err(e) = self.cache.save_thread(
                &pb::Thread {
                    thread_id,
                    ..Default::default()
                },
                0,
            )
        {
            warn!(error = %e, "cache");
        }
        let me = self.user.as_ref().map_or(0, |u| u.user_id);
        if let Err(e) = self.cache.save_messages(thread_id, &fresh, cursor, me) {
            warn!(error = %e, "cache");
        }
        for m in fresh {
            let own = m.sender_device_id == self.device_id;
            // Our own send whose ack was lost: the synced entry settles it (the entry itself
            // is already past the cursor, so only the outbox changes).
            if own
                && !m.client_msg_id.is_empty()
                && !self.outbox.is_empty()
                && let Some(local_id) = self.outbox.by_client_msg_id(&m.client_msg_id)
            {
                let ack = pb::SendAck {
                    thread_id,
                    message_id: m.message_id,
                    seq: m.seq,
                    server_ts_ms: m.server_ts_ms,
                    duplicate: true,
                    client_msg_id: m.client_msg_id.clone(),
                };
                self.settle(local_id, ack).await;
            }
            if own && !self.cfg.echo_own {
                continue;
            }
            self.emit(Event::Message(m)).await;
        }
    }

    async fn apply_events(
        &mut self,
        link: &mut Link,
        events: Vec<pb::UserEvent>,
    ) -> Result<(), End> {
        for e in events {
            if e.event_seq <= self.event_seq {
                continue;
            }
            if e.event_seq != self.event_seq + 1 {
                return self.start_event_sync(link).await;
            }
            self.event_seq = e.event_seq;
            use pb::user_event::Kind as K;
            let changed = match &e.kind {
                Some(K::ThreadAdded(t)) => {
                    self.on_thread_info(link, t.clone()).await?;
                    None
                }
                // These change what a thread says about us (can_send, the group's name,
                // count, role) without an entry in it: ask for the thread as it is now, so the
                // listing never goes back to an old description.
                Some(K::GroupJoined(g) | K::GroupLeft(g) | K::GroupUpdated(g))
                    if g.thread_id != 0 =>
                {
                    Some(pb::GetThread {
                        thread_id: g.thread_id,
                        ..Default::default()
                    })
                }
                Some(K::FriendRemoved(u)) => Some(pb::GetThread {
                    user_id: u.user_id,
                    ..Default::default()
                }),
                _ => None,
            };
            if let Some(get) = changed {
                self.request(link, Body::GetThread(get), Pending::ThreadInfo)
                    .await?;
            }
            self.emit(Event::UserEvent(e)).await;
        }
        if let Err(err) = self.cache.set_event_seq(self.event_seq) {
            warn!(error = %err, "cache");
        }
        Ok(())
    }
}
