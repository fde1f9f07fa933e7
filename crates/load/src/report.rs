//! The result of a run: settings, machine, throughput, latency percentiles, errors, the
//! timeline, the processes' CPU and memory, the baseline and the ledger verdict. Serialised as
//! JSON, rendered as a self-contained HTML page (`html`, which also holds `Report::write_html`),
//! or printed as a summary.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::baseline::Baseline;
use crate::error::LoadError;
use crate::ledger::LedgerCheck;
use crate::metrics::{LatencySummary, PairCount, Sample};
use crate::options::LoadOptions;
use crate::procstat::ProcessUsage;
use crate::seed::Seeding;
use crate::split::PeerSplit;

/// Everything a run found.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The tool and its version.
    pub tool: String,
    /// When the run started (UTC, RFC 3339).
    pub started_at: String,
    /// The settings the run was given.
    pub options: LoadOptions,
    /// The endpoints actually driven.
    pub endpoints: Endpoints,
    /// The machine the run ran on.
    pub machine: Machine,
    /// What seeding did.
    pub seeding: Seeding,
    /// The health-check baseline, when asked for.
    pub baseline: Option<Baseline>,
    /// Transfers and throughput.
    pub transfers: Transfers,
    /// Transfers per second divided by baseline health checks per second.
    pub ratio_to_baseline: Option<f64>,
    /// Latency summaries by name: `end_to_end`, `ApplyTransfer`, … (milliseconds).
    pub latency: BTreeMap<String, LatencySummary>,
    /// Failed transfers by RPC and status.
    pub errors: BTreeMap<String, u64>,
    /// Retried calls by RPC and status (the transfer then went on).
    pub retried: BTreeMap<String, u64>,
    /// The first status message of each kind of error and retry.
    pub error_examples: BTreeMap<String, String>,
    /// Outcomes by flow and terminal state.
    pub outcomes: BTreeMap<String, BTreeMap<String, u64>>,
    /// In a run over a topology: finished transfers by pair of bureaus, `north → west` (from
    /// the bureau hosting the region the person leaves to the one hosting the region they
    /// join, wherever they applied).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub pairs: BTreeMap<String, PairCount>,
    /// One sample per second of the transfer phase.
    pub timeline: Vec<Sample>,
    /// CPU of the machine, the generator and (when known) each service over the transfer phase
    /// (not the ledger check after it), and their memory at the end.
    pub processes: Vec<ProcessUsage>,
    /// The ledger check at the end.
    pub ledger: LedgerCheck,
    /// In a run that drives one bureau (`--only`): the sampled transfers' end-to-end latency
    /// split into time at the peer and time in yibao.
    pub peer_split: Option<PeerSplit>,
    /// Things the reader should know (a flow ran out of people, a timeout).
    pub warnings: Vec<String>,
}

/// The endpoints driven.
#[derive(Clone, Debug, Serialize)]
pub struct Endpoints {
    /// transfer-out.
    pub out: String,
    /// transfer-in.
    #[serde(rename = "in")]
    pub inn: String,
    /// Whether the run started this pair itself.
    pub spawned: bool,
    /// In a run that drives one bureau: the user's service's platform endpoint, when the run
    /// spawned the bureau and so knows it.
    pub peer: Option<String>,
    /// In a run over a topology: every bureau's name and endpoint (`out` and `in` are empty).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bureaus: Vec<(String, String)>,
}

impl Endpoints {
    /// What was driven, for the summary: both endpoints, or the one bureau and its peer.
    pub fn describe(&self) -> String {
        let spawned = if self.spawned { " (spawned)" } else { "" };
        let peer = self
            .peer
            .as_deref()
            .map_or(String::new(), |peer| format!(" {peer}"));
        if !self.bureaus.is_empty() {
            let named: Vec<String> = self
                .bureaus
                .iter()
                .map(|(name, endpoint)| format!("{name} {endpoint}"))
                .collect();
            return format!("{}{spawned}", named.join(", "));
        }
        match (self.out.is_empty(), self.inn.is_empty()) {
            (false, true) => format!(
                "yibao's transfer-out {}{spawned} alone, facing your transfer-in{peer}",
                self.out
            ),
            (true, false) => format!(
                "yibao's transfer-in {}{spawned} alone, facing your transfer-out{peer}",
                self.inn
            ),
            _ => format!("{} / {}{spawned}", self.out, self.inn),
        }
    }
}

