//! The typed client API: one function per question or action (look up a user, a DM thread, a
//! group by name, join a group by name, answer a friend request, ...), each turning the
//! request/reply pair into a typed result. The terminal client's operations (`run/ops.rs`) and
//! the command line (`cli/`) both use it, so they agree on what a name means. Groups are in
//! `groups.rs`, message actions (server history, edit, recall, read) in `messages.rs`.

use confab_wire::Body;
use confab_wire::pb::{self, ErrorCode};

use super::{Client, ClientError};

/// Why an API call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// The request failed: refused by the server, not answered, or answered with the wrong
    /// body.
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("no user named {0}")]
    NoSuchUser(String),
    /// No group has exactly this name; `candidates` are the names a search found instead.
    #[error("no group named {name}{}", did_you_mean(.candidates))]
    NoSuchGroup {
        name: String,
        candidates: Vec<String>,
    },
    /// There is no conversation with this user: they are not a friend.
    #[error("{0} is not your friend yet")]
    NotFriend(String),
    /// No pending friend request from (or, to cancel, to) this user.
    #[error("no pending request with {0}")]
    NoSuchRequest(String),
    /// The user is not a member of the group.
    #[error("{user} is not a member of {group}")]
    NotAMember { user: String, group: String },
}

impl ApiError {
    /// The server's error code, if the server refused the request.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ApiError::Client(e) => e.code(),
            _ => None,
        }
    }
}

fn did_you_mean(candidates: &[String]) -> String {
    if candidates.is_empty() {
        String::new()
    } else {
        format!(" (found: {})", candidates.join(", "))
    }
}

/// Names compare case-insensitively (the server's rule; both sides are NFC).
fn same_name(a: &str, b: &str) -> bool {
    a.to_lowercase() == b.to_lowercase()
}

/// The reply's `$variant` body, or [`ClientError::Unexpected`] naming what was wanted.
macro_rules! expect_body {
    ($reply:expr, $variant:ident) => {
        match $reply {
            Body::$variant(v) => Ok(v),
            other => Err(ClientError::unexpected(stringify!($variant), &other)),
        }
    };
}

mod admin;
mod groups;
mod messages;

impl Client {
    /// A request whose reply body does not matter beyond not being an error.
    async fn done(&self, body: Body) -> Result<(), ApiError> {
        self.request(body).await?;
        Ok(())
    }

    /// Requests pages (`req` given the last key so far) until one says there are no more.
    async fn every_page<T>(
        &self,
        req: impl Fn(u64) -> Body,
        page: impl Fn(Body) -> Result<(Vec<T>, bool), ClientError>,
        key: impl Fn(&T) -> u64,
    ) -> Result<Vec<T>, ApiError> {
        let mut all: Vec<T> = Vec::new();
        loop {
            let after = all.last().map_or(0, &key);
            let (items, more) = page(self.request(req(after)).await?)?;
            let empty = items.is_empty();
            all.extend(items);
            // An empty page that claims more would never advance.
            if !more || empty {
                return Ok(all);
            }
        }
    }

