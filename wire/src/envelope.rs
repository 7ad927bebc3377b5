//! Helpers for building and describing envelopes.

use crate::pb::{Envelope, Error, ErrorCode, envelope::Body};

/// The protobuf field name of a body arm, for logs and error statistics.
pub fn body_name(body: &Body) -> &'static str {
    match body {
        Body::Hello(_) => "hello",
        Body::HelloOk(_) => "hello_ok",
        Body::Ping(_) => "ping",
        Body::Pong(_) => "pong",
        Body::Error(_) => "error",
        Body::Ok(_) => "ok",
        Body::Register(_) => "register",
        Body::Login(_) => "login",
        Body::Resume(_) => "resume",
        Body::AuthOk(_) => "auth_ok",
        Body::Logout(_) => "logout",
        Body::ChangePassword(_) => "change_password",
        Body::GetProfile(_) => "get_profile",
        Body::Profile(_) => "profile",
        Body::SearchUsers(_) => "search_users",
        Body::UserList(_) => "user_list",
        Body::SendFriendRequest(_) => "send_friend_request",
        Body::RespondFriendRequest(_) => "respond_friend_request",
        Body::CancelFriendRequest(_) => "cancel_friend_request",
        Body::RemoveFriend(_) => "remove_friend",
        Body::BlockUser(_) => "block_user",
        Body::UnbanMember(_) => "unban_member",
        Body::ListBans(_) => "list_bans",
        Body::ListDevices(_) => "list_devices",
        Body::DeviceList(_) => "device_list",
        Body::RevokeDevice(_) => "revoke_device",
        Body::UnblockUser(_) => "unblock_user",
        Body::ListBlocked(_) => "list_blocked",
        Body::ListFriends(_) => "list_friends",
        Body::FriendList(_) => "friend_list",
        Body::ListFriendRequests(_) => "list_friend_requests",
        Body::FriendRequestList(_) => "friend_request_list",
        Body::FriendRequest(_) => "friend_request",
        Body::CreateGroup(_) => "create_group",
        Body::JoinGroup(_) => "join_group",
        Body::InviteToGroup(_) => "invite_to_group",
        Body::DeclineGroupInvite(_) => "decline_group_invite",
        Body::LeaveGroup(_) => "leave_group",
        Body::KickMember(_) => "kick_member",
        Body::SetMemberRole(_) => "set_member_role",
        Body::UpdateGroup(_) => "update_group",
        Body::TransferOwnership(_) => "transfer_ownership",
        Body::ListGroups(_) => "list_groups",
        Body::SearchGroups(_) => "search_groups",
        Body::GroupList(_) => "group_list",
        Body::ListGroupMembers(_) => "list_group_members",
        Body::GroupMemberList(_) => "group_member_list",
        Body::Group(_) => "group",
        Body::ListThreads(_) => "list_threads",
        Body::ThreadList(_) => "thread_list",
        Body::GetThread(_) => "get_thread",
        Body::Thread(_) => "thread",
        Body::Send(_) => "send",
        Body::SendAck(_) => "send_ack",
        Body::MessagePush(_) => "message_push",
        Body::SyncThread(_) => "sync_thread",
        Body::History(_) => "history",
        Body::MessagePage(_) => "message_page",
        Body::Recall(_) => "recall",
        Body::Edit(_) => "edit",
        Body::DeliveredUpTo(_) => "delivered_up_to",
        Body::ReadUpTo(_) => "read_up_to",
        Body::ReadReceiptPush(_) => "read_receipt_push",
        Body::Typing(_) => "typing",
        Body::TypingPush(_) => "typing_push",
        Body::PresencePush(_) => "presence_push",
        Body::SyncEvents(_) => "sync_events",
        Body::EventPage(_) => "event_page",
        Body::EventPush(_) => "event_push",
        Body::ResyncPush(_) => "resync_push",
        Body::SearchMessages(_) => "search_messages",
        Body::SearchResults(_) => "search_results",
        Body::React(_) => "react",
        Body::AdminListUsers(_) => "admin_list_users",
        Body::AdminUserList(_) => "admin_user_list",
        Body::AdminGetUser(_) => "admin_get_user",
        Body::AdminUser(_) => "admin_user",
        Body::AdminSetUser(_) => "admin_set_user",
        Body::AdminResetPassword(_) => "admin_reset_password",
        Body::AdminListGroups(_) => "admin_list_groups",
        Body::AdminGroupList(_) => "admin_group_list",
        Body::AdminDeleteGroup(_) => "admin_delete_group",
        Body::AdminTransferGroup(_) => "admin_transfer_group",
        Body::AdminCreateInvite(_) => "admin_create_invite",
        Body::AdminInvite(_) => "admin_invite",
        Body::AdminListInvites(_) => "admin_list_invites",
        Body::AdminInviteList(_) => "admin_invite_list",
        Body::AdminRevokeInvite(_) => "admin_revoke_invite",
        Body::AdminGetStats(_) => "admin_get_stats",
        Body::AdminStats(_) => "admin_stats",
        Body::AdminListAudit(_) => "admin_list_audit",
        Body::AdminAuditPage(_) => "admin_audit_page",
        Body::DeleteAccount(_) => "delete_account",
    }
}

