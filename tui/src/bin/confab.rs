//! `confab`: the terminal client, and a scriptable command line on the same client core.

use std::io::{IsTerminal, Read};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use confab_tui::client::known_servers::{Fingerprint, KnownServers};
use confab_tui::client::paths;
use confab_tui::client::tls::{ConnectError, Connector, ServerAddr, TrustOptions};
use confab_tui::client::{
    ApiError, Auth, CacheMode, Client, ClientConfig, ClientError, ConnState, Event, Events,
    TrustProblem,
};
use confab_wire::pb::{self, ErrorCode};
use serde_json::json;

const EXIT_CODES: &str = "\
With no subcommand, confab opens the terminal client (log in or register there; the session is
remembered). `confab keys` prints the key bindings in effect and an example config
($XDG_CONFIG_HOME/confab/config.toml); docs/CLIENT.md describes both.

Exit codes:
  0  success (for send: the server acknowledged the message)
  1  other error
  2  usage error
  3  authentication failed (wrong name or password, session expired, not logged in), or the
     server's TLS certificate is not trusted (run `confab trust HOST:PORT`)
  4  not found (unknown user, group or thread)
  5  refused by the server (not allowed, conflict, invalid input, rate limited)
  6  server unreachable or no answer in time

A server given as tls://host:port is reached over TLS: trusted when a system root or a --ca-file
signs its certificate, or when its fingerprint is recorded (`confab trust`, known_servers in the
data directory) or given with --trust-fingerprint. host:port is plain text.

Passwords are read from CONFAB_PASSWORD or, if unset, from standard input (first line); never from
the command line. The session (resume token) is kept, mode 0600, under the XDG data directory.";

#[derive(Parser)]
#[command(name = "confab", version, about = "confab: chat for people who live in terminals", after_help = EXIT_CODES)]
struct Cli {
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

#[derive(Subcommand)]
enum Cmd {
    /// Create an account and log in.
    Register { name: String },
    /// Log in (creates a device session for this machine).
    Login { name: String },
    /// End this device session.
    Logout,
    /// Send a message; exits 0 once the server has stored it.
    Send {
        /// A friend's name.
        #[arg(long, conflicts_with = "group", required_unless_present = "group")]
        to: Option<String>,
        /// A group's name.
        #[arg(long)]
        group: Option<String>,
        /// The text.
        text: String,
    },
    /// Print incoming messages and events as JSON lines until interrupted.
    Watch,
    /// List threads with unread counts (JSON lines).
    Threads,
    /// List friends and pending friend requests (JSON lines).
    Friends,
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
    /// Groups: create or join.
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

#[derive(Subcommand)]
enum GroupCmd {
    /// Create an open group.
    Create { name: String },
    /// Join an open group by name.
    Join { name: String },
}

/// A failure with its exit code.
struct Fail(u8, String);

impl From<ClientError> for Fail {
    fn from(e: ClientError) -> Self {
        let code = match &e {
            ClientError::Server(err) => match ErrorCode::try_from(err.code) {
                Ok(ErrorCode::AuthFailed | ErrorCode::Unauthenticated) => 3,
                Ok(ErrorCode::NotFound) => 4,
                Ok(ErrorCode::Unavailable | ErrorCode::ShuttingDown | ErrorCode::Timeout) => 6,
                _ => 5,
            },
            ClientError::Timeout | ClientError::Disconnected => 6,
            _ => 1,
        };
        Fail(code, e.to_string())
    }
}

impl From<ApiError> for Fail {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Client(e) => e.into(),
            ApiError::NotFriend(name) => Fail(
                5,
                format!("{name} is not your friend (send `confab add {name}` first)"),
            ),
            e @ (ApiError::NoSuchUser(_)
            | ApiError::NoSuchGroup { .. }
            | ApiError::NoSuchRequest(_)) => Fail(4, e.to_string()),
        }
    }
}

