//! Deterministic simulation of the handshake (tests only): both bureaus' real steps, inbox,
//! outbox and store, wired together by a seeded scheduler that plays the network. Each round it
//! applies for a transfer, delivers one pending message (normally, or losing it, losing its
//! answer, or delivering it twice — out of order, since it picks any pending message), crashes
//! and reopens a bureau on its store file, or jumps both clocks and fires the timers. Then the
//! faults stop, and what must hold is checked:
//!
//! - conservation to the cent across both bureaus;
//! - every debit to transit resolved exactly once (nothing left in transit, each transfer's
//!   two sides agree: credited at transfer-in exactly when settled at transfer-out);
//! - no credit after an abort was answered "not credited" (a returned or paid-out transfer is
//!   never credited at transfer-in);
//! - every transfer terminal once the faults stop;
//! - a message delivered twice answered the same both times.
//!
//! Everything random comes from the seed, and every step is awaited before the next, so a seed
//! replays the same run: a failure prints `SIM_SEED=<seed> cargo test -p yibao-bureau
//! sim::tests::replay -- --nocapture`. `SIM_SEEDS` sets how many seeds the suite runs (1,000).
//! The fund leg runs a tenth as many seeds again under a directory where Hohhot remits balances
//! apart from the form (`SIM_FUND_LEG=1` replays one), with the same checks, and checks that
//! its balances did come by remittance.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use prost::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::Request;
use yibao_domain::population::{Flow, SyntheticPerson};
use yibao_domain::transfer::TransferState;
use yibao_proto::platform::v1 as platform;
use yibao_proto::platform::v1::transfer_in_platform_service_server::TransferInPlatformService;
use yibao_proto::platform::v1::transfer_out_platform_service_server::TransferOutPlatformService;
use yibao_runtime::clock::Clock;
use yibao_runtime::directory::BureauRole;
use yibao_runtime::retry::Backoff;
use yibao_store::{OutboxMessage, Store};

use crate::admission::Caller;
use crate::api::platform::PlatformApi;
use crate::bank::SimulatedBank;
use crate::journal::reason;
use crate::messages::{Answer, Kind};
use crate::outbox::settle::settle;
use crate::outbox::transport::{self, Outcome};
use crate::peer::{Peer, Peers};
use crate::services::{Admin, Services};
use crate::testing;

/// One bureau of the simulation, reopened on its store file after a crash.
struct Bureau {
    role: BureauRole,
    path: PathBuf,
    services: Arc<Services>,
    /// The region directory it runs under (the shipped one, or one with a policy changed).
    directory: Arc<str>,
}

impl Bureau {
    fn open(role: BureauRole, dir: &Path, clock: &Clock, directory: Arc<str>) -> Bureau {
        let path = dir.join(format!("{}.sqlite3", role.as_str()));
        let store = Store::open(&path, &store_options()).expect("the store opens");
        Bureau {
            role,
            services: services(role, store, clock.clone(), &directory),
            path,
            directory,
        }
    }

    /// kill -9: the process is gone (every step it ran was awaited, so its store has exactly
    /// what it committed), and a new one opens the same file.
    fn crash_and_restart(&mut self, clock: &Clock) {
        let store =
            Store::open(&self.path, &yibao_store::Options::default()).expect("the store reopens");
        self.services = services(self.role, store, clock.clone(), &self.directory);
    }

    fn api(&self) -> PlatformApi {
        PlatformApi::new(self.services.clone())
    }
}

/// A crash here is a process's death, not a power loss: what a commit wrote is in the file,
/// fsync or not (as with `kill -9`), so the simulation skips the fsyncs, and keeps its files in
/// memory (`/dev/shm`) where there is one.
fn store_options() -> yibao_store::Options {
    yibao_store::Options {
        synchronous: yibao_store::Synchronous::Normal,
        ..yibao_store::Options::default()
    }
}

fn services(role: BureauRole, store: Store, clock: Clock, directory: &str) -> Arc<Services> {
    let site = testing::site_with(role, directory);
    let faults = Arc::new(crate::faults::FaultRules::new(
        site.connectivity_overrides.clone(),
    ));
    Arc::new(Services {
        site: Arc::new(site),
        store,
        clock,
        // Never dialled: the scheduler delivers every message itself.
        peers: Peers::single(Peer::new("http://127.0.0.1:9".to_owned(), None)),
        bank: Arc::new(SimulatedBank::new(0)),
        watchers: Arc::default(),
        streams: Arc::default(),
        dispatch_now: tokio::sync::Notify::new(),
        admin: Admin::Enabled,
        admin_token: None,
        faults,
        exchanges: Arc::default(),
    })
}

