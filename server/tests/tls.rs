//! TLS on the listener, over real handshakes on loopback: a CA-signed certificate serves logins
//! and chat; SIGHUP (the real signal to the real binary) serves a new certificate to new
//! connections while old ones keep chatting, and a broken pair keeps the old one; the
//! self-signed pair is made once and its fingerprint logged and printed; plain text is refused
//! off loopback; PROXY headers come before the handshake; and each kind of hostile input gets
//! a clean close, no log line above debug, and no effect on a bystander.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{PASSWORD, TestServer, WAIT, free_port};
use confab_wire::pb;
use confab_wire::{Body, Envelope, EnvelopeCodec};
use futures::{SinkExt, StreamExt};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_util::codec::Encoder;
use tokio_util::codec::Framed;

// ---- certificates ----

struct Ca {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

fn ca() -> Ca {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "confab test CA");
    let key = rcgen::KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    Ca {
        issuer: rcgen::Issuer::new(params, key),
        pem,
    }
}

fn leaf(ca: &Ca, names: &[&str]) -> Leaf {
    let params =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    Leaf {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        der: cert.der().clone(),
    }
}

fn write_pair(dir: &Path, leaf: &Leaf) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, &leaf.cert_pem).unwrap();
    std::fs::write(&key, &leaf.key_pem).unwrap();
    (cert, key)
}

fn fingerprint(der: &[u8]) -> String {
    confab_server::tls::fingerprint(der)
}

// ---- a TLS client speaking frames ----

fn roots(ca: &Ca) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    for c in
        <CertificateDer as rustls::pki_types::pem::PemObject>::pem_slice_iter(ca.pem.as_bytes())
    {
        roots.add(c.unwrap()).unwrap();
    }
    roots
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Trusts `ca`; full handshakes only (a resumed session would show the certificate of the
/// session it resumes, not the one served now).
fn client_config(ca: &Ca) -> ClientConfig {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(ca))
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    config
}

async fn handshake(addr: SocketAddr, config: ClientConfig) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    handshake_on(tcp, config).await
}

async fn handshake_on(tcp: TcpStream, mut config: ClientConfig) -> TlsStream<TcpStream> {
    config.alpn_protocols = vec![b"confab/1".to_vec()];
    let name = ServerName::try_from("localhost").unwrap();
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake")
}

fn presented(stream: &TlsStream<TcpStream>) -> String {
    let certs = stream.get_ref().1.peer_certificates().unwrap();
    fingerprint(certs[0].as_ref())
}

struct TlsClient {
    framed: Framed<TlsStream<TcpStream>, EnvelopeCodec>,
    next_id: u64,
    pushes: VecDeque<Body>,
    user_id: u64,
}

