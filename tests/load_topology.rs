//! Black-box test of `yibao load --topology FILE --spawn`: the load generator starts every
//! bureau of `deploy/topology-3.toml` (north, west, south), applies each transfer at the bureau
//! hosting the region its flow applies at, and checks the three ledgers together. The report
//! counts transfers by pair of bureaus: at least two different pairs carried transfers, none
//! failed, and the ledgers conserve money to the cent with nothing open.

use serde_json::Value;
use yibao_tests::*;

/// The repository's three-bureau topology.
const TOPOLOGY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/topology-3.toml");

#[tokio::test]
async fn a_load_over_three_bureaus_runs_between_several_pairs_and_every_ledger_holds() {
    let reports = tempfile::tempdir().expect("a directory");
    let report_dir = reports.path().to_str().expect("a UTF-8 path").to_owned();
    let output = yibao_load_with(&[
        "--topology",
        TOPOLOGY,
        "--spawn",
        "--mix",
        "connected=4,intra-province=2,not-connected=1,refused=1",
        "--transfers",
        "48",
        "--concurrency",
        "6",
        "--persons",
        "2000",
        "--top-up-ahead",
        "0",
        "--settle-timeout",
        "60s",
        "--no-progress",
        "--report-dir",
        &report_dir,
    ])
    .output()
    .await
    .expect("yibao load runs");
    let printed = printed(&output);
    eprintln!("{printed}");
    assert!(output.status.success(), "the run failed:\n{printed}");
    let json = std::fs::read_to_string(reports.path().join("report.json")).expect("report.json");
    let report: Value = serde_json::from_str(&json).expect("JSON");

    let transfers = &report["transfers"];
    assert_eq!(transfers["failed"], 0, "{transfers}");
    assert_eq!(transfers["succeeded"], 48, "{transfers}");
    let pairs = report["pairs"].as_object().expect("transfers by pair");
    let completed_pairs: Vec<&String> = pairs
        .iter()
        .filter(|(_, count)| count["completed"].as_u64().unwrap_or(0) > 0)
        .map(|(pair, _)| pair)
        .collect();
    assert!(
        completed_pairs.len() >= 2,
        "transfers completed between at least two pairs of bureaus: {pairs:?}"
    );
    for (pair, count) in pairs {
        assert_eq!(count["failed"], 0, "{pair}: {count}");
        let (from, to) = pair.split_once(" → ").expect("FROM → TO");
        assert_ne!(from, to, "{pair}: a transfer crosses bureaus");
        for bureau in [from, to] {
            assert!(
                ["north", "west", "south"].contains(&bureau),
                "{pair}: a bureau of the topology"
            );
        }
    }
    let summed: u64 = pairs
        .values()
        .map(|count| count["succeeded"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(summed, 48, "every transfer counted under its pair");

    let ledger = &report["ledger"];
    assert_eq!(ledger["holds"], true, "{ledger}");
    let bureaus = ledger["bureaus"]
        .as_object()
        .expect("every bureau's totals");
    assert_eq!(
        bureaus.keys().collect::<Vec<_>>(),
        ["north", "south", "west"],
        "the ledger check read every bureau"
    );
    let cents = |name: &str, field: &str| bureaus[name][field].as_u64().unwrap_or(0);
    assert!(cents("north", "debited_to_transit_cents") > 0, "{ledger}");
    let debited: u64 = bureaus
        .keys()
        .map(|name| cents(name, "debited_to_transit_cents"))
        .sum();
    let placed: u64 = bureaus
        .keys()
        .map(|name| {
            cents(name, "credited_cents")
                + cents(name, "in_transit_cents")
                + cents(name, "paid_to_bank_cents")
                + cents(name, "returned_cents")
        })
        .sum();
    assert_eq!(debited, placed, "conservation to the cent across all three");
    for name in bureaus.keys() {
        assert_eq!(bureaus[name]["open_transfers"], 0, "{name}: nothing open");
    }
    assert!(
        printed.contains("north → west"),
        "the summary names the pairs"
    );
}
