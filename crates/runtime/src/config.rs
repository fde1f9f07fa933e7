//! A bureau service's settings, loaded in layers: defaults, then a TOML file, then environment
//! variables, then command-line flags; each layer overrides only what it sets.
//!
//! | setting | file key | environment | flag | default |
//! | --- | --- | --- | --- | --- |
//! | settings file | — | `YIBAO_CONFIG` | `--config` | none |
//! | listen address (bureau and admin APIs) | `listen` | `YIBAO_LISTEN` | `--listen` | `127.0.0.1:50051` (out), `:50052` (in) |
//! | platform listen address | `platform_listen` | `YIBAO_PLATFORM_LISTEN` | `--platform-listen` | `127.0.0.1:50061` (out), `:50062` (in) |
//! | platform CA certificate | `tls_ca` | `YIBAO_TLS_CA` | `--tls-ca` | none |
//! | this bureau's certificate | `tls_cert` | `YIBAO_TLS_CERT` | `--tls-cert` | none |
//! | this bureau's private key | `tls_key` | `YIBAO_TLS_KEY` | `--tls-key` | none |
//! | platform without TLS | `plaintext` | `YIBAO_PLAINTEXT` | `--plaintext[=BOOL]` | `false` |
//! | the peer's batch RPCs | `peer_batches` | `YIBAO_PEER_BATCHES` | `--peer-batches` | `auto` |
//! | data directory | `data_dir` | `YIBAO_DATA_DIR` | `--data-dir` | `data/<role>` |
//! | PostgreSQL database instead of SQLite | `database_url` | `YIBAO_DATABASE_URL` | `--database-url` | none: SQLite in `data_dir` |
//! | region directory | `directory` | `YIBAO_DIRECTORY` | `--directory` | `deploy/regions.toml` |
//! | peer bureau (several replicas: comma-separated, failed over in turn) | `peer_endpoint` | `YIBAO_PEER` | `--peer` | the other role's default platform address |
//! | this bureau's name in the region directory | `bureau` | `YIBAO_BUREAU` | `--bureau` | the role's name |
//! | peers by bureau name | `[peers]` table, `name = "URL"` | `YIBAO_PEERS` (`NAME=URL,…`) | `--peers NAME=URL,…` | none: every bureau at `peer_endpoint` |
//! | admin API | `admin_enabled` | `YIBAO_ADMIN` | `--admin[=BOOL]` | `false` |
//! | admin token | `admin_token` | `YIBAO_ADMIN_TOKEN` | — (a flag would show in `ps`) | none: loopback callers only |
//! | test clock | `test_clock` | `YIBAO_TEST_CLOCK` | `--test-clock[=BOOL]` | `false` |
//! | calendar year files | `calendar_dir` | `YIBAO_CALENDAR_DIR` | `--calendar-dir` | none |
//! | log format | `log_format` | `YIBAO_LOG_FORMAT` | `--log-format` | `text` |
//! | port file | `port_file` | `YIBAO_PORT_FILE` | `--port-file` | none |
//! | platform port file | `platform_port_file` | `YIBAO_PLATFORM_PORT_FILE` | `--platform-port-file` | none |
//! | Prometheus metrics listen address (`GET /metrics`) | `metrics_listen` | `YIBAO_METRICS_LISTEN` | `--metrics-listen` | none: no metrics |
//! | metrics port file | `metrics_port_file` | `YIBAO_METRICS_PORT_FILE` | `--metrics-port-file` | none |
//! | fault rules file (TOML `[[rule]]`s) | `faults` | `YIBAO_FAULTS` | `--faults` | none |
//! | OTLP/gRPC trace collector | `otlp_endpoint` | `YIBAO_OTLP_ENDPOINT` | `--otlp-endpoint` | none: no export |
//! | trace file (finished spans as JSON lines) | `trace_file` | `YIBAO_TRACE_FILE` | `--trace-file` | none |
//! | shutdown bound | `shutdown_timeout_ms` | — | — | 5000 |
//! | outbox dispatcher | `[dispatcher]` table | — | — | see [`DispatcherSettings`] |
//! | simulated bank | `[bank]` table | — | — | see [`BankSettings`] |
//! | overload limits | `[limits]` table | — | — | see [`LimitSettings`] |
//!
//! **The platform listener** serves only the bureau-to-bureau services, apart from the bureau and
//! admin APIs, and requires mutual TLS: `tls_ca`, `tls_cert` and `tls_key` must all be set
//! (`yibao certs` makes a development set), unless `plaintext` is true, which opts the platform
//! out of TLS explicitly (and then any `tls_*` setting is ignored). The peer endpoint is `https://`
//! with TLS and `http://` without; the default follows `plaintext`.
//!
//! **The store** is SQLite in `data_dir` unless `database_url` names a PostgreSQL database
//! (`postgres://user:password@host:port/database`); several replicas of one bureau may share one
//! such database. The URL's password never shows in logs, errors or `Debug` (prefer the
//! environment or the settings file to the flag, which `ps` shows).
//!
//! **Several bureaus.** `bureau` names this bureau as the region directory's `bureau` keys do; it
//! hosts the regions listed under that name. A platform message goes to the bureau hosting its
//! receiving region: at the endpoint `peers` gives for that bureau's name, else at
//! `peer_endpoint` (so two bureaus need only `peer_endpoint`). Each endpoint follows the rules of
//! `peer_endpoint`.
//!
//! Relative paths are relative to the working directory. An empty environment variable counts as
//! unset. The role (transfer-out or transfer-in) is fixed by the binary, never configured: it
//! picks the defaults (name, ports, data directory) of the default pair. Every
//! value is validated after the layers are merged, and each error names the setting.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::directory::{BureauRole, toml_error};
pub use crate::limits::LimitSettings;
use crate::retry::{Backoff, BackoffError};
use crate::tls::TlsFiles;

/// The growth factor of the dispatcher's retry backoff. Not configurable: doubling is the
/// conventional choice and one less knob to get wrong.
pub const BACKOFF_MULTIPLIER: f64 = 2.0;

/// The largest value accepted for any of the millisecond timeouts and polls below (a minute).
pub const MAX_TIMEOUT_MS: u64 = 60_000;

/// The largest outbox batch the dispatcher may be configured to send at once.
pub const MAX_BATCH_LIMIT: u32 = 1_000;
/// The most batches the outbox dispatcher keeps in flight.
pub const MAX_BATCHES_IN_FLIGHT: u32 = 256;

/// How the service writes its logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines, for a terminal.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl LogFormat {
    /// Parses `text` or `json`, ignoring case.
    fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "text" => Some(Self::Text),
            "json" => Some(Self::Json),
            _ => None,
        }
    }
}

