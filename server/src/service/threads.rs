//! Sends, edits and recalls, sync and history, read and delivery markers, user events.

use std::sync::Arc;

use confab_wire::pb::{self, ErrorCode};
use confab_wire::{Body, Envelope};

use crate::store::ops::{self, Effects, messages};
use crate::store::{Backend, StoreResult};

use super::*;

impl<B: Backend> Service<B> {
    /// Threads: lists, sync and history, edits and recalls, read and delivery markers, events.
    pub(super) async fn threads_request(
        self: &Arc<Self>,
        ctx: &ConnCtx,
        s: &Session,
        body: Body,
    ) -> Res<Option<Body>> {
        let me = s.user.user_id;
        let conn = ctx.conn_id;
        Ok(match body {
            Body::ListThreads(l) => {
                let limit = self.page_limit(l.limit);
                let list = read!(self, tx => messages::list_threads(tx, me, l.before_activity_id, limit).await);
                Some(self.fit(list, Cut::Back).into_body())
            }
            Body::GetThread(g) => {
                if [g.thread_id, g.user_id, g.group_id]
                    .iter()
                    .filter(|v| **v != 0)
                    .count()
                    != 1
                {
                    return Err(bad("give exactly one of thread_id, user_id, group_id"));
                }
                Some(Body::Thread(
                    read!(self, tx => messages::find_thread(tx, me, g.thread_id, g.user_id, g.group_id).await),
                ))
            }
            Body::SyncThread(q) => {
                let limit = self.page_limit(q.limit);
                let page = read!(self, tx => messages::sync(tx, me, q.thread_id, q.since_seq, limit).await);
                Some(self.fit(page, Cut::Back).into_body())
            }
            Body::History(q) => {
                let limit = self.page_limit(q.limit);
                let page = read!(self, tx => messages::history(tx, me, q.thread_id, q.before_seq, limit).await);
                Some(self.fit(page, Cut::Front).into_body())
            }
            Body::Recall(r) => Some(Body::SendAck(
                self.amend(s, conn, r.thread_id, r.message_id, r.client_msg_id, None)
                    .await?,
            )),
            Body::Edit(e) => {
                match validate::body(&e.body, self.cfg.max_body_bytes as usize) {
                    Ok(()) => {}
                    Err(validate::BodyError::TooLarge) => {
                        return Err(err(ErrorCode::TooLarge, "the body is too large"));
                    }
                    Err(_) => return Err(bad("the body is empty or holds control characters")),
                }
                Some(Body::SendAck(
                    self.amend(
                        s,
                        conn,
                        e.thread_id,
                        e.message_id,
                        e.client_msg_id,
                        Some(e.body),
                    )
                    .await?,
                ))
            }
            Body::ReadUpTo(r) => {
                let thread = r.thread_id;
                let moved = self
                    .store
                    .write(move |tx| {
                        Box::pin(async move { messages::read_up_to(tx, me, thread, r.seq).await })
                    })
                    .await?;
                if let Some(moved) = moved {
                    let push = Envelope::push(Body::ReadReceiptPush(pb::ReadReceiptPush {
                        thread_id: thread,
                        user: Some(s.user.clone()),
                        read_seq: moved.seq,
                    }));
                    if let Some(frame) = self.frame(&push) {
                        if moved.active {
                            self.push_thread(thread, &frame, 0, 0).await;
                        } else {
                            // A former member's marker concerns only its own devices.
                            self.hub.push_user(me, &frame, 0);
                            self.bus.forward(&[me], &frame);
                        }
                    }
                }
                None
            }
            Body::DeliveredUpTo(d) => {
                let dev = s.device_id;
                self.store
                    .write(move |tx| {
                        Box::pin(async move {
                            messages::delivered_up_to(tx, me, dev, d.thread_id, d.seq).await
                        })
                    })
                    .await?;
                None
            }
            Body::SyncEvents(q) => {
                let limit = self.page_limit(q.limit);
                let page =
                    read!(self, tx => ops::sync_events(tx, me, q.since_event_seq, limit).await);
                Some(self.fit(page, Cut::Back).into_body())
            }
            Body::SearchMessages(q) => Some(self.search(ctx, me, q).await?),
            Body::React(r) => Some(Body::SendAck(self.react(s, conn, r).await?)),
            other => return Err(not_a_request(&other)),
        })
    }

