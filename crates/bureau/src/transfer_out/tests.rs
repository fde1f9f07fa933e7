//! Unit tests of `transfer_out` on an in-memory store: each step of the transfer-out driver
//! (review and open, the form's answer, the deadline, the abort's answer, the bank's payout),
//! what it saved, posted and queued, and that money is conserved to the cent.

use std::sync::Arc;

use yibao_domain::application::BankAccount;
use yibao_domain::classify::Connectivity;
use yibao_domain::population::{Flow, SyntheticPerson};
use yibao_domain::scheme::{EnrolmentState, Scheme};
use yibao_domain::transfer::out_side::{AbortFallback, BalanceRoute, InCredit, OutState};
use yibao_domain::transfer::{Initiator, RefusalReason, TransferState};
use yibao_runtime::directory::BureauRole;

use crate::error::Error;
use crate::journal::{account, reason};
use crate::messages::{Credit, FormOutcome, Kind, TransferApplication};
use crate::services::Services;
use crate::testing::{self, step};
use crate::transfer_out::{self, Opened};

const HOHHOT: &str = "150100";
const LHASA: &str = "540100";
const ZHENGZHOU: &str = "410100";

/// A transfer-out bureau that knows one cross-province leaver; their opening balance in cents.
async fn bureau_with(flow: Flow) -> (Arc<Services>, SyntheticPerson, i64) {
    let services = testing::services(BureauRole::TransferOut);
    let person = testing::seed(&services, flow, 0).await;
    let opening = i64::try_from(person.balance.cents()).expect("a small balance");
    (services, person, opening)
}

/// The same request naming the person's bank account.
fn with_bank_account(mut application: TransferApplication) -> TransferApplication {
    let account = BankAccount::new("ICBC", "6222000011112222333", "张三").expect("a valid account");
    application.bank_account = Some(account);
    application
}

/// Runs `review_and_open` in its own step.
async fn review(
    services: &Services,
    application: TransferApplication,
    initiator: Initiator,
) -> Result<Opened, Error> {
    step(services, move |step| {
        transfer_out::review_and_open(step, &application, initiator)
    })
    .await
}

/// Opens an accepted cross-province transfer requested by the transfer-in bureau; its id.
async fn opened(services: &Services, application: TransferApplication) -> String {
    match review(services, application, Initiator::TransferIn).await {
        Ok(Opened::Accepted(document)) => document.transfer_id.clone(),
        other => panic!("the request should be accepted, got {other:?}"),
    }
}

/// Inner Mongolia pooled at province level and hosted here, Lhasa by the peer: a test
/// directory (the shipped one pools Inner Mongolia by city).
const INNER_MONGOLIA_POOLED: &str = r#"
[[region]]
code = "150000"
name = "Inner Mongolia"
name_zh = "内蒙古自治区"
bureau = "transfer-out"
connected = true
pooling = "province"

[[region]]
code = "540100"
name = "Lhasa"
name_zh = "拉萨市"
bureau = "transfer-in"
connected = true
"#;

/// DOMAIN.md: a move within one pooling region is not a transfer, and a pooling region may be
/// a whole province. Where the directory pools Inner Mongolia at province level, a Hohhot
/// leaver bound for a county of Ulanqab is refused SAME_POOLING_REGION and nothing moves;
/// under the shipped (city-level) directory the same move is a transfer.
#[tokio::test]
async fn a_move_between_two_cities_of_a_province_pooled_province_is_not_a_transfer() {
    let services = testing::services_with_directory(BureauRole::TransferOut, INNER_MONGOLIA_POOLED);
    let person = testing::seed(&services, Flow::CrossProvince, 0).await;
    assert_eq!(
        services.site.directory.pooling_region(person.out_region),
        testing::region("150000"),
        "the whole province"
    );
    let within = || TransferApplication {
        in_region: testing::region("150902"),
        in_scheme: Some(Scheme::Employee),
        ..testing::transfer_out_request(&person, 1)
    };
    let refused = review(&services, within(), Initiator::TransferOut).await;
    match refused {
        Ok(Opened::Refused(refused)) => {
            assert_eq!(refused.reason, RefusalReason::SamePoolingRegion);
        }
        other => panic!("refused as one pooling region, got {other:?}"),
    }
    let opening = i64::try_from(person.balance.cents()).expect("a small balance");
    testing::assert_money_conserved(&services, opening).await;
    assert_eq!(testing::transit(&services).await, 0, "nothing moved");
    // The shipped directory pools by city: the same move is a transfer there.
    let by_city = testing::services(BureauRole::TransferOut);
    testing::seed(&by_city, Flow::CrossProvince, 0).await;
    let accepted = review(&by_city, within(), Initiator::TransferOut).await;
    assert!(matches!(accepted, Ok(Opened::Accepted(_))), "{accepted:?}");
}

fn out_state(state: TransferState) -> OutState {
    match state {
        TransferState::Out(state) => state,
        TransferState::In(state) => panic!("a transfer-out document in {state:?}"),
    }
}

async fn state_of(services: &Services, transfer_id: &str) -> OutState {
    out_state(testing::document(services, transfer_id).await.state)
}

fn credit(amount_cents: u64) -> FormOutcome {
    FormOutcome::Credited(Credit {
        months: 60,
        amount_cents,
        at: testing::start(),
    })
}

async fn form_answered(services: &Services, transfer_id: &str, outcome: FormOutcome) {
    let id = transfer_id.to_owned();
    step(services, move |step| {
        transfer_out::form_answered(step, &id, outcome, 1)
    })
    .await
    .expect("the form's answer applies");
}

async fn deadline_passed(services: &Services, transfer_id: &str) -> bool {
    let id = transfer_id.to_owned();
    step(services, move |step| {
        transfer_out::deadline_passed(step, &id)
    })
    .await
    .expect("the deadline step runs")
}

