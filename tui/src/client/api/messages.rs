//! Message actions that go straight to the server: a page of history, edit, recall, and the
//! read marker. (Sending goes through the outbox: `Client::send_acked`.)

use confab_wire::Body;
use confab_wire::pb;

use super::ApiError;
use crate::client::{Client, ClientError};

/// A `client_msg_id` for an edit or recall, unique per process and call (the server dedupes
/// a retried request by it).
fn action_id(what: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{what}-{}-{now:x}-{n}", std::process::id())
}

impl Client {
    /// The server's entries of a thread: with `since`, those after that seq, oldest first
    /// (`SyncThread`); otherwise the newest ones before `before` (0 = the newest), returned in
    /// ascending seq (`History`). `has_more`: another page exists in that direction.
    pub async fn history_page(
        &self,
        thread_id: u64,
        since: Option<u64>,
        before: u64,
        limit: u32,
    ) -> Result<(Vec<pb::ChatMessage>, bool), ApiError> {
        let body = match since {
            Some(since_seq) => Body::SyncThread(pb::SyncThread {
                thread_id,
                since_seq,
                limit,
            }),
            None => Body::History(pb::History {
                thread_id,
                before_seq: before,
                limit,
            }),
        };
        let page = expect_body!(self.request(body).await?, MessagePage)?;
        Ok((page.messages, page.has_more))
    }

    /// Replaces the text of one's own message; the reply acks the EDIT entry.
    pub async fn edit(
        &self,
        thread_id: u64,
        message_id: u64,
        body: &str,
    ) -> Result<pb::SendAck, ApiError> {
        let reply = self
            .request(Body::Edit(pb::Edit {
                thread_id,
                message_id,
                body: body.into(),
                client_msg_id: action_id("edit"),
            }))
            .await?;
        Ok(expect_body!(reply, SendAck)?)
    }

    /// Recalls one's own message (within the server's recall window).
    pub async fn recall(&self, thread_id: u64, message_id: u64) -> Result<pb::SendAck, ApiError> {
        let reply = self
            .request(Body::Recall(pb::Recall {
                thread_id,
                message_id,
                client_msg_id: action_id("recall"),
            }))
            .await?;
        Ok(expect_body!(reply, SendAck)?)
    }

    /// Adds (or with `remove`, takes back) one's reaction to a message (protocol 1.7); thread
    /// 0 lets the server find the message's thread. The ack has `duplicate` and seq 0 when
    /// nothing changed.
    pub async fn react(
        &self,
        thread_id: u64,
        message_id: u64,
        emoji: &str,
        remove: bool,
    ) -> Result<pb::SendAck, ApiError> {
        let reply = self
            .request(Body::React(pb::React {
                thread_id,
                message_id,
                emoji: emoji.into(),
                remove,
            }))
            .await?;
        Ok(expect_body!(reply, SendAck)?)
    }

    /// Moves the read marker of a thread to `seq` (markers only move forward).
    pub async fn read_up_to(&self, thread_id: u64, seq: u64) -> Result<(), ApiError> {
        self.request(Body::ReadUpTo(pb::ReadUpTo { thread_id, seq }))
            .await
            .map(|_| ())
            .map_err(ApiError::from)
    }

    /// One page of the server's search (protocol 1.6): hits newest first, older than
    /// `before` (0: the newest), in `thread` only if not 0.
    pub async fn search(
        &self,
        query: &str,
        thread: u64,
        before: u64,
        limit: u32,
    ) -> Result<pb::SearchResults, ApiError> {
        let reply = self
            .request(Body::SearchMessages(pb::SearchMessages {
                query: query.into(),
                thread_id: thread,
                before_message_id: before,
                limit,
            }))
            .await?;
        Ok(expect_body!(reply, SearchResults)?)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn action_ids_differ_between_calls() {
        assert_ne!(super::action_id("edit"), super::action_id("edit"));
    }
}
