//! The storage seam: every operation a service may perform inside one transaction.
//!
//! **API Boundary:** services see only `&mut dyn Tx`, handed to them by [`crate::Store::write`]
//! or [`crate::Store::read`]. The trait is object-safe and synchronous, so the same service code
//! runs on SQLite now and PostgreSQL later, and a transaction can never be held across an
//! `.await`. Everything done through one `&mut dyn Tx` lands together or not at all.

use chrono::{DateTime, NaiveDate, Utc};

use crate::{
    CertificateRow, Error, EventRow, InsertCount, JournalCheck, NewOutboxMessage, OutboxMessage,
    PersonRow, Posting, ProcessedMessage, TransferRow,
};

/// Storage operations available inside one transaction.
///
/// In a read transaction ([`crate::Store::read`]) every write fails with [`Error::Backend`].
pub trait Tx {
    // Persons: the bureau's view of insured people.

    /// The person with this ID number, if the bureau knows them.
    fn person(&mut self, certno: &str) -> Result<Option<PersonRow>, Error>;

    /// Inserts each person whose ID number is not stored yet and leaves existing ones untouched,
    /// so seeding can be repeated.
    fn insert_persons(&mut self, persons: &[PersonRow]) -> Result<InsertCount, Error>;

    /// Replaces a stored person; [`Error::NotFound`] if there is none with this ID number.
    fn update_person(&mut self, person: &PersonRow) -> Result<(), Error>;

    /// Up to `limit` persons whose `flow` column equals `flow`, in ID-number order (deterministic,
    /// and served by an index, so it stays cheap on a million rows).
    fn sample_persons(&mut self, flow: &str, limit: u32) -> Result<Vec<PersonRow>, Error>;

    // The double-entry journal: every money movement is one posting.

    /// Records one posting and updates both cached balances.
    ///
    /// Refuses with [`Error::Invalid`] a non-positive amount or a posting from an account to
    /// itself, and with [`Error::InsufficientFunds`] one that would make a `person:` account
    /// negative; a refused posting writes nothing. Other accounts (`transit:`, `fund:`, …) may go
    /// negative: they stand for the world outside the person accounts.
    fn post(&mut self, posting: &Posting) -> Result<(), Error>;

    /// The cached balance of an account, 0 if it never moved.
    fn balance(&mut self, account: &str) -> Result<i64, Error>;

    /// The sum of posted amounts per reason, ordered by reason.
    fn totals_by_reason(&mut self) -> Result<Vec<(String, i64)>, Error>;

    /// Balances summed per account class (the part of the account id before `:`), ordered by
    /// class.
    fn account_class_balances(&mut self) -> Result<Vec<(String, i64)>, Error>;

    /// Recomputes every balance from the journal and compares it with the cache. Reads the whole
    /// journal: meant for tests, admin checks and start-up, not for every request.
    fn verify_journal(&mut self) -> Result<JournalCheck, Error>;

    // Transfers: the service owns the JSON document; the store indexes what it must.

    /// Stores a new transfer. [`Error::Conflict`] if the id exists, or if the transfer is open
    /// and the person already has an open transfer (`"open transfer exists"`).
    fn insert_transfer(&mut self, transfer: &TransferRow) -> Result<(), Error>;

    /// The transfer with this id, if any.
    fn transfer(&mut self, transfer_id: &str) -> Result<Option<TransferRow>, Error>;

    /// Replaces a stored transfer's columns and document; [`Error::NotFound`] if absent,
    /// [`Error::Conflict`] if it would give the person a second open transfer. The person of a
    /// transfer never changes, so `certno` is ignored.
    fn update_transfer(&mut self, transfer: &TransferRow) -> Result<(), Error>;

    /// The id of the person's open transfer, if they have one.
    fn open_transfer_of(&mut self, certno: &str) -> Result<Option<String>, Error>;

    /// Every transfer of the person, oldest first.
    fn transfers_of(&mut self, certno: &str) -> Result<Vec<TransferRow>, Error>;

