//! The writer thread: the only place that writes to the database, with group commit.
//!
//! The thread owns the write connection and takes jobs from a bounded queue. It waits for one,
//! then drains whatever else is queued (up to the batch limit) and runs them all in one
//! transaction, each inside its own savepoint: a job that fails rolls back to its savepoint and
//! leaves the others' writes in place. Then it commits once — one fsync for the whole batch —
//! and only then answers every job. Concurrent callers therefore share fsyncs instead of queueing
//! behind each other's, and nothing is acknowledged before it is durable.
//!
//! **Architecture Invariant:** a job is answered `Ok` only after the `COMMIT` that contains its
//! writes has returned. If `COMMIT` fails, every job of the batch is answered with the error.
//!
//! Every transaction's fate is published as the store's [`Health`]: `Failing` from a
//! transaction that could not begin or commit until one commits again. The writer never waits
//! to retry: the next batch is the next attempt (and `Store::probe` makes one when nobody else
//! writes).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::Connection;
use tokio::sync::{mpsc, watch};

use crate::Error;
use crate::fault::{Faults, Health};
use crate::job::Job;
use crate::sqlite::reader;
use crate::sqlite::tx::{Context, SqliteTx, backend};

/// What callers send to the writer thread.
pub(crate) enum Command {
    /// A job to run in the next batch's transaction.
    Write(Box<dyn Job>),
    /// A job to run read-only after the batch commits (in-memory databases only: there is no
    /// second connection to read from).
    Read(Box<dyn Job>),
    /// Finish what is queued, then stop.
    Close,
}

/// Running totals of the writer, for metrics.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Transactions committed.
    pub(crate) transactions: AtomicU64,
    /// Jobs whose writes were committed.
    pub(crate) jobs: AtomicU64,
}

/// What the writer shares with the store's handles.
pub(crate) struct Shared {
    /// Its totals.
    pub(crate) counters: Arc<Counters>,
    /// The fault its commits suffer.
    pub(crate) faults: Arc<Faults>,
    /// Where it publishes its health.
    pub(crate) health: watch::Sender<Health>,
}

/// The writer thread's state.
pub(crate) struct Writer {
    /// The write connection, used by this thread only.
    connection: Connection,
    /// Where jobs arrive.
    queue: mpsc::Receiver<Command>,
    /// At most this many jobs share one transaction.
    batch_limit: usize,
    /// Totals shared with the store handles.
    counters: Arc<Counters>,
    /// The fault the commit hook injects, shared with the store handles.
    faults: Arc<Faults>,
    /// Where each transaction's fate is published.
    health: watch::Sender<Health>,
    /// Dropped when the thread ends, which is how `Store::close` learns the writer has stopped.
    _stopped: watch::Sender<()>,
}

impl Writer {
    /// Prepares a writer, installing the fault seam's commit hook on its connection;
    /// [`Writer::spawn`] starts its thread.
    pub(crate) fn new(
        connection: Connection,
        queue: mpsc::Receiver<Command>,
        batch_limit: usize,
        shared: Shared,
        stopped: watch::Sender<()>,
    ) -> Result<Self, Error> {
        let faults = Arc::clone(&shared.faults);
        connection
            .commit_hook(Some(move || faults.refuses_commit()))
            .map_err(|error| backend("install the commit hook", error))?;
        Ok(Writer {
            connection,
            queue,
            batch_limit,
            counters: shared.counters,
            faults: shared.faults,
            health: shared.health,
            _stopped: stopped,
        })
    }

    /// Starts the writer on its own OS thread: SQLite calls block, so they stay off the async
    /// runtime's workers.
    pub(crate) fn spawn(self) -> Result<(), Error> {
        std::thread::Builder::new()
            .name("yibao-store-writer".to_owned())
            .spawn(move || self.run())
            .map(drop)
            .map_err(|error| Error::Backend(format!("start the writer thread: {error}")))
    }

    /// Serves batches until the queue is closed and empty, then closes the connection.
    fn run(mut self) {
        let mut writes = Vec::new();
        let mut reads = Vec::new();
        while let Some(command) = self.queue.blocking_recv() {
            self.sort(command, &mut writes, &mut reads);
            while writes.len() + reads.len() < self.batch_limit {
                match self.queue.try_recv() {
                    Ok(command) => self.sort(command, &mut writes, &mut reads),
                    Err(_) => break,
                }
            }
            self.write_batch(std::mem::take(&mut writes));
            for read in reads.drain(..) {
                self.read(read);
            }
        }
        if let Err((_, error)) = self.connection.close() {
            tracing::warn!(%error, "closing the store's write connection failed");
        }
        tracing::debug!("store writer stopped");
    }

