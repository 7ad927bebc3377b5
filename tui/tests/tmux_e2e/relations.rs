//! Search, replies and reactions in the real terminal client at 80x24 (protocol 1.6 and 1.7):
//! two users in a DM, F6 finds a Chinese word in an older message and Enter shows it picked;
//! `a` answers it with a quote; `+` `1` reacts and the other side sees the count.

use super::{Tmux, register};
use crate::common::ServerProc;

#[test]
fn search_a_reply_and_a_reaction_in_tmux_at_80x24() {
    let dir = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(&dir.path().join("server"));
    let server = srv.addr.to_string();
    let t = Tmux {
        sock: dir.path().join("tmux.sock"),
    };
    let (home_a, home_b) = (dir.path().join("a"), dir.path().join("b"));
    t.launch_at("a", &home_a, &server, (80, 24));
    t.launch_at("b", &home_b, &server, (80, 24));
    register(&t, "a", "alice");
    register(&t, "b", "小明");
    t.line("a", "/add 小明");
    t.wait_for("b", "requests (1)");
    t.line("b", "/accept alice");
    t.wait_for("b", "you and alice are now friends");
    t.wait_for("a", "小明");

    t.line("b", "明天下午开会议，记得带电脑");
    t.wait_for("a", "明天下午开会议");
    for i in 0..3 {
        t.line("b", &format!("later message {i}"));
    }
    t.wait_for("a", "later message 2");

    // F6: the server's search finds the 2-character word inside the sentence.
    t.keys("a", &["F6"]);
    t.type_text("a", "会议");
    t.keys("a", &["Enter"]);
    let screen = t.wait("a", "a hit", |s| {
        s.contains("Search every conversation") && s.contains("明天下午开会议，记得带电脑")
    });
    assert!(screen.contains("小明 · "), "who wrote it: {screen}");
    // Enter shows it in its conversation, picked: `a` answers it.
    t.keys("a", &["Enter"]);
    t.wait("a", "the popup closed", |s| {
        s.matches("明天下午开会议").count() == 1
    });
    t.keys("a", &["a"]);
    t.wait_for("a", "replying to 小明: 明天下午开会议");
    t.line("a", "好的，我带");
    // The other side sees the reply under a quote of its message.
    let screen = t.wait_for("b", "好的，我带");
    assert!(screen.contains("↪ 小明: 明天下午开会议"), "{screen}");

    // b reacts to the reply: + then 1 (👍); a sees the count under its message.
    t.keys("b", &["M-Up"]);
    t.keys("b", &["+"]);
    t.wait_for("b", "react: 1 👍");
    t.keys("b", &["1"]);
    t.wait_for("b", "reacted 👍");
    t.wait_for("a", "👍 1");
    // The same again takes it back, on both screens.
    t.line("b", "/react 👍");
    t.wait_for("b", "took back 👍");
    t.wait("a", "the count gone", |s| !s.contains("👍 1"));
}
