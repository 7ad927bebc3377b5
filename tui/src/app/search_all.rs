//! Searching every conversation on the server (F6, `/search-all`; protocol 1.6): a popup with
//! the hits, newest first, the matches highlighted; Enter shows the picked hit in its
//! conversation, loading older pages until it is there.

use confab_wire::pb;
use crossterm::event::{KeyCode, KeyEvent};

use super::actions::select;
use super::input::edit_line;
use super::layout::Target;
use super::msg::{Cmd, Op};
use super::state::{Popup, State};
use crate::text::editor::Editor;
use crate::text::nfc;

/// Older pages a jump loads at most to reach a hit (then it says how to see it instead).
const JUMP_PAGES: u32 = 40;

/// A hit being brought into view: its conversation and seq, and the pages loaded for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Jump {
    pub thread_id: u64,
    pub seq: u64,
    pages: u32,
}

/// The longest query the server takes, in bytes.
const MAX_QUERY: usize = 256;

/// Opens the popup, searching at once when `query` is given; F6 alone brings back the last
/// search as it was left.
pub(super) fn open(s: &mut State, query: Option<String>, cmds: &mut Vec<Cmd>) {
    if query.is_none()
        && let Some(last) = s.last_search.take()
    {
        s.popup = Some(*last);
        return;
    }
    let mut editor = Editor::new();
    let (searched, loading) = match query {
        Some(q) => {
            let q = nfc(q.trim());
            editor.set(&q);
            let asked = ask(&q, 0, cmds);
            (q, asked)
        }
        None => (String::new(), false),
    };
    s.popup = Some(Popup::Search {
        query: editor,
        hits: Vec::new(),
        sel: 0,
        searched,
        more: false,
        loading,
        error: None,
    });
}

/// Asks the server for a page, unless the query has no word to search for (the popup says
/// so); true when asked.
fn ask(q: &str, before: u64, cmds: &mut Vec<Cmd>) -> bool {
    if !q.chars().any(char::is_alphanumeric) {
        return false;
    }
    cmds.push(Cmd::Op(Op::SearchAll {
        query: q.to_owned(),
        before,
    }));
    true
}

/// The search failed (too long, offline): said in the popup, not as "nothing found".
pub(super) fn failed(s: &mut State, why: &str) -> bool {
    match &mut s.popup {
        Some(Popup::Search { loading, error, .. }) if *loading => {
            *loading = false;
            *error = Some(why.to_owned());
            true
        }
        _ => false,
    }
}

/// The popup closes: kept, for F6 to bring back.
pub(super) fn closing(s: &mut State, p: Popup) {
    s.last_search = Some(Box::new(p));
}

/// A page of hits arrived: shown if the popup still asks for that query.
pub(super) fn results(
    s: &mut State,
    query: &str,
    hits: Vec<pb::SearchHit>,
    more: bool,
    append: bool,
) {
    if let Some(Popup::Search {
        hits: shown,
        searched,
        more: m,
        sel,
        loading,
        error,
        ..
    }) = &mut s.popup
        && searched == query
    {
        if !append {
            shown.clear();
            *sel = 0;
        }
        // A page asked twice (keys faster than the server) is not shown twice.
        let have: std::collections::HashSet<u64> = shown
            .iter()
            .filter_map(|h| h.message.as_ref().map(|m| m.message_id))
            .collect();
        shown.extend(hits.into_iter().filter(|h| {
            h.message
                .as_ref()
                .is_some_and(|m| !have.contains(&m.message_id))
        }));
        *m = more;
        *loading = false;
        *error = None;
    }
}

/// A key in the popup; false closes it.
pub(super) fn key(s: &mut State, p: &mut Popup, k: &KeyEvent, cmds: &mut Vec<Cmd>) -> bool {
    let Popup::Search {
        query,
        hits,
        sel,
        searched,
        more,
        loading,
        error,
    } = p
    else {
        return false;
    };
    match k.code {
        KeyCode::Esc => false,
        KeyCode::Down => {
            if *sel + 1 < hits.len() {
                *sel += 1;
            } else if *more && !*loading {
                // The next page, older hits.
                let before = hits
                    .last()
                    .and_then(|h| h.message.as_ref())
                    .map_or(0, |m| m.message_id);
                *loading = ask(searched, before, cmds);
            }
            true
        }
        KeyCode::Up => {
            *sel = sel.saturating_sub(1);
            true
        }
        KeyCode::Enter => {
            let q = nfc(query.text().trim());
            if q.is_empty() {
                return true;
            }
            if q != *searched || error.is_some() {
                *error = None;
                *loading = ask(&q, 0, cmds);
                *searched = q;
                hits.clear();
                *sel = 0;
                *more = false;
                return true;
            }
            match hits.get(*sel).and_then(|h| h.message.as_ref()) {
                Some(m) => {
                    jump(s, m.thread_id, m.seq, cmds);
                    false
                }
                None => true,
            }
        }
        _ => {
            edit_line(query, k);
            if query.text().len() > MAX_QUERY {
                // The server takes no more: the last keystroke is taken back.
                edit_line(query, &KeyEvent::from(KeyCode::Backspace));
            }
            true
        }
    }
}

/// Shows message `seq` of `thread_id`, picked (Alt-Up's cursor: y copies it, Esc puts it away).
pub(super) fn jump(s: &mut State, thread_id: u64, seq: u64, cmds: &mut Vec<Cmd>) {
    select(s, thread_id, cmds);
    s.jump = Some(Jump {
        thread_id,
        seq,
        pages: 0,
    });
    land(s, cmds);
}

/// A page of history arrived: a jump waiting for it goes on.
pub(super) fn after_page(s: &mut State, thread_id: u64, cmds: &mut Vec<Cmd>) {
    if s.jump.is_some_and(|j| j.thread_id == thread_id) {
        land(s, cmds);
    }
}

/// Picks the hit if it is loaded; else asks for the next older page (or gives up).
fn land(s: &mut State, cmds: &mut Vec<Cmd>) {
    let Some(j) = s.jump else { return };
    let Some(t) = s.thread_mut(j.thread_id) else {
        s.jump = None;
        return;
    };
    if t.messages.contains_key(&j.seq) {
        s.jump = None;
        s.pick = Some(Target::Seq(j.seq));
        super::pick::show(s);
        return;
    }
    if t.loading {
        return;
    }
    let oldest = t.messages.keys().next().copied();
    if t.oldest_done || j.pages >= JUMP_PAGES || oldest.is_some_and(|o| o <= j.seq) {
        s.jump = None;
        s.error(format!(
            "that message is too far back to show here: confab history --thread {} --before {}",
            j.thread_id,
            j.seq + 1
        ));
        return;
    }
    t.loading = true;
    cmds.push(Cmd::History {
        thread_id: j.thread_id,
        before_seq: oldest.unwrap_or(0),
    });
    s.jump = Some(Jump {
        pages: j.pages + 1,
        ..j
    });
}
