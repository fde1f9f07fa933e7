//! Benefit continuity at the transfer-in region: after a gap in contributions, may the person
//! back-pay (补缴), is there a waiting period (待遇等待期), and from which month do benefits start.
//!
//! The rules are DOMAIN.md's "Continuity rules" (医保办发〔2021〕43号 and the seeds), read as
//! follows; [`benefit_start`] applies them in this order.
//!
//! * **The gap** is the number of calendar months strictly between the last month paid at the
//!   origin and the first month paid at the destination: paid to 202603, then from 202604, is a
//!   gap of 0; then from 202607 is a gap of 3 (April, May, June). A destination month at or before
//!   the origin's last month is a gap of 0.
//! * **Back-pay, same scheme** (rule 1): a gap of at most the destination's
//!   `back_pay_window_months` (itself at most 3) may be back-paid; benefits start in the month of
//!   payment (the first month paid at the destination) and the gap is covered retroactively; no
//!   waiting period. The national text speaks of employee-scheme members; it is applied to any
//!   person who keeps their scheme.
//! * **Back-pay, scheme switch** (rule 2): the same, for a person who switches between the employee
//!   and resident schemes, only if they were insured continuously for at least
//!   [`SCHEME_SWITCH_CONTINUOUS_MONTHS`] (2 years) before the gap.
//! * **Resident → employee** (rule 4): when rule 2 does not apply, benefits start in the month
//!   after the first month paid at the destination. The seed states this for gaps of at most two
//!   months; it says nothing else for a gap of exactly 3 months, so that gap is treated the same
//!   (no waiting period may be set for it, see below). Where rule 2 also applies, rule 2's earlier
//!   start (the month of payment) wins: it is the more favourable reading of two national rules.
//! * **Waiting period** (rule 3): only a gap of **more than 3 months** may carry a waiting period,
//!   of the destination's `waiting_period_months` (at most 6). It counts from the month benefits
//!   would otherwise start: paid from 202601 with a 6-month wait, benefits start 202607 (or
//!   202608 after a resident → employee switch). The national text lets a region set a waiting
//!   period only above 3 months, so a gap within 3 months but beyond a region's narrower
//!   back-pay window gets no back-pay **and** no waiting period: benefits start as above, without
//!   retroactive cover.
//!
//! Limits come from the policy clamped to the national caps, so an unvalidated policy can never
//! grant a longer back-pay window or impose a longer wait than the law allows.

use serde::{Deserialize, Serialize};

use crate::classify::{SchemeChange, scheme_change};
use crate::month::{ContributionPeriod, YearMonth};
use crate::policy::{NATIONAL_BACK_PAY_WINDOW_MONTHS, RegionPolicy};
use crate::region::RegionCode;
use crate::scheme::Scheme;

/// Continuous months of insurance before the gap that a scheme switcher needs for back-pay: 2 years.
pub const SCHEME_SWITCH_CONTINUOUS_MONTHS: u32 = 24;

/// What the transfer-in region knows about the person's contributions around the move.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ContinuityInput {
    /// The last month paid at the transfer-out region.
    pub last_paid_month_at_origin: YearMonth,
    /// The first month paid at the transfer-in region.
    pub first_paid_month_at_destination: YearMonth,
    /// How many months the person was insured without interruption up to the last month paid at
    /// the origin (for the 2-year condition on scheme switchers).
    pub continuous_months_before_gap: u32,
    /// Whether, and which way, the person changed scheme with the move.
    pub scheme_change: SchemeChange,
}

/// Whether the person may back-pay the gap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackPay {
    /// The gap may be back-paid and is then covered retroactively. `months` is the length of the
    /// gap, 0 when there is none (nothing to pay, nothing lost).
    Allowed {
        /// Months to back-pay.
        months: u32,
    },
    /// The gap may not be back-paid; it stays uncovered.
    NotAllowed,
}

/// When benefits start at the transfer-in region, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Continuity {
    /// Calendar months with no contribution between the two regions.
    pub gap_months: u32,
    /// Whether the gap may be back-paid.
    pub back_pay: BackPay,
    /// The waiting period imposed, 0 when none.
    pub waiting_period_months: u8,
    /// The first month in which the person may draw benefits at the transfer-in region.
    pub benefits_start: YearMonth,
}

