//! [`Topology`]: every bureau a region directory names, each a real process on ephemeral ports
//! hosting its own regions and playing both sides, with what a black-box test of several
//! bureaus needs: clients by bureau name, crash and restart, moving every clock, waiting for a
//! transfer's state, and the ledger checked across all of them.
//!
//! Each bureau runs a bureau binary with `YIBAO_BUREAU=<name>` and `YIBAO_PEERS` naming every
//! other bureau's platform port file (`<name>=file:<root>/<other>.platform.port`), so none has
//! to start first and a restarted one may come back on another port. The data directory has
//! [`crate::member`]'s layout, one entry per bureau name.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::Mutex;
use std::time::Duration;

use tonic::transport::Channel;
use yibao_domain::population::SyntheticPerson;
use yibao_domain::region::RegionCode;
use yibao_proto::bureau::v1::Transfer;
use yibao_proto::bureau::v1::bureau_service_client::BureauServiceClient;
use yibao_proto::common::v1::TransferState;
use yibao_runtime::directory::RegionDirectory;

use crate::HarnessError;
use crate::admin::{AdminClient, AdminToken, admin_client};
use crate::ledger::{self, TopologyLedgerReport};
use crate::locate::{binary_path, default_bin_dir};
use crate::member::{DataRoot, Layout, Member, Service, platform_port_file, region_directory};
use crate::pair::{PlatformMode, Side};
use crate::population::{self, applies_at};
use crate::process::{LogFiles, Platform, peer_from_port_file};
use crate::tls::bureau_certificates;
use crate::wait::{self, Look};

/// The binary every bureau of a topology runs: its role only picks defaults, all of which the
/// topology sets.
const BUREAU_BINARY: &str = "transfer-out";

/// How to start a [`Topology`].
#[derive(Clone, Debug)]
pub struct TopologyOptions {
    /// The directory holding the bureau binaries. Default: [`default_bin_dir`].
    pub bin_dir: PathBuf,
    /// The region directory every bureau reads; one bureau starts per name its `bureau` keys
    /// give. Default: the repository's `deploy/regions-3.toml` (north, west, south).
    pub directory: PathBuf,
    /// Where the bureaus keep their data and logs; `None` (the default) for a temporary
    /// directory, removed on drop unless a test panicked.
    pub data_dir: Option<PathBuf>,
    /// Whether the bureaus run on test clocks. Default true.
    pub test_clock: bool,
    /// How long each bureau may take to report healthy. Default 30 s.
    pub ready_timeout: Duration,
    /// Further environment variables for every bureau, applied last.
    pub extra_env: Vec<(OsString, OsString)>,
    /// How the platform hop is secured. Default mutual TLS, a certificate per bureau.
    pub platform: PlatformMode,
    /// The admin token every bureau requires, if any.
    pub admin_token: Option<AdminToken>,
    /// Whether each bureau keeps one bureau port across restarts (free loopback ports picked
    /// at start), so that clients outside the harness keep reaching a bureau killed and
    /// restarted. Default false: ephemeral ports, new ones on each start.
    pub fixed_ports: bool,
}

impl Default for TopologyOptions {
    fn default() -> Self {
        TopologyOptions {
            bin_dir: default_bin_dir().unwrap_or_default(),
            directory: three_bureau_directory(),
            data_dir: None,
            test_clock: true,
            ready_timeout: Duration::from_secs(30),
            extra_env: Vec::new(),
            platform: PlatformMode::default(),
            admin_token: None,
            fixed_ports: false,
        }
    }
}

/// The repository's `deploy/regions-3.toml`: three bureaus, north, west and south.
pub fn three_bureau_directory() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/regions-3.toml")
        .components()
        .collect()
}

