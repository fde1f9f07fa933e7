//! `yibao up`: a local pair for trying things by hand. Starts `transfer-out` and `transfer-in`
//! from beside this executable on the fixed ports of `--out` and `--in` (bureau and admin APIs,
//! plaintext on loopback) and `--platform-out` / `--platform-in` (the bureau-to-bureau platform,
//! mutual TLS with development certificates made in the data directory, unless `--plaintext`),
//! with the admin API (requiring the token of `YIBAO_ADMIN_TOKEN` when that is set), test
//! clocks and Prometheus metrics (`--metrics-out` / `--metrics-in`, 9464 and 9465; `--no-metrics`)
//! on, waits until both are healthy, seeds a demo population, prints who to apply for and
//! where the certificates are, and runs until Ctrl-C (or SIGTERM), when it stops both gracefully.
//!
//! It starts the services with the harness's process code, so `up` and the tests run them the
//! same way; only the ports differ (fixed here, ephemeral in tests).

use std::ffi::OsString;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use yibao_domain::population::{Flow, SyntheticPerson};
use yibao_harness::population::persons_of_flow;
use yibao_harness::process::{LogFiles, ServiceProcess, ServiceSpec};
use yibao_harness::seed::seed_both;
use yibao_harness::tls::{Platform, development_certificates};
use yibao_harness::{Side, admin_client, default_bin_dir};

use crate::Outcome;
use crate::args::UpArgs;
use crate::commands::{apply_command, person_summary_json};
use crate::connect::{Endpoints, listen_address};
use crate::error::CliError;
use crate::output::{Output, aligned};

/// How long each service may take to become healthy.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long each service may take to stop after SIGTERM before it is killed.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(10);

/// Runs `yibao up` until interrupted.
pub async fn up(args: &UpArgs, endpoints: &Endpoints, output: Output) -> Result<Outcome, CliError> {
    let listen_out = listen_address(&endpoints.out)?;
    let listen_in = listen_address(&endpoints.inn)?;
    let metrics = [Side::Out, Side::In].map(|side| args.metrics(side));
    let fixed = [listen_out, listen_in, args.platform_out, args.platform_in];
    for address in fixed.into_iter().chain(metrics.into_iter().flatten()) {
        ensure_free(address)?;
    }
    let directory = find_directory(args.directory.as_deref())?;
    let bin_dir = default_bin_dir()?;
    let data_dir = prepare_data_dir(&args.data_dir)?;
    let (out_platform, in_platform) = if args.plaintext {
        (Platform::Plaintext, Platform::Plaintext)
    } else {
        let (out, inn) = development_certificates(&data_dir.join("certs"), &directory, &directory)?;
        (Platform::MutualTls(out), Platform::MutualTls(inn))
    };
    let peer_of =
        |platform: &Platform, address: SocketAddr| format!("{}://{address}", platform.scheme());
    let out_peer = peer_of(&out_platform, args.platform_in);
    let in_peer = peer_of(&in_platform, args.platform_out);

    let spec = |side: Side, listen: SocketAddr, peer: &str| ServiceSpec {
        service: side.service(),
        binary: yibao_harness::locate::binary_path(&bin_dir, side.service()),
        listen,
        data_dir: data_dir.join(side.service()),
        directory: directory.clone(),
        peer: peer.to_owned(),
        port_file: data_dir.join(format!("{}.port", side.service())),
        platform_listen: match side {
            Side::Out => args.platform_out,
            Side::In => args.platform_in,
        },
        platform_port_file: data_dir.join(format!("{}.platform.port", side.service())),
        platform: match side {
            Side::Out => out_platform.clone(),
            Side::In => in_platform.clone(),
        },
        logs: LogFiles::in_directory(&data_dir, side.service()),
        test_clock: true,
        admin_token: endpoints.admin_token.clone(),
        extra_env: bureau_env(args, &data_dir, side),
    };
    let out_spec = spec(Side::Out, listen_out, &out_peer);
    let in_spec = spec(Side::In, listen_in, &in_peer);
    let (out, inn) = tokio::join!(
        ServiceProcess::start(&out_spec, READY_TIMEOUT),
        ServiceProcess::start(&in_spec, READY_TIMEOUT),
    );
    let (out, inn) = (out?, inn?);

    let token = endpoints.admin_token.as_ref();
    let (mut admin_out, mut admin_in) = (
        admin_client(channel(&out)?, token),
        admin_client(channel(&inn)?, token),
    );
    seed_both(&mut admin_out, &mut admin_in, args.seed, args.persons).await?;
    let ready = Ready {
        args,
        endpoints,
        out: &out,
        inn: &inn,
        data_dir: &data_dir,
        platform: &out_platform,
    };
    print_ready(&ready, output);
    run_until_stopped(out, inn, output).await
}

