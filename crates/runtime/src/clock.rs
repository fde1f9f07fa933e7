//! The one clock every service reads: real time, or a test clock that an admin call moves forward.
//!
//! Domain code never reads time; services read it here and pass dates in. A [`Clock`] is the
//! system's UTC time plus an offset. On a system clock the offset is always zero; on an adjustable
//! (test) clock the admin API can move it forward with [`Clock::advance`], so a test harness can
//! make ten working days pass in a second and watch deadlines fall due. The offset lives in an
//! atomic shared by every clone, so reading the time takes no lock; whoever sleeps until a
//! deadline also [`subscribe`](Clock::subscribe)s, so a jump of the test clock wakes it at once.
//!
//! **Architecture Invariant:** this is the only module allowed to read the wall clock; the
//! workspace's `clippy.toml` bans the other ways. Timers (sleeps, timeouts) run on tokio's clock,
//! which tests can pause; this clock answers "what date and time is it".

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Utc};
use tokio::sync::watch;

/// The largest single step [`Clock::advance`] accepts: a year and a day, enough to cross any
/// statutory deadline and small enough that a typo cannot throw a service decades ahead.
pub const MAX_ADVANCE_DAYS: i64 = 366;

/// The largest offset, either way, that a test clock may hold in total (about a century), so that
/// `now()` can never overflow the calendar.
pub const MAX_OFFSET_DAYS: i64 = 36_525;

/// China Standard Time is UTC+8 all year (no daylight saving), in seconds.
const CHINA_STANDARD_TIME_OFFSET_SECONDS: i64 = 8 * 3600;

/// A service's source of the current time. Cheap to clone: clones share one offset.
#[derive(Clone, Debug)]
pub struct Clock {
    shared: Arc<Shared>,
}

/// What every clone of one clock shares.
#[derive(Debug)]
struct Shared {
    /// Milliseconds added to the system time. Always zero unless `adjustable`.
    offset_ms: AtomicI64,
    /// Whether [`Clock::advance`] may move this clock (a test clock, enabled by configuration).
    adjustable: bool,
    /// Publishes the offset after each move, so sleepers can wake and re-read the time. Kept here
    /// so that receivers pend (rather than fail) for as long as any clone of the clock lives.
    moved: watch::Sender<TimeDelta>,
}

/// Why the clock refused to move.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClockError {
    /// The service runs on the system clock; only a test clock (configuration `test_clock`) moves.
    #[error("the clock is the system clock; enable `test_clock` to move it")]
    NotAdjustable,
    /// Time only moves forward: a negative step was asked for.
    #[error("`by` is {by_ms} ms; the clock only moves forward")]
    Negative {
        /// The step asked for, in milliseconds.
        by_ms: i64,
    },
    /// The step exceeds [`MAX_ADVANCE_DAYS`].
    #[error("`by` is {by_ms} ms; the clock moves at most {max_days} days at once")]
    StepTooLarge {
        /// The step asked for, in milliseconds.
        by_ms: i64,
        /// The limit, [`MAX_ADVANCE_DAYS`].
        max_days: i64,
    },
    /// The total offset would exceed [`MAX_OFFSET_DAYS`].
    #[error("the clock's offset would exceed {max_days} days")]
    OffsetTooLarge {
        /// The limit, [`MAX_OFFSET_DAYS`].
        max_days: i64,
    },
}

impl Clock {
    /// The real clock: system time, never moved.
    #[must_use]
    pub fn system() -> Self {
        Self::with_offset(0, false)
    }

    /// A test clock starting `offset` away from system time, which [`Clock::advance`] moves.
    ///
    /// # Errors
    /// [`ClockError::OffsetTooLarge`] if `offset` is beyond [`MAX_OFFSET_DAYS`] either way.
    pub fn adjustable(offset: TimeDelta) -> Result<Self, ClockError> {
        let offset_ms = offset.num_milliseconds();
        if offset_ms.abs() > max_offset().num_milliseconds() {
            return Err(ClockError::OffsetTooLarge {
                max_days: MAX_OFFSET_DAYS,
            });
        }
        Ok(Self::with_offset(offset_ms, true))
    }