/// Every bureau of a region directory, running. Dropping it kills them all.
#[derive(Debug)]
pub struct Topology {
    /// The bureaus, by name in name order. Declared before `root` so that processes end before
    /// their directory is removed.
    members: Vec<(&'static str, Member)>,
    /// The data directory.
    root: DataRoot,
    /// How long a (re)started bureau may take to report healthy.
    ready_timeout: Duration,
    /// The token the admin clients present.
    admin_token: Option<AdminToken>,
    /// The region directory every bureau reads: who hosts which region.
    directory: RegionDirectory,
}

impl Topology {
    /// Starts every bureau the directory names and waits until each answers SERVING. Nobody is
    /// seeded: a test makes its people with the admin API's person calls.
    pub async fn start(options: TopologyOptions) -> Result<Topology, HarnessError> {
        let directory = region_directory(&options.directory)?;
        let mut root = DataRoot::new(options.data_dir.as_deref(), "yibao-topology-")?;
        let loaded = RegionDirectory::load(&directory).map_err(|error| HarnessError::Io {
            context: format!("reading region directory {}", directory.display()),
            source: std::io::Error::other(error.to_string()),
        })?;
        let names = bureau_names(&loaded, &directory)?;
        let platforms = platforms(&options, &directory, &root.path, &names)?;
        let layout = Layout {
            root: &root.path,
            bin_dir: &options.bin_dir,
            test_clock: options.test_clock,
            admin_token: options.admin_token.as_ref(),
            extra_env: &options.extra_env,
        };
        let ports = bureau_ports(options.fixed_ports, names.len())?;
        let starting = names
            .iter()
            .zip(platforms)
            .zip(ports)
            .map(|((name, platform), port)| {
                let mut spec = layout.spec(Service {
                    name,
                    directory: &directory,
                    peer: peer_from_port_file(&platform_port_file(&root.path, other(&names, name))),
                    platform,
                    ports: (port, 0),
                });
                spec.binary = binary_path(&options.bin_dir, BUREAU_BINARY);
                spec.extra_env
                    .splice(0..0, bureau_env(&root.path, &names, name));
                // Started side by side: each reads the others' addresses lazily, from their files.
                tokio::spawn(Member::start(spec, options.ready_timeout))
            });
        let starting: Vec<_> = starting.collect();
        let mut members = Vec::with_capacity(names.len());
        let mut failed = None;
        for (name, handle) in names.iter().zip(starting) {
            match handle.await {
                Ok(Ok(member)) => members.push((*name, member)),
                Ok(Err(error)) => failed = failed.or(Some(error)),
                Err(joined) => {
                    failed = failed.or(Some(HarnessError::Io {
                        context: format!("starting {name}"),
                        source: std::io::Error::other(joined.to_string()),
                    }));
                }
            }
        }
        if let Some(error) = failed {
            // What did start is killed as `members` drops; keep the logs the error names.
            root.keep();
            return Err(error);
        }
        Ok(Topology {
            members,
            root,
            ready_timeout: options.ready_timeout,
            admin_token: options.admin_token,
            directory: loaded,
        })
    }

    /// Seeds persons `0..persons` of the population `seed` at every bureau; each keeps the
    /// people of the regions it hosts (their record where it hosts the origin, their enrolment
    /// where it hosts the destination).
    pub async fn seed(&self, seed: u64, persons: u64) -> Result<(), HarnessError> {
        for (name, member) in &self.members {
            let mut admin = admin_client(member.channel(), self.admin_token.as_ref());
            crate::seed::seed_one(name, &mut admin, seed, persons).await?;
        }
        Ok(())
    }

    /// The bureau hosting `region`'s pooling region, if one of this topology does.
    pub fn hosting(&self, region: RegionCode) -> Option<&'static str> {
        let bureau = self.directory.bureau_of(region)?;
        self.names()
            .into_iter()
            .find(|name| *name == bureau.as_str())
    }

    /// Applies for a seeded person's transfer the way their flow expects
    /// ([`crate::population::apply_request`]) at the bureau hosting the region the flow applies
    /// at, and returns that bureau's name and the transfer as created.
    pub async fn apply(
        &self,
        person: &SyntheticPerson,
    ) -> Result<(&'static str, Transfer), HarnessError> {
        let region = match applies_at(person.flow) {
            Side::Out => person.out_region,
            Side::In => person.in_region,
        };
        let bureau = self.hosting(region).ok_or_else(|| HarnessError::Io {
            context: format!("applying for a person of {}", person.flow.name()),
            source: std::io::Error::other(format!("no bureau here hosts region {region}")),
        })?;
        let transfer = population::apply(self.bureau(bureau), bureau, person).await?;
        Ok((bureau, transfer))
    }

