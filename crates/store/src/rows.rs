//! The rows the store keeps, as plain data: strings, integers, times.
//!
//! **API Boundary:** rows are primitive on purpose. The store does not depend on the domain crate;
//! services convert domain types to rows and back, and own the meaning of every code and JSON
//! document. Money is integer cents (`_cents`), times are UTC (`_at`), dates are calendar days
//! (`_on`). `Debug` masks ID numbers and names and shows opaque payloads by length only, so a row
//! can be logged.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};

use crate::mask::{mask_account, mask_certno, mask_name};

/// A bureau's view of one insured person.
#[derive(Clone, PartialEq, Eq)]
pub struct PersonRow {
    /// The resident ID number (公民身份号码), unmasked; the primary key.
    pub certno: String,
    /// The person's name.
    pub psn_name: String,
    /// The six-digit pooling region the person is insured in at this bureau.
    pub insu_admdvs: String,
    /// The insurance scheme code (险种类型).
    pub insutype: u16,
    /// The insurance status code (参保状态): contributing, stopped, …
    pub psn_insu_stas: u8,
    /// The first month insured, `YYYYMM`.
    pub fst_insu_ym: String,
    /// Whether the person has retired (retirees follow their own transfer rules).
    pub retired: bool,
    /// Contributions owed, in cents; a transfer out is refused while this is positive.
    pub arrears_cents: i64,
    /// Months recognised as contributed without payment records (视同缴费).
    pub deemed_months: u32,
    /// The contribution periods, a JSON document owned by the service.
    pub periods_json: String,
    /// Which demo flow this synthetic person fits, `""` if none; sampled by the load tester.
    pub flow: String,
}

/// One movement of money in the double-entry journal.
#[derive(Clone, PartialEq, Eq)]
pub struct Posting {
    /// The account debited (`person:<certno>`, `transit:<region>`, …; the class is the part
    /// before `:`).
    pub from_account: String,
    /// The account credited; never the same as `from_account`.
    pub to_account: String,
    /// How much moves, in cents; always positive.
    pub amount_cents: i64,
    /// The transfer this movement belongs to, if any (seeding has none).
    pub transfer_id: Option<String>,
    /// Why the money moved (`seed`, `to_transit`, `settle`, …), summed by
    /// [`crate::Tx::totals_by_reason`].
    pub reason: String,
    /// When the movement happened, by the service's clock.
    pub at: DateTime<Utc>,
}

/// A transfer as the store sees it: the columns it must index plus the service's JSON document.
#[derive(Clone, PartialEq, Eq)]
pub struct TransferRow {
    /// The transfer id, unique across both bureaus.
    pub transfer_id: String,
    /// The person being transferred.
    pub certno: String,
    /// The state name, counted by [`crate::Tx::count_transfers_by_state`].
    pub state: String,
    /// Whether the transfer is still in progress; a person has at most one open transfer.
    pub open: bool,
    /// The last day by which the whole process should finish, for overdue queries.
    pub whole_process_due_on: Option<NaiveDate>,
    /// When the transfer was created.
    pub created_at: DateTime<Utc>,
    /// When the transfer last changed.
    pub updated_at: DateTime<Utc>,
    /// The full transfer as JSON, owned and interpreted by the service.
    pub document: String,
}

/// One entry in a transfer's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRow {
    /// The transfer the event belongs to.
    pub transfer_id: String,
    /// Position in the transfer's history, from 1; pass 0 to have the store assign the next.
    pub seq: u32,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What happened (an event name of the state machine, a message kind, …).
    pub kind: String,
    /// The state before.
    pub from_state: String,
    /// The state after.
    pub to_state: String,
    /// Free text for people reading the history (a rejection reason, …); no personal data.
    pub detail: String,
    /// Which delivery attempt this was, 0 when not a delivery.
    pub attempt: u32,
}

/// A message to a peer bureau, to be kept until the peer acknowledges it.
#[derive(Clone, PartialEq, Eq)]
pub struct NewOutboxMessage {
    /// The transfer the message is about.
    pub transfer_id: String,
    /// The message kind (the RPC it goes out as).
    pub kind: String,
    /// Which peer receives it (a region code or endpoint name the dispatcher understands).
    pub peer: String,
    /// The message id; unique, and the receiver's key for answering repeats.
    pub msgid: String,
    /// The encoded message.
    pub payload: Vec<u8>,
    /// The first time to try sending it.
    pub next_attempt_at: DateTime<Utc>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
}

/// A message waiting in the outbox.
#[derive(Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// The outbox row id; never reused, so a stale id can never acknowledge a newer message.
    pub id: i64,
    /// The transfer the message is about.
    pub transfer_id: String,
    /// The message kind.
    pub kind: String,
    /// Which peer receives it.
    pub peer: String,
    /// The message id.
    pub msgid: String,
    /// The encoded message.
    pub payload: Vec<u8>,
    /// When to try next.
    pub next_attempt_at: DateTime<Utc>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// How many attempts failed so far.
    pub attempts: u32,
    /// Why the last attempt failed, for operators.
    pub last_error: Option<String>,
}

/// The record of an incoming message already handled, used to answer a repeat.
#[derive(Clone, PartialEq, Eq)]
pub struct ProcessedMessage {
    /// SHA-256 of the request body: a repeat with another body is a modified request.
    pub body_sha256: Vec<u8>,
    /// The encoded first answer, returned again for every repeat.
    pub answer: Vec<u8>,
    /// When the message was first handled.
    pub at: DateTime<Utc>,
}

