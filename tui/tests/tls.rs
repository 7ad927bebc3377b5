//! The client core's TLS module against a real confab-server over loopback: `--ca-file` trust
//! logs in and chats; a wrong CA, an expired certificate and a name mismatch are refused with
//! their typed errors; trust on first use records, passes, and refuses a replaced certificate
//! loudly; `--trust-fingerprint` pins up front; `host:port` stays plain.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Duration;

use confab_server::Running;
use confab_tui::client::known_servers::{Fingerprint, KnownServers};
use confab_tui::client::tls::{
    CertProblem, ClientStream, ConnectError, Connector, ServerAddr, TrustOptions,
};
use confab_wire::pb;
use confab_wire::{Body, Envelope, EnvelopeCodec};
use futures::{SinkExt, StreamExt};
use tokio_util::codec::Framed;

const WAIT: Duration = Duration::from_secs(10);

struct Ca {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

struct Leaf {
    cert_pem: String,
    key_pem: String,
    fingerprint: Fingerprint,
}

fn make_ca(name: &str) -> Ca {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let key = rcgen::KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    Ca {
        issuer: rcgen::Issuer::new(params, key),
        pem,
    }
}

fn params(names: &[&str], expired: bool) -> rcgen::CertificateParams {
    let mut p =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    if expired {
        p.not_before = rcgen::date_time_ymd(2019, 1, 1);
        p.not_after = rcgen::date_time_ymd(2020, 1, 1);
    }
    p
}

fn issued(ca: &Ca, names: &[&str], expired: bool) -> Leaf {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params(names, expired).signed_by(&key, &ca.issuer).unwrap();
    Leaf {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        fingerprint: Fingerprint::of(cert.der()),
    }
}

fn self_signed() -> Leaf {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params(&["localhost"], false).self_signed(&key).unwrap();
    Leaf {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        fingerprint: Fingerprint::of(cert.der()),
    }
}

fn write_pair(dir: &Path, leaf: &Leaf) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, &leaf.cert_pem).unwrap();
    std::fs::write(&key, &leaf.key_pem).unwrap();
    (cert, key)
}

struct Server {
    running: Running,
    dir: tempfile::TempDir,
}

impl Server {
    /// A server on 127.0.0.1 serving `leaf` (or plain text without one).
    async fn start(leaf: Option<&Leaf>) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = confab_server::config::Config::defaults().unwrap();
        cfg.listen = "127.0.0.1:0".parse().unwrap();
        cfg.data_dir = dir.path().join("data");
        cfg.auth_per_ip_per_minute = 100_000;
        if let Some(leaf) = leaf {
            let (cert, key) = write_pair(dir.path(), leaf);
            cfg.tls_cert = Some(cert);
            cfg.tls_key = Some(key);
        }
        let running = confab_server::start(cfg).await.unwrap();
        Server { running, dir }
    }

    fn addr(&self, host: &str) -> ServerAddr {
        format!("tls://{host}:{}", self.running.addr.port())
            .parse()
            .unwrap()
    }

    /// Serves `leaf` to new connections from now on.
    fn replace(&self, leaf: &Leaf) {
        write_pair(self.dir.path(), leaf);
        self.running.tls.as_ref().unwrap().reload().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.running.shutdown.cancel();
    }
}

fn trust(ca_files: Vec<PathBuf>, known: Option<PathBuf>) -> Connector {
    Connector::new(TrustOptions {
        ca_files,
        system_roots: false,
        trust_fingerprint: None,
        known_servers: known,
    })
    .unwrap()
}

fn ca_file(dir: &Path, ca: &Ca, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, &ca.pem).unwrap();
    path
}

struct Chat {
    framed: Framed<ClientStream, EnvelopeCodec>,
    next_id: u64,
    pushes: VecDeque<Body>,
    user_id: u64,
}

impl Chat {
    async fn open(stream: ClientStream) -> Chat {
        let mut c = Chat {
            framed: Framed::new(stream, EnvelopeCodec::new()),
            next_id: 1,
            pushes: VecDeque::new(),
            user_id: 0,
        };
        let ok = c
            .request(Body::Hello(pb::Hello {
                protocol_major: 1,
                protocol_minor: 0,
                client_name: "tls-client-tests".into(),
                client_version: "0".into(),
                ..Default::default()
            }))
            .await;
        assert!(matches!(ok, Body::HelloOk(_)), "{ok:?}");
        c
    }

