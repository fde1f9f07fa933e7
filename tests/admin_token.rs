//! The admin token, black-box: a pair whose bureaus require `YIBAO_ADMIN_TOKEN` still works end
//! to end through the harness's admin clients (seeding, clocks, the ledger check), an admin call
//! without the token or with a wrong one is UNAUTHENTICATED, and the `yibao` command presents the
//! token from its environment (and fails naming the status without it).

use std::process::Output;
use std::time::Duration;

use yibao_domain::population::Flow;
use yibao_harness::{ADMIN_TOKEN_ENV, AdminToken, admin_client};
use yibao_proto::admin::v1::GetLedgerTotalsRequest;
use yibao_proto::admin::v1::admin_service_client::AdminServiceClient;
use yibao_proto::common::v1::TransferState;
use yibao_tests::*;

/// The token the pair requires.
const TOKEN: &str = "a-test-admin-token-0f3c9b2e";

/// A token of the right shape that is not the pair's.
const WRONG_TOKEN: &str = "not-the-admin-token-7d41aa90";

fn token(text: &str) -> AdminToken {
    AdminToken::new(text).expect("a well-formed token")
}

/// A pair requiring [`TOKEN`], seeded through the harness's (token-presenting) admin clients.
async fn pair_with_token() -> Pair {
    Pair::start(PairOptions {
        persons: 200,
        admin_token: Some(token(TOKEN)),
        ..PairOptions::default()
    })
    .await
    .expect("a pair requiring an admin token starts and is seeded")
}

/// Runs `yibao ledger check --json` against the pair, with `YIBAO_ADMIN_TOKEN` set to `token`
/// or removed.
async fn yibao_ledger_check(pair: &Pair, token: Option<&str>) -> Output {
    let bin_dir = yibao_harness::default_bin_dir().expect("the binaries' directory");
    let mut command =
        tokio::process::Command::new(yibao_harness::locate::binary_path(&bin_dir, "yibao"));
    command
        .args(["--out", pair.out_endpoint(), "--in", pair.in_endpoint()])
        .args(["ledger", "check"])
        .env_remove(ADMIN_TOKEN_ENV)
        .env_remove("YIBAO_OUT")
        .env_remove("YIBAO_IN");
    if let Some(token) = token {
        command.env(ADMIN_TOKEN_ENV, token);
    }
    command
        .output()
        .await
        .expect("yibao runs (build it first: cargo build --workspace --bins)")
}

fn printed(output: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn a_pair_with_a_token_works_end_to_end_through_the_harness() {
    let pair = pair_with_token().await;
    assert!(pair.admin_token().is_some());
    let someone = pair
        .persons(Flow::CrossProvince, 1)
        .expect("seeded")
        .remove(0);
    let transfer = pair.apply(&someone).await.expect("applied");
    pair.wait_for_state(
        Side::In,
        &transfer.transfer_id,
        TransferState::Completed,
        Duration::from_secs(30),
    )
    .await
    .expect("completed");
    pair.advance_clocks(Duration::from_secs(3 * 24 * 3600))
        .await
        .expect("the clocks move with the token");
    let report = pair.assert_ledger_conserved().await;
    assert!(report.holds);
}

#[tokio::test]
async fn an_admin_call_without_the_token_or_with_a_wrong_one_is_unauthenticated_also_from_the_cli()
{
    let pair = pair_with_token().await;
    for side in Side::BOTH {
        let refused = AdminServiceClient::new(pair.channel(side))
            .get_ledger_totals(GetLedgerTotalsRequest {})
            .await
            .expect_err("no token, refused even on loopback");
        assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");

        let wrong = token(WRONG_TOKEN);
        let refused = admin_client(pair.channel(side), Some(&wrong))
            .get_ledger_totals(GetLedgerTotalsRequest {})
            .await
            .expect_err("a wrong token, refused");
        assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");

        pair.admin(side)
            .get_ledger_totals(GetLedgerTotalsRequest {})
            .await
            .expect("the right token, answered");
    }
    the_cli_presents_the_token_from_its_environment(&pair).await;
}

/// `yibao ledger check` with the token in `YIBAO_ADMIN_TOKEN` succeeds; without it, or with a
/// wrong one, it fails naming UNAUTHENTICATED; a malformed one is refused before any call. (On
/// the pair of the test above: one pair fewer to start.)
async fn the_cli_presents_the_token_from_its_environment(pair: &Pair) {
    let with_token = yibao_ledger_check(pair, Some(TOKEN)).await;
    assert!(
        with_token.status.success(),
        "ledger check with the token:\n{}",
        printed(&with_token)
    );

    let without = yibao_ledger_check(pair, None).await;
    assert!(!without.status.success(), "{}", printed(&without));
    let stderr = String::from_utf8_lossy(&without.stderr);
    assert!(stderr.contains("UNAUTHENTICATED"), "{}", printed(&without));
    assert!(!stderr.contains(TOKEN));

    let wrong = yibao_ledger_check(pair, Some(WRONG_TOKEN)).await;
    assert!(!wrong.status.success(), "{}", printed(&wrong));
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.contains("UNAUTHENTICATED"), "{}", printed(&wrong));
    assert!(!stderr.contains(WRONG_TOKEN), "the token is never printed");

    let malformed = yibao_ledger_check(pair, Some("short")).await;
    assert!(!malformed.status.success(), "{}", printed(&malformed));
    let stderr = String::from_utf8_lossy(&malformed.stderr);
    assert!(stderr.contains("at least 16"), "{}", printed(&malformed));
}
