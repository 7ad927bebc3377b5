//! The terminal client without a terminal: reducer tests (message sequences give the right
//! unread counts, order and marks) and TestBackend snapshots of every screen and popup at
//! 80x24, 60x20 and 120x40 with CJK names and messages (fixed clock, times in UTC).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::time::Duration;

use common::fixture::*;
use confab_tui::app::{Cmd, Conn, Done, Msg, Op, Popup, Screen, SendState, State, update};
use confab_tui::client::{ConnState, Event};
use confab_wire::pb;
use crossterm::event::KeyCode;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn render(s: &State) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(s.size.0, s.size.1)).unwrap();
    t.draw(|f| confab_tui::ui::draw(f, s)).unwrap();
    t
}

/// The screen as text, one row per line (trailing blanks trimmed). The cells a wide glyph
/// covers are skipped, and must be blank: anything else there would be hidden on a terminal.
fn dump(t: &Terminal<TestBackend>) -> String {
    let buf = t.backend().buffer();
    let mut out = String::new();
    for y in 0..buf.area.height {
        let mut row = String::new();
        let mut skip = 0;
        for x in 0..buf.area.width {
            let sym = buf[(x, y)].symbol();
            if skip > 0 {
                assert!(
                    sym.trim().is_empty(),
                    "cell ({x},{y}) {sym:?} is hidden by a wide glyph"
                );
                skip -= 1;
                continue;
            }
            row.push_str(sym);
            skip = unicode_width::UnicodeWidthStr::width(sym).saturating_sub(1);
        }
        out.push_str(row.trim_end());
        out.push('\n');
    }
    out
}

fn screen_text(s: &State) -> String {
    dump(&render(s))
}

// ------------------------------------------------------------------------------------------
// Reducer

#[test]
fn incoming_dm_in_another_thread_counts_unread_and_notifies() {
    let mut s = main_state(80, 24);
    assert_eq!(s.selected, Some(GROUP));
    assert_eq!(
        s.thread(DM_ZHANG).unwrap().unread,
        2,
        "from the thread list"
    );
    let cmds = update(
        &mut s,
        Msg::Core(Event::Message(msg(DM_ZHANG, 3, ZHANG, 19, "在吗？"))),
    );
    let t = s.thread(DM_ZHANG).unwrap();
    assert_eq!(t.unread, 3);
    assert_eq!(s.threads[0].id, DM_ZHANG, "newest activity first");
    assert!(
        cmds.iter().any(
            |c| matches!(c, Cmd::Notify { title, body } if title == "张三" && body == "在吗？")
        ),
        "{cmds:?}"
    );
    // A message in the visible thread is read at once, no notification.
    let cmds = update(
        &mut s,
        Msg::Core(Event::Message(msg(GROUP, 7, LI, 19, "收到"))),
    );
    assert_eq!(s.thread(GROUP).unwrap().unread, 0);
    assert!(cmds.iter().any(|c| matches!(
        c,
        Cmd::MarkRead {
            thread_id: GROUP,
            seq: 7
        }
    )));
    assert!(!cmds.iter().any(|c| matches!(c, Cmd::Notify { .. })));
    // Unfocused: counted and notified even in the visible thread.
    update(&mut s, Msg::Focus(false));
    let cmds = update(
        &mut s,
        Msg::Core(Event::Message(msg(GROUP, 8, LI, 19, "@小明 看一下"))),
    );
    assert_eq!(s.thread(GROUP).unwrap().unread, 1);
    assert_eq!(s.thread(GROUP).unwrap().mentions, 1);
    assert!(cmds.iter().any(|c| matches!(c, Cmd::Notify { .. })));
    assert_eq!(s.total_unread(), 4);
    assert_eq!(s.title(), "(4) 研发群 - confab");
    // Focus back: the shown thread is read.
    let cmds = update(&mut s, Msg::Focus(true));
    assert_eq!(s.thread(GROUP).unwrap().unread, 0);
    assert!(cmds.iter().any(|c| matches!(
        c,
        Cmd::MarkRead {
            thread_id: GROUP,
            seq: 8
        }
    )));
    // Alt-A goes to the thread with unread messages and clears it.
    update(&mut s, alt(KeyCode::Char('a')));
    assert_eq!(s.selected, Some(DM_ZHANG));
    assert_eq!(s.thread(DM_ZHANG).unwrap().unread, 0);
}

