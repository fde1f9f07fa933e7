//! 审核: every eligibility and refusal rule of a transfer, written once (DOMAIN.md, "The
//! transfer", preconditions 1 and 4, and the rule that a move within one pooling region is not a
//! transfer).
//!
//! The transfer-out bureau checks that the person has stopped contributing there (中止参保) and
//! owes nothing, that nobody is enrolled twice (one open transfer per person), and where the
//! balance goes ([`classify`]); the transfer-in bureau checks that the person is enrolled normally
//! there (正常参保), both when a person applies there and when a form arrives. The driver resolves
//! the facts (the person's record, the open transfer, the region directory) from its store and
//! asks these functions; nothing here reads a store.
//!
//! The pooling-region rule and [`Refused`] live in the leaf module `review/refused.rs` (and are
//! re-exported here) so that [`classify`] can use the rule without importing this file, which
//! imports it.

use crate::classify::{
    self, ApplicationFacts, BalanceDisposition, BankAccountGiven, Connectivity, PayoutReason,
    PersonStatus, RetireePayout, TransferPlan,
};
use crate::money::Money;
use crate::policy::RegionPolicy;
use crate::region::{Pooling, RegionCode};
use crate::scheme::{EnrolmentState, Scheme};
use crate::transfer::in_side::FormCheck;
use crate::transfer::out_side::{BalanceRoute, Review};
use crate::transfer::{Initiator, RefusalReason};

pub(crate) mod refused;
pub mod timing;

pub use refused::{Refused, regions_differ};
pub use timing::{defer_to_review_day, review_day};

/// What a bureau's record says about a person (resolved by the driver from its store). It holds
/// no personal data, so its `Debug` output is safe to log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InsuredPerson {
    /// Where the person is enrolled (`insu_admdvs`: a county or city code).
    pub region: RegionCode,
    /// The person's scheme at this bureau.
    pub scheme: Scheme,
    /// The person's enrolment state at this bureau (`psn_insu_stas`).
    pub enrolment: EnrolmentState,
    /// Working or retired.
    pub status: PersonStatus,
    /// Contributions the person owes here (欠费).
    pub arrears: Money,
}

/// Whether the bureau at the other end of the platform (the peer) hosts a region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hosting {
    /// The peer bureau hosts the region: messages about it go there.
    ByPeer,
    /// The peer does not host it (or the directory does not know the region).
    NotByPeer,
}

/// A request to transfer out, from either initiator.
#[derive(Clone, Copy, Debug)]
pub struct TransferOutRequest {
    /// Where the person leaves (转出地).
    pub out_region: RegionCode,
    /// Where the person goes (转入地).
    pub in_region: RegionCode,
    /// The scheme at the destination; `None`: the same as the person's scheme here.
    pub in_scheme: Option<Scheme>,
    /// Who applied where.
    pub initiator: Initiator,
    /// Whether a retiree asked for a payout.
    pub retiree_payout: RetireePayout,
    /// Whether the application names a bank account.
    pub bank_account: BankAccountGiven,
    /// Whether the person asked for the balance to be paid out because the destination is not
    /// connected to the platform (可申请); without it such an application waits.
    pub payout_requested: bool,
}

/// What the transfer-out bureau knows of both regions from its directory.
#[derive(Clone, Copy, Debug)]
pub struct RegionFacts<'a> {
    /// The transfer-out region's policy.
    pub out_policy: &'a RegionPolicy,
    /// The transfer-in region's policy.
    pub in_policy: &'a RegionPolicy,
    /// Whether the destination joined the platform; `NotConnected` when the directory lacks it.
    pub destination: Connectivity,
    /// Whether the peer bureau hosts the destination.
    pub destination_hosting: Hosting,
    /// How regions group into pooling regions (the directory's).
    pub pooling: &'a Pooling,
}

/// An accepted transfer-out review.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The flow the transfer follows.
    pub plan: TransferPlan,
    /// How the transfer opens; never [`Review::Refused`].
    pub review: Review,
}

