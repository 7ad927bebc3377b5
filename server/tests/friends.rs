//! Friend requests, friendships and offline delivery over real TCP: requests with notes,
//! accept/decline/cancel with their events, the refusals, crossed requests, removal, and what a
//! user finds (events and messages) after being offline.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use common::*;
use confab_wire::Body;
use confab_wire::pb::{self, ErrorCode, user_event::Kind};

fn ask(user_id: u64, note: &str) -> Body {
    Body::SendFriendRequest(pb::SendFriendRequest {
        user_id,
        note: note.into(),
    })
}

fn respond(request_id: u64, accept: bool) -> Body {
    Body::RespondFriendRequest(pb::RespondFriendRequest { request_id, accept })
}

fn request(b: Body) -> pb::FriendRequest {
    match b {
        Body::FriendRequest(r) => r,
        b => panic!("expected FriendRequest, got {b:?}"),
    }
}

async fn send_request(from: &mut Client, to: u64, note: &str) -> pb::FriendRequest {
    request(from.ok(ask(to, note)).await)
}

async fn friends(c: &mut Client) -> Vec<pb::Friend> {
    match c.ok(Body::ListFriends(pb::ListFriends::default())).await {
        Body::FriendList(l) => l.friends,
        b => panic!("expected FriendList, got {b:?}"),
    }
}

async fn pending(c: &mut Client) -> pb::FriendRequestList {
    match c
        .ok(Body::ListFriendRequests(pb::ListFriendRequests::default()))
        .await
    {
        Body::FriendRequestList(l) => l,
        b => panic!("expected FriendRequestList, got {b:?}"),
    }
}

/// The next pushed event (earlier non-event pushes stay queued).
async fn next_event(c: &mut Client) -> pb::UserEvent {
    match c.push_where(|b| matches!(b, Body::EventPush(_))).await {
        Body::EventPush(p) => p.event.expect("event"),
        _ => unreachable!(),
    }
}

async fn sync_events(c: &mut Client, since: u64, limit: u32) -> pb::EventPage {
    match c
        .ok(Body::SyncEvents(pb::SyncEvents {
            since_event_seq: since,
            limit,
        }))
        .await
    {
        Body::EventPage(p) => p,
        b => panic!("expected EventPage, got {b:?}"),
    }
}

fn uid(u: Option<&pb::User>) -> u64 {
    u.map_or(0, |u| u.user_id)
}

#[tokio::test]
async fn request_with_note_then_accept_makes_friends_with_a_thread() {
    let srv = TestServer::start().await;
    let mut a = srv.user("asker").await;
    let mut b = srv.user("answerer").await;

    let req = send_request(&mut a, b.id(), "we met at RustConf 🦀").await;
    assert_ne!(req.request_id, 0);
    assert_eq!(req.state, pb::RequestState::Pending as i32);
    assert_eq!(req.note, "we met at RustConf 🦀");
    assert_eq!(uid(req.from.as_ref()), a.id());
    assert_eq!(uid(req.to.as_ref()), b.id());
    assert_eq!(req.answered_ms, 0);
    assert_eq!(req.thread_id, 0);

    let ev = next_event(&mut b).await;
    assert_eq!(ev.event_seq, 1);
    match ev.kind {
        Some(Kind::FriendRequestReceived(r)) => {
            assert_eq!(r.request_id, req.request_id);
            assert_eq!(r.note, "we met at RustConf 🦀");
            assert_eq!(r.state, pb::RequestState::Pending as i32);
            assert_eq!(uid(r.from.as_ref()), a.id());
        }
        k => panic!("expected friend_request_received, got {k:?}"),
    }

    let list = pending(&mut b).await;
    assert_eq!(list.incoming.len(), 1);
    assert_eq!(list.incoming[0].request_id, req.request_id);
    assert!(list.outgoing.is_empty());
    let list = pending(&mut a).await;
    assert!(list.incoming.is_empty());
    assert_eq!(list.outgoing.len(), 1);
    assert_eq!(list.outgoing[0].request_id, req.request_id);

    let accepted = request(b.ok(respond(req.request_id, true)).await);
    assert_eq!(accepted.request_id, req.request_id);
    assert_eq!(accepted.state, pb::RequestState::Accepted as i32);
    assert_ne!(accepted.thread_id, 0);
    assert!(accepted.answered_ms > 0);
    let thread = accepted.thread_id;

    let (aid, bid) = (a.id(), b.id());
    for (c, peer) in [(&mut a, bid), (&mut b, aid)] {
        match next_event(c).await.kind {
            Some(Kind::FriendRequestAnswered(r)) => {
                assert_eq!(r.request_id, req.request_id);
                assert_eq!(r.state, pb::RequestState::Accepted as i32);
                assert_eq!(r.thread_id, thread);
            }
            k => panic!("expected friend_request_answered, got {k:?}"),
        }
        match next_event(c).await.kind {
            Some(Kind::ThreadAdded(t)) => {
                assert_eq!(t.thread_id, thread);
                assert_eq!(t.kind, pb::ThreadKind::Private as i32);
                assert_eq!(uid(t.peer.as_ref()), peer);
                assert!(t.can_send);
            }
            k => panic!("expected thread_added, got {k:?}"),
        }
        let list = friends(c).await;
        assert_eq!(list.len(), 1);
        assert_eq!(uid(list[0].user.as_ref()), peer);
        assert_eq!(list[0].thread_id, thread);
        assert!(list[0].since_ms > 0);
        assert!(list[0].online);
        let p = pending(c).await;
        assert!(p.incoming.is_empty() && p.outgoing.is_empty());
    }
    // The thread works both ways.
    a.send_text(thread, "f1", "hi friend").await;
    assert_eq!(b.message_push(thread).await.body, "hi friend");
}