/// What the network does to one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    Normal,
    Lost,
    AnswerLost,
    Twice,
}

/// What a run did, so that the suite can show it exercised what it claims.
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    lost: u64,
    answers_lost: u64,
    twice: u64,
    crashes: u64,
    completed: u64,
    /// Transfers whose balance came by a remittance apart from the form (the fund leg).
    remitted: u64,
}

/// A simulation run.
struct Sim {
    stats: Stats,
    rng: StdRng,
    clock: Clock,
    out: Bureau,
    inn: Bureau,
    people: Vec<SyntheticPerson>,
    applied: usize,
    _dir: tempfile::TempDir,
}

impl Sim {
    async fn new(seed: u64, directory: Arc<str>) -> Sim {
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm)
        } else {
            tempfile::tempdir()
        }
        .expect("a temporary directory");
        let offset = testing::start() - Clock::system().now();
        let clock = Clock::adjustable(offset).expect("a test clock");
        let out = Bureau::open(
            BureauRole::TransferOut,
            dir.path(),
            &clock,
            directory.clone(),
        );
        let inn = Bureau::open(BureauRole::TransferIn, dir.path(), &clock, directory);
        let mut people = Vec::new();
        for n in 0..4 {
            let person = testing::someone(Flow::CrossProvince, n);
            testing::seed_if_known(&out.services, &person).await;
            testing::seed_if_known(&inn.services, &person).await;
            people.push(person);
        }
        Sim {
            stats: Stats::default(),
            rng: StdRng::seed_from_u64(seed),
            clock,
            out,
            inn,
            people,
            applied: 0,
            _dir: dir,
        }
    }

    async fn round(&mut self) {
        match self.rng.random_range(0..100) {
            0..20 => self.apply().await,
            20..75 => {
                let delivery = match self.rng.random_range(0..10) {
                    0 => Delivery::Lost,
                    1 => Delivery::AnswerLost,
                    2 => Delivery::Twice,
                    _ => Delivery::Normal,
                };
                self.deliver_one(delivery).await;
            }
            75..85 => {
                self.stats.crashes += 1;
                if self.rng.random_bool(0.5) {
                    self.out.crash_and_restart(&self.clock);
                } else {
                    self.inn.crash_and_restart(&self.clock);
                }
            }
            85..95 => {
                let days = self.rng.random_range(0..8);
                self.jump(days).await;
            }
            _ => {}
        }
    }

    async fn apply(&mut self) {
        let Some(person) = self.people.get(self.applied).cloned() else {
            return;
        };
        self.applied += 1;
        let application = testing::application_at_transfer_in(&person);
        // Refused (already open, say) or accepted: either is a valid outcome of the step.
        let _ = testing::step(&self.inn.services, move |step| {
            crate::transfer_in::apply_here(step, &application)
        })
        .await;
    }

    async fn jump(&mut self, days: i64) {
        self.clock
            .advance(chrono::TimeDelta::days(days))
            .expect("the clock moves");
        crate::sweep::sweep_deadlines(&self.out.services).await;
        crate::sweep::sweep_deadlines(&self.inn.services).await;
    }

    /// Delivers one pending message of either bureau, chosen by the seed; false when none is.
    async fn deliver_one(&mut self, delivery: Delivery) -> bool {
        let mut pending = Vec::new();
        for (index, bureau) in [&self.out, &self.inn].into_iter().enumerate() {
            // Waiting out a backoff, not parked (a parked message waits for an operator).
            let horizon = self.clock.now() + chrono::TimeDelta::days(2);
            let due = bureau
                .services
                .store
                .read(move |tx| tx.due_messages(horizon, 1000))
                .await
                .expect("the outbox reads");
            pending.extend(due.into_iter().map(|message| (index, message)));
        }
        if pending.is_empty() {
            return false;
        }
        pending.sort_by_key(|(index, message)| (*index, message.id));
        let (index, message) = pending.swap_remove(self.rng.random_range(0..pending.len()));
        match delivery {
            Delivery::Lost => self.stats.lost += 1,
            Delivery::AnswerLost => self.stats.answers_lost += 1,
            Delivery::Twice => self.stats.twice += 1,
            Delivery::Normal => {}
        }
        let (from, to) = if index == 0 {
            (&self.out, &self.inn)
        } else {
            (&self.inn, &self.out)
        };
        let outcome = match delivery {
            Delivery::Lost => Outcome::Retry("lost (simulation)".to_owned()),
            Delivery::Normal => deliver(&to.api(), &message).await,
            Delivery::AnswerLost => {
                let _ = deliver(&to.api(), &message).await;
                Outcome::Retry("answer lost (simulation)".to_owned())
            }
            Delivery::Twice => {
                let first = deliver(&to.api(), &message).await;
                let second = deliver(&to.api(), &message).await;
                assert_eq!(
                    format!("{first:?}"),
                    format!("{second:?}"),
                    "a message delivered twice is answered as the first time"
                );
                second
            }
        };
        let backoff = Backoff::try_new(
            std::time::Duration::from_secs(1),
            std::time::Duration::from_secs(60),
            2.0,
        )
        .expect("valid limits");
        settle(&from.services, backoff, vec![message], vec![outcome]).await;
        true
    }

    /// The faults stop: deliver everything, let the days pass, until nothing is open. A
    /// transfer the automation handed to an operator (an abort undeliverable too long) is
    /// resolved as an operator would: with what the transfer-in bureau says.
    async fn drain(&mut self) -> Result<(), String> {
        for _ in 0..400 {
            while self.deliver_one(Delivery::Normal).await {}
            self.operator().await;
            if open(&self.out.services).await + open(&self.inn.services).await == 0 {
                return Ok(());
            }
            self.jump(1).await;
        }
        Err(format!(
            "transfers still open after the faults stopped: {} at transfer-out, {} at transfer-in",
            open(&self.out.services).await,
            open(&self.inn.services).await
        ))
    }

    /// Resolves every transfer waiting for an operator with what transfer-in says of it.
    async fn operator(&mut self) {
        let waiting = self
            .out
            .services
            .store
            .read(|tx| tx.open_transfers_in_state("NEEDS_OPERATOR", 1000))
            .await
            .unwrap_or_default();
        for row in waiting {
            let there = testing::find_document(&self.inn.services, &row.transfer_id).await;
            // Credited there: the form (with its balance, or its years with a remittance to come).
            let credited = there.is_some_and(|document| match document.state {
                yibao_domain::transfer::TransferState::In(state) => state.has_credited(),
                yibao_domain::transfer::TransferState::Out(_) => false,
            });
            let credit = if credited {
                yibao_domain::transfer::out_side::InCredit::Credited
            } else {
                yibao_domain::transfer::out_side::InCredit::NotCredited
            };
            let resolution = crate::transfer_out::Resolution {
                operator: "simulation".to_owned(),
                reason: "asked the transfer-in bureau".to_owned(),
                credit,
            };
            let id = row.transfer_id.clone();
            let _ = testing::step(&self.out.services, move |step| {
                crate::transfer_out::resolve(step, &id, &resolution)
            })
            .await;
        }
    }

    /// The invariants of the module docs.
    async fn check(&self) -> Result<(), String> {
        let out = testing::totals(&self.out.services).await;
        let inn = testing::totals(&self.inn.services).await;
        let get = |totals: &std::collections::BTreeMap<String, i64>, key: &str| {
            totals.get(key).copied().unwrap_or(0)
        };
        let debited = get(&out, reason::DEBIT_TO_TRANSIT);
        let settled = get(&out, reason::SETTLE);
        let returned = get(&out, reason::REVERSE);
        let paid = get(&out, reason::PAY_TO_BANK);
        let credited = get(&inn, reason::CREDIT);
        if debited != settled + returned + paid {
            return Err(format!(
                "transit not resolved exactly once: debited {debited}, settled {settled}, \
                 returned {returned}, paid {paid}"
            ));
        }
        if credited != settled {
            return Err(format!(
                "credited {credited} at transfer-in, settled {settled} at transfer-out"
            ));
        }
        for person in &self.people {
            let certno = person.certno.expose_unmasked().to_owned();
            self.check_person(&certno).await?;
        }
        testing::assert_money_conserved(&self.out.services, opening(&self.out).await).await;
        testing::assert_money_conserved(&self.inn.services, opening(&self.inn).await).await;
        Ok(())
    }

    /// Each transfer's two sides agree: credited at transfer-in exactly when completed at
    /// transfer-out.
    async fn check_person(&self, certno: &str) -> Result<(), String> {
        for document in documents_of(&self.out.services, certno).await {
            let here = document.state;
            let there = testing::find_document(&self.inn.services, &document.transfer_id)
                .await
                .map(|document| document.state);
            let out_completed = here.name() == "COMPLETED";
            let in_completed = there.is_some_and(|state| state.name() == "COMPLETED");
            if out_completed != in_completed {
                return Err(format!(
                    "transfer {} is {} at transfer-out but {} at transfer-in",
                    document.transfer_id,
                    here.name(),
                    there.map_or("unknown", TransferState::name)
                ));
            }
        }
        Ok(())
    }
}

