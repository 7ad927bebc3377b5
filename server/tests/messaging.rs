//! One-to-one and group messaging over real TCP: acks, pushes, dedupe, recall, edit, sync,
//! history, read receipts, typing, presence and the refusals.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::time::Duration;

use common::*;
use confab_wire::pb::{self, ErrorCode};
use confab_wire::{Body, Envelope};

#[tokio::test]
async fn dm_is_acked_stored_and_pushed_to_every_other_device() {
    let srv = TestServer::start().await;
    let mut alice = srv.user("alice").await;
    let mut bob = srv.user("小明").await;
    let thread = befriend(&mut alice, &mut bob).await;

    // A second device of alice.
    let mut alice2 = srv.client().await;
    assert!(matches!(
        alice2.login("ALICE", PASSWORD).await,
        Body::AuthOk(_)
    ));

    let ack = alice.send_text(thread, "m1", "你好 👋").await;
    assert_eq!(ack.seq, 1);
    assert!(!ack.duplicate);
    assert_ne!(ack.message_id, 0);

    let got = bob.message_push(thread).await;
    assert_eq!(got.seq, 1);
    assert_eq!(got.body, "你好 👋");
    assert_eq!(got.sender.as_ref().unwrap().name, "alice");
    assert!(
        got.client_msg_id.is_empty(),
        "others do not see client_msg_id"
    );

    let own = alice2.message_push(thread).await;
    assert_eq!(own.client_msg_id, "m1", "own devices see client_msg_id");

    // The sending connection gets the ack, not a push.
    alice
        .no_push_where(Duration::from_millis(300), |b| {
            matches!(b, Body::MessagePush(_))
        })
        .await;

    let history = bob.sync(thread, 0).await;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].message_id, ack.message_id);
}

#[tokio::test]
async fn retried_send_returns_the_first_ack_and_stores_once() {
    let srv = TestServer::start().await;
    let mut a = srv.user("a1").await;
    let mut b = srv.user("b1").await;
    let thread = befriend(&mut a, &mut b).await;
    let first = a.send_text(thread, "same-id", "once").await;
    let again = a.send_text(thread, "same-id", "once").await;
    assert!(again.duplicate);
    assert_eq!((again.seq, again.message_id), (first.seq, first.message_id));
    assert_eq!(b.sync(thread, 0).await.len(), 1);
    // The same id in another thread is a conflict, not a silent duplicate.
    let mut c = srv.user("c1").await;
    let other = befriend(&mut a, &mut c).await;
    let e = a
        .fail_code(Body::Send(pb::Send {
            thread_id: other,
            client_msg_id: "same-id".into(),
            body: "x".into(),
            reply_to: 0,
        }))
        .await;
    assert_eq!(e, ErrorCode::Conflict);
}

#[tokio::test]
async fn refusals_not_member_not_friend_too_large_empty() {
    let srv = TestServer::start_with(|c| c.max_body_bytes = 100).await;
    let mut a = srv.user("ra").await;
    let mut b = srv.user("rb").await;
    let mut eve = srv.user("eve").await;
    let thread = befriend(&mut a, &mut b).await;

    let send = |t: u64, body: &str| {
        Body::Send(pb::Send {
            thread_id: t,
            client_msg_id: format!("x{}", body.len()),
            body: body.into(),
            reply_to: 0,
        })
    };
    assert_eq!(
        eve.fail_code(send(thread, "hi")).await,
        ErrorCode::Forbidden
    );
    assert_eq!(
        eve.fail_code(send(999_999, "hi")).await,
        ErrorCode::NotFound
    );
    assert_eq!(
        eve.fail_code(Body::SyncThread(pb::SyncThread {
            thread_id: thread,
            since_seq: 0,
            limit: 10
        }))
        .await,
        // Never visible to eve: the same answer as a thread that does not exist.
        ErrorCode::NotFound
    );
    assert_eq!(
        a.fail_code(send(thread, &"x".repeat(101))).await,
        ErrorCode::TooLarge
    );
    assert_eq!(
        a.fail_code(send(thread, "   ")).await,
        ErrorCode::BadRequest
    );
    assert_eq!(
        a.fail_code(Body::Send(pb::Send {
            thread_id: thread,
            client_msg_id: String::new(),
            body: "x".into(),
            reply_to: 0
        }))
        .await,
        ErrorCode::BadRequest
    );

    // After unfriending, the thread is readable but closed for sending.
    a.send_text(thread, "before", "before").await;
    a.ok(Body::RemoveFriend(pb::RemoveFriend { user_id: b.id() }))
        .await;
    assert_eq!(
        a.fail_code(send(thread, "after")).await,
        ErrorCode::Forbidden
    );
    assert_eq!(b.sync(thread, 0).await.len(), 1);
}

