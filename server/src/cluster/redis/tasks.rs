//! The bus's background tasks: the heartbeat (node key, routes, reaping dead nodes), the
//! subscriber (this node's inbox and the shared channels) and the publisher (batched, retried).

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::*;

impl RedisBus {
    /// Keeps the node key alive; notices when it was lost.
    pub(super) async fn heartbeat(bus: std::sync::Weak<RedisBus>) {
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_route_refresh = tokio::time::Instant::now();
        let mut others: HashMap<u16, String> = HashMap::new();
        loop {
            tick.tick().await;
            let Some(bus) = bus.upgrade() else { return };
            if bus.stop.is_cancelled() {
                return;
            }
            let prev: redis::RedisResult<Option<String>> = redis::cmd("SET")
                .arg(node_key(bus.node))
                .arg(&bus.epoch)
                .arg("EX")
                .arg(NODE_TTL.as_secs())
                .arg("GET")
                .query_async(&mut bus.conn.clone())
                .await;
            match prev {
                Ok(Some(e)) if e == bus.epoch => {}
                Ok(Some(other)) => {
                    error!(node = bus.node, other_epoch = %other, "another process uses this node id");
                    bus.recover("node key was taken over").await;
                }
                Ok(None) => bus.recover("node key was missing").await,
                Err(e) => {
                    warn!(error = %e, "bus: heartbeat failed");
                    continue;
                }
            }
            if bus.dirty.swap(false, std::sync::atomic::Ordering::AcqRel) {
                bus.recover("a route could not be written").await;
            }
            let retry = bus
                .undeleted
                .lock()
                .map(|mut u| std::mem::take(&mut *u))
                .unwrap_or_default();
            for (user, device) in retry {
                if !bus.hub.has_device(user, device)
                    && bus.del_route(user, device).await.is_err()
                    && let Ok(mut u) = bus.undeleted.lock()
                {
                    u.push((user, device));
                }
            }
            if last_route_refresh.elapsed() >= ROUTE_REFRESH {
                last_route_refresh = tokio::time::Instant::now();
                let mut users: Vec<u64> =
                    bus.hub.devices().into_iter().map(|(u, _, _)| u).collect();
                users.dedup();
                let mut pipe = redis::pipe();
                for u in &users {
                    pipe.expire(route_key(*u), ROUTE_TTL.as_secs() as i64)
                        .ignore();
                }
                pipe.expire(users_key(bus.node, &bus.epoch), ROUTE_TTL.as_secs() as i64)
                    .ignore();
                if !users.is_empty()
                    && let Err(e) = pipe.query_async::<()>(&mut bus.conn.clone()).await
                {
                    warn!(error = %e, "bus: route refresh failed");
                }
            }
            if let Err(e) = Self::reap(&bus, &mut others).await {
                debug!(error = %e, "bus: cannot check the other nodes");
            }
        }
    }

    /// Notices other nodes whose key lapsed (or changed epoch) since the last heartbeat. One
    /// surviving node claims each dead process and reports its users who are now online nowhere,
    /// so their friends hear that they went offline.
    pub(super) async fn reap(
        bus: &RedisBus,
        seen: &mut HashMap<u16, String>,
    ) -> redis::RedisResult<()> {
        let mut conn = bus.conn.clone();
        let ids: Vec<u16> = redis::cmd("SMEMBERS")
            .arg(NODES)
            .query_async(&mut conn)
            .await?;
        let ids: Vec<u16> = ids.into_iter().filter(|n| *n != bus.node).collect();
        if ids.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = ids.iter().map(|n| node_key(*n)).collect();
        let epochs: Vec<Option<String>> =
            redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
        for (id, now) in ids.into_iter().zip(epochs) {
            let before = match now {
                Some(e) => seen.insert(id, e.clone()).filter(|old| *old != e),
                None => seen.remove(&id),
            };
            let Some(dead) = before else { continue };
            let claim: Option<String> = redis::cmd("SET")
                .arg(format!("confab:reaped:{id}:{dead}"))
                .arg(bus.node)
                .arg("NX")
                .arg("EX")
                .arg(ROUTE_TTL.as_secs() * 2)
                .query_async(&mut conn)
                .await?;
            if claim.is_none() {
                continue;
            }
            let key = users_key(id, &dead);
            let users: Vec<u64> = redis::cmd("SMEMBERS")
                .arg(&key)
                .query_async(&mut conn)
                .await?;
            let _: () = redis::cmd("DEL").arg(&key).query_async(&mut conn).await?;
            let mut gone = Vec::new();
            for (u, live) in users.iter().zip(bus.live_nodes(&users).await?) {
                if live.present.is_empty() && !bus.hub.is_online(*u) {
                    gone.push(*u);
                }
            }
            info!(
                node = id,
                users = users.len(),
                offline = gone.len(),
                "bus: a node died"
            );
            if let (Some(f), false) = (bus.on_lost.get(), gone.is_empty()) {
                f(gone);
            }
        }
        Ok(())
    }

