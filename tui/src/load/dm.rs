//! One-to-one: pairs of friends exchange messages in their private thread.

use std::time::{Duration, Instant};

use super::ledger::Ledger;
use super::report::{Progress, Report};
use super::{LoadError, LoadOpts, Online, Users, connect_all, my_share, pair_threads};
use crate::client::{ConnState, Event};

/// What paces a closed loop (`--rate 0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pace {
    /// Ping-pong: the receiver answers each delivery (one message in flight per pair; the
    /// seed was measured this way).
    #[default]
    Delivery,
    /// Each side sends its next message as soon as its previous one is acknowledged.
    Ack,
}

/// Runs `pairs` pairs (this process's share of them) and returns the checked report.
pub async fn dm(
    opts: &LoadOpts,
    users: &mut Users,
    pairs: usize,
    size: usize,
    pace: Pace,
) -> Result<Report, LoadError> {
    let mine = my_share(opts, users.pairs(), pairs, super::NO_PAIRS)?;
    let (threads, who) = pair_threads(&mine)?;
    let started = Instant::now();
    let mut online = connect_all(opts, users, &who, true).await?.into_iter();
    let connect_time = started.elapsed();
    let measure_from = Instant::now() + opts.warmup;
    let stop_at = measure_from + opts.duration;
    let progress = Progress::new(opts.progress, (opts.warmup + opts.duration).as_secs());
    let interval = (opts.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / opts.rate));
    let mut tasks = Vec::with_capacity(threads.len());
    for thread in threads {
        let (Some(a), Some(b)) = (online.next(), online.next()) else {
            break;
        };
        tasks.push(tokio::spawn(pair_loop(
            [a, b],
            thread,
            size,
            pace,
            interval,
            measure_from,
            stop_at,
            opts.drain,
            progress.clone(),
        )));
    }
    let report =
        Report::of_tasks("dm", tasks, "pair", opts.duration, who.len(), connect_time).await;
    progress.finish();
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
async fn pair_loop(
    sides: [Online; 2],
    thread: u64,
    size: usize,
    pace: Pace,
    interval: Option<Duration>,
    measure_from: Instant,
    stop_at: Instant,
    drain: Duration,
    progress: Progress,
) -> Report {
    let [a, b] = sides;
    let clients = [a.client, b.client];
    let (mut ea, mut eb) = (a.events, b.events);
    let mut ledger = Ledger::new("dm", 2, 2, measure_from);
    let drain_until = stop_at + drain;
    // Fixed rate: the sides take turns on a timer. Closed loop: a timer only guards against
    // a message that never arrives stalling the pair forever.
    let mut tick = tokio::time::interval(interval.unwrap_or(Duration::from_millis(250)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut turn = 0usize;
    let mut last_progress = Instant::now();
    let mut want: [bool; 2] = match (interval, pace) {
        (Some(_), _) => [false, false],
        (None, Pace::Delivery) => [true, false],
        (None, Pace::Ack) => [true, true],
    };
    loop {
        let now = Instant::now();
        let sending = now < stop_at;
        if !sending && (now >= drain_until || ledger.settled()) {
            break;
        }
        if sending {
            for side in 0..2 {
                if std::mem::take(&mut want[side]) {
                    let body = ledger.next_body(side, size);
                    let at = Instant::now();
                    match clients[side].post(thread, body).await {
                        Ok(local) => ledger.posted(side, local, 1, at),
                        Err(e) => ledger.post_failed(&e.to_string()),
                    }
                }
            }
        }
        let wait = if sending { stop_at } else { drain_until };
        let (side, ev) = tokio::select! {
            ev = ea.recv() => (0usize, ev),
            ev = eb.recv() => (1usize, ev),
            _ = tick.tick() => {
                if interval.is_some() {
                    want[turn] = true;
                    turn ^= 1;
                } else if last_progress.elapsed() > Duration::from_secs(5) {
                    want[0] = true;
                    last_progress = Instant::now();
                }
                continue;
            }
            _ = tokio::time::sleep_until(wait.into()) => continue,
        };
        let Some(ev) = ev else { break };
        match ev {
            Event::Acked { local_id, .. } => {
                let ours = ledger.acked(side, local_id);
                want[side] |= ours && interval.is_none() && pace == Pace::Ack;
            }
            Event::SendFailed { local_id, error } => {
                ledger.failed(side, local_id, &error);
                if interval.is_none() {
                    want[side] = true;
                }
            }
            Event::SendRetry { error, .. } => ledger.retried(&error),
            Event::Message(m) if m.thread_id == thread => {
                let ours = ledger.delivered(side, &m).is_some();
                if ours {
                    progress.inc();
                    last_progress = Instant::now();
                    if interval.is_none() && pace == Pace::Delivery {
                        want[side] = true;
                    }
                }
            }
            Event::State(ConnState::Stopped { reason }) => {
                ledger.report.error(format!("client stopped: {reason}"));
            }
            _ => {}
        }
    }
    for c in clients {
        c.shutdown().await;
    }
    ledger.finish(Duration::ZERO)
}
