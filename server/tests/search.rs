//! Message search (protocol 1.6) on the embedded store and, with CONFAB_TEST_MYSQL, on
//! MariaDB: Chinese words inside sentences, English words, prefixes and phrases; only threads
//! the searcher may read, former members up to their cut-off; recalls and edits; paging and
//! limits.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use common::*;
use confab_wire::Body;
use confab_wire::pb::{self, ErrorCode};

fn search(query: &str, thread_id: u64, before: u64, limit: u32) -> Body {
    Body::SearchMessages(pb::SearchMessages {
        query: query.into(),
        thread_id,
        before_message_id: before,
        limit,
    })
}

/// The bodies found, newest first, and whether more remain.
async fn found(c: &mut Client, query: &str) -> Vec<String> {
    hits(c, query, 0, 0, 0).await.0
}

async fn hits(
    c: &mut Client,
    query: &str,
    thread: u64,
    before: u64,
    limit: u32,
) -> (Vec<String>, bool, Vec<pb::SearchHit>) {
    match c.ok(search(query, thread, before, limit)).await {
        Body::SearchResults(r) => (
            r.hits
                .iter()
                .map(|h| h.message.as_ref().unwrap().body.clone())
                .collect(),
            r.has_more,
            r.hits,
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn chinese_and_english_words_prefixes_and_phrases_are_found() {
    let srv = TestServer::start().await;
    let mut a = srv.user("se_a").await;
    let mut b = srv.user("se_b").await;
    let thread = befriend(&mut a, &mut b).await;
    for (i, text) in [
        "明天下午开会议，记得带电脑",
        "Deployment starts at nine",
        "we deploy to prod today",
        "你好，我是小明",
        "ship it now, please",
        "now ship it",
    ]
    .iter()
    .enumerate()
    {
        a.send_text(thread, &format!("s{i}"), text).await;
    }
    // A 2-character word inside a sentence without spaces, from either side.
    assert_eq!(found(&mut b, "会议").await, ["明天下午开会议，记得带电脑"]);
    assert_eq!(found(&mut a, "你好").await, ["你好，我是小明"]);
    assert_eq!(
        found(&mut a, "下午开会").await,
        ["明天下午开会议，记得带电脑"]
    );
    assert!(found(&mut a, "开议").await.is_empty(), "not adjacent");
    // A single character, as a prefix.
    assert_eq!(found(&mut a, "脑").await, ["明天下午开会议，记得带电脑"]);
    // English: case-insensitive words, prefixes, phrases in order.
    assert_eq!(found(&mut a, "DEPLOY").await, ["we deploy to prod today"]);
    assert_eq!(
        found(&mut a, "deploy*").await,
        ["we deploy to prod today", "Deployment starts at nine"],
        "newest first"
    );
    assert_eq!(
        found(&mut a, "\"ship it\"").await,
        ["now ship it", "ship it now, please"]
    );
    assert_eq!(found(&mut a, "\"it now\"").await, ["ship it now, please"]);
    // Mixed, and every term required.
    assert_eq!(
        found(&mut a, "明天 电脑").await,
        ["明天下午开会议，记得带电脑"]
    );
    assert!(found(&mut a, "明天 prod").await.is_empty());
    // Spans are byte offsets of the matches in the body.
    let (_, _, h) = hits(&mut a, "deploy* nine", 0, 0, 0).await;
    assert_eq!(h.len(), 1, "both terms needed");
    let body = &h[0].message.as_ref().unwrap().body;
    let marked: Vec<&str> = h[0]
        .spans
        .iter()
        .map(|s| &body[s.start as usize..s.end as usize])
        .collect();
    assert_eq!(marked, ["Deployment", "nine"]);
    // Only punctuation or stop words: an empty page, not an error.
    assert!(found(&mut a, "!!! the").await.is_empty());
}

#[tokio::test]
async fn only_threads_one_may_read_and_former_members_up_to_their_cut_off() {
    let srv = TestServer::start().await;
    let mut owner = srv.user("sa_owner").await;
    let mut leaver = srv.user("sa_leaver").await;
    let mut stranger = srv.user("sa_stranger").await;
    let (group_id, thread) = group(&mut owner, "sa_group").await;
    join(&mut leaver, group_id).await;
    owner.send_text(thread, "g1", "secret 计划 one").await;
    leaver
        .ok(Body::LeaveGroup(pb::LeaveGroup { group_id }))
        .await;
    owner.send_text(thread, "g2", "secret 计划 two").await;
    assert_eq!(
        found(&mut owner, "计划").await,
        ["secret 计划 two", "secret 计划 one"]
    );
    assert_eq!(
        found(&mut leaver, "计划").await,
        ["secret 计划 one"],
        "up to the cut-off"
    );
    assert!(
        found(&mut stranger, "计划").await.is_empty(),
        "never a member"
    );
    // Naming the thread does not open it either.
    assert!(
        hits(&mut stranger, "secret", thread, 0, 0)
            .await
            .0
            .is_empty()
    );
    // A DM of others is not found.
    let mut x = srv.user("sa_x").await;
    let dm = befriend(&mut owner, &mut x).await;
    x.send_text(dm, "d1", "secret between us").await;
    assert!(found(&mut leaver, "between").await.is_empty());
    assert_eq!(
        hits(&mut owner, "secret", dm, 0, 0).await.0,
        ["secret between us"]
    );
}

#[tokio::test]
async fn recalled_messages_vanish_and_edited_ones_are_found_by_their_new_text() {
    let srv = TestServer::start().await;
    let mut a = srv.user("sr_a").await;
    let mut b = srv.user("sr_b").await;
    let thread = befriend(&mut a, &mut b).await;
    let gone = a.send_text(thread, "r1", "oops 密码 is hunter2").await;
    let fixed = a.send_text(thread, "r2", "meeting at 三点").await;
    a.ok(Body::Recall(pb::Recall {
        thread_id: thread,
        message_id: gone.message_id,
        client_msg_id: "r3".into(),
    }))
    .await;
    a.ok(Body::Edit(pb::Edit {
        thread_id: thread,
        message_id: fixed.message_id,
        client_msg_id: "r4".into(),
        body: "meeting at 四点".into(),
    }))
    .await;
    assert!(found(&mut b, "密码").await.is_empty());
    assert!(found(&mut b, "hunter2").await.is_empty());
    assert!(found(&mut b, "三点").await.is_empty(), "the old text");
    assert_eq!(found(&mut b, "四点").await, ["meeting at 四点"]);
    // The edit entry itself is not a second hit.
    assert_eq!(found(&mut b, "meeting").await.len(), 1);
}

#[tokio::test]
async fn results_page_newest_first_and_bad_queries_are_typed_errors() {
    let srv = TestServer::start_with(|c| c.search_per_minute = 1000).await;
    let mut a = srv.user("sp_a").await;
    let mut b = srv.user("sp_b").await;
    let thread = befriend(&mut a, &mut b).await;
    for i in 0..7 {
        a.send_text(thread, &format!("p{i}"), &format!("page 页 {i}"))
            .await;
    }
    let mut seen = Vec::new();
    let mut before = 0;
    loop {
        let (bodies, more, h) = hits(&mut b, "页", 0, before, 3).await;
        assert!(bodies.len() <= 3);
        seen.extend(bodies);
        before = h
            .last()
            .map_or(0, |h| h.message.as_ref().unwrap().message_id);
        if !more {
            break;
        }
    }
    let want: Vec<String> = (0..7).rev().map(|i| format!("page 页 {i}")).collect();
    assert_eq!(seen, want, "every hit once, newest first");
    let e = b.fail(search(&"x".repeat(257), 0, 0, 0)).await;
    assert_eq!(e.code, ErrorCode::BadRequest as i32);
    let many = (0..21)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(
        b.fail_code(search(&many, 0, 0, 0)).await,
        ErrorCode::BadRequest
    );
}

#[tokio::test]
async fn searching_is_rate_limited_per_connection() {
    let srv = TestServer::start_with(|c| c.search_per_minute = 3).await;
    let mut a = srv.user("sl_a").await;
    for _ in 0..3 {
        a.ok(search("anything", 0, 0, 0)).await;
    }
    let e = a.fail(search("anything", 0, 0, 0)).await;
    assert_eq!(e.code, ErrorCode::RateLimited as i32);
    assert!(e.retry_after_ms > 0);
    // Another connection has its own allowance.
    let mut a2 = login_as(&srv, "sl_a").await;
    a2.ok(search("anything", 0, 0, 0)).await;
}
