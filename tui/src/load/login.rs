//! Logins per second: by resume token (`Hello` carrying the token) and by password (`Hello`,
//! then `Login`, argon2 on the server). Each login is a fresh TCP connection spoken to
//! directly on the wire, so the figure is the server's, not the client engine's.

use std::time::{Duration, Instant};

use crate::client::tls::ClientStream;
use confab_wire::pb;
use confab_wire::{Body, Envelope, EnvelopeCodec, PROTOCOL_MAJOR, PROTOCOL_MINOR};
use futures::{SinkExt, StreamExt};
use tokio_util::codec::Framed;

use super::ledger::code_name;
use super::report::{Progress, Report, record};
use super::users::PASSWORD;
use super::{LoadError, LoadOpts, UserRecord, Users, shard};
use crate::client::ClientError;

/// Which logins to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginKinds {
    pub token: bool,
    pub password: bool,
}

const LOGIN_TIMEOUT: Duration = Duration::from_secs(30);

/// `workers` concurrent login loops (this process's share), each over its own users, for
/// warm-up + duration per kind (token first, then password).
pub async fn login(
    opts: &LoadOpts,
    users: &mut Users,
    workers: usize,
    kinds: LoginKinds,
) -> Result<Report, LoadError> {
    let all: Vec<UserRecord> = users.all().to_vec();
    if all.is_empty() {
        return Err(LoadError::Setup("no users: run setup first".into()));
    }
    let workers = workers.clamp(1, all.len());
    // Worker w logs in as users w, w + workers, ...: no user is used by two workers.
    let mine: Vec<(usize, Vec<UserRecord>)> = (0..workers)
        .filter(|w| shard(opts, *w))
        .map(|w| (w, all.iter().skip(w).step_by(workers).cloned().collect()))
        .collect();
    let mut report = Report::new("login");
    let mut pool = mine;
    for (kind, on) in [(Kind::Token, kinds.token), (Kind::Password, kinds.password)] {
        if !on {
            continue;
        }
        let measure_from = Instant::now() + opts.warmup;
        let stop_at = measure_from + opts.duration;
        let progress = Progress::new(opts.progress, 0);
        let mut tasks = Vec::new();
        for (w, list) in std::mem::take(&mut pool) {
            let opts = opts.clone();
            let progress = progress.clone();
            tasks.push(tokio::spawn(async move {
                let r = worker(&opts, w, list, kind, measure_from, stop_at, &progress).await;
                (w, r)
            }));
        }
        for t in tasks {
            match t.await {
                Ok((w, (list, r))) => {
                    report.merge(&r);
                    pool.push((w, list));
                }
                Err(e) => report.mismatches.push(format!("a login task failed: {e}")),
            }
        }
        progress.finish();
    }
    for (_, list) in &pool {
        for u in list {
            users.update_token(&u.name, u.token.clone());
        }
    }
    report.elapsed = opts.duration;
    report.check();
    Ok(report)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Token,
    Password,
}

async fn worker(
    opts: &LoadOpts,
    w: usize,
    mut list: Vec<UserRecord>,
    kind: Kind,
    measure_from: Instant,
    stop_at: Instant,
    progress: &Progress,
) -> (Vec<UserRecord>, Report) {
    let mut r = Report::new("login");
    let pause = (opts.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / opts.rate));
    let mut next = Instant::now();
    let mut i = 0usize;
    let op = match kind {
        Kind::Token => "token login",
        Kind::Password => "password login",
    };
    while Instant::now() < stop_at && !list.is_empty() {
        if let Some(p) = pause {
            tokio::time::sleep_until(next.into()).await;
            next += p;
        }
        let k = i % list.len();
        i += 1;
        let started = Instant::now();
        let addr = opts.server(w + i);
        let bind = opts.bind_addr(w + i);
        let result =
            tokio::time::timeout(LOGIN_TIMEOUT, login_once(opts, addr, bind, &list[k], kind))
                .await
                .unwrap_or(Err(LoginError::Timeout));
        let measured = started >= measure_from;
        match result {
            Ok(token) => {
                if kind == Kind::Token {
                    list[k].token = token;
                }
                if measured {
                    let h = match kind {
                        Kind::Token => {
                            r.token_logins += 1;
                            &mut r.token_login_us
                        }
                        Kind::Password => {
                            r.password_logins += 1;
                            &mut r.password_login_us
                        }
                    };
                    record(h, started.elapsed());
                }
                progress.inc();
            }
            Err(e) => r.error(format!("{op}: {e}")),
        }
    }
    (list, r)
}

/// Why one login failed; the text is the report's error category.
#[derive(Debug, thiserror::Error)]
enum LoginError {
    /// A step of the connection failed (resolve, socket, bind, connect, write, read).
    #[error("{0}: {1}")]
    Net(&'static str, String),
    #[error("closed by the server")]
    Closed,
    #[error("empty reply")]
    Empty,
    #[error("AUTH_FAILED (token refused)")]
    TokenRefused,
    /// The server refused with this code.
    #[error("{}", code_name(*.0))]
    Refused(i32),
    #[error(transparent)]
    Unexpected(#[from] ClientError),
    #[error("TIMEOUT (no answer in time)")]
    Timeout,
}

/// One login on a fresh connection; the new resume token.
async fn login_once(
    opts: &LoadOpts,
    addr: &str,
    bind: Option<std::net::IpAddr>,
    u: &UserRecord,
    kind: Kind,
) -> Result<String, LoginError> {
    let stream = opts
        .open_stream(addr, bind)
        .await
        .map_err(|e| LoginError::Net("connect", e))?;
    let mut framed = Framed::new(stream, EnvelopeCodec::new());
    let hello = Body::Hello(pb::Hello {
        protocol_major: PROTOCOL_MAJOR,
        protocol_minor: PROTOCOL_MINOR,
        client_name: "confab-load".into(),
        client_version: env!("CARGO_PKG_VERSION").into(),
        resume_token: if kind == Kind::Token {
            u.token.clone()
        } else {
            String::new()
        },
        ..Default::default()
    });
    let auth = match (call(&mut framed, 1, hello).await?, kind) {
        (Body::HelloOk(ok), Kind::Token) => ok.auth.ok_or(LoginError::TokenRefused)?,
        (Body::HelloOk(_), Kind::Password) => {
            let login = Body::Login(pb::Login {
                name: u.name.clone(),
                password: PASSWORD.into(),
                device_name: "confab-load".into(),
            });
            match call(&mut framed, 2, login).await? {
                Body::AuthOk(a) => a,
                Body::Error(e) => return Err(LoginError::Refused(e.code)),
                other => return Err(ClientError::unexpected("AuthOk", &other).into()),
            }
        }
        (Body::Error(e), _) => return Err(LoginError::Refused(e.code)),
        (other, _) => return Err(ClientError::unexpected("HelloOk", &other).into()),
    };
    Ok(auth.resume_token)
}

async fn call(
    framed: &mut Framed<ClientStream, EnvelopeCodec>,
    id: u64,
    body: Body,
) -> Result<Body, LoginError> {
    framed
        .send(Envelope::new(id, body))
        .await
        .map_err(|e| LoginError::Net("write", e.to_string()))?;
    loop {
        let env = framed
            .next()
            .await
            .ok_or(LoginError::Closed)?
            .map_err(|e| LoginError::Net("bad frame", e.to_string()))?;
        if env.req_id == id || env.req_id == 0 && matches!(env.body, Some(Body::Error(_))) {
            return env.body.ok_or(LoginError::Empty);
        }
    }
}