    async fn request(&mut self, body: Body) -> Body {
        let id = self.next_id;
        self.next_id += 1;
        self.framed.send(Envelope::new(id, body)).await.unwrap();
        loop {
            let env = self.next().await;
            if env.req_id == id {
                return env.body.expect("body");
            }
            self.pushes.extend(env.body);
        }
    }

    async fn next(&mut self) -> Envelope {
        tokio::time::timeout(WAIT, self.framed.next())
            .await
            .expect("a frame in time")
            .expect("open connection")
            .expect("valid frame")
    }

    async fn register(&mut self, name: &str) {
        let Body::AuthOk(auth) = self
            .request(Body::Register(pb::Register {
                name: name.into(),
                password: "correct horse battery".into(),
                device_name: "tls".into(),
                invite_code: String::new(),
            }))
            .await
        else {
            panic!("expected AuthOk")
        };
        self.user_id = auth.user.map_or(0, |u| u.user_id);
    }

    async fn ping(&mut self) {
        let reply = self.request(Body::Ping(pb::Ping { nonce: 3 })).await;
        assert!(matches!(reply, Body::Pong(_)), "{reply:?}");
    }
}

#[tokio::test]
async fn ca_file_trust_logs_in_and_chats() {
    let ca = make_ca("test CA");
    let leaf = issued(&ca, &["localhost"], false);
    let srv = Server::start(Some(&leaf)).await;
    let dir = tempfile::tempdir().unwrap();
    let known = dir.path().join("known_servers");
    let connector = trust(
        vec![ca_file(dir.path(), &ca, "ca.pem")],
        Some(known.clone()),
    );
    let addr = srv.addr("localhost");
    let stream = connector.connect(&addr).await.unwrap();
    assert!(stream.is_encrypted());
    assert_eq!(stream.peer_fingerprint(), Some(leaf.fingerprint));
    let mut a = Chat::open(stream).await;
    a.register("ca_a").await;
    let mut b = Chat::open(connector.connect(&addr).await.unwrap()).await;
    b.register("ca_b").await;
    let Body::FriendRequest(req) = a
        .request(Body::SendFriendRequest(pb::SendFriendRequest {
            user_id: b.user_id,
            note: String::new(),
        }))
        .await
    else {
        panic!("expected FriendRequest")
    };
    let Body::FriendRequest(req) = b
        .request(Body::RespondFriendRequest(pb::RespondFriendRequest {
            request_id: req.request_id,
            accept: true,
        }))
        .await
    else {
        panic!("expected FriendRequest")
    };
    let thread = req.thread_id;
    let ack = a
        .request(Body::Send(pb::Send {
            thread_id: thread,
            client_msg_id: "c1".into(),
            body: "hello over TLS".into(),
            reply_to: 0,
        }))
        .await;
    assert!(matches!(ack, Body::SendAck(_)), "{ack:?}");
    let got = loop {
        let body = match b.pushes.pop_front() {
            Some(body) => body,
            None => b.next().await.body.expect("body"),
        };
        if let Body::MessagePush(p) = body
            && let Some(m) = p.message
            && m.thread_id == thread
        {
            break m.body;
        }
    };
    assert_eq!(got, "hello over TLS");
    // A chain a trusted root signed is not recorded: there is nothing to pin.
    assert!(!known.exists());
}

#[tokio::test]
async fn wrong_ca_expired_and_name_mismatch_are_refused_with_typed_errors() {
    let ca = make_ca("test CA");
    let dir = tempfile::tempdir().unwrap();
    let known = dir.path().join("known_servers");
    let connector = trust(
        vec![ca_file(dir.path(), &ca, "ca.pem")],
        Some(known.clone()),
    );

    // Another CA's certificate: no trusted root signed it, so it is an unknown server that the
    // user may choose to trust; nothing is recorded without that.
    let other = make_ca("another CA");
    let foreign = issued(&other, &["localhost"], false);
    let srv = Server::start(Some(&foreign)).await;
    match connector.connect(&srv.addr("localhost")).await {
        Err(ConnectError::UnknownServer {
            server,
            fingerprint,
        }) => {
            assert_eq!(server, format!("localhost:{}", srv.running.addr.port()));
            assert_eq!(fingerprint, foreign.fingerprint);
        }
        other => panic!("expected UnknownServer, got {other:?}"),
    }
    assert!(!known.exists());
    drop(srv);

    let expired = issued(&ca, &["localhost"], true);
    let srv = Server::start(Some(&expired)).await;
    let err = connector.connect(&srv.addr("localhost")).await.err();
    assert!(
        matches!(
            &err,
            Some(ConnectError::Certificate {
                problem: CertProblem::Expired,
                ..
            })
        ),
        "{err:?}"
    );
    assert!(err.as_ref().is_some_and(ConnectError::is_trust_failure));
    drop(srv);

    // Issued for localhost, reached as 127.0.0.1.
    let named = issued(&ca, &["localhost"], false);
    let srv = Server::start(Some(&named)).await;
    let err = connector.connect(&srv.addr("127.0.0.1")).await.err();
    assert!(
        matches!(
            &err,
            Some(ConnectError::Certificate {
                problem: CertProblem::NameMismatch,
                ..
            })
        ),
        "{err:?}"
    );
    // The right name passes.
    Chat::open(connector.connect(&srv.addr("localhost")).await.unwrap())
        .await
        .ping()
        .await;
    assert!(!known.exists());
}

