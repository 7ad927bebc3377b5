//! Administration (protocol 1.5) on the embedded store and, with CONFAB_TEST_MYSQL, on MariaDB:
//! who may send Admin requests (server admins, the admin socket), deactivation, registration
//! policies with invitation codes, deleting one's account, deleting and transferring groups,
//! and the audit log that records each of them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::common;

use common::*;
use confab_server::config::Registration;
use confab_wire::Body;
use confab_wire::pb::{self, ErrorCode};

fn set(name: &str, action: pb::AdminUserAction) -> Body {
    Body::AdminSetUser(pb::AdminSetUser {
        name: name.into(),
        action: action as i32,
    })
}

fn stats() -> Body {
    Body::AdminGetStats(pb::AdminGetStats {})
}

fn register(name: &str, code: &str) -> Body {
    Body::Register(pb::Register {
        name: name.into(),
        password: PASSWORD.into(),
        device_name: "test".into(),
        invite_code: code.into(),
    })
}

async fn audit(c: &mut Client) -> Vec<pb::AuditEntry> {
    match c
        .ok(Body::AdminListAudit(pb::AdminListAudit {
            before_id: 0,
            limit: 0,
        }))
        .await
    {
        Body::AdminAuditPage(p) => p.entries,
        other => panic!("{other:?}"),
    }
}

/// The console: a connection on the server's admin socket.
async fn console(srv: &TestServer) -> Client {
    let path = srv.dir.path().join("admin.sock");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the admin socket is its owner's only");
    let stream = tokio::net::UnixStream::connect(&path).await.unwrap();
    let mut c = Client::from_stream(stream);
    c.hello_with_token("").await;
    c
}

#[tokio::test]
async fn admin_requests_are_for_server_admins_and_the_console_only() {
    let srv = TestServer::start_with(|c| c.admins = vec!["boss".into()]).await;
    let mut boss = srv.user("Boss").await;
    let mut bob = srv.user("adm_bob").await;
    assert_eq!(bob.fail_code(stats()).await, ErrorCode::Forbidden);
    // Named by --admin (folded: "Boss" is "boss").
    match boss.ok(stats()).await {
        Body::AdminStats(s) => {
            assert_eq!(s.users, 2);
            assert_eq!(s.online_users, 2);
        }
        other => panic!("{other:?}"),
    }
    // The console promotes bob; then he may too.
    let mut root = console(&srv).await;
    root.ok(set("adm_bob", pb::AdminUserAction::Promote)).await;
    bob.ok(stats()).await;
    root.ok(set("adm_bob", pb::AdminUserAction::Demote)).await;
    assert_eq!(bob.fail_code(stats()).await, ErrorCode::Forbidden);
    // The console runs Admin requests and nothing else.
    let e = root
        .fail(Body::ListFriends(pb::ListFriends::default()))
        .await;
    assert_eq!(e.code, ErrorCode::Forbidden as i32, "{e}");
    // Unknown users and missing names are typed errors.
    assert_eq!(
        root.fail_code(set("nobody_here", pb::AdminUserAction::Promote))
            .await,
        ErrorCode::NotFound
    );
    assert_eq!(
        root.fail_code(set(" ", pb::AdminUserAction::Promote)).await,
        ErrorCode::BadRequest
    );
    assert_eq!(
        root.fail_code(set("adm_bob", pb::AdminUserAction::Unspecified))
            .await,
        ErrorCode::BadRequest
    );
    let log = audit(&mut root).await;
    let actions: Vec<(&str, &str, &str)> = log
        .iter()
        .map(|e| (e.actor.as_str(), e.action.as_str(), e.target.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("console", "user.demote", "adm_bob"),
            ("console", "user.promote", "adm_bob"),
        ],
        "newest first"
    );
}

