//! The resident ID number (居民身份证号码, GB 11643) that identifies an insured person, and the
//! masking that keeps it and the person's name out of logs.
//!
//! An ID number is 18 characters: a 6-digit region code, an 8-digit birth date, a 3-digit
//! sequence (odd for men, even for women) and a check character computed with ISO 7064
//! MOD 11-2. [`ResidentId::parse`] checks all of it. The number is personal data, so `Debug` and
//! `Display` show it masked (`110105********002X`), errors never contain it, and the full value
//! comes only from [`ResidentId::expose_unmasked`], a name meant to stand out in review.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::region::{RegionCode, RegionCodeError};

/// The number of characters in a resident ID number.
const LENGTH: usize = 18;

/// ISO 7064 MOD 11-2 weights of the first 17 digits (2^(17-i) mod 11).
const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];

/// The check character for each remainder of the weighted sum modulo 11.
const CHECK_CHARACTERS: [u8; 11] = *b"10X98765432";

/// The earliest birth year accepted; older dates are data-entry errors, not people.
const EARLIEST_BIRTH_YEAR: i32 = 1850;

/// The largest sequence number: three digits.
const MAX_SEQUENCE: u16 = 999;

/// A valid 18-character resident ID number (GB 11643). The check character is stored as `X`,
/// never `x`.
///
/// Not `Serialize`: whoever stores or sends the number calls [`ResidentId::expose_unmasked`].
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResidentId {
    /// The 18 ASCII characters, upper-case `X`; first so that ordering follows the number.
    number: String,
    /// The first six digits, kept parsed so the accessor cannot fail.
    region: RegionCode,
    /// Digits 7–14, kept parsed so the accessor cannot fail.
    birth: NaiveDate,
    /// From the parity of the 17th digit.
    sex: Sex,
}

/// The sex recorded in a resident ID number (odd 17th digit: male; even: female).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Sex {
    /// The 17th digit is odd.
    Male,
    /// The 17th digit is even.
    Female,
}

/// Why a text is not a resident ID number. No variant carries the number itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResidentIdError {
    /// The text does not have exactly 18 characters.
    #[error("a resident ID number must have exactly 18 characters, got {length}")]
    WrongLength {
        /// How many characters the text had.
        length: usize,
    },
    /// A character is not a digit (the 18th may also be `X`).
    #[error(
        "character {position} of a resident ID number must be a digit (the 18th may also be X)"
    )]
    NotDigits {
        /// The 1-based position of the first offending character.
        position: usize,
    },
    /// The first six digits are not a plausible GB/T 2260 region code.
    #[error("the first 6 digits of a resident ID number must be a region code: {0}")]
    BadRegion(#[source] RegionCodeError),
    /// Digits 7–14 are not a calendar date `YYYYMMDD` in 1850 or later.
    #[error("digits 7-14 of a resident ID number must be a birth date YYYYMMDD from 1850 on")]
    BadBirthDate,
    /// The 18th character is not the ISO 7064 MOD 11-2 check character of the first 17.
    #[error("the check character of a resident ID number must be {expected} (ISO 7064 MOD 11-2)")]
    CheckCharacterMismatch {
        /// The check character the first 17 digits call for.
        expected: char,
    },
    /// Digits 7–14 are a birth date after the day the number was received: nobody is born in
    /// the future, so the number is mistyped (or invented). The date is not named: it is
    /// personal data.
    #[error("digits 7-14 of a resident ID number must be a birth date no later than today")]
    BornAfterToday,
    /// A sequence number for [`ResidentId::from_parts`] had more than three digits.
    #[error("the sequence of a resident ID number must be 0-999, got {sequence}")]
    SequenceOutOfRange {
        /// The sequence number given.
        sequence: u16,
    },
}

impl ResidentId {
    /// Parses and validates an ID number: 18 characters, 17 digits then a digit or `X` (`x` is
    /// accepted and stored as `X`), a plausible region code, a real birth date from 1850 on and
    /// the right check character.
    pub fn parse(text: &str) -> Result<ResidentId, ResidentIdError> {
        let length = text.chars().count();
        if length != LENGTH {
            return Err(ResidentIdError::WrongLength { length });
        }
        for (index, character) in text.chars().enumerate() {
            let is_last = index == LENGTH - 1;
            let allowed = character.is_ascii_digit() || (is_last && matches!(character, 'X' | 'x'));
            if !allowed {
                return Err(ResidentIdError::NotDigits {
                    position: index + 1,
                });
            }
        }
        // Every character is ASCII now, so byte offsets are character offsets.
        let normalised = text.to_ascii_uppercase();
        let (body, check) = normalised.split_at(LENGTH - 1);
        let (region, rest) = body.split_at(6);
        let (birth, sequence) = rest.split_at(8);
        let region = RegionCode::parse(region).map_err(ResidentIdError::BadRegion)?;
        let birth = birth_date_of(birth).ok_or(ResidentIdError::BadBirthDate)?;
        let expected = check_character(body);
        if check.as_bytes() != [expected] {
            return Err(ResidentIdError::CheckCharacterMismatch {
                expected: char::from(expected),
            });
        }
        // ASCII `0` is even, so each digit's byte has the digit's parity.
        let odd = sequence.bytes().last().is_some_and(|digit| digit % 2 == 1);
        let sex = if odd { Sex::Male } else { Sex::Female };
        Ok(ResidentId {
            number: normalised,
            region,
            birth,
            sex,
        })
    }

