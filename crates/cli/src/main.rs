//! The `yibao` binary: parses the command line (a usage error exits 2, clap's convention) and
//! runs it; everything else lives in the library half of this crate.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    match yibao_cli::parse_from(std::env::args_os()) {
        Ok((cli, named)) => yibao_cli::run_named(cli, named).await,
        // Help and version print and exit 0; a usage error prints and exits 2.
        Err(error) => error.exit(),
    }
}
