//! Which statutory deadlines a transfer has missed (DOMAIN.md, "The transfer", steps 3 and 4;
//! 医保办发〔2021〕43号): the transfer-out bureau's 10 working days to issue the form and send
//! the balance, the transfer-in bureau's 5 working days to credit it, and the whole process's
//! 15.
//!
//! A deadline is missed when its day has passed and the duty it bounds is still outstanding.
//! Where a transfer stands ([`Stage`]) says which duties are:
//!
//! | stage | transfer-out duty | transfer-in duty | whole process |
//! | --- | --- | --- | --- |
//! | `Applied`, `Accepted`, `Querying` (no form yet) | outstanding | outstanding | open |
//! | `InTransit`, `Aborting`, `NeedsOperator` (form issued, no credit known) | done | outstanding | open |
//! | `PayoutPending` (the balance is still to be paid to the bank) | outstanding | none owed | open |
//! | `Credited` (credited, a confirmation awaited) | done | done | open |
//! | any terminal stage | — | — | ended |
//!
//! So a transfer whose form went out on time but waits for the credit past the 15th working day
//! is late on the transfer-in and whole-process deadlines, not on the transfer-out one; and one
//! whose form is still missing on the 11th working day is late on the transfer-out deadline
//! although the whole process has days left.
//!
//! **The fund leg.** Where a region remits the balance apart from the form (its `remittance`
//! policy; DOMAIN.md's timings: Nanjing pays about 30 working days after the transfer-out,
//! Zhengzhou's city → province account about 3 months), the statutory days bound the handling
//! of the relationship — the form issued, checked and its years credited — and the remittance
//! follows on the region's own schedule. So once the form's years are credited and the balance
//! waits for its remittance ([`TransferState::awaits_remittance`]), the three statutory flags
//! are done (whatever day it is) and one flag of its own, [`Overdue::remittance`], says
//! whether the remittance's deadline passed: at the transfer-in bureau the remittance deadline
//! (`crate::remittance::remittance_deadline`), at the transfer-out bureau its remittance day
//! plus the transfer-in bureau's grace (`crate::remittance::remittance_settled_by`). A form
//! credited late is still late on the day it was: these flags describe the duties outstanding
//! now.

use chrono::{Days, NaiveDate};

use crate::calendar::{DeadlineError, StatutoryDeadlines, WorkingCalendar};
use crate::transfer::{Stage, TransferState};

/// Which duties of a transfer are still outstanding (the table in the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outstanding {
    /// The transfer-out bureau has neither issued the form nor paid the balance out.
    pub transfer_out: bool,
    /// The transfer-in bureau has not credited, and a credit is owed.
    pub transfer_in: bool,
    /// The transfer has not ended.
    pub whole_process: bool,
}

impl Outstanding {
    /// The duties outstanding at `stage`.
    pub fn at(stage: Stage) -> Outstanding {
        let (transfer_out, transfer_in) = match stage {
            // Under review at transfer-out: the form is still owed, so is the credit.
            Stage::Applied | Stage::Accepted | Stage::Querying | Stage::UnderReview => (true, true),
            Stage::InTransit | Stage::Aborting | Stage::NeedsOperator => (false, true),
            Stage::PayoutPending => (true, false),
            // Awaiting funds: the years are credited and the balance waits for the remittance,
            // which has its own deadline (crate::remittance).
            Stage::Credited | Stage::AwaitingConnection | Stage::AwaitingFunds => (false, false),
            Stage::Completed
            | Stage::Rejected
            | Stage::Returned
            | Stage::PaidToBank
            | Stage::Aborted => (false, false),
        };
        Outstanding {
            transfer_out,
            transfer_in,
            // Waiting for a region to join the platform, no deadline runs.
            whole_process: !stage.is_terminal() && stage != Stage::AwaitingConnection,
        }
    }
}

/// The deadlines a transfer has missed on a day.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Overdue {
    /// `transfer_out_due` passed with the transfer-out duty outstanding.
    pub transfer_out: bool,
    /// `transfer_in_due` passed with the transfer-in duty outstanding.
    pub transfer_in: bool,
    /// `whole_process_due` passed and the transfer has not ended.
    pub whole_process: bool,
    /// The fund leg: the form's years are credited and the remittance of the balance is past
    /// its own deadline (not a statutory one: the region's remittance policy's).
    pub remittance: bool,
}

