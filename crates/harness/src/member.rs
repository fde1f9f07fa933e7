//! What [`crate::Pair`] and [`crate::Counterpart`] share: one bureau process the harness owns
//! (how to start it again, the running process, its endpoint and one channel to it), the layout
//! of the data directory its files live in, and that directory's fate when the owner is dropped.
//!
//! Layout of a data directory, per service (`transfer-out` or `transfer-in`):
//! ```text
//! <root>/<service>/                 its data (YIBAO_DATA_DIR)
//! <root>/<service>.port             the address of its bureau and admin APIs, written by it
//! <root>/<service>.platform.port    the address of its platform listener, written by it
//! <root>/<service>.log              its output (stdout and stderr), appended across restarts
//! <root>/<service>.traces.jsonl     its finished spans, when trace files are asked for
//! <root>/certs/                     development certificates, when the harness makes them
//! ```

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use tempfile::TempDir;
use tonic::transport::Channel;
use yibao_proto::bureau::v1::bureau_service_client::BureauServiceClient;

use crate::HarnessError;
use crate::admin::AdminToken;
use crate::locate::binary_path;
use crate::process::{LogFiles, Platform, ServiceProcess, ServiceSpec, lazy_channel};
use crate::wait::Watched;

/// Set this environment variable (to anything but `0`) to keep a pair's (or a counterpart's)
/// temporary data directory and logs even when the test passes.
pub const KEEP_DATA_ENV: &str = "YIBAO_KEEP_DATA";

/// How long `stop` and `restart` wait for a graceful exit before killing.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// One bureau process the harness owns.
#[derive(Debug)]
pub(crate) struct Member {
    /// How to (re)start it.
    pub(crate) spec: ServiceSpec,
    /// The process; `None` after a kill or a stop.
    process: Option<ServiceProcess>,
    /// Its endpoint, kept after it stops so that error messages can name it.
    endpoint: String,
    /// One channel shared by every client of this bureau, replaced when it restarts.
    channel: Channel,
}

impl Member {
    /// Starts the service and waits until it is healthy.
    pub(crate) async fn start(
        spec: ServiceSpec,
        ready_timeout: Duration,
    ) -> Result<Member, HarnessError> {
        let process = ServiceProcess::start(&spec, ready_timeout).await?;
        Member::new(spec, process)
    }

    /// Wraps a started process.
    pub(crate) fn new(spec: ServiceSpec, process: ServiceProcess) -> Result<Member, HarnessError> {
        let endpoint = process.endpoint();
        let channel = lazy_channel(&endpoint)?;
        Ok(Member {
            spec,
            process: Some(process),
            endpoint,
            channel,
        })
    }

    /// `http://127.0.0.1:PORT`, as it was when the service last started.
    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The shared channel to the service.
    pub(crate) fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// A `BureauService` client of the service.
    pub(crate) fn bureau(&self) -> BureauServiceClient<Channel> {
        BureauServiceClient::new(self.channel())
    }

