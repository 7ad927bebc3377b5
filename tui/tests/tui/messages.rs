//! Messages: unread counts, order, marks, failed sends, notifications, edit and recall.

use super::*;

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
    use confab_tui::app::highlight::mentions;
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
    assert!(screen_text(&s).contains("too long: 5280 of 4096 bytes"));
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

/// `/notify mentions` in a busy group: only mentions and highlight words notify (and count
/// as `@`); `/notify none` mutes it, even for a mention, and its unread leaves the terminal
/// title's count. Each change goes to the config (`Cmd::SaveLevel`) and shows in the header.
#[test]
fn notification_levels_per_conversation_with_highlight_words() {
    let mut s = main_state(80, 24);
    s.settings.highlight = vec!["部署".into()];
    type_text(&mut s, "/notify mentions");
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(
        matches!(&cmds[..], [Cmd::SaveLevel { name, level: Level::Mentions }] if name == "研发群"),
        "{cmds:?}"
    );
    assert!(
        screen_text(&s)
            .lines()
            .next()
            .unwrap()
            .contains("[mentions only]")
    );
    update(&mut s, Msg::Focus(false));
    let notifies = |cmds: &[Cmd]| {
        cmds.iter()
            .filter(|c| matches!(c, Cmd::Notify { .. }))
            .count()
    };
    let cmds = update(
        &mut s,
        Msg::Core(Event::Message(msg(GROUP, 7, LI, 19, "午饭吃什么"))),
    );
    assert_eq!(notifies(&cmds), 0, "plain chatter does not notify");
    s.now_ms += 10_000;
    let cmds = update(
        &mut s,
        Msg::Core(Event::Message(msg(GROUP, 8, LI, 19, "今天部署吗"))),
    );
    assert_eq!(notifies(&cmds), 1, "a highlight word does");
    s.now_ms += 10_000;
    let cmds = update(
        &mut s,
        Msg::Core(Event::Message(msg(GROUP, 9, LI, 19, "@小明 看这里"))),
    );
    assert_eq!(notifies(&cmds), 1, "a mention does");
    let t = s.thread(GROUP).unwrap();
    assert_eq!((t.unread, t.mentions), (3, 2));
    assert_eq!(s.total_unread(), 5);

    type_text(&mut s, "/notify none");
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(
        matches!(
            &cmds[..],
            [Cmd::SaveLevel {
                level: Level::None,
                ..
            }]
        ),
        "{cmds:?}"
    );
    s.now_ms += 10_000;
    let cmds = update(
        &mut s,
        Msg::Core(Event::Message(msg(GROUP, 10, LI, 19, "@小明 急"))),
    );
    assert_eq!(notifies(&cmds), 0, "muted: not even a mention");
    assert_eq!(
        s.total_unread(),
        2,
        "the muted group's unread leaves the title"
    );
    assert!(screen_text(&s).lines().next().unwrap().contains("[muted]"));
    // Back to all: the entry leaves the config.
    type_text(&mut s, "/notify all");
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(matches!(
        &cmds[..],
        [Cmd::SaveLevel {
            level: Level::All,
            ..
        }]
    ));
    assert!(!screen_text(&s).lines().next().unwrap().contains('['));
    type_text(&mut s, "/notify loud");
    update(&mut s, key(KeyCode::Enter));
    assert!(s.notice.clone().unwrap().0.contains("usage: /notify"));
}

/// Levels written in the config apply from the start, by conversation name.
#[test]
fn a_level_from_the_config_applies_at_start() {
    let mut s = main_state(80, 24);
    s.settings = Settings::parse("[notify_levels]\n\"张三\" = \"none\"\n", false);
    let cmds = update(
        &mut s,
        Msg::Core(Event::Message(msg(DM_ZHANG, 3, ZHANG, 19, "在吗"))),
    );
    assert!(
        !cmds.iter().any(|c| matches!(c, Cmd::Notify { .. })),
        "{cmds:?}"
    );
    assert_eq!(
        s.thread(DM_ZHANG).unwrap().unread,
        3,
        "still counted in the list"
    );
}