impl Overdue {
    /// The deadlines of a transfer at `stage` that have passed on `today` with their duty still
    /// outstanding (a deadline's own day is on time).
    pub fn of(deadlines: &StatutoryDeadlines, stage: Stage, today: NaiveDate) -> Overdue {
        let outstanding = Outstanding::at(stage);
        Overdue {
            transfer_out: outstanding.transfer_out && deadlines.transfer_out_due.is_overdue(today),
            transfer_in: outstanding.transfer_in && deadlines.transfer_in_due.is_overdue(today),
            whole_process: outstanding.whole_process
                && deadlines.whole_process_due.is_overdue(today),
            remittance: false,
        }
    }

    /// The deadlines a transfer in `state` has missed on `today`: the statutory ones, or, once
    /// its balance waits for a remittance apart from the form, only the remittance's own
    /// deadline `remittance_due_on` (the module docs say why).
    pub fn of_transfer(
        deadlines: &StatutoryDeadlines,
        state: TransferState,
        remittance_due_on: Option<NaiveDate>,
        today: NaiveDate,
    ) -> Overdue {
        if state.awaits_remittance() {
            return Overdue {
                remittance: remittance_due_on.is_some_and(|due| today > due),
                ..Overdue::default()
            };
        }
        Overdue::of(deadlines, state.stage(), today)
    }

    /// Whether any deadline is missed.
    pub fn any(self) -> bool {
        self.transfer_out || self.transfer_in || self.whole_process || self.remittance
    }
}