/// The machine.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// Cores available to the run.
    pub cores: usize,
    /// The CPU model, from `/proc/cpuinfo`.
    pub cpu: String,
    /// Total memory in MiB.
    pub memory_mib: u64,
    /// The operating system and kernel.
    pub os: String,
}

impl Machine {
    /// Reads what can be read about the machine.
    pub fn detect() -> Machine {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find(|line| line.starts_with("model name"))
                    .and_then(|line| line.split_once(':'))
                    .map(|(_, model)| model.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let memory_mib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|line| line.strip_prefix("MemTotal:"))
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|kib| kib.parse::<u64>().ok())
            })
            .map_or(0, |kib| kib / 1024);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|text| text.trim().to_owned())
            .unwrap_or_default();
        Machine {
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            cpu,
            memory_mib,
            os: format!("{} {kernel}", std::env::consts::OS)
                .trim()
                .to_owned(),
        }
    }
}

/// Transfers and throughput.
#[derive(Clone, Debug, Serialize)]
pub struct Transfers {
    /// Applications started.
    pub started: u64,
    /// Transfers that ended as their flow expects (refusals included).
    pub succeeded: u64,
    /// Of `succeeded`, expected refusals.
    pub refused: u64,
    /// Transfers that failed.
    pub failed: u64,
    /// Calls retried after a transient status.
    pub retries: u64,
    /// Seconds spent starting transfers.
    pub applying_seconds: f64,
    /// Seconds from the first application to the last transfer finishing.
    pub seconds: f64,
    /// `succeeded / seconds`.
    pub per_s: f64,
    /// The lowest one-second rate while applying, leaving out the first second (warm-up);
    /// none for runs shorter than three seconds.
    pub min_one_second_per_s: Option<f64>,
    /// Why the run stopped starting transfers.
    pub stopped_because: String,
}

impl Report {
    /// Whether the ledger check at the end held (conservation, nothing open).
    pub fn ledger_holds(&self) -> bool {
        self.ledger.holds
    }

    /// Failed transfers.
    pub fn errors_total(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        // Serialising plain data with string keys cannot fail; an empty object is the fallback.
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".to_owned())
    }

    /// Writes the JSON report.
    pub fn write_json(&self, path: &Path) -> Result<(), LoadError> {
        write(path, &self.to_json())
    }

    /// Prints the summary to standard output.
    pub fn print_summary(&self) {
        print!("{}", self.summary());
    }

    /// The summary as text.
    pub fn summary(&self) -> String {
        let mut text = String::new();
        self.run_summary(&mut text);
        self.latency_summary(&mut text);
        self.findings_summary(&mut text);
        text
    }

    /// The summary's first lines: what ran against what, on which machine, and how fast.
    fn run_summary(&self, text: &mut String) {
        let t = &self.transfers;
        let _ = writeln!(
            text,
            "yibao load — {} against {}",
            pace_text(&self.options),
            self.endpoints.describe()
        );
        let _ = writeln!(
            text,
            "machine: {} cores, {}, {} MiB; seeded {} persons in {:.1} s{}",
            self.machine.cores,
            self.machine.cpu,
            self.machine.memory_mib,
            self.seeding.persons,
            self.seeding.seconds,
            if self.seeding.topped_up > 0 {
                format!(" (+{} during the run)", self.seeding.topped_up)
            } else {
                String::new()
            }
        );
        let _ = writeln!(
            text,
            "transfers: {} started, {} ok ({} expected refusals), {} failed, {} retries; \
             stopped: {}",
            t.started, t.succeeded, t.refused, t.failed, t.retries, t.stopped_because
        );
        let _ = writeln!(
            text,
            "throughput: {:.0} transfers/s over {:.1} s{}",
            t.per_s,
            t.seconds,
            t.min_one_second_per_s
                .map(|m| format!(" (lowest one-second rate {m:.0}/s)"))
                .unwrap_or_default()
        );
        if let Some(baseline) = &self.baseline {
            let _ = writeln!(
                text,
                "baseline: {:.0} health checks/s ({} in flight, p50 {:.2} ms); ratio {:.3}",
                baseline.calls_per_s,
                baseline.concurrency,
                baseline.latency.p50_ms,
                self.ratio_to_baseline.unwrap_or(0.0)
            );
        }
    }