#[tokio::test]
async fn decline_leaves_them_strangers() {
    let srv = TestServer::start().await;
    let mut a = srv.user("hopeful").await;
    let mut b = srv.user("picky").await;
    let req = send_request(&mut a, b.id(), "").await;
    let declined = request(b.ok(respond(req.request_id, false)).await);
    assert_eq!(declined.state, pb::RequestState::Declined as i32);
    assert_eq!(declined.thread_id, 0);
    assert!(declined.answered_ms > 0);

    // Both hear about it.
    for c in [&mut a, &mut b] {
        let ev = c
            .push_where(|x| {
                matches!(x, Body::EventPush(p)
                    if matches!(p.event.as_ref().and_then(|e| e.kind.as_ref()),
                        Some(Kind::FriendRequestAnswered(_))))
            })
            .await;
        let Body::EventPush(p) = ev else {
            unreachable!()
        };
        let Some(Kind::FriendRequestAnswered(r)) = p.event.unwrap().kind else {
            unreachable!()
        };
        assert_eq!(r.state, pb::RequestState::Declined as i32);
        assert!(friends(c).await.is_empty());
        let p = pending(c).await;
        assert!(p.incoming.is_empty() && p.outgoing.is_empty());
    }
    // Answering twice is a conflict. The declined one waits (the cooldown, tested below);
    // the one who declined may ask.
    assert_eq!(
        b.fail_code(respond(req.request_id, true)).await,
        ErrorCode::Conflict
    );
    assert_eq!(
        a.fail_code(ask(b.id(), "second try")).await,
        ErrorCode::RateLimited
    );
    let again = send_request(&mut b, a.id(), "let's try").await;
    assert_eq!(again.state, pb::RequestState::Pending as i32);
    assert_ne!(again.request_id, req.request_id);
}

#[tokio::test]
async fn cancel_by_sender_notifies_the_addressee() {
    let srv = TestServer::start().await;
    let mut a = srv.user("regretful").await;
    let mut b = srv.user("unaware").await;
    let req = send_request(&mut a, b.id(), "oops").await;
    assert!(matches!(
        next_event(&mut b).await.kind,
        Some(Kind::FriendRequestReceived(_))
    ));

    // Only the sender may cancel (the addressee does not see a cancellable request).
    assert_eq!(
        b.fail_code(Body::CancelFriendRequest(pb::CancelFriendRequest {
            request_id: req.request_id,
        }))
        .await,
        ErrorCode::NotFound
    );
    assert!(matches!(
        a.ok(Body::CancelFriendRequest(pb::CancelFriendRequest {
            request_id: req.request_id,
        }))
        .await,
        Body::Ok(_)
    ));
    let ev = next_event(&mut b).await;
    assert_eq!(ev.event_seq, 2);
    match ev.kind {
        Some(Kind::FriendRequestCancelled(r)) => {
            assert_eq!(r.request_id, req.request_id);
            assert_eq!(r.state, pb::RequestState::Cancelled as i32);
        }
        k => panic!("expected friend_request_cancelled, got {k:?}"),
    }
    assert!(pending(&mut b).await.incoming.is_empty());
    assert!(pending(&mut a).await.outgoing.is_empty());

    assert_eq!(
        b.fail_code(respond(req.request_id, true)).await,
        ErrorCode::Conflict
    );
    assert_eq!(
        a.fail_code(Body::CancelFriendRequest(pb::CancelFriendRequest {
            request_id: req.request_id,
        }))
        .await,
        ErrorCode::Conflict
    );
    assert!(friends(&mut b).await.is_empty());
}

