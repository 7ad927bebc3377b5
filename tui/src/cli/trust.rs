//! `trust`: check a TLS server's certificate fingerprint and record it in known_servers.

use std::io::IsTerminal;
use std::time::Duration;

use super::conn::trust_options;
use super::fail::{AUTH, Fail, OTHER, UNREACHABLE};
use crate::client::known_servers::KnownServers;
use crate::client::tls::{ConnectError, Connector, ServerAddr, TrustOptions};

/// `confab trust`: connects without pins, shows the certificate's fingerprint, and records it
/// once the user confirms. Nothing but the handshake is sent.
pub async fn trust(server: &str, yes: bool) -> Result<(), Fail> {
    let text = if server.contains("://") {
        server.to_owned()
    } else {
        format!("tls://{server}")
    };
    let addr = text
        .parse::<ServerAddr>()
        .map_err(|e| Fail::usage(e.to_string()))?;
    let opts = trust_options();
    let path = opts
        .known_servers
        .clone()
        .unwrap_or_else(crate::client::known_servers::default_path);
    let mut known = KnownServers::load(&path).map_err(|e| Fail(OTHER, e.to_string()))?;
    let probe = Connector::new(TrustOptions {
        trust_fingerprint: None,
        known_servers: None,
        ..opts
    })
    .map_err(|e| Fail(OTHER, e.to_string()))?;
    let authority = addr.authority();
    let presented = match tokio::time::timeout(Duration::from_secs(10), probe.connect(&addr)).await
    {
        Err(_) => return Err(Fail(UNREACHABLE, format!("{authority}: no answer in time"))),
        Ok(Ok(stream)) => {
            let fp = stream.peer_fingerprint();
            println!(
                "{authority} is trusted by a certificate authority (fingerprint {})",
                fp.map_or_else(String::new, |f| f.to_string())
            );
            return Ok(());
        }
        Ok(Err(ConnectError::UnknownServer { fingerprint, .. })) => fingerprint,
        Ok(Err(e @ ConnectError::Connect { .. })) => return Err(Fail(UNREACHABLE, e.to_string())),
        Ok(Err(e)) => return Err(Fail(AUTH, e.to_string())),
    };
    match known.lookup(&authority) {
        Some(fp) if fp == presented => {
            println!("{authority} is already trusted: {presented}");
            return Ok(());
        }
        Some(old) => println!(
            "WARNING: {authority} presented {presented}, but {old} is recorded in {}.\n\
             Replace it only if the operator says the certificate was changed.",
            path.display()
        ),
        None => println!("{authority} presented a certificate with fingerprint\n  {presented}"),
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(Fail::usage(
                "not recorded: confirm on a terminal, or pass --yes once you have compared it",
            ));
        }
        eprint!("Compare it with `confab-server fingerprint` on the server. Trust it? [y/N] ");
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| Fail(OTHER, format!("cannot read the answer: {e}")))?;
        if !matches!(line.trim(), "y" | "Y" | "yes" | "YES") {
            return Err(Fail(OTHER, "not recorded".into()));
        }
    }
    known
        .record(&authority, presented)
        .map_err(|e| Fail(OTHER, e.to_string()))?;
    println!("recorded in {}", path.display());
    Ok(())
}
