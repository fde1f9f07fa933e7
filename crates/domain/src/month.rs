//! Calendar months and contribution history: the unit in which contribution years (缴费年限) are
//! counted, the periods a person paid for, and how months from other regions are added.
//!
//! A [`YearMonth`] is the platform's `YYYYMM` (as in `fst_insu_ym`). A [`ContributionPeriod`] is
//! an inclusive run of months paid under one scheme in one region. A [`ContributionRecord`] is a
//! person's local periods plus the deemed months (视同缴费年限) brought in by earlier transfers.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::region::RegionCode;
use crate::scheme::Scheme;

/// The earliest year a [`YearMonth`] may name: before the schemes existed, so any earlier year is
/// a data error rather than history.
pub const FIRST_YEAR: u16 = 1950;
/// The latest year a [`YearMonth`] may name: a limit on arithmetic, far beyond any real record.
pub const LAST_YEAR: u16 = 2100;

/// A calendar month, `YYYYMM`, with the year in [`FIRST_YEAR`]`..=`[`LAST_YEAR`].
///
/// Ordered chronologically. Serialised as the six-character string, e.g. `"202603"`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct YearMonth {
    // Field order matters: the derived ordering compares the year first.
    year: u16,
    month: u8,
}

/// Why a value is not a [`YearMonth`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum YearMonthError {
    /// The text is not six characters long.
    #[error("year-month must be exactly 6 digits (YYYYMM), got {length} characters")]
    WrongLength {
        /// How many characters were given.
        length: usize,
    },
    /// The text contains something other than the digits 0-9.
    #[error("year-month must contain only the digits 0-9 (YYYYMM)")]
    NotDigits,
    /// The month is not 01–12.
    #[error("month of a year-month must be 01-12, got {month}")]
    MonthOutOfRange {
        /// The month that was given.
        month: u8,
    },
    /// The year is outside 1950–2100.
    #[error("year of a year-month must be {FIRST_YEAR}-{LAST_YEAR}, got {year}")]
    YearOutOfRange {
        /// The year that was given.
        year: i32,
    },
}

impl YearMonth {
    /// The earliest representable month, January [`FIRST_YEAR`].
    pub const MIN: YearMonth = YearMonth {
        year: FIRST_YEAR,
        month: 1,
    };
    /// The latest representable month, December [`LAST_YEAR`].
    pub const MAX: YearMonth = YearMonth {
        year: LAST_YEAR,
        month: 12,
    };

    /// The month `month` (1–12) of `year` (1950–2100).
    pub fn new(year: u16, month: u8) -> Result<Self, YearMonthError> {
        if !(1..=12).contains(&month) {
            return Err(YearMonthError::MonthOutOfRange { month });
        }
        if !(FIRST_YEAR..=LAST_YEAR).contains(&year) {
            return Err(YearMonthError::YearOutOfRange {
                year: i32::from(year),
            });
        }
        Ok(Self { year, month })
    }

