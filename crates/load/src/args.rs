//! The command-line flags of `yibao load`, for a CLI to flatten (`#[command(flatten)]`), and
//! their conversion into [`LoadOptions`]. Everything here is parsing; the run knows nothing of
//! clap.

use std::path::PathBuf;

use yibao_harness::AdminToken;

use crate::error::LoadError;
use crate::options::{
    DEFAULT_CONCURRENCY, DEFAULT_DURATION, DEFAULT_MIX, DEFAULT_PERSONS, DEFAULT_SEED,
    DEFAULT_SPLIT_EVERY, DEFAULT_TOP_UP_AHEAD, LoadOptions, Only, Pace, SpawnOptions, Stop, Target,
    TopologyTarget,
};

/// The transfer-out endpoint of `deploy/run-local.sh`.
const DEFAULT_OUT: &str = "http://127.0.0.1:50051";
/// The transfer-in endpoint of `deploy/run-local.sh`.
const DEFAULT_IN: &str = "http://127.0.0.1:50052";

/// Load-test a bureau pair: seed people, apply transfers in a closed or open loop, measure
/// latency and throughput, check the ledger, write JSON and HTML reports.
#[derive(Clone, Debug, clap::Args)]
pub struct LoadArgs {
    /// The transfer-out bureau's endpoint (default http://127.0.0.1:50051); several replicas of
    /// it comma-separated (URL1,URL2): applications go to each in turn, and a call answered
    /// UNAVAILABLE is tried at the next.
    #[arg(long = "out", value_name = "URL", conflicts_with = "spawn")]
    pub out: Option<String>,
    /// The transfer-in bureau's endpoint (default http://127.0.0.1:50052); several replicas of
    /// it comma-separated, as --out.
    #[arg(long = "in", value_name = "URL", conflicts_with = "spawn")]
    pub inn: Option<String>,
    /// Start a private pair on ephemeral ports with temporary data instead of using running
    /// services; it is stopped at the end. With --topology: every bureau of the topology.
    #[arg(long)]
    pub spawn: bool,
    /// Drive every bureau of a topology file (deploy/topology-3.toml): each application goes
    /// to the bureau hosting the region its flow applies at, the report counts transfers by
    /// pair of bureaus, and the ledger check covers them all. Without --spawn, the bureaus
    /// listen where the file says (as `yibao up --topology FILE` starts them) unless --bureau
    /// says otherwise.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["out", "inn", "only", "directory", "trace_files"])]
    pub topology: Option<PathBuf>,
    /// With --topology: a running bureau's endpoint, NAME=URL, instead of the file's address
    /// (repeat for each bureau).
    #[arg(
        long = "bureau",
        value_name = "NAME=URL",
        requires = "topology",
        conflicts_with = "spawn"
    )]
    pub bureaus: Vec<String>,
    /// Where the spawned pair's binaries are (default: YIBAO_BIN_DIR, else beside this program).
    #[arg(long, value_name = "DIR", requires = "spawn")]
    pub bin_dir: Option<PathBuf>,
    /// The spawned pair's region directory (default: the repository's deploy/regions.toml).
    #[arg(long, value_name = "PATH", requires = "spawn")]
    pub directory: Option<PathBuf>,
    /// The spawned pair's platform hop runs plaintext instead of mutual TLS (to measure what
    /// TLS costs). Running services (`--out`/`--in`) are called on their plaintext bureau and
    /// admin APIs and need no TLS material from the load generator either way.
    #[arg(long, requires = "spawn")]
    pub plaintext_platform: bool,
    /// Each spawned bureau writes its finished spans to a trace file in its temporary data
    /// directory (`--trace-file`), to measure what traces cost.
    #[arg(long, requires = "spawn")]
    pub trace_files: bool,
    /// Drive one yibao bureau whose platform peer is your own service: `out` (yibao's
    /// transfer-out at --out, facing your transfer-in) or `in` (yibao's transfer-in at --in,
    /// facing your transfer-out). Only flows that start there apply (default mix: out
    /// cross-province-out-initiated=1, in connected=1), only its ledger is checked, and the
    /// report splits latency into time at the peer and time in yibao.
    #[arg(long, value_name = "BUREAU")]
    pub only: Option<Only>,
    /// With --spawn --only: your service's platform endpoint, which the spawned bureau calls
    /// (https://HOST:PORT; http:// with --plaintext-platform).
    #[arg(long, value_name = "URL", requires_all = ["spawn", "only"])]
    pub peer: Option<String>,
    /// With --spawn --only over mutual TLS: the CA directory your service trusts (made by
    /// `yibao certs --out DIR --bureau NAME=REGIONS`); the spawned bureau's certificate is made
    /// there by that CA.
    #[arg(long, value_name = "DIR", requires = "peer")]
    pub certs: Option<PathBuf>,
    /// With --only: split the latency of one transfer in N (1: every transfer).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_SPLIT_EVERY)]
    pub split_every: u64,
    /// People to seed at both bureaus (raised automatically when --transfers, or --rate with
    /// --duration, needs more), at most 1,000,000.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_PERSONS)]
    pub persons: u64,
    /// The population index of the first person seeded and used; give each run against the
    /// same long-lived services a fresh range.
    #[arg(long, value_name = "INDEX", default_value_t = 0)]
    pub first_person: u64,
    /// The population seed.
    #[arg(long, value_name = "SEED", default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// Closed loop: transfers in flight (the default loop, 512 in flight).
    #[arg(long, value_name = "N", conflicts_with = "rate")]
    pub concurrency: Option<usize>,
    /// Open loop: applications per second, latency measured from each intended start.
    #[arg(long, value_name = "PER_SECOND")]
    pub rate: Option<f64>,
    /// Open loop: the most transfers in flight before the schedule falls behind.
    #[arg(long, value_name = "N", default_value_t = 10_000, requires = "rate")]
    pub max_in_flight: usize,
    /// How long to apply, e.g. 60s or 2m (default 60s unless --transfers is given).
    #[arg(long, value_name = "DURATION")]
    pub duration: Option<String>,
    /// How many applications to make (with --duration: whichever comes first).
    #[arg(long, value_name = "N")]
    pub transfers: Option<u64>,
    /// The flow mix as NAME=WEIGHT pairs: connected, not-connected, intra-province, refused, or
    /// any population flow name (default connected=80,not-connected=10,intra-province=5,
    /// refused=5; with --only, the flow of that bureau).
    #[arg(long, value_name = "MIX")]
    pub mix: Option<String>,
    /// Also measure bare grpc.health.v1 Check calls per second against the same services, and
    /// report transfers/s divided by that.
    #[arg(long)]
    pub baseline: bool,
    /// How long the baseline measurement runs.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "10s",
        requires = "baseline"
    )]
    pub baseline_duration: String,
    /// HTTP/2 connections to each service.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub connections: usize,
    /// How long one transfer may take to reach a terminal state before it counts as an error.
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    pub transfer_timeout: String,
    /// How long to wait, after the last application, for every transfer to finish before the
    /// ledger check.
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    pub settle_timeout: String,
    /// Keep the seeded population this many applications ahead of the run, seeding more as it
    /// goes (a person transfers once); 0 never seeds during the run. Default 30000; with
    /// --only 0, since your bureau knows only the people you seeded there.
    #[arg(long, value_name = "N")]
    pub top_up_ahead: Option<u64>,
    /// Where to write report.json and report.html (default: `load-reports/<UTC start time>`).
    #[arg(long, value_name = "DIR", conflicts_with = "no_report")]
    pub report_dir: Option<PathBuf>,
    /// Write no report files.
    #[arg(long)]
    pub no_report: bool,
    /// No live progress bar (for logs and CI).
    #[arg(long)]
    pub no_progress: bool,
}

