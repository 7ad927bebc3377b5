//! Picking a message (Alt-Up): a cursor over the shown conversation's messages, newest first,
//! moved with Up/Down, and what can be done with the one picked: copy its text (`y`, through
//! the terminal's clipboard, OSC 52), edit (`e`) or recall (`r`) one's own, delete a failed one
//! (`d`), answer it (`a`), react to it (`+` then 1-8; app/relations.rs). Esc or Enter puts
//! the cursor away.

use crossterm::event::{KeyCode, KeyEvent};

use super::layout::{self, Row, Target};
use super::msg::{Cmd, Op};
use super::state::State;

/// Alt-Up: the newest message is picked, or the one before the picked one.
pub(super) fn start(s: &mut State) {
    if s.pick.is_some() {
        step(s, true);
        return;
    }
    let Some(t) = s.current() else { return };
    match layout::targets(s, t).last().copied() {
        Some(target) => {
            s.pick = Some(target);
            show(s);
        }
        None => s.notice("no message to pick here"),
    }
}

fn step(s: &mut State, back: bool) {
    let Some(t) = s.current() else { return };
    let all = layout::targets(s, t);
    let Some(i) = s.pick.and_then(|p| all.iter().position(|x| *x == p)) else {
        s.pick = all.last().copied();
        show(s);
        return;
    };
    if back && i == 0 {
        return;
    }
    if !back && i + 1 == all.len() {
        // Past the newest: the cursor goes away, the view follows new messages again.
        s.pick = None;
        super::actions::scroll_bottom_quiet(s);
        return;
    }
    s.pick = Some(all[if back { i - 1 } else { i + 1 }]);
    show(s);
}

/// Scrolls so the picked message's first row is on screen (unchanged when it already is).
pub(super) fn show(s: &mut State) {
    let h = layout::chat_height(s);
    let width = layout::chat_width(s.size.0);
    let Some(t) = s.current() else { return };
    let rows = layout::chat_rows(s, t, width, usize::MAX).rows;
    let Some(first) = rows
        .iter()
        .position(|r| matches!(r, Row::Text { picked: true, .. }))
    else {
        return;
    };
    let last = rows.len()
        - 1
        - rows
            .iter()
            .rev()
            .position(|r| matches!(r, Row::Text { picked: true, .. }))
            .unwrap_or(0);
    let n = rows.len();
    let scroll = t.scroll;
    // On screen: rows n-h-scroll ..= n-1-scroll.
    let top = n.saturating_sub(h + scroll);
    let bottom = n - 1 - scroll.min(n - 1);
    // Scrolled up, the bottom row holds the "more below" line (ui/chat.rs): one row less.
    let hidden_bottom = usize::from(scroll > 0);
    let scroll = if first < top {
        n.saturating_sub(first + h)
    } else if last + hidden_bottom > bottom {
        match n - 1 - last {
            0 => 0,
            below => below - 1,
        }
    } else {
        scroll
    };
    let max = n.saturating_sub(h);
    if let Some(t) = s.current_mut() {
        t.scroll = scroll.min(max);
    }
}

/// One of my stored messages: (thread, message id, sent at).
type Mine = (u64, u64, i64);

/// Why the picked message cannot be edited or recalled (`what`), if it cannot.
fn not_mine_why(s: &State, what: &str) -> String {
    let Some(t) = s.current() else {
        return String::new();
    };
    match s.pick {
        Some(Target::Pending(_)) => {
            format!("it is not sent yet: nothing to {what} (d deletes a failed one)")
        }
        Some(Target::Seq(seq)) if t.messages.get(&seq).is_some_and(|m| m.recalled) => {
            format!("it was recalled: nothing to {what}")
        }
        _ => format!("only your own messages can be {what}ed"),
    }
}

/// The picked message's text, and whether it is mine.
fn picked(s: &State) -> Option<(String, Option<Mine>)> {
    let t = s.current()?;
    match s.pick? {
        Target::Seq(seq) => {
            let m = t.messages.get(&seq)?;
            let mine = m.sender.as_ref().is_some_and(|u| u.user_id == s.my_id());
            let body = if m.recalled {
                String::new()
            } else {
                m.body.clone()
            };
            Some((body, mine.then_some((t.id, m.message_id, m.server_ts_ms))))
        }
        Target::Pending(key) => {
            let p = t.pending.iter().find(|p| p.key == key)?;
            Some((p.body.clone(), None))
        }
    }
}

