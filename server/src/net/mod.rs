//! The TCP side: the accept loop and the connection tasks (each reads its PROXY header, if
//! configured, then runs its TLS handshake, if any, then serves frames).

pub mod admin;
pub mod connection;
pub mod proxy;
pub mod stream;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use confab_wire::Frame;
use confab_wire::pb::ErrorCode;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use self::stream::Stream;

use crate::service::{Service, err, error_reply};
use crate::store::Backend;

/// Accepts connections until `shutdown` is cancelled, then waits (up to the grace period) for
/// the connections to say goodbye. With `tls`, every connection is TLS.
pub async fn serve<B: Backend>(
    listener: TcpListener,
    svc: Arc<Service<B>>,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
) {
    let limit = Arc::new(Semaphore::new(svc.cfg.max_connections));
    let tracker = TaskTracker::new();
    let next_id = AtomicU64::new(1);
    let full = error_reply(
        0,
        err(ErrorCode::Unavailable, "the server is full")
            .retry_after(5000)
            .fatal(),
    );
    let full = Frame::encode(&full, 1024).ok();
    info!(addr = ?listener.local_addr().ok(), max_connections = svc.cfg.max_connections, tls = tls.is_some(), "accepting connections");
    let mut backoff_ms = 1;
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => {
                backoff_ms = 1;
                a
            }
            Err(e) => {
                // Usually out of descriptors: wait, rather than spin.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(backoff_ms)).await;
                backoff_ms = (backoff_ms * 2).min(1000);
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            // A TLS client could not read a plain frame, and a handshake is too dear to spend
            // on a refusal: it just sees the connection close.
            if let (Some(f), None) = (&full, &tls) {
                let _ = stream.try_write(f.as_bytes());
            }
            crate::metrics::accepted("full");
            continue;
        };
        let conn_id = next_id.fetch_add(1, Ordering::Relaxed);
        let svc = svc.clone();
        let tls = tls.clone();
        let token = shutdown.child_token();
        tracker.spawn(async move {
            let _open = crate::metrics::connection_open();
            if let Some(stream) = open(&svc, stream, peer, tls).await {
                let (stream, peer) = stream;
                connection::serve(svc, stream, peer, conn_id, token, false).await;
            }
            drop(permit);
        });
    }
    // Stop accepting at once: new clients are refused while the others say goodbye.
    drop(listener);
    tracker.close();
    if tokio::time::timeout(svc.cfg.shutdown_grace, tracker.wait())
        .await
        .is_err()
    {
        warn!(
            open = tracker.len(),
            "connections still open at the end of the grace period"
        );
    }
    svc.flush_delivered().await;
    svc.close_store();
}

/// The connection's own first steps, all within the Hello timeout: the PROXY header (when
/// configured), then the TLS handshake (when configured). `None` when either fails: that is
/// logged at debug only, since anyone can connect and fail.
async fn open<B: Backend>(
    svc: &Service<B>,
    mut tcp: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    tls: Option<TlsAcceptor>,
) -> Option<(Stream, std::net::SocketAddr)> {
    let accepted = tokio::time::Instant::now();
    let deadline = accepted + svc.cfg.hello_timeout;
    let peer = if svc.cfg.proxy_protocol {
        match proxy::read_header(&mut tcp, peer, stream::remaining(deadline)).await {
            Ok(client) => client,
            Err(e) => {
                // Not from our proxy: say nothing, the peer does not speak confab yet.
                debug!(%peer, error = %e, "connection refused: PROXY header");
                crate::metrics::accepted("proxy_header");
                return None;
            }
        }
    } else {
        peer
    };
    let Some(acceptor) = tls else {
        crate::metrics::accepted("served");
        return Some((Stream::plain(tcp, accepted), peer));
    };
    match Stream::tls(tcp, &acceptor, accepted, deadline).await {
        Ok(stream) => {
            crate::metrics::accepted("served");
            Some((stream, peer))
        }
        Err(e) => {
            debug!(%peer, error = %e, "connection refused: TLS");
            crate::metrics::accepted("tls");
            None
        }
    }
}
