//! `yibao`, the operator and tester command line for the two bureau services.
//!
//! `yibao up` runs a local pair and seeds a demo population; `apply`, `status`, `watch`,
//! `account`, `certificate` and `verify` call a bureau's `BureauService`; `persons` computes
//! synthetic people locally; `person create|enrol|stop|pay|retire` change one person's record
//! at one bureau through its admin API; `ledger check` and `clock advance` use the admin API of
//! both bureaus through the harness crate. Every command takes `--json` (one JSON object per result)
//! and the endpoints `--out` and `--in` (`YIBAO_OUT`, `YIBAO_IN`). Admin calls present the token
//! in `YIBAO_ADMIN_TOKEN` when it is set, and `yibao up` starts its bureaus requiring it.
//!
//! Exit codes: 0 when the command did what was asked; 1 when a bureau refused or a call
//! failed (one line naming the status code and message), when `verify` finds no certificate,
//! or when `ledger check` finds a violation; 2 for a usage error (clap's own).
//!
//! The binary is `src/main.rs`; the definitions live here so that tests can parse command lines.

pub mod args;
pub mod certs;
pub mod commands;
pub mod connect;
pub mod error;
pub mod fault;
pub mod operator;
pub mod output;
pub mod person;
pub mod up;
mod up_topology;

use std::process::ExitCode;

use args::{Cli, ClockCommand, Command, FaultCommand, LedgerCommand, OutboxCommand, RegionCommand};
use connect::Endpoints;
use error::CliError;
use output::Output;

/// How a command ended that did not fail outright.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It did what was asked: exit 0.
    Success,
    /// It ran, and the answer is "no" (an unknown certificate, a violated ledger): exit 1,
    /// with the answer already printed.
    Refused,
}

/// Which endpoints the command line (or `YIBAO_OUT`/`YIBAO_IN`) named, rather than leaving them
/// at their defaults. `yibao load` passes named endpoints on to the load generator: its own
/// `--out`/`--in` share the global flags' names, so the global flags are the ones clap fills.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Named {
    /// `--out` or `YIBAO_OUT` was given.
    pub out: Endpoint,
    /// `--in` or `YIBAO_IN` was given.
    pub inn: Endpoint,
}

/// Whether an endpoint was named or left at its default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Endpoint {
    /// The default.
    #[default]
    Default,
    /// Given by a flag or the environment.
    Given,
}

/// Parses a command line, telling which endpoints it named.
pub fn parse_from<I, T>(args: I) -> Result<(Cli, Named), clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::{CommandFactory, FromArgMatches, parser::ValueSource};
    let matches = Cli::command().try_get_matches_from(args)?;
    let cli = Cli::from_arg_matches(&matches)?;
    let named = |id: &str| match matches.value_source(id) {
        Some(ValueSource::CommandLine | ValueSource::EnvVariable) => Endpoint::Given,
        _ => Endpoint::Default,
    };
    let named = Named {
        out: named("out_endpoint"),
        inn: named("in_endpoint"),
    };
    Ok((cli, named))
}

/// Runs a parsed command line and returns the process exit code.
pub async fn run(cli: Cli) -> ExitCode {
    run_named(cli, Named::default()).await
}

/// As [`run`], with the endpoints the command line named.
pub async fn run_named(cli: Cli, named: Named) -> ExitCode {
    let output = Output::new(cli.json);
    let admin_token = match yibao_harness::AdminToken::from_env() {
        Ok(token) => token,
        Err(error) => {
            output.error(&CliError::Failed(error.to_string()));
            return ExitCode::from(1);
        }
    };
    let endpoints = Endpoints {
        out: cli.out_endpoint.clone(),
        inn: cli.in_endpoint.clone(),
        admin_token,
    };
    match execute(&cli.command, &endpoints, named, output).await {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Refused) => ExitCode::from(1),
        Err(error) => {
            output.error(&error);
            ExitCode::from(1)
        }
    }
}

