//! Where the client keeps things: the session (resume token, 0600) and the cache, per server and
//! account, under the XDG data directory; the config under the XDG config directory.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A stored device session.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredSession {
    pub server: String,
    pub name: String,
    pub user_id: u64,
    pub device_id: u64,
    pub token: String,
}

/// The data directory (`$XDG_DATA_HOME/confab`, or `CONFAB_DATA_DIR`).
pub fn data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CONFAB_DATA_DIR") {
        return PathBuf::from(d);
    }
    directories::ProjectDirs::from("", "", "confab")
        .map_or_else(|| PathBuf::from(".confab"), |p| p.data_dir().to_path_buf())
}

/// The server this machine last signed in to (the terminal client or `confab login`), used
/// when none is given.
pub fn last_server(base: &Path) -> Option<String> {
    std::fs::read_to_string(base.join("last_server"))
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// Records `server` as the one [`last_server`] returns.
pub fn remember_server(base: &Path, server: &str) {
    let _ = std::fs::create_dir_all(base);
    let _ = std::fs::write(base.join("last_server"), server);
}

/// The config directory (`$XDG_CONFIG_HOME/confab`, or `CONFAB_CONFIG_DIR`).
pub fn config_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CONFAB_CONFIG_DIR") {
        return PathBuf::from(d);
    }
    directories::ProjectDirs::from("", "", "confab").map_or_else(
        || PathBuf::from(".confab"),
        |p| p.config_dir().to_path_buf(),
    )
}

/// A server's directory name, as the data directory spells it (logs use the same).
pub fn server_dir_name(server: &str) -> String {
    safe(server)
}

fn safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Directory for one server and account.
pub fn account_dir(base: &Path, server: &str, name: &str) -> PathBuf {
    base.join(safe(server)).join(safe(&name.to_lowercase()))
}

/// The file naming the last account used on a server.
fn current_file(base: &Path, server: &str) -> PathBuf {
    base.join(safe(server)).join("current")
}

/// Saves a session (0600) and marks it the server's current account: a password login, which
/// replaces whatever session of the account the file held.
pub fn save_session(base: &Path, s: &StoredSession) -> std::io::Result<PathBuf> {
    let dir = account_dir(base, &s.server, &s.name);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("session.json");
    let json = serde_json::to_vec_pretty(s).map_err(std::io::Error::other)?;
    with_lock(&dir, || {
        write_private(&path, &json)?;
        write_private(&current_file(base, &s.server), s.name.as_bytes())
    })?;
    Ok(path)
}

/// The current session for a server, if any.
pub fn load_session(base: &Path, server: &str) -> Option<StoredSession> {
    let name = std::fs::read_to_string(current_file(base, server)).ok()?;
    read_session(&account_dir(base, server, name.trim()).join("session.json"))
}

fn read_session(path: &Path) -> Option<StoredSession> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Forgets the current session of a server.
pub fn clear_session(base: &Path, server: &str) {
    if let Some(s) = load_session(base, server) {
        let dir = account_dir(base, server, &s.name);
        let _ = with_lock(&dir, || std::fs::remove_file(dir.join("session.json")));
    }
    let _ = std::fs::remove_file(current_file(base, server));
}

/// The session file of one (server, account) on this machine: the one source of truth that
/// every process of the account (terminal client, `confab watch`, `confab send`, ...) reads
/// before it resumes and replaces after each rotation, so none of them keeps a token that
/// another one has already used (a used token dies after the server's grace period).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionFile {
    /// The data directory ([`data_dir`]).
    pub base: PathBuf,
    pub server: String,
    /// The account's name (as typed; the directory is case-insensitive).
    pub name: String,
}

impl SessionFile {
    pub fn new(
        base: impl Into<PathBuf>,
        server: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        Self {
            base: base.into(),
            server: server.into(),
            name: name.into(),
        }
    }

    fn dir(&self) -> PathBuf {
        account_dir(&self.base, &self.server, &self.name)
    }

    /// The stored session of this account (current or not), if any.
    pub fn read(&self) -> Option<StoredSession> {
        read_session(&self.dir().join("session.json"))
    }

    /// Stores the token a resume handed out, only if the file still holds a session of the
    /// same user and device: a file removed by a logout stays removed, and a newer password
    /// login (another device) is not overwritten by this older device's rotation. Returns
    /// whether it wrote.
    pub fn store_rotated(&self, s: &StoredSession) -> std::io::Result<bool> {
        let dir = self.dir();
        let path = dir.join("session.json");
        let json = serde_json::to_vec_pretty(s).map_err(std::io::Error::other)?;
        if !dir.exists() {
            return Ok(false);
        }
        // Checked and replaced under the lock: a logout's removal or a login's write cannot
        // land between the check and the rename.
        with_lock(&dir, || match read_session(&path) {
            Some(old) if old.user_id == s.user_id && old.device_id == s.device_id => {
                write_private(&path, &json).map(|()| true)
            }
            _ => Ok(false),
        })
    }

    /// Stores the session of a password login (or registration) and makes it the server's
    /// current account.
    pub fn store_login(&self, s: &StoredSession) -> std::io::Result<()> {
        save_session(&self.base, s).map(|_| ())
    }
}

/// Runs `f` holding the account directory's advisory lock (`session.lock`, flock): every
/// writer of the session file takes it, so a check-then-replace is not interleaved with
/// another process's write. Readers need none (a replace is a rename).
fn with_lock<R>(dir: &Path, f: impl FnOnce() -> std::io::Result<R>) -> std::io::Result<R> {
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).write(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let lock = opts.open(dir.join("session.lock"))?;
    lock.lock()?;
    let r = f();
    let _ = lock.unlock();
    r
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        // A name of this process's own: two writers never share (and truncate) one temp file.
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = path.with_extension(format!("{}.{n}.tmp", std::process::id()));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(tmp, path)
    }
    #[cfg(not(unix))]
    {
        std::fs::write(path, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_round_trip_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let s = StoredSession {
            server: "127.0.0.1:7000".into(),
            name: "小明".into(),
            user_id: 1,
            device_id: 2,
            token: "t".into(),
        };
        let path = save_session(dir.path(), &s).unwrap();
        assert_eq!(load_session(dir.path(), "127.0.0.1:7000"), Some(s));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        clear_session(dir.path(), "127.0.0.1:7000");
        assert_eq!(load_session(dir.path(), "127.0.0.1:7000"), None);
    }

    #[test]
    fn rotation_replaces_only_this_devices_session() {
        let dir = tempfile::tempdir().unwrap();
        let file = SessionFile::new(dir.path(), "127.0.0.1:7000", "Ann");
        let mut s = StoredSession {
            server: "127.0.0.1:7000".into(),
            name: "ann".into(),
            user_id: 1,
            device_id: 2,
            token: "t1".into(),
        };
        // Nothing stored (logged out): a rotation does not bring the session back.
        assert!(!file.store_rotated(&s).unwrap());
        assert_eq!(file.read(), None);
        file.store_login(&s).unwrap();
        s.token = "t2".into();
        assert!(file.store_rotated(&s).unwrap());
        assert_eq!(file.read().map(|f| f.token), Some("t2".into()));
        // Another device logged in since: its session stays.
        let other = StoredSession {
            device_id: 3,
            token: "u1".into(),
            ..s.clone()
        };
        file.store_login(&other).unwrap();
        s.token = "t3".into();
        assert!(!file.store_rotated(&s).unwrap());
        assert_eq!(file.read(), Some(other));
        clear_session(dir.path(), "127.0.0.1:7000");
        assert!(!file.store_rotated(&s).unwrap());
        assert_eq!(file.read(), None);
    }
}
