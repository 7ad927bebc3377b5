//! Popups: opening them and their keys (help, friend requests, add a friend, groups, members,
//! the quick switcher), one function per popup.

use confab_wire::pb;
use crossterm::event::{KeyCode, KeyEvent};

use super::actions::select;
use super::input::edit_line;
use super::msg::{Cmd, Op, Secret};
use super::state::{Popup, State};
use crate::text::editor::Editor;
use crate::text::nfc;

/// Shows a popup, asking for what it lists.
pub(super) fn open_popup(s: &mut State, p: Popup, cmds: &mut Vec<Cmd>) {
    match &p {
        Popup::Requests { .. } => cmds.push(Cmd::Op(Op::LoadRequests)),
        Popup::Members { group_id, .. } => cmds.push(Cmd::Op(Op::Members(*group_id))),
        Popup::Devices { .. } => cmds.push(Cmd::Op(Op::LoadDevices)),
        _ => {}
    }
    s.popup = Some(p);
}

/// The members of the current group (an error in a private conversation).
pub(super) fn members_popup(s: &mut State, cmds: &mut Vec<Cmd>) {
    match s
        .current()
        .and_then(|t| t.group.as_ref().map(|g| g.group_id))
    {
        Some(group_id) => open_popup(
            s,
            Popup::Members {
                group_id,
                members: Vec::new(),
                sel: 0,
            },
            cmds,
        ),
        None => s.error("this conversation is not a group"),
    }
}

/// Threads matching a switcher query, best first: the name itself, then names that start with
/// the query, then any case-insensitive subsequence match scored by how early and how tightly
/// the letters match (so `team-1` comes before `team-12`); the list's order among equals.
pub fn switcher_matches(s: &State, query: &str) -> Vec<u64> {
    let lower = query.to_lowercase();
    let q: Vec<char> = lower.chars().collect();
    let mut scored: Vec<(i64, usize, u64)> = s
        .threads
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            let full = t.name.to_lowercase();
            let name: Vec<char> = full.chars().collect();
            let mut score = if full == lower {
                10_000
            } else if full.starts_with(&lower) {
                1_000
            } else {
                0
            };
            let mut pos = 0usize;
            let mut last: Option<usize> = None;
            for c in &q {
                let found = name[pos..].iter().position(|x| x == c)? + pos;
                score += match last {
                    Some(l) if found == l + 1 => 3,
                    _ => 1,
                };
                if found == 0 {
                    score += 2;
                }
                last = Some(found);
                pos = found + 1;
            }
            Some((score, i, t.id))
        })
        .collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().map(|(_, _, id)| id).collect()
}

/// A key while a popup is open; the popup closes when its handler says so.
pub(super) fn popup_key(s: &mut State, k: KeyEvent, cmds: &mut Vec<Cmd>) {
    let help_max =
        matches!(s.popup, Some(Popup::Help { .. })).then(|| super::help::scroll_limits(s));
    let Some(mut p) = s.popup.take() else { return };
    let keep = match &mut p {
        Popup::Help { scroll } => {
            let (max, page) = help_max.unwrap_or((0, 1));
            help_key(scroll, max, page, &k)
        }
        Popup::Requests { sel } => requests_key(s, sel, &k, cmds),
        Popup::AddFriend {
            query,
            results,
            sel,
            searched,
        } => add_friend_key(query, results, sel, searched, &k, cmds),
        Popup::Group { name, join } => group_key(name, join, &k, cmds),
        Popup::Members {
            group_id,
            members,
            sel,
        } => members_key(s, *group_id, members, sel, &k, cmds),
        Popup::Switcher { query, sel } => switcher_key(s, query, sel, &k, cmds),
        Popup::Password {
            old,
            new,
            again,
            field,
        } => password_key(s, [old, new, again], field, &k, cmds),
        Popup::Devices { devices, sel } => devices_key(s, devices, sel, &k, cmds),
        Popup::DeleteAccount { password } => delete_account_key(s, password, &k, cmds),
        p @ Popup::Search { .. } => super::search_all::key(s, p, &k, cmds),
    };
    // Kept unless a handler put another popup in its place.
    if keep && s.popup.is_none() {
        s.popup = Some(p);
    } else if !keep && matches!(p, Popup::Search { .. }) {
        super::search_all::closing(s, p);
    }
}

