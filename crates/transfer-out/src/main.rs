//! The transfer-out bureau (转出地): the `yibao-bureau` service in the transfer-out role.

use clap::Parser;
use yibao_runtime::config::ServiceArgs;
use yibao_runtime::directory::BureauRole;

/// The transfer-out bureau service.
#[derive(Debug, Parser)]
#[command(name = "transfer-out", version, about)]
struct Cli {
    #[command(flatten)]
    args: ServiceArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    yibao_bureau::main_for(BureauRole::TransferOut, Cli::parse().args).await
}
