//! Groups over real TCP: creation, joining open and closed groups, invitations, leaving,
//! kicking, roles, updates, ownership transfer, member lists, search and the size limit, with
//! the SYSTEM entries and events each change produces.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::time::Duration;

use common::*;
use confab_wire::Body;
use confab_wire::pb::{self, ErrorCode, group_change::Kind as Change, user_event::Kind};

async fn create(owner: &mut Client, name: &str, description: &str, open: bool) -> pb::Group {
    match owner
        .ok(Body::CreateGroup(pb::CreateGroup {
            name: name.into(),
            description: description.into(),
            open,
        }))
        .await
    {
        Body::Group(g) => g,
        b => panic!("expected Group, got {b:?}"),
    }
}

fn invite(group_id: u64, user_id: u64) -> Body {
    Body::InviteToGroup(pb::InviteToGroup { group_id, user_id })
}

fn join_req(group_id: u64) -> Body {
    Body::JoinGroup(pb::JoinGroup { group_id })
}

fn leave(group_id: u64) -> Body {
    Body::LeaveGroup(pb::LeaveGroup { group_id })
}

fn kick(group_id: u64, user_id: u64) -> Body {
    Body::KickMember(pb::KickMember {
        group_id,
        user_id,
        ban: false,
    })
}

fn set_role(group_id: u64, user_id: u64, role: pb::Role) -> Body {
    Body::SetMemberRole(pb::SetMemberRole {
        group_id,
        user_id,
        role: role as i32,
    })
}

fn decline(group_id: u64) -> Body {
    Body::DeclineGroupInvite(pb::DeclineGroupInvite { group_id })
}

fn transfer(group_id: u64, user_id: u64) -> Body {
    Body::TransferOwnership(pb::TransferOwnership { group_id, user_id })
}

fn send(thread_id: u64, cmid: &str, body: &str) -> Body {
    Body::Send(pb::Send {
        thread_id,
        client_msg_id: cmid.into(),
        body: body.into(),
        reply_to: 0,
    })
}

async fn list_groups(c: &mut Client) -> Vec<pb::Group> {
    match c.ok(Body::ListGroups(pb::ListGroups::default())).await {
        Body::GroupList(l) => l.groups,
        b => panic!("expected GroupList, got {b:?}"),
    }
}

async fn search_groups(c: &mut Client, query: &str) -> Vec<pb::Group> {
    match c
        .ok(Body::SearchGroups(pb::SearchGroups {
            query: query.into(),
            limit: 0,
        }))
        .await
    {
        Body::GroupList(l) => l.groups,
        b => panic!("expected GroupList, got {b:?}"),
    }
}

async fn members(c: &mut Client, group_id: u64, after: u64, limit: u32) -> pb::GroupMemberList {
    match c
        .ok(Body::ListGroupMembers(pb::ListGroupMembers {
            group_id,
            after_user_id: after,
            limit,
        }))
        .await
    {
        Body::GroupMemberList(l) => l,
        b => panic!("expected GroupMemberList, got {b:?}"),
    }
}

async fn role_of(c: &mut Client, group_id: u64, user_id: u64) -> pb::Role {
    let list = members(c, group_id, 0, 0).await;
    list.members
        .iter()
        .find(|m| m.user.as_ref().unwrap().user_id == user_id)
        .map_or(pb::Role::Unspecified, |m| {
            pb::Role::try_from(m.role).unwrap()
        })
}

async fn last_event_seq(c: &mut Client) -> u64 {
    match c.ok(Body::SyncEvents(pb::SyncEvents::default())).await {
        Body::EventPage(p) => p.last_event_seq,
        b => panic!("expected EventPage, got {b:?}"),
    }
}

/// The next pushed event whose kind matches (other pushes stay queued).
async fn event_where(c: &mut Client, pred: impl Fn(&Kind) -> bool) -> Kind {
    let b = c
        .push_where(|b| {
            matches!(b, Body::EventPush(p)
                if p.event.as_ref().and_then(|e| e.kind.as_ref()).is_some_and(&pred))
        })
        .await;
    match b {
        Body::EventPush(p) => p.event.unwrap().kind.unwrap(),
        _ => unreachable!(),
    }
}

/// The next pushed SYSTEM entry of `thread`.
async fn system_push(c: &mut Client, thread: u64) -> pb::ChatMessage {
    loop {
        let m = c.message_push(thread).await;
        if m.kind == pb::MessageKind::System as i32 {
            return m;
        }
    }
}

/// The group change of a SYSTEM entry, checked for kind, actor and subject.
fn expect_change(
    m: &pb::ChatMessage,
    kind: Change,
    actor: u64,
    subject: Option<u64>,
) -> pb::GroupChange {
    assert_eq!(m.kind, pb::MessageKind::System as i32, "{m:?}");
    let gc = m.group_change.clone().expect("group_change");
    assert_eq!(gc.kind, kind as i32, "{gc:?}");
    assert_eq!(gc.actor.as_ref().map(|u| u.user_id), Some(actor), "{gc:?}");
    assert_eq!(m.sender.as_ref().map(|u| u.user_id), Some(actor));
    if let Some(s) = subject {
        assert_eq!(gc.subject.as_ref().map(|u| u.user_id), Some(s), "{gc:?}");
    }
    gc
}

