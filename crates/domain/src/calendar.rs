//! The working-day calendar, and the statutory deadlines of a transfer counted on it.
//!
//! Statutory deadlines (医保办发〔2021〕43号: 10 working days to transfer out, 5 to transfer in,
//! 15 in all) are counted in *working days*: Monday to Friday, minus the public holidays the State
//! Council announces each year, plus the weekend days it declares working days in exchange
//! (调休上班). Those announcements are data, not code: each year is one TOML year file
//! ([`YearCalendar`]), 2026 ships embedded ([`OFFICIAL_2026`]), and an operator can add more.
//!
//! **Architecture Invariant:** a year with no file is never guessed. Its days are counted with
//! weekends only, and every [`Deadline`] whose counted span touches such a year says so in its
//! [`CalendarBasis`], naming the years, so a service can warn and show the estimate as one.
//!
//! **Counting rule:** the deadline `n` working days from a start date is the `n`-th working day
//! strictly *after* the start date. The start date itself never counts, whatever kind of day it
//! is: an application made on a Friday with a 1-working-day deadline is due the next working day.
//!
//! Everything here is pure: dates arrive as arguments, and year files arrive as text.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};

/// The embedded 2026 year file, transcribed from the State Council notice of 2025-11-04.
pub const OFFICIAL_2026: &str = include_str!("../data/calendar/2026.toml");

/// The longest span, in working days, that [`WorkingCalendar::add_working_days`] accepts.
pub const MAX_WORKING_DAYS: u16 = 366;

/// Why a year file was refused. Every message names the holiday and field at fault and the rule
/// it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CalendarError {
    /// The text is not TOML, or does not have the year-file shape (missing or unknown field,
    /// wrong type, impossible date such as 2026-02-30).
    #[error("calendar year file: {message}")]
    Syntax {
        /// The TOML parser's description, which names the line and field.
        message: String,
    },
    /// `year` is outside the years a TOML date can express.
    #[error("calendar year file: `year` is {year}; it must be between 1 and 9999")]
    YearOutOfRange {
        /// The year found.
        year: i32,
    },
    /// `source` is blank: every year file must say which notice it transcribes.
    #[error("calendar year {year}: `source` is empty; name the notice the file transcribes")]
    MissingSource {
        /// The file's year.
        year: i32,
    },
    /// A holiday's `name` is blank.
    #[error("calendar year {year}: holiday #{position} has an empty `name`")]
    EmptyHolidayName {
        /// The file's year.
        year: i32,
        /// The holiday's position in the file, counting from 1.
        position: usize,
    },
    /// A date field holds a time or an offset as well as a date.
    #[error(
        "holiday {holiday:?}: `{field}` is {value}; it must be a plain date such as 2026-01-01 \
         (no time, no offset)"
    )]
    NotADate {
        /// The holiday's name.
        holiday: String,
        /// The field at fault.
        field: &'static str,
        /// The value found, as written.
        value: String,
    },
    /// A date lies outside the file's `year`.
    #[error("holiday {holiday:?}: `{field}` {date} is not in the file's `year` {year}")]
    OutsideYear {
        /// The holiday's name.
        holiday: String,
        /// The field at fault.
        field: &'static str,
        /// The date found.
        date: NaiveDate,
        /// The file's year.
        year: i32,
    },
    /// `first_day` is after `last_day`.
    #[error("holiday {holiday:?}: `first_day` {first_day} is after `last_day` {last_day}")]
    Reversed {
        /// The holiday's name.
        holiday: String,
        /// The `first_day` found.
        first_day: NaiveDate,
        /// The `last_day` found.
        last_day: NaiveDate,
    },
    /// Two holidays share a day.
    #[error("holiday {holiday:?} overlaps holiday {other:?} on {date}; holidays must not overlap")]
    OverlappingHolidays {
        /// The later-listed holiday.
        holiday: String,
        /// The earlier-listed holiday it overlaps.
        other: String,
        /// The first day they share.
        date: NaiveDate,
    },
    /// A make-up working day falls on a weekday (which is a working day anyway).
    #[error(
        "holiday {holiday:?}: `makeup_working_days` entry {date} is a {weekday}; a make-up \
         working day (调休上班) must be a Saturday or Sunday"
    )]
    MakeUpNotWeekend {
        /// The holiday's name.
        holiday: String,
        /// The date found.
        date: NaiveDate,
        /// The weekday it falls on.
        weekday: Weekday,
    },
    /// A make-up working day falls inside a holiday.
    #[error(
        "holiday {holiday:?}: `makeup_working_days` entry {date} falls inside holiday \
         {inside:?}; a day cannot be both a day off and a make-up working day"
    )]
    MakeUpInsideHoliday {
        /// The holiday whose list holds the date.
        holiday: String,
        /// The date found.
        date: NaiveDate,
        /// The holiday the date falls in.
        inside: String,
    },
    /// A make-up working day is listed twice.
    #[error(
        "holiday {holiday:?}: `makeup_working_days` entry {date} is already listed by holiday \
         {other:?}; list each make-up working day once"
    )]
    DuplicateMakeUp {
        /// The holiday whose list repeats the date.
        holiday: String,
        /// The repeated date.
        date: NaiveDate,
        /// The holiday that listed it first.
        other: String,
    },
    /// Two files for the same year were supplied to one [`WorkingCalendar`].
    #[error("calendar year {year} is supplied more than once; each year takes exactly one file")]
    DuplicateYear {
        /// The repeated year.
        year: i32,
    },
}

/// Why a deadline could not be counted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeadlineError {
    /// `days` is above [`MAX_WORKING_DAYS`].
    #[error("`days` is {days}; a deadline may span at most {max} working days")]
    TooManyDays {
        /// The number of working days asked for.
        days: u16,
        /// The limit, [`MAX_WORKING_DAYS`].
        max: u16,
    },
    /// Counting from `start` runs past the last date the calendar can represent.
    #[error("`start` {start}: counting {days} working days runs past the last representable date")]
    OutOfRange {
        /// The start date.
        start: NaiveDate,
        /// The number of working days asked for.
        days: u16,
    },
    /// The bounded search found too few working days (only possible if the calendar holds years
    /// with almost no working days).
    #[error(
        "`start` {start}: no {days}th working day found within {searched} calendar days; the \
         loaded year files leave too few working days"
    )]
    NotFound {
        /// The start date.
        start: NaiveDate,
        /// The number of working days asked for.
        days: u16,
        /// How many calendar days were examined.
        searched: usize,
    },
}

