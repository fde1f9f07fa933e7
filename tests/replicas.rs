//! Two replicas of each bureau over one PostgreSQL database per bureau (on the server
//! `YIBAO_TEST_DATABASE_URL` names; skipped without one unless `YIBAO_REQUIRE_POSTGRES=1`), each
//! replica's peer being both replicas of the other bureau. `yibao load` applies at and watches
//! from both replicas of each; mid-run one replica of each bureau is killed -9 and stays dead.
//! The survivors take over its outbox claims and the timers' lease, and every transfer ends with
//! the ledger exact to the cent across both bureaus and nothing done twice: each transfer was
//! credited at most once, and the bureaus' credited and settled totals are the sums of the
//! balances of the transfers that were credited.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::time::Duration;

use yibao_domain::population;
use yibao_harness::{LedgerReport, Replicas, TestDatabase};
use yibao_proto::admin::v1::{
    AddFaultRuleRequest, FaultDirection, FaultKind, FaultRule, GetLedgerTotalsRequest,
    ListFaultRulesRequest,
};
use yibao_proto::bureau::v1::{GetTransferRequest, ListTransfersRequest, Transfer};
use yibao_proto::common::v1::TransferState;
use yibao_tests::*;

/// The environment naming a bureau's database.
fn database_env(database: &TestDatabase) -> Vec<(OsString, OsString)> {
    vec![("YIBAO_DATABASE_URL".into(), database.url().into())]
}

/// How far the survivors' test clocks move once the others died: past the dead replicas'
/// claims on outbox messages (15 s) and the timers' lease (10 s), which a live replica renews
/// long before they lapse. Nothing of a transfer falls due in a minute.
const PAST_THE_CLAIMS: Duration = Duration::from_secs(61);

#[tokio::test]
async fn two_replicas_of_each_bureau_carry_on_when_one_of_each_is_killed_under_load() {
    let (Some(out_db), Some(in_db)) = (
        TestDatabase::create("yibao_rep_out"),
        TestDatabase::create("yibao_rep_in"),
    ) else {
        return;
    };
    let mut replicas = Replicas::start(
        PairOptions {
            seed: SEED,
            persons: 0,
            out_env: database_env(&out_db),
            in_env: database_env(&in_db),
            ..PairOptions::default()
        },
        2,
    )
    .await
    .expect("two replicas of each bureau start on PostgreSQL");
    // The replica of transfer-out to be killed holds every fourth form it claims for a while
    // before sending it, so that it dies with claims in flight, which the survivor must take
    // over once they lapse.
    let mut doomed = replicas.admin_at(Side::Out, 0);
    doomed
        .add_fault_rule(AddFaultRuleRequest {
            rule: Some(FaultRule {
                label: "replicas".to_owned(),
                direction: FaultDirection::Sending as i32,
                message_kind: "DELIVER_FORM".to_owned(),
                probability: 0.25,
                fault: FaultKind::Delay as i32,
                delay_min_ms: 1_000,
                delay_max_ms: 2_000,
                ..FaultRule::default()
            }),
        })
        .await
        .expect("a delay rule");
    let load = yibao_load_with(&[
        "--out",
        &replicas.endpoints(Side::Out),
        "--in",
        &replicas.endpoints(Side::In),
    ])
    .args(["--seed", &SEED.to_string(), "--persons", "1500"])
    .args([
        "--transfers",
        "240",
        "--concurrency",
        "8",
        "--top-up-ahead",
        "0",
    ])
    .args(["--transfer-timeout", "120s", "--settle-timeout", "120s"])
    .args(["--no-progress", "--no-report"])
    .output();
    let load = tokio::spawn(load);

    // Once forms are held there, the first replica of transfer-out and the second of
    // transfer-in die without a word (so the load's admin calls fail over too) and stay dead.
    poll(Duration::from_secs(60), || {
        let mut doomed = doomed.clone();
        async move {
            let rules = doomed
                .list_fault_rules(ListFaultRulesRequest {})
                .await
                .expect("rules")
                .into_inner()
                .rules;
            rules.iter().any(|rule| rule.injected >= 2).then_some(())
        }
    })
    .await;
    replicas.kill(Side::Out, 0).await.expect("killed -9");
    replicas.kill(Side::In, 1).await.expect("killed -9");
    replicas
        .advance_clocks(PAST_THE_CLAIMS)
        .await
        .expect("the survivors' clocks move");

    load_passed(load).await;
    let report = replicas.ledger_check().await.expect("ledger totals");
    assert!(report.holds && report.quiescent, "ledger: {report}");
    let out = transfers(&replicas, Side::Out).await;
    let inn = transfers(&replicas, Side::In).await;
    assert_each_done_once(&report, &out, &inn);
}

