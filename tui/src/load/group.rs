//! Group fan-out: groups of M members, all online; some members send, every message is
//! counted at every other member's device.

use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::{self, BoxStream, SelectAll};

use super::ledger::Ledger;
use super::report::{Progress, Report};
use super::{LoadError, LoadOpts, Online, Users, connect_all, my_share};
use crate::client::{Client, ConnState, Event, Events};

/// Runs `groups` groups (this process's share), `senders` senders in each.
pub async fn group(
    opts: &LoadOpts,
    users: &mut Users,
    groups: usize,
    senders: usize,
    size: usize,
) -> Result<Report, LoadError> {
    let mine = my_share(
        opts,
        users.groups(),
        groups,
        "no groups in the users file: run setup with --group-size M",
    )?;
    let who: Vec<_> = mine.iter().flat_map(|(_, m)| m.iter().cloned()).collect();
    let started = Instant::now();
    let mut online = connect_all(opts, users, &who, true).await?.into_iter();
    let connect_time = started.elapsed();
    let measure_from = Instant::now() + opts.warmup;
    let stop_at = measure_from + opts.duration;
    let progress = Progress::new(opts.progress, 0);
    let mut tasks = Vec::new();
    for (thread, members) in &mine {
        let members: Vec<Online> = online.by_ref().take(members.len()).collect();
        tasks.push(tokio::spawn(group_loop(
            members,
            *thread,
            senders,
            size,
            opts.rate,
            measure_from,
            stop_at,
            opts.drain,
            progress.clone(),
        )));
    }
    let report = Report::of_tasks(
        "group",
        tasks,
        "group",
        opts.duration,
        who.len(),
        connect_time,
    )
    .await;
    progress.finish();
    Ok(report)
}

/// The events of several clients as one stream of (index, event).
pub(crate) fn merged(events: Vec<Events>) -> SelectAll<BoxStream<'static, (usize, Event)>> {
    stream::select_all(events.into_iter().enumerate().map(|(i, e)| {
        stream::unfold(e, move |mut e| async move {
            e.recv().await.map(|ev| ((i, ev), e))
        })
        .boxed()
    }))
}

/// Drives one group: `senders` members send, ack-paced (`rate` 0) or at `rate` each.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn group_loop(
    members: Vec<Online>,
    thread: u64,
    senders: usize,
    size: usize,
    rate: f64,
    measure_from: Instant,
    stop_at: Instant,
    drain: Duration,
    progress: Progress,
) -> Report {
    let n = members.len();
    let senders = senders.clamp(1, n.max(1));
    let recipients = u32::try_from(n.saturating_sub(1)).unwrap_or(u32::MAX);
    let (clients, events): (Vec<Client>, Vec<Events>) =
        members.into_iter().map(|m| (m.client, m.events)).unzip();
    let mut events = merged(events);
    let mut ledger = Ledger::new("group", senders, n, measure_from);
    let drain_until = stop_at + drain;
    let interval = (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / rate));
    let mut tick = tokio::time::interval(interval.unwrap_or(Duration::from_secs(5)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Senders are members 0..senders; closed loop: each starts at once, then sends on its ack.
    let mut want = vec![interval.is_none(); senders];
    loop {
        let now = Instant::now();
        let sending = now < stop_at;
        if !sending && (now >= drain_until || ledger.settled()) {
            break;
        }
        if sending {
            for (s, w) in want.iter_mut().enumerate() {
                if std::mem::take(w) {
                    let body = ledger.next_body(s, size);
                    let at = Instant::now();
                    match clients[s].post(thread, body).await {
                        Ok(local) => ledger.posted(s, local, recipients, at),
                        Err(e) => ledger.post_failed(&e.to_string()),
                    }
                }
            }
        }
        let wait = if sending { stop_at } else { drain_until };
        let (i, ev) = tokio::select! {
            ev = events.next() => match ev { Some(x) => x, None => break },
            _ = tick.tick() => {
                if interval.is_some() {
                    want.iter_mut().for_each(|w| *w = true);
                }
                continue;
            }
            _ = tokio::time::sleep_until(wait.into()) => continue,
        };
        match ev {
            Event::Acked { local_id, .. } => {
                let ours = ledger.acked(i, local_id);
                if ours && interval.is_none() && i < senders {
                    want[i] = true;
                }
            }
            Event::SendFailed { local_id, error } => {
                ledger.failed(i, local_id, &error);
                if interval.is_none() && i < senders {
                    want[i] = true;
                }
            }
            Event::SendRetry { error, .. } => ledger.retried(&error),
            Event::Message(m) if m.thread_id == thread => {
                let ours = ledger.delivered(i, &m).is_some();
                if ours {
                    progress.inc();
                }
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
