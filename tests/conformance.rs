//! `yibao conformance` against yibao's own bureaus, in both roles: every case passes against a
//! correct bureau, the relevant cases fail against a deliberately broken one
//! (`YIBAO_BROKEN_FOR_TESTS=forget-msgids`, `remit-short`), cases that need what a target lacks
//! are skipped with the reason, the money-leg cases pass against bureaus whose Hohhot remits
//! apart (and are skipped without `--remittance`), and the JUnit and HTML reports say the same
//! as the exit status.
//!
//! Each test starts one yibao bureau as a [`Counterpart`] whose peer is the suite: the suite
//! binds port 0 and writes its address to a port file, which the bureau reads as its peer
//! (`file:PATH`), so no port is fixed in advance.

use std::path::{Path, PathBuf};
use std::process::Output;

use yibao_harness::{Counterpart, CounterpartOptions, CounterpartTls, Side};
use yibao_tests::*;

/// A yibao bureau of `side` whose peer is the suite's port file in `dir`, with `env` set.
async fn target(side: Side, dir: &Path, env: &[(&str, &str)]) -> Counterpart {
    target_reading(side, dir, env, yibao_harness::default_directory()).await
}

/// [`target`] reading the region directory at `directory`.
async fn target_reading(
    side: Side,
    dir: &Path,
    env: &[(&str, &str)],
    directory: PathBuf,
) -> Counterpart {
    let port_file = dir.join("suite.port");
    Counterpart::start(CounterpartOptions {
        directory,
        data_dir: Some(dir.join("bureau")),
        tls: CounterpartTls::Development {
            dir: Some(dir.join("certs")),
        },
        persons: 0,
        extra_env: env
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect(),
        ..CounterpartOptions::new(
            side,
            yibao_harness::process::peer_from_port_file(&port_file),
        )
    })
    .await
    .expect("the target bureau starts")
}

/// Runs `yibao conformance` against `target` with `extra` flags; reports in `dir`.
async fn conformance(target: &Counterpart, dir: &Path, api: bool, extra: &[&str]) -> Output {
    let bin_dir = yibao_harness::default_bin_dir().expect("the binaries' directory");
    let certs = dir.join("certs");
    let role = match target.side() {
        Side::Out => "transfer-out",
        Side::In => "transfer-in",
    };
    let mut command =
        tokio::process::Command::new(yibao_harness::locate::binary_path(&bin_dir, "yibao"));
    command
        .args(["conformance", "--role", role, "--target"])
        .arg(target.platform_endpoint().expect("a platform endpoint"))
        .args(["--listen", "127.0.0.1:0", "--port-file"])
        .arg(dir.join("suite.port"))
        .arg("--tls-ca")
        .arg(certs.join("ca.pem"))
        .arg("--tls-cert")
        .arg(certs.join("peer.pem"))
        .arg("--tls-key")
        .arg(certs.join("peer.key"))
        .args(["--first-person", "0", "--wait", "20s", "--junit"])
        .arg(dir.join("report.xml"))
        .arg("--html")
        .arg(dir.join("report.html"))
        .args(extra)
        .kill_on_drop(true);
    if api {
        command.arg("--target-api").arg(target.endpoint());
    }
    command.output().await.expect("yibao conformance runs")
}

/// The words each case ended with, from the text report: (name, PASS/FAIL/SKIP).
fn results(output: &Output) -> Vec<(String, String)> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let word = words.next()?;
            ["PASS", "FAIL", "SKIP"]
                .contains(&word)
                .then(|| Some((words.next()?.to_owned(), word.to_owned())))?
        })
        .collect()
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The money-leg cases against a target of `side`: they need `--remittance`.
fn money_leg_cases(side: Side) -> &'static [&'static str] {
    match side {
        Side::In => &[
            "remittance-credits-the-balance-once",
            "remittance-repeated-msgid-same-answer",
            "short-remittance-refused-and-held",
            "short-remittance-returned-by-operator",
        ],
        Side::Out => &["remits-after-its-form", "refused-remittance-remitted-again"],
    }
}

