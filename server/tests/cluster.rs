//! The cluster: nodes as separate processes of the real binary on one MariaDB database, a
//! private Redis started by each test (never the shared one: tests kill and restart it), and
//! nginx in front where a test needs it.
//!
//! The clients here are the harness's raw protocol clients plus the client core's rules,
//! written out (the server crate cannot depend on the tui crate): the gap rule on pushes,
//! `ResyncPush` handling, reconnect with full-jitter backoff, resume by token, and retrying an
//! unacked send with the same client_msg_id. That keeps the test on the wire protocol and
//! lets it measure reconnect times itself.
//!
//! Ignored by default (they need MariaDB, Redis and nginx); scripts/test.sh runs them with
//! --include-ignored and CONFAB_TEST_MYSQL set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use confab_wire::pb;
use confab_wire::{Body, Envelope};
use futures::{SinkExt, StreamExt};

/// The cluster tests run one at a time: each starts several nodes, and the node-loss timings
/// (reconnect within 5 s) should not depend on how many other clusters share the 2 cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Sends `sig` (`-STOP`, `-CONT`, ...) to a child process.
fn signal(child: &Child, sig: &str) {
    let pid = child.id();
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill runs")
        .success();
    assert!(ok, "kill {sig} {pid}");
}

async fn port_open(port: u16) -> bool {
    tokio::net::TcpStream::connect(addr(port)).await.is_ok()
}

// ---------------------------------------------------------------------------------------------
// Services

/// A private redis-server on a free port; killed on drop.
struct Redis {
    child: Option<Child>,
    port: u16,
}

impl Redis {
    async fn start() -> Self {
        let mut r = Redis {
            child: None,
            port: free_port(),
        };
        r.restart().await;
        r
    }