async fn thread_of(c: &mut Client, thread_id: u64) -> pb::Thread {
    match c
        .ok(Body::GetThread(pb::GetThread {
            thread_id,
            ..Default::default()
        }))
        .await
    {
        Body::Thread(t) => t,
        b => panic!("expected Thread, got {b:?}"),
    }
}

#[tokio::test]
async fn create_makes_the_creator_owner_with_a_created_entry() {
    let srv = TestServer::start().await;
    let mut owner = srv.user("founder").await;
    let g = create(&mut owner, "Rustaceans 🦀", "crabs only", true).await;
    assert_ne!(g.group_id, 0);
    assert_ne!(g.thread_id, 0);
    assert_eq!(g.name, "Rustaceans 🦀");
    assert_eq!(g.description, "crabs only");
    assert!(g.open);
    assert_eq!(g.owner_id, owner.id());
    assert_eq!(g.my_role, pb::Role::Owner as i32);
    assert_eq!(g.member_count, 1);
    assert!(g.created_ms > 0);
    assert!(!g.invited);

    match event_where(&mut owner, |k| matches!(k, Kind::GroupJoined(_))).await {
        Kind::GroupJoined(j) => assert_eq!(j.group_id, g.group_id),
        _ => unreachable!(),
    }
    match event_where(&mut owner, |k| matches!(k, Kind::ThreadAdded(_))).await {
        Kind::ThreadAdded(t) => {
            assert_eq!(t.thread_id, g.thread_id);
            assert_eq!(t.kind, pb::ThreadKind::Group as i32);
        }
        _ => unreachable!(),
    }

    // The CREATED entry is seq 1, pushed to the creator too.
    let pushed = system_push(&mut owner, g.thread_id).await;
    assert_eq!(pushed.seq, 1);
    let entries = owner.sync(g.thread_id, 0).await;
    assert_eq!(entries.len(), 1);
    let first = &entries[0];
    assert_eq!(first.seq, 1);
    assert_eq!(first.message_id, pushed.message_id);
    assert_eq!(first.sender_device_id, 0);
    assert!(first.client_msg_id.is_empty());
    let gc = expect_change(first, Change::Created, owner.id(), Some(owner.id()));
    assert_eq!(gc.name, "Rustaceans 🦀");
    assert_eq!(gc.description, "crabs only");
    assert!(gc.open);

    let t = thread_of(&mut owner, g.thread_id).await;
    assert_eq!(t.kind, pb::ThreadKind::Group as i32);
    assert_eq!(t.last_seq, 1);
    assert!(t.can_send);
    assert_eq!(t.group.unwrap().my_role, pb::Role::Owner as i32);
    let mine = list_groups(&mut owner).await;
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].my_role, pb::Role::Owner as i32);

    // Invalid names and descriptions.
    for (name, desc) in [
        ("", ""),
        ("   ", ""),
        (&*"g".repeat(65), ""),
        ("fine", &*"d".repeat(513)),
    ] {
        assert_eq!(
            owner
                .fail_code(Body::CreateGroup(pb::CreateGroup {
                    name: name.into(),
                    description: desc.into(),
                    open: true,
                }))
                .await,
            ErrorCode::BadRequest,
            "name {name:?}, description of {} bytes",
            desc.len()
        );
    }
    create(&mut owner, &"g".repeat(64), &"d".repeat(512), false).await;
}