#[tokio::test]
async fn recall_and_edit_own_recent_messages_only() {
    let srv = TestServer::start().await;
    let mut a = srv.user("ea").await;
    let mut b = srv.user("eb").await;
    let thread = befriend(&mut a, &mut b).await;
    let m1 = a.send_text(thread, "e1", "typo hre").await;
    let m2 = a.send_text(thread, "e2", "oops").await;

    let edit = a
        .ok(Body::Edit(pb::Edit {
            thread_id: thread,
            message_id: m1.message_id,
            body: "typo here".into(),
            client_msg_id: "e3".into(),
        }))
        .await;
    let Body::SendAck(edit) = edit else { panic!() };
    assert_eq!(edit.seq, 3, "an edit takes a seq");

    let recall = a
        .ok(Body::Recall(pb::Recall {
            thread_id: thread,
            message_id: m2.message_id,
            client_msg_id: "e4".into(),
        }))
        .await;
    let Body::SendAck(recall) = recall else {
        panic!()
    };
    assert_eq!(recall.seq, 4);

    // Not someone else's message.
    assert_eq!(
        b.fail_code(Body::Recall(pb::Recall {
            thread_id: thread,
            message_id: m1.message_id,
            client_msg_id: "b1".into()
        }))
        .await,
        ErrorCode::Forbidden
    );

    let all = b.sync(thread, 0).await;
    assert_eq!(all.len(), 4);
    assert_eq!(all[0].body, "typo here");
    assert_ne!(all[0].edited_ts_ms, 0);
    assert!(all[1].recalled);
    assert!(all[1].body.is_empty());
    assert_eq!(all[2].kind, pb::MessageKind::Edit as i32);
    assert_eq!(all[3].kind, pb::MessageKind::Recall as i32);
    assert_eq!(all[3].target_message_id, m2.message_id);

    // Recalling the edited message takes its edits' text with it; other entries keep theirs.
    let m3 = a.send_text(thread, "e5", "keep me").await;
    a.ok(Body::Recall(pb::Recall {
        thread_id: thread,
        message_id: m1.message_id,
        client_msg_id: "e6".into(),
    }))
    .await;
    let all = b.sync(thread, 0).await;
    assert_eq!(all.len(), 6);
    assert!(all[0].recalled && all[0].body.is_empty());
    assert_eq!(all[2].kind, pb::MessageKind::Edit as i32);
    assert!(
        all[2].body.is_empty() && all[2].recalled,
        "the edit's text is gone: {:?}",
        all[2]
    );
    assert_eq!(all[4].message_id, m3.message_id);
    assert_eq!(all[4].body, "keep me");
}

#[tokio::test]
async fn recall_window_is_enforced() {
    let srv = TestServer::start_with(|c| c.recall_window_ms = 0).await;
    let mut a = srv.user("wa").await;
    let mut b = srv.user("wb").await;
    let thread = befriend(&mut a, &mut b).await;
    let m = a.send_text(thread, "w1", "late").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        a.fail_code(Body::Recall(pb::Recall {
            thread_id: thread,
            message_id: m.message_id,
            client_msg_id: "w2".into()
        }))
        .await,
        ErrorCode::Forbidden
    );
}

#[tokio::test]
async fn sync_pages_and_history_pages_backwards() {
    let srv = TestServer::start().await;
    let mut a = srv.user("pa").await;
    let mut b = srv.user("pb").await;
    let thread = befriend(&mut a, &mut b).await;
    for i in 0..25 {
        a.send_text(thread, &format!("p{i}"), &format!("message {i}"))
            .await;
    }
    let page = b
        .ok(Body::SyncThread(pb::SyncThread {
            thread_id: thread,
            since_seq: 5,
            limit: 10,
        }))
        .await;
    let Body::MessagePage(page) = page else {
        panic!()
    };
    assert!(page.has_more);
    assert_eq!(page.last_seq, 25);
    assert_eq!(
        page.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        (6..=15).collect::<Vec<_>>()
    );

    let hist = b
        .ok(Body::History(pb::History {
            thread_id: thread,
            before_seq: 0,
            limit: 10,
        }))
        .await;
    let Body::MessagePage(hist) = hist else {
        panic!()
    };
    assert!(hist.has_more);
    assert_eq!(
        hist.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        (16..=25).collect::<Vec<_>>()
    );
    let older = b
        .ok(Body::History(pb::History {
            thread_id: thread,
            before_seq: 16,
            limit: 100,
        }))
        .await;
    let Body::MessagePage(older) = older else {
        panic!()
    };
    assert!(!older.has_more);
    assert_eq!(older.messages.len(), 15);
    assert_eq!(older.messages[0].seq, 1);
}

