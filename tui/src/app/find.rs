//! Finding text in the shown conversation as you type (Ctrl-S, or `/search TEXT`), like
//! weechat's Ctrl-R: matches are highlighted, the view moves to the newest one, Up/Down (or
//! Ctrl-S again) step to older/newer ones with a count, Enter stays there, Esc goes back to the
//! newest message. Loaded messages are searched as you type (past the oldest, older pages are
//! loaded); Enter with no match asks the server's search for this conversation.

use std::ops::Range;

use crossterm::event::{KeyCode, KeyEvent};

use super::input::{edit_line, typed_char};
use super::layout::{self, Row};
use super::msg::Cmd;
use super::state::{State, ThreadView};
use crate::text::editor::Editor;

/// A search in progress.
#[derive(Debug, Clone, Default)]
pub struct Find {
    pub query: Editor,
    /// The seq of the match shown, if any.
    pub at: Option<u64>,
    /// Older pages were asked for because the search reached the oldest loaded message.
    pub loading: bool,
}

/// The byte ranges of `text` holding `query`, case-insensitively (ASCII and CJK alike).
pub fn ranges(text: &str, query: &str) -> Vec<Range<usize>> {
    if query.is_empty() {
        return Vec::new();
    }
    let q = query.to_lowercase();
    let (low, at) = super::highlight::lowered(text);
    low.match_indices(&q)
        .map(|(i, _)| at[i]..at[i + q.len()])
        .filter(|r| !r.is_empty())
        .collect()
}

/// The seqs of the loaded messages that hold the query, oldest first.
pub fn hits(t: &ThreadView, query: &str) -> Vec<u64> {
    if query.is_empty() {
        return Vec::new();
    }
    t.messages
        .values()
        .filter(|m| m.kind == confab_wire::pb::MessageKind::Text as i32 && !m.recalled)
        .filter(|m| !ranges(&m.body, query).is_empty())
        .map(|m| m.seq)
        .collect()
}

/// Ctrl-S or `/search TEXT`: starts a search (with `initial` typed).
pub(super) fn start(s: &mut State, initial: &str, cmds: &mut Vec<Cmd>) {
    if s.current().is_none() {
        s.error("no conversation to search");
        return;
    }
    let mut query = Editor::new();
    query.set(initial);
    s.find = Some(Find {
        query,
        ..Default::default()
    });
    newest(s, cmds);
}

/// What the status line says while searching.
pub fn status(s: &State) -> Option<String> {
    let f = s.find.as_ref()?;
    let t = s.current()?;
    let q = f.query.text();
    let all = hits(t, q);
    let more = if t.oldest_done { "" } else { " loaded" };
    let count = match f.at.and_then(|at| all.iter().position(|x| *x == at)) {
        _ if q.is_empty() => "type to find".to_owned(),
        Some(i) => format!("{}/{}{more}", i + 1, all.len()),
        None if f.loading => "looking further back…".to_owned(),
        // Short enough for 80 columns: what to do next is the point.
        None => {
            return Some(format!(
                "find: {q}  no match loaded: Enter asks the server, Esc back"
            ));
        }
    };
    Some(format!(
        "find: {q}  {count}  (Up older, Down newer, Enter stay, Esc back)"
    ))
}

/// The query changed: the newest match.
fn newest(s: &mut State, cmds: &mut Vec<Cmd>) {
    let Some(t) = s.current() else { return };
    let q = s
        .find
        .as_ref()
        .map(|f| f.query.text().to_owned())
        .unwrap_or_default();
    let last = hits(t, &q).last().copied();
    if let Some(f) = s.find.as_mut() {
        f.at = last;
    }
    match last {
        Some(seq) => show(s, seq),
        None if !q.is_empty() => older_pages(s, cmds),
        None => {}
    }
}

/// A step to an older (`back`) or newer match.
fn step(s: &mut State, back: bool, cmds: &mut Vec<Cmd>) {
    let Some(t) = s.current() else { return };
    let Some(f) = s.find.as_ref() else { return };
    let all = hits(t, f.query.text());
    let next = match f.at {
        Some(at) if back => all.iter().rev().find(|x| **x < at).copied(),
        Some(at) => all.iter().find(|x| **x > at).copied(),
        None => all.last().copied(),
    };
    match next {
        Some(seq) => {
            if let Some(f) = s.find.as_mut() {
                f.at = Some(seq);
            }
            show(s, seq);
        }
        None if back => older_pages(s, cmds),
        None => {}
    }
}

