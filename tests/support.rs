//! What the black-box tests share, on top of the `yibao-harness` crate (which starts both
//! services as real processes on ephemeral loopback ports with temporary data): the seeded pair,
//! people by flow, polling with deadlines, and the conservation check.
//!
//! The binaries are the workspace's own (`target/<profile>/transfer-{out,in}`), built by the
//! README's test command before the tests run.

use std::time::Duration;

use tonic::transport::Channel;
use yibao_domain::money::Money;
use yibao_domain::population::{self, Flow};
use yibao_proto::admin::v1::{GetClockRequest, GetLedgerTotalsRequest, LedgerTotals};
use yibao_proto::bureau::v1::bureau_service_client::BureauServiceClient;
use yibao_proto::bureau::v1::{ApplyTransferRequest, GetTransferRequest, Transfer};
use yibao_proto::common::v1::TransferState;

use yibao_harness::admin_client;
pub use yibao_harness::{Pair, PairOptions, Side};

/// A channel to one service.
pub async fn channel(endpoint: &str) -> Channel {
    Channel::from_shared(endpoint.to_owned())
        .expect("uri")
        .connect()
        .await
        .expect("connect")
}

/// Polls `check` until it returns `Some`, or panics at the deadline.
pub async fn poll<T, F, Fut>(deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "condition not reached before the deadline"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The population seed every test uses.
pub const SEED: u64 = 11;
/// How many people every test seeds (every flow appears in the first 100).
pub const PERSONS: u64 = 130;
/// How long a test waits for a state.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Both bureaus, started and seeded.
pub async fn seeded_pair() -> Pair {
    Pair::start(PairOptions {
        seed: SEED,
        persons: PERSONS,
        ..PairOptions::default()
    })
    .await
    .expect("both bureaus start and are seeded")
}

/// The first seeded person of a flow.
pub fn someone(flow: Flow) -> population::SyntheticPerson {
    (0..PERSONS)
        .map(|index| population::person(SEED, index).expect("in range"))
        .find(|person| person.flow == flow)
        .expect("the seeded population has every flow")
}

/// An application for a person, as they would fill it in.
pub fn application(person: &population::SyntheticPerson) -> ApplyTransferRequest {
    ApplyTransferRequest {
        certno: person.certno.expose_unmasked().to_owned(),
        psn_name: person.name.clone(),
        trafout_admdvs: person.out_region.to_string(),
        trafin_admdvs: person.in_region.to_string(),
        insutype_at_transfer_in: yibao_harness::population::wire_scheme(person.in_scheme) as i32,
        ..Default::default()
    }
}

/// A transfer at one bureau, if it knows it.
pub async fn transfer(endpoint: &str, id: &str) -> Option<Transfer> {
    let mut client = BureauServiceClient::new(channel(endpoint).await);
    client
        .get_transfer(GetTransferRequest {
            transfer_id: id.to_owned(),
        })
        .await
        .ok()?
        .into_inner()
        .transfer
}

/// Polls until the transfer reaches `state` at the bureau, or panics at the deadline.
pub async fn until_state(endpoint: &str, id: &str, state: TransferState) -> Transfer {
    poll(DEADLINE, || async {
        transfer(endpoint, id)
            .await
            .filter(|t| t.state == state as i32)
    })
    .await
}

/// Polls until the transfer ends at the bureau (any terminal state), or panics at the deadline.
pub async fn until_terminal(endpoint: &str, id: &str) -> Transfer {
    poll(DEADLINE, || async {
        transfer(endpoint, id)
            .await
            .filter(|t| TransferState::try_from(t.state).is_ok_and(yibao_harness::is_terminal))
    })
    .await
}

/// One bureau's ledger totals, asked without an admin token (the pairs of these tests have
/// none; a pair's own [`Pair::admin`] presents its token).
pub async fn totals(endpoint: &str) -> LedgerTotals {
    let mut admin = admin_client(channel(endpoint).await, None);
    admin
        .get_ledger_totals(GetLedgerTotalsRequest {})
        .await
        .expect("totals")
        .into_inner()
        .totals
        .expect("totals")
}

/// Cents of a wire amount.
pub fn cents(text: &str) -> u64 {
    Money::parse(text).expect("money on the wire").cents()
}

/// After a test spoke to transfer-out in transfer-in's name: the real transfer-in bureau never
/// applied for the transfer, so it refuses the form as an unknown transfer (1005) instead of
/// letting it open one. Nothing is credited, and the ledger holds with the balance in transit.
pub async fn assert_form_of_a_stranger_refused(pair: &Pair) {
    let report = pair.ledger_check().await.expect("ledger totals");
    assert!(report.holds, "ledger not conserved: {report}");
    let inn = totals(pair.in_endpoint()).await;
    assert_eq!(cents(&inn.credited_total), 0, "nothing credited");
}

/// Out debited to transit = in credited + in transit + paid to bank + returned, to the cent,
/// with no transfer in flight.
pub async fn assert_conserved(pair: &Pair) {
    let report = pair
        .wait_for_no_open_transfers(DEADLINE)
        .await
        .expect("every transfer ends");
    assert!(report.holds, "ledger not conserved: {report}");
    let out = totals(pair.out_endpoint()).await;
    let inn = totals(pair.in_endpoint()).await;
    assert_eq!(
        cents(&out.debited_to_transit_total),
        cents(&inn.credited_total)
            + cents(&out.in_transit_total)
            + cents(&out.paid_to_bank_total)
            + cents(&out.returned_total),
        "conservation across both bureaus: out {out:?} in {inn:?}"
    );
    assert_eq!(cents(&inn.credited_total), cents(&out.settled_out_total));
}

/// The bureau's today, in China time (the day its deadlines and months count in).
pub async fn today(pair: &Pair, side: Side) -> chrono::NaiveDate {
    let now = pair
        .admin(side)
        .get_clock(GetClockRequest {})
        .await
        .expect("clock")
        .into_inner()
        .now
        .expect("a time");
    chrono::DateTime::from_timestamp(now.seconds + 8 * 3600, 0)
        .expect("a valid time")
        .date_naive()
}

/// Days from the bureau's today (China time) to the day after `due_on` (YYYY-MM-DD).
pub async fn days_past(pair: &Pair, side: Side, due_on: &str) -> i64 {
    let today = today(pair, side).await;
    let due = chrono::NaiveDate::parse_from_str(due_on, "%Y-%m-%d").expect("a day");
    (due - today).num_days() + 1
}

/// `yibao load --out … --in …` against the pair's bureaus (the built binary, killed if the test
/// drops it), for the caller to add its own flags to.
pub fn yibao_load(pair: &Pair) -> tokio::process::Command {
    yibao_load_with(&["--out", pair.out_endpoint(), "--in", pair.in_endpoint()])
}

/// `yibao load` with `args` first (the built binary, killed if the test drops it).
pub fn yibao_load_with(args: &[&str]) -> tokio::process::Command {
    let bin_dir = yibao_harness::default_bin_dir().expect("the binaries' directory");
    let mut command =
        tokio::process::Command::new(yibao_harness::locate::binary_path(&bin_dir, "yibao"));
    command
        .arg("load")
        .args(args)
        .env("NO_COLOR", "1")
        .kill_on_drop(true);
    command
}

/// Waits for a `yibao load` spawned with [`yibao_load`] and requires that it passed: it exits 0
/// only when no transfer failed and the ledger of every bureau it drove holds. Prints its
/// report (shown when the test fails).
pub async fn load_passed(load: tokio::task::JoinHandle<std::io::Result<std::process::Output>>) {
    let output = load
        .await
        .expect("the load task ends")
        .expect("yibao load runs");
    let printed = printed(&output);
    eprintln!("{printed}");
    assert!(
        output.status.success(),
        "applications failed or the ledger broke:\n{printed}"
    );
}

/// Everything a finished process printed, standard output then standard error.
pub fn printed(output: &std::process::Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Two yibao bureaus that know each other only as [`yibao_harness::Counterpart`]s, the way a
/// team's own bureau and yibao meet: `out` plays transfer-out facing `inn`, which stands in for
/// the team's transfer-in bureau (and the other way round). `inn` starts first, its peer `out`'s
/// platform port file (read when needed); `out` is pointed at `inn`'s platform endpoint and
/// presents the certificate `inn`'s counterpart made for its peer. Both seed persons
/// `0..persons` of [`SEED`]. Keep the directory as long as both run.
pub async fn counterparts(
    persons: u64,
) -> (
    yibao_harness::Counterpart,
    yibao_harness::Counterpart,
    tempfile::TempDir,
) {
    use yibao_harness::{Counterpart, CounterpartOptions, CounterpartTls};
    let root = tempfile::tempdir().expect("a directory");
    let out_dir = root.path().join("out");
    let out_platform_port = out_dir.join("transfer-out.platform.port");
    let seeded = |options: CounterpartOptions| CounterpartOptions {
        seed: SEED,
        persons,
        ..options
    };
    let inn = Counterpart::start(seeded(CounterpartOptions {
        data_dir: Some(root.path().join("in")),
        ..CounterpartOptions::new(
            Side::In,
            yibao_harness::process::peer_from_port_file(&out_platform_port),
        )
    }))
    .await
    .expect("the transfer-in counterpart starts");
    let peer_tls = inn.peer_tls().expect("certificates for its peer").clone();
    let endpoint = inn.platform_endpoint().expect("a platform address");
    let out = Counterpart::start(seeded(CounterpartOptions {
        data_dir: Some(out_dir),
        tls: CounterpartTls::Files(peer_tls),
        ..CounterpartOptions::new(Side::Out, endpoint)
    }))
    .await
    .expect("the transfer-out counterpart starts");
    (out, inn, root)
}

/// The shipped region directory with `policy_line` added to Hohhot's (150100) policy table,
/// written to `dir`: a pair whose Hohhot has a policy the shipped file leaves at its default.
pub fn directory_with_hohhot_policy(
    dir: &tempfile::TempDir,
    policy_line: &str,
) -> std::path::PathBuf {
    let shipped = std::fs::read_to_string(PairOptions::default().directory).expect("regions");
    let hohhot = shipped.find("code = \"150100\"").expect("Hohhot is listed");
    let table = hohhot
        + shipped[hohhot..]
            .find("[region.policy]\n")
            .expect("Hohhot has a policy table")
        + "[region.policy]\n".len();
    let changed = format!("{}{policy_line}\n{}", &shipped[..table], &shipped[table..]);
    let path = dir.path().join("regions.toml");
    std::fs::write(&path, changed).expect("write the directory");
    path
}

/// A pair whose Hohhot has `policy_line` in its policy (see [`directory_with_hohhot_policy`]);
/// keep `dir` alive as long as the pair.
pub async fn pair_with_hohhot_policy(dir: &tempfile::TempDir, policy_line: &str) -> Pair {
    Pair::start(PairOptions {
        seed: SEED,
        persons: PERSONS,
        directory: directory_with_hohhot_policy(dir, policy_line),
        ..PairOptions::default()
    })
    .await
    .expect("the pair starts")
}
