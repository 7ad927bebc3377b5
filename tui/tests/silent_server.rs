//! A server that stops answering without closing the connection (frozen by SIGSTOP, a hung
//! process, a dead middlebox): the core says so soon (`Event::Silent`), says so again when it
//! answers (`Event::Answering`), and gives up on the connection by itself if it never does.
//! Against a scripted server whose freeze the test switches.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use confab_tui::client::{Auth, CacheMode, Client, ClientConfig, ConnState, Event};
use confab_wire::pb;
use confab_wire::{Body, Envelope, EnvelopeCodec};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_util::codec::Framed;

/// Answers the handshake with a 1 s heartbeat, then everything while `frozen` is false; while
/// it is true, reads requests but holds their replies, sent once it thaws.
async fn scripted(listener: TcpListener, frozen: Arc<AtomicBool>) {
    let Ok((sock, _)) = listener.accept().await else {
        return;
    };
    let mut f = Framed::new(sock, EnvelopeCodec::new());
    let mut held: Vec<Envelope> = Vec::new();
    loop {
        tokio::select! {
            frame = f.next() => {
                let Some(Ok(env)) = frame else { return };
                let id = env.req_id;
                let reply = match env.body {
                    Some(Body::Hello(_)) => {
                        let mut ok = common::hello_ok(1, "u1", 1, "t");
                        if let Body::HelloOk(h) = &mut ok {
                            h.heartbeat_interval_ms = 1_000;
                        }
                        ok
                    }
                    Some(Body::ListThreads(_)) => Body::ThreadList(pb::ThreadList::default()),
                    Some(other) => match common::scripted_reply(&other) {
                        Some(r) => r,
                        None => continue,
                    },
                    None => continue,
                };
                if id == 0 {
                    continue;
                }
                let env = Envelope::new(id, reply);
                if frozen.load(Ordering::SeqCst) {
                    held.push(env);
                } else if f.send(env).await.is_err() {
                    return;
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(50)) => {
                if !frozen.load(Ordering::SeqCst) {
                    for env in held.drain(..) {
                        if f.send(env).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    }
}

#[tokio::test]
async fn a_silent_server_is_reported_then_answering_then_given_up() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let frozen = Arc::new(AtomicBool::new(false));
    let server = tokio::spawn(scripted(listener, frozen.clone()));
    let mut cfg = ClientConfig::new(addr.to_string());
    cfg.cache = CacheMode::Memory;
    cfg.request_timeout = Duration::from_secs(8);
    let (client, mut events) = Client::start(cfg, Auth::Token("t".into())).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !matches!(
        common::next_before(&mut events, deadline).await,
        Event::Synced
    ) {}

    frozen.store(true, Ordering::SeqCst);
    let (silent, drop_in) = loop {
        match common::next_before(&mut events, deadline).await {
            Event::Silent { silent, drop_in } => break (silent, drop_in),
            Event::State(ConnState::Offline { reason, .. }) => {
                panic!("dropped before saying it was silent: {reason}")
            }
            _ => {}
        }
    };
    // One heartbeat (1 s) and the 3 s grace without an answer, and the time left before the
    // engine gives up is what remains of the held ping's 8 s timeout.
    assert!(silent >= Duration::from_secs(4), "{silent:?}");
    assert!(drop_in <= Duration::from_secs(8), "{drop_in:?}");

    frozen.store(false, Ordering::SeqCst);
    loop {
        match common::next_before(&mut events, deadline).await {
            Event::Answering => break,
            Event::State(ConnState::Offline { reason, .. }) => {
                panic!("dropped although the server answered: {reason}")
            }
            _ => {}
        }
    }

    // Frozen for good: reported, then given up with a reason that says why.
    frozen.store(true, Ordering::SeqCst);
    let mut said_silent = false;
    let reason = loop {
        match common::next_before(&mut events, deadline).await {
            Event::Silent { .. } => said_silent = true,
            Event::State(ConnState::Offline { reason, .. }) => break reason,
            _ => {}
        }
    };
    assert!(said_silent, "silence reported before giving up");
    assert!(reason.contains("stopped answering"), "{reason}");
    client.shutdown().await;
    server.abort();
}
