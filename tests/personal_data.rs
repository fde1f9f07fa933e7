//! Black-box test of the rule that personal data never appears unmasked in logs (DOMAIN.md,
//! "Invariants"): both services run with `RUST_LOG=trace`, people of every flow transfer (with
//! bank accounts where the balance is paid out), apply under a wrong name, ask for and verify
//! certificates, and then `yibao load` runs a short load against the same pair and writes its
//! report. Every line either service logged, everything `yibao load` printed and both report
//! files are then searched for the ID number, the name and the bank account number of every
//! person seeded. One found fails the test, naming the file and the line (masked). A leak is
//! fixed where the text is made, never by filtering the output.

use std::collections::HashSet;
use std::path::Path;

use yibao_domain::id::mask_name;
use yibao_domain::population::{self, Flow, SyntheticPerson};
use yibao_proto::bureau::v1::{
    GetPersonRequest, IssueCertificateRequest, ListTransfersRequest, VerifyCertificateRequest,
};
use yibao_tests::*;

/// The population index of the first person `yibao load` seeds: after the pair's own.
const LOAD_FIRST_PERSON: u64 = 10_000;

/// The flows the test drives itself: every outcome, payouts with bank accounts included.
const FLOWS: [Flow; 8] = [
    Flow::CrossProvince,
    Flow::CrossProvinceOutInitiated,
    Flow::Instant,
    Flow::NotConnected,
    Flow::RetireePayout,
    Flow::RegionPaysOut,
    Flow::RefusedNotStopped,
    Flow::RefusedNotEnrolled,
];

/// The personal data of people, as exact strings: ID numbers, names, bank account numbers.
struct Needles {
    /// Every needle.
    all: HashSet<String>,
    /// The lengths of the digit needles (ID numbers and account numbers), in bytes.
    digit_lengths: Vec<usize>,
    /// The lengths of the names, in characters.
    name_lengths: Vec<usize>,
}

impl Needles {
    fn of(people: impl IntoIterator<Item = SyntheticPerson>) -> Needles {
        let mut all = HashSet::new();
        let (mut digit_lengths, mut name_lengths) = (Vec::new(), Vec::new());
        for person in people {
            for digits in [
                person.certno.expose_unmasked().to_owned(),
                person.bank_account_number.clone(),
            ] {
                digit_lengths.push(digits.len());
                all.insert(digits);
            }
            name_lengths.push(person.name.chars().count());
            all.insert(person.name);
        }
        for lengths in [&mut digit_lengths, &mut name_lengths] {
            lengths.sort_unstable();
            lengths.dedup();
        }
        Needles {
            all,
            digit_lengths,
            name_lengths,
        }
    }

    /// The first needle in `line`: every window of a digit run (`0-9`, `X`) and of a run of
    /// other letters (names) is looked up, so the search is linear in the text.
    fn find_in(&self, line: &str) -> Option<String> {
        let chars: Vec<char> = line.chars().collect();
        let digit = |c: char| c.is_ascii_digit() || c == 'X';
        let letter = |c: char| c.is_alphabetic() && !c.is_ascii();
        for (is_part, lengths) in [
            (&digit as &dyn Fn(char) -> bool, &self.digit_lengths),
            (&letter, &self.name_lengths),
        ] {
            let mut start = 0;
            while start < chars.len() {
                if !is_part(chars[start]) {
                    start += 1;
                    continue;
                }
                let end = (start..chars.len())
                    .find(|&i| !is_part(chars[i]))
                    .unwrap_or(chars.len());
                for &length in lengths.iter().filter(|&&length| length <= end - start) {
                    for from in start..=end - length {
                        let window: String = chars[from..from + length].iter().collect();
                        if self.all.contains(&window) {
                            return Some(window);
                        }
                    }
                }
                start = end;
            }
        }
        None
    }
}

/// Every line of `text` holding a needle, as `source:line: needle (masked)`.
fn leaks(needles: &Needles, source: &str, text: &str) -> Vec<String> {
    text.lines()
        .enumerate()
        .filter_map(|(number, line)| {
            needles.find_in(line).map(|needle| {
                let masked = if needle.is_ascii() {
                    format!("{}…", &needle[..6])
                } else {
                    mask_name(&needle)
                };
                format!("{source}:{}: {masked}", number + 1)
            })
        })
        .collect()
}

/// Transfers, refusals, a wrong name, certificates: the traffic whose logs are searched.
async fn drive_the_pair(pair: &Pair) -> Vec<SyntheticPerson> {
    let mut used = Vec::new();
    let mut ids = Vec::new();
    for flow in FLOWS {
        let person = someone(flow);
        match pair.apply(&person).await {
            Ok(transfer) => ids.push(transfer.transfer_id),
            Err(error) => assert!(flow.name().starts_with("refused"), "{flow:?}: {error}"),
        }
        used.push(person);
    }
    // A payout to someone else's account is refused naming the field, not the account.
    let mut request = yibao_harness::population::apply_request(&someone(Flow::NotConnected));
    if let Some(account) = request.bank_account.as_mut() {
        account.account_holder_name = "冒名顶替".to_owned();
    }
    let status = pair
        .bureau_out()
        .apply_transfer(request)
        .await
        .expect_err("someone else's account");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    let mut impostor = application(&someone(Flow::CrossProvinceOutInitiated));
    impostor.psn_name = "冒名顶替".to_owned();
    let status = pair
        .bureau_out()
        .apply_transfer(impostor)
        .await
        .expect_err("a wrong name");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert!(
        ids.len() >= 6,
        "the transfers that were not refused: {ids:?}"
    );
    let ledger = pair
        .wait_for_no_open_transfers(DEADLINE)
        .await
        .expect("every transfer ends");
    assert!(ledger.holds, "{ledger}");
    for person in &used {
        let certno = person.certno.expose_unmasked().to_owned();
        for side in Side::BOTH {
            let _ = pair
                .bureau(side)
                .get_person(GetPersonRequest {
                    certno: certno.clone(),
                })
                .await;
            pair.bureau(side)
                .list_transfers(ListTransfersRequest {
                    certno: certno.clone(),
                    ..Default::default()
                })
                .await
                .expect("listed");
        }
    }
    certificates(pair, &used[0]).await;
    used
}

