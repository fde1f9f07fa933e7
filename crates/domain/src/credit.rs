//! What moves and what is credited (DOMAIN.md, "The transfer" steps 3 and 4 and "Where the
//! balance goes"): the months on a person's record, the balance the information form carries,
//! the months credited at the transfer-in region (resident years converted where its policy says
//! so), when the relationship ends at the transfer-out region, and where a balance in transit goes
//! when a transfer is aborted.

use crate::classify::{BalanceDisposition, BankAccountGiven, PayoutReason};
use crate::money::Money;
use crate::month::{self, ContributionPeriod, YearMonth};
use crate::policy::RegionPolicy;
use crate::region::{Pooling, RegionCode};
use crate::scheme::Scheme;
use crate::transfer::out_side::{AbortFallback, BalanceRoute, OutState, Review};

/// Months on a person's record at `region` (the figure its information form carries): the
/// distinct months paid in `region`'s pooling region (as `pooling` groups codes: a city, or a
/// whole province that pools at province level) plus the deemed months (视同缴费年限) its
/// earlier transfers credited there. Periods brought in from other regions stay on the record
/// (the form lists them) but count through the deemed months, so nothing is counted twice.
/// Saturates at `u32::MAX`.
pub fn months_on_record(
    periods: &[ContributionPeriod],
    deemed_months: u32,
    region: RegionCode,
    pooling: &Pooling,
) -> u32 {
    let pool = pooling.pooling_region(region);
    let local: Vec<ContributionPeriod> = periods
        .iter()
        .copied()
        .filter(|p| pooling.pooling_region(p.region()) == pool)
        .collect();
    month::total_months(&local).saturating_add(deemed_months)
}

/// What a transfer-in region credits for a form (DOMAIN.md: contribution years accumulate
/// across regions and count as deemed years at the new region; nobody is insured twice; resident
/// years may be converted when the person joins the employee scheme).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MonthsCredit {
    /// Months credited as deemed months.
    pub months: u32,
    /// The form's periods the record did not hold yet, to keep on it (brought in).
    pub brought_in: Vec<ContributionPeriod>,
}

/// The months a transfer-in region credits for a form's periods, given the periods the person's
/// record there already holds and the person's scheme there:
/// - every month any of the form's periods covers counts once, whatever the periods' regions
///   (paid at the transfer-out region or brought in there by an earlier transfer), so a person
///   who moves A → B → C keeps every month;
/// - a month the record already holds is not credited again (不得重复参保: an overlap is a double
///   record of one month);
/// - a month paid under the resident scheme is converted at the transfer-in policy's rate only
///   when the person joins the employee scheme there and the policy has a rate; a month covered
///   by an employee period counts as an employee month; everything else counts month for month.
pub fn months_to_credit(
    form_periods: &[ContributionPeriod],
    held: &[ContributionPeriod],
    scheme_at_transfer_in: Scheme,
    in_policy: &RegionPolicy,
) -> MonthsCredit {
    fn covered(
        month: YearMonth,
        periods: &[ContributionPeriod],
    ) -> impl Iterator<Item = &ContributionPeriod> {
        periods
            .iter()
            .filter(move |p| p.from() <= month && month <= p.to())
    }
    let mut employee: u32 = 0;
    let mut resident: u32 = 0;
    let mut months: Vec<YearMonth> = form_periods
        .iter()
        .flat_map(|p| {
            (0..p.months()).filter_map(move |n| p.from().plus_months(i32::try_from(n).ok()?))
        })
        .collect();
    months.sort_unstable();
    months.dedup();
    for month in months {
        if covered(month, held).next().is_some() {
            continue;
        }
        if covered(month, form_periods).any(|p| p.scheme() == Scheme::Employee) {
            employee = employee.saturating_add(1);
        } else {
            resident = resident.saturating_add(1);
        }
    }
    let resident_credited = match (
        scheme_at_transfer_in,
        in_policy.resident_to_employee_months_per_year,
    ) {
        (Scheme::Employee, Some(rate)) => month::convert_resident_months(resident, rate),
        _ => resident,
    };
    let brought_in = form_periods
        .iter()
        .copied()
        .filter(|p| !held.contains(p))
        .collect();
    MonthsCredit {
        months: employee.saturating_add(resident_credited),
        brought_in,
    }
}

