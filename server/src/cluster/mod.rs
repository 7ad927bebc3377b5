//! The bus between nodes: who is online where, and pushes that cross nodes.
//!
//! The service delivers every push to this node's connections itself (through the
//! [`Hub`]) and hands the same pre-encoded frame to the [`Bus`] for the others. Two
//! implementations:
//!
//! - [`LocalBus`]: one node, nothing to forward; presence is the hub. The default.
//! - [`redis::RedisBus`] (`--bus redis://...`): presence as TTL'd keys in Redis, one pub/sub
//!   channel per node; see that module for the keys and the failure handling.
//!
//! Pushes may be lost on the way (pub/sub is at-most-once); clients recover with the gap
//! rule and sync, and a node that may have missed pushes tells its clients to resync.

pub mod redis;

use std::collections::HashSet;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use confab_wire::Frame;
use futures::future::BoxFuture;

use crate::config::Config;
use crate::hub::{Hub, Kick};

/// Which of a user's connections a cross-node kick closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KickScope {
    /// Every connection of the user.
    All,
    /// The connections of one device session.
    Device(u64),
    /// Every connection except those of one device session.
    AllBut(u64),
    /// Every connection: the account was deactivated (they close with ACCOUNT_DISABLED).
    Disabled,
}

impl KickScope {
    fn matches(self, device: u64) -> bool {
        match self {
            KickScope::All | KickScope::Disabled => true,
            KickScope::Device(d) => device == d,
            KickScope::AllBut(d) => device != d,
        }
    }
}

/// Called when other nodes changed thread memberships: `Some(threads)`, or `None` when changes
/// may have been missed (drop every cached member list).
pub type MembersChanged = Box<dyn Fn(Option<&[u64]>) + Send + Sync>;

/// Called with users who were online on a node that died and are now online nowhere (their
/// friends have not been told: that node could not say goodbye).
pub type UsersLost = Box<dyn Fn(Vec<u64>) + Send + Sync>;

/// What the service needs from the cluster. Calls that forward are synchronous and keep their
/// order: a node's pushes leave it in the order they were handed over.
pub trait Bus: Send + Sync + 'static {
    /// Sends `frame` to the connections of `users` on the other nodes (this node's own
    /// connections are served by the caller through the hub).
    fn forward(&self, users: &[u64], frame: &Frame);
    /// Closes connections of `user` on the other nodes (revoked sessions).
    fn kick(&self, user: u64, scope: KickScope);
    /// Tells every other node that these threads' members changed (their member caches).
    fn members_changed(&self, threads: &[u64]);
    /// Sets what to call when another node reports membership changes (once, at start).
    fn on_members_changed(&self, f: MembersChanged);
    /// Sets what to call when a dead node's users turn out to be offline (once, at start).
    fn on_users_lost(&self, f: UsersLost);
    /// Which of `users` have a connection on any node.
    fn online<'a>(&'a self, users: &'a [u64]) -> BoxFuture<'a, HashSet<u64>>;
    /// A device connected here (already in the hub): make it reachable from the other nodes.
    /// Awaited before the client is told it is logged in, so anything committed after that is
    /// routed to it.
    fn attached(&self, user: u64, device: u64) -> BoxFuture<'_, ()>;
    /// A connection of the device closed here (already out of the hub).
    fn detached(&self, user: u64, device: u64) -> BoxFuture<'_, ()>;
    /// Leaves the cluster (graceful shutdown): this node's routes stop counting at once.
    fn close(&self) -> BoxFuture<'_, ()>;
    /// True when other nodes may exist (the service then does the route bookkeeping).
    fn clustered(&self) -> bool;
    /// Whether the node can reach the other nodes (`/readyz`); `Err` says why not.
    fn ready(&self) -> Result<(), &'static str> {
        Ok(())
    }
}

/// A single node: nothing crosses, presence is the hub.
pub struct LocalBus {
    hub: Arc<Hub>,
}

impl LocalBus {
    pub fn new(hub: Arc<Hub>) -> Self {
        Self { hub }
    }
}

impl Bus for LocalBus {
    fn forward(&self, _users: &[u64], _frame: &Frame) {}

    fn kick(&self, _user: u64, _scope: KickScope) {}

    fn members_changed(&self, _threads: &[u64]) {}

    fn on_members_changed(&self, _f: MembersChanged) {}

    fn on_users_lost(&self, _f: UsersLost) {}

    fn online<'a>(&'a self, users: &'a [u64]) -> BoxFuture<'a, HashSet<u64>> {
        let set = users
            .iter()
            .copied()
            .filter(|u| self.hub.is_online(*u))
            .collect();
        Box::pin(std::future::ready(set))
    }

    fn attached(&self, _user: u64, _device: u64) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }

    fn detached(&self, _user: u64, _device: u64) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }

    fn clustered(&self) -> bool {
        false
    }
}

/// Errors joining the cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("invalid bus address: {0}")]
    Url(String),
    #[error("cannot reach the bus: {0}")]
    Unreachable(String),
    #[error("node id {0} is in use by another running node")]
    NodeIdInUse(u16),
}

/// The bus the configuration asks for: Redis with `--bus redis://...`, otherwise local.
/// A Redis bus is subscribed to this node's channel before this returns.
pub async fn connect(cfg: &Config, hub: Arc<Hub>) -> Result<Arc<dyn Bus>, ClusterError> {
    match &cfg.bus_url {
        None => Ok(Arc::new(LocalBus::new(hub))),
        Some(url) => Ok(redis::RedisBus::connect(url, cfg, hub).await?),
    }
}

