//! Schema migrations: numbered SQL files embedded in the binary, applied in order.
//!
//! The database's `PRAGMA user_version` records how many have been applied. All pending
//! migrations and the new version are applied in one immediate transaction, so a crash leaves
//! either the old schema or the new one, and two processes opening the same file at once apply
//! each migration once. A database newer than this build is refused rather than guessed at.

use rusqlite::{Connection, TransactionBehavior};

use crate::Error;
use crate::sqlite::tx::Context;

/// The migrations, in order; migration `n` (from 1) brings the schema to version `n`.
/// Never edit one that has shipped: add a new file.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_initial.sql"),
    include_str!("../../migrations/0002_fewer_write_indexes.sql"),
];

/// The schema version this build expects.
pub(crate) fn current_version() -> u32 {
    // The list is a handful of entries: the cast cannot truncate.
    MIGRATIONS.len() as u32
}

/// Applies the migrations the database lacks; returns the schema version it is at now.
pub(crate) fn migrate(connection: &mut Connection) -> Result<u32, Error> {
    let transaction = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context("begin migration")?;
    let found: u32 = transaction
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .context("read schema version")?;
    if found > current_version() {
        return Err(Error::Backend(format!(
            "the database's schema version {found} is newer than this build's {}",
            current_version()
        )));
    }
    for (version, sql) in (1..).zip(MIGRATIONS).skip(found as usize) {
        transaction
            .execute_batch(sql)
            .map_err(|error| Error::Backend(format!("migration {version}: {error}")))?;
        transaction
            .pragma_update(None, "user_version", version)
            .context("write schema version")?;
        tracing::info!(version, "applied store migration");
    }
    transaction.commit().context("commit migration")?;
    Ok(current_version())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(connection: &Connection) -> Vec<String> {
        let mut statement = connection
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
            .unwrap();
        statement
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn migrations_run_twice_are_harmless() {
        let mut connection = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut connection).unwrap(), current_version());
        connection
            .execute(
                "INSERT INTO settings (key, value) VALUES ('kept', 'yes')",
                [],
            )
            .unwrap();
        let before = tables(&connection);

        assert_eq!(migrate(&mut connection).unwrap(), current_version());

        assert_eq!(tables(&connection), before);
        let kept: String = connection
            .query_row("SELECT value FROM settings WHERE key = 'kept'", [], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(kept, "yes");
    }

    #[test]
    fn a_database_newer_than_the_build_is_refused() {
        let mut connection = Connection::open_in_memory().unwrap();
        connection
            .pragma_update(None, "user_version", current_version() + 1)
            .unwrap();
        assert!(matches!(migrate(&mut connection), Err(Error::Backend(_))));
    }
}
