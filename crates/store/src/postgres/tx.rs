//! [`Tx`] on a PostgreSQL connection that is inside a transaction.
//!
//! Every statement is prepared once per connection and cached. Operations that write more than
//! one row, or that may break a constraint, run in their own nested savepoint, so an operation
//! that fails writes nothing even if the caller goes on and its job succeeds. (In PostgreSQL a
//! failed statement aborts the whole transaction until a savepoint is rolled back to; any other
//! failing statement is remembered as [`PgTx::aborted`], and the writer then undoes and fails
//! the job, whatever the job answered.)
//!
//! **Several writers.** Replicas of one bureau write to one database, each from its own writer.
//! A write transaction reading a transfer locks its row (`FOR UPDATE`) until it commits, so one
//! replica at a time changes a transfer and a step always sees the transfer's latest committed
//! state; reading a processed message takes an advisory lock on its msgid, so a message
//! delivered to two replicas at once is handled by one and answered from its record by the
//! other. Sequences are single-row upserts (`RETURNING`), safe under concurrency.
//!
//! Encoding: money as BIGINT cents, times as BIGINT Unix milliseconds (UTC; as in SQLite),
//! calendar days as DATE, booleans as BOOLEAN.

use chrono::{DateTime, NaiveDate, Utc};
use postgres::Row;
use postgres::error::SqlState;
use postgres::types::ToSql;

use crate::mask::{PERSON_PREFIX, mask_account};
use crate::postgres::connection::{PgConnection, describe};
use crate::{
    CertificateRow, Error, EventRow, InsertCount, JournalCheck, NewOutboxMessage, OutboxMessage,
    PersonRow, Posting, ProcessedMessage, TransferRow, Tx,
};

/// Statement parameters.
type Params<'a> = [&'a (dyn ToSql + Sync)];

/// Whether a transaction may write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The writer's transaction: reads of transfers lock them.
    Write,
    /// A read-only transaction.
    Read,
}

/// A [`Tx`] over a connection on which the caller has begun a transaction.
#[derive(Debug)]
pub(crate) struct PgTx<'c> {
    /// The connection.
    connection: &'c mut PgConnection,
    /// Whether the transaction writes.
    mode: Mode,
    /// The first error that aborted the transaction outside a savepoint of its own, if any.
    pub(crate) aborted: Option<Error>,
}

impl<'c> PgTx<'c> {
    /// Wraps a connection that is inside a transaction.
    pub(crate) fn new(connection: &'c mut PgConnection, mode: Mode) -> Self {
        PgTx {
            connection,
            mode,
            aborted: None,
        }
    }

    /// Notes a failed statement (it aborted the transaction) and maps its error.
    fn failed(&mut self, what: &'static str, error: &postgres::Error) -> Error {
        let mapped = map_error(what, error);
        if self.aborted.is_none() {
            self.aborted = Some(mapped.clone());
        }
        mapped
    }

    /// Rows of a cached statement.
    fn query(
        &mut self,
        sql: &'static str,
        params: &Params<'_>,
        what: &'static str,
    ) -> Result<Vec<Row>, Error> {
        let result = self
            .connection
            .statement(sql)
            .and_then(|statement| self.connection.client.query(&statement, params));
        result.map_err(|error| self.failed(what, &error))
    }

    /// The row of a cached statement, if any.
    fn query_opt(
        &mut self,
        sql: &'static str,
        params: &Params<'_>,
        what: &'static str,
    ) -> Result<Option<Row>, Error> {
        Ok(self.query(sql, params, what)?.into_iter().next())
    }

    /// The one row of a cached statement.
    fn query_one(
        &mut self,
        sql: &'static str,
        params: &Params<'_>,
        what: &'static str,
    ) -> Result<Row, Error> {
        self.query_opt(sql, params, what)?
            .ok_or_else(|| Error::Backend(format!("{what}: no row")))
    }

    /// Runs a cached statement; returns how many rows it changed.
    fn execute(
        &mut self,
        sql: &'static str,
        params: &Params<'_>,
        what: &'static str,
    ) -> Result<u64, Error> {
        let result = self
            .connection
            .statement(sql)
            .and_then(|statement| self.connection.client.execute(&statement, params));
        result.map_err(|error| self.failed(what, &error))
    }

    /// As [`PgTx::execute`], a uniqueness violation being [`Error::Conflict`] saying
    /// `conflict`. Run it inside [`PgTx::atomically`]: the violation aborts the transaction.
    fn execute_unique(
        &mut self,
        sql: &'static str,
        params: &Params<'_>,
        what: &'static str,
        conflict: &str,
    ) -> Result<u64, Error> {
        let result = self
            .connection
            .statement(sql)
            .and_then(|statement| self.connection.client.execute(&statement, params));
        result.map_err(|error| {
            let mapped = self.failed(what, &error);
            if error.code() == Some(&SqlState::UNIQUE_VIOLATION) {
                Error::Conflict(conflict.to_owned())
            } else {
                mapped
            }
        })
    }

