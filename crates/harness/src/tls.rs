//! The platform's mutual TLS for bureaus started here: a development CA and one certificate per
//! bureau, naming the regions its region directory gives it (`yibao_pki`'s convention),
//! written into a directory. `yibao up`, the tests, [`crate::Pair`] and [`crate::Counterpart`]
//! use the same functions.

use std::path::Path;

use yibao_runtime::clock::Clock;
use yibao_runtime::directory::{BureauRole, RegionDirectory};

use crate::error::HarnessError;
pub use crate::process::{Platform, TlsPaths};

/// The name (and file stem) of the certificate [`counterpart_certificates`] makes for the
/// user's own bureau: `peer.pem` and `peer.key`.
pub const PEER_CERTIFICATE_NAME: &str = "peer";

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
    let [out, inn] = certify(
        dir,
        [
            Certified {
                name: BureauRole::TransferOut.as_str(),
                role: BureauRole::TransferOut,
                directory: out_directory,
            },
            Certified {
                name: BureauRole::TransferIn.as_str(),
                role: BureauRole::TransferIn,
                directory: in_directory,
            },
        ],
    )?;
    Ok((out, inn))
}

/// Writes a development CA into `dir` (an existing CA there is reused), a certificate for
/// yibao's bureau of `role`, and one for the user's own bureau playing the other role,
/// [`PEER_CERTIFICATE_NAME`]`.pem` and `.key`, naming the regions `directory` gives that other
/// role; returns (yibao's files, the user's files). Both are valid for `localhost`,
/// `127.0.0.1` and `::1`.
///
/// # Errors
/// As [`development_certificates`].
pub fn counterpart_certificates(
    dir: &Path,
    role: BureauRole,
    directory: &Path,
) -> Result<(TlsPaths, TlsPaths), HarnessError> {
    let other = match role {
        BureauRole::TransferOut => BureauRole::TransferIn,
        BureauRole::TransferIn => BureauRole::TransferOut,
    };
    let [own, peer] = certify(
        dir,
        [
            Certified {
                name: role.as_str(),
                role,
                directory,
            },
            Certified {
                name: PEER_CERTIFICATE_NAME,
                role: other,
                directory,
            },
        ],
    )?;
    Ok((own, peer))
}

/// One bureau to certify: its name, its role, and the region directory saying what it hosts.
struct Certified<'a> {
    name: &'a str,
    role: BureauRole,
    directory: &'a Path,
}

/// Writes the CA (or reuses it) and a certificate for each bureau; returns each one's files.
fn certify<const N: usize>(
    dir: &Path,
    bureaus: [Certified<'_>; N],
) -> Result<[TlsPaths; N], HarnessError> {
    let bureaus = bureaus
        .iter()
        .map(pki_bureau)
        .collect::<Result<Vec<_>, _>>()?;
    write_set(dir, &bureaus)?
        .try_into()
        .map_err(|_| HarnessError::Io {
            context: "writing development certificates".to_owned(),
            source: std::io::Error::other("fewer certificates than bureaus"),
        })
}

/// Writes a development CA into `dir` (an existing CA there is reused) and a certificate for
/// every bureau `directory` names, each naming the regions listed under its name; returns each
/// bureau's name and files, in name order. For a topology of several bureaus (`yibao up
/// --topology`, [`crate::Topology`]).
///
/// # Errors
/// As [`development_certificates`].
pub fn bureau_certificates(
    dir: &Path,
    directory: &Path,
) -> Result<Vec<(String, TlsPaths)>, HarnessError> {
    let directory = read_directory(directory)?;
    let bureaus: Vec<yibao_pki::Bureau> = directory
        .bureaus()
        .iter()
        .map(|name| yibao_pki::Bureau {
            name: name.to_string(),
            regions: directory
                .hosted_by(name)
                .iter()
                .map(ToString::to_string)
                .collect(),
            hosts: Vec::new(),
        })
        .collect();
    let paths = write_set(dir, &bureaus)?;
    Ok(bureaus
        .into_iter()
        .map(|bureau| bureau.name)
        .zip(paths)
        .collect())
}

/// Writes the CA (or reuses it) and each bureau's certificate; each one's files, in order.
fn write_set(dir: &Path, bureaus: &[yibao_pki::Bureau]) -> Result<Vec<TlsPaths>, HarnessError> {
    let year = chrono::Datelike::year(&Clock::system().today());
    let set =
        yibao_pki::write_development_set(dir, bureaus, yibao_pki::Validity::years_from(year, 10))
            .map_err(|error| HarnessError::Io {
            context: format!("writing development certificates into {}", dir.display()),
            source: std::io::Error::other(error.to_string()),
        })?;
    Ok(set
        .bureaus
        .iter()
        .map(|files| TlsPaths {
            ca: set.ca_cert.clone(),
            cert: files.cert.clone(),
            key: files.key.clone(),
        })
        .collect())
}

/// The region directory at `path`, or the error naming it.
fn read_directory(path: &Path) -> Result<RegionDirectory, HarnessError> {
    RegionDirectory::load(path).map_err(|error| HarnessError::Io {
        context: format!("reading region directory {}", path.display()),
        source: std::io::Error::other(error.to_string()),
    })
}

/// The bureau as the pki crate certifies it: the regions its directory gives its role.
fn pki_bureau(bureau: &Certified<'_>) -> Result<yibao_pki::Bureau, HarnessError> {
    let directory = read_directory(bureau.directory)?;
    Ok(yibao_pki::Bureau {
        name: bureau.name.to_owned(),
        regions: directory
            .hosted_by(bureau.role)
            .iter()
            .map(ToString::to_string)
            .collect(),
        hosts: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::locate::default_directory;

    #[test]
    fn a_counterpart_and_its_peer_are_certified_for_the_two_roles_by_one_ca() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (own, peer) =
            counterpart_certificates(dir.path(), BureauRole::TransferOut, &default_directory())
                .expect("certificates");
        assert_eq!(own.ca, peer.ca);
        assert!(own.cert.ends_with("transfer-out.pem"));
        assert!(peer.cert.ends_with("peer.pem") && peer.key.ends_with("peer.key"));
        let regions = |path: &Path| {
            yibao_pki::regions_of_pem(&std::fs::read(path).expect("readable"))
                .expect("a certificate")
        };
        assert!(regions(&own.cert).contains(&"150100".to_owned()));
        assert!(regions(&peer.cert).contains(&"540100".to_owned()));
        assert!(!regions(&peer.cert).contains(&"150100".to_owned()));
    }
}