#[test]
fn gap_fill_merges_without_duplicates_or_double_counting() {
    let mut s = main_state(80, 24);
    // The list says two unread in the DM; a sync then delivers them: still two.
    for seq in 1..=2 {
        update(
            &mut s,
            Msg::Core(Event::Message(msg(DM_ZHANG, seq, ZHANG, 1, "旧消息"))),
        );
    }
    assert_eq!(s.thread(DM_ZHANG).unwrap().unread, 2);
    // A thread update after a gap: last_seq jumps to 5.
    update(
        &mut s,
        Msg::Core(Event::Thread(dm(
            DM_ZHANG,
            ZHANG,
            5,
            0,
            DM_ZHANG * 1000 + 5,
        ))),
    );
    assert_eq!(s.thread(DM_ZHANG).unwrap().unread, 5);
    // The gap is filled by the sync (3..5), then a history page overlaps everything.
    for seq in 3..=5 {
        update(
            &mut s,
            Msg::Core(Event::Message(msg(
                DM_ZHANG,
                seq,
                ZHANG,
                2,
                &format!("m{seq}"),
            ))),
        );
    }
    assert_eq!(s.thread(DM_ZHANG).unwrap().unread, 5, "no double count");
    update(
        &mut s,
        Msg::History {
            thread_id: DM_ZHANG,
            msgs: (1..=5).map(|q| msg(DM_ZHANG, q, ZHANG, 2, "x")).collect(),
        },
    );
    let t = s.thread(DM_ZHANG).unwrap();
    assert_eq!(
        t.messages.keys().copied().collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    assert!(t.oldest_done);
    // A new push after the gap counts once.
    update(
        &mut s,
        Msg::Core(Event::Message(msg(DM_ZHANG, 6, ZHANG, 3, "新"))),
    );
    assert_eq!(s.thread(DM_ZHANG).unwrap().unread, 6);
    // The same entry again (a resync) changes nothing.
    update(
        &mut s,
        Msg::Core(Event::Message(msg(DM_ZHANG, 6, ZHANG, 3, "新"))),
    );
    assert_eq!(s.thread(DM_ZHANG).unwrap().unread, 6);
}

#[test]
fn reconnect_shows_the_banner_with_a_countdown_then_resyncs() {
    let mut s = main_state(80, 24);
    update(
        &mut s,
        Msg::Core(Event::State(ConnState::Offline {
            retry_in: Duration::from_millis(3000),
            reason: "connection reset".into(),
        })),
    );
    assert!(matches!(s.conn, Conn::Offline { retry_at_ms, .. } if retry_at_ms == NOW + 3000));
    let text = screen_text(&s);
    assert!(
        text.contains("OFFLINE, reconnecting in 3s (/reconnect now): connection reset"),
        "{text}"
    );
    assert_eq!(s.next_wakeup(), Some(NOW + 1000));
    s.now_ms = NOW + 1500;
    update(&mut s, Msg::Tick);
    assert!(screen_text(&s).contains("reconnecting in 2s"));
    // Sending while offline queues (pending mark), never blocks.
    type_text(&mut s, "离线时发的");
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(cmds.iter().any(|c| matches!(c, Cmd::Send { .. })));
    assert!(screen_text(&s).contains("离线时发的 (sending…)"));
    update(
        &mut s,
        Msg::Core(Event::State(ConnState::Online { synced: false })),
    );
    let cmds = update(&mut s, Msg::Core(Event::Synced));
    assert_eq!(s.conn, Conn::Online);
    assert!(cmds.iter().any(|c| matches!(c, Cmd::LoadThreads)));
    assert!(cmds.iter().any(|c| matches!(c, Cmd::LoadOutbox)));
    assert!(!screen_text(&s).contains("OFFLINE"));
}

#[test]
fn failed_send_then_retry_updates_the_marks() {
    let mut s = main_state(80, 24);
    type_text(&mut s, "hello 世界");
    let cmds = update(&mut s, key(KeyCode::Enter));
    let key1 = match &cmds[..] {
        [
            Cmd::Send {
                thread_id: GROUP,
                key,
                body,
            },
        ] if body == "hello 世界" => *key,
        other => panic!("{other:?}"),
    };
    assert!(s.composer.is_empty());
    update(
        &mut s,
        Msg::Queued {
            thread_id: GROUP,
            key: key1,
            result: Ok(7),
        },
    );
    update(
        &mut s,
        Msg::Core(Event::SendFailed {
            local_id: 7,
            error: pb::Error {
                code: pb::ErrorCode::Forbidden as i32,
                message: "not a member".into(),
                ..Default::default()
            },
        }),
    );
    let t = s.thread(GROUP).unwrap();
    assert_eq!(t.pending.len(), 1);
    assert_eq!(t.pending[0].state, SendState::Failed("not a member".into()));
    assert!(screen_text(&s).contains("(failed: not a member; Alt-R retries)"));
    // Alt-R sends it again.
    let cmds = update(&mut s, alt(KeyCode::Char('r')));
    let key2 = match &cmds[..] {
        [Cmd::Send { body, key, .. }] if body == "hello 世界" => *key,
        other => panic!("{other:?}"),
    };
    assert_eq!(s.thread(GROUP).unwrap().pending.len(), 1);
    update(
        &mut s,
        Msg::Queued {
            thread_id: GROUP,
            key: key2,
            result: Ok(8),
        },
    );
    update(
        &mut s,
        Msg::Core(Event::Acked {
            local_id: 8,
            ack: pb::SendAck {
                thread_id: GROUP,
                seq: 7,
                message_id: GROUP * 1000 + 7,
                ..Default::default()
            },
        }),
    );
    assert_eq!(
        s.thread(GROUP).unwrap().pending[0].state,
        SendState::Acked(7)
    );
    update(
        &mut s,
        Msg::Core(Event::Message(msg(GROUP, 7, ME, 19, "hello 世界"))),
    );
    let t = s.thread(GROUP).unwrap();
    assert!(
        t.pending.is_empty(),
        "the stored entry replaces the local echo"
    );
    assert_eq!(t.messages[&7].body, "hello 世界");
    assert_eq!(t.unread, 0, "my own message is not unread");
}

#[test]
fn drafts_are_per_thread_and_esc_keeps_them() {
    let mut s = main_state(80, 24);
    type_text(&mut s, "草稿一");
    update(&mut s, key(KeyCode::Esc));
    assert_eq!(s.composer.text(), "草稿一");
    update(&mut s, ctrl('n'));
    assert_ne!(s.selected, Some(GROUP));
    assert!(s.composer.is_empty());
    type_text(&mut s, "second");
    update(&mut s, ctrl('p'));
    assert_eq!(s.selected, Some(GROUP));
    assert_eq!(s.composer.text(), "草稿一");
    update(&mut s, ctrl('n'));
    assert_eq!(s.composer.text(), "second");
    // Alt-1 goes to the first thread in the list.
    update(&mut s, alt(KeyCode::Char('1')));
    assert_eq!(s.selected, Some(s.threads[0].id));
}

#[test]
fn paste_never_sends_and_newlines_are_kept() {
    let mut s = main_state(80, 24);
    let cmds = update(&mut s, Msg::Paste("第一行\r\nline two\nthree".into()));
    assert!(cmds.is_empty());
    assert_eq!(s.composer.text(), "第一行\nline two\nthree");
    assert!(screen_text(&s).contains("pasted 3 lines"));
    // Alt-Enter and Ctrl-J insert newlines; Enter sends the whole text.
    update(&mut s, alt(KeyCode::Enter));
    update(&mut s, ctrl('j'));
    assert_eq!(s.composer.text(), "第一行\nline two\nthree\n\n");
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(matches!(&cmds[..], [Cmd::Send { body, .. }] if body.starts_with("第一行\nline two")));
}

#[test]
fn slash_commands_become_operations() {
    let mut s = main_state(80, 24);
    let run = |s: &mut State, line: &str| {
        type_text(s, line);
        update(s, key(KeyCode::Enter))
    };
    assert!(matches!(&run(&mut s, "/add 王五")[..], [Cmd::Op(Op::AddFriend(n))] if n == "王五"));
    assert!(matches!(
        &run(&mut s, "/accept 王五")[..],
        [Cmd::Op(Op::Respond {
            request_id: 77,
            accept: true
        })]
    ));
    assert!(s.requests.is_empty());
    assert!(
        matches!(&run(&mut s, "/group create 研发")[..], [Cmd::Op(Op::CreateGroup(n))] if n == "研发")
    );
    assert!(
        matches!(&run(&mut s, "/msg Alice hi")[..], [Cmd::Op(Op::OpenDm(n, Some(t)))] if n == "Alice" && t == "hi")
    );
    assert!(run(&mut s, "/nope").is_empty());
    assert!(screen_text(&s).contains("unknown command /nope"));
    // Tab completes commands, then names.
    type_text(&mut s, "/ac");
    update(&mut s, key(KeyCode::Tab));
    assert_eq!(s.composer.text(), "/accept ");
    update(&mut s, ctrl('u'));
    type_text(&mut s, "/msg 张");
    update(&mut s, key(KeyCode::Tab));
    assert_eq!(s.composer.text(), "/msg 张三 ");
    let cmds = run(&mut s, "");
    assert!(matches!(&cmds[..], [Cmd::Op(Op::OpenDm(n, None))] if n == "张三"));
    update(
        &mut s,
        Msg::Done(Done::Open(Box::new(dm(DM_ZHANG, ZHANG, 2, 2, 1)), None)),
    );
    assert_eq!(s.selected, Some(DM_ZHANG));
    let cmds = run(&mut s, "/quit");
    assert!(matches!(&cmds[..], [Cmd::Quit]) && s.quit);
}

#[test]
fn incoming_text_is_nfc_normalized() {
    let mut s = main_state(80, 24);
    update(
        &mut s,
        Msg::Core(Event::Message(msg(
            GROUP,
            7,
            LI,
            19,
            "cafe\u{301} \u{1100}\u{1161}",
        ))),
    );
    assert_eq!(s.thread(GROUP).unwrap().messages[&7].body, "café \u{ac00}");
}

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
fn popups_act_on_the_selection() {
    let mut s = main_state(80, 24);
    update(&mut s, key(KeyCode::F(2)));
    assert!(matches!(s.popup, Some(Popup::Requests { .. })));
    let cmds = update(&mut s, key(KeyCode::Char('a')));
    assert!(matches!(
        &cmds[..],
        [Cmd::Op(Op::Respond {
            request_id: 77,
            accept: true
        })]
    ));
    update(&mut s, key(KeyCode::Esc));
    assert!(s.popup.is_none());
    // Quick switcher: fuzzy.
    update(&mut s, ctrl('k'));
    type_text(&mut s, "ali");
    update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.selected, Some(DM_ALICE));
    // Members: p toggles admin, x kicks.
    update(&mut s, alt(KeyCode::Char('3')));
    update(&mut s, ctrl('k'));
    type_text(&mut s, "研发");
    update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.selected, Some(GROUP));
    let cmds = update(&mut s, key(KeyCode::F(5)));
    assert!(matches!(&cmds[..], [Cmd::Op(Op::Members(5))]));
    update(&mut s, Msg::Done(Done::Members(5, members())));
    update(&mut s, key(KeyCode::Down));
    let cmds = update(&mut s, key(KeyCode::Char('p')));
    assert!(matches!(
        &cmds[..],
        [Cmd::Op(Op::SetRole(5, ZHANG, _, pb::Role::Admin))]
    ));
    // x asks first; a second x removes.
    let cmds = update(&mut s, key(KeyCode::Char('x')));
    assert!(cmds.is_empty(), "{cmds:?}");
    assert!(screen_text(&s).contains("press x again to remove"));
    let cmds = update(&mut s, key(KeyCode::Char('x')));
    assert!(matches!(&cmds[..], [Cmd::Op(Op::Kick(5, ZHANG, _))]));
    // Another key between the two cancels.
    update(&mut s, key(KeyCode::Char('x')));
    update(&mut s, key(KeyCode::Down));
    let cmds = update(&mut s, key(KeyCode::Char('x')));
    assert!(cmds.is_empty(), "{cmds:?}");
}

