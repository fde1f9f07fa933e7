//! Reads on their own connections, beside the writer.
//!
//! In WAL mode a reader sees the last committed state and neither waits for the writer nor makes
//! it wait. Read jobs run on tokio's blocking threads, each with a connection taken from a small
//! pool; a semaphore bounds how many run at once (and so how many connections exist). The pool's
//! lock is held only to take or return a connection, never across an `.await` or a query.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::Connection;
use tokio::sync::Semaphore;

use crate::job::{self, Job};
use crate::sqlite::connection;
use crate::sqlite::tx::{Context, SqliteTx};
use crate::{Error, Tx};

/// Read-only connections to one database file.
#[derive(Debug)]
pub(crate) struct ReadPool {
    /// The database file.
    path: PathBuf,
    /// Connections not in use; opened on demand, at most `permits`' size in all.
    idle: Mutex<Vec<Connection>>,
    /// One permit per read that may run at once.
    permits: Arc<Semaphore>,
}

impl ReadPool {
    /// A pool allowing `size` concurrent reads of the file at `path`.
    pub(crate) fn new(path: PathBuf, size: usize) -> Self {
        ReadPool {
            path,
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
        self.lock_idle().clear();
    }

    /// Runs a job on an idle connection (or a new one) and returns the connection to the pool.
    fn run(&self, job: Box<dyn Job>) {
        let idle = self.lock_idle().pop();
        let connection = match idle.map_or_else(|| connection::open_reader(&self.path), Ok) {
            Ok(connection) => connection,
            Err(error) => return job.reply(Err(error)),
        };
        if read_in_transaction(&connection, job) && !self.permits.is_closed() {
            self.lock_idle().push(connection);
        }
    }

    /// The idle list; a panic elsewhere cannot leave it inconsistent, so poisoning is ignored.
    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Runs a job in one read transaction, so all its queries see the same committed state, then
/// answers it. Returns whether the connection is fit for reuse.
pub(crate) fn read_in_transaction(connection: &Connection, mut job: Box<dyn Job>) -> bool {
    let execute = |sql: &str, what: &'static str| {
        connection
            .prepare_cached(sql)
            .and_then(|mut statement| statement.execute([]))
            .context(what)
    };
    if let Err(error) = execute("BEGIN DEFERRED", "begin read") {
        job.reply(Err(error));
        return false;
    }
    job.run(&mut SqliteTx::new(connection));
    // A read transaction has nothing to keep: ending it either way is the same.
    let ended = if connection.is_autocommit() {
        Ok(0)
    } else {
        execute("ROLLBACK", "end read")
    };
    job.reply(Ok(()));
    match ended {
        Ok(_) => true,
        Err(error) => {
            tracing::warn!(%error, "ending a read transaction failed, dropping its connection");
            false
        }
    }
}
