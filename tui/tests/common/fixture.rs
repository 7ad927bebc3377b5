//! A fixed terminal-client state for reducer and snapshot tests: CJK names and messages, a fixed
//! clock (2026-05-03 09:20 UTC), times shown in UTC.

use confab_tui::app::config::Settings;
use confab_tui::app::{Cmd, Msg, State, update};
use confab_tui::client::Event;
use confab_wire::pb;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

pub const DAY: i64 = 20_576; // 2026-05-03
pub const NOW: i64 = DAY * 86_400_000 + 9 * 3_600_000 + 20 * 60_000;
pub const ME: u64 = 1;
pub const ZHANG: u64 = 2;
pub const LI: u64 = 3;
pub const ALICE: u64 = 4;
pub const DM_ZHANG: u64 = 10;
pub const GROUP: u64 = 20;
pub const DM_ALICE: u64 = 30;

pub fn user(id: u64, name: &str) -> pb::User {
    pb::User {
        user_id: id,
        name: name.into(),
    }
}

pub fn name_of(id: u64) -> &'static str {
    match id {
        ME => "小明",
        ZHANG => "张三",
        LI => "李四",
        _ => "Alice",
    }
}

pub fn msg(thread: u64, seq: u64, from: u64, minute: i64, body: &str) -> pb::ChatMessage {
    pb::ChatMessage {
        thread_id: thread,
        seq,
        message_id: minute as u64 * 100_000 + thread * 100 + seq,
        sender: Some(user(from, name_of(from))),
        server_ts_ms: DAY * 86_400_000 + 9 * 3_600_000 + minute * 60_000,
        kind: pb::MessageKind::Text as i32,
        body: body.into(),
        ..Default::default()
    }
}

pub fn dm(id: u64, peer: u64, last: u64, read: u64, activity: u64) -> pb::Thread {
    pb::Thread {
        thread_id: id,
        kind: pb::ThreadKind::Private as i32,
        peer: Some(user(peer, name_of(peer))),
        last_seq: last,
        read_seq: read,
        activity_id: activity,
        can_send: true,
        ..Default::default()
    }
}

pub fn group_thread(last: u64, read: u64, activity: u64) -> pb::Thread {
    pb::Thread {
        thread_id: GROUP,
        kind: pb::ThreadKind::Group as i32,
        group: Some(pb::Group {
            group_id: 5,
            thread_id: GROUP,
            name: "研发群".into(),
            open: true,
            owner_id: ME,
            member_count: 3,
            my_role: pb::Role::Owner as i32,
            ..Default::default()
        }),
        last_seq: last,
        read_seq: read,
        activity_id: activity,
        can_send: true,
        ..Default::default()
    }
}

pub fn key(code: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

pub fn ctrl(c: char) -> Msg {
    Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
}

pub fn alt(code: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(code, KeyModifiers::ALT))
}

pub fn type_text(s: &mut State, text: &str) {
    for c in text.chars() {
        update(s, key(KeyCode::Char(c)));
    }
}

/// The core's session event for 小明 (device 1).
pub fn signed_in(s: &mut State) -> Vec<Cmd> {
    update(
        s,
        Msg::Core(Event::Session {
            user: user(ME, "小明"),
            device_id: 1,
            token: "t".into(),
        }),
    )
}

/// Logged in as 小明 with three conversations; the group is shown.
pub fn main_state(w: u16, h: u16) -> State {
    let settings = Settings::parse("", false);
    let mut s = State::new(settings, "chat.example:7000".into());
    s.now_ms = NOW;
    s.size = (w, h);
    signed_in(&mut s);
    update(&mut s, Msg::Core(Event::Synced));
    update(
        &mut s,
        Msg::Threads(vec![
            (group_thread(6, 6, 18 * 100_000 + GROUP * 100 + 6), 6),
            (
                dm(DM_ZHANG, ZHANG, 2, 0, 5 * 100_000 + DM_ZHANG * 100 + 2),
                2,
            ),
            (dm(DM_ALICE, ALICE, 1, 1, 500), 1),
        ]),
    );
    update(
        &mut s,
        Msg::Done(confab_tui::app::Done::Friends(vec![
            pb::Friend {
                user: Some(user(ZHANG, "张三")),
                online: true,
                thread_id: DM_ZHANG,
                ..Default::default()
            },
            pb::Friend {
                user: Some(user(ALICE, "Alice")),
                online: false,
                thread_id: DM_ALICE,
                ..Default::default()
            },
        ])),
    );
    update(
        &mut s,
        Msg::History {
            thread_id: GROUP,
            msgs: vec![
                msg(GROUP, 1, ZHANG, 12, "早上好，今天十点部署吗？"),
                msg(GROUP, 2, LI, 13, "先看 CI，😀 没问题"),
                msg(
                    GROUP,
                    3,
                    ME,
                    15,
                    "好的，我来发公告。这一行很长会按显示宽度换行并保持悬挂缩进，中文English混排也要对齐。",
                ),
                msg(GROUP, 4, ZHANG, 16, "👨‍👩‍👧 🇨🇳 ❤️ ｶﾞ e\u{301}"),
                msg(GROUP, 5, LI, 17, "@小明 记得带电脑"),
                msg(GROUP, 6, ZHANG, 18, "ok"),
            ],
        },
    );
    update(
        &mut s,
        Msg::Done(confab_tui::app::Done::Requests {
            incoming: vec![pb::FriendRequest {
                request_id: 77,
                from: Some(user(9, "王五")),
                to: Some(user(ME, "小明")),
                note: "我们在会上见过".into(),
                state: pb::RequestState::Pending as i32,
                ..Default::default()
            }],
            outgoing: Vec::new(),
        }),
    );
    s.notice = None;
    s
}
