//! Both bureaus on PostgreSQL (a database of their own each, on the server
//! `YIBAO_TEST_DATABASE_URL` names; skipped without one unless `YIBAO_REQUIRE_POSTGRES=1`):
//! `yibao load` runs transfers of every flow through them, one bureau is killed -9 and restarted
//! mid-way, and every transfer ends with the ledger exact to the cent across both bureaus — the
//! same as on SQLite.

use std::ffi::OsString;
use std::time::Duration;

use yibao_harness::{FixedPorts, TestDatabase};
use yibao_tests::*;

/// The environment naming a bureau's database.
fn database_env(database: &TestDatabase) -> Vec<(OsString, OsString)> {
    vec![("YIBAO_DATABASE_URL".into(), database.url().into())]
}

#[tokio::test]
async fn both_bureaus_on_postgresql_move_money_exactly_through_a_kill_and_restart() {
    let (Some(out_db), Some(in_db)) = (
        TestDatabase::create("yibao_bb_out"),
        TestDatabase::create("yibao_bb_in"),
    ) else {
        return;
    };
    let mut pair = Pair::start(PairOptions {
        seed: SEED,
        persons: 0,
        // Fixed ports, so that the load finds the restarted bureau where it was.
        fixed_ports: Some(FixedPorts::free().expect("free loopback ports")),
        out_env: database_env(&out_db),
        in_env: database_env(&in_db),
        ..PairOptions::default()
    })
    .await
    .expect("the pair starts on PostgreSQL");
    let load = yibao_load(&pair)
        .args(["--seed", &SEED.to_string(), "--persons", "3000"])
        .args(["--duration", "12s", "--concurrency", "8"])
        .args(["--transfer-timeout", "120s", "--settle-timeout", "120s"])
        .args(["--no-progress", "--no-report"])
        .output();
    let load = tokio::spawn(load);

    // Mid-way, transfer-in dies without a word and comes back on the same database.
    poll(Duration::from_secs(60), || async {
        let debited = cents(&totals(pair.out_endpoint()).await.debited_to_transit_total);
        (debited > 0).then_some(())
    })
    .await;
    pair.kill(Side::In).await.expect("killed -9");
    pair.restart(Side::In)
        .await
        .expect("transfer-in restarts on its database");

    load_passed(load).await;
    assert_conserved(&pair).await;
    let out = totals(pair.out_endpoint()).await;
    assert!(
        cents(&out.settled_out_total) > 0,
        "transfers completed on PostgreSQL: {out:?}"
    );
}
