//! The engine holds a push one past a gap while its own send in that thread awaits its ack
//! (the ack fills the gap, no sync), and syncs when the answer does not fill it. Against a
//! scripted server that pushes the next entry before answering the send.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use confab_tui::client::Event;
use confab_wire::pb;
use confab_wire::{Body, Envelope, EnvelopeCodec};
use futures::{SinkExt, StreamExt};
use tokio_util::codec::Framed;

fn entry(seq: u64, user: u64, body: &str) -> pb::ChatMessage {
    pb::ChatMessage {
        thread_id: 7,
        seq,
        message_id: 100 + seq,
        sender: Some(pb::User {
            user_id: user,
            name: format!("u{user}"),
        }),
        sender_device_id: user,
        kind: pb::MessageKind::Text as i32,
        body: body.into(),
        ..Default::default()
    }
}

/// One connection as user 1 in thread 7 (empty). On Send: pushes seq 2 from user 2, then
/// acks the send as seq 1 (`refuse` false), or refuses it (`refuse` true; seq 1 is then user
/// 2's and only a sync returns it). Counts SyncThread requests.
async fn scripted(listener: tokio::net::TcpListener, refuse: bool, syncs: Arc<AtomicUsize>) {
    let Ok((sock, _)) = listener.accept().await else {
        return;
    };
    let mut f = Framed::new(sock, EnvelopeCodec::new());
    let mut stored = vec![entry(2, 2, "second")];
    while let Some(Ok(env)) = f.next().await {
        let id = env.req_id;
        let reply = match env.body {
            Some(Body::ListThreads(_)) => Body::ThreadList(pb::ThreadList {
                threads: vec![pb::Thread {
                    thread_id: 7,
                    kind: pb::ThreadKind::Private as i32,
                    ..Default::default()
                }],
                has_more: false,
            }),
            Some(Body::SyncThread(s)) => {
                syncs.fetch_add(1, Ordering::SeqCst);
                Body::MessagePage(pb::MessagePage {
                    thread_id: 7,
                    messages: stored
                        .iter()
                        .filter(|m| m.seq > s.since_seq)
                        .cloned()
                        .collect(),
                    has_more: false,
                    last_seq: 2,
                })
            }
            Some(Body::Send(s)) => {
                let push = Body::MessagePush(pb::MessagePush {
                    message: Some(entry(2, 2, "second")),
                });
                if f.send(Envelope::push(push)).await.is_err() {
                    return;
                }
                if refuse {
                    stored.insert(0, entry(1, 2, "first"));
                    Body::Error(pb::Error {
                        code: pb::ErrorCode::Forbidden as i32,
                        message: "no".into(),
                        ..Default::default()
                    })
                } else {
                    Body::SendAck(pb::SendAck {
                        thread_id: 7,
                        message_id: 101,
                        seq: 1,
                        client_msg_id: s.client_msg_id,
                        ..Default::default()
                    })
                }
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

async fn run(refuse: bool) -> (Vec<(u64, String)>, usize) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let syncs = Arc::new(AtomicUsize::new(0));
    let server = tokio::spawn(scripted(listener, refuse, syncs.clone()));
    let (client, mut events) = common::scripted_client(addr);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !matches!(
        common::next_before(&mut events, deadline).await,
        Event::Synced
    ) {}
    client.post(7, "mine").await.unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        if let Event::Message(m) = common::next_before(&mut events, deadline).await {
            got.push((m.seq, m.body));
        }
    }
    client.shutdown().await;
    server.abort();
    (got, syncs.load(Ordering::SeqCst))
}

#[tokio::test]
async fn a_push_ahead_of_our_own_ack_is_held_and_applied_without_a_sync() {
    let (got, syncs) = run(false).await;
    assert_eq!(got, vec![(1, "mine".into()), (2, "second".into())]);
    assert_eq!(syncs, 0, "the ack filled the gap");
}

#[tokio::test]
async fn a_held_push_whose_gap_the_answer_does_not_fill_is_synced() {
    let (got, syncs) = run(true).await;
    assert_eq!(got, vec![(1, "first".into()), (2, "second".into())]);
    assert_eq!(syncs, 1);
}
