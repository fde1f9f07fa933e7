//! Unit tests of `transfer_in` on an in-memory store: each step of the transfer-in driver (an
//! application made here and its refusals, the transfer-out bureau's decision, an arriving form
//! credited exactly once, an abort before and after the credit), what it saved, posted and
//! queued.

use std::sync::Arc;

use yibao_domain::classify::{BalanceDisposition, FlowKind};
use yibao_domain::month::{ContributionPeriod, YearMonth};
use yibao_domain::population::{Flow, SyntheticPerson};
use yibao_domain::region::RegionCode;
use yibao_domain::scheme::Scheme;
use yibao_domain::transfer::in_side::{InState, TransferOutView};
use yibao_domain::transfer::out_side::InCredit;
use yibao_domain::transfer::{Initiator, RefusalReason, TransferState};
use yibao_runtime::directory::BureauRole;

use crate::document::TransferDocument;
use crate::error::Error;
use crate::journal::account;
use crate::messages::{Addressed, Answer, Decision, FormOutcome, InsuranceForm, Kind};
use crate::outbox::settle::settle;
use crate::outbox::transport::Outcome;
use crate::services::Services;
use crate::testing::{self, step};
use crate::transfer_in::{self, Application};

const HOHHOT: &str = "150100";
const LHASA: &str = "540100";

/// A transfer-in bureau that knows one person of `flow` (enrolled normally here).
async fn bureau_with(flow: Flow) -> (Arc<Services>, SyntheticPerson) {
    let services = testing::services(BureauRole::TransferIn);
    let person = testing::seed(&services, flow, 0).await;
    (services, person)
}

/// The application from `out_region` instead.
fn from(person: &SyntheticPerson, out_region: RegionCode) -> Application {
    Application {
        out_region,
        ..testing::application_at_transfer_in(person)
    }
}

async fn apply_here(services: &Services, application: Application) -> Result<String, Error> {
    step(services, move |step| {
        transfer_in::apply_here(step, &application)
    })
    .await
    .map(|document| document.transfer_id)
}

async fn applied(services: &Services, person: &SyntheticPerson) -> String {
    apply_here(services, testing::application_at_transfer_in(person))
        .await
        .expect("the application is accepted")
}

/// The form the transfer-out bureau sends for `person`'s transfer `transfer_id`.
fn form(person: &SyntheticPerson, transfer_id: &str, initiator: Initiator) -> InsuranceForm {
    let (out_region, in_region) = person.flow.region_codes();
    InsuranceForm {
        transfer_id: transfer_id.to_owned(),
        certno: person.certno.clone(),
        psn_name: person.name.clone(),
        scheme: Some(person.out_scheme),
        out_region,
        in_region,
        first_insured: person.first_insured.to_string(),
        contribution_months: yibao_domain::month::total_months(&person.periods),
        periods: person.periods.clone(),
        deemed_months: 0,
        balance: person.balance,
        balance_disposition: Some(BalanceDisposition::MoveToAccount),
        flow: Some(FlowKind::CrossProvince),
        initiator,
        issued_at: testing::start(),
        applied_on: Some(testing::day()),
        remittance_follows: false,
    }
}

async fn receive(services: &Services, form: InsuranceForm) -> FormOutcome {
    step(services, move |step| transfer_in::receive_form(step, &form))
        .await
        .expect("the form step runs")
}

/// The abort `person`'s transfer-out bureau sends for `transfer_id`.
fn abort_message(person: &SyntheticPerson, transfer_id: &str) -> Addressed {
    let (out_region, in_region) = person.flow.region_codes();
    Addressed {
        transfer_id: transfer_id.to_owned(),
        out_region: out_region.to_string(),
        in_region: in_region.to_string(),
    }
}

async fn abort(
    services: &Services,
    person: &SyntheticPerson,
    transfer_id: &str,
) -> (InCredit, Option<u64>) {
    let message = abort_message(person, transfer_id);
    let (credit, detail) = step(services, move |step| transfer_in::abort(step, &message))
        .await
        .expect("the abort step runs");
    (credit, detail.map(|credit| credit.amount_cents))
}

async fn state_of(services: &Services, transfer_id: &str) -> InState {
    match testing::document(services, transfer_id).await.state {
        TransferState::In(state) => state,
        TransferState::Out(state) => panic!("a transfer-in document in {state:?}"),
    }
}

fn credited_cents(outcome: FormOutcome) -> u64 {
    match outcome {
        FormOutcome::Credited(credit) => credit.amount_cents,
        FormOutcome::Refused(reason) => panic!("the form should be credited, refused {reason:?}"),
    }
}

async fn open_transfer_of(services: &Services, person: &SyntheticPerson) -> Option<String> {
    let certno = person.certno.expose_unmasked().to_owned();
    testing::read(services, move |tx| Ok(tx.open_transfer_of(&certno)?)).await
}

fn cents(person: &SyntheticPerson) -> i64 {
    i64::try_from(person.balance.cents()).expect("a small balance")
}

