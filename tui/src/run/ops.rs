//! Multi-step operations ([`Op`]) on the client core. Each runs as its own task and reports one
//! [`Done`]; the UI keeps drawing meanwhile.

use confab_wire::Body;
use confab_wire::pb::{self, ErrorCode};

use crate::app::{Done, Op};
use crate::client::{Client, ClientError};

fn err(e: ClientError) -> String {
    match e {
        ClientError::Server(e) => e.message,
        other => other.to_string(),
    }
}

async fn user_id(c: &Client, name: &str) -> Result<u64, String> {
    match c
        .request(Body::GetProfile(pb::GetProfile {
            user_id: 0,
            name: name.into(),
        }))
        .await
    {
        Ok(Body::Profile(p)) => p
            .user
            .map(|u| u.user_id)
            .ok_or_else(|| format!("no user named {name}")),
        Err(e) if e.code() == Some(ErrorCode::NotFound) => Err(format!("no user named {name}")),
        Err(e) => Err(err(e)),
        Ok(_) => Err("unexpected reply".into()),
    }
}

async fn thread(c: &Client, req: pb::GetThread) -> Result<pb::Thread, String> {
    match c.request(Body::GetThread(req)).await.map_err(err)? {
        Body::Thread(t) => Ok(t),
        _ => Err("unexpected reply".into()),
    }
}

async fn ok(c: &Client, body: Body, done: String) -> Result<Done, String> {
    c.request(body).await.map_err(err)?;
    Ok(Done::Info(done))
}

async fn open_group(c: &Client, g: pb::Group) -> Result<Done, String> {
    let t = thread(
        c,
        pb::GetThread {
            thread_id: g.thread_id,
            ..Default::default()
        },
    )
    .await?;
    Ok(Done::Open(Box::new(t), None))
}

async fn run_inner(c: &Client, op: Op) -> Result<Done, String> {
    match op {
        Op::LoadFriends => Ok(Done::Friends(c.friends().await.map_err(err)?)),
        Op::LoadRequests => Ok(Done::Requests(
            c.friend_requests().await.map_err(err)?.incoming,
        )),
        Op::SearchUsers(q) => match c
            .request(Body::SearchUsers(pb::SearchUsers {
                query: q,
                limit: 20,
            }))
            .await
            .map_err(err)?
        {
            Body::UserList(l) => Ok(Done::Users(l.users)),
            _ => Err("unexpected reply".into()),
        },
        Op::AddFriend(name) => {
            let id = user_id(c, &name).await?;
            match c
                .request(Body::SendFriendRequest(pb::SendFriendRequest {
                    user_id: id,
                    note: String::new(),
                }))
                .await
                .map_err(err)?
            {
                Body::FriendRequest(r) if r.state == pb::RequestState::Accepted as i32 => {
                    Ok(Done::Info(format!("you and {name} are now friends")))
                }
                _ => Ok(Done::Info(format!("friend request sent to {name}"))),
            }
        }
        Op::Respond { request_id, accept } => {
            let body = Body::RespondFriendRequest(pb::RespondFriendRequest { request_id, accept });
            match c.request(body).await.map_err(err)? {
                Body::FriendRequest(r) => {
                    let name = r.from.map(|u| u.name).unwrap_or_default();
                    Ok(Done::Info(if accept {
                        format!("you and {name} are now friends")
                    } else {
                        format!("declined {name}")
                    }))
                }
                _ => Ok(Done::Info("done".into())),
            }
        }
        Op::CreateGroup(name) => match c
            .request(Body::CreateGroup(pb::CreateGroup {
                name,
                description: String::new(),
                open: true,
            }))
            .await
            .map_err(err)?
        {
            Body::Group(g) => open_group(c, g).await,
            _ => Err("unexpected reply".into()),
        },
        Op::JoinGroup(name) => {
            let Body::GroupList(list) = c
                .request(Body::SearchGroups(pb::SearchGroups {
                    query: name.clone(),
                    limit: 20,
                }))
                .await
                .map_err(err)?
            else {
                return Err("unexpected reply".into());
            };
            let want = name.to_lowercase();
            let g = list
                .groups
                .iter()
                .find(|g| g.name.to_lowercase() == want)
                .or(list.groups.first())
                .ok_or_else(|| format!("no group named {name}"))?;
            match c
                .request(Body::JoinGroup(pb::JoinGroup {
                    group_id: g.group_id,
                }))
                .await
                .map_err(err)?
            {
                Body::Group(g) => open_group(c, g).await,
                _ => Err("unexpected reply".into()),
            }
        }
        Op::LeaveGroup(group_id) => {
            ok(
                c,
                Body::LeaveGroup(pb::LeaveGroup { group_id }),
                "you left the group".into(),
            )
            .await
        }
        Op::Invite(group_id, name) => {
            let user_id = user_id(c, &name).await?;
            ok(
                c,
                Body::InviteToGroup(pb::InviteToGroup { group_id, user_id }),
                format!("invited {name}"),
            )
            .await
        }
        Op::Kick(group_id, id, name) => {
            let user_id = if id == 0 {
                user_id(c, &name).await?
            } else {
                id
            };
            ok(
                c,
                Body::KickMember(pb::KickMember { group_id, user_id }),
                format!("removed {name}"),
            )
            .await
        }
        Op::SetRole(group_id, id, name, role) => {
            let user_id = if id == 0 {
                user_id(c, &name).await?
            } else {
                id
            };
            let label = if role == pb::Role::Admin {
                "admin"
            } else {
                "member"
            };
            ok(
                c,
                Body::SetMemberRole(pb::SetMemberRole {
                    group_id,
                    user_id,
                    role: role as i32,
                }),
                format!("{name} is now {label}"),
            )
            .await
        }
        Op::Members(group_id) => match c
            .request(Body::ListGroupMembers(pb::ListGroupMembers {
                group_id,
                after_user_id: 0,
                limit: 0,
            }))
            .await
            .map_err(err)?
        {
            Body::GroupMemberList(l) => Ok(Done::Members(group_id, l.members)),
            _ => Err("unexpected reply".into()),
        },
        Op::OpenDm(name, text) => {
            let id = user_id(c, &name).await?;
            match thread(
                c,
                pb::GetThread {
                    user_id: id,
                    ..Default::default()
                },
            )
            .await
            {
                Ok(t) => Ok(Done::Open(Box::new(t), text)),
                Err(_) => Err(format!("{name} is not your friend yet: /add {name}")),
            }
        }
        Op::Logout => {
            // The session ends even if the server cannot be told now.
            let _ = c
                .request(Body::Logout(pb::Logout { all_devices: false }))
                .await;
            c.shutdown().await;
            Ok(Done::LoggedOut)
        }
    }
}

/// Runs an operation; failures become [`Done::Error`].
pub async fn run(c: Client, op: Op) -> Done {
    run_inner(&c, op).await.unwrap_or_else(Done::Error)
}