#[tokio::test]
async fn big_pages_are_trimmed_to_fit_a_frame() {
    let srv = TestServer::start().await;
    let mut a = srv.user("ba").await;
    let mut b = srv.user("bb").await;
    let thread = befriend(&mut a, &mut b).await;
    let body = "长".repeat(1300); // 3900 bytes
    for i in 0..40 {
        a.send_text(thread, &format!("big{i}"), &body).await;
    }
    let all = b.sync(thread, 0).await;
    assert_eq!(
        all.len(),
        40,
        "paging with has_more still yields everything"
    );
    let first = b
        .ok(Body::SyncThread(pb::SyncThread {
            thread_id: thread,
            since_seq: 0,
            limit: 200,
        }))
        .await;
    let Body::MessagePage(first) = first else {
        panic!()
    };
    assert!(first.has_more);
    assert!(first.messages.len() < 40);
}

#[tokio::test]
async fn read_receipts_reach_the_peer_and_the_readers_other_devices() {
    let srv = TestServer::start().await;
    let mut a = srv.user("rr1").await;
    let mut b = srv.user("rr2").await;
    let thread = befriend(&mut a, &mut b).await;
    let mut b2 = srv.client().await;
    b2.login("rr2", PASSWORD).await;
    a.send_text(thread, "r1", "read me").await;
    a.send_text(thread, "r2", "and me").await;
    b.ok(Body::ReadUpTo(pb::ReadUpTo {
        thread_id: thread,
        seq: 2,
    }))
    .await;
    for c in [&mut a, &mut b2] {
        match c
            .push_where(|x| matches!(x, Body::ReadReceiptPush(_)))
            .await
        {
            Body::ReadReceiptPush(r) => {
                assert_eq!(r.read_seq, 2);
                assert_eq!(r.user.unwrap().user_id, b.id());
            }
            _ => unreachable!(),
        }
    }
    // Markers never move back, and the thread list shows unread counts from them.
    b.ok(Body::ReadUpTo(pb::ReadUpTo {
        thread_id: thread,
        seq: 1,
    }))
    .await;
    let Body::ThreadList(list) = b.ok(Body::ListThreads(pb::ListThreads::default())).await else {
        panic!()
    };
    let t = list.threads.iter().find(|t| t.thread_id == thread).unwrap();
    assert_eq!((t.last_seq, t.read_seq), (2, 2));
    let Body::ThreadList(list) = a.ok(Body::ListThreads(pb::ListThreads::default())).await else {
        panic!()
    };
    let t = list.threads.iter().find(|t| t.thread_id == thread).unwrap();
    assert_eq!(t.peer_read_seq, 2);
    assert_eq!(t.read_seq, 2, "the sender has read its own messages");
    assert_eq!(t.last_message.as_ref().unwrap().body, "and me");
}

#[tokio::test]
async fn typing_is_forwarded_and_throttled() {
    let srv = TestServer::start().await;
    let mut a = srv.user("ta").await;
    let mut b = srv.user("tb").await;
    let thread = befriend(&mut a, &mut b).await;
    a.send_env(Envelope::new(
        0,
        Body::Typing(pb::Typing {
            thread_id: thread,
            ..Default::default()
        }),
    ))
    .await;
    a.send_env(Envelope::new(
        0,
        Body::Typing(pb::Typing {
            thread_id: thread,
            ..Default::default()
        }),
    ))
    .await;
    match b.push_where(|x| matches!(x, Body::TypingPush(_))).await {
        Body::TypingPush(t) => assert_eq!(t.user.unwrap().user_id, a.id()),
        _ => unreachable!(),
    }
    b.no_push_where(Duration::from_millis(500), |x| {
        matches!(x, Body::TypingPush(_))
    })
    .await;
}

