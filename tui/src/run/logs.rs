//! Conversation logs (`log_dir`) and `/export`: plain text written by the run loop, never by
//! the reducer (app/export.rs makes the lines).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::app::config::Zone;
use crate::app::export::line;
use crate::client::Client;

/// A server's directory name under `log_dir`: the same as under the data directory.
fn server_dir(server: &str) -> String {
    crate::client::paths::server_dir_name(server)
}

/// Appends one line to `dir/<server>/<file>` (created with its directories, mode 0600: it is
/// the user's conversations).
pub fn append(dir: &Path, server: &str, file: &str, text: &str) -> std::io::Result<()> {
    let d = dir.join(server_dir(server));
    std::fs::create_dir_all(&d)?;
    let mut f = open_private(&d.join(file), true)?;
    writeln!(f, "{text}")
}

fn open_private(path: &Path, append: bool) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.create(true).write(true);
    if append {
        o.append(true);
    } else {
        o.truncate(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

/// `/export`: every message of the thread the cache holds, oldest first, to `path` (default:
/// the home directory, `confab-<file>` with the log's name). Returns how many and where.
pub async fn export(
    c: &Client,
    thread_id: u64,
    file: &str,
    path: Option<&str>,
    zone: &Zone,
) -> Result<(usize, PathBuf), String> {
    let mut all = Vec::new();
    let mut before = 0;
    loop {
        let page = c
            .history(thread_id, before, crate::app::PAGE)
            .await
            .map_err(|e| e.to_string())?;
        let Some(first) = page.first().map(|m| m.seq) else {
            break;
        };
        let done = page.len() < crate::app::PAGE as usize || first <= 1;
        all.splice(0..0, page);
        if done {
            break;
        }
        before = first;
    }
    let path = match path {
        Some(p) => PathBuf::from(p),
        None => std::env::var_os("HOME")
            .map_or_else(|| PathBuf::from("."), PathBuf::from)
            .join(format!("confab-{file}").replace(".log", ".txt")),
    };
    let lines: Vec<String> = all.iter().filter_map(|m| line(m, zone)).collect();
    let mut f = open_private(&path, false).map_err(|e| format!("{}: {e}", path.display()))?;
    for l in &lines {
        writeln!(f, "{l}").map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok((lines.len(), path))
}

#[cfg(test)]
mod tests {
    #[test]
    fn logs_append_per_server_and_conversation() {
        let dir = tempfile::tempdir().unwrap();
        super::append(dir.path(), "tls://chat.example:7000", "#研发群.log", "a").unwrap();
        super::append(dir.path(), "tls://chat.example:7000", "#研发群.log", "b").unwrap();
        let p = dir
            .path()
            .join(crate::client::paths::server_dir_name(
                "tls://chat.example:7000",
            ))
            .join("#研发群.log");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a\nb\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