/// One public holiday of a year file: its days off and the weekend days worked in exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holiday {
    /// English name, e.g. "Spring Festival".
    pub name: String,
    /// Chinese name, e.g. "春节", when the file gives one.
    pub name_zh: Option<String>,
    /// First day off.
    pub first_day: NaiveDate,
    /// Last day off (inclusive).
    pub last_day: NaiveDate,
    /// Saturdays and Sundays declared working days in exchange (调休上班).
    pub makeup_working_days: Vec<NaiveDate>,
}

impl Holiday {
    /// Whether `date` is one of this holiday's days off.
    #[must_use]
    pub fn contains(&self, date: NaiveDate) -> bool {
        self.first_day <= date && date <= self.last_day
    }
}

/// One validated year file: the holidays and make-up working days of one calendar year.
///
/// Built only through [`YearCalendar::parse_toml`] or [`YearCalendar::new`], so every value
/// obeys the year-file rules (see [`CalendarError`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YearCalendar {
    year: i32,
    source: String,
    holidays: Vec<Holiday>,
}

/// The year file as written, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawYear {
    year: i32,
    source: String,
    #[serde(default)]
    holidays: Vec<RawHoliday>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHoliday {
    name: String,
    #[serde(default)]
    name_zh: Option<String>,
    first_day: toml::value::Datetime,
    last_day: toml::value::Datetime,
    #[serde(default)]
    makeup_working_days: Vec<toml::value::Datetime>,
}

/// Converts a TOML local date into a `NaiveDate`, refusing times, offsets and impossible dates.
fn plain_date(
    value: &toml::value::Datetime,
    holiday: &str,
    field: &'static str,
) -> Result<NaiveDate, CalendarError> {
    let not_a_date = || CalendarError::NotADate {
        holiday: holiday.to_owned(),
        field,
        value: value.to_string(),
    };
    match (value.date, value.time, value.offset) {
        (Some(d), None, None) => {
            NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day))
                .ok_or_else(not_a_date)
        }
        _ => Err(not_a_date()),
    }
}

fn is_weekend(date: NaiveDate) -> bool {
    matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

impl YearCalendar {
    /// Parses and validates a year file (format: see `data/calendar/2026.toml`).
    ///
    /// # Errors
    /// [`CalendarError::Syntax`] if the text is not a year file; any other variant if a rule is
    /// broken (see [`YearCalendar::new`]).
    pub fn parse_toml(text: &str) -> Result<Self, CalendarError> {
        let raw: RawYear = toml::from_str(text).map_err(|e| CalendarError::Syntax {
            message: e.to_string(),
        })?;
        let mut holidays = Vec::with_capacity(raw.holidays.len());
        for h in raw.holidays {
            let first_day = plain_date(&h.first_day, &h.name, "first_day")?;
            let last_day = plain_date(&h.last_day, &h.name, "last_day")?;
            let makeup_working_days = h
                .makeup_working_days
                .iter()
                .map(|d| plain_date(d, &h.name, "makeup_working_days"))
                .collect::<Result<Vec<_>, _>>()?;
            holidays.push(Holiday {
                name: h.name,
                name_zh: h.name_zh,
                first_day,
                last_day,
                makeup_working_days,
            });
        }
        Self::new(raw.year, raw.source, holidays)
    }

    /// Builds a year calendar from parts, checking the year-file rules: `year` in 1..=9999,
    /// `source` and every holiday `name` non-empty, every date inside `year`,
    /// `first_day <= last_day`, holidays do not overlap, and each make-up working day is a
    /// Saturday or Sunday, listed once, and outside every holiday.
    ///
    /// # Errors
    /// The first rule broken, naming the holiday and field.
    pub fn new(year: i32, source: String, holidays: Vec<Holiday>) -> Result<Self, CalendarError> {
        if !(1..=9999).contains(&year) {
            return Err(CalendarError::YearOutOfRange { year });
        }
        if source.trim().is_empty() {
            return Err(CalendarError::MissingSource { year });
        }
        check_holidays(year, &holidays)?;
        check_overlaps(&holidays)?;
        check_makeup_days(&holidays)?;
        Ok(Self {
            year,
            source,
            holidays,
        })
    }

    /// The calendar year this file covers.
    #[must_use]
    pub fn year(&self) -> i32 {
        self.year
    }

    /// The notice this file transcribes.
    #[must_use]
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The year's holidays, in file order.
    #[must_use]
    pub fn holidays(&self) -> &[Holiday] {
        &self.holidays
    }
}

/// What kind of day a date is on a [`WorkingCalendar`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DayKind {
    /// An ordinary Monday-to-Friday working day.
    Working,
    /// A Saturday or Sunday that is not a make-up working day.
    Weekend,
    /// A day off of the named holiday (whatever weekday it falls on).
    Holiday(String),
    /// A Saturday or Sunday worked in exchange for the named holiday (调休上班).
    MakeUpWorking(String),
}

impl DayKind {
    /// Whether deadlines count this day.
    #[must_use]
    pub fn is_working(&self) -> bool {
        matches!(self, Self::Working | Self::MakeUpWorking(_))
    }
}

/// On what data a deadline was counted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CalendarBasis {
    /// Every year in the counted span had a year file.
    Official,
    /// Some years in the counted span had no year file and were counted with weekends only, so
    /// the date is an estimate that may fall before a holiday-shifted true deadline.
    WeekendsOnly {
        /// Those years, ascending, each once.
        years_without_data: Vec<i32>,
    },
}

impl CalendarBasis {
    /// Whether every year counted had a year file.
    #[must_use]
    pub fn is_official(&self) -> bool {
        matches!(self, Self::Official)
    }

    /// The years counted with weekends only (empty when official).
    #[must_use]
    pub fn years_without_data(&self) -> &[i32] {
        match self {
            Self::Official => &[],
            Self::WeekendsOnly { years_without_data } => years_without_data,
        }
    }