#[tokio::test]
async fn an_application_here_opens_the_transfer_and_queues_the_request() {
    let (services, person) = bureau_with(Flow::CrossProvince).await;
    let id = applied(&services, &person).await;
    assert!(id.starts_with(&format!("{LHASA}20260302")), "{id}");
    assert_eq!(state_of(&services, &id).await, InState::Applied);
    let document = testing::document(&services, &id).await;
    assert_eq!(document.initiator, Initiator::TransferIn);
    assert_eq!(document.applied_on, testing::day());
    assert_eq!(
        testing::queued_for(&services, &id).await,
        vec![(
            Kind::RequestTransferOut.as_str().to_owned(),
            HOHHOT.to_owned()
        )]
    );
    assert_eq!(open_transfer_of(&services, &person).await, Some(id.clone()));
    let events = testing::events(&services, &id).await;
    assert_eq!(testing::kinds(&events), vec!["APPLIED"]);
}

#[tokio::test]
async fn an_application_within_one_pooling_region_is_refused_and_writes_nothing() {
    let (services, person) = bureau_with(Flow::CrossProvince).await;
    let result = apply_here(&services, from(&person, testing::region(LHASA))).await;
    assert!(
        matches!(
            result,
            Err(Error::Refused(RefusalReason::SamePoolingRegion))
        ),
        "{result:?}"
    );
    assert!(testing::outbox(&services).await.is_empty());
    assert_eq!(open_transfer_of(&services, &person).await, None);
}

#[tokio::test]
async fn an_application_of_a_person_not_enrolled_here_is_refused() {
    let services = testing::services(BureauRole::TransferIn);
    let stranger = testing::someone(Flow::RefusedNotEnrolled, 0);
    assert!(!testing::seed_if_known(&services, &stranger).await);
    let result = apply_here(&services, testing::application_at_transfer_in(&stranger)).await;
    assert!(
        matches!(
            result,
            Err(Error::Refused(RefusalReason::NotEnrolledAtTransferIn))
        ),
        "{result:?}"
    );
    assert!(testing::outbox(&services).await.is_empty());
}

#[tokio::test]
async fn a_second_application_while_one_is_open_is_refused_naming_the_open_transfer() {
    let (services, person) = bureau_with(Flow::CrossProvince).await;
    let first = applied(&services, &person).await;
    let second = apply_here(&services, testing::application_at_transfer_in(&person)).await;
    match second {
        Err(Error::OpenTransferExists(open)) => assert_eq!(open, first),
        other => panic!("the second application should be refused, got {other:?}"),
    }
    assert_eq!(
        testing::outbox(&services).await.len(),
        1,
        "one request queued"
    );
}

#[tokio::test]
async fn an_origin_missing_from_the_region_directory_is_an_invalid_trafout_admdvs() {
    let (services, person) = bureau_with(Flow::CrossProvince).await;
    // Hangzhou is a real region the shipped directory does not list.
    let result = apply_here(&services, from(&person, testing::region("330100"))).await;
    match result {
        Err(Error::InvalidArgument { field, .. }) => assert_eq!(field, "trafout_admdvs"),
        other => panic!("the origin should be an invalid argument, got {other:?}"),
    }
    assert!(testing::outbox(&services).await.is_empty());
}

#[tokio::test]
async fn an_origin_the_peer_does_not_host_is_refused_as_region_not_hosted() {
    let (services, person) = bureau_with(Flow::CrossProvince).await;
    // Beijing is connected but hosted by neither bureau; Zhengzhou is not connected, which the
    // contract names as such (REGION_NOT_CONNECTED).
    for (origin, reason) in [
        ("110000", RefusalReason::RegionNotHosted),
        ("410100", RefusalReason::RegionNotConnected),
    ] {
        let result = apply_here(&services, from(&person, testing::region(origin))).await;
        assert!(
            matches!(result, Err(Error::Refused(refused)) if refused == reason),
            "from {origin}: {result:?}"
        );
    }
    assert!(testing::outbox(&services).await.is_empty());
    assert_eq!(open_transfer_of(&services, &person).await, None);
}

#[tokio::test]
async fn an_accepted_request_moves_the_transfer_to_requested() {
    let (services, person) = bureau_with(Flow::CrossProvince).await;
    let id = applied(&services, &person).await;
    let decision = Decision::Accepted {
        accepted_at: testing::start(),
        transfer_out_due_on: None,
    };
    let answered = id.clone();
    step(&services, move |step| {
        transfer_in::request_answered(step, &answered, &decision, 1)
    })
    .await
    .expect("the decision applies");
    assert_eq!(state_of(&services, &id).await, InState::Requested);
    let events = testing::events(&services, &id).await;
    assert_eq!(testing::kinds(&events), vec!["APPLIED", "REQUEST_ACCEPTED"]);
    assert_eq!(events[1].attempt, 1);
}

#[tokio::test]
async fn a_refused_request_rejects_the_transfer_and_closes_it() {
    let (services, person) = bureau_with(Flow::CrossProvince).await;
    let id = applied(&services, &person).await;
    let decision = Decision::Refused {
        reason: RefusalReason::Arrears,
        open_transfer: None,
    };
    let answered = id.clone();
    step(&services, move |step| {
        transfer_in::request_answered(step, &answered, &decision, 1)
    })
    .await
    .expect("the decision applies");
    assert_eq!(
        state_of(&services, &id).await,
        InState::Rejected(RefusalReason::Arrears)
    );
    assert_eq!(open_transfer_of(&services, &person).await, None);
    let again = applied(&services, &person).await;
    assert_ne!(again, id, "the person may apply again");
}

