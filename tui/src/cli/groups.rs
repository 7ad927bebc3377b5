//! `groups` and `group create|join|leave|invite|kick|role|rename|transfer|members`.

use clap::Subcommand;
use serde_json::json;

use super::conn::resume;
use super::fail::Fail;
use super::out::{self, print, typed};
use confab_wire::pb;

#[derive(Subcommand, Debug)]
pub enum GroupCmd {
    /// Create an open group (you are its owner).
    Create { name: String },
    /// Join an open group by name, or accept an invitation to it.
    Join { name: String },
    /// Leave a group (an owner transfers it first).
    Leave { group: String },
    /// Invite a user to a group (admins and the owner).
    Invite { group: String, user: String },
    /// Remove a member from a group (admins and the owner).
    Kick { group: String, user: String },
    /// Remove a user (member or not) and bar them from the group (admins and the owner).
    Ban { group: String, user: String },
    /// Lift a ban.
    Unban { group: String, user: String },
    /// Make a member an admin, or a plain member again (the owner).
    Role {
        group: String,
        user: String,
        #[arg(value_enum)]
        role: RoleArg,
    },
    /// Rename a group (admins and the owner).
    Rename { group: String, new_name: String },
    /// Hand a group to another member (the owner; you become an admin).
    Transfer { group: String, user: String },
    /// List a group's members (every page), one `member` line each.
    Members { group: String },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum RoleArg {
    Member,
    Admin,
}

/// `groups`: your groups and pending invitations (every page).
pub async fn list(server: &str) -> Result<(), Fail> {
    let (c, _, _) = resume(server, false).await?;
    for g in c.groups().await? {
        print(typed("group", out::group(&g)));
    }
    c.shutdown().await;
    Ok(())
}

pub async fn group(server: &str, cmd: GroupCmd) -> Result<(), Fail> {
    let (c, _, _) = resume(server, false).await?;
    let cmd_kind = match &cmd {
        GroupCmd::Ban { .. } => "banned",
        _ => "unbanned",
    };
    let line = match cmd {
        GroupCmd::Create { name } => typed("group", out::group(&c.create_group(&name).await?)),
        GroupCmd::Join { name } => typed("group", out::group(&c.join_group_by_name(&name).await?)),
        GroupCmd::Leave { group } => {
            let g = c.my_group(&group).await?;
            c.leave_group(g.group_id).await?;
            json!({"type": "left", "group_id": g.group_id, "name": g.name})
        }
        GroupCmd::Invite { group, user } => {
            let g = c.my_group(&group).await?;
            let u = c.user_by_name(&user).await?;
            c.invite(g.group_id, u.user_id).await?;
            json!({"type": "invited", "group_id": g.group_id, "user": out::user(&Some(u))})
        }
        GroupCmd::Kick { group, user } => {
            let g = c.my_group(&group).await?;
            let u = c.member(&g, &user).await?;
            c.kick(g.group_id, u.user_id).await?;
            json!({"type": "kicked", "group_id": g.group_id, "user": out::user(&Some(u))})
        }
        GroupCmd::Ban { group, user } | GroupCmd::Unban { group, user } => {
            let ban = matches!(cmd_kind, "banned");
            let g = c.my_group(&group).await?;
            let u = c.user_by_name(&user).await?;
            if ban {
                c.ban(g.group_id, u.user_id).await?;
            } else {
                c.unban(g.group_id, u.user_id).await?;
            }
            json!({"type": cmd_kind, "group_id": g.group_id, "user": out::user(&Some(u))})
        }
        GroupCmd::Role { group, user, role } => {
            let g = c.my_group(&group).await?;
            let u = c.member(&g, &user).await?;
            let role = match role {
                RoleArg::Member => pb::Role::Member,
                RoleArg::Admin => pb::Role::Admin,
            };
            c.set_role(g.group_id, u.user_id, role).await?;
            json!({"type": "role", "group_id": g.group_id, "user": out::user(&Some(u)), "role": role.as_str_name()})
        }
        GroupCmd::Rename { group, new_name } => {
            let g = c.my_group(&group).await?;
            typed(
                "group",
                out::group(&c.rename_group(g.group_id, &new_name).await?),
            )
        }
        GroupCmd::Transfer { group, user } => {
            let g = c.my_group(&group).await?;
            let u = c.member(&g, &user).await?;
            c.transfer(g.group_id, u.user_id).await?;
            json!({"type": "transferred", "group_id": g.group_id, "owner": out::user(&Some(u))})
        }
        GroupCmd::Members { group } => {
            let g = c.my_group(&group).await?;
            for m in c.members(g.group_id).await? {
                print(out::member(g.group_id, &m));
            }
            c.shutdown().await;
            return Ok(());
        }
    };
    print(line);
    c.shutdown().await;
    Ok(())
}
