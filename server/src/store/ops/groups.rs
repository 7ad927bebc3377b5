//! Groups, roles, invitations and the group thread's SYSTEM entries.

use confab_wire::pb;
use pb::group_change::Kind as Change;
use pb::user_event::Kind;

use super::views::{group, role_of};
use super::{Effects, NewEntry, append, emit, kind, like_escape, user};
use crate::ids::{Snowflake, now_ms};
use crate::params;
use crate::store::{Row, StoreError, StoreResult, Tx, TxExt};

/// The caller's role in a group (`Unspecified` when not a member).
pub(super) async fn role<T: Tx>(tx: &mut T, group_id: u64, user_id: u64) -> StoreResult<pb::Role> {
    let row = tx
        .query_opt(
            "SELECT role FROM group_members WHERE group_id = ? AND user_id = ?",
            params![group_id, user_id],
        )
        .await?;
    Ok(role_of(row.map(|r| r.i64(0)).transpose()?.unwrap_or(0)))
}

/// Loads the group, failing with NOT_FOUND, and the actor's role.
async fn group_and_role<T: Tx>(
    tx: &mut T,
    actor: u64,
    group_id: u64,
) -> StoreResult<(pb::Group, pb::Role)> {
    let g = group(tx, actor, group_id).await?;
    let r = role_of(i64::from(g.my_role));
    Ok((g, r))
}

pub(super) fn change(
    kind: Change,
    actor: &pb::User,
    subject: Option<&pb::User>,
) -> pb::GroupChange {
    pb::GroupChange {
        kind: kind as i32,
        actor: Some(actor.clone()),
        subject: subject.cloned(),
        ..Default::default()
    }
}

pub(super) async fn system<T: Tx>(
    tx: &mut T,
    ids: &Snowflake,
    fx: &mut Effects,
    thread_id: u64,
    actor: &pb::User,
    gc: pb::GroupChange,
) -> StoreResult<()> {
    append(
        tx,
        ids,
        fx,
        thread_id,
        NewEntry {
            sender: actor,
            sender_device_id: 0,
            client_msg_id: None,
            kind: pb::MessageKind::System,
            body: "",
            target_message_id: 0,
            group_change: Some(gc),
            quote: None,
        },
    )
    .await
    .map(|_| ())
}

/// Adds `user` as an active member of the group and its thread.
async fn add_member<T: Tx>(
    tx: &mut T,
    g: &pb::Group,
    user_id: u64,
    role: pb::Role,
) -> StoreResult<()> {
    tx.exec(
        "INSERT INTO group_members (group_id, user_id, role, joined_ms) VALUES (?, ?, ?, ?)",
        params![g.group_id, user_id, i64::from(role as i32), now_ms()],
    )
    .await?;
    let updated = tx
        .exec(
            "UPDATE thread_members SET active = 1, left_seq = 0 WHERE thread_id = ? AND user_id = ?",
            params![g.thread_id, user_id],
        )
        .await?;
    if updated == 0 {
        tx.exec(
            "INSERT INTO thread_members (thread_id, user_id, active) VALUES (?, ?, 1)",
            params![g.thread_id, user_id],
        )
        .await?;
    }
    tx.exec(
        "UPDATE chat_groups SET member_count = member_count + 1 WHERE id = ?",
        params![g.group_id],
    )
    .await?;
    tx.exec(
        "DELETE FROM group_invites WHERE group_id = ? AND user_id = ?",
        params![g.group_id, user_id],
    )
    .await?;
    Ok(())
}

/// Removes `user` from the group; they keep reading the thread up to now.
pub(super) async fn remove_member<T: Tx>(
    tx: &mut T,
    g: &pb::Group,
    user_id: u64,
) -> StoreResult<()> {
    tx.exec(
        "DELETE FROM group_members WHERE group_id = ? AND user_id = ?",
        params![g.group_id, user_id],
    )
    .await?;
    tx.exec(
        "UPDATE thread_members SET active = 0, left_seq = (SELECT last_seq FROM threads WHERE id = ?) \
         WHERE thread_id = ? AND user_id = ?",
        params![g.thread_id, g.thread_id, user_id],
    )
    .await?;
    tx.exec(
        "UPDATE chat_groups SET member_count = member_count - 1 WHERE id = ?",
        params![g.group_id],
    )
    .await?;
    Ok(())
}

