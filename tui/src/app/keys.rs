//! Keys: the login form, the main screen (through the keymap), the vim preset's normal mode
//! and Ctrl-R search through sent messages. Popups have their own keys (`popups`).

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::actions::{
    delete_failed, retry, scroll_bottom, scroll_by, select, select_index, send_text, step_thread,
};
use super::commands::run_command;
use super::input::{edit, edit_line, history, remember, typed_char, typing};
use super::keymap::Action;
use super::msg::Cmd;
use super::popups::{members_popup, open_popup, popup_key};
use super::state::{LoginForm, Popup, Screen, State};
use crate::client::Auth;
use crate::text::editor::Editor;
use crate::text::nfc;

/// A key press on any screen.
pub(super) fn key(s: &mut State, k: KeyEvent, cmds: &mut Vec<Cmd>) {
    if k.kind == KeyEventKind::Release {
        return;
    }
    // Suspending works on every screen and in every popup.
    if s.settings.keymap.action(&k) == Some(Action::Suspend) {
        cmds.push(Cmd::Suspend);
        return;
    }
    // Under "terminal too small" nothing is visible: only quitting works (Ctrl-C twice),
    // no key may type into a composer the user cannot see.
    let (w, h) = s.size;
    if w < super::layout::MIN_W || h < super::layout::MIN_H {
        if s.settings.keymap.action(&k) == Some(Action::Interrupt) {
            interrupt(s, cmds);
        }
        return;
    }
    if s.trust.is_some() {
        trust_key(s, k, cmds);
        return;
    }
    match s.screen {
        Screen::Login(_) => login_key(s, k, cmds),
        Screen::Main => main_key(s, k, cmds),
    }
}

/// The trust prompt: `y` records the fingerprint and connects again; `n` or Esc refuses.
fn trust_key(s: &mut State, k: KeyEvent, cmds: &mut Vec<Cmd>) {
    let Some(ask) = s.trust.clone() else { return };
    match k.code {
        KeyCode::Char('y' | 'Y') => {
            s.trust = None;
            if let Screen::Login(f) = &mut s.screen {
                f.busy = true;
                f.error = None;
            }
            cmds.push(Cmd::TrustServer {
                server: ask.server,
                fingerprint: ask.fingerprint,
            });
        }
        KeyCode::Char('n' | 'N') | KeyCode::Esc => {
            s.trust = None;
            let why = format!("{} is not trusted: not connected", ask.server);
            cmds.push(Cmd::Disconnect);
            match &mut s.screen {
                Screen::Login(f) => {
                    f.busy = false;
                    f.error = Some(why);
                }
                Screen::Main => {
                    let mut form = LoginForm::default();
                    form.server.set(&s.server);
                    form.field = 1;
                    form.error = Some(why);
                    s.screen = Screen::Login(Box::new(form));
                }
            }
        }
        KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
            s.quit = true;
            cmds.push(Cmd::Quit);
        }
        _ => {}
    }
}

