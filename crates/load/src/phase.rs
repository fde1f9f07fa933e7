//! The phases of a run, in order: reach the services (or start them), seed, measure the
//! baseline, drive transfers, check the ledger. Each phase is one function; [`crate::run`]
//! strings them together and assembles the report. A run with `--only` does each at the one
//! bureau it drives.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};
use yibao_domain::population::{Flow, MAX_INDEX};
use yibao_harness::{AdminClient, admin_client};
use yibao_proto::bureau::v1::bureau_service_client::BureauServiceClient;
use yibao_runtime::directory::RegionDirectory;

use crate::baseline::{self, Baseline};
use crate::driver::{self, Context, Routes};
use crate::error::LoadError;
use crate::ledger::{self, LedgerCheck};
use crate::metrics::{Latency, LatencySummary, Metrics};
use crate::options::{DEFAULT_CONCURRENCY, LoadOptions, Only, Pace, Target, TopologyTarget};
use crate::people::People;
use crate::procstat::{Process, ProcessUsage};
use crate::report::Transfers;
use crate::sampler::{self, Timeline};
use crate::seed::{self, Named, Seeding};
use crate::spawn::SpawnedPair;
use crate::split::{self, PeerSplit, Sampler};

/// How long connecting to a service may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The most calls in flight in the baseline.
const BASELINE_MAX_CONCURRENCY: usize = 1024;
/// How often a spinner moves.
const SPIN_EVERY: Duration = Duration::from_millis(200);
/// The name of the generator's own process in reports.
const GENERATOR: &str = "yibao-load";
/// The name of the whole machine's CPU use in reports.
pub const MACHINE: &str = "machine (all processes)";

/// Progress bars on standard error, or none.
#[derive(Clone, Copy, Debug)]
pub struct Bars {
    /// Whether to draw them.
    pub progress: bool,
}

impl Bars {
    fn target(self) -> ProgressDrawTarget {
        if self.progress {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        }
    }

    /// A bar of `length` steps drawn with `template`.
    fn bar(self, length: u64, template: &str) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(Some(length), self.target());
        bar.set_style(
            ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    }

    /// A spinner saying what the run is doing.
    fn spinner(self, message: String) -> ProgressBar {
        let spinner = ProgressBar::with_draw_target(None, self.target());
        spinner.set_message(message);
        spinner.enable_steady_tick(SPIN_EVERY);
        spinner
    }
}

/// One bureau a run drives: its endpoint, connections and admin client.
#[derive(Debug)]
struct Reached {
    /// Its endpoint: several replicas' comma-separated.
    endpoint: String,
    /// Connections to it (at least one per replica), replica by replica.
    channels: Vec<Channel>,
    /// An admin client of each replica (presenting the run's admin token, if any), with its
    /// endpoint; the first is the one seeding uses.
    admins: Vec<(AdminClient, String)>,
}

impl Reached {
    /// `count` connections to each replica `endpoint` names (comma-separated).
    async fn connect(
        endpoint: String,
        count: usize,
        options: &LoadOptions,
    ) -> Result<Reached, LoadError> {
        let mut channels = Vec::new();
        let mut admins = Vec::new();
        for replica in endpoint.split(',') {
            let connected = connect_all(replica, count.max(1)).await?;
            if let Some(first) = connected.first().cloned() {
                let admin = admin_client(first, options.admin_token.as_ref());
                admins.push((admin, replica.to_owned()));
            }
            channels.extend(connected);
        }
        if admins.is_empty() {
            return Err(LoadError::Options(
                "connections must be at least 1".to_owned(),
            ));
        }
        Ok(Reached {
            endpoint,
            channels,
            admins,
        })
    }

    /// Its (first replica's) admin client and endpoint.
    fn admin(&self) -> (AdminClient, &str) {
        let (admin, endpoint) = &self.admins[0];
        (admin.clone(), endpoint)
    }

