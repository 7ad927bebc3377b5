//! Graceful shutdown: connected clients are told to come back later, the listener stops, and
//! what was acked before is there after a restart on the same data directory.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use common::*;
use confab_wire::pb::{self, ErrorCode};
use confab_wire::{Body, Envelope};
use futures::StreamExt;
use tokio::net::TcpStream;

/// After shutdown began, a new connection must not be served: either the connect fails, or
/// the connection ends without a HelloOk.
async fn assert_not_served(addr: std::net::SocketAddr) {
    let Ok(stream) = TcpStream::connect(addr).await else {
        return;
    };
    let mut framed = tokio_util::codec::Framed::new(stream, confab_wire::EnvelopeCodec::new());
    let hello = Envelope::new(
        1,
        Body::Hello(pb::Hello {
            protocol_major: 1,
            ..Default::default()
        }),
    );
    if futures::SinkExt::send(&mut framed, hello).await.is_err() {
        return;
    }
    loop {
        match tokio::time::timeout(WAIT, framed.next()).await {
            Err(_) => panic!("a connection made after shutdown is still open"),
            Ok(None | Some(Err(_))) => return,
            Ok(Some(Ok(env))) => assert!(
                !matches!(env.body, Some(Body::HelloOk(_))),
                "a connection made after shutdown was served"
            ),
        }
    }
}

#[tokio::test]
async fn shutdown_tells_clients_to_retry_and_stops_accepting() {
    let srv = TestServer::start().await;
    let mut a = srv.user("sd_a").await;
    let mut b = srv.user("sd_b").await;
    befriend(&mut a, &mut b).await;
    // Connected and past Hello (so surely accepted), but not logged in.
    let mut anonymous = srv.client().await;

    srv.running.shutdown.cancel();
    for c in [&mut a, &mut b, &mut anonymous] {
        let e = c.expect_closed_with(ErrorCode::ShuttingDown).await;
        assert!(e.fatal);
        assert!(e.retry_after_ms > 0, "{e}");
    }
    assert_not_served(srv.addr).await;

    let TestServer { running, dir, .. } = srv;
    tokio::time::timeout(WAIT, running.task)
        .await
        .expect("the server task ends")
        .expect("the server task did not panic");
    assert!(
        TcpStream::connect(running.addr).await.is_err(),
        "the listener is closed once the server has stopped"
    );
    drop(dir);
}

#[tokio::test]
async fn what_was_acked_before_shutdown_is_there_after_a_restart() {
    let srv = TestServer::start().await;
    let mut a = srv.user("persist_a").await;
    let mut b = srv.user("persist_b").await;
    let thread = befriend(&mut a, &mut b).await;
    let (gid, gthread) = group(&mut a, "durable group").await;
    join(&mut b, gid).await;
    let acks = [
        a.send_text(thread, "p1", "first 你好").await,
        a.send_text(thread, "p2", "second").await,
        b.send_text(gthread, "p3", "in the group").await,
    ];
    let a_token = a.token.clone();

    srv.running.shutdown.cancel();
    a.expect_closed_with(ErrorCode::ShuttingDown).await;
    b.expect_closed_with(ErrorCode::ShuttingDown).await;
    let TestServer {
        running,
        dir: _dir,
        mut cfg,
        db: _db,
        ..
    } = srv;
    tokio::time::timeout(WAIT, running.task)
        .await
        .expect("the server task ends")
        .expect("the server task did not panic");
    drop(running.service);

    // A new server on the same store.
    cfg.listen = "127.0.0.1:0".parse().expect("addr");
    let running = confab_server::start(cfg).await.expect("restart");
    let mut b = Client::connect(running.addr).await;
    assert!(matches!(
        b.login("persist_b", PASSWORD).await,
        Body::AuthOk(_)
    ));
    let got = b.sync(thread, 0).await;
    assert_eq!(got.len(), 2);
    for (m, ack) in got.iter().zip(&acks[..2]) {
        assert_eq!((m.seq, m.message_id), (ack.seq, ack.message_id));
    }
    assert_eq!(got[0].body, "first 你好");
    assert_eq!(got[1].body, "second");
    let in_group = b.sync(gthread, 0).await;
    let last = in_group.last().unwrap();
    assert_eq!(
        (last.seq, last.message_id),
        (acks[2].seq, acks[2].message_id)
    );
    assert_eq!(last.body, "in the group");
    assert_eq!(
        last.client_msg_id, "p3",
        "own messages keep their client_msg_id"
    );

    // Sessions survive too: the resume token still works, and a retried send is still a
    // duplicate.
    let mut a = Client::raw(running.addr).await;
    let hello = a.hello_with_token(&a_token).await;
    assert!(hello.auth.is_some(), "resume after restart");
    let again = a.send_text(thread, "p2", "second").await;
    assert!(again.duplicate);
    assert_eq!(again.message_id, acks[1].message_id);
    // And new messages continue the sequence.
    let next = a.send_text(thread, "p4", "after the restart").await;
    assert_eq!(next.seq, 3);

    running.shutdown.cancel();
    tokio::time::timeout(WAIT, running.task)
        .await
        .expect("the second server stops")
        .expect("no panic");
}
