//! What the command line prints: one JSON object per line, each with a `type`. docs/CLI.md is
//! the schema; the field names here are the contract scripts rely on.

use confab_wire::pb;
use serde_json::{Value, json};

use crate::client::ConnState;

/// One JSON line on standard output. A reader that went away (`confab threads | head -1`)
/// ends the command quietly with 0, as a closed pipe ends `ls`; any other failure exits 1.
pub fn print(v: Value) {
    use std::io::Write;
    if let Err(e) = writeln!(std::io::stdout().lock(), "{v}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("confab: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

/// `v` (an object) with `type` set.
pub fn typed(kind: &str, mut v: Value) -> Value {
    v["type"] = json!(kind);
    v
}

pub fn user(u: &Option<pb::User>) -> Value {
    u.as_ref()
        .map_or(json!(null), |u| json!({"id": u.user_id, "name": u.name}))
}

pub fn role_name(role: i32) -> &'static str {
    pb::Role::try_from(role).map_or("UNKNOWN", |r| r.as_str_name())
}

fn request_state(r: &pb::FriendRequest) -> &'static str {
    pb::RequestState::try_from(r.state).map_or("UNKNOWN", |s| s.as_str_name())
}

/// A search hit: the message's fields, and `spans`, byte ranges `[start, end]` of the matches
/// in `body`.
pub fn hit(h: &pb::SearchHit) -> Value {
    let mut v = h.message.as_ref().map_or(json!({}), message);
    v["type"] = json!("hit");
    v["spans"] = json!(h.spans.iter().map(|s| [s.start, s.end]).collect::<Vec<_>>());
    v
}

pub fn message(m: &pb::ChatMessage) -> Value {
    let kind = pb::MessageKind::try_from(m.kind).map_or("UNKNOWN", |k| k.as_str_name());
    let mut v = json!({
        "type": "message", "thread_id": m.thread_id, "seq": m.seq, "message_id": m.message_id,
        "from": user(&m.sender), "ts_ms": m.server_ts_ms, "kind": kind, "body": m.body,
        "recalled": m.recalled, "edited_ts_ms": m.edited_ts_ms,
    });
    // EDIT and RECALL name the message they change; SYSTEM says what changed in the group.
    if m.target_message_id != 0 {
        v["target_message_id"] = json!(m.target_message_id);
    }
    // A reply, as it reads now; the reactions, as of `reactions_seq`.
    if m.reply_to != 0 {
        v["reply_to"] = json!(m.reply_to);
    }
    if let Some(q) = &m.quote {
        v["quote"] = json!({
            "message_id": q.message_id, "seq": q.seq, "from": user(&q.sender),
            "excerpt": q.excerpt, "truncated": q.truncated, "recalled": q.recalled,
        });
    }
    if !m.reactions.is_empty() {
        v["reactions"] = m
            .reactions
            .iter()
            .map(|r| json!({"emoji": r.emoji, "count": r.count, "mine": r.mine}))
            .collect();
        v["reactions_seq"] = json!(m.reactions_seq);
    }
    if let Some(c) = &m.group_change {
        v["group_change"] = json!({
            "kind": pb::group_change::Kind::try_from(c.kind).map_or("UNKNOWN", |k| k.as_str_name()),
            "actor": user(&c.actor),
            "subject": user(&c.subject),
            "role": role_name(c.role),
            "name": c.name, "description": c.description, "open": c.open,
        });
    }
    v
}

pub fn ack(kind: &str, a: &pb::SendAck) -> Value {
    json!({
        "type": kind, "thread_id": a.thread_id, "seq": a.seq, "message_id": a.message_id,
        "ts_ms": a.server_ts_ms,
    })
}

pub fn request(r: &pb::FriendRequest) -> Value {
    json!({
        "request_id": r.request_id, "from": user(&r.from), "to": user(&r.to),
        "note": r.note, "state": request_state(r), "thread_id": r.thread_id,
    })
}

pub fn group(g: &pb::Group) -> Value {
    json!({
        "group_id": g.group_id, "thread_id": g.thread_id, "name": g.name,
        "description": g.description, "open": g.open, "owner_id": g.owner_id,
        "member_count": g.member_count, "my_role": role_name(g.my_role), "invited": g.invited,
    })
}

pub fn member(group_id: u64, m: &pb::GroupMember) -> Value {
    json!({
        "type": "member", "group_id": group_id, "user": user(&m.user),
        "role": role_name(m.role), "online": m.online, "joined_ms": m.joined_ms,
    })
}

