//! The load generator behind `yibao load` (issue 4): drives transfers through a transfer-out and
//! a transfer-in bureau and says how fast, how slow at the tail, and whether the books still
//! balance.
//!
//! A run, in order:
//! 1. **Target.** Running services (`--out`, `--in`), or `--spawn`: a private pair on ephemeral
//!    loopback ports with temporary data, stopped at the end. Admin calls present the token in
//!    `YIBAO_ADMIN_TOKEN` when it is set, and a spawned pair then requires it.
//! 2. **Seed.** The same synthetic people on both bureaus through the admin API, in chunks, with
//!    a progress bar. A person transfers once, so the run seeds enough people of every flow in
//!    the mix when it knows its size, and stops early (with a warning) when a flow runs out.
//! 3. **Baseline** (`--baseline`). Bare `grpc.health.v1.Health/Check` calls against the same
//!    services for a few seconds: the RPC rate the machine manages when there is no work.
//! 4. **Transfers.** A closed loop (`--concurrency` in flight) or an open loop (`--rate`, each
//!    latency measured from the intended start so a stall is not hidden by coordinated
//!    omission), for `--duration` or `--transfers`, in the `--mix` proportions. Each transfer is
//!    `ApplyTransfer` then `WatchTransfer` until a terminal state, at the bureau the flow
//!    applies at. HDR histograms hold the end-to-end and per-RPC latencies; errors are counted
//!    by gRPC status; a sample per second feeds the live progress bar and the timeline.
//! 5. **Ledger.** Wait (bounded) until no transfer is open at either bureau, then check
//!    conservation to the cent.
//! 6. **Report.** [`Report`]: JSON, a self-contained HTML page, a printed summary.
//!
//! With `--only out|in` the run drives one yibao bureau whose platform peer is the user's own
//! service: it seeds, applies (flows that start there), watches and checks the ledger at that
//! bureau alone (the report says the peer's ledger was not checked), and splits the latency of
//! sampled transfers into time at the peer and time in yibao (`split`).
//!
//! ```no_run
//! # async fn example() -> Result<(), yibao_load::LoadError> {
//! let mut options = yibao_load::LoadOptions::spawned();
//! options.stop.duration = Some(std::time::Duration::from_secs(10));
//! let report = yibao_load::run(options, false).await?;
//! report.print_summary();
//! assert!(report.ledger_holds());
//! # Ok(())
//! # }
//! ```

mod args;
mod baseline;
pub mod chaos;
mod driver;
mod error;
mod html;
mod ledger;
mod metrics;
mod options;
mod people;
mod phase;
mod procstat;
mod report;
mod sampler;
mod seed;
mod spawn;
mod split;

pub use args::LoadArgs;
pub use baseline::Baseline;
pub use error::LoadError;
pub use ledger::{LedgerCheck, Totals};
pub use metrics::{LatencySummary, PairCount, Sample};
pub use options::{
    DEFAULT_MIX, LoadOptions, MAX_PERSONS, Mix, Only, Pace, SpawnOptions, Stop, Target,
    TopologyTarget, flow_named,
};
pub use procstat::{Memory, ProcessUsage};
pub use report::{Endpoints, Machine, Report, Transfers};
pub use seed::Seeding;
pub use split::{PeerSplit, Split, split};

use crate::phase::{Bars, Services};

/// Runs a load test as `options` say; draws progress bars on standard error when `progress`.
///
/// Errors are for runs that could not be carried out (bad options, services unreachable,
/// seeding refused). A run whose transfers failed or whose ledger does not hold still returns
/// its [`Report`]: check [`Report::ledger_holds`] and [`Report::errors_total`]. When such a run
/// spawned its pair, the pair's data and logs are kept and a warning says where.
pub async fn run(options: LoadOptions, progress: bool) -> Result<Report, LoadError> {
    options.validate()?;
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let bars = Bars { progress };
    let mut services = Services::reach(&options).await?;

    let persons = options.persons_to_seed();
    let mut warnings = Vec::new();
    if persons > options.persons {
        warnings.push(format!(
            "seeded {persons} persons instead of {} so every flow of the mix has enough people",
            options.persons
        ));
    }
    let mut seeding = phase::seed(&options, &services, persons, bars).await?;
    warnings.extend(reused_people(&options, &seeding, persons));
    let baseline = match options.baseline {
        Some(duration) => Some(phase::baseline(&options, &services, duration, bars).await),
        None => None,
    };
    let mut transfers = phase::transfers(&options, &services, persons, bars).await;
    seeding.topped_up = transfers.topped_up;
    let ledger = phase::ledger(&options, &services, &mut transfers.usage, bars).await?;

    let summary = phase::transfers_summary(&options, &transfers, &mut warnings);
    let peer_split = transfers.split.take();
    let metrics = &transfers.metrics;
    let report = Report {
        tool: format!("yibao-load {}", env!("CARGO_PKG_VERSION")),
        started_at,
        ratio_to_baseline: baseline
            .as_ref()
            .filter(|b| b.calls_per_s > 0.0)
            .map(|b| summary.per_s / b.calls_per_s),
        latency: phase::latency_summaries(&options, metrics, peer_split.as_ref()),
        errors: metrics.errors(),
        retried: metrics.retried_by_status(),
        error_examples: metrics.examples(),
        outcomes: metrics.outcomes(),
        pairs: metrics.pairs(),
        endpoints: Endpoints {
            out: services.out_endpoint().to_owned(),
            inn: services.in_endpoint().to_owned(),
            spawned: services.spawned(),
            peer: peer_endpoint(&options),
            bureaus: services.named_endpoints(),
        },
        peer_split,
        options,
        machine: Machine::detect(),
        seeding,
        baseline,
        transfers: summary,
        timeline: std::mem::take(&mut transfers.timeline.samples),
        processes: transfers.usage,
        ledger,
        warnings,
    };
    finish(report, &mut services)
}

/// The warning of a run whose people were mostly seeded before (they cannot transfer again):
/// fewer than half new at transfer-out (or the one bureau a run drives, or any bureau of a
/// topology).
fn reused_people(options: &LoadOptions, seeding: &Seeding, persons: u64) -> Option<String> {
    let most = seeding.written_by_bureau.values().copied().max();
    let (written, at) = match (options.only, most) {
        (_, Some(most)) => (most, "any bureau"),
        (Some(Only::TransferIn), None) => (seeding.written_in, "transfer-in"),
        _ => (seeding.written_out, "transfer-out"),
    };
    (written < persons / 2).then(|| {
        format!(
            "only {written} of {persons} persons were new at {at}: people used by an earlier \
             run cannot transfer again; give --first-person a fresh range"
        )
    })
}

/// The user's service's platform endpoint, when the run spawned the bureau that calls it.
fn peer_endpoint(options: &LoadOptions) -> Option<String> {
    match &options.target {
        Target::Spawn(spawn) if options.only.is_some() => spawn.peer.clone(),
        _ => None,
    }
}

/// Keeps a spawned pair's data when the run failed (saying so in the report), then writes the
/// reports if asked to.
fn finish(mut report: Report, services: &mut Services) -> Result<Report, LoadError> {
    if !(report.ledger.holds && report.errors.is_empty())
        && let Some(kept) = services.keep_data()
    {
        report.warnings.push(format!(
            "the spawned services' data and logs are kept in {}",
            kept.display()
        ));
    }
    if let Some(dir) = &report.options.report_dir {
        report.write_json(&dir.join("report.json"))?;
        report.write_html(&dir.join("report.html"))?;
    }
    Ok(report)
}
