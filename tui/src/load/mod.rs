//! Load scenarios on the client core, with honest accounting: every message is tracked from
//! send to ack to delivery, so a throughput figure always comes with its lost, duplicated and
//! out-of-order counts.

pub mod report;
pub mod users;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_wire::Body;
use confab_wire::pb;
use tokio::sync::Mutex;

use crate::client::{Auth, Backoff, CacheMode, Client, ClientConfig, Event, Events};
pub use report::Report;
pub use users::{UserRecord, Users};

/// Options shared by the scenarios.
#[derive(Debug, Clone)]
pub struct LoadOpts {
    /// Server addresses; clients are spread over them round-robin.
    pub servers: Vec<String>,
    /// Source addresses to bind, round-robin (more than ~28k connections to one address).
    pub bind: Vec<IpAddr>,
    pub duration: Duration,
    pub warmup: Duration,
    /// Time after sending stops for deliveries to arrive before counting losses.
    pub drain: Duration,
    /// Total messages per second across all senders; 0 = closed loop (next message when the
    /// previous one has been delivered).
    pub rate: f64,
    /// Show a progress bar.
    pub progress: bool,
}

impl LoadOpts {
    pub fn new(server: impl Into<String>) -> Self {
        Self {
            servers: vec![server.into()],
            bind: Vec::new(),
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            drain: Duration::from_secs(3),
            rate: 0.0,
            progress: false,
        }
    }

    pub(crate) fn client_config(&self, i: usize) -> ClientConfig {
        let server = &self.servers[i % self.servers.len().max(1)];
        let mut cfg = ClientConfig::new(server.clone());
        cfg.client_name = "confab-load".into();
        cfg.cache = CacheMode::Off;
        cfg.bind = (!self.bind.is_empty()).then(|| self.bind[i % self.bind.len()]);
        cfg.event_capacity = 1024;
        cfg.backoff = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(5),
            reset_after: Duration::from_secs(10),
        };
        cfg.delivered_every = Duration::from_secs(1);
        cfg.backlog = false;
        cfg
    }
}

/// Errors that stop a scenario.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("client {0}: {1}")]
    Client(String, String),
    #[error("users file: {0}")]
    Users(String),
    #[error("{0}")]
    Setup(String),
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Starts a client and waits until it is authenticated and synced.
pub async fn connect(
    cfg: ClientConfig,
    auth: Auth,
    label: &str,
) -> Result<(Client, Events, pb::User, String), LoadError> {
    let (client, mut events) =
        Client::start(cfg, auth).map_err(|e| LoadError::Client(label.into(), e.to_string()))?;
    let mut session = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let ev = tokio::time::timeout_at(deadline, events.recv())
            .await
            .map_err(|_| LoadError::Client(label.into(), "did not come online in 60 s".into()))?
            .ok_or_else(|| LoadError::Client(label.into(), "stopped".into()))?;
        match ev {
            Event::Session { user, token, .. } => session = Some((user, token)),
            Event::Synced => break,
            Event::State(crate::client::ConnState::Stopped { reason }) => {
                return Err(LoadError::Client(label.into(), reason));
            }
            _ => {}
        }
    }
    let (user, token) =
        session.ok_or_else(|| LoadError::Client(label.into(), "no session".into()))?;
    Ok((client, events, user, token))
}

/// A message body the load tool can trace: `L|sender|n|sent_at_us|padding`.
fn body(sender: u64, n: u64, size: usize) -> String {
    let mut b = format!("L|{sender}|{n}|{}|", now_us());
    while b.len() < size {
        b.push('x');
    }
    b
}

fn parse(body: &str) -> Option<(u64, u64, u64)> {
    let mut it = body.split('|');
    if it.next()? != "L" {
        return None;
    }
    Some((
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
    ))
}

/// The ledger of one scenario run.
#[derive(Default)]
struct Ledger {
    /// (sender, n) -> (message_id once acked, deliveries counted)
    sent: HashMap<(u64, u64), (Option<u64>, u32)>,
    report: Report,
}