#[tokio::test]
async fn only_the_addressee_may_respond() {
    let srv = TestServer::start().await;
    let mut a = srv.user("sender1").await;
    let b = srv.user("addressee1").await;
    let mut eve = srv.user("eve1").await;
    let req = send_request(&mut a, b.id(), "").await;
    for (who, c) in [("a third user", &mut eve), ("the sender", &mut a)] {
        for accept in [true, false] {
            assert_eq!(
                c.fail_code(respond(req.request_id, accept)).await,
                ErrorCode::NotFound,
                "{who} answered"
            );
        }
    }
    assert_eq!(
        eve.fail_code(respond(987_654, true)).await,
        ErrorCode::NotFound
    );
    // Still pending.
    assert_eq!(pending(&mut a).await.outgoing.len(), 1);
}

#[tokio::test]
async fn request_refusals_self_duplicate_friends_unknown_and_long_note() {
    let srv = TestServer::start().await;
    let mut a = srv.user("refused_a").await;
    let b = srv.user("refused_b").await;
    let mut c = srv.user("refused_c").await;

    assert_eq!(a.fail_code(ask(a.id(), "me")).await, ErrorCode::BadRequest);
    assert_eq!(a.fail_code(ask(987_654, "")).await, ErrorCode::NotFound);
    assert_eq!(
        a.fail_code(ask(b.id(), &"n".repeat(513))).await,
        ErrorCode::BadRequest
    );
    // 512 bytes is allowed.
    send_request(&mut a, b.id(), &"n".repeat(512)).await;
    assert_eq!(a.fail_code(ask(b.id(), "again")).await, ErrorCode::Conflict);
    assert_eq!(pending(&mut a).await.outgoing.len(), 1);

    befriend(&mut a, &mut c).await;
    assert_eq!(a.fail_code(ask(c.id(), "")).await, ErrorCode::Conflict);
    assert_eq!(c.fail_code(ask(a.id(), "")).await, ErrorCode::Conflict);
}

#[tokio::test]
async fn crossed_requests_accept_each_other() {
    let srv = TestServer::start().await;
    let mut a = srv.user("cross_a").await;
    let mut b = srv.user("cross_b").await;
    let first = send_request(&mut a, b.id(), "from a").await;

    let reply = send_request(&mut b, a.id(), "from b").await;
    assert_eq!(
        reply.request_id, first.request_id,
        "the pending one is answered"
    );
    assert_eq!(reply.state, pb::RequestState::Accepted as i32);
    assert_ne!(reply.thread_id, 0);
    assert_eq!(uid(reply.from.as_ref()), a.id());

    let ev = a
        .push_where(|x| {
            matches!(x, Body::EventPush(p)
                if matches!(p.event.as_ref().and_then(|e| e.kind.as_ref()),
                    Some(Kind::FriendRequestAnswered(_))))
        })
        .await;
    let Body::EventPush(p) = ev else {
        unreachable!()
    };
    let Some(Kind::FriendRequestAnswered(r)) = p.event.unwrap().kind else {
        unreachable!()
    };
    assert_eq!(r.state, pb::RequestState::Accepted as i32);

    let (aid, bid) = (a.id(), b.id());
    for (c, peer) in [(&mut a, bid), (&mut b, aid)] {
        let list = friends(c).await;
        assert_eq!(list.len(), 1);
        assert_eq!(uid(list[0].user.as_ref()), peer);
        assert_eq!(list[0].thread_id, reply.thread_id);
        let p = pending(c).await;
        assert!(p.incoming.is_empty() && p.outgoing.is_empty());
    }
}

