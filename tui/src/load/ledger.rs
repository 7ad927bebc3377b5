//! The ledger of one load task: every message from send to ack to each recipient's delivery,
//! kept by the task that drives the clients (no lock on the hot path), turned into a checked
//! [`Report`] at the end.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use confab_wire::pb;

use super::report::Report;

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Acked,
    Failed,
}

struct Entry {
    at: Instant,
    measured: bool,
    state: State,
    /// Recipient devices that should get it.
    recipients: u32,
    /// Distinct recipients that got it.
    delivered: u32,
}

/// A growable bit set (which messages of one sender a recipient has seen).
#[derive(Default)]
struct Bits(Vec<u64>);

impl Bits {
    /// Sets bit `i`; returns whether it was already set.
    fn set(&mut self, i: usize) -> bool {
        let (w, b) = (i / 64, i % 64);
        if w >= self.0.len() {
            self.0.resize(w + 1, 0);
        }
        let was = self.0[w] & (1 << b) != 0;
        self.0[w] |= 1 << b;
        was
    }
}

/// Messages are tagged `L|nonce|sender|n|` (padded to the requested size): `nonce` tells this
/// task's messages from any other's, `sender` is the sender's index in this ledger and `n`
/// counts its messages from 1.
pub struct Ledger {
    nonce: u64,
    measure_from: Instant,
    senders: Vec<Vec<Entry>>,
    /// (sender, local id) -> n. Local ids are per client (two clients may use the same).
    in_flight: HashMap<(u32, u64), u32>,
    /// [receiver][sender] -> messages seen
    seen: Vec<Vec<Bits>>,
    /// [receiver] -> highest seq seen (each receiver watches one thread)
    last_seq: Vec<u64>,
    ack_events: u64,
    delivery_events: u64,
    /// Deliveries still owed for acked messages (a delivery may precede its ack).
    owed: i64,
    pub report: Report,
}

impl Ledger {
    pub fn new(scenario: &str, senders: usize, receivers: usize, measure_from: Instant) -> Self {
        Self {
            nonce: rand::random::<u64>() >> 16,
            measure_from,
            senders: (0..senders).map(|_| Vec::new()).collect(),
            in_flight: HashMap::new(),
            seen: (0..receivers)
                .map(|_| (0..senders).map(|_| Bits::default()).collect())
                .collect(),
            last_seq: vec![0; receivers],
            ack_events: 0,
            delivery_events: 0,
            owed: 0,
            report: Report::new(scenario),
        }
    }

    /// The next message of `sender`, `size` bytes long; [`Ledger::posted`] records it.
    pub fn next_body(&self, sender: usize, size: usize) -> String {
        let n = self.senders[sender].len() + 1;
        let mut b = String::with_capacity(size.max(40));
        let _ = write!(b, "L|{:x}|{sender}|{n}|", self.nonce);
        let pad = size.saturating_sub(b.len());
        b.extend(std::iter::repeat_n('x', pad));
        b
    }

    /// The body of [`Ledger::next_body`] was handed to the client as `local_id`, sent at `at`.
    pub fn posted(&mut self, sender: usize, local_id: u64, recipients: u32, at: Instant) {
        let log = &mut self.senders[sender];
        log.push(Entry {
            at,
            measured: at >= self.measure_from,
            state: State::Pending,
            recipients,
            delivered: 0,
        });
        let n = u32::try_from(log.len()).unwrap_or(u32::MAX);
        self.in_flight
            .insert((u32::try_from(sender).unwrap_or(u32::MAX), local_id), n);
    }

    /// The client refused to take a message (it never reached the outbox).
    pub fn post_failed(&mut self, what: &str) {
        self.report.error(format!("send: {what}"));
    }

    fn entry(&mut self, sender: usize, local_id: u64) -> Option<&mut Entry> {
        let s = u32::try_from(sender).ok()?;
        let n = self.in_flight.remove(&(s, local_id))?;
        self.senders
            .get_mut(sender)?
            .get_mut((n as usize).checked_sub(1)?)
    }