#[tokio::test]
async fn trust_on_first_use_records_passes_and_refuses_a_replaced_certificate() {
    let first = self_signed();
    let srv = Server::start(Some(&first)).await;
    assert_eq!(
        srv.running.tls.as_ref().map(|t| t.fingerprint()),
        Some(first.fingerprint.to_string()),
        "the server's fingerprint and the client's are written alike"
    );
    let dir = tempfile::tempdir().unwrap();
    let known = dir.path().join("data").join("known_servers");
    let connector = trust(Vec::new(), Some(known.clone()));
    let addr = srv.addr("127.0.0.1");

    // First contact: unknown, with the fingerprint to show the user.
    let fp = match connector.connect(&addr).await {
        Err(ConnectError::UnknownServer { fingerprint, .. }) => fingerprint,
        other => panic!("expected UnknownServer, got {other:?}"),
    };
    assert_eq!(fp, first.fingerprint);
    // The user accepts: recorded, and the next connection passes.
    KnownServers::load(&known)
        .unwrap()
        .record(&addr.authority(), fp)
        .unwrap();
    let stream = connector.connect(&addr).await.unwrap();
    assert!(stream.is_encrypted());
    let mut old = Chat::open(stream).await;
    old.register("tofu_user").await;

    // The server now presents another certificate: refused, loudly, naming both.
    let second = self_signed();
    srv.replace(&second);
    let fresh = Connector::new(TrustOptions {
        ca_files: Vec::new(),
        system_roots: false,
        trust_fingerprint: None,
        known_servers: Some(known.clone()),
    })
    .unwrap();
    match fresh.connect(&addr).await {
        Err(e @ ConnectError::FingerprintChanged { .. }) => {
            let ConnectError::FingerprintChanged {
                known: k,
                presented,
                ref path,
                ..
            } = e
            else {
                unreachable!()
            };
            assert_eq!((k, presented), (first.fingerprint, second.fingerprint));
            assert_eq!(path, &known);
            let text = e.to_string();
            assert!(text.contains("HAS CHANGED"), "{text}");
            assert!(text.contains(&first.fingerprint.to_string()), "{text}");
            assert!(text.contains(&second.fingerprint.to_string()), "{text}");
            assert!(e.is_trust_failure());
        }
        other => panic!("expected FingerprintChanged, got {other:?}"),
    }
    // Nothing was silently re-recorded, and the old connection still works.
    assert_eq!(
        KnownServers::load(&known)
            .unwrap()
            .lookup(&addr.authority()),
        Some(first.fingerprint)
    );
    old.ping().await;
}

#[tokio::test]
async fn a_fingerprint_given_up_front_pins_the_certificate() {
    let leaf = self_signed();
    let srv = Server::start(Some(&leaf)).await;
    let addr = srv.addr("127.0.0.1");
    let pinned = |fp: Fingerprint| {
        Connector::new(TrustOptions {
            ca_files: Vec::new(),
            system_roots: false,
            trust_fingerprint: Some(fp),
            known_servers: None,
        })
        .unwrap()
    };
    let given: Fingerprint = srv
        .running
        .tls
        .as_ref()
        .unwrap()
        .fingerprint()
        .parse()
        .unwrap();
    Chat::open(pinned(given).connect(&addr).await.unwrap())
        .await
        .ping()
        .await;
    let wrong = Fingerprint::of(b"not the certificate");
    match pinned(wrong).connect(&addr).await {
        Err(ConnectError::FingerprintMismatch {
            expected,
            presented,
            ..
        }) => assert_eq!((expected, presented), (wrong, leaf.fingerprint)),
        other => panic!("expected FingerprintMismatch, got {other:?}"),
    }
    // A pin holds even against a certificate a trusted root signed.
    let ca = make_ca("test CA");
    let dir = tempfile::tempdir().unwrap();
    let signed = issued(&ca, &["localhost"], false);
    srv.replace(&signed);
    let both = Connector::new(TrustOptions {
        ca_files: vec![ca_file(dir.path(), &ca, "ca.pem")],
        system_roots: false,
        trust_fingerprint: Some(leaf.fingerprint),
        known_servers: None,
    })
    .unwrap();
    assert!(matches!(
        both.connect(&srv.addr("localhost")).await,
        Err(ConnectError::FingerprintMismatch { .. })
    ));
}