async fn announce_membership<T: Tx>(
    tx: &mut T,
    fx: &mut Effects,
    user_id: u64,
    group_id: u64,
) -> StoreResult<()> {
    let g = group(tx, user_id, group_id).await?;
    let thread = super::views::thread_info(tx, user_id, g.thread_id).await?;
    emit(tx, fx, user_id, Kind::GroupJoined(g)).await?;
    emit(tx, fx, user_id, Kind::ThreadAdded(thread)).await
}

/// Creates a group owned by `owner`.
pub async fn create<T: Tx>(
    tx: &mut T,
    ids: &Snowflake,
    owner: &pb::User,
    name: &str,
    description: &str,
    open: bool,
) -> StoreResult<(pb::Group, Effects)> {
    let now = now_ms();
    let thread_id = tx
        .insert(
            "INSERT INTO threads (kind, last_seq, activity_id, created_ms) VALUES (?, 0, ?, ?)",
            params![kind::GROUP, ids.next_id(), now],
        )
        .await?;
    let group_id = tx
        .insert(
            "INSERT INTO chat_groups (thread_id, name, name_key, description, open, owner_id, member_count, created_ms) \
             VALUES (?, ?, ?, ?, ?, ?, 0, ?)",
            params![thread_id, name, &super::fold(name), description, open, owner.user_id, now],
        )
        .await?;
    tx.exec(
        "UPDATE threads SET group_id = ? WHERE id = ?",
        params![group_id, thread_id],
    )
    .await?;
    let g = group(tx, owner.user_id, group_id).await?;
    add_member(tx, &g, owner.user_id, pb::Role::Owner).await?;
    let mut fx = Effects::default();
    fx.members_changed.push(thread_id);
    let mut gc = change(Change::Created, owner, Some(owner));
    gc.name = name.to_owned();
    gc.description = description.to_owned();
    gc.open = open;
    system(tx, ids, &mut fx, thread_id, owner, gc).await?;
    announce_membership(tx, &mut fx, owner.user_id, group_id).await?;
    let g = group(tx, owner.user_id, group_id).await?;
    Ok((g, fx))
}

/// Joins an open group or accepts an invitation.
pub async fn join<T: Tx>(
    tx: &mut T,
    ids: &Snowflake,
    me: &pb::User,
    group_id: u64,
    max_members: u32,
) -> StoreResult<(pb::Group, Effects)> {
    let (g, my_role) = group_and_role(tx, me.user_id, group_id).await?;
    if super::admin::group_deleted(tx, group_id).await? {
        return Err(StoreError::NotFound("group"));
    }
    if my_role != pb::Role::Unspecified {
        return Err(StoreError::Conflict("already a member"));
    }
    if super::bans::banned(tx, group_id, me.user_id).await? {
        return Err(StoreError::Forbidden("you may not join this group"));
    }
    if !g.open && !g.invited {
        return Err(StoreError::Forbidden(
            "the group is closed and you are not invited",
        ));
    }
    if g.member_count >= max_members {
        return Err(StoreError::LimitReached("the group is full"));
    }
    add_member(tx, &g, me.user_id, pb::Role::Member).await?;
    let mut fx = Effects::default();
    fx.members_changed.push(g.thread_id);
    system(
        tx,
        ids,
        &mut fx,
        g.thread_id,
        me,
        change(Change::Joined, me, Some(me)),
    )
    .await?;
    announce_membership(tx, &mut fx, me.user_id, group_id).await?;
    let g = group(tx, me.user_id, group_id).await?;
    Ok((g, fx))
}

/// Invites a user. Any member may invite to an open group; owner and admins to a closed one.
pub async fn invite<T: Tx>(
    tx: &mut T,
    me: u64,
    group_id: u64,
    invitee: u64,
) -> StoreResult<Effects> {
    let (g, my_role) = group_and_role(tx, me, group_id).await?;
    if my_role == pb::Role::Unspecified {
        return Err(StoreError::Forbidden("not a member of this group"));
    }
    if !g.open && my_role == pb::Role::Member {
        return Err(StoreError::Forbidden(
            "only the owner and admins invite to a closed group",
        ));
    }
    super::live_user(tx, invitee).await?;
    if super::blocks::blocked(tx, invitee, me).await? {
        return Err(StoreError::Forbidden("not allowed"));
    }
    if super::bans::banned(tx, group_id, invitee).await? {
        return Err(StoreError::Forbidden("they are banned from this group"));
    }
    if role(tx, group_id, invitee).await? != pb::Role::Unspecified {
        return Err(StoreError::Conflict("already a member"));
    }
    match tx
        .exec(
            "INSERT INTO group_invites (group_id, user_id, inviter_id, created_ms) VALUES (?, ?, ?, ?)",
            params![group_id, invitee, me, now_ms()],
        )
        .await
    {
        Err(StoreError::Duplicate) => return Err(StoreError::Conflict("already invited")),
        other => other?,
    };
    let mut fx = Effects::default();
    let seen = group(tx, invitee, group_id).await?;
    emit(tx, &mut fx, invitee, Kind::GroupInvited(seen)).await?;
    Ok(fx)
}

