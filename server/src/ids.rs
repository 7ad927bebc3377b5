//! Time and ids.
//!
//! `message_id`s are snowflakes: 41 bits of milliseconds since 2024-01-01T00:00:00Z, 10 bits of
//! node id and 12 bits of sequence within the millisecond. They are unique across nodes without
//! coordination and sort by creation time, but they are not a sync cursor: ids are taken before
//! commit, so commit order can differ (the per-thread `seq` is the cursor).

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// 2024-01-01T00:00:00Z in unix milliseconds.
pub const EPOCH_MS: i64 = 1_704_067_200_000;
const NODE_BITS: u32 = 10;
const SEQ_BITS: u32 = 12;
/// Largest node id a snowflake can carry.
pub const MAX_NODE_ID: u16 = (1 << NODE_BITS) - 1;

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Generates snowflake ids for one node.
#[derive(Debug)]
pub struct Snowflake {
    node: u64,
    state: Mutex<(i64, u64)>,
}

impl Snowflake {
    /// `node` is masked to 10 bits.
    pub fn new(node: u16) -> Self {
        Self {
            node: u64::from(node & MAX_NODE_ID),
            state: Mutex::new((0, 0)),
        }
    }

    /// The next id. Never goes backwards, even if the wall clock does: it keeps counting on the
    /// last millisecond it saw (borrowing from the future for at most the clock's step).
    pub fn next_id(&self) -> u64 {
        let now = (now_ms() - EPOCH_MS).max(0);
        let mut st = match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let (last, seq) = *st;
        let (ms, seq) = if now > last {
            (now, 0)
        } else if seq + 1 < (1 << SEQ_BITS) {
            (last, seq + 1)
        } else {
            (last + 1, 0)
        };
        *st = (ms, seq);
        ((ms as u64) << (NODE_BITS + SEQ_BITS)) | (self.node << SEQ_BITS) | seq
    }
}

/// The unix milliseconds a snowflake was made at.
pub fn snowflake_ms(id: u64) -> i64 {
    (id >> (NODE_BITS + SEQ_BITS)) as i64 + EPOCH_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_increasing() {
        let s = Snowflake::new(3);
        let mut prev = 0;
        for _ in 0..100_000 {
            let id = s.next_id();
            assert!(id > prev);
            prev = id;
        }
        assert_eq!((prev >> SEQ_BITS) & u64::from(MAX_NODE_ID), 3);
        assert!((snowflake_ms(prev) - now_ms()).abs() < 60_000);
    }
}
