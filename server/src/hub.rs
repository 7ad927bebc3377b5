//! Who is online on this node: user -> connected devices, each with a bounded outbound queue.
//!
//! Delivery never waits: a push is `try_send` into the connection's queue, and a connection
//! whose queue is full is told to close as a slow consumer (it re-syncs from its cursors after
//! reconnecting, so nothing is lost). Locks are std mutexes held only for map updates and
//! `try_send`s, never across an `.await`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use confab_wire::Frame;
use tokio::sync::{Notify, mpsc};

const SHARDS: usize = 64;

/// Why the hub asks a connection to close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kick {
    None = 0,
    SlowConsumer = 1,
    Revoked = 2,
    /// An admin deactivated the account.
    Disabled = 3,
}

/// Shared between a connection task and the hub: a way to ask the connection to close.
#[derive(Debug, Default)]
pub struct ConnCtl {
    reason: AtomicU8,
    notify: Notify,
}

impl ConnCtl {
    /// Asks the connection to close; the first reason wins.
    pub fn kick(&self, why: Kick) {
        if self
            .reason
            .compare_exchange(0, why as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.notify.notify_one();
        }
    }

    pub fn reason(&self) -> Kick {
        match self.reason.load(Ordering::Acquire) {
            1 => Kick::SlowConsumer,
            2 => Kick::Revoked,
            3 => Kick::Disabled,
            _ => Kick::None,
        }
    }

    /// Resolves once `kick` has been called.
    pub async fn kicked(&self) {
        loop {
            if self.reason() != Kick::None {
                return;
            }
            self.notify.notified().await;
        }
    }
}

/// A connected, authenticated device as the hub sees it.
#[derive(Debug, Clone)]
pub struct ConnHandle {
    pub conn_id: u64,
    pub user_id: u64,
    pub device_id: u64,
    pub tx: mpsc::Sender<Frame>,
    pub ctl: Arc<ConnCtl>,
    /// Said `Hello.quiet`: a short command's connection. It gets pushes and kicks like any
    /// other, but does not make its user online (PROTOCOL.md §5.7).
    pub quiet: bool,
}

