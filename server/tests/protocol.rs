//! The wire protocol itself, mostly with raw frames: Hello rules, the hello and idle timeouts,
//! framing and decode errors, unknown and wrong-direction bodies, req_id 0, Ping, the request
//! rate limit and in-flight cap, slow consumers and connections that send garbage.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use confab_wire::pb::{self, ErrorCode};
use confab_wire::{Body, Envelope};
use futures::StreamExt;
use prost::Message as _;
use tokio::io::AsyncWriteExt;

/// A frame: the big-endian length prefix and `payload`.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(payload.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

async fn write_raw(c: &mut Client, bytes: &[u8]) {
    c.framed.get_mut().write_all(bytes).await.expect("write");
}

/// Reads the next frame (failing on close or timeout).
async fn next_frame(c: &mut Client) -> Envelope {
    tokio::time::timeout(WAIT, c.framed.next())
        .await
        .expect("a frame in time")
        .expect("connection open")
        .expect("valid frame")
}

fn hello(major: u32) -> Body {
    Body::Hello(pb::Hello {
        protocol_major: major,
        protocol_minor: 0,
        client_name: "protocol-tests".into(),
        client_version: "0".into(),
        ..Default::default()
    })
}

fn list_friends() -> Body {
    Body::ListFriends(pb::ListFriends::default())
}

fn error_of(env: &Envelope) -> &pb::Error {
    match &env.body {
        Some(Body::Error(e)) => e,
        b => panic!("expected Error, got {b:?}"),
    }
}

#[tokio::test]
async fn the_first_frame_must_be_hello() {
    let srv = TestServer::start().await;
    let mut c = Client::raw(srv.addr).await;
    c.send_env(Envelope::new(1, Body::Ping(pb::Ping { nonce: 1 })))
        .await;
    let e = c.expect_closed_with(ErrorCode::Unauthenticated).await;
    assert!(e.fatal);

    let mut c = Client::raw(srv.addr).await;
    c.send_env(Envelope::new(1, list_friends())).await;
    c.expect_closed_with(ErrorCode::Unauthenticated).await;
}

#[tokio::test]
async fn hello_with_an_unsupported_major_is_refused() {
    let srv = TestServer::start().await;
    for major in [2, 0] {
        let mut c = Client::raw(srv.addr).await;
        c.send_env(Envelope::new(1, hello(major))).await;
        c.expect_closed_with(ErrorCode::UnsupportedVersion).await;
    }
    // Major 1 is fine, whatever the minor; the server answers with min(client, server).
    let mut c = Client::raw(srv.addr).await;
    let reply = c
        .request(Body::Hello(pb::Hello {
            protocol_major: 1,
            protocol_minor: 7,
            ..Default::default()
        }))
        .await;
    let Body::HelloOk(ok) = reply else {
        panic!("expected HelloOk, got {reply:?}")
    };
    assert_eq!(ok.protocol_major, 1);
    assert_eq!(ok.protocol_minor, confab_wire::PROTOCOL_MINOR);
    assert_eq!(ok.max_frame_bytes, 65_536);
    assert!(ok.server_time_ms > 0);
    assert!(ok.limits.is_some());
    assert!(ok.auth.is_none());
    assert!(!ok.resume_failed);
}

#[tokio::test]
async fn no_hello_in_time_is_a_timeout_even_with_keepalives() {
    let srv = TestServer::start_with(|cfg| cfg.hello_timeout = Duration::from_millis(300)).await;

    let silent = async {
        let mut c = Client::raw(srv.addr).await;
        c.expect_closed_with(ErrorCode::Timeout).await;
    };
    // Keepalives before Hello do not extend the hello timeout.
    let chatty = async {
        let mut c = Client::raw(srv.addr).await;
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut fatal = None;
        loop {
            assert!(
                tokio::time::Instant::now() < deadline,
                "keepalives kept the connection open without a Hello"
            );
            if c.framed.get_mut().write_all(&[0, 0, 0, 0]).await.is_err() {
                break;
            }
            match tokio::time::timeout(Duration::from_millis(100), c.framed.next()).await {
                Err(_) => {}
                Ok(None | Some(Err(_))) => break,
                Ok(Some(Ok(env))) => fatal = Some(error_of(&env).clone()),
            }
        }
        let e = fatal.expect("a fatal error before the close");
        assert_eq!(e.code, ErrorCode::Timeout as i32);
        assert!(e.fatal);
    };
    tokio::join!(silent, chatty);
}

