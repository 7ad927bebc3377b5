//! Users, device sessions and resume tokens.

use confab_wire::pb;

use super::{like_escape, state};
use crate::ids::now_ms;
use crate::params;
use crate::store::{StoreError, StoreResult, Tx, TxExt};

/// A user with the stored password hash, for verification.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user: pb::User,
    pub password_hash: String,
    /// Deactivated by an admin: the password is checked, then the login refused.
    pub disabled: bool,
}

/// An authenticated device session.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: pb::User,
    pub device_id: u64,
    pub last_event_seq: u64,
}

/// A registration's account, before it has an id.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub name: String,
    pub name_key: String,
    pub password_hash: String,
    /// The invitation to redeem (id, SHA-256 of its secret) when registration needs one.
    pub invite: Option<(u64, Vec<u8>)>,
    /// How long a deleted account's name stays held.
    pub name_hold_ms: i64,
}

/// Creates a user and its first device session.
pub async fn register<T: Tx>(
    tx: &mut T,
    account: &NewAccount,
    device: &NewDevice,
    token_hash: &[u8],
) -> StoreResult<Session> {
    let now = now_ms();
    if !super::removal::release_name(tx, &account.name_key, account.name_hold_ms).await? {
        return Err(StoreError::NameTaken);
    }
    if let Some((id, secret_hash)) = &account.invite {
        super::invites::redeem(tx, *id, secret_hash).await?;
    }
    let id = match tx
        .insert(
            "INSERT INTO users (name, name_key, password_hash, created_ms) VALUES (?, ?, ?, ?)",
            params![
                &account.name,
                &account.name_key,
                &account.password_hash,
                now
            ],
        )
        .await
    {
        Err(StoreError::Duplicate) => return Err(StoreError::NameTaken),
        other => other?,
    };
    let user = pb::User {
        user_id: id,
        name: account.name.clone(),
    };
    let device_id = new_device(tx, id, device, token_hash).await?;
    Ok(Session {
        user,
        device_id,
        last_event_seq: 0,
    })
}

/// Looks up credentials by normalized name (a deleted account has none).
pub async fn credentials<T: Tx>(tx: &mut T, name_key: &str) -> StoreResult<Option<Credentials>> {
    let row = tx
        .query_opt(
            "SELECT id, name, password_hash, disabled_ms FROM users WHERE name_key = ? AND deleted_ms = 0",
            params![name_key],
        )
        .await?;
    row.map(|r| {
        Ok(Credentials {
            user: pb::User {
                user_id: r.u64(0)?,
                name: r.text(1)?,
            },
            password_hash: r.text(2)?,
            disabled: r.i64(3)? != 0,
        })
    })
    .transpose()
}

/// The stored hash of a user, for ChangePassword.
pub async fn password_hash<T: Tx>(tx: &mut T, user_id: u64) -> StoreResult<String> {
    tx.query_opt(
        "SELECT password_hash FROM users WHERE id = ?",
        params![user_id],
    )
    .await?
    .ok_or(StoreError::NotFound("user"))?
    .text(0)
}

/// What a new device session records about where it came from (ListDevices shows it).
#[derive(Debug, Clone, Default)]
pub struct NewDevice {
    pub name: String,
    /// The Hello's client_name.
    pub client: String,
    pub address: String,
}

async fn new_device<T: Tx>(
    tx: &mut T,
    user_id: u64,
    device: &NewDevice,
    token_hash: &[u8],
) -> StoreResult<u64> {
    let now = now_ms();
    let device_id = tx
        .insert(
            "INSERT INTO devices (user_id, name, created_ms, last_seen_ms, client, address) VALUES (?, ?, ?, ?, ?, ?)",
            params![user_id, &device.name, now, now, &device.client, &device.address],
        )
        .await?;
    add_token(tx, device_id, token_hash).await?;
    Ok(device_id)
}

async fn add_token<T: Tx>(tx: &mut T, device_id: u64, token_hash: &[u8]) -> StoreResult<()> {
    tx.exec(
        "INSERT INTO device_tokens (token_hash, device_id, expires_ms) VALUES (?, ?, 0)",
        params![token_hash, device_id],
    )
    .await?;
    Ok(())
}

async fn last_event_seq<T: Tx>(tx: &mut T, user_id: u64) -> StoreResult<u64> {
    tx.query_opt("SELECT event_seq FROM users WHERE id = ?", params![user_id])
        .await?
        .ok_or(StoreError::NotFound("user"))?
        .u64(0)
}

