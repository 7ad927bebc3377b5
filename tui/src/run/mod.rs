//! The terminal client's run loop: one `select!` over terminal events, client-core events,
//! results of spawned commands and a wake-up deadline. Messages go through the reducer; after a
//! burst (a paste, an IME commit, a history page, a sync) the queue is drained and the screen
//! is drawn once, inside synchronized-update brackets. Commands run as tasks on the client core,
//! so the loop never waits on the network.
//!
//! Bracketed paste: crossterm parses `ESC[200~ ... ESC[201~` itself and delivers one
//! `Event::Paste` with the whole text, so a paste can never be split into keystrokes and Enter
//! inside it never sends. If the end marker never arrives, crossterm keeps the bytes in its
//! parser buffer; the next complete paste or a restart recovers (no timeout can be applied at
//! this level; documented in docs/CLIENT.md).

pub mod clusters;
pub mod logs;
pub mod notify;
pub mod ops;
mod remembered;

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossterm::event::{
    DisableBracketedPaste, DisableFocusChange, DisableMouseCapture, EnableBracketedPaste,
    EnableFocusChange, EnableMouseCapture, Event as TermEvent, EventStream, KeyCode, KeyEvent,
    KeyEventKind, KeyModifiers, MouseEventKind,
};
use crossterm::terminal::{
    BeginSynchronizedUpdate, EndSynchronizedUpdate, EnterAlternateScreen, LeaveAlternateScreen,
    SetTitle,
};
use crossterm::{cursor, execute, queue};
use futures::StreamExt;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::app::config::{Level, Notify, Settings, Zone};
use crate::app::{Cmd, Msg, State, update};
use crate::client::known_servers::{Fingerprint, KnownServers};
use crate::client::paths;
use crate::client::tls::TrustOptions;
use crate::client::{Auth, CacheMode, Client, ClientConfig, Events};
use confab_wire::Body;
use confab_wire::pb;

/// Wall-clock milliseconds (the reducer itself never reads the clock).
/// Shortest time between two frames.
const FRAME_GAP: Duration = Duration::from_millis(12);

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Where logs go: `$XDG_STATE_HOME/confab` (or the data dir where there is no state dir).
pub fn log_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("confab");
    }
    directories::ProjectDirs::from("", "", "confab")
        .and_then(|p| p.state_dir().map(PathBuf::from))
        .unwrap_or_else(paths::data_dir)
}

/// Reads `config.toml` (missing file: defaults).
pub fn load_settings() -> Settings {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let path = paths::config_dir().join("config.toml");
    let mut settings = match std::fs::read_to_string(&path) {
        Ok(text) => Settings::parse(&text, no_color),
        Err(_) => Settings::parse("", no_color),
    };
    if !settings.utc_offset_set {
        // The user's own zone (TZ, else /etc/localtime), asked per message time so that
        // daylight-saving changes apply to the messages they concern.
        settings.zone = Zone::Rules(Arc::new(local_offset_s));
    }
    settings
}

/// The system zone's UTC offset, in seconds, at `ts_ms` (Unix milliseconds).
pub fn local_offset_s(ts_ms: i64) -> i64 {
    use chrono::{Local, Offset, TimeZone};
    // Converting from UTC is never ambiguous; the fallback only covers out-of-range times.
    Local
        .timestamp_millis_opt(ts_ms)
        .single()
        .map_or_else(
            || Local::now().offset().fix().local_minus_utc(),
            |d| d.offset().fix().local_minus_utc(),
        )
        .into()
}

/// xterm's title stack (also tmux, VTE, kitty): the shell's title is pushed at start and popped
/// at exit, so the client does not leave its own behind. Terminals without it ignore both.
const PUSH_TITLE: &str = "\x1b[22;0t";
const POP_TITLE: &str = "\x1b[23;0t";

/// Puts the terminal back (raw mode off, main screen, pastes and focus reports off, the title
/// as it was).
pub fn restore_terminal() {
    let _ = crossterm::terminal::disable_raw_mode();
    let _ = execute!(io::stdout(), crossterm::style::Print(POP_TITLE));
    let _ = execute!(
        io::stdout(),
        DisableMouseCapture,
        DisableBracketedPaste,
        DisableFocusChange,
        LeaveAlternateScreen,
        cursor::SetCursorStyle::DefaultUserShape,
        cursor::Show
    );
}

