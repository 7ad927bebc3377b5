//! Replies and reactions (protocol 1.7) in the terminal client: `a` on a picked message makes
//! the draft a reply, shown with a quote; `+` then a number reacts, the same again takes it
//! back; reaction entries change the counts under their message and show nothing of their own.

use super::*;

fn reaction(seq: u64, from: u64, target: &pb::ChatMessage, emoji: &str, added: bool) -> Msg {
    let mut m = msg(GROUP, seq, from, 19, emoji);
    m.kind = if added {
        pb::MessageKind::ReactionAdded
    } else {
        pb::MessageKind::ReactionRemoved
    } as i32;
    m.target_message_id = target.message_id;
    Msg::Core(Event::Message(m))
}

#[test]
fn a_reply_goes_with_the_picked_message_and_shows_its_quote() {
    let mut s = main_state(80, 24);
    let asked = msg(GROUP, 7, LI, 19, "明天下午三点开会议，大家都能来吗？");
    update(&mut s, Msg::Core(Event::Message(asked.clone())));
    // Pick it (the newest), `a`: the separator says whom the draft answers.
    update(&mut s, alt(KeyCode::Up));
    update(&mut s, key(KeyCode::Char('a')));
    assert!(s.pick.is_none());
    let screen = screen_text(&s);
    assert!(
        screen.contains("replying to 李四: 明天下午三点开会议"),
        "{screen}"
    );
    type_text(&mut s, "我可以");
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(
        cmds.iter().any(|c| matches!(c,
            Cmd::Send { body, reply_to, .. } if body == "我可以" && *reply_to == asked.message_id)),
        "{cmds:?}"
    );
    // Sent once: the next message is no reply.
    assert!(s.replying.is_none());
    let screen = screen_text(&s);
    assert!(
        screen.contains("↪ 李四: 明天下午三点开会议"),
        "the pending reply quotes it: {screen}"
    );
    // The stored reply, as the server pushes it, shows the quote above its text.
    let mut stored = msg(GROUP, 8, ME, 20, "我可以");
    stored.reply_to = asked.message_id;
    stored.quote = Some(pb::Quote {
        message_id: asked.message_id,
        seq: 7,
        sender: Some(user(LI, "李四")),
        excerpt: asked.body.clone(),
        ..Default::default()
    });
    update(&mut s, Msg::Core(Event::Message(stored)));
    // A recall of the quoted message reaches the quote.
    let mut recall = msg(GROUP, 9, LI, 20, "");
    recall.kind = pb::MessageKind::Recall as i32;
    recall.target_message_id = asked.message_id;
    update(&mut s, Msg::Core(Event::Message(recall)));
    let screen = screen_text(&s);
    assert!(screen.contains("↪ 李四: (message recalled)"), "{screen}");
    // Esc lets a reply go, the draft stays.
    let again = msg(GROUP, 10, ZHANG, 21, "还有吗");
    update(&mut s, Msg::Core(Event::Message(again)));
    update(&mut s, alt(KeyCode::Up));
    update(&mut s, key(KeyCode::Char('a')));
    type_text(&mut s, "没有了");
    update(&mut s, key(KeyCode::Esc));
    assert!(s.replying.is_none());
    assert_eq!(s.composer.text(), "没有了");
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(
        cmds.iter()
            .any(|c| matches!(c, Cmd::Send { reply_to: 0, .. })),
        "{cmds:?}"
    );
}