#[tokio::test]
async fn a_form_is_credited_exactly_once() {
    let (services, person) = bureau_with(Flow::CrossProvince).await;
    let id = applied(&services, &person).await;
    let months = yibao_domain::month::total_months(&person.periods);
    let first = receive(&services, form(&person, &id, Initiator::TransferIn)).await;
    assert_eq!(credited_cents(first), person.balance.cents());
    assert_eq!(state_of(&services, &id).await, InState::Completed);
    let certno = person.certno.expose_unmasked();
    assert_eq!(
        testing::person_balance(&services, certno).await,
        cents(&person)
    );
    assert_eq!(
        testing::person_row(&services, certno).await.deemed_months,
        months
    );
    let second = receive(&services, form(&person, &id, Initiator::TransferIn)).await;
    // The same credit (its `at` is the answer's time, not the credit's).
    let credit_of = |outcome| match outcome {
        FormOutcome::Credited(credit) => (credit.months, credit.amount_cents),
        FormOutcome::Refused(reason) => panic!("refused {reason:?}"),
    };
    assert_eq!(credit_of(second), credit_of(first), "the same credit again");
    assert_eq!(
        testing::person_balance(&services, certno).await,
        cents(&person),
        "credited once"
    );
    assert_eq!(
        testing::person_row(&services, certno).await.deemed_months,
        months
    );
    let events = testing::events(&services, &id).await;
    assert_eq!(testing::kinds(&events), vec!["APPLIED", "FORM_ARRIVED"]);
    let platform = testing::balance(&services, &account::platform(testing::region(HOHHOT))).await;
    assert_eq!(platform, -cents(&person));
    testing::assert_money_conserved(&services, 0).await;
}

#[tokio::test]
async fn a_form_that_arrives_first_opens_and_credits_a_transfer_started_at_transfer_out() {
    let (services, person) = bureau_with(Flow::CrossProvince).await;
    let id = testing::transfer_id(HOHHOT, 7);
    let outcome = receive(&services, form(&person, &id, Initiator::TransferOut)).await;
    assert_eq!(credited_cents(outcome), person.balance.cents());
    let document = testing::document(&services, &id).await;
    assert_eq!(document.state, TransferState::In(InState::Completed));
    assert_eq!(document.initiator, Initiator::TransferOut);
    assert_eq!(document.form_received_on, Some(testing::day()));
    assert_eq!(document.flow, Some(FlowKind::CrossProvince));
    let certno = person.certno.expose_unmasked();
    assert_eq!(
        testing::person_balance(&services, certno).await,
        cents(&person)
    );
    assert!(
        testing::outbox(&services).await.is_empty(),
        "nothing to send"
    );
    testing::assert_money_conserved(&services, 0).await;
}

#[tokio::test]
async fn a_form_for_a_person_not_enrolled_here_is_refused_and_credits_nothing() {
    let services = testing::services(BureauRole::TransferIn);
    let stranger = testing::someone(Flow::RefusedNotEnrolled, 0);
    assert!(!testing::seed_if_known(&services, &stranger).await);
    let id = testing::transfer_id(HOHHOT, 8);
    let outcome = receive(&services, form(&stranger, &id, Initiator::TransferOut)).await;
    let refused = RefusalReason::NotEnrolledAtTransferIn;
    assert_eq!(outcome, FormOutcome::Refused(refused));
    assert_eq!(state_of(&services, &id).await, InState::Rejected(refused));
    let again = receive(&services, form(&stranger, &id, Initiator::TransferOut)).await;
    assert_eq!(again, outcome, "a repeat gets the same refusal");
    let certno = stranger.certno.expose_unmasked();
    assert_eq!(testing::person_balance(&services, certno).await, 0);
    assert!(
        testing::totals(&services).await.is_empty(),
        "nothing posted"
    );
}

#[tokio::test]
async fn an_abort_before_the_credit_aborts_and_a_late_form_is_refused() {
    let (services, person) = bureau_with(Flow::CrossProvince).await;
    let id = applied(&services, &person).await;
    assert_eq!(
        abort(&services, &person, &id).await,
        (InCredit::NotCredited, None)
    );
    assert_eq!(state_of(&services, &id).await, InState::Aborted);
    assert_eq!(open_transfer_of(&services, &person).await, None);
    let late = receive(&services, form(&person, &id, Initiator::TransferIn)).await;
    assert_eq!(late, FormOutcome::Refused(RefusalReason::Aborted));
    let certno = person.certno.expose_unmasked();
    assert_eq!(testing::person_balance(&services, certno).await, 0);
    assert_eq!(
        abort(&services, &person, &id).await,
        (InCredit::NotCredited, None)
    );
}

#[tokio::test]
async fn an_abort_after_the_credit_answers_credited_with_the_credit() {
    let (services, person) = bureau_with(Flow::CrossProvince).await;
    let id = applied(&services, &person).await;
    receive(&services, form(&person, &id, Initiator::TransferIn)).await;
    let answer = abort(&services, &person, &id).await;
    assert_eq!(
        answer,
        (InCredit::Credited, Some(person.balance.cents())),
        "the abort's answer says what was credited"
    );
    assert_eq!(state_of(&services, &id).await, InState::Completed);
    let certno = person.certno.expose_unmasked();
    assert_eq!(
        testing::person_balance(&services, certno).await,
        cents(&person),
        "the credit stands"
    );
    testing::assert_money_conserved(&services, 0).await;
}