/// Enters the client's terminal modes (raw, alternate screen, pastes, focus reports, mouse).
fn enter_terminal(mouse: bool) -> io::Result<()> {
    crossterm::terminal::enable_raw_mode()?;
    let mut stdout = io::stdout();
    execute!(
        stdout,
        crossterm::style::Print(PUSH_TITLE),
        EnterAlternateScreen,
        EnableBracketedPaste,
        EnableFocusChange,
        cursor::SetCursorStyle::SteadyBar
    )?;
    if mouse {
        execute!(stdout, EnableMouseCapture)?;
    }
    Ok(())
}

/// Ctrl-Z: gives the terminal back to the shell and stops the process with SIGTSTP (the
/// default action, so job control sees an ordinary stopped job). Returns after SIGCONT (`fg`),
/// with the client's modes back on; the caller repaints everything.
#[cfg(unix)]
fn suspend(mouse: bool) -> io::Result<()> {
    restore_terminal();
    signal_hook::low_level::raise(signal_hook::consts::SIGTSTP)?;
    enter_terminal(mouse)
}

#[cfg(not(unix))]
fn suspend(_mouse: bool) -> io::Result<()> {
    Ok(())
}

struct Ctx {
    client: Option<Client>,
    events: Option<Events>,
    tx: mpsc::UnboundedSender<Msg>,
    server: String,
    notify: Notify,
    in_tmux: bool,
    /// What `tls://` servers are trusted by (`--ca-file`, `--trust-fingerprint`).
    trust: TrustOptions,
    /// Where conversation logs go (`log_dir`), and the zone their times are in.
    log_dir: Option<PathBuf>,
    zone: Zone,
}

async fn next_core(events: &mut Option<Events>) -> Option<crate::client::Event> {
    match events {
        Some(e) => e.recv().await,
        None => std::future::pending().await,
    }
}

fn term_msg(ev: TermEvent) -> Option<Msg> {
    match ev {
        TermEvent::Key(k) if k.kind != KeyEventKind::Release => Some(Msg::Key(k)),
        TermEvent::Paste(p) => Some(Msg::Paste(p)),
        TermEvent::Resize(w, h) => Some(Msg::Resize(w, h)),
        TermEvent::FocusGained => Some(Msg::Focus(true)),
        TermEvent::FocusLost => Some(Msg::Focus(false)),
        TermEvent::Mouse(m) => match m.kind {
            MouseEventKind::ScrollUp => {
                Some(Msg::Key(KeyEvent::new(KeyCode::PageUp, KeyModifiers::NONE)))
            }
            MouseEventKind::ScrollDown => Some(Msg::Key(KeyEvent::new(
                KeyCode::PageDown,
                KeyModifiers::NONE,
            ))),
            _ => None,
        },
        _ => None,
    }
}

fn client_config(server: &str, name: &str, trust: &TrustOptions) -> ClientConfig {
    let mut cfg = ClientConfig::new(server);
    cfg.trust = trust.clone();
    cfg.client_name = "confab-tui".into();
    cfg.cache =
        CacheMode::File(paths::account_dir(&paths::data_dir(), server, name).join("cache.db"));
    // Shared with every other process of the account: the core re-reads it before each
    // resume and replaces it after each authentication.
    cfg.session = Some(paths::SessionFile::new(paths::data_dir(), server, name));
    cfg
}

/// The user trusted a server on first use: record its fingerprint, then connect at once.
fn trust_server(ctx: &Ctx, server: &str, fingerprint: Fingerprint) {
    let path = ctx
        .trust
        .known_servers
        .clone()
        .unwrap_or_else(crate::client::known_servers::default_path);
    let recorded = KnownServers::load(&path).and_then(|mut k| k.record(server, fingerprint));
    match (recorded, ctx.client.clone()) {
        (Ok(()), Some(c)) => {
            info!(%server, %fingerprint, "server trusted on first use");
            tokio::spawn(async move {
                let _ = c.reconnect_now().await;
            });
        }
        (Ok(()), None) => {}
        (Err(e), _) => {
            let _ = ctx
                .tx
                .send(Msg::Done(crate::app::Done::Error(e.to_string())));
        }
    }
}

