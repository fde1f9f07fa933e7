//! [`Counterpart`]: one yibao bureau — transfer-out or transfer-in — running as a real process,
//! whose platform peer is a bureau the user runs. A team writes integration tests of its own
//! bureau in Rust with yibao playing the other side: seed the same synthetic people, apply at
//! yibao's side, wait for the transfer's state there, move yibao's clock, kill and restart it,
//! and check its ledger (its own identity only: the peer's books are the peer's).
//!
//! The peer may start after the counterpart, and usually does: its service needs the address
//! and the certificates the counterpart makes. yibao dials the peer only when it has a message
//! for it, and redials with backoff while the peer does not answer, so the usual order is:
//! 1. bind the peer's platform listener on `127.0.0.1:0` (its address is known now);
//! 2. start the counterpart with `peer: "https://127.0.0.1:PORT"`;
//! 3. serve the peer on that listener with [`Counterpart::peer_tls`] (a certificate from the
//!    counterpart's CA naming the regions of the other role), calling
//!    [`Counterpart::platform_endpoint`] when it sends.
//!
//! A peer that writes its address into a file can be named `file:PATH` instead (read when
//! needed, and again after the peer was unreachable), and a peer on a fixed address by its
//! URL. `crates/harness/examples/own_transfer_in.rs` is a whole example.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use yibao_domain::population::Flow;
//! use yibao_harness::{Counterpart, CounterpartOptions, HarnessError, Side};
//! use yibao_proto::common::v1::TransferState;
//!
//! # async fn example() -> Result<(), HarnessError> {
//! let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
//! let peer = format!("https://{}", listener.local_addr().expect("bound"));
//! let yibao = Counterpart::start(CounterpartOptions::new(Side::Out, peer)).await?;
//! let tls = yibao.peer_tls().expect("development certificates");
//! // … serve your transfer-in bureau on `listener` with tls.cert, tls.key, trusting tls.ca …
//! let someone = yibao.persons(Flow::CrossProvinceOutInitiated, 1)?.remove(0);
//! let transfer = yibao.apply(&someone).await?;
//! let deadline = Duration::from_secs(20);
//! yibao
//!     .wait_for_state(&transfer.transfer_id, TransferState::Completed, deadline)
//!     .await?;
//! yibao.assert_ledger_holds().await;
//! # Ok(())
//! # }
//! ```

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use prost_types::Timestamp;
use tonic::transport::Channel;
use yibao_domain::population::{Flow, SyntheticPerson};
use yibao_proto::bureau::v1::Transfer;
use yibao_proto::bureau::v1::bureau_service_client::BureauServiceClient;
use yibao_proto::common::v1::TransferState;
use yibao_runtime::config::PeerBatches;
use yibao_runtime::directory::BureauRole;

use crate::admin::{AdminClient, AdminToken, admin_client};
use crate::ledger::{self, BureauLedgerReport};
use crate::locate::{default_bin_dir, default_directory};
use crate::member::{DataRoot, Layout, Member, Service, region_directory};
use crate::population::{self, Seeded, applies_at};
use crate::process::{LogFiles, Platform, ServiceSpec, TlsPaths};
use crate::seed::seed_one;
use crate::tls::counterpart_certificates;
use crate::wait::{self, Look};
use crate::{HarnessError, Side, clock};

