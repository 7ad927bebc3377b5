//! What the terminal client remembers per server and account between runs, beside the session
//! and the cache: the conversation left open, and the conversations closed from the list.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::client::paths;

fn file(server: &str, name: &str, what: &str) -> PathBuf {
    paths::account_dir(&paths::data_dir(), server, name).join(what)
}

/// The conversation left open at the last run.
pub fn last_open(server: &str, name: &str) -> Option<u64> {
    std::fs::read_to_string(file(server, name, "last_thread"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

pub fn save_last_open(server: &str, name: &str, id: u64) {
    let _ = std::fs::write(file(server, name, "last_thread"), id.to_string());
}

/// Closed conversations: thread id -> its activity when closed (newer activity reopens it).
/// One `id activity` pair per line; a line that does not parse is skipped.
pub fn hidden(server: &str, name: &str) -> BTreeMap<u64, u64> {
    std::fs::read_to_string(file(server, name, "hidden_threads"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (a, b) = l.split_once(' ')?;
            Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
        })
        .collect()
}

pub fn save_hidden(server: &str, name: &str, hidden: &BTreeMap<u64, u64>) -> std::io::Result<()> {
    let text: String = hidden
        .iter()
        .map(|(id, at)| format!("{id} {at}\n"))
        .collect();
    let path = file(server, name, "hidden_threads");
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text)
}
