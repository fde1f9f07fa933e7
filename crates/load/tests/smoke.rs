//! The CI smoke run of the load generator: a spawned pair, about two seconds or a few hundred
//! transfers of the default mix, and the verdict that matters — the ledger holds and no transfer
//! failed. The service binaries must be built first (`cargo build --workspace --bins`).

use std::time::Duration;

use yibao_load::{LoadOptions, Pace, Stop};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_spawned_run_keeps_the_books_and_fails_nothing() {
    let reports = tempfile::tempdir().expect("temporary directory");
    let mut options = LoadOptions::spawned();
    options.persons = 2_000;
    options.pace = Pace::Closed { concurrency: 16 };
    options.stop = Stop {
        duration: Some(Duration::from_secs(2)),
        transfers: Some(400),
    };
    options.baseline = Some(Duration::from_millis(500));
    options.report_dir = Some(reports.path().to_path_buf());
    options.settle_timeout = Duration::from_secs(30);

    let report = yibao_load::run(options, false).await.expect("the run");

    report.print_summary();
    assert!(report.ledger_holds(), "{:?}", report.ledger.problems);
    assert_eq!(report.errors_total(), 0, "{:?}", report.errors);
    assert!(report.transfers.succeeded > 0);
    assert_eq!(report.transfers.succeeded, report.transfers.started);
    assert!(report.transfers.refused > 0, "the default mix has refusals");
    assert!(report.ratio_to_baseline.is_some_and(|r| r > 0.0));
    let html = std::fs::read_to_string(reports.path().join("report.html")).expect("html");
    assert!(html.contains("<svg") && !html.contains("<script"));
    let json = std::fs::read_to_string(reports.path().join("report.json")).expect("json");
    assert!(json.contains("\"ledger\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_loop_measures_from_the_schedule() {
    let mut options = LoadOptions::spawned();
    options.persons = 1_000;
    options.pace = Pace::Open {
        rate_per_s: 200.0,
        max_in_flight: 100,
    };
    options.stop = Stop {
        duration: None,
        transfers: Some(200),
    };
    options.settle_timeout = Duration::from_secs(30);

    let report = yibao_load::run(options, false).await.expect("the run");

    assert!(report.ledger_holds(), "{:?}", report.ledger.problems);
    assert_eq!(report.errors_total(), 0, "{:?}", report.errors);
    // The schedule decides how many start (a count, not a timing: no flaky bound on a busy
    // machine), and latency is also measured from the intended start.
    assert_eq!(report.transfers.started, 200);
    assert!(
        report
            .latency
            .contains_key("schedule lag (start − intended)")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_for_a_duration_seeds_more_people_as_it_goes() {
    let mut options = LoadOptions::spawned();
    // Far fewer people than a second of transfers uses: without the top-up a flow runs out.
    options.persons = 100;
    options.top_up_ahead = 300;
    options.pace = Pace::Closed { concurrency: 16 };
    options.stop = Stop {
        duration: Some(Duration::from_secs(2)),
        transfers: None,
    };
    options.settle_timeout = Duration::from_secs(30);

    let report = yibao_load::run(options, false).await.expect("the run");

    assert!(report.ledger_holds(), "{:?}", report.ledger.problems);
    assert_eq!(report.errors_total(), 0, "{:?}", report.errors);
    assert!(
        report.seeding.topped_up > 0,
        "people were seeded during the run"
    );
    assert!(
        report.warnings.iter().all(|w| !w.contains("ran out")),
        "{:?}",
        report.warnings
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawned_pair_requiring_an_admin_token_is_seeded_and_checked_with_it() {
    const TOKEN: &str = "load-smoke-admin-token-5e21";
    let reports = tempfile::tempdir().expect("temporary directory");
    let mut options = LoadOptions::spawned();
    options.persons = 500;
    options.pace = Pace::Closed { concurrency: 8 };
    options.stop = Stop {
        duration: Some(Duration::from_secs(2)),
        transfers: Some(50),
    };
    options.report_dir = Some(reports.path().to_path_buf());
    options.settle_timeout = Duration::from_secs(30);
    options.admin_token = Some(yibao_harness::AdminToken::new(TOKEN).expect("a valid token"));

    let report = yibao_load::run(options, false).await.expect("the run");

    assert!(report.ledger_holds(), "{:?}", report.ledger.problems);
    assert_eq!(report.errors_total(), 0, "{:?}", report.errors);
    assert!(report.transfers.succeeded > 0);
    let json = std::fs::read_to_string(reports.path().join("report.json")).expect("json");
    assert!(!json.contains(TOKEN), "the token stays out of the report");
}
