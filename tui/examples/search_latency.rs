//! Search latency, as a client sees it (scripts/search_bench.sh): logs in, waits until synced,
//! then asks `SearchMessages` for each query in turn, ROUNDS times, one at a time, and prints
//! p50/p99/max per query with the hits of the first page.
//!
//! `search_latency ADDR NAME PASSWORD ROUNDS QUERY...` (the server's per-connection search
//! rate limit must allow ROUNDS x queries a minute: start it with a high --search-per-minute).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use confab_tui::client::{Auth, CacheMode, Client, ClientConfig, Event};
use hdrhistogram::Histogram;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, name, password, rounds, queries @ ..] = args.as_slice() else {
        bail!("usage: search_latency ADDR NAME PASSWORD ROUNDS QUERY...");
    };
    let rounds: u32 = rounds.parse().context("ROUNDS")?;
    let mut cfg = ClientConfig::new(addr.clone());
    cfg.cache = CacheMode::Off;
    cfg.request_timeout = Duration::from_secs(30);
    let (c, mut events) = Client::start(
        cfg,
        Auth::Login {
            name: name.clone(),
            password: password.clone(),
        },
    )?;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Some(Event::Synced)) => break,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => bail!("the client did not sync"),
        }
    }
    println!("query\thits\tp50_ms\tp99_ms\tmax_ms");
    for q in queries {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
        let mut hits = 0;
        for _ in 0..rounds {
            let t = Instant::now();
            let page = c.search(q, 0, 0, 20).await?;
            let us = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
            h.record(us.max(1))?;
            hits = page.hits.len();
        }
        let ms = |v: u64| v as f64 / 1000.0;
        println!(
            "{q}\t{hits}\t{:.2}\t{:.2}\t{:.2}",
            ms(h.value_at_quantile(0.5)),
            ms(h.value_at_quantile(0.99)),
            ms(h.max())
        );
    }
    c.shutdown().await;
    Ok(())
}