#[tokio::test]
async fn a_deactivated_user_is_logged_out_at_once_and_cannot_log_in_until_reactivated() {
    let srv = TestServer::start_with(|c| c.admins = vec!["dea_admin".into()]).await;
    let mut admin = srv.user("dea_admin").await;
    let mut bob = srv.user("dea_bob").await;
    let mut bob2 = login_as(&srv, "dea_bob").await;
    assert_eq!(
        admin
            .fail_code(set("dea_admin", pb::AdminUserAction::Deactivate))
            .await,
        ErrorCode::Conflict,
        "not oneself"
    );
    admin
        .ok(set("dea_bob", pb::AdminUserAction::Deactivate))
        .await;
    for c in [&mut bob, &mut bob2] {
        c.expect_closed_with(ErrorCode::AccountDisabled).await;
    }
    let mut again = srv.client().await;
    match again.login("dea_bob", PASSWORD).await {
        Body::Error(e) => assert_eq!(e.code, ErrorCode::AccountDisabled as i32, "{e}"),
        other => panic!("{other:?}"),
    }
    // Without the password nothing says the account is deactivated.
    match again.login("dea_bob", "not the password").await {
        Body::Error(e) => assert_eq!(e.code, ErrorCode::AuthFailed as i32, "{e}"),
        other => panic!("{other:?}"),
    }
    // The old resume token is dead, and the name stays taken.
    let mut resumed = Client::raw(srv.addr).await;
    assert!(resumed.hello_with_token(&bob.token).await.resume_failed);
    assert_eq!(
        again.fail_code(register("dea_bob", "")).await,
        ErrorCode::NameTaken
    );
    match admin
        .ok(Body::AdminGetUser(pb::AdminGetUser {
            name: "DEA_BOB".into(),
        }))
        .await
    {
        Body::AdminUser(u) => {
            assert_ne!(u.disabled_ms, 0);
            assert_eq!(u.devices, 0, "every session ended");
            assert!(u.sessions.is_empty());
        }
        other => panic!("{other:?}"),
    }
    admin
        .ok(set("dea_bob", pb::AdminUserAction::Reactivate))
        .await;
    assert!(matches!(
        again.login("dea_bob", PASSWORD).await,
        Body::AuthOk(_)
    ));
    let actions: Vec<String> = audit(&mut admin)
        .await
        .into_iter()
        .map(|e| format!("{} {} {}", e.actor, e.action, e.target))
        .collect();
    assert_eq!(
        actions,
        [
            "dea_admin user.reactivate dea_bob",
            "dea_admin user.deactivate dea_bob"
        ]
    );
}

#[tokio::test]
async fn a_reset_password_ends_every_session_and_the_new_one_works() {
    let srv = TestServer::start_with(|c| c.admins = vec!["rst_admin".into()]).await;
    let mut carl = srv.user("rst_carl").await;
    let mut root = srv.user("rst_admin").await;
    let reset = |pw: &str| {
        Body::AdminResetPassword(pb::AdminResetPassword {
            name: "rst_carl".into(),
            new_password: pw.into(),
        })
    };
    assert_eq!(root.fail_code(reset("")).await, ErrorCode::BadRequest);
    root.ok(reset("a brand new password")).await;
    carl.expect_closed_with(ErrorCode::AuthFailed).await;
    let mut c = srv.client().await;
    assert!(matches!(
        c.login("rst_carl", PASSWORD).await,
        Body::Error(_)
    ));
    assert!(matches!(
        c.login("rst_carl", "a brand new password").await,
        Body::AuthOk(_)
    ));
}

#[tokio::test]
async fn closed_registration_refuses_everyone_and_says_so_in_hello() {
    let srv = TestServer::start_with(|c| c.registration = Registration::Closed).await;
    let mut c = srv.client().await;
    assert_eq!(
        c.hello.as_ref().unwrap().registration,
        pb::Registration::Closed as i32
    );
    let e = c.fail(register("cls_ann", "")).await;
    assert_eq!(e.code, ErrorCode::Forbidden as i32);
    assert!(e.message.contains("closed"), "{e}");
}

