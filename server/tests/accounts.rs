//! Accounts over real TCP: registration rules, login, resume tokens, logout, password change,
//! connection states, login rate limits, profiles, search, and several connections sharing one
//! device session.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use common::*;
use confab_wire::pb::{self, ErrorCode};
use confab_wire::{Body, Envelope};

fn register(name: &str, password: &str) -> Body {
    Body::Register(pb::Register {
        name: name.into(),
        password: password.into(),
        device_name: "test".into(),
        invite_code: String::new(),
    })
}

fn login(name: &str, password: &str) -> Body {
    Body::Login(pb::Login {
        name: name.into(),
        password: password.into(),
        device_name: "test".into(),
    })
}

fn resume(token: &str) -> Body {
    Body::Resume(pb::Resume {
        resume_token: token.into(),
    })
}

fn auth_ok(b: Body) -> pb::AuthOk {
    match b {
        Body::AuthOk(a) => a,
        b => panic!("expected AuthOk, got {b:?}"),
    }
}

fn list_friends() -> Body {
    Body::ListFriends(pb::ListFriends::default())
}

fn profile(b: Body) -> pb::Profile {
    match b {
        Body::Profile(p) => p,
        b => panic!("expected Profile, got {b:?}"),
    }
}

fn user_names(b: Body) -> Vec<String> {
    match b {
        Body::UserList(l) => l.users.into_iter().map(|p| p.user.unwrap().name).collect(),
        b => panic!("expected UserList, got {b:?}"),
    }
}

/// Resumes `token` on a fresh connection with a `Resume` request.
async fn resume_on_new_connection(srv: &TestServer, token: &str) -> (Client, Body) {
    let mut c = srv.client().await;
    let reply = c.request(resume(token)).await;
    (c, reply)
}

#[tokio::test]
async fn register_accepts_cjk_names_and_refuses_taken_and_invalid_ones() {
    let srv = TestServer::start().await;

    let mut cjk = srv.client().await;
    let a = auth_ok(cjk.ok(register("小明", PASSWORD)).await);
    assert_eq!(a.user.as_ref().unwrap().name, "小明");
    assert_ne!(a.user.as_ref().unwrap().user_id, 0);
    assert_ne!(a.device_id, 0);
    assert!(!a.resume_token.is_empty());
    assert_eq!(a.last_event_seq, 0);
    // The connection is authenticated.
    cjk.ok(list_friends()).await;

    // 32 characters is the longest name.
    let mut long = srv.client().await;
    long.ok(register(&"字".repeat(32), PASSWORD)).await;

    let mut first = srv.client().await;
    first.ok(register("MixedCase", PASSWORD)).await;
    let mut c = srv.client().await;
    for taken in ["mixedcase", "MIXEDCASE", "MixedCase", "小明"] {
        assert_eq!(
            c.fail_code(register(taken, PASSWORD)).await,
            ErrorCode::NameTaken,
            "{taken}"
        );
    }

    let too_long = "a".repeat(33);
    for bad in [
        "",
        too_long.as_str(),
        "two words",
        "bell\u{7}",
        "tab\there",
        "zero\u{200b}width",
    ] {
        assert_eq!(
            c.fail_code(register(bad, PASSWORD)).await,
            ErrorCode::BadRequest,
            "name {bad:?}"
        );
    }
    for bad_password in ["1234567".to_owned(), "p".repeat(257)] {
        assert_eq!(
            c.fail_code(register("fine_name", &bad_password)).await,
            ErrorCode::BadRequest,
            "password of {} bytes",
            bad_password.len()
        );
    }
    // After all those refusals the connection still works, and the limits are inclusive.
    c.ok(register("fine_name", "12345678")).await;
    let mut c2 = srv.client().await;
    c2.ok(register("other_name", &"p".repeat(256))).await;
}

