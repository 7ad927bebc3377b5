//! Moving around: jumps (first unread, start, last conversation), find as you type, the help
//! popup's paging, resizes, and the key table in the docs.

use super::*;

/// F1 at 40x20: every description is there whole (wrapped under its keys, not cut), the last
/// row says which lines show and that there is more, and End reaches the end of the text.
#[test]
fn help_wraps_at_40_columns_and_says_where_it_is() {
    let mut s = main_state(40, 20);
    update(&mut s, key(KeyCode::F(1)));
    let inner = |s: &State| -> Vec<String> {
        screen_text(s)
            .lines()
            .filter_map(|l| {
                let l = l.trim_end();
                let a = l.find('│')?;
                let b = l.rfind('│')?;
                (b > a).then(|| l[a + '│'.len_utf8()..b].trim().to_owned())
            })
            .collect()
    };
    let first = inner(&s);
    assert!(
        first.last().unwrap().starts_with("1-") && first.last().unwrap().contains("more"),
        "{first:#?}"
    );
    // A page down starts right after the last line shown: nothing is skipped.
    let range = |s: &State| -> (usize, usize) {
        let last = inner(s).last().unwrap().clone();
        let (a, rest) = last.split_once('-').unwrap();
        let b = rest.split_whitespace().next().unwrap();
        (a.parse().unwrap(), b.parse().unwrap())
    };
    let (_, end) = range(&s);
    update(&mut s, key(KeyCode::PageDown));
    assert_eq!(range(&s).0, end + 1);
    update(&mut s, key(KeyCode::PageUp));
    assert_eq!(range(&s).0, 1);
    // Page through everything, collecting the text.
    let mut seen: Vec<String> = Vec::new();
    for _ in 0..40 {
        let rows = inner(&s);
        seen.extend(rows[..rows.len() - 1].iter().cloned());
        update(&mut s, key(KeyCode::PageDown));
    }
    let all = seen.join(" ");
    let squeezed: String = all.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        squeezed.contains("complete a /command, name or @member (again: next)"),
        "{squeezed}"
    );
    assert!(squeezed.contains("p admin on/off."), "the end is reachable");
    update(&mut s, key(KeyCode::End));
    let rows = inner(&s);
    assert!(rows.last().unwrap().contains("end,"), "{rows:#?}");
    // Scrolling past the end stays at the end: one Up moves back at once.
    update(&mut s, key(KeyCode::PageDown));
    update(&mut s, key(KeyCode::Up));
    assert!(inner(&s).last().unwrap().contains("more"));
}

/// weechat-style navigation: Alt-U puts the first unread message at the top (the "new"
/// divider), Alt-Home goes to the start, Alt-PgUp/PgDn move three lines, Alt-End back to the
/// newest, Alt-/ back to the conversation shown before.
#[test]
fn navigation_keys_jump_to_unread_start_lines_and_the_last_conversation() {
    let mut s = main_state(80, 24);
    update(&mut s, Msg::Threads(vec![(group_thread(60, 6, 60), 60)]));
    update(
        &mut s,
        Msg::History {
            thread_id: GROUP,
            msgs: (7..=60)
                .map(|q| msg(GROUP, q, LI, 19, &format!("第{q}条")))
                .collect(),
        },
    );
    let rows = |s: &State| -> Vec<String> { screen_text(s).lines().map(str::to_owned).collect() };
    update(&mut s, alt(KeyCode::Char('u')));
    let screen = rows(&s);
    assert!(screen[1].contains("── new"), "{screen:#?}");
    assert!(screen[2].contains("第7条"), "{screen:#?}");
    update(&mut s, alt(KeyCode::PageDown));
    assert!(
        rows(&s)[1].contains("第9条"),
        "three rows on: {:#?}",
        rows(&s)
    );
    update(&mut s, alt(KeyCode::PageUp));
    assert!(rows(&s)[2].contains("第7条"));
    update(&mut s, alt(KeyCode::Home));
    assert!(
        rows(&s)[1].contains("start of conversation"),
        "{:#?}",
        rows(&s)
    );
    update(&mut s, alt(KeyCode::End));
    assert_eq!(s.thread(GROUP).unwrap().scroll, 0);
    // Alt-/ toggles between the two last conversations.
    update(&mut s, alt(KeyCode::Char('3')));
    assert_eq!(s.selected, Some(DM_ALICE));
    update(&mut s, alt(KeyCode::Char('/')));
    assert_eq!(s.selected, Some(GROUP));
    update(&mut s, alt(KeyCode::Char('/')));
    assert_eq!(s.selected, Some(DM_ALICE));
}

/// docs/CLIENT.md's key table names every default binding's first key, so a new action
/// cannot land without its documentation.
#[test]
fn every_key_binding_is_in_the_client_docs() {
    let docs = include_str!("../../../docs/CLIENT.md");
    let start = docs.find("## Keys (default preset)").unwrap();
    let table: Vec<&str> = docs[start..]
        .lines()
        .skip(1)
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .collect();
    let keys_cells: Vec<&str> = table.iter().filter_map(|l| l.split('|').nth(1)).collect();
    let km = confab_tui::app::keymap::Keymap::default();
    for (action, keys) in &km.table {
        let Some(first) = keys.first() else { continue };
        let name = first.to_string();
        // Alt-1 … Alt-9 are one row.
        let name = if action.thread_index().is_some() {
            "Alt-1".to_owned()
        } else {
            name
        };
        assert!(
            keys_cells.iter().any(|c| c
                .split([' ', ','])
                .any(|w| w == name || w.split('/').any(|k| k == name))),
            "{name} ({}) is not in docs/CLIENT.md's key table",
            action.id()
        );
    }
}

