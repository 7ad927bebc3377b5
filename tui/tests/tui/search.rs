//! F6, the server's search over every conversation (protocol 1.6): the query goes to the
//! server, the hits come back with their matches highlighted, and Enter shows the hit in its
//! conversation, loading older pages until it is there.

use super::*;

fn hit(thread: u64, seq: u64, from: u64, body: &str, spans: &[(u32, u32)]) -> pb::SearchHit {
    let mut m = msg(thread, seq, from, 1, body);
    m.message_id = 1000 + seq;
    pb::SearchHit {
        message: Some(m),
        spans: spans
            .iter()
            .map(|&(start, end)| pb::TextSpan { start, end })
            .collect(),
    }
}

#[test]
fn f6_searches_the_server_and_enter_shows_the_hit_in_its_conversation() {
    let mut s = main_state(80, 24);
    const T: u64 = 77;
    update(&mut s, Msg::Threads(vec![(dm(T, ZHANG, 500, 500, 900), 0)]));
    update(&mut s, key(KeyCode::F(6)));
    assert!(matches!(s.popup, Some(Popup::Search { .. })));
    type_text(&mut s, "部署");
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(
        matches!(&cmds[..], [Cmd::Op(Op::SearchAll { query, before: 0 })] if query == "部署"),
        "{cmds:?}"
    );
    // A hit far back in a conversation with 张三 (seq 140: nothing of it is loaded yet).
    update(
        &mut s,
        Msg::Done(Done::SearchHits {
            query: "部署".into(),
            hits: vec![hit(T, 140, ZHANG, "明天部署新版本", &[(6, 12)])],
            more: false,
            append: false,
        }),
    );
    let screen = screen_text(&s);
    assert!(
        screen.contains("张三 · 09:01"),
        "where (the sender is the peer) and when: {screen}"
    );
    assert!(screen.contains("明天部署新版本"), "{screen}");
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(s.popup.is_none());
    assert_eq!(s.selected, Some(T));
    assert!(
        cmds.iter()
            .any(|c| matches!(c, Cmd::History { thread_id, .. } if *thread_id == T)),
        "{cmds:?}"
    );
    // The newest page (seqs 301-500) does not hold it: an older one is asked for.
    let page: Vec<pb::ChatMessage> = (301..=500).map(|q| msg(T, q, ZHANG, 2, "later")).collect();
    let cmds = update(
        &mut s,
        Msg::History {
            thread_id: T,
            msgs: page,
        },
    );
    assert!(
        matches!(&cmds[..], [Cmd::History { thread_id, before_seq: 301 }] if *thread_id == T),
        "{cmds:?}"
    );
    let mut older: Vec<pb::ChatMessage> = (101..=300)
        .map(|q| msg(T, q, ZHANG, 1, "earlier"))
        .collect();
    older[39] = msg(T, 140, ZHANG, 1, "明天部署新版本");
    update(
        &mut s,
        Msg::History {
            thread_id: T,
            msgs: older,
        },
    );
    // Now it is there, picked (Alt-Up's cursor) and on screen.
    assert!(s.pick.is_some());
    assert!(s.jump.is_none());
    assert!(screen_text(&s).contains("明天部署新版本"));
}

#[test]
fn nothing_found_says_so_and_a_new_query_replaces_the_hits() {
    let mut s = main_state(80, 24);
    run(&mut s, "/search-all nothinghere");
    update(
        &mut s,
        Msg::Done(Done::SearchHits {
            query: "nothinghere".into(),
            hits: vec![],
            more: false,
            append: false,
        }),
    );
    assert!(screen_text(&s).contains("Nothing found."));
    // Hits for an older query that arrive late are not shown.
    update(
        &mut s,
        Msg::Done(Done::SearchHits {
            query: "old".into(),
            hits: vec![hit(GROUP, 2, LI, "old news", &[(0, 3)])],
            more: false,
            append: false,
        }),
    );
    assert!(!screen_text(&s).contains("old news"));
}

fn run(s: &mut State, line: &str) -> Vec<Cmd> {
    type_text(s, line);
    update(s, key(KeyCode::Enter))
}

/// Ctrl-S with nothing loaded that matches: Enter asks the server about this conversation and
/// shows its newest hit.
#[test]
fn find_with_no_loaded_match_asks_the_server_on_enter() {
    let mut s = main_state(80, 24);
    update(&mut s, ctrl('s'));
    type_text(&mut s, "发布会");
    assert!(
        screen_text(&s).contains("Enter asks the server"),
        "{}",
        screen_text(&s)
    );
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(
        cmds.iter().any(|c| matches!(c, Cmd::Op(Op::SearchThread { thread, query }) if *thread == GROUP && query == "发布会")),
        "{cmds:?}"
    );
    update(
        &mut s,
        Msg::Done(Done::ThreadHit {
            thread: GROUP,
            query: "发布会".into(),
            seq: Some(2),
        }),
    );
    assert!(s.pick.is_some(), "the hit is picked");
    update(&mut s, key(KeyCode::Esc));
    update(&mut s, ctrl('s'));
    type_text(&mut s, "nowhere");
    update(&mut s, key(KeyCode::Enter));
    update(
        &mut s,
        Msg::Done(Done::ThreadHit {
            thread: GROUP,
            query: "nowhere".into(),
            seq: None,
        }),
    );
    assert!(screen_text(&s).contains("nowhere in this conversation"));
}

/// Down faster than the server: one page is asked for at a time, and a page that comes twice is
/// shown once. A failed search says why in the popup; F6 brings back the last search.
#[test]
fn pages_come_once_errors_show_in_the_popup_and_f6_reopens_the_last_search() {
    let mut s = main_state(80, 24);
    run(&mut s, "/search-all 页");
    let page = |from: u64| -> Vec<pb::SearchHit> {
        (0..3)
            .map(|i| hit(GROUP, from - i, LI, "页 page", &[(0, 3)]))
            .collect()
    };
    update(
        &mut s,
        Msg::Done(Done::SearchHits {
            query: "页".into(),
            hits: page(10),
            more: true,
            append: false,
        }),
    );
    for _ in 0..2 {
        update(&mut s, key(KeyCode::Down));
    }
    let asked: Vec<Cmd> = (0..3)
        .flat_map(|_| update(&mut s, key(KeyCode::Down)))
        .collect();
    assert_eq!(
        asked
            .iter()
            .filter(|c| matches!(c, Cmd::Op(Op::SearchAll { .. })))
            .count(),
        1,
        "{asked:?}"
    );
    for _ in 0..2 {
        update(
            &mut s,
            Msg::Done(Done::SearchHits {
                query: "页".into(),
                hits: page(7),
                more: false,
                append: true,
            }),
        );
    }
    let Some(Popup::Search { hits, .. }) = &s.popup else {
        panic!()
    };
    assert_eq!(hits.len(), 6, "each hit once");
    update(&mut s, key(KeyCode::Esc));
    assert!(s.popup.is_none());
    update(&mut s, key(KeyCode::F(6)));
    assert!(
        matches!(&s.popup, Some(Popup::Search { hits, searched, .. }) if hits.len() == 6 && searched == "页"),
        "F6 brings the last search back"
    );
    // A new query that fails says why where the hits would be.
    update(&mut s, ctrl('u'));
    type_text(&mut s, "太长");
    update(&mut s, key(KeyCode::Enter));
    update(
        &mut s,
        Msg::Done(Done::Error("the query is longer than 256 bytes".into())),
    );
    let screen = screen_text(&s);
    assert!(screen.contains("longer than 256 bytes"), "{screen}");
    assert!(!screen.contains("Nothing found"), "{screen}");
}