    /// Parses exactly six ASCII digits, `YYYYMM`; no signs, spaces or separators.
    pub fn parse(text: &str) -> Result<Self, YearMonthError> {
        let length = text.chars().count();
        if length != 6 {
            return Err(YearMonthError::WrongLength { length });
        }
        if !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(YearMonthError::NotDigits);
        }
        let (year_text, month_text) = text.split_at_checked(4).ok_or(YearMonthError::NotDigits)?;
        // Both parts are known to be ASCII digits only, so these parses cannot fail.
        let year: u16 = year_text.parse().map_err(|_| YearMonthError::NotDigits)?;
        let month: u8 = month_text.parse().map_err(|_| YearMonthError::NotDigits)?;
        Self::new(year, month)
    }

    /// The month that contains `date`; an error when the year is outside 1950–2100.
    pub fn from_date(date: NaiveDate) -> Result<Self, YearMonthError> {
        let year = u16::try_from(date.year())
            .map_err(|_| YearMonthError::YearOutOfRange { year: date.year() })?;
        // chrono's month is always 1..=12.
        Self::new(year, date.month() as u8)
    }

    /// The year, e.g. `2026`.
    pub fn year(self) -> u16 {
        self.year
    }

    /// The month of the year, 1–12.
    pub fn month(self) -> u8 {
        self.month
    }

    /// The first day of this month.
    pub fn first_day(self) -> NaiveDate {
        // Every year in 1950..=2100 and month in 1..=12 is a valid date, so the fallback is
        // unreachable; it exists only so that this function cannot panic.
        NaiveDate::from_ymd_opt(i32::from(self.year), u32::from(self.month), 1)
            .unwrap_or(NaiveDate::MIN)
    }

    /// The month `months` after this one (before it, if negative); `None` outside 1950–2100.
    pub fn plus_months(self, months: i32) -> Option<Self> {
        let index = self.index().checked_add(months)?;
        Self::from_index(index)
    }

    /// Like [`YearMonth::plus_months`], but clamped to [`YearMonth::MIN`]..=[`YearMonth::MAX`].
    pub fn saturating_plus_months(self, months: i32) -> Self {
        match self.plus_months(months) {
            Some(month) => month,
            None if months < 0 => Self::MIN,
            None => Self::MAX,
        }
    }

    /// How many months from this month to `other`: `202601.months_until(202603) == 2`,
    /// negative when `other` is earlier.
    pub fn months_until(self, other: YearMonth) -> i32 {
        other.index() - self.index()
    }

    /// Months since January of year 0, a dense index for arithmetic.
    fn index(self) -> i32 {
        i32::from(self.year) * 12 + i32::from(self.month) - 1
    }

    fn from_index(index: i32) -> Option<Self> {
        let year = u16::try_from(index.div_euclid(12)).ok()?;
        let month = u8::try_from(index.rem_euclid(12) + 1).ok()?;
        Self::new(year, month).ok()
    }
}

impl fmt::Display for YearMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}{:02}", self.year, self.month)
    }
}

impl fmt::Debug for YearMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "YearMonth({self})")
    }
}

impl FromStr for YearMonth {
    type Err = YearMonthError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for YearMonth {
    type Error = YearMonthError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<YearMonth> for String {
    fn from(value: YearMonth) -> Self {
        value.to_string()
    }
}

/// An inclusive run of months, `from..=to`, paid under one scheme in one region.
///
/// The constructor guarantees `from <= to`, so a period is never empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "UncheckedPeriod")]
pub struct ContributionPeriod {
    from: YearMonth,
    to: YearMonth,
    scheme: Scheme,
    region: RegionCode,
}

/// Why a contribution period is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    /// `from` is after `to`.
    #[error("contribution period from {from} must not be after to {to}")]
    FromAfterTo {
        /// The first month given.
        from: YearMonth,
        /// The last month given.
        to: YearMonth,
    },
}

/// The serialised shape of a period, checked by [`ContributionPeriod::new`] on the way in.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UncheckedPeriod {
    from: YearMonth,
    to: YearMonth,
    scheme: Scheme,
    region: RegionCode,
}

impl TryFrom<UncheckedPeriod> for ContributionPeriod {
    type Error = PeriodError;
    fn try_from(value: UncheckedPeriod) -> Result<Self, Self::Error> {
        Self::new(value.from, value.to, value.scheme, value.region)
    }
}

impl ContributionPeriod {
    /// The months `from..=to` under `scheme` in `region`; refused when `from` is after `to`.
    pub fn new(
        from: YearMonth,
        to: YearMonth,
        scheme: Scheme,
        region: RegionCode,
    ) -> Result<Self, PeriodError> {
        if from > to {
            return Err(PeriodError::FromAfterTo { from, to });
        }
        Ok(Self {
            from,
            to,
            scheme,
            region,
        })
    }

    /// The first month paid.
    pub fn from(&self) -> YearMonth {
        self.from
    }

    /// The last month paid (inclusive).
    pub fn to(&self) -> YearMonth {
        self.to
    }

    /// The scheme the months were paid under.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The region the months were paid in.
    pub fn region(&self) -> RegionCode {
        self.region
    }

    /// How many months the period covers, at least 1.
    pub fn months(&self) -> u32 {
        // from <= to, so the difference is non-negative.
        self.from.months_until(self.to).unsigned_abs() + 1
    }
}