    async fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (scripts/services.sh installs it)");
        self.child = Some(child);
        for _ in 0..100 {
            if port_open(self.port).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("private redis did not start");
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops (SIGSTOP) or continues (SIGCONT) the server: it stops answering, connections stay.
    fn signal(&self, sig: &str) {
        signal(self.child.as_ref().expect("redis running"), sig);
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// nginx with a generated stream config in a directory of its own; stopped on drop.
struct Nginx {
    child: Child,
    port: u16,
}

impl Nginx {
    /// nginx in front of `backends`; with `tls` (certificate and key files) it terminates TLS.
    async fn start(dir: &Path, backends: &[u16], tls: Option<(&Path, &Path)>) -> Self {
        let port = free_port();
        let v = Command::new("nginx")
            .arg("-V")
            .output()
            .expect("nginx runs (scripts/services.sh installs it)");
        let info = String::from_utf8_lossy(&v.stderr);
        let load = if info.contains("--with-stream=dynamic") {
            "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n"
        } else {
            ""
        };
        let servers: String = backends
            .iter()
            .map(|p| format!("    server 127.0.0.1:{p} max_fails=1 fail_timeout=10s;\n"))
            .collect();
        let listen = match tls {
            Some((cert, key)) => format!(
                "listen 127.0.0.1:{port} ssl;\n    ssl_certificate {};\n    ssl_certificate_key {};",
                cert.display(),
                key.display()
            ),
            None => format!("listen 127.0.0.1:{port};"),
        };
        let conf = format!(
            "{load}worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log warn;\n\
             events {{ worker_connections 1024; }}\nstream {{\n  upstream confab {{\n    least_conn;\n{servers}  }}\n  \
             server {{\n    {listen}\n    proxy_connect_timeout 1s;\n    proxy_timeout 60s;\n    proxy_pass confab;\n  }}\n}}\n",
            d = dir.display()
        );
        let path = dir.join("nginx.conf");
        std::fs::write(&path, conf).expect("write nginx.conf");
        let mut child = Command::new("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(dir.join("nginx-error.log"))
            .arg("-c")
            .arg(&path)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        for _ in 0..100 {
            if port_open(port).await {
                return Nginx { child, port };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("nginx did not start; see {}", dir.display());
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // TERM: fast shutdown of the master and its worker.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// One node: the real binary on MariaDB and the bus.
struct Node {
    child: Option<Child>,
    id: u16,
    port: u16,
    /// Its --metrics-listen port (metrics, /healthz, /readyz).
    metrics: u16,
    log: PathBuf,
}

impl Node {
    fn addr(&self) -> SocketAddr {
        addr(self.port)
    }

    /// SIGSTOP or SIGCONT: a stopped node keeps its connections and does nothing.
    fn signal(&self, sig: &str) {
        signal(self.child.as_ref().expect("node running"), sig);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM; returns once the process has exited.
    async fn terminate(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while c.try_wait().expect("wait").is_none() {
                assert!(Instant::now() < deadline, "node did not exit after SIGTERM");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for n in &self.nodes {
                let log = std::fs::read_to_string(&n.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(60).collect();
                eprintln!("---- node {} log (last lines) ----", n.id);
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
    }
}

struct Cluster {
    nodes: Vec<Node>,
    redis: Redis,
    nginx: Option<Nginx>,
    db: TestDb,
    dir: tempfile::TempDir,
    env: Vec<(&'static str, &'static str)>,
    /// What clients trust when nginx terminates TLS.
    front_tls: Option<Arc<rustls::ClientConfig>>,
}

impl Cluster {
    async fn start(n: u16, with_nginx: bool) -> (Self, tokio::sync::MutexGuard<'static, ()>) {
        Self::start_with_env(n, with_nginx, &[]).await
    }

    /// Starts the cluster with extra environment settings for every node.
    async fn start_with_env(
        n: u16,
        with_nginx: bool,
        env: &[(&'static str, &'static str)],
    ) -> (Self, tokio::sync::MutexGuard<'static, ()>) {
        Self::start_full(n, with_nginx, false, env).await
    }

    /// With `tls_front`, nginx terminates TLS with a certificate of a test CA (the nodes
    /// behind it stay plain on loopback).
    async fn start_full(
        n: u16,
        with_nginx: bool,
        tls_front: bool,
        env: &[(&'static str, &'static str)],
    ) -> (Self, tokio::sync::MutexGuard<'static, ()>) {
        let serial = SERIAL.lock().await;
        let db = TestDb::create()
            .await
            .expect("CONFAB_TEST_MYSQL must name the MariaDB server (scripts/test.sh sets it)");
        let redis = Redis::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = Cluster {
            nodes: Vec::new(),
            redis,
            nginx: None,
            db,
            dir,
            env: env.to_vec(),
            front_tls: None,
        };
        // The first node creates the schema; the others start once it is there.
        for id in 1..=n {
            let node = c.spawn_node(id);
            c.nodes.push(node);
            if id == 1 {
                wait_hello(c.nodes[0].addr()).await;
            }
        }
        for node in &c.nodes {
            wait_hello(node.addr()).await;
        }
        if with_nginx {
            let ports: Vec<u16> = c.nodes.iter().map(|n| n.port).collect();
            let pair = tls_front.then(|| test_pki(c.dir.path()));
            c.nginx = Some(
                Nginx::start(
                    c.dir.path(),
                    &ports,
                    pair.as_ref()
                        .map(|(cert, key, _)| (cert.as_path(), key.as_path())),
                )
                .await,
            );
            c.front_tls = pair.map(|(_, _, config)| config);
        }
        (c, serial)
    }

    fn spawn_node(&self, id: u16) -> Node {
        let (port, metrics) = (free_port(), free_port());
        let log = self.dir.path().join(format!("node{id}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_confab-server"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(self.dir.path().join(format!("data{id}")))
            .args(["--store", &self.db.url()])
            .args(["--bus", &self.redis.url()])
            .args(["--node-id", &id.to_string()])
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics}")])
            .args(["--mysql-pool", "4", "--mysql-writers", "2"])
            .env("CONFAB_AUTH_PER_IP_PER_MINUTE", "100000")
            .env("CONFAB_AUTH_PER_NAME_PER_MINUTE", "1000")
            .env("CONFAB_LOG", "info")
            .args(["--log-format", "json"])
            .envs(self.env.iter().copied())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .expect("spawn confab-server");
        Node {
            child: Some(child),
            id,
            port,
            metrics,
            log,
        }
    }

    fn front(&self) -> Front {
        Front {
            addr: addr(self.nginx.as_ref().expect("nginx").port),
            tls: self.front_tls.clone(),
        }
    }

    fn node_by_id(&mut self, id: u64) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| u64::from(n.id) == id)
            .expect("node")
    }

    fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.log.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Where clients connect from outside: nginx, plain or terminating TLS.
#[derive(Clone)]
struct Front {
    addr: SocketAddr,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Front {
    /// A connection through the front (the TLS handshake done), or None if it failed.
    async fn open(&self) -> Option<Box<dyn Io>> {
        let tcp = tokio::time::timeout(
            Duration::from_secs(2),
            tokio::net::TcpStream::connect(self.addr),
        )
        .await
        .ok()?
        .ok()?;
        let _ = tcp.set_nodelay(true);
        let Some(config) = &self.tls else {
            return Some(Box::new(tcp));
        };
        let name = rustls::pki_types::ServerName::try_from("localhost").ok()?;
        let tls = tokio::time::timeout(
            Duration::from_secs(3),
            tokio_rustls::TlsConnector::from(config.clone()).connect(name, tcp),
        )
        .await
        .ok()?
        .ok()?;
        Some(Box::new(tls))
    }
}

/// A CA and a certificate for localhost signed by it, written to `dir`; the client config
/// trusts the CA.
fn test_pki(dir: &Path) -> (PathBuf, PathBuf, Arc<rustls::ClientConfig>) {
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let (cert_path, key_path) = (dir.join("front-cert.pem"), dir.join("front-key.pem"));
    std::fs::write(&cert_path, leaf.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_cert.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    (cert_path, key_path, Arc::new(config))
}

/// Waits until a node answers a Hello (it accepts only after joining the bus).
async fn wait_hello(a: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        if let Ok(Ok(s)) =
            tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(a)).await
        {
            drop(s);
            let mut c = Client::raw(a).await;
            if tokio::time::timeout(Duration::from_secs(5), c.hello_with_token(""))
                .await
                .is_ok()
            {
                return;
            }
        }
        assert!(Instant::now() < deadline, "node at {a} did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// A device with the client core's delivery rules

/// A logged-in device session that holds each thread as the client core would: entries in seq
/// order with nothing missing, built from pushes (gap rule) and syncs.
struct Device {
    c: Client,
    name: String,
    held: HashMap<u64, Vec<pb::ChatMessage>>,
    resyncs: usize,
    pushed: usize,
    /// Times the gap rule fired (a push beyond the cursor + 1).
    gaps: usize,
    next_req: u64,
}

impl Device {
    fn new(c: Client) -> Self {
        Self {
            name: c.name(),
            c,
            held: HashMap::new(),
            resyncs: 0,
            pushed: 0,
            gaps: 0,
            next_req: 1_000_000,
        }
    }

    fn node(&self) -> u64 {
        self.c.hello.as_ref().map_or(0, |h| h.node_id)
    }

    fn cursor(&self, thread: u64) -> u64 {
        self.held
            .get(&thread)
            .and_then(|h| h.last())
            .map_or(0, |m| m.seq)
    }

    fn watch(&mut self, thread: u64) {
        self.held.entry(thread).or_default();
    }

    /// Sync from the cursor (the gap procedure). A lost connection ends it early: the
    /// reconnect syncs again.
    async fn catch_up(&mut self, thread: u64) {
        let mut got = Vec::new();
        let mut since = self.cursor(thread);
        loop {
            let reply = self
                .try_request(Body::SyncThread(pb::SyncThread {
                    thread_id: thread,
                    since_seq: since,
                    limit: 0,
                }))
                .await;
            let Some(Body::MessagePage(page)) = reply else {
                break;
            };
            if let Some(last) = page.messages.last() {
                since = last.seq;
            }
            got.extend(page.messages);
            if !page.has_more {
                break;
            }
        }
        let held = self.held.entry(thread).or_default();
        for m in got {
            if m.seq == held.last().map_or(0, |l| l.seq) + 1 {
                held.push(m);
            } else {
                assert!(
                    m.seq <= held.last().map_or(0, |l| l.seq),
                    "sync of thread {thread} skipped a seq"
                );
            }
        }
    }

    /// Applies every queued push (the syncs it causes may queue more).
    async fn absorb(&mut self) {
        while let Some(b) = self.c.pushes.pop_front() {
            match b {
                Body::MessagePush(p) => {
                    let Some(m) = p.message else { continue };
                    self.pushed += 1;
                    let cursor = self.cursor(m.thread_id);
                    if m.seq == cursor + 1 {
                        self.held.entry(m.thread_id).or_default().push(m);
                    } else if m.seq > cursor + 1 {
                        self.gaps += 1;
                        self.catch_up(m.thread_id).await;
                    }
                }
                Body::ResyncPush(_) => {
                    self.resyncs += 1;
                    let threads: Vec<u64> = self.held.keys().copied().collect();
                    for t in threads {
                        self.catch_up(t).await;
                    }
                }
                _ => {}
            }
        }
    }

    /// Reads frames for up to `d`, applying pushes as they come.
    async fn pump(&mut self, d: Duration) {
        let deadline = tokio::time::Instant::now() + d;
        while let Ok(Some(Ok(env))) = tokio::time::timeout_at(deadline, self.c.framed.next()).await
        {
            if let Some(b) = env.body {
                self.c.pushes.push_back(b);
            }
            self.absorb().await;
        }
        self.absorb().await;
    }

    /// Waits, applying pushes only, until the thread's cursor reaches `seq`.
    async fn reach(&mut self, thread: u64, seq: u64, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while self.cursor(thread) < seq {
            if Instant::now() >= deadline {
                return false;
            }
            self.pump(Duration::from_millis(100)).await;
        }
        true
    }

    /// A request that reports a lost connection instead of panicking.
    async fn try_request(&mut self, body: Body) -> Option<Body> {
        self.next_req += 1;
        let id = self.next_req;
        self.c.framed.send(Envelope::new(id, body)).await.ok()?;
        loop {
            let env = tokio::time::timeout(WAIT, self.c.framed.next())
                .await
                .ok()??
                .ok()?;
            if env.req_id == id {
                return env.body;
            }
            if let Some(b) = env.body {
                self.c.pushes.push_back(b);
            }
        }
    }

    /// Reconnects through `via` with full-jitter backoff and resumes by token; then syncs
    /// what it holds, as the client core does. Returns how long it took.
    async fn reconnect(&mut self, via: &Front) -> Duration {
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            let cap_ms = (100u64 << attempt.min(4)).min(1000);
            let sleep = rand_below(cap_ms);
            tokio::time::sleep(Duration::from_millis(sleep)).await;
            attempt += 1;
            let Some(stream) = via.open().await else {
                continue;
            };
            let mut c = Client::from_stream(stream);
            let token = self.c.token.clone();
            let hello = Body::Hello(pb::Hello {
                protocol_major: 1,
                protocol_minor: 0,
                client_name: "cluster-tests".into(),
                client_version: "0".into(),
                resume_token: token,
                quiet: false,
            });
            if c.framed.send(Envelope::new(1, hello)).await.is_err() {
                continue;
            }
            let reply = tokio::time::timeout(Duration::from_secs(3), c.framed.next()).await;
            let Ok(Some(Ok(env))) = reply else { continue };
            let Some(Body::HelloOk(ok)) = env.body else {
                continue;
            };
            let auth = ok
                .auth
                .clone()
                .expect("resume by token works after a node loss");
            c.user = auth.user;
            c.device_id = auth.device_id;
            c.token = auth.resume_token;
            c.hello = Some(ok);
            c.pushes = std::mem::take(&mut self.c.pushes);
            self.c = c;
            let took = started.elapsed();
            let threads: Vec<u64> = self.held.keys().copied().collect();
            for t in threads {
                self.catch_up(t).await;
            }
            return took;
        }
    }
}

fn rand_below(n: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    // Mixed with a counter so tasks started together do not draw the same delay.
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0x9e37_79b9);
    let k = N.fetch_add(0x9e37_79b9_7f4a_7c15, std::sync::atomic::Ordering::Relaxed);
    (nanos ^ k).wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
}

/// Registers through the front (TLS if it terminates TLS).
async fn register_via(front: &Front, name: &str) -> Device {
    let stream = front.open().await.expect("connect through the front");
    let mut c = Client::from_stream(stream);
    let ok = c.hello_with_token("").await;
    assert!(ok.auth.is_none());
    c.hello = Some(ok);
    c.register(name).await;
    Device::new(c)
}

async fn register(at: SocketAddr, name: &str) -> Device {
    let mut c = Client::connect(at).await;
    c.register(name).await;
    Device::new(c)
}

async fn login(at: SocketAddr, name: &str) -> Device {
    let mut c = Client::connect(at).await;
    match c.login(name, PASSWORD).await {
        Body::AuthOk(_) => Device::new(c),
        b => panic!("login failed: {b:?}"),
    }
}

async fn friends_online(d: &mut Device) -> HashMap<String, bool> {
    match d.c.ok(Body::ListFriends(pb::ListFriends::default())).await {
        Body::FriendList(l) => l
            .friends
            .into_iter()
            .filter_map(|f| f.user.map(|u| (u.name, f.online)))
            .collect(),
        b => panic!("expected FriendList, got {b:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Users on different nodes

/// Quiet connections (Hello.quiet, a CLI command's) across nodes: routed to (pushes and kicks
/// reach them) but never online, on their node or any other; a device whose real connection
/// closes while a quiet one stays on that node goes offline everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and Redis; run by scripts/test.sh"]
async fn quiet_connections_are_routed_across_nodes_but_never_online() {
    let (cl, _serial) = Cluster::start(2, false).await;
    let (n1, n2) = (cl.nodes[0].addr(), cl.nodes[1].addr());
    let mut a = register(n1, "qa").await;
    let mut b = register(n2, "qb").await;
    let thread = befriend(&mut a.c, &mut b.c).await;
    let mut token = b.c.token.clone();
    drop(b);
    a.c.push_where(|x| matches!(x, Body::PresencePush(p) if !p.online))
        .await;
    let is_presence = |x: &Body| matches!(x, Body::PresencePush(_));
    for (i, at) in [n2, n1, n2].into_iter().enumerate() {
        let mut q = Client::raw(at).await;
        assert!(q.hello_as(&token, true).await.auth.is_some(), "resume");
        token = q.token.clone();
        q.send_text(thread, &format!("q{i}"), "quiet").await;
        assert_eq!(friends_online(&mut a).await.get("qb"), Some(&false));
        a.c.message_push(thread).await;
    }
    a.c.no_push_where(Duration::from_millis(500), is_presence)
        .await;

    // A real connection and a quiet one of the same device on node 2.
    let mut b = Client::raw(n2).await;
    assert!(b.hello_as(&token, false).await.auth.is_some());
    a.c.push_where(|x| matches!(x, Body::PresencePush(p) if p.online))
        .await;
    let mut q = Client::raw(n2).await;
    assert!(q.hello_as(&b.token, true).await.auth.is_some());
    assert_eq!(friends_online(&mut a).await.get("qb"), Some(&true));
    drop(b);
    a.c.push_where(|x| matches!(x, Body::PresencePush(p) if !p.online))
        .await;
    assert_eq!(friends_online(&mut a).await.get("qb"), Some(&false));
    // Still routed: a message from node 1 reaches the quiet connection on node 2.
    a.c.send_text(thread, "to-q", "across to the quiet one")
        .await;
    assert_eq!(q.message_push(thread).await.body, "across to the quiet one");
    // And a logout of every device from node 1 closes it.
    let mut q1 = Client::raw(n1).await;
    assert!(q1.hello_as(&q.token, true).await.auth.is_some());
    q1.ok(Body::Logout(pb::Logout { all_devices: true })).await;
    q.expect_closed_with(pb::ErrorCode::AuthFailed).await;
    a.c.no_push_where(Duration::from_millis(500), is_presence)
        .await;
}

/// A device revoked, and a member banned, on node 1 take effect at once on node 2: the revoked
/// session's connection there closes, the banned member there gets the BANNED entry and can no
/// longer write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and Redis; run by scripts/test.sh"]
async fn a_revoke_a_ban_and_a_deactivation_on_one_node_act_at_once_on_another() {
    let (cl, _serial) = Cluster::start(2, false).await;
    let (n1, n2) = (cl.nodes[0].addr(), cl.nodes[1].addr());
    let mut a = register(n1, "rv_a").await;
    let mut a2 = login(n2, "rv_a").await;
    let devices = match a.c.ok(Body::ListDevices(pb::ListDevices {})).await {
        Body::DeviceList(l) => l.devices,
        other => panic!("{other:?}"),
    };
    let other = devices
        .iter()
        .find(|d| !d.current)
        .expect("the session on node 2");
    a.c.ok(Body::RevokeDevice(pb::RevokeDevice {
        device_id: other.device_id,
    }))
    .await;
    a2.c.expect_closed_with(pb::ErrorCode::AuthFailed).await;

    let mut b = register(n2, "rv_b").await;
    let (group_id, thread) = group(&mut a.c, "rv_group").await;
    join(&mut b.c, group_id).await;
    a.c.ok(Body::KickMember(pb::KickMember {
        group_id,
        user_id: b.c.id(),
        ban: true,
    }))
    .await;
    let banned = pb::group_change::Kind::Banned as i32;
    b.c.push_where(|x| {
        matches!(x, Body::MessagePush(p) if p.message.as_ref().is_some_and(|m|
            m.thread_id == thread && m.group_change.as_ref().is_some_and(|g| g.kind == banned)))
    })
    .await;
    let refused =
        b.c.fail(Body::Send(pb::Send {
            thread_id: thread,
            client_msg_id: "after-ban".into(),
            body: "still here?".into(),
            reply_to: 0,
        }))
        .await;
    assert_eq!(refused.code, pb::ErrorCode::Forbidden as i32);
    assert_eq!(
        b.c.fail_code(Body::JoinGroup(pb::JoinGroup { group_id }))
            .await,
        pb::ErrorCode::Forbidden
    );

    // The operator's tool on the store directly, on the cluster bus: a deactivation it makes
    // closes the user's connections on every node at once.
    let mut c1 = register(n1, "rv_c").await;
    let mut c2 = login(n2, "rv_c").await;
    let out = tokio::task::spawn_blocking({
        let (store, bus) = (cl.db.url(), cl.redis.url());
        let dir = cl.dir.path().join("admin-tool");
        move || {
            Command::new(env!("CARGO_BIN_EXE_confab-server"))
                .args(["--store", &store, "--bus", &bus])
                .arg("--data-dir")
                .arg(dir)
                .args(["admin", "user", "deactivate", "rv_c"])
                .output()
                .expect("confab-server admin runs")
        }
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for c in [&mut c1.c, &mut c2.c] {
        c.expect_closed_with(pb::ErrorCode::AccountDisabled).await;
    }
    let mut again = Client::connect(n2).await;
    match again.login("rv_c", PASSWORD).await {
        Body::Error(e) => assert_eq!(e.code, pb::ErrorCode::AccountDisabled as i32),
        other => panic!("{other:?}"),
    }
}

/// Search (1.6) reads MySQL, which every node writes: a message sent on one node is found
/// through another at once. A reply and a reaction (1.7) made on the other node reach the
/// first as pushes, with the quote and the counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB, Redis and nginx; run by scripts/test.sh"]
async fn a_message_sent_on_one_node_is_found_answered_and_reacted_to_through_another() {
    let (cl, _serial) = Cluster::start(2, false).await;
    let (n1, n2) = (cl.nodes[0].addr(), cl.nodes[1].addr());
    let mut a = register(n1, "sx_a").await;
    let mut b = register(n2, "sx_b").await;
    let thread = befriend(&mut a.c, &mut b.c).await;
    let asked = a.c.send_text(thread, "sx1", "明天开会议 at noon").await;
    b.c.message_push(thread).await;
    b.c.ok(Body::Send(pb::Send {
        thread_id: thread,
        client_msg_id: "sx2".into(),
        body: "好".into(),
        reply_to: asked.message_id,
    }))
    .await;
    let reply = a.c.message_push(thread).await;
    assert_eq!(
        reply.quote.map(|q| q.excerpt),
        Some("明天开会议 at noon".to_owned())
    );
    b.c.ok(Body::React(pb::React {
        thread_id: thread,
        message_id: asked.message_id,
        emoji: "👍".into(),
        remove: false,
    }))
    .await;
    let r = a.c.message_push(thread).await;
    assert_eq!(r.kind, pb::MessageKind::ReactionAdded as i32);
    let counts =
        a.c.sync(thread, 0)
            .await
            .into_iter()
            .find(|m| m.message_id == asked.message_id)
            .unwrap()
            .reactions;
    assert_eq!(counts.len(), 1, "{counts:?}");
    assert!(counts[0].count == 1 && !counts[0].mine);
    for (who, q) in [(&mut b, "会议"), (&mut a, "noon")] {
        match who
            .c
            .ok(Body::SearchMessages(pb::SearchMessages {
                query: q.into(),
                ..Default::default()
            }))
            .await
        {
            Body::SearchResults(r) => {
                assert_eq!(r.hits.len(), 1, "{q}: {r:?}");
                assert_eq!(
                    r.hits[0].message.as_ref().unwrap().body,
                    "明天开会议 at noon"
                );
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB, Redis and nginx; run by scripts/test.sh"]
async fn everything_pushed_crosses_nodes() {
    let (cl, _serial) = Cluster::start(3, false).await;
    let (n1, n2, n3) = (cl.nodes[0].addr(), cl.nodes[1].addr(), cl.nodes[2].addr());
    let mut a = register(n1, "xa").await;
    let mut b = register(n2, "xb").await;
    let mut c = register(n3, "xc").await;
    assert_eq!((a.node(), b.node(), c.node()), (1, 2, 3), "{}", cl.logs());

    // A friend request and its answer are events pushed across nodes.
    let req = match a
        .c
        .ok(Body::SendFriendRequest(pb::SendFriendRequest {
            user_id: b.c.id(),
            note: "from node 1".into(),
        }))
        .await
    {
        Body::FriendRequest(r) => r,
        x => panic!("{x:?}"),
    };
    match b.c.event_push().await {
        pb::user_event::Kind::FriendRequestReceived(r) => {
            assert_eq!(r.request_id, req.request_id)
        }
        k => panic!("unexpected event {k:?}"),
    }
    b.c.ok(Body::RespondFriendRequest(pb::RespondFriendRequest {
        request_id: req.request_id,
        accept: true,
    }))
    .await;
    let thread = loop {
        match a.c.event_push().await {
            pb::user_event::Kind::FriendRequestAnswered(r) => break r.thread_id,
            _ => continue,
        }
    };
    assert_ne!(thread, 0);

    // 1:1 messages both ways.
    a.c.send_text(thread, "a1", "hello from node 1").await;
    assert_eq!(b.c.message_push(thread).await.body, "hello from node 1");
    b.c.send_text(thread, "b1", "hello from node 2").await;
    assert_eq!(a.c.message_push(thread).await.body, "hello from node 2");

    // A second device of A on node 3 gets A's own message (with its client_msg_id).
    let mut a2 = login(n3, "xa").await;
    a.c.send_text(thread, "a2", "to my other device").await;
    let own = a2.c.message_push(thread).await;
    assert_eq!(own.client_msg_id, "a2");
    assert!(b.c.message_push(thread).await.client_msg_id.is_empty());

    // Read receipts and typing.
    b.c.send_env(Envelope::new(
        0,
        Body::ReadUpTo(pb::ReadUpTo {
            thread_id: thread,
            seq: 3,
        }),
    ))
    .await;
    match a
        .c
        .push_where(|b| matches!(b, Body::ReadReceiptPush(_)))
        .await
    {
        Body::ReadReceiptPush(r) => assert_eq!((r.thread_id, r.read_seq), (thread, 3)),
        _ => unreachable!(),
    }
    a.c.send_env(Envelope::new(
        0,
        Body::Typing(pb::Typing {
            thread_id: thread,
            ..Default::default()
        }),
    ))
    .await;
    match b.c.push_where(|b| matches!(b, Body::TypingPush(_))).await {
        Body::TypingPush(t) => {
            assert_eq!(t.thread_id, thread);
            assert_eq!(t.user.map(|u| u.name), Some("xa".into()));
        }
        _ => unreachable!(),
    }

    // Group changes and group messages reach members on all three nodes.
    let (gid, gthread) = group(&mut c.c, "across").await;
    join(&mut a.c, gid).await;
    let joined = c
        .c
        .push_where(|b| matches!(b, Body::MessagePush(p) if p.message.as_ref().is_some_and(|m| m.thread_id == gthread && m.group_change.is_some())))
        .await;
    assert!(matches!(joined, Body::MessagePush(_)));
    join(&mut b.c, gid).await;
    c.c.send_text(gthread, "c1", "group hello").await;
    for d in [&mut a, &mut b] {
        d.c.push_where(|x| matches!(x, Body::MessagePush(p) if p.message.as_ref().is_some_and(|m| m.thread_id == gthread && m.body == "group hello")))
            .await;
    }

    // Member list presence sees users on other nodes.
    match c
        .c
        .ok(Body::ListGroupMembers(pb::ListGroupMembers {
            group_id: gid,
            after_user_id: 0,
            limit: 0,
        }))
        .await
    {
        Body::GroupMemberList(l) => {
            assert_eq!(l.members.len(), 3);
            assert!(l.members.iter().all(|m| m.online), "{:?}", l.members);
        }
        x => panic!("{x:?}"),
    }

    // Presence: B goes offline on node 2 -> A (node 1) hears it and sees it in lists; B comes
    // back on node 3 -> online again.
    let b_token = b.c.token.clone();
    drop(b);
    match a
        .c
        .push_where(|x| matches!(x, Body::PresencePush(p) if !p.online))
        .await
    {
        Body::PresencePush(p) => assert_eq!(p.user.map(|u| u.name), Some("xb".into())),
        _ => unreachable!(),
    }
    assert_eq!(friends_online(&mut a).await.get("xb"), Some(&false));
    let mut b = Client::raw(n3).await;
    assert!(b.hello_with_token(&b_token).await.auth.is_some());
    a.c.push_where(|x| matches!(x, Body::PresencePush(p) if p.online))
        .await;
    assert_eq!(friends_online(&mut a).await.get("xb"), Some(&true));

    // Logging out every device on node 3 closes A's session on node 1 too.
    a2.c.ok(Body::Logout(pb::Logout { all_devices: true }))
        .await;
    a.c.expect_closed_with(pb::ErrorCode::AuthFailed).await;
}

// ---------------------------------------------------------------------------------------------
// Node loss

/// Sends `count` messages round-robin over `threads`, surviving node loss: on a lost
/// connection it reconnects through `front` and retries the unacked send with the same
/// client_msg_id. Returns the device, its acks and the longest reconnect.
async fn steady_sender(
    mut d: Device,
    front: Front,
    threads: Vec<u64>,
    count: usize,
) -> (Device, Vec<pb::SendAck>, Duration) {
    let mut acks = Vec::new();
    let mut worst = Duration::ZERO;
    for i in 0..count {
        let thread = threads[i % threads.len()];
        let cmid = format!("{}-{i}", d.name);
        let send = Body::Send(pb::Send {
            thread_id: thread,
            client_msg_id: cmid.clone(),
            body: format!("{} says {i}", d.name),
            reply_to: 0,
        });
        let ack = loop {
            match d.try_request(send.clone()).await {
                Some(Body::SendAck(a)) => break a,
                Some(Body::Error(e)) if e.code == pb::ErrorCode::Unavailable as i32 => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Some(Body::Error(e)) if e.fatal => {
                    worst = worst.max(d.reconnect(&front).await);
                }
                Some(b) => panic!("unexpected reply {b:?}"),
                None => worst = worst.max(d.reconnect(&front).await),
            }
        };
        assert_eq!(ack.client_msg_id, cmid);
        acks.push(ack);
        d.absorb().await;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    (d, acks, worst)
}

async fn node_loss(graceful: bool, tls_front: bool) {
    let (mut cl, _serial) = Cluster::start_full(3, true, tls_front, &[]).await;
    let front = cl.front();
    let n = 6;
    let mut senders = Vec::new();
    for i in 0..n {
        senders.push(register_via(&front, &format!("loss{i}")).await);
    }
    let nodes: HashSet<u64> = senders.iter().map(Device::node).collect();
    assert_eq!(nodes.len(), 3, "nginx spreads the users over the nodes");
    // A ring of friendships and one group of everyone.
    let mut members: HashMap<u64, Vec<usize>> = HashMap::new();
    let mut threads: Vec<Vec<u64>> = vec![Vec::new(); n];
    for i in 0..n {
        let j = (i + 1) % n;
        let (x, y) = if i < j {
            let (l, r) = senders.split_at_mut(j);
            (&mut l[i], &mut r[0])
        } else {
            let (l, r) = senders.split_at_mut(i);
            (&mut r[0], &mut l[j])
        };
        let t = befriend(&mut x.c, &mut y.c).await;
        members.insert(t, vec![i, j]);
        threads[i].push(t);
        threads[j].push(t);
    }
    let (gid, gthread) = group(&mut senders[0].c, "loss").await;
    for s in senders.iter_mut().skip(1) {
        join(&mut s.c, gid).await;
    }
    members.insert(gthread, (0..n).collect());
    for (i, s) in senders.iter_mut().enumerate() {
        threads[i].push(gthread);
        for t in &threads[i] {
            s.watch(*t);
        }
        s.c.pushes.clear();
        let ts = threads[i].clone();
        for t in ts {
            s.catch_up(t).await;
        }
    }

    // The victim is sender 0's node. A sleeper on it stays away after the loss until an
    // observer on another node has seen it go offline.
    let victim = senders[0].node();
    let victim_addr = cl.node_by_id(victim).addr();
    let other = cl
        .nodes
        .iter()
        .find(|x| u64::from(x.id) != victim)
        .expect("another node")
        .addr();
    let mut sleeper = register(victim_addr, "sleeper").await;
    let mut observer = register(other, "observer").await;
    befriend(&mut sleeper.c, &mut observer.c).await;
    assert_eq!(
        friends_online(&mut observer).await.get("sleeper"),
        Some(&true)
    );

    let count = 60;
    let mut tasks = Vec::new();
    for (i, s) in senders.into_iter().enumerate() {
        tasks.push(tokio::spawn(steady_sender(
            s,
            front.clone(),
            threads[i].clone(),
            count,
        )));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let lost_at = Instant::now();
    if graceful {
        cl.node_by_id(victim).terminate().await;
    } else {
        cl.node_by_id(victim).kill();
    }

    // The sleeper's node is gone: it shows offline within the node TTL.
    let offline_after = loop {
        if friends_online(&mut observer).await.get("sleeper") == Some(&false) {
            break lost_at.elapsed();
        }
        assert!(
            lost_at.elapsed() < Duration::from_secs(15),
            "the dead node's user still shows online"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        offline_after < confab_server::cluster::redis::NODE_TTL + Duration::from_secs(2),
        "offline after {offline_after:?}"
    );
    // Its friends are told, although its node could not say goodbye.
    observer
        .c
        .push_where(|b| {
            matches!(b, Body::PresencePush(p) if !p.online
                && p.user.as_ref().is_some_and(|u| u.name == "sleeper"))
        })
        .await;
    sleeper.reconnect(&front).await;
    assert_ne!(sleeper.node(), victim);
    let back = Instant::now();
    while friends_online(&mut observer).await.get("sleeper") != Some(&true) {
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "online again after reconnecting"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut devices = Vec::new();
    let mut acked: HashMap<u64, Vec<pb::SendAck>> = HashMap::new();
    let mut slowest = Duration::ZERO;
    for (i, t) in tasks.into_iter().enumerate() {
        let (d, acks, worst) = t.await.expect("sender");
        if i == 0 {
            assert!(
                worst > Duration::ZERO,
                "sender 0 lost its node and reconnected"
            );
        }
        slowest = slowest.max(worst);
        assert!(
            worst < Duration::from_secs(5),
            "{} took {worst:?} to reconnect",
            d.name
        );
        for a in acks {
            acked.entry(a.thread_id).or_default().push(a);
        }
        devices.push(d);
    }
    assert!(
        devices.iter().all(|d| d.node() != victim),
        "everyone ended up on a surviving node"
    );

    // Every member device holds every acked message exactly once, in seq order, no gaps.
    for d in &mut devices {
        d.pump(Duration::from_millis(300)).await;
        let ts: Vec<u64> = d.held.keys().copied().collect();
        for t in ts {
            d.catch_up(t).await;
        }
    }
    for (thread, who) in &members {
        let acks = &acked[thread];
        let last = acks.iter().map(|a| a.seq).max().unwrap_or(0);
        for &i in who {
            let d = &devices[i];
            let held = &d.held[thread];
            let seqs: Vec<u64> = held.iter().map(|m| m.seq).collect();
            let want: Vec<u64> = (1..=seqs.len() as u64).collect();
            assert_eq!(seqs, want, "{} thread {thread}: in order, no gaps", d.name);
            assert!(held.len() as u64 >= last);
            let ids: HashSet<u64> = held.iter().map(|m| m.message_id).collect();
            assert_eq!(ids.len(), held.len(), "no message twice");
            for a in acks {
                let m = held
                    .iter()
                    .find(|m| m.message_id == a.message_id)
                    .unwrap_or_else(|| panic!("{}: acked {} missing", d.name, a.message_id));
                assert_eq!(m.seq, a.seq);
            }
        }
        // Retries were deduplicated: each send is stored once.
        let texts: Vec<&str> = devices[who[0]].held[thread]
            .iter()
            .filter(|m| m.kind == pb::MessageKind::Text as i32)
            .map(|m| m.body.as_str())
            .collect();
        let unique: HashSet<&str> = texts.iter().copied().collect();
        assert_eq!(
            unique.len(),
            texts.len(),
            "thread {thread}: a retried send stored once"
        );
        assert_eq!(texts.len(), acks.len());
    }
    let pushed: usize = devices.iter().map(|d| d.pushed).sum();
    assert!(pushed > 0, "pushes crossed nodes");
    eprintln!(
        "node loss (graceful: {graceful}): slowest reconnect {slowest:?}, dead node's user offline after {offline_after:?}, {pushed} pushes applied"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB, Redis and nginx; run by scripts/test.sh"]
async fn node_killed_clients_move_and_nothing_acked_is_lost() {
    node_loss(false, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB, Redis and nginx; run by scripts/test.sh"]
async fn node_shut_down_drains_to_the_others() {
    node_loss(true, false).await;
}

/// The same node loss with nginx terminating TLS: clients reconnect through TLS handshakes
/// and nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB, Redis and nginx; run by scripts/test.sh"]
async fn node_killed_behind_a_tls_front_loses_nothing_acked() {
    node_loss(false, true).await;
}

// ---------------------------------------------------------------------------------------------
// Bus failures

async fn send_n(a: &mut Device, thread: u64, from: usize, n: usize) -> u64 {
    let mut last = 0;
    for i in from..from + n {
        let ack =
            a.c.send_text(thread, &format!("r{i}"), &format!("m{i}"))
                .await;
        last = ack.seq;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB, Redis and nginx; run by scripts/test.sh"]
async fn subscription_killed_or_redis_restarted_loses_nothing() {
    let (mut cl, _serial) = Cluster::start(2, false).await;
    let mut a = register(cl.nodes[0].addr(), "ra").await;
    let mut b = register(cl.nodes[1].addr(), "rb").await;
    let thread = befriend(&mut a.c, &mut b.c).await;
    b.watch(thread);
    b.c.pushes.clear();

    let last = send_n(&mut a, thread, 0, 20).await;
    assert!(b.reach(thread, last, Duration::from_secs(5)).await);
    let pushed_before = b.pushed;
    assert!(pushed_before > 0, "live pushes crossed nodes");

    // The nodes' subscriptions are killed: they resubscribe and resync their clients.
    let killed = cl.redis.cli(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    assert!(
        killed.trim().parse::<u32>().unwrap_or(0) >= 2,
        "killed: {killed}"
    );
    let last = send_n(&mut a, thread, 20, 20).await;
    assert!(
        b.reach(thread, last, Duration::from_secs(10)).await,
        "delivery resumed after CLIENT KILL ({})",
        cl.logs()
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while b.resyncs == 0 && Instant::now() < deadline {
        b.pump(Duration::from_millis(100)).await;
    }
    assert!(b.resyncs > 0, "the node told its client to resync");

    // Redis dies and comes back empty, during traffic.
    let resyncs = b.resyncs;
    let sending = tokio::spawn(async move {
        let last = send_n(&mut a, thread, 40, 60).await;
        (a, last)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    cl.redis.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    cl.redis.restart().await;
    let (mut a, last) = sending.await.expect("sends succeed without Redis");
    assert!(
        b.reach(thread, last, Duration::from_secs(15)).await,
        "everything acked reached B after the Redis restart ({})",
        cl.logs()
    );
    assert!(b.resyncs > resyncs, "resync after the Redis restart");
    // And live pushes flow again (once the heartbeat has run: it may still resync once).
    b.pump(confab_server::cluster::redis::HEARTBEAT + Duration::from_secs(1))
        .await;
    let pushed = b.pushed;
    let last = send_n(&mut a, thread, 100, 5).await;
    assert!(b.reach(thread, last, Duration::from_secs(10)).await);
    assert!(b.pushed > pushed, "pushes flow again");
    let held: Vec<u64> = b.held[&thread].iter().map(|m| m.seq).collect();
    assert_eq!(held, (1..=last).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB, Redis and nginx; run by scripts/test.sh"]
async fn pushes_dropped_by_a_full_publish_queue_end_in_a_resync() {
    // A one-slot publish queue on every node, so a burst overflows it.
    let (cl, _serial) = Cluster::start_with_env(2, false, &[("CONFAB_BUS_QUEUE", "1")]).await;
    let mut a = register(cl.nodes[0].addr(), "qa").await;
    let mut b = register(cl.nodes[1].addr(), "qb").await;
    let thread = befriend(&mut a.c, &mut b.c).await;
    b.watch(thread);
    b.c.pushes.clear();
    let last = send_n(&mut a, thread, 0, 3).await;
    assert!(b.reach(thread, last, Duration::from_secs(5)).await);
    let resyncs = b.resyncs;

    // Redis stops answering for a second: A's publisher waits on one publish, the next push
    // fills the queue and the rest of the burst is dropped. The pause is shorter than the
    // subscriptions' ping timeout, so no subscription breaks (which would resync anyway), and
    // nothing follows the burst, so B's gap rule has no later push to notice the loss by.
    cl.redis.signal("-STOP");
    let last = send_n(&mut a, thread, 3, 20).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    cl.redis.signal("-CONT");
    assert!(
        b.reach(thread, last, Duration::from_secs(10)).await,
        "B got everything acked after pushes were dropped ({})",
        cl.logs()
    );
    assert!(b.resyncs > resyncs, "B was told to resync");
    let log = std::fs::read_to_string(&cl.nodes[0].log).unwrap_or_default();
    assert!(
        log.contains("publish queue full"),
        "pushes were dropped on A's node: {}",
        cl.nodes[0].log.display()
    );
    let held: Vec<u64> = b.held[&thread].iter().map(|m| m.seq).collect();
    assert_eq!(held, (1..=last).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB, Redis and nginx; run by scripts/test.sh"]
async fn login_during_a_burst_misses_nothing() {
    let (cl, _serial) = Cluster::start(2, false).await;
    let (n1, n2) = (cl.nodes[0].addr(), cl.nodes[1].addr());
    // A on node 1 writes to six friends in turn; each friend logs in on node 2 once, during
    // the burst, as its only connection (so nothing else routes A's pushes to that node for it).
    let mut a = register(n1, "ba").await;
    let k = 6;
    let mut threads = Vec::new();
    for i in 0..k {
        let mut b = register(n2, &format!("bb{i}")).await;
        threads.push(befriend(&mut a.c, &mut b.c).await);
    }
    let total = 360;
    let ts = threads.clone();
    let burst = tokio::spawn(async move {
        let mut last = vec![0u64; ts.len()];
        for i in 0..total {
            let t = i % ts.len();
            last[t] =
                a.c.send_text(ts[t], &format!("b{i}"), &format!("burst {i}"))
                    .await
                    .seq;
        }
        last
    });
    let mut sessions = Vec::new();
    for (i, t) in threads.iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(40)).await;
        let mut d = login(n2, &format!("bb{i}")).await;
        d.watch(*t);
        d.catch_up(*t).await;
        sessions.push(d);
    }
    assert!(
        !burst.is_finished(),
        "every login happened during the burst"
    );
    let last = burst.await.expect("burst");
    for (i, d) in sessions.iter_mut().enumerate() {
        let t = threads[i];
        assert!(
            d.reach(t, last[i], Duration::from_secs(5)).await,
            "session {i} got everything (cursor {} of {})",
            d.cursor(t),
            last[i]
        );
        let seqs: Vec<u64> = d.held[&t].iter().map(|m| m.seq).collect();
        assert_eq!(seqs, (1..=last[i]).collect::<Vec<_>>());
        // Everything committed after the login's sync came as a push, in order: the route was
        // in place before the AuthOk.
        assert_eq!(d.gaps, 0, "session {i} missed pushes");
    }
}

// ---------------------------------------------------------------------------------------------
// PROXY protocol in front of a node

async fn proxied_node() -> (Child, u16, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_confab-server"));
    cmd.args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--proxy-protocol")
        .env("CONFAB_AUTH_PER_IP_PER_MINUTE", "2")
        .env("CONFAB_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("spawn");
    for _ in 0..200 {
        if port_open(port).await {
            return (child, port, dir);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("node did not start");
}

/// Connects, writes `header`, then tries a Hello; Some(reply) if the node answered.
async fn hello_after(port: u16, header: &[u8]) -> Option<Body> {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(addr(port)).await.ok()?;
    s.write_all(header).await.ok()?;
    let mut c = Client::from_stream(s);
    c.framed
        .send(Envelope::new(
            1,
            Body::Hello(pb::Hello {
                protocol_major: 1,
                protocol_minor: 0,
                client_name: "proxy-test".into(),
                client_version: "0".into(),
                ..Default::default()
            }),
        ))
        .await
        .ok()?;
    let env = tokio::time::timeout(Duration::from_secs(5), c.framed.next())
        .await
        .ok()??
        .ok()?;
    env.body
}

fn v2_header(src: [u8; 4], port: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.push(0x21); // version 2, PROXY
    h.push(0x11); // TCP over IPv4
    h.extend_from_slice(&12u16.to_be_bytes());
    h.extend_from_slice(&src);
    h.extend_from_slice(&[127, 0, 0, 1]);
    h.extend_from_slice(&port.to_be_bytes());
    h.extend_from_slice(&7000u16.to_be_bytes());
    h
}

/// Registers `name` through a connection carrying `header`; returns the reply.
async fn register_after(port: u16, header: &[u8], name: &str) -> Body {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(addr(port))
        .await
        .expect("connect");
    s.write_all(header).await.expect("header");
    let mut c = Client::from_stream(s);
    c.hello_with_token("").await;
    c.request(Body::Register(pb::Register {
        name: name.into(),
        password: PASSWORD.into(),
        device_name: "t".into(),
        invite_code: String::new(),
    }))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_protocol_v1_v2_and_garbage() {
    let (mut child, port, _dir) = proxied_node().await;
    // v1 and v2 headers are accepted, whether they arrive alone or with the first frame.
    let v1 = b"PROXY TCP4 198.51.100.1 127.0.0.1 40000 7000\r\n";
    assert!(matches!(
        hello_after(port, v1).await,
        Some(Body::HelloOk(_))
    ));
    assert!(matches!(
        hello_after(port, &v2_header([198, 51, 100, 2], 40001)).await,
        Some(Body::HelloOk(_))
    ));
    // Without a header, or with garbage, the node closes without answering.
    assert!(hello_after(port, b"").await.is_none());
    assert!(
        hello_after(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .is_none()
    );
    assert!(
        hello_after(port, b"PROXY TCP4 nonsense\r\n")
            .await
            .is_none()
    );

    // The per-IP login limit (2 a minute here) sees the addresses from the headers: a third
    // registration from one address is refused, another address still gets in.
    let one = b"PROXY TCP4 203.0.113.9 127.0.0.1 1 7000\r\n";
    for (i, name) in ["pp1", "pp2"].iter().enumerate() {
        assert!(
            matches!(register_after(port, one, name).await, Body::AuthOk(_)),
            "registration {i}"
        );
    }
    match register_after(port, one, "pp3").await {
        Body::Error(e) => assert_eq!(e.code, pb::ErrorCode::RateLimited as i32),
        b => panic!("expected RATE_LIMITED, got {b:?}"),
    }
    let v2 = v2_header([203, 0, 113, 10], 2);
    assert!(matches!(
        register_after(port, &v2, "pp4").await,
        Body::AuthOk(_)
    ));
    let _ = child.kill();
    let _ = child.wait();
}

// ---------------------------------------------------------------------------------------------
// Presence and push age across a Redis outage

/// A device's view of its friends' presence, kept as PROTOCOL.md §6.6 says: ListFriends at
/// login and after every ResyncPush, PresencePush applied in between.
struct Watcher {
    d: Device,
    view: HashMap<String, bool>,
}

impl Watcher {
    async fn new(d: Device) -> Self {
        let mut w = Watcher {
            d,
            view: HashMap::new(),
        };
        w.refresh().await;
        w
    }

    async fn refresh(&mut self) {
        if let Some(Body::FriendList(l)) = self
            .d
            .try_request(Body::ListFriends(pb::ListFriends::default()))
            .await
        {
            self.view = l
                .friends
                .into_iter()
                .filter_map(|f| f.user.map(|u| (u.name, f.online)))
                .collect();
        }
    }

    /// Reads frames for up to `d`, following §6.6.
    async fn pump(&mut self, d: Duration) {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            while let Some(b) = self.d.c.pushes.pop_front() {
                match b {
                    Body::ResyncPush(_) => {
                        self.d.resyncs += 1;
                        self.refresh().await;
                    }
                    Body::PresencePush(p) => {
                        if let Some(u) = p.user {
                            self.view.insert(u.name, p.online);
                        }
                    }
                    _ => {}
                }
            }
            match tokio::time::timeout_at(deadline, self.d.c.framed.next()).await {
                Ok(Some(Ok(env))) => {
                    if let Some(b) = env.body {
                        self.d.c.pushes.push_back(b);
                    }
                }
                _ => return,
            }
        }
    }

    fn offline(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .view
            .iter()
            .filter(|(_, on)| !**on)
            .map(|(n, _)| n.clone())
            .collect();
        v.sort();
        v
    }
}

async fn pump_all(ws: &mut [Watcher], d: Duration) {
    futures::future::join_all(ws.iter_mut().map(|w| w.pump(d))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB, Redis and nginx; run by scripts/test.sh"]
async fn presence_converges_after_redis_restarts_whatever_order_nodes_recover_in() {
    let (mut cl, _serial) = Cluster::start(3, false).await;
    // One user on each node, all friends of each other.
    let mut ds = Vec::new();
    for (i, n) in cl.nodes.iter().enumerate() {
        ds.push(register(n.addr(), &format!("pv{}", i + 1)).await);
    }
    for i in 0..ds.len() {
        for j in i + 1..ds.len() {
            let (a, b) = ds.split_at_mut(j);
            befriend(&mut a[i].c, &mut b[0].c).await;
        }
    }
    let mut ws = Vec::new();
    for d in ds {
        ws.push(Watcher::new(d).await);
    }
    pump_all(&mut ws, Duration::from_millis(500)).await;
    for w in &ws {
        assert!(
            w.offline().is_empty(),
            "{} sees {:?} offline",
            w.d.name,
            w.offline()
        );
    }

    for round in 0..10usize {
        // Which nodes recover late, in which order: one late node, or two one after another.
        let first = round % 3;
        let late: Vec<usize> = if round % 2 == 0 {
            vec![first]
        } else {
            vec![first, (first + 1) % 3]
        };
        cl.redis.kill();
        for &l in &late {
            cl.nodes[l].signal("-STOP");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        cl.redis.restart().await;
        // The others re-register; their clients resync and ask who is online while the late
        // nodes' routes are still missing.
        let early: Vec<u16> = (0..3)
            .filter(|i| !late.contains(i))
            .map(|i| cl.nodes[i].id)
            .collect();
        let deadline = Instant::now() + Duration::from_secs(15);
        for id in &early {
            while cl
                .redis
                .cli(&["EXISTS", &format!("confab:node:{id}")])
                .trim()
                != "1"
            {
                assert!(Instant::now() < deadline, "node {id} did not re-register");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        pump_all(&mut ws, Duration::from_millis(1000)).await;
        for &l in &late {
            cl.nodes[l].signal("-CONT");
            pump_all(&mut ws, Duration::from_millis(700)).await;
        }
        // Converged within the bound PROTOCOL.md §6.6 states (the last node's re-registration,
        // then its announcement on the bus within half a second, then a ListFriends), with
        // nothing but pushes to go by: no client polls.
        let bound = Duration::from_secs(5);
        let deadline = Instant::now() + bound;
        while ws.iter().any(|w| !w.offline().is_empty()) && Instant::now() < deadline {
            pump_all(&mut ws, Duration::from_millis(100)).await;
        }
        for w in &ws {
            assert!(
                w.offline().is_empty(),
                "round {round} (late {late:?}): {} on node {} still sees {:?} offline ({})",
                w.d.name,
                w.d.node(),
                w.offline(),
                cl.logs()
            );
        }
        // Keep every connection busy enough for the idle timeout.
        for w in &mut ws {
            let _ = w.d.try_request(Body::Ping(pb::Ping { nonce: 1 })).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB, Redis and nginx; run by scripts/test.sh"]
async fn pushes_held_through_a_redis_pause_are_dropped_for_a_resync_not_sent_late() {
    let (cl, _serial) = Cluster::start(2, false).await;
    let mut a = register(cl.nodes[0].addr(), "ha").await;
    let mut b = register(cl.nodes[1].addr(), "hb").await;
    let thread = befriend(&mut a.c, &mut b.c).await;
    b.watch(thread);
    b.c.pushes.clear();
    let mut last = send_n(&mut a, thread, 0, 3).await;
    assert!(b.reach(thread, last, Duration::from_secs(5)).await);

    // Redis pauses for 3 s, then for 6 s: A's publisher holds these pushes in its retry
    // (which gives up after 5 s); before the age bound, those of the 3 s pause were
    // published seconds late once Redis answered.
    for pause in [3u64, 6] {
        let resyncs = b.resyncs;
        cl.redis.signal("-STOP");
        let held_last = send_n(&mut a, thread, last as usize, 5).await;
        tokio::time::sleep(Duration::from_secs(pause)).await;
        cl.redis.signal("-CONT");

        // B reads raw frames for a while: none of the held pushes may arrive (they are
        // seconds older than PUSH_MAX_AGE); a ResyncPush must.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
        let mut late_pushes = Vec::new();
        while let Ok(Some(Ok(env))) = tokio::time::timeout_at(deadline, b.c.framed.next()).await {
            match env.body {
                Some(Body::MessagePush(p)) => {
                    if let Some(m) = p.message
                        && m.thread_id == thread
                        && m.seq > last
                        && m.seq <= held_last
                    {
                        late_pushes.push(m.seq);
                    }
                }
                Some(Body::ResyncPush(_)) => b.resyncs += 1,
                _ => {}
            }
        }
        assert!(b.resyncs > resyncs, "B was told to resync ({})", cl.logs());
        assert!(
            late_pushes.is_empty(),
            "pushes held {pause} s were delivered late: {late_pushes:?}"
        );
        // The resync brings everything acked.
        b.catch_up(thread).await;
        let held: Vec<u64> = b.held[&thread].iter().map(|m| m.seq).collect();
        assert_eq!(held, (1..=held_last).collect::<Vec<_>>());
        last = held_last;
    }
    let log = std::fs::read_to_string(&cl.nodes[0].log).unwrap_or_default();
    assert!(log.contains("held too long"), "A's node dropped them");
}

/// Asks `/readyz` of the node (bounded) until `want` says yes; returns the last answer.
async fn readyz_until(node: &Node, want: impl Fn(&(u16, String)) -> bool) -> (u16, String) {
    let mut last = (0, String::new());
    for _ in 0..600 {
        if let Ok(r) = common::http::get(addr(node.metrics), "/readyz").await {
            if want(&r) {
                return r;
            }
            last = r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and Redis; run by scripts/test.sh"]
async fn readyz_says_not_ready_while_redis_is_paused_and_ready_again_after() {
    let (cl, _serial) = Cluster::start(1, false).await;
    let node = &cl.nodes[0];
    let ok = |r: &(u16, String)| r.0 == 200;
    assert_eq!(readyz_until(node, ok).await, (200, "ready\n".to_owned()));

    // A stopped Redis answers nothing: the subscriber's ping goes unanswered and the node
    // says it is not subscribed until it is again.
    cl.redis.signal("-STOP");
    let paused = readyz_until(node, |r| r.0 == 503).await;
    cl.redis.signal("-CONT");
    assert_eq!(
        paused,
        (
            503,
            "not ready: bus: not subscribed to Redis (reconnecting)\n".to_owned()
        ),
        "{}",
        cl.logs()
    );
    assert_eq!(
        readyz_until(node, ok).await,
        (200, "ready\n".to_owned()),
        "{}",
        cl.logs()
    );
    // Resubscribing told this node's clients to resync, and the metrics say so.
    let (status, text) = common::http::get(addr(node.metrics), "/metrics")
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(
        common::http::sample(&text, "confab_resyncs_total", &[("cause", "recovery")]) >= 1.0,
        "{text}"
    );
}