/// A certificate issued to a person (参保凭证 and the like), kept to answer look-ups by code.
#[derive(Clone, PartialEq, Eq)]
pub struct CertificateRow {
    /// The certificate code printed on it; the key.
    pub code: String,
    /// Whose certificate it is.
    pub certno: String,
    /// The certificate's content as JSON, owned by the service.
    pub body_json: String,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
}

/// What a batch insert did: rows written, and rows skipped because their key was already there.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InsertCount {
    /// Rows newly written.
    pub written: u64,
    /// Rows skipped because a row with the same key existed.
    pub already_present: u64,
}

/// The result of recomputing every account balance from the journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalCheck {
    /// How many postings the journal holds.
    pub postings: u64,
    /// Whether every cached balance equals the balance recomputed from the journal.
    pub cached_matches_journal: bool,
    /// Accounts whose cached balance differs, at most [`JournalCheck::MISMATCHES_LIMIT`], masked.
    pub mismatched_accounts: Vec<String>,
    /// The sum of all cached balances; zero in a sound double-entry ledger.
    pub balance_sum_cents: i64,
}

impl JournalCheck {
    /// How many mismatched accounts a check lists at most.
    pub const MISMATCHES_LIMIT: u32 = 100;

    /// Whether the ledger is sound: caches agree with the journal and balances sum to zero.
    pub fn is_sound(&self) -> bool {
        self.cached_matches_journal && self.balance_sum_cents == 0
    }
}

impl fmt::Debug for PersonRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersonRow")
            .field("certno", &mask_certno(&self.certno))
            .field("psn_name", &mask_name(&self.psn_name))
            .field("insu_admdvs", &self.insu_admdvs)
            .field("insutype", &self.insutype)
            .field("psn_insu_stas", &self.psn_insu_stas)
            .field("fst_insu_ym", &self.fst_insu_ym)
            .field("retired", &self.retired)
            .field("arrears_cents", &self.arrears_cents)
            .field("deemed_months", &self.deemed_months)
            .field("periods_json", &Len(self.periods_json.len()))
            .field("flow", &self.flow)
            .finish()
    }
}

impl fmt::Debug for Posting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Posting")
            .field("from_account", &mask_account(&self.from_account))
            .field("to_account", &mask_account(&self.to_account))
            .field("amount_cents", &self.amount_cents)
            .field("transfer_id", &self.transfer_id)
            .field("reason", &self.reason)
            .field("at", &self.at)
            .finish()
    }
}

impl fmt::Debug for TransferRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransferRow")
            .field("transfer_id", &self.transfer_id)
            .field("certno", &mask_certno(&self.certno))
            .field("state", &self.state)
            .field("open", &self.open)
            .field("whole_process_due_on", &self.whole_process_due_on)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("document", &Len(self.document.len()))
            .finish()
    }
}

impl fmt::Debug for NewOutboxMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewOutboxMessage")
            .field("transfer_id", &self.transfer_id)
            .field("kind", &self.kind)
            .field("peer", &self.peer)
            .field("msgid", &self.msgid)
            .field("payload", &Len(self.payload.len()))
            .field("next_attempt_at", &self.next_attempt_at)
            .field("created_at", &self.created_at)
            .finish()
    }
}

impl fmt::Debug for OutboxMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboxMessage")
            .field("id", &self.id)
            .field("transfer_id", &self.transfer_id)
            .field("kind", &self.kind)
            .field("peer", &self.peer)
            .field("msgid", &self.msgid)
            .field("payload", &Len(self.payload.len()))
            .field("next_attempt_at", &self.next_attempt_at)
            .field("created_at", &self.created_at)
            .field("attempts", &self.attempts)
            .field("last_error", &self.last_error)
            .finish()
    }
}

impl fmt::Debug for ProcessedMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessedMessage")
            .field("body_sha256", &Hex(&self.body_sha256))
            .field("answer", &Len(self.answer.len()))
            .field("at", &self.at)
            .finish()
    }
}

impl fmt::Debug for CertificateRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateRow")
            .field("code", &self.code)
            .field("certno", &mask_certno(&self.certno))
            .field("body_json", &Len(self.body_json.len()))
            .field("issued_at", &self.issued_at)
            .finish()
    }
}

/// Shows an opaque payload by its size only: payloads may hold personal data.
struct Len(usize);

impl fmt::Debug for Len {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.0)
    }
}

/// Shows a digest as lowercase hex.
struct Hex<'a>(&'a [u8]);

impl fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_logged_person_row_shows_neither_id_number_nor_name() {
        let person = PersonRow {
            certno: "11010519491231002X".to_owned(),
            psn_name: "张三丰".to_owned(),
            insu_admdvs: "150100".to_owned(),
            insutype: 310,
            psn_insu_stas: 1,
            fst_insu_ym: "200001".to_owned(),
            retired: false,
            arrears_cents: 0,
            deemed_months: 0,
            periods_json: "[]".to_owned(),
            flow: String::new(),
        };
        let shown = format!("{person:?}");
        assert!(!shown.contains("11010519491231002X"), "{shown}");
        assert!(!shown.contains("张三丰"), "{shown}");
    }
}
