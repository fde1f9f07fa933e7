//! A bureau of the transfer handshake: the service both binaries run.
//!
//! The `transfer-out` and `transfer-in` binaries are this crate with a role. **Changed from
//! DESIGN.md:** one crate holds both sides' drivers, because every real bureau is the
//! transfer-out bureau for some people and the transfer-in bureau for others, and almost all of
//! the code (store, outbox, idempotent inbox, queries, admin) is shared.
//!
//! Layout (ARCHITECTURE.md has the map): `api/` the handlers and `convert` the one conversion
//! between wire and domain; `inbox` the exactly-once receiver; `transfer_out` and `transfer_in`
//! the drivers, which gather facts, ask the domain crate, move its machines and perform their
//! actions through a [`record::Step`]; `outbox/` queue, transport, dispatcher and settle;
//! `sweep` the deadline sweep; `bank` the gateway; `migrate` what a release does to old data;
//! `services` the one path of every step through the store; `streams` how many watch streams
//! are open.

pub mod admission;
pub mod api;
pub mod app;
pub mod applications;
pub mod bank;
pub mod certificates;
pub mod context;
pub mod convert;
pub mod document;
pub mod error;
pub mod exchanges;
pub mod faults;
pub mod health;
pub mod inbox;
pub mod journal;
pub mod lifecycle;
pub mod measure;
pub mod messages;
pub mod migrate;
pub mod outbox;
pub mod peer;
pub mod persons;
pub mod record;
pub mod replica;
pub mod services;
#[cfg(test)]
mod sim;
pub mod streams;
pub mod sweep;
#[cfg(test)]
mod testing;
pub mod trace;
pub mod transfer_in;
pub mod transfer_out;
pub mod watchers;

pub use app::{Application, StartError, main_for};
