//! The `confab` command line end to end: a shell script (tests/scripts/cli_e2e.sh) registers,
//! befriends, sends and watches against a real server; this test checks every JSON line it
//! printed and the exit codes of the failures.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use common::ServerProc;
use serde_json::{Value, json};

fn lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}: not JSON: {l:?}: {e}", path.display()))
        })
        .collect()
}

/// docs/CLI.md's line tables: `type` (or `event.NAME`) -> (required fields, optional fields).
fn schema() -> BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/CLI.md");
    let text = std::fs::read_to_string(doc).unwrap();
    let lines = &text[text.find("## Lines").expect("a Lines section")..];
    let mut out = BTreeMap::new();
    for row in lines.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.trim_matches('|').split(" | ").collect();
        let key = cells[0].trim().trim_matches('`').to_owned();
        let (mut need, mut may) = (BTreeSet::new(), BTreeSet::new());
        for f in cells.get(1).unwrap_or(&"").split(',') {
            let f = f.trim().trim_matches('`');
            match f.strip_suffix('?') {
                Some(opt) => may.insert(opt.to_owned()),
                None if !f.is_empty() => need.insert(f.to_owned()),
                None => false,
            };
        }
        out.insert(key, (need, may));
    }
    out
}

/// Every line of every output file has a documented `type` and exactly its fields.
fn check_against_schema(out: &Path) -> usize {
    let schema = schema();
    assert!(schema.len() > 30, "the tables were not found: {schema:?}");
    let mut checked = 0;
    for entry in std::fs::read_dir(out).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "jsonl") {
            continue;
        }
        for line in lines(&path) {
            let kind = line["type"].as_str().expect("every line has a type");
            let key = match kind {
                "event" => format!("event.{}", line["event"].as_str().unwrap()),
                k => k.to_owned(),
            };
            let (need, may) = schema
                .get(&key)
                .unwrap_or_else(|| panic!("{}: {key} is not in docs/CLI.md", path.display()));
            let have: BTreeSet<String> = line
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| *k != "type")
                .cloned()
                .collect();
            assert!(
                need.is_subset(&have) && have.iter().all(|f| need.contains(f) || may.contains(f)),
                "{}: {key} has {have:?}; docs/CLI.md says {need:?} and maybe {may:?}",
                path.display()
            );
            checked += 1;
        }
    }
    checked
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

    check_scripting_commands(&out);
    assert!(check_against_schema(&out) > 60);

    assert_eq!(code(&out, "wrong_password"), 3);
    assert_eq!(
        code(&out, "unknown_user"),
        3,
        "unknown users look like wrong passwords"
    );
    assert_eq!(code(&out, "send_unknown"), 4);
    assert_eq!(code(&out, "not_logged_in"), 3);
    assert_eq!(code(&out, "logged_out"), 3, "a logged-out session");
    assert_eq!(code(&out, "no_target"), 2);
    assert_eq!(code(&out, "kick_unknown"), 4, "not a member");
    let hits = lines(&out.join("search.jsonl"));
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0]["type"], "hit");
    assert_eq!(hits[0]["body"], "你好, 小明! 👋");
    assert_eq!(hits[0]["spans"], serde_json::json!([[0, 6]]));
    let reply = &lines(&out.join("reply.jsonl"))[0];
    assert_eq!(reply["type"], "sent");
    let react = &lines(&out.join("react.jsonl"))[0];
    assert_eq!(
        (&react["type"], &react["changed"], &react["emoji"]),
        (&json!("reacted"), &json!(true), &json!("👍"))
    );
    assert_eq!(lines(&out.join("react_again.jsonl"))[0]["changed"], false);
    let history = lines(&out.join("history_reply.jsonl"));
    let shown = history
        .iter()
        .find(|m| m["message_id"] == reply["message_id"])
        .expect("the reply in the history");
    assert_eq!(shown["reply_to"], hits[0]["message_id"]);
    assert_eq!(shown["quote"]["excerpt"], "你好, 小明! 👋");
    assert_eq!(
        shown["reactions"],
        json!([{"emoji": "👍", "count": 1, "mine": false}])
    );
    assert_eq!(
        history.last().map(|m| m["kind"].clone()),
        Some(json!("REACTION_ADDED"))
    );
    let unreact = &lines(&out.join("unreact.jsonl"))[0];
    assert_eq!(
        (&unreact["changed"], &unreact["removed"]),
        (&json!(true), &json!(true))
    );
    assert_eq!(code(&out, "react_bad"), 5, "refused by the server");
    assert_eq!(
        code(&out, "delete_wrong"),
        3,
        "a wrong password keeps the account"
    );
    assert_eq!(lines(&out.join("deleted.jsonl"))[0]["type"], "deleted");
    assert_eq!(
        code(&out, "deleted_login"),
        3,
        "a deleted account cannot log in"
    );
    assert_eq!(code(&out, "deleted_name"), 5, "its name is held");
    assert_eq!(code(&out, "threads_head"), 0, "`threads | head -1`");
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

