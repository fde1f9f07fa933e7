//! Which flow a transfer application fits: where the personal-account balance goes, what happens
//! to the contribution years, and whether the bureaus settle at once — or why there is no
//! transfer at all.
//!
//! [`classify`] is a pure function of facts the caller has already resolved (regions, both
//! regions' policies, the region directory's connectivity, the person's schemes and status). It
//! encodes DOMAIN.md's table "Where the balance goes"; the order in which the rules are tried is
//! documented on [`classify`] because several rows can match one application.
//!
//! [`FlowKind`] names the resulting flow as people and the contract name it.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::policy::{EmployeeToResidentBalance, RegionPolicy};
use crate::region::{Pooling, RegionCode};
use crate::review::refused::regions_differ;
use crate::scheme::Scheme;
use crate::transfer::RefusalReason;

/// Everything [`classify`] needs, resolved by the caller.
#[derive(Clone, Copy, Debug)]
pub struct ApplicationFacts<'a> {
    /// Where the person was insured (转出地).
    pub out_region: RegionCode,
    /// Where the person is insured now (转入地).
    pub in_region: RegionCode,
    /// The transfer-out region's policy.
    pub out_policy: &'a RegionPolicy,
    /// The transfer-in region's policy.
    pub in_policy: &'a RegionPolicy,
    /// Whether the transfer-in region has joined the national platform.
    pub destination: Connectivity,
    /// The scheme the person leaves.
    pub out_scheme: Scheme,
    /// The scheme the person joined at the transfer-in region.
    pub in_scheme: Scheme,
    /// Whether the person is working or retired.
    pub person: PersonStatus,
    /// Whether a retiree asked for the balance to be paid out.
    pub retiree_payout: RetireePayout,
    /// Whether the application names a bank account for a payout.
    pub bank_account: BankAccountGiven,
    /// How regions group into pooling regions (the region directory's), for rule 1.
    pub pooling: &'a Pooling,
}

/// Whether a region has joined the national platform (未接入 = not connected).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Connectivity {
    /// The region exchanges transfer messages over the platform.
    Connected,
    /// The region has not joined; nothing can be sent to it.
    NotConnected,
}

/// The person's working status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PersonStatus {
    /// Of working age or still contributing: the relationship may transfer.
    Working,
    /// Retired: the relationship does not transfer (异地安置退休人员备案 instead).
    Retired,
}

/// Whether a retiree asked for a payout of the balance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetireePayout {
    /// The retiree asked for the balance to be paid to a bank account.
    Requested,
    /// No payout was asked for.
    NotRequested,
}

/// The flag an application carries: `true` when the retiree asked for the payout.
impl From<bool> for RetireePayout {
    fn from(requested: bool) -> Self {
        if requested {
            Self::Requested
        } else {
            Self::NotRequested
        }
    }
}

/// Whether the application names a bank account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BankAccountGiven {
    /// A bank account was given, so a payout is possible.
    Given,
    /// No bank account was given.
    NotGiven,
}

impl BankAccountGiven {
    /// Whether an application names an account.
    pub fn of<T>(account: Option<&T>) -> Self {
        match account {
            Some(_) => Self::Given,
            None => Self::NotGiven,
        }
    }
}

/// How the two regions relate geographically.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Geography {
    /// Both regions are in one province (first two digits equal).
    IntraProvince,
    /// The regions are in different provinces.
    CrossProvince,
}

/// Whether the person changes scheme with the move.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemeChange {
    /// The same scheme on both sides.
    Same,
    /// From the employee scheme (with an account) to the resident scheme (without).
    EmployeeToResident,
    /// From the resident scheme (no account) to the employee scheme.
    ResidentToEmployee,
}

/// Why a balance is paid to the person's bank account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayoutReason {
    /// The transfer-in region has not joined the platform (划入本人银行账户).
    DestinationNotConnected,
    /// A retiree relocated to another province asked for it.
    RetireeRelocated,
    /// The transfer-out region pays out instead of transferring (做账户一次性支付).
    RegionPaysOut,
    /// The person moved to the resident scheme, which has no account, and the transfer-out
    /// region's policy pays such balances out.
    EmployeeToResident,
}

/// What happens to the personal-account balance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BalanceDisposition {
    /// Moved from the transfer-out account to the transfer-in account, through the bureaus.
    MoveToAccount,
    /// Paid to the person's own bank account, for the reason given.
    PayToBank(PayoutReason),
    /// Neither moved nor paid: the province shares one account, usable in all its cities.
    StaysUsableInProvince,
    /// Kept in the account at the transfer-out region, still usable there.
    KeptUsableAtOrigin,
    /// The person was in the resident scheme and has no account.
    NoPersonalAccount,
}

/// What happens to the contribution years.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum YearsDisposition {
    /// Credited month for month as deemed contribution years (视同缴费年限).
    Credit,
    /// Resident years converted to employee months at the transfer-in region's rate (see
    /// [`crate::month::convert_resident_months`]).
    ConvertResidentYears {
        /// Employee months credited per full resident year.
        employee_months_per_year: u8,
    },
    /// Not transferred: a payout-only flow (a relocated retiree keeps the relationship).
    NotTransferred,
}