    /// SearchMessages: its own rate limit per connection, then one read.
    async fn search(&self, ctx: &ConnCtx, me: u64, q: pb::SearchMessages) -> Res<Body> {
        use crate::store::search::Query;
        if !self.cfg.search_index {
            return Err(err(ErrorCode::Unsupported, "search is off on this server"));
        }
        if self.search_limiter.check_key(&ctx.conn_id).is_err() {
            return Err(
                err(ErrorCode::RateLimited, "too many searches; wait a little").retry_after(1000),
            );
        }
        let query = Query::parse(&q.query).map_err(|e| bad(&e.to_string()))?;
        let limit = if q.limit == 0 {
            SEARCH_PAGE.min(self.cfg.max_page)
        } else {
            q.limit.min(self.cfg.max_page)
        };
        let (thread, before) = (q.thread_id, q.before_message_id);
        let (hits, has_more) =
            read!(self, tx => ops::search::search(tx, me, &query, thread, before, limit).await);
        Ok(self
            .fit(pb::SearchResults { hits, has_more }, Cut::Back)
            .into_body())
    }

    pub(super) fn queue_send(
        &self,
        ctx: &ConnCtx,
        s: &Session,
        send: pb::Send,
    ) -> Res<tokio::sync::oneshot::Receiver<StoreResult<(messages::Sent, Effects)>>> {
        validate::client_msg_id(&send.client_msg_id).map_err(bad)?;
        match validate::body(&send.body, self.cfg.max_body_bytes as usize) {
            Ok(()) => {}
            Err(validate::BodyError::TooLarge) => {
                return Err(err(
                    ErrorCode::TooLarge,
                    format!("the body exceeds {} bytes", self.cfg.max_body_bytes),
                ));
            }
            Err(validate::BodyError::Empty) => return Err(bad("the body is empty")),
            Err(validate::BodyError::Control) => {
                return Err(bad("the body holds control characters"));
            }
        }
        if send.thread_id == 0 {
            return Err(bad("thread_id is required"));
        }
        let req = messages::SendReq {
            sender: s.user.clone(),
            device_id: s.device_id,
            thread_id: send.thread_id,
            client_msg_id: send.client_msg_id,
            body: send.body,
            reply_to: send.reply_to,
        };
        // Shared, so a backend that runs the job again clones a pointer, not the body.
        Ok(self
            .store
            .enqueue_send(Arc::new(req), self.ids.clone(), self.to_fanout(ctx.conn_id))?)
    }

    async fn react(&self, s: &Session, conn: u64, r: pb::React) -> Res<pb::SendAck> {
        let emoji = validate::emoji(&r.emoji).map_err(bad)?;
        let req = ops::reactions::ReactReq {
            sender: s.user.clone(),
            device_id: s.device_id,
            thread_id: r.thread_id,
            message_id: r.message_id,
            emoji,
            remove: r.remove,
            max_kinds: validate::REACTION_KINDS_MAX,
        };
        let ids = self.ids.clone();
        let sent = self
            .write_fx_await(conn, move |tx| {
                Box::pin(async move { ops::reactions::react(tx, &ids, &req).await })
            })
            .await?;
        Ok(sent.ack)
    }

    pub(super) async fn amend(
        &self,
        s: &Session,
        conn: u64,
        thread_id: u64,
        message_id: u64,
        client_msg_id: String,
        new_body: Option<String>,
    ) -> Res<pb::SendAck> {
        validate::client_msg_id(&client_msg_id).map_err(bad)?;
        let req = messages::Amend {
            sender: s.user.clone(),
            device_id: s.device_id,
            thread_id,
            message_id,
            client_msg_id,
            new_body,
            window_ms: i64::from(self.cfg.recall_window_ms),
        };
        let ids = self.ids.clone();
        let sent = self
            .write_fx_await(conn, move |tx| {
                Box::pin(async move { messages::amend(tx, &ids, &req).await })
            })
            .await?;
        Ok(sent.ack)
    }
}