/// `/notify`: the level goes into config.toml (comments and the rest kept), written whole to a
/// temporary file and renamed, so a crash never leaves half a config.
fn save_level(name: &str, level: Level) -> Result<(), String> {
    let dir = paths::config_dir();
    let path = dir.join("config.toml");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let new = crate::app::config::with_level(&text, name, level)?;
    let tmp = dir.join("config.toml.tmp");
    std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&tmp, new))
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Executes one command. Everything that waits is spawned; results come back on `tx`.
fn exec<W: Write>(ctx: &mut Ctx, cmd: Cmd, out: &mut W) -> bool {
    let tx = ctx.tx.clone();
    match cmd {
        Cmd::Connect { server, auth, name } => {
            if let Some(old) = ctx.client.take() {
                tokio::spawn(async move { old.shutdown().await });
            }
            ctx.events = None;
            ctx.server = server.clone();
            paths::remember_server(&paths::data_dir(), &server);
            match Client::start(client_config(&server, &name, &ctx.trust), auth) {
                Ok((c, ev)) => {
                    ctx.client = Some(c);
                    ctx.events = Some(ev);
                }
                Err(e) => {
                    let _ = tx.send(Msg::Done(crate::app::Done::Error(e.to_string())));
                }
            }
        }
        Cmd::Disconnect => {
            if let Some(old) = ctx.client.take() {
                tokio::spawn(async move { old.shutdown().await });
            }
            ctx.events = None;
        }
        // The core has already written the session file (ClientConfig::session).
        Cmd::SaveSession { .. } => {}
        Cmd::Quit => return false,
        Cmd::Notify { title, body } => {
            if ctx.notify != Notify::Off {
                let seq = notify::sequence(&title, &body, ctx.notify == Notify::Osc, ctx.in_tmux);
                let _ = out.write_all(seq.as_bytes());
                let _ = out.flush();
            }
        }
        Cmd::Redraw | Cmd::Suspend => {}
        Cmd::Log { file, line } => {
            if let Some(dir) = &ctx.log_dir
                && let Err(e) = logs::append(dir, &ctx.server, &file, &line)
            {
                warn!(error = %e, dir = %dir.display(), "could not write the conversation log");
            }
        }
        Cmd::Copy(text) => {
            // OSC 52: the terminal (or tmux, with set-clipboard) puts it on the clipboard.
            use base64::Engine as _;
            let b64 = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
            let _ = write!(out, "\x1b]52;c;{b64}\x07");
            let _ = out.flush();
        }
        Cmd::SaveHidden { name, hidden } => {
            if let Err(e) = remembered::save_hidden(&ctx.server, &name, &hidden) {
                warn!(error = %e, "could not keep the closed conversations");
            }
        }
        Cmd::SaveLevel { name, level } => {
            if let Err(e) = save_level(&name, level) {
                let _ = tx.send(Msg::Done(crate::app::Done::Error(format!(
                    "the level applies to this run only: {e}"
                ))));
            }
        }
        Cmd::TrustServer {
            server,
            fingerprint,
        } => trust_server(ctx, &server, fingerprint),
        other => {
            let Some(c) = ctx.client.clone() else {
                // Every operation is answered, or its "waiting" line would stay for good.
                if let Cmd::Op(op) = &other {
                    let done = if crate::app::busy::is_background(op) {
                        crate::app::Done::Dropped
                    } else if matches!(op, crate::app::Op::SearchUsers(_)) {
                        crate::app::Done::SearchFailed("not connected".into())
                    } else {
                        crate::app::Done::Error("not connected: nothing was sent".into())
                    };
                    let _ = ctx.tx.send(Msg::Done(done));
                }
                return true;
            };
            match other {
                Cmd::Send {
                    thread_id,
                    key,
                    body,
                    reply_to,
                } => {
                    tokio::spawn(async move {
                        let draft = crate::client::Draft::reply(body, reply_to);
                        let result = c.send_draft(thread_id, draft).await;
                        let _ = tx.send(Msg::Queued {
                            thread_id,
                            key,
                            result,
                        });
                    });
                }
                Cmd::History {
                    thread_id,
                    before_seq,
                } => {
                    tokio::spawn(async move {
                        let mut msgs = c
                            .history(thread_id, before_seq, crate::app::PAGE)
                            .await
                            .unwrap_or_default();
                        if msgs.is_empty() && before_seq != 1 {
                            // Older than the cache: ask the server.
                            if let Ok(Body::MessagePage(p)) = c
                                .request(Body::History(pb::History {
                                    thread_id,
                                    before_seq,
                                    limit: crate::app::PAGE,
                                }))
                                .await
                            {
                                msgs = p.messages;
                            }
                        }
                        let _ = tx.send(Msg::History { thread_id, msgs });
                    });
                }
                Cmd::Export {
                    thread_id,
                    file,
                    path,
                } => {
                    let zone = ctx.zone.clone();
                    tokio::spawn(async move {
                        let done = match logs::export(&c, thread_id, &file, path.as_deref(), &zone)
                            .await
                        {
                            Ok((n, p)) => crate::app::Done::Info(format!(
                                "exported {n} messages to {}",
                                p.display()
                            )),
                            Err(e) => crate::app::Done::Error(format!("export failed: {e}")),
                        };
                        let _ = tx.send(Msg::Done(done));
                    });
                }
                Cmd::Discard { local_id } => {
                    tokio::spawn(async move {
                        let _ = c.discard(local_id).await;
                    });
                }
                Cmd::LoadThreads => {
                    tokio::spawn(async move {
                        if let Ok(t) = c.threads().await {
                            let _ = tx.send(Msg::Threads(t));
                        }
                    });
                }
                Cmd::LoadOutbox => {
                    tokio::spawn(async move {
                        if let Ok(queued) = c.outbox().await {
                            let failed = c.failed().await.unwrap_or_default();
                            let _ = tx.send(Msg::Outbox { queued, failed });
                        }
                    });
                }
                Cmd::ForgetSession => {
                    // The operation that deleted the account stopped the core already.
                    ctx.client = None;
                    ctx.events = None;
                    paths::clear_session(&paths::data_dir(), &ctx.server);
                }
                Cmd::Op(op) => {
                    if matches!(
                        op,
                        crate::app::Op::Logout | crate::app::Op::LogoutEverywhere
                    ) {
                        ctx.client = None;
                        ctx.events = None;
                        paths::clear_session(&paths::data_dir(), &ctx.server);
                    }
                    tokio::spawn(async move {
                        let _ = tx.send(Msg::Done(ops::run(c, op).await));
                    });
                }
                Cmd::MarkRead { thread_id, seq } => {
                    tokio::spawn(async move {
                        let _ = c.mark_read(thread_id, seq).await;
                    });
                }
                Cmd::Typing { thread_id, stopped } => {
                    tokio::spawn(async move {
                        let _ = c
                            .notify(Body::Typing(pb::Typing { thread_id, stopped }))
                            .await;
                    });
                }
                Cmd::ReconnectNow => {
                    tokio::spawn(async move {
                        let _ = c.reconnect_now().await;
                    });
                }
                _ => {}
            }
        }
    }
    true
}