/// Command-line flags shared by both bureau binaries (flatten into the binary's parser). Each
/// overrides the environment and the settings file.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ServiceArgs {
    /// Service settings file (TOML). Environment: YIBAO_CONFIG.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Address to listen on; port 0 picks a free port. Environment: YIBAO_LISTEN.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Directory for the bureau's ledger. Environment: YIBAO_DATA_DIR.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Region directory file. Environment: YIBAO_DIRECTORY.
    #[arg(long, value_name = "PATH")]
    pub directory: Option<PathBuf>,
    /// PostgreSQL database for the ledger instead of SQLite in the data directory, e.g.
    /// postgres://yibao:secret@127.0.0.1:5432/bureau. Environment: YIBAO_DATABASE_URL.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// The other bureau's endpoint, e.g. http://127.0.0.1:50052; with several bureaus, the
    /// endpoint of every bureau `--peers` does not name. Environment: YIBAO_PEER.
    #[arg(long, value_name = "URL")]
    pub peer: Option<String>,
    /// This bureau's name in the region directory (default: the role's, `transfer-out` or
    /// `transfer-in`). Environment: YIBAO_BUREAU.
    #[arg(long, value_name = "NAME")]
    pub bureau: Option<String>,
    /// Other bureaus' platform endpoints by name, e.g. `north=https://127.0.0.1:50063`
    /// (repeat, or separate by commas). Environment: YIBAO_PEERS.
    #[arg(long, value_name = "NAME=URL", value_delimiter = ',')]
    pub peers: Vec<NamedPeer>,
    /// Serve the admin API (test clock, seeding, faults). Environment: YIBAO_ADMIN.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub admin: Option<bool>,
    /// Run on a test clock that the admin API can move forward. Environment: YIBAO_TEST_CLOCK.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub test_clock: Option<bool>,
    /// Directory of extra working-day calendar year files (*.toml). Environment:
    /// YIBAO_CALENDAR_DIR.
    #[arg(long, value_name = "DIR")]
    pub calendar_dir: Option<PathBuf>,
    /// Log format. Environment: YIBAO_LOG_FORMAT.
    #[arg(long, value_name = "FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// After binding, write the bound address (e.g. 127.0.0.1:41234) to this file. Environment:
    /// YIBAO_PORT_FILE.
    #[arg(long, value_name = "PATH")]
    pub port_file: Option<PathBuf>,
    /// Address of the platform listener (bureau-to-bureau services, mutual TLS); port 0 picks a
    /// free port. Environment: YIBAO_PLATFORM_LISTEN.
    #[arg(long, value_name = "ADDR")]
    pub platform_listen: Option<SocketAddr>,
    /// After binding, write the platform listener's address to this file. Environment:
    /// YIBAO_PLATFORM_PORT_FILE.
    #[arg(long, value_name = "PATH")]
    pub platform_port_file: Option<PathBuf>,
    /// The platform CA's certificate (PEM). Environment: YIBAO_TLS_CA.
    #[arg(long, value_name = "PATH")]
    pub tls_ca: Option<PathBuf>,
    /// This bureau's certificate (PEM), naming the regions it hosts. Environment: YIBAO_TLS_CERT.
    #[arg(long, value_name = "PATH")]
    pub tls_cert: Option<PathBuf>,
    /// This bureau's private key (PEM). Environment: YIBAO_TLS_KEY.
    #[arg(long, value_name = "PATH")]
    pub tls_key: Option<PathBuf>,
    /// A TOML file of fault rules to put in force at start (`[[rule]]` tables, the fields of
    /// admin.proto's FaultRule). Environment: YIBAO_FAULTS.
    #[arg(long, value_name = "PATH")]
    pub faults: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics on a listener of its own; port 0 picks a
    /// free port. Off unless set. Environment: YIBAO_METRICS_LISTEN.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// After binding, write the metrics listener's address to this file. Environment:
    /// YIBAO_METRICS_PORT_FILE.
    #[arg(long, value_name = "PATH")]
    pub metrics_port_file: Option<PathBuf>,
    /// Serve and call the platform without TLS (an explicit opt-out, for debugging on loopback).
    /// Environment: YIBAO_PLAINTEXT.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub plaintext: Option<bool>,
    /// Whether to send the peer batches: `auto` (try, and fall back to single messages for good
    /// once it answers UNIMPLEMENTED) or `never` (a peer that serves only the single-message
    /// RPCs). Environment: YIBAO_PEER_BATCHES.
    #[arg(long, value_name = "MODE", value_enum)]
    pub peer_batches: Option<PeerBatches>,
    /// Export traces over OTLP/gRPC to this collector, e.g. http://127.0.0.1:4317. Environment:
    /// YIBAO_OTLP_ENDPOINT.
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// Append finished spans to this file, one JSON object a line. Environment:
    /// YIBAO_TRACE_FILE.
    #[arg(long, value_name = "PATH")]
    pub trace_file: Option<PathBuf>,
}

/// One entry of `--peers`: a bureau's name and its platform endpoint, as written (both checked
/// with the rest of the settings).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedPeer {
    /// The bureau's name in the region directory.
    pub name: String,
    /// Its platform endpoint.
    pub endpoint: String,
}

impl std::str::FromStr for NamedPeer {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (name, endpoint) = text
            .split_once('=')
            .ok_or_else(|| format!("{text:?}: expected NAME=URL"))?;
        Ok(NamedPeer {
            name: name.trim().to_owned(),
            endpoint: endpoint.trim().to_owned(),
        })
    }
}

/// Whether a bureau sends its peer batches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PeerBatches {
    /// Try batches; fall back to single messages when the peer answers UNIMPLEMENTED.
    #[default]
    Auto,
    /// Single messages only.
    Never,
}

/// The outbox dispatcher's limits.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DispatcherSettings {
    /// The most outbox messages sent in one batch, one round trip (1–1,000; the platform's
    /// batch limit). Default 256.
    pub batch_limit: u32,
    /// Batches in flight at once (1–256). While they are out, due messages gather for the next
    /// ones, so batches grow with the load and stay single messages when it is light.
    /// Default 4.
    pub batches_in_flight: u32,
    /// The deadline of one delivery attempt, sent as `grpc-timeout` (1–60,000 ms). Default 2000.
    pub attempt_timeout_ms: u64,
    /// The ceiling of the first retry's delay (at least 1 ms). Default 50.
    pub backoff_initial_ms: u64,
    /// The cap on any retry delay (at least the initial delay, at most an hour). Default 10,000.
    pub backoff_max_ms: u64,
    /// How long an idle dispatcher waits before looking at the outbox again, in case it missed a
    /// wake-up (1–60,000 ms). Default 200.
    pub idle_poll_ms: u64,
}

/// The simulated bank gateway that receives payouts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BankSettings {
    /// Make every n-th call to the bank fail (as a transient outage), to exercise payout retries;
    /// 0 means never. Default 0.
    pub failure_every: u32,
}

/// A bureau service's settings, merged from every layer and validated.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceConfig {
    /// Which bureau this service is; set by the binary.
    pub role: BureauRole,
    /// Where to accept the bureau and admin APIs; port 0 picks a free port (see `port_file`).
    pub listen: SocketAddr,
    /// Where to accept the platform (bureau-to-bureau) services; port 0 picks a free port (see
    /// `platform_port_file`).
    pub platform_listen: SocketAddr,
    /// The platform's TLS files, all three or none.
    pub tls_ca: Option<PathBuf>,
    /// This bureau's certificate.
    pub tls_cert: Option<PathBuf>,
    /// This bureau's private key.
    pub tls_key: Option<PathBuf>,
    /// Whether the platform goes without TLS (explicit opt-out).
    pub plaintext: bool,
    /// Whether the peer gets batches.
    pub peer_batches: PeerBatches,
    /// Where to write the platform listener's bound address.
    pub platform_port_file: Option<PathBuf>,
    /// A file of fault rules to put in force at start.
    pub faults: Option<PathBuf>,
    /// Where to serve Prometheus metrics (`GET /metrics`); none: no metrics are recorded.
    pub metrics_listen: Option<SocketAddr>,
    /// Where to write the metrics listener's bound address.
    pub metrics_port_file: Option<PathBuf>,
    /// Where the bureau keeps its ledger (SQLite, when no `database_url` is set).
    pub data_dir: PathBuf,
    /// The PostgreSQL database holding the ledger instead, when set.
    pub database_url: Option<DatabaseUrl>,
    /// The region directory file both services read.
    pub directory: PathBuf,
    /// The other bureau's platform endpoint (`https://host:port`, or `http://` in plaintext), or
    /// `file:PATH` naming the file the peer writes that address to. With several bureaus, the
    /// endpoint of every bureau `peers` does not name.
    pub peer_endpoint: String,
    /// This bureau's name in the region directory (checked as a `BureauName`).
    pub bureau: String,
    /// Other bureaus' platform endpoints by name (each as `peer_endpoint` is written).
    pub peers: std::collections::BTreeMap<String, String>,
    /// Whether to serve the admin API; off unless asked for, since it can move the clock and seed.
    pub admin_enabled: bool,
    /// The bearer token admin calls must carry. Without one, the admin API answers loopback
    /// callers only; with one, it answers any caller that presents it.
    pub admin_token: Option<AdminToken>,
    /// Whether the clock is a test clock that the admin API can move forward.
    pub test_clock: bool,
    /// A directory of extra calendar year files, for years after the shipped 2026.
    pub calendar_dir: Option<PathBuf>,
    /// How logs are written.
    pub log_format: LogFormat,
    /// Where to write the bound address after binding, so a harness can use port 0.
    pub port_file: Option<PathBuf>,
    /// The longest graceful shutdown may take before connections are dropped (1–60,000 ms).
    pub shutdown_timeout_ms: u64,
    /// The outbox dispatcher's limits.
    pub dispatcher: DispatcherSettings,
    /// The simulated bank gateway.
    pub bank: BankSettings,
    /// The overload limits: calls in flight, streams, queues, message sizes.
    pub limits: LimitSettings,
    /// The OTLP/gRPC collector traces are exported to; none: not exported.
    pub otlp_endpoint: Option<String>,
    /// The file finished spans are appended to; none: no file.
    pub trace_file: Option<PathBuf>,
}

