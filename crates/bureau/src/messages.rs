//! Platform messages as domain values: what one bureau says to the other, and what it answers.
//! The wire form (protobuf) exists only at the edge: the platform handlers decode into these
//! types, and the outbox encodes them when it queues them (`outbox::transport`).
//!
//! The transaction codes (`infno`) are invented: the national platform publishes none for
//! bureau-to-bureau transfers (see `proto/yibao/platform/v1/platform.proto`).

use chrono::{DateTime, NaiveDate, Utc};
use yibao_domain::application::{ApplicationChannel, BankAccount};
use yibao_domain::classify::{BalanceDisposition, FlowKind, RetireePayout};
use yibao_domain::id::ResidentId;
use yibao_domain::money::Money;
use yibao_domain::month::ContributionPeriod;
use yibao_domain::region::RegionCode;
use yibao_domain::scheme::Scheme;
use yibao_domain::transfer::in_side::TransferOutView;
use yibao_domain::transfer::out_side::InCredit;
use yibao_domain::transfer::{Initiator, RefusalReason};

/// A message about one transfer from its transfer-out bureau (an abort, a settlement), with the
/// regions its envelope names as sender and receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addressed {
    /// The transfer.
    pub transfer_id: String,
    /// `envelope.sender_region_code`: the transfer's transfer-out region.
    pub out_region: String,
    /// `envelope.receiver_region_code`: the transfer's transfer-in region.
    pub in_region: String,
}

/// The kinds of message a bureau queues in its outbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// IN → OUT: ask for the transfer (infno 9101).
    RequestTransferOut,
    /// OUT → IN: the insurance information form with the balance (9102).
    DeliverForm,
    /// OUT → IN: the balance is settled (9103; sent by earlier versions only).
    ConfirmSettlement,
    /// OUT → IN: abort, and say whether you credited (9104).
    Abort,
    /// OUT → its bank gateway: pay the balance in transit to the person's account.
    BankPayout,
    /// IN → OUT: where does the transfer stand? (9105; asked when the form is overdue).
    QueryTransferOut,
    /// OUT → IN: the balance of a form that said a remittance follows (9106; the fund leg).
    RemitBalance,
    /// IN → OUT: a remittance refused as short or over was returned to the transfer-out
    /// region's fund (9107, invented; the fund leg's 退回).
    ReturnRemittance,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 8] = [
        Kind::RequestTransferOut,
        Kind::DeliverForm,
        Kind::ConfirmSettlement,
        Kind::Abort,
        Kind::BankPayout,
        Kind::QueryTransferOut,
        Kind::RemitBalance,
        Kind::ReturnRemittance,
    ];

    /// The stable name stored in the outbox.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::RequestTransferOut => "REQUEST_TRANSFER_OUT",
            Kind::DeliverForm => "DELIVER_FORM",
            Kind::ConfirmSettlement => "CONFIRM_SETTLEMENT",
            Kind::Abort => "ABORT",
            Kind::BankPayout => "BANK_PAYOUT",
            Kind::QueryTransferOut => "QUERY_TRANSFER_OUT",
            Kind::RemitBalance => "REMIT_BALANCE",
            Kind::ReturnRemittance => "RETURN_REMITTANCE",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// The invented transaction code.
    pub fn infno(self) -> &'static str {
        match self {
            Kind::RequestTransferOut => "9101",
            Kind::DeliverForm => "9102",
            Kind::ConfirmSettlement => "9103",
            Kind::Abort => "9104",
            Kind::BankPayout => "9201",
            Kind::QueryTransferOut => "9105",
            Kind::RemitBalance => "9106",
            Kind::ReturnRemittance => "9107",
        }
    }
}

/// The envelope every platform message travels in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The transaction code.
    pub infno: &'static str,
    /// The sender's 30-character message id.
    pub msgid: String,
    /// The sending pooling region.
    pub sender_region: String,
    /// The receiving pooling region.
    pub receiver_region: String,
    /// When it was queued.
    pub sent_at: DateTime<Utc>,
    /// The transfer it is about.
    pub transfer_id: String,
}

/// A request to transfer out (转移申请), as the transfer-in bureau sends it.
#[derive(Clone, Debug)]
pub struct TransferApplication {
    /// The transfer id minted where the person applied.
    pub transfer_id: String,
    /// The person.
    pub certno: ResidentId,
    /// The person's name as given.
    pub psn_name: String,
    /// The scheme at the destination, if known.
    pub in_scheme: Option<Scheme>,
    /// Where the person leaves.
    pub out_region: RegionCode,
    /// Where the person goes.
    pub in_region: RegionCode,
    /// When the person applied.
    pub applied_at: DateTime<Utc>,
    /// A bank account for payouts.
    pub bank_account: Option<BankAccount>,
    /// Whether a retiree asked for a payout.
    pub retiree_payout: RetireePayout,
    /// Whether the person asked for the payout because the destination is not connected
    /// (applications at the transfer-out bureau only; never over the platform).
    pub payout_requested: bool,
    /// How the person applied (the transfer-out region's review may take longer at a counter).
    pub channel: ApplicationChannel,
}