#[tokio::test]
async fn idle_connections_time_out_and_keepalives_keep_them_open() {
    let srv = TestServer::start_with(|cfg| {
        cfg.heartbeat_ms = 200;
        cfg.idle_timeout_ms = 600;
    })
    .await;

    let silent = async {
        let mut c = srv.user("silent").await;
        let ok = c.hello.clone().unwrap();
        assert_eq!(ok.heartbeat_interval_ms, 200);
        assert_eq!(ok.idle_timeout_ms, 600);
        c.expect_closed_with(ErrorCode::Timeout).await;
    };
    let alive = async {
        let mut c = srv.user("alive").await;
        let start = tokio::time::Instant::now();
        while start.elapsed() < Duration::from_millis(1400) {
            write_raw(&mut c, &[0, 0, 0, 0]).await;
            // Keepalives are never answered, and the connection stays open.
            match tokio::time::timeout(Duration::from_millis(200), c.framed.next()).await {
                Err(_) => {}
                Ok(other) => panic!("unexpected frame or close after a keepalive: {other:?}"),
            }
        }
        match c.ok(Body::Ping(pb::Ping { nonce: 5 })).await {
            Body::Pong(p) => assert_eq!(p.nonce, 5),
            b => panic!("expected Pong, got {b:?}"),
        }
    };
    tokio::join!(silent, alive);
}

#[tokio::test]
async fn an_over_limit_length_prefix_is_a_fatal_protocol_error() {
    let srv = TestServer::start().await;
    for prefix in [[0xff, 0xff, 0xff, 0xff], 65_537u32.to_be_bytes()] {
        let mut c = srv.user(&format!("big{}", prefix[3])).await;
        write_raw(&mut c, &prefix).await;
        c.expect_closed_with(ErrorCode::ProtocolError).await;
    }
    // Before Hello too.
    let mut c = Client::raw(srv.addr).await;
    write_raw(&mut c, &[0xff, 0xff, 0xff, 0xff]).await;
    c.expect_closed_with(ErrorCode::ProtocolError).await;
}

#[tokio::test]
async fn an_undecodable_payload_is_a_fatal_protocol_error() {
    let srv = TestServer::start().await;
    // Field 1 with the invalid wire type 7; a varint cut short.
    for payload in [&[0x0f_u8, 0x00][..], &[0x08, 0xff][..]] {
        assert!(Envelope::decode(payload).is_err());
        let mut c = srv.client().await;
        write_raw(&mut c, &frame(payload)).await;
        c.expect_closed_with(ErrorCode::ProtocolError).await;
    }
}

#[tokio::test]
async fn invalid_utf8_in_a_string_field_is_a_fatal_protocol_error() {
    let srv = TestServer::start().await;
    let mut a = srv.user("utf8_a").await;
    let mut b = srv.user("utf8_b").await;
    let thread = befriend(&mut a, &mut b).await;

    // A valid Send, then its body "AB" replaced by the bytes ff fe.
    let good = Envelope::new(
        100,
        Body::Send(pb::Send {
            thread_id: thread,
            client_msg_id: "u1".into(),
            body: "AB".into(),
            reply_to: 0,
        }),
    )
    .encode_to_vec();
    let at = good.windows(2).position(|w| w == b"AB").unwrap();
    let mut bad = good.clone();
    bad[at] = 0xff;
    bad[at + 1] = 0xfe;
    assert!(Envelope::decode(good.as_slice()).is_ok());
    assert!(Envelope::decode(bad.as_slice()).is_err());

    write_raw(&mut a, &frame(&bad)).await;
    a.expect_closed_with(ErrorCode::ProtocolError).await;
    assert!(b.sync(thread, 0).await.is_empty(), "nothing was stored");
}

