//! The region directory: which pooling regions exist, which bureau hosts each, whether each is on
//! the national platform, and each region's transfer policy. Both services read the same file
//! (`deploy/regions.toml`).
//!
//! The file is a list of `[[region]]` tables:
//!
//! ```toml
//! [[region]]
//! code = "150100"          # a pooling region's GB/T 2260 code
//! name = "Hohhot"
//! name_zh = "呼和浩特市"
//! bureau = "transfer-out"  # the bureau that hosts it; omit for a region no local bureau hosts
//! connected = true         # joined the national platform (接入国家医保信息平台)
//! pooling = "city"         # or "province"; omit for "city" (see below)
//! [region.policy]          # a yibao_domain::policy::RegionPolicy; omitted keys take defaults
//! instant_mode = true
//! ```
//!
//! **Bureaus.** `bureau` names the bureau (one process, `--bureau NAME`) that hosts the region:
//! any [`BureauName`] — lowercase letters, digits and `-`, starting with a letter, at most 32
//! characters. The default pair is named `transfer-out` and `transfer-in`, but a directory may
//! name any number of bureaus, each hosting its own regions (regions are listed once, so no two
//! bureaus host one region). A bureau plays both sides: transfer-out for people leaving its
//! regions, transfer-in for people arriving.
//!
//! **Pooling.** A pooling region is a prefecture-level city (`xxxx00`) by default, a whole
//! municipality (`xx0000`: Beijing, Tianjin, Shanghai, Chongqing), or a county-level unit its
//! province administers directly (省直辖县级行政区划: 3rd and 4th digits `90`, e.g. `429004`
//! Xiantao), which is listed under its own code. A province whose whole territory is one
//! pooling region is listed once, under its province code (`xx0000`) with
//! `pooling = "province"`: every code of that province, directly administered units included,
//! then belongs to it ([`RegionDirectory::pooling`], which every pooling-region rule asks).
//!
//! Everything is checked on load, and each error names the region and the field: codes parse and
//! are unique, each code is its own pooling region (a county code is not a pooling region, nor
//! a city of a province pooled at province level; a province's code is one only with
//! `pooling = "province"`, which only a province's code may carry), a region listed in the
//! shipped GB/T 2260 table carries that table's names, a hosted region is connected (a bureau
//! here always speaks over the platform), and the policy passes its own validation.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use yibao_domain::policy::RegionPolicy;
use yibao_domain::region::{Pooling, RegionCode};

/// Which of the two simulated bureaus a service is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BureauRole {
    /// The bureau the person leaves (转出地).
    TransferOut,
    /// The bureau the person joins (转入地).
    TransferIn,
}

impl BureauRole {
    /// The role's name as written in configuration and logs: `transfer-out` or `transfer-in`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TransferOut => "transfer-out",
            Self::TransferIn => "transfer-in",
        }
    }

    /// The other bureau of the pair.
    #[must_use]
    pub fn peer(self) -> Self {
        match self {
            Self::TransferOut => Self::TransferIn,
            Self::TransferIn => Self::TransferOut,
        }
    }
}

impl fmt::Display for BureauRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AsRef<str> for BureauRole {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

/// The name of a bureau in the directory: lowercase ASCII letters, digits and `-`, starting
/// with a letter, 1 to [`BureauName::MAX_LEN`] characters. The default pair's names are the
/// roles' (`transfer-out`, `transfer-in`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BureauName(String);

impl BureauName {
    /// The longest name accepted.
    pub const MAX_LEN: usize = 32;

    /// Checks `text` against the naming rule.
    ///
    /// # Errors
    /// A sentence naming the rule broken.
    pub fn parse(text: &str) -> Result<BureauName, String> {
        let well_formed = text.len() <= Self::MAX_LEN
            && text.starts_with(|c: char| c.is_ascii_lowercase())
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if well_formed {
            Ok(BureauName(text.to_owned()))
        } else {
            Err(format!(
                "{text:?} is no bureau name: lowercase letters, digits and '-', starting with a \
                 letter, at most {} characters",
                Self::MAX_LEN
            ))
        }
    }

