//! The platform's certificates. Bureaus talk to each other over mutual TLS: each presents a
//! certificate from the platform's certificate authority, and the certificate says which pooling
//! regions its holder may speak for.
//!
//! **How a certificate names its regions.** Every region the bureau hosts is a URI subject
//! alternative name `urn:yibao:region:<6-digit code>` (for example `urn:yibao:region:150100`).
//! A receiver accepts a platform message only when the sender's certificate names the envelope's
//! `sender_region_code` ([`regions_of`] reads them back). The certificate also names the hosts
//! the bureau serves on (`localhost`, `127.0.0.1` and `::1` for a local pair, plus any given),
//! so that the caller can check the server it reached, as TLS always does.
//!
//! This crate makes the development set (`yibao certs`, `yibao up`, the test harness): a CA and
//! one certificate per bureau, PEM files in a directory. A real deployment would use its own CA;
//! only the URI convention above matters to yibao.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use x509_parser::extensions::GeneralName;

/// The prefix of the URI subject alternative names that name a certificate's regions.
pub const REGION_URI_PREFIX: &str = "urn:yibao:region:";

/// The file names [`write_development_set`] uses in its directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// The CA's private key (keep it to issue certificates for more bureaus later).
pub const CA_KEY_FILE: &str = "ca.key";

/// Why certificates could not be made or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// rcgen refused the parameters or could not sign.
    #[error("making a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// A certificate is not valid DER or PEM.
    #[error("reading a certificate: {0}")]
    Parse(String),
    /// A region code is not six digits.
    #[error("region code {0:?}: must be 6 digits")]
    RegionCode(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The first and the last day a certificate is valid, as (year, month, day).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// The first valid day.
    pub from: (i32, u8, u8),
    /// The last valid day.
    pub until: (i32, u8, u8),
}

impl Validity {
    /// From the first day of `year - 1` (so a clock a little behind still accepts it) for
    /// `years` years.
    #[must_use]
    pub fn years_from(year: i32, years: i32) -> Self {
        Self {
            from: (year - 1, 1, 1),
            until: (year + years, 12, 31),
        }
    }
}

/// One bureau to certify: its name (the certificate's common name and a DNS name), the regions
/// it hosts, and extra host names or IP addresses it serves on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bureau {
    /// The bureau's name, e.g. `transfer-out`; also the stem of its files.
    pub name: String,
    /// The 6-digit codes of the regions it hosts.
    pub regions: Vec<String>,
    /// Host names or IP addresses besides `localhost`, `127.0.0.1` and `::1`.
    pub hosts: Vec<String>,
}

/// A certificate and its private key, PEM-encoded.
#[derive(Clone, PartialEq, Eq)]
pub struct Issued {
    /// The certificate.
    pub cert_pem: String,
    /// The private key (PKCS#8).
    pub key_pem: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("cert_pem", &self.cert_pem.len())
            .field("key_pem", &"****")
            .finish()
    }
}

/// A certificate authority able to issue bureau certificates.
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authority(****)")
    }
}

impl Authority {
    /// A new development CA, "yibao development CA".
    ///
    /// # Errors
    /// If rcgen cannot generate the key or sign.
    pub fn generate(validity: Validity) -> Result<Self, PkiError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "yibao development CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        set_validity(&mut params, validity);
        let key = KeyPair::generate()?;
        let key_pem = key.serialize_pem();
        let certified = CertifiedIssuer::self_signed(params, key)?;
        let cert_pem = certified.pem();
        Self::load(&cert_pem, &key_pem)
    }

    /// A CA from its certificate and key (as [`Authority::cert_pem`] and the key file hold them).
    ///
    /// # Errors
    /// If either does not parse.
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        let key = KeyPair::from_pem(key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)?;
        Ok(Self {
            issuer,
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
        })
    }

    /// The CA certificate, which every bureau trusts.
    #[must_use]
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issues `bureau` a certificate for both ends of a connection (server and client
    /// authentication), naming its regions as described at the top of this crate.
    ///
    /// # Errors
    /// [`PkiError::RegionCode`] for a code that is not six digits; rcgen's errors otherwise.
    pub fn issue(&self, bureau: &Bureau, validity: Validity) -> Result<Issued, PkiError> {
        let mut names = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
            bureau.name.clone(),
        ];
        names.extend(bureau.hosts.iter().cloned());
        names.dedup();
        let mut params = CertificateParams::new(names)?;
        for region in &bureau.regions {
            if region.len() != 6 || !region.bytes().all(|b| b.is_ascii_digit()) {
                return Err(PkiError::RegionCode(region.clone()));
            }
            let uri = format!("{REGION_URI_PREFIX}{region}");
            params
                .subject_alt_names
                .push(SanType::URI(uri.as_str().try_into()?));
        }
        params
            .distinguished_name
            .push(DnType::CommonName, bureau.name.as_str());
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        set_validity(&mut params, validity);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

fn set_validity(params: &mut CertificateParams, validity: Validity) {
    let (year, month, day) = validity.from;
    params.not_before = rcgen::date_time_ymd(year, month, day);
    let (year, month, day) = validity.until;
    params.not_after = rcgen::date_time_ymd(year, month, day);
}

/// The regions a DER certificate names (its `urn:yibao:region:` URIs), in the order written.
/// A certificate naming none yields an empty list.
///
/// # Errors
/// [`PkiError::Parse`] if the bytes are not an X.509 certificate.
pub fn regions_of(der: &[u8]) -> Result<Vec<String>, PkiError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|error| PkiError::Parse(error.to_string()))?;
    let names = cert
        .subject_alternative_name()
        .map_err(|error| PkiError::Parse(error.to_string()))?;
    Ok(names
        .map(|extension| {
            extension
                .value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::URI(uri) => uri.strip_prefix(REGION_URI_PREFIX),
                    _ => None,
                })
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default())
}

