//! Restarts always bind, and keyed applications survive them. Both bureaus run on fixed loopback
//! ports of this test's own (four found free when it starts, so parallel runs never collide,
//! and kept across every restart; they lie in the ephemeral range, where a redial can connect
//! to itself — the case the peer's guard refuses) while `yibao load` applies with idempotency
//! keys and each bureau in turn is killed -9 and restarted on its ports, many times. Every restart binds, no
//! application fails (a transient failure is retried with the same key), every transfer ends,
//! and the ledger holds to the cent.

use std::time::Duration;

use yibao_harness::FixedPorts;
use yibao_tests::*;

/// How many times a bureau is killed (each side half of them).
const KILLS: usize = 8;

/// How long the load runs; the kills happen while it does.
const LOAD_SECONDS: u64 = 30;

/// The transfer-out bureau's debits so far, or `None` while it does not answer.
async fn debited(pair: &Pair) -> Option<u64> {
    let mut admin = yibao_proto::admin::v1::admin_service_client::AdminServiceClient::new(
        pair.channel(Side::Out),
    );
    let totals = admin
        .get_ledger_totals(yibao_proto::admin::v1::GetLedgerTotalsRequest {})
        .await
        .ok()?
        .into_inner()
        .totals?;
    Some(cents(&totals.debited_to_transit_total))
}

/// Waits until transfers move money again after `before` (the pair is serving both ways).
async fn progress_beyond(pair: &Pair, before: u64) -> u64 {
    poll(Duration::from_secs(30), || async move {
        debited(pair).await.filter(|now| *now > before)
    })
    .await
}

#[tokio::test]
async fn each_bureau_killed_and_restarted_on_its_fixed_ports_under_load_loses_nothing() {
    let ports = FixedPorts::free().expect("free loopback ports");
    let mut pair = Pair::start(PairOptions {
        seed: SEED,
        persons: 0,
        fixed_ports: Some(ports),
        ..PairOptions::default()
    })
    .await
    .expect("the pair starts on its fixed ports");
    let load = yibao_load(&pair)
        .args(["--seed", &SEED.to_string(), "--persons", "6000"])
        .args([
            "--duration",
            &format!("{LOAD_SECONDS}s"),
            "--concurrency",
            "8",
        ])
        // A transfer caught by a restart on a busy 2-core CI machine can take a while (the
        // restart itself, the peer's redial backoff, the outbox's retry backoff): that is a
        // slow transfer, not a failed one. Every transfer must still end.
        .args(["--transfer-timeout", "180s", "--settle-timeout", "120s"])
        .args(["--no-progress", "--no-report"])
        .output();
    let load = tokio::spawn(load);

    let mut seen = progress_beyond(&pair, 0).await;
    for kill in 0..KILLS {
        let side = if kill % 2 == 0 { Side::In } else { Side::Out };
        pair.kill(side).await.expect("killed -9");
        pair.restart(side)
            .await
            .expect("the restarted bureau binds its fixed ports again");
        let port = match side {
            Side::Out => ports.out,
            Side::In => ports.inn,
        };
        assert!(
            pair.endpoint(side).ends_with(&format!(":{port}")),
            "{} came back on {}",
            side.service(),
            pair.endpoint(side)
        );
        seen = progress_beyond(&pair, seen).await;
    }

    load_passed(load).await;
    assert_conserved(&pair).await;
}