fn config_server() -> Option<String> {
    let text = std::fs::read_to_string(paths::config_dir().join("config.toml")).ok()?;
    let v: toml::Value = toml::from_str(&text).ok()?;
    v.get("server")?.as_str().map(str::to_owned)
}

fn read_password() -> Result<String, Fail> {
    if let Ok(p) = std::env::var("CONFAB_PASSWORD") {
        return Ok(p);
    }
    if std::io::stdin().is_terminal() {
        eprint!("password: ");
    }
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| Fail(1, format!("cannot read the password: {e}")))?;
    let line = s.lines().next().unwrap_or("").to_owned();
    if line.is_empty() {
        return Err(Fail(
            2,
            "no password given (set CONFAB_PASSWORD or pipe it on stdin)".into(),
        ));
    }
    Ok(line)
}

/// What `tls://` servers are trusted by: set once from the command line.
static TRUST: std::sync::OnceLock<TrustOptions> = std::sync::OnceLock::new();

fn trust_options() -> TrustOptions {
    TRUST.get().cloned().unwrap_or_default()
}

fn client_config(server: &str, name: Option<&str>) -> ClientConfig {
    let mut cfg = ClientConfig::new(server);
    cfg.trust = trust_options();
    cfg.client_name = "confab-cli".into();
    cfg.request_timeout = Duration::from_secs(10);
    if let Some(n) = name {
        cfg.cache =
            CacheMode::File(paths::account_dir(&paths::data_dir(), server, n).join("cache.db"));
        // The core reads and replaces the session file itself, before and after every
        // (re)connect: the processes of one account share its token.
        cfg.session = Some(paths::SessionFile::new(paths::data_dir(), server, n));
    }
    cfg
}

/// Starts the core and waits until it is authenticated (or fails for good). Events after that
/// stay in the stream for the caller.
async fn connect(
    cfg: ClientConfig,
    auth: Auth,
    server: &str,
) -> Result<(Client, Events, pb::User), Fail> {
    let (client, mut events) = Client::start(cfg, auth).map_err(Fail::from)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let ev = match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(ev)) => ev,
            Ok(None) => return Err(Fail(1, "the client stopped".into())),
            Err(_) => return Err(Fail(6, format!("cannot reach {server}"))),
        };
        match ev {
            Event::Session { user, .. } => return Ok((client, events, user)),
            Event::Untrusted(TrustProblem::Unknown { server, .. }) => {
                return Err(Fail(
                    3,
                    format!(
                        "{server} presented a certificate that no trusted authority signed: run \
                         `confab trust {server}` to check and record its fingerprint, or pass \
                         --trust-fingerprint or --ca-file"
                    ),
                ));
            }
            Event::Untrusted(TrustProblem::Refused { message, .. }) => {
                return Err(Fail(3, message));
            }
            Event::State(ConnState::Stopped { code, reason }) => {
                let exit = match code {
                    ErrorCode::AuthFailed | ErrorCode::Unauthenticated => 3,
                    _ => 5,
                };
                return Err(Fail(exit, reason));
            }
            _ => {}
        }
    }
}

/// A watch whose core stopped for good: exit 3 when the session ended (logged out, revoked,
/// expired with no newer token in the session file), 5 for any other refusal.
fn stopped_fail(server: &str, code: ErrorCode, reason: &str) -> Fail {
    match code {
        ErrorCode::AuthFailed | ErrorCode::Unauthenticated => Fail(
            3,
            format!(
                "the session ended ({reason}): run `confab login NAME` to sign in to {server} again"
            ),
        ),
        _ => Fail(5, format!("stopped: {reason}")),
    }
}

/// Resumes the stored session; `sync` runs the full catch-up (for `watch`).
async fn resume(server: &str, sync: bool) -> Result<(Client, Events, pb::User), Fail> {
    let s = paths::load_session(&paths::data_dir(), server).ok_or_else(|| {
        Fail(
            3,
            format!("not logged in to {server}: run `confab login NAME`"),
        )
    })?;
    let mut cfg = client_config(server, Some(&s.name));
    cfg.sync_on_connect = sync;
    connect(cfg, Auth::Token(s.token), server).await
}

