//! [`Tx`] on a SQLite connection that is inside a transaction.
//!
//! Every statement is prepared once per connection and cached (`prepare_cached`). Operations that
//! write more than one row run in their own nested savepoint, so an operation that fails writes
//! nothing even if the caller goes on and its job succeeds.
//!
//! Encoding: money as INTEGER cents, times as INTEGER Unix milliseconds (UTC; sub-millisecond
//! precision is dropped), calendar days as TEXT `YYYY-MM-DD` (which sorts like the days),
//! booleans as 0/1.

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::mask::{PERSON_PREFIX, mask_account};
use crate::{
    CertificateRow, Error, EventRow, InsertCount, JournalCheck, NewOutboxMessage, OutboxMessage,
    PersonRow, Posting, ProcessedMessage, TransferRow, Tx,
};

/// A [`Tx`] over a connection on which the caller has begun a transaction.
#[derive(Debug)]
pub(crate) struct SqliteTx<'c> {
    /// The connection; all methods need only a shared reference, but [`Tx`] takes `&mut self`
    /// so that a PostgreSQL transaction (which needs `&mut`) fits the same trait.
    connection: &'c Connection,
}

impl<'c> SqliteTx<'c> {
    /// Wraps a connection that is inside a transaction.
    pub(crate) fn new(connection: &'c Connection) -> Self {
        SqliteTx { connection }
    }

    /// Runs `operation` in a nested savepoint: all of its writes or none.
    fn atomically<T>(
        &mut self,
        operation: impl FnOnce(&mut Self) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.execute_cached("SAVEPOINT operation", "begin operation")?;
        match operation(self) {
            Ok(value) => {
                self.execute_cached("RELEASE operation", "end operation")?;
                Ok(value)
            }
            Err(error) => {
                self.execute_cached("ROLLBACK TO operation", "undo operation")?;
                self.execute_cached("RELEASE operation", "end operation")?;
                Err(error)
            }
        }
    }

    /// Advances a sequence with `upsert`, then reads its value (two statements rather than
    /// RETURNING, whose ephemeral table costs more).
    fn advance_sequence(
        &self,
        upsert: &str,
        parameters: &[&dyn rusqlite::ToSql],
        name: &str,
    ) -> Result<u64, Error> {
        self.connection
            .prepare_cached(upsert)
            .and_then(|mut statement| statement.execute(parameters))
            .context("advance sequence")?;
        let value = self
            .connection
            .prepare_cached("SELECT value FROM sequences WHERE name = ?1")
            .and_then(|mut statement| statement.query_row([name], |row| row.get(0)))
            .context("advance sequence")?;
        count(value, "sequence")
    }

    /// Runs a statement without parameters.
    fn execute_cached(&self, sql: &str, what: &'static str) -> Result<usize, Error> {
        self.connection
            .prepare_cached(sql)
            .and_then(|mut statement| statement.execute([]))
            .context(what)
    }

    /// Runs a person update or insert statement whose parameters are a whole person row.
    fn execute_person(
        &self,
        sql: &str,
        person: &PersonRow,
        what: &'static str,
    ) -> Result<usize, Error> {
        let mut statement = self.connection.prepare_cached(sql).context(what)?;
        statement
            .execute(params![
                person.certno,
                person.psn_name,
                person.insu_admdvs,
                person.insutype,
                person.psn_insu_stas,
                person.fst_insu_ym,
                person.retired,
                person.arrears_cents,
                person.deemed_months,
                person.periods_json,
                person.flow,
            ])
            .context(what)
    }

    /// Adds `delta_cents` to an account's cached balance, creating the account at 0 first.
    fn add_to_balance(&self, account: &str, delta_cents: i64) -> Result<(), Error> {
        let mut statement = self
            .connection
            .prepare_cached(
                "INSERT INTO accounts (account, balance_cents) VALUES (?1, ?2)
                 ON CONFLICT (account) DO UPDATE SET balance_cents = balance_cents + excluded.balance_cents",
            )
            .context("update balance")?;
        statement
            .execute(params![account, delta_cents])
            .context("update balance")?;
        Ok(())
    }

