//! Test harness: a server on 127.0.0.1:0 with a fresh embedded store, and a raw protocol
//! client that speaks frames directly (no client library, so the server is tested against the
//! wire protocol itself).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use confab_server::Running;
use confab_server::config::Config;
use confab_wire::pb::{self, ErrorCode};
use confab_wire::{Body, Envelope, EnvelopeCodec, FrameError};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

pub mod http;

pub const PASSWORD: &str = "correct horse battery";
pub const WAIT: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub addr: SocketAddr,
    pub running: Running,
    pub dir: tempfile::TempDir,
    /// The config it runs with (a restart on the same store reuses it).
    pub cfg: Config,
    pub db: Option<TestDb>,
}

/// A database of its own on the MySQL/MariaDB server named by `CONFAB_TEST_MYSQL` (for example
/// `mysql://root@127.0.0.1:3306`), dropped when the test ends. Without that variable the tests
/// run on the embedded store.
pub struct TestDb {
    base: String,
    pub name: String,
}

impl TestDb {
    pub async fn create() -> Option<Self> {
        use mysql_async::prelude::Queryable;
        let base = std::env::var("CONFAB_TEST_MYSQL").ok()?;
        let base = base.trim_end_matches('/').to_owned();
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("confab_t_{}_{}_{}", std::process::id(), n, rand_suffix());
        let pool = mysql_async::Pool::new(base.as_str());
        let mut conn = pool.get_conn().await.expect("connect to CONFAB_TEST_MYSQL");
        // The name is generated here, never user input.
        conn.query_drop(format!(
            "CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        ))
        .await
        .expect("create test database");
        drop(conn);
        let _ = pool.disconnect().await;
        Some(Self { base, name })
    }

    pub fn url(&self) -> String {
        format!("{}/{}", self.base, self.name)
    }
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (base, name) = (self.base.clone(), self.name.clone());
        // Not joined: the server under test may still be finishing a query on this database on
        // the test's (now blocked) runtime, and DROP would wait for it. scripts/test.sh drops
        // whatever a finished test process left behind.
        std::thread::spawn(move || {
            use mysql_async::prelude::Queryable;
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let pool = mysql_async::Pool::new(base.as_str());
                if let Ok(mut conn) = pool.get_conn().await {
                    let _ = conn.query_drop("SET SESSION lock_wait_timeout = 10").await;
                    let _ = conn
                        .query_drop(format!("DROP DATABASE IF EXISTS {name}"))
                        .await;
                }
                let _ = pool.disconnect().await;
            });
        });
    }
}

/// The harness's base config on a data directory (and the test database, if any).
pub fn base_config(data_dir: &std::path::Path, db: Option<&TestDb>) -> Config {
    let mut cfg = Config::defaults().expect("defaults");
    cfg.listen = "127.0.0.1:0".parse().expect("addr");
    cfg.data_dir = data_dir.to_path_buf();
    cfg.mysql_url = db.map(TestDb::url);
    cfg.mysql_pool = 4;
    // Tests register many users from one address.
    cfg.auth_per_ip_per_minute = 100_000;
    cfg.auth_per_name_per_minute = 1000;
    cfg
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tune: impl FnOnce(&mut Config)) -> Self {
        if let Ok(filter) = std::env::var("CONFAB_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let db = TestDb::create().await;
        let mut cfg = base_config(dir.path(), db.as_ref());
        tune(&mut cfg);
        let running = confab_server::start(cfg.clone())
            .await
            .expect("server starts");
        Self {
            addr: running.addr,
            running,
            dir,
            cfg,
            db,
        }
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.addr).await
    }

    /// A new user, registered and logged in on a fresh connection.
    pub async fn user(&self, name: &str) -> Client {
        let mut c = self.client().await;
        c.register(name).await;
        c
    }
}

/// A client's byte stream: plain TCP, or TLS where a test needs it.
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

