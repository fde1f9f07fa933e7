//! `yibao up --topology FILE`: the bureaus of a topology file (`deploy/topology-3.toml`), each a
//! bureau binary with `--bureau NAME` on the ports the file gives it, every other bureau named
//! in its `--peers`, over the file's region directory. As `yibao up` does for the pair: mutual
//! TLS with a development certificate per bureau (unless `--plaintext`), admin API and test
//! clocks on, the demo population seeded at every bureau (each keeps the people of the regions
//! it hosts), the bureaus' ports printed, and all stopped gracefully on Ctrl-C or SIGTERM.

use std::path::Path;

use serde_json::json;
use yibao_harness::process::{LogFiles, ServiceProcess, ServiceSpec};
use yibao_harness::seed::seed_one;
use yibao_harness::tls::{Platform, bureau_certificates};
use yibao_harness::{admin_client, default_bin_dir, service_name};
use yibao_runtime::topology::{Topology, TopologyBureau};

use crate::Outcome;
use crate::args::UpArgs;
use crate::connect::Endpoints;
use crate::error::CliError;
use crate::output::{Output, aligned};
use crate::up::{
    READY_TIMEOUT, STOP_GRACE, channel, ensure_free, prepare_data_dir, terminate_signal,
};

/// The binary every bureau runs; its role only picks defaults, all of which are set here.
const BUREAU_BINARY: &str = "transfer-out";

/// Runs `yibao up --topology FILE` until interrupted.
pub async fn up(
    file: &Path,
    args: &UpArgs,
    endpoints: &Endpoints,
    output: Output,
) -> Result<Outcome, CliError> {
    let topology = Topology::load(file).map_err(|error| CliError::Failed(error.to_string()))?;
    for bureau in &topology.bureaus {
        ensure_free(bureau.listen)?;
        ensure_free(bureau.platform_listen)?;
    }
    let bin_dir = default_bin_dir()?;
    let data_dir = prepare_data_dir(&args.data_dir)?;
    let directory = std::path::absolute(&topology.directory_path).map_err(|error| {
        CliError::Failed(format!("{}: {error}", topology.directory_path.display()))
    })?;
    let certificates = if args.plaintext {
        Vec::new()
    } else {
        bureau_certificates(&data_dir.join("certs"), &directory)?
    };
    let scheme = if args.plaintext { "http" } else { "https" };
    let mut running: Vec<ServiceProcess> = Vec::with_capacity(topology.bureaus.len());
    for bureau in &topology.bureaus {
        let name = service_name(bureau.name.as_str());
        let platform = certificates
            .iter()
            .find(|(certified, _)| certified == name)
            .map_or(Platform::Plaintext, |(_, paths)| {
                Platform::MutualTls(paths.clone())
            });
        let peers: Vec<String> = topology
            .bureaus
            .iter()
            .filter(|other| other.name != bureau.name)
            .map(|other| format!("{}={scheme}://{}", other.name, other.platform_listen))
            .collect();
        let spec = ServiceSpec {
            service: name,
            binary: yibao_harness::locate::binary_path(&bin_dir, BUREAU_BINARY),
            listen: bureau.listen,
            data_dir: data_dir.join(name),
            directory: directory.clone(),
            // Every other bureau is in `peers`; the default peer serves a region no bureau hosts.
            peer: format!("{scheme}://{}", topology.bureaus[0].platform_listen),
            port_file: data_dir.join(format!("{name}.port")),
            platform_listen: bureau.platform_listen,
            platform_port_file: data_dir.join(format!("{name}.platform.port")),
            platform,
            logs: LogFiles::in_directory(&data_dir, name),
            test_clock: true,
            admin_token: endpoints.admin_token.clone(),
            extra_env: vec![
                ("YIBAO_BUREAU".into(), name.into()),
                ("YIBAO_PEERS".into(), peers.join(",").into()),
            ],
        };
        // Started one by one: each dials the others lazily, so the order does not matter.
        running.push(ServiceProcess::start(&spec, READY_TIMEOUT).await?);
    }
    for process in &running {
        let mut admin = admin_client(channel(process)?, endpoints.admin_token.as_ref());
        seed_one(process.service(), &mut admin, args.seed, args.persons).await?;
    }
    print_ready(&topology, &running, &data_dir, args, output);
    run_until_stopped(running, output).await
}