    /// Takes money from a person account only if it stays non-negative.
    fn debit_person(&self, account: &str, amount_cents: i64) -> Result<(), Error> {
        let mut statement = self
            .connection
            .prepare_cached(
                "UPDATE accounts SET balance_cents = balance_cents - ?2
                 WHERE account = ?1 AND balance_cents >= ?2",
            )
            .context("debit person account")?;
        let changed = statement
            .execute(params![account, amount_cents])
            .context("debit person account")?;
        if changed == 0 {
            return Err(Error::InsufficientFunds {
                account: account.to_owned(),
            });
        }
        Ok(())
    }

    /// The transfers a query selects (the query selects `transfer_columns!()`).
    fn transfers_where(
        &self,
        sql: &str,
        parameters: impl rusqlite::Params,
        what: &'static str,
    ) -> Result<Vec<TransferRow>, Error> {
        let mut statement = self.connection.prepare_cached(sql).context(what)?;
        let rows = statement
            .query_map(parameters, transfer_row)
            .context(what)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().context(what)
    }

    /// Pairs of (name, sum or count) a grouping query selects.
    fn grouped(&self, sql: &str, what: &'static str) -> Result<Vec<(String, i64)>, Error> {
        let mut statement = self.connection.prepare_cached(sql).context(what)?;
        let rows = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .context(what)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().context(what)
    }

