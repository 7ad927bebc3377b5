//! The body of the service fuzz target (server/fuzz/fuzz_targets/service.rs), shared through
//! `#[path]` with the corpus replay test (server/tests/service_fuzz_corpus.rs), so both play
//! and check inputs the same way.
//!
//! An input is a sequence of steps on a few simulated connections (no sockets): each step sends
//! a request whose fields come from small domains (this input's users' names, the ids its
//! replies revealed, a few bad values), through the same state rules as the connection task
//! (`gate::frame`, then `Service::dispatch`). After every step: nothing panicked (here or in a
//! task or thread of the server), every request got exactly one reply with its `req_id`, pushes
//! carry no `req_id`, every reply fits in a frame, and nothing carries `INTERNAL`.
//!
//! One store serves many inputs: every name an input uses starts with a prefix of its own
//! (`x<n>.`), and it only ever names ids its own replies revealed, so no input sees another's
//! state. The store is replaced every [`INPUTS_PER_STORE`] inputs to bound its size.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use confab_server::config::Config;
use confab_server::hub::{ConnCtl, Kick};
use confab_server::service::gate::{self, Step};
use confab_server::service::{AuthChange, ConnCtx, Hasher, Outcome, Service};
use confab_server::store::Store;
use confab_server::store::sqlite::{SqliteBackend, SqliteConfig};
use confab_wire::pb::{self, ErrorCode};
use confab_wire::{Body, Envelope, Frame, PROTOCOL_MAJOR, PROTOCOL_MINOR};
use prost::Message;
use tokio::sync::mpsc;

#[path = "input.rs"]
mod input;

use input::{Domain, Known, Op};

/// Simulated connections at once.
const CONNS: usize = 3;
/// Steps played per input (the rest of a longer input is ignored).
const MAX_STEPS: usize = 40;
/// Requests one pipelined step sends back to back.
const MAX_PIPELINE: usize = 4;
/// Inputs played on one store before it is replaced.
const INPUTS_PER_STORE: u64 = 2000;
/// A watchdog, not a latency check: a request still running after this long has hung (a
/// deadlock), and the input fails instead of blocking the test forever.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

static PANICKED: AtomicBool = AtomicBool::new(false);