/// How many distinct calendar months `periods` cover.
///
/// A month covered by several periods counts **once overall**, whatever the schemes or regions of
/// the overlapping periods: nobody may be insured twice (不得重复参保), so an overlap is a double
/// record of one month, not two months of contribution. Order does not matter.
pub fn total_months(periods: &[ContributionPeriod]) -> u32 {
    let mut runs: Vec<(i32, i32)> = periods
        .iter()
        .map(|p| (p.from.index(), p.to.index()))
        .collect();
    runs.sort_unstable();
    let mut total: u32 = 0;
    let mut current: Option<(i32, i32)> = None;
    for (start, end) in runs {
        current = match current {
            Some((open_start, open_end)) if start <= open_end + 1 => {
                Some((open_start, open_end.max(end)))
            }
            Some((open_start, open_end)) => {
                total += (open_end - open_start + 1).unsigned_abs();
                Some((start, end))
            }
            None => Some((start, end)),
        };
    }
    if let Some((start, end)) = current {
        total += (end - start + 1).unsigned_abs();
    }
    total
}

/// A person's contribution history as one region sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContributionRecord {
    /// The months paid in this region, possibly under both schemes.
    pub periods: Vec<ContributionPeriod>,
    /// Months brought in from other regions by transfers (视同缴费年限), already converted to this
    /// region's scheme where a conversion applied. Kept as a sum: the periods stay at the region
    /// that recorded them.
    pub deemed_months: u32,
}

impl ContributionRecord {
    /// Distinct months paid in this region (see [`total_months`] for how overlaps count).
    pub fn local_months(&self) -> u32 {
        total_months(&self.periods)
    }

    /// Distinct months paid in this region under `scheme` only.
    pub fn local_months_in(&self, scheme: Scheme) -> u32 {
        let periods: Vec<ContributionPeriod> = self
            .periods
            .iter()
            .copied()
            .filter(|p| p.scheme == scheme)
            .collect();
        total_months(&periods)
    }

    /// Local months plus deemed months: transferred years are added (Social Insurance Law art. 32).
    pub fn total_months(&self) -> u32 {
        self.local_months().saturating_add(self.deemed_months)
    }
}