    /// The bureaus' names, in name order.
    pub fn names(&self) -> Vec<&'static str> {
        self.members.iter().map(|(name, _)| *name).collect()
    }

    /// The bureau and admin endpoint of `bureau`, `http://127.0.0.1:PORT`.
    ///
    /// # Panics
    /// When the topology has no bureau of that name (a mistake in the test).
    pub fn endpoint(&self, bureau: &str) -> &str {
        self.member(bureau).endpoint()
    }

    /// A `BureauService` client of `bureau` (panics as [`Topology::endpoint`]).
    pub fn bureau(&self, bureau: &str) -> BureauServiceClient<Channel> {
        self.member(bureau).bureau()
    }

    /// An `AdminService` client of `bureau` (panics as [`Topology::endpoint`]).
    pub fn admin(&self, bureau: &str) -> AdminClient {
        admin_client(self.member(bureau).channel(), self.admin_token.as_ref())
    }

    /// Where `bureau`'s output goes (panics as [`Topology::endpoint`]).
    pub fn log_files(&self, bureau: &str) -> &LogFiles {
        &self.member(bureau).spec.logs
    }

    /// The data directory of every bureau.
    pub fn data_dir(&self) -> &Path {
        &self.root.path
    }

    /// `bureau`'s process id, while it runs.
    pub fn pid(&self, bureau: &str) -> Option<u32> {
        self.member(bureau).pid()
    }

    /// Kills `bureau` at once (SIGKILL): a crash.
    pub async fn kill(&mut self, bureau: &str) -> Result<ExitStatus, HarnessError> {
        self.member_mut(bureau).kill().await
    }

    /// Starts `bureau` again on its data and waits until it is healthy.
    pub async fn restart(&mut self, bureau: &str) -> Result<(), HarnessError> {
        let ready_timeout = self.ready_timeout;
        self.member_mut(bureau).restart(ready_timeout).await
    }

    /// Moves every bureau's test clock forward by `by`, one bureau after the other.
    pub async fn advance_clocks(&self, by: Duration) -> Result<(), HarnessError> {
        for (name, member) in &self.members {
            let mut admin = admin_client(member.channel(), self.admin_token.as_ref());
            crate::clock::advance(name, &mut admin, by).await?;
        }
        Ok(())
    }

    /// Waits until the transfer is in `state` at `bureau`; fails early when it ends otherwise.
    pub async fn wait_for_state(
        &self,
        bureau: &str,
        transfer_id: &str,
        state: TransferState,
        deadline: Duration,
    ) -> Result<Transfer, HarnessError> {
        let watched = self.member(bureau).watched();
        watched.state(transfer_id, state, deadline).await
    }

    /// Waits until the transfer is in a terminal state at `bureau`.
    pub async fn wait_for_terminal(
        &self,
        bureau: &str,
        transfer_id: &str,
        deadline: Duration,
    ) -> Result<Transfer, HarnessError> {
        let watched = self.member(bureau).watched();
        watched.terminal(transfer_id, deadline).await
    }

    /// Reads every bureau's ledger totals and checks them together (see
    /// [`ledger::check_all`]).
    pub async fn ledger_check(&self) -> Result<TopologyLedgerReport, HarnessError> {
        let mut read = Vec::with_capacity(self.members.len());
        for (name, member) in &self.members {
            let mut admin = admin_client(member.channel(), self.admin_token.as_ref());
            read.push(((*name).to_owned(), ledger::fetch(name, &mut admin).await?));
        }
        Ok(ledger::check_all(read))
    }

    /// Polls the ledgers until no bureau has an open transfer, then returns the exact check.
    pub async fn wait_for_no_open_transfers(
        &self,
        deadline: Duration,
    ) -> Result<TopologyLedgerReport, HarnessError> {
        let logs = self.log_files(self.members[0].0);
        wait::until(
            "no open transfer at any bureau",
            logs,
            deadline,
            async || {
                let report = self.ledger_check().await?;
                if report.quiescent {
                    return Ok(Look::Done(report));
                }
                let open: Vec<String> = report
                    .bureaus
                    .iter()
                    .map(|(name, totals)| format!("{} open at {name}", totals.open_transfers))
                    .collect();
                Ok(Look::Waiting(open.join(", ")))
            },
        )
        .await
    }

    /// Runs [`Topology::ledger_check`] and panics, with the figures and every violation,
    /// unless the ledgers hold.
    pub async fn assert_ledger_conserved(&self) -> TopologyLedgerReport {
        let report = match self.ledger_check().await {
            Ok(report) => report,
            Err(error) => panic!("ledger check failed: {error}"),
        };
        assert!(
            report.holds,
            "ledger not conserved:\n{report}\nlogs in {}",
            self.root.path.display()
        );
        report
    }

    fn member(&self, bureau: &str) -> &Member {
        match self.members.iter().find(|(name, _)| *name == bureau) {
            Some((_, member)) => member,
            None => panic!("no bureau {bureau:?} in this topology: {:?}", self.names()),
        }
    }

    fn member_mut(&mut self, bureau: &str) -> &mut Member {
        let names = self.names();
        match self.members.iter_mut().find(|(name, _)| *name == bureau) {
            Some((_, member)) => member,
            None => panic!("no bureau {bureau:?} in this topology: {names:?}"),
        }
    }
}

