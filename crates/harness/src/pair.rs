//! [`Pair`]: a transfer-out and a transfer-in bureau running as real processes on ephemeral
//! ports, with the operations a black-box test needs: clients, crash and restart, moving both
//! clocks, waiting for a transfer's state, and the ledger check.
//!
//! Both services start on port 0. Each is told to read its peer's address from the peer's port
//! file (`YIBAO_PEER=file:<path>`) when it needs it, so neither has to start first, and a
//! restarted service may come back on another port: its peer reads the new file.
//!
//! Layout of the data directory:
//! ```text
//! <root>/transfer-out/                    the transfer-out bureau's data (YIBAO_DATA_DIR)
//! <root>/transfer-out.port                its address, written by the service
//! <root>/transfer-out.log                its output (stdout and stderr), appended across restarts
//! <root>/transfer-in…                     the same for the transfer-in bureau
//! ```

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use tempfile::TempDir;
use tokio::time::Instant;
use tonic::transport::Channel;
use yibao_domain::population::{Flow, SyntheticPerson, person};
use yibao_proto::bureau::v1::bureau_service_client::BureauServiceClient;
use yibao_proto::bureau::v1::{GetTransferRequest, Transfer};
use yibao_proto::common::v1::TransferState;

use crate::admin::{AdminClient, AdminToken, admin_client};
use crate::clock::{self, ClockTimes};
use crate::ledger::{self, LedgerReport};
use crate::locate::{binary_path, default_bin_dir, default_directory};
use crate::population::{applies_at, apply_request, persons_of_flow};
use crate::process::{LogFiles, ServiceProcess, ServiceSpec, lazy_channel, peer_from_port_file};
use crate::seed::seed_both;
use crate::tls::{Platform, development_certificates};
use crate::{HarnessError, code_name};

/// Set this environment variable (to anything but `0`) to keep a pair's temporary data
/// directory and logs even when the test passes.
pub const KEEP_DATA_ENV: &str = "YIBAO_KEEP_DATA";

/// How long [`Pair::stop`] and [`Pair::restart`] wait for a graceful exit before killing.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// How often [`Pair::wait_for`] asks for the transfer.
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// The deadline of one poll's `GetTransfer` call.
const POLL_CALL_TIMEOUT: Duration = Duration::from_secs(2);

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
            in_directory: None,
            platform: PlatformMode::default(),
            fixed_ports: None,
            admin_token: None,
        }
    }
}

/// A running transfer-out and transfer-in bureau. Dropping the pair kills both processes.
#[derive(Debug)]
pub struct Pair {
    /// The transfer-out bureau. Declared before `temporary` so processes end before their
    /// directory is removed.
    out: Member,
    /// The transfer-in bureau.
    inn: Member,
    /// The data directory: every file of the pair is under it.
    root: PathBuf,
    /// The population seed.
    seed: u64,
    /// How many people were seeded.
    persons: u64,
    /// How long a (re)started service may take to report healthy.
    ready_timeout: Duration,
    /// The token the pair's admin clients present, when the services require one.
    admin_token: Option<AdminToken>,
    /// The temporary directory behind `root`, when the pair made one.
    temporary: Option<TempDir>,
}

/// One bureau of the pair.
#[derive(Debug)]
struct Member {
    /// How to (re)start it.
    spec: ServiceSpec,
    /// The process; `None` after [`Pair::kill`] or [`Pair::stop`].
    process: Option<ServiceProcess>,
    /// Its endpoint, kept after it stops so that error messages can name it.
    endpoint: String,
    /// One channel shared by every client of this bureau, replaced when it restarts.
    channel: Channel,
}

impl Member {
    /// Wraps a started process.
    fn new(spec: ServiceSpec, process: ServiceProcess) -> Result<Member, HarnessError> {
        let endpoint = process.endpoint();
        let channel = lazy_channel(&endpoint)?;
        Ok(Member {
            spec,
            process: Some(process),
            endpoint,
            channel,
        })
    }
}

