//! The fund leg (划转), black-box: with a remittance policy on Hohhot (3 working days after the
//! form), a transfer from Hohhot to Lhasa credits the years when the form is accepted and waits
//! AWAITING_FUNDS at transfer-in with no money credited and the balance still in transit at
//! transfer-out; once both test clocks pass the remittance day the remittance goes, matches the
//! form to the cent, and the transfer completes at both bureaus, the ledger exact.
//!
//! A short remittance (a transfer-out bureau started with the test-only
//! `YIBAO_BROKEN_FOR_TESTS=remit-short`, whose first remittance of a transfer is a cent short)
//! is refused and held at transfer-in; its operator returns the money (ResolveTransfer
//! RETURN_REMITTANCE), ReturnRemittance (9107) reaches transfer-out, which remits again, and the
//! transfer completes at both, suspense back at zero, every repeated message and call changing
//! nothing.

use std::time::Duration;

use yibao_domain::population::Flow;
use yibao_proto::admin::v1::{
    AddFaultRuleRequest, FaultDirection, FaultKind, FaultRule, ListFaultRulesRequest,
    ResolveOutcome, ResolveTransferRequest,
};
use yibao_proto::common::v1::TransferState;
use yibao_tests::*;

#[tokio::test]
async fn the_years_are_credited_with_the_form_and_the_balance_when_the_remittance_matches() {
    let regions = tempfile::tempdir().expect("temporary directory");
    let pair = pair_with_hohhot_policy(&regions, "remittance = { after_working_days = 3 }").await;
    let who = someone(Flow::CrossProvince);
    let applied = pair.apply(&who).await.expect("applied at transfer-in");
    let id = applied.transfer_id.clone();
    let waiting = pair
        .wait_for_state(Side::In, &id, TransferState::AwaitingFunds, DEADLINE)
        .await
        .expect("transfer-in credits the years and waits for the remittance");
    assert!(
        waiting.history.iter().any(|event| event
            .detail
            .contains("credited when its remittance arrives")),
        "{:?}",
        waiting.history
    );
    let inn = totals(pair.in_endpoint()).await;
    assert_eq!(
        cents(&inn.credited_total),
        0,
        "no money before the remittance"
    );
    let out = totals(pair.out_endpoint()).await;
    assert_eq!(
        cents(&out.in_transit_total),
        cents(&out.debited_to_transit_total),
        "the balance waits in transit"
    );
    assert!(cents(&out.in_transit_total) > 0, "someone with a balance");

    // Five calendar days cover three working days from any weekday.
    pair.advance_clocks(Duration::from_secs(5 * 86_400))
        .await
        .expect("both clocks move");
    pair.wait_for_state(Side::In, &id, TransferState::Completed, DEADLINE)
        .await
        .expect("the remittance matched and was credited");
    pair.wait_for_state(Side::Out, &id, TransferState::Completed, DEADLINE)
        .await
        .expect("settled on the matched answer");
    assert_conserved(&pair).await;
    let inn = totals(pair.in_endpoint()).await;
    assert_eq!(cents(&inn.held_in_suspense_total), 0, "nothing held");
}

/// Returns the money held for `id` at transfer-in, as its operator.
async fn return_held(pair: &Pair, id: &str) -> Result<TransferState, tonic::Status> {
    pair.admin(Side::In)
        .resolve_transfer(ResolveTransferRequest {
            transfer_id: id.to_owned(),
            operator: "clerk 7".to_owned(),
            reason: "agreed with Hohhot's fund office by phone".to_owned(),
            outcome: ResolveOutcome::ReturnRemittance as i32,
        })
        .await
        .map(|answer| answer.into_inner().state())
}

