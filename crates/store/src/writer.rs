//! The writer thread: the only place that writes to the database, with group commit, for every
//! backend.
//!
//! The thread owns the write connection (a [`Backend`]) and takes jobs from a bounded queue. It
//! waits for one, then drains whatever else is queued (up to the batch limit) and runs them all
//! in one transaction, each inside its own savepoint: a job that fails rolls back to its
//! savepoint and leaves the others' writes in place. Then it commits once — one fsync for the
//! whole batch — and only then answers every job. Concurrent callers therefore share fsyncs
//! instead of queueing behind each other's, and nothing is acknowledged before it is durable.
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

use tokio::sync::{mpsc, watch};

use crate::Error;
use crate::fault::{Faults, Health};
use crate::job::Job;

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

/// A write connection as the writer drives it: one transaction at a time, a savepoint per job.
pub(crate) trait Backend: Send + 'static {
    /// Begins a write transaction.
    fn begin(&mut self) -> Result<(), Error>;

    /// Runs one job in its own savepoint, keeping its writes only if it succeeded. An `Err` means
    /// the transaction itself is lost (the database abandoned it): the writer rolls back.
    fn run_job(&mut self, job: &mut dyn Job) -> Result<(), Error>;

    /// Commits the open transaction — or, while `faults` says so, rolls it back and reports
    /// the injected fault as the commit's error.
    fn commit(&mut self, faults: &Faults) -> Result<(), Error>;

    /// Rolls back the open transaction, if there is one.
    fn roll_back(&mut self);

    /// Runs a read job on the write connection, between batches, with writes refused.
    fn read(&mut self, job: Box<dyn Job>);

    /// Closes the connection when the writer stops.
    fn close(self);
}

/// The writer thread's state.
pub(crate) struct Writer<B> {
    /// The write connection, used by this thread only.
    connection: B,
    /// Where jobs arrive.
    queue: mpsc::Receiver<Command>,
    /// At most this many jobs share one transaction.
    batch_limit: usize,
    /// Totals shared with the store handles.
    counters: Arc<Counters>,
    /// The fault the commits suffer, shared with the store handles.
    faults: Arc<Faults>,
    /// Where each transaction's fate is published.
    health: watch::Sender<Health>,
    /// Dropped when the thread ends, which is how `Store::close` learns the writer has stopped.
    _stopped: watch::Sender<()>,
}

impl<B: Backend> Writer<B> {
    /// Prepares a writer; [`Writer::spawn`] starts its thread.
    pub(crate) fn new(
        connection: B,
        queue: mpsc::Receiver<Command>,
        batch_limit: usize,
        shared: Shared,
        stopped: watch::Sender<()>,
    ) -> Self {
        Writer {
            connection,
            queue,
            batch_limit,
            counters: shared.counters,
            faults: shared.faults,
            health: shared.health,
            _stopped: stopped,
        }
    }

    /// Starts the writer on its own OS thread: database calls block, so they stay off the async
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
                self.connection.read(read);
            }
        }
        self.connection.close();
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
    fn write_batch(&mut self, jobs: Vec<Box<dyn Job>>) {
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
                    // installed a recorder): each committed transaction, BEGIN to COMMIT, on
                    // either backend.
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
        &mut self,
        queued: &mut VecDeque<Box<dyn Job>>,
        ran: &mut Vec<Box<dyn Job>>,
    ) -> Result<(), Error> {
        if let Err(error) = self.connection.begin() {
            ran.extend(queued.drain(..));
            return Err(error);
        }
        while let Some(mut job) = queued.pop_front() {
            let step = self.connection.run_job(job.as_mut());
            ran.push(job);
            if let Err(error) = step {
                self.connection.roll_back();
                return Err(error);
            }
        }
        let committed = self.connection.commit(&self.faults);
        if committed.is_err() {
            self.connection.roll_back();
        }
        committed
    }
}
