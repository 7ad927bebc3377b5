//! Friends and the account from the keyboard: request notes, one's own requests (and taking
//! them back), unfriending, the password, logging out everywhere.

use super::*;

fn run(s: &mut State, line: &str) -> Vec<Cmd> {
    type_text(s, line);
    update(s, key(KeyCode::Enter))
}

#[test]
fn friend_commands_carry_the_note_and_the_name() {
    let mut s = main_state(80, 24);
    let cmds = run(&mut s, "/add 王五 我们在会上见过");
    assert!(
        matches!(&cmds[..], [Cmd::Op(Op::AddFriend(n, note))] if n == "王五" && note == "我们在会上见过"),
        "{cmds:?}"
    );
    // Nothing else waiting (the fixture's background loads and the request above).
    s.busy = Default::default();
    let cmds = run(&mut s, "/unfriend 张三");
    assert!(
        matches!(&cmds[..], [Cmd::Op(Op::Unfriend(n))] if n == "张三"),
        "{cmds:?}"
    );
    assert!(
        screen_text(&s).contains("removing 张三 from your friends"),
        "{}",
        screen_text(&s)
    );
    let cmds = run(&mut s, "/logout all");
    assert!(
        matches!(&cmds[..], [Cmd::Op(Op::LogoutEverywhere)]),
        "{cmds:?}"
    );
}

/// F2 lists the requests to me with their notes, then mine still waiting; `c` on one of mine
/// takes it back.
#[test]
fn the_requests_popup_shows_ones_own_requests_and_takes_them_back() {
    let mut s = main_state(80, 24);
    update(
        &mut s,
        Msg::Done(Done::Requests {
            incoming: vec![pb::FriendRequest {
                request_id: 77,
                from: Some(user(9, "王五")),
                to: Some(user(ME, "小明")),
                note: "我们在会上见过".into(),
                state: pb::RequestState::Pending as i32,
                ..Default::default()
            }],
            outgoing: vec![pb::FriendRequest {
                request_id: 78,
                from: Some(user(ME, "小明")),
                to: Some(user(12, "赵六")),
                state: pb::RequestState::Pending as i32,
                ..Default::default()
            }],
        }),
    );
    update(&mut s, key(KeyCode::F(2)));
    let screen = screen_text(&s);
    assert!(screen.contains("王五: 我们在会上见过"), "{screen}");
    assert!(screen.contains("sent to 赵六, waiting"), "{screen}");
    update(&mut s, key(KeyCode::Down));
    assert!(screen_text(&s).contains("c take back"));
    // Accepting one's own request means nothing; `c` takes it back.
    assert!(update(&mut s, key(KeyCode::Char('a'))).is_empty());
    let cmds = update(&mut s, key(KeyCode::Char('c')));
    assert!(
        matches!(&cmds[..], [Cmd::Op(Op::CancelRequest(n))] if n == "赵六"),
        "{cmds:?}"
    );
    assert!(!screen_text(&s).contains("sent to 赵六"));
    assert!(screen_text(&s).contains("taking back the request to 赵六"));
}

/// `/password`: the current password and the new one twice, masked; a mismatch is caught
/// here; the operation never shows the passwords, even in its Debug form (logs).
#[test]
fn changing_the_password_asks_twice_and_never_shows_it() {
    let mut s = main_state(80, 24);
    run(&mut s, "/password");
    assert!(matches!(s.popup, Some(Popup::Password { .. })));
    type_text(&mut s, "old secret");
    update(&mut s, key(KeyCode::Tab));
    type_text(&mut s, "new secret 1");
    update(&mut s, key(KeyCode::Enter));
    type_text(&mut s, "new secret 2");
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(cmds.is_empty(), "{cmds:?}");
    assert!(screen_text(&s).contains("the two new passwords differ"));
    let screen = screen_text(&s);
    assert!(!screen.contains("secret"), "masked: {screen}");
    type_text(&mut s, "new secret 1");
    let cmds = update(&mut s, key(KeyCode::Enter));
    let [Cmd::Op(op @ Op::ChangePassword { old, new })] = &cmds[..] else {
        panic!("{cmds:?}")
    };
    assert_eq!(
        (old.0.as_str(), new.0.as_str()),
        ("old secret", "new secret 1")
    );
    assert!(!format!("{op:?}").contains("secret"), "{op:?}");
    assert!(s.popup.is_none());
    s.notice = None;
    assert!(screen_text(&s).contains("changing your password"));
}

