//! The real `confab` terminal client in tmux against a real server: two users register in two
//! tmux sessions (separate HOME/XDG directories, as on two machines), befriend with slash
//! commands, chat both ways in Chinese and English, make a group and talk there (a bracketed
//! paste with a newline stays in the composer until Enter); one quits,
//! receives while away and sees it after relaunching (the saved session resumes); the server is
//! killed and restarted: the offline banner shows, the client reconnects, nothing is lost or
//! shown twice. Another test runs the terminal client beside a `confab watch` and `confab send`s
//! of the same account (one shared session) across server kills. Screens are read with `tmux
//! capture-pane`; every wait is a bounded poll.
//!
//! Needs tmux (scripts/test.sh installs it).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::ServerProc;

const WAIT: Duration = Duration::from_secs(30);

struct Tmux {
    sock: PathBuf,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> std::process::Output {
        // UTF-8 whatever the test's locale (capture-pane must return the CJK text as is).
        Command::new("tmux")
            .env("LC_ALL", "C.UTF-8")
            .arg("-u")
            .arg("-S")
            .arg(&self.sock)
            .args(args)
            .output()
            .expect("tmux runs (scripts/test.sh installs it)")
    }

    /// Starts `confab` for one user with its own HOME and XDG directories.
    fn launch(&self, name: &str, home: &Path, server: &str) {
        self.launch_at(name, home, server, (100, 30));
    }

    fn launch_at(&self, name: &str, home: &Path, server: &str, size: (u16, u16)) {
        self.start(name, home, &format!("--server {server}"), size);
    }

    /// Starts `confab` with no server given: it must use the one it last signed in to.
    fn launch_remembered(&self, name: &str, home: &Path) {
        self.start(name, home, "", (100, 30));
    }

    fn start(&self, name: &str, home: &Path, args: &str, size: (u16, u16)) {
        for d in ["config", "data", "state"] {
            std::fs::create_dir_all(home.join(d)).unwrap();
        }
        let cmd = format!(
            "env -u CONFAB_DATA_DIR -u CONFAB_CONFIG_DIR -u CONFAB_SERVER -u TMUX HOME={h} XDG_CONFIG_HOME={h}/config XDG_DATA_HOME={h}/data XDG_STATE_HOME={h}/state \
             TERM=xterm-256color LANG=C.UTF-8 LC_ALL=C.UTF-8 \
             {bin} {args}",
            h = home.display(),
            bin = env!("CARGO_BIN_EXE_confab"),
        );
        let out = self.cmd(&[
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            &size.0.to_string(),
            "-y",
            &size.1.to_string(),
            &cmd,
        ]);
        assert!(out.status.success(), "tmux new-session: {out:?}");
    }