    /// Whether a transfer with this id is stored.
    fn transfer_exists(&self, transfer_id: &str) -> Result<bool, Error> {
        let mut statement = self
            .connection
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM transfers WHERE transfer_id = ?1)")
            .context("check transfer id")?;
        statement
            .query_row([transfer_id], |row| row.get(0))
            .context("check transfer id")
    }

    /// A single integer a query selects.
    fn integer(&self, sql: &str, what: &'static str) -> Result<i64, Error> {
        let mut statement = self.connection.prepare_cached(sql).context(what)?;
        statement.query_row([], |row| row.get(0)).context(what)
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

impl Tx for SqliteTx<'_> {
    fn person(&mut self, certno: &str) -> Result<Option<PersonRow>, Error> {
        let mut statement = self
            .connection
            .prepare_cached(concat!(
                "SELECT ",
                person_columns!(),
                " FROM persons WHERE certno = ?1"
            ))
            .context("read person")?;
        statement
            .query_row([certno], person_row)
            .optional()
            .context("read person")
    }

    fn insert_persons(&mut self, persons: &[PersonRow]) -> Result<InsertCount, Error> {
        self.atomically(|tx| {
            let mut count = InsertCount::default();
            for person in persons {
                let written = tx.execute_person(
                    concat!(
                        "INSERT INTO persons (",
                        person_columns!(),
                        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
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
            "UPDATE persons SET psn_name = ?2, insu_admdvs = ?3, insutype = ?4, \
             psn_insu_stas = ?5, fst_insu_ym = ?6, retired = ?7, arrears_cents = ?8, \
             deemed_months = ?9, periods_json = ?10, flow = ?11 WHERE certno = ?1",
            person,
            "update person",
        )?;
        if changed == 0 {
            return Err(Error::NotFound("person".to_owned()));
        }
        Ok(())
    }

    fn sample_persons(&mut self, flow: &str, limit: u32) -> Result<Vec<PersonRow>, Error> {
        let mut statement = self
            .connection
            .prepare_cached(concat!(
                "SELECT ",
                person_columns!(),
                " FROM persons WHERE flow = ?1 ORDER BY certno LIMIT ?2"
            ))
            .context("sample persons")?;
        let rows = statement
            .query_map(params![flow, limit], person_row)
            .context("sample persons")?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .context("sample persons")
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
            } else {
                tx.add_to_balance(&posting.from_account, -posting.amount_cents)?;
            }
            tx.add_to_balance(&posting.to_account, posting.amount_cents)?;
            let mut statement = tx
                .connection
                .prepare_cached(
                    "INSERT INTO postings (from_account, to_account, amount_cents, transfer_id, \
                     reason, at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .context("insert posting")?;
            statement
                .execute(params![
                    posting.from_account,
                    posting.to_account,
                    posting.amount_cents,
                    posting.transfer_id,
                    posting.reason,
                    posting.at.timestamp_millis(),
                ])
                .context("insert posting")?;
            Ok(())
        })
    }

    fn balance(&mut self, account: &str) -> Result<i64, Error> {
        let mut statement = self
            .connection
            .prepare_cached("SELECT balance_cents FROM accounts WHERE account = ?1")
            .context("read balance")?;
        let balance = statement
            .query_row([account], |row| row.get(0))
            .optional()
            .context("read balance")?;
        Ok(balance.unwrap_or(0))
    }

    fn totals_by_reason(&mut self) -> Result<Vec<(String, i64)>, Error> {
        self.grouped(
            "SELECT reason, SUM(amount_cents) FROM postings GROUP BY reason ORDER BY reason",
            "total postings by reason",
        )
    }

    fn account_class_balances(&mut self) -> Result<Vec<(String, i64)>, Error> {
        self.grouped(
            "SELECT CASE WHEN instr(account, ':') > 0
                         THEN substr(account, 1, instr(account, ':') - 1)
                         ELSE account END AS class,
                    SUM(balance_cents)
             FROM accounts GROUP BY class ORDER BY class",
            "sum balances by account class",
        )
    }

    fn verify_journal(&mut self) -> Result<JournalCheck, Error> {
        let postings = self.integer("SELECT COUNT(*) FROM postings", "count postings")?;
        let balance_sum_cents = self.integer(
            "SELECT COALESCE(SUM(balance_cents), 0) FROM accounts",
            "sum balances",
        )?;
        let mut statement = self
            .connection
            .prepare_cached(
                "WITH movements (account, delta_cents) AS (
                     SELECT from_account, -amount_cents FROM postings
                     UNION ALL
                     SELECT to_account, amount_cents FROM postings
                 ), journal (account, balance_cents) AS (
                     SELECT account, SUM(delta_cents) FROM movements GROUP BY account
                 )
                 SELECT account FROM (
                     SELECT cached.account AS account
                     FROM accounts AS cached LEFT JOIN journal USING (account)
                     WHERE cached.balance_cents IS NOT COALESCE(journal.balance_cents, 0)
                     UNION
                     SELECT journal.account
                     FROM journal LEFT JOIN accounts AS cached USING (account)
                     WHERE cached.account IS NULL AND journal.balance_cents <> 0
                 ) ORDER BY account LIMIT ?1",
            )
            .context("verify journal")?;
        let mismatched = statement
            .query_map([JournalCheck::MISMATCHES_LIMIT], |row| {
                row.get::<_, String>(0)
            })
            .context("verify journal")?
            .collect::<rusqlite::Result<Vec<_>>>()
            .context("verify journal")?;
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
        if self.transfer_exists(&transfer.transfer_id)? {
            return Err(Error::Conflict("transfer id exists".to_owned()));
        }
        let mut statement = self
            .connection
            .prepare_cached(concat!(
                "INSERT INTO transfers (",
                transfer_columns!(),
                ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            ))
            .context("insert transfer")?;
        statement
            .execute(params![
                transfer.transfer_id,
                transfer.certno,
                transfer.state,
                transfer.open,
                transfer.whole_process_due_on.map(date_text),
                transfer.created_at.timestamp_millis(),
                transfer.updated_at.timestamp_millis(),
                transfer.document,
            ])
            .map_err(|error| open_transfer_conflict(error, "insert transfer"))?;
        Ok(())
    }

    fn transfer(&mut self, transfer_id: &str) -> Result<Option<TransferRow>, Error> {
        let mut statement = self
            .connection
            .prepare_cached(concat!(
                "SELECT ",
                transfer_columns!(),
                " FROM transfers WHERE transfer_id = ?1"
            ))
            .context("read transfer")?;
        statement
            .query_row([transfer_id], transfer_row)
            .optional()
            .context("read transfer")
    }

    fn update_transfer(&mut self, transfer: &TransferRow) -> Result<(), Error> {
        let mut statement = self
            .connection
            .prepare_cached(
                "UPDATE transfers SET state = ?2, open = ?3, whole_process_due_on = ?4, \
                 updated_at_ms = ?5, document = ?6 WHERE transfer_id = ?1",
            )
            .context("update transfer")?;
        let changed = statement
            .execute(params![
                transfer.transfer_id,
                transfer.state,
                transfer.open,
                transfer.whole_process_due_on.map(date_text),
                transfer.updated_at.timestamp_millis(),
                transfer.document,
            ])
            .map_err(|error| open_transfer_conflict(error, "update transfer"))?;
        if changed == 0 {
            return Err(Error::NotFound(format!(
                "transfer {}",
                transfer.transfer_id
            )));
        }
        Ok(())
    }

    fn open_transfer_of(&mut self, certno: &str) -> Result<Option<String>, Error> {
        let mut statement = self
            .connection
            .prepare_cached("SELECT transfer_id FROM transfers WHERE certno = ?1 AND open = 1")
            .context("find open transfer")?;
        statement
            .query_row([certno], |row| row.get(0))
            .optional()
            .context("find open transfer")
    }

    fn transfers_of(&mut self, certno: &str) -> Result<Vec<TransferRow>, Error> {
        self.transfers_where(
            concat!(
                "SELECT ",
                transfer_columns!(),
                " FROM transfers WHERE certno = ?1 ORDER BY created_at_ms, transfer_id"
            ),
            [certno],
            "read transfers of person",
        )
    }

    fn open_transfers_in_state(
        &mut self,
        state: &str,
        limit: u32,
    ) -> Result<Vec<TransferRow>, Error> {
        self.transfers_where(
            concat!(
                "SELECT ",
                transfer_columns!(),
                " FROM transfers WHERE open = 1 AND state = ?1 ORDER BY transfer_id LIMIT ?2"
            ),
            rusqlite::params![state, limit],
            "read open transfers in a state",
        )
    }

    fn transfers_after(
        &mut self,
        after_transfer_id: &str,
        limit: u32,
    ) -> Result<Vec<TransferRow>, Error> {
        self.transfers_where(
            concat!(
                "SELECT ",
                transfer_columns!(),
                " FROM transfers WHERE transfer_id > ?1 ORDER BY transfer_id LIMIT ?2"
            ),
            rusqlite::params![after_transfer_id, limit],
            "page through transfers",
        )
    }

    fn open_transfers_due_before(
        &mut self,
        day: NaiveDate,
        limit: u32,
    ) -> Result<Vec<TransferRow>, Error> {
        self.transfers_where(
            concat!(
                "SELECT ",
                transfer_columns!(),
                " FROM transfers WHERE open = 1 AND whole_process_due_on < ?1 \
                 ORDER BY whole_process_due_on, transfer_id LIMIT ?2"
            ),
            params![date_text(day), limit],
            "read overdue transfers",
        )
    }

    fn open_transfers_in_state_due_before(
        &mut self,
        state: &str,
        day: NaiveDate,
        limit: u32,
    ) -> Result<Vec<TransferRow>, Error> {
        self.transfers_where(
            concat!(
                "SELECT ",
                transfer_columns!(),
                " FROM transfers WHERE open = 1 AND whole_process_due_on < ?1 AND state = ?3 \
                 ORDER BY whole_process_due_on, transfer_id LIMIT ?2"
            ),
            params![date_text(day), limit, state],
            "read overdue transfers in a state",
        )
    }

    fn count_open_transfers_due_before(&mut self, day: NaiveDate) -> Result<u64, Error> {
        let mut statement = self
            .connection
            .prepare_cached(
                "SELECT COUNT(*) FROM transfers WHERE open = 1 AND whole_process_due_on < ?1",
            )
            .context("count overdue transfers")?;
        let number: i64 = statement
            .query_row([date_text(day)], |row| row.get(0))
            .context("count overdue transfers")?;
        count(number, "transfers")
    }

    fn count_open_transfers_in_state_due_between(
        &mut self,
        state: &str,
        from: NaiveDate,
        before: NaiveDate,
    ) -> Result<u64, Error> {
        let mut statement = self
            .connection
            .prepare_cached(
                "SELECT COUNT(*) FROM transfers WHERE open = 1 AND state = ?1 \
                 AND whole_process_due_on >= ?2 AND whole_process_due_on < ?3",
            )
            .context("count overdue transfers in a state")?;
        let number: i64 = statement
            .query_row(params![state, date_text(from), date_text(before)], |row| {
                row.get(0)
            })
            .context("count overdue transfers in a state")?;
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
        // No RETURNING: SQLite buffers a RETURNING clause's rows in an ephemeral table, which
        // costs more than the second statement. Inside the writer's transaction no other
        // append can come between the two.
        let seq = if event.seq == 0 {
            let mut next = self
                .connection
                .prepare_cached(
                    "SELECT COALESCE(MAX(seq), 0) + 1 FROM transfer_events WHERE transfer_id = ?1",
                )
                .context("number event")?;
            next.query_row([&event.transfer_id], |row| row.get::<_, u32>(0))
                .context("number event")?
        } else {
            event.seq
        };
        let mut statement = self
            .connection
            .prepare_cached(concat!(
                "INSERT INTO transfer_events (",
                event_columns!(),
                ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            ))
            .context("append event")?;
        statement
            .execute(params![
                event.transfer_id,
                seq,
                event.at.timestamp_millis(),
                event.kind,
                event.from_state,
                event.to_state,
                event.detail,
                event.attempt,
            ])
            .map_err(|error| match constraint(&error) {
                Some(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => {
                    Error::NotFound(format!("transfer {}", event.transfer_id))
                }
                Some(rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY) => Error::Conflict(format!(
                    "event {} of transfer {} exists",
                    event.seq, event.transfer_id
                )),
                _ => backend("append event", error),
            })?;
        Ok(seq)
    }

    fn events(&mut self, transfer_id: &str) -> Result<Vec<EventRow>, Error> {
        let mut statement = self
            .connection
            .prepare_cached(concat!(
                "SELECT ",
                event_columns!(),
                " FROM transfer_events WHERE transfer_id = ?1 ORDER BY seq"
            ))
            .context("read events")?;
        let rows = statement
            .query_map([transfer_id], event_row)
            .context("read events")?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .context("read events")
    }

    fn enqueue(&mut self, message: &NewOutboxMessage) -> Result<i64, Error> {
        let mut statement = self
            .connection
            .prepare_cached(
                "INSERT INTO outbox (transfer_id, kind, peer, msgid, payload, next_attempt_at_ms, \
                 created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .context("enqueue message")?;
        statement
            .execute(params![
                message.transfer_id,
                message.kind,
                message.peer,
                message.msgid,
                message.payload,
                message.next_attempt_at.timestamp_millis(),
                message.created_at.timestamp_millis(),
            ])
            .map_err(|error| {
                unique_conflict(error, "enqueue message", "message id already queued")
            })?;
        // The writer's connection runs one statement at a time: the last row is this one.
        Ok(self.connection.last_insert_rowid())
    }

    fn due_messages_except(
        &mut self,
        now: DateTime<Utc>,
        limit: u32,
        except: &[i64],
    ) -> Result<Vec<OutboxMessage>, Error> {
        // The ids travel as one JSON array parameter: SQLite has no array binding.
        let mut ids = String::with_capacity(2 + except.len() * 8);
        ids.push('[');
        for (index, id) in except.iter().enumerate() {
            if index > 0 {
                ids.push(',');
            }
            ids.push_str(&id.to_string());
        }
        ids.push(']');
        let mut statement = self
            .connection
            .prepare_cached(concat!(
                "SELECT ",
                outbox_columns!(),
                " FROM outbox WHERE next_attempt_at_ms <= ?1 \
                 AND id NOT IN (SELECT value FROM json_each(?3)) \
                 ORDER BY next_attempt_at_ms, id LIMIT ?2"
            ))
            .context("read due messages")?;
        let rows = statement
            .query_map(params![now.timestamp_millis(), limit, ids], outbox_row)
            .context("read due messages")?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .context("read due messages")
    }

    fn next_due_at(&mut self) -> Result<Option<DateTime<Utc>>, Error> {
        let mut statement = self
            .connection
            .prepare_cached("SELECT MIN(next_attempt_at_ms) FROM outbox")
            .context("read next due time")?;
        let earliest: Option<i64> = statement
            .query_row([], |row| row.get(0))
            .context("read next due time")?;
        earliest.map(time_of_millis).transpose()
    }

    fn message_acknowledged(&mut self, id: i64) -> Result<(), Error> {
        let mut statement = self
            .connection
            .prepare_cached("DELETE FROM outbox WHERE id = ?1")
            .context("delete acknowledged message")?;
        statement
            .execute([id])
            .context("delete acknowledged message")?;
        Ok(())
    }

    fn withdraw_messages(&mut self, transfer_id: &str, kind: &str) -> Result<u64, Error> {
        let mut statement = self
            .connection
            .prepare_cached("DELETE FROM outbox WHERE transfer_id = ?1 AND kind = ?2")
            .context("withdraw messages")?;
        let withdrawn = statement
            .execute([transfer_id, kind])
            .context("withdraw messages")?;
        Ok(withdrawn as u64)
    }

    fn message_retry_later(
        &mut self,
        id: i64,
        attempts: u32,
        next_attempt_at: DateTime<Utc>,
        last_error: &str,
    ) -> Result<(), Error> {
        let mut statement = self
            .connection
            .prepare_cached(
                "UPDATE outbox SET attempts = ?2, next_attempt_at_ms = ?3, last_error = ?4 \
                 WHERE id = ?1",
            )
            .context("reschedule message")?;
        statement
            .execute(params![
                id,
                attempts,
                next_attempt_at.timestamp_millis(),
                last_error
            ])
            .context("reschedule message")?;
        Ok(())
    }

    fn park_messages(
        &mut self,
        transfer_id: &str,
        kind: &str,
        until: DateTime<Utc>,
        last_error: &str,
    ) -> Result<u64, Error> {
        let mut statement = self
            .connection
            .prepare_cached(
                "UPDATE outbox SET next_attempt_at_ms = ?3, last_error = ?4 \
                 WHERE transfer_id = ?1 AND kind = ?2",
            )
            .context("park messages")?;
        let parked = statement
            .execute(params![
                transfer_id,
                kind,
                until.timestamp_millis(),
                last_error
            ])
            .context("park messages")?;
        Ok(parked as u64)
    }

    fn messages_due_from(
        &mut self,
        from: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>, Error> {
        let mut statement = self
            .connection
            .prepare_cached(concat!(
                "SELECT ",
                outbox_columns!(),
                " FROM outbox WHERE next_attempt_at_ms >= ?1 ORDER BY id LIMIT ?2"
            ))
            .context("read parked messages")?;
        let rows = statement
            .query_map(params![from.timestamp_millis(), limit], outbox_row)
            .context("read parked messages")?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .context("read parked messages")
    }

    fn pending_messages(&mut self) -> Result<u64, Error> {
        let pending = self.integer("SELECT COUNT(*) FROM outbox", "count pending messages")?;
        count(pending, "pending messages")
    }

    fn processed_message(&mut self, msgid: &str) -> Result<Option<ProcessedMessage>, Error> {
        let mut statement = self
            .connection
            .prepare_cached(
                "SELECT body_sha256, answer, at_ms FROM processed_messages WHERE msgid = ?1",
            )
            .context("read processed message")?;
        statement
            .query_row([msgid], |row| {
                Ok(ProcessedMessage {
                    body_sha256: row.get(0)?,
                    answer: row.get(1)?,
                    at: time_at(row, 2)?,
                })
            })
            .optional()
            .context("read processed message")
    }

    fn record_processed(
        &mut self,
        msgid: &str,
        body_sha256: &[u8],
        answer: &[u8],
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let mut statement = self
            .connection
            .prepare_cached(
                "INSERT INTO processed_messages (msgid, body_sha256, answer, at_ms) \
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .context("record processed message")?;
        statement
            .execute(params![msgid, body_sha256, answer, at.timestamp_millis()])
            .map_err(|error| {
                unique_conflict(
                    error,
                    "record processed message",
                    "message already processed",
                )
            })?;
        Ok(())
    }

    fn next_sequence(&mut self, name: &str) -> Result<u64, Error> {
        self.advance_sequence(
            "INSERT INTO sequences (name, value) VALUES (?1, 1) \
             ON CONFLICT (name) DO UPDATE SET value = value + 1",
            params![name],
            name,
        )
    }

    fn next_sequence_at_least(&mut self, name: &str, floor: u64) -> Result<u64, Error> {
        let floor = i64::try_from(floor)
            .map_err(|_| Error::Invalid("a sequence floor beyond the integer range".into()))?;
        self.advance_sequence(
            "INSERT INTO sequences (name, value) VALUES (?1, ?2) \
             ON CONFLICT (name) DO UPDATE SET value = max(value + 1, ?2)",
            params![name, floor],
            name,
        )
    }

    fn setting(&mut self, key: &str) -> Result<Option<String>, Error> {
        let mut statement = self
            .connection
            .prepare_cached("SELECT value FROM settings WHERE key = ?1")
            .context("read setting")?;
        statement
            .query_row([key], |row| row.get(0))
            .optional()
            .context("read setting")
    }

    fn put_setting(&mut self, key: &str, value: &str) -> Result<(), Error> {
        let mut statement = self
            .connection
            .prepare_cached(
                "INSERT INTO settings (key, value) VALUES (?1, ?2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .context("write setting")?;
        statement.execute([key, value]).context("write setting")?;
        Ok(())
    }

    fn put_certificate(
        &mut self,
        code: &str,
        certno: &str,
        body_json: &str,
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let mut statement = self
            .connection
            .prepare_cached(
                "INSERT INTO certificates (code, certno, body_json, issued_at_ms) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (code) DO NOTHING",
            )
            .context("store certificate")?;
        let written = statement
            .execute(params![code, certno, body_json, at.timestamp_millis()])
            .context("store certificate")?;
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
        let mut statement = self
            .connection
            .prepare_cached(
                "SELECT code, certno, body_json, issued_at_ms FROM certificates WHERE code = ?1",
            )
            .context("read certificate")?;
        statement
            .query_row([code], |row| {
                Ok(CertificateRow {
                    code: row.get(0)?,
                    certno: row.get(1)?,
                    body_json: row.get(2)?,
                    issued_at: time_at(row, 3)?,
                })
            })
            .optional()
            .context("read certificate")
    }
}

/// Adds what the store was doing to a SQLite error, making it an [`Error::Backend`] (or
/// [`Error::Unavailable`], see [`backend`]).
pub(crate) trait Context<T> {
    /// The result with a SQLite error turned into [`Error::Backend`] naming `what`.
    fn context(self, what: &'static str) -> Result<T, Error>;
}

impl<T> Context<T> for rusqlite::Result<T> {
    fn context(self, what: &'static str) -> Result<T, Error> {
        self.map_err(|error| backend(what, error))
    }
}

/// The extended code of a constraint violation, if `error` is one.
fn constraint(error: &rusqlite::Error) -> Option<i32> {
    match error {
        rusqlite::Error::SqliteFailure(failure, _)
            if failure.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Some(failure.extended_code)
        }
        _ => None,
    }
}

/// A SQLite error as [`Error::Backend`], naming what the store was doing — or as
/// [`Error::Unavailable`] when the database could not write (a full disk, an I/O error).
pub(crate) fn backend(what: &'static str, error: rusqlite::Error) -> Error {
    let cannot_write = error.sqlite_error_code().is_some_and(|code| {
        matches!(
            code,
            rusqlite::ErrorCode::DiskFull | rusqlite::ErrorCode::SystemIoFailure
        )
    });
    if cannot_write {
        Error::Unavailable(format!("{what}: {error}"))
    } else {
        Error::Backend(format!("{what}: {error}"))
    }
}

/// A uniqueness violation as [`Error::Conflict`] saying `conflict`; any other error as
/// [`Error::Backend`].
fn unique_conflict(error: rusqlite::Error, what: &'static str, conflict: &str) -> Error {
    match constraint(&error) {
        Some(
            rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY,
        ) => Error::Conflict(conflict.to_owned()),
        _ => backend(what, error),
    }
}

/// A write to `transfers` failing on the one-open-transfer-per-person index. The transfer id's
/// uniqueness is checked before inserting, so a uniqueness violation here is that index.
fn open_transfer_conflict(error: rusqlite::Error, what: &'static str) -> Error {
    unique_conflict(error, what, "open transfer exists")
}

/// A count from the database as `u64`; a negative count means a corrupt database.
fn count(value: i64, what: &str) -> Result<u64, Error> {
    u64::try_from(value).map_err(|_| Error::Backend(format!("negative count of {what}: {value}")))
}

/// A day as stored: `YYYY-MM-DD`.
fn date_text(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

/// A stored time.
fn time_of_millis(millis: i64) -> Result<DateTime<Utc>, Error> {
    DateTime::from_timestamp_millis(millis)
        .ok_or_else(|| Error::Backend(format!("stored time out of range: {millis} ms")))
}

/// Column `index` of `row` as a time stored in Unix milliseconds.
fn time_at(row: &Row<'_>, index: usize) -> rusqlite::Result<DateTime<Utc>> {
    let millis: i64 = row.get(index)?;
    DateTime::from_timestamp_millis(millis).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(index, Type::Integer, "time out of range".into())
    })
}

/// Column `index` of `row` as an optional day stored as `YYYY-MM-DD`.
fn date_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<NaiveDate>> {
    let text: Option<String> = row.get(index)?;
    text.map(|text| {
        NaiveDate::parse_from_str(&text, "%Y-%m-%d").map_err(|error| {
            rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(error))
        })
    })
    .transpose()
}

/// A person from a row of [`person_columns!`].
fn person_row(row: &Row<'_>) -> rusqlite::Result<PersonRow> {
    Ok(PersonRow {
        certno: row.get(0)?,
        psn_name: row.get(1)?,
        insu_admdvs: row.get(2)?,
        insutype: row.get(3)?,
        psn_insu_stas: row.get(4)?,
        fst_insu_ym: row.get(5)?,
        retired: row.get(6)?,
        arrears_cents: row.get(7)?,
        deemed_months: row.get(8)?,
        periods_json: row.get(9)?,
        flow: row.get(10)?,
    })
}

/// A transfer from a row of [`transfer_columns!`].
fn transfer_row(row: &Row<'_>) -> rusqlite::Result<TransferRow> {
    Ok(TransferRow {
        transfer_id: row.get(0)?,
        certno: row.get(1)?,
        state: row.get(2)?,
        open: row.get(3)?,
        whole_process_due_on: date_at(row, 4)?,
        created_at: time_at(row, 5)?,
        updated_at: time_at(row, 6)?,
        document: row.get(7)?,
    })
}

/// An event from a row of [`event_columns!`].
fn event_row(row: &Row<'_>) -> rusqlite::Result<EventRow> {
    Ok(EventRow {
        transfer_id: row.get(0)?,
        seq: row.get(1)?,
        at: time_at(row, 2)?,
        kind: row.get(3)?,
        from_state: row.get(4)?,
        to_state: row.get(5)?,
        detail: row.get(6)?,
        attempt: row.get(7)?,
    })
}

/// An outbox message from a row of [`outbox_columns!`].
fn outbox_row(row: &Row<'_>) -> rusqlite::Result<OutboxMessage> {
    Ok(OutboxMessage {
        id: row.get(0)?,
        transfer_id: row.get(1)?,
        kind: row.get(2)?,
        peer: row.get(3)?,
        msgid: row.get(4)?,
        payload: row.get(5)?,
        next_attempt_at: time_at(row, 6)?,
        created_at: time_at(row, 7)?,
        attempts: row.get(8)?,
        last_error: row.get(9)?,
    })
}