/// `/block NAME` asks the server; the list it answers with hides that user's messages (shown
/// as hidden, dim), which then never count as unread or notify. `/block` alone lists them.
#[test]
fn blocked_users_messages_are_hidden_and_never_notify() {
    let mut s = main_state(80, 24);
    let cmds = run(&mut s, "/block 李四");
    assert!(
        matches!(&cmds[..], [Cmd::Op(Op::Block(n, true))] if n == "李四"),
        "{cmds:?}"
    );
    update(
        &mut s,
        Msg::Done(Done::Blocked {
            users: vec![user(LI, "李四")],
            info: Some("blocked 李四".into()),
        }),
    );
    let screen = screen_text(&s);
    assert!(
        !screen.contains("先看 CI"),
        "李四's old message is hidden: {screen}"
    );
    assert!(
        screen.contains("(a message from someone you blocked)"),
        "{screen}"
    );
    update(&mut s, Msg::Focus(false));
    let cmds = update(
        &mut s,
        Msg::Core(Event::Message(msg(GROUP, 7, LI, 19, "@小明 hi"))),
    );
    assert!(
        !cmds.iter().any(|c| matches!(c, Cmd::Notify { .. })),
        "{cmds:?}"
    );
    assert_eq!(s.thread(GROUP).unwrap().unread, 0);
    let cmds = run(&mut s, "/unblock 李四");
    assert!(matches!(&cmds[..], [Cmd::Op(Op::Block(n, false))] if n == "李四"));
    let cmds = run(&mut s, "/block");
    assert!(matches!(&cmds[..], [Cmd::Op(Op::LoadBlocked)]));
    update(
        &mut s,
        Msg::Done(Done::Blocked {
            users: vec![user(LI, "李四")],
            info: None,
        }),
    );
    assert!(s.notice.clone().unwrap().0.contains("you block: 李四"));
    // A block made on another device arrives as an event: hidden here at once, and shown
    // again on the unblock.
    let event = |kind| {
        Msg::Core(Event::UserEvent(pb::UserEvent {
            event_seq: 90,
            ts_ms: NOW,
            kind: Some(kind),
        }))
    };
    s.blocked.clear();
    update(
        &mut s,
        event(pb::user_event::Kind::UserBlocked(user(LI, "李四"))),
    );
    assert!(s.blocked.contains(&LI));
    assert!(screen_text(&s).contains("(a message from someone you blocked)"));
    update(
        &mut s,
        event(pb::user_event::Kind::UserUnblocked(user(LI, "李四"))),
    );
    assert!(!s.blocked.contains(&LI));
}

/// `/devices` lists the account's sessions (this one marked); `x` twice signs another out,
/// `x` on this one says to log out instead.
#[test]
fn the_devices_popup_lists_sessions_and_signs_one_out() {
    let mut s = main_state(80, 24);
    let cmds = run(&mut s, "/devices");
    assert!(matches!(&cmds[..], [Cmd::Op(Op::LoadDevices)]), "{cmds:?}");
    let dev = |id, name: &str, current| pb::Device {
        device_id: id,
        name: name.into(),
        client: "confab-tui".into(),
        address: "127.0.0.1".into(),
        created_ms: NOW - 86_400_000,
        last_seen_ms: NOW - 60_000,
        current,
    };
    update(
        &mut s,
        Msg::Done(Done::Devices {
            devices: vec![dev(1, "laptop", true), dev(2, "办公室", false)],
            info: None,
        }),
    );
    let screen = screen_text(&s);
    assert!(
        screen.contains("laptop (this one) confab-tui  127.0.0.1  2026-05-03 09:19"),
        "{screen}"
    );
    assert!(screen.contains("办公室"), "{screen}");
    assert!(update(&mut s, key(KeyCode::Char('x'))).is_empty());
    assert!(s.notice.clone().unwrap().0.contains("/logout"));
    update(&mut s, key(KeyCode::Down));
    assert!(
        update(&mut s, key(KeyCode::Char('x'))).is_empty(),
        "asks first"
    );
    let cmds = update(&mut s, key(KeyCode::Char('x')));
    assert!(
        matches!(&cmds[..], [Cmd::Op(Op::RevokeDevice(2, n))] if n == "办公室"),
        "{cmds:?}"
    );
    update(
        &mut s,
        Msg::Done(Done::Devices {
            devices: vec![dev(1, "laptop", true)],
            info: Some("办公室 is signed out".into()),
        }),
    );
    assert!(screen_text(&s).contains("办公室 is signed out"));
    assert!(
        matches!(&s.popup, Some(Popup::Devices { devices, sel: 0 }) if devices.len() == 1),
        "{:?}",
        s.popup
    );
}

