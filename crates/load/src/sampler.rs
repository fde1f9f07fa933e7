//! The once-a-second view of a running load: a [`Sample`] for the timeline (rate, failures,
//! in-flight, interval latency, CPU and memory per process) and the live progress bar's message.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use indicatif::ProgressBar;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::driver::Context;
use crate::metrics::{LatencySummary, Sample};
use crate::options::Stop;
use crate::procstat::Process;

/// How often the timeline is sampled and the progress bar redrawn.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// A closing interval shorter than this is not worth a sample of its own.
const SHORTEST_SAMPLE: Duration = Duration::from_millis(200);

/// What the sampler found.
#[derive(Debug, Default)]
pub struct Timeline {
    /// One sample per second.
    pub samples: Vec<Sample>,
    /// Seconds from the start until the run stopped starting transfers (to the second).
    pub applying_seconds: f64,
}

/// The counters at the previous sample, to turn totals into rates.
struct Sampler {
    context: Arc<Context>,
    processes: Vec<Process>,
    start: Instant,
    last_at: Instant,
    last_succeeded: u64,
    last_failed: u64,
    last_cpu: Vec<Option<f64>>,
}

impl Sampler {
    /// A sample of the interval since the last one, and the bar's message.
    fn sample(&mut self, now: Instant) -> (Sample, String) {
        let metrics = &self.context.metrics;
        let span = now.saturating_duration_since(self.last_at).as_secs_f64();
        let succeeded = metrics.succeeded.load(Ordering::Relaxed);
        let failed = metrics.failed.load(Ordering::Relaxed);
        let latency = LatencySummary::of(&metrics.interval_end_to_end.take());
        let mut cpu_cores = BTreeMap::new();
        let mut rss_mib = BTreeMap::new();
        for (process, last) in self.processes.iter().zip(self.last_cpu.iter_mut()) {
            let cpu = process.cpu_seconds();
            if let (Some(before), Some(after)) = (*last, cpu) {
                cpu_cores.insert(process.name.clone(), (after - before).max(0.0) / span);
            }
            *last = cpu;
            if let Some(memory) = process.memory() {
                rss_mib.insert(process.name.clone(), memory.rss_mib);
            }
        }
        let in_flight = metrics.in_flight.load(Ordering::Relaxed);
        let rate = succeeded.saturating_sub(self.last_succeeded) as f64 / span;
        let sample = Sample {
            at_s: now.saturating_duration_since(self.start).as_secs_f64(),
            succeeded_per_s: rate,
            failed_per_s: failed.saturating_sub(self.last_failed) as f64 / span,
            in_flight,
            p50_ms: latency.p50_ms,
            p99_ms: latency.p99_ms,
            cpu_cores,
            rss_mib,
        };
        let message = format!(
            "{rate:.0}/s, {succeeded} ok, {failed} failed, {in_flight} in flight, p99 {:.1} ms",
            latency.p99_ms
        );
        self.last_at = now;
        self.last_succeeded = succeeded;
        self.last_failed = failed;
        (sample, message)
    }
}

/// Samples once a second from `start` until `stopped` changes, moving `bar` along (by finished
/// transfers when the run is counted, else by seconds).
pub async fn run(
    context: Arc<Context>,
    processes: Vec<Process>,
    start: Instant,
    bar: ProgressBar,
    stop: Stop,
    mut stopped: watch::Receiver<bool>,
) -> Timeline {
    let mut sampler = Sampler {
        last_cpu: processes.iter().map(Process::cpu_seconds).collect(),
        context,
        processes,
        start,
        last_at: start,
        last_succeeded: 0,
        last_failed: 0,
    };
    let mut timeline = Timeline::default();
    let mut applying: Option<f64> = None;
    let mut ticks = tokio::time::interval_at(start + SAMPLE_EVERY, SAMPLE_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let finishing = tokio::select! {
            _ = ticks.tick() => false,
            _ = stopped.changed() => true,
        };
        let now = Instant::now();
        if applying.is_none() && sampler.context.stop.load(Ordering::Relaxed) {
            applying = Some(now.saturating_duration_since(start).as_secs_f64());
        }
        if now.saturating_duration_since(sampler.last_at) >= SHORTEST_SAMPLE {
            let (sample, message) = sampler.sample(now);
            timeline.samples.push(sample);
            match (stop.transfers, stop.duration) {
                (Some(_), None) => bar.set_position(sampler.context.metrics.finished()),
                _ => bar.set_position(now.saturating_duration_since(start).as_secs()),
            }
            bar.set_message(message);
        }
        if finishing {
            let total = start.elapsed().as_secs_f64();
            timeline.applying_seconds = applying.unwrap_or(total);
            return timeline;
        }
    }
}
