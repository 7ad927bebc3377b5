//! The audit log: every admin and moderation action, written in the transaction of the action
//! itself, so a change and its record commit together or not at all.

use confab_wire::pb;

use crate::ids::now_ms;
use crate::params;
use crate::store::{StoreResult, Tx};

/// Who acted: a user, or the operator's admin socket (id 0, "console").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub id: u64,
    pub name: String,
}

impl Actor {
    pub fn console() -> Self {
        Actor {
            id: 0,
            name: "console".into(),
        }
    }

    pub fn user(u: &pb::User) -> Self {
        Actor {
            id: u.user_id,
            name: u.name.clone(),
        }
    }
}

/// Longest text kept per column (the MySQL columns' sizes, in characters).
fn cut(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Records one action.
pub async fn record<T: Tx>(
    tx: &mut T,
    actor: &Actor,
    action: &str,
    target: &str,
    detail: &str,
) -> StoreResult<()> {
    tx.exec(
        "INSERT INTO audit_log (at_ms, actor_id, actor, action, target, detail) VALUES (?, ?, ?, ?, ?, ?)",
        params![
            now_ms(),
            actor.id,
            &cut(&actor.name, 64),
            &cut(action, 64),
            &cut(target, 255),
            &cut(detail, 1000)
        ],
    )
    .await?;
    Ok(())
}

/// A page of the log, newest first, before `before` (0: from the newest).
pub async fn list<T: Tx>(
    tx: &mut T,
    before: u64,
    limit: u32,
) -> StoreResult<(Vec<pb::AuditEntry>, bool)> {
    let before = if before == 0 {
        i64::MAX
    } else {
        super::clamp_i64(before)
    };
    let rows = tx
        .query(
            "SELECT id, at_ms, actor, action, target, detail FROM audit_log WHERE id < ? \
             ORDER BY id DESC LIMIT ?",
            params![before, i64::from(limit) + 1],
        )
        .await?;
    let has_more = rows.len() > limit as usize;
    let entries = rows
        .iter()
        .take(limit as usize)
        .map(|r| {
            Ok(pb::AuditEntry {
                id: r.u64(0)?,
                at_ms: r.i64(1)?,
                actor: r.text(2)?,
                action: r.text(3)?,
                target: r.text(4)?,
                detail: r.text(5)?,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    Ok((entries, has_more))
}
