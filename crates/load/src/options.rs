//! What a load run does, independent of any command line: where the services are (or that the
//! run starts its own pair), whether it drives both bureaus or only one whose platform peer is
//! the user's own service, how many people to seed, how fast to apply, for how long, and which
//! flows in which proportions. [`LoadOptions::validate`] checks every limit before anything runs.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use yibao_domain::population::{self, ApplyAt, Flow};
use yibao_harness::AdminToken;

use crate::error::LoadError;

/// The default flow mix: mostly connected cross-province transfers, some bank payouts, some
/// shared-account moves within a province, some refusals.
pub const DEFAULT_MIX: &str = "connected=80,not-connected=10,intra-province=5,refused=5";
/// The default population size.
pub const DEFAULT_PERSONS: u64 = 100_000;
/// The most people a run seeds (and the most a single `SeedPopulation` call accepts).
pub const MAX_PERSONS: u64 = 1_000_000;
/// The default population seed.
pub const DEFAULT_SEED: u64 = 2026;
/// The default number of transfers in flight in a closed loop: enough to keep both bureaus'
/// batches full on the two-core machine the targets are set for (BENCHMARKS.md).
pub const DEFAULT_CONCURRENCY: usize = 512;
/// By default the population is kept this many applications ahead of the run.
pub const DEFAULT_TOP_UP_AHEAD: u64 = 30_000;
/// The most transfers in flight, in either loop: a limit on memory and open streams.
pub const MAX_IN_FLIGHT: usize = 50_000;
/// The default length of a run.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(60);
/// The most HTTP/2 connections the generator opens to each service.
pub const MAX_CONNECTIONS: usize = 64;
/// By default one transfer in this many has its latency split into time at the peer and time
/// in yibao, in a run that drives one bureau (each costs the bureau one journal lookup).
pub const DEFAULT_SPLIT_EVERY: u64 = 10;

/// Everything a load run needs to know. Build it directly or from [`crate::LoadArgs`].
#[derive(Clone, Debug, Serialize)]
pub struct LoadOptions {
    /// Which services the run drives.
    pub target: Target,
    /// Drive only this yibao bureau: its platform peer is the user's own service, which the run
    /// neither drives nor checks. Only flows that start at this bureau apply, only its ledger is
    /// checked, and the latency of sampled transfers is split into time at the peer and time in
    /// yibao. `None`: both bureaus are yibao's.
    pub only: Option<Only>,
    /// In a run with [`LoadOptions::only`], one transfer in this many (that ended as its flow
    /// expects) has its latency split; 1 splits every one.
    pub split_every: u64,
    /// How many people to seed (at least; a run with a known number of transfers seeds enough
    /// people of every flow in the mix). At most [`MAX_PERSONS`].
    pub persons: u64,
    /// The population index of the first person this run seeds and uses. Runs against the same
    /// long-lived services must use fresh people: a person who transferred is no longer
    /// insured at the transfer-out region.
    pub first_person: u64,
    /// The population seed, so both bureaus see the same people.
    pub seed: u64,
    /// Closed or open loop.
    pub pace: Pace,
    /// When the run stops.
    pub stop: Stop,
    /// Which flows, in which proportions.
    pub mix: Mix,
    /// When set, bare `grpc.health.v1.Health/Check` calls are measured for this long before the
    /// transfers, against the same services, as the yardstick for the transfer rate.
    pub baseline: Option<Duration>,
    /// Where the JSON and HTML reports go; none writes no report files.
    pub report_dir: Option<PathBuf>,
    /// HTTP/2 connections to each service. One tonic channel is driven by one task, so a few
    /// connections help when the generator has cores to spare; on a small machine one is best.
    pub connections: usize,
    /// How long one transfer may take from application to terminal state before the run counts
    /// it as an error.
    pub transfer_timeout: Duration,
    /// How long, after the last application, the run waits for every transfer at both bureaus
    /// to reach a terminal state before checking the ledger.
    pub settle_timeout: Duration,
    /// A person transfers once: while transfers run, people are seeded so that at least this
    /// many more applications find someone of every flow of the mix. 0: never seed during the
    /// run (it stops when a flow runs out).
    pub top_up_ahead: u64,
    /// The admin token the services require (`YIBAO_ADMIN_TOKEN`): presented on every admin
    /// call, and required by a spawned pair's services. Never in the report.
    #[serde(skip)]
    pub admin_token: Option<AdminToken>,
}