/// Dispatches to the command.
async fn execute(
    command: &Command,
    endpoints: &Endpoints,
    named: Named,
    output: Output,
) -> Result<Outcome, CliError> {
    match command {
        Command::Up(args) => match &args.topology {
            Some(topology) => up_topology::up(topology, args, endpoints, output).await,
            None => up::up(args, endpoints, output).await,
        },
        Command::Certs(passthrough) => {
            certs::run(&load_args(&passthrough.args, endpoints, named), output)
        }
        Command::Apply(args) => commands::apply(args, endpoints, output).await,
        Command::Status(args) => commands::status(args, endpoints, output).await,
        Command::Watch(args) => commands::watch(args, endpoints, output).await,
        Command::Account(args) => commands::account(args, endpoints, output).await,
        Command::Certificate(args) => commands::certificate(args, endpoints, output).await,
        Command::Verify(args) => commands::verify(args, endpoints, output).await,
        Command::Persons(args) => commands::persons(args, endpoints, output),
        Command::Person(command) => person::run(command, endpoints, output).await,
        Command::Ledger(LedgerCommand::Check) => commands::ledger_check(endpoints, output).await,
        Command::Clock(ClockCommand::Advance(args)) => {
            commands::clock_advance(args, endpoints, output).await
        }
        Command::Clock(ClockCommand::Show) => commands::clock_show(endpoints, output).await,
        Command::Transfers(args) => operator::transfers(args, endpoints, output).await,
        Command::Resolve(args) => operator::resolve(args, endpoints, output).await,
        Command::Journal(args) => fault::journal(args, endpoints, output).await,
        Command::Chaos(args) => {
            // Named endpoints are running services to drive; else chaos starts its own pair.
            let running = (named.out == Endpoint::Given || named.inn == Endpoint::Given)
                .then(|| (endpoints.out.clone(), endpoints.inn.clone()));
            chaos(args, running, output).await
        }
        Command::Conformance(args) => conformance(args, output).await,
        Command::Region(RegionCommand::Connect(args)) => {
            fault::region(args, true, endpoints, output).await
        }
        Command::Region(RegionCommand::Disconnect(args)) => {
            fault::region(args, false, endpoints, output).await
        }
        Command::Fault(FaultCommand::Add(args)) => fault::add(args, endpoints, output).await,
        Command::Fault(FaultCommand::List(args)) => fault::list(args, endpoints, output).await,
        Command::Fault(FaultCommand::Clear(args)) => fault::clear(args, endpoints, output).await,
        Command::Outbox(OutboxCommand::List(args)) => {
            operator::outbox_list(args, endpoints, output).await
        }
        Command::Outbox(OutboxCommand::Retry(args)) => {
            operator::outbox_retry(args, endpoints, output).await
        }
        Command::Load(passthrough) => load(&load_args(&passthrough.args, endpoints, named)).await,
        Command::Health(args) => health(args, endpoints, output).await,
    }
}

/// `yibao health`: each endpoint's gRPC health, refused when one is not SERVING.
async fn health(
    args: &args::HealthArgs,
    endpoints: &Endpoints,
    output: Output,
) -> Result<Outcome, CliError> {
    let checked = if args.endpoints.is_empty() {
        vec![endpoints.out.clone(), endpoints.inn.clone()]
    } else {
        args.endpoints.clone()
    };
    let mut all_serving = true;
    for endpoint in checked {
        let verdict = yibao_harness::process::health(&endpoint).await;
        all_serving &= verdict.is_ok();
        let status = verdict
            .as_ref()
            .map_or_else(String::clone, |()| "SERVING".to_owned());
        output.emit(
            &serde_json::json!({ "endpoint": endpoint, "serving": verdict.is_ok(), "status": status }),
            || format!("{endpoint}: {status}"),
        );
    }
    Ok(if all_serving {
        Outcome::Success
    } else {
        Outcome::Refused
    })
}

