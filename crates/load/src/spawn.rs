//! The services of `--spawn`, started with the workspace's test harness (`yibao-harness`) as
//! child processes on ephemeral loopback ports, with the admin API and test clocks on, in a
//! temporary directory this run owns: a private pair, or with `--only` one bureau (a
//! `Counterpart`) whose platform peer is the user's service. The processes are killed and the
//! directory removed when dropped, unless the run asked to keep them.

use std::path::Path;

use tempfile::TempDir;
use yibao_harness::{
    AdminToken, Counterpart, CounterpartOptions, CounterpartTls, Pair, PairOptions, Side, Topology,
    TopologyOptions,
};

use crate::error::LoadError;
use crate::options::{Only, SpawnOptions};

/// What was started: both bureaus, or one.
#[derive(Debug)]
enum Running {
    /// Both bureaus (boxed, as the other: they are large, and only held).
    Pair(Box<Pair>),
    /// One bureau, whose peer is the user's.
    Counterpart(Box<Counterpart>),
    /// Every bureau of a region directory.
    Topology(
        #[expect(dead_code, reason = "only held: dropping it stops the bureaus")] Box<Topology>,
    ),
}

/// One bureau of a spawned topology.
#[derive(Clone, Debug)]
pub struct SpawnedBureau {
    /// Its name in the region directory.
    pub name: String,
    /// Its bureau and admin endpoint.
    pub endpoint: String,
    /// Its process id, for CPU and memory readings.
    pub pid: Option<u32>,
}

/// The running services.
#[derive(Debug)]
pub struct SpawnedPair {
    /// The transfer-out bureau's endpoint, when it was started.
    pub out: Option<String>,
    /// The transfer-in bureau's endpoint, when it was started.
    pub inn: Option<String>,
    /// The transfer-out process id, for CPU and memory readings.
    pub out_pid: Option<u32>,
    /// The transfer-in process id.
    pub in_pid: Option<u32>,
    /// The bureaus of a spawned topology, by name in name order; empty for a pair.
    pub bureaus: Vec<SpawnedBureau>,
    /// The processes, killed on drop. Declared before `data` so they end before their
    /// directory goes.
    _running: Running,
    /// The services' data and logs.
    data: TempDir,
}

impl SpawnedPair {
    /// Starts the services (both, or with `only` that bureau alone) and waits until each
    /// answers SERVING; seeds nobody (the run seeds with its own progress bar). With
    /// `admin_token`, they require it of admin callers.
    pub async fn start(
        options: &SpawnOptions,
        only: Option<Only>,
        admin_token: Option<&AdminToken>,
    ) -> Result<SpawnedPair, LoadError> {
        let data = temporary_directory()?;
        let failed = spawn_failed;
        let (running, out, inn) = match only {
            None => {
                let pair = Pair::start(pair_options(options, &data, admin_token))
                    .await
                    .map_err(failed)?;
                let endpoints = (
                    Some(pair.out_endpoint().to_owned()),
                    Some(pair.in_endpoint().to_owned()),
                );
                (Running::Pair(Box::new(pair)), endpoints.0, endpoints.1)
            }
            Some(only) => {
                let side = side(only);
                let counterpart =
                    Counterpart::start(counterpart_options(options, side, &data, admin_token))
                        .await
                        .map_err(failed)?;
                let endpoint = Some(counterpart.endpoint().to_owned());
                let running = Running::Counterpart(Box::new(counterpart));
                match side {
                    Side::Out => (running, endpoint, None),
                    Side::In => (running, None, endpoint),
                }
            }
        };
        let pid = |wanted: Side| match &running {
            Running::Pair(pair) => pair.pid(wanted),
            Running::Counterpart(one) => (one.side() == wanted).then(|| one.pid()).flatten(),
            Running::Topology(_) => None,
        };
        Ok(SpawnedPair {
            out,
            inn,
            out_pid: pid(Side::Out),
            in_pid: pid(Side::In),
            bureaus: Vec::new(),
            _running: running,
            data,
        })
    }