/// Why the settings could not be loaded. Each message names the setting (or file) at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The settings file could not be read.
    #[error("settings file {path}: {source}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The settings file is not TOML of the expected shape (the message names line and key).
    #[error("settings file {path}: {message}")]
    ParseFile {
        /// The file.
        path: PathBuf,
        /// The parser's description.
        message: String,
    },
    /// An environment variable holds a value that does not parse.
    #[error("environment variable {variable}={value:?}: {message}")]
    Environment {
        /// The variable.
        variable: &'static str,
        /// Its value.
        value: String,
        /// What was expected.
        message: String,
    },
    /// A merged value breaks a limit.
    #[error("setting `{setting}`: {message}")]
    Invalid {
        /// The setting, as its file key (`dispatcher.batch_limit`).
        setting: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// The settings file as written: every key optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLayer {
    listen: Option<SocketAddr>,
    platform_listen: Option<SocketAddr>,
    platform_port_file: Option<PathBuf>,
    tls_ca: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    plaintext: Option<bool>,
    peer_batches: Option<PeerBatches>,
    faults: Option<PathBuf>,
    metrics_listen: Option<SocketAddr>,
    metrics_port_file: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    database_url: Option<DatabaseUrl>,
    directory: Option<PathBuf>,
    peer_endpoint: Option<String>,
    bureau: Option<String>,
    peers: Option<std::collections::BTreeMap<String, String>>,
    admin_enabled: Option<bool>,
    admin_token: Option<AdminToken>,
    test_clock: Option<bool>,
    calendar_dir: Option<PathBuf>,
    log_format: Option<LogFormat>,
    port_file: Option<PathBuf>,
    shutdown_timeout_ms: Option<u64>,
    dispatcher: Option<DispatcherSettings>,
    bank: Option<BankSettings>,
    limits: Option<LimitSettings>,
    otlp_endpoint: Option<String>,
    trace_file: Option<PathBuf>,
}

impl Default for DispatcherSettings {
    fn default() -> Self {
        Self {
            batch_limit: 256,
            batches_in_flight: 4,
            attempt_timeout_ms: 2000,
            backoff_initial_ms: 50,
            backoff_max_ms: 10_000,
            idle_poll_ms: 200,
        }
    }
}

impl DispatcherSettings {
    /// The retry backoff these settings describe.
    ///
    /// # Errors
    /// If the backoff limits are out of bounds (never, after [`ServiceConfig::validate`]).
    pub fn backoff(&self) -> Result<Backoff, BackoffError> {
        Backoff::try_new(
            Duration::from_millis(self.backoff_initial_ms),
            Duration::from_millis(self.backoff_max_ms),
            BACKOFF_MULTIPLIER,
        )
    }

    /// The deadline of one delivery attempt.
    #[must_use]
    pub fn attempt_timeout(&self) -> Duration {
        Duration::from_millis(self.attempt_timeout_ms)
    }

    /// How long an idle dispatcher waits before looking again.
    #[must_use]
    pub fn idle_poll(&self) -> Duration {
        Duration::from_millis(self.idle_poll_ms)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=MAX_BATCH_LIMIT).contains(&self.batch_limit) {
            return Err(invalid(
                "dispatcher.batch_limit",
                format!("is {}; it must be 1-{MAX_BATCH_LIMIT}", self.batch_limit),
            ));
        }
        check_ms("dispatcher.attempt_timeout_ms", self.attempt_timeout_ms)?;
        if !(1..=MAX_BATCHES_IN_FLIGHT).contains(&self.batches_in_flight) {
            return Err(invalid(
                "dispatcher.batches_in_flight",
                format!(
                    "is {}; it must be 1-{MAX_BATCHES_IN_FLIGHT}",
                    self.batches_in_flight
                ),
            ));
        }
        check_ms("dispatcher.idle_poll_ms", self.idle_poll_ms)?;
        self.backoff().map(|_| ()).map_err(|e| {
            let setting = match e {
                BackoffError::InitialZero => "dispatcher.backoff_initial_ms",
                _ => "dispatcher.backoff_max_ms",
            };
            invalid(setting, e.to_string())
        })
    }
}

impl ServiceConfig {
    /// The defaults for `role`, before any file, environment variable or flag.
    #[must_use]
    pub fn defaults(role: BureauRole) -> Self {
        Self {
            role,
            listen: default_listen(role),
            platform_listen: default_platform_listen(role),
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            plaintext: false,
            peer_batches: PeerBatches::Auto,
            platform_port_file: None,
            faults: None,
            metrics_listen: None,
            metrics_port_file: None,
            data_dir: Path::new("data").join(role.as_str()),
            directory: PathBuf::from("deploy/regions.toml"),
            peer_endpoint: format!("https://{}", default_platform_listen(role.peer())),
            bureau: role.as_str().to_owned(),
            peers: std::collections::BTreeMap::new(),
            admin_enabled: false,
            admin_token: None,
            database_url: None,
            test_clock: false,
            calendar_dir: None,
            log_format: LogFormat::Text,
            port_file: None,
            shutdown_timeout_ms: 5000,
            dispatcher: DispatcherSettings::default(),
            bank: BankSettings::default(),
            limits: LimitSettings::default(),
            otlp_endpoint: None,
            trace_file: None,
        }
    }

    /// Loads the settings for `role`: defaults, then the settings file (`--config` or
    /// `YIBAO_CONFIG`), then the process environment, then `args`; then validates.
    ///
    /// # Errors
    /// If the file cannot be read or parsed, a variable does not parse, or a value is out of
    /// bounds; the error names the setting.
    pub fn load(role: BureauRole, args: &ServiceArgs) -> Result<Self, ConfigError> {
        Self::load_with_environment(role, args, |name| {
            std::env::var_os(name).map(|value| value.to_string_lossy().into_owned())
        })
    }

    /// As [`ServiceConfig::load`], reading environment variables through `environment` (so tests
    /// need not change the process environment).
    ///
    /// # Errors
    /// As [`ServiceConfig::load`].
    pub fn load_with_environment(
        role: BureauRole,
        args: &ServiceArgs,
        environment: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let environment = |name: &str| environment(name).filter(|value| !value.is_empty());
        let file_path = args
            .config
            .clone()
            .or_else(|| environment("YIBAO_CONFIG").map(PathBuf::from));
        let file = match file_path {
            Some(path) => Some(read_file_layer(&path)?),
            None => None,
        };
        Self::merged(role, file, args, environment)
    }

