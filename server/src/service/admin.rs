//! Admin requests: from server admins (`--admin NAME`, or promoted) over any connection, and
//! from the console (the admin socket, or `confab-server admin` on the store directly).

use std::sync::Arc;

use confab_wire::Body;
use confab_wire::pb::{self, ErrorCode};

use crate::cluster::KickScope;
use crate::hub::Kick;
use crate::ids::now_ms;
use crate::store::Backend;
use crate::store::ops::audit::{self, Actor};
use crate::store::ops::{admin, fold, invites};

use super::*;

/// Most registrations one invitation may allow.
const MAX_INVITE_USES: u32 = 1_000_000;

/// Whether a body is an Admin request (the console runs nothing else).
pub fn is_admin_body(body: &Body) -> bool {
    matches!(
        body,
        Body::AdminListUsers(_)
            | Body::AdminGetUser(_)
            | Body::AdminSetUser(_)
            | Body::AdminResetPassword(_)
            | Body::AdminListGroups(_)
            | Body::AdminDeleteGroup(_)
            | Body::AdminTransferGroup(_)
            | Body::AdminCreateInvite(_)
            | Body::AdminListInvites(_)
            | Body::AdminRevokeInvite(_)
            | Body::AdminGetStats(_)
            | Body::AdminListAudit(_)
    )
}

impl Session {
    /// The console's session on the admin socket: no user, no device.
    pub fn console() -> Self {
        Session {
            user: pb::User {
                user_id: 0,
                name: "console".into(),
            },
            device_id: 0,
        }
    }
}

fn name_key(name: &str) -> Res<String> {
    let key = fold(name.trim());
    if key.is_empty() {
        return Err(bad("a user name is required"));
    }
    Ok(key)
}

impl<B: Backend> Service<B> {
    /// Who is asking, if they may: FORBIDDEN for anyone but admins and the console.
    async fn admin_actor(&self, ctx: &ConnCtx, s: &Session) -> Res<Actor> {
        if ctx.operator {
            return Ok(Actor::console());
        }
        let uid = s.user.user_id;
        let named = self.cfg.admins.contains(&fold(&s.user.name));
        if named || read!(self, tx => admin::is_admin(tx, uid).await) {
            return Ok(Actor::user(&s.user));
        }
        Err(err(ErrorCode::Forbidden, "server admins only"))
    }

    /// A user named by `--admin` is an admin whatever the store says.
    fn mark_named_admin(&self, u: &mut pb::AdminUser) {
        if let Some(user) = &u.user
            && self.cfg.admins.contains(&fold(&user.name))
        {
            u.admin = true;
        }
    }

    /// Ends every connection of `uid` on every node.
    fn end_sessions(&self, uid: u64, disabled: bool) {
        let (why, scope) = if disabled {
            (Kick::Disabled, KickScope::Disabled)
        } else {
            (Kick::Revoked, KickScope::All)
        };
        self.hub.kick_where(uid, why, |_| true);
        self.bus.kick(uid, scope);
    }

