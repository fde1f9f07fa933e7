//! `yibao conformance`: yibao plays the other bureau of the handshake against a team's own
//! transfer-out or transfer-in service and runs named cases against it, each with the
//! expectation it checks (DOMAIN.md and `platform.proto`): the happy paths, repeated and
//! modified messages, wrong transaction codes and receivers, aborts before and after a credit,
//! late forms, lost answers, a bad message in a batch, deadlines on the target's test clock, the
//! money leg (a balance remitted apart, refused when it does not match, returned and remitted
//! again) and conservation of money. Each case is PASS, FAIL (with the messages exchanged and the
//! expectation that broke) or SKIP (with why); the report is text, JUnit XML and a
//! self-contained HTML page, and the exit status is non-zero when a case failed.
//!
//! The suite is a scripted bureau, not a second copy of yibao's: it serves the platform
//! service of the role it plays (the target must be configured to call it, `--listen`), checks
//! every message the target sends against the contract, and answers as each case plans
//! (credit, lose the answer, withhold it). What it cannot reach it skips with the reason:
//! starting an application needs the target's `bureau.proto` API (`--target-api`), moving its
//! clock and reading its ledger need its `admin.proto` API (`--target-admin`).
//!
//! Layout: [`identity`] (msgids and transfer ids), [`counterpart`] (the suite's server),
//! [`context`] (what a case works with), [`cases`], [`report`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};
use yibao_domain::calendar::WorkingCalendar;
use yibao_harness::{AdminToken, admin_client};
use yibao_runtime::tls::{PlatformTls, TlsFiles};

pub mod cases;
pub mod context;
pub mod counterpart;
pub mod exchange;
pub mod identity;
pub mod report;

use crate::context::{Ctx, Target, Verdict};
use crate::counterpart::Counterpart;
use crate::exchange::ExchangeLog;
use crate::identity::Identity;
use crate::report::{CaseOutcome, CaseReport, JournalLine, Report};

/// The role a bureau plays in the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The bureau the person leaves (转出地): serves TransferOutPlatformService.
    TransferOut,
    /// The bureau the person joins (转入地): serves TransferInPlatformService.
    TransferIn,
}

impl Role {
    /// `transfer-out` or `transfer-in`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Role::TransferOut => "transfer-out",
            Role::TransferIn => "transfer-in",
        }
    }

    /// The other role.
    #[must_use]
    pub fn other(self) -> Role {
        match self {
            Role::TransferOut => Role::TransferIn,
            Role::TransferIn => Role::TransferOut,
        }
    }

    /// The region a bureau of this role hosts in the default directory and population
    /// (Hohhot 150100 leaves, Lhasa 540100 joins).
    #[must_use]
    pub fn default_region(self) -> &'static str {
        match self {
            Role::TransferOut => "150100",
            Role::TransferIn => "540100",
        }
    }

    /// yibao's default platform listener for a bureau of this role.
    #[must_use]
    pub fn default_platform_address(self) -> SocketAddr {
        match self {
            Role::TransferOut => SocketAddr::from(([127, 0, 0, 1], 50061)),
            Role::TransferIn => SocketAddr::from(([127, 0, 0, 1], 50062)),
        }
    }
}