    /// The settings for `role` from the layers: defaults, the settings file's (already read),
    /// the environment (empty values already dropped), then `args`; then validated.
    fn merged(
        role: BureauRole,
        file: Option<FileLayer>,
        args: &ServiceArgs,
        environment: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut config = Self::defaults(role);
        if let Some(file) = file {
            config.apply_file(file);
        }
        config.apply_environment(&environment)?;
        config.apply_trace_environment(&environment);
        config.apply_bureau_environment(&environment)?;
        config.apply_args(args);
        if config.plaintext && config.peer_endpoint == Self::defaults(role).peer_endpoint {
            config.peer_endpoint = format!("http://{}", default_platform_listen(role.peer()));
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks every limit; the error names the first setting out of bounds.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_endpoint(&self.peer_endpoint)?;
        crate::directory::BureauName::parse(&self.bureau).map_err(|e| invalid("bureau", e))?;
        for (name, endpoint) in &self.peers {
            crate::directory::BureauName::parse(name).map_err(|e| invalid("peers", e))?;
            validate_endpoint(endpoint).map_err(|e| invalid("peers", format!("{name}: {e}")))?;
        }
        self.validate_platform()?;
        if let Some(AdminToken(token)) = &self.admin_token
            && (token.len() < MIN_ADMIN_TOKEN_LENGTH
                || !token.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(invalid(
                "admin_token",
                format!("must be at least {MIN_ADMIN_TOKEN_LENGTH} printable ASCII characters"),
            ));
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "must not be empty"));
        }
        if let Some(url) = &self.database_url
            && !(url.0.starts_with("postgres://") || url.0.starts_with("postgresql://"))
        {
            return Err(invalid(
                "database_url",
                format!("{url:?} must start with postgres:// or postgresql://"),
            ));
        }
        if self.directory.as_os_str().is_empty() {
            return Err(invalid("directory", "must not be empty"));
        }
        if self
            .calendar_dir
            .as_ref()
            .is_some_and(|dir| dir.as_os_str().is_empty())
        {
            return Err(invalid("calendar_dir", "must not be empty when set"));
        }
        if self
            .port_file
            .as_ref()
            .is_some_and(|file| file.as_os_str().is_empty())
        {
            return Err(invalid("port_file", "must not be empty when set"));
        }
        self.validate_traces()?;
        check_ms("shutdown_timeout_ms", self.shutdown_timeout_ms)?;
        self.limits
            .validate()
            .map_err(|e| invalid(e.setting, e.message))?;
        self.dispatcher.validate()
    }

    /// The platform's TLS files, unless the platform is plaintext.
    #[must_use]
    pub fn tls_files(&self) -> Option<TlsFiles> {
        if self.plaintext {
            return None;
        }
        Some(TlsFiles {
            ca: self.tls_ca.clone()?,
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
        })
    }

    /// TLS unless plaintext, with all three files; a peer scheme that matches; two listeners.
    fn validate_platform(&self) -> Result<(), ConfigError> {
        if !self.plaintext {
            for (setting, value) in [
                ("tls_ca", &self.tls_ca),
                ("tls_cert", &self.tls_cert),
                ("tls_key", &self.tls_key),
            ] {
                if value
                    .as_ref()
                    .is_none_or(|path| path.as_os_str().is_empty())
                {
                    return Err(invalid(
                        setting,
                        "the platform listener uses mutual TLS: set tls_ca, tls_cert and tls_key \
                         (`yibao certs --out DIR` makes a development set), or plaintext = true",
                    ));
                }
            }
        }
        let scheme = if self.plaintext {
            "http://"
        } else {
            "https://"
        };
        let endpoints = std::iter::once(("peer_endpoint", &self.peer_endpoint))
            .chain(self.peers.values().map(|endpoint| ("peers", endpoint)));
        for (setting, endpoints) in endpoints {
            // Several replicas of one bureau: comma-separated, each checked.
            let mut each = endpoints.split(',').map(str::trim);
            if let Some(bad) = each
                .find(|endpoint| !endpoint.starts_with("file:") && !endpoint.starts_with(scheme))
            {
                return Err(invalid(
                    setting,
                    format!(
                        "{bad:?} must start with {scheme} when plaintext is {}",
                        self.plaintext
                    ),
                ));
            }
        }
        if self.listen == self.platform_listen && self.listen.port() != 0 {
            return Err(invalid(
                "platform_listen",
                format!(
                    "{} is also `listen`; the platform listens apart",
                    self.listen
                ),
            ));
        }
        if self
            .platform_port_file
            .as_ref()
            .is_some_and(|file| file.as_os_str().is_empty())
        {
            return Err(invalid("platform_port_file", "must not be empty when set"));
        }
        self.validate_metrics()
    }

    /// A metrics listener apart from the other two; a port file that names a file.
    fn validate_metrics(&self) -> Result<(), ConfigError> {
        if let Some(metrics) = self.metrics_listen
            && metrics.port() != 0
            && (metrics == self.listen || metrics == self.platform_listen)
        {
            return Err(invalid(
                "metrics_listen",
                format!("{metrics} is also `listen` or `platform_listen`; metrics listen apart"),
            ));
        }
        if self
            .metrics_port_file
            .as_ref()
            .is_some_and(|file| file.as_os_str().is_empty())
        {
            return Err(invalid("metrics_port_file", "must not be empty when set"));
        }
        Ok(())
    }

    /// An OTLP endpoint is an `http://` or `https://` URL; a trace file is a path.
    fn validate_traces(&self) -> Result<(), ConfigError> {
        if let Some(endpoint) = &self.otlp_endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(invalid(
                "otlp_endpoint",
                format!(
                    "{endpoint:?} must be an http:// or https:// URL, e.g. http://127.0.0.1:4317"
                ),
            ));
        }
        if self
            .trace_file
            .as_ref()
            .is_some_and(|file| file.as_os_str().is_empty())
        {
            return Err(invalid("trace_file", "must not be empty when set"));
        }
        Ok(())
    }

    /// The longest graceful shutdown may take.
    #[must_use]
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_millis(self.shutdown_timeout_ms)
    }

    fn apply_file(&mut self, file: FileLayer) {
        let FileLayer {
            listen,
            platform_listen,
            platform_port_file,
            tls_ca,
            tls_cert,
            tls_key,
            plaintext,
            peer_batches,
            faults,
            metrics_listen,
            metrics_port_file,
            data_dir,
            database_url,
            directory,
            peer_endpoint,
            bureau,
            peers,
            admin_enabled,
            admin_token,
            test_clock,
            calendar_dir,
            log_format,
            port_file,
            shutdown_timeout_ms,
            dispatcher,
            bank,
            limits,
            otlp_endpoint,
            trace_file,
        } = file;
        self.otlp_endpoint = otlp_endpoint.or(self.otlp_endpoint.take());
        self.trace_file = trace_file.or(self.trace_file.take());
        self.admin_token = admin_token.or(self.admin_token.take());
        self.database_url = database_url.or(self.database_url.take());
        override_with(&mut self.listen, listen);
        override_with(&mut self.platform_listen, platform_listen);
        self.platform_port_file = platform_port_file.or(self.platform_port_file.take());
        self.tls_ca = tls_ca.or(self.tls_ca.take());
        self.tls_cert = tls_cert.or(self.tls_cert.take());
        self.tls_key = tls_key.or(self.tls_key.take());
        override_with(&mut self.plaintext, plaintext);
        override_with(&mut self.peer_batches, peer_batches);
        self.faults = faults.or(self.faults.take());
        self.metrics_listen = metrics_listen.or(self.metrics_listen.take());
        self.metrics_port_file = metrics_port_file.or(self.metrics_port_file.take());
        override_with(&mut self.data_dir, data_dir);
        override_with(&mut self.directory, directory);
        override_with(&mut self.peer_endpoint, peer_endpoint);
        override_with(&mut self.bureau, bureau);
        override_with(&mut self.peers, peers);
        override_with(&mut self.admin_enabled, admin_enabled);
        override_with(&mut self.test_clock, test_clock);
        self.calendar_dir = calendar_dir.or(self.calendar_dir.take());
        override_with(&mut self.log_format, log_format);
        self.port_file = port_file.or(self.port_file.take());
        override_with(&mut self.shutdown_timeout_ms, shutdown_timeout_ms);
        override_with(&mut self.dispatcher, dispatcher);
        override_with(&mut self.bank, bank);
        override_with(&mut self.limits, limits);
    }

    // Long because it is a flat list, one variable after another, each read and parsed where
    // it is named; splitting it would only hide some variables from a reader looking for one.
    fn apply_environment(
        &mut self,
        environment: &impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        override_with(&mut self.listen, address_from(environment, "YIBAO_LISTEN")?);
        override_with(
            &mut self.platform_listen,
            address_from(environment, "YIBAO_PLATFORM_LISTEN")?,
        );
        if let Some(address) = address_from(environment, "YIBAO_METRICS_LISTEN")? {
            self.metrics_listen = Some(address);
        }
        for (variable, slot) in [
            ("YIBAO_METRICS_PORT_FILE", &mut self.metrics_port_file),
            ("YIBAO_PLATFORM_PORT_FILE", &mut self.platform_port_file),
            ("YIBAO_TLS_CA", &mut self.tls_ca),
            ("YIBAO_TLS_CERT", &mut self.tls_cert),
            ("YIBAO_TLS_KEY", &mut self.tls_key),
            ("YIBAO_FAULTS", &mut self.faults),
        ] {
            if let Some(value) = environment(variable) {
                *slot = Some(PathBuf::from(value));
            }
        }
        if let Some(value) = environment("YIBAO_PLAINTEXT") {
            self.plaintext = parse_bool("YIBAO_PLAINTEXT", value)?;
        }
        if let Some(value) = environment("YIBAO_PEER_BATCHES") {
            self.peer_batches = match value.to_ascii_lowercase().as_str() {
                "auto" => PeerBatches::Auto,
                "never" => PeerBatches::Never,
                _ => {
                    let expected = "expected auto or never";
                    return Err(environment_error("YIBAO_PEER_BATCHES", value, expected));
                }
            };
        }
        if let Some(value) = environment("YIBAO_DATA_DIR") {
            self.data_dir = PathBuf::from(value);
        }
        let database_url = environment("YIBAO_DATABASE_URL").map(DatabaseUrl);
        self.database_url = database_url.or(self.database_url.take());
        if let Some(value) = environment("YIBAO_DIRECTORY") {
            self.directory = PathBuf::from(value);
        }
        if let Some(value) = environment("YIBAO_PEER") {
            self.peer_endpoint = value;
        }
        if let Some(value) = environment("YIBAO_ADMIN") {
            self.admin_enabled = parse_bool("YIBAO_ADMIN", value)?;
        }
        if let Some(value) = environment("YIBAO_ADMIN_TOKEN") {
            self.admin_token = Some(AdminToken(value));
        }
        if let Some(value) = environment("YIBAO_TEST_CLOCK") {
            self.test_clock = parse_bool("YIBAO_TEST_CLOCK", value)?;
        }
        if let Some(value) = environment("YIBAO_CALENDAR_DIR") {
            self.calendar_dir = Some(PathBuf::from(value));
        }
        if let Some(value) = environment("YIBAO_LOG_FORMAT") {
            self.log_format = LogFormat::parse(&value).ok_or_else(|| {
                environment_error("YIBAO_LOG_FORMAT", value, "expected text or json")
            })?;
        }
        if let Some(value) = environment("YIBAO_PORT_FILE") {
            self.port_file = Some(PathBuf::from(value));
        }
        Ok(())
    }

    /// Where traces go, from `YIBAO_OTLP_ENDPOINT` and `YIBAO_TRACE_FILE`.
    fn apply_trace_environment(&mut self, environment: &impl Fn(&str) -> Option<String>) {
        self.otlp_endpoint = environment("YIBAO_OTLP_ENDPOINT").or(self.otlp_endpoint.take());
        if let Some(file) = environment("YIBAO_TRACE_FILE") {
            self.trace_file = Some(PathBuf::from(file));
        }
    }

    /// `YIBAO_BUREAU` and `YIBAO_PEERS`: which bureau this is, and where the others are.
    fn apply_bureau_environment(
        &mut self,
        environment: &impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        if let Some(value) = environment("YIBAO_BUREAU") {
            self.bureau = value;
        }
        if let Some(value) = environment("YIBAO_PEERS") {
            let peers: Result<Vec<NamedPeer>, String> = value.split(',').map(str::parse).collect();
            let peers = peers.map_err(|e| environment_error("YIBAO_PEERS", value.clone(), &e))?;
            self.peers = named_peers(&peers);
        }
        Ok(())
    }

    fn apply_args(&mut self, args: &ServiceArgs) {
        override_with(&mut self.listen, args.listen);
        override_with(&mut self.platform_listen, args.platform_listen);
        if let Some(address) = args.metrics_listen {
            self.metrics_listen = Some(address);
        }
        for (slot, value) in [
            (&mut self.metrics_port_file, &args.metrics_port_file),
            (&mut self.platform_port_file, &args.platform_port_file),
            (&mut self.tls_ca, &args.tls_ca),
            (&mut self.tls_cert, &args.tls_cert),
            (&mut self.tls_key, &args.tls_key),
            (&mut self.faults, &args.faults),
            (&mut self.trace_file, &args.trace_file),
        ] {
            if let Some(value) = value {
                *slot = Some(value.clone());
            }
        }
        override_with(&mut self.plaintext, args.plaintext);
        override_with(&mut self.peer_batches, args.peer_batches);
        override_with(&mut self.data_dir, args.data_dir.clone());
        override_with(&mut self.directory, args.directory.clone());
        if let Some(url) = &args.database_url {
            self.database_url = Some(DatabaseUrl(url.clone()));
        }
        override_with(&mut self.peer_endpoint, args.peer.clone());
        if let Some(endpoint) = &args.otlp_endpoint {
            self.otlp_endpoint = Some(endpoint.clone());
        }
        override_with(&mut self.bureau, args.bureau.clone());
        if !args.peers.is_empty() {
            self.peers = named_peers(&args.peers);
        }
        override_with(&mut self.admin_enabled, args.admin);
        override_with(&mut self.test_clock, args.test_clock);
        if let Some(dir) = &args.calendar_dir {
            self.calendar_dir = Some(dir.clone());
        }
        override_with(&mut self.log_format, args.log_format);
        if let Some(file) = &args.port_file {
            self.port_file = Some(file.clone());
        }
    }
}

