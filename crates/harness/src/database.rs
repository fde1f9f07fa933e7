//! PostgreSQL databases for black-box tests: each test creates databases of its own on the
//! server `YIBAO_TEST_DATABASE_URL` names, and drops them when done, so tests run in parallel.
//!
//! Without that variable [`TestDatabase::create`] answers `None` and the test says it was
//! skipped — unless `YIBAO_REQUIRE_POSTGRES=1`, when it panics, so that CI (which sets both)
//! can never skip silently. `scripts/postgres-test-cluster.sh start` starts such a server.

use std::hash::BuildHasher;

/// The environment variable naming the test server (its maintenance database's URL).
pub const TEST_DATABASE_URL_ENV: &str = "YIBAO_TEST_DATABASE_URL";

/// Set to `1` to make a missing [`TEST_DATABASE_URL_ENV`] a failure instead of a skip.
pub const REQUIRE_POSTGRES_ENV: &str = "YIBAO_REQUIRE_POSTGRES";

/// A database created for one test, dropped (with whatever still connects to it) when dropped.
#[derive(Debug)]
pub struct TestDatabase {
    /// The server's URL.
    server: String,
    /// The database's name.
    name: String,
    /// The database's URL.
    url: String,
}

impl TestDatabase {
    /// Creates a fresh database whose name starts with `label`, or answers `None` after saying
    /// the test is skipped when no server is configured.
    ///
    /// # Panics
    /// When `YIBAO_REQUIRE_POSTGRES=1` and no server is configured, or when the server refuses.
    pub fn create(label: &str) -> Option<TestDatabase> {
        let server = std::env::var(TEST_DATABASE_URL_ENV)
            .ok()
            .filter(|url| !url.is_empty());
        let Some(server) = server else {
            assert!(
                std::env::var(REQUIRE_POSTGRES_ENV).as_deref() != Ok("1"),
                "{REQUIRE_POSTGRES_ENV}=1 but {TEST_DATABASE_URL_ENV} is unset: the PostgreSQL \
                 tests cannot run (scripts/postgres-test-cluster.sh start starts a server)"
            );
            eprintln!("skipped on PostgreSQL ({label}): {TEST_DATABASE_URL_ENV} is unset");
            return None;
        };
        let random = std::collections::hash_map::RandomState::new();
        let name = format!(
            "{label}_{:016x}",
            random.hash_one((label, std::process::id()))
        );
        run_sql(&server, &format!("CREATE DATABASE {name}"));
        let url = database_url(&server, &name);
        Some(TestDatabase { server, name, url })
    }

    /// The database's URL, for `--database-url` or `YIBAO_DATABASE_URL`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let server = self.server.clone();
        // Never panic in a drop: a database left behind is only litter on a test server.
        let _ = std::thread::spawn(move || {
            if let Ok(mut client) = postgres::Client::connect(&server, postgres::NoTls) {
                let _ = client.batch_execute(&sql);
            }
        })
        .join();
    }
}

/// Runs `sql` on the database at `url`, on a thread of its own (the `postgres` client must not
/// run on an async worker).
fn run_sql(url: &str, sql: &str) {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    let outcome = std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls)?;
        client.batch_execute(&sql)
    })
    .join();
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(error)) => panic!("the test PostgreSQL server refused: {error}"),
        Err(_) => panic!("talking to the test PostgreSQL server panicked"),
    }
}

/// The URL of database `name` on the server whose URL is `server`.
fn database_url(server: &str, name: &str) -> String {
    let (base, query) = server.split_at(server.find('?').unwrap_or(server.len()));
    let authority = base.find("://").map_or(0, |at| at + 3);
    let host_end = base[authority..]
        .find('/')
        .map_or(base.len(), |at| authority + at);
    format!("{}/{name}{query}", &base[..host_end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_url_names_the_new_database_on_the_same_server() {
        assert_eq!(
            database_url("postgres://yibao@127.0.0.1:5432/postgres", "t1"),
            "postgres://yibao@127.0.0.1:5432/t1"
        );
        assert_eq!(
            database_url("postgres://u:p@h:1/postgres?sslmode=disable", "t2"),
            "postgres://u:p@h:1/t2?sslmode=disable"
        );
        assert_eq!(database_url("postgres://h:1", "t3"), "postgres://h:1/t3");
    }
}