    /// The basis of a date that depends on both `self` and `other`: official only if both are.
    #[must_use]
    pub fn merge(&self, other: &Self) -> Self {
        let mut years: Vec<i32> = self
            .years_without_data()
            .iter()
            .chain(other.years_without_data())
            .copied()
            .collect();
        years.sort_unstable();
        years.dedup();
        Self::from_missing(years)
    }

    fn from_missing(years_without_data: Vec<i32>) -> Self {
        if years_without_data.is_empty() {
            Self::Official
        } else {
            Self::WeekendsOnly { years_without_data }
        }
    }
}

/// A date by which something must be done, and the calendar data it was counted on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Deadline {
    /// The last day on which the work is on time.
    pub due_on: NaiveDate,
    /// Whether the count used official holiday data for every year it crossed.
    pub basis: CalendarBasis,
}

impl Deadline {
    /// Whether the deadline has passed on `today`: true when `today` is after `due_on`
    /// (work done on `due_on` itself is on time).
    #[must_use]
    pub fn is_overdue(&self, today: NaiveDate) -> bool {
        today > self.due_on
    }
}

/// Whether `deadline` has passed on `today` (`today > due_on`); same as [`Deadline::is_overdue`].
#[must_use]
pub fn is_overdue(deadline: &Deadline, today: NaiveDate) -> bool {
    deadline.is_overdue(today)
}

/// What a year file says about one date.
#[derive(Debug, Clone, Copy)]
enum Special {
    /// A day off; the index of its holiday in the year file.
    Holiday(usize),
    /// A make-up working day; the index of its holiday in the year file.
    MakeUp(usize),
}

/// A year file with its days indexed for lookup.
#[derive(Debug, Clone)]
struct YearIndex {
    calendar: YearCalendar,
    special: BTreeMap<NaiveDate, Special>,
}

impl YearIndex {
    fn new(calendar: YearCalendar) -> Self {
        let mut special = BTreeMap::new();
        for (i, h) in calendar.holidays.iter().enumerate() {
            for day in h.first_day.iter_days().take_while(|d| *d <= h.last_day) {
                special.insert(day, Special::Holiday(i));
            }
            for &day in &h.makeup_working_days {
                special.insert(day, Special::MakeUp(i));
            }
        }
        Self { calendar, special }
    }
}

/// The working-day calendar: weekends, plus the holidays and make-up days of every loaded year
/// file. Years with no file are counted with weekends only (see [`CalendarBasis`]).
#[derive(Debug, Clone, Default)]
pub struct WorkingCalendar {
    years: BTreeMap<i32, YearIndex>,
}

impl WorkingCalendar {
    /// Builds a calendar from any number of year files.
    ///
    /// # Errors
    /// [`CalendarError::DuplicateYear`] if two files cover the same year.
    pub fn new(years: Vec<YearCalendar>) -> Result<Self, CalendarError> {
        years
            .into_iter()
            .try_fold(Self::default(), |calendar, year| calendar.with_year(year))
    }

    /// The calendar shipped with the software: the embedded 2026 file ([`OFFICIAL_2026`]).
    ///
    /// # Errors
    /// Only if the embedded file were invalid, which a unit test rules out.
    pub fn shipped() -> Result<Self, CalendarError> {
        Self::new(vec![YearCalendar::parse_toml(OFFICIAL_2026)?])
    }

    /// Adds one more year file (for example an operator-supplied one).
    ///
    /// # Errors
    /// [`CalendarError::DuplicateYear`] if the calendar already has that year.
    pub fn with_year(mut self, year: YearCalendar) -> Result<Self, CalendarError> {
        let y = year.year();
        if self.years.contains_key(&y) {
            return Err(CalendarError::DuplicateYear { year: y });
        }
        self.years.insert(y, YearIndex::new(year));
        Ok(self)
    }

    /// Whether a year file is loaded for `year`.
    #[must_use]
    pub fn has_year(&self, year: i32) -> bool {
        self.years.contains_key(&year)
    }

    /// The years with a loaded file, ascending.
    #[must_use]
    pub fn years(&self) -> Vec<i32> {
        self.years.keys().copied().collect()
    }

    /// The loaded file for `year`, if any.
    #[must_use]
    pub fn year(&self, year: i32) -> Option<&YearCalendar> {
        self.years.get(&year).map(|y| &y.calendar)
    }

    /// The years from `first` to `last` (inclusive) that have no file, ascending; what a
    /// service warns about at start-up.
    #[must_use]
    pub fn years_without_data(&self, first: i32, last: i32) -> Vec<i32> {
        (first..=last).filter(|y| !self.has_year(*y)).collect()
    }

    /// The year file's entry for `date`, with the holiday it belongs to.
    fn special(&self, date: NaiveDate) -> Option<(Special, &Holiday)> {
        let index = self.years.get(&date.year())?;
        let special = *index.special.get(&date)?;
        let (Special::Holiday(i) | Special::MakeUp(i)) = special;
        index.calendar.holidays.get(i).map(|h| (special, h))
    }

    /// What kind of day `date` is.
    #[must_use]
    pub fn day_kind(&self, date: NaiveDate) -> DayKind {
        match self.special(date) {
            Some((Special::Holiday(_), h)) => DayKind::Holiday(h.name.clone()),
            Some((Special::MakeUp(_), h)) => DayKind::MakeUpWorking(h.name.clone()),
            None if is_weekend(date) => DayKind::Weekend,
            None => DayKind::Working,
        }
    }

    /// Whether deadlines count `date` (a weekday that is not a holiday, or a make-up day).
    #[must_use]
    pub fn is_working(&self, date: NaiveDate) -> bool {
        match self.special(date) {
            Some((Special::Holiday(_), _)) => false,
            Some((Special::MakeUp(_), _)) => true,
            None => !is_weekend(date),
        }
    }

    /// The basis of a count over the dates after `from` up to and including `to`: official
    /// unless some year in that span has no file. An empty span is official.
    #[must_use]
    pub fn basis_between(&self, from: NaiveDate, to: NaiveDate) -> CalendarBasis {
        let (lo, hi) = if from <= to { (from, to) } else { (to, from) };
        if lo == hi {
            return CalendarBasis::Official;
        }
        // The span is (lo, hi]; its first day is in lo's year unless lo is Dec 31.
        let first_year = lo.succ_opt().map_or(hi.year(), |d| d.year());
        CalendarBasis::from_missing(self.years_without_data(first_year, hi.year()))
    }

