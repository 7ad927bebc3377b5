//! Invitation codes for registration. A code is `ID.SECRET`: the id finds the row, and only
//! SHA-256(SECRET) is stored, compared in constant time. The secret is made by the caller
//! (a write job may run twice; it must not draw new randomness).

use confab_wire::pb;
use subtle::ConstantTimeEq;

use super::audit::{self, Actor};
use crate::ids::now_ms;
use crate::params;
use crate::store::{Row, StoreError, StoreResult, Tx, TxExt};

/// Why a registration's code is refused: one message for every reason, so a guesser learns
/// nothing about which ids exist.
pub const INVALID: &str =
    "that invitation code is not valid (unknown, used up, expired or revoked)";

/// A new invitation's terms.
#[derive(Debug, Clone)]
pub struct NewInvite {
    pub secret_hash: Vec<u8>,
    pub uses: u32,
    /// 0: never expires.
    pub expires_ms: i64,
    pub note: String,
}

/// Stores an invitation; returns its id.
pub async fn create<T: Tx>(tx: &mut T, actor: &Actor, inv: &NewInvite) -> StoreResult<u64> {
    let id = tx
        .insert(
            "INSERT INTO invites (secret_hash, uses, used, created_ms, expires_ms, revoked, created_by, note) \
             VALUES (?, ?, 0, ?, ?, 0, ?, ?)",
            params![
                &inv.secret_hash,
                i64::from(inv.uses),
                now_ms(),
                inv.expires_ms,
                &actor.name,
                &inv.note
            ],
        )
        .await?;
    let detail = format!(
        "uses {}, expires {}",
        inv.uses,
        if inv.expires_ms == 0 {
            "never".to_owned()
        } else {
            format!("at {} ms", inv.expires_ms)
        }
    );
    audit::record(tx, actor, "invite.create", &format!("invite {id}"), &detail).await?;
    Ok(id)
}

fn invite_from_row(r: &Row) -> StoreResult<pb::AdminInvite> {
    Ok(pb::AdminInvite {
        invite_id: r.u64(0)?,
        code: String::new(),
        uses: u32::try_from(r.i64(1)?).unwrap_or(0),
        used: u32::try_from(r.i64(2)?).unwrap_or(0),
        created_ms: r.i64(3)?,
        expires_ms: r.i64(4)?,
        revoked: r.bool(5)?,
        created_by: r.text(6)?,
        note: r.text(7)?,
    })
}

/// One invitation (without its code).
pub async fn get<T: Tx>(tx: &mut T, id: u64) -> StoreResult<pb::AdminInvite> {
    const SQL: &str = "SELECT id, uses, used, created_ms, expires_ms, revoked, created_by, note FROM invites WHERE id = ?";
    let row = tx
        .query_opt(SQL, params![id])
        .await?
        .ok_or(StoreError::NotFound("invitation"))?;
    invite_from_row(&row)
}

/// Every invitation, newest first (at most `limit`).
pub async fn list<T: Tx>(tx: &mut T, limit: u32) -> StoreResult<Vec<pb::AdminInvite>> {
    let rows = tx
        .query(
            "SELECT id, uses, used, created_ms, expires_ms, revoked, created_by, note FROM invites \
             ORDER BY id DESC LIMIT ?",
            params![i64::from(limit)],
        )
        .await?;
    rows.iter().map(invite_from_row).collect()
}

/// Revokes an invitation (codes already redeemed stay redeemed).
pub async fn revoke<T: Tx>(tx: &mut T, actor: &Actor, id: u64) -> StoreResult<()> {
    let n = tx
        .exec("UPDATE invites SET revoked = 1 WHERE id = ?", params![id])
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound("invitation"));
    }
    audit::record(tx, actor, "invite.revoke", &format!("invite {id}"), "").await
}

/// Uses one registration of invitation `id` if `secret_hash` is its secret's and it is still
/// good. Runs in the registration's transaction: a refused registration uses nothing.
pub async fn redeem<T: Tx>(tx: &mut T, id: u64, secret_hash: &[u8]) -> StoreResult<()> {
    let row = tx
        .query_opt(
            "SELECT secret_hash, uses, used, expires_ms, revoked FROM invites WHERE id = ?",
            params![id],
        )
        .await?
        .ok_or(StoreError::Forbidden(INVALID))?;
    let stored = row.blob(0)?;
    let matches: bool = stored.as_slice().ct_eq(secret_hash).into();
    let (uses, used, expires, revoked) = (row.i64(1)?, row.i64(2)?, row.i64(3)?, row.bool(4)?);
    if !matches || revoked || used >= uses || (expires != 0 && expires <= now_ms()) {
        return Err(StoreError::Forbidden(INVALID));
    }
    tx.exec(
        "UPDATE invites SET used = used + 1 WHERE id = ? AND used < uses",
        params![id],
    )
    .await?;
    Ok(())
}