#[tokio::test]
async fn unknown_or_missing_bodies_are_unsupported_and_the_connection_stays_usable() {
    let srv = TestServer::start().await;
    let mut c = srv.user("future_client").await;

    // req_id 5 plus the unknown field 999 (golden vector decode_only_unknown_body, with 5).
    write_raw(&mut c, &frame(&[0x08, 0x05, 0xba, 0x3e, 0x02, b'x', b'y'])).await;
    let env = next_frame(&mut c).await;
    assert_eq!(env.req_id, 5);
    let e = error_of(&env);
    assert_eq!(e.code, ErrorCode::Unsupported as i32);
    assert!(!e.fatal);

    // req_id 6 and no body at all.
    write_raw(&mut c, &frame(&[0x08, 0x06])).await;
    let env = next_frame(&mut c).await;
    assert_eq!(env.req_id, 6);
    assert_eq!(error_of(&env).code, ErrorCode::Unsupported as i32);

    // With req_id 0 the unknown body is ignored: the next frame is the Pong.
    write_raw(&mut c, &frame(&[0xba, 0x3e, 0x02, b'x', b'y'])).await;
    write_raw(
        &mut c,
        &frame(&Envelope::new(7, Body::Ping(pb::Ping { nonce: 77 })).encode_to_vec()),
    )
    .await;
    let env = next_frame(&mut c).await;
    assert_eq!(env.req_id, 7);
    assert!(matches!(
        env.body,
        Some(Body::Pong(pb::Pong { nonce: 77, .. }))
    ));

    // Still usable.
    c.ok(list_friends()).await;
}

#[tokio::test]
async fn server_to_client_bodies_sent_by_a_client_are_unsupported() {
    let srv = TestServer::start().await;
    let mut c = srv.user("confused").await;
    for body in [
        Body::SendAck(pb::SendAck::default()),
        Body::Pong(pb::Pong::default()),
        Body::HelloOk(pb::HelloOk::default()),
        Body::Ok(pb::Ok {}),
        Body::AuthOk(pb::AuthOk::default()),
        Body::Error(pb::Error::default()),
        Body::MessagePush(pb::MessagePush::default()),
        Body::EventPush(pb::EventPush::default()),
    ] {
        let name = confab_wire::body_name(&body);
        let e = c.fail(body).await;
        assert_eq!(e.code, ErrorCode::Unsupported as i32, "{name}");
        assert!(!e.fatal);
    }
    c.ok(list_friends()).await;
}

/// PROTOCOL.md §3 "Wrong direction": a server-only body is `UNSUPPORTED if req_id > 0, ignored
/// if 0`.
#[tokio::test]
async fn server_to_client_bodies_with_req_id_0_are_ignored() {
    let srv = TestServer::start().await;
    let mut c = srv.user("confused0").await;
    c.send_env(Envelope::new(0, Body::SendAck(pb::SendAck::default())))
        .await;
    c.ok(list_friends()).await;
    c.no_push_where(Duration::from_millis(300), |b| matches!(b, Body::Error(_)))
        .await;
}

#[tokio::test]
async fn requests_with_req_id_0_are_refused_and_not_executed() {
    let srv = TestServer::start().await;
    let mut c = srv.user("zero_id").await;
    for body in [
        list_friends(),
        Body::CreateGroup(pb::CreateGroup {
            name: "never created".into(),
            description: String::new(),
            open: true,
        }),
    ] {
        c.send_env(Envelope::new(0, body)).await;
        // push_where asserts req_id 0.
        match c.push_where(|b| matches!(b, Body::Error(_))).await {
            Body::Error(e) => {
                assert_eq!(e.code, ErrorCode::BadRequest as i32);
                assert!(!e.fatal);
            }
            _ => unreachable!(),
        }
    }
    let Body::GroupList(groups) = c.ok(Body::ListGroups(pb::ListGroups::default())).await else {
        panic!("expected GroupList")
    };
    assert!(groups.groups.is_empty(), "CreateGroup with req_id 0 ran");
}