    /// An ack for `sender`'s `local_id`; returns whether it was one of ours.
    pub fn acked(&mut self, sender: usize, local_id: u64) -> bool {
        let now = Instant::now();
        let Some(e) = self.entry(sender, local_id) else {
            return false;
        };
        e.state = State::Acked;
        let (measured, at) = (e.measured, e.at);
        self.owed += i64::from(e.recipients) - i64::from(e.delivered);
        self.ack_events += 1;
        if measured {
            self.report.record_ack(now.duration_since(at));
        }
        true
    }

    pub fn failed(&mut self, sender: usize, local_id: u64, error: &pb::Error) {
        if let Some(e) = self.entry(sender, local_id) {
            e.state = State::Failed;
        }
        self.report
            .error(format!("send: {}", code_name(error.code)));
    }

    pub fn retried(&mut self, error: &pb::Error) {
        self.report
            .error(format!("send: {} (retried)", code_name(error.code)));
    }

    /// A message reached `receiver`; returns the sender's index when it was one of ours.
    pub fn delivered(&mut self, receiver: usize, m: &pb::ChatMessage) -> Option<usize> {
        let mut it = m.body.split('|');
        if it.next() != Some("L") {
            return None;
        }
        let nonce = u64::from_str_radix(it.next()?, 16).ok()?;
        if nonce != self.nonce {
            // Another task's or an earlier run's message (seen in a sync): not ours to count.
            return None;
        }
        let parsed = it
            .next()
            .and_then(|s| s.parse::<usize>().ok())
            .zip(it.next().and_then(|s| s.parse::<usize>().ok()));
        let Some((sender, n)) = parsed else {
            self.report.unexpected += 1;
            return None;
        };
        let Some(entry) = self
            .senders
            .get_mut(sender)
            .and_then(|l| l.get_mut(n.wrapping_sub(1)))
        else {
            self.report.unexpected += 1;
            return None;
        };
        self.delivery_events += 1;
        if self.seen[receiver][sender].set(n) {
            self.report.duplicated += 1;
            return Some(sender);
        }
        // A first delivery must come after every entry this receiver has seen.
        let seq = &mut self.last_seq[receiver];
        if m.seq <= *seq {
            self.report.out_of_order += 1;
        }
        *seq = (*seq).max(m.seq);
        entry.delivered += 1;
        if entry.state == State::Acked {
            self.owed -= 1;
        }
        if entry.measured {
            let d = entry.at.elapsed();
            self.report.record_delivery(d);
        }
        Some(sender)
    }

    /// Every message answered, and every acked one delivered to all its recipients.
    pub fn settled(&self) -> bool {
        self.in_flight.is_empty() && self.owed <= 0
    }

    fn get(&self, sender: usize, n: usize) -> Option<&Entry> {
        self.senders.get(sender)?.get(n.checked_sub(1)?)
    }

    /// Whether message `n` (from 1) of `sender` has been acked.
    pub fn acked_n(&self, sender: usize, n: usize) -> bool {
        self.get(sender, n).is_some_and(|e| e.state == State::Acked)
    }

    /// Whether message `n` (from 1) of `sender` reached all its recipients.
    pub fn delivered_to_all(&self, sender: usize, n: usize) -> bool {
        self.get(sender, n)
            .is_some_and(|e| e.delivered >= e.recipients)
    }

    /// Messages `sender` has posted so far.
    pub fn count(&self, sender: usize) -> usize {
        self.senders[sender].len()
    }

    /// Settles the books: counts, losses, and the checks that they add up.
    pub fn finish(mut self, elapsed: Duration) -> Report {
        let mut r = std::mem::take(&mut self.report);
        let (mut acked_all, mut delivered_all) = (0u64, 0u64);
        for e in self.senders.iter().flatten() {
            delivered_all += u64::from(e.delivered);
            if e.state == State::Acked {
                acked_all += 1;
                r.lost += u64::from(e.recipients.saturating_sub(e.delivered));
            }
            if !e.measured {
                continue;
            }
            r.sent += 1;
            r.delivered += u64::from(e.delivered);
            match e.state {
                State::Acked => {
                    r.acked += 1;
                    r.expected += u64::from(e.recipients);
                }
                State::Failed => r.failed += 1,
                State::Pending => {
                    r.unanswered += 1;
                    r.error("send: no answer by the end of the drain");
                }
            }
        }
        if acked_all != self.ack_events {
            r.mismatches.push(format!(
                "{} acks received for {} acked messages",
                self.ack_events, acked_all
            ));
        }
        if delivered_all + r.duplicated != self.delivery_events {
            r.mismatches.push(format!(
                "{} deliveries received, {} matched + {} duplicates",
                self.delivery_events, delivered_all, r.duplicated
            ));
        }
        r.elapsed = elapsed;
        r.check();
        r
    }
}