    /// The latency table of the summary, and the split's totals.
    fn latency_summary(&self, text: &mut String) {
        self.latency_table(text);
        if let Some(split) = &self.peer_split {
            let _ = writeln!(text, "{}", split_text(split));
        }
    }

    /// The latency table.
    fn latency_table(&self, text: &mut String) {
        let _ = writeln!(
            text,
            "{:<34} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "latency (ms)", "count", "p50", "p90", "p99", "p99.9", "max"
        );
        for (name, summary) in &self.latency {
            let _ = writeln!(
                text,
                "{:<34} {:>9} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                name,
                summary.count,
                summary.p50_ms,
                summary.p90_ms,
                summary.p99_ms,
                summary.p999_ms,
                summary.max_ms
            );
        }
    }

    /// The transfers by pair of bureaus, in a run over a topology.
    fn pairs_summary(&self, text: &mut String) {
        let _ = writeln!(
            text,
            "{:<34} {:>9} {:>9} {:>9}",
            "bureau pair", "ok", "completed", "failed"
        );
        for (pair, count) in &self.pairs {
            let _ = writeln!(
                text,
                "{pair:<34} {:>9} {:>9} {:>9}",
                count.succeeded, count.completed, count.failed
            );
        }
    }

    /// Each bureau's ledger totals, in a run over a topology.
    fn bureau_ledgers(&self, text: &mut String) {
        for (name, totals) in &self.ledger.bureaus {
            let _ = writeln!(
                text,
                "ledger: {name:<12} debited {} credited {} settled {} paid {} returned {} \
                 in transit {} open {}",
                yuan(totals.debited_to_transit_cents),
                yuan(totals.credited_cents),
                yuan(totals.settled_out_cents),
                yuan(totals.paid_to_bank_cents),
                yuan(totals.returned_cents),
                yuan(totals.in_transit_cents),
                totals.open_transfers
            );
        }
    }

    /// The rest of the summary: errors, CPU per process, warnings, the ledger verdict and where
    /// the reports are.
    fn findings_summary(&self, text: &mut String) {
        if !self.pairs.is_empty() {
            self.pairs_summary(text);
        }
        self.bureau_ledgers(text);
        for (name, count) in &self.errors {
            let _ = writeln!(text, "error: {name} × {count}");
        }
        for (name, count) in &self.retried {
            let _ = writeln!(text, "retried: {name} × {count}");
        }
        for (name, message) in &self.error_examples {
            let _ = writeln!(text, "  e.g. {name}: {message}");
        }
        for process in &self.processes {
            let _ = writeln!(
                text,
                "cpu: {:<16} {:>6.2} cores, {:>6.3} ms/transfer{}",
                process.name,
                process.cpu_cores,
                process.cpu_ms_per_transfer,
                match (process.memory_after_transfers, process.memory) {
                    (Some(during), Some(after)) => format!(
                        ", RSS {:.0} MiB after the transfers, {:.0} MiB after the ledger check \
                         (peak {:.0})",
                        during.rss_mib, after.rss_mib, after.peak_rss_mib
                    ),
                    _ => String::new(),
                }
            );
        }
        for warning in &self.warnings {
            let _ = writeln!(text, "warning: {warning}");
        }
        if self.ledger.holds {
            let scope = match &self.ledger.not_checked {
                None => "conservation to the cent, no open transfer",
                Some(_) => "its own books to the cent, no open transfer",
            };
            let _ = writeln!(
                text,
                "ledger: holds ({scope}; settled in {:.1} s)",
                self.ledger.settle_seconds
            );
        } else {
            for problem in &self.ledger.problems {
                let _ = writeln!(text, "ledger: DOES NOT HOLD: {problem}");
            }
        }
        if let Some(note) = &self.ledger.not_checked {
            let _ = writeln!(text, "ledger: {note}");
        }
        if let Some(dir) = &self.options.report_dir {
            let _ = writeln!(
                text,
                "reports: {} and {}",
                dir.join("report.json").display(),
                dir.join("report.html").display()
            );
        }
    }
}

