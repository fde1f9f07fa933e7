//! The command line of `yibao`, as clap derive types: every command, flag and default in one
//! place, so that `yibao --help` and the parse tests read the same definition.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use yibao_domain::population::Flow;
use yibao_harness::Side;

/// The transfer-out bureau's endpoint when neither `--out` nor `YIBAO_OUT` says otherwise.
pub const DEFAULT_OUT: &str = "http://127.0.0.1:50051";

/// The transfer-in bureau's endpoint when neither `--in` nor `YIBAO_IN` says otherwise.
pub const DEFAULT_IN: &str = "http://127.0.0.1:50052";

/// The population seed `up` and `persons` use unless told otherwise.
pub const DEFAULT_SEED: u64 = 2026;

/// Operate the yibao bureaus: run a local pair, apply for transfers, follow them, check the
/// ledger.
#[derive(Debug, Parser)]
#[command(name = "yibao", version, propagate_version = true)]
pub struct Cli {
    /// Print one JSON object per result instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    /// The transfer-out bureau's endpoint.
    #[arg(
        long = "out",
        env = "YIBAO_OUT",
        hide_env_values = true,
        default_value = DEFAULT_OUT,
        global = true,
        value_name = "URL"
    )]
    pub out_endpoint: String,

    /// The transfer-in bureau's endpoint.
    #[arg(
        long = "in",
        env = "YIBAO_IN",
        hide_env_values = true,
        default_value = DEFAULT_IN,
        global = true,
        value_name = "URL"
    )]
    pub in_endpoint: String,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a transfer-out and a transfer-in bureau on the --out and --in ports, seed a demo
    /// population, and run until Ctrl-C.
    Up(UpArgs),
    /// Make the platform's development certificates for mutual TLS: `yibao certs --out DIR`
    /// (`yibao certs --help` lists its flags).
    #[command(disable_help_flag = true)]
    Certs(LoadPassthrough),
    /// Apply for a transfer (BureauService.ApplyTransfer).
    Apply(ApplyArgs),
    /// Show a transfer with its history and deadlines (GetTransfer).
    Status(StatusArgs),
    /// Follow a transfer, printing each change until it is terminal (WatchTransfer).
    Watch(StatusArgs),
    /// Show a person's insurance record at one bureau (GetPerson).
    Account(AccountArgs),
    /// Issue a person's insurance certificate (IssueCertificate, at the transfer-out bureau).
    Certificate(CertificateArgs),
    /// Check a certificate's verification code (VerifyCertificate).
    Verify(VerifyArgs),
    /// List synthetic persons of a flow, computed locally from the population seed.
    Persons(PersonsArgs),
    /// People whose lives change, at one bureau (admin API): create a person with a history,
    /// enrol them, stop their contributions, pay their arrears, retire them.
    #[command(subcommand)]
    Person(PersonCommand),
    /// Ledger checks against both bureaus.
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// The bureaus' test clocks.
    #[command(subcommand)]
    Clock(ClockCommand),
    /// List a bureau's open transfers in one state, e.g. `--state needs-operator` (ListTransfers).
    Transfers(TransfersArgs),
    /// Resolve a transfer waiting for an operator at the transfer-out bureau (ResolveTransfer).
    Resolve(ResolveArgs),
    /// A bureau's parked outbox messages.
    #[command(subcommand)]
    Outbox(OutboxCommand),
    /// Load, kill -9 and restart at random, inject faults, then prove nothing was lost or
    /// doubled: `yibao chaos --duration 30s --kill-every 4s --fault-rate 0.05` (`--topology
    /// FILE`: every bureau of a topology).
    Chaos(yibao_load::chaos::ChaosArgs),
    /// Run the conformance suite against a bureau of your own: yibao plays the other bureau
    /// (`yibao conformance --role transfer-in --target https://HOST:PORT --certs DIR`;
    /// `--list` names the cases).
    Conformance(Box<yibao_conformance::ConformanceArgs>),
    /// A transfer's platform messages at both bureaus, side by side in time order
    /// (GetMessageJournal); `--json` prints one JSON line per message.
    Journal(JournalArgs),
    /// A region's connection to the national platform, changed at both bureaus while they run
    /// (SetRegionConnectivity): `yibao region connect 410100`. Applications waiting for it
    /// proceed.
    #[command(subcommand)]
    Region(RegionCommand),
    /// Fault rules: faults on purpose (AddFaultRule, ListFaultRules, ClearFaultRules).
    #[command(subcommand)]
    Fault(FaultCommand),
    /// Load-test the handshake: `yibao load --spawn --duration 60s --baseline`
    /// (`yibao load --help` lists its flags).
    #[command(disable_help_flag = true)]
    Load(LoadPassthrough),
    /// Whether bureaus answer their gRPC health check SERVING (exit 1 if one does not): the
    /// --out and --in bureaus, or each --endpoint given (a container's health check).
    Health(HealthArgs),
}