    /// What a wait for one of its transfers polls.
    pub(crate) fn watched(&self) -> Watched<'_> {
        Watched {
            client: self.bureau(),
            service: self.spec.service,
            logs: &self.spec.logs,
        }
    }

    /// The address of its platform listener, while it runs.
    pub(crate) fn platform_address(&self) -> Option<SocketAddr> {
        self.process
            .as_ref()
            .and_then(ServiceProcess::platform_address)
    }

    /// The address of the metrics listener, while it runs with metrics on.
    pub(crate) fn metrics_address(&self) -> Option<SocketAddr> {
        self.process
            .as_ref()
            .and_then(ServiceProcess::metrics_address)
    }

    /// Whether the process runs (started, and not killed, stopped or exited).
    pub(crate) fn is_running(&mut self) -> bool {
        self.process
            .as_mut()
            .is_some_and(|process| matches!(process.try_exit_status(), Ok(None)))
    }

    /// The process id, while it runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(ServiceProcess::pid)
    }

    /// Kills the process at once (SIGKILL) and reaps it.
    pub(crate) async fn kill(&mut self) -> Result<ExitStatus, HarnessError> {
        self.take_process()?.kill().await
    }

    /// Stops the process gracefully (SIGTERM), killing it after [`STOP_GRACE`].
    pub(crate) async fn stop(&mut self) -> Result<ExitStatus, HarnessError> {
        self.take_process()?.stop(STOP_GRACE).await
    }

    /// Starts the service again on the same data, stopping it gracefully first if it still
    /// runs, and waits until it is healthy; its endpoint and channel are the new ones.
    pub(crate) async fn restart(&mut self, ready_timeout: Duration) -> Result<(), HarnessError> {
        if let Some(mut running) = self.process.take() {
            running.stop(STOP_GRACE).await?;
        }
        let process = ServiceProcess::start(&self.spec, ready_timeout).await?;
        *self = Member::new(self.spec.clone(), process)?;
        Ok(())
    }

    /// Sends SIGKILL and waits up to a second, without an async context (for `Drop`).
    pub(crate) fn kill_blocking(&mut self) {
        let Some(process) = self.process.as_mut() else {
            return;
        };
        let _ = process.start_kill();
        for _ in 0..200 {
            if !matches!(process.try_exit_status(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn take_process(&mut self) -> Result<ServiceProcess, HarnessError> {
        self.process.take().ok_or(HarnessError::NotRunning {
            service: self.spec.service,
        })
    }
}

/// The directory every file of a pair or counterpart is under: one given by the test, or a
/// temporary one removed when its owner is dropped, unless a test panicked or
/// [`KEEP_DATA_ENV`] is set.
#[derive(Debug)]
pub(crate) struct DataRoot {
    /// The directory, absolute.
    pub(crate) path: PathBuf,
    /// The temporary directory behind `path`, when the harness made one.
    temporary: Option<TempDir>,
}

impl DataRoot {
    /// `data_dir` (created if needed), or a new temporary directory named `<prefix>…`.
    pub(crate) fn new(data_dir: Option<&Path>, prefix: &str) -> Result<DataRoot, HarnessError> {
        match data_dir {
            Some(root) => {
                std::fs::create_dir_all(root).map_err(HarnessError::io(format!(
                    "creating data directory {}",
                    root.display()
                )))?;
                Ok(DataRoot {
                    path: absolute(root)?,
                    temporary: None,
                })
            }
            None => {
                let temporary = tempfile::Builder::new()
                    .prefix(prefix)
                    .tempdir()
                    .map_err(HarnessError::io("creating a temporary data directory"))?;
                Ok(DataRoot {
                    path: temporary.path().to_path_buf(),
                    temporary: Some(temporary),
                })
            }
        }
    }

    /// Keeps the directory after its owner is dropped (the logs an error names stay readable).
    pub(crate) fn keep(&mut self) {
        if let Some(temporary) = self.temporary.take() {
            let _ = temporary.keep();
        }
    }

    /// In its owner's `Drop`, after the processes ended: keeps the directory and prints where
    /// it is, with the services' logs, when a test is panicking or [`KEEP_DATA_ENV`] is set.
    pub(crate) fn keep_when_asked(&mut self, members: &[&Member]) {
        let keep_requested =
            std::env::var_os(KEEP_DATA_ENV).is_some_and(|v| !v.is_empty() && v != "0");
        if !(std::thread::panicking() || keep_requested) {
            return;
        }
        self.keep();
        let mut text = format!(
            "yibao-harness: services' data kept in {}",
            self.path.display()
        );
        for member in members {
            text.push_str(&format!("\n  {} {}", member.spec.service, member.spec.logs));
        }
        eprintln!("{text}");
    }
}

/// What every service of one owner shares in its [`ServiceSpec`].
#[derive(Debug)]
pub(crate) struct Layout<'a> {
    /// The data directory.
    pub(crate) root: &'a Path,
    /// Where the binaries are.
    pub(crate) bin_dir: &'a Path,
    /// Whether the services run test clocks.
    pub(crate) test_clock: bool,
    /// The admin token they require, if any.
    pub(crate) admin_token: Option<&'a AdminToken>,
    /// Further environment variables, applied last.
    pub(crate) extra_env: &'a [(OsString, OsString)],
}

/// How one service of a pair or a counterpart starts.
#[derive(Debug)]
pub(crate) struct Service<'a> {
    /// `transfer-out` or `transfer-in` (its binary's name too).
    pub(crate) name: &'static str,
    /// Its region directory, absolute.
    pub(crate) directory: &'a Path,
    /// Its peer's platform endpoint (`YIBAO_PEER`).
    pub(crate) peer: String,
    /// How its platform hop is secured.
    pub(crate) platform: Platform,
    /// Its bureau and platform ports; 0 for ephemeral ones.
    pub(crate) ports: (u16, u16),
}

impl Layout<'_> {
    /// The spec of `service` under this layout.
    pub(crate) fn spec(&self, service: Service<'_>) -> ServiceSpec {
        let loopback = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        ServiceSpec {
            service: service.name,
            binary: binary_path(self.bin_dir, service.name),
            listen: loopback(service.ports.0),
            data_dir: self.root.join(service.name),
            directory: service.directory.to_path_buf(),
            peer: service.peer,
            port_file: self.root.join(format!("{}.port", service.name)),
            platform_listen: loopback(service.ports.1),
            platform_port_file: platform_port_file(self.root, service.name),
            platform: service.platform,
            logs: LogFiles::in_directory(self.root, service.name),
            test_clock: self.test_clock,
            admin_token: self.admin_token.cloned(),
            extra_env: self.extra_env.to_vec(),
        }
    }
}

/// Where `service` writes its platform listener's address under `root`.
pub(crate) fn platform_port_file(root: &Path, service: &str) -> PathBuf {
    root.join(format!("{service}.platform.port"))
}

/// Where `service` appends its finished spans under `root` (`YIBAO_TRACE_FILE`), when asked to.
pub(crate) fn trace_file(root: &Path, service: &str) -> PathBuf {
    root.join(format!("{service}.traces.jsonl"))
}

/// The path made absolute against the current directory, so that it means the same to a child.
pub(crate) fn absolute(path: &Path) -> Result<PathBuf, HarnessError> {
    std::path::absolute(path).map_err(HarnessError::io(format!(
        "making {} absolute",
        path.display()
    )))
}

/// The region directory `path`, absolute, or the error naming it when it is not a file.
pub(crate) fn region_directory(path: &Path) -> Result<PathBuf, HarnessError> {
    if !path.is_file() {
        return Err(HarnessError::DirectoryMissing {
            path: path.to_path_buf(),
        });
    }
    absolute(path)
}