    /// The admin client and endpoint of the first replica that answers a health check now (of
    /// the first one, when none does: its error is the one reported).
    async fn answering_admin(&self) -> (AdminClient, &str) {
        let per_replica = (self.channels.len() / self.admins.len()).max(1);
        for (replica, (admin, endpoint)) in self.admins.iter().enumerate() {
            if let Some(channel) = self.channels.get(replica * per_replica)
                && answers(channel.clone()).await
            {
                return (admin.clone(), endpoint);
            }
        }
        self.admin()
    }
}

/// Whether the service behind `channel` answers a health check within [`CONNECT_TIMEOUT`].
async fn answers(channel: Channel) -> bool {
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let check = health.check(tonic_health::pb::HealthCheckRequest::default());
    matches!(
        tokio::time::timeout(CONNECT_TIMEOUT, check).await,
        Ok(Ok(_))
    )
}

/// The services a run drives — both bureaus, or with `--only` one — and its connections.
#[derive(Debug)]
pub struct Services {
    /// The services this run started, if it did; stopped when dropped.
    spawned: Option<SpawnedPair>,
    /// transfer-out, unless the run drives transfer-in alone.
    out: Option<Reached>,
    /// transfer-in, unless the run drives transfer-out alone.
    inn: Option<Reached>,
    /// In a run over a topology: every bureau, by name in name order (`out` and `inn` are
    /// none then).
    named: Vec<(String, Reached)>,
    /// In a run over a topology: the region directory, which says who hosts which region.
    directory: Option<RegionDirectory>,
}

impl Services {
    /// Starts the services when asked to, then connects to each one the run drives.
    pub async fn reach(options: &LoadOptions) -> Result<Services, LoadError> {
        let drives = |side: Only| options.only.is_none_or(|only| only == side);
        let (spawned, out, inn) = match &options.target {
            Target::Topology(topology) => return Services::reach_topology(options, topology).await,
            Target::Spawn(spawn) => {
                let pair =
                    SpawnedPair::start(spawn, options.only, options.admin_token.as_ref()).await?;
                let (out, inn) = (pair.out.clone(), pair.inn.clone());
                (Some(pair), out, inn)
            }
            Target::Running { out, inn } => (
                None,
                drives(Only::TransferOut).then(|| out.clone()),
                drives(Only::TransferIn).then(|| inn.clone()),
            ),
        };
        let count = options.connections;
        let out = match out {
            Some(endpoint) => Some(Reached::connect(endpoint, count, options).await?),
            None => None,
        };
        let inn = match inn {
            Some(endpoint) => Some(Reached::connect(endpoint, count, options).await?),
            None => None,
        };
        Ok(Services {
            spawned,
            out,
            inn,
            named: Vec::new(),
            directory: None,
        })
    }

