//! The load generator behind `yibao load` (issue 4): drives transfers through a transfer-out and
//! a transfer-in bureau and says how fast, how slow at the tail, and whether the books still
//! balance.
//!
//! A run, in order:
//! 1. **Target.** Running services (`--out`, `--in`), or `--spawn`: a private pair on ephemeral
//!    loopback ports with temporary data, stopped at the end.
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
mod driver;
mod error;
mod html;
mod ledger;
mod metrics;
mod options;
mod people;
mod procstat;
mod report;
mod seed;
mod spawn;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};
use yibao_proto::bureau::v1::bureau_service_client::BureauServiceClient;

pub use args::LoadArgs;
pub use baseline::Baseline;
pub use error::LoadError;
pub use ledger::{LedgerCheck, Totals};
pub use metrics::{LatencySummary, Sample};
pub use options::{
    DEFAULT_MIX, LoadOptions, MAX_PERSONS, Mix, Pace, SpawnOptions, Stop, Target, flow_named,
};
pub use procstat::{Memory, ProcessUsage};
pub use report::{Endpoints, Machine, Report, Transfers};
pub use seed::Seeding;

use crate::driver::Context;
use crate::metrics::Metrics;
use crate::people::People;
use crate::procstat::Process;

/// How long connecting to a service may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the timeline is sampled and the progress bar redrawn.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// The most calls in flight in the baseline.
const BASELINE_MAX_CONCURRENCY: usize = 1024;
/// The name of the generator's own process in reports.
const GENERATOR: &str = "yibao-load";
/// The name of the whole machine's CPU use in reports.
const MACHINE: &str = "machine (all processes)";