/// Which services a run drives.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Services already running, for example `http://127.0.0.1:50051`.
    Running {
        /// The transfer-out bureau's endpoint.
        out: String,
        /// The transfer-in bureau's endpoint.
        #[serde(rename = "in")]
        inn: String,
    },
    /// Start a private pair on ephemeral loopback ports with temporary data, and stop it at the
    /// end.
    Spawn(SpawnOptions),
    /// Several bureaus over one region directory (`--topology`): each application goes to the
    /// bureau hosting the region its flow applies at.
    Topology(TopologyTarget),
}

/// The bureaus of a run over a topology: every bureau a region directory names.
#[derive(Clone, Debug, Serialize)]
pub struct TopologyTarget {
    /// The region directory every bureau reads: which bureau hosts which region.
    pub directory: PathBuf,
    /// Running bureaus by name and endpoint (`http://127.0.0.1:50051`); empty when spawned.
    pub bureaus: Vec<(String, String)>,
    /// Start every bureau the directory names instead (the harness's `Topology`, on
    /// ephemeral loopback ports with temporary data), and stop them at the end. Its
    /// `directory` is unused: the topology's is.
    pub spawn: Option<SpawnOptions>,
}

/// The one yibao bureau a run drives when the other is the user's own service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Only {
    /// yibao's transfer-out; the user's service plays transfer-in.
    #[value(name = "out", alias = "transfer-out")]
    TransferOut,
    /// yibao's transfer-in; the user's service plays transfer-out.
    #[value(name = "in", alias = "transfer-in")]
    TransferIn,
}

impl Only {
    /// The service's name, `transfer-out` or `transfer-in`.
    pub fn service(self) -> &'static str {
        match self {
            Only::TransferOut => "transfer-out",
            Only::TransferIn => "transfer-in",
        }
    }

    /// The name of the role the user's service plays.
    pub fn peer_service(self) -> &'static str {
        match self {
            Only::TransferOut => "transfer-in",
            Only::TransferIn => "transfer-out",
        }
    }

    /// Whether a person of `flow` applies at this bureau (the only flows such a run applies).
    pub fn starts_here(self, flow: Flow) -> bool {
        matches!(
            (self, flow.applies_at()),
            (Only::TransferOut, ApplyAt::TransferOut) | (Only::TransferIn, ApplyAt::TransferIn)
        )
    }

    /// The mix when none is given: the connected transfer that starts here and goes through
    /// the peer (started at transfer-out, the form is the only message; started at transfer-in,
    /// the request and the form).
    pub fn default_mix(self) -> &'static str {
        match self {
            Only::TransferOut => "cross-province-out-initiated=1",
            Only::TransferIn => "connected=1",
        }
    }
}

/// Where the binaries and the region directory of a spawned pair come from.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SpawnOptions {
    /// The directory holding `transfer-out` and `transfer-in`; by default `YIBAO_BIN_DIR`, else
    /// the directory of the running executable (`target/<profile>`).
    pub bin_dir: Option<PathBuf>,
    /// The region directory file; by default the repository's `deploy/regions.toml`.
    pub directory: Option<PathBuf>,
    /// The platform hop between the two runs plaintext instead of mutual TLS (to measure what
    /// TLS costs).
    pub plaintext_platform: bool,
    /// With [`LoadOptions::only`]: the user's service's platform endpoint, which the one
    /// spawned bureau calls (`https://HOST:PORT`, `http://` with `plaintext_platform`).
    pub peer: Option<String>,
    /// With [`LoadOptions::only`] over mutual TLS: the directory of the development CA the
    /// user's service trusts (`yibao certs --out DIR --bureau NAME=REGIONS`); the spawned
    /// bureau's certificate is made there by that CA.
    pub certs: Option<PathBuf>,
    /// Each spawned bureau appends its finished spans to `<service>.traces.jsonl` in its data
    /// directory (`--trace-file`), to measure what traces cost.
    pub trace_files: bool,
}