    fn with_offset(offset_ms: i64, adjustable: bool) -> Self {
        let (moved, _) = watch::channel(TimeDelta::milliseconds(offset_ms));
        Self {
            shared: Arc::new(Shared {
                offset_ms: AtomicI64::new(offset_ms),
                adjustable,
                moved,
            }),
        }
    }

    /// The current time: system time plus the offset.
    #[must_use]
    pub fn now(&self) -> DateTime<Utc> {
        let system = Utc::now();
        // The offset is bounded by MAX_OFFSET_DAYS, so this cannot overflow; keep the system time
        // rather than panic if that bound is ever broken.
        system.checked_add_signed(self.offset()).unwrap_or(system)
    }

    /// Today's date in China Standard Time (UTC+8), the date working-day deadlines count from.
    #[must_use]
    pub fn today(&self) -> NaiveDate {
        china_date(self.now())
    }

    /// How far this clock is ahead of (or behind) system time.
    #[must_use]
    pub fn offset(&self) -> TimeDelta {
        TimeDelta::milliseconds(self.shared.offset_ms.load(Ordering::Acquire))
    }

    /// Whether [`Clock::advance`] may move this clock.
    #[must_use]
    pub fn is_adjustable(&self) -> bool {
        self.shared.adjustable
    }

    /// Moves a test clock forward by `by` (at most [`MAX_ADVANCE_DAYS`] at once) and wakes every
    /// subscriber. Returns the new current time.
    ///
    /// # Errors
    /// [`ClockError::NotAdjustable`] on a system clock; [`ClockError::Negative`],
    /// [`ClockError::StepTooLarge`] or [`ClockError::OffsetTooLarge`] if `by` is out of bounds.
    pub fn advance(&self, by: TimeDelta) -> Result<DateTime<Utc>, ClockError> {
        if !self.shared.adjustable {
            return Err(ClockError::NotAdjustable);
        }
        let by_ms = by.num_milliseconds();
        if by_ms < 0 {
            return Err(ClockError::Negative { by_ms });
        }
        if by > TimeDelta::days(MAX_ADVANCE_DAYS) {
            return Err(ClockError::StepTooLarge {
                by_ms,
                max_days: MAX_ADVANCE_DAYS,
            });
        }
        let limit_ms = max_offset().num_milliseconds();
        let previous_ms = self
            .shared
            .offset_ms
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |current| {
                current
                    .checked_add(by_ms)
                    .filter(|next| next.abs() <= limit_ms)
            })
            .map_err(|_| ClockError::OffsetTooLarge {
                max_days: MAX_OFFSET_DAYS,
            })?;
        self.shared
            .moved
            .send_replace(TimeDelta::milliseconds(previous_ms + by_ms));
        Ok(self.now())
    }

    /// A receiver that changes each time this clock is moved; its value is the new offset. On a
    /// system clock it never changes, so `changed().await` simply waits (until every clone of
    /// the clock is dropped, when it returns an error).
    #[must_use]
    pub fn subscribe(&self) -> watch::Receiver<TimeDelta> {
        self.shared.moved.subscribe()
    }
}

fn max_offset() -> TimeDelta {
    TimeDelta::days(MAX_OFFSET_DAYS)
}

/// The calendar date in China Standard Time at instant `at`.
#[must_use]
pub fn china_date(at: DateTime<Utc>) -> NaiveDate {
    china_time(at).date()
}

