//! The group-commit writers: batches run without savepoints, and a job that fails after
//! writing makes the writer run the batch again with one, so its writes are undone while the
//! rest of the batch commits. On the embedded store, and on MariaDB with `CONFAB_TEST_MYSQL`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use confab_server::params;
use confab_server::store::mysql::{MysqlBackend, MysqlConfig};
use confab_server::store::sqlite::{SqliteBackend, SqliteConfig};
use confab_server::store::{Backend, Counter, Store, StoreError, Tx, TxExt};
use tokio::sync::Notify;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_failing_after_its_writes_is_undone_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Store::new(SqliteBackend::open(&SqliteConfig::new(dir.path().join("w.db"))).unwrap());
    failed_job_is_undone_alone(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB via CONFAB_TEST_MYSQL; scripts/test.sh runs it"]
async fn a_job_failing_after_its_writes_is_undone_alone_on_mysql() {
    let db = common::TestDb::create()
        .await
        .expect("set CONFAB_TEST_MYSQL (scripts/test.sh does)");
    let mut cfg = MysqlConfig::new(db.url());
    cfg.writers = 1;
    let store = Store::new(MysqlBackend::open(&cfg).await.unwrap());
    failed_job_is_undone_alone(&store).await;
}

async fn failed_job_is_undone_alone<B: Backend>(store: &Store<B>) {
    let thread = store
        .write(|tx| {
            Box::pin(async move {
                tx.insert(
                    "INSERT INTO threads (kind, last_seq, activity_id, created_ms) VALUES (2, 0, 1, 0)",
                    &[],
                )
                .await
            })
        })
        .await
        .unwrap();
    // Hold the writer inside a first batch so that the next jobs queue up and share a batch.
    let gate = Arc::new(Notify::new());
    let held = gate.clone();
    let blocker = store
        .enqueue_write(
            0,
            move |_tx| {
                let held = held.clone();
                // No timer here: the SQLite writer runs jobs outside the tokio runtime. The
                // test's own timeouts bound it.
                Box::pin(async move {
                    held.notified().await;
                    Ok(())
                })
            },
            |_| {},
        )
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let insert = |version: i64, fail: bool| {
        store
            .enqueue_write(
                0,
                move |tx| {
                    Box::pin(async move {
                        tx.exec(
                            "INSERT INTO schema_version (version, applied_ms) VALUES (?, 0)",
                            params![version],
                        )
                        .await?;
                        if fail {
                            return Err(StoreError::Conflict("refused after writing"));
                        }
                        Ok(version)
                    })
                },
                |_| {},
            )
            .unwrap()
    };
    // Seq allocations in the same batch: the failed job's is undone, so the next one gets it.
    let seq = |fail: bool| {
        store
            .enqueue_write(
                thread,
                move |tx| {
                    Box::pin(async move {
                        let seq = tx
                            .bump(Counter::ThreadSeq { activity_id: 2 }, thread)
                            .await?
                            .ok_or(StoreError::NotFound("thread"))?;
                        if fail {
                            return Err(StoreError::Conflict("refused after a seq"));
                        }
                        Ok(seq as i64)
                    })
                },
                |_| {},
            )
            .unwrap()
    };
    let before = insert(100, false);
    let seq_failing = seq(true);
    let failing = insert(101, true);
    let seq_first = seq(false);
    let after = insert(102, false);
    let seq_second = seq(false);
    gate.notify_one();

    tokio::time::timeout(WAIT, blocker)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        tokio::time::timeout(WAIT, before).await.unwrap().unwrap(),
        Ok(100)
    );
    assert_eq!(
        tokio::time::timeout(WAIT, failing).await.unwrap().unwrap(),
        Err(StoreError::Conflict("refused after writing"))
    );
    assert_eq!(
        tokio::time::timeout(WAIT, after).await.unwrap().unwrap(),
        Ok(102)
    );
    assert!(
        tokio::time::timeout(WAIT, seq_failing)
            .await
            .unwrap()
            .unwrap()
            .is_err()
    );
    assert_eq!(
        tokio::time::timeout(WAIT, seq_first)
            .await
            .unwrap()
            .unwrap(),
        Ok(1)
    );
    assert_eq!(
        tokio::time::timeout(WAIT, seq_second)
            .await
            .unwrap()
            .unwrap(),
        Ok(2)
    );

    let stats = store.backend().stats();
    assert_eq!(stats.retried_batches, 1, "{stats:?}");
    assert_eq!(stats.failed_commits, 0);
    let versions = store
        .read(|tx| {
            Box::pin(async move {
                let rows = tx
                    .query("SELECT version FROM schema_version ORDER BY version", &[])
                    .await?;
                rows.iter().map(|r| r.i64(0)).collect::<Result<Vec<_>, _>>()
            })
        })
        .await
        .unwrap();
    assert_eq!(
        versions,
        vec![confab_server::store::schema::SCHEMA_VERSION, 100, 102],
        "the failed job's row is gone"
    );
    // A job that fails before writing costs no second run.
    let refused = store
        .write(|tx| {
            Box::pin(async move {
                tx.query_opt("SELECT version FROM schema_version WHERE version = 2", &[])
                    .await?;
                Err::<(), _>(StoreError::Forbidden("refused before writing"))
            })
        })
        .await;
    assert_eq!(
        refused,
        Err(StoreError::Forbidden("refused before writing"))
    );
    assert_eq!(store.backend().stats().retried_batches, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_embedded_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let first = Store::new(SqliteBackend::open(&SqliteConfig::new(&path)).unwrap());
    let mut cfg = SqliteConfig::new(&path);
    cfg.lock_wait = Duration::from_millis(200);
    let Err(err) = SqliteBackend::open(&cfg) else {
        panic!("a second writer opened the same database and redo log");
    };
    assert!(err.to_string().contains("in use"), "{err}");
    // Once the first store is gone (its writer thread exits), the database opens again.
    drop(first);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        match SqliteBackend::open(&SqliteConfig::new(&path)) {
            Ok(_) => break,
            Err(e) => {
                assert!(std::time::Instant::now() < deadline, "still refused: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}
