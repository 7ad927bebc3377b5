//! `confab-load`: many headless clients against a confab server, with honest accounting.
//! Exit status 1 when anything was lost, duplicated or reordered, or the counts do not add
//! up; 2 when the run could not be made.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use confab_tui::client::known_servers::Fingerprint;
use confab_tui::load::{self, LoadError, LoadOpts, LoginKinds, MixedPlan, Pace, Report, Users};

#[derive(Parser)]
#[command(
    name = "confab-load",
    version,
    about = "Load scenarios for confab servers"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args)]
struct Common {
    /// Server address (tls://host:port for TLS); repeat (or separate with commas) for several
    /// nodes, clients are spread round-robin; or give the load balancer.
    #[arg(
        long = "server",
        short,
        default_value = "127.0.0.1:7000",
        global = true,
        value_delimiter = ','
    )]
    servers: Vec<String>,
    /// PEM file of certificate authorities to trust for tls:// servers (repeatable).
    #[arg(long, global = true)]
    ca_file: Vec<PathBuf>,
    /// Trust exactly the tls:// server certificate with this fingerprint (SHA256:...).
    #[arg(long, global = true)]
    trust_fingerprint: Option<Fingerprint>,
    /// Source addresses to bind, round-robin (e.g. 127.0.0.2,127.0.0.3), for more than ~28k
    /// connections to one server address.
    #[arg(long, global = true, value_delimiter = ',')]
    bind: Vec<IpAddr>,
    /// The users file written by `setup` (JSON lines with resume tokens).
    #[arg(long, default_value = "confab-load-users.jsonl", global = true)]
    users: PathBuf,
    /// Connections (clients) for the scenario: dm pairs = clients/2, group: groups =
    /// clients/group size, storm: clients/2 pairs, idle: connections, login: workers, mixed:
    /// total connections. A scenario's own count flag wins.
    #[arg(long, global = true)]
    clients: Option<usize>,
    /// Messages per second per pair (dm) or per sender (group), logins per second per worker
    /// (login); 0 = closed loop, as fast as deliveries or acks allow.
    #[arg(long, default_value_t = 0.0, global = true)]
    rate: f64,
    /// Measured duration, seconds.
    #[arg(long, default_value_t = 10.0, global = true)]
    duration: f64,
    /// Warm-up before measuring (excluded from the figures), seconds.
    #[arg(long, default_value_t = 2.0, global = true)]
    warmup: f64,
    /// Time for late deliveries after sending stops, seconds.
    #[arg(long, default_value_t = 3.0, global = true)]
    drain: f64,
    /// Message size in bytes.
    #[arg(long, default_value_t = 64, global = true)]
    size: usize,
    /// Run P child processes, each with a share of the users, and merge their reports.
    #[arg(long, default_value_t = 1, global = true)]
    processes: usize,
    /// (Internal) this process's share: INDEX/COUNT.
    #[arg(long, global = true, hide = true)]
    shard: Option<String>,
    /// Print the result as one JSON object.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum PaceArg {
    /// Ping-pong: the receiver answers each delivery.
    Delivery,
    /// Each side sends again as soon as its previous message is acknowledged.
    Ack,
}

#[derive(Clone, Copy, ValueEnum)]
enum LoginArg {
    Token,
    Password,
    Both,
}

