//! Black-box tests of `yibao load --only`: the load generator drives one yibao bureau whose
//! platform peer is another party's service — here a second yibao bureau that the run knows
//! nothing of, started as a `Counterpart` (the user's own bureau in real use). Only the driven
//! bureau is seeded, applied at, watched and checked; the report says the peer's ledger was not
//! checked, and splits each sampled transfer's latency into time at the peer and time in yibao,
//! the two adding up to the end-to-end latency.

use serde_json::Value;
use yibao_tests::*;

/// People both bureaus know (a run seeds only the bureau it drives; the peer must know them
/// too, as the user's bureau would).
const KNOWN: u64 = 3_000;

/// Runs `yibao load` with `args` (writing its reports into a fresh directory), requires it to
/// succeed, and returns its printed output and its report.json.
async fn load(args: &[&str]) -> (String, Value, tempfile::TempDir) {
    let reports = tempfile::tempdir().expect("a directory");
    let report_dir = reports.path().to_str().expect("a UTF-8 path").to_owned();
    let known = KNOWN.to_string();
    let mut all = args.to_vec();
    all.extend([
        "--transfers",
        "40",
        "--concurrency",
        "4",
        "--split-every",
        "1",
        "--persons",
        &known,
        "--settle-timeout",
        "30s",
        "--no-progress",
        "--report-dir",
        &report_dir,
    ]);
    let output = yibao_load_with(&all)
        .output()
        .await
        .expect("yibao load runs");
    let printed = printed(&output);
    eprintln!("{printed}");
    assert!(output.status.success(), "the run failed:\n{printed}");
    let json = std::fs::read_to_string(reports.path().join("report.json")).expect("report.json");
    let report: Value = serde_json::from_str(&json).expect("JSON");
    (printed, report, reports)
}

/// The split was measured for every transfer, and its parts add up to the microsecond.
fn assert_split_adds_up(report: &Value, bureau: &str) {
    let split = &report["peer_split"];
    assert_eq!(split["bureau"], bureau, "{split}");
    let sampled = split["sampled"].as_u64().expect("sampled");
    let succeeded = report["transfers"]["succeeded"]
        .as_u64()
        .expect("succeeded");
    assert_eq!(succeeded, 40, "{}", report["transfers"]);
    assert_eq!(
        sampled + split["unread"].as_u64().unwrap_or(0),
        succeeded,
        "one in 1: every transfer sampled: {split}"
    );
    assert!(sampled > 0, "{split}");
    assert_eq!(split["no_messages"], 0, "{split}");
    let total = |name: &str| split[name].as_u64().expect(name);
    assert_eq!(
        total("end_to_end_total_us"),
        total("at_peer_total_us") + total("in_yibao_total_us"),
        "{split}"
    );
    assert!(
        total("at_peer_total_us") > 0,
        "the peer took some time: {split}"
    );
    assert!(total("in_yibao_total_us") > 0, "so did yibao: {split}");
    let p50 = |part: &str| split[part]["p50_ms"].as_f64().expect("p50");
    assert!(p50("at_peer") <= p50("end_to_end"), "{split}");
    for name in [
        "split: at the peer",
        "split: in yibao",
        "split: end-to-end (sampled)",
    ] {
        assert!(
            report["latency"][name]["count"].as_u64() == Some(sampled),
            "{name}"
        );
    }
}

/// The driven bureau's books held on their own, and the report says the peer's were not read.
fn assert_only_one_ledger(printed: &str, report: &Value, peer: &str) {
    let ledger = &report["ledger"];
    assert_eq!(ledger["holds"], true, "{ledger}");
    let note = ledger["not_checked"].as_str().expect("a note");
    assert!(
        note.contains(peer) && note.contains("not checked"),
        "{note}"
    );
    assert!(printed.contains("the peer's ledger"), "{printed}");
    assert!(printed.contains("latency split at"), "{printed}");
}

#[tokio::test]
async fn a_load_on_yibaos_transfer_out_alone_splits_latency_between_it_and_the_peer() {
    let (out, _peer, _root) = counterparts(KNOWN).await;
    let seed = SEED.to_string();
    let (printed, report, reports) =
        load(&["--only", "out", "--out", out.endpoint(), "--seed", &seed]).await;
    assert_split_adds_up(&report, "transfer-out");
    assert_only_one_ledger(&printed, &report, "transfer-in");
    assert_eq!(
        report["outcomes"]["cross-province-out-initiated"]["COMPLETED"],
        40
    );
    assert_eq!(report["endpoints"]["in"], "", "the peer is not driven");
    let html = std::fs::read_to_string(reports.path().join("report.html")).expect("html");
    assert!(html.contains("latency split") && html.contains("split: at the peer"));
}

#[tokio::test]
async fn a_load_on_yibaos_transfer_in_alone_counts_waiting_for_the_peers_form_at_the_peer() {
    let (_peer, inn, _root) = counterparts(KNOWN).await;
    let seed = SEED.to_string();
    let (printed, report, _reports) =
        load(&["--only", "in", "--in", inn.endpoint(), "--seed", &seed]).await;
    assert_split_adds_up(&report, "transfer-in");
    assert_only_one_ledger(&printed, &report, "transfer-out");
    assert_eq!(report["outcomes"]["cross-province"]["COMPLETED"], 40);
}

#[tokio::test]
async fn a_spawned_bureau_calls_the_peer_it_is_given_with_a_certificate_from_the_peers_ca() {
    use yibao_harness::{Counterpart, CounterpartOptions, CounterpartTls, Side};
    // The user's bureau (here yibao's transfer-in) serves with a certificate from the CA in
    // `certs`, as `yibao certs --out certs --bureau …` would have made it.
    let certs = tempfile::tempdir().expect("a directory");
    let peer = Counterpart::start(CounterpartOptions {
        seed: SEED,
        persons: KNOWN,
        tls: CounterpartTls::Development {
            dir: Some(certs.path().to_path_buf()),
        },
        // A transfer started at transfer-out never makes transfer-in call back.
        ..CounterpartOptions::new(Side::In, "https://127.0.0.1:1")
    })
    .await
    .expect("the peer starts");
    let endpoint = peer.platform_endpoint().expect("its platform address");
    let certs_dir = certs.path().to_str().expect("a UTF-8 path");
    let seed = SEED.to_string();
    let (_printed, report, _reports) = load(&[
        "--spawn", "--only", "out", "--peer", &endpoint, "--certs", certs_dir, "--seed", &seed,
    ])
    .await;
    assert_split_adds_up(&report, "transfer-out");
    assert_eq!(report["endpoints"]["spawned"], true);
    assert_eq!(report["endpoints"]["peer"], endpoint.as_str());
    let cpu: Vec<&str> = report["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .filter_map(|process| process["name"].as_str())
        .collect();
    assert!(
        cpu.contains(&"transfer-out") && !cpu.contains(&"transfer-in"),
        "{cpu:?}"
    );
}
