//! Overload: a pair started with small limits (8 calls in flight per listener, 16 watch
//! streams, a store queue of 64) is offered several times its capacity by `yibao load` — 64
//! transfers in flight, each an application and a watch stream — while probes from the test
//! keep more calls coming on connections of their own. Beyond capacity the bureaus refuse at
//! once: every refusal is RESOURCE_EXHAUSTED and answered within a generous bound, each
//! service's memory stays under 150 MB, the generator backs off and retries the refusals until
//! every application is answered (none fails), and afterwards the pair serves again at once,
//! every transfer ends and the ledger holds to the cent.

use std::time::Duration;

use tokio::time::Instant;
use yibao_proto::bureau::v1::GetTransferRequest;
use yibao_proto::bureau::v1::bureau_service_client::BureauServiceClient;
use yibao_tests::*;

/// The limits both bureaus run with: a small capacity, so that a short load is far beyond it.
const LIMITS: &str = "\
[limits]
requests_in_flight = 8
watch_streams = 16
watch_streams_per_connection = 16
store_queue = 64
store_queue_wait_ms = 20
";

/// Transfers the generator keeps in flight: eight times the calls a listener admits, four
/// times the watch streams.
const OFFERED: &str = "64";

/// The most a refusal may take, seen from the caller (a correctness bound on a busy 2-core
/// machine, not a benchmark: a queued call would wait for seconds).
const REFUSAL_BOUND: Duration = Duration::from_millis(250);

/// The memory bound of each service, in KiB.
const RSS_BOUND_KIB: u64 = 150 * 1024;

/// A service's resident memory in KiB (`VmRSS`), while it runs.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// What the probes saw.
#[derive(Debug, Default)]
struct Probed {
    /// How long each refusal took.
    refusals: Vec<Duration>,
    /// Calls admitted (answered NOT_FOUND or INVALID_ARGUMENT: the id is nobody's).
    admitted: usize,
    /// Any other answer, which fails the test.
    unexpected: Vec<String>,
}

/// Asks for a transfer nobody has, again and again until `until`, on a connection of its own:
/// each answer is an admission (the call reached the handler) or a refusal, timed.
async fn probe(endpoint: String, until: Instant) -> Probed {
    let mut client = BureauServiceClient::new(channel(&endpoint).await);
    let mut probed = Probed::default();
    while Instant::now() < until {
        let asked = Instant::now();
        let answer = client
            .get_transfer(GetTransferRequest {
                transfer_id: "T0".to_owned(),
            })
            .await;
        match answer.map_err(|status| status.code()) {
            Err(tonic::Code::ResourceExhausted) => probed.refusals.push(asked.elapsed()),
            Err(tonic::Code::NotFound | tonic::Code::InvalidArgument) => probed.admitted += 1,
            other => probed.unexpected.push(format!("{other:?}")),
        }
    }
    probed
}

