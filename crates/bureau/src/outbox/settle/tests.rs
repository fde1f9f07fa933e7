//! Unit tests of `outbox/settle` on an in-memory store: a message without a usable answer is
//! rescheduled with backoff (its attempt counted, the history noting attempts 1, 2, 4, …) or
//! parked; an answered one is acknowledged in the step where its side's driver applies the
//! answer; an answer that cannot be applied is retried and changes nothing.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use yibao_domain::application::BankAccount;

use yibao_domain::population::{Flow, SyntheticPerson};
use yibao_domain::transfer::in_side::InState;
use yibao_domain::transfer::out_side::{BalanceRoute, OutState};
use yibao_domain::transfer::{Initiator, TransferState};
use yibao_runtime::directory::BureauRole;
use yibao_runtime::retry::Backoff;
use yibao_store::OutboxMessage;

use crate::messages::{Answer, Credit, Decision, FormOutcome, Kind, TransferApplication};
use crate::outbox::settle::settle;
use crate::outbox::transport::Outcome;
use crate::services::Services;
use crate::testing::{self, step};
use crate::transfer_in;
use crate::transfer_out::{self, Opened};

fn backoff() -> Backoff {
    Backoff::try_new(Duration::from_secs(1), Duration::from_secs(60), 2.0)
        .expect("valid backoff limits")
}

/// A transfer-out bureau with one open transfer of `flow` (the `n`-th person of it), applied
/// where that flow applies; the transfer's id and the person.
async fn transfer_out_with(
    services: &Arc<Services>,
    flow: Flow,
    n: u64,
) -> (String, SyntheticPerson) {
    let person = testing::seed(services, flow, n).await;
    let (out_region, in_region) = flow.region_codes();
    let sequence = u32::try_from(n).expect("a small n") + 1;
    let (transfer_id, initiator) = match flow {
        Flow::NotConnected => (
            testing::transfer_id(&out_region.to_string(), sequence),
            Initiator::TransferOut,
        ),
        _ => (
            testing::transfer_id(&in_region.to_string(), sequence),
            Initiator::TransferIn,
        ),
    };
    let application = TransferApplication {
        transfer_id,
        bank_account: Some(
            BankAccount::new("ICBC", "6222000011112222333", "张三").expect("a valid account"),
        ),
        ..testing::transfer_out_request(&person, sequence)
    };
    let opened = step(services, move |step| {
        transfer_out::review_and_open(step, &application, initiator)
    })
    .await;
    match opened {
        Ok(Opened::Accepted(document)) => (document.transfer_id.clone(), person),
        other => panic!("the transfer should open, got {other:?}"),
    }
}

/// The one message queued about `transfer_id`.
async fn message_of(services: &Services, transfer_id: &str) -> OutboxMessage {
    let mut messages: Vec<_> = testing::outbox(services)
        .await
        .into_iter()
        .filter(|message| message.transfer_id == transfer_id)
        .collect();
    assert_eq!(messages.len(), 1, "one message queued for {transfer_id}");
    messages.remove(0)
}

async fn settle_one(services: &Services, message: OutboxMessage, outcome: Outcome) {
    settle(services, backoff(), vec![message], vec![outcome]).await;
}

fn credited() -> Answer {
    Answer::FormAnswered(FormOutcome::Credited(Credit {
        months: 60,
        amount_cents: 1,
        at: testing::start(),
    }))
}

fn noted(events: &[yibao_store::EventRow], kind: &str) -> Vec<u32> {
    events
        .iter()
        .filter(|event| event.kind == kind)
        .map(|event| event.attempt)
        .collect()
}

const IN_TRANSIT: TransferState = TransferState::Out(OutState::InTransit {
    balance: BalanceRoute::MovesWithForm,
});

#[tokio::test]
async fn a_retried_message_counts_the_attempt_and_is_rescheduled_within_its_backoff() {
    let services = testing::services(BureauRole::TransferOut);
    let (id, _) = transfer_out_with(&services, Flow::CrossProvince, 0).await;
    let before = services.clock.now();
    let message = message_of(&services, &id).await;
    let outcome = Outcome::Retry("UNAVAILABLE: the peer is down".to_owned());
    settle_one(&services, message, outcome).await;
    let after = services.clock.now();
    let message = message_of(&services, &id).await;
    assert_eq!(message.attempts, 1);
    assert_eq!(
        message.last_error.as_deref(),
        Some("UNAVAILABLE: the peer is down")
    );
    let ceiling = TimeDelta::from_std(backoff().ceiling(1)).expect("a short ceiling");
    assert!(
        message.next_attempt_at >= before && message.next_attempt_at <= after + ceiling,
        "rescheduled within the backoff: {message:?}"
    );
    let events = testing::events(&services, &id).await;
    assert_eq!(noted(&events, "DELIVERY_RETRY"), vec![1]);
    assert_eq!(testing::document(&services, &id).await.state, IN_TRANSIT);
}