    /// Runs `operation` in a nested savepoint: all of its writes or none. A statement that
    /// failed inside it no longer aborts the transaction once the savepoint is rolled back to.
    fn atomically<T>(
        &mut self,
        operation: impl FnOnce(&mut Self) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let before = self.aborted.clone();
        self.execute("SAVEPOINT operation", &[], "begin operation")?;
        match operation(self) {
            Ok(value) => {
                self.execute("RELEASE operation", &[], "end operation")?;
                Ok(value)
            }
            Err(error) => {
                self.execute("ROLLBACK TO operation", &[], "undo operation")?;
                self.execute("RELEASE operation", &[], "end operation")?;
                self.aborted = before;
                Err(error)
            }
        }
    }

    /// Runs a person update or insert statement whose parameters are a whole person row.
    fn execute_person(
        &mut self,
        sql: &'static str,
        person: &PersonRow,
        what: &'static str,
    ) -> Result<u64, Error> {
        let insutype = i32::from(person.insutype);
        let status = i16::from(person.psn_insu_stas);
        let deemed = i64::from(person.deemed_months);
        self.execute(
            sql,
            &[
                &person.certno,
                &person.psn_name,
                &person.insu_admdvs,
                &insutype,
                &status,
                &person.fst_insu_ym,
                &person.retired,
                &person.arrears_cents,
                &deemed,
                &person.periods_json,
                &person.flow,
            ],
            what,
        )
    }

    /// Takes money from a person account only if it stays non-negative.
    fn debit_person(&mut self, account: &str, amount_cents: i64) -> Result<(), Error> {
        let changed = self.execute(
            "UPDATE accounts SET balance_cents = balance_cents - $2 \
             WHERE account = $1 AND balance_cents >= $2",
            &[&account, &amount_cents],
            "debit person account",
        )?;
        if changed == 0 {
            return Err(Error::InsufficientFunds {
                account: account.to_owned(),
            });
        }
        Ok(())
    }

    /// Adds to a person account's cached balance, creating the account first.
    fn credit_person(&mut self, account: &str, amount_cents: i64) -> Result<(), Error> {
        self.execute(
            "INSERT INTO accounts (account, balance_cents) VALUES ($1, $2) \
             ON CONFLICT (account) DO UPDATE \
             SET balance_cents = accounts.balance_cents + excluded.balance_cents",
            &[&account, &amount_cents],
            "credit person account",
        )
        .map(drop)
    }

    /// The transfers a query selects (the query selects `transfer_columns!()`).
    fn transfers_where(
        &mut self,
        sql: &'static str,
        params: &Params<'_>,
        what: &'static str,
    ) -> Result<Vec<TransferRow>, Error> {
        self.query(sql, params, what)?
            .iter()
            .map(transfer_row)
            .collect()
    }

    /// Pairs of (name, sum or count) a grouping query selects.
    fn grouped(
        &mut self,
        sql: &'static str,
        what: &'static str,
    ) -> Result<Vec<(String, i64)>, Error> {
        self.query(sql, &[], what)?
            .iter()
            .map(|row| Ok((get(row, 0)?, get(row, 1)?)))
            .collect()
    }

    /// A single integer a query selects.
    fn integer(
        &mut self,
        sql: &'static str,
        params: &Params<'_>,
        what: &'static str,
    ) -> Result<i64, Error> {
        get(&self.query_one(sql, params, what)?, 0)
    }

    /// The outbox messages a query selects (the query selects `outbox_columns!()`).
    fn messages_where(
        &mut self,
        sql: &'static str,
        params: &Params<'_>,
        what: &'static str,
    ) -> Result<Vec<OutboxMessage>, Error> {
        self.query(sql, params, what)?
            .iter()
            .map(outbox_row)
            .collect()
    }
}

/// The person columns, in [`person_row`] order.
macro_rules! person_columns {
    () => {
        "certno, psn_name, insu_admdvs, insutype, psn_insu_stas, fst_insu_ym, retired, \
         arrears_cents, deemed_months, periods_json, flow"
    };
}

/// The transfer columns, in [`transfer_row`] order.
macro_rules! transfer_columns {
    () => {
        "transfer_id, certno, state, open, whole_process_due_on, created_at_ms, updated_at_ms, \
         document"
    };
}

/// The outbox columns, in [`outbox_row`] order.
macro_rules! outbox_columns {
    () => {
        "id, transfer_id, kind, peer, msgid, payload, next_attempt_at_ms, created_at_ms, \
         attempts, last_error"
    };
}

/// The event columns, in [`event_row`] order.
macro_rules! event_columns {
    () => {
        "transfer_id, seq, at_ms, kind, from_state, to_state, detail, attempt"
    };
}

