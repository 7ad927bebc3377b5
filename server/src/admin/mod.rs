//! `confab-server admin`: the operator's tool. Every command is one Admin request (PROTOCOL.md
//! §Administration) sent as the console: to the running server over its admin socket when the
//! store is embedded and a server holds it, otherwise to a service started in this process on
//! the same store (and, for MySQL with --bus, on the cluster bus, so kicks reach every node).

/// Unwraps the reply body a request expects.
macro_rules! expect {
    ($reply:expr, $variant:ident) => {
        match $reply {
            Body::$variant(v) => v,
            other => {
                return Err(Failed(
                    1,
                    format!("unexpected reply {}", confab_wire::body_name(&other)),
                ));
            }
        }
    };
}

mod link;
mod show;

use std::time::Duration;

use confab_wire::pb::{self, ErrorCode};
use confab_wire::{Body, PROTOCOL_MAJOR};

use crate::config::Config;

pub use link::Link;

/// The node id the admin tool uses on a shared store (its entries' message ids must not
/// collide with a server's); servers refuse it.
pub const NODE_ID: u16 = crate::ids::MAX_NODE_ID;

#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct AdminArgs {
    #[command(subcommand)]
    pub what: What,
}

#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum What {
    /// Accounts: list, show, deactivate, reactivate, promote, demote, reset-password,
    /// sessions, revoke-sessions.
    User {
        #[command(subcommand)]
        cmd: UserCmd,
    },
    /// Groups: list, show, delete, transfer.
    Group {
        #[command(subcommand)]
        cmd: GroupCmd,
    },
    /// Invitation codes for `--registration invite`: create, list, revoke.
    Invite {
        #[command(subcommand)]
        cmd: InviteCmd,
    },
    /// Users, groups, messages, store size, who is online on this node.
    Stats,
    /// The audit log of admin and moderation actions, newest first.
    Audit {
        /// Entries to show.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum UserCmd {
    /// Every account whose name contains QUERY (all without one).
    List {
        query: Option<String>,
    },
    /// One account, with its device sessions.
    Show {
        name: String,
    },
    /// Logs the user out everywhere at once; logins answer ACCOUNT_DISABLED. The name stays
    /// taken.
    Deactivate {
        name: String,
    },
    Reactivate {
        name: String,
    },
    /// Makes the user a server admin (Admin requests over the protocol).
    Promote {
        name: String,
    },
    Demote {
        name: String,
    },
    /// Sets a new password, read from the first line of standard input, and ends every
    /// session of the user.
    ResetPassword {
        name: String,
    },
    /// The user's device sessions.
    Sessions {
        name: String,
    },
    /// Ends every device session of the user at once.
    RevokeSessions {
        name: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum GroupCmd {
    /// Every group whose name contains QUERY (all without one).
    List {
        query: Option<String>,
    },
    Show {
        id: u64,
    },
    /// Removes every member; the thread stays readable by former members.
    Delete {
        id: u64,
    },
    /// Makes member NAME the owner.
    Transfer {
        id: u64,
        name: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum InviteCmd {
    /// Prints a new code (on standard output alone, for scripts).
    Create {
        /// Registrations it allows.
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// Lifetime, e.g. 7d, 12h, 30m [default: never expires].
        #[arg(long, value_parser = humantime::parse_duration)]
        expires: Option<Duration>,
        /// A note shown in `invite list`.
        #[arg(long, default_value = "")]
        note: String,
    },
    List,
    Revoke {
        id: u64,
    },
}

/// A failed command: its exit code and message.
#[derive(Debug)]
pub struct Failed(pub u8, pub String);

impl Failed {
    fn from_error(e: &pb::Error) -> Self {
        let code = match ErrorCode::try_from(e.code) {
            Ok(ErrorCode::NotFound) => 4,
            Ok(ErrorCode::Unavailable | ErrorCode::ShuttingDown | ErrorCode::Timeout) => 6,
            Ok(ErrorCode::BadRequest) => 2,
            _ => 5,
        };
        Failed(code, e.message.clone())
    }
}

/// Runs one admin command; `Err` carries the exit code.
pub async fn run(cfg: Config, args: AdminArgs) -> Result<(), Failed> {
    let mut link = Link::open(cfg).await?;
    let res = command(&mut link, args.what).await;
    link.close().await;
    res
}

async fn command(link: &mut Link, what: What) -> Result<(), Failed> {
    match what {
        What::User { cmd } => user(link, cmd).await,
        What::Group { cmd } => group(link, cmd).await,
        What::Invite { cmd } => invite(link, cmd).await,
        What::Stats => {
            let s = expect!(
                link.call(Body::AdminGetStats(pb::AdminGetStats {})).await?,
                AdminStats
            );
            show::stats(&s);
            Ok(())
        }
        What::Audit { limit } => {
            let req = pb::AdminListAudit {
                before_id: 0,
                limit,
            };
            let page = expect!(link.call(Body::AdminListAudit(req)).await?, AdminAuditPage);
            show::audit(&page.entries);
            Ok(())
        }
    }
}

async fn set_user(
    link: &mut Link,
    name: String,
    action: pb::AdminUserAction,
) -> Result<(), Failed> {
    let req = pb::AdminSetUser {
        name: name.clone(),
        action: action as i32,
    };
    link.call(Body::AdminSetUser(req)).await?;
    let done = match action {
        pb::AdminUserAction::Deactivate => "deactivated (logged out everywhere)",
        pb::AdminUserAction::Reactivate => "reactivated",
        pb::AdminUserAction::Promote => "is a server admin now",
        pb::AdminUserAction::Demote => "is no longer a server admin",
        pb::AdminUserAction::RevokeSessions => "logged out everywhere",
        pb::AdminUserAction::Unspecified => "unchanged",
    };
    println!("{name} {done}");
    Ok(())
}

async fn user(link: &mut Link, cmd: UserCmd) -> Result<(), Failed> {
    use pb::AdminUserAction as A;
    match cmd {
        UserCmd::List { query } => {
            let mut all = Vec::new();
            let mut after = 0;
            loop {
                let req = pb::AdminListUsers {
                    query: query.clone().unwrap_or_default(),
                    after_user_id: after,
                    limit: 0,
                };
                let page = expect!(link.call(Body::AdminListUsers(req)).await?, AdminUserList);
                after = page
                    .users
                    .last()
                    .and_then(|u| u.user.as_ref())
                    .map_or(after, |u| u.user_id);
                let more = page.has_more && !page.users.is_empty();
                all.extend(page.users);
                if !more {
                    break;
                }
            }
            show::users(&all);
        }
        UserCmd::Show { name } => {
            let u = expect!(
                link.call(Body::AdminGetUser(pb::AdminGetUser { name }))
                    .await?,
                AdminUser
            );
            show::user(&u);
        }
        UserCmd::Sessions { name } => {
            let u = expect!(
                link.call(Body::AdminGetUser(pb::AdminGetUser { name }))
                    .await?,
                AdminUser
            );
            show::sessions(&u.sessions);
        }
        UserCmd::Deactivate { name } => set_user(link, name, A::Deactivate).await?,
        UserCmd::Reactivate { name } => set_user(link, name, A::Reactivate).await?,
        UserCmd::Promote { name } => set_user(link, name, A::Promote).await?,
        UserCmd::Demote { name } => set_user(link, name, A::Demote).await?,
        UserCmd::RevokeSessions { name } => set_user(link, name, A::RevokeSessions).await?,
        UserCmd::ResetPassword { name } => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| Failed(1, format!("cannot read the new password: {e}")))?;
            let new_password = line.trim_end_matches(['\r', '\n']).to_owned();
            let req = pb::AdminResetPassword {
                name: name.clone(),
                new_password,
            };
            link.call(Body::AdminResetPassword(req)).await?;
            println!("{name}'s password was reset; every session of theirs ended");
        }
    }
    Ok(())
}

async fn group(link: &mut Link, cmd: GroupCmd) -> Result<(), Failed> {
    match cmd {
        GroupCmd::List { query } => {
            let mut all = Vec::new();
            let mut after = 0;
            loop {
                let req = pb::AdminListGroups {
                    query: query.clone().unwrap_or_default(),
                    after_group_id: after,
                    limit: 0,
                    group_id: 0,
                };
                let page = expect!(link.call(Body::AdminListGroups(req)).await?, AdminGroupList);
                after = page
                    .groups
                    .last()
                    .and_then(|g| g.group.as_ref())
                    .map_or(after, |g| g.group_id);
                let more = page.has_more && !page.groups.is_empty();
                all.extend(page.groups);
                if !more {
                    break;
                }
            }
            show::groups(&all);
        }
        GroupCmd::Show { id } => {
            let req = pb::AdminListGroups {
                group_id: id,
                ..Default::default()
            };
            let page = expect!(link.call(Body::AdminListGroups(req)).await?, AdminGroupList);
            let Some(g) = page.groups.first() else {
                return Err(Failed(4, format!("group {id} not found")));
            };
            show::group(g);
        }
        GroupCmd::Delete { id } => {
            link.call(Body::AdminDeleteGroup(pb::AdminDeleteGroup {
                group_id: id,
            }))
            .await?;
            println!("group {id} deleted");
        }
        GroupCmd::Transfer { id, name } => {
            let req = pb::AdminTransferGroup {
                group_id: id,
                new_owner: name.clone(),
            };
            link.call(Body::AdminTransferGroup(req)).await?;
            println!("group {id} is owned by {name} now");
        }
    }
    Ok(())
}

async fn invite(link: &mut Link, cmd: InviteCmd) -> Result<(), Failed> {
    match cmd {
        InviteCmd::Create {
            uses,
            expires,
            note,
        } => {
            let req = pb::AdminCreateInvite {
                uses,
                expires_in_ms: expires
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
                note,
            };
            let inv = expect!(link.call(Body::AdminCreateInvite(req)).await?, AdminInvite);
            println!("{}", inv.code);
            eprintln!("{}", show::invite_terms(&inv));
        }
        InviteCmd::List => {
            let list = expect!(
                link.call(Body::AdminListInvites(pb::AdminListInvites {}))
                    .await?,
                AdminInviteList
            );
            show::invites(&list.invites);
        }
        InviteCmd::Revoke { id } => {
            link.call(Body::AdminRevokeInvite(pb::AdminRevokeInvite {
                invite_id: id,
            }))
            .await?;
            println!("invitation {id} revoked");
        }
    }
    Ok(())
}

/// The Hello the admin tool sends.
fn hello() -> pb::Hello {
    pb::Hello {
        protocol_major: PROTOCOL_MAJOR,
        protocol_minor: confab_wire::PROTOCOL_MINOR,
        client_name: "confab-server admin".into(),
        client_version: env!("CARGO_PKG_VERSION").into(),
        resume_token: String::new(),
        quiet: true,
    }
}