/// One-to-one: each pair exchanges messages (closed loop ping-pong, or at a fixed rate).
pub async fn dm(
    opts: &LoadOpts,
    users: &mut Users,
    pairs: usize,
    size: usize,
) -> Result<Report, LoadError> {
    let pairs = pairs.min(users.pairs().len());
    if pairs == 0 {
        return Err(LoadError::Setup(
            "no pairs in the users file: run setup with --pairs".into(),
        ));
    }
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let start = Instant::now();
    let measure_from = start + opts.warmup;
    let stop_at = measure_from + opts.duration;
    let progress = report::Progress::new(opts.progress, (opts.warmup + opts.duration).as_secs());
    let mut tasks = Vec::new();
    let per_pair_interval =
        (opts.rate > 0.0).then(|| Duration::from_secs_f64(pairs as f64 / opts.rate));
    for p in 0..pairs {
        let (a, b) = users.pairs()[p].clone();
        let (ca, ea, ua, ta) = connect(
            opts.client_config(2 * p),
            Auth::Token(a.token.clone()),
            &a.name,
        )
        .await?;
        let (cb, eb, ub, tb) = connect(
            opts.client_config(2 * p + 1),
            Auth::Token(b.token.clone()),
            &b.name,
        )
        .await?;
        users.update_token(&a.name, ta);
        users.update_token(&b.name, tb);
        let thread = a.thread_with(&b.name).ok_or_else(|| {
            LoadError::Setup(format!("{} and {} share no thread", a.name, b.name))
        })?;
        let ledger = ledger.clone();
        let progress = progress.clone();
        tasks.push(tokio::spawn(pair_loop(
            [(ca, ea, ua.user_id), (cb, eb, ub.user_id)],
            thread,
            size,
            per_pair_interval,
            measure_from,
            stop_at,
            opts.drain,
            ledger,
            progress,
        )));
    }
    for t in tasks {
        if let Ok(Err(e)) = t.await {
            return Err(e);
        }
    }
    progress.finish();
    let mut l = ledger.lock().await;
    let acked_undelivered = l
        .sent
        .values()
        .filter(|(id, n)| id.is_some() && *n == 0)
        .count() as u64;
    let dup = l
        .sent
        .values()
        .map(|(_, n)| u64::from(n.saturating_sub(1)))
        .sum::<u64>();
    l.report.lost = acked_undelivered;
    l.report.duplicated += dup;
    l.report.elapsed = opts.duration;
    Ok(std::mem::take(&mut l.report))
}

type Side = (Client, Events, u64);

#[allow(clippy::too_many_arguments)]
async fn pair_loop(
    sides: [Side; 2],
    thread: u64,
    size: usize,
    interval: Option<Duration>,
    measure_from: Instant,
    stop_at: Instant,
    drain: Duration,
    ledger: Arc<Mutex<Ledger>>,
    progress: report::Progress,
) -> Result<(), LoadError> {
    let [(ca, mut ea, ida), (cb, mut eb, idb)] = sides;
    let clients = [ca, cb];
    let ids = [ida, idb];
    let mut n = [0u64; 2];
    let mut pending: HashMap<u64, (Instant, u64, u64, bool)> = HashMap::new(); // local -> (at, sender, n, measured)
    let mut last_seq = [0u64; 2];
    let send = |who: usize, n: &mut [u64; 2]| {
        n[who] += 1;
        (ids[who], n[who], body(ids[who], n[who], size))
    };
    let mut sending = true;
    let mut turn_at = Instant::now();
    // Closed loop: a starts; each delivery makes the receiver answer.
    let mut next_sender = Some(0usize);
    let drain_until = stop_at + drain;
    let mut tick = tokio::time::interval(interval.unwrap_or(Duration::from_millis(50)));
    loop {
        if sending && Instant::now() >= stop_at {
            sending = false;
        }
        if !sending && Instant::now() >= drain_until {
            break;
        }
        if sending && let Some(who) = next_sender.take() {
            let (sender, k, text) = send(who, &mut n);
            let measured = Instant::now() >= measure_from;
            match clients[who].send(thread, text).await {
                Ok(local) => {
                    pending.insert(local, (Instant::now(), sender, k, measured));
                    let mut l = ledger.lock().await;
                    l.sent.insert((sender, k), (None, 0));
                    if measured {
                        l.report.sent += 1;
                    }
                }
                Err(e) => {
                    let mut l = ledger.lock().await;
                    *l.report.errors.entry(format!("send: {e}")).or_default() += 1;
                }
            }
            turn_at = Instant::now();
        }
        let (side, ev) = tokio::select! {
            ev = ea.recv() => (0usize, ev),
            ev = eb.recv() => (1usize, ev),
            _ = tick.tick() => {
                if let Some(_iv) = interval && sending {
                    next_sender = Some(0);
                } else if interval.is_none() && sending && turn_at.elapsed() > Duration::from_secs(5) {
                    // A message that never arrives must not stall the pair forever.
                    next_sender = Some(0);
                }
                continue;
            }
        };
        let Some(ev) = ev else { break };
        match ev {
            Event::Acked { local_id, ack } => {
                if let Some((at, sender, k, measured)) = pending.remove(&local_id) {
                    let mut l = ledger.lock().await;
                    if let Some(entry) = l.sent.get_mut(&(sender, k)) {
                        entry.0 = Some(ack.message_id);
                    }
                    if measured {
                        l.report.acked += 1;
                        l.report.record_ack(at.elapsed());
                    }
                }
            }
            Event::SendFailed { local_id, error } => {
                let mut l = ledger.lock().await;
                if pending
                    .remove(&local_id)
                    .is_some_and(|(_, _, _, measured)| measured)
                {
                    l.report.failed += 1;
                }
                *l.report.errors.entry(format!("{}", error)).or_default() += 1;
            }
            Event::SendRetry { error, .. } => {
                let mut l = ledger.lock().await;
                *l.report
                    .errors
                    .entry(format!("retried after {}", error))
                    .or_default() += 1;
            }
            Event::Message(m) if m.thread_id == thread => {
                let Some((sender, k, sent_us)) = parse(&m.body) else {
                    continue;
                };
                if sender == ids[side] {
                    continue; // our own (other device) copy
                }
                let delivered_at = now_us();
                let mut l = ledger.lock().await;
                let measured = Instant::now() >= measure_from;
                match l.sent.get_mut(&(sender, k)) {
                    Some(entry) => {
                        entry.1 += 1;
                        if entry.1 == 1 && measured {
                            l.report.delivered += 1;
                            l.report.record_delivery(Duration::from_micros(
                                delivered_at.saturating_sub(sent_us),
                            ));
                        }
                    }
                    None => l.report.unexpected += 1,
                }
                if m.seq <= last_seq[side] {
                    l.report.out_of_order += 1;
                }
                last_seq[side] = last_seq[side].max(m.seq);
                drop(l);
                progress.inc();
                if interval.is_none() {
                    next_sender = Some(side);
                }
            }
            _ => {}
        }
    }
    for c in clients {
        c.shutdown().await;
    }
    Ok(())
}

