//! Friend requests with consent, friendships and the pair's private thread.

use confab_wire::pb;
use pb::user_event::Kind;

use super::{Effects, emit, kind, state, user};
use crate::ids::{Snowflake, now_ms};
use crate::params;
use crate::store::{Row, StoreError, StoreResult, Tx, TxExt};

fn request_state(v: i64) -> pb::RequestState {
    match v {
        state::PENDING => pb::RequestState::Pending,
        state::ACCEPTED => pb::RequestState::Accepted,
        state::DECLINED => pb::RequestState::Declined,
        state::CANCELLED => pb::RequestState::Cancelled,
        _ => pb::RequestState::Unspecified,
    }
}

const REQUEST_COLUMNS_SQL: &str = "SELECT r.id, r.from_id, uf.name, r.to_id, ut.name, r.note, r.state, \
     r.created_ms, r.answered_ms, r.thread_id FROM friend_requests r \
     JOIN users uf ON uf.id = r.from_id JOIN users ut ON ut.id = r.to_id WHERE r.id = ?";

fn request_from_row(r: &Row) -> StoreResult<pb::FriendRequest> {
    Ok(pb::FriendRequest {
        request_id: r.u64(0)?,
        from: Some(pb::User {
            user_id: r.u64(1)?,
            name: r.text(2)?,
        }),
        to: Some(pb::User {
            user_id: r.u64(3)?,
            name: r.text(4)?,
        }),
        note: r.text(5)?,
        state: request_state(r.i64(6)?) as i32,
        created_ms: r.i64(7)?,
        answered_ms: r.i64(8)?,
        thread_id: r.u64(9)?,
    })
}

async fn load_request<T: Tx>(tx: &mut T, id: u64) -> StoreResult<pb::FriendRequest> {
    let row = tx
        .query_opt(REQUEST_COLUMNS_SQL, params![id])
        .await?
        .ok_or(StoreError::NotFound("friend request"))?;
    request_from_row(&row)
}

async fn are_friends<T: Tx>(tx: &mut T, a: u64, b: u64) -> StoreResult<bool> {
    Ok(tx
        .query_opt(
            "SELECT thread_id FROM friendships WHERE user_id = ? AND friend_id = ?",
            params![a, b],
        )
        .await?
        .is_some())
}

async fn pending_between<T: Tx>(tx: &mut T, from: u64, to: u64) -> StoreResult<Option<u64>> {
    tx.query_opt(
        "SELECT id FROM friend_requests WHERE from_id = ? AND to_id = ? AND state = ?",
        params![from, to, state::PENDING],
    )
    .await?
    .map(|r| r.u64(0))
    .transpose()
}

/// What keeps friend requests from becoming spam.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// Unanswered requests one user may have sent.
    pub max_pending: u32,
    /// After a decline, the wait before asking the same person again.
    pub cooldown_ms: i64,
}

/// Sends a friend request, or accepts the target's pending request to the sender.
pub async fn send_request<T: Tx>(
    tx: &mut T,
    ids: &Snowflake,
    from: u64,
    to: u64,
    note: &str,
    limits: RequestLimits,
) -> StoreResult<(pb::FriendRequest, Effects)> {
    if from == to {
        return Err(StoreError::Invalid("cannot befriend yourself"));
    }
    let to_user = super::live_user(tx, to).await?;
    // A block is not revealed as one: the refusal reads like any other "not allowed".
    if super::blocks::blocked(tx, to, from).await? {
        return Err(StoreError::Forbidden("not allowed"));
    }
    if super::blocks::blocked(tx, from, to).await? {
        return Err(StoreError::Conflict("you blocked them: unblock them first"));
    }
    if are_friends(tx, from, to).await? {
        return Err(StoreError::Conflict("already friends"));
    }
    if pending_between(tx, from, to).await?.is_some() {
        return Err(StoreError::Conflict("a request is already pending"));
    }
    if let Some(theirs) = pending_between(tx, to, from).await? {
        return respond(tx, ids, theirs, from, true).await;
    }
    // One account cannot spray requests at everyone: its unanswered ones are capped.
    let pending = tx
        .query_opt(
            "SELECT COUNT(*) FROM friend_requests WHERE from_id = ? AND state = ?",
            params![from, state::PENDING],
        )
        .await?
        .map(|r| r.u64(0))
        .transpose()?
        .unwrap_or(0);
    if pending >= u64::from(limits.max_pending) {
        return Err(StoreError::LimitReached(
            "too many of your friend requests are unanswered; cancel some first",
        ));
    }
    // A declined request is an answer: asking again at once is pestering.
    let declined = tx
        .query_opt(
            "SELECT MAX(answered_ms) FROM friend_requests WHERE from_id = ? AND to_id = ? AND state = ?",
            params![from, to, state::DECLINED],
        )
        .await?
        .map(|r| r.opt_i64(0))
        .transpose()?
        .flatten();
    if let Some(at) = declined {
        let wait = at.saturating_add(limits.cooldown_ms) - now_ms();
        if wait > 0 {
            return Err(StoreError::TooSoon(
                "they declined your last request; you can ask again later",
                u32::try_from(wait).unwrap_or(u32::MAX),
            ));
        }
    }
    let id = tx
        .insert(
            "INSERT INTO friend_requests (from_id, to_id, note, state, created_ms) VALUES (?, ?, ?, ?, ?)",
            params![from, to, note, state::PENDING, now_ms()],
        )
        .await?;
    let req = load_request(tx, id).await?;
    let mut fx = Effects::default();
    emit(
        tx,
        &mut fx,
        to_user.user_id,
        Kind::FriendRequestReceived(req.clone()),
    )
    .await?;
    Ok((req, fx))
}