/// Arguments of `yibao health`.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// A bureau's bureau/admin listener to check, e.g. http://127.0.0.1:50051; repeatable.
    /// Without it, the --out and --in bureaus are checked.
    #[arg(long = "endpoint", value_name = "URL")]
    pub endpoints: Vec<String>,
}

/// A command's flags, parsed by the command itself (`yibao load`, `yibao certs`): their `--out`
/// means something else than the global flag's.
#[derive(Debug, Args)]
pub struct LoadPassthrough {
    /// The load generator's own flags.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    pub args: Vec<String>,
}

/// `yibao region` commands.
#[derive(Debug, Subcommand)]
pub enum RegionCommand {
    /// The region joined the national platform.
    Connect(RegionArgs),
    /// The region is (again) not connected.
    Disconnect(RegionArgs),
}

/// Arguments of `yibao region connect|disconnect`.
#[derive(Debug, Args)]
pub struct RegionArgs {
    /// The region's 6-digit code.
    pub region_code: String,
}

/// Arguments of `yibao transfers`.
#[derive(Debug, Args)]
pub struct TransfersArgs {
    /// The state, for example `needs-operator`, `querying`, `aborting`.
    #[arg(long)]
    pub state: String,

    /// The bureau to ask.
    #[arg(long, value_enum, default_value_t = Bureau::Out)]
    pub bureau: Bureau,
}

/// What the other bureau confirmed to the operator, or what the operator does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutcomeArg {
    /// It credited the form: the transfer completes.
    Credited,
    /// It did not and never will: the balance returns (or is paid to the named bank account).
    NotCredited,
    /// At the transfer-in bureau: return the money held for a remittance refused as short or
    /// over to the transfer-out region's fund (退回), which is told and remits again.
    ReturnRemittance,
    /// At the transfer-out bureau: the transfer-in bureau returned the refused remittance
    /// outside the platform; the balance is remitted again.
    RemittanceReturned,
}

/// Arguments of `yibao resolve`.
#[derive(Debug, Args)]
pub struct ResolveArgs {
    /// The transfer's id.
    pub transfer_id: String,

    /// Who resolves it, recorded in the transfer's history.
    #[arg(long)]
    pub operator: String,

    /// Why: what the other bureau confirmed, and how; recorded in the history.
    #[arg(long)]
    pub reason: String,

    /// What the other bureau confirmed, or what to do (return-remittance is done at the
    /// transfer-in bureau, the others at the transfer-out bureau).
    #[arg(long, value_enum)]
    pub outcome: OutcomeArg,
}

/// Arguments of `yibao journal`.
#[derive(Debug, Args)]
pub struct JournalArgs {
    /// The transfer's id.
    pub transfer_id: String,
}

/// `yibao fault …`.
#[derive(Debug, Subcommand)]
pub enum FaultCommand {
    /// Add a fault rule at a bureau, e.g. `yibao fault add --bureau in --direction receiving
    /// --kind DELIVER_FORM --fault lose-answer --first 1 --label mytest`.
    Add(FaultAddArgs),
    /// List a bureau's fault rules with how many faults each injected.
    List(FaultListArgs),
    /// Remove a bureau's fault rules: those with --label, or all.
    Clear(FaultClearArgs),
}