/// PROTOCOL.md §3: "Only Typing, DeliveredUpTo and ReadUpTo may be sent with req_id 0. Any other
/// request body with req_id 0 is not executed, and the server answers Error{BAD_REQUEST} with
/// req_id 0."
#[tokio::test]
async fn ping_with_req_id_0_is_a_bad_request() {
    let srv = TestServer::start().await;
    let mut c = srv.user("zero_ping").await;
    c.send_env(Envelope::new(0, Body::Ping(pb::Ping { nonce: 3 })))
        .await;
    let env = next_frame(&mut c).await;
    assert_eq!(env.req_id, 0);
    assert_eq!(error_of(&env).code, ErrorCode::BadRequest as i32);
}

#[tokio::test]
async fn ping_is_answered_with_the_same_nonce_and_req_id() {
    let srv = TestServer::start().await;
    // Before login...
    let mut c = srv.client().await;
    c.send_env(Envelope::new(41, Body::Ping(pb::Ping { nonce: 42 })))
        .await;
    let env = next_frame(&mut c).await;
    assert_eq!(env.req_id, 41);
    match env.body {
        Some(Body::Pong(p)) => {
            assert_eq!(p.nonce, 42);
            assert!(p.server_time_ms > 0);
        }
        b => panic!("expected Pong, got {b:?}"),
    }
    // ...and after.
    c.register("pinger").await;
    match c
        .ok(Body::Ping(pb::Ping {
            nonce: u64::MAX - 1,
        }))
        .await
    {
        Body::Pong(p) => assert_eq!(p.nonce, u64::MAX - 1),
        b => panic!("expected Pong, got {b:?}"),
    }
}

/// Writes `n` ListFriends requests (req_ids from `first`) in one go and returns the reply of
/// each, checking that every request got exactly one reply and nothing else with a req_id
/// follows.
async fn burst_of_requests(c: &mut Client, first: u64, n: u64) -> BTreeMap<u64, Body> {
    let mut bytes = Vec::new();
    for id in first..first + n {
        bytes.extend(frame(&Envelope::new(id, list_friends()).encode_to_vec()));
    }
    write_raw(c, &bytes).await;
    let mut replies = BTreeMap::new();
    while (replies.len() as u64) < n {
        let env = next_frame(c).await;
        if env.req_id == 0 {
            continue;
        }
        assert!(
            (first..first + n).contains(&env.req_id),
            "reply to an unknown request {env:?}"
        );
        let body = env.body.expect("reply body");
        assert!(
            replies.insert(env.req_id, body).is_none(),
            "two replies to request {}",
            env.req_id
        );
    }
    // No further replies.
    while let Ok(Some(Ok(env))) =
        tokio::time::timeout(Duration::from_millis(300), c.framed.next()).await
    {
        assert_eq!(env.req_id, 0, "an extra reply: {env:?}");
    }
    replies
}

#[tokio::test]
async fn the_request_rate_is_limited_per_connection() {
    let srv = TestServer::start_with(|cfg| {
        cfg.requests_per_second = 5;
        cfg.request_burst = 5;
    })
    .await;
    let mut c = srv.user("hasty").await;
    let limits = c.hello.as_ref().unwrap().limits.unwrap();
    assert_eq!((limits.requests_per_second, limits.request_burst), (5, 5));

    let replies = burst_of_requests(&mut c, 100, 20).await;
    let mut limited = 0;
    let mut served = 0;
    let mut wait = 0;
    for body in replies.values() {
        match body {
            Body::FriendList(_) => served += 1,
            Body::Error(e) => {
                assert_eq!(e.code, ErrorCode::RateLimited as i32, "{e}");
                assert!(e.retry_after_ms > 0);
                assert!(!e.fatal);
                wait = wait.max(e.retry_after_ms);
                limited += 1;
            }
            b => panic!("unexpected reply {b:?}"),
        }
    }
    assert!(served >= 1, "the burst allows some requests");
    assert!(limited >= 10, "only {limited} of 20 were limited");

    // After the advertised wait, requests go through again.
    tokio::time::sleep(Duration::from_millis(u64::from(wait))).await;
    c.ok(list_friends()).await;
}