#[test]
fn reactions_count_under_their_message_and_the_same_again_takes_it_back() {
    let mut s = main_state(80, 24);
    let m = msg(GROUP, 7, LI, 19, "上线了");
    update(&mut s, Msg::Core(Event::Message(m.clone())));
    update(&mut s, reaction(8, ZHANG, &m, "👍", true));
    update(&mut s, reaction(9, LI, &m, "👍", true));
    update(&mut s, reaction(10, ZHANG, &m, "🎉", true));
    // The same entry twice (a push, then a sync): counted once.
    update(&mut s, reaction(10, ZHANG, &m, "🎉", true));
    let screen = screen_text(&s);
    assert!(screen.contains("👍 2  🎉 1"), "{screen}");
    assert_eq!(
        screen.matches('🎉').count(),
        1,
        "no row of its own for a reaction entry: {screen}"
    );
    // Reaction entries are not unread and do not notify.
    assert_eq!(s.thread(GROUP).unwrap().unread, 0);
    // `+` then 1: 👍, mine.
    update(&mut s, alt(KeyCode::Up));
    update(&mut s, key(KeyCode::Char('+')));
    assert!(screen_text(&s).contains("react: 1 👍"));
    let cmds = update(&mut s, key(KeyCode::Char('1')));
    assert!(
        cmds.iter()
            .any(|c| matches!(c, Cmd::Op(Op::React { emoji, remove: false, .. }) if emoji == "👍")),
        "{cmds:?}"
    );
    // Pressed again before the server answers: nothing more is sent (it would be decided on
    // the old state).
    type_text(&mut s, "/react 👍");
    let again = update(&mut s, key(KeyCode::Enter));
    assert!(
        !again.iter().any(|c| matches!(c, Cmd::Op(Op::React { .. }))),
        "{again:?}"
    );
    // The answer: my reaction is entry 11.
    update(
        &mut s,
        Msg::Done(Done::Changed {
            ack: pb::SendAck {
                thread_id: GROUP,
                seq: 11,
                message_id: 9_999_011,
                server_ts_ms: NOW,
                ..Default::default()
            },
            kind: pb::MessageKind::ReactionAdded,
            target: m.message_id,
            body: "👍".into(),
        }),
    );
    // Its push (or a sync) brings it again: counted once.
    update(&mut s, reaction(11, ME, &m, "👍", true));
    assert!(screen_text(&s).contains("👍 3  🎉 1"));
    // The same again takes it back (`/react` with nothing picked: the newest message).
    type_text(&mut s, "/react 👍");
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(
        cmds.iter()
            .any(|c| matches!(c, Cmd::Op(Op::React { remove: true, .. }))),
        "{cmds:?}"
    );
    update(&mut s, reaction(12, ME, &m, "👍", false));
    update(&mut s, reaction(13, ZHANG, &m, "🎉", false));
    let screen = screen_text(&s);
    assert!(
        screen.contains("👍 2") && !screen.contains("🎉"),
        "{screen}"
    );
    // A snapshot from the server (a page fetched again) that is older than what was applied
    // changes nothing; a newer one replaces the counts.
    let mut older = m.clone();
    older.reactions = vec![pb::Reaction {
        emoji: "👍".into(),
        count: 9,
        mine: false,
    }];
    older.reactions_seq = 10;
    update(
        &mut s,
        Msg::History {
            thread_id: GROUP,
            msgs: vec![older.clone()],
        },
    );
    assert!(screen_text(&s).contains("👍 2"));
    older.reactions_seq = 20;
    update(
        &mut s,
        Msg::History {
            thread_id: GROUP,
            msgs: vec![older],
        },
    );
    assert!(screen_text(&s).contains("👍 9"));
}

#[test]
fn a_long_run_of_reactions_leaves_the_messages_on_screen() {
    let mut s = main_state(80, 24);
    for seq in 7..12 {
        update(
            &mut s,
            Msg::Core(Event::Message(msg(
                GROUP,
                seq,
                LI,
                19,
                &format!("第{seq}号"),
            ))),
        );
    }
    let target = msg(GROUP, 11, LI, 19, "第11号");
    // Forty reaction changes in a row show nothing of their own: the window of rows laid out
    // must still reach back to the messages.
    for seq in 12..52 {
        let emoji = char::from_u32(0x1F600 + u32::try_from(seq % 20).unwrap()).unwrap();
        update(
            &mut s,
            reaction(seq, ZHANG, &target, &emoji.to_string(), seq < 32),
        );
    }
    let screen = screen_text(&s);
    assert!(!screen.contains("No messages yet"), "{screen}");
    for seq in 7..12 {
        assert!(screen.contains(&format!("第{seq}号")), "{seq}: {screen}");
    }
}

#[test]
fn my_edited_message_says_so_also_once_the_peer_read_it() {
    let mut s = main_state(80, 24);
    s.selected = Some(DM_ZHANG);
    let mine = msg(DM_ZHANG, 3, ME, 19, "原来的");
    update(&mut s, Msg::Core(Event::Message(mine.clone())));
    update(
        &mut s,
        Msg::Done(Done::Changed {
            ack: pb::SendAck {
                thread_id: DM_ZHANG,
                seq: 4,
                message_id: 9_999_004,
                server_ts_ms: NOW,
                ..Default::default()
            },
            kind: pb::MessageKind::Edit,
            target: mine.message_id,
            body: "改过的".into(),
        }),
    );
    update(
        &mut s,
        Msg::Core(Event::ReadReceipt(pb::ReadReceiptPush {
            thread_id: DM_ZHANG,
            user: Some(user(ZHANG, "张三")),
            read_seq: 4,
        })),
    );
    let screen = screen_text(&s);
    assert!(screen.contains("改过的 (edited) ✓ read"), "{screen}");
}
