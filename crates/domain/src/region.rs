//! Administrative division codes (GB/T 2260) and what they say about pooling regions.
//!
//! A pooling region (统筹地区) is usually a prefecture-level city (`xxxx00`); in the four
//! municipalities directly under the central government (11 Beijing, 12 Tianjin, 31 Shanghai,
//! 50 Chongqing) it is the whole municipality (`xx0000`); a county-level unit administered
//! directly by its province (省直辖县级行政区划, GB/T 2260 codes whose 3rd and 4th digits are
//! `90`, e.g. 429004 Xiantao, 419001 Jiyuan, 469001 Wuzhishan, 659001 Shihezi) belongs to no
//! city and is its own. Where a province pools at province level (its whole territory one
//! fund), the whole province is one pooling region (`xx0000`): that is configuration (the
//! region directory's `pooling = "province"`), held by a [`Pooling`]. Two counties of one
//! pooling region are the same pooling region: a move between them is not a transfer.
//!
//! The submodule `table` ships the real codes this project knows by name ([`known_region`]).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

mod table;

pub use table::{KnownRegion, RegionLevel, known_region, known_regions};

/// Province-level codes whose whole territory is one pooling region.
const MUNICIPALITIES: [u8; 4] = [11, 12, 31, 50];

/// The 3rd and 4th digits of a county-level unit administered directly by its province.
const DIRECTLY_ADMINISTERED: u32 = 90;

/// A six-digit administrative division code, e.g. `150100` (Hohhot).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RegionCode(u32);

/// The first two digits of a region code: the province-level division.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ProvinceCode(u8);

/// Why a string is not a region code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegionCodeError {
    /// The code does not have exactly six characters (or digits, for a numeric code).
    #[error("region code must be exactly 6 digits, got {length} characters")]
    WrongLength {
        /// How many characters (or digits) the input had.
        length: usize,
    },
    /// A character other than `0`–`9` appeared.
    #[error("region code must contain only the digits 0-9")]
    NotDigits,
    /// The first two digits are outside the GB/T 2260 province range 11–82.
    #[error("region code {0} does not start with a valid province code (11-82)")]
    UnknownProvince(String),
}

impl RegionCode {
    /// Parses a six-digit code. The province digits must be in the GB/T 2260 range 11–82.
    pub fn parse(text: &str) -> Result<Self, RegionCodeError> {
        let length = text.chars().count();
        if length != 6 {
            return Err(RegionCodeError::WrongLength { length });
        }
        if !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RegionCodeError::NotDigits);
        }
        let value: u32 = text.parse().map_err(|_| RegionCodeError::NotDigits)?;
        let province = value / 10_000;
        if !(11..=82).contains(&province) {
            return Err(RegionCodeError::UnknownProvince(text.to_owned()));
        }
        Ok(Self(value))
    }

    /// Accepts a code held as a number, e.g. `150100` read from a database column. The same
    /// rules as [`RegionCode::parse`] apply: six digits, province digits 11–82.
    pub fn from_value(value: u32) -> Result<Self, RegionCodeError> {
        if value > 999_999 {
            let length = value.to_string().len();
            return Err(RegionCodeError::WrongLength { length });
        }
        if !(11..=82).contains(&(value / 10_000)) {
            return Err(RegionCodeError::UnknownProvince(format!("{value:06}")));
        }
        Ok(Self(value))
    }

    /// The real division with exactly this code, if the shipped table lists it.
    pub fn known(self) -> Option<&'static KnownRegion> {
        known_region(self)
    }

    /// The code as a number, e.g. `150100`.
    pub fn value(self) -> u32 {
        self.0
    }

    /// The province-level division this code belongs to.
    pub fn province(self) -> ProvinceCode {
        // The constructor guarantees 11..=82, which fits in a u8.
        ProvinceCode((self.0 / 10_000) as u8)
    }

    /// The pooling region (统筹地区) that this code belongs to when no province pools at
    /// province level ([`Pooling::city_level`]): the prefecture-level city, the unit itself for
    /// a county-level unit its province administers directly, or the whole municipality for
    /// Beijing, Tianjin, Shanghai and Chongqing. Where a region directory is at hand, ask its
    /// [`Pooling`] instead: it knows the provinces that pool at province level.
    pub fn pooling_region(self) -> RegionCode {
        if MUNICIPALITIES.contains(&self.province().value()) {
            self.province_code()
        } else if self.is_directly_administered() {
            self
        } else {
            RegionCode(self.0 / 100 * 100)
        }
    }

    /// Whether both codes belong to one pooling region under [`Pooling::city_level`] (a move
    /// between them is not a transfer); see [`RegionCode::pooling_region`].
    pub fn same_pooling_region(self, other: RegionCode) -> bool {
        self.pooling_region() == other.pooling_region()
    }

    /// Whether this is a county-level unit administered directly by its province
    /// (省直辖县级行政区划): GB/T 2260 gives them the 3rd and 4th digits `90`, e.g. `429004`
    /// Xiantao in Hubei, `419001` Jiyuan in Henan, `469001` Wuzhishan in Hainan.
    pub fn is_directly_administered(self) -> bool {
        self.0 / 100 % 100 == DIRECTLY_ADMINISTERED
    }

    /// The code of this code's province-level division, e.g. `150000` for `150102`.
    pub fn province_code(self) -> RegionCode {
        RegionCode(self.0 / 10_000 * 10_000)
    }

    /// Whether both codes are in the same province-level division.
    pub fn same_province(self, other: RegionCode) -> bool {
        self.province() == other.province()
    }
}

