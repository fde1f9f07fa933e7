//! `yibao chaos`: the handshake under load, kills and injected faults, ending with proof that no
//! cent was lost or doubled. It starts a private pair on fixed loopback ports (free ones it
//! picks, kept across restarts so the load keeps reaching them), runs a closed-loop load with
//! idempotency keys, kills -9 and restarts either bureau at seeded random moments, and puts in
//! force a mix of fault rules (each firing with `--fault-rate`) at both bureaus — again after
//! every restart, since rules live in memory. When the load stops applying, the faults are
//! cleared and every transfer must end; then the ledger of both bureaus is checked.
//!
//! Given running services instead (`yibao --out URL --in URL chaos`, their admin API on, the
//! admin token in `YIBAO_ADMIN_TOKEN` if they require one), it does the same without the kills:
//! it cannot restart processes it did not start.
//!
//! With `--topology FILE` it starts every bureau of the file's region directory instead (the
//! harness's `Topology`, each bureau on a loopback port it keeps across restarts), drives them
//! all as `yibao load --topology` does, kills -9 and restarts any of them, and checks the ledgers
//! of all of them together.
//!
//! The fault mix leaves out the faults that stop a message for good (an infcode, which parks
//! it for an operator): chaos proves what automation alone must survive.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use yibao_harness::ledger::{BureauTotals, LedgerReport};
use yibao_harness::{
    AdminClient, AdminToken, FixedPorts, Pair, PairOptions, Side, Topology, TopologyOptions,
};
use yibao_proto::admin::v1::{
    AddFaultRuleRequest, ClearFaultRulesRequest, FaultDirection, FaultKind, FaultRule,
    GetLedgerTotalsRequest, ListFaultRulesRequest,
};

use crate::error::LoadError;
use crate::options::{LoadOptions, Pace, Stop, Target, TopologyTarget};

/// The label of chaos's rules.
const LABEL: &str = "chaos";
/// The longest a run may last, whatever is asked (bounded in time).
pub const MAX_DURATION: Duration = Duration::from_secs(600);
/// The most kills a run makes (bounded in count).
pub const MAX_KILLS: u32 = 200;

/// What `yibao chaos` is asked to do.
#[derive(Clone, Debug, clap::Args)]
pub struct ChaosArgs {
    /// Stop applying after this many transfers (default: run for --duration).
    #[arg(long, value_name = "N")]
    pub transfers: Option<u64>,
    /// How long to apply (at most 600 s).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// The mean time between kills; each kill picks a bureau at random and restarts it.
    #[arg(long, value_name = "DURATION", default_value = "4s", value_parser = humantime::parse_duration)]
    pub kill_every: Duration,
    /// The chance (0 to 1) that each fault rule fires on a message it matches; 0 injects none.
    #[arg(long, value_name = "P", default_value_t = 0.05)]
    pub fault_rate: f64,
    /// The seed of the kill times, the sides and the people.
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
    /// Transfers in flight.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Start every bureau of this topology file (deploy/topology-3.toml) instead of a pair,
    /// on loopback ports of its own; kill -9 and restart any of them, check all their ledgers.
    #[arg(long, value_name = "FILE")]
    pub topology: Option<PathBuf>,
}

/// What a chaos run saw and proved.
#[derive(Debug, Default)]
pub struct ChaosReport {
    /// Transfers applied.
    pub transfers: u64,
    /// Transfers that failed from the client's side (after its retries with the same key).
    pub client_failures: u64,
    /// Retries the client made.
    pub retries: u64,
    /// Kills -9 (and restarts).
    pub kills: u32,
    /// Of `kills`, how many of each bureau, by name.
    pub killed: BTreeMap<String, u32>,
    /// Faults injected, by kind.
    pub faults: BTreeMap<String, u64>,
    /// Transfers still open after the faults stopped and the wait.
    pub open_after: u64,
    /// Cents the conservation identity misses (positive: lost; negative: doubled).
    pub lost_cents: i128,
    /// Cents credited beyond what transfer-out settled (a double credit).
    pub double_credit_cents: i128,
    /// Cents transfer-out placed (in transit, settled, returned, paid to banks) beyond what left
    /// the accounts: a payout or return posted twice.
    pub double_payout_cents: i128,
    /// The ledger's verdict, in words.
    pub ledger: Vec<String>,
}

