//! `friends`, `requests`, `add`, `accept`, `decline`, `unfriend`, `cancel`, `block`, `unblock`
//! and `blocked`.

use serde_json::json;

use super::conn::resume;
use super::fail::Fail;
use super::out::{self, print, typed};

/// Friends, then pending requests (every page), as `friend`, `request_in` and `request_out`.
pub async fn friends(server: &str) -> Result<(), Fail> {
    let (c, _, _) = resume(server, false).await?;
    for f in c.friends().await? {
        print(
            json!({"type": "friend", "user": out::user(&f.user), "online": f.online, "thread_id": f.thread_id}),
        );
    }
    let reqs = c.friend_requests().await?;
    for r in &reqs.incoming {
        print(typed("request_in", out::request(r)));
    }
    for r in &reqs.outgoing {
        print(typed("request_out", out::request(r)));
    }
    c.shutdown().await;
    Ok(())
}

/// Pending requests only, both directions: one `request` line each with its `direction`.
pub async fn requests(server: &str) -> Result<(), Fail> {
    let (c, _, _) = resume(server, false).await?;
    let reqs = c.friend_requests().await?;
    for (direction, list) in [("in", &reqs.incoming), ("out", &reqs.outgoing)] {
        for r in list {
            let mut v = typed("request", out::request(r));
            v["direction"] = json!(direction);
            print(v);
        }
    }
    c.shutdown().await;
    Ok(())
}

pub async fn add(server: &str, name: &str, note: &str) -> Result<(), Fail> {
    let (c, _, _) = resume(server, false).await?;
    let r = c.add_friend(name, note).await?;
    print(typed("friend_request", out::request(&r)));
    c.shutdown().await;
    Ok(())
}

pub async fn respond(server: &str, name: &str, accept: bool) -> Result<(), Fail> {
    let (c, _, _) = resume(server, false).await?;
    let r = c.respond_to(name, accept).await?;
    print(typed("friend_request", out::request(&r)));
    c.shutdown().await;
    Ok(())
}

pub async fn unfriend(server: &str, name: &str) -> Result<(), Fail> {
    let (c, _, _) = resume(server, false).await?;
    let user = c.unfriend(name).await?;
    print(json!({"type": "unfriended", "user": out::user(&Some(user))}));
    c.shutdown().await;
    Ok(())
}

pub async fn cancel(server: &str, name: &str) -> Result<(), Fail> {
    let (c, _, _) = resume(server, false).await?;
    let r = c.cancel_request(name).await?;
    let mut v = typed("friend_request", out::request(&r));
    v["state"] = json!("CANCELLED");
    print(v);
    c.shutdown().await;
    Ok(())
}

/// `block NAME` prints `blocked`, `unblock NAME` prints `unblocked`.
pub async fn block(server: &str, name: &str, block: bool) -> Result<(), Fail> {
    let (c, _, _) = resume(server, false).await?;
    let (user, kind) = if block {
        (c.block(name).await?, "blocked")
    } else {
        (c.unblock(name).await?, "unblocked")
    };
    print(json!({"type": kind, "user": out::user(&Some(user))}));
    c.shutdown().await;
    Ok(())
}

/// One `blocked` line per blocked user, oldest block first.
pub async fn blocked(server: &str) -> Result<(), Fail> {
    let (c, _, _) = resume(server, false).await?;
    for u in c.blocked().await? {
        print(json!({"type": "blocked", "user": out::user(&Some(u))}));
    }
    c.shutdown().await;
    Ok(())
}
