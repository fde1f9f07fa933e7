//! Black-box tests of `yibao_harness::Counterpart`: one yibao bureau whose platform peer is a
//! process the test does not own as a pair. The peer here is a second yibao bureau started as a
//! counterpart too (the team's own bureau in real use; `crates/harness/examples` has a
//! hand-written one), so both directions of the handshake and the peer's certificate are real.

use std::time::Duration;

use yibao_domain::population::Flow;
use yibao_harness::HarnessError;
use yibao_proto::common::v1::TransferState;
use yibao_tests::*;

#[tokio::test]
async fn a_transfer_started_at_yibao_completes_at_a_peer_yibao_knows_only_by_its_address() {
    let (out, inn, _root) = counterparts(PERSONS).await;
    let someone = out
        .persons(Flow::CrossProvinceOutInitiated, 1)
        .expect("a person")
        .remove(0);
    let transfer = out.apply(&someone).await.expect("applied at yibao");
    let id = transfer.transfer_id;
    out.wait_for_state(&id, TransferState::Completed, DEADLINE)
        .await
        .expect("completed at yibao");
    inn.wait_for_state(&id, TransferState::Completed, DEADLINE)
        .await
        .expect("credited at the peer");
    let report = out
        .wait_for_no_open_transfers(DEADLINE)
        .await
        .expect("nothing open at yibao");
    assert!(report.holds, "{report}");
    assert_eq!(
        report.totals.settled_out_total, someone.balance,
        "the balance left yibao's books for the peer: {report}"
    );
    assert!(report.to_string().contains("peer's ledger was not checked"));
    let (own, made_for_peer) = (
        out.tls().expect("mutual TLS"),
        inn.peer_tls().expect("made for the peer"),
    );
    assert_eq!(
        own, made_for_peer,
        "yibao's transfer-out serves with what its peer made for it"
    );
}

#[tokio::test]
async fn a_person_of_the_peers_flow_is_refused_before_anything_is_sent() {
    let (out, _inn, _root) = counterparts(PERSONS).await;
    let someone = out
        .persons(Flow::CrossProvince, 1)
        .expect("a person")
        .remove(0);
    let error = out
        .apply(&someone)
        .await
        .expect_err("applies at transfer-in");
    assert!(matches!(error, HarnessError::WrongSide { .. }), "{error}");
}

#[tokio::test]
async fn the_peer_finds_a_restarted_counterpart_and_its_clock_moves_alone() {
    let (mut out, inn, _root) = counterparts(PERSONS).await;
    // The usual flow applies at the peer, which asks yibao's transfer-out for the transfer and
    // gets the form back: once before yibao restarts, once after (on another port, which the
    // peer reads from the port file again).
    let people = inn.persons(Flow::CrossProvince, 2).expect("two people");
    let completes = async |someone| {
        let transfer = inn.apply(someone).await.expect("applied at the peer");
        let id = transfer.transfer_id;
        inn.wait_for_state(&id, TransferState::Completed, DEADLINE)
            .await
            .expect("the form came from yibao");
    };
    completes(&people[0]).await;
    out.kill().await.expect("killed");
    assert!(!out.is_running());
    out.restart().await.expect("restarted on its data");
    assert!(out.is_running());
    completes(&people[1]).await;

    let moved = out
        .advance_clock(Duration::from_secs(3 * 24 * 3600))
        .await
        .expect("moved");
    let peer_now = inn
        .advance_clock(Duration::ZERO)
        .await
        .expect("read the peer's time");
    assert!(
        moved.seconds - peer_now.seconds >= 3 * 24 * 3600 - 60,
        "only yibao's clock moved: {moved:?} vs {peer_now:?}"
    );
}