    fn screen(&self, name: &str) -> String {
        let out = self.cmd(&["capture-pane", "-p", "-t", name]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn alive(&self, name: &str) -> bool {
        self.cmd(&["has-session", "-t", name]).status.success()
    }

    /// Types text literally (CJK included), without pressing Enter.
    fn type_text(&self, name: &str, text: &str) {
        let out = self.cmd(&["send-keys", "-t", name, "-l", text]);
        assert!(out.status.success());
    }

    fn keys(&self, name: &str, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", name];
        args.extend_from_slice(keys);
        assert!(self.cmd(&args).status.success());
    }

    fn line(&self, name: &str, text: &str) {
        self.type_text(name, text);
        self.keys(name, &["Enter"]);
    }

    /// Polls the screen until `pred` holds; panics with the screen after WAIT.
    fn wait(&self, name: &str, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let s = self.screen(name);
            if pred(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!("{name}: timed out waiting for {what}; screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_for(&self, name: &str, text: &str) -> String {
        self.wait(name, text, |s| s.contains(text))
    }

    /// A tmux format of the pane (`#{pane_title}`, `#{pane_dead}`).
    fn format(&self, name: &str, f: &str) -> String {
        let out = self.cmd(&["display-message", "-p", "-t", name, f]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

fn register(t: &Tmux, who: &str, name: &str) {
    t.wait_for(who, "log in");
    t.keys(who, &["C-t"]);
    t.wait_for(who, "create an account");
    t.line(who, name);
    t.line(who, "correct horse battery");
    t.line(who, "correct horse battery");
    // Logged in: the status line shows the connection and the title the user.
    t.wait(who, "the main screen", |s| {
        s.contains(name) && s.contains("online")
    });
}

#[test]
fn two_users_chat_in_tmux_across_a_quit_and_a_server_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut srv = ServerProc::start(&dir.path().join("server"));
    let server = srv.addr.to_string();
    let t = Tmux {
        sock: dir.path().join("tmux.sock"),
    };
    let (home_a, home_b) = (dir.path().join("a"), dir.path().join("b"));
    t.launch("a", &home_a, &server);
    t.launch("b", &home_b, &server);
    register(&t, "a", "alice");
    register(&t, "b", "小明");

    // Befriend with slash commands.
    t.line("a", "/add 小明");
    t.wait_for("a", "friend request sent to 小明");
    t.wait_for("b", "requests (1)");
    t.line("b", "/accept alice");
    t.wait_for("b", "you and alice are now friends");
    t.wait_for("a", "小明");

    // Both ways, Chinese and English.
    t.line("a", "你好，小明！Nice to meet you.");
    t.wait_for("b", "你好，小明！Nice to meet you.");
    t.line("b", "hello alice, 很高兴认识你");
    t.wait_for("a", "hello alice, 很高兴认识你");

    // Ctrl-C clears a draft and Ctrl-_ (byte 0x1f from tmux) brings it back.
    t.type_text("a", "草稿 kept draft");
    t.wait_for("a", "草稿 kept draft");
    t.keys("a", &["C-c"]);
    t.wait("a", "the draft cleared", |s| !s.contains("草稿 kept draft"));
    t.keys("a", &["C-_"]);
    t.wait_for("a", "草稿 kept draft");
    t.keys("a", &["C-u"]);
    t.wait("a", "the draft killed", |s| !s.contains("草稿 kept draft"));

    // A group: one creates, the other joins, both talk.
    t.line("a", "/group create 研发群");
    t.wait_for("a", "#研发群");
    t.line("b", "/group join 研发群");
    t.wait_for("b", "#研发群");
    t.line("b", "群里好 group hello");
    t.wait_for("a", "群里好 group hello");

    // A bracketed paste with a newline lands in the composer and is not sent; Enter sends it.
    assert!(
        t.cmd(&["set-buffer", "-b", "p", "粘贴第一行\nsecond pasted line"])
            .status
            .success()
    );
    assert!(
        t.cmd(&["paste-buffer", "-p", "-b", "p", "-t", "a"])
            .status
            .success()
    );
    let screen = t.wait_for("a", "pasted 2 lines");
    assert!(
        screen.contains("> 粘贴第一行") && screen.contains("  second pasted line"),
        "{screen}"
    );
    assert!(
        !t.screen("b").contains("粘贴第一行"),
        "the paste sent itself"
    );
    t.keys("a", &["Enter"]);
    t.wait("b", "the pasted message", |s| {
        s.contains("粘贴第一行") && s.contains("second pasted line")
    });

    // alice quits; 小明 writes while she is away.
    t.line("a", "/quit");
    let deadline = Instant::now() + WAIT;
    while t.alive("a") {
        assert!(Instant::now() < deadline, "confab did not exit on /quit");
        std::thread::sleep(Duration::from_millis(100));
    }
    t.keys("b", &["C-k"]);
    t.type_text("b", "alice");
    t.keys("b", &["Enter"]);
    t.line("b", "离线消息 while you were away");
    t.wait_for("b", "离线消息 while you were away");
    // Relaunch with no --server: the last server's saved session resumes without a login
    // (the cached conversations show at once); the DM gets an unread badge after the sync and
    // Alt-A jumps there.
    t.launch_remembered("a", &home_a);
    t.wait("a", "an unread badge on the DM", |s| {
        s.lines().any(|l| l.contains("小明") && l.contains("1│"))
    });
    t.keys("a", &["M-a"]);
    t.wait_for("a", "离线消息 while you were away");

    // Kill the server: the banner shows; restart: the client reconnects and resyncs.
    srv.kill();
    t.wait_for("a", "OFFLINE");
    t.wait_for("b", "OFFLINE");
    srv.restart();
    t.wait("a", "reconnection", |s| {
        !s.contains("OFFLINE") && s.contains("online")
    });
    t.wait("b", "reconnection", |s| {
        !s.contains("OFFLINE") && s.contains("online")
    });
    t.line("b", "重启后 after restart");
    let screen = t.wait_for("a", "重启后 after restart");
    for text in [
        "你好，小明！Nice to meet you.",
        "hello alice, 很高兴认识你",
        "离线消息 while you were away",
        "重启后 after restart",
    ] {
        assert_eq!(screen.matches(text).count(), 1, "{text:?} once:\n{screen}");
    }
    // A message sent while the server is down is queued and delivered after it comes back.
    srv.kill();
    t.wait_for("a", "OFFLINE");
    t.line("a", "排队的消息 queued");
    t.wait_for("a", "排队的消息 queued (sending…)");
    srv.restart();
    t.wait_for("b", "排队的消息 queued");
    let screen = t.wait("a", "the ack", |s| {
        s.contains("排队的消息 queued") && !s.contains("(sending…)")
    });
    assert_eq!(screen.matches("排队的消息 queued").count(), 1, "{screen}");

    // Edit, then recall, the last message: both screens follow.
    t.line("a", "/edit 排队的消息 edited");
    t.wait_for("a", "排队的消息 edited");
    t.wait_for("b", "排队的消息 edited");
    t.line("a", "/recall");
    t.wait("b", "the recall", |s| {
        s.contains("(message recalled)") && !s.contains("排队的消息 edited")
    });
    t.wait("a", "the recall", |s| !s.contains("排队的消息 edited"));
}

/// Ctrl-Z stops the client like any terminal program: the shell gets the terminal back and
/// lists a stopped job; `fg` brings the client back, repainted and taking keys in raw mode.
/// No server is needed: the login screen is enough.
#[test]
fn ctrl_z_suspends_to_the_shell_and_fg_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tmux {
        sock: dir.path().join("tmux.sock"),
    };
    let home = dir.path().join("h");
    for d in ["config", "data", "state"] {
        std::fs::create_dir_all(home.join(d)).unwrap();
    }
    // An interactive shell with job control, and a prompt the test can recognise.
    let shell = format!(
        "env -u TMUX HOME={h} XDG_CONFIG_HOME={h}/config XDG_DATA_HOME={h}/data XDG_STATE_HOME={h}/state \
         TERM=xterm-256color LANG=C.UTF-8 LC_ALL=C.UTF-8 PS1='zprompt$ ' bash --norc --noprofile -i",
        h = home.display(),
    );
    let out = t.cmd(&[
        "new-session",
        "-d",
        "-s",
        "z",
        "-x",
        "100",
        "-y",
        "30",
        &shell,
    ]);
    assert!(out.status.success(), "tmux new-session: {out:?}");
    t.wait_for("z", "zprompt$");
    // Port 9 on loopback: nothing listens, and nothing connects before a login anyway.
    t.line(
        "z",
        &format!("{} --server 127.0.0.1:9", env!("CARGO_BIN_EXE_confab")),
    );
    t.wait_for("z", "log in");

    t.keys("z", &["C-z"]);
    let screen = t.wait("z", "the shell after Ctrl-Z", |s| {
        s.contains("Stopped") && s.trim_end().ends_with("zprompt$")
    });
    assert!(!screen.contains("log in"), "main screen is back:\n{screen}");
    t.line("z", "jobs");
    t.wait("z", "the stopped job in `jobs`", |s| {
        s.lines()
            .filter(|l| l.contains("Stopped") && l.contains("confab"))
            .count()
            >= 2
    });

    t.line("z", "fg");
    let screen = t.wait("z", "the client repainted after fg", |s| {
        s.contains("log in") && !s.contains("zprompt$")
    });
    assert!(!screen.contains("Stopped"), "{screen}");
    // Raw mode is back: a typed name shows in the form instead of echoing as a shell line.
    t.type_text("z", "resumed_user");
    t.wait_for("z", "resumed_user");
    // And it can be suspended again.
    t.keys("z", &["C-z"]);
    t.wait("z", "the shell again", |s| {
        s.trim_end().ends_with("zprompt$")
    });
}

#[test]
fn over_tls_the_client_asks_to_trust_a_self_signed_server_at_80x24() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    let srv = ServerProc::start_with(&data, "127.0.0.1:0".parse().unwrap(), |cfg| {
        cfg.tls_self_signed = true;
    });
    let mut cfg = confab_server::config::Config::defaults().unwrap();
    cfg.data_dir = data.clone();
    cfg.tls_self_signed = true;
    let fingerprint = confab_server::tls::configured_fingerprint(&cfg).unwrap();
    let server = format!("tls://localhost:{}", srv.addr.port());
    let t = Tmux {
        sock: dir.path().join("tmux.sock"),
    };
    let (home_a, home_b) = (dir.path().join("a"), dir.path().join("b"));
    t.launch_at("a", &home_a, &server, (80, 24));
    t.launch_at("b", &home_b, &server, (80, 24));
    t.wait_for("a", "TLS: encrypted");

    // A says yes after comparing the fingerprint; the same submission then registers.
    t.keys("a", &["C-t"]);
    t.wait_for("a", "create an account");
    t.line("a", "alice");
    t.line("a", "correct horse battery");
    t.line("a", "correct horse battery");
    t.wait_for("a", "unknown server");
    // The fingerprint may be cut at 80 columns only after its first 40 characters.
    t.wait_for("a", &fingerprint[..40]);
    t.keys("a", &["y"]);
    t.wait("a", "the main screen", |s| {
        s.contains("alice") && s.contains("online")
    });
    let known = std::fs::read_to_string(home_a.join("data/confab/known_servers")).unwrap();
    assert!(known.contains(&fingerprint), "{known}");

    // B says no: not connected, nothing recorded, the form says why.
    t.keys("b", &["C-t"]);
    t.wait_for("b", "create an account");
    t.line("b", "小明");
    t.line("b", "correct horse battery");
    t.line("b", "correct horse battery");
    t.wait_for("b", "unknown server");
    t.keys("b", &["n"]);
    t.wait_for("b", "is not trusted");
    assert!(!home_b.join("data/confab/known_servers").exists());
    // Asked again on the next try, and yes works.
    t.keys("b", &["Enter"]);
    t.wait_for("b", "unknown server");
    t.keys("b", &["y"]);
    t.wait("b", "the main screen", |s| {
        s.contains("小明") && s.contains("online")
    });

    // They chat over TLS.
    t.line("a", "/add 小明");
    t.wait_for("b", "requests (1)");
    t.line("b", "/accept alice");
    t.wait_for("b", "you and alice are now friends");
    t.wait_for("a", "小明");
    t.line("a", "加密的你好");
    t.wait_for("b", "加密的你好");
    drop(srv);
}

/// One account in three kinds of process on one machine: the terminal client, a `confab watch`
/// and 30 `confab send`s share the session file while the server (token grace 1 s) is killed and
/// restarted twice; the terminal client stays signed in and shows the last message once, and
/// nothing asks for a password.
#[test]
fn the_terminal_client_a_watch_and_sends_of_one_account_share_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let mut srv = ServerProc::start_with(
        &dir.path().join("server"),
        "127.0.0.1:0".parse().unwrap(),
        |c| c.token_grace_ms = 1000,
    );
    let server = srv.addr.to_string();
    let t = Tmux {
        sock: dir.path().join("tmux.sock"),
    };
    let home = dir.path().join("a");
    t.launch("a", &home, &server);
    register(&t, "a", "alice");
    // The CLI of the same machine and account: the terminal client's data directory.
    let cli = |data: &Path, args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_confab"))
            .args(args)
            .env("CONFAB_SERVER", &server)
            .env("CONFAB_DATA_DIR", data)
            .env("CONFAB_PASSWORD", "correct horse battery")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "confab {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let alice = home.join("data").join("confab");
    let bob = dir.path().join("bob");
    cli(&bob, &["register", "bob"]);
    cli(&alice, &["add", "bob"]);
    cli(&bob, &["accept", "alice"]);
    t.wait_for("a", "bob");
    // Relaunched, the terminal client holds only the stored token (no password in memory to
    // fall back on), like the watch and the sends.
    t.line("a", "/quit");
    let deadline = Instant::now() + WAIT;
    while t.alive("a") {
        assert!(Instant::now() < deadline, "confab did not exit on /quit");
        std::thread::sleep(Duration::from_millis(100));
    }
    t.launch("a", &home, &server);
    t.wait("a", "the main screen", |s| {
        s.contains("bob") && s.contains("online")
    });
    let watch_out = dir.path().join("watch.jsonl");
    let mut watch = Command::new(env!("CARGO_BIN_EXE_confab"))
        .arg("watch")
        .env("CONFAB_SERVER", &server)
        .env("CONFAB_DATA_DIR", &alice)
        .env_remove("CONFAB_PASSWORD")
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&watch_out).unwrap())
        .spawn()
        .unwrap();
    for i in 0..30 {
        if i == 10 || i == 20 {
            // Every token used so far is past its grace: one held in memory is dead.
            std::thread::sleep(Duration::from_millis(1300));
            srv.kill();
            t.wait_for("a", "OFFLINE");
            srv.restart();
            t.wait("a", "online again", |s| {
                s.contains("online") && !s.contains("OFFLINE")
            });
        }
        cli(
            &alice,
            &["send", "--to", "bob", &format!("shared message {i:02}")],
        );
    }
    let screen = t.wait_for("a", "shared message 29");
    assert_eq!(screen.matches("shared message 29").count(), 1, "{screen}");
    assert!(!screen.contains("log in"), "{screen}");
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(&watch_out).unwrap_or_default();
        if text.contains("shared message 29") {
            for i in 0..30 {
                let m = format!("\"shared message {i:02}\"");
                assert_eq!(text.matches(&m).count(), 1, "{m}: {text}");
            }
            break;
        }
        assert!(
            watch.try_wait().unwrap().is_none(),
            "the watch ended: {text}"
        );
        assert!(
            Instant::now() < deadline,
            "the watch missed messages: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    watch.kill().unwrap();
    let _ = watch.wait();
}

/// The window title the shell had is given back when the client quits (the title stack: the
/// client pushes it at start and pops it at exit), not left saying "confab".
#[test]
fn the_window_title_is_given_back_on_exit() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tmux {
        sock: dir.path().join("tmux.sock"),
    };
    let home = dir.path().join("h");
    for d in ["config", "data", "state"] {
        std::fs::create_dir_all(home.join(d)).unwrap();
    }
    let cmd = format!(
        "printf '\\033]2;my shell\\007'; sleep 0.3; exec env -u TMUX HOME={h} XDG_CONFIG_HOME={h}/config \
         XDG_DATA_HOME={h}/data XDG_STATE_HOME={h}/state TERM=xterm-256color LANG=C.UTF-8 \
         {bin} --server 127.0.0.1:9",
        h = home.display(),
        bin = env!("CARGO_BIN_EXE_confab"),
    );
    let out = t.cmd(&["new-session", "-d", "-s", "w", "-x", "80", "-y", "24", &cmd]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        t.cmd(&["set-option", "-t", "w", "remain-on-exit", "on"])
            .status
            .success()
    );
    t.wait_for("w", "log in");
    let deadline = Instant::now() + WAIT;
    while t.format("w", "#{pane_title}") != "confab" {
        assert!(
            Instant::now() < deadline,
            "title {:?}",
            t.format("w", "#{pane_title}")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    t.keys("w", &["C-c"]);
    while t.format("w", "#{pane_dead}") != "1" {
        assert!(Instant::now() < deadline, "the client did not quit");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(t.format("w", "#{pane_title}"), "my shell");
}

/// The real binaries at 80x24: Up on an empty composer edits the last message (both screens
/// follow); `/notify mentions` shows in the header and lands in config.toml; a message the
/// server refuses (the peer blocked the sender a moment before) stays with its reason and what
/// to do, and Alt-X deletes it; an unfriend turns the conversation read only at once.
#[test]
fn edit_by_up_notify_levels_and_a_refused_message_in_tmux() {
    let dir = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(&dir.path().join("server"));
    let server = srv.addr.to_string();
    let t = Tmux {
        sock: dir.path().join("tmux.sock"),
    };
    let (home_a, home_b) = (dir.path().join("a"), dir.path().join("b"));
    t.launch("a", &home_a, &server);
    t.launch("b", &home_b, &server);
    register(&t, "a", "alice");
    register(&t, "b", "小明");
    t.line("a", "/add 小明 我是 alice");
    t.wait_for("b", "requests (1)");
    t.keys("b", &["F2"]);
    t.wait_for("b", "alice: 我是 alice");
    t.keys("b", &["a"]);
    t.keys("b", &["Escape"]);
    t.wait_for("a", "小明");

    // ❤️ is one cell to tmux and two to ratatui: as its row moves up into the row where the
    // "new" divider was, the cell beside it must be blank, not a piece of the divider.
    t.line("b", "❤️心 heart");
    t.wait_for("a", "heart");
    t.line("b", "第二条 second");
    let screen = t.wait_for("a", "第二条 second");
    let row = screen.lines().find(|l| l.contains("heart")).unwrap();
    assert!(
        !row.contains("❤️─") && !row.contains("❤─"),
        "a piece of the divider stayed: {row:?}"
    );

    t.line("a", "typo here 错字");
    t.wait_for("b", "typo here 错字");
    t.keys("a", &["Up"]);
    t.wait_for("a", "editing your message");
    for _ in 0..2 {
        t.keys("a", &["BSpace"]);
    }
    t.type_text("a", "改好了");
    t.keys("a", &["Enter"]);
    t.wait("b", "the edit", |s| {
        s.contains("typo here 改好了") && s.contains("(edited)")
    });
    t.wait_for("a", "typo here 改好了");

    t.line("a", "/notify mentions");
    t.wait("a", "the level in the header", |s| {
        s.lines()
            .next()
            .is_some_and(|l| l.contains("[mentions only]"))
    });
    let config = std::fs::read_to_string(home_a.join("config/confab/config.toml")).unwrap();
    assert!(
        config.contains("[notify_levels]") && config.contains("\"小明\" = \"mentions\""),
        "{config}"
    );

    // 小明 blocks alice (nothing tells her): her next message is refused by the server.
    t.line("b", "/block alice");
    t.wait_for("b", "blocked alice");
    t.line("a", "还在吗 still there?");
    let screen = t.wait_for("a", "(not sent:");
    assert!(screen.contains("Alt-X deletes"), "{screen}");
    assert!(!t.screen("b").contains("还在吗"), "never delivered");
    t.keys("a", &["M-x"]);
    t.wait("a", "the failed message deleted", |s| {
        !s.contains("(not sent:") && s.contains("deleted the unsent")
    });
    // An unfriend turns alice's conversation read only at once, no restart.
    t.line("b", "/unblock alice");
    t.wait_for("b", "unblocked alice");
    t.line("b", "/unfriend alice");
    t.wait_for("b", "alice is no longer your friend");
    t.wait_for("a", "read only: you are no longer friends");
}

/// The real binaries: alice signed in on two machines; `/devices` on one lists both, and `x`
/// twice on the other signs it out at once (back to its login screen, saying so). `/block`
/// is in the test above.
#[test]
fn the_devices_popup_signs_another_session_out_in_tmux() {
    let dir = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(&dir.path().join("server"));
    let server = srv.addr.to_string();
    let t = Tmux {
        sock: dir.path().join("tmux.sock"),
    };
    let (home_a, home_b) = (dir.path().join("a"), dir.path().join("b"));
    t.launch("a", &home_a, &server);
    register(&t, "a", "alice");
    t.launch("b", &home_b, &server);
    t.wait_for("b", "log in");
    t.line("b", "alice");
    t.line("b", "correct horse battery");
    t.wait("b", "the main screen", |s| {
        s.contains("alice") && s.contains("online")
    });
    t.line("a", "/devices");
    let screen = t.wait_for("a", "(this one)");
    assert_eq!(screen.matches("127.0.0.1").count(), 2, "{screen}");
    // The session listed second is b's (the newer one).
    t.keys("a", &["Down"]);
    t.keys("a", &["x"]);
    t.wait_for("a", "press x again to sign");
    t.keys("a", &["x"]);
    t.wait_for("a", "is signed out");
    t.wait_for("b", "the session ended");
}

/// The real binaries, server admin and user (protocol 1.5): boss, named by `--admin`, makes an
/// invitation code and deactivates bob from the terminal client; bob's client goes back to its
/// login screen at once and cannot log in until boss reactivates him. Then bob deletes his
/// account with `/delete-account`, and his name cannot log in any more.
#[test]
fn an_admin_deactivates_and_a_user_deletes_their_account_in_tmux() {
    let dir = tempfile::tempdir().unwrap();
    let addr = "127.0.0.1:0".parse().unwrap();
    let srv = ServerProc::start_with(&dir.path().join("server"), addr, |c| {
        c.admins = vec!["boss".into()];
    });
    let server = srv.addr.to_string();
    let t = Tmux {
        sock: dir.path().join("tmux.sock"),
    };
    let (home_a, home_b) = (dir.path().join("a"), dir.path().join("b"));
    t.launch("a", &home_a, &server);
    register(&t, "a", "boss");
    t.launch("b", &home_b, &server);
    register(&t, "b", "bob");
    t.line("a", "/admin invite 2");
    let screen = t.wait_for("a", "invitation for 2, copied");
    assert!(
        screen
            .lines()
            .any(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()) && l.contains('.')),
        "the code leads the status line: {screen}"
    );
    t.line("a", "/admin deactivate bob");
    t.wait_for("a", "bob is deactivated");
    t.wait_for("b", "deactivated by an administrator");
    // Logging in again is refused with the reason.
    t.keys("b", &["C-u"]);
    t.line("b", "correct horse battery");
    t.wait_for("b", "deactivated by an administrator");
    t.line("a", "/admin reactivate bob");
    t.wait_for("a", "bob may log in again");
    t.keys("b", &["C-u"]);
    t.line("b", "correct horse battery");
    t.wait("b", "the main screen", |s| {
        s.contains("bob") && s.contains("online")
    });
    // A non-admin is told no.
    t.line("b", "/admin stats");
    t.wait_for("b", "server admins only");
    t.line("b", "/delete-account");
    t.wait_for("b", "cannot be undone");
    t.type_text("b", "correct horse battery");
    t.keys("b", &["Enter"]);
    t.wait_for("b", "your account is deleted");
    t.line("b", "bob");
    t.line("b", "correct horse battery");
    t.wait_for("b", "wrong name or password");
}

mod relations;
