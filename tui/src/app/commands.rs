//! Slash commands: parsing, Tab completion, and running them.

use confab_wire::pb;

use super::actions::{close_current, delete_failed, retry};
use super::config::Level;
use super::msg::{Cmd, Op};
use super::popups::{members_popup, open_popup};
use super::state::{Popup, State};
use crate::text::nfc;

/// Every command, with its usage line (shown in help and on a usage error).
pub const COMMANDS: &[(&str, &str)] = &[
    (
        "/add",
        "/add NAME [NOTE]     send a friend request (with a note)",
    ),
    ("/unfriend", "/unfriend NAME       remove a friend"),
    (
        "/block",
        "/block [NAME]        block someone (alone: list whom you block)",
    ),
    ("/unblock", "/unblock NAME        end a block"),
    (
        "/devices",
        "/devices             your sessions on every device (x twice signs one out)",
    ),
    (
        "/password",
        "/password            change your password (signs out your other devices)",
    ),
    (
        "/delete-account",
        "/delete-account      delete your account for good (asks your password)",
    ),
    (
        "/admin",
        "/admin deactivate|reactivate|signout NAME, invite [USES], stats  (server admins)",
    ),
    ("/accept", "/accept [NAME]       accept a friend request"),
    ("/decline", "/decline [NAME]      decline a friend request"),
    (
        "/msg",
        "/msg NAME [TEXT]     open a conversation with a friend",
    ),
    (
        "/group",
        "/group create|join|leave|invite|kick|ban|unban|role|rename|topic|open|closed|transfer|decline ...",
    ),
    ("/members", "/members             members of this group"),
    (
        "/search",
        "/search TEXT         find TEXT here (as Ctrl-S: Up/Down step, Esc back)",
    ),
    (
        "/search-all",
        "/search-all [TEXT]   search every conversation on the server (as F6)",
    ),
    (
        "/filter",
        "/filter TEXT         show only matching messages (Esc clears)",
    ),
    (
        "/edit",
        "/edit [TEXT]         change your last message (alone: edit it in the composer)",
    ),
    ("/recall", "/recall              recall your last message"),
    (
        "/react",
        "/react EMOJI         react to the picked (or newest) message; again takes it back",
    ),
    (
        "/notify",
        "/notify [all|mentions|none]  what this conversation notifies of",
    ),
    ("/retry", "/retry               resend failed messages"),
    (
        "/delete",
        "/delete              delete the newest failed message here",
    ),
    (
        "/export",
        "/export [FILE]       write this conversation to a text file (~/confab-NAME.txt)",
    ),
    (
        "/close",
        "/close               take this conversation off the list until something new",
    ),
    ("/reconnect", "/reconnect           reconnect now"),
    (
        "/logout",
        "/logout [all]        end this session (all: on every device)",
    ),
    ("/quit", "/quit                leave confab"),
    ("/help", "/help                keys and commands"),
];

pub(super) const GROUP_SUBS: &[&str] = &[
    "create", "join", "leave", "invite", "kick", "role", "rename", "topic", "open", "closed",
    "transfer", "decline", "ban", "unban",
];

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    React(String),
    Add(String, String),
    Unfriend(String),
    Block(Option<String>),
    Unblock(String),
    Password,
    DeleteAccount,
    Admin(super::msg::AdminOp),
    Devices,
    Accept(Option<String>),
    Decline(Option<String>),
    Msg(String, Option<String>),
    /// Name, and whether anyone may join.
    GroupCreate(String, bool),
    GroupRename(String),
    /// The topic (empty: cleared).
    GroupTopic(String),
    GroupOpen(bool),
    GroupTransfer(String),
    GroupBan(String, bool),
    GroupDecline(String),
    GroupJoin(String),
    GroupLeave,
    GroupInvite(String),
    GroupKick(String),
    GroupRole(String, String),
    Members,
    Search(Option<String>),
    SearchAll(Option<String>),
    Find(String),
    Edit(Option<String>),
    Recall,
    Notify(Option<String>),
    Retry,
    Delete,
    Close,
    Export(Option<String>),
    Reconnect,
    Logout(bool),
    Quit,
    Help,
}

/// Why a command line did not parse; the text is a message for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Arguments missing or wrong: the command's usage line.
    #[error("usage: {0}")]
    Usage(String),
    #[error("unknown command {0} (/help lists them)")]
    Unknown(String),
}

