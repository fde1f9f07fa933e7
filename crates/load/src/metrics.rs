//! What a run measures while it runs: HDR histograms of latency (microseconds), counters of
//! outcomes, errors by gRPC status, retries, and a per-second timeline. Recording takes a short
//! uncontended lock and never awaits while holding it.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// The largest latency a histogram holds: one hour, in microseconds. Longer values are clamped.
const HISTOGRAM_MAX_US: u64 = 3_600_000_000;
/// Significant decimal digits kept by every histogram.
const HISTOGRAM_DIGITS: u8 = 3;

/// A latency histogram in microseconds.
#[derive(Debug)]
pub struct Latency {
    histogram: Mutex<Histogram<u64>>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            histogram: Mutex::new(new_histogram()),
        }
    }
}

/// An empty histogram from 1 µs to an hour with three significant digits.
pub fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts; the fallback is never taken.
    Histogram::new_with_bounds(1, HISTOGRAM_MAX_US, HISTOGRAM_DIGITS)
        .or_else(|_| Histogram::new(HISTOGRAM_DIGITS))
        .unwrap_or_else(|_| unreachable_histogram())
}

#[allow(clippy::panic)] // Three significant digits is a valid constant setting.
fn unreachable_histogram() -> Histogram<u64> {
    panic!("hdrhistogram rejected constant bounds")
}

impl Latency {
    /// Records one latency.
    pub fn record(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(HISTOGRAM_MAX_US)
            .clamp(1, HISTOGRAM_MAX_US);
        if let Ok(mut histogram) = self.histogram.lock() {
            histogram.saturating_record(micros);
        }
    }

    /// A copy of the histogram so far.
    pub fn snapshot(&self) -> Histogram<u64> {
        self.histogram
            .lock()
            .map(|h| h.clone())
            .unwrap_or_else(|_| new_histogram())
    }

    /// The histogram so far, leaving an empty one in its place (for per-interval figures).
    pub fn take(&self) -> Histogram<u64> {
        self.histogram
            .lock()
            .map(|mut h| std::mem::replace(&mut *h, new_histogram()))
            .unwrap_or_else(|_| new_histogram())
    }
}

/// Percentiles of one latency histogram, in milliseconds.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct LatencySummary {
    /// Values recorded.
    pub count: u64,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest value.
    pub max_ms: f64,
    /// The percentile curve for plots: (percentile, milliseconds), from 0 to 100 on a
    /// logarithmic "nines" scale.
    pub curve: Vec<(f64, f64)>,
}

/// The percentiles at which the curve of a latency plot is sampled.
const CURVE_PERCENTILES: [f64; 14] = [
    0.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.995, 99.999, 100.0,
];

impl LatencySummary {
    /// Summarises a histogram in microseconds.
    pub fn of(histogram: &Histogram<u64>) -> LatencySummary {
        if histogram.is_empty() {
            return LatencySummary::default();
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        LatencySummary {
            count: histogram.len(),
            mean_ms: histogram.mean() / 1000.0,
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p90_ms: ms(histogram.value_at_quantile(0.90)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            p999_ms: ms(histogram.value_at_quantile(0.999)),
            max_ms: ms(histogram.max()),
            curve: CURVE_PERCENTILES
                .iter()
                .map(|p| (*p, ms(histogram.value_at_quantile(p / 100.0))))
                .collect(),
        }
    }
}

/// Which RPC a per-call latency or error belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rpc {
    /// `BureauService/ApplyTransfer`.
    Apply,
    /// `BureauService/WatchTransfer`.
    Watch,
    /// The transfer as a whole (an unexpected outcome, a timeout).
    Transfer,
}

impl Rpc {
    /// The RPC's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Rpc::Apply => "ApplyTransfer",
            Rpc::Watch => "WatchTransfer",
            Rpc::Transfer => "transfer",
        }
    }
}

/// Everything a run counts, shared by its workers.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Application (intended start) to terminal state seen, or to the expected refusal.
    pub end_to_end: Latency,
    /// As `end_to_end` but for the current timeline interval only.
    pub interval_end_to_end: Latency,
    /// Actual start to terminal: differs from `end_to_end` in an open loop that fell behind.
    pub service_time: Latency,
    /// How late each application started against its schedule (open loop).
    pub schedule_lag: Latency,
    /// `ApplyTransfer` round trips.
    pub apply: Latency,
    /// `WatchTransfer` until its first message.
    pub watch_first: Latency,
    /// From the first watch message to the terminal one.
    pub watch_to_terminal: Latency,
    /// Applications started.
    pub started: AtomicU64,
    /// Transfers that reached the outcome their flow expects (refusals included).
    pub succeeded: AtomicU64,
    /// Of `succeeded`, the expected refusals.
    pub refused: AtomicU64,
    /// Transfers that failed: an error status, an unexpected outcome, or a timeout.
    pub failed: AtomicU64,
    /// Calls repeated after a transient status.
    pub retries: AtomicU64,
    /// Transfers in flight.
    pub in_flight: AtomicI64,
    /// Errors by RPC and status (or "unexpected outcome"), counted once per failed transfer.
    errors: Mutex<BTreeMap<String, u64>>,
    /// Retried calls by RPC and status.
    retried: Mutex<BTreeMap<String, u64>>,
    /// The first status message of each kind of error or retry, for diagnosis.
    examples: Mutex<BTreeMap<String, String>>,
    /// Terminal outcomes by flow, e.g. `cross-province` → `COMPLETED` → 812.
    outcomes: Mutex<BTreeMap<String, BTreeMap<String, u64>>>,
    /// In a run over a topology: finished transfers by bureau pair, `north → west`.
    pairs: Mutex<BTreeMap<String, PairCount>>,
}