async fn abort_answered(services: &Services, transfer_id: &str, credit: InCredit) {
    let id = transfer_id.to_owned();
    step(services, move |step| {
        transfer_out::abort_answered(step, &id, credit, 1)
    })
    .await
    .expect("the abort's answer applies");
}

async fn bank_paid(services: &Services, transfer_id: &str) {
    let id = transfer_id.to_owned();
    step(services, move |step| transfer_out::bank_paid(step, &id, 1))
        .await
        .expect("the bank's confirmation applies");
}

fn queued(kind: Kind, peer: &str) -> (String, String) {
    (kind.as_str().to_owned(), peer.to_owned())
}

#[tokio::test]
async fn an_accepted_request_debits_the_balance_to_transit_and_queues_the_form() {
    let (services, person, opening) = bureau_with(Flow::CrossProvince).await;
    let id = opened(&services, testing::transfer_out_request(&person, 1)).await;
    let document = testing::document(&services, &id).await;
    assert_eq!(
        out_state(document.state),
        OutState::InTransit {
            balance: BalanceRoute::MovesWithForm
        }
    );
    assert_eq!(document.initiator, Initiator::TransferIn);
    assert_eq!(document.amount_cents, person.balance.cents());
    assert_eq!(document.trafout_admdvs, HOHHOT);
    assert_eq!(document.trafin_admdvs, LHASA);
    let certno = person.certno.expose_unmasked();
    assert_eq!(testing::person_balance(&services, certno).await, 0);
    assert_eq!(testing::transit(&services).await, opening);
    assert_eq!(
        testing::queued_for(&services, &id).await,
        vec![queued(Kind::DeliverForm, LHASA)]
    );
    let row = testing::read(&services, {
        let id = id.clone();
        move |tx| Ok(tx.transfer(&id)?)
    })
    .await
    .expect("the row is stored");
    assert_eq!((row.state.as_str(), row.open), ("IN_TRANSIT", true));
    assert!(row.whole_process_due_on.is_some(), "deadlines are counted");
    let events = testing::events(&services, &id).await;
    assert_eq!(testing::kinds(&events), vec!["ACCEPTED"]);
    testing::assert_money_conserved(&services, opening).await;
}

#[tokio::test]
async fn a_repeated_request_is_answered_from_the_stored_transfer_without_a_second_debit() {
    let (services, person, opening) = bureau_with(Flow::CrossProvince).await;
    let id = opened(&services, testing::transfer_out_request(&person, 1)).await;
    let again = opened(&services, testing::transfer_out_request(&person, 1)).await;
    assert_eq!(again, id);
    assert_eq!(testing::transit(&services).await, opening, "debited once");
    assert_eq!(testing::queued_for(&services, &id).await.len(), 1);
    assert_eq!(testing::events(&services, &id).await.len(), 1);
    testing::assert_money_conserved(&services, opening).await;
}

#[tokio::test]
async fn a_refused_request_from_transfer_in_is_remembered_and_answered_the_same() {
    let (services, person, opening) = bureau_with(Flow::RefusedArrears).await;
    let application = testing::transfer_out_request(&person, 1);
    let id = application.transfer_id.clone();
    for attempt in 0..2 {
        match review(&services, application.clone(), Initiator::TransferIn).await {
            Ok(Opened::Refused(refused)) => {
                assert_eq!(refused.reason, RefusalReason::Arrears, "answer {attempt}");
                assert_eq!(refused.open_transfer, None);
            }
            other => panic!("answer {attempt} should refuse for arrears, got {other:?}"),
        }
    }
    let document = testing::document(&services, &id).await;
    assert_eq!(
        out_state(document.state),
        OutState::Rejected(RefusalReason::Arrears)
    );
    let events = testing::events(&services, &id).await;
    assert_eq!(testing::kinds(&events), vec!["REJECTED"], "remembered once");
    let row = testing::read(&services, move |tx| Ok(tx.transfer(&id)?))
        .await
        .expect("the row is stored");
    assert_eq!((row.state.as_str(), row.open), ("REJECTED", false));
    assert!(testing::outbox(&services).await.is_empty());
    let certno = person.certno.expose_unmasked();
    assert_eq!(testing::person_balance(&services, certno).await, opening);
    testing::assert_money_conserved(&services, opening).await;
}

#[tokio::test]
async fn a_refused_application_made_at_transfer_out_writes_nothing() {
    let (services, person, opening) = bureau_with(Flow::RefusedNotStopped).await;
    let application = testing::transfer_out_request(&person, 1);
    let id = application.transfer_id.clone();
    match review(&services, application, Initiator::TransferOut).await {
        Ok(Opened::Refused(refused)) => {
            assert_eq!(refused.reason, RefusalReason::NotStoppedAtTransferOut);
        }
        other => panic!("the application should be refused, got {other:?}"),
    }
    assert!(testing::find_document(&services, &id).await.is_none());
    assert!(testing::events(&services, &id).await.is_empty());
    assert!(testing::outbox(&services).await.is_empty());
    let certno = person.certno.expose_unmasked().to_owned();
    let open = testing::read(&services, move |tx| Ok(tx.open_transfer_of(&certno)?)).await;
    assert_eq!(open, None);
    testing::assert_money_conserved(&services, opening).await;
    assert_eq!(testing::transit(&services).await, 0);
}