fn state_json(s: &ConnState) -> serde_json::Value {
    match s {
        ConnState::Connecting { attempt } => {
            json!({"type": "state", "state": "connecting", "attempt": attempt})
        }
        ConnState::Online { synced } => {
            json!({"type": "state", "state": "online", "synced": synced})
        }
        ConnState::Offline { retry_in, reason } => {
            json!({"type": "state", "state": "offline", "retry_in_ms": retry_in.as_millis() as u64, "reason": reason})
        }
        ConnState::Stopped { code, reason } => {
            json!({"type": "state", "state": "stopped", "code": code.as_str_name(), "reason": reason})
        }
    }
}

/// One JSON line on standard output. A reader that went away (`confab threads | head -1`)
/// ends the command quietly with 0, as a closed pipe ends `ls`; any other failure exits 1.
fn print(v: serde_json::Value) {
    use std::io::Write;
    if let Err(e) = writeln!(std::io::stdout().lock(), "{v}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("confab: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

fn user_json(u: &Option<pb::User>) -> serde_json::Value {
    u.as_ref()
        .map_or(json!(null), |u| json!({"id": u.user_id, "name": u.name}))
}

fn message_json(m: &pb::ChatMessage) -> serde_json::Value {
    let kind = pb::MessageKind::try_from(m.kind).map_or("UNKNOWN", |k| k.as_str_name());
    let mut v = json!({
        "type": "message", "thread_id": m.thread_id, "seq": m.seq, "message_id": m.message_id,
        "from": user_json(&m.sender), "ts_ms": m.server_ts_ms, "kind": kind, "body": m.body,
        "recalled": m.recalled, "edited_ts_ms": m.edited_ts_ms,
    });
    // EDIT and RECALL name the message they change; SYSTEM says what changed in the group.
    if m.target_message_id != 0 {
        v["target_message_id"] = json!(m.target_message_id);
    }
    if let Some(c) = &m.group_change {
        v["group_change"] = json!({
            "kind": pb::group_change::Kind::try_from(c.kind).map_or("UNKNOWN", |k| k.as_str_name()),
            "actor": user_json(&c.actor),
            "subject": user_json(&c.subject),
            "role": role_name(c.role),
        });
    }
    v
}

fn role_name(role: i32) -> &'static str {
    pb::Role::try_from(role).map_or("UNKNOWN", |r| r.as_str_name())
}

fn request_json(r: &pb::FriendRequest) -> serde_json::Value {
    json!({
        "request_id": r.request_id, "from": user_json(&r.from), "to": user_json(&r.to),
        "note": r.note, "state": request_state(r), "thread_id": r.thread_id,
    })
}

fn group_json(g: &pb::Group) -> serde_json::Value {
    json!({
        "group_id": g.group_id, "thread_id": g.thread_id, "name": g.name,
        "description": g.description, "open": g.open, "owner_id": g.owner_id,
        "member_count": g.member_count, "my_role": role_name(g.my_role), "invited": g.invited,
    })
}

/// A durable user event as one JSON line: `event` names its kind, the rest are its fields.
fn event_json(e: &pb::UserEvent) -> serde_json::Value {
    use pb::user_event::Kind as K;
    let (event, mut v) = match &e.kind {
        Some(K::FriendRequestReceived(r)) => ("friend_request_received", request_json(r)),
        Some(K::FriendRequestAnswered(r)) => ("friend_request_answered", request_json(r)),
        Some(K::FriendRequestCancelled(r)) => ("friend_request_cancelled", request_json(r)),
        Some(K::FriendRemoved(u)) => (
            "friend_removed",
            json!({"user": user_json(&Some(u.clone()))}),
        ),
        Some(K::GroupInvited(g)) => ("group_invited", group_json(g)),
        Some(K::GroupJoined(g)) => ("group_joined", group_json(g)),
        Some(K::GroupLeft(g)) => ("group_left", group_json(g)),
        Some(K::GroupUpdated(g)) => ("group_updated", group_json(g)),
        Some(K::ThreadAdded(t)) => (
            "thread_added",
            json!({
                "thread_id": t.thread_id,
                "kind": pb::ThreadKind::try_from(t.kind).map_or("UNKNOWN", |k| k.as_str_name()),
                "peer": user_json(&t.peer),
                "group": t.group.as_ref().map_or(json!(null), group_json),
            }),
        ),
        None => ("unknown", json!({})),
    };
    v["type"] = json!("event");
    v["event"] = json!(event);
    v["event_seq"] = json!(e.event_seq);
    v["ts_ms"] = json!(e.ts_ms);
    v
}

async fn respond(server: &str, name: &str, accept: bool) -> Result<(), Fail> {
    let (c, _, _) = resume(server, false).await?;
    let r = c.respond_to(name, accept).await?;
    print(
        json!({"type": "friend_request", "from": user_json(&r.from), "state": request_state(&r), "thread_id": r.thread_id}),
    );
    c.shutdown().await;
    Ok(())
}

fn request_state(r: &pb::FriendRequest) -> &'static str {
    pb::RequestState::try_from(r.state).map_or("?", |s| s.as_str_name())
}

