//! Operations in flight, so a request to a slow or frozen server shows that it is waiting
//! (`adding someone… 4s` on the status line) until its result, or its timeout, comes back.
//! Every `Cmd::Op` gets exactly one `Done` (the run loop answers one even without a
//! connection), so a count is exact; which label is shown is the oldest still waiting.

use std::collections::VecDeque;

use super::msg::{Cmd, Op};
use super::state::State;

/// The operations sent and not answered yet: (what the user asked for, when), `None` for
/// background loads the user did not ask for.
#[derive(Debug, Clone, Default)]
pub struct Busy(VecDeque<(Option<String>, i64)>);

fn label(op: &Op) -> Option<String> {
    Some(match op {
        Op::LoadFriends | Op::LoadRequests | Op::Members(_) | Op::LoadBlocked | Op::LoadDevices => {
            return None;
        }
        Op::RevokeDevice(_, name) => format!("signing {name} out"),
        Op::Block(name, true) => format!("blocking {name}"),
        Op::Block(name, false) => format!("unblocking {name}"),
        Op::SearchUsers(q) => format!("searching for {q}"),
        Op::AddFriend(name, _) => format!("adding {name}"),
        Op::Unfriend(name) => format!("removing {name} from your friends"),
        Op::CancelRequest(name) => format!("taking back the request to {name}"),
        Op::ChangePassword { .. } => "changing your password".into(),
        Op::LogoutEverywhere => "logging out everywhere".into(),
        Op::Respond { accept: true, .. } => "accepting".into(),
        Op::Respond { accept: false, .. } => "declining".into(),
        Op::CreateGroup(name, _) => format!("creating {name}"),
        Op::UpdateGroup(_) => "changing the group".into(),
        Op::Transfer(_, name) => format!("handing the group to {name}"),
        Op::DeclineInvite(name) => format!("declining the invitation to {name}"),
        Op::JoinGroup(name) => format!("joining {name}"),
        Op::LeaveGroup(_) => "leaving the group".into(),
        Op::Invite(_, name) => format!("inviting {name}"),
        Op::Kick(_, _, name) => format!("removing {name}"),
        Op::Ban(_, name, true) => format!("banning {name}"),
        Op::Ban(_, name, false) => format!("lifting the ban on {name}"),
        Op::SetRole(_, _, name, _) => format!("changing {name}'s role"),
        Op::OpenDm(name, _) => format!("opening {name}"),
        Op::Edit(..) => "editing your message".into(),
        Op::Recall(..) => "recalling your message".into(),
        Op::React { emoji, .. } => format!("reacting {emoji}"),
        Op::Logout => "logging out".into(),
        Op::DeleteAccount(_) => "deleting your account".into(),
        Op::Admin(_) => "asking the server".into(),
        Op::SearchAll { query, .. } | Op::SearchThread { query, .. } => {
            format!("searching for {query}")
        }
    })
}

/// A load the client makes by itself (no waiting line, no error when it cannot be sent).
pub fn is_background(op: &Op) -> bool {
    label(op).is_none()
}

/// Records the operations among `cmds`.
pub(super) fn sent(s: &mut State, cmds: &[Cmd]) {
    for c in cmds {
        if let Cmd::Op(op) = c {
            s.busy.0.push_back((label(op), s.now_ms));
        }
    }
}

/// One operation answered.
pub(super) fn done(s: &mut State) {
    s.busy.0.pop_front();
}

/// What the status line shows while the user waits: `adding bob… 3s`.
pub fn waiting(s: &State) -> Option<String> {
    let (what, since) = s
        .busy
        .0
        .iter()
        .find_map(|(l, t)| l.as_ref().map(|l| (l, *t)))?;
    let secs = (s.now_ms - since).max(0) / 1000;
    Some(if secs > 0 {
        format!("{what}… {secs}s")
    } else {
        format!("{what}…")
    })
}