/// The balance the information form carries: the whole balance only when it moves to the
/// transfer-in account ([`BalanceDisposition::MoveToAccount`]). A balance paid to the bank after
/// the credit, or one that stays, is not on the form: the transfer-in bureau credits nothing.
pub fn balance_on_form(disposition: BalanceDisposition, balance: Money) -> Money {
    match disposition {
        BalanceDisposition::MoveToAccount => balance,
        BalanceDisposition::PayToBank(_)
        | BalanceDisposition::StaysUsableInProvince
        | BalanceDisposition::KeptUsableAtOrigin
        | BalanceDisposition::NoPersonalAccount => Money::ZERO,
    }
}

/// Whether the transfer-out review moves money out of the personal account at all: every
/// review except one whose form goes with no money ([`BalanceRoute::StaysPut`]), a refusal, and
/// one not decided yet (waiting for a connection or for its review day).
pub fn review_moves_balance(review: Review) -> bool {
    match review {
        Review::DeliverForm(
            BalanceRoute::MovesWithForm
            | BalanceRoute::ToBankAfterCredit
            | BalanceRoute::RemittedApart,
        )
        | Review::PayToBankOnly => true,
        Review::DeliverForm(BalanceRoute::StaysPut)
        | Review::Refused(_)
        | Review::AwaitConnection
        | Review::UnderReview { .. } => false,
    }
}

/// The deemed months (视同缴费年限) on a person's record at the transfer-in region after a credit:
/// the years brought in from another region count as deemed years there, added to any the
/// person already had (saturating: a record never wraps around).
pub fn deemed_months_after_credit(deemed_months: u32, credited_months: u32) -> u32 {
    deemed_months.saturating_add(credited_months)
}

/// Whether the relationship ends at the transfer-out region in this state: once the years went
/// to the transfer-in region — the transfer completed, or its form was credited and the
/// balance then paid to the bank (a region that pays out, employee → resident) — the person's
/// record there is terminated (终止参保). A payout without a form leaves the relationship where
/// it is: a relocated retiree keeps it (retirees do not transfer), and a person whose
/// destination is not connected keeps their years there (DOMAIN.md: a record is never cleared
/// before the transfer). An abort's payout moved no years either.
pub fn relationship_ends_at_origin(
    state: OutState,
    disposition: Option<BalanceDisposition>,
) -> bool {
    match state {
        OutState::Completed => true,
        OutState::PaidToBank => matches!(
            disposition,
            Some(BalanceDisposition::PayToBank(
                PayoutReason::RegionPaysOut | PayoutReason::EmployeeToResident
            ))
        ),
        _ => false,
    }
}

/// The fallback an abort takes if the transfer-in bureau did not credit: pay the balance to the
/// bank account when the application named one, else return it to the personal account.
pub fn abort_fallback(bank_account: BankAccountGiven) -> AbortFallback {
    match bank_account {
        BankAccountGiven::Given => AbortFallback::PayToBank,
        BankAccountGiven::NotGiven => AbortFallback::ReturnToAccount,
    }
}

/// The most months a form may carry, contributed or deemed: a hundred years.
/// INVENTED as a national cap (no figure is published); no working life comes near it.
pub const MAX_FORM_MONTHS: u32 = 1_200;

/// The largest personal-account balance a form may carry, in cents: ¥10,000,000.00. INVENTED as
/// a national cap (no figure is published); a lifetime of the highest contributions stays far
/// below it, so a larger figure is a sender's bug or an attack, never a balance.
pub const MAX_FORM_BALANCE_CENTS: u64 = 1_000_000_000;