    /// Starts every bureau of the topology when asked to (else takes the running ones as
    /// named), then connects to each.
    async fn reach_topology(
        options: &LoadOptions,
        topology: &TopologyTarget,
    ) -> Result<Services, LoadError> {
        let directory = RegionDirectory::load(&topology.directory).map_err(|error| {
            LoadError::Options(format!(
                "region directory {}: {error}",
                topology.directory.display()
            ))
        })?;
        let (spawned, endpoints) = match &topology.spawn {
            Some(spawn) => {
                let started = SpawnedPair::start_topology(
                    spawn,
                    &topology.directory,
                    options.admin_token.as_ref(),
                )
                .await?;
                let endpoints: Vec<(String, String)> = started
                    .bureaus
                    .iter()
                    .map(|bureau| (bureau.name.clone(), bureau.endpoint.clone()))
                    .collect();
                (Some(started), endpoints)
            }
            None => (None, topology.bureaus.clone()),
        };
        for bureau in directory.bureaus() {
            if !endpoints.iter().any(|(name, _)| name == bureau.as_str()) {
                return Err(LoadError::Options(format!(
                    "bureau `{bureau}` hosts regions of {} but has no endpoint: add --bureau \
                     {bureau}=URL",
                    topology.directory.display()
                )));
            }
        }
        let mut named = Vec::with_capacity(endpoints.len());
        for (name, endpoint) in endpoints {
            named.push((
                name,
                Reached::connect(endpoint, options.connections, options).await?,
            ));
        }
        named.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Services {
            spawned,
            out: None,
            inn: None,
            named,
            directory: Some(directory),
        })
    }

    /// In a run over a topology: each bureau's name and endpoint.
    pub fn named_endpoints(&self) -> Vec<(String, String)> {
        self.named
            .iter()
            .map(|(name, reached)| (name.clone(), reached.endpoint.clone()))
            .collect()
    }

    /// In a run over a topology: each bureau to seed or check.
    fn named_admins(&self) -> Vec<Named> {
        self.named
            .iter()
            .map(|(name, reached)| Named {
                name: name.clone(),
                admin: reached.admin().0,
                endpoint: reached.endpoint.clone(),
            })
            .collect()
    }

    /// Whether this run started the services.
    pub fn spawned(&self) -> bool {
        self.spawned.is_some()
    }

    /// Keeps the spawned services' data and logs after they stop; where they are.
    pub fn keep_data(&mut self) -> Option<PathBuf> {
        self.spawned.as_mut().map(SpawnedPair::keep_data)
    }

    /// transfer-out's endpoint, or empty when the run does not drive it.
    pub fn out_endpoint(&self) -> &str {
        self.out.as_ref().map_or("", |out| out.endpoint.as_str())
    }

    /// transfer-in's endpoint, or empty when the run does not drive it.
    pub fn in_endpoint(&self) -> &str {
        self.inn.as_ref().map_or("", |inn| inn.endpoint.as_str())
    }

    /// The admin client of transfer-out and its endpoint, when the run drives it.
    fn out_admin(&self) -> Option<(AdminClient, &str)> {
        self.out.as_ref().map(Reached::admin)
    }

    /// The admin client of transfer-in and its endpoint, when the run drives it.
    fn in_admin(&self) -> Option<(AdminClient, &str)> {
        self.inn.as_ref().map(Reached::admin)
    }

    /// The admin clients of a replica of each bureau the run drives that answers now (one may
    /// have died during the run).
    async fn answering_admins(&self) -> [Option<(AdminClient, &str)>; 2] {
        let mut answering = [None, None];
        for (slot, reached) in answering.iter_mut().zip([&self.out, &self.inn]) {
            if let Some(reached) = reached {
                *slot = Some(reached.answering_admin().await);
            }
        }
        answering
    }

    /// The connections to a bureau (none when the run does not drive it).
    fn channels(&self, only: Only) -> &[Channel] {
        let reached = match only {
            Only::TransferOut => &self.out,
            Only::TransferIn => &self.inn,
        };
        reached
            .as_ref()
            .map_or(&[], |reached| reached.channels.as_slice())
    }

    /// The processes whose CPU and memory the report shows: the machine as a whole, the
    /// generator, and the services when this run started them.
    fn processes(&self) -> Vec<Process> {
        let mut processes = vec![Process::machine(MACHINE), Process::current(GENERATOR)];
        if let Some(pair) = &self.spawned {
            for bureau in &pair.bureaus {
                if let Some(pid) = bureau.pid {
                    processes.push(Process::other(&bureau.name, pid));
                }
            }
            if let Some(pid) = pair.out_pid {
                processes.push(Process::other("transfer-out", pid));
            }
            if let Some(pid) = pair.in_pid {
                processes.push(Process::other("transfer-in", pid));
            }
        }
        processes
    }
}

/// `count` HTTP/2 connections to one service.
async fn connect_all(endpoint: &str, count: usize) -> Result<Vec<Channel>, LoadError> {
    let failed = |message: String| LoadError::Connect {
        endpoint: endpoint.to_owned(),
        message,
    };
    let mut channels = Vec::with_capacity(count);
    for _ in 0..count {
        let channel = Endpoint::from_shared(endpoint.to_owned())
            .map_err(|e| failed(e.to_string()))?
            .tcp_nodelay(true)
            .connect_timeout(CONNECT_TIMEOUT)
            .connect()
            .await
            .map_err(|e| failed(e.to_string()))?;
        channels.push(channel);
    }
    Ok(channels)
}

