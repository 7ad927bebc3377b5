//! Multi-step operations ([`Op`]) on the client core. Each runs as its own task and reports one
//! [`Done`]; the UI keeps drawing meanwhile. The requests themselves are the typed client API
//! (`client/api.rs`), shared with the command line.

use confab_wire::pb;

use crate::app::{AdminOp, Done, Op};
use crate::client::{ApiError, Client, ClientError};

/// What the status line says about a failure.
fn shown(e: ApiError) -> String {
    match e {
        // The code is for programs; people read the server's sentence.
        ApiError::Client(ClientError::Server(e)) => e.message,
        ApiError::NotFriend(name) => format!("{name} is not your friend yet: /add {name}"),
        other => other.to_string(),
    }
}

/// The user id to act on: given, or looked up by name.
async fn user_id(c: &Client, id: u64, name: &str) -> Result<u64, ApiError> {
    if id != 0 {
        return Ok(id);
    }
    Ok(c.user_by_name(name).await?.user_id)
}

/// A group's conversation, to show.
async fn open_group(c: &Client, g: pb::Group) -> Result<Done, ApiError> {
    Ok(Done::Open(Box::new(c.thread(g.thread_id).await?), None))
}

/// After a kick or a role change: the members as they are now (the popup shows them at once),
/// with what was done; just what was done if the list cannot be had.
async fn changed(c: &Client, group_id: u64, info: String) -> Result<Done, ApiError> {
    Ok(match c.members(group_id).await {
        Ok(members) => Done::MembersChanged {
            group_id,
            members,
            info,
        },
        Err(_) => Done::Info(info),
    })
}

