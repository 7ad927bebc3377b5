//! One account, many processes: a `confab watch` and many `confab send`s of the same account on
//! one machine share the session file, across token rotations (a short server grace) and server
//! kills; a logout from one process ends the watch with exit code 3.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::ServerProc;
use serde_json::Value;

/// Bound on every wait for another process (never asserted as a time).
const BOUND: Duration = Duration::from_secs(40);

struct Env {
    server: String,
    home: PathBuf,
}

impl Env {
    /// `confab` as the user whose data directory is `who`; no password anywhere and nothing
    /// on stdin, so a command that wanted one would fail.
    fn cmd(&self, who: &str, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_confab"));
        c.args(args)
            .env("CONFAB_SERVER", &self.server)
            .env("CONFAB_DATA_DIR", self.home.join(who))
            .env("CONFAB_CONFIG_DIR", self.home.join(who).join("config"))
            .env_remove("CONFAB_PASSWORD")
            .stdin(Stdio::null());
        c
    }

    fn run(&self, who: &str, args: &[&str]) -> Output {
        self.cmd(who, args).output().expect("confab runs")
    }

    fn ok(&self, who: &str, args: &[&str]) -> Output {
        let out = self.run(who, args);
        assert!(
            out.status.success(),
            "confab {args:?} as {who}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn register(&self, who: &str, name: &str) {
        let out = self
            .cmd(who, &["register", name])
            .env("CONFAB_PASSWORD", "correct horse battery")
            .output()
            .expect("confab runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A running `confab watch` writing its lines to `out`.
    fn watch(&self, who: &str, out: &Path) -> Child {
        let file = std::fs::File::create(out).unwrap();
        let err = std::fs::File::create(out.with_extension("err")).unwrap();
        self.cmd(who, &["watch"])
            .stdout(file)
            .stderr(err)
            .spawn()
            .expect("watch starts")
    }
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Waits (bounded) until the watch's output satisfies `done`; the watch must keep running.
fn wait_watch(watch: &mut Child, out: &Path, what: &str, done: impl Fn(&[Value]) -> bool) {
    let until = Instant::now() + BOUND;
    loop {
        let got = lines(out);
        if done(&got) {
            return;
        }
        assert!(
            !got.iter().any(|l| l["state"] == "stopped"),
            "the watch stopped waiting for {what}: {got:?}"
        );
        if let Some(status) = watch.try_wait().unwrap() {
            panic!(
                "the watch ended ({status}) waiting for {what}: {}\n{}",
                std::fs::read_to_string(out.with_extension("err")).unwrap_or_default(),
                std::fs::read_to_string(out).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < until,
            "no {what} from the watch: {}",
            std::fs::read_to_string(out).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn bodies(got: &[Value]) -> Vec<String> {
    got.iter()
        .filter(|l| l["type"] == "message")
        .filter_map(|l| l["body"].as_str().map(str::to_owned))
        .collect()
}

/// alice and bob, friends, each with a data directory of their own.
fn friends(srv: &ServerProc, home: &Path) -> Env {
    let env = Env {
        server: srv.addr.to_string(),
        home: home.to_path_buf(),
    };
    env.register("alice", "alice");
    env.register("bob", "bob");
    env.ok("alice", &["add", "bob"]);
    env.ok("bob", &["accept", "alice"]);
    env
}

#[test]
fn a_watch_and_thirty_sends_of_one_account_share_the_session_across_rotations_and_kills() {
    let dir = tempfile::tempdir().unwrap();
    let mut srv = ServerProc::start_with(
        &dir.path().join("server"),
        "127.0.0.1:0".parse().unwrap(),
        |c| c.token_grace_ms = 1000,
    );
    let env = friends(&srv, dir.path());
    let out = dir.path().join("watch.jsonl");
    let mut watch = env.watch("alice", &out);
    wait_watch(&mut watch, &out, "synced", |got| {
        got.iter().any(|l| l["type"] == "synced")
    });

    let mut sent = Vec::new();
    for i in 0..30 {
        if i % 10 == 0 && i > 0 {
            // Every token used so far is past its grace now: one held in memory is dead.
            std::thread::sleep(Duration::from_millis(1300));
            srv.kill();
            std::thread::sleep(Duration::from_millis(300));
            srv.restart();
        }
        let body = format!("message {i}");
        let res = env.ok("alice", &["send", "--to", "bob", &body]);
        let stderr = String::from_utf8_lossy(&res.stderr);
        assert!(!stderr.contains("password"), "{stderr}");
        sent.push(body);
        if i % 10 == 9 {
            // The watch holds the token it got before these sends rotated it.
            let want = sent.clone();
            wait_watch(&mut watch, &out, "the sends so far", |got| {
                let b = bodies(got);
                want.iter().all(|w| b.contains(w))
            });
        }
    }
    // Once more after the last rotations: the watch reconnects with the file's token.
    std::thread::sleep(Duration::from_millis(1300));
    srv.kill();
    std::thread::sleep(Duration::from_millis(300));
    srv.restart();
    env.ok("alice", &["send", "--to", "bob", "the end"]);
    wait_watch(&mut watch, &out, "the last message", |got| {
        bodies(got).iter().any(|b| b == "the end")
    });
    let got = lines(&out);
    let b = bodies(&got);
    for w in &sent {
        assert_eq!(b.iter().filter(|x| *x == w).count(), 1, "{w} once: {b:?}");
    }
    assert!(
        !got.iter().any(|l| l["state"] == "stopped"),
        "the watch stopped: {got:?}"
    );
    // bob's client sees every message too (and alice was never asked for a password).
    let threads = env.ok("bob", &["threads"]);
    assert!(String::from_utf8_lossy(&threads.stdout).contains("the end"));
    watch.kill().unwrap();
    let _ = watch.wait();
}

#[test]
fn a_logout_from_one_process_ends_the_accounts_watch_with_code_3() {
    let dir = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(&dir.path().join("server"));
    let env = friends(&srv, dir.path());
    let out = dir.path().join("watch.jsonl");
    let mut watch = env.watch("alice", &out);
    wait_watch(&mut watch, &out, "synced", |got| {
        got.iter().any(|l| l["type"] == "synced")
    });
    env.ok("alice", &["logout"]);
    let until = Instant::now() + BOUND;
    let status = loop {
        if let Some(s) = watch.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > until {
            watch.kill().unwrap();
            panic!(
                "the watch is still running after the logout: {}",
                std::fs::read_to_string(&out).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(3));
    let err = std::fs::read_to_string(out.with_extension("err")).unwrap();
    assert!(err.contains("the session ended"), "{err}");
    assert!(err.contains("confab login"), "{err}");
    // And the account is logged out for every command of this machine.
    let again = env.run("alice", &["threads"]);
    assert_eq!(again.status.code(), Some(3));
}

fn presence_of<'a>(got: &'a [Value], name: &str) -> Vec<&'a Value> {
    got.iter()
        .filter(|l| l["type"] == "presence" && l["user"]["name"] == name)
        .collect()
}

/// 20 `confab send`s (quiet connections) show bob nothing about alice's presence; a `watch`
/// of hers shows her online, and its end (killed: no goodbye) offline at once.
#[test]
fn a_friends_watch_sees_no_presence_from_sends_and_offline_when_the_last_device_goes() {
    let dir = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(&dir.path().join("server"));
    let env = friends(&srv, dir.path());
    let out = dir.path().join("bob.jsonl");
    let mut bob = env.watch("bob", &out);
    wait_watch(&mut bob, &out, "synced", |got| {
        got.iter().any(|l| l["type"] == "synced")
    });
    for i in 0..20 {
        env.ok("alice", &["send", "--to", "bob", &format!("quiet {i}")]);
    }
    wait_watch(&mut bob, &out, "the 20 messages", |got| {
        bodies(got).iter().any(|b| b == "quiet 19")
    });
    let alice_out = dir.path().join("alice.jsonl");
    let mut alice = env.watch("alice", &alice_out);
    wait_watch(&mut bob, &out, "alice online", |got| {
        !presence_of(got, "alice").is_empty()
    });
    let got = lines(&out);
    let seen = presence_of(&got, "alice");
    assert_eq!(seen.len(), 1, "the sends announced presence: {seen:?}");
    assert_eq!(seen[0]["online"], true);
    alice.kill().unwrap();
    let _ = alice.wait();
    wait_watch(&mut bob, &out, "alice offline", |got| {
        presence_of(got, "alice").len() == 2
    });
    assert_eq!(presence_of(&lines(&out), "alice")[1]["online"], false);
    bob.kill().unwrap();
    let _ = bob.wait();
}