#[tokio::test]
async fn host_port_stays_plain() {
    let srv = Server::start(None).await;
    let connector = trust(Vec::new(), None);
    let addr: ServerAddr = srv.running.addr.to_string().parse().unwrap();
    assert!(!addr.tls);
    let stream = connector.connect(&addr).await.unwrap();
    assert!(!stream.is_encrypted());
    assert_eq!(stream.peer_fingerprint(), None);
    Chat::open(stream).await.ping().await;
    // TLS to a plain server fails as a handshake error, not a trust question.
    let tls: ServerAddr = format!("tls://127.0.0.1:{}", srv.running.addr.port())
        .parse()
        .unwrap();
    let err = connector.connect(&tls).await.err();
    assert!(
        matches!(&err, Some(ConnectError::Handshake { .. })),
        "{err:?}"
    );
    assert!(!err.as_ref().is_some_and(ConnectError::is_trust_failure));
}

// ---------------------------------------------------------------------------------------------
// The client core (the engine every client uses) over TLS

fn tls_config(
    srv: &Server,
    known: &Path,
    pin: Option<Fingerprint>,
) -> confab_tui::client::ClientConfig {
    let mut cfg = common::config(srv.running.addr, None);
    cfg.addr = format!("tls://localhost:{}", srv.running.addr.port());
    cfg.trust = TrustOptions {
        ca_files: Vec::new(),
        system_roots: false,
        trust_fingerprint: pin,
        known_servers: Some(known.to_path_buf()),
    };
    cfg
}

#[tokio::test]
async fn the_engine_asks_before_trusting_sends_nothing_first_and_chats_once_trusted() {
    use confab_tui::client::{Auth, Client, ConnState, Event, TrustProblem};
    let leaf = self_signed();
    let srv = Server::start(Some(&leaf)).await;
    let home = tempfile::tempdir().unwrap();
    let known = home.path().join("known_servers");
    let auth = Auth::Register {
        name: "tofu_a".into(),
        password: common::PASSWORD.into(),
        invite: String::new(),
    };
    let (a, mut a_ev) = Client::start(tls_config(&srv, &known, None), auth).unwrap();
    // Unknown certificate: the engine stops with the fingerprint, before any Hello.
    let mut asked = None;
    common::until(&mut a_ev, |ev| match ev {
        Event::Untrusted(TrustProblem::Unknown {
            server,
            fingerprint,
        }) => {
            asked = Some((server.clone(), *fingerprint));
            false
        }
        Event::Session { .. } => panic!("authenticated with an untrusted server"),
        Event::State(ConnState::Stopped { .. }) => true,
        _ => false,
    })
    .await;
    let (server, fingerprint) = asked.expect("Untrusted came before Stopped");
    assert_eq!(fingerprint, leaf.fingerprint);
    assert_eq!(server, format!("localhost:{}", srv.running.addr.port()));
    // Nothing was sent: the name is still free.
    let (plain, _plain_ev, _, _) = common::online(
        tls_config(
            &srv,
            &home.path().join("probe_known"),
            Some(leaf.fingerprint),
        ),
        Auth::Register {
            name: "tofu_probe".into(),
            password: common::PASSWORD.into(),
            invite: String::new(),
        },
    )
    .await;
    let free = plain
        .request(Body::SearchUsers(pb::SearchUsers {
            query: "tofu_a".into(),
            ..Default::default()
        }))
        .await
        .unwrap();
    match free {
        Body::UserList(l) => assert!(
            l.users
                .iter()
                .all(|p| p.user.as_ref().is_none_or(|u| u.name != "tofu_a")),
            "{l:?}"
        ),
        b => panic!("expected UserList, got {b:?}"),
    }

    // The user says yes: recorded, and the same engine connects, encrypted, and registers.
    KnownServers::load(&known)
        .unwrap()
        .record(&server, fingerprint)
        .unwrap();
    a.reconnect_now().await.unwrap();
    let mut encrypted = None;
    let mut a_user = None;
    common::until(&mut a_ev, |ev| match ev {
        Event::Transport {
            encrypted: e,
            fingerprint: f,
        } => {
            assert_eq!(*f, Some(leaf.fingerprint));
            encrypted = Some(*e);
            false
        }
        Event::Session { user, .. } => {
            a_user = Some(user.clone());
            false
        }
        Event::Synced => true,
        _ => false,
    })
    .await;
    assert_eq!(encrypted, Some(true));
    let a_user = a_user.expect("registered over TLS");

    // A second user pinned by --trust-fingerprint (no known_servers entry needed) chats with A.
    let other_known = home.path().join("other_known");
    let (b, mut b_ev, b_user, _) = common::online(
        tls_config(&srv, &other_known, Some(leaf.fingerprint)),
        Auth::Register {
            name: "tofu_b".into(),
            password: common::PASSWORD.into(),
            invite: String::new(),
        },
    )
    .await;
    let thread = common::befriend(&a, &b, b_user.user_id).await;
    a.send(thread, "你好 over TLS").await.unwrap();
    common::until(&mut b_ev, |ev| {
        matches!(ev, Event::Message(m) if m.body == "你好 over TLS"
            && m.sender.as_ref().map(|u| u.user_id) == Some(a_user.user_id))
    })
    .await;
    assert!(!other_known.exists(), "a given pin writes nothing");

    // The certificate is replaced: a reconnect is refused loudly, never accepted.
    srv.replace(&self_signed());
    a.disconnect().await.unwrap();
    common::until(&mut a_ev, |ev| match ev {
        Event::Untrusted(TrustProblem::Refused { message, .. }) => {
            assert!(message.contains("HAS CHANGED"), "{message}");
            true
        }
        Event::Session { .. } => panic!("accepted a replaced certificate"),
        _ => false,
    })
    .await;
}