impl LoadArgs {
    /// Whether to draw the live progress bar.
    pub fn progress(&self) -> bool {
        !self.no_progress
    }
}

/// An endpoint as typed: `host:port` gets `http://` in front. Several replicas of one bureau
/// are named comma-separated (`URL1,URL2`); each is completed so.
fn endpoint(text: &str) -> String {
    let replicas: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|replica| !replica.is_empty())
        .map(|replica| {
            if replica.contains("://") {
                replica.to_owned()
            } else {
                format!("http://{replica}")
            }
        })
        .collect();
    replicas.join(",")
}

impl TryFrom<LoadArgs> for LoadOptions {
    type Error = LoadError;

    fn try_from(args: LoadArgs) -> Result<LoadOptions, LoadError> {
        let target = target(&args)?;
        let pace = match args.rate {
            Some(rate_per_s) => Pace::Open {
                rate_per_s,
                max_in_flight: args.max_in_flight,
            },
            None => Pace::Closed {
                concurrency: args.concurrency.unwrap_or(DEFAULT_CONCURRENCY),
            },
        };
        let duration = args
            .duration
            .as_deref()
            .map(LoadOptions::parse_duration)
            .transpose()?;
        let stop = Stop {
            duration: duration.or(if args.transfers.is_none() {
                Some(DEFAULT_DURATION)
            } else {
                None
            }),
            transfers: args.transfers,
        };
        let baseline = if args.baseline {
            Some(LoadOptions::parse_duration(&args.baseline_duration)?)
        } else {
            None
        };
        let mix = match (&args.mix, args.only) {
            (Some(mix), _) => mix.as_str(),
            (None, Some(only)) => only.default_mix(),
            (None, None) => DEFAULT_MIX,
        };
        let options = LoadOptions {
            target,
            only: args.only,
            split_every: args.split_every,
            persons: args.persons,
            first_person: args.first_person,
            seed: args.seed,
            pace,
            stop,
            mix: LoadOptions::parse_mix(mix)?,
            baseline,
            report_dir: if args.no_report {
                None
            } else {
                Some(args.report_dir.unwrap_or_else(|| {
                    PathBuf::from("load-reports")
                        .join(chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string())
                }))
            },
            connections: args.connections,
            transfer_timeout: LoadOptions::parse_duration(&args.transfer_timeout)?,
            settle_timeout: LoadOptions::parse_duration(&args.settle_timeout)?,
            top_up_ahead: args.top_up_ahead.unwrap_or(match args.only {
                Some(_) => 0,
                None => DEFAULT_TOP_UP_AHEAD,
            }),
            // From the environment only: a flag would show the token in `ps`.
            admin_token: AdminToken::from_env()
                .map_err(|error| LoadError::Options(error.to_string()))?,
        };
        options.validate()?;
        Ok(options)
    }
}