impl Tx for PgTx<'_> {
    fn person(&mut self, certno: &str) -> Result<Option<PersonRow>, Error> {
        self.query_opt(
            concat!(
                "SELECT ",
                person_columns!(),
                " FROM persons WHERE certno = $1"
            ),
            &[&certno],
            "read person",
        )?
        .as_ref()
        .map(person_row)
        .transpose()
    }

    fn insert_persons(&mut self, persons: &[PersonRow]) -> Result<InsertCount, Error> {
        self.atomically(|tx| {
            let mut count = InsertCount::default();
            for person in persons {
                let written = tx.execute_person(
                    concat!(
                        "INSERT INTO persons (",
                        person_columns!(),
                        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                         ON CONFLICT (certno) DO NOTHING"
                    ),
                    person,
                    "insert persons",
                )?;
                if written == 0 {
                    count.already_present += 1;
                } else {
                    count.written += 1;
                }
            }
            Ok(count)
        })
    }

    fn update_person(&mut self, person: &PersonRow) -> Result<(), Error> {
        let changed = self.execute_person(
            "UPDATE persons SET psn_name = $2, insu_admdvs = $3, insutype = $4, \
             psn_insu_stas = $5, fst_insu_ym = $6, retired = $7, arrears_cents = $8, \
             deemed_months = $9, periods_json = $10, flow = $11 WHERE certno = $1",
            person,
            "update person",
        )?;
        if changed == 0 {
            return Err(Error::NotFound("person".to_owned()));
        }
        Ok(())
    }

    fn sample_persons(&mut self, flow: &str, limit: u32) -> Result<Vec<PersonRow>, Error> {
        let limit = i64::from(limit);
        self.query(
            concat!(
                "SELECT ",
                person_columns!(),
                " FROM persons WHERE flow = $1 ORDER BY certno LIMIT $2"
            ),
            &[&flow, &limit],
            "sample persons",
        )?
        .iter()
        .map(person_row)
        .collect()
    }

    fn post(&mut self, posting: &Posting) -> Result<(), Error> {
        if posting.amount_cents <= 0 {
            return Err(Error::Invalid(format!(
                "a posting must move a positive amount, not {} cents",
                posting.amount_cents
            )));
        }
        if posting.from_account == posting.to_account {
            return Err(Error::Invalid(format!(
                "a posting must move money between two accounts, not within {}",
                mask_account(&posting.from_account)
            )));
        }
        self.atomically(|tx| {
            if posting.from_account.starts_with(PERSON_PREFIX) {
                tx.debit_person(&posting.from_account, posting.amount_cents)?;
            }
            if posting.to_account.starts_with(PERSON_PREFIX) {
                tx.credit_person(&posting.to_account, posting.amount_cents)?;
            }
            let at = posting.at.timestamp_millis();
            tx.execute(
                "INSERT INTO postings (from_account, to_account, amount_cents, transfer_id, \
                 reason, at_ms) VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &posting.from_account,
                    &posting.to_account,
                    &posting.amount_cents,
                    &posting.transfer_id,
                    &posting.reason,
                    &at,
                ],
                "insert posting",
            )
            .map(drop)
        })
    }

    fn balance(&mut self, account: &str) -> Result<i64, Error> {
        if account.starts_with(PERSON_PREFIX) {
            let row = self.query_opt(
                "SELECT balance_cents FROM accounts WHERE account = $1",
                &[&account],
                "read balance",
            )?;
            return row.map_or(Ok(0), |row| get(&row, 0));
        }
        self.integer(
            "SELECT (COALESCE((SELECT SUM(amount_cents) FROM postings WHERE to_account = $1), 0) \
             - COALESCE((SELECT SUM(amount_cents) FROM postings WHERE from_account = $1), 0)) \
             ::BIGINT",
            &[&account],
            "read balance",
        )
    }

    fn totals_by_reason(&mut self) -> Result<Vec<(String, i64)>, Error> {
        self.grouped(
            "SELECT reason, SUM(amount_cents)::BIGINT FROM postings GROUP BY reason ORDER BY reason",
            "total postings by reason",
        )
    }

    fn account_class_balances(&mut self) -> Result<Vec<(String, i64)>, Error> {
        self.grouped(
            "SELECT class, SUM(cents)::BIGINT FROM (
                 SELECT split_part(account, ':', 1) AS class, balance_cents AS cents FROM accounts
                 UNION ALL
                 SELECT split_part(from_account, ':', 1), -amount_cents FROM postings
                 WHERE from_account NOT LIKE 'person:%'
                 UNION ALL
                 SELECT split_part(to_account, ':', 1), amount_cents FROM postings
                 WHERE to_account NOT LIKE 'person:%'
             ) AS movements GROUP BY class ORDER BY class COLLATE \"C\"",
            "sum balances by account class",
        )
    }

    fn verify_journal(&mut self) -> Result<JournalCheck, Error> {
        let postings = self.integer("SELECT COUNT(*) FROM postings", &[], "count postings")?;
        // Only person accounts are cached; the others are the journal's sums, so they always
        // agree with it, and all balances sum to the person caches' drift from the journal.
        let balance_sum_cents = self.integer(
            "SELECT (COALESCE((SELECT SUM(balance_cents) FROM accounts), 0)
                   - COALESCE((SELECT SUM(amount_cents) FROM postings
                               WHERE to_account LIKE 'person:%'), 0)
                   + COALESCE((SELECT SUM(amount_cents) FROM postings
                               WHERE from_account LIKE 'person:%'), 0))::BIGINT",
            &[],
            "sum balances",
        )?;
        let limit = i64::from(JournalCheck::MISMATCHES_LIMIT);
        let mismatched = self
            .query(
                "WITH movements (account, delta_cents) AS (
                     SELECT from_account, -amount_cents FROM postings
                     WHERE from_account LIKE 'person:%'
                     UNION ALL
                     SELECT to_account, amount_cents FROM postings
                     WHERE to_account LIKE 'person:%'
                 ), journal (account, balance_cents) AS (
                     SELECT account, SUM(delta_cents) FROM movements GROUP BY account
                 )
                 SELECT account FROM (
                     SELECT COALESCE(cached.account, journal.account) AS account
                     FROM accounts AS cached FULL JOIN journal USING (account)
                     WHERE COALESCE(cached.balance_cents, 0) <> COALESCE(journal.balance_cents, 0)
                 ) AS differing ORDER BY account LIMIT $1",
                &[&limit],
                "verify journal",
            )?
            .iter()
            .map(|row| get::<String>(row, 0))
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(JournalCheck {
            postings: count(postings, "postings")?,
            cached_matches_journal: mismatched.is_empty(),
            mismatched_accounts: mismatched
                .iter()
                .map(|account| mask_account(account))
                .collect(),
            balance_sum_cents,
        })
    }

    fn insert_transfer(&mut self, transfer: &TransferRow) -> Result<(), Error> {
        let created = transfer.created_at.timestamp_millis();
        let updated = transfer.updated_at.timestamp_millis();
        // ON CONFLICT DO NOTHING covers the id and the one-open-transfer index alike, and waits
        // for a concurrent insert of either to commit or roll back first.
        let written = self.execute(
            concat!(
                "INSERT INTO transfers (",
                transfer_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING"
            ),
            &[
                &transfer.transfer_id,
                &transfer.certno,
                &transfer.state,
                &transfer.open,
                &transfer.whole_process_due_on,
                &created,
                &updated,
                &transfer.document,
            ],
            "insert transfer",
        )?;
        if written == 1 {
            return Ok(());
        }
        let id_taken = self
            .query_opt(
                "SELECT 1 FROM transfers WHERE transfer_id = $1",
                &[&transfer.transfer_id],
                "check transfer id",
            )?
            .is_some();
        Err(Error::Conflict(
            if id_taken {
                "transfer id exists"
            } else {
                "open transfer exists"
            }
            .to_owned(),
        ))
    }

    fn transfer(&mut self, transfer_id: &str) -> Result<Option<TransferRow>, Error> {
        let row = match self.mode {
            Mode::Write => self.query_opt(
                concat!(
                    "SELECT ",
                    transfer_columns!(),
                    " FROM transfers WHERE transfer_id = $1 FOR UPDATE"
                ),
                &[&transfer_id],
                "read transfer",
            )?,
            Mode::Read => self.query_opt(
                concat!(
                    "SELECT ",
                    transfer_columns!(),
                    " FROM transfers WHERE transfer_id = $1"
                ),
                &[&transfer_id],
                "read transfer",
            )?,
        };
        row.as_ref().map(transfer_row).transpose()
    }

    fn update_transfer(&mut self, transfer: &TransferRow) -> Result<(), Error> {
        let updated = transfer.updated_at.timestamp_millis();
        let changed = self.atomically(|tx| {
            tx.execute_unique(
                "UPDATE transfers SET state = $2, open = $3, whole_process_due_on = $4, \
                 updated_at_ms = $5, document = $6 WHERE transfer_id = $1",
                &[
                    &transfer.transfer_id,
                    &transfer.state,
                    &transfer.open,
                    &transfer.whole_process_due_on,
                    &updated,
                    &transfer.document,
                ],
                "update transfer",
                "open transfer exists",
            )
        })?;
        if changed == 0 {
            return Err(Error::NotFound(format!(
                "transfer {}",
                transfer.transfer_id
            )));
        }
        Ok(())
    }

    fn open_transfer_of(&mut self, certno: &str) -> Result<Option<String>, Error> {
        self.query_opt(
            "SELECT transfer_id FROM transfers WHERE certno = $1 AND open",
            &[&certno],
            "find open transfer",
        )?
        .map(|row| get(&row, 0))
        .transpose()
    }

    fn transfers_of(&mut self, certno: &str) -> Result<Vec<TransferRow>, Error> {
        self.transfers_where(
            concat!(
                "SELECT ",
                transfer_columns!(),
                " FROM transfers WHERE certno = $1 ORDER BY created_at_ms, transfer_id"
            ),
            &[&certno],
            "read transfers of person",
        )
    }

    fn transfers_after(
        &mut self,
        after_transfer_id: &str,
        limit: u32,
    ) -> Result<Vec<TransferRow>, Error> {
        let limit = i64::from(limit);
        self.transfers_where(
            concat!(
                "SELECT ",
                transfer_columns!(),
                " FROM transfers WHERE transfer_id > $1 ORDER BY transfer_id LIMIT $2"
            ),
            &[&after_transfer_id, &limit],
            "page through transfers",
        )
    }

    fn open_transfers_due_before(
        &mut self,
        day: NaiveDate,
        limit: u32,
    ) -> Result<Vec<TransferRow>, Error> {
        let limit = i64::from(limit);
        self.transfers_where(
            concat!(
                "SELECT ",
                transfer_columns!(),
                " FROM transfers WHERE open AND whole_process_due_on < $1 \
                 ORDER BY whole_process_due_on, transfer_id LIMIT $2"
            ),
            &[&day, &limit],
            "read overdue transfers",
        )
    }

    fn open_transfers_in_state_due_before(
        &mut self,
        state: &str,
        day: NaiveDate,
        limit: u32,
    ) -> Result<Vec<TransferRow>, Error> {
        let limit = i64::from(limit);
        self.transfers_where(
            concat!(
                "SELECT ",
                transfer_columns!(),
                " FROM transfers WHERE open AND whole_process_due_on < $1 AND state = $3 \
                 ORDER BY whole_process_due_on, transfer_id LIMIT $2"
            ),
            &[&day, &limit, &state],
            "read overdue transfers in a state",
        )
    }

    fn open_transfers_in_state(
        &mut self,
        state: &str,
        limit: u32,
    ) -> Result<Vec<TransferRow>, Error> {
        let limit = i64::from(limit);
        self.transfers_where(
            concat!(
                "SELECT ",
                transfer_columns!(),
                " FROM transfers WHERE open AND state = $1 ORDER BY transfer_id LIMIT $2"
            ),
            &[&state, &limit],
            "read open transfers in a state",
        )
    }

    fn count_open_transfers_due_before(&mut self, day: NaiveDate) -> Result<u64, Error> {
        let number = self.integer(
            "SELECT COUNT(*) FROM transfers WHERE open AND whole_process_due_on < $1",
            &[&day],
            "count overdue transfers",
        )?;
        count(number, "transfers")
    }

    fn count_open_transfers_in_state_due_between(
        &mut self,
        state: &str,
        from: NaiveDate,
        before: NaiveDate,
    ) -> Result<u64, Error> {
        let number = self.integer(
            "SELECT COUNT(*) FROM transfers WHERE open AND state = $1 \
             AND whole_process_due_on >= $2 AND whole_process_due_on < $3",
            &[&state, &from, &before],
            "count overdue transfers in a state",
        )?;
        count(number, "transfers")
    }

    fn count_transfers_by_state(&mut self) -> Result<Vec<(String, u64)>, Error> {
        self.grouped(
            "SELECT state, COUNT(*) FROM transfers GROUP BY state ORDER BY state",
            "count transfers by state",
        )?
        .into_iter()
        .map(|(state, number)| Ok((state, count(number, "transfers")?)))
        .collect()
    }

    fn append_event(&mut self, event: &EventRow) -> Result<u32, Error> {
        // Locking the transfer's row makes the numbering safe against another writer appending
        // to the same history, and says whether the transfer exists.
        let locked = match self.mode {
            Mode::Write => self.query_opt(
                "SELECT 1 FROM transfers WHERE transfer_id = $1 FOR UPDATE",
                &[&event.transfer_id],
                "lock transfer",
            )?,
            Mode::Read => self.query_opt(
                "SELECT 1 FROM transfers WHERE transfer_id = $1",
                &[&event.transfer_id],
                "lock transfer",
            )?,
        };
        if locked.is_none() {
            return Err(Error::NotFound(format!("transfer {}", event.transfer_id)));
        }
        let seq = if event.seq == 0 {
            self.integer(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM transfer_events WHERE transfer_id = $1",
                &[&event.transfer_id],
                "number event",
            )?
        } else {
            i64::from(event.seq)
        };
        let at = event.at.timestamp_millis();
        let attempt = i64::from(event.attempt);
        let written = self.execute(
            concat!(
                "INSERT INTO transfer_events (",
                event_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING"
            ),
            &[
                &event.transfer_id,
                &seq,
                &at,
                &event.kind,
                &event.from_state,
                &event.to_state,
                &event.detail,
                &attempt,
            ],
            "append event",
        )?;
        if written == 0 {
            return Err(Error::Conflict(format!(
                "event {} of transfer {} exists",
                event.seq, event.transfer_id
            )));
        }
        u32::try_from(seq).map_err(|_| Error::Backend(format!("event number out of range: {seq}")))
    }

    fn events(&mut self, transfer_id: &str) -> Result<Vec<EventRow>, Error> {
        self.query(
            concat!(
                "SELECT ",
                event_columns!(),
                " FROM transfer_events WHERE transfer_id = $1 ORDER BY seq"
            ),
            &[&transfer_id],
            "read events",
        )?
        .iter()
        .map(event_row)
        .collect()
    }

    fn enqueue(&mut self, message: &NewOutboxMessage) -> Result<i64, Error> {
        let next = message.next_attempt_at.timestamp_millis();
        let created = message.created_at.timestamp_millis();
        let row = self.query_opt(
            "INSERT INTO outbox (transfer_id, kind, peer, msgid, payload, next_attempt_at_ms, \
             created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (msgid) DO NOTHING RETURNING id",
            &[
                &message.transfer_id,
                &message.kind,
                &message.peer,
                &message.msgid,
                &message.payload,
                &next,
                &created,
            ],
            "enqueue message",
        )?;
        match row {
            Some(row) => get(&row, 0),
            None => Err(Error::Conflict("message id already queued".to_owned())),
        }
    }

    fn due_messages_except(
        &mut self,
        now: DateTime<Utc>,
        limit: u32,
        except: &[i64],
    ) -> Result<Vec<OutboxMessage>, Error> {
        let now = now.timestamp_millis();
        let limit = i64::from(limit);
        self.messages_where(
            concat!(
                "SELECT ",
                outbox_columns!(),
                " FROM outbox WHERE next_attempt_at_ms <= $1 AND NOT (id = ANY ($3)) \
                 ORDER BY next_attempt_at_ms, id LIMIT $2"
            ),
            &[&now, &limit, &except],
            "read due messages",
        )
    }

    fn claim_due_messages(
        &mut self,
        now: DateTime<Utc>,
        limit: u32,
        except: &[i64],
        claimant: &str,
        until: DateTime<Utc>,
    ) -> Result<Vec<OutboxMessage>, Error> {
        let (now, until, limit) = (
            now.timestamp_millis(),
            until.timestamp_millis(),
            i64::from(limit),
        );
        let mut claimed = self.messages_where(
            concat!(
                "UPDATE outbox SET claimed_until_ms = $4, claimed_by = $5 WHERE id IN (\
                 SELECT id FROM outbox WHERE next_attempt_at_ms <= $1 AND claimed_until_ms <= $1 \
                 AND NOT (id = ANY ($3)) ORDER BY next_attempt_at_ms, id LIMIT $2 \
                 FOR UPDATE SKIP LOCKED) RETURNING ",
                outbox_columns!()
            ),
            &[&now, &limit, &except, &until, &claimant],
            "claim due messages",
        )?;
        claimed.sort_by_key(|message| (message.next_attempt_at, message.id));
        Ok(claimed)
    }

    fn take_lease(
        &mut self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let (now, until) = (now.timestamp_millis(), until.timestamp_millis());
        let held = self.query_opt(
            "INSERT INTO leases (name, holder, until_ms) VALUES ($1, $2, $4) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms \
             WHERE leases.holder = excluded.holder OR leases.until_ms <= $3 RETURNING holder",
            &[&name, &holder, &now, &until],
            "take lease",
        )?;
        Ok(held.is_some())
    }

    fn next_due_at(&mut self) -> Result<Option<DateTime<Utc>>, Error> {
        let row = self.query_one(
            "SELECT MIN(next_attempt_at_ms) FROM outbox",
            &[],
            "read next due time",
        )?;
        get::<Option<i64>>(&row, 0)?.map(time_of_millis).transpose()
    }

    fn message_acknowledged(&mut self, id: i64) -> Result<(), Error> {
        self.execute(
            "DELETE FROM outbox WHERE id = $1",
            &[&id],
            "delete acknowledged message",
        )
        .map(drop)
    }

    fn withdraw_messages(&mut self, transfer_id: &str, kind: &str) -> Result<u64, Error> {
        self.execute(
            "DELETE FROM outbox WHERE transfer_id = $1 AND kind = $2",
            &[&transfer_id, &kind],
            "withdraw messages",
        )
    }

    fn message_retry_later(
        &mut self,
        id: i64,
        attempts: u32,
        next_attempt_at: DateTime<Utc>,
        last_error: &str,
    ) -> Result<(), Error> {
        let attempts = i64::from(attempts);
        let next = next_attempt_at.timestamp_millis();
        self.execute(
            "UPDATE outbox SET attempts = $2, next_attempt_at_ms = $3, last_error = $4, \
             claimed_until_ms = 0, claimed_by = NULL WHERE id = $1",
            &[&id, &attempts, &next, &last_error],
            "reschedule message",
        )
        .map(drop)
    }

    fn park_messages(
        &mut self,
        transfer_id: &str,
        kind: &str,
        until: DateTime<Utc>,
        last_error: &str,
    ) -> Result<u64, Error> {
        let until = until.timestamp_millis();
        self.execute(
            "UPDATE outbox SET next_attempt_at_ms = $3, last_error = $4 \
             WHERE transfer_id = $1 AND kind = $2",
            &[&transfer_id, &kind, &until, &last_error],
            "park messages",
        )
    }

    fn messages_due_from(
        &mut self,
        from: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>, Error> {
        let from = from.timestamp_millis();
        let limit = i64::from(limit);
        self.messages_where(
            concat!(
                "SELECT ",
                outbox_columns!(),
                " FROM outbox WHERE next_attempt_at_ms >= $1 ORDER BY id LIMIT $2"
            ),
            &[&from, &limit],
            "read parked messages",
        )
    }

    fn pending_messages(&mut self) -> Result<u64, Error> {
        let pending = self.integer("SELECT COUNT(*) FROM outbox", &[], "count pending messages")?;
        count(pending, "pending messages")
    }

    fn processed_message(&mut self, msgid: &str) -> Result<Option<ProcessedMessage>, Error> {
        if self.mode == Mode::Write {
            // Another replica handling the same msgid holds this lock until it commits; then
            // its record is visible here (each statement sees the latest commits).
            self.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                &[&msgid],
                "lock message id",
            )?;
        }
        self.query_opt(
            "SELECT body_sha256, answer, at_ms FROM processed_messages WHERE msgid = $1",
            &[&msgid],
            "read processed message",
        )?
        .map(|row| {
            Ok(ProcessedMessage {
                body_sha256: get(&row, 0)?,
                answer: get(&row, 1)?,
                at: time_at(&row, 2)?,
            })
        })
        .transpose()
    }

    fn record_processed(
        &mut self,
        msgid: &str,
        body_sha256: &[u8],
        answer: &[u8],
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let at = at.timestamp_millis();
        let written = self.execute(
            "INSERT INTO processed_messages (msgid, body_sha256, answer, at_ms) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (msgid) DO NOTHING",
            &[&msgid, &body_sha256, &answer, &at],
            "record processed message",
        )?;
        if written == 0 {
            return Err(Error::Conflict("message already processed".to_owned()));
        }
        Ok(())
    }

    fn next_sequence(&mut self, name: &str) -> Result<u64, Error> {
        let value = self.integer(
            "INSERT INTO sequences (name, value) VALUES ($1, 1) \
             ON CONFLICT (name) DO UPDATE SET value = sequences.value + 1 RETURNING value",
            &[&name],
            "advance sequence",
        )?;
        count(value, "sequence")
    }

    fn next_sequence_at_least(&mut self, name: &str, floor: u64) -> Result<u64, Error> {
        let floor = i64::try_from(floor)
            .map_err(|_| Error::Invalid("a sequence floor beyond the integer range".into()))?;
        let value = self.integer(
            "INSERT INTO sequences (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = GREATEST(sequences.value + 1, $2) \
             RETURNING value",
            &[&name, &floor],
            "advance sequence",
        )?;
        count(value, "sequence")
    }

    fn setting(&mut self, key: &str) -> Result<Option<String>, Error> {
        self.query_opt(
            "SELECT value FROM settings WHERE key = $1",
            &[&key],
            "read setting",
        )?
        .map(|row| get(&row, 0))
        .transpose()
    }

    fn put_setting(&mut self, key: &str, value: &str) -> Result<(), Error> {
        self.execute(
            "INSERT INTO settings (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&key, &value],
            "write setting",
        )
        .map(drop)
    }

    fn put_certificate(
        &mut self,
        code: &str,
        certno: &str,
        body_json: &str,
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let at = at.timestamp_millis();
        let written = self.execute(
            "INSERT INTO certificates (code, certno, body_json, issued_at_ms) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (code) DO NOTHING",
            &[&code, &certno, &body_json, &at],
            "store certificate",
        )?;
        if written == 0 {
            let stored = self.certificate(code)?;
            let same = stored
                .is_some_and(|stored| stored.certno == certno && stored.body_json == body_json);
            if !same {
                return Err(Error::Conflict(format!("certificate code {code} is taken")));
            }
        }
        Ok(())
    }

    fn certificate(&mut self, code: &str) -> Result<Option<CertificateRow>, Error> {
        self.query_opt(
            "SELECT code, certno, body_json, issued_at_ms FROM certificates WHERE code = $1",
            &[&code],
            "read certificate",
        )?
        .map(|row| {
            Ok(CertificateRow {
                code: get(&row, 0)?,
                certno: get(&row, 1)?,
                body_json: get(&row, 2)?,
                issued_at: time_at(&row, 3)?,
            })
        })
        .transpose()
    }
}

