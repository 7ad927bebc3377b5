//! The client core against a real server: reconnect with unacked sends, the gap rule (against a
//! scripted fake server), the cache, and outbox persistence across a client restart.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use common::*;
use confab_tui::client::{Auth, Client, Draft, Event};
use confab_wire::pb;
use confab_wire::{Body, Envelope, EnvelopeCodec};
use futures::{SinkExt, StreamExt};
use tokio_util::codec::Framed;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_killed_and_restarted_mid_traffic_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut srv = ServerProc::start(dir.path());
    let (a, mut a_ev, _, _) = register(srv.addr, "rc_a").await;
    let (b, mut b_ev, b_user, _) = register(srv.addr, "rc_b").await;
    let thread = befriend(&a, &b, b_user.user_id).await;

    let n = 60;
    let mut locals = Vec::new();
    for i in 0..n {
        locals.push(a.send(thread, format!("m{i:03}")).await.unwrap());
        if i == n / 2 {
            srv.kill();
            tokio::time::sleep(Duration::from_millis(300)).await;
            srv.restart();
        }
    }
    // Every send acked exactly once.
    let mut acks: HashMap<u64, u32> = HashMap::new();
    let mut seqs_acked = Vec::new();
    until(&mut a_ev, |ev| {
        if let Event::Acked { local_id, ack } = ev {
            *acks.entry(*local_id).or_default() += 1;
            seqs_acked.push(ack.seq);
        }
        acks.len() == n
    })
    .await;
    assert!(
        acks.values().all(|c| *c == 1),
        "each send acked once: {acks:?}"
    );
    assert!(locals.iter().all(|l| acks.contains_key(l)));
    assert!(a.outbox().await.unwrap().is_empty());

    // Every message reaches b exactly once, in order.
    let mut got: BTreeMap<u64, String> = BTreeMap::new();
    let mut order = Vec::new();
    until(&mut b_ev, |ev| {
        if let Event::Message(m) = ev
            && m.thread_id == thread
        {
            assert!(
                got.insert(m.seq, m.body.clone()).is_none(),
                "seq {} delivered twice",
                m.seq
            );
            order.push(m.seq);
        }
        got.len() == n
    })
    .await;
    assert!(
        order.windows(2).all(|w| w[1] == w[0] + 1),
        "in order: {order:?}"
    );
    let bodies: Vec<String> = got.into_values().collect();
    let expect: Vec<String> = (0..n).map(|i| format!("m{i:03}")).collect();
    assert_eq!(bodies, expect, "sent order kept per thread");
}

