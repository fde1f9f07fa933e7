//! The pure rules of transferring a basic medical-insurance relationship between pooling regions.
//!
//! **Architecture Invariant:** nothing in this crate performs I/O, spawns tasks, or reads a clock.
//! Every function is a function of its arguments, so the services, the store, the deterministic
//! simulation and the property tests all drive the same code. Time arrives as a `chrono::NaiveDate`
//! or [`month::YearMonth`] argument; configuration arrives as parsed text.
//!
//! **API Boundary:** this crate knows nothing of protobuf or gRPC. The services convert wire types
//! into these types (a failed conversion is an `INVALID_ARGUMENT` naming the field) and back.

pub mod calendar;
pub mod classify;
pub mod continuity;
pub mod id;
pub mod money;
pub mod month;
pub mod policy;
pub mod population;
pub mod region;
pub mod scheme;
pub mod transfer;