// ------------------------------------------------------------------------------------------
// Snapshots

const SIZES: [(u16, u16); 3] = [(80, 24), (60, 20), (120, 40)];

fn members() -> Vec<pb::GroupMember> {
    vec![
        pb::GroupMember {
            user: Some(user(ME, "小明")),
            role: pb::Role::Owner as i32,
            online: true,
            ..Default::default()
        },
        pb::GroupMember {
            user: Some(user(ZHANG, "张三")),
            role: pb::Role::Member as i32,
            online: true,
            ..Default::default()
        },
        pb::GroupMember {
            user: Some(user(LI, "李四")),
            role: pb::Role::Admin as i32,
            online: false,
            ..Default::default()
        },
    ]
}

fn snap(name: &str, prepare: impl Fn(&mut State)) {
    for (w, h) in SIZES {
        let mut s = main_state(w, h);
        prepare(&mut s);
        let text = screen_text(&s);
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), text);
    }
}

#[test]
fn snapshot_main() {
    snap("main", |_| {});
}

#[test]
fn snapshot_dm_with_read_receipt_typing_and_pending() {
    snap("dm", |s| {
        update(s, ctrl('n'));
        update(
            s,
            Msg::History {
                thread_id: DM_ZHANG,
                msgs: vec![
                    msg(DM_ZHANG, 1, ZHANG, 1, "你好！"),
                    msg(DM_ZHANG, 2, ME, 2, "hi 张三"),
                ],
            },
        );
        update(
            s,
            Msg::Core(Event::ReadReceipt(pb::ReadReceiptPush {
                thread_id: DM_ZHANG,
                user: Some(user(ZHANG, "张三")),
                read_seq: 2,
            })),
        );
        update(
            s,
            Msg::Core(Event::Typing(pb::TypingPush {
                thread_id: DM_ZHANG,
                user: Some(user(ZHANG, "张三")),
                expires_ms: 5000,
            })),
        );
        type_text(s, "还没发出去");
        update(s, key(KeyCode::Enter));
        type_text(s, "草稿");
    });
}

#[test]
fn snapshot_offline_banner() {
    snap("offline", |s| {
        update(
            s,
            Msg::Core(Event::State(ConnState::Offline {
                retry_in: Duration::from_secs(8),
                reason: "connection refused".into(),
            })),
        );
    });
}

#[test]
fn snapshot_scrolled_with_new_below() {
    snap("scrolled", |s| {
        let many: Vec<_> = (7..=60)
            .map(|q| {
                msg(
                    GROUP,
                    q,
                    if q % 2 == 0 { ZHANG } else { LI },
                    18,
                    &format!("第{q}条消息"),
                )
            })
            .collect();
        update(
            s,
            Msg::History {
                thread_id: GROUP,
                msgs: many,
            },
        );
        update(s, key(KeyCode::PageUp));
        update(
            s,
            Msg::Core(Event::Message(msg(GROUP, 61, LI, 19, "新消息"))),
        );
    });
}