/// A scripted server: authenticates any token, then pushes seq 1 and seq 3 of thread 5
/// (dropping 2 on purpose) and answers the client's sync.
#[tokio::test]
async fn a_gap_in_pushes_triggers_a_sync_that_fills_it() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let msg = |seq: u64| pb::ChatMessage {
        thread_id: 5,
        seq,
        message_id: 100 + seq,
        kind: pb::MessageKind::Text as i32,
        body: format!("m{seq}"),
        sender: Some(pb::User {
            user_id: 2,
            name: "peer".into(),
        }),
        ..Default::default()
    };
    let server = tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        let mut f = Framed::new(sock, EnvelopeCodec::new());
        let mut sync_since = None;
        let mut pushed = false;
        while let Some(Ok(env)) = f.next().await {
            let id = env.req_id;
            let reply = match env.body {
                Some(Body::Hello(_)) => hello_ok(1, "me", 9, "next"),
                Some(Body::SyncEvents(_)) => Body::EventPage(pb::EventPage::default()),
                Some(Body::ListThreads(_)) => Body::ThreadList(pb::ThreadList::default()),
                Some(Body::SyncThread(s)) => {
                    sync_since = Some(s.since_seq);
                    Body::MessagePage(pb::MessagePage {
                        thread_id: 5,
                        messages: vec![msg(2), msg(3)],
                        has_more: false,
                        last_seq: 3,
                    })
                }
                _ => continue,
            };
            let listed = matches!(reply, Body::ThreadList(_));
            let was_sync = matches!(reply, Body::MessagePage(_));
            f.send(Envelope::new(id, reply)).await.unwrap();
            if listed && !pushed {
                pushed = true;
                for seq in [1, 3] {
                    f.send(Envelope::push(Body::MessagePush(pb::MessagePush {
                        message: Some(msg(seq)),
                    })))
                    .await
                    .unwrap();
                }
            }
            if was_sync {
                // A late duplicate push must be ignored.
                f.send(Envelope::push(Body::MessagePush(pb::MessagePush {
                    message: Some(msg(2)),
                })))
                .await
                .unwrap();
            }
        }
        sync_since
    });

    let (client, mut events) = Client::start(config(addr, None), Auth::Token("t".into())).unwrap();
    let mut seen = Vec::new();
    until(&mut events, |ev| {
        if let Event::Message(m) = ev {
            seen.push(m.seq);
        }
        seen.len() == 3
    })
    .await;
    assert_eq!(seen, vec![1, 2, 3]);
    // Nothing more (the late duplicate is dropped).
    let extra = tokio::time::timeout(Duration::from_millis(300), async {
        while let Some(ev) = events.recv().await {
            if let Event::Message(m) = ev {
                return Some(m.seq);
            }
        }
        None
    })
    .await;
    assert!(
        matches!(extra, Err(_) | Ok(None)),
        "unexpected extra message {extra:?}"
    );
    client.shutdown().await;
    assert_eq!(
        server.await.unwrap(),
        Some(1),
        "the sync started from the cursor"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_client_shows_cached_history_offline_and_syncs_only_what_is_new() {
    let dir = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(dir.path());
    let cache = dir.path().join("client-cache.db");
    let (a, _a_ev, _, _) = register(srv.addr, "cache_a").await;
    let (b, mut b_ev, b_user, b_token) = online(
        config(srv.addr, Some(cache.clone())),
        Auth::Register {
            name: "cache_b".into(),
            password: PASSWORD.into(),
            invite: String::new(),
        },
    )
    .await;
    let thread = befriend(&a, &b, b_user.user_id).await;
    for i in 0..20 {
        a.send(thread, format!("old {i}")).await.unwrap();
    }
    let mut n = 0;
    until(&mut b_ev, |ev| {
        if matches!(ev, Event::Message(_)) {
            n += 1;
        }
        n == 20
    })
    .await;
    b.shutdown().await;

    // Offline: a client on the cache, pointed at a dead address, still shows the history.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (offline, _ev) = Client::start(
        config(dead, Some(cache.clone())),
        Auth::Token(b_token.clone()),
    )
    .unwrap();
    let history = offline.history(thread, 0, 100).await.unwrap();
    assert_eq!(history.len(), 20);
    assert_eq!(history[19].body, "old 19");
    let threads = offline.threads().await.unwrap();
    assert_eq!(
        threads
            .iter()
            .find(|(t, _)| t.thread_id == thread)
            .map(|(_, c)| *c),
        Some(20)
    );
    offline.shutdown().await;

    // Five more while b is away; b comes back and receives exactly those five.
    for i in 0..5 {
        a.send(thread, format!("new {i}")).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (b, mut b_ev) = Client::start(config(srv.addr, Some(cache)), Auth::Token(b_token)).unwrap();
    let mut fresh = Vec::new();
    until(&mut b_ev, |ev| {
        if let Event::Message(m) = ev {
            fresh.push(m.body.clone());
        }
        matches!(ev, Event::Synced)
    })
    .await;
    assert_eq!(
        fresh,
        (0..5).map(|i| format!("new {i}")).collect::<Vec<_>>(),
        "only the new messages"
    );
    b.disconnect().await.unwrap();
    let mut frames = None;
    until(&mut b_ev, |ev| {
        if let Event::Frames { received } = ev {
            frames = Some(*received);
            true
        } else {
            false
        }
    })
    .await;
    // Hello, auth, the event page, the thread list, one sync page and a few pings/pushes: far
    // fewer than the 25 messages a full re-sync would have fetched one push at a time.
    let frames = frames.unwrap();
    assert!(frames < 15, "the incremental sync used {frames} frames");
    assert_eq!(b.history(thread, 0, 100).await.unwrap().len(), 25);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_queued_offline_survives_a_client_restart_and_is_delivered_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut srv = ServerProc::start(dir.path());
    let cache = dir.path().join("outbox-cache.db");
    let (a, _a_ev, _, a_token) = online(
        config(srv.addr, Some(cache.clone())),
        Auth::Register {
            name: "ob_a".into(),
            password: PASSWORD.into(),
            invite: String::new(),
        },
    )
    .await;
    let (b, b_ev, b_user, _) = register(srv.addr, "ob_b").await;
    let thread = befriend(&a, &b, b_user.user_id).await;
    a.shutdown().await;
    b.shutdown().await;

    srv.kill();
    let (offline, _ev) = Client::start(
        config(srv.addr, Some(cache.clone())),
        Auth::Token(a_token.clone()),
    )
    .unwrap();
    offline.send(thread, "written on the train").await.unwrap();
    assert_eq!(offline.outbox().await.unwrap().len(), 1);
    offline.shutdown().await;

    srv.restart();
    let (b, mut b_ev2, _, _) = online(
        config(srv.addr, None),
        Auth::Login {
            name: "ob_b".into(),
            password: PASSWORD.into(),
        },
    )
    .await;
    drop(b_ev);
    let (a2, mut a2_ev) =
        Client::start(config(srv.addr, Some(cache)), Auth::Token(a_token)).unwrap();
    until(&mut a2_ev, |ev| matches!(ev, Event::Acked { .. })).await;
    assert!(a2.outbox().await.unwrap().is_empty());
    let mut bodies = Vec::new();
    until(&mut b_ev2, |ev| {
        if let Event::Message(m) = ev {
            bodies.push(m.body.clone());
        }
        !bodies.is_empty()
    })
    .await;
    // Let any duplicate arrive, then check the store too.
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Some(ev) = b_ev2.try_recv() {
        if let Event::Message(m) = ev {
            bodies.push(m.body);
        }
    }
    assert_eq!(bodies, vec!["written on the train".to_owned()]);
    let Body::MessagePage(page) = b
        .request(Body::SyncThread(pb::SyncThread {
            thread_id: thread,
            since_seq: 0,
            limit: 0,
        }))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(page.messages.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_reach_the_peer_without_a_reply() {
    let dir = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(dir.path());
    let (a, _a_ev, a_user, _) = register(srv.addr, "nt_a").await;
    let (b, mut b_ev, b_user, _) = register(srv.addr, "nt_b").await;
    let thread = befriend(&a, &b, b_user.user_id).await;
    let ack = a
        .send_acked(thread, "read me", Duration::from_secs(10))
        .await
        .unwrap();
    // Typing: no reply is awaited (it would time out as a request); the peer sees it.
    a.notify(Body::Typing(pb::Typing {
        thread_id: thread,
        ..Default::default()
    }))
    .await
    .unwrap();
    until(&mut b_ev, |e| {
        matches!(e, Event::Typing(t) if t.thread_id == thread
            && t.user.as_ref().is_some_and(|u| u.user_id == a_user.user_id))
    })
    .await;
    // ReadUpTo from b: a read receipt for b's marker.
    b.notify(Body::ReadUpTo(pb::ReadUpTo {
        thread_id: thread,
        seq: ack.seq,
    }))
    .await
    .unwrap();
    until(
        &mut b_ev,
        |e| matches!(e, Event::ReadReceipt(r) if r.thread_id == thread && r.read_seq == ack.seq),
    )
    .await;
}

/// A read marker set while the server is down (the connection dropped under it) is sent
/// after the reconnect: the server's marker moves, and the sender sees the read receipt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_marker_set_while_offline_reaches_the_server_after_the_reconnect() {
    let dir = tempfile::tempdir().unwrap();
    let mut srv = ServerProc::start(dir.path());
    let (a, mut a_ev, _, _) = register(srv.addr, "rm_a").await;
    let (b, mut b_ev, b_user, _) = register(srv.addr, "rm_b").await;
    let thread = befriend(&a, &b, b_user.user_id).await;
    let ack = a
        .send_acked(thread, "read me", Duration::from_secs(10))
        .await
        .unwrap();
    until(
        &mut b_ev,
        |ev| matches!(ev, Event::Message(m) if m.seq == ack.seq),
    )
    .await;
    srv.kill();
    until(&mut b_ev, |ev| {
        matches!(
            ev,
            Event::State(confab_tui::client::ConnState::Offline { .. })
        )
    })
    .await;
    b.mark_read(thread, ack.seq).await.unwrap();
    srv.restart();
    // a sees it as a receipt, or (reconnecting after b sent it) in its listing.
    until(&mut a_ev, |ev| match ev {
        Event::ReadReceipt(r) => r.thread_id == thread && r.read_seq == ack.seq,
        Event::Thread(t) => t.thread_id == thread && t.peer_read_seq == ack.seq,
        _ => false,
    })
    .await;
    let t = b.thread(thread).await.unwrap();
    assert_eq!(t.read_seq, ack.seq, "the server has the marker");
}

/// A message the server refuses for good (over its body limit) leaves the outbox for the
/// failed messages, which outlive a client restart until discarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_message_is_kept_as_failed_across_a_restart_until_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(dir.path());
    let cache = dir.path().join("failed-cache.db");
    let (a, mut a_ev, _, a_token) = online(
        config(srv.addr, Some(cache.clone())),
        Auth::Register {
            name: "fl_a".into(),
            password: PASSWORD.into(),
            invite: String::new(),
        },
    )
    .await;
    let (b, _b_ev, b_user, _) = register(srv.addr, "fl_b").await;
    let thread = befriend(&a, &b, b_user.user_id).await;
    let big = "日志".repeat(1000); // 6,000 bytes, over the default 4,096
    a.send(thread, &big).await.unwrap();
    let mut code = 0;
    until(&mut a_ev, |ev| match ev {
        Event::SendFailed { error, .. } => {
            code = error.code;
            true
        }
        _ => false,
    })
    .await;
    assert_eq!(code, pb::ErrorCode::TooLarge as i32);
    assert!(a.outbox().await.unwrap().is_empty());
    assert_eq!(a.failed().await.unwrap().len(), 1);
    a.shutdown().await;

    let (a2, _a2_ev) = Client::start(config(srv.addr, Some(cache)), Auth::Token(a_token)).unwrap();
    let failed = a2.failed().await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(
        (failed[0].thread_id, failed[0].body.as_str(), failed[0].code),
        (thread, big.as_str(), pb::ErrorCode::TooLarge as i32)
    );
    a2.discard(failed[0].local_id).await.unwrap();
    assert!(a2.failed().await.unwrap().is_empty());
    a2.shutdown().await;
}

/// A read marker that moves after the thread was listed (the reader's own receipt) is kept in
/// the cache: a client started offline on it knows how far the thread was read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_marker_reached_is_in_the_cache_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(dir.path());
    let cache = dir.path().join("marker-cache.db");
    let (a, _a_ev, _, _) = register(srv.addr, "mk_a").await;
    let (b, mut b_ev, b_user, b_token) = online(
        config(srv.addr, Some(cache.clone())),
        Auth::Register {
            name: "mk_b".into(),
            password: PASSWORD.into(),
            invite: String::new(),
        },
    )
    .await;
    let thread = befriend(&a, &b, b_user.user_id).await;
    for i in 0..3 {
        a.send(thread, format!("m{i}")).await.unwrap();
    }
    let mut last = 0;
    until(&mut b_ev, |ev| {
        if let Event::Message(m) = ev {
            last = m.seq;
        }
        last >= 3
    })
    .await;
    b.mark_read(thread, last).await.unwrap();
    until(&mut b_ev, |ev| {
        matches!(ev, Event::ReadReceipt(r) if r.thread_id == thread && r.read_seq == last
            && r.user.as_ref().is_some_and(|u| u.user_id == b_user.user_id))
    })
    .await;
    b.shutdown().await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (offline, _ev) = Client::start(config(dead, Some(cache)), Auth::Token(b_token)).unwrap();
    let threads = offline.threads().await.unwrap();
    let t = threads.iter().find(|(t, _)| t.thread_id == thread).unwrap();
    assert_eq!(t.0.read_seq, last);
    offline.shutdown().await;
}

