//! `register`, `login`, `logout`, `threads`, `keys` and `devices`.

use super::conn::{client_config, connect, read_password, resume};
use super::fail::Fail;
use super::out::{self, print};
use crate::client::Auth;
use crate::client::paths;

/// `register` (with its invitation code, maybe empty) and `login`: a password session, then
/// the client stops (the token is saved in the shared session file).
pub async fn sign_in(server: &str, name: String, register: Option<String>) -> Result<(), Fail> {
    let password = read_password()?;
    let cfg = client_config(server, Some(&name), true);
    let (auth, kind) = match register {
        Some(invite) => (
            Auth::Register {
                name,
                password,
                invite,
            },
            "registered",
        ),
        None => (Auth::Login { name, password }, "logged_in"),
    };
    let (c, _, user) = connect(cfg, auth, server).await?;
    paths::remember_server(&paths::data_dir(), server);
    print(serde_json::json!({"type": kind, "user": out::user(&Some(user))}));
    c.shutdown().await;
    Ok(())
}

/// Deletes the account after its password; the session file goes with it.
pub async fn delete_account(server: &str) -> Result<(), Fail> {
    let password = read_password()?;
    let (c, _, _) = resume(server, false).await?;
    c.delete_account(&password).await?;
    c.shutdown().await;
    paths::clear_session(&paths::data_dir(), server);
    print(serde_json::json!({"type": "deleted"}));
    Ok(())
}

/// Ends this device's session on the server; every process sharing it ends too.
pub async fn logout(server: &str) -> Result<(), Fail> {
    let (c, _, _) = resume(server, false).await?;
    c.logout().await?;
    c.shutdown().await;
    paths::clear_session(&paths::data_dir(), server);
    print(serde_json::json!({"type": "logged_out"}));
    Ok(())
}

/// Every thread (every page), newest activity first, with unread counts.
pub async fn threads(server: &str) -> Result<(), Fail> {
    let (c, _, _) = resume(server, false).await?;
    for t in c.list_threads().await? {
        print(out::thread(&t));
    }
    c.shutdown().await;
    Ok(())
}

/// The terminal client's key bindings (after config overrides), slash commands and an
/// example config. Plain text, not JSON: it is for people.
pub fn keys() {
    let settings = crate::run::load_settings();
    let mut text = String::from("Key bindings (keys, config name, action):\n");
    text.push_str(&crate::app::keymap::help_text(&settings.keymap));
    for p in &settings.problems {
        text.push_str(&format!("config problem: {p}\n"));
    }
    text.push_str("\nSlash commands:\n");
    for (_, usage) in crate::app::commands::COMMANDS {
        text.push_str(&format!("  {usage}\n"));
    }
    text.push_str(&format!(
        "\nExample config:\n{}",
        crate::app::config::EXAMPLE
    ));
    // A closed pipe (`confab keys | head`) is not an error worth a panic.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
}

/// `devices`: one `device` line per session of the account, oldest first.
pub async fn devices(server: &str) -> Result<(), Fail> {
    let (c, _, _) = resume(server, false).await?;
    for d in c.devices().await? {
        print(serde_json::json!({
            "type": "device",
            "device_id": d.device_id,
            "name": d.name,
            "client": d.client,
            "address": d.address,
            "created_ms": d.created_ms,
            "last_seen_ms": d.last_seen_ms,
            "current": d.current,
        }));
    }
    c.shutdown().await;
    Ok(())
}

/// `devices revoke ID` prints `revoked`.
pub async fn revoke(server: &str, id: u64) -> Result<(), Fail> {
    let (c, _, _) = resume(server, false).await?;
    c.revoke_device(id).await?;
    print(serde_json::json!({"type": "revoked", "device_id": id}));
    c.shutdown().await;
    Ok(())
}