/// Runs a load test as `options` say; draws progress bars on standard error when `progress`.
///
/// Errors are for runs that could not be carried out (bad options, services unreachable,
/// seeding refused). A run whose transfers failed or whose ledger does not hold still returns
/// its [`Report`]: check [`Report::ledger_holds`] and [`Report::errors_total`].
pub async fn run(options: LoadOptions, progress: bool) -> Result<Report, LoadError> {
    options.validate()?;
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let draw = |target: ProgressDrawTarget| {
        if progress {
            target
        } else {
            ProgressDrawTarget::hidden()
        }
    };

    let spawned = match &options.target {
        Target::Spawn(spawn) => Some(spawn::SpawnedPair::start(spawn).await?),
        Target::Running { .. } => None,
    };
    let (out_endpoint, in_endpoint) = match (&options.target, &spawned) {
        (_, Some(pair)) => (pair.out.clone(), pair.inn.clone()),
        (Target::Running { out, inn }, None) => (out.clone(), inn.clone()),
        (Target::Spawn(_), None) => {
            return Err(LoadError::Spawn("the pair did not start".to_owned()));
        }
    };
    let out_channels = connect_all(&out_endpoint, options.connections).await?;
    let in_channels = connect_all(&in_endpoint, options.connections).await?;
    let (out_admin, in_admin) = match (out_channels.first(), in_channels.first()) {
        (Some(out), Some(inn)) => (out.clone(), inn.clone()),
        _ => return Err(LoadError::Options("connections must be at least 1".into())),
    };

    let persons = options.persons_to_seed();
    let mut warnings = Vec::new();
    if persons > options.persons {
        warnings.push(format!(
            "seeded {persons} persons instead of {} so every flow of the mix has enough people",
            options.persons
        ));
    }
    let bar = ProgressBar::with_draw_target(Some(persons), draw(ProgressDrawTarget::stderr()));
    bar.set_style(
        ProgressStyle::with_template("seeding {bar:40} {pos}/{len} persons ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let seeding = seed::seed(
        (out_admin.clone(), &out_endpoint),
        (in_admin.clone(), &in_endpoint),
        options.seed,
        options.first_person,
        persons,
        &bar,
    )
    .await?;
    bar.finish_and_clear();
    if seeding.written_out < persons / 2 && seeding.persons > 0 {
        warnings.push(format!(
            "only {} of {persons} persons were new at transfer-out: people used by an earlier \
             run cannot transfer again; give --first-person a fresh range",
            seeding.written_out
        ));
    }

    let all_channels: Vec<Channel> = out_channels
        .iter()
        .chain(in_channels.iter())
        .cloned()
        .collect();
    let baseline = match options.baseline {
        Some(duration) => {
            let concurrency = match options.pace {
                Pace::Closed { concurrency } => concurrency.max(options::DEFAULT_CONCURRENCY),
                Pace::Open { .. } => options::DEFAULT_CONCURRENCY,
            }
            .min(BASELINE_MAX_CONCURRENCY);
            let spinner = ProgressBar::with_draw_target(None, draw(ProgressDrawTarget::stderr()));
            spinner.set_message(format!(
                "baseline: grpc.health.v1 Check for {}",
                humantime::format_duration(duration)
            ));
            spinner.enable_steady_tick(Duration::from_millis(200));
            let measured = baseline::measure(all_channels.clone(), concurrency, duration).await;
            spinner.finish_and_clear();
            Some(measured)
        }
        None => None,
    };

    // The machine's total shows how much CPU went to other programs during the run.
    let mut processes = vec![Process::machine(MACHINE), Process::current(GENERATOR)];
    if let Some(pair) = &spawned {
        if let Some(pid) = pair.out_pid {
            processes.push(Process::other("transfer-out", pid));
        }
        if let Some(pid) = pair.in_pid {
            processes.push(Process::other("transfer-in", pid));
        }
    }
    let metrics = Arc::new(Metrics::default());
    let context = Arc::new(Context {
        out: out_channels
            .iter()
            .cloned()
            .map(BureauServiceClient::new)
            .collect(),
        inn: in_channels
            .iter()
            .cloned()
            .map(BureauServiceClient::new)
            .collect(),
        turn: AtomicUsize::new(0),
        metrics: metrics.clone(),
        people: People::new(
            options.seed,
            options.first_person,
            options.first_person + persons,
            &options.mix,
        ),
        run_id: format!("{:x}", chrono::Utc::now().timestamp_millis()),
        transfer_timeout: options.transfer_timeout,
        stop: AtomicBool::new(false),
        exhausted: std::sync::Mutex::new(None),
    });

    let bar = run_bar(&options, draw(ProgressDrawTarget::stderr()));
    let cpu_before: Vec<Option<f64>> = processes.iter().map(Process::cpu_seconds).collect();
    let start = Instant::now();
    let (stop_sampler, sampler_stopped) = tokio::sync::watch::channel(false);
    let sampler = tokio::spawn(sample(
        context.clone(),
        processes.clone(),
        start,
        bar.clone(),
        options.stop,
        sampler_stopped,
    ));
    driver::run_loop(context.clone(), options.pace, options.stop, start).await;
    let seconds = start.elapsed().as_secs_f64();
    let _ = stop_sampler.send(true);
    let (timeline, applying_seconds) = sampler.await.unwrap_or_default();
    bar.finish_and_clear();

    let settle = ProgressBar::with_draw_target(None, draw(ProgressDrawTarget::stderr()));
    settle.set_message("checking the ledger (waiting for open transfers to finish)");
    settle.enable_steady_tick(Duration::from_millis(200));
    let ledger = ledger::check(
        (out_admin, &out_endpoint),
        (in_admin, &in_endpoint),
        options.settle_timeout,
    )
    .await?;
    settle.finish_and_clear();

    let finished = metrics.finished();
    let usage = processes
        .iter()
        .zip(cpu_before)
        .map(|(process, before)| {
            let used = match (before, process.cpu_seconds()) {
                (Some(before), Some(after)) => (after - before).max(0.0),
                _ => 0.0,
            };
            ProcessUsage {
                name: process.name.clone(),
                cpu_seconds: used,
                cpu_cores: used / seconds.max(f64::EPSILON),
                cpu_ms_per_transfer: used * 1000.0 / (finished.max(1) as f64),
                memory: process.memory(),
            }
        })
        .collect();

    let succeeded = metrics.succeeded.load(Ordering::Relaxed);
    let per_s = succeeded as f64 / seconds.max(f64::EPSILON);
    let exhausted = context.exhausted.lock().ok().and_then(|e| *e);
    let stopped_because = match exhausted {
        Some(flow) => {
            warnings.push(format!(
                "the seeded people of flow {} ran out; seed more with --persons",
                flow.name()
            ));
            format!("flow {} ran out of seeded people", flow.name())
        }
        None => match options.stop.transfers {
            Some(limit) if metrics.started.load(Ordering::Relaxed) >= limit => {
                format!("{limit} transfers started")
            }
            _ => "duration reached".to_owned(),
        },
    };
    let min_one_second_per_s = timeline
        .iter()
        .skip(1)
        .filter(|s| s.at_s <= applying_seconds + 1e-6)
        .map(|s| s.succeeded_per_s)
        .reduce(f64::min);
    let transfers = Transfers {
        started: metrics.started.load(Ordering::Relaxed),
        succeeded,
        refused: metrics.refused.load(Ordering::Relaxed),
        failed: metrics.failed.load(Ordering::Relaxed),
        retries: metrics.retries.load(Ordering::Relaxed),
        applying_seconds,
        seconds,
        per_s,
        min_one_second_per_s,
        stopped_because,
    };
    let mut latency = BTreeMap::new();
    let mut add = |name: &str, histogram: &metrics::Latency| {
        let snapshot = histogram.snapshot();
        if !snapshot.is_empty() {
            latency.insert(name.to_owned(), LatencySummary::of(&snapshot));
        }
    };
    add("end-to-end (apply → terminal)", &metrics.end_to_end);
    if matches!(options.pace, Pace::Open { .. }) {
        add(
            "service time (actual start → terminal)",
            &metrics.service_time,
        );
        add("schedule lag (start − intended)", &metrics.schedule_lag);
    }
    add("ApplyTransfer", &metrics.apply);
    add("WatchTransfer (open → first message)", &metrics.watch_first);
    add(
        "WatchTransfer (first → terminal message)",
        &metrics.watch_to_terminal,
    );

    let report = Report {
        tool: format!("yibao-load {}", env!("CARGO_PKG_VERSION")),
        started_at,
        ratio_to_baseline: baseline
            .as_ref()
            .filter(|b| b.calls_per_s > 0.0)
            .map(|b| per_s / b.calls_per_s),
        options: options.clone(),
        endpoints: Endpoints {
            out: out_endpoint,
            inn: in_endpoint,
            spawned: spawned.is_some(),
        },
        machine: Machine::detect(),
        seeding,
        baseline,
        transfers,
        latency,
        errors: metrics.errors(),
        retried: metrics.retried_by_status(),
        error_examples: metrics.examples(),
        outcomes: metrics.outcomes(),
        timeline,
        processes: usage,
        ledger,
        warnings,
    };
    if let Some(dir) = &options.report_dir {
        report.write_json(&dir.join("report.json"))?;
        report.write_html(&dir.join("report.html"))?;
    }
    drop(spawned);
    Ok(report)
}

/// `count` HTTP/2 connections to one service.
async fn connect_all(endpoint: &str, count: usize) -> Result<Vec<Channel>, LoadError> {
    let mut channels = Vec::with_capacity(count);
    for _ in 0..count {
        let channel = Endpoint::from_shared(endpoint.to_owned())
            .map_err(|e| LoadError::Connect {
                endpoint: endpoint.to_owned(),
                message: e.to_string(),
            })?
            .tcp_nodelay(true)
            .connect_timeout(CONNECT_TIMEOUT)
            .connect()
            .await
            .map_err(|e| LoadError::Connect {
                endpoint: endpoint.to_owned(),
                message: e.to_string(),
            })?;
        channels.push(channel);
    }
    Ok(channels)
}

/// The live bar of the transfer phase: by transfers when counted, else by seconds.
fn run_bar(options: &LoadOptions, target: ProgressDrawTarget) -> ProgressBar {
    let (length, template) = match (options.stop.transfers, options.stop.duration) {
        (Some(transfers), None) => (
            transfers,
            "transfers {bar:30} {pos}/{len} {elapsed_precise} {msg}",
        ),
        (_, Some(duration)) => (
            duration.as_secs().max(1),
            "transfers {bar:30} {pos}/{len} s {msg}",
        ),
        (None, None) => (1, "transfers {spinner} {msg}"),
    };
    let bar = ProgressBar::with_draw_target(Some(length), target);
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Samples the run once a second until told to stop: the timeline, and the progress bar.
/// Returns the samples and how long the run was applying.
async fn sample(
    context: Arc<Context>,
    processes: Vec<Process>,
    start: Instant,
    bar: ProgressBar,
    stop: Stop,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) -> (Vec<Sample>, f64) {
    let metrics = &context.metrics;
    let mut samples = Vec::new();
    let mut last_at = start;
    let mut last_ok = 0u64;
    let mut last_failed = 0u64;
    let mut last_cpu: Vec<Option<f64>> = processes.iter().map(Process::cpu_seconds).collect();
    let mut applying_seconds: Option<f64> = None;
    let mut ticks = tokio::time::interval_at(start + SAMPLE_EVERY, SAMPLE_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let finishing = tokio::select! {
            _ = ticks.tick() => false,
            _ = stopped.changed() => true,
        };
        let now = Instant::now();
        let span = now.saturating_duration_since(last_at).as_secs_f64();
        if applying_seconds.is_none() && context.stop.load(Ordering::Relaxed) {
            applying_seconds = Some(now.saturating_duration_since(start).as_secs_f64());
        }
        if span >= 0.2 {
            let ok = metrics.succeeded.load(Ordering::Relaxed);
            let failed = metrics.failed.load(Ordering::Relaxed);
            let interval = metrics.interval_end_to_end.take();
            let summary = LatencySummary::of(&interval);
            let mut cpu_cores = BTreeMap::new();
            for (process, last) in processes.iter().zip(last_cpu.iter_mut()) {
                let now_cpu = process.cpu_seconds();
                if let (Some(before), Some(after)) = (*last, now_cpu) {
                    cpu_cores.insert(process.name.clone(), (after - before).max(0.0) / span);
                }
                *last = now_cpu;
            }
            let in_flight = metrics.in_flight.load(Ordering::Relaxed);
            let rate = (ok - last_ok) as f64 / span;
            samples.push(Sample {
                at_s: now.saturating_duration_since(start).as_secs_f64(),
                succeeded_per_s: rate,
                failed_per_s: (failed - last_failed) as f64 / span,
                in_flight,
                p50_ms: summary.p50_ms,
                p99_ms: summary.p99_ms,
                cpu_cores,
            });
            let elapsed = now.saturating_duration_since(start);
            match (stop.transfers, stop.duration) {
                (Some(_), None) => bar.set_position(metrics.finished()),
                _ => bar.set_position(elapsed.as_secs()),
            }
            bar.set_message(format!(
                "{rate:.0}/s, {ok} ok, {failed} failed, {in_flight} in flight, p99 {:.1} ms",
                summary.p99_ms
            ));
            last_at = now;
            last_ok = ok;
            last_failed = failed;
        }
        if finishing {
            let total = start.elapsed().as_secs_f64();
            return (samples, applying_seconds.unwrap_or(total));
        }
    }
}
