//! Opening the connection to a server: plain TCP for `host:port`, TLS for `tls://host:port`.
//!
//! TLS trusts the system's roots (rustls-native-certs) and any `--ca-file` anchors. A server
//! whose certificate no trusted root signs (a `confab-server --tls-self-signed`) is trusted on
//! first use, as OpenSSH does hosts: its leaf's SHA-256 fingerprint must match the one in
//! [`known_servers`](super::known_servers) or the one given up front (`--trust-fingerprint`).
//! An unknown one fails with [`ConnectError::UnknownServer`] carrying the fingerprint, so the
//! caller can ask the user and record it; a different one fails with
//! [`ConnectError::FingerprintChanged`] naming both, and is never accepted silently. A pinned
//! server is held to its pin even when a root would vouch for another certificate.
//!
//! Whatever decides trust, the handshake's signatures are checked by the provider, and nothing
//! (no password, no resume token) is sent before [`Connector::connect`] returns.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientSessionMemoryCache, Resumption, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use std::net::{IpAddr, SocketAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::known_servers::{Fingerprint, KnownServers, KnownServersError};

/// The ALPN protocol name of confab over TLS.
pub const ALPN: &[u8] = b"confab/1";

/// TLS sessions kept for resumption (a reconnect then skips the full handshake).
const SESSIONS: usize = 32;

/// A server address: `tls://host:port` (TLS) or `host:port` (plain). IPv6 hosts go in
/// brackets: `tls://[::1]:7000`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAddr {
    /// The host name or IP address (lowercase, without brackets).
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

/// Why an address does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    #[error("no server address given")]
    Empty,
    #[error("unknown scheme in {0:?}: use tls://host:port, or host:port for plain text")]
    UnknownScheme(String),
    #[error("no port in {0:?}: use host:port")]
    MissingPort(String),
    #[error("bad port in {0:?}")]
    BadPort(String),
    #[error("bad host in {0:?} (an IPv6 address goes in brackets: [::1]:7000)")]
    BadHost(String),
}

impl FromStr for ServerAddr {
    type Err = AddrError;

    fn from_str(s: &str) -> Result<ServerAddr, AddrError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(AddrError::Empty);
        }
        let (tls, rest) = match s.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("tls") => (true, rest),
            Some(_) => return Err(AddrError::UnknownScheme(s.to_owned())),
            None => (false, s),
        };
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (host, after) = inner
                .split_once(']')
                .ok_or_else(|| AddrError::BadHost(s.to_owned()))?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(AddrError::BadHost(s.to_owned()));
            }
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| AddrError::MissingPort(s.to_owned()))?;
            (host, port)
        } else {
            let (host, port) = rest
                .rsplit_once(':')
                .ok_or_else(|| AddrError::MissingPort(s.to_owned()))?;
            let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
            if host.is_empty() || !host.chars().all(valid) {
                return Err(AddrError::BadHost(s.to_owned()));
            }
            (host, port)
        };
        let port = match port.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return Err(AddrError::BadPort(s.to_owned())),
        };
        Ok(ServerAddr {
            host: host.to_ascii_lowercase(),
            port,
            tls,
        })
    }
}

impl ServerAddr {
    /// `host:port` (`[v6]:port`): how the server is named in known_servers and messages.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.tls {
            write!(f, "tls://{}", self.authority())
        } else {
            f.write_str(&self.authority())
        }
    }
}

/// What a TLS connection trusts.
#[derive(Debug, Clone)]
pub struct TrustOptions {
    /// PEM files of extra trust anchors (`--ca-file`).
    pub ca_files: Vec<PathBuf>,
    /// Trust the system's roots too.
    pub system_roots: bool,
    /// Accept exactly this leaf certificate (`--trust-fingerprint`), whatever signed it.
    pub trust_fingerprint: Option<Fingerprint>,
    /// The known_servers file; `None` pins nothing on disk.
    pub known_servers: Option<PathBuf>,
}

impl Default for TrustOptions {
    fn default() -> TrustOptions {
        TrustOptions {
            ca_files: Vec::new(),
            system_roots: true,
            trust_fingerprint: None,
            known_servers: Some(super::known_servers::default_path()),
        }
    }
}