/// The admin API's bearer token; its `Debug` output hides it, so a logged configuration does not
/// leak it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct AdminToken(String);

impl AdminToken {
    /// The token itself, to compare with what a caller presents.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(****)")
    }
}

/// A PostgreSQL database URL; its `Debug` output hides the password (and the user), so a
/// logged configuration does not leak them.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// A URL as given.
    pub fn new(url: impl Into<String>) -> Self {
        DatabaseUrl(url.into())
    }

    /// The URL itself, to connect with.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Everything between the scheme and the host (`user:password@`) is hidden; so is any
        // query (it may carry `password=`).
        let url = self.0.split('?').next().unwrap_or_default();
        let shown = match (url.find("://"), url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                format!("{}://***@{}", &url[..scheme], &url[at + 1..])
            }
            _ => url.to_owned(),
        };
        write!(f, "DatabaseUrl({shown})")
    }
}

/// The shortest admin token accepted.
pub const MIN_ADMIN_TOKEN_LENGTH: usize = 16;

/// The default listen address of each role: 50051 for transfer-out, 50052 for transfer-in.
#[must_use]
pub fn default_listen(role: BureauRole) -> SocketAddr {
    let port = match role {
        BureauRole::TransferOut => 50051,
        BureauRole::TransferIn => 50052,
    };
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
}

/// The default platform listen address of each role: 50061 for transfer-out, 50062 for
/// transfer-in.
#[must_use]
pub fn default_platform_listen(role: BureauRole) -> SocketAddr {
    let port = match role {
        BureauRole::TransferOut => 50061,
        BureauRole::TransferIn => 50062,
    };
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
}

fn override_with<T>(slot: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *slot = value;
    }
}

/// The `host:port` in the environment variable `variable`, if set.
fn address_from(
    environment: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
) -> Result<Option<SocketAddr>, ConfigError> {
    environment(variable)
        .map(|value| {
            value
                .parse()
                .map_err(|_| environment_error(variable, value, "expected host:port"))
        })
        .transpose()
}

fn read_file_layer(path: &Path) -> Result<FileLayer, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    parse_file_layer(path, &text)
}