async fn passes_against_yibao(side: Side, cases: usize) {
    let dir = tempfile::tempdir().expect("a directory");
    let bureau = target(side, dir.path(), &[]).await;
    let output = conformance(&bureau, dir.path(), true, &[]).await;
    let all = results(&output);
    assert!(output.status.success(), "{}", printed(&output));
    assert_eq!(all.len(), cases, "every case ran: {}", printed(&output));
    let money_leg = money_leg_cases(side);
    assert!(
        all.iter()
            .all(|(name, word)| if money_leg.contains(&name.as_str()) {
                word == "SKIP"
            } else {
                word == "PASS"
            }),
        "every case passes against yibao with its APIs, the money leg's are skipped without --remittance: {}",
        printed(&output)
    );
    let text = printed(&output);
    assert!(
        text.contains("the money leg is off: give --remittance N"),
        "{text}"
    );
    let junit = read(dir.path().join("report.xml"));
    assert!(
        junit.contains(&format!(
            "tests=\"{cases}\" failures=\"0\" skipped=\"{}\"",
            money_leg.len()
        )),
        "{junit}"
    );
    assert_eq!(junit.matches("<testcase ").count(), cases, "{junit}");
    let html = read(dir.path().join("report.html"));
    for (name, _) in &all {
        assert!(
            html.contains(&format!("id=\"{name}\"")),
            "{name} in the HTML"
        );
    }
    let report = bureau.ledger_check().await.expect("the target's ledger");
    assert!(report.holds, "the target's own ledger holds: {report}");
}

#[tokio::test]
async fn every_case_passes_against_yibaos_transfer_in() {
    passes_against_yibao(Side::In, 17).await;
}

#[tokio::test]
async fn every_case_passes_against_yibaos_transfer_out() {
    passes_against_yibao(Side::Out, 14).await;
}

/// Runs the money-leg cases (and the conservation check) against a yibao bureau of `side`
/// whose directory has Hohhot remit balances apart 3 working days after the form.
async fn the_money_leg_passes_against_yibao(side: Side) {
    let dir = tempfile::tempdir().expect("a directory");
    let directory = directory_with_hohhot_policy(&dir, "remittance = { after_working_days = 3 }");
    let bureau = target_reading(side, dir.path(), &[], directory).await;
    let money_leg = money_leg_cases(side);
    let only = format!("{},conservation-to-the-cent", money_leg.join(","));
    let output = conformance(
        &bureau,
        dir.path(),
        true,
        &["--remittance", "3", "--only", &only],
    )
    .await;
    assert!(output.status.success(), "{}", printed(&output));
    let all = results(&output);
    assert_eq!(all.len(), money_leg.len() + 1, "{}", printed(&output));
    assert!(
        all.iter().all(|(_, word)| word == "PASS"),
        "every money-leg case passes against yibao whose region remits apart: {}",
        printed(&output)
    );
    let report = bureau.ledger_check().await.expect("the target's ledger");
    assert!(report.holds, "the target's own ledger holds: {report}");
}

#[tokio::test]
async fn the_money_leg_cases_pass_against_yibaos_transfer_in() {
    the_money_leg_passes_against_yibao(Side::In).await;
}

#[tokio::test]
async fn the_money_leg_cases_pass_against_yibaos_transfer_out() {
    the_money_leg_passes_against_yibao(Side::Out).await;
}

