//! `confab-load`: many headless clients against a confab server, with honest accounting.
//! Exit status 1 when anything was lost, duplicated or reordered.

use std::io::IsTerminal;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use confab_tui::load::{self, LoadOpts, Report, Users};

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
    /// Server address (repeat for several nodes, or give the load balancer).
    #[arg(
        long = "server",
        short,
        default_value = "127.0.0.1:7000",
        global = true
    )]
    servers: Vec<String>,
    /// Source addresses to bind, round-robin (e.g. 127.0.0.2), for more than ~28k connections.
    #[arg(long, global = true, value_delimiter = ',')]
    bind: Vec<IpAddr>,
    /// The users file written by `setup` (JSON lines with resume tokens).
    #[arg(long, default_value = "confab-load-users.jsonl", global = true)]
    users: PathBuf,
    /// Measured duration, seconds.
    #[arg(long, default_value_t = 10.0, global = true)]
    duration: f64,
    /// Warm-up before measuring, seconds.
    #[arg(long, default_value_t = 2.0, global = true)]
    warmup: f64,
    /// Time for late deliveries after sending stops, seconds.
    #[arg(long, default_value_t = 3.0, global = true)]
    drain: f64,
    /// Print the result as one JSON object.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Register users (argon2-bound: done once) and make friends of pairs.
    Setup {
        /// Number of users.
        #[arg(long, default_value_t = 200)]
        users_count: usize,
        /// Make users 2i and 2i+1 friends.
        #[arg(long)]
        pairs: bool,
        #[arg(long, default_value = "load")]
        prefix: String,
        /// Registrations in flight.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
    },
    /// Pairs exchange messages: closed loop (next when delivered) or at --rate.
    Dm {
        /// Active pairs.
        #[arg(long, default_value_t = 100)]
        pairs: usize,
        /// Total messages per second across pairs; 0 = closed loop.
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
        /// Message size in bytes.
        #[arg(long, default_value_t = 64)]
        size: usize,
    },
    /// Hold authenticated idle connections; with --server-pid, report the server's RSS per
    /// connection.
    Idle {
        #[arg(long, default_value_t = 1000)]
        conns: usize,
        #[arg(long)]
        server_pid: Option<u32>,
    },
}

fn print(report: &Report, json: bool) {
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.summary());
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let c = &cli.common;
    let mut opts = LoadOpts::new(c.servers.first().cloned().unwrap_or_default());
    opts.servers = c.servers.clone();
    opts.bind = c.bind.clone();
    opts.duration = Duration::from_secs_f64(c.duration.max(0.0));
    opts.warmup = Duration::from_secs_f64(c.warmup.max(0.0));
    opts.drain = Duration::from_secs_f64(c.drain.max(0.0));
    opts.progress = !c.json && std::io::stderr().is_terminal();
    let result = match cli.cmd {
        Cmd::Setup {
            users_count,
            pairs,
            prefix,
            concurrency,
        } => Users::setup(
            &opts,
            Some(c.users.clone()),
            &prefix,
            users_count,
            pairs,
            concurrency,
        )
        .await
        .map(|u| {
            eprintln!(
                "registered {} users into {}",
                u.all().len(),
                c.users.display()
            );
            None
        }),
        Cmd::Dm { pairs, rate, size } => {
            opts.rate = rate;
            match Users::load(&c.users) {
                Ok(mut users) => {
                    let r = load::dm(&opts, &mut users, pairs, size).await;
                    let _ = users.save();
                    r.map(Some)
                }
                Err(e) => Err(e),
            }
        }
        Cmd::Idle { conns, server_pid } => match Users::load(&c.users) {
            Ok(mut users) => {
                let r = load::idle(&opts, &mut users, conns, server_pid).await;
                let _ = users.save();
                r.map(Some)
            }
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(None) => ExitCode::SUCCESS,
        Ok(Some(report)) => {
            print(&report, c.json);
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