/// `/delete-account` says what it does and takes the password (masked); Esc keeps the account.
/// Once the server deleted it, the login screen comes back and the stored session goes.
#[test]
fn deleting_the_account_asks_the_password_then_forgets_the_session() {
    let mut s = main_state(80, 24);
    run(&mut s, "/delete-account");
    assert!(matches!(s.popup, Some(Popup::DeleteAccount { .. })));
    let screen = screen_text(&s);
    assert!(screen.contains("cannot be undone"), "{screen}");
    update(&mut s, key(KeyCode::Esc));
    assert!(s.popup.is_none(), "Esc keeps the account");
    run(&mut s, "/delete-account");
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(cmds.is_empty(), "no password, nothing sent: {cmds:?}");
    type_text(&mut s, "my secret");
    assert!(!screen_text(&s).contains("my secret"), "masked");
    let cmds = update(&mut s, key(KeyCode::Enter));
    let [Cmd::Op(Op::DeleteAccount(pw))] = &cmds[..] else {
        panic!("{cmds:?}")
    };
    assert_eq!(pw.0, "my secret");
    assert!(s.popup.is_none());
    let cmds = update(&mut s, Msg::Done(Done::AccountDeleted));
    assert!(matches!(s.screen, Screen::Login(_)));
    assert!(matches!(&cmds[..], [Cmd::ForgetSession]), "{cmds:?}");
    assert!(screen_text(&s).contains("your account is deleted"));
}

/// `/admin` turns into one request for a server admin; a wrong one shows its usage.
#[test]
fn admin_commands_parse_into_requests() {
    use confab_tui::app::AdminOp;
    let mut s = main_state(80, 24);
    let cases: [(&str, AdminOp); 5] = [
        (
            "/admin deactivate 王五",
            AdminOp::User("王五".into(), pb::AdminUserAction::Deactivate),
        ),
        (
            "/admin reactivate bob",
            AdminOp::User("bob".into(), pb::AdminUserAction::Reactivate),
        ),
        (
            "/admin signout bob",
            AdminOp::User("bob".into(), pb::AdminUserAction::RevokeSessions),
        ),
        ("/admin invite 5", AdminOp::Invite(5)),
        ("/admin stats", AdminOp::Stats),
    ];
    for (line, want) in cases {
        let cmds = run(&mut s, line);
        assert!(
            matches!(&cmds[..], [Cmd::Op(Op::Admin(op))] if *op == want),
            "{line}: {cmds:?}"
        );
    }
    for bad in [
        "/admin",
        "/admin invite 0",
        "/admin deactivate",
        "/admin frob x",
    ] {
        let cmds = run(&mut s, bad);
        assert!(cmds.is_empty(), "{bad}: {cmds:?}");
        assert!(screen_text(&s).contains("usage: /admin"), "{bad}");
    }
}

/// A deleted account has an empty name (protocol 1.5): its conversation and its messages say
/// "deleted account", never a blank.
#[test]
fn a_deleted_accounts_conversation_and_messages_say_so() {
    let mut s = main_state(80, 24);
    // One message cached from before, under the name the account had; one after.
    let mut old = msg(77, 1, 1234, 2, "早");
    old.sender = Some(user(1234, "alice"));
    update(&mut s, Msg::Core(Event::Message(old)));
    let mut t = dm(77, 1234, 2, 2, 900);
    t.peer = Some(user(1234, ""));
    t.can_send = false;
    update(&mut s, Msg::Threads(vec![(t, 0)]));
    let mut m = msg(77, 2, 1234, 3, "再见");
    m.sender = Some(user(1234, ""));
    update(&mut s, Msg::Core(Event::Message(m)));
    assert_eq!(s.thread(77).unwrap().name, "deleted account");
    s.selected = Some(77);
    let screen = screen_text(&s);
    assert!(
        screen.starts_with(" deleted account"),
        "the header: {screen}"
    );
    assert!(
        screen.contains("09:02 deleted  早"),
        "the old name is gone: {screen}"
    );
    assert!(!screen.contains("alice"), "{screen}");
    assert!(screen.contains("this account was deleted"), "{screen}");
}

/// `b` on a picked message blocks its sender; on one's own message it says why not.
#[test]
fn b_on_a_picked_message_blocks_its_sender() {
    let mut s = main_state(80, 24);
    s.selected = Some(GROUP);
    update(
        &mut s,
        Msg::Core(Event::Message(msg(GROUP, 7, LI, 19, "找我"))),
    );
    update(&mut s, alt(KeyCode::Up));
    // Once asks (a key typed by mistake blocks nobody), twice blocks.
    assert!(update(&mut s, key(KeyCode::Char('b'))).is_empty());
    assert!(screen_text(&s).contains("press b again to block its sender"));
    let cmds = update(&mut s, key(KeyCode::Char('b')));
    assert!(
        matches!(&cmds[..], [Cmd::Op(Op::Block(n, true))] if n == "李四"),
        "{cmds:?}"
    );
    update(
        &mut s,
        Msg::Core(Event::Message(msg(GROUP, 8, ME, 20, "mine"))),
    );
    update(&mut s, alt(KeyCode::Up));
    let cmds = update(&mut s, key(KeyCode::Char('b')));
    assert!(cmds.is_empty(), "{cmds:?}");
    let screen = screen_text(&s);
    assert!(screen.contains("your own message"), "{screen}");
}
