//! The per-thread cursor and the gap rule, without I/O: pushes, acks, listings and sync pages go
//! in; what to apply (entries that continue a thread, in order) and what to fetch (a
//! `SyncThread` from the cursor) come out as [`Action`]s, which the engine carries out on its
//! connection and cache. Time comes in as an argument, so every rule is testable directly.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use confab_wire::pb;
use tokio::time::Instant;

/// How long a push beyond a gap waits for the missing entries before a sync fetches them. In a
/// cluster, entries of one thread committed through different nodes can reach us out of order,
/// a few milliseconds apart; syncing at once would cost a round trip per such pair.
pub(crate) const GAP_GRACE: Duration = Duration::from_millis(200);
/// Pushes held beyond a gap, per thread, before a sync is asked for without waiting.
pub(crate) const HOLD_MAX: usize = 64;

/// What the engine must do after the sync state took an input, in order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    /// Entries that continue the thread, ascending, each once: store and emit them.
    Apply {
        thread_id: u64,
        messages: Vec<pb::ChatMessage>,
    },
    /// Ask the server for the thread's entries after `since_seq`.
    Fetch { thread_id: u64, since_seq: u64 },
}

#[derive(Default)]
struct ThreadSt {
    info: Option<pb::Thread>,
    /// Highest seq held with nothing missing below it.
    cursor: u64,
    /// Highest seq known to exist (from pushes and listings).
    known: u64,
    /// A fetch is in flight.
    syncing: bool,
    /// Last seq reported with DeliveredUpTo.
    reported: u64,
    /// Entries beyond the cursor waiting for their turn: this device's own acked entries (the
    /// server pushes them to the other devices only, so they are built from the ack), and a
    /// push held while our own send's ack, which likely fills the gap below it, is on the way.
    own: BTreeMap<u64, pb::ChatMessage>,
    /// The seq of a push held in `own` for a send's ack.
    held: Option<u64>,
    /// Since when entries in `own` have waited on a gap below them (see [`GAP_GRACE`]).
    gap_since: Option<Instant>,
    /// The cursor was moved to the newest entry without fetching history (`backlog: false`).
    skipped: bool,
}

/// Every thread's cursor and what waits beyond it.
pub(crate) struct ThreadSync {
    threads: HashMap<u64, ThreadSt>,
    /// Fetch history of threads not seen before (false: start at the newest entry).
    backlog: bool,
    /// The first full sync of this engine's life has finished.
    synced_once: bool,
}

impl ThreadSync {
    /// Starts from the cache's threads and cursors.
    pub(crate) fn new(backlog: bool, cached: Vec<(pb::Thread, u64)>) -> Self {
        let threads = cached
            .into_iter()
            .map(|(info, cursor)| {
                let t = ThreadSt {
                    known: info.last_seq.max(cursor),
                    cursor,
                    reported: cursor,
                    info: Some(info),
                    ..Default::default()
                };
                (t.info.as_ref().map_or(0, |i| i.thread_id), t)
            })
            .collect();
        Self {
            threads,
            backlog,
            synced_once: false,
        }
    }

    /// A new connection: fetches of the last one will get no reply.
    pub(crate) fn new_link(&mut self) {
        for t in self.threads.values_mut() {
            t.syncing = false;
        }
    }

    /// The full sync after a connect finished.
    pub(crate) fn first_sync_done(&mut self) {
        self.synced_once = true;
    }

    /// A fetch is in flight somewhere.
    pub(crate) fn syncing(&self) -> bool {
        self.threads.values().any(|t| t.syncing)
    }

    pub(crate) fn cursor(&self, thread_id: u64) -> u64 {
        self.threads.get(&thread_id).map_or(0, |t| t.cursor)
    }

    /// The thread's summary is known (listed or added), not only its entries.
    pub(crate) fn has_info(&self, thread_id: u64) -> bool {
        self.threads
            .get(&thread_id)
            .is_some_and(|t| t.info.is_some())
    }

