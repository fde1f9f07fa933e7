//! [`Store`]: the handle services hold, and its [`Options`].
//!
//! A store is a queue in front of the writer thread plus a pool of read connections. Handles are
//! cheap clones of one `Arc`; the writer stops when the last handle is dropped or when
//! [`Store::close`] is called.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::{mpsc, watch};

use crate::fault::{CommitFault, Faults, Health};
use crate::job;
use crate::postgres::connection::mask_database_url;
use crate::postgres::reader::PgReadPool;
use crate::sqlite::connection::{self, Synchronous};
use crate::sqlite::reader::ReadPool;
use crate::sqlite::schema;
use crate::sqlite::writer::SqliteWriter;
use crate::writer::{Backend, Command, Counters, Shared, Writer};
use crate::{Error, Tx};

/// How a store is opened. Every field has a default, so a configuration file may name only what
/// it changes.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Options {
    /// Durability of each commit on SQLite; see [`Synchronous`]. (PostgreSQL's durability is
    /// the server's `synchronous_commit`.)
    pub synchronous: Synchronous,
    /// At most this many jobs share one transaction (one fsync). Larger batches amortise the
    /// fsync further but make every job of a batch wait for the slowest.
    pub batch_limit: usize,
    /// At most this many jobs wait for the writer; a further caller of [`Store::write`] waits
    /// for room at most `queue_wait_ms`, then gets [`Error::Busy`] (nothing was written), which
    /// pushes back on whoever produces the load without an unbounded wait.
    pub queue_limit: usize,
    /// How long a job may wait for room in a full queue, in milliseconds (at least 1).
    pub queue_wait_ms: u64,
    /// At most this many reads run at once, each on its own connection (on PostgreSQL: at most
    /// this many read connections, plus the writer's).
    pub read_connections: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            synchronous: Synchronous::Full,
            batch_limit: 256,
            queue_limit: 4096,
            queue_wait_ms: 250,
            read_connections: 4,
        }
    }
}

impl Options {
    /// Checks that every limit allows at least one job.
    fn validate(&self) -> Result<(), Error> {
        for (name, value) in [
            ("batch_limit", self.batch_limit),
            ("queue_limit", self.queue_limit),
            ("read_connections", self.read_connections),
            (
                "queue_wait_ms",
                usize::try_from(self.queue_wait_ms).unwrap_or(usize::MAX),
            ),
        ] {
            if value == 0 {
                return Err(Error::Invalid(format!("{name} must be at least 1")));
            }
        }
        Ok(())
    }
}

/// Totals of the writer since the store was opened, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Transactions committed (each one fsync with [`Synchronous::Full`]).
    pub transactions_committed: u64,
    /// Write jobs whose changes were committed; divided by `transactions_committed`, the mean
    /// batch size.
    pub jobs_committed: u64,
}

/// A bureau's store. Cheap to clone; all clones share one writer. Writes are group-committed.
#[derive(Clone)]
pub struct Store {
    /// What the clones share.
    inner: Arc<Inner>,
}

/// The state shared by a store's handles.
struct Inner {
    /// The writer thread's queue.
    queue: mpsc::Sender<Command>,
    /// How long a job waits for room in the queue before it is refused.
    queue_wait: Duration,
    /// Where reads run.
    reads: Reads,
    /// Closed (its sender dropped) when the writer thread ends.
    stopped: watch::Receiver<()>,
    /// The writer's totals.
    counters: Arc<Counters>,
    /// The fault seam's switch, read by the writer's commit hook.
    faults: Arc<Faults>,
    /// The writer's health, as of its last transaction.
    health: watch::Receiver<Health>,
    /// Probes made, the value each probe writes (so that it always changes a row).
    probes: AtomicU64,
    /// Whether other processes may share the database (PostgreSQL): replicas of one bureau.
    shared: bool,
    /// The database file, `:memory:`, or the database URL with its password masked, for
    /// `Debug`.
    location: String,
}

/// Where reads run.
enum Reads {
    /// On a pool of read-only connections to the file.
    Pool(Arc<ReadPool>),
    /// On the writer's thread, between batches (an in-memory database has one connection).
    Writer,
    /// On a pool of PostgreSQL connections.
    Postgres(Arc<PgReadPool>),
}