#[tokio::test]
async fn a_second_request_for_a_person_with_an_open_transfer_is_refused_naming_it() {
    let (services, person, opening) = bureau_with(Flow::CrossProvince).await;
    let first = opened(&services, testing::transfer_out_request(&person, 1)).await;
    match review(
        &services,
        testing::transfer_out_request(&person, 2),
        Initiator::TransferIn,
    )
    .await
    {
        Ok(Opened::Refused(refused)) => {
            assert_eq!(refused.reason, RefusalReason::OpenTransferExists);
            assert_eq!(refused.open_transfer.as_deref(), Some(first.as_str()));
        }
        other => panic!("the second request should be refused, got {other:?}"),
    }
    assert_eq!(testing::transit(&services).await, opening, "debited once");
    testing::assert_money_conserved(&services, opening).await;
}

#[tokio::test]
async fn a_credited_form_completes_the_transfer_settles_transit_and_ends_the_relationship() {
    let (services, person, opening) = bureau_with(Flow::CrossProvince).await;
    let id = opened(&services, testing::transfer_out_request(&person, 1)).await;
    form_answered(&services, &id, credit(person.balance.cents())).await;
    assert_eq!(state_of(&services, &id).await, OutState::Completed);
    assert_eq!(testing::transit(&services).await, 0);
    let settled = testing::balance(&services, &account::settled(testing::region(LHASA))).await;
    assert_eq!(settled, opening);
    let totals = testing::totals(&services).await;
    assert_eq!(totals.get(reason::SETTLE).copied(), Some(opening));
    let certno = person.certno.expose_unmasked();
    let row = testing::person_row(&services, certno).await;
    assert_eq!(row.psn_insu_stas, EnrolmentState::Terminated.code());
    // A repeated answer changes nothing.
    form_answered(&services, &id, credit(person.balance.cents())).await;
    assert_eq!(
        testing::balance(&services, &account::settled(testing::region(LHASA))).await,
        opening
    );
    assert_eq!(testing::events(&services, &id).await.len(), 2);
    testing::assert_money_conserved(&services, opening).await;
}

#[tokio::test]
async fn a_refused_form_returns_the_transfer_and_the_balance_to_the_account() {
    let (services, person, opening) = bureau_with(Flow::CrossProvince).await;
    let id = opened(&services, testing::transfer_out_request(&person, 1)).await;
    let refused = RefusalReason::NotEnrolledAtTransferIn;
    form_answered(&services, &id, FormOutcome::Refused(refused)).await;
    assert_eq!(state_of(&services, &id).await, OutState::Returned(refused));
    assert_eq!(testing::transit(&services).await, 0);
    let certno = person.certno.expose_unmasked();
    assert_eq!(testing::person_balance(&services, certno).await, opening);
    let totals = testing::totals(&services).await;
    assert_eq!(totals.get(reason::REVERSE).copied(), Some(opening));
    let row = testing::person_row(&services, certno).await;
    assert_eq!(
        row.psn_insu_stas,
        EnrolmentState::Suspended.code(),
        "the relationship stays where it was"
    );
    testing::assert_money_conserved(&services, opening).await;
}

#[tokio::test]
async fn a_passed_deadline_opens_the_abort_withdraws_the_form_and_queues_the_abort() {
    let (services, person, opening) = bureau_with(Flow::CrossProvince).await;
    let id = opened(&services, testing::transfer_out_request(&person, 1)).await;
    assert!(deadline_passed(&services, &id).await, "the abort opens");
    assert_eq!(
        state_of(&services, &id).await,
        OutState::Aborting {
            balance: BalanceRoute::MovesWithForm,
            fallback: AbortFallback::ReturnToAccount,
        }
    );
    assert_eq!(
        testing::queued_for(&services, &id).await,
        vec![queued(Kind::Abort, LHASA)],
        "the undelivered form is withdrawn, the abort queued"
    );
    assert_eq!(
        testing::transit(&services).await,
        opening,
        "still in transit"
    );
    assert!(
        !deadline_passed(&services, &id).await,
        "a repeat changes nothing"
    );
    assert_eq!(testing::queued_for(&services, &id).await.len(), 1);
    assert!(
        !deadline_passed(&services, "150100202603020009999").await,
        "an unknown transfer changes nothing"
    );
    testing::assert_money_conserved(&services, opening).await;
}

#[tokio::test]
async fn a_passed_deadline_with_a_bank_account_falls_back_to_paying_the_bank() {
    let (services, person, _) = bureau_with(Flow::CrossProvince).await;
    let id = opened(
        &services,
        with_bank_account(testing::transfer_out_request(&person, 1)),
    )
    .await;
    assert!(deadline_passed(&services, &id).await);
    assert_eq!(
        state_of(&services, &id).await,
        OutState::Aborting {
            balance: BalanceRoute::MovesWithForm,
            fallback: AbortFallback::PayToBank,
        }
    );
}

#[tokio::test]
async fn a_deadline_after_completion_changes_nothing() {
    let (services, person, opening) = bureau_with(Flow::CrossProvince).await;
    let id = opened(&services, testing::transfer_out_request(&person, 1)).await;
    form_answered(&services, &id, credit(person.balance.cents())).await;
    assert!(!deadline_passed(&services, &id).await);
    assert_eq!(state_of(&services, &id).await, OutState::Completed);
    let abort = queued(Kind::Abort, LHASA);
    assert!(!testing::queued_for(&services, &id).await.contains(&abort));
    testing::assert_money_conserved(&services, opening).await;
}

#[tokio::test]
async fn an_abort_answered_not_credited_returns_the_balance_to_the_account() {
    let (services, person, opening) = bureau_with(Flow::CrossProvince).await;
    let id = opened(&services, testing::transfer_out_request(&person, 1)).await;
    assert!(deadline_passed(&services, &id).await);
    abort_answered(&services, &id, InCredit::NotCredited).await;
    assert_eq!(
        state_of(&services, &id).await,
        OutState::Returned(RefusalReason::Aborted)
    );
    assert_eq!(testing::transit(&services).await, 0);
    let certno = person.certno.expose_unmasked();
    assert_eq!(testing::person_balance(&services, certno).await, opening);
    testing::assert_money_conserved(&services, opening).await;
}