impl ChaosReport {
    /// Whether the run proved what it must: every transfer terminal, nothing lost or doubled,
    /// no application failed from the client's side.
    pub fn passed(&self) -> bool {
        self.open_after == 0
            && self.lost_cents == 0
            && self.double_credit_cents <= 0
            && self.double_payout_cents <= 0
            && self.client_failures == 0
            && self.ledger.is_empty()
    }

    /// The summary, one fact a line.
    pub fn summary(&self) -> String {
        let faults: Vec<String> = self
            .faults
            .iter()
            .map(|(kind, count)| format!("{kind} × {count}"))
            .collect();
        let mut lines = vec![
            format!(
                "transfers: {} applied, {} failed from the client's side, {} retries",
                self.transfers, self.client_failures, self.retries
            ),
            format!(
                "kills: {} (kill -9 and restart){}",
                self.kills,
                if self.killed.is_empty() {
                    String::new()
                } else {
                    let named: Vec<String> = self
                        .killed
                        .iter()
                        .map(|(name, count)| format!("{name} × {count}"))
                        .collect();
                    format!(": {}", named.join(", "))
                }
            ),
            format!(
                "faults: {}",
                if faults.is_empty() {
                    "none".to_owned()
                } else {
                    faults.join(", ")
                }
            ),
            format!("open after the faults stopped: {}", self.open_after),
            format!(
                "lost cents: {}; double credits: {} cents; double payouts: {} cents",
                self.lost_cents,
                self.double_credit_cents.max(0),
                self.double_payout_cents.max(0)
            ),
        ];
        lines.extend(
            self.ledger
                .iter()
                .map(|problem| format!("ledger: {problem}")),
        );
        lines.push(if self.passed() {
            "chaos: passed".to_owned()
        } else {
            "chaos: FAILED".to_owned()
        });
        lines.join("\n")
    }
}

/// Where chaos runs: a pair it started (and may kill), running services (faults only), or every
/// bureau of a topology it started (and may kill).
enum Bureaus {
    Pair(Box<Pair>),
    Running {
        out: String,
        inn: String,
        token: Option<AdminToken>,
    },
    Topology {
        topology: Box<Topology>,
        /// The region directory the bureaus read.
        directory: PathBuf,
    },
}

/// The side a pair's bureau plays, by its name.
fn side_named(name: &str) -> Side {
    if name == Side::In.service() {
        Side::In
    } else {
        Side::Out
    }
}