/// Seeds `persons` people at both bureaus, with a progress bar.
pub async fn seed(
    options: &LoadOptions,
    services: &Services,
    persons: u64,
    bars: Bars,
) -> Result<Seeding, LoadError> {
    let bar = bars.bar(
        persons,
        "seeding {bar:40} {pos}/{len} persons ({per_sec}, eta {eta})",
    );
    let named = services.named_admins();
    let seeding = if named.is_empty() {
        seed::seed(
            services.out_admin(),
            services.in_admin(),
            options.seed,
            options.first_person,
            persons,
            &bar,
        )
        .await
    } else {
        seed::seed_named(&named, options.seed, options.first_person, persons, &bar).await
    };
    bar.finish_and_clear();
    seeding
}

/// Measures bare health checks for `duration` over every connection.
pub async fn baseline(
    options: &LoadOptions,
    services: &Services,
    duration: Duration,
    bars: Bars,
) -> Baseline {
    let concurrency = match options.pace {
        Pace::Closed { concurrency } => concurrency.max(DEFAULT_CONCURRENCY),
        Pace::Open { .. } => DEFAULT_CONCURRENCY,
    }
    .min(BASELINE_MAX_CONCURRENCY);
    let spinner = bars.spinner(format!(
        "baseline: grpc.health.v1 Check for {}",
        humantime::format_duration(duration)
    ));
    let channels: Vec<Channel> = services
        .channels(Only::TransferOut)
        .iter()
        .chain(services.channels(Only::TransferIn))
        .chain(services.named.iter().flat_map(|(_, r)| &r.channels))
        .cloned()
        .collect();
    let measured = baseline::measure(channels, concurrency, duration).await;
    spinner.finish_and_clear();
    measured
}

/// What the transfer phase leaves behind.
#[derive(Debug)]
pub struct TransferPhase {
    /// Everything counted.
    pub metrics: Arc<Metrics>,
    /// The per-second samples.
    pub timeline: Timeline,
    /// From the first application to the last transfer finishing.
    pub seconds: f64,
    /// CPU used by each measured process during the phase.
    pub usage: Vec<ProcessUsage>,
    /// The flow that ran out of people, if one did.
    pub exhausted: Option<Flow>,
    /// People seeded during the run to keep ahead of it.
    pub topped_up: u64,
    /// In a run that drives one bureau: the latency split of the sampled transfers.
    pub split: Option<PeerSplit>,
}