#[tokio::test]
async fn an_abort_answered_credited_completes_the_transfer_and_settles_transit() {
    let (services, person, opening) = bureau_with(Flow::CrossProvince).await;
    let id = opened(&services, testing::transfer_out_request(&person, 1)).await;
    assert!(deadline_passed(&services, &id).await);
    abort_answered(&services, &id, InCredit::Credited).await;
    assert_eq!(state_of(&services, &id).await, OutState::Completed);
    assert_eq!(testing::transit(&services).await, 0);
    let settled = testing::balance(&services, &account::settled(testing::region(LHASA))).await;
    assert_eq!(settled, opening);
    let certno = person.certno.expose_unmasked();
    let row = testing::person_row(&services, certno).await;
    assert_eq!(row.psn_insu_stas, EnrolmentState::Terminated.code());
    testing::assert_money_conserved(&services, opening).await;
}

#[tokio::test]
async fn an_abort_answered_not_credited_with_a_bank_account_pays_the_bank_once_it_paid() {
    let (services, person, opening) = bureau_with(Flow::CrossProvince).await;
    let id = opened(
        &services,
        with_bank_account(testing::transfer_out_request(&person, 1)),
    )
    .await;
    assert!(deadline_passed(&services, &id).await);
    abort_answered(&services, &id, InCredit::NotCredited).await;
    assert_eq!(state_of(&services, &id).await, OutState::PayoutPending);
    assert_eq!(
        testing::queued_for(&services, &id).await,
        vec![
            queued(Kind::Abort, LHASA),
            queued(Kind::BankPayout, crate::outbox::queue::BANK_GATEWAY)
        ]
    );
    assert_eq!(
        testing::transit(&services).await,
        opening,
        "a request moves nothing"
    );
    bank_paid(&services, &id).await;
    assert_eq!(state_of(&services, &id).await, OutState::PaidToBank);
    assert_eq!(testing::transit(&services).await, 0);
    assert_eq!(testing::balance(&services, account::BANK).await, opening);
    testing::assert_money_conserved(&services, opening).await;
}

#[tokio::test]
async fn a_payout_for_a_destination_not_connected_is_posted_to_the_bank_only_when_the_bank_paid() {
    let (services, person, opening) = bureau_with(Flow::NotConnected).await;
    let mut application = with_bank_account(testing::transfer_out_request(&person, 1));
    application.transfer_id = testing::transfer_id(HOHHOT, 1);
    assert_eq!(application.in_region.to_string(), ZHENGZHOU);
    let id = match review(&services, application, Initiator::TransferOut).await {
        Ok(Opened::Accepted(document)) => document.transfer_id.clone(),
        other => panic!("the payout should be accepted, got {other:?}"),
    };
    assert_eq!(state_of(&services, &id).await, OutState::PayoutPending);
    assert_eq!(
        testing::queued_for(&services, &id).await,
        vec![queued(Kind::BankPayout, crate::outbox::queue::BANK_GATEWAY)],
        "no form goes to a region not connected"
    );
    assert_eq!(testing::transit(&services).await, opening);
    assert_eq!(testing::balance(&services, account::BANK).await, 0);
    bank_paid(&services, &id).await;
    assert_eq!(state_of(&services, &id).await, OutState::PaidToBank);
    assert_eq!(testing::transit(&services).await, 0);
    assert_eq!(testing::balance(&services, account::BANK).await, opening);
    let totals = testing::totals(&services).await;
    assert_eq!(totals.get(reason::PAY_TO_BANK).copied(), Some(opening));
    // The payout was asked for; the years stay where they are (DOMAIN.md, not connected).
    let certno = person.certno.expose_unmasked();
    let row = testing::person_row(&services, certno).await;
    assert_ne!(row.psn_insu_stas, EnrolmentState::Terminated.code());
    // A repeated confirmation posts nothing more.
    bank_paid(&services, &id).await;
    assert_eq!(testing::balance(&services, account::BANK).await, opening);
    testing::assert_money_conserved(&services, opening).await;
}

#[tokio::test]
async fn a_shared_provincial_account_sends_the_form_and_moves_no_money() {
    let (services, person, opening) = bureau_with(Flow::IntraProvinceShared).await;
    assert_eq!(person.out_scheme, Scheme::Employee);
    let id = opened(&services, testing::transfer_out_request(&person, 1)).await;
    assert_eq!(
        state_of(&services, &id).await,
        OutState::InTransit {
            balance: BalanceRoute::StaysPut
        }
    );
    assert_eq!(testing::transit(&services).await, 0);
    assert_eq!(testing::queued_for(&services, &id).await.len(), 1);
    form_answered(&services, &id, credit(0)).await;
    assert_eq!(state_of(&services, &id).await, OutState::Completed);
    let certno = person.certno.expose_unmasked();
    assert_eq!(testing::person_balance(&services, certno).await, opening);
    testing::assert_money_conserved(&services, opening).await;
}

#[tokio::test]
async fn an_answer_for_an_unknown_transfer_is_not_found() {
    let (services, _, _) = bureau_with(Flow::CrossProvince).await;
    let result = step(&services, |step| {
        transfer_out::form_answered(step, "540100202603020009999", credit(1), 1)
    })
    .await;
    assert!(matches!(result, Err(Error::NotFound(_))), "{result:?}");
}

#[tokio::test]
async fn an_answer_out_of_place_is_an_error_and_changes_nothing() {
    let (services, person, opening) = bureau_with(Flow::CrossProvince).await;
    let id = opened(&services, testing::transfer_out_request(&person, 1)).await;
    let paid = {
        let id = id.clone();
        step(&services, move |step| transfer_out::bank_paid(step, &id, 1)).await
    };
    assert!(matches!(paid, Err(Error::OutOfOrder(_))), "{paid:?}");
    assert_eq!(
        state_of(&services, &id).await,
        OutState::InTransit {
            balance: BalanceRoute::MovesWithForm
        }
    );
    assert_eq!(testing::transit(&services).await, opening);
    testing::assert_money_conserved(&services, opening).await;
}

