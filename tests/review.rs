//! A review that takes time, black-box: with a review policy on Hohhot (3 working days online),
//! a request from Lhasa is answered under review; the transfer waits UNDER_REVIEW at
//! transfer-out (nothing moved) and ACCEPTED at transfer-in, and once both test clocks pass the
//! review day the form goes and the transfer completes, the ledger exact to the cent.

use std::time::Duration;

use yibao_domain::population::Flow;
use yibao_proto::common::v1::TransferState;
use yibao_tests::*;

#[tokio::test]
async fn a_review_that_takes_working_days_waits_under_review_then_the_transfer_completes() {
    let regions = tempfile::tempdir().expect("temporary directory");
    let pair = pair_with_hohhot_policy(
        &regions,
        "review_working_days = { online = 3, counter = 20 }",
    )
    .await;
    let who = someone(Flow::CrossProvince);
    let applied = pair.apply(&who).await.expect("applied at transfer-in");
    let id = applied.transfer_id.clone();
    let waiting = pair
        .wait_for_state(Side::Out, &id, TransferState::UnderReview, DEADLINE)
        .await
        .expect("transfer-out reviews it over working days");
    assert!(
        waiting
            .history
            .iter()
            .any(|event| event.detail.contains("under review")),
        "{:?}",
        waiting.history
    );
    pair.wait_for_state(Side::In, &id, TransferState::Accepted, DEADLINE)
        .await
        .expect("transfer-in holds it as accepted, the form pending");

    // Five calendar days cover three working days from any weekday.
    pair.advance_clocks(Duration::from_secs(5 * 86_400))
        .await
        .expect("both clocks move");
    pair.wait_for_state(Side::Out, &id, TransferState::Completed, DEADLINE)
        .await
        .expect("reviewed on its day, the form goes and is credited");
    pair.wait_for_state(Side::In, &id, TransferState::Completed, DEADLINE)
        .await
        .expect("credited at transfer-in");
    assert_conserved(&pair).await;
}
