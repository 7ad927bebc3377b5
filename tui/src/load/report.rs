//! What a run measured: counts, latency percentiles (HdrHistogram), errors by code, and the
//! checks that the counts add up. A report serializes to JSON with its histograms (V2 format,
//! base64) so the reports of several processes merge into exact percentiles.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use serde_json::{Value, json};

/// A run's results. `sent`, `acked`, `failed`, `unanswered`, `expected` and `delivered` count
/// the messages sent in the measured window (after warm-up); `lost`, `duplicated`,
/// `out_of_order` and `unexpected` count the whole run, warm-up included: a loss is a loss.
#[derive(Debug, Clone)]
pub struct Report {
    pub scenario: String,
    pub sent: u64,
    pub acked: u64,
    /// Sends the server refused for good (retried ones count under `errors` only).
    pub failed: u64,
    /// Sends neither acknowledged nor refused by the end of the drain period.
    pub unanswered: u64,
    /// Deliveries owed: for each acked message, one per recipient device online in the run.
    pub expected: u64,
    /// Distinct (message, recipient) deliveries of measured messages.
    pub delivered: u64,
    /// Acked, but not delivered to some recipient by the end of the drain period.
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    /// Deliveries that match no send of this run.
    pub unexpected: u64,
    /// Errors by operation and code, e.g. `send: RATE_LIMITED (retried)`.
    pub errors: BTreeMap<String, u64>,
    /// Counts that do not add up (a bug in the tool or the server): each makes the run fail.
    pub mismatches: Vec<String>,
    pub ack_us: Histogram<u64>,
    pub deliver_us: Histogram<u64>,
    /// Logins by resume token / by password (measured window) and their latency.
    pub token_logins: u64,
    pub password_logins: u64,
    pub token_login_us: Histogram<u64>,
    pub password_login_us: Histogram<u64>,
    /// Storm: clients that fully resynced, and the time from the drop to full resync.
    pub resynced: u64,
    pub resync_us: Histogram<u64>,
    pub elapsed: Duration,
    pub connections: u64,
    pub connect_time: Duration,
    pub server_rss_before_kib: Option<u64>,
    pub server_rss_after_kib: Option<u64>,
    /// Processes merged into this report.
    pub processes: u64,
}

/// Microseconds, 3 significant digits, growing to fit the largest value recorded: a ledger
/// per pair must not pay for ten minutes of range it never uses (a fixed 1 µs..10 min
/// histogram is ~160 KiB, times five per report, times a thousand pairs).
fn hist() -> Histogram<u64> {
    // A constant precision is always valid, so this cannot fail.
    Histogram::new(3).unwrap_or_else(|_| unreachable!())
}

impl Default for Report {
    fn default() -> Self {
        Self {
            scenario: String::new(),
            sent: 0,
            acked: 0,
            failed: 0,
            unanswered: 0,
            expected: 0,
            delivered: 0,
            lost: 0,
            duplicated: 0,
            out_of_order: 0,
            unexpected: 0,
            errors: BTreeMap::new(),
            mismatches: Vec::new(),
            ack_us: hist(),
            deliver_us: hist(),
            token_logins: 0,
            password_logins: 0,
            token_login_us: hist(),
            password_login_us: hist(),
            resynced: 0,
            resync_us: hist(),
            elapsed: Duration::ZERO,
            connections: 0,
            connect_time: Duration::ZERO,
            server_rss_before_kib: None,
            server_rss_after_kib: None,
            processes: 1,
        }
    }
}

fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// Records a duration (the histogram grows to fit it).
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    let v = us(d);
    // `record` resizes an auto-resizing histogram; `saturating_record` would clamp instead.
    if h.record(v).is_err() {
        h.saturating_record(v);
    }
}

/// The histograms a report carries, by their JSON name.
const HISTS: [&str; 5] = ["ack", "deliver", "token_login", "password_login", "resync"];