/// How to start a [`Counterpart`]: [`CounterpartOptions::new`] and change what differs.
#[derive(Clone, Debug)]
pub struct CounterpartOptions {
    /// The bureau yibao plays: [`Side::Out`] (transfer-out, facing the user's transfer-in) or
    /// [`Side::In`] (transfer-in, facing the user's transfer-out).
    pub side: Side,
    /// The user's bureau's platform endpoint (`YIBAO_PEER`): `https://HOST:PORT` over mutual
    /// TLS, `http://HOST:PORT` with [`CounterpartTls::Plaintext`], or `file:PATH` naming a file
    /// the peer writes `HOST:PORT` into. It need not answer yet.
    pub peer: String,
    /// The directory holding the service binaries. Default: [`default_bin_dir`].
    pub bin_dir: PathBuf,
    /// The region directory the service reads. Default: the repository's
    /// `deploy/regions.toml`.
    pub directory: PathBuf,
    /// Where the service keeps its data and logs; `None` (the default) for a fresh temporary
    /// directory, removed when the counterpart is dropped unless a test panicked.
    pub data_dir: Option<PathBuf>,
    /// The population seed. Default 2026, as `yibao up` and `yibao persons`.
    pub seed: u64,
    /// How many people (indexes `0..persons`) to seed once the service is healthy; 0 seeds
    /// nobody. Default 1300. The user's bureau seeds the same people its own way
    /// (`yibao persons --json`, or `yibao_domain::population::person`).
    pub persons: u64,
    /// Whether the service runs a test clock that [`Counterpart::advance_clock`] moves.
    /// Default true.
    pub test_clock: bool,
    /// How long the service may take to report healthy. Default 30 s.
    pub ready_timeout: Duration,
    /// Further environment variables for the service (for example `RUST_LOG`), applied last.
    pub extra_env: Vec<(OsString, OsString)>,
    /// How the platform hop is secured. Default [`CounterpartTls::Development`] in the data
    /// directory.
    pub tls: CounterpartTls,
    /// Fixed loopback ports instead of ephemeral ones, kept across restarts. Default none.
    pub fixed_ports: Option<CounterpartPorts>,
    /// The admin token the service requires of every admin caller (`YIBAO_ADMIN_TOKEN`); the
    /// counterpart's own admin clients present it. Default none: loopback callers only.
    pub admin_token: Option<AdminToken>,
    /// Whether yibao tries the batch RPCs at the peer (`YIBAO_PEER_BATCHES`).
    /// [`PeerBatches::Auto`] (the default) tries them once and sends single messages from the
    /// first UNIMPLEMENTED on; [`PeerBatches::Never`] sends single messages from the start.
    pub peer_batches: PeerBatches,
}

impl CounterpartOptions {
    /// yibao plays `side`, facing the user's bureau at `peer`; everything else as documented
    /// on each field.
    pub fn new(side: Side, peer: impl Into<String>) -> CounterpartOptions {
        CounterpartOptions {
            side,
            peer: peer.into(),
            // An unknown directory surfaces in `start` as a missing binary, with its path.
            bin_dir: default_bin_dir().unwrap_or_default(),
            directory: default_directory(),
            data_dir: None,
            seed: 2026,
            persons: 1300,
            test_clock: true,
            ready_timeout: Duration::from_secs(30),
            extra_env: Vec::new(),
            tls: CounterpartTls::default(),
            fixed_ports: None,
            admin_token: None,
            peer_batches: PeerBatches::Auto,
        }
    }
}

/// How a counterpart's platform hop is secured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CounterpartTls {
    /// Mutual TLS with development certificates (the default): a CA in `dir` (made there if
    /// missing, reused if present, so certificates `yibao certs --out DIR` made stay valid;
    /// `None`: `<data dir>/certs`), a certificate for yibao's bureau, and one for the user's
    /// bureau, `peer.pem` and `peer.key`, naming the regions the directory gives the other
    /// role ([`Counterpart::peer_tls`]).
    Development {
        /// Where the CA and the certificates are; `None` for `<data dir>/certs`.
        dir: Option<PathBuf>,
    },
    /// Mutual TLS with these files for yibao's bureau (the user's own CA); nothing is made.
    Files(TlsPaths),
    /// Plaintext, the explicit opt-out: the peer is `http://`.
    Plaintext,
}

impl Default for CounterpartTls {
    fn default() -> Self {
        CounterpartTls::Development { dir: None }
    }
}

impl CounterpartTls {
    /// The URL scheme of the peer's endpoint: `https`, or `http` in plaintext.
    pub fn scheme(&self) -> &'static str {
        match self {
            CounterpartTls::Plaintext => "http",
            CounterpartTls::Development { .. } | CounterpartTls::Files(_) => "https",
        }
    }
}

/// The two loopback ports of a counterpart with fixed ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CounterpartPorts {
    /// The bureau and admin APIs.
    pub bureau: u16,
    /// The platform listener, which the user's bureau calls.
    pub platform: u16,
}

/// A running yibao bureau whose peer is the user's. Dropping it kills the process.
#[derive(Debug)]
pub struct Counterpart {
    /// The bureau. Declared before `root` so the process ends before its directory goes.
    member: Member,
    /// The bureau yibao plays.
    side: Side,
    /// The data directory.
    root: DataRoot,
    /// The certificate made for the user's bureau, when the harness made certificates.
    peer_tls: Option<TlsPaths>,
    /// The seeded population.
    population: Seeded,
    /// How long a restarted service may take to report healthy.
    ready_timeout: Duration,
    /// The token the admin clients present, when the service requires one.
    admin_token: Option<AdminToken>,
}

