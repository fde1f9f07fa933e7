//! A private bureau pair for `--spawn`: both service binaries as child processes on ephemeral
//! loopback ports with temporary data, the same environment contract as the test harness
//! (`YIBAO_LISTEN=127.0.0.1:0`, `YIBAO_PORT_FILE`, `YIBAO_PEER=file:…`, admin API and test
//! clock on). The pair is killed when dropped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::time::Instant;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::error::LoadError;
use crate::options::SpawnOptions;

/// How long a service may take to publish its port and answer SERVING.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How often start-up is checked.
const START_POLL: Duration = Duration::from_millis(20);
/// The environment variable naming the directory of the service binaries.
const BIN_DIR_ENV: &str = "YIBAO_BIN_DIR";

/// A running pair; both processes are killed when it is dropped.
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
    /// The children, killed on drop.
    children: Vec<Child>,
    /// The temporary data and logs, removed on drop.
    data: tempfile::TempDir,
}

impl SpawnedPair {
    /// Starts both services and waits until each answers SERVING.
    pub async fn start(options: &SpawnOptions) -> Result<SpawnedPair, LoadError> {
        let bin_dir = match &options.bin_dir {
            Some(dir) => dir.clone(),
            None => default_bin_dir()?,
        };
        let directory = options.directory.clone().unwrap_or_else(default_directory);
        if !directory.is_file() {
            return Err(LoadError::Spawn(format!(
                "region directory {} not found (give --directory)",
                directory.display()
            )));
        }
        let data = tempfile::Builder::new()
            .prefix("yibao-load-")
            .tempdir()
            .map_err(|e| LoadError::Spawn(format!("temporary directory: {e}")))?;
        let mut pair = SpawnedPair {
            out: String::new(),
            inn: String::new(),
            out_pid: None,
            in_pid: None,
            children: Vec::new(),
            data,
        };
        for (role, peer) in [("out", "in"), ("in", "out")] {
            let child = pair.start_one(&bin_dir, &directory, role, peer)?;
            if role == "out" {
                pair.out_pid = child.id();
            } else {
                pair.in_pid = child.id();
            }
            pair.children.push(child);
        }
        let root = pair.data.path().to_path_buf();
        pair.out = wait_until_serving(&root, "out", &mut pair.children).await?;
        pair.inn = wait_until_serving(&root, "in", &mut pair.children).await?;
        Ok(pair)
    }

    fn start_one(
        &self,
        bin_dir: &Path,
        directory: &Path,
        role: &str,
        peer: &str,
    ) -> Result<Child, LoadError> {
        let root = self.data.path();
        let binary = bin_dir.join(format!("transfer-{role}{}", std::env::consts::EXE_SUFFIX));
        let log = std::fs::File::create(root.join(format!("{role}.log")))
            .map_err(|e| LoadError::Spawn(format!("log file: {e}")))?;
        let log_too = log
            .try_clone()
            .map_err(|e| LoadError::Spawn(format!("log file: {e}")))?;
        Command::new(&binary)
            .env("YIBAO_LISTEN", "127.0.0.1:0")
            .env("YIBAO_DATA_DIR", root.join(role))
            .env("YIBAO_PORT_FILE", root.join(format!("{role}.port")))
            .env(
                "YIBAO_PEER",
                format!("file:{}", root.join(format!("{peer}.port")).display()),
            )
            .env("YIBAO_DIRECTORY", directory)
            .env("YIBAO_ADMIN", "true")
            .env("YIBAO_TEST_CLOCK", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_too))
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                LoadError::Spawn(format!(
                    "{}: {e} (build it with `cargo build --release --bins`, or give --bin-dir)",
                    binary.display()
                ))
            })
    }
}

impl SpawnedPair {
    /// Keeps the services' data and logs after the pair stops (for a run that failed), and
    /// says where they are.
    pub fn keep_data(&mut self) -> std::path::PathBuf {
        self.data.disable_cleanup(true);
        self.data.path().to_path_buf()
    }
}

impl Drop for SpawnedPair {
    fn drop(&mut self) {
        for child in &mut self.children {
            // Already exited is fine: the pair is going away either way.
            let _ = child.start_kill();
        }
    }
}

/// Waits for a service's port file, then for SERVING on `grpc.health.v1`.
async fn wait_until_serving(
    root: &Path,
    role: &str,
    children: &mut [Child],
) -> Result<String, LoadError> {
    let deadline = Instant::now() + START_TIMEOUT;
    let port_file = root.join(format!("{role}.port"));
    let endpoint = loop {
        if let Ok(text) = std::fs::read_to_string(&port_file)
            && !text.trim().is_empty()
        {
            break format!("http://{}", text.trim());
        }
        check_alive(children, root)?;
        if Instant::now() >= deadline {
            return Err(LoadError::Spawn(format!(
                "transfer-{role} did not publish its port within {START_TIMEOUT:?}; see {}",
                root.join(format!("{role}.log")).display()
            )));
        }
        tokio::time::sleep(START_POLL).await;
    };
    loop {
        if let Ok(channel) = tonic::transport::Endpoint::from_shared(endpoint.clone())
            .map_err(|e| LoadError::Spawn(e.to_string()))?
            .connect()
            .await
        {
            let answer = HealthClient::new(channel)
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await;
            if answer.is_ok_and(|a| a.get_ref().status == ServingStatus::Serving as i32) {
                return Ok(endpoint);
            }
        }
        check_alive(children, root)?;
        if Instant::now() >= deadline {
            return Err(LoadError::Spawn(format!(
                "transfer-{role} did not answer SERVING within {START_TIMEOUT:?}"
            )));
        }
        tokio::time::sleep(START_POLL).await;
    }
}

/// Fails when a child already exited, pointing at its log.
fn check_alive(children: &mut [Child], root: &Path) -> Result<(), LoadError> {
    for child in children.iter_mut() {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(LoadError::Spawn(format!(
                "a service exited during start-up ({status}); logs in {}",
                root.display()
            )));
        }
    }
    Ok(())
}

/// `YIBAO_BIN_DIR`, else `target/<profile>` worked out from the running executable (a test
/// executable lives in `target/<profile>/deps`, the `yibao` CLI in `target/<profile>`).
fn default_bin_dir() -> Result<PathBuf, LoadError> {
    if let Some(dir) = std::env::var_os(BIN_DIR_ENV)
        && !dir.is_empty()
    {
        return Ok(PathBuf::from(dir));
    }
    let executable = std::env::current_exe()
        .map_err(|e| LoadError::Spawn(format!("locating the running executable: {e}")))?;
    let directory = executable.parent().unwrap_or(Path::new("."));
    let nested = directory
        .file_name()
        .is_some_and(|name| name == "deps" || name == "examples");
    Ok(match directory.parent() {
        Some(profile) if nested => profile.to_path_buf(),
        _ => directory.to_path_buf(),
    })
}

/// The repository's `deploy/regions.toml` as seen from this crate's sources, else the one
/// under the current directory.
fn default_directory() -> PathBuf {
    let repository = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("..")
        .join("deploy")
        .join("regions.toml");
    if repository.is_file() {
        repository
    } else {
        PathBuf::from("deploy").join("regions.toml")
    }
}
