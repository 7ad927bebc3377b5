//! The typed client API (`client/api.rs`) against a real server, and the two front ends on it:
//! joining a group by a name no group has exactly is refused with the candidates listed, by the
//! API, by the terminal client's `/group join` and by `confab group join`, and nobody joins a
//! group in its place.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::process::Command;

use common::*;
use confab_tui::app::{Done, Op};
use confab_tui::client::{ApiError, ClientError};
use confab_wire::pb::{self, ErrorCode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_by_name_joins_only_an_exact_match_and_lists_the_candidates() {
    let dir = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(dir.path());
    let (owner, _owner_ev, _, _) = register(srv.addr, "api_owner").await;
    let (joiner, _joiner_ev, _, _) = register(srv.addr, "api_joiner").await;
    owner.create_group("rustaceans").await.unwrap();
    owner.create_group("rust-lang").await.unwrap();

    // The API: no group is named "rust", so nothing is joined and both hits are named.
    match joiner.join_group_by_name("rust").await {
        Err(ApiError::NoSuchGroup {
            name,
            mut candidates,
        }) => {
            assert_eq!(name, "rust");
            candidates.sort();
            assert_eq!(candidates, vec!["rust-lang", "rustaceans"]);
        }
        other => panic!("{other:?}"),
    }
    let err = joiner.join_group_by_name("rust").await.unwrap_err();
    assert!(
        err.to_string().contains("rustaceans") && err.to_string().contains("rust-lang"),
        "{err}"
    );
    assert!(joiner.groups().await.unwrap().is_empty(), "joined nothing");

    // The terminal client's `/group join rust` reports the same refusal.
    match confab_tui::run::ops::run(joiner.clone(), Op::JoinGroup("rust".into())).await {
        Done::Error(e) => {
            assert!(e.contains("no group named rust"), "{e}");
            assert!(e.contains("rustaceans") && e.contains("rust-lang"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert!(joiner.groups().await.unwrap().is_empty(), "joined nothing");

    // An exact name (case aside) is joined.
    let g = joiner.join_group_by_name("RUSTACEANS").await.unwrap();
    assert_eq!(g.name, "rustaceans");
    let mine: Vec<String> = joiner
        .groups()
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.name)
        .collect();
    assert_eq!(mine, vec!["rustaceans"]);
    assert_eq!(
        joiner.my_group("Rustaceans").await.unwrap().name,
        "rustaceans"
    );
    match joiner.my_group("rust").await {
        Err(ApiError::NoSuchGroup { candidates, .. }) => {
            assert_eq!(candidates, vec!["rustaceans"]);
        }
        other => panic!("{other:?}"),
    }
    match confab_tui::run::ops::run(joiner.clone(), Op::JoinGroup("rust-lang".into())).await {
        Done::Open(t, None) => assert_eq!(t.group.map(|g| g.name).as_deref(), Some("rust-lang")),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_friends_and_requests_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(dir.path());
    let (a, _a_ev, _, _) = register(srv.addr, "api_a").await;
    let (b, _b_ev, b_user, _) = register(srv.addr, "api_b").await;

    assert!(matches!(
        a.user_by_name("api_nobody").await,
        Err(ApiError::NoSuchUser(n)) if n == "api_nobody"
    ));
    assert_eq!(
        a.user_by_name("API_B").await.unwrap().user_id,
        b_user.user_id
    );
    assert!(matches!(
        a.dm_thread("api_b").await,
        Err(ApiError::NotFriend(n)) if n == "api_b"
    ));
    assert!(matches!(
        b.respond_to("api_a", true).await,
        Err(ApiError::NoSuchRequest(_))
    ));

    let sent = a.add_friend("api_b", "hi").await.unwrap();
    assert_eq!(sent.state, pb::RequestState::Pending as i32);
    assert_eq!(b.friend_requests().await.unwrap().incoming.len(), 1);
    let accepted = b.respond_to("API_A", true).await.unwrap();
    assert_eq!(accepted.state, pb::RequestState::Accepted as i32);
    let t = a.dm_thread("api_b").await.unwrap();
    assert_eq!(t.thread_id, accepted.thread_id);
    assert_eq!(a.friends().await.unwrap().len(), 1);
    let listed: Vec<u64> = a
        .list_threads()
        .await
        .unwrap()
        .iter()
        .map(|t| t.thread_id)
        .collect();
    assert_eq!(listed, vec![t.thread_id]);

    // A refusal by the server keeps its code.
    let e = a.add_friend("api_b", "").await.unwrap_err();
    assert!(
        matches!(&e, ApiError::Client(ClientError::Server(_))) && e.code().is_some(),
        "{e:?}"
    );
    assert_ne!(e.code(), Some(ErrorCode::Internal));
}

#[test]
fn the_cli_refuses_a_join_without_an_exact_name_and_lists_the_candidates() {
    let dir = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(&dir.path().join("server"));
    let data = dir.path().join("data");
    let confab = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_confab"))
            .args(args)
            .env("CONFAB_SERVER", srv.addr.to_string())
            .env("CONFAB_DATA_DIR", &data)
            .env("CONFAB_PASSWORD", PASSWORD)
            .output()
            .expect("confab runs")
    };
    assert!(confab(&["register", "cli_owner"]).status.success());
    assert!(confab(&["group", "create", "rustaceans"]).status.success());
    let out = confab(&["group", "join", "rust"]);
    assert_eq!(out.status.code(), Some(4), "not found");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no group named rust") && err.contains("rustaceans"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "nothing joined");
}

/// A password change gives this device a new token, kept at once in the shared session file
/// (so this process and the others of the account resume with it), and signs the account's
/// other devices out; the old password no longer logs in, the new one does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_password_keeps_this_device_and_signs_out_the_others() {
    use confab_tui::client::paths::SessionFile;
    use confab_tui::client::{Auth, Client, ConnState, Event};
    let dir = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(dir.path());
    let mut cfg = config(srv.addr, None);
    cfg.session = Some(SessionFile::new(
        dir.path().join("data"),
        srv.addr.to_string(),
        "pw_a",
    ));
    let (a, mut a_ev, _, first_token) = online(
        cfg,
        Auth::Register {
            name: "pw_a".into(),
            password: PASSWORD.into(),
            invite: String::new(),
        },
    )
    .await;
    let file = SessionFile::new(dir.path().join("data"), srv.addr.to_string(), "pw_a");
    assert_eq!(file.read().unwrap().token, first_token);
    // The same account on another device.
    let (other, mut other_ev, _, _) = online(
        config(srv.addr, None),
        Auth::Login {
            name: "pw_a".into(),
            password: PASSWORD.into(),
        },
    )
    .await;

    let auth = a
        .change_password(PASSWORD, "a brand new password")
        .await
        .unwrap();
    let kept = file.read().unwrap().token;
    assert_eq!(
        kept, auth.resume_token,
        "the session file holds the new token"
    );
    assert_ne!(kept, first_token);
    // This device goes on: a reconnect resumes with the new token.
    a.disconnect().await.unwrap();
    until(&mut a_ev, |ev| matches!(ev, Event::Synced)).await;
    a.friends().await.unwrap();
    // The other device is signed out: its session is refused for good.
    until(&mut other_ev, |ev| {
        matches!(ev, Event::State(ConnState::Stopped { code, .. })
            if matches!(code, ErrorCode::AuthFailed | ErrorCode::Unauthenticated))
    })
    .await;
    drop(other);
    // Old password refused, new one accepted.
    let (c, mut ev) = Client::start(
        config(srv.addr, None),
        Auth::Login {
            name: "pw_a".into(),
            password: PASSWORD.into(),
        },
    )
    .unwrap();
    until(&mut ev, |e| {
        matches!(e, Event::State(ConnState::Stopped { .. }))
    })
    .await;
    c.shutdown().await;
    let (c2, _ev2, _, _) = online(
        config(srv.addr, None),
        Auth::Login {
            name: "pw_a".into(),
            password: "a brand new password".into(),
        },
    )
    .await;
    c2.shutdown().await;
}

/// The terminal client's group operations against a real server: a closed group, an invitation
/// declined, the topic and the name changed, the group handed to a member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_operations_of_the_terminal_client_reach_the_server() {
    use confab_tui::run::ops::run;
    let dir = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(dir.path());
    let (owner, _o, _, _) = register(srv.addr, "go_owner").await;
    let (bob, _b, bob_user, _) = register(srv.addr, "go_bob").await;
    let (carol, _c, carol_user, _) = register(srv.addr, "go_carol").await;
    let Done::Open(t, _) = run(owner.clone(), Op::CreateGroup("读书会".into(), false)).await
    else {
        panic!()
    };
    let g = t.group.clone().unwrap();
    assert!(!g.open, "created closed");
    // Closed: joining without an invitation is refused.
    assert!(carol.join_group(g.group_id).await.is_err());
    owner.invite(g.group_id, bob_user.user_id).await.unwrap();
    match run(bob.clone(), Op::DeclineInvite("读书会".into())).await {
        Done::Info(i) => assert!(i.contains("declined"), "{i}"),
        other => panic!("{other:?}"),
    }
    assert!(bob.groups().await.unwrap().is_empty(), "no invitation left");
    let topic = pb::UpdateGroup {
        group_id: g.group_id,
        description: Some("每周五".into()),
        ..Default::default()
    };
    assert!(matches!(
        run(owner.clone(), Op::UpdateGroup(topic)).await,
        Done::Info(_)
    ));
    let rename = pb::UpdateGroup {
        group_id: g.group_id,
        name: Some("读书会二".into()),
        open: Some(true),
        ..Default::default()
    };
    assert!(matches!(
        run(owner.clone(), Op::UpdateGroup(rename)).await,
        Done::Info(_)
    ));
    carol.join_group(g.group_id).await.unwrap();
    let now = owner.groups().await.unwrap().remove(0);
    assert_eq!(
        (now.name.as_str(), now.description.as_str(), now.open),
        ("读书会二", "每周五", true)
    );
    match run(owner.clone(), Op::Transfer(g.group_id, "go_carol".into())).await {
        Done::Info(i) => assert!(i.contains("go_carol is now the owner"), "{i}"),
        other => panic!("{other:?}"),
    }
    let after = owner.groups().await.unwrap().remove(0);
    assert_eq!(after.owner_id, carol_user.user_id);
    assert_eq!(after.my_role, pb::Role::Admin as i32);
}

/// `/export` writes every cached message of the conversation, oldest first, one line each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_writes_the_whole_cached_conversation() {
    use confab_tui::client::Event;
    let dir = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(dir.path());
    let (a, mut a_ev, _, _) = register(srv.addr, "ex_a").await;
    let (b, _b_ev, b_user, _) = register(srv.addr, "ex_b").await;
    let thread = befriend(&a, &b, b_user.user_id).await;
    for i in 0..250 {
        a.send(thread, format!("第{i}条\nsecond line"))
            .await
            .unwrap();
    }
    let mut acked = 0;
    until(&mut a_ev, |e| {
        acked += usize::from(matches!(e, Event::Acked { .. }));
        acked == 250
    })
    .await;
    let out = dir.path().join("export.txt");
    let (n, path) = confab_tui::run::logs::export(
        &a,
        thread,
        "ex_b.log",
        Some(out.to_str().unwrap()),
        &confab_tui::app::config::Zone::Fixed(0),
    )
    .await
    .unwrap();
    assert_eq!(path, out);
    assert_eq!(n, 250, "more than one page, all of them");
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 500, "each message and its continuation line");
    assert!(lines[0].ends_with("\tex_a\t第0条"), "{}", lines[0]);
    assert_eq!(lines[1], "\tsecond line");
    assert!(lines[498].ends_with("第249条"), "{}", lines[498]);
}