/// How applications are paced.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pace {
    /// A fixed number of transfers in flight: each finished transfer starts the next one.
    Closed {
        /// Transfers in flight.
        concurrency: usize,
    },
    /// Applications start on a fixed schedule whatever the services do; latency is measured
    /// from each one's intended start, so a stall shows in full (no coordinated omission).
    Open {
        /// Applications per second.
        rate_per_s: f64,
        /// The most transfers in flight; when reached, the schedule falls behind and the delay
        /// counts in the latency.
        max_in_flight: usize,
    },
}

/// When a run stops starting transfers: whichever limit comes first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Stop {
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Stop after this many applications.
    pub transfers: Option<u64>,
}

/// The proportion of each flow in a run: relative integer weights.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mix {
    /// Flows with a weight above zero, in the order given.
    weights: Vec<(Flow, u32)>,
}

impl Serialize for Mix {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.weights.iter().map(|(flow, w)| (flow.name(), *w)))
    }
}

impl Mix {
    /// A mix from flows and weights; weights of zero are dropped.
    pub fn new(weights: impl IntoIterator<Item = (Flow, u32)>) -> Result<Mix, LoadError> {
        let mut merged: Vec<(Flow, u32)> = Vec::new();
        for (flow, weight) in weights {
            match merged.iter_mut().find(|(f, _)| *f == flow) {
                Some((_, w)) => *w = w.saturating_add(weight),
                None => merged.push((flow, weight)),
            }
        }
        merged.retain(|(_, w)| *w > 0);
        if merged.is_empty() {
            return Err(LoadError::Options(
                "mix: at least one flow needs a weight above zero".to_owned(),
            ));
        }
        Ok(Mix { weights: merged })
    }

    /// The flows and their weights.
    pub fn weights(&self) -> &[(Flow, u32)] {
        &self.weights
    }

    /// The sum of the weights.
    pub fn total(&self) -> u64 {
        self.weights.iter().map(|(_, w)| u64::from(*w)).sum()
    }

    /// The share of `flow` in the mix, from 0 to 1.
    pub fn share(&self, flow: Flow) -> f64 {
        let weight = self
            .weights
            .iter()
            .find(|(f, _)| *f == flow)
            .map_or(0, |(_, w)| *w);
        f64::from(weight) / self.total().max(1) as f64
    }
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            weights: vec![
                (Flow::CrossProvince, 80),
                (Flow::NotConnected, 10),
                (Flow::IntraProvinceShared, 5),
                (Flow::RefusedArrears, 5),
            ],
        }
    }
}

/// A flow named on the command line: the short names of issue 4 or a population flow name.
pub fn flow_named(name: &str) -> Option<Flow> {
    match name {
        "connected" => Some(Flow::CrossProvince),
        "intra-province" => Some(Flow::IntraProvinceShared),
        "refused" => Some(Flow::RefusedArrears),
        other => Flow::from_name(other).or_else(|| Flow::from_name(&other.replace('_', "-"))),
    }
}