/// A cleared draft (1.3): a stop after a forwarded start goes out once with `expires_ms: 0`; a
/// stop with no start shown is dropped; the next start after a stop is not held by the 2 s rule.
#[tokio::test]
async fn a_typing_stop_follows_a_start_once() {
    let srv = TestServer::start().await;
    let mut a = srv.user("ts1").await;
    let mut b = srv.user("ts2").await;
    let thread = befriend(&mut a, &mut b).await;
    let typing = |stopped| {
        Envelope::new(
            0,
            Body::Typing(pb::Typing {
                thread_id: thread,
                stopped,
            }),
        )
    };
    let is_typing = |x: &Body| matches!(x, Body::TypingPush(_));
    a.send_env(typing(true)).await;
    b.no_push_where(Duration::from_millis(300), is_typing).await;
    a.send_env(typing(false)).await;
    match b.push_where(is_typing).await {
        Body::TypingPush(t) => assert_eq!(t.expires_ms, 5000),
        _ => unreachable!(),
    }
    a.send_env(typing(true)).await;
    a.send_env(typing(true)).await;
    match b.push_where(is_typing).await {
        Body::TypingPush(t) => assert_eq!((t.expires_ms, t.user.unwrap().user_id), (0, a.id())),
        _ => unreachable!(),
    }
    b.no_push_where(Duration::from_millis(300), is_typing).await;
    // Typing again at once (well within 2 s of the first start) is shown again.
    a.send_env(typing(false)).await;
    match b.push_where(is_typing).await {
        Body::TypingPush(t) => assert_eq!(t.expires_ms, 5000),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn presence_goes_to_friends_on_first_connect_and_last_disconnect() {
    let srv = TestServer::start().await;
    let mut a = srv.user("pr1").await;
    let mut b = srv.user("pr2").await;
    befriend(&mut a, &mut b).await;
    let token = b.token.clone();
    drop(b);
    match a
        .push_where(|x| matches!(x, Body::PresencePush(p) if !p.online))
        .await
    {
        Body::PresencePush(p) => assert_eq!(p.user.unwrap().name, "pr2"),
        _ => unreachable!(),
    }
    let mut b = common::Client::raw(srv.addr).await;
    let ok = b.hello_with_token(&token).await;
    assert!(ok.auth.is_some(), "resume in Hello");
    a.push_where(|x| matches!(x, Body::PresencePush(p) if p.online))
        .await;
    let Body::FriendList(list) = a.ok(Body::ListFriends(pb::ListFriends::default())).await else {
        panic!()
    };
    assert!(list.friends[0].online);
}

fn is_presence(b: &Body) -> bool {
    matches!(b, Body::PresencePush(_))
}

async fn friend_online(c: &mut common::Client) -> bool {
    let Body::FriendList(list) = c.ok(Body::ListFriends(pb::ListFriends::default())).await else {
        panic!("expected FriendList")
    };
    list.friends[0].online
}

/// Five short commands' connections (Hello.quiet) resume, send and close: the friend sees the
/// messages and no presence change, and never sees the user online. A real connection then
/// shows online, and its end shows offline although a quiet one is still open.
#[tokio::test]
async fn quiet_connections_neither_announce_nor_show_presence() {
    let srv = TestServer::start().await;
    let mut a = srv.user("qa").await;
    let mut b = srv.user("qb").await;
    let thread = befriend(&mut a, &mut b).await;
    let mut token = b.token.clone();
    drop(b);
    a.push_where(|x| matches!(x, Body::PresencePush(p) if !p.online))
        .await;
    for i in 0..5 {
        let mut q = common::Client::raw(srv.addr).await;
        assert!(q.hello_as(&token, true).await.auth.is_some(), "resume");
        token = q.token.clone();
        q.send_text(thread, &format!("q{i}"), &format!("quiet {i}"))
            .await;
        assert!(
            !friend_online(&mut a).await,
            "a quiet connection shows online"
        );
        a.message_push(thread).await;
    }
    a.no_push_where(Duration::from_millis(300), is_presence)
        .await;

    let mut b = common::Client::raw(srv.addr).await;
    assert!(b.hello_as(&token, false).await.auth.is_some());
    a.push_where(|x| matches!(x, Body::PresencePush(p) if p.online))
        .await;
    let mut q = common::Client::raw(srv.addr).await;
    assert!(q.hello_as(&b.token, true).await.auth.is_some());
    drop(b);
    a.push_where(|x| matches!(x, Body::PresencePush(p) if !p.online))
        .await;
    assert!(!friend_online(&mut a).await);
    // The quiet connection still works, and still gets its pushes.
    let mut a2 = common::Client::raw(srv.addr).await;
    assert!(a2.hello_as(&a.token, true).await.auth.is_some());
    a2.send_text(thread, "from-a", "to the quiet one").await;
    assert_eq!(q.message_push(thread).await.body, "to the quiet one");
    drop(q);
    a.no_push_where(Duration::from_millis(300), is_presence)
        .await;
}

#[tokio::test]
async fn group_messages_reach_all_members_in_seq_order() {
    let srv = TestServer::start().await;
    let mut owner = srv.user("go").await;
    let (gid, thread) = group(&mut owner, "研究小组").await;
    let mut members = Vec::new();
    for i in 0..4 {
        let mut m = srv.user(&format!("gm{i}")).await;
        join(&mut m, gid).await;
        members.push(m);
    }
    for i in 0..10 {
        owner
            .send_text(thread, &format!("g{i}"), &format!("hello {i}"))
            .await;
    }
    for m in &mut members {
        let mut seqs = Vec::new();
        while seqs.len() < 10 {
            let msg = m.message_push(thread).await;
            if msg.kind == pb::MessageKind::Text as i32 {
                seqs.push(msg.seq);
            }
        }
        assert!(
            seqs.windows(2).all(|w| w[1] == w[0] + 1),
            "pushes in seq order: {seqs:?}"
        );
    }
}

/// The stored delivery marker of `device` in `thread`, read straight from the store.
async fn delivered_marker(srv: &TestServer, device: u64, thread: u64) -> Option<u64> {
    let (d, t) = (device as i64, thread as i64);
    if let Some(db) = &srv.db {
        use mysql_async::prelude::Queryable;
        let mut conn = mysql_async::Conn::from_url(db.url()).await.unwrap();
        let v: Option<i64> = conn
            .exec_first(
                "SELECT delivered_seq FROM device_cursors WHERE device_id = ? AND thread_id = ?",
                (d, t),
            )
            .await
            .unwrap();
        return v.map(|v| v as u64);
    }
    let path = srv.dir.path().join("confab.db");
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    conn.query_row(
        "SELECT delivered_seq FROM device_cursors WHERE device_id = ?1 AND thread_id = ?2",
        [d, t],
        |r| r.get::<_, i64>(0),
    )
    .ok()
    .map(|v| v as u64)
}

/// Polls until the marker reaches `want` (notifications are stored about once a second).
async fn until_marker(srv: &TestServer, device: u64, thread: u64, want: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = delivered_marker(srv, device, thread).await;
        if got == Some(want) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "marker of device {device} in thread {thread}: {got:?}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_markers_are_stored_per_device_forward_only_and_clamped() {
    let srv = TestServer::start().await;
    let mut alice = srv.user("dm_alice").await;
    let mut bob = srv.user("dm_bob").await;
    let thread = befriend(&mut alice, &mut bob).await;
    for i in 1..=3 {
        alice.send_text(thread, &format!("d{i}"), "hello").await;
        bob.message_push(thread).await;
    }
    let notify = |seq: u64| {
        Envelope::new(
            0,
            Body::DeliveredUpTo(pb::DeliveredUpTo {
                thread_id: thread,
                seq,
            }),
        )
    };
    // As a request: stored before the Ok. MySQL shows it at once; the embedded store has it
    // in its redo log before the Ok (`delivery.rs` kills the server right after acks) and in
    // its database file at the next commit, within the commit interval.
    bob.ok(Body::DeliveredUpTo(pb::DeliveredUpTo {
        thread_id: thread,
        seq: 1,
    }))
    .await;
    if srv.db.is_some() {
        assert_eq!(delivered_marker(&srv, bob.device_id, thread).await, Some(1));
    } else {
        until_marker(&srv, bob.device_id, thread, 1).await;
    }
    // As notifications: forward only, and clamped to the thread's last seq.
    bob.send_env(notify(2)).await;
    until_marker(&srv, bob.device_id, thread, 2).await;
    bob.send_env(notify(1)).await;
    bob.send_env(notify(99)).await;
    until_marker(&srv, bob.device_id, thread, 3).await;
    // Per device: alice's own device has no marker, and one for a thread she was never in is
    // refused with a non-fatal NOT_FOUND (PROTOCOL.md: not visible to her).
    assert_eq!(delivered_marker(&srv, alice.device_id, thread).await, None);
    let (_, other) = group(&mut bob, "dm other").await;
    alice
        .send_env(Envelope::new(
            0,
            Body::DeliveredUpTo(pb::DeliveredUpTo {
                thread_id: other,
                seq: 1,
            }),
        ))
        .await;
    let err = alice.push_where(|b| matches!(b, Body::Error(_))).await;
    let Body::Error(e) = err else { unreachable!() };
    assert_eq!(e.code(), ErrorCode::NotFound);
    assert_eq!(delivered_marker(&srv, alice.device_id, other).await, None);
}
