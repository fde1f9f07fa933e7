//! What both bureau services share: their settings, their clock, the region directory, the
//! working-day calendar they load, the retry rules for cross-bureau messages, and the gRPC
//! server bootstrap.
//!
//! The domain crate decides and the store remembers; this crate is the machinery around them.
//! A bureau binary reads its [`config::ServiceConfig`], initialises tracing
//! ([`server::init_tracing`]), loads the [`directory::RegionDirectory`] and the calendar
//! ([`calendar::load_calendar`]), builds its [`clock::Clock`] (a test clock only when configured),
//! binds ([`server::bind`]) and serves its handlers with health and reflection until
//! [`server::shutdown_signal`] ([`server::serve`]). When configured, it exports Prometheus
//! metrics ([`prometheus`]) and counts every call of both listeners ([`rpc_metrics`]).
//!
//! **Architecture Invariant:** every service reads the time from [`clock::Clock`], and every
//! "retry or not" decision on a gRPC status is [`retry::is_retryable`]. Nothing here knows a
//! transfer's rules.
//!
//! Next to come here: the outbox dispatcher, which claims undelivered cross-bureau messages from
//! the store, sends them to the peer bureau with a per-attempt deadline, and retries with
//! [`retry::Backoff`] until the receiver acknowledges. Its time and randomness are injected, so a
//! deterministic simulation can drive it.

pub mod calendar;
pub mod clock;
pub mod config;
pub mod directory;
pub mod limits;
pub mod prometheus;
pub mod retry;
pub mod rpc_metrics;
pub mod server;
pub mod telemetry;
pub mod tls;
pub mod topology;

pub use clock::Clock;
pub use config::{LogFormat, ServiceArgs, ServiceConfig};
pub use directory::{BureauName, BureauRole, RegionDirectory, RegionEntry};

#[cfg(test)]
mod fuzz;