#[derive(Subcommand)]
enum Cmd {
    /// Register users (argon2-bound: done once), make friends of pairs and groups.
    Setup {
        /// Number of users.
        #[arg(long, default_value_t = 200)]
        users_count: usize,
        /// Make users 2i and 2i+1 friends.
        #[arg(long)]
        pairs: bool,
        /// Put each run of M consecutive users in a group.
        #[arg(long, default_value_t = 0)]
        group_size: usize,
        #[arg(long, default_value = "load")]
        prefix: String,
        /// Registrations in flight.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
    },
    /// Pairs exchange messages: closed loop or at --rate per pair.
    Dm {
        /// Active pairs (default: --clients / 2, else 100).
        #[arg(long)]
        pairs: Option<usize>,
        /// What paces the closed loop.
        #[arg(long, value_enum, default_value = "delivery")]
        pace: PaceArg,
        /// Speak the wire protocol directly (one task per pair, no client core): the load
        /// generator then takes less of a shared machine's CPU. Same requests and markers.
        #[arg(long)]
        wire: bool,
    },
    /// Groups of M members: senders post (ack-paced, or at --rate each), every other member
    /// counts every message.
    Group {
        /// Groups (default: --clients / group size, else all groups in the users file).
        #[arg(long)]
        groups: Option<usize>,
        /// Senders per group.
        #[arg(long, default_value_t = 1)]
        senders: usize,
    },
    /// Hold authenticated idle connections; with --server-pid, report the server's RSS per
    /// connection.
    Idle {
        /// Connections (default: --clients, else 1000).
        #[arg(long)]
        conns: Option<usize>,
        #[arg(long)]
        server_pid: Option<u32>,
    },
    /// Logins per second on fresh connections: by resume token, then by password.
    Login {
        /// Concurrent login loops (default: --clients, else 8).
        #[arg(long)]
        workers: Option<usize>,
        #[arg(long, value_enum, default_value = "both")]
        kind: LoginArg,
    },
    /// Every connection dropped at once; time until each has resynced and holds the message
    /// its peer sent at the drop.
    Storm {
        /// Pairs (2 connections each; default: --clients / 2, else 500).
        #[arg(long)]
        pairs: Option<usize>,
        /// Storms, each after --warmup seconds of quiet.
        #[arg(long, default_value_t = 1)]
        rounds: usize,
    },
    /// Idle majority, some dm pairs, some groups, a trickle of logins, all at once.
    Mixed {
        /// Group size of the groups in the users file.
        #[arg(long, default_value_t = 10)]
        group_size: usize,
        /// Override the plan: groups, dm pairs, login workers, idle connections.
        #[arg(long)]
        groups: Option<usize>,
        #[arg(long)]
        pairs: Option<usize>,
        #[arg(long)]
        login_workers: Option<usize>,
        #[arg(long)]
        idle: Option<usize>,
    },
}

fn parse_shard(s: &str) -> Option<(usize, usize)> {
    let (i, n) = s.split_once('/')?;
    let (i, n) = (i.parse().ok()?, n.parse().ok()?);
    (n > 0 && i < n).then_some((i, n))
}

/// This process's arguments without `--processes P` (for the children).
fn child_args() -> Vec<OsString> {
    let mut out = Vec::new();
    let mut skip = false;
    for a in std::env::args_os().skip(1) {
        if skip {
            skip = false;
            continue;
        }
        let s = a.to_string_lossy();
        if s == "--processes" || s == "--json" {
            skip = s == "--processes";
            continue;
        }
        if s.starts_with("--processes=") {
            continue;
        }
        out.push(a);
    }
    out
}

