//! Groups: creation, invitations, membership, roles, settings, lists and search.

use std::sync::Arc;

use confab_wire::Body;
use confab_wire::pb::{self};

use crate::store::Backend;
use crate::store::ops::{bans, groups};

use super::*;

impl<B: Backend> Service<B> {
    /// Groups: creation, membership, roles, settings, lists and search.
    pub(super) async fn groups_request(
        self: &Arc<Self>,
        ctx: &ConnCtx,
        s: &Session,
        body: Body,
    ) -> Res<Option<Body>> {
        let me = s.user.user_id;
        let conn = ctx.conn_id;
        let ids = self.ids.clone();
        let user = s.user.clone();
        Ok(match body {
            Body::CreateGroup(c) => {
                let name = validate::group_name(&c.name).map_err(bad)?;
                let desc = validate::note(&c.description).map_err(bad)?;
                let g = write!(self, conn, tx => groups::create(tx, &ids, &user, &name, &desc, c.open).await);
                Some(Body::Group(g))
            }
            Body::JoinGroup(j) => {
                let max = self.cfg.max_group_members;
                let g =
                    write!(self, conn, tx => groups::join(tx, &ids, &user, j.group_id, max).await);
                Some(Body::Group(g))
            }
            Body::InviteToGroup(i) => {
                write!(self, conn, tx => groups::invite(tx, me, i.group_id, i.user_id).await.map(|fx| ((), fx)));
                None
            }
            Body::DeclineGroupInvite(d) => {
                write!(self, conn, tx => groups::decline(tx, me, d.group_id).await.map(|fx| ((), fx)));
                None
            }
            Body::LeaveGroup(l) => {
                write!(self, conn, tx => groups::leave(tx, &ids, &user, l.group_id).await.map(|fx| ((), fx)));
                None
            }
            Body::KickMember(k) => {
                write!(self, conn, tx => groups::kick(tx, &ids, &user, k.group_id, k.user_id, k.ban).await.map(|fx| ((), fx)));
                None
            }
            Body::UnbanMember(u) => {
                write!(self, conn, tx => bans::remove(tx, me, u.group_id, u.user_id).await.map(|()| ((), Default::default())));
                None
            }
            Body::ListBans(l) => {
                let users = read!(self, tx => bans::list(tx, me, l.group_id).await);
                Some(self.fit(user_list(users), Cut::Back).into_body())
            }
            Body::SetMemberRole(r) => {
                let role = pb::Role::try_from(r.role).map_err(|_| bad("unknown role"))?;
                write!(self, conn, tx => groups::set_role(tx, &ids, &user, r.group_id, r.user_id, role).await.map(|fx| ((), fx)));
                None
            }
            Body::UpdateGroup(u) => {
                let name = u
                    .name
                    .as_deref()
                    .map(validate::group_name)
                    .transpose()
                    .map_err(bad)?;
                let desc = u
                    .description
                    .as_deref()
                    .map(validate::note)
                    .transpose()
                    .map_err(bad)?;
                let g = write!(self, conn, tx => groups::update(tx, &ids, &user, u.group_id, name.as_deref(), desc.as_deref(), u.open).await);
                Some(Body::Group(g))
            }
            Body::TransferOwnership(t) => {
                write!(self, conn, tx => groups::transfer(tx, &ids, &user, t.group_id, t.user_id).await.map(|fx| ((), fx)));
                None
            }
            Body::ListGroups(l) => {
                let (after, limit) = (l.after_group_id, self.page_limit(l.limit));
                let (groups, has_more) =
                    read!(self, tx => groups::list_mine(tx, me, after, limit).await);
                let page = pb::GroupList { groups, has_more };
                Some(self.fit(page, Cut::Back).into_body())
            }
            Body::SearchGroups(q) => {
                let query = validate::query(&q.query).map_err(bad)?;
                let limit = self.page_limit(q.limit);
                let groups = read!(self, tx => groups::search(tx, me, &query, limit).await);
                let page = pb::GroupList {
                    groups,
                    has_more: false,
                };
                Some(self.fit(page, Cut::Back).into_body())
            }
            Body::ListGroupMembers(m) => {
                let limit = self.page_limit(m.limit);
                let mut list = read!(self, tx => groups::members(tx, me, m.group_id, m.after_user_id, limit).await);
                let ids: Vec<u64> = list
                    .members
                    .iter()
                    .filter_map(|m| m.user.as_ref())
                    .map(|u| u.user_id)
                    .collect();
                let online = self.online_among(&ids).await;
                for member in &mut list.members {
                    member.online = member
                        .user
                        .as_ref()
                        .is_some_and(|u| online.contains(&u.user_id));
                }
                Some(self.fit(list, Cut::Back).into_body())
            }

            // Threads
            other => return Err(not_a_request(&other)),
        })
    }
}