/// Whether the bureaus finish together or exchange messages over days.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Settlement {
    /// 秒到账: the out account is cleared and the in account credited at once.
    Instant,
    /// The usual handshake: transfer-out within 10 working days, transfer-in within 5.
    Asynchronous,
}

/// The flow an application fits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TransferPlan {
    /// Within one province or across provinces.
    pub geography: Geography,
    /// Whether, and which way, the person changes scheme.
    pub scheme_change: SchemeChange,
    /// Where the personal-account balance goes.
    pub balance: BalanceDisposition,
    /// What happens to the contribution years.
    pub years: YearsDisposition,
    /// Whether the bureaus settle at once.
    pub settlement: Settlement,
}

/// The flow a transfer follows, as people and the contract name it (the contract's `FlowKind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowKind {
    /// Across provinces, both regions connected: the balance moves with the relationship.
    CrossProvince,
    /// Within one province, moved like a cross-province transfer.
    IntraProvince,
    /// Within a province that shares one account: the balance stays usable.
    IntraProvinceSharedAccount,
    /// From the employee to the resident scheme.
    EmployeeToResident,
    /// From the resident to the employee scheme.
    ResidentToEmployee,
    /// The destination is not connected: the balance is paid to the bank.
    NotConnectedPayout,
    /// A relocated retiree's balance is paid to the bank on request.
    RetireePayout,
    /// The transfer-out region pays out instead of transferring.
    RegionPayout,
}

impl FlowKind {
    /// Every flow, for exhaustive tests and tables.
    pub const ALL: [FlowKind; 8] = [
        Self::CrossProvince,
        Self::IntraProvince,
        Self::IntraProvinceSharedAccount,
        Self::EmployeeToResident,
        Self::ResidentToEmployee,
        Self::NotConnectedPayout,
        Self::RetireePayout,
        Self::RegionPayout,
    ];

    /// Why a balance of this flow is paid to the bank, when it is: a not-connected destination,
    /// a relocated retiree, a region that pays out, and employee → resident (where the
    /// transfer-out policy pays such balances out); `None` for every other flow.
    pub fn payout_reason(self) -> Option<PayoutReason> {
        match self {
            Self::NotConnectedPayout => Some(PayoutReason::DestinationNotConnected),
            Self::RetireePayout => Some(PayoutReason::RetireeRelocated),
            Self::RegionPayout => Some(PayoutReason::RegionPaysOut),
            Self::EmployeeToResident => Some(PayoutReason::EmployeeToResident),
            Self::CrossProvince
            | Self::IntraProvince
            | Self::IntraProvinceSharedAccount
            | Self::ResidentToEmployee => None,
        }
    }
}

/// Why an application is not a transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// Both regions are in one pooling region: a move between counties is not a transfer.
    #[error(
        "the transfer-out and transfer-in regions are in the same pooling region: a move within \
         a pooling region is not a transfer"
    )]
    SamePoolingRegion,
    /// A retired person does not transfer; they register as a relocated retiree.
    #[error(
        "a retired person does not transfer the relationship: register as a relocated retiree \
         (异地安置退休人员备案) instead"
    )]
    RetireeMustRegisterRelocation,
    /// The balance would be paid out, but no bank account was given.
    #[error("a bank account is required because the balance is paid out ({reason})")]
    BankAccountRequired {
        /// Why the balance would be paid out.
        reason: PayoutReason,
    },
}

/// The instant-mode rule (秒到账, Inner Mongolia's "免申请、智能办、秒到账"): the bureaus settle at
/// once only when both regions' policies say so. An application at the transfer-in bureau uses
/// it as is; [`classify`] adds that the destination is connected and nothing goes to a bank.
pub fn instant_mode(out_policy: &RegionPolicy, in_policy: &RegionPolicy) -> Settlement {
    if out_policy.instant_mode && in_policy.instant_mode {
        Settlement::Instant
    } else {
        Settlement::Asynchronous
    }
}

