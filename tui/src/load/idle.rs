//! Idle authenticated connections; the server's RSS per connection when its pid is known.

use std::time::{Duration, Instant};

use super::report::{self, Progress, Report};
use super::{LoadError, LoadOpts, UserRecord, Users, connect, shard};
use crate::client::Auth;

/// Holds `conns` connections (this process's share) over the users, several per user when
/// there are fewer users than connections, for the duration.
pub async fn idle(
    opts: &LoadOpts,
    users: &mut Users,
    conns: usize,
    server_pid: Option<u32>,
) -> Result<Report, LoadError> {
    let all: Vec<UserRecord> = users.all().to_vec();
    if all.is_empty() {
        return Err(LoadError::Setup("no users: run setup first".into()));
    }
    let mine: Vec<usize> = (0..conns).filter(|j| shard(opts, *j)).collect();
    let rss_before = server_pid.and_then(report::rss_kib);
    let progress = Progress::new(opts.progress, mine.len() as u64);
    let mut held = Vec::with_capacity(mine.len());
    let started = Instant::now();
    let mut report = Report::new("idle");
    // Connect in waves so the accept queue is not flooded.
    for wave in mine.chunks(opts.connect_concurrency.max(1) * 4) {
        let mut batch = Vec::with_capacity(wave.len());
        for (k, &j) in wave.iter().enumerate() {
            let u = all[j % all.len()].clone();
            let mut cfg = opts.client_config(held.len() + k);
            cfg.sync_on_connect = false;
            batch.push(tokio::spawn(async move {
                connect(cfg, Auth::Token(u.token.clone()), &u.name)
                    .await
                    .map(|(c, e, _, token)| (c, e, u.name, token))
            }));
        }
        for b in batch {
            match b.await {
                Ok(Ok((c, e, name, token))) => {
                    users.update_token(&name, token);
                    held.push((c, e));
                    progress.inc();
                }
                Ok(Err(e)) => report.error(format!("connect: {e}")),
                Err(e) => report.error(format!("connect: {e}")),
            }
        }
    }
    progress.finish();
    report.connect_time = started.elapsed();
    report.connections = held.len() as u64;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = server_pid.and_then(report::rss_kib);
    if let (Some(b), Some(a)) = (rss_before, rss_after)
        && !held.is_empty()
    {
        report.server_rss_before_kib = Some(b);
        report.server_rss_after_kib = Some(a);
    }
    // Events are drained while held so no client's stream fills up.
    let until = Instant::now() + opts.duration;
    while Instant::now() < until {
        for (_, e) in &mut held {
            while e.try_recv().is_some() {}
        }
        tokio::time::sleep(Duration::from_millis(500).min(opts.duration)).await;
    }
    for (c, _) in held {
        c.shutdown().await;
    }
    report.elapsed = opts.duration;
    report.check();
    Ok(report)
}
