//! The login screen, sessions that end or are refused, and what a start resumes.

use super::*;

/// What the login screen says when the core stops is chosen by the server's code, not by
/// words in its message.
#[test]
fn a_refused_login_is_explained_by_its_code() {
    let cases = [
        (
            pb::ErrorCode::NameTaken,
            "NAME_TAKEN: 小明 exists",
            "that name is taken",
        ),
        (
            pb::ErrorCode::AuthFailed,
            "AUTH_FAILED: nope",
            "wrong name or password",
        ),
        // A message that merely mentions a code does not pick its text.
        (
            pb::ErrorCode::UnsupportedVersion,
            "UNSUPPORTED_VERSION: not AUTH_FAILED, name not taken",
            "not AUTH_FAILED, name not taken",
        ),
        // The server's words, without the code in front.
        (
            pb::ErrorCode::BadRequest,
            "BAD_REQUEST: the password is shorter than 8 bytes",
            "the password is shorter than 8 bytes",
        ),
    ];
    for (code, reason, shown) in cases {
        let mut s = State::new(Default::default(), "127.0.0.1:7000".into());
        s.now_ms = NOW;
        type_text(&mut s, "小明");
        update(&mut s, key(KeyCode::Enter));
        type_text(&mut s, "secret pw");
        update(&mut s, key(KeyCode::Enter));
        let cmds = update(
            &mut s,
            Msg::Core(Event::State(ConnState::Stopped {
                code,
                reason: reason.into(),
            })),
        );
        assert!(matches!(&cmds[..], [Cmd::Disconnect]), "{code:?}");
        let screen = screen_text(&s);
        assert!(screen.contains(shown), "{code:?}: {screen}");
        assert!(!screen.contains("BAD_REQUEST"), "{screen}");
        assert!(matches!(&s.conn, Conn::Stopped(c, _) if *c == code));
    }
}

#[test]
fn login_flow_and_refusal() {
    let mut s = State::new(Default::default(), "127.0.0.1:7000".into());
    s.now_ms = NOW;
    type_text(&mut s, "小明");
    update(&mut s, key(KeyCode::Enter));
    type_text(&mut s, "secret pw");
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(matches!(&cmds[..], [Cmd::Connect { name, .. }] if name == "小明"));
    assert!(screen_text(&s).contains("connecting…"));
    assert!(
        !screen_text(&s).contains("secret"),
        "the password is masked"
    );
    let cmds = update(
        &mut s,
        Msg::Core(Event::State(ConnState::Stopped {
            code: pb::ErrorCode::AuthFailed,
            reason: "AUTH_FAILED: wrong name or password".into(),
        })),
    );
    assert!(matches!(&cmds[..], [Cmd::Disconnect]));
    assert!(screen_text(&s).contains("wrong name or password"));
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(matches!(&cmds[..], [Cmd::Connect { .. }]));
    let cmds = update(
        &mut s,
        Msg::Core(Event::Session {
            user: user(ME, "小明"),
            device_id: 3,
            token: "tok".into(),
        }),
    );
    assert!(matches!(s.screen, Screen::Main));
    assert!(matches!(&cmds[..], [Cmd::SaveSession { device_id: 3, .. }]));
}

#[test]
fn a_session_ended_elsewhere_returns_to_the_login_screen_with_the_reason() {
    let mut s = main_state(80, 24);
    assert!(matches!(s.screen, Screen::Main));
    // Offline and retrying is not the end of the session: the main screen stays.
    update(
        &mut s,
        Msg::Core(Event::State(ConnState::Offline {
            retry_in: std::time::Duration::from_secs(1),
            reason: "the server closed the connection".into(),
        })),
    );
    assert!(matches!(s.screen, Screen::Main));
    let cmds = update(
        &mut s,
        Msg::Core(Event::State(ConnState::Stopped {
            code: pb::ErrorCode::AuthFailed,
            reason: "AUTH_FAILED: this session was revoked".into(),
        })),
    );
    assert!(matches!(&cmds[..], [Cmd::Disconnect]));
    let Screen::Login(f) = &s.screen else {
        panic!("not the login screen");
    };
    assert_eq!(f.name.text(), "小明");
    let text = screen_text(&s);
    assert!(text.contains("the session ended"), "{text}");
    assert!(text.contains("this session was"), "{text}");
    assert!(
        f.error
            .as_deref()
            .is_some_and(|e| e.contains("this session was revoked"))
    );
    assert!(
        s.threads.is_empty(),
        "the ended session's conversations stay shown"
    );
}

