//! One bureau service as a child process: spawn it with its configuration in environment
//! variables, wait until it is listening and healthy, and end it gently or hard.
//!
//! The contract with the service binaries: configuration arrives in `YIBAO_*` variables; the
//! service writes the address it bound to `YIBAO_PORT_FILE` (write, then rename, so a reader
//! never sees half a file) once it listens; it serves `grpc.health.v1`, and answers SERVING for
//! the whole server (`""`) once it can take requests. The harness and the `yibao up` command
//! both start services through [`ServiceProcess::start`].

use std::ffi::OsString;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::HarnessError;
use crate::admin::{ADMIN_TOKEN_ENV, AdminToken};

/// How long to wait between two looks at a port file or two health checks.
const READY_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// The per-call deadline of one health check, so that a hung server does not hold up the poll.
const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_millis(500);

/// Where a service's standard output and standard error go: by default one file for both, so
/// its whole output reads in order wherever it logs. Files are opened for appending, so a
/// restarted service adds to what the previous run wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogFiles {
    /// The file that receives standard output.
    pub stdout: PathBuf,
    /// The file that receives standard error (may be the same file).
    pub stderr: PathBuf,
}

impl LogFiles {
    /// `<directory>/<service>.log`, for both streams.
    pub fn in_directory(directory: &Path, service: &str) -> LogFiles {
        let log = directory.join(format!("{service}.log"));
        LogFiles {
            stdout: log.clone(),
            stderr: log,
        }
    }
}

impl fmt::Display for LogFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.stdout == self.stderr {
            write!(f, "log: {}", self.stdout.display())
        } else {
            write!(
                f,
                "logs: {} and {}",
                self.stdout.display(),
                self.stderr.display()
            )
        }
    }
}

/// Everything needed to start one service. The service's admin API is always enabled
/// (`YIBAO_ADMIN=true`) and colour is off in its logs (`NO_COLOR=1`); `extra_env` is applied
/// last, so it can override any variable.
#[derive(Clone, Debug)]
pub struct ServiceSpec {
    /// The service's name, `transfer-out` or `transfer-in`, used in messages and log names.
    pub service: &'static str,
    /// The binary to run.
    pub binary: PathBuf,
    /// The address to listen on (`YIBAO_LISTEN`); port 0 picks a free port.
    pub listen: SocketAddr,
    /// The service's own data directory (`YIBAO_DATA_DIR`), created if missing.
    pub data_dir: PathBuf,
    /// The region directory file (`YIBAO_DIRECTORY`).
    pub directory: PathBuf,
    /// The peer's platform endpoint (`YIBAO_PEER`): `https://127.0.0.1:PORT` (`http://` in
    /// plaintext), or `file:<path>` for the peer's platform port file, which the service reads
    /// when it needs the peer, so that both can start on port 0.
    pub peer: String,
    /// Where the service writes the address it bound (`YIBAO_PORT_FILE`).
    pub port_file: PathBuf,
    /// The platform listener's address (`YIBAO_PLATFORM_LISTEN`); port 0 picks a free port.
    pub platform_listen: SocketAddr,
    /// Where the service writes its platform listener's address (`YIBAO_PLATFORM_PORT_FILE`),
    /// which its peer reads.
    pub platform_port_file: PathBuf,
    /// Mutual TLS on the platform, or plaintext.
    pub platform: Platform,
    /// Where its output goes.
    pub logs: LogFiles,
    /// Whether its clock is a test clock that `AdminService.AdvanceClock` moves
    /// (`YIBAO_TEST_CLOCK`).
    pub test_clock: bool,
    /// The admin token the service requires of every admin caller (`YIBAO_ADMIN_TOKEN`); none:
    /// its admin API answers loopback callers only.
    pub admin_token: Option<AdminToken>,
    /// Further variables for the service, for example `RUST_LOG`; applied last.
    pub extra_env: Vec<(OsString, OsString)>,
}

impl ServiceSpec {
    /// Where the service writes its metrics listener's address (`YIBAO_METRICS_PORT_FILE`,
    /// beside its port file): metrics are off unless `YIBAO_METRICS_LISTEN` is given in
    /// `extra_env`.
    pub fn metrics_port_file(&self) -> PathBuf {
        self.port_file.with_extension("metrics.port")
    }
}