/// The services a run drives: a spawned pair (or one bureau), or the running ones at `--out`
/// and `--in`; with `--only`, the other bureau's endpoint is not the run's to name.
fn target(args: &LoadArgs) -> Result<Target, LoadError> {
    if let Some(file) = &args.topology {
        return topology_target(file, args);
    }
    if args.spawn {
        return Ok(Target::Spawn(SpawnOptions {
            bin_dir: args.bin_dir.clone(),
            directory: args.directory.clone(),
            plaintext_platform: args.plaintext_platform,
            peer: args.peer.clone(),
            certs: args.certs.clone(),
            trace_files: args.trace_files,
        }));
    }
    let named =
        |given: &Option<String>, default: &str| endpoint(given.as_deref().unwrap_or(default));
    let not_driven = |flag: &str, only: &str| {
        LoadError::Options(format!(
            "{flag} names yibao's other bureau, which --only {only} does not drive (its peer is \
             your service)"
        ))
    };
    Ok(match args.only {
        None => Target::Running {
            out: named(&args.out, DEFAULT_OUT),
            inn: named(&args.inn, DEFAULT_IN),
        },
        Some(Only::TransferOut) if args.inn.is_some() => return Err(not_driven("--in", "out")),
        Some(Only::TransferIn) if args.out.is_some() => return Err(not_driven("--out", "in")),
        Some(Only::TransferOut) => Target::Running {
            out: named(&args.out, DEFAULT_OUT),
            inn: String::new(),
        },
        Some(Only::TransferIn) => Target::Running {
            out: String::new(),
            inn: named(&args.inn, DEFAULT_IN),
        },
    })
}