async fn run_inner(c: &Client, op: Op) -> Result<Done, ApiError> {
    let info = |s: String| Ok(Done::Info(s));
    match op {
        Op::LoadFriends => Ok(Done::Friends(c.friends().await?)),
        Op::LoadRequests => {
            let r = c.friend_requests().await?;
            Ok(Done::Requests {
                incoming: r.incoming,
                outgoing: r.outgoing,
            })
        }
        Op::Block(name, block) => {
            let info = if block {
                let u = c.block(&name).await?;
                format!(
                    "blocked {}: they can no longer write to you or ask to be friends",
                    u.name
                )
            } else {
                format!("unblocked {}", c.unblock(&name).await?.name)
            };
            Ok(Done::Blocked {
                users: c.blocked().await?,
                info: Some(info),
            })
        }
        Op::LoadDevices => Ok(Done::Devices {
            devices: c.devices().await?,
            info: None,
        }),
        Op::RevokeDevice(id, name) => {
            c.revoke_device(id).await?;
            Ok(Done::Devices {
                devices: c.devices().await?,
                info: Some(format!("{name} is signed out")),
            })
        }
        Op::LoadBlocked => Ok(Done::Blocked {
            users: c.blocked().await?,
            info: None,
        }),
        Op::Unfriend(name) => {
            let u = c.unfriend(&name).await?;
            info(format!("{} is no longer your friend", u.name))
        }
        Op::CancelRequest(name) => {
            c.cancel_request(&name).await?;
            info(format!("took back your request to {name}"))
        }
        Op::ChangePassword { old, new } => {
            c.change_password(&old.0, &new.0).await?;
            info("password changed; your other devices are signed out".into())
        }
        Op::SearchUsers(q) => Ok(Done::Users(c.search_users(&q, 20).await?)),
        Op::AddFriend(name, note) => {
            let r = c.add_friend(&name, &note).await?;
            info(if r.state == pb::RequestState::Accepted as i32 {
                format!("you and {name} are now friends")
            } else {
                format!("friend request sent to {name}")
            })
        }
        Op::Respond { request_id, accept } => {
            let r = c.respond(request_id, accept).await?;
            let name = r.from.map(|u| u.name).unwrap_or_default();
            info(if accept {
                format!("you and {name} are now friends")
            } else {
                format!("declined {name}")
            })
        }
        Op::CreateGroup(name, open) => open_group(c, c.create_group_with(&name, open).await?).await,
        Op::UpdateGroup(u) => {
            let what = if let Some(n) = &u.name {
                format!("renamed the group to {n}")
            } else if let Some(d) = &u.description {
                if d.is_empty() {
                    "cleared the topic".to_owned()
                } else {
                    format!("topic set: {d}")
                }
            } else if u.open == Some(true) {
                "the group is open: anyone may join".to_owned()
            } else {
                "the group is closed: by invitation only".to_owned()
            };
            c.update_group(u).await?;
            info(what)
        }
        Op::Transfer(group_id, name) => {
            let g = pb::Group {
                group_id,
                name: "this group".into(),
                ..Default::default()
            };
            let u = c.member(&g, &name).await?;
            c.transfer(group_id, u.user_id).await?;
            info(format!("{} is now the owner; you are an admin", u.name))
        }
        Op::DeclineInvite(name) => {
            let g = c.decline_invite(&name).await?;
            info(format!("declined the invitation to {}", g.name))
        }
        Op::JoinGroup(name) => open_group(c, c.join_group_by_name(&name).await?).await,
        Op::LeaveGroup(group_id) => {
            c.leave_group(group_id).await?;
            info("you left the group".into())
        }
        Op::Invite(group_id, name) => {
            c.invite(group_id, user_id(c, 0, &name).await?).await?;
            info(format!("invited {name}"))
        }
        Op::Ban(group_id, name, ban) => {
            let u = c.user_by_name(&name).await?;
            if ban {
                c.ban(group_id, u.user_id).await?;
                changed(
                    c,
                    group_id,
                    format!("banned {}: they cannot come back", u.name),
                )
                .await
            } else {
                c.unban(group_id, u.user_id).await?;
                info(format!("{} may join again", u.name))
            }
        }
        Op::Kick(group_id, id, name) => {
            c.kick(group_id, user_id(c, id, &name).await?).await?;
            changed(c, group_id, format!("removed {name}")).await
        }
        Op::SetRole(group_id, id, name, role) => {
            c.set_role(group_id, user_id(c, id, &name).await?, role)
                .await?;
            let label = if role == pb::Role::Admin {
                "admin"
            } else {
                "member"
            };
            changed(c, group_id, format!("{name} is now {label}")).await
        }
        Op::Members(group_id) => Ok(Done::Members(group_id, c.members(group_id).await?)),
        Op::Edit(thread, message, text) => {
            let ack = c.edit(thread, message, &text).await?;
            Ok(Done::Changed {
                ack,
                kind: pb::MessageKind::Edit,
                target: message,
                body: text,
            })
        }
        Op::React {
            thread,
            message_id,
            emoji,
            remove,
        } => {
            let ack = c.react(thread, message_id, &emoji, remove).await?;
            let kind = if remove {
                pb::MessageKind::ReactionRemoved
            } else {
                pb::MessageKind::ReactionAdded
            };
            Ok(Done::Changed {
                ack,
                kind,
                target: message_id,
                body: emoji,
            })
        }
        Op::Recall(thread, message) => {
            let ack = c.recall(thread, message).await?;
            Ok(Done::Changed {
                ack,
                kind: pb::MessageKind::Recall,
                target: message,
                body: String::new(),
            })
        }
        Op::OpenDm(name, text) => Ok(Done::Open(Box::new(c.dm_thread(&name).await?), text)),
        Op::LogoutEverywhere => {
            // Like a logout, for every device of the account.
            c.logout_everywhere().await?;
            c.shutdown().await;
            Ok(Done::LoggedOut)
        }
        Op::DeleteAccount(password) => {
            c.delete_account(&password.0).await?;
            c.shutdown().await;
            Ok(Done::AccountDeleted)
        }
        Op::Admin(op) => admin(c, op).await,
        Op::SearchThread { thread, query } => {
            let r = c.search(&query, thread, 0, 1).await?;
            let seq = r
                .hits
                .first()
                .and_then(|h| h.message.as_ref())
                .map(|m| m.seq);
            Ok(Done::ThreadHit { thread, query, seq })
        }
        Op::SearchAll { query, before } => {
            let r = c.search(&query, 0, before, 0).await?;
            Ok(Done::SearchHits {
                query,
                hits: r.hits,
                more: r.has_more,
                append: before != 0,
            })
        }
        Op::Logout => {
            // The session ends even if the server cannot be told now.
            let _ = c.logout().await;
            c.shutdown().await;
            Ok(Done::LoggedOut)
        }
    }
}

/// `/admin`: what was done, for the status line.
async fn admin(c: &Client, op: AdminOp) -> Result<Done, ApiError> {
    use pb::AdminUserAction as A;
    Ok(Done::Info(match op {
        AdminOp::User(name, action) => {
            c.admin_set_user(&name, action).await?;
            match action {
                A::Deactivate => format!("{name} is deactivated and signed out everywhere"),
                A::Reactivate => format!("{name} may log in again"),
                A::RevokeSessions => format!("{name} is signed out everywhere"),
                _ => format!("{name}: done"),
            }
        }
        AdminOp::Invite(uses) => {
            let inv = c.admin_invite(uses).await?;
            return Ok(Done::Invitation {
                code: inv.code,
                uses,
            });
        }
        AdminOp::Stats => {
            let st = c.admin_stats().await?;
            format!(
                "{} users ({} deactivated), {} groups, {} messages; {} online here",
                st.users, st.disabled_users, st.groups, st.messages, st.online_users
            )
        }
    }))
}

/// Runs an operation; failures become [`Done::Error`].
pub async fn run(c: Client, op: Op) -> Done {
    let search = matches!(op, Op::SearchUsers(_));
    run_inner(&c, op).await.unwrap_or_else(|e| {
        if search {
            Done::SearchFailed(shown(e))
        } else {
            Done::Error(shown(e))
        }
    })
}