/// The transfer-out review (审核). The rules are tried in this order and the first that fails
/// refuses:
///
/// 1. [`regions_differ`];
/// 2. the person is unknown here, or enrolled outside `out_region`'s pooling region →
///    [`RefusalReason::UnknownPerson`];
/// 3. the person has not stopped contributing (enrolment not `Suspended`) →
///    [`RefusalReason::NotStoppedAtTransferOut`], unless retired (the retiree rules of
///    [`classify::classify`] decide for a retiree, whose relationship stays where it is);
/// 4. the person owes contributions → [`RefusalReason::Arrears`];
/// 5. the person has an open transfer → [`RefusalReason::OpenTransferExists`], naming it;
/// 6. [`classify::classify`] refuses → its reason;
/// 7. a payout-only outcome asked for by the transfer-in bureau →
///    [`RefusalReason::RetireeMustRegisterRelocation`] (a payout sends no form, so the asking
///    bureau would wait forever: relocated retirees apply at the transfer-out bureau);
/// 8. a form for a destination the peer does not host → [`RefusalReason::RegionNotHosted`].
pub fn review_transfer_out(
    person: Option<&InsuredPerson>,
    open_transfer: Option<&str>,
    request: &TransferOutRequest,
    regions: &RegionFacts<'_>,
) -> Result<Accepted, Refused> {
    regions_differ(regions.pooling, request.out_region, request.in_region)?;
    let person = stopped_and_paid_up_at(person, request.out_region, regions.pooling)?;
    if let Some(open) = open_transfer {
        return Err(Refused::open_transfer_exists(open));
    }
    let facts = ApplicationFacts {
        out_region: request.out_region,
        in_region: request.in_region,
        out_policy: regions.out_policy,
        in_policy: regions.in_policy,
        destination: regions.destination,
        out_scheme: person.scheme,
        in_scheme: request.in_scheme.unwrap_or(person.scheme),
        person: person.status,
        retiree_payout: request.retiree_payout,
        bank_account: request.bank_account,
        pooling: regions.pooling,
    };
    // DOMAIN.md (not connected): the payout is something the person may ask for; otherwise the
    // application waits until the region joins the platform, the record and the balance kept
    // where they are. It is reviewed as if connected, so what would refuse it refuses it now.
    if regions.destination == Connectivity::NotConnected
        && !request.payout_requested
        && request.retiree_payout == RetireePayout::NotRequested
    {
        let as_connected = ApplicationFacts {
            destination: Connectivity::Connected,
            ..facts
        };
        let plan = classify::classify(&as_connected).map_err(|refusal| refusal.refusal_reason())?;
        return Ok(Accepted {
            plan,
            review: Review::AwaitConnection,
        });
    }
    let plan = classify::classify(&facts).map_err(|refusal| refusal.refusal_reason())?;
    let review = remittance_route(
        review_of_plan(&plan),
        regions.out_policy.remittance,
        plan.settlement,
    );
    if review == Review::PayToBankOnly && request.initiator == Initiator::TransferIn {
        return Err(RefusalReason::RetireeMustRegisterRelocation.into());
    }
    if matches!(review, Review::DeliverForm(_)) && regions.destination_hosting == Hosting::NotByPeer
    {
        return Err(RefusalReason::RegionNotHosted.into());
    }
    Ok(Accepted { plan, review })
}

/// Rules 2–4 of [`review_transfer_out`]: the person is known in `out_region`'s pooling region,
/// has stopped contributing and owes nothing.
fn stopped_and_paid_up_at<'p>(
    person: Option<&'p InsuredPerson>,
    out_region: RegionCode,
    pooling: &Pooling,
) -> Result<&'p InsuredPerson, RefusalReason> {
    let person = person
        .filter(|person| pooling.same_pooling_region(person.region, out_region))
        .ok_or(RefusalReason::UnknownPerson)?;
    // A retiree contributes no more and keeps the relationship (DOMAIN.md: retired employees
    // do not transfer): their enrolment state does not gate the retiree rules classify applies.
    if person.enrolment != EnrolmentState::Suspended && person.status != PersonStatus::Retired {
        return Err(RefusalReason::NotStoppedAtTransferOut);
    }
    if !person.arrears.is_zero() {
        return Err(RefusalReason::Arrears);
    }
    Ok(person)
}