/// The three files a bureau needs for mutual TLS on the platform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsPaths {
    /// The platform CA's certificate (`YIBAO_TLS_CA`).
    pub ca: PathBuf,
    /// The bureau's certificate (`YIBAO_TLS_CERT`).
    pub cert: PathBuf,
    /// The bureau's key (`YIBAO_TLS_KEY`).
    pub key: PathBuf,
}

/// How a bureau's platform listener and its calls to the peer are secured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Platform {
    /// Mutual TLS with these files (the default, as in production).
    MutualTls(TlsPaths),
    /// Plaintext (`YIBAO_PLAINTEXT=true`), the explicit opt-out.
    Plaintext,
}

impl Platform {
    /// The URL scheme of a peer reached this way.
    #[must_use]
    pub fn scheme(&self) -> &'static str {
        match self {
            Platform::MutualTls(_) => "https",
            Platform::Plaintext => "http",
        }
    }
}

/// The `YIBAO_PEER` value that tells a service to read its peer's address from a port file.
pub fn peer_from_port_file(port_file: &Path) -> String {
    format!("file:{}", port_file.display())
}

/// A running (or exited) service process. Dropping it kills the process.
#[derive(Debug)]
pub struct ServiceProcess {
    /// `transfer-out` or `transfer-in`.
    service: &'static str,
    /// The child; `kill_on_drop` is set, so no service outlives its owner.
    child: Child,
    /// The address the service reported in its port file.
    address: SocketAddr,
    /// The address its platform listener reported (read once it was ready; the service writes
    /// both files before it serves).
    platform_address: Option<SocketAddr>,
    /// The address its metrics listener reported, when metrics are on.
    metrics_address: Option<SocketAddr>,
    /// Where its output goes.
    logs: LogFiles,
}

impl ServiceProcess {
    /// Starts the service and waits, up to `ready_timeout`, until it has written its port file
    /// and answers SERVING to a health check. A stale port file is removed first, so the address
    /// read is always the new one. On failure the process is killed and the error names the log
    /// files.
    pub async fn start(
        spec: &ServiceSpec,
        ready_timeout: Duration,
    ) -> Result<ServiceProcess, HarnessError> {
        if !spec.binary.is_file() {
            return Err(HarnessError::BinaryMissing {
                binary: spec.binary.clone(),
            });
        }
        prepare_files(spec)?;
        let mut child = spawn(spec)?;
        match wait_until_ready(spec, &mut child, ready_timeout).await {
            Ok(address) => {
                let platform_address = read_port_file(&spec.platform_port_file).await;
                let metrics_address = read_port_file(&spec.metrics_port_file()).await;
                tracing::info!(
                    service = spec.service,
                    %address,
                    pid = child.id(),
                    "service ready"
                );
                Ok(ServiceProcess {
                    service: spec.service,
                    child,
                    address,
                    platform_address,
                    metrics_address,
                    logs: spec.logs.clone(),
                })
            }
            Err(error) => {
                // Reap the child so that nothing is left behind; the error is what matters.
                if matches!(child.try_wait(), Ok(None)) {
                    let _ = child.start_kill();
                    let _ = child.wait().await;
                }
                Err(error)
            }
        }
    }

