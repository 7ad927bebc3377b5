//! A group and a thread as one viewer sees them: the reads that both the group and the message
//! operations build their replies from (kept apart so neither of those modules imports the other).

use confab_wire::pb;

use super::{access, kind, message_cols, message_from_row, message_joins};
use crate::params;
use crate::store::{Row, StoreError, StoreResult, Tx, TxExt};

pub(super) fn role_of(v: i64) -> pb::Role {
    match v {
        1 => pb::Role::Member,
        2 => pb::Role::Admin,
        3 => pb::Role::Owner,
        _ => pb::Role::Unspecified,
    }
}

const GROUP_SQL: &str = "SELECT g.id, g.thread_id, g.name, g.description, g.open, g.owner_id, \
     g.member_count, g.created_ms, \
     (SELECT role FROM group_members m WHERE m.group_id = g.id AND m.user_id = ?), \
     (SELECT 1 FROM group_invites i WHERE i.group_id = g.id AND i.user_id = ?) \
     FROM chat_groups g WHERE g.id = ?";

fn group_from_row(r: &Row) -> StoreResult<pb::Group> {
    Ok(pb::Group {
        group_id: r.u64(0)?,
        thread_id: r.u64(1)?,
        name: r.text(2)?,
        description: r.text(3)?,
        open: r.bool(4)?,
        owner_id: r.u64(5)?,
        member_count: u32::try_from(r.i64(6)?).unwrap_or(0),
        created_ms: r.i64(7)?,
        my_role: role_of(r.opt_i64(8)?.unwrap_or(0)) as i32,
        invited: r.opt_i64(9)?.is_some(),
    })
}

/// A group as `viewer` sees it.
pub async fn group<T: Tx>(tx: &mut T, viewer: u64, group_id: u64) -> StoreResult<pb::Group> {
    let row = tx
        .query_opt(GROUP_SQL, params![viewer, viewer, group_id])
        .await?
        .ok_or(StoreError::NotFound("group"))?;
    group_from_row(&row)
}

/// One thread as `user` sees it (requires membership, current or former).
pub async fn thread_info<T: Tx>(tx: &mut T, user: u64, thread_id: u64) -> StoreResult<pb::Thread> {
    let acc = access(tx, user, thread_id).await?;
    let row = tx
        .query_opt(
            "SELECT kind, group_id, user_a, user_b, activity_id FROM threads WHERE id = ?",
            params![thread_id],
        )
        .await?
        .ok_or(StoreError::NotFound("thread"))?;
    let kind_v = row.i64(0)?;
    let mut t = pb::Thread {
        thread_id,
        last_seq: acc.visible_seq,
        read_seq: acc.read_seq.min(acc.visible_seq),
        activity_id: row.u64(4)?,
        can_send: acc.active,
        ..Default::default()
    };
    if kind_v == kind::PRIVATE {
        t.kind = pb::ThreadKind::Private as i32;
        let (a, b) = (row.opt_i64(2)?.unwrap_or(0), row.opt_i64(3)?.unwrap_or(0));
        let peer = if u64::try_from(a).ok() == Some(user) {
            b
        } else {
            a
        };
        let peer = u64::try_from(peer).unwrap_or(0);
        t.peer = Some(super::user(tx, peer).await?);
        t.peer_read_seq = tx
            .query_opt(
                "SELECT read_seq FROM thread_members WHERE thread_id = ? AND user_id = ?",
                params![thread_id, peer],
            )
            .await?
            .map(|r| r.u64(0))
            .transpose()?
            .unwrap_or(0);
    } else {
        t.kind = pb::ThreadKind::Group as i32;
        t.group = Some(group(tx, user, row.u64(1)?).await?);
    }
    if acc.visible_seq > 0 {
        let last = tx
            .query_opt(
                concat!(
                    "SELECT ",
                    message_cols!(),
                    " FROM messages m",
                    message_joins!(),
                    // The preview is the newest entry that is not a reaction (1.7).
                    "WHERE m.thread_id = ? AND m.seq <= ? AND m.kind NOT IN (5, 6) \
                     ORDER BY m.seq DESC LIMIT 1"
                ),
                params![thread_id, acc.visible_seq],
            )
            .await?;
        let mut last: Vec<_> = last
            .map(|r| message_from_row(&r, user))
            .transpose()?
            .into_iter()
            .collect();
        super::reactions::attach(tx, user, &mut last).await?;
        t.last_message = last.pop();
    }
    // A former member's activity stops where its view does (as `list_threads` orders it).
    if !acc.active
        && let Some(m) = &t.last_message
    {
        t.activity_id = m.message_id;
    }
    Ok(t)
}
