//! Fault rules, black-box: rules added through the admin API make the pair lose answers,
//! deliver twice, answer errors and fail the bank, and the handshake still ends every transfer
//! exactly once — each fault counted by its rule and noted in the transfer's history, the
//! ledger exact to the cent.

use yibao_domain::population::Flow;
use yibao_proto::admin::v1::{
    AddFaultRuleRequest, ClearFaultRulesRequest, FaultDirection, FaultKind, FaultRule,
    GetMessageJournalRequest, ListFaultRulesRequest,
};
use yibao_proto::bureau::v1::Transfer;
use yibao_proto::common::v1::TransferState;
use yibao_tests::*;

fn has_event(transfer: &Transfer, kind: &str) -> bool {
    transfer.history.iter().any(|event| event.kind == kind)
}

async fn add(pair: &Pair, side: Side, rule: FaultRule) -> FaultRule {
    pair.admin(side)
        .add_fault_rule(AddFaultRuleRequest { rule: Some(rule) })
        .await
        .expect("the rule is added")
        .into_inner()
        .rule
        .expect("the rule comes back")
}

async fn injected(pair: &Pair, side: Side, rule_id: &str) -> u64 {
    pair.admin(side)
        .list_fault_rules(ListFaultRulesRequest {})
        .await
        .expect("listed")
        .into_inner()
        .rules
        .iter()
        .find(|rule| rule.rule_id == rule_id)
        .map_or(0, |rule| rule.injected)
}

fn rule(fault: FaultKind, direction: FaultDirection, kind: &str) -> FaultRule {
    FaultRule {
        label: "fault-rules-test".to_owned(),
        direction: direction as i32,
        message_kind: kind.to_owned(),
        fault: fault as i32,
        ..FaultRule::default()
    }
}

async fn completes(pair: &Pair, side: Side, id: &str) -> Transfer {
    pair.wait_for_state(side, id, TransferState::Completed, DEADLINE)
        .await
        .expect("the transfer completes")
}

#[tokio::test]
async fn a_lost_answer_and_a_second_delivery_credit_once() {
    let pair = seeded_pair().await;
    let people = pair.persons(Flow::CrossProvince, 2).expect("people");
    // transfer-in applies the first form and loses its answer: transfer-out must send it again.
    let lose = rule(
        FaultKind::LoseAnswer,
        FaultDirection::Receiving,
        "DELIVER_FORM",
    );
    let lose = add(
        &pair,
        Side::In,
        FaultRule {
            first_attempts: 1,
            ..lose
        },
    )
    .await;
    let first = pair.apply(&people[0]).await.expect("applied");
    let done = completes(&pair, Side::In, &first.transfer_id).await;
    assert!(has_event(&done, "FAULT_INJECTED"), "noted in the history");
    assert_eq!(injected(&pair, Side::In, &lose.rule_id).await, 1);
    completes(&pair, Side::Out, &first.transfer_id).await;
    // The message journals show the exchange: the form received twice at transfer-in (its
    // first answer lost), sent twice by transfer-out (first a retry, then answered).
    let journal = |side| {
        let mut admin = pair.admin(side);
        let id = first.transfer_id.clone();
        async move {
            admin
                .get_message_journal(GetMessageJournalRequest { transfer_id: id })
                .await
                .expect("the journal answers")
                .into_inner()
                .entries
        }
    };
    let received: Vec<_> = journal(Side::In)
        .await
        .into_iter()
        .filter(|entry| entry.kind == "DELIVER_FORM")
        .collect();
    assert!(received.len() >= 2, "{received:?}");
    assert!(received[0].fault.contains("LoseAnswer"), "{received:?}");
    assert!(received.iter().any(|entry| entry.outcome == "infcode 0"));
    let sent: Vec<_> = journal(Side::Out)
        .await
        .into_iter()
        .filter(|entry| entry.kind == "DELIVER_FORM")
        .collect();
    assert!(
        sent.first()
            .is_some_and(|entry| entry.outcome.starts_with("retry")),
        "{sent:?}"
    );
    assert!(
        sent.last().is_some_and(|entry| entry.outcome == "answered"),
        "{sent:?}"
    );
    // Both attempts reached the peer, each timed by transfer-out; a received message has none.
    assert!(
        sent.iter().all(|entry| entry.round_trip.is_some()),
        "{sent:?}"
    );
    assert!(received.iter().all(|entry| entry.round_trip.is_none()));

    // transfer-out delivers the next form twice: the second is answered as the first.
    pair.admin(Side::In)
        .clear_fault_rules(ClearFaultRulesRequest {
            label: "fault-rules-test".to_owned(),
        })
        .await
        .expect("cleared");
    let twice = add(
        &pair,
        Side::Out,
        rule(FaultKind::DeliverTwice, FaultDirection::Sending, "9102"),
    )
    .await;
    assert_eq!(
        twice.message_kind, "DELIVER_FORM",
        "the infno names the kind"
    );
    let second = pair.apply(&people[1]).await.expect("applied");
    completes(&pair, Side::In, &second.transfer_id).await;
    completes(&pair, Side::Out, &second.transfer_id).await;
    assert!(injected(&pair, Side::Out, &twice.rule_id).await >= 1);

    let credited = cents(&totals(pair.in_endpoint()).await.credited_total);
    let balances: u64 = people.iter().map(|person| person.balance.cents()).sum();
    assert_eq!(credited, balances, "each balance credited exactly once");
    assert_conserved(&pair).await;
}