impl Bureaus {
    /// Every bureau's name: `transfer-out` and `transfer-in`, or the topology's.
    fn names(&self) -> Vec<&'static str> {
        match self {
            Bureaus::Topology { topology, .. } => topology.names(),
            _ => vec![Side::Out.service(), Side::In.service()],
        }
    }

    fn endpoint(&self, side: Side) -> String {
        match self {
            Bureaus::Pair(pair) => pair.endpoint(side).to_owned(),
            Bureaus::Running { out, inn, .. } => match side {
                Side::Out => out.clone(),
                Side::In => inn.clone(),
            },
            Bureaus::Topology { .. } => String::new(),
        }
    }

    /// The admin client of the bureau `name` (see [`Bureaus::names`]).
    fn admin_of(&self, name: &str) -> Result<AdminClient, LoadError> {
        match self {
            Bureaus::Topology { topology, .. } => Ok(topology.admin(name)),
            _ => self.admin(side_named(name)),
        }
    }

    fn admin(&self, side: Side) -> Result<AdminClient, LoadError> {
        match self {
            Bureaus::Pair(pair) => Ok(pair.admin(side)),
            Bureaus::Topology { .. } => self.admin_of(side.service()),
            Bureaus::Running { token, .. } => {
                let endpoint = self.endpoint(side);
                let channel = tonic::transport::Endpoint::from_shared(endpoint.clone())
                    .map_err(|error| LoadError::Spawn(format!("{endpoint}: {error}")))?
                    .connect_lazy();
                Ok(yibao_harness::admin_client(channel, token.as_ref()))
            }
        }
    }

    /// Every bureau's totals, checked; polled until nothing is open or `deadline` passes.
    async fn settled_ledger(&self, deadline: Duration) -> Result<Settled, LoadError> {
        let until = tokio::time::Instant::now() + deadline;
        if let Bureaus::Topology { topology, .. } = self {
            loop {
                let report = topology
                    .ledger_check()
                    .await
                    .map_err(|error| LoadError::Spawn(error.to_string()))?;
                if report.quiescent || tokio::time::Instant::now() >= until {
                    return Ok(Settled {
                        totals: report.bureaus.into_iter().map(|(_, t)| t).collect(),
                        violations: report.violations,
                    });
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        loop {
            let inn = self.totals(Side::In).await?;
            let out = self.totals(Side::Out).await?;
            let report: LedgerReport = yibao_harness::ledger::check(out, inn);
            let open = report.transfer_out.open_transfers + report.transfer_in.open_transfers;
            if open == 0 || tokio::time::Instant::now() >= until {
                return Ok(Settled {
                    totals: vec![report.transfer_out, report.transfer_in],
                    violations: report.violations,
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn totals(&self, side: Side) -> Result<BureauTotals, LoadError> {
        let service = side.service();
        let answer = self
            .admin(side)?
            .get_ledger_totals(GetLedgerTotalsRequest {})
            .await
            .map_err(|status| LoadError::Spawn(format!("{service}: {status}")))?
            .into_inner()
            .totals
            .unwrap_or_default();
        BureauTotals::parse(service, &answer).map_err(|error| LoadError::Spawn(error.to_string()))
    }
}

/// Every bureau's settled totals and what did not hold across them.
struct Settled {
    /// Each bureau's totals (a pair: transfer-out, then transfer-in).
    totals: Vec<BureauTotals>,
    /// The ledger check's violations, in words.
    violations: Vec<String>,
}

/// Runs chaos as `args` say: against `running` services (transfer-out, transfer-in endpoints)
/// when given, else against a pair of its own.
///
/// # Errors
/// When the run could not be carried out (the pair does not start, the load cannot reach it).
pub async fn run(
    args: &ChaosArgs,
    running: Option<(String, String)>,
) -> Result<ChaosReport, LoadError> {
    let duration = args.duration.min(MAX_DURATION);
    let mut bureaus = match (running, &args.topology) {
        (None, Some(file)) => start_topology(file).await?,
        (Some(_), Some(_)) => {
            return Err(LoadError::Options(
                "--topology starts its own bureaus; name no running ones with it".to_owned(),
            ));
        }
        (Some((out, inn)), None) => Bureaus::Running {
            out,
            inn,
            token: AdminToken::from_env().map_err(|error| LoadError::Spawn(error.to_string()))?,
        },
        (None, None) => {
            let ports = FixedPorts::free()
                .map_err(|error| LoadError::Spawn(format!("finding free ports: {error}")))?;
            let pair = Pair::start(PairOptions {
                persons: 0,
                fixed_ports: Some(ports),
                ..PairOptions::default()
            })
            .await
            .map_err(|error| LoadError::Spawn(error.to_string()))?;
            Bureaus::Pair(Box::new(pair))
        }
    };
    let mut report = ChaosReport::default();
    for name in bureaus.names() {
        add_rules(bureaus.admin_of(name)?, args.fault_rate).await;
    }
    let load = tokio::spawn(crate::run(load_options(args, &bureaus, duration), false));
    if !matches!(bureaus, Bureaus::Running { .. }) {
        kills(&mut bureaus, args, duration, &mut report).await?;
    }
    finish(&bureaus, load, &mut report).await?;
    Ok(report)
}

/// Every bureau of the topology file `file`, each on a loopback port kept across restarts.
async fn start_topology(file: &std::path::Path) -> Result<Bureaus, LoadError> {
    let loaded = yibao_runtime::topology::Topology::load(file)
        .map_err(|error| LoadError::Options(error.to_string()))?;
    let topology = Topology::start(TopologyOptions {
        directory: loaded.directory_path.clone(),
        fixed_ports: true,
        ..TopologyOptions::default()
    })
    .await
    .map_err(|error| LoadError::Spawn(error.to_string()))?;
    Ok(Bureaus::Topology {
        topology: Box::new(topology),
        directory: loaded.directory_path,
    })
}

impl Bureaus {
    /// Kills the bureau `name` with SIGKILL and starts it again on its data (a pair or a
    /// topology this run started).
    async fn kill_and_restart(&mut self, name: &str) -> Result<(), LoadError> {
        let failed = |error: yibao_harness::HarnessError| LoadError::Spawn(error.to_string());
        match self {
            Bureaus::Pair(pair) => {
                let side = side_named(name);
                pair.kill(side).await.map_err(failed)?;
                pair.restart(side).await.map_err(failed)
            }
            Bureaus::Topology { topology, .. } => {
                topology.kill(name).await.map_err(failed)?;
                topology.restart(name).await.map_err(failed)
            }
            Bureaus::Running { .. } => Ok(()),
        }
    }
}

/// Kills -9 and restarts a bureau at seeded random moments until `duration` is up.
async fn kills(
    bureaus: &mut Bureaus,
    args: &ChaosArgs,
    duration: Duration,
    report: &mut ChaosReport,
) -> Result<(), LoadError> {
    let mut rng = StdRng::seed_from_u64(args.seed);
    let until = tokio::time::Instant::now() + duration;
    let mean = u64::try_from(args.kill_every.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    while report.kills < MAX_KILLS {
        let wait = Duration::from_millis(rng.random_range(mean / 2..=mean + mean / 2));
        if tokio::time::Instant::now() + wait >= until {
            break;
        }
        tokio::time::sleep(wait).await;
        let names = bureaus.names();
        let name = if names.len() == 2 {
            // As before topologies: a fair coin between transfer-out and transfer-in.
            if rng.random_bool(0.5) {
                names[0]
            } else {
                names[1]
            }
        } else {
            names[rng.random_range(0..names.len())]
        };
        count_faults(bureaus.admin_of(name)?, &mut report.faults).await;
        bureaus.kill_and_restart(name).await?;
        add_rules(bureaus.admin_of(name)?, args.fault_rate).await;
        report.kills += 1;
        *report.killed.entry(name.to_owned()).or_default() += 1;
    }
    Ok(())
}

/// After the kills: let the load finish applying and settle, stop the faults, wait for every
/// transfer to end, and read the verdict.
async fn finish(
    bureaus: &Bureaus,
    load: tokio::task::JoinHandle<Result<crate::Report, LoadError>>,
    report: &mut ChaosReport,
) -> Result<(), LoadError> {
    let loaded = load
        .await
        .map_err(|error| LoadError::Spawn(format!("the load task: {error}")))??;
    for name in bureaus.names() {
        let mut admin = bureaus.admin_of(name)?;
        count_faults(admin.clone(), &mut report.faults).await;
        let _ = admin
            .clear_fault_rules(ClearFaultRulesRequest {
                label: LABEL.to_owned(),
            })
            .await;
    }
    report.transfers = loaded.transfers.started;
    report.client_failures = loaded.errors_total();
    report.retries = loaded.transfers.retries;
    let ledger = bureaus.settled_ledger(Duration::from_secs(120)).await?;
    verdict(&ledger, report);
    Ok(())
}

/// Reads lost and doubled cents off the settled ledger, summed over every bureau (each plays
/// transfer-out for some transfers and transfer-in for others; in a pair, each one side).
fn verdict(ledger: &Settled, report: &mut ChaosReport) {
    let sum = |field: fn(&BureauTotals) -> yibao_domain::money::Money| {
        ledger
            .totals
            .iter()
            .map(|totals| i128::from(field(totals).cents()))
            .sum::<i128>()
    };
    report.open_after = ledger.totals.iter().map(|t| t.open_transfers).sum();
    let debited = sum(|t| t.debited_to_transit_total);
    let credited = sum(|t| t.credited_total);
    let in_transit = sum(|t| t.in_transit_total);
    let paid = sum(|t| t.paid_to_bank_total);
    let returned = sum(|t| t.returned_total);
    let settled = sum(|t| t.settled_out_total);
    report.lost_cents = debited - credited - in_transit - paid - returned;
    report.double_credit_cents = credited - settled;
    // At transfer-out, what left the accounts is in transit, settled, returned or paid out; a
    // payout (or return) posted twice shows as more placed than left.
    report.double_payout_cents = in_transit + settled + returned + paid - debited;
    report.ledger = ledger.violations.clone();
}

/// The load: a closed loop against the pair's (or the topology's) fixed ports, people from the
/// seed.
fn load_options(args: &ChaosArgs, bureaus: &Bureaus, duration: Duration) -> LoadOptions {
    let mut options = LoadOptions::spawned();
    options.target = match bureaus {
        Bureaus::Topology {
            topology,
            directory,
        } => Target::Topology(TopologyTarget {
            directory: directory.clone(),
            bureaus: topology
                .names()
                .into_iter()
                .map(|name| (name.to_owned(), topology.endpoint(name).to_owned()))
                .collect(),
            spawn: None,
        }),
        _ => Target::Running {
            out: bureaus.endpoint(Side::Out),
            inn: bureaus.endpoint(Side::In),
        },
    };
    options.seed = args.seed;
    options.pace = Pace::Closed {
        concurrency: args.concurrency.max(1),
    };
    options.stop = Stop {
        duration: Some(duration),
        transfers: args.transfers,
    };
    options.persons = 20_000;
    options.top_up_ahead = 0;
    options.report_dir = None;
    options.transfer_timeout = Duration::from_secs(180);
    options.settle_timeout = Duration::from_secs(120);
    options
}

/// The fault mix, each firing with `rate`: lost answers and second deliveries both ways,
/// UNAVAILABLE and resets on receipt, delays and reordering on sending, a failing and a slow
/// bank.
fn mix(rate: f64) -> Vec<FaultRule> {
    let rule = |fault: FaultKind, direction: FaultDirection| FaultRule {
        label: LABEL.to_owned(),
        direction: direction as i32,
        fault: fault as i32,
        probability: rate,
        ..FaultRule::default()
    };
    vec![
        rule(FaultKind::LoseAnswer, FaultDirection::Receiving),
        rule(FaultKind::DeliverTwice, FaultDirection::Sending),
        FaultRule {
            grpc_code: tonic::Code::Unavailable as i32,
            message: "chaos".to_owned(),
            ..rule(FaultKind::Status, FaultDirection::Receiving)
        },
        rule(FaultKind::ResetConnection, FaultDirection::Receiving),
        FaultRule {
            delay_min_ms: 10,
            delay_max_ms: 300,
            ..rule(FaultKind::Delay, FaultDirection::Sending)
        },
        FaultRule {
            delay_min_ms: 10,
            delay_max_ms: 100,
            ..rule(FaultKind::Reorder, FaultDirection::Sending)
        },
        rule(FaultKind::BankFail, FaultDirection::Sending),
        rule(FaultKind::BankDelay, FaultDirection::Sending),
    ]
}

async fn add_rules(mut admin: AdminClient, rate: f64) {
    if rate <= 0.0 {
        return;
    }
    for rule in mix(rate.min(1.0)) {
        if let Err(status) = admin
            .add_fault_rule(AddFaultRuleRequest { rule: Some(rule) })
            .await
        {
            tracing::warn!(%status, "chaos could not add a fault rule");
        }
    }
}

/// Adds the faults `side`'s rules injected so far to `faults` (read before a kill, which
/// forgets them).
async fn count_faults(mut admin: AdminClient, faults: &mut BTreeMap<String, u64>) {
    let Ok(answer) = admin.list_fault_rules(ListFaultRulesRequest {}).await else {
        return;
    };
    for rule in answer.into_inner().rules {
        let kind = FaultKind::try_from(rule.fault)
            .map(|kind| {
                kind.as_str_name()
                    .trim_start_matches("FAULT_KIND_")
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        *faults.entry(kind).or_default() += rule.injected;
    }
}