/// A refusal of a certificate that a trusted root signed, or that is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertProblem {
    #[error("it has expired")]
    Expired,
    #[error("it is not valid yet")]
    NotYetValid,
    #[error("it is not issued for this server's name")]
    NameMismatch,
    #[error("it has been revoked")]
    Revoked,
    #[error("{0}")]
    Other(String),
}

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot use CA file {path}: {reason}")]
    CaFile { path: PathBuf, reason: String },
    #[error("cannot reach {server}: {source}")]
    Connect { server: String, source: io::Error },
    #[error(
        "{server} presented a certificate that no trusted authority signed, with fingerprint \
         {fingerprint}; compare it with the one the server's operator sees \
         (`confab-server fingerprint`) before trusting it"
    )]
    UnknownServer {
        server: String,
        fingerprint: Fingerprint,
    },
    #[error(
        "THE CERTIFICATE OF {server} HAS CHANGED: recorded {known}, presented now {presented}. \
         Someone may be intercepting the connection. If the operator replaced the certificate, \
         remove the line for {server} from {path} and connect again"
    )]
    FingerprintChanged {
        server: String,
        known: Fingerprint,
        presented: Fingerprint,
        path: PathBuf,
    },
    #[error("{server} presented {presented}, not the fingerprint {expected} given to trust")]
    FingerprintMismatch {
        server: String,
        expected: Fingerprint,
        presented: Fingerprint,
    },
    #[error("the certificate of {server} is refused: {problem}")]
    Certificate {
        server: String,
        problem: CertProblem,
    },
    #[error("TLS handshake with {server} failed: {reason}")]
    Handshake { server: String, reason: String },
    #[error(transparent)]
    KnownServers(#[from] KnownServersError),
}

impl ConnectError {
    /// The server's identity could not be trusted (the CLI's exit code 3); retrying without
    /// the user's say will not help.
    pub fn is_trust_failure(&self) -> bool {
        matches!(
            self,
            ConnectError::UnknownServer { .. }
                | ConnectError::FingerprintChanged { .. }
                | ConnectError::FingerprintMismatch { .. }
                | ConnectError::Certificate { .. }
        )
    }
}

/// The verdict of the pin check, carried through rustls's error to [`classify`].
#[derive(Debug, Clone, thiserror::Error)]
enum Untrusted {
    #[error("unknown certificate {0}")]
    Unknown(Fingerprint),
    #[error("certificate changed: recorded {known}, presented {presented}")]
    Changed {
        known: Fingerprint,
        presented: Fingerprint,
    },
    #[error("certificate {presented} is not the trusted {expected}")]
    Mismatch {
        expected: Fingerprint,
        presented: Fingerprint,
    },
}

/// The leaf's fingerprint that this connection is held to, if any.
#[derive(Debug, Clone, Copy)]
enum Pinned {
    Given(Fingerprint),
    Known(Fingerprint),
}

#[derive(Debug)]
struct Verifier {
    roots: Option<Arc<WebPkiServerVerifier>>,
    pin: Option<Pinned>,
    provider: Arc<CryptoProvider>,
}

fn untrusted(u: Untrusted) -> rustls::Error {
    rustls::Error::Other(rustls::OtherError(Arc::new(u)))
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = Fingerprint::of(end_entity.as_ref());
        match self.pin {
            Some(Pinned::Given(expected)) if expected != presented => {
                return Err(untrusted(Untrusted::Mismatch {
                    expected,
                    presented,
                }));
            }
            Some(Pinned::Known(known)) if known != presented => {
                return Err(untrusted(Untrusted::Changed { known, presented }));
            }
            // The very certificate the user accepted: its names and dates were accepted too.
            Some(_) => return Ok(ServerCertVerified::assertion()),
            None => {}
        }
        let Some(roots) = &self.roots else {
            return Err(untrusted(Untrusted::Unknown(presented)));
        };
        match roots.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Ok(v) => Ok(v),
            // No trusted root signed it (a self-signed certificate, or another CA's): the
            // user may trust it on first use. A trusted chain with a fault is refused.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer | CertificateError::Other(_),
            )) => Err(untrusted(Untrusted::Unknown(presented))),
            Err(e) => Err(e),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Opens connections; made once (the roots are read once, and TLS sessions are kept for
/// resumption across reconnects).
pub struct Connector {
    provider: Arc<CryptoProvider>,
    roots: Option<Arc<WebPkiServerVerifier>>,
    trust_fingerprint: Option<Fingerprint>,
    known_servers: Option<PathBuf>,
    sessions: Arc<ClientSessionMemoryCache>,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("roots", &self.roots.is_some())
            .field("trust_fingerprint", &self.trust_fingerprint)
            .field("known_servers", &self.known_servers)
            .finish()
    }
}

fn read_anchors(path: &Path, store: &mut RootCertStore) -> Result<(), ConnectError> {
    let bad = |reason: String| ConnectError::CaFile {
        path: path.to_path_buf(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let mut added = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| bad(e.to_string()))?;
        store.add(cert).map_err(|e| bad(e.to_string()))?;
        added += 1;
    }
    if added == 0 {
        return Err(bad("no PEM certificate in it".into()));
    }
    Ok(())
}

