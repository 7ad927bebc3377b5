//! A send whose first ack was lost with the connection is settled by the sync after the
//! reconnect, while its retry is still in flight. The retry's answer must then free the thread
//! for the next queued send. Against a scripted server that answers the sync before the retry.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::time::Duration;

use confab_tui::client::Event;
use confab_wire::pb;
use confab_wire::{Body, Envelope, EnvelopeCodec};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_util::codec::Framed;

const THREAD: u64 = 7;
/// The device `common::scripted_reply` gives the client.
const DEVICE: u64 = 1;

fn own_entry(seq: u64, client_msg_id: &str, body: &str) -> pb::ChatMessage {
    pb::ChatMessage {
        thread_id: THREAD,
        seq,
        message_id: 100 + seq,
        sender: Some(pb::User {
            user_id: 1,
            name: "u1".into(),
        }),
        sender_device_id: DEVICE,
        client_msg_id: client_msg_id.into(),
        kind: pb::MessageKind::Text as i32,
        body: body.into(),
        ..Default::default()
    }
}

fn thread_list(last_seq: u64) -> Body {
    Body::ThreadList(pb::ThreadList {
        threads: vec![pb::Thread {
            thread_id: THREAD,
            kind: pb::ThreadKind::Private as i32,
            last_seq,
            can_send: true,
            ..Default::default()
        }],
        has_more: false,
    })
}

fn ack(seq: u64, client_msg_id: String, duplicate: bool) -> Body {
    Body::SendAck(pb::SendAck {
        thread_id: THREAD,
        message_id: 100 + seq,
        seq,
        duplicate,
        client_msg_id,
        ..Default::default()
    })
}

/// Answers what every connection asks; `None` for what the caller handles.
fn common_reply(body: &Body, last_seq: u64) -> Option<Body> {
    match body {
        Body::ListThreads(_) => Some(thread_list(last_seq)),
        other => common::scripted_reply(other),
    }
}

/// Connection 1 stores the first send (seq 1) and drops the link instead of answering.
/// Connection 2 holds the retry of that send until the client has also asked for the
/// thread's sync, answers the sync (which holds the stored entry) first and the retry second,
/// then acks the next send as seq 2. Returns the bodies the server received as new sends on
/// connection 2.
async fn scripted(listener: TcpListener) -> Vec<String> {
    let (sock, _) = listener.accept().await.unwrap();
    let mut f = Framed::new(sock, EnvelopeCodec::new());
    let mut stored: Option<(String, String)> = None;
    while let Some(Ok(env)) = f.next().await {
        let Some(body) = env.body else { continue };
        if let Body::Send(s) = &body {
            stored = Some((s.client_msg_id.clone(), s.body.clone()));
            break;
        }
        if let Some(reply) = common_reply(&body, 0)
            && env.req_id != 0
        {
            f.send(Envelope::new(env.req_id, reply)).await.unwrap();
        }
    }
    drop(f);
    let (first_id, first_body) = stored.expect("the first send on connection 1");

    let (sock, _) = listener.accept().await.unwrap();
    let mut f = Framed::new(sock, EnvelopeCodec::new());
    let mut held_retry: Option<u64> = None;
    let mut held_sync: Option<u64> = None;
    let mut new_sends = Vec::new();
    while let Some(Ok(env)) = f.next().await {
        let Some(body) = env.body else { continue };
        match body {
            Body::Send(s) if s.client_msg_id == first_id => held_retry = Some(env.req_id),
            Body::Send(s) => {
                new_sends.push(s.body.clone());
                let seq = 1 + new_sends.len() as u64;
                f.send(Envelope::new(env.req_id, ack(seq, s.client_msg_id, false)))
                    .await
                    .unwrap();
                break;
            }
            Body::SyncThread(s) if s.since_seq == 0 => held_sync = Some(env.req_id),
            Body::SyncThread(_) => {
                let page = pb::MessagePage {
                    thread_id: THREAD,
                    last_seq: 1,
                    ..Default::default()
                };
                f.send(Envelope::new(env.req_id, Body::MessagePage(page)))
                    .await
                    .unwrap();
            }
            other => {
                if let Some(reply) = common_reply(&other, 1)
                    && env.req_id != 0
                {
                    f.send(Envelope::new(env.req_id, reply)).await.unwrap();
                }
            }
        }
        if let (Some(retry), Some(sync)) = (held_retry, held_sync) {
            let page = pb::MessagePage {
                thread_id: THREAD,
                messages: vec![own_entry(1, &first_id, &first_body)],
                has_more: false,
                last_seq: 1,
            };
            f.send(Envelope::new(sync, Body::MessagePage(page)))
                .await
                .unwrap();
            f.send(Envelope::new(retry, ack(1, first_id.clone(), true)))
                .await
                .unwrap();
            held_retry = None;
            held_sync = None;
        }
    }
    // Keep the link open until the client has seen the last ack.
    tokio::time::sleep(Duration::from_millis(300)).await;
    new_sends
}

#[tokio::test]
async fn a_send_settled_by_the_sync_before_its_retry_answers_does_not_block_the_next() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(scripted(listener));
    let (client, mut events) = common::scripted_client(addr);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !matches!(
        common::next_before(&mut events, deadline).await,
        Event::Synced
    ) {}
    client.post(THREAD, "first").await.unwrap();
    client.post(THREAD, "second").await.unwrap();

    let mut got = Vec::new();
    while got.len() < 2 {
        if let Event::Message(m) = common::next_before(&mut events, deadline).await {
            got.push((m.seq, m.body));
        }
    }
    assert_eq!(got, vec![(1, "first".into()), (2, "second".into())]);
    let new_sends = tokio::time::timeout_at(deadline, server)
        .await
        .expect("server script ends")
        .unwrap();
    assert_eq!(
        new_sends,
        vec!["second".to_string()],
        "the retry was not stored twice"
    );
    client.shutdown().await;
}