/// How a balance that moves to the transfer-in account goes under the transfer-out region's
/// policy: apart from the form when the policy says so, except in instant mode (秒到账), which
/// stays instant (both sides finish together, the balance with the form).
pub fn remittance_route(
    review: Review,
    policy: crate::policy::Remittance,
    settlement: crate::classify::Settlement,
) -> Review {
    match (review, policy, settlement) {
        (
            Review::DeliverForm(BalanceRoute::MovesWithForm),
            crate::policy::Remittance::AfterWorkingDays(_),
            crate::classify::Settlement::Asynchronous,
        ) => Review::DeliverForm(BalanceRoute::RemittedApart),
        _ => review,
    }
}

/// How an accepted plan opens at the transfer-out bureau: a balance that moves goes with the
/// form; a payout for a not-connected destination or a relocated retiree is paid at once with no
/// form; a payout of a region that pays out, or of employee → resident, is paid after the
/// transfer-in bureau credits the form; otherwise the form goes and no money moves.
pub fn review_of_plan(plan: &TransferPlan) -> Review {
    match plan.balance {
        BalanceDisposition::MoveToAccount => Review::DeliverForm(BalanceRoute::MovesWithForm),
        BalanceDisposition::PayToBank(
            PayoutReason::DestinationNotConnected | PayoutReason::RetireeRelocated,
        ) => Review::PayToBankOnly,
        BalanceDisposition::PayToBank(
            PayoutReason::RegionPaysOut | PayoutReason::EmployeeToResident,
        ) => Review::DeliverForm(BalanceRoute::ToBankAfterCredit),
        BalanceDisposition::StaysUsableInProvince
        | BalanceDisposition::KeptUsableAtOrigin
        | BalanceDisposition::NoPersonalAccount => Review::DeliverForm(BalanceRoute::StaysPut),
    }
}

/// The applicant's identity: a person this bureau knows must be named as its record names them.
/// A mismatch is refused as an unknown person, without saying which part did not match (the
/// refusal must not help anyone guess a name from an ID number).
pub fn check_identity(name_on_record: &str, given_name: &str) -> Result<(), Refused> {
    if name_on_record.trim() == given_name.trim() {
        Ok(())
    } else {
        Err(RefusalReason::UnknownPerson.into())
    }
}

/// Whether the person is enrolled normally (正常参保, [`EnrolmentState::Normal`]) in `region`'s
/// pooling region (as `pooling` groups them).
pub fn enrolled_normally_in(
    person: Option<&InsuredPerson>,
    region: RegionCode,
    pooling: &Pooling,
) -> bool {
    person.is_some_and(|person| {
        person.enrolment == EnrolmentState::Normal
            && pooling.same_pooling_region(person.region, region)
    })
}

/// The transfer-in checks of an application made at the transfer-in bureau, in this order:
/// [`regions_differ`]; not [`enrolled_normally_in`] `in_region` →
/// [`RefusalReason::NotEnrolledAtTransferIn`]; an open transfer →
/// [`RefusalReason::OpenTransferExists`], naming it; an origin that is not connected →
/// [`RefusalReason::RegionNotConnected`]; one not hosted by the peer →
/// [`RefusalReason::RegionNotHosted`].
pub fn review_transfer_in_application(
    person: Option<&InsuredPerson>,
    open_transfer: Option<&str>,
    out_region: RegionCode,
    in_region: RegionCode,
    origin: Connectivity,
    origin_hosting: Hosting,
    pooling: &Pooling,
) -> Result<(), Refused> {
    regions_differ(pooling, out_region, in_region)?;
    if !enrolled_normally_in(person, in_region, pooling) {
        return Err(RefusalReason::NotEnrolledAtTransferIn.into());
    }
    if let Some(open) = open_transfer {
        return Err(Refused::open_transfer_exists(open));
    }
    if origin == Connectivity::NotConnected {
        return Err(RefusalReason::RegionNotConnected.into());
    }
    if origin_hosting == Hosting::NotByPeer {
        return Err(RefusalReason::RegionNotHosted.into());
    }
    Ok(())
}