/// `yibao conformance`'s flags.
#[derive(Clone, Debug, clap::Args)]
pub struct ConformanceArgs {
    /// The role of the bureau under test (the target); yibao plays the other.
    #[arg(long, value_enum, required_unless_present = "list")]
    pub role: Option<Role>,
    /// The target's platform endpoint, for example https://127.0.0.1:50062.
    #[arg(long, required_unless_present = "list")]
    pub target: Option<String>,
    /// Where the suite's own platform listener binds: the target must send its messages there
    /// (its peer address). Default: yibao's platform port of the role the suite plays
    /// (127.0.0.1:50061 playing transfer-out, 127.0.0.1:50062 playing transfer-in).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// After binding, write the suite's listener address (`127.0.0.1:PORT`) to this file, so a
    /// target can find it (yibao: `--peer file:PATH`); with `--listen 127.0.0.1:0` no port is
    /// fixed in advance.
    #[arg(long)]
    pub port_file: Option<PathBuf>,
    /// A directory made by `yibao certs`: its ca.pem and the played role's certificate and key
    /// (transfer-out.pem/.key or transfer-in.pem/.key). The --tls-* flags override each file.
    #[arg(long)]
    pub certs: Option<PathBuf>,
    /// The platform CA's certificate (PEM): the target's certificate must chain to it.
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    /// The suite's certificate (PEM), naming the regions it plays for.
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// The suite's private key (PEM).
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// The name the target's certificate must carry, when it is not the target URL's host.
    #[arg(long)]
    pub tls_server_name: Option<String>,
    /// Speak plaintext HTTP/2 on the platform, both ways (a target run without TLS).
    #[arg(long, conflicts_with_all = ["certs", "tls_ca", "tls_cert", "tls_key"])]
    pub plaintext: bool,
    /// The target's people-facing API (yibao's bureau.proto), if it has one: cases whose flow
    /// starts with an application at the target use it; without it they are skipped.
    #[arg(long)]
    pub target_api: Option<String>,
    /// The target's admin API (yibao's admin.proto), if it has one: seeding the case's people,
    /// its test clock (deadline cases), its ledger (conservation) and its message journal.
    /// Default: --target-api's address.
    #[arg(long)]
    pub target_admin: Option<String>,
    /// The region the target hosts. Default: 150100 (transfer-out) or 540100 (transfer-in),
    /// the regions of the deterministic population.
    #[arg(long)]
    pub target_region: Option<String>,
    /// The region the suite plays for. Default: 540100 or 150100, the other of the pair.
    #[arg(long)]
    pub own_region: Option<String>,
    /// The target's region directory has the transfer-out region of the pair remit balances
    /// apart, this many working days after the form (`remittance = { after_working_days = N }`):
    /// the money-leg cases run (RemitBalance 9106, ReturnRemittance 9107). Without it they are
    /// skipped. Against a transfer-out target the other cases expect the balance on the form,
    /// so run the money-leg cases on their own (`--only`).
    #[arg(long, value_name = "WORKING_DAYS")]
    pub remittance: Option<u16>,
    /// A region the target does not host (the 1002 case). Default: Beijing, 110100.
    #[arg(long, default_value = "110100")]
    pub unhosted_region: String,
    /// The population seed both sides use (a person is a function of seed and index).
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
    /// The first person (per flow) the cases use; a run takes fewer than 20 of each flow
    /// (cross-province, cross-province-out-initiated, refused-arrears; `yibao persons --flow F
    /// --first N --count 20`). Default: with the target's admin API, derived from the clock (the
    /// suite seeds them, and reruns use fresh people); without it, 0. The report prints it.
    #[arg(long)]
    pub first_person: Option<u64>,
    /// How long a case waits for the target to do something (a form, a state).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub wait: Duration,
    /// Run only these cases (repeat the flag or separate names with commas).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// List the cases of --role (or of both roles) with their expectations, and exit.
    #[arg(long)]
    pub list: bool,
    /// Write a JUnit XML report here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Write a self-contained HTML report here.
    #[arg(long)]
    pub html: Option<PathBuf>,
}

/// Why the suite could not run at all (a case that fails is a report, not an error).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConformanceError {
    /// A flag is missing or wrong.
    #[error("{0}")]
    Usage(String),
    /// The TLS files could not be used.
    #[error("TLS: {0}")]
    Tls(#[from] yibao_runtime::tls::TlsError),
    /// The suite's listener could not be bound.
    #[error("--listen {address}: {source}")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A report file could not be written.
    #[error("{path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A run's settings, as the cases see them.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The target's role.
    pub role: Role,
    /// How long a case waits for the target.
    pub wait: Duration,
    /// The population seed.
    pub seed: u64,
    /// The first person per flow.
    pub first_person: u64,
    /// A region the target does not host.
    pub unhosted_region: String,
    /// The working days after the form its balance is remitted, when the target's directory
    /// has the pair's transfer-out region remit apart (`--remittance`).
    pub remittance: Option<u16>,
}

/// The lines `--list` prints.
#[must_use]
pub fn listing(role: Option<Role>) -> String {
    let roles = role.map_or(vec![Role::TransferOut, Role::TransferIn], |r| vec![r]);
    let mut out = String::new();
    for role in roles {
        out.push_str(&format!(
            "against a {} bureau (--role {}):\n",
            role.name(),
            role.name()
        ));
        for case in cases::of(role) {
            out.push_str(&format!("  {}\n      {}\n", case.name, case.expectation));
        }
    }
    out
}