impl LoadOptions {
    /// Parses a mix such as `connected=80,not-connected=10,intra-province=5,refused=5`.
    /// Names are the short ones above (`connected`, `not-connected`, `intra-province`, `refused`)
    /// or any population flow name (`cross-province-out-initiated`, `retiree-payout`, …);
    /// weights are relative non-negative integers.
    pub fn parse_mix(text: &str) -> Result<Mix, LoadError> {
        let mut weights = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| LoadError::Options(format!("mix: `{part}` is not NAME=WEIGHT")))?;
            let flow = flow_named(name.trim()).ok_or_else(|| {
                let known: Vec<&str> = Flow::ALL.iter().map(|f| f.name()).collect();
                LoadError::Options(format!(
                    "mix: unknown flow `{}`; use connected, not-connected, intra-province, \
                     refused or one of {}",
                    name.trim(),
                    known.join(", ")
                ))
            })?;
            let weight: u32 = weight.trim().parse().map_err(|_| {
                LoadError::Options(format!(
                    "mix: weight of `{}` must be a whole number",
                    name.trim()
                ))
            })?;
            weights.push((flow, weight));
        }
        Mix::new(weights)
    }

    /// Parses a duration such as `60s`, `2m` or `1m30s`.
    pub fn parse_duration(text: &str) -> Result<Duration, LoadError> {
        humantime::parse_duration(text.trim())
            .map_err(|error| LoadError::Options(format!("duration `{text}`: {error}")))
    }

    /// Options for a run against a spawned pair with every other setting at its default.
    pub fn spawned() -> LoadOptions {
        LoadOptions {
            target: Target::Spawn(SpawnOptions::default()),
            only: None,
            split_every: DEFAULT_SPLIT_EVERY,
            persons: DEFAULT_PERSONS,
            first_person: 0,
            seed: DEFAULT_SEED,
            pace: Pace::Closed {
                concurrency: DEFAULT_CONCURRENCY,
            },
            stop: Stop {
                duration: Some(DEFAULT_DURATION),
                transfers: None,
            },
            mix: Mix::default(),
            baseline: None,
            report_dir: None,
            connections: 1,
            transfer_timeout: Duration::from_secs(30),
            settle_timeout: Duration::from_secs(60),
            top_up_ahead: DEFAULT_TOP_UP_AHEAD,
            admin_token: None,
        }
    }

    /// Checks every limit.
    pub fn validate(&self) -> Result<(), LoadError> {
        let fail = |message: String| Err(LoadError::Options(message));
        if self.persons == 0 || self.persons > MAX_PERSONS {
            return fail(format!("persons must be 1 to {MAX_PERSONS}"));
        }
        if self.first_person.saturating_add(self.persons) > population::MAX_INDEX {
            return fail(format!(
                "first person + persons must not exceed {}",
                population::MAX_INDEX
            ));
        }
        match self.pace {
            Pace::Closed { concurrency } if concurrency == 0 || concurrency > MAX_IN_FLIGHT => {
                return fail(format!("concurrency must be 1 to {MAX_IN_FLIGHT}"));
            }
            Pace::Open {
                rate_per_s,
                max_in_flight,
            } => {
                if !(rate_per_s.is_finite() && rate_per_s > 0.0 && rate_per_s <= 1_000_000.0) {
                    return fail("rate must be above 0 and at most 1,000,000 per second".into());
                }
                if max_in_flight == 0 || max_in_flight > MAX_IN_FLIGHT {
                    return fail(format!("max in flight must be 1 to {MAX_IN_FLIGHT}"));
                }
            }
            Pace::Closed { .. } => {}
        }
        if self.stop.duration.is_none() && self.stop.transfers.is_none() {
            return fail("a run needs a duration or a number of transfers".into());
        }
        if self.stop.duration.is_some_and(|d| d.is_zero()) || self.stop.transfers == Some(0) {
            return fail("duration and transfers must be above zero".into());
        }
        if self.baseline.is_some_and(|d| d.is_zero()) {
            return fail("the baseline duration must be above zero".into());
        }
        if self.connections == 0 || self.connections > MAX_CONNECTIONS {
            return fail(format!("connections must be 1 to {MAX_CONNECTIONS}"));
        }
        if self.transfer_timeout.is_zero() || self.settle_timeout.is_zero() {
            return fail("timeouts must be above zero".into());
        }
        if self.split_every == 0 {
            return fail("split every must be at least 1".into());
        }
        self.validate_one_side()
    }

    /// With [`LoadOptions::only`]: every flow of the mix starts at that bureau, and a spawned
    /// bureau knows its peer and (over mutual TLS) the CA the peer trusts.
    fn validate_one_side(&self) -> Result<(), LoadError> {
        let fail = |message: String| Err(LoadError::Options(message));
        let spawn = match &self.target {
            Target::Spawn(spawn) => Some(spawn),
            Target::Running { .. } => None,
            Target::Topology(topology) => {
                return self.validate_topology(topology);
            }
        };
        let Some(only) = self.only else {
            if spawn.is_some_and(|spawn| spawn.peer.is_some() || spawn.certs.is_some()) {
                return fail("a peer and its certificates are for a run with --only".into());
            }
            return Ok(());
        };
        let elsewhere: Vec<&str> = self
            .mix
            .weights()
            .iter()
            .filter(|(flow, _)| !only.starts_here(*flow))
            .map(|(flow, _)| flow.name())
            .collect();
        if !elsewhere.is_empty() {
            let here: Vec<&str> = Flow::ALL
                .into_iter()
                .filter(|flow| only.starts_here(*flow))
                .map(Flow::name)
                .collect();
            return fail(format!(
                "mix: {} start(s) at {}, the user's bureau; with --only {} use flows that start \
                 at yibao's {}: {}",
                elsewhere.join(", "),
                only.peer_service(),
                match only {
                    Only::TransferOut => "out",
                    Only::TransferIn => "in",
                },
                only.service(),
                here.join(", ")
            ));
        }
        match spawn {
            Some(spawn) if spawn.peer.is_none() => {
                fail("--spawn --only needs --peer, the user's service's platform endpoint".into())
            }
            Some(spawn) if !spawn.plaintext_platform && spawn.certs.is_none() => fail(
                "--spawn --only over mutual TLS needs --certs DIR, the CA the user's service \
                 trusts (yibao certs --out DIR --bureau NAME=REGIONS), or --plaintext-platform"
                    .into(),
            ),
            _ => Ok(()),
        }
    }

    /// A run over a topology drives every bureau: no `--only`, no peer of the user's, and
    /// running bureaus each named once.
    fn validate_topology(&self, topology: &TopologyTarget) -> Result<(), LoadError> {
        let fail = |message: String| Err(LoadError::Options(message));
        if self.only.is_some() {
            return fail("--only drives one bureau of a pair; a topology drives all".into());
        }
        if let Some(spawn) = &topology.spawn {
            if spawn.peer.is_some() || spawn.certs.is_some() {
                return fail("a peer and its certificates are for a run with --only".into());
            }
            return Ok(());
        }
        let mut names = std::collections::BTreeSet::new();
        for (name, endpoint) in &topology.bureaus {
            if name.is_empty() || endpoint.is_empty() {
                return fail(format!("bureau `{name}={endpoint}`: give NAME=URL"));
            }
            if !names.insert(name.as_str()) {
                return fail(format!("bureau `{name}` is named twice"));
            }
        }
        if names.len() < 2 {
            return fail("a topology needs at least two bureaus".into());
        }
        Ok(())
    }

    /// How many people to seed: the requested number, raised when the run's size is known in
    /// advance (a number of transfers, or an open-loop rate for a duration) so that every flow
    /// of the mix has a fresh person for each of its applications, and capped at
    /// [`MAX_PERSONS`]. A run that drives one bureau seeds exactly the requested number: the
    /// peer knows only the people the user seeded there.
    pub fn persons_to_seed(&self) -> u64 {
        if self.only.is_some() {
            return self.persons.min(MAX_PERSONS);
        }
        let planned = match (self.stop.transfers, self.pace, self.stop.duration) {
            (Some(transfers), _, _) => Some(transfers),
            (None, Pace::Open { rate_per_s, .. }, Some(duration)) => {
                Some((rate_per_s * duration.as_secs_f64()).ceil() as u64)
            }
            _ => None,
        };
        let needed = planned.map_or(0, |transfers| persons_for(&self.mix, transfers));
        self.persons.max(needed).min(MAX_PERSONS)
    }
}

