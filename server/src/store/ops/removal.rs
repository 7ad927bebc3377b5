//! Deleting one's account. What goes and what stays is PROTOCOL.md's list (DeleteAccount):
//! the users row stays, with an empty name and no password, so messages keep a sender and the
//! name stays held (its name_key) until the hold is over.

use confab_wire::pb;
use pb::group_change::Kind as Change;

use super::audit::{self, Actor};
use super::groups::{change, hand_over, remove_member, system};
use super::views::group;
use super::{Effects, state};
use crate::ids::{Snowflake, now_ms};
use crate::params;
use crate::store::{StoreResult, Tx};

/// The member who inherits a group from its owner: the oldest admin, else the oldest member.
async fn successor<T: Tx>(tx: &mut T, group_id: u64, owner: u64) -> StoreResult<Option<u64>> {
    tx.query(
        "SELECT user_id FROM group_members WHERE group_id = ? AND user_id <> ? \
         ORDER BY CASE WHEN role = ? THEN 0 ELSE 1 END, joined_ms, user_id LIMIT 1",
        params![group_id, owner, i64::from(pb::Role::Admin as i32)],
    )
    .await?
    .first()
    .map(|r| r.u64(0))
    .transpose()
}

/// Takes `me` out of every group: an owned group passes to its successor first; one left
/// without members is marked deleted.
async fn leave_groups<T: Tx>(
    tx: &mut T,
    ids: &Snowflake,
    fx: &mut Effects,
    me: &pb::User,
) -> StoreResult<()> {
    let rows = tx
        .query(
            "SELECT group_id, role FROM group_members WHERE user_id = ? ORDER BY group_id",
            params![me.user_id],
        )
        .await?;
    for r in rows {
        let (group_id, role) = (r.u64(0)?, r.i64(1)?);
        let g = group(tx, me.user_id, group_id).await?;
        let heir = if role == i64::from(pb::Role::Owner as i32) {
            successor(tx, group_id, me.user_id).await?
        } else {
            None
        };
        if let Some(heir) = heir {
            hand_over(tx, ids, fx, &g, me.user_id, heir, me).await?;
        }
        system(
            tx,
            ids,
            fx,
            g.thread_id,
            me,
            change(Change::Left, me, Some(me)),
        )
        .await?;
        remove_member(tx, &g, me.user_id).await?;
        fx.members_changed.push(g.thread_id);
        if role == i64::from(pb::Role::Owner as i32) && heir.is_none() {
            tx.exec(
                "UPDATE chat_groups SET deleted_ms = ? WHERE id = ?",
                params![now_ms(), group_id],
            )
            .await?;
        }
    }
    Ok(())
}

/// Deletes `me`'s account (the password was checked by the caller).
pub async fn delete_account<T: Tx>(
    tx: &mut T,
    ids: &Snowflake,
    me: &pb::User,
) -> StoreResult<Effects> {
    let mut fx = Effects::default();
    leave_groups(tx, ids, &mut fx, me).await?;
    let friends = super::friends::friend_ids(tx, me.user_id).await?;
    for friend in friends {
        let more = super::friends::remove(tx, me.user_id, friend).await?;
        fx.events.extend(more.events);
        fx.members_changed.extend(more.members_changed);
    }
    // Requests I sent are withdrawn (their recipients are told); requests to me lapse.
    let sent = tx
        .query(
            "SELECT id FROM friend_requests WHERE from_id = ? AND state = ?",
            params![me.user_id, state::PENDING],
        )
        .await?;
    for r in sent {
        let more = super::friends::cancel(tx, r.u64(0)?, me.user_id).await?;
        fx.events.extend(more.events);
    }
    tx.exec(
        "UPDATE friend_requests SET state = ?, answered_ms = ? WHERE to_id = ? AND state = ?",
        params![state::CANCELLED, now_ms(), me.user_id, state::PENDING],
    )
    .await?;
    for sql in [
        "DELETE FROM blocks WHERE user_id = ? OR blocked_id = ?",
        "DELETE FROM group_invites WHERE user_id = ? OR inviter_id = ?",
    ] {
        tx.exec(sql, params![me.user_id, me.user_id]).await?;
    }
    super::admin::revoke_all(tx, me.user_id).await?;
    tx.exec(
        "UPDATE users SET name = '', password_hash = '', deleted_ms = ?, is_admin = 0 WHERE id = ?",
        params![now_ms(), me.user_id],
    )
    .await?;
    audit::record(tx, &Actor::user(me), "account.delete", &me.name, "").await?;
    // My own devices are gone: events for me would reach nobody.
    fx.events.retain(|(uid, _)| *uid != me.user_id);
    Ok(fx)
}

/// Frees a deleted account's name once `hold_ms` has passed since the deletion: its name_key
/// becomes one no valid name folds to. Returns whether the name is free now.
pub async fn release_name<T: Tx>(tx: &mut T, name_key: &str, hold_ms: i64) -> StoreResult<bool> {
    let Some(r) = tx
        .query(
            "SELECT id, deleted_ms FROM users WHERE name_key = ?",
            params![name_key],
        )
        .await?
        .into_iter()
        .next()
    else {
        return Ok(true);
    };
    let (id, deleted) = (r.u64(0)?, r.i64(1)?);
    if deleted == 0 || deleted > now_ms().saturating_sub(hold_ms) {
        return Ok(false);
    }
    // A control character: validate::user_name refuses them, so no name folds to this.
    let tombstone = format!("\u{1}deleted:{id}");
    tx.exec(
        "UPDATE users SET name_key = ? WHERE id = ?",
        params![&tombstone, id],
    )
    .await?;
    Ok(true)
}
