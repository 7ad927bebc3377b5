//! Which thread a command means: `--to NAME` (a friend), `--group NAME`, or `--thread T` (a
//! thread id, or a friend's or group's name).

use confab_wire::pb::ErrorCode;

use super::fail::{Fail, NOT_FOUND};
use crate::client::{ApiError, Client};

#[derive(clap::Args, Debug, Clone, Default)]
#[group(id = "target", multiple = false)]
pub struct Target {
    /// A friend's name: your private conversation.
    #[arg(long)]
    pub to: Option<String>,
    /// One of your groups, by name.
    #[arg(long)]
    pub group: Option<String>,
    /// A thread id (as JSON lines print it), or a friend's or group's name.
    #[arg(long)]
    pub thread: Option<String>,
}

impl Target {
    pub fn given(&self) -> bool {
        self.to.is_some() || self.group.is_some() || self.thread.is_some()
    }

    /// The thread id, asking the server.
    pub async fn resolve(&self, c: &Client) -> Result<u64, Fail> {
        if let Some(name) = &self.to {
            return Ok(c.dm_thread(name).await?.thread_id);
        }
        if let Some(name) = &self.group {
            return Ok(c.my_group(name).await?.thread_id);
        }
        let Some(t) = &self.thread else {
            return Err(Fail::usage("give --to NAME, --group NAME or --thread T"));
        };
        if let Ok(id) = t.parse::<u64>() {
            match c.thread(id).await {
                Ok(thread) => return Ok(thread.thread_id),
                // Not a thread of ours: the digits may be a name.
                Err(e) if matches!(e.code(), Some(ErrorCode::NotFound | ErrorCode::Forbidden)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        match c.dm_thread(t).await {
            Ok(thread) => return Ok(thread.thread_id),
            Err(ApiError::NoSuchUser(_) | ApiError::NotFriend(_)) => {}
            Err(e) => return Err(e.into()),
        }
        match c.my_group(t).await {
            Ok(g) => Ok(g.thread_id),
            Err(ApiError::NoSuchGroup { .. }) => Err(Fail(
                NOT_FOUND,
                format!("no thread, friend or group of yours is called {t}"),
            )),
            Err(e) => Err(e.into()),
        }
    }
}