/// Which figure of a form breaks a national cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormFigure {
    /// `contribution_months` over [`MAX_FORM_MONTHS`].
    ContributionMonths,
    /// `deemed_months` over [`MAX_FORM_MONTHS`].
    DeemedMonths,
    /// The balance over [`MAX_FORM_BALANCE_CENTS`].
    Balance,
}

/// The figures of an arriving form within the national caps: months contributed and months
/// deemed each at most [`MAX_FORM_MONTHS`], the balance at most
/// [`MAX_FORM_BALANCE_CENTS`]. The first figure over its cap, if any.
pub fn form_figures_within_caps(
    contribution_months: u32,
    deemed_months: u32,
    balance: Money,
) -> Result<(), FormFigure> {
    if contribution_months > MAX_FORM_MONTHS {
        return Err(FormFigure::ContributionMonths);
    }
    if deemed_months > MAX_FORM_MONTHS {
        return Err(FormFigure::DeemedMonths);
    }
    if balance.cents() > MAX_FORM_BALANCE_CENTS {
        return Err(FormFigure::Balance);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_figures_within_caps_refuses_the_first_figure_over_its_cap() {
        let money = |cents| Money::from_cents(cents).expect("cents");
        assert_eq!(form_figures_within_caps(600, 0, money(100_000_000)), Ok(()));
        assert_eq!(
            form_figures_within_caps(1_200, 0, money(MAX_FORM_BALANCE_CENTS)),
            Ok(())
        );
        assert_eq!(
            form_figures_within_caps(1_201, 0, money(0)),
            Err(FormFigure::ContributionMonths)
        );
        assert_eq!(form_figures_within_caps(700, 501, money(0)), Ok(()));
        assert_eq!(
            form_figures_within_caps(0, 1_201, money(0)),
            Err(FormFigure::DeemedMonths)
        );
        assert_eq!(
            form_figures_within_caps(0, u32::MAX, money(0)),
            Err(FormFigure::DeemedMonths)
        );
        assert_eq!(
            form_figures_within_caps(0, 0, money(MAX_FORM_BALANCE_CENTS + 1)),
            Err(FormFigure::Balance)
        );
    }
    use crate::month::YearMonth;
    use crate::region::RegionCode;
    use crate::transfer::RefusalReason;

    fn period(from: &str, to: &str, scheme: Scheme) -> ContributionPeriod {
        ContributionPeriod::new(
            YearMonth::parse(from).unwrap(),
            YearMonth::parse(to).unwrap(),
            scheme,
            RegionCode::parse("150100").unwrap(),
        )
        .unwrap()
    }

    fn period_in(from: &str, to: &str, scheme: Scheme, region: &str) -> ContributionPeriod {
        ContributionPeriod::new(
            YearMonth::parse(from).unwrap(),
            YearMonth::parse(to).unwrap(),
            scheme,
            RegionCode::parse(region).unwrap(),
        )
        .unwrap()
    }

    fn hohhot() -> RegionCode {
        RegionCode::parse("150100").unwrap()
    }

    #[test]
    fn months_on_record_count_the_local_periods_and_the_deemed_months() {
        let periods = [
            period("202001", "202012", Scheme::Employee),
            period("202201", "202206", Scheme::Employee),
            // Brought in from Lhasa by an earlier transfer: counted by the deemed months.
            period_in("201801", "201912", Scheme::Employee, "540100"),
        ];
        assert_eq!(
            months_on_record(&periods, 0, hohhot(), &Pooling::city_level()),
            18
        );
        assert_eq!(
            months_on_record(&periods, 24, hohhot(), &Pooling::city_level()),
            42
        );
        assert_eq!(
            months_on_record(&[], 7, hohhot(), &Pooling::city_level()),
            7
        );
        // A county of Hohhot is Hohhot's pooling region.
        let county = [period_in("202101", "202112", Scheme::Employee, "150102")];
        assert_eq!(
            months_on_record(&county, 0, hohhot(), &Pooling::city_level()),
            12
        );
        // Where the whole province pools at province level, another city of it is local too.
        let baotou = [period_in("201901", "201912", Scheme::Employee, "150200")];
        let inner_mongolia = Pooling::city_level().with_province_level(hohhot().province());
        assert_eq!(
            months_on_record(&baotou, 0, hohhot(), &Pooling::city_level()),
            0
        );
        assert_eq!(months_on_record(&baotou, 0, hohhot(), &inner_mongolia), 12);
    }

    #[test]
    fn contribution_years_accumulate_across_regions_a_to_b_to_c_keeping_every_month() {
        let plain = RegionPolicy::default();
        // At A (Hohhot): 2015-07 .. 2020-06 paid, 60 months.
        let at_a = [period_in("201507", "202006", Scheme::Employee, "150100")];
        let a_to_b = months_to_credit(&at_a, &[], Scheme::Employee, &plain);
        assert_eq!(a_to_b.months, 60);
        // At B (Lhasa): the brought-in period kept, 2020-08 .. 2023-07 paid there, 36 months.
        let mut at_b = vec![period_in("202008", "202307", Scheme::Employee, "540100")];
        at_b.extend(a_to_b.brought_in);
        let lhasa = RegionCode::parse("540100").unwrap();
        assert_eq!(
            months_on_record(&at_b, a_to_b.months, lhasa, &Pooling::city_level()),
            96,
            "the form B sends"
        );
        // At C (Xi'an): every month, paid and deemed.
        let b_to_c = months_to_credit(&at_b, &[], Scheme::Employee, &plain);
        assert_eq!(b_to_c.months, 96);
        assert_eq!(b_to_c.brought_in.len(), 2);
    }

    #[test]
    fn no_one_is_insured_twice_a_month_the_record_holds_is_not_credited_again() {
        let plain = RegionPolicy::default();
        // Back to A: the form from B lists A's own old period, which A still holds.
        let held_at_a = [period_in("201507", "202006", Scheme::Employee, "150100")];
        let form = [
            period_in("201507", "202006", Scheme::Employee, "150100"),
            period_in("202008", "202307", Scheme::Employee, "540100"),
            // Overlapping periods on one form count each month once.
            period_in("202301", "202312", Scheme::Employee, "540100"),
        ];
        let credit = months_to_credit(&form, &held_at_a, Scheme::Employee, &plain);
        assert_eq!(credit.months, 36 + 5);
        assert_eq!(
            credit.brought_in.len(),
            2,
            "the held period is not kept twice"
        );
    }

    #[test]
    fn only_a_balance_that_moves_to_the_transfer_in_account_is_on_the_form() {
        let balance = Money::parse("1234.56").unwrap();
        assert_eq!(
            balance_on_form(BalanceDisposition::MoveToAccount, balance),
            balance
        );
        for disposition in [
            BalanceDisposition::PayToBank(PayoutReason::RegionPaysOut),
            BalanceDisposition::PayToBank(PayoutReason::EmployeeToResident),
            BalanceDisposition::StaysUsableInProvince,
            BalanceDisposition::KeptUsableAtOrigin,
            BalanceDisposition::NoPersonalAccount,
        ] {
            assert_eq!(balance_on_form(disposition, balance), Money::ZERO);
        }
    }

    #[test]
    fn every_review_but_a_form_without_money_moves_the_balance_out_of_the_account() {
        assert!(review_moves_balance(Review::DeliverForm(
            BalanceRoute::MovesWithForm
        )));
        assert!(review_moves_balance(Review::DeliverForm(
            BalanceRoute::ToBankAfterCredit
        )));
        assert!(review_moves_balance(Review::PayToBankOnly));
        assert!(!review_moves_balance(Review::DeliverForm(
            BalanceRoute::StaysPut
        )));
        assert!(!review_moves_balance(Review::Refused(
            RefusalReason::Arrears
        )));
    }

    #[test]
    fn resident_years_convert_only_when_joining_the_employee_scheme_where_the_policy_has_a_rate() {
        let converting = RegionPolicy {
            resident_to_employee_months_per_year: Some(3),
            ..RegionPolicy::default()
        };
        let plain = RegionPolicy::default();
        let resident = [period("202001", "202312", Scheme::Resident)];
        let credit = |scheme, policy| months_to_credit(&resident, &[], scheme, policy).months;
        assert_eq!(credit(Scheme::Employee, &converting), 12);
        assert_eq!(credit(Scheme::Employee, &plain), 48);
        assert_eq!(
            credit(Scheme::Resident, &converting),
            48,
            "staying resident: no conversion"
        );
        // Per period: employee months count as they are, resident ones convert.
        let mixed = [
            period("201801", "201912", Scheme::Employee),
            period("202001", "202312", Scheme::Resident),
        ];
        assert_eq!(
            months_to_credit(&mixed, &[], Scheme::Employee, &converting).months,
            24 + 12
        );
        // A month covered by both schemes is an employee month.
        let both = [
            period("202001", "202012", Scheme::Resident),
            period("202007", "202012", Scheme::Employee),
        ];
        assert_eq!(
            months_to_credit(&both, &[], Scheme::Employee, &converting).months,
            6 + 1
        );
    }

    #[test]
    fn the_relationship_ends_at_origin_once_completed_or_paid_to_the_bank() {
        let moved = Some(BalanceDisposition::MoveToAccount);
        let paid_out = Some(BalanceDisposition::PayToBank(PayoutReason::RegionPaysOut));
        assert!(relationship_ends_at_origin(OutState::Completed, moved));
        assert!(relationship_ends_at_origin(OutState::PaidToBank, paid_out));
        let asked = moved;
        for state in [
            OutState::InTransit {
                balance: BalanceRoute::MovesWithForm,
            },
            OutState::PayoutPending,
            OutState::Rejected(RefusalReason::Arrears),
            OutState::Returned(RefusalReason::Aborted),
        ] {
            assert!(!relationship_ends_at_origin(state, asked), "{state:?}");
        }
    }

    #[test]
    fn retirees_keep_their_relationship_a_retiree_payout_does_not_end_it() {
        let retiree = Some(BalanceDisposition::PayToBank(
            PayoutReason::RetireeRelocated,
        ));
        assert!(!relationship_ends_at_origin(OutState::PaidToBank, retiree));
    }

    #[test]
    fn not_connected_a_payout_keeps_the_years_where_they_are() {
        let not_connected = Some(BalanceDisposition::PayToBank(
            PayoutReason::DestinationNotConnected,
        ));
        assert!(!relationship_ends_at_origin(
            OutState::PaidToBank,
            not_connected
        ));
        // An abort that fell back to the bank moved no years either.
        let moved = Some(BalanceDisposition::MoveToAccount);
        assert!(!relationship_ends_at_origin(OutState::PaidToBank, moved));
    }

    #[test]
    fn an_abort_pays_the_bank_only_when_the_application_named_an_account() {
        assert_eq!(
            abort_fallback(BankAccountGiven::Given),
            AbortFallback::PayToBank
        );
        assert_eq!(
            abort_fallback(BankAccountGiven::NotGiven),
            AbortFallback::ReturnToAccount
        );
    }

    #[test]
    fn years_brought_in_count_as_deemed_years_added_to_those_already_held() {
        assert_eq!(deemed_months_after_credit(0, 60), 60);
        assert_eq!(deemed_months_after_credit(24, 60), 84);
        assert_eq!(deemed_months_after_credit(u32::MAX, 1), u32::MAX);
    }
}