#[tokio::test]
async fn invite_registration_takes_a_valid_code_as_often_as_it_allows() {
    let srv = TestServer::start_with(|c| c.registration = Registration::Invite).await;
    let mut root = console(&srv).await;
    let create = |uses: u32, expires_in_ms: i64| {
        Body::AdminCreateInvite(pb::AdminCreateInvite {
            uses,
            expires_in_ms,
            note: "for the team".into(),
        })
    };
    let invite = match root.ok(create(2, 0)).await {
        Body::AdminInvite(i) => i,
        other => panic!("{other:?}"),
    };
    let (id, secret) = invite.code.split_once('.').unwrap();
    assert_eq!(id, invite.invite_id.to_string());
    assert!(secret.len() >= 22, "at least 128 bits: {secret}");
    assert_eq!(root.fail_code(create(2, -1)).await, ErrorCode::BadRequest);

    let mut c = srv.client().await;
    assert_eq!(
        c.hello.as_ref().unwrap().registration,
        pb::Registration::Invite as i32
    );
    let refused = |e: pb::Error| {
        assert_eq!(e.code, ErrorCode::Forbidden as i32, "{e}");
        e.message
    };
    assert!(refused(c.fail(register("inv_a", "")).await).contains("invitation code"));
    let wrong = format!("{id}.{}x", &secret[..secret.len() - 1]);
    for bad in [wrong.as_str(), "garbage", "999.abc"] {
        refused(c.fail(register("inv_a", bad)).await);
    }
    for name in ["inv_a", "inv_b"] {
        let mut c = srv.client().await;
        assert!(matches!(
            c.ok(register(name, &invite.code)).await,
            Body::AuthOk(_)
        ));
    }
    // Used up.
    refused(c.fail(register("inv_c", &invite.code)).await);
    // A refused registration used nothing: a name taken does not spend a use.
    let one = match root.ok(create(1, 0)).await {
        Body::AdminInvite(i) => i,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        c.fail_code(register("inv_a", &one.code)).await,
        ErrorCode::NameTaken
    );
    // Revoked.
    root.ok(Body::AdminRevokeInvite(pb::AdminRevokeInvite {
        invite_id: one.invite_id,
    }))
    .await;
    refused(c.fail(register("inv_d", &one.code)).await);
    // Expired.
    let soon = match root.ok(create(1, 1)).await {
        Body::AdminInvite(i) => i,
        other => panic!("{other:?}"),
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    refused(c.fail(register("inv_e", &soon.code)).await);

    match root
        .ok(Body::AdminListInvites(pb::AdminListInvites {}))
        .await
    {
        Body::AdminInviteList(l) => {
            let got: Vec<(u64, u32, u32, bool)> = l
                .invites
                .iter()
                .map(|i| (i.invite_id, i.uses, i.used, i.revoked))
                .collect();
            assert_eq!(
                got,
                [
                    (soon.invite_id, 1, 0, false),
                    (one.invite_id, 1, 0, true),
                    (invite.invite_id, 2, 2, false),
                ]
            );
            assert!(
                l.invites.iter().all(|i| i.code.is_empty()),
                "codes are shown once"
            );
            assert_eq!(l.invites[2].note, "for the team");
            assert_eq!(l.invites[2].created_by, "console");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        root.fail_code(Body::AdminRevokeInvite(pb::AdminRevokeInvite {
            invite_id: 424_242
        }))
        .await,
        ErrorCode::NotFound
    );
}

async fn role_of(c: &mut Client, group_id: u64) -> i32 {
    match c.ok(Body::ListGroups(pb::ListGroups::default())).await {
        Body::GroupList(l) => l
            .groups
            .iter()
            .find(|g| g.group_id == group_id)
            .map_or(0, |g| g.my_role),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn deleting_an_account_ends_its_sessions_hands_its_groups_on_and_keeps_its_messages() {
    let srv = TestServer::start().await;
    let mut ann = srv.user("del_ann").await;
    let mut ann2 = login_as(&srv, "del_ann").await;
    let mut bob = srv.user("del_bob").await;
    let mut dan = srv.user("del_dan").await;
    let mut eve = srv.user("del_eve").await;
    let thread = befriend(&mut ann, &mut bob).await;
    ann.send_text(thread, "m1", "再见 bob").await;
    // ann owns a group: dan joined first as a member, eve later and is an admin.
    let (group_id, _) = group(&mut ann, "del_group").await;
    join(&mut dan, group_id).await;
    join(&mut eve, group_id).await;
    ann.ok(Body::SetMemberRole(pb::SetMemberRole {
        group_id,
        user_id: eve.id(),
        role: pb::Role::Admin as i32,
    }))
    .await;
    // And a group of her own alone.
    let (alone_id, _) = group(&mut ann, "del_alone").await;

    let delete = |pw: &str| {
        Body::DeleteAccount(pb::DeleteAccount {
            password: pw.into(),
        })
    };
    assert_eq!(ann.fail_code(delete("wrong")).await, ErrorCode::AuthFailed);
    ann.ok(delete(PASSWORD)).await;
    ann2.expect_closed_with(ErrorCode::AuthFailed).await;
    // This connection is logged out.
    assert_eq!(
        ann.fail_code(Body::ListFriends(pb::ListFriends::default()))
            .await,
        ErrorCode::Unauthenticated
    );

    // bob still reads the conversation; its sender is a deleted account (no name).
    let history = bob.sync(thread, 0).await;
    let last = history.last().unwrap();
    assert_eq!(last.body, "再见 bob");
    assert_eq!(last.sender.as_ref().unwrap().name, "");
    match bob.ok(Body::ListFriends(pb::ListFriends::default())).await {
        Body::FriendList(l) => assert!(l.friends.is_empty()),
        other => panic!("{other:?}"),
    }
    let e = bob
        .fail(Body::Send(pb::Send {
            thread_id: thread,
            client_msg_id: "m2".into(),
            body: "hello?".into(),
            reply_to: 0,
        }))
        .await;
    assert_eq!(e.code, ErrorCode::Forbidden as i32, "{e}");

    // The oldest admin owns the group now; the lone group is gone from search.
    assert_eq!(role_of(&mut eve, group_id).await, pb::Role::Owner as i32);
    assert_eq!(role_of(&mut dan, group_id).await, pb::Role::Member as i32);
    match bob
        .ok(Body::SearchGroups(pb::SearchGroups {
            query: "del_".into(),
            limit: 0,
        }))
        .await
    {
        Body::GroupList(l) => {
            let ids: Vec<u64> = l.groups.iter().map(|g| g.group_id).collect();
            assert_eq!(ids, [group_id], "not {alone_id}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        bob.fail_code(Body::JoinGroup(pb::JoinGroup { group_id: alone_id }))
            .await,
        ErrorCode::NotFound
    );

    // She cannot log in, nobody finds her, and her name is held.
    let mut c = srv.client().await;
    assert!(
        matches!(c.login("del_ann", PASSWORD).await, Body::Error(e) if e.code == ErrorCode::AuthFailed as i32)
    );
    match bob
        .ok(Body::SearchUsers(pb::SearchUsers {
            query: "del_ann".into(),
            limit: 0,
        }))
        .await
    {
        Body::UserList(l) => assert!(l.users.is_empty()),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        c.fail_code(register("del_ann", "")).await,
        ErrorCode::NameTaken
    );
}

#[tokio::test]
async fn a_deleted_accounts_name_is_free_once_the_hold_is_over() {
    let srv = TestServer::start_with(|c| c.deleted_name_hold = Duration::ZERO).await;
    let mut old = srv.user("hold_name").await;
    let old_id = old.id();
    old.ok(Body::DeleteAccount(pb::DeleteAccount {
        password: PASSWORD.into(),
    }))
    .await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let new = srv.user("hold_name").await;
    assert_ne!(new.id(), old_id, "a new account, not the old one back");
}

#[tokio::test]
async fn an_admin_deletes_or_transfers_a_group_and_every_step_is_audited() {
    let srv = TestServer::start_with(|c| c.admins = vec!["grp_admin".into()]).await;
    let mut owner = srv.user("grp_owner").await;
    let mut member = srv.user("grp_member").await;
    let mut root = srv.user("grp_admin").await;
    let (group_id, _) = group(&mut owner, "grp_doomed").await;
    join(&mut member, group_id).await;
    let show = |id| {
        Body::AdminListGroups(pb::AdminListGroups {
            group_id: id,
            ..Default::default()
        })
    };
    match root.ok(show(group_id)).await {
        Body::AdminGroupList(l) => {
            assert_eq!(l.groups.len(), 1);
            assert_eq!(l.groups[0].owner.as_ref().unwrap().name, "grp_owner");
            assert_eq!(l.groups[0].group.as_ref().unwrap().member_count, 2);
        }
        other => panic!("{other:?}"),
    }
    root.ok(Body::AdminTransferGroup(pb::AdminTransferGroup {
        group_id,
        new_owner: "grp_member".into(),
    }))
    .await;
    assert_eq!(role_of(&mut member, group_id).await, pb::Role::Owner as i32);
    assert_eq!(
        root.fail_code(Body::AdminTransferGroup(pb::AdminTransferGroup {
            group_id,
            new_owner: "nobody_at_all".into(),
        }))
        .await,
        ErrorCode::NotFound
    );
    // A kick is a moderation action: audited too.
    member
        .ok(Body::KickMember(pb::KickMember {
            group_id,
            user_id: owner.id(),
            ban: false,
        }))
        .await;
    root.ok(Body::AdminDeleteGroup(pb::AdminDeleteGroup { group_id }))
        .await;
    let left = member
        .push_where(|b| {
            matches!(b, Body::EventPush(p) if matches!(
                p.event.as_ref().and_then(|e| e.kind.as_ref()),
                Some(pb::user_event::Kind::GroupLeft(g)) if g.group_id == group_id))
        })
        .await;
    drop(left);
    assert_eq!(role_of(&mut member, group_id).await, 0);
    match root.ok(show(group_id)).await {
        Body::AdminGroupList(l) => assert!(l.groups.is_empty(), "deleted groups are not listed"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        root.fail_code(Body::AdminDeleteGroup(pb::AdminDeleteGroup { group_id }))
            .await,
        ErrorCode::NotFound
    );
    assert_eq!(
        owner
            .fail_code(Body::JoinGroup(pb::JoinGroup { group_id }))
            .await,
        ErrorCode::NotFound
    );
    let actions: Vec<String> = audit(&mut root)
        .await
        .into_iter()
        .map(|e| format!("{} {}", e.actor, e.action))
        .collect();
    assert_eq!(
        actions,
        [
            "grp_admin group.delete",
            "grp_member group.kick",
            "grp_admin group.transfer"
        ]
    );
}