fn login_key(s: &mut State, k: KeyEvent, cmds: &mut Vec<Cmd>) {
    let Screen::Login(f) = &mut s.screen else {
        return;
    };
    let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
    match k.code {
        KeyCode::Char('c') if ctrl => {
            s.quit = true;
            cmds.push(Cmd::Quit);
        }
        KeyCode::Char('t') if ctrl => {
            f.register = !f.register;
            f.error = None;
            f.field = f.field.min(f.fields() - 1);
        }
        KeyCode::Esc if f.busy => {
            f.busy = false;
            f.error = Some("cancelled".into());
            cmds.push(Cmd::Disconnect);
        }
        KeyCode::Tab | KeyCode::Down => f.field = (f.field + 1) % f.fields(),
        KeyCode::BackTab | KeyCode::Up => f.field = (f.field + f.fields() - 1) % f.fields(),
        // The invitation is optional: Enter on the second password submits (Tab reaches it).
        KeyCode::Enter if f.field + 1 < f.fields() && !(f.register && f.field == 3) => {
            f.error = None;
            f.field += 1;
        }
        KeyCode::Enter => {
            if f.busy {
                return;
            }
            let server = f.server.text().trim().to_owned();
            let name = nfc(f.name.text().trim());
            let password = f.password.text().to_owned();
            if server.is_empty() || name.is_empty() || password.is_empty() {
                f.error = Some("server, name and password are all needed".into());
                return;
            }
            if f.register && f.confirm.text() != password {
                // A typo in a password nobody can see would lock the new account out.
                f.error = Some("the two passwords differ: type it again".into());
                f.confirm.set("");
                f.field = 3;
                return;
            }
            f.busy = true;
            f.error = None;
            s.server = server.clone();
            let auth = if f.register {
                Auth::Register {
                    name: name.clone(),
                    password,
                    invite: f.invite.text().trim().to_owned(),
                }
            } else {
                Auth::Login {
                    name: name.clone(),
                    password,
                }
            };
            cmds.push(Cmd::Connect { server, auth, name });
        }
        _ => {
            if !f.busy {
                edit_line(f.field_mut(), &k);
            }
        }
    }
}

fn main_key(s: &mut State, k: KeyEvent, cmds: &mut Vec<Cmd>) {
    if s.popup.is_some() {
        popup_key(s, k, cmds);
        return;
    }
    let action = s.settings.keymap.action(&k);
    if !matches!(action, Some(Action::Complete | Action::CompletePrev)) {
        // Any other key accepts the completion shown.
        s.completion = None;
    }
    if s.find.is_some() && super::find::key(s, &k, cmds) {
        return;
    }
    if s.pick.is_some() && action != Some(Action::Pick) && super::pick::key(s, &k, cmds) {
        return;
    }
    if s.rsearch.is_some() && reverse_search_key(s, &k, action) {
        return;
    }
    if s.normal_mode && normal_key(s, &k, cmds) {
        return;
    }
    let Some(action) = action else {
        disarm_quit(s);
        if let Some(c) = typed_char(&k) {
            s.composer.insert(c.encode_utf8(&mut [0; 4]));
            s.history_pos = None;
            typing(s, cmds);
        }
        return;
    };
    act(s, action, cmds);
}

