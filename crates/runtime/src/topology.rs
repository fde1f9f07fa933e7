//! A topology file: several bureaus over one region directory, each with its name and ports,
//! for `yibao up --topology FILE` (and anyone starting the bureaus by hand: each one is a
//! bureau binary with `--bureau NAME` and `--peers` naming the others).
//!
//! ```toml
//! directory = "regions-3.toml"   # relative to this file
//!
//! [[bureau]]
//! name = "north"                 # as the directory's `bureau` keys name it
//! listen = "127.0.0.1:50051"     # bureau and admin APIs
//! platform_listen = "127.0.0.1:50061"
//! ```
//!
//! Checked on load, each error naming the bureau and the key: the directory loads; every name is
//! a bureau name, listed once, and hosts a region of the directory; every bureau the directory
//! names is listed (a region of an unlisted bureau could be reached by nobody); no two
//! listeners share an address.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::directory::{BureauName, RegionDirectory, toml_error};

/// A topology, validated.
#[derive(Clone, Debug)]
pub struct Topology {
    /// The region directory every bureau reads, as a path usable from the working directory.
    pub directory_path: PathBuf,
    /// That directory, loaded.
    pub directory: RegionDirectory,
    /// The bureaus, in the file's order.
    pub bureaus: Vec<TopologyBureau>,
}

/// One bureau of a topology.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopologyBureau {
    /// Its name in the directory.
    pub name: BureauName,
    /// Its bureau and admin APIs' address.
    pub listen: SocketAddr,
    /// Its platform listener's address.
    pub platform_listen: SocketAddr,
}

/// Why a topology file was refused.
#[derive(Debug, thiserror::Error)]
#[error("topology {path}: {message}")]
pub struct TopologyError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong, naming the bureau and key.
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTopology {
    directory: PathBuf,
    #[serde(default)]
    bureau: Vec<RawBureau>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBureau {
    name: String,
    listen: SocketAddr,
    platform_listen: SocketAddr,
}

impl Topology {
    /// Reads and checks the topology file at `path` (and the directory it names).
    ///
    /// # Errors
    /// A [`TopologyError`] naming what is wrong (module docs).
    pub fn load(path: &Path) -> Result<Topology, TopologyError> {
        let fail = |message: String| TopologyError {
            path: path.to_owned(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        let raw: RawTopology = toml::from_str(&text).map_err(|e| fail(toml_error(&e)))?;
        let directory_path = path.parent().unwrap_or(Path::new(".")).join(&raw.directory);
        let directory = RegionDirectory::load(&directory_path)
            .map_err(|e| fail(format!("`directory`: {e}")))?;
        let bureaus = check_bureaus(&directory, raw.bureau).map_err(fail)?;
        Ok(Topology {
            directory_path,
            directory,
            bureaus,
        })
    }
}

/// The bureaus of a topology, checked against its directory and each other.
fn check_bureaus(
    directory: &RegionDirectory,
    raw: Vec<RawBureau>,
) -> Result<Vec<TopologyBureau>, String> {
    if raw.is_empty() {
        return Err("lists no [[bureau]]".to_owned());
    }
    let mut names = BTreeSet::new();
    let mut addresses = BTreeSet::new();
    let mut bureaus = Vec::with_capacity(raw.len());
    for bureau in raw {
        let name = BureauName::parse(&bureau.name).map_err(|e| format!("bureau `name`: {e}"))?;
        if !names.insert(name.clone()) {
            return Err(format!("bureau {name}: listed more than once"));
        }
        if directory.hosted_by(&name).is_empty() {
            return Err(format!(
                "bureau {name}: the directory lists no region under bureau = \"{name}\""
            ));
        }
        for (key, address) in [
            ("listen", bureau.listen),
            ("platform_listen", bureau.platform_listen),
        ] {
            if address.port() != 0 && !addresses.insert(address) {
                return Err(format!("bureau {name}: `{key}` {address} is taken already"));
            }
        }
        bureaus.push(TopologyBureau {
            name,
            listen: bureau.listen,
            platform_listen: bureau.platform_listen,
        });
    }
    if let Some(missing) = directory.bureaus().into_iter().find(|b| !names.contains(b)) {
        return Err(format!(
            "the directory names bureau {missing}, which is not listed: its regions would be \
             reached by nobody"
        ));
    }
    Ok(bureaus)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/topology-3.toml")
    }

    #[test]
    fn the_shipped_topology_has_three_bureaus_hosting_disjoint_regions() {
        let topology = Topology::load(&shipped()).expect("valid");
        assert_eq!(topology.bureaus.len(), 3);
        let mut seen = BTreeSet::new();
        for bureau in &topology.bureaus {
            let hosted = topology.directory.hosted_by(&bureau.name);
            assert!(!hosted.is_empty(), "{}", bureau.name);
            for code in hosted {
                assert!(seen.insert(code), "{code} hosted twice");
            }
        }
    }

    /// regions-3.toml is the pair's directory with the regions hosted three ways: every other
    /// fact of every region is the same.
    #[test]
    fn the_three_bureau_directory_is_the_pairs_split_three_ways() {
        let topology = Topology::load(&shipped()).expect("valid");
        let pair = RegionDirectory::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/regions.toml"),
        )
        .expect("valid");
        let unhosted = |directory: &RegionDirectory| -> Vec<crate::directory::RegionEntry> {
            directory
                .regions()
                .map(|entry| crate::directory::RegionEntry {
                    bureau: None,
                    ..entry.clone()
                })
                .collect()
        };
        assert_eq!(unhosted(&topology.directory), unhosted(&pair));
        let hosted = |directory: &RegionDirectory| {
            directory
                .regions()
                .filter(|entry| entry.bureau.is_some())
                .count()
        };
        assert_eq!(
            hosted(&topology.directory),
            hosted(&pair) + 1,
            "Chongqing too"
        );
    }

    fn refused(text: &str) -> String {
        let dir = tempfile::tempdir().expect("tempdir");
        let regions = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/regions.toml");
        let text = text.replace("REGIONS", &regions.display().to_string());
        let path = dir.path().join("topology.toml");
        std::fs::write(&path, text).expect("written");
        Topology::load(&path).expect_err("refused").message
    }

    #[test]
    fn a_topology_must_list_each_bureau_of_its_directory_once_on_ports_of_its_own() {
        let out = "[[bureau]]\nname = \"transfer-out\"\nlisten = \"127.0.0.1:1\"\n\
                   platform_listen = \"127.0.0.1:2\"\n";
        let inn = "[[bureau]]\nname = \"transfer-in\"\nlisten = \"127.0.0.1:3\"\n\
                   platform_listen = \"127.0.0.1:4\"\n";
        let head = "directory = \"REGIONS\"\n";
        let missing = refused(&format!("{head}{out}"));
        assert!(missing.contains("transfer-in"), "{missing}");
        let twice = refused(&format!("{head}{out}{out}{inn}"));
        assert!(twice.contains("more than once"), "{twice}");
        let clash = refused(&format!("{head}{out}{}", inn.replace(":3", ":1")));
        assert!(clash.contains("`listen` 127.0.0.1:1"), "{clash}");
        let stranger = refused(&format!(
            "{head}{out}{inn}{}",
            inn.replace("transfer-in", "east")
        ));
        assert!(stranger.contains("bureau east"), "{stranger}");
    }
}