#[tokio::test]
async fn remove_friend_ends_it_both_ways() {
    let srv = TestServer::start().await;
    let mut a = srv.user("remover").await;
    let mut b = srv.user("removed").await;
    let thread = befriend(&mut a, &mut b).await;
    a.send_text(thread, "r1", "bye").await;

    assert!(matches!(
        a.ok(Body::RemoveFriend(pb::RemoveFriend { user_id: b.id() }))
            .await,
        Body::Ok(_)
    ));
    let ev = b
        .push_where(|x| {
            matches!(x, Body::EventPush(p)
                if matches!(p.event.as_ref().and_then(|e| e.kind.as_ref()),
                    Some(Kind::FriendRemoved(_))))
        })
        .await;
    let Body::EventPush(p) = ev else {
        unreachable!()
    };
    let Some(Kind::FriendRemoved(u)) = p.event.unwrap().kind else {
        unreachable!()
    };
    assert_eq!(u.user_id, a.id());

    assert!(friends(&mut a).await.is_empty());
    assert!(friends(&mut b).await.is_empty());
    // The thread stays readable, but closed for sending.
    assert_eq!(b.sync(thread, 0).await.len(), 1);
    assert_eq!(
        b.fail_code(Body::Send(pb::Send {
            thread_id: thread,
            client_msg_id: "r2".into(),
            body: "wait".into(),
            reply_to: 0,
        }))
        .await,
        ErrorCode::Forbidden
    );
    // They may become friends again, in the same thread.
    let again = befriend(&mut b, &mut a).await;
    assert_eq!(again, thread);
    b.send_text(thread, "r3", "hello again").await;
}

/// PROTOCOL.md §5.4: RemoveFriend is `CONFLICT (not friends)`.
#[tokio::test]
async fn remove_friend_when_not_friends_is_a_conflict() {
    let srv = TestServer::start().await;
    let mut a = srv.user("lonely_a").await;
    let b = srv.user("lonely_b").await;
    assert_eq!(
        a.fail_code(Body::RemoveFriend(pb::RemoveFriend { user_id: b.id() }))
            .await,
        ErrorCode::Conflict
    );
}

#[tokio::test]
async fn events_made_while_offline_are_synced_in_order_at_the_next_login() {
    let srv = TestServer::start().await;
    let mut a = srv.user("off_a").await;
    let b = srv.user("off_b").await;
    let b_id = b.id();
    drop(b);

    // b is offline when a asks.
    let req = send_request(&mut a, b_id, "while you were out").await;
    drop(a);

    // b logs in: the request is in its event stream.
    let mut b = login_as(&srv, "off_b").await;
    let page = sync_events(&mut b, 0, 0).await;
    assert_eq!(page.last_event_seq, 1);
    assert!(!page.has_more);
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0].event_seq, 1);
    assert!(page.events[0].ts_ms > 0);
    match &page.events[0].kind {
        Some(Kind::FriendRequestReceived(r)) => {
            assert_eq!(r.request_id, req.request_id);
            assert_eq!(r.note, "while you were out");
        }
        k => panic!("expected friend_request_received, got {k:?}"),
    }
    // b accepts while a is offline.
    let accepted = request(b.ok(respond(req.request_id, true)).await);
    let thread = accepted.thread_id;
    drop(b);

    // a logs in: AuthOk announces the newest event, and paging with a small limit works.
    let mut a = srv.client().await;
    let auth = match a.login("off_a", PASSWORD).await {
        Body::AuthOk(auth) => auth,
        x => panic!("login failed: {x:?}"),
    };
    assert_eq!(auth.last_event_seq, 2);
    let p1 = sync_events(&mut a, 0, 1).await;
    assert_eq!(p1.events.len(), 1);
    assert!(p1.has_more);
    assert_eq!(p1.last_event_seq, 2);
    assert_eq!(p1.events[0].event_seq, 1);
    match &p1.events[0].kind {
        Some(Kind::FriendRequestAnswered(r)) => {
            assert_eq!(r.request_id, req.request_id);
            assert_eq!(r.state, pb::RequestState::Accepted as i32);
            assert_eq!(r.thread_id, thread);
        }
        k => panic!("expected friend_request_answered, got {k:?}"),
    }
    let p2 = sync_events(&mut a, 1, 1).await;
    assert_eq!(p2.events.len(), 1);
    assert!(!p2.has_more);
    assert_eq!(p2.events[0].event_seq, 2);
    match &p2.events[0].kind {
        Some(Kind::ThreadAdded(t)) => {
            assert_eq!(t.thread_id, thread);
            assert_eq!(uid(t.peer.as_ref()), b_id);
        }
        k => panic!("expected thread_added, got {k:?}"),
    }
    assert!(sync_events(&mut a, 2, 1).await.events.is_empty());

    // b's whole stream, paged two at a time: received, answered, thread_added.
    let mut b = login_as(&srv, "off_b").await;
    let mut all = Vec::new();
    let mut since = 0;
    loop {
        let page = sync_events(&mut b, since, 2).await;
        assert!(page.events.len() <= 2);
        assert_eq!(page.last_event_seq, 3);
        since = page.events.last().map_or(since, |e| e.event_seq);
        all.extend(page.events);
        if !page.has_more {
            break;
        }
    }
    assert_eq!(
        all.iter().map(|e| e.event_seq).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(matches!(all[0].kind, Some(Kind::FriendRequestReceived(_))));
    assert!(matches!(all[1].kind, Some(Kind::FriendRequestAnswered(_))));
    assert!(matches!(all[2].kind, Some(Kind::ThreadAdded(_))));
    assert!(all.windows(2).all(|w| w[0].ts_ms <= w[1].ts_ms));
}

