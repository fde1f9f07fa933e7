//! What moves and what is credited (DOMAIN.md, "The transfer" steps 3 and 4 and "Where the
//! balance goes"): the months on a person's record, the balance the information form carries,
//! the months credited at the transfer-in region (resident years converted where its policy says
//! so), when the relationship ends at the transfer-out region, and where a balance in transit goes
//! when a transfer is aborted.

use crate::classify::{BalanceDisposition, BankAccountGiven};
use crate::money::Money;
use crate::month::{self, ContributionPeriod};
use crate::policy::RegionPolicy;
use crate::scheme::Scheme;
use crate::transfer::out_side::{AbortFallback, BalanceRoute, OutState, Review};

/// Months on a person's record: the months of the contribution periods plus the deemed months
/// (视同缴费年限) brought in by earlier transfers. Saturates at `u32::MAX`.
pub fn months_on_record(periods: &[ContributionPeriod], deemed_months: u32) -> u32 {
    month::total_months(periods).saturating_add(deemed_months)
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
/// review except one whose form goes with no money ([`BalanceRoute::StaysPut`]) and a refusal.
pub fn review_moves_balance(review: Review) -> bool {
    match review {
        Review::DeliverForm(BalanceRoute::MovesWithForm | BalanceRoute::ToBankAfterCredit)
        | Review::PayToBankOnly => true,
        Review::DeliverForm(BalanceRoute::StaysPut) | Review::Refused(_) => false,
    }
}

/// Months credited at the transfer-in bureau for `months` on the form: converted at the
/// transfer-in policy's `resident_to_employee_months_per_year` when the form's scheme is the
/// resident scheme and the policy has a rate (see [`month::convert_resident_months`]); month for
/// month otherwise.
pub fn credited_months(form_scheme: Option<Scheme>, months: u32, in_policy: &RegionPolicy) -> u32 {
    match (form_scheme, in_policy.resident_to_employee_months_per_year) {
        (Some(Scheme::Resident), Some(rate)) => month::convert_resident_months(months, rate),
        _ => months,
    }
}

/// The deemed months (视同缴费年限) on a person's record at the transfer-in region after a credit:
/// the years brought in from another region count as deemed years there, added to any the
/// person already had (saturating: a record never wraps around).
pub fn deemed_months_after_credit(deemed_months: u32, credited_months: u32) -> u32 {
    deemed_months.saturating_add(credited_months)
}

/// Whether the relationship ends at the transfer-out region in this state: once the transfer
/// completed or the balance was paid to the bank, the person's record there is terminated
/// (终止参保).
pub fn relationship_ends_at_origin(state: OutState) -> bool {
    matches!(state, OutState::Completed | OutState::PaidToBank)
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
    use crate::classify::PayoutReason;
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

    #[test]
    fn months_on_record_count_the_periods_and_the_deemed_months() {
        let periods = [
            period("202001", "202012", Scheme::Employee),
            period("202201", "202206", Scheme::Employee),
        ];
        assert_eq!(months_on_record(&periods, 0), 18);
        assert_eq!(months_on_record(&periods, 30), 48);
        assert_eq!(months_on_record(&[], 7), 7);
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
    fn resident_months_are_converted_where_the_transfer_in_policy_has_a_rate() {
        let converting = RegionPolicy {
            resident_to_employee_months_per_year: Some(3),
            ..RegionPolicy::default()
        };
        let plain = RegionPolicy::default();
        assert_eq!(credited_months(Some(Scheme::Resident), 48, &converting), 12);
        assert_eq!(credited_months(Some(Scheme::Resident), 48, &plain), 48);
        assert_eq!(credited_months(Some(Scheme::Employee), 48, &converting), 48);
        assert_eq!(credited_months(None, 48, &converting), 48);
    }

    #[test]
    fn the_relationship_ends_at_origin_once_completed_or_paid_to_the_bank() {
        assert!(relationship_ends_at_origin(OutState::Completed));
        assert!(relationship_ends_at_origin(OutState::PaidToBank));
        for state in [
            OutState::InTransit {
                balance: BalanceRoute::MovesWithForm,
            },
            OutState::PayoutPending,
            OutState::Rejected(RefusalReason::Arrears),
            OutState::Returned(RefusalReason::Aborted),
        ] {
            assert!(!relationship_ends_at_origin(state), "{state:?}");
        }
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