/// Classifies an application. The rules are tried in this order and the first that matches
/// decides:
///
/// 1. Both regions in one pooling region (as `facts.pooling` groups them) →
///    [`Refusal::SamePoolingRegion`].
/// 2. A retired person → the balance is paid to the bank ([`PayoutReason::RetireeRelocated`],
///    years [`YearsDisposition::NotTransferred`]) only when the move is cross-province, the
///    transfer-out policy has `retiree_payout_on_request`, the retiree asked for it **and** the
///    retiree has a personal account to pay out; otherwise
///    [`Refusal::RetireeMustRegisterRelocation`].
/// 3. The person leaves the resident scheme → [`BalanceDisposition::NoPersonalAccount`]; years
///    are converted when joining the employee scheme at a region with a conversion rate, and
///    credited otherwise. This comes before the payout rules below because there is nothing to
///    pay out: a resident must not be refused for want of a bank account.
/// 4. The destination is not connected → paid to the bank
///    ([`PayoutReason::DestinationNotConnected`]).
/// 5. The transfer-out region pays out instead of transferring → paid to the bank
///    ([`PayoutReason::RegionPaysOut`]).
/// 6. Employee → resident → per the transfer-out policy's `employee_to_resident_balance`: paid to
///    the bank ([`PayoutReason::EmployeeToResident`]) or [`BalanceDisposition::KeptUsableAtOrigin`].
/// 7. Intra-province where **both** policies have `shared_provincial_account` →
///    [`BalanceDisposition::StaysUsableInProvince`].
/// 8. Otherwise → [`BalanceDisposition::MoveToAccount`].
///
/// Outside rule 2 and rule 3's conversion, the years are credited as deemed years. Any payout
/// with [`BankAccountGiven::NotGiven`] is refused with [`Refusal::BankAccountRequired`].
/// Settlement is [`Settlement::Instant`] only when both policies have `instant_mode`, the
/// destination is connected and nothing is paid to a bank.
pub fn classify(facts: &ApplicationFacts) -> Result<TransferPlan, Refusal> {
    regions_differ(facts.pooling, facts.out_region, facts.in_region)
        .map_err(|_| Refusal::SamePoolingRegion)?;
    let geography = if facts.out_region.same_province(facts.in_region) {
        Geography::IntraProvince
    } else {
        Geography::CrossProvince
    };
    let scheme_change = scheme_change(facts.out_scheme, facts.in_scheme);
    let (balance, years) = dispose(facts, geography, scheme_change)?;
    if let BalanceDisposition::PayToBank(reason) = balance
        && facts.bank_account == BankAccountGiven::NotGiven
    {
        return Err(Refusal::BankAccountRequired { reason });
    }
    let both_instant = instant_mode(facts.out_policy, facts.in_policy) == Settlement::Instant;
    let settlement = if both_instant
        && facts.destination == Connectivity::Connected
        && !matches!(balance, BalanceDisposition::PayToBank(_))
    {
        Settlement::Instant
    } else {
        Settlement::Asynchronous
    };
    Ok(TransferPlan {
        geography,
        scheme_change,
        balance,
        years,
        settlement,
    })
}

/// Which way, if any, the person changes scheme.
pub fn scheme_change(out_scheme: Scheme, in_scheme: Scheme) -> SchemeChange {
    match (out_scheme, in_scheme) {
        (Scheme::Employee, Scheme::Resident) => SchemeChange::EmployeeToResident,
        (Scheme::Resident, Scheme::Employee) => SchemeChange::ResidentToEmployee,
        (Scheme::Employee, Scheme::Employee) | (Scheme::Resident, Scheme::Resident) => {
            SchemeChange::Same
        }
    }
}

/// Rules 2–8 of [`classify`]: the balance and the years.
fn dispose(
    facts: &ApplicationFacts,
    geography: Geography,
    scheme_change: SchemeChange,
) -> Result<(BalanceDisposition, YearsDisposition), Refusal> {
    use BalanceDisposition::{
        KeptUsableAtOrigin, MoveToAccount, NoPersonalAccount, PayToBank, StaysUsableInProvince,
    };
    let credit = YearsDisposition::Credit;
    if facts.person == PersonStatus::Retired {
        let payout_allowed = geography == Geography::CrossProvince
            && facts.out_policy.retiree_payout_on_request
            && facts.retiree_payout == RetireePayout::Requested
            && facts.out_scheme.has_personal_account();
        return if payout_allowed {
            Ok((
                PayToBank(PayoutReason::RetireeRelocated),
                YearsDisposition::NotTransferred,
            ))
        } else {
            Err(Refusal::RetireeMustRegisterRelocation)
        };
    }
    if !facts.out_scheme.has_personal_account() {
        let years = match (
            scheme_change,
            facts.in_policy.resident_to_employee_months_per_year,
        ) {
            // An unvalidated rate outside 1..=12 is ignored rather than allowed to erase years.
            (SchemeChange::ResidentToEmployee, Some(employee_months_per_year))
                if (1..=12).contains(&employee_months_per_year) =>
            {
                YearsDisposition::ConvertResidentYears {
                    employee_months_per_year,
                }
            }
            _ => credit,
        };
        return Ok((NoPersonalAccount, years));
    }
    if facts.destination == Connectivity::NotConnected {
        return Ok((PayToBank(PayoutReason::DestinationNotConnected), credit));
    }
    if facts.out_policy.pays_out_instead_of_transfer {
        return Ok((PayToBank(PayoutReason::RegionPaysOut), credit));
    }
    if scheme_change == SchemeChange::EmployeeToResident {
        let balance = match facts.out_policy.employee_to_resident_balance {
            EmployeeToResidentBalance::PayToBank => PayToBank(PayoutReason::EmployeeToResident),
            EmployeeToResidentBalance::KeepUsable => KeptUsableAtOrigin,
        };
        return Ok((balance, credit));
    }
    let shared =
        facts.out_policy.shared_provincial_account && facts.in_policy.shared_provincial_account;
    if geography == Geography::IntraProvince && shared {
        return Ok((StaysUsableInProvince, credit));
    }
    Ok((MoveToAccount, credit))
}

impl TransferPlan {
    /// Whether money leaves the transfer-out bureau for the transfer-in bureau (only
    /// [`BalanceDisposition::MoveToAccount`]).
    pub fn moves_money_between_bureaus(&self) -> bool {
        self.balance == BalanceDisposition::MoveToAccount
    }

