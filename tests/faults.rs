//! Faults, black-box: a peer that is down and comes back, `kill -9` of either bureau at the
//! steps of the handshake, a failing bank gateway, and the statutory deadline running out on the
//! test clock. Every test ends with the conservation check.

use yibao_domain::population::Flow;
use yibao_proto::admin::v1::AdvanceClockRequest;
use yibao_proto::bureau::v1::Transfer;
use yibao_proto::common::v1::TransferState;
use yibao_tests::*;

fn has_event(transfer: &Transfer, kind: &str) -> bool {
    transfer.history.iter().any(|event| event.kind == kind)
}

async fn state(pair: &Pair, side: Side, id: &str, wanted: TransferState) -> Transfer {
    pair.wait_for_state(side, id, wanted, DEADLINE)
        .await
        .expect("reaches the state")
}

#[tokio::test]
async fn a_peer_down_at_first_is_reached_by_retries_that_survive_a_restart() {
    let mut pair = seeded_pair().await;
    pair.kill(Side::Out).await.expect("kill transfer-out");
    let who = someone(Flow::CrossProvince);
    let applied = pair.apply(&who).await.expect("applied at transfer-in");
    let retried = pair
        .wait_for(
            Side::In,
            &applied.transfer_id,
            |t| has_event(t, "DELIVERY_RETRY"),
            DEADLINE,
        )
        .await
        .expect("the request is retried");
    assert_eq!(retried.state, TransferState::Applied as i32);

    // kill -9 the sender while it retries: the schedule is in its store.
    pair.kill(Side::In).await.expect("kill transfer-in");
    pair.restart(Side::In).await.expect("restart transfer-in");
    pair.restart(Side::Out).await.expect("restart transfer-out");
    state(
        &pair,
        Side::In,
        &applied.transfer_id,
        TransferState::Completed,
    )
    .await;
    state(
        &pair,
        Side::Out,
        &applied.transfer_id,
        TransferState::Completed,
    )
    .await;
    assert_conserved(&pair).await;
}

#[tokio::test]
async fn a_transfer_out_bureau_killed_with_money_in_transit_finishes_after_restart() {
    let mut pair = seeded_pair().await;
    pair.kill(Side::In).await.expect("kill transfer-in");
    let who = someone(Flow::CrossProvinceOutInitiated);
    let applied = pair.apply(&who).await.expect("applied at transfer-out");
    assert_eq!(applied.state, TransferState::InTransit as i32);
    let out = totals(pair.out_endpoint()).await;
    assert_eq!(
        cents(&out.in_transit_total),
        who.balance.cents(),
        "the balance is in transit"
    );

    pair.kill(Side::Out).await.expect("kill transfer-out");
    pair.restart(Side::Out).await.expect("restart transfer-out");
    pair.restart(Side::In).await.expect("restart transfer-in");
    state(
        &pair,
        Side::Out,
        &applied.transfer_id,
        TransferState::Completed,
    )
    .await;
    state(
        &pair,
        Side::In,
        &applied.transfer_id,
        TransferState::Completed,
    )
    .await;
    assert_conserved(&pair).await;
}

#[tokio::test]
async fn kills_in_the_middle_of_many_handshakes_lose_and_duplicate_nothing() {
    let mut pair = seeded_pair().await;
    let people = pair.persons(Flow::CrossProvince, 40).expect("people");
    let mut ids = Vec::new();
    for who in &people {
        ids.push(pair.apply(who).await.expect("applied").transfer_id);
    }
    // Whatever step each transfer is at, kill -9 both bureaus one after the other.
    pair.kill(Side::Out).await.expect("kill transfer-out");
    pair.restart(Side::Out).await.expect("restart transfer-out");
    pair.kill(Side::In).await.expect("kill transfer-in");
    pair.restart(Side::In).await.expect("restart transfer-in");
    for id in &ids {
        state(&pair, Side::In, id, TransferState::Completed).await;
        state(&pair, Side::Out, id, TransferState::Completed).await;
    }
    let expected: u64 = people.iter().map(|who| who.balance.cents()).sum();
    assert_eq!(
        cents(&totals(pair.in_endpoint()).await.credited_total),
        expected,
        "each credited once"
    );
    assert_conserved(&pair).await;
}