    /// The user with this name.
    pub async fn user_by_name(&self, name: &str) -> Result<pb::User, ApiError> {
        let reply = self
            .request(Body::GetProfile(pb::GetProfile {
                user_id: 0,
                name: name.into(),
            }))
            .await;
        match reply {
            Ok(body) => expect_body!(body, Profile)?
                .user
                .ok_or_else(|| ApiError::NoSuchUser(name.into())),
            Err(e) if e.code() == Some(ErrorCode::NotFound) => {
                Err(ApiError::NoSuchUser(name.into()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Users whose names match `query`.
    pub async fn search_users(
        &self,
        query: &str,
        limit: u32,
    ) -> Result<Vec<pb::Profile>, ApiError> {
        let reply = self
            .request(Body::SearchUsers(pb::SearchUsers {
                query: query.into(),
                limit,
            }))
            .await?;
        Ok(expect_body!(reply, UserList)?.users)
    }

    /// A thread by id.
    pub async fn thread(&self, thread_id: u64) -> Result<pb::Thread, ApiError> {
        let reply = self
            .request(Body::GetThread(pb::GetThread {
                thread_id,
                ..Default::default()
            }))
            .await?;
        Ok(expect_body!(reply, Thread)?)
    }

    /// The private thread with the user of this name (a friend).
    pub async fn dm_thread(&self, name: &str) -> Result<pb::Thread, ApiError> {
        let user = self.user_by_name(name).await?;
        let reply = self
            .request(Body::GetThread(pb::GetThread {
                user_id: user.user_id,
                ..Default::default()
            }))
            .await;
        match reply {
            Ok(body) => Ok(expect_body!(body, Thread)?),
            Err(e) if e.code() == Some(ErrorCode::NotFound) => {
                Err(ApiError::NotFriend(name.into()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Every thread the caller is in, newest activity first (every page of `ListThreads`).
    pub async fn list_threads(&self) -> Result<Vec<pb::Thread>, ApiError> {
        let mut all: Vec<pb::Thread> = Vec::new();
        loop {
            let before = all.last().map_or(0, |t| t.activity_id);
            let reply = self
                .request(Body::ListThreads(pb::ListThreads {
                    before_activity_id: before,
                    limit: 0,
                }))
                .await?;
            let page = expect_body!(reply, ThreadList)?;
            let empty = page.threads.is_empty();
            all.extend(page.threads);
            if !page.has_more || empty {
                return Ok(all);
            }
        }
    }

    /// All the caller's friends, ordered by user id (every page of `ListFriends`).
    pub async fn friends(&self) -> Result<Vec<pb::Friend>, ApiError> {
        self.every_page(
            |after| {
                Body::ListFriends(pb::ListFriends {
                    after_user_id: after,
                    limit: 0,
                })
            },
            |b| expect_body!(b, FriendList).map(|l| (l.friends, l.has_more)),
            |f| f.user.as_ref().map_or(0, |u| u.user_id),
        )
        .await
    }

    /// All pending friend requests in both directions (every page of `ListFriendRequests`).
    pub async fn friend_requests(&self) -> Result<pb::FriendRequestList, ApiError> {
        let mut all = pb::FriendRequestList::default();
        let mut after = 0;
        loop {
            let req = pb::ListFriendRequests {
                after_request_id: after,
                limit: 0,
            };
            let reply = self.request(Body::ListFriendRequests(req)).await?;
            let page = expect_body!(reply, FriendRequestList)?;
            let last = page
                .incoming
                .iter()
                .chain(&page.outgoing)
                .map(|r| r.request_id)
                .max();
            all.incoming.extend(page.incoming);
            all.outgoing.extend(page.outgoing);
            match last {
                Some(last) if page.has_more && last > after => after = last,
                _ => return Ok(all),
            }
        }
    }

    /// Sends a friend request to the user of this name (accepted at once when they had asked
    /// us: the reply's state says so).
    pub async fn add_friend(&self, name: &str, note: &str) -> Result<pb::FriendRequest, ApiError> {
        let user = self.user_by_name(name).await?;
        self.friend_request(user.user_id, note).await
    }

    /// Sends a friend request to a user by id.
    pub async fn friend_request(
        &self,
        user_id: u64,
        note: &str,
    ) -> Result<pb::FriendRequest, ApiError> {
        let reply = self
            .request(Body::SendFriendRequest(pb::SendFriendRequest {
                user_id,
                note: note.into(),
            }))
            .await?;
        Ok(expect_body!(reply, FriendRequest)?)
    }

    /// Accepts or declines a pending request.
    pub async fn respond(
        &self,
        request_id: u64,
        accept: bool,
    ) -> Result<pb::FriendRequest, ApiError> {
        let reply = self
            .request(Body::RespondFriendRequest(pb::RespondFriendRequest {
                request_id,
                accept,
            }))
            .await?;
        Ok(expect_body!(reply, FriendRequest)?)
    }

    /// Accepts or declines the pending request from the user of this name.
    pub async fn respond_to(
        &self,
        name: &str,
        accept: bool,
    ) -> Result<pb::FriendRequest, ApiError> {
        let pending = self.friend_requests().await?;
        let request_id = pending
            .incoming
            .iter()
            .find(|r| r.from.as_ref().is_some_and(|u| same_name(&u.name, name)))
            .map(|r| r.request_id)
            .ok_or_else(|| ApiError::NoSuchRequest(name.into()))?;
        self.respond(request_id, accept).await
    }

    /// Ends the friendship with the user of this name (both ways).
    pub async fn unfriend(&self, name: &str) -> Result<pb::User, ApiError> {
        let user = self.user_by_name(name).await?;
        self.done(Body::RemoveFriend(pb::RemoveFriend {
            user_id: user.user_id,
        }))
        .await?;
        Ok(user)
    }

    /// Withdraws the pending request the caller sent to the user of this name.
    pub async fn cancel_request(&self, name: &str) -> Result<pb::FriendRequest, ApiError> {
        let pending = self.friend_requests().await?;
        let request = pending
            .outgoing
            .into_iter()
            .find(|r| r.to.as_ref().is_some_and(|u| same_name(&u.name, name)))
            .ok_or_else(|| ApiError::NoSuchRequest(name.into()))?;
        self.done(Body::CancelFriendRequest(pb::CancelFriendRequest {
            request_id: request.request_id,
        }))
        .await?;
        Ok(request)
    }

    /// Ends this device's session on the server.
    pub async fn logout(&self) -> Result<(), ApiError> {
        self.done(Body::Logout(pb::Logout { all_devices: false }))
            .await
    }

    /// Blocks a user by name (protocol 1.4): they can no longer send you friend requests, write
    /// to you or invite you. Returns who was blocked.
    pub async fn block(&self, name: &str) -> Result<pb::User, ApiError> {
        let user = self.user_by_name(name).await?;
        self.done(Body::BlockUser(pb::BlockUser {
            user_id: user.user_id,
        }))
        .await?;
        Ok(user)
    }

    /// Ends a block. Returns who was unblocked.
    pub async fn unblock(&self, name: &str) -> Result<pb::User, ApiError> {
        let user = self.user_by_name(name).await?;
        self.done(Body::UnblockUser(pb::UnblockUser {
            user_id: user.user_id,
        }))
        .await?;
        Ok(user)
    }

    /// Everyone this account blocked, oldest first.
    pub async fn blocked(&self) -> Result<Vec<pb::User>, ApiError> {
        let reply = self.request(Body::ListBlocked(pb::ListBlocked {})).await?;
        let list = expect_body!(reply, UserList)?;
        Ok(list.users.into_iter().filter_map(|p| p.user).collect())
    }

    /// The account's device sessions (protocol 1.4), oldest first.
    pub async fn devices(&self) -> Result<Vec<pb::Device>, ApiError> {
        let reply = self.request(Body::ListDevices(pb::ListDevices {})).await?;
        Ok(expect_body!(reply, DeviceList)?.devices)
    }

    /// Ends another device session of the account at once.
    pub async fn revoke_device(&self, device_id: u64) -> Result<(), ApiError> {
        self.done(Body::RevokeDevice(pb::RevokeDevice { device_id }))
            .await
    }

    /// Deletes the account (protocol 1.5), after the server checked `password`: every session
    /// ends, this one too.
    pub async fn delete_account(&self, password: &str) -> Result<(), ApiError> {
        self.done(Body::DeleteAccount(pb::DeleteAccount {
            password: password.into(),
        }))
        .await
    }

    /// Ends every session of the account, on every device (this one too).
    pub async fn logout_everywhere(&self) -> Result<(), ApiError> {
        self.done(Body::Logout(pb::Logout { all_devices: true }))
            .await
    }

    /// Changes the password. The server signs every other session out and gives this device a
    /// new token, which the core keeps (in memory and in the shared session file) at once.
    pub async fn change_password(&self, old: &str, new: &str) -> Result<pb::AuthOk, ApiError> {
        match self
            .request(Body::ChangePassword(pb::ChangePassword {
                old_password: old.into(),
                new_password: new.into(),
            }))
            .await?
        {
            Body::AuthOk(a) => Ok(a),
            other => Err(ClientError::unexpected("AuthOk", &other).into()),
        }
    }
}