#[tokio::test]
async fn joining_an_open_group_pushes_joined_to_the_members() {
    let srv = TestServer::start().await;
    let mut owner = srv.user("host").await;
    let g = create(&mut owner, "open house", "", true).await;
    system_push(&mut owner, g.thread_id).await; // CREATED

    let mut m1 = srv.user("guest1").await;
    let joined = join(&mut m1, g.group_id).await;
    assert_eq!(joined.my_role, pb::Role::Member as i32);
    assert_eq!(joined.member_count, 2);
    assert_eq!(joined.thread_id, g.thread_id);
    let e = system_push(&mut owner, g.thread_id).await;
    assert_eq!(e.seq, 2);
    expect_change(&e, Change::Joined, m1.id(), Some(m1.id()));
    match event_where(&mut m1, |k| matches!(k, Kind::GroupJoined(_))).await {
        Kind::GroupJoined(j) => assert_eq!(j.group_id, g.group_id),
        _ => unreachable!(),
    }
    match event_where(&mut m1, |k| matches!(k, Kind::ThreadAdded(_))).await {
        Kind::ThreadAdded(t) => assert_eq!(t.thread_id, g.thread_id),
        _ => unreachable!(),
    }

    let mut m2 = srv.user("guest2").await;
    join(&mut m2, g.group_id).await;
    for c in [&mut owner, &mut m1] {
        let mut e = system_push(c, g.thread_id).await;
        if e.seq == 2 {
            e = system_push(c, g.thread_id).await;
        }
        assert_eq!(e.seq, 3);
        expect_change(&e, Change::Joined, m2.id(), Some(m2.id()));
    }
    // A new member reads the whole thread, including what came before it joined.
    assert_eq!(
        m2.sync(g.thread_id, 0)
            .await
            .iter()
            .map(|m| m.seq)
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(
        m1.fail_code(join_req(g.group_id)).await,
        ErrorCode::Conflict
    );
    assert_eq!(
        owner.fail_code(join_req(g.group_id)).await,
        ErrorCode::Conflict
    );
    assert_eq!(m1.fail_code(join_req(987_654)).await, ErrorCode::NotFound);
}

#[tokio::test]
async fn closed_groups_are_joined_by_invitation() {
    let srv = TestServer::start().await;
    let mut owner = srv.user("gatekeeper").await;
    let mut inv = srv.user("invitee").await;
    let mut outsider = srv.user("outsider").await;
    let mut decl = srv.user("decliner").await;
    let g = create(&mut owner, "secret society", "", false).await;
    let gid = g.group_id;

    assert_eq!(
        outsider.fail_code(join_req(gid)).await,
        ErrorCode::Forbidden
    );
    assert!(matches!(owner.ok(invite(gid, inv.id())).await, Body::Ok(_)));
    match event_where(&mut inv, |k| matches!(k, Kind::GroupInvited(_))).await {
        Kind::GroupInvited(gi) => {
            assert_eq!(gi.group_id, gid);
            assert!(gi.invited);
            assert_eq!(gi.my_role, pb::Role::Unspecified as i32);
        }
        _ => unreachable!(),
    }
    let listed = list_groups(&mut inv).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].group_id, gid);
    assert!(listed[0].invited);
    assert_eq!(listed[0].my_role, pb::Role::Unspecified as i32);

    let joined = join(&mut inv, gid).await;
    assert_eq!(joined.my_role, pb::Role::Member as i32);
    assert!(!joined.invited);
    let listed = list_groups(&mut inv).await;
    assert_eq!(listed.len(), 1);
    assert!(!listed[0].invited);
    assert_eq!(listed[0].my_role, pb::Role::Member as i32);

    // A plain member may not invite to a closed group; a non-member may not invite at all.
    assert_eq!(
        inv.fail_code(invite(gid, outsider.id())).await,
        ErrorCode::Forbidden
    );
    assert_eq!(
        outsider.fail_code(invite(gid, decl.id())).await,
        ErrorCode::Forbidden
    );
    // Members cannot be invited; an invitation cannot be repeated.
    assert_eq!(
        owner.fail_code(invite(gid, inv.id())).await,
        ErrorCode::Conflict
    );
    assert_eq!(
        owner.fail_code(invite(gid, owner.id())).await,
        ErrorCode::Conflict
    );
    assert_eq!(
        owner.fail_code(invite(gid, 987_654)).await,
        ErrorCode::NotFound
    );
    owner.ok(invite(gid, decl.id())).await;
    assert_eq!(
        owner.fail_code(invite(gid, decl.id())).await,
        ErrorCode::Conflict
    );

    // Declining removes the invitation.
    assert!(matches!(decl.ok(decline(gid)).await, Body::Ok(_)));
    assert!(list_groups(&mut decl).await.is_empty());
    assert_eq!(decl.fail_code(join_req(gid)).await, ErrorCode::Forbidden);
    assert_eq!(decl.fail_code(decline(gid)).await, ErrorCode::NotFound);
    assert_eq!(outsider.fail_code(decline(gid)).await, ErrorCode::NotFound);

    // An admin may invite to a closed group.
    owner.ok(set_role(gid, inv.id(), pb::Role::Admin)).await;
    inv.ok(invite(gid, outsider.id())).await;
    let j = join(&mut outsider, gid).await;
    assert_eq!(j.member_count, 3);

    // In an open group any member may invite.
    let open = create(&mut owner, "open club", "", true).await;
    join(&mut decl, open.group_id).await;
    assert!(matches!(
        decl.ok(invite(open.group_id, inv.id())).await,
        Body::Ok(_)
    ));
    match event_where(
        &mut inv,
        |k| matches!(k, Kind::GroupInvited(g) if g.group_id == open.group_id),
    )
    .await
    {
        Kind::GroupInvited(gi) => assert!(gi.invited),
        _ => unreachable!(),
    }
}

