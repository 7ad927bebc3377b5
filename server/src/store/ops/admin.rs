//! What server admins and the operator's console do: users (deactivate, promote, passwords,
//! sessions), groups (delete, transfer), statistics. Each change is audited in its own
//! transaction.

use confab_wire::pb;
use pb::group_change::Kind as Change;
use pb::user_event::Kind;

use super::audit::{self, Actor};
use super::groups::{change, hand_over, remove_member, system};
use super::views::group;
use super::{Effects, emit, like_escape};
use crate::ids::{Snowflake, now_ms};
use crate::params;
use crate::store::{Dialect, Row, StoreError, StoreResult, Tx, TxExt};

/// Whether `user_id` was made a server admin (`--admin` names are the service's to check).
pub async fn is_admin<T: Tx>(tx: &mut T, user_id: u64) -> StoreResult<bool> {
    Ok(tx
        .query_opt("SELECT is_admin FROM users WHERE id = ?", params![user_id])
        .await?
        .map(|r| r.bool(0))
        .transpose()?
        .unwrap_or(false))
}

/// Whether an admin deleted the group.
pub async fn group_deleted<T: Tx>(tx: &mut T, group_id: u64) -> StoreResult<bool> {
    Ok(tx
        .query_opt(
            "SELECT deleted_ms FROM chat_groups WHERE id = ?",
            params![group_id],
        )
        .await?
        .map(|r| r.i64(0))
        .transpose()?
        .unwrap_or(0)
        != 0)
}

/// The start of a query for [`admin_user`] rows, up to its WHERE (a macro, so each query stays
/// one static string).
macro_rules! admin_user_sql {
    () => {
        "SELECT u.id, u.name, u.created_ms, u.last_seen_ms, u.is_admin, u.disabled_ms, \
         u.deleted_ms, \
         (SELECT COUNT(*) FROM devices d WHERE d.user_id = u.id AND d.revoked = 0), \
         (SELECT COUNT(*) FROM group_members m WHERE m.user_id = u.id), \
         (SELECT MAX(d.last_seen_ms) FROM devices d WHERE d.user_id = u.id) \
         FROM users u WHERE "
    };
}

fn admin_user(r: &Row) -> StoreResult<pb::AdminUser> {
    Ok(pb::AdminUser {
        user: Some(pb::User {
            user_id: r.u64(0)?,
            name: r.text(1)?,
        }),
        created_ms: r.i64(2)?,
        // The last goodbye, or the newest login or resume of a session if later (a user online
        // now has not said goodbye yet).
        last_seen_ms: r.i64(3)?.max(r.opt_i64(9)?.unwrap_or(0)),
        admin: r.bool(4)?,
        disabled_ms: r.i64(5)?,
        deleted_ms: r.i64(6)?,
        devices: u32::try_from(r.i64(7)?).unwrap_or(u32::MAX),
        sessions: Vec::new(),
        groups: u32::try_from(r.i64(8)?).unwrap_or(u32::MAX),
    })
}

/// Users whose folded name contains `query_key` (everyone when empty), by id after `after`.
pub async fn list_users<T: Tx>(
    tx: &mut T,
    query_key: &str,
    after: u64,
    limit: u32,
) -> StoreResult<(Vec<pb::AdminUser>, bool)> {
    let pattern = format!("%{}%", like_escape(query_key));
    let rows = tx
        .query(
            concat!(
                admin_user_sql!(),
                "u.name_key LIKE ? ESCAPE '!' AND u.id > ? ORDER BY u.id LIMIT ?"
            ),
            params![&pattern, after, i64::from(limit) + 1],
        )
        .await?;
    let has_more = rows.len() > limit as usize;
    let users = rows
        .iter()
        .take(limit as usize)
        .map(admin_user)
        .collect::<StoreResult<Vec<_>>>()?;
    Ok((users, has_more))
}

/// One user by folded name, with its device sessions.
pub async fn get_user<T: Tx>(tx: &mut T, name_key: &str) -> StoreResult<pb::AdminUser> {
    let row = tx
        .query_opt(
            concat!(admin_user_sql!(), "u.name_key = ?"),
            params![name_key],
        )
        .await?
        .ok_or(StoreError::NotFound("user"))?;
    let mut user = admin_user(&row)?;
    let uid = user.user.as_ref().map_or(0, |u| u.user_id);
    user.sessions = super::accounts::devices(tx, uid, 0).await?;
    Ok(user)
}

