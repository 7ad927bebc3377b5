//! `confab-server`: runs the chat server until SIGINT or SIGTERM.

use anyhow::Context;
use clap::Parser;
use confab_server::config::{LogFormat, Settings};
use tracing::info;
use tracing_subscriber::EnvFilter;

// glibc's malloc keeps each thread's freed argon2 memory (19 MiB per hash) in per-thread
// arenas, hundreds of MiB after a burst of logins; mimalloc gives it back and is faster on
// the many small allocations of the request path.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = Settings::parse().resolve()?;
    let filter = EnvFilter::try_from_env("CONFAB_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    match cfg.log_format {
        LogFormat::Human => tracing_subscriber::fmt().with_env_filter(filter).init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init(),
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
    info!(addr = %running.addr, "confab-server ready");
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
