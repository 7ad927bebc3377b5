//! confab-load's scenarios in short runs against a real server, and its loss detector against a
//! scripted server that acknowledges a message but never delivers it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::ServerProc;
use confab_tui::load::{self, LoadOpts, LoginKinds, MixedPlan, Pace, Report, UserRecord, Users};
use confab_wire::pb;
use confab_wire::{Body, Envelope, EnvelopeCodec};
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_util::codec::Framed;

fn short(opts: &mut LoadOpts) {
    opts.duration = Duration::from_secs(2);
    opts.warmup = Duration::from_millis(300);
    opts.drain = Duration::from_secs(3);
}

/// Nothing lost, duplicated, reordered or unmatched; every send answered and acked; every
/// acked message delivered to every recipient; the latency counts match the counters.
fn assert_adds_up(r: &Report) {
    let s = r.summary();
    assert!(r.clean(), "{s}");
    assert!(r.mismatches.is_empty(), "{s}");
    assert_eq!(r.sent, r.acked + r.failed + r.unanswered, "{s}");
    assert_eq!((r.failed, r.unanswered, r.unexpected), (0, 0, 0), "{s}");
    assert_eq!(r.delivered, r.expected, "{s}");
    assert_eq!(r.ack_us.len(), r.acked, "{s}");
    assert_eq!(r.deliver_us.len(), r.delivered, "{s}");
}

