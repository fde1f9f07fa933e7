//! PostgreSQL schema migrations: numbered SQL files embedded in the binary, applied in order.
//!
//! The table `schema_version` records how many have been applied. All pending migrations and
//! the new version are applied in one transaction under a transaction-scoped advisory lock, so a
//! crash leaves either the old schema or the new one, and replicas starting at once against the
//! same database apply each migration once (the others wait, then find nothing to do). A
//! database newer than this build is refused rather than guessed at.

use crate::Error;
use crate::postgres::connection::{PgConnection, describe};

/// The migrations, in order; migration `n` (from 1) brings the schema to version `n`.
/// Never edit one that has shipped: add a new file.
const MIGRATIONS: &[&str] = &[include_str!("../../migrations/postgres/0001_initial.sql")];

/// The key of the advisory lock migrations hold (any constant; "yibao" in ASCII).
const MIGRATION_LOCK: i64 = 0x0079_6962_616f;

/// The schema version this build expects.
pub(crate) fn current_version() -> i64 {
    // The list is a handful of entries: the cast cannot truncate.
    MIGRATIONS.len() as i64
}

/// Applies the migrations the database lacks; returns the schema version it is at now.
pub(crate) fn migrate(connection: &mut PgConnection) -> Result<i64, Error> {
    let failed = |what: &str, error: postgres::Error| {
        Error::Backend(format!("migration: {what}: {}", describe(&error)))
    };
    let mut transaction = connection
        .client
        .transaction()
        .map_err(|error| failed("begin", error))?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(|error| failed("lock", error))?;
    transaction
        .batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
        .map_err(|error| failed("create schema_version", error))?;
    let found: i64 = transaction
        .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])
        .and_then(|row| row.try_get(0))
        .map_err(|error| failed("read schema version", error))?;
    if found > current_version() {
        return Err(Error::Backend(format!(
            "the database's schema version {found} is newer than this build's {}",
            current_version()
        )));
    }
    for (version, sql) in (1_i64..).zip(MIGRATIONS).skip(found as usize) {
        transaction.batch_execute(sql).map_err(|error| {
            Error::Backend(format!("migration {version}: {}", describe(&error)))
        })?;
        transaction
            .execute("DELETE FROM schema_version", &[])
            .and_then(|_| {
                transaction.execute(
                    "INSERT INTO schema_version (version) VALUES ($1)",
                    &[&version],
                )
            })
            .map_err(|error| failed("write schema version", error))?;
        tracing::info!(version, "applied store migration (PostgreSQL)");
    }
    transaction
        .commit()
        .map_err(|error| failed("commit", error))?;
    Ok(current_version())
}