#[tokio::test]
async fn a_balance_paid_out_after_the_credit_waits_in_transit_until_the_bank_paid() {
    let (services, person, opening) = bureau_with(Flow::RegionPaysOut).await;
    let id = opened(
        &services,
        with_bank_account(testing::transfer_out_request(&person, 1)),
    )
    .await;
    assert_eq!(
        state_of(&services, &id).await,
        OutState::InTransit {
            balance: BalanceRoute::ToBankAfterCredit
        }
    );
    assert_eq!(testing::transit(&services).await, opening);
    form_answered(&services, &id, credit(0)).await;
    assert_eq!(state_of(&services, &id).await, OutState::PayoutPending);
    assert_eq!(
        testing::queued_for(&services, &id).await,
        vec![
            queued(Kind::DeliverForm, LHASA),
            queued(Kind::BankPayout, crate::outbox::queue::BANK_GATEWAY)
        ]
    );
    assert_eq!(testing::transit(&services).await, opening, "not paid yet");
    bank_paid(&services, &id).await;
    assert_eq!(state_of(&services, &id).await, OutState::PaidToBank);
    assert_eq!(testing::transit(&services).await, 0);
    assert_eq!(testing::balance(&services, account::BANK).await, opening);
    let settled = testing::balance(&services, &account::settled(testing::region(LHASA))).await;
    assert_eq!(settled, 0, "nothing settled to the transfer-in region");
    testing::assert_money_conserved(&services, opening).await;
}

#[tokio::test]
async fn a_relocated_retiree_asking_at_transfer_out_is_paid_to_the_bank_without_a_form() {
    let (services, person, opening) = bureau_with(Flow::RetireePayout).await;
    let mut application = with_bank_account(testing::transfer_out_request(&person, 1));
    application.transfer_id = testing::transfer_id(HOHHOT, 1);
    application.retiree_payout = yibao_domain::classify::RetireePayout::Requested;
    let id = match review(&services, application, Initiator::TransferOut).await {
        Ok(Opened::Accepted(document)) => document.transfer_id.clone(),
        other => panic!("the payout should be accepted, got {other:?}"),
    };
    assert_eq!(state_of(&services, &id).await, OutState::PayoutPending);
    assert_eq!(
        testing::queued_for(&services, &id).await,
        vec![queued(Kind::BankPayout, crate::outbox::queue::BANK_GATEWAY)]
    );
    bank_paid(&services, &id).await;
    assert_eq!(state_of(&services, &id).await, OutState::PaidToBank);
    assert_eq!(testing::balance(&services, account::BANK).await, opening);
    assert_eq!(testing::transit(&services).await, 0);
    testing::assert_money_conserved(&services, opening).await;
    // Retirees keep their relationship: the payout does not terminate the record.
    let row = testing::person_row(&services, person.certno.expose_unmasked()).await;
    assert_ne!(row.psn_insu_stas, EnrolmentState::Terminated.code());
}

#[tokio::test]
async fn not_connected_without_a_payout_request_the_application_waits_until_the_region_joins() {
    let (services, person, opening) = bureau_with(Flow::NotConnected).await;
    let mut application = with_bank_account(testing::transfer_out_request(&person, 1));
    application.transfer_id = testing::transfer_id(HOHHOT, 1);
    application.payout_requested = false;
    let id = match review(&services, application, Initiator::TransferOut).await {
        Ok(Opened::Accepted(document)) => document.transfer_id.clone(),
        other => panic!("the application should wait, got {other:?}"),
    };
    assert_eq!(state_of(&services, &id).await, OutState::AwaitingConnection);
    assert!(
        testing::queued_for(&services, &id).await.is_empty(),
        "nothing sent"
    );
    assert_eq!(
        testing::transit(&services).await,
        0,
        "the balance stays in the account"
    );
    crate::sweep::sweep_deadlines(&services).await;
    assert_eq!(
        state_of(&services, &id).await,
        OutState::AwaitingConnection,
        "a sweep while the region is not connected changes nothing"
    );
    days_later(&services, 40).await;
    assert_eq!(
        state_of(&services, &id).await,
        OutState::AwaitingConnection,
        "no deadline runs"
    );

    // Zhengzhou joins the platform: the application proceeds as if made today.
    services
        .site
        .connectivity_overrides
        .set(testing::region(ZHENGZHOU), Connectivity::Connected);
    crate::sweep::sweep_deadlines(&services).await;
    let document = testing::document(&services, &id).await;
    assert!(
        matches!(
            document.state,
            TransferState::Out(OutState::InTransit { .. })
        ),
        "{:?}",
        document.state
    );
    assert_eq!(
        document.applied_on,
        services.clock.today(),
        "deadlines count from today"
    );
    assert_eq!(
        testing::queued_for(&services, &id).await,
        vec![queued(Kind::DeliverForm, ZHENGZHOU)]
    );
    assert_eq!(testing::transit(&services).await, opening);
    testing::assert_money_conserved(&services, opening).await;
}

/// Moves the bureau's clock forward by `days` and runs the deadline sweep once.
async fn days_later(services: &Services, days: i64) {
    services
        .clock
        .advance(chrono::TimeDelta::days(days))
        .expect("the test clock moves");
    crate::sweep::sweep_deadlines(services).await;
}