#[tokio::test]
async fn messages_to_an_offline_user_wait_in_the_thread_and_stay_after_sync() {
    let srv = TestServer::start().await;
    let mut a = srv.user("chatty").await;
    let mut b = srv.user("away").await;
    let thread = befriend(&mut a, &mut b).await;
    drop(b);

    let mut acks = Vec::new();
    for i in 0..12 {
        acks.push(
            a.send_text(thread, &format!("o{i}"), &format!("offline {i}"))
                .await,
        );
    }
    assert_eq!(
        acks.iter().map(|a| a.seq).collect::<Vec<_>>(),
        (1..=12).collect::<Vec<_>>()
    );

    let mut b = login_as(&srv, "away").await;
    let Body::ThreadList(list) = b.ok(Body::ListThreads(pb::ListThreads::default())).await else {
        panic!("expected ThreadList")
    };
    let t = list.threads.iter().find(|t| t.thread_id == thread).unwrap();
    assert_eq!((t.last_seq, t.read_seq), (12, 0));

    for round in 0..2 {
        let got = b.sync(thread, 0).await;
        assert_eq!(
            got.iter().map(|m| m.seq).collect::<Vec<_>>(),
            (1..=12).collect::<Vec<_>>(),
            "sync round {round}"
        );
        for (i, m) in got.iter().enumerate() {
            assert_eq!(m.body, format!("offline {i}"));
            assert_eq!(m.message_id, acks[i].message_id);
            assert_eq!(uid(m.sender.as_ref()), a.id());
        }
    }
    // Reading them is only a marker: a later sync (from another device) still has them.
    b.ok(Body::ReadUpTo(pb::ReadUpTo {
        thread_id: thread,
        seq: 12,
    }))
    .await;
    drop(b);
    let mut b2 = login_as(&srv, "away").await;
    assert_eq!(b2.sync(thread, 0).await.len(), 12);
    assert_eq!(b2.sync(thread, 6).await.len(), 6);
}

/// Pages a list request until `has_more` is false, checking the items ascend by `key` across
/// pages; every item, and each page's size.
async fn all_pages<T>(
    c: &mut Client,
    mut req: impl FnMut(u64) -> Body,
    mut page: impl FnMut(Body) -> (Vec<T>, bool),
    key: impl Fn(&T) -> u64,
) -> (Vec<T>, Vec<usize>) {
    let (mut all, mut sizes, mut after) = (Vec::new(), Vec::new(), 0);
    loop {
        let (items, more) = page(c.ok(req(after)).await);
        assert!(!items.is_empty() || !more, "an empty page that claims more");
        sizes.push(items.len());
        for it in items {
            assert!(key(&it) > after, "pages ascend without overlap");
            after = key(&it);
            all.push(it);
        }
        if !more {
            return (all, sizes);
        }
    }
}

