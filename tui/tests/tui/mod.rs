//! The terminal client without a terminal: reducer tests (message sequences give the right
//! unread counts, order and marks) and TestBackend snapshots of every screen and popup at
//! 80x24, 60x20 and 120x40 with CJK names and messages (fixed clock, times in UTC).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::time::Duration;

use common::fixture::*;
use confab_tui::app::config::{Level, Settings};
use confab_tui::app::{Cmd, Conn, Done, Msg, Op, Popup, Screen, SendState, State, update};
use confab_tui::client::{ConnState, Event};
use confab_wire::pb;
use crossterm::event::KeyCode;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn render(s: &State) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(s.size.0, s.size.1)).unwrap();
    t.draw(|f| confab_tui::ui::draw(f, s)).unwrap();
    t
}

/// The screen as text, one row per line (trailing blanks trimmed). The cells a wide glyph
/// covers are skipped, and must be blank: anything else there would be hidden on a terminal.
fn dump(t: &Terminal<TestBackend>) -> String {
    let buf = t.backend().buffer();
    let mut out = String::new();
    for y in 0..buf.area.height {
        let mut row = String::new();
        let mut skip = 0;
        for x in 0..buf.area.width {
            let sym = buf[(x, y)].symbol();
            if skip > 0 {
                assert!(
                    sym.trim().is_empty(),
                    "cell ({x},{y}) {sym:?} is hidden by a wide glyph"
                );
                skip -= 1;
                continue;
            }
            row.push_str(sym);
            skip = unicode_width::UnicodeWidthStr::width(sym).saturating_sub(1);
        }
        out.push_str(row.trim_end());
        out.push('\n');
    }
    out
}

fn screen_text(s: &State) -> String {
    dump(&render(s))
}

fn members() -> Vec<pb::GroupMember> {
    vec![
        pb::GroupMember {
            user: Some(user(ME, "小明")),
            role: pb::Role::Owner as i32,
            online: true,
            ..Default::default()
        },
        pb::GroupMember {
            user: Some(user(ZHANG, "张三")),
            role: pb::Role::Member as i32,
            online: true,
            ..Default::default()
        },
        pb::GroupMember {
            user: Some(user(LI, "李四")),
            role: pb::Role::Admin as i32,
            online: false,
            ..Default::default()
        },
    ]
}

mod account;
mod failed;
mod groups;
mod keys;
mod login;
mod messages;
mod navigation;
mod notify;
mod relations;
mod search;
mod snapshots;