    pub(super) async fn admin_request(
        self: &Arc<Self>,
        ctx: &ConnCtx,
        s: &Session,
        body: Body,
    ) -> Res<Option<Body>> {
        let actor = self.admin_actor(ctx, s).await?;
        let conn = ctx.conn_id;
        let ids = self.ids.clone();
        Ok(match body {
            Body::AdminListUsers(l) => {
                let (key, limit) = (fold(l.query.trim()), self.page_limit(l.limit));
                let (mut users, has_more) =
                    read!(self, tx => admin::list_users(tx, &key, l.after_user_id, limit).await);
                users.iter_mut().for_each(|u| self.mark_named_admin(u));
                Some(
                    self.fit(pb::AdminUserList { users, has_more }, Cut::Back)
                        .into_body(),
                )
            }
            Body::AdminGetUser(g) => {
                let key = name_key(&g.name)?;
                let mut user = read!(self, tx => admin::get_user(tx, &key).await);
                self.mark_named_admin(&mut user);
                Some(Body::AdminUser(user))
            }
            Body::AdminSetUser(u) => {
                let key = name_key(&u.name)?;
                let action =
                    pb::AdminUserAction::try_from(u.action).map_err(|_| bad("unknown action"))?;
                let uid = self
                    .store
                    .write(move |tx| {
                        Box::pin(async move { admin::set_user(tx, &actor, &key, action).await })
                    })
                    .await?;
                match action {
                    pb::AdminUserAction::Deactivate => self.end_sessions(uid, true),
                    pb::AdminUserAction::RevokeSessions => self.end_sessions(uid, false),
                    _ => {}
                }
                None
            }
            Body::AdminResetPassword(r) => {
                let key = name_key(&r.name)?;
                validate::password(&r.new_password).map_err(bad)?;
                let hash = self.hasher.hash(r.new_password).await.map_err(hash_err)?;
                let uid = self
                    .store
                    .write(move |tx| {
                        Box::pin(
                            async move { admin::reset_password(tx, &actor, &key, &hash).await },
                        )
                    })
                    .await?;
                self.end_sessions(uid, false);
                None
            }
            Body::AdminListGroups(l) => {
                let (key, limit) = (fold(l.query.trim()), self.page_limit(l.limit));
                let (groups, has_more) = read!(self, tx => admin::list_groups(tx, &key, l.after_group_id, limit, l.group_id).await);
                Some(
                    self.fit(pb::AdminGroupList { groups, has_more }, Cut::Back)
                        .into_body(),
                )
            }
            Body::AdminDeleteGroup(d) => {
                write!(self, conn, tx => admin::delete_group(tx, &ids, &actor, d.group_id).await.map(|fx| ((), fx)));
                None
            }
            Body::AdminTransferGroup(t) => {
                let key = name_key(&t.new_owner)?;
                write!(self, conn, tx => admin::transfer_group(tx, &ids, &actor, t.group_id, &key).await.map(|fx| ((), fx)));
                None
            }
            Body::AdminCreateInvite(c) => {
                Some(Body::AdminInvite(self.create_invite(actor, c).await?))
            }
            Body::AdminListInvites(_) => {
                let limit = self.cfg.max_page;
                let invites = read!(self, tx => invites::list(tx, limit).await);
                Some(Body::AdminInviteList(pb::AdminInviteList { invites }))
            }
            Body::AdminRevokeInvite(r) => {
                let id = r.invite_id;
                self.store
                    .write(move |tx| Box::pin(async move { invites::revoke(tx, &actor, id).await }))
                    .await?;
                None
            }
            Body::AdminGetStats(_) => {
                let mut stats = read!(self, tx => admin::stats(tx).await);
                if self.cfg.mysql_url.is_none() {
                    stats.store_bytes = embedded_store_bytes(&self.cfg.data_dir);
                }
                stats.connections = self.hub.connections() as u64;
                stats.online_users = self.hub.online_users() as u64;
                Some(Body::AdminStats(stats))
            }
            Body::AdminListAudit(l) => {
                let limit = self.page_limit(l.limit);
                let (entries, has_more) =
                    read!(self, tx => audit::list(tx, l.before_id, limit).await);
                Some(
                    self.fit(pb::AdminAuditPage { entries, has_more }, Cut::Back)
                        .into_body(),
                )
            }
            other => return Err(not_a_request(&other)),
        })
    }

    async fn create_invite(&self, actor: Actor, c: pb::AdminCreateInvite) -> Res<pb::AdminInvite> {
        let uses = match c.uses {
            0 => 1,
            n if n > MAX_INVITE_USES => return Err(bad("uses must be at most 1000000")),
            n => n,
        };
        if c.expires_in_ms < 0 {
            return Err(bad("expires_in_ms must not be negative"));
        }
        let note = validate::note(&c.note).map_err(bad)?;
        let (secret, secret_hash) = auth::new_invite_secret();
        let new = invites::NewInvite {
            secret_hash,
            uses,
            expires_ms: if c.expires_in_ms == 0 {
                0
            } else {
                now_ms().saturating_add(c.expires_in_ms)
            },
            note,
        };
        let invite = self
            .store
            .write(move |tx| {
                Box::pin(async move {
                    let id = invites::create(tx, &actor, &new).await?;
                    invites::get(tx, id).await
                })
            })
            .await?;
        Ok(pb::AdminInvite {
            code: auth::invite_code(invite.invite_id, &secret),
            ..invite
        })
    }
}

/// The embedded database's files, in bytes.
fn embedded_store_bytes(dir: &std::path::Path) -> u64 {
    ["confab.db", "confab.db-wal", "confab.db-redo"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}