/// Opens the terminal client. `server` comes from `--server`/`CONFAB_SERVER`.
pub async fn run(server: Option<String>, trust: TrustOptions) -> io::Result<()> {
    let settings = load_settings();
    let server = server
        .or_else(|| settings.server.clone())
        .or_else(|| paths::last_server(&paths::data_dir()))
        .unwrap_or_else(|| "127.0.0.1:7000".into());

    // Logs to a file, never to the screen.
    let dir = log_dir();
    let _ = std::fs::create_dir_all(&dir);
    let appender = tracing_appender::rolling::never(&dir, "confab-tui.log");
    let (writer, _guard) = tracing_appender::non_blocking(appender);
    let filter = std::env::var("CONFAB_LOG").unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(writer)
        .with_ansi(false)
        .try_init();
    info!(%server, "terminal client starting");

    let mut state = State::new(settings.clone(), server.clone());
    state.now_ms = now_ms();
    let mut first = Vec::new();
    if let Some(sess) = paths::load_session(&paths::data_dir(), &server) {
        state = state.resuming(Some(pb::User {
            user_id: sess.user_id,
            name: sess.name.clone(),
        }));
        state.last_open = remembered::last_open(&server, &sess.name);
        state.hidden = remembered::hidden(&server, &sess.name);
        first.push(Cmd::Connect {
            server: server.clone(),
            auth: Auth::Token(sess.token),
            name: sess.name,
        });
        // Offline first: the cache's conversations and unsent messages show at once.
        first.push(Cmd::LoadThreads);
        first.push(Cmd::LoadOutbox);
    }
    if !settings.problems.is_empty() {
        state.error(settings.problems.join("; "));
    }

    // Terminal setup; the panic hook puts the terminal back before the message prints.
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        prev(info);
    }));
    enter_terminal(settings.mouse)?;
    let result = main_loop(state, settings, server, first, trust).await;
    restore_terminal();
    result
}