/// Transfers not in a terminal state (one waiting for an operator counts as open).
async fn open(services: &Services) -> u64 {
    const TERMINAL: [&str; 5] = [
        "COMPLETED",
        "REJECTED",
        "RETURNED",
        "PAID_TO_BANK",
        "ABORTED",
    ];
    services
        .store
        .read(|tx| tx.count_transfers_by_state())
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|(state, _)| !TERMINAL.contains(&state.as_str()))
        .map(|(_, count)| count)
        .sum()
}

async fn opening(bureau: &Bureau) -> i64 {
    testing::totals(&bureau.services)
        .await
        .get(reason::OPENING)
        .copied()
        .unwrap_or(0)
}

async fn documents_of(services: &Services, certno: &str) -> Vec<crate::document::TransferDocument> {
    let certno = certno.to_owned();
    services
        .store
        .read(move |tx| {
            let rows = tx.transfers_of(&certno)?;
            rows.iter()
                .map(|row| crate::record::decode_document(&row.document))
                .collect::<Result<Vec<_>, crate::error::Error>>()
        })
        .await
        .expect("documents read")
}

/// Hands one outbox message to the peer's platform handlers and reads the answer as the
/// transport would.
async fn deliver(peer: &PlatformApi, message: &OutboxMessage) -> Outcome {
    fn request<T>(message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.extensions_mut().insert(Caller::Plaintext);
        request
    }
    let payload = message.payload.as_slice();
    let status = |status: tonic::Status| transport::failed(&status);
    match Kind::parse(&message.kind) {
        Some(Kind::RequestTransferOut) => {
            match platform::RequestTransferOutRequest::decode(payload) {
                Ok(wire) => peer
                    .request_transfer_out(request(wire))
                    .await
                    .map_or_else(status, |answer| {
                        transport::request_answered(answer.into_inner())
                    }),
                Err(_) => Outcome::Park("undecodable".to_owned()),
            }
        }
        Some(Kind::DeliverForm) => match platform::DeliverInsuranceRecordRequest::decode(payload) {
            Ok(wire) => peer
                .deliver_insurance_record(request(wire))
                .await
                .map_or_else(status, |answer| {
                    transport::form_answered(answer.into_inner())
                }),
            Err(_) => Outcome::Park("undecodable".to_owned()),
        },
        Some(Kind::Abort) => match platform::AbortTransferRequest::decode(payload) {
            Ok(wire) => peer
                .abort_transfer(request(wire))
                .await
                .map_or_else(status, |answer| {
                    transport::abort_answered(answer.into_inner())
                }),
            Err(_) => Outcome::Park("undecodable".to_owned()),
        },
        Some(Kind::QueryTransferOut) => match platform::QueryTransferOutRequest::decode(payload) {
            Ok(wire) => peer
                .query_transfer_out(request(wire))
                .await
                .map_or_else(status, |answer| {
                    transport::transfer_out_said(answer.into_inner())
                }),
            Err(_) => Outcome::Park("undecodable".to_owned()),
        },
        Some(Kind::RemitBalance) => match platform::RemitBalanceRequest::decode(payload) {
            Ok(wire) => peer
                .remit_balance(request(wire))
                .await
                .map_or_else(status, |answer| {
                    transport::remittance_answered(answer.into_inner())
                }),
            Err(_) => Outcome::Park("undecodable".to_owned()),
        },
        Some(Kind::BankPayout) => Outcome::Answered(Answer::BankPaid),
        _ => Outcome::Park(format!("the simulation does not deliver {}", message.kind)),
    }
}