/// The finished transfers between one pair of bureaus: from the bureau hosting the region the
/// person leaves to the one hosting the region they join, wherever they applied.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct PairCount {
    /// Transfers that reached the outcome their flow expects (refusals included).
    pub succeeded: u64,
    /// Of `succeeded`, those that completed (COMPLETED or PAID_TO_BANK).
    pub completed: u64,
    /// Transfers that failed.
    pub failed: u64,
}

impl Metrics {
    /// Counts a failed transfer under `rpc` and `kind` (a gRPC status code name or a short
    /// description), keeping the first non-empty `message` of each kind as an example.
    pub fn error(&self, rpc: Rpc, kind: &str, message: &str) {
        let key = format!("{}: {kind}", rpc.name());
        self.example(&key, message);
        if let Ok(mut errors) = self.errors.lock() {
            *errors.entry(key).or_default() += 1;
        }
    }

    /// Keeps the first message seen for `key`.
    fn example(&self, key: &str, message: &str) {
        if message.is_empty() {
            return;
        }
        if let Ok(mut examples) = self.examples.lock()
            && !examples.contains_key(key)
        {
            examples.insert(key.to_owned(), message.chars().take(300).collect());
        }
    }

    /// The first message seen for each kind of error or retry.
    pub fn examples(&self) -> BTreeMap<String, String> {
        self.examples.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// Counts a call retried after a transient `kind` of status.
    pub fn retried(&self, rpc: Rpc, kind: &str, message: &str) {
        let key = format!("{}: {kind}", rpc.name());
        self.example(&key, message);
        if let Ok(mut retried) = self.retried.lock() {
            *retried.entry(key).or_default() += 1;
        }
    }

    /// Retried calls so far, by RPC and status.
    pub fn retried_by_status(&self) -> BTreeMap<String, u64> {
        self.retried.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// Counts a transfer's outcome for its flow.
    pub fn outcome(&self, flow: &str, outcome: &str) {
        if let Ok(mut outcomes) = self.outcomes.lock() {
            *outcomes
                .entry(flow.to_owned())
                .or_default()
                .entry(outcome.to_owned())
                .or_default() += 1;
        }
    }

    /// Errors so far.
    pub fn errors(&self) -> BTreeMap<String, u64> {
        self.errors.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// Outcomes so far.
    pub fn outcomes(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        self.outcomes.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// Counts a finished transfer between the bureaus of `pair`: succeeded (and completed, not
    /// refused) or failed.
    pub fn pair_finished(&self, pair: &str, succeeded: bool, completed: bool) {
        if let Ok(mut pairs) = self.pairs.lock() {
            let count = pairs.entry(pair.to_owned()).or_default();
            if succeeded {
                count.succeeded += 1;
                count.completed += u64::from(completed);
            } else {
                count.failed += 1;
            }
        }
    }

    /// Finished transfers by bureau pair so far (empty unless the run is over a topology).
    pub fn pairs(&self) -> BTreeMap<String, PairCount> {
        self.pairs.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// Finished transfers (succeeded or failed).
    pub fn finished(&self) -> u64 {
        self.succeeded.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed)
    }
}

/// One second of a run.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    /// Seconds since the transfers started, at the end of the interval.
    pub at_s: f64,
    /// Transfers that reached their expected outcome per second in the interval.
    pub succeeded_per_s: f64,
    /// Failed transfers per second in the interval.
    pub failed_per_s: f64,
    /// Transfers in flight at the end of the interval.
    pub in_flight: i64,
    /// Median end-to-end latency in the interval.
    pub p50_ms: f64,
    /// 99th percentile end-to-end latency in the interval.
    pub p99_ms: f64,
    /// CPU use of each measured process in the interval, in cores (1.0 = one core busy).
    pub cpu_cores: BTreeMap<String, f64>,
    /// Resident memory of each measured process at the end of the interval, in MiB.
    pub rss_mib: BTreeMap<String, f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_reports_milliseconds() {
        let latency = Latency::default();
        for ms in 1..=100 {
            latency.record(Duration::from_millis(ms));
        }
        let summary = LatencySummary::of(&latency.snapshot());
        assert_eq!(summary.count, 100);
        assert!((summary.p50_ms - 50.0).abs() < 0.1, "{summary:?}");
        assert!((summary.p99_ms - 99.0).abs() < 0.1, "{summary:?}");
        assert!((summary.max_ms - 100.0).abs() < 0.1, "{summary:?}");
        assert_eq!(summary.curve.len(), CURVE_PERCENTILES.len());
    }

    #[test]
    fn taking_an_interval_empties_it() {
        let latency = Latency::default();
        latency.record(Duration::from_micros(10));
        assert_eq!(latency.take().len(), 1);
        assert_eq!(latency.snapshot().len(), 0);
    }

    #[test]
    fn errors_are_counted_by_rpc_and_status() {
        let metrics = Metrics::default();
        metrics.error(Rpc::Apply, "UNAVAILABLE", "first");
        metrics.error(Rpc::Apply, "UNAVAILABLE", "second");
        metrics.error(Rpc::Watch, "NOT_FOUND", "");
        let errors = metrics.errors();
        assert_eq!(errors.get("ApplyTransfer: UNAVAILABLE"), Some(&2));
        assert_eq!(errors.len(), 2);
        let examples = metrics.examples();
        assert_eq!(
            examples
                .get("ApplyTransfer: UNAVAILABLE")
                .map(String::as_str),
            Some("first")
        );
        assert_eq!(examples.len(), 1);
    }
}
