//! `yibao load` without the CLI: the same flags, for benchmarking this crate on its own
//! (`cargo run --release -p yibao-load --example load -- --spawn --baseline`). Exits 1 when the
//! ledger does not hold or a transfer failed, 2 when the run could not be carried out.

use clap::Parser;
use yibao_load::{LoadArgs, LoadOptions};

/// Load-test a bureau pair.
#[derive(Debug, Parser)]
#[command(name = "load")]
struct Cli {
    #[command(flatten)]
    load: LoadArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let progress = cli.load.progress();
    let options = match LoadOptions::try_from(cli.load) {
        Ok(options) => options,
        Err(error) => {
            eprintln!("load: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    match yibao_load::run(options, progress).await {
        Ok(report) => {
            report.print_summary();
            if report.ledger_holds() && report.errors_total() == 0 {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("load: {error}");
            std::process::ExitCode::from(2)
        }
    }
}
