//! Replies and reactions (protocol 1.7) on the embedded store and, with CONFAB_TEST_MYSQL, on
//! MariaDB: a reply carries a quote of its target as the target reads now; reactions are
//! entries of the thread, one per user and emoji, counted under their message.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use common::*;
use confab_wire::Body;
use confab_wire::pb::{self, ErrorCode};

fn reply(thread: u64, cmid: &str, text: &str, to: u64) -> Body {
    Body::Send(pb::Send {
        thread_id: thread,
        client_msg_id: cmid.into(),
        body: text.into(),
        reply_to: to,
    })
}

fn react(thread: u64, message: u64, emoji: &str, remove: bool) -> Body {
    Body::React(pb::React {
        thread_id: thread,
        message_id: message,
        emoji: emoji.into(),
        remove,
    })
}

async fn ack(c: &mut Client, body: Body) -> pb::SendAck {
    match c.ok(body).await {
        Body::SendAck(a) => a,
        other => panic!("{other:?}"),
    }
}

/// The thread's entry with this message id, as `c` syncs it.
async fn entry(c: &mut Client, thread: u64, message_id: u64) -> pb::ChatMessage {
    c.sync(thread, 0)
        .await
        .into_iter()
        .find(|m| m.message_id == message_id)
        .expect("the entry is in the thread")
}

/// (emoji, count, mine) of a message's reactions, as `c` reads them with History.
async fn counts(c: &mut Client, thread: u64, message_id: u64) -> (Vec<(String, u32, bool)>, u64) {
    let page = match c
        .ok(Body::History(pb::History {
            thread_id: thread,
            before_seq: 0,
            limit: 0,
        }))
        .await
    {
        Body::MessagePage(p) => p,
        other => panic!("{other:?}"),
    };
    let m = page
        .messages
        .into_iter()
        .find(|m| m.message_id == message_id)
        .expect("in the newest page");
    (
        m.reactions
            .iter()
            .map(|r| (r.emoji.clone(), r.count, r.mine))
            .collect(),
        m.reactions_seq,
    )
}

#[tokio::test]
async fn a_reply_quotes_its_target_as_it_reads_now() {
    let srv = TestServer::start().await;
    let mut a = srv.user("rp_a").await;
    let mut b = srv.user("rp_b").await;
    let thread = befriend(&mut a, &mut b).await;
    let long = format!("明天下午开会议，{}", "记得带电脑".repeat(20));
    let first = a.send_text(thread, "rp1", &long).await;
    b.message_push(thread).await;

    let r = ack(&mut b, reply(thread, "rp2", "好的", first.message_id)).await;
    // The push already holds the quote: sender, seq, the start of the text in whole
    // characters, and that it goes on.
    let pushed = a.message_push(thread).await;
    assert_eq!((pushed.seq, pushed.reply_to), (r.seq, first.message_id));
    let q = pushed.quote.expect("a quote");
    assert_eq!(q.message_id, first.message_id);
    assert_eq!(q.seq, first.seq);
    assert_eq!(q.sender.as_ref().unwrap().name, "rp_a");
    assert!(q.truncated && !q.recalled);
    assert!(
        q.excerpt.len() <= 120 && long.starts_with(&q.excerpt),
        "{q:?}"
    );
    assert_eq!(q.excerpt.chars().count(), 40, "3-byte characters, none cut");

    // An edit shows in the quote of a later read; a recall too.
    a.ok(Body::Edit(pb::Edit {
        thread_id: thread,
        message_id: first.message_id,
        body: "moved to Friday".into(),
        client_msg_id: "rp3".into(),
    }))
    .await;
    let q = entry(&mut b, thread, r.message_id).await.quote.unwrap();
    assert_eq!(
        (q.excerpt.as_str(), q.truncated),
        ("moved to Friday", false)
    );
    a.ok(Body::Recall(pb::Recall {
        thread_id: thread,
        message_id: first.message_id,
        client_msg_id: "rp4".into(),
    }))
    .await;
    let q = entry(&mut a, thread, r.message_id).await.quote.unwrap();
    assert!(q.recalled && q.excerpt.is_empty(), "{q:?}");

    // A retry of the reply is answered from the first send, although its target is gone now.
    let again = ack(&mut b, reply(thread, "rp2", "好的", first.message_id)).await;
    assert!(again.duplicate && again.seq == r.seq);
    // A new reply to the recalled message is refused; so is one to an unknown id, to an entry
    // that is no text message (the edit), and to a message of another thread.
    let e = b.fail(reply(thread, "rp5", "?", first.message_id)).await;
    assert_eq!(e.code, ErrorCode::Conflict as i32, "{e:?}");
    assert_eq!(
        b.fail_code(reply(thread, "rp6", "?", 999_999_999)).await,
        ErrorCode::NotFound
    );
    let edit_entry = a
        .sync(thread, 0)
        .await
        .into_iter()
        .find(|m| m.kind == pb::MessageKind::Edit as i32)
        .unwrap();
    assert_eq!(
        b.fail_code(reply(thread, "rp7", "?", edit_entry.message_id))
            .await,
        ErrorCode::NotFound
    );
    let mut c = srv.user("rp_c").await;
    let other = befriend(&mut a, &mut c).await;
    let elsewhere = a.send_text(other, "rp8", "for c").await;
    assert_eq!(
        b.fail_code(reply(thread, "rp9", "?", elsewhere.message_id))
            .await,
        ErrorCode::NotFound
    );
    // Someone outside the thread learns nothing of its ids: the thread refuses them first.
    assert_eq!(
        c.fail_code(reply(thread, "rp10", "?", first.message_id))
            .await,
        ErrorCode::Forbidden
    );
}

