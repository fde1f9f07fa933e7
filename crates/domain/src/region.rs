//! Administrative division codes (GB/T 2260) and what they say about pooling regions.
//!
//! A pooling region (统筹地区) is usually a prefecture-level city (`xxxx00`); in the four
//! municipalities directly under the central government (11 Beijing, 12 Tianjin, 31 Shanghai,
//! 50 Chongqing) it is the whole municipality (`xx0000`). Two counties of one pooling region are
//! the same pooling region: a move between them is not a transfer.
//!
//! The submodule `table` ships the real codes this project knows by name ([`known_region`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

mod table;

pub use table::{KnownRegion, RegionLevel, known_region, known_regions};

/// Province-level codes whose whole territory is one pooling region.
const MUNICIPALITIES: [u8; 4] = [11, 12, 31, 50];

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

    /// The pooling region (统筹地区) that this code belongs to: the prefecture-level city, or
    /// the whole municipality for Beijing, Tianjin, Shanghai and Chongqing.
    pub fn pooling_region(self) -> RegionCode {
        if MUNICIPALITIES.contains(&self.province().value()) {
            RegionCode(self.0 / 10_000 * 10_000)
        } else {
            RegionCode(self.0 / 100 * 100)
        }
    }

    /// Whether both codes belong to one pooling region (a move between them is not a transfer).
    pub fn same_pooling_region(self, other: RegionCode) -> bool {
        self.pooling_region() == other.pooling_region()
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