impl Counterpart {
    /// Makes the certificates (unless told otherwise), starts the bureau, waits until it
    /// answers SERVING, and seeds `options.persons` people. The peer is not called: it need not
    /// listen yet. On failure the data directory is kept, so the log the error names can be
    /// read.
    pub async fn start(options: CounterpartOptions) -> Result<Counterpart, HarnessError> {
        let directory = region_directory(&options.directory)?;
        let mut root = DataRoot::new(options.data_dir.as_deref(), "yibao-counterpart-")?;
        let (spec, peer_tls) = spec(&options, &directory, &root.path)?;
        let member = match Member::start(spec, options.ready_timeout).await {
            Ok(member) => member,
            Err(error) => {
                root.keep();
                return Err(error);
            }
        };
        let counterpart = Counterpart {
            member,
            side: options.side,
            root,
            peer_tls,
            population: Seeded {
                seed: options.seed,
                persons: options.persons,
            },
            ready_timeout: options.ready_timeout,
            admin_token: options.admin_token,
        };
        let Seeded { seed, persons } = counterpart.population;
        let service = counterpart.side.service();
        seed_one(service, &mut counterpart.admin(), seed, persons).await?;
        Ok(counterpart)
    }

    /// The bureau yibao plays.
    pub fn side(&self) -> Side {
        self.side
    }

    /// Its bureau and admin APIs' endpoint, `http://127.0.0.1:PORT`. It changes when the
    /// bureau restarts on ephemeral ports.
    pub fn endpoint(&self) -> &str {
        self.member.endpoint()
    }

    /// The address of its platform listener, which the user's bureau calls, while it runs.
    pub fn platform_address(&self) -> Option<SocketAddr> {
        self.member.platform_address()
    }

    /// [`Counterpart::platform_address`] as a URL, `https://127.0.0.1:PORT` (`http://` in
    /// plaintext).
    pub fn platform_endpoint(&self) -> Option<String> {
        let scheme = self.platform().scheme();
        self.platform_address()
            .map(|address| format!("{scheme}://{address}"))
    }

    /// The peer endpoint it was given.
    pub fn peer(&self) -> &str {
        &self.member.spec.peer
    }

    /// How its platform is secured: its own CA, certificate and key, when mutual TLS.
    pub fn platform(&self) -> &Platform {
        &self.member.spec.platform
    }

    /// yibao's own TLS files (the CA it trusts, its certificate and key), unless plaintext.
    pub fn tls(&self) -> Option<&TlsPaths> {
        match self.platform() {
            Platform::MutualTls(paths) => Some(paths),
            Platform::Plaintext => None,
        }
    }

    /// The files made for the user's bureau (the CA both trust, `peer.pem`, `peer.key`), when
    /// the counterpart made development certificates: serve the platform listener with them
    /// and present them when calling yibao.
    pub fn peer_tls(&self) -> Option<&TlsPaths> {
        self.peer_tls.as_ref()
    }

    /// The channel to the bureau, shared by the clients below. Take clients again after a
    /// restart.
    pub fn channel(&self) -> Channel {
        self.member.channel()
    }

    /// A `BureauService` client.
    pub fn bureau(&self) -> BureauServiceClient<Channel> {
        self.member.bureau()
    }

    /// An `AdminService` client, presenting the admin token if there is one.
    pub fn admin(&self) -> AdminClient {
        admin_client(self.channel(), self.admin_token.as_ref())
    }

    /// The admin token the service requires, if it was started with one.
    pub fn admin_token(&self) -> Option<&AdminToken> {
        self.admin_token.as_ref()
    }

    /// The data directory holding its data, port files, certificates and log.
    pub fn data_dir(&self) -> &Path {
        &self.root.path
    }

    /// Where its output goes.
    pub fn log_files(&self) -> &LogFiles {
        &self.member.spec.logs
    }

    /// Whether its process runs.
    pub fn is_running(&mut self) -> bool {
        self.member.is_running()
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.member.pid()
    }

