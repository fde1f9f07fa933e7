//! Timers, black-box: nothing stays open forever. Bureaus whose directories disagree end the
//! transfer instead of hanging (transfer-in asks transfer-out, QueryTransferOut); an abort the
//! transfer-in bureau refuses waits for an operator with its money in transit, and the
//! operator's resolution returns it to the cent; a request never answered ends at the deadline.
//! Time moves on the test clocks only.

use std::path::PathBuf;

use yibao_domain::population::Flow;
use yibao_proto::admin::v1::{
    AdvanceClockRequest, ListOutboxMessagesRequest, ResolveOutcome, ResolveTransferRequest,
};
use yibao_proto::bureau::v1::{ListTransfersRequest, Transfer};
use yibao_proto::common::v1::{RefusalReason, TransferState};
use yibao_tests::*;

fn has_event(transfer: &Transfer, kind: &str) -> bool {
    transfer.history.iter().any(|event| event.kind == kind)
}

/// The shipped directory with one region's entry handed to `bureau`, written to `dir`.
fn directory_moving(
    dir: &tempfile::TempDir,
    code: &str,
    name: &str,
    from: &str,
    to: &str,
) -> PathBuf {
    let shipped = std::fs::read_to_string(PairOptions::default().directory).expect("regions");
    let entry = format!("code = \"{code}\"\nname = \"{name}\"");
    let start = shipped
        .find(&entry)
        .expect("the shipped directory lists the region");
    let bureau_line = format!("bureau = \"{from}\"");
    let offset = shipped[start..]
        .find(&bureau_line)
        .expect("its bureau line")
        + start;
    let mut changed = shipped.clone();
    changed.replace_range(
        offset..offset + bureau_line.len(),
        &format!("bureau = \"{to}\""),
    );
    let path = dir.path().join("regions.toml");
    std::fs::write(&path, changed).expect("write the directory");
    path
}

async fn advance(pair: &Pair, side: Side, days: i64) {
    let by = prost_types::Duration {
        seconds: days * 86_400,
        nanos: 0,
    };
    pair.admin(side)
        .advance_clock(AdvanceClockRequest { by: Some(by) })
        .await
        .expect("advance the clock");
}

#[tokio::test]
async fn disagreeing_directories_end_an_unanswered_request_after_asking_transfer_out() {
    // transfer-in's directory (the shipped one) says Hohhot is hosted by transfer-out;
    // transfer-out's says it is not, so it refuses the request as sent to the wrong receiver.
    let regions = tempfile::tempdir().expect("temporary directory");
    let out_directory =
        directory_moving(&regions, "150100", "Hohhot", "transfer-out", "transfer-in");
    let pair = Pair::start(PairOptions {
        seed: SEED,
        persons: PERSONS,
        directory: out_directory,
        in_directory: Some(PairOptions::default().directory),
        ..PairOptions::default()
    })
    .await
    .expect("the pair starts");
    let who = someone(Flow::CrossProvince);
    let applied = pair.apply(&who).await.expect("applied at transfer-in");
    let parked = pair
        .wait_for(
            Side::In,
            &applied.transfer_id,
            |t| has_event(t, "DELIVERY_PARKED"),
            DEADLINE,
        )
        .await
        .expect("the request is refused and parked");
    assert_eq!(parked.state, TransferState::Applied as i32);

    let due = parked
        .deadlines
        .as_ref()
        .expect("deadlines")
        .whole_process_due_on
        .clone();
    // Past the transfer-out deadline (10 working days) but not the whole process (15).
    let days = days_past(&pair, Side::In, &due).await - 6;
    advance(&pair, Side::In, days).await;
    let ended = pair
        .wait_for_state(
            Side::In,
            &applied.transfer_id,
            TransferState::Rejected,
            DEADLINE,
        )
        .await
        .expect("the transfer ends");
    assert_eq!(
        ended.refusal_reason,
        RefusalReason::NotKnownAtTransferOut as i32,
        "ended with the answer's reason"
    );
    assert!(has_event(&ended, "FORM_OVERDUE"));
    assert!(has_event(&ended, "TRANSFER_OUT_ANSWERED"));
    assert_conserved(&pair).await;
}

