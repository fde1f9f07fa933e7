//! The transfer-in bureau (转入地): the `yibao-bureau` service in the transfer-in role.

use clap::Parser;
use yibao_runtime::config::ServiceArgs;
use yibao_runtime::directory::BureauRole;

/// The transfer-in bureau service.
#[derive(Debug, Parser)]
#[command(name = "transfer-in", version, about)]
struct Cli {
    #[command(flatten)]
    args: ServiceArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    yibao_bureau::main_for(BureauRole::TransferIn, Cli::parse().args).await
}