/// How many consecutive people hold at least `transfers × share` people of every flow of `mix`
/// (with 1% and one block to spare, since the mix is interleaved, not exact).
pub fn persons_for(mix: &Mix, transfers: u64) -> u64 {
    mix.weights()
        .iter()
        .map(|(flow, _)| {
            let wanted = (transfers as f64 * mix.share(*flow) * 1.01).ceil() as u64 + 1;
            let per_block = population::people_per_block(*flow).max(1);
            wanted.div_ceil(per_block).saturating_add(1) * population::LAYOUT_BLOCK
        })
        .max()
        .unwrap_or(0)
}

/// How many people of `flow` have an index below `index`.
pub fn people_below(flow: Flow, index: u64) -> u64 {
    let per_block = population::people_per_block(flow);
    let blocks = index / population::LAYOUT_BLOCK;
    let start = blocks * population::LAYOUT_BLOCK;
    let partial = (start..index)
        .filter(|i| population::flow_of(*i) == flow)
        .count() as u64;
    blocks * per_block + partial
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_mix_parses_to_the_default() {
        let mix = LoadOptions::parse_mix(DEFAULT_MIX).expect("valid");
        assert_eq!(mix, Mix::default());
        assert_eq!(mix.total(), 100);
        assert!((mix.share(Flow::CrossProvince) - 0.8).abs() < 1e-9);
    }

    #[test]
    fn full_flow_names_are_accepted_and_repeats_add_up() {
        let mix = LoadOptions::parse_mix("retiree-payout=1, instant=2,instant=3").expect("valid");
        assert_eq!(
            mix.weights(),
            &[(Flow::RetireePayout, 1), (Flow::Instant, 5)]
        );
    }

    #[test]
    fn a_bad_mix_names_the_problem() {
        let error = LoadOptions::parse_mix("teleport=5").expect_err("unknown");
        assert!(error.to_string().contains("teleport"));
        assert!(LoadOptions::parse_mix("connected").is_err());
        assert!(LoadOptions::parse_mix("connected=-1").is_err());
        assert!(LoadOptions::parse_mix("connected=0").is_err());
        assert!(LoadOptions::parse_mix("").is_err());
    }

    #[test]
    fn durations_read_like_humans_write_them() {
        assert_eq!(
            LoadOptions::parse_duration("60s").expect("valid"),
            Duration::from_secs(60)
        );
        assert_eq!(
            LoadOptions::parse_duration("1m30s").expect("valid"),
            Duration::from_secs(90)
        );
        assert!(LoadOptions::parse_duration("soon").is_err());
    }

    #[test]
    fn seeding_covers_every_flow_of_a_sized_run() {
        let mut options = LoadOptions::spawned();
        options.persons = 1000;
        options.stop = Stop {
            duration: None,
            transfers: Some(100_000),
        };
        let persons = options.persons_to_seed();
        for (flow, _) in options.mix.weights() {
            let available = people_below(*flow, persons);
            let wanted = (100_000.0 * options.mix.share(*flow)) as u64;
            assert!(available >= wanted, "{flow:?}: {available} < {wanted}");
        }
    }

    #[test]
    fn people_below_matches_the_layout() {
        for flow in Flow::ALL {
            for index in [0, 1, 13, 57, 100, 250, 1013] {
                let counted = (0..index)
                    .filter(|i| population::flow_of(*i) == flow)
                    .count() as u64;
                assert_eq!(people_below(flow, index), counted, "{flow:?} below {index}");
            }
            assert!(population::index_of(flow, people_below(flow, 500)) >= 500);
        }
    }

    #[test]
    fn a_run_of_one_bureau_applies_only_flows_that_start_there() {
        let mut options = LoadOptions::spawned();
        options.target = Target::Running {
            out: "http://127.0.0.1:1".to_owned(),
            inn: String::new(),
        };
        options.only = Some(Only::TransferOut);
        let error = options
            .validate()
            .expect_err("the default mix starts at transfer-in");
        assert!(
            error.to_string().contains("cross-province-out-initiated"),
            "{error}"
        );
        options.mix = LoadOptions::parse_mix(Only::TransferOut.default_mix()).expect("valid");
        assert!(options.validate().is_ok());
        options.only = Some(Only::TransferIn);
        options.mix = LoadOptions::parse_mix(Only::TransferIn.default_mix()).expect("valid");
        assert!(options.validate().is_ok());
        options.split_every = 0;
        assert!(options.validate().is_err());
    }

    #[test]
    fn a_spawned_bureau_of_its_own_needs_its_peer_and_the_peers_ca() {
        let mut options = LoadOptions::spawned();
        options.only = Some(Only::TransferOut);
        options.mix = LoadOptions::parse_mix("cross-province-out-initiated=1").expect("valid");
        assert!(options.validate().is_err(), "no peer");
        options.target = Target::Spawn(SpawnOptions {
            peer: Some("https://127.0.0.1:7000".to_owned()),
            ..SpawnOptions::default()
        });
        assert!(options.validate().is_err(), "no CA");
        options.target = Target::Spawn(SpawnOptions {
            peer: Some("http://127.0.0.1:7000".to_owned()),
            plaintext_platform: true,
            ..SpawnOptions::default()
        });
        assert!(options.validate().is_ok());
    }

    #[test]
    fn validation_rejects_out_of_range_settings() {
        let mut options = LoadOptions::spawned();
        assert!(options.validate().is_ok());
        options.persons = MAX_PERSONS + 1;
        assert!(options.validate().is_err());
        options.persons = 10;
        options.pace = Pace::Open {
            rate_per_s: 0.0,
            max_in_flight: 10,
        };
        assert!(options.validate().is_err());
        options.pace = Pace::Closed { concurrency: 0 };
        assert!(options.validate().is_err());
    }
}
