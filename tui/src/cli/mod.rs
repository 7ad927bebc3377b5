//! `confab`'s command line: a scriptable client on the same core as the terminal client.
//! Every command prints JSON lines (docs/CLI.md is their schema) and exits with a documented
//! code. One file per group of commands; `out.rs` is every line's shape.

mod account;
mod conn;
mod fail;
mod friends;
mod groups;
mod messages;
mod out;
mod target;
mod trust;
mod watch;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::client::known_servers::Fingerprint;
use crate::client::paths;
use crate::client::tls::TrustOptions;
pub use fail::Fail;
use groups::GroupCmd;
use messages::{Range, Text};
use target::Target;

const AFTER_HELP: &str = "\
With no subcommand, confab opens the terminal client (log in or register there; the session is
remembered). `confab keys` prints the key bindings in effect and an example config
($XDG_CONFIG_HOME/confab/config.toml); docs/CLIENT.md describes both, docs/CLI.md every command's
output (JSON lines, each with a `type`).

Exit codes (every command):
  0  success (for send: the server acknowledged every message); also when the reader of the
     output went away (`confab threads | head -1`)
  1  other error
  2  usage error
  3  authentication failed (wrong name or password, session expired, not logged in; for a
     running watch: the session ended), or the server's TLS certificate is not trusted (run
     `confab trust HOST:PORT`)
  4  not found (unknown user, group, thread, member or request)
  5  refused by the server (not allowed, conflict, invalid input, too long, rate limited)
  6  server unreachable or no answer in time

A server given as tls://host:port is reached over TLS: trusted when a system root or a --ca-file
signs its certificate, or when its fingerprint is recorded (`confab trust`, known_servers in the
data directory) or given with --trust-fingerprint. host:port is plain text.

Passwords are read from CONFAB_PASSWORD or, if unset, from standard input (first line); never from
the command line. The session (resume token) is kept, mode 0600, under the XDG data directory
(CONFAB_DATA_DIR), and shared by every confab process of the account on this machine.";