/// The wall-clock date and time in China Standard Time at instant `at`, as every time written
/// into a platform id (msgid, `inf_refmsgid`) reads.
#[must_use]
pub fn china_time(at: DateTime<Utc>) -> NaiveDateTime {
    at.naive_utc()
        .checked_add_signed(TimeDelta::seconds(CHINA_STANDARD_TIME_OFFSET_SECONDS))
        .unwrap_or(at.naive_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_system_clock_refuses_to_move() {
        let clock = Clock::system();
        assert_eq!(
            clock.advance(TimeDelta::days(1)),
            Err(ClockError::NotAdjustable)
        );
        assert_eq!(clock.offset(), TimeDelta::zero());
        assert!(!clock.is_adjustable());
    }

    #[test]
    fn a_test_clock_moves_forward_and_every_clone_sees_it() {
        let clock = Clock::adjustable(TimeDelta::zero()).expect("zero offset");
        let clone = clock.clone();
        let before = clone.now();
        let after = clock.advance(TimeDelta::days(10)).expect("ten days");
        assert_eq!(clone.offset(), TimeDelta::days(10));
        assert!(after - before >= TimeDelta::days(10));
        assert!(clone.now() - before >= TimeDelta::days(10));
    }

    #[test]
    fn a_test_clock_refuses_negative_and_oversized_steps() {
        let clock = Clock::adjustable(TimeDelta::zero()).expect("zero offset");
        assert_eq!(
            clock.advance(TimeDelta::milliseconds(-1)),
            Err(ClockError::Negative { by_ms: -1 })
        );
        assert!(matches!(
            clock.advance(TimeDelta::days(367)),
            Err(ClockError::StepTooLarge { max_days: 366, .. })
        ));
        assert!(clock.advance(TimeDelta::days(366)).is_ok());
        assert_eq!(clock.offset(), TimeDelta::days(366));
    }

    #[test]
    fn the_total_offset_is_bounded() {
        assert!(Clock::adjustable(TimeDelta::days(MAX_OFFSET_DAYS + 1)).is_err());
        let clock = Clock::adjustable(TimeDelta::days(MAX_OFFSET_DAYS - 1)).expect("in bounds");
        assert_eq!(
            clock.advance(TimeDelta::days(2)),
            Err(ClockError::OffsetTooLarge {
                max_days: MAX_OFFSET_DAYS
            })
        );
        assert_eq!(clock.offset(), TimeDelta::days(MAX_OFFSET_DAYS - 1));
    }

    #[tokio::test]
    async fn subscribers_wake_when_the_test_clock_moves() {
        let clock = Clock::adjustable(TimeDelta::zero()).expect("zero offset");
        let mut moved = clock.subscribe();
        let waiter = tokio::spawn(async move {
            moved.changed().await.expect("clock alive");
            *moved.borrow()
        });
        clock.advance(TimeDelta::hours(5)).expect("five hours");
        assert_eq!(waiter.await.expect("joined"), TimeDelta::hours(5));
    }

    #[test]
    fn today_is_the_date_in_china_standard_time() {
        // 2026-01-04 16:30 UTC is 2026-01-05 00:30 in Beijing.
        let late_utc = Utc
            .with_ymd_and_hms(2026, 1, 4, 16, 30, 0)
            .single()
            .expect("valid instant");
        assert_eq!(
            china_date(late_utc),
            NaiveDate::from_ymd_opt(2026, 1, 5).expect("valid date")
        );
        let early_utc = Utc
            .with_ymd_and_hms(2026, 1, 4, 15, 59, 59)
            .single()
            .expect("valid instant");
        assert_eq!(
            china_date(early_utc),
            NaiveDate::from_ymd_opt(2026, 1, 4).expect("valid date")
        );
        let clock = Clock::system();
        assert_eq!(clock.today(), china_date(clock.now()));
    }

    #[test]
    fn china_time_is_eight_hours_ahead_of_utc() {
        let late_utc = Utc
            .with_ymd_and_hms(2026, 1, 4, 16, 30, 5)
            .single()
            .expect("valid instant");
        assert_eq!(
            china_time(late_utc).format("%Y%m%d%H%M%S").to_string(),
            "20260105003005"
        );
    }
}