fn keys() {
    let settings = confab_tui::run::load_settings();
    let mut out = String::from("Key bindings (keys, config name, action):\n");
    out.push_str(&confab_tui::app::keymap::help_text(&settings.keymap));
    for p in &settings.problems {
        out.push_str(&format!("config problem: {p}\n"));
    }
    out.push_str("\nSlash commands:\n");
    for (_, usage) in confab_tui::app::commands::COMMANDS {
        out.push_str(&format!("  {usage}\n"));
    }
    out.push_str(&format!(
        "\nExample config:\n{}",
        confab_tui::app::config::EXAMPLE
    ));
    // A closed pipe (`confab keys | head`) is not an error worth a panic.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), out.as_bytes());
}

/// `register` and `login`: a password session, then the client stops (the token is saved).
async fn sign_in(server: &str, name: String, register: bool) -> Result<(), Fail> {
    let password = read_password()?;
    let cfg = client_config(server, Some(&name));
    let (auth, kind) = if register {
        (Auth::Register { name, password }, "registered")
    } else {
        (Auth::Login { name, password }, "logged_in")
    };
    let (c, _, user) = connect(cfg, auth, server).await?;
    print(json!({"type": kind, "user": user_json(&Some(user))}));
    c.shutdown().await;
    Ok(())
}

async fn logout(server: &str) -> Result<(), Fail> {
    let (c, _, _) = resume(server, false).await?;
    c.logout().await?;
    c.shutdown().await;
    paths::clear_session(&paths::data_dir(), server);
    Ok(())
}

async fn send(
    server: &str,
    to: Option<String>,
    group: Option<String>,
    text: String,
) -> Result<(), Fail> {
    let (c, _, _) = resume(server, false).await?;
    let thread = match (to, group) {
        (Some(name), _) => c.dm_thread(&name).await?.thread_id,
        (None, Some(name)) => c.my_group(&name).await?.thread_id,
        (None, None) => return Err(Fail(2, "give --to NAME or --group NAME".into())),
    };
    let ack = c.send_acked(thread, text, Duration::from_secs(30)).await?;
    print(
        json!({"type": "sent", "thread_id": ack.thread_id, "seq": ack.seq, "message_id": ack.message_id}),
    );
    c.shutdown().await;
    Ok(())
}

