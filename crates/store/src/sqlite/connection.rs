//! Opening and configuring SQLite connections: the one writer, the readers, and the in-memory
//! database for tests.
//!
//! The writer runs in WAL mode, so readers on their own connections see the last committed state
//! without blocking it, and with `synchronous=FULL` by default, so that a committed transaction
//! survives a power loss and not only a process kill (see the crate documentation).

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use serde::Deserialize;

use crate::Error;
use crate::sqlite::tx::Context;

/// How hard SQLite works to make a commit durable.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// fsync the WAL at every commit: a commit survives a process kill and a power loss. The
    /// default, because an acknowledged message must never be lost.
    #[default]
    Full,
    /// fsync only at checkpoints: a commit survives a process kill but the last ones may be lost
    /// in a power loss. For benchmarks and throw-away environments.
    Normal,
}

/// How long a connection waits for a lock held by another connection (another process opening
/// the same file, a checkpoint) before failing with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements kept per connection; above the number of distinct statements the store
/// uses, so none is ever prepared twice.
const STATEMENT_CACHE_CAPACITY: usize = 96;

/// The writer's page cache, in KiB (SQLite's negative `cache_size`): enough to keep the indexes
/// of a million-person seed warm.
const CACHE_SIZE_KIB: i64 = 32 * 1024;

/// A reader's page cache, in KiB. Small on purpose: in WAL mode a reader drops its whole cache
/// whenever a commit happened since its last read, which under load is every read, so a large
/// cache buys nothing there — but a scan (the ledger totals) would fill it, and it would stay
/// resident, once per pooled connection.
const READER_CACHE_SIZE_KIB: i64 = 2 * 1024;

/// Opens (creating if needed) the database file for writing.
pub(crate) fn open_writer(path: &Path, synchronous: Synchronous) -> Result<Connection, Error> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags).context("open database")?;
    configure(&connection)?;
    let mode: String = connection
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .context("set journal mode")?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::Backend(format!(
            "the database refused WAL mode (journal mode is {mode})"
        )));
    }
    let level = match synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    connection
        .pragma_update(None, "synchronous", level)
        .context("set synchronous")?;
    connection
        .pragma_update(None, "foreign_keys", true)
        .context("enable foreign keys")?;
    Ok(connection)
}

/// Opens the database file for reading only; `query_only` makes any write fail even if the
/// file's permissions would allow it.
pub(crate) fn open_reader(path: &Path) -> Result<Connection, Error> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags).context("open database to read")?;
    configure(&connection)?;
    connection
        .pragma_update(None, "query_only", true)
        .context("make connection read-only")?;
    connection
        .pragma_update(None, "cache_size", -READER_CACHE_SIZE_KIB)
        .context("set cache size")?;
    // A reader's temporary files are sorters (the GROUP BY of the ledger totals over every
    // posting): on disk they spill beyond the small cache instead of growing the heap by the
    // size of the journal. Readers write no statement journals, so nothing else changes.
    connection
        .pragma_update(None, "temp_store", "FILE")
        .context("keep a reader's temporary files on disk")?;
    Ok(connection)
}

/// Opens a private in-memory database: one connection, so reads run on the writer's thread.
pub(crate) fn open_memory() -> Result<Connection, Error> {
    let connection = Connection::open_in_memory().context("open in-memory database")?;
    configure(&connection)?;
    connection
        .pragma_update(None, "foreign_keys", true)
        .context("enable foreign keys")?;
    Ok(connection)
}

/// Settings every connection shares.
fn configure(connection: &Connection) -> Result<(), Error> {
    connection
        .busy_timeout(BUSY_TIMEOUT)
        .context("set busy timeout")?;
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
    connection
        .pragma_update(None, "cache_size", -CACHE_SIZE_KIB)
        .context("set cache size")?;
    // Savepoints (one per job, one per multi-row operation) journal the pages they change in a
    // statement journal; on disk, that is thousands of writes to a temp file per batch. In memory
    // it costs only what the batch changes, and it never needs to survive a crash.
    connection
        .pragma_update(None, "temp_store", "MEMORY")
        .context("keep temporary files in memory")?;
    Ok(())
}
