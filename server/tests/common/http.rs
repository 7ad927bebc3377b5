//! A real HTTP client for the metrics endpoint (hyper's), and a reader of Prometheus text.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use tokio::net::TcpStream;

/// `GET path` over HTTP/1.1 with hyper's client: (status, body).
pub async fn get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let io = hyper_util::rt::TokioIo::new(tcp);
    let (mut send, conn) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    let res = send.send_request(req).await.map_err(|e| e.to_string())?;
    let status = res.status().as_u16();
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// The value of the sample `name` whose labels include every pair of `labels` (summed over
/// the samples that match, 0 when none does), from Prometheus text.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut total = 0.0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (metric, rest) = match series.split_once('{') {
            Some((m, rest)) => (m, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if metric != name {
            continue;
        }
        let has = |k: &str, v: &str| {
            rest.split(',')
                .any(|kv| kv.split_once('=') == Some((k, &format!("\"{v}\""))))
        };
        if labels.iter().all(|(k, v)| has(k, v)) {
            total += value
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("bad sample {line}"));
        }
    }
    total
}