#[tokio::test]
async fn the_history_notes_retries_on_attempts_one_two_four_only() {
    let services = testing::services(BureauRole::TransferOut);
    let (id, _) = transfer_out_with(&services, Flow::CrossProvince, 0).await;
    for _ in 0..5 {
        let message = message_of(&services, &id).await;
        settle_one(&services, message, Outcome::Retry("UNAVAILABLE".to_owned())).await;
    }
    assert_eq!(
        message_of(&services, &id).await.attempts,
        5,
        "every attempt counted"
    );
    let events = testing::events(&services, &id).await;
    assert_eq!(noted(&events, "DELIVERY_RETRY"), vec![1, 2, 4]);
    let retry = events
        .iter()
        .find(|event| event.kind == "DELIVERY_RETRY")
        .expect("a retry is noted");
    assert_eq!(
        (retry.from_state.as_str(), retry.to_state.as_str()),
        ("IN_TRANSIT", "IN_TRANSIT")
    );
    assert!(
        retry.detail.contains(Kind::DeliverForm.as_str()),
        "{}",
        retry.detail
    );
}

#[tokio::test]
async fn a_parked_message_is_noted_and_not_due_again() {
    let services = testing::services(BureauRole::TransferOut);
    let (id, _) = transfer_out_with(&services, Flow::CrossProvince, 0).await;
    let message = message_of(&services, &id).await;
    let outcome = Outcome::Park("infcode -1: malformed message".to_owned());
    settle_one(&services, message, outcome).await;
    assert!(
        testing::due_now(&services).await.is_empty(),
        "not sent again"
    );
    let parked = message_of(&services, &id).await;
    assert_eq!(parked.attempts, 1);
    assert!(
        parked.next_attempt_at > services.clock.now() + TimeDelta::days(365),
        "parked beyond any statutory deadline: {parked:?}"
    );
    let events = testing::events(&services, &id).await;
    assert_eq!(noted(&events, "DELIVERY_PARKED"), vec![1]);
    assert!(noted(&events, "DELIVERY_RETRY").is_empty());
    assert_eq!(testing::document(&services, &id).await.state, IN_TRANSIT);
}

#[tokio::test]
async fn an_answered_form_is_acknowledged_and_completes_the_transfer() {
    let services = testing::services(BureauRole::TransferOut);
    let (id, person) = transfer_out_with(&services, Flow::CrossProvince, 0).await;
    let message = message_of(&services, &id).await;
    settle_one(&services, message, Outcome::Answered(credited())).await;
    assert!(testing::outbox(&services).await.is_empty(), "acknowledged");
    let document = testing::document(&services, &id).await;
    assert_eq!(document.state, TransferState::Out(OutState::Completed));
    let events = testing::events(&services, &id).await;
    assert_eq!(
        noted(&events, "FORM_CREDITED"),
        vec![1],
        "attempt 1 answered"
    );
    assert_eq!(testing::transit(&services).await, 0);
    let opening = i64::try_from(person.balance.cents()).expect("a small balance");
    testing::assert_money_conserved(&services, opening).await;
}

#[tokio::test]
async fn an_answered_request_is_acknowledged_and_moves_the_transfer_in_to_requested() {
    let services = testing::services(BureauRole::TransferIn);
    let person = testing::seed(&services, Flow::CrossProvince, 0).await;
    let application = testing::application_at_transfer_in(&person);
    let id = step(&services, move |step| {
        transfer_in::apply_here(step, &application)
    })
    .await
    .expect("the application is accepted")
    .transfer_id;
    let message = message_of(&services, &id).await;
    let decision = Decision::Accepted {
        accepted_at: testing::start(),
        transfer_out_due_on: None,
    };
    settle_one(
        &services,
        message,
        Outcome::Answered(Answer::Decided(decision)),
    )
    .await;
    assert!(testing::outbox(&services).await.is_empty(), "acknowledged");
    let document = testing::document(&services, &id).await;
    assert_eq!(document.state, TransferState::In(InState::Requested));
}