impl Pair {
    /// Starts both services, waits until both answer SERVING, and seeds `options.persons`
    /// people into each. On failure the data directory is kept, so the log files the error
    /// names can be read.
    pub async fn start(options: PairOptions) -> Result<Pair, HarnessError> {
        if !options.directory.is_file() {
            return Err(HarnessError::DirectoryMissing {
                path: options.directory,
            });
        }
        let (temporary, root) = data_root(options.data_dir.as_deref())?;
        let (out_spec, in_spec) = specs(&options, &root)?;
        let started = tokio::join!(
            ServiceProcess::start(&out_spec, options.ready_timeout),
            ServiceProcess::start(&in_spec, options.ready_timeout),
        );
        let members = match started {
            (Ok(out), Ok(inn)) => {
                Member::new(out_spec, out).and_then(|out| Ok((out, Member::new(in_spec, inn)?)))
            }
            (Err(error), _) | (_, Err(error)) => Err(error),
        };
        let (out, inn) = match members {
            Ok(members) => members,
            Err(error) => {
                // Whatever did start is killed when dropped here; keep the logs the error names.
                if let Some(temporary) = temporary {
                    let _ = temporary.keep();
                }
                return Err(error);
            }
        };
        let pair = Pair {
            out,
            inn,
            root,
            seed: options.seed,
            persons: options.persons,
            ready_timeout: options.ready_timeout,
            admin_token: options.admin_token.clone(),
            temporary,
        };
        seed_both(
            &mut pair.admin_out(),
            &mut pair.admin_in(),
            pair.seed,
            pair.persons,
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
        let member = self.member(side);
        let address = member
            .process
            .as_ref()
            .and_then(ServiceProcess::platform_address)
            .ok_or_else(|| HarnessError::NotRunning {
                service: side.service(),
            })?;
        crate::process::platform_channel(address, client)
    }

    /// The address of `side`'s platform listener, while it runs.
    pub fn platform_address(&self, side: Side) -> Option<std::net::SocketAddr> {
        self.member(side)
            .process
            .as_ref()
            .and_then(ServiceProcess::platform_address)
    }

    /// How `side`'s platform is secured (its own files, when mutual TLS).
    pub fn platform(&self, side: Side) -> &Platform {
        &self.member(side).spec.platform
    }

    /// The transfer-out bureau's endpoint, `http://127.0.0.1:PORT`.
    pub fn out_endpoint(&self) -> &str {
        &self.out.endpoint
    }

    /// The transfer-in bureau's endpoint, `http://127.0.0.1:PORT`.
    pub fn in_endpoint(&self) -> &str {
        &self.inn.endpoint
    }

    /// One bureau's endpoint. It changes when the bureau restarts.
    pub fn endpoint(&self, side: Side) -> &str {
        &self.member(side).endpoint
    }

    /// The channel to one bureau, shared by the clients below. Take clients again after a
    /// restart: the old channel points at the old port.
    pub fn channel(&self, side: Side) -> Channel {
        self.member(side).channel.clone()
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

    /// The data directory holding both services' data, port files and logs.
    pub fn data_dir(&self) -> &Path {
        &self.root
    }

    /// Where one bureau's output goes.
    pub fn log_files(&self, side: Side) -> &LogFiles {
        &self.member(side).spec.logs
    }

    /// Whether one bureau's process is running (started, and not killed, stopped or exited).
    pub fn is_running(&mut self, side: Side) -> bool {
        self.member_mut(side)
            .process
            .as_mut()
            .is_some_and(|process| matches!(process.try_exit_status(), Ok(None)))
    }

    /// One bureau's process id, while it runs.
    pub fn pid(&self, side: Side) -> Option<u32> {
        self.member(side)
            .process
            .as_ref()
            .and_then(ServiceProcess::pid)
    }

    /// Kills one bureau at once (SIGKILL) and reaps it: a crash. [`Pair::restart`] brings it
    /// back on the same data.
    pub async fn kill(&mut self, side: Side) -> Result<ExitStatus, HarnessError> {
        let mut process = self.take_process(side)?;
        process.kill().await
    }

    /// Stops one bureau gracefully (SIGTERM), killing it if it has not exited after
    /// [`STOP_GRACE`].
    pub async fn stop(&mut self, side: Side) -> Result<ExitStatus, HarnessError> {
        let mut process = self.take_process(side)?;
        process.stop(STOP_GRACE).await
    }

    /// Starts one bureau again on the same data directory, stopping it gracefully first if it
    /// is still running, and waits until it is healthy. It may listen on a new port; its peer
    /// finds it through the port file. Clients taken before the restart point at the old port.
    pub async fn restart(&mut self, side: Side) -> Result<(), HarnessError> {
        if let Some(mut running) = self.member_mut(side).process.take() {
            running.stop(STOP_GRACE).await?;
        }
        let ready_timeout = self.ready_timeout;
        let member = self.member_mut(side);
        let process = ServiceProcess::start(&member.spec, ready_timeout).await?;
        let spec = member.spec.clone();
        *member = Member::new(spec, process)?;
        Ok(())
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
        let what = format!("transfer {transfer_id} at {} to match", side.service());
        self.poll(side, transfer_id, &what, predicate, |_| false, deadline)
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
        let what = format!(
            "transfer {transfer_id} at {} to reach {}",
            side.service(),
            state_name(state)
        );
        let elsewhere = |transfer: &Transfer| is_terminal(transfer.state());
        self.poll(
            side,
            transfer_id,
            &what,
            |transfer| transfer.state() == state,
            elsewhere,
            deadline,
        )
        .await
    }

    /// Waits until the transfer is in a terminal state at one bureau, and returns it.
    pub async fn wait_for_terminal(
        &self,
        side: Side,
        transfer_id: &str,
        deadline: Duration,
    ) -> Result<Transfer, HarnessError> {
        let what = format!(
            "transfer {transfer_id} at {} to reach a terminal state",
            side.service()
        );
        let terminal = |transfer: &Transfer| is_terminal(transfer.state());
        self.poll(side, transfer_id, &what, terminal, |_| false, deadline)
            .await
    }

    /// The person at `index` of the pair's population, computed locally.
    pub fn person(&self, index: u64) -> Result<SyntheticPerson, HarnessError> {
        Ok(person(self.seed, index)?)
    }

    /// The first `n` seeded persons of `flow`, computed locally from the population layout
    /// (see [`crate::population`]); an error when fewer were seeded.
    pub fn persons(&self, flow: Flow, n: usize) -> Result<Vec<SyntheticPerson>, HarnessError> {
        persons_of_flow(self.seed, flow, n, self.persons)
    }

    /// The population seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// How many people were seeded into each bureau.
    pub fn seeded_persons(&self) -> u64 {
        self.persons
    }

    /// Applies for the person's transfer the way the flow expects
    /// ([`crate::population::apply_request`]) at the bureau the flow applies at, and returns
    /// the transfer as created.
    pub async fn apply(&self, person: &SyntheticPerson) -> Result<Transfer, HarnessError> {
        let side = applies_at(person.flow);
        let answer = self
            .bureau(side)
            .apply_transfer(apply_request(person))
            .await
            .map_err(HarnessError::rpc(side.service(), "ApplyTransfer"))?
            .into_inner();
        answer
            .transfer
            .ok_or_else(|| HarnessError::MalformedAnswer {
                service: side.service(),
                field: "transfer",
                value: String::new(),
                reason: "missing".to_owned(),
            })
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
        let started = Instant::now();
        loop {
            let report = self.ledger_check().await?;
            if report.quiescent {
                return Ok(report);
            }
            if started.elapsed() >= deadline {
                return Err(HarnessError::Timeout {
                    what: "no open transfer at either bureau".to_owned(),
                    waited: deadline,
                    last_seen: format!(
                        "{} open at transfer-out, {} open at transfer-in",
                        report.transfer_out.open_transfers, report.transfer_in.open_transfers
                    ),
                    logs: self.log_files(Side::Out).clone(),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
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

    /// Polls until `done` accepts the transfer, or fails early when `failed` does.
    async fn poll<P, F>(
        &self,
        side: Side,
        transfer_id: &str,
        what: &str,
        mut done: P,
        mut failed: F,
        deadline: Duration,
    ) -> Result<Transfer, HarnessError>
    where
        P: FnMut(&Transfer) -> bool,
        F: FnMut(&Transfer) -> bool,
    {
        let started = Instant::now();
        let mut client = self.bureau(side);
        loop {
            let mut request = tonic::Request::new(GetTransferRequest {
                transfer_id: transfer_id.to_owned(),
            });
            request.set_timeout(POLL_CALL_TIMEOUT);
            let last_seen = match client.get_transfer(request).await {
                Ok(answer) => match answer.into_inner().transfer {
                    Some(transfer) if done(&transfer) => return Ok(transfer),
                    Some(transfer) if failed(&transfer) => {
                        return Err(HarnessError::EndedOtherwise {
                            what: what.to_owned(),
                            last_seen: describe(&transfer),
                            logs: self.log_files(side).clone(),
                        });
                    }
                    Some(transfer) => describe(&transfer),
                    None => "an answer without a transfer".to_owned(),
                },
                Err(status) if worth_polling_through(status.code()) => {
                    format!("{}: {}", code_name(status.code()), status.message())
                }
                Err(status) => {
                    return Err(HarnessError::rpc(side.service(), "GetTransfer")(status));
                }
            };
            if started.elapsed() >= deadline {
                return Err(HarnessError::Timeout {
                    what: what.to_owned(),
                    waited: deadline,
                    last_seen,
                    logs: self.log_files(side).clone(),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
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

    fn take_process(&mut self, side: Side) -> Result<ServiceProcess, HarnessError> {
        self.member_mut(side)
            .process
            .take()
            .ok_or(HarnessError::NotRunning {
                service: side.service(),
            })
    }
}

impl Drop for Pair {
    /// Kills both processes and waits (briefly) until they are gone, so that the temporary
    /// directory is removed after them. Keeps the directory, and says where, when a test is
    /// panicking or `YIBAO_KEEP_DATA` is set.
    fn drop(&mut self) {
        for member in [&mut self.out, &mut self.inn] {
            if let Some(process) = member.process.as_mut() {
                kill_and_reap_blocking(process);
            }
        }
        let keep_requested =
            std::env::var_os(KEEP_DATA_ENV).is_some_and(|v| !v.is_empty() && v != "0");
        if std::thread::panicking() || keep_requested {
            if let Some(temporary) = self.temporary.take() {
                let _ = temporary.keep();
            }
            eprintln!(
                "yibao-harness: services' data kept in {}\n  transfer-out {}\n  transfer-in {}",
                self.root.display(),
                self.out.spec.logs,
                self.inn.spec.logs
            );
        }
    }
}

/// The pair's data directory: `data_dir` (created if needed), or a new temporary directory,
/// which is returned too so that it lives as long as the pair.
fn data_root(data_dir: Option<&Path>) -> Result<(Option<TempDir>, PathBuf), HarnessError> {
    match data_dir {
        Some(root) => {
            std::fs::create_dir_all(root).map_err(HarnessError::io(format!(
                "creating data directory {}",
                root.display()
            )))?;
            Ok((None, absolute(root)?))
        }
        None => {
            let temporary = tempfile::Builder::new()
                .prefix("yibao-pair-")
                .tempdir()
                .map_err(HarnessError::io("creating a temporary data directory"))?;
            let root = temporary.path().to_path_buf();
            Ok((Some(temporary), root))
        }
    }
}

/// Whether the poll should keep going after this status.
fn worth_polling_through(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::NotFound | tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
    )
}

/// Whether a transfer in `state` will never change again.
pub fn is_terminal(state: TransferState) -> bool {
    matches!(
        state,
        TransferState::Completed
            | TransferState::Rejected
            | TransferState::Returned
            | TransferState::PaidToBank
            | TransferState::Aborted
    )
}

/// A state's name without the `TRANSFER_STATE_` prefix, for example `COMPLETED`.
pub fn state_name(state: TransferState) -> &'static str {
    let name = state.as_str_name();
    name.strip_prefix("TRANSFER_STATE_").unwrap_or(name)
}

/// A one-line description of a transfer for messages: its state and its last step.
fn describe(transfer: &Transfer) -> String {
    let mut text = format!("state {}", state_name(transfer.state()));
    if let Some(step) = transfer.history.last() {
        text.push_str(&format!(", last step {}", step.kind));
        if !step.detail.is_empty() {
            text.push_str(&format!(" ({})", step.detail));
        }
    }
    if transfer.refusal_reason != 0 {
        text.push_str(&format!(
            ", refusal {}",
            transfer.refusal_reason().as_str_name()
        ));
    }
    text
}

/// `<root>/<service>.port`.
/// How to start each service of a pair under `root`: its region directory (transfer-in's may
/// differ), its port files, and its platform certificates when the pair runs mutual TLS.
fn specs(options: &PairOptions, root: &Path) -> Result<(ServiceSpec, ServiceSpec), HarnessError> {
    let directory = absolute(&options.directory)?;
    let in_directory = match &options.in_directory {
        Some(path) if !path.is_file() => {
            return Err(HarnessError::DirectoryMissing { path: path.clone() });
        }
        Some(path) => absolute(path)?,
        None => directory.clone(),
    };
    let (out_platform, in_platform) = match options.platform {
        PlatformMode::MutualTls => {
            let (out, inn) =
                development_certificates(&root.join("certs"), &directory, &in_directory)?;
            (Platform::MutualTls(out), Platform::MutualTls(inn))
        }
        PlatformMode::Plaintext => (Platform::Plaintext, Platform::Plaintext),
    };
    let loopback = |port: u16| std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let ports = |side: Side| match (options.fixed_ports, side) {
        (None, _) => (0, 0),
        (Some(fixed), Side::Out) => (fixed.out, fixed.out_platform),
        (Some(fixed), Side::In) => (fixed.inn, fixed.in_platform),
    };
    let spec = |side: Side| ServiceSpec {
        service: side.service(),
        binary: binary_path(&options.bin_dir, side.service()),
        listen: loopback(ports(side).0),
        data_dir: root.join(side.service()),
        directory: match side {
            Side::Out => directory.clone(),
            Side::In => in_directory.clone(),
        },
        peer: peer_from_port_file(&platform_port_file(root, side.other())),
        port_file: port_file(root, side),
        platform_listen: loopback(ports(side).1),
        platform_port_file: platform_port_file(root, side),
        platform: match side {
            Side::Out => out_platform.clone(),
            Side::In => in_platform.clone(),
        },
        logs: LogFiles::in_directory(root, side.service()),
        test_clock: options.test_clock,
        admin_token: options.admin_token.clone(),
        extra_env: options.extra_env.clone(),
    };
    Ok((spec(Side::Out), spec(Side::In)))
}

/// Where a service of the pair writes its platform listener's address.
fn platform_port_file(root: &Path, side: Side) -> PathBuf {
    root.join(format!("{}.platform.port", side.service()))
}

fn port_file(root: &Path, side: Side) -> PathBuf {
    root.join(format!("{}.port", side.service()))
}

/// The path made absolute against the current directory, so that it means the same to a child.
fn absolute(path: &Path) -> Result<PathBuf, HarnessError> {
    std::path::absolute(path).map_err(HarnessError::io(format!(
        "making {} absolute",
        path.display()
    )))
}

/// Sends SIGKILL and waits up to a second, without an async context (this runs in `Drop`).
fn kill_and_reap_blocking(process: &mut ServiceProcess) {
    let _ = process.start_kill();
    for _ in 0..200 {
        if !matches!(process.try_exit_status(), Ok(None)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_states_are_exactly_the_five_of_the_contract() {
        let terminal: Vec<_> = (0..=13)
            .filter_map(|value| TransferState::try_from(value).ok())
            .filter(|state| is_terminal(*state))
            .map(state_name)
            .collect();
        assert_eq!(
            terminal,
            [
                "COMPLETED",
                "REJECTED",
                "RETURNED",
                "PAID_TO_BANK",
                "ABORTED"
            ]
        );
    }

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
