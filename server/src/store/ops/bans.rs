//! Group bans (schema 5, protocol 1.4): who is barred from which group. A ban is placed with
//! `KickMember{ban}` (groups.rs); here are the rows and the checks join, invite and search use.

use confab_wire::pb;

use crate::ids::now_ms;
use crate::params;
use crate::store::{StoreError, StoreResult, Tx, TxExt};

pub async fn banned<T: Tx>(tx: &mut T, group_id: u64, user_id: u64) -> StoreResult<bool> {
    Ok(tx
        .query_opt(
            "SELECT 1 FROM group_bans WHERE group_id = ? AND user_id = ?",
            params![group_id, user_id],
        )
        .await?
        .is_some())
}

/// Records a ban (once).
pub(super) async fn add<T: Tx>(
    tx: &mut T,
    group_id: u64,
    user_id: u64,
    by: u64,
) -> StoreResult<()> {
    if !banned(tx, group_id, user_id).await? {
        tx.exec(
            "INSERT INTO group_bans (group_id, user_id, banned_by, created_ms) VALUES (?, ?, ?, ?)",
            params![group_id, user_id, by, now_ms()],
        )
        .await?;
    }
    Ok(())
}

/// Owner and admins only.
async fn moderator<T: Tx>(tx: &mut T, group_id: u64, me: u64) -> StoreResult<()> {
    match super::groups::role(tx, group_id, me).await? {
        pb::Role::Owner | pb::Role::Admin => Ok(()),
        pb::Role::Unspecified => Err(StoreError::Forbidden("not a member of this group")),
        _ => Err(StoreError::Forbidden(
            "only the owner and admins manage bans",
        )),
    }
}

/// Lifts a ban (none: nothing to do).
pub async fn remove<T: Tx>(tx: &mut T, me: u64, group_id: u64, user_id: u64) -> StoreResult<()> {
    moderator(tx, group_id, me).await?;
    let n = tx
        .exec(
            "DELETE FROM group_bans WHERE group_id = ? AND user_id = ?",
            params![group_id, user_id],
        )
        .await?;
    if n > 0 {
        let actor = super::user(tx, me).await?;
        let subject = super::user(tx, user_id).await?;
        let g = super::views::group(tx, me, group_id).await?;
        super::groups::moderation(tx, &actor, "group.unban", &subject, &g).await?;
    }
    Ok(())
}

/// The group's bans, oldest first.
pub async fn list<T: Tx>(tx: &mut T, me: u64, group_id: u64) -> StoreResult<Vec<pb::User>> {
    moderator(tx, group_id, me).await?;
    let rows = tx
        .query(
            "SELECT b.user_id, u.name FROM group_bans b JOIN users u ON u.id = b.user_id \
             WHERE b.group_id = ? ORDER BY b.created_ms, b.user_id",
            params![group_id],
        )
        .await?;
    super::users_of_rows(&rows)
}