/// Cents as yuan with two places.
fn yuan(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// The split's headline: how many transfers, and the shares of the time.
pub fn split_text(split: &PeerSplit) -> String {
    if split.sampled == 0 {
        return format!(
            "latency split at {}: no transfer sampled (1 in {}; {} without platform messages, \
             {} journals not read whole, {} dropped)",
            split.bureau, split.every, split.no_messages, split.unread, split.dropped
        );
    }
    let ms = |us: u64| us as f64 / 1000.0;
    let mean = |us: u64| ms(us) / split.sampled.max(1) as f64;
    let mut text = format!(
        "latency split at {} ({} transfers sampled, 1 in {}): at the peer {:.1} % \
         (mean {:.2} ms, p50 {:.2} ms, p99 {:.2} ms), in yibao {:.1} % (mean {:.2} ms, p50 \
         {:.2} ms, p99 {:.2} ms)",
        split.bureau,
        split.sampled,
        split.every,
        split.at_peer_share * 100.0,
        mean(split.at_peer_total_us),
        split.at_peer.p50_ms,
        split.at_peer.p99_ms,
        (1.0 - split.at_peer_share) * 100.0,
        mean(split.in_yibao_total_us),
        split.in_yibao.p50_ms,
        split.in_yibao.p99_ms,
    );
    let skipped = [
        (split.no_messages, "left out, no platform message"),
        (split.unread, "left out, journal not read whole"),
        (split.dropped, "not sampled, the splitter behind"),
    ];
    for (count, why) in skipped.into_iter().filter(|(count, _)| *count > 0) {
        text.push_str(&format!("; {why}: {count}"));
    }
    text
}

/// "closed loop, 64 in flight, 60 s" and the like.
pub fn pace_text(options: &LoadOptions) -> String {
    let pace = match options.pace {
        crate::options::Pace::Closed { concurrency } => {
            format!("closed loop, {concurrency} in flight")
        }
        crate::options::Pace::Open { rate_per_s, .. } => format!("open loop, {rate_per_s}/s"),
    };
    let mut limits = Vec::new();
    if let Some(duration) = options.stop.duration {
        limits.push(humantime::format_duration(duration).to_string());
    }
    if let Some(transfers) = options.stop.transfers {
        limits.push(format!("{transfers} transfers"));
    }
    format!("{pace}, {}", limits.join(" or "))
}

/// Writes a report file, creating its directory if needed.
pub(crate) fn write(path: &Path, text: &str) -> Result<(), LoadError> {
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(|source| LoadError::Write {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    std::fs::write(path, text).map_err(|source| LoadError::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(sampled: u64) -> PeerSplit {
        PeerSplit {
            bureau: "transfer-out",
            every: 10,
            sampled,
            no_messages: 0,
            unread: 1,
            dropped: 0,
            end_to_end: LatencySummary::default(),
            at_peer: LatencySummary::default(),
            in_yibao: LatencySummary::default(),
            end_to_end_total_us: 4_000 * sampled,
            at_peer_total_us: 1_000 * sampled,
            in_yibao_total_us: 3_000 * sampled,
            at_peer_share: 0.25,
        }
    }

    #[test]
    fn the_split_line_gives_the_shares_and_what_was_left_out() {
        let text = split_text(&split(8));
        assert!(text.contains("8 transfers sampled, 1 in 10"), "{text}");
        assert!(text.contains("at the peer 25.0 % (mean 1.00 ms"), "{text}");
        assert!(text.contains("in yibao 75.0 % (mean 3.00 ms"), "{text}");
        assert!(
            text.ends_with("; left out, journal not read whole: 1"),
            "{text}"
        );
        let none = split_text(&split(0));
        assert!(none.contains("no transfer sampled"), "{none}");
    }
}