#[test]
fn snapshot_composer_multiline_cjk() {
    snap("composer", |s| {
        type_text(s, "第一行");
        update(s, alt(KeyCode::Enter));
        type_text(s, &"很长的中文输入会按显示宽度换行".repeat(4));
    });
}

#[test]
fn snapshot_popups() {
    snap("popup_help", |s| {
        update(s, key(KeyCode::F(1)));
    });
    snap("popup_requests", |s| {
        update(s, key(KeyCode::F(2)));
    });
    snap("popup_add_friend", |s| {
        update(s, key(KeyCode::F(3)));
        type_text(s, "王");
        update(s, key(KeyCode::Enter));
        update(
            s,
            Msg::Done(Done::Users(vec![
                pb::Profile {
                    user: Some(user(9, "王五")),
                    ..Default::default()
                },
                pb::Profile {
                    user: Some(user(11, "王小二")),
                    ..Default::default()
                },
            ])),
        );
    });
    snap("popup_group", |s| {
        update(s, key(KeyCode::F(4)));
        type_text(s, "前端小组");
    });
    snap("popup_members", |s| {
        update(s, key(KeyCode::F(5)));
        update(s, Msg::Done(Done::Members(5, members())));
    });
    snap("popup_switcher", |s| {
        update(s, ctrl('k'));
        type_text(s, "张");
    });
}

#[test]
fn snapshot_login_screens() {
    for (w, h) in SIZES {
        let mut s = State::new(Default::default(), "chat.example:7000".into());
        s.size = (w, h);
        type_text(&mut s, "小明");
        update(&mut s, key(KeyCode::Enter));
        type_text(&mut s, "pw");
        insta::assert_snapshot!(format!("login_{w}x{h}"), screen_text(&s));
        update(&mut s, key(KeyCode::Enter));
        update(
            &mut s,
            Msg::Core(Event::State(ConnState::Stopped {
                code: pb::ErrorCode::AuthFailed,
                reason: "AUTH_FAILED".into(),
            })),
        );
        update(&mut s, ctrl('t'));
        insta::assert_snapshot!(format!("register_error_{w}x{h}"), screen_text(&s));
    }
}

#[test]
fn snapshot_empty_and_too_small() {
    let mut s = State::new(Default::default(), "x:1".into()).resuming(None);
    s.size = (80, 24);
    signed_in(&mut s);
    insta::assert_snapshot!("empty_80x24", screen_text(&s));
    let mut small = main_state(30, 8);
    small.size = (30, 8);
    insta::assert_snapshot!("too_small_30x8", screen_text(&small));
}

// ------------------------------------------------------------------------------------------
// The real cursor sits at the caret (IME candidate windows appear there).

#[test]
fn cursor_follows_cjk_input() {
    let mut s = main_state(80, 24);
    type_text(&mut s, "中文ab");
    // Composer on row 22 (title, 20 chat rows, separator), after "> " + 4 + 2 cells.
    render(&s).backend_mut().assert_cursor_position((8, 22));
    update(&mut s, key(KeyCode::Left));
    update(&mut s, key(KeyCode::Left));
    update(&mut s, key(KeyCode::Left));
    render(&s).backend_mut().assert_cursor_position((4, 22));
    // 40 ideographs = 80 cells wrap at 78: the composer grows and the caret follows.
    update(&mut s, key(KeyCode::End));
    type_text(&mut s, &"字".repeat(40));
    let mut t = render(&s);
    // "中文ab" (6) + 36 ideographs (72) = 78 on the first row; 4 on the second.
    t.backend_mut().assert_cursor_position((2 + 8, 22));
    let text = dump(&t);
    let rows: Vec<&str> = text.lines().collect();
    assert!(rows[21].contains("> 中文ab字"), "{text}");
    // The popup's input gets the cursor instead.
    update(&mut s, ctrl('k'));
    type_text(&mut s, "研发");
    let mut t = render(&s);
    let pos = ratatui::backend::Backend::get_cursor_position(t.backend_mut()).unwrap();
    let row: String = dump(&t).lines().nth(usize::from(pos.y)).unwrap().into();
    assert!(row.contains("> 研发"), "{row}");
}

#[test]
fn paging_up_reaches_the_top_and_asks_for_older_history() {
    let mut s = main_state(80, 24);
    let cmds = update(&mut s, ctrl('n'));
    assert_eq!(s.selected, Some(DM_ZHANG));
    assert!(cmds.iter().any(|c| matches!(
        c,
        Cmd::History {
            thread_id: DM_ZHANG,
            before_seq: 0
        }
    )));
    update(
        &mut s,
        Msg::History {
            thread_id: DM_ZHANG,
            msgs: (201..=400)
                .map(|q| msg(DM_ZHANG, q, ZHANG, 18, &format!("第{q}条 line")))
                .collect(),
        },
    );
    let mut asked = None;
    for _ in 0..100 {
        let cmds = update(&mut s, key(KeyCode::PageUp));
        if let Some(Cmd::History { before_seq, .. }) =
            cmds.iter().find(|c| matches!(c, Cmd::History { .. }))
        {
            asked = Some(*before_seq);
            break;
        }
    }
    assert_eq!(asked, Some(201), "older than the oldest loaded entry");
    let text = screen_text(&s);
    assert!(text.contains("loading older messages"), "{text}");
    assert!(
        text.contains("第201条 line"),
        "the top of what is loaded: {text}"
    );
    // The older page arrives; back to the newest with Alt-End.
    update(
        &mut s,
        Msg::History {
            thread_id: DM_ZHANG,
            msgs: (1..=200)
                .map(|q| msg(DM_ZHANG, q, ZHANG, 17, &format!("第{q}条 line")))
                .collect(),
        },
    );
    assert_eq!(s.thread(DM_ZHANG).unwrap().messages.len(), 400);
    update(&mut s, alt(KeyCode::End));
    let text = screen_text(&s);
    assert!(
        text.contains("第400条 line") && !text.contains("第201条 line"),
        "{text}"
    );
}

#[test]
fn ctrl_r_searches_sent_messages() {
    let mut s = main_state(80, 24);
    for line in ["部署完成了", "hello there", "部署失败，回滚"] {
        type_text(&mut s, line);
        update(&mut s, key(KeyCode::Enter));
    }
    type_text(&mut s, "draft");
    update(&mut s, ctrl('r'));
    type_text(&mut s, "部署");
    assert_eq!(s.composer.text(), "部署失败，回滚");
    assert!(screen_text(&s).contains("reverse search: 部署"));
    update(&mut s, ctrl('r'));
    assert_eq!(s.composer.text(), "部署完成了", "older match");
    update(&mut s, key(KeyCode::Esc));
    assert_eq!(s.composer.text(), "draft", "Esc restores the draft");
    update(&mut s, ctrl('r'));
    type_text(&mut s, "hello");
    // Any other key accepts the match, then acts: Enter sends it.
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(matches!(&cmds[..], [Cmd::Send { body, .. }] if body == "hello there"));
    assert!(s.rsearch.is_none());
}