    /// Known threads with their cursors.
    pub(crate) fn listing(&self) -> Vec<(pb::Thread, u64)> {
        self.threads
            .values()
            .filter_map(|t| t.info.clone().map(|i| (i, t.cursor)))
            .collect()
    }

    pub(crate) fn thread_ids(&self) -> Vec<u64> {
        self.threads.keys().copied().collect()
    }

    /// The gap rule for a pushed entry: the next seq is applied, an old one dropped, a later
    /// one held for a while or fetched. `send_in_flight`: our own send in that thread awaits
    /// its ack.
    pub(crate) fn push(
        &mut self,
        m: pb::ChatMessage,
        send_in_flight: bool,
        now: Instant,
    ) -> Vec<Action> {
        let thread_id = m.thread_id;
        let t = self.threads.entry(thread_id).or_default();
        t.known = t.known.max(m.seq);
        if m.seq <= t.cursor {
            return Vec::new();
        }
        // Own entries waiting below it may close the gap.
        let mut next = t.cursor + 1;
        while t.own.contains_key(&next) {
            next += 1;
        }
        if m.seq == next {
            return self.accept(thread_id, vec![m], now);
        }
        if m.seq == next + 1 && send_in_flight {
            // One entry missing while our own send there awaits its ack: the server most
            // likely gave it that seq and pushed this one before our ack got here. Hold the
            // push; the ack fills the gap (or, if it does not, the check after the reply
            // syncs). Saves a SyncThread round trip in every fast exchange.
            t.held = Some(m.seq);
            t.own.insert(m.seq, m);
            return Vec::new();
        }
        // A gap: the missing entries are most likely a moment behind (pushes committed through
        // other cluster nodes), so hold this one for a while; the tick syncs if they do not come.
        let far = m.seq.saturating_sub(next) > HOLD_MAX as u64;
        if !far && t.own.len() < HOLD_MAX {
            t.own.insert(m.seq, m);
            t.gap_since.get_or_insert(now);
            return Vec::new();
        }
        t.own.insert(m.seq, m);
        t.gap_since = None;
        self.fetch(thread_id).into_iter().collect()
    }

    /// Our own entry as the server stored it (built from its ack): it fills our cursor without
    /// a sync. Returns what it lets through; an ack never needs a fetch.
    pub(crate) fn acked(&mut self, own: pb::ChatMessage, now: Instant) -> Vec<pb::ChatMessage> {
        let thread_id = own.thread_id;
        let t = self.threads.entry(thread_id).or_default();
        t.known = t.known.max(own.seq);
        if own.seq > t.cursor {
            t.own.insert(own.seq, own);
        }
        self.accept(thread_id, Vec::new(), now)
            .into_iter()
            .flat_map(|a| match a {
                Action::Apply { messages, .. } => messages,
                Action::Fetch { .. } => Vec::new(),
            })
            .collect()
    }

    /// A send in the thread was answered: a push held for its ack that the ack did not reach
    /// is fetched.
    pub(crate) fn send_answered(&mut self, thread_id: u64) -> Vec<Action> {
        let missing = self
            .threads
            .get_mut(&thread_id)
            .is_some_and(|t| t.held.take().is_some_and(|seq| seq > t.cursor));
        if missing {
            self.fetch(thread_id).into_iter().collect()
        } else {
            Vec::new()
        }
    }

    /// A page answering a fetch.
    pub(crate) fn page(
        &mut self,
        thread_id: u64,
        page: pb::MessagePage,
        now: Instant,
    ) -> Vec<Action> {
        let t = self.threads.entry(thread_id).or_default();
        t.syncing = false;
        let before = t.cursor;
        t.known = t.known.max(page.last_seq);
        let mut out = self.accept(thread_id, page.messages, now);
        let (after, behind) = self
            .threads
            .get(&thread_id)
            .map_or((0, false), |t| (t.cursor, t.cursor < t.known));
        // Only ask again when this page moved the cursor: a server that cannot fill a gap
        // must not be asked in a loop (the next push or reconnect tries again).
        if after > before && (page.has_more || behind) {
            out.extend(self.fetch(thread_id));
        }
        out
    }

