//! The one error type of the store, shared by every backend.
//!
//! Variants a service acts on (`Conflict`, `InsufficientFunds`, `NotFound`, `Invalid`) are
//! distinct from `Backend`, which carries the database's own message for logs and never reaches a
//! user. `Unavailable` is the one storage failure worth retrying as it stands: the database could
//! not write (disk full, I/O error), undid the whole transaction, and may write again later. Messages never carry a person's full ID number: accounts are masked in `Display`/`Debug`.

use std::fmt;

use crate::mask::mask_account;

/// Why a storage operation failed.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A uniqueness rule refused the write: the transfer id exists, the person already has an
    /// open transfer, the message was already processed, and so on. The text says which.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A posting would have made this person account negative; nothing was written.
    #[error("insufficient funds in {}", mask_account(.account))]
    InsufficientFunds {
        /// The account that would have gone negative, unmasked for programmatic use.
        account: String,
    },
    /// The row to update does not exist. The text names the kind of row, never a person.
    #[error("not found: {0}")]
    NotFound(String),
    /// The caller asked for something the store never does (a posting of zero, a batch limit of
    /// zero): a programming error, reported rather than panicking inside the writer.
    #[error("invalid request to the store: {0}")]
    Invalid(String),
    /// The store has been closed, or its writer thread is gone.
    #[error("the store is closed")]
    Closed,
    /// The database could not write — the disk is full, an I/O error (`SQLITE_FULL`,
    /// `SQLITE_IOERR`), or a [`CommitFault`](crate::CommitFault) — and the transaction was undone
    /// whole: nothing of it was written. Retryable: the same work may succeed once the store
    /// commits again (see [`Health`](crate::Health)). The text is SQLite's, for logs.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The writer's queue stayed full for as long as a job may wait: nothing was written, and
    /// the same work may succeed later.
    #[error("the store is busy: its queue is full")]
    Busy,
    /// The database failed. Internal: log it, map it to an opaque status, never show it to users.
    #[error("storage backend: {0}")]
    Backend(String),
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Conflict(what) => f.debug_tuple("Conflict").field(what).finish(),
            Error::InsufficientFunds { account } => f
                .debug_struct("InsufficientFunds")
                .field("account", &mask_account(account))
                .finish(),
            Error::NotFound(what) => f.debug_tuple("NotFound").field(what).finish(),
            Error::Invalid(what) => f.debug_tuple("Invalid").field(what).finish(),
            Error::Closed => f.write_str("Closed"),
            Error::Unavailable(message) => f.debug_tuple("Unavailable").field(message).finish(),
            Error::Busy => f.write_str("Busy"),
            Error::Backend(message) => f.debug_tuple("Backend").field(message).finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insufficient_funds_never_shows_the_full_id_number() {
        let error = Error::InsufficientFunds {
            account: "person:11010519491231002X".to_owned(),
        };
        for shown in [error.to_string(), format!("{error:?}")] {
            assert!(!shown.contains("11010519491231002X"), "{shown}");
            assert!(shown.contains("person:110105********002X"), "{shown}");
        }
    }
}