/// The environment `up` gives `side`'s bureau: where its traces and metrics go.
fn bureau_env(args: &UpArgs, data_dir: &Path, side: Side) -> Vec<(OsString, OsString)> {
    [
        traces(args, data_dir, side),
        metrics_env(args.metrics(side)),
    ]
    .concat()
}

/// The environment that turns a service's metrics on at `address` (none: off).
fn metrics_env(address: Option<SocketAddr>) -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
    address
        .map(|address| ("YIBAO_METRICS_LISTEN".into(), address.to_string().into()))
        .into_iter()
        .collect()
}

/// The URL of a service's metrics, when it serves them.
fn metrics_url(service: &ServiceProcess) -> Option<String> {
    service
        .metrics_address()
        .map(|address| format!("http://{address}/metrics"))
}

/// Creates the data directory if needed; its absolute path.
/// Where `side` exports its traces, as `yibao up` was asked to (as environment variables:
/// the harness passes none of its own `YIBAO_*` on).
fn traces(args: &UpArgs, data_dir: &Path, side: Side) -> Vec<(OsString, OsString)> {
    let mut env = Vec::new();
    if let Some(endpoint) = &args.otlp_endpoint {
        env.push(("YIBAO_OTLP_ENDPOINT".into(), endpoint.into()));
    }
    if args.trace_files {
        let file = data_dir.join(format!("{}.traces.jsonl", side.service()));
        env.push(("YIBAO_TRACE_FILE".into(), file.into_os_string()));
    }
    env
}

pub(crate) fn prepare_data_dir(data_dir: &Path) -> Result<PathBuf, CliError> {
    std::fs::create_dir_all(data_dir).map_err(|error| {
        CliError::Failed(format!("cannot create {}: {error}", data_dir.display()))
    })?;
    std::path::absolute(data_dir).map_err(|error| {
        CliError::Failed(format!("cannot resolve {}: {error}", data_dir.display()))
    })
}

/// Waits for Ctrl-C, SIGTERM or either service exiting, then stops both; a service that exited
/// on its own is an error naming its logs.
async fn run_until_stopped(
    mut out: ServiceProcess,
    mut inn: ServiceProcess,
    output: Output,
) -> Result<Outcome, CliError> {
    let ended = tokio::select! {
        _ = tokio::signal::ctrl_c() => None,
        _ = terminate_signal() => None,
        status = out.exited() => Some((Side::Out, status)),
        status = inn.exited() => Some((Side::In, status)),
    };
    let (out_status, in_status) = tokio::join!(out.stop(STOP_GRACE), inn.stop(STOP_GRACE));
    let stopped = json!({
        "stopped": {
            "transfer_out": out_status.as_ref().map(ToString::to_string).ok(),
            "transfer_in": in_status.as_ref().map(ToString::to_string).ok(),
        }
    });
    match ended {
        None => {
            output.emit(&stopped, || "stopped both bureaus".to_owned());
            Ok(Outcome::Success)
        }
        Some((side, status)) => {
            let logs = match side {
                Side::Out => out.logs(),
                Side::In => inn.logs(),
            };
            let status = status
                .map(|s| s.to_string())
                .unwrap_or_else(|e| e.to_string());
            Err(CliError::Failed(format!(
                "{} exited unexpectedly ({status}); {logs}",
                side.service()
            )))
        }
    }
}

/// What `yibao up` started, to print.
struct Ready<'a> {
    args: &'a UpArgs,
    endpoints: &'a Endpoints,
    out: &'a ServiceProcess,
    inn: &'a ServiceProcess,
    data_dir: &'a Path,
    /// transfer-out's platform security (transfer-in's is alike).
    platform: &'a Platform,
}

/// Prints the endpoints, the platform's security, the logs and one sample person per flow
/// with the command to apply.
fn print_ready(ready: &Ready<'_>, output: Output) {
    let Ready {
        args,
        endpoints,
        out,
        inn,
        data_dir,
        platform,
    } = ready;
    let samples: Vec<_> = Flow::ALL
        .into_iter()
        .filter_map(|flow| persons_of_flow(args.seed, flow, 1, args.persons).ok())
        .flatten()
        .collect();
    let platform_text = match platform {
        Platform::MutualTls(paths) => format!(
            "mutual TLS on {} (out) and {} (in); CA {}, certificates and keys beside it",
            args.platform_out,
            args.platform_in,
            paths.ca.display()
        ),
        Platform::Plaintext => format!(
            "plaintext (--plaintext) on {} (out) and {} (in)",
            args.platform_out, args.platform_in
        ),
    };
    let value = ready_json(ready, &samples);
    output.emit(&value, || {
        let mut text = aligned(&[
            ("transfer-out", out.endpoint()),
            ("transfer-in", inn.endpoint()),
            ("platform", platform_text.clone()),
            ("admin", admin_text(endpoints).to_owned()),
            ("metrics", metrics_text(out, inn)),
            ("data", data_dir.display().to_string()),
            (
                "logs",
                format!(
                    "{} and {}",
                    out.logs().stdout.display(),
                    inn.logs().stdout.display()
                ),
            ),
            (
                "population",
                format!(
                    "seed {}, {} persons at each bureau",
                    args.seed, args.persons
                ),
            ),
        ]);
        text.push_str("\n\none person per flow (synthetic, so shown unmasked):");
        for someone in &samples {
            text.push_str(&format!(
                "\n  {}\n    {}",
                someone.flow.name(),
                apply_command(someone, endpoints)
            ));
        }
        text.push_str("\n\nfollow a transfer with `yibao watch ID`; Ctrl-C stops both bureaus");
        text
    });
}

