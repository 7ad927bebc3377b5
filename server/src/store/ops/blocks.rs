//! Blocks (schema 3, protocol 1.4): who blocked whom, and what a block takes away from the
//! blocked user: friend requests to the blocker, writing in their private thread (read only for
//! them from the block on), inviting them to groups.

use confab_wire::pb;
use pb::user_event::Kind;

use super::{Effects, state, user};
use crate::ids::now_ms;
use crate::params;
use crate::store::{StoreError, StoreResult, Tx, TxExt};

/// Whether `by` has blocked `whom`.
pub async fn blocked<T: Tx>(tx: &mut T, by: u64, whom: u64) -> StoreResult<bool> {
    Ok(tx
        .query_opt(
            "SELECT 1 FROM blocks WHERE user_id = ? AND blocked_id = ?",
            params![by, whom],
        )
        .await?
        .is_some())
}

/// `me` blocks `them` (at most `max` blocks per user). Their pending requests to me are
/// cancelled, and our private thread becomes read only for them.
pub async fn block<T: Tx>(tx: &mut T, me: u64, them: u64, max: u32) -> StoreResult<Effects> {
    if me == them {
        return Err(StoreError::Invalid("cannot block yourself"));
    }
    let them_user = user(tx, them).await?;
    let mut fx = Effects::default();
    if blocked(tx, me, them).await? {
        return Ok(fx);
    }
    let n = tx
        .query_opt("SELECT COUNT(*) FROM blocks WHERE user_id = ?", params![me])
        .await?
        .map(|r| r.u64(0))
        .transpose()?
        .unwrap_or(0);
    if n >= u64::from(max) {
        return Err(StoreError::LimitReached(
            "you have blocked as many users as the server allows",
        ));
    }
    tx.exec(
        "INSERT INTO blocks (user_id, blocked_id, created_ms) VALUES (?, ?, ?)",
        params![me, them, now_ms()],
    )
    .await?;
    tx.exec(
        "UPDATE friend_requests SET state = ?, answered_ms = ? WHERE from_id = ? AND to_id = ? AND state = ?",
        params![state::CANCELLED, now_ms(), them, me, state::PENDING],
    )
    .await?;
    if let Some(thread_id) = private_thread(tx, me, them).await? {
        // Read only for both: what the blocker wrote would reach nobody.
        tx.exec(
            "UPDATE thread_members SET active = 0, \
             left_seq = (SELECT last_seq FROM threads WHERE id = ?) WHERE thread_id = ?",
            params![thread_id, thread_id],
        )
        .await?;
        fx.members_changed.push(thread_id);
    }
    // My other devices hide them at once.
    super::emit(tx, &mut fx, me, Kind::UserBlocked(them_user)).await?;
    Ok(fx)
}

/// `me` unblocks `them`: a friendship that still stands is writable again, for both, unless
/// they block me too.
pub async fn unblock<T: Tx>(tx: &mut T, me: u64, them: u64) -> StoreResult<Effects> {
    let mut fx = Effects::default();
    if !blocked(tx, me, them).await? {
        return Ok(fx);
    }
    tx.exec(
        "DELETE FROM blocks WHERE user_id = ? AND blocked_id = ?",
        params![me, them],
    )
    .await?;
    if let Some(thread_id) = private_thread(tx, me, them).await?
        && !blocked(tx, them, me).await?
    {
        tx.exec(
            "UPDATE thread_members SET active = 1, left_seq = 0 WHERE thread_id = ?",
            params![thread_id],
        )
        .await?;
        fx.members_changed.push(thread_id);
    }
    let them_user = user(tx, them).await?;
    super::emit(tx, &mut fx, me, Kind::UserUnblocked(them_user)).await?;
    Ok(fx)
}

/// Who blocked `me` (their presence is not mine to see).
pub async fn blockers<T: Tx>(tx: &mut T, me: u64) -> StoreResult<Vec<u64>> {
    let rows = tx
        .query(
            "SELECT user_id FROM blocks WHERE blocked_id = ?",
            params![me],
        )
        .await?;
    rows.iter().map(|r| r.u64(0)).collect()
}

/// The users `me` blocked, oldest block first.
pub async fn list<T: Tx>(tx: &mut T, me: u64) -> StoreResult<Vec<pb::User>> {
    let rows = tx
        .query(
            "SELECT b.blocked_id, u.name FROM blocks b JOIN users u ON u.id = b.blocked_id \
             WHERE b.user_id = ? ORDER BY b.created_ms, b.blocked_id",
            params![me],
        )
        .await?;
    super::users_of_rows(&rows)
}

/// The private thread of two friends, if they are friends.
async fn private_thread<T: Tx>(tx: &mut T, a: u64, b: u64) -> StoreResult<Option<u64>> {
    tx.query_opt(
        "SELECT thread_id FROM friendships WHERE user_id = ? AND friend_id = ?",
        params![a, b],
    )
    .await?
    .map(|r| r.u64(0))
    .transpose()
}