    /// Kills it at once (SIGKILL): a crash. [`Counterpart::restart`] brings it back.
    pub async fn kill(&mut self) -> Result<ExitStatus, HarnessError> {
        self.member.kill().await
    }

    /// Stops it gracefully (SIGTERM), killing it after [`crate::STOP_GRACE`].
    pub async fn stop(&mut self) -> Result<ExitStatus, HarnessError> {
        self.member.stop().await
    }

    /// Starts it again on the same data (stopping it gracefully first if it runs) and waits
    /// until it is healthy. On ephemeral ports it may come back on new ones: a peer given a
    /// fixed URL for yibao should use [`CounterpartOptions::fixed_ports`].
    pub async fn restart(&mut self) -> Result<(), HarnessError> {
        self.member.restart(self.ready_timeout).await
    }

    /// Moves its test clock forward by `by` and returns its time after the move.
    pub async fn advance_clock(&self, by: Duration) -> Result<Timestamp, HarnessError> {
        clock::advance(self.side.service(), &mut self.admin(), by).await
    }

    /// Polls `GetTransfer` until `predicate` accepts the transfer (see [`crate::Pair::wait_for`]).
    pub async fn wait_for<P>(
        &self,
        transfer_id: &str,
        predicate: P,
        deadline: Duration,
    ) -> Result<Transfer, HarnessError>
    where
        P: FnMut(&Transfer) -> bool,
    {
        let watched = self.member.watched();
        watched.matching(transfer_id, predicate, deadline).await
    }

    /// Waits until the transfer is in `state` here; fails early with
    /// [`HarnessError::EndedOtherwise`] when it reaches another terminal state.
    pub async fn wait_for_state(
        &self,
        transfer_id: &str,
        state: TransferState,
        deadline: Duration,
    ) -> Result<Transfer, HarnessError> {
        let watched = self.member.watched();
        watched.state(transfer_id, state, deadline).await
    }

    /// Waits until the transfer is in a terminal state here, and returns it.
    pub async fn wait_for_terminal(
        &self,
        transfer_id: &str,
        deadline: Duration,
    ) -> Result<Transfer, HarnessError> {
        self.member.watched().terminal(transfer_id, deadline).await
    }

    /// The person at `index` of the population, computed locally.
    pub fn person(&self, index: u64) -> Result<SyntheticPerson, HarnessError> {
        self.population.person(index)
    }

    /// The first `n` seeded persons of `flow`, computed locally (see [`crate::population`]).
    pub fn persons(&self, flow: Flow, n: usize) -> Result<Vec<SyntheticPerson>, HarnessError> {
        self.population.persons(flow, n)
    }

    /// The population seed.
    pub fn seed(&self) -> u64 {
        self.population.seed
    }

    /// How many people were seeded.
    pub fn seeded_persons(&self) -> u64 {
        self.population.persons
    }

    /// Applies for the person's transfer the way the flow expects
    /// ([`crate::population::apply_request`]); the flow must start at the bureau yibao plays
    /// ([`HarnessError::WrongSide`] otherwise: that application is the user's bureau's).
    pub async fn apply(&self, person: &SyntheticPerson) -> Result<Transfer, HarnessError> {
        let at = applies_at(person.flow);
        if at != self.side {
            return Err(HarnessError::WrongSide {
                flow: person.flow.name(),
                applies_at: at.service(),
                plays: self.side.service(),
            });
        }
        population::apply(self.bureau(), self.side.service(), person).await
    }

    /// Reads its ledger totals and checks its own identity (see [`ledger::check_one`]); the
    /// peer's ledger is not read.
    pub async fn ledger_check(&self) -> Result<BureauLedgerReport, HarnessError> {
        ledger::fetch_and_check_one(self.side.service(), &mut self.admin()).await
    }

    /// Polls the ledger until no transfer is open here, then returns the check.
    pub async fn wait_for_no_open_transfers(
        &self,
        deadline: Duration,
    ) -> Result<BureauLedgerReport, HarnessError> {
        let what = format!("no open transfer at {}", self.side.service());
        wait::until(&what, self.log_files(), deadline, async || {
            let report = self.ledger_check().await?;
            if report.quiescent {
                return Ok(Look::Done(report));
            }
            let open = report.totals.open_transfers;
            Ok(Look::Waiting(format!("{open} open")))
        })
        .await
    }

