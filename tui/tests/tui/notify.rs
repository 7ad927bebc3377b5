//! Notifications, mentions and highlight words, the log, and what the banner says about the
//! connection.

use super::*;

#[test]
fn a_mention_is_the_whole_name() {
    use confab_tui::app::highlight::mentions;
    assert!(mentions("@bob 看这里", "bob"));
    assert!(mentions("hi @Bob, look", "bob"));
    assert!(mentions("看 @小明", "小明"));
    assert!(!mentions("@bobby look", "bob"));
    assert!(!mentions("@bob_smith look", "bob"));
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