#[tokio::test]
async fn an_abort_of_an_unknown_transfer_is_remembered_so_a_late_form_is_refused() {
    let (services, person) = bureau_with(Flow::CrossProvince).await;
    let id = testing::transfer_id(HOHHOT, 9);
    assert_eq!(
        abort(&services, &person, &id).await,
        (InCredit::NotCredited, None)
    );
    assert_eq!(state_of(&services, &id).await, InState::Aborted);
    let events = testing::events(&services, &id).await;
    assert_eq!(testing::kinds(&events), vec!["ABORT_ARRIVED"]);
    let late = receive(&services, form(&person, &id, Initiator::TransferOut)).await;
    assert_eq!(late, FormOutcome::Refused(RefusalReason::Aborted));
    let certno = person.certno.expose_unmasked();
    assert_eq!(testing::person_balance(&services, certno).await, 0);
    assert_eq!(
        testing::person_row(&services, certno).await.deemed_months,
        0,
        "no months credited"
    );
    assert_eq!(open_transfer_of(&services, &person).await, None);
}

#[tokio::test]
async fn resident_months_are_converted_at_the_transfer_in_rate_when_credited() {
    let (services, person) = bureau_with(Flow::ResidentToEmployee).await;
    let id = testing::transfer_id(HOHHOT, 10);
    let resident_form = InsuranceForm {
        balance: yibao_domain::money::Money::ZERO,
        balance_disposition: Some(BalanceDisposition::NoPersonalAccount),
        flow: Some(FlowKind::ResidentToEmployee),
        ..form(&person, &id, Initiator::TransferOut)
    };
    let months = resident_form.contribution_months;
    receive(&services, resident_form).await;
    // Xi'an counts a resident year as 3 employee months (deploy/regions.toml).
    let expected = yibao_domain::month::convert_resident_months(months, 3);
    assert!(expected < months, "{expected} of {months}");
    let certno = person.certno.expose_unmasked();
    let row = testing::person_row(&services, certno).await;
    assert_eq!(row.deemed_months, expected);
    let document = testing::document(&services, &id).await;
    assert_eq!(document.contribution_months, expected);
}

#[tokio::test]
async fn an_abort_or_a_form_may_not_occupy_an_id_this_bureau_minted_and_does_not_know() {
    let (services, person) = bureau_with(Flow::CrossProvince).await;
    let (_, in_region) = person.flow.region_codes();
    let ours = testing::transfer_id(&in_region.to_string(), 77);
    let message = abort_message(&person, &ours);
    let aborted = step(&services, move |step| transfer_in::abort(step, &message)).await;
    assert!(matches!(aborted, Err(Error::NotFound(_))), "{aborted:?}");
    let late = form(&person, &ours, Initiator::TransferOut);
    let received = step(&services, move |step| {
        transfer_in::receive_form(step, &late)
    })
    .await;
    assert!(matches!(received, Err(Error::NotFound(_))), "{received:?}");
    assert!(
        testing::find_document(&services, &ours).await.is_none(),
        "nothing stored"
    );
}

#[tokio::test]
async fn an_abort_from_another_region_than_the_transfers_is_refused() {
    let (services, person) = bureau_with(Flow::CrossProvince).await;
    let id = applied(&services, &person).await;
    let mut message = abort_message(&person, &id);
    message.out_region = "440100".to_owned();
    let aborted = step(&services, move |step| transfer_in::abort(step, &message)).await;
    assert!(
        matches!(&aborted, Err(Error::InvalidArgument { field, .. }) if field == "envelope.sender_region_code"),
        "{aborted:?}"
    );
    assert_eq!(
        state_of(&services, &id).await,
        InState::Applied,
        "unchanged"
    );
}

/// Moves the bureau's clock forward by `days` and runs the deadline sweep once.
async fn days_later(services: &Services, days: i64) {
    services
        .clock
        .advance(chrono::TimeDelta::days(days))
        .expect("the test clock moves");
    crate::sweep::sweep_deadlines(services).await;
}

/// Settles the transfer's queued query with the transfer-out bureau's answer `view`.
async fn query_answered(services: &Services, transfer_id: &str, view: TransferOutView) {
    let query = testing::outbox(services)
        .await
        .into_iter()
        .find(|message| {
            message.transfer_id == transfer_id && message.kind == Kind::QueryTransferOut.as_str()
        })
        .expect("a query is queued");
    let backoff = yibao_runtime::retry::Backoff::try_new(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(60),
        2.0,
    )
    .expect("valid backoff limits");
    let answer = Outcome::Answered(Answer::TransferOutSays(view));
    settle(services, backoff, vec![query], vec![answer]).await;
}

async fn in_state(services: &Services, transfer_id: &str) -> InState {
    match testing::document(services, transfer_id).await.state {
        TransferState::In(state) => state,
        other => panic!("a transfer-in document in {other:?}"),
    }
}

