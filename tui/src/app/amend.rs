//! Changing one's own messages: edit (Up on an empty composer, or `/edit` alone, puts the last
//! one in the composer to change; Enter saves, Esc cancels; `/edit TEXT` at once) and recall,
//! both checked against the server's window so the refusal can say how long it is.

use confab_wire::pb;

use super::msg::{Cmd, Op};
use super::state::State;
use crate::text::editor::Editor;
use crate::text::nfc;

/// One's message being edited in the composer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Editing {
    pub thread: u64,
    pub message_id: u64,
    /// Its text before the edit (an unchanged Enter changes nothing).
    pub original: String,
}

/// One's newest text message in the shown thread, not recalled: (thread, id, text, sent at).
fn last_own(s: &State) -> Option<(u64, u64, String, i64)> {
    let me = s.my_id();
    let t = s.current()?;
    t.messages.values().rev().find_map(|m| {
        (m.kind == pb::MessageKind::Text as i32
            && !m.recalled
            && m.sender.as_ref().is_some_and(|u| u.user_id == me))
        .then(|| (t.id, m.message_id, m.body.clone(), m.server_ts_ms))
    })
}

/// Whether a message sent at `sent_ms` is still in the server's window (0: not known, the
/// server decides).
fn in_window(s: &State, sent_ms: i64) -> bool {
    let window = i64::from(s.recall_window_ms);
    window == 0 || s.now_ms - sent_ms <= window
}

fn too_late(s: &mut State, what: &str) {
    s.error(format!(
        "too late to {what}: messages can be changed for {} after sending",
        duration_words(i64::from(s.recall_window_ms))
    ));
}

/// "2 minutes", "90 seconds", "1 hour".
fn duration_words(ms: i64) -> String {
    let secs = ms / 1000;
    let (n, unit) = if secs % 3600 == 0 && secs >= 3600 {
        (secs / 3600, "hour")
    } else if secs % 60 == 0 && secs >= 60 {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// `allowed`: within the window, else the refusal that says how long it is.
pub(super) fn allowed(s: &mut State, sent_ms: i64, what: &str) -> bool {
    if in_window(s, sent_ms) {
        return true;
    }
    too_late(s, what);
    false
}

/// Puts one of one's messages (picked) in the composer to edit.
pub(super) fn start_edit_of(s: &mut State, thread: u64, message_id: u64, sent_ms: i64) {
    if !allowed(s, sent_ms, "edit") {
        return;
    }
    let Some(body) = s
        .thread(thread)
        .and_then(|t| t.messages.values().find(|m| m.message_id == message_id))
        .map(|m| m.body.clone())
    else {
        return;
    };
    s.composer.set(&body);
    s.editing = Some(Editing {
        thread,
        message_id,
        original: body,
    });
}

/// Puts one's last message in the composer to edit. `quiet`: Up on an empty composer, which
/// falls back to the sent history when there is nothing to edit (false then, nothing said).
pub(super) fn start_edit(s: &mut State, quiet: bool) -> bool {
    let Some((thread, message_id, body, sent)) = last_own(s) else {
        if !quiet {
            s.error("nothing of yours to edit here");
        }
        return false;
    };
    if !in_window(s, sent) {
        if !quiet {
            too_late(s, "edit");
        }
        return false;
    }
    s.composer.set(&body);
    s.editing = Some(Editing {
        thread,
        message_id,
        original: body,
    });
    true
}

/// `/edit TEXT` edits one's last message at once; `/edit` alone edits it in the composer.
pub(super) fn edit_command(s: &mut State, text: Option<String>, cmds: &mut Vec<Cmd>) {
    let Some(text) = text else {
        start_edit(s, false);
        return;
    };
    let Some((thread, id, _, sent)) = last_own(s) else {
        s.error("nothing of yours to edit here");
        return;
    };
    if !in_window(s, sent) {
        too_late(s, "edit");
    } else if !super::actions::too_long(s, &text) {
        cmds.push(Cmd::Op(Op::Edit(thread, id, nfc(&text))));
    }
}

/// Enter while editing: the new text goes to the server; unchanged, nothing does.
pub(super) fn submit_edit(s: &mut State, cmds: &mut Vec<Cmd>) {
    let Some(e) = s.editing.clone() else { return };
    let text = s.composer.text().to_owned();
    if text.trim().is_empty() {
        s.error("an edit cannot be empty: /recall takes a message back");
        return;
    }
    if super::actions::too_long(s, &text) {
        return;
    }
    s.editing = None;
    s.composer = Editor::new();
    if text != e.original {
        cmds.push(Cmd::Op(Op::Edit(e.thread, e.message_id, nfc(&text))));
    }
}

/// Esc (or another conversation) while editing: nothing changes, the composer empties.
pub(super) fn cancel_edit(s: &mut State) -> bool {
    if s.editing.take().is_some() {
        s.composer = Editor::new();
        return true;
    }
    false
}

pub(super) fn recall_last(s: &mut State, cmds: &mut Vec<Cmd>) {
    let Some((thread, id, _, sent)) = last_own(s) else {
        s.error("nothing of yours to recall here");
        return;
    };
    if in_window(s, sent) {
        cmds.push(Cmd::Op(Op::Recall(thread, id)));
    } else {
        too_late(s, "recall");
    }
}
