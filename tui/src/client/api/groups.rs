//! Group actions by name: find, join, create, leave, invite, kick, roles, rename, transfer,
//! members.

use confab_wire::Body;
use confab_wire::pb;

use super::{ApiError, same_name};
use crate::client::{Client, ClientError};

impl Client {
    /// All the caller's groups and pending invitations (every page of `ListGroups`).
    pub async fn groups(&self) -> Result<Vec<pb::Group>, ApiError> {
        self.every_page(
            |after| {
                Body::ListGroups(pb::ListGroups {
                    after_group_id: after,
                    limit: 0,
                })
            },
            |b| expect_body!(b, GroupList).map(|l| (l.groups, l.has_more)),
            |g| g.group_id,
        )
        .await
    }

    /// One of the caller's groups, by exact name; otherwise the caller's groups whose names
    /// contain it are the candidates.
    pub async fn my_group(&self, name: &str) -> Result<pb::Group, ApiError> {
        let groups = self.groups().await?;
        let want = name.to_lowercase();
        pick_group(name, groups, |g| g.name.to_lowercase().contains(&want))
    }

    /// An open group found by search, by exact name; the search's other hits are the
    /// candidates (never joined in its place).
    pub async fn find_group(&self, name: &str) -> Result<pb::Group, ApiError> {
        let reply = self
            .request(Body::SearchGroups(pb::SearchGroups {
                query: name.into(),
                limit: 0,
            }))
            .await?;
        pick_group(name, expect_body!(reply, GroupList)?.groups, |_| true)
    }

    /// Joins the group with exactly this name: one this account is invited to (closed groups
    /// are not found by search), else an open one found by search.
    pub async fn join_group_by_name(&self, name: &str) -> Result<pb::Group, ApiError> {
        let invited = self
            .groups()
            .await?
            .into_iter()
            .find(|g| g.invited && same_name(&g.name, name));
        let found = match invited {
            Some(g) => g,
            None => self.find_group(name).await?,
        };
        self.join_group(found.group_id).await
    }

    /// Joins an open group (or accepts an invitation) by id.
    pub async fn join_group(&self, group_id: u64) -> Result<pb::Group, ApiError> {
        let reply = self
            .request(Body::JoinGroup(pb::JoinGroup { group_id }))
            .await?;
        Ok(expect_body!(reply, Group)?)
    }

    /// Creates an open group.
    pub async fn create_group(&self, name: &str) -> Result<pb::Group, ApiError> {
        self.create_group_with(name, true).await
    }

    /// Creates a group, open (anyone may join) or closed (by invitation).
    pub async fn create_group_with(&self, name: &str, open: bool) -> Result<pb::Group, ApiError> {
        let reply = self
            .request(Body::CreateGroup(pb::CreateGroup {
                name: name.into(),
                description: String::new(),
                open,
            }))
            .await?;
        Ok(expect_body!(reply, Group)?)
    }

    /// Turns down an invitation to the group named `name` (exactly, case aside).
    pub async fn decline_invite(&self, name: &str) -> Result<pb::Group, ApiError> {
        let invited: Vec<pb::Group> = self
            .groups()
            .await?
            .into_iter()
            .filter(|g| g.invited)
            .collect();
        let g = pick_group(name, invited, |_| true)?;
        self.done(Body::DeclineGroupInvite(pb::DeclineGroupInvite {
            group_id: g.group_id,
        }))
        .await?;
        Ok(g)
    }

    pub async fn leave_group(&self, group_id: u64) -> Result<(), ApiError> {
        self.done(Body::LeaveGroup(pb::LeaveGroup { group_id }))
            .await
    }

    pub async fn invite(&self, group_id: u64, user_id: u64) -> Result<(), ApiError> {
        self.done(Body::InviteToGroup(pb::InviteToGroup { group_id, user_id }))
            .await
    }

    pub async fn kick(&self, group_id: u64, user_id: u64) -> Result<(), ApiError> {
        self.done(Body::KickMember(pb::KickMember {
            group_id,
            user_id,
            ban: false,
        }))
        .await
    }

    /// Removes a member (if they are one) and bars them from the group (protocol 1.4).
    pub async fn ban(&self, group_id: u64, user_id: u64) -> Result<(), ApiError> {
        self.done(Body::KickMember(pb::KickMember {
            group_id,
            user_id,
            ban: true,
        }))
        .await
    }

    /// Lifts a ban.
    pub async fn unban(&self, group_id: u64, user_id: u64) -> Result<(), ApiError> {
        self.done(Body::UnbanMember(pb::UnbanMember { group_id, user_id }))
            .await
    }

    pub async fn set_role(
        &self,
        group_id: u64,
        user_id: u64,
        role: pb::Role,
    ) -> Result<(), ApiError> {
        self.done(Body::SetMemberRole(pb::SetMemberRole {
            group_id,
            user_id,
            role: role as i32,
        }))
        .await
    }

    /// Every member of a group, ordered by user id (every page of `ListGroupMembers`).
    pub async fn members(&self, group_id: u64) -> Result<Vec<pb::GroupMember>, ApiError> {
        self.every_page(
            |after| {
                Body::ListGroupMembers(pb::ListGroupMembers {
                    group_id,
                    after_user_id: after,
                    limit: 0,
                })
            },
            |b| expect_body!(b, GroupMemberList).map(|l| (l.members, l.has_more)),
            |m| m.user.as_ref().map_or(0, |u| u.user_id),
        )
        .await
    }

    /// The member of this name in a group.
    pub async fn member(&self, group: &pb::Group, name: &str) -> Result<pb::User, ApiError> {
        self.members(group.group_id)
            .await?
            .into_iter()
            .filter_map(|m| m.user)
            .find(|u| same_name(&u.name, name))
            .ok_or_else(|| ApiError::NotAMember {
                user: name.into(),
                group: group.name.clone(),
            })
    }

    /// Renames a group (owner or admin).
    pub async fn rename_group(&self, group_id: u64, name: &str) -> Result<pb::Group, ApiError> {
        self.update_group(pb::UpdateGroup {
            group_id,
            name: Some(name.into()),
            ..Default::default()
        })
        .await
    }

    /// Changes a group's name, description (topic) or openness, whichever are set (owner or
    /// admin).
    pub async fn update_group(&self, update: pb::UpdateGroup) -> Result<pb::Group, ApiError> {
        let reply = self.request(Body::UpdateGroup(update)).await?;
        Ok(expect_body!(reply, Group)?)
    }

    /// Hands the group to another member (owner only; the old owner becomes admin).
    pub async fn transfer(&self, group_id: u64, user_id: u64) -> Result<(), ApiError> {
        self.done(Body::TransferOwnership(pb::TransferOwnership {
            group_id,
            user_id,
        }))
        .await
    }
}

/// The group named exactly `name`, or [`ApiError::NoSuchGroup`] with the names of the groups
/// `candidate` keeps.
fn pick_group(
    name: &str,
    groups: Vec<pb::Group>,
    candidate: impl Fn(&pb::Group) -> bool,
) -> Result<pb::Group, ApiError> {
    let (exact, others): (Vec<_>, Vec<_>) =
        groups.into_iter().partition(|g| same_name(&g.name, name));
    exact
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::NoSuchGroup {
            name: name.into(),
            candidates: others
                .into_iter()
                .filter(candidate)
                .map(|g| g.name)
                .collect(),
        })
}
