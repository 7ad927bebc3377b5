//! `send`, `history`, `read`, `edit` and `recall`.

use std::io::Read;
use std::time::Duration;

use super::conn::resume;
use super::fail::{Fail, OTHER};
use super::out::{self, print};
use super::target::Target;
use crate::client::{Client, Draft};

/// Where `send` takes its text from.
pub enum Text {
    Arg(String),
    /// `-`: standard input, as one message or (`lines`) one per non-empty line.
    Stdin {
        lines: bool,
    },
}

fn bodies(text: Text) -> Result<Vec<String>, Fail> {
    let all = match text {
        Text::Arg(s) => return Ok(vec![s]),
        Text::Stdin { lines } => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| Fail(OTHER, format!("cannot read standard input: {e}")))?;
            if lines {
                return Ok(s
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(str::to_owned)
                    .collect());
            }
            s
        }
    };
    // One message: the text as given, without the newline `echo` adds.
    let one = all.strip_suffix('\n').unwrap_or(&all);
    let one = one.strip_suffix('\r').unwrap_or(one);
    Ok(vec![one.to_owned()])
}

/// Sends each body in order, each acknowledged before the next; prints a `sent` line per ack.
pub async fn send(
    server: &str,
    target: &Target,
    text: Text,
    reply_to: Option<u64>,
) -> Result<(), Fail> {
    let bodies = bodies(text)?;
    if bodies.iter().all(|b| b.trim().is_empty()) {
        return Err(Fail::usage("nothing to send: the text is empty"));
    }
    if reply_to == Some(0) {
        return Err(Fail::usage("--reply-to takes a message id"));
    }
    let (c, _, _) = resume(server, false).await?;
    let thread = target.resolve(&c).await?;
    for body in bodies {
        let draft = Draft::reply(body, reply_to.unwrap_or(0));
        let ack = c.send_acked(thread, draft, Duration::from_secs(30)).await?;
        print(out::ack("sent", &ack));
    }
    c.shutdown().await;
    Ok(())
}

/// Which part of a thread `history` prints.
#[derive(Debug, Clone, Copy, Default)]
pub struct Range {
    pub since: Option<u64>,
    pub before: Option<u64>,
    pub limit: Option<u64>,
}

/// Prints a thread's entries from the server in seq order, paging by itself. `--since S`:
/// every entry after S (the first `--limit`); `--before B`: the entries before B (the newest
/// `--limit`); neither: the whole thread, or its newest `--limit`.
pub async fn history(server: &str, target: &Target, range: Range) -> Result<(), Fail> {
    let (c, _, _) = resume(server, false).await?;
    let thread = target.resolve(&c).await?;
    match (range.since, range.before, range.limit) {
        (Some(since), _, limit) => forward(&c, thread, since, limit).await?,
        (None, None, None) => forward(&c, thread, 0, None).await?,
        (None, before, limit) => backward(&c, thread, before.unwrap_or(0), limit).await?,
    }
    c.shutdown().await;
    Ok(())
}

/// `search`: pages of hits until `limit` (or the last one).
pub async fn search(server: &str, query: &str, target: &Target, limit: u32) -> Result<(), Fail> {
    if !query.chars().any(char::is_alphanumeric) {
        return Err(Fail::usage("nothing to search for: give a word"));
    }
    if limit == 0 {
        return Err(Fail::usage("--limit must be at least 1"));
    }
    let (c, _, _) = resume(server, false).await?;
    let thread = if target.given() {
        target.resolve(&c).await?
    } else {
        0
    };
    let (mut left, mut before) = (limit, 0);
    while left > 0 {
        let page = c.search(query, thread, before, left).await?;
        for h in &page.hits {
            if left == 0 {
                break;
            }
            print(out::hit(h));
            left -= 1;
        }
        match page.hits.last().and_then(|h| h.message.as_ref()) {
            Some(m) if page.has_more => before = m.message_id,
            _ => break,
        }
    }
    c.shutdown().await;
    Ok(())
}

async fn forward(c: &Client, thread: u64, mut since: u64, limit: Option<u64>) -> Result<(), Fail> {
    let mut left = limit.unwrap_or(u64::MAX);
    while left > 0 {
        let (page, more) = c.history_page(thread, Some(since), 0, 0).await?;
        for m in &page {
            if left == 0 {
                break;
            }
            print(out::message(m));
            left -= 1;
        }
        match page.last() {
            Some(m) if more && m.seq > since => since = m.seq,
            _ => break,
        }
    }
    Ok(())
}

async fn backward(c: &Client, thread: u64, before: u64, limit: Option<u64>) -> Result<(), Fail> {
    let want = limit.unwrap_or(u64::MAX);
    let mut pages = Vec::new();
    let mut got = 0u64;
    let mut before = before;
    while got < want {
        let (page, more) = c.history_page(thread, None, before, 0).await?;
        let Some(first) = page.first() else { break };
        let next = first.seq;
        got += page.len() as u64;
        pages.push(page);
        // seq 1 is the first entry: nothing lies before it.
        if !more || next <= 1 || (before != 0 && next >= before) {
            break;
        }
        before = next;
    }
    let all: Vec<_> = pages.into_iter().rev().flatten().collect();
    let skip = all
        .len()
        .saturating_sub(usize::try_from(want).unwrap_or(usize::MAX));
    for m in &all[skip..] {
        print(out::message(m));
    }
    Ok(())
}

/// Moves the read marker to `up_to` (default: the thread's newest entry).
pub async fn read(server: &str, target: &Target, up_to: Option<u64>) -> Result<(), Fail> {
    let (c, _, _) = resume(server, false).await?;
    let thread = target.resolve(&c).await?;
    let seq = match up_to {
        Some(s) => s,
        None => c.thread(thread).await?.last_seq,
    };
    c.read_up_to(thread, seq).await?;
    print(serde_json::json!({"type": "marked_read", "thread_id": thread, "read_seq": seq}));
    c.shutdown().await;
    Ok(())
}

/// Edits one's message (`text: Some`) or recalls it (`None`).
/// `react`: adds or takes back a reaction; `changed` false when it already was so.
pub async fn react(
    server: &str,
    target: &Target,
    message_id: u64,
    emoji: &str,
    remove: bool,
) -> Result<(), Fail> {
    if message_id == 0 {
        return Err(Fail::usage(
            "give the message id (as history and watch print it)",
        ));
    }
    let (c, _, _) = resume(server, false).await?;
    let thread = if target.given() {
        target.resolve(&c).await?
    } else {
        0
    };
    let ack = c.react(thread, message_id, emoji, remove).await?;
    let mut line = out::ack("reacted", &ack);
    line["target_message_id"] = serde_json::json!(message_id);
    line["emoji"] = serde_json::json!(emoji);
    line["removed"] = serde_json::json!(remove);
    line["changed"] = serde_json::json!(!ack.duplicate);
    print(line);
    c.shutdown().await;
    Ok(())
}

pub async fn change(
    server: &str,
    target: &Target,
    message_id: u64,
    text: Option<String>,
) -> Result<(), Fail> {
    let (c, _, _) = resume(server, false).await?;
    let thread = target.resolve(&c).await?;
    let mut line = match text {
        Some(body) => out::ack("edited", &c.edit(thread, message_id, &body).await?),
        None => out::ack("recalled", &c.recall(thread, message_id).await?),
    };
    line["target_message_id"] = serde_json::json!(message_id);
    print(line);
    c.shutdown().await;
    Ok(())
}