/// What `yibao up` started, as JSON.
fn ready_json(ready: &Ready<'_>, samples: &[SyntheticPerson]) -> serde_json::Value {
    let Ready {
        args,
        endpoints,
        out,
        inn,
        data_dir,
        platform,
    } = ready;
    json!({
        "transfer_out": out.endpoint(),
        "transfer_in": inn.endpoint(),
        "platform": {
            "transfer_out": args.platform_out.to_string(),
            "transfer_in": args.platform_in.to_string(),
            "mutual_tls": matches!(platform, Platform::MutualTls(_)),
            "ca": match platform {
                Platform::MutualTls(paths) => Some(paths.ca.display().to_string()),
                Platform::Plaintext => None,
            },
        },
        "admin_token_required": endpoints.admin_token.is_some(),
        "metrics": {
            "transfer_out": metrics_url(out),
            "transfer_in": metrics_url(inn),
        },
        "data_dir": data_dir.display().to_string(),
        "logs": {
            "transfer_out": out.logs().stdout.display().to_string(),
            "transfer_in": inn.logs().stdout.display().to_string(),
        },
        "seed": args.seed,
        "persons": args.persons,
        "samples": samples
            .iter()
            .map(|someone| person_summary_json(someone, endpoints))
            .collect::<Vec<_>>(),
    })
}

/// Where the metrics are, in words.
fn metrics_text(out: &ServiceProcess, inn: &ServiceProcess) -> String {
    match (metrics_url(out), metrics_url(inn)) {
        (Some(out), Some(inn)) => format!("{out} (out) and {inn} (in); curl them"),
        _ => "off (--no-metrics)".to_owned(),
    }
}

/// Who the admin API answers.
fn admin_text(endpoints: &Endpoints) -> &'static str {
    match endpoints.admin_token {
        Some(_) => "any caller presenting the token of YIBAO_ADMIN_TOKEN",
        None => "loopback callers only (set YIBAO_ADMIN_TOKEN to require a token)",
    }
}

/// A channel to a started service.
pub(crate) fn channel(process: &ServiceProcess) -> Result<tonic::transport::Channel, CliError> {
    let endpoint = process.endpoint();
    tonic::transport::Endpoint::from_shared(endpoint.clone())
        .map(|endpoint| endpoint.connect_lazy())
        .map_err(|error| CliError::Connect {
            service: process.service(),
            endpoint,
            detail: error.to_string(),
        })
}

/// Fails clearly when a port is taken, before a service would fail on it less clearly.
pub(crate) fn ensure_free(address: SocketAddr) -> Result<(), CliError> {
    TcpListener::bind(address).map(drop).map_err(|error| {
        CliError::Failed(format!(
            "cannot listen on {address}: {error} (is another `yibao up` running?)"
        ))
    })
}

/// The region directory: `--directory`, else `deploy/regions.toml` under the current directory,
/// else `../../deploy/regions.toml` from the executable's directory (the repository, for a
/// binary in `target/<profile>`).
pub(crate) fn find_directory(given: Option<&Path>) -> Result<PathBuf, CliError> {
    if let Some(path) = given {
        return if path.is_file() {
            Ok(path.to_path_buf())
        } else {
            Err(CliError::Failed(format!(
                "region directory {} not found",
                path.display()
            )))
        };
    }
    let mut tried = vec![PathBuf::from("deploy").join("regions.toml")];
    if let Some(beside) = std::env::current_exe()
        .ok()
        .and_then(|executable| executable.parent().map(Path::to_path_buf))
    {
        tried.push(beside.join("../../deploy/regions.toml"));
    }
    for candidate in &tried {
        if candidate.is_file() {
            return Ok(candidate.clone());
        }
    }
    let tried: Vec<String> = tried
        .iter()
        .map(|path| path.display().to_string())
        .collect();
    Err(CliError::Failed(format!(
        "region directory not found (tried {}); pass --directory",
        tried.join(", ")
    )))
}

/// Resolves when the process receives SIGTERM; never on platforms without it.
pub(crate) async fn terminate_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut terminate) = signal(SignalKind::terminate()) {
            terminate.recv().await;
            return;
        }
    }
    std::future::pending::<()>().await;
}