#[tokio::test]
async fn login_creates_a_new_device_session_and_hides_which_part_was_wrong() {
    let srv = TestServer::start().await;
    let first = srv.user("loginer").await;

    let mut c = srv.client().await;
    let wrong_pw = c.fail(login("loginer", "not the password")).await;
    assert_eq!(wrong_pw.code, ErrorCode::AuthFailed as i32);
    let unknown = c.fail(login("nobody_here", PASSWORD)).await;
    assert_eq!(unknown.code, ErrorCode::AuthFailed as i32);
    assert_eq!(
        wrong_pw.message, unknown.message,
        "the error must not reveal whether the name exists"
    );
    // Still not logged in.
    assert_eq!(
        c.fail_code(list_friends()).await,
        ErrorCode::Unauthenticated
    );

    // Names are case-insensitive for login too.
    let a = auth_ok(c.login("LOGINER", PASSWORD).await);
    assert_eq!(a.user.as_ref().unwrap().user_id, first.id());
    assert_eq!(a.user.as_ref().unwrap().name, "loginer");
    assert_ne!(a.device_id, 0);
    assert_ne!(
        a.device_id, first.device_id,
        "a login is a new device session"
    );
    assert!(!a.resume_token.is_empty());
    assert_ne!(a.resume_token, first.token);
    c.ok(list_friends()).await;
}

#[tokio::test]
async fn resume_rotates_the_token_and_keeps_the_device() {
    let srv = TestServer::start().await;
    let mut orig = srv.user("resumer").await;
    let (uid, dev, t1) = (orig.id(), orig.device_id, orig.token.clone());

    // Resume request on a new connection (`orig` stays connected: several connections may
    // share a device session).
    let (mut c2, reply) = resume_on_new_connection(&srv, &t1).await;
    let a2 = auth_ok(reply);
    assert_eq!(a2.user.as_ref().unwrap().user_id, uid);
    assert_eq!(a2.device_id, dev, "resume keeps the device session");
    assert!(!a2.resume_token.is_empty());
    assert_ne!(a2.resume_token, t1, "the token rotates");
    c2.ok(list_friends()).await;
    orig.ok(list_friends()).await;

    // Hello with the new token authenticates in one round trip, and rotates again.
    let mut c3 = Client::raw(srv.addr).await;
    let hello = c3.hello_with_token(&a2.resume_token).await;
    assert!(!hello.resume_failed);
    let a3 = hello.auth.expect("HelloOk.auth is set");
    assert_eq!(a3.device_id, dev);
    assert_eq!(a3.user.as_ref().unwrap().user_id, uid);
    assert_ne!(a3.resume_token, a2.resume_token);
    c3.ok(list_friends()).await;

    // A garbage token: Resume fails with AUTH_FAILED, Hello says resume_failed, and both
    // connections stay usable.
    let (mut c4, reply) = resume_on_new_connection(&srv, "garbage-token").await;
    match reply {
        Body::Error(e) => {
            assert_eq!(e.code, ErrorCode::AuthFailed as i32);
            assert!(!e.fatal);
        }
        b => panic!("expected AUTH_FAILED, got {b:?}"),
    }
    assert_eq!(
        c4.fail_code(list_friends()).await,
        ErrorCode::Unauthenticated
    );
    c4.ok(Body::Ping(pb::Ping { nonce: 1 })).await;

    let mut c5 = Client::raw(srv.addr).await;
    let hello = c5.hello_with_token("garbage-token").await;
    assert!(hello.resume_failed);
    assert!(hello.auth.is_none());
    assert_eq!(
        c5.fail_code(list_friends()).await,
        ErrorCode::Unauthenticated
    );
    // The latest token still works after those failures.
    let (mut c6, reply) = resume_on_new_connection(&srv, &a3.resume_token).await;
    assert_eq!(auth_ok(reply).device_id, dev);
    c6.ok(list_friends()).await;
}