#[tokio::test]
async fn a_failing_bank_gateway_is_retried_and_pays_exactly_once() {
    let config = tempfile::NamedTempFile::new().expect("config file");
    std::fs::write(config.path(), "[bank]\nfailure_every = 2\n").expect("write config");
    let pair = Pair::start(PairOptions {
        seed: SEED,
        persons: PERSONS,
        extra_env: vec![("YIBAO_CONFIG".into(), config.path().as_os_str().to_owned())],
        ..PairOptions::default()
    })
    .await
    .expect("pair");
    let mut ids = Vec::new();
    let people = pair.persons(Flow::NotConnected, 3).expect("people");
    for who in &people {
        ids.push(pair.apply(who).await.expect("applied").transfer_id);
    }
    let mut retried = false;
    for id in &ids {
        let paid = state(&pair, Side::Out, id, TransferState::PaidToBank).await;
        retried |= has_event(&paid, "DELIVERY_RETRY");
    }
    assert!(retried, "the simulated gateway failed every second call");
    let expected: u64 = people.iter().map(|who| who.balance.cents()).sum();
    assert_eq!(
        cents(&totals(pair.out_endpoint()).await.paid_to_bank_total),
        expected
    );
    assert_conserved(&pair).await;
}

#[tokio::test]
async fn the_deadline_running_out_aborts_and_returns_the_balance() {
    let mut pair = seeded_pair().await;
    pair.kill(Side::In).await.expect("kill transfer-in");
    let who = someone(Flow::CrossProvinceOutInitiated);
    let applied = pair.apply(&who).await.expect("applied at transfer-out");
    let before = state(
        &pair,
        Side::Out,
        &applied.transfer_id,
        TransferState::InTransit,
    )
    .await;
    assert!(!before.deadlines.as_ref().expect("deadlines").overdue);

    // The day after the whole-process deadline (15 working days) the transfer is overdue; the
    // abort then has 5 more working days before it needs an operator (tests/timers.rs).
    let due = &before
        .deadlines
        .as_ref()
        .expect("deadlines")
        .whole_process_due_on;
    let overdue = prost_types::Duration {
        seconds: days_past(&pair, Side::Out, due).await * 86_400,
        nanos: 0,
    };
    let month = prost_types::Duration {
        seconds: 30 * 86_400,
        nanos: 0,
    };
    pair.admin_out()
        .advance_clock(AdvanceClockRequest { by: Some(overdue) })
        .await
        .expect("advance the transfer-out clock");
    let aborting = state(
        &pair,
        Side::Out,
        &applied.transfer_id,
        TransferState::Aborting,
    )
    .await;
    assert!(aborting.deadlines.expect("deadlines").overdue);

    // A timeout is never proof: nothing is returned until transfer-in answers the abort.
    assert_eq!(cents(&totals(pair.out_endpoint()).await.returned_total), 0);
    pair.restart(Side::In).await.expect("restart transfer-in");
    pair.admin_in()
        .advance_clock(AdvanceClockRequest { by: Some(month) })
        .await
        .expect("advance the transfer-in clock");
    let returned = state(
        &pair,
        Side::Out,
        &applied.transfer_id,
        TransferState::Returned,
    )
    .await;
    assert!(has_event(&returned, "ABORT_ANSWERED"));
    state(
        &pair,
        Side::In,
        &applied.transfer_id,
        TransferState::Aborted,
    )
    .await;
    assert_eq!(
        cents(&totals(pair.out_endpoint()).await.returned_total),
        who.balance.cents()
    );
    assert_eq!(
        cents(&totals(pair.in_endpoint()).await.credited_total),
        0,
        "never credited"
    );
    assert_conserved(&pair).await;
}

