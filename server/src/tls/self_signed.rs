//! `--tls-self-signed`: a key and a self-signed certificate made with rcgen on first start, kept
//! in the data directory (the key readable by its owner only) and reused on every later start,
//! so its fingerprint, which clients pin, stays the same.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{KeyPair, TlsError};

/// The certificate file in a data directory.
pub const CERT_FILE: &str = "tls-cert.pem";
/// The key file in a data directory.
pub const KEY_FILE: &str = "tls-key.pem";

/// The self-signed pair's paths in `data_dir`.
pub fn pair_in(data_dir: &Path) -> KeyPair {
    KeyPair {
        cert: data_dir.join(CERT_FILE),
        key: data_dir.join(KEY_FILE),
        self_signed: true,
    }
}

/// Makes the pair unless both files exist. Returns whether it made one.
pub fn ensure(pair: &KeyPair) -> Result<bool, TlsError> {
    match (pair.cert.exists(), pair.key.exists()) {
        (true, true) => return Ok(false),
        (true, false) => {
            return Err(TlsError::HalfPair {
                present: pair.cert.clone(),
                missing: pair.key.clone(),
            });
        }
        (false, true) => {
            return Err(TlsError::HalfPair {
                present: pair.key.clone(),
                missing: pair.cert.clone(),
            });
        }
        (false, false) => {}
    }
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "confab-server (self-signed)");
    let key = rcgen::KeyPair::generate().map_err(|e| TlsError::Generate(e.to_string()))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    if let Some(dir) = pair.key.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The data directory: only the server's user may read it.
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
            .create(dir)
            .map_err(|source| TlsError::Write {
                path: dir.to_path_buf(),
                source,
            })?;
    }
    // The key lands first: a start that finds a certificate always finds its key too.
    write_file(&pair.key, key.serialize_pem().as_bytes(), 0o600)?;
    write_file(&pair.cert, cert.pem().as_bytes(), 0o644)?;
    Ok(true)
}

/// Writes `bytes` to a temporary file made with `mode` and renames it over `path`.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    let err = |source| TlsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(&tmp).map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_then_reused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let pair = pair_in(dir.path());
        assert!(ensure(&pair).unwrap_or_else(|e| panic!("{e}")));
        let first = super::super::fingerprint_of_file(&pair.cert).unwrap_or_else(|e| panic!("{e}"));
        assert!(!ensure(&pair).unwrap_or_else(|e| panic!("{e}")));
        let again = super::super::fingerprint_of_file(&pair.cert).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first, again);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&pair.key)
                .unwrap_or_else(|e| panic!("{e}"))
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_file(&pair.cert).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(ensure(&pair), Err(TlsError::HalfPair { .. })));
    }
}