/// Replies and reactions (1.7) through the client core: the cache applies the reaction
/// entries to their message and keeps the reply's quote, so a client started offline on it
/// shows both; a reply queued in the outbox keeps what it answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactions_and_a_reply_are_in_the_cache_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(dir.path());
    let cache = dir.path().join("relations-cache.db");
    let (a, _a_ev, _, _) = register(srv.addr, "rc_a").await;
    let (b, mut b_ev, b_user, b_token) = online(
        config(srv.addr, Some(cache.clone())),
        Auth::Register {
            name: "rc_b".into(),
            password: PASSWORD.into(),
            invite: String::new(),
        },
    )
    .await;
    let thread = befriend(&a, &b, b_user.user_id).await;
    let asked = a
        .send_acked(thread, "明天开会吗？", Duration::from_secs(10))
        .await
        .unwrap();
    until(
        &mut b_ev,
        |ev| matches!(ev, Event::Message(m) if m.seq == asked.seq),
    )
    .await;
    // b answers it; both react to the question, a takes its own back.
    let reply = b
        .send_acked(
            thread,
            Draft::reply("开，十点", asked.message_id),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    b.react(thread, asked.message_id, "👍", false)
        .await
        .unwrap();
    a.react(thread, asked.message_id, "👍", false)
        .await
        .unwrap();
    a.react(thread, asked.message_id, "🎉", false)
        .await
        .unwrap();
    let last = a.react(thread, asked.message_id, "🎉", true).await.unwrap();
    until(
        &mut b_ev,
        |ev| matches!(ev, Event::Message(m) if m.seq == last.seq),
    )
    .await;
    b.shutdown().await;

    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (offline, _ev) = Client::start(config(dead, Some(cache)), Auth::Token(b_token)).unwrap();
    let history = offline.history(thread, 0, 100).await.unwrap();
    let q = history
        .iter()
        .find(|m| m.message_id == asked.message_id)
        .unwrap();
    let counts: Vec<(&str, u32, bool)> = q
        .reactions
        .iter()
        .map(|r| (r.emoji.as_str(), r.count, r.mine))
        .collect();
    assert_eq!(counts, [("👍", 2, true)], "{:?}", q.reactions);
    let r = history
        .iter()
        .find(|m| m.message_id == reply.message_id)
        .unwrap();
    assert_eq!(r.reply_to, asked.message_id);
    assert_eq!(
        r.quote.as_ref().map(|q| q.excerpt.as_str()),
        Some("明天开会吗？")
    );
    // Offline, a reply waits in the outbox with what it answers.
    offline
        .send_draft(thread, Draft::reply("我也去", asked.message_id))
        .await
        .unwrap();
    let queued = offline.outbox().await.unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].reply_to, asked.message_id);
    offline.shutdown().await;
}
