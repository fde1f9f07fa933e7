//! [`Replicas`]: a pair whose two bureaus each run as several processes — replicas — over one
//! shared store (a PostgreSQL database per bureau), with what a black-box test of replicas
//! needs: every replica's endpoint (comma-separated, as `yibao load --out/--in` takes them),
//! clients of a running replica, crashing and restarting one replica, moving every running
//! replica's test clock, and the ledger check.
//!
//! A pair's services are started the way [`crate::Pair`] starts them; replica `k` of a bureau
//! then gets files of its own (`<root>/transfer-out.1/`, `<root>/transfer-out.1.port`,
//! `<root>/transfer-out.1.log`, …) and its peer is every replica of the other bureau, each
//! read from its platform port file (`YIBAO_PEER=file:…,file:…`), tried in turn when one is
//! unreachable. The replicas of a bureau share its certificate and its database.

use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;

use tonic::transport::Channel;
use yibao_proto::bureau::v1::bureau_service_client::BureauServiceClient;

use crate::HarnessError;
use crate::admin::{AdminClient, AdminToken, admin_client};
use crate::clock;
use crate::ledger::{self, LedgerReport};
use crate::member::{DataRoot, Member, platform_port_file, region_directory};
use crate::pair::{PairOptions, Side, specs};
use crate::population::Seeded;
use crate::process::{LogFiles, ServiceSpec, peer_from_port_file};
use crate::seed::seed_both;

/// The variable naming a bureau's database; replicas need it, or they would not share a store.
const DATABASE_URL_ENV: &str = "YIBAO_DATABASE_URL";

/// Both bureaus, each as several replicas over its shared store. Dropping it kills them all.
#[derive(Debug)]
pub struct Replicas {
    /// transfer-out's replicas. Declared before `root` so processes end before their directory
    /// is removed.
    out: Vec<Member>,
    /// transfer-in's replicas.
    inn: Vec<Member>,
    /// The data directory.
    root: DataRoot,
    /// The seeded population.
    population: Seeded,
    /// How long a (re)started replica may take to report healthy.
    ready_timeout: Duration,
    /// The token the admin clients present.
    admin_token: Option<AdminToken>,
}

impl Replicas {
    /// Starts `replicas` replicas of each bureau, all at once, waits until every one answers
    /// SERVING, and seeds `options.persons` people (once per bureau: its replicas share a
    /// store). `options.out_env` and `options.in_env` must give each bureau its database
    /// (`YIBAO_DATABASE_URL`) when `replicas` is more than one. Trace files are not supported
    /// (replicas would share one).
    ///
    /// # Errors
    /// [`HarnessError::NotShared`] without a database; whatever starting a service fails with.
    pub async fn start(options: PairOptions, replicas: usize) -> Result<Replicas, HarnessError> {
        let replicas = replicas.max(1);
        for (side, env) in [(Side::Out, &options.out_env), (Side::In, &options.in_env)] {
            let shared = env.iter().any(|(name, _)| name == DATABASE_URL_ENV);
            if replicas > 1 && !shared {
                return Err(HarnessError::NotShared {
                    service: side.service(),
                    replicas,
                });
            }
        }
        let directory = region_directory(&options.directory)?;
        let mut root = DataRoot::new(options.data_dir.as_deref(), "yibao-replicas-")?;
        let options = PairOptions {
            fixed_ports: None,
            trace_files: false,
            ..options
        };
        let (out_spec, in_spec) = specs(&options, &directory, &root.path)?;
        let out_specs = replica_specs(&out_spec, &in_spec, &root.path, replicas);
        let in_specs = replica_specs(&in_spec, &out_spec, &root.path, replicas);
        let starting: Vec<_> = out_specs
            .into_iter()
            .chain(in_specs)
            .map(|spec| tokio::spawn(Member::start(spec, options.ready_timeout)))
            .collect();
        let mut started = Vec::with_capacity(starting.len());
        let mut failed = None;
        for handle in starting {
            match handle.await {
                Ok(Ok(member)) => started.push(member),
                Ok(Err(error)) => failed = failed.or(Some(error)),
                Err(join) => {
                    let error = HarnessError::Io {
                        context: "starting a replica".to_owned(),
                        source: std::io::Error::other(join.to_string()),
                    };
                    failed = failed.or(Some(error));
                }
            }
        }
        if let Some(error) = failed {
            // What did start is killed when dropped here; keep the logs the error names.
            root.keep();
            return Err(error);
        }
        let inn = started.split_off(replicas);
        let running = Replicas {
            out: started,
            inn,
            root,
            population: Seeded {
                seed: options.seed,
                persons: options.persons,
            },
            ready_timeout: options.ready_timeout,
            admin_token: options.admin_token.clone(),
        };
        let (mut out, mut inn) = (running.admin(Side::Out)?, running.admin(Side::In)?);
        seed_both(
            &mut out,
            &mut inn,
            running.population.seed,
            running.population.persons,
        )
        .await?;
        Ok(running)
    }