/// PROTOCOL.md §4.3 (since dea6e34): the presented token keeps working for a 60 s grace period
/// after its first use, and every resume issues a new token. (The expiry after the grace period
/// is not tested: it would take a minute.)
#[tokio::test]
async fn a_used_token_keeps_working_during_the_grace_period() {
    let srv = TestServer::start().await;
    let orig = srv.user("rotator").await;
    let (dev, t1) = (orig.device_id, orig.token.clone());
    drop(orig);

    let (_c2, reply) = resume_on_new_connection(&srv, &t1).await;
    let t2 = auth_ok(reply).resume_token;
    assert_ne!(t2, t1);

    let mut c3 = Client::raw(srv.addr).await;
    let hello = c3.hello_with_token(&t1).await;
    let a3 = hello
        .auth
        .expect("the used token still works within the grace period");
    assert_eq!(a3.device_id, dev);
    assert_ne!(a3.resume_token, t1);
    assert_ne!(a3.resume_token, t2);

    // The tokens handed out meanwhile work as well.
    for t in [t2, a3.resume_token] {
        let (mut c, reply) = resume_on_new_connection(&srv, &t).await;
        assert_eq!(auth_ok(reply).device_id, dev);
        c.ok(list_friends()).await;
    }
}

/// `--token-grace-ms`: a used token stops working once the grace period after its first use has
/// passed; the token handed out for it, not yet used, keeps working.
#[tokio::test]
async fn a_used_token_expires_after_the_configured_grace() {
    let srv = TestServer::start_with(|c| c.token_grace_ms = 200).await;
    let orig = srv.user("shortlived").await;
    let (dev, t1) = (orig.device_id, orig.token.clone());
    drop(orig);
    let (_c2, reply) = resume_on_new_connection(&srv, &t1).await;
    let t2 = auth_ok(reply).resume_token;
    // Past the grace period (its first use was before this sleep began).
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let mut c3 = Client::raw(srv.addr).await;
    let hello = c3.hello_with_token(&t1).await;
    assert!(hello.resume_failed && hello.auth.is_none());
    let (mut c4, reply) = resume_on_new_connection(&srv, &t2).await;
    assert_eq!(auth_ok(reply).device_id, dev);
    c4.ok(list_friends()).await;
}

#[tokio::test]
async fn logout_revokes_the_token_and_returns_to_hello_done() {
    let srv = TestServer::start().await;
    let mut c = srv.user("leaver").await;
    let token = c.token.clone();
    assert!(matches!(
        c.ok(Body::Logout(pb::Logout { all_devices: false })).await,
        Body::Ok(_)
    ));
    // Back to HELLO_DONE: requests need a login again, and a login works on this connection.
    assert_eq!(
        c.fail_code(list_friends()).await,
        ErrorCode::Unauthenticated
    );
    c.ok(Body::Ping(pb::Ping { nonce: 7 })).await;

    let (_c2, reply) = resume_on_new_connection(&srv, &token).await;
    assert!(
        matches!(&reply, Body::Error(e) if e.code == ErrorCode::AuthFailed as i32),
        "a logged-out token must not resume: {reply:?}"
    );
    let mut c3 = Client::raw(srv.addr).await;
    assert!(c3.hello_with_token(&token).await.resume_failed);

    auth_ok(c.login("leaver", PASSWORD).await);
    c.ok(list_friends()).await;
}

#[tokio::test]
async fn logout_all_devices_closes_the_other_connections() {
    let srv = TestServer::start().await;
    let mut main = srv.user("many").await;
    let mut second = login_as(&srv, "many").await;
    let mut third = login_as(&srv, "many").await;
    let bystander_token = third.token.clone();
    let mut stranger = srv.user("stranger").await;

    main.ok(Body::Logout(pb::Logout { all_devices: true }))
        .await;
    second.expect_closed_with(ErrorCode::AuthFailed).await;
    third.expect_closed_with(ErrorCode::AuthFailed).await;
    // The caller's connection stays open, logged out.
    assert_eq!(
        main.fail_code(list_friends()).await,
        ErrorCode::Unauthenticated
    );
    // Every session is revoked.
    for token in [main.token.clone(), bystander_token] {
        let (_c, reply) = resume_on_new_connection(&srv, &token).await;
        assert!(
            matches!(&reply, Body::Error(e) if e.code == ErrorCode::AuthFailed as i32),
            "{reply:?}"
        );
    }
    // Other users are not affected.
    stranger.ok(list_friends()).await;
}