/// Accepts or declines a request addressed to `responder`.
pub async fn respond<T: Tx>(
    tx: &mut T,
    ids: &Snowflake,
    request_id: u64,
    responder: u64,
    accept: bool,
) -> StoreResult<(pb::FriendRequest, Effects)> {
    let req = load_request(tx, request_id).await?;
    let (from, to) = (
        req.from.as_ref().map_or(0, |u| u.user_id),
        req.to.as_ref().map_or(0, |u| u.user_id),
    );
    if to != responder {
        // Do not reveal requests between other users.
        return Err(StoreError::NotFound("friend request"));
    }
    if req.state != pb::RequestState::Pending as i32 {
        return Err(StoreError::Conflict("the request is no longer pending"));
    }
    let now = now_ms();
    let mut fx = Effects::default();
    let mut thread_id = 0;
    if accept {
        thread_id = open_private_thread(tx, ids, &mut fx, from, to).await?;
        for (a, b) in [(from, to), (to, from)] {
            tx.exec(
                "INSERT INTO friendships (user_id, friend_id, thread_id, since_ms) VALUES (?, ?, ?, ?)",
                params![a, b, thread_id, now],
            )
            .await?;
        }
    }
    let new_state = if accept {
        state::ACCEPTED
    } else {
        state::DECLINED
    };
    tx.exec(
        "UPDATE friend_requests SET state = ?, answered_ms = ?, thread_id = ? WHERE id = ?",
        params![new_state, now, thread_id, request_id],
    )
    .await?;
    let req = load_request(tx, request_id).await?;
    for u in [from, to] {
        emit(tx, &mut fx, u, Kind::FriendRequestAnswered(req.clone())).await?;
    }
    if accept {
        for u in [from, to] {
            let thread = super::views::thread_info(tx, u, thread_id).await?;
            emit(tx, &mut fx, u, Kind::ThreadAdded(thread)).await?;
        }
    }
    Ok((req, fx))
}

/// Creates the pair's private thread, or reactivates it for a renewed friendship.
async fn open_private_thread<T: Tx>(
    tx: &mut T,
    ids: &Snowflake,
    fx: &mut Effects,
    a: u64,
    b: u64,
) -> StoreResult<u64> {
    let (lo, hi) = (a.min(b), a.max(b));
    let existing = tx
        .query_opt(
            "SELECT id FROM threads WHERE user_a = ? AND user_b = ?",
            params![lo, hi],
        )
        .await?;
    let thread_id = match existing {
        Some(r) => {
            let id = r.u64(0)?;
            tx.exec(
                "UPDATE thread_members SET active = 1, left_seq = 0 WHERE thread_id = ?",
                params![id],
            )
            .await?;
            id
        }
        None => {
            let id = tx
                .insert(
                    "INSERT INTO threads (kind, user_a, user_b, last_seq, activity_id, created_ms) \
                     VALUES (?, ?, ?, 0, ?, ?)",
                    params![kind::PRIVATE, lo, hi, ids.next_id(), now_ms()],
                )
                .await?;
            for u in [lo, hi] {
                tx.exec(
                    "INSERT INTO thread_members (thread_id, user_id, active) VALUES (?, ?, 1)",
                    params![id, u],
                )
                .await?;
            }
            id
        }
    };
    fx.members_changed.push(thread_id);
    Ok(thread_id)
}

