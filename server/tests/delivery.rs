//! The delivery invariant and durability: every acked message appears exactly once, in seq order
//! with no gaps, in every member device's synced history; and survives SIGKILL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use confab_wire::Body;
use confab_wire::pb;

/// Sends `count` messages from `c` round-robin over `threads`, reconnecting (by resume token)
/// every `reconnect_every` sends and retrying the unacked send with the same client_msg_id.
async fn sender(
    addr: SocketAddr,
    mut c: Client,
    threads: Vec<u64>,
    count: usize,
    reconnect_every: usize,
) -> Vec<pb::SendAck> {
    let me = c.name();
    let mut acks = Vec::new();
    for i in 0..count {
        let thread = threads[i % threads.len()];
        let cmid = format!("{me}-{i}");
        let send = Body::Send(pb::Send {
            thread_id: thread,
            client_msg_id: cmid.clone(),
            body: format!("{me} says {i}"),
            reply_to: 0,
        });
        if reconnect_every > 0 && i % reconnect_every == reconnect_every - 1 {
            // Fire the send and drop the connection without reading the ack: the outcome is
            // unknown to the client, exactly as after a network failure.
            c.send_env(confab_wire::Envelope::new(999_999, send.clone()))
                .await;
            let token = c.token.clone();
            drop(c);
            c = Client::raw(addr).await;
            let ok = c.hello_with_token(&token).await;
            assert!(ok.auth.is_some(), "resume after reconnect");
        }
        let ack = match c.ok(send).await {
            Body::SendAck(a) => a,
            b => panic!("expected SendAck, got {b:?}"),
        };
        assert_eq!(ack.client_msg_id, cmid);
        acks.push(ack);
    }
    acks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acked_message_exactly_once_in_order_for_every_member() {
    let srv = TestServer::start().await;
    let n = 6;
    let mut clients = Vec::new();
    for i in 0..n {
        clients.push(srv.user(&format!("inv{i}")).await);
    }
    // Everyone is friends with the next one; everyone is in one group.
    let mut threads: HashMap<usize, Vec<u64>> = HashMap::new();
    let mut members: HashMap<u64, Vec<usize>> = HashMap::new();
    for i in 0..n {
        let j = (i + 1) % n;
        let (a, b) = if i < j {
            let (l, r) = clients.split_at_mut(j);
            (&mut l[i], &mut r[0])
        } else {
            let (l, r) = clients.split_at_mut(i);
            (&mut r[0], &mut l[j])
        };
        let t = befriend(a, b).await;
        threads.entry(i).or_default().push(t);
        threads.entry(j).or_default().push(t);
        members.insert(t, vec![i, j]);
    }
    let (gid, gthread) = group(&mut clients[0], "invariant").await;
    for c in clients.iter_mut().skip(1) {
        join(c, gid).await;
    }
    members.insert(gthread, (0..n).collect());
    for i in 0..n {
        threads.get_mut(&i).unwrap().push(gthread);
    }

    // A second device for user 0 that only receives.
    let mut watcher = srv.client().await;
    watcher.login("inv0", PASSWORD).await;

    let mut tasks = Vec::new();
    for (i, c) in clients.into_iter().enumerate() {
        let t = threads[&i].clone();
        let reconnect = if i % 2 == 0 { 7 } else { 0 };
        tasks.push(tokio::spawn(sender(srv.addr, c, t, 40, reconnect)));
    }
    let mut acked: BTreeMap<u64, Vec<pb::SendAck>> = BTreeMap::new();
    for t in tasks {
        for ack in t.await.expect("sender task") {
            acked.entry(ack.thread_id).or_default().push(ack);
        }
    }

    // Every member device syncs every thread from scratch.
    for (thread, who) in &members {
        for &i in who {
            let mut c = srv.client().await;
            c.login(&format!("inv{i}"), PASSWORD).await;
            let history = c.sync(*thread, 0).await;
            let seqs: Vec<u64> = history.iter().map(|m| m.seq).collect();
            let expect: Vec<u64> = (1..=seqs.len() as u64).collect();
            assert_eq!(seqs, expect, "thread {thread}: seqs gap-free from 1");
            let ids: Vec<u64> = history.iter().map(|m| m.message_id).collect();
            let unique: HashSet<u64> = ids.iter().copied().collect();
            assert_eq!(unique.len(), ids.len(), "thread {thread}: no message twice");
            for ack in acked.get(thread).into_iter().flatten() {
                let m = history
                    .iter()
                    .find(|m| m.message_id == ack.message_id)
                    .unwrap_or_else(|| {
                        panic!("acked message {} missing for member {i}", ack.message_id)
                    });
                assert_eq!(m.seq, ack.seq);
            }
        }
    }
    let text_in_group = acked.get(&gthread).map_or(0, Vec::len);
    assert!(text_in_group > 0);

    // The watcher device saw group pushes in seq order (pushes may be missing, never reordered
    // without a gap it can detect).
    let mut last = 0;
    while let Some(b) = watcher.pushes.pop_front() {
        if let Body::MessagePush(p) = b
            && let Some(m) = p.message
            && m.thread_id == gthread
        {
            assert!(m.seq > last, "pushes of one thread arrive in seq order");
            last = m.seq;
        }
    }
}

fn spawn_server(dir: &std::path::Path, port: u16) -> Child {
    spawn_server_with(dir, port, &[])
}

fn spawn_server_with(dir: &std::path::Path, port: u16, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_confab-server"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env("CONFAB_AUTH_PER_IP_PER_MINUTE", "100000")
        .env("CONFAB_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn confab-server")
}

async fn wait_ready(addr: SocketAddr) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server at {addr} did not start");
}