/// PROTOCOL.md §5.5: DeclineGroupInvite sends "event group_left → the decliner only, so its
/// other devices drop the invitation".
#[tokio::test]
async fn declining_an_invitation_sends_group_left_to_the_decliner() {
    let srv = TestServer::start().await;
    let mut owner = srv.user("inviter2").await;
    let mut decl = srv.user("decliner2").await;
    let g = create(&mut owner, "closed circle", "", false).await;
    owner.ok(invite(g.group_id, decl.id())).await;
    event_where(&mut decl, |k| matches!(k, Kind::GroupInvited(_))).await;
    let before = last_event_seq(&mut decl).await;

    decl.ok(decline(g.group_id)).await;
    assert_eq!(
        last_event_seq(&mut decl).await,
        before + 1,
        "declining must append a group_left event"
    );
    match event_where(&mut decl, |k| matches!(k, Kind::GroupLeft(_))).await {
        Kind::GroupLeft(left) => {
            assert_eq!(left.group_id, g.group_id);
            assert!(!left.invited);
        }
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn leaving_ends_sending_but_keeps_history_up_to_the_left_entry() {
    let srv = TestServer::start().await;
    let mut owner = srv.user("stayer").await;
    let mut m = srv.user("goer").await;
    let g = create(&mut owner, "waypoint", "", true).await;
    let t = g.thread_id;
    join(&mut m, g.group_id).await;
    owner.send_text(t, "b1", "before").await; // seq 3

    assert_eq!(
        owner.fail_code(leave(g.group_id)).await,
        ErrorCode::Conflict,
        "the owner transfers ownership first"
    );
    assert!(matches!(m.ok(leave(g.group_id)).await, Body::Ok(_)));
    match event_where(&mut m, |k| matches!(k, Kind::GroupLeft(_))).await {
        Kind::GroupLeft(left) => {
            assert_eq!(left.group_id, g.group_id);
            assert_eq!(left.my_role, pb::Role::Unspecified as i32);
        }
        _ => unreachable!(),
    }
    let mut e = system_push(&mut owner, t).await;
    while e.seq < 4 {
        e = system_push(&mut owner, t).await;
    }
    assert_eq!(e.seq, 4);
    expect_change(&e, Change::Left, m.id(), Some(m.id()));

    assert_eq!(
        m.fail_code(send(t, "x1", "still here?")).await,
        ErrorCode::Forbidden
    );
    owner.send_text(t, "a1", "after").await; // seq 5

    let seen = m.sync(t, 0).await;
    assert_eq!(seen.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
    expect_change(&seen[3], Change::Left, m.id(), Some(m.id()));
    assert!(seen.iter().all(|e| e.body != "after"));
    let Body::MessagePage(page) = m
        .ok(Body::SyncThread(pb::SyncThread {
            thread_id: t,
            since_seq: 4,
            limit: 0,
        }))
        .await
    else {
        panic!("expected MessagePage")
    };
    assert!(page.messages.is_empty());
    assert_eq!(page.last_seq, 4);
    let Body::MessagePage(hist) = m
        .ok(Body::History(pb::History {
            thread_id: t,
            before_seq: 0,
            limit: 0,
        }))
        .await
    else {
        panic!("expected MessagePage")
    };
    assert_eq!(hist.messages.last().unwrap().seq, 4);
    assert_eq!(hist.last_seq, 4);
    let th = thread_of(&mut m, t).await;
    assert_eq!(th.last_seq, 4);
    assert!(!th.can_send);
    // Its activity stops at its LEFT entry too: later entries neither show nor reorder its list.
    assert_eq!(th.activity_id, seen[3].message_id);
    let mut other = srv.user("goer_friend").await;
    let private = befriend(&mut m, &mut other).await; // a thread made after the LEFT entry
    owner.send_text(t, "a2", "after again").await; // seq 6, newer than the private thread
    let Body::ThreadList(list) = m.ok(Body::ListThreads(pb::ListThreads::default())).await else {
        panic!("expected ThreadList")
    };
    let order: Vec<u64> = list.threads.iter().map(|x| x.thread_id).collect();
    assert_eq!(
        order,
        [private, t],
        "the group thread ranks by its LEFT entry"
    );
    assert_eq!(list.threads[1].activity_id, seen[3].message_id);
    let Body::ThreadList(older) = m
        .ok(Body::ListThreads(pb::ListThreads {
            before_activity_id: list.threads[0].activity_id,
            limit: 0,
        }))
        .await
    else {
        panic!("expected ThreadList")
    };
    assert_eq!(older.threads.len(), 1, "paging uses the same activity");
    assert_eq!(older.threads[0].thread_id, t);

    // A former member may still mark what it can read as read; the receipt is its own business.
    assert!(matches!(
        m.ok(Body::ReadUpTo(pb::ReadUpTo {
            thread_id: t,
            seq: 99
        }))
        .await,
        Body::Ok(_)
    ));
    match m
        .push_where(|b| matches!(b, Body::ReadReceiptPush(r) if r.thread_id == t))
        .await
    {
        Body::ReadReceiptPush(r) => assert_eq!(r.read_seq, 4, "clamped to what it can read"),
        _ => unreachable!(),
    }
    owner
        .no_push_where(Duration::from_millis(500), |b| {
            matches!(b, Body::ReadReceiptPush(r) if r.user.as_ref().map(|u| u.user_id) == Some(m.id()))
        })
        .await;

    assert!(list_groups(&mut m).await.is_empty());
    assert_eq!(m.fail_code(leave(g.group_id)).await, ErrorCode::Forbidden);
    assert_eq!(
        m.fail_code(Body::ListGroupMembers(pb::ListGroupMembers {
            group_id: g.group_id,
            ..Default::default()
        }))
        .await,
        ErrorCode::Forbidden
    );
    // The owner's view is unaffected.
    assert_eq!(owner.sync(t, 0).await.len(), 6);
}

/// Waits for a pushed SYSTEM entry of `kind` (other pushes stay queued).
async fn change_push(c: &mut Client, kind: Change) -> pb::ChatMessage {
    let b = c
        .push_where(|b| {
            matches!(b, Body::MessagePush(p) if p.message.as_ref().is_some_and(|m|
                m.group_change.as_ref().is_some_and(|c| c.kind == kind as i32)))
        })
        .await;
    match b {
        Body::MessagePush(p) => p.message.unwrap(),
        _ => unreachable!(),
    }
}

/// PROTOCOL.md §5.5: a SYSTEM entry "is pushed like any other entry, including to the acting
/// connection and to the subject of a LEFT or KICKED entry".
#[tokio::test]
async fn the_leaver_gets_its_left_entry_pushed() {
    let srv = TestServer::start().await;
    let mut owner = srv.user("boss").await;
    let mut leaver = srv.user("quitter").await;
    let g = create(&mut owner, "push check", "", true).await;
    join(&mut leaver, g.group_id).await;
    leaver.ok(leave(g.group_id)).await;
    let e = change_push(&mut leaver, Change::Left).await;
    expect_change(&e, Change::Left, leaver.id(), Some(leaver.id()));
}

/// PROTOCOL.md §5.5, as above, for KICKED.
#[tokio::test]
async fn the_kicked_member_gets_its_kicked_entry_pushed() {
    let srv = TestServer::start().await;
    let mut owner = srv.user("boss2").await;
    let mut kicked = srv.user("kicked2").await;
    let g = create(&mut owner, "push check 2", "", true).await;
    join(&mut kicked, g.group_id).await;
    owner.ok(kick(g.group_id, kicked.id())).await;
    let e = change_push(&mut kicked, Change::Kicked).await;
    expect_change(&e, Change::Kicked, owner.id(), Some(kicked.id()));
}

#[tokio::test]
async fn kick_rules_follow_the_roles() {
    let srv = TestServer::start().await;
    let mut o = srv.user("k_owner").await;
    let mut a1 = srv.user("k_admin1").await;
    let mut a2 = srv.user("k_admin2").await;
    let mut m1 = srv.user("k_member1").await;
    let mut m2 = srv.user("k_member2").await;
    let g = create(&mut o, "kickers", "", true).await;
    let gid = g.group_id;
    for c in [&mut a1, &mut a2, &mut m1, &mut m2] {
        join(c, gid).await;
    }
    o.ok(set_role(gid, a1.id(), pb::Role::Admin)).await;
    o.ok(set_role(gid, a2.id(), pb::Role::Admin)).await;

    // Members kick nobody.
    for target in [m2.id(), a1.id(), o.id()] {
        assert_eq!(m1.fail_code(kick(gid, target)).await, ErrorCode::Forbidden);
    }
    // Admins kick members only.
    assert!(matches!(a1.ok(kick(gid, m1.id())).await, Body::Ok(_)));
    match event_where(&mut m1, |k| matches!(k, Kind::GroupLeft(_))).await {
        Kind::GroupLeft(left) => assert_eq!(left.group_id, gid),
        _ => unreachable!(),
    }
    let entries = o.sync(g.thread_id, 0).await;
    let last = entries.last().unwrap();
    expect_change(last, Change::Kicked, a1.id(), Some(m1.id()));
    assert_eq!(
        m1.fail_code(send(g.thread_id, "k1", "let me back")).await,
        ErrorCode::Forbidden
    );
    assert_eq!(
        a1.fail_code(kick(gid, m1.id())).await,
        ErrorCode::NotFound,
        "no longer a member"
    );
    assert_eq!(a1.fail_code(kick(gid, a2.id())).await, ErrorCode::Forbidden);
    // Nobody kicks the owner.
    for c in [&mut a1, &mut a2, &mut m2] {
        assert_eq!(c.fail_code(kick(gid, o.id())).await, ErrorCode::Forbidden);
    }
    // Kicking oneself is FORBIDDEN whatever the role (PROTOCOL.md §5.5: leave instead).
    for c in [&mut o, &mut a1, &mut m2] {
        let id = c.id();
        assert_eq!(c.fail_code(kick(gid, id)).await, ErrorCode::Forbidden);
    }
    // The owner kicks admins.
    assert!(matches!(o.ok(kick(gid, a2.id())).await, Body::Ok(_)));
    let entries = o.sync(g.thread_id, 0).await;
    expect_change(
        entries.last().unwrap(),
        Change::Kicked,
        o.id(),
        Some(a2.id()),
    );

    let list = members(&mut o, gid, 0, 0).await;
    let mut ids: Vec<u64> = list
        .members
        .iter()
        .map(|m| m.user.as_ref().unwrap().user_id)
        .collect();
    ids.sort_unstable();
    let mut expected = vec![o.id(), a1.id(), m2.id()];
    expected.sort_unstable();
    assert_eq!(ids, expected);
}

#[tokio::test]
async fn set_member_role_is_for_the_owner_and_announced() {
    let srv = TestServer::start().await;
    let mut o = srv.user("r_owner").await;
    let mut m = srv.user("r_member").await;
    let mut other = srv.user("r_other").await;
    let outsider = srv.user("r_outsider").await;
    let g = create(&mut o, "roles", "", true).await;
    let gid = g.group_id;
    join(&mut m, gid).await;
    join(&mut other, gid).await;

    assert!(matches!(
        o.ok(set_role(gid, m.id(), pb::Role::Admin)).await,
        Body::Ok(_)
    ));
    match event_where(&mut m, |k| matches!(k, Kind::GroupUpdated(_))).await {
        Kind::GroupUpdated(u) => {
            assert_eq!(u.group_id, gid);
            assert_eq!(u.my_role, pb::Role::Admin as i32);
        }
        _ => unreachable!(),
    }
    let e = loop {
        let e = system_push(&mut other, g.thread_id).await;
        if e.group_change.as_ref().unwrap().kind == Change::RoleChanged as i32 {
            break e;
        }
    };
    let gc = expect_change(&e, Change::RoleChanged, o.id(), Some(m.id()));
    assert_eq!(gc.role, pb::Role::Admin as i32);
    assert_eq!(role_of(&mut o, gid, m.id()).await, pb::Role::Admin);

    // Only the owner sets roles; admins and members may not.
    assert_eq!(
        m.fail_code(set_role(gid, other.id(), pb::Role::Admin))
            .await,
        ErrorCode::Forbidden
    );
    assert_eq!(
        other
            .fail_code(set_role(gid, other.id(), pb::Role::Admin))
            .await,
        ErrorCode::Forbidden
    );
    // OWNER (use TransferOwnership) and UNSPECIFIED are not roles to set.
    for role in [pb::Role::Owner, pb::Role::Unspecified] {
        assert_eq!(
            o.fail_code(set_role(gid, m.id(), role)).await,
            ErrorCode::BadRequest,
            "{role:?}"
        );
    }
    assert_eq!(
        o.fail_code(set_role(gid, outsider.id(), pb::Role::Admin))
            .await,
        ErrorCode::NotFound
    );

    // Setting the role a member already has changes nothing.
    let seq_before = thread_of(&mut o, g.thread_id).await.last_seq;
    let events_before = last_event_seq(&mut m).await;
    o.ok(set_role(gid, m.id(), pb::Role::Admin)).await;
    assert_eq!(thread_of(&mut o, g.thread_id).await.last_seq, seq_before);
    assert_eq!(last_event_seq(&mut m).await, events_before);

    // And back to MEMBER.
    o.ok(set_role(gid, m.id(), pb::Role::Member)).await;
    match event_where(
        &mut m,
        |k| matches!(k, Kind::GroupUpdated(g) if g.my_role == pb::Role::Member as i32),
    )
    .await
    {
        Kind::GroupUpdated(u) => assert_eq!(u.group_id, gid),
        _ => unreachable!(),
    }
    let entries = o.sync(g.thread_id, seq_before).await;
    assert_eq!(entries.len(), 1);
    let gc = expect_change(&entries[0], Change::RoleChanged, o.id(), Some(m.id()));
    assert_eq!(gc.role, pb::Role::Member as i32);
}

/// PROTOCOL.md §5.5: SetMemberRole is `BAD_REQUEST (role not MEMBER/ADMIN, or the subject is
/// the owner)`.
#[tokio::test]
async fn set_member_role_on_the_owner_is_a_bad_request() {
    let srv = TestServer::start().await;
    let mut o = srv.user("self_owner").await;
    let g = create(&mut o, "mine", "", true).await;
    assert_eq!(
        o.fail_code(set_role(g.group_id, o.id(), pb::Role::Admin))
            .await,
        ErrorCode::BadRequest
    );
}

/// PROTOCOL.md §5.5: TransferOwnership is `BAD_REQUEST (self)`.
#[tokio::test]
async fn transfer_ownership_to_oneself_is_a_bad_request() {
    let srv = TestServer::start().await;
    let mut o = srv.user("self_owner2").await;
    let g = create(&mut o, "mine too", "", true).await;
    assert_eq!(
        o.fail_code(transfer(g.group_id, o.id())).await,
        ErrorCode::BadRequest
    );
}

#[tokio::test]
async fn update_group_by_admins_adds_an_updated_entry() {
    let srv = TestServer::start().await;
    let mut o = srv.user("u_owner").await;
    let mut a = srv.user("u_admin").await;
    let mut m = srv.user("u_member").await;
    let mut outsider = srv.user("u_outsider").await;
    let g = create(&mut o, "old name", "old description", true).await;
    let gid = g.group_id;
    join(&mut a, gid).await;
    join(&mut m, gid).await;
    o.ok(set_role(gid, a.id(), pb::Role::Admin)).await;
    let update = |name: Option<&str>, description: Option<&str>, open: Option<bool>| {
        Body::UpdateGroup(pb::UpdateGroup {
            group_id: gid,
            name: name.map(Into::into),
            description: description.map(Into::into),
            open,
        })
    };

    let seq_before = thread_of(&mut o, g.thread_id).await.last_seq;
    let Body::Group(updated) = a.ok(update(Some("new name"), None, None)).await else {
        panic!("expected Group")
    };
    assert_eq!(updated.name, "new name");
    assert_eq!(updated.description, "old description");
    assert!(updated.open);
    let e = loop {
        let e = system_push(&mut m, g.thread_id).await;
        if e.seq > seq_before {
            break e;
        }
    };
    assert_eq!(e.seq, seq_before + 1);
    let gc = expect_change(&e, Change::Updated, a.id(), None);
    assert_eq!(gc.name, "new name");
    assert_eq!(gc.description, "old description");
    assert!(gc.open);
    assert_eq!(list_groups(&mut m).await[0].name, "new name");

    assert_eq!(
        m.fail_code(update(Some("member name"), None, None)).await,
        ErrorCode::Forbidden
    );
    assert_eq!(
        outsider
            .fail_code(update(Some("outsider name"), None, None))
            .await,
        ErrorCode::Forbidden
    );
    assert_eq!(
        o.fail_code(update(Some(""), None, None)).await,
        ErrorCode::BadRequest,
        "a present empty name"
    );

    // A present empty description clears it; the owner may update too.
    let Body::Group(cleared) = o.ok(update(None, Some(""), Some(false))).await else {
        panic!("expected Group")
    };
    assert_eq!(cleared.name, "new name");
    assert!(cleared.description.is_empty());
    assert!(!cleared.open);
    let entries = o.sync(g.thread_id, seq_before + 1).await;
    assert_eq!(entries.len(), 1);
    let gc = expect_change(&entries[0], Change::Updated, o.id(), None);
    assert_eq!(gc.name, "new name");
    assert!(gc.description.is_empty());
    assert!(!gc.open);

    // An update that changes nothing adds nothing.
    o.ok(update(Some("new name"), None, Some(false))).await;
    assert_eq!(
        thread_of(&mut o, g.thread_id).await.last_seq,
        seq_before + 2
    );
}

#[tokio::test]
async fn transfer_ownership_lets_the_old_owner_leave() {
    let srv = TestServer::start().await;
    let mut o = srv.user("t_owner").await;
    let mut heir = srv.user("t_heir").await;
    let outsider = srv.user("t_outsider").await;
    let g = create(&mut o, "dynasty", "", true).await;
    let gid = g.group_id;
    join(&mut heir, gid).await;

    assert_eq!(
        heir.fail_code(transfer(gid, heir.id())).await,
        ErrorCode::Forbidden
    );
    assert_eq!(
        o.fail_code(transfer(gid, outsider.id())).await,
        ErrorCode::NotFound
    );
    assert!(matches!(o.ok(transfer(gid, heir.id())).await, Body::Ok(_)));
    match event_where(&mut heir, |k| matches!(k, Kind::GroupUpdated(_))).await {
        Kind::GroupUpdated(u) => {
            assert_eq!(u.my_role, pb::Role::Owner as i32);
            assert_eq!(u.owner_id, heir.id());
        }
        _ => unreachable!(),
    }
    match event_where(&mut o, |k| matches!(k, Kind::GroupUpdated(_))).await {
        Kind::GroupUpdated(u) => {
            assert_eq!(u.my_role, pb::Role::Admin as i32);
            assert_eq!(u.owner_id, heir.id());
        }
        _ => unreachable!(),
    }
    let entries = o.sync(g.thread_id, 0).await;
    expect_change(
        entries.last().unwrap(),
        Change::OwnerTransferred,
        o.id(),
        Some(heir.id()),
    );
    let oid = o.id();
    assert_eq!(role_of(&mut o, gid, oid).await, pb::Role::Admin);
    assert_eq!(role_of(&mut o, gid, heir.id()).await, pb::Role::Owner);
    assert_eq!(list_groups(&mut heir).await[0].owner_id, heir.id());

    // The new owner is now the one who cannot leave; the old one can.
    assert_eq!(heir.fail_code(leave(gid)).await, ErrorCode::Conflict);
    assert_eq!(
        o.fail_code(transfer(gid, heir.id())).await,
        ErrorCode::Forbidden,
        "no longer the owner"
    );
    assert!(matches!(o.ok(leave(gid)).await, Body::Ok(_)));
    let list = members(&mut heir, gid, 0, 0).await;
    assert_eq!(list.members.len(), 1);
    assert_eq!(list.members[0].role, pb::Role::Owner as i32);
}

#[tokio::test]
async fn list_group_members_pages_by_user_id() {
    let srv = TestServer::start().await;
    let mut o = srv.user("l_owner").await;
    let g = create(&mut o, "listed", "", true).await;
    let gid = g.group_id;
    let mut joined = Vec::new();
    for i in 0..4 {
        let mut c = srv.user(&format!("l_member{i}")).await;
        join(&mut c, gid).await;
        joined.push(c);
    }
    o.ok(set_role(gid, joined[1].id(), pb::Role::Admin)).await;
    let mut outsider = srv.user("l_outsider").await;

    let all = members(&mut o, gid, 0, 0).await;
    assert_eq!(all.group_id, gid);
    assert!(!all.has_more);
    assert_eq!(all.members.len(), 5);
    let ids: Vec<u64> = all
        .members
        .iter()
        .map(|m| m.user.as_ref().unwrap().user_id)
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ordered by user_id");
    for m in &all.members {
        let u = m.user.as_ref().unwrap();
        let expected = if u.user_id == o.id() {
            pb::Role::Owner
        } else if u.user_id == joined[1].id() {
            pb::Role::Admin
        } else {
            pb::Role::Member
        };
        assert_eq!(m.role, expected as i32, "{}", u.name);
        assert!(m.online, "{} is connected", u.name);
        assert!(m.joined_ms > 0);
    }

    // Pages of two.
    let mut paged = Vec::new();
    let mut after = 0;
    let mut pages = 0;
    loop {
        let page = members(&mut joined[3], gid, after, 2).await;
        pages += 1;
        assert!(page.members.len() <= 2);
        after = page
            .members
            .last()
            .map_or(after, |m| m.user.as_ref().unwrap().user_id);
        paged.extend(page.members);
        if !page.has_more {
            break;
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 3);
    assert_eq!(paged, all.members);

    assert_eq!(
        outsider
            .fail_code(Body::ListGroupMembers(pb::ListGroupMembers {
                group_id: gid,
                ..Default::default()
            }))
            .await,
        ErrorCode::Forbidden
    );
    assert_eq!(
        o.fail_code(Body::ListGroupMembers(pb::ListGroupMembers {
            group_id: 987_654,
            ..Default::default()
        }))
        .await,
        ErrorCode::NotFound
    );
}

#[tokio::test]
async fn search_groups_finds_open_groups_only() {
    let srv = TestServer::start().await;
    let mut o = srv.user("s_owner").await;
    let mut searcher = srv.user("s_searcher").await;
    let lovers = create(&mut o, "Rust Lovers", "", true).await;
    create(&mut o, "Rust Secret", "", false).await;
    create(&mut o, "Go Gophers", "", true).await;
    create(&mut o, "学习小组", "", true).await;

    let found = search_groups(&mut searcher, "rust").await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].group_id, lovers.group_id);
    assert_eq!(found[0].my_role, pb::Role::Unspecified as i32);
    assert_eq!(found[0].member_count, 1);
    assert_eq!(search_groups(&mut searcher, "LOVERS").await.len(), 1);
    assert_eq!(search_groups(&mut searcher, "t lo").await.len(), 1);
    assert_eq!(search_groups(&mut searcher, "小组").await.len(), 1);
    assert!(search_groups(&mut searcher, "secret").await.is_empty());
    assert!(search_groups(&mut searcher, "python").await.is_empty());
    assert_eq!(
        search_groups(&mut o, "rust").await[0].my_role,
        pb::Role::Owner as i32
    );
    assert_eq!(
        searcher
            .fail_code(Body::SearchGroups(pb::SearchGroups {
                query: String::new(),
                limit: 0,
            }))
            .await,
        ErrorCode::BadRequest
    );
    // Closing a group hides it from search.
    o.ok(Body::UpdateGroup(pb::UpdateGroup {
        group_id: lovers.group_id,
        open: Some(false),
        ..Default::default()
    }))
    .await;
    assert!(search_groups(&mut searcher, "rust").await.is_empty());
}

/// PROTOCOL.md §5.5: SearchGroups matches "open groups whose name contains `query`,
/// case-insensitive" (user names are compared with Unicode case folding, §5.3).
#[tokio::test]
async fn search_groups_ignores_case_beyond_ascii() {
    let srv = TestServer::start().await;
    let mut o = srv.user("s_owner2").await;
    let g = create(&mut o, "ÉCOLE Ünïversité", "", true).await;
    let found = search_groups(&mut o, "école").await;
    assert_eq!(
        found.iter().map(|g| g.group_id).collect::<Vec<_>>(),
        [g.group_id],
        "lower-case query for an upper-case non-ASCII name"
    );
}

#[tokio::test]
async fn a_full_group_refuses_more_members() {
    let srv = TestServer::start_with(|cfg| cfg.max_group_members = 3).await;
    let mut o = srv.user("f_owner").await;
    let limits = o.hello.as_ref().unwrap().limits.unwrap();
    assert_eq!(limits.max_group_members, 3);
    let g = create(&mut o, "tiny", "", true).await;
    let mut m2 = srv.user("f_second").await;
    let mut m3 = srv.user("f_third").await;
    let mut m4 = srv.user("f_fourth").await;
    join(&mut m2, g.group_id).await;
    let third = join(&mut m3, g.group_id).await;
    assert_eq!(third.member_count, 3);
    assert_eq!(
        m4.fail_code(join_req(g.group_id)).await,
        ErrorCode::LimitReached
    );
    // An invitation does not get around the limit.
    let closed = create(&mut o, "tiny closed", "", false).await;
    o.ok(invite(closed.group_id, m2.id())).await;
    o.ok(invite(closed.group_id, m3.id())).await;
    o.ok(invite(closed.group_id, m4.id())).await;
    join(&mut m2, closed.group_id).await;
    join(&mut m3, closed.group_id).await;
    assert_eq!(
        m4.fail_code(join_req(closed.group_id)).await,
        ErrorCode::LimitReached
    );
    // Room again after someone leaves.
    m3.ok(leave(g.group_id)).await;
    join(&mut m4, g.group_id).await;
}