#[test]
fn members_cannot_kick_or_promote() {
    let mut s = main_state(80, 24);
    let mut t = group_thread(6, 6, 18 * 100_000 + GROUP * 100 + 6);
    if let Some(g) = t.group.as_mut() {
        g.my_role = pb::Role::Member as i32;
    }
    // A fresh state learns the group with the member role.
    s.threads.retain(|x| x.id != GROUP);
    s.selected = None;
    update(&mut s, Msg::Core(Event::Thread(t)));
    assert_eq!(s.selected, Some(GROUP));
    update(&mut s, key(KeyCode::F(5)));
    update(&mut s, Msg::Done(Done::Members(5, members())));
    assert!(screen_text(&s).contains("Esc close") && !screen_text(&s).contains("x kick"));
    let cmds = update(&mut s, key(KeyCode::Char('x')));
    assert!(cmds.is_empty(), "{cmds:?}");
    assert!(screen_text(&s).contains("only the owner and admins can do that"));
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

#[test]
fn no_color_leaves_only_attributes() {
    use ratatui::style::Color;
    let colored = |s: &State| {
        let t = render(s);
        let buf = t.backend().buffer().clone();
        buf.content()
            .iter()
            .any(|c| c.fg != Color::Reset || c.bg != Color::Reset)
    };
    let mut s = main_state(80, 24);
    update(
        &mut s,
        Msg::Core(Event::State(ConnState::Offline {
            retry_in: Duration::from_secs(3),
            reason: "x".into(),
        })),
    );
    assert!(colored(&s), "the default theme uses colours");
    s.settings = confab_tui::app::config::Settings::parse("", true);
    assert!(!colored(&s), "NO_COLOR: no colour anywhere");
    assert!(
        screen_text(&s).contains("OFFLINE"),
        "the banner still shows"
    );
}

#[test]
fn vim_preset_normal_mode_reads_without_losing_the_draft() {
    let mut s = main_state(80, 24);
    s.settings = confab_tui::app::config::Settings::parse("keymap = \"vim\"", false);
    update(
        &mut s,
        Msg::History {
            thread_id: GROUP,
            msgs: (7..=60)
                .map(|q| msg(GROUP, q, LI, 18, &format!("第{q}条")))
                .collect(),
        },
    );
    type_text(&mut s, "草稿");
    update(&mut s, key(KeyCode::Esc));
    assert!(s.normal_mode);
    assert!(screen_text(&s).contains("-- NORMAL --"));
    update(&mut s, key(KeyCode::Char('k')));
    update(&mut s, key(KeyCode::Char('k')));
    assert_eq!(s.thread(GROUP).unwrap().scroll, 2, "k scrolls one line");
    update(&mut s, key(KeyCode::Char('G')));
    assert_eq!(s.thread(GROUP).unwrap().scroll, 0);
    update(&mut s, key(KeyCode::Char('J')));
    assert_eq!(s.selected, Some(DM_ZHANG), "J: next conversation");
    update(&mut s, key(KeyCode::Char('K')));
    assert_eq!(s.composer.text(), "草稿", "the draft is still there");
    update(&mut s, key(KeyCode::Char('i')));
    assert!(!s.normal_mode);
    type_text(&mut s, "!");
    assert_eq!(s.composer.text(), "草稿!");
    // The default preset has no normal mode: Esc only closes things.
    let mut d = main_state(80, 24);
    update(&mut d, key(KeyCode::Esc));
    assert!(!d.normal_mode);
}

#[test]
fn snapshot_ambiguous_wide_uses_ascii_lines() {
    let mut s = main_state(80, 24);
    s.settings = confab_tui::app::config::Settings::parse("ambiguous_width = 2", false);
    let main = screen_text(&s);
    assert!(!main.contains('│') && !main.contains('─'), "{main}");
    insta::assert_snapshot!("ambiguous_wide_main_80x24", main);
    update(&mut s, key(KeyCode::F(2)));
    let popup = screen_text(&s);
    assert!(
        !popup.contains('┌') && popup.contains("+ Friend requests -"),
        "{popup}"
    );
    insta::assert_snapshot!("ambiguous_wide_requests_80x24", popup);
}

/// Each message is shown with the UTC offset in effect at its own time (as across a
/// daylight-saving change), both its HH:MM and its day separator. The zone is a fake
/// offset function, so the test never touches the process's TZ.
#[test]
fn message_times_use_the_offset_at_each_message() {
    use confab_tui::app::config::Zone;
    let mut s = main_state(80, 24);
    // Before 09:15 UTC the zone is UTC-10 (still 2026-05-02 there); from then on UTC+1.
    let change = DAY * 86_400_000 + 9 * 3_600_000 + 15 * 60_000;
    s.settings.zone = Zone::Rules(std::sync::Arc::new(move |ts| {
        if ts < change { -10 * 3600 } else { 3600 }
    }));
    let text = screen_text(&s);
    let pos = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} missing:\n{text}"))
    };
    // Old messages: the previous day, at UTC-10; newer ones: the next day, at UTC+1.
    assert!(pos("2026-05-02") < pos("23:12 张三"), "{text}");
    assert!(pos("23:13 李四") < pos("2026-05-03"), "{text}");
    assert!(pos("2026-05-03") < pos("10:15 小明"), "{text}");
    assert!(pos("10:18 张三") > pos("10:17 李四"), "{text}");
    assert!(
        !text.contains("09:1"),
        "no message keeps the UTC time:\n{text}"
    );
}