/// The settings file's `text` (read from `path`, which errors name).
fn parse_file_layer(path: &Path, text: &str) -> Result<FileLayer, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::ParseFile {
        path: path.to_owned(),
        message: settings_parse_error(&e, text),
    })
}

/// A settings file's parse error by line and column, never quoting the file: the line at fault
/// may hold the admin token, and the error is logged.
fn settings_parse_error(error: &toml::de::Error, text: &str) -> String {
    let Some(span) = error.span() else {
        return toml_error(error);
    };
    let before = text.get(..span.start).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!(
        "TOML parse error at line {line}, column {column}: {}",
        error.message().trim()
    )
}

/// `--peers` or `YIBAO_PEERS` as the `peers` table (a name given twice: the last wins).
fn named_peers(peers: &[NamedPeer]) -> std::collections::BTreeMap<String, String> {
    peers
        .iter()
        .map(|peer| (peer.name.clone(), peer.endpoint.clone()))
        .collect()
}

fn invalid(setting: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        message: message.into(),
    }
}

fn environment_error(variable: &'static str, value: String, message: &str) -> ConfigError {
    ConfigError::Environment {
        variable,
        value,
        message: message.to_owned(),
    }
}

fn parse_bool(variable: &'static str, value: String) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(environment_error(
            variable,
            value,
            "expected true or false (also 1/0, yes/no, on/off)",
        )),
    }
}

fn check_ms(setting: &'static str, value: u64) -> Result<(), ConfigError> {
    if (1..=MAX_TIMEOUT_MS).contains(&value) {
        Ok(())
    } else {
        Err(invalid(
            setting,
            format!("is {value}; it must be 1-{MAX_TIMEOUT_MS} ms"),
        ))
    }
}

/// A peer endpoint must be an absolute `http` or `https` URI with a host and port, and no path,
/// or `file:PATH` naming the file the peer writes its address to (read lazily by the service).
fn validate_endpoint(endpoints: &str) -> Result<(), ConfigError> {
    // Several replicas of the peer: each endpoint on its own.
    endpoints
        .split(',')
        .map(str::trim)
        .try_for_each(validate_one_endpoint)
}

