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

/// Which side of a pair sends next. Fixed rate: the sides take turns on a timer. Closed loop:
/// the pace's event (a delivery or an ack) lets a side send again, and the timer only guards
/// against a message that never arrives stalling the pair forever.
pub(super) struct Pacer {
    interval: Option<Duration>,
    pace: Pace,
    want: [bool; 2],
    turn: usize,
    last_progress: Instant,
}

impl Pacer {
    pub(super) fn new(interval: Option<Duration>, pace: Pace) -> Self {
        let want = match (interval, pace) {
            (Some(_), _) => [false, false],
            (None, Pace::Delivery) => [true, false],
            (None, Pace::Ack) => [true, true],
        };
        Self {
            interval,
            pace,
            want,
            turn: 0,
            last_progress: Instant::now(),
        }
    }

    /// The timer that drives [`Pacer::tick`].
    pub(super) fn timer(&self) -> tokio::time::Interval {
        let mut tick = tokio::time::interval(self.interval.unwrap_or(Duration::from_millis(250)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick
    }

    /// Whether `side` should send now (once).
    pub(super) fn take(&mut self, side: usize) -> bool {
        std::mem::take(&mut self.want[side])
    }

    pub(super) fn tick(&mut self) {
        if self.interval.is_some() {
            self.want[self.turn] = true;
            self.turn ^= 1;
        } else if self.last_progress.elapsed() > Duration::from_secs(5) {
            self.want[0] = true;
            self.last_progress = Instant::now();
        }
    }

    /// One of `side`'s messages was acknowledged.
    pub(super) fn acked(&mut self, side: usize) {
        self.want[side] |= self.interval.is_none() && self.pace == Pace::Ack;
    }

    /// One of the pair's messages reached `side`.
    pub(super) fn delivered(&mut self, side: usize) {
        self.last_progress = Instant::now();
        self.want[side] |= self.interval.is_none() && self.pace == Pace::Delivery;
    }

    /// One of `side`'s messages was refused for good.
    pub(super) fn failed(&mut self, side: usize) {
        self.want[side] |= self.interval.is_none();
    }
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
    let mut pacer = Pacer::new(interval, pace);
    let mut tick = pacer.timer();
    loop {
        let now = Instant::now();
        let sending = now < stop_at;
        if !sending && (now >= drain_until || ledger.settled()) {
            break;
        }
        if sending {
            for (side, client) in clients.iter().enumerate() {
                if pacer.take(side) {
                    let body = ledger.next_body(side, size);
                    let at = Instant::now();
                    match client.post(thread, body).await {
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
                pacer.tick();
                continue;
            }
            _ = tokio::time::sleep_until(wait.into()) => continue,
        };
        let Some(ev) = ev else { break };
        match ev {
            Event::Acked { local_id, .. } if ledger.acked(side, local_id) => pacer.acked(side),
            Event::SendFailed { local_id, error } => {
                ledger.failed(side, local_id, &error);
                pacer.failed(side);
            }
            Event::SendRetry { error, .. } => ledger.retried(&error),
            Event::Message(m) if m.thread_id == thread && ledger.delivered(side, &m).is_some() => {
                progress.inc();
                pacer.delivered(side);
            }
            Event::State(ConnState::Stopped { reason, .. }) => {
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