/// What a keymap action does on the main screen, whichever key asked for it.
fn act(s: &mut State, action: Action, cmds: &mut Vec<Cmd>) {
    if action != Action::Interrupt {
        disarm_quit(s);
    }
    match action {
        Action::Send => submit(s, cmds),
        Action::Newline
        | Action::Left
        | Action::Right
        | Action::WordLeft
        | Action::WordRight
        | Action::LineStart
        | Action::LineEnd
        | Action::Backspace
        | Action::Delete
        | Action::KillWord
        | Action::KillToStart
        | Action::KillToEnd
        | Action::Yank
        | Action::Undo => edit(&mut s.composer, action),
        // Up on an empty composer edits one's last message (as in Slack, Discord); the sent
        // history is still there when there is nothing to edit, and through Ctrl-R.
        Action::HistoryPrev
            if s.composer.is_empty()
                && s.editing.is_none()
                && super::amend::start_edit(s, true) => {}
        Action::HistoryPrev | Action::HistoryNext => history(s, action == Action::HistoryPrev),
        Action::ReverseSearch => {
            let original = s.composer.text().to_owned();
            s.rsearch = Some((String::new(), None, original));
        }
        Action::Find => super::find::start(s, "", cmds),
        Action::Pick => super::pick::start(s),
        Action::Complete => super::complete::tab(s, false),
        Action::CompletePrev => super::complete::tab(s, true),
        Action::NextThread => step_thread(s, true, cmds),
        Action::PrevThread => step_thread(s, false, cmds),
        Action::NextUnread => next_unread(s, cmds),
        Action::ScrollUp => scroll_by(s, true, None, cmds),
        Action::ScrollDown => scroll_by(s, false, None, cmds),
        Action::ScrollBottom => scroll_bottom(s, cmds),
        Action::ScrollTop => scroll_by(s, true, Some(usize::MAX / 2), cmds),
        Action::LinesUp => scroll_by(s, true, Some(3), cmds),
        Action::LinesDown => scroll_by(s, false, Some(3), cmds),
        Action::FirstUnread => super::actions::first_unread(s, cmds),
        Action::LastThread => match s.prev_selected.filter(|id| s.thread(*id).is_some()) {
            Some(id) => select(s, id, cmds),
            None => s.notice("no other conversation shown yet"),
        },
        Action::Switcher => open_popup(
            s,
            Popup::Switcher {
                query: Editor::new(),
                sel: 0,
            },
            cmds,
        ),
        Action::Help => open_popup(s, Popup::Help { scroll: 0 }, cmds),
        Action::Requests => open_popup(s, Popup::Requests { sel: 0 }, cmds),
        Action::AddFriend => open_popup(
            s,
            Popup::AddFriend {
                query: Editor::new(),
                results: Vec::new(),
                sel: 0,
                searched: String::new(),
            },
            cmds,
        ),
        Action::Group => open_popup(
            s,
            Popup::Group {
                name: Editor::new(),
                join: false,
            },
            cmds,
        ),
        Action::Members => members_popup(s, cmds),
        Action::SearchAll => super::search_all::open(s, None, cmds),
        Action::Retry => retry(s, cmds),
        Action::DeleteFailed => delete_failed(s, cmds),
        Action::Cancel => cancel(s),
        Action::Interrupt => interrupt(s, cmds),
        Action::Thread1
        | Action::Thread2
        | Action::Thread3
        | Action::Thread4
        | Action::Thread5
        | Action::Thread6
        | Action::Thread7
        | Action::Thread8
        | Action::Thread9 => {
            if let Some(i) = action.thread_index() {
                select_index(s, i, cmds);
            }
        }
        Action::Redraw => cmds.push(Cmd::Redraw),
        Action::Suspend => cmds.push(Cmd::Suspend),
    }
}

/// Enter: a `/command` runs, anything else is sent (`//` sends a leading slash).
fn submit(s: &mut State, cmds: &mut Vec<Cmd>) {
    if s.editing.is_some() {
        super::amend::submit_edit(s, cmds);
        return;
    }
    let text = s.composer.text().to_owned();
    if text.trim().is_empty() {
        return;
    }
    if text.starts_with('/') && !text.starts_with("//") {
        s.composer.take();
        remember(s, &text);
        run_command(s, &text, cmds);
    } else {
        let text = text.strip_prefix('/').map_or(text.clone(), str::to_owned);
        if send_text(s, text.clone(), cmds) {
            s.composer.take();
            remember(s, &text);
        }
    }
}

/// The thread with unread messages to read next: mentions first, then the newest.
fn next_unread(s: &mut State, cmds: &mut Vec<Cmd>) {
    let next = s
        .threads
        .iter()
        .filter(|t| Some(t.id) != s.selected)
        .max_by_key(|t| (t.mentions > 0, t.unread > 0, t.activity_id))
        .filter(|t| t.unread > 0)
        .map(|t| t.id);
    match next {
        Some(id) => select(s, id, cmds),
        None => s.notice("no unread messages"),
    }
}

fn cancel(s: &mut State) {
    // Esc never touches the draft: it only closes things (and, in the vim preset, enters
    // normal mode; a notice is not a thing to close first, or the keys after the Esc would
    // be typed into the draft).
    if s.settings.keymap.vim && s.current().is_some_and(|t| t.search.is_none()) {
        s.normal_mode = true;
    }
    s.notice = None;
    if super::amend::cancel_edit(s) {
        return;
    }
    if s.replying
        .as_ref()
        .is_some_and(|r| Some(r.thread) == s.selected)
        && super::relations::cancel_reply(s)
    {
        return;
    }
    if let Some(t) = s.current_mut() {
        t.search = None;
    }
}

