//! The PostgreSQL write connection as the writer thread ([`crate::writer`]) drives it: `BEGIN`
//! (READ COMMITTED), a savepoint per job, one `COMMIT`.
//!
//! **The fault seam.** PostgreSQL has no commit hook: while a fault is set, the writer sends
//! `ROLLBACK` where it would have sent `COMMIT`, and reports the fault as the commit's error —
//! the same end state and the same answer as on SQLite.

use crate::Error;
use crate::fault::Faults;
use crate::job::Job;
use crate::postgres::connection::PgConnection;
use crate::postgres::reader;
use crate::postgres::tx::{Mode, PgTx, map_error};
use crate::writer::Backend;

/// The PostgreSQL write connection.
pub(crate) struct PgWriter {
    /// The connection, used by the writer thread only.
    connection: PgConnection,
    /// Whether a transaction is open.
    in_transaction: bool,
}

impl PgWriter {
    /// Wraps the write connection.
    pub(crate) fn new(connection: PgConnection) -> Self {
        PgWriter {
            connection,
            in_transaction: false,
        }
    }

    /// Runs a statement without parameters.
    fn execute(&mut self, sql: &'static str, what: &'static str) -> Result<(), Error> {
        self.connection
            .client
            .batch_execute(sql)
            .map_err(|error| map_error(what, &error))
    }
}

impl Backend for PgWriter {
    fn begin(&mut self) -> Result<(), Error> {
        self.execute("BEGIN", "begin transaction")?;
        self.in_transaction = true;
        Ok(())
    }

    fn run_job(&mut self, job: &mut dyn Job) -> Result<(), Error> {
        self.execute("SAVEPOINT job", "begin job")?;
        let mut tx = PgTx::new(&mut self.connection, Mode::Write);
        let succeeded = job.run(&mut tx);
        let aborted = tx.aborted.take();
        if let Some(error) = &aborted
            && succeeded
        {
            // The job went on past a failed statement and said it succeeded: its writes after
            // the failure never happened, so it fails with the statement's error.
            job.overrule(error.clone());
        }
        if !succeeded || aborted.is_some() {
            self.execute("ROLLBACK TO SAVEPOINT job", "undo job")?;
        }
        self.execute("RELEASE SAVEPOINT job", "end job")
    }

    fn commit(&mut self, faults: &Faults) -> Result<(), Error> {
        self.in_transaction = false;
        if faults.refuses_commit() {
            self.execute("ROLLBACK", "roll back")?;
            return Err(faults.refused());
        }
        self.execute("COMMIT", "commit")
    }

    fn roll_back(&mut self) {
        if !self.in_transaction {
            return;
        }
        self.in_transaction = false;
        if let Err(error) = self.execute("ROLLBACK", "roll back") {
            tracing::warn!(%error, "rolling back a failed store transaction failed");
        }
    }

    fn read(&mut self, job: Box<dyn Job>) {
        reader::read_in_transaction(&mut self.connection, job);
    }

    fn close(self) {
        if let Err(error) = self.connection.client.close() {
            tracing::warn!(error = %crate::postgres::connection::describe(&error), "closing the store's write connection failed");
        }
    }
}
