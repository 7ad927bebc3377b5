//! Text input: typed characters, single-line fields, pastes, the composer's editing keys and
//! its history of sent messages.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::keymap::Action;
use super::msg::Cmd;
use super::state::{Conn, Popup, Screen, State};
use crate::text::editor::Editor;

/// Typing notifications are sent at most this often (the server forwards one per 2 s).
const TYPING_EVERY_MS: i64 = 3_000;
/// How long others show one typing notification (PROTOCOL.md §5.6).
const TYPING_SHOWN_MS: i64 = 5_000;

/// A bracketed paste goes where typing would go; it is never sent by itself.
pub(super) fn paste(s: &mut State, text: &str) {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let lines = text.lines().count();
    match (&mut s.screen, &mut s.popup) {
        (Screen::Login(f), _) => f.field_mut().insert(text.lines().next().unwrap_or("")),
        (Screen::Main, Some(p)) => {
            if let Some(e) = popup_input(p) {
                e.insert(text.lines().next().unwrap_or(""));
            }
        }
        (Screen::Main, None) => {
            s.composer.insert(&text);
            if lines > 1 {
                s.notice(format!("pasted {lines} lines (not sent: Enter sends)"));
            }
        }
    }
}

/// The text field of a popup, if it has one.
pub(super) fn popup_input(p: &mut Popup) -> Option<&mut Editor> {
    match p {
        Popup::AddFriend { query, .. } => Some(query),
        Popup::Group { name, .. } => Some(name),
        Popup::Switcher { query, .. } => Some(query),
        Popup::Password {
            old,
            new,
            again,
            field,
        } => Some(match field {
            0 => old,
            1 => new,
            _ => again,
        }),
        Popup::DeleteAccount { password } => Some(password),
        Popup::Search { query, .. } => Some(query),
        _ => None,
    }
}

/// Plain text keys: a character without Ctrl/Alt.
pub(super) fn typed_char(k: &KeyEvent) -> Option<char> {
    match k.code {
        KeyCode::Char(c)
            if !k.modifiers.contains(KeyModifiers::CONTROL)
                && !k.modifiers.contains(KeyModifiers::ALT) =>
        {
            Some(c)
        }
        _ => None,
    }
}

/// Basic line editing for single-line inputs (login fields, popup queries).
pub(super) fn edit_line(e: &mut Editor, k: &KeyEvent) -> bool {
    if let Some(c) = typed_char(k) {
        e.insert(c.encode_utf8(&mut [0; 4]));
        return true;
    }
    let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
    match (k.code, ctrl) {
        (KeyCode::Backspace, _) | (KeyCode::Char('h'), true) => e.backspace(),
        (KeyCode::Delete, _) => e.delete(),
        (KeyCode::Left, _) | (KeyCode::Char('b'), true) => e.left(),
        (KeyCode::Right, _) | (KeyCode::Char('f'), true) => e.right(),
        (KeyCode::Home, _) | (KeyCode::Char('a'), true) => e.home(),
        (KeyCode::End, _) | (KeyCode::Char('e'), true) => e.end(),
        (KeyCode::Char('u'), true) => e.kill_to_start(),
        (KeyCode::Char('w'), true) => e.kill_word_back(),
        (KeyCode::Char('y'), true) => e.yank(),
        _ => return false,
    }
    true
}

/// Adds sent text to the history Up and Ctrl-R go through.
pub(super) fn remember(s: &mut State, text: &str) {
    if s.sent_history.last().is_none_or(|l| l != text) {
        s.sent_history.push(text.to_owned());
        if s.sent_history.len() > 500 {
            s.sent_history.remove(0);
        }
    }
    s.history_pos = None;
}

/// Tells the thread's members I am typing, at most every few seconds.
pub(super) fn typing(s: &mut State, cmds: &mut Vec<Cmd>) {
    // Commands and edits of an old message are not a message being typed.
    if s.composer.text().starts_with('/') || s.conn != Conn::Online || s.editing.is_some() {
        return;
    }
    if let Some(id) = s.selected
        && s.now_ms - s.last_typing_ms >= TYPING_EVERY_MS
    {
        s.last_typing_ms = s.now_ms;
        s.typing_in = Some(id);
        cmds.push(Cmd::Typing {
            thread_id: id,
            stopped: false,
        });
    }
}

/// After every input: a draft that was announced as being typed and is now gone (cleared, or
/// another conversation shown) is announced as stopped, so the others' indicator goes at once
/// instead of after its 5 s. A sent message needs none (its arrival clears the indicator).
pub(super) fn typing_stopped(s: &mut State, cmds: &mut Vec<Cmd>) {
    let Some(id) = s.typing_in else { return };
    if s.now_ms - s.last_typing_ms >= TYPING_SHOWN_MS {
        s.typing_in = None;
        return;
    }
    if s.selected != Some(id) || s.composer.is_empty() || s.composer.text().starts_with('/') {
        s.typing_in = None;
        s.last_typing_ms = i64::MIN / 2;
        cmds.push(Cmd::Typing {
            thread_id: id,
            stopped: true,
        });
    }
}

/// The composer's editing actions.
pub(super) fn edit(e: &mut Editor, action: Action) {
    match action {
        Action::Newline => e.insert("\n"),
        Action::Left => e.left(),
        Action::Right => e.right(),
        Action::WordLeft => e.word_left(),
        Action::WordRight => e.word_right(),
        Action::LineStart => e.home(),
        Action::LineEnd => e.end(),
        Action::Backspace => e.backspace(),
        Action::Delete => e.delete(),
        Action::KillWord => e.kill_word_back(),
        Action::KillToStart => e.kill_to_start(),
        Action::KillToEnd => e.kill_to_end(),
        Action::Yank => e.yank(),
        Action::Undo => e.undo(),
        _ => {}
    }
}

/// Up/Down: a line up or down in a multi-line draft, else the previous or next sent message.
pub(super) fn history(s: &mut State, back: bool) {
    let amb = s.settings.ambiguous;
    let moved = if back {
        s.composer.up(amb)
    } else {
        s.composer.down(amb)
    };
    if moved || s.sent_history.is_empty() {
        return;
    }
    let n = s.sent_history.len();
    let pos = match (s.history_pos, back) {
        (None, true) => Some(n - 1),
        (None, false) => None,
        (Some(p), true) => Some(p.saturating_sub(1)),
        (Some(p), false) if p + 1 < n => Some(p + 1),
        (Some(_), false) => None,
    };
    if pos.is_none() && s.history_pos.is_none() {
        return;
    }
    s.history_pos = pos;
    let text = pos.map_or(String::new(), |p| s.sent_history[p].clone());
    s.composer.set(&text);
}