    /// Up to `limit` transfers whose id sorts after `after_transfer_id`, in id order: a whole
    /// table walk in pages (start with `""`), for migrations.
    fn transfers_after(
        &mut self,
        after_transfer_id: &str,
        limit: u32,
    ) -> Result<Vec<TransferRow>, Error>;

    /// Up to `limit` open transfers due strictly before `day`, earliest due first: the overdue
    /// ones when `day` is today.
    fn open_transfers_due_before(
        &mut self,
        day: NaiveDate,
        limit: u32,
    ) -> Result<Vec<TransferRow>, Error>;

    /// Up to `limit` open transfers in `state` due strictly before `day`, earliest due first
    /// (the deadline sweep asks only for the state it acts on, so others cannot crowd it out).
    fn open_transfers_in_state_due_before(
        &mut self,
        state: &str,
        day: NaiveDate,
        limit: u32,
    ) -> Result<Vec<TransferRow>, Error>;

    /// Up to `limit` open transfers in `state`, due date or not, in id order (for migrations:
    /// a transfer stored without a due date is found too).
    fn open_transfers_in_state(
        &mut self,
        state: &str,
        limit: u32,
    ) -> Result<Vec<TransferRow>, Error>;

    /// How many open transfers are due strictly before `day` (overdue when `day` is today).
    fn count_open_transfers_due_before(&mut self, day: NaiveDate) -> Result<u64, Error>;

    /// How many open transfers in `state` are due on or after `from` and strictly before
    /// `before` (the ones late on an earlier deadline than the whole process's, counted from the
    /// day that deadline maps to).
    fn count_open_transfers_in_state_due_between(
        &mut self,
        state: &str,
        from: NaiveDate,
        before: NaiveDate,
    ) -> Result<u64, Error>;

    /// How many transfers are in each state, ordered by state.
    fn count_transfers_by_state(&mut self) -> Result<Vec<(String, u64)>, Error>;

    /// Appends an event to a transfer's history and returns its sequence number: the given
    /// `seq`, or the next one (from 1) when `seq` is 0. [`Error::NotFound`] if the transfer does
    /// not exist, [`Error::Conflict`] if the given `seq` is taken.
    fn append_event(&mut self, event: &EventRow) -> Result<u32, Error>;

    /// A transfer's history in sequence order.
    fn events(&mut self, transfer_id: &str) -> Result<Vec<EventRow>, Error>;

    // The outbox: messages to peers, kept until acknowledged.

    /// Queues a message and returns its outbox id. [`Error::Conflict`] if the msgid is queued.
    fn enqueue(&mut self, message: &NewOutboxMessage) -> Result<i64, Error>;

