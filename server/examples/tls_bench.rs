//! TLS measurements against a running confab-server (until confab-load speaks TLS):
//!
//! - `handshakes ADDR N CONCURRENCY [resume]`: N full (or, with `resume`, resumed) handshakes,
//!   each on a new TCP connection and followed by a Hello, CONCURRENCY at a time; prints the
//!   rate.
//! - `idle ADDR N PID [plain]`: opens N connections (TLS, or plain with `plain`), each says
//!   Hello and then stays idle; prints the server's RSS growth per connection.
//!
//! The client trusts whatever certificate the server presents (the handshake's signatures are
//! still checked): this measures the server, not trust.
//!
//! `cargo run --release -p confab-server --example tls_bench -- handshakes 127.0.0.1:7443 2000 8`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_wire::pb;
use confab_wire::{Body, Envelope, EnvelopeCodec};
use futures::{SinkExt, StreamExt};
use rustls::ClientConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_util::codec::Framed;

#[derive(Debug)]
struct AnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn config(resume: bool) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut c = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    c.alpn_protocols = vec![b"confab/1".to_vec()];
    if !resume {
        c.resumption = rustls::client::Resumption::disabled();
    }
    Arc::new(c)
}

async fn hello<S: AsyncRead + AsyncWrite + Unpin>(stream: S) -> Framed<S, EnvelopeCodec> {
    let mut framed = Framed::new(stream, EnvelopeCodec::new());
    framed
        .send(Envelope::new(
            1,
            Body::Hello(pb::Hello {
                protocol_major: 1,
                protocol_minor: 0,
                client_name: "tls_bench".into(),
                client_version: "0".into(),
                ..Default::default()
            }),
        ))
        .await
        .unwrap();
    let env = framed.next().await.unwrap().unwrap();
    assert!(matches!(env.body, Some(Body::HelloOk(_))), "{env:?}");
    framed
}

async fn tls(
    addr: SocketAddr,
    connector: &TlsConnector,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

async fn handshakes(addr: SocketAddr, n: usize, concurrency: usize, resume: bool) {
    let connector = TlsConnector::from(config(resume));
    // One first, so a resumed run has a ticket to start from.
    drop(hello(tls(addr, &connector).await).await);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let resumed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (connector, next, resumed) = (connector.clone(), next.clone(), resumed.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n {
                    let s = tls(addr, &connector).await;
                    if s.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
                        resumed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    drop(hello(s).await);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{n} handshakes (+Hello), {concurrency} at a time, resumption {}: {:.2} s, {:.0}/s ({} resumed)",
        if resume { "on" } else { "off" },
        secs,
        n as f64 / secs,
        resumed.load(std::sync::atomic::Ordering::Relaxed)
    );
}

async fn idle(addr: SocketAddr, n: usize, pid: u32, plain: bool) {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let connector = TlsConnector::from(config(false));
    // Warm up the allocator and the server's tables with a first batch, then measure.
    let warm = 200.min(n);
    let mut held_plain = Vec::new();
    let mut held_tls = Vec::new();
    let open = |i: usize| {
        let connector = connector.clone();
        async move {
            let _ = i;
            if plain {
                let tcp = TcpStream::connect(addr).await.unwrap();
                (Some(hello(tcp).await), None)
            } else {
                (None, Some(hello(tls(addr, &connector).await).await))
            }
        }
    };
    for i in 0..warm {
        let (p, t) = open(i).await;
        held_plain.extend(p);
        held_tls.extend(t);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(pid);
    let batch = 64;
    let mut i = warm;
    while i < n {
        let upto = (i + batch).min(n);
        let opened = futures::future::join_all((i..upto).map(open)).await;
        for (p, t) in opened {
            held_plain.extend(p);
            held_tls.extend(t);
        }
        i = upto;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(pid);
    let measured = n - warm;
    println!(
        "{measured} idle {} connections (after {warm} warm-up): server RSS {before} -> {after} KiB, {:.2} KiB per connection",
        if plain { "plain" } else { "TLS" },
        (after.saturating_sub(before)) as f64 / measured as f64
    );
    println!(
        "size_of ServerConnection: {} bytes",
        std::mem::size_of::<rustls::ServerConnection>()
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    let addr: SocketAddr = arg(1).parse().expect("ADDR");
    match arg(0).as_str() {
        "handshakes" => {
            handshakes(
                addr,
                arg(2).parse().expect("N"),
                arg(3).parse().unwrap_or(1),
                arg(4) == "resume",
            )
            .await
        }
        "idle" => {
            idle(
                addr,
                arg(2).parse().expect("N"),
                arg(3).parse().expect("PID"),
                arg(4) == "plain",
            )
            .await
        }
        _ => eprintln!(
            "usage: tls_bench handshakes ADDR N [CONCURRENCY] [resume] | idle ADDR N PID [plain]"
        ),
    }
}