    /// Files a command into this batch's writes or reads, or starts closing.
    fn sort(
        &mut self,
        command: Command,
        writes: &mut Vec<Box<dyn Job>>,
        reads: &mut Vec<Box<dyn Job>>,
    ) {
        match command {
            Command::Write(job) => writes.push(job),
            Command::Read(job) => reads.push(job),
            // Senders can no longer queue; what is queued already is still served.
            Command::Close => self.queue.close(),
        }
    }

    /// Runs jobs in as few transactions as possible and answers each once its fate is known.
    fn write_batch(&self, jobs: Vec<Box<dyn Job>>) {
        let mut queued = VecDeque::from(jobs);
        while !queued.is_empty() {
            let mut ran = Vec::with_capacity(queued.len());
            let began = tokio::time::Instant::now();
            let outcome = self.transaction(&mut queued, &mut ran);
            match &outcome {
                Ok(()) => {
                    self.counters.transactions.fetch_add(1, Ordering::Relaxed);
                    self.counters
                        .jobs
                        .fetch_add(ran.len() as u64, Ordering::Relaxed);
                    // The one place the store records metrics (a no-op unless the process
                    // installed a recorder): each committed transaction, BEGIN to COMMIT.
                    metrics::histogram!("yibao_store_commit_seconds")
                        .record(began.elapsed().as_secs_f64());
                    metrics::histogram!("yibao_store_batch_size").record(ran.len() as f64);
                    tracing::trace!(jobs = ran.len(), "store transaction committed");
                }
                Err(error) => {
                    tracing::warn!(%error, jobs = ran.len(), "store transaction failed, its jobs are answered with the error");
                }
            }
            self.publish(outcome.as_ref().err());
            for job in ran {
                job.reply(outcome.clone());
            }
        }
    }

    /// Publishes a transaction's fate as the store's health, logging each change.
    fn publish(&self, failure: Option<&Error>) {
        let health = match failure {
            None => Health::Committing,
            Some(_) => Health::Failing,
        };
        let changed = self.health.send_if_modified(|current| {
            let changed = *current != health;
            *current = health;
            changed
        });
        match (changed, failure) {
            (false, _) => {}
            (true, Some(error)) => {
                tracing::error!(%error, "the store cannot commit; every write fails until one commits again");
            }
            (true, None) => tracing::warn!("the store commits again"),
        }
    }

    /// Runs queued jobs in one transaction, moving each into `ran`, and commits.
    ///
    /// If the database abandons the transaction under a job (SQLite rolls back the whole
    /// transaction on some I/O and memory errors), the jobs run so far are lost with it: the
    /// transaction ends there with the error and the rest stay queued for the next one.
    fn transaction(
        &self,
        queued: &mut VecDeque<Box<dyn Job>>,
        ran: &mut Vec<Box<dyn Job>>,
    ) -> Result<(), Error> {
        if let Err(error) = self.execute("BEGIN IMMEDIATE", "begin transaction") {
            ran.extend(queued.drain(..));
            return Err(error);
        }
        while let Some(mut job) = queued.pop_front() {
            let step = self.run_in_savepoint(job.as_mut());
            ran.push(job);
            if let Err(error) = step {
                self.roll_back();
                return Err(error);
            }
        }
        self.commit().inspect_err(|_| self.roll_back())
    }

    /// Commits the open transaction. A commit the fault seam refused (SQLite rolled it back, and
    /// says the commit hook did) is reported as the fault's error.
    fn commit(&self) -> Result<(), Error> {
        let committed = self
            .connection
            .prepare_cached("COMMIT")
            .and_then(|mut statement| statement.execute([]));
        match committed {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(failure, _))
                if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_COMMITHOOK =>
            {
                Err(self.faults.refused())
            }
            Err(error) => Err(backend("commit", error)),
        }
    }

    /// Runs one job in its own savepoint, keeping its writes only if it succeeded.
    fn run_in_savepoint(&self, job: &mut dyn Job) -> Result<(), Error> {
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

    /// Rolls back the open transaction, if SQLite has not done so already.
    fn roll_back(&self) {
        if !self.connection.is_autocommit()
            && let Err(error) = self.execute("ROLLBACK", "roll back")
        {
            tracing::warn!(%error, "rolling back a failed store transaction failed");
        }
    }

    /// Runs a cached statement without parameters.
    fn execute(&self, sql: &str, what: &'static str) -> Result<(), Error> {
        self.connection
            .prepare_cached(sql)
            .and_then(|mut statement| statement.execute([]))
            .map(drop)
            .context(what)
    }

    /// Runs a read job on the write connection, with writes refused.
    fn read(&self, job: Box<dyn Job>) {
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
}
