//! Drawing: pure functions from `&State` to a ratatui frame. No borders around the main panes
//! (they cost two columns and two rows at 80x24); popups are boxed. The real terminal cursor is
//! placed at the composer's caret so IME candidate windows appear there.
//!
//! Where things go comes from [`crate::app::layout`], which the reducer scrolls by too; this
//! module only draws, one file per part of the screen. ui depends on app, never the reverse.

pub mod chat;
mod composer;
mod list;
mod login;
mod paint;
mod popups;
mod status;
mod trust;

use ratatui::Frame;
use ratatui::layout::{Position, Rect};
use ratatui::style::{Modifier, Style};

use crate::app::layout::MainLayout;
pub use crate::app::layout::{COMPOSER_MAX, MIN_H, MIN_W, chat_width, composer_rows, list_width};
use crate::app::{Screen, State};
pub use paint::{fg, rule};

/// Draws the whole screen.
pub fn draw(f: &mut Frame, s: &State) {
    let area = f.area();
    if area.width < MIN_W || area.height < MIN_H {
        let msg = format!("terminal too small: {}x{}", area.width, area.height);
        let need = format!("need {MIN_W}x{MIN_H}");
        let buf = f.buffer_mut();
        paint::put(buf, 0, 0, &msg, usize::from(area.width), Style::default());
        paint::put(buf, 0, 1, &need, usize::from(area.width), Style::default());
        return;
    }
    match &s.screen {
        Screen::Login(form) => login::draw_login(f, s, form),
        Screen::Main => draw_main(f, s),
    }
    if let Some(ask) = &s.trust {
        trust::draw_trust(f, s, ask);
    }
}

fn draw_main(f: &mut Frame, s: &State) {
    let area = f.area();
    let w = area.width;
    let banner = crate::app::layout::banner(s);
    let l = MainLayout::new(
        (w, area.height),
        &s.composer,
        s.settings.ambiguous,
        banner.as_deref(),
    );
    let buf = f.buffer_mut();
    status::draw_title(buf, s, Rect::new(0, 0, w, 1));
    status::draw_banner(buf, s, &l.banner, Rect::new(0, 1, w, l.body_y - 1));
    if l.list_w > 0 {
        list::draw_list(buf, s, Rect::new(0, l.body_y, l.list_w, l.body_h));
        for y in l.body_y..l.body_y + l.body_h {
            let st = Style::default().add_modifier(Modifier::DIM);
            paint::put(buf, l.list_w, y, paint::vline(s), 1, st);
        }
    }
    let chat = Rect::new(l.chat_x, l.body_y, l.chat_w, l.body_h);
    chat::draw_chat(buf, s, chat);
    composer::draw_separator(buf, s, &l, w);
    composer::draw_composer(buf, s, &l);
    status::draw_status(buf, s, Rect::new(0, l.status_y, w, 1));

    match &s.popup {
        Some(p) => {
            if let Some(pos) = popups::draw_popup(f, s, p) {
                f.set_cursor_position(pos);
            }
        }
        None => {
            let (crow, ccol) = l.caret;
            let y = l.composer_y + u16::try_from(crow - l.composer_top).unwrap_or(0);
            let x = 2 + u16::try_from(ccol).unwrap_or(0);
            f.set_cursor_position(Position::new(x.min(w - 1), y));
        }
    }
}
