//! One's own messages: sends that fail (kept, deleted, retried when that can help), editing,
//! recalling, and picking a message to act on.

use super::*;

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
                reply_to: 0,
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
    assert_eq!(
        t.pending[0].state,
        SendState::Failed {
            reason: "not a member".into(),
            retry: true
        }
    );
    let screen = screen_text(&s);
    assert!(
        screen.contains("(not sent: not a member; Alt-R retries, Alt-X"),
        "{screen}"
    );
    // Alt-R sends it again as a new message; the failed copy is forgotten.
    let cmds = update(&mut s, alt(KeyCode::Char('r')));
    let key2 = match &cmds[..] {
        [Cmd::Discard { local_id: 7 }, Cmd::Send { body, key, .. }] if body == "hello 世界" => {
            *key
        }
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

    // `/edit` alone and Up on an empty composer both put the text there to change.
    type_text(&mut s, "/edit");
    update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.composer.text(), "我的消息 typo");
    assert!(screen_text(&s).contains("editing your message: Enter saves, Esc cancels"));
    update(&mut s, key(KeyCode::Esc));
    assert!(s.composer.is_empty() && s.editing.is_none());
    update(&mut s, key(KeyCode::Up));
    assert_eq!(s.composer.text(), "我的消息 typo");
    // Unchanged, Enter sends nothing.
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(cmds.is_empty(), "{cmds:?}");
    update(&mut s, key(KeyCode::Up));
    for _ in 0..4 {
        update(&mut s, key(KeyCode::Backspace));
    }
    type_text(&mut s, "fixed");
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(
        matches!(&cmds[..], [Cmd::Op(Op::Edit(GROUP, 7007, t))] if t == "我的消息 fixed"),
        "{cmds:?}"
    );
    assert!(s.composer.is_empty() && s.editing.is_none());
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

    // Past the window: refused here, saying how long the window is; Up falls back to the
    // sent history.
    s.now_ms += 200_000;
    update(&mut s, key(KeyCode::Up));
    assert!(s.editing.is_none());
    assert_eq!(s.composer.text(), "/recall", "the last line sent");
    update(&mut s, ctrl('c'));
    type_text(&mut s, "/recall");
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(cmds.is_empty(), "{cmds:?}");
    assert!(
        screen_text(&s).contains("changed for 2 minutes"),
        "{}",
        screen_text(&s)
    );
}

/// A message the server refuses for good stays where it was written: a friend's reply that
/// arrives after it shows below it and is read there (the receipt is for what is on screen).
/// A body the server can never take is not sent again by Alt-R; Alt-X deletes it, and the
/// cache forgets it (`Cmd::Discard`). The reason wraps instead of being cut at 80 columns.
#[test]
fn a_failed_message_keeps_its_place_and_is_deleted_not_retried_forever() {
    let mut s = main_state(80, 24);
    type_text(&mut s, "部署日志 part 1");
    let cmds = update(&mut s, key(KeyCode::Enter));
    let [Cmd::Send { key: k, .. }] = &cmds[..] else {
        panic!("{cmds:?}")
    };
    let k = *k;
    update(
        &mut s,
        Msg::Queued {
            thread_id: GROUP,
            key: k,
            result: Ok(41),
        },
    );
    update(
        &mut s,
        Msg::Core(Event::SendFailed {
            local_id: 41,
            error: pb::Error {
                code: pb::ErrorCode::TooLarge as i32,
                message: "the body exceeds 4096 bytes".into(),
                ..Default::default()
            },
        }),
    );
    s.now_ms = NOW + 60_000;
    let cmds = update(
        &mut s,
        Msg::Core(Event::Message(msg(
            GROUP,
            7,
            LI,
            21,
            "日志太长了，贴链接吧",
        ))),
    );
    assert!(
        cmds.iter().any(|c| matches!(
            c,
            Cmd::MarkRead {
                thread_id: GROUP,
                seq: 7
            }
        )),
        "{cmds:?}"
    );
    let screen = screen_text(&s);
    let failed_at = screen.find("部署日志 part 1").expect(&screen);
    let reply_at = screen.find("日志太长了").expect(&screen);
    assert!(failed_at < reply_at, "the reply shows below:\n{screen}");
    assert!(
        screen.contains("(not sent: the body exceeds 4096 bytes; Alt-X\n")
            && screen.contains(" deletes)\n"),
        "the whole reason, wrapped:\n{screen}"
    );
    assert!(!screen.contains("Alt-R retries"), "{screen}");
    // Alt-R cannot help: nothing is sent, and the notice says what can.
    let cmds = update(&mut s, alt(KeyCode::Char('r')));
    assert!(cmds.is_empty(), "{cmds:?}");
    let notice = s.notice.clone().unwrap().0;
    assert!(
        notice.contains("cannot help") && notice.contains("Alt-X"),
        "{notice}"
    );
    let cmds = update(&mut s, alt(KeyCode::Char('x')));
    assert!(
        matches!(&cmds[..], [Cmd::Discard { local_id: 41 }]),
        "{cmds:?}"
    );
    assert!(s.thread(GROUP).unwrap().pending.is_empty());
    let screen = screen_text(&s);
    assert!(
        !screen.contains("小明     部署日志") && !screen.contains("not sent"),
        "{screen}"
    );
    assert!(s.notice.clone().unwrap().0.contains("deleted the unsent"));
    let cmds = update(&mut s, alt(KeyCode::Char('x')));
    assert!(cmds.is_empty());
    assert!(s.notice.clone().unwrap().0.contains("no failed message"));
}

