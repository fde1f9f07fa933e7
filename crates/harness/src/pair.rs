//! [`Pair`]: a transfer-out and a transfer-in bureau running as real processes on ephemeral
//! ports, with the operations a black-box test needs: clients, crash and restart, moving both
//! clocks, waiting for a transfer's state, and the ledger check.
//!
//! Both services start on port 0. Each is told to read its peer's address from the peer's port
//! file (`YIBAO_PEER=file:<path>`) when it needs it, so neither has to start first, and a
//! restarted service may come back on another port: its peer reads the new file.
//!
//! The data directory holds both services' files in the layout of [`crate::member`]
//! (`<root>/transfer-out/`, `<root>/transfer-out.port`, `<root>/transfer-out.log`, …).

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use tonic::transport::Channel;
use yibao_domain::population::{Flow, SyntheticPerson};
use yibao_proto::bureau::v1::Transfer;
use yibao_proto::bureau::v1::bureau_service_client::BureauServiceClient;
use yibao_proto::common::v1::TransferState;

use crate::HarnessError;
use crate::admin::{AdminClient, AdminToken, admin_client};
use crate::clock::{self, ClockTimes};
use crate::ledger::{self, LedgerReport};
use crate::locate::{default_bin_dir, default_directory};
use crate::member::{
    DataRoot, Layout, Member, Service, platform_port_file, region_directory, trace_file,
};
use crate::population::{self, Seeded, applies_at};
use crate::process::{LogFiles, ServiceSpec, peer_from_port_file};
use crate::seed::seed_both;
use crate::tls::{Platform, development_certificates};
use crate::wait::{self, Look};

/// One of the two bureaus of a pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The transfer-out bureau (binary `transfer-out`).
    Out,
    /// The transfer-in bureau (binary `transfer-in`).
    In,
}

impl Side {
    /// Both sides, transfer-out first.
    pub const BOTH: [Side; 2] = [Side::Out, Side::In];

    /// The service's (and its binary's) name: `transfer-out` or `transfer-in`.
    pub fn service(self) -> &'static str {
        match self {
            Side::Out => "transfer-out",
            Side::In => "transfer-in",
        }
    }

    /// The other bureau.
    pub fn other(self) -> Side {
        match self {
            Side::Out => Side::In,
            Side::In => Side::Out,
        }
    }
}

/// How to start a [`Pair`]. `PairOptions::default()` suits most tests.
#[derive(Clone, Debug)]
pub struct PairOptions {
    /// The directory holding the `transfer-out` and `transfer-in` binaries. Default:
    /// [`default_bin_dir`] (`YIBAO_BIN_DIR`, else `target/<profile>` of the running test).
    pub bin_dir: PathBuf,
    /// The region directory both services read. Default: the repository's
    /// `deploy/regions.toml`.
    pub directory: PathBuf,
    /// Where the services keep their data and logs; `None` (the default) for a fresh temporary
    /// directory, removed when the pair is dropped unless a test panicked.
    pub data_dir: Option<PathBuf>,
    /// The population seed. Default 2026.
    pub seed: u64,
    /// How many people (indexes `0..persons`) to seed into both bureaus once they are healthy;
    /// 0 seeds nobody. Default 1300: thirteen blocks of the population layout, so at least 26
    /// people of every flow (and 520 of the commonest).
    pub persons: u64,
    /// Whether the services run on test clocks that [`Pair::advance_clocks`] moves. Default true.
    pub test_clock: bool,
    /// How long each service may take to report healthy. Default 30 s.
    pub ready_timeout: Duration,
    /// Further environment variables for both services (for example `RUST_LOG`), applied last.
    pub extra_env: Vec<(OsString, OsString)>,
    /// Further environment variables for transfer-out only, applied after `extra_env` (for
    /// example its own `YIBAO_DATABASE_URL`).
    pub out_env: Vec<(OsString, OsString)>,
    /// Further environment variables for transfer-in only, applied after `extra_env`.
    pub in_env: Vec<(OsString, OsString)>,
    /// A different region directory for transfer-in, to test bureaus whose directories disagree
    /// (a message to a region its receiver does not host is refused and parked). Default: none,
    /// both read `directory`.
    pub in_directory: Option<PathBuf>,
    /// How the platform hop is secured. Default [`PlatformMode::MutualTls`], as `yibao up`
    /// runs: a development CA and one certificate per bureau are made in the data directory.
    pub platform: PlatformMode,
    /// Fixed loopback ports instead of ephemeral ones (`yibao up` runs so), kept across
    /// restarts. Default none: every listener binds port 0. A test that uses fixed ports must
    /// take ports of its own.
    pub fixed_ports: Option<FixedPorts>,
    /// The admin token both services require of every admin caller (`YIBAO_ADMIN_TOKEN`);
    /// the pair's own admin clients ([`Pair::admin`], seeding, clocks, the ledger check)
    /// present it. Default none: the services answer loopback admin callers only.
    pub admin_token: Option<AdminToken>,
    /// Whether each service appends its finished spans to `<data dir>/<service>.traces.jsonl`
    /// ([`Pair::trace_file`]; `YIBAO_TRACE_FILE`), one JSON object a line. Default false.
    pub trace_files: bool,
}