impl TlsClient {
    async fn open(stream: TlsStream<TcpStream>) -> TlsClient {
        let mut c = TlsClient {
            framed: Framed::new(stream, EnvelopeCodec::new()),
            next_id: 1,
            pushes: VecDeque::new(),
            user_id: 0,
        };
        let ok = c
            .request(Body::Hello(pb::Hello {
                protocol_major: 1,
                protocol_minor: 0,
                client_name: "tls-tests".into(),
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
            let env = tokio::time::timeout(WAIT, self.framed.next())
                .await
                .expect("a reply in time")
                .expect("open connection")
                .expect("valid frame");
            if env.req_id == id {
                return env.body.expect("body");
            }
            self.pushes.extend(env.body);
        }
    }

    async fn register(&mut self, name: &str) {
        let reply = self
            .request(Body::Register(pb::Register {
                name: name.into(),
                password: PASSWORD.into(),
                device_name: "tls".into(),
                invite_code: String::new(),
            }))
            .await;
        let Body::AuthOk(auth) = reply else {
            panic!("expected AuthOk, got {reply:?}")
        };
        self.user_id = auth.user.map_or(0, |u| u.user_id);
    }

    async fn ping(&mut self) {
        let reply = self.request(Body::Ping(pb::Ping { nonce: 7 })).await;
        assert!(
            matches!(reply, Body::Pong(pb::Pong { nonce: 7, .. })),
            "{reply:?}"
        );
    }

    async fn send_text(&mut self, thread: u64, cmid: &str, text: &str) {
        let reply = self
            .request(Body::Send(pb::Send {
                thread_id: thread,
                client_msg_id: cmid.into(),
                body: text.into(),
                reply_to: 0,
            }))
            .await;
        assert!(matches!(reply, Body::SendAck(_)), "{reply:?}");
    }

    async fn message(&mut self, thread: u64) -> String {
        loop {
            let body = match self.pushes.pop_front() {
                Some(b) => b,
                None => {
                    let env = tokio::time::timeout(WAIT, self.framed.next())
                        .await
                        .expect("a push in time")
                        .expect("open connection")
                        .expect("valid frame");
                    env.body.expect("body")
                }
            };
            if let Body::MessagePush(p) = body
                && let Some(m) = p.message
                && m.thread_id == thread
            {
                return m.body;
            }
        }
    }
}

async fn befriend(a: &mut TlsClient, b: &mut TlsClient) -> u64 {
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
    assert_ne!(req.thread_id, 0);
    req.thread_id
}

/// Two users over TLS, friends; returns them and their thread.
async fn pair(addr: SocketAddr, config: &ClientConfig, tag: &str) -> (TlsClient, TlsClient, u64) {
    let mut a = TlsClient::open(handshake(addr, config.clone()).await).await;
    a.register(&format!("{tag}_a")).await;
    let mut b = TlsClient::open(handshake(addr, config.clone()).await).await;
    b.register(&format!("{tag}_b")).await;
    let thread = befriend(&mut a, &mut b).await;
    (a, b, thread)
}

async fn start_tls(
    dir: &Path,
    leaf: &Leaf,
    tune: impl FnOnce(&mut confab_server::config::Config),
) -> TestServer {
    let (cert, key) = write_pair(dir, leaf);
    TestServer::start_with(|cfg| {
        cfg.tls_cert = Some(cert);
        cfg.tls_key = Some(key);
        tune(cfg);
    })
    .await
}

// ---- the real binary ----

struct Proc {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Proc {
    /// The binary with `args`, JSON logs at info into a file, once it accepts connections.
    async fn spawn(dir: &Path, args: &[&str]) -> Proc {
        let port = free_port();
        let log = dir.join("server.log");
        let child = Command::new(env!("CARGO_BIN_EXE_confab-server"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--log-format", "json", "--hello-timeout-ms", "1000"])
            .args(args)
            .env("CONFAB_AUTH_PER_IP_PER_MINUTE", "100000")
            .env("CONFAB_LOG", "info")
            // The server logs to stdout.
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn confab-server");
        let mut p = Proc {
            child,
            addr: format!("127.0.0.1:{port}").parse().unwrap(),
            log,
        };
        p.wait_log("accepting connections").await;
        p
    }

    fn lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits (boundedly) for a log line whose message is `message`; returns it.
    async fn wait_log(&mut self, message: &str) -> serde_json::Value {
        for _ in 0..400 {
            if let Some(l) = self
                .lines()
                .into_iter()
                .find(|l| l["fields"]["message"] == message)
            {
                return l;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "server exited ({status}): {:?}",
                    std::fs::read_to_string(&self.log)
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "no log line {message:?}: {:?}",
            std::fs::read_to_string(&self.log)
        )
    }

    /// How many log lines say `message`.
    fn count(&self, message: &str) -> usize {
        self.lines()
            .iter()
            .filter(|l| l["fields"]["message"] == message)
            .count()
    }

    fn hangup(&self) {
        let ok = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -HUP");
    }

    /// Log lines after start-up that are not the periodic writer statistics (nor the ready
    /// line, which may come after the listener's): what connections made the server say at
    /// info and above.
    fn connection_lines(&self) -> Vec<serde_json::Value> {
        let lines = self.lines();
        let start = lines
            .iter()
            .position(|l| l["fields"]["message"] == "accepting connections")
            .unwrap();
        lines
            .into_iter()
            .skip(start + 1)
            .filter(|l| {
                !matches!(
                    l["fields"]["message"].as_str(),
                    Some("writer" | "confab-server ready")
                )
            })
            .collect()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- tests ----

#[tokio::test]
async fn ca_signed_certificate_serves_login_and_chat() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca();
    let cert = leaf(&ca, &["localhost"]);
    let srv = start_tls(dir.path(), &cert, |_| {}).await;
    let config = client_config(&ca);
    let (mut a, mut b, thread) = pair(srv.addr, &config, "tls_chat").await;
    {
        let (_, conn) = a.framed.get_ref().get_ref();
        assert_eq!(
            conn.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_3)
        );
        assert_eq!(conn.alpn_protocol(), Some(&b"confab/1"[..]));
    }
    assert_eq!(
        presented(a.framed.get_ref()),
        fingerprint(cert.der.as_ref())
    );
    a.send_text(thread, "m1", "over TLS").await;
    assert_eq!(b.message(thread).await, "over TLS");
    b.send_text(thread, "m2", "and back").await;
    assert_eq!(a.message(thread).await, "and back");
    assert_eq!(
        srv.running.tls.as_ref().map(|t| t.fingerprint()),
        Some(fingerprint(cert.der.as_ref()))
    );

    // TLS 1.2 is served too, and a client that offers no ALPN is served all the same.
    let tls12 = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots(&ca))
        .with_no_client_auth();
    let tcp = TcpStream::connect(srv.addr).await.unwrap();
    let stream = TlsConnector::from(Arc::new(tls12))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(
        stream.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    assert_eq!(stream.get_ref().1.alpn_protocol(), None);
    let mut old = TlsClient::open(stream).await;
    old.ping().await;
}

#[tokio::test]
async fn sighup_reloads_for_new_connections_while_old_ones_chat() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca();
    let first = leaf(&ca, &["localhost"]);
    let (cert, key) = write_pair(dir.path(), &first);
    let (cert_s, key_s) = (cert.display().to_string(), key.display().to_string());
    let mut srv = Proc::spawn(dir.path(), &["--tls-cert", &cert_s, "--tls-key", &key_s]).await;
    let config = client_config(&ca);
    let (mut a, mut b, thread) = pair(srv.addr, &config, "reload").await;
    assert_eq!(
        presented(a.framed.get_ref()),
        fingerprint(first.der.as_ref())
    );

    // Renewed: new files, then the signal.
    let second = leaf(&ca, &["localhost"]);
    write_pair(dir.path(), &second);
    srv.hangup();
    let line = srv.wait_log("TLS certificate reloaded").await;
    assert_eq!(
        line["fields"]["fingerprint"],
        fingerprint(second.der.as_ref())
    );
    let fresh = handshake(srv.addr, config.clone()).await;
    assert_eq!(presented(&fresh), fingerprint(second.der.as_ref()));
    let mut fresh = TlsClient::open(fresh).await;
    fresh.ping().await;
    // The connections made before the reload were not dropped and still chat.
    a.send_text(thread, "r1", "after the reload").await;
    assert_eq!(b.message(thread).await, "after the reload");

    // A broken pair (a key of another certificate) is refused and the last good one stays.
    let other = leaf(&ca, &["localhost"]);
    std::fs::write(&key, &other.key_pem).unwrap();
    srv.hangup();
    let line = srv
        .wait_log("TLS reload failed; still serving the old certificate")
        .await;
    assert_eq!(line["level"], "WARN");
    assert!(
        line["fields"]["error"]
            .as_str()
            .unwrap_or("")
            .contains("does not belong"),
        "{line}"
    );
    let still = handshake(srv.addr, config.clone()).await;
    assert_eq!(presented(&still), fingerprint(second.der.as_ref()));
    // And an unreadable certificate file the same way.
    std::fs::write(&cert, "garbage").unwrap();
    srv.hangup();
    for _ in 0..400 {
        if srv.count("TLS reload failed; still serving the old certificate") >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        srv.count("TLS reload failed; still serving the old certificate"),
        2
    );
    let still = handshake(srv.addr, config.clone()).await;
    assert_eq!(presented(&still), fingerprint(second.der.as_ref()));
    b.send_text(thread, "r2", "still here").await;
    assert_eq!(a.message(thread).await, "still here");
    assert_eq!(srv.count("TLS certificate reloaded"), 1);
}

#[tokio::test]
async fn self_signed_pair_is_made_once_logged_and_printed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut srv = Proc::spawn(dir.path(), &["--tls-self-signed"]).await;
    let logged = srv.wait_log("TLS certificate").await["fields"]["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        logged.starts_with("SHA256:") && logged.len() == 7 + 43,
        "{logged}"
    );
    // What the server presents is what it logged.
    let tcp = TcpStream::connect(srv.addr).await.unwrap();
    let seen = Arc::new(std::sync::Mutex::new(None));
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Record(seen.clone(), provider())))
        .with_no_client_auth();
    let stream = handshake_on(tcp, config).await;
    assert_eq!(presented(&stream), logged);
    assert_eq!(seen.lock().unwrap().clone(), Some(logged.clone()));
    let key = data.join(confab_server::tls::self_signed::KEY_FILE);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    drop(stream);
    drop(srv);

    // `confab-server fingerprint` prints it; a restart reuses the pair.
    let out = Command::new(env!("CARGO_BIN_EXE_confab-server"))
        .arg("fingerprint")
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), logged);
    let mut again = Proc::spawn(dir.path(), &["--tls-self-signed"]).await;
    assert_eq!(
        again.wait_log("TLS certificate").await["fields"]["fingerprint"],
        logged
    );
    // With a named certificate it prints that one's.
    let ca = ca();
    let named = leaf(&ca, &["localhost"]);
    let (cert, _) = write_pair(dir.path(), &named);
    let out = Command::new(env!("CARGO_BIN_EXE_confab-server"))
        .arg("fingerprint")
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(dir.path().join("key.pem"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        fingerprint(named.der.as_ref())
    );
    // Without any certificate it says so.
    let none = Command::new(env!("CARGO_BIN_EXE_confab-server"))
        .arg("fingerprint")
        .arg("--data-dir")
        .arg(dir.path().join("empty"))
        .output()
        .unwrap();
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("no certificate"));
}