pub fn thread(t: &pb::Thread) -> Value {
    let name = t
        .peer
        .as_ref()
        .map(|p| p.name.clone())
        .or_else(|| t.group.as_ref().map(|g| g.name.clone()));
    json!({
        "type": "thread", "thread_id": t.thread_id,
        "kind": pb::ThreadKind::try_from(t.kind).map_or("UNKNOWN", |k| k.as_str_name()),
        "name": name, "last_seq": t.last_seq, "read_seq": t.read_seq,
        "unread": t.last_seq.saturating_sub(t.read_seq),
        "last": t.last_message.as_ref().map(|m| m.body.clone()),
    })
}

pub fn state(s: &ConnState) -> Value {
    match s {
        ConnState::Connecting { attempt } => {
            json!({"type": "state", "state": "connecting", "attempt": attempt})
        }
        ConnState::Online { synced } => {
            json!({"type": "state", "state": "online", "synced": synced})
        }
        ConnState::Offline { retry_in, reason } => json!({
            "type": "state", "state": "offline",
            "retry_in_ms": u64::try_from(retry_in.as_millis()).unwrap_or(u64::MAX),
            "reason": reason,
        }),
        ConnState::Stopped { code, reason } => {
            json!({"type": "state", "state": "stopped", "code": code.as_str_name(), "reason": reason})
        }
    }
}

/// A durable user event: `event` names its kind, the rest are its fields.
pub fn event(e: &pb::UserEvent) -> Value {
    use pb::user_event::Kind as K;
    let (event, mut v) = match &e.kind {
        Some(K::FriendRequestReceived(r)) => ("friend_request_received", request(r)),
        Some(K::FriendRequestAnswered(r)) => ("friend_request_answered", request(r)),
        Some(K::FriendRequestCancelled(r)) => ("friend_request_cancelled", request(r)),
        Some(K::FriendRemoved(u)) => ("friend_removed", json!({"user": user(&Some(u.clone()))})),
        Some(K::UserBlocked(u)) => ("user_blocked", json!({"user": user(&Some(u.clone()))})),
        Some(K::UserUnblocked(u)) => ("user_unblocked", json!({"user": user(&Some(u.clone()))})),
        Some(K::GroupInvited(g)) => ("group_invited", group(g)),
        Some(K::GroupJoined(g)) => ("group_joined", group(g)),
        Some(K::GroupLeft(g)) => ("group_left", group(g)),
        Some(K::GroupUpdated(g)) => ("group_updated", group(g)),
        Some(K::ThreadAdded(t)) => (
            "thread_added",
            json!({
                "thread_id": t.thread_id,
                "kind": pb::ThreadKind::try_from(t.kind).map_or("UNKNOWN", |k| k.as_str_name()),
                "peer": user(&t.peer),
                "group": t.group.as_ref().map_or(json!(null), group),
            }),
        ),
        None => ("unknown", json!({})),
    };
    v["type"] = json!("event");
    v["event"] = json!(event);
    v["event_seq"] = json!(e.event_seq);
    v["ts_ms"] = json!(e.ts_ms);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edit_names_its_target_and_a_system_entry_what_changed() {
        let m = pb::ChatMessage {
            thread_id: 4,
            seq: 9,
            kind: pb::MessageKind::Edit as i32,
            target_message_id: 77,
            ..Default::default()
        };
        let v = message(&m);
        assert_eq!(v["kind"], "EDIT");
        assert_eq!(v["target_message_id"], 77);
        let s = pb::ChatMessage {
            kind: pb::MessageKind::System as i32,
            group_change: Some(pb::GroupChange {
                kind: pb::group_change::Kind::RoleChanged as i32,
                role: pb::Role::Admin as i32,
                ..Default::default()
            }),
            ..Default::default()
        };
        let v = message(&s);
        assert_eq!(v["group_change"]["kind"], "ROLE_CHANGED");
        assert_eq!(v["group_change"]["role"], "ADMIN");
        assert!(v.get("target_message_id").is_none());
    }

    #[test]
    fn an_event_without_a_kind_is_unknown_not_an_error() {
        let v = event(&pb::UserEvent {
            event_seq: 3,
            ..Default::default()
        });
        assert_eq!(v["type"], "event");
        assert_eq!(v["event"], "unknown");
        assert_eq!(v["event_seq"], 3);
    }
}
