//! The operator's HTTP listener (`--metrics-listen`): `GET /metrics` (Prometheus text),
//! `/healthz` (the process answers) and `/readyz` (this node should get new connections).
//!
//! HTTP/1.1 only, GET only, no request bodies read: it is scraped by Prometheus and probed by
//! a balancer, not browsed. It keeps serving while the node drains, so `/readyz` can say so.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

/// Answers whether the node is ready: `Err(reason)` is sent with a 503.
pub type ReadyCheck = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// How long a probe may take before the node counts as not ready (a stuck store writer).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// A scrape or probe connection idle this long is closed.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Histogram samples are folded into their buckets this often even with no scrape, so
/// memory stays flat when nobody reads `/metrics`.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Binds `addr` (before the server is reported ready, so a bad address fails the start).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves the endpoints on `listener` for as long as the runtime lives.
pub async fn serve(listener: TcpListener, handle: PrometheusHandle, ready: ReadyCheck) {
    info!(addr = ?listener.local_addr().ok(), "metrics and health checks");
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP_EVERY);
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                warn!(error = %e, "metrics listener: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (handle, ready) = (handle.clone(), ready.clone());
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let (handle, ready) = (handle.clone(), ready.clone());
                async move { Ok::<_, Infallible>(answer(req, &handle, &ready).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(tcp), svc);
            if let Err(e) = conn.await {
                debug!(%peer, error = %e, "metrics connection");
            }
        });
    }
}

async fn answer(
    req: Request<Incoming>,
    handle: &PrometheusHandle,
    ready: &ReadyCheck,
) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into());
    }
    match req.uri().path() {
        "/metrics" => {
            let body = super::render(handle);
            let mut r = text(StatusCode::OK, body);
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" => match tokio::time::timeout(PROBE_TIMEOUT, ready()).await {
            Ok(Ok(())) => text(StatusCode::OK, "ready\n".into()),
            Ok(Err(why)) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {why}\n"),
            ),
            Err(_) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: the check timed out\n".into(),
            ),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: /metrics, /healthz, /readyz\n".into(),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r
}