/// Accepts any certificate and records its fingerprint (signatures still checked).
#[derive(Debug)]
struct Record(
    Arc<std::sync::Mutex<Option<String>>>,
    Arc<rustls::crypto::CryptoProvider>,
);

impl rustls::client::danger::ServerCertVerifier for Record {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        *self.0.lock().unwrap() = Some(fingerprint(end_entity.as_ref()));
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.1.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.1.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.1.signature_verification_algorithms.supported_schemes()
    }
}

#[tokio::test]
async fn plain_text_off_loopback_is_refused_unless_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::base_config(dir.path(), None);
    cfg.listen = "0.0.0.0:0".parse().unwrap();
    let err = match confab_server::start(cfg.clone()).await {
        Ok(_) => panic!("plain text on 0.0.0.0 must be refused"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.starts_with(
            "refusing to listen in plain text on 0.0.0.0:0, which is not a loopback address"
        ),
        "{err}"
    );
    assert!(err.contains("--plaintext"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_confab-server"))
        .args(["--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path().join("bin"))
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("refusing to listen in plain text on 0.0.0.0:0"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Behind a TLS-terminating balancer: asked for, so served.
    cfg.plaintext = true;
    let running = confab_server::start(cfg).await.expect("--plaintext starts");
    let port = running.addr.port();
    let mut c = common::Client::connect(SocketAddr::from(([127, 0, 0, 1], port))).await;
    let _ = c.request(Body::Ping(pb::Ping { nonce: 1 })).await;
    running.shutdown.cancel();
}

#[tokio::test]
async fn proxy_header_comes_before_the_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca();
    let cert = leaf(&ca, &["localhost"]);
    let srv = start_tls(dir.path(), &cert, |cfg| {
        cfg.proxy_protocol = true;
        cfg.hello_timeout = Duration::from_millis(1000);
    })
    .await;
    let mut tcp = TcpStream::connect(srv.addr).await.unwrap();
    tcp.write_all(b"PROXY TCP4 203.0.113.7 192.0.2.1 51000 7000\r\n")
        .await
        .unwrap();
    let mut c = TlsClient::open(handshake_on(tcp, client_config(&ca)).await).await;
    c.register("proxied_tls").await;
    c.ping().await;
    // A handshake without the header is refused before any TLS is spoken.
    let tcp = TcpStream::connect(srv.addr).await.unwrap();
    let mut config = client_config(&ca);
    config.alpn_protocols = vec![b"confab/1".to_vec()];
    let refused = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp);
    assert!(
        tokio::time::timeout(WAIT, refused)
            .await
            .expect("closed in time")
            .is_err()
    );
}

// ---- hostile input on a TLS port ----

/// A TLS server (the real binary, Hello timeout 1 s, logging at info) with a bystander that
/// said Hello before the hostile peer came; runs `case`, then checks the bystander is still
/// served and that nothing about the hostile connection was logged above debug.
async fn hostile<F, Fut>(case: F)
where
    F: FnOnce(SocketAddr, Arc<Ca>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let ca = Arc::new(ca());
    let cert = leaf(&ca, &["localhost"]);
    let (c, k) = write_pair(dir.path(), &cert);
    let (c, k) = (c.display().to_string(), k.display().to_string());
    let srv = Proc::spawn(dir.path(), &["--tls-cert", &c, "--tls-key", &k]).await;
    let mut bystander = TlsClient::open(handshake(srv.addr, client_config(&ca)).await).await;
    case(srv.addr, ca.clone()).await;
    bystander.ping().await;
    // A newcomer is served as usual.
    let mut newcomer = TlsClient::open(handshake(srv.addr, client_config(&ca)).await).await;
    newcomer.ping().await;
    assert_eq!(srv.connection_lines(), Vec::<serde_json::Value>::new());
}

/// Sends `bytes` on a fresh TCP connection and reads until the server closes; returns what
/// it sent back.
async fn send_and_drain(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    if !bytes.is_empty() {
        tcp.write_all(bytes).await.unwrap();
    }
    drain(tcp).await
}

async fn drain(mut tcp: TcpStream) -> Vec<u8> {
    let mut back = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(WAIT, tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return back,
            Ok(Ok(n)) => back.extend_from_slice(&buf[..n]),
            Err(_) => panic!("the server did not close the connection"),
        }
    }
}

/// Nothing, or a TLS alert record: never a confab frame or anything else.
fn closed_cleanly(back: &[u8]) {
    assert!(
        back.is_empty() || (back[0] == 0x15 && back.len() <= 7 + 24),
        "expected nothing or a TLS alert, got {back:?}"
    );
}

/// The first bytes a rustls client sends: its ClientHello record.
fn client_hello() -> Vec<u8> {
    let config = Arc::new(client_config(&ca()));
    let mut conn =
        rustls::ClientConnection::new(config, ServerName::try_from("localhost").unwrap()).unwrap();
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    assert_eq!(out[0], 0x16, "a handshake record");
    out
}

#[tokio::test]
async fn hostile_plain_confab_frames() {
    hostile(|addr, _| async move {
        let mut frame = bytes::BytesMut::new();
        let hello = Envelope::new(
            1,
            Body::Hello(pb::Hello {
                protocol_major: 1,
                protocol_minor: 0,
                client_name: "plain".into(),
                client_version: "0".into(),
                ..Default::default()
            }),
        );
        EnvelopeCodec::new().encode(hello, &mut frame).unwrap();
        closed_cleanly(&send_and_drain(addr, &frame).await);
    })
    .await;
}

#[tokio::test]
async fn hostile_http() {
    hostile(|addr, _| async move {
        closed_cleanly(&send_and_drain(addr, b"GET / HTTP/1.1\r\nHost: chat\r\n\r\n").await);
    })
    .await;
}

#[tokio::test]
async fn hostile_garbage() {
    hostile(|addr, _| async move {
        // A fixed pseudo-random run (xorshift), the same on every run.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let junk: Vec<u8> = (0..8192)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        closed_cleanly(&send_and_drain(addr, &junk).await);
        // And a record header announcing far more than a record may hold.
        closed_cleanly(&send_and_drain(addr, &[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3]).await);
    })
    .await;
}

#[tokio::test]
async fn hostile_handshake_that_never_finishes() {
    hostile(|addr, _| async move {
        // Half a ClientHello, then silence: closed at the Hello timeout.
        let hello = client_hello();
        closed_cleanly(&send_and_drain(addr, &hello[..hello.len() / 2]).await);
        // A whole ClientHello and nothing after the server's reply.
        let back = send_and_drain(addr, &hello).await;
        assert_eq!(
            back.first(),
            Some(&0x16),
            "the server's flight, then a close"
        );
        // Not even a ClientHello.
        closed_cleanly(&send_and_drain(addr, b"").await);
    })
    .await;
}

#[tokio::test]
async fn hostile_unrequested_client_certificate() {
    hostile(|addr, ca| async move {
        // A Certificate handshake message where the ClientHello belongs.
        let cert = leaf(&ca, &["client"]);
        let der = cert.der.as_ref();
        let len3 = |n: usize| [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        let mut body = Vec::new();
        body.extend_from_slice(&len3(der.len() + 3));
        body.extend_from_slice(&len3(der.len()));
        body.extend_from_slice(der);
        let mut msg = vec![11];
        msg.extend_from_slice(&len3(body.len()));
        msg.extend_from_slice(&body);
        let mut record = vec![0x16, 0x03, 0x03, (msg.len() >> 8) as u8, msg.len() as u8];
        record.extend_from_slice(&msg);
        closed_cleanly(&send_and_drain(addr, &record).await);
        // A client holding a certificate is never asked for it, and is served as any other.
        let key = <rustls::pki_types::PrivateKeyDer as rustls::pki_types::pem::PemObject>::from_pem_slice(
            cert.key_pem.as_bytes(),
        )
        .unwrap();
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots(&ca))
            .with_client_auth_cert(vec![cert.der.clone()], key)
            .unwrap();
        config.resumption = rustls::client::Resumption::disabled();
        let mut c = TlsClient::open(handshake(addr, config).await).await;
        c.ping().await;
    })
    .await;
}

#[tokio::test]
async fn hostile_slow_handshake_uses_up_the_hello_timeout() {
    hostile(|addr, ca| async move {
        // The Hello timeout (1 s) counts from the TCP accept: a ClientHello sent after 0.6 s
        // and a Hello 0.6 s after the handshake arrive past it. (Were the handshake not counted,
        // the Hello would be in time; a slow machine only makes both later.)
        let tcp = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(600)).await;
        let mut config = client_config(&ca);
        config.alpn_protocols = vec![b"confab/1".to_vec()];
        let Ok(stream) = TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
        else {
            return; // closed before the handshake ended: refused too
        };
        tokio::time::sleep(Duration::from_millis(600)).await;
        let mut framed = Framed::new(stream, EnvelopeCodec::new());
        let hello = Envelope::new(
            1,
            Body::Hello(pb::Hello {
                protocol_major: 1,
                protocol_minor: 0,
                client_name: "slow".into(),
                client_version: "0".into(),
                ..Default::default()
            }),
        );
        let _ = framed.send(hello).await;
        let first = tokio::time::timeout(WAIT, framed.next())
            .await
            .expect("an answer or a close in time");
        match first {
            None | Some(Err(_)) => {}
            Some(Ok(env)) => match env.body {
                Some(Body::Error(e)) => {
                    assert!(e.fatal);
                    assert_eq!(e.code, pb::ErrorCode::Timeout as i32, "{e:?}");
                }
                other => panic!("a Hello past the timeout was answered: {other:?}"),
            },
        }
    })
    .await;
}
