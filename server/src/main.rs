//! `confab-server`: runs the chat server until SIGINT or SIGTERM; SIGHUP reloads the TLS
//! certificate and key. `confab-server fingerprint` prints the certificate's fingerprint;
//! `confab-server admin ...` administers the store (server/src/admin/).

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use confab_server::config::{Command, LogFormat, Settings};
use confab_server::tls::Tls;
use tracing::{info, warn};
use tracing_subscriber::EnvFilter;

// glibc's malloc keeps each thread's freed argon2 memory (19 MiB per hash) in per-thread
// arenas, hundreds of MiB after a burst of logins; mimalloc gives it back and is faster on
// the many small allocations of the request path.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut settings = Settings::parse();
    // CONFAB_DATA_DIR used to name the server's store too; it is the client's data directory
    // now. Still honoured for one release, with a warning once logging is up.
    let deprecated_dir = match (&settings.data_dir, std::env::var_os("CONFAB_DATA_DIR")) {
        (None, Some(dir)) => Some(dir),
        _ => None,
    };
    if let Some(dir) = &deprecated_dir {
        settings.data_dir = Some(dir.into());
    }
    let command = settings.command.take();
    let cfg = settings.resolve()?;
    match command {
        Some(Command::Fingerprint) => {
            println!("{}", confab_server::tls::configured_fingerprint(&cfg)?);
            return Ok(());
        }
        Some(Command::Admin(args)) => {
            // The tool's own output is on stdout; only trouble is logged.
            let filter =
                EnvFilter::try_from_env("CONFAB_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .init();
            if let Err(confab_server::admin::Failed(code, msg)) =
                confab_server::admin::run(cfg, args).await
            {
                eprintln!("confab-server admin: {msg}");
                std::process::exit(i32::from(code));
            }
            return Ok(());
        }
        None => {}
    }
    let filter = EnvFilter::try_from_env("CONFAB_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    match cfg.log_format {
        // Colours only for a terminal: a log piped to a file or `tee` stays plain text.
        LogFormat::Human => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init(),
    }
    if let Some(dir) = &deprecated_dir {
        warn!(
            data_dir = %std::path::Path::new(dir).display(),
            "CONFAB_DATA_DIR names the client's data directory; set CONFAB_SERVER_DATA_DIR (or --data-dir) for the server's store (read for now, not in the next release)"
        );
    }
    // Use the whole open-file allowance: each connection is a descriptor.
    if let Ok(n) = rlimit::increase_nofile_limit(u64::MAX) {
        info!(open_files = n, "open-file limit");
    }
    let mut cfg = cfg;
    if std::env::var_os("CONFAB_MAX_CONNECTIONS").is_none() {
        cfg.max_connections = cfg
            .max_connections
            .max(confab_server::config::default_max_connections());
    }
    let grace = cfg.shutdown_grace;
    let running = confab_server::start(cfg)
        .await
        .context("starting confab-server")?;
    info!(addr = %running.addr, tls = running.tls.is_some(), "confab-server ready");
    if let Some(tls) = running.tls.clone() {
        tokio::spawn(reload_on_hangup(tls));
    }
    wait_for_signal().await;
    info!("shutting down");
    running.shutdown.cancel();
    if tokio::time::timeout(grace, running.task).await.is_err() {
        info!("shutdown grace period over");
    }
    // Our routes stop counting at once instead of when the node key expires.
    running.bus.close().await;
    // Dropping the service closes the write queue; the writer commits what it holds first.
    drop(running.service);
    Ok(())
}

/// Reloads the certificate and key on every SIGHUP; a failed reload keeps the old pair.
async fn reload_on_hangup(tls: Arc<Tls>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "cannot watch SIGHUP: TLS reload by signal is off");
                return;
            }
        };
        while hup.recv().await.is_some() {
            match tls.reload() {
                Ok(fingerprint) => info!(%fingerprint, "TLS certificate reloaded"),
                Err(e) => warn!(error = %e, "TLS reload failed; still serving the old certificate"),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tls;
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