async fn resolve(
    services: &Services,
    transfer_id: &str,
    credit: InCredit,
) -> Result<crate::document::TransferDocument, Error> {
    let id = transfer_id.to_owned();
    let resolution = transfer_out::Resolution {
        operator: "王经办 (A0417)".to_owned(),
        reason: "Lhasa confirmed by phone: not credited, recorded as aborted".to_owned(),
        credit,
    };
    step(services, move |step| {
        transfer_out::resolve(step, &id, &resolution)
    })
    .await
}

// Long because it is one story told in order: the abort refused and retried, its bound, the
// operator's resolution, and the money at each step.
#[tokio::test]
async fn a_refused_abort_is_retried_then_waits_for_an_operator_who_returns_the_balance() {
    let (services, person, opening) = bureau_with(Flow::CrossProvince).await;
    let id = opened(&services, testing::transfer_out_request(&person, 1)).await;
    // Applied Monday 2 March: the whole-process deadline is Monday 23 March.
    days_later(&services, 22).await;
    assert!(matches!(
        state_of(&services, &id).await,
        OutState::Aborting { .. }
    ));

    // The transfer-in bureau refuses the abort (its directory disagrees): retried, not parked.
    let abort = testing::outbox(&services)
        .await
        .into_iter()
        .find(|message| message.transfer_id == id && message.kind == Kind::Abort.as_str())
        .expect("the abort is queued");
    let backoff = yibao_runtime::retry::Backoff::try_new(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(60),
        2.0,
    )
    .expect("valid backoff limits");
    let refused = crate::outbox::transport::Outcome::Park("infcode 1002: not hosted".to_owned());
    crate::outbox::settle::settle(&services, backoff, vec![abort], vec![refused]).await;
    let retried = testing::outbox(&services).await;
    assert_eq!(retried.len(), 1);
    assert!(
        retried[0].next_attempt_at <= services.clock.now() + chrono::TimeDelta::minutes(1),
        "retried with backoff, not parked"
    );

    // Its bound: 5 working days after the deadline, Monday 30 March; overdue from the 31st.
    days_later(&services, 6).await;
    assert!(matches!(
        state_of(&services, &id).await,
        OutState::Aborting { .. }
    ));
    days_later(&services, 1).await;
    assert_eq!(
        state_of(&services, &id).await,
        OutState::NeedsOperator {
            balance: BalanceRoute::MovesWithForm,
            fallback: AbortFallback::ReturnToAccount,
        }
    );
    let parked_from = crate::outbox::queue::parked_from(services.clock.now());
    let parked = testing::read(&services, move |tx| {
        Ok(tx.messages_due_from(parked_from, 10)?)
    })
    .await;
    assert_eq!(parked.len(), 1, "the abort is parked for an operator");
    assert_eq!(
        testing::transit(&services).await,
        opening,
        "still in transit"
    );
    days_later(&services, 60).await;
    assert!(
        matches!(
            state_of(&services, &id).await,
            OutState::NeedsOperator { .. }
        ),
        "no timer moves it"
    );

    let document = resolve(&services, &id, InCredit::NotCredited)
        .await
        .expect("resolved");
    assert_eq!(
        out_state(document.state),
        OutState::Returned(RefusalReason::Aborted)
    );
    let events = testing::events(&services, &id).await;
    let resolved = events.last().expect("history");
    assert_eq!(resolved.kind, "OPERATOR_RESOLVED");
    assert!(
        resolved.detail.contains("王经办 (A0417)"),
        "{}",
        resolved.detail
    );
    assert!(
        resolved.detail.contains("confirmed by phone"),
        "{}",
        resolved.detail
    );
    assert!(testing::queued_for(&services, &id).await.is_empty());
    assert_eq!(testing::transit(&services).await, 0);
    let certno = person.certno.expose_unmasked();
    assert_eq!(testing::person_balance(&services, certno).await, opening);
    testing::assert_money_conserved(&services, opening).await;

    let again = resolve(&services, &id, InCredit::Credited).await;
    assert!(
        matches!(again, Err(Error::FailedPrecondition(_))),
        "only a transfer waiting for an operator: {again:?}"
    );
}

#[tokio::test]
async fn an_operator_told_the_form_was_credited_completes_the_transfer() {
    let (services, person, opening) = bureau_with(Flow::CrossProvince).await;
    let id = opened(&services, testing::transfer_out_request(&person, 1)).await;
    let refused = resolve(&services, &id, InCredit::Credited).await;
    assert!(
        matches!(refused, Err(Error::FailedPrecondition(_))),
        "in transit"
    );
    days_later(&services, 22).await;
    days_later(&services, 8).await;
    assert!(matches!(
        state_of(&services, &id).await,
        OutState::NeedsOperator { .. }
    ));
    resolve(&services, &id, InCredit::Credited)
        .await
        .expect("resolved");
    assert_eq!(state_of(&services, &id).await, OutState::Completed);
    assert_eq!(
        testing::balance(&services, &account::settled(testing::region(LHASA))).await,
        opening
    );
    testing::assert_money_conserved(&services, opening).await;
}

/// A transfer-out bureau whose Hohhot reviews take 3 working days online and 20 at a counter,
/// knowing one cross-province leaver; their opening balance in cents.
async fn reviewing_bureau() -> (Arc<Services>, SyntheticPerson, i64) {
    let directory =
        testing::directory_with_hohhot_policy("review_working_days = { online = 3, counter = 20 }");
    let services = testing::services_with_directory(BureauRole::TransferOut, &directory);
    let person = testing::seed(&services, Flow::CrossProvince, 0).await;
    let opening = i64::try_from(person.balance.cents()).expect("a small balance");
    (services, person, opening)
}