/// A certificate issued to its holder verifies, masked and without the balance; a wrong name
/// gets none.
async fn certificates(pair: &Pair, person: &SyntheticPerson) {
    let certno = person.certno.expose_unmasked().to_owned();
    let request = |psn_name: &str| IssueCertificateRequest {
        certno: certno.clone(),
        psn_name: psn_name.to_owned(),
    };
    let wrong = pair
        .bureau_out()
        .issue_certificate(request("冒名顶替"))
        .await
        .expect_err("a wrong name gets no certificate");
    assert_eq!(wrong.code(), tonic::Code::FailedPrecondition);
    let issued = pair
        .bureau_out()
        .issue_certificate(request(&person.name))
        .await
        .expect("the holder gets the certificate")
        .into_inner()
        .certificate
        .expect("a certificate");
    assert_eq!(
        (issued.certno.as_str(), issued.psn_name.as_str()),
        (certno.as_str(), person.name.as_str())
    );
    let verified = pair
        .bureau_out()
        .verify_certificate(VerifyCertificateRequest {
            verification_code: issued.verification_code.to_lowercase(),
        })
        .await
        .expect("verified")
        .into_inner();
    assert!(verified.valid);
    let shown = verified.certificate.expect("the certificate");
    assert_eq!(shown.certno, person.certno.masked());
    assert_eq!(shown.psn_name, mask_name(&person.name));
    assert_eq!(shown.personal_account_balance, "");
    assert_eq!(shown.verification_code, issued.verification_code);
}

/// Runs `yibao load` against the pair; returns what it printed and the seeded range.
async fn run_load(pair: &Pair, reports: &Path) -> (String, u64) {
    let output = yibao_load(pair)
        .args(["--seed", &SEED.to_string()])
        .args(["--first-person", &LOAD_FIRST_PERSON.to_string()])
        .args([
            "--persons",
            "200",
            "--transfers",
            "60",
            "--concurrency",
            "8",
        ])
        .args([
            "--top-up-ahead",
            "0",
            "--settle-timeout",
            "20s",
            "--no-progress",
        ])
        .arg("--report-dir")
        .arg(reports)
        .env("RUST_LOG", "trace")
        .env("NO_COLOR", "1")
        .output()
        .await
        .expect("yibao load runs");
    let printed = printed(&output);
    assert!(output.status.success(), "yibao load failed:\n{printed}");
    let json = std::fs::read_to_string(reports.join("report.json")).expect("report.json");
    let report: serde_json::Value = serde_json::from_str(&json).expect("the report is JSON");
    assert_eq!(report["seeding"]["first_person"], LOAD_FIRST_PERSON);
    let seeded = report["seeding"]["persons"]
        .as_u64()
        .expect("the report says how many people were seeded");
    (printed, seeded)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_id_number_name_or_bank_account_appears_in_trace_logs_or_the_load_report() {
    let root = tempfile::tempdir().expect("a temporary directory");
    let pair = Pair::start(PairOptions {
        seed: SEED,
        persons: PERSONS,
        data_dir: Some(root.path().join("pair")),
        extra_env: vec![("RUST_LOG".into(), "trace".into())],
        ..PairOptions::default()
    })
    .await
    .expect("both bureaus start and are seeded");
    let used = drive_the_pair(&pair).await;
    let reports = root.path().join("reports");
    let (printed, seeded) = run_load(&pair, &reports).await;
    assert!(seeded >= 60, "the load seeded its people");

    let people = (0..PERSONS)
        .chain(LOAD_FIRST_PERSON..LOAD_FIRST_PERSON + seeded)
        .map(|index| population::person(SEED, index).expect("in range"));
    let needles = Needles::of(people);
    assert!(
        used.iter().all(|p| needles.all.contains(&p.name)),
        "the people the test used are searched for"
    );
    let mut sources = vec![("yibao load output".to_owned(), printed)];
    for side in Side::BOTH {
        let log = pair.log_files(side).stdout.clone();
        let text = std::fs::read_to_string(&log).expect("the service's log");
        assert!(
            text.lines().any(|line| line.contains("TRACE")),
            "{} logged at trace level",
            side.service()
        );
        sources.push((side.service().to_owned(), text));
    }
    for report in ["report.json", "report.html"] {
        let text = std::fs::read_to_string(reports.join(report)).expect("the report");
        sources.push((report.to_owned(), text));
    }
    let found: Vec<String> = sources
        .iter()
        .flat_map(|(source, text)| leaks(&needles, source, text))
        .collect();
    if !found.is_empty() {
        let kept = root.keep();
        panic!(
            "{} lines hold unmasked personal data (logs and reports kept in {}), the first: {:#?}",
            found.len(),
            kept.display(),
            &found[..found.len().min(20)]
        );
    }
    // The search itself finds what it looks for.
    let person = &used[0];
    let planted = format!("x {} y {}", person.certno.expose_unmasked(), person.name);
    assert_eq!(leaks(&needles, "planted", &planted).len(), 1);
    assert!(needles.find_in(&person.name).is_some());
    assert!(needles.find_in(&person.bank_account_number).is_some());
    assert!(needles.find_in(&person.certno.masked()).is_none());
}
