//! The server applies its schema to a new store, starts again on it unchanged, and refuses a
//! store recorded at another schema version with a readable error.

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

    // Another version recorded in the store: refused, with the versions named.
    let old = confab_server::store::schema::SCHEMA_VERSION - 1;
    match &cfg.mysql_url {
        None => {
            let db = rusqlite::Connection::open(cfg.data_dir.join("confab.db")).unwrap();
            db.execute("UPDATE schema_version SET version = ?1", [old])
                .unwrap();
        }
        Some(url) => {
            use mysql_async::prelude::Queryable;
            let mut conn = mysql_async::Conn::from_url(url.as_str()).await.unwrap();
            conn.exec_drop("UPDATE schema_version SET version = ?", (old,))
                .await
                .unwrap();
        }
    }
    let err = match confab_server::start(cfg).await {
        Ok(_) => panic!("a store at schema version {old} must be refused"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains(&format!("schema version {old}")), "{err}");
}