/// A child's report whose histograms cannot be read back.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HistogramError {
    #[error("histogram {0} missing")]
    Missing(&'static str),
    #[error("histogram {0}: {1}")]
    Bad(&'static str, String),
}

impl Report {
    pub fn new(scenario: &str) -> Self {
        Self {
            scenario: scenario.into(),
            ..Self::default()
        }
    }

    pub fn record_ack(&mut self, d: Duration) {
        record(&mut self.ack_us, d);
    }

    pub fn record_delivery(&mut self, d: Duration) {
        record(&mut self.deliver_us, d);
    }

    /// Counts an error under `op: CODE`.
    pub fn error(&mut self, key: impl Into<String>) {
        *self.errors.entry(key.into()).or_default() += 1;
    }

    fn hists(&self) -> [&Histogram<u64>; 5] {
        [
            &self.ack_us,
            &self.deliver_us,
            &self.token_login_us,
            &self.password_login_us,
            &self.resync_us,
        ]
    }

    fn hists_mut(&mut self) -> [&mut Histogram<u64>; 5] {
        [
            &mut self.ack_us,
            &mut self.deliver_us,
            &mut self.token_login_us,
            &mut self.password_login_us,
            &mut self.resync_us,
        ]
    }

    /// Adds another part's report (another scenario of a mix, or another process).
    /// Waits for the per-pair or per-group tasks and merges their reports; a task that failed
    /// is a mismatch, so the run cannot pass.
    /// A scenario's report from its tasks' reports: merged, timed, counted and checked.
    pub(crate) async fn of_tasks(
        scenario: &str,
        tasks: Vec<tokio::task::JoinHandle<Report>>,
        what: &str,
        elapsed: Duration,
        connections: usize,
        connect_time: Duration,
    ) -> Report {
        let mut report = Report::new(scenario);
        report.merge_tasks(tasks, what).await;
        report.elapsed = elapsed;
        report.connections = connections as u64;
        report.connect_time = connect_time;
        report.check();
        report
    }

    pub(crate) async fn merge_tasks(
        &mut self,
        tasks: Vec<tokio::task::JoinHandle<Report>>,
        what: &str,
    ) {
        for t in tasks {
            match t.await {
                Ok(r) => self.merge(&r),
                Err(e) => self.mismatches.push(format!("a {what} task failed: {e}")),
            }
        }
    }

    pub fn merge(&mut self, other: &Report) {
        if self.scenario.is_empty() {
            self.scenario.clone_from(&other.scenario);
        }
        self.sent += other.sent;
        self.acked += other.acked;
        self.failed += other.failed;
        self.unanswered += other.unanswered;
        self.expected += other.expected;
        self.delivered += other.delivered;
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.out_of_order += other.out_of_order;
        self.unexpected += other.unexpected;
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        self.mismatches.extend(other.mismatches.iter().cloned());
        self.token_logins += other.token_logins;
        self.password_logins += other.password_logins;
        self.resynced += other.resynced;
        for (mine, theirs) in self.hists_mut().into_iter().zip(other.hists()) {
            let _ = mine.add(theirs);
        }
        self.elapsed = self.elapsed.max(other.elapsed);
        self.connections += other.connections;
        self.connect_time = self.connect_time.max(other.connect_time);
        // Processes measuring one server: the lowest before, the highest after.
        if let Some(b) = other.server_rss_before_kib {
            self.server_rss_before_kib = Some(self.server_rss_before_kib.map_or(b, |x| x.min(b)));
        }
        if let Some(a) = other.server_rss_after_kib {
            self.server_rss_after_kib = Some(self.server_rss_after_kib.map_or(a, |x| x.max(a)));
        }
    }

    /// Checks that the counts add up; each failed check is added to `mismatches`.
    pub fn check(&mut self) {
        let mut bad = Vec::new();
        if self.sent != self.acked + self.failed + self.unanswered {
            bad.push(format!(
                "sent {} != acked {} + failed {} + unanswered {}",
                self.sent, self.acked, self.failed, self.unanswered
            ));
        }
        if self.delivered > self.expected {
            bad.push(format!(
                "delivered {} > expected {}",
                self.delivered, self.expected
            ));
        }
        if self.ack_us.len() != self.acked {
            bad.push(format!(
                "{} ack latencies for {} acks",
                self.ack_us.len(),
                self.acked
            ));
        }
        if self.deliver_us.len() != self.delivered {
            bad.push(format!(
                "{} delivery latencies for {} deliveries",
                self.deliver_us.len(),
                self.delivered
            ));
        }
        if self.token_login_us.len() != self.token_logins
            || self.password_login_us.len() != self.password_logins
        {
            bad.push("login latencies do not match login counts".into());
        }
        if self.resync_us.len() != self.resynced {
            bad.push("resync latencies do not match resynced clients".into());
        }
        for b in bad {
            if !self.mismatches.contains(&b) {
                self.mismatches.push(b);
            }
        }
    }

    /// True when nothing was lost, duplicated, reordered or unmatched, and the counts add up:
    /// the tool's exit status. (Unanswered sends are reported, not failed: a server that falls
    /// behind a fixed rate has not lost them.)
    pub fn clean(&self) -> bool {
        self.lost == 0
            && self.duplicated == 0
            && self.out_of_order == 0
            && self.unexpected == 0
            && self.mismatches.is_empty()
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

    fn pct(h: &Histogram<u64>) -> Value {
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

    pub fn to_json(&self) -> Value {
        let mut hists = serde_json::Map::new();
        for (name, h) in HISTS.iter().zip(self.hists()) {
            let mut buf = Vec::new();
            if V2Serializer::new().serialize(h, &mut buf).is_ok() {
                hists.insert((*name).into(), json!(B64.encode(&buf)));
            }
        }
        json!({
            "scenario": self.scenario, "processes": self.processes,
            "sent": self.sent, "acked": self.acked, "failed": self.failed,
            "unanswered": self.unanswered, "expected": self.expected, "delivered": self.delivered,
            "lost": self.lost, "duplicated": self.duplicated, "out_of_order": self.out_of_order,
            "unexpected": self.unexpected, "errors": self.errors, "mismatches": self.mismatches,
            "seconds": self.elapsed.as_secs_f64(),
            "delivered_per_s": self.rate(self.delivered), "acked_per_s": self.rate(self.acked),
            "send_to_ack": Self::pct(&self.ack_us), "send_to_delivery": Self::pct(&self.deliver_us),
            "token_logins": self.token_logins, "token_logins_per_s": self.rate(self.token_logins),
            "token_login": Self::pct(&self.token_login_us),
            "password_logins": self.password_logins,
            "password_logins_per_s": self.rate(self.password_logins),
            "password_login": Self::pct(&self.password_login_us),
            "resynced": self.resynced, "resync": Self::pct(&self.resync_us),
            "connections": self.connections, "connect_seconds": self.connect_time.as_secs_f64(),
            "server_rss_before_kib": self.server_rss_before_kib, "server_rss_after_kib": self.server_rss_after_kib,
            "server_rss_per_connection_kib": self.rss_per_connection_kib(),
            "histograms": hists,
        })
    }

    /// Reads a report printed by `to_json` (a child process's), histograms included.
    pub fn from_json(v: &Value) -> Result<Self, HistogramError> {
        let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
        let mut r = Report {
            scenario: v
                .get("scenario")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .into(),
            processes: n("processes").max(1),
            sent: n("sent"),
            acked: n("acked"),
            failed: n("failed"),
            unanswered: n("unanswered"),
            expected: n("expected"),
            delivered: n("delivered"),
            lost: n("lost"),
            duplicated: n("duplicated"),
            out_of_order: n("out_of_order"),
            unexpected: n("unexpected"),
            token_logins: n("token_logins"),
            password_logins: n("password_logins"),
            resynced: n("resynced"),
            connections: n("connections"),
            elapsed: Duration::from_secs_f64(
                v.get("seconds")
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0)
                    .max(0.0),
            ),
            connect_time: Duration::from_secs_f64(
                v.get("connect_seconds")
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0)
                    .max(0.0),
            ),
            server_rss_before_kib: v.get("server_rss_before_kib").and_then(Value::as_u64),
            server_rss_after_kib: v.get("server_rss_after_kib").and_then(Value::as_u64),
            ..Report::default()
        };
        if let Some(errors) = v.get("errors").and_then(Value::as_object) {
            for (k, c) in errors {
                r.errors.insert(k.clone(), c.as_u64().unwrap_or(0));
            }
        }
        if let Some(m) = v.get("mismatches").and_then(Value::as_array) {
            r.mismatches = m
                .iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect();
        }
        let hists = v.get("histograms").and_then(Value::as_object);
        for (name, h) in HISTS.iter().zip(r.hists_mut()) {
            let Some(text) = hists.and_then(|m| m.get(*name)).and_then(Value::as_str) else {
                return Err(HistogramError::Missing(name));
            };
            let bytes = B64
                .decode(text)
                .map_err(|e| HistogramError::Bad(name, e.to_string()))?;
            let decoded: Histogram<u64> = Deserializer::new()
                .deserialize(&mut bytes.as_slice())
                .map_err(|e| HistogramError::Bad(name, format!("{e:?}")))?;
            h.add(&decoded)
                .map_err(|e| HistogramError::Bad(name, format!("{e:?}")))?;
        }
        Ok(r)
    }

    /// A human summary.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let mut line = |l: String| {
            s.push_str(&l);
            s.push('\n');
        };
        if !self.scenario.is_empty() {
            line(format!(
                "scenario  {}{}",
                self.scenario,
                if self.processes > 1 {
                    format!(" ({} processes)", self.processes)
                } else {
                    String::new()
                }
            ));
        }
        let pct = |name: &str, h: &Histogram<u64>| {
            let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
            format!(
                "{name:<14} p50 {:.2} ms  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
                ms(0.5),
                ms(0.9),
                ms(0.99),
                ms(0.999),
                h.max() as f64 / 1000.0
            )
        };
        if self.sent > 0 || self.delivered > 0 || self.lost > 0 {
            line(format!(
                "messages  sent {}  acked {}  failed {}  unanswered {}",
                self.sent, self.acked, self.failed, self.unanswered
            ));
            line(format!(
                "delivery  expected {}  delivered {}  lost {}  duplicated {}  out-of-order {}  unexpected {}",
                self.expected,
                self.delivered,
                self.lost,
                self.duplicated,
                self.out_of_order,
                self.unexpected
            ));
            // A storm sends one message per pair per round: a rate would mean nothing.
            if self.scenario != "storm" {
                line(format!(
                    "rate      {:.0} delivered/s, {:.0} acked/s over {:.1} s",
                    self.rate(self.delivered),
                    self.rate(self.acked),
                    self.elapsed.as_secs_f64()
                ));
            }
            for (name, h) in [
                ("send->ack", &self.ack_us),
                ("send->deliver", &self.deliver_us),
            ] {
                if !h.is_empty() {
                    line(pct(name, h));
                }
            }
        }
        for (name, n, h) in [
            ("token login", self.token_logins, &self.token_login_us),
            (
                "password login",
                self.password_logins,
                &self.password_login_us,
            ),
        ] {
            if n > 0 {
                line(format!("{name:<14} {n} ({:.1}/s)", self.rate(n)));
                line(pct("  latency", h));
            }
        }
        if self.resynced > 0 {
            line(format!("resynced  {} clients", self.resynced));
            line(pct("drop->resync", &self.resync_us));
        }
        if self.connections > 0 {
            line(format!(
                "connections {} (connected in {:.1} s)",
                self.connections,
                self.connect_time.as_secs_f64()
            ));
        }
        if let Some(per) = self.rss_per_connection_kib() {
            line(format!(
                "server RSS {} KiB -> {} KiB: {:.2} KiB per connection",
                self.server_rss_before_kib.unwrap_or(0),
                self.server_rss_after_kib.unwrap_or(0),
                per
            ));
        }
        for (k, v) in &self.errors {
            line(format!("error     {v} x {k}"));
        }
        for m in &self.mismatches {
            line(format!("MISMATCH  {m}"));
        }
        line(format!(
            "result    {}",
            if self.clean() { "clean" } else { "FAILED" }
        ));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_json_reports_keep_exact_percentiles() {
        let mut a = Report::new("dm");
        let mut b = Report::new("dm");
        let mut both = hist();
        for i in 1..=1000u64 {
            let d = Duration::from_micros(i * 37 % 5000 + 1);
            if i % 3 == 0 {
                a.record_delivery(d);
            } else {
                b.record_delivery(d);
            }
            record(&mut both, d);
        }
        a.delivered = a.deliver_us.len();
        b.delivered = b.deliver_us.len();
        a.errors.insert("send: RATE_LIMITED (retried)".into(), 2);
        let mut merged = Report::from_json(&a.to_json()).unwrap();
        merged.merge(&Report::from_json(&b.to_json()).unwrap());
        for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(
                merged.deliver_us.value_at_quantile(q),
                both.value_at_quantile(q)
            );
        }
        // Recorded values are kept, not clamped (the histograms grow to fit them).
        assert!(
            merged.deliver_us.max() >= 4_990,
            "{}",
            merged.deliver_us.max()
        );
        assert_eq!(merged.delivered, 1000);
        assert_eq!(merged.errors["send: RATE_LIMITED (retried)"], 2);
        merged.expected = 1000;
        merged.check();
        assert!(merged.mismatches.is_empty(), "{:?}", merged.mismatches);
        // A report whose counts do not add up fails.
        merged.sent = 5;
        merged.check();
        assert!(!merged.clean());
    }
}
