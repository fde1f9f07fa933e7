//! The transfer document: everything a bureau remembers about one transfer, stored as JSON beside
//! the columns the store indexes, and its conversion to the wire `Transfer`.
//!
//! The state is stored as the domain machine's own value (`OutState` or `InState`, with the data
//! they carry), so a restart resumes exactly where the machine stood.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use yibao_domain::classify::{BalanceDisposition, TransferPlan};
use yibao_domain::transfer::RefusalReason;
use yibao_domain::transfer::in_side::InState;
use yibao_domain::transfer::out_side::{AbortFallback, BalanceRoute, OutState};
use yibao_proto::common::v1 as wire;

/// Which side of the handshake this bureau plays for one transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// This bureau sends the years and balance.
    Out,
    /// This bureau receives them.
    In,
}

/// Who started the transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Initiator {
    /// The person applied at the transfer-in bureau (the usual path).
    TransferIn,
    /// The person applied at the transfer-out bureau.
    TransferOut,
}

/// The machine state, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Stored {
    /// Transfer-out side.
    Out(StoredOut),
    /// Transfer-in side.
    In(StoredIn),
}

/// `OutState` in a serialisable form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoredOut {
    /// See `OutState::InTransit`.
    InTransit { route: Route },
    /// See `OutState::Aborting`.
    Aborting { route: Route, pay_to_bank: bool },
    /// See `OutState::PayoutPending`.
    PayoutPending,
    /// See `OutState::Completed`.
    Completed,
    /// See `OutState::Rejected`.
    Rejected { reason: String },
    /// See `OutState::Returned`.
    Returned { reason: String },
    /// See `OutState::PaidToBank`.
    PaidToBank,
}

/// `InState` in a serialisable form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoredIn {
    /// See `InState::Applied`.
    Applied,
    /// See `InState::Requested`.
    Requested,
    /// See `InState::Credited`.
    Credited,
    /// See `InState::Completed`.
    Completed,
    /// See `InState::Rejected`.
    Rejected { reason: String },
    /// See `InState::Aborted`.
    Aborted,
}

/// `BalanceRoute` in a serialisable form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    /// The balance moves with the form.
    MovesWithForm,
    /// The balance goes to the bank after the credit.
    ToBankAfterCredit,
    /// No money moves.
    StaysPut,
}

/// Everything a bureau keeps about one transfer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TransferDocument {
    /// The transfer id (minted where the person applied).
    pub transfer_id: String,
    /// This bureau's side.
    pub side: Side,
    /// Who started it.
    pub initiator: Initiator,
    /// The state machine's state.
    pub state: Stored,
    /// The person's ID number, unmasked (never logged; masked on every read API).
    pub certno: String,
    /// The person's name, unmasked (masked on every read API).
    pub psn_name: String,
    /// Transfer-out pooling region.
    pub trafout_admdvs: String,
    /// Transfer-in pooling region.
    pub trafin_admdvs: String,
    /// The flow, as the wire names it (`FlowKind`).
    pub flow_kind: i32,
    /// What happens to the balance (`BalanceDisposition`).
    pub balance_disposition: i32,
    /// The balance moving or paid out, in cents.
    pub amount_cents: u64,
    /// Contribution months on the form.
    pub contribution_months: u32,
    /// The bank account for payouts, if the application named one.
    pub bank_account: Option<BankAccount>,
    /// Whether a retiree asked for a payout.
    pub retiree_payout_requested: bool,
    /// Whether both regions settle at once (秒到账).
    pub instant: bool,
    /// The day the person applied (China time), from which deadlines count.
    pub applied_on: NaiveDate,
    /// The day the transfer-in bureau received the form.
    pub form_received_on: Option<NaiveDate>,
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
        side: Side,
        initiator: Initiator,
        state: Stored,
        applied_on: NaiveDate,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            transfer_id,
            side,
            initiator,
            state,
            certno: String::new(),
            psn_name: String::new(),
            trafout_admdvs: String::new(),
            trafin_admdvs: String::new(),
            flow_kind: 0,
            balance_disposition: 0,
            amount_cents: 0,
            contribution_months: 0,
            bank_account: None,
            retiree_payout_requested: false,
            instant: false,
            applied_on,
            form_received_on: None,
            created_at: now,
            updated_at: now,
        }
    }
}

