//! The PostgreSQL backend: one writer thread with group commit over one connection, a pool of
//! read connections, embedded migrations, and [`crate::Tx`] on a PostgreSQL transaction.
//!
//! It uses the synchronous `postgres` crate: the writer is an OS thread and reads run on tokio's
//! blocking threads, so its calls never block an async worker — the same shape as SQLite.

pub(crate) mod connection;
pub(crate) mod reader;
pub(crate) mod schema;
pub(crate) mod tx;
pub(crate) mod writer;
