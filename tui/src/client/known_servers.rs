//! Trust on first use, like OpenSSH's known_hosts: the certificate fingerprints of servers the
//! user accepted, in `$XDG_DATA_HOME/confab/known_servers` (or `$CONFAB_DATA_DIR`), one
//! `host:port SHA256:...` per line. Lines starting with `#` and blank lines are kept as they are.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine;
use sha2::{Digest, Sha256};

/// The name of the file in the data directory.
pub const FILE_NAME: &str = "known_servers";

/// The default file: `known_servers` in the client's data directory.
pub fn default_path() -> PathBuf {
    super::paths::data_dir().join(FILE_NAME)
}

/// A certificate's SHA-256 fingerprint, written `SHA256:` and 43 characters of unpadded
/// standard base64 (as `confab-server` logs it and OpenSSH prints key fingerprints).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

/// A fingerprint that is not `SHA256:` and the base64 of 32 bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a certificate fingerprint (expected SHA256: and 43 base64 characters): {0:?}")]
pub struct FingerprintError(pub String);

impl Fingerprint {
    /// The fingerprint of a DER certificate.
    pub fn of(der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(der).into())
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b64 = base64::engine::general_purpose::STANDARD_NO_PAD.encode(self.0);
        write!(f, "SHA256:{b64}")
    }
}

impl FromStr for Fingerprint {
    type Err = FingerprintError;

    fn from_str(s: &str) -> Result<Fingerprint, FingerprintError> {
        let bad = || FingerprintError(s.to_owned());
        let b64 = s.trim().strip_prefix("SHA256:").ok_or_else(bad)?;
        // Padding is optional: some tools print it.
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(b64.trim_end_matches('='))
            .map_err(|_| bad())?;
        <[u8; 32]>::try_from(bytes)
            .map(Fingerprint)
            .map_err(|_| bad())
    }
}

/// Errors reading or writing the file.
#[derive(Debug, thiserror::Error)]
pub enum KnownServersError {
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
    #[error("{path} line {line}: expected `host:port SHA256:...`")]
    BadLine { path: PathBuf, line: usize },
}

enum Line {
    Entry(String, Fingerprint),
    /// A comment or a blank line, kept verbatim.
    Other(String),
}

/// The recorded fingerprints.
pub struct KnownServers {
    path: PathBuf,
    lines: Vec<Line>,
}

impl KnownServers {
    /// Reads `path`; a missing file is an empty list.
    pub fn load(path: &Path) -> Result<KnownServers, KnownServersError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(KnownServersError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let mut lines = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let t = raw.trim();
            if t.is_empty() || t.starts_with('#') {
                lines.push(Line::Other(raw.to_owned()));
                continue;
            }
            let bad = || KnownServersError::BadLine {
                path: path.to_path_buf(),
                line: i + 1,
            };
            let mut parts = t.split_whitespace();
            let (Some(server), Some(fp), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(bad());
            };
            let fp = fp.parse().map_err(|_| bad())?;
            lines.push(Line::Entry(server.to_owned(), fp));
        }
        Ok(KnownServers {
            path: path.to_path_buf(),
            lines,
        })
    }

    /// The fingerprint recorded for `server` (`host:port`, as `tls::ServerAddr::authority`
    /// writes it).
    pub fn lookup(&self, server: &str) -> Option<Fingerprint> {
        self.lines.iter().find_map(|l| match l {
            Line::Entry(s, fp) if s == server => Some(*fp),
            _ => None,
        })
    }

    /// Records `fp` for `server`, replacing what was recorded for it, and rewrites the file
    /// atomically (a temporary file renamed over it).
    pub fn record(&mut self, server: &str, fp: Fingerprint) -> Result<(), KnownServersError> {
        let mut found = false;
        self.lines.retain_mut(|l| match l {
            Line::Entry(s, old) if s == server => {
                // The first stays, updated; any duplicate goes.
                let keep = !found;
                *old = fp;
                found = true;
                keep
            }
            _ => true,
        });
        if !found {
            self.lines.push(Line::Entry(server.to_owned(), fp));
        }
        self.save()
    }

    fn save(&self) -> Result<(), KnownServersError> {
        let err = |source| KnownServersError::Write {
            path: self.path.clone(),
            source,
        };
        let mut text = String::new();
        for l in &self.lines {
            match l {
                Line::Entry(s, fp) => text.push_str(&format!("{s} {fp}\n")),
                Line::Other(raw) => {
                    text.push_str(raw);
                    text.push('\n');
                }
            }
        }
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let tmp = PathBuf::from(format!("{}.tmp{}", self.path.display(), std::process::id()));
        let mut f = std::fs::File::create(&tmp).map_err(err)?;
        f.write_all(text.as_bytes()).map_err(err)?;
        f.sync_all().map_err(err)?;
        std::fs::rename(&tmp, &self.path).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(n: u8) -> Fingerprint {
        Fingerprint::of(&[n])
    }

    #[test]
    fn fingerprint_text_round_trips() {
        let f = Fingerprint::of(b"");
        assert_eq!(
            f.to_string(),
            "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"
        );
        assert_eq!(f.to_string().parse::<Fingerprint>(), Ok(f));
        assert_eq!(
            "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=".parse::<Fingerprint>(),
            Ok(f)
        );
        for bad in [
            "",
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU",
            "SHA256:47DEQpj8HBSa",
            "SHA1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU",
            "SHA256:!!!!pj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU",
        ] {
            assert!(bad.parse::<Fingerprint>().is_err(), "{bad}");
        }
    }

    #[test]
    fn record_look_up_replace_and_keep_comments() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join(FILE_NAME);
        let mut known = KnownServers::load(&path).unwrap();
        assert_eq!(known.lookup("chat.example:7000"), None);
        known.record("chat.example:7000", fp(1)).unwrap();
        known.record("[::1]:7443", fp(2)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            format!("chat.example:7000 {}\n[::1]:7443 {}\n", fp(1), fp(2))
        );
        // A comment the user added survives a rewrite; a replaced entry keeps its place.
        std::fs::write(&path, format!("# mine\n{text}")).unwrap();
        let mut known = KnownServers::load(&path).unwrap();
        assert_eq!(known.lookup("chat.example:7000"), Some(fp(1)));
        assert_eq!(known.lookup("[::1]:7443"), Some(fp(2)));
        assert_eq!(known.lookup("chat.example:7001"), None);
        known.record("chat.example:7000", fp(3)).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!(
                "# mine\nchat.example:7000 {}\n[::1]:7443 {}\n",
                fp(3),
                fp(2)
            )
        );
        assert_eq!(
            KnownServers::load(&path)
                .unwrap()
                .lookup("chat.example:7000"),
            Some(fp(3))
        );
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(FILE_NAME)]);
    }

    #[test]
    fn a_bad_line_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, format!("a:1 {}\nb:2 SHA256:nope\n", fp(1))).unwrap();
        assert!(matches!(
            KnownServers::load(&path),
            Err(KnownServersError::BadLine { line: 2, .. })
        ));
        std::fs::write(&path, format!("a:1 {} extra\n", fp(1))).unwrap();
        assert!(matches!(
            KnownServers::load(&path),
            Err(KnownServersError::BadLine { line: 1, .. })
        ));
    }
}
