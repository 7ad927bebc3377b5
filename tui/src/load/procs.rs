//! Several processes: one process holds fewer than 20,000 sockets (the open-file limit), so a
//! parent runs P copies of itself, each on its share of the work (`--shard i/P`), reads the
//! JSON report each prints and merges them (the histograms exactly).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::process::Stdio;

use serde_json::Value;

use super::{LoadError, Report};

/// What one child printed: its report and the resume tokens it rotated.
pub struct ChildResult {
    pub report: Report,
    pub tokens: BTreeMap<String, String>,
}

/// Parses a child's stdout: the last line holding a JSON object.
pub fn parse_child(stdout: &str) -> Result<ChildResult, LoadError> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or_else(|| LoadError::Child("printed no JSON report".into()))?;
    let v: Value = serde_json::from_str(line).map_err(|e| LoadError::Child(e.to_string()))?;
    let report = Report::from_json(&v).map_err(|e| LoadError::Child(e.to_string()))?;
    let tokens = v
        .get("tokens")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, t)| t.as_str().map(|t| (k.clone(), t.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    Ok(ChildResult { report, tokens })
}

/// Runs `exe args... --shard i/P --json` for i in 0..P at once and merges what they report.
pub async fn run(
    exe: &std::path::Path,
    args: &[OsString],
    processes: usize,
) -> Result<ChildResult, LoadError> {
    let mut children = Vec::with_capacity(processes);
    for i in 0..processes {
        let child = tokio::process::Command::new(exe)
            .args(args)
            .arg("--shard")
            .arg(format!("{i}/{processes}"))
            .arg("--json")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| LoadError::Child(format!("cannot start {}: {e}", exe.display())))?;
        children.push(child);
    }
    let mut merged = ChildResult {
        report: Report::default(),
        tokens: BTreeMap::new(),
    };
    merged.report.processes = 0;
    for (i, child) in children.into_iter().enumerate() {
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| LoadError::Child(format!("process {i}: {e}")))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let part = parse_child(&text).map_err(|e| {
            LoadError::Child(format!("process {i} (exit {:?}): {e}", out.status.code()))
        })?;
        let processes = merged.report.processes;
        merged.report.merge(&part.report);
        merged.report.processes = processes + part.report.processes;
        merged.tokens.extend(part.tokens);
    }
    merged.report.check();
    Ok(merged)
}
