//! Presence: who is online, announcements to friends, and typing notifications.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use confab_wire::pb::{self, ErrorCode};
use confab_wire::{Body, Envelope};
use tracing::debug;

use crate::ids::now_ms;
use crate::store::Backend;
use crate::store::ops::{accounts, friends};

use super::*;

impl<B: Backend> Service<B> {
    /// Typing notifications.
    pub(super) async fn presence_request(
        self: &Arc<Self>,
        ctx: &ConnCtx,
        s: &Session,
        body: Body,
    ) -> Res<Option<Body>> {
        Ok(match body {
            Body::Typing(t) => {
                self.typing(s, ctx.conn_id, t.thread_id, t.stopped).await?;
                None
            }
            other => return Err(not_a_request(&other)),
        })
    }

    /// The user's last connection on this node closed.
    pub(super) async fn went_offline(self: Arc<Self>, user: pb::User) {
        let uid = user.user_id;
        if let Err(e) = self
            .store
            .write(move |tx| {
                Box::pin(async move { accounts::set_last_seen(tx, uid, now_ms()).await })
            })
            .await
        {
            debug!(error = %e, "could not record last seen");
        }
        self.announce_presence(user, false).await;
    }

    pub(super) async fn announce_presence(&self, user: pb::User, online: bool) {
        let uid = user.user_id;
        let friends = match self
            .store
            .read(move |tx| Box::pin(async move { friends::presence_audience(tx, uid).await }))
            .await
        {
            Ok(f) => f,
            Err(e) => {
                debug!(error = %e, "presence: cannot list friends");
                return;
            }
        };
        // The user may have come back (or left) while the friends were read; in a cluster,
        // "online" means on any node.
        if self.is_online(uid).await != online {
            return;
        }
        let push = Envelope::push(Body::PresencePush(pb::PresencePush {
            user: Some(user),
            online,
            last_seen_ms: now_ms(),
        }));
        if let Some(frame) = self.frame(&push) {
            for f in &friends {
                self.hub.push_user(*f, &frame, 0);
            }
            self.bus.forward(&friends, &frame);
        }
    }

    /// Which of `users` are online (on any node in a cluster).
    pub(super) async fn online_among(&self, users: &[u64]) -> HashSet<u64> {
        self.bus.online(users).await
    }

    pub(super) async fn is_online(&self, user: u64) -> bool {
        self.online_among(&[user]).await.contains(&user)
    }

    /// Presence shows only to friends (and oneself).
    pub(super) async fn fill_presence(&self, profiles: &mut [pb::Profile]) {
        let shows = |p: &pb::Profile| {
            matches!(
                pb::FriendState::try_from(p.friend_state),
                Ok(pb::FriendState::Friend | pb::FriendState::Self_)
            )
        };
        let ids: Vec<u64> = profiles
            .iter()
            .filter(|p| shows(p))
            .filter_map(|p| p.user.as_ref().map(|u| u.user_id))
            .collect();
        let online = self.online_among(&ids).await;
        for p in profiles {
            p.online = shows(p) && p.user.as_ref().is_some_and(|u| online.contains(&u.user_id));
        }
    }

    /// A `Typing`: forwarded at most once per 2 s per user and thread. A stop is forwarded
    /// only after a start in the last 5 s (the indicator the others still show), once.
    pub(super) async fn typing(
        &self,
        s: &Session,
        conn: u64,
        thread_id: u64,
        stopped: bool,
    ) -> Res<()> {
        let key = (s.user.user_id, thread_id);
        let now = Instant::now();
        {
            let mut t = self.typing.lock().unwrap_or_else(|p| p.into_inner());
            if stopped {
                let shown = t.remove(&key).is_some_and(|at| {
                    now.duration_since(at) < Duration::from_millis(u64::from(TYPING_SHOWN_MS))
                });
                if !shown {
                    return Ok(());
                }
            } else if t
                .get(&key)
                .is_some_and(|at| now.duration_since(*at) < TYPING_EVERY)
            {
                return Ok(());
            } else {
                t.insert(key, now);
            }
        }
        let members = self.members_of(thread_id).await?;
        if !members.contains(&s.user.user_id) {
            return Err(err(ErrorCode::Forbidden, "not a member of this thread"));
        }
        let push = Envelope::push(Body::TypingPush(pb::TypingPush {
            thread_id,
            user: Some(s.user.clone()),
            expires_ms: if stopped { 0 } else { TYPING_SHOWN_MS },
        }));
        if let Some(frame) = self.frame(&push) {
            for u in members.iter().filter(|u| **u != s.user.user_id) {
                self.hub.push_user(*u, &frame, conn);
            }
            if self.bus.clustered() {
                let others: Vec<u64> = members
                    .iter()
                    .copied()
                    .filter(|u| *u != s.user.user_id)
                    .collect();
                self.bus.forward(&others, &frame);
            }
        }
        Ok(())
    }
}