/// Declines a pending invitation; the decliner's devices hear of it.
pub async fn decline<T: Tx>(tx: &mut T, me: u64, group_id: u64) -> StoreResult<Effects> {
    let n = tx
        .exec(
            "DELETE FROM group_invites WHERE group_id = ? AND user_id = ?",
            params![group_id, me],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound("invitation"));
    }
    let mut fx = Effects::default();
    let seen = group(tx, me, group_id).await?;
    emit(tx, &mut fx, me, Kind::GroupLeft(seen)).await?;
    Ok(fx)
}

/// Leaves a group (the owner must transfer ownership first).
pub async fn leave<T: Tx>(
    tx: &mut T,
    ids: &Snowflake,
    me: &pb::User,
    group_id: u64,
) -> StoreResult<Effects> {
    let (g, my_role) = group_and_role(tx, me.user_id, group_id).await?;
    match my_role {
        pb::Role::Unspecified => return Err(StoreError::Forbidden("not a member of this group")),
        pb::Role::Owner => {
            return Err(StoreError::Conflict(
                "the owner transfers ownership before leaving",
            ));
        }
        _ => {}
    }
    let mut fx = Effects::default();
    system(
        tx,
        ids,
        &mut fx,
        g.thread_id,
        me,
        change(Change::Left, me, Some(me)),
    )
    .await?;
    remove_member(tx, &g, me.user_id).await?;
    fx.members_changed.push(g.thread_id);
    let seen = group(tx, me.user_id, group_id).await?;
    emit(tx, &mut fx, me.user_id, Kind::GroupLeft(seen)).await?;
    Ok(fx)
}

/// Removes a member: the owner kicks anyone else, admins kick plain members.
pub async fn kick<T: Tx>(
    tx: &mut T,
    ids: &Snowflake,
    me: &pb::User,
    group_id: u64,
    target: u64,
    ban: bool,
) -> StoreResult<Effects> {
    let (g, my_role) = group_and_role(tx, me.user_id, group_id).await?;
    let their_role = role(tx, group_id, target).await?;
    if my_role == pb::Role::Unspecified {
        return Err(StoreError::Forbidden("not a member of this group"));
    }
    if ban && their_role == pb::Role::Unspecified {
        // Barring someone who is not a member (yet): no entry, nobody to remove.
        if !matches!(my_role, pb::Role::Owner | pb::Role::Admin) || target == me.user_id {
            return Err(StoreError::Forbidden("you may not ban this user"));
        }
        let subject = user(tx, target).await?;
        super::bans::add(tx, group_id, target, me.user_id).await?;
        moderation(tx, me, "group.ban", &subject, &g).await?;
        tx.exec(
            "DELETE FROM group_invites WHERE group_id = ? AND user_id = ?",
            params![group_id, target],
        )
        .await?;
        return Ok(Effects::default());
    }
    if their_role == pb::Role::Unspecified {
        return Err(StoreError::NotFound("member"));
    }
    let allowed = match my_role {
        pb::Role::Owner => target != me.user_id,
        pb::Role::Admin => their_role == pb::Role::Member,
        _ => false,
    };
    if !allowed {
        return Err(StoreError::Forbidden("you may not remove this member"));
    }
    let subject = user(tx, target).await?;
    let mut fx = Effects::default();
    system(
        tx,
        ids,
        &mut fx,
        g.thread_id,
        me,
        change(
            if ban { Change::Banned } else { Change::Kicked },
            me,
            Some(&subject),
        ),
    )
    .await?;
    remove_member(tx, &g, target).await?;
    if ban {
        super::bans::add(tx, group_id, target, me.user_id).await?;
    }
    let action = if ban { "group.ban" } else { "group.kick" };
    moderation(tx, me, action, &subject, &g).await?;
    fx.members_changed.push(g.thread_id);
    let seen = group(tx, target, group_id).await?;
    emit(tx, &mut fx, target, Kind::GroupLeft(seen)).await?;
    Ok(fx)
}