    /// Up to `limit` messages with `next_attempt_at <= now`, the longest due first (ties by
    /// outbox id, that is, enqueue order).
    fn due_messages(
        &mut self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>, Error> {
        self.due_messages_except(now, limit, &[])
    }

    /// As [`Tx::due_messages`], leaving out the messages `except` names (those a dispatcher
    /// already has in flight), so that `limit` counts only messages it can send.
    fn due_messages_except(
        &mut self,
        now: DateTime<Utc>,
        limit: u32,
        except: &[i64],
    ) -> Result<Vec<OutboxMessage>, Error>;

    /// As [`Tx::due_messages_except`], and claims the messages for `claimant` until `until`, so
    /// that another replica of the bureau sharing this database does not send them meanwhile:
    /// messages another claimant holds (claimed until after `now`, or locked by its open
    /// transaction) are left out. A claim ends when the message is acknowledged or rescheduled
    /// ([`Tx::message_retry_later`]), or when it expires (its claimant died): then any replica
    /// may send it again, and the peer answers a repeated msgid with its first answer.
    ///
    /// A store only one process opens (SQLite) has nobody to claim from: by default this is
    /// [`Tx::due_messages_except`].
    fn claim_due_messages(
        &mut self,
        now: DateTime<Utc>,
        limit: u32,
        except: &[i64],
        claimant: &str,
        until: DateTime<Utc>,
    ) -> Result<Vec<OutboxMessage>, Error> {
        let _ = (claimant, until);
        self.due_messages_except(now, limit, except)
    }

    /// Takes or renews the lease `name` for `holder` until `until`, if nobody else holds it past
    /// `now`; returns whether `holder` holds it now. The replicas of a bureau run the timers'
    /// sweep only while they hold its lease, so a transfer's timer fires once. A store only one
    /// process opens always grants it.
    fn take_lease(
        &mut self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let _ = (name, holder, now, until);
        Ok(true)
    }

    /// The earliest `next_attempt_at` in the outbox, `None` when it is empty.
    fn next_due_at(&mut self) -> Result<Option<DateTime<Utc>>, Error>;

    /// Deletes an acknowledged message. Acknowledging a message that is gone is not an error:
    /// a repeated acknowledgement changes nothing.
    fn message_acknowledged(&mut self, id: i64) -> Result<(), Error>;

    /// Withdraws the queued messages of one kind for a transfer (a form superseded by an abort);
    /// returns how many were withdrawn.
    fn withdraw_messages(&mut self, transfer_id: &str, kind: &str) -> Result<u64, Error>;

    /// Records a failed attempt: the attempt count, when to try next, and why it failed. A
    /// message that is gone (acknowledged meanwhile) is left gone: acknowledgement wins.
    fn message_retry_later(
        &mut self,
        id: i64,
        attempts: u32,
        next_attempt_at: DateTime<Utc>,
        last_error: &str,
    ) -> Result<(), Error>;

    /// Parks the queued messages of one kind for a transfer: their next attempt moves to
    /// `until` and `last_error` says why (an abort a transfer waiting for an operator stops
    /// sending); returns how many.
    fn park_messages(
        &mut self,
        transfer_id: &str,
        kind: &str,
        until: DateTime<Utc>,
        last_error: &str,
    ) -> Result<u64, Error>;

    /// Up to `limit` messages whose next attempt is at or after `from` (the parked ones, when
    /// `from` lies beyond any backoff), oldest queued first.
    fn messages_due_from(
        &mut self,
        from: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>, Error>;

    /// How many messages wait in the outbox.
    fn pending_messages(&mut self) -> Result<u64, Error>;

    // Processed incoming messages, for idempotency.

    /// The record of a message already handled: compare its body hash, then answer again.
    fn processed_message(&mut self, msgid: &str) -> Result<Option<ProcessedMessage>, Error>;

    /// Records a handled message with its body hash and answer, in the same transaction as its
    /// effect. [`Error::Conflict`] if the msgid is already recorded.
    fn record_processed(
        &mut self,
        msgid: &str,
        body_sha256: &[u8],
        answer: &[u8],
        at: DateTime<Utc>,
    ) -> Result<(), Error>;

    // Miscellany.

    /// The next number of a durable sequence: 1, 2, 3, … per name, never repeated.
    fn next_sequence(&mut self, name: &str) -> Result<u64, Error>;

    /// The next number of a durable sequence that is also at least `floor`: the larger of the
    /// last number plus one and `floor`. Never repeated, even when `floor` goes back.
    fn next_sequence_at_least(&mut self, name: &str, floor: u64) -> Result<u64, Error>;

    /// A stored setting, if set.
    fn setting(&mut self, key: &str) -> Result<Option<String>, Error>;

    /// Sets (or replaces) a setting.
    fn put_setting(&mut self, key: &str, value: &str) -> Result<(), Error>;

    /// Stores an issued certificate. Storing the same certificate again is harmless;
    /// [`Error::Conflict`] if the code is taken by a different one.
    fn put_certificate(
        &mut self,
        code: &str,
        certno: &str,
        body_json: &str,
        at: DateTime<Utc>,
    ) -> Result<(), Error>;

    /// The certificate with this code, if any.
    fn certificate(&mut self, code: &str) -> Result<Option<CertificateRow>, Error>;
}