/// The real binary as a child process on a free port, ready to accept.
async fn start_child(dir: &std::path::Path) -> (Child, u16, SocketAddr) {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let child = spawn_server(dir, port);
    wait_ready(addr).await;
    (child, port, addr)
}

#[tokio::test]
async fn acked_messages_survive_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, port, addr) = start_child(dir.path()).await;

    let mut a = Client::connect(addr).await;
    a.register("durable_a").await;
    let mut b = Client::connect(addr).await;
    b.register("durable_b").await;
    let thread = befriend(&mut a, &mut b).await;

    // Pipeline sends, then kill the server the moment the last ack is read.
    let total = 300u64;
    for i in 0..total {
        a.send_env(confab_wire::Envelope::new(
            1000 + i,
            Body::Send(pb::Send {
                thread_id: thread,
                client_msg_id: format!("d{i}"),
                body: format!("durable {i}"),
                reply_to: 0,
            }),
        ))
        .await;
        if i % 30 == 29 {
            // Stay under the in-flight cap.
            let mut got = 0;
            while got < 30 {
                let env = a.recv().await.expect("frame").expect("valid");
                if env.req_id >= 1000 {
                    got += 1;
                }
            }
        }
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();

    let mut child = spawn_server(dir.path(), port);
    wait_ready(addr).await;
    let mut b = Client::connect(addr).await;
    b.login("durable_b", PASSWORD).await;
    let history = b.sync(thread, 0).await;
    assert_eq!(
        history.len() as u64,
        total,
        "every acked message is there after SIGKILL"
    );
    for (i, m) in history.iter().enumerate() {
        assert_eq!(m.seq, i as u64 + 1);
        assert_eq!(m.body, format!("durable {i}"));
    }
    // The search index was written with each message: the last one acked before the kill is
    // found (1.6).
    match b
        .ok(Body::SearchMessages(pb::SearchMessages {
            query: format!("\"durable {}\"", total - 1),
            ..Default::default()
        }))
        .await
    {
        Body::SearchResults(r) => {
            assert_eq!(r.hits.len(), 1, "{r:?}");
            assert_eq!(r.hits[0].message.as_ref().unwrap().seq, total);
        }
        other => panic!("{other:?}"),
    }
    child.kill().expect("stop");
    let _ = child.wait();
}

