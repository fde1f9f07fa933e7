//! A test harness that runs the two bureau services, `transfer-out` and `transfer-in`, as real
//! child processes on ephemeral loopback ports with temporary data, for black-box tests over
//! gRPC. It is what `tests/` uses, and what users' own integration tests can depend on.
//!
//! [`Pair::start`] starts both services, waits until each answers SERVING on `grpc.health.v1`,
//! and seeds the same synthetic population into both. The pair then hands out tonic clients,
//! kills (SIGKILL), stops (SIGTERM) and restarts either service on its data, moves both test
//! clocks together, polls a transfer until it reaches a state, and checks that the two ledgers
//! conserve money to the cent. Dropping the pair kills both processes; when a test panics, the
//! data directory and the services' log files are kept and their paths printed.
//!
//! [`Counterpart`] starts one bureau instead — transfer-out or transfer-in — whose platform peer
//! is a bureau the user runs, so that a team tests its own bureau in Rust with yibao playing the
//! other side: the same seeding, applications, waits, clock, restarts and a ledger check of
//! yibao's side alone (`examples/own_transfer_in.rs` is a whole test of a hand-written bureau).
//!
//! [`Replicas`] starts each bureau of a pair as several replicas over one shared PostgreSQL
//! database per bureau, each replica's peer being every replica of the other bureau, for tests
//! that crash one replica and expect the others to carry on.
//!
//! [`Topology`] starts every bureau a region directory names (`deploy/regions-3.toml`: north,
//! west and south), each hosting its own regions and playing both sides, for tests of people
//! who move between any two bureaus and on again; its ledger check covers all of them.
//!
//! The service binaries must be built first (`cargo build --workspace --bins`): the harness
//! looks for them in `target/<profile>` beside the running test executable, or in
//! `YIBAO_BIN_DIR` (see [`default_bin_dir`]).
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use yibao_domain::population::Flow;
//! use yibao_harness::{HarnessError, Pair, PairOptions, Side};
//! use yibao_proto::common::v1::TransferState;
//!
//! # async fn example() -> Result<(), HarnessError> {
//! let mut pair = Pair::start(PairOptions {
//!     persons: 200, // two blocks of the population layout: every flow at least four times
//!     ..PairOptions::default()
//! })
//! .await?;
//!
//! // A person who fits the usual cross-province flow, computed locally from the seed, applies
//! // at the bureau the flow expects (here the transfer-in bureau).
//! let someone = pair.persons(Flow::CrossProvince, 1)?.remove(0);
//! let transfer = pair.apply(&someone).await?;
//! let id = transfer.transfer_id;
//! let deadline = Duration::from_secs(10);
//!
//! // Crash the transfer-out bureau mid-handshake and bring it back on the same data.
//! pair.kill(Side::Out).await?;
//! pair.restart(Side::Out).await?;
//!
//! let done = pair.wait_for_state(Side::In, &id, TransferState::Completed, deadline).await?;
//! assert_eq!(done.state(), TransferState::Completed);
//!
//! // Ten working days pass at both bureaus; then every cent must be accounted for.
//! pair.advance_clocks(Duration::from_secs(14 * 24 * 3600)).await?;
//! pair.assert_ledger_conserved().await;
//! # Ok(())
//! # }
//! ```

mod counterpart;
mod database;
mod error;
mod member;
mod pair;
mod replicas;
mod topology;
mod wait;

pub mod admin;
pub mod clock;
pub mod ledger;
pub mod locate;
pub mod population;
pub mod process;
pub mod seed;
pub mod tls;

pub use admin::{ADMIN_TOKEN_ENV, AdminClient, AdminToken, admin_client};
pub use counterpart::{Counterpart, CounterpartOptions, CounterpartPorts, CounterpartTls};
pub use database::{REQUIRE_POSTGRES_ENV, TEST_DATABASE_URL_ENV, TestDatabase};
pub use error::{HarnessError, code_name};
pub use ledger::LedgerReport;
pub use locate::{default_bin_dir, default_directory};
pub use member::{KEEP_DATA_ENV, STOP_GRACE};
pub use pair::{FixedPorts, Pair, PairOptions, PlatformMode, Side};
pub use replicas::Replicas;
pub use topology::{Topology, TopologyOptions, intern as service_name, three_bureau_directory};
pub use wait::{is_terminal, state_name};
pub use yibao_runtime::config::PeerBatches;
