//! MySQL/MariaDB-specific behaviour: concurrent writers on one thread (several nodes on one
//! database), connections killed during a burst, and exact round trips of awkward text.
//! They need `CONFAB_TEST_MYSQL` (scripts/test.sh sets it and runs them with --include-ignored).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use confab_wire::Body;
use confab_wire::pb::{self, ErrorCode};
use mysql_async::prelude::Queryable;

const NEEDS_MYSQL: &str = "set CONFAB_TEST_MYSQL (scripts/test.sh does)";

async fn mysql(db: &TestDb) -> mysql_async::Conn {
    mysql_async::Conn::from_url(db.url())
        .await
        .expect("connect to the test database")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// Ignored in the plain `cargo test` (no database there); scripts/test.sh, and so CI, runs it
// against MariaDB with CONFAB_TEST_MYSQL set and --include-ignored.
#[ignore = "needs MariaDB via CONFAB_TEST_MYSQL; scripts/test.sh runs it"]
async fn concurrent_writers_on_one_thread_get_gap_free_commit_ordered_seqs() {
    let first = TestServer::start().await;
    assert!(first.db.is_some(), "{NEEDS_MYSQL}");
    // Two more nodes on the same database: three writers race for the same thread row.
    let mut cfg2 = first.cfg.clone();
    cfg2.listen = "127.0.0.1:0".parse().unwrap();
    cfg2.node_id = 2;
    let second = confab_server::start(cfg2.clone()).await.expect("node 2");
    let mut cfg3 = cfg2.clone();
    cfg3.node_id = 3;
    let third = confab_server::start(cfg3).await.expect("node 3");

    let mut owner = first.user("cw_owner").await;
    let (gid, thread) = group(&mut owner, "race").await;
    let mut senders = Vec::new();
    for (i, addr) in [first.addr, second.addr, third.addr]
        .iter()
        .cycle()
        .take(6)
        .enumerate()
    {
        let mut c = Client::connect(*addr).await;
        c.register(&format!("cw_{i}")).await;
        join(&mut c, gid).await;
        senders.push(c);
    }
    let per = 40;
    let mut tasks = Vec::new();
    for (i, mut c) in senders.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut acks = Vec::new();
            for k in 0..per {
                let cmid = format!("{i}-{k}");
                acks.push(c.send_text(thread, &cmid, &format!("s{i} m{k}")).await);
                if k % 10 == 0 {
                    // A retry of the same client_msg_id is stored once.
                    let again = c.send_text(thread, &cmid, &format!("s{i} m{k}")).await;
                    assert!(again.duplicate);
                    assert_eq!(again.seq, acks.last().unwrap().seq);
                }
            }
            acks
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    let history = owner.sync(thread, 0).await;
    let seqs: Vec<u64> = history.iter().map(|m| m.seq).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "gap-free"
    );
    let ids: HashSet<u64> = history.iter().map(|m| m.message_id).collect();
    assert_eq!(ids.len(), history.len(), "message ids unique across nodes");
    for ack in &acked {
        let m = history
            .iter()
            .find(|m| m.message_id == ack.message_id)
            .expect("acked message stored");
        assert_eq!(m.seq, ack.seq);
    }
    let texts = history
        .iter()
        .filter(|m| m.kind == pb::MessageKind::Text as i32)
        .count();
    assert_eq!(texts, 6 * per, "each send stored exactly once");
    // Within one sender, seq order is send order (commit order).
    for i in 0..6 {
        let mine: Vec<&pb::ChatMessage> = history
            .iter()
            .filter(|m| m.body.starts_with(&format!("s{i} ")))
            .collect();
        let ks: Vec<usize> = mine
            .iter()
            .map(|m| m.body[format!("s{i} m").len()..].parse().unwrap())
            .collect();
        assert_eq!(ks, (0..per).collect::<Vec<_>>());
    }
    second.shutdown.cancel();
    third.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// Ignored in the plain `cargo test` (no database there); scripts/test.sh, and so CI, runs it
// against MariaDB with CONFAB_TEST_MYSQL set and --include-ignored.
#[ignore = "needs MariaDB via CONFAB_TEST_MYSQL; scripts/test.sh runs it"]
async fn killed_mysql_connections_lose_nothing_acked_and_the_server_recovers() {
    let srv = TestServer::start().await;
    let db = srv.db.as_ref().expect(NEEDS_MYSQL);
    let mut a = srv.user("kill_a").await;
    let mut b = srv.user("kill_b").await;
    let thread = befriend(&mut a, &mut b).await;

    let mut admin = mysql(db).await;
    let mut acked = Vec::new();
    let mut unavailable = 0;
    for i in 0..300u64 {
        if i % 50 == 25 {
            // Kill every server connection to this database (not our own).
            let ids: Vec<u64> = admin
                .exec(
                    "SELECT id FROM information_schema.processlist WHERE db = ? AND id <> CONNECTION_ID()",
                    (db.name.clone(),),
                )
                .await
                .unwrap();
            for id in ids {
                let _ = admin.query_drop(format!("KILL {id}")).await;
            }
        }
        let reply = a
            .request(Body::Send(pb::Send {
                thread_id: thread,
                client_msg_id: format!("k{i}"),
                body: format!("burst {i}"),
            }))
            .await;
        match reply {
            Body::SendAck(ack) => acked.push(ack),
            Body::Error(e) => {
                assert_eq!(
                    ErrorCode::try_from(e.code),
                    Ok(ErrorCode::Unavailable),
                    "{e}"
                );
                unavailable += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        acked.len() > 200,
        "the server recovered by itself ({} acked, {unavailable} unavailable)",
        acked.len()
    );
    // Every acked message is in the database.
    let stored: Vec<(u64, u64)> = admin
        .exec(
            "SELECT seq, message_id FROM messages WHERE thread_id = ? ORDER BY seq",
            (thread,),
        )
        .await
        .unwrap();
    let ids: HashSet<u64> = stored.iter().map(|(_, id)| *id).collect();
    for ack in &acked {
        assert!(
            ids.contains(&ack.message_id),
            "acked message {} missing",
            ack.message_id
        );
    }
    let seqs: Vec<u64> = stored.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "gap-free after the kills"
    );
    // And it still serves.
    let after = a.send_text(thread, "after-kills", "still here").await;
    assert_eq!(after.seq, seqs.len() as u64 + 1);
}

#[tokio::test]
// Ignored in the plain `cargo test` (no database there); scripts/test.sh, and so CI, runs it
// against MariaDB with CONFAB_TEST_MYSQL set and --include-ignored.
#[ignore = "needs MariaDB via CONFAB_TEST_MYSQL; scripts/test.sh runs it"]
async fn awkward_text_round_trips_exactly() {
    let srv = TestServer::start().await;
    let db = srv.db.as_ref().expect(NEEDS_MYSQL);
    // User names cannot hold quotes (letters, digits, `_-.` only); group names can.
    let names = ["Obrien", "小明_2", "Ångström", "emoji.fan", "back-slash"];
    let mut clients = Vec::new();
    for n in names {
        clients.push(srv.user(n).await);
    }
    let (first, rest) = clients.split_at_mut(1);
    let thread = befriend(&mut first[0], &mut rest[0]).await;
    let bodies = [
        "quotes ' \" `backticks` and ; DROP TABLE users; --",
        "back\\slash \\n not a newline \\\\ double",
        "4-byte emoji 👨‍👩‍👧‍👦 🇨🇳 𠜎𠜱 and CJK 中文输入法",
        "NUL-free binary-looking: \u{1}\u{7f}\u{80}\u{ff}\u{fffd}",
        "tabs\tand\nnewlines\r\n and % and _ wildcards",
    ];
    let bodies: Vec<String> = bodies
        .iter()
        .map(|b| {
            b.chars()
                .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
                .collect()
        })
        .collect();
    for (i, b) in bodies.iter().enumerate() {
        first[0].send_text(thread, &format!("aw{i}"), b).await;
    }
    let got = rest[0].sync(thread, 0).await;
    let got: Vec<&str> = got.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(got, bodies.iter().map(String::as_str).collect::<Vec<_>>());

    // Names, exactly as registered, through the API and in the table.
    for n in names {
        let Body::Profile(p) = first[0]
            .ok(Body::GetProfile(pb::GetProfile {
                user_id: 0,
                name: n.to_lowercase(),
            }))
            .await
        else {
            panic!()
        };
        assert_eq!(p.user.unwrap().name, n);
    }
    let mut conn = mysql(db).await;
    let stored: Vec<String> = conn
        .query("SELECT name FROM users ORDER BY id")
        .await
        .unwrap();
    assert_eq!(stored, names.to_vec());
    // Search with LIKE wildcards in the query matches them literally.
    let Body::UserList(list) = first[0]
        .ok(Body::SearchUsers(pb::SearchUsers {
            query: "_".into(),
            limit: 10,
        }))
        .await
    else {
        panic!()
    };
    assert_eq!(
        list.users.len(),
        1,
        "only 小明_2 contains a literal underscore"
    );

    let group_name = "it's a \"quoted\" \\ group 群 🎉";
    let (gid, _) = group(&mut first[0], group_name).await;
    let Body::GroupList(found) = first[0]
        .ok(Body::SearchGroups(pb::SearchGroups {
            query: "\"quoted\" \\".into(),
            limit: 5,
        }))
        .await
    else {
        panic!()
    };
    assert_eq!(found.groups.len(), 1);
    assert_eq!(found.groups[0].group_id, gid);
    assert_eq!(found.groups[0].name, group_name);
    let stored: Vec<String> = conn.query("SELECT name FROM chat_groups").await.unwrap();
    assert_eq!(stored, vec![group_name.to_owned()]);
}