/// Runs one seed: rounds with faults, then the drain and the checks.
async fn run(seed: u64, rounds: usize, directory: Arc<str>) -> Result<Stats, String> {
    let mut sim = Sim::new(seed, directory).await;
    for _ in 0..rounds {
        sim.round().await;
    }
    sim.drain().await?;
    sim.check().await?;
    let completed = sim
        .out
        .services
        .store
        .read(|tx| tx.count_transfers_by_state())
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|(state, _)| state == "COMPLETED")
        .map(|(_, count)| count)
        .sum();
    Ok(Stats {
        completed,
        remitted: remitted(&sim).await,
        ..sim.stats
    })
}

/// How many of the run's transfers saw a remittance arrive at transfer-in.
async fn remitted(sim: &Sim) -> u64 {
    let mut count = 0;
    for person in &sim.people {
        let certno = person.certno.expose_unmasked().to_owned();
        let seen = sim
            .inn
            .services
            .store
            .read(move |tx| {
                let mut seen = 0;
                for row in tx.transfers_of(&certno)? {
                    let events = tx.events(&row.transfer_id)?;
                    seen += u64::from(events.iter().any(|e| e.kind == "REMITTANCE_ARRIVED"));
                }
                Ok::<_, yibao_store::Error>(seen)
            })
            .await
            .unwrap_or(0);
        count += seen;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay_line(seed: u64) -> String {
        format!("SIM_SEED={seed} cargo test -p yibao-bureau sim::tests::replay -- --nocapture")
    }

    /// The directory a run uses: the shipped one, or with `SIM_FUND_LEG=1` (as the fund-leg
    /// suite runs) Hohhot remitting balances apart from the form, 3 working days after it.
    fn directory(fund_leg: bool) -> Arc<str> {
        if fund_leg {
            Arc::from(testing::directory_with_hohhot_policy(
                "remittance = { after_working_days = 3 }",
            ))
        } else {
            Arc::from(testing::DIRECTORY)
        }
    }

    /// Runs `seeds` seeds under `directory`; what they exercised, or the first broken seed.
    fn over_seeds(seeds: u64, directory: &Arc<str>, replay: &str) -> Stats {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let mut total = Stats::default();
        for seed in 0..seeds {
            match runtime.block_on(run(seed, 40, directory.clone())) {
                Ok(stats) => {
                    total.lost += stats.lost;
                    total.answers_lost += stats.answers_lost;
                    total.twice += stats.twice;
                    total.crashes += stats.crashes;
                    total.completed += stats.completed;
                    total.remitted += stats.remitted;
                }
                Err(problem) => {
                    panic!(
                        "seed {seed}: {problem}\nreplay: {replay}{}",
                        replay_line(seed)
                    )
                }
            }
        }
        // The seeds exercised what the invariants are about.
        assert!(total.completed >= seeds, "transfers completed: {total:?}");
        for (what, count) in [
            ("lost", total.lost),
            ("answers lost", total.answers_lost),
            ("delivered twice", total.twice),
            ("crashes", total.crashes),
        ] {
            assert!(count >= seeds / 10, "{what}: {count} over {seeds} seeds");
        }
        total
    }

    fn seeds() -> u64 {
        std::env::var("SIM_SEEDS")
            .ok()
            .and_then(|text| text.parse().ok())
            .unwrap_or(1_000)
    }

    #[test]
    fn the_handshake_holds_its_invariants_over_many_seeds() {
        let seeds = seeds();
        let total = over_seeds(seeds, &directory(false), "");
        eprintln!("simulation over {seeds} seeds: {total:?}");
    }

    /// The fund leg under the same faults: a tenth as many seeds, Hohhot remitting apart.
    #[test]
    fn the_fund_leg_holds_the_same_invariants_over_many_seeds() {
        let seeds = (seeds() / 10).max(10);
        let total = over_seeds(seeds, &directory(true), "SIM_FUND_LEG=1 ");
        assert!(
            total.remitted >= seeds,
            "balances came by remittance: {total:?}"
        );
        eprintln!("fund-leg simulation over {seeds} seeds: {total:?}");
    }

    #[test]
    fn replay() {
        let Some(seed) = std::env::var("SIM_SEED")
            .ok()
            .and_then(|text| text.parse().ok())
        else {
            return; // run with SIM_SEED=<seed> to replay one seed
        };
        let fund_leg = std::env::var("SIM_FUND_LEG").is_ok_and(|text| text == "1");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime
            .block_on(run(seed, 40, directory(fund_leg)))
            .unwrap_or_else(|problem| panic!("seed {seed}: {problem}"));
    }
}