/// The four loopback ports of a pair with fixed ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedPorts {
    /// transfer-out's bureau and admin APIs.
    pub out: u16,
    /// transfer-out's platform listener.
    pub out_platform: u16,
    /// transfer-in's bureau and admin APIs.
    pub inn: u16,
    /// transfer-in's platform listener.
    pub in_platform: u16,
}

impl FixedPorts {
    /// Four ports free right now (each bound and released at once; the pair binds them next
    /// and keeps them across restarts), so parallel runs do not collide.
    ///
    /// # Errors
    /// If loopback cannot be bound.
    pub fn free() -> std::io::Result<FixedPorts> {
        let listeners: Vec<std::net::TcpListener> = (0..4)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
            .collect::<Result<_, _>>()?;
        let port =
            |index: usize| -> std::io::Result<u16> { Ok(listeners[index].local_addr()?.port()) };
        Ok(FixedPorts {
            out: port(0)?,
            out_platform: port(1)?,
            inn: port(2)?,
            in_platform: port(3)?,
        })
    }
}

/// How a pair's platform hop is secured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PlatformMode {
    /// Mutual TLS with development certificates (the default).
    #[default]
    MutualTls,
    /// Plaintext, the explicit opt-out.
    Plaintext,
}

impl Default for PairOptions {
    fn default() -> Self {
        PairOptions {
            // An unknown directory surfaces in `Pair::start` as a missing binary, with its path.
            bin_dir: default_bin_dir().unwrap_or_default(),
            directory: default_directory(),
            data_dir: None,
            seed: 2026,
            persons: 1300,
            test_clock: true,
            ready_timeout: Duration::from_secs(30),
            extra_env: Vec::new(),
            out_env: Vec::new(),
            in_env: Vec::new(),
            in_directory: None,
            platform: PlatformMode::default(),
            fixed_ports: None,
            admin_token: None,
            trace_files: false,
        }
    }
}

/// A running transfer-out and transfer-in bureau. Dropping the pair kills both processes.
#[derive(Debug)]
pub struct Pair {
    /// The transfer-out bureau. Declared before `root` so processes end before their
    /// directory is removed.
    out: Member,
    /// The transfer-in bureau.
    inn: Member,
    /// The data directory: every file of the pair is under it.
    root: DataRoot,
    /// The seeded population.
    population: Seeded,
    /// How long a (re)started service may take to report healthy.
    ready_timeout: Duration,
    /// The token the pair's admin clients present, when the services require one.
    admin_token: Option<AdminToken>,
}

impl Pair {
    /// Starts both services, waits until both answer SERVING, and seeds `options.persons`
    /// people into each. On failure the data directory is kept, so the log files the error
    /// names can be read.
    pub async fn start(options: PairOptions) -> Result<Pair, HarnessError> {
        let directory = region_directory(&options.directory)?;
        let mut root = DataRoot::new(options.data_dir.as_deref(), "yibao-pair-")?;
        let (out_spec, in_spec) = specs(&options, &directory, &root.path)?;
        let started = tokio::join!(
            Member::start(out_spec, options.ready_timeout),
            Member::start(in_spec, options.ready_timeout),
        );
        let (out, inn) = match started {
            (Ok(out), Ok(inn)) => (out, inn),
            (Err(error), _) | (_, Err(error)) => {
                // Whatever did start is killed when dropped here; keep the logs the error names.
                root.keep();
                return Err(error);
            }
        };
        let pair = Pair {
            out,
            inn,
            root,
            population: Seeded {
                seed: options.seed,
                persons: options.persons,
            },
            ready_timeout: options.ready_timeout,
            admin_token: options.admin_token.clone(),
        };
        seed_both(
            &mut pair.admin_out(),
            &mut pair.admin_in(),
            pair.population.seed,
            pair.population.persons,
        )
        .await?;
        Ok(pair)
    }