fn bodies(lines: &[Value]) -> Vec<&str> {
    lines
        .iter()
        .filter(|l| l["type"] == "message")
        .map(|l| l["body"].as_str().unwrap())
        .collect()
}

fn seqs(lines: &[Value]) -> Vec<u64> {
    lines.iter().map(|l| l["seq"].as_u64().unwrap()).collect()
}

/// What the second half of cli_e2e.sh did, command by command.
fn check_scripting_commands(out: &Path) {
    let one = |name: &str| {
        let l = lines(&out.join(format!("{name}.jsonl")));
        assert_eq!(l.len(), 1, "{name}: {l:?}");
        l.into_iter().next().unwrap()
    };
    // Requests: pending both ways, cancelled, declined, accepted.
    let carol_out = lines(&out.join("requests_carol.jsonl"));
    assert_eq!(carol_out.len(), 1);
    assert_eq!(carol_out[0]["direction"], "out");
    assert_eq!(carol_out[0]["to"]["name"], "alice");
    let alice_in = lines(&out.join("requests_alice.jsonl"));
    assert!(
        alice_in
            .iter()
            .any(|r| r["direction"] == "in" && r["note"] == "hi alice")
    );
    assert_eq!(one("cancel")["state"], "CANCELLED");
    assert_eq!(one("decline")["state"], "DECLINED");
    assert_eq!(one("accept_carol")["state"], "ACCEPTED");
    assert!(
        lines(&out.join("friends_carol.jsonl"))
            .iter()
            .any(|f| f["type"] == "friend" && f["user"]["name"] == "alice")
    );

    // Standard input: three messages with --lines (the empty line skipped), one without.
    let sent = lines(&out.join("send_lines.jsonl"));
    assert_eq!(seqs(&sent), vec![3, 4, 5]);
    assert_eq!(one("send_stdin")["seq"], 6);

    // History in seq order, paged by the CLI itself.
    let all = lines(&out.join("history_all.jsonl"));
    assert_eq!(
        bodies(&all),
        vec![
            "你好, 小明! 👋",
            "second line",
            "line one",
            "line two",
            "line three",
            "一条消息 from stdin"
        ],
        "the exact text, the final newline of stdin dropped"
    );
    assert_eq!(seqs(&all), vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(seqs(&lines(&out.join("history_since.jsonl"))), vec![3, 4]);
    assert_eq!(
        seqs(&lines(&out.join("history_before.jsonl"))),
        vec![1, 2, 3]
    );
    assert_eq!(seqs(&lines(&out.join("history_newest.jsonl"))), vec![5, 6]);

    // Edit and recall name their target; read moves the marker (bob's unread count is 0).
    let edit = one("edit");
    assert_eq!(edit["type"], "edited");
    assert_eq!(edit["target_message_id"], all[5]["message_id"]);
    let recall = one("recall");
    assert_eq!(recall["type"], "recalled");
    assert_eq!(recall["target_message_id"], all[2]["message_id"]);
    assert_eq!(
        one("read")["read_seq"],
        8,
        "six messages, the edit and the recall"
    );
    let dm = lines(&out.join("threads_bob_read.jsonl"))
        .into_iter()
        .find(|t| t["name"] == "alice")
        .unwrap();
    assert_eq!(dm["unread"], 0);

    // Groups: invite, join, role, members, rename, kick, transfer, leave.
    assert_eq!(one("invite")["user"]["name"], "carol");
    assert_eq!(one("role")["role"], "ADMIN");
    let members = lines(&out.join("members.jsonl"));
    let mut names: Vec<&str> = members
        .iter()
        .map(|m| m["user"]["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, vec!["alice", "carol", "小明"]);
    assert_eq!(one("rename")["name"], "研发二群");
    assert_eq!(one("kick")["user"]["name"], "小明");
    assert_eq!(one("transfer")["owner"]["name"], "carol");
    assert_eq!(one("leave")["name"], "研发二群");
    let carol_groups = lines(&out.join("groups_carol.jsonl"));
    assert_eq!(carol_groups.len(), 1);
    assert_eq!(carol_groups[0]["my_role"], "OWNER");
    assert_eq!(carol_groups[0]["member_count"], 1);
    let history = lines(&out.join("history_group.jsonl"));
    let changes: Vec<&str> = history
        .iter()
        .filter_map(|m| m["group_change"]["kind"].as_str())
        .collect();
    for kind in [
        "ROLE_CHANGED",
        "UPDATED",
        "KICKED",
        "OWNER_TRANSFERRED",
        "LEFT",
    ] {
        assert!(changes.contains(&kind), "{kind} missing from {changes:?}");
    }

    // A watch of one thread from now on: only the new message of that thread.
    let watched = lines(&out.join("watch_thread.jsonl"));
    assert_eq!(bodies(&watched), vec!["live one"], "{watched:?}");
    assert!(
        watched
            .iter()
            .all(|l| l["type"] != "event" && l["type"] != "presence")
    );

    assert_eq!(one("unfriend")["user"]["name"], "alice");
    assert_eq!(one("block")["user"]["name"], "carol");
    assert_eq!(one("ban")["user"]["name"], "alice");
    assert_eq!(one("unban")["type"], "unbanned");
    assert_eq!(
        code(out, "ban_join"),
        4,
        "a banned user does not find the group"
    );
    let blocked: Vec<String> = lines(&out.join("blocked.jsonl"))
        .iter()
        .map(|l| l["user"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(blocked, vec!["carol", "小明"]);
    assert_eq!(one("unblock")["type"], "unblocked");
    assert_eq!(
        code(out, "request_blocked"),
        5,
        "a request refused by a block"
    );
    assert_eq!(code(out, "send_blocked"), 5, "a send refused by a block");
    let devices = lines(&out.join("devices.jsonl"));
    assert_eq!(devices.len(), 3, "bob, bob2, bob3: {devices:?}");
    assert_eq!(
        devices.iter().filter(|d| d["current"] == true).count(),
        1,
        "{devices:?}"
    );
    assert!(
        devices
            .iter()
            .all(|d| d["address"] == "127.0.0.1" && d["client"] != ""),
        "{devices:?}"
    );
    assert_eq!(one("revoke")["type"], "revoked");
    assert_eq!(
        code(out, "revoked_threads"),
        3,
        "a revoked session cannot sign in"
    );
    let err = std::fs::read_to_string(out.join("request_blocked.err")).unwrap();
    assert!(
        err.contains("not allowed") && !err.contains("block"),
        "{err}"
    );
    assert_eq!(one("threads_head")["type"], "thread");
    assert_eq!(one("logout")["type"], "logged_out");
}