async fn watch(server: &str) -> Result<(), Fail> {
    let (c, mut events, _) = resume(server, true).await?;
    let stop = interrupted();
    tokio::pin!(stop);
    loop {
        let ev = tokio::select! {
            _ = &mut stop => break,
            ev = events.recv() => match ev { Some(ev) => ev, None => break },
        };
        match ev {
            Event::Message(m) => print(message_json(&m)),
            Event::UserEvent(e) => print(event_json(&e)),
            Event::Presence(p) => {
                print(json!({"type": "presence", "user": user_json(&p.user), "online": p.online}))
            }
            Event::Typing(t) => print(
                json!({"type": "typing", "thread_id": t.thread_id, "user": user_json(&t.user)}),
            ),
            Event::ReadReceipt(r) => print(
                json!({"type": "read", "thread_id": r.thread_id, "user": user_json(&r.user), "read_seq": r.read_seq}),
            ),
            Event::State(s) => {
                print(state_json(&s));
                if let ConnState::Stopped { code, reason } = s {
                    // The core waits for a retry nobody will ask for: end, never hang.
                    c.shutdown().await;
                    return Err(stopped_fail(server, code, &reason));
                }
            }
            Event::Synced => print(json!({"type": "synced"})),
            _ => {}
        }
    }
    c.shutdown().await;
    Ok(())
}

async fn threads(server: &str) -> Result<(), Fail> {
    let (c, _, _) = resume(server, false).await?;
    for t in c.list_threads().await? {
        let name = t
            .peer
            .as_ref()
            .map(|p| p.name.clone())
            .or_else(|| t.group.as_ref().map(|g| g.name.clone()));
        print(json!({
            "type": "thread", "thread_id": t.thread_id,
            "kind": pb::ThreadKind::try_from(t.kind).map_or("?", |k| k.as_str_name()),
            "name": name, "last_seq": t.last_seq, "unread": t.last_seq.saturating_sub(t.read_seq),
            "last": t.last_message.as_ref().map(|m| m.body.clone()),
        }));
    }
    c.shutdown().await;
    Ok(())
}

async fn friends(server: &str) -> Result<(), Fail> {
    let (c, _, _) = resume(server, false).await?;
    for f in c.friends().await? {
        print(
            json!({"type": "friend", "user": user_json(&f.user), "online": f.online, "thread_id": f.thread_id}),
        );
    }
    let reqs = c.friend_requests().await?;
    for r in reqs.incoming {
        print(json!({"type": "request_in", "from": user_json(&r.from), "note": r.note}));
    }
    for r in reqs.outgoing {
        print(json!({"type": "request_out", "to": user_json(&r.to), "note": r.note}));
    }
    c.shutdown().await;
    Ok(())
}

async fn add(server: &str, name: &str, note: &str) -> Result<(), Fail> {
    let (c, _, _) = resume(server, false).await?;
    let r = c.add_friend(name, note).await?;
    print(json!({"type": "friend_request", "to": user_json(&r.to), "state": request_state(&r)}));
    c.shutdown().await;
    Ok(())
}

async fn group(server: &str, g: GroupCmd) -> Result<(), Fail> {
    let (c, _, _) = resume(server, false).await?;
    let group = match g {
        GroupCmd::Create { name } => c.create_group(&name).await?,
        GroupCmd::Join { name } => c.join_group_by_name(&name).await?,
    };
    print(
        json!({"type": "group", "group_id": group.group_id, "thread_id": group.thread_id, "name": group.name}),
    );
    c.shutdown().await;
    Ok(())
}