    /// The service's name.
    pub fn service(&self) -> &'static str {
        self.service
    }

    /// The address the service listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The service's endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The address of its platform listener, if it reported one.
    pub fn platform_address(&self) -> Option<SocketAddr> {
        self.platform_address
    }

    /// The address of its metrics listener (`GET /metrics`), if metrics are on.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics_address
    }

    /// Where its output goes.
    pub fn logs(&self) -> &LogFiles {
        &self.logs
    }

    /// The process id while the process has not been reaped.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The exit status if the process has exited, without waiting.
    pub fn try_exit_status(&mut self) -> Result<Option<ExitStatus>, HarnessError> {
        self.child
            .try_wait()
            .map_err(HarnessError::io(format!("checking on {}", self.service)))
    }

    /// Waits until the process exits, however that happens. Cancel-safe, so it can sit in a
    /// `tokio::select!`.
    pub async fn exited(&mut self) -> Result<ExitStatus, HarnessError> {
        self.child
            .wait()
            .await
            .map_err(HarnessError::io(format!("waiting for {}", self.service)))
    }

    /// Sends SIGKILL without waiting for the process to exit; nothing happens if it already
    /// exited.
    pub fn start_kill(&mut self) -> Result<(), HarnessError> {
        if self.try_exit_status()?.is_some() {
            return Ok(());
        }
        self.child
            .start_kill()
            .map_err(HarnessError::io(format!("killing {}", self.service)))
    }

    /// Kills the process at once (SIGKILL) and reaps it: a crash, as far as the service can
    /// tell. Killing an exited process returns its status.
    pub async fn kill(&mut self) -> Result<ExitStatus, HarnessError> {
        self.start_kill()?;
        let status = self.exited().await?;
        tracing::info!(service = self.service, %status, "service killed");
        Ok(status)
    }

    /// Asks the process to shut down (SIGTERM, sent with the `kill` command) and waits up to
    /// `grace` for it to exit; kills it if it does not.
    pub async fn stop(&mut self, grace: Duration) -> Result<ExitStatus, HarnessError> {
        if let Some(status) = self.try_exit_status()? {
            return Ok(status);
        }
        let Some(pid) = self.child.id() else {
            return self.exited().await;
        };
        let signalled = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
        if !signalled.is_ok_and(|status| status.success()) {
            tracing::warn!(
                service = self.service,
                "could not send SIGTERM; killing instead"
            );
            return self.kill().await;
        }
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(waited) => {
                let status =
                    waited.map_err(HarnessError::io(format!("waiting for {}", self.service)))?;
                tracing::info!(service = self.service, %status, "service stopped");
                Ok(status)
            }
            Err(_elapsed) => {
                tracing::warn!(
                    service = self.service,
                    grace_ms = grace.as_millis(),
                    "service did not stop in time; killing it"
                );
                self.kill().await
            }
        }
    }
}

/// Creates the directories the service needs and removes a port file left by an earlier run.
fn prepare_files(spec: &ServiceSpec) -> Result<(), HarnessError> {
    let mut directories = vec![spec.data_dir.as_path()];
    directories.extend(
        [&spec.port_file, &spec.logs.stdout, &spec.logs.stderr]
            .into_iter()
            .filter_map(|path| path.parent()),
    );
    for directory in directories {
        std::fs::create_dir_all(directory).map_err(HarnessError::io(format!(
            "creating directory {}",
            directory.display()
        )))?;
    }
    for port_file in [
        &spec.port_file,
        &spec.platform_port_file,
        &spec.metrics_port_file(),
    ] {
        match std::fs::remove_file(port_file) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                return Err(HarnessError::Io {
                    context: format!("removing stale port file {}", port_file.display()),
                    source: error,
                });
            }
            _ => {}
        }
    }
    Ok(())
}

/// Spawns the binary with its configuration. `YIBAO_*` variables of the harness's own
/// environment are not passed on, so a developer's shell cannot change what a test runs.
fn spawn(spec: &ServiceSpec) -> Result<Child, HarnessError> {
    let mut command = Command::new(&spec.binary);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("YIBAO_") {
            command.env_remove(&name);
        }
    }
    match &spec.platform {
        Platform::MutualTls(paths) => {
            command
                .env("YIBAO_TLS_CA", &paths.ca)
                .env("YIBAO_TLS_CERT", &paths.cert)
                .env("YIBAO_TLS_KEY", &paths.key);
        }
        Platform::Plaintext => {
            command.env("YIBAO_PLAINTEXT", "true");
        }
    }
    if let Some(token) = &spec.admin_token {
        command.env(ADMIN_TOKEN_ENV, token.expose());
    }
    command
        .env("YIBAO_LISTEN", spec.listen.to_string())
        .env("YIBAO_DATA_DIR", &spec.data_dir)
        .env("YIBAO_DIRECTORY", &spec.directory)
        .env("YIBAO_PEER", &spec.peer)
        .env("YIBAO_PORT_FILE", &spec.port_file)
        .env("YIBAO_PLATFORM_LISTEN", spec.platform_listen.to_string())
        .env("YIBAO_PLATFORM_PORT_FILE", &spec.platform_port_file)
        .env("YIBAO_METRICS_PORT_FILE", spec.metrics_port_file())
        .env("YIBAO_ADMIN", "true")
        .env(
            "YIBAO_TEST_CLOCK",
            if spec.test_clock { "true" } else { "false" },
        )
        // Log files are read with less and grep, not a terminal: no colour codes (honoured by
        // tracing-subscriber).
        .env("NO_COLOR", "1")
        .envs(spec.extra_env.iter().map(|(name, value)| (name, value)))
        .stdin(Stdio::null())
        .stdout(append(&spec.logs.stdout)?)
        .stderr(append(&spec.logs.stderr)?)
        .kill_on_drop(true);
    command.spawn().map_err(HarnessError::io(format!(
        "starting {}",
        spec.binary.display()
    )))
}