/// Withdraws a pending request the caller sent.
pub async fn cancel<T: Tx>(tx: &mut T, request_id: u64, by: u64) -> StoreResult<Effects> {
    let req = load_request(tx, request_id).await?;
    if req.from.as_ref().map(|u| u.user_id) != Some(by) {
        return Err(StoreError::NotFound("friend request"));
    }
    if req.state != pb::RequestState::Pending as i32 {
        return Err(StoreError::Conflict("the request is no longer pending"));
    }
    tx.exec(
        "UPDATE friend_requests SET state = ?, answered_ms = ? WHERE id = ?",
        params![state::CANCELLED, now_ms(), request_id],
    )
    .await?;
    let req = load_request(tx, request_id).await?;
    let mut fx = Effects::default();
    let to = req.to.as_ref().map_or(0, |u| u.user_id);
    emit(tx, &mut fx, to, Kind::FriendRequestCancelled(req)).await?;
    Ok(fx)
}

/// Ends a friendship both ways. The private thread stays readable up to now.
pub async fn remove<T: Tx>(tx: &mut T, me: u64, other: u64) -> StoreResult<Effects> {
    let row = tx
        .query_opt(
            "SELECT thread_id FROM friendships WHERE user_id = ? AND friend_id = ?",
            params![me, other],
        )
        .await?
        .ok_or(StoreError::Conflict("not friends"))?;
    let thread_id = row.u64(0)?;
    tx.exec(
        "DELETE FROM friendships WHERE (user_id = ? AND friend_id = ?) OR (user_id = ? AND friend_id = ?)",
        params![me, other, other, me],
    )
    .await?;
    tx.exec(
        "UPDATE thread_members SET active = 0, \
         left_seq = (SELECT last_seq FROM threads WHERE id = ?) WHERE thread_id = ?",
        params![thread_id, thread_id],
    )
    .await?;
    let mut fx = Effects::default();
    fx.members_changed.push(thread_id);
    let me_user = user(tx, me).await?;
    let other_user = user(tx, other).await?;
    emit(tx, &mut fx, other, Kind::FriendRemoved(me_user)).await?;
    emit(tx, &mut fx, me, Kind::FriendRemoved(other_user)).await?;
    Ok(fx)
}

/// The caller's friends (presence filled in by the caller).
/// A page of the caller's friends, ordered by user id, after `after`; `has_more` when more
/// follow.
pub async fn list<T: Tx>(
    tx: &mut T,
    me: u64,
    after: u64,
    limit: u32,
) -> StoreResult<(Vec<pb::Friend>, bool)> {
    let rows = tx
        .query(
            "SELECT f.friend_id, u.name, f.thread_id, f.since_ms, u.last_seen_ms FROM friendships f \
             JOIN users u ON u.id = f.friend_id WHERE f.user_id = ? AND f.friend_id > ? \
             ORDER BY f.friend_id LIMIT ?",
            params![me, after, i64::from(limit) + 1],
        )
        .await?;
    let has_more = rows.len() > limit as usize;
    let friends = rows
        .iter()
        .take(limit as usize)
        .map(|r| {
            Ok(pb::Friend {
                user: Some(pb::User {
                    user_id: r.u64(0)?,
                    name: r.text(1)?,
                }),
                online: false,
                last_seen_ms: r.i64(4)?,
                thread_id: r.u64(2)?,
                since_ms: r.i64(3)?,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    Ok((friends, has_more))
}

/// Ids of the caller's friends (for presence pushes).
pub async fn friend_ids<T: Tx>(tx: &mut T, me: u64) -> StoreResult<Vec<u64>> {
    let rows = tx
        .query(
            "SELECT friend_id FROM friendships WHERE user_id = ?",
            params![me],
        )
        .await?;
    rows.iter().map(|r| r.u64(0)).collect()
}

/// Friends who see the caller's presence: all but those the caller blocked.
pub async fn presence_audience<T: Tx>(tx: &mut T, me: u64) -> StoreResult<Vec<u64>> {
    let rows = tx
        .query(
            "SELECT f.friend_id FROM friendships f WHERE f.user_id = ? AND NOT EXISTS \
             (SELECT 1 FROM blocks b WHERE b.user_id = f.user_id AND b.blocked_id = f.friend_id)",
            params![me],
        )
        .await?;
    rows.iter().map(|r| r.u64(0)).collect()
}

/// A page of the pending requests to and from the caller, ordered by request id, after
/// `after`; `has_more` when more follow.
pub async fn pending<T: Tx>(
    tx: &mut T,
    me: u64,
    after: u64,
    limit: u32,
) -> StoreResult<(Vec<pb::FriendRequest>, bool)> {
    let rows = tx
        .query(
            "SELECT id FROM friend_requests WHERE (to_id = ? OR from_id = ?) AND state = ? AND id > ? \
             ORDER BY id LIMIT ?",
            params![me, me, state::PENDING, after, i64::from(limit) + 1],
        )
        .await?;
    let mut page = Vec::with_capacity(rows.len().min(limit as usize));
    for r in rows.iter().take(limit as usize) {
        page.push(load_request(tx, r.u64(0)?).await?);
    }
    Ok((page, rows.len() > limit as usize))
}