impl Store {
    /// Opens the database at `path`, creating the file and its directory if needed, turns on WAL,
    /// applies pending migrations and starts the writer thread. Blocks while doing so: call it
    /// at start-up, not on a busy runtime.
    pub fn open(path: &Path, options: &Options) -> Result<Store, Error> {
        options.validate()?;
        if let Some(directory) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            std::fs::create_dir_all(directory).map_err(|error| {
                Error::Backend(format!("create {}: {error}", directory.display()))
            })?;
        }
        let mut writer = connection::open_writer(path, options.synchronous)?;
        let version = schema::migrate(&mut writer)?;
        let pool = ReadPool::new(path.to_path_buf(), options.read_connections);
        let faults = Arc::new(Faults::default());
        let writer = SqliteWriter::new(writer, Arc::clone(&faults))?;
        let store = Store::start(
            writer,
            faults,
            options,
            Reads::Pool(Arc::new(pool)),
            path.display().to_string(),
        )?;
        tracing::info!(
            path = %path.display(),
            schema_version = version,
            synchronous = ?options.synchronous,
            batch_limit = options.batch_limit,
            "store opened"
        );
        Ok(store)
    }

    /// Opens a private, empty in-memory database with default options, for tests. It has a
    /// single connection, so reads run on the writer's thread between batches.
    pub fn open_in_memory() -> Result<Store, Error> {
        let options = Options::default();
        let mut writer = connection::open_memory()?;
        schema::migrate(&mut writer)?;
        let faults = Arc::new(Faults::default());
        let writer = SqliteWriter::new(writer, Arc::clone(&faults))?;
        Store::start(
            writer,
            faults,
            &options,
            Reads::Writer,
            ":memory:".to_owned(),
        )
    }

    /// Opens the PostgreSQL database at `url` (`postgres://user:password@host:port/database`),
    /// applies pending migrations and starts the writer thread with its own connection; reads
    /// use up to [`Options::read_connections`] more. Several stores (replicas of one bureau, in
    /// several processes) may open one database: see the crate documentation for what keeps
    /// them apart. Blocks while connecting; never shows the URL's password.
    pub fn open_url(url: &str, options: &Options) -> Result<Store, Error> {
        options.validate()?;
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(Error::Invalid(format!(
                "database URL {} is not postgres:// or postgresql://",
                mask_database_url(url)
            )));
        }
        let config = crate::postgres::connection::config(url)?;
        let owned = url.to_owned();
        let connecting = config.clone();
        // The `postgres` crate drives its connection on a runtime of its own, which must not
        // start on an async worker: connect and migrate on a thread of our own.
        let (writer, version) = std::thread::spawn(move || {
            let mut writer = crate::postgres::connection::connect(&connecting, &owned)?;
            let version = crate::postgres::schema::migrate(&mut writer)?;
            // A lock held longer than this by another replica fails the step (retryably)
            // instead of holding up this writer's whole batch without end.
            writer
                .client
                .batch_execute("SET lock_timeout = '10s'")
                .map_err(|error| crate::postgres::tx::map_error("configure session", &error))?;
            Ok::<_, Error>((writer, version))
        })
        .join()
        .map_err(|_| Error::Backend("connecting to PostgreSQL panicked".to_owned()))??;
        let pool = PgReadPool::new(config, url.to_owned(), options.read_connections);
        let faults = Arc::new(Faults::default());
        let location = mask_database_url(url);
        let store = Store::start(
            crate::postgres::writer::PgWriter::new(writer),
            faults,
            options,
            Reads::Postgres(Arc::new(pool)),
            location.clone(),
        )?;
        tracing::info!(
            url = %location,
            schema_version = version,
            batch_limit = options.batch_limit,
            "store opened (PostgreSQL)"
        );
        Ok(store)
    }

    /// Starts the writer thread over a migrated connection.
    fn start(
        connection: impl Backend,
        faults: Arc<Faults>,
        options: &Options,
        reads: Reads,
        location: String,
    ) -> Result<Store, Error> {
        let (queue, receiver) = mpsc::channel(options.queue_limit);
        let (stopped_sender, stopped) = watch::channel(());
        let counters = Arc::new(Counters::default());
        let (health_sender, health) = watch::channel(Health::Committing);
        let shared = Shared {
            counters: Arc::clone(&counters),
            faults: Arc::clone(&faults),
            health: health_sender,
        };
        Writer::new(
            connection,
            receiver,
            options.batch_limit,
            shared,
            stopped_sender,
        )
        .spawn()?;
        Ok(Store {
            inner: Arc::new(Inner {
                queue,
                shared: matches!(reads, Reads::Postgres(_)),
                reads,
                queue_wait: Duration::from_millis(options.queue_wait_ms),
                stopped,
                counters,
                faults,
                health,
                probes: AtomicU64::new(0),
                location,
            }),
        })
    }

    /// Runs `work` as one logical transaction and returns its result once it is durable.
    ///
    /// Concurrent calls are grouped into one SQLite transaction (group commit): the writer
    /// thread takes up to `batch_limit` queued jobs, runs each in its own savepoint (an `Err`
    /// from `work`, or a panic, rolls back only that job's writes), commits once, and only then
    /// answers every job. If the commit fails, every job of the batch gets the error. A panic in
    /// `work` resumes in the caller.
    ///
    /// `work` runs on the writer's thread and holds up the whole batch while it runs: keep it to
    /// storage operations, with no waiting and no network. Once queued, the work runs even if the
    /// returned future is dropped.
    pub async fn write<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        let (job, answer) = job::job(work);
        self.enqueue(Command::Write(job)).await.map_err(E::from)?;
        job::answer(answer).await
    }

    /// Queues a command: at once when there is room, else after waiting at most the queue's
    /// wait for room; [`Error::Busy`] when none came, [`Error::Closed`] when the writer is gone.
    async fn enqueue(&self, command: Command) -> Result<(), Error> {
        match self.inner.queue.try_send(command) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Error::Closed),
            Err(mpsc::error::TrySendError::Full(command)) => {
                let queue = &self.inner.queue;
                match tokio::time::timeout(self.inner.queue_wait, queue.send(command)).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(_)) => Err(Error::Closed),
                    Err(_) => Err(Error::Busy),
                }
            }
        }
    }

    /// Runs each of `works` as its own job, as [`Store::write`] does — one failing undoes only
    /// its own writes — queued together so that they share a group commit, and answers in their
    /// order. This is how a batch of independent steps (the messages of one platform batch) is
    /// written: nested savepoints inside one job would cost more, since SQLite walks its
    /// in-memory statement journal from the start on every release.
    pub async fn write_each<T, E, F>(&self, works: Vec<F>) -> Vec<Result<T, E>>
    where
        F: FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        let mut answers = Vec::with_capacity(works.len());
        for work in works {
            let (job, answer) = job::job(work);
            let queued = self.enqueue(Command::Write(job)).await;
            answers.push(queued.map(|()| answer));
        }
        let mut results = Vec::with_capacity(answers.len());
        for answer in answers {
            results.push(match answer {
                Ok(answer) => job::answer(answer).await,
                Err(error) => Err(E::from(error)),
            });
        }
        results
    }

    /// Runs `work` in a read-only transaction that sees the last committed state. On a file
    /// database it runs on its own connection (WAL lets it read beside the writer) and never
    /// holds the writer up; writes through the `Tx` fail with [`Error::Backend`].
    pub async fn read<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        match &self.inner.reads {
            Reads::Pool(pool) => pool.read(work).await,
            Reads::Postgres(pool) => pool.read(work).await,
            Reads::Writer => {
                let (job, answer) = job::job(work);
                self.enqueue(Command::Read(job)).await.map_err(E::from)?;
                job::answer(answer).await
            }
        }
    }

    /// Stops the store for a graceful shutdown: refuses new work, lets the writer finish every
    /// job already queued, and returns once the writer has closed the database. Closing a store
    /// that another handle already closed is harmless. Dropping every handle also stops the
    /// writer, without waiting.
    pub async fn close(self) -> Result<(), Error> {
        match &self.inner.reads {
            Reads::Pool(pool) => pool.close(),
            Reads::Postgres(pool) => pool.close(),
            Reads::Writer => {}
        }
        // If the queue is already closed, the writer is stopping anyway.
        let _ = self.inner.queue.send(Command::Close).await;
        let mut stopped = self.inner.stopped.clone();
        // The writer never sends; `changed` fails once it has dropped its end, that is, stopped.
        while stopped.changed().await.is_ok() {}
        Ok(())
    }

    /// Whether the store commits, as of its last transaction, and every change from now on.
    /// A service reports itself not serving while this says [`Health::Failing`].
    pub fn health(&self) -> watch::Receiver<Health> {
        self.inner.health.clone()
    }

    /// Makes a cheap write transaction (a setting, `store_probe`, counting probes), so that a
    /// store that failed learns it commits again even when nobody else writes. Its outcome is
    /// published as [`Store::health`] like any transaction's.
    pub async fn probe(&self) -> Result<(), Error> {
        let count = self.inner.probes.fetch_add(1, Ordering::Relaxed) + 1;
        self.write(move |tx| tx.put_setting("store_probe", &count.to_string()))
            .await
    }

    /// **Test seam:** sets the fault every commit suffers from now on ([`CommitFault::Off`] by
    /// default), so that a full or failing disk can be tested without one. While a fault is set,
    /// every transaction runs its jobs and is then rolled back whole by SQLite, and each of its
    /// jobs is answered [`Error::Unavailable`]; [`Store::health`] turns `Failing` at the first
    /// such commit and `Committing` at the first commit after the fault is turned off. Not
    /// stored: a reopened store starts without a fault.
    pub fn set_commit_fault(&self, fault: CommitFault) {
        let before = self.commit_fault();
        self.inner.faults.set(fault);
        if before != fault {
            tracing::warn!(?before, now = ?fault, "the store's commit fault changed");
        }
    }

    /// The fault every commit suffers now.
    pub fn commit_fault(&self) -> CommitFault {
        self.inner.faults.get()
    }

    /// Whether other processes may write to this store's database at the same time (PostgreSQL,
    /// where several replicas of one bureau may share it): then the outbox is claimed
    /// ([`Tx::claim_due_messages`]) and the timers run under a lease ([`Tx::take_lease`]).
    pub fn shared_by_replicas(&self) -> bool {
        self.inner.shared
    }

    /// How many jobs wait in the writer's queue right now, for metrics.
    pub fn queue_depth(&self) -> usize {
        self.inner.queue.max_capacity() - self.inner.queue.capacity()
    }

    /// The writer's totals since the store was opened.
    pub fn write_stats(&self) -> WriteStats {
        let counters = &self.inner.counters;
        WriteStats {
            transactions_committed: counters.transactions.load(Ordering::Relaxed),
            jobs_committed: counters.jobs.load(Ordering::Relaxed),
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("location", &self.inner.location)
            .field("queued", &self.queue_depth())
            .finish_non_exhaustive()
    }
}