/// Drives transfers in the options' loop among people `first_person .. first_person + persons`.
pub async fn transfers(
    options: &LoadOptions,
    services: &Services,
    persons: u64,
    bars: Bars,
) -> TransferPhase {
    let metrics = Arc::new(Metrics::default());
    let (sampler, splitting) = splitter(options, services);
    let context = new_context(options, services, persons, metrics.clone(), sampler);
    let (stop_topping, topping_stopped) = tokio::sync::watch::channel(false);
    let owned = |(client, endpoint): (AdminClient, &str)| (client, endpoint.to_owned());
    let topping = tokio::spawn(top_up(
        context.clone(),
        options.top_up_ahead,
        Seeded {
            out: services.out_admin().map(owned),
            inn: services.in_admin().map(owned),
            named: services.named_admins(),
        },
        options.seed,
        topping_stopped,
    ));
    let processes = services.processes();
    let bar = transfer_bar(options, bars);
    let cpu_before: Vec<Option<f64>> = processes.iter().map(Process::cpu_seconds).collect();
    let start = Instant::now();
    let (stop_sampler, sampler_stopped) = tokio::sync::watch::channel(false);
    let sampling = tokio::spawn(sampler::run(
        context.clone(),
        processes.clone(),
        start,
        bar.clone(),
        options.stop,
        sampler_stopped,
    ));
    driver::run_loop(context.clone(), options.pace, options.stop, start).await;
    let seconds = start.elapsed().as_secs_f64();
    // The sampler only ends when told to; a send error means it already ended.
    let _ = stop_sampler.send(true);
    let timeline = sampling.await.unwrap_or_default();
    let _ = stop_topping.send(true);
    let topped_up = topping.await.unwrap_or_default();
    let split = match splitting {
        Some((stop, task)) => {
            // The splitter only ends when told to; a send error means it already ended.
            let _ = stop.send(true);
            let dropped = context.split.as_ref().map_or(0, Sampler::dropped);
            task.await.ok().map(|split| PeerSplit { dropped, ..split })
        }
        None => None,
    };
    bar.finish_and_clear();
    let finished = metrics.finished().max(1) as f64;
    let usage = cpu_usage(&processes, cpu_before, seconds, finished);
    let exhausted = context.exhausted.lock().ok().and_then(|flow| *flow);
    TransferPhase {
        metrics,
        timeline,
        seconds,
        usage,
        exhausted,
        topped_up,
        split,
    }
}

/// A finished splitter's report, and how to stop it.
type Splitting = (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<PeerSplit>,
);

/// In a run that drives one bureau, the sampler the transfers offer themselves to and the
/// splitter reading the samples' journals there; none otherwise.
fn splitter(options: &LoadOptions, services: &Services) -> (Option<Sampler>, Option<Splitting>) {
    let Some(only) = options.only else {
        return (None, None);
    };
    let admin = match only {
        Only::TransferOut => services.out_admin(),
        Only::TransferIn => services.in_admin(),
    };
    let Some((admin, _)) = admin else {
        return (None, None);
    };
    let (sampler, samples) = Sampler::new(options.split_every);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(split::run(
        only,
        admin,
        samples,
        stopped,
        options.split_every,
    ));
    (Some(sampler), Some((stop, task)))
}

/// What the transfer loop shares: clients of every connection, the people of the run, the
/// metrics.
fn new_context(
    options: &LoadOptions,
    services: &Services,
    persons: u64,
    metrics: Arc<Metrics>,
    split: Option<Sampler>,
) -> Arc<Context> {
    let clients = |channels: &[Channel]| -> Vec<BureauServiceClient<Channel>> {
        channels
            .iter()
            .cloned()
            .map(BureauServiceClient::new)
            .collect()
    };
    let routes = services.directory.clone().map(|directory| Routes {
        directory,
        bureaus: services
            .named
            .iter()
            .map(|(name, reached)| (name.clone(), clients(&reached.channels)))
            .collect(),
    });
    Arc::new(Context {
        routes,
        out: clients(services.channels(Only::TransferOut)),
        inn: clients(services.channels(Only::TransferIn)),
        connections: options.connections.max(1),
        turn: AtomicUsize::new(0),
        metrics,
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
        topping_up: options.top_up_ahead > 0,
        split,
    })
}

/// Each process's CPU over the phase (`cpu_before` read at its start), per second and per
/// finished transfer, with its memory now.
fn cpu_usage(
    processes: &[Process],
    cpu_before: Vec<Option<f64>>,
    seconds: f64,
    finished: f64,
) -> Vec<ProcessUsage> {
    processes
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
                cpu_ms_per_transfer: used * 1000.0 / finished,
                memory_after_transfers: process.memory(),
                memory: None,
            }
        })
        .collect()
}

/// How often the top-up looks.
const TOP_UP_EVERY: Duration = Duration::from_millis(200);

