//! `confab-server admin` as an operator runs it: the real binary, against a running server
//! (its admin socket) and against the store with no server (the embedded store opened by the
//! tool; MySQL, with CONFAB_TEST_MYSQL, reached directly).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::common;

use common::*;
use confab_server::config::{Config, Registration};
use confab_wire::Body;
use confab_wire::pb::{self, ErrorCode};

/// Runs `confab-server admin ARGS` on `cfg`'s store, with `stdin` as its input.
fn admin(cfg: &Config, args: &[&str], stdin: &str) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_confab-server"));
    cmd.arg("admin")
        .args(args)
        .arg("--data-dir")
        .arg(&cfg.data_dir)
        .env_remove("CONFAB_STORE")
        .env_remove("CONFAB_BUS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(url) = &cfg.mysql_url {
        cmd.env("CONFAB_STORE", url);
    }
    let mut child = cmd.spawn().expect("confab-server runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn register(name: &str, code: &str) -> Body {
    Body::Register(pb::Register {
        name: name.into(),
        password: PASSWORD.into(),
        device_name: "test".into(),
        invite_code: code.into(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_tool_works_through_the_running_server_and_on_the_store_alone() {
    let srv = TestServer::start_with(|c| c.registration = Registration::Invite).await;
    let cfg = srv.cfg.clone();
    let run = |args: &'static [&'static str], stdin: &'static str| {
        let cfg = cfg.clone();
        tokio::task::spawn_blocking(move || admin(&cfg, args, stdin))
    };

    // An invitation for two, printed alone on stdout for scripts.
    let out = run(
        &[
            "invite",
            "create",
            "--uses",
            "2",
            "--expires",
            "1h",
            "--note",
            "团队",
        ],
        "",
    )
    .await
    .unwrap();
    let code = ok(&out).trim().to_owned();
    assert!(code.contains('.'), "{code}");
    let terms = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        terms.contains("used 0/2") && terms.contains("团队"),
        "{terms}"
    );
    let mut ann = srv.client().await;
    assert!(matches!(
        ann.ok(register("cli_ann", &code)).await,
        Body::AuthOk(_)
    ));

    let list = ok(&run(&["user", "list"], "").await.unwrap());
    assert!(list.contains("cli_ann"), "{list}");
    // Deactivated through the server: ann's connection closes at once.
    let said = ok(&run(&["user", "deactivate", "cli_ann"], "").await.unwrap());
    assert!(said.contains("deactivated"), "{said}");
    ann.expect_closed_with(ErrorCode::AccountDisabled).await;
    let show = ok(&run(&["user", "show", "CLI_ANN"], "").await.unwrap());
    assert!(show.contains("deactivated"), "{show}");
    let missing = run(&["user", "reactivate", "nobody_at_all"], "")
        .await
        .unwrap();
    assert_eq!(missing.status.code(), Some(4), "not found");
    let usage = run(&["user", "frobnicate"], "").await.unwrap();
    assert_eq!(usage.status.code(), Some(2), "a usage error");
    let stats = ok(&run(&["stats"], "").await.unwrap());
    assert!(stats.contains("users:        1 (1 deactivated)"), "{stats}");
    ok(&run(
        &["user", "reset-password", "cli_ann"],
        "a new password for ann\n",
    )
    .await
    .unwrap());
    let audit = ok(&run(&["audit"], "").await.unwrap());
    for action in ["invite.create", "user.deactivate", "user.reset_password"] {
        assert!(audit.contains(action), "{action} in {audit}");
    }

    // No server: the tool opens the store itself.
    let TestServer {
        running,
        dir: _dir,
        mut cfg,
        db: _db,
        ..
    } = srv;
    running.shutdown.cancel();
    running.task.await.unwrap();
    drop(running.service);
    let alone = admin(&cfg, &["user", "reactivate", "cli_ann"], "");
    assert!(ok(&alone).contains("reactivated"));
    let invites = ok(&admin(&cfg, &["invite", "list"], ""));
    assert!(invites.contains("used 1/2"), "{invites}");

    cfg.listen = "127.0.0.1:0".parse().unwrap();
    let again = confab_server::start(cfg.clone()).await.expect("restart");
    let mut c = Client::connect(again.addr).await;
    assert!(matches!(
        c.login("cli_ann", "a new password for ann").await,
        Body::AuthOk(_)
    ));
    again.shutdown.cancel();
    again.task.await.unwrap();
    drop(again.service);
}