#[tokio::test]
async fn reactions_are_entries_counted_once_per_user_and_emoji() {
    let srv = TestServer::start().await;
    let mut a = srv.user("rx_a").await;
    let mut b = srv.user("rx_b").await;
    let thread = befriend(&mut a, &mut b).await;
    let m = a.send_text(thread, "rx1", "ship it?").await;
    b.message_push(thread).await;

    let up = ack(&mut b, react(thread, m.message_id, "👍", false)).await;
    assert!(!up.duplicate && up.seq == m.seq + 1);
    // The change is an entry of the thread, pushed to both.
    let e = a.message_push(thread).await;
    assert_eq!(e.kind, pb::MessageKind::ReactionAdded as i32);
    assert_eq!((e.seq, e.body.as_str()), (up.seq, "👍"));
    assert_eq!(e.target_message_id, m.message_id);
    assert_eq!(e.sender.unwrap().user_id, b.id());
    // The same reaction again changes nothing and stores nothing.
    let same = ack(&mut b, react(thread, m.message_id, "👍", false)).await;
    assert!(same.duplicate && same.seq == 0, "{same:?}");
    // Thread 0: the server finds the message's thread.
    let mine = ack(&mut a, react(0, m.message_id, "👍", false)).await;
    assert_eq!(mine.thread_id, thread);
    let party = ack(&mut a, react(thread, m.message_id, "🎉", false)).await;

    let a_view = vec![("👍".to_owned(), 2, true), ("🎉".to_owned(), 1, true)];
    assert_eq!(
        counts(&mut a, thread, m.message_id).await,
        (a_view, party.seq)
    );
    // b sees its own 👍 as mine, not a's 🎉.
    let (b_view, _) = counts(&mut b, thread, m.message_id).await;
    assert_eq!(
        b_view,
        vec![("👍".to_owned(), 2, true), ("🎉".to_owned(), 1, false)]
    );
    // Sync carries the counts too.
    assert_eq!(entry(&mut a, thread, m.message_id).await.reactions.len(), 2);

    // Taking one back: a REACTION_REMOVED entry, and the counts drop; taking back one that is
    // not there changes nothing.
    let down = ack(&mut a, react(thread, m.message_id, "👍", true)).await;
    assert!(!down.duplicate);
    assert_eq!(
        counts(&mut a, thread, m.message_id).await,
        (
            vec![("👍".to_owned(), 1, false), ("🎉".to_owned(), 1, true)],
            down.seq
        )
    );
    let none = ack(&mut a, react(thread, m.message_id, "👍", true)).await;
    assert!(none.duplicate && none.seq == 0);
    let kinds: Vec<i32> = a.sync(thread, m.seq).await.iter().map(|e| e.kind).collect();
    let (add, rm) = (
        pb::MessageKind::ReactionAdded as i32,
        pb::MessageKind::ReactionRemoved as i32,
    );
    assert_eq!(
        kinds,
        [add, add, add, rm],
        "every change once, in seq order"
    );
    // Reactions are not news: the thread keeps its activity, and its preview is the message.
    let t = match a
        .ok(Body::GetThread(pb::GetThread {
            thread_id: thread,
            ..Default::default()
        }))
        .await
    {
        Body::Thread(t) => t,
        other => panic!("{other:?}"),
    };
    assert_eq!(t.activity_id, m.message_id);
    assert_eq!(t.last_message.map(|l| l.message_id), Some(m.message_id));
    assert_eq!(t.last_seq, down.seq);
}