#[tokio::test]
async fn change_password_checks_the_old_one_and_revokes_other_sessions() {
    let srv = TestServer::start().await;
    let mut c = srv.user("changer").await;
    let mut other = login_as(&srv, "changer").await;
    let other_token = other.token.clone();
    let old_own_token = c.token.clone();
    const NEW: &str = "a brand new password";

    let wrong = c
        .fail(Body::ChangePassword(pb::ChangePassword {
            old_password: "not the old one".into(),
            new_password: NEW.into(),
        }))
        .await;
    assert_eq!(wrong.code, ErrorCode::AuthFailed as i32);
    assert!(!wrong.fatal);
    assert_eq!(
        c.fail_code(Body::ChangePassword(pb::ChangePassword {
            old_password: PASSWORD.into(),
            new_password: "short".into(),
        }))
        .await,
        ErrorCode::BadRequest
    );
    // Nothing changed so far: the other session is alive.
    other.ok(list_friends()).await;

    let a = auth_ok(
        c.ok(Body::ChangePassword(pb::ChangePassword {
            old_password: PASSWORD.into(),
            new_password: NEW.into(),
        }))
        .await,
    );
    assert_eq!(a.device_id, c.device_id, "same device session");
    assert_eq!(a.user.as_ref().unwrap().user_id, c.id());
    assert!(!a.resume_token.is_empty());
    assert_ne!(a.resume_token, old_own_token);
    // This connection stays logged in.
    c.ok(list_friends()).await;

    // The other session's connection is closed and its token revoked.
    other.expect_closed_with(ErrorCode::AuthFailed).await;
    let (_x, reply) = resume_on_new_connection(&srv, &other_token).await;
    assert!(
        matches!(&reply, Body::Error(e) if e.code == ErrorCode::AuthFailed as i32),
        "{reply:?}"
    );

    // Old password out, new password in.
    let mut l = srv.client().await;
    assert_eq!(
        l.fail_code(login("changer", PASSWORD)).await,
        ErrorCode::AuthFailed
    );
    auth_ok(l.ok(login("changer", NEW)).await);

    // The new token of this device resumes it; this connection stays open.
    let (mut r, reply) = resume_on_new_connection(&srv, &a.resume_token).await;
    assert_eq!(auth_ok(reply).device_id, a.device_id);
    r.ok(list_friends()).await;
    c.ok(list_friends()).await;
    // The token this device had before the change is gone.
    let (_x, reply) = resume_on_new_connection(&srv, &old_own_token).await;
    assert!(
        matches!(&reply, Body::Error(e) if e.code == ErrorCode::AuthFailed as i32),
        "{reply:?}"
    );
}

#[tokio::test]
async fn requests_before_hello_are_fatal() {
    let srv = TestServer::start().await;
    let mut c = Client::raw(srv.addr).await;
    c.send_env(Envelope::new(1, list_friends())).await;
    let e = c
        .expect_closed()
        .await
        .expect("a fatal error before closing");
    assert!(e.fatal);
    assert_eq!(e.code, ErrorCode::Unauthenticated as i32);

    let mut c = Client::raw(srv.addr).await;
    c.send_env(Envelope::new(1, register("early_bird", PASSWORD)))
        .await;
    c.expect_closed_with(ErrorCode::Unauthenticated).await;
    // Nothing was registered.
    let mut check = srv.client().await;
    check.ok(register("early_bird", PASSWORD)).await;
}