/// The transfer-in check of an arriving form (审核 before any credit): a person not
/// [`enrolled_normally_in`] `in_region` is refused with
/// [`RefusalReason::NotEnrolledAtTransferIn`]; a person with an open transfer other than
/// `transfer_id` with [`RefusalReason::OpenTransferExists`]; a form that moves a balance into
/// the personal account of someone on the resident scheme here, which has none (DOMAIN.md:
/// the resident scheme is pooled fund only), with [`RefusalReason::FormMismatch`]; otherwise
/// the form is accepted.
pub fn check_form(
    person: Option<&InsuredPerson>,
    open_transfer: Option<&str>,
    transfer_id: &str,
    in_region: RegionCode,
    balance_to_account: bool,
    pooling: &Pooling,
) -> FormCheck {
    if !enrolled_normally_in(person, in_region, pooling) {
        FormCheck::Refuse(RefusalReason::NotEnrolledAtTransferIn)
    } else if open_transfer.is_some_and(|open| open != transfer_id) {
        FormCheck::Refuse(RefusalReason::OpenTransferExists)
    } else if balance_to_account && person.is_some_and(|p| !p.scheme.has_personal_account()) {
        FormCheck::Refuse(RefusalReason::FormMismatch)
    } else {
        FormCheck::Accept
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::{Geography, SchemeChange, Settlement, YearsDisposition};
    use crate::region::CITY_LEVEL;

    const HOHHOT: &str = "150100";
    const HOHHOT_COUNTY: &str = "150102";
    const LHASA: &str = "540100";
    const LHASA_COUNTY: &str = "540102";

    fn region(text: &str) -> RegionCode {
        RegionCode::parse(text).unwrap()
    }

    /// A working employee who stopped contributing in a county of Hohhot and owes nothing.
    fn leaver() -> InsuredPerson {
        InsuredPerson {
            region: region(HOHHOT_COUNTY),
            scheme: Scheme::Employee,
            enrolment: EnrolmentState::Suspended,
            status: PersonStatus::Working,
            arrears: Money::ZERO,
        }
    }

    /// A person enrolled normally in a county of Lhasa.
    fn arrival() -> InsuredPerson {
        InsuredPerson {
            region: region(LHASA_COUNTY),
            enrolment: EnrolmentState::Normal,
            ..leaver()
        }
    }

    fn request() -> TransferOutRequest {
        TransferOutRequest {
            out_region: region(HOHHOT),
            in_region: region(LHASA),
            in_scheme: None,
            initiator: Initiator::TransferIn,
            retiree_payout: RetireePayout::NotRequested,
            bank_account: BankAccountGiven::NotGiven,
            payout_requested: false,
        }
    }

    fn connected(policy: &RegionPolicy) -> RegionFacts<'_> {
        RegionFacts {
            out_policy: policy,
            in_policy: policy,
            destination: Connectivity::Connected,
            destination_hosting: Hosting::ByPeer,
            pooling: &CITY_LEVEL,
        }
    }

    fn refused(reason: RefusalReason) -> Result<Accepted, Refused> {
        Err(reason.into())
    }

    #[test]
    fn a_connected_transfer_is_accepted_and_its_balance_moves_with_the_form() {
        let policy = RegionPolicy::default();
        let accepted = review_transfer_out(Some(&leaver()), None, &request(), &connected(&policy))
            .expect("accepted");
        assert_eq!(
            accepted.review,
            Review::DeliverForm(BalanceRoute::MovesWithForm)
        );
        assert_eq!(
            accepted.plan,
            TransferPlan {
                geography: Geography::CrossProvince,
                scheme_change: SchemeChange::Same,
                balance: BalanceDisposition::MoveToAccount,
                years: YearsDisposition::Credit,
                settlement: Settlement::Asynchronous,
            }
        );
    }

    #[test]
    fn a_move_within_one_pooling_region_is_not_a_transfer_and_is_refused_first() {
        assert_eq!(
            regions_differ(&CITY_LEVEL, region(HOHHOT_COUNTY), region(HOHHOT)),
            Err(RefusalReason::SamePoolingRegion.into())
        );
        assert_eq!(
            regions_differ(&CITY_LEVEL, region(HOHHOT), region(LHASA)),
            Ok(())
        );
        let policy = RegionPolicy::default();
        let same = TransferOutRequest {
            in_region: region(HOHHOT_COUNTY),
            ..request()
        };
        // Even an unknown person with an open transfer is refused for the regions first.
        assert_eq!(
            review_transfer_out(None, Some("x"), &same, &connected(&policy)),
            refused(RefusalReason::SamePoolingRegion)
        );
        assert_eq!(
            review_transfer_in_application(
                None,
                Some("x"),
                region(LHASA),
                region(LHASA_COUNTY),
                Connectivity::NotConnected,
                Hosting::NotByPeer,
                &CITY_LEVEL,
            ),
            Err(RefusalReason::SamePoolingRegion.into())
        );
    }

    #[test]
    fn a_person_unknown_in_the_transfer_out_pooling_region_is_refused_as_unknown() {
        let policy = RegionPolicy::default();
        let facts = connected(&policy);
        assert_eq!(
            review_transfer_out(None, None, &request(), &facts),
            refused(RefusalReason::UnknownPerson)
        );
        let elsewhere = InsuredPerson {
            region: region(LHASA_COUNTY),
            ..leaver()
        };
        assert_eq!(
            review_transfer_out(Some(&elsewhere), None, &request(), &facts),
            refused(RefusalReason::UnknownPerson)
        );
    }

    #[test]
    fn a_person_who_still_contributes_is_refused_not_stopped() {
        let policy = RegionPolicy::default();
        for enrolment in [EnrolmentState::Normal, EnrolmentState::Terminated] {
            let person = InsuredPerson {
                enrolment,
                ..leaver()
            };
            assert_eq!(
                review_transfer_out(Some(&person), None, &request(), &connected(&policy)),
                refused(RefusalReason::NotStoppedAtTransferOut)
            );
        }
    }

    #[test]
    fn a_person_who_owes_contributions_is_refused_for_arrears() {
        let policy = RegionPolicy::default();
        let person = InsuredPerson {
            arrears: Money::from_cents(1).unwrap(),
            ..leaver()
        };
        assert_eq!(
            review_transfer_out(
                Some(&person),
                Some("other"),
                &request(),
                &connected(&policy)
            ),
            refused(RefusalReason::Arrears),
            "arrears come before the open transfer"
        );
    }

    #[test]
    fn a_person_with_an_open_transfer_is_refused_naming_the_transfer() {
        let policy = RegionPolicy::default();
        let refusal = review_transfer_out(
            Some(&leaver()),
            Some("150100202601050000001"),
            &request(),
            &connected(&policy),
        )
        .unwrap_err();
        assert_eq!(refusal.reason, RefusalReason::OpenTransferExists);
        assert_eq!(
            refusal.open_transfer.as_deref(),
            Some("150100202601050000001")
        );
    }

    /// DOMAIN.md: compare pooling regions, not county codes — and a pooling region may be a
    /// whole province. With Inner Mongolia pooling at province level, Hohhot → Ulanqab is a
    /// move within one pooling region at either bureau, and a person enrolled anywhere in the
    /// province is enrolled in it.
    #[test]
    fn a_move_between_two_counties_of_a_province_pooled_province_is_not_a_transfer() {
        let policy = RegionPolicy::default();
        let province = Pooling::city_level().with_province_level(region(HOHHOT).province());
        let to_ulanqab = TransferOutRequest {
            in_region: region("150902"),
            ..request()
        };
        assert!(
            review_transfer_out(Some(&leaver()), None, &to_ulanqab, &connected(&policy)).is_ok()
        );
        let pooled = RegionFacts {
            pooling: &province,
            ..connected(&policy)
        };
        assert_eq!(
            review_transfer_out(Some(&leaver()), None, &to_ulanqab, &pooled),
            refused(RefusalReason::SamePoolingRegion)
        );
        let in_ulanqab = InsuredPerson {
            region: region("150902"),
            ..arrival()
        };
        assert!(enrolled_normally_in(
            Some(&in_ulanqab),
            region("150000"),
            &province
        ));
        assert_eq!(
            review_transfer_in_application(
                Some(&in_ulanqab),
                None,
                region(HOHHOT_COUNTY),
                region("150902"),
                Connectivity::Connected,
                Hosting::ByPeer,
                &province,
            ),
            Err(RefusalReason::SamePoolingRegion.into())
        );
    }

    #[test]
    fn a_refusal_of_the_classification_is_answered_with_its_reason() {
        let policy = RegionPolicy::default();
        let retiree = InsuredPerson {
            status: PersonStatus::Retired,
            ..leaver()
        };
        assert_eq!(
            review_transfer_out(Some(&retiree), None, &request(), &connected(&policy)),
            refused(RefusalReason::RetireeMustRegisterRelocation)
        );
        let facts = RegionFacts {
            destination: Connectivity::NotConnected,
            ..connected(&policy)
        };
        let asked_here = TransferOutRequest {
            initiator: Initiator::TransferOut,
            payout_requested: true,
            ..request()
        };
        assert_eq!(
            review_transfer_out(Some(&leaver()), None, &asked_here, &facts),
            refused(RefusalReason::BankAccountRequired)
        );
    }

    #[test]
    fn not_connected_the_payout_only_on_request_otherwise_the_application_waits() {
        let policy = RegionPolicy::default();
        let facts = RegionFacts {
            destination: Connectivity::NotConnected,
            ..connected(&policy)
        };
        let waits = TransferOutRequest {
            initiator: Initiator::TransferOut,
            ..request()
        };
        let accepted = review_transfer_out(Some(&leaver()), None, &waits, &facts).expect("waits");
        assert_eq!(accepted.review, Review::AwaitConnection);
        assert_eq!(
            accepted.plan.balance,
            BalanceDisposition::MoveToAccount,
            "once connected, the balance moves with the relationship"
        );
        let paid = TransferOutRequest {
            payout_requested: true,
            bank_account: BankAccountGiven::Given,
            ..waits
        };
        let accepted = review_transfer_out(Some(&leaver()), None, &paid, &facts).expect("paid");
        assert_eq!(accepted.review, Review::PayToBankOnly);
        // A resident (no balance) waits too, rather than being refused REGION_NOT_HOSTED.
        let resident = InsuredPerson {
            scheme: Scheme::Resident,
            ..leaver()
        };
        let unhosted = RegionFacts {
            destination_hosting: Hosting::NotByPeer,
            ..facts
        };
        let accepted =
            review_transfer_out(Some(&resident), None, &waits, &unhosted).expect("waits");
        assert_eq!(accepted.review, Review::AwaitConnection);
    }

    #[test]
    fn retired_employees_do_not_transfer_the_retiree_rule_comes_before_the_enrolment_state() {
        let policy = RegionPolicy::default();
        // A retiree whose record still says contributing: the retiree rule answers, not
        // NOT_STOPPED (a retiree contributes no more; the relationship stays).
        let retiree = InsuredPerson {
            status: PersonStatus::Retired,
            enrolment: EnrolmentState::Normal,
            ..leaver()
        };
        assert_eq!(
            review_transfer_out(Some(&retiree), None, &request(), &connected(&policy)),
            refused(RefusalReason::RetireeMustRegisterRelocation)
        );
        let working = InsuredPerson {
            enrolment: EnrolmentState::Normal,
            ..leaver()
        };
        assert_eq!(
            review_transfer_out(Some(&working), None, &request(), &connected(&policy)),
            refused(RefusalReason::NotStoppedAtTransferOut)
        );
    }

    #[test]
    fn a_payout_only_transfer_asked_for_by_the_transfer_in_bureau_is_refused() {
        let policy = RegionPolicy::default();
        let facts = RegionFacts {
            destination: Connectivity::NotConnected,
            destination_hosting: Hosting::NotByPeer,
            ..connected(&policy)
        };
        let with_account = TransferOutRequest {
            bank_account: BankAccountGiven::Given,
            payout_requested: true,
            ..request()
        };
        assert_eq!(
            review_transfer_out(Some(&leaver()), None, &with_account, &facts),
            refused(RefusalReason::RetireeMustRegisterRelocation)
        );
        // Asked for at the transfer-out bureau, the payout needs no peer hosting the region.
        let asked_here = TransferOutRequest {
            initiator: Initiator::TransferOut,
            ..with_account
        };
        let accepted =
            review_transfer_out(Some(&leaver()), None, &asked_here, &facts).expect("accepted");
        assert_eq!(accepted.review, Review::PayToBankOnly);
    }

    #[test]
    fn a_form_for_a_region_the_peer_does_not_host_is_refused() {
        let policy = RegionPolicy::default();
        let facts = RegionFacts {
            destination_hosting: Hosting::NotByPeer,
            ..connected(&policy)
        };
        assert_eq!(
            review_transfer_out(Some(&leaver()), None, &request(), &facts),
            refused(RefusalReason::RegionNotHosted)
        );
    }

    #[test]
    fn each_balance_disposition_opens_the_transfer_out_as_its_route_says() {
        let plan = |balance| TransferPlan {
            geography: Geography::CrossProvince,
            scheme_change: SchemeChange::Same,
            balance,
            years: YearsDisposition::Credit,
            settlement: Settlement::Asynchronous,
        };
        use BalanceDisposition as B;
        let cases = [
            (
                B::MoveToAccount,
                Review::DeliverForm(BalanceRoute::MovesWithForm),
            ),
            (
                B::PayToBank(PayoutReason::DestinationNotConnected),
                Review::PayToBankOnly,
            ),
            (
                B::PayToBank(PayoutReason::RetireeRelocated),
                Review::PayToBankOnly,
            ),
            (
                B::PayToBank(PayoutReason::RegionPaysOut),
                Review::DeliverForm(BalanceRoute::ToBankAfterCredit),
            ),
            (
                B::PayToBank(PayoutReason::EmployeeToResident),
                Review::DeliverForm(BalanceRoute::ToBankAfterCredit),
            ),
            (
                B::StaysUsableInProvince,
                Review::DeliverForm(BalanceRoute::StaysPut),
            ),
            (
                B::KeptUsableAtOrigin,
                Review::DeliverForm(BalanceRoute::StaysPut),
            ),
            (
                B::NoPersonalAccount,
                Review::DeliverForm(BalanceRoute::StaysPut),
            ),
        ];
        for (balance, review) in cases {
            assert_eq!(review_of_plan(&plan(balance)), review, "{balance:?}");
        }
    }

    #[test]
    fn a_person_is_enrolled_normally_only_when_normal_in_the_pooling_region() {
        let here = region(LHASA);
        assert!(enrolled_normally_in(Some(&arrival()), here, &CITY_LEVEL));
        assert!(!enrolled_normally_in(None, here, &CITY_LEVEL));
        assert!(!enrolled_normally_in(
            Some(&arrival()),
            region(HOHHOT),
            &CITY_LEVEL
        ));
        let suspended = InsuredPerson {
            enrolment: EnrolmentState::Suspended,
            ..arrival()
        };
        assert!(!enrolled_normally_in(Some(&suspended), here, &CITY_LEVEL));
    }

    #[test]
    fn an_application_at_the_transfer_in_bureau_needs_normal_enrolment_there() {
        let apply = |person: Option<&InsuredPerson>, open: Option<&str>, origin, hosting| {
            review_transfer_in_application(
                person,
                open,
                region(HOHHOT),
                region(LHASA),
                origin,
                hosting,
                &CITY_LEVEL,
            )
        };
        let (connected, by_peer) = (Connectivity::Connected, Hosting::ByPeer);
        assert_eq!(apply(Some(&arrival()), None, connected, by_peer), Ok(()));
        assert_eq!(
            apply(None, Some("x"), Connectivity::NotConnected, by_peer),
            Err(RefusalReason::NotEnrolledAtTransferIn.into())
        );
        assert_eq!(
            apply(
                Some(&arrival()),
                Some("x"),
                Connectivity::NotConnected,
                by_peer
            ),
            Err(Refused::open_transfer_exists("x"))
        );
        assert_eq!(
            apply(Some(&arrival()), None, Connectivity::NotConnected, by_peer),
            Err(RefusalReason::RegionNotConnected.into()),
            "platform.proto: the other region is not connected"
        );
        assert_eq!(
            apply(Some(&arrival()), None, connected, Hosting::NotByPeer),
            Err(RefusalReason::RegionNotHosted.into())
        );
    }

    #[test]
    fn the_resident_scheme_has_no_personal_account_a_form_moving_a_balance_into_one_is_refused() {
        let here = region(LHASA);
        let id = "150100202601050000001";
        let resident = InsuredPerson {
            scheme: Scheme::Resident,
            ..arrival()
        };
        assert_eq!(
            check_form(Some(&resident), None, id, here, true, &CITY_LEVEL),
            FormCheck::Refuse(RefusalReason::FormMismatch)
        );
        assert_eq!(
            check_form(Some(&resident), None, id, here, false, &CITY_LEVEL),
            FormCheck::Accept,
            "years alone move to the resident scheme"
        );
    }

    #[test]
    fn an_arriving_form_is_refused_unless_the_person_is_enrolled_and_has_no_other_transfer() {
        let here = region(LHASA);
        let id = "150100202601050000001";
        assert_eq!(
            check_form(Some(&arrival()), None, id, here, true, &CITY_LEVEL),
            FormCheck::Accept
        );
        assert_eq!(
            check_form(Some(&arrival()), Some(id), id, here, true, &CITY_LEVEL),
            FormCheck::Accept,
            "the form's own transfer does not block it"
        );
        assert_eq!(
            check_form(
                Some(&arrival()),
                Some("other"),
                id,
                here,
                false,
                &CITY_LEVEL
            ),
            FormCheck::Refuse(RefusalReason::OpenTransferExists)
        );
        assert_eq!(
            check_form(None, Some("other"), id, here, false, &CITY_LEVEL),
            FormCheck::Refuse(RefusalReason::NotEnrolledAtTransferIn)
        );
        assert_eq!(
            check_form(
                Some(&arrival()),
                None,
                id,
                region(HOHHOT),
                false,
                &CITY_LEVEL
            ),
            FormCheck::Refuse(RefusalReason::NotEnrolledAtTransferIn)
        );
    }

    #[test]
    fn an_applicant_named_otherwise_than_the_record_is_an_unknown_person() {
        assert!(check_identity("张三", "张三").is_ok());
        assert!(
            check_identity("张三", " 张三 ").is_ok(),
            "surrounding spaces do not count"
        );
        let refused = check_identity("张三", "李四").expect_err("another name");
        assert_eq!(refused.reason, RefusalReason::UnknownPerson);
        assert_eq!(refused.open_transfer, None);
    }

    #[test]
    fn a_balance_goes_apart_only_under_the_policy_and_never_in_instant_mode() {
        let moves = Review::DeliverForm(BalanceRoute::MovesWithForm);
        let apart = crate::policy::Remittance::AfterWorkingDays(10);
        assert_eq!(
            remittance_route(moves, apart, crate::classify::Settlement::Asynchronous),
            Review::DeliverForm(BalanceRoute::RemittedApart)
        );
        assert_eq!(
            remittance_route(moves, apart, crate::classify::Settlement::Instant),
            moves,
            "instant stays instant"
        );
        assert_eq!(
            remittance_route(
                moves,
                crate::policy::Remittance::WithForm,
                crate::classify::Settlement::Asynchronous
            ),
            moves
        );
        let stays = Review::DeliverForm(BalanceRoute::StaysPut);
        assert_eq!(
            remittance_route(stays, apart, crate::classify::Settlement::Asynchronous),
            stays,
            "no money, no remittance"
        );
    }
}