fn help_key(scroll: &mut usize, max: usize, page: usize, k: &KeyEvent) -> bool {
    let keep = match k.code {
        KeyCode::Esc | KeyCode::Enter | KeyCode::Char('q') | KeyCode::F(1) => false,
        KeyCode::Down | KeyCode::Char('j') => {
            *scroll += 1;
            true
        }
        KeyCode::Up | KeyCode::Char('k') => {
            *scroll = scroll.saturating_sub(1);
            true
        }
        // A page is what the popup shows, so no line is ever skipped.
        KeyCode::PageDown | KeyCode::Char(' ') => {
            *scroll += page;
            true
        }
        KeyCode::PageUp => {
            *scroll = scroll.saturating_sub(page);
            true
        }
        KeyCode::Home | KeyCode::Char('g') => {
            *scroll = 0;
            true
        }
        KeyCode::End | KeyCode::Char('G') => {
            *scroll = max;
            true
        }
        _ => true,
    };
    *scroll = (*scroll).min(max);
    keep
}

/// The requests popup lists the requests to me, then mine to others: `a`/Enter accepts and
/// `d` declines one of the first; `c` (or `d`) takes back one of mine.
fn requests_key(s: &mut State, sel: &mut usize, k: &KeyEvent, cmds: &mut Vec<Cmd>) -> bool {
    let n_in = s.requests.len();
    if *sel >= n_in
        && !matches!(
            k.code,
            KeyCode::Esc
                | KeyCode::Char('q')
                | KeyCode::Up
                | KeyCode::Down
                | KeyCode::Char('j' | 'k')
        )
    {
        if let KeyCode::Char('c' | 'd' | 'x') = k.code
            && let Some(r) = s.outgoing.get(*sel - n_in)
        {
            let name = r.to.as_ref().map(|u| u.name.clone()).unwrap_or_default();
            let id = r.request_id;
            cmds.push(Cmd::Op(Op::CancelRequest(name)));
            s.outgoing.retain(|x| x.request_id != id);
            *sel = (*sel).min((n_in + s.outgoing.len()).saturating_sub(1));
        }
        return true;
    }
    match k.code {
        KeyCode::Esc | KeyCode::Char('q') => false,
        KeyCode::Down | KeyCode::Char('j') => {
            *sel = (*sel + 1).min((n_in + s.outgoing.len()).saturating_sub(1));
            true
        }
        KeyCode::Up | KeyCode::Char('k') => {
            *sel = sel.saturating_sub(1);
            true
        }
        KeyCode::Char('a') | KeyCode::Enter | KeyCode::Char('d') | KeyCode::Char('x') => {
            if let Some(r) = s.requests.get(*sel) {
                let accept = matches!(k.code, KeyCode::Char('a') | KeyCode::Enter);
                cmds.push(Cmd::Op(Op::Respond {
                    request_id: r.request_id,
                    accept,
                }));
                let id = r.request_id;
                s.requests.retain(|x| x.request_id != id);
                *sel = (*sel).min(s.requests.len().saturating_sub(1));
            }
            true
        }
        _ => true,
    }
}

/// A device session's name for people: its device name, else its client.
pub fn device_label(d: &pb::Device) -> String {
    match (d.name.is_empty(), d.client.is_empty()) {
        (false, _) => d.name.clone(),
        (true, false) => d.client.clone(),
        (true, true) => format!("device {}", d.device_id),
    }
}