pub struct Client {
    pub framed: Framed<Box<dyn Io>, EnvelopeCodec>,
    next_id: u64,
    pub pushes: VecDeque<Body>,
    pub user: Option<pb::User>,
    pub device_id: u64,
    pub token: String,
    pub hello: Option<pb::HelloOk>,
}

impl Client {
    /// Connects without sending anything.
    pub async fn raw(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Self {
            framed: Framed::new(Box::new(stream), EnvelopeCodec::new()),
            next_id: 1,
            pushes: VecDeque::new(),
            user: None,
            device_id: 0,
            token: String::new(),
            hello: None,
        }
    }

    /// Wraps an already connected stream (after a PROXY header, or a custom connect).
    pub fn from_stream(stream: impl Io + 'static) -> Self {
        Self {
            framed: Framed::new(Box::new(stream), EnvelopeCodec::new()),
            next_id: 1,
            pushes: VecDeque::new(),
            user: None,
            device_id: 0,
            token: String::new(),
            hello: None,
        }
    }

    /// Connects and completes the Hello exchange.
    pub async fn connect(addr: SocketAddr) -> Self {
        let mut c = Self::raw(addr).await;
        let ok = c.hello_with_token("").await;
        assert!(ok.auth.is_none());
        c
    }

    pub async fn hello_with_token(&mut self, token: &str) -> pb::HelloOk {
        self.hello_as(token, false).await
    }

    /// Hello with a resume token (may be empty) and `quiet` (does not count for presence).
    pub async fn hello_as(&mut self, token: &str, quiet: bool) -> pb::HelloOk {
        let reply = self
            .request(Body::Hello(pb::Hello {
                protocol_major: 1,
                protocol_minor: 2,
                client_name: "server-tests".into(),
                client_version: "0".into(),
                resume_token: token.into(),
                quiet,
            }))
            .await;
        let Body::HelloOk(ok) = reply else {
            panic!("expected HelloOk, got {reply:?}")
        };
        if let Some(auth) = &ok.auth {
            self.adopt(auth);
        }
        self.hello = Some(ok.clone());
        ok
    }

    fn adopt(&mut self, auth: &pb::AuthOk) {
        self.user = auth.user.clone();
        self.device_id = auth.device_id;
        self.token = auth.resume_token.clone();
    }

    pub fn id(&self) -> u64 {
        self.user.as_ref().map_or(0, |u| u.user_id)
    }

    pub fn name(&self) -> String {
        self.user
            .as_ref()
            .map_or_else(String::new, |u| u.name.clone())
    }

    pub async fn send_env(&mut self, env: Envelope) {
        self.framed.send(env).await.expect("send frame");
    }

    /// Next frame from the server, or None on close/timeout.
    pub async fn recv(&mut self) -> Option<Result<Envelope, FrameError>> {
        tokio::time::timeout(WAIT, self.framed.next())
            .await
            .ok()
            .flatten()
    }

    /// Sends a request and returns its reply body; pushes seen meanwhile are queued.
    pub async fn request(&mut self, body: Body) -> Body {
        let id = self.next_id;
        self.next_id += 1;
        self.send_env(Envelope::new(id, body)).await;
        loop {
            let env = self
                .recv()
                .await
                .unwrap_or_else(|| panic!("no reply to request {id}"))
                .expect("valid frame");
            if env.req_id == id {
                return env.body.expect("reply has a body");
            }
            assert_eq!(env.req_id, 0, "reply to an unknown request");
            if let Some(b) = env.body {
                self.pushes.push_back(b);
            }
        }
    }

    /// A request that must succeed.
    pub async fn ok(&mut self, body: Body) -> Body {
        match self.request(body).await {
            Body::Error(e) => panic!("request failed: {e}"),
            b => b,
        }
    }

    /// A request that must fail; returns the error.
    pub async fn fail(&mut self, body: Body) -> pb::Error {
        match self.request(body).await {
            Body::Error(e) => e,
            b => panic!("expected an error, got {b:?}"),
        }
    }