#[tokio::test]
async fn requests_beyond_the_in_flight_cap_are_rate_limited() {
    let srv = TestServer::start_with(|cfg| cfg.max_in_flight = 2).await;
    let mut c = srv.user("pipeliner").await;
    assert_eq!(
        c.hello
            .as_ref()
            .unwrap()
            .limits
            .as_ref()
            .unwrap()
            .max_in_flight,
        2
    );
    let replies = burst_of_requests(&mut c, 100, 20).await;
    let limited: Vec<_> = replies
        .values()
        .filter_map(|b| match b {
            Body::Error(e) => Some(e),
            Body::FriendList(_) => None,
            b => panic!("unexpected reply {b:?}"),
        })
        .collect();
    assert!(!limited.is_empty(), "20 pipelined requests with a cap of 2");
    assert!(limited.len() < 20, "the first ones are served");
    for e in limited {
        assert_eq!(e.code, ErrorCode::RateLimited as i32, "{e}");
        assert!(e.retry_after_ms > 0);
    }
    c.ok(list_friends()).await;
}

/// Sends `count` messages of `body` as fast as the acks come back (a window of 8 in flight);
/// returns the acked seqs.
async fn flood(sender: &mut Client, thread: u64, from: u64, count: u64, body: &str) -> Vec<u64> {
    const WINDOW: u64 = 8;
    let mut seqs = Vec::new();
    let mut next = from;
    while next < from + count {
        let n = (from + count - next).min(WINDOW);
        for i in next..next + n {
            sender
                .send_env(Envelope::new(
                    1_000_000 + i,
                    Body::Send(pb::Send {
                        thread_id: thread,
                        client_msg_id: format!("flood-{i}"),
                        body: body.into(),
                        reply_to: 0,
                    }),
                ))
                .await;
        }
        let mut got = 0;
        while got < n {
            let env = next_frame(sender).await;
            if env.req_id == 0 {
                continue;
            }
            match env.body {
                Some(Body::SendAck(a)) => seqs.push(a.seq),
                b => panic!("expected SendAck, got {b:?}"),
            }
            got += 1;
        }
        next += n;
    }
    seqs
}