    /// Whether the balance is paid to the person's bank account.
    pub fn pays_to_bank(&self) -> bool {
        self.payout_reason().is_some()
    }

    /// Why the balance is paid to a bank account, if it is.
    pub fn payout_reason(&self) -> Option<PayoutReason> {
        match self.balance {
            BalanceDisposition::PayToBank(reason) => Some(reason),
            _ => None,
        }
    }

    /// The flow this plan follows. The first that fits: a payout for a not-connected
    /// destination, a relocated retiree or a region that pays out names its payout; then a
    /// scheme change names its direction; then a shared provincial account; then the geography.
    pub fn flow_kind(&self) -> FlowKind {
        match (self.balance, self.scheme_change, self.geography) {
            (BalanceDisposition::PayToBank(PayoutReason::DestinationNotConnected), _, _) => {
                FlowKind::NotConnectedPayout
            }
            (BalanceDisposition::PayToBank(PayoutReason::RetireeRelocated), _, _) => {
                FlowKind::RetireePayout
            }
            (BalanceDisposition::PayToBank(PayoutReason::RegionPaysOut), _, _) => {
                FlowKind::RegionPayout
            }
            (_, SchemeChange::EmployeeToResident, _) => FlowKind::EmployeeToResident,
            (_, SchemeChange::ResidentToEmployee, _) => FlowKind::ResidentToEmployee,
            (BalanceDisposition::StaysUsableInProvince, _, _) => {
                FlowKind::IntraProvinceSharedAccount
            }
            (_, _, Geography::IntraProvince) => FlowKind::IntraProvince,
            (_, _, Geography::CrossProvince) => FlowKind::CrossProvince,
        }
    }
}

impl PayoutReason {
    /// A stable code for storage and the wire, e.g. `DESTINATION_NOT_CONNECTED`.
    pub fn code(self) -> &'static str {
        match self {
            PayoutReason::DestinationNotConnected => "DESTINATION_NOT_CONNECTED",
            PayoutReason::RetireeRelocated => "RETIREE_RELOCATED",
            PayoutReason::RegionPaysOut => "REGION_PAYS_OUT",
            PayoutReason::EmployeeToResident => "EMPLOYEE_TO_RESIDENT",
        }
    }
}

impl fmt::Display for PayoutReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PayoutReason::DestinationNotConnected => {
                "the transfer-in region is not connected to the national platform"
            }
            PayoutReason::RetireeRelocated => {
                "a retiree relocated to another province asked for it"
            }
            PayoutReason::RegionPaysOut => {
                "the transfer-out region pays out instead of transferring"
            }
            PayoutReason::EmployeeToResident => {
                "the resident scheme has no personal account and the transfer-out region pays out"
            }
        })
    }
}

impl Refusal {
    /// The refusal reason a bureau answers with.
    pub fn refusal_reason(&self) -> RefusalReason {
        match self {
            Refusal::SamePoolingRegion => RefusalReason::SamePoolingRegion,
            Refusal::RetireeMustRegisterRelocation => RefusalReason::RetireeMustRegisterRelocation,
            Refusal::BankAccountRequired { .. } => RefusalReason::BankAccountRequired,
        }
    }