/// Another key after one Ctrl-C: no quit, and the notice asking for a second one goes.
fn disarm_quit(s: &mut State) {
    if std::mem::take(&mut s.quit_armed)
        && s.notice
            .as_ref()
            .is_some_and(|n| n.0.ends_with("again to quit"))
    {
        s.notice = None;
    }
}

/// Ctrl-C: clears the composer; on an empty one, asks to be pressed again, then quits.
fn interrupt(s: &mut State, cmds: &mut Vec<Cmd>) {
    if !s.composer.is_empty() {
        // Undo brings it back.
        s.composer.set("");
    } else if s.quit_armed {
        s.quit = true;
        cmds.push(Cmd::Quit);
    } else {
        s.quit_armed = true;
        s.notice(format!(
            "press {} again to quit",
            s.settings.keymap.first(Action::Interrupt)
        ));
    }
}

/// The newest sent message at or before `from` containing `q`.
fn find_sent(s: &State, q: &str, from: usize) -> Option<usize> {
    let from = from.min(s.sent_history.len());
    s.sent_history[..from].iter().rposition(|h| h.contains(q))
}

/// Keys while Ctrl-R search is on. Returns true when the key was used; any other key ends the
/// search (keeping the found text) and then does what it normally does.
fn reverse_search_key(s: &mut State, k: &KeyEvent, action: Option<Action>) -> bool {
    let Some((mut q, pos, original)) = s.rsearch.take() else {
        return false;
    };
    let mut pos = pos;
    if let Some(c) = typed_char(k) {
        q.push(c);
        pos = find_sent(s, &q, pos.map_or(usize::MAX, |p| p + 1));
    } else if k.code == KeyCode::Backspace {
        q.pop();
        pos = find_sent(s, &q, usize::MAX);
    } else if action == Some(Action::ReverseSearch) {
        if let Some(p) = pos {
            pos = find_sent(s, &q, p).or(Some(p));
        }
    } else if k.code == KeyCode::Esc {
        s.composer.set(&original);
        return true;
    } else {
        return false;
    }
    if let Some(p) = pos {
        let text = s.sent_history[p].clone();
        s.composer.set(&text);
    }
    s.rsearch = Some((q, pos, original));
    true
}

/// Keys of the vim preset's normal mode; false lets the key go to the keymap.
fn normal_key(s: &mut State, k: &KeyEvent, cmds: &mut Vec<Cmd>) -> bool {
    let Some(c) = typed_char(k) else {
        if k.code == KeyCode::Enter {
            s.normal_mode = false;
            return true;
        }
        return false;
    };
    match c {
        'i' => s.normal_mode = false,
        'a' => {
            s.normal_mode = false;
            s.composer.right();
        }
        'A' => {
            s.normal_mode = false;
            s.composer.end();
        }
        'I' => {
            s.normal_mode = false;
            s.composer.home();
        }
        'j' => scroll_by(s, false, Some(1), cmds),
        'k' => scroll_by(s, true, Some(1), cmds),
        'G' => {
            if let Some(t) = s.current_mut() {
                t.scroll = 0;
                t.new_below = 0;
            }
        }
        'g' => scroll_by(s, true, Some(usize::MAX / 2), cmds),
        'n' => super::actions::first_unread(s, cmds),
        // The actions themselves, not the keys they are bound to: those can be rebound.
        'J' => act(s, Action::NextThread, cmds),
        'K' => act(s, Action::PrevThread, cmds),
        '/' => {
            s.normal_mode = false;
            super::find::start(s, "", cmds);
        }
        ':' => {
            s.normal_mode = false;
            if s.composer.is_empty() {
                s.composer.set("/");
            }
        }
        _ => {}
    }
    true
}