/// Holds authenticated idle connections; reports the server's RSS per connection when its
/// pid is known.
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
    let rss_before = server_pid.and_then(report::rss_kib);
    let progress = report::Progress::new(opts.progress, conns as u64);
    let mut held = Vec::with_capacity(conns);
    let started = Instant::now();
    let mut report = Report::default();
    // Connect in waves so the accept queue is not flooded.
    let wave = 200;
    let mut i = 0;
    while i < conns {
        let mut batch = Vec::new();
        for j in i..(i + wave).min(conns) {
            let u = all[j % all.len()].clone();
            let cfg = {
                let mut c = opts.client_config(j);
                c.sync_on_connect = false;
                c
            };
            batch.push(tokio::spawn(async move {
                let (client, events) =
                    Client::start(cfg, Auth::Token(u.token.clone())).map_err(|e| e.to_string())?;
                let mut events = events;
                let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
                loop {
                    match tokio::time::timeout_at(deadline, events.recv()).await {
                        Ok(Some(Event::Session { token, .. })) => {
                            return Ok((client, events, u.name, token));
                        }
                        Ok(Some(Event::State(crate::client::ConnState::Stopped { reason }))) => {
                            return Err(reason);
                        }
                        Ok(Some(_)) => {}
                        _ => return Err("no session in time".to_string()),
                    }
                }
            }));
        }
        for b in batch {
            match b.await {
                Ok(Ok((c, e, name, token))) => {
                    users.update_token(&name, token);
                    held.push((c, e));
                    progress.inc();
                }
                Ok(Err(e)) => *report.errors.entry(e).or_default() += 1,
                Err(e) => *report.errors.entry(e.to_string()).or_default() += 1,
            }
        }
        i += wave;
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
    tokio::time::sleep(opts.duration).await;
    // Events are drained so no client's stream fills up while held.
    for (_, e) in &mut held {
        while e.try_recv().is_some() {}
    }
    for (c, _) in held {
        c.shutdown().await;
    }
    Ok(report)
}

/// Checks the server is up before a scenario: a request round trip on one user.
pub async fn ping(opts: &LoadOpts, user: &UserRecord) -> Result<Duration, LoadError> {
    let (c, _e, _, _) = connect(
        opts.client_config(0),
        Auth::Token(user.token.clone()),
        &user.name,
    )
    .await?;
    let t = Instant::now();
    c.request(Body::Ping(pb::Ping { nonce: 1 }))
        .await
        .map_err(|e| LoadError::Client(user.name.clone(), e.to_string()))?;
    let rtt = t.elapsed();
    c.shutdown().await;
    Ok(rtt)
}