#[tokio::test]
async fn a_transfer_out_bureau_that_remits_a_cent_short_fails_the_remittance_case() {
    let dir = tempfile::tempdir().expect("a directory");
    let directory = directory_with_hohhot_policy(&dir, "remittance = { after_working_days = 3 }");
    let broken = [("YIBAO_BROKEN_FOR_TESTS", "remit-short")];
    let bureau = target_reading(Side::Out, dir.path(), &broken, directory).await;
    let output = conformance(
        &bureau,
        dir.path(),
        true,
        &["--remittance", "3", "--only", "remits-after-its-form"],
    )
    .await;
    let text = printed(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert_eq!(
        results(&output),
        vec![("remits-after-its-form".to_owned(), "FAIL".to_owned())],
        "{text}"
    );
    assert!(
        text.contains("expected: the remittance carries the form's balance"),
        "{text}"
    );
}

async fn a_broken_bureau_fails(side: Side, must_fail: &[&str], must_pass: &[&str]) {
    let dir = tempfile::tempdir().expect("a directory");
    let bureau = target(
        side,
        dir.path(),
        &[("YIBAO_BROKEN_FOR_TESTS", "forget-msgids")],
    )
    .await;
    let output = conformance(&bureau, dir.path(), true, &[]).await;
    assert_eq!(output.status.code(), Some(1), "{}", printed(&output));
    let all = results(&output);
    let word = |name: &str| {
        all.iter()
            .find(|(case, _)| case == name)
            .map(|(_, word)| word.clone())
    };
    for name in must_fail {
        assert_eq!(
            word(name).as_deref(),
            Some("FAIL"),
            "{name}: {}",
            printed(&output)
        );
    }
    for name in must_pass {
        assert_eq!(
            word(name).as_deref(),
            Some("PASS"),
            "{name}: {}",
            printed(&output)
        );
    }
    let text = printed(&output);
    assert!(text.contains("expected: infcode 1004"), "{text}");
    assert!(text.contains("messages exchanged:"), "{text}");
    let junit = read(dir.path().join("report.xml"));
    assert!(
        junit.contains("<failure message=\"expected: infcode 1004"),
        "{junit}"
    );
    let html = read(dir.path().join("report.html"));
    assert!(
        html.contains("The target&apos;s message journal")
            || html.contains("The target's message journal"),
        "a failing case shows the target's journal"
    );
}

#[tokio::test]
async fn a_transfer_in_bureau_that_forgets_msgids_fails_the_duplicate_cases() {
    a_broken_bureau_fails(
        Side::In,
        &["modified-body-1004"],
        &[
            "form-credited",
            "wrong-infno-1003",
            "conservation-to-the-cent",
        ],
    )
    .await;
}

#[tokio::test]
async fn a_transfer_out_bureau_that_forgets_msgids_fails_the_duplicate_cases() {
    a_broken_bureau_fails(
        Side::Out,
        &["modified-body-1004"],
        &["request-transfer-completes", "wrong-infno-1003"],
    )
    .await;
}

#[tokio::test]
async fn without_its_apis_the_cases_that_need_them_are_skipped_with_the_reason() {
    let dir = tempfile::tempdir().expect("a directory");
    let bureau = target(Side::In, dir.path(), &[]).await;
    // Without the admin API the suite cannot seed people: the bureau holds the population.
    let mut admin = bureau.admin();
    yibao_harness::seed::seed_one("transfer-in", &mut admin, 2026, 300)
        .await
        .expect("seeded");
    let only = "form-credited,applied-transfer-completes,deadline-form-never-arrives";
    let output = conformance(&bureau, dir.path(), false, &["--only", only]).await;
    assert!(
        output.status.success(),
        "skips do not fail: {}",
        printed(&output)
    );
    let all = results(&output);
    assert_eq!(
        all,
        vec![
            ("form-credited".to_owned(), "PASS".to_owned()),
            ("applied-transfer-completes".to_owned(), "SKIP".to_owned()),
            ("deadline-form-never-arrives".to_owned(), "SKIP".to_owned()),
        ],
        "{}",
        printed(&output)
    );
    let text = printed(&output);
    assert!(text.contains("--target-api"), "{text}");
    assert!(text.contains("--target-admin"), "{text}");
}

#[tokio::test]
async fn the_cases_are_listed_and_an_unknown_one_is_refused_by_name() {
    let bin_dir = yibao_harness::default_bin_dir().expect("the binaries' directory");
    let yibao = yibao_harness::locate::binary_path(&bin_dir, "yibao");
    let listed = tokio::process::Command::new(&yibao)
        .args(["conformance", "--list"])
        .output()
        .await
        .expect("runs");
    let text = printed(&listed);
    assert!(listed.status.success(), "{text}");
    for name in [
        "form-after-abort-refused",
        "refusal-is-an-answer",
        "lost-answer-retried-once",
    ] {
        assert!(text.contains(name), "{name} listed: {text}");
    }
    let refused = tokio::process::Command::new(&yibao)
        .args([
            "conformance",
            "--role",
            "transfer-in",
            "--target",
            "https://127.0.0.1:1",
            "--plaintext",
            "--only",
            "no-such-case",
        ])
        .output()
        .await
        .expect("runs");
    let text = printed(&refused);
    assert!(!refused.status.success(), "{text}");
    assert!(
        text.contains("--only no-such-case") && text.contains("form-credited"),
        "{text}"
    );
}

/// The hand-written transfer-in bureau of `crates/harness/examples/own_transfer_in.rs`, serving
/// on a port of its own with `certs/my-bureau.pem`; killed when dropped.
async fn example_bureau(certs: &Path) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt;
    let bin_dir = yibao_harness::default_bin_dir().expect("the binaries' directory");
    let example = bin_dir.join("examples").join("own_transfer_in");
    let mut child = tokio::process::Command::new(&example)
        .arg("serve")
        .arg("127.0.0.1:0")
        .arg(certs.join("my-bureau.pem"))
        .arg(certs.join("my-bureau.key"))
        .arg(certs.join("ca.pem"))
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (the README's build step builds the examples)",
                example.display()
            )
        });
    let stdout = child.stdout.take().expect("its output");
    let mut line = String::new();
    tokio::io::BufReader::new(stdout)
        .read_line(&mut line)
        .await
        .expect("it says where it serves");
    let address = line
        .trim()
        .rsplit(' ')
        .next()
        .expect("an address")
        .to_owned();
    (child, format!("https://{address}"))
}