/// Keeps the seeded population ahead of the run (a person transfers once): seeds the next
/// people at both bureaus whenever fewer than `ahead` applications' worth are left. Returns how
/// many people it seeded.
async fn top_up(
    context: Arc<Context>,
    ahead: u64,
    bureaus: Seeded,
    seed: u64,
    stopped: tokio::sync::watch::Receiver<bool>,
) -> u64 {
    let seeded = seeding_ahead(&context, ahead, bureaus, seed, stopped).await;
    // Applications waiting for people look again, and find the run stopped or no more coming.
    context.people.wake();
    seeded
}

/// The bureaus a top-up seeds: the pair's (or the one a run drives), or a topology's.
struct Seeded {
    out: Option<(AdminClient, String)>,
    inn: Option<(AdminClient, String)>,
    named: Vec<Named>,
}

impl Seeded {
    /// Seeds `count` people from `first` at every bureau.
    async fn seed(&self, seed: u64, first: u64, count: u64) -> Result<Seeding, LoadError> {
        let bar = ProgressBar::hidden();
        if self.named.is_empty() {
            seed::seed(
                borrowed(&self.out),
                borrowed(&self.inn),
                seed,
                first,
                count,
                &bar,
            )
            .await
        } else {
            seed::seed_named(&self.named, seed, first, count, &bar).await
        }
    }
}

async fn seeding_ahead(
    context: &Arc<Context>,
    ahead: u64,
    bureaus: Seeded,
    seed: u64,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) -> u64 {
    let mut seeded = 0;
    loop {
        if *stopped.borrow() || context.stop.load(Ordering::Relaxed) {
            return seeded;
        }
        let end = context.people.end();
        let wanted = if ahead == 0 {
            0
        } else {
            context.people.wanted(ahead).min(MAX_INDEX)
        };
        if wanted > end {
            // At least a chunk's worth (or `ahead`, if that is less), so seeding is not a
            // call per handful of people.
            let count = (wanted - end)
                .max(ahead.min(seed::CHUNK))
                .min(MAX_INDEX - end);
            let done = bureaus.seed(seed, end, count).await;
            match done {
                Ok(_) => {
                    context.people.seeded_to(end + count);
                    seeded += count;
                }
                Err(error) => {
                    tracing::warn!(%error, "topping up the population failed; the run goes on with what is seeded");
                    return seeded;
                }
            }
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(TOP_UP_EVERY) => {}
            _ = stopped.changed() => return seeded,
        }
        if *stopped.borrow() || context.stop.load(Ordering::Relaxed) {
            return seeded;
        }
    }
}

/// A bureau to seed, borrowed from the one the top-up owns.
fn borrowed(bureau: &Option<(AdminClient, String)>) -> Option<(AdminClient, &str)> {
    bureau
        .as_ref()
        .map(|(admin, endpoint)| (admin.clone(), endpoint.as_str()))
}

/// The live bar of the transfer phase: by transfers when counted, else by seconds.
fn transfer_bar(options: &LoadOptions, bars: Bars) -> ProgressBar {
    match (options.stop.transfers, options.stop.duration) {
        (Some(transfers), None) => bars.bar(
            transfers,
            "transfers {bar:30} {pos}/{len} {elapsed_precise} {msg}",
        ),
        (_, Some(duration)) => bars.bar(
            duration.as_secs().max(1),
            "transfers {bar:30} {pos}/{len} s {msg}",
        ),
        (None, None) => bars.bar(1, "transfers {spinner} {msg}"),
    }
}

/// Waits for open transfers to finish, then checks conservation; afterwards reads each
/// process's memory into `usage`.
pub async fn ledger(
    options: &LoadOptions,
    services: &Services,
    usage: &mut [ProcessUsage],
    bars: Bars,
) -> Result<LedgerCheck, LoadError> {
    let spinner =
        bars.spinner("checking the ledger (waiting for open transfers to finish)".to_owned());
    let named: Vec<ledger::NamedChecked> = services
        .named_admins()
        .into_iter()
        .map(|bureau| (bureau.name, bureau.admin, bureau.endpoint))
        .collect();
    let check = if named.is_empty() {
        let [out, inn] = services.answering_admins().await;
        ledger::check(out, inn, options.settle_timeout).await
    } else {
        ledger::check_named(&named, options.settle_timeout).await
    };
    spinner.finish_and_clear();
    for (entry, process) in usage.iter_mut().zip(services.processes()) {
        entry.memory = process.memory();
    }
    check
}