/// Converts months paid under the resident scheme into employee-scheme months at a rate of
/// `employee_months_per_resident_year` employee months for each full resident year.
///
/// Partial years count pro rata and the result is **rounded down** to whole months, so a person is
/// never credited a month they did not earn: at 3 months a year, 12 resident months give 3,
/// 18 give 4 (4.5 rounded down) and 3 give 0. The result saturates at `u32::MAX`.
pub fn convert_resident_months(resident_months: u32, employee_months_per_resident_year: u8) -> u32 {
    let converted = u64::from(resident_months) * u64::from(employee_months_per_resident_year) / 12;
    u32::try_from(converted).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ym(text: &str) -> YearMonth {
        YearMonth::parse(text).expect("valid year-month")
    }

    fn region(text: &str) -> RegionCode {
        RegionCode::parse(text).expect("valid region")
    }

    fn period(from: &str, to: &str) -> ContributionPeriod {
        ContributionPeriod::new(ym(from), ym(to), Scheme::Employee, region("150100")).unwrap()
    }

    #[test]
    fn a_year_month_parses_and_displays_as_six_digits() {
        let month = ym("202603");
        assert_eq!((month.year(), month.month()), (2026, 3));
        assert_eq!(month.to_string(), "202603");
        assert_eq!(format!("{month:?}"), "YearMonth(202603)");
    }

    #[test]
    fn malformed_year_months_are_refused_with_the_reason() {
        assert_eq!(
            YearMonth::parse("20263"),
            Err(YearMonthError::WrongLength { length: 5 })
        );
        assert_eq!(YearMonth::parse("2026-3"), Err(YearMonthError::NotDigits));
        assert_eq!(YearMonth::parse("+20263"), Err(YearMonthError::NotDigits));
        assert_eq!(
            YearMonth::parse("２０２６０３"),
            Err(YearMonthError::NotDigits)
        );
        assert_eq!(
            YearMonth::parse("202600"),
            Err(YearMonthError::MonthOutOfRange { month: 0 })
        );
        assert_eq!(
            YearMonth::parse("202613"),
            Err(YearMonthError::MonthOutOfRange { month: 13 })
        );
        assert_eq!(
            YearMonth::parse("194912"),
            Err(YearMonthError::YearOutOfRange { year: 1949 })
        );
        assert_eq!(
            YearMonth::parse("210101"),
            Err(YearMonthError::YearOutOfRange { year: 2101 })
        );
        assert!(YearMonth::parse("195001").is_ok());
        assert!(YearMonth::parse("210012").is_ok());
    }

    #[test]
    fn month_arithmetic_crosses_year_boundaries() {
        assert_eq!(ym("202611").plus_months(3), Some(ym("202702")));
        assert_eq!(ym("202602").plus_months(-2), Some(ym("202512")));
        assert_eq!(ym("202601").months_until(ym("202603")), 2);
        assert_eq!(ym("202603").months_until(ym("202601")), -2);
        assert_eq!(ym("195001").months_until(ym("210012")), 151 * 12 - 1);
    }

    #[test]
    fn month_arithmetic_outside_the_supported_years_is_none() {
        assert_eq!(YearMonth::MAX.plus_months(1), None);
        assert_eq!(YearMonth::MIN.plus_months(-1), None);
        assert_eq!(YearMonth::MIN.plus_months(i32::MIN), None);
        assert_eq!(YearMonth::MAX.plus_months(i32::MAX), None);
        assert_eq!(YearMonth::MAX.saturating_plus_months(5), YearMonth::MAX);
        assert_eq!(YearMonth::MIN.saturating_plus_months(-5), YearMonth::MIN);
    }

    #[test]
    fn a_date_belongs_to_its_month_and_every_month_has_a_first_day() {
        let date = NaiveDate::from_ymd_opt(2026, 2, 28).unwrap();
        assert_eq!(YearMonth::from_date(date), Ok(ym("202602")));
        assert_eq!(
            ym("202602").first_day(),
            NaiveDate::from_ymd_opt(2026, 2, 1).unwrap()
        );
        let old = NaiveDate::from_ymd_opt(1900, 1, 1).unwrap();
        assert_eq!(
            YearMonth::from_date(old),
            Err(YearMonthError::YearOutOfRange { year: 1900 })
        );
        let mut month = YearMonth::MIN;
        while let Some(next) = month.plus_months(1) {
            assert_eq!(YearMonth::from_date(month.first_day()), Ok(month));
            month = next;
        }
    }

    #[test]
    fn a_year_month_serialises_as_its_string() {
        #[derive(Debug, Serialize, Deserialize)]
        struct Wrapper {
            month: YearMonth,
        }
        let text = toml::to_string(&Wrapper {
            month: ym("202603"),
        })
        .unwrap();
        assert_eq!(text, "month = \"202603\"\n");
        assert!(toml::from_str::<Wrapper>("month = \"202613\"").is_err());
    }

    #[test]
    fn a_period_that_ends_before_it_starts_is_refused() {
        let error = ContributionPeriod::new(
            ym("202605"),
            ym("202601"),
            Scheme::Resident,
            region("540100"),
        )
        .unwrap_err();
        assert_eq!(
            error,
            PeriodError::FromAfterTo {
                from: ym("202605"),
                to: ym("202601")
            }
        );
        assert!(error.to_string().contains("from 202605"));
    }

    #[test]
    fn a_period_deserialises_only_when_valid() {
        let good = r#"from = "202401"
to = "202412"
scheme = "employee"
region = "150100"
"#;
        let period: ContributionPeriod = toml::from_str(good).unwrap();
        assert_eq!(period.months(), 12);
        assert_eq!(toml::to_string(&period).unwrap(), good);
        let reversed = good.replace("202401", "202501");
        assert!(toml::from_str::<ContributionPeriod>(&reversed).is_err());
    }

    #[test]
    fn a_single_month_period_counts_one_month() {
        assert_eq!(period("202603", "202603").months(), 1);
    }

    #[test]
    fn overlapping_months_count_once_overall() {
        let employee = period("202401", "202412");
        let resident = ContributionPeriod::new(
            ym("202410"),
            ym("202503"),
            Scheme::Resident,
            region("540100"),
        )
        .unwrap();
        assert_eq!(total_months(&[employee, resident]), 15);
        assert_eq!(total_months(&[employee, employee]), 12);
    }

    #[test]
    fn adjacent_and_separate_periods_add_up() {
        assert_eq!(
            total_months(&[period("202401", "202406"), period("202407", "202412")]),
            12
        );
        assert_eq!(
            total_months(&[period("202401", "202403"), period("202501", "202503")]),
            6
        );
        assert_eq!(total_months(&[]), 0);
    }

    #[test]
    fn transferred_years_are_added_to_local_years() {
        let record = ContributionRecord {
            periods: vec![
                period("202001", "202012"),
                ContributionPeriod::new(
                    ym("202101"),
                    ym("202106"),
                    Scheme::Resident,
                    region("150100"),
                )
                .unwrap(),
            ],
            deemed_months: 120,
        };
        assert_eq!(record.local_months(), 18);
        assert_eq!(record.local_months_in(Scheme::Employee), 12);
        assert_eq!(record.local_months_in(Scheme::Resident), 6);
        assert_eq!(record.total_months(), 138);
    }

    #[test]
    fn one_resident_year_converts_to_three_employee_months_rounding_partial_years_down() {
        assert_eq!(convert_resident_months(12, 3), 3);
        assert_eq!(convert_resident_months(18, 3), 4);
        assert_eq!(convert_resident_months(3, 3), 0);
        assert_eq!(convert_resident_months(120, 3), 30);
        assert_eq!(convert_resident_months(24, 12), 24);
        assert_eq!(convert_resident_months(0, 3), 0);
        assert_eq!(convert_resident_months(u32::MAX, 255), u32::MAX);
    }

    fn any_year_month() -> impl Strategy<Value = YearMonth> {
        (FIRST_YEAR..=LAST_YEAR, 1u8..=12).prop_map(|(y, m)| YearMonth::new(y, m).unwrap())
    }

    fn any_period() -> impl Strategy<Value = ContributionPeriod> {
        (any_year_month(), 0i32..60, any::<bool>()).prop_map(|(from, length, employee)| {
            let to = from.saturating_plus_months(length);
            let scheme = if employee {
                Scheme::Employee
            } else {
                Scheme::Resident
            };
            ContributionPeriod::new(from, to, scheme, RegionCode::parse("150100").unwrap()).unwrap()
        })
    }

    fn near_periods() -> impl Strategy<Value = Vec<ContributionPeriod>> {
        // Periods within a few years of each other, so that overlaps are common.
        prop::collection::vec((0i32..48, 0i32..30), 0..8).prop_map(|runs| {
            runs.into_iter()
                .map(|(offset, length)| {
                    let from = ym("202001").saturating_plus_months(offset);
                    let to = from.saturating_plus_months(length);
                    ContributionPeriod::new(
                        from,
                        to,
                        Scheme::Employee,
                        RegionCode::parse("150100").unwrap(),
                    )
                    .unwrap()
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn total_months_lies_between_the_longest_period_and_the_sum_of_lengths(
            periods in prop::collection::vec(any_period(), 0..8),
            near in near_periods(),
        ) {
            for periods in [periods, near] {
                let total = total_months(&periods);
                let sum: u32 = periods.iter().map(ContributionPeriod::months).sum();
                let longest = periods.iter().map(ContributionPeriod::months).max().unwrap_or(0);
                prop_assert!(total <= sum);
                prop_assert!(total >= longest);
            }
        }

        #[test]
        fn total_months_does_not_depend_on_order(mut periods in near_periods()) {
            let forward = total_months(&periods);
            periods.reverse();
            prop_assert_eq!(total_months(&periods), forward);
            let half = periods.len() / 2;
            periods.rotate_left(half);
            prop_assert_eq!(total_months(&periods), forward);
        }

        #[test]
        fn total_months_counts_each_distinct_month(periods in near_periods()) {
            let mut months = std::collections::BTreeSet::new();
            for period in &periods {
                let mut month = period.from();
                while month <= period.to() {
                    months.insert(month);
                    month = match month.plus_months(1) { Some(next) => next, None => break };
                }
            }
            prop_assert_eq!(total_months(&periods) as usize, months.len());
        }

        #[test]
        fn a_year_month_survives_display_and_parse(month in any_year_month()) {
            prop_assert_eq!(YearMonth::parse(&month.to_string()), Ok(month));
        }

        #[test]
        fn plus_months_and_months_until_are_inverse(month in any_year_month(), delta in -3000i32..3000) {
            if let Some(later) = month.plus_months(delta) {
                prop_assert_eq!(month.months_until(later), delta);
            }
        }

        #[test]
        fn parsing_any_text_never_panics(text in "\\PC{0,8}") {
            let _ = YearMonth::parse(&text);
        }
    }
}
