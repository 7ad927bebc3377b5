//! Pending sends: the outbox (persisted in the cache), one send in flight per thread (so a
//! thread's sends keep their order), retry times after retryable refusals, and the callers
//! waiting for an ack.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use confab_wire::pb::{self, ErrorCode};
use rand::Rng;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::warn;

use crate::client::cache::{Cache, OutboxItem};
use crate::client::{ClientError, Draft};

/// A caller of `Client::send_acked`, told of the ack or the refusal.
pub(super) type AckWaiter = oneshot::Sender<Result<pb::SendAck, ClientError>>;

pub(super) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub(crate) fn new_client_msg_id() -> String {
    // 24 hex digits written by hand (this runs for every message a load client sends): the
    // time in ms first, so one device's ids sort by time and the server's dedupe index grows
    // at its end instead of in a random page per message; then 13 random digits.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let ms = u64::try_from(now_ms()).unwrap_or(0) & ((1 << 44) - 1);
    let r: u64 = rand::rng().random();
    let mut s = String::with_capacity(24);
    for i in (0..11).rev() {
        s.push(char::from(HEX[((ms >> (i * 4)) & 0xf) as usize]));
    }
    for i in (0..13).rev() {
        s.push(char::from(HEX[((r >> (i * 4)) & 0xf) as usize]));
    }
    s
}

/// When a message was written, read back from a client_msg_id made by [`new_client_msg_id`]
/// (its first 11 hex digits are the time in ms); None for any other shape.
pub fn written_ms(client_msg_id: &str) -> Option<i64> {
    if client_msg_id.len() != 24 || !client_msg_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    i64::from_str_radix(client_msg_id.get(..11)?, 16).ok()
}

pub(crate) fn retryable(e: &pb::Error) -> bool {
    matches!(
        ErrorCode::try_from(e.code),
        Ok(ErrorCode::Unavailable
            | ErrorCode::RateLimited
            | ErrorCode::Timeout
            | ErrorCode::ShuttingDown
            | ErrorCode::Internal)
    )
}

pub(super) struct Outbox {
    items: BTreeMap<u64, OutboxItem>,
    retry_at: HashMap<u64, Instant>,
    waiters: HashMap<u64, AckWaiter>,
    /// Outbox ids, shared with the `Client` handles (`Client::post` allocates there).
    next_local: Arc<AtomicU64>,
    /// Thread -> local id of the send in flight there on this connection.
    inflight: HashMap<u64, u64>,
}

impl Outbox {
    /// Starts from the entries the cache kept.
    pub(super) fn new(items: Vec<OutboxItem>) -> Self {
        let max_local = items.iter().map(|o| o.local_id).max().unwrap_or(0);
        Self {
            next_local: Arc::new(AtomicU64::new(
                max_local.max(u64::try_from(now_ms()).unwrap_or(0) * 1000) + 1,
            )),
            items: items.into_iter().map(|o| (o.local_id, o)).collect(),
            retry_at: HashMap::new(),
            waiters: HashMap::new(),
            inflight: HashMap::new(),
        }
    }

    pub(super) fn local_ids(&self) -> Arc<AtomicU64> {
        self.next_local.clone()
    }