/// The insurance information form (参保人员基本医疗保险信息表).
#[derive(Clone, Debug)]
pub struct InsuranceForm {
    /// The transfer.
    pub transfer_id: String,
    /// The person.
    pub certno: ResidentId,
    /// The person's name on the transfer-out record.
    pub psn_name: String,
    /// The scheme the person leaves.
    pub scheme: Option<Scheme>,
    /// The transfer-out region.
    pub out_region: RegionCode,
    /// The transfer-in region.
    pub in_region: RegionCode,
    /// First month insured, `YYYYMM`.
    pub first_insured: String,
    /// Months of the contribution periods.
    pub contribution_months: u32,
    /// The periods themselves.
    pub periods: Vec<ContributionPeriod>,
    /// Deemed months brought by earlier transfers.
    pub deemed_months: u32,
    /// The balance the form carries (credited at the transfer-in bureau).
    pub balance: Money,
    /// What happens to the balance.
    pub balance_disposition: Option<BalanceDisposition>,
    /// The flow.
    pub flow: Option<FlowKind>,
    /// Who started the transfer.
    pub initiator: Initiator,
    /// When the form was issued.
    pub issued_at: DateTime<Utc>,
    /// The day the person applied, from which deadlines count.
    pub applied_on: Option<NaiveDate>,
    /// Whether the balance is remitted apart from the form (the fund leg): the transfer-in
    /// bureau credits the years now and the balance on a matching remittance.
    pub remittance_follows: bool,
}

/// A remittance of a form's balance between the bureaus' fund accounts (划转, infno 9106).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remittance {
    /// The transfer, with the regions the envelope names.
    pub addressed: Addressed,
    /// The amount remitted.
    pub amount: Money,
    /// When the transfer-out bureau remitted it.
    pub remitted_at: DateTime<Utc>,
    /// The msgid it travelled under (a return names it).
    pub msgid: String,
}

/// A remittance refused as short or over and returned to the transfer-out region's fund (退回,
/// infno 9107).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemittanceReturn {
    /// The transfer, with the regions the envelope names (sender: the transfer-in region).
    pub addressed: Addressed,
    /// The msgid of the remittance returned.
    pub remittance_msgid: String,
    /// The amount returned.
    pub amount: Money,
    /// Why it was refused.
    pub check: yibao_domain::remittance::RemittanceCheck,
}

/// Why a transfer-out bureau aborts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbortReason {
    /// The whole-process deadline passed without a credit.
    DeadlineExpired,
}

/// A message this bureau queues.
#[derive(Clone, Debug)]
pub enum Outgoing {
    /// To the transfer-out bureau.
    RequestTransferOut(Box<TransferApplication>),
    /// To the transfer-in bureau.
    DeliverForm(Box<InsuranceForm>),
    /// To the transfer-in bureau.
    Abort(AbortReason),
    /// To the bank gateway: pay this many cents from transit to the person's account.
    BankPayout {
        /// The amount.
        amount_cents: u64,
    },
    /// To the transfer-out bureau: where does the transfer stand?
    QueryTransferOut,
    /// To the transfer-in bureau: the balance in transit, remitted apart from the form.
    RemitBalance {
        /// The amount.
        amount_cents: u64,
    },
    /// To the transfer-out bureau: the money of a refused remittance went back to its fund.
    ReturnRemittance {
        /// The amount returned.
        amount_cents: u64,
        /// The msgid of the remittance returned.
        remittance_msgid: String,
        /// Why it was refused.
        check: yibao_domain::remittance::RemittanceCheck,
    },
}

impl Outgoing {
    /// The message's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Outgoing::RequestTransferOut(_) => Kind::RequestTransferOut,
            Outgoing::DeliverForm(_) => Kind::DeliverForm,
            Outgoing::Abort(_) => Kind::Abort,
            Outgoing::BankPayout { .. } => Kind::BankPayout,
            Outgoing::QueryTransferOut => Kind::QueryTransferOut,
            Outgoing::RemitBalance { .. } => Kind::RemitBalance,
            Outgoing::ReturnRemittance { .. } => Kind::ReturnRemittance,
        }
    }
}

/// The transfer-out bureau's decision on a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Accepted: the form will follow.
    Accepted {
        /// When.
        accepted_at: DateTime<Utc>,
        /// The transfer-out deadline.
        transfer_out_due_on: Option<NaiveDate>,
    },
    /// Received and under review until `decided_on` (the region's review takes working days):
    /// accepted pending, the form expected once the review accepts.
    UnderReview {
        /// When the request was received.
        received_at: DateTime<Utc>,
        /// The day the review is decided.
        decided_on: Option<NaiveDate>,
        /// The transfer-out deadline.
        transfer_out_due_on: Option<NaiveDate>,
    },
    /// Refused; `open_transfer` names the blocking transfer when there is one.
    Refused {
        /// Why.
        reason: RefusalReason,
        /// The person's open transfer, for OPEN_TRANSFER_EXISTS.
        open_transfer: Option<String>,
    },
}

/// What a credit was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Credit {
    /// Months credited.
    pub months: u32,
    /// Balance credited, in cents.
    pub amount_cents: u64,
    /// When.
    pub at: DateTime<Utc>,
}

/// The transfer-in bureau's answer to a form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormOutcome {
    /// Credited (now or before).
    Credited(Credit),
    /// Refused.
    Refused(RefusalReason),
}

/// An answer to a message this bureau sent, as the dispatcher read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The transfer-out bureau decided on a request.
    Decided(Decision),
    /// The transfer-in bureau answered a form.
    FormAnswered(FormOutcome),
    /// The transfer-in bureau answered an abort.
    AbortAnswered(InCredit),
    /// The transfer-in bureau acknowledged a settlement confirmation.
    SettlementAcknowledged,
    /// The bank gateway paid.
    BankPaid,
    /// The transfer-out bureau said where the transfer stands (or that it does not know it).
    TransferOutSays(TransferOutView),
    /// The transfer-in bureau checked a remittance against its form.
    RemittanceChecked(yibao_domain::remittance::RemittanceCheck),
    /// The transfer-out bureau took note of a returned remittance (and whether it remits
    /// again).
    ReturnAcknowledged,
}