/// The name of an error code (`RATE_LIMITED`), or its number.
pub fn code_name(code: i32) -> String {
    pb::ErrorCode::try_from(code)
        .map_or_else(|_| format!("code {code}"), |c| c.as_str_name().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(body: &str, seq: u64) -> pb::ChatMessage {
        pb::ChatMessage {
            thread_id: 7,
            seq,
            body: body.into(),
            ..Default::default()
        }
    }

    #[test]
    fn every_delivery_is_matched_and_losses_duplicates_and_reorders_are_counted() {
        let start = Instant::now();
        // Two senders, three receivers (receiver 0 is sender 0's peer, and so on).
        let mut l = Ledger::new("t", 2, 3, start);
        let mut bodies = Vec::new();
        for (i, local) in [(0usize, 10u64), (0, 11), (0, 12), (1, 10)] {
            let b = l.next_body(i, 64);
            assert_eq!(b.len(), 64);
            l.posted(i, local, 2, Instant::now());
            bodies.push(b);
        }
        // Same local id on two clients: told apart by sender.
        assert!(l.acked(0, 10));
        assert!(l.acked(1, 10));
        assert!(!l.acked(1, 10), "a second ack for one send is not counted");
        assert!(l.acked(0, 11));
        l.failed(
            0,
            12,
            &pb::Error {
                code: pb::ErrorCode::Forbidden as i32,
                ..Default::default()
            },
        );
        assert!(!l.settled(), "acked messages still owe deliveries");
        // Message 1 of sender 0 reaches both recipients, one of them twice; message 2 one.
        assert_eq!(l.delivered(1, &msg(&bodies[0], 1)), Some(0));
        assert_eq!(l.delivered(2, &msg(&bodies[0], 1)), Some(0));
        assert_eq!(l.delivered(2, &msg(&bodies[0], 1)), Some(0));
        assert_eq!(l.delivered(1, &msg(&bodies[1], 2)), Some(0));
        // Sender 1's message to both, the second time with a seq below one already seen.
        assert_eq!(l.delivered(1, &msg(&bodies[3], 4)), Some(1));
        assert_eq!(l.delivered(2, &msg(&bodies[3], 1)), Some(1));
        // Someone else's message is not ours; one of ours that was never sent is unexpected.
        assert_eq!(l.delivered(0, &msg("L|1|0|1|xx", 9)), None);
        assert_eq!(l.delivered(0, &msg("hello", 9)), None);
        let forged = bodies[0].replacen("|1|", "|99|", 1);
        assert_eq!(l.delivered(0, &msg(&forged, 10)), None);
        let r = l.finish(Duration::from_secs(1));
        assert_eq!((r.sent, r.acked, r.failed, r.unanswered), (4, 3, 1, 0));
        assert_eq!(r.expected, 6);
        assert_eq!(r.delivered, 5);
        assert_eq!(r.lost, 1, "sender 0's second message missed one recipient");
        assert_eq!(r.duplicated, 1);
        assert_eq!(
            r.out_of_order, 1,
            "the late seq 1 (the duplicate counts once, as such)"
        );
        assert_eq!(r.unexpected, 1);
        assert_eq!(r.errors["send: FORBIDDEN"], 1);
        assert!(r.mismatches.is_empty(), "{:?}", r.mismatches);
        assert!(!r.clean());
    }

    #[test]
    fn a_send_never_answered_is_reported_and_the_run_still_adds_up() {
        let mut l = Ledger::new("t", 1, 1, Instant::now());
        let _ = l.next_body(0, 10);
        l.posted(0, 1, 1, Instant::now());
        let r = l.finish(Duration::from_secs(1));
        assert_eq!((r.sent, r.unanswered, r.lost), (1, 1, 0));
        assert!(r.mismatches.is_empty());
        assert_eq!(r.errors["send: no answer by the end of the drain"], 1);
    }
}