    pub(super) fn list(&self) -> Vec<OutboxItem> {
        self.items.values().cloned().collect()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// A new connection: nothing is in flight on it.
    pub(super) fn new_link(&mut self) {
        self.inflight.clear();
    }

    pub(super) fn in_flight(&self, thread_id: u64) -> bool {
        self.inflight.contains_key(&thread_id)
    }

    pub(super) fn has_retries(&self) -> bool {
        !self.retry_at.is_empty()
    }

    /// Queues a message under a fresh local id.
    pub(super) fn queue(
        &mut self,
        cache: &Cache,
        thread_id: u64,
        draft: Draft,
        acked: Option<AckWaiter>,
    ) -> Result<u64, ClientError> {
        let local_id = self.next_local.fetch_add(1, Ordering::Relaxed);
        self.queue_as(cache, local_id, thread_id, draft, acked)
    }

    /// Queues a message under a local id the caller allocated.
    pub(super) fn queue_as(
        &mut self,
        cache: &Cache,
        local_id: u64,
        thread_id: u64,
        draft: Draft,
        acked: Option<AckWaiter>,
    ) -> Result<u64, ClientError> {
        let item = OutboxItem {
            local_id,
            thread_id,
            client_msg_id: new_client_msg_id(),
            body: draft.body,
            created_ms: now_ms(),
            reply_to: draft.reply_to,
        };
        cache
            .outbox_add(&item)
            .map_err(|e| ClientError::Cache(e.to_string()))?;
        self.items.insert(local_id, item);
        if let Some(w) = acked {
            self.waiters.insert(local_id, w);
        }
        Ok(local_id)
    }

    /// The sends to make now: the oldest unsent message of every thread that has none in
    /// flight, each marked in flight.
    pub(super) fn due(&mut self, now: Instant) -> Vec<(u64, pb::Send)> {
        let mut seen = HashSet::new();
        let mut to_send = Vec::new();
        for item in self.items.values() {
            if !seen.insert(item.thread_id) || self.inflight.contains_key(&item.thread_id) {
                continue;
            }
            if self.retry_at.get(&item.local_id).is_some_and(|t| *t > now) {
                continue;
            }
            to_send.push((item.local_id, send_of(item)));
        }
        for (local_id, send) in &to_send {
            self.retry_at.remove(local_id);
            self.inflight.insert(send.thread_id, *local_id);
        }
        to_send
    }

    /// The oldest unsent message of one thread if it has none in flight: the common case after
    /// a send or an ack, without walking the whole outbox.
    pub(super) fn due_in(&mut self, thread_id: u64, now: Instant) -> Option<(u64, pb::Send)> {
        if self.inflight.contains_key(&thread_id) {
            return None;
        }
        let item = self.items.values().find(|i| i.thread_id == thread_id)?;
        if self.retry_at.get(&item.local_id).is_some_and(|t| *t > now) {
            return None;
        }
        let local_id = item.local_id;
        let send = send_of(item);
        self.retry_at.remove(&local_id);
        self.inflight.insert(thread_id, local_id);
        Some((local_id, send))
    }

    /// A send was answered: its thread may send again. Returns that thread.
    pub(super) fn answered(&mut self, local_id: u64) -> Option<u64> {
        // A sync may have found this send stored and taken it off the outbox before its reply
        // came: its thread is then known only by its in-flight entry, which must go too, or
        // the thread would never send again.
        let thread = self.items.get(&local_id).map(|i| i.thread_id).or_else(|| {
            self.inflight
                .iter()
                .find(|(_, l)| **l == local_id)
                .map(|(t, _)| *t)
        });
        if let Some(t) = thread {
            self.inflight.remove(&t);
        }
        thread
    }

    /// A retryable refusal: sent again after the server's hint, at least 20 ms so a burst does
    /// not spin.
    pub(super) fn retry_later(&mut self, local_id: u64, e: &pb::Error, now: Instant) {
        let wait = Duration::from_millis(u64::from(e.retry_after_ms.max(20)));
        self.retry_at.insert(local_id, now + wait);
    }

    /// A refusal for good: the entry leaves the outbox for the failed messages, which the
    /// user deletes or sends again.
    pub(super) fn refused(&mut self, cache: &Cache, local_id: u64, e: &pb::Error) {
        self.items.remove(&local_id);
        if let Err(err) = cache.outbox_fail(local_id, e.code, &e.message) {
            warn!(error = %err, "cache");
        }
        if let Some(w) = self.waiters.remove(&local_id) {
            let _ = w.send(Err(ClientError::Server(e.clone())));
        }
    }

    /// The server stored the entry: it leaves the outbox and its waiter is told. `None` when it
    /// had already left.
    pub(super) fn acked(
        &mut self,
        cache: &Cache,
        local_id: u64,
        ack: &pb::SendAck,
    ) -> Option<OutboxItem> {
        let item = self.items.remove(&local_id)?;
        if let Err(e) = cache.outbox_remove(local_id) {
            warn!(error = %e, "cache");
        }
        if let Some(w) = self.waiters.remove(&local_id) {
            let _ = w.send(Ok(ack.clone()));
        }
        Some(item)
    }

    /// The entry sent with this client_msg_id, if it still waits.
    pub(super) fn by_client_msg_id(&self, client_msg_id: &str) -> Option<u64> {
        self.items
            .values()
            .find(|o| o.client_msg_id == client_msg_id)
            .map(|o| o.local_id)
    }
}

fn send_of(item: &OutboxItem) -> pb::Send {
    pb::Send {
        thread_id: item.thread_id,
        client_msg_id: item.client_msg_id.clone(),
        body: item.body.clone(),
        reply_to: item.reply_to,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_written_time_reads_back_from_the_id() {
        let before = super::now_ms();
        let id = super::new_client_msg_id();
        let w = super::written_ms(&id).expect("our own shape");
        assert!(w >= before && w <= super::now_ms(), "{w} {before}");
        assert_eq!(super::written_ms("cli-7"), None);
        assert_eq!(super::written_ms("zzzzzzzzzzzzzzzzzzzzzzzz"), None);
    }
}
