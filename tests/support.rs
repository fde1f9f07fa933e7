//! A small harness for the black-box tests: starts `transfer-out` and `transfer-in` as real
//! processes on ephemeral loopback ports with temporary data, and polls with deadlines.
//!
//! The binaries are the workspace's own (`target/<profile>/transfer-{out,in}`), built by the
//! README's test command before the tests run.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};
use tonic::transport::Channel;
use yibao_domain::money::Money;
use yibao_domain::population::{self, Flow};
use yibao_proto::admin::v1::admin_service_client::AdminServiceClient;
use yibao_proto::admin::v1::{GetLedgerTotalsRequest, LedgerTotals, SeedPopulationRequest};
use yibao_proto::bureau::v1::bureau_service_client::BureauServiceClient;
use yibao_proto::bureau::v1::{ApplyTransferRequest, GetTransferRequest, Transfer};
use yibao_proto::common::v1::TransferState;

/// Both bureaus, killed when dropped.
#[derive(Debug)]
pub struct Pair {
    /// transfer-out's endpoint.
    pub out: String,
    /// transfer-in's endpoint.
    pub transfer_in: String,
    children: Vec<Child>,
    /// Kept so the data lives as long as the pair.
    pub data: tempfile::TempDir,
}

fn bin_dir() -> PathBuf {
    // Test executables live in target/<profile>/deps.
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_path_buf()
}

fn directory() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/regions.toml")
}

async fn wait_for_file(path: &Path, deadline: Duration) -> String {
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && !text.trim().is_empty()
        {
            return format!("http://{}", text.trim());
        }
        assert!(
            tokio::time::Instant::now() < until,
            "{} did not appear",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Pair {
    /// Starts both services with admin and test clock enabled.
    pub async fn start() -> Pair {
        let data = tempfile::tempdir().expect("temp dir");
        let mut children = Vec::new();
        for (role, peer) in [("out", "in"), ("in", "out")] {
            let root = data.path();
            let log = std::fs::File::create(root.join(format!("{role}.log"))).expect("log file");
            let child = Command::new(bin_dir().join(format!("transfer-{role}")))
                .env("YIBAO_LISTEN", "127.0.0.1:0")
                .env("YIBAO_DATA_DIR", root.join(role))
                .env("YIBAO_PORT_FILE", root.join(format!("{role}.port")))
                .env(
                    "YIBAO_PEER",
                    format!("file:{}", root.join(format!("{peer}.port")).display()),
                )
                .env("YIBAO_DIRECTORY", directory())
                .env("YIBAO_ADMIN", "true")
                .env("YIBAO_TEST_CLOCK", "true")
                .stdout(Stdio::from(log.try_clone().expect("log handle")))
                .stderr(Stdio::from(log))
                .kill_on_drop(true)
                .spawn()
                .expect("the service binaries are built (cargo build --workspace --bins)");
            children.push(child);
        }
        let out = wait_for_file(&data.path().join("out.port"), Duration::from_secs(20)).await;
        let transfer_in =
            wait_for_file(&data.path().join("in.port"), Duration::from_secs(20)).await;
        Pair {
            out,
            transfer_in,
            children,
            data,
        }
    }

    /// A channel to one service.
    pub async fn channel(endpoint: &str) -> Channel {
        Channel::from_shared(endpoint.to_owned())
            .expect("uri")
            .connect()
            .await
            .expect("connect")
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.start_kill();
        }
    }
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
    let pair = Pair::start().await;
    for endpoint in [&pair.out, &pair.transfer_in] {
        let mut admin = AdminServiceClient::new(Pair::channel(endpoint).await);
        admin
            .seed_population(SeedPopulationRequest {
                seed: SEED,
                first_index: 0,
                count: PERSONS,
            })
            .await
            .expect("seeding works");
    }
    pair
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
        ..Default::default()
    }
}

/// A transfer at one bureau, if it knows it.
pub async fn transfer(endpoint: &str, id: &str) -> Option<Transfer> {
    let mut client = BureauServiceClient::new(Pair::channel(endpoint).await);
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

/// One bureau's ledger totals.
pub async fn totals(endpoint: &str) -> LedgerTotals {
    let mut admin = AdminServiceClient::new(Pair::channel(endpoint).await);
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

/// Out debited to transit = in credited + in transit + paid to bank + returned, to the cent,
/// with no transfer in flight.
pub async fn assert_conserved(pair: &Pair) {
    let out = totals(&pair.out).await;
    let inn = totals(&pair.transfer_in).await;
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