#[tokio::test]
async fn an_unanswered_request_is_queried_once_overdue_and_ended_when_transfer_out_does_not_know_it()
 {
    let (services, person) = bureau_with(Flow::CrossProvince).await;
    let id = applied(&services, &person).await;
    // Applied Monday 2 March: the transfer-out deadline is Monday 16 March.
    days_later(&services, 14).await;
    assert_eq!(in_state(&services, &id).await, InState::Applied, "not yet");
    days_later(&services, 1).await;
    assert_eq!(in_state(&services, &id).await, InState::Querying);
    let queued: Vec<String> = testing::queued_for(&services, &id)
        .await
        .into_iter()
        .map(|(kind, _)| kind)
        .collect();
    assert_eq!(queued, ["REQUEST_TRANSFER_OUT", "QUERY_TRANSFER_OUT"]);
    days_later(&services, 0).await;
    assert_eq!(
        testing::queued_for(&services, &id).await.len(),
        2,
        "asked once, not at every sweep"
    );

    query_answered(&services, &id, TransferOutView::Unknown).await;
    assert_eq!(
        in_state(&services, &id).await,
        InState::Rejected(RefusalReason::NotKnownAtTransferOut)
    );
    assert!(
        testing::queued_for(&services, &id).await.is_empty(),
        "the unanswered request is withdrawn with the query's answer"
    );
    let events = testing::events(&services, &id).await;
    assert_eq!(
        testing::kinds(&events),
        ["APPLIED", "FORM_OVERDUE", "TRANSFER_OUT_ANSWERED"]
    );
}

#[tokio::test]
async fn an_accepted_transfer_whose_form_never_comes_ends_at_the_deadline_and_refuses_a_late_form()
{
    let (services, person) = bureau_with(Flow::CrossProvince).await;
    let id = applied(&services, &person).await;
    let accepted = Decision::Accepted {
        accepted_at: testing::start(),
        transfer_out_due_on: None,
    };
    let answered = id.clone();
    step(&services, move |step| {
        transfer_in::request_answered(step, &answered, &accepted, 1)
    })
    .await
    .expect("the acceptance applies");
    days_later(&services, 15).await;
    assert_eq!(in_state(&services, &id).await, InState::Querying);
    query_answered(&services, &id, TransferOutView::Open).await;
    assert_eq!(
        in_state(&services, &id).await,
        InState::Querying,
        "still on its way: the bureau waits"
    );
    let events = testing::events(&services, &id).await;
    let last = events.last().expect("history");
    assert_eq!(last.kind, "TRANSFER_OUT_ANSWERED");
    assert!(last.detail.contains("still working"), "{}", last.detail);

    // The whole-process deadline is Monday 23 March.
    days_later(&services, 6).await;
    assert_eq!(in_state(&services, &id).await, InState::Querying);
    days_later(&services, 2).await;
    assert_eq!(
        in_state(&services, &id).await,
        InState::Rejected(RefusalReason::DeadlineExpired)
    );
    assert!(testing::queued_for(&services, &id).await.is_empty());

    // The form arrives after all: refused, so that transfer-out returns the balance.
    let late = receive(&services, form(&person, &id, Initiator::TransferIn)).await;
    assert_eq!(late, FormOutcome::Refused(RefusalReason::DeadlineExpired));
    let certno = person.certno.expose_unmasked();
    assert_eq!(testing::person_balance(&services, certno).await, 0);
    assert_eq!(
        testing::totals(&services)
            .await
            .get(crate::journal::reason::CREDIT),
        None
    );
    let aborted = abort_message(&person, &id);
    let (credit, _) = step(&services, move |step| transfer_in::abort(step, &aborted))
        .await
        .expect("an abort is answered");
    assert_eq!(
        credit,
        InCredit::NotCredited,
        "and an abort hears not credited"
    );
}

#[tokio::test]
async fn a_transfer_credited_by_an_earlier_version_completes_at_its_deadline() {
    let services = testing::services(BureauRole::TransferIn);
    let id = testing::transfer_id(LHASA, 7);
    let stored = id.clone();
    step(&services, move |step| {
        let mut document = crate::document::TransferDocument::opening(
            stored,
            Initiator::TransferIn,
            TransferState::In(InState::Credited),
            testing::day(),
            step.ctx.now,
        );
        step.insert(
            &mut document,
            crate::record::Happening {
                kind: "FORM_ARRIVED",
                from_state: "",
                detail: "credited by an earlier version".to_owned(),
                attempt: 0,
            },
        )
    })
    .await
    .expect("stored");
    days_later(&services, 30).await;
    assert_eq!(in_state(&services, &id).await, InState::Completed);
}

#[tokio::test]
async fn contribution_years_accumulate_a_credit_keeps_every_period_for_the_next_transfer() {
    let (services, person) = bureau_with(Flow::CrossProvince).await;
    let certno = person.certno.expose_unmasked().to_owned();
    let before = testing::person_row(&services, &certno).await;
    let held = crate::persons::periods_of(&before).expect("periods");
    // The person came to Hohhot from Xi'an: 2010-2011 there, brought in by an earlier transfer
    // (twice on the form, overlapping: each month counts once).
    let xian = |from: &str, to: &str| {
        ContributionPeriod::new(
            YearMonth::parse(from).expect("month"),
            YearMonth::parse(to).expect("month"),
            Scheme::Employee,
            testing::region("610100"),
        )
        .expect("a period")
    };
    let mut periods = person.periods.clone();
    periods.extend([xian("201001", "201112"), xian("201101", "201106")]);
    let paid = yibao_domain::month::total_months(&person.periods);
    let id = testing::transfer_id(HOHHOT, 11);
    let chained = InsuranceForm {
        contribution_months: paid + 24,
        deemed_months: 24,
        periods: periods.clone(),
        ..form(&person, &id, Initiator::TransferOut)
    };
    receive(&services, chained).await;
    let document = testing::document(&services, &id).await;
    assert_eq!(
        document.contribution_months,
        paid + 24,
        "paid and deemed months"
    );
    let after = testing::person_row(&services, &certno).await;
    assert_eq!(after.deemed_months, before.deemed_months + paid + 24);
    let kept = crate::persons::periods_of(&after).expect("periods");
    for period in &periods {
        assert!(kept.contains(period), "{period:?} kept for the next form");
    }
    assert_eq!(kept.len(), held.len() + periods.len());
    // The form this record sends on counts its own months and the deemed ones, once each.
    let local = yibao_domain::month::total_months(&held);
    assert_eq!(
        yibao_domain::credit::months_on_record(
            &kept,
            after.deemed_months,
            testing::region(LHASA),
            &yibao_domain::region::Pooling::city_level(),
        ),
        local + before.deemed_months + paid + 24
    );
}

