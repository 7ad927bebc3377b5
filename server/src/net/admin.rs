//! The operator's admin socket: a Unix socket, mode 0600, in the server's data directory
//! (never TCP). Whoever can open it is the console: its connections speak the same
//! frames as any client, start authenticated as the console, and run Admin requests only.
//! `confab-server admin` uses it so that changes go through the running server (its single
//! writer, its hub: a deactivated user is logged out at once).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

use super::connection;
use super::stream::Stream;
use crate::service::Service;
use crate::store::Backend;

/// The socket's file name in the data directory.
pub const SOCKET_NAME: &str = "admin.sock";

/// Admin connections' ids start here, apart from the TCP ones.
const FIRST_CONN_ID: u64 = 1 << 62;

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_NAME)
}

/// Binds the socket at `path`, replacing a stale one (the store's lock already ensures no other
/// server uses this directory; nodes on MySQL each have their own), readable and writable by
/// its owner only.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    // The directory is 0700 already; the socket itself is 0600 too, in case it is not.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serves admin connections until `shutdown`, then removes the socket file.
pub async fn serve<B: Backend>(
    listener: UnixListener,
    path: PathBuf,
    svc: Arc<Service<B>>,
    shutdown: CancellationToken,
) {
    let tracker = TaskTracker::new();
    let next_id = AtomicU64::new(FIRST_CONN_ID);
    let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                warn!(error = %e, "admin socket accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let conn_id = next_id.fetch_add(1, Ordering::Relaxed);
        let stream = Stream::Unix(stream, tokio::time::Instant::now());
        let svc = svc.clone();
        let token = shutdown.child_token();
        tracker.spawn(connection::serve(svc, stream, peer, conn_id, token, true));
    }
    drop(listener);
    let _ = std::fs::remove_file(&path);
    tracker.close();
    tracker.wait().await;
}