/// Runs the suite and writes the reports the flags ask for.
///
/// # Errors
/// When the suite cannot run at all (flags, TLS files, the listener, a report file).
pub async fn run(args: &ConformanceArgs) -> Result<Report, ConformanceError> {
    let (Some(role), Some(target_url)) = (args.role, args.target.clone()) else {
        return Err(ConformanceError::Usage(
            "--role and --target are required".into(),
        ));
    };
    let selected = select(role, &args.only)?;
    let settings = Arc::new(settings(args, role));
    let first_person = settings.first_person;
    let plays = role.other();
    let identity = Arc::new(identity(args, role, first_person));
    let tls = tls(args, plays)?;
    let target = connect(args, &target_url, tls.as_ref())?;
    let calendar = Arc::new(
        WorkingCalendar::shipped()
            .map_err(|e| ConformanceError::Usage(format!("calendar: {e}")))?,
    );
    let log = ExchangeLog::default();
    let counterpart = Counterpart::new(Arc::clone(&identity), log.clone(), Arc::clone(&calendar));
    let listen = args
        .listen
        .unwrap_or_else(|| plays.default_platform_address());
    let (listener, bound) =
        Counterpart::bind(listen)
            .await
            .map_err(|source| ConformanceError::Listen {
                address: listen,
                source,
            })?;
    if let Some(path) = &args.port_file {
        write(path, &bound.to_string())?;
    }
    let server = tokio::spawn(counterpart.clone().serve(listener, tls.clone()));
    let ctx = Ctx::new(
        Arc::clone(&settings),
        identity,
        counterpart,
        log.clone(),
        target,
        calendar,
    );
    ctx.take_baseline().await;
    let started_at = chrono::Utc::now();
    let mut reports = Vec::new();
    for case in selected {
        reports.push(run_case(&ctx, case).await);
    }
    server.abort();
    let report = Report {
        role,
        target: target_url,
        listen: bound,
        seed: settings.seed,
        first_person,
        started_at,
        cases: reports,
    };
    write_reports(args, &report)?;
    Ok(report)
}

/// The run's settings from the flags.
fn settings(args: &ConformanceArgs, role: Role) -> Settings {
    // With the admin API the suite seeds its people itself, so a fresh block per run; without
    // it the target holds the people, from the flow's first person on (README).
    let can_seed = args.target_admin.is_some() || args.target_api.is_some();
    Settings {
        role,
        wait: args.wait,
        seed: args.seed,
        first_person: args
            .first_person
            .unwrap_or_else(|| if can_seed { default_first_person() } else { 0 }),
        unhosted_region: args.unhosted_region.clone(),
        remittance: args.remittance,
    }
}

/// Who the suite speaks as: the other role, its region, and transfer ids numbered from the
/// run's first person (so reruns with other people mint other ids).
fn identity(args: &ConformanceArgs, role: Role, first_person: u64) -> Identity {
    let plays = role.other();
    Identity::new(
        plays,
        args.own_region
            .clone()
            .unwrap_or_else(|| plays.default_region().to_owned()),
        args.target_region
            .clone()
            .unwrap_or_else(|| role.default_region().to_owned()),
        u32::try_from((first_person % 100_000) * 100).unwrap_or(0),
    )
}

/// Writes the JUnit and HTML reports the flags ask for.
fn write_reports(args: &ConformanceArgs, report: &Report) -> Result<(), ConformanceError> {
    if let Some(path) = &args.junit {
        write(path, &report.junit())?;
    }
    if let Some(path) = &args.html {
        write(path, &report.html())?;
    }
    Ok(())
}

/// The target's clients: its platform listener, and its bureau and admin APIs when given.
fn connect(
    args: &ConformanceArgs,
    target_url: &str,
    tls: Option<&PlatformTls>,
) -> Result<Target, ConformanceError> {
    let platform = platform_channel(target_url, tls, args.tls_server_name.as_deref())?;
    let api = args.target_api.as_deref().map(lazy).transpose()?;
    let token = AdminToken::from_env().map_err(|e| ConformanceError::Usage(e.to_string()))?;
    let admin = args
        .target_admin
        .as_deref()
        .or(args.target_api.as_deref())
        .map(lazy)
        .transpose()?
        .map(|channel| admin_client(channel, token.as_ref()));
    Ok(Target {
        platform,
        api,
        admin,
    })
}

/// The longest one case may take: a deadline case waits up to three times.
fn case_limit(wait: Duration) -> Duration {
    wait.saturating_mul(4) + Duration::from_secs(30)
}