    pub async fn fail_code(&mut self, body: Body) -> ErrorCode {
        let e = self.fail(body).await;
        ErrorCode::try_from(e.code).expect("known code")
    }

    pub async fn register(&mut self, name: &str) {
        let reply = self
            .ok(Body::Register(pb::Register {
                name: name.into(),
                password: PASSWORD.into(),
                device_name: "test".into(),
                invite_code: String::new(),
            }))
            .await;
        let Body::AuthOk(auth) = reply else {
            panic!("expected AuthOk, got {reply:?}")
        };
        self.adopt(&auth);
    }

    pub async fn login(&mut self, name: &str, password: &str) -> Body {
        let reply = self
            .request(Body::Login(pb::Login {
                name: name.into(),
                password: password.into(),
                device_name: "test".into(),
            }))
            .await;
        if let Body::AuthOk(auth) = &reply {
            self.adopt(auth);
        }
        reply
    }

    /// Waits for a push matching `pred` (earlier non-matching pushes stay queued).
    pub async fn push_where(&mut self, pred: impl Fn(&Body) -> bool) -> Body {
        if let Some(pos) = self.pushes.iter().position(&pred) {
            return self.pushes.remove(pos).expect("position is valid");
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let env = tokio::time::timeout_at(deadline, self.framed.next())
                .await
                .expect("timed out waiting for a push")
                .expect("connection closed while waiting for a push")
                .expect("valid frame");
            assert_eq!(env.req_id, 0);
            let b = env.body.expect("push has a body");
            if pred(&b) {
                return b;
            }
            self.pushes.push_back(b);
        }
    }

    /// Asserts that no push matching `pred` arrives within `wait`.
    pub async fn no_push_where(&mut self, wait: Duration, pred: impl Fn(&Body) -> bool) {
        assert!(
            !self.pushes.iter().any(&pred),
            "unexpected push already queued"
        );
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(Some(Ok(env))) = tokio::time::timeout_at(deadline, self.framed.next()).await {
            let b = env.body.expect("push has a body");
            assert!(!pred(&b), "unexpected push {b:?}");
            self.pushes.push_back(b);
        }
    }

    pub async fn message_push(&mut self, thread: u64) -> pb::ChatMessage {
        match self
            .push_where(|b| matches!(b, Body::MessagePush(p) if p.message.as_ref().is_some_and(|m| m.thread_id == thread)))
            .await
        {
            Body::MessagePush(p) => p.message.expect("message"),
            _ => unreachable!(),
        }
    }

    pub async fn event_push(&mut self) -> pb::user_event::Kind {
        match self.push_where(|b| matches!(b, Body::EventPush(_))).await {
            Body::EventPush(p) => p.event.and_then(|e| e.kind).expect("event kind"),
            _ => unreachable!(),
        }
    }

    /// Waits for the server to close the connection; returns the fatal error it sent, if any.
    pub async fn closed_with(&mut self) -> Option<pb::Error> {
        let mut last = None;
        loop {
            match self.recv().await {
                Some(Ok(env)) => {
                    if let Some(Body::Error(e)) = env.body
                        && e.fatal
                    {
                        last = Some(e);
                    }
                }
                Some(Err(_)) | None => return last,
            }
        }
    }

    pub async fn send_text(&mut self, thread: u64, cmid: &str, text: &str) -> pb::SendAck {
        match self
            .ok(Body::Send(pb::Send {
                thread_id: thread,
                client_msg_id: cmid.into(),
                body: text.into(),
                reply_to: 0,
            }))
            .await
        {
            Body::SendAck(a) => a,
            b => panic!("expected SendAck, got {b:?}"),
        }
    }

