//! Blocking (protocol 1.4) on the embedded store and, with CONFAB_TEST_MYSQL, on MariaDB: what
//! a block takes from the blocked user, that it is never revealed as a block, and that an
//! unblock gives it back.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use common::*;
use confab_wire::Body;
use confab_wire::pb::{self, ErrorCode};

fn block(id: u64) -> Body {
    Body::BlockUser(pb::BlockUser { user_id: id })
}

fn unblock(id: u64) -> Body {
    Body::UnblockUser(pb::UnblockUser { user_id: id })
}

fn request(id: u64) -> Body {
    Body::SendFriendRequest(pb::SendFriendRequest {
        user_id: id,
        note: "hi".into(),
    })
}

async fn blocked_names(c: &mut Client) -> Vec<String> {
    match c.ok(Body::ListBlocked(pb::ListBlocked {})).await {
        Body::UserList(l) => l
            .users
            .into_iter()
            .filter_map(|p| p.user.map(|u| u.name))
            .collect(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_blocked_user_cannot_request_write_or_invite_until_unblocked() {
    let srv = TestServer::start().await;
    let mut a = srv.user("bk_a").await;
    let mut b = srv.user("bk_b").await;
    let mut c = srv.user("bk_c").await;
    let thread = befriend(&mut a, &mut b).await;
    b.send_text(thread, "b1", "before").await;

    // A blocks B (twice: the second is a no-op) and C; the list says so.
    a.ok(block(b.id())).await;
    a.ok(block(b.id())).await;
    a.ok(block(c.id())).await;
    assert_eq!(blocked_names(&mut a).await, vec!["bk_b", "bk_c"]);

    // B can no longer write in the private thread; the refusal does not name a block.
    let e = b
        .fail(Body::Send(pb::Send {
            thread_id: thread,
            client_msg_id: "b2".into(),
            body: "after".into(),
            reply_to: 0,
        }))
        .await;
    assert_eq!(e.code, ErrorCode::Forbidden as i32);
    assert!(!e.message.contains("block"), "{e:?}");
    // A still reads what B wrote before, and cannot write either: it would reach nobody.
    assert_eq!(a.sync(thread, 0).await.len(), 1);
    let e = a
        .fail(Body::Send(pb::Send {
            thread_id: thread,
            client_msg_id: "a1".into(),
            body: "into the void".into(),
            reply_to: 0,
        }))
        .await;
    assert_eq!(e.code, ErrorCode::Forbidden as i32, "{e}");
    // B sees A offline, though A is connected.
    match b.ok(Body::ListFriends(pb::ListFriends::default())).await {
        Body::FriendList(l) => {
            assert_eq!(l.friends.len(), 1);
            assert!(!l.friends[0].online, "{l:?}");
        }
        other => panic!("{other:?}"),
    }

    // C cannot send A a friend request, and the error looks like any refusal.
    let e = c.fail(request(a.id())).await;
    assert_eq!(e.code, ErrorCode::Forbidden as i32);
    assert_eq!(e.message, "not allowed");
    // A's own request to C is stopped by A's block, with the reason.
    let e = a.fail(request(c.id())).await;
    assert_eq!(e.code, ErrorCode::Conflict as i32);
    assert!(e.message.contains("unblock"), "{e:?}");

    // C, owner of a group, cannot invite A.
    let (group_id, _) = group(&mut c, "bk_group").await;
    let e = c
        .fail(Body::InviteToGroup(pb::InviteToGroup {
            group_id,
            user_id: a.id(),
        }))
        .await;
    assert_eq!(e.code, ErrorCode::Forbidden as i32);

    // Unblocking B: B writes again.
    a.ok(unblock(b.id())).await;
    a.ok(unblock(b.id())).await;
    b.send_text(thread, "b3", "again").await;
    a.send_text(thread, "a2", "and me").await;
    assert_eq!(blocked_names(&mut a).await, vec!["bk_c"]);
}

#[tokio::test]
async fn blocking_cancels_their_pending_request_and_has_limits() {
    let srv = TestServer::start_with(|c| c.max_blocked = 1).await;
    let mut a = srv.user("bl_a").await;
    let mut b = srv.user("bl_b").await;
    let c = srv.user("bl_c").await;
    b.ok(request(a.id())).await;
    a.ok(block(b.id())).await;
    match a
        .ok(Body::ListFriendRequests(pb::ListFriendRequests::default()))
        .await
    {
        Body::FriendRequestList(l) => assert!(l.incoming.is_empty(), "{l:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(a.fail_code(block(c.id())).await, ErrorCode::LimitReached);
    assert_eq!(a.fail_code(block(a.id())).await, ErrorCode::BadRequest);
    assert_eq!(a.fail_code(block(0)).await, ErrorCode::BadRequest);
    assert_eq!(a.fail_code(block(999_999)).await, ErrorCode::NotFound);
}

/// 1.5: a block and an unblock reach the blocker's other devices as events at once (and stay
/// in the event stream for a device that syncs later); the blocked user is told nothing.
#[tokio::test]
async fn a_block_reaches_the_blockers_other_devices_as_an_event() {
    let srv = TestServer::start().await;
    let mut a = srv.user("bke_a").await;
    let mut a2 = login_as(&srv, "bke_a").await;
    let mut b = srv.user("bke_b").await;
    let is_block = |want_blocked: bool, id: u64| {
        move |x: &Body| {
            matches!(x, Body::EventPush(p) if matches!(
                p.event.as_ref().and_then(|e| e.kind.as_ref()),
                Some(pb::user_event::Kind::UserBlocked(u)) if want_blocked && u.user_id == id
            ) || matches!(
                p.event.as_ref().and_then(|e| e.kind.as_ref()),
                Some(pb::user_event::Kind::UserUnblocked(u)) if !want_blocked && u.user_id == id
            ))
        }
    };
    a.ok(block(b.id())).await;
    a2.push_where(is_block(true, b.id())).await;
    a.ok(unblock(b.id())).await;
    a2.push_where(is_block(false, b.id())).await;
    b.no_push_where(std::time::Duration::from_millis(300), |x| {
        matches!(x, Body::EventPush(_))
    })
    .await;
}