#[tokio::test]
async fn a_short_remittance_is_held_returned_by_the_operators_and_remitted_again_exactly_once() {
    let regions = tempfile::tempdir().expect("temporary directory");
    let pair = Pair::start(PairOptions {
        seed: SEED,
        persons: PERSONS,
        directory: directory_with_hohhot_policy(
            &regions,
            "remittance = { after_working_days = 3 }",
        ),
        extra_env: vec![("YIBAO_BROKEN_FOR_TESTS".into(), "remit-short".into())],
        ..PairOptions::default()
    })
    .await
    .expect("the pair starts");
    // Transfer-out loses its first answer to the return: transfer-in sends it again, under the
    // same msgid, and gets the first answer.
    let lose = pair
        .admin(Side::Out)
        .add_fault_rule(AddFaultRuleRequest {
            rule: Some(FaultRule {
                label: "money-leg".to_owned(),
                direction: FaultDirection::Receiving as i32,
                message_kind: "RETURN_REMITTANCE".to_owned(),
                first_attempts: 1,
                fault: FaultKind::LoseAnswer as i32,
                ..FaultRule::default()
            }),
        })
        .await
        .expect("the rule is added")
        .into_inner()
        .rule
        .expect("the rule comes back");
    let who = someone(Flow::CrossProvince);
    let id = pair.apply(&who).await.expect("applied").transfer_id;
    pair.wait_for_state(Side::In, &id, TransferState::AwaitingFunds, DEADLINE)
        .await
        .expect("the years are credited");
    pair.advance_clocks(Duration::from_secs(5 * 86_400))
        .await
        .expect("both clocks move");
    let held = pair
        .wait_for_state(Side::In, &id, TransferState::NeedsOperator, DEADLINE)
        .await
        .expect("the short remittance is refused and held");
    assert!(
        held.history
            .iter()
            .any(|e| e.detail.contains("does not match")),
        "{:?}",
        held.history
    );
    pair.wait_for_state(Side::Out, &id, TransferState::NeedsOperator, DEADLINE)
        .await
        .expect("transfer-out waits for the refused remittance to come back");
    let inn = totals(pair.in_endpoint()).await;
    let out = totals(pair.out_endpoint()).await;
    let balance = cents(&out.in_transit_total);
    assert!(balance > 0, "someone with a balance");
    assert_eq!(
        cents(&inn.held_in_suspense_total),
        balance - 1,
        "a cent short, held"
    );
    assert_eq!(cents(&inn.credited_total), 0, "nothing credited");
    // Transfer-out's operator cannot return the balance to the account: the years are
    // credited at transfer-in.
    let wrong = pair
        .admin(Side::Out)
        .resolve_transfer(ResolveTransferRequest {
            transfer_id: id.clone(),
            operator: "clerk 9".to_owned(),
            reason: "a guess".to_owned(),
            outcome: ResolveOutcome::NotCredited as i32,
        })
        .await
        .expect_err("refused");
    assert_eq!(wrong.code(), tonic::Code::FailedPrecondition);
    assert!(
        wrong.message().contains("REMITTANCE_RETURNED"),
        "{}",
        wrong.message()
    );

    assert_eq!(
        return_held(&pair, &id).await.expect("returned"),
        TransferState::AwaitingFunds
    );
    let again = return_held(&pair, &id).await;
    match again {
        Err(status) => {
            assert_eq!(status.code(), tonic::Code::FailedPrecondition);
            assert!(status.message().contains("outcome"), "{}", status.message());
        }
        // The corrected remittance may have completed it already: nothing moves either way.
        Ok(state) => panic!("a second return was accepted: {state:?}"),
    }
    pair.wait_for_state(Side::In, &id, TransferState::Completed, DEADLINE)
        .await
        .expect("the remittance sent again matches and is credited");
    pair.wait_for_state(Side::Out, &id, TransferState::Completed, DEADLINE)
        .await
        .expect("settled on the matched answer");
    assert_conserved(&pair).await;
    let inn = totals(pair.in_endpoint()).await;
    let out = totals(pair.out_endpoint()).await;
    assert_eq!(
        cents(&inn.held_in_suspense_total),
        0,
        "suspense back at zero"
    );
    assert_eq!(
        cents(&inn.credited_total),
        balance,
        "credited once, to the cent"
    );
    assert_eq!(cents(&out.settled_out_total), balance, "settled once");
    let rules = pair
        .admin(Side::Out)
        .list_fault_rules(ListFaultRulesRequest {})
        .await
        .expect("listed")
        .into_inner()
        .rules;
    let injected = rules
        .iter()
        .find(|rule| rule.rule_id == lose.rule_id)
        .map_or(0, |rule| rule.injected);
    assert_eq!(injected, 1, "the return was delivered twice");
    let history = pair
        .wait_for_state(Side::Out, &id, TransferState::Completed, DEADLINE)
        .await
        .expect("completed")
        .history;
    let returned = history
        .iter()
        .filter(|e| e.kind == "REMITTANCE_RETURNED")
        .count();
    assert_eq!(returned, 1, "remitted again once: {history:?}");
}