    pub async fn sync(&mut self, thread: u64, since: u64) -> Vec<pb::ChatMessage> {
        let mut out = Vec::new();
        let mut since = since;
        loop {
            let reply = self
                .ok(Body::SyncThread(pb::SyncThread {
                    thread_id: thread,
                    since_seq: since,
                    limit: 0,
                }))
                .await;
            let Body::MessagePage(page) = reply else {
                panic!("expected MessagePage")
            };
            if let Some(last) = page.messages.last() {
                since = last.seq;
            }
            out.extend(page.messages);
            if !page.has_more {
                return out;
            }
        }
    }
}

/// Makes `a` and `b` friends; returns their private thread id.
pub async fn befriend(a: &mut Client, b: &mut Client) -> u64 {
    let reply = a
        .ok(Body::SendFriendRequest(pb::SendFriendRequest {
            user_id: b.id(),
            note: "hi".into(),
        }))
        .await;
    let Body::FriendRequest(req) = reply else {
        panic!("expected FriendRequest")
    };
    let reply = b
        .ok(Body::RespondFriendRequest(pb::RespondFriendRequest {
            request_id: req.request_id,
            accept: true,
        }))
        .await;
    let Body::FriendRequest(req) = reply else {
        panic!("expected FriendRequest")
    };
    assert_eq!(req.state, pb::RequestState::Accepted as i32);
    assert_ne!(req.thread_id, 0);
    req.thread_id
}

/// Creates an open group owned by `owner`; returns (group_id, thread_id).
pub async fn group(owner: &mut Client, name: &str) -> (u64, u64) {
    let reply = owner
        .ok(Body::CreateGroup(pb::CreateGroup {
            name: name.into(),
            description: String::new(),
            open: true,
        }))
        .await;
    let Body::Group(g) = reply else {
        panic!("expected Group")
    };
    (g.group_id, g.thread_id)
}

pub async fn join(c: &mut Client, group_id: u64) -> pb::Group {
    match c.ok(Body::JoinGroup(pb::JoinGroup { group_id })).await {
        Body::Group(g) => g,
        b => panic!("expected Group, got {b:?}"),
    }
}

impl Client {
    /// Waits for the server to close the connection and panics if it is still open after
    /// [`WAIT`]. Returns the fatal error the server sent, if any; a fatal error must be the
    /// last frame before the close.
    pub async fn expect_closed(&mut self) -> Option<pb::Error> {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut fatal: Option<pb::Error> = None;
        loop {
            match tokio::time::timeout_at(deadline, self.framed.next()).await {
                Err(_) => panic!("the server did not close the connection (fatal: {fatal:?})"),
                Ok(None | Some(Err(_))) => return fatal,
                Ok(Some(Ok(env))) => {
                    assert!(
                        fatal.is_none(),
                        "a frame after the fatal error {fatal:?}: {env:?}"
                    );
                    if let Some(Body::Error(e)) = env.body
                        && e.fatal
                    {
                        fatal = Some(e);
                    }
                }
            }
        }
    }

    /// Like [`Client::expect_closed`], and the fatal error has `code`.
    pub async fn expect_closed_with(&mut self, code: ErrorCode) -> pb::Error {
        let e = self
            .expect_closed()
            .await
            .unwrap_or_else(|| panic!("closed without a fatal error (expected {code:?})"));
        assert_eq!(e.code, code as i32, "fatal error code: {e}");
        assert!(e.fatal);
        e
    }
}

/// A new connection logged in as the existing user `name` (a new device session).
pub async fn login_as(srv: &TestServer, name: &str) -> Client {
    let mut c = srv.client().await;
    match c.login(name, PASSWORD).await {
        Body::AuthOk(_) => c,
        b => panic!("login as {name} failed: {b:?}"),
    }
}

/// A port that is free now, for a process or relay the test starts later. It is picked outside
/// the kernel's ephemeral range (32768 and up by default), so no test's outgoing connection
/// takes it in the meantime.
pub fn free_port() -> u16 {
    for _ in 0..1000 {
        let port = rand::random_range(20_000..32_000);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 20000-32000");
}
