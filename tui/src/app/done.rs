//! Results of the multi-step operations ([`Op`](super::msg::Op)) the run loop ran as tasks.

use confab_wire::pb;

use super::actions::{select, send_text, upsert_thread};
use super::msg::{Cmd, Done};
use super::state::{Popup, State};
use crate::text::nfc;

/// Applies the result of an operation.
pub(super) fn done(s: &mut State, d: Done, cmds: &mut Vec<Cmd>) {
    match d {
        Done::MembersChanged {
            group_id,
            members,
            info,
        } => {
            done(s, Done::Members(group_id, members), cmds);
            s.notice(info);
        }
        Done::Friends(mut f) => {
            // The server pages by user id; people look for names.
            f.sort_by_cached_key(|fr| fr.user.as_ref().map(|u| u.name.to_lowercase()));
            for fr in &f {
                if let Some(u) = &fr.user {
                    s.presence.insert(u.user_id, fr.online);
                }
            }
            s.friends = f;
        }
        Done::Requests { incoming, outgoing } => {
            let pending = |v: Vec<pb::FriendRequest>| -> Vec<pb::FriendRequest> {
                v.into_iter()
                    .filter(|r| r.state == pb::RequestState::Pending as i32)
                    .collect()
            };
            s.requests = pending(incoming);
            s.outgoing = pending(outgoing);
            let n = s.requests.len() + s.outgoing.len();
            if let Some(Popup::Requests { sel }) = &mut s.popup {
                *sel = (*sel).min(n.saturating_sub(1));
            }
        }
        Done::Users(u) => {
            if let Some(Popup::AddFriend { results, sel, .. }) = &mut s.popup {
                *results = u;
                *sel = 0;
            }
        }
        Done::Blocked { users, info } => {
            s.blocked = users.iter().map(|u| u.user_id).collect();
            if let Some(info) = info {
                s.notice(info);
            } else if s.blocking_listed {
                // `/block` alone asked for the list.
                s.blocking_listed = false;
                let names: Vec<String> = users.iter().map(|u| nfc(&u.name)).collect();
                s.notice(if names.is_empty() {
                    "you block nobody".to_owned()
                } else {
                    format!("you block: {}", names.join(", "))
                });
            }
        }
        Done::Devices { devices, info } => {
            if let Some(Popup::Devices { devices: d, sel }) = &mut s.popup {
                *sel = (*sel).min(devices.len().saturating_sub(1));
                *d = devices;
            }
            if let Some(info) = info {
                s.notice(info);
            }
        }
        Done::SearchFailed(e) => {
            if let Some(Popup::AddFriend { searched, .. }) = &mut s.popup {
                searched.clear();
            }
            s.error(format!("search failed: {e}"));
        }
        Done::Members(gid, m) => {
            if let Some(t) = s
                .threads
                .iter_mut()
                .find(|t| t.group.as_ref().is_some_and(|g| g.group_id == gid))
            {
                t.members = Some(
                    m.iter()
                        .filter_map(|x| x.user.as_ref())
                        .map(|u| (u.user_id, nfc(&u.name)))
                        .collect(),
                );
            }
            if let Some(Popup::Members {
                group_id,
                members,
                sel,
            }) = &mut s.popup
                && *group_id == gid
            {
                *members = m;
                *sel = (*sel).min(members.len().saturating_sub(1));
            }
        }
        Done::Open(t, text) => {
            let id = t.thread_id;
            upsert_thread(s, *t, cmds);
            select(s, id, cmds);
            if let Some(text) = text {
                send_text(s, text, cmds);
            }
        }
        Done::Info(i) => s.notice(i),
        Done::Error(e) => {
            if !super::search_all::failed(s, &e) {
                s.error(e);
            }
        }
        Done::Dropped => {}
        Done::Changed {
            ack,
            kind,
            target,
            body,
        } => {
            let what = match kind {
                pb::MessageKind::Edit => "edited".to_owned(),
                pb::MessageKind::Recall => "recalled".to_owned(),
                pb::MessageKind::ReactionAdded => format!("reacted {body}"),
                _ => format!("took back {body}"),
            };
            if matches!(
                kind,
                pb::MessageKind::ReactionAdded | pb::MessageKind::ReactionRemoved
            ) {
                super::relations::answered(s, target, &body);
            }
            if ack.seq == 0 {
                // Nothing changed: it already was so (another device of mine, say).
                s.notice(format!("{what} (it already was)"));
                return;
            }
            let m = pb::ChatMessage {
                thread_id: ack.thread_id,
                seq: ack.seq,
                message_id: ack.message_id,
                sender: s.me.clone(),
                server_ts_ms: ack.server_ts_ms,
                kind: kind as i32,
                body,
                target_message_id: target,
                client_msg_id: ack.client_msg_id,
                ..Default::default()
            };
            s.notice(what);
            super::events::incoming(s, m, cmds);
        }
        Done::SearchHits {
            query,
            hits,
            more,
            append,
        } => super::search_all::results(s, &query, hits, more, append),
        Done::ThreadHit { thread, query, seq } => match seq {
            Some(seq) => super::search_all::jump(s, thread, seq, cmds),
            None => s.notice(format!("“{query}” is nowhere in this conversation")),
        },
        Done::Invitation { code, uses } => {
            // The code first, so it is whole on an 80-column status line; on the clipboard too.
            s.notice(format!("{code}  invitation for {uses}, copied"));
            cmds.push(Cmd::Copy(code));
        }
        Done::AccountDeleted => {
            let (server, settings, now) = (s.server.clone(), s.settings.clone(), s.now_ms);
            *s = State::new(settings, server);
            // The clock goes on: a notice timed from 0 would be gone at the next tick.
            s.now_ms = now;
            s.notice("your account is deleted");
            cmds.push(Cmd::ForgetSession);
        }
        Done::LoggedOut => {
            let server = s.server.clone();
            let settings = s.settings.clone();
            // Logging in again opens the conversation that was open (if it is listed then).
            let (open, now) = (s.selected, s.now_ms);
            *s = State::new(settings, server);
            s.last_open = open;
            s.now_ms = now;
            s.notice("logged out");
        }
    }
}