/// The service under test and what lasts across inputs.
pub struct Harness {
    rt: tokio::runtime::Runtime,
    hasher: Hasher,
    svc: Option<(Arc<Service<SqliteBackend>>, tempfile::TempDir)>,
    inputs: u64,
    next_conn: u64,
    /// Replies seen, by body (errors by code): shows which paths the inputs reach.
    pub replies: std::collections::BTreeMap<String, u64>,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    pub fn new() -> Self {
        // A panic anywhere (a spawned task, the store's threads) fails the input, not only
        // one on this thread: tokio would otherwise swallow a task's panic.
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICKED.store(true, Ordering::SeqCst);
            prev(info);
        }));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        Self {
            rt,
            hasher: Hasher::minimum_cost(1).expect("hasher"),
            svc: None,
            inputs: 0,
            next_conn: 1,
            replies: Default::default(),
        }
    }

    /// The configuration the inputs run against: small frames (a body may fill half of one)
    /// and pages, so that lists are cut and paged after a few entries.
    pub fn config(data_dir: &std::path::Path) -> Config {
        let mut cfg = Config::defaults().expect("defaults");
        cfg.data_dir = data_dir.to_path_buf();
        cfg.max_frame_bytes = 8192;
        cfg.max_body_bytes = 4096;
        cfg.max_page = 6;
        cfg.max_group_members = 3;
        cfg.max_pending_friend_requests = 2;
        cfg.auth_per_ip_per_minute = 1_000_000_000;
        cfg.auth_per_name_per_minute = 1_000_000_000;
        cfg
    }

    fn service(&mut self) -> Arc<Service<SqliteBackend>> {
        if self.inputs.is_multiple_of(INPUTS_PER_STORE)
            && let Some((old, _dir)) = self.svc.take()
        {
            old.close_store();
        }
        if let Some((svc, _)) = &self.svc {
            return svc.clone();
        }
        // tmpfs when there is one: every write waits for the redo log's fdatasync.
        let base = std::path::Path::new("/dev/shm");
        let dir = if base.is_dir() {
            tempfile::tempdir_in(base)
        } else {
            tempfile::tempdir()
        }
        .expect("tempdir");
        let cfg = Self::config(dir.path());
        let backend =
            SqliteBackend::open(&SqliteConfig::new(dir.path().join("confab.db"))).expect("store");
        let hasher = self.hasher.clone();
        let svc = self
            .rt
            .block_on(async move { Service::start(cfg, Store::new(backend), hasher) });
        self.svc = Some((svc.clone(), dir));
        svc
    }

    /// Plays one input and checks it; panics on the first violation.
    pub fn run(&mut self, data: &[u8]) {
        let svc = self.service();
        self.inputs += 1;
        let mut u = Unstructured::new(data);
        let mut play = Play {
            svc,
            ns: format!("x{}.", self.inputs),
            conns: Vec::new(),
            known: Known::default(),
            next_conn: &mut self.next_conn,
            replies: &mut self.replies,
        };
        let rt = &self.rt;
        rt.block_on(async {
            for _ in 0..CONNS {
                let c = play.open();
                play.conns.push(c);
            }
            play.greet().await;
            for _ in 0..MAX_STEPS {
                // `arbitrary` pads an exhausted input with zeros: stop instead of playing
                // the same first-variant step again and again.
                if u.is_empty() {
                    break;
                }
                let Ok(op) = Op::arbitrary(&mut u) else { break };
                play.step(op).await;
                play.after_step().await;
            }
            for c in std::mem::take(&mut play.conns) {
                play.close(c);
            }
            // Let the goodbyes (presence, last seen) run before the next input.
            for _ in 0..8 {
                tokio::task::yield_now().await;
            }
            check_no_panic();
        });
    }
}

fn check_no_panic() {
    assert!(
        !PANICKED.load(Ordering::SeqCst),
        "a panic happened in the server (see above)"
    );
}

/// A simulated connection: what the connection task keeps, less the socket.
struct Conn {
    ctx: ConnCtx,
    pushes: mpsc::Receiver<Frame>,
    hello_done: bool,
    next_req: u64,
    /// Say Hello after this step: a client reconnecting does so first.
    say_hello: bool,
}

/// One input being played.
struct Play<'h> {
    svc: Arc<Service<SqliteBackend>>,
    /// This input's name prefix.
    ns: String,
    conns: Vec<Conn>,
    known: Known,
    next_conn: &'h mut u64,
    replies: &'h mut std::collections::BTreeMap<String, u64>,
}