/// `@me` and highlight words are drawn bold yellow in others' messages, never in one's own;
/// `@小明明` is not a mention of 小明.
#[test]
fn mentions_and_highlight_words_are_highlighted_in_the_chat() {
    let mut s = main_state(80, 24);
    s.settings.highlight = vec!["deploy".into()];
    update(
        &mut s,
        Msg::Core(Event::Message(msg(GROUP, 7, LI, 19, "@小明 deploy now"))),
    );
    update(
        &mut s,
        Msg::Core(Event::Message(msg(GROUP, 8, ZHANG, 19, "@小明明 redeploy"))),
    );
    update(
        &mut s,
        Msg::Core(Event::Message(msg(GROUP, 9, ME, 19, "deploy @小明"))),
    );
    let t = render(&s);
    let buf = t.backend().buffer();
    let styled = |y: u16, needle: &str| -> Vec<bool> {
        let row: String = (0..80).map(|x| buf[(x, y)].symbol().to_owned()).collect();
        assert!(row.contains(needle), "{row}");
        // The chat pane only (the list's `+ requests` row is yellow too).
        (19..80)
            .filter(|x| !buf[(*x, y)].symbol().trim().is_empty())
            .map(|x| {
                let c = &buf[(x, y)];
                c.fg == ratatui::style::Color::Yellow
                    && c.modifier.contains(ratatui::style::Modifier::BOLD)
            })
            .collect()
    };
    let row_of = |needle: &str| -> u16 {
        (0..24)
            .find(|y| {
                (0..80)
                    .map(|x| buf[(x, *y)].symbol().to_owned())
                    .collect::<String>()
                    .contains(needle)
            })
            .unwrap()
    };
    let hl = |y| styled(y, "").into_iter().filter(|b| *b).count();
    // "@小明" (1 + 2 + 2 cells drawn as 3 symbols) and "deploy" (6).
    assert_eq!(hl(row_of("deploy now")), 3 + 6);
    assert_eq!(hl(row_of("redeploy")), 0);
    assert_eq!(hl(row_of("deploy @")), 0, "one's own message");
}

/// A server that accepts but never answers: a connect attempt that takes more than two
/// seconds says so under the title, counting; an open connection whose server went silent says
/// how long and when the client gives up, until it answers. The title keeps the conversation.
#[test]
fn a_slow_connect_and_a_silent_server_show_in_the_banner() {
    let mut s = main_state(80, 24);
    update(
        &mut s,
        Msg::Core(Event::State(ConnState::Connecting { attempt: 1 })),
    );
    let row = |s: &State, y: usize| screen_text(s).lines().nth(y).unwrap().to_owned();
    assert!(!row(&s, 1).contains("connecting"), "quiet at first");
    s.now_ms += 5_200;
    update(&mut s, Msg::Tick);
    assert!(
        row(&s, 1).contains("connecting to chat.example:7000… 5s (no answer yet)"),
        "{}",
        screen_text(&s)
    );
    assert!(row(&s, 0).contains("#研发群"));
    assert!(s.next_wakeup().is_some(), "the count goes on by itself");

    update(
        &mut s,
        Msg::Core(Event::State(ConnState::Online { synced: true })),
    );
    assert!(!screen_text(&s).contains("connecting to"));
    update(
        &mut s,
        Msg::Core(Event::Silent {
            silent: Duration::from_secs(13),
            drop_in: Duration::from_secs(17),
        }),
    );
    assert!(
        row(&s, 1).contains("the server is not answering (13s); reconnecting in 17s"),
        "{}",
        screen_text(&s)
    );
    s.now_ms += 2_000;
    update(&mut s, Msg::Tick);
    assert!(
        row(&s, 1).contains("(15s); reconnecting in 15s"),
        "{}",
        row(&s, 1)
    );
    update(&mut s, Msg::Core(Event::Answering));
    assert!(!screen_text(&s).contains("not answering"));
}