    /// The deadline `days` working days after `start`: the `days`-th working day strictly after
    /// `start` (the start date itself never counts). With `days == 0` the deadline is `start`.
    ///
    /// Years in the counted span with no file are counted with weekends only, and the deadline
    /// is flagged [`CalendarBasis::WeekendsOnly`] naming them.
    ///
    /// # Errors
    /// [`DeadlineError::TooManyDays`] if `days > MAX_WORKING_DAYS`;
    /// [`DeadlineError::OutOfRange`] if the count runs past the last representable date.
    pub fn add_working_days(&self, start: NaiveDate, days: u16) -> Result<Deadline, DeadlineError> {
        if days > MAX_WORKING_DAYS {
            return Err(DeadlineError::TooManyDays {
                days,
                max: MAX_WORKING_DAYS,
            });
        }
        if days == 0 {
            return Ok(Deadline {
                due_on: start,
                basis: CalendarBasis::Official,
            });
        }
        // Bound on calendar days examined: a year without a file has 5 working days in every 7
        // consecutive days, and at most one partial week is lost at each boundary with a year
        // that has a file; a year with a file can contribute at most 366 days with none.
        let file_years = self.years.len();
        let guard = (usize::from(days) / 5 + 2) * 7 + file_years * (366 + 7);
        let mut missing: Vec<i32> = Vec::new();
        let mut date = start;
        let mut counted: u16 = 0;
        for _ in 0..guard {
            date = date
                .succ_opt()
                .ok_or(DeadlineError::OutOfRange { start, days })?;
            let year = date.year();
            if !self.has_year(year) && missing.last() != Some(&year) {
                missing.push(year);
            }
            if self.is_working(date) {
                counted += 1;
                if counted == days {
                    return Ok(Deadline {
                        due_on: date,
                        basis: CalendarBasis::from_missing(missing),
                    });
                }
            }
        }
        Err(DeadlineError::NotFound {
            start,
            days,
            searched: guard,
        })
    }

    /// The number of working days after `from` up to and including `to`; negative (the same
    /// count, negated) when `to` is before `from`. So
    /// `working_days_between(s, add_working_days(s, n)?.due_on) == n`.
    ///
    /// Computed arithmetically, without walking the days. Years without a file count weekends
    /// only; see [`WorkingCalendar::basis_between`] for the basis.
    #[must_use]
    pub fn working_days_between(&self, from: NaiveDate, to: NaiveDate) -> i64 {
        if to < from {
            return -self.working_days_between(to, from);
        }
        // Weekdays among day numbers 1..=n, where day 1 (0001-01-01) is a Monday.
        let weekdays_through = |n: i64| 5 * n.div_euclid(7) + n.rem_euclid(7).min(5);
        let mut count = weekdays_through(i64::from(to.num_days_from_ce()))
            - weekdays_through(i64::from(from.num_days_from_ce()));
        for index in self.years.range(from.year()..=to.year()).map(|(_, y)| y) {
            let span = index.special.range((
                std::ops::Bound::Excluded(from),
                std::ops::Bound::Included(to),
            ));
            for (date, special) in span {
                match special {
                    Special::Holiday(_) if !is_weekend(*date) => count -= 1,
                    Special::MakeUp(_) => count += 1,
                    Special::Holiday(_) => {}
                }
            }
        }
        count
    }
}

/// The statutory deadlines of one transfer (医保办发〔2021〕43号).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatutoryDeadlines {
    /// The transfer-out bureau completes the transfer-out, issues the information form and
    /// sends the balance: 10 working days from the application.
    pub transfer_out_due: Deadline,
    /// The transfer-in bureau credits the years and the balance: 5 working days from receipt of
    /// the form (or, before the form arrives, from `transfer_out_due`).
    pub transfer_in_due: Deadline,
    /// The whole process: 15 working days from the application.
    pub whole_process_due: Deadline,
}

impl StatutoryDeadlines {
    /// Working days the transfer-out bureau has, from the application.
    pub const TRANSFER_OUT_WORKING_DAYS: u16 = 10;
    /// Working days the transfer-in bureau has, from receipt of the information form.
    pub const TRANSFER_IN_WORKING_DAYS: u16 = 5;
    /// Working days for the whole process, from the application.
    pub const WHOLE_PROCESS_WORKING_DAYS: u16 = 15;
    /// Working days the transfer-out bureau waits for the answer to its abort after the
    /// whole-process deadline before the transfer needs an operator (invented: no rule bounds
    /// it; long enough for a peer's outage, short enough that money is not forgotten).
    pub const ABORT_ANSWER_WORKING_DAYS: u16 = 5;

    /// The day before which a transfer's whole-process deadline means its form is overdue on
    /// `today` (its transfer-out deadline passed): the whole-process deadline is the
    /// transfer-out deadline plus 5 working days, so a whole-process deadline before
    /// `today + 5 working days` is a transfer-out deadline before `today`. A transfer whose
    /// transfer-out deadline fell on the working day before a day off is found on the next
    /// working day.
    ///
    /// # Errors
    /// [`DeadlineError::OutOfRange`] if the count runs past the last representable date.
    pub fn form_overdue_cutoff(
        calendar: &WorkingCalendar,
        today: NaiveDate,
    ) -> Result<NaiveDate, DeadlineError> {
        let gap = Self::WHOLE_PROCESS_WORKING_DAYS - Self::TRANSFER_OUT_WORKING_DAYS;
        Ok(calendar.add_working_days(today, gap)?.due_on)
    }

    /// Whether the answer to an abort opened once `whole_process_due` passed is overdue on
    /// `today` ([`Self::ABORT_ANSWER_WORKING_DAYS`] later).
    #[must_use]
    pub fn abort_answer_overdue(
        calendar: &WorkingCalendar,
        whole_process_due: NaiveDate,
        today: NaiveDate,
    ) -> bool {
        calendar
            .add_working_days(whole_process_due, Self::ABORT_ANSWER_WORKING_DAYS)
            .is_ok_and(|bound| bound.is_overdue(today))
    }

