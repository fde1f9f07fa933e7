//! Reads on their own PostgreSQL connections, beside the writer.
//!
//! A read runs in one `REPEATABLE READ READ ONLY` transaction, so all its queries see one
//! committed state and any write fails. Read jobs run on tokio's blocking threads, each with a
//! connection taken from a small pool (opened on demand); a semaphore bounds how many run at
//! once. A connection that failed is dropped, and the next read opens a new one.

use std::sync::{Arc, Mutex, PoisonError};

use postgres::Config;
use tokio::sync::Semaphore;

use crate::job::{self, Job};
use crate::postgres::connection::{self, PgConnection};
use crate::postgres::tx::{Mode, PgTx, map_error};
use crate::{Error, Tx};

/// Read connections to one database.
pub(crate) struct PgReadPool {
    /// How to connect.
    config: Config,
    /// The URL, for errors (masked when shown).
    url: String,
    /// Connections not in use.
    idle: Mutex<Vec<PgConnection>>,
    /// One permit per read that may run at once.
    permits: Arc<Semaphore>,
}

impl std::fmt::Debug for PgReadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgReadPool")
            .field("url", &connection::mask_database_url(&self.url))
            .finish_non_exhaustive()
    }
}

impl PgReadPool {
    /// A pool allowing `size` concurrent reads.
    pub(crate) fn new(config: Config, url: String, size: usize) -> Self {
        PgReadPool {
            config,
            url,
            idle: Mutex::new(Vec::with_capacity(size)),
            permits: Arc::new(Semaphore::new(size)),
        }
    }

    /// Runs `work` in a read transaction on a pooled connection.
    pub(crate) async fn read<F, T, E>(self: &Arc<Self>, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        let pool = Arc::clone(self);
        job::on_a_pooled_connection(&self.permits, work, move |job| pool.run(job)).await
    }

    /// Refuses further reads and closes the idle connections.
    pub(crate) fn close(&self) {
        self.permits.close();
        self.drop_idle();
    }

    /// Closes the idle connections on a thread of their own: closing a `postgres` client blocks
    /// on its runtime, which must not happen on an async worker (where a store is often dropped).
    fn drop_idle(&self) {
        let idle = std::mem::take(&mut *self.lock_idle());
        if !idle.is_empty() {
            let _detached = std::thread::Builder::new()
                .name("yibao-store-close".to_owned())
                .spawn(move || drop(idle));
        }
    }

    /// Runs a job on an idle connection (or a new one) and returns the connection to the pool.
    fn run(&self, job: Box<dyn Job>) {
        let idle = self.lock_idle().pop();
        let mut connection =
            match idle.map_or_else(|| connection::connect(&self.config, &self.url), Ok) {
                Ok(connection) => connection,
                Err(error) => return job.reply(Err(error)),
            };
        if read_in_transaction(&mut connection, job) && !self.permits.is_closed() {
            self.lock_idle().push(connection);
        }
    }

    /// The idle list; a panic elsewhere cannot leave it inconsistent, so poisoning is ignored.
    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<PgConnection>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for PgReadPool {
    fn drop(&mut self) {
        self.drop_idle();
    }
}

/// Runs a job in one read-only transaction, then answers it. Returns whether the connection is
/// fit for reuse.
pub(crate) fn read_in_transaction(connection: &mut PgConnection, mut job: Box<dyn Job>) -> bool {
    if let Err(error) = connection
        .client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    {
        job.reply(Err(map_error("begin read", &error)));
        return false;
    }
    job.run(&mut PgTx::new(connection, Mode::Read));
    // A read transaction has nothing to keep: ending it either way is the same.
    let ended = connection.client.batch_execute("ROLLBACK");
    job.reply(Ok(()));
    match ended {
        Ok(()) => true,
        Err(error) => {
            tracing::warn!(error = %connection::describe(&error), "ending a read transaction failed, dropping its connection");
            false
        }
    }
}