/// Opens a log file for appending, creating it if needed.
fn append(path: &Path) -> Result<File, HarnessError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(HarnessError::io(format!(
            "opening log file {}",
            path.display()
        )))
}

/// Polls until the port file names an address and the service answers SERVING there.
async fn wait_until_ready(
    spec: &ServiceSpec,
    child: &mut Child,
    ready_timeout: Duration,
) -> Result<SocketAddr, HarnessError> {
    let started = Instant::now();
    let mut address = None;
    let mut health: Option<HealthClient<Channel>> = None;
    let mut reason = format!("no address in {} yet", spec.port_file.display());
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(HarnessError::io(format!("checking on {}", spec.service)))?
        {
            return Err(HarnessError::ExitedEarly {
                service: spec.service,
                status,
                logs: spec.logs.clone(),
            });
        }
        match (address, health.as_mut()) {
            (None, _) => {
                if let Some(found) = read_port_file(&spec.port_file).await {
                    address = Some(found);
                    health = Some(HealthClient::new(lazy_channel(&format!("http://{found}"))?));
                    reason = format!("{found} not answering SERVING yet");
                    continue;
                }
            }
            (Some(found), Some(client)) => match check_health(client).await {
                Ok(()) => return Ok(found),
                Err(why) => reason = format!("{found}: {why}"),
            },
            (Some(_), None) => {}
        }
        if started.elapsed() >= ready_timeout {
            return Err(HarnessError::NotReady {
                service: spec.service,
                waited: ready_timeout,
                reason,
                logs: spec.logs.clone(),
            });
        }
        tokio::time::sleep(READY_POLL_INTERVAL).await;
    }
}

/// The address in a port file, once the file exists and parses.
async fn read_port_file(path: &Path) -> Option<SocketAddr> {
    let text = tokio::fs::read_to_string(path).await.ok()?;
    text.trim().parse().ok()
}

/// Whether the service at `endpoint` (`http://host:port`) answers its gRPC health check
/// SERVING: `Ok`, or why not (unreachable, NOT_SERVING while its store cannot commit, …). For
/// `yibao health`, a container's health check.
///
/// # Errors
/// When the endpoint does not parse, or the service is not serving; the message says why.
pub async fn health(endpoint: &str) -> Result<(), String> {
    let mut client = HealthClient::new(lazy_channel(endpoint).map_err(|error| error.to_string())?);
    check_health(&mut client).await
}

/// One health check of the whole server.
async fn check_health(client: &mut HealthClient<Channel>) -> Result<(), String> {
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    request.set_timeout(HEALTH_CHECK_TIMEOUT);
    match client.check(request).await {
        Ok(response) if response.get_ref().status == ServingStatus::Serving as i32 => Ok(()),
        Ok(response) => Err(format!(
            "health status {}",
            ServingStatus::try_from(response.get_ref().status)
                .map(|status| status.as_str_name())
                .unwrap_or("unknown")
        )),
        Err(status) => Err(format!(
            "health check answered {}",
            crate::code_name(status.code())
        )),
    }
}

/// A channel to `endpoint` that connects on first use and reconnects after failures.
pub(crate) fn lazy_channel(endpoint: &str) -> Result<Channel, HarnessError> {
    Endpoint::from_shared(endpoint.to_owned())
        .map(|endpoint| {
            endpoint
                .connect_timeout(Duration::from_secs(2))
                .connect_lazy()
        })
        .map_err(|source| HarnessError::Connect {
            endpoint: endpoint.to_owned(),
            source,
        })
}

