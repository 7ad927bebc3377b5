//! TestBackend snapshots of every screen and popup at 80x24, 60x20 and 120x40 with CJK
//! names and messages (fixed clock, times in UTC).

use super::*;

const SIZES: [(u16, u16); 3] = [(80, 24), (60, 20), (120, 40)];

fn snap(name: &str, prepare: impl Fn(&mut State)) {
    for (w, h) in SIZES {
        let mut s = main_state(w, h);
        prepare(&mut s);
        let text = screen_text(&s);
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), text);
    }
}

#[test]
fn snapshot_main() {
    snap("main", |_| {});
}

#[test]
fn snapshot_dm_with_read_receipt_typing_and_pending() {
    snap("dm", |s| {
        update(s, ctrl('n'));
        update(
            s,
            Msg::History {
                thread_id: DM_ZHANG,
                msgs: vec![
                    msg(DM_ZHANG, 1, ZHANG, 1, "你好！"),
                    msg(DM_ZHANG, 2, ME, 2, "hi 张三"),
                ],
            },
        );
        update(
            s,
            Msg::Core(Event::ReadReceipt(pb::ReadReceiptPush {
                thread_id: DM_ZHANG,
                user: Some(user(ZHANG, "张三")),
                read_seq: 2,
            })),
        );
        update(
            s,
            Msg::Core(Event::Typing(pb::TypingPush {
                thread_id: DM_ZHANG,
                user: Some(user(ZHANG, "张三")),
                expires_ms: 5000,
            })),
        );
        type_text(s, "还没发出去");
        update(s, key(KeyCode::Enter));
        type_text(s, "草稿");
    });
}

#[test]
fn snapshot_offline_banner() {
    snap("offline", |s| {
        update(
            s,
            Msg::Core(Event::State(ConnState::Offline {
                retry_in: Duration::from_secs(8),
                reason: "connection refused".into(),
            })),
        );
    });
    // A long reason wraps under the title instead of being cut.
    snap("offline_long_reason", |s| {
        update(
            s,
            Msg::Core(Event::State(ConnState::Offline {
                retry_in: Duration::from_secs(30),
                reason: "no answer from the server for 45 s (the connection was silent; it may be \
                         frozen or the network is down)"
                    .into(),
            })),
        );
    });
}

#[test]
fn snapshot_scrolled_with_new_below() {
    snap("scrolled", |s| {
        let many: Vec<_> = (7..=60)
            .map(|q| {
                msg(
                    GROUP,
                    q,
                    if q % 2 == 0 { ZHANG } else { LI },
                    18,
                    &format!("第{q}条消息"),
                )
            })
            .collect();
        update(
            s,
            Msg::History {
                thread_id: GROUP,
                msgs: many,
            },
        );
        update(s, key(KeyCode::PageUp));
        update(
            s,
            Msg::Core(Event::Message(msg(GROUP, 61, LI, 19, "新消息"))),
        );
    });
}

#[test]
fn snapshot_composer_multiline_cjk() {
    snap("composer", |s| {
        type_text(s, "第一行");
        update(s, alt(KeyCode::Enter));
        type_text(s, &"很长的中文输入会按显示宽度换行".repeat(4));
    });
}

#[test]
fn snapshot_popups() {
    snap("popup_help", |s| {
        update(s, key(KeyCode::F(1)));
    });
    snap("popup_requests", |s| {
        let incoming = s.requests.clone();
        update(
            s,
            Msg::Done(Done::Requests {
                incoming,
                outgoing: vec![pb::FriendRequest {
                    request_id: 78,
                    from: Some(user(ME, "小明")),
                    to: Some(user(12, "赵六")),
                    state: pb::RequestState::Pending as i32,
                    ..Default::default()
                }],
            }),
        );
        update(s, key(KeyCode::F(2)));
    });
    snap("popup_devices", |s| {
        type_text(s, "/devices");
        update(s, key(KeyCode::Enter));
        let dev = |id, name: &str, client: &str, current| pb::Device {
            device_id: id,
            name: name.into(),
            client: client.into(),
            address: "192.0.2.7".into(),
            created_ms: NOW - 86_400_000,
            last_seen_ms: NOW - 3_600_000,
            current,
        };
        update(
            s,
            Msg::Done(Done::Devices {
                devices: vec![
                    dev(1, "laptop", "confab-tui", true),
                    dev(2, "", "confab-cli", false),
                    dev(3, "办公室电脑", "confab-tui", false),
                ],
                info: None,
            }),
        );
    });
    snap("popup_password", |s| {
        type_text(s, "/password");
        update(s, key(KeyCode::Enter));
        type_text(s, "old secret");
        update(s, key(KeyCode::Tab));
    });
    snap("popup_add_friend", |s| {
        update(s, key(KeyCode::F(3)));
        type_text(s, "王");
        update(s, key(KeyCode::Enter));
        update(
            s,
            Msg::Done(Done::Users(vec![
                pb::Profile {
                    user: Some(user(9, "王五")),
                    ..Default::default()
                },
                pb::Profile {
                    user: Some(user(11, "王小二")),
                    ..Default::default()
                },
            ])),
        );
    });
    snap("popup_group", |s| {
        update(s, key(KeyCode::F(4)));
        type_text(s, "前端小组");
    });
    snap("popup_members", |s| {
        update(s, key(KeyCode::F(5)));
        update(s, Msg::Done(Done::Members(5, members())));
    });
    snap("popup_switcher", |s| {
        update(s, ctrl('k'));
        type_text(s, "张");
    });
}

