//! Messages: unread counts, order, marks, the `new` divider, times, offline writes.

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
