//! Reaching the server for one command: the client configuration, the password, signing in
//! with the shared session, and turning a stopped core into an exit code.

use std::io::{IsTerminal, Read};
use std::sync::OnceLock;
use std::time::Duration;

use confab_wire::pb::{self, ErrorCode};

use super::fail::{AUTH, Fail, OTHER, UNREACHABLE, code_exit};
use crate::client::paths;
use crate::client::tls::TrustOptions;
use crate::client::{
    Auth, CacheMode, Client, ClientConfig, ConnState, Event, Events, TrustProblem,
};

/// What `tls://` servers are trusted by: set once from the command line.
static TRUST: OnceLock<TrustOptions> = OnceLock::new();

pub fn set_trust(opts: TrustOptions) {
    let _ = TRUST.set(opts);
}

pub fn trust_options() -> TrustOptions {
    TRUST.get().cloned().unwrap_or_default()
}

/// The server named in the config file, when `--server`/`CONFAB_SERVER` are not given.
pub fn config_server() -> Option<String> {
    let text = std::fs::read_to_string(paths::config_dir().join("config.toml")).ok()?;
    let v: toml::Value = toml::from_str(&text).ok()?;
    v.get("server")?.as_str().map(str::to_owned)
}

/// From CONFAB_PASSWORD, or the first line of standard input; never from the command line.
pub fn read_password() -> Result<String, Fail> {
    if let Ok(p) = std::env::var("CONFAB_PASSWORD") {
        return Ok(p);
    }
    if std::io::stdin().is_terminal() {
        eprint!("password: ");
    }
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| Fail(OTHER, format!("cannot read the password: {e}")))?;
    let line = s.lines().next().unwrap_or("").to_owned();
    if line.is_empty() {
        return Err(Fail::usage(
            "no password given (set CONFAB_PASSWORD or pipe it on stdin)",
        ));
    }
    Ok(line)
}

/// How a command connects: `quiet` for every command but `watch`, so a `confab send` does not
/// show its user online and offline to every friend (Hello.quiet).
pub fn client_config(server: &str, name: Option<&str>, quiet: bool) -> ClientConfig {
    let mut cfg = ClientConfig::new(server);
    cfg.trust = trust_options();
    cfg.client_name = "confab-cli".into();
    cfg.request_timeout = Duration::from_secs(10);
    cfg.quiet = quiet;
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
pub async fn connect(
    cfg: ClientConfig,
    auth: Auth,
    server: &str,
) -> Result<(Client, Events, pb::User), Fail> {
    let (client, mut events) = Client::start(cfg, auth).map_err(Fail::from)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let ev = match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(ev)) => ev,
            Ok(None) => return Err(Fail(OTHER, "the client stopped".into())),
            Err(_) => return Err(Fail(UNREACHABLE, format!("cannot reach {server}"))),
        };
        match ev {
            Event::Session { user, .. } => return Ok((client, events, user)),
            Event::Untrusted(TrustProblem::Unknown { server, .. }) => {
                return Err(Fail(
                    AUTH,
                    format!(
                        "{server} presented a certificate that no trusted authority signed: run \
                         `confab trust {server}` to check and record its fingerprint, or pass \
                         --trust-fingerprint or --ca-file"
                    ),
                ));
            }
            Event::Untrusted(TrustProblem::Refused { message, .. }) => {
                return Err(Fail(AUTH, message));
            }
            Event::State(ConnState::Stopped { code, reason }) => {
                return Err(Fail(code_exit(code), reason));
            }
            _ => {}
        }
    }
}

/// A core that stopped for good after it was signed in: exit 3 when the session ended (logged
/// out, revoked, expired with no newer token in the session file), the code's exit otherwise.
pub fn stopped_fail(server: &str, code: ErrorCode, reason: &str) -> Fail {
    match code {
        ErrorCode::AuthFailed | ErrorCode::Unauthenticated => Fail(
            AUTH,
            format!(
                "the session ended ({reason}): run `confab login NAME` to sign in to {server} again"
            ),
        ),
        ErrorCode::AccountDisabled => Fail(AUTH, format!("stopped: {reason}")),
        other => Fail(code_exit(other), format!("stopped: {reason}")),
    }
}

/// Resumes the stored session. `watch` is the one command that is not quiet and runs the full
/// catch-up.
pub async fn resume(server: &str, watch: bool) -> Result<(Client, Events, pb::User), Fail> {
    let s = paths::load_session(&paths::data_dir(), server).ok_or_else(|| {
        Fail(
            AUTH,
            format!("not logged in to {server}: run `confab login NAME`"),
        )
    })?;
    let mut cfg = client_config(server, Some(&s.name), !watch);
    cfg.sync_on_connect = watch;
    connect(cfg, Auth::Token(s.token), server).await
}