/// Messages in the database file's private thread, read as another process would.
fn messages_in_file(dir: &std::path::Path, thread: u64) -> u64 {
    let conn = rusqlite::Connection::open_with_flags(
        dir.join("confab.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open the database file");
    conn.query_row(
        "SELECT COUNT(*) FROM messages WHERE thread_id = ?1",
        [thread as i64],
        |r| r.get::<_, i64>(0),
    )
    .expect("count") as u64
}

/// The embedded store acknowledges a batch once its redo log record is on disk and commits
/// the database later. With that commit held off, the acked writes of a killed server are in
/// the log alone, and the restart must replay them: the same rows, ids, seqs and markers.
#[tokio::test]
async fn acked_writes_only_in_the_redo_log_come_back_after_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut child = spawn_server_with(dir.path(), port, &["--sqlite-commit-ms", "3600000"]);
    wait_ready(addr).await;

    let mut a = Client::connect(addr).await;
    a.register("replay_a").await;
    let mut b = Client::connect(addr).await;
    b.register("replay_b").await;
    let thread = befriend(&mut a, &mut b).await;
    let (group_id, gthread) = group(&mut a, "replayed").await;
    let gack = a.send_text(gthread, "g0", "in the group").await;
    // A read makes the database commit (it must show what was acked), so the last writes are
    // sends, a read marker and nothing read after them.
    let total = 60u64;
    let mut acks = Vec::new();
    for i in 0..total {
        acks.push(
            a.send_text(thread, &format!("r{i}"), &format!("replayed {i} 你好"))
                .await,
        );
    }
    b.ok(Body::ReadUpTo(pb::ReadUpTo {
        thread_id: thread,
        seq: 40,
    }))
    .await;
    let before = messages_in_file(dir.path(), thread);
    assert!(
        before < total,
        "the database file already holds all {total} messages: the log is not what is tested"
    );
    child.kill().expect("SIGKILL");
    let _ = child.wait();

    let mut child = spawn_server(dir.path(), port);
    wait_ready(addr).await;
    let mut b = Client::connect(addr).await;
    b.login("replay_b", PASSWORD).await;
    let history = b.sync(thread, 0).await;
    assert_eq!(history.len() as u64, total, "{before} were in the file");
    for (m, ack) in history.iter().zip(&acks) {
        assert_eq!((m.seq, m.message_id), (ack.seq, ack.message_id));
        assert_eq!(m.body, format!("replayed {} 你好", m.seq - 1));
    }
    let Body::ThreadList(list) = b.ok(Body::ListThreads(pb::ListThreads::default())).await else {
        panic!("expected ThreadList")
    };
    let t = list
        .threads
        .iter()
        .find(|t| t.thread_id == thread)
        .expect("the private thread");
    assert_eq!((t.last_seq, t.read_seq), (total, 40));
    // The group came back with the ids it was created with.
    let mut a = Client::connect(addr).await;
    a.login("replay_a", PASSWORD).await;
    let g = a.sync(gthread, 0).await;
    assert!(
        g.iter()
            .any(|m| m.message_id == gack.message_id && m.body == "in the group")
    );
    let Body::GroupList(groups) = a.ok(Body::ListGroups(pb::ListGroups::default())).await else {
        panic!("expected GroupList")
    };
    assert!(
        groups
            .groups
            .iter()
            .any(|x| x.group_id == group_id && x.thread_id == gthread)
    );
    // The restart committed the replay: the file holds every message, with the dedupe keys
    // a retry is checked against.
    assert_eq!(messages_in_file(dir.path(), thread), total);
    let conn = rusqlite::Connection::open_with_flags(
        dir.path().join("confab.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open the database file");
    let keyed: i64 = conn
        .query_row(
            "SELECT COUNT(DISTINCT client_msg_id) FROM messages WHERE thread_id = ?1 \
             AND client_msg_id LIKE 'r%'",
            [thread as i64],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(keyed as u64, total);
    child.kill().expect("stop");
    let _ = child.wait();
}

#[tokio::test]
async fn sigterm_says_goodbye_and_exits_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, _, addr) = start_child(dir.path()).await;
    let mut a = Client::connect(addr).await;
    a.register("term_a").await;

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let e = a
        .closed_with()
        .await
        .expect("a goodbye frame before the close");
    assert_eq!(
        e.code,
        confab_wire::pb::ErrorCode::ShuttingDown as i32,
        "{e}"
    );
    assert!(e.retry_after_ms > 0);

    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "clean exit status: {exit}");
}