impl Drop for Topology {
    /// Kills every bureau and keeps the directory when a test panicked (as [`crate::Pair`]).
    fn drop(&mut self) {
        for (_, member) in &mut self.members {
            member.kill_blocking();
        }
        let members: Vec<&Member> = self.members.iter().map(|(_, member)| member).collect();
        self.root.keep_when_asked(&members);
    }
}

/// The bureaus `loaded` (read from `directory`) names, at least two, interned (see [`intern`]).
fn bureau_names(
    loaded: &RegionDirectory,
    directory: &Path,
) -> Result<Vec<&'static str>, HarnessError> {
    let names: Vec<&'static str> = loaded
        .bureaus()
        .iter()
        .map(|name| intern(name.as_str()))
        .collect();
    if names.len() < 2 {
        return Err(HarnessError::Io {
            context: format!("starting the bureaus of {}", directory.display()),
            source: std::io::Error::other("the directory names fewer than two bureaus"),
        });
    }
    Ok(names)
}

/// A bureau name as the `'static` service name the harness's processes and errors carry. Each
/// distinct name is leaked once and reused, so a process holds a few bytes per bureau name it
/// ever started, however many topologies it starts.
pub fn intern(name: &str) -> &'static str {
    static NAMES: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut names = NAMES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let names = names.get_or_insert_with(HashSet::new);
    if let Some(known) = names.get(name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(leaked);
    leaked
}

/// Each bureau's port: free ones picked now (each bound and released at once; the bureau binds
/// it next and keeps it across restarts), or 0 (ephemeral) for all.
fn bureau_ports(fixed: bool, count: usize) -> Result<Vec<u16>, HarnessError> {
    if !fixed {
        return Ok(vec![0; count]);
    }
    let failed = |source: std::io::Error| HarnessError::Io {
        context: "finding free loopback ports".to_owned(),
        source,
    };
    let listeners: Vec<std::net::TcpListener> = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .map_err(failed)?;
    listeners
        .iter()
        .map(|listener| Ok(listener.local_addr().map_err(failed)?.port()))
        .collect()
}

/// Some bureau other than `name` (the default peer, reached only for a region no bureau hosts).
fn other<'a>(names: &[&'a str], name: &'a str) -> &'a str {
    names.iter().copied().find(|n| *n != name).unwrap_or(name)
}

/// `YIBAO_BUREAU` and `YIBAO_PEERS` of the bureau `name`: every other bureau by its platform
/// port file.
fn bureau_env(root: &Path, names: &[&str], name: &str) -> Vec<(OsString, OsString)> {
    let peers: Vec<String> = names
        .iter()
        .filter(|other| **other != name)
        .map(|other| {
            let file = peer_from_port_file(&platform_port_file(root, other));
            format!("{other}={file}")
        })
        .collect();
    vec![
        ("YIBAO_BUREAU".into(), name.into()),
        ("YIBAO_PEERS".into(), peers.join(",").into()),
    ]
}

/// Each bureau's platform security, in `names` order.
fn platforms(
    options: &TopologyOptions,
    directory: &Path,
    root: &Path,
    names: &[&str],
) -> Result<Vec<Platform>, HarnessError> {
    match options.platform {
        PlatformMode::Plaintext => Ok(names.iter().map(|_| Platform::Plaintext).collect()),
        PlatformMode::MutualTls => {
            let certified = bureau_certificates(&root.join("certs"), directory)?;
            Ok(names
                .iter()
                .map(|name| {
                    certified
                        .iter()
                        .find(|(certified, _)| certified == name)
                        .map_or(Platform::Plaintext, |(_, paths)| {
                            Platform::MutualTls(paths.clone())
                        })
                })
                .collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bureau_finds_every_other_by_its_port_file() {
        let env = bureau_env(Path::new("/d"), &["north", "south", "west"], "south");
        assert_eq!(env[0].1, "south");
        assert_eq!(
            env[1].1,
            "north=file:/d/north.platform.port,west=file:/d/west.platform.port"
        );
        let asked = String::from("north");
        assert!(
            std::ptr::eq(intern("north"), intern(asked.as_str())),
            "leaked once"
        );
    }
}