    /// Holds the node's subscription; re-establishes it when it breaks, then resyncs the clients.
    pub(super) async fn subscriber(
        client: redis::Client,
        bus: std::sync::Weak<RedisBus>,
        stop: CancellationToken,
        max_frame: usize,
        ready: oneshot::Sender<()>,
    ) {
        let mut ready = Some(ready);
        let mut wait = Duration::from_millis(100);
        let mut node = None;
        loop {
            let Some(b) = bus.upgrade() else { return };
            let (channel, hub) = (inbox(b.node), b.hub.clone());
            let members_bus = bus.clone();
            node.get_or_insert(b.node);
            drop(b);
            let sub = tokio::select! {
                _ = stop.cancelled() => return,
                s = tokio::time::timeout(COMMAND_TIMEOUT * 2, async {
                    let mut ps = client.get_async_pubsub().await?;
                    ps.subscribe(&[channel.as_str(), MEMBERS, RESYNC]).await?;
                    Ok::<_, redis::RedisError>(ps)
                }) => s,
            };
            let ps = match sub {
                Ok(Ok(ps)) => ps,
                Ok(Err(e)) => {
                    warn!(error = %e, "bus: cannot subscribe; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(2));
                    continue;
                }
                Err(_) => {
                    warn!("bus: subscribing timed out; retrying");
                    continue;
                }
            };
            wait = Duration::from_millis(100);
            if let Some(b) = bus.upgrade() {
                b.subscribed
                    .store(true, std::sync::atomic::Ordering::Release);
            }
            match ready.take() {
                Some(tx) => {
                    let _ = tx.send(());
                }
                None => {
                    info!(channel, "bus: subscribed again");
                    let Some(b) = bus.upgrade() else { return };
                    b.recover("subscription was interrupted").await;
                }
            }
            let (mut sink, mut stream) = ps.split();
            let mut ping = tokio::time::interval(HEARTBEAT);
            ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    m = stream.next() => match m {
                        Some(m) if m.get_channel_name() == RESYNC => {
                            if let Some(b) = members_bus.upgrade() {
                                b.resync_local();
                            }
                        }
                        Some(m) if m.get_channel_name() == MEMBERS => {
                            let threads: Vec<u64> = m
                                .get_payload_bytes()
                                .chunks_exact(8)
                                .map(|c| u64::from_be_bytes(c.try_into().unwrap_or_default()))
                                .collect();
                            if let Some(b) = members_bus.upgrade() {
                                b.members_invalid(Some(&threads));
                            }
                        }
                        Some(m) => crate::cluster::deliver(&hub, Bytes::copy_from_slice(m.get_payload_bytes()), max_frame),
                        None => break,
                    },
                    _ = ping.tick() => {
                        // A link that died without a reset shows up as an unanswered ping.
                        let pong = tokio::time::timeout(COMMAND_TIMEOUT, sink.ping::<redis::Value>()).await;
                        if !matches!(pong, Ok(Ok(_))) {
                            break;
                        }
                    }
                }
            }
            warn!(channel, "bus: subscription lost");
            if let Some(b) = bus.upgrade() {
                b.subscribed
                    .store(false, std::sync::atomic::Ordering::Release);
            }
        }
    }

    /// Publishes queued pushes in order: one route lookup and one message per target node for
    /// each batch.
    pub(super) async fn publisher(bus: std::sync::Weak<RedisBus>, mut rx: mpsc::Receiver<Out>) {
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            batch.clear();
            // Wakes when idle too, so a node owing a resync announces it without waiting for
            // more traffic.
            let got =
                match tokio::time::timeout(RESYNC_CHECK, rx.recv_many(&mut batch, BATCH)).await {
                    Ok(0) => return,
                    Ok(n) => n,
                    Err(_) => 0,
                };
            let Some(bus) = bus.upgrade() else { return };
            if got > 0 {
                crate::metrics::bus_queue(bus.pending.load(std::sync::atomic::Ordering::Relaxed));
                let started = crate::metrics::timer();
                let deadline = tokio::time::Instant::now() + PUBLISH_RETRY_FOR;
                let mut wait = Duration::from_millis(50);
                loop {
                    match Self::publish_batch(&bus, &batch).await {
                        Ok(()) => {
                            crate::metrics::observe(crate::metrics::BUS_PUBLISH, started);
                            break;
                        }
                        Err(e)
                            if tokio::time::Instant::now() + wait < deadline
                                && !bus.stop.is_cancelled() =>
                        {
                            debug!(error = %e, "bus: publish failed; retrying");
                            tokio::time::sleep(wait).await;
                            wait = (wait * 2).min(Duration::from_secs(1));
                        }
                        Err(e) => {
                            bus.lost.store(true, std::sync::atomic::Ordering::Release);
                            crate::metrics::push_dropped("bus_publish_failed", batch.len());
                            warn!(error = %e, pushes = batch.len(), "bus: publish failed; pushes dropped (the cluster will resync)");
                            break;
                        }
                    }
                }
                bus.pending
                    .fetch_sub(got, std::sync::atomic::Ordering::AcqRel);
            }
            if bus.lost.swap(false, std::sync::atomic::Ordering::AcqRel) {
                let sent: redis::RedisResult<()> = redis::cmd("PUBLISH")
                    .arg(RESYNC)
                    .arg(bus.node)
                    .query_async(&mut bus.conn.clone())
                    .await;
                match sent {
                    Ok(()) => {
                        crate::metrics::resync_announced();
                        warn!("bus: pushes were dropped; every node resyncs its clients");
                    }
                    // Still failing: try again on the next round.
                    Err(_) => bus.lost.store(true, std::sync::atomic::Ordering::Release),
                }
            }
        }
    }

    pub(super) async fn publish_batch(bus: &RedisBus, batch: &[Out]) -> redis::RedisResult<()> {
        let mut users: Vec<u64> = batch
            .iter()
            .flat_map(|o| match o {
                Out::Push { users, .. } => users.clone(),
                Out::Kick { user, .. } => vec![*user],
                Out::Members(_) => Vec::new(),
            })
            .collect();
        users.sort_unstable();
        users.dedup();
        let nodes = bus.live_nodes(&users).await?;
        let routes: HashMap<u64, Vec<u16>> = users
            .into_iter()
            .zip(nodes)
            .map(|(u, live)| {
                let mut n = live.nodes;
                n.retain(|n| *n != bus.node);
                n.sort_unstable();
                n.dedup();
                (u, n)
            })
            .filter(|(_, n)| !n.is_empty())
            .collect();
        let mut per_node: BTreeMap<u16, BytesMut> = BTreeMap::new();
        let mut pipe = redis::pipe();
        let mut stale = 0usize;
        for o in batch {
            match o {
                // Checked after the lookup, the call that waits out a slow Redis.
                Out::Push { at, .. } if at.elapsed() > PUSH_MAX_AGE => stale += 1,
                Out::Push { users, frame, .. } => {
                    let mut by_node: BTreeMap<u16, Vec<u64>> = BTreeMap::new();
                    for u in users {
                        for n in routes.get(u).into_iter().flatten() {
                            by_node.entry(*n).or_default().push(*u);
                        }
                    }
                    for (n, us) in by_node {
                        crate::cluster::put_push(per_node.entry(n).or_default(), &us, frame);
                    }
                }
                Out::Kick { user, scope } => {
                    for n in routes.get(user).into_iter().flatten() {
                        crate::cluster::put_kick(per_node.entry(*n).or_default(), *user, *scope);
                    }
                }
                Out::Members(threads) => {
                    // Every node (this one too) drops its cached member lists of these threads.
                    let mut msg = BytesMut::with_capacity(threads.len() * 8);
                    for t in threads {
                        msg.extend_from_slice(&t.to_be_bytes());
                    }
                    pipe.publish(MEMBERS, msg.as_ref()).ignore();
                }
            }
        }
        if stale > 0 {
            bus.lost.store(true, std::sync::atomic::Ordering::Release);
            crate::metrics::push_dropped("bus_too_old", stale);
            warn!(
                pushes = stale,
                "bus: pushes held too long; dropped (the cluster will resync)"
            );
        }
        let mut any = batch.iter().any(|o| matches!(o, Out::Members(_)));
        for (n, msg) in per_node {
            pipe.publish(inbox(n), msg.freeze().as_ref()).ignore();
            any = true;
        }
        if !any {
            return Ok(());
        }
        pipe.query_async::<()>(&mut bus.conn.clone()).await
    }
}