/// What a fault rule does (admin.proto's FaultKind).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FaultArg {
    /// Wait --delay-ms (or a random time in --delay-ms..--delay-max-ms), then go on.
    Delay,
    /// Answer (or fail the send with) --grpc-code and --message.
    Status,
    /// Answer (or read) --infcode and --message.
    Infcode,
    /// Hold until the caller's deadline.
    NeverAnswer,
    /// Drop the connection before answering.
    ResetConnection,
    /// Apply the message, then lose the answer.
    LoseAnswer,
    /// Deliver the message twice.
    DeliverTwice,
    /// Hold the message while later ones pass.
    Reorder,
    /// The bank gateway fails payouts.
    BankFail,
    /// The bank gateway answers later.
    BankDelay,
    /// --region counts as not connected.
    RegionDisconnected,
    /// --region counts as connected.
    RegionConnected,
}

/// Which way the messages a rule matches travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DirectionArg {
    /// Messages the bureau sends.
    Sending,
    /// Messages the bureau receives.
    Receiving,
}

/// Arguments of `yibao fault add`.
#[derive(Debug, Args)]
pub struct FaultAddArgs {
    /// The bureau the rule is added at.
    #[arg(long, value_enum, default_value_t = Bureau::In)]
    pub bureau: Bureau,
    /// What happens to matching messages.
    #[arg(long, value_enum)]
    pub fault: FaultArg,
    /// A label, so that `yibao fault clear --label` removes only these rules.
    #[arg(long, default_value = "")]
    pub label: String,
    /// Only messages travelling this way (default: either).
    #[arg(long, value_enum)]
    pub direction: Option<DirectionArg>,
    /// Only this message kind (REQUEST_TRANSFER_OUT, DELIVER_FORM, ABORT, … or an infno).
    #[arg(long, default_value = "")]
    pub kind: String,
    /// Only messages from this region.
    #[arg(long, default_value = "")]
    pub sender: String,
    /// Only messages to this region.
    #[arg(long, default_value = "")]
    pub receiver: String,
    /// Only this transfer.
    #[arg(long, default_value = "")]
    pub transfer: String,
    /// Only this person's transfers.
    #[arg(long, default_value = "")]
    pub certno: String,
    /// Only the first N attempts of each message.
    #[arg(long, default_value_t = 0)]
    pub first: u32,
    /// The chance (0 to 1) that a matching message gets the fault (default: always).
    #[arg(long, default_value_t = 0.0)]
    pub probability: f64,
    /// delay / reorder: the wait in milliseconds (the shortest, with --delay-max-ms).
    #[arg(long, default_value_t = 0)]
    pub delay_ms: u32,
    /// delay / reorder: the longest wait (default: --delay-ms).
    #[arg(long)]
    pub delay_max_ms: Option<u32>,
    /// status: the gRPC code (e.g. 14 for UNAVAILABLE).
    #[arg(long, default_value_t = 0)]
    pub grpc_code: i32,
    /// infcode: the infcode (1001 to 1999).
    #[arg(long, default_value_t = 0)]
    pub infcode: i32,
    /// status / infcode: the message.
    #[arg(long, default_value = "")]
    pub message: String,
    /// region-disconnected / region-connected: the region.
    #[arg(long, default_value = "")]
    pub region: String,
}

/// Arguments of `yibao fault list`.
#[derive(Debug, Args)]
pub struct FaultListArgs {
    /// The bureau to ask.
    #[arg(long, value_enum, default_value_t = Bureau::In)]
    pub bureau: Bureau,
}

/// Arguments of `yibao fault clear`.
#[derive(Debug, Args)]
pub struct FaultClearArgs {
    /// The bureau whose rules to remove.
    #[arg(long, value_enum, default_value_t = Bureau::In)]
    pub bureau: Bureau,
    /// Only the rules with this label (default: every rule).
    #[arg(long, default_value = "")]
    pub label: String,
}

/// `yibao outbox …`.
#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// List a bureau's parked messages.
    List(OutboxListArgs),
    /// Make parked messages due again: one (--message-id) or all (--all).
    Retry(OutboxRetryArgs),
}

/// Arguments of `yibao outbox list`.
#[derive(Debug, Args)]
pub struct OutboxListArgs {
    /// The bureau to ask.
    #[arg(long, value_enum, default_value_t = Bureau::Out)]
    pub bureau: Bureau,
}

/// Arguments of `yibao outbox retry`.
#[derive(Debug, Args)]
pub struct OutboxRetryArgs {
    /// The bureau whose outbox to retry.
    #[arg(long, value_enum, default_value_t = Bureau::Out)]
    pub bureau: Bureau,

