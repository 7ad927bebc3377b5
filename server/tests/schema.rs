//! The server applies its schema to a new store, starts again on it unchanged, migrates a store
//! of an older version step by step, and refuses a newer one (or one too old) with a readable
//! error.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use common::*;
use confab_wire::Body;

#[tokio::test]
async fn same_version_restarts_and_another_version_is_refused() {
    let srv = TestServer::start().await;
    let mut a = srv.user("schema_a").await;
    let mut b = srv.user("schema_b").await;
    let thread = befriend(&mut a, &mut b).await;
    a.send_text(thread, "s1", "kept").await;
    let TestServer {
        running,
        dir: _dir,
        mut cfg,
        db: _db,
        ..
    } = srv;
    running.shutdown.cancel();
    running.task.await.unwrap();
    drop(running.service);

    // Same version: starts, and the data is there.
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    let again = confab_server::start(cfg.clone())
        .await
        .expect("restart on the same store");
    let mut b = Client::connect(again.addr).await;
    assert!(matches!(
        b.login("schema_b", PASSWORD).await,
        Body::AuthOk(_)
    ));
    assert_eq!(b.sync(thread, 0).await.len(), 1);
    again.shutdown.cancel();
    again.task.await.unwrap();
    drop(again.service);

    // A store of the previous version (2: no blocks table) is migrated at start, its data kept;
    // a newer one, and one older than any migration, are refused with the versions named.
    set_version(&cfg, 2, true).await;
    let again = confab_server::start(cfg.clone())
        .await
        .expect("a version 2 store is migrated");
    let mut b = Client::connect(again.addr).await;
    assert!(matches!(
        b.login("schema_b", PASSWORD).await,
        Body::AuthOk(_)
    ));
    assert_eq!(b.sync(thread, 0).await.len(), 1, "the data is kept");
    // Schema 7 indexes the older messages for search in the background.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let reply = b
            .ok(Body::SearchMessages(confab_wire::pb::SearchMessages {
                query: "kept".into(),
                ..Default::default()
            }))
            .await;
        let Body::SearchResults(r) = reply else {
            panic!("{reply:?}")
        };
        if r.hits.len() == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the old message was never indexed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Schema 8: a message stored before it takes a reply and a reaction.
    let old = b.sync(thread, 0).await.remove(0);
    let reply = b
        .ok(Body::Send(confab_wire::pb::Send {
            thread_id: thread,
            client_msg_id: "s2".into(),
            body: "re".into(),
            reply_to: old.message_id,
        }))
        .await;
    assert!(matches!(reply, Body::SendAck(_)), "{reply:?}");
    let react = b
        .ok(Body::React(confab_wire::pb::React {
            thread_id: thread,
            message_id: old.message_id,
            emoji: "👍".into(),
            remove: false,
        }))
        .await;
    assert!(matches!(react, Body::SendAck(_)), "{react:?}");
    let after = b.sync(thread, 0).await;
    assert_eq!(after[0].reactions.len(), 1, "{after:?}");
    assert_eq!(
        after[1].quote.as_ref().map(|q| q.excerpt.as_str()),
        Some("kept")
    );
    again.shutdown.cancel();
    again.task.await.unwrap();
    drop(again.service);
    assert_eq!(
        versions(&cfg).await,
        (2..=confab_server::store::schema::SCHEMA_VERSION).collect::<Vec<_>>(),
        "each step recorded"
    );
    assert!(blocks_table(&cfg).await, "the migration made the table");

    for (v, words) in [
        (
            confab_server::store::schema::SCHEMA_VERSION + 1,
            "newer than this server",
        ),
        (1, "older than any this server migrates from"),
    ] {
        set_version(&cfg, v, false).await;
        let err = match confab_server::start(cfg.clone()).await {
            Ok(_) => panic!("a store at schema version {v} must be refused"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains(&format!("schema version {v}")) && err.contains(words),
            "{err}"
        );
    }
}

/// Records `version` as the store's only one (and drops the tables of later steps, as an older
/// server would not have them).
async fn set_version(cfg: &confab_server::config::Config, version: i64, drop_later: bool) {
    match &cfg.mysql_url {
        None => {
            let db = rusqlite::Connection::open(cfg.data_dir.join("confab.db")).unwrap();
            db.execute("DELETE FROM schema_version", []).unwrap();
            db.execute(
                "INSERT INTO schema_version (version, applied_ms) VALUES (?1, 0)",
                [version],
            )
            .unwrap();
            if drop_later {
                db.execute_batch(
                    "DROP TABLE blocks; DROP TABLE group_bans; \
                     ALTER TABLE devices DROP COLUMN client; ALTER TABLE devices DROP COLUMN address; \
                     DROP TABLE invites; DROP TABLE audit_log; \
                     ALTER TABLE users DROP COLUMN disabled_ms; ALTER TABLE users DROP COLUMN deleted_ms; \
                     ALTER TABLE users DROP COLUMN is_admin; ALTER TABLE chat_groups DROP COLUMN deleted_ms; \
                     DROP TABLE message_search; DROP TABLE search_backfill; \
                     ALTER TABLE messages DROP COLUMN reply_to; \
                     ALTER TABLE messages DROP COLUMN reactions_seq; DROP TABLE reactions;",
                )
                .unwrap();
            }
        }
        Some(url) => {
            use mysql_async::prelude::Queryable;
            let mut conn = mysql_async::Conn::from_url(url.as_str()).await.unwrap();
            conn.query_drop("DELETE FROM schema_version").await.unwrap();
            conn.exec_drop(
                "INSERT INTO schema_version (version, applied_ms) VALUES (?, 0)",
                (version,),
            )
            .await
            .unwrap();
            if drop_later {
                conn.query_drop("DROP TABLE blocks").await.unwrap();
                conn.query_drop("DROP TABLE group_bans").await.unwrap();
                conn.query_drop("ALTER TABLE devices DROP COLUMN client, DROP COLUMN address")
                    .await
                    .unwrap();
                conn.query_drop("DROP TABLE invites").await.unwrap();
                conn.query_drop("DROP TABLE audit_log").await.unwrap();
                conn.query_drop(
                    "ALTER TABLE users DROP COLUMN disabled_ms, DROP COLUMN deleted_ms, DROP COLUMN is_admin",
                )
                .await
                .unwrap();
                conn.query_drop("ALTER TABLE chat_groups DROP COLUMN deleted_ms")
                    .await
                    .unwrap();
                conn.query_drop("DROP TABLE message_search").await.unwrap();
                conn.query_drop("DROP TABLE search_backfill").await.unwrap();
                conn.query_drop(
                    "ALTER TABLE messages DROP COLUMN reply_to, DROP COLUMN reactions_seq",
                )
                .await
                .unwrap();
                conn.query_drop("DROP TABLE reactions").await.unwrap();
            }
        }
    }
}

async fn versions(cfg: &confab_server::config::Config) -> Vec<i64> {
    match &cfg.mysql_url {
        None => {
            let db = rusqlite::Connection::open(cfg.data_dir.join("confab.db")).unwrap();
            let mut st = db
                .prepare("SELECT version FROM schema_version ORDER BY version")
                .unwrap();
            st.query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<Vec<i64>, _>>()
                .unwrap()
        }
        Some(url) => {
            use mysql_async::prelude::Queryable;
            let mut conn = mysql_async::Conn::from_url(url.as_str()).await.unwrap();
            conn.query("SELECT version FROM schema_version ORDER BY version")
                .await
                .unwrap()
        }
    }
}

async fn blocks_table(cfg: &confab_server::config::Config) -> bool {
    match &cfg.mysql_url {
        None => {
            let db = rusqlite::Connection::open(cfg.data_dir.join("confab.db")).unwrap();
            db.query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'blocks'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
                == 1
        }
        Some(url) => {
            use mysql_async::prelude::Queryable;
            let mut conn = mysql_async::Conn::from_url(url.as_str()).await.unwrap();
            let n: Option<i64> = conn
                .query_first(
                    "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'blocks'",
                )
                .await
                .unwrap();
            n == Some(1)
        }
    }
}