    /// A stable code for storage and the wire, e.g. `SAME_POOLING_REGION`.
    pub fn reason_code(&self) -> &'static str {
        match self {
            Refusal::SamePoolingRegion => "SAME_POOLING_REGION",
            Refusal::RetireeMustRegisterRelocation => "RETIREE_MUST_REGISTER_RELOCATION",
            Refusal::BankAccountRequired { .. } => "BANK_ACCOUNT_REQUIRED",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::CITY_LEVEL;
    use proptest::prelude::*;

    const HOHHOT: &str = "150100";
    const HOHHOT_COUNTY: &str = "150102";
    const ULANQAB: &str = "150900";
    const LHASA: &str = "540100";
    const GUANGZHOU: &str = "440100";
    const SHENZHEN: &str = "440300";
    const ZHENGZHOU: &str = "410100";

    fn region(text: &str) -> RegionCode {
        RegionCode::parse(text).unwrap()
    }

    /// A working employee moving between two connected regions with default policies.
    fn facts<'a>(
        out_region: &str,
        in_region: &str,
        out_policy: &'a RegionPolicy,
        in_policy: &'a RegionPolicy,
    ) -> ApplicationFacts<'a> {
        ApplicationFacts {
            out_region: region(out_region),
            in_region: region(in_region),
            out_policy,
            in_policy,
            destination: Connectivity::Connected,
            out_scheme: Scheme::Employee,
            in_scheme: Scheme::Employee,
            person: PersonStatus::Working,
            retiree_payout: RetireePayout::NotRequested,
            bank_account: BankAccountGiven::NotGiven,
            pooling: &CITY_LEVEL,
        }
    }

    fn shared() -> RegionPolicy {
        RegionPolicy {
            shared_provincial_account: true,
            ..RegionPolicy::default()
        }
    }

    // Table "Where the balance goes", one test per row.

    #[test]
    fn cross_province_between_connected_regions_moves_the_balance_with_the_relationship() {
        let policy = RegionPolicy::default();
        let plan = classify(&facts(HOHHOT, LHASA, &policy, &policy)).unwrap();
        assert_eq!(
            plan,
            TransferPlan {
                geography: Geography::CrossProvince,
                scheme_change: SchemeChange::Same,
                balance: BalanceDisposition::MoveToAccount,
                years: YearsDisposition::Credit,
                settlement: Settlement::Asynchronous,
            }
        );
        assert!(plan.moves_money_between_bureaus());
        assert!(!plan.pays_to_bank());
    }

    #[test]
    fn a_destination_not_connected_gets_the_balance_paid_to_the_bank_account() {
        let policy = RegionPolicy::default();
        let mut facts = facts(HOHHOT, ZHENGZHOU, &policy, &policy);
        facts.destination = Connectivity::NotConnected;
        facts.bank_account = BankAccountGiven::Given;
        let plan = classify(&facts).unwrap();
        assert_eq!(
            plan.balance,
            BalanceDisposition::PayToBank(PayoutReason::DestinationNotConnected)
        );
        assert_eq!(plan.years, YearsDisposition::Credit);
        assert!(plan.pays_to_bank());
        assert!(!plan.moves_money_between_bureaus());
    }

    #[test]
    fn intra_province_in_a_shared_account_province_leaves_the_balance_usable_in_the_province() {
        let policy = shared();
        let plan = classify(&facts(GUANGZHOU, SHENZHEN, &policy, &policy)).unwrap();
        assert_eq!(plan.geography, Geography::IntraProvince);
        assert_eq!(plan.balance, BalanceDisposition::StaysUsableInProvince);
        assert_eq!(plan.years, YearsDisposition::Credit);
        assert!(!plan.moves_money_between_bureaus());
    }

    #[test]
    fn intra_province_in_other_provinces_moves_the_balance_like_a_cross_province_transfer() {
        let policy = RegionPolicy::default();
        let plan = classify(&facts(HOHHOT, ULANQAB, &policy, &policy)).unwrap();
        assert_eq!(plan.geography, Geography::IntraProvince);
        assert_eq!(plan.balance, BalanceDisposition::MoveToAccount);
    }

    #[test]
    fn a_retiree_relocated_to_another_province_is_paid_out_on_request_where_policy_allows() {
        let out = RegionPolicy {
            retiree_payout_on_request: true,
            ..RegionPolicy::default()
        };
        let in_policy = RegionPolicy::default();
        let mut facts = facts(HOHHOT, LHASA, &out, &in_policy);
        facts.person = PersonStatus::Retired;
        facts.retiree_payout = RetireePayout::Requested;
        facts.bank_account = BankAccountGiven::Given;
        let plan = classify(&facts).unwrap();
        assert_eq!(
            plan.balance,
            BalanceDisposition::PayToBank(PayoutReason::RetireeRelocated)
        );
        assert_eq!(plan.years, YearsDisposition::NotTransferred);
        assert_eq!(plan.settlement, Settlement::Asynchronous);
    }

    #[test]
    fn a_retiree_elsewhere_keeps_the_relationship_and_registers_the_relocation() {
        let allowing = RegionPolicy {
            retiree_payout_on_request: true,
            ..RegionPolicy::default()
        };
        let default = RegionPolicy::default();
        let retiree = |out: &str, into: &str, policy, payout, scheme| {
            let mut facts = facts(out, into, policy, &default);
            facts.person = PersonStatus::Retired;
            facts.retiree_payout = payout;
            facts.out_scheme = scheme;
            facts.in_scheme = scheme;
            facts.bank_account = BankAccountGiven::Given;
            classify(&facts)
        };
        let refused = Err(Refusal::RetireeMustRegisterRelocation);
        // The region's policy does not pay retirees out.
        assert_eq!(
            retiree(
                HOHHOT,
                LHASA,
                &default,
                RetireePayout::Requested,
                Scheme::Employee
            ),
            refused
        );
        // The retiree did not ask.
        assert_eq!(
            retiree(
                HOHHOT,
                LHASA,
                &allowing,
                RetireePayout::NotRequested,
                Scheme::Employee
            ),
            refused
        );
        // Within the province the payout rule does not apply.
        assert_eq!(
            retiree(
                HOHHOT,
                ULANQAB,
                &allowing,
                RetireePayout::Requested,
                Scheme::Employee
            ),
            refused
        );
        // A retired resident has no account to pay out.
        assert_eq!(
            retiree(
                HOHHOT,
                LHASA,
                &allowing,
                RetireePayout::Requested,
                Scheme::Resident
            ),
            refused
        );
    }

    #[test]
    fn a_region_that_pays_out_instead_of_transferring_pays_the_balance_to_the_bank() {
        let out = RegionPolicy {
            pays_out_instead_of_transfer: true,
            ..RegionPolicy::default()
        };
        let in_policy = RegionPolicy::default();
        let mut facts = facts(HOHHOT, LHASA, &out, &in_policy);
        facts.bank_account = BankAccountGiven::Given;
        let plan = classify(&facts).unwrap();
        assert_eq!(
            plan.balance,
            BalanceDisposition::PayToBank(PayoutReason::RegionPaysOut)
        );
        assert_eq!(plan.years, YearsDisposition::Credit);
    }

    #[test]
    fn employee_to_resident_pays_the_balance_to_the_bank_where_policy_says_so() {
        let policy = RegionPolicy::default();
        let mut facts = facts(HOHHOT, LHASA, &policy, &policy);
        facts.in_scheme = Scheme::Resident;
        facts.bank_account = BankAccountGiven::Given;
        let plan = classify(&facts).unwrap();
        assert_eq!(plan.scheme_change, SchemeChange::EmployeeToResident);
        assert_eq!(
            plan.balance,
            BalanceDisposition::PayToBank(PayoutReason::EmployeeToResident)
        );
        assert_eq!(plan.years, YearsDisposition::Credit);
    }

    #[test]
    fn employee_to_resident_keeps_the_balance_usable_at_origin_where_policy_says_so() {
        let out = RegionPolicy {
            employee_to_resident_balance: EmployeeToResidentBalance::KeepUsable,
            ..RegionPolicy::default()
        };
        let in_policy = RegionPolicy::default();
        let mut facts = facts(HOHHOT, LHASA, &out, &in_policy);
        facts.in_scheme = Scheme::Resident;
        let plan = classify(&facts).unwrap();
        assert_eq!(plan.balance, BalanceDisposition::KeptUsableAtOrigin);
        assert!(!plan.moves_money_between_bureaus() && !plan.pays_to_bank());
    }

    #[test]
    fn resident_to_employee_converts_years_at_the_destinations_rate_with_no_account_to_move() {
        let out = RegionPolicy::default();
        let in_policy = RegionPolicy {
            resident_to_employee_months_per_year: Some(3),
            ..RegionPolicy::default()
        };
        let mut facts = facts(LHASA, ULANQAB, &out, &in_policy);
        facts.out_scheme = Scheme::Resident;
        let plan = classify(&facts).unwrap();
        assert_eq!(plan.scheme_change, SchemeChange::ResidentToEmployee);
        assert_eq!(plan.balance, BalanceDisposition::NoPersonalAccount);
        assert_eq!(
            plan.years,
            YearsDisposition::ConvertResidentYears {
                employee_months_per_year: 3
            }
        );
    }

    #[test]
    fn resident_to_employee_credits_the_years_where_the_destination_has_no_conversion() {
        let policy = RegionPolicy::default();
        let mut facts = facts(LHASA, ULANQAB, &policy, &policy);
        facts.out_scheme = Scheme::Resident;
        let plan = classify(&facts).unwrap();
        assert_eq!(plan.balance, BalanceDisposition::NoPersonalAccount);
        assert_eq!(plan.years, YearsDisposition::Credit);
    }

    // Refusals and precedence.

    #[test]
    fn a_move_between_counties_of_one_pooling_region_is_not_a_transfer() {
        let policy = RegionPolicy::default();
        let refusal = classify(&facts(HOHHOT_COUNTY, HOHHOT, &policy, &policy)).unwrap_err();
        assert_eq!(refusal, Refusal::SamePoolingRegion);
        assert_eq!(refusal.reason_code(), "SAME_POOLING_REGION");
        assert!(refusal.to_string().contains("same pooling region"));
    }

    /// DOMAIN.md: a pooling region is a city or a province. Where the province pools at
    /// province level, a move between two of its cities is not a transfer either.
    #[test]
    fn a_move_within_a_province_pooled_at_province_level_is_not_a_transfer() {
        let policy = RegionPolicy::default();
        let inner_mongolia = Pooling::city_level().with_province_level(region(HOHHOT).province());
        let mut facts = facts(HOHHOT_COUNTY, ULANQAB, &policy, &policy);
        assert!(classify(&facts).is_ok(), "two pooling regions by city");
        facts.pooling = &inner_mongolia;
        assert_eq!(classify(&facts), Err(Refusal::SamePoolingRegion));
    }

    #[test]
    fn the_same_pooling_region_is_refused_before_anything_else() {
        let policy = RegionPolicy::default();
        let mut facts = facts(HOHHOT, HOHHOT, &policy, &policy);
        facts.person = PersonStatus::Retired;
        facts.destination = Connectivity::NotConnected;
        assert_eq!(classify(&facts), Err(Refusal::SamePoolingRegion));
    }

    #[test]
    fn a_payout_without_a_bank_account_is_refused_naming_the_reason() {
        let policy = RegionPolicy::default();
        let mut facts = facts(HOHHOT, ZHENGZHOU, &policy, &policy);
        facts.destination = Connectivity::NotConnected;
        let refusal = classify(&facts).unwrap_err();
        assert_eq!(
            refusal,
            Refusal::BankAccountRequired {
                reason: PayoutReason::DestinationNotConnected
            }
        );
        assert_eq!(refusal.reason_code(), "BANK_ACCOUNT_REQUIRED");
        assert!(refusal.to_string().contains("not connected"));
    }

    #[test]
    fn a_resident_needs_no_bank_account_even_when_the_destination_is_not_connected() {
        let policy = RegionPolicy {
            pays_out_instead_of_transfer: true,
            ..RegionPolicy::default()
        };
        let mut facts = facts(LHASA, ZHENGZHOU, &policy, &policy);
        facts.out_scheme = Scheme::Resident;
        facts.in_scheme = Scheme::Resident;
        facts.destination = Connectivity::NotConnected;
        let plan = classify(&facts).unwrap();
        assert_eq!(plan.balance, BalanceDisposition::NoPersonalAccount);
        assert_eq!(plan.settlement, Settlement::Asynchronous);
    }

    #[test]
    fn a_destination_not_connected_takes_precedence_over_a_shared_provincial_account() {
        let policy = shared();
        let mut facts = facts(GUANGZHOU, SHENZHEN, &policy, &policy);
        facts.destination = Connectivity::NotConnected;
        facts.bank_account = BankAccountGiven::Given;
        let plan = classify(&facts).unwrap();
        assert_eq!(
            plan.payout_reason(),
            Some(PayoutReason::DestinationNotConnected)
        );
    }

    #[test]
    fn a_shared_account_needs_both_regions_to_share_it() {
        let sharing = shared();
        let not_sharing = RegionPolicy::default();
        let plan = classify(&facts(GUANGZHOU, SHENZHEN, &sharing, &not_sharing)).unwrap();
        assert_eq!(plan.balance, BalanceDisposition::MoveToAccount);
    }

    #[test]
    fn a_shared_account_does_not_apply_across_provinces() {
        let sharing = shared();
        let plan = classify(&facts(GUANGZHOU, LHASA, &sharing, &sharing)).unwrap();
        assert_eq!(plan.balance, BalanceDisposition::MoveToAccount);
    }

    #[test]
    fn settlement_is_instant_only_when_both_regions_are_instant_and_connected() {
        let instant = RegionPolicy {
            instant_mode: true,
            ..RegionPolicy::default()
        };
        let usual = RegionPolicy::default();
        let settle = |out, into| {
            classify(&facts(HOHHOT, LHASA, out, into))
                .unwrap()
                .settlement
        };
        assert_eq!(settle(&instant, &instant), Settlement::Instant);
        assert_eq!(settle(&instant, &usual), Settlement::Asynchronous);
        assert_eq!(settle(&usual, &instant), Settlement::Asynchronous);
    }

    #[test]
    fn a_payout_is_never_instant() {
        let instant = RegionPolicy {
            instant_mode: true,
            pays_out_instead_of_transfer: true,
            ..RegionPolicy::default()
        };
        let mut facts = facts(HOHHOT, LHASA, &instant, &instant);
        facts.bank_account = BankAccountGiven::Given;
        assert_eq!(
            classify(&facts).unwrap().settlement,
            Settlement::Asynchronous
        );
    }

    #[test]
    fn refusals_and_payout_reasons_have_stable_codes() {
        assert_eq!(
            Refusal::RetireeMustRegisterRelocation.reason_code(),
            "RETIREE_MUST_REGISTER_RELOCATION"
        );
        assert_eq!(PayoutReason::RegionPaysOut.code(), "REGION_PAYS_OUT");
        assert_eq!(PayoutReason::RetireeRelocated.code(), "RETIREE_RELOCATED");
        assert_eq!(
            PayoutReason::EmployeeToResident.code(),
            "EMPLOYEE_TO_RESIDENT"
        );
    }

    #[test]
    fn the_flow_names_a_payout_before_a_scheme_change_and_a_shared_account_before_geography() {
        use BalanceDisposition as B;
        use Geography::{CrossProvince as Cross, IntraProvince as Intra};
        use PayoutReason as P;
        use SchemeChange::{EmployeeToResident as ToResident, ResidentToEmployee as ToEmployee};
        let same = SchemeChange::Same;
        let cases = [
            (
                B::PayToBank(P::DestinationNotConnected),
                ToResident,
                Intra,
                FlowKind::NotConnectedPayout,
            ),
            (
                B::PayToBank(P::RetireeRelocated),
                same,
                Cross,
                FlowKind::RetireePayout,
            ),
            (
                B::PayToBank(P::RegionPaysOut),
                ToResident,
                Cross,
                FlowKind::RegionPayout,
            ),
            (
                B::PayToBank(P::EmployeeToResident),
                ToResident,
                Cross,
                FlowKind::EmployeeToResident,
            ),
            (
                B::KeptUsableAtOrigin,
                ToResident,
                Intra,
                FlowKind::EmployeeToResident,
            ),
            (
                B::NoPersonalAccount,
                ToEmployee,
                Intra,
                FlowKind::ResidentToEmployee,
            ),
            (
                B::StaysUsableInProvince,
                same,
                Intra,
                FlowKind::IntraProvinceSharedAccount,
            ),
            (B::MoveToAccount, same, Intra, FlowKind::IntraProvince),
            (B::MoveToAccount, same, Cross, FlowKind::CrossProvince),
        ];
        for (balance, scheme_change, geography, flow) in cases {
            let plan = TransferPlan {
                geography,
                scheme_change,
                balance,
                years: YearsDisposition::Credit,
                settlement: Settlement::Asynchronous,
            };
            assert_eq!(plan.flow_kind(), flow, "{plan:?}");
        }
    }

    #[test]
    fn only_payout_flows_name_a_payout_reason() {
        let paying: Vec<FlowKind> = FlowKind::ALL
            .into_iter()
            .filter(|flow| flow.payout_reason().is_some())
            .collect();
        assert_eq!(
            paying,
            vec![
                FlowKind::EmployeeToResident,
                FlowKind::NotConnectedPayout,
                FlowKind::RetireePayout,
                FlowKind::RegionPayout
            ]
        );
        assert_eq!(
            FlowKind::RegionPayout.payout_reason(),
            Some(PayoutReason::RegionPaysOut)
        );
    }

    #[test]
    fn each_refusal_answers_with_the_reason_of_the_same_code() {
        let refusals = [
            Refusal::SamePoolingRegion,
            Refusal::RetireeMustRegisterRelocation,
            Refusal::BankAccountRequired {
                reason: PayoutReason::RegionPaysOut,
            },
        ];
        for refusal in refusals {
            assert_eq!(refusal.refusal_reason().code(), refusal.reason_code());
        }
    }

    fn pick<T>(yes: bool, a: T, b: T) -> T {
        if yes { a } else { b }
    }

    fn any_policy() -> impl Strategy<Value = RegionPolicy> {
        (
            any::<[bool; 5]>(),
            prop::option::of(any::<u8>()),
            any::<bool>(),
        )
            .prop_map(|(flags, conversion, keep)| RegionPolicy {
                shared_provincial_account: flags[0],
                pays_out_instead_of_transfer: flags[1],
                retiree_payout_on_request: flags[2],
                instant_mode: flags[3],
                back_pay_window_months: if flags[4] { 3 } else { 0 },
                resident_to_employee_months_per_year: conversion,
                employee_to_resident_balance: if keep {
                    EmployeeToResidentBalance::KeepUsable
                } else {
                    EmployeeToResidentBalance::PayToBank
                },
                ..RegionPolicy::default()
            })
    }

    proptest! {
        #[test]
        fn every_application_gets_a_consistent_plan_or_a_refusal(
            out_policy in any_policy(),
            in_policy in any_policy(),
            regions in (0usize..7, 0usize..7),
            flags in any::<[bool; 6]>(),
        ) {
            let codes = [HOHHOT, HOHHOT_COUNTY, ULANQAB, LHASA, GUANGZHOU, SHENZHEN, ZHENGZHOU];
            let facts = ApplicationFacts {
                out_region: region(codes[regions.0]),
                in_region: region(codes[regions.1]),
                out_policy: &out_policy,
                in_policy: &in_policy,
                destination: pick(flags[0], Connectivity::Connected, Connectivity::NotConnected),
                out_scheme: pick(flags[1], Scheme::Employee, Scheme::Resident),
                in_scheme: pick(flags[2], Scheme::Employee, Scheme::Resident),
                person: pick(flags[3], PersonStatus::Working, PersonStatus::Retired),
                retiree_payout: pick(flags[4], RetireePayout::Requested, RetireePayout::NotRequested),
                bank_account: pick(flags[5], BankAccountGiven::Given, BankAccountGiven::NotGiven),
                pooling: &CITY_LEVEL,
            };
            match classify(&facts) {
                Ok(plan) => {
                    prop_assert!(!CITY_LEVEL.same_pooling_region(facts.out_region, facts.in_region));
                    if plan.pays_to_bank() {
                        prop_assert_eq!(plan.flow_kind().payout_reason(), plan.payout_reason());
                    }
                    if plan.pays_to_bank() {
                        prop_assert_eq!(facts.bank_account, BankAccountGiven::Given);
                        prop_assert_eq!(plan.settlement, Settlement::Asynchronous);
                        prop_assert!(facts.out_scheme.has_personal_account());
                    }
                    if !facts.out_scheme.has_personal_account() {
                        prop_assert_eq!(plan.balance, BalanceDisposition::NoPersonalAccount);
                    }
                    if plan.moves_money_between_bureaus() {
                        prop_assert_eq!(facts.destination, Connectivity::Connected);
                        prop_assert_eq!(facts.in_scheme, Scheme::Employee);
                    }
                    if plan.settlement == Settlement::Instant {
                        prop_assert_eq!(facts.destination, Connectivity::Connected);
                    }
                    prop_assert_eq!(
                        plan.years == YearsDisposition::NotTransferred,
                        facts.person == PersonStatus::Retired
                    );
                }
                Err(Refusal::SamePoolingRegion) => {
                    prop_assert!(CITY_LEVEL.same_pooling_region(facts.out_region, facts.in_region));
                }
                Err(Refusal::RetireeMustRegisterRelocation) => {
                    prop_assert_eq!(facts.person, PersonStatus::Retired);
                }
                Err(Refusal::BankAccountRequired { .. }) => {
                    prop_assert_eq!(facts.bank_account, BankAccountGiven::NotGiven);
                }
            }
        }
    }

    #[test]
    fn both_regions_must_be_in_instant_mode_to_settle_at_once() {
        let instant = RegionPolicy {
            instant_mode: true,
            ..RegionPolicy::default()
        };
        let usual = RegionPolicy::default();
        assert_eq!(instant_mode(&instant, &instant), Settlement::Instant);
        assert_eq!(instant_mode(&instant, &usual), Settlement::Asynchronous);
        assert_eq!(instant_mode(&usual, &instant), Settlement::Asynchronous);
    }
}