/// A lazy channel to a platform listener at `address`, presenting `client`'s identity over
/// mutual TLS (trusting its CA), or plaintext.
///
/// # Errors
/// If a TLS file cannot be read or the endpoint is unusable.
pub fn platform_channel(address: SocketAddr, client: &Platform) -> Result<Channel, HarnessError> {
    let endpoint = format!("{}://{address}", client.scheme());
    let connect_error = |source| HarnessError::Connect {
        endpoint: endpoint.clone(),
        source,
    };
    let mut builder = Endpoint::from_shared(endpoint.clone()).map_err(connect_error)?;
    if let Platform::MutualTls(paths) = client {
        let read = |path: &Path| {
            std::fs::read(path).map_err(HarnessError::io(format!("reading {}", path.display())))
        };
        let tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(read(&paths.ca)?))
            .identity(tonic::transport::Identity::from_pem(
                read(&paths.cert)?,
                read(&paths.key)?,
            ));
        builder = builder.tls_config(tls).map_err(connect_error)?;
    }
    Ok(builder
        .connect_timeout(Duration::from_secs(2))
        .connect_lazy())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_files_are_named_after_the_service() {
        let logs = LogFiles::in_directory(Path::new("/data"), "transfer-in");
        assert_eq!(logs.stdout, PathBuf::from("/data/transfer-in.log"));
        assert_eq!(logs.stderr, logs.stdout);
        assert_eq!(logs.to_string(), "log: /data/transfer-in.log");
    }

    #[test]
    fn a_peer_read_from_a_port_file_is_a_file_endpoint() {
        assert_eq!(
            peer_from_port_file(Path::new("/data/transfer-in.port")),
            "file:/data/transfer-in.port"
        );
    }

    #[tokio::test]
    async fn a_missing_binary_is_reported_with_its_path() {
        let directory = tempfile::tempdir().expect("tempdir");
        let spec = ServiceSpec {
            service: "transfer-out",
            binary: directory.path().join("no-such-binary"),
            listen: "127.0.0.1:0".parse().expect("address"),
            data_dir: directory.path().join("out"),
            directory: directory.path().join("regions.toml"),
            peer: "http://127.0.0.1:1".to_owned(),
            port_file: directory.path().join("out.port"),
            platform_listen: "127.0.0.1:0".parse().expect("address"),
            platform_port_file: directory.path().join("out.platform.port"),
            platform: Platform::Plaintext,
            logs: LogFiles::in_directory(directory.path(), "transfer-out"),
            test_clock: true,
            admin_token: None,
            extra_env: Vec::new(),
        };
        let error = ServiceProcess::start(&spec, Duration::from_secs(1))
            .await
            .expect_err("no binary");
        assert!(
            matches!(error, HarnessError::BinaryMissing { .. }),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_process_that_exits_at_once_is_reported_with_its_logs() {
        let directory = tempfile::tempdir().expect("tempdir");
        let spec = ServiceSpec {
            service: "transfer-out",
            binary: PathBuf::from("/bin/false"),
            listen: "127.0.0.1:0".parse().expect("address"),
            data_dir: directory.path().join("out"),
            directory: directory.path().join("regions.toml"),
            peer: "http://127.0.0.1:1".to_owned(),
            port_file: directory.path().join("out.port"),
            platform_listen: "127.0.0.1:0".parse().expect("address"),
            platform_port_file: directory.path().join("out.platform.port"),
            platform: Platform::Plaintext,
            logs: LogFiles::in_directory(directory.path(), "transfer-out"),
            test_clock: true,
            admin_token: None,
            extra_env: Vec::new(),
        };
        if !spec.binary.is_file() {
            return; // not a Unix-like machine; nothing to run
        }
        let error = ServiceProcess::start(&spec, Duration::from_secs(5))
            .await
            .expect_err("exits at once");
        assert!(matches!(error, HarnessError::ExitedEarly { .. }), "{error}");
        assert!(error.to_string().contains("transfer-out.log"));
    }
}
