//! A short load over three bureaus, black-box: the canned population seeded at north, west and
//! south (`deploy/regions-3.toml`), every flow's people applying at once, each at the bureau
//! hosting the region their flow applies at (so transfers run north → west and north → south,
//! started at either end), while the west bureau is killed -9 and restarted. Every transfer
//! ends as its flow says, and the three ledgers conserve money to the cent.

use std::time::Duration;

use yibao_domain::population::{Flow, SyntheticPerson};
use yibao_harness::population::persons_of_flow;
use yibao_harness::{HarnessError, Topology, TopologyOptions};
use yibao_proto::bureau::v1::Transfer;
use yibao_proto::common::v1::{Side, TransferState};

const SEED: u64 = 7;
const PERSONS: u64 = 400;
const PER_FLOW: usize = 4;
const DEADLINE: Duration = Duration::from_secs(60);

/// What a flow's transfer ends as where it was applied: a refusal is REJECTED; a balance paid
/// to the bank is PAID_TO_BANK at transfer-out and COMPLETED at transfer-in (the years came).
fn expected(flow: Flow, applied_as: Side) -> TransferState {
    match flow {
        Flow::RefusedNotStopped
        | Flow::RefusedArrears
        | Flow::RefusedNotEnrolled
        | Flow::RefusedRetiree => TransferState::Rejected,
        Flow::NotConnected
        | Flow::EmployeeToResident
        | Flow::RetireePayout
        | Flow::RegionPaysOut
            if applied_as == Side::TransferOut =>
        {
            TransferState::PaidToBank
        }
        _ => TransferState::Completed,
    }
}

/// Applies for `person`; a transfer it opens goes into `applied`. Returns 1 when the bureau
/// refused the application at once (a refusal of the applied-at bureau's own: someone not
/// enrolled where they apply, a retiree asking for a transfer), that flow's expected end.
async fn apply(
    topology: &Topology,
    person: &SyntheticPerson,
    applied: &mut Vec<(Flow, (&'static str, Transfer))>,
) -> usize {
    match topology.apply(person).await {
        Ok(opened) => {
            applied.push((person.flow, opened));
            0
        }
        Err(HarnessError::Rpc { status, .. })
            if status.code() == tonic::Code::FailedPrecondition
                && expected(person.flow, Side::TransferIn) == TransferState::Rejected =>
        {
            1
        }
        Err(error) => panic!("{}: {error}", person.flow.name()),
    }
}

#[tokio::test]
async fn every_flow_runs_across_three_bureaus_through_a_crash_and_the_ledgers_hold() {
    let mut topology = Topology::start(TopologyOptions::default())
        .await
        .expect("three bureaus start");
    topology.seed(SEED, PERSONS).await.expect("seeded");
    let mut people = Vec::new();
    for flow in Flow::ALL {
        people.extend(persons_of_flow(SEED, flow, PER_FLOW, PERSONS).expect("enough people"));
    }
    let (first, rest) = people.split_at(people.len() / 2);
    let mut applied = Vec::new();
    let mut refused_at_once = 0;
    for person in first {
        refused_at_once += apply(&topology, person, &mut applied).await;
    }
    // A crash of the bureau most transfers end at, with messages in flight, then the rest.
    topology.kill("west").await.expect("killed");
    topology.restart("west").await.expect("restarted");
    for person in rest {
        refused_at_once += apply(&topology, person, &mut applied).await;
    }
    assert_eq!(
        refused_at_once,
        2 * PER_FLOW,
        "the not enrolled and the retirees, refused where they apply"
    );
    let mut bureaus_used = std::collections::BTreeSet::new();
    for (flow, (at, transfer)) in &applied {
        bureaus_used.insert(*at);
        let ended = topology
            .wait_for_terminal(at, &transfer.transfer_id, DEADLINE)
            .await
            .expect("ends");
        let wanted = expected(*flow, ended.side());
        assert_eq!(ended.state(), wanted, "{}: {ended:?}", flow.name());
    }
    assert_eq!(
        bureaus_used.into_iter().collect::<Vec<_>>(),
        ["north", "south", "west"],
        "applications at each bureau"
    );
    let report = topology
        .wait_for_no_open_transfers(DEADLINE)
        .await
        .expect("nothing left open");
    assert!(report.holds, "{report}");
    let moved = |name: &str| {
        report
            .bureaus
            .iter()
            .find(|(bureau, _)| bureau == name)
            .map(|(_, totals)| totals.credited_total.cents())
            .expect("read")
    };
    assert!(moved("west") > 0 && moved("south") > 0, "{report}");
}