/// A bank account named in an application.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BankAccount {
    /// The bank.
    pub bank_name: String,
    /// The account number (unmasked here; masked on every read API).
    pub account_number: String,
    /// The holder's name.
    pub account_holder_name: String,
}

impl Stored {
    /// Whether the machine reached a terminal state.
    pub fn is_terminal(&self) -> bool {
        match self {
            Stored::Out(out) => out.clone().to_domain().is_terminal(),
            Stored::In(state) => state.clone().to_domain().is_terminal(),
        }
    }

    /// The stable state name (for the store's index and the history).
    pub fn name(&self) -> &'static str {
        match self {
            Stored::Out(out) => out.clone().to_domain().name(),
            Stored::In(state) => state.clone().to_domain().name(),
        }
    }

    /// The wire state.
    pub fn wire(&self) -> wire::TransferState {
        use wire::TransferState as W;
        match self {
            Stored::Out(StoredOut::InTransit { .. }) => W::InTransit,
            Stored::Out(StoredOut::Aborting { .. }) => W::Aborting,
            Stored::Out(StoredOut::PayoutPending) => W::PayoutPending,
            Stored::Out(StoredOut::Completed) | Stored::In(StoredIn::Completed) => W::Completed,
            Stored::Out(StoredOut::Rejected { .. }) | Stored::In(StoredIn::Rejected { .. }) => {
                W::Rejected
            }
            Stored::Out(StoredOut::Returned { .. }) => W::Returned,
            Stored::Out(StoredOut::PaidToBank) => W::PaidToBank,
            Stored::In(StoredIn::Applied) => W::Applied,
            Stored::In(StoredIn::Requested) => W::Accepted,
            Stored::In(StoredIn::Credited) => W::Credited,
            Stored::In(StoredIn::Aborted) => W::Aborted,
        }
    }

    /// The refusal reason, for refused or returned transfers.
    pub fn refusal(&self) -> Option<RefusalReason> {
        match self {
            Stored::Out(StoredOut::Rejected { reason } | StoredOut::Returned { reason })
            | Stored::In(StoredIn::Rejected { reason }) => RefusalReason::from_code(reason),
            Stored::In(StoredIn::Aborted) => Some(RefusalReason::Aborted),
            _ => None,
        }
    }
}

impl StoredOut {
    /// Back to the machine's state.
    pub fn to_domain(self) -> OutState {
        let reason = |code: &str| RefusalReason::from_code(code).unwrap_or(RefusalReason::Aborted);
        match self {
            StoredOut::InTransit { route } => OutState::InTransit {
                balance: route.to_domain(),
            },
            StoredOut::Aborting { route, pay_to_bank } => OutState::Aborting {
                balance: route.to_domain(),
                fallback: if pay_to_bank {
                    AbortFallback::PayToBank
                } else {
                    AbortFallback::ReturnToAccount
                },
            },
            StoredOut::PayoutPending => OutState::PayoutPending,
            StoredOut::Completed => OutState::Completed,
            StoredOut::Rejected { reason: code } => OutState::Rejected(reason(&code)),
            StoredOut::Returned { reason: code } => OutState::Returned(reason(&code)),
            StoredOut::PaidToBank => OutState::PaidToBank,
        }
    }

    /// From the machine's state.
    pub fn from_domain(state: OutState) -> Self {
        match state {
            OutState::InTransit { balance } => StoredOut::InTransit {
                route: Route::from_domain(balance),
            },
            OutState::Aborting { balance, fallback } => StoredOut::Aborting {
                route: Route::from_domain(balance),
                pay_to_bank: fallback == AbortFallback::PayToBank,
            },
            OutState::PayoutPending => StoredOut::PayoutPending,
            OutState::Completed => StoredOut::Completed,
            OutState::Rejected(reason) => StoredOut::Rejected {
                reason: reason.code().to_owned(),
            },
            OutState::Returned(reason) => StoredOut::Returned {
                reason: reason.code().to_owned(),
            },
            OutState::PaidToBank => StoredOut::PaidToBank,
        }
    }
}

