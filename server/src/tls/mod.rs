//! TLS on the listener: the certificate and key (PEM files named by `--tls-cert`/`--tls-key`, or
//! a self-signed pair kept in the data directory), reloadable while connections stay open, and
//! the acceptor that the connection tasks run their handshakes with.
//!
//! The framing inside TLS is unchanged. TLS 1.3 and 1.2 are offered (rustls's safe suites,
//! `ring` provider); no client certificate is ever requested. ALPN `confab/1` is announced to
//! clients that offer it; a client that offers none is served all the same.

mod certs;
pub mod self_signed;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use sha2::{Digest, Sha256};
use tokio_rustls::TlsAcceptor;

use crate::config::Config;

pub use certs::Resolver;

/// The ALPN protocol name of confab over TLS.
pub const ALPN: &[u8] = b"confab/1";

/// Errors loading or making a certificate and key.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: no PEM certificate in it")]
    NoCertificate { path: PathBuf },
    #[error("{path}: not a PEM certificate chain: {reason}")]
    BadCertificate { path: PathBuf, reason: String },
    #[error("{path}: no usable PEM private key in it: {reason}")]
    BadKey { path: PathBuf, reason: String },
    #[error("the key in {key} does not belong to the certificate in {cert}: {reason}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error(
        "{present} exists but {missing} does not: refusing to make a new pair over a lone file"
    )]
    HalfPair { present: PathBuf, missing: PathBuf },
    #[error("cannot make a self-signed certificate: {0}")]
    Generate(String),
    #[error("cannot set up TLS: {0}")]
    Setup(String),
    #[error(
        "no certificate: give --tls-cert, or the --data-dir of a server started with \
         --tls-self-signed (add --tls-self-signed to make the pair now)"
    )]
    NotConfigured,
}

/// Where the certificate and key come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPair {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Made on first start into the data directory (and reused afterwards).
    pub self_signed: bool,
}

impl KeyPair {
    /// The pair the configuration names, if TLS is on.
    pub fn from_config(cfg: &Config) -> Option<KeyPair> {
        if cfg.tls_self_signed {
            return Some(self_signed::pair_in(&cfg.data_dir));
        }
        match (&cfg.tls_cert, &cfg.tls_key) {
            (Some(cert), Some(key)) => Some(KeyPair {
                cert: cert.clone(),
                key: key.clone(),
                self_signed: false,
            }),
            _ => None,
        }
    }
}

/// The listener's TLS: the acceptor for new connections, and the certificate it serves, which
/// [`Tls::reload`] replaces.
pub struct Tls {
    pair: KeyPair,
    provider: Arc<CryptoProvider>,
    resolver: Arc<Resolver>,
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("pair", &self.pair).finish()
    }
}

impl Tls {
    /// Loads the pair (making a self-signed one first if asked and none exists yet).
    pub fn open(pair: KeyPair) -> Result<Tls, TlsError> {
        if pair.self_signed {
            self_signed::ensure(&pair)?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = certs::load(&pair, &provider)?;
        let resolver = Arc::new(Resolver::new(key));
        let mut config = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        config.alpn_protocols = vec![ALPN.to_vec()];
        Ok(Tls {
            pair,
            provider,
            resolver,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// The acceptor the connection tasks handshake with.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    /// The fingerprint of the certificate served now.
    pub fn fingerprint(&self) -> String {
        self.resolver.fingerprint()
    }

    /// Reads the pair's files again and serves them to new connections; open connections keep
    /// the keys they agreed on. On an error the old pair stays in use. Returns the new
    /// certificate's fingerprint.
    pub fn reload(&self) -> Result<String, TlsError> {
        let key = certs::load(&self.pair, &self.provider)?;
        self.resolver.replace(key);
        Ok(self.resolver.fingerprint())
    }
}

/// The fingerprint of a DER certificate as clients show and pin it: `SHA256:` and the unpadded
/// standard base64 of the SHA-256 of the DER bytes (OpenSSH's style).
pub fn fingerprint(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    )
}

/// The fingerprint of the first certificate in a PEM file (`confab-server fingerprint`).
pub fn fingerprint_of_file(path: &Path) -> Result<String, TlsError> {
    let chain = certs::read_chain(path)?;
    chain
        .first()
        .map(|c| fingerprint(c.as_ref()))
        .ok_or_else(|| TlsError::NoCertificate {
            path: path.to_path_buf(),
        })
}

/// The fingerprint of the certificate a server with `cfg` presents (`confab-server
/// fingerprint`): `--tls-cert`'s, or the self-signed one in the data directory, made first when
/// `--tls-self-signed` is on and there is none yet.
pub fn configured_fingerprint(cfg: &Config) -> Result<String, TlsError> {
    let pair = match KeyPair::from_config(cfg) {
        Some(pair) => pair,
        None => {
            let pair = self_signed::pair_in(&cfg.data_dir);
            if !pair.cert.exists() {
                return Err(TlsError::NotConfigured);
            }
            pair
        }
    };
    if pair.self_signed {
        self_signed::ensure(&pair)?;
    }
    fingerprint_of_file(&pair.cert)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_format() {
        // SHA-256 of the empty string, as OpenSSH would print it.
        assert_eq!(
            fingerprint(b""),
            "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"
        );
    }
}