async fn scenario(
    cmd: &Cmd,
    c: &Common,
    opts: &mut LoadOpts,
    users: &mut Users,
) -> Result<Report, LoadError> {
    let clients = c.clients;
    match cmd {
        Cmd::Setup { .. } => Err(LoadError::Setup("setup is not a scenario".into())),
        Cmd::Dm { pairs, pace, wire } => {
            let pairs = pairs.or(clients.map(|n| n / 2)).unwrap_or(100);
            let pace = match pace {
                PaceArg::Delivery => Pace::Delivery,
                PaceArg::Ack => Pace::Ack,
            };
            if *wire {
                load::dm_wire(opts, users, pairs, c.size, pace).await
            } else {
                load::dm(opts, users, pairs, c.size, pace).await
            }
        }
        Cmd::Group { groups, senders } => {
            let size = users.groups().first().map_or(1, |(_, m)| m.len().max(1));
            let groups = groups.or(clients.map(|n| n / size)).unwrap_or(usize::MAX);
            load::group(opts, users, groups, *senders, c.size).await
        }
        Cmd::Idle { conns, server_pid } => {
            let conns = conns.or(clients).unwrap_or(1000);
            load::idle(opts, users, conns, *server_pid).await
        }
        Cmd::Login { workers, kind } => {
            let workers = workers.or(clients).unwrap_or(8);
            let kinds = LoginKinds {
                token: matches!(kind, LoginArg::Token | LoginArg::Both),
                password: matches!(kind, LoginArg::Password | LoginArg::Both),
            };
            load::login(opts, users, workers, kinds).await
        }
        Cmd::Storm { pairs, rounds } => {
            let pairs = pairs.or(clients.map(|n| n / 2)).unwrap_or(500);
            load::storm(opts, users, pairs, *rounds, c.size).await
        }
        Cmd::Mixed {
            group_size,
            groups,
            pairs,
            login_workers,
            idle,
        } => {
            let mut plan = MixedPlan::for_clients(clients.unwrap_or(1000), *group_size);
            plan.groups = groups.unwrap_or(plan.groups);
            plan.pairs = pairs.unwrap_or(plan.pairs);
            plan.login_workers = login_workers.unwrap_or(plan.login_workers);
            plan.idle = idle.unwrap_or(plan.idle);
            plan.size = c.size;
            load::mixed(opts, users, &plan).await
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let c = &cli.common;
    let mut opts = LoadOpts::new(c.servers.first().cloned().unwrap_or_default());
    opts.servers = c.servers.clone();
    opts.bind = c.bind.clone();
    opts.trust.ca_files = c.ca_file.clone();
    opts.trust.trust_fingerprint = c.trust_fingerprint;
    opts.duration = Duration::from_secs_f64(c.duration.max(0.0));
    opts.warmup = Duration::from_secs_f64(c.warmup.max(0.0));
    opts.drain = Duration::from_secs_f64(c.drain.max(0.0));
    opts.rate = c.rate.max(0.0);
    opts.progress = !c.json && std::io::stderr().is_terminal();
    if let Some(s) = &c.shard {
        match parse_shard(s) {
            Some(sh) => opts.shard = sh,
            None => {
                eprintln!("confab-load: --shard wants INDEX/COUNT");
                return ExitCode::from(2);
            }
        }
    }
    let result = match &cli.cmd {
        Cmd::Setup {
            users_count,
            pairs,
            group_size,
            prefix,
            concurrency,
        } => {
            return match Users::setup(
                &opts,
                Some(c.users.clone()),
                prefix,
                *users_count,
                *pairs,
                *group_size,
                *concurrency,
            )
            .await
            {
                Ok(u) => {
                    eprintln!(
                        "registered {} users into {}",
                        u.all().len(),
                        c.users.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("confab-load: {e}");
                    ExitCode::from(2)
                }
            };
        }
        _ if c.processes > 1 && c.shard.is_none() => {
            let exe = match std::env::current_exe() {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("confab-load: cannot find my own executable: {e}");
                    return ExitCode::from(2);
                }
            };
            match load::procs::run(&exe, &child_args(), c.processes).await {
                Ok(merged) => {
                    if let Ok(mut users) = Users::load(&c.users) {
                        for (name, token) in merged.tokens {
                            users.update_token(&name, token);
                        }
                        if let Err(e) = users.save() {
                            eprintln!("confab-load: {e}");
                        }
                    }
                    Ok((merged.report, None))
                }
                Err(e) => Err(e),
            }
        }
        cmd => match Users::load(&c.users) {
            Ok(mut users) => {
                let before = users.clone();
                let r = scenario(cmd, c, &mut opts, &mut users).await;
                let tokens = users.changed_tokens(&before);
                if c.shard.is_none() {
                    // A child leaves the file to its parent, which saves every child's tokens.
                    if let Err(e) = users.save() {
                        eprintln!("confab-load: {e}");
                    }
                }
                r.map(|r| (r, c.shard.is_some().then_some(tokens)))
            }
            Err(e) => Err(e),
        },
    };
    match result {
        Ok((report, tokens)) => {
            if c.json {
                let mut v = report.to_json();
                if let (Some(t), Some(obj)) = (tokens, v.as_object_mut()) {
                    obj.insert("tokens".into(), serde_json::json!(t));
                }
                println!("{v}");
            } else {
                print!("{}", report.summary());
            }
            if report.clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("confab-load: {e}");
            ExitCode::from(2)
        }
    }
}
