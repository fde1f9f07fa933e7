//! `yibao certs --out DIR`: the platform's development certificates. A CA (`ca.pem`, `ca.key`)
//! and, for each bureau, `NAME.pem` and `NAME.key`, its certificate naming the regions it hosts
//! as `urn:yibao:region:<code>` (the convention in `yibao_pki`). Without `--bureau`, every
//! bureau the region directory names is certified (the default pair's two, or each bureau of a
//! topology's directory); with it, the named ones (a team's own
//! bureau, say), by the CA already in DIR when there is one.

use std::path::Path;

use serde_json::json;
use yibao_harness::tls::bureau_certificates;

use crate::Outcome;
use crate::args::CertsArgs;
use crate::error::CliError;
use crate::output::{Output, aligned};

/// Parses `yibao certs`'s own flags (a usage error prints and exits 2) and runs it.
pub fn run(args: &[String], output: Output) -> Result<Outcome, CliError> {
    let parsed = match <CertsArgs as clap::Parser>::try_parse_from(
        std::iter::once("yibao certs".to_owned()).chain(args.iter().cloned()),
    ) {
        Ok(parsed) => parsed,
        Err(error) => error.exit(),
    };
    certs(&parsed, output)
}

/// Runs `yibao certs`.
pub fn certs(args: &CertsArgs, output: Output) -> Result<Outcome, CliError> {
    let written = if args.bureau.is_empty() && args.host.is_empty() {
        let directory = crate::up::find_directory(args.directory.as_deref())?;
        bureau_certificates(&args.out, &directory)?
            .into_iter()
            .map(|(name, paths)| (name, paths.cert, paths.key))
            .collect()
    } else {
        certify_named(args)?
    };
    let ca = args.out.join(yibao_pki::CA_CERT_FILE);
    let value = json!({
        "ca": ca.display().to_string(),
        "bureaus": written.iter().map(|(name, cert, key)| json!({
            "name": name,
            "cert": cert.display().to_string(),
            "key": key.display().to_string(),
        })).collect::<Vec<_>>(),
    });
    output.emit(&value, || {
        let mut rows = vec![("ca".to_owned(), ca.display().to_string())];
        for (name, cert, key) in &written {
            rows.push((
                name.clone(),
                format!("{} {}", cert.display(), key.display()),
            ));
        }
        let rows: Vec<(&str, String)> = rows
            .iter()
            .map(|(name, files)| (name.as_str(), files.clone()))
            .collect();
        aligned(&rows)
    });
    Ok(Outcome::Success)
}

/// Certifies the bureaus named by `--bureau NAME=CODES` (or, with only `--host`, the
/// directory's two bureaus valid for those hosts too).
fn certify_named(
    args: &CertsArgs,
) -> Result<Vec<(String, std::path::PathBuf, std::path::PathBuf)>, CliError> {
    let mut bureaus = args
        .bureau
        .iter()
        .map(|spec| parse_bureau(spec, &args.host))
        .collect::<Result<Vec<_>, _>>()?;
    if bureaus.is_empty() {
        let directory = crate::up::find_directory(args.directory.as_deref())?;
        bureaus = directory_bureaus(&directory, &args.host)?;
    }
    let year = chrono::Datelike::year(&yibao_runtime::clock::Clock::system().today());
    let set = yibao_pki::write_development_set(
        &args.out,
        &bureaus,
        yibao_pki::Validity::years_from(year, 10),
    )
    .map_err(|error| CliError::Failed(error.to_string()))?;
    Ok(set
        .bureaus
        .into_iter()
        .map(|files| (files.name, files.cert, files.key))
        .collect())
}

/// `NAME=CODE[,CODE...]`.
fn parse_bureau(spec: &str, hosts: &[String]) -> Result<yibao_pki::Bureau, CliError> {
    let usage = || {
        CliError::Failed(format!(
            "--bureau {spec:?}: expected NAME=CODE[,CODE...], e.g. my-bureau=540100"
        ))
    };
    let (name, codes) = spec.split_once('=').ok_or_else(usage)?;
    let valid_name = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid_name {
        return Err(CliError::Failed(format!(
            "--bureau {spec:?}: the name may hold letters, digits, '-' and '_' only"
        )));
    }
    let regions = codes
        .split(',')
        .map(|code| {
            yibao_domain::region::RegionCode::parse(code.trim())
                .map(|code| code.to_string())
                .map_err(|error| CliError::Failed(format!("--bureau {spec:?}: {error}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(yibao_pki::Bureau {
        name: name.to_owned(),
        regions,
        hosts: hosts.to_vec(),
    })
}

/// Every bureau the directory names, valid for `hosts` too.
fn directory_bureaus(
    directory: &Path,
    hosts: &[String],
) -> Result<Vec<yibao_pki::Bureau>, CliError> {
    let directory = yibao_runtime::directory::RegionDirectory::load(directory)
        .map_err(|error| CliError::Failed(error.to_string()))?;
    Ok(directory
        .bureaus()
        .into_iter()
        .map(|name| yibao_pki::Bureau {
            name: name.to_string(),
            regions: directory
                .hosted_by(&name)
                .iter()
                .map(ToString::to_string)
                .collect(),
            hosts: hosts.to_vec(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bureau_spec_names_its_regions() {
        let bureau = parse_bureau("my-bureau=540100, 150100", &[]).expect("valid");
        assert_eq!(bureau.name, "my-bureau");
        assert_eq!(bureau.regions, ["540100", "150100"]);
        for bad in ["no-equals", "=540100", "a/b=540100", "x=54010", "x=999999"] {
            assert!(parse_bureau(bad, &[]).is_err(), "{bad}");
        }
    }
}