#[tokio::test]
async fn no_one_is_insured_twice_months_the_record_already_holds_are_not_credited() {
    let (services, person) = bureau_with(Flow::CrossProvince).await;
    let certno = person.certno.expose_unmasked().to_owned();
    // The person paid here in 2020 before moving to Hohhot, and the form lists that year too
    // (it came to Hohhot with an earlier transfer): a double record of those months.
    let lhasa = ContributionPeriod::new(
        YearMonth::parse("202001").expect("month"),
        YearMonth::parse("202012").expect("month"),
        Scheme::Employee,
        testing::region(LHASA),
    )
    .expect("a period");
    let mut row = testing::person_row(&services, &certno).await;
    row.periods_json = serde_json::to_string(&[lhasa]).expect("periods encode");
    step(&services, move |step| Ok(step.tx.update_person(&row)?))
        .await
        .expect("the record is updated");
    // The form also lists the months the person paid here (a double record of them).
    let mut periods = person.periods.clone();
    periods.push(lhasa);
    let id = testing::transfer_id(HOHHOT, 12);
    receive(
        &services,
        InsuranceForm {
            periods,
            ..form(&person, &id, Initiator::TransferOut)
        },
    )
    .await;
    let document = testing::document(&services, &id).await;
    assert_eq!(
        document.contribution_months,
        yibao_domain::month::total_months(&person.periods),
        "the months held here are not credited again"
    );
}

#[tokio::test]
async fn the_resident_scheme_has_no_personal_account_a_balance_for_one_is_refused() {
    let (services, person) = bureau_with(Flow::EmployeeToResident).await;
    assert_eq!(person.in_scheme, Scheme::Resident);
    let id = testing::transfer_id(HOHHOT, 13);
    let outcome = receive(&services, form(&person, &id, Initiator::TransferOut)).await;
    assert!(
        matches!(outcome, FormOutcome::Refused(RefusalReason::FormMismatch)),
        "{outcome:?}"
    );
    assert_eq!(
        testing::person_balance(&services, person.certno.expose_unmasked()).await,
        0
    );
    // The years alone move to the resident scheme.
    let id = testing::transfer_id(HOHHOT, 14);
    let years_only = InsuranceForm {
        balance: yibao_domain::money::Money::ZERO,
        balance_disposition: Some(BalanceDisposition::KeptUsableAtOrigin),
        ..form(&person, &id, Initiator::TransferOut)
    };
    assert!(matches!(
        receive(&services, years_only).await,
        FormOutcome::Credited(_)
    ));
}

#[tokio::test]
async fn under_review_at_transfer_out_is_accepted_pending_here_and_a_refusal_on_the_review_day_is_learnt_by_the_query()
 {
    let (services, person) = bureau_with(Flow::CrossProvince).await;
    let id = applied(&services, &person).await;
    let decision = Decision::UnderReview {
        received_at: testing::start(),
        decided_on: chrono::NaiveDate::from_ymd_opt(2026, 3, 5),
        transfer_out_due_on: chrono::NaiveDate::from_ymd_opt(2026, 3, 16),
    };
    let answered = id.clone();
    step(&services, move |step| {
        transfer_in::request_answered(step, &answered, &decision, 1)
    })
    .await
    .expect("the decision applies");
    assert_eq!(
        in_state(&services, &id).await,
        InState::Requested,
        "accepted pending"
    );
    let events = testing::events(&services, &id).await;
    assert!(
        events[1].detail.contains("until 2026-03-05"),
        "{}",
        events[1].detail
    );
    // No new form is expected before the transfer-out deadline: nothing moves until it passes.
    days_later(&services, 14).await;
    assert_eq!(in_state(&services, &id).await, InState::Requested);
    days_later(&services, 1).await;
    assert_eq!(in_state(&services, &id).await, InState::Querying);
    // The review refused on its day: the query's answer ends the transfer here.
    let refused = RefusalReason::NotStoppedAtTransferOut;
    query_answered(&services, &id, TransferOutView::Refused(refused)).await;
    assert_eq!(in_state(&services, &id).await, InState::Rejected(refused));
}

/// A transfer-in bureau whose directory has Hohhot remit balances 3 working days after the form
/// (the fund leg), with one person enrolled here.
async fn bureau_with_remittance() -> (Arc<Services>, SyntheticPerson) {
    let directory =
        testing::directory_with_hohhot_policy("remittance = { after_working_days = 3 }");
    let services = testing::services_with_directory(BureauRole::TransferIn, &directory);
    let person = testing::seed(&services, Flow::CrossProvince, 0).await;
    (services, person)
}

