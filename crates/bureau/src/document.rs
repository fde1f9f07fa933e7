//! The transfer document: everything a bureau remembers about one transfer, stored as JSON
//! beside the columns the store indexes. It holds domain types only (the machine's own state,
//! the flow, the balance's disposition), so a restart resumes exactly where the machine stood
//! and no wire enum leaks into what is stored. Documents of the previous release are rewritten
//! once at start-up (`migrate`).

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use yibao_domain::application::{ApplicationChannel, BankAccount};
use yibao_domain::classify::{
    BalanceDisposition, BankAccountGiven, FlowKind, RetireePayout, Settlement,
};
use yibao_domain::continuity::Continuity;
use yibao_domain::scheme::Scheme;
use yibao_domain::transfer::{Initiator, Side, TransferState};

/// Everything a bureau keeps about one transfer.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferDocument {
    /// The transfer id (minted where the person applied).
    pub transfer_id: String,
    /// Who started it.
    pub initiator: Initiator,
    /// The state machine's state, with the data it carries.
    pub state: TransferState,
    /// The person's ID number, unmasked (never logged; masked on every read API).
    pub certno: String,
    /// The person's name, unmasked (masked on every read API).
    pub psn_name: String,
    /// Transfer-out pooling region.
    pub trafout_admdvs: String,
    /// Transfer-in pooling region.
    pub trafin_admdvs: String,
    /// The flow, once known (the review decides it; a form carries it).
    pub flow: Option<FlowKind>,
    /// What happens to the balance, once known.
    pub balance: Option<BalanceDisposition>,
    /// The balance moving or paid out, in cents.
    pub amount_cents: u64,
    /// Contribution months on the form (or credited, at the transfer-in bureau).
    pub contribution_months: u32,
    /// The bank account for payouts, if the application named one.
    pub bank_account: Option<BankAccount>,
    /// Whether a retiree asked for a payout.
    pub retiree_payout: RetireePayout,
    /// The scheme the person joins at the transfer-in region, as the application said (kept so
    /// that a waiting application can be reviewed again); absent in documents of earlier
    /// versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_scheme: Option<Scheme>,
    /// How the person applied (its review may take longer at a counter); online in documents
    /// of earlier versions, which did not keep it.
    #[serde(default, skip_serializing_if = "is_online")]
    pub channel: ApplicationChannel,
    /// At the transfer-in bureau, once credited: when benefits start here (DOMAIN.md,
    /// continuity); absent before, and in documents of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuity: Option<Continuity>,
    /// Whether both regions settle at once (秒到账).
    pub settlement: Settlement,
    /// The day the person applied (China time), from which deadlines count.
    pub applied_on: NaiveDate,
    /// The day the transfer-in bureau received the form.
    pub form_received_on: Option<NaiveDate>,
    /// Transfer-in side, the fund leg: the last day the remittance of the balance is on time
    /// (set when a form that said a remittance follows was credited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remittance_due_on: Option<NaiveDate>,
    /// Transfer-out side, the fund leg: the day the balance is remitted apart from the form (set
    /// when the form's credit was answered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remit_on: Option<NaiveDate>,
    /// The transfer's trace (W3C trace context of the span that opened it here), when traces
    /// are exported: every later step and message of the transfer joins it. Absent when traces
    /// were off, and in documents of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<TraceContext>,
    /// The fund leg: at the transfer-out bureau the msgid of the latest remittance sent (a
    /// return of another is stale); at the transfer-in bureau that of the latest remittance
    /// held (a return names it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remittance_msgid: Option<String>,
    /// Transfer-in side, the fund leg: remitted money held in suspense for this transfer, in
    /// cents (short or over remittances not yet returned).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub held_cents: u64,
    /// When the document was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl TransferDocument {
    /// A new document with only its identity, state and dates set; every other field empty,
    /// for the callers to fill with struct-update syntax.
    pub fn opening(
        transfer_id: String,
        initiator: Initiator,
        state: TransferState,
        applied_on: NaiveDate,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            transfer_id,
            initiator,
            state,
            certno: String::new(),
            psn_name: String::new(),
            trafout_admdvs: String::new(),
            trafin_admdvs: String::new(),
            flow: None,
            balance: None,
            amount_cents: 0,
            contribution_months: 0,
            bank_account: None,
            retiree_payout: RetireePayout::NotRequested,
            in_scheme: None,
            channel: ApplicationChannel::Online,
            continuity: None,
            settlement: Settlement::Asynchronous,
            applied_on,
            form_received_on: None,
            remittance_due_on: None,
            remit_on: None,
            trace: None,
            remittance_msgid: None,
            held_cents: 0,
            created_at: now,
            updated_at: now,
        }
    }

    /// This bureau's side, which the machine's state says.
    pub fn side(&self) -> Side {
        self.state.side()
    }

    /// The fund leg: the last day the remittance of the balance is on time — at the
    /// transfer-in bureau its remittance deadline, at the transfer-out bureau its remittance
    /// day plus the transfer-in bureau's grace; `None` when no remittance is awaited.
    pub fn remittance_deadline(
        &self,
        calendar: &yibao_domain::calendar::WorkingCalendar,
    ) -> Option<NaiveDate> {
        if !self.state.awaits_remittance() {
            return None;
        }
        match self.side() {
            Side::In => self.remittance_due_on,
            Side::Out => self.remit_on.and_then(|day| {
                yibao_domain::remittance::remittance_settled_by(day, calendar)
                    .ok()
                    .map(|deadline| deadline.due_on)
            }),
        }
    }

    /// Whether the application named a bank account.
    pub fn bank_account_given(&self) -> BankAccountGiven {
        BankAccountGiven::of(self.bank_account.as_ref())
    }
}

/// A span's W3C trace context, as the `traceparent` and `tracestate` headers write it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceContext {
    /// `00-<trace id>-<span id>-<flags>`.
    pub traceparent: String,
    /// Vendor entries, often empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tracestate: String,
}

/// Personal data stays out of logs: the debug form names the transfer and where it stands.
impl fmt::Debug for TransferDocument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransferDocument")
            .field("transfer_id", &self.transfer_id)
            .field("state", &self.state)
            .field("flow", &self.flow)
            .field("amount_cents", &self.amount_cents)
            .finish_non_exhaustive()
    }
}

/// Whether a channel is the default one, left out of the stored document (so documents of
/// earlier versions and today's online ones read and write alike).
fn is_online(channel: &ApplicationChannel) -> bool {
    *channel == ApplicationChannel::Online
}

/// Whether nothing is held (the field is left out of the stored document then).
fn is_zero(cents: &u64) -> bool {
    *cents == 0
}