/// Applies the continuity rules (see the module documentation) to one person's move.
pub fn benefit_start(input: &ContinuityInput, policy: &RegionPolicy) -> Continuity {
    let gap_months = gap_months(
        input.last_paid_month_at_origin,
        input.first_paid_month_at_destination,
    );
    let payment_month = input.first_paid_month_at_destination;
    let within_window = gap_months <= u32::from(policy.effective_back_pay_window_months());
    let may_back_pay = within_window
        && match input.scheme_change {
            SchemeChange::Same => true,
            SchemeChange::EmployeeToResident | SchemeChange::ResidentToEmployee => {
                input.continuous_months_before_gap >= SCHEME_SWITCH_CONTINUOUS_MONTHS
            }
        };
    if may_back_pay {
        return Continuity {
            gap_months,
            back_pay: BackPay::Allowed { months: gap_months },
            waiting_period_months: 0,
            benefits_start: payment_month,
        };
    }
    let waiting_period_months = if gap_months > u32::from(NATIONAL_BACK_PAY_WINDOW_MONTHS) {
        policy.effective_waiting_period_months()
    } else {
        0
    };
    let first_eligible = match input.scheme_change {
        SchemeChange::ResidentToEmployee => payment_month.saturating_plus_months(1),
        SchemeChange::Same | SchemeChange::EmployeeToResident => payment_month,
    };
    Continuity {
        gap_months,
        back_pay: BackPay::NotAllowed,
        waiting_period_months,
        benefits_start: first_eligible.saturating_plus_months(i32::from(waiting_period_months)),
    }
}

/// The continuity facts of a credited move, from the form's periods (everything paid before the
/// move, wherever) and the person's record at the transfer-in region: the last month paid
/// before the move; the first month paid at the destination (its earliest period there, else
/// the month the record says the person was first insured there); the unbroken run of months up
/// to the last one; the scheme change. `None` when the form lists no period.
pub fn input_of_move(
    form_periods: &[ContributionPeriod],
    form_scheme: Scheme,
    held: &[ContributionPeriod],
    destination: RegionCode,
    enrolled_from: YearMonth,
    scheme_at_destination: Scheme,
) -> Option<ContinuityInput> {
    let last = form_periods.iter().map(ContributionPeriod::to).max()?;
    let pool = destination.pooling_region();
    let first_here = held
        .iter()
        .filter(|p| p.region().pooling_region() == pool && p.to() > last)
        .map(ContributionPeriod::from)
        .min()
        .unwrap_or(enrolled_from);
    Some(ContinuityInput {
        last_paid_month_at_origin: last,
        first_paid_month_at_destination: first_here,
        continuous_months_before_gap: continuous_months_up_to(form_periods, last),
        scheme_change: scheme_change(form_scheme, scheme_at_destination),
    })
}

/// How many months without a break the periods cover, counting back from `last`.
fn continuous_months_up_to(periods: &[ContributionPeriod], last: YearMonth) -> u32 {
    let mut month = last;
    let mut run = 0u32;
    while periods.iter().any(|p| p.from() <= month && month <= p.to()) {
        run = run.saturating_add(1);
        match month.plus_months(-1) {
            Some(earlier) => month = earlier,
            None => break,
        }
    }
    run
}