    /// Counts the three deadlines of a transfer applied for on `applied_on`.
    ///
    /// `transfer_in_due` counts from `form_received_on` when the form has arrived. Before it has
    /// (`None`), it counts from `transfer_out_due` (the latest the form may lawfully arrive), and
    /// its basis then covers both spans. Note that a form received late can put
    /// `transfer_in_due` after `whole_process_due`: the two are separate duties.
    ///
    /// # Errors
    /// [`DeadlineError::OutOfRange`] if a date runs past the last representable date.
    pub fn statutory(
        calendar: &WorkingCalendar,
        applied_on: NaiveDate,
        form_received_on: Option<NaiveDate>,
    ) -> Result<Self, DeadlineError> {
        let transfer_out_due =
            calendar.add_working_days(applied_on, Self::TRANSFER_OUT_WORKING_DAYS)?;
        let transfer_in_due = match form_received_on {
            Some(received) => {
                calendar.add_working_days(received, Self::TRANSFER_IN_WORKING_DAYS)?
            }
            None => {
                let d = calendar
                    .add_working_days(transfer_out_due.due_on, Self::TRANSFER_IN_WORKING_DAYS)?;
                Deadline {
                    basis: d.basis.merge(&transfer_out_due.basis),
                    due_on: d.due_on,
                }
            }
        };
        let whole_process_due =
            calendar.add_working_days(applied_on, Self::WHOLE_PROCESS_WORKING_DAYS)?;
        Ok(Self {
            transfer_out_due,
            transfer_in_due,
            whole_process_due,
        })
    }
}

/// Each holiday is named, dated inside `year`, and does not end before it starts.
fn check_holidays(year: i32, holidays: &[Holiday]) -> Result<(), CalendarError> {
    for (i, h) in holidays.iter().enumerate() {
        if h.name.trim().is_empty() {
            return Err(CalendarError::EmptyHolidayName {
                year,
                position: i + 1,
            });
        }
        let dated = [("first_day", h.first_day), ("last_day", h.last_day)]
            .into_iter()
            .chain(
                h.makeup_working_days
                    .iter()
                    .map(|d| ("makeup_working_days", *d)),
            );
        for (field, date) in dated {
            if date.year() != year {
                return Err(CalendarError::OutsideYear {
                    holiday: h.name.clone(),
                    field,
                    date,
                    year,
                });
            }
        }
        if h.first_day > h.last_day {
            return Err(CalendarError::Reversed {
                holiday: h.name.clone(),
                first_day: h.first_day,
                last_day: h.last_day,
            });
        }
    }
    Ok(())
}

/// No two holidays share a day.
fn check_overlaps(holidays: &[Holiday]) -> Result<(), CalendarError> {
    for (j, later) in holidays.iter().enumerate() {
        for earlier in &holidays[..j] {
            if earlier.first_day <= later.last_day && later.first_day <= earlier.last_day {
                return Err(CalendarError::OverlappingHolidays {
                    holiday: later.name.clone(),
                    other: earlier.name.clone(),
                    date: later.first_day.max(earlier.first_day),
                });
            }
        }
    }
    Ok(())
}

