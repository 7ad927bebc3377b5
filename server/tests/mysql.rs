//! MySQL/MariaDB-specific behaviour: concurrent writers on one thread (several nodes on one
//! database), connections killed during a burst, exact round trips of awkward text, batches
//! rolled back by a deadlock or a lock wait timeout, MySQL unreachable at start and lost while
//! running, nodes started together on an empty database. They need `CONFAB_TEST_MYSQL`
//! (scripts/test.sh sets it and runs them with --include-ignored), except the one about an
//! unreachable MySQL, which needs no database at all.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use confab_server::service::Service;
use confab_server::store::mysql::MysqlBackend;
use confab_server::store::{Backend, WriterStats};
use confab_wire::Body;
use confab_wire::pb::{self, ErrorCode};
use mysql_async::prelude::Queryable;
use tokio::net::{TcpListener, TcpStream};

const NEEDS_MYSQL: &str = "set CONFAB_TEST_MYSQL (scripts/test.sh does)";

async fn mysql(db: &TestDb) -> mysql_async::Conn {
    mysql_async::Conn::from_url(db.url())
        .await
        .expect("connect to the test database")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// Ignored in the plain `cargo test` (no database there); scripts/test.sh, and so CI, runs it
// against MariaDB with CONFAB_TEST_MYSQL set and --include-ignored.
#[ignore = "needs MariaDB via CONFAB_TEST_MYSQL; scripts/test.sh runs it"]
async fn concurrent_writers_on_one_thread_get_gap_free_commit_ordered_seqs() {
    let first = TestServer::start().await;
    assert!(first.db.is_some(), "{NEEDS_MYSQL}");
    // Two more nodes on the same database: three writers race for the same thread row.
    let mut cfg2 = first.cfg.clone();
    cfg2.listen = "127.0.0.1:0".parse().unwrap();
    cfg2.node_id = 2;
    let second = confab_server::start(cfg2.clone()).await.expect("node 2");
    let mut cfg3 = cfg2.clone();
    cfg3.node_id = 3;
    let third = confab_server::start(cfg3).await.expect("node 3");

    let mut owner = first.user("cw_owner").await;
    let (gid, thread) = group(&mut owner, "race").await;
    let mut senders = Vec::new();
    for (i, addr) in [first.addr, second.addr, third.addr]
        .iter()
        .cycle()
        .take(6)
        .enumerate()
    {
        let mut c = Client::connect(*addr).await;
        c.register(&format!("cw_{i}")).await;
        join(&mut c, gid).await;
        senders.push(c);
    }
    let per = 40;
    let mut tasks = Vec::new();
    for (i, mut c) in senders.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut acks = Vec::new();
            for k in 0..per {
                let cmid = format!("{i}-{k}");
                acks.push(c.send_text(thread, &cmid, &format!("s{i} m{k}")).await);
                if k % 10 == 0 {
                    // A retry of the same client_msg_id is stored once.
                    let again = c.send_text(thread, &cmid, &format!("s{i} m{k}")).await;
                    assert!(again.duplicate);
                    assert_eq!(again.seq, acks.last().unwrap().seq);
                }
            }
            acks
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    let history = owner.sync(thread, 0).await;
    let seqs: Vec<u64> = history.iter().map(|m| m.seq).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "gap-free"
    );
    let ids: HashSet<u64> = history.iter().map(|m| m.message_id).collect();
    assert_eq!(ids.len(), history.len(), "message ids unique across nodes");
    for ack in &acked {
        let m = history
            .iter()
            .find(|m| m.message_id == ack.message_id)
            .expect("acked message stored");
        assert_eq!(m.seq, ack.seq);
    }
    let texts = history
        .iter()
        .filter(|m| m.kind == pb::MessageKind::Text as i32)
        .count();
    assert_eq!(texts, 6 * per, "each send stored exactly once");
    // Within one sender, seq order is send order (commit order).
    for i in 0..6 {
        let mine: Vec<&pb::ChatMessage> = history
            .iter()
            .filter(|m| m.body.starts_with(&format!("s{i} ")))
            .collect();
        let ks: Vec<usize> = mine
            .iter()
            .map(|m| m.body[format!("s{i} m").len()..].parse().unwrap())
            .collect();
        assert_eq!(ks, (0..per).collect::<Vec<_>>());
    }
    second.shutdown.cancel();
    third.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// Ignored in the plain `cargo test` (no database there); scripts/test.sh, and so CI, runs it
// against MariaDB with CONFAB_TEST_MYSQL set and --include-ignored.
#[ignore = "needs MariaDB via CONFAB_TEST_MYSQL; scripts/test.sh runs it"]
async fn killed_mysql_connections_lose_nothing_acked_and_the_server_recovers() {
    let srv = TestServer::start().await;
    let db = srv.db.as_ref().expect(NEEDS_MYSQL);
    let mut a = srv.user("kill_a").await;
    let mut b = srv.user("kill_b").await;
    let thread = befriend(&mut a, &mut b).await;

    let mut admin = mysql(db).await;
    let mut acked = Vec::new();
    let mut unavailable = 0;
    for i in 0..300u64 {
        if i % 50 == 25 {
            // Kill every server connection to this database (not our own).
            let ids: Vec<u64> = admin
                .exec(
                    "SELECT id FROM information_schema.processlist WHERE db = ? AND id <> CONNECTION_ID()",
                    (db.name.clone(),),
                )
                .await
                .unwrap();
            for id in ids {
                let _ = admin.query_drop(format!("KILL {id}")).await;
            }
        }
        let reply = a
            .request(Body::Send(pb::Send {
                thread_id: thread,
                client_msg_id: format!("k{i}"),
                body: format!("burst {i}"),
                reply_to: 0,
            }))
            .await;
        match reply {
            Body::SendAck(ack) => acked.push(ack),
            Body::Error(e) => {
                assert_eq!(
                    ErrorCode::try_from(e.code),
                    Ok(ErrorCode::Unavailable),
                    "{e}"
                );
                unavailable += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        acked.len() > 200,
        "the server recovered by itself ({} acked, {unavailable} unavailable)",
        acked.len()
    );
    let stored = assert_acked_stored_gap_free(&mut admin, thread, &acked).await;
    // And it still serves.
    let after = a.send_text(thread, "after-kills", "still here").await;
    assert_eq!(after.seq, stored + 1);
}

/// Every acked message of `thread` is in the database and its seqs are 1..=n with no gap;
/// returns n.
async fn assert_acked_stored_gap_free(
    admin: &mut mysql_async::Conn,
    thread: u64,
    acked: &[pb::SendAck],
) -> u64 {
    let stored: Vec<(u64, u64)> = admin
        .exec(
            "SELECT seq, message_id FROM messages WHERE thread_id = ? ORDER BY seq",
            (thread,),
        )
        .await
        .unwrap();
    let ids: HashSet<u64> = stored.iter().map(|(_, id)| *id).collect();
    for ack in acked {
        assert!(
            ids.contains(&ack.message_id),
            "acked message {} missing",
            ack.message_id
        );
    }
    let seqs: Vec<u64> = stored.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "seqs not gap-free"
    );
    seqs.len() as u64
}

#[tokio::test]
// Ignored in the plain `cargo test` (no database there); scripts/test.sh, and so CI, runs it
// against MariaDB with CONFAB_TEST_MYSQL set and --include-ignored.
#[ignore = "needs MariaDB via CONFAB_TEST_MYSQL; scripts/test.sh runs it"]
async fn awkward_text_round_trips_exactly() {
    let srv = TestServer::start().await;
    let db = srv.db.as_ref().expect(NEEDS_MYSQL);
    // User names cannot hold quotes (letters, digits, `_-.` only); group names can.
    let names = ["Obrien", "小明_2", "Ångström", "emoji.fan", "back-slash"];
    let mut clients = Vec::new();
    for n in names {
        clients.push(srv.user(n).await);
    }
    let (first, rest) = clients.split_at_mut(1);
    let thread = befriend(&mut first[0], &mut rest[0]).await;
    let bodies = [
        "quotes ' \" `backticks` and ; DROP TABLE users; --",
        "back\\slash \\n not a newline \\\\ double",
        "4-byte emoji 👨‍👩‍👧‍👦 🇨🇳 𠜎𠜱 and CJK 中文输入法",
        "NUL-free binary-looking: \u{1}\u{7f}\u{80}\u{ff}\u{fffd}",
        "tabs\tand\nnewlines\r\n and % and _ wildcards",
    ];
    let bodies: Vec<String> = bodies
        .iter()
        .map(|b| {
            b.chars()
                .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
                .collect()
        })
        .collect();
    for (i, b) in bodies.iter().enumerate() {
        first[0].send_text(thread, &format!("aw{i}"), b).await;
    }
    let got = rest[0].sync(thread, 0).await;
    let got: Vec<&str> = got.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(got, bodies.iter().map(String::as_str).collect::<Vec<_>>());

    // Names, exactly as registered, through the API and in the table.
    for n in names {
        let Body::Profile(p) = first[0]
            .ok(Body::GetProfile(pb::GetProfile {
                user_id: 0,
                name: n.to_lowercase(),
            }))
            .await
        else {
            panic!()
        };
        assert_eq!(p.user.unwrap().name, n);
    }
    let mut conn = mysql(db).await;
    let stored: Vec<String> = conn
        .query("SELECT name FROM users ORDER BY id")
        .await
        .unwrap();
    assert_eq!(stored, names.to_vec());
    // Search with LIKE wildcards in the query matches them literally.
    let Body::UserList(list) = first[0]
        .ok(Body::SearchUsers(pb::SearchUsers {
            query: "_".into(),
            limit: 10,
        }))
        .await
    else {
        panic!()
    };
    assert_eq!(
        list.users.len(),
        1,
        "only 小明_2 contains a literal underscore"
    );

    let group_name = "it's a \"quoted\" \\ group 群 🎉";
    let (gid, _) = group(&mut first[0], group_name).await;
    let Body::GroupList(found) = first[0]
        .ok(Body::SearchGroups(pb::SearchGroups {
            query: "\"quoted\" \\".into(),
            limit: 5,
        }))
        .await
    else {
        panic!()
    };
    assert_eq!(found.groups.len(), 1);
    assert_eq!(found.groups[0].group_id, gid);
    assert_eq!(found.groups[0].name, group_name);
    let stored: Vec<String> = conn.query("SELECT name FROM chat_groups").await.unwrap();
    assert_eq!(stored, vec![group_name.to_owned()]);
}

/// The MySQL writer's counters of a server started by the harness on MariaDB.
fn writer_stats(srv: &TestServer) -> WriterStats {
    let svc = srv
        .running
        .service
        .clone()
        .downcast::<Service<MysqlBackend>>()
        .expect("a server on the MySQL store");
    svc.store().backend().stats()
}

/// host:port of the MariaDB named by CONFAB_TEST_MYSQL.
fn mysql_addr() -> String {
    let base = std::env::var("CONFAB_TEST_MYSQL").expect(NEEDS_MYSQL);
    let opts = mysql_async::Opts::from_url(&base).expect("CONFAB_TEST_MYSQL is a mysql:// URL");
    format!("{}:{}", opts.ip_or_hostname(), opts.tcp_port())
}

/// `url` with its host and port replaced by 127.0.0.1:`port` (user, password, database kept),
/// over TCP only: by default mysql_async moves a loopback connection to MySQL's Unix socket,
/// which would go around the relay.
fn via_port(url: &str, port: u16) -> String {
    let opts = mysql_async::Opts::from_url(url).expect("mysql URL");
    let auth = match (opts.user(), opts.pass()) {
        (Some(u), Some(p)) => format!("{u}:{p}@"),
        (Some(u), None) => format!("{u}@"),
        _ => String::new(),
    };
    format!(
        "mysql://{auth}127.0.0.1:{port}/{}?prefer_socket=false",
        opts.db_name().unwrap_or_default()
    )
}

/// A TCP relay from 127.0.0.1:`port` to MariaDB: the test's stand-in for the network between
/// the server and MySQL. `cut` closes the port and every relayed connection, as if MySQL went
/// away; starting a relay on the same port again brings it back.
struct Relay {
    accept: tokio::task::JoinHandle<()>,
    conns: Arc<Mutex<tokio::task::JoinSet<()>>>,
}

impl Relay {
    async fn start(port: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind the relay port");
        let target = mysql_addr();
        let conns = Arc::new(Mutex::new(tokio::task::JoinSet::new()));
        let set = conns.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let target = target.clone();
                set.lock().unwrap().spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Self { accept, conns }
    }

    /// Stops accepting and closes every relayed connection before returning.
    async fn cut(self) {
        self.accept.abort();
        let _ = self.accept.await;
        let mut conns = std::mem::take(&mut *self.conns.lock().unwrap());
        conns.shutdown().await;
    }
}

#[tokio::test]
// No database needed: nothing listens on the port the server is pointed at.
async fn unreachable_mysql_at_start_is_retried_then_the_binary_exits_with_a_readable_message() {
    // A privileged port nothing listens on: a free ephemeral port could be taken by another
    // process (another test's server) before the server tries it.
    let port = 1;
    let dir = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_confab-server"))
            .args(["--listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(dir.path())
            .args([
                "--store",
                &format!("mysql://confab:secret@127.0.0.1:{port}/confab"),
            ])
            .args(["--mysql-connect-timeout-ms", "1500"])
            .env("CONFAB_LOG", "warn")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the server gives up within its connect timeout")
    .expect("run confab-server");
    assert!(!out.status.success(), "exits with a failure status");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let retries = stdout.matches("MySQL is not reachable; retrying").count()
        + stderr.matches("MySQL is not reachable; retrying").count();
    assert!(
        retries >= 2,
        "each retry is logged\nstdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        stderr.contains(&format!("cannot reach MySQL at 127.0.0.1:{port}")),
        "the exit message says what failed: {stderr}"
    );
    assert!(!stderr.contains("secret"), "no password in the message");
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "it kept trying"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB via CONFAB_TEST_MYSQL; scripts/test.sh runs it"]
async fn server_waits_for_mysql_that_comes_up_during_start() {
    let db = TestDb::create().await.expect(NEEDS_MYSQL);
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = base_config(dir.path(), Some(&db));
    cfg.mysql_url = Some(via_port(&db.url(), port));
    cfg.mysql_connect_timeout = Duration::from_secs(20);
    let start = tokio::spawn(confab_server::start(cfg));
    // MySQL "comes up" after the server's first attempts failed.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(!start.is_finished(), "still retrying while MySQL is away");
    let relay = Relay::start(port).await;
    let running = tokio::time::timeout(Duration::from_secs(15), start)
        .await
        .expect("start completes once MySQL is reachable")
        .unwrap()
        .expect("server starts");
    let mut a = Client::connect(running.addr).await;
    a.register("late_a").await;
    let mut b = Client::connect(running.addr).await;
    b.register("late_b").await;
    let thread = befriend(&mut a, &mut b).await;
    assert_eq!(a.send_text(thread, "late-1", "hello").await.seq, 1);
    running.shutdown.cancel();
    relay.cut().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB via CONFAB_TEST_MYSQL; scripts/test.sh runs it"]
async fn lost_mysql_answers_unavailable_and_the_server_recovers_without_a_restart() {
    let port = free_port();
    let relay = Relay::start(port).await;
    let srv = TestServer::start_with(|cfg| {
        let url = cfg.mysql_url.clone().expect(NEEDS_MYSQL);
        cfg.mysql_url = Some(via_port(&url, port));
    })
    .await;
    let db = srv.db.as_ref().expect(NEEDS_MYSQL);
    let mut a = srv.user("lost_a").await;
    let mut b = srv.user("lost_b").await;
    let thread = befriend(&mut a, &mut b).await;
    let mut acked = Vec::new();
    for i in 0..20 {
        acked.push(a.send_text(thread, &format!("before-{i}"), "before").await);
    }

    // MySQL goes away: every connection drops and new ones are refused.
    relay.cut().await;
    for i in 0..5 {
        let reply = a
            .request(Body::Send(pb::Send {
                thread_id: thread,
                client_msg_id: format!("during-{i}"),
                body: "during".into(),
                reply_to: 0,
            }))
            .await;
        let Body::Error(e) = reply else {
            panic!("a send without MySQL was answered {reply:?}")
        };
        assert_eq!(
            ErrorCode::try_from(e.code),
            Ok(ErrorCode::Unavailable),
            "{e}"
        );
        let reply = b
            .request(Body::SyncThread(pb::SyncThread {
                thread_id: thread,
                since_seq: 0,
                limit: 10,
            }))
            .await;
        let Body::Error(e) = reply else {
            panic!("a read without MySQL was answered {reply:?}")
        };
        assert_eq!(
            ErrorCode::try_from(e.code),
            Ok(ErrorCode::Unavailable),
            "{e}"
        );
    }

    // MySQL is back: the same server serves again, by itself, within a bounded time.
    let relay = Relay::start(port).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut k = 0;
    let first_after = loop {
        k += 1;
        match a
            .request(Body::Send(pb::Send {
                thread_id: thread,
                client_msg_id: format!("after-{k}"),
                body: "after".into(),
                reply_to: 0,
            }))
            .await
        {
            Body::SendAck(ack) => break ack,
            Body::Error(e) if e.code == ErrorCode::Unavailable as i32 => {
                assert!(Instant::now() < deadline, "no recovery within 20 s");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("unexpected {other:?}"),
        }
    };
    acked.push(first_after);
    for i in 0..10 {
        acked.push(a.send_text(thread, &format!("later-{i}"), "later").await);
    }
    let page = b.sync(thread, 0).await;
    assert!(page.len() >= acked.len());

    // Nothing acked was lost, and seqs stayed gap-free across the outage.
    let mut admin = mysql(db).await;
    assert_acked_stored_gap_free(&mut admin, thread, &acked).await;
    relay.cut().await;
}

/// Waits until the server's writer has been stuck for a while on a thread row the test holds:
/// in a single send's row update, or in the locking read of a run of sends stored together.
async fn until_writer_waits(admin: &mut mysql_async::Conn, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: Option<u64> = admin
            .query_first(
                "SELECT COUNT(*) FROM information_schema.processlist \
                 WHERE db = DATABASE() AND time_ms > 100 \
                 AND (info LIKE 'UPDATE threads%' OR info LIKE 'SELECT j.i, t.last_seq%')",
            )
            .await
            .unwrap();
        if waiting.unwrap_or(0) >= 1 {
            return;
        }
        assert!(Instant::now() < deadline, "the writer never waited: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB via CONFAB_TEST_MYSQL; scripts/test.sh runs it"]
async fn deadlocked_batch_runs_again_and_every_send_is_acked_once() {
    // One writer, so the sends below share its batches.
    let srv = TestServer::start_with(|cfg| cfg.mysql_writers = 1).await;
    let db = srv.db.as_ref().expect(NEEDS_MYSQL);
    let mut owner = srv.user("dl_owner").await;
    let (_, thread_a) = group(&mut owner, "dl a").await;
    let (_, thread_b) = group(&mut owner, "dl b").await;
    let (_, thread_c) = group(&mut owner, "dl c").await;
    let before = writer_stats(&srv);

    let mut light = mysql(db).await;
    let mut heavy = mysql(db).await;
    let mut watch = mysql(db).await;
    // The light transaction holds thread A, so the writer waits inside its first batch...
    light.query_drop("START TRANSACTION").await.unwrap();
    light
        .exec_drop(
            "SELECT id FROM threads WHERE id = ? FOR UPDATE",
            (thread_a,),
        )
        .await
        .unwrap();
    let sends = [(thread_a, "dl-1"), (thread_c, "dl-2"), (thread_b, "dl-3")];
    for (i, (t, cmid)) in sends.iter().enumerate() {
        owner
            .send_env(confab_wire::Envelope::new(
                100 + i as u64,
                Body::Send(pb::Send {
                    thread_id: *t,
                    client_msg_id: (*cmid).into(),
                    body: format!("deadlock {i}"),
                    reply_to: 0,
                }),
            ))
            .await;
        if i == 0 {
            until_writer_waits(&mut watch, "the first batch behind thread A").await;
        }
    }
    // ...while the other two queue up behind it and will form the next batch together.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The heavy transaction changes many rows (so InnoDB picks the writer as the deadlock
    // victim) and holds thread C.
    heavy.query_drop("START TRANSACTION").await.unwrap();
    heavy
        .query_drop("CREATE TEMPORARY TABLE ballast (id INT PRIMARY KEY, v INT) ENGINE=InnoDB")
        .await
        .unwrap();
    heavy
        .query_drop("INSERT INTO ballast SELECT seq, 0 FROM seq_1_to_2000")
        .await
        .unwrap();
    heavy
        .exec_drop(
            "SELECT id FROM threads WHERE id = ? FOR UPDATE",
            (thread_c,),
        )
        .await
        .unwrap();
    // Let the first batch through; the second locks its threads in id order: thread B, then
    // it waits for thread C.
    light.query_drop("COMMIT").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    until_writer_waits(&mut watch, "the second batch behind thread C").await;
    // The heavy transaction now wants thread B: a cycle (it locked out of order, as no writer
    // does). InnoDB rolls back the writer's batch.
    heavy
        .exec_drop(
            "UPDATE threads SET activity_id = activity_id WHERE id = ?",
            (thread_b,),
        )
        .await
        .expect("the heavy transaction survives the deadlock");
    heavy.query_drop("COMMIT").await.unwrap();

    // Every send is acked exactly once, none with an error.
    let mut acks = Vec::new();
    while acks.len() < sends.len() {
        let env = owner
            .recv()
            .await
            .expect("a reply before the timeout")
            .unwrap();
        match env.body {
            Some(Body::SendAck(ack)) => acks.push((env.req_id, ack)),
            Some(Body::Error(e)) if env.req_id != 0 => panic!("send {} failed: {e}", env.req_id),
            _ => {}
        }
    }
    acks.sort_by_key(|(id, _)| *id);
    for (i, (id, ack)) in acks.iter().enumerate() {
        assert_eq!(*id, 100 + i as u64);
        assert_eq!(ack.thread_id, sends[i].0);
        assert!(!ack.duplicate);
    }
    let after = writer_stats(&srv);
    assert!(
        after.retried_batches > before.retried_batches,
        "the deadlocked batch was run again ({before:?} -> {after:?})"
    );
    // Stored once each, at the seqs acked, with no gap (each group thread has its creation
    // entry at seq 1).
    let mut admin = mysql(db).await;
    for (_, ack) in &acks {
        let rows: Vec<(u64, u64)> = admin
            .exec(
                "SELECT seq, message_id FROM messages WHERE thread_id = ? ORDER BY seq",
                (ack.thread_id,),
            )
            .await
            .unwrap();
        let seqs: Vec<u64> = rows.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
        let found: Vec<&(u64, u64)> = rows.iter().filter(|(_, m)| *m == ack.message_id).collect();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, ack.seq);
    }
    // A retry of one of them is still deduplicated.
    let again = owner.send_text(thread_c, "dl-2", "deadlock 1").await;
    assert!(again.duplicate);
    assert_eq!(again.message_id, acks[1].1.message_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB via CONFAB_TEST_MYSQL; scripts/test.sh runs it"]
async fn lock_wait_timeout_runs_the_batch_again() {
    let srv = TestServer::start_with(|cfg| {
        cfg.mysql_writers = 1;
        cfg.mysql_lock_wait_secs = 1;
    })
    .await;
    let db = srv.db.as_ref().expect(NEEDS_MYSQL);
    let mut a = srv.user("lw_a").await;
    let mut b = srv.user("lw_b").await;
    let thread = befriend(&mut a, &mut b).await;
    a.send_text(thread, "lw-0", "first").await;
    let before = writer_stats(&srv);

    // Hold the thread's row longer than the writer's 1 s lock wait timeout.
    let mut holder = mysql(db).await;
    holder.query_drop("START TRANSACTION").await.unwrap();
    holder
        .exec_drop("SELECT id FROM threads WHERE id = ? FOR UPDATE", (thread,))
        .await
        .unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1600)).await;
        holder.query_drop("COMMIT").await.unwrap();
    });
    let ack = a.send_text(thread, "lw-1", "held up").await;
    release.await.unwrap();
    assert_eq!(ack.seq, 2);
    assert!(!ack.duplicate);
    let after = writer_stats(&srv);
    assert!(
        after.retried_batches > before.retried_batches,
        "the timed-out batch was run again ({before:?} -> {after:?})"
    );
    let mut admin = mysql(db).await;
    let stored: Vec<(u64, String)> = admin
        .exec(
            "SELECT seq, client_msg_id FROM messages WHERE thread_id = ? ORDER BY seq",
            (thread,),
        )
        .await
        .unwrap();
    assert_eq!(
        stored,
        vec![(1, "lw-0".to_owned()), (2, "lw-1".to_owned())],
        "stored once, no gap"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB via CONFAB_TEST_MYSQL; scripts/test.sh runs it"]
async fn nodes_started_together_on_an_empty_database_all_come_up() {
    let db = TestDb::create().await.expect(NEEDS_MYSQL);
    let dirs: Vec<_> = (0..4)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let starts: Vec<_> = dirs
        .iter()
        .enumerate()
        .map(|(i, dir)| {
            let mut cfg = base_config(dir.path(), Some(&db));
            cfg.node_id = u16::try_from(i + 1).unwrap();
            tokio::spawn(confab_server::start(cfg))
        })
        .collect();
    let mut running = Vec::new();
    for s in starts {
        running.push(s.await.unwrap().expect("every node starts"));
    }
    let mut admin = mysql(&db).await;
    let versions: Vec<i64> = admin
        .query("SELECT version FROM schema_version")
        .await
        .unwrap();
    assert_eq!(
        versions.len(),
        1,
        "the version is recorded once: {versions:?}"
    );
    // All of them serve on the one schema.
    let mut a = Client::connect(running[0].addr).await;
    a.register("together_a").await;
    let mut b = Client::connect(running[3].addr).await;
    b.register("together_b").await;
    let thread = befriend(&mut a, &mut b).await;
    assert_eq!(b.send_text(thread, "t-1", "hi").await.seq, 1);
    for r in &running {
        r.shutdown.cancel();
    }
}

/// Sends one request without waiting for its reply.
async fn send_nowait(c: &mut Client, req_id: u64, thread_id: u64, cmid: &str, body: &str) {
    c.send_env(confab_wire::Envelope::new(
        req_id,
        Body::Send(pb::Send {
            thread_id,
            client_msg_id: cmid.into(),
            body: body.into(),
            reply_to: 0,
        }),
    ))
    .await;
}

/// The replies to requests `ids`, by request id: an ack or an error code.
async fn replies(
    c: &mut Client,
    ids: std::ops::Range<u64>,
) -> std::collections::BTreeMap<u64, Result<pb::SendAck, ErrorCode>> {
    let mut got = std::collections::BTreeMap::new();
    while got.len() < ids.clone().count() {
        let env = c.recv().await.expect("a reply before the timeout").unwrap();
        if !ids.contains(&env.req_id) {
            continue;
        }
        match env.body {
            Some(Body::SendAck(ack)) => {
                got.insert(env.req_id, Ok(ack));
            }
            Some(Body::Error(e)) => {
                got.insert(env.req_id, Err(e.code()));
            }
            other => panic!("unexpected reply to {}: {other:?}", env.req_id),
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB via CONFAB_TEST_MYSQL; scripts/test.sh runs it"]
async fn a_run_of_sends_stored_together_keeps_every_rule_of_a_single_send() {
    let srv = TestServer::start_with(|cfg| cfg.mysql_writers = 1).await;
    let db = srv.db.as_ref().expect(NEEDS_MYSQL);
    let mut owner = srv.user("run_owner").await;
    let mut other = srv.user("run_other").await;
    let mut stranger = srv.user("run_stranger").await;
    let (_, hold) = group(&mut owner, "run hold").await;
    let (_, ta) = group(&mut owner, "run a").await;
    let (gb, tb) = group(&mut owner, "run b").await;
    let (_, tc) = group(&mut stranger, "run c").await;
    join(&mut other, gb).await;
    let left = other.send_text(tb, "o-0", "before leaving").await;
    other
        .ok(Body::LeaveGroup(pb::LeaveGroup { group_id: gb }))
        .await;
    let pre = owner.send_text(ta, "pre-1", "stored before").await;
    let before = writer_stats(&srv);

    // The writer waits on a thread row this test holds, so everything below queues up and
    // forms its next batch.
    let mut light = mysql(db).await;
    let mut watch = mysql(db).await;
    light.query_drop("START TRANSACTION").await.unwrap();
    light
        .exec_drop("SELECT id FROM threads WHERE id = ? FOR UPDATE", (hold,))
        .await
        .unwrap();
    send_nowait(&mut owner, 100, hold, "h-0", "held").await;
    until_writer_waits(&mut watch, "the batch behind the held thread").await;
    let queued: [(u64, &str, &str); 8] = [
        (ta, "r-1", "first 你好 😀"),
        (tb, "r-2", "second \"quoted\" back\\slash"),
        (ta, "r-1", "first again (same client_msg_id)"),
        (tc, "r-4", "not a member"),
        (999_999_999, "r-5", "no such thread"),
        (ta, "pre-1", "a retry of a stored send"),
        (tb, "r-7", "third"),
        (ta, "r-8", "fourth"),
    ];
    for (i, (t, cmid, body)) in queued.iter().enumerate() {
        send_nowait(&mut owner, 101 + i as u64, *t, cmid, body).await;
    }
    // Another connection's sends join the same batch: one plain, one after leaving.
    send_nowait(&mut other, 200, tb, "o-1", "after leaving").await;
    send_nowait(&mut other, 201, tb, "o-0", "retry from before leaving").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    light.query_drop("COMMIT").await.unwrap();

    let mine = replies(&mut owner, 100..109).await;
    let theirs = replies(&mut other, 200..202).await;
    let ack = |id: u64| -> &pb::SendAck {
        mine[&id]
            .as_ref()
            .unwrap_or_else(|e| panic!("send {id} failed: {e:?}"))
    };
    assert!(!ack(101).duplicate && !ack(102).duplicate);
    // The repeat inside the run is answered as the first, stored once.
    assert!(ack(103).duplicate);
    assert_eq!(ack(103).message_id, ack(101).message_id);
    assert_eq!(ack(103).seq, ack(101).seq);
    assert_eq!(mine[&104], Err(ErrorCode::Forbidden));
    assert_eq!(mine[&105], Err(ErrorCode::NotFound));
    assert!(ack(106).duplicate);
    assert_eq!(ack(106).message_id, pre.message_id);
    assert!(!ack(107).duplicate && !ack(108).duplicate);
    assert_eq!(theirs[&200], Err(ErrorCode::Forbidden));
    let retried = theirs[&201]
        .as_ref()
        .expect("a retry after leaving is answered");
    assert!(retried.duplicate);
    assert_eq!(retried.message_id, left.message_id);
    // Seqs follow the queue, with no gap: thread A holds its creation entry, pre-1, then the
    // run's two new entries; thread B its creation, join, other's message, leave, then two.
    assert_eq!(ack(101).seq, pre.seq + 1);
    assert_eq!(ack(108).seq, pre.seq + 2);
    assert_eq!(ack(107).seq, ack(102).seq + 1);
    let mut admin = mysql(db).await;
    for t in [ta, tb] {
        let seqs: Vec<u64> = admin
            .exec(
                "SELECT seq FROM messages WHERE thread_id = ? ORDER BY seq",
                (t,),
            )
            .await
            .unwrap();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
        let last: Option<u64> = admin
            .exec_first("SELECT last_seq FROM threads WHERE id = ?", (t,))
            .await
            .unwrap();
        assert_eq!(last, seqs.last().copied());
    }
    // Bodies round-trip exactly, and the sender has read its own entries.
    let synced = owner.sync(ta, pre.seq).await;
    let bodies: Vec<&str> = synced.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["first 你好 😀", "fourth"]);
    let synced_b = owner.sync(tb, ack(102).seq - 1).await;
    assert_eq!(synced_b[0].body, "second \"quoted\" back\\slash");
    let read: Option<u64> = admin
        .exec_first(
            "SELECT read_seq FROM thread_members WHERE thread_id = ? AND user_id = ?",
            (ta, owner.id()),
        )
        .await
        .unwrap();
    assert_eq!(read, Some(ack(108).seq));
    let after = writer_stats(&srv);
    assert!(
        after.sent_together >= before.sent_together + 4,
        "the run was stored together ({before:?} -> {after:?})"
    );
}