/// A PostgreSQL error as the store's: [`Error::Unavailable`] when the database could not write
/// (disk full, I/O error, the connection lost) or when a concurrent writer made the step fail
/// (a deadlock, a serialization failure, a lock not available) — the step was undone and may be
/// tried again — and [`Error::Backend`] naming what the store was doing otherwise.
pub(crate) fn map_error(what: &'static str, error: &postgres::Error) -> Error {
    let text = format!("{what}: {}", describe(error));
    if error.is_closed() {
        return Error::Unavailable(text);
    }
    let Some(code) = error.code() else {
        return Error::Backend(text);
    };
    let concurrent = [
        SqlState::T_R_DEADLOCK_DETECTED,
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::LOCK_NOT_AVAILABLE,
    ];
    let class = &code.code()[..2];
    if concurrent.contains(code) || matches!(class, "53" | "58" | "08" | "57") {
        Error::Unavailable(text)
    } else {
        Error::Backend(text)
    }
}

/// A count from the database as `u64`; a negative count means a corrupt database.
fn count(value: i64, what: &str) -> Result<u64, Error> {
    u64::try_from(value).map_err(|_| Error::Backend(format!("negative count of {what}: {value}")))
}

/// A stored time.
fn time_of_millis(millis: i64) -> Result<DateTime<Utc>, Error> {
    DateTime::from_timestamp_millis(millis)
        .ok_or_else(|| Error::Backend(format!("stored time out of range: {millis} ms")))
}