async fn setup(
    dir: &std::path::Path,
    srv: &ServerProc,
    n: usize,
    group_size: usize,
) -> (LoadOpts, Users) {
    let mut opts = LoadOpts::new(srv.addr.to_string());
    short(&mut opts);
    let file = dir.join("users.jsonl");
    let users = Users::setup(&opts, Some(file), "lt", n, true, group_size, 4)
        .await
        .unwrap();
    assert_eq!(users.all().len(), n);
    (opts, users)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dm_runs_clean_in_every_pace_with_counters_that_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(dir.path());
    let (opts, mut users) = setup(dir.path(), &srv, 6, 0).await;
    assert_eq!(users.pairs().len(), 3);

    let r = load::dm(&opts, &mut users, 3, 64, Pace::Delivery)
        .await
        .unwrap();
    assert_adds_up(&r);
    assert!(r.sent > 10, "{}", r.summary());
    assert_eq!(r.expected, r.acked, "one recipient per message");
    users.save().unwrap();

    // The tokens written back are current: a second run logs in by token again.
    let mut again = Users::load(&dir.path().join("users.jsonl")).unwrap();
    let r = load::dm(&opts, &mut again, 2, 16, Pace::Ack).await.unwrap();
    assert_adds_up(&r);
    assert!(r.delivered > 0);

    // The same over raw connections (`dm --wire`), in both paces; its tokens are written back
    // too.
    let r = load::dm_wire(&opts, &mut again, 3, 64, Pace::Delivery)
        .await
        .unwrap();
    assert_adds_up(&r);
    assert!(r.sent > 10, "{}", r.summary());
    assert_eq!(r.expected, r.acked, "one recipient per message");
    let r = load::dm_wire(&opts, &mut again, 2, 16, Pace::Ack)
        .await
        .unwrap();
    assert_adds_up(&r);
    assert!(r.delivered > 0);

    // A fixed rate: 20 messages per second per pair for 2 s.
    let mut fixed = opts.clone();
    fixed.rate = 20.0;
    let r = load::dm(&fixed, &mut again, 1, 64, Pace::Delivery)
        .await
        .unwrap();
    assert_adds_up(&r);
    // Not a performance check: the rate option must pace, not flood (a loaded machine may lag).
    assert!((15..=45).contains(&r.sent), "{}", r.summary());

    let mut opts = opts.clone();
    opts.duration = Duration::from_millis(200);
    let r = load::idle(&opts, &mut again, 12, None).await.unwrap();
    assert_eq!(r.connections, 12, "{}", r.summary());
    assert!(r.errors.is_empty(), "{}", r.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_fan_out_is_counted_at_every_member() {
    let dir = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(dir.path());
    let (opts, mut users) = setup(dir.path(), &srv, 8, 4).await;
    let groups = users.groups();
    assert_eq!(groups.len(), 2);
    assert!(groups.iter().all(|(_, m)| m.len() == 4));
    let r = load::group(&opts, &mut users, 2, 2, 64).await.unwrap();
    assert_adds_up(&r);
    assert!(r.acked > 10, "{}", r.summary());
    assert_eq!(r.expected, 3 * r.acked, "three other members per message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_by_token_and_by_password_are_measured() {
    let dir = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(dir.path());
    let (mut opts, mut users) = setup(dir.path(), &srv, 4, 0).await;
    opts.duration = Duration::from_secs(1);
    opts.warmup = Duration::from_millis(100);
    let kinds = LoginKinds {
        token: true,
        password: true,
    };
    let before = users.clone();
    let r = load::login(&opts, &mut users, 2, kinds).await.unwrap();
    assert!(r.errors.is_empty(), "{}", r.summary());
    assert!(
        r.token_logins > 0 && r.password_logins > 0,
        "{}",
        r.summary()
    );
    assert_eq!(r.token_login_us.len(), r.token_logins);
    assert!(r.clean(), "{}", r.summary());
    // Every resume rotated the token; the newest ones work for the next run.
    assert_eq!(users.changed_tokens(&before).len(), 4);
    opts.duration = Duration::from_millis(300);
    let kinds = LoginKinds {
        token: true,
        password: false,
    };
    let r = load::login(&opts, &mut users, 4, kinds).await.unwrap();
    assert!(r.errors.is_empty() && r.token_logins > 0, "{}", r.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_storm_every_client_resyncs_and_holds_the_last_message() {
    let dir = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(dir.path());
    let (mut opts, mut users) = setup(dir.path(), &srv, 6, 0).await;
    opts.warmup = Duration::from_millis(200);
    let r = load::storm(&opts, &mut users, 3, 2, 64).await.unwrap();
    assert_adds_up(&r);
    assert_eq!(r.resynced, 12, "6 clients x 2 storms: {}", r.summary());
    assert_eq!(r.acked, 6, "{}", r.summary());
    assert_eq!(r.resync_us.len(), 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_runs_every_part_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(dir.path());
    let (opts, mut users) = setup(dir.path(), &srv, 20, 4).await;
    let plan = MixedPlan {
        groups: 1,
        group_senders: 2,
        pairs: 2,
        login_workers: 1,
        login_rate: 10.0,
        idle: 8,
        size: 64,
    };
    let r = load::mixed(&opts, &mut users, &plan).await.unwrap();
    assert_adds_up(&r);
    assert!(r.token_logins > 0, "{}", r.summary());
    // Group members 4, dm 4, idle 8 held connections.
    assert_eq!(r.connections, 16, "{}", r.summary());
    assert_eq!(r.expected, r.deliver_us.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_merge_into_one_report() {
    let dir = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(dir.path());
    let (_, users) = setup(dir.path(), &srv, 8, 0).await;
    let file = dir.path().join("users.jsonl");
    let addr = srv.addr.to_string();
    let before = users.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_confab-load"))
            .args(["--server", &addr, "--users"])
            .arg(&file)
            .args([
                "--duration",
                "2",
                "--warmup",
                "0.3",
                "--drain",
                "3",
                "--processes",
                "2",
                "--json",
                "dm",
                "--pairs",
                "4",
            ])
            .output()
            .expect("run confab-load")
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(text.trim()).expect("one JSON report");
    assert_eq!(v["processes"], 2, "{v}");
    let r = Report::from_json(&v).unwrap();
    assert_adds_up(&r);
    assert_eq!(r.connections, 8, "both processes' pairs: {v}");
    assert!(r.delivered > 10, "{v}");
    // The parent wrote every child's rotated tokens back.
    let after = Users::load(&dir.path().join("users.jsonl")).unwrap();
    assert_eq!(after.changed_tokens(&before).len(), 8);
}

/// Two connections (tokens "a" and "b") share thread 7. Every Send is acknowledged with the
/// next seq; every entry is pushed to the other connection, except seq `drop`, which is
/// acknowledged but never pushed nor returned by a sync: a lost message.
async fn lossy_server(listener: tokio::net::TcpListener, drop: u64) {
    type Outbox = mpsc::UnboundedSender<Envelope>;
    let peers: Arc<Mutex<HashMap<u64, Outbox>>> = Arc::default();
    let stored: Arc<Mutex<BTreeMap<u64, pb::ChatMessage>>> = Arc::default();
    let seq = Arc::new(Mutex::new(0u64));
    loop {
        let Ok((sock, _)) = listener.accept().await else {
            return;
        };
        let (peers, stored, seq) = (peers.clone(), stored.clone(), seq.clone());
        tokio::spawn(async move {
            let (mut sink, mut stream) = Framed::new(sock, EnvelopeCodec::new()).split();
            let (tx, mut rx) = mpsc::unbounded_channel::<Envelope>();
            tokio::spawn(async move {
                while let Some(env) = rx.recv().await {
                    if sink.send(env).await.is_err() {
                        return;
                    }
                }
            });
            let mut me = 0u64;
            while let Some(Ok(env)) = stream.next().await {
                let id = env.req_id;
                let reply = match env.body {
                    Some(Body::Hello(h)) => {
                        me = if h.resume_token == "a" { 1 } else { 2 };
                        peers.lock().unwrap().insert(me, tx.clone());
                        common::hello_ok(me, &format!("u{me}"), me, if me == 1 { "a" } else { "b" })
                    }
                    Some(Body::SyncEvents(_)) => Body::EventPage(pb::EventPage::default()),
                    Some(Body::ListThreads(_)) => Body::ThreadList(pb::ThreadList {
                        threads: vec![pb::Thread {
                            thread_id: 7,
                            kind: pb::ThreadKind::Private as i32,
                            last_seq: *seq.lock().unwrap(),
                            ..Default::default()
                        }],
                        has_more: false,
                    }),
                    Some(Body::Ping(p)) => Body::Pong(pb::Pong {
                        nonce: p.nonce,
                        server_time_ms: 0,
                    }),
                    Some(Body::SyncThread(s)) => Body::MessagePage(pb::MessagePage {
                        thread_id: 7,
                        messages: stored
                            .lock()
                            .unwrap()
                            .range(s.since_seq + 1..)
                            .map(|(_, m)| m.clone())
                            .collect(),
                        has_more: false,
                        last_seq: *seq.lock().unwrap(),
                    }),
                    Some(Body::Send(s)) => {
                        let n = {
                            let mut g = seq.lock().unwrap();
                            *g += 1;
                            *g
                        };
                        let m = pb::ChatMessage {
                            thread_id: 7,
                            seq: n,
                            message_id: 1000 + n,
                            sender: Some(pb::User {
                                user_id: me,
                                name: format!("u{me}"),
                            }),
                            sender_device_id: me,
                            kind: pb::MessageKind::Text as i32,
                            body: s.body.clone(),
                            ..Default::default()
                        };
                        if n != drop {
                            stored.lock().unwrap().insert(n, m.clone());
                            let other = if me == 1 { 2 } else { 1 };
                            if let Some(p) = peers.lock().unwrap().get(&other) {
                                let _ =
                                    p.send(Envelope::push(Body::MessagePush(pb::MessagePush {
                                        message: Some(m),
                                    })));
                            }
                        }
                        Body::SendAck(pb::SendAck {
                            thread_id: 7,
                            message_id: 1000 + n,
                            seq: n,
                            server_ts_ms: 0,
                            duplicate: false,
                            client_msg_id: s.client_msg_id,
                        })
                    }
                    _ => continue,
                };
                if id != 0 && tx.send(Envelope::new(id, reply)).is_err() {
                    return;
                }
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_acked_but_never_delivered_is_reported_lost() {
    // A server of its own per run: each drops the third message it is sent.
    let lossy = || async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(lossy_server(listener, 3));
        addr
    };
    let addr = lossy().await;
    let mut opts = LoadOpts::new(addr.to_string());
    opts.duration = Duration::from_secs(7); // past the 5 s stall guard, so the pair goes on
    opts.warmup = Duration::ZERO;
    opts.drain = Duration::from_secs(1);
    let record = |name: &str, id: u64, token: &str, peer: &str| UserRecord {
        name: name.into(),
        user_id: id,
        token: token.into(),
        threads: [(peer.to_owned(), 7u64)].into_iter().collect(),
        groups: Vec::new(),
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.jsonl");
    let lines = [record("u1", 1, "a", "u2"), record("u2", 2, "b", "u1")]
        .iter()
        .map(|u| serde_json::to_string(u).unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&file, lines).unwrap();
    // The binary, as an operator runs it: JSON out, exit status 1 on loss.
    let run = |wire: bool, addr: std::net::SocketAddr| {
        let file = file.clone();
        tokio::task::spawn_blocking(move || {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_confab-load"));
            cmd.args(["--server", &addr.to_string(), "--users"])
                .arg(&file)
                .args([
                    "--duration",
                    "7",
                    "--warmup",
                    "0",
                    "--drain",
                    "1",
                    "--json",
                    "dm",
                    "--pairs",
                    "1",
                ]);
            if wire {
                cmd.arg("--wire");
            }
            cmd.output().expect("run confab-load")
        })
    };
    // Over raw connections there is no gap rule: the pair stalls on the dropped message until
    // the 5 s guard sends again, and what follows arrives.
    let out = run(true, lossy().await).await.unwrap();
    assert_eq!(out.status.code(), Some(1), "exit status 1 on loss (--wire)");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["lost"], 1, "{report}");
    assert_eq!(report["duplicated"], 0, "{report}");
    assert!(report["delivered"].as_u64().unwrap() >= 2, "{report}");
    let out = run(false, addr).await.unwrap();
    let _ = &opts;
    assert_eq!(
        out.status.code(),
        Some(1),
        "exit status 1 when something was lost"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    // Seq 3 was dropped; the receiver cannot pass the gap, so what followed is lost too.
    assert!(report["lost"].as_u64().unwrap() >= 1, "{report}");
    assert_eq!(report["duplicated"], 0, "{report}");
    assert!(report["acked"].as_u64().unwrap() >= 3, "{report}");
    assert_eq!(
        report["delivered"], 2,
        "only what came before the drop arrived: {report}"
    );
}
