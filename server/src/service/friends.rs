//! Profiles, user search, friend requests and friends.

use std::sync::Arc;

use confab_wire::Body;
use confab_wire::pb::{self};

use crate::store::Backend;
use crate::store::ops::{accounts, friends};

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
                let mut has_more = false;
                self.fit(&mut users, &mut has_more, false, |u| {
                    Body::UserList(pb::UserList {
                        users: u.to_vec(),
                        has_more: true,
                    })
                });
                Some(Body::UserList(pb::UserList { users, has_more }))
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
            Body::ListFriends(l) => {
                let (after, limit) = (l.after_user_id, self.page_limit(l.limit));
                let (mut friends, mut has_more) =
                    read!(self, tx => friends::list(tx, me, after, limit).await);
                self.fit(&mut friends, &mut has_more, false, |f| {
                    Body::FriendList(pb::FriendList {
                        friends: f.to_vec(),
                        has_more: true,
                    })
                });
                let ids: Vec<u64> = friends
                    .iter()
                    .filter_map(|f| f.user.as_ref())
                    .map(|u| u.user_id)
                    .collect();
                let online = self.online_among(&ids).await;
                for f in &mut friends {
                    f.online = f.user.as_ref().is_some_and(|u| online.contains(&u.user_id));
                }
                Some(Body::FriendList(pb::FriendList { friends, has_more }))
            }
            Body::ListFriendRequests(l) => {
                let (after, limit) = (l.after_request_id, self.page_limit(l.limit));
                let (mut page, mut has_more) =
                    read!(self, tx => friends::pending(tx, me, after, limit).await);
                // One page over both directions, in request order, cut to fit a frame.
                let split = |page: &[pb::FriendRequest], has_more: bool| {
                    let (incoming, outgoing) = page
                        .iter()
                        .cloned()
                        .partition(|r| r.to.as_ref().is_some_and(|u| u.user_id == me));
                    pb::FriendRequestList {
                        incoming,
                        outgoing,
                        has_more,
                    }
                };
                self.fit(&mut page, &mut has_more, false, |p| {
                    Body::FriendRequestList(split(p, true))
                });
                Some(Body::FriendRequestList(split(&page, has_more)))
            }

            // Groups
            other => return Err(not_a_request(&other)),
        })
    }
}