/// The form of `person`'s transfer `transfer_id`, saying its balance is remitted apart.
fn form_remittance_follows(person: &SyntheticPerson, transfer_id: &str) -> InsuranceForm {
    InsuranceForm {
        remittance_follows: true,
        ..form(person, transfer_id, Initiator::TransferIn)
    }
}

/// The remittance of `cents` for `person`'s transfer `transfer_id`, as its transfer-out bureau
/// sends it.
async fn remit(
    services: &Services,
    person: &SyntheticPerson,
    transfer_id: &str,
    cents: u64,
) -> Result<yibao_domain::remittance::RemittanceCheck, Error> {
    remit_as(services, person, transfer_id, cents, REMITTANCE_MSGID).await
}

/// The msgid `remit` sends under.
const REMITTANCE_MSGID: &str = "B15010000001202603021000000001";

/// As [`remit`], under `msgid`.
async fn remit_as(
    services: &Services,
    person: &SyntheticPerson,
    transfer_id: &str,
    cents: u64,
    msgid: &str,
) -> Result<yibao_domain::remittance::RemittanceCheck, Error> {
    let remittance = crate::messages::Remittance {
        addressed: abort_message(person, transfer_id),
        amount: yibao_domain::money::Money::from_cents(cents).expect("an amount"),
        remitted_at: testing::start(),
        msgid: msgid.to_owned(),
    };
    step(services, move |step| {
        transfer_in::receive_remittance(step, &remittance)
    })
    .await
}

#[tokio::test]
async fn the_years_are_credited_at_once_and_the_balance_only_when_the_remittance_matches() {
    use yibao_domain::remittance::RemittanceCheck;
    let (services, person) = bureau_with_remittance().await;
    let id = applied(&services, &person).await;
    let certno = person.certno.expose_unmasked();
    let months = yibao_domain::month::total_months(&person.periods);
    let answer = receive(&services, form_remittance_follows(&person, &id)).await;
    assert_eq!(
        credited_cents(answer),
        0,
        "the form's answer credits no money"
    );
    assert_eq!(state_of(&services, &id).await, InState::AwaitingFunds);
    assert_eq!(
        testing::person_row(&services, certno).await.deemed_months,
        months,
        "the years at once"
    );
    assert_eq!(testing::person_balance(&services, certno).await, 0);
    assert!(
        testing::document(&services, &id)
            .await
            .remittance_due_on
            .is_some()
    );
    let matched = remit(&services, &person, &id, person.balance.cents()).await;
    assert_eq!(
        matched.expect("the remittance step runs"),
        RemittanceCheck::Matches
    );
    assert_eq!(state_of(&services, &id).await, InState::Completed);
    assert_eq!(
        testing::person_balance(&services, certno).await,
        cents(&person)
    );
    let again = remit(&services, &person, &id, person.balance.cents()).await;
    assert_eq!(again.expect("answered"), RemittanceCheck::Matches);
    assert_eq!(
        testing::person_balance(&services, certno).await,
        cents(&person),
        "credited once"
    );
    let events = testing::events(&services, &id).await;
    assert_eq!(
        testing::kinds(&events),
        vec!["APPLIED", "FORM_ARRIVED", "REMITTANCE_ARRIVED"]
    );
    testing::assert_money_conserved(&services, 0).await;
}

#[tokio::test]
async fn a_short_remittance_is_refused_credits_nothing_and_is_held_in_suspense() {
    use yibao_domain::remittance::RemittanceCheck;
    use yibao_domain::transfer::in_side::FundsProblem;
    let (services, person) = bureau_with_remittance().await;
    let id = applied(&services, &person).await;
    receive(&services, form_remittance_follows(&person, &id)).await;
    let short = person.balance.cents() - 1;
    let check = remit(&services, &person, &id, short).await;
    assert_eq!(
        check.expect("the remittance step runs"),
        RemittanceCheck::Short
    );
    assert_eq!(
        state_of(&services, &id).await,
        InState::FundsHeld(FundsProblem::Short)
    );
    let certno = person.certno.expose_unmasked();
    assert_eq!(
        testing::person_balance(&services, certno).await,
        0,
        "nothing credited"
    );
    let hohhot = testing::region(HOHHOT);
    let held = testing::balance(&services, &account::suspense(hohhot)).await;
    assert_eq!(held, i64::try_from(short).expect("small"));
    testing::assert_money_conserved(&services, 0).await;
}

/// An operator's return of held money, at this bureau.
async fn return_held(services: &Services, transfer_id: &str) -> Result<TransferDocument, Error> {
    let id = transfer_id.to_owned();
    step(services, move |step| {
        let returning = transfer_in::Returning {
            operator: "clerk 7".to_owned(),
            reason: "agreed with Hohhot's fund office by phone".to_owned(),
        };
        transfer_in::return_held_remittance(step, &id, &returning)
    })
    .await
}

