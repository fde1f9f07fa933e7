//! Black-box test of `yibao chaos --topology FILE`: every bureau of `deploy/topology-3.toml`
//! under load, with a kill -9 and restart of a bureau picked at random and faults injected at
//! all three; then the faults stop, every transfer ends, and nothing was lost or doubled across
//! the three ledgers.

use serde_json::Value;

/// The repository's three-bureau topology.
const TOPOLOGY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/topology-3.toml");

#[tokio::test]
async fn chaos_over_three_bureaus_loses_and_doubles_nothing() {
    let bin_dir = yibao_harness::default_bin_dir().expect("the binaries' directory");
    let output =
        tokio::process::Command::new(yibao_harness::locate::binary_path(&bin_dir, "yibao"))
            .args([
                "--json",
                "chaos",
                "--topology",
                TOPOLOGY,
                "--duration",
                "8s",
                "--kill-every",
                "3s",
                "--fault-rate",
                "0.05",
                "--concurrency",
                "6",
            ])
            .env("NO_COLOR", "1")
            .kill_on_drop(true)
            .output()
            .await
            .expect("yibao chaos runs");
    let printed = yibao_tests::printed(&output);
    eprintln!("{printed}");
    let report: Value = String::from_utf8_lossy(&output.stdout)
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line).ok())
        .expect("a JSON report");
    assert!(output.status.success(), "chaos failed:\n{printed}");
    assert_eq!(report["passed"], true, "{report}");
    let kills = report["kills"].as_u64().expect("kills");
    assert!(
        (1..=4).contains(&kills),
        "a kill every ~3 s in 8 s: {report}"
    );
    let killed = report["killed"].as_object().expect("kills by bureau");
    assert_eq!(
        killed.values().filter_map(Value::as_u64).sum::<u64>(),
        kills,
        "{report}"
    );
    assert!(
        killed
            .keys()
            .all(|name| ["north", "west", "south"].contains(&name.as_str())),
        "{report}"
    );
    assert!(report["transfers"].as_u64().unwrap_or(0) > 0, "{report}");
    assert_eq!(report["client_failures"], 0, "{report}");
    assert_eq!(report["open_after"], 0, "{report}");
    assert_eq!(report["lost_cents"], "0", "{report}");
    assert_eq!(report["double_credit_cents"], "0", "{report}");
    assert_eq!(report["double_payout_cents"], "0", "{report}");
}