    /// How many replicas each bureau has.
    pub fn replicas(&self) -> usize {
        self.out.len()
    }

    /// Every replica's endpoint of one bureau, comma-separated, as they last started
    /// (`yibao load --out`/`--in` take such a list).
    pub fn endpoints(&self, side: Side) -> String {
        let endpoints: Vec<&str> = self.members(side).iter().map(Member::endpoint).collect();
        endpoints.join(",")
    }

    /// One replica's endpoint, `http://127.0.0.1:PORT`, as it last started.
    ///
    /// # Panics
    /// If there is no replica `replica`.
    pub fn endpoint(&self, side: Side, replica: usize) -> &str {
        self.members(side)[replica].endpoint()
    }

    /// Where one replica's output goes.
    ///
    /// # Panics
    /// If there is no replica `replica`.
    pub fn log_files(&self, side: Side, replica: usize) -> &LogFiles {
        &self.members(side)[replica].spec.logs
    }

    /// One replica's process id, while it runs.
    pub fn pid(&self, side: Side, replica: usize) -> Option<u32> {
        self.members(side).get(replica).and_then(Member::pid)
    }

    /// A `BureauService` client of the first running replica of one bureau.
    ///
    /// # Errors
    /// [`HarnessError::NotRunning`] when none runs.
    pub fn bureau(&self, side: Side) -> Result<BureauServiceClient<Channel>, HarnessError> {
        Ok(self.running(side)?.bureau())
    }

    /// An `AdminService` client of the first running replica of one bureau.
    ///
    /// # Errors
    /// [`HarnessError::NotRunning`] when none runs.
    pub fn admin(&self, side: Side) -> Result<AdminClient, HarnessError> {
        let member = self.running(side)?;
        Ok(admin_client(member.channel(), self.admin_token.as_ref()))
    }

    /// An `AdminService` client of one replica (its own test clock and fault rules, say).
    ///
    /// # Panics
    /// If there is no replica `replica`.
    pub fn admin_at(&self, side: Side, replica: usize) -> AdminClient {
        let member = &self.members(side)[replica];
        admin_client(member.channel(), self.admin_token.as_ref())
    }

    /// Kills one replica at once (SIGKILL) and reaps it: a crash. Its claims on outbox
    /// messages and the timers' lease lapse; the other replicas take over.
    ///
    /// # Errors
    /// If the replica is not running.
    pub async fn kill(&mut self, side: Side, replica: usize) -> Result<ExitStatus, HarnessError> {
        self.member_mut(side, replica)?.kill().await
    }

    /// Starts one replica again (on the shared store), stopping it first if it runs.
    ///
    /// # Errors
    /// If it does not become healthy in time.
    pub async fn restart(&mut self, side: Side, replica: usize) -> Result<(), HarnessError> {
        let ready_timeout = self.ready_timeout;
        self.member_mut(side, replica)?.restart(ready_timeout).await
    }

    /// Moves the test clock of every running replica of both bureaus forward by `by` (each
    /// replica keeps a clock of its own).
    ///
    /// # Errors
    /// If a replica refuses.
    pub async fn advance_clocks(&self, by: Duration) -> Result<(), HarnessError> {
        for member in self.out.iter().chain(&self.inn) {
            if member.pid().is_some() {
                let mut admin = admin_client(member.channel(), self.admin_token.as_ref());
                clock::advance(member.spec.service, &mut admin, by).await?;
            }
        }
        Ok(())
    }