/// An invitation to a closed group is accepted by its name (search does not list closed
/// groups): `/group join NAME` and `confab group join NAME` use it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_to_a_closed_group_is_joined_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(dir.path());
    let (owner, _o, _, _) = register(srv.addr, "cj_owner").await;
    let (guest, _g, guest_user, _) = register(srv.addr, "cj_guest").await;
    let g = owner.create_group_with("内部群", false).await.unwrap();
    assert!(
        guest.join_group_by_name("内部群").await.is_err(),
        "not invited: not found"
    );
    owner.invite(g.group_id, guest_user.user_id).await.unwrap();
    match confab_tui::run::ops::run(guest.clone(), Op::JoinGroup("内部群".into())).await {
        Done::Open(t, _) => assert_eq!(t.group.unwrap().group_id, g.group_id),
        other => panic!("{other:?}"),
    }
}

/// A friendship ended or a kick by someone else reaches a running client as the conversation
/// described anew (read only), without a restart or a reconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfriend_and_a_kick_make_the_running_clients_conversations_read_only() {
    use confab_tui::client::Event;
    let dir = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(dir.path());
    let (a, mut a_ev, a_user, _) = register(srv.addr, "ro_a").await;
    let (b, _b_ev, b_user, _) = register(srv.addr, "ro_b").await;
    let thread = befriend(&a, &b, b_user.user_id).await;
    let g = b.create_group("只读群").await.unwrap();
    a.join_group(g.group_id).await.unwrap();
    let read_only =
        |ev: &Event, id: u64| matches!(ev, Event::Thread(t) if t.thread_id == id && !t.can_send);
    b.unfriend("ro_a").await.unwrap();
    until(&mut a_ev, |ev| read_only(ev, thread)).await;
    b.kick(g.group_id, a_user.user_id).await.unwrap();
    until(&mut a_ev, |ev| read_only(ev, g.thread_id)).await;
}