/// `/devices`: Up/Down choose, `x` twice signs that session out (not this one: /logout).
fn devices_key(
    s: &mut State,
    devices: &[pb::Device],
    sel: &mut usize,
    k: &KeyEvent,
    cmds: &mut Vec<Cmd>,
) -> bool {
    if k.code != KeyCode::Char('x') && s.revoke_armed.take().is_some() {
        s.notice = None;
    }
    match k.code {
        KeyCode::Esc | KeyCode::Char('q') => false,
        KeyCode::Down | KeyCode::Char('j') => {
            *sel = (*sel + 1).min(devices.len().saturating_sub(1));
            true
        }
        KeyCode::Up | KeyCode::Char('k') => {
            *sel = sel.saturating_sub(1);
            true
        }
        KeyCode::Char('x') => {
            let Some(d) = devices.get(*sel) else {
                return true;
            };
            if d.current {
                s.error("this is the session you are using: /logout ends it");
            } else if s.revoke_armed == Some(d.device_id) {
                s.revoke_armed = None;
                cmds.push(Cmd::Op(Op::RevokeDevice(d.device_id, device_label(d))));
            } else {
                s.revoke_armed = Some(d.device_id);
                s.notice(format!(
                    "press x again to sign {} out (another key cancels)",
                    device_label(d)
                ));
            }
            true
        }
        _ => true,
    }
}

/// `/password`: Tab or Enter moves on; Enter on the last field sends when the new password was
/// typed the same twice.
/// `/delete-account`: Enter with the password deletes, Esc keeps the account.
fn delete_account_key(
    s: &mut State,
    password: &mut Editor,
    k: &KeyEvent,
    cmds: &mut Vec<Cmd>,
) -> bool {
    match k.code {
        KeyCode::Esc => false,
        KeyCode::Enter if password.is_empty() => {
            s.error("type your password to delete the account");
            true
        }
        KeyCode::Enter => {
            cmds.push(Cmd::Op(Op::DeleteAccount(Secret(
                password.text().to_owned(),
            ))));
            false
        }
        _ => {
            edit_line(password, k);
            true
        }
    }
}

fn password_key(
    s: &mut State,
    [old, new, again]: [&mut Editor; 3],
    field: &mut usize,
    k: &KeyEvent,
    cmds: &mut Vec<Cmd>,
) -> bool {
    match k.code {
        KeyCode::Esc => false,
        KeyCode::Tab | KeyCode::Down => {
            *field = (*field + 1) % 3;
            true
        }
        KeyCode::BackTab | KeyCode::Up => {
            *field = (*field + 2) % 3;
            true
        }
        KeyCode::Enter if *field < 2 => {
            *field += 1;
            true
        }
        KeyCode::Enter => {
            if old.is_empty() || new.is_empty() {
                s.error("type your current password and the new one");
                return true;
            }
            if new.text() != again.text() {
                s.error("the two new passwords differ: type it again");
                again.set("");
                return true;
            }
            cmds.push(Cmd::Op(Op::ChangePassword {
                old: Secret(old.text().to_owned()),
                new: Secret(new.text().to_owned()),
            }));
            false
        }
        _ => {
            let e = match field {
                0 => old,
                1 => new,
                _ => again,
            };
            edit_line(e, k);
            true
        }
    }
}

fn add_friend_key(
    query: &mut Editor,
    results: &[pb::Profile],
    sel: &mut usize,
    searched: &mut String,
    k: &KeyEvent,
    cmds: &mut Vec<Cmd>,
) -> bool {
    match k.code {
        KeyCode::Esc => false,
        KeyCode::Down => {
            *sel = (*sel + 1).min(results.len().saturating_sub(1));
            true
        }
        KeyCode::Up => {
            *sel = sel.saturating_sub(1);
            true
        }
        KeyCode::Enter => {
            let q = query.text().trim().to_owned();
            if !results.is_empty() && *searched == q {
                if let Some(u) = results.get(*sel).and_then(|p| p.user.clone()) {
                    cmds.push(Cmd::Op(Op::AddFriend(u.name, String::new())));
                }
                false
            } else if !q.is_empty() {
                *searched = q.clone();
                cmds.push(Cmd::Op(Op::SearchUsers(q)));
                true
            } else {
                true
            }
        }
        _ => {
            edit_line(query, k);
            true
        }
    }
}

