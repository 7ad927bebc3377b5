//! Profiles, user search, friend requests and friends.

use std::sync::Arc;

use confab_wire::Body;
use confab_wire::pb::{self};

use crate::store::Backend;
use crate::store::ops::{accounts, blocks, friends};

use super::*;

impl<B: Backend> Service<B> {
    /// Profiles, user search, friend requests and friends.
    pub(super) async fn friends_request(
        self: &Arc<Self>,
        ctx: &ConnCtx,
        s: &Session,
        body: Body,
    ) -> Res<Option<Body>> {
        let me = s.user.user_id;
        let conn = ctx.conn_id;
        let ids = self.ids.clone();
        Ok(match body {
            Body::GetProfile(g) => {
                let id = match (g.user_id, g.name.is_empty()) {
                    (0, false) => {
                        let key = validate::name_key(&g.name);
                        read!(self, tx => accounts::user_id_by_key(tx, &key).await)
                    }
                    (id, true) if id != 0 => id,
                    _ => return Err(bad("give exactly one of user_id or name")),
                };
                let mut p = read!(self, tx => accounts::profile(tx, me, id).await);
                self.fill_presence(std::slice::from_mut(&mut p)).await;
                Some(Body::Profile(p))
            }
            Body::SearchUsers(q) => {
                let query = validate::query(&q.query).map_err(bad)?;
                let limit = if q.limit == 0 {
                    20
                } else {
                    self.page_limit(q.limit)
                };
                let mut users = read!(self, tx => accounts::search(tx, me, &query, limit).await);
                self.fill_presence(&mut users).await;
                let page = pb::UserList {
                    users,
                    has_more: false,
                };
                Some(self.fit(page, Cut::Back).into_body())
            }

            // Friends
            Body::SendFriendRequest(r) => {
                let note = validate::note(&r.note).map_err(bad)?;
                let to = r.user_id;
                let limits = friends::RequestLimits {
                    max_pending: self.cfg.max_pending_friend_requests,
                    cooldown_ms: i64::try_from(self.cfg.friend_request_cooldown.as_millis())
                        .unwrap_or(i64::MAX),
                };
                let req = write!(self, conn, tx => friends::send_request(tx, &ids, me, to, &note, limits).await);
                Some(Body::FriendRequest(req))
            }
            Body::RespondFriendRequest(r) => {
                let req = write!(self, conn, tx => friends::respond(tx, &ids, r.request_id, me, r.accept).await);
                Some(Body::FriendRequest(req))
            }
            Body::CancelFriendRequest(r) => {
                write!(self, conn, tx => friends::cancel(tx, r.request_id, me).await.map(|fx| ((), fx)));
                None
            }
            Body::RemoveFriend(r) => {
                write!(self, conn, tx => friends::remove(tx, me, r.user_id).await.map(|fx| ((), fx)));
                None
            }
            // Blocks (1.4)
            Body::BlockUser(b) => {
                let max = self.cfg.max_blocked;
                write!(self, conn, tx => blocks::block(tx, me, b.user_id, max).await.map(|fx| ((), fx)));
                None
            }
            Body::UnblockUser(b) => {
                write!(self, conn, tx => blocks::unblock(tx, me, b.user_id).await.map(|fx| ((), fx)));
                None
            }
            Body::ListBlocked(_) => {
                let users = read!(self, tx => blocks::list(tx, me).await);
                Some(self.fit(user_list(users), Cut::Back).into_body())
            }
            Body::ListFriends(l) => {
                let (after, limit) = (l.after_user_id, self.page_limit(l.limit));
                let (mut friends, has_more, blockers) = read!(self, tx => {
                    let (f, more) = friends::list(tx, me, after, limit).await?;
                    Ok((f, more, blocks::blockers(tx, me).await?))
                });
                // Someone who blocked me shows offline to me.
                let ids: Vec<u64> = friends
                    .iter()
                    .filter_map(|f| f.user.as_ref())
                    .map(|u| u.user_id)
                    .filter(|id| !blockers.contains(id))
                    .collect();
                let online = self.online_among(&ids).await;
                for f in &mut friends {
                    f.online = f.user.as_ref().is_some_and(|u| online.contains(&u.user_id));
                }
                // Cut after `online` is set: it is part of what is sent.
                let page = pb::FriendList { friends, has_more };
                Some(self.fit(page, Cut::Back).into_body())
            }
            Body::ListFriendRequests(l) => {
                let (after, limit) = (l.after_request_id, self.page_limit(l.limit));
                let (page, has_more) =
                    read!(self, tx => friends::pending(tx, me, after, limit).await);
                // One page over both directions, in request order: cut as one list (a request
                // costs the same bytes in `incoming` as in `outgoing`), then split.
                let page = pb::FriendRequestList {
                    incoming: page,
                    outgoing: Vec::new(),
                    has_more,
                };
                let mut page = self.fit(page, Cut::Back);
                let (incoming, outgoing) = std::mem::take(&mut page.incoming)
                    .into_iter()
                    .partition(|r| r.to.as_ref().is_some_and(|u| u.user_id == me));
                (page.incoming, page.outgoing) = (incoming, outgoing);
                Some(Body::FriendRequestList(page))
            }

            // Groups
            other => return Err(not_a_request(&other)),
        })
    }
}