#[tokio::test]
async fn a_request_never_answered_ends_at_the_whole_process_deadline() {
    let mut pair = seeded_pair().await;
    pair.kill(Side::Out).await.expect("kill transfer-out");
    let who = someone(Flow::CrossProvince);
    let applied = pair.apply(&who).await.expect("applied at transfer-in");
    let due = applied
        .deadlines
        .as_ref()
        .expect("deadlines")
        .whole_process_due_on
        .clone();
    let days = days_past(&pair, Side::In, &due).await;
    advance(&pair, Side::In, days).await;
    let ended = pair
        .wait_for_state(
            Side::In,
            &applied.transfer_id,
            TransferState::Rejected,
            DEADLINE,
        )
        .await
        .expect("the transfer ends");
    assert_eq!(ended.refusal_reason, RefusalReason::DeadlineExpired as i32);
    // transfer-out comes back: the withdrawn request never reaches it.
    pair.restart(Side::Out).await.expect("restart transfer-out");
    assert!(
        transfer(pair.out_endpoint(), &applied.transfer_id)
            .await
            .is_none()
    );
    assert_conserved(&pair).await;
}

#[tokio::test]
async fn a_refused_abort_waits_for_an_operator_who_returns_the_balance_to_the_cent() {
    // transfer-out's directory (the shipped one) says Lhasa is hosted by transfer-in;
    // transfer-in's says it is not, so it refuses the form and then the abort.
    let regions = tempfile::tempdir().expect("temporary directory");
    let in_directory = directory_moving(&regions, "540100", "Lhasa", "transfer-in", "transfer-out");
    let pair = Pair::start(PairOptions {
        seed: SEED,
        persons: PERSONS,
        in_directory: Some(in_directory),
        ..PairOptions::default()
    })
    .await
    .expect("the pair starts");
    let who = someone(Flow::CrossProvinceOutInitiated);
    let applied = pair.apply(&who).await.expect("applied at transfer-out");
    let id = applied.transfer_id.clone();
    let in_transit = pair
        .wait_for(
            Side::Out,
            &id,
            |t| has_event(t, "DELIVERY_PARKED"),
            DEADLINE,
        )
        .await
        .expect("the form is refused and parked");
    let due = in_transit
        .deadlines
        .as_ref()
        .expect("deadlines")
        .whole_process_due_on
        .clone();
    advance(&pair, Side::Out, days_past(&pair, Side::Out, &due).await).await;
    let retried = pair
        .wait_for(
            Side::Out,
            &id,
            |t| {
                t.history
                    .iter()
                    .any(|e| e.kind == "DELIVERY_RETRY" && e.detail.starts_with("ABORT"))
            },
            DEADLINE,
        )
        .await
        .expect("the refused abort is retried with backoff");
    assert_eq!(retried.state, TransferState::Aborting as i32);

    advance(&pair, Side::Out, 20).await;
    pair.wait_for_state(Side::Out, &id, TransferState::NeedsOperator, DEADLINE)
        .await
        .expect("past its bound the transfer needs an operator");
    let waiting = pair
        .bureau_out()
        .list_transfers(ListTransfersRequest {
            certno: String::new(),
            state: TransferState::NeedsOperator as i32,
        })
        .await
        .expect("list by state")
        .into_inner();
    assert_eq!(waiting.transfers.len(), 1);
    assert_eq!(waiting.transfers[0].transfer_id, id);
    let out = totals(pair.out_endpoint()).await;
    assert_eq!(out.needs_operator_transfers, 1);
    assert_eq!(
        cents(&out.in_transit_total),
        who.balance.cents(),
        "still in transit"
    );
    let parked = pair
        .admin_out()
        .list_outbox_messages(ListOutboxMessagesRequest {})
        .await
        .expect("list parked")
        .into_inner();
    assert!(
        parked
            .messages
            .iter()
            .any(|m| m.transfer_id == id && m.kind == "ABORT"),
        "the abort is parked: {parked:?}"
    );
    let (mut admin_out, mut admin_in) = (pair.admin_out(), pair.admin_in());
    let report = yibao_harness::ledger::fetch_and_check(&mut admin_out, &mut admin_in)
        .await
        .expect("ledger totals");
    assert!(report.holds, "{report}");

    let resolved = pair
        .admin_out()
        .resolve_transfer(ResolveTransferRequest {
            transfer_id: id.clone(),
            operator: "王经办".to_owned(),
            reason: "Lhasa confirmed it holds no such transfer".to_owned(),
            outcome: ResolveOutcome::NotCredited as i32,
        })
        .await
        .expect("resolved")
        .into_inner();
    assert_eq!(resolved.state, TransferState::Returned as i32);
    let done = transfer(pair.out_endpoint(), &id).await.expect("stored");
    let event = done
        .history
        .iter()
        .find(|e| e.kind == "OPERATOR_RESOLVED")
        .expect("who and why are recorded");
    assert!(event.detail.contains("王经办"), "{}", event.detail);
    let out = totals(pair.out_endpoint()).await;
    assert_eq!(cents(&out.returned_total), who.balance.cents());
    assert_eq!(out.needs_operator_transfers, 0);
    assert_conserved(&pair).await;
}