/// The bureaus of `--topology FILE`: spawned, or running where the file (or `--bureau`) says.
fn topology_target(file: &std::path::Path, args: &LoadArgs) -> Result<Target, LoadError> {
    let topology = yibao_runtime::topology::Topology::load(file)
        .map_err(|error| LoadError::Options(error.to_string()))?;
    let spawn = args.spawn.then(|| SpawnOptions {
        bin_dir: args.bin_dir.clone(),
        directory: None,
        plaintext_platform: args.plaintext_platform,
        peer: args.peer.clone(),
        certs: args.certs.clone(),
        trace_files: false,
    });
    let mut bureaus: Vec<(String, String)> = topology
        .bureaus
        .iter()
        .map(|bureau| (bureau.name.to_string(), format!("http://{}", bureau.listen)))
        .collect();
    if spawn.is_some() {
        bureaus.clear();
    }
    for given in &args.bureaus {
        let (name, url) = given
            .split_once('=')
            .map(|(name, url)| (name.trim(), url.trim()))
            .filter(|(name, url)| !name.is_empty() && !url.is_empty())
            .ok_or_else(|| LoadError::Options(format!("--bureau `{given}`: give NAME=URL")))?;
        match bureaus.iter_mut().find(|(known, _)| known == name) {
            Some(known) => known.1 = endpoint(url),
            None => {
                return Err(LoadError::Options(format!(
                    "--bureau `{name}`: {} names no such bureau",
                    file.display()
                )));
            }
        }
    }
    Ok(Target::Topology(TopologyTarget {
        directory: topology.directory_path,
        bureaus,
        spawn,
    }))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        load: LoadArgs,
    }

    fn options(args: &[&str]) -> Result<LoadOptions, LoadError> {
        let cli = Cli::try_parse_from(std::iter::once("yibao-load").chain(args.iter().copied()))
            .map_err(|e| LoadError::Options(e.to_string()))?;
        LoadOptions::try_from(cli.load)
    }

    #[test]
    fn the_defaults_are_a_60_second_closed_loop_against_the_local_pair() {
        let options = options(&[]).expect("valid");
        assert_eq!(options.stop.duration, Some(Duration::from_secs(60)));
        assert_eq!(options.stop.transfers, None);
        assert_eq!(options.pace, Pace::Closed { concurrency: 512 });
        assert_eq!(options.persons, 100_000);
        assert!(
            matches!(&options.target, Target::Running { out, inn } if out.ends_with(":50051") && inn.ends_with(":50052"))
        );
        assert!(options.baseline.is_none());
        assert!(
            options
                .report_dir
                .as_ref()
                .is_some_and(|dir| dir.starts_with("load-reports")),
            "reports are written by default: {:?}",
            options.report_dir
        );
        assert_eq!(options_report_dir(&["--no-report"]), None);
        assert_eq!(
            options_report_dir(&["--report-dir", "here"]),
            Some(PathBuf::from("here"))
        );
        assert!(super::tests::options(&["--no-report", "--report-dir", "here"]).is_err());
    }

    fn options_report_dir(args: &[&str]) -> Option<PathBuf> {
        options(args).expect("valid").report_dir
    }

    #[test]
    fn an_open_loop_with_a_transfer_count_has_no_default_duration() {
        let options = options(&[
            "--spawn",
            "--rate",
            "2500",
            "--transfers",
            "1000",
            "--baseline",
            "--mix",
            "connected=1",
        ])
        .expect("valid");
        assert!(matches!(options.target, Target::Spawn(_)));
        assert_eq!(options.stop.duration, None);
        assert_eq!(options.stop.transfers, Some(1000));
        assert_eq!(options.baseline, Some(Duration::from_secs(10)));
        assert!(matches!(options.pace, Pace::Open { rate_per_s, .. } if rate_per_s == 2500.0));
    }

    #[test]
    fn conflicting_or_malformed_flags_are_refused() {
        assert!(options(&["--spawn", "--out", "127.0.0.1:1"]).is_err());
        assert!(options(&["--rate", "10", "--concurrency", "3"]).is_err());
        assert!(options(&["--duration", "forever"]).is_err());
        assert!(options(&["--persons", "2000000"]).is_err());
        assert!(options(&["--mix", "connected=x"]).is_err());
    }

    #[test]
    fn one_bureau_is_driven_with_its_own_flow_and_the_other_is_not_named() {
        let options = options(&["--only", "out", "--out", "127.0.0.1:7001"]).expect("valid");
        assert_eq!(options.only, Some(Only::TransferOut));
        assert_eq!(options.split_every, DEFAULT_SPLIT_EVERY);
        assert_eq!(
            options.top_up_ahead, 0,
            "the peer knows only whom it seeded"
        );
        assert_eq!(
            options.mix,
            LoadOptions::parse_mix("cross-province-out-initiated=1").expect("valid")
        );
        assert!(
            matches!(&options.target, Target::Running { out, inn } if out == "http://127.0.0.1:7001" && inn.is_empty())
        );
        let options = options_of(&["--only", "transfer-in", "--split-every", "1"]);
        assert!(
            matches!(&options.target, Target::Running { out, inn } if out.is_empty() && inn.ends_with(":50052"))
        );
        assert!(super::tests::options(&["--only", "out", "--in", "127.0.0.1:1"]).is_err());
        assert!(super::tests::options(&["--only", "in", "--mix", "retiree-payout=1"]).is_err());
        assert!(super::tests::options(&["--peer", "https://127.0.0.1:1"]).is_err());
        let spawned = options_of(&[
            "--spawn",
            "--only",
            "out",
            "--peer",
            "https://127.0.0.1:7000",
            "--certs",
            "certs",
        ]);
        assert!(
            matches!(&spawned.target, Target::Spawn(spawn) if spawn.peer.as_deref() == Some("https://127.0.0.1:7000"))
        );
    }

    fn options_of(args: &[&str]) -> LoadOptions {
        options(args).expect("valid")
    }

    fn topology_file() -> String {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/topology-3.toml").to_owned()
    }

    #[test]
    fn a_topology_is_driven_where_the_file_or_bureau_says_or_spawned() {
        let file = topology_file();
        let running = options_of(&["--topology", &file, "--bureau", "west=127.0.0.1:7002"]);
        let Target::Topology(topology) = &running.target else {
            panic!("a topology: {:?}", running.target);
        };
        assert!(topology.spawn.is_none());
        assert!(topology.directory.ends_with("regions-3.toml"));
        let endpoint = |name: &str| {
            topology
                .bureaus
                .iter()
                .find(|(known, _)| known == name)
                .map(|(_, url)| url.clone())
        };
        assert_eq!(endpoint("north").as_deref(), Some("http://127.0.0.1:50051"));
        assert_eq!(endpoint("west").as_deref(), Some("http://127.0.0.1:7002"));
        let spawned = options_of(&["--topology", &file, "--spawn"]);
        assert!(
            matches!(&spawned.target, Target::Topology(t) if t.spawn.is_some() && t.bureaus.is_empty())
        );
        assert!(options(&["--topology", &file, "--bureau", "east=127.0.0.1:1"]).is_err());
        assert!(options(&["--topology", &file, "--bureau", "west"]).is_err());
        assert!(options(&["--topology", &file, "--out", "127.0.0.1:1"]).is_err());
        assert!(options(&["--topology", &file, "--only", "out"]).is_err());
        assert!(options(&["--topology", &file, "--spawn", "--bureau", "west=x:1"]).is_err());
        assert!(options(&["--bureau", "west=127.0.0.1:1"]).is_err());
        assert!(options(&["--topology", "/nonexistent/topology.toml"]).is_err());
    }

    #[test]
    fn a_bare_host_and_port_becomes_an_http_endpoint() {
        let options =
            options(&["--out", "127.0.0.1:7001", "--in", "http://[::1]:7002"]).expect("valid");
        assert!(
            matches!(&options.target, Target::Running { out, inn } if out == "http://127.0.0.1:7001" && inn == "http://[::1]:7002")
        );
    }

    #[test]
    fn replicas_of_a_bureau_are_named_comma_separated_each_completed() {
        let options = options_of(&["--out", "127.0.0.1:7001, http://127.0.0.1:7003"]);
        assert!(
            matches!(&options.target, Target::Running { out, .. } if out == "http://127.0.0.1:7001,http://127.0.0.1:7003"),
            "{:?}",
            options.target
        );
    }
}
