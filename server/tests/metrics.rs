//! `--metrics-listen` as an operator uses it: the real binary in a process of its own (the
//! metrics recorder is per process), scraped with a real HTTP client while the test's clients
//! make traffic it counts itself; `/readyz` during a drain; the refusal of a public address.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common;

use common::http::{get, sample};
use common::*;
use confab_wire::Body;
use confab_wire::pb::{self, ErrorCode};
use tokio::net::TcpStream;

/// A confab-server process, killed when dropped.
pub struct Proc {
    pub child: Child,
    pub addr: SocketAddr,
    pub metrics: SocketAddr,
    pub _dir: tempfile::TempDir,
    /// The MySQL database it runs on, if any (dropped after the process).
    pub db: Option<TestDb>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary on a fresh embedded store (or, with `db`, on that MySQL database) with
/// `--metrics-listen` and `args`, and waits (bounded) until `/healthz` answers.
pub async fn spawn(args: &[&str], db: Option<TestDb>) -> Proc {
    let dir = tempfile::tempdir().unwrap();
    let (port, mport) = (free_port(), free_port());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_confab-server"));
    if let Some(db) = &db {
        cmd.args(["--store", &db.url()]);
    }
    let child = cmd
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--metrics-listen", &format!("127.0.0.1:{mport}")])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(args)
        .env_remove("CONFAB_STORE")
        .env_remove("CONFAB_BUS")
        .env_remove("CONFAB_METRICS_PUBLIC")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn confab-server");
    let p = Proc {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        metrics: SocketAddr::from(([127, 0, 0, 1], mport)),
        _dir: dir,
        db,
    };
    for _ in 0..600 {
        // The chat listener is bound before the metrics endpoint serves (and a probe of it
        // here would count as a connection).
        if get(p.metrics, "/healthz").await.is_ok() {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("confab-server did not come up");
}

async fn scrape(p: &Proc) -> String {
    let (status, body) = get(p.metrics, "/metrics").await.expect("scrape");
    assert_eq!(status, 200, "{body}");
    body
}

fn code_name(e: &pb::Error) -> &'static str {
    ErrorCode::try_from(e.code).map_or("UNKNOWN", |c| c.as_str_name())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_counters_move_as_the_traffic_says() {
    // On MariaDB when CONFAB_TEST_MYSQL names one, as the rest of the harness.
    let p = spawn(&[], TestDb::create().await).await;
    let before = scrape(&p).await;
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        sample(&before, "confab_build_info", &[("version", version)]),
        1.0,
        "{before}"
    );
    assert_eq!(sample(&before, "confab_messages_stored_total", &[]), 0.0);
    assert_eq!(get(p.metrics, "/readyz").await, Ok((200, "ready\n".into())));

    let mut a = Client::connect(p.addr).await;
    a.register("metrics_a").await;
    let mut b = Client::connect(p.addr).await;
    b.register("metrics_b").await;
    let thread = befriend(&mut a, &mut b).await;

    // A failed login, counted under the code the client was given.
    let mut c = Client::connect(p.addr).await;
    let refused = match c.login("metrics_a", "not the password").await {
        Body::Error(e) => code_name(&e),
        other => panic!("expected an error, got {other:?}"),
    };

    let (mut acks, mut sends) = (0u32, 0u32);
    for round in 0..3 {
        for i in 0..10 {
            let ack = a.send_text(thread, &format!("m{round}-{i}"), "hello").await;
            sends += 1;
            acks += u32::from(!ack.duplicate);
        }
        // A retry of a stored message is acked again but stores nothing.
        let again = a.send_text(thread, &format!("m{round}-0"), "hello").await;
        assert!(again.duplicate);
        sends += 1;
        let now = scrape(&p).await;
        assert_eq!(
            sample(&now, "confab_messages_stored_total", &[]),
            f64::from(acks),
            "round {round}"
        );
        assert_eq!(
            sample(
                &now,
                "confab_requests_total",
                &[("body", "send"), ("code", "ok")]
            ),
            f64::from(sends)
        );
    }
    let after = scrape(&p).await;
    assert_eq!(
        sample(&after, "confab_registrations_total", &[("result", "ok")]),
        2.0
    );
    assert_eq!(
        sample(
            &after,
            "confab_logins_total",
            &[("method", "password"), ("result", refused)]
        ),
        1.0,
        "{after}"
    );
    assert_eq!(
        sample(&after, "confab_logins_total", &[("result", "ok")]),
        0.0
    );
    assert_eq!(
        sample(
            &after,
            "confab_connections_accepted_total",
            &[("outcome", "served")]
        ),
        3.0
    );
    assert_eq!(sample(&after, "confab_connections_open", &[]), 3.0);
    // b was pushed at least every message a stored (and the friend request's events).
    assert!(sample(&after, "confab_pushes_queued_total", &[]) >= f64::from(acks));
    // Two registrations and a login hashed a password; every batch was synced.
    assert!(sample(&after, "confab_argon2_queue_wait_seconds_count", &[]) >= 3.0);
    assert!(sample(&after, "confab_store_batch_jobs_count", &[]) >= 1.0);
    assert!(sample(&after, "confab_store_batch_jobs_sum", &[]) >= f64::from(sends));
    let durable = match p.db {
        Some(_) => "confab_store_mysql_transaction_seconds_count",
        None => "confab_store_redo_fsync_seconds_count",
    };
    assert!(sample(&after, durable, &[]) >= 1.0, "{after}");
    assert_eq!(sample(&after, "confab_slow_consumers_total", &[]), 0.0);

    // A connection that leaves is no longer open.
    drop(c);
    let mut open = 3.0;
    for _ in 0..200 {
        open = sample(&scrape(&p).await, "confab_connections_open", &[]);
        if open == 2.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(open, 2.0);
    let (status, body) = get(p.metrics, "/nothing").await.unwrap();
    assert_eq!(status, 404, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_says_not_ready_once_sigterm_starts_the_drain() {
    // A connection that never sends its PROXY header holds the drain open (up to the Hello
    // timeout), so the draining node can be asked.
    let p = spawn(
        &[
            "--proxy-protocol",
            "--hello-timeout-ms",
            "60000",
            "--shutdown-grace-ms",
            "60000",
        ],
        None,
    )
    .await;
    assert_eq!(get(p.metrics, "/readyz").await, Ok((200, "ready\n".into())));
    let _silent = TcpStream::connect(p.addr).await.unwrap();
    // Accepted before the signal (the accept loop stops at once on SIGTERM): it counts as
    // open from its accept on.
    let mut open = 0.0;
    for _ in 0..400 {
        open = sample(&scrape(&p).await, "confab_connections_open", &[]);
        if open == 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(open, 1.0);
    let pid = p.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let mut last = None;
    for _ in 0..400 {
        last = Some(get(p.metrics, "/readyz").await);
        if matches!(&last, Some(Ok((503, _)))) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        last,
        Some(Ok((503, "not ready: draining (shutting down)\n".into())))
    );
    // The process itself is still up: a liveness probe must not restart it mid-drain.
    assert_eq!(get(p.metrics, "/healthz").await, Ok((200, "ok\n".into())));
}

#[test]
fn a_public_metrics_address_is_refused_without_metrics_public() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_confab-server"))
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "0.0.0.0:0"])
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("CONFAB_METRICS_PUBLIC")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to serve metrics on 0.0.0.0:0, which is not a loopback address"),
        "{err}"
    );
    // Nothing was created: the refusal comes before the store is opened.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn version_names_the_commit() {
    let out = Command::new(env!("CARGO_BIN_EXE_confab-server"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    let expect = match std::env::var("CONFAB_GIT_COMMIT") {
        Ok(c) if !c.is_empty() => c,
        // Built outside git: the build says so rather than failing.
        _ => commit.unwrap_or_else(|| "unknown".into()),
    };
    assert_eq!(
        text.trim(),
        format!("confab-server {} ({expect})", env!("CARGO_PKG_VERSION"))
    );
}