/// In the vim preset `J`/`K` are the next/previous-conversation actions themselves, so they
/// keep working when `next_thread` and `prev_thread` are rebound, and do not follow the keys
/// those actions had before.
#[test]
fn vim_j_and_k_survive_rebinding_next_thread() {
    let mut s = main_state(80, 24);
    s.settings = confab_tui::app::config::Settings::parse(
        "keymap = \"vim\"\n[keys]\nnext_thread = \"alt-n\"\nprev_thread = \"alt-p\"\nswitcher = \"ctrl-n\"\n",
        false,
    );
    assert!(s.settings.problems.is_empty(), "{:?}", s.settings.problems);
    assert_eq!(s.selected, Some(GROUP));
    update(&mut s, key(KeyCode::Esc));
    assert!(s.normal_mode);
    update(&mut s, key(KeyCode::Char('J')));
    assert!(s.popup.is_none(), "J is not Ctrl-N (now the switcher)");
    assert_eq!(s.selected, Some(DM_ZHANG), "J: next conversation");
    update(&mut s, key(KeyCode::Char('J')));
    assert_eq!(s.selected, Some(DM_ALICE));
    update(&mut s, key(KeyCode::Char('K')));
    assert_eq!(s.selected, Some(DM_ZHANG), "K: previous conversation");
    // The rebound key does the same.
    update(&mut s, alt(KeyCode::Char('p')));
    assert_eq!(s.selected, Some(GROUP));
    assert!(s.normal_mode, "still reading");
}

/// The chat pane is as tall as the screen leaves it: with a three-row composer a page up moves
/// the view by that pane's height less two rows of overlap (the old top row is still on
/// screen, just above the "more below" rule), and paging to the top shows the first message.
#[test]
fn paging_with_a_three_row_composer_lands_where_the_screen_says() {
    let mut s = main_state(80, 24);
    update(
        &mut s,
        Msg::History {
            thread_id: GROUP,
            msgs: (7..=60)
                .map(|q| msg(GROUP, q, LI, 18, &format!("第{q}条")))
                .collect(),
        },
    );
    type_text(&mut s, "一");
    update(&mut s, alt(KeyCode::Enter));
    type_text(&mut s, "二");
    update(&mut s, alt(KeyCode::Enter));
    type_text(&mut s, "三");
    let rows = |s: &State| -> Vec<String> { screen_text(s).lines().map(str::to_owned).collect() };
    let screen = rows(&s);
    // Title, 18 chat rows (1..=18), the separator (19), the composer (20..=22), the status.
    assert!(screen[20].contains("> 一"), "{screen:#?}");
    assert!(
        screen[21].contains("二") && screen[22].contains("三"),
        "{screen:#?}"
    );
    assert!(screen[19].contains('─'), "{screen:#?}");
    // The message on a row: `第N条` (the thread list on the left shows only names).
    let label = |row: &str| {
        let from = row.find('第')?;
        let len = row[from..].find('条')? + '条'.len_utf8();
        Some(row[from..from + len].to_owned())
    };
    let top = label(&screen[1]);
    assert_eq!(
        top.as_deref(),
        Some("第43条"),
        "the newest rows fill the pane: {screen:#?}"
    );

    update(&mut s, key(KeyCode::PageUp));
    assert_eq!(s.thread(GROUP).unwrap().scroll, 16, "18 rows less two");
    let screen = rows(&s);
    assert_eq!(
        label(&screen[17]),
        top,
        "the old top row, just above the rule: {screen:#?}"
    );
    assert!(screen[18].contains("more below"), "{screen:#?}");

    // Page to the top: the day and the first message are on screen, not hidden above it.
    for _ in 0..10 {
        update(&mut s, key(KeyCode::PageUp));
    }
    let text = screen_text(&s);
    let screen = rows(&s);
    assert!(screen[1].contains("2026-05-03"), "{screen:#?}");
    assert!(screen[2].contains("早上好"), "{screen:#?}");
    insta::assert_snapshot!("scrolled_top_three_row_composer_80x24", text);
}

/// Ctrl-K with `team-1` among team-12, team-11, team-10 (all newer): Enter opens team-1.
#[test]
fn the_switcher_prefers_the_exact_name_then_names_starting_with_the_query() {
    let mut s = main_state(80, 24);
    let team = |id: u64, name: &str, activity: u64| pb::Thread {
        thread_id: id,
        kind: pb::ThreadKind::Group as i32,
        group: Some(pb::Group {
            group_id: id,
            thread_id: id,
            name: name.into(),
            member_count: 2,
            my_role: pb::Role::Member as i32,
            ..Default::default()
        }),
        activity_id: activity,
        can_send: true,
        ..Default::default()
    };
    update(
        &mut s,
        Msg::Threads(vec![
            (team(112, "team-12", 9_000_004), 0),
            (team(111, "team-11", 9_000_003), 0),
            (team(110, "team-10", 9_000_002), 0),
            (team(101, "team-1", 9_000_001), 0),
            (team(120, "my-team-1x", 9_000_005), 0),
        ]),
    );
    update(&mut s, ctrl('k'));
    type_text(&mut s, "team-1");
    update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.selected, Some(101));
    update(&mut s, ctrl('k'));
    type_text(&mut s, "TEAM-1");
    update(&mut s, key(KeyCode::Down));
    update(&mut s, key(KeyCode::Enter));
    assert_ne!(
        s.selected,
        Some(120),
        "a name starting with the query beats a fuzzy match"
    );
}

/// Vim preset: an Esc while a notice shows clears it and enters normal mode at once, so the
/// next keys are commands, not text in the draft.
#[test]
fn vim_esc_over_a_notice_enters_normal_mode() {
    let mut s = main_state(80, 24);
    s.settings = confab_tui::app::config::Settings::parse("keymap = \"vim\"\n", false);
    type_text(&mut s, "draft");
    s.notice("a notice");
    assert!(s.notice.is_some());
    update(&mut s, key(KeyCode::Esc));
    assert!(s.notice.is_none());
    assert!(s.normal_mode, "the first Esc enters normal mode");
    update(&mut s, key(KeyCode::Char('x')));
    assert_ne!(s.composer.text(), "draftx", "x went into the draft");
}

