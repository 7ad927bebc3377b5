//! A server admin's requests (protocol 1.5): the terminal client's `/admin`. The operator's
//! full tool is `confab-server admin`.

use confab_wire::Body;
use confab_wire::pb;

use super::ApiError;
use crate::client::{Client, ClientError};

impl Client {
    /// Deactivates, reactivates, promotes... the user of that name.
    pub async fn admin_set_user(
        &self,
        name: &str,
        action: pb::AdminUserAction,
    ) -> Result<(), ApiError> {
        self.done(Body::AdminSetUser(pb::AdminSetUser {
            name: name.into(),
            action: action as i32,
        }))
        .await
    }

    /// A new invitation code for `uses` registrations, never expiring.
    pub async fn admin_invite(&self, uses: u32) -> Result<pb::AdminInvite, ApiError> {
        let reply = self
            .request(Body::AdminCreateInvite(pb::AdminCreateInvite {
                uses,
                expires_in_ms: 0,
                note: "from the terminal client".into(),
            }))
            .await?;
        Ok(expect_body!(reply, AdminInvite)?)
    }

    pub async fn admin_stats(&self) -> Result<pb::AdminStats, ApiError> {
        let reply = self
            .request(Body::AdminGetStats(pb::AdminGetStats {}))
            .await?;
        Ok(expect_body!(reply, AdminStats)?)
    }
}
