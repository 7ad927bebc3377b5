//! confab-load's scenarios in short runs against a real server, and its loss detector against a
//! scripted server that acknowledges a message but never delivers it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::ServerProc;
use confab_tui::load::{self, LoadOpts, UserRecord, Users};
use confab_wire::pb;
use confab_wire::{Body, Envelope, EnvelopeCodec};
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_util::codec::Framed;

fn short(opts: &mut LoadOpts) {
    opts.duration = Duration::from_secs(2);
    opts.warmup = Duration::from_millis(300);
    opts.drain = Duration::from_secs(1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_dm_and_idle_run_clean_with_counters_that_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(dir.path());
    let mut opts = LoadOpts::new(srv.addr.to_string());
    short(&mut opts);
    let file = dir.path().join("users.jsonl");
    let mut users = Users::setup(&opts, Some(file.clone()), "lt", 6, true, 4)
        .await
        .unwrap();
    assert_eq!(users.all().len(), 6);
    assert_eq!(users.pairs().len(), 3);

    let r = load::dm(&opts, &mut users, 3, 64).await.unwrap();
    assert!(r.clean(), "{}", r.summary());
    assert!(r.sent > 10, "{}", r.summary());
    assert_eq!(
        r.sent,
        r.acked + r.failed,
        "sent = acked + failed: {}",
        r.summary()
    );
    assert_eq!(r.unexpected, 0);
    assert!(
        r.delivered + 3 >= r.acked,
        "every acked message delivered: {}",
        r.summary()
    );
    assert_eq!(r.deliver_us.len(), r.delivered);
    users.save().unwrap();

    // The tokens written back are current: a second run logs in by token again.
    let mut again = Users::load(&file).unwrap();
    let r = load::dm(&opts, &mut again, 1, 16).await.unwrap();
    assert!(r.clean() && r.delivered > 0, "{}", r.summary());

    let mut opts = opts.clone();
    opts.duration = Duration::from_millis(200);
    let r = load::idle(&opts, &mut again, 12, None).await.unwrap();
    assert_eq!(r.connections, 12, "{}", r.summary());
    assert!(r.errors.is_empty(), "{}", r.summary());
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
                        Body::HelloOk(pb::HelloOk {
                            protocol_major: 1,
                            heartbeat_interval_ms: 10_000,
                            idle_timeout_ms: 30_000,
                            max_frame_bytes: 65_536,
                            auth: Some(pb::AuthOk {
                                user: Some(pb::User {
                                    user_id: me,
                                    name: format!("u{me}"),
                                }),
                                device_id: me,
                                resume_token: if me == 1 { "a".into() } else { "b".into() },
                                last_event_seq: 0,
                            }),
                            ..Default::default()
                        })
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(lossy_server(listener, 3));
    let mut opts = LoadOpts::new(addr.to_string());
    opts.duration = Duration::from_secs(7); // past the 5 s stall guard, so the pair goes on
    opts.warmup = Duration::ZERO;
    opts.drain = Duration::from_secs(1);
    let record = |name: &str, id: u64, token: &str, peer: &str| UserRecord {
        name: name.into(),
        user_id: id,
        token: token.into(),
        threads: [(peer.to_owned(), 7u64)].into_iter().collect(),
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
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_confab-load"))
            .args(["--server", &addr.to_string(), "--users"])
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
            ])
            .output()
            .expect("run confab-load")
    })
    .await
    .unwrap();
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