/// One rule for unread, live and after a sync: another user's text counts; one's own entries
/// and system entries never do.
#[test]
fn own_and_system_entries_are_never_unread_live_or_after_a_listing() {
    let mut s = main_state(80, 24);
    // Not the shown thread (the group is).
    let mut system = msg(DM_ALICE, 3, ALICE, 3, "");
    system.kind = pb::MessageKind::System as i32;
    for m in [
        msg(DM_ALICE, 2, ME, 2, "mine"),
        system.clone(),
        msg(DM_ALICE, 4, ALICE, 4, "theirs"),
    ] {
        update(&mut s, Msg::Core(Event::Message(m)));
    }
    assert_eq!(s.thread(DM_ALICE).unwrap().unread, 1, "live");
    // The listing after a reconnect (or a restart, from the cache) agrees.
    update(
        &mut s,
        Msg::Threads(vec![(dm(DM_ALICE, ALICE, 4, 1, 900), 4)]),
    );
    assert_eq!(s.thread(DM_ALICE).unwrap().unread, 1, "after the listing");
    // Listed before the entries are fetched: counted by seq, then corrected as they arrive.
    update(
        &mut s,
        Msg::Threads(vec![(dm(DM_ALICE, ALICE, 6, 4, 901), 4)]),
    );
    assert_eq!(s.thread(DM_ALICE).unwrap().unread, 2, "two not fetched yet");
    let mut joined = msg(DM_ALICE, 5, ALICE, 5, "");
    joined.kind = pb::MessageKind::System as i32;
    update(&mut s, Msg::Core(Event::Message(joined)));
    update(
        &mut s,
        Msg::Core(Event::Message(msg(DM_ALICE, 6, ME, 6, "me again"))),
    );
    assert_eq!(s.thread(DM_ALICE).unwrap().unread, 0);
}

#[test]
fn a_mention_is_the_whole_name() {
    use confab_tui::app::state::mentions;
    assert!(mentions("@bob 看这里", "bob"));
    assert!(mentions("hi @Bob, look", "bob"));
    assert!(mentions("看 @小明", "小明"));
    assert!(!mentions("@bobby look", "bob"));
    assert!(!mentions("@bob_smith look", "bob"));
}

/// A draft over the server's limit (5,280 bytes against 4,096, as a pasted log was) is
/// refused before sending: no Send, the text stays, the notice and the separator say why.
#[test]
fn an_over_long_draft_is_refused_before_sending_and_kept() {
    let mut s = main_state(80, 24);
    update(
        &mut s,
        Msg::Core(Event::Limits(pb::Limits {
            max_body_bytes: 4096,
            ..Default::default()
        })),
    );
    let long = "日志".repeat(880); // 5,280 bytes
    update(&mut s, Msg::Paste(long.clone()));
    assert!(screen_text(&s).contains("5280/4096 bytes: too long to send"));
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(
        !cmds.iter().any(|c| matches!(c, Cmd::Send { .. })),
        "{cmds:?}"
    );
    assert_eq!(s.composer.text(), long, "the text is kept");
    assert!(screen_text(&s).contains("too long to send: 5280 bytes"));
    // Shortened under the limit, it goes.
    s.composer.set("短");
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(cmds.iter().any(|c| matches!(c, Cmd::Send { .. })));
}

/// 330 messages in another conversation within 3.3 s: one notification at once, then one
/// summary once the interval passed; not 330.
#[test]
fn a_burst_in_another_conversation_notifies_once_then_summarises() {
    use confab_tui::app::notify::NOTIFY_EVERY_MS;
    let mut s = main_state(80, 24);
    let start = s.now_ms;
    let mut notes = Vec::new();
    for i in 0..330u64 {
        s.now_ms = start + i as i64 * 10;
        let m = msg(DM_ZHANG, 3 + i, ZHANG, 19, &format!("第{i}条"));
        notes.extend(update(&mut s, Msg::Core(Event::Message(m))));
        notes.extend(update(&mut s, Msg::Tick));
    }
    let count = |cmds: &[Cmd]| {
        cmds.iter()
            .filter(|c| matches!(c, Cmd::Notify { .. }))
            .count()
    };
    assert_eq!(count(&notes), 1, "during the burst");
    s.now_ms = start + NOTIFY_EVERY_MS;
    let later = update(&mut s, Msg::Tick);
    assert!(
        later.iter().any(
            |c| matches!(c, Cmd::Notify { title, body } if title == "张三" && body == "329 new messages")
        ),
        "{later:?}"
    );
    assert_eq!(count(&update(&mut s, Msg::Tick)), 0, "once");
    // Another conversation has its own interval.
    let other = update(
        &mut s,
        Msg::Core(Event::Message(msg(DM_ALICE, 2, ALICE, 19, "hi"))),
    );
    assert_eq!(count(&other), 1);
}

/// A request to a server that does not answer shows that it waits, with the seconds, until
/// its result (here the timeout's error) comes back.
#[test]
fn a_request_shows_it_is_waiting_until_answered() {
    let mut s = main_state(80, 24);
    type_text(&mut s, "/add someone");
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(
        matches!(&cmds[..], [Cmd::Op(Op::AddFriend(n))] if n == "someone"),
        "{cmds:?}"
    );
    s.notice = None;
    assert!(screen_text(&s).contains("adding someone…"));
    s.now_ms += 3_000;
    update(&mut s, Msg::Tick);
    assert!(screen_text(&s).contains("adding someone… 3s"));
    update(
        &mut s,
        Msg::Done(Done::Error("no answer from the server in time".into())),
    );
    let text = screen_text(&s);
    assert!(!text.contains("adding someone"), "{text}");
    assert!(text.contains("no answer from the server in time"), "{text}");
}

/// Under "terminal too small" typed keys do not go into the (invisible) composer.
#[test]
fn keys_under_terminal_too_small_do_not_type() {
    let mut s = main_state(80, 24);
    update(&mut s, Msg::Resize(30, 8));
    type_text(&mut s, "hidden");
    assert_eq!(s.composer.text(), "");
    update(&mut s, Msg::Resize(80, 24));
    type_text(&mut s, "shown");
    assert_eq!(s.composer.text(), "shown");
}

#[test]
fn reconnect_says_it_is_reconnecting() {
    let mut s = main_state(80, 24);
    type_text(&mut s, "/reconnect");
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(cmds.iter().any(|c| matches!(c, Cmd::ReconnectNow)));
    assert!(screen_text(&s).contains("reconnecting now"));
}

/// The group header follows joins, leaves, kicks and renames as their entries arrive.
#[test]
fn the_group_header_follows_its_system_entries() {
    use pb::group_change::Kind as Change;
    let mut s = main_state(80, 24);
    assert!(screen_text(&s).contains("(3 members)"));
    let change = |seq: u64, kind: Change, name: &str| {
        let mut m = msg(GROUP, seq, LI, 19, "");
        m.kind = pb::MessageKind::System as i32;
        m.group_change = Some(pb::GroupChange {
            kind: kind as i32,
            actor: Some(user(LI, "李四")),
            subject: Some(user(LI, "李四")),
            name: name.into(),
            ..Default::default()
        });
        Msg::Core(Event::Message(m))
    };
    update(&mut s, change(7, Change::Joined, ""));
    assert!(
        screen_text(&s).contains("(4 members)"),
        "{}",
        screen_text(&s)
    );
    update(&mut s, change(8, Change::Kicked, ""));
    update(&mut s, change(9, Change::Left, ""));
    assert!(screen_text(&s).contains("(2 members)"));
    // The same entry again (a resync) changes nothing.
    update(&mut s, change(9, Change::Left, ""));
    assert!(screen_text(&s).contains("(2 members)"));
    update(&mut s, change(10, Change::Updated, "研发二群"));
    assert!(screen_text(&s).contains("研发二群"));
}