impl ProvinceCode {
    /// The two-digit province number, e.g. `44` for Guangdong.
    pub fn value(self) -> u8 {
        self.0
    }
}

/// How region codes group into pooling regions, as the region directory configures it: every
/// province pools at city level ([`RegionCode::pooling_region`]) unless it is listed as pooling
/// at province level, in which case its whole territory, directly administered units included,
/// is one pooling region named by the province's code (`xx0000`).
///
/// Every rule that compares pooling regions takes one (the pooling-region rule of the reviews,
/// a person's pooling region, which bureau hosts a code), so that configuring a province takes
/// effect everywhere at once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pooling {
    /// The provinces that pool at province level.
    province_level: BTreeSet<ProvinceCode>,
}

/// [`Pooling::city_level`], for callers that need a reference with no directory at hand.
pub static CITY_LEVEL: Pooling = Pooling::city_level();

impl Pooling {
    /// No province pools at province level (the municipalities always do: each is one city).
    pub const fn city_level() -> Pooling {
        Pooling {
            province_level: BTreeSet::new(),
        }
    }

    /// The same pooling, with `province` pooling at province level.
    #[must_use]
    pub fn with_province_level(mut self, province: ProvinceCode) -> Pooling {
        self.province_level.insert(province);
        self
    }

    /// Whether `province` pools at province level (configured so, or a municipality).
    pub fn pools_at_province_level(&self, province: ProvinceCode) -> bool {
        self.province_level.contains(&province) || MUNICIPALITIES.contains(&province.value())
    }

    /// The pooling region `code` belongs to: its province's code where the province pools at
    /// province level, otherwise [`RegionCode::pooling_region`].
    pub fn pooling_region(&self, code: RegionCode) -> RegionCode {
        if self.pools_at_province_level(code.province()) {
            code.province_code()
        } else {
            code.pooling_region()
        }
    }

    /// Whether both codes belong to one pooling region (a move between them is not a
    /// transfer).
    pub fn same_pooling_region(&self, one: RegionCode, other: RegionCode) -> bool {
        self.pooling_region(one) == self.pooling_region(other)
    }
}

impl fmt::Display for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06}", self.0)
    }
}

impl fmt::Debug for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RegionCode({:06})", self.0)
    }
}

