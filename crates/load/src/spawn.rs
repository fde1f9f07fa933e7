//! A private bureau pair for `--spawn`, started with the workspace's test harness
//! (`yibao-harness`): both service binaries as child processes on ephemeral loopback ports, with
//! the admin API and test clocks on, in a temporary directory this run owns. The processes are
//! killed and the directory removed when the pair is dropped, unless the run asked to keep them.

use tempfile::TempDir;
use yibao_harness::{AdminToken, Pair, PairOptions, Side};

use crate::error::LoadError;
use crate::options::SpawnOptions;

/// A running pair.
#[derive(Debug)]
pub struct SpawnedPair {
    /// The transfer-out bureau's endpoint.
    pub out: String,
    /// The transfer-in bureau's endpoint.
    pub inn: String,
    /// The transfer-out process id, for CPU and memory readings.
    pub out_pid: Option<u32>,
    /// The transfer-in process id.
    pub in_pid: Option<u32>,
    /// The processes, killed on drop. Declared before `data` so they end before their
    /// directory goes.
    _pair: Pair,
    /// The services' data and logs.
    data: TempDir,
}

impl SpawnedPair {
    /// Starts both services and waits until each answers SERVING; seeds nobody (the run seeds
    /// with its own progress bar). With `admin_token`, both require it of admin callers.
    pub async fn start(
        options: &SpawnOptions,
        admin_token: Option<&AdminToken>,
    ) -> Result<SpawnedPair, LoadError> {
        let data = tempfile::Builder::new()
            .prefix("yibao-load-")
            .tempdir()
            .map_err(|e| LoadError::Spawn(format!("temporary directory: {e}")))?;
        let mut pair_options = PairOptions {
            data_dir: Some(data.path().to_path_buf()),
            persons: 0,
            admin_token: admin_token.cloned(),
            ..PairOptions::default()
        };
        if let Some(bin_dir) = &options.bin_dir {
            pair_options.bin_dir = bin_dir.clone();
        }
        if let Some(directory) = &options.directory {
            pair_options.directory = directory.clone();
        }
        if options.plaintext_platform {
            pair_options.platform = yibao_harness::PlatformMode::Plaintext;
        }
        let pair = Pair::start(pair_options).await.map_err(|error| {
            LoadError::Spawn(format!(
                "{error} (build the services with `cargo build --release --bins`, or give \
                 --bin-dir)"
            ))
        })?;
        Ok(SpawnedPair {
            out: pair.out_endpoint().to_owned(),
            inn: pair.in_endpoint().to_owned(),
            out_pid: pair.pid(Side::Out),
            in_pid: pair.pid(Side::In),
            _pair: pair,
            data,
        })
    }

    /// Keeps the services' data and logs after the pair stops (for a run that failed), and
    /// says where they are.
    pub fn keep_data(&mut self) -> std::path::PathBuf {
        self.data.disable_cleanup(true);
        self.data.path().to_path_buf()
    }
}