/// A user's id, name, and whether the account was deleted.
async fn target<T: Tx>(tx: &mut T, name_key: &str) -> StoreResult<(u64, String, bool)> {
    let r = tx
        .query_opt(
            "SELECT id, name, deleted_ms FROM users WHERE name_key = ?",
            params![name_key],
        )
        .await?
        .ok_or(StoreError::NotFound("user"))?;
    Ok((r.u64(0)?, r.text(1)?, r.i64(2)? != 0))
}

/// Ends every device session of a user (their tokens go too).
pub(super) async fn revoke_all<T: Tx>(tx: &mut T, user_id: u64) -> StoreResult<()> {
    tx.exec(
        "UPDATE devices SET revoked = 1 WHERE user_id = ?",
        params![user_id],
    )
    .await?;
    tx.exec(
        "DELETE FROM device_tokens WHERE device_id IN (SELECT id FROM devices WHERE user_id = ?)",
        params![user_id],
    )
    .await?;
    Ok(())
}

/// Applies `action` to the user named `name_key`; returns their id (the caller ends their
/// connections when the action ends sessions).
pub async fn set_user<T: Tx>(
    tx: &mut T,
    actor: &Actor,
    name_key: &str,
    action: pb::AdminUserAction,
) -> StoreResult<u64> {
    use pb::AdminUserAction as A;
    let (uid, name, deleted) = target(tx, name_key).await?;
    if deleted {
        return Err(StoreError::Conflict("that account was deleted"));
    }
    let what = match action {
        A::Deactivate => {
            if uid == actor.id {
                return Err(StoreError::Conflict("you cannot deactivate yourself"));
            }
            tx.exec(
                "UPDATE users SET disabled_ms = ? WHERE id = ? AND disabled_ms = 0",
                params![now_ms(), uid],
            )
            .await?;
            revoke_all(tx, uid).await?;
            "user.deactivate"
        }
        A::Reactivate => {
            tx.exec(
                "UPDATE users SET disabled_ms = 0 WHERE id = ?",
                params![uid],
            )
            .await?;
            "user.reactivate"
        }
        A::Promote | A::Demote => {
            tx.exec(
                "UPDATE users SET is_admin = ? WHERE id = ?",
                params![action == A::Promote, uid],
            )
            .await?;
            if action == A::Promote {
                "user.promote"
            } else {
                "user.demote"
            }
        }
        A::RevokeSessions => {
            revoke_all(tx, uid).await?;
            "user.revoke_sessions"
        }
        A::Unspecified => return Err(StoreError::Invalid("action is required")),
    };
    audit::record(tx, actor, what, &name, "").await?;
    Ok(uid)
}

/// Sets a user's password hash and ends their sessions; returns their id.
pub async fn reset_password<T: Tx>(
    tx: &mut T,
    actor: &Actor,
    name_key: &str,
    password_hash: &str,
) -> StoreResult<u64> {
    let (uid, name, deleted) = target(tx, name_key).await?;
    if deleted {
        return Err(StoreError::Conflict("that account was deleted"));
    }
    tx.exec(
        "UPDATE users SET password_hash = ? WHERE id = ?",
        params![password_hash, uid],
    )
    .await?;
    revoke_all(tx, uid).await?;
    audit::record(tx, actor, "user.reset_password", &name, "").await?;
    Ok(uid)
}

/// Groups not deleted whose folded name contains `query_key`, by id after `after`; with
/// `only` set, that group alone.
pub async fn list_groups<T: Tx>(
    tx: &mut T,
    query_key: &str,
    after: u64,
    limit: u32,
    only: u64,
) -> StoreResult<(Vec<pb::AdminGroup>, bool)> {
    let pattern = format!("%{}%", like_escape(query_key));
    let rows = tx
        .query(
            "SELECT g.id, u.id, u.name, t.activity_id FROM chat_groups g \
             JOIN users u ON u.id = g.owner_id JOIN threads t ON t.id = g.thread_id \
             WHERE g.deleted_ms = 0 AND g.name_key LIKE ? ESCAPE '!' AND g.id > ? \
             AND (? = 0 OR g.id = ?) ORDER BY g.id LIMIT ?",
            params![&pattern, after, only, only, i64::from(limit) + 1],
        )
        .await?;
    let has_more = rows.len() > limit as usize;
    let mut out = Vec::with_capacity(rows.len().min(limit as usize));
    for r in rows.iter().take(limit as usize) {
        let g = group(tx, 0, r.u64(0)?).await?;
        out.push(pb::AdminGroup {
            group: Some(g),
            owner: Some(pb::User {
                user_id: r.u64(1)?,
                name: r.text(2)?,
            }),
            // The activity id is a snowflake: its top bits are unix milliseconds.
            last_activity_ms: crate::ids::snowflake_ms(r.u64(3)?),
        });
    }
    Ok((out, has_more))
}

