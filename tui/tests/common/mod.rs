//! Shared test helpers: a real confab-server on its own runtime (so a test can kill it without
//! any goodbye), and client-core conveniences.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod fixture;

use confab_server::config::Config;
use confab_tui::client::{Auth, Backoff, CacheMode, Client, ClientConfig, Event, Events};
use confab_wire::Body;
use confab_wire::pb;

pub const PASSWORD: &str = "correct horse battery";
pub const WAIT: Duration = Duration::from_secs(20);

/// A server running on a runtime of its own thread.
pub struct ServerProc {
    pub addr: SocketAddr,
    pub dir: PathBuf,
    rt: Option<tokio::runtime::Runtime>,
    /// Applied again by `restart`.
    tune: std::sync::Arc<dyn Fn(&mut Config) + Send + Sync>,
}

impl ServerProc {
    pub fn start(dir: &Path) -> Self {
        Self::start_on(dir, "127.0.0.1:0".parse().unwrap())
    }

    pub fn start_on(dir: &Path, addr: SocketAddr) -> Self {
        Self::start_with(dir, addr, |_| {})
    }

    /// Starts with `tune` applied to the configuration (TLS, limits).
    pub fn start_with(
        dir: &Path,
        addr: SocketAddr,
        tune: impl Fn(&mut Config) + Send + Sync + 'static,
    ) -> Self {
        let tune: std::sync::Arc<dyn Fn(&mut Config) + Send + Sync> = std::sync::Arc::new(tune);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let mut cfg = Config::defaults().expect("config");
        cfg.listen = addr;
        cfg.data_dir = dir.to_path_buf();
        cfg.auth_per_ip_per_minute = 100_000;
        cfg.auth_per_name_per_minute = 10_000;
        tune(&mut cfg);
        // block_on cannot run on a thread that drives the test's runtime: use a plain thread.
        let (rt, result) = std::thread::spawn(move || {
            let mut last_err = None;
            for _ in 0..50 {
                match rt.block_on(confab_server::start(cfg.clone())) {
                    Ok(running) => return (rt, Ok(running.addr)),
                    Err(e) => {
                        last_err = Some(e.to_string());
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
            (rt, Err(last_err))
        })
        .join()
        .expect("starter thread");
        match result {
            Ok(addr) => Self {
                addr,
                dir: dir.to_path_buf(),
                rt: Some(rt),
                tune,
            },
            Err(e) => {
                rt.shutdown_background();
                panic!("server did not start: {e:?}")
            }
        }
    }

    /// Stops the server at once: every task dropped, sockets closed, no goodbye frames.
    pub fn kill(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }

    /// Starts again on the same address, data and tuning.
    pub fn restart(&mut self) {
        self.kill();
        let tune = self.tune.clone();
        let mut again = Self::start_with(&self.dir, self.addr, move |c| tune(c));
        self.rt = again.rt.take();
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn config(addr: SocketAddr, cache: Option<PathBuf>) -> ClientConfig {
    let mut cfg = ClientConfig::new(addr.to_string());
    cfg.cache = cache.map_or(CacheMode::Memory, CacheMode::File);
    cfg.backoff = Backoff {
        base: Duration::from_millis(50),
        max: Duration::from_millis(400),
        reset_after: Duration::from_secs(5),
    };
    cfg.request_timeout = Duration::from_secs(5);
    cfg
}

/// Starts a client and waits until it is online and synced; returns its user id too.
pub async fn online(cfg: ClientConfig, auth: Auth) -> (Client, Events, pb::User, String) {
    let (client, mut events) = Client::start(cfg, auth).expect("client");
    let mut user = None;
    let mut token = String::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let ev = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("client did not come online")
            .expect("event stream");
        match ev {
            Event::Session {
                user: u, token: t, ..
            } => {
                user = Some(u);
                token = t;
            }
            Event::Synced => break,
            _ => {}
        }
    }
    (client, events, user.expect("session"), token)
}

pub async fn register(addr: SocketAddr, name: &str) -> (Client, Events, pb::User, String) {
    online(
        config(addr, None),
        Auth::Register {
            name: name.into(),
            password: PASSWORD.into(),
            invite: String::new(),
        },
    )
    .await
}

/// Makes two users friends; returns the private thread.
pub async fn befriend(a: &Client, b: &Client, b_id: u64) -> u64 {
    let Body::FriendRequest(req) = a
        .request(Body::SendFriendRequest(pb::SendFriendRequest {
            user_id: b_id,
            note: String::new(),
        }))
        .await
        .expect("request")
    else {
        panic!("expected FriendRequest")
    };
    let Body::FriendRequest(req) = b
        .request(Body::RespondFriendRequest(pb::RespondFriendRequest {
            request_id: req.request_id,
            accept: true,
        }))
        .await
        .expect("accept")
    else {
        panic!("expected FriendRequest")
    };
    req.thread_id
}

/// Collects events until `done` says so (or panics after WAIT).
pub async fn until(events: &mut Events, mut done: impl FnMut(&Event) -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let ev = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("timed out waiting for an event")
            .expect("event stream ended");
        if done(&ev) {
            return;
        }
    }
}

/// A scripted server's answer to Hello: signed in as `user_id` named `name` on `device_id`,
/// with `token` as the next resume token.
pub fn hello_ok(user_id: u64, name: &str, device_id: u64, token: &str) -> Body {
    Body::HelloOk(pb::HelloOk {
        protocol_major: 1,
        heartbeat_interval_ms: 10_000,
        idle_timeout_ms: 30_000,
        max_frame_bytes: 65_536,
        auth: Some(pb::AuthOk {
            user: Some(pb::User {
                user_id,
                name: name.into(),
            }),
            device_id,
            resume_token: token.into(),
            last_event_seq: 0,
        }),
        ..Default::default()
    })
}

/// What a scripted server answers to the requests every connection makes (Hello as user 1
/// "u1" on device 1 with token "t", SyncEvents, Ping); `None` for the rest.
pub fn scripted_reply(body: &Body) -> Option<Body> {
    match body {
        Body::Hello(_) => Some(hello_ok(1, "u1", 1, "t")),
        Body::SyncEvents(_) => Some(Body::EventPage(pb::EventPage::default())),
        Body::Ping(p) => Some(Body::Pong(pb::Pong {
            nonce: p.nonce,
            server_time_ms: 0,
        })),
        _ => None,
    }
}

/// A client core for a scripted server at `addr`: in-memory cache, resuming token "t".
pub fn scripted_client(addr: SocketAddr) -> (Client, Events) {
    let mut cfg = ClientConfig::new(addr.to_string());
    cfg.cache = CacheMode::Memory;
    Client::start(cfg, Auth::Token("t".into())).expect("client starts")
}

/// The next event before `deadline`.
pub async fn next_before(events: &mut Events, deadline: tokio::time::Instant) -> Event {
    tokio::time::timeout_at(deadline, events.recv())
        .await
        .expect("an event in time")
        .expect("event stream ended")
}