    /// The name of the bureau of the default pair that plays `role`.
    #[must_use]
    pub fn of_role(role: BureauRole) -> BureauName {
        BureauName(role.as_str().to_owned())
    }

    /// The role whose name this is, for the two names of the default pair.
    #[must_use]
    pub fn role(&self) -> Option<BureauRole> {
        [BureauRole::TransferOut, BureauRole::TransferIn]
            .into_iter()
            .find(|role| role.as_str() == self.0)
    }

    /// The name as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for BureauName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BureauName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// At which level an entry's region pools (its `pooling` key).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PoolingLevel {
    /// A prefecture-level city, a municipality or a directly administered county-level unit:
    /// the code's own rule (the default).
    #[default]
    City,
    /// The whole province (the entry's code is the province's, `xx0000`).
    Province,
}

/// One pooling region of the directory, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionEntry {
    /// The pooling region's code (always its own pooling region).
    pub code: RegionCode,
    /// English name, for logs and the command line.
    pub name: String,
    /// Chinese name, as on certificates.
    pub name_zh: String,
    /// The bureau that hosts this region, if any. A region no bureau hosts is still a valid
    /// origin or destination: it is simply not simulated here.
    pub bureau: Option<BureauName>,
    /// Whether the region has joined the national platform. A transfer to a region that has not
    /// is paid out to the person's bank account instead.
    pub connected: bool,
    /// The region's transfer policy (validated).
    pub policy: RegionPolicy,
    /// Whether the entry is a whole province pooled at province level.
    pub pooling: PoolingLevel,
}

/// Every region the services know, keyed by code. Built only by [`RegionDirectory::parse`] or
/// [`RegionDirectory::load`], so every entry has passed the checks in the module docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionDirectory {
    regions: BTreeMap<RegionCode, RegionEntry>,
    /// How codes group into pooling regions: the provinces listed with `pooling = "province"`.
    pooling: Pooling,
}

