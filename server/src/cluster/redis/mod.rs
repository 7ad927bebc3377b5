//! The Redis bus: presence as TTL'd keys, one pub/sub channel per node.
//!
//! Keys (all under `confab:`):
//!
//! - `confab:node:{id}` = this process's epoch (random per start), `EX` [`NODE_TTL`], refreshed
//!   every [`HEARTBEAT`]. While it holds our epoch, our routes count.
//! - `confab:route:{user}`: a hash, field `{device}:{node}` = `{node}:{epoch}`, written when a
//!   device connects (before its AuthOk), removed when the device's last connection on that
//!   node closes; `{node}:{epoch}:q` while the device's only connections there are quiet
//!   (`Hello.quiet`: routed to, but not online); the key expires after [`ROUTE_TTL`] unless a node holding one of the user's
//!   devices refreshes it. A route whose node key is gone, or holds another epoch, is stale:
//!   lookups ignore it and delete it. So a crashed node's users are offline (and unroutable)
//!   at most [`NODE_TTL`] after its last heartbeat; a restarted node never matches old routes.
//! - channel `confab:inbox:{id}`: subscribed before the node accepts connections; carries
//!   [`super::Entry`] sequences.
//!
//! Sending: the service hands pushes over in order (`forward`); one publisher task takes them
//! in batches, looks up every recipient's live routes in one script call, groups recipients by
//! node and publishes one message per node, so a node's pushes reach another node in the order
//! they were made. Failures: a publish that fails is retried (duplicates are harmless: clients
//! drop by seq); a subscription that breaks is re-established and every local connection gets
//! a `ResyncPush`; a heartbeat that finds our node key missing (Redis restarted, or we stalled
//! past the TTL) writes every local route again and resyncs the local connections too.

mod tasks;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use confab_wire::{Body, Envelope, Frame, pb};
use futures::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{Bus, ClusterError, KickScope};
use crate::config::Config;
use crate::hub::Hub;

/// Lifetime of a node key without a heartbeat: the longest a dead node's users stay online.
pub const NODE_TTL: Duration = Duration::from_secs(10);
/// How often a node refreshes its key.
pub const HEARTBEAT: Duration = Duration::from_secs(3);
/// Lifetime of a user's route hash without a refresh (only garbage collection: liveness comes
/// from the node key).
pub const ROUTE_TTL: Duration = Duration::from_secs(60);
/// How often a node refreshes the route hashes of its users.
const ROUTE_REFRESH: Duration = Duration::from_secs(20);
/// Time allowed for one Redis command before the connection is treated as broken.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a batch of publishes is retried before it is dropped.
const PUBLISH_RETRY_FOR: Duration = Duration::from_secs(5);
/// The oldest a push may be when it is published to another node. One held longer (Redis
/// paused or unreachable) is dropped and the cluster resyncs instead: delivered late it would
/// arrive behind newer pushes of its thread, and the resync covers it anyway.
pub const PUSH_MAX_AGE: Duration = Duration::from_secs(1);
/// How long start-up waits for Redis.
const CONNECT_FOR: Duration = Duration::from_secs(30);
/// How often an idle publisher checks whether it owes the cluster a resync.
const RESYNC_CHECK: Duration = Duration::from_millis(500);
/// Pushes published per round trip at most.
const BATCH: usize = 256;

