//! Read markers the user set, kept until the server has confirmed them. A `ReadUpTo` written
//! as the connection drops is lost with it; this one is sent again after every connect until
//! its reply comes (markers only move forward, so a repeat is harmless).

use std::collections::BTreeMap;

use confab_wire::{Body, pb};
use tracing::debug;

use super::Engine;
use super::link::{End, Link, Pending};

/// Unconfirmed markers: thread -> the highest seq asked for.
#[derive(Debug, Default)]
pub(super) struct Marks(BTreeMap<u64, u64>);

impl Marks {
    /// Records a marker; false when an equal or higher one is already waiting.
    fn want(&mut self, thread_id: u64, seq: u64) -> bool {
        let m = self.0.entry(thread_id).or_insert(0);
        if *m >= seq && *m != 0 {
            return false;
        }
        *m = seq;
        true
    }

    /// The server took `seq`: forget the marker unless a higher one is waiting.
    fn confirmed(&mut self, thread_id: u64, seq: u64) {
        if self.0.get(&thread_id).is_some_and(|m| *m <= seq) {
            self.0.remove(&thread_id);
        }
    }
}

impl Engine {
    /// Offline: kept for the next connect.
    pub(super) fn mark_read_later(&mut self, thread_id: u64, seq: u64) {
        self.marks.want(thread_id, seq);
    }

    /// Online: kept, and sent now.
    pub(super) async fn mark_read(
        &mut self,
        link: &mut Link,
        thread_id: u64,
        seq: u64,
    ) -> Result<(), End> {
        if !self.marks.want(thread_id, seq) {
            return Ok(());
        }
        self.send_mark(link, thread_id, seq).await
    }

    async fn send_mark(&mut self, link: &mut Link, thread_id: u64, seq: u64) -> Result<(), End> {
        self.request(
            link,
            Body::ReadUpTo(pb::ReadUpTo { thread_id, seq }),
            Pending::ReadMark(thread_id, seq),
        )
        .await
    }

    /// After a connect: every marker not confirmed yet.
    pub(super) async fn resend_marks(&mut self, link: &mut Link) -> Result<(), End> {
        let waiting: Vec<(u64, u64)> = self.marks.0.iter().map(|(t, s)| (*t, *s)).collect();
        for (thread_id, seq) in waiting {
            self.send_mark(link, thread_id, seq).await?;
        }
        Ok(())
    }

    pub(super) fn on_mark_reply(&mut self, thread_id: u64, seq: u64, body: &Body) {
        if let Body::Error(e) = body {
            // Refused (not a member any more, ...): sending it again cannot help.
            debug!(error = %e, thread_id, "read marker refused");
        }
        self.marks.confirmed(thread_id, seq);
    }
}

#[cfg(test)]
mod tests {
    use super::Marks;

    #[test]
    fn a_marker_waits_until_confirmed_and_a_higher_one_replaces_it() {
        let mut m = Marks::default();
        assert!(m.want(1, 5));
        assert!(!m.want(1, 4), "markers only move forward");
        assert!(m.want(1, 7));
        m.confirmed(1, 5);
        assert_eq!(m.0.get(&1), Some(&7), "the reply to 5 does not confirm 7");
        m.confirmed(1, 7);
        assert!(m.0.is_empty());
    }
}
