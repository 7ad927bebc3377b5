//! Desktop/terminal notifications, at most one per conversation every
//! [`NOTIFY_EVERY_MS`]: the first message of a burst notifies at once, the rest are held and
//! summarised ("bob: 12 new messages") once the interval has passed. A burst of 330 messages
//! is two notifications, not 330 bells.

use std::collections::HashMap;

use super::msg::Cmd;
use super::state::State;
use crate::text::sanitize;

/// Shortest time between two notifications of one conversation.
pub const NOTIFY_EVERY_MS: i64 = 5_000;

/// Per conversation: when it last notified and what arrived since.
#[derive(Debug, Clone, Default)]
pub struct Gates(HashMap<u64, Gate>);

#[derive(Debug, Clone, Default)]
struct Gate {
    last_ms: Option<i64>,
    held: u64,
}

/// A message that would notify: now, or held for the summary.
pub(super) fn incoming(s: &mut State, thread: u64, title: String, body: &str, cmds: &mut Vec<Cmd>) {
    let now = s.now_ms;
    let gate = s.notify_gates.0.entry(thread).or_default();
    let due = gate
        .last_ms
        .is_none_or(|last| now - last >= NOTIFY_EVERY_MS);
    if due && gate.held == 0 {
        gate.last_ms = Some(now);
        cmds.push(Cmd::Notify {
            title: sanitize(&title),
            body: sanitize(&crate::text::truncate(body, 120, s.settings.ambiguous)),
        });
    } else {
        gate.held += 1;
    }
}

/// On every tick: the summaries that are due.
pub(super) fn tick(s: &mut State, cmds: &mut Vec<Cmd>) {
    let now = s.now_ms;
    let mut due = Vec::new();
    for (thread, gate) in &mut s.notify_gates.0 {
        if gate.held > 0 && gate.last_ms.is_none_or(|l| now - l >= NOTIFY_EVERY_MS) {
            due.push((*thread, std::mem::take(&mut gate.held)));
            gate.last_ms = Some(now);
        }
    }
    due.sort_unstable();
    for (thread, n) in due {
        let name = s.thread(thread).map(|t| t.name.clone()).unwrap_or_default();
        let body = if n == 1 {
            "1 new message".to_owned()
        } else {
            format!("{n} new messages")
        };
        cmds.push(Cmd::Notify {
            title: sanitize(&name),
            body,
        });
    }
}

/// The user is looking at the conversation: what was held needs no summary.
pub(super) fn seen(s: &mut State, thread: u64) {
    if let Some(g) = s.notify_gates.0.get_mut(&thread) {
        g.held = 0;
    }
}