/// A key while a message is picked; true when it was used here. Others put the cursor away
/// and do what they always do.
pub(super) fn key(s: &mut State, k: &KeyEvent, cmds: &mut Vec<Cmd>) -> bool {
    let alt = k.modifiers.contains(crossterm::event::KeyModifiers::ALT);
    if s.reacting.is_some() {
        return super::relations::react_key(s, k, cmds);
    }
    // Recalling and blocking cannot be undone from here: a key typed by mistake (a word
    // started while a message is picked) only asks.
    let confirmed = s.pick_confirm.take();
    let mine = matches!(picked(s), Some((text, Some(_))) if !text.is_empty());
    if let KeyCode::Char(c @ ('r' | 'b')) = k.code
        && !alt
        && confirmed != Some(c)
        && (c == 'r') == mine
    {
        s.pick_confirm = Some(c);
        return true;
    }
    match k.code {
        KeyCode::Up | KeyCode::Char('k') => step(s, true),
        KeyCode::Down | KeyCode::Char('j') => step(s, false),
        KeyCode::Esc | KeyCode::Enter => s.pick = None,
        KeyCode::Char('y' | 'c') if !alt => copy(s, cmds),
        KeyCode::Char('e') if !alt => match picked(s) {
            Some((text, Some((thread, id, sent)))) if !text.is_empty() => {
                s.pick = None;
                super::amend::start_edit_of(s, thread, id, sent);
            }
            _ => {
                let why = not_mine_why(s, "edit");
                s.error(why);
            }
        },
        KeyCode::Char('r') if !alt => match picked(s) {
            Some((text, Some((thread, id, sent)))) if !text.is_empty() => {
                if super::amend::allowed(s, sent, "recall") {
                    s.pick = None;
                    cmds.push(Cmd::Op(Op::Recall(thread, id)));
                }
            }
            _ => {
                let why = not_mine_why(s, "recall");
                s.error(why);
            }
        },
        KeyCode::Char('d' | 'x') | KeyCode::Delete if !alt => delete(s, cmds),
        KeyCode::Char('b') if !alt => block_sender(s, cmds),
        KeyCode::Char('a') if !alt => super::relations::start_reply(s),
        KeyCode::Char('+') if !alt => super::relations::start_react(s),
        _ => {
            s.pick = None;
            return false;
        }
    }
    true
}

/// The status line while a message is picked: what can be done with this one.
pub fn hint(s: &State) -> String {
    match s.pick_confirm {
        Some('r') => return "press r again to recall it (any other key: no)".to_owned(),
        Some('b') => return "press b again to block its sender (any other key: no)".to_owned(),
        _ => {}
    }
    if s.reacting.is_some() {
        return "react: 1-8 (Esc: no)".to_owned();
    }
    let keys = match (picked(s), s.pick) {
        (_, Some(Target::Pending(_))) => "y copy  d delete",
        (Some((text, _)), _) if text.is_empty() => "b block",
        (Some((_, Some(_))), _) => "a reply  + react  y copy  e edit  r recall",
        _ => "a reply  + react  y copy  b block",
    };
    format!("picked: {keys}  Up/Down move  Esc done")
}

/// `b`: blocks whoever wrote the picked message (`/unblock NAME` undoes it).
fn block_sender(s: &mut State, cmds: &mut Vec<Cmd>) {
    let me = s.my_id();
    let sender = match (s.current(), s.pick) {
        (Some(t), Some(Target::Seq(seq))) => t.messages.get(&seq).and_then(|m| m.sender.clone()),
        _ => None,
    };
    match sender {
        Some(u) if u.user_id != me && !u.name.is_empty() => {
            s.pick = None;
            cmds.push(Cmd::Op(Op::Block(u.name, true)));
        }
        Some(u) if u.user_id == me => s.error("that is your own message"),
        _ => s.error("nobody to block here"),
    }
}

/// `y`: the text goes to the terminal's clipboard (OSC 52; tmux passes it on with
/// `set-clipboard on`).
fn copy(s: &mut State, cmds: &mut Vec<Cmd>) {
    match picked(s) {
        Some((text, _)) if !text.is_empty() => {
            let n = text.chars().count();
            cmds.push(Cmd::Copy(text));
            s.notice(format!("copied {n} characters"));
        }
        _ => s.error("nothing to copy"),
    }
}

/// `d` on a failed message of mine: it is deleted (it was never sent).
fn delete(s: &mut State, cmds: &mut Vec<Cmd>) {
    let Some(Target::Pending(key)) = s.pick else {
        s.error("only a message that failed to send can be deleted (r recalls yours)");
        return;
    };
    let Some(t) = s.current_mut() else { return };
    let Some(i) = t
        .pending
        .iter()
        .position(|p| p.key == key && p.state.failed())
    else {
        s.error("only a message that failed to send can be deleted");
        return;
    };
    let p = t.pending.remove(i);
    if let Some(local_id) = p.local_id {
        cmds.push(Cmd::Discard { local_id });
    }
    s.pick = None;
    s.notice("deleted the unsent message");
}
