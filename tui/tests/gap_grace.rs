//! Pushes that arrive out of order (entries of one thread committed through different cluster
//! nodes) are held for a moment and applied in order without a sync; a push whose gap never
//! closes is synced after the grace. Against a scripted server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use confab_tui::client::Event;
use confab_wire::pb;
use confab_wire::{Body, Envelope, EnvelopeCodec};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_util::codec::Framed;

const THREAD: u64 = 9;

fn entry(seq: u64) -> pb::ChatMessage {
    pb::ChatMessage {
        thread_id: THREAD,
        seq,
        message_id: 500 + seq,
        sender: Some(pb::User {
            user_id: 2,
            name: "u2".into(),
        }),
        sender_device_id: 2,
        kind: pb::MessageKind::Text as i32,
        body: format!("m{seq}"),
        ..Default::default()
    }
}

fn push(seq: u64) -> Envelope {
    Envelope::push(Body::MessagePush(pb::MessagePush {
        message: Some(entry(seq)),
    }))
}

/// An empty thread at first. Once the client has listed it: pushes 2 then 1 (reordered), then,
/// after a pause, 4 alone (3 is lost). Answers syncs from the store of entries 1-4, counting
/// them.
async fn scripted(listener: TcpListener, syncs: Arc<AtomicUsize>) {
    let Ok((sock, _)) = listener.accept().await else {
        return;
    };
    let mut f = Framed::new(sock, EnvelopeCodec::new());
    while let Some(Ok(env)) = f.next().await {
        let id = env.req_id;
        let reply = match env.body {
            Some(Body::ListThreads(_)) => {
                let list = Body::ThreadList(pb::ThreadList {
                    threads: vec![pb::Thread {
                        thread_id: THREAD,
                        kind: pb::ThreadKind::Group as i32,
                        can_send: true,
                        ..Default::default()
                    }],
                    has_more: false,
                });
                f.send(Envelope::new(id, list)).await.unwrap();
                f.send(push(2)).await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
                f.send(push(1)).await.unwrap();
                tokio::time::sleep(Duration::from_millis(400)).await;
                f.send(push(4)).await.unwrap();
                continue;
            }
            Some(Body::SyncThread(s)) => {
                syncs.fetch_add(1, Ordering::SeqCst);
                Body::MessagePage(pb::MessagePage {
                    thread_id: THREAD,
                    messages: (s.since_seq + 1..=4).map(entry).collect(),
                    has_more: false,
                    last_seq: 4,
                })
            }
            Some(other) => match common::scripted_reply(&other) {
                Some(reply) => reply,
                None => continue,
            },
            None => continue,
        };
        if id != 0 && f.send(Envelope::new(id, reply)).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn reordered_pushes_are_applied_in_order_and_a_lost_one_is_synced_after_the_grace() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let syncs = Arc::new(AtomicUsize::new(0));
    let server = tokio::spawn(scripted(listener, syncs.clone()));
    let (client, mut events) = common::scripted_client(addr);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    let mut syncs_after_two = None;
    while got.len() < 4 {
        if let Event::Message(m) = common::next_before(&mut events, deadline).await {
            got.push(m.seq);
            if got.len() == 2 {
                syncs_after_two = Some(syncs.load(Ordering::SeqCst));
            }
        }
    }
    assert_eq!(got, [1, 2, 3, 4], "applied in seq order, each once");
    assert_eq!(
        syncs_after_two,
        Some(0),
        "the reordered pair needed no sync"
    );
    assert_eq!(
        syncs.load(Ordering::SeqCst),
        1,
        "the lost entry was fetched by one sync"
    );
    client.shutdown().await;
    server.abort();
}
