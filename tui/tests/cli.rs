//! The `confab` command line end to end: a shell script (tests/scripts/cli_e2e.sh) registers,
//! befriends, sends and watches against a real server; this test checks every JSON line it
//! printed and the exit codes of the failures.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::path::Path;
use std::process::Command;

use common::ServerProc;
use serde_json::Value;

fn lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}: not JSON: {l:?}: {e}", path.display()))
        })
        .collect()
}

fn code(out: &Path, name: &str) -> i32 {
    std::fs::read_to_string(out.join(format!("{name}.code")))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn cli_script_register_befriend_send_watch() {
    let dir = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(&dir.path().join("server"));
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/cli_e2e.sh");
    let status = Command::new("bash")
        .arg(&script)
        .env("CONFAB", env!("CARGO_BIN_EXE_confab"))
        .env("CONFAB_SERVER", srv.addr.to_string())
        .env("OUT", &out)
        .env_remove("CONFAB_PASSWORD")
        .status()
        .expect("bash runs");
    assert!(status.success(), "the script failed: {status}");
    assert!(out.join("finished").exists());

    let reg = lines(&out.join("register_bob.jsonl"));
    assert_eq!(reg[0]["type"], "registered");
    assert_eq!(reg[0]["user"]["name"], "小明");

    let friends = lines(&out.join("friends_bob.jsonl"));
    assert!(
        friends
            .iter()
            .any(|l| l["type"] == "request_in" && l["note"] == "from the meetup")
    );
    let accept = lines(&out.join("accept.jsonl"));
    assert_eq!(accept[0]["state"], "ACCEPTED");

    let sent = lines(&out.join("send1.jsonl"));
    assert_eq!(sent[0]["type"], "sent");
    assert_eq!(sent[0]["seq"], 1);

    let watch = lines(&out.join("watch.jsonl"));
    let bodies: Vec<&str> = watch
        .iter()
        .filter(|l| l["type"] == "message" && l["kind"] == "TEXT")
        .map(|l| l["body"].as_str().unwrap())
        .collect();
    assert_eq!(
        bodies,
        vec!["你好, 小明! 👋", "second line"],
        "each message once, in order"
    );

    // Events and group changes are typed fields, never Debug text.
    let raw = std::fs::read_to_string(out.join("watch.jsonl")).unwrap();
    assert!(!raw.contains("Some("), "Debug text in watch output: {raw}");
    assert!(
        watch
            .iter()
            .any(|l| l["type"] == "event" && l["event"] == "group_joined" && l["name"] == "研发群"),
        "{raw}"
    );
    assert!(
        watch.iter().any(|l| l["type"] == "message"
            && l["kind"] == "SYSTEM"
            && l["group_change"]["kind"] == "JOINED"
            && l["group_change"]["subject"]["name"] == "小明"),
        "{raw}"
    );

    let threads = lines(&out.join("threads_bob2.jsonl"));
    // The group, newer, comes first; the private thread with alice holds the two messages.
    assert_eq!(threads[0]["name"], "研发群");
    let dm = threads.iter().find(|t| t["name"] == "alice").unwrap();
    assert_eq!(dm["last_seq"], 2);
    assert_eq!(dm["last"], "second line");

    assert_eq!(code(&out, "wrong_password"), 3);
    assert_eq!(
        code(&out, "unknown_user"),
        3,
        "unknown users look like wrong passwords"
    );
    assert_eq!(code(&out, "send_unknown"), 4);
    assert_eq!(code(&out, "not_logged_in"), 3);
    let err = std::fs::read_to_string(out.join("wrong_password.err")).unwrap();
    assert!(
        err.contains("wrong name or password"),
        "clear message: {err}"
    );
}

/// A reader that went away before the output came (as `confab threads | head -1` leaves it)
/// ends the command with 0, not a "Broken pipe" panic.
#[test]
fn a_closed_standard_output_ends_the_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(&dir.path().join("server"));
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_confab"))
        .args(["--server", &srv.addr.to_string(), "register", "pipe_closed"])
        .env("CONFAB_DATA_DIR", dir.path().join("client"))
        .env("CONFAB_PASSWORD", common::PASSWORD)
        .env_remove("CONFAB_SERVER")
        .stdout(writer)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