/// Each make-up working day is a Saturday or Sunday, outside every holiday, listed once.
fn check_makeup_days(holidays: &[Holiday]) -> Result<(), CalendarError> {
    let mut seen: BTreeMap<NaiveDate, &str> = BTreeMap::new();
    for h in holidays {
        for &date in &h.makeup_working_days {
            if !is_weekend(date) {
                return Err(CalendarError::MakeUpNotWeekend {
                    holiday: h.name.clone(),
                    date,
                    weekday: date.weekday(),
                });
            }
            if let Some(inside) = holidays.iter().find(|o| o.contains(date)) {
                return Err(CalendarError::MakeUpInsideHoliday {
                    holiday: h.name.clone(),
                    date,
                    inside: inside.name.clone(),
                });
            }
            if let Some(other) = seen.insert(date, &h.name) {
                return Err(CalendarError::DuplicateMakeUp {
                    holiday: h.name.clone(),
                    date,
                    other: other.to_owned(),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("valid test date")
    }

    fn shipped() -> WorkingCalendar {
        WorkingCalendar::shipped().expect("embedded 2026 file is valid")
    }

    fn due(cal: &WorkingCalendar, start: NaiveDate, days: u16) -> Deadline {
        cal.add_working_days(start, days)
            .expect("deadline in range")
    }

    /// TEST DATA, NOT OFFICIAL: the 2027 notice is not available to this project. This invented
    /// file only exercises the operator-supplied-year path.
    const MADE_UP_2027: &str = r#"
year = 2027
source = "TEST DATA ONLY: invented for a unit test, not a State Council notice"
[[holidays]]
name = "New Year (invented)"
first_day = 2027-01-01
last_day = 2027-01-03
"#;

    fn parse_err(text: &str) -> CalendarError {
        YearCalendar::parse_toml(text).expect_err("file must be refused")
    }

    #[test]
    fn the_embedded_2026_file_parses_with_all_seven_holidays() {
        let year = YearCalendar::parse_toml(OFFICIAL_2026).expect("valid");
        assert_eq!(year.year(), 2026);
        assert!(year.source().contains("2025-11-04"));
        let names: Vec<&str> = year.holidays().iter().map(|h| h.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "New Year",
                "Spring Festival",
                "Qingming",
                "Labour Day",
                "Dragon Boat",
                "Mid-Autumn",
                "National Day"
            ]
        );
        let cal = shipped();
        assert_eq!(cal.years(), vec![2026]);
        assert!(cal.has_year(2026));
        assert!(!cal.has_year(2027));
    }

    #[test]
    fn the_2026_file_has_the_notices_days_off_and_make_up_days() {
        let cal = shipped();
        let year = cal.year(2026).expect("loaded");
        let days_off: usize = year
            .holidays()
            .iter()
            .map(|h| {
                h.first_day
                    .iter_days()
                    .take_while(|x| *x <= h.last_day)
                    .count()
            })
            .sum();
        // 3 + 9 + 3 + 5 + 3 + 3 + 7
        assert_eq!(days_off, 33);
        let mut makeups: Vec<NaiveDate> = year
            .holidays()
            .iter()
            .flat_map(|h| h.makeup_working_days.iter().copied())
            .collect();
        makeups.sort();
        assert_eq!(
            makeups,
            [
                d(2026, 1, 4),
                d(2026, 2, 14),
                d(2026, 2, 28),
                d(2026, 5, 9),
                d(2026, 9, 20),
                d(2026, 10, 10)
            ]
        );
    }

    #[test]
    fn saturday_feb_14_2026_is_a_make_up_working_day() {
        let cal = shipped();
        assert_eq!(d(2026, 2, 14).weekday(), Weekday::Sat);
        assert_eq!(
            cal.day_kind(d(2026, 2, 14)),
            DayKind::MakeUpWorking("Spring Festival".into())
        );
        assert!(cal.is_working(d(2026, 2, 14)));
    }

    #[test]
    fn monday_feb_16_2026_is_a_spring_festival_holiday() {
        let cal = shipped();
        assert_eq!(
            cal.day_kind(d(2026, 2, 16)),
            DayKind::Holiday("Spring Festival".into())
        );
        assert!(!cal.is_working(d(2026, 2, 16)));
    }

    #[test]
    fn sunday_jan_4_2026_is_worked_for_new_year() {
        let cal = shipped();
        assert_eq!(d(2026, 1, 4).weekday(), Weekday::Sun);
        assert_eq!(
            cal.day_kind(d(2026, 1, 4)),
            DayKind::MakeUpWorking("New Year".into())
        );
    }

    #[test]
    fn ordinary_days_are_working_or_weekend() {
        let cal = shipped();
        assert_eq!(cal.day_kind(d(2026, 3, 10)), DayKind::Working);
        assert_eq!(cal.day_kind(d(2026, 3, 14)), DayKind::Weekend);
        // A year with no file: weekends only, no holidays.
        assert_eq!(cal.day_kind(d(2027, 1, 1)), DayKind::Working);
        assert_eq!(cal.day_kind(d(2027, 1, 2)), DayKind::Weekend);
    }

    #[test]
    fn ten_working_days_from_friday_feb_13_2026_cross_spring_festival_to_march_5() {
        // Start Fri 13 Feb (never counted).
        //  1 Sat 14 Feb (make-up)        | Sun 15 – Mon 23 Feb: Spring Festival, not counted
        //  2 Tue 24, 3 Wed 25, 4 Thu 26, 5 Fri 27
        //  6 Sat 28 Feb (make-up)        | Sun 1 Mar: weekend
        //  7 Mon 2, 8 Tue 3, 9 Wed 4, 10 Thu 5 Mar
        let cal = shipped();
        let deadline = due(&cal, d(2026, 2, 13), 10);
        assert_eq!(deadline.due_on, d(2026, 3, 5));
        assert_eq!(deadline.basis, CalendarBasis::Official);
    }

    #[test]
    fn deadlines_from_sep_24_2026_skip_mid_autumn_and_national_day_and_count_oct_10() {
        // Start Thu 24 Sep. Fri 25 – Sun 27: Mid-Autumn. 1 Mon 28, 2 Tue 29, 3 Wed 30 Sep.
        // Thu 1 – Wed 7 Oct: National Day. 4 Thu 8, 5 Fri 9, 6 Sat 10 (make-up), Sun 11 off,
        // 7 Mon 12, 8 Tue 13, 9 Wed 14, 10 Thu 15; 11 Fri 16, 12 Mon 19, ... 15 Thu 22 Oct.
        let cal = shipped();
        let start = d(2026, 9, 24);
        assert_eq!(due(&cal, start, 5).due_on, d(2026, 10, 9));
        assert_eq!(due(&cal, start, 6).due_on, d(2026, 10, 10));
        assert_eq!(due(&cal, start, 10).due_on, d(2026, 10, 15));
        assert_eq!(due(&cal, start, 15).due_on, d(2026, 10, 22));
    }

    #[test]
    fn ten_working_days_from_sep_30_2026_end_on_oct_20() {
        // Start Wed 30 Sep. Oct 1–7 off. 1 Thu 8, 2 Fri 9, 3 Sat 10 (make-up), Sun 11 off,
        // 4 Mon 12, 5 Tue 13, 6 Wed 14, 7 Thu 15, 8 Fri 16, 9 Mon 19, 10 Tue 20 Oct.
        let cal = shipped();
        assert_eq!(due(&cal, d(2026, 9, 30), 10).due_on, d(2026, 10, 20));
    }

    #[test]
    fn sunday_sep_20_2026_is_the_next_working_day_after_friday_sep_18() {
        // Sat 19 is a weekend; Sun 20 is worked for National Day.
        let cal = shipped();
        assert_eq!(
            cal.day_kind(d(2026, 9, 20)),
            DayKind::MakeUpWorking("National Day".into())
        );
        assert_eq!(due(&cal, d(2026, 9, 18), 1).due_on, d(2026, 9, 20));
    }

    #[test]
    fn the_start_day_never_counts_even_when_it_is_a_working_day() {
        let cal = shipped();
        // Tue 10 Mar 2026 is a working day; one working day after it is Wed 11 Mar.
        assert_eq!(due(&cal, d(2026, 3, 10), 1).due_on, d(2026, 3, 11));
        assert_eq!(due(&cal, d(2026, 3, 10), 0).due_on, d(2026, 3, 10));
    }

    #[test]
    fn a_deadline_running_into_2027_is_flagged_weekends_only_for_2027() {
        // Start Thu 24 Dec 2026: 1 Fri 25, 2 Mon 28, 3 Tue 29, 4 Wed 30, 5 Thu 31 Dec;
        // 2027 has no file, so Fri 1 Jan counts: 6 Fri 1, 7 Mon 4, 8 Tue 5, 9 Wed 6, 10 Thu 7.
        let cal = shipped();
        let deadline = due(&cal, d(2026, 12, 24), 10);
        assert_eq!(deadline.due_on, d(2027, 1, 7));
        assert_eq!(
            deadline.basis,
            CalendarBasis::WeekendsOnly {
                years_without_data: vec![2027]
            }
        );
        assert_eq!(cal.years_without_data(2026, 2028), vec![2027, 2028]);
    }

    #[test]
    fn an_operator_supplied_2027_file_clears_the_weekends_only_flag() {
        let y2027 = YearCalendar::parse_toml(MADE_UP_2027).expect("test file is valid");
        let cal = shipped().with_year(y2027).expect("2027 is new");
        assert_eq!(cal.years(), vec![2026, 2027]);
        let deadline = due(&cal, d(2026, 12, 24), 10);
        // The invented 1 Jan 2027 holiday pushes the tenth day one later, to Fri 8 Jan.
        assert_eq!(deadline.due_on, d(2027, 1, 8));
        assert_eq!(deadline.basis, CalendarBasis::Official);
    }

    #[test]
    fn a_calendar_refuses_two_files_for_the_same_year() {
        let a = YearCalendar::parse_toml(OFFICIAL_2026).expect("valid");
        let err = WorkingCalendar::new(vec![a.clone(), a.clone()]).expect_err("duplicate");
        assert_eq!(err, CalendarError::DuplicateYear { year: 2026 });
        assert!(err.to_string().contains("2026"));
        assert!(shipped().with_year(a).is_err());
    }

    #[test]
    fn a_date_outside_the_files_year_is_refused_naming_holiday_and_field() {
        let err = parse_err(
            r#"
year = 2026
source = "test"
[[holidays]]
name = "Spring Festival"
first_day = 2026-02-15
last_day = 2026-02-23
makeup_working_days = [2025-02-14]
"#,
        );
        assert!(matches!(
            err,
            CalendarError::OutsideYear {
                field: "makeup_working_days",
                ..
            }
        ));
        let msg = err.to_string();
        assert!(msg.contains("Spring Festival") && msg.contains("makeup_working_days"));
    }

    #[test]
    fn a_holiday_ending_before_it_starts_is_refused() {
        let err = parse_err(
            "year = 2026\nsource = \"t\"\n[[holidays]]\nname = \"Qingming\"\n\
             first_day = 2026-04-06\nlast_day = 2026-04-04\n",
        );
        assert!(matches!(err, CalendarError::Reversed { .. }));
        assert!(err.to_string().contains("`first_day`"));
    }

    #[test]
    fn a_make_up_day_on_a_weekday_is_refused() {
        // Mon 2026-01-05.
        let err = parse_err(
            "year = 2026\nsource = \"t\"\n[[holidays]]\nname = \"New Year\"\n\
             first_day = 2026-01-01\nlast_day = 2026-01-03\nmakeup_working_days = [2026-01-05]\n",
        );
        assert!(matches!(
            err,
            CalendarError::MakeUpNotWeekend {
                weekday: Weekday::Mon,
                ..
            }
        ));
        assert!(err.to_string().contains("Saturday or Sunday"));
    }

    #[test]
    fn a_make_up_day_inside_a_holiday_is_refused() {
        // Sat 2026-10-03 lies inside National Day.
        let err = parse_err(
            "year = 2026\nsource = \"t\"\n[[holidays]]\nname = \"National Day\"\n\
             first_day = 2026-10-01\nlast_day = 2026-10-07\nmakeup_working_days = [2026-10-03]\n",
        );
        assert!(matches!(err, CalendarError::MakeUpInsideHoliday { .. }));
    }

    #[test]
    fn overlapping_holidays_and_repeated_make_up_days_are_refused() {
        let overlap = parse_err(
            "year = 2026\nsource = \"t\"\n\
             [[holidays]]\nname = \"A\"\nfirst_day = 2026-10-01\nlast_day = 2026-10-07\n\
             [[holidays]]\nname = \"B\"\nfirst_day = 2026-10-07\nlast_day = 2026-10-08\n",
        );
        assert_eq!(
            overlap,
            CalendarError::OverlappingHolidays {
                holiday: "B".into(),
                other: "A".into(),
                date: d(2026, 10, 7)
            }
        );
        let repeated = parse_err(
            "year = 2026\nsource = \"t\"\n\
             [[holidays]]\nname = \"A\"\nfirst_day = 2026-10-01\nlast_day = 2026-10-07\n\
             makeup_working_days = [2026-10-10]\n\
             [[holidays]]\nname = \"B\"\nfirst_day = 2026-10-20\nlast_day = 2026-10-21\n\
             makeup_working_days = [2026-10-10]\n",
        );
        assert!(matches!(repeated, CalendarError::DuplicateMakeUp { .. }));
    }

    #[test]
    fn malformed_files_are_refused_with_the_parsers_message() {
        // Unknown field (a typo) is not silently ignored.
        let err = parse_err("year = 2026\nsource = \"t\"\nholliday = 1\n");
        assert!(matches!(&err, CalendarError::Syntax { message } if message.contains("holliday")));
        // Missing `source`.
        assert!(matches!(
            parse_err("year = 2026\n"),
            CalendarError::Syntax { .. }
        ));
        // Impossible date.
        assert!(matches!(
            parse_err(
                "year = 2026\nsource = \"t\"\n[[holidays]]\nname = \"X\"\n\
                 first_day = 2026-02-30\nlast_day = 2026-03-01\n"
            ),
            CalendarError::Syntax { .. }
        ));
        // A date-time instead of a date.
        assert!(matches!(
            parse_err(
                "year = 2026\nsource = \"t\"\n[[holidays]]\nname = \"X\"\n\
                 first_day = 2026-03-02T08:00:00\nlast_day = 2026-03-03\n"
            ),
            CalendarError::NotADate {
                field: "first_day",
                ..
            }
        ));
        // Blank source and blank name.
        assert_eq!(
            parse_err("year = 2026\nsource = \" \"\n"),
            CalendarError::MissingSource { year: 2026 }
        );
        assert!(matches!(
            parse_err(
                "year = 2026\nsource = \"t\"\n[[holidays]]\nname = \"\"\n\
                 first_day = 2026-03-02\nlast_day = 2026-03-03\n"
            ),
            CalendarError::EmptyHolidayName { position: 1, .. }
        ));
        assert_eq!(
            parse_err("year = 0\nsource = \"t\"\n"),
            CalendarError::YearOutOfRange { year: 0 }
        );
    }

    #[test]
    fn too_many_days_and_the_end_of_time_are_errors_not_panics() {
        let cal = shipped();
        assert_eq!(
            cal.add_working_days(d(2026, 1, 5), 367),
            Err(DeadlineError::TooManyDays {
                days: 367,
                max: MAX_WORKING_DAYS
            })
        );
        assert!(matches!(
            cal.add_working_days(NaiveDate::MAX, 1),
            Err(DeadlineError::OutOfRange { .. })
        ));
    }

    #[test]
    fn statutory_deadlines_count_10_5_and_15_working_days() {
        let cal = shipped();
        let applied = d(2026, 9, 24);
        // Form not yet received: transfer-in counts 5 from transfer-out due (Thu 15 Oct):
        // Fri 16, Mon 19, Tue 20, Wed 21, Thu 22 Oct.
        let s = StatutoryDeadlines::statutory(&cal, applied, None).expect("in range");
        assert_eq!(s.transfer_out_due.due_on, d(2026, 10, 15));
        assert_eq!(s.transfer_in_due.due_on, d(2026, 10, 22));
        assert_eq!(s.whole_process_due.due_on, d(2026, 10, 22));
        // Form received Fri 9 Oct: 5 from then is Sat 10 (make-up), 12, 13, 14, Thu 15 Oct.
        let s = StatutoryDeadlines::statutory(&cal, applied, Some(d(2026, 10, 9))).expect("ok");
        assert_eq!(s.transfer_in_due.due_on, d(2026, 10, 15));
        assert!(s.transfer_in_due.basis.is_official());
    }

    #[test]
    fn the_form_overdue_cutoff_finds_exactly_the_transfers_past_their_transfer_out_deadline() {
        let cal = shipped();
        let mut found_late = 0;
        for applied in d(2026, 1, 1).iter_days().take(300) {
            let s = StatutoryDeadlines::statutory(&cal, applied, None).expect("in range");
            for today in applied.iter_days().take(40) {
                let cutoff = StatutoryDeadlines::form_overdue_cutoff(&cal, today).expect("ok");
                let found = s.whole_process_due.due_on < cutoff;
                let overdue = s.transfer_out_due.is_overdue(today);
                assert!(!found || overdue, "found too early: {applied} on {today}");
                if overdue && !found {
                    // Found late only across days off, never on a working day.
                    assert!(
                        !cal.is_working(today),
                        "missed on {today} (applied {applied})"
                    );
                    found_late += 1;
                }
            }
        }
        assert!(found_late > 0, "the weekend case is exercised");
    }

    #[test]
    fn an_abort_answer_is_overdue_five_working_days_after_the_whole_process_deadline() {
        let cal = shipped();
        // Whole process due Thu 22 Oct 2026: 23, 26, 27, 28, Thu 29 Oct; overdue from Fri 30.
        let due_on = d(2026, 10, 22);
        assert!(!StatutoryDeadlines::abort_answer_overdue(
            &cal,
            due_on,
            d(2026, 10, 29)
        ));
        assert!(StatutoryDeadlines::abort_answer_overdue(
            &cal,
            due_on,
            d(2026, 10, 30)
        ));
    }

    #[test]
    fn transfer_in_estimated_from_transfer_out_carries_its_weekends_only_years() {
        let cal = shipped();
        // Transfer-out due lands in 2027; the transfer-in estimate inherits the flag.
        let s = StatutoryDeadlines::statutory(&cal, d(2026, 12, 24), None).expect("ok");
        assert_eq!(s.transfer_in_due.basis.years_without_data(), &[2027]);
    }

    #[test]
    fn a_deadline_is_overdue_only_after_its_due_day() {
        let deadline = Deadline {
            due_on: d(2026, 3, 5),
            basis: CalendarBasis::Official,
        };
        assert!(!is_overdue(&deadline, d(2026, 3, 4)));
        assert!(!deadline.is_overdue(d(2026, 3, 5)));
        assert!(deadline.is_overdue(d(2026, 3, 6)));
    }

    #[test]
    fn working_days_between_counts_after_from_up_to_and_including_to() {
        let cal = shipped();
        assert_eq!(cal.working_days_between(d(2026, 2, 13), d(2026, 3, 5)), 10);
        assert_eq!(cal.working_days_between(d(2026, 3, 5), d(2026, 2, 13)), -10);
        assert_eq!(cal.working_days_between(d(2026, 3, 5), d(2026, 3, 5)), 0);
        assert_eq!(
            cal.basis_between(d(2026, 12, 31), d(2027, 1, 4)),
            CalendarBasis::WeekendsOnly {
                years_without_data: vec![2027]
            }
        );
        assert!(
            cal.basis_between(d(2025, 12, 31), d(2026, 1, 4))
                .is_official()
        );
    }

    fn any_date() -> impl Strategy<Value = NaiveDate> {
        // 2025-01-01 .. 2027-12-31: before, inside and after the shipped year.
        (0u64..1095).prop_map(|n| d(2025, 1, 1) + chrono::Days::new(n))
    }

    /// The shipped calendar, or the shipped one plus the invented 2027 test file.
    fn calendar(with_2027: bool) -> WorkingCalendar {
        if with_2027 {
            shipped()
                .with_year(YearCalendar::parse_toml(MADE_UP_2027).expect("valid"))
                .expect("new year")
        } else {
            shipped()
        }
    }

    proptest! {
        #[test]
        fn due_on_is_always_a_working_day_after_the_start(start in any_date(), days in 1u16..=MAX_WORKING_DAYS, with_2027 in any::<bool>()) {
            let cal = calendar(with_2027);
            let deadline = cal.add_working_days(start, days).expect("in range");
            prop_assert!(deadline.due_on > start);
            prop_assert!(cal.is_working(deadline.due_on));
            prop_assert_eq!(cal.working_days_between(start, deadline.due_on), i64::from(days));
            prop_assert_eq!(deadline.basis, cal.basis_between(start, deadline.due_on));
        }

        #[test]
        fn adding_n_then_m_working_days_equals_adding_n_plus_m(start in any_date(), n in 0u16..=183, m in 0u16..=183, with_2027 in any::<bool>()) {
            let cal = calendar(with_2027);
            let first = cal.add_working_days(start, n).expect("in range");
            let then = cal.add_working_days(first.due_on, m).expect("in range");
            let both = cal.add_working_days(start, n + m).expect("in range");
            prop_assert_eq!(then.due_on, both.due_on);
            prop_assert_eq!(first.basis.merge(&then.basis), both.basis);
        }

        #[test]
        fn day_kind_and_is_working_agree(date in any_date(), with_2027 in any::<bool>()) {
            let cal = calendar(with_2027);
            prop_assert_eq!(cal.day_kind(date).is_working(), cal.is_working(date));
        }
    }
}