    /// A fetch was refused (or answered with something else).
    pub(crate) fn refused(&mut self, thread_id: u64) {
        if let Some(t) = self.threads.get_mut(&thread_id) {
            t.syncing = false;
        }
    }

    /// A thread's summary (listed, or added by an event): fetches what it says exists.
    pub(crate) fn thread_info(&mut self, info: pb::Thread) -> Vec<Action> {
        let id = info.thread_id;
        let t = self.threads.entry(id).or_default();
        if !self.backlog && !self.synced_once && (t.cursor == 0 || t.skipped) && t.own.is_empty() {
            // A client without history starts at the newest entry: during its first sync only
            // (later, everything after the cursor is wanted), and to the newest listing (an
            // event may have made the thread known first, with the last_seq of its time).
            t.cursor = t.cursor.max(info.last_seq);
            t.reported = t.cursor;
            t.skipped = true;
        }
        t.known = t.known.max(info.last_seq);
        t.info = Some(info);
        if t.known > t.cursor {
            self.fetch(id).into_iter().collect()
        } else {
            Vec::new()
        }
    }

    /// The server asks for a resync of these threads (none: all of them).
    pub(crate) fn resync(&mut self, thread_ids: Vec<u64>) -> Vec<Action> {
        let ids = if thread_ids.is_empty() {
            self.thread_ids()
        } else {
            thread_ids
        };
        ids.into_iter().filter_map(|id| self.fetch(id)).collect()
    }

    /// Threads whose gap has waited [`GAP_GRACE`]: fetched.
    pub(crate) fn overdue(&mut self, now: Instant) -> Vec<Action> {
        let ids: Vec<u64> = self
            .threads
            .iter_mut()
            .filter(|(_, t)| {
                t.gap_since
                    .is_some_and(|g| now.duration_since(g) >= GAP_GRACE)
            })
            .map(|(id, t)| {
                t.gap_since = None;
                *id
            })
            .collect();
        ids.into_iter().filter_map(|id| self.fetch(id)).collect()
    }

    /// Threads whose cursor moved since the last `DeliveredUpTo`: (thread, seq).
    pub(crate) fn unreported(&self) -> Vec<(u64, u64)> {
        self.threads
            .iter()
            .filter(|(_, t)| t.cursor > t.reported)
            .map(|(id, t)| (*id, t.cursor))
            .collect()
    }

    pub(crate) fn reported(&mut self, thread_id: u64, seq: u64) {
        if let Some(t) = self.threads.get_mut(&thread_id) {
            t.reported = seq;
        }
    }

    /// A thread's description as the listing holds it.
    pub(crate) fn info(&self, thread_id: u64) -> Option<pb::Thread> {
        self.threads.get(&thread_id).and_then(|t| t.info.clone())
    }

    /// A read receipt moves the thread's read markers (ours, or the peer's in a DM).
    pub(crate) fn receipt(&mut self, r: &pb::ReadReceiptPush) {
        let Some(info) = self
            .threads
            .get_mut(&r.thread_id)
            .and_then(|t| t.info.as_mut())
        else {
            return;
        };
        let reader = r.user.as_ref().map_or(0, |u| u.user_id);
        let peer = info.peer.as_ref().map(|p| p.user_id);
        if Some(reader) == peer {
            info.peer_read_seq = info.peer_read_seq.max(r.read_seq);
        } else {
            info.read_seq = info.read_seq.max(r.read_seq);
        }
    }

    /// Starts a fetch from the cursor unless one is in flight.
    fn fetch(&mut self, thread_id: u64) -> Option<Action> {
        let t = self.threads.entry(thread_id).or_default();
        if t.syncing {
            return None;
        }
        t.syncing = true;
        Some(Action::Fetch {
            thread_id,
            since_seq: t.cursor,
        })
    }