    /// Starts every bureau `directory` names (the harness's [`Topology`], mutual TLS between
    /// them unless `options` say plaintext) and waits until each answers SERVING; seeds nobody.
    pub async fn start_topology(
        options: &SpawnOptions,
        directory: &Path,
        admin_token: Option<&AdminToken>,
    ) -> Result<SpawnedPair, LoadError> {
        let data = temporary_directory()?;
        let mut topology_options = TopologyOptions {
            directory: directory.to_path_buf(),
            data_dir: Some(data.path().to_path_buf()),
            admin_token: admin_token.cloned(),
            ..TopologyOptions::default()
        };
        if let Some(bin_dir) = &options.bin_dir {
            topology_options.bin_dir = bin_dir.clone();
        }
        if options.plaintext_platform {
            topology_options.platform = yibao_harness::PlatformMode::Plaintext;
        }
        let topology = Topology::start(topology_options)
            .await
            .map_err(spawn_failed)?;
        let bureaus = topology
            .names()
            .into_iter()
            .map(|name| SpawnedBureau {
                name: name.to_owned(),
                endpoint: topology.endpoint(name).to_owned(),
                pid: topology.pid(name),
            })
            .collect();
        Ok(SpawnedPair {
            out: None,
            inn: None,
            out_pid: None,
            in_pid: None,
            bureaus,
            _running: Running::Topology(Box::new(topology)),
            data,
        })
    }

    /// Keeps the services' data and logs after they stop (for a run that failed), and says
    /// where they are.
    pub fn keep_data(&mut self) -> std::path::PathBuf {
        self.data.disable_cleanup(true);
        self.data.path().to_path_buf()
    }
}

/// The run's own temporary directory for the services' data and logs.
fn temporary_directory() -> Result<TempDir, LoadError> {
    tempfile::Builder::new()
        .prefix("yibao-load-")
        .tempdir()
        .map_err(|e| LoadError::Spawn(format!("temporary directory: {e}")))
}

/// The error of services that did not start, with the usual cause.
fn spawn_failed(error: yibao_harness::HarnessError) -> LoadError {
    LoadError::Spawn(format!(
        "{error} (build the services with `cargo build --release --bins`, or give --bin-dir)"
    ))
}

/// The bureau `only` names.
fn side(only: Only) -> Side {
    match only {
        Only::TransferOut => Side::Out,
        Only::TransferIn => Side::In,
    }
}

/// A private pair's options: in `data`, seeding nobody.
fn pair_options(
    options: &SpawnOptions,
    data: &TempDir,
    admin_token: Option<&AdminToken>,
) -> PairOptions {
    let mut pair = PairOptions {
        data_dir: Some(data.path().to_path_buf()),
        persons: 0,
        admin_token: admin_token.cloned(),
        ..PairOptions::default()
    };
    if let Some(bin_dir) = &options.bin_dir {
        pair.bin_dir = bin_dir.clone();
    }
    if let Some(directory) = &options.directory {
        pair.directory = directory.clone();
    }
    if options.plaintext_platform {
        pair.platform = yibao_harness::PlatformMode::Plaintext;
    }
    pair.trace_files = options.trace_files;
    pair
}

/// One bureau's options: in `data`, seeding nobody, calling the peer `options` names, with its
/// certificate made by the CA in `options.certs` (or plaintext).
fn counterpart_options(
    options: &SpawnOptions,
    side: Side,
    data: &TempDir,
    admin_token: Option<&AdminToken>,
) -> CounterpartOptions {
    let peer = options.peer.clone().unwrap_or_default();
    let mut one = CounterpartOptions {
        data_dir: Some(data.path().to_path_buf()),
        persons: 0,
        admin_token: admin_token.cloned(),
        tls: if options.plaintext_platform {
            CounterpartTls::Plaintext
        } else {
            CounterpartTls::Development {
                dir: options.certs.clone(),
            }
        },
        ..CounterpartOptions::new(side, peer)
    };
    if let Some(bin_dir) = &options.bin_dir {
        one.bin_dir = bin_dir.clone();
    }
    if let Some(directory) = &options.directory {
        one.directory = directory.clone();
    }
    one
}
