//! The fund leg (划转), black-box: with a remittance policy on Hohhot (3 working days after the
//! form), a transfer from Hohhot to Lhasa credits the years when the form is accepted and waits
//! AWAITING_FUNDS at transfer-in with no money credited and the balance still in transit at
//! transfer-out; once both test clocks pass the remittance day the remittance goes, matches the
//! form to the cent, and the transfer completes at both bureaus, the ledger exact.

use std::time::Duration;

use yibao_domain::population::Flow;
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