    /// Reads both bureaus' ledger totals (at a running replica of each) and checks
    /// conservation (see [`crate::ledger`]).
    ///
    /// # Errors
    /// If no replica of a bureau runs, or one does not answer.
    pub async fn ledger_check(&self) -> Result<LedgerReport, HarnessError> {
        let (mut out, mut inn) = (self.admin(Side::Out)?, self.admin(Side::In)?);
        ledger::fetch_and_check(&mut out, &mut inn).await
    }

    /// The data directory holding every replica's files.
    pub fn data_dir(&self) -> &Path {
        &self.root.path
    }

    fn members(&self, side: Side) -> &[Member] {
        match side {
            Side::Out => &self.out,
            Side::In => &self.inn,
        }
    }

    /// The first replica of `side` still running.
    fn running(&self, side: Side) -> Result<&Member, HarnessError> {
        self.members(side)
            .iter()
            .find(|member| member.pid().is_some())
            .ok_or(HarnessError::NotRunning {
                service: side.service(),
            })
    }

    fn member_mut(&mut self, side: Side, replica: usize) -> Result<&mut Member, HarnessError> {
        let members = match side {
            Side::Out => &mut self.out,
            Side::In => &mut self.inn,
        };
        members.get_mut(replica).ok_or(HarnessError::NotRunning {
            service: side.service(),
        })
    }
}

impl Drop for Replicas {
    /// Kills every replica, then keeps the directory when a test is panicking or
    /// `YIBAO_KEEP_DATA` is set.
    fn drop(&mut self) {
        for member in self.out.iter_mut().chain(self.inn.iter_mut()) {
            member.kill_blocking();
        }
        let members: Vec<&Member> = self.out.iter().chain(&self.inn).collect();
        self.root.keep_when_asked(&members);
    }
}

/// The specs of `replicas` replicas of the service `spec` starts: replica `k` gets files named
/// `<service>.<k>` under `root`, and its peer is every replica of `peer`'s service.
fn replica_specs(
    spec: &ServiceSpec,
    peer: &ServiceSpec,
    root: &Path,
    replicas: usize,
) -> Vec<ServiceSpec> {
    let name = |service: &str, k: usize| format!("{service}.{k}");
    let peers: Vec<String> = (0..replicas)
        .map(|k| peer_from_port_file(&platform_port_file(root, &name(peer.service, k))))
        .collect();
    (0..replicas)
        .map(|k| {
            let replica = name(spec.service, k);
            ServiceSpec {
                data_dir: root.join(&replica),
                peer: peers.join(","),
                port_file: root.join(format!("{replica}.port")),
                platform_port_file: platform_port_file(root, &replica),
                logs: LogFiles::in_directory(root, &replica),
                ..spec.clone()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replicas_without_a_shared_store_are_refused_before_anything_starts() {
        let error = Replicas::start(PairOptions::default(), 2)
            .await
            .expect_err("no database");
        assert!(
            matches!(
                error,
                HarnessError::NotShared {
                    service: "transfer-out",
                    replicas: 2
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn each_replica_has_files_of_its_own_and_every_replica_of_the_other_bureau_as_its_peer() {
        let options = PairOptions {
            platform: crate::PlatformMode::Plaintext,
            ..PairOptions::default()
        };
        let root = Path::new("/r");
        let (out, inn) =
            specs(&options, Path::new("/d.toml"), root).expect("plaintext needs no files");
        let replicas = replica_specs(&out, &inn, root, 2);
        assert_eq!(replicas.len(), 2);
        assert_eq!(replicas[1].port_file, root.join("transfer-out.1.port"));
        assert_eq!(replicas[1].data_dir, root.join("transfer-out.1"));
        assert_ne!(
            replicas[0].platform_port_file,
            replicas[1].platform_port_file
        );
        assert_eq!(
            replicas[0].peer,
            "file:/r/transfer-in.0.platform.port,file:/r/transfer-in.1.platform.port"
        );
        assert_eq!(replicas[1].binary, out.binary, "one binary");
    }
}
