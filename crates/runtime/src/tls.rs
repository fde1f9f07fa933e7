//! Mutual TLS on the platform hop: the server side of a bureau's platform listener and the
//! client side of its calls to the peer, both from one set of PEM files (the platform CA, the
//! bureau's certificate and its key).
//!
//! The listener asks every caller for a certificate but lets the handshake finish without one,
//! so that a caller without a certificate gets a clear `UNAUTHENTICATED` answer instead of a
//! failed handshake; a certificate that is presented must chain to the CA. Which regions a
//! certificate speaks for is `yibao_pki`'s convention (`urn:yibao:region:<code>` names).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};
use yibao_domain::region::RegionCode;

/// The files of a bureau's platform identity, as configured (`[tls]` table, `--tls-*` flags).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The platform CA's certificate: callers and the peer must present certificates it signed.
    pub ca: PathBuf,
    /// This bureau's certificate, naming the regions it hosts.
    pub cert: PathBuf,
    /// This bureau's private key.
    pub key: PathBuf,
}

/// Why the TLS files could not be used; each error names the file or the setting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The certificate does not parse or names a malformed region.
    #[error("tls.cert {path}: {message}")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// A bureau's platform identity, read and checked.
#[derive(Clone, Debug)]
pub struct PlatformTls {
    ca: Certificate,
    identity: Identity,
    regions: Vec<RegionCode>,
}

impl PlatformTls {
    /// Reads the three files and the regions the certificate names.
    ///
    /// # Errors
    /// If a file cannot be read or the certificate does not parse.
    pub fn load(files: &TlsFiles) -> Result<Self, TlsError> {
        let ca = read(&files.ca)?;
        let cert = read(&files.cert)?;
        let key = read(&files.key)?;
        let certificate_error = |message: String| TlsError::Certificate {
            path: files.cert.clone(),
            message,
        };
        let regions = yibao_pki::regions_of_pem(&cert)
            .map_err(|error| certificate_error(error.to_string()))?
            .iter()
            .map(|code| {
                RegionCode::parse(code)
                    .map_err(|error| certificate_error(format!("region {code:?}: {error}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            ca: Certificate::from_pem(ca),
            identity: Identity::from_pem(cert, key),
            regions,
        })
    }

    /// The regions this bureau's certificate speaks for.
    #[must_use]
    pub fn regions(&self) -> &[RegionCode] {
        &self.regions
    }

    /// The platform listener's configuration: this bureau's identity; callers' certificates are
    /// requested and, when presented, verified against the CA.
    #[must_use]
    pub fn server(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(self.identity.clone())
            .client_ca_root(self.ca.clone())
            .client_auth_optional(true)
    }

    /// The peer client's configuration: trusts only the CA and presents this bureau's identity.
    #[must_use]
    pub fn client(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(self.ca.clone())
            .identity(self.identity.clone())
    }
}

/// The regions a presented (DER) certificate names; one naming a malformed code names none of
/// it (the malformed name is skipped).
#[must_use]
pub fn regions_presented(der: &[u8]) -> Vec<RegionCode> {
    yibao_pki::regions_of(der)
        .unwrap_or_default()
        .iter()
        .filter_map(|code| RegionCode::parse(code).ok())
        .collect()
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn development_set(dir: &Path) -> yibao_pki::DevelopmentSet {
        let bureau = yibao_pki::Bureau {
            name: "transfer-out".to_owned(),
            regions: vec!["150100".to_owned(), "440100".to_owned()],
            hosts: vec![],
        };
        yibao_pki::write_development_set(dir, &[bureau], yibao_pki::Validity::years_from(2026, 1))
            .expect("development set")
    }

    #[test]
    fn the_identity_speaks_for_the_regions_its_certificate_names() {
        let dir = tempfile::tempdir().expect("dir");
        let set = development_set(dir.path());
        let files = TlsFiles {
            ca: set.ca_cert.clone(),
            cert: set.bureaus[0].cert.clone(),
            key: set.bureaus[0].key.clone(),
        };
        let tls = PlatformTls::load(&files).expect("load");
        let codes: Vec<String> = tls.regions().iter().map(ToString::to_string).collect();
        assert_eq!(codes, ["150100", "440100"]);
    }

    #[test]
    fn a_missing_file_is_named() {
        let dir = tempfile::tempdir().expect("dir");
        let set = development_set(dir.path());
        let files = TlsFiles {
            ca: set.ca_cert.clone(),
            cert: dir.path().join("absent.pem"),
            key: set.bureaus[0].key.clone(),
        };
        let error = PlatformTls::load(&files).expect_err("absent");
        assert!(error.to_string().contains("absent.pem"), "{error}");
    }

    #[test]
    fn a_key_given_as_the_certificate_is_refused_naming_the_setting() {
        let dir = tempfile::tempdir().expect("dir");
        let set = development_set(dir.path());
        let files = TlsFiles {
            ca: set.ca_cert.clone(),
            cert: set.bureaus[0].key.clone(),
            key: set.bureaus[0].key.clone(),
        };
        let error = PlatformTls::load(&files).expect_err("not a certificate");
        assert!(error.to_string().starts_with("tls.cert"), "{error}");
    }

    #[test]
    fn garbage_presented_speaks_for_no_region() {
        assert!(regions_presented(b"garbage").is_empty());
    }
}