/// Column `index` of `row`, decoded as `T`.
fn get<'r, T: postgres::types::FromSql<'r>>(row: &'r Row, index: usize) -> Result<T, Error> {
    row.try_get(index)
        .map_err(|error| Error::Backend(format!("decode column {index}: {error}")))
}

/// Column `index` of `row` as a time stored in Unix milliseconds.
fn time_at(row: &Row, index: usize) -> Result<DateTime<Utc>, Error> {
    time_of_millis(get(row, index)?)
}

/// Column `index` of `row` as an integer of a narrower type.
fn narrow<T: TryFrom<i64>>(row: &Row, index: usize) -> Result<T, Error> {
    let wide: i64 = get(row, index)?;
    T::try_from(wide).map_err(|_| {
        Error::Backend(format!(
            "stored value out of range in column {index}: {wide}"
        ))
    })
}

/// A person from a row of [`person_columns!`].
fn person_row(row: &Row) -> Result<PersonRow, Error> {
    let insutype: i32 = get(row, 3)?;
    let status: i16 = get(row, 4)?;
    Ok(PersonRow {
        certno: get(row, 0)?,
        psn_name: get(row, 1)?,
        insu_admdvs: get(row, 2)?,
        insutype: u16::try_from(insutype)
            .map_err(|_| Error::Backend(format!("stored insutype out of range: {insutype}")))?,
        psn_insu_stas: u8::try_from(status)
            .map_err(|_| Error::Backend(format!("stored status out of range: {status}")))?,
        fst_insu_ym: get(row, 5)?,
        retired: get(row, 6)?,
        arrears_cents: get(row, 7)?,
        deemed_months: narrow(row, 8)?,
        periods_json: get(row, 9)?,
        flow: get(row, 10)?,
    })
}