/// Live nodes of each route key given in KEYS; deletes the stale fields it finds.
const LOOKUP: &str = r"
local out = {}
for i, key in ipairs(KEYS) do
  local live = {}
  local h = redis.call('HGETALL', key)
  for j = 1, #h, 2 do
    local node, epoch, quiet = string.match(h[j + 1], '^(%d+):(%d+)(:?q?)$')
    if node and redis.call('GET', 'confab:node:' .. node) == epoch then
      -- A quiet route comes back as node + 65536 (see Live).
      live[#live + 1] = tonumber(node) + (quiet == ':q' and 65536 or 0)
    else
      redis.call('HDEL', key, h[j])
    end
  end
  out[i] = live
end
return out
";

/// Deletes our node key only if it still holds our epoch.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

fn node_key(node: u16) -> String {
    format!("confab:node:{node}")
}

fn route_key(user: u64) -> String {
    format!("confab:route:{user}")
}

/// The users with a connection on one node process (for whoever reaps it if it dies).
fn users_key(node: u16, epoch: &str) -> String {
    format!("confab:users:{node}:{epoch}")
}

/// Every node id that has joined (to notice which ones died).
const NODES: &str = "confab:nodes";

/// A user's live routes, as the lookup script returns them.
#[derive(Debug, Default, PartialEq)]
struct Live {
    /// Every node with a connection of the user (where pushes and kicks go).
    nodes: Vec<u16>,
    /// The nodes with a connection that counts for presence (not quiet).
    present: Vec<u16>,
}

impl Live {
    /// The script returns a node as its id, plus 65536 when the route is quiet only.
    fn decode(routes: &[u32]) -> Self {
        let mut live = Live::default();
        for r in routes {
            let node = (r & 0xffff) as u16;
            live.nodes.push(node);
            if r >> 16 == 0 {
                live.present.push(node);
            }
        }
        live
    }
}

fn inbox(node: u16) -> String {
    format!("confab:inbox:{node}")
}

/// The channel every node subscribes to for membership changes (member cache invalidation).
const MEMBERS: &str = "confab:members";

/// The channel every node subscribes to for "pushes were dropped": a node whose publish queue
/// overflowed, or whose publishes failed past their retries, says so here once Redis takes
/// publishes again, and every node tells its clients to resync. Their gap rule alone would not
/// notice a lost push that no later push follows.
const RESYNC: &str = "confab:resync";

enum Out {
    /// `at`: when the service handed the push over (see [`PUSH_MAX_AGE`]).
    Push {
        users: Vec<u64>,
        frame: Frame,
        at: std::time::Instant,
    },
    Kick {
        user: u64,
        scope: KickScope,
    },
    Members(Vec<u64>),
}

/// A cluster member on Redis.
pub struct RedisBus {
    node: u16,
    epoch: String,
    hub: Arc<Hub>,
    conn: ConnectionManager,
    queue: mpsc::Sender<Out>,
    lookup: redis::Script,
    resync: Option<Frame>,
    stop: CancellationToken,
    on_members: std::sync::OnceLock<super::MembersChanged>,
    /// A route could not be written: the heartbeat re-registers everything (and resyncs).
    dirty: std::sync::atomic::AtomicBool,
    /// Routes that could not be removed, retried by the heartbeat.
    undeleted: std::sync::Mutex<Vec<(u64, u64)>>,
    on_lost: std::sync::OnceLock<super::UsersLost>,
    /// Pushes handed over and not yet published (or dropped).
    pending: std::sync::atomic::AtomicUsize,
    /// Pushes were dropped since the last announcement on [`RESYNC`].
    lost: std::sync::atomic::AtomicBool,
    /// The subscriber holds a live subscription (`/readyz`).
    subscribed: std::sync::atomic::AtomicBool,
}

impl RedisBus {
    /// Claims the node id, subscribes to the node's channel, and starts the heartbeat and the
    /// publisher. Retries an unreachable Redis for a while, as the MySQL store does.
    pub async fn connect(
        url: &str,
        cfg: &Config,
        hub: Arc<Hub>,
    ) -> Result<Arc<RedisBus>, ClusterError> {
        let client = redis::Client::open(url).map_err(|e| ClusterError::Url(e.to_string()))?;
        let mcfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let deadline = tokio::time::Instant::now() + CONNECT_FOR;
        let mut wait = Duration::from_millis(200);
        let conn = loop {
            match ConnectionManager::new_with_config(client.clone(), mcfg.clone()).await {
                Ok(c) => break c,
                Err(e) if tokio::time::Instant::now() + wait < deadline => {
                    warn!(error = %e, "bus: Redis not reachable yet; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(3));
                }
                Err(e) => return Err(ClusterError::Unreachable(e.to_string())),
            }
        };
        let node = cfg.node_id;
        let epoch = rand::random::<u64>().to_string();
        let mut bus = RedisBus {
            node,
            epoch,
            hub,
            conn,
            queue: mpsc::channel(1).0,
            lookup: redis::Script::new(LOOKUP),
            resync: Frame::encode(
                &Envelope::push(Body::ResyncPush(pb::ResyncPush {
                    thread_ids: Vec::new(),
                    reason: "cluster bus interrupted".into(),
                })),
                cfg.max_frame_bytes as usize,
            )
            .ok(),
            stop: CancellationToken::new(),
            on_members: std::sync::OnceLock::new(),
            dirty: std::sync::atomic::AtomicBool::new(false),
            undeleted: std::sync::Mutex::new(Vec::new()),
            on_lost: std::sync::OnceLock::new(),
            pending: std::sync::atomic::AtomicUsize::new(0),
            lost: std::sync::atomic::AtomicBool::new(false),
            subscribed: std::sync::atomic::AtomicBool::new(false),
        };
        bus.claim_node_id().await?;
        let (tx, rx) = mpsc::channel(cfg.bus_queue.max(1));
        bus.queue = tx;
        let bus = Arc::new(bus);
        let (ready_tx, ready_rx) = oneshot::channel();
        tokio::spawn(RedisBus::subscriber(
            client,
            Arc::downgrade(&bus),
            bus.stop.clone(),
            cfg.max_frame_bytes as usize,
            ready_tx,
        ));
        // The channel is live before the node accepts anyone: nothing routed here is missed.
        if tokio::time::timeout(CONNECT_FOR, ready_rx).await.is_err() {
            bus.stop.cancel();
            return Err(ClusterError::Unreachable(
                "could not subscribe to the node channel".into(),
            ));
        }
        tokio::spawn(RedisBus::publisher(Arc::downgrade(&bus), rx));
        tokio::spawn(RedisBus::heartbeat(Arc::downgrade(&bus)));
        info!(node, epoch = %bus.epoch, "joined the cluster");
        Ok(bus)
    }

    /// Sets our node key if nobody holds it; waits out a key left by a previous process with
    /// this id (it expires within the TTL), refuses if it is still refreshed after that.
    async fn claim_node_id(&self) -> Result<(), ClusterError> {
        let deadline = tokio::time::Instant::now() + NODE_TTL + HEARTBEAT;
        let mut logged = false;
        loop {
            let set: Option<String> = redis::cmd("SET")
                .arg(node_key(self.node))
                .arg(&self.epoch)
                .arg("NX")
                .arg("EX")
                .arg(NODE_TTL.as_secs())
                .query_async(&mut self.conn.clone())
                .await
                .map_err(|e| ClusterError::Unreachable(e.to_string()))?;
            if set.is_some() {
                let _: redis::RedisResult<()> = redis::cmd("SADD")
                    .arg(NODES)
                    .arg(self.node)
                    .query_async(&mut self.conn.clone())
                    .await;
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(ClusterError::NodeIdInUse(self.node));
            }
            if !logged {
                warn!(
                    node = self.node,
                    "node key held (a previous run, or another node with this id); waiting for it to expire"
                );
                logged = true;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    fn route_field(&self, device: u64, quiet: bool) -> (String, String) {
        (
            format!("{device}:{}", self.node),
            format!(
                "{}:{}{}",
                self.node,
                self.epoch,
                if quiet { ":q" } else { "" }
            ),
        )
    }

    /// Writes routes to this node for `(user, device, quiet only)`.
    async fn set_routes(&self, devices: &[(u64, u64, bool)]) -> redis::RedisResult<()> {
        if devices.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        let users = users_key(self.node, &self.epoch);
        for (user, device, quiet) in devices {
            let (field, value) = self.route_field(*device, *quiet);
            pipe.hset(route_key(*user), field, value).ignore();
            pipe.expire(route_key(*user), ROUTE_TTL.as_secs() as i64)
                .ignore();
            // Only users who count as online need an offline announcement if we die.
            if !quiet {
                pipe.sadd(&users, *user).ignore();
            }
        }
        pipe.expire(&users, ROUTE_TTL.as_secs() as i64).ignore();
        pipe.query_async::<()>(&mut self.conn.clone()).await
    }

    async fn del_route(&self, user: u64, device: u64) -> redis::RedisResult<()> {
        let (field, _) = self.route_field(device, false);
        redis::cmd("HDEL")
            .arg(route_key(user))
            .arg(field)
            .query_async::<()>(&mut self.conn.clone())
            .await
    }

    /// The live routes of each user (same order as `users`).
    async fn live_nodes(&self, users: &[u64]) -> redis::RedisResult<Vec<Live>> {
        let mut out = Vec::with_capacity(users.len());
        // Chunks keep one script call short (it blocks Redis while it runs).
        for chunk in users.chunks(512) {
            let mut inv = self.lookup.prepare_invoke();
            for u in chunk {
                inv.key(route_key(*u));
            }
            let part: Vec<Vec<u32>> = inv.invoke_async(&mut self.conn.clone()).await?;
            if part.len() != chunk.len() {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::UnexpectedReturnType,
                    "route lookup returned the wrong number of entries",
                )));
            }
            out.extend(part.iter().map(|routes| Live::decode(routes)));
        }
        Ok(out)
    }

    /// Re-registers every local route and tells every local connection to resync: pushes
    /// meant for them may have been dropped.
    async fn recover(&self, why: &str) {
        let devices = self.hub.devices();
        warn!(
            why,
            connections = devices.len(),
            "bus: resyncing local clients"
        );
        // Routes count only while the node key holds our epoch (it is gone after a restart).
        // The first command after an outage may fail while the connection is re-established.
        for attempt in 1..=5 {
            let key: redis::RedisResult<()> = redis::cmd("SET")
                .arg(node_key(self.node))
                .arg(&self.epoch)
                .arg("EX")
                .arg(NODE_TTL.as_secs())
                .query_async(&mut self.conn.clone())
                .await;
            let listed: redis::RedisResult<()> = redis::cmd("SADD")
                .arg(NODES)
                .arg(self.node)
                .query_async(&mut self.conn.clone())
                .await;
            match key.and(listed).and(self.set_routes(&devices).await) {
                Ok(()) => break,
                Err(e) if attempt == 5 => {
                    warn!(error = %e, "bus: cannot re-register (the heartbeat tries again)");
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100 * attempt)).await,
            }
        }
        // A device that left while the routes were written must not stay routed here.
        for (user, device, _) in devices {
            if !self.hub.has_device(user, device) {
                let _ = self.del_route(user, device).await;
            }
        }
        // Membership changes published meanwhile may be lost too.
        self.members_invalid(None);
        crate::metrics::resync_local("recovery");
        if let Some(f) = &self.resync {
            self.hub.push_all(f);
        }
        // Clients of nodes that recovered before us may have asked for presence while our
        // routes were missing, and been told our users are offline: announce on RESYNC so
        // every node resyncs its clients again, now that our routes are back.
        self.lost.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Tells every local connection to resync (another node dropped pushes).
    fn resync_local(&self) {
        crate::metrics::resync_local("announcement");
        if let Some(f) = &self.resync {
            self.hub.push_all(f);
        }
    }

    fn members_invalid(&self, threads: Option<&[u64]>) {
        if let Some(f) = self.on_members.get() {
            f(threads);
        }
    }

    fn enqueue(&self, out: Out) {
        use std::sync::atomic::Ordering;
        self.pending.fetch_add(1, Ordering::AcqRel);
        if let Err(e) = self.queue.try_send(out) {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            if matches!(e, mpsc::error::TrySendError::Full(_)) {
                self.lost.store(true, Ordering::Release);
                crate::metrics::push_dropped("bus_queue_full", 1);
                warn!("bus: publish queue full; push dropped (the cluster will resync)");
            }
        }
    }

    /// Waits (up to `max`) until nothing has been waiting to be published for `quiet`: the
    /// goodbyes of a node shutting down (presence of its last users) go out before it leaves.
    async fn drain(&self, quiet: Duration, max: Duration) {
        let until = tokio::time::Instant::now() + max;
        let mut idle_since = tokio::time::Instant::now();
        while tokio::time::Instant::now() < until {
            if self.pending.load(std::sync::atomic::Ordering::Acquire) > 0 {
                idle_since = tokio::time::Instant::now();
            } else if idle_since.elapsed() >= quiet {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Bus for RedisBus {
    fn forward(&self, users: &[u64], frame: &Frame) {
        if users.is_empty() {
            return;
        }
        self.enqueue(Out::Push {
            users: users.to_vec(),
            frame: frame.clone(),
            at: std::time::Instant::now(),
        });
    }

    fn kick(&self, user: u64, scope: KickScope) {
        self.enqueue(Out::Kick { user, scope });
    }

    fn members_changed(&self, threads: &[u64]) {
        if !threads.is_empty() {
            self.enqueue(Out::Members(threads.to_vec()));
        }
    }

    fn on_members_changed(&self, f: super::MembersChanged) {
        let _ = self.on_members.set(f);
    }

    fn on_users_lost(&self, f: super::UsersLost) {
        let _ = self.on_lost.set(f);
    }

    fn online<'a>(&'a self, users: &'a [u64]) -> BoxFuture<'a, HashSet<u64>> {
        Box::pin(async move {
            let mut set: HashSet<u64> = HashSet::new();
            let remote: Vec<u64> = users
                .iter()
                .copied()
                .filter(|u| {
                    if self.hub.is_online(*u) {
                        set.insert(*u);
                        false
                    } else {
                        true
                    }
                })
                .collect();
            if remote.is_empty() {
                return set;
            }
            match self.live_nodes(&remote).await {
                Ok(nodes) => {
                    for (u, n) in remote.iter().zip(nodes) {
                        // Our own routes count only through the hub (checked above).
                        if n.present.iter().any(|n| *n != self.node) {
                            set.insert(*u);
                        }
                    }
                }
                Err(e) => warn!(error = %e, "bus: presence lookup failed; showing offline"),
            }
            set
        })
    }

    fn attached(&self, user: u64, device: u64) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let Some(quiet) = self.hub.device_quiet(user, device) else {
                return; // closed already; its detach removes the route
            };
            if let Err(e) = self.set_routes(&[(user, device, quiet)]).await {
                // The heartbeat re-registers everything once Redis answers again.
                warn!(error = %e, "bus: cannot register a route");
                self.dirty.store(true, std::sync::atomic::Ordering::Release);
            }
        })
    }

    fn detached(&self, user: u64, device: u64) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            match self.hub.device_quiet(user, device) {
                // Only quiet connections of the device are left here: still routed, not online.
                Some(true) => {
                    if self.set_routes(&[(user, device, true)]).await.is_err() {
                        self.dirty.store(true, std::sync::atomic::Ordering::Release);
                    }
                    return;
                }
                Some(false) => return,
                None => {}
            }
            if let Err(e) = self.del_route(user, device).await {
                debug!(error = %e, "bus: cannot remove a route; retrying later");
                if let Ok(mut u) = self.undeleted.lock() {
                    u.push((user, device));
                }
                return;
            }
            // The device may have connected again while the route was being removed.
            if let Some(quiet) = self.hub.device_quiet(user, device) {
                let _ = self.set_routes(&[(user, device, quiet)]).await;
            } else if !self.hub.is_online(user) {
                let _: redis::RedisResult<()> = redis::cmd("SREM")
                    .arg(users_key(self.node, &self.epoch))
                    .arg(user)
                    .query_async(&mut self.conn.clone())
                    .await;
            }
        })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.drain(Duration::from_millis(300), Duration::from_secs(3))
                .await;
            self.stop.cancel();
            let res: redis::RedisResult<i64> = redis::Script::new(RELEASE)
                .key(node_key(self.node))
                .arg(&self.epoch)
                .invoke_async(&mut self.conn.clone())
                .await;
            match res {
                Ok(_) => info!(node = self.node, "left the cluster"),
                Err(e) => warn!(error = %e, "bus: cannot remove the node key (it expires)"),
            }
        })
    }

    fn clustered(&self) -> bool {
        true
    }

    fn ready(&self) -> Result<(), &'static str> {
        match self.subscribed.load(std::sync::atomic::Ordering::Acquire) {
            true => Ok(()),
            false => Err("not subscribed to Redis (reconnecting)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Live;

    #[test]
    fn live_routes_route_to_quiet_nodes_but_do_not_count_them_present() {
        let live = Live::decode(&[3, 65536 + 4, 5]);
        assert_eq!(live.nodes, vec![3, 4, 5]);
        assert_eq!(live.present, vec![3, 5]);
        assert_eq!(Live::decode(&[]), Live::default());
    }
}
