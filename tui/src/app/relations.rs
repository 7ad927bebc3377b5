//! Replies and reactions in the terminal client (protocol 1.7). A reply: pick a message
//! (Alt-Up) and press `a`; the separator says whom the draft answers until Enter sends it or
//! Esc lets it go. A reaction: pick a message and press `+`, then 1-8 for one of the usual
//! emoji, or `/react EMOJI` for any (on the picked message, else the newest); the same one
//! again takes it back. Counts show under the message, one's own highlighted.

use confab_wire::pb;

use super::layout::Target;
use super::msg::{Cmd, Op};
use super::state::State;
use crate::client::relations;

/// The choices after `+`, by number.
pub const QUICK: [&str; 8] = ["👍", "❤\u{fe0f}", "😂", "🎉", "😮", "😢", "🙏", "👀"];

/// The message a draft answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Replying {
    pub thread: u64,
    pub message_id: u64,
    pub quote: pb::Quote,
}

/// A message waiting for `+`'s number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reacting {
    pub thread: u64,
    pub message_id: u64,
}

/// The picked message, if it is a stored text message that is not recalled.
fn picked_message(s: &State) -> Option<(u64, &pb::ChatMessage)> {
    let t = s.current()?;
    let Some(Target::Seq(seq)) = s.pick else {
        return None;
    };
    let m = t.messages.get(&seq)?;
    (m.kind == pb::MessageKind::Text as i32 && !m.recalled).then_some((t.id, m))
}

/// `a` on a picked message: the draft answers it.
pub(super) fn start_reply(s: &mut State) {
    if !s.current().is_some_and(|t| t.can_send) {
        s.error("you can no longer write here");
        return;
    }
    let Some((thread, m)) = picked_message(s) else {
        s.error("only a sent message that was not recalled can be answered");
        return;
    };
    let replying = Replying {
        thread,
        message_id: m.message_id,
        quote: relations::quote_of(m),
    };
    s.replying = Some(replying);
    s.pick = None;
}

/// Esc: the draft no longer answers anything (the text stays).
pub(super) fn cancel_reply(s: &mut State) -> bool {
    s.replying.take().is_some()
}

/// The message the next send in `thread` answers, taken (a reply is for one message).
pub(super) fn take_reply_to(s: &mut State, thread: u64) -> Option<pb::Quote> {
    match &s.replying {
        Some(r) if r.thread == thread => s.replying.take().map(|r| r.quote),
        _ => None,
    }
}

/// The separator's label while a draft answers a message.
pub fn replying_label(s: &State) -> Option<String> {
    let r = s
        .replying
        .as_ref()
        .filter(|r| Some(r.thread) == s.selected)?;
    // Short enough that the way out stays on the separator at 80 columns.
    let quote = crate::text::truncate(
        &super::export::quote_line(&r.quote),
        40,
        s.settings.ambiguous,
    );
    Some(format!("replying to {quote} (Esc: not a reply)"))
}

/// The separator's label while `+` waits for its number.
pub fn reacting_label(s: &State) -> Option<String> {
    s.reacting?;
    let choices: Vec<String> = QUICK
        .iter()
        .enumerate()
        .map(|(i, e)| format!("{} {e}", i + 1))
        .collect();
    Some(format!("react: {}", choices.join("  ")))
}

/// `+` on a picked message: the next key picks the emoji.
pub(super) fn start_react(s: &mut State) {
    match picked_message(s) {
        Some((thread, m)) => {
            s.reacting = Some(Reacting {
                thread,
                message_id: m.message_id,
            });
        }
        None => s.error("only a sent message that was not recalled takes a reaction"),
    }
}

/// The key after `+`: 1-8 reacts, Esc lets it go (the message stays picked); any other key
/// ends the pick and does what it always does (a word typed goes to the composer). True when
/// the key was used here.
pub(super) fn react_key(
    s: &mut State,
    k: &crossterm::event::KeyEvent,
    cmds: &mut Vec<Cmd>,
) -> bool {
    use crossterm::event::KeyCode;
    let Some(r) = s.reacting.take() else {
        return false;
    };
    let quick = match k.code {
        KeyCode::Char(c) => c
            .to_digit(10)
            .and_then(|d| (d as usize).checked_sub(1))
            .and_then(|i| QUICK.get(i)),
        KeyCode::Esc => return true,
        _ => None,
    };
    let Some(e) = quick else {
        s.pick = None;
        return false;
    };
    s.pick = None;
    toggle(s, r.thread, r.message_id, e, cmds);
    true
}

/// `/react EMOJI`: on the picked message, else the newest text message here.
pub(super) fn react_command(s: &mut State, emoji: &str, cmds: &mut Vec<Cmd>) {
    use unicode_segmentation::UnicodeSegmentation;
    let emoji = confab_wire::emoji::canonical(emoji.trim());
    if emoji.graphemes(true).count() != 1 {
        s.error("/react takes one emoji, e.g. /react 👍");
        return;
    }
    let target = picked_message(s)
        .map(|(t, m)| (t, m.message_id))
        .or_else(|| {
            let t = s.current()?;
            t.messages
                .values()
                .rev()
                .find(|m| m.kind == pb::MessageKind::Text as i32 && !m.recalled)
                .map(|m| (t.id, m.message_id))
        });
    match target {
        Some((thread, id)) => {
            s.pick = None;
            toggle(s, thread, id, &emoji, cmds);
        }
        None => s.error("no message to react to here"),
    }
}

/// Adds the reaction, or takes it back when it is already mine.
fn toggle(s: &mut State, thread: u64, message_id: u64, emoji: &str, cmds: &mut Vec<Cmd>) {
    // The form the server stores, so `mine` compares like with like.
    let emoji = confab_wire::emoji::canonical(emoji);
    // One change of a reaction at a time: a second press before the first is answered would
    // be decided on the old state (and undo nothing, or the first).
    let now = s.now_ms;
    s.reacts_in_flight
        .retain(|(_, _, at)| now - at < IN_FLIGHT_MS);
    if s.reacts_in_flight
        .iter()
        .any(|(id, e, _)| *id == message_id && *e == emoji)
    {
        s.notice(format!("still reacting {emoji}…"));
        return;
    }
    s.reacts_in_flight.push((message_id, emoji.clone(), now));
    let mine = s
        .thread(thread)
        .and_then(|t| t.messages.values().find(|m| m.message_id == message_id))
        .is_some_and(|m| m.reactions.iter().any(|r| r.emoji == emoji && r.mine));
    cmds.push(Cmd::Op(Op::React {
        thread,
        message_id,
        emoji: emoji.to_owned(),
        remove: mine,
    }));
}

/// How long a reaction change may wait for its answer before another is allowed.
const IN_FLIGHT_MS: i64 = 10_000;

/// The server answered a reaction change (or said it already was so).
pub(super) fn answered(s: &mut State, message_id: u64, emoji: &str) {
    s.reacts_in_flight
        .retain(|(id, e, _)| !(*id == message_id && e == emoji));
}

/// The counts under a message, as pieces of a row: `👍 3`, and whether it is one's own.
pub fn pieces(m: &pb::ChatMessage) -> Vec<(String, bool)> {
    m.reactions
        .iter()
        .filter(|r| r.count > 0)
        .map(|r| (format!("{} {}", r.emoji, r.count), r.mine))
        .collect()
}
