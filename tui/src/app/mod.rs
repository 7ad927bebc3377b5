//! The terminal client's state and its reducer: `update(&mut State, Msg) -> Vec<Cmd>`.
//!
//! Pure: no I/O, no clock (the run loop sets `State::now_ms`), no terminal. Everything the
//! client does (requests, sends, notifications) leaves as a [`Cmd`]; the run loop executes it on
//! the client core and feeds the result back as a [`Msg`]. The UI therefore never waits on the
//! network: it shows pending states instead.
//!
//! One concern per file, by what drives the reducer: [`msg`] (its inputs and outputs),
//! [`state`], `keys` (keys on each screen), `popups`, `input` (text input), `commands` (slash
//! commands), `events` (the client core's events and loaded data), `done` (results of
//! operations), `actions` (what several of those do: select, mark read, send, scroll,
//! upsert) and [`layout`] (the screen's geometry and a thread's rows, which the renderer uses
//! too: the renderer depends on app, never the reverse).

mod actions;
pub mod amend;
pub mod busy;
pub mod commands;
pub mod complete;
pub mod config;
mod done;
mod events;
pub mod export;
pub mod find;
pub mod help;
pub mod highlight;
mod input;
pub mod keymap;
mod keys;
pub mod layout;
pub mod msg;
pub mod notify;
pub mod pick;
mod popups;
pub mod relations;
mod search_all;
pub mod state;

pub use crate::text::sanitize;
pub use msg::{AdminOp, Cmd, Done, Msg, Op};
pub use popups::{device_label, switcher_matches};
pub use state::{
    Conn, Kind, LoginForm, PAGE, Pending, Popup, Screen, SendState, State, ThreadView,
};

/// The reducer.
pub fn update(s: &mut State, msg: Msg) -> Vec<Cmd> {
    let mut cmds = Vec::new();
    let input = matches!(msg, Msg::Key(_) | Msg::Paste(_));
    match msg {
        Msg::Key(k) => keys::key(s, k, &mut cmds),
        Msg::Paste(text) => input::paste(s, &text),
        Msg::Resize(w, h) => actions::resize(s, (w, h)),
        Msg::Focus(f) => {
            s.focused = f;
            if f && let Some(id) = s.selected {
                actions::mark_read(s, id, &mut cmds);
            }
        }
        Msg::Tick => events::tick(s, &mut cmds),
        Msg::Core(ev) => events::core_event(s, ev, &mut cmds),
        Msg::Threads(list) => events::threads(s, list, &mut cmds),
        Msg::Outbox { queued, failed } => events::outbox(s, queued, failed),
        Msg::History { thread_id, msgs } => {
            events::history(s, thread_id, msgs);
            find::after_page(s, thread_id, &mut cmds);
            search_all::after_page(s, thread_id, &mut cmds);
        }
        Msg::Queued {
            thread_id,
            key,
            result,
        } => events::queued(s, thread_id, key, result),
        Msg::Done(d) => {
            busy::done(s);
            done::done(s, d, &mut cmds);
        }
    }
    if input {
        input::typing_stopped(s, &mut cmds);
    }
    busy::sent(s, &cmds);
    cmds
}