#[test]
fn snapshot_login_screens() {
    for (w, h) in SIZES {
        let mut s = State::new(Default::default(), "chat.example:7000".into());
        s.size = (w, h);
        type_text(&mut s, "小明");
        update(&mut s, key(KeyCode::Enter));
        type_text(&mut s, "pw");
        insta::assert_snapshot!(format!("login_{w}x{h}"), screen_text(&s));
        update(&mut s, key(KeyCode::Enter));
        update(
            &mut s,
            Msg::Core(Event::State(ConnState::Stopped {
                code: pb::ErrorCode::AuthFailed,
                reason: "AUTH_FAILED".into(),
            })),
        );
        update(&mut s, ctrl('t'));
        insta::assert_snapshot!(format!("register_error_{w}x{h}"), screen_text(&s));
    }
}

#[test]
fn snapshot_empty_and_too_small() {
    let mut s = State::new(Default::default(), "x:1".into()).resuming(None);
    s.size = (80, 24);
    signed_in(&mut s);
    insta::assert_snapshot!("empty_80x24", screen_text(&s));
    let mut small = main_state(30, 8);
    small.size = (30, 8);
    insta::assert_snapshot!("too_small_30x8", screen_text(&small));
}

#[test]
fn no_color_leaves_only_attributes() {
    use ratatui::style::Color;
    let colored = |s: &State| {
        let t = render(s);
        let buf = t.backend().buffer().clone();
        buf.content()
            .iter()
            .any(|c| c.fg != Color::Reset || c.bg != Color::Reset)
    };
    let mut s = main_state(80, 24);
    update(
        &mut s,
        Msg::Core(Event::State(ConnState::Offline {
            retry_in: Duration::from_secs(3),
            reason: "x".into(),
        })),
    );
    assert!(colored(&s), "the default theme uses colours");
    s.settings = confab_tui::app::config::Settings::parse("", true);
    assert!(!colored(&s), "NO_COLOR: no colour anywhere");
    assert!(
        screen_text(&s).contains("OFFLINE"),
        "the banner still shows"
    );
}

#[test]
fn snapshot_ambiguous_wide_uses_ascii_lines() {
    let mut s = main_state(80, 24);
    s.settings = confab_tui::app::config::Settings::parse("ambiguous_width = 2", false);
    let main = screen_text(&s);
    assert!(!main.contains('│') && !main.contains('─'), "{main}");
    insta::assert_snapshot!("ambiguous_wide_main_80x24", main);
    update(&mut s, key(KeyCode::F(2)));
    let popup = screen_text(&s);
    assert!(
        !popup.contains('┌') && popup.contains("+ Friend requests -"),
        "{popup}"
    );
    insta::assert_snapshot!("ambiguous_wide_requests_80x24", popup);
}

/// The newer states at each size: finding text (its status line and highlights), editing a
/// message (the line above the composer), a group with a topic and a notification level, and
/// the silent-server banner.
#[test]
fn snapshot_find_edit_topic_and_silent_server() {
    snap("find", |s| {
        update(s, ctrl('s'));
        type_text(s, "部署");
    });
    snap("editing", |s| {
        let mut mine = msg(GROUP, 7, ME, 19, "我的消息");
        mine.server_ts_ms = s.now_ms - 1_000;
        update(s, Msg::Core(Event::Message(mine)));
        update(s, key(KeyCode::Up));
    });
    snap("topic_and_level", |s| {
        let mut m = msg(GROUP, 7, ME, 19, "");
        m.kind = pb::MessageKind::System as i32;
        m.group_change = Some(pb::GroupChange {
            kind: pb::group_change::Kind::Updated as i32,
            actor: Some(user(ME, "小明")),
            name: "研发群".into(),
            description: "周五 10:00 发布".into(),
            open: false,
            ..Default::default()
        });
        update(s, Msg::Core(Event::Message(m)));
        s.settings.levels.insert("研发群".into(), Level::Mentions);
    });
    snap("silent_server", |s| {
        update(
            s,
            Msg::Core(Event::Silent {
                silent: Duration::from_secs(13),
                drop_in: Duration::from_secs(17),
            }),
        );
    });
}