    /// Moves the cursor over entries (ascending) that continue the thread, from `msgs` and from
    /// those waiting beyond it.
    fn accept(&mut self, thread_id: u64, msgs: Vec<pb::ChatMessage>, now: Instant) -> Vec<Action> {
        let t = self.threads.entry(thread_id).or_default();
        let mut fresh = Vec::with_capacity(msgs.len());
        let mut incoming = msgs.into_iter().peekable();
        loop {
            // Skip what we already hold.
            while incoming.peek().is_some_and(|m| m.seq <= t.cursor) {
                incoming.next();
            }
            let next = t.cursor + 1;
            let m = if incoming.peek().is_some_and(|m| m.seq == next) {
                t.own.remove(&next);
                incoming.next()
            } else {
                t.own.remove(&next)
            };
            let Some(m) = m else { break };
            t.cursor = m.seq;
            fresh.push(m);
        }
        t.own.retain(|seq, _| *seq > t.cursor);
        if t.own.is_empty() {
            t.gap_since = None;
        } else if t.held.is_none() {
            // Something waits on a gap (an own acked entry above someone else's missing push):
            // the tick syncs if the gap does not close.
            t.gap_since.get_or_insert(now);
        }
        if fresh.is_empty() {
            return Vec::new();
        }
        let cursor = t.cursor;
        if let Some(info) = t.info.as_mut() {
            info.last_seq = info.last_seq.max(cursor);
            if let Some(last) = fresh.last() {
                info.last_message = Some(last.clone());
                info.activity_id = info.activity_id.max(last.message_id);
            }
        }
        vec![Action::Apply {
            thread_id,
            messages: fresh,
        }]
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const T: u64 = 7;

    fn msg(seq: u64) -> pb::ChatMessage {
        pb::ChatMessage {
            thread_id: T,
            seq,
            message_id: 1000 + seq,
            body: format!("m{seq}"),
            ..Default::default()
        }
    }

    fn info(last_seq: u64) -> pb::Thread {
        pb::Thread {
            thread_id: T,
            last_seq,
            ..Default::default()
        }
    }

    fn page(seqs: &[u64], last_seq: u64, has_more: bool) -> pb::MessagePage {
        pb::MessagePage {
            messages: seqs.iter().map(|s| msg(*s)).collect(),
            last_seq,
            has_more,
            ..Default::default()
        }
    }

    /// The seqs applied by `actions`, in order.
    fn applied(actions: &[Action]) -> Vec<u64> {
        actions
            .iter()
            .flat_map(|a| match a {
                Action::Apply { messages, .. } => messages.iter().map(|m| m.seq).collect(),
                Action::Fetch { .. } => Vec::new(),
            })
            .collect()
    }

    fn fetch(since_seq: u64) -> Action {
        Action::Fetch {
            thread_id: T,
            since_seq,
        }
    }

    /// A thread known from the cache with the cursor at `cursor`.
    fn at(cursor: u64) -> ThreadSync {
        ThreadSync::new(true, vec![(info(cursor), cursor)])
    }

    #[test]
    fn the_next_seq_is_applied_and_moves_the_cursor() {
        let mut s = at(3);
        let now = Instant::now();
        let out = s.push(msg(4), false, now);
        assert_eq!(applied(&out), vec![4]);
        assert_eq!(s.cursor(T), 4);
        assert_eq!(s.unreported(), vec![(T, 4)]);
        s.reported(T, 4);
        assert!(s.unreported().is_empty());
        // The summary follows the applied entries.
        let (listed, cursor) = s.listing().pop().unwrap();
        assert_eq!((listed.last_seq, cursor), (4, 4));
        assert_eq!(listed.last_message.unwrap().seq, 4);
    }

    #[test]
    fn a_duplicate_push_is_dropped() {
        let mut s = at(3);
        let now = Instant::now();
        assert_eq!(applied(&s.push(msg(4), false, now)), vec![4]);
        assert!(s.push(msg(4), false, now).is_empty());
        assert!(s.push(msg(2), false, now).is_empty());
        assert_eq!(s.cursor(T), 4);
    }

    #[test]
    fn a_gap_is_held_for_the_grace_period_then_fetched() {
        let mut s = at(3);
        let t0 = Instant::now();
        assert!(s.push(msg(6), false, t0).is_empty(), "held, not fetched");
        assert!(s.overdue(t0 + GAP_GRACE / 2).is_empty());
        assert_eq!(s.overdue(t0 + GAP_GRACE), vec![fetch(3)]);
        assert!(s.syncing());
        // One fetch at a time, and the gap is not fetched twice.
        assert!(s.overdue(t0 + GAP_GRACE * 3).is_empty());
    }

    #[test]
    fn the_missing_entries_arriving_in_time_release_the_held_ones() {
        let mut s = at(3);
        let t0 = Instant::now();
        assert!(s.push(msg(6), false, t0).is_empty());
        assert!(s.push(msg(5), false, t0).is_empty());
        assert_eq!(applied(&s.push(msg(4), false, t0)), vec![4, 5, 6]);
        assert!(s.overdue(t0 + GAP_GRACE).is_empty(), "nothing left waiting");
        assert!(!s.syncing());
    }

    #[test]
    fn a_far_gap_is_fetched_at_once() {
        let mut s = at(3);
        let far = 4 + HOLD_MAX as u64 + 1;
        assert_eq!(s.push(msg(far), false, Instant::now()), vec![fetch(3)]);
    }

    #[test]
    fn too_many_held_pushes_fetch_at_once() {
        let mut s = at(0);
        let now = Instant::now();
        for seq in 2..2 + HOLD_MAX as u64 {
            assert!(s.push(msg(seq), false, now).is_empty(), "seq {seq}");
        }
        assert_eq!(s.push(msg(2 + HOLD_MAX as u64), false, now), vec![fetch(0)]);
    }

    #[test]
    fn a_push_one_past_our_send_in_flight_waits_for_the_ack() {
        let mut s = at(3);
        let now = Instant::now();
        assert!(s.push(msg(5), true, now).is_empty());
        // Held for the ack: the grace timer does not fetch it.
        assert!(s.overdue(now + GAP_GRACE * 2).is_empty());
        let mut own = msg(4);
        own.body = "mine".into();
        let fresh = s.acked(own, now);
        assert_eq!(fresh.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![4, 5]);
        assert_eq!(fresh[0].body, "mine");
        assert!(s.send_answered(T).is_empty(), "the ack filled the gap");
    }

    #[test]
    fn a_held_push_the_ack_did_not_reach_is_fetched_after_the_reply() {
        let mut s = at(3);
        let now = Instant::now();
        assert!(s.push(msg(5), true, now).is_empty());
        // The send was refused: nothing fills seq 4.
        assert_eq!(s.send_answered(T), vec![fetch(3)]);
    }

    #[test]
    fn an_own_entry_above_a_gap_waits_then_fetches() {
        let mut s = at(3);
        let now = Instant::now();
        assert!(s.acked(msg(5), now).is_empty());
        assert_eq!(s.overdue(now + GAP_GRACE), vec![fetch(3)]);
    }

    #[test]
    fn a_sync_page_is_applied_and_continued_while_it_moves_the_cursor() {
        let mut s = ThreadSync::new(true, Vec::new());
        let now = Instant::now();
        assert_eq!(s.thread_info(info(5)), vec![fetch(0)]);
        assert!(s.syncing());
        let out = s.page(T, page(&[1, 2, 3], 5, true), now);
        assert_eq!(applied(&out), vec![1, 2, 3]);
        assert_eq!(out.last(), Some(&fetch(3)), "has_more: the next page");
        let out = s.page(T, page(&[4, 5], 5, false), now);
        assert_eq!(applied(&out), vec![4, 5]);
        assert_eq!(out.len(), 1, "caught up: no further fetch");
        assert!(!s.syncing());
    }

    #[test]
    fn a_page_short_of_last_seq_continues_without_has_more() {
        let mut s = at(0);
        assert_eq!(s.thread_info(info(4)), vec![fetch(0)]);
        let out = s.page(T, page(&[1, 2], 4, false), Instant::now());
        assert_eq!(out.last(), Some(&fetch(2)));
    }

    #[test]
    fn a_page_that_does_not_move_the_cursor_is_not_asked_again() {
        let mut s = at(3);
        assert_eq!(s.thread_info(info(9)), vec![fetch(3)]);
        // The server cannot fill the gap: no loop.
        let out = s.page(T, page(&[], 9, true), Instant::now());
        assert!(out.is_empty());
        assert!(!s.syncing());
    }

    #[test]
    fn a_page_with_entries_already_held_applies_only_the_new_ones() {
        let mut s = at(2);
        let now = Instant::now();
        assert!(s.push(msg(5), false, now).is_empty());
        assert_eq!(s.overdue(now + GAP_GRACE), vec![fetch(2)]);
        let out = s.page(T, page(&[1, 2, 3, 4], 5, false), now);
        assert_eq!(applied(&out), vec![3, 4, 5]);
    }

    #[test]
    fn a_refused_fetch_can_be_started_again() {
        let mut s = at(3);
        assert_eq!(s.thread_info(info(5)), vec![fetch(3)]);
        assert!(s.thread_info(info(5)).is_empty(), "one fetch at a time");
        s.refused(T);
        assert!(!s.syncing());
        assert_eq!(s.thread_info(info(5)), vec![fetch(3)]);
    }

    #[test]
    fn a_new_connection_forgets_fetches_of_the_last_one() {
        let mut s = at(3);
        assert_eq!(s.thread_info(info(5)), vec![fetch(3)]);
        s.new_link();
        assert!(!s.syncing());
        assert_eq!(s.thread_info(info(5)), vec![fetch(3)]);
    }

    #[test]
    fn resync_push_fetches_the_named_threads_or_all() {
        let mut s = ThreadSync::new(
            true,
            vec![
                (info(1), 1),
                (
                    pb::Thread {
                        thread_id: 8,
                        last_seq: 2,
                        ..Default::default()
                    },
                    2,
                ),
            ],
        );
        assert_eq!(
            s.resync(vec![8]),
            vec![Action::Fetch {
                thread_id: 8,
                since_seq: 2
            }]
        );
        // Thread 8 is already being fetched; the rest are.
        assert_eq!(s.resync(Vec::new()), vec![fetch(1)]);
    }

    #[test]
    fn without_backlog_the_first_listing_starts_at_the_newest_entry() {
        let mut s = ThreadSync::new(false, Vec::new());
        assert!(s.thread_info(info(40)).is_empty());
        assert_eq!(s.cursor(T), 40);
        assert!(s.unreported().is_empty(), "nothing was delivered");
        // A newer listing during the first sync moves it again.
        assert!(s.thread_info(info(42)).is_empty());
        assert_eq!(s.cursor(T), 42);
        // After the first sync, everything after the cursor is wanted.
        s.first_sync_done();
        assert_eq!(s.thread_info(info(45)), vec![fetch(42)]);
    }

    #[test]
    fn receipts_move_ours_or_the_peers_marker() {
        let mut t = info(9);
        t.peer = Some(pb::User {
            user_id: 2,
            ..Default::default()
        });
        let mut s = ThreadSync::new(true, vec![(t, 9)]);
        let receipt = |user_id, read_seq| pb::ReadReceiptPush {
            thread_id: T,
            user: Some(pb::User {
                user_id,
                ..Default::default()
            }),
            read_seq,
        };
        s.receipt(&receipt(2, 5));
        s.receipt(&receipt(1, 7));
        s.receipt(&receipt(2, 3));
        let (t, _) = s.listing().pop().unwrap();
        assert_eq!((t.peer_read_seq, t.read_seq), (5, 7));
    }
}
