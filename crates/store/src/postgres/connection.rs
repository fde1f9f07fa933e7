//! Connecting to PostgreSQL, the per-connection statement cache, and the one way a database URL
//! is shown ([`mask_database_url`]): with its password hidden.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use postgres::{Client, Config, NoTls, Statement};

use crate::Error;

/// How long connecting may take before it fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection and the statements prepared on it, each prepared once.
pub(crate) struct PgConnection {
    /// The client; used by one thread at a time.
    pub(crate) client: Client,
    /// Prepared statements by their SQL text.
    statements: HashMap<&'static str, Statement>,
}

impl std::fmt::Debug for PgConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConnection")
            .field("statements", &self.statements.len())
            .finish_non_exhaustive()
    }
}

impl PgConnection {
    /// The statement for `sql`, prepared on first use.
    pub(crate) fn statement(&mut self, sql: &'static str) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql)?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }
}

/// The parsed settings of a database URL (`postgres://user:password@host:port/database`, or the
/// `key=value` form), checked before anything connects.
pub(crate) fn config(url: &str) -> Result<Config, Error> {
    let mut config = Config::from_str(url).map_err(|error| {
        Error::Invalid(format!(
            "database URL {} does not parse: {error}",
            mask_database_url(url)
        ))
    })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("yibao");
    }
    Ok(config)
}

/// Opens one connection. Blocks: call it off the async runtime's workers (the `postgres` crate
/// runs its own runtime and refuses to start inside another's worker).
pub(crate) fn connect(config: &Config, url: &str) -> Result<PgConnection, Error> {
    let client = config.connect(NoTls).map_err(|error| {
        Error::Unavailable(format!(
            "connect to {}: {}",
            mask_database_url(url),
            describe(&error)
        ))
    })?;
    Ok(PgConnection {
        client,
        statements: HashMap::new(),
    })
}

/// A PostgreSQL error's own message (not the detail, which may quote a row's values).
pub(crate) fn describe(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => error.to_string(),
    }
}

/// A database URL with its password replaced by `***`, for logs and errors: the userinfo's
/// password of a URL (`postgres://user:***@host/db`) and a `password=` key of either form.
pub fn mask_database_url(url: &str) -> String {
    let mut masked = url.to_owned();
    if let Some(scheme_end) = masked.find("://") {
        let start = scheme_end + 3;
        let authority_end = masked[start..]
            .find(['/', '?'])
            .map_or(masked.len(), |end| start + end);
        if let Some(at) = masked[start..authority_end].rfind('@') {
            let userinfo = start..start + at;
            if let Some(colon) = masked[userinfo.clone()].find(':') {
                masked.replace_range(userinfo.start + colon + 1..userinfo.end, "***");
            }
        }
    }
    mask_password_key(&masked)
}

/// Hides the value of every `password=` key (a URL's query or the `key=value` form).
fn mask_password_key(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(found) = rest.find("password=") {
        let value_start = found + "password=".len();
        out.push_str(&rest[..value_start]);
        out.push_str("***");
        let value = &rest[value_start..];
        let value_end = if let Some(quoted) = value.strip_prefix('\'') {
            quoted.find('\'').map_or(value.len(), |end| end + 2)
        } else {
            value.find([' ', '&']).unwrap_or(value.len())
        };
        rest = &value[value_end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_urls_password_never_shows() {
        for (url, shown) in [
            (
                "postgres://yibao:s3cret@127.0.0.1:5432/bureau",
                "postgres://yibao:***@127.0.0.1:5432/bureau",
            ),
            (
                "postgresql://yibao:p@ss@db/x?sslmode=disable",
                "postgresql://yibao:***@db/x?sslmode=disable",
            ),
            (
                "postgres://yibao@127.0.0.1/bureau?password=s3cret&x=1",
                "postgres://yibao@127.0.0.1/bureau?password=***&x=1",
            ),
            (
                "host=127.0.0.1 user=yibao password='s3 cret' dbname=x",
                "host=127.0.0.1 user=yibao password=*** dbname=x",
            ),
            ("postgres://127.0.0.1/bureau", "postgres://127.0.0.1/bureau"),
        ] {
            assert_eq!(mask_database_url(url), shown);
        }
    }

    #[test]
    fn a_url_that_does_not_parse_is_refused_without_its_password() {
        let refused = config("postgres://yibao:s3cret@host:notaport/x");
        let Err(Error::Invalid(message)) = refused else {
            panic!("{refused:?}");
        };
        assert!(!message.contains("s3cret"), "{message}");
    }
}