#[tokio::test]
async fn requests_after_hello_but_before_login_are_unauthenticated() {
    let srv = TestServer::start().await;
    let mut c = srv.client().await;
    assert_eq!(
        c.fail_code(list_friends()).await,
        ErrorCode::Unauthenticated
    );
    let e = c
        .fail(Body::Send(pb::Send {
            thread_id: 1,
            client_msg_id: "m1".into(),
            body: "hello?".into(),
            reply_to: 0,
        }))
        .await;
    assert_eq!(e.code, ErrorCode::Unauthenticated as i32);
    assert!(!e.fatal);
    assert_eq!(
        c.fail_code(Body::SyncEvents(pb::SyncEvents::default()))
            .await,
        ErrorCode::Unauthenticated
    );
    // A notification gets its error with req_id 0.
    c.send_env(Envelope::new(
        0,
        Body::Typing(pb::Typing {
            thread_id: 1,
            ..Default::default()
        }),
    ))
    .await;
    match c.push_where(|b| matches!(b, Body::Error(_))).await {
        Body::Error(e) => assert_eq!(e.code, ErrorCode::Unauthenticated as i32),
        _ => unreachable!(),
    }
    // A second Hello is a conflict.
    assert_eq!(
        c.fail_code(Body::Hello(pb::Hello {
            protocol_major: 1,
            ..Default::default()
        }))
        .await,
        ErrorCode::Conflict
    );
    // Ping works, and the connection can still log in.
    match c.ok(Body::Ping(pb::Ping { nonce: 99 })).await {
        Body::Pong(p) => assert_eq!(p.nonce, 99),
        b => panic!("expected Pong, got {b:?}"),
    }
    c.register("late_login").await;
    c.ok(list_friends()).await;
}

#[tokio::test]
async fn an_authenticated_connection_refuses_hello_register_login_and_resume() {
    let srv = TestServer::start().await;
    let mut c = srv.user("settled").await;
    let token = c.token.clone();
    for body in [
        Body::Hello(pb::Hello {
            protocol_major: 1,
            ..Default::default()
        }),
        register("another_one", PASSWORD),
        login("settled", PASSWORD),
        resume(&token),
    ] {
        assert_eq!(c.fail_code(body).await, ErrorCode::Conflict);
    }
    c.ok(list_friends()).await;
}

#[tokio::test]
async fn login_attempts_are_rate_limited_per_name() {
    let srv = TestServer::start_with(|cfg| cfg.auth_per_name_per_minute = 2).await;
    let mut c = srv.client().await;
    // An unknown name: two attempts, then the limit (per normalized name).
    assert_eq!(
        c.fail_code(login("ghost", PASSWORD)).await,
        ErrorCode::AuthFailed
    );
    assert_eq!(
        c.fail_code(login("ghost", "other password")).await,
        ErrorCode::AuthFailed
    );
    let e = c.fail(login("GHOST", PASSWORD)).await;
    assert_eq!(e.code, ErrorCode::RateLimited as i32);
    assert!(e.retry_after_ms > 0);
    assert!(!e.fatal);

    // A real account: its registration was the first attempt on its name, the first login the
    // second; the third is refused even with the right password.
    let _owner = srv.user("limited").await;
    let mut l = srv.client().await;
    auth_ok(l.ok(login("limited", PASSWORD)).await);
    let mut l2 = srv.client().await;
    let e = l2.fail(login("limited", PASSWORD)).await;
    assert_eq!(e.code, ErrorCode::RateLimited as i32);
    assert!(e.retry_after_ms > 0);

    // Other names are not affected.
    let mut other = srv.client().await;
    other.register("unrelated").await;
    other.ok(list_friends()).await;
}