impl StoredIn {
    /// Back to the machine's state.
    pub fn to_domain(self) -> InState {
        match self {
            StoredIn::Applied => InState::Applied,
            StoredIn::Requested => InState::Requested,
            StoredIn::Credited => InState::Credited,
            StoredIn::Completed => InState::Completed,
            StoredIn::Rejected { reason } => InState::Rejected(
                RefusalReason::from_code(&reason).unwrap_or(RefusalReason::Aborted),
            ),
            StoredIn::Aborted => InState::Aborted,
        }
    }

    /// From the machine's state.
    pub fn from_domain(state: InState) -> Self {
        match state {
            InState::Applied => StoredIn::Applied,
            InState::Requested => StoredIn::Requested,
            InState::Credited => StoredIn::Credited,
            InState::Completed => StoredIn::Completed,
            InState::Rejected(reason) => StoredIn::Rejected {
                reason: reason.code().to_owned(),
            },
            InState::Aborted => StoredIn::Aborted,
        }
    }
}

impl Route {
    fn to_domain(self) -> BalanceRoute {
        match self {
            Route::MovesWithForm => BalanceRoute::MovesWithForm,
            Route::ToBankAfterCredit => BalanceRoute::ToBankAfterCredit,
            Route::StaysPut => BalanceRoute::StaysPut,
        }
    }

    fn from_domain(route: BalanceRoute) -> Self {
        match route {
            BalanceRoute::MovesWithForm => Route::MovesWithForm,
            BalanceRoute::ToBankAfterCredit => Route::ToBankAfterCredit,
            BalanceRoute::StaysPut => Route::StaysPut,
        }
    }
}

/// The wire `FlowKind` and `BalanceDisposition` of a classified plan.
pub fn wire_flow(plan: &TransferPlan) -> (wire::FlowKind, wire::BalanceDisposition) {
    use yibao_domain::classify::{Geography, PayoutReason, SchemeChange};
    let disposition = match plan.balance {
        BalanceDisposition::MoveToAccount => wire::BalanceDisposition::MoveToAccount,
        BalanceDisposition::PayToBank(_) => wire::BalanceDisposition::PayToBank,
        BalanceDisposition::StaysUsableInProvince => {
            wire::BalanceDisposition::StaysUsableInProvince
        }
        BalanceDisposition::KeptUsableAtOrigin => wire::BalanceDisposition::KeptUsableAtOrigin,
        BalanceDisposition::NoPersonalAccount => wire::BalanceDisposition::NoPersonalAccount,
    };
    let flow = match (plan.balance, plan.scheme_change, plan.geography) {
        (BalanceDisposition::PayToBank(PayoutReason::DestinationNotConnected), _, _) => {
            wire::FlowKind::NotConnectedPayout
        }
        (BalanceDisposition::PayToBank(PayoutReason::RetireeRelocated), _, _) => {
            wire::FlowKind::RetireePayout
        }
        (BalanceDisposition::PayToBank(PayoutReason::RegionPaysOut), _, _) => {
            wire::FlowKind::RegionPayout
        }
        (_, SchemeChange::EmployeeToResident, _) => wire::FlowKind::EmployeeToResident,
        (_, SchemeChange::ResidentToEmployee, _) => wire::FlowKind::ResidentToEmployee,
        (BalanceDisposition::StaysUsableInProvince, _, _) => {
            wire::FlowKind::IntraProvinceSharedAccount
        }
        (_, _, Geography::IntraProvince) => wire::FlowKind::IntraProvince,
        (_, _, Geography::CrossProvince) => wire::FlowKind::CrossProvince,
    };
    (flow, disposition)
}

/// The wire state value of a stored state name.
pub fn state_from_name(name: &str) -> i32 {
    use wire::TransferState as W;
    (match name {
        "APPLIED" => W::Applied,
        "REQUESTED" => W::Accepted,
        "IN_TRANSIT" => W::InTransit,
        "CREDITED" => W::Credited,
        "COMPLETED" => W::Completed,
        "REJECTED" => W::Rejected,
        "RETURNED" => W::Returned,
        "PAYOUT_PENDING" => W::PayoutPending,
        "PAID_TO_BANK" => W::PaidToBank,
        "ABORTING" => W::Aborting,
        "ABORTED" => W::Aborted,
        _ => W::Unspecified,
    }) as i32
}
