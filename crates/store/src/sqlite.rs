//! The SQLite backend: one writer thread with group commit, a pool of readers, embedded
//! migrations, and [`crate::Tx`] on a SQLite transaction.

pub(crate) mod connection;
pub(crate) mod reader;
pub(crate) mod schema;
pub(crate) mod tx;
pub(crate) mod writer;