/// `confab trust`: connects without pins, shows the certificate's fingerprint, and records it
/// once the user confirms. Nothing but the handshake is sent.
async fn trust(server: &str, yes: bool) -> Result<(), Fail> {
    let text = if server.contains("://") {
        server.to_owned()
    } else {
        format!("tls://{server}")
    };
    let addr: ServerAddr = text.parse().map_err(|e| Fail(2, format!("{e}")))?;
    let opts = trust_options();
    let path = opts
        .known_servers
        .clone()
        .unwrap_or_else(confab_tui::client::known_servers::default_path);
    let mut known = KnownServers::load(&path).map_err(|e| Fail(1, e.to_string()))?;
    let probe = Connector::new(TrustOptions {
        trust_fingerprint: None,
        known_servers: None,
        ..opts
    })
    .map_err(|e| Fail(1, e.to_string()))?;
    let authority = addr.authority();
    let presented = match tokio::time::timeout(Duration::from_secs(10), probe.connect(&addr)).await
    {
        Err(_) => return Err(Fail(6, format!("{authority}: no answer in time"))),
        Ok(Ok(stream)) => {
            let fp = stream.peer_fingerprint();
            println!(
                "{authority} is trusted by a certificate authority (fingerprint {})",
                fp.map_or_else(String::new, |f| f.to_string())
            );
            return Ok(());
        }
        Ok(Err(ConnectError::UnknownServer { fingerprint, .. })) => fingerprint,
        Ok(Err(e @ ConnectError::Connect { .. })) => return Err(Fail(6, e.to_string())),
        Ok(Err(e)) => return Err(Fail(3, e.to_string())),
    };
    match known.lookup(&authority) {
        Some(fp) if fp == presented => {
            println!("{authority} is already trusted: {presented}");
            return Ok(());
        }
        Some(old) => println!(
            "WARNING: {authority} presented {presented}, but {old} is recorded in {}.\n\
             Replace it only if the operator says the certificate was changed.",
            path.display()
        ),
        None => println!("{authority} presented a certificate with fingerprint\n  {presented}"),
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(Fail(
                2,
                "not recorded: confirm on a terminal, or pass --yes once you have compared it"
                    .into(),
            ));
        }
        eprint!("Compare it with `confab-server fingerprint` on the server. Trust it? [y/N] ");
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| Fail(1, format!("cannot read the answer: {e}")))?;
        if !matches!(line.trim(), "y" | "Y" | "yes" | "YES") {
            return Err(Fail(1, "not recorded".into()));
        }
    }
    known
        .record(&authority, presented)
        .map_err(|e| Fail(1, e.to_string()))?;
    println!("recorded in {}", path.display());
    Ok(())
}

async fn run(cli: Cli) -> Result<(), Fail> {
    let server = cli
        .server
        .or_else(config_server)
        .unwrap_or_else(|| "127.0.0.1:7000".into());
    let Some(cmd) = cli.cmd else {
        if !std::io::stdout().is_terminal() {
            return Err(Fail(
                2,
                "the terminal client needs a terminal; use a subcommand (see --help)".into(),
            ));
        }
        return confab_tui::run::run(Some(server), trust_options())
            .await
            .map_err(|e| Fail(1, format!("terminal: {e}")));
    };
    match cmd {
        Cmd::Trust { server: given, yes } => trust(given.as_deref().unwrap_or(&server), yes).await,
        Cmd::Keys => {
            keys();
            Ok(())
        }
        Cmd::Register { name } => sign_in(&server, name, true).await,
        Cmd::Login { name } => sign_in(&server, name, false).await,
        Cmd::Logout => logout(&server).await,
        Cmd::Send { to, group, text } => send(&server, to, group, text).await,
        Cmd::Watch => watch(&server).await,
        Cmd::Threads => threads(&server).await,
        Cmd::Friends => friends(&server).await,
        Cmd::Add { name, note } => add(&server, &name, &note).await,
        Cmd::Accept { name } => respond(&server, &name, true).await,
        Cmd::Decline { name } => respond(&server, &name, false).await,
        Cmd::Group(g) => group(&server, g).await,
    }
}

/// Ctrl-C, or SIGTERM (a script stopping a background watcher: non-interactive shells start
/// background jobs with SIGINT ignored).
async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = TRUST.set(TrustOptions {
        ca_files: cli.ca_file.clone(),
        trust_fingerprint: cli.trust_fingerprint,
        ..TrustOptions::default()
    });
    // Logs go to a file (never the screen): $XDG_DATA_HOME/confab/confab.log when CONFAB_LOG is set.
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
