//! Keys and input: the composer, the caret under CJK input, paging, search through sent
//! messages, the vim preset, the switcher.

use super::*;

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
    assert!(matches!(&run(&mut s, "/add 王五")[..], [Cmd::Op(Op::AddFriend(n, _))] if n == "王五"));
    assert!(matches!(
        &run(&mut s, "/accept 王五")[..],
        [Cmd::Op(Op::Respond {
            request_id: 77,
            accept: true
        })]
    ));
    assert!(s.requests.is_empty());
    assert!(
        matches!(&run(&mut s, "/group create 研发")[..], [Cmd::Op(Op::CreateGroup(n, true))] if n == "研发")
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
    // The DM has unread messages: its newest page was asked for with the listing (to count
    // them), so opening it needs no second request.
    update(&mut s, ctrl('n'));
    assert_eq!(s.selected, Some(DM_ZHANG));
    assert!(s.thread(DM_ZHANG).unwrap().loading);
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

    // Page to the top: "start of conversation", the day and the first message are on
    // screen, not hidden above it.
    for _ in 0..10 {
        update(&mut s, key(KeyCode::PageUp));
    }
    let text = screen_text(&s);
    let screen = rows(&s);
    assert!(screen[1].contains("start of conversation"), "{screen:#?}");
    assert!(screen[2].contains("2026-05-03"), "{screen:#?}");
    assert!(screen[3].contains("早上好"), "{screen:#?}");
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

/// A request to a server that does not answer shows that it waits, with the seconds, until
/// its result (here the timeout's error) comes back.
#[test]
fn a_request_shows_it_is_waiting_until_answered() {
    let mut s = main_state(80, 24);
    type_text(&mut s, "/add someone");
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(
        matches!(&cmds[..], [Cmd::Op(Op::AddFriend(n, _))] if n == "someone"),
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

/// `@` in a group completes the group's members (who spoke last first, never me), not
/// conversation names; Tab again cycles to the next, Shift-Tab back, and typing accepts.
/// A member who joins is offered at once; one who left is not.
#[test]
fn at_completes_the_groups_members_and_tab_cycles() {
    let mut s = main_state(80, 24);
    // Selecting the group asked for its members (main_state selected it at the listing).
    let mut s2 = main_state(80, 24);
    update(&mut s2, ctrl('n'));
    let cmds = update(&mut s2, ctrl('p'));
    assert!(
        cmds.iter().any(|c| matches!(c, Cmd::Op(Op::Members(5)))),
        "{cmds:?}"
    );
    update(&mut s, Msg::Done(Done::Members(5, members())));
    type_text(&mut s, "hi @");
    update(&mut s, key(KeyCode::Tab));
    // 张三 spoke last (09:18), then 李四; Alice is not a member of the group.
    assert_eq!(s.composer.text(), "hi @张三 ");
    assert!(s.notice.clone().unwrap().0.contains("[@张三] @李四"));
    update(&mut s, key(KeyCode::Tab));
    assert_eq!(s.composer.text(), "hi @李四 ");
    update(&mut s, key(KeyCode::Tab));
    assert_eq!(s.composer.text(), "hi @张三 ", "round again");
    update(
        &mut s,
        Msg::Key(crossterm::event::KeyEvent::new(
            KeyCode::BackTab,
            crossterm::event::KeyModifiers::SHIFT,
        )),
    );
    assert_eq!(s.composer.text(), "hi @李四 ");
    type_text(&mut s, "看");
    assert_eq!(s.composer.text(), "hi @李四 看");
    update(&mut s, key(KeyCode::Tab));
    assert_eq!(
        s.composer.text(),
        "hi @李四 看",
        "nothing to complete for 看"
    );

    // 王五 joins; 李四 leaves.
    let change = |seq, kind: pb::group_change::Kind, who: u64, name: &str| {
        let mut m = msg(GROUP, seq, who, 19, "");
        m.kind = pb::MessageKind::System as i32;
        m.group_change = Some(pb::GroupChange {
            kind: kind as i32,
            actor: Some(user(who, name)),
            subject: Some(user(who, name)),
            ..Default::default()
        });
        m
    };
    update(
        &mut s,
        Msg::Core(Event::Message(change(
            7,
            pb::group_change::Kind::Joined,
            9,
            "王五",
        ))),
    );
    update(
        &mut s,
        Msg::Core(Event::Message(change(
            8,
            pb::group_change::Kind::Left,
            LI,
            "李四",
        ))),
    );
    s.composer.set("@王");
    update(&mut s, key(KeyCode::Tab));
    assert_eq!(s.composer.text(), "@王五 ");
    s.composer.set("@李");
    update(&mut s, key(KeyCode::Tab));
    assert_eq!(s.composer.text(), "@李", "李四 left: not offered");
}

/// A draft announced as typed and then cleared (Ctrl-C) is announced as stopped at once; a
/// sent one is not (its arrival clears the indicator). A stop from someone else clears their
/// indicator without waiting for its 5 s.
#[test]
fn clearing_a_draft_stops_the_typing_indicator() {
    let mut s = main_state(80, 24);
    let typing = |cmds: &[Cmd]| -> Vec<bool> {
        cmds.iter()
            .filter_map(|c| match c {
                Cmd::Typing {
                    thread_id: GROUP,
                    stopped,
                } => Some(*stopped),
                _ => None,
            })
            .collect()
    };
    let cmds = update(&mut s, key(KeyCode::Char('h')));
    assert_eq!(typing(&cmds), vec![false]);
    let cmds = update(&mut s, ctrl('c'));
    assert_eq!(typing(&cmds), vec![true], "{cmds:?}");
    let cmds = update(&mut s, key(KeyCode::Char('x')));
    assert_eq!(
        typing(&cmds),
        vec![false],
        "typing again is announced at once"
    );
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(typing(&cmds).is_empty(), "{cmds:?}");
    // Another device's user stops.
    update(
        &mut s,
        Msg::Core(Event::Typing(pb::TypingPush {
            thread_id: GROUP,
            user: Some(user(LI, "李四")),
            expires_ms: 5000,
        })),
    );
    assert!(screen_text(&s).contains("李四 typing"));
    update(
        &mut s,
        Msg::Core(Event::Typing(pb::TypingPush {
            thread_id: GROUP,
            user: Some(user(LI, "李四")),
            expires_ms: 0,
        })),
    );
    assert!(!screen_text(&s).contains("李四 typing"));
}

/// What an afternoon's use found, each fixed: `/msg` completes people, not groups; a renamed
/// group keeps its notification level (the config entry moves); a waiting request's seconds
/// count by themselves; notices that stopped being true go (too long after a send, reconnecting
/// once online, "again to quit" after another key).
#[test]
fn trial_findings_completion_rename_level_timer_and_stale_notices() {
    let mut s = main_state(80, 24);
    type_text(&mut s, "/msg 研");
    update(&mut s, key(KeyCode::Tab));
    assert_eq!(
        s.composer.text(),
        "/msg 研",
        "a group is not someone to message"
    );
    update(&mut s, ctrl('c'));

    s.settings.levels.insert("研发群".into(), Level::Mentions);
    let mut m = msg(GROUP, 7, ME, 19, "");
    m.kind = pb::MessageKind::System as i32;
    m.group_change = Some(pb::GroupChange {
        kind: pb::group_change::Kind::Updated as i32,
        actor: Some(user(ME, "小明")),
        name: "研发二群".into(),
        open: true,
        ..Default::default()
    });
    let cmds = update(&mut s, Msg::Core(Event::Message(m)));
    assert_eq!(s.settings.level("研发二群"), Level::Mentions);
    assert!(
        cmds.iter().any(|c| matches!(c, Cmd::SaveLevel { name, level: Level::All } if name == "研发群"))
            && cmds.iter().any(|c| matches!(c, Cmd::SaveLevel { name, level: Level::Mentions } if name == "研发二群")),
        "{cmds:?}"
    );

    s.busy = Default::default();
    type_text(&mut s, "/add 王五");
    update(&mut s, key(KeyCode::Enter));
    assert!(
        s.next_wakeup().is_some(),
        "the waiting line counts seconds by itself"
    );

    s.composer.set(&"长".repeat(1500));
    update(&mut s, key(KeyCode::Enter));
    assert!(s.notice.clone().unwrap().0.starts_with("too long"));
    s.composer.set("短的");
    update(&mut s, key(KeyCode::Enter));
    assert!(s.notice.is_none(), "{:?}", s.notice);

    type_text(&mut s, "/reconnect");
    update(&mut s, key(KeyCode::Enter));
    update(
        &mut s,
        Msg::Core(Event::State(ConnState::Online { synced: true })),
    );
    assert!(s.notice.is_none(), "{:?}", s.notice);

    update(&mut s, ctrl('c'));
    assert!(s.notice.clone().unwrap().0.contains("again to quit"));
    update(&mut s, key(KeyCode::Up));
    assert!(s.notice.is_none() && !s.quit, "{:?}", s.notice);
}