#[derive(Parser, Debug)]
#[command(name = "confab", version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("CONFAB_GIT_COMMIT"), ")"), about = "confab: chat for people who live in terminals", after_help = AFTER_HELP)]
pub struct Cli {
    /// Server address: tls://host:port (TLS) or host:port (plain text).
    #[arg(long, short, env = "CONFAB_SERVER", global = true)]
    server: Option<String>,
    /// PEM file of certificate authorities to trust besides the system's (repeatable).
    #[arg(long, env = "CONFAB_CA_FILE", global = true)]
    ca_file: Vec<std::path::PathBuf>,
    /// Trust exactly the server certificate with this fingerprint (SHA256:...), as
    /// `confab-server fingerprint` prints it.
    #[arg(long, env = "CONFAB_TRUST_FINGERPRINT", global = true)]
    trust_fingerprint: Option<Fingerprint>,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

/// `confab devices ...`.
#[derive(Debug, Subcommand)]
enum DevicesCmd {
    /// End the session of device ID (as `confab devices` prints it), at once.
    Revoke { id: u64 },
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create an account and log in (prints `registered`).
    Register {
        name: String,
        /// The invitation code a server with invite-only registration asks for.
        #[arg(long)]
        invite: Option<String>,
    },
    /// Delete your account for good, after your password (read like `login`'s): every session
    /// ends, you leave every group, your friends see a deleted account (prints `deleted`).
    DeleteAccount,
    /// Log in: a device session for this machine (prints `logged_in`).
    Login { name: String },
    /// End this device session; every confab process of the account here ends too.
    Logout,
    /// Send a message (prints a `sent` line per message once the server stored it).
    Send {
        #[command(flatten)]
        target: Target,
        /// The text, or - to read it from standard input.
        text: String,
        /// With -: one message per non-empty line, each acknowledged before the next.
        #[arg(long)]
        lines: bool,
        /// Print the acknowledgement as JSON (the default; kept for scripts that ask).
        #[arg(long)]
        json: bool,
        /// Answer message MESSAGE_ID of the thread (a reply that quotes it; protocol 1.7).
        #[arg(long, value_name = "MESSAGE_ID")]
        reply_to: Option<u64>,
    },
    /// Print a thread's messages from the server in seq order (`message` lines), paging by
    /// itself: everything, or the newest --limit; after --since SEQ; or before --before SEQ.
    History {
        #[command(flatten)]
        target: Target,
        #[arg(long, conflicts_with = "before")]
        since: Option<u64>,
        #[arg(long)]
        before: Option<u64>,
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Search every conversation you may read (or one: --to, --group, --thread) on the server:
    /// `hit` lines, newest first (protocol 1.6). Words, prefix*, "quoted phrases"; Chinese
    /// words are found inside sentences.
    Search {
        query: String,
        #[command(flatten)]
        target: Target,
        /// At most this many hits.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Mark a thread read up to SEQ (default: its newest entry).
    Read {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        up_to: Option<u64>,
    },
    /// Change the text of your message MESSAGE_ID (within the recall window).
    Edit {
        #[command(flatten)]
        target: Target,
        message_id: u64,
        text: String,
    },
    /// Recall your message MESSAGE_ID (within the recall window).
    Recall {
        #[command(flatten)]
        target: Target,
        message_id: u64,
    },
    /// React to message MESSAGE_ID with EMOJI (one emoji), or take the reaction back with
    /// --remove (prints `reacted`; `changed` false when it was already so). Protocol 1.7.
    React {
        message_id: u64,
        emoji: String,
        #[arg(long)]
        remove: bool,
        /// The message's thread (optional: the server finds it from the id).
        #[command(flatten)]
        target: Target,
    },
    /// Print incoming messages and events as JSON lines until interrupted (Ctrl-C, SIGTERM).
    Watch {
        /// Only this thread (an id, or a friend's or group's name): its messages, typing and
        /// read receipts.
        #[arg(long)]
        thread: Option<String>,
        /// Print nothing from before the watch started (no catch-up).
        #[arg(long)]
        since_now: bool,
    },
    /// List threads with unread counts (every page).
    Threads,
    /// List friends and pending friend requests (every page).
    Friends,
    /// List pending friend requests, incoming and outgoing.
    Requests,
    /// Send a friend request.
    Add {
        name: String,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Accept a pending friend request from NAME.
    Accept { name: String },
    /// Decline a pending friend request from NAME.
    Decline { name: String },
    /// Withdraw the friend request you sent to NAME.
    Cancel { name: String },
    /// End the friendship with NAME (the conversation stays readable).
    Unfriend { name: String },
    /// Block NAME: no more friend requests, messages in your conversation or invitations from
    /// them.
    Block { name: String },
    /// End the block of NAME.
    Unblock { name: String },
    /// List the users you blocked.
    Blocked,
    /// Your device sessions; `devices revoke ID` ends one.
    Devices {
        #[command(subcommand)]
        cmd: Option<DevicesCmd>,
    },
    /// List your groups and invitations (every page).
    Groups,
    /// Groups: create, join, leave, invite, kick, role, rename, transfer, members.
    #[command(subcommand)]
    Group(GroupCmd),
    /// Print the terminal client's key bindings (after config overrides) and an example config.
    Keys,
    /// Show a TLS server's certificate fingerprint and record it as trusted (known_servers)
    /// after you confirm it matches what the operator sees (`confab-server fingerprint`).
    Trust {
        /// host:port or tls://host:port (default: --server).
        server: Option<String>,
        /// Record without asking (for scripts that checked the fingerprint another way).
        #[arg(long)]
        yes: bool,
    },
}

fn text_arg(text: String, lines: bool) -> Result<Text, Fail> {
    match (text.as_str(), lines) {
        ("-", lines) => Ok(Text::Stdin { lines }),
        (_, true) => Err(Fail::usage(
            "--lines reads standard input: give - as the text",
        )),
        (_, false) => Ok(Text::Arg(text)),
    }
}

async fn run(cli: Cli) -> Result<(), Fail> {
    let Some(cmd) = cli.cmd else {
        if !std::io::stdout().is_terminal() {
            return Err(Fail::usage(
                "the terminal client needs a terminal; use a subcommand (see --help)",
            ));
        }
        // Only what the user gave: the terminal client falls back to the config's server,
        // then to the one it last signed in to (its session), then to the default.
        return crate::run::run(cli.server, conn::trust_options())
            .await
            .map_err(|e| Fail(fail::OTHER, format!("terminal: {e}")));
    };
    let server = cli
        .server
        .or_else(conn::config_server)
        .or_else(|| paths::last_server(&paths::data_dir()))
        .unwrap_or_else(|| "127.0.0.1:7000".into());
    let s = server.as_str();
    match cmd {
        Cmd::Trust { server: given, yes } => trust::trust(given.as_deref().unwrap_or(s), yes).await,
        Cmd::Keys => {
            account::keys();
            Ok(())
        }
        Cmd::Register { name, invite } => {
            account::sign_in(s, name, Some(invite.unwrap_or_default())).await
        }
        Cmd::Login { name } => account::sign_in(s, name, None).await,
        Cmd::DeleteAccount => account::delete_account(s).await,
        Cmd::Logout => account::logout(s).await,
        Cmd::Send {
            target,
            text,
            lines,
            json: _,
            reply_to,
        } => messages::send(s, &need(target)?, text_arg(text, lines)?, reply_to).await,
        Cmd::History {
            target,
            since,
            before,
            limit,
        } => {
            let range = Range {
                since,
                before,
                limit,
            };
            messages::history(s, &need(target)?, range).await
        }
        Cmd::Read { target, up_to } => messages::read(s, &need(target)?, up_to).await,
        Cmd::Search {
            query,
            target,
            limit,
        } => messages::search(s, &query, &target, limit).await,
        Cmd::Edit {
            target,
            message_id,
            text,
        } => messages::change(s, &need(target)?, message_id, Some(text)).await,
        Cmd::Recall { target, message_id } => {
            messages::change(s, &need(target)?, message_id, None).await
        }
        Cmd::React {
            message_id,
            emoji,
            remove,
            target,
        } => messages::react(s, &target, message_id, &emoji, remove).await,
        Cmd::Watch { thread, since_now } => {
            let only = Target {
                thread,
                ..Target::default()
            };
            watch::watch(s, &only, since_now).await
        }
        Cmd::Threads => account::threads(s).await,
        Cmd::Friends => friends::friends(s).await,
        Cmd::Requests => friends::requests(s).await,
        Cmd::Add { name, note } => friends::add(s, &name, &note).await,
        Cmd::Accept { name } => friends::respond(s, &name, true).await,
        Cmd::Decline { name } => friends::respond(s, &name, false).await,
        Cmd::Cancel { name } => friends::cancel(s, &name).await,
        Cmd::Unfriend { name } => friends::unfriend(s, &name).await,
        Cmd::Block { name } => friends::block(s, &name, true).await,
        Cmd::Unblock { name } => friends::block(s, &name, false).await,
        Cmd::Blocked => friends::blocked(s).await,
        Cmd::Devices { cmd: None } => account::devices(s).await,
        Cmd::Devices {
            cmd: Some(DevicesCmd::Revoke { id }),
        } => account::revoke(s, id).await,
        Cmd::Groups => groups::list(s).await,
        Cmd::Group(g) => groups::group(s, g).await,
    }
}

/// A command about one thread needs one of --to, --group, --thread.
fn need(target: Target) -> Result<Target, Fail> {
    if target.given() {
        Ok(target)
    } else {
        Err(Fail::usage("give --to NAME, --group NAME or --thread T"))
    }
}

/// The `confab` binary: parse, set up logging (to a file, never the screen), run, exit.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    conn::set_trust(TrustOptions {
        ca_files: cli.ca_file.clone(),
        trust_fingerprint: cli.trust_fingerprint,
        ..TrustOptions::default()
    });
    // $XDG_DATA_HOME/confab/confab.log when CONFAB_LOG is set.
    if let Ok(filter) = std::env::var("CONFAB_LOG") {
        let dir = paths::data_dir();
        if std::fs::create_dir_all(&dir).is_ok()
            && let Ok(file) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("confab.log"))
        {
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_writer(std::sync::Mutex::new(file))
                .with_ansi(false)
                .init();
        }
    }
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail(code, msg)) => {
            eprintln!("confab: {msg}");
            ExitCode::from(code)
        }
    }
}