    /// Parses an ID number received from outside on `today` (the China date of the receiving
    /// service's clock): as [`ResidentId::parse`], and a birth date after `today` is refused
    /// with [`ResidentIdError::BornAfterToday`]. A person born today is accepted. Every ID
    /// number that comes in from outside (applications, certificate requests, platform
    /// messages) is read this way; `parse` alone is for numbers already stored.
    pub fn parse_received_on(text: &str, today: NaiveDate) -> Result<ResidentId, ResidentIdError> {
        let id = ResidentId::parse(text)?;
        if id.birth > today {
            return Err(ResidentIdError::BornAfterToday);
        }
        Ok(id)
    }

    /// Builds the ID number of a person registered in `region`, born on `birth`, with this
    /// `sequence` (0–999), computing the check character. The synthetic population uses it.
    ///
    /// Refused when the sequence has more than three digits or the birth year is before 1850
    /// or after 9999 (it would not fit eight digits).
    pub fn from_parts(
        region: RegionCode,
        birth: NaiveDate,
        sequence: u16,
    ) -> Result<ResidentId, ResidentIdError> {
        if sequence > MAX_SEQUENCE {
            return Err(ResidentIdError::SequenceOutOfRange { sequence });
        }
        if !(EARLIEST_BIRTH_YEAR..=9999).contains(&birth.year()) {
            return Err(ResidentIdError::BadBirthDate);
        }
        let mut text = format!("{region}{}{sequence:03}", birth.format("%Y%m%d"));
        text.push(char::from(check_character(&text)));
        ResidentId::parse(&text)
    }

    /// The full, unmasked number. Call it only where the number must leave the process in
    /// full (the store, a message to another bureau), never for a log line.
    pub fn expose_unmasked(&self) -> &str {
        &self.number
    }

    /// The number with the birth date hidden: first 6 and last 4 characters, 8 `*` between.
    pub fn masked(&self) -> String {
        // The number is 18 ASCII characters, so both ranges exist; `get` keeps this panic-free.
        let head = self.number.get(..6).unwrap_or_default();
        let tail = self.number.get(LENGTH - 4..).unwrap_or_default();
        format!("{head}********{tail}")
    }

    /// The date of birth encoded in digits 7–14.
    pub fn birth_date(&self) -> NaiveDate {
        self.birth
    }

    /// The region where the number was issued (usually a county), from the first six digits.
    pub fn birth_region(&self) -> RegionCode {
        self.region
    }

    /// The sex encoded in the 17th digit: odd for male, even for female.
    pub fn sex(&self) -> Sex {
        self.sex
    }
}

/// Masks a person's name for logs: the first character stays, each other becomes `*`
/// (`张三丰` → `张**`). A one-character name is masked entirely; surrounding white space is
/// dropped first.
pub fn mask_name(name: &str) -> String {
    let name = name.trim();
    let count = name.chars().count();
    match name.chars().next() {
        Some(_) if count == 1 => "*".to_owned(),
        Some(first) => std::iter::once(first)
            .chain(std::iter::repeat_n('*', count - 1))
            .collect(),
        None => String::new(),
    }
}

/// The ISO 7064 MOD 11-2 check character of 17 ASCII digits.
fn check_character(body: &str) -> u8 {
    let sum: u32 = body
        .bytes()
        .zip(WEIGHTS)
        .map(|(digit, weight)| u32::from(digit.wrapping_sub(b'0')) * weight)
        .sum();
    CHECK_CHARACTERS
        .get((sum % 11) as usize)
        .copied()
        .unwrap_or(b'1')
}

/// The date of eight ASCII digits `YYYYMMDD`, if it is a real date from 1850 on.
fn birth_date_of(digits: &str) -> Option<NaiveDate> {
    let year: i32 = digits.get(..4)?.parse().ok()?;
    let month: u32 = digits.get(4..6)?.parse().ok()?;
    let day: u32 = digits.get(6..8)?.parse().ok()?;
    if year < EARLIEST_BIRTH_YEAR {
        return None;
    }
    NaiveDate::from_ymd_opt(year, month, day)
}