/// Removed from a group: the composer says so and by whom, sending is refused, the history
/// stays readable.
#[test]
fn a_member_removed_from_a_group_gets_a_read_only_thread_saying_why() {
    let mut s = main_state(80, 24);
    let mut m = msg(GROUP, 7, LI, 19, "");
    m.kind = pb::MessageKind::System as i32;
    m.group_change = Some(pb::GroupChange {
        kind: pb::group_change::Kind::Kicked as i32,
        actor: Some(user(LI, "李四")),
        subject: Some(user(ME, "小明")),
        ..Default::default()
    });
    update(&mut s, Msg::Core(Event::Message(m)));
    assert!(
        screen_text(&s).contains("read only: 李四 removed you from this group"),
        "{}",
        screen_text(&s)
    );
    type_text(&mut s, "还在吗");
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(!cmds.iter().any(|c| matches!(c, Cmd::Send { .. })));
    assert!(screen_text(&s).contains("you can no longer write here"));
}

/// The list shows mentions beside the unread count, not instead of it.
#[test]
fn the_list_shows_mentions_beside_the_unread_count() {
    let mut s = main_state(80, 24);
    update(&mut s, Msg::Focus(false));
    update(
        &mut s,
        Msg::Core(Event::Message(msg(GROUP, 7, LI, 19, "大家好"))),
    );
    update(
        &mut s,
        Msg::Core(Event::Message(msg(GROUP, 8, LI, 19, "@小明 看一下"))),
    );
    let screen = screen_text(&s);
    assert!(
        screen
            .lines()
            .any(|l| l.contains("研发群") && l.contains("2@1")),
        "{screen}"
    );
}

/// On a new device a thread's messages may come before the server's description of it: the
/// "new" divider waits for the server's read marker instead of starting at the first message.
#[test]
fn the_new_divider_waits_for_the_servers_read_marker() {
    let mut s = main_state(80, 24);
    for seq in 1..=3 {
        update(
            &mut s,
            Msg::Core(Event::Message(msg(
                77,
                seq,
                ZHANG,
                10 + seq as i64,
                &format!("旧消息 {seq}"),
            ))),
        );
    }
    update(&mut s, ctrl('k'));
    type_text(&mut s, "#77");
    update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.selected, Some(77));
    update(
        &mut s,
        Msg::Core(Event::Thread(dm(77, ZHANG, 3, 3, 9_000_000))),
    );
    let screen = screen_text(&s);
    assert!(screen.contains("旧消息 1"), "{screen}");
    assert!(!screen.contains("── new"), "all three were read: {screen}");
}

/// /edit and /recall act on one's last message in the shown thread, within the server's
/// window; `/edit` alone puts the message in the composer to change.
#[test]
fn edit_and_recall_ones_last_message() {
    let mut s = main_state(80, 24);
    update(
        &mut s,
        Msg::Core(Event::Limits(pb::Limits {
            recall_window_ms: 120_000,
            ..Default::default()
        })),
    );
    let mut mine = msg(GROUP, 7, ME, 19, "我的消息 typo");
    mine.message_id = 7007;
    mine.server_ts_ms = s.now_ms - 10_000;
    update(&mut s, Msg::Core(Event::Message(mine)));
    update(
        &mut s,
        Msg::Core(Event::Message(msg(GROUP, 8, LI, 19, "别人的"))),
    );

    type_text(&mut s, "/edit");
    update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.composer.text(), "/edit 我的消息 typo");
    s.composer.set("/edit 我的消息 fixed");
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(
        matches!(&cmds[..], [Cmd::Op(Op::Edit(GROUP, 7007, t))] if t == "我的消息 fixed"),
        "{cmds:?}"
    );
    // The server's reply is shown at once (it pushes the entry only to other devices).
    update(
        &mut s,
        Msg::Done(Done::Changed {
            ack: pb::SendAck {
                thread_id: GROUP,
                seq: 9,
                message_id: 9009,
                ..Default::default()
            },
            kind: pb::MessageKind::Edit,
            target: 7007,
            body: "我的消息 fixed".into(),
        }),
    );
    let screen = screen_text(&s);
    assert!(
        screen.contains("我的消息 fixed") && !screen.contains("typo"),
        "{screen}"
    );
    type_text(&mut s, "/recall");
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(
        matches!(&cmds[..], [Cmd::Op(Op::Recall(GROUP, 7007))]),
        "{cmds:?}"
    );

    // Past the window: refused here, saying how long the window is.
    s.now_ms += 200_000;
    type_text(&mut s, "/recall");
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(cmds.is_empty(), "{cmds:?}");
    assert!(
        screen_text(&s).contains("changed for 2 minutes"),
        "{}",
        screen_text(&s)
    );
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

/// Group changes say what changed: the new role, the new owner, the new name.
#[test]
fn group_change_lines_say_what_changed() {
    use pb::group_change::Kind as Change;
    let mut s = main_state(100, 30);
    let entry = |seq: u64, kind: Change, role: pb::Role, name: &str| {
        let mut m = msg(GROUP, seq, ME, 19, "");
        m.kind = pb::MessageKind::System as i32;
        m.group_change = Some(pb::GroupChange {
            kind: kind as i32,
            actor: Some(user(ME, "小明")),
            subject: Some(user(LI, "王小明")),
            role: role as i32,
            name: name.into(),
            ..Default::default()
        });
        Msg::Core(Event::Message(m))
    };
    update(&mut s, entry(7, Change::RoleChanged, pb::Role::Admin, ""));
    update(&mut s, entry(8, Change::RoleChanged, pb::Role::Member, ""));
    update(
        &mut s,
        entry(9, Change::OwnerTransferred, pb::Role::Owner, ""),
    );
    update(
        &mut s,
        entry(10, Change::Updated, pb::Role::Unspecified, "新名字"),
    );
    let screen = screen_text(&s);
    for line in [
        "小明 made 王小明 an admin",
        "小明 made 王小明 a member (no longer admin)",
        "小明 made 王小明 the owner",
        "updated the group (now named 新名字)",
    ] {
        assert!(screen.contains(line), "{line}: {screen}");
    }
}
