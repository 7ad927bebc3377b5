//! Reading a PEM certificate chain and key into a rustls `CertifiedKey`, and the resolver that
//! serves the current one: a reload swaps it atomically, so handshakes already running and
//! connections already open are untouched.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::{KeyPair, TlsError, fingerprint};

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Every certificate in a PEM file, leaf first.
pub(super) fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadCertificate {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(chain)
}

/// A certificate with its fingerprint, as served.
pub(super) struct Loaded {
    key: Arc<CertifiedKey>,
    fingerprint: String,
}

/// Reads the pair and checks that the key belongs to the leaf certificate.
pub(super) fn load(pair: &KeyPair, provider: &CryptoProvider) -> Result<Loaded, TlsError> {
    let chain = read_chain(&pair.cert)?;
    let key_pem = read(&pair.key)?;
    let bad_key = |reason: String| TlsError::BadKey {
        path: pair.key.clone(),
        reason,
    };
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| bad_key(e.to_string()))?;
    let fingerprint = chain
        .first()
        .map(|c| fingerprint(c.as_ref()))
        .unwrap_or_default();
    let key = CertifiedKey::from_der(chain, key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => TlsError::Mismatch {
            cert: pair.cert.clone(),
            key: pair.key.clone(),
            reason: e.to_string(),
        },
        other => bad_key(other.to_string()),
    })?;
    Ok(Loaded {
        key: Arc::new(key),
        fingerprint,
    })
}

/// Serves the current certificate to every handshake, whatever name the client asked for.
pub struct Resolver {
    current: ArcSwap<Loaded>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

impl Resolver {
    pub(super) fn new(first: Loaded) -> Resolver {
        Resolver {
            current: ArcSwap::from_pointee(first),
        }
    }

    pub(super) fn replace(&self, next: Loaded) {
        self.current.store(Arc::new(next));
    }

    /// The fingerprint of the certificate served now.
    pub fn fingerprint(&self) -> String {
        self.current.load().fingerprint.clone()
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load().key.clone())
    }
}