/// The regions the first certificate of a PEM text names.
///
/// # Errors
/// [`PkiError::Parse`] if the text holds no certificate.
pub fn regions_of_pem(pem: &[u8]) -> Result<Vec<String>, PkiError> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem)
        .map_err(|error| PkiError::Parse(error.to_string()))?;
    regions_of(&block.contents)
}

/// The files of one certified bureau in a development set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BureauFiles {
    /// The bureau's name.
    pub name: String,
    /// Its certificate, `<name>.pem`.
    pub cert: PathBuf,
    /// Its private key, `<name>.key`.
    pub key: PathBuf,
}

/// What [`write_development_set`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevelopmentSet {
    /// The CA certificate every bureau trusts, `ca.pem`.
    pub ca_cert: PathBuf,
    /// The CA's key, `ca.key`.
    pub ca_key: PathBuf,
    /// One entry per bureau, in the order given.
    pub bureaus: Vec<BureauFiles>,
}

/// Writes a development set into `dir` (created if missing): the CA (`ca.pem`, `ca.key`) and
/// `<name>.pem` / `<name>.key` for each bureau. An existing CA in `dir` is reused, so more bureaus
/// (a team's own) can be certified by the CA a running pair already trusts; bureau files are
/// written anew. Keys are written readable by their owner only.
///
/// # Errors
/// If a file cannot be read or written, or a certificate cannot be made.
pub fn write_development_set(
    dir: &Path,
    bureaus: &[Bureau],
    validity: Validity,
) -> Result<DevelopmentSet, PkiError> {
    std::fs::create_dir_all(dir).map_err(|source| file_error(dir, source))?;
    let ca_cert = dir.join(CA_CERT_FILE);
    let ca_key = dir.join(CA_KEY_FILE);
    let authority = if ca_cert.exists() && ca_key.exists() {
        Authority::load(&read(&ca_cert)?, &read(&ca_key)?)?
    } else {
        let authority = Authority::generate(validity)?;
        write(&ca_cert, authority.cert_pem(), Access::Public)?;
        write(&ca_key, &authority.key_pem, Access::Private)?;
        authority
    };
    let mut written = Vec::with_capacity(bureaus.len());
    for bureau in bureaus {
        let issued = authority.issue(bureau, validity)?;
        let cert = dir.join(format!("{}.pem", bureau.name));
        let key = dir.join(format!("{}.key", bureau.name));
        write(&cert, &issued.cert_pem, Access::Public)?;
        write(&key, &issued.key_pem, Access::Private)?;
        written.push(BureauFiles {
            name: bureau.name.clone(),
            cert,
            key,
        });
    }
    Ok(DevelopmentSet {
        ca_cert,
        ca_key,
        bureaus: written,
    })
}

fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|source| file_error(path, source))
}

/// Who may read a written file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Public,
    Private,
}

fn write(path: &Path, text: &str, access: Access) -> Result<(), PkiError> {
    std::fs::write(path, text).map_err(|source| file_error(path, source))?;
    #[cfg(unix)]
    if access == Access::Private {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|source| file_error(path, source))?;
    }
    #[cfg(not(unix))]
    let _ = access;
    Ok(())
}

fn file_error(path: &Path, source: std::io::Error) -> PkiError {
    PkiError::File {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bureau(name: &str, regions: &[&str]) -> Bureau {
        Bureau {
            name: name.to_owned(),
            regions: regions.iter().map(|r| (*r).to_owned()).collect(),
            hosts: vec![],
        }
    }

    const VALIDITY: Validity = Validity {
        from: (2025, 1, 1),
        until: (2036, 12, 31),
    };

    #[test]
    fn an_issued_certificate_names_its_regions_and_only_them() {
        let authority = Authority::generate(VALIDITY).unwrap();
        let issued = authority
            .issue(&bureau("transfer-out", &["150100", "440100"]), VALIDITY)
            .unwrap();
        assert_eq!(
            regions_of_pem(issued.cert_pem.as_bytes()).unwrap(),
            ["150100", "440100"]
        );
        // The CA's own certificate names no region.
        assert!(
            regions_of_pem(authority.cert_pem().as_bytes())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_region_code_that_is_not_six_digits_is_refused() {
        let authority = Authority::generate(VALIDITY).unwrap();
        let error = authority
            .issue(&bureau("x", &["15010"]), VALIDITY)
            .unwrap_err();
        assert!(matches!(error, PkiError::RegionCode(code) if code == "15010"));
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(matches!(regions_of(b"not der"), Err(PkiError::Parse(_))));
        assert!(regions_of_pem(b"-----BEGIN NOTHING").is_err());
    }

    #[test]
    fn a_second_set_in_the_same_directory_reuses_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let first =
            write_development_set(dir.path(), &[bureau("a", &["150100"])], VALIDITY).unwrap();
        let ca = std::fs::read_to_string(&first.ca_cert).unwrap();
        let second =
            write_development_set(dir.path(), &[bureau("team", &["540100"])], VALIDITY).unwrap();
        assert_eq!(std::fs::read_to_string(&second.ca_cert).unwrap(), ca);
        let team = std::fs::read(&second.bureaus[0].cert).unwrap();
        assert_eq!(regions_of_pem(&team).unwrap(), ["540100"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&second.bureaus[0].key)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
