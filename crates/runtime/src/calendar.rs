//! Loads the working-day calendar a service counts deadlines on: the shipped 2026 year file plus
//! every year file in the operator's calendar directory.
//!
//! A year without a file is never guessed: the domain counts it with weekends only and flags every
//! deadline computed that way. This module says so once, loudly, at start-up for the current and
//! the next year, so an operator learns of a missing State Council notice before a deadline does.

use std::path::{Path, PathBuf};

use chrono::{Datelike, NaiveDate};
use tracing::{info, warn};
use yibao_domain::calendar::{CalendarError, WorkingCalendar, YearCalendar};

/// The most year files a calendar directory may hold; more is surely a wrong directory.
pub const MAX_YEAR_FILES: usize = 200;

/// Why the calendar could not be loaded. Each message names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CalendarLoadError {
    /// The directory or a file in it could not be read.
    #[error("calendar {path}: {source}")]
    Read {
        /// The directory or file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A year file is invalid, or repeats a year already loaded (the shipped 2026 included).
    #[error("calendar {path}: {source}")]
    Invalid {
        /// The file (or `<shipped>` for the embedded 2026 file).
        path: PathBuf,
        /// The rule it broke.
        source: CalendarError,
    },
    /// The directory holds more than [`MAX_YEAR_FILES`] year files.
    #[error("calendar {path}: more than {limit} year files")]
    TooManyFiles {
        /// The directory.
        path: PathBuf,
        /// The limit, [`MAX_YEAR_FILES`].
        limit: usize,
    },
}

/// The shipped calendar plus every `*.toml` year file in `dir` (in file-name order), and the
/// years that have a file, ascending. Logs the years loaded, and warns if `today`'s year or the
/// next has no file (pass the service clock's [`today`](crate::clock::Clock::today)).
///
/// # Errors
/// If the directory or a file cannot be read, a file is not a valid year file, or two files
/// (the shipped one included) cover the same year.
pub fn load_calendar(
    dir: Option<&Path>,
    today: NaiveDate,
) -> Result<(WorkingCalendar, Vec<i32>), CalendarLoadError> {
    let mut calendar = WorkingCalendar::shipped().map_err(|source| CalendarLoadError::Invalid {
        path: PathBuf::from("<shipped>"),
        source,
    })?;
    if let Some(dir) = dir {
        for path in year_files(dir)? {
            let text =
                std::fs::read_to_string(&path).map_err(|source| CalendarLoadError::Read {
                    path: path.clone(),
                    source,
                })?;
            let year = YearCalendar::parse_toml(&text)
                .and_then(|year| calendar.clone().with_year(year))
                .map_err(|source| CalendarLoadError::Invalid {
                    path: path.clone(),
                    source,
                })?;
            calendar = year;
        }
    }
    warn_about_missing_years(&calendar, today);
    let years = calendar.years();
    Ok((calendar, years))
}

/// Logs which years the calendar covers, and warns for `today`'s year and the next if either
/// has no file.
fn warn_about_missing_years(calendar: &WorkingCalendar, today: NaiveDate) {
    info!(years = ?calendar.years(), "working-day calendar loaded");
    let this_year = today.year();
    for year in calendar.years_without_data(this_year, this_year + 1) {
        warn!(
            year,
            "no working-day calendar file for {year}: counting weekends only; deadlines in {year} \
             are estimates until its year file is added"
        );
    }
}

/// The `*.toml` files directly in `dir`, sorted by name.
fn year_files(dir: &Path) -> Result<Vec<PathBuf>, CalendarLoadError> {
    let read_error = |source| CalendarLoadError::Read {
        path: dir.to_owned(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_error)? {
        let path = entry.map_err(read_error)?.path();
        if path.is_file() && path.extension().is_some_and(|ext| ext == "toml") {
            files.push(path);
            if files.len() > MAX_YEAR_FILES {
                return Err(CalendarLoadError::TooManyFiles {
                    path: dir.to_owned(),
                    limit: MAX_YEAR_FILES,
                });
            }
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVENTED_2027: &str = "year = 2027\nsource = \"invented for a test\"\n\
        [[holidays]]\nname = \"New Year\"\nfirst_day = 2027-01-01\nlast_day = 2027-01-01\n";

    #[test]
    fn without_a_directory_only_the_shipped_year_is_loaded() {
        let (calendar, years) = load_calendar(None, june_2026()).expect("shipped file is valid");
        assert_eq!(years, vec![2026]);
        assert!(calendar.has_year(2026));
    }

    #[test]
    fn an_operators_year_file_is_added_and_other_files_are_ignored() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("2027.toml"), INVENTED_2027).expect("write");
        std::fs::write(dir.path().join("README.md"), "not a year file").expect("write");
        let (calendar, years) = load_calendar(Some(dir.path()), june_2026()).expect("valid files");
        assert_eq!(years, vec![2026, 2027]);
        assert!(calendar.has_year(2027));
    }

    #[test]
    fn a_second_file_for_the_shipped_year_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("2026-again.toml"),
            yibao_domain::calendar::OFFICIAL_2026,
        )
        .expect("write");
        let err = load_calendar(Some(dir.path()), june_2026()).expect_err("duplicate year");
        assert!(err.to_string().contains("2026-again.toml"), "{err}");
    }

    #[test]
    fn an_invalid_year_file_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("2028.toml"), "year = 2028\n").expect("write");
        let err = load_calendar(Some(dir.path()), june_2026()).expect_err("no source");
        assert!(matches!(err, CalendarLoadError::Invalid { .. }));
        assert!(err.to_string().contains("2028.toml"));
    }

    #[test]
    fn a_missing_directory_is_a_read_error() {
        let err = load_calendar(Some(Path::new("/nonexistent/calendar")), june_2026())
            .expect_err("missing");
        assert!(matches!(err, CalendarLoadError::Read { .. }));
    }

    fn june_2026() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 6, 1).expect("valid date")
    }
}