#[tokio::test]
async fn friend_requests_friends_and_groups_come_in_pages_that_fit_a_frame() {
    // The smallest frames a server accepts, so that a dozen people with long notes overflow
    // one: the lists that others can grow (requests, invitations) must stay fetchable.
    let srv = TestServer::start_with(|c| {
        c.max_frame_bytes = 8192;
        c.max_body_bytes = 4096;
        c.max_page = 16;
    })
    .await;
    let mut target = srv.user("paged_target").await;
    let note = "n".repeat(500);
    let mut incoming_ids = Vec::new();
    let mut senders = Vec::new();
    for i in 0..13 {
        let mut s = srv.user(&format!("paged_from_{i}")).await;
        incoming_ids.push(send_request(&mut s, target.id(), &note).await.request_id);
        senders.push(s);
    }
    let mut outgoing_ids = Vec::new();
    for i in 0..3 {
        let other = srv.user(&format!("paged_to_{i}")).await;
        outgoing_ids.push(
            send_request(&mut target, other.id(), &note)
                .await
                .request_id,
        );
    }

    let (reqs, sizes) = all_pages(
        &mut target,
        |after| {
            Body::ListFriendRequests(pb::ListFriendRequests {
                after_request_id: after,
                limit: 0,
            })
        },
        |b| match b {
            Body::FriendRequestList(l) => {
                let mut v: Vec<(bool, pb::FriendRequest)> = l
                    .incoming
                    .into_iter()
                    .map(|r| (true, r))
                    .chain(l.outgoing.into_iter().map(|r| (false, r)))
                    .collect();
                v.sort_by_key(|(_, r)| r.request_id);
                (v, l.has_more)
            }
            b => panic!("expected FriendRequestList, got {b:?}"),
        },
        |(_, r)| r.request_id,
    )
    .await;
    let got_in: Vec<u64> = reqs
        .iter()
        .filter(|(i, _)| *i)
        .map(|(_, r)| r.request_id)
        .collect();
    let got_out: Vec<u64> = reqs
        .iter()
        .filter(|(i, _)| !*i)
        .map(|(_, r)| r.request_id)
        .collect();
    assert_eq!(got_in, incoming_ids);
    assert_eq!(got_out, outgoing_ids);
    assert!(reqs.iter().all(|(_, r)| r.note == note), "notes come whole");
    assert!(
        sizes.len() > 1 && sizes[0] < 16,
        "16 requests with long notes do not fit one frame: {sizes:?}"
    );

    // Accept them all: 13 friends, in pages of the 5 asked for, by user id.
    for id in &incoming_ids {
        request(target.ok(respond(*id, true)).await);
    }
    let (friends, sizes) = all_pages(
        &mut target,
        |after| {
            Body::ListFriends(pb::ListFriends {
                after_user_id: after,
                limit: 5,
            })
        },
        |b| match b {
            Body::FriendList(l) => (l.friends, l.has_more),
            b => panic!("expected FriendList, got {b:?}"),
        },
        |f| f.user.as_ref().map_or(0, |u| u.user_id),
    )
    .await;
    let mut want: Vec<u64> = senders.iter().map(Client::id).collect();
    want.sort_unstable();
    let got: Vec<u64> = friends
        .iter()
        .filter_map(|f| f.user.as_ref())
        .map(|u| u.user_id)
        .collect();
    assert_eq!(got, want);
    assert_eq!(sizes, vec![5, 5, 3]);
    // Cursors past the end give an empty last page; limits past the maximum are clamped.
    match target
        .ok(Body::ListFriendRequests(pb::ListFriendRequests {
            after_request_id: u64::MAX,
            limit: u32::MAX,
        }))
        .await
    {
        Body::FriendRequestList(l) => {
            assert!(l.incoming.is_empty() && l.outgoing.is_empty() && !l.has_more)
        }
        b => panic!("expected FriendRequestList, got {b:?}"),
    }
    match target
        .ok(Body::ListFriends(pb::ListFriends {
            after_user_id: 0,
            limit: u32::MAX,
        }))
        .await
    {
        Body::FriendList(l) => assert!(l.friends.len() == 13 && !l.has_more),
        b => panic!("expected FriendList, got {b:?}"),
    }
    // An explicit smaller limit is honoured.
    match target
        .ok(Body::ListFriends(pb::ListFriends {
            after_user_id: 0,
            limit: 3,
        }))
        .await
    {
        Body::FriendList(l) => assert!(l.friends.len() == 3 && l.has_more),
        b => panic!("expected FriendList, got {b:?}"),
    }

    // Invitations to 19 groups with long descriptions, plus one group of the target's own.
    let owner = &mut senders[0];
    let mut group_ids = Vec::new();
    for i in 0..19 {
        let g = match owner
            .ok(Body::CreateGroup(pb::CreateGroup {
                name: format!("paged group {i}"),
                description: note.clone(),
                open: false,
            }))
            .await
        {
            Body::Group(g) => g,
            b => panic!("expected Group, got {b:?}"),
        };
        owner
            .ok(Body::InviteToGroup(pb::InviteToGroup {
                group_id: g.group_id,
                user_id: target.id(),
            }))
            .await;
        group_ids.push(g.group_id);
    }
    let (own, _) = group(&mut target, "paged own").await;
    group_ids.push(own);
    let (groups, sizes) = all_pages(
        &mut target,
        |after| {
            Body::ListGroups(pb::ListGroups {
                after_group_id: after,
                limit: 0,
            })
        },
        |b| match b {
            Body::GroupList(l) => (l.groups, l.has_more),
            b => panic!("expected GroupList, got {b:?}"),
        },
        |g| g.group_id,
    )
    .await;
    assert_eq!(
        groups.iter().map(|g| g.group_id).collect::<Vec<_>>(),
        group_ids
    );
    assert_eq!(groups.iter().filter(|g| g.invited).count(), 19);
    assert!(
        sizes.len() > 1 && sizes[0] < 16,
        "16 groups with long descriptions do not fit one frame: {sizes:?}"
    );
}