impl Play<'_> {
    fn open(&mut self) -> Conn {
        let (out, pushes) = mpsc::channel(self.svc.cfg.outbound_queue);
        *self.next_conn += 1;
        Conn {
            ctx: ConnCtx {
                conn_id: *self.next_conn,
                peer: IpAddr::V4(Ipv4Addr::LOCALHOST),
                session: None,
                out,
                ctl: Arc::new(ConnCtl::default()),
                quiet: false,
                client: "fuzz".into(),
                operator: false,
            },
            pushes,
            hello_done: false,
            next_req: 0,
            say_hello: true,
        }
    }

    /// What the connection task does when it ends: off the hub.
    fn close(&mut self, mut c: Conn) {
        if let Some(s) = c.ctx.session.take() {
            self.svc.detach(c.ctx.conn_id, &s);
        }
    }

    fn reopen(&mut self, i: usize) {
        let fresh = self.open();
        let old = std::mem::replace(&mut self.conns[i], fresh);
        self.close(old);
    }

    /// An envelope as the connection task would decode it from the wire.
    fn on_the_wire(req_id: u64, body: Body) -> Envelope {
        let bytes = Envelope::new(req_id, body).encode_to_vec();
        Envelope::decode(bytes.as_slice()).expect("an encoded envelope decodes")
    }

    fn body(&self, req: input::Req) -> Body {
        Domain {
            ns: &self.ns,
            known: &self.known,
            max_body: self.svc.cfg.max_body_bytes as usize,
        }
        .body(req)
    }

    async fn step(&mut self, op: Op) {
        match op {
            Op::Send { conn, notify, req } => {
                let i = usize::from(conn) % CONNS;
                let body = self.body(req);
                let req_id = self.req_id(i, notify);
                self.pipeline(i, vec![Self::on_the_wire(req_id, body)])
                    .await;
            }
            Op::Pipeline { conn, reqs } => {
                let i = usize::from(conn) % CONNS;
                let mut envs = Vec::new();
                for req in reqs.into_iter().take(MAX_PIPELINE) {
                    let body = self.body(req);
                    let req_id = self.req_id(i, false);
                    envs.push(Self::on_the_wire(req_id, body));
                }
                self.pipeline(i, envs).await;
            }
            Op::Raw { conn, bytes } => {
                if let Ok(env) = Envelope::decode(bytes.as_slice()) {
                    self.pipeline(usize::from(conn) % CONNS, vec![env]).await;
                }
            }
            Op::Reconnect { conn, hello } => {
                let i = usize::from(conn) % CONNS;
                self.reopen(i);
                self.conns[i].say_hello = hello;
            }
            Op::FlushDelivered => self.svc.flush_delivered().await,
            Op::Yield => {
                for _ in 0..4 {
                    tokio::task::yield_now().await;
                }
            }
        }
    }

    /// A plain Hello on the connections that were (re)opened to say one.
    async fn greet(&mut self) {
        for i in 0..self.conns.len() {
            if std::mem::take(&mut self.conns[i].say_hello) {
                let hello = Body::Hello(pb::Hello {
                    protocol_major: PROTOCOL_MAJOR,
                    protocol_minor: PROTOCOL_MINOR,
                    ..Default::default()
                });
                let req_id = self.req_id(i, false);
                self.pipeline(i, vec![Envelope::new(req_id, hello)]).await;
            }
        }
    }

    fn req_id(&mut self, i: usize, notify: bool) -> u64 {
        if notify {
            return 0;
        }
        let c = &mut self.conns[i];
        c.next_req += 1;
        c.next_req
    }

    /// Runs envelopes received back to back on connection `i` as the connection task does:
    /// concurrently, except a `Hello` or a request that changes authentication, which runs
    /// once those before it are answered, and alone.
    async fn pipeline(&mut self, i: usize, envs: Vec<Envelope>) {
        let mut running = Vec::new();
        for env in envs {
            let req_id = env.req_id;
            let c = &self.conns[i];
            match gate::frame(c.hello_done, req_id, env.body) {
                Step::Ignore => assert_eq!(req_id, 0, "request {req_id} was ignored"),
                Step::Reply(reply) => {
                    self.answered(i, req_id, Some(reply));
                }
                Step::Close(e, answers) => {
                    check_error(&e);
                    assert!(e.fatal, "a closing error is fatal: {e:?}");
                    assert!(
                        answers == req_id || answers == 0,
                        "the close answers {answers}, not request {req_id}"
                    );
                    // Requests running when the connection closes are not answered.
                    self.finish(i, std::mem::take(&mut running)).await;
                    self.reopen(i);
                    return;
                }
                Step::Hello(hello) => {
                    self.finish(i, std::mem::take(&mut running)).await;
                    self.conns[i].ctx.quiet = hello.quiet;
                    let ctx = self.conns[i].ctx.clone();
                    let svc = self.svc.clone();
                    let outcome = within(req_id, svc.hello(&ctx, req_id, hello)).await;
                    if !self.outcome(i, req_id, outcome) {
                        return;
                    }
                }
                Step::Request { body, exclusive } => {
                    if exclusive {
                        if !self.finish(i, std::mem::take(&mut running)).await {
                            return;
                        }
                        let fut = self.svc.dispatch(&self.conns[i].ctx, req_id, body);
                        if !self.outcome(i, req_id, within(req_id, fut).await) {
                            return;
                        }
                    } else {
                        let fut = self.svc.dispatch(&self.conns[i].ctx, req_id, body);
                        running.push(async move { (req_id, within(req_id, fut).await) });
                    }
                }
            }
        }
        self.finish(i, running).await;
    }

    /// Waits for requests running together and applies their outcomes; false if the
    /// connection closed.
    async fn finish(
        &mut self,
        i: usize,
        running: Vec<impl Future<Output = (u64, Outcome)>>,
    ) -> bool {
        let mut open = true;
        for (req_id, outcome) in futures::future::join_all(running).await {
            open &= self.outcome(i, req_id, outcome);
        }
        open
    }

    /// Checks and applies one outcome as the connection task does; false if it closed the
    /// connection.
    fn outcome(&mut self, i: usize, req_id: u64, outcome: Outcome) -> bool {
        let fatal =
            matches!(&outcome.reply, Some(Envelope { body: Some(Body::Error(e)), .. }) if e.fatal);
        self.answered(i, req_id, outcome.reply);
        let c = &mut self.conns[i];
        match outcome.auth {
            AuthChange::Unchanged => {}
            AuthChange::LoggedIn(s) => c.ctx.session = Some(s),
            AuthChange::LoggedOut => c.ctx.session = None,
        }
        if fatal {
            self.reopen(i);
            return false;
        }
        true
    }

    /// The one reply to `req_id` (none for a notification that succeeded).
    fn answered(&mut self, i: usize, req_id: u64, reply: Option<Envelope>) {
        let Some(reply) = reply else {
            assert_eq!(req_id, 0, "request {req_id} got no reply");
            return;
        };
        let body = reply.body.as_ref().expect("a reply has a body");
        if req_id == 0 {
            assert!(
                matches!(body, Body::Error(_)),
                "a notification is answered only with an error, got {body:?}"
            );
        }
        assert_eq!(reply.req_id, req_id, "the reply's req_id: {body:?}");
        let max = self.svc.cfg.max_frame_bytes as usize;
        assert!(
            reply.encoded_len() <= max,
            "a {} reply of {} bytes exceeds the {max}-byte frame",
            confab_wire::body_name(body),
            reply.encoded_len()
        );
        let kind = match body {
            Body::Error(e) => {
                check_error(e);
                format!("Error {:?}", e.code())
            }
            other => confab_wire::body_name(other).to_owned(),
        };
        *self.replies.entry(kind).or_default() += 1;
        let c = &mut self.conns[i];
        if !c.hello_done && matches!(body, Body::HelloOk(_)) {
            c.hello_done = true;
        }
        self.known.learn(body);
    }

    /// After every step: pushes are checked and learned from, kicked connections close.
    async fn after_step(&mut self) {
        for i in 0..self.conns.len() {
            while let Ok(frame) = self.conns[i].pushes.try_recv() {
                let bytes = frame.as_bytes();
                let env = Envelope::decode(&bytes[confab_wire::LENGTH_PREFIX_BYTES..])
                    .expect("a push decodes");
                assert_eq!(env.req_id, 0, "a push with a req_id: {env:?}");
                let body = env.body.expect("a push has a body");
                assert!(
                    confab_wire::is_server_body(&body),
                    "pushed a client body: {body:?}"
                );
                if let Body::Error(e) = &body {
                    check_error(e);
                }
                self.known.learn(&body);
            }
            if !matches!(self.conns[i].ctx.ctl.reason(), Kick::None) {
                self.reopen(i);
            }
        }
        self.greet().await;
        check_no_panic();
    }
}

fn check_error(e: &pb::Error) {
    assert_ne!(
        e.code,
        ErrorCode::Internal as i32,
        "INTERNAL: {}",
        e.message
    );
}

/// Runs `fut`, failing the input if it hangs.
async fn within<F: Future<Output = Outcome>>(req_id: u64, fut: F) -> Outcome {
    match tokio::time::timeout(STEP_TIMEOUT, fut).await {
        Ok(o) => o,
        Err(_) => panic!("request {req_id} hung for {STEP_TIMEOUT:?}"),
    }
}