impl ConnHandle {
    fn push(&self, frame: &Frame) {
        match self.tx.try_send(frame.clone()) {
            Ok(()) => crate::metrics::push_queued(),
            Err(mpsc::error::TrySendError::Full(_)) => {
                crate::metrics::push_dropped("slow_consumer", 1);
                self.ctl.kick(Kick::SlowConsumer);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// Result of registering a connection.
#[derive(Debug, Default)]
pub struct Registered {
    /// This is the user's first connection on this node.
    pub first: bool,
}

/// Online connections by user.
pub struct Hub {
    shards: Vec<Mutex<HashMap<u64, Vec<ConnHandle>>>>,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl Hub {
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, user: u64) -> MutexGuard<'_, HashMap<u64, Vec<ConnHandle>>> {
        let m = &self.shards[(user as usize) % SHARDS];
        // A panic while holding the lock leaves the map consistent (single inserts/removes).
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a connection. A device session may have several (a CLI watcher and a sender
    /// sharing one login); each gets every push.
    /// `first`: the user had no connection here that counts for presence, and this one does.
    pub fn register(&self, handle: ConnHandle) -> Registered {
        let mut map = self.shard(handle.user_id);
        let conns = map.entry(handle.user_id).or_default();
        let first = !handle.quiet && conns.iter().all(|c| c.quiet);
        conns.push(handle);
        Registered { first }
    }

    /// Removes a connection; returns true when it was the user's last one on this node that
    /// counts for presence.
    pub fn unregister(&self, user: u64, conn_id: u64) -> bool {
        let mut map = self.shard(user);
        let Some(conns) = map.get_mut(&user) else {
            return false;
        };
        let Some(at) = conns.iter().position(|c| c.conn_id == conn_id) else {
            return false;
        };
        let gone = conns.swap_remove(at);
        let last = !gone.quiet && conns.iter().all(|c| c.quiet);
        if conns.is_empty() {
            map.remove(&user);
        }
        last
    }

    /// Pushes a frame to every connection of `user`, except `skip_conn`.
    pub fn push_user(&self, user: u64, frame: &Frame, skip_conn: u64) {
        let map = self.shard(user);
        if let Some(conns) = map.get(&user) {
            for c in conns.iter().filter(|c| c.conn_id != skip_conn) {
                c.push(frame);
            }
        }
    }

    /// Whether `user` has a connection here other than `skip_conn`.
    pub fn has_other_conn(&self, user: u64, skip_conn: u64) -> bool {
        self.shard(user)
            .get(&user)
            .is_some_and(|conns| conns.iter().any(|c| c.conn_id != skip_conn))
    }

    /// Closes the connections of `user` that `select` picks.
    pub fn kick_where(&self, user: u64, why: Kick, select: impl Fn(&ConnHandle) -> bool) {
        let map = self.shard(user);
        if let Some(conns) = map.get(&user) {
            for c in conns.iter().filter(|c| select(c)) {
                c.ctl.kick(why);
            }
        }
    }

    /// Whether `device` of `user` has a connection on this node (cluster route bookkeeping).
    pub fn has_device(&self, user: u64, device: u64) -> bool {
        self.device_quiet(user, device).is_some()
    }

    /// How `device` of `user` is connected here: `None` not at all, `Some(true)` by quiet
    /// connections only, `Some(false)` by at least one that counts for presence.
    pub fn device_quiet(&self, user: u64, device: u64) -> Option<bool> {
        let map = self.shard(user);
        let mut on = map.get(&user)?.iter().filter(|c| c.device_id == device);
        let first = on.next()?;
        Some(first.quiet && on.all(|c| c.quiet))
    }

    /// Every connected device, once each, as `(user, device, quiet only)` (to re-register
    /// cluster routes).
    pub fn devices(&self) -> Vec<(u64, u64, bool)> {
        let mut out: Vec<(u64, u64, bool)> = Vec::new();
        for s in &self.shards {
            let map = s.lock().unwrap_or_else(|p| p.into_inner());
            for (user, conns) in map.iter() {
                let start = out.len();
                for c in conns {
                    match out[start..].iter_mut().find(|d| d.1 == c.device_id) {
                        Some(d) => d.2 &= c.quiet,
                        None => out.push((*user, c.device_id, c.quiet)),
                    }
                }
            }
        }
        out
    }

    /// Pushes a frame to every connection on this node (a cluster resync).
    pub fn push_all(&self, frame: &Frame) {
        for s in &self.shards {
            let map = s.lock().unwrap_or_else(|p| p.into_inner());
            for c in map.values().flatten() {
                c.push(frame);
            }
        }
    }

    /// Whether `user` has a connection here that counts for presence (not quiet).
    pub fn is_online(&self, user: u64) -> bool {
        self.shard(user)
            .get(&user)
            .is_some_and(|conns| conns.iter().any(|c| !c.quiet))
    }

    /// Number of connected devices (for logs and tests).
    pub fn connections(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .map_or(0, |m| m.values().map(Vec::len).sum::<usize>())
            })
            .sum()
    }

    /// Number of users with a connection here that counts for presence.
    pub fn online_users(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock().map_or(0, |m| {
                    m.values()
                        .filter(|conns| conns.iter().any(|c| !c.quiet))
                        .count()
                })
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(hub: &Hub, conn_id: u64, device_id: u64, quiet: bool) -> Registered {
        let (tx, _rx) = mpsc::channel(1);
        hub.register(ConnHandle {
            conn_id,
            user_id: 7,
            device_id,
            tx,
            ctl: Arc::new(ConnCtl::default()),
            quiet,
        })
    }

    #[test]
    fn quiet_connections_do_not_make_their_user_online() {
        let hub = Hub::new();
        assert!(!conn(&hub, 1, 10, true).first);
        assert!(!hub.is_online(7));
        assert_eq!(hub.device_quiet(7, 10), Some(true));
        assert!(
            conn(&hub, 2, 10, false).first,
            "the first counted connection"
        );
        assert!(hub.is_online(7));
        assert_eq!(hub.device_quiet(7, 10), Some(false));
        assert!(!conn(&hub, 3, 11, false).first);
        assert!(!hub.unregister(7, 2), "device 11 still counts");
        assert!(hub.unregister(7, 3), "the last counted connection");
        assert!(!hub.is_online(7));
        assert!(hub.has_device(7, 10), "the quiet one is still routed to");
        assert_eq!(hub.devices(), vec![(7, 10, true)]);
        assert!(
            !hub.unregister(7, 1),
            "a quiet one is never the last online"
        );
        assert_eq!(hub.device_quiet(7, 10), None);
        assert!(!hub.unregister(7, 1), "unknown connection");
    }

    #[test]
    fn devices_lists_each_device_once_and_quiet_only_when_all_are() {
        let hub = Hub::new();
        conn(&hub, 1, 10, true);
        conn(&hub, 2, 10, false);
        conn(&hub, 3, 11, true);
        conn(&hub, 4, 11, true);
        let mut d = hub.devices();
        d.sort_unstable();
        assert_eq!(d, vec![(7, 10, false), (7, 11, true)]);
    }
}