/// One endpoint of `peer_endpoint`.
fn validate_one_endpoint(endpoint: &str) -> Result<(), ConfigError> {
    if let Some(path) = endpoint.strip_prefix("file:") {
        return if path.is_empty() {
            Err(invalid("peer_endpoint", "file: needs a path".to_owned()))
        } else {
            Ok(())
        };
    }
    let uri: tonic::transport::Uri = endpoint
        .parse()
        .map_err(|e| invalid("peer_endpoint", format!("{endpoint:?} is not a URI: {e}")))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(invalid(
            "peer_endpoint",
            format!("{endpoint:?} must start with http:// or https://"),
        ));
    }
    let has_port = uri.authority().is_some_and(|a| a.port_u16().is_some());
    if !has_port {
        return Err(invalid(
            "peer_endpoint",
            format!("{endpoint:?} must name a host and port"),
        ));
    }
    if !matches!(uri.path(), "" | "/") {
        return Err(invalid(
            "peer_endpoint",
            format!("{endpoint:?} must not have a path"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use clap::Parser;

    use super::*;

    /// A stand-in for a binary's parser, flattening the shared flags.
    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        service: ServiceArgs,
    }

    fn args(flags: &[&str]) -> ServiceArgs {
        let argv = std::iter::once("bureau").chain(flags.iter().copied());
        Cli::try_parse_from(argv).expect("flags parse").service
    }

    fn load(
        role: BureauRole,
        flags: &[&str],
        env: &[(&str, &str)],
    ) -> Result<ServiceConfig, ConfigError> {
        let mut env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        // These tests are about other settings: the platform is plaintext unless a test says.
        if !env
            .keys()
            .any(|k| k.starts_with("YIBAO_TLS") || k == "YIBAO_PLAINTEXT")
        {
            env.insert("YIBAO_PLAINTEXT".to_owned(), "true".to_owned());
        }
        ServiceConfig::load_with_environment(role, &args(flags), |name| env.get(name).cloned())
    }

    #[test]
    fn a_settings_file_that_does_not_parse_is_named_by_line_without_quoting_it() {
        let secret = "0123456789abcdef0123";
        let text = format!("listen = \"127.0.0.1:1\"\nadmin_token = \"{secret}\" trailing\n");
        let error = parse_file_layer(Path::new("service.toml"), &text).expect_err("bad syntax");
        let message = error.to_string();
        assert!(message.contains("line 2"), "{message}");
        assert!(
            !message.contains(secret),
            "the token is never quoted: {message}"
        );
    }

    #[test]
    fn a_database_url_comes_from_the_environment_or_the_flag_and_never_shows_its_password() {
        let sqlite = load(BureauRole::TransferOut, &[], &[]).expect("defaults");
        assert_eq!(
            sqlite.database_url, None,
            "unset: SQLite in the data directory"
        );
        let url = "postgres://yibao:s3cret-pw@127.0.0.1:5432/out";
        let from_env = load(BureauRole::TransferOut, &[], &[("YIBAO_DATABASE_URL", url)])
            .expect("environment");
        assert_eq!(from_env.database_url, Some(DatabaseUrl::new(url)));
        let flag = "postgres://yibao@127.0.0.1:5433/in";
        let from_flag = load(
            BureauRole::TransferIn,
            &["--database-url", flag],
            &[("YIBAO_DATABASE_URL", url)],
        )
        .expect("flag");
        assert_eq!(from_flag.database_url, Some(DatabaseUrl::new(flag)));
        let shown = format!("{from_env:?}");
        assert!(!shown.contains("s3cret-pw"), "{shown}");
        assert!(shown.contains("127.0.0.1:5432/out"), "{shown}");
        let refused = load(
            BureauRole::TransferOut,
            &["--database-url", "mysql://root:s3cret-pw@db/x"],
            &[],
        )
        .expect_err("not PostgreSQL");
        let message = refused.to_string();
        assert!(message.contains("database_url"), "{message}");
        assert!(!message.contains("s3cret-pw"), "{message}");
    }

    #[test]
    fn traces_are_exported_only_where_configured() {
        let config = load(BureauRole::TransferIn, &[], &[]).expect("defaults");
        assert_eq!((config.otlp_endpoint, config.trace_file), (None, None));
        let env = [
            ("YIBAO_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
            ("YIBAO_TRACE_FILE", "env.jsonl"),
        ];
        let flags = ["--trace-file", "flag.jsonl"];
        let config = load(BureauRole::TransferOut, &flags, &env).expect("configured");
        assert_eq!(
            config.otlp_endpoint.as_deref(),
            Some("http://127.0.0.1:4317")
        );
        assert_eq!(config.trace_file, Some(PathBuf::from("flag.jsonl")));
        let flags = ["--otlp-endpoint", "127.0.0.1:4317"];
        let error = load(BureauRole::TransferOut, &flags, &[]);
        assert_eq!(setting_of(error), "otlp_endpoint");
        let layer = parse_file_layer(Path::new("s.toml"), "trace_file = \"t.jsonl\"\n")
            .expect("a file key");
        assert_eq!(layer.trace_file, Some(PathBuf::from("t.jsonl")));
    }

    #[test]
    fn the_peer_may_be_sent_single_messages_only() {
        let config = load(BureauRole::TransferOut, &[], &[]).expect("defaults");
        assert_eq!(config.peer_batches, PeerBatches::Auto);
        let never = load(BureauRole::TransferOut, &["--peer-batches", "never"], &[]).expect("flag");
        assert_eq!(never.peer_batches, PeerBatches::Never);
        let env = load(
            BureauRole::TransferOut,
            &[],
            &[("YIBAO_PEER_BATCHES", "NEVER")],
        );
        assert_eq!(env.expect("environment").peer_batches, PeerBatches::Never);
        let bad = load(
            BureauRole::TransferOut,
            &[],
            &[("YIBAO_PEER_BATCHES", "sometimes")],
        );
        assert!(matches!(bad, Err(ConfigError::Environment { .. })));
    }

    #[test]
    fn the_platform_requires_all_three_tls_files_unless_plaintext() {
        let error = load(BureauRole::TransferOut, &[], &[("YIBAO_TLS_CA", "ca.pem")]);
        assert_eq!(setting_of(error), "tls_cert");
        let flags = [
            "--tls-ca",
            "ca.pem",
            "--tls-cert",
            "out.pem",
            "--tls-key",
            "out.key",
        ];
        let config = load(
            BureauRole::TransferOut,
            &flags,
            &[("YIBAO_PLAINTEXT", "false")],
        )
        .expect("tls");
        assert_eq!(config.peer_endpoint, "https://127.0.0.1:50062");
        assert_eq!(config.platform_listen.to_string(), "127.0.0.1:50061");
        let files = config.tls_files().expect("files");
        assert_eq!(files.key, PathBuf::from("out.key"));
        // Plaintext is an explicit opt-out: the files are then ignored, the peer is http.
        let plain = load(BureauRole::TransferIn, &["--plaintext"], &[]).expect("plaintext");
        assert!(plain.tls_files().is_none());
        assert_eq!(plain.peer_endpoint, "http://127.0.0.1:50061");
        assert_eq!(plain.platform_listen.to_string(), "127.0.0.1:50062");
    }

    #[test]
    fn the_peer_scheme_must_match_the_platform_security() {
        let flags = [
            "--tls-ca",
            "ca",
            "--tls-cert",
            "c",
            "--tls-key",
            "k",
            "--peer",
            "http://h:1",
        ];
        let error = load(BureauRole::TransferOut, &flags, &[("YIBAO_PLAINTEXT", "0")]);
        assert_eq!(setting_of(error), "peer_endpoint");
        let error = load(BureauRole::TransferOut, &["--peer", "https://h:1"], &[]);
        assert_eq!(setting_of(error), "peer_endpoint");
        let same = [
            "--listen",
            "127.0.0.1:7000",
            "--platform-listen",
            "127.0.0.1:7000",
        ];
        assert_eq!(
            setting_of(load(BureauRole::TransferOut, &same, &[])),
            "platform_listen"
        );
    }

    fn setting_of(result: Result<ServiceConfig, ConfigError>) -> &'static str {
        match result {
            Err(ConfigError::Invalid { setting, .. }) => setting,
            other => panic!("expected an invalid setting, got {other:?}"),
        }
    }

    #[test]
    fn defaults_pair_the_two_roles_on_neighbouring_ports() {
        let out = load(BureauRole::TransferOut, &[], &[]).expect("defaults are valid");
        let into = load(BureauRole::TransferIn, &[], &[]).expect("defaults are valid");
        assert_eq!(out.listen.to_string(), "127.0.0.1:50051");
        assert_eq!(into.listen.to_string(), "127.0.0.1:50052");
        // The peer is the other role's platform listener.
        assert_eq!(out.peer_endpoint, "http://127.0.0.1:50062");
        assert_eq!(into.peer_endpoint, "http://127.0.0.1:50061");
        assert_eq!(out.data_dir, PathBuf::from("data/transfer-out"));
        assert_eq!(out.directory, PathBuf::from("deploy/regions.toml"));
        assert!(!out.admin_enabled && !out.test_clock);
        assert_eq!(out.shutdown_timeout(), Duration::from_secs(5));
        assert_eq!(out.dispatcher, DispatcherSettings::default());
        assert_eq!(out.bank.failure_every, 0);
        assert_eq!(out.log_format, LogFormat::Text);
    }

    #[test]
    fn each_layer_overrides_the_one_below() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("service.toml");
        std::fs::write(
            &file,
            r#"
listen = "127.0.0.1:6000"
data_dir = "/var/file"
directory = "/etc/file-regions.toml"
admin_enabled = true
shutdown_timeout_ms = 1500
[dispatcher]
batch_limit = 64
[bank]
failure_every = 7
[limits]
requests_in_flight = 64
"#,
        )
        .expect("write");
        let path = file.to_string_lossy().into_owned();
        let config = load(
            BureauRole::TransferIn,
            &["--config", &path, "--listen", "127.0.0.1:0"],
            &[
                ("YIBAO_LISTEN", "127.0.0.1:7000"),
                ("YIBAO_DATA_DIR", "/var/env"),
                ("YIBAO_ADMIN", "false"),
                ("YIBAO_LOG_FORMAT", "JSON"),
            ],
        )
        .expect("valid layers");
        // Flag beats environment beats file.
        assert_eq!(config.listen.to_string(), "127.0.0.1:0");
        // Environment beats file.
        assert_eq!(config.data_dir, PathBuf::from("/var/env"));
        assert!(!config.admin_enabled);
        assert_eq!(config.log_format, LogFormat::Json);
        // File beats default; omitted keys keep their defaults.
        assert_eq!(config.directory, PathBuf::from("/etc/file-regions.toml"));
        assert_eq!(config.shutdown_timeout_ms, 1500);
        assert_eq!(config.dispatcher.batch_limit, 64);
        assert_eq!(config.dispatcher.attempt_timeout_ms, 2000);
        assert_eq!(config.bank.failure_every, 7);
        assert_eq!(config.limits.requests_in_flight, 64);
        assert_eq!(
            config.limits.store_queue,
            LimitSettings::default().store_queue
        );
        assert_eq!(config.peer_endpoint, "http://127.0.0.1:50061");
    }

    #[test]
    fn the_settings_file_may_be_named_by_the_environment() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("service.toml");
        std::fs::write(&file, "test_clock = true\n").expect("write");
        let path = file.to_string_lossy().into_owned();
        let config = load(BureauRole::TransferOut, &[], &[("YIBAO_CONFIG", &path)]).expect("valid");
        assert!(config.test_clock);
    }

    #[test]
    fn boolean_flags_may_be_given_bare_or_with_a_value() {
        let on = load(BureauRole::TransferOut, &["--admin", "--test-clock"], &[]).expect("valid");
        assert!(on.admin_enabled && on.test_clock);
        let off = load(
            BureauRole::TransferOut,
            &["--admin=false"],
            &[("YIBAO_ADMIN", "1")],
        )
        .expect("valid");
        assert!(!off.admin_enabled);
    }

    #[test]
    fn optional_paths_come_from_any_layer() {
        let config = load(
            BureauRole::TransferOut,
            &["--port-file", "/tmp/port"],
            &[
                ("YIBAO_CALENDAR_DIR", "/etc/yibao/calendar"),
                ("YIBAO_PEER", "http://peer:443"),
            ],
        )
        .expect("valid");
        assert_eq!(config.port_file, Some(PathBuf::from("/tmp/port")));
        assert_eq!(
            config.calendar_dir,
            Some(PathBuf::from("/etc/yibao/calendar"))
        );
        assert_eq!(config.peer_endpoint, "http://peer:443");
    }

    #[test]
    fn metrics_are_off_unless_an_address_is_given_by_any_layer() {
        let off = load(BureauRole::TransferOut, &[], &[]).expect("valid");
        assert_eq!(off.metrics_listen, None);
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("service.toml");
        std::fs::write(&file, "metrics_listen = \"127.0.0.1:9000\"\n").expect("write");
        let path = file.to_string_lossy().into_owned();
        let from_file = load(BureauRole::TransferOut, &["--config", &path], &[]).expect("valid");
        assert_eq!(from_file.metrics_listen, "127.0.0.1:9000".parse().ok());
        let from_environment = load(
            BureauRole::TransferOut,
            &["--config", &path],
            &[
                ("YIBAO_METRICS_LISTEN", "127.0.0.1:9100"),
                ("YIBAO_METRICS_PORT_FILE", "/tmp/metrics.port"),
            ],
        )
        .expect("valid");
        assert_eq!(
            from_environment.metrics_listen,
            "127.0.0.1:9100".parse().ok()
        );
        assert_eq!(
            from_environment.metrics_port_file,
            Some(PathBuf::from("/tmp/metrics.port"))
        );
        let from_flag = load(
            BureauRole::TransferIn,
            &[
                "--metrics-listen",
                "127.0.0.1:0",
                "--metrics-port-file",
                "/tmp/m",
            ],
            &[("YIBAO_METRICS_LISTEN", "127.0.0.1:9100")],
        )
        .expect("valid");
        assert_eq!(from_flag.metrics_listen, "127.0.0.1:0".parse().ok());
        assert_eq!(from_flag.metrics_port_file, Some(PathBuf::from("/tmp/m")));
        let clash = load(
            BureauRole::TransferOut,
            &["--metrics-listen", "127.0.0.1:50051"],
            &[],
        );
        assert_eq!(setting_of(clash), "metrics_listen");
        let malformed = load(
            BureauRole::TransferOut,
            &[],
            &[("YIBAO_METRICS_LISTEN", "9464")],
        );
        assert!(
            matches!(
                malformed,
                Err(ConfigError::Environment {
                    variable: "YIBAO_METRICS_LISTEN",
                    ..
                })
            ),
            "{malformed:?}"
        );
    }

    #[test]
    fn an_empty_environment_variable_counts_as_unset() {
        let config = load(BureauRole::TransferOut, &[], &[("YIBAO_LISTEN", "")]).expect("valid");
        assert_eq!(config.listen, default_listen(BureauRole::TransferOut));
    }

    #[test]
    fn a_malformed_environment_variable_is_named() {
        let err = load(
            BureauRole::TransferOut,
            &[],
            &[("YIBAO_TEST_CLOCK", "maybe")],
        )
        .expect_err("not a boolean");
        assert!(matches!(
            err,
            ConfigError::Environment {
                variable: "YIBAO_TEST_CLOCK",
                ..
            }
        ));
        let err = load(
            BureauRole::TransferOut,
            &[],
            &[("YIBAO_LISTEN", "localhost")],
        )
        .expect_err("not an address");
        assert!(err.to_string().contains("YIBAO_LISTEN"));
    }

    #[test]
    fn an_unknown_key_in_the_file_is_refused_naming_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("service.toml");
        std::fs::write(&file, "[dispatcher]\nbatch_limt = 5\n").expect("write");
        let path = file.to_string_lossy().into_owned();
        let err = load(BureauRole::TransferOut, &["--config", &path], &[]).expect_err("typo");
        assert!(matches!(err, ConfigError::ParseFile { .. }));
        assert!(err.to_string().contains("batch_limt"));
        let missing = load(
            BureauRole::TransferOut,
            &["--config", "/nonexistent.toml"],
            &[],
        );
        assert!(matches!(missing, Err(ConfigError::ReadFile { .. })));
    }

    #[test]
    fn out_of_bounds_values_are_refused_naming_the_setting() {
        let with = |toml: &str| {
            let dir = tempfile::tempdir().expect("temp dir");
            let file = dir.path().join("service.toml");
            std::fs::write(&file, toml).expect("write");
            let path = file.to_string_lossy().into_owned();
            setting_of(load(BureauRole::TransferOut, &["--config", &path], &[]))
        };
        assert_eq!(
            with("[dispatcher]\nbatch_limit = 0\n"),
            "dispatcher.batch_limit"
        );
        assert_eq!(
            with("[dispatcher]\nbatch_limit = 1001\n"),
            "dispatcher.batch_limit"
        );
        assert_eq!(
            with("[dispatcher]\nbatches_in_flight = 0\n"),
            "dispatcher.batches_in_flight"
        );
        assert_eq!(
            with("[dispatcher]\nattempt_timeout_ms = 0\n"),
            "dispatcher.attempt_timeout_ms"
        );
        assert_eq!(
            with("[dispatcher]\nidle_poll_ms = 60001\n"),
            "dispatcher.idle_poll_ms"
        );
        assert_eq!(
            with("[dispatcher]\nbackoff_initial_ms = 0\n"),
            "dispatcher.backoff_initial_ms"
        );
        assert_eq!(
            with("[dispatcher]\nbackoff_initial_ms = 500\nbackoff_max_ms = 100\n"),
            "dispatcher.backoff_max_ms"
        );
        assert_eq!(with("shutdown_timeout_ms = 0\n"), "shutdown_timeout_ms");
        assert_eq!(with("[limits]\nstore_queue = 0\n"), "limits.store_queue");
        assert_eq!(with("data_dir = \"\"\n"), "data_dir");
    }

    #[test]
    fn a_peer_endpoint_must_be_an_http_uri_with_a_port() {
        for bad in [
            "127.0.0.1:50052",
            "ftp://host:21",
            "http://host",
            "http://host:1/path",
            "::",
        ] {
            let result = load(BureauRole::TransferOut, &["--peer", bad], &[]);
            assert_eq!(setting_of(result), "peer_endpoint", "{bad}");
        }
    }

    #[test]
    fn the_dispatcher_settings_describe_a_valid_backoff() {
        let settings = DispatcherSettings::default();
        let backoff = settings.backoff().expect("defaults are valid");
        assert_eq!(backoff.initial(), Duration::from_millis(50));
        assert_eq!(backoff.max(), Duration::from_secs(10));
        assert_eq!(settings.attempt_timeout(), Duration::from_secs(2));
        assert_eq!(settings.idle_poll(), Duration::from_millis(200));
    }

    #[test]
    fn an_admin_token_comes_from_the_file_or_the_environment_and_must_be_long() {
        let none = load(BureauRole::TransferIn, &[], &[]).expect("valid");
        assert_eq!(none.admin_token, None, "loopback callers only by default");
        let token = "0123456789abcdef0123";
        let from_env =
            load(BureauRole::TransferIn, &[], &[("YIBAO_ADMIN_TOKEN", token)]).expect("valid");
        assert_eq!(
            from_env.admin_token.as_ref().map(AdminToken::expose),
            Some(token)
        );
        assert!(
            !format!("{from_env:?}").contains(token),
            "never in a debug line"
        );
        let short = load(
            BureauRole::TransferIn,
            &[],
            &[("YIBAO_ADMIN_TOKEN", "short")],
        );
        assert!(short.is_err_and(|error| error.to_string().contains("admin_token")));
    }

    #[test]
    fn a_bureau_is_named_and_finds_its_peers_by_name() {
        let pair = load(BureauRole::TransferIn, &[], &[]).expect("defaults");
        assert_eq!(pair.bureau, "transfer-in");
        assert!(pair.peers.is_empty(), "two bureaus need only peer_endpoint");
        let named = load(
            BureauRole::TransferOut,
            &[
                "--bureau",
                "north",
                "--peers",
                "south=http://127.0.0.1:1,east=http://127.0.0.1:2",
                "--peers",
                "west=file:/tmp/west.port",
            ],
            &[],
        )
        .expect("valid");
        assert_eq!(named.bureau, "north");
        assert_eq!(
            named.peers.keys().map(String::as_str).collect::<Vec<_>>(),
            ["east", "south", "west"]
        );
        let env = load(
            BureauRole::TransferOut,
            &[],
            &[
                ("YIBAO_BUREAU", "east"),
                ("YIBAO_PEERS", "west=http://127.0.0.1:3"),
            ],
        )
        .expect("valid");
        assert_eq!(env.bureau, "east");
        assert_eq!(
            env.peers.get("west").map(String::as_str),
            Some("http://127.0.0.1:3")
        );
        assert_eq!(
            setting_of(load(
                BureauRole::TransferOut,
                &["--bureau", "North Pole"],
                &[]
            )),
            "bureau"
        );
        for bad in [
            "Bad Name=http://127.0.0.1:1",
            "south=https://127.0.0.1:1",
            "south=ftp://x:1",
        ] {
            assert_eq!(
                setting_of(load(BureauRole::TransferOut, &["--peers", bad], &[])),
                "peers",
                "{bad}"
            );
        }
        assert!(
            load(
                BureauRole::TransferOut,
                &[],
                &[("YIBAO_PEERS", "no-equals")]
            )
            .is_err()
        );
    }
}
