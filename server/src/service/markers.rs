//! Delivery markers reported as notifications: kept in memory, only ever raised, stored together
//! once a second.

use std::sync::Arc;

use confab_wire::pb::{self};
use tracing::warn;

use crate::store::Backend;
use crate::store::ops::messages;

use super::*;

impl<B: Backend> Service<B> {
    /// Keeps a delivery marker sent as a notification for the next [`Service::flush_delivered`],
    /// when the sender is a known active member of the thread (the member cache says so
    /// without a read). `false`: store it now instead (which also answers refusals).
    pub(super) fn note_delivered(&self, s: &Session, d: &pb::DeliveredUpTo) -> bool {
        let member = self
            .cached_members(d.thread_id)
            .is_some_and(|l| l.contains(&s.user.user_id));
        if !member {
            return false;
        }
        let Ok(mut pending) = self.delivered.lock() else {
            return false;
        };
        let key = (s.device_id, d.thread_id);
        if pending.len() >= DELIVERED_PENDING_MAX && !pending.contains_key(&key) {
            return false;
        }
        let e = pending.entry(key).or_insert((s.user.user_id, 0));
        e.1 = e.1.max(d.seq);
        true
    }

    pub async fn flush_delivered(&self) {
        let pending = match self.delivered.lock() {
            Ok(mut p) if !p.is_empty() => std::mem::take(&mut *p),
            _ => return,
        };
        let marks: Arc<Vec<messages::DeliveredMark>> = Arc::new(
            pending
                .into_iter()
                .map(|((device, thread), (user, seq))| messages::DeliveredMark {
                    user,
                    device,
                    thread,
                    seq,
                })
                .collect(),
        );
        let n = marks.len();
        if let Err(e) = self
            .store
            .write(move |tx| Box::pin(async move { messages::delivered_many(tx, &marks).await }))
            .await
        {
            warn!(error = %e, markers = n, "delivery markers not stored");
        }
    }
}