#[tokio::test]
async fn errors_on_the_first_attempts_and_a_failing_bank_are_retried_through() {
    let pair = seeded_pair().await;
    // The first two deliveries of each request answer UNAVAILABLE.
    let unavailable = FaultRule {
        grpc_code: tonic::Code::Unavailable as i32,
        message: "injected".to_owned(),
        first_attempts: 2,
        ..rule(
            FaultKind::Status,
            FaultDirection::Receiving,
            "REQUEST_TRANSFER_OUT",
        )
    };
    let unavailable = add(&pair, Side::Out, unavailable).await;
    let who = someone(Flow::CrossProvince);
    let applied = pair.apply(&who).await.expect("applied");
    completes(&pair, Side::In, &applied.transfer_id).await;
    assert_eq!(injected(&pair, Side::Out, &unavailable.rule_id).await, 2);

    // The bank gateway fails the first two payouts of each transfer.
    let bank = FaultRule {
        first_attempts: 2,
        ..rule(FaultKind::BankFail, FaultDirection::Sending, "")
    };
    let bank = add(&pair, Side::Out, bank).await;
    let payee = someone(Flow::NotConnected);
    let applied = pair.apply(&payee).await.expect("applied");
    let paid = pair
        .wait_for_state(
            Side::Out,
            &applied.transfer_id,
            TransferState::PaidToBank,
            DEADLINE,
        )
        .await
        .expect("paid after the failures");
    assert!(has_event(&paid, "FAULT_INJECTED"));
    assert_eq!(injected(&pair, Side::Out, &bank.rule_id).await, 2);
    let out = totals(pair.out_endpoint()).await;
    assert_eq!(
        cents(&out.paid_to_bank_total),
        payee.balance.cents(),
        "paid once"
    );
    assert_conserved(&pair).await;
}

#[tokio::test]
async fn a_rule_that_breaks_its_own_rules_is_refused_naming_the_field() {
    let pair = seeded_pair().await;
    let status = pair
        .admin(Side::In)
        .add_fault_rule(AddFaultRuleRequest {
            rule: Some(rule(FaultKind::Status, FaultDirection::Receiving, "")),
        })
        .await
        .expect_err("no gRPC code");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("grpc_code"),
        "{}",
        status.message()
    );
    let rules = pair
        .admin(Side::In)
        .list_fault_rules(ListFaultRulesRequest {})
        .await
        .expect("listed")
        .into_inner()
        .rules;
    assert!(rules.is_empty(), "nothing added");
}