    /// A channel to `side`'s platform listener as its peer bureau calls it: over mutual TLS with
    /// the peer's certificate (or plaintext when the pair runs so). Tests that play the other
    /// bureau send platform messages through it.
    ///
    /// # Errors
    /// If the service did not report a platform address or a TLS file is unreadable.
    pub fn platform_channel(&self, side: Side) -> Result<Channel, HarnessError> {
        self.platform_channel_as(side, &self.member(side.other()).spec.platform)
    }

    /// A channel to `side`'s platform listener presenting `client` (another certificate, or
    /// none: [`Platform::Plaintext`] against a TLS listener fails the handshake).
    ///
    /// # Errors
    /// As [`Pair::platform_channel`].
    pub fn platform_channel_as(
        &self,
        side: Side,
        client: &Platform,
    ) -> Result<Channel, HarnessError> {
        let address = self
            .platform_address(side)
            .ok_or_else(|| HarnessError::NotRunning {
                service: side.service(),
            })?;
        crate::process::platform_channel(address, client)
    }

    /// The address of `side`'s platform listener, while it runs.
    pub fn platform_address(&self, side: Side) -> Option<SocketAddr> {
        self.member(side).platform_address()
    }

    /// The address of `side`'s metrics listener (`GET /metrics`), while it runs with metrics
    /// on: start the pair with `YIBAO_METRICS_LISTEN=127.0.0.1:0` in
    /// [`PairOptions::extra_env`]; each service writes its own port file.
    pub fn metrics_address(&self, side: Side) -> Option<SocketAddr> {
        self.member(side).metrics_address()
    }

    /// How `side`'s platform is secured (its own files, when mutual TLS).
    pub fn platform(&self, side: Side) -> &Platform {
        &self.member(side).spec.platform
    }

    /// The transfer-out bureau's endpoint, `http://127.0.0.1:PORT`.
    pub fn out_endpoint(&self) -> &str {
        self.out.endpoint()
    }

    /// The transfer-in bureau's endpoint, `http://127.0.0.1:PORT`.
    pub fn in_endpoint(&self) -> &str {
        self.inn.endpoint()
    }

    /// One bureau's endpoint. It changes when the bureau restarts.
    pub fn endpoint(&self, side: Side) -> &str {
        self.member(side).endpoint()
    }

    /// The channel to one bureau, shared by the clients below. Take clients again after a
    /// restart: the old channel points at the old port.
    pub fn channel(&self, side: Side) -> Channel {
        self.member(side).channel()
    }

    /// A `BureauService` client of one bureau.
    pub fn bureau(&self, side: Side) -> BureauServiceClient<Channel> {
        BureauServiceClient::new(self.channel(side))
    }

    /// An `AdminService` client of one bureau, presenting the pair's admin token if it has one.
    pub fn admin(&self, side: Side) -> AdminClient {
        admin_client(self.channel(side), self.admin_token.as_ref())
    }

    /// The admin token the services require, if the pair was started with one.
    pub fn admin_token(&self) -> Option<&AdminToken> {
        self.admin_token.as_ref()
    }

    /// A `BureauService` client of the transfer-out bureau.
    pub fn bureau_out(&self) -> BureauServiceClient<Channel> {
        self.bureau(Side::Out)
    }

    /// A `BureauService` client of the transfer-in bureau.
    pub fn bureau_in(&self) -> BureauServiceClient<Channel> {
        self.bureau(Side::In)
    }

    /// An `AdminService` client of the transfer-out bureau.
    pub fn admin_out(&self) -> AdminClient {
        self.admin(Side::Out)
    }

    /// An `AdminService` client of the transfer-in bureau.
    pub fn admin_in(&self) -> AdminClient {
        self.admin(Side::In)
    }

    /// The file `side` appends its finished spans to, when the pair was started with
    /// [`PairOptions::trace_files`] (flushed when the service stops gracefully, and every few
    /// seconds while it runs).
    pub fn trace_file(&self, side: Side) -> PathBuf {
        trace_file(&self.root.path, side.service())
    }

    /// The data directory holding both services' data, port files and logs.
    pub fn data_dir(&self) -> &Path {
        &self.root.path
    }

    /// Where one bureau's output goes.
    pub fn log_files(&self, side: Side) -> &LogFiles {
        &self.member(side).spec.logs
    }

    /// Whether one bureau's process is running (started, and not killed, stopped or exited).
    pub fn is_running(&mut self, side: Side) -> bool {
        self.member_mut(side).is_running()
    }

    /// One bureau's process id, while it runs.
    pub fn pid(&self, side: Side) -> Option<u32> {
        self.member(side).pid()
    }