#[tokio::test]
async fn profiles_by_id_and_by_name() {
    let srv = TestServer::start().await;
    let mut a = srv.user("Viewer").await;
    let mut b = srv.user("Subject").await;

    let by_id = profile(
        a.ok(Body::GetProfile(pb::GetProfile {
            user_id: b.id(),
            name: String::new(),
        }))
        .await,
    );
    assert_eq!(by_id.user.as_ref().unwrap().user_id, b.id());
    assert_eq!(by_id.user.as_ref().unwrap().name, "Subject");
    assert!(by_id.created_ms > 0);
    assert_eq!(by_id.friend_state, pb::FriendState::None as i32);
    assert!(!by_id.online, "presence is hidden from non-friends");
    assert_eq!(
        by_id.last_seen_ms, 0,
        "last seen is hidden from non-friends"
    );

    let by_name = profile(
        a.ok(Body::GetProfile(pb::GetProfile {
            user_id: 0,
            name: "sUBJECT".into(),
        }))
        .await,
    );
    assert_eq!(by_name.user, by_id.user);
    assert_eq!(by_name.created_ms, by_id.created_ms);

    let me = profile(
        a.ok(Body::GetProfile(pb::GetProfile {
            user_id: a.id(),
            name: String::new(),
        }))
        .await,
    );
    assert_eq!(me.friend_state, pb::FriendState::Self_ as i32);
    assert!(me.online);

    // Pending request, seen from both sides.
    let Body::FriendRequest(req) = a
        .ok(Body::SendFriendRequest(pb::SendFriendRequest {
            user_id: b.id(),
            note: String::new(),
        }))
        .await
    else {
        panic!("expected FriendRequest")
    };
    let p = profile(
        a.ok(Body::GetProfile(pb::GetProfile {
            user_id: b.id(),
            name: String::new(),
        }))
        .await,
    );
    assert_eq!(p.friend_state, pb::FriendState::RequestSent as i32);
    let p = profile(
        b.ok(Body::GetProfile(pb::GetProfile {
            user_id: a.id(),
            name: String::new(),
        }))
        .await,
    );
    assert_eq!(p.friend_state, pb::FriendState::RequestReceived as i32);

    // Friends see presence.
    b.ok(Body::RespondFriendRequest(pb::RespondFriendRequest {
        request_id: req.request_id,
        accept: true,
    }))
    .await;
    let p = profile(
        a.ok(Body::GetProfile(pb::GetProfile {
            user_id: b.id(),
            name: String::new(),
        }))
        .await,
    );
    assert_eq!(p.friend_state, pb::FriendState::Friend as i32);
    assert!(p.online);

    assert_eq!(
        a.fail_code(Body::GetProfile(pb::GetProfile {
            user_id: 0,
            name: "no_such_user".into(),
        }))
        .await,
        ErrorCode::NotFound
    );
    assert_eq!(
        a.fail_code(Body::GetProfile(pb::GetProfile {
            user_id: 987_654_321,
            name: String::new(),
        }))
        .await,
        ErrorCode::NotFound
    );
    assert_eq!(
        a.fail_code(Body::GetProfile(pb::GetProfile::default()))
            .await,
        ErrorCode::BadRequest
    );
}

/// PROTOCOL.md §5.3: GetProfile is `BAD_REQUEST (neither or both set)`.
#[tokio::test]
async fn get_profile_with_both_id_and_name_is_a_bad_request() {
    let srv = TestServer::start().await;
    let mut a = srv.user("both_a").await;
    let b = srv.user("both_b").await;
    assert_eq!(
        a.fail_code(Body::GetProfile(pb::GetProfile {
            user_id: b.id(),
            name: "both_a".into(),
        }))
        .await,
        ErrorCode::BadRequest
    );
}

#[tokio::test]
async fn search_users_by_prefix_and_substring_ignoring_case() {
    let srv = TestServer::start().await;
    let mut me = srv.user("searcher").await;
    for name in ["AlphaOne", "alphatwo", "BetaAlpha", "gamma", "阿尔法"] {
        srv.user(name).await;
    }
    let search = |q: &str, limit: u32| {
        Body::SearchUsers(pb::SearchUsers {
            query: q.into(),
            limit,
        })
    };

    let mut prefix = user_names(me.ok(search("ALPHA", 0)).await);
    prefix.sort();
    assert_eq!(prefix, ["AlphaOne", "BetaAlpha", "alphatwo"]);

    let mut contains = user_names(me.ok(search("phA", 0)).await);
    contains.sort();
    assert_eq!(contains, ["AlphaOne", "BetaAlpha", "alphatwo"]);

    assert_eq!(user_names(me.ok(search("gAmMa", 0)).await), ["gamma"]);
    assert_eq!(user_names(me.ok(search("尔", 0)).await), ["阿尔法"]);
    assert!(user_names(me.ok(search("zzz", 0)).await).is_empty());
    assert_eq!(user_names(me.ok(search("alpha", 2)).await).len(), 2);

    assert_eq!(
        me.fail_code(search("", 0)).await,
        ErrorCode::BadRequest,
        "an empty query"
    );
}

