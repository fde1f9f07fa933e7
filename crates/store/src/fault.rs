//! Whether the store can commit ([`Health`]), and the seam that makes it unable to on purpose
//! ([`CommitFault`]), so that a disk that is full or failing can be tested without filling one.
//!
//! **The seam is SQLite's own commit hook.** While a fault is set, the hook asks SQLite to turn
//! every `COMMIT` into a rollback, so the whole batch is undone by the database itself — the
//! same end state as a real `SQLITE_FULL` or `SQLITE_IOERR` at commit — and the writer answers
//! every job of the batch with [`Error::Unavailable`](crate::Error::Unavailable) naming the
//! error SQLite would have reported. The jobs run in full first, so a test exercises everything
//! up to the commit; nothing about the fault is stored, and a restarted store starts without it.

use std::sync::atomic::{AtomicU8, Ordering};

use crate::Error;

/// Whether the store's writes become durable, as of its last transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// The last transaction committed (or none has been tried yet).
    Committing,
    /// The last transaction could not begin or commit: the disk is full, it failed, or a
    /// [`CommitFault`] is set. Every write is answered [`Error::Unavailable`] (or another
    /// storage error) until a transaction commits again — a caller's or a
    /// [`Store::probe`](crate::Store::probe).
    Failing,
}

/// A fault injected into every commit, for tests. Off unless set with
/// [`Store::set_commit_fault`](crate::Store::set_commit_fault).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CommitFault {
    /// Commits go through.
    #[default]
    Off,
    /// Every commit fails as it would with the disk full (`SQLITE_FULL`).
    DiskFull,
    /// Every commit fails as it would on an I/O error (`SQLITE_IOERR`).
    IoError,
}

impl CommitFault {
    /// The fault's code in an atomic.
    fn code(self) -> u8 {
        match self {
            CommitFault::Off => 0,
            CommitFault::DiskFull => 1,
            CommitFault::IoError => 2,
        }
    }

    /// The fault of a code; an unknown code is no fault.
    fn of(code: u8) -> CommitFault {
        match code {
            1 => CommitFault::DiskFull,
            2 => CommitFault::IoError,
            _ => CommitFault::Off,
        }
    }

    /// SQLite's own message for the error this fault stands for.
    fn message(self) -> &'static str {
        match self {
            CommitFault::Off => "a fault injected into the commit",
            CommitFault::DiskFull => "database or disk is full",
            CommitFault::IoError => "disk I/O error",
        }
    }
}

/// The fault set now, and the one the commit hook last acted on; shared by the store's handles
/// and the hook on the writer's connection.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// What the next commit does, as [`CommitFault::code`].
    set: AtomicU8,
    /// The fault that last refused a commit, for the error the writer reports.
    fired: AtomicU8,
}

impl Faults {
    /// Sets the fault for every commit from now on.
    pub(crate) fn set(&self, fault: CommitFault) {
        self.set.store(fault.code(), Ordering::SeqCst);
    }

    /// The fault set now.
    pub(crate) fn get(&self) -> CommitFault {
        CommitFault::of(self.set.load(Ordering::SeqCst))
    }

    /// The commit hook: whether SQLite must roll this commit back instead.
    pub(crate) fn refuses_commit(&self) -> bool {
        let fault = self.get();
        if fault == CommitFault::Off {
            return false;
        }
        self.fired.store(fault.code(), Ordering::SeqCst);
        true
    }

    /// The error of a commit the hook refused, as SQLite would have reported the fault.
    pub(crate) fn refused(&self) -> Error {
        let fault = CommitFault::of(self.fired.load(Ordering::SeqCst));
        Error::Unavailable(format!("commit: {} (injected)", fault.message()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_survives_its_round_trip_through_the_atomic() {
        let faults = Faults::default();
        assert_eq!(faults.get(), CommitFault::Off);
        assert!(!faults.refuses_commit());
        for fault in [
            CommitFault::DiskFull,
            CommitFault::IoError,
            CommitFault::Off,
        ] {
            faults.set(fault);
            assert_eq!(faults.get(), fault);
        }
        faults.set(CommitFault::IoError);
        assert!(faults.refuses_commit());
        faults.set(CommitFault::Off);
        assert_eq!(
            faults.refused(),
            Error::Unavailable("commit: disk I/O error (injected)".to_owned()),
            "the error names the fault that refused the commit, not the one set since"
        );
    }
}