    /// Runs [`Counterpart::ledger_check`] and panics, printing the figures, every violation
    /// and the log file, unless its identity holds. Returns the report.
    pub async fn assert_ledger_holds(&self) -> BureauLedgerReport {
        let report = match self.ledger_check().await {
            Ok(report) => report,
            Err(error) => panic!("ledger check failed: {error}"),
        };
        assert!(
            report.holds,
            "ledger does not hold:\n{report}\n{}",
            self.log_files()
        );
        report
    }
}

impl Drop for Counterpart {
    /// Kills the process and waits (briefly) until it is gone, so that the temporary directory
    /// is removed after it; keeps the directory when a test is panicking or `YIBAO_KEEP_DATA`
    /// is set.
    fn drop(&mut self) {
        self.member.kill_blocking();
        self.root.keep_when_asked(&[&self.member]);
    }
}

/// The role of the bureau yibao plays on `side`.
fn role(side: Side) -> BureauRole {
    match side {
        Side::Out => BureauRole::TransferOut,
        Side::In => BureauRole::TransferIn,
    }
}

/// How to start the counterpart's service under `root`, and the files made for the peer.
fn spec(
    options: &CounterpartOptions,
    directory: &Path,
    root: &Path,
) -> Result<(ServiceSpec, Option<TlsPaths>), HarnessError> {
    let (platform, peer_tls) = match &options.tls {
        CounterpartTls::Development { dir } => {
            let dir = dir.clone().unwrap_or_else(|| root.join("certs"));
            let (own, peer) = counterpart_certificates(&dir, role(options.side), directory)?;
            (Platform::MutualTls(own), Some(peer))
        }
        CounterpartTls::Files(paths) => (Platform::MutualTls(paths.clone()), None),
        CounterpartTls::Plaintext => (Platform::Plaintext, None),
    };
    let batches = match options.peer_batches {
        PeerBatches::Auto => "auto",
        PeerBatches::Never => "never",
    };
    // First, so that the user's own `extra_env` may still override it.
    let mut extra_env = vec![(
        OsString::from("YIBAO_PEER_BATCHES"),
        OsString::from(batches),
    )];
    extra_env.extend(options.extra_env.iter().cloned());
    let layout = Layout {
        root,
        bin_dir: &options.bin_dir,
        test_clock: options.test_clock,
        admin_token: options.admin_token.as_ref(),
        extra_env: &extra_env,
    };
    let spec = layout.spec(Service {
        name: options.side.service(),
        directory,
        peer: options.peer.clone(),
        platform,
        ports: options
            .fixed_ports
            .map_or((0, 0), |ports| (ports.bureau, ports.platform)),
    });
    Ok((spec, peer_tls))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_region_directory_is_reported_before_anything_starts() {
        let options = CounterpartOptions {
            directory: PathBuf::from("/no/such/regions.toml"),
            ..CounterpartOptions::new(Side::Out, "https://127.0.0.1:1")
        };
        let error = Counterpart::start(options).await.expect_err("no directory");
        assert!(
            matches!(error, HarnessError::DirectoryMissing { .. }),
            "{error}"
        );
    }

    #[test]
    fn the_peer_scheme_follows_the_platform_security() {
        assert_eq!(CounterpartTls::default().scheme(), "https");
        assert_eq!(CounterpartTls::Plaintext.scheme(), "http");
    }

    #[test]
    fn the_peer_batches_setting_reaches_the_service_and_extra_env_comes_after() {
        let root = tempfile::tempdir().expect("tempdir");
        let options = CounterpartOptions {
            tls: CounterpartTls::Plaintext,
            peer_batches: PeerBatches::Never,
            extra_env: vec![("RUST_LOG".into(), "debug".into())],
            ..CounterpartOptions::new(Side::In, "http://127.0.0.1:1")
        };
        let (spec, peer_tls) = spec(&options, &default_directory(), root.path()).expect("a spec");
        assert!(peer_tls.is_none());
        assert_eq!(spec.service, "transfer-in");
        assert_eq!(spec.peer, "http://127.0.0.1:1");
        let names: Vec<_> = spec
            .extra_env
            .iter()
            .map(|(name, _)| name.clone())
            .collect();
        assert_eq!(names, ["YIBAO_PEER_BATCHES", "RUST_LOG"]);
        assert_eq!(spec.extra_env[0].1, "never");
    }
}