impl Connector {
    /// Reads the trust anchors.
    pub fn new(opts: TrustOptions) -> Result<Connector, ConnectError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut store = RootCertStore::empty();
        if opts.system_roots {
            // Unreadable system certificates are skipped, as every TLS client does.
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
        }
        for path in &opts.ca_files {
            read_anchors(path, &mut store)?;
        }
        let roots = if store.is_empty() {
            None
        } else {
            WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
                .build()
                .ok()
        };
        Ok(Connector {
            provider,
            roots,
            trust_fingerprint: opts.trust_fingerprint,
            known_servers: opts.known_servers,
            sessions: Arc::new(ClientSessionMemoryCache::new(SESSIONS)),
        })
    }

    /// The known_servers file, if any.
    pub fn known_servers_path(&self) -> Option<&Path> {
        self.known_servers.as_deref()
    }

    /// Connects to `addr` and, for TLS, completes and verifies the handshake. Wrap it in a
    /// timeout: it has none of its own.
    pub async fn connect(&self, addr: &ServerAddr) -> Result<ClientStream, ConnectError> {
        open(addr, None, Some(self)).await
    }

    /// Completes a connection opened by the caller (who may bind a source address): for
    /// `tls://`, the handshake and its verification; plain TCP is passed through.
    pub async fn secure(
        &self,
        tcp: TcpStream,
        addr: &ServerAddr,
    ) -> Result<ClientStream, ConnectError> {
        let server = addr.authority();
        if !addr.tls {
            return Ok(ClientStream::Plain(tcp));
        }
        let pin = match (self.trust_fingerprint, &self.known_servers) {
            (Some(fp), _) => Some(Pinned::Given(fp)),
            (None, Some(path)) => KnownServers::load(path)?.lookup(&server).map(Pinned::Known),
            (None, None) => None,
        };
        let config = self.config(pin)?;
        let name =
            ServerName::try_from(addr.host.clone()).map_err(|e| ConnectError::Handshake {
                server: server.clone(),
                reason: e.to_string(),
            })?;
        match TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
        {
            Ok(tls) => Ok(ClientStream::Tls(Box::new(tls))),
            Err(e) => Err(self.classify(server, e)),
        }
    }

    fn config(&self, pin: Option<Pinned>) -> Result<ClientConfig, ConnectError> {
        let verifier = Verifier {
            roots: self.roots.clone(),
            pin,
            provider: self.provider.clone(),
        };
        let mut config = ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| ConnectError::Handshake {
                server: String::new(),
                reason: e.to_string(),
            })?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        config.alpn_protocols = vec![ALPN.to_vec()];
        config.resumption = Resumption::store(self.sessions.clone());
        Ok(config)
    }

    /// Turns a failed handshake into the error that says why.
    fn classify(&self, server: String, e: io::Error) -> ConnectError {
        let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
            return ConnectError::Handshake {
                server,
                reason: e.to_string(),
            };
        };
        match tls {
            rustls::Error::Other(other) => match other.0.downcast_ref::<Untrusted>() {
                Some(Untrusted::Unknown(fingerprint)) => ConnectError::UnknownServer {
                    server,
                    fingerprint: *fingerprint,
                },
                Some(Untrusted::Changed { known, presented }) => ConnectError::FingerprintChanged {
                    server,
                    known: *known,
                    presented: *presented,
                    path: self.known_servers.clone().unwrap_or_default(),
                },
                Some(Untrusted::Mismatch {
                    expected,
                    presented,
                }) => ConnectError::FingerprintMismatch {
                    server,
                    expected: *expected,
                    presented: *presented,
                },
                None => ConnectError::Handshake {
                    server,
                    reason: tls.to_string(),
                },
            },
            rustls::Error::InvalidCertificate(c) => ConnectError::Certificate {
                server,
                problem: cert_problem(c),
            },
            other => ConnectError::Handshake {
                server,
                reason: other.to_string(),
            },
        }
    }
}

fn cert_problem(e: &CertificateError) -> CertProblem {
    match e {
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => CertProblem::Expired,
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            CertProblem::NotYetValid
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            CertProblem::NameMismatch
        }
        CertificateError::Revoked => CertProblem::Revoked,
        other => CertProblem::Other(other.to_string()),
    }
}