    /// The parked message's id (from `yibao outbox list`).
    #[arg(long, conflicts_with = "all", required_unless_present = "all")]
    pub message_id: Option<i64>,

    /// Every parked message.
    #[arg(long)]
    pub all: bool,

    /// Who asks, recorded in the transfers' history.
    #[arg(long, default_value = "yibao-cli")]
    pub operator: String,
}

/// Which bureau a command talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Bureau {
    /// The transfer-in bureau (--in).
    In,
    /// The transfer-out bureau (--out).
    Out,
}

impl From<Bureau> for Side {
    fn from(bureau: Bureau) -> Side {
        match bureau {
            Bureau::In => Side::In,
            Bureau::Out => Side::Out,
        }
    }
}

impl From<Side> for Bureau {
    fn from(side: Side) -> Bureau {
        match side {
            Side::In => Bureau::In,
            Side::Out => Bureau::Out,
        }
    }
}

/// How the person applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ChannelArg {
    /// Online, through the national app or a bureau's website.
    Online,
    /// At a bureau's counter.
    Counter,
}

/// Arguments of `yibao up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Where both bureaus keep their data and logs.
    #[arg(long, default_value = "data", value_name = "DIR")]
    pub data_dir: PathBuf,

    /// The population seed.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,

    /// How many synthetic persons to seed into both bureaus.
    #[arg(long, default_value_t = 1300)]
    pub persons: u64,

    /// The region directory; default: deploy/regions.toml in the current directory, else
    /// beside the executable's ../../deploy.
    #[arg(long, value_name = "PATH")]
    pub directory: Option<PathBuf>,

    /// Where transfer-out's platform listener (bureau-to-bureau, mutual TLS) listens.
    #[arg(long, default_value = "127.0.0.1:50061", value_name = "ADDR")]
    pub platform_out: SocketAddr,

    /// Where transfer-in's platform listener (bureau-to-bureau, mutual TLS) listens.
    #[arg(long, default_value = "127.0.0.1:50062", value_name = "ADDR")]
    pub platform_in: SocketAddr,

    /// Run the platform hop without TLS (an explicit opt-out; by default it is mutual TLS with
    /// development certificates made in DATA_DIR/certs).
    #[arg(long)]
    pub plaintext: bool,

    /// Export both bureaus' traces over OTLP/gRPC to this collector, e.g.
    /// http://127.0.0.1:4317 (a local Jaeger). Each bureau's own setting: --otlp-endpoint.
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,

    /// Each bureau appends its finished spans to `DATA_DIR/<service>.traces.jsonl`. Each
    /// bureau's own setting: --trace-file.
    #[arg(long)]
    pub trace_files: bool,

    /// Start the bureaus of a topology file instead of the pair (e.g. deploy/topology-3.toml:
    /// three bureaus over one region directory, on the ports the file gives each); `--out`,
    /// `--in`, `--platform-*` and `--directory` are then the file's business.
    #[arg(long, value_name = "PATH", conflicts_with = "directory")]
    pub topology: Option<PathBuf>,

    /// Where transfer-out serves Prometheus metrics (GET /metrics).
    #[arg(long, default_value = "127.0.0.1:9464", value_name = "ADDR")]
    pub metrics_out: SocketAddr,

    /// Where transfer-in serves Prometheus metrics (GET /metrics).
    #[arg(long, default_value = "127.0.0.1:9465", value_name = "ADDR")]
    pub metrics_in: SocketAddr,

    /// Serve no metrics (no metrics listener, nothing recorded).
    #[arg(long, conflicts_with_all = ["metrics_out", "metrics_in"])]
    pub no_metrics: bool,
}

impl UpArgs {
    /// The metrics address of `side`, unless metrics are off.
    pub fn metrics(&self, side: yibao_harness::Side) -> Option<SocketAddr> {
        if self.no_metrics {
            return None;
        }
        Some(match side {
            yibao_harness::Side::Out => self.metrics_out,
            yibao_harness::Side::In => self.metrics_in,
        })
    }
}

