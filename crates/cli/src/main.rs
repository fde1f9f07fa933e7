//! The `yibao` binary: parses the command line (a usage error exits 2, clap's convention) and
//! runs it; everything else lives in the library half of this crate.

use std::process::ExitCode;

use clap::Parser;
use yibao_cli::args::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    yibao_cli::run(Cli::parse()).await
}