/// True for bodies only a server sends (replies and pushes). A client that sends one gets
/// `UNSUPPORTED` (or nothing, as a notification).
pub fn is_server_body(body: &Body) -> bool {
    matches!(
        body,
        Body::HelloOk(_)
            | Body::Pong(_)
            | Body::Error(_)
            | Body::Ok(_)
            | Body::AuthOk(_)
            | Body::Profile(_)
            | Body::UserList(_)
            | Body::FriendList(_)
            | Body::FriendRequestList(_)
            | Body::FriendRequest(_)
            | Body::GroupList(_)
            | Body::GroupMemberList(_)
            | Body::Group(_)
            | Body::ThreadList(_)
            | Body::Thread(_)
            | Body::SendAck(_)
            | Body::MessagePush(_)
            | Body::MessagePage(_)
            | Body::ReadReceiptPush(_)
            | Body::TypingPush(_)
            | Body::PresencePush(_)
            | Body::EventPage(_)
            | Body::EventPush(_)
            | Body::ResyncPush(_)
            | Body::AdminUserList(_)
            | Body::AdminUser(_)
            | Body::AdminGroupList(_)
            | Body::AdminInvite(_)
            | Body::AdminInviteList(_)
            | Body::AdminStats(_)
            | Body::AdminAuditPage(_)
            | Body::SearchResults(_)
    )
}

impl Envelope {
    /// A request or reply with the given id.
    pub fn new(req_id: u64, body: Body) -> Self {
        Self {
            req_id,
            body: Some(body),
        }
    }

    /// A server push (req_id 0).
    pub fn push(body: Body) -> Self {
        Self::new(0, body)
    }

    /// An `Error` reply to `req_id`.
    pub fn error(req_id: u64, code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(req_id, Body::Error(Error::new(code, message)))
    }

    /// The body's field name, or `"none"`.
    pub fn body_name(&self) -> &'static str {
        self.body.as_ref().map_or("none", body_name)
    }
}

impl Error {
    /// A non-fatal error with no retry hint.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code: code as i32,
            message: message.into(),
            retry_after_ms: 0,
            fatal: false,
        }
    }

    /// Marks the error fatal: the sender closes the connection after it.
    pub fn fatal(mut self) -> Self {
        self.fatal = true;
        self
    }

    /// Adds a retry hint in milliseconds.
    pub fn retry_after(mut self, ms: u32) -> Self {
        self.retry_after_ms = ms;
        self
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let code = ErrorCode::try_from(self.code).map_or("UNKNOWN", |c| c.as_str_name());
        write!(f, "{code}: {}", self.message)
    }
}

impl std::error::Error for Error {}