/// PROTOCOL.md §4.3 (since dea6e34): "A device session may be resumed on several connections at
/// once ... Each connection receives every push for the user. `DISPLACED` is ... not sent by
/// servers of this version." (Before dea6e34 the older connection was displaced.)
#[tokio::test]
async fn several_connections_can_share_one_device_session() {
    let srv = TestServer::start().await;
    let mut first = srv.user("wanderer").await;
    let mut friend = srv.user("watcher").await;
    let thread = befriend(&mut first, &mut friend).await;

    // Same device session, resumed in Hello and with a Resume request on new connections.
    let mut second = Client::raw(srv.addr).await;
    let auth = second
        .hello_with_token(&first.token)
        .await
        .auth
        .expect("resumed");
    assert_eq!(auth.device_id, first.device_id);
    let (mut third, reply) = resume_on_new_connection(&srv, &second.token).await;
    assert_eq!(auth_ok(reply).device_id, first.device_id);

    // Every connection stays open and gets every push for the user.
    friend.send_text(thread, "d1", "are you there?").await;
    for c in [&mut first, &mut second, &mut third] {
        assert_eq!(c.message_push(thread).await.body, "are you there?");
    }
    // A send from one of them reaches the others (with client_msg_id: same user) and the friend.
    third.send_text(thread, "d2", "all of us").await;
    for c in [&mut first, &mut second] {
        let m = c.message_push(thread).await;
        assert_eq!(m.body, "all of us");
        assert_eq!(m.client_msg_id, "d2");
    }
    let m = friend.message_push(thread).await;
    assert!(m.client_msg_id.is_empty());
    for c in [&mut first, &mut second, &mut third] {
        c.no_push_where(std::time::Duration::from_millis(100), |b| {
            matches!(b, Body::Error(_))
        })
        .await;
        c.ok(list_friends()).await;
    }
}

/// PROTOCOL.md §4.3: "`Logout` ends the current device session ... revokes the tokens", and "A
/// revoked session that is still connected receives `Error{AUTH_FAILED, fatal}` and is closed".
/// With several connections per session, the other connections of the logged-out session are
/// such revoked sessions.
#[tokio::test]
async fn logout_closes_the_other_connections_of_the_same_session() {
    let srv = TestServer::start().await;
    let mut a = srv.user("shared_out").await;
    let mut same_session = Client::raw(srv.addr).await;
    assert!(same_session.hello_with_token(&a.token).await.auth.is_some());
    a.ok(Body::Logout(pb::Logout { all_devices: false })).await;
    same_session.expect_closed_with(ErrorCode::AuthFailed).await;
}

/// As above, for `Logout{all_devices: true}`: the caller's own session is revoked too, so its
/// other connections must be closed like those of the other sessions.
#[tokio::test]
async fn logout_all_devices_closes_the_callers_other_connections_too() {
    let srv = TestServer::start().await;
    let mut a = srv.user("shared_all").await;
    let mut same_session = Client::raw(srv.addr).await;
    assert!(same_session.hello_with_token(&a.token).await.auth.is_some());
    let mut other_session = login_as(&srv, "shared_all").await;
    a.ok(Body::Logout(pb::Logout { all_devices: true })).await;
    other_session
        .expect_closed_with(ErrorCode::AuthFailed)
        .await;
    same_session.expect_closed_with(ErrorCode::AuthFailed).await;
}