/// Every transfer of `side` with its history, found by listing the population's people until as many were found
/// as the bureau's ledger counts, by id.
async fn transfers(replicas: &Replicas, side: Side) -> BTreeMap<String, Transfer> {
    let totals = replicas
        .admin(side)
        .expect("a replica runs")
        .get_ledger_totals(GetLedgerTotalsRequest {})
        .await
        .expect("totals")
        .into_inner()
        .totals
        .expect("totals");
    let expected: u64 = totals.transfers_by_state.iter().map(|s| s.count).sum();
    let mut bureau = replicas.bureau(side).expect("a replica runs");
    let mut found = BTreeMap::new();
    for index in 0..population::MAX_INDEX {
        if found.len() as u64 >= expected {
            break;
        }
        assert!(
            index < 20_000,
            "only {} of {expected} transfers found",
            found.len()
        );
        let person = population::person(SEED, index).expect("in range");
        let listed = bureau
            .list_transfers(ListTransfersRequest {
                certno: person.certno.expose_unmasked().to_owned(),
                ..Default::default()
            })
            .await
            .expect("ListTransfers")
            .into_inner();
        for listed in listed.transfers {
            // A listing leaves the history out; the transfer itself has it.
            let transfer = bureau
                .get_transfer(GetTransferRequest {
                    transfer_id: listed.transfer_id.clone(),
                })
                .await
                .expect("GetTransfer")
                .into_inner()
                .transfer
                .expect("a transfer");
            found.insert(listed.transfer_id, transfer);
        }
    }
    found
}

/// Nothing took effect twice: no transfer entered a state twice at transfer-in (in particular
/// CREDITED) or at transfer-out (in particular COMPLETED), and the credited and settled totals
/// are the sums of the credited transfers' balances.
fn assert_each_done_once(
    report: &LedgerReport,
    out: &BTreeMap<String, Transfer>,
    inn: &BTreeMap<String, Transfer>,
) {
    for transfer in out.values().chain(inn.values()) {
        let state = TransferState::try_from(transfer.state).unwrap_or_default();
        assert!(
            yibao_harness::is_terminal(state),
            "{} ended {state:?}",
            transfer.transfer_id
        );
        let mut entered = BTreeMap::<i32, u32>::new();
        for event in &transfer.history {
            if event.from_state != event.to_state {
                *entered.entry(event.to_state).or_default() += 1;
            }
        }
        assert!(
            entered.values().all(|&times| times == 1),
            "{} entered a state twice: {:?}",
            transfer.transfer_id,
            transfer.history
        );
    }
    let balance_of = |transfers: &BTreeMap<String, Transfer>, states: &[TransferState]| -> u64 {
        transfers
            .values()
            .filter(|t| {
                t.history
                    .iter()
                    .any(|e| states.iter().any(|&state| e.to_state == state as i32))
            })
            .map(|t| cents(&t.personal_account_balance))
            .sum()
    };
    // Credited with the form (CREDITED, or straight to COMPLETED) at transfer-in; settled at
    // transfer-out once its form was credited (COMPLETED).
    let credited = balance_of(inn, &[TransferState::Credited, TransferState::Completed]);
    let settled = balance_of(out, &[TransferState::Completed]);
    assert!(credited > 0, "transfers were credited: {report}");
    assert_eq!(
        credited,
        report.transfer_in.credited_total.cents(),
        "transfer-in credited each credited transfer's balance once: {report}"
    );
    assert_eq!(
        settled,
        report.transfer_out.settled_out_total.cents(),
        "transfer-out settled each completed transfer's balance once: {report}"
    );
}