#[tokio::test]
async fn reaction_limits_bad_emoji_recalls_and_strangers() {
    let srv = TestServer::start().await;
    let mut a = srv.user("rl_a").await;
    let mut b = srv.user("rl_b").await;
    let thread = befriend(&mut a, &mut b).await;
    let m = a.send_text(thread, "rl1", "pick one").await;
    // Twenty kinds per message; the twenty-first is refused, an existing kind is still fine.
    let emoji: Vec<String> = (0..21u32)
        .map(|i| char::from_u32(0x1F600 + i).unwrap().to_string())
        .collect();
    for e in &emoji[..20] {
        ack(&mut a, react(thread, m.message_id, e, false)).await;
    }
    let e = a.fail(react(thread, m.message_id, &emoji[20], false)).await;
    assert_eq!(e.code, ErrorCode::LimitReached as i32, "{e:?}");
    ack(&mut b, react(thread, m.message_id, &emoji[0], false)).await;
    // Not one grapheme, or nothing visible: BAD_REQUEST.
    for bad in ["+1", "👍👍", "", " ", "\u{200d}"] {
        assert_eq!(
            a.fail_code(react(thread, m.message_id, bad, false)).await,
            ErrorCode::BadRequest,
            "{bad:?}"
        );
    }
    // A stranger gets NOT_FOUND, with or without the thread.
    let mut c = srv.user("rl_c").await;
    assert_eq!(
        c.fail_code(react(0, m.message_id, "👍", false)).await,
        ErrorCode::NotFound
    );
    assert_eq!(
        c.fail_code(react(thread, m.message_id, "👍", false)).await,
        ErrorCode::NotFound
    );
    // A recalled message loses its reactions and takes no more.
    a.ok(Body::Recall(pb::Recall {
        thread_id: thread,
        message_id: m.message_id,
        client_msg_id: "rl2".into(),
    }))
    .await;
    assert!(counts(&mut b, thread, m.message_id).await.0.is_empty());
    assert_eq!(
        b.fail_code(react(thread, m.message_id, "👍", false)).await,
        ErrorCode::Conflict
    );
}

#[tokio::test]
async fn a_former_member_sees_reactions_up_to_when_it_left() {
    let srv = TestServer::start().await;
    let mut owner = srv.user("rf_o").await;
    let mut m = srv.user("rf_m").await;
    let (group_id, thread) = group(&mut owner, "rf group").await;
    join(&mut m, group_id).await;
    let msg = owner.send_text(thread, "rf1", "vote").await;
    ack(&mut m, react(thread, msg.message_id, "👍", false)).await;
    m.ok(Body::LeaveGroup(pb::LeaveGroup { group_id })).await;
    let (before, seq_before) = counts(&mut m, thread, msg.message_id).await;
    assert_eq!(before, vec![("👍".to_owned(), 1, true)]);
    // After leaving: no reacting, and what others add later stays out of its view.
    assert_eq!(
        m.fail_code(react(thread, msg.message_id, "🎉", false))
            .await,
        ErrorCode::Forbidden
    );
    let later = ack(&mut owner, react(thread, msg.message_id, "🎉", false)).await;
    let (after, seq_after) = counts(&mut m, thread, msg.message_id).await;
    assert_eq!(after, before);
    // Its counts are as of an entry it can read: never the reaction it cannot see.
    assert!(
        seq_before <= seq_after && seq_after < later.seq,
        "{seq_before} {seq_after}"
    );
    assert_eq!(counts(&mut owner, thread, msg.message_id).await.0.len(), 2);
}