/// Arguments of `yibao certs`, parsed by the command itself: its `--out` is a directory, not the
/// global transfer-out endpoint.
#[derive(Debug, Parser)]
#[command(
    name = "yibao certs",
    about = "Make the platform's development certificates: a CA and one certificate per bureau \
             of the region directory (or per --bureau, such as your own), for mutual TLS."
)]
pub struct CertsArgs {
    /// The directory to write ca.pem, ca.key and NAME.pem / NAME.key into. A CA already there
    /// is reused, so bureaus certified later are trusted by services already running.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// The region directory whose bureaus (transfer-out, transfer-in) to certify, each naming
    /// the regions it hosts; default: deploy/regions.toml as `yibao up` finds it.
    #[arg(long, value_name = "PATH")]
    pub directory: Option<PathBuf>,

    /// Certify another bureau, e.g. your own: NAME=CODE[,CODE...] names the regions it hosts
    /// (`--bureau my-bureau=540100`). Repeatable. With it, only the named bureaus are certified.
    #[arg(long, value_name = "NAME=CODES")]
    pub bureau: Vec<String>,

    /// Another host name or IP address the certificates are valid for (besides localhost,
    /// 127.0.0.1 and ::1). Repeatable.
    #[arg(long, value_name = "HOST")]
    pub host: Vec<String>,
}

/// Arguments of `yibao apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The applicant's 18-character resident ID number.
    #[arg(long, value_name = "ID")]
    pub certno: String,

    /// The applicant's name, as the bureau knows it.
    #[arg(long)]
    pub name: String,

    /// The 6-digit code of the transfer-out pooling region.
    #[arg(long, value_name = "REGION")]
    pub from: String,

    /// The 6-digit code of the transfer-in pooling region.
    #[arg(long, value_name = "REGION")]
    pub to: String,

    /// The bureau that receives the application.
    #[arg(long, value_enum, default_value_t = Bureau::In)]
    pub at: Bureau,

    /// The person's bank account number, for a payout of the balance.
    #[arg(long, value_name = "NUMBER", requires = "bank_name")]
    pub bank_account: Option<String>,

    /// The bank (and branch) of --bank-account.
    #[arg(long, value_name = "NAME", requires = "bank_account")]
    pub bank_name: Option<String>,

    /// A relocated retiree asks for the balance to be paid to the bank account.
    #[arg(long)]
    pub retiree_payout: bool,

    /// The destination is not connected to the national platform and the person asks for the
    /// balance to be paid to the bank account now; without it the application waits until the
    /// region joins.
    #[arg(long)]
    pub payout: bool,

    /// How the person applied.
    #[arg(long, value_enum, default_value_t = ChannelArg::Online)]
    pub channel: ChannelArg,

    /// An idempotency key: repeating the command with it returns the same transfer.
    #[arg(long, value_name = "KEY")]
    pub request_id: Option<String>,

    /// The scheme the person joins at --to; required with --at out (the transfer-out bureau
    /// decides by it where the balance goes).
    #[arg(long, value_enum, required_if_eq("at", "out"))]
    pub scheme_at_in: Option<SchemeArg>,
}

/// A scheme on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SchemeArg {
    /// Employee basic medical insurance (310), with a personal account.
    Employee,
    /// Urban-rural resident basic medical insurance (390), no personal account.
    Resident,
}

/// Arguments of `yibao status` and `yibao watch`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The transfer's id.
    pub transfer_id: String,

    /// The bureau to ask.
    #[arg(long, value_enum, default_value_t = Bureau::In)]
    pub bureau: Bureau,
}

/// Arguments of `yibao account`.
#[derive(Debug, Args)]
pub struct AccountArgs {
    /// The person's resident ID number.
    #[arg(value_name = "PERSON")]
    pub certno: String,

    /// The bureau to ask.
    #[arg(long, value_enum)]
    pub bureau: Bureau,
}

/// Arguments of `yibao certificate`.
#[derive(Debug, Args)]
pub struct CertificateArgs {
    /// The person's resident ID number.
    #[arg(value_name = "PERSON")]
    pub certno: String,

    /// The person's name, as the bureau knows it: the certificate is issued in full only to a
    /// caller who names its holder.
    #[arg(long, value_name = "NAME")]
    pub name: String,

    /// The bureau that issues it.
    #[arg(long, value_enum, default_value_t = Bureau::Out)]
    pub bureau: Bureau,
}