    /// Kills one bureau at once (SIGKILL) and reaps it: a crash. [`Pair::restart`] brings it
    /// back on the same data.
    pub async fn kill(&mut self, side: Side) -> Result<ExitStatus, HarnessError> {
        self.member_mut(side).kill().await
    }

    /// Stops one bureau gracefully (SIGTERM), killing it if it has not exited after
    /// [`crate::STOP_GRACE`].
    pub async fn stop(&mut self, side: Side) -> Result<ExitStatus, HarnessError> {
        self.member_mut(side).stop().await
    }

    /// Starts one bureau again on the same data directory, stopping it gracefully first if it
    /// is still running, and waits until it is healthy. It may listen on a new port; its peer
    /// finds it through the port file. Clients taken before the restart point at the old port.
    pub async fn restart(&mut self, side: Side) -> Result<(), HarnessError> {
        let ready_timeout = self.ready_timeout;
        self.member_mut(side).restart(ready_timeout).await
    }

    /// Moves both bureaus' test clocks forward by `by` (see [`clock::advance_both`]).
    pub async fn advance_clocks(&self, by: Duration) -> Result<ClockTimes, HarnessError> {
        clock::advance_both(&mut self.admin_out(), &mut self.admin_in(), by).await
    }

    /// Polls `GetTransfer` at one bureau until `predicate` accepts the transfer, and returns
    /// it; a [`HarnessError::Timeout`] with the last state seen when `deadline` passes first.
    /// `NOT_FOUND` (the transfer has not reached this bureau yet) and `UNAVAILABLE` (the bureau
    /// is restarting) are polled through; any other error status ends the wait.
    pub async fn wait_for<P>(
        &self,
        side: Side,
        transfer_id: &str,
        predicate: P,
        deadline: Duration,
    ) -> Result<Transfer, HarnessError>
    where
        P: FnMut(&Transfer) -> bool,
    {
        let member = self.member(side);
        member
            .watched()
            .matching(transfer_id, predicate, deadline)
            .await
    }

    /// Waits until the transfer is in `state` at one bureau. Fails early with
    /// [`HarnessError::EndedOtherwise`], without waiting for the deadline, when the transfer
    /// reaches a different terminal state.
    pub async fn wait_for_state(
        &self,
        side: Side,
        transfer_id: &str,
        state: TransferState,
        deadline: Duration,
    ) -> Result<Transfer, HarnessError> {
        let member = self.member(side);
        member.watched().state(transfer_id, state, deadline).await
    }

    /// Waits until the transfer is in a terminal state at one bureau, and returns it.
    pub async fn wait_for_terminal(
        &self,
        side: Side,
        transfer_id: &str,
        deadline: Duration,
    ) -> Result<Transfer, HarnessError> {
        let member = self.member(side);
        member.watched().terminal(transfer_id, deadline).await
    }

    /// The person at `index` of the pair's population, computed locally.
    pub fn person(&self, index: u64) -> Result<SyntheticPerson, HarnessError> {
        self.population.person(index)
    }

    /// The first `n` seeded persons of `flow`, computed locally from the population layout
    /// (see [`crate::population`]); an error when fewer were seeded.
    pub fn persons(&self, flow: Flow, n: usize) -> Result<Vec<SyntheticPerson>, HarnessError> {
        self.population.persons(flow, n)
    }

    /// The population seed.
    pub fn seed(&self) -> u64 {
        self.population.seed
    }

    /// How many people were seeded into each bureau.
    pub fn seeded_persons(&self) -> u64 {
        self.population.persons
    }

    /// Applies for the person's transfer the way the flow expects
    /// ([`crate::population::apply_request`]) at the bureau the flow applies at, and returns
    /// the transfer as created.
    pub async fn apply(&self, person: &SyntheticPerson) -> Result<Transfer, HarnessError> {
        let side = applies_at(person.flow);
        population::apply(self.bureau(side), side.service(), person).await
    }

    /// Reads both bureaus' ledger totals and checks conservation (see [`crate::ledger`]).
    pub async fn ledger_check(&self) -> Result<LedgerReport, HarnessError> {
        ledger::fetch_and_check(&mut self.admin_out(), &mut self.admin_in()).await
    }

