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

/// Saves a session (0600) and marks it the server's current account.
pub fn save_session(base: &Path, s: &StoredSession) -> std::io::Result<PathBuf> {
    let dir = account_dir(base, &s.server, &s.name);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("session.json");
    let json = serde_json::to_vec_pretty(s).map_err(std::io::Error::other)?;
    write_private(&path, &json)?;
    write_private(&current_file(base, &s.server), s.name.as_bytes())?;
    Ok(path)
}

/// The current session for a server, if any.
pub fn load_session(base: &Path, server: &str) -> Option<StoredSession> {
    let name = std::fs::read_to_string(current_file(base, server)).ok()?;
    let bytes = std::fs::read(account_dir(base, server, name.trim()).join("session.json")).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Forgets the current session of a server.
pub fn clear_session(base: &Path, server: &str) {
    if let Some(s) = load_session(base, server) {
        let _ = std::fs::remove_file(account_dir(base, server, &s.name).join("session.json"));
    }
    let _ = std::fs::remove_file(current_file(base, server));
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let tmp = path.with_extension("tmp");
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
}