/// The load generator's flags: its own, and `--out`/`--in` for each endpoint the command line
/// named (so that `yibao load --out URL --in URL` drives those, and `--spawn` with either is
/// refused by the generator's own parser, as it should be).
pub fn load_args(args: &[String], endpoints: &Endpoints, named: Named) -> Vec<String> {
    let mut all = args.to_vec();
    if named.out == Endpoint::Given {
        all.extend(["--out".to_owned(), endpoints.out.clone()]);
    }
    if named.inn == Endpoint::Given {
        all.extend(["--in".to_owned(), endpoints.inn.clone()]);
    }
    all
}

/// `yibao conformance`: runs the suite (or lists its cases) and prints the report; refused
/// when a case failed.
async fn conformance(
    args: &yibao_conformance::ConformanceArgs,
    output: Output,
) -> Result<Outcome, CliError> {
    if args.list {
        let listing = yibao_conformance::listing(args.role);
        output.emit(&serde_json::json!({ "cases": listing }), || listing.clone());
        return Ok(Outcome::Success);
    }
    let report = yibao_conformance::run(args)
        .await
        .map_err(|error| CliError::Failed(error.to_string()))?;
    let value = serde_json::to_value(&report).unwrap_or_default();
    output.emit(&value, || report.text());
    Ok(if report.passed() {
        Outcome::Success
    } else {
        Outcome::Refused
    })
}

/// `yibao chaos`: prints what the run saw; refused unless it proved everything.
async fn chaos(
    args: &yibao_load::chaos::ChaosArgs,
    running: Option<(String, String)>,
    output: Output,
) -> Result<Outcome, CliError> {
    let report = yibao_load::chaos::run(args, running)
        .await
        .map_err(|error| CliError::Failed(error.to_string()))?;
    let value = serde_json::json!({
        "transfers": report.transfers,
        "client_failures": report.client_failures,
        "retries": report.retries,
        "kills": report.kills,
        "killed": report.killed,
        "faults": report.faults,
        "open_after": report.open_after,
        "lost_cents": report.lost_cents.to_string(),
        "double_credit_cents": report.double_credit_cents.max(0).to_string(),
        "double_payout_cents": report.double_payout_cents.max(0).to_string(),
        "ledger_problems": report.ledger,
        "passed": report.passed(),
    });
    output.emit(&value, || report.summary());
    Ok(if report.passed() {
        Outcome::Success
    } else {
        Outcome::Refused
    })
}

/// `yibao load`: parses the load generator's flags and runs it; refused when the ledger does
/// not hold or a transfer failed.
async fn load(args: &[String]) -> Result<Outcome, CliError> {
    #[derive(Debug, clap::Parser)]
    #[command(name = "yibao load", about = "Load-test the transfer handshake.")]
    struct LoadCli {
        #[command(flatten)]
        load: yibao_load::LoadArgs,
    }
    let parsed = match <LoadCli as clap::Parser>::try_parse_from(
        std::iter::once("yibao load".to_owned()).chain(args.iter().cloned()),
    ) {
        Ok(parsed) => parsed,
        // Help and version print and exit 0; a usage error prints and exits 2, like the rest.
        Err(error) => error.exit(),
    };
    let progress = parsed.load.progress();
    let options = match yibao_load::LoadOptions::try_from(parsed.load) {
        Ok(options) => options,
        // A flag value that parses but makes no sense is a usage error too: exit 2.
        Err(error) => clap::Error::raw(
            clap::error::ErrorKind::ValueValidation,
            format!("{error}\n"),
        )
        .exit(),
    };
    let report = yibao_load::run(options, progress)
        .await
        .map_err(|error| CliError::Failed(error.to_string()))?;
    report.print_summary();
    Ok(if report.ledger_holds() && report.errors_total() == 0 {
        Outcome::Success
    } else {
        Outcome::Refused
    })
}