#[tokio::test]
async fn under_review_nothing_moves_before_the_review_day_then_the_form_goes_with_the_balance() {
    let (services, person, opening) = reviewing_bureau().await;
    let id = opened(&services, testing::transfer_out_request(&person, 1)).await;
    // Received Mon 2026-03-02 online: 3 working days, decided Thu 03-05.
    let due_on = chrono::NaiveDate::from_ymd_opt(2026, 3, 5).expect("a day");
    assert_eq!(
        state_of(&services, &id).await,
        OutState::UnderReview { due_on }
    );
    assert!(
        testing::queued_for(&services, &id).await.is_empty(),
        "no form yet"
    );
    assert_eq!(
        testing::transit(&services).await,
        0,
        "nothing left the account"
    );
    let certno = person.certno.expose_unmasked().to_owned();
    assert_eq!(testing::person_balance(&services, &certno).await, opening);

    days_later(&services, 2).await;
    assert_eq!(
        state_of(&services, &id).await,
        OutState::UnderReview { due_on },
        "the day before the review day changes nothing"
    );
    days_later(&services, 1).await;
    assert!(matches!(
        state_of(&services, &id).await,
        OutState::InTransit {
            balance: BalanceRoute::MovesWithForm
        }
    ));
    let queued = testing::queued_for(&services, &id).await;
    let kinds: Vec<&str> = queued.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(
        kinds,
        vec![Kind::DeliverForm.as_str()],
        "the form goes on the review day"
    );
    assert_eq!(
        testing::transit(&services).await,
        opening,
        "the balance goes with the form"
    );
    testing::assert_money_conserved(&services, opening).await;
}

#[tokio::test]
async fn under_review_the_review_day_decides_on_that_days_facts_a_refusal_moves_nothing() {
    let (services, person, opening) = reviewing_bureau().await;
    let mut application = testing::transfer_out_request(&person, 1);
    application.channel = yibao_domain::application::ApplicationChannel::Counter;
    let id = opened(&services, application).await;
    // At a counter: 20 working days from Mon 2026-03-02, past the transfer-out deadline (03-16).
    let due_on = chrono::NaiveDate::from_ymd_opt(2026, 3, 30).expect("a day");
    assert_eq!(
        state_of(&services, &id).await,
        OutState::UnderReview { due_on }
    );
    let events = testing::events(&services, &id).await;
    assert!(
        events[0]
            .detail
            .contains("after the transfer-out deadline 2026-03-16"),
        "{}",
        events[0].detail
    );
    // Meanwhile the person resumes contributing here.
    let certno = person.certno.expose_unmasked().to_owned();
    let mut row = testing::person_row(&services, &certno).await;
    row.psn_insu_stas = EnrolmentState::Normal.code();
    step(&services, move |step| {
        step.tx.update_person(&row).map_err(Error::from)
    })
    .await
    .expect("the person is updated");
    days_later(&services, 28).await;
    assert_eq!(
        state_of(&services, &id).await,
        OutState::Rejected(RefusalReason::NotStoppedAtTransferOut)
    );
    assert!(
        testing::queued_for(&services, &id).await.is_empty(),
        "no form"
    );
    assert_eq!(testing::transit(&services).await, 0);
    assert_eq!(testing::person_balance(&services, &certno).await, opening);
    testing::assert_money_conserved(&services, opening).await;
}

/// A transfer-out bureau whose directory has Hohhot remit balances apart from the form, 3
/// working days after the form's credit (the fund leg); its leaver's opening balance.
async fn remitting_bureau() -> (Arc<Services>, SyntheticPerson, i64) {
    let directory =
        testing::directory_with_hohhot_policy("remittance = { after_working_days = 3 }");
    let services = testing::services_with_directory(BureauRole::TransferOut, &directory);
    let person = testing::seed(&services, Flow::CrossProvince, 0).await;
    let opening = i64::try_from(person.balance.cents()).expect("a small balance");
    (services, person, opening)
}

async fn remittance_answered(
    services: &Services,
    transfer_id: &str,
    check: yibao_domain::remittance::RemittanceCheck,
) {
    let id = transfer_id.to_owned();
    let msgid = testing::document(services, transfer_id)
        .await
        .remittance_msgid
        .expect("a remittance was sent");
    step(services, move |step| {
        transfer_out::remittance_answered(step, &id, &msgid, check, 1)
    })
    .await
    .expect("the remittance's answer applies");
}

/// The transfer-in bureau's ReturnRemittance of the remittance `msgid`; whether the balance is
/// remitted again.
async fn remittance_returned(services: &Services, id: &str, msgid: &str) -> bool {
    let returned = crate::messages::RemittanceReturn {
        addressed: crate::messages::Addressed {
            transfer_id: id.to_owned(),
            out_region: HOHHOT.to_owned(),
            in_region: LHASA.to_owned(),
        },
        remittance_msgid: msgid.to_owned(),
        amount: yibao_domain::money::Money::from_cents(1).expect("an amount"),
        check: yibao_domain::remittance::RemittanceCheck::Short,
    };
    step(services, move |step| {
        transfer_out::remittance_returned(step, &returned)
    })
    .await
    .expect("the return applies")
}

