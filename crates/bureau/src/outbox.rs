//! The outbox: messages to the peer bureau and the bank gateway, kept in the store until their
//! answer is applied. `queue` puts a message in (inside the step that decided to send it),
//! `transport` encodes and sends, `dispatcher` schedules, `settle` applies the answers.
//!
//! **Invariant:** a message leaves the outbox only in the transaction that applies its answer, so
//! a crash at any point resends it with the same msgid, and the peer answers with its first
//! answer. Retries resume after a restart because the schedule lives in the store.

pub mod dispatcher;
pub mod queue;
pub mod settle;
pub mod transport;