/// A new device session for a user whose password was verified.
pub async fn login<T: Tx>(
    tx: &mut T,
    user: pb::User,
    device: &NewDevice,
    token_hash: &[u8],
) -> StoreResult<Session> {
    let device_id = new_device(tx, user.user_id, device, token_hash).await?;
    let last_event_seq = last_event_seq(tx, user.user_id).await?;
    Ok(Session {
        user,
        device_id,
        last_event_seq,
    })
}

/// Resumes the device session holding `token_hash` and issues `new_hash`. The presented token
/// expires `grace_ms` after its first use, so a client that lost the reply can still resume with
/// it, and several processes sharing one session each keep a working token.
pub async fn resume<T: Tx>(
    tx: &mut T,
    token_hash: &[u8],
    new_hash: &[u8],
    grace_ms: i64,
    idle_ms: i64,
) -> StoreResult<Session> {
    let now = now_ms();
    // A session unused for `idle_ms` is over, as a revoked one is.
    let row = tx
        .query_opt(
            "SELECT d.id, d.user_id, u.name, t.expires_ms FROM device_tokens t \
             JOIN devices d ON d.id = t.device_id JOIN users u ON u.id = d.user_id \
             WHERE t.token_hash = ? AND d.revoked = 0 AND (t.expires_ms = 0 OR t.expires_ms > ?) \
             AND d.last_seen_ms > ? AND u.disabled_ms = 0 AND u.deleted_ms = 0",
            params![token_hash, now, now.saturating_sub(idle_ms)],
        )
        .await?
        .ok_or(StoreError::AuthFailed)?;
    let device_id = row.u64(0)?;
    let user = pb::User {
        user_id: row.u64(1)?,
        name: row.text(2)?,
    };
    if row.i64(3)? == 0 {
        tx.exec(
            "UPDATE device_tokens SET expires_ms = ? WHERE token_hash = ?",
            params![now + grace_ms, token_hash],
        )
        .await?;
    }
    // Expired tokens of this device are gone for good.
    tx.exec(
        "DELETE FROM device_tokens WHERE device_id = ? AND expires_ms <> 0 AND expires_ms <= ?",
        params![device_id, now],
    )
    .await?;
    add_token(tx, device_id, new_hash).await?;
    tx.exec(
        "UPDATE devices SET last_seen_ms = ? WHERE id = ?",
        params![now, device_id],
    )
    .await?;
    let last_event_seq = last_event_seq(tx, user.user_id).await?;
    Ok(Session {
        user,
        device_id,
        last_event_seq,
    })
}

/// Revokes one device session, or all of a user's.
pub async fn logout<T: Tx>(tx: &mut T, user_id: u64, device_id: u64, all: bool) -> StoreResult<()> {
    if all {
        tx.exec(
            "UPDATE devices SET revoked = 1 WHERE user_id = ?",
            params![user_id],
        )
        .await?;
    } else {
        tx.exec(
            "UPDATE devices SET revoked = 1 WHERE id = ? AND user_id = ?",
            params![device_id, user_id],
        )
        .await?;
    }
    Ok(())
}

/// Stores a new password hash, revokes every other session of the user and gives this device a
/// new token.
pub async fn change_password<T: Tx>(
    tx: &mut T,
    user: pb::User,
    device_id: u64,
    new_password_hash: &str,
    new_token_hash: &[u8],
) -> StoreResult<Session> {
    tx.exec(
        "UPDATE users SET password_hash = ? WHERE id = ?",
        params![new_password_hash, user.user_id],
    )
    .await?;
    tx.exec(
        "UPDATE devices SET revoked = 1 WHERE user_id = ? AND id <> ?",
        params![user.user_id, device_id],
    )
    .await?;
    tx.exec(
        "DELETE FROM device_tokens WHERE device_id IN (SELECT id FROM devices WHERE user_id = ?)",
        params![user.user_id],
    )
    .await?;
    add_token(tx, device_id, new_token_hash).await?;
    let last_event_seq = last_event_seq(tx, user.user_id).await?;
    Ok(Session {
        user,
        device_id,
        last_event_seq,
    })
}

/// Records when a user was last seen (their last device left).
pub async fn set_last_seen<T: Tx>(tx: &mut T, user_id: u64, ms: i64) -> StoreResult<()> {
    tx.exec(
        "UPDATE users SET last_seen_ms = ? WHERE id = ?",
        params![ms, user_id],
    )
    .await?;
    Ok(())
}