// ---------------------------------------------------------------------------------------------
// What travels on a node's channel: a sequence of entries, in the order the sender handed them
// over.

const ENTRY_PUSH: u8 = 1;
const ENTRY_KICK: u8 = 2;

/// One entry of a bus message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Push this frame to every local connection of these users.
    Push { users: Vec<u64>, frame: Bytes },
    /// Close these connections.
    Kick { user: u64, scope: KickScope },
}

/// Appends a push entry: kind, user count, users, frame length, frame.
pub fn put_push(buf: &mut BytesMut, users: &[u64], frame: &Frame) {
    let bytes = frame.as_bytes();
    buf.reserve(1 + 4 + users.len() * 8 + 4 + bytes.len());
    buf.put_u8(ENTRY_PUSH);
    buf.put_u32(u32::try_from(users.len()).unwrap_or(u32::MAX));
    for u in users {
        buf.put_u64(*u);
    }
    buf.put_u32(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
    buf.put_slice(bytes);
}

/// Appends a kick entry: kind, user, scope (0 all, 1 device, 2 all but device, 3 all: the
/// account was deactivated), device.
pub fn put_kick(buf: &mut BytesMut, user: u64, scope: KickScope) {
    buf.put_u8(ENTRY_KICK);
    buf.put_u64(user);
    let (mode, device) = match scope {
        KickScope::All => (0, 0),
        KickScope::Device(d) => (1, d),
        KickScope::AllBut(d) => (2, d),
        KickScope::Disabled => (3, 0),
    };
    buf.put_u8(mode);
    buf.put_u64(device);
}

/// Splits a bus message into entries; `None` if it is malformed (the whole message is then
/// dropped: it came from a node that does not speak this format).
pub fn parse(mut msg: Bytes) -> Option<Vec<Entry>> {
    let mut out = Vec::new();
    while msg.has_remaining() {
        match msg.try_get_u8().ok()? {
            ENTRY_PUSH => {
                let n = msg.try_get_u32().ok()? as usize;
                if msg.remaining() < n.checked_mul(8)? {
                    return None;
                }
                let mut users = Vec::with_capacity(n);
                for _ in 0..n {
                    users.push(msg.try_get_u64().ok()?);
                }
                let len = msg.try_get_u32().ok()? as usize;
                if msg.remaining() < len {
                    return None;
                }
                let frame = msg.split_to(len);
                out.push(Entry::Push { users, frame });
            }
            ENTRY_KICK => {
                let user = msg.try_get_u64().ok()?;
                let mode = msg.try_get_u8().ok()?;
                let device = msg.try_get_u64().ok()?;
                let scope = match mode {
                    0 => KickScope::All,
                    1 => KickScope::Device(device),
                    2 => KickScope::AllBut(device),
                    3 => KickScope::Disabled,
                    _ => return None,
                };
                out.push(Entry::Kick { user, scope });
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Delivers a message from another node to this node's connections.
pub fn deliver(hub: &Hub, msg: Bytes, max_frame_bytes: usize) {
    let Some(entries) = parse(msg) else {
        tracing::warn!("malformed bus message dropped");
        return;
    };
    for e in entries {
        match e {
            Entry::Push { users, frame } => match Frame::from_encoded(frame, max_frame_bytes) {
                Ok(frame) => {
                    for u in users {
                        hub.push_user(u, &frame, 0);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "bad frame on the bus dropped"),
            },
            Entry::Kick { user, scope } => {
                let why = if scope == KickScope::Disabled {
                    Kick::Disabled
                } else {
                    Kick::Revoked
                };
                hub.kick_where(user, why, |c| scope.matches(c.device_id));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_wire::{Body, Envelope, pb};

    #[test]
    fn entries_round_trip_and_truncation_is_rejected() {
        let env = Envelope::push(Body::Ping(pb::Ping { nonce: 3 }));
        let frame = Frame::encode(&env, 1024).unwrap_or_else(|_| unreachable!());
        let mut buf = BytesMut::new();
        put_push(&mut buf, &[1, 2, 3], &frame);
        put_kick(&mut buf, 9, KickScope::AllBut(4));
        put_push(&mut buf, &[], &frame);
        let msg = buf.freeze();
        let entries = parse(msg.clone()).unwrap_or_default();
        assert_eq!(
            entries,
            vec![
                Entry::Push {
                    users: vec![1, 2, 3],
                    frame: frame.as_bytes().clone()
                },
                Entry::Kick {
                    user: 9,
                    scope: KickScope::AllBut(4)
                },
                Entry::Push {
                    users: vec![],
                    frame: frame.as_bytes().clone()
                },
            ]
        );
        for cut in 1..msg.len() {
            if let Some(e) = parse(msg.slice(..cut)) {
                // Only a cut exactly between entries parses, and then to a prefix.
                assert!(e.len() < 3, "cut at {cut}");
            }
        }
        assert!(parse(Bytes::from_static(&[7])).is_none());
        assert!(parse(Bytes::from_static(&[1, 0xff, 0xff, 0xff, 0xff])).is_none());
    }

    #[test]
    fn kick_scopes_pick_the_right_devices() {
        assert!(KickScope::All.matches(5));
        assert!(KickScope::Device(5).matches(5));
        assert!(!KickScope::Device(5).matches(6));
        assert!(KickScope::AllBut(5).matches(6));
        assert!(!KickScope::AllBut(5).matches(5));
    }
}