async fn run_case(ctx: &Ctx, case: cases::Case) -> CaseReport {
    let ctx = ctx.for_case();
    let start = tokio::time::Instant::now();
    let outcome = match tokio::time::timeout(case_limit(ctx.settings.wait), (case.run)(ctx.clone()))
        .await
    {
        Ok(Ok(())) => CaseOutcome::Pass,
        Ok(Err(Verdict::Fail { expected, observed })) => CaseOutcome::Fail { expected, observed },
        Ok(Err(Verdict::Skip(reason))) => CaseOutcome::Skip(reason),
        Err(_) => CaseOutcome::Fail {
            expected: format!("the case ends within {:?}", case_limit(ctx.settings.wait)),
            observed: "it was still waiting for the target".into(),
        },
    };
    let tracked = ctx.tracked();
    let mut journal = Vec::new();
    if matches!(outcome, CaseOutcome::Fail { .. }) {
        for id in &tracked {
            for entry in ctx.target_journal(id).await.unwrap_or_default() {
                journal.push(JournalLine::from_entry(&entry));
            }
        }
    }
    CaseReport {
        name: case.name,
        expectation: case.expectation,
        outcome,
        seconds: start.elapsed().as_secs_f64(),
        transfers: tracked.clone(),
        exchanges: ctx.log.of(&tracked),
        target_journal: journal,
    }
}

fn select(role: Role, only: &[String]) -> Result<Vec<cases::Case>, ConformanceError> {
    let all = cases::of(role);
    if only.is_empty() {
        return Ok(all);
    }
    for name in only {
        if !all.iter().any(|c| c.name == name) {
            let names: Vec<_> = all.iter().map(|c| c.name).collect();
            return Err(ConformanceError::Usage(format!(
                "--only {name}: no such case against a {} bureau; the cases are {}",
                role.name(),
                names.join(", ")
            )));
        }
    }
    Ok(all
        .into_iter()
        .filter(|c| only.iter().any(|n| n == c.name))
        .collect())
}

/// A first person from the clock: a fresh block of people every ten seconds, over about 11 hours.
fn default_first_person() -> u64 {
    let seconds = chrono::Utc::now().timestamp().unsigned_abs();
    (seconds / 10 % 4_000) * 64
}

fn tls(args: &ConformanceArgs, plays: Role) -> Result<Option<PlatformTls>, ConformanceError> {
    if args.plaintext {
        return Ok(None);
    }
    let from_dir = |file: String| args.certs.as_ref().map(|dir| dir.join(file));
    let ca = args.tls_ca.clone().or_else(|| from_dir("ca.pem".into()));
    let cert = args
        .tls_cert
        .clone()
        .or_else(|| from_dir(format!("{}.pem", plays.name())));
    let key = args
        .tls_key
        .clone()
        .or_else(|| from_dir(format!("{}.key", plays.name())));
    match (ca, cert, key) {
        (Some(ca), Some(cert), Some(key)) => Ok(Some(PlatformTls::load(&TlsFiles { ca, cert, key })?)),
        _ => Err(ConformanceError::Usage(
            "the platform needs mutual TLS: give --certs DIR (from `yibao certs`), or --tls-ca, --tls-cert and --tls-key, or --plaintext".into(),
        )),
    }
}

fn platform_channel(
    url: &str,
    tls: Option<&PlatformTls>,
    server_name: Option<&str>,
) -> Result<Channel, ConformanceError> {
    let bad = |e: tonic::transport::Error| ConformanceError::Usage(format!("--target {url}: {e}"));
    let mut endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(bad)?
        .connect_timeout(Duration::from_secs(3));
    if let Some(tls) = tls {
        if !url.starts_with("https://") {
            return Err(ConformanceError::Usage(format!(
                "--target {url}: over mutual TLS the target is an https:// URL (or give --plaintext)"
            )));
        }
        let mut config = tls.client();
        if let Some(name) = server_name {
            config = config.domain_name(name);
        }
        endpoint = endpoint.tls_config(config).map_err(bad)?;
    }
    Ok(endpoint.connect_lazy())
}

fn lazy(url: &str) -> Result<Channel, ConformanceError> {
    Endpoint::from_shared(url.to_owned())
        .map(|e| e.connect_timeout(Duration::from_secs(3)).connect_lazy())
        .map_err(|e| ConformanceError::Usage(format!("{url}: {e}")))
}

fn write(path: &std::path::Path, text: &str) -> Result<(), ConformanceError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| ConformanceError::Write {
            path: path.to_owned(),
            source,
        })?;
    }
    std::fs::write(path, text).map_err(|source| ConformanceError::Write {
        path: path.to_owned(),
        source,
    })
}