/// Runs the `confab` binary with its own data directory; (exit code, stdout, stderr).
async fn confab(data: &Path, args: &[&str], stdin: &str) -> (i32, String, String) {
    let data = data.to_path_buf();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let stdin = stdin.to_owned();
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_confab"))
            .args(&args)
            .env("CONFAB_DATA_DIR", &data)
            .env("XDG_CONFIG_HOME", data.join("config"))
            .env("CONFAB_PASSWORD", common::PASSWORD)
            .env_remove("CONFAB_SERVER")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn the_cli_refuses_an_unknown_server_with_exit_3_until_confab_trust_records_it() {
    let leaf = self_signed();
    let srv = Server::start(Some(&leaf)).await;
    let data = tempfile::tempdir().unwrap();
    let server = format!("tls://localhost:{}", srv.running.addr.port());
    let authority = format!("localhost:{}", srv.running.addr.port());

    let (code, _, err) = confab(
        data.path(),
        &["--server", &server, "register", "cli_tls"],
        "",
    )
    .await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains(&format!("confab trust {authority}")), "{err}");

    // Not confirmed (no terminal, no --yes): nothing recorded.
    let (code, out, err) = confab(data.path(), &["trust", &authority], "").await;
    assert_ne!(code, 0, "{out}{err}");
    assert!(out.contains(&leaf.fingerprint.to_string()), "{out}");
    assert!(!data.path().join("known_servers").exists());

    let (code, out, err) = confab(data.path(), &["trust", &authority, "--yes"], "").await;
    assert_eq!(code, 0, "{out}{err}");
    let known = KnownServers::load(&data.path().join("known_servers")).unwrap();
    assert_eq!(known.lookup(&authority), Some(leaf.fingerprint));

    let (code, out, err) = confab(
        data.path(),
        &["--server", &server, "register", "cli_tls"],
        "",
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = confab(data.path(), &["--server", &server, "threads"], "").await;
    assert_eq!(code, 0, "{out}{err}");

    // A wrong pin given up front and a replaced certificate: both exit 3, loudly.
    let other = self_signed();
    let wrong = other.fingerprint.to_string();
    let (code, _, err) = confab(
        data.path(),
        &[
            "--server",
            &server,
            "--trust-fingerprint",
            &wrong,
            "threads",
        ],
        "",
    )
    .await;
    assert_eq!(code, 3, "{err}");
    srv.replace(&other);
    let (code, _, err) = confab(data.path(), &["--server", &server, "threads"], "").await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("HAS CHANGED"), "{err}");
    assert!(
        err.contains(&leaf.fingerprint.to_string()) && err.contains(&wrong),
        "{err}"
    );
}