/// Why a region directory was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    /// The file could not be read.
    #[error("region directory {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The text is not TOML of the directory's shape (the message names line and key).
    #[error("region directory: {message}")]
    Syntax {
        /// The parser's description.
        message: String,
    },
    /// The file lists no region.
    #[error("region directory lists no `[[region]]`")]
    Empty,
    /// One region's entry breaks a rule.
    #[error("region directory: region {region}: `{field}`: {message}")]
    Invalid {
        /// The region's code as written, or its position (`#3`) if the code is unreadable.
        region: String,
        /// The field at fault.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// The file as written, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDirectory {
    #[serde(default)]
    region: Vec<RawRegion>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegion {
    code: String,
    name: String,
    name_zh: String,
    #[serde(default)]
    bureau: Option<String>,
    connected: bool,
    #[serde(default)]
    pooling: PoolingLevel,
    /// Kept as a TOML value so that a policy error can name its region.
    #[serde(default)]
    policy: Option<toml::Value>,
}

impl RegionDirectory {
    /// Reads and validates the directory file at `path`.
    ///
    /// # Errors
    /// [`DirectoryError::Read`] if the file cannot be read; otherwise as [`RegionDirectory::parse`].
    pub fn load(path: &Path) -> Result<Self, DirectoryError> {
        let text = std::fs::read_to_string(path).map_err(|source| DirectoryError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Parses and validates a directory from TOML text.
    ///
    /// # Errors
    /// [`DirectoryError::Syntax`] for malformed TOML or unknown keys, [`DirectoryError::Empty`]
    /// for a file without regions, and [`DirectoryError::Invalid`] naming the region and field
    /// for the first broken rule.
    pub fn parse(text: &str) -> Result<Self, DirectoryError> {
        let raw: RawDirectory = toml::from_str(text).map_err(|e| DirectoryError::Syntax {
            message: toml_error(&e),
        })?;
        if raw.region.is_empty() {
            return Err(DirectoryError::Empty);
        }
        let pooling = pooling_of(&raw.region)?;
        let mut regions = BTreeMap::new();
        for (index, raw_region) in raw.region.into_iter().enumerate() {
            let entry = validate_region(index, raw_region, &pooling)?;
            let code = entry.code;
            if regions.insert(code, entry).is_some() {
                return Err(invalid(
                    code.to_string(),
                    "code",
                    "listed more than once; each region takes one entry",
                ));
            }
        }
        Ok(Self { regions, pooling })
    }

    /// The entry for the pooling region that `code` belongs to (a county code finds its city,
    /// or its province where the province pools at province level).
    #[must_use]
    pub fn region(&self, code: RegionCode) -> Option<&RegionEntry> {
        self.regions.get(&self.pooling.pooling_region(code))
    }

    /// How codes group into pooling regions here: what every pooling-region rule is given.
    #[must_use]
    pub fn pooling(&self) -> &Pooling {
        &self.pooling
    }

    /// The pooling region `code` belongs to, listed or not ([`Pooling::pooling_region`]).
    #[must_use]
    pub fn pooling_region(&self, code: RegionCode) -> RegionCode {
        self.pooling.pooling_region(code)
    }

    /// Whether both codes belong to one pooling region ([`Pooling::same_pooling_region`]).
    #[must_use]
    pub fn same_pooling_region(&self, one: RegionCode, other: RegionCode) -> bool {
        self.pooling.same_pooling_region(one, other)
    }

    /// The regions the bureau named `bureau` (a [`BureauName`], or a [`BureauRole`] for the
    /// default pair's names) hosts, in code order.
    #[must_use]
    pub fn hosted_by(&self, bureau: impl AsRef<str>) -> Vec<RegionCode> {
        let bureau = bureau.as_ref();
        self.regions
            .values()
            .filter(|entry| entry.bureau.as_ref().is_some_and(|b| b.as_str() == bureau))
            .map(|entry| entry.code)
            .collect()
    }

    /// The bureau hosting the pooling region of `code`, if a bureau hosts it.
    #[must_use]
    pub fn bureau_of(&self, code: RegionCode) -> Option<&BureauName> {
        self.region(code).and_then(|entry| entry.bureau.as_ref())
    }

    /// Every bureau the directory names, in name order.
    #[must_use]
    pub fn bureaus(&self) -> Vec<BureauName> {
        let names: std::collections::BTreeSet<&BureauName> = self
            .regions
            .values()
            .filter_map(|entry| entry.bureau.as_ref())
            .collect();
        names.into_iter().cloned().collect()
    }

    /// Whether the pooling region of `code` is listed and on the national platform. An unlisted
    /// region counts as not connected: nothing could be sent to it.
    #[must_use]
    pub fn is_connected(&self, code: RegionCode) -> bool {
        self.region(code).is_some_and(|entry| entry.connected)
    }

    /// Every region, in code order.
    pub fn regions(&self) -> impl Iterator<Item = &RegionEntry> {
        self.regions.values()
    }

    /// How many regions the directory lists.
    #[must_use]
    pub fn len(&self) -> usize {
        self.regions.len()
    }

    /// Always false: a directory holds at least one region. Present for clippy's `len` rule.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.regions.is_empty()
    }
}

/// A TOML parser's error as a file's reader needs it: the parser's own description, which names
/// the line and column — except for its nesting limit (a dotted key or table path of more than
/// 80 parts), which it reports with no place at all, so the message says what it means.
pub(crate) fn toml_error(error: &toml::de::Error) -> String {
    if error.span().is_none() && error.message().trim() == "recursion limit" {
        return "a dotted key or table path has more parts than the TOML parser accepts (its \
                recursion limit; it names no line)"
            .to_owned();
    }
    error.to_string()
}

fn invalid(region: String, field: &'static str, message: impl Into<String>) -> DirectoryError {
    DirectoryError::Invalid {
        region,
        field,
        message: message.into(),
    }
}

/// Checks a region's names: both given, and those of GB/T 2260 when the code is a known one.
fn check_names(label: &str, code: RegionCode, raw: &RawRegion) -> Result<(), DirectoryError> {
    if raw.name.trim().is_empty() {
        return Err(invalid(label.to_owned(), "name", "must not be empty"));
    }
    if raw.name_zh.trim().is_empty() {
        return Err(invalid(label.to_owned(), "name_zh", "must not be empty"));
    }
    if let Some(known) = code.known() {
        // A mismatch almost always means a mistyped code, which would route money to the wrong
        // region; the names are the cross-check.
        if raw.name != known.name {
            return Err(invalid(
                label.to_owned(),
                "name",
                format!(
                    "is {:?}, but GB/T 2260 names {code} {:?}",
                    raw.name, known.name
                ),
            ));
        }
        if raw.name_zh != known.name_zh {
            return Err(invalid(
                label.to_owned(),
                "name_zh",
                format!(
                    "is {:?}, but GB/T 2260 names {code} {:?}",
                    raw.name_zh, known.name_zh
                ),
            ));
        }
    }
    Ok(())
}

/// The code of the entry at `index` (counting from 0), or the error naming it by position.
fn code_of(index: usize, raw: &RawRegion) -> Result<RegionCode, DirectoryError> {
    RegionCode::parse(&raw.code).map_err(|e| {
        invalid(
            format!("#{} ({:?})", index + 1, raw.code),
            "code",
            e.to_string(),
        )
    })
}

/// The directory's pooling: the provinces listed with `pooling = "province"`, each under its
/// province code.
fn pooling_of(regions: &[RawRegion]) -> Result<Pooling, DirectoryError> {
    let mut pooling = Pooling::city_level();
    for (index, raw) in regions.iter().enumerate() {
        if raw.pooling != PoolingLevel::Province {
            continue;
        }
        let code = code_of(index, raw)?;
        if code.province_code() != code {
            return Err(invalid(
                code.to_string(),
                "pooling",
                format!(
                    "\"province\" pools a whole province, listed under its province code {}",
                    code.province_code()
                ),
            ));
        }
        pooling = pooling.with_province_level(code.province());
    }
    Ok(pooling)
}

/// Checks that `code` names a pooling region of its own under `pooling` (module docs).
fn check_pooling_region(
    code: RegionCode,
    level: PoolingLevel,
    pooling: &Pooling,
) -> Result<(), DirectoryError> {
    let label = code.to_string();
    let pooled = pooling.pooling_region(code);
    if pooled != code {
        return Err(invalid(
            label,
            "code",
            format!("not a pooling region; its pooling region is {pooled}"),
        ));
    }
    let province_only = code.province_code() == code
        && level == PoolingLevel::City
        && !pooling.pools_at_province_level(code.province());
    if province_only {
        return Err(invalid(
            label,
            "pooling",
            "a province's code is a pooling region only when the whole province pools at \
             province level: set pooling = \"province\", or list its cities",
        ));
    }
    Ok(())
}

/// Checks one `[[region]]` entry (at `index`, counting from 0) and builds it.
fn validate_region(
    index: usize,
    raw: RawRegion,
    pooling: &Pooling,
) -> Result<RegionEntry, DirectoryError> {
    let code = code_of(index, &raw)?;
    let label = code.to_string();
    check_pooling_region(code, raw.pooling, pooling)?;
    check_names(&label, code, &raw)?;
    let bureau = raw
        .bureau
        .as_deref()
        .map(BureauName::parse)
        .transpose()
        .map_err(|message| invalid(label.clone(), "bureau", message))?;
    let policy = match raw.policy {
        None => RegionPolicy::default(),
        Some(value) => {
            let policy: RegionPolicy = value
                .try_into()
                .map_err(|e: toml::de::Error| invalid(label.clone(), "policy", e.to_string()))?;
            policy
                .validate()
                .map_err(|e| invalid(label.clone(), "policy", e.to_string()))?;
            policy
        }
    };
    Ok(RegionEntry {
        code,
        name: raw.name,
        name_zh: raw.name_zh,
        bureau,
        connected: raw.connected,
        policy,
        pooling: raw.pooling,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> RegionCode {
        RegionCode::parse(text).expect("valid code")
    }

    fn shipped() -> RegionDirectory {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/regions.toml");
        RegionDirectory::load(&path).expect("the shipped directory is valid")
    }

    fn invalid_field(text: &str) -> (String, &'static str, String) {
        match RegionDirectory::parse(text) {
            Err(DirectoryError::Invalid {
                region,
                field,
                message,
            }) => (region, field, message),
            other => panic!("expected an invalid region, got {other:?}"),
        }
    }

    const HOHHOT: &str = r#"
[[region]]
code = "150100"
name = "Hohhot"
name_zh = "呼和浩特市"
bureau = "transfer-out"
connected = true
"#;

    #[test]
    fn the_shipped_directory_loads_and_hosts_every_flow() {
        let directory = shipped();
        assert!(directory.len() >= 12);
        let out = directory.hosted_by(BureauRole::TransferOut);
        let into = directory.hosted_by(BureauRole::TransferIn);
        for hosted in ["150100", "440100", "370200"] {
            assert!(out.contains(&code(hosted)), "{hosted} on transfer-out");
        }
        for hosted in ["540100", "440300", "150900", "610100"] {
            assert!(into.contains(&code(hosted)), "{hosted} on transfer-in");
        }
        assert!(!directory.is_connected(code("410100")));
        assert!(!directory.is_connected(code("320100")));
        assert!(directory.is_connected(code("500000")));
        let policy = |c: &str| &directory.region(code(c)).expect("listed").policy;
        assert!(policy("150100").instant_mode && policy("150900").instant_mode);
        assert!(policy("440100").shared_provincial_account);
        assert!(policy("440300").shared_provincial_account);
        assert!(policy("370200").pays_out_instead_of_transfer);
        assert_eq!(
            policy("610100").resident_to_employee_months_per_year,
            Some(3)
        );
        assert_eq!(policy("310000").minimum_contribution_months.male, 180);
        assert_eq!(policy("310000").minimum_contribution_months.female, 180);
    }

    #[test]
    fn a_county_code_finds_its_pooling_region() {
        let directory = shipped();
        let entry = directory.region(code("150102")).expect("Hohhot's county");
        assert_eq!(entry.code, code("150100"));
        assert_eq!(
            directory.region(code("500112")).map(|e| e.code),
            Some(code("500000"))
        );
        assert!(directory.region(code("650100")).is_none());
        assert!(!directory.is_connected(code("650100")));
    }

    const HAINAN: &str = r#"
[[region]]
code = "460000"
name = "Hainan"
name_zh = "海南省"
connected = true
pooling = "province"
"#;

    const XIANTAO: &str = r#"
[[region]]
code = "429004"
name = "Xiantao"
name_zh = "仙桃市"
connected = true
"#;

    /// DOMAIN.md: a pooling region is a city or a province. A province listed with
    /// `pooling = "province"` is one pooling region: two of its counties are the same one, a
    /// move between them is no transfer, and each finds the province's entry.
    #[test]
    fn a_province_pooled_at_province_level_is_one_pooling_region() {
        let directory = RegionDirectory::parse(&format!("{HOHHOT}{HAINAN}")).expect("valid");
        let hainan = directory
            .region(code("460105"))
            .expect("a county of Haikou");
        assert_eq!(
            (hainan.code, hainan.pooling),
            (code("460000"), PoolingLevel::Province)
        );
        assert_eq!(directory.pooling_region(code("460202")), code("460000"));
        assert!(directory.same_pooling_region(code("460105"), code("460202")));
        assert!(directory.same_pooling_region(code("460105"), code("469001")));
        // Every other province keeps pooling by city, as before.
        assert_eq!(
            directory.region(code("150102")).map(|e| e.pooling),
            Some(PoolingLevel::City)
        );
        assert!(!directory.same_pooling_region(code("150100"), code("150900")));
    }

    /// GB/T 2260: a county-level unit its province administers directly (digits 3-4 `90`) is
    /// its own pooling region, listed under its own code.
    #[test]
    fn a_directly_administered_county_is_its_own_pooling_region() {
        let directory = RegionDirectory::parse(&format!("{HOHHOT}{XIANTAO}")).expect("valid");
        assert_eq!(
            directory.region(code("429004")).map(|e| e.code),
            Some(code("429004"))
        );
        assert!(
            directory.region(code("429006")).is_none(),
            "Tianmen is another"
        );
        assert!(
            directory.region(code("420102")).is_none(),
            "nor is Wuhan part of it"
        );
        assert!(!directory.same_pooling_region(code("429004"), code("429006")));
    }

    #[test]
    fn a_pooling_level_must_fit_the_code() {
        // A city of a province pooled at province level is no pooling region of its own.
        let haikou = "[[region]]\ncode = \"460100\"\nname = \"Haikou\"\nname_zh = \"海口市\"\n\
                      connected = true\n";
        let (region, field, message) = invalid_field(&format!("{HAINAN}{haikou}"));
        assert_eq!((region.as_str(), field), ("460100", "code"));
        assert!(message.contains("460000"), "{message}");
        // "province" on a city's code.
        let (region, field, _) = invalid_field(&format!("{haikou}pooling = \"province\"\n"));
        assert_eq!((region.as_str(), field), ("460100", "pooling"));
        // A province's code pooled by city names nothing a county belongs to.
        let (region, field, _) = invalid_field(&HAINAN.replace("pooling = \"province\"", ""));
        assert_eq!((region.as_str(), field), ("460000", "pooling"));
        // A directly administered unit of a province pooled at province level is the province's.
        let (region, field, message) = invalid_field(&format!(
            "{}{XIANTAO}",
            HAINAN
                .replace("460000", "420000")
                .replace("Hainan", "Hubei")
                .replace("海南省", "湖北省")
        ));
        assert_eq!((region.as_str(), field), ("429004", "code"));
        assert!(message.contains("420000"), "{message}");
        // An unknown level is a syntax error.
        assert!(matches!(
            RegionDirectory::parse(&HAINAN.replace("\"province\"", "\"county\"")),
            Err(DirectoryError::Syntax { .. })
        ));
    }

    #[test]
    fn an_omitted_policy_takes_the_national_defaults() {
        let directory = RegionDirectory::parse(HOHHOT).expect("valid");
        assert_eq!(
            directory.region(code("150100")).map(|e| &e.policy),
            Some(&RegionPolicy::default())
        );
        assert_eq!(directory.hosted_by(BureauRole::TransferIn), vec![]);
    }

    #[test]
    fn a_repeated_code_is_refused() {
        let (region, field, _) = invalid_field(&format!("{HOHHOT}{HOHHOT}"));
        assert_eq!((region.as_str(), field), ("150100", "code"));
    }

    #[test]
    fn a_county_code_is_not_a_directory_entry() {
        let (region, field, message) = invalid_field(
            "[[region]]\ncode = \"150102\"\nname = \"Xincheng\"\nname_zh = \"新城区\"\n\
             connected = true\n",
        );
        assert_eq!((region.as_str(), field), ("150102", "code"));
        assert!(message.contains("150100"));
    }

    #[test]
    fn an_unreadable_code_is_named_by_position() {
        let (region, field, _) = invalid_field(
            "[[region]]\ncode = \"15010\"\nname = \"X\"\nname_zh = \"X\"\nconnected = true\n",
        );
        assert!(region.starts_with("#1"));
        assert_eq!(field, "code");
    }

    #[test]
    fn a_hosted_region_may_be_off_the_platform_until_it_joins() {
        let text = HOHHOT.replace("connected = true", "connected = false");
        let directory = RegionDirectory::parse(&text).expect("a hosted region off the platform");
        let hohhot = RegionCode::parse("150100").expect("a code");
        let entry = directory.region(hohhot).expect("listed");
        assert!(entry.bureau.is_some() && !entry.connected);
    }

    #[test]
    fn names_must_match_the_gb_t_2260_table() {
        let text = HOHHOT.replace("\"Hohhot\"", "\"Baotou\"");
        let (region, field, message) = invalid_field(&text);
        assert_eq!((region.as_str(), field), ("150100", "name"));
        assert!(message.contains("Hohhot"));
    }

    #[test]
    fn an_invalid_policy_is_refused_naming_the_region() {
        let (region, field, message) = invalid_field(&format!(
            "{HOHHOT}[region.policy]\nwaiting_period_months = 7\n"
        ));
        assert_eq!((region.as_str(), field), ("150100", "policy"));
        assert!(message.contains("waiting_period_months"));
        let (region, field, message) =
            invalid_field(&format!("{HOHHOT}[region.policy]\ninstant_mod = true\n"));
        assert_eq!((region.as_str(), field), ("150100", "policy"));
        assert!(message.contains("instant_mod"));
    }

    #[test]
    fn unknown_keys_are_syntax_errors_and_bad_bureau_names_are_named() {
        let typo = HOHHOT.replace("connected", "conected");
        assert!(matches!(
            RegionDirectory::parse(&typo),
            Err(DirectoryError::Syntax { .. })
        ));
        for bad in [
            "Transfer Out",
            "",
            "9north",
            "a-name-far-longer-than-thirty-two-chars",
        ] {
            let bureau = HOHHOT.replace("\"transfer-out\"", &format!("{bad:?}"));
            let (region, field, _) = invalid_field(&bureau);
            assert_eq!((region.as_str(), field), ("150100", "bureau"), "{bad:?}");
        }
        assert!(matches!(
            RegionDirectory::parse(""),
            Err(DirectoryError::Empty)
        ));
    }

    #[test]
    fn a_missing_file_is_a_read_error_naming_the_path() {
        let err = RegionDirectory::load(Path::new("/nonexistent/regions.toml"))
            .expect_err("no such file");
        assert!(err.to_string().contains("/nonexistent/regions.toml"));
    }

    /// Found by `fuzz_directory_any_text`: the TOML parser reports its nesting limit with no
    /// line, which read as a bare "region directory: recursion limit".
    #[test]
    fn a_table_path_beyond_the_parsers_limit_is_explained() {
        let text = format!("[{}]\n", ["a"; 81].join("."));
        let Err(DirectoryError::Syntax { message }) = RegionDirectory::parse(&text) else {
            panic!("refused as syntax");
        };
        assert!(
            message.contains("more parts than the TOML parser accepts"),
            "{message}"
        );
        // Within the limit, the parser names the line as usual.
        let text = format!("\n[{}]\n", ["a"; 3].join("."));
        let Err(DirectoryError::Syntax { message }) = RegionDirectory::parse(&text) else {
            panic!("refused as syntax");
        };
        assert!(message.contains("at line 2"), "{message}");
    }

    const LHASA_AT_NORTH: &str = r#"
[[region]]
code = "540100"
name = "Lhasa"
name_zh = "拉萨市"
bureau = "north-2"
connected = true
"#;

    /// A directory may name any bureau; the default pair's names keep their roles.
    #[test]
    fn any_bureau_may_host_regions() {
        let directory =
            RegionDirectory::parse(&format!("{HOHHOT}{LHASA_AT_NORTH}")).expect("valid");
        let north = BureauName::parse("north-2").expect("a name");
        assert_eq!(directory.hosted_by(&north), vec![code("540100")]);
        assert_eq!(
            directory.hosted_by(BureauRole::TransferOut),
            vec![code("150100")]
        );
        assert_eq!(directory.bureau_of(code("540102")), Some(&north));
        assert_eq!(directory.bureau_of(code("650100")), None);
        assert_eq!(
            directory.bureaus(),
            vec![north.clone(), BureauName::of_role(BureauRole::TransferOut)]
        );
        assert_eq!(north.role(), None);
        assert_eq!(
            BureauName::of_role(BureauRole::TransferIn).role(),
            Some(BureauRole::TransferIn)
        );
    }

    #[test]
    fn roles_are_written_in_kebab_case_and_pair_up() {
        assert_eq!(BureauRole::TransferOut.as_str(), "transfer-out");
        assert_eq!(BureauRole::TransferIn.to_string(), "transfer-in");
        assert_eq!(BureauRole::TransferOut.peer(), BureauRole::TransferIn);
    }
}