/// Samples both services' memory every 100 ms until `until`; the largest of each.
async fn peak_rss(pids: [u32; 2], until: Instant) -> [u64; 2] {
    let mut peak = [0, 0];
    while Instant::now() < until {
        for (side, pid) in pids.iter().enumerate() {
            peak[side] = peak[side].max(rss_kib(*pid).unwrap_or(0));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    peak
}

/// `yibao load` against the pair, closed loop at [`OFFERED`] in flight for `seconds`.
fn load(pair: &Pair, seconds: u64) -> tokio::process::Command {
    let mut command = yibao_load(pair);
    command
        .args(["--seed", &SEED.to_string(), "--persons", "6000"])
        .args(["--top-up-ahead", "0", "--concurrency", OFFERED])
        .args(["--duration", &format!("{seconds}s")])
        .args(["--transfer-timeout", "60s", "--settle-timeout", "60s"])
        .args(["--no-progress", "--no-report"]);
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn beyond_capacity_calls_are_refused_at_once_memory_stays_bounded_and_the_pair_recovers() {
    let settings = tempfile::tempdir().expect("a temporary directory");
    let file = settings.path().join("limits.toml");
    std::fs::write(&file, LIMITS).expect("the settings file");
    let pair = Pair::start(PairOptions {
        seed: SEED,
        persons: 0,
        extra_env: vec![("YIBAO_CONFIG".into(), file.into_os_string())],
        ..PairOptions::default()
    })
    .await
    .expect("the pair starts with small limits");
    let pids = [Side::Out, Side::In].map(|side| pair.pid(side).expect("running"));

    let output = load(&pair, 10).output();
    let load = tokio::spawn(output);
    // Probe while transfers are under way: from the first debit until shortly before the end.
    wait_for_transfers(&pair).await;
    let until = Instant::now() + Duration::from_secs(5);
    let memory = tokio::spawn(peak_rss(pids, until));
    let probes: Vec<_> = (0..8)
        .map(|n| {
            let side = if n % 2 == 0 { Side::Out } else { Side::In };
            tokio::spawn(probe(pair.endpoint(side).to_owned(), until))
        })
        .collect();
    let mut probed = Probed::default();
    for probe in probes {
        let one = probe.await.expect("a probe ends");
        probed.refusals.extend(one.refusals);
        probed.admitted += one.admitted;
        probed.unexpected.extend(one.unexpected);
    }
    let peak = memory.await.expect("sampled");
    let output = load
        .await
        .expect("the load task ends")
        .expect("yibao load runs");
    let printed = printed(&output);
    eprintln!("{printed}");
    report(&probed, peak);

    assert_refused_fast(&probed);
    for (side, kib) in ["transfer-out", "transfer-in"].iter().zip(peak) {
        assert!(kib > 0 && kib < RSS_BOUND_KIB, "{side} peaked at {kib} KiB");
    }
    // `yibao load` exits 0 only when no transfer failed and the ledger of both bureaus holds.
    assert!(output.status.success(), "a transfer failed:\n{printed}");
    assert!(
        printed.contains("RESOURCE_EXHAUSTED"),
        "the generator was refused and retried:\n{printed}"
    );
    assert_recovered(&pair).await;
    assert_conserved(&pair).await;
}

/// Waits until the load has moved money (seeding is over and transfers run).
async fn wait_for_transfers(pair: &Pair) {
    let endpoint = pair.out_endpoint().to_owned();
    poll(Duration::from_secs(60), || {
        let endpoint = endpoint.clone();
        async move {
            let debited = cents(&totals(&endpoint).await.debited_to_transit_total);
            (debited > 0).then_some(())
        }
    })
    .await;
}

/// Every refusal is RESOURCE_EXHAUSTED and came within [`REFUSAL_BOUND`]; the probes were both
/// refused and admitted, so the limit was reached and not everything was shut out.
fn assert_refused_fast(probed: &Probed) {
    assert!(probed.unexpected.is_empty(), "{:?}", probed.unexpected);
    assert!(!probed.refusals.is_empty(), "the load reached the limit");
    assert!(probed.admitted > 0, "calls were still admitted");
    let slowest = probed.refusals.iter().max().copied().unwrap_or_default();
    assert!(
        slowest <= REFUSAL_BOUND,
        "a refusal took {slowest:?} (bound {REFUSAL_BOUND:?})"
    );
}

/// Prints what was measured, for BENCHMARKS.md.
fn report(probed: &Probed, peak: [u64; 2]) {
    let mut sorted = probed.refusals.clone();
    sorted.sort();
    let at = |q: f64| {
        let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
        sorted.get(index).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    eprintln!(
        "probes: {} refused (p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms), {} admitted; \
         peak RSS transfer-out {} MiB, transfer-in {} MiB",
        sorted.len(),
        at(0.5),
        at(0.99),
        at(1.0),
        probed.admitted,
        peak[0] / 1024,
        peak[1] / 1024
    );
}

/// Once the load is gone, calls are admitted again at once on both bureaus.
async fn assert_recovered(pair: &Pair) {
    for side in [Side::Out, Side::In] {
        let probed = probe(
            pair.endpoint(side).to_owned(),
            Instant::now() + Duration::from_millis(300),
        )
        .await;
        assert!(
            probed.refusals.is_empty() && probed.unexpected.is_empty() && probed.admitted > 0,
            "{} after the load: {probed:?}",
            side.service()
        );
    }
}
