//! PROXY protocol (v1 text and v2 binary) in front of the first frame, so a node behind nginx
//! or HAProxy sees the client's real address (the per-IP login limit depends on it).
//!
//! The header is peeked, parsed with `ppp`, and only its own bytes are consumed: whatever the
//! client sent after it stays in the socket for the connection task.

use std::net::SocketAddr;
use std::time::Duration;

use ppp::{HeaderResult, PartialResult, v1, v2};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Longest header accepted: a v1 line is at most 107 bytes; v2 from nginx or HAProxy carries
/// the addresses and a few TLVs.
const MAX_HEADER: usize = 1024;

/// Why a connection was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("no PROXY header in time")]
    Timeout,
    #[error("invalid PROXY header: {0}")]
    Invalid(String),
    #[error("connection closed before the PROXY header ended")]
    Closed,
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
}

/// What a complete header says: how many bytes it took, and the client's address (`None` for
/// a proxy's own health check or an unknown family: then the socket's peer is used).
fn parse(buf: &[u8]) -> Result<Option<(usize, Option<SocketAddr>)>, ProxyError> {
    let res = HeaderResult::parse(buf);
    if res.is_incomplete() {
        return Ok(None);
    }
    match res {
        HeaderResult::V1(Ok(h)) => {
            let addr = match h.addresses {
                v1::Addresses::Tcp4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
                v1::Addresses::Tcp6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
                v1::Addresses::Unknown => None,
            };
            Ok(Some((h.header.len(), addr)))
        }
        HeaderResult::V2(Ok(h)) => {
            let addr = match (h.command, h.addresses) {
                (v2::Command::Proxy, v2::Addresses::IPv4(a)) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                (v2::Command::Proxy, v2::Addresses::IPv6(a)) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                _ => None,
            };
            Ok(Some((h.len(), addr)))
        }
        HeaderResult::V1(Err(e)) => Err(ProxyError::Invalid(e.to_string())),
        HeaderResult::V2(Err(e)) => Err(ProxyError::Invalid(e.to_string())),
    }
}

/// Reads the PROXY header at the start of `stream` and returns the client's address (or
/// `peer` when the header names none). Refuses anything that is not a valid header.
pub async fn read_header(
    stream: &mut TcpStream,
    peer: SocketAddr,
    timeout: Duration,
) -> Result<SocketAddr, ProxyError> {
    tokio::time::timeout(timeout, async {
        let mut buf = vec![0u8; MAX_HEADER];
        let mut seen = 0;
        loop {
            let n = stream.peek(&mut buf).await?;
            if n == 0 {
                return Err(ProxyError::Closed);
            }
            if let Some((len, addr)) = parse(&buf[..n])? {
                let mut header = vec![0u8; len];
                stream.read_exact(&mut header).await?;
                return Ok(addr.unwrap_or(peer));
            }
            if n >= MAX_HEADER {
                return Err(ProxyError::Invalid("header too long".into()));
            }
            if n == seen {
                // Peek returns at once while unread bytes wait: give the rest time to arrive.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            seen = n;
        }
    })
    .await
    .map_err(|_| ProxyError::Timeout)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_v2_and_garbage() {
        let v1 = b"PROXY TCP4 203.0.113.7 192.0.2.1 51000 7000\r\nrest";
        let (len, addr) = parse(v1).ok().flatten().unwrap_or_default();
        assert_eq!(len, v1.len() - 4);
        assert_eq!(
            addr,
            Some(
                "203.0.113.7:51000"
                    .parse()
                    .unwrap_or_else(|_| unreachable!())
            )
        );
        assert!(matches!(parse(b"PROXY TCP4 203.0.113.7 19"), Ok(None)));
        assert!(parse(b"GET / HTTP/1.1\r\n\r\n").is_err());
        assert!(parse(b"\0\0\0\x05hello").is_err());
        // v2: signature, PROXY over TCP/IPv4, 12 address bytes; LOCAL (a health check) names
        // no client.
        let mut v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
        v2.extend_from_slice(&[198, 51, 100, 4, 127, 0, 0, 1, 0x1f, 0x90, 0x1b, 0x58]);
        let whole = v2.len();
        v2.extend_from_slice(b"\0\0\0\x02");
        assert_eq!(
            parse(&v2).ok().flatten(),
            Some((whole, Some(SocketAddr::from(([198, 51, 100, 4], 8080)))))
        );
        assert!(matches!(parse(&v2[..10]), Ok(None)));
        let mut local = v2[..whole].to_vec();
        local[12] = 0x20;
        assert_eq!(parse(&local).ok().flatten(), Some((whole, None)));
        let unknown = b"PROXY UNKNOWN\r\n";
        assert_eq!(parse(unknown).ok().flatten(), Some((unknown.len(), None)));
    }
}
