//! Group bans (protocol 1.4) on the embedded store and, with CONFAB_TEST_MYSQL, on MariaDB: a
//! ban removes a member with an entry that says who banned whom, and keeps them out (no rejoin,
//! no invitation, not in search) until lifted; only the owner and admins manage bans.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use common::*;
use confab_wire::Body;
use confab_wire::pb::{self, ErrorCode};

fn ban(group_id: u64, user_id: u64) -> Body {
    Body::KickMember(pb::KickMember {
        group_id,
        user_id,
        ban: true,
    })
}

fn search(q: &str) -> Body {
    Body::SearchGroups(pb::SearchGroups {
        query: q.into(),
        limit: 0,
    })
}

async fn found(c: &mut Client, q: &str) -> usize {
    match c.ok(search(q)).await {
        Body::GroupList(l) => l.groups.len(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_banned_member_cannot_rejoin_be_invited_or_find_the_group_until_unbanned() {
    let srv = TestServer::start().await;
    let mut owner = srv.user("ban_owner").await;
    let mut bad = srv.user("ban_bad").await;
    let mut member = srv.user("ban_member").await;
    let (group_id, thread) = group(&mut owner, "bangroup").await;
    join(&mut bad, group_id).await;
    join(&mut member, group_id).await;
    assert_eq!(found(&mut bad, "bangroup").await, 1);

    // A plain member may not ban.
    assert_eq!(
        member.fail_code(ban(group_id, bad.id())).await,
        ErrorCode::Forbidden
    );
    owner.ok(ban(group_id, bad.id())).await;
    let banned = pb::group_change::Kind::Banned as i32;
    let gc = match member
        .push_where(|b| {
            matches!(b, Body::MessagePush(p) if p.message.as_ref().is_some_and(|m|
            m.thread_id == thread && m.group_change.as_ref().is_some_and(|g| g.kind == banned)))
        })
        .await
    {
        Body::MessagePush(p) => p.message.unwrap().group_change.unwrap(),
        _ => unreachable!(),
    };
    assert_eq!(gc.kind, pb::group_change::Kind::Banned as i32);
    // The banned member sees its own exit too.
    bad.push_where(|b| {
        matches!(b, Body::MessagePush(p) if p.message.as_ref().is_some_and(|m|
        m.group_change.as_ref().is_some_and(|g| g.kind == banned)))
    })
    .await;
    assert_eq!(gc.actor.unwrap().user_id, owner.id());
    assert_eq!(gc.subject.unwrap().user_id, bad.id());

    let rejoin = Body::JoinGroup(pb::JoinGroup { group_id });
    assert_eq!(bad.fail_code(rejoin.clone()).await, ErrorCode::Forbidden);
    let invite = Body::InviteToGroup(pb::InviteToGroup {
        group_id,
        user_id: bad.id(),
    });
    assert_eq!(member.fail_code(invite.clone()).await, ErrorCode::Forbidden);
    assert_eq!(found(&mut bad, "bangroup").await, 0, "not in search");
    assert_eq!(found(&mut member, "bangroup").await, 1);
    match owner.ok(Body::ListBans(pb::ListBans { group_id })).await {
        Body::UserList(l) => assert_eq!(l.users.len(), 1),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        member
            .fail_code(Body::ListBans(pb::ListBans { group_id }))
            .await,
        ErrorCode::Forbidden
    );

    // A ban of someone who never joined keeps them out too.
    let mut stranger = srv.user("ban_stranger").await;
    owner.ok(ban(group_id, stranger.id())).await;
    assert_eq!(
        stranger.fail_code(rejoin.clone()).await,
        ErrorCode::Forbidden
    );

    // Lifted: they may come back.
    owner
        .ok(Body::UnbanMember(pb::UnbanMember {
            group_id,
            user_id: bad.id(),
        }))
        .await;
    bad.ok(rejoin).await;
}