/// Arguments of `yibao verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The verification code printed on the certificate.
    pub code: String,

    /// The bureau that issued the certificate.
    #[arg(long, value_enum, default_value_t = Bureau::Out)]
    pub bureau: Bureau,
}

/// What `--flow` names: one flow, or `list` for the list of flows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowChoice {
    /// List the flow names.
    List,
    /// Persons of this flow.
    Flow(Flow),
}

/// Arguments of `yibao persons`.
#[derive(Debug, Args)]
pub struct PersonsArgs {
    /// The flow (for example cross-province), or `list` to list the flows.
    #[arg(long, value_name = "NAME", value_parser = parse_flow_choice)]
    pub flow: FlowChoice,

    /// How many persons.
    #[arg(long, default_value_t = 5)]
    pub count: usize,

    /// Start at the flow's n-th person (from 0), as `yibao conformance --first-person N` does.
    #[arg(long, default_value_t = 0)]
    pub first: u64,

    /// The population seed.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,
}

/// `yibao ledger` commands.
#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Check that both bureaus' ledgers conserve money; exit 1 on a violation.
    Check,
}

/// `yibao clock` commands.
#[derive(Debug, Subcommand)]
pub enum ClockCommand {
    /// Move both bureaus' test clocks forward.
    Advance(AdvanceArgs),
    /// Show both bureaus' clocks.
    Show,
}

/// Arguments of `yibao clock advance`.
#[derive(Debug, Args)]
pub struct AdvanceArgs {
    /// How many days (calendar days; weekends and holidays count) to move forward.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub days: u32,
}

/// Parses `--flow`: `list` or a flow's stable name.
fn parse_flow_choice(text: &str) -> Result<FlowChoice, String> {
    if text == "list" {
        return Ok(FlowChoice::List);
    }
    Flow::from_name(text).map(FlowChoice::Flow).ok_or_else(|| {
        let names: Vec<&str> = Flow::ALL.iter().map(|flow| flow.name()).collect();
        format!("unknown flow; one of: list, {}", names.join(", "))
    })
}

/// `yibao person …`: one person's record at one bureau (--at), changed through its admin API.
#[derive(Debug, Subcommand)]
pub enum PersonCommand {
    /// Create a person with a history (CreatePerson), e.g. `yibao person create --at out
    /// --certno ID --name NAME --region 150100 --scheme employee --state suspended
    /// --period 201507-202606:employee:150100 --balance 1234.56`.
    Create(PersonCreateArgs),
    /// Enrol a person at a region and scheme from a month (EnrolPerson): someone new here, or
    /// stopped here, or whose relationship left.
    Enrol(PersonEnrolArgs),
    /// Stop a person's contributions from a month (StopContributing, 中止参保).
    Stop(PersonMonthArgs),
    /// Pay what a person owes, all of it or --amount, and back-pay months with --back-pay
    /// (PayArrears, 补缴).
    Pay(PersonPayArgs),
    /// Retire a person from a month (RetirePerson, 退休).
    Retire(PersonMonthArgs),
}

/// An enrolment state, as `--state` spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StateArg {
    /// Contributing (正常参保).
    Normal,
    /// Stopped contributing (中止参保 / 停保).
    Suspended,
    /// The relationship left (终止参保).
    Terminated,
}

/// One `--period FROM-TO:SCHEME:REGION`, as given (the bureau checks the months and region).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeriodArg {
    /// The first month, `YYYYMM`.
    pub from_month: String,
    /// The last month, `YYYYMM`.
    pub to_month: String,
    /// The scheme.
    pub scheme: SchemeArg,
    /// The region's 6-digit code.
    pub region: String,
}

/// The bureau and person every `yibao person` command names.
#[derive(Debug, Args)]
pub struct PersonTarget {
    /// The bureau whose record to change.
    #[arg(long, value_enum)]
    pub at: Bureau,

    /// The person's 18-character resident ID number.
    #[arg(long, value_name = "ID")]
    pub certno: String,
}

/// What `yibao person create` and `enrol` both name: the bureau, the person, and where and
/// under which scheme the person is enrolled.
#[derive(Debug, Args)]
pub struct PersonEnrolled {
    /// The bureau and the person.
    #[command(flatten)]
    pub target: PersonTarget,