fn group_key(name: &mut Editor, join: &mut bool, k: &KeyEvent, cmds: &mut Vec<Cmd>) -> bool {
    match k.code {
        KeyCode::Esc => false,
        KeyCode::Tab | KeyCode::BackTab => {
            *join = !*join;
            true
        }
        KeyCode::Enter => {
            let n = nfc(name.text().trim());
            if n.is_empty() {
                true
            } else {
                cmds.push(Cmd::Op(if *join {
                    Op::JoinGroup(n)
                } else {
                    Op::CreateGroup(n, true)
                }));
                false
            }
        }
        _ => {
            edit_line(name, k);
            true
        }
    }
}

fn members_key(
    s: &mut State,
    group_id: u64,
    members: &[pb::GroupMember],
    sel: &mut usize,
    k: &KeyEvent,
    cmds: &mut Vec<Cmd>,
) -> bool {
    if k.code != KeyCode::Char('x') && s.kick_armed.take().is_some() {
        s.notice = None;
    }
    match k.code {
        KeyCode::Esc | KeyCode::Char('q') => false,
        KeyCode::Down | KeyCode::Char('j') => {
            *sel = (*sel + 1).min(members.len().saturating_sub(1));
            true
        }
        KeyCode::Up | KeyCode::Char('k') => {
            *sel = sel.saturating_sub(1);
            true
        }
        KeyCode::Char('b') => {
            match members.get(*sel).and_then(|m| m.user.as_ref()) {
                Some(u) if u.user_id == s.my_id() => s.error("you cannot block yourself"),
                Some(u) => cmds.push(Cmd::Op(Op::Block(u.name.clone(), true))),
                None => {}
            }
            true
        }
        KeyCode::Char('x') | KeyCode::Char('p') => {
            let allowed = s
                .threads
                .iter()
                .filter_map(|t| t.group.as_ref())
                .any(|g| g.group_id == group_id && g.my_role >= pb::Role::Admin as i32);
            if !allowed {
                s.error("only the owner and admins can do that");
            } else if let Some(m) = members.get(*sel)
                && let Some(u) = &m.user
            {
                if k.code == KeyCode::Char('x') {
                    // Removing someone takes a second x on the same member.
                    if s.kick_armed == Some(u.user_id) {
                        s.kick_armed = None;
                        cmds.push(Cmd::Op(Op::Kick(group_id, u.user_id, u.name.clone())));
                    } else {
                        s.kick_armed = Some(u.user_id);
                        s.notice(format!(
                            "press x again to remove {} from the group (another key cancels)",
                            u.name
                        ));
                        return true;
                    }
                } else {
                    let role = if m.role == pb::Role::Admin as i32 {
                        pb::Role::Member
                    } else {
                        pb::Role::Admin
                    };
                    cmds.push(Cmd::Op(Op::SetRole(
                        group_id,
                        u.user_id,
                        u.name.clone(),
                        role,
                    )));
                }
            }
            true
        }
        _ => true,
    }
}

fn switcher_key(
    s: &mut State,
    query: &mut Editor,
    sel: &mut usize,
    k: &KeyEvent,
    cmds: &mut Vec<Cmd>,
) -> bool {
    match k.code {
        KeyCode::Esc => false,
        KeyCode::Down | KeyCode::Tab => {
            *sel += 1;
            true
        }
        KeyCode::Up | KeyCode::BackTab => {
            *sel = sel.saturating_sub(1);
            true
        }
        KeyCode::Enter => {
            let m = switcher_matches(s, query.text());
            if let Some(id) = m.get((*sel).min(m.len().saturating_sub(1))) {
                select(s, *id, cmds);
            }
            false
        }
        _ => {
            if edit_line(query, k) {
                *sel = 0;
            }
            true
        }
    }
}