/// Records a moderation action on `subject` in group `g` in the audit log.
pub(super) async fn moderation<T: Tx>(
    tx: &mut T,
    me: &pb::User,
    action: &str,
    subject: &pb::User,
    g: &pb::Group,
) -> StoreResult<()> {
    let target = format!("{} in group {} ({})", subject.name, g.group_id, g.name);
    super::audit::record(tx, &super::audit::Actor::user(me), action, &target, "").await
}

/// The owner makes a member an admin or an admin a member.
pub async fn set_role<T: Tx>(
    tx: &mut T,
    ids: &Snowflake,
    me: &pb::User,
    group_id: u64,
    target: u64,
    new_role: pb::Role,
) -> StoreResult<Effects> {
    if !matches!(new_role, pb::Role::Member | pb::Role::Admin) {
        return Err(StoreError::Invalid(
            "role must be MEMBER or ADMIN; use TransferOwnership",
        ));
    }
    let (g, my_role) = group_and_role(tx, me.user_id, group_id).await?;
    if my_role != pb::Role::Owner {
        return Err(StoreError::Forbidden("only the owner sets roles"));
    }
    let their_role = role(tx, group_id, target).await?;
    match their_role {
        pb::Role::Unspecified => return Err(StoreError::NotFound("member")),
        pb::Role::Owner => {
            return Err(StoreError::Invalid("the owner's role changes by transfer"));
        }
        r if r == new_role => return Ok(Effects::default()),
        _ => {}
    }
    tx.exec(
        "UPDATE group_members SET role = ? WHERE group_id = ? AND user_id = ?",
        params![i64::from(new_role as i32), group_id, target],
    )
    .await?;
    let subject = user(tx, target).await?;
    let mut fx = Effects::default();
    let mut gc = change(Change::RoleChanged, me, Some(&subject));
    gc.role = new_role as i32;
    system(tx, ids, &mut fx, g.thread_id, me, gc).await?;
    let seen = group(tx, target, group_id).await?;
    emit(tx, &mut fx, target, Kind::GroupUpdated(seen)).await?;
    Ok(fx)
}

/// Owner and admins change name, description or openness.
pub async fn update<T: Tx>(
    tx: &mut T,
    ids: &Snowflake,
    me: &pb::User,
    group_id: u64,
    name: Option<&str>,
    description: Option<&str>,
    open: Option<bool>,
) -> StoreResult<(pb::Group, Effects)> {
    let (g, my_role) = group_and_role(tx, me.user_id, group_id).await?;
    if !matches!(my_role, pb::Role::Owner | pb::Role::Admin) {
        return Err(StoreError::Forbidden(
            "only the owner and admins change the group",
        ));
    }
    let new_name = name.unwrap_or(&g.name);
    let new_desc = description.unwrap_or(&g.description);
    let new_open = open.unwrap_or(g.open);
    let mut fx = Effects::default();
    if new_name == g.name && new_desc == g.description && new_open == g.open {
        return Ok((g, fx));
    }
    tx.exec(
        "UPDATE chat_groups SET name = ?, name_key = ?, description = ?, open = ? WHERE id = ?",
        params![
            new_name,
            &super::fold(new_name),
            new_desc,
            new_open,
            group_id
        ],
    )
    .await?;
    let mut gc = change(Change::Updated, me, None);
    gc.name = new_name.to_owned();
    gc.description = new_desc.to_owned();
    gc.open = new_open;
    system(tx, ids, &mut fx, g.thread_id, me, gc).await?;
    let g = group(tx, me.user_id, group_id).await?;
    Ok((g, fx))
}

/// The owner hands the group to another member and becomes an admin.
pub async fn transfer<T: Tx>(
    tx: &mut T,
    ids: &Snowflake,
    me: &pb::User,
    group_id: u64,
    target: u64,
) -> StoreResult<Effects> {
    let (g, my_role) = group_and_role(tx, me.user_id, group_id).await?;
    if my_role != pb::Role::Owner {
        return Err(StoreError::Forbidden("only the owner transfers ownership"));
    }
    if target == me.user_id {
        return Err(StoreError::Invalid("you already own the group"));
    }
    if role(tx, group_id, target).await? == pb::Role::Unspecified {
        return Err(StoreError::NotFound("member"));
    }
    let mut fx = Effects::default();
    hand_over(tx, ids, &mut fx, &g, me.user_id, target, me).await?;
    Ok(fx)
}