async fn member_online(c: &mut Client, group_id: u64, user_id: u64) -> bool {
    match c
        .ok(Body::ListGroupMembers(pb::ListGroupMembers {
            group_id,
            ..Default::default()
        }))
        .await
    {
        Body::GroupMemberList(l) => l
            .members
            .iter()
            .any(|m| m.user.as_ref().unwrap().user_id == user_id && m.online),
        b => panic!("expected GroupMemberList, got {b:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_stops_reading_is_dropped_while_others_keep_up() {
    // The server buffers some megabytes per connection before its small outbound queue fills
    // (its write buffer and the kernel's socket buffers), so the flood goes on, in rounds,
    // until the slow member is reported offline, up to a cap far beyond those buffers.
    const BODY_BYTES: usize = 4000;
    const ROUND: u64 = 250;
    const MAX_MESSAGES: u64 = 10_000;
    let srv = TestServer::start_with(|cfg| {
        // Small, but above the flooder's in-flight cap (32): the store answers its sends in
        // bursts (each log sync completes every batch written before it), and a reader that
        // keeps up must be able to take one burst before its connection task next runs.
        cfg.outbound_queue = 64;
        // Time for this test to start reading the dropped connection: it must then find whole
        // frames ending in the reason.
        cfg.write_timeout = Duration::from_secs(60);
        cfg.requests_per_second = 1_000_000;
        cfg.request_burst = 1_000_000;
    })
    .await;
    let mut sender = srv.user("flooder").await;
    let (gid, thread) = group(&mut sender, "firehose").await;
    let mut slow = srv.user("slowpoke").await;
    join(&mut slow, gid).await;
    let slow_id = slow.id();
    let mut healthy = srv.user("healthy").await;
    join(&mut healthy, gid).await;
    // From here on nobody reads `slow`'s socket.

    let reader = tokio::spawn(async move {
        let mut seqs = Vec::new();
        loop {
            let m = healthy.message_push(thread).await;
            if m.kind != pb::MessageKind::Text as i32 {
                continue;
            }
            if m.body == "END" {
                return (healthy, seqs);
            }
            seqs.push(m.seq);
        }
    });

    let body = "x".repeat(BODY_BYTES);
    let mut acked = Vec::new();
    let mut sent = 0;
    while sent < MAX_MESSAGES {
        acked.extend(flood(&mut sender, thread, sent, ROUND, &body).await);
        sent += ROUND;
        if !member_online(&mut sender, gid, slow_id).await {
            break;
        }
    }
    sender.send_text(thread, "end", "END").await;

    // The healthy reader got every message, in seq order.
    let (mut healthy, seqs) = reader.await.expect("reader task");
    acked.sort_unstable();
    assert_eq!(seqs.len(), acked.len(), "healthy reader missed messages");
    assert_eq!(seqs, acked, "pushes in seq order");
    healthy.ok(list_friends()).await;

    // The slow connection was dropped: reading it now gives whole frames, then SLOW_CONSUMER,
    // then the end, before everything arrived.
    let mut texts = 0u64;
    let mut reason = None;
    loop {
        match tokio::time::timeout(WAIT, slow.framed.next()).await {
            Err(_) => panic!(
                "the slow connection is still open after {sent} messages ({texts} delivered)"
            ),
            Ok(None) => break,
            Ok(Some(Err(e))) => panic!("the stream was cut mid-frame: {e}"),
            Ok(Some(Ok(env))) => {
                assert!(reason.is_none(), "a frame after the fatal error: {env:?}");
                match env.body {
                    Some(Body::MessagePush(p))
                        if p.message.as_ref().unwrap().kind == pb::MessageKind::Text as i32 =>
                    {
                        texts += 1;
                    }
                    Some(Body::Error(e)) => reason = Some(e),
                    _ => {}
                }
            }
        }
    }
    let reason = reason.expect("the reason before the close");
    assert_eq!(reason.code, ErrorCode::SlowConsumer as i32, "{reason}");
    assert!(reason.fatal);
    assert!(
        texts < sent,
        "the slow client received all {sent} messages: it was not dropped"
    );
    assert!(!member_online(&mut sender, gid, slow_id).await);
    // It can come back and catch up from the store.
    let mut back = login_as(&srv, "slowpoke").await;
    let all = back.sync(thread, 0).await;
    assert_eq!(
        all.iter()
            .filter(|m| m.kind == pb::MessageKind::Text as i32)
            .count() as u64,
        sent + 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_server_survives_connections_that_send_garbage() {
    use rand::{Rng, RngCore};

    let srv = TestServer::start().await;
    let mut before = srv.user("bystander").await;

    let mut tasks = Vec::new();
    for i in 0..200u32 {
        let garbage = {
            let mut rng = rand::rng();
            let mut v = vec![0u8; rng.random_range(1..4096)];
            rng.fill_bytes(&mut v);
            v
        };
        let addr = srv.addr;
        tasks.push(tokio::spawn(async move {
            let mut c = Client::raw(addr).await;
            // Half of them pass Hello first, so the garbage reaches the later stages too.
            if i % 2 == 0 {
                c.hello_with_token("").await;
            }
            // The server may close the connection while we write; that is fine.
            let _ = c.framed.get_mut().write_all(&garbage).await;
            let _ = tokio::time::timeout(Duration::from_millis(200), async {
                while let Some(Ok(_)) = c.framed.next().await {}
            })
            .await;
        }));
    }
    for t in tasks {
        t.await.expect("garbage task");
    }

    // Still serving: an existing connection and a new well-behaved client.
    before.ok(list_friends()).await;
    let mut after = srv.user("newcomer").await;
    match after.ok(Body::Ping(pb::Ping { nonce: 9 })).await {
        Body::Pong(p) => assert_eq!(p.nonce, 9),
        b => panic!("expected Pong, got {b:?}"),
    }
    let thread = befriend(&mut before, &mut after).await;
    after.send_text(thread, "g1", "still here").await;
    assert_eq!(before.message_push(thread).await.body, "still here");
}

#[tokio::test]
async fn a_fatal_reply_to_a_request_carries_its_req_id() {
    let srv = TestServer::start().await;
    // Hello with an unsupported major: the fatal error answers req_id 7.
    let mut c = Client::raw(srv.addr).await;
    c.send_env(Envelope::new(7, hello(2))).await;
    let env = next_frame(&mut c).await;
    assert_eq!(env.req_id, 7);
    let e = error_of(&env);
    assert_eq!(e.code, ErrorCode::UnsupportedVersion as i32);
    assert!(e.fatal);
    assert!(c.expect_closed().await.is_none(), "nothing after the error");

    // A first frame that is not Hello: the fatal error answers it.
    let mut c = Client::raw(srv.addr).await;
    c.send_env(Envelope::new(9, list_friends())).await;
    let env = next_frame(&mut c).await;
    assert_eq!(env.req_id, 9);
    assert_eq!(error_of(&env).code, ErrorCode::Unauthenticated as i32);
    assert!(error_of(&env).fatal);
    assert!(c.expect_closed().await.is_none());
}

#[tokio::test]
async fn hello_with_req_id_0_is_a_fatal_bad_request() {
    let srv = TestServer::start().await;
    let mut c = Client::raw(srv.addr).await;
    c.send_env(Envelope::new(0, hello(1))).await;
    let e = c.expect_closed_with(ErrorCode::BadRequest).await;
    assert!(e.fatal);
}

#[tokio::test]
async fn a_frame_trickled_in_byte_by_byte_does_not_count_as_traffic() {
    let srv = TestServer::start_with(|cfg| {
        cfg.heartbeat_ms = 200;
        cfg.idle_timeout_ms = 600;
    })
    .await;
    let mut c = srv.user("trickler").await;
    // A 100-byte frame announced, then one byte every 100 ms: the frame never completes in the
    // idle timeout, so the connection is idle however many bytes arrive.
    write_raw(&mut c, &100u32.to_be_bytes()).await;
    let mut fatal = None;
    for _ in 0..99 {
        if c.framed.get_mut().write_all(&[0x08]).await.is_err() {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(100), c.framed.next()).await {
            Err(_) => {}
            Ok(None | Some(Err(_))) => break,
            Ok(Some(Ok(env))) => fatal = Some(error_of(&env).clone()),
        }
    }
    let e = fatal.expect("closed with a fatal error before the frame completed");
    assert_eq!(e.code, ErrorCode::Timeout as i32);
    assert!(e.fatal);
}

#[tokio::test]
async fn a_required_id_of_0_is_a_bad_request() {
    let srv = TestServer::start().await;
    let mut c = srv.user("zero_ids").await;
    for body in [
        Body::SendFriendRequest(pb::SendFriendRequest::default()),
        Body::RespondFriendRequest(pb::RespondFriendRequest::default()),
        Body::CancelFriendRequest(pb::CancelFriendRequest::default()),
        Body::RemoveFriend(pb::RemoveFriend::default()),
        Body::JoinGroup(pb::JoinGroup::default()),
        Body::LeaveGroup(pb::LeaveGroup::default()),
        Body::ListGroupMembers(pb::ListGroupMembers::default()),
        Body::InviteToGroup(pb::InviteToGroup {
            group_id: 1,
            user_id: 0,
        }),
        Body::SyncThread(pb::SyncThread::default()),
        Body::History(pb::History::default()),
        Body::ReadUpTo(pb::ReadUpTo::default()),
        Body::Recall(pb::Recall {
            thread_id: 1,
            message_id: 0,
            client_msg_id: "r1".into(),
        }),
    ] {
        let name = confab_wire::body_name(&body);
        assert_eq!(c.fail_code(body).await, ErrorCode::BadRequest, "{name}");
    }
    // A notification with thread_id 0: the error comes with req_id 0.
    c.send_env(Envelope::new(
        0,
        Body::Typing(pb::Typing {
            thread_id: 0,
            ..Default::default()
        }),
    ))
    .await;
    match c.push_where(|b| matches!(b, Body::Error(_))).await {
        Body::Error(e) => assert_eq!(e.code, ErrorCode::BadRequest as i32),
        _ => unreachable!(),
    }
    // An id that does not exist is still NOT_FOUND.
    assert_eq!(
        c.fail_code(Body::JoinGroup(pb::JoinGroup {
            group_id: 987_654_321
        }))
        .await,
        ErrorCode::NotFound
    );
}

#[tokio::test]
async fn server_to_client_bodies_before_login_are_unsupported_too() {
    let srv = TestServer::start().await;
    let mut c = srv.client().await;
    for body in [
        Body::Pong(pb::Pong::default()),
        Body::AuthOk(pb::AuthOk::default()),
        Body::MessagePush(pb::MessagePush::default()),
    ] {
        let name = confab_wire::body_name(&body);
        let e = c.fail(body).await;
        assert_eq!(e.code, ErrorCode::Unsupported as i32, "{name}");
        assert!(!e.fatal);
    }
    // Still in HELLO_DONE: a real request is UNAUTHENTICATED, and login works.
    assert_eq!(
        c.fail_code(list_friends()).await,
        ErrorCode::Unauthenticated
    );
    c.register("late_confused").await;
    c.ok(list_friends()).await;
}

/// PROTOCOL.md §2 "Authentication requests are barriers": requests pipelined behind Hello and
/// Register run in the state those leave.
#[tokio::test]
async fn requests_pipelined_behind_hello_and_register_run_after_them() {
    let srv = TestServer::start().await;
    let mut c = Client::raw(srv.addr).await;
    c.send_env(Envelope::new(1, hello(1))).await;
    c.send_env(Envelope::new(
        2,
        Body::Register(pb::Register {
            name: "pipeliner".into(),
            password: PASSWORD.into(),
            device_name: "test".into(),
            invite_code: String::new(),
        }),
    ))
    .await;
    c.send_env(Envelope::new(3, list_friends())).await;
    c.send_env(Envelope::new(4, Body::Logout(pb::Logout::default())))
        .await;
    c.send_env(Envelope::new(5, list_friends())).await;
    let mut replies = BTreeMap::new();
    while replies.len() < 5 {
        let env = next_frame(&mut c).await;
        if env.req_id != 0 {
            replies.insert(env.req_id, env.body);
        }
    }
    assert!(matches!(replies[&1], Some(Body::HelloOk(_))), "{replies:?}");
    assert!(matches!(replies[&2], Some(Body::AuthOk(_))), "{replies:?}");
    assert!(
        matches!(replies[&3], Some(Body::FriendList(_))),
        "{replies:?}"
    );
    assert!(matches!(replies[&4], Some(Body::Ok(_))), "{replies:?}");
    match &replies[&5] {
        Some(Body::Error(e)) => assert_eq!(e.code, ErrorCode::Unauthenticated as i32),
        b => panic!("expected UNAUTHENTICATED after Logout, got {b:?}"),
    }
}

/// PROTOCOL.md §8: the defaults in the limits table are what a default server announces.
#[tokio::test]
async fn hello_ok_announces_the_documented_defaults() {
    let srv = TestServer::start().await;
    let c = srv.client().await;
    let ok = c.hello.clone().unwrap();
    assert_eq!(ok.heartbeat_interval_ms, 10_000);
    assert_eq!(ok.idle_timeout_ms, 30_000);
    assert_eq!(ok.max_frame_bytes, 65_536);
    assert_eq!(
        ok.limits.unwrap(),
        pb::Limits {
            max_body_bytes: 4096,
            max_page: 200,
            max_group_members: 2000,
            max_in_flight: 32,
            requests_per_second: 200,
            request_burst: 400,
            recall_window_ms: 120_000,
            max_name_chars: 32,
            max_note_bytes: 512,
            max_reaction_kinds: 20,
        }
    );
}
