//! The SQLite write connection as the writer thread ([`crate::writer`]) drives it: `BEGIN
//! IMMEDIATE`, a savepoint per job, one `COMMIT`.
//!
//! The fault seam is SQLite's own commit hook: while a fault is set, the hook turns the `COMMIT`
//! into a rollback, and the commit's error is reported as the fault's.

use std::sync::Arc;

use rusqlite::Connection;

use crate::Error;
use crate::fault::Faults;
use crate::job::Job;
use crate::sqlite::reader;
use crate::sqlite::tx::{Context, SqliteTx, backend};
use crate::writer::Backend;

/// The SQLite write connection.
pub(crate) struct SqliteWriter {
    /// The connection, used by the writer thread only.
    connection: Connection,
}

impl SqliteWriter {
    /// Wraps the write connection, installing the fault seam's commit hook on it.
    pub(crate) fn new(connection: Connection, faults: Arc<Faults>) -> Result<Self, Error> {
        connection
            .commit_hook(Some(move || faults.refuses_commit()))
            .map_err(|error| backend("install the commit hook", error))?;
        Ok(SqliteWriter { connection })
    }

    /// Runs a cached statement without parameters.
    fn execute(&self, sql: &str, what: &'static str) -> Result<(), Error> {
        self.connection
            .prepare_cached(sql)
            .and_then(|mut statement| statement.execute([]))
            .map(drop)
            .context(what)
    }
}

impl Backend for SqliteWriter {
    fn begin(&mut self) -> Result<(), Error> {
        self.execute("BEGIN IMMEDIATE", "begin transaction")
    }

    fn run_job(&mut self, job: &mut dyn Job) -> Result<(), Error> {
        self.execute("SAVEPOINT job", "begin job")?;
        let succeeded = job.run(&mut SqliteTx::new(&self.connection));
        if self.connection.is_autocommit() {
            return Err(Error::Backend(
                "the database abandoned the transaction during a job".to_owned(),
            ));
        }
        if !succeeded {
            self.execute("ROLLBACK TO job", "undo job")?;
        }
        self.execute("RELEASE job", "end job")?;
        Ok(())
    }

    /// A commit the fault seam refused (SQLite rolled it back, and says the commit hook did) is
    /// reported as the fault's error.
    fn commit(&mut self, faults: &Faults) -> Result<(), Error> {
        let committed = self
            .connection
            .prepare_cached("COMMIT")
            .and_then(|mut statement| statement.execute([]));
        match committed {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(failure, _))
                if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_COMMITHOOK =>
            {
                Err(faults.refused())
            }
            Err(error) => Err(backend("commit", error)),
        }
    }

    fn roll_back(&mut self) {
        if !self.connection.is_autocommit()
            && let Err(error) = self.execute("ROLLBACK", "roll back")
        {
            tracing::warn!(%error, "rolling back a failed store transaction failed");
        }
    }

    fn read(&mut self, job: Box<dyn Job>) {
        let query_only = |on: bool| {
            self.connection
                .pragma_update(None, "query_only", on)
                .context("toggle query_only")
        };
        if let Err(error) = query_only(true) {
            job.reply(Err(error));
            return;
        }
        reader::read_in_transaction(&self.connection, job);
        if let Err(error) = query_only(false) {
            tracing::warn!(%error, "the store's write connection may be stuck read-only");
        }
    }

    fn close(self) {
        if let Err((_, error)) = self.connection.close() {
            tracing::warn!(%error, "closing the store's write connection failed");
        }
    }
}