/// Makes member `to` the owner of `g` and its owner `from` an admin, with the thread's entry
/// (`actor` did it: the owner, a server admin or the console) and both users' events.
pub(super) async fn hand_over<T: Tx>(
    tx: &mut T,
    ids: &Snowflake,
    fx: &mut Effects,
    g: &pb::Group,
    from: u64,
    to: u64,
    actor: &pb::User,
) -> StoreResult<()> {
    let group_id = g.group_id;
    tx.exec(
        "UPDATE group_members SET role = ? WHERE group_id = ? AND user_id = ?",
        params![i64::from(pb::Role::Owner as i32), group_id, to],
    )
    .await?;
    tx.exec(
        "UPDATE group_members SET role = ? WHERE group_id = ? AND user_id = ?",
        params![i64::from(pb::Role::Admin as i32), group_id, from],
    )
    .await?;
    tx.exec(
        "UPDATE chat_groups SET owner_id = ? WHERE id = ?",
        params![to, group_id],
    )
    .await?;
    let subject = user(tx, to).await?;
    // The console (id 0) has no users row: the entry's sender is then the new owner.
    let sender = if actor.user_id == 0 { &subject } else { actor };
    let gc = change(Change::OwnerTransferred, actor, Some(&subject));
    system(tx, ids, fx, g.thread_id, sender, gc).await?;
    for u in [to, from] {
        let seen = group(tx, u, group_id).await?;
        emit(tx, fx, u, Kind::GroupUpdated(seen)).await?;
    }
    Ok(())
}

/// Loads the groups whose ids are the first column of `rows`, as `me` sees them.
async fn groups_of_rows<T: Tx>(tx: &mut T, me: u64, rows: &[Row]) -> StoreResult<Vec<pb::Group>> {
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(group(tx, me, r.u64(0)?).await?);
    }
    Ok(out)
}

/// A page of the caller's groups and the groups with a pending invitation, ordered by group id,
/// after `after`; `has_more` when more follow.
pub async fn list_mine<T: Tx>(
    tx: &mut T,
    me: u64,
    after: u64,
    limit: u32,
) -> StoreResult<(Vec<pb::Group>, bool)> {
    let mut rows = tx
        .query(
            "SELECT group_id FROM group_members WHERE user_id = ? AND group_id > ? \
             UNION SELECT group_id FROM group_invites WHERE user_id = ? AND group_id > ? \
             ORDER BY 1 LIMIT ?",
            params![me, after, me, after, i64::from(limit) + 1],
        )
        .await?;
    let has_more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    Ok((groups_of_rows(tx, me, &rows).await?, has_more))
}

/// Open groups whose name contains the query.
pub async fn search<T: Tx>(
    tx: &mut T,
    me: u64,
    query: &str,
    limit: u32,
) -> StoreResult<Vec<pb::Group>> {
    let pattern = format!("%{}%", like_escape(query));
    let rows = tx
        .query(
            "SELECT id FROM chat_groups WHERE open = 1 AND deleted_ms = 0 AND name_key LIKE ? ESCAPE '!' \
             AND id NOT IN (SELECT group_id FROM group_bans WHERE user_id = ?) \
             ORDER BY member_count DESC, id LIMIT ?",
            params![&pattern, me, i64::from(limit)],
        )
        .await?;
    groups_of_rows(tx, me, &rows).await
}

/// A page of members, ordered by user id; members only.
pub async fn members<T: Tx>(
    tx: &mut T,
    me: u64,
    group_id: u64,
    after: u64,
    limit: u32,
) -> StoreResult<pb::GroupMemberList> {
    let (_, my_role) = group_and_role(tx, me, group_id).await?;
    if my_role == pb::Role::Unspecified {
        return Err(StoreError::Forbidden("not a member of this group"));
    }
    let rows = tx
        .query(
            "SELECT m.user_id, u.name, m.role, m.joined_ms FROM group_members m \
             JOIN users u ON u.id = m.user_id WHERE m.group_id = ? AND m.user_id > ? \
             ORDER BY m.user_id LIMIT ?",
            params![group_id, after, i64::from(limit) + 1],
        )
        .await?;
    let has_more = rows.len() > limit as usize;
    let members = rows
        .iter()
        .take(limit as usize)
        .map(|r| {
            Ok(pb::GroupMember {
                user: Some(pb::User {
                    user_id: r.u64(0)?,
                    name: r.text(1)?,
                }),
                role: role_of(r.i64(2)?) as i32,
                online: false,
                joined_ms: r.i64(3)?,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(pb::GroupMemberList {
        group_id,
        members,
        has_more,
    })
}
