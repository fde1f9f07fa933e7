//! The platform's mutual TLS for a pair started here: a development CA and one certificate per
//! bureau, naming the regions its region directory gives it (`yibao_pki`'s convention), written
//! into the pair's data directory. `yibao up` and the tests use the same function.

use std::path::Path;

use yibao_runtime::clock::Clock;
use yibao_runtime::directory::{BureauRole, RegionDirectory};

use crate::error::HarnessError;
pub use crate::process::{Platform, TlsPaths};

/// Writes a development CA and a certificate for each of transfer-out and transfer-in into
/// `dir` (an existing CA there is reused), each naming the regions `out_directory` and
/// `in_directory` give its role; returns each bureau's files.
///
/// # Errors
/// If a directory cannot be read or a certificate cannot be made or written.
pub fn development_certificates(
    dir: &Path,
    out_directory: &Path,
    in_directory: &Path,
) -> Result<(TlsPaths, TlsPaths), HarnessError> {
    let bureau = |role: BureauRole, directory: &Path| -> Result<yibao_pki::Bureau, HarnessError> {
        let directory = RegionDirectory::load(directory).map_err(|error| HarnessError::Io {
            context: format!("reading region directory {}", directory.display()),
            source: std::io::Error::other(error.to_string()),
        })?;
        Ok(yibao_pki::Bureau {
            name: role.as_str().to_owned(),
            regions: directory
                .hosted_by(role)
                .iter()
                .map(ToString::to_string)
                .collect(),
            hosts: Vec::new(),
        })
    };
    let bureaus = [
        bureau(BureauRole::TransferOut, out_directory)?,
        bureau(BureauRole::TransferIn, in_directory)?,
    ];
    let year = chrono::Datelike::year(&Clock::system().today());
    let set =
        yibao_pki::write_development_set(dir, &bureaus, yibao_pki::Validity::years_from(year, 10))
            .map_err(|error| HarnessError::Io {
                context: format!("writing development certificates into {}", dir.display()),
                source: std::io::Error::other(error.to_string()),
            })?;
    let paths = |index: usize| {
        set.bureaus.get(index).map(|files| TlsPaths {
            ca: set.ca_cert.clone(),
            cert: files.cert.clone(),
            key: files.key.clone(),
        })
    };
    match (paths(0), paths(1)) {
        (Some(out), Some(inn)) => Ok((out, inn)),
        _ => Err(HarnessError::Io {
            context: "writing development certificates".to_owned(),
            source: std::io::Error::other("fewer certificates than bureaus"),
        }),
    }
}