/// Prints each bureau: its endpoint, platform address, regions and log.
fn print_ready(
    topology: &Topology,
    running: &[ServiceProcess],
    data_dir: &Path,
    args: &UpArgs,
    output: Output,
) {
    let rows: Vec<(&TopologyBureau, &ServiceProcess, String)> = topology
        .bureaus
        .iter()
        .zip(running)
        .map(|(bureau, process)| {
            let regions: Vec<String> = topology
                .directory
                .hosted_by(&bureau.name)
                .iter()
                .map(ToString::to_string)
                .collect();
            (bureau, process, regions.join(" "))
        })
        .collect();
    let value = json!({
        "bureaus": rows.iter().map(|(bureau, process, regions)| json!({
            "name": bureau.name.as_str(),
            "endpoint": process.endpoint(),
            "platform": bureau.platform_listen.to_string(),
            "regions": regions.split(' ').collect::<Vec<_>>(),
            "log": process.logs().stdout.display().to_string(),
        })).collect::<Vec<_>>(),
        "mutual_tls": !args.plaintext,
        "data_dir": data_dir.display().to_string(),
        "seed": args.seed,
        "persons": args.persons,
    });
    output.emit(&value, || {
        let lines: Vec<(&str, String)> = rows
            .iter()
            .map(|(bureau, process, regions)| {
                (
                    bureau.name.as_str(),
                    format!(
                        "{} platform {} regions {regions}",
                        process.endpoint(),
                        bureau.platform_listen
                    ),
                )
            })
            .chain([("data", data_dir.display().to_string())])
            .collect();
        let mut text = aligned(&lines);
        text.push_str(
            "\n\nevery bureau plays both sides: apply where the person is going (or leaving) \
             with `yibao --in URL apply …` (or `--out URL`); Ctrl-C stops every bureau",
        );
        text
    });
}

/// Waits for Ctrl-C, SIGTERM or any bureau exiting, then stops them all; a bureau that exited
/// on its own is an error naming its logs.
async fn run_until_stopped(
    mut running: Vec<ServiceProcess>,
    output: Output,
) -> Result<Outcome, CliError> {
    // Checked every 200 ms: a bureau's exit is noticed within that, which is all `up` needs.
    let exited = async {
        let mut every = tokio::time::interval(std::time::Duration::from_millis(200));
        loop {
            every.tick().await;
            for (index, process) in running.iter_mut().enumerate() {
                match process.try_exit_status() {
                    Ok(None) => {}
                    Ok(Some(status)) => return (index, Ok(status)),
                    Err(error) => return (index, Err(error)),
                }
            }
        }
    };
    let ended = tokio::select! {
        _ = tokio::signal::ctrl_c() => None,
        _ = terminate_signal() => None,
        ended = exited => Some(ended),
    };
    let mut stopped = Vec::with_capacity(running.len());
    for process in &mut running {
        let status = process.stop(STOP_GRACE).await;
        stopped.push(json!({
            "bureau": process.service(),
            "status": status.as_ref().map(ToString::to_string).ok(),
        }));
    }
    match ended {
        None => {
            output.emit(&json!({ "stopped": stopped }), || {
                "stopped every bureau".to_owned()
            });
            Ok(Outcome::Success)
        }
        Some((index, status)) => {
            let process = &running[index];
            let status = status
                .map(|s| s.to_string())
                .unwrap_or_else(|e| e.to_string());
            Err(CliError::Failed(format!(
                "{} exited unexpectedly ({status}); {}",
                process.service(),
                process.logs()
            )))
        }
    }
}