async fn main_loop(
    mut state: State,
    settings: Settings,
    server: String,
    first: Vec<Cmd>,
    trust: TrustOptions,
) -> io::Result<()> {
    let backend = CrosstermBackend::new(io::stdout());
    let area = ratatui::backend::Backend::size(&backend)
        .map(|s| ratatui::layout::Rect::new(0, 0, s.width, s.height))?;
    let mut terminal = Terminal::new(clusters::ClusterSafe::new(backend, area))?;
    let size = terminal.size()?;
    state.size = (size.width, size.height);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut ctx = Ctx {
        client: None,
        events: None,
        tx,
        server,
        notify: settings.notify,
        in_tmux: std::env::var_os("TMUX").is_some(),
        trust,
        log_dir: settings.log_dir.clone(),
        zone: settings.zone.clone(),
    };
    let mut term_events = EventStream::new();
    let mut title = String::new();
    for c in first {
        exec(&mut ctx, c, &mut io::stdout());
    }
    let mut dirty = true;
    // Frames at most every FRAME_GAP: the first change after a quiet spell is drawn at once
    // (typing latency), the rest of a burst (a paste, an IME commit, a sync) is drawn once.
    let mut last_draw = tokio::time::Instant::now() - FRAME_GAP;
    loop {
        let now = tokio::time::Instant::now();
        if dirty && now >= last_draw + FRAME_GAP {
            let t = state.title();
            let backend = terminal.backend_mut();
            queue!(backend, BeginSynchronizedUpdate)?;
            if t != title {
                queue!(backend, SetTitle(&t))?;
                title = t;
            }
            terminal.draw(|f| crate::ui::draw(f, &state))?;
            execute!(terminal.backend_mut(), EndSynchronizedUpdate)?;
            dirty = false;
            last_draw = now;
        }
        let frame_due = dirty.then_some(last_draw + FRAME_GAP);
        let wake = state
            .next_wakeup()
            .map(|at| Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0)));
        let sleep = async {
            match wake {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let first_msg = tokio::select! {
            biased;
            ev = term_events.next() => match ev {
                Some(Ok(ev)) => term_msg(ev),
                Some(Err(e)) => { warn!(error = %e, "terminal input"); None }
                None => break,
            },
            Some(m) = rx.recv() => Some(m),
            ev = next_core(&mut ctx.events) => match ev {
                Some(e) => Some(Msg::Core(e)),
                None => { ctx.events = None; None }
            },
            () = sleep => Some(Msg::Tick),
            () = async {
                match frame_due {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => None,
        };
        // Coalesce: take every result and core event already waiting. (Terminal events are not
        // polled here: crossterm's EventStream keeps the waker of the poll that found it empty,
        // so polling it with a no-op waker would lose the wake-up. The frame gap coalesces
        // those instead.)
        let mut batch: Vec<Msg> = first_msg.into_iter().collect();
        for _ in 0..512 {
            let mut got = false;
            if let Ok(m) = rx.try_recv() {
                batch.push(m);
                got = true;
            }
            if let Some(e) = ctx.events.as_mut().and_then(Events::try_recv) {
                batch.push(Msg::Core(e));
                got = true;
            }
            if !got {
                break;
            }
        }
        let mut stop = false;
        for m in batch {
            if let Msg::Resize(w, h) = m {
                let _ = terminal.autoresize();
                state.size = (w, h);
            }
            state.now_ms = now_ms();
            for c in update(&mut state, m) {
                if matches!(c, Cmd::Suspend) {
                    suspend(settings.mouse)?;
                    // The window may have been resized while stopped.
                    let _ = terminal.autoresize();
                    if let Ok(sz) = terminal.size() {
                        state.size = (sz.width, sz.height);
                    }
                    // Force a full repaint and the title again.
                    title.clear();
                }
                if matches!(c, Cmd::Redraw | Cmd::Suspend) {
                    terminal.clear()?;
                }
                if !exec(&mut ctx, c, &mut io::stdout()) {
                    stop = true;
                }
            }
            dirty = true;
        }
        if stop || state.quit {
            break;
        }
    }
    if let Some(c) = ctx.client.take() {
        let _ = tokio::time::timeout(Duration::from_secs(2), c.shutdown()).await;
    }
    // The conversation left open is the one the next start opens.
    if let (Some(me), Some(id)) = (&state.me, state.selected) {
        remembered::save_last_open(&ctx.server, &me.name, id);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_offset_is_defined_for_every_time() {
        // Whatever the machine's zone: a real offset (within ±26 h), and times chrono cannot
        // represent fall back instead of panicking.
        for ts in [0, now_ms(), -62_135_596_800_000, i64::MAX, i64::MIN] {
            assert!(local_offset_s(ts).abs() <= 26 * 3600, "{ts}");
        }
    }
}
