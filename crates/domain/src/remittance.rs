//! The fund leg (划转): a balance remitted between the bureaus' fund accounts apart from the form.
//!
//! A transfer-out region whose policy says [`Remittance::AfterWorkingDays`] sends the form first
//! (the years, and the balance the form states) and remits the balance that many working days
//! later, on the working calendar. The transfer-in bureau credits the years when it accepts the
//! form, and the balance only when the remittance arrives and matches the form's balance to the
//! cent (核对无误后计入). A remittance that does not arrive by [`remittance_deadline`] is overdue.
//! Whether a balance goes apart at all is the review's (`review::remittance_route`).
//!
//! Nothing here reads a clock: the days are computed from the day the form went or arrived.

use chrono::NaiveDate;

use crate::calendar::{Deadline, DeadlineError, WorkingCalendar};
use crate::money::Money;
use crate::policy::{MAX_REMITTANCE_WORKING_DAYS, Remittance};

/// How many working days after the remittance day the transfer-in bureau still waits before it
/// flags the remittance overdue: the transfer-in bureau's own 5 working days (DOMAIN.md, the
/// transfer, step 4) counted from the day the money was due.
pub const REMITTANCE_GRACE_WORKING_DAYS: u16 = 5;

/// What a remittance says against the form it pays for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RemittanceCheck {
    /// The amount is the form's balance to the cent: credit it.
    Matches,
    /// Less than the form's balance arrived: refuse it, credit nothing.
    Short,
    /// More than the form's balance arrived: refuse it, credit nothing.
    Over,
}

impl RemittanceCheck {
    /// Compares the remitted amount with the form's balance, exactly.
    pub fn of(form_balance: Money, remitted: Money) -> Self {
        match remitted.cmp(&form_balance) {
            std::cmp::Ordering::Equal => Self::Matches,
            std::cmp::Ordering::Less => Self::Short,
            std::cmp::Ordering::Greater => Self::Over,
        }
    }
}

/// The day the transfer-out bureau remits the balance of a form sent on `form_sent_on`; `None`
/// when the balance travels with the form.
///
/// # Errors
/// [`DeadlineError`] if the count runs past what the calendar can count.
pub fn remittance_day(
    policy: Remittance,
    form_sent_on: NaiveDate,
    calendar: &WorkingCalendar,
) -> Result<Option<Deadline>, DeadlineError> {
    match policy {
        Remittance::WithForm => Ok(None),
        Remittance::AfterWorkingDays(days) => {
            calendar.add_working_days(form_sent_on, days).map(Some)
        }
    }
}

/// The last day a remittance for a form accepted on `form_accepted_on` is on time at the
/// transfer-in bureau: the policy's delay plus [`REMITTANCE_GRACE_WORKING_DAYS`]; `None` when
/// no remittance follows. The transfer-in bureau does not know the transfer-out region's delay
/// when the policy is not shared, so it counts the largest allowed delay instead.
///
/// # Errors
/// [`DeadlineError`] if the count runs past what the calendar can count.
pub fn remittance_deadline(
    policy: Option<Remittance>,
    form_accepted_on: NaiveDate,
    calendar: &WorkingCalendar,
) -> Result<Deadline, DeadlineError> {
    let delay = match policy {
        Some(Remittance::AfterWorkingDays(days)) => days,
        Some(Remittance::WithForm) | None => MAX_REMITTANCE_WORKING_DAYS,
    };
    calendar.add_working_days(
        form_accepted_on,
        delay.saturating_add(REMITTANCE_GRACE_WORKING_DAYS),
    )
}

/// The last day a remittance sent (or due) on `remit_on` is on time, as the transfer-out bureau
/// counts it: the transfer-in bureau's [`REMITTANCE_GRACE_WORKING_DAYS`] after it.
///
/// # Errors
/// [`DeadlineError`] if the count runs past what the calendar can count.
pub fn remittance_settled_by(
    remit_on: NaiveDate,
    calendar: &WorkingCalendar,
) -> Result<Deadline, DeadlineError> {
    calendar.add_working_days(remit_on, REMITTANCE_GRACE_WORKING_DAYS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(month: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, month, day).expect("a day")
    }

    fn cents(cents: u64) -> Money {
        Money::from_cents(cents).expect("an amount")
    }

    #[test]
    fn a_remittance_is_credited_only_when_it_matches_the_form_to_the_cent() {
        assert_eq!(
            RemittanceCheck::of(cents(123_456), cents(123_456)),
            RemittanceCheck::Matches
        );
        assert_eq!(
            RemittanceCheck::of(cents(123_456), cents(123_455)),
            RemittanceCheck::Short
        );
        assert_eq!(
            RemittanceCheck::of(cents(123_456), cents(123_457)),
            RemittanceCheck::Over
        );
    }

    #[test]
    fn the_remittance_day_counts_working_days_on_the_calendar() {
        let calendar = WorkingCalendar::shipped().expect("calendar");
        assert_eq!(
            remittance_day(Remittance::WithForm, day(9, 28), &calendar),
            Ok(None),
            "with the form: no separate remittance"
        );
        // Mon Sep 28 + 3 working days: Tue 29, Wed 30, then the National Day holiday (Oct 1-7)
        // and Thu Oct 8.
        let due = remittance_day(Remittance::AfterWorkingDays(3), day(9, 28), &calendar)
            .expect("counts")
            .expect("a day");
        assert_eq!(due.due_on, day(10, 8));
    }

    #[test]
    fn a_missing_remittance_is_overdue_after_the_delay_and_the_grace() {
        let calendar = WorkingCalendar::shipped().expect("calendar");
        let accepted_on = day(3, 2);
        let deadline = remittance_deadline(
            Some(Remittance::AfterWorkingDays(10)),
            accepted_on,
            &calendar,
        )
        .expect("counts");
        let expected = calendar
            .add_working_days(accepted_on, 10 + REMITTANCE_GRACE_WORKING_DAYS)
            .expect("counts");
        assert_eq!(deadline, expected);
        assert!(!deadline.is_overdue(deadline.due_on), "on time on the day");
        let unknown = remittance_deadline(None, accepted_on, &calendar).expect("counts");
        assert!(unknown.due_on > deadline.due_on, "unknown delay: the bound");
    }
}