#[test]
fn resuming_shows_the_cache_before_the_server_answers() {
    let mut s = State::new(Default::default(), "x:1".into()).resuming(Some(user(ME, "小明")));
    s.now_ms = NOW;
    s.size = (80, 24);
    update(
        &mut s,
        Msg::Core(Event::State(ConnState::Offline {
            retry_in: Duration::from_secs(2),
            reason: "connection refused".into(),
        })),
    );
    let cmds = update(
        &mut s,
        Msg::Threads(vec![(dm(DM_ZHANG, ZHANG, 2, 2, 1), 2)]),
    );
    assert!(cmds.iter().any(|c| matches!(
        c,
        Cmd::History {
            thread_id: DM_ZHANG,
            ..
        }
    )));
    update(
        &mut s,
        Msg::History {
            thread_id: DM_ZHANG,
            msgs: vec![
                msg(DM_ZHANG, 1, ZHANG, 1, "缓存里的消息"),
                msg(DM_ZHANG, 2, ME, 2, "mine"),
            ],
        },
    );
    let text = screen_text(&s);
    assert!(
        text.contains("OFFLINE") && text.contains("缓存里的消息"),
        "{text}"
    );
    assert_eq!(
        s.thread(DM_ZHANG).unwrap().unread,
        0,
        "my own message is not unread"
    );
    // The stored session is refused: back to the login screen.
    let cmds = update(
        &mut s,
        Msg::Core(Event::State(ConnState::Stopped {
            code: pb::ErrorCode::AuthFailed,
            reason: "AUTH_FAILED: session expired".into(),
        })),
    );
    assert!(matches!(s.screen, Screen::Login(_)));
    assert!(matches!(&cmds[..], [Cmd::Disconnect]));
}

/// The conversation left open at the last run opens first, not the most active one.
#[test]
fn the_conversation_left_open_opens_first() {
    let settings = confab_tui::app::config::Settings::parse("", false);
    let mut s = State::new(settings, "chat.example:7000".into());
    s.now_ms = NOW;
    s.last_open = Some(DM_ALICE);
    signed_in(&mut s);
    update(
        &mut s,
        Msg::Threads(vec![
            (group_thread(6, 6, 18 * 100_000 + GROUP * 100 + 6), 6),
            (dm(DM_ALICE, ALICE, 1, 1, 500), 1),
        ]),
    );
    assert_eq!(s.selected, Some(DM_ALICE));
    // Once: a later listing does not move the user.
    update(&mut s, alt(KeyCode::Char('1')));
    update(
        &mut s,
        Msg::Threads(vec![(dm(DM_ALICE, ALICE, 1, 1, 501), 1)]),
    );
    assert_ne!(s.selected, Some(DM_ALICE));
}

/// Registration asks for the password twice: a mismatch is caught before anything is sent,
/// the second field is cleared and focused; matching passwords register, with the invitation
/// code if one was typed.
#[test]
fn registration_asks_for_the_password_twice() {
    let mut s = State::new(Default::default(), "127.0.0.1:7000".into());
    s.now_ms = NOW;
    update(&mut s, ctrl('t'));
    assert!(screen_text(&s).contains("again"));
    type_text(&mut s, "小明");
    update(&mut s, key(KeyCode::Enter));
    type_text(&mut s, "correct horse");
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(
        cmds.is_empty(),
        "Enter moves to the second password: {cmds:?}"
    );
    type_text(&mut s, "correct hose");
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(cmds.is_empty(), "{cmds:?}");
    assert!(screen_text(&s).contains("the two passwords differ"));
    let Screen::Login(f) = &s.screen else {
        panic!()
    };
    assert_eq!((f.field, f.confirm.text()), (3, ""));
    // The invitation code an invite-only server asks for goes with the registration (Tab
    // reaches its field; Enter on the second password submits).
    update(&mut s, key(KeyCode::Tab));
    type_text(&mut s, " 7.SeCrEt ");
    update(&mut s, key(KeyCode::BackTab));
    type_text(&mut s, "correct horse");
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(
        matches!(&cmds[..], [Cmd::Connect { auth: confab_tui::client::Auth::Register { password, invite, .. }, .. }]
            if password == "correct horse" && invite == "7.SeCrEt"),
        "{cmds:?}"
    );
    // Back to logging in: three fields again, the focus inside them.
    let mut s = State::new(Default::default(), "127.0.0.1:7000".into());
    update(&mut s, ctrl('t'));
    // From the name (field 1) to the second password (3).
    update(&mut s, key(KeyCode::Tab));
    update(&mut s, key(KeyCode::Tab));
    let Screen::Login(f) = &s.screen else {
        panic!()
    };
    assert_eq!(f.field, 3);
    update(&mut s, ctrl('t'));
    let Screen::Login(f) = &s.screen else {
        panic!()
    };
    assert_eq!(f.field, 2);
    assert!(!screen_text(&s).contains("again"));
}

/// After a logout (or a session that ended elsewhere), logging in again opens the conversation
/// that was open, not the most active one.
#[test]
fn logging_in_again_opens_the_conversation_that_was_open() {
    let mut s = main_state(80, 24);
    update(&mut s, alt(KeyCode::Char('3')));
    assert_eq!(s.selected, Some(DM_ALICE));
    update(&mut s, Msg::Done(Done::LoggedOut));
    assert!(matches!(s.screen, Screen::Login(_)));
    signed_in(&mut s);
    update(
        &mut s,
        Msg::Threads(vec![
            (group_thread(6, 6, 18 * 100_000 + GROUP * 100 + 6), 6),
            (dm(DM_ALICE, ALICE, 1, 1, 500), 1),
        ]),
    );
    assert_eq!(s.selected, Some(DM_ALICE));
}