/// No (older) match among the loaded messages: the next older page, if there is one.
fn older_pages(s: &mut State, cmds: &mut Vec<Cmd>) {
    let Some(t) = s.current_mut() else { return };
    if t.oldest_done || t.loading {
        return;
    }
    t.loading = true;
    let before = t.messages.keys().next().copied().unwrap_or(0);
    let id = t.id;
    cmds.push(Cmd::History {
        thread_id: id,
        before_seq: before,
    });
    if let Some(f) = s.find.as_mut() {
        f.loading = true;
    }
}

/// An older page arrived: a search that was waiting for it goes on (the newest match when there
/// was none, else the next older one).
pub(super) fn after_page(s: &mut State, thread_id: u64, cmds: &mut Vec<Cmd>) {
    let waiting = s.find.as_ref().is_some_and(|f| f.loading);
    if !waiting || s.selected != Some(thread_id) {
        return;
    }
    if let Some(f) = s.find.as_mut() {
        f.loading = false;
    }
    match s.find.as_ref().and_then(|f| f.at) {
        None => newest(s, cmds),
        Some(_) => step(s, true, cmds),
    }
}

/// Scrolls so the message `seq` is in the middle of the pane.
fn show(s: &mut State, seq: u64) {
    let h = layout::chat_height(s);
    let width = layout::chat_width(s.size.0);
    let Some(t) = s.current() else { return };
    let rows = layout::chat_rows(s, t, width, usize::MAX).rows;
    let Some(idx) = rows
        .iter()
        .position(|r| matches!(r, Row::Text { head: Some(hd), .. } if hd.seq == Some(seq)))
    else {
        return;
    };
    let max = rows.len().saturating_sub(h);
    let scroll = rows.len().saturating_sub(idx + 1 + h / 2).min(max);
    if let Some(t) = s.current_mut() {
        t.scroll = scroll;
    }
    if let Some(f) = s.find.as_mut() {
        f.loading = false;
    }
}

/// A key while searching. True when it was the search's; any other key ends the search
/// (staying where it is) and then does what it always does.
pub(super) fn key(s: &mut State, k: &KeyEvent, cmds: &mut Vec<Cmd>) -> bool {
    let ctrl_s = k.code == KeyCode::Char('s')
        && k.modifiers
            .contains(crossterm::event::KeyModifiers::CONTROL);
    match k.code {
        KeyCode::Esc => {
            s.find = None;
            super::actions::scroll_bottom(s, cmds);
        }
        KeyCode::Enter => {
            // Nothing among the loaded messages: the server searches the whole conversation.
            let ask = s
                .find
                .as_ref()
                .filter(|f| f.at.is_none() && !f.query.text().trim().is_empty())
                .map(|f| f.query.text().trim().to_owned());
            if let (Some(query), Some(thread)) = (ask, s.selected) {
                cmds.push(Cmd::Op(super::msg::Op::SearchThread { thread, query }));
            }
            s.find = None;
        }
        KeyCode::Up => step(s, true, cmds),
        _ if ctrl_s => step(s, true, cmds),
        KeyCode::Down => step(s, false, cmds),
        KeyCode::Backspace | KeyCode::Delete | KeyCode::Left | KeyCode::Right => {
            if let Some(f) = s.find.as_mut() {
                edit_line(&mut f.query, k);
            }
            newest(s, cmds);
        }
        _ if typed_char(k).is_some() => {
            if let Some(f) = s.find.as_mut() {
                edit_line(&mut f.query, k);
            }
            newest(s, cmds);
        }
        _ => {
            s.find = None;
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::ranges;

    #[test]
    fn ranges_are_case_insensitive_and_in_the_original_text() {
        let t = "Deploy at 十点, then DEPLOY again; 十点半";
        let got: Vec<&str> = ranges(t, "deploy").into_iter().map(|r| &t[r]).collect();
        assert_eq!(got, vec!["Deploy", "DEPLOY"]);
        let got: Vec<&str> = ranges(t, "十点").into_iter().map(|r| &t[r]).collect();
        assert_eq!(got, vec!["十点", "十点"]);
        assert!(ranges(t, "").is_empty());
        assert!(ranges("abc", "abcd").is_empty());
    }
}