/// Ctrl-S finds as you type: the newest match is shown with a count, Up steps to older ones
/// (and asks for older pages past the oldest loaded), matches are highlighted, Enter stays,
/// Esc goes back to the newest message.
#[test]
fn ctrl_s_finds_as_you_type_and_steps_through_matches() {
    let mut s = main_state(80, 24);
    update(&mut s, Msg::Threads(vec![(group_thread(60, 60, 60), 60)]));
    update(
        &mut s,
        Msg::History {
            thread_id: GROUP,
            msgs: (7..=60)
                .map(|q| {
                    let body = if q % 10 == 0 {
                        format!("部署 第{q}条")
                    } else {
                        format!("第{q}条")
                    };
                    msg(GROUP, q, LI, 19, &body)
                })
                .collect(),
        },
    );
    let status = |s: &State| screen_text(s).lines().last().unwrap().to_owned();
    update(&mut s, ctrl('s'));
    assert!(
        status(&s).contains("find:   type to find"),
        "{}",
        status(&s)
    );
    type_text(&mut s, "部署");
    // 早上好，今天十点部署吗？ (seq 1) and 10, 20, …, 60: seven, the newest shown.
    assert!(status(&s).contains("find: 部署  7/7"), "{}", status(&s));
    assert!(
        s.composer.is_empty(),
        "typed into the search, not the draft"
    );
    for _ in 0..3 {
        update(&mut s, key(KeyCode::Up));
    }
    assert!(status(&s).contains("4/7"), "{}", status(&s));
    let screen = screen_text(&s);
    assert!(
        screen.contains("部署 第30条"),
        "the match is on screen: {screen}"
    );
    assert!(s.thread(GROUP).unwrap().scroll > 0);
    // The match is highlighted.
    let t = render(&s);
    let buf = t.backend().buffer();
    let y = (0..24u16)
        .find(|y| {
            (0..80u16)
                .map(|x| buf[(x, *y)].symbol().to_owned())
                .collect::<String>()
                .contains("30条")
        })
        .unwrap();
    let bold: usize = (19..80u16)
        .filter(|x| {
            buf[(*x, y)]
                .modifier
                .contains(ratatui::style::Modifier::BOLD)
        })
        .count();
    assert!(bold >= 2, "部署 is drawn bold ({bold} cells)");
    update(&mut s, key(KeyCode::Down));
    assert!(status(&s).contains("5/7"));
    // Enter stays where the match is; Esc would have gone back to the newest.
    let scroll = s.thread(GROUP).unwrap().scroll;
    update(&mut s, key(KeyCode::Enter));
    assert!(s.find.is_none());
    assert_eq!(s.thread(GROUP).unwrap().scroll, scroll);
    type_text(&mut s, "/search 第55条");
    update(&mut s, key(KeyCode::Enter));
    assert!(status(&s).contains("1/1"), "{}", status(&s));
    update(&mut s, key(KeyCode::Esc));
    assert!(s.find.is_none());
    assert_eq!(s.thread(GROUP).unwrap().scroll, 0);
    // No match among what is loaded, with older pages to load: they are asked for.
    let mut s = main_state(80, 24);
    let page = confab_tui::app::PAGE as u64;
    update(
        &mut s,
        Msg::History {
            thread_id: DM_ALICE,
            msgs: (1000..1000 + page)
                .map(|q| msg(DM_ALICE, q, ALICE, 19, "hi"))
                .collect(),
        },
    );
    update(&mut s, alt(KeyCode::Char('3')));
    assert!(!s.thread(DM_ALICE).unwrap().oldest_done);
    update(&mut s, ctrl('s'));
    let cmds = update(&mut s, key(KeyCode::Char('x')));
    assert!(
        cmds.iter().any(|c| matches!(
            c,
            Cmd::History {
                thread_id: DM_ALICE,
                before_seq: 1000
            }
        )),
        "{cmds:?}"
    );
    assert!(
        status(&s).contains("looking further back"),
        "{}",
        status(&s)
    );
    // The page comes: the search goes on by itself, and finds it there.
    update(
        &mut s,
        Msg::History {
            thread_id: DM_ALICE,
            msgs: vec![msg(DM_ALICE, 999, ALICE, 18, "x marks the spot")],
        },
    );
    assert!(status(&s).contains("find: x  1/1"), "{}", status(&s));
}

/// Scrolled up, a resize keeps the message that was at the top of the pane at the top (the
/// rows re-wrap at another width, so the same count from the bottom would show another place).
#[test]
fn a_resize_keeps_the_message_at_the_top_of_the_view() {
    let mut s = main_state(80, 24);
    update(
        &mut s,
        Msg::History {
            thread_id: GROUP,
            msgs: (7..=60)
                .map(|q| {
                    msg(
                        GROUP,
                        q,
                        LI,
                        18,
                        &format!("第{q}条 {}", "很长的一句话会在窄的终端里换行。".repeat(2)),
                    )
                })
                .collect(),
        },
    );
    for _ in 0..3 {
        update(&mut s, key(KeyCode::PageUp));
    }
    let first_label = |s: &State| -> String {
        let screen = screen_text(s);
        let line = screen.lines().nth(1).unwrap().to_owned();
        let from = line.find('第').expect(&screen);
        line[from..].split(' ').next().unwrap().to_owned()
    };
    let before = first_label(&s);
    for size in [(60, 20), (120, 40), (80, 24)] {
        update(&mut s, Msg::Resize(size.0, size.1));
        assert_eq!(first_label(&s), before, "at {size:?}:\n{}", screen_text(&s));
    }
}
