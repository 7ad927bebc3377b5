//! Device sessions (protocol 1.4): a user sees every session of the account with where it came
//! from, and ends another one at once; on the embedded store and, with CONFAB_TEST_MYSQL, on
//! MariaDB.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use common::*;
use confab_wire::Body;
use confab_wire::pb::{self, ErrorCode};

async fn devices(c: &mut Client) -> Vec<pb::Device> {
    match c.ok(Body::ListDevices(pb::ListDevices {})).await {
        Body::DeviceList(l) => l.devices,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn devices_are_listed_and_another_one_is_revoked_at_once() {
    let srv = TestServer::start().await;
    let mut laptop = srv.user("dv_a").await;
    let mut phone = login_as(&srv, "dv_a").await;
    let listed = devices(&mut laptop).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed[0].current && !listed[1].current, "{listed:?}");
    for d in &listed {
        assert_eq!(d.address, "127.0.0.1");
        assert!(d.created_ms > 0 && d.last_seen_ms >= d.created_ms);
    }
    let phone_id = listed[1].device_id;
    assert!(
        devices(&mut phone).await[1].current,
        "each sees its own as current"
    );

    // The current one cannot be revoked (that is a logout); unknown ones are not found.
    let mine = listed[0].device_id;
    let revoke = |id| Body::RevokeDevice(pb::RevokeDevice { device_id: id });
    assert_eq!(laptop.fail_code(revoke(mine)).await, ErrorCode::Conflict);
    assert_eq!(laptop.fail_code(revoke(999_999)).await, ErrorCode::NotFound);
    assert_eq!(laptop.fail_code(revoke(0)).await, ErrorCode::BadRequest);
    // Another user's device is not found either.
    let mut other = srv.user("dv_b").await;
    assert_eq!(other.fail_code(revoke(phone_id)).await, ErrorCode::NotFound);

    laptop.ok(revoke(phone_id)).await;
    let e = phone.expect_closed().await;
    assert!(
        e.as_ref()
            .is_some_and(|e| e.code == ErrorCode::AuthFailed as i32),
        "{e:?}"
    );
    let left = devices(&mut laptop).await;
    assert_eq!(left.len(), 1);
    assert_eq!(
        laptop.fail_code(revoke(phone_id)).await,
        ErrorCode::NotFound
    );
}

/// A session unused for `--session-idle-days` expires: its resume token stops working (and
/// one used since does not).
#[tokio::test]
async fn an_idle_session_expires() {
    let srv = TestServer::start().await;
    let a = srv.user("idle_a").await;
    let b = srv.user("idle_b").await;
    // a's session was last used 91 days ago (the default limit is 90).
    let long_ago = confab_server::ids::now_ms() - 91 * 86_400_000;
    match &srv.cfg.mysql_url {
        None => {
            let db = rusqlite::Connection::open(srv.cfg.data_dir.join("confab.db")).unwrap();
            db.execute(
                "UPDATE devices SET last_seen_ms = ?1 WHERE id = ?2",
                rusqlite::params![long_ago, a.device_id as i64],
            )
            .unwrap();
        }
        Some(url) => {
            use mysql_async::prelude::Queryable;
            let mut conn = mysql_async::Conn::from_url(url.as_str()).await.unwrap();
            conn.exec_drop(
                "UPDATE devices SET last_seen_ms = ? WHERE id = ?",
                (long_ago, a.device_id),
            )
            .await
            .unwrap();
        }
    }
    let mut c = Client::raw(srv.addr).await;
    assert!(c.hello_with_token(&a.token).await.resume_failed, "expired");
    let mut c = Client::raw(srv.addr).await;
    assert!(!c.hello_with_token(&b.token).await.resume_failed, "in use");
}