#[tokio::test]
async fn unanswered_requests_one_user_sends_are_capped() {
    let srv = TestServer::start_with(|c| c.max_pending_friend_requests = 2).await;
    let mut spammer = srv.user("cap_sender").await;
    let a = srv.user("cap_a").await;
    let b = srv.user("cap_b").await;
    let mut c = srv.user("cap_c").await;
    let first = send_request(&mut spammer, a.id(), "").await;
    send_request(&mut spammer, b.id(), "").await;
    let e = spammer.fail(ask(c.id(), "")).await;
    assert_eq!(e.code, ErrorCode::LimitReached as i32, "{e}");
    // A request crossing one of theirs is an acceptance, not a new request: still allowed.
    let theirs = send_request(&mut c, spammer.id(), "").await;
    let accepted = request(spammer.ok(ask(c.id(), "")).await);
    assert_eq!(accepted.request_id, theirs.request_id);
    assert_eq!(accepted.state, pb::RequestState::Accepted as i32);
    // Cancelling one makes room again.
    assert!(matches!(
        spammer
            .ok(Body::CancelFriendRequest(pb::CancelFriendRequest {
                request_id: first.request_id,
            }))
            .await,
        Body::Ok(_)
    ));
    let mut d = srv.user("cap_d").await;
    send_request(&mut spammer, d.id(), "").await;
    assert_eq!(pending(&mut d).await.incoming.len(), 1);
}

#[tokio::test]
async fn asking_again_after_a_decline_waits_for_the_cooldown() {
    let srv = TestServer::start_with(|c| {
        c.friend_request_cooldown = std::time::Duration::from_millis(1500);
    })
    .await;
    let mut asker = srv.user("cool_asker").await;
    let mut target = srv.user("cool_target").await;
    let first = send_request(&mut asker, target.id(), "hi").await;
    request(target.ok(respond(first.request_id, false)).await);
    let e = asker.fail(ask(target.id(), "please")).await;
    assert_eq!(e.code, ErrorCode::RateLimited as i32, "{e}");
    assert!(
        e.retry_after_ms > 0 && e.retry_after_ms <= 1500,
        "{}",
        e.retry_after_ms
    );
    // The one who declined may still ask, whenever it likes.
    let theirs = send_request(&mut target, asker.id(), "changed my mind").await;
    assert_eq!(theirs.state, pb::RequestState::Pending as i32);
    assert!(matches!(
        target
            .ok(Body::CancelFriendRequest(pb::CancelFriendRequest {
                request_id: theirs.request_id,
            }))
            .await,
        Body::Ok(_)
    ));
    tokio::time::sleep(std::time::Duration::from_millis(
        u64::from(e.retry_after_ms) + 50,
    ))
    .await;
    let again = send_request(&mut asker, target.id(), "one more time").await;
    assert_eq!(again.state, pb::RequestState::Pending as i32);
}