impl fmt::Display for ResidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Debug for ResidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResidentId({})", self.masked())
    }
}

impl FromStr for ResidentId {
    type Err = ResidentIdError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ResidentId::parse(text)
    }
}

impl TryFrom<&str> for ResidentId {
    type Error = ResidentIdError;
    fn try_from(text: &str) -> Result<Self, Self::Error> {
        ResidentId::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(text: &str) -> ResidentId {
        ResidentId::parse(text).expect("a valid ID number")
    }

    fn date(year: i32, month: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(year, month, day).expect("a real date")
    }

    fn region(text: &str) -> RegionCode {
        RegionCode::parse(text).expect("a valid region code")
    }

    #[test]
    fn published_example_numbers_parse() {
        let beijing = id("11010519491231002X");
        assert_eq!(beijing.birth_region(), region("110105"));
        assert_eq!(beijing.birth_date(), date(1949, 12, 31));
        assert_eq!(beijing.sex(), Sex::Female);
        let guangdong = id("440524188001010014");
        assert_eq!(guangdong.birth_date(), date(1880, 1, 1));
        assert_eq!(guangdong.sex(), Sex::Male);
    }

    #[test]
    fn a_lower_case_check_character_is_stored_upper_case() {
        let lower = id("11010519491231002x");
        assert_eq!(lower.expose_unmasked(), "11010519491231002X");
        assert_eq!(lower, id("11010519491231002X"));
        assert_eq!("11010519491231002x".parse::<ResidentId>(), Ok(lower));
    }

    #[test]
    fn display_and_debug_are_masked() {
        let number = id("11010519491231002X");
        assert_eq!(number.masked(), "110105********002X");
        assert_eq!(number.to_string(), "110105********002X");
        assert_eq!(format!("{number:?}"), "ResidentId(110105********002X)");
        assert_eq!(number.expose_unmasked(), "11010519491231002X");
    }

    #[test]
    fn malformed_numbers_are_refused_with_the_rule_they_break() {
        let cases = [
            ("", ResidentIdError::WrongLength { length: 0 }),
            (
                "11010519491231002",
                ResidentIdError::WrongLength { length: 17 },
            ),
            (
                "11010519491231002X1",
                ResidentIdError::WrongLength { length: 19 },
            ),
            (
                "11010519491231002Y",
                ResidentIdError::NotDigits { position: 18 },
            ),
            (
                "1101051949123100X2",
                ResidentIdError::NotDigits { position: 17 },
            ),
            (
                "11010519491231002中",
                ResidentIdError::NotDigits { position: 18 },
            ),
            (
                " 1010519491231002X",
                ResidentIdError::NotDigits { position: 1 },
            ),
            (
                "１1010519491231002X",
                ResidentIdError::NotDigits { position: 1 },
            ),
            (
                "99010519491231002X",
                ResidentIdError::BadRegion(RegionCodeError::UnknownProvince("990105".to_owned())),
            ),
            ("11010519490231002X", ResidentIdError::BadBirthDate),
            ("11010518491231002X", ResidentIdError::BadBirthDate),
            ("11010519491331002X", ResidentIdError::BadBirthDate),
            (
                "110105194912310020",
                ResidentIdError::CheckCharacterMismatch { expected: 'X' },
            ),
        ];
        for (text, error) in cases {
            assert_eq!(ResidentId::parse(text), Err(error), "{text:?}");
        }
    }

    #[test]
    fn a_number_built_from_parts_round_trips() {
        let built =
            ResidentId::from_parts(region("150102"), date(1990, 2, 28), 37).expect("valid parts");
        assert_eq!(built.expose_unmasked().get(..17), Some("15010219900228037"));
        assert_eq!(
            ResidentId::parse(built.expose_unmasked()),
            Ok(built.clone())
        );
        assert_eq!(built.birth_region(), region("150102"));
        assert_eq!(built.birth_date(), date(1990, 2, 28));
        assert_eq!(built.sex(), Sex::Male);
        assert_eq!(
            ResidentId::from_parts(region("110105"), date(1949, 12, 31), 2),
            Ok(id("11010519491231002X"))
        );
    }

    #[test]
    fn parts_that_do_not_fit_the_format_are_refused() {
        assert_eq!(
            ResidentId::from_parts(region("110105"), date(1990, 1, 1), 1000),
            Err(ResidentIdError::SequenceOutOfRange { sequence: 1000 })
        );
        assert_eq!(
            ResidentId::from_parts(region("110105"), date(1849, 12, 31), 1),
            Err(ResidentIdError::BadBirthDate)
        );
        assert_eq!(
            ResidentId::from_parts(region("110105"), date(10_000, 1, 1), 1),
            Err(ResidentIdError::BadBirthDate)
        );
    }

    /// Future birth dates are refused: an ID number received today whose birth date is after
    /// today names nobody; born today is fine.
    #[test]
    fn future_birth_dates_are_refused() {
        let today = date(2026, 3, 2);
        let born = |day: NaiveDate| {
            let built = ResidentId::from_parts(region("150102"), day, 1).expect("valid parts");
            ResidentId::parse_received_on(built.expose_unmasked(), today)
        };
        assert!(born(date(1990, 2, 28)).is_ok());
        assert!(born(today).is_ok(), "born today");
        assert_eq!(born(date(2026, 3, 3)), Err(ResidentIdError::BornAfterToday));
        let refusal = born(date(2031, 1, 1))
            .expect_err("in the future")
            .to_string();
        assert!(
            !refusal.contains("2031"),
            "the date is not shown: {refusal}"
        );
        // The other rules still come first.
        assert_eq!(
            ResidentId::parse_received_on("15010219700101000", today),
            Err(ResidentIdError::WrongLength { length: 17 })
        );
    }

    #[test]
    fn names_keep_only_their_first_character() {
        assert_eq!(mask_name("张三丰"), "张**");
        assert_eq!(mask_name("张三"), "张*");
        assert_eq!(mask_name(" 李四 "), "李*");
        assert_eq!(mask_name("欧阳"), "欧*");
        assert_eq!(mask_name("买买提·吐尔逊"), "买******");
        assert_eq!(mask_name("王"), "*");
        assert_eq!(mask_name(""), "");
        assert_eq!(mask_name("   "), "");
    }

    /// A valid ID number from arbitrary parts.
    fn any_resident_id() -> impl Strategy<Value = ResidentId> {
        (
            11u32..=82,
            0u32..10_000,
            1850i32..=2030,
            1u32..=366,
            0u16..=999,
        )
            .prop_map(|(province, rest, year, ordinal, sequence)| {
                let region = RegionCode::from_value(province * 10_000 + rest).expect("in range");
                let birth = NaiveDate::from_yo_opt(year, ordinal)
                    .or_else(|| NaiveDate::from_yo_opt(year, 365))
                    .expect("a real day of the year");
                ResidentId::from_parts(region, birth, sequence).expect("valid parts")
            })
    }

    proptest! {
        #[test]
        fn any_single_character_change_is_rejected(
            resident in any_resident_id(),
            position in 0usize..18,
            replacement in prop::sample::select(
                "0123456789XxAz -.中１".chars().collect::<Vec<char>>()
            ),
        ) {
            let original: Vec<char> = resident.expose_unmasked().chars().collect();
            // `x` for `X` is the same number, not a change.
            prop_assume!(!original[position].eq_ignore_ascii_case(&replacement));
            let mut changed = original.clone();
            changed[position] = replacement;
            let changed: String = changed.into_iter().collect();
            let error = ResidentId::parse(&changed);
            prop_assert!(error.is_err(), "{} was accepted", changed);
            // Errors never carry the number, neither the changed one nor the original.
            if let Err(error) = error {
                for shown in [error.to_string(), format!("{error:?}")] {
                    prop_assert!(!shown.contains(&changed), "{}", shown);
                    prop_assert!(!shown.contains(resident.expose_unmasked()), "{}", shown);
                    prop_assert!(!shown.contains(&original[..17].iter().collect::<String>()));
                }
            }
        }

        #[test]
        fn masking_never_shows_the_birth_date(resident in any_resident_id()) {
            let birth = resident.birth_date().format("%Y%m%d").to_string();
            for shown in [resident.masked(), resident.to_string(), format!("{resident:?}")] {
                prop_assert!(!shown.contains(&birth), "{}", shown);
                prop_assert!(!shown.contains(resident.expose_unmasked()), "{}", shown);
                prop_assert_eq!(shown.matches('*').count(), 8);
            }
        }

        #[test]
        fn a_number_from_parts_parses_back_to_itself(resident in any_resident_id()) {
            prop_assert_eq!(ResidentId::parse(resident.expose_unmasked()), Ok(resident.clone()));
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(text in "\\PC{0,20}") {
            let _ = ResidentId::parse(&text);
        }

        #[test]
        fn masking_arbitrary_names_never_panics_or_shows_more_than_one_character(
            name in "\\PC{0,12}",
        ) {
            let masked = mask_name(&name);
            prop_assert!(masked.chars().skip(1).all(|c| c == '*'), "{}", masked);
        }
    }
}
