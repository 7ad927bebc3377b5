//! Reconnect storm: every connection of the run is dropped at once and reconnects by itself.
//! For each pair, one side posts a message just before the drop; a client has fully resynced
//! when it has synced again after its reconnect and holds that message (the receiver
//! delivered it exactly once; the sender has its ack, retried across the drop if need be).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Barrier;

use super::ledger::Ledger;
use super::report::{Report, record};
use super::{LoadError, LoadOpts, Online, Users, connect_all, my_share, pair_threads};
use crate::client::{ConnState, Event};

/// How long a client may take to resync before it counts as failed.
const RESYNC_LIMIT: Duration = Duration::from_secs(60);

/// `pairs` pairs (2 x pairs connections, this process's share), `rounds` storms.
pub async fn storm(
    opts: &LoadOpts,
    users: &mut Users,
    pairs: usize,
    rounds: usize,
    size: usize,
) -> Result<Report, LoadError> {
    let mine = my_share(opts, users.pairs(), pairs, super::NO_PAIRS)?;
    let (threads, who) = pair_threads(&mine)?;
    let started = Instant::now();
    let mut online = connect_all(opts, users, &who, true).await?.into_iter();
    let connect_time = started.elapsed();
    // Every pair drops at the same instant: a barrier per round.
    let barrier = Arc::new(Barrier::new(threads.len().max(1)));
    let mut tasks = Vec::new();
    for thread in threads {
        let (Some(a), Some(b)) = (online.next(), online.next()) else {
            break;
        };
        tasks.push(tokio::spawn(pair_storms(
            [a, b],
            thread,
            rounds.max(1),
            size,
            opts.warmup,
            barrier.clone(),
        )));
    }
    let storm_started = Instant::now();
    let mut report = Report::new("storm");
    report.merge_tasks(tasks, "pair").await;
    report.elapsed = storm_started.elapsed();
    report.connections = who.len() as u64;
    report.connect_time = connect_time;
    report.check();
    Ok(report)
}

async fn pair_storms(
    sides: [Online; 2],
    thread: u64,
    rounds: usize,
    size: usize,
    settle: Duration,
    barrier: Arc<Barrier>,
) -> Report {
    let [a, b] = sides;
    let clients = [a.client, b.client];
    let (mut ea, mut eb) = (a.events, b.events);
    // Everything is measured: the warm-up is the quiet time before each storm.
    let mut ledger = Ledger::new("storm", 1, 1, Instant::now());
    let mut resync = Report::new("storm");
    for _ in 0..rounds {
        tokio::time::sleep(settle).await;
        barrier.wait().await;
        let dropped = Instant::now();
        let body = ledger.next_body(0, size);
        let n = ledger.count(0) + 1;
        match clients[0].post(thread, body).await {
            Ok(local) => ledger.posted(0, local, 1, dropped),
            Err(e) => ledger.post_failed(&e.to_string()),
        }
        for c in &clients {
            if c.disconnect().await.is_err() {
                resync.error("storm: client stopped");
            }
        }
        // Per side: seen offline since the drop, synced since, done.
        let mut offline = [false; 2];
        let mut synced = [false; 2];
        let mut done = [false; 2];
        let deadline = dropped + RESYNC_LIMIT;
        while !(done[0] && done[1]) {
            let (side, ev) = tokio::select! {
                ev = ea.recv() => (0usize, ev),
                ev = eb.recv() => (1usize, ev),
                _ = tokio::time::sleep_until(deadline.into()) => break,
            };
            let Some(ev) = ev else { break };
            match ev {
                Event::State(ConnState::Offline { .. } | ConnState::Connecting { .. }) => {
                    offline[side] = true;
                }
                Event::State(ConnState::Stopped { reason, .. }) => {
                    resync.error(format!("client stopped: {reason}"));
                }
                Event::Synced if offline[side] => synced[side] = true,
                Event::Acked { local_id, .. } if side == 0 => {
                    ledger.acked(0, local_id);
                }
                Event::SendFailed { local_id, error } if side == 0 => {
                    ledger.failed(0, local_id, &error);
                }
                Event::SendRetry { error, .. } => ledger.retried(&error),
                Event::Message(m) if m.thread_id == thread && side == 1 => {
                    ledger.delivered(0, &m);
                }
                _ => {}
            }
            // The sender holds its message once acked; the receiver once delivered.
            let holds = [ledger.acked_n(0, n), ledger.delivered_to_all(0, n)];
            for s in 0..2 {
                if !done[s] && synced[s] && holds[s] {
                    done[s] = true;
                    resync.resynced += 1;
                    record(&mut resync.resync_us, dropped.elapsed());
                }
            }
        }
        for (s, d) in done.iter().enumerate() {
            if !d {
                resync.error(format!(
                    "storm: {} side not resynced within {} s",
                    if s == 0 { "sending" } else { "receiving" },
                    RESYNC_LIMIT.as_secs()
                ));
            }
        }
    }
    for c in clients {
        c.shutdown().await;
    }
    let mut r = ledger.finish(Duration::ZERO);
    r.merge(&resync);
    r.scenario = "storm".into();
    r
}
