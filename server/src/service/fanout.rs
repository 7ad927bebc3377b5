//! The ordered fan-out: effects of committed writes, in commit order, pushed to online devices
//! (here and through the bus), and the member cache.

use std::sync::Arc;

use confab_wire::pb::{self};
use confab_wire::{Body, Envelope, Frame};
use tracing::debug;

use crate::store::Backend;
use crate::store::ops::messages;

use super::*;

impl<B: Backend> Service<B> {
    /// Active members of a thread, cached until a membership change.
    /// The thread's active members if this node has them cached.
    pub(super) fn cached_members(&self, thread_id: u64) -> Option<Arc<Vec<u64>>> {
        self.members
            .lock()
            .ok()
            .and_then(|m| m.get(&thread_id).cloned())
    }

    pub(super) async fn members_of(&self, thread_id: u64) -> Res<Arc<Vec<u64>>> {
        if let Some(m) = self.cached_members(thread_id) {
            return Ok(m);
        }
        let seen_gen = self.members_gen.load(std::sync::atomic::Ordering::Acquire);
        let list = Arc::new(
            self.store
                .read(move |tx| {
                    Box::pin(async move { messages::active_members(tx, thread_id).await })
                })
                .await?,
        );
        if let Ok(mut m) = self.members.lock() {
            if m.len() >= MEMBER_CACHE_MAX {
                m.clear();
            }
            if self.members_gen.load(std::sync::atomic::Ordering::Acquire) == seen_gen {
                m.insert(thread_id, list.clone());
            }
        }
        Ok(list)
    }

    /// Pushes a frame to every active member's devices, except connection `skip_conn` of
    /// `skip_user`.
    pub(super) async fn push_thread(
        &self,
        thread_id: u64,
        frame: &Frame,
        skip_user: u64,
        skip_conn: u64,
    ) {
        match self.members_of(thread_id).await {
            Ok(members) => {
                for u in members.iter() {
                    self.hub
                        .push_user(*u, frame, if *u == skip_user { skip_conn } else { 0 });
                }
                self.bus.forward(&members, frame);
            }
            Err(e) => debug!(thread_id, error = %e, "cannot list members for a push"),
        }
    }

    pub(super) async fn deliver(&self, f: Fanout) {
        if let Ok(mut m) = self.members.lock() {
            if !f.fx.members_changed.is_empty() {
                self.members_gen
                    .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            }
            for t in &f.fx.members_changed {
                m.remove(t);
            }
        }
        self.bus.members_changed(&f.fx.members_changed);
        for (user, event) in f.fx.events {
            let push = Envelope::push(Body::EventPush(pb::EventPush { event: Some(event) }));
            if let Some(frame) = self.frame(&push) {
                self.hub.push_user(user, &frame, 0);
                self.bus.forward(&[user], &frame);
            }
        }
        for msg in f.fx.messages {
            let sender = msg.sender.as_ref().map_or(0, |u| u.user_id);
            // The sending connection has its ack; SYSTEM entries reach the actor too.
            let skip = if msg.kind == pb::MessageKind::System as i32 {
                0
            } else {
                f.origin_conn
            };
            let Ok(mut members) = self.members_of(msg.thread_id).await else {
                continue;
            };
            // Whoever left or was removed is no longer a member, but sees its own exit.
            if let Some(gc) = &msg.group_change
                && matches!(
                    pb::group_change::Kind::try_from(gc.kind),
                    Ok(pb::group_change::Kind::Left
                        | pb::group_change::Kind::Kicked
                        | pb::group_change::Kind::Banned)
                )
                && let Some(subject) = gc.subject.as_ref().map(|u| u.user_id)
                && !members.contains(&subject)
            {
                let mut with = members.as_ref().clone();
                with.push(subject);
                members = Arc::new(with);
            }
            // One envelope, encoded at most twice: with client_msg_id for the sender's other
            // connections (only if it has one here, or may have one on another node), then
            // without for everyone else.
            let mut env = Envelope::push(Body::MessagePush(pb::MessagePush { message: Some(msg) }));
            let own = if self.bus.clustered() || self.hub.has_other_conn(sender, skip) {
                self.frame(&env)
            } else {
                None
            };
            if let Some(Body::MessagePush(pb::MessagePush { message: Some(m) })) = &mut env.body {
                m.client_msg_id.clear();
            }
            let other = self.frame(&env);
            for u in members.iter() {
                if *u == sender {
                    if let Some(fr) = &own {
                        self.hub.push_user(*u, fr, skip);
                    }
                } else if let Some(fr) = &other {
                    self.hub.push_user(*u, fr, 0);
                }
            }
            // The same, in the same (commit) order, to the other nodes.
            if self.bus.clustered() {
                if let Some(fr) = &own
                    && members.contains(&sender)
                {
                    self.bus.forward(&[sender], fr);
                }
                if let Some(fr) = &other {
                    let rest: Vec<u64> = members.iter().copied().filter(|u| *u != sender).collect();
                    self.bus.forward(&rest, fr);
                }
            }
        }
    }
}