/// The failed messages the cache kept show at the next start, where they were written, and
/// `/delete` removes one.
#[test]
fn failed_messages_survive_a_restart_and_delete_by_command() {
    use confab_tui::client::FailedItem;
    let mut s = main_state(80, 24);
    update(
        &mut s,
        Msg::Outbox {
            queued: Vec::new(),
            failed: vec![FailedItem {
                local_id: 9,
                thread_id: GROUP,
                body: "写于 09:13 的草稿".into(),
                created_ms: DAY * 86_400_000 + 9 * 3_600_000 + 13 * 60_000 + 30_000,
                code: pb::ErrorCode::Forbidden as i32,
                reason: "not a member".into(),
            }],
        },
    );
    let screen = screen_text(&s);
    let lines: Vec<&str> = screen.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains("写于 09:13"))
        .expect(&screen);
    let next = lines
        .iter()
        .position(|l| l.contains("09:15"))
        .expect(&screen);
    assert!(
        lines[at - 1].contains("09:13") && next > at,
        "between the 09:13 and 09:15 messages:\n{screen}"
    );
    assert!(screen.contains("Alt-R retries"), "{screen}");
    type_text(&mut s, "/delete");
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(
        matches!(&cmds[..], [Cmd::Discard { local_id: 9 }]),
        "{cmds:?}"
    );
    let screen = screen_text(&s);
    assert!(
        !screen.contains("小明     写于") && !screen.contains("not sent"),
        "{screen}"
    );
}

/// Alt-Up picks the newest message and steps to older ones (Up/Down too); the picked one is
/// drawn reversed. `y` copies its text (OSC 52), `e` and `r` work on one's own only, `d` deletes
/// a failed one; Down past the newest puts the cursor away.
#[test]
fn a_picked_message_can_be_copied_edited_recalled_or_deleted() {
    let mut s = main_state(80, 24);
    update(
        &mut s,
        Msg::Core(Event::Limits(pb::Limits {
            recall_window_ms: 120_000,
            ..Default::default()
        })),
    );
    let mut mine = msg(GROUP, 7, ME, 19, "我写的");
    mine.message_id = 7007;
    mine.server_ts_ms = s.now_ms - 5_000;
    update(&mut s, Msg::Core(Event::Message(mine)));
    update(
        &mut s,
        Msg::Core(Event::Message(msg(GROUP, 8, LI, 19, "李四写的"))),
    );
    update(&mut s, alt(KeyCode::Up));
    let reversed = |s: &State, needle: &str| -> bool {
        let y = screen_text(s)
            .lines()
            .position(|l| l.contains(needle))
            .unwrap() as u16;
        let t = render(s);
        let buf = t.backend().buffer();
        (19..80u16).any(|x| {
            buf[(x, y)]
                .modifier
                .contains(ratatui::style::Modifier::REVERSED)
        })
    };
    assert!(reversed(&s, "李四写的"), "the newest is picked");
    assert!(!reversed(&s, "我写的"));
    assert!(update(&mut s, key(KeyCode::Char('e'))).is_empty());
    assert!(s.notice.clone().unwrap().0.contains("only your own"));
    update(&mut s, key(KeyCode::Up));
    let cmds = update(&mut s, key(KeyCode::Char('y')));
    assert!(
        matches!(&cmds[..], [Cmd::Copy(t)] if t == "我写的"),
        "{cmds:?}"
    );
    // `r` asks first: a word typed while a message is picked recalls nothing.
    assert!(update(&mut s, key(KeyCode::Char('r'))).is_empty());
    assert!(screen_text(&s).contains("press r again to recall it"));
    let cmds = update(&mut s, key(KeyCode::Char('r')));
    assert!(
        matches!(&cmds[..], [Cmd::Op(Op::Recall(GROUP, 7007))]),
        "{cmds:?}"
    );
    assert!(s.pick.is_none(), "done with it");
    update(&mut s, alt(KeyCode::Up));
    update(&mut s, alt(KeyCode::Up));
    update(&mut s, key(KeyCode::Char('e')));
    assert_eq!(s.composer.text(), "我写的");
    assert!(s.editing.is_some());
    update(&mut s, key(KeyCode::Esc));
    // A failed send, picked and deleted.
    type_text(&mut s, "发不出去");
    let cmds = update(&mut s, key(KeyCode::Enter));
    let [Cmd::Send { key: k, .. }] = &cmds[..] else {
        panic!("{cmds:?}")
    };
    let k = *k;
    update(
        &mut s,
        Msg::Queued {
            thread_id: GROUP,
            key: k,
            result: Ok(55),
        },
    );
    update(
        &mut s,
        Msg::Core(Event::SendFailed {
            local_id: 55,
            error: pb::Error {
                code: pb::ErrorCode::Forbidden as i32,
                message: "not a member".into(),
                ..Default::default()
            },
        }),
    );
    update(&mut s, alt(KeyCode::Up));
    let cmds = update(&mut s, key(KeyCode::Char('d')));
    assert!(
        matches!(&cmds[..], [Cmd::Discard { local_id: 55 }]),
        "{cmds:?}"
    );
    assert!(s.thread(GROUP).unwrap().pending.is_empty());
    // Down past the newest: no cursor, following new messages.
    update(&mut s, alt(KeyCode::Up));
    update(&mut s, key(KeyCode::Down));
    assert!(s.pick.is_none());
    assert_eq!(s.thread(GROUP).unwrap().scroll, 0);
}