/// Calendar months strictly between `last_paid` and `first_paid`; 0 when they are adjacent or
/// overlap.
pub fn gap_months(last_paid: YearMonth, first_paid: YearMonth) -> u32 {
    u32::try_from(last_paid.months_until(first_paid) - 1).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ym(text: &str) -> YearMonth {
        YearMonth::parse(text).unwrap()
    }

    fn period(from: &str, to: &str, scheme: Scheme, region: &str) -> ContributionPeriod {
        ContributionPeriod::new(ym(from), ym(to), scheme, RegionCode::parse(region).unwrap())
            .unwrap()
    }

    #[test]
    fn a_move_reads_the_gap_the_run_and_the_scheme_change_from_the_form_and_the_record() {
        let lhasa = RegionCode::parse("540100").unwrap();
        let form = [
            period("201801", "201912", Scheme::Employee, "610100"),
            period("202003", "202512", Scheme::Employee, "150100"),
        ];
        let input = input_of_move(
            &form,
            Scheme::Employee,
            &[],
            lhasa,
            ym("202604"),
            Scheme::Employee,
        )
        .expect("periods on the form");
        assert_eq!(input.last_paid_month_at_origin, ym("202512"));
        assert_eq!(input.first_paid_month_at_destination, ym("202604"));
        assert_eq!(
            input.continuous_months_before_gap, 70,
            "2020-03 .. 2025-12, the 2-month break ends the run"
        );
        assert_eq!(input.scheme_change, SchemeChange::Same);
        // A period paid here after the move says when payment began here.
        let here = [period("202603", "202612", Scheme::Resident, "540100")];
        let input = input_of_move(
            &form,
            Scheme::Employee,
            &here,
            lhasa,
            ym("202604"),
            Scheme::Resident,
        )
        .expect("periods on the form");
        assert_eq!(input.first_paid_month_at_destination, ym("202603"));
        assert_eq!(input.scheme_change, SchemeChange::EmployeeToResident);
        assert!(
            input_of_move(
                &[],
                Scheme::Employee,
                &[],
                lhasa,
                ym("202604"),
                Scheme::Employee
            )
            .is_none()
        );
    }

    /// A move where the last month at the origin is 202512 and payment resumes `gap` months later.
    fn input(gap: i32, continuous: u32, scheme_change: SchemeChange) -> ContinuityInput {
        ContinuityInput {
            last_paid_month_at_origin: ym("202512"),
            first_paid_month_at_destination: ym("202512").plus_months(gap + 1).unwrap(),
            continuous_months_before_gap: continuous,
            scheme_change,
        }
    }

    #[test]
    fn the_gap_counts_the_months_strictly_between_the_two_regions() {
        assert_eq!(gap_months(ym("202603"), ym("202604")), 0);
        assert_eq!(gap_months(ym("202603"), ym("202607")), 3);
        assert_eq!(gap_months(ym("202512"), ym("202601")), 0);
        assert_eq!(gap_months(ym("202603"), ym("202603")), 0);
        assert_eq!(gap_months(ym("202603"), ym("202501")), 0);
    }

    // Table "Continuity rules", one test per rule.

    #[test]
    fn a_gap_of_three_months_or_less_may_be_back_paid_with_benefits_from_the_month_of_payment() {
        let policy = RegionPolicy::default();
        for gap in 0..=3 {
            let result = benefit_start(&input(gap, 1, SchemeChange::Same), &policy);
            let payment = ym("202512").plus_months(gap + 1).unwrap();
            assert_eq!(
                result,
                Continuity {
                    gap_months: gap as u32,
                    back_pay: BackPay::Allowed { months: gap as u32 },
                    waiting_period_months: 0,
                    benefits_start: payment,
                }
            );
        }
    }

    #[test]
    fn a_scheme_switch_after_two_years_with_a_gap_of_three_months_or_less_may_be_back_paid() {
        let policy = RegionPolicy::default();
        for change in [
            SchemeChange::EmployeeToResident,
            SchemeChange::ResidentToEmployee,
        ] {
            let result = benefit_start(&input(3, 24, change), &policy);
            assert_eq!(result.back_pay, BackPay::Allowed { months: 3 });
            assert_eq!(result.waiting_period_months, 0);
            assert_eq!(result.benefits_start, ym("202604"));
        }
    }

    #[test]
    fn a_scheme_switch_before_two_years_may_not_back_pay_the_gap() {
        let policy = RegionPolicy::default();
        let result = benefit_start(&input(2, 23, SchemeChange::EmployeeToResident), &policy);
        assert_eq!(result.back_pay, BackPay::NotAllowed);
        assert_eq!(result.waiting_period_months, 0);
        assert_eq!(result.benefits_start, ym("202603"));
    }

    #[test]
    fn a_gap_of_more_than_three_months_carries_the_regions_waiting_period_of_at_most_six() {
        let policy = RegionPolicy {
            waiting_period_months: 6,
            ..RegionPolicy::default()
        };
        let result = benefit_start(&input(4, 120, SchemeChange::Same), &policy);
        assert_eq!(
            result,
            Continuity {
                gap_months: 4,
                back_pay: BackPay::NotAllowed,
                waiting_period_months: 6,
                benefits_start: ym("202611"),
            }
        );
        let shorter = RegionPolicy {
            waiting_period_months: 2,
            ..RegionPolicy::default()
        };
        assert_eq!(
            benefit_start(&input(4, 120, SchemeChange::Same), &shorter).benefits_start,
            ym("202607")
        );
        let none = RegionPolicy {
            waiting_period_months: 0,
            ..RegionPolicy::default()
        };
        assert_eq!(
            benefit_start(&input(12, 0, SchemeChange::Same), &none).benefits_start,
            ym("202701")
        );
    }

    #[test]
    fn resident_to_employee_with_a_gap_of_two_months_or_less_starts_benefits_the_month_after_payment()
     {
        let policy = RegionPolicy::default();
        for gap in 0..=2 {
            let result = benefit_start(&input(gap, 6, SchemeChange::ResidentToEmployee), &policy);
            let payment = ym("202512").plus_months(gap + 1).unwrap();
            assert_eq!(result.back_pay, BackPay::NotAllowed);
            assert_eq!(result.waiting_period_months, 0);
            assert_eq!(result.benefits_start, payment.plus_months(1).unwrap());
        }
    }

    #[test]
    fn resident_to_employee_after_a_long_gap_waits_from_the_month_after_payment() {
        let policy = RegionPolicy::default();
        let result = benefit_start(&input(5, 6, SchemeChange::ResidentToEmployee), &policy);
        // Paid from 202606; eligible from 202607; six months' wait.
        assert_eq!(result.waiting_period_months, 6);
        assert_eq!(result.benefits_start, ym("202701"));
    }

    #[test]
    fn a_gap_beyond_a_narrower_back_pay_window_gets_neither_back_pay_nor_a_waiting_period() {
        let policy = RegionPolicy {
            back_pay_window_months: 1,
            ..RegionPolicy::default()
        };
        let result = benefit_start(&input(2, 120, SchemeChange::Same), &policy);
        assert_eq!(result.back_pay, BackPay::NotAllowed);
        assert_eq!(result.waiting_period_months, 0);
        assert_eq!(result.benefits_start, ym("202603"));
    }

    #[test]
    fn an_unvalidated_policy_cannot_exceed_the_national_caps() {
        let lax = RegionPolicy {
            back_pay_window_months: 12,
            waiting_period_months: 24,
            ..RegionPolicy::default()
        };
        let result = benefit_start(&input(5, 120, SchemeChange::Same), &lax);
        assert_eq!(result.back_pay, BackPay::NotAllowed);
        assert_eq!(result.waiting_period_months, 6);
    }

    #[test]
    fn a_waiting_period_near_the_last_supported_year_saturates_instead_of_panicking() {
        let input = ContinuityInput {
            last_paid_month_at_origin: ym("210001"),
            first_paid_month_at_destination: ym("210012"),
            continuous_months_before_gap: 0,
            scheme_change: SchemeChange::ResidentToEmployee,
        };
        assert_eq!(
            benefit_start(&input, &RegionPolicy::default()).benefits_start,
            YearMonth::MAX
        );
    }

    fn any_year_month() -> impl Strategy<Value = YearMonth> {
        (1950u16..=2100, 1u8..=12).prop_map(|(y, m)| YearMonth::new(y, m).unwrap())
    }

    proptest! {
        #[test]
        fn benefits_never_start_before_payment_nor_wait_beyond_the_cap(
            last in any_year_month(),
            first in any_year_month(),
            continuous in any::<u32>(),
            change in prop_oneof![
                Just(SchemeChange::Same),
                Just(SchemeChange::EmployeeToResident),
                Just(SchemeChange::ResidentToEmployee),
            ],
            window in any::<u8>(),
            waiting in any::<u8>(),
        ) {
            let policy = RegionPolicy {
                back_pay_window_months: window,
                waiting_period_months: waiting,
                ..RegionPolicy::default()
            };
            let input = ContinuityInput {
                last_paid_month_at_origin: last,
                first_paid_month_at_destination: first,
                continuous_months_before_gap: continuous,
                scheme_change: change,
            };
            let result = benefit_start(&input, &policy);
            prop_assert!(result.benefits_start >= first);
            prop_assert!(result.waiting_period_months <= 6);
            if let BackPay::Allowed { months } = result.back_pay {
                prop_assert!(months <= 3);
                prop_assert_eq!(result.benefits_start, first);
            }
            if result.waiting_period_months > 0 {
                prop_assert!(result.gap_months > 3);
            }
        }
    }
}