/// The day `D` such that a transfer's transfer-out deadline has passed on `today` exactly when
/// its whole-process deadline is before `D`: a store that keeps only the whole-process day can
/// count the transfers late on the transfer-out one.
///
/// Why it is exact: the whole-process deadline is the transfer-out deadline plus 5 working days,
/// and both are working days. The transfer-out deadline has passed when it is on or before `L`,
/// the last working day before `today`; counting 5 working days on from two working days keeps
/// their order, so that is when the whole-process deadline is on or before `L` + 5 working days,
/// that is, before the day after it.
///
/// # Errors
/// [`DeadlineError::NotFound`] if no working day is found in the year before `today`;
/// [`DeadlineError::OutOfRange`] if a date runs past the last representable one.
pub fn transfer_out_overdue_cutoff(
    calendar: &WorkingCalendar,
    today: NaiveDate,
) -> Result<NaiveDate, DeadlineError> {
    /// Far more than any run of days off (weekends, the longest holiday and its weekends).
    const SEARCHED_DAYS: usize = 366;
    let gap = StatutoryDeadlines::WHOLE_PROCESS_WORKING_DAYS
        - StatutoryDeadlines::TRANSFER_OUT_WORKING_DAYS;
    let out_of_range = DeadlineError::OutOfRange {
        start: today,
        days: gap,
    };
    let last_working = std::iter::successors(today.pred_opt(), |day| day.pred_opt())
        .take(SEARCHED_DAYS)
        .find(|day| calendar.is_working(*day))
        .ok_or(DeadlineError::NotFound {
            start: today,
            days: gap,
            searched: SEARCHED_DAYS,
        })?;
    calendar
        .add_working_days(last_working, gap)?
        .due_on
        .checked_add_days(Days::new(1))
        .ok_or(out_of_range)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(year: i32, month: u32, date: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(year, month, date).expect("a valid date")
    }

    fn calendar() -> WorkingCalendar {
        WorkingCalendar::shipped().expect("the shipped calendar")
    }

    /// Applied on Monday 2 March 2026: transfer-out due Monday 16 March, transfer-in and whole
    /// process due Monday 23 March (no holiday in between).
    fn deadlines() -> StatutoryDeadlines {
        StatutoryDeadlines::statutory(&calendar(), day(2026, 3, 2), None).expect("counted")
    }

    #[test]
    fn the_transfer_out_deadline_is_overdue_while_no_form_was_issued() {
        let deadlines = deadlines();
        assert_eq!(deadlines.transfer_out_due.due_on, day(2026, 3, 16));
        let on_the_day = Overdue::of(&deadlines, Stage::Accepted, day(2026, 3, 16));
        assert!(!on_the_day.any(), "its own day is on time");
        let after = Overdue::of(&deadlines, Stage::Accepted, day(2026, 3, 17));
        assert_eq!(
            after,
            Overdue {
                transfer_out: true,
                ..Overdue::default()
            }
        );
        // The form went out: the transfer-out bureau did its part, however late it is now.
        assert!(!Overdue::of(&deadlines, Stage::InTransit, day(2026, 3, 17)).any());
        // A payout not yet made is the transfer-out bureau's duty still.
        assert!(Overdue::of(&deadlines, Stage::PayoutPending, day(2026, 3, 17)).transfer_out);
    }

    #[test]
    fn the_transfer_in_deadline_is_overdue_while_nothing_was_credited() {
        let deadlines = deadlines();
        assert_eq!(deadlines.transfer_in_due.due_on, day(2026, 3, 23));
        let late = Overdue::of(&deadlines, Stage::InTransit, day(2026, 3, 24));
        assert_eq!(
            late,
            Overdue {
                transfer_in: true,
                whole_process: true,
                ..Overdue::default()
            }
        );
        // Credited: only the whole process is still open.
        let credited = Overdue::of(&deadlines, Stage::Credited, day(2026, 3, 24));
        assert_eq!(
            credited,
            Overdue {
                whole_process: true,
                ..Overdue::default()
            }
        );
        // A form received late gives the transfer-in bureau its own 5 working days.
        let received =
            StatutoryDeadlines::statutory(&calendar(), day(2026, 3, 2), Some(day(2026, 3, 20)))
                .expect("counted");
        assert_eq!(received.transfer_in_due.due_on, day(2026, 3, 27));
        let waiting = Overdue::of(&received, Stage::Accepted, day(2026, 3, 24));
        assert!(!waiting.transfer_in && waiting.whole_process && waiting.transfer_out);
    }

    #[test]
    fn an_ended_transfer_is_never_overdue() {
        let deadlines = deadlines();
        for stage in [
            Stage::Completed,
            Stage::Rejected,
            Stage::Returned,
            Stage::PaidToBank,
            Stage::Aborted,
        ] {
            assert!(
                !Overdue::of(&deadlines, stage, day(2026, 12, 31)).any(),
                "{stage:?}"
            );
        }
        assert!(Overdue::of(&deadlines, Stage::NeedsOperator, day(2026, 3, 24)).any());
    }

    /// DOMAIN.md: 15 working days for the whole process; a region's remittance may follow weeks
    /// later (Nanjing ≈ 30 working days). Once the form's years are credited, the balance is
    /// judged by its remittance deadline, at both bureaus, not by the statutory days.
    #[test]
    fn a_balance_remitted_apart_is_judged_by_its_remittance_deadline_not_the_15_working_days() {
        use crate::transfer::in_side::{FundsProblem, InState};
        use crate::transfer::out_side::{BalanceRoute, OutState};
        let deadlines = deadlines();
        // Six weeks after the application: every statutory day has long passed.
        let today = day(2026, 4, 13);
        let remittance_due = Some(day(2026, 4, 20));
        for state in [
            TransferState::Out(OutState::RemittanceDue),
            TransferState::Out(OutState::Remitted),
            TransferState::Out(OutState::RemittanceRefused),
            TransferState::In(InState::AwaitingFunds),
            TransferState::In(InState::FundsHeld(FundsProblem::Short)),
        ] {
            let waiting = Overdue::of_transfer(&deadlines, state, remittance_due, today);
            assert!(!waiting.any(), "{state:?}: on schedule for its remittance");
            let late = Overdue::of_transfer(&deadlines, state, remittance_due, day(2026, 4, 21));
            assert_eq!(
                late,
                Overdue {
                    remittance: true,
                    ..Overdue::default()
                },
                "{state:?}: late on the remittance only"
            );
        }
        // Before the form's credit the statutory days still decide, remittance or not.
        let in_transit = TransferState::Out(OutState::InTransit {
            balance: BalanceRoute::RemittedApart,
        });
        let before = Overdue::of_transfer(&deadlines, in_transit, None, today);
        assert!(before.transfer_in && before.whole_process && !before.remittance);
    }

    /// The cutoff agrees with the deadlines themselves on every day of 2026 and every
    /// application day of 2026, holidays and make-up days included.
    #[test]
    fn the_cutoff_counts_exactly_the_transfers_late_on_the_transfer_out_deadline() {
        let calendar = calendar();
        let days: Vec<NaiveDate> = day(2026, 1, 1)
            .iter_days()
            .take_while(|d| *d <= day(2026, 12, 31))
            .collect();
        let deadlines: Vec<StatutoryDeadlines> = days
            .iter()
            .step_by(3)
            .map(|applied| StatutoryDeadlines::statutory(&calendar, *applied, None))
            .collect::<Result<_, _>>()
            .expect("counted");
        for today in days.iter().copied() {
            let cutoff = transfer_out_overdue_cutoff(&calendar, today).expect("a cutoff");
            for due in &deadlines {
                assert_eq!(
                    due.whole_process_due.due_on < cutoff,
                    due.transfer_out_due.is_overdue(today),
                    "today {today}, transfer-out due {}",
                    due.transfer_out_due.due_on
                );
            }
        }
    }
}
