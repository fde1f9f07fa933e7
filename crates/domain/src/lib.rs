//! The pure rules of transferring a basic medical-insurance relationship between pooling regions.
//!
//! **Architecture Invariant:** nothing in this crate performs I/O, spawns tasks, or reads a clock.
//! Every function is a function of its arguments, so the services, the store, the deterministic
//! simulation and the property tests all drive the same code. Time arrives as a `chrono::NaiveDate`
//! or [`month::YearMonth`] argument; configuration arrives as parsed text.
//!
//! **API Boundary:** this crate knows nothing of protobuf or gRPC. The services convert wire types
//! into these types (a failed conversion is an `INVALID_ARGUMENT` naming the field) and back.
//!
//! **One home for every rule:** the eligibility and refusal rules (审核) live in [`review`], what
//! moves and what is credited in [`credit`], the insurance certificate (参保凭证) in
//! [`certificate`], what an application must give in [`application`], the flows in [`classify`],
//! the two state machines in [`transfer`], which statutory deadlines a transfer missed in
//! [`overdue`], and what enrolling, stopping, paying and retiring do to a person's record in
//! [`lifecycle`]. A bureau resolves facts from its store, asks these modules, and performs what
//! they answer.

pub mod application;
pub mod calendar;
pub mod certificate;
pub mod classify;
pub mod continuity;
pub mod credit;
pub mod id;
pub mod lifecycle;
pub mod money;
pub mod month;
pub mod overdue;
pub mod policy;
pub mod population;
pub mod region;
pub mod remittance;
pub mod review;
pub mod scheme;
pub mod transfer;

#[cfg(test)]
mod fuzz;