#[tokio::test]
async fn a_returned_remittance_is_sent_again_under_a_new_msgid_and_a_stale_return_changes_nothing()
{
    use yibao_domain::remittance::RemittanceCheck;
    let (services, person, opening) = remitting_bureau().await;
    let id = opened(&services, testing::transfer_out_request(&person, 1)).await;
    form_answered(&services, &id, credit(0)).await;
    days_later(&services, 3).await;
    let first = testing::document(&services, &id)
        .await
        .remittance_msgid
        .expect("sent");
    remittance_answered(&services, &id, RemittanceCheck::Short).await;
    assert_eq!(state_of(&services, &id).await, OutState::RemittanceRefused);
    assert!(
        remittance_returned(&services, &id, &first).await,
        "remitted again"
    );
    assert_eq!(state_of(&services, &id).await, OutState::Remitted);
    let second = testing::document(&services, &id)
        .await
        .remittance_msgid
        .expect("sent");
    assert_ne!(first, second, "a new message");
    let remittances: Vec<_> = testing::outbox(&services)
        .await
        .into_iter()
        .filter(|m| m.kind == Kind::RemitBalance.as_str())
        .collect();
    assert_eq!(remittances.len(), 1, "only the latest remittance is due");
    assert_eq!(remittances[0].msgid, second);
    // The first remittance's return, or its answer, again: nothing changes.
    assert!(!remittance_returned(&services, &id, &first).await);
    let first_again = first.clone();
    let stale = id.clone();
    step(&services, move |step| {
        transfer_out::remittance_answered(step, &stale, &first_again, RemittanceCheck::Short, 2)
    })
    .await
    .expect("a stale answer is ignored");
    assert_eq!(state_of(&services, &id).await, OutState::Remitted);
    remittance_answered(&services, &id, RemittanceCheck::Matches).await;
    assert_eq!(state_of(&services, &id).await, OutState::Completed);
    assert!(
        !remittance_returned(&services, &id, &second).await,
        "settled"
    );
    assert_eq!(testing::transit(&services).await, 0);
    testing::assert_money_conserved(&services, opening).await;
}

#[tokio::test]
async fn an_operator_records_a_remittance_returned_outside_the_platform() {
    use yibao_domain::remittance::RemittanceCheck;
    let (services, person, opening) = remitting_bureau().await;
    let id = opened(&services, testing::transfer_out_request(&person, 1)).await;
    form_answered(&services, &id, credit(0)).await;
    let early = id.clone();
    let refused = step(&services, move |step| {
        transfer_out::remittance_returned_by_operator(step, &early, "clerk 9", "phoned")
    })
    .await;
    assert!(
        matches!(refused, Err(Error::FailedPrecondition(_))),
        "{refused:?}"
    );
    days_later(&services, 3).await;
    let first = testing::document(&services, &id)
        .await
        .remittance_msgid
        .expect("sent");
    remittance_answered(&services, &id, RemittanceCheck::Over).await;
    let credited = id.clone();
    let wrong = step(&services, move |step| {
        let resolution = transfer_out::Resolution {
            operator: "clerk 9".to_owned(),
            reason: "phoned".to_owned(),
            credit: InCredit::NotCredited,
        };
        transfer_out::resolve(step, &credited, &resolution)
    })
    .await;
    assert!(
        matches!(&wrong, Err(Error::FailedPrecondition(why)) if why.contains("REMITTANCE_RETURNED")),
        "the years are credited there: never returned to the account here: {wrong:?}"
    );
    let resolved = id.clone();
    step(&services, move |step| {
        transfer_out::remittance_returned_by_operator(step, &resolved, "clerk 9", "phoned")
    })
    .await
    .expect("recorded");
    assert_eq!(state_of(&services, &id).await, OutState::Remitted);
    assert!(
        !remittance_returned(&services, &id, &first).await,
        "the late message is stale"
    );
    testing::assert_money_conserved(&services, opening).await;
}

#[tokio::test]
async fn remitted_apart_the_balance_waits_in_transit_for_the_remittance_day_and_settles_on_a_match()
{
    use yibao_domain::remittance::RemittanceCheck;
    let (services, person, opening) = remitting_bureau().await;
    let id = opened(&services, testing::transfer_out_request(&person, 1)).await;
    assert_eq!(
        state_of(&services, &id).await,
        OutState::InTransit {
            balance: BalanceRoute::RemittedApart
        }
    );
    assert_eq!(
        testing::transit(&services).await,
        opening,
        "debited with the form"
    );
    // Credited (the years) on Mon 2026-03-02: remitted 3 working days later, Thu 03-05.
    form_answered(&services, &id, credit(0)).await;
    assert_eq!(state_of(&services, &id).await, OutState::RemittanceDue);
    let remit_on = chrono::NaiveDate::from_ymd_opt(2026, 3, 5).expect("a day");
    assert_eq!(
        testing::document(&services, &id).await.remit_on,
        Some(remit_on)
    );
    assert_eq!(
        testing::transit(&services).await,
        opening,
        "nothing settles on the years"
    );
    days_later(&services, 2).await;
    assert_eq!(state_of(&services, &id).await, OutState::RemittanceDue);
    days_later(&services, 1).await;
    assert_eq!(state_of(&services, &id).await, OutState::Remitted);
    let queued = testing::queued_for(&services, &id).await;
    assert!(
        queued.contains(&(Kind::RemitBalance.as_str().to_owned(), LHASA.to_owned())),
        "the remittance goes on its day: {queued:?}"
    );
    remittance_answered(&services, &id, RemittanceCheck::Matches).await;
    assert_eq!(state_of(&services, &id).await, OutState::Completed);
    assert_eq!(testing::transit(&services).await, 0);
    let settled = testing::balance(&services, &account::settled(testing::region(LHASA))).await;
    assert_eq!(settled, opening);
    testing::assert_money_conserved(&services, opening).await;
}

#[tokio::test]
async fn a_remittance_refused_as_short_leaves_the_balance_in_transit_for_an_operator() {
    use yibao_domain::remittance::RemittanceCheck;
    let (services, person, opening) = remitting_bureau().await;
    let id = opened(&services, testing::transfer_out_request(&person, 1)).await;
    form_answered(&services, &id, credit(0)).await;
    days_later(&services, 3).await;
    remittance_answered(&services, &id, RemittanceCheck::Short).await;
    assert_eq!(state_of(&services, &id).await, OutState::RemittanceRefused);
    assert_eq!(
        testing::transit(&services).await,
        opening,
        "nothing settled"
    );
    testing::assert_money_conserved(&services, opening).await;
}