#[tokio::test]
async fn a_bureau_written_by_hand_passes_what_it_implements_and_the_rest_is_skipped() {
    let dir = tempfile::tempdir().expect("a directory");
    let certs = dir.path().join("certs");
    let bin_dir = yibao_harness::default_bin_dir().expect("the binaries' directory");
    let yibao = yibao_harness::locate::binary_path(&bin_dir, "yibao");
    for extra in [&[][..], &["--bureau", "my-bureau=540100"][..]] {
        // The directory named, so that `yibao certs` finds it from any target directory.
        let made = tokio::process::Command::new(&yibao)
            .arg("certs")
            .arg("--out")
            .arg(&certs)
            .arg("--directory")
            .arg(yibao_harness::default_directory())
            .args(extra)
            .output()
            .await
            .expect("yibao certs runs");
        assert!(made.status.success(), "{}", printed(&made));
    }
    let (_bureau, target) = example_bureau(&certs).await;
    let output = tokio::process::Command::new(&yibao)
        .args(["conformance", "--role", "transfer-in", "--target", &target])
        .args(["--listen", "127.0.0.1:0", "--wait", "10s", "--certs"])
        .arg(&certs)
        .kill_on_drop(true)
        .output()
        .await
        .expect("yibao conformance runs");
    assert!(output.status.success(), "{}", printed(&output));
    let all = results(&output);
    let skipped: Vec<&str> = all
        .iter()
        .filter(|(_, word)| word == "SKIP")
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(
        skipped,
        [
            "applied-transfer-completes",
            "batch-one-bad-message",
            "remittance-credits-the-balance-once",
            "remittance-repeated-msgid-same-answer",
            "short-remittance-refused-and-held",
            "short-remittance-returned-by-operator",
            "deadline-form-never-arrives"
        ],
        "no bureau API, no batches, no money leg, no clock: {}",
        printed(&output)
    );
    assert_eq!(all.len(), 17, "{}", printed(&output));
}
