//! What a run measured: counts, latency percentiles (HdrHistogram), errors by kind.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::json;

/// A run's results. Counters only count the measured window (after warm-up).
#[derive(Debug, Clone)]
pub struct Report {
    pub sent: u64,
    pub acked: u64,
    /// Sends the server refused for good (retried ones count under `errors` only).
    pub failed: u64,
    pub delivered: u64,
    /// Acked, but not delivered by the end of the drain period.
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    /// Deliveries that match no send of this run.
    pub unexpected: u64,
    pub errors: BTreeMap<String, u64>,
    pub ack_us: Histogram<u64>,
    pub deliver_us: Histogram<u64>,
    pub elapsed: Duration,
    pub connections: u64,
    pub connect_time: Duration,
    pub server_rss_before_kib: Option<u64>,
    pub server_rss_after_kib: Option<u64>,
}

fn hist() -> Histogram<u64> {
    // 1 µs .. 10 min, 3 significant digits; the bounds are constants, so this cannot fail.
    Histogram::new_with_bounds(1, 600_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

impl Default for Report {
    fn default() -> Self {
        Self {
            sent: 0,
            acked: 0,
            failed: 0,
            delivered: 0,
            lost: 0,
            duplicated: 0,
            out_of_order: 0,
            unexpected: 0,
            errors: BTreeMap::new(),
            ack_us: hist(),
            deliver_us: hist(),
            elapsed: Duration::ZERO,
            connections: 0,
            connect_time: Duration::ZERO,
            server_rss_before_kib: None,
            server_rss_after_kib: None,
        }
    }
}

fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

impl Report {
    pub fn record_ack(&mut self, d: Duration) {
        let _ = self.ack_us.record(us(d).min(self.ack_us.high()));
    }

    pub fn record_delivery(&mut self, d: Duration) {
        let _ = self.deliver_us.record(us(d).min(self.deliver_us.high()));
    }

    /// Adds another process's report (counts and histograms).
    pub fn merge(&mut self, other: &Report) {
        self.sent += other.sent;
        self.acked += other.acked;
        self.failed += other.failed;
        self.delivered += other.delivered;
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.out_of_order += other.out_of_order;
        self.unexpected += other.unexpected;
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        let _ = self.ack_us.add(&other.ack_us);
        let _ = self.deliver_us.add(&other.deliver_us);
        self.elapsed = self.elapsed.max(other.elapsed);
        self.connections += other.connections;
    }

    /// True when nothing was lost or duplicated: the exit status of the tool.
    pub fn clean(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.out_of_order == 0
    }

    pub fn rate(&self, n: u64) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 { n as f64 / s } else { 0.0 }
    }

    pub fn rss_per_connection_kib(&self) -> Option<f64> {
        match (self.server_rss_before_kib, self.server_rss_after_kib) {
            (Some(b), Some(a)) if self.connections > 0 => {
                Some(a.saturating_sub(b) as f64 / self.connections as f64)
            }
            _ => None,
        }
    }

    fn pct(h: &Histogram<u64>) -> serde_json::Value {
        if h.is_empty() {
            return json!(null);
        }
        let ms = |v: u64| (v as f64) / 1000.0;
        json!({
            "p50_ms": ms(h.value_at_quantile(0.5)), "p90_ms": ms(h.value_at_quantile(0.9)),
            "p99_ms": ms(h.value_at_quantile(0.99)), "p999_ms": ms(h.value_at_quantile(0.999)),
            "max_ms": ms(h.max()), "count": h.len(),
        })
    }

    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "sent": self.sent, "acked": self.acked, "failed": self.failed, "delivered": self.delivered,
            "lost": self.lost, "duplicated": self.duplicated, "out_of_order": self.out_of_order,
            "unexpected": self.unexpected, "errors": self.errors,
            "seconds": self.elapsed.as_secs_f64(),
            "delivered_per_s": self.rate(self.delivered), "acked_per_s": self.rate(self.acked),
            "send_to_ack": Self::pct(&self.ack_us), "send_to_delivery": Self::pct(&self.deliver_us),
            "connections": self.connections, "connect_seconds": self.connect_time.as_secs_f64(),
            "server_rss_before_kib": self.server_rss_before_kib, "server_rss_after_kib": self.server_rss_after_kib,
            "server_rss_per_connection_kib": self.rss_per_connection_kib(),
        })
    }

    /// A human summary.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let line = |s: &mut String, l: String| {
            s.push_str(&l);
            s.push('\n');
        };
        if self.sent > 0 || self.delivered > 0 {
            line(
                &mut s,
                format!(
                    "messages  sent {}  acked {}  delivered {}  lost {}  duplicated {}  out-of-order {}",
                    self.sent,
                    self.acked,
                    self.delivered,
                    self.lost,
                    self.duplicated,
                    self.out_of_order
                ),
            );
            line(
                &mut s,
                format!(
                    "rate      {:.0} delivered/s, {:.0} acked/s over {:.1} s",
                    self.rate(self.delivered),
                    self.rate(self.acked),
                    self.elapsed.as_secs_f64()
                ),
            );
            for (name, h) in [
                ("send->ack", &self.ack_us),
                ("send->deliver", &self.deliver_us),
            ] {
                if !h.is_empty() {
                    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
                    line(
                        &mut s,
                        format!(
                            "{name:<14} p50 {:.2} ms  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
                            ms(0.5),
                            ms(0.9),
                            ms(0.99),
                            ms(0.999),
                            h.max() as f64 / 1000.0
                        ),
                    );
                }
            }
        }
        if self.connections > 0 {
            line(
                &mut s,
                format!(
                    "connections {} (connected in {:.1} s)",
                    self.connections,
                    self.connect_time.as_secs_f64()
                ),
            );
        }
        if let Some(per) = self.rss_per_connection_kib() {
            line(
                &mut s,
                format!(
                    "server RSS {} KiB -> {} KiB: {:.2} KiB per connection",
                    self.server_rss_before_kib.unwrap_or(0),
                    self.server_rss_after_kib.unwrap_or(0),
                    per
                ),
            );
        }
        for (k, v) in &self.errors {
            line(&mut s, format!("error     {v} x {k}"));
        }
        s
    }
}

/// Resident set size of a process, in KiB (Linux).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// A progress bar on a terminal; nothing otherwise (plain lines come from the summary).
#[derive(Clone)]
pub struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    pub fn new(enabled: bool, len: u64) -> Self {
        if enabled && std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(len);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] {pos}/{len} {per_sec}",
            ) {
                bar.set_style(style);
            }
            Self(Some(bar))
        } else {
            Self(None)
        }
    }

    pub fn inc(&self) {
        if let Some(b) = &self.0 {
            b.inc(1);
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}