/// How `viewer` relates to `other`.
pub async fn friend_state<T: Tx>(
    tx: &mut T,
    viewer: u64,
    other: u64,
) -> StoreResult<pb::FriendState> {
    if viewer == other {
        return Ok(pb::FriendState::Self_);
    }
    if tx
        .query_opt(
            "SELECT thread_id FROM friendships WHERE user_id = ? AND friend_id = ?",
            params![viewer, other],
        )
        .await?
        .is_some()
    {
        return Ok(pb::FriendState::Friend);
    }
    let row = tx
        .query_opt(
            "SELECT from_id FROM friend_requests WHERE state = ? AND \
             ((from_id = ? AND to_id = ?) OR (from_id = ? AND to_id = ?))",
            params![state::PENDING, viewer, other, other, viewer],
        )
        .await?;
    Ok(match row {
        Some(r) if r.u64(0)? == viewer => pb::FriendState::RequestSent,
        Some(_) => pb::FriendState::RequestReceived,
        None => pb::FriendState::None,
    })
}

/// A profile as `viewer` sees it (presence is filled in by the caller, for friends only).
pub async fn profile<T: Tx>(tx: &mut T, viewer: u64, user_id: u64) -> StoreResult<pb::Profile> {
    let row = tx
        .query_opt(
            "SELECT id, name, created_ms, last_seen_ms FROM users WHERE id = ?",
            params![user_id],
        )
        .await?
        .ok_or(StoreError::NotFound("user"))?;
    let friend_state = friend_state(tx, viewer, user_id).await?;
    let shows_presence = matches!(
        friend_state,
        pb::FriendState::Friend | pb::FriendState::Self_
    );
    Ok(pb::Profile {
        user: Some(pb::User {
            user_id: row.u64(0)?,
            name: row.text(1)?,
        }),
        created_ms: row.i64(2)?,
        online: false,
        last_seen_ms: if shows_presence { row.i64(3)? } else { 0 },
        friend_state: friend_state as i32,
    })
}

/// A user id by normalized name.
pub async fn user_id_by_key<T: Tx>(tx: &mut T, name_key: &str) -> StoreResult<u64> {
    tx.query_opt(
        "SELECT id FROM users WHERE name_key = ? AND deleted_ms = 0",
        params![name_key],
    )
    .await?
    .ok_or(StoreError::NotFound("user"))?
    .u64(0)
}

/// Users whose normalized name contains `query_key`, prefix matches first.
pub async fn search<T: Tx>(
    tx: &mut T,
    viewer: u64,
    query_key: &str,
    limit: u32,
) -> StoreResult<Vec<pb::Profile>> {
    let escaped = like_escape(query_key);
    let contains = format!("%{escaped}%");
    let prefix = format!("{escaped}%");
    let rows = tx
        .query(
            "SELECT id FROM users WHERE name_key LIKE ? ESCAPE '!' AND deleted_ms = 0 \
             ORDER BY CASE WHEN name_key LIKE ? ESCAPE '!' THEN 0 ELSE 1 END, name_key LIMIT ?",
            params![&contains, &prefix, i64::from(limit)],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(profile(tx, viewer, row.u64(0)?).await?);
    }
    Ok(out)
}

/// The user's device sessions that are not revoked, oldest first; `current` marks `this`.
pub async fn devices<T: Tx>(tx: &mut T, user_id: u64, this: u64) -> StoreResult<Vec<pb::Device>> {
    let rows = tx
        .query(
            "SELECT id, name, client, created_ms, last_seen_ms, address FROM devices \
             WHERE user_id = ? AND revoked = 0 ORDER BY id",
            params![user_id],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let device_id = r.u64(0)?;
            Ok(pb::Device {
                device_id,
                name: r.text(1)?,
                client: r.text(2)?,
                created_ms: r.i64(3)?,
                last_seen_ms: r.i64(4)?,
                address: r.text(5)?,
                current: device_id == this,
            })
        })
        .collect()
}

/// Revokes one of the user's other sessions (its tokens go too).
pub async fn revoke_device<T: Tx>(
    tx: &mut T,
    user_id: u64,
    device_id: u64,
    this: u64,
) -> StoreResult<()> {
    if device_id == this {
        return Err(StoreError::Conflict(
            "that is the device you are using: log out instead",
        ));
    }
    let n = tx
        .exec(
            "UPDATE devices SET revoked = 1 WHERE id = ? AND user_id = ? AND revoked = 0",
            params![device_id, user_id],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound("device"));
    }
    tx.exec(
        "DELETE FROM device_tokens WHERE device_id = ?",
        params![device_id],
    )
    .await?;
    Ok(())
}