    /// Polls the ledger until neither bureau has an open transfer, then returns the (exact)
    /// check. Transfers waiting on a deadline stay open until the clocks move.
    pub async fn wait_for_no_open_transfers(
        &self,
        deadline: Duration,
    ) -> Result<LedgerReport, HarnessError> {
        let what = "no open transfer at either bureau";
        wait::until(what, self.log_files(Side::Out), deadline, async || {
            let report = self.ledger_check().await?;
            if report.quiescent {
                return Ok(Look::Done(report));
            }
            Ok(Look::Waiting(format!(
                "{} open at transfer-out, {} open at transfer-in",
                report.transfer_out.open_transfers, report.transfer_in.open_transfers
            )))
        })
        .await
    }

    /// Runs [`Pair::ledger_check`] and panics, printing the figures, every violation and the
    /// log files, unless the ledger holds. Returns the report.
    pub async fn assert_ledger_conserved(&self) -> LedgerReport {
        let report = match self.ledger_check().await {
            Ok(report) => report,
            Err(error) => panic!("ledger check failed: {error}"),
        };
        assert!(
            report.holds,
            "ledger not conserved:\n{report}\ntransfer-out {}\ntransfer-in {}",
            self.log_files(Side::Out),
            self.log_files(Side::In)
        );
        report
    }

    fn member(&self, side: Side) -> &Member {
        match side {
            Side::Out => &self.out,
            Side::In => &self.inn,
        }
    }

    fn member_mut(&mut self, side: Side) -> &mut Member {
        match side {
            Side::Out => &mut self.out,
            Side::In => &mut self.inn,
        }
    }
}

impl Drop for Pair {
    /// Kills both processes and waits (briefly) until they are gone, so that the temporary
    /// directory is removed after them. Keeps the directory, and says where, when a test is
    /// panicking or `YIBAO_KEEP_DATA` is set.
    fn drop(&mut self) {
        self.out.kill_blocking();
        self.inn.kill_blocking();
        self.root.keep_when_asked(&[&self.out, &self.inn]);
    }
}

/// How to start each service of a pair under `root`: its region directory (transfer-in's may
/// differ), its peer's port file, and its platform certificates when the pair runs mutual TLS.
pub(crate) fn specs(
    options: &PairOptions,
    directory: &Path,
    root: &Path,
) -> Result<(ServiceSpec, ServiceSpec), HarnessError> {
    let in_directory = match &options.in_directory {
        Some(path) => region_directory(path)?,
        None => directory.to_path_buf(),
    };
    let (out_platform, in_platform) = match options.platform {
        PlatformMode::MutualTls => {
            let (out, inn) =
                development_certificates(&root.join("certs"), directory, &in_directory)?;
            (Platform::MutualTls(out), Platform::MutualTls(inn))
        }
        PlatformMode::Plaintext => (Platform::Plaintext, Platform::Plaintext),
    };
    let layout = Layout {
        root,
        bin_dir: &options.bin_dir,
        test_clock: options.test_clock,
        admin_token: options.admin_token.as_ref(),
        extra_env: &options.extra_env,
    };
    let ports = |side: Side| match (options.fixed_ports, side) {
        (None, _) => (0, 0),
        (Some(fixed), Side::Out) => (fixed.out, fixed.out_platform),
        (Some(fixed), Side::In) => (fixed.inn, fixed.in_platform),
    };
    let peer = |side: Side| peer_from_port_file(&platform_port_file(root, side.other().service()));
    let traced = |mut spec: ServiceSpec| {
        if options.trace_files {
            let file = trace_file(root, spec.service).into_os_string();
            // First, so a test's own extra_env may still say otherwise.
            spec.extra_env.insert(0, ("YIBAO_TRACE_FILE".into(), file));
        }
        spec
    };
    let mut out = layout.spec(Service {
        name: Side::Out.service(),
        directory,
        peer: peer(Side::Out),
        platform: out_platform,
        ports: ports(Side::Out),
    });
    out.extra_env.extend(options.out_env.iter().cloned());
    let mut inn = layout.spec(Service {
        name: Side::In.service(),
        directory: &in_directory,
        peer: peer(Side::In),
        platform: in_platform,
        ports: ports(Side::In),
    });
    inn.extra_env.extend(options.in_env.iter().cloned());
    Ok((traced(out), traced(inn)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_know_their_service_and_peer() {
        assert_eq!(Side::Out.service(), "transfer-out");
        assert_eq!(Side::In.other(), Side::Out);
    }

    #[tokio::test]
    async fn a_missing_region_directory_is_reported_before_anything_starts() {
        let options = PairOptions {
            directory: PathBuf::from("/no/such/regions.toml"),
            ..PairOptions::default()
        };
        let error = Pair::start(options).await.expect_err("no directory");
        assert!(
            matches!(error, HarnessError::DirectoryMissing { .. }),
            "{error}"
        );
    }
}