#[tokio::test]
async fn an_answered_bank_payout_records_the_payment_and_pays_out() {
    let services = testing::services(BureauRole::TransferOut);
    let (id, person) = transfer_out_with(&services, Flow::NotConnected, 0).await;
    let message = message_of(&services, &id).await;
    assert_eq!(message.kind, Kind::BankPayout.as_str());
    settle_one(&services, message, Outcome::Answered(Answer::BankPaid)).await;
    assert!(testing::outbox(&services).await.is_empty(), "acknowledged");
    let document = testing::document(&services, &id).await;
    assert_eq!(document.state, TransferState::Out(OutState::PaidToBank));
    let key = format!("bank-paid:{id}");
    let recorded = testing::read(&services, move |tx| Ok(tx.setting(&key)?)).await;
    assert!(recorded.is_some(), "the payment is recorded");
    let opening = i64::try_from(person.balance.cents()).expect("a small balance");
    let bank = testing::balance(&services, crate::journal::account::BANK).await;
    assert_eq!(bank, opening);
    testing::assert_money_conserved(&services, opening).await;
}

#[tokio::test]
async fn an_answer_that_cannot_be_applied_is_retried_and_changes_nothing() {
    let services = testing::services(BureauRole::TransferOut);
    let (id, person) = transfer_out_with(&services, Flow::CrossProvince, 0).await;
    let message = message_of(&services, &id).await;
    // A bank's confirmation for a transfer whose form is in transit: an illegal event.
    settle_one(&services, message, Outcome::Answered(Answer::BankPaid)).await;
    let kept = message_of(&services, &id).await;
    assert_eq!(kept.attempts, 1, "rescheduled as a failed attempt");
    assert_eq!(
        kept.last_error.as_deref(),
        Some("the answer could not be applied")
    );
    assert_eq!(testing::document(&services, &id).await.state, IN_TRANSIT);
    let key = format!("bank-paid:{id}");
    let recorded = testing::read(&services, move |tx| Ok(tx.setting(&key)?)).await;
    assert_eq!(recorded, None, "the failed step kept nothing");
    let opening = i64::try_from(person.balance.cents()).expect("a small balance");
    assert_eq!(testing::transit(&services).await, opening);
    testing::assert_money_conserved(&services, opening).await;
}

#[tokio::test]
async fn each_message_of_a_batch_is_settled_on_its_own() {
    let services = testing::services(BureauRole::TransferOut);
    let (first, _) = transfer_out_with(&services, Flow::CrossProvince, 0).await;
    let (second, _) = transfer_out_with(&services, Flow::CrossProvince, 1).await;
    let batch = vec![
        message_of(&services, &first).await,
        message_of(&services, &second).await,
    ];
    let outcomes = vec![
        Outcome::Answered(credited()),
        Outcome::Retry("UNAVAILABLE".to_owned()),
    ];
    settle(&services, backoff(), batch, outcomes).await;
    let first_state = testing::document(&services, &first).await.state;
    assert_eq!(first_state, TransferState::Out(OutState::Completed));
    assert_eq!(testing::queued_for(&services, &first).await, vec![]);
    assert_eq!(message_of(&services, &second).await.attempts, 1);
    assert_eq!(
        testing::document(&services, &second).await.state,
        IN_TRANSIT
    );
}

#[test]
fn a_retry_waits_the_same_jitter_for_the_same_message_and_attempt() {
    let backoff = yibao_runtime::retry::Backoff::try_new(
        std::time::Duration::from_millis(50),
        std::time::Duration::from_secs(10),
        2.0,
    )
    .expect("valid limits");
    let delay = |msgid: &str, attempt: u32| {
        backoff.delay(attempt, &mut super::jitter_source(msgid, attempt))
    };
    let msgid = "B15010000001202603100930050001";
    assert_eq!(delay(msgid, 3), delay(msgid, 3), "replayed, the same wait");
    let others: Vec<_> = (0..8)
        .map(|n| delay(&format!("B1501000000120260310093005000{n}"), 3))
        .collect();
    assert!(
        others.windows(2).any(|pair| pair[0] != pair[1]),
        "messages that failed together spread out: {others:?}"
    );
}