#[tokio::test]
async fn an_operator_returns_a_short_remittance_whole_and_the_corrected_one_is_credited_once() {
    use yibao_domain::remittance::RemittanceCheck;
    let (services, person) = bureau_with_remittance().await;
    let id = applied(&services, &person).await;
    receive(&services, form_remittance_follows(&person, &id)).await;
    let short = person.balance.cents() - 1;
    remit(&services, &person, &id, short).await.expect("held");
    let hohhot = testing::region(HOHHOT);
    let returned = return_held(&services, &id).await.expect("returned");
    assert_eq!(returned.state, TransferState::In(InState::AwaitingFunds));
    assert_eq!(returned.held_cents, 0);
    assert!(returned.remittance_due_on.is_some(), "a new deadline");
    assert_eq!(
        testing::balance(&services, &account::suspense(hohhot)).await,
        0,
        "nothing held after the return"
    );
    let queued = testing::queued_for(&services, &id).await;
    assert!(
        queued.contains(&(
            Kind::ReturnRemittance.as_str().to_owned(),
            HOHHOT.to_owned()
        )),
        "the transfer-out bureau is told: {queued:?}"
    );
    let outbox = testing::outbox(&services).await;
    let message = outbox
        .iter()
        .find(|m| m.kind == Kind::ReturnRemittance.as_str())
        .expect("queued");
    assert!(
        message
            .payload
            .windows(REMITTANCE_MSGID.len())
            .any(|window| window == REMITTANCE_MSGID.as_bytes()),
        "the return names the remittance it returns"
    );
    // A second return finds nothing held: refused, nothing moves twice.
    let again = return_held(&services, &id).await;
    assert!(
        matches!(&again, Err(Error::FailedPrecondition(why)) if why.contains("holds no remittance")),
        "{again:?}"
    );
    // The corrected remittance, under a new msgid, matches and is credited once.
    let corrected = "B15010000001202603021000000002";
    let check = remit_as(&services, &person, &id, person.balance.cents(), corrected).await;
    assert_eq!(check.expect("checked"), RemittanceCheck::Matches);
    assert_eq!(state_of(&services, &id).await, InState::Completed);
    let certno = person.certno.expose_unmasked();
    assert_eq!(
        testing::person_balance(&services, certno).await,
        cents(&person)
    );
    testing::assert_money_conserved(&services, 0).await;
}

#[tokio::test]
async fn a_matching_remittance_while_money_is_held_completes_and_returns_the_held_money() {
    let (services, person) = bureau_with_remittance().await;
    let id = applied(&services, &person).await;
    receive(&services, form_remittance_follows(&person, &id)).await;
    let over = person.balance.cents() + 500;
    remit(&services, &person, &id, over).await.expect("held");
    let corrected = "B15010000001202603021000000002";
    remit_as(&services, &person, &id, person.balance.cents(), corrected)
        .await
        .expect("credited");
    assert_eq!(state_of(&services, &id).await, InState::Completed);
    let hohhot = testing::region(HOHHOT);
    assert_eq!(
        testing::balance(&services, &account::suspense(hohhot)).await,
        0,
        "no transfer ends holding money"
    );
    let queued = testing::queued_for(&services, &id).await;
    assert!(
        queued.contains(&(
            Kind::ReturnRemittance.as_str().to_owned(),
            HOHHOT.to_owned()
        )),
        "{queued:?}"
    );
    let overdue_only = applied_other(&services).await;
    let refused = return_held(&services, &overdue_only.0).await;
    assert!(
        matches!(refused, Err(Error::FailedPrecondition(_))),
        "{refused:?}"
    );
    testing::assert_money_conserved(&services, 0).await;
}

#[tokio::test]
async fn a_remittance_for_a_form_credited_with_its_balance_is_out_of_order() {
    let (services, person) = bureau_with_remittance().await;
    let id = applied(&services, &person).await;
    receive(&services, form(&person, &id, Initiator::TransferIn)).await;
    let credited = remit(&services, &person, &id, 1).await;
    assert!(
        credited.is_err(),
        "the balance came with the form: {credited:?}"
    );
    let other = applied_other(&services).await;
    let refused = remit(&services, &person, &other.0, 1).await;
    assert!(refused.is_err(), "no form awaits funds: {refused:?}");
    testing::assert_money_conserved(&services, 0).await;
}

/// A second person's transfer, applied for here, with no form yet.
async fn applied_other(services: &Arc<Services>) -> (String, SyntheticPerson) {
    let other = testing::seed(services, Flow::CrossProvince, 1).await;
    (applied(services, &other).await, other)
}

#[tokio::test]
async fn a_missing_remittance_is_flagged_at_its_deadline_and_a_late_match_still_completes() {
    use yibao_domain::transfer::in_side::FundsProblem;
    let (services, person) = bureau_with_remittance().await;
    let id = applied(&services, &person).await;
    receive(&services, form_remittance_follows(&person, &id)).await;
    let due_on = testing::document(&services, &id)
        .await
        .remittance_due_on
        .expect("a remittance deadline");
    let days_to_deadline = (due_on - services.clock.today()).num_days();
    days_later(&services, days_to_deadline).await;
    assert_eq!(
        state_of(&services, &id).await,
        InState::AwaitingFunds,
        "on time on the day"
    );
    days_later(&services, 1).await;
    assert_eq!(
        state_of(&services, &id).await,
        InState::FundsHeld(FundsProblem::Overdue)
    );
    let late = remit(&services, &person, &id, person.balance.cents()).await;
    assert!(late.is_ok());
    assert_eq!(state_of(&services, &id).await, InState::Completed);
    testing::assert_money_conserved(&services, 0).await;
}