/// Opens a connection to `addr`: resolves it, connects over TCP (from the source address
/// `bind`, if given: load tests spread over several 127.0.0.x) and, for `tls://`, completes the
/// verified handshake through `connector`. Nothing is sent before it returns. The one place
/// every client (the engine, the CLI's `trust`, confab-load's raw scenarios) opens a stream.
/// Wrap it in a timeout: it has none of its own.
pub async fn open(
    addr: &ServerAddr,
    bind: Option<IpAddr>,
    connector: Option<&Connector>,
) -> Result<ClientStream, ConnectError> {
    let unreachable = |source: io::Error| ConnectError::Connect {
        server: addr.authority(),
        source,
    };
    let target = tokio::net::lookup_host((addr.host.as_str(), addr.port))
        .await
        .map_err(unreachable)?
        .next()
        .ok_or_else(|| unreachable(io::Error::new(io::ErrorKind::NotFound, "no address")))?;
    let tcp = match bind {
        Some(ip) => {
            let sock = if ip.is_ipv4() {
                TcpSocket::new_v4()
            } else {
                TcpSocket::new_v6()
            }
            .map_err(unreachable)?;
            sock.bind(SocketAddr::new(ip, 0)).map_err(unreachable)?;
            sock.connect(target).await
        }
        None => TcpStream::connect(target).await,
    }
    .map_err(unreachable)?;
    let _ = tcp.set_nodelay(true);
    match connector {
        Some(c) => c.secure(tcp, addr).await,
        None if addr.tls => Err(ConnectError::Handshake {
            server: addr.authority(),
            reason: "no TLS connector".into(),
        }),
        None => Ok(ClientStream::Plain(tcp)),
    }
}

/// A connection to a server, plain or TLS: the engine frames either the same way.
#[derive(Debug)]
pub enum ClientStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl ClientStream {
    /// Whether the connection is encrypted (the login screen says so).
    pub fn is_encrypted(&self) -> bool {
        matches!(self, ClientStream::Tls(_))
    }

    /// The fingerprint of the server's certificate, for TLS.
    pub fn peer_fingerprint(&self) -> Option<Fingerprint> {
        match self {
            ClientStream::Plain(_) => None,
            ClientStream::Tls(s) => s
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| Fingerprint::of(c.as_ref())),
        }
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Result<ServerAddr, AddrError> {
        s.parse()
    }

    #[test]
    fn addresses() {
        let a = addr("tls://Chat.Example:7443").unwrap();
        assert_eq!(
            a,
            ServerAddr {
                host: "chat.example".into(),
                port: 7443,
                tls: true
            }
        );
        assert_eq!(a.authority(), "chat.example:7443");
        assert_eq!(a.to_string(), "tls://chat.example:7443");
        let p = addr("127.0.0.1:7000").unwrap();
        assert!(!p.tls);
        assert_eq!(p.to_string(), "127.0.0.1:7000");
        let v6 = addr("TLS://[::1]:7000").unwrap();
        assert_eq!((v6.host.as_str(), v6.port, v6.tls), ("::1", 7000, true));
        assert_eq!(v6.authority(), "[::1]:7000");
        assert_eq!(addr(""), Err(AddrError::Empty));
        assert!(matches!(
            addr("http://x:80"),
            Err(AddrError::UnknownScheme(_))
        ));
        assert!(matches!(addr("tls://x"), Err(AddrError::MissingPort(_))));
        assert!(matches!(addr("[::1]"), Err(AddrError::MissingPort(_))));
        assert!(matches!(addr("x:0"), Err(AddrError::BadPort(_))));
        assert!(matches!(addr("x:70000"), Err(AddrError::BadPort(_))));
        assert!(matches!(addr("x:port"), Err(AddrError::BadPort(_))));
        assert!(matches!(addr("::1:7000"), Err(AddrError::BadHost(_))));
        assert!(matches!(addr("[x]:7000"), Err(AddrError::BadHost(_))));
        assert!(matches!(addr(":7000"), Err(AddrError::BadHost(_))));
        assert!(matches!(addr("a b:7000"), Err(AddrError::BadHost(_))));
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not pem\n").unwrap();
        let opts = TrustOptions {
            ca_files: vec![path.clone()],
            system_roots: false,
            trust_fingerprint: None,
            known_servers: None,
        };
        assert!(matches!(
            Connector::new(opts.clone()),
            Err(ConnectError::CaFile { .. })
        ));
        let missing = TrustOptions {
            ca_files: vec![dir.path().join("none.pem")],
            ..opts
        };
        assert!(matches!(
            Connector::new(missing),
            Err(ConnectError::CaFile { .. })
        ));
    }

    #[test]
    fn trust_failures_are_told_apart() {
        let fp = Fingerprint::of(b"x");
        let unknown = ConnectError::UnknownServer {
            server: "a:1".into(),
            fingerprint: fp,
        };
        assert!(unknown.is_trust_failure());
        assert!(unknown.to_string().contains(&fp.to_string()));
        let changed = ConnectError::FingerprintChanged {
            server: "a:1".into(),
            known: fp,
            presented: Fingerprint::of(b"y"),
            path: "/k".into(),
        };
        let text = changed.to_string();
        assert!(
            text.contains(&fp.to_string()) && text.contains(&Fingerprint::of(b"y").to_string())
        );
        let io = ConnectError::Connect {
            server: "a:1".into(),
            source: io::ErrorKind::ConnectionRefused.into(),
        };
        assert!(!io.is_trust_failure());
    }
}