impl fmt::Display for ProvinceCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}", self.0)
    }
}

impl FromStr for RegionCode {
    type Err = RegionCodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for RegionCode {
    type Error = RegionCodeError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<RegionCode> for String {
    fn from(value: RegionCode) -> Self {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> RegionCode {
        RegionCode::parse(text).expect("valid code")
    }

    #[test]
    fn counties_of_one_city_share_a_pooling_region() {
        assert!(code("150102").same_pooling_region(code("150100")));
        assert!(!code("150100").same_pooling_region(code("150900")));
    }

    #[test]
    fn a_municipality_is_one_pooling_region() {
        assert_eq!(code("500112").pooling_region(), code("500000"));
        assert!(code("500112").same_pooling_region(code("500230")));
    }

    /// DOMAIN.md: compare pooling regions, not county codes. A county-level unit its province
    /// administers directly (3rd and 4th digits 90) is its own pooling region.
    #[test]
    fn a_directly_administered_county_is_its_own_pooling_region() {
        for direct in ["429004", "419001", "469001", "659001"] {
            assert!(code(direct).is_directly_administered(), "{direct}");
            assert_eq!(code(direct).pooling_region(), code(direct), "{direct}");
            assert_eq!(CITY_LEVEL.pooling_region(code(direct)), code(direct));
        }
        // Xiantao and Tianmen are two pooling regions, and neither is part of Wuhan.
        assert!(!code("429004").same_pooling_region(code("429006")));
        assert!(!code("429004").same_pooling_region(code("420100")));
        assert!(!code("420102").is_directly_administered());
        assert_eq!(code("420102").pooling_region(), code("420100"));
    }

    /// DOMAIN.md: a pooling region is a city *or a province*. Where a province pools at
    /// province level, a move between two of its counties is not a transfer — directly
    /// administered units included — while other provinces keep pooling by city.
    #[test]
    fn a_province_pooled_at_province_level_is_one_pooling_region() {
        let hainan = Pooling::city_level().with_province_level(code("460000").province());
        assert!(hainan.same_pooling_region(code("460105"), code("460202")));
        assert!(hainan.same_pooling_region(code("460105"), code("469001")));
        assert_eq!(hainan.pooling_region(code("460202")), code("460000"));
        assert_eq!(hainan.pooling_region(code("460000")), code("460000"));
        assert!(!CITY_LEVEL.same_pooling_region(code("460105"), code("460202")));
        // Elsewhere nothing changes.
        assert!(!hainan.same_pooling_region(code("150100"), code("150900")));
        assert!(hainan.same_pooling_region(code("150102"), code("150100")));
        assert!(hainan.same_pooling_region(code("500112"), code("500230")));
        assert!(hainan.pools_at_province_level(code("500112").province()));
    }

    #[test]
    fn a_numeric_code_follows_the_same_rules_as_text() {
        assert_eq!(RegionCode::from_value(150100), Ok(code("150100")));
        assert_eq!(
            RegionCode::from_value(1_501_000),
            Err(RegionCodeError::WrongLength { length: 7 })
        );
        assert_eq!(
            RegionCode::from_value(100),
            Err(RegionCodeError::UnknownProvince("000100".to_owned()))
        );
    }

    #[test]
    fn a_listed_code_knows_its_name() {
        assert_eq!(
            code("150900").known().map(|region| region.name),
            Some("Ulanqab")
        );
        assert_eq!(code("150102").known(), None);
    }

    #[test]
    fn malformed_codes_are_refused_with_the_reason() {
        assert_eq!(
            RegionCode::parse("15010"),
            Err(RegionCodeError::WrongLength { length: 5 })
        );
        assert_eq!(RegionCode::parse("15010a"), Err(RegionCodeError::NotDigits));
        assert!(matches!(
            RegionCode::parse("990100"),
            Err(RegionCodeError::UnknownProvince(_))
        ));
    }
}