/// Loads a group that is not deleted.
async fn live_group<T: Tx>(tx: &mut T, group_id: u64) -> StoreResult<pb::Group> {
    if group_deleted(tx, group_id).await? {
        return Err(StoreError::NotFound("group"));
    }
    group(tx, 0, group_id).await
}

/// Deletes a group: every member is removed (and told), invitations and bans go, the thread
/// stays readable by its former members up to now.
pub async fn delete_group<T: Tx>(
    tx: &mut T,
    ids: &Snowflake,
    actor: &Actor,
    group_id: u64,
) -> StoreResult<Effects> {
    let g = live_group(tx, group_id).await?;
    let owner = super::user(tx, g.owner_id).await?;
    let by = pb::User {
        user_id: actor.id,
        name: actor.name.clone(),
    };
    let mut fx = Effects::default();
    // The console has no users row to send the entry as: the owner stands in as its sender.
    let sender = if actor.id == 0 { &owner } else { &by };
    system(
        tx,
        ids,
        &mut fx,
        g.thread_id,
        sender,
        change(Change::Deleted, &by, None),
    )
    .await?;
    let members = tx
        .query(
            "SELECT user_id FROM group_members WHERE group_id = ? ORDER BY user_id",
            params![group_id],
        )
        .await?;
    for m in &members {
        let uid = m.u64(0)?;
        remove_member(tx, &g, uid).await?;
        let seen = group(tx, uid, group_id).await?;
        emit(tx, &mut fx, uid, Kind::GroupLeft(seen)).await?;
    }
    for sql in [
        "DELETE FROM group_invites WHERE group_id = ?",
        "DELETE FROM group_bans WHERE group_id = ?",
    ] {
        tx.exec(sql, params![group_id]).await?;
    }
    tx.exec(
        "UPDATE chat_groups SET deleted_ms = ?, member_count = 0 WHERE id = ?",
        params![now_ms(), group_id],
    )
    .await?;
    fx.members_changed.push(g.thread_id);
    let detail = format!("{} members removed", members.len());
    audit::record(
        tx,
        actor,
        "group.delete",
        &format!("group {group_id} ({})", g.name),
        &detail,
    )
    .await?;
    Ok(fx)
}

/// Makes member `new_owner_key` the owner of a group.
pub async fn transfer_group<T: Tx>(
    tx: &mut T,
    ids: &Snowflake,
    actor: &Actor,
    group_id: u64,
    new_owner_key: &str,
) -> StoreResult<Effects> {
    let g = live_group(tx, group_id).await?;
    let (to, to_name, _) = target(tx, new_owner_key).await?;
    if super::groups::role(tx, group_id, to).await? == pb::Role::Unspecified {
        return Err(StoreError::NotFound("member"));
    }
    let mut fx = Effects::default();
    if to == g.owner_id {
        return Ok(fx);
    }
    let by = pb::User {
        user_id: actor.id,
        name: actor.name.clone(),
    };
    hand_over(tx, ids, &mut fx, &g, g.owner_id, to, &by).await?;
    audit::record(
        tx,
        actor,
        "group.transfer",
        &format!("group {group_id} ({})", g.name),
        &format!("to {to_name}"),
    )
    .await?;
    Ok(fx)
}

async fn count<T: Tx>(tx: &mut T, sql: &'static str) -> StoreResult<u64> {
    tx.query_opt(sql, &[])
        .await?
        .map(|r| r.u64(0))
        .transpose()
        .map(|n| n.unwrap_or(0))
}

/// Counts of users, groups and messages; on MySQL also the database's size (the embedded
/// store's size is its files', which the caller measures).
pub async fn stats<T: Tx>(tx: &mut T) -> StoreResult<pb::AdminStats> {
    let mut s = pb::AdminStats {
        users: count(tx, "SELECT COUNT(*) FROM users WHERE deleted_ms = 0").await?,
        disabled_users: count(
            tx,
            "SELECT COUNT(*) FROM users WHERE deleted_ms = 0 AND disabled_ms <> 0",
        )
        .await?,
        groups: count(tx, "SELECT COUNT(*) FROM chat_groups WHERE deleted_ms = 0").await?,
        messages: count(tx, "SELECT COUNT(*) FROM messages").await?,
        ..Default::default()
    };
    if tx.dialect() == Dialect::Mysql {
        s.store_bytes = count(
            tx,
            "SELECT CAST(COALESCE(SUM(data_length + index_length), 0) AS SIGNED) \
             FROM information_schema.tables WHERE table_schema = DATABASE()",
        )
        .await?;
    }
    Ok(s)
}