/// A message written offline at 09:00 and stored at 09:19 shows both times: 09:19 in the
/// gutter (the conversation's order) and "(written 09:00)" after it. One sent at once does not.
#[test]
fn a_message_written_offline_shows_when_it_was_written() {
    let mut s = main_state(80, 24);
    let written = DAY * 86_400_000 + 9 * 3_600_000;
    let id = |ms: i64| format!("{:011x}{:013x}", ms, 7);
    let mut late = msg(GROUP, 7, ME, 19, "火车上写的");
    late.client_msg_id = id(written);
    let mut prompt = msg(GROUP, 8, ME, 19, "刚写的");
    prompt.client_msg_id = id(late.server_ts_ms - 2_000);
    update(&mut s, Msg::Core(Event::Message(late)));
    update(&mut s, Msg::Core(Event::Message(prompt)));
    let screen = screen_text(&s);
    let row = screen.lines().find(|l| l.contains("火车上写的")).unwrap();
    assert!(
        row.contains("09:19") && row.contains("(written 09:00)"),
        "{screen}"
    );
    let row = screen.lines().find(|l| l.contains("刚写的")).unwrap();
    assert!(!row.contains("written"), "{screen}");
}

/// With `log_dir` set every new entry goes to its conversation's log, once, as a plain-text
/// line; without it nothing is logged. `/export` asks for the shown conversation.
#[test]
fn entries_go_to_the_log_once_and_export_asks_for_the_conversation() {
    let mut s = main_state(80, 24);
    let logs = |cmds: &[Cmd]| -> Vec<(String, String)> {
        cmds.iter()
            .filter_map(|c| match c {
                Cmd::Log { file, line } => Some((file.clone(), line.clone())),
                _ => None,
            })
            .collect()
    };
    let cmds = update(
        &mut s,
        Msg::Core(Event::Message(msg(GROUP, 7, LI, 19, "不记录"))),
    );
    assert!(logs(&cmds).is_empty(), "off without log_dir");
    s.settings = Settings::parse("log_dir = \"/tmp/confab-logs\"\n", false);
    let cmds = update(
        &mut s,
        Msg::Core(Event::Message(msg(GROUP, 8, LI, 19, "记下来"))),
    );
    assert_eq!(
        logs(&cmds),
        vec![(
            "#研发群.log".to_owned(),
            "2026-05-03 09:19:00\t李四\t记下来".to_owned()
        )]
    );
    let cmds = update(
        &mut s,
        Msg::Core(Event::Message(msg(GROUP, 8, LI, 19, "记下来"))),
    );
    assert!(logs(&cmds).is_empty(), "a duplicate is not logged again");
    let cmds = update(
        &mut s,
        Msg::Core(Event::Message(msg(DM_ZHANG, 3, ZHANG, 19, "私聊"))),
    );
    assert_eq!(logs(&cmds)[0].0, "张三.log");
    type_text(&mut s, "/export /tmp/x.txt");
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(
        matches!(&cmds[..], [Cmd::Export { thread_id: GROUP, file, path: Some(p) }] if file == "#研发群.log" && p == "/tmp/x.txt"),
        "{cmds:?}"
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

/// After a restart a group whose only entries are "created" and "joined" (the server counts 2
/// unread) shows no unread once its page comes from the cache, which the listing asks for.
#[test]
fn unread_after_a_restart_counts_only_others_text() {
    let mut s = main_state(80, 24);
    let mut t = group_thread(2, 0, 900);
    t.thread_id = 77;
    if let Some(g) = t.group.as_mut() {
        g.thread_id = 77;
        g.group_id = 7;
        g.name = "新群".into();
    }
    let cmds = update(&mut s, Msg::Threads(vec![(t, 2)]));
    assert!(
        cmds.iter().any(|c| matches!(
            c,
            Cmd::History {
                thread_id: 77,
                before_seq: 0
            }
        )),
        "{cmds:?}"
    );
    let change = |seq, kind: pb::group_change::Kind| {
        let mut m = msg(77, seq, ZHANG, 19, "");
        m.kind = pb::MessageKind::System as i32;
        m.group_change = Some(pb::GroupChange {
            kind: kind as i32,
            actor: Some(user(ZHANG, "张三")),
            subject: Some(user(ZHANG, "张三")),
            ..Default::default()
        });
        m
    };
    update(
        &mut s,
        Msg::History {
            thread_id: 77,
            msgs: vec![
                change(1, pb::group_change::Kind::Created),
                change(2, pb::group_change::Kind::Joined),
            ],
        },
    );
    assert_eq!(s.thread(77).unwrap().unread, 0);
    assert!(
        !screen_text(&s)
            .lines()
            .any(|l| l.contains("新群") && l.contains('2'))
    );
}