    /// The person's name (as the bureau's record names a person it knows).
    #[arg(long)]
    pub name: String,

    /// The 6-digit code of the region of enrolment (one the bureau hosts).
    #[arg(long, value_name = "REGION")]
    pub region: String,

    /// The scheme.
    #[arg(long, value_enum, default_value_t = SchemeArg::Employee)]
    pub scheme: SchemeArg,
}

/// Arguments of `yibao person create`.
#[derive(Debug, Args)]
pub struct PersonCreateArgs {
    /// The bureau, the person, the region and the scheme.
    #[command(flatten)]
    pub enrolled: PersonEnrolled,

    /// The enrolment state.
    #[arg(long, value_enum, default_value_t = StateArg::Normal)]
    pub state: StateArg,

    /// The first month ever insured, YYYYMM (default: the earliest --period's first month).
    #[arg(long, value_name = "YYYYMM")]
    pub first_insured: Option<String>,

    /// A contribution period, FROM-TO:SCHEME:REGION (e.g. 201507-202606:employee:150100).
    /// Repeatable. A period at another region was brought in by a transfer: count its months
    /// in --deemed-months too.
    #[arg(long, value_name = "FROM-TO:SCHEME:REGION", value_parser = parse_period)]
    pub period: Vec<PeriodArg>,

    /// The personal-account balance, in yuan (e.g. 1234.56).
    #[arg(long, value_name = "YUAN", default_value = "0.00")]
    pub balance: String,

    /// What the person owes at the region, in yuan.
    #[arg(long, value_name = "YUAN", default_value = "0.00")]
    pub arrears: String,

    /// Months brought in by earlier transfers (视同缴费年限).
    #[arg(long, default_value_t = 0)]
    pub deemed_months: u32,

    /// A retired employee.
    #[arg(long)]
    pub retired: bool,
}

/// Arguments of `yibao person enrol`.
#[derive(Debug, Args)]
pub struct PersonEnrolArgs {
    /// The bureau, the person, the region and the scheme.
    #[command(flatten)]
    pub enrolled: PersonEnrolled,

    /// The first month contributed, YYYYMM.
    #[arg(long, value_name = "YYYYMM")]
    pub from: String,
}

/// Arguments of `yibao person stop` and `yibao person retire`.
#[derive(Debug, Args)]
pub struct PersonMonthArgs {
    /// The bureau and the person.
    #[command(flatten)]
    pub target: PersonTarget,

    /// The month it takes effect, YYYYMM: the first month not contributed.
    #[arg(long, value_name = "YYYYMM")]
    pub from: String,
}

/// Arguments of `yibao person pay`.
#[derive(Debug, Args)]
pub struct PersonPayArgs {
    /// The bureau and the person.
    #[command(flatten)]
    pub target: PersonTarget,

    /// How much of what is owed to pay, in yuan (default: all of it).
    #[arg(long, value_name = "YUAN")]
    pub amount: Option<String>,

    /// Months to back-pay (补缴), FROM-TO (e.g. 202601-202603; a gap of at most 3 months).
    #[arg(long, value_name = "FROM-TO", value_parser = parse_months)]
    pub back_pay: Option<(String, String)>,
}

/// Parses `FROM-TO` into its two months, as given.
fn parse_months(text: &str) -> Result<(String, String), String> {
    match text.split_once('-') {
        Some((from, to)) if !from.is_empty() && !to.is_empty() => {
            Ok((from.to_owned(), to.to_owned()))
        }
        _ => Err("expected FROM-TO, two months YYYYMM (e.g. 202601-202603)".to_owned()),
    }
}

/// Parses `FROM-TO:SCHEME:REGION`.
fn parse_period(text: &str) -> Result<PeriodArg, String> {
    let usage = "expected FROM-TO:SCHEME:REGION (e.g. 201507-202606:employee:150100)";
    let mut parts = text.split(':');
    let (Some(months), Some(scheme), Some(region), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(usage.to_owned());
    };
    let (from_month, to_month) = parse_months(months).map_err(|_| usage.to_owned())?;
    let scheme = SchemeArg::from_str(scheme, true)
        .map_err(|_| format!("{usage}: the scheme is employee or resident"))?;
    Ok(PeriodArg {
        from_month,
        to_month,
        scheme,
        region: region.to_owned(),
    })
}
