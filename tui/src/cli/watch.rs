//! `watch`: every message and event as a JSON line until interrupted, or until the session
//! ends (exit 3).

use serde_json::json;

use super::conn::{resume, stopped_fail};
use super::fail::Fail;
use super::out::{self, print};
use super::target::Target;
use crate::client::{ConnState, Event};

/// `only`: one thread's messages, typing and read receipts (no user events or presence).
/// `since_now`: nothing from before the watch started (the catch-up is not printed).
pub async fn watch(server: &str, only: &Target, since_now: bool) -> Result<(), Fail> {
    let started_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let (c, mut events, _) = resume(server, true).await?;
    let thread = if only.given() {
        Some(only.resolve(&c).await?)
    } else {
        None
    };
    let wanted = |t: u64| thread.is_none_or(|only| only == t);
    // Until the first catch-up ends, what arrives may be old: `since_now` keeps only entries
    // the server stored after the watch started.
    let mut caught_up = false;
    let fresh = |caught_up: bool, ts_ms: i64| !since_now || caught_up || ts_ms >= started_ms;
    let stop = interrupted();
    tokio::pin!(stop);
    loop {
        let ev = tokio::select! {
            _ = &mut stop => break,
            ev = events.recv() => match ev { Some(ev) => ev, None => break },
        };
        match ev {
            Event::Message(m) if wanted(m.thread_id) && fresh(caught_up, m.server_ts_ms) => {
                print(out::message(&m))
            }
            Event::UserEvent(e) if thread.is_none() && fresh(caught_up, e.ts_ms) => {
                print(out::event(&e))
            }
            Event::Presence(p) if thread.is_none() => print(
                json!({"type": "presence", "user": out::user(&p.user), "online": p.online, "last_seen_ms": p.last_seen_ms}),
            ),
            Event::Typing(t) if wanted(t.thread_id) => print(
                json!({"type": "typing", "thread_id": t.thread_id, "user": out::user(&t.user)}),
            ),
            Event::ReadReceipt(r) if wanted(r.thread_id) => print(
                json!({"type": "read", "thread_id": r.thread_id, "user": out::user(&r.user), "read_seq": r.read_seq}),
            ),
            Event::State(s) => {
                print(out::state(&s));
                if let ConnState::Stopped { code, reason } = s {
                    // The core waits for a retry nobody will ask for: end, never hang.
                    c.shutdown().await;
                    return Err(stopped_fail(server, code, &reason));
                }
            }
            Event::Synced => {
                caught_up = true;
                print(json!({"type": "synced"}));
            }
            _ => {}
        }
    }
    c.shutdown().await;
    Ok(())
}

/// Ctrl-C, or SIGTERM (a script stopping a background watcher: non-interactive shells start
/// background jobs with SIGINT ignored).
async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