/// Parses `/cmd args`.
pub fn parse(line: &str) -> Result<Command, ParseError> {
    let line = line.trim();
    let (cmd, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let rest = rest.trim();
    let mut words = rest.split_whitespace();
    let first = words.next().map(str::to_owned);
    let usage = |c: &str| {
        ParseError::Usage(
            COMMANDS
                .iter()
                .find(|(n, _)| *n == c)
                .map_or_else(|| c.to_owned(), |(_, u)| u.trim().to_owned()),
        )
    };
    Ok(match cmd {
        "/add" => {
            let name = first.ok_or_else(|| usage("/add"))?;
            Command::Add(name.clone(), rest[name.len()..].trim().to_owned())
        }
        "/unfriend" => Command::Unfriend(first.ok_or_else(|| usage("/unfriend"))?),
        "/password" => Command::Password,
        "/search-all" => Command::SearchAll((!rest.is_empty()).then(|| rest.to_owned())),
        "/delete-account" => Command::DeleteAccount,
        "/admin" => Command::Admin(
            admin_op(rest.split_whitespace().collect()).ok_or_else(|| usage("/admin"))?,
        ),
        "/devices" => Command::Devices,
        "/block" => Command::Block(first),
        "/unblock" => Command::Unblock(first.ok_or_else(|| usage("/unblock"))?),
        "/accept" => Command::Accept(first),
        "/decline" => Command::Decline(first),
        "/msg" => {
            let name = first.ok_or_else(|| usage("/msg"))?;
            let text = rest[name.len()..].trim();
            Command::Msg(name, (!text.is_empty()).then(|| text.to_owned()))
        }
        "/group" => {
            let sub = first.ok_or_else(|| usage("/group"))?;
            let arg = words.next().map(str::to_owned);
            let need = |a: Option<String>| a.ok_or_else(|| usage("/group"));
            match sub.as_str() {
                "create" => {
                    let name = need(arg)?;
                    match words.next() {
                        None | Some("open") => Command::GroupCreate(name, true),
                        Some("closed" | "invite-only") => Command::GroupCreate(name, false),
                        Some(_) => {
                            return Err(ParseError::Usage("/group create NAME [closed]".into()));
                        }
                    }
                }
                "rename" => Command::GroupRename(need(arg)?),
                "topic" => Command::GroupTopic(
                    rest.split_once(char::is_whitespace)
                        .map_or("", |(_, t)| t.trim())
                        .to_owned(),
                ),
                "open" => Command::GroupOpen(true),
                "closed" | "close" => Command::GroupOpen(false),
                "transfer" => Command::GroupTransfer(need(arg)?),
                "ban" => Command::GroupBan(need(arg)?, true),
                "unban" => Command::GroupBan(need(arg)?, false),
                "decline" => Command::GroupDecline(need(arg)?),
                "join" => Command::GroupJoin(need(arg)?),
                "leave" => Command::GroupLeave,
                "invite" => Command::GroupInvite(need(arg)?),
                "kick" => Command::GroupKick(need(arg)?),
                "role" => {
                    let name = need(arg)?;
                    let role = words
                        .next()
                        .ok_or_else(|| ParseError::Usage("/group role NAME admin|member".into()))?;
                    Command::GroupRole(name, role.to_owned())
                }
                _ => return Err(usage("/group")),
            }
        }
        "/members" => Command::Members,
        "/search" => Command::Find(rest.to_owned()),
        "/filter" => Command::Search((!rest.is_empty()).then(|| rest.to_owned())),
        "/edit" => Command::Edit((!rest.is_empty()).then(|| rest.to_owned())),
        "/recall" => Command::Recall,
        "/react" if !rest.is_empty() => Command::React(rest.to_owned()),
        "/react" => return Err(usage("/react")),
        "/notify" => Command::Notify(first),
        "/retry" => Command::Retry,
        "/delete" => Command::Delete,
        "/close" | "/hide" => Command::Close,
        "/export" => Command::Export((!rest.is_empty()).then(|| rest.to_owned())),
        "/reconnect" => Command::Reconnect,
        "/logout" => match first.as_deref() {
            None => Command::Logout(false),
            Some("all") => Command::Logout(true),
            Some(_) => return Err(usage("/logout")),
        },
        "/quit" | "/exit" => Command::Quit,
        "/help" => Command::Help,
        other => return Err(ParseError::Unknown(other.to_owned())),
    })
}

fn find_request(s: &State, name: Option<&str>) -> Option<u64> {
    s.requests
        .iter()
        .find(|r| {
            name.is_none_or(|n| {
                r.from
                    .as_ref()
                    .is_some_and(|u| u.name.to_lowercase() == n.to_lowercase())
            })
        })
        .map(|r| r.request_id)
}

fn current_group(s: &mut State) -> Option<u64> {
    let g = s
        .current()
        .and_then(|t| t.group.as_ref().map(|g| g.group_id));
    if g.is_none() {
        s.error("this conversation is not a group");
    }
    g
}

/// `/group rename|topic|open|closed` on the shown group.
fn group_update(s: &mut State, cmds: &mut Vec<Cmd>, set: impl FnOnce(&mut pb::UpdateGroup)) {
    if let Some(group_id) = current_group(s) {
        let mut u = pb::UpdateGroup {
            group_id,
            ..Default::default()
        };
        set(&mut u);
        cmds.push(Cmd::Op(Op::UpdateGroup(u)));
    }
}

fn member_id(s: &State, name: &str) -> Option<u64> {
    let n = name.to_lowercase();
    if let Some(Popup::Members { members, .. }) = &s.popup {
        for m in members {
            if let Some(u) = &m.user
                && u.name.to_lowercase() == n
            {
                return Some(u.user_id);
            }
        }
    }
    None
}

/// `/admin SUB ARGS` (the words after `/admin`): what to ask the server.
fn admin_op(words: Vec<&str>) -> Option<super::msg::AdminOp> {
    use super::msg::AdminOp;
    use pb::AdminUserAction as A;
    let user = |a| match words.get(1) {
        Some(name) if words.len() == 2 => Some(AdminOp::User(nfc(name), a)),
        _ => None,
    };
    match *words.first()? {
        "deactivate" => user(A::Deactivate),
        "reactivate" => user(A::Reactivate),
        "signout" => user(A::RevokeSessions),
        "invite" => match words.get(1) {
            None => Some(AdminOp::Invite(1)),
            Some(n) => n.parse().ok().filter(|n| *n > 0).map(AdminOp::Invite),
        },
        "stats" if words.len() == 1 => Some(AdminOp::Stats),
        _ => None,
    }
}

/// Runs a `/command` typed in the composer.
pub(super) fn run_command(s: &mut State, line: &str, cmds: &mut Vec<Cmd>) {
    use Command as C;
    let c = match parse(line) {
        Ok(c) => c,
        Err(e) => {
            s.error(e.to_string());
            return;
        }
    };
    match c {
        C::Add(name, note) => cmds.push(Cmd::Op(Op::AddFriend(nfc(&name), nfc(&note)))),
        C::Unfriend(name) => cmds.push(Cmd::Op(Op::Unfriend(nfc(&name)))),
        C::Block(Some(name)) => cmds.push(Cmd::Op(Op::Block(nfc(&name), true))),
        C::Block(None) => {
            s.blocking_listed = true;
            cmds.push(Cmd::Op(Op::LoadBlocked));
        }
        C::Unblock(name) => cmds.push(Cmd::Op(Op::Block(nfc(&name), false))),
        C::Devices => open_popup(
            s,
            Popup::Devices {
                devices: Vec::new(),
                sel: 0,
            },
            cmds,
        ),
        C::DeleteAccount => open_popup(
            s,
            Popup::DeleteAccount {
                password: Default::default(),
            },
            cmds,
        ),
        C::Admin(op) => cmds.push(Cmd::Op(Op::Admin(op))),
        C::SearchAll(q) => super::search_all::open(s, q, cmds),
        C::Password => open_popup(
            s,
            Popup::Password {
                old: Default::default(),
                new: Default::default(),
                again: Default::default(),
                field: 0,
            },
            cmds,
        ),
        C::Accept(name) | C::Decline(name) => {
            let accept = line.trim_start().starts_with("/accept");
            match find_request(s, name.as_deref()) {
                Some(request_id) => {
                    s.requests.retain(|r| r.request_id != request_id);
                    cmds.push(Cmd::Op(Op::Respond { request_id, accept }));
                }
                None => s.error(match name {
                    Some(n) => format!("no pending request from {n}"),
                    None => "no pending friend requests".into(),
                }),
            }
        }
        C::Msg(name, text) => cmds.push(Cmd::Op(Op::OpenDm(nfc(&name), text))),
        C::GroupCreate(n, open) => cmds.push(Cmd::Op(Op::CreateGroup(nfc(&n), open))),
        C::GroupRename(n) => group_update(s, cmds, |u| u.name = Some(nfc(&n))),
        C::GroupTopic(t) => group_update(s, cmds, |u| u.description = Some(nfc(&t))),
        C::GroupOpen(open) => group_update(s, cmds, |u| u.open = Some(open)),
        C::GroupTransfer(n) => {
            if let Some(g) = current_group(s) {
                cmds.push(Cmd::Op(Op::Transfer(g, nfc(&n))));
            }
        }
        C::GroupBan(n, ban) => {
            if let Some(g) = current_group(s) {
                cmds.push(Cmd::Op(Op::Ban(g, nfc(&n), ban)));
            }
        }
        C::GroupDecline(n) => cmds.push(Cmd::Op(Op::DeclineInvite(nfc(&n)))),
        C::GroupJoin(n) => cmds.push(Cmd::Op(Op::JoinGroup(nfc(&n)))),
        C::GroupLeave => {
            if let Some(g) = current_group(s) {
                cmds.push(Cmd::Op(Op::LeaveGroup(g)));
            }
        }
        C::GroupInvite(n) => {
            if let Some(g) = current_group(s) {
                cmds.push(Cmd::Op(Op::Invite(g, nfc(&n))));
            }
        }
        C::GroupKick(n) => {
            if let Some(g) = current_group(s) {
                let id = member_id(s, &n).unwrap_or(0);
                cmds.push(Cmd::Op(Op::Kick(g, id, nfc(&n))));
            }
        }
        C::GroupRole(n, role) => {
            if let Some(g) = current_group(s) {
                let role = match role.to_lowercase().as_str() {
                    "admin" => pb::Role::Admin,
                    "member" => pb::Role::Member,
                    _ => {
                        s.error("role is admin or member");
                        return;
                    }
                };
                let id = member_id(s, &n).unwrap_or(0);
                cmds.push(Cmd::Op(Op::SetRole(g, id, nfc(&n), role)));
            }
        }
        C::Members => members_popup(s, cmds),
        C::Find(q) => super::find::start(s, &nfc(&q), cmds),
        C::Search(q) => {
            if let Some(t) = s.current_mut() {
                t.search = q.map(|q| nfc(&q));
                t.scroll = 0;
            }
        }
        C::Edit(text) => super::amend::edit_command(s, text, cmds),
        C::Recall => super::amend::recall_last(s, cmds),
        C::React(e) => super::relations::react_command(s, &e, cmds),
        C::Notify(level) => notify_level(s, level.as_deref(), cmds),
        C::Retry => retry(s, cmds),
        C::Delete => delete_failed(s, cmds),
        C::Close => close_current(s, cmds),
        C::Export(path) => match s.current() {
            Some(t) => {
                let group = t.kind == super::state::Kind::Group;
                cmds.push(Cmd::Export {
                    thread_id: t.id,
                    file: super::export::file_name(&t.name, group),
                    path,
                });
                s.notice("exporting…");
            }
            None => s.error("no conversation to export"),
        },
        C::Reconnect => {
            s.notice("reconnecting now…");
            cmds.push(Cmd::ReconnectNow);
        }
        C::Logout(false) => cmds.push(Cmd::Op(Op::Logout)),
        C::Logout(true) => cmds.push(Cmd::Op(Op::LogoutEverywhere)),
        C::Quit => {
            s.quit = true;
            cmds.push(Cmd::Quit);
        }
        C::Help => open_popup(s, Popup::Help { scroll: 0 }, cmds),
    }
}

/// `/notify LEVEL` sets the shown conversation's level (kept in the config); alone, says it.
fn notify_level(s: &mut State, level: Option<&str>, cmds: &mut Vec<Cmd>) {
    let Some(name) = s.current().map(|t| t.name.clone()) else {
        s.error("no conversation selected");
        return;
    };
    let Some(word) = level else {
        let now = s.settings.level(&name);
        s.notice(format!(
            "{name} notifies of: {} (/notify all|mentions|none)",
            level_words(now)
        ));
        return;
    };
    let Some(level) = Level::parse(&word.to_lowercase()) else {
        s.error("usage: /notify all|mentions|none");
        return;
    };
    if level == Level::All {
        s.settings.levels.remove(&name);
    } else {
        s.settings.levels.insert(name.clone(), level);
    }
    s.notice(format!("{name} now notifies of: {}", level_words(level)));
    cmds.push(Cmd::SaveLevel { name, level });
}

fn level_words(l: Level) -> &'static str {
    match l {
        Level::All => "every message",
        Level::Mentions => "mentions and highlight words only",
        Level::None => "nothing (muted)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands() {
        assert_eq!(
            parse("/add 王五"),
            Ok(Command::Add("王五".into(), String::new()))
        );
        assert_eq!(
            parse("/add 王五 我是小明的同事"),
            Ok(Command::Add("王五".into(), "我是小明的同事".into()))
        );
        assert_eq!(parse("/logout all"), Ok(Command::Logout(true)));
        assert!(parse("/logout everything").is_err());
        assert_eq!(
            parse("/msg bob hello there"),
            Ok(Command::Msg("bob".into(), Some("hello there".into())))
        );
        assert_eq!(
            parse("/group role 李四 admin"),
            Ok(Command::GroupRole("李四".into(), "admin".into()))
        );
        assert!(parse("/add").is_err());
        assert!(parse("/frobnicate").is_err());
        assert_eq!(parse("/accept"), Ok(Command::Accept(None)));
    }
}