/// The transfer counts and throughput of a phase, and why it stopped (adding a warning when a
/// flow ran out of people).
pub fn transfers_summary(
    options: &LoadOptions,
    phase: &TransferPhase,
    warnings: &mut Vec<String>,
) -> Transfers {
    let metrics = &phase.metrics;
    let started = metrics.started.load(Ordering::Relaxed);
    let succeeded = metrics.succeeded.load(Ordering::Relaxed);
    let stopped_because = match (phase.exhausted, options.stop.transfers) {
        (Some(flow), _) => {
            warnings.push(format!(
                "the seeded people of flow {} ran out; seed more with --persons",
                flow.name()
            ));
            format!("flow {} ran out of seeded people", flow.name())
        }
        (None, Some(limit)) if started >= limit => format!("{limit} transfers started"),
        (None, _) => "duration reached".to_owned(),
    };
    let applying_seconds = phase.timeline.applying_seconds;
    let min_one_second_per_s = phase
        .timeline
        .samples
        .iter()
        .skip(1)
        .filter(|s| s.at_s <= applying_seconds + 1e-6)
        .map(|s| s.succeeded_per_s)
        .reduce(f64::min);
    Transfers {
        started,
        succeeded,
        refused: metrics.refused.load(Ordering::Relaxed),
        failed: metrics.failed.load(Ordering::Relaxed),
        retries: metrics.retries.load(Ordering::Relaxed),
        applying_seconds,
        seconds: phase.seconds,
        per_s: succeeded as f64 / phase.seconds.max(f64::EPSILON),
        min_one_second_per_s,
        stopped_because,
    }
}

/// The latency summaries of a phase, by name (empty histograms left out).
pub fn latency_summaries(
    options: &LoadOptions,
    metrics: &Metrics,
    split: Option<&PeerSplit>,
) -> BTreeMap<String, LatencySummary> {
    let mut histograms: Vec<(&str, &Latency)> =
        vec![("end-to-end (apply → terminal)", &metrics.end_to_end)];
    if matches!(options.pace, Pace::Open { .. }) {
        histograms.push((
            "service time (actual start → terminal)",
            &metrics.service_time,
        ));
        histograms.push(("schedule lag (start − intended)", &metrics.schedule_lag));
    }
    histograms.push(("ApplyTransfer", &metrics.apply));
    histograms.push(("WatchTransfer (open → first message)", &metrics.watch_first));
    histograms.push((
        "WatchTransfer (first → terminal message)",
        &metrics.watch_to_terminal,
    ));
    let mut summaries: BTreeMap<String, LatencySummary> = histograms
        .into_iter()
        .map(|(name, latency)| (name, latency.snapshot()))
        .filter(|(_, snapshot)| !snapshot.is_empty())
        .map(|(name, snapshot)| (name.to_owned(), LatencySummary::of(&snapshot)))
        .collect();
    if let Some(split) = split.filter(|split| split.sampled > 0) {
        for (name, summary) in [
            (SPLIT_END_TO_END, &split.end_to_end),
            (SPLIT_AT_PEER, &split.at_peer),
            (SPLIT_IN_YIBAO, &split.in_yibao),
        ] {
            summaries.insert(name.to_owned(), summary.clone());
        }
    }
    summaries
}

/// The latency table's names of the split's three parts.
pub const SPLIT_END_TO_END: &str = "split: end-to-end (sampled)";
/// Of the sampled transfers' latency, time at the peer.
pub const SPLIT_AT_PEER: &str = "split: at the peer";
/// Of the sampled transfers' latency, time in yibao.
pub const SPLIT_IN_YIBAO: &str = "split: in yibao";
