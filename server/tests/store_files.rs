//! The embedded store's files are private to the server's user: a new data directory is 0700,
//! and the database, its WAL and shared-memory files, the redo log and the lock file are 0600.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::os::unix::fs::PermissionsExt;

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn a_new_store_is_readable_by_its_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("new").join("data");
    // The embedded store whatever CONFAB_TEST_MYSQL says.
    let cfg = common::base_config(&data, None);
    let running = confab_server::start(cfg).await.expect("server starts");
    // A registration makes the writer commit, so every file exists.
    let mut c = common::Client::connect(running.addr).await;
    c.register("modes").await;
    assert_eq!(mode(&data), 0o700, "data directory");
    for name in [
        "confab.db",
        "confab.db-wal",
        "confab.db-shm",
        "confab.db-redo",
        "confab.db-lock",
    ] {
        assert_eq!(mode(&data.join(name)), 0o600, "{name}");
    }
    running.shutdown.cancel();
}