#[tokio::test]
async fn a_bureau_stops_gracefully_on_sigterm_and_carries_on_after_restart() {
    let mut pair = seeded_pair().await;
    let who = someone(Flow::CrossProvinceOutInitiated);
    pair.kill(Side::In).await.expect("kill transfer-in");
    let applied = pair.apply(&who).await.expect("applied at transfer-out");
    let status = pair.stop(Side::Out).await.expect("SIGTERM");
    assert!(status.success(), "a clean exit on SIGTERM: {status:?}");
    pair.restart(Side::Out).await.expect("restart transfer-out");
    pair.restart(Side::In).await.expect("restart transfer-in");
    state(
        &pair,
        Side::In,
        &applied.transfer_id,
        TransferState::Completed,
    )
    .await;
    assert_conserved(&pair).await;
}

#[tokio::test]
async fn a_second_application_while_one_is_open_is_refused_naming_it() {
    let mut pair = seeded_pair().await;
    pair.kill(Side::Out).await.expect("kill transfer-out");
    let who = someone(Flow::CrossProvince);
    let open = pair.apply(&who).await.expect("applied");
    assert_eq!(open.state, TransferState::Applied as i32);
    let again = pair
        .apply(&who)
        .await
        .expect_err("one open transfer per person");
    let status = again.status().expect("a gRPC status");
    assert_eq!(status.code(), tonic::Code::AlreadyExists);
    assert!(
        status.message().contains(&open.transfer_id),
        "names the open transfer: {status}"
    );
    pair.restart(Side::Out).await.expect("restart transfer-out");
    state(&pair, Side::In, &open.transfer_id, TransferState::Completed).await;
    assert_conserved(&pair).await;
}

#[tokio::test]
async fn a_message_its_receiver_refuses_is_parked_not_retried() {
    // transfer-in's directory says Lhasa is hosted elsewhere, transfer-out's says by
    // transfer-in: the form for Lhasa is refused as sent to the wrong receiver (infcode 1002),
    // which resending cannot change, so it is parked, not retried.
    let regions = tempfile::tempdir().expect("temporary directory");
    let shipped = std::fs::read_to_string(PairOptions::default().directory).expect("regions");
    let lhasa =
        "code = \"540100\"\nname = \"Lhasa\"\nname_zh = \"拉萨市\"\nbureau = \"transfer-in\"";
    assert!(
        shipped.contains(lhasa),
        "the shipped directory hosts Lhasa at transfer-in"
    );
    let disagreeing = regions.path().join("regions.toml");
    std::fs::write(
        &disagreeing,
        shipped.replace(lhasa, &lhasa.replace("\"transfer-in\"", "\"transfer-out\"")),
    )
    .expect("write the disagreeing directory");
    let pair = Pair::start(PairOptions {
        seed: SEED,
        persons: PERSONS,
        in_directory: Some(disagreeing),
        ..PairOptions::default()
    })
    .await
    .expect("the pair starts");

    let who = someone(Flow::CrossProvinceOutInitiated);
    let applied = pair.apply(&who).await.expect("applied at transfer-out");
    let parked = pair
        .wait_for(
            Side::Out,
            &applied.transfer_id,
            |t| has_event(t, "DELIVERY_PARKED"),
            DEADLINE,
        )
        .await
        .expect("the form is parked");
    let event = parked
        .history
        .iter()
        .find(|event| event.kind == "DELIVERY_PARKED")
        .expect("the parked event");
    assert!(event.detail.contains("infcode 1002"), "{}", event.detail);
    assert!(
        !has_event(&parked, "DELIVERY_RETRY"),
        "a refused message is not retried"
    );
    assert_eq!(parked.state, TransferState::InTransit as i32);
    // The balance waits in transit for the statutory deadline; nothing arrived.
    assert_eq!(
        cents(&totals(pair.out_endpoint()).await.in_transit_total),
        who.balance.cents()
    );
    assert_eq!(cents(&totals(pair.in_endpoint()).await.credited_total), 0);
}