/// A transfer from a row of [`transfer_columns!`].
fn transfer_row(row: &Row) -> Result<TransferRow, Error> {
    Ok(TransferRow {
        transfer_id: get(row, 0)?,
        certno: get(row, 1)?,
        state: get(row, 2)?,
        open: get(row, 3)?,
        whole_process_due_on: get(row, 4)?,
        created_at: time_at(row, 5)?,
        updated_at: time_at(row, 6)?,
        document: get(row, 7)?,
    })
}

/// An event from a row of [`event_columns!`].
fn event_row(row: &Row) -> Result<EventRow, Error> {
    Ok(EventRow {
        transfer_id: get(row, 0)?,
        seq: narrow(row, 1)?,
        at: time_at(row, 2)?,
        kind: get(row, 3)?,
        from_state: get(row, 4)?,
        to_state: get(row, 5)?,
        detail: get(row, 6)?,
        attempt: narrow(row, 7)?,
    })
}

/// An outbox message from a row of [`outbox_columns!`].
fn outbox_row(row: &Row) -> Result<OutboxMessage, Error> {
    Ok(OutboxMessage {
        id: get(row, 0)?,
        transfer_id: get(row, 1)?,
        kind: get(row, 2)?,
        peer: get(row, 3)?,
        msgid: get(row, 4)?,
        payload: get(row, 5)?,
        next_attempt_at: time_at(row, 6)?,
        created_at: time_at(row, 7)?,
        attempts: narrow(row, 8)?,
        last_error: get(row, 9)?,
    })
}
