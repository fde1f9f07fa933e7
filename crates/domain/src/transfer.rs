//! The two transfer state machines, one for each side of the handshake, as pure functions.
//!
//! Each side is a function from (state, event) to a [`Transition`]: the next state and the
//! actions a driver must perform. The driver persists the new state, its journal entries and its
//! outbox rows in one database transaction *before* it performs any action, so a crash between
//! the two replays the actions, never the decision.
//!
//! Two rules hold for every machine here and are checked by property tests:
//! - a terminal state absorbs every event: the next state is the same and there are no actions;
//! - an event that makes no sense in a state is an [`IllegalEvent`] error, never a panic.
//!
//! Money is deliberately absent: actions name *what* moves ("the balance on the form"), and the
//! driver looks up *how much* in the stored transfer, so the machines stay small and total.
//!
//! A bureau stores either machine's state as a [`TransferState`] (it serialises, so a restart
//! resumes exactly where the machine stood) and shows people its [`Stage`], the public name of
//! where a transfer stands (DOMAIN.md, "Progress query": either bureau can say where any transfer
//! stands and why).

pub mod in_side;
pub mod out_side;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::region::{Pooling, RegionCode};
use in_side::InState;
use out_side::OutState;

/// Why a bureau refused a transfer (or part of one). Stable codes travel on the wire, and the
/// reason serialises as its code (e.g. `"ARREARS"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RefusalReason {
    /// The person is not known to the bureau that received the message.
    #[serde(rename = "UNKNOWN_PERSON")]
    UnknownPerson,
    /// The person still contributes at the transfer-out region (has not stopped, 未中止参保).
    #[serde(rename = "NOT_STOPPED_AT_TRANSFER_OUT")]
    NotStoppedAtTransferOut,
    /// The person owes contributions at the transfer-out region (欠费).
    #[serde(rename = "ARREARS")]
    Arrears,
    /// The person is not enrolled normally at the transfer-in region (未正常参保).
    #[serde(rename = "NOT_ENROLLED_AT_TRANSFER_IN")]
    NotEnrolledAtTransferIn,
    /// Both regions are one pooling region: a move between counties is not a transfer.
    #[serde(rename = "SAME_POOLING_REGION")]
    SamePoolingRegion,
    /// The person already has an open transfer (不得重复参保、重复享受待遇).
    #[serde(rename = "OPEN_TRANSFER_EXISTS")]
    OpenTransferExists,
    /// Retirees register as relocated retirees instead of transferring.
    #[serde(rename = "RETIREE_MUST_REGISTER_RELOCATION")]
    RetireeMustRegisterRelocation,
    /// The balance must be paid to a bank account and the application named none.
    #[serde(rename = "BANK_ACCOUNT_REQUIRED")]
    BankAccountRequired,
    /// The region named in the message is not hosted by the bureau that received it.
    #[serde(rename = "REGION_NOT_HOSTED")]
    RegionNotHosted,
    /// The transfer-in bureau already confirmed an abort of this transfer.
    #[serde(rename = "ABORTED")]
    Aborted,
    /// A working-day deadline passed without the step it bounds: the transfer-in bureau ended a
    /// transfer whose request or form never came (and refuses a form arriving later).
    #[serde(rename = "DEADLINE_EXPIRED")]
    DeadlineExpired,
    /// The transfer-out bureau, asked where the transfer stands (QueryTransferOut), does not
    /// know it: the request never reached it.
    #[serde(rename = "NOT_KNOWN_AT_TRANSFER_OUT")]
    NotKnownAtTransferOut,
    /// The information form does not fit the person's record at the transfer-in bureau (for
    /// example it moves a balance into a personal account the person, on the resident scheme
    /// there, does not have): found in its review (审核) before crediting.
    #[serde(rename = "FORM_MISMATCH")]
    FormMismatch,
    /// The other region is not connected to the national platform (未接入), and this flow needs
    /// the platform.
    #[serde(rename = "REGION_NOT_CONNECTED")]
    RegionNotConnected,
}

/// Which side of the handshake a bureau plays for one transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The transfer-out bureau (转出地): it sends the years and the balance.
    Out,
    /// The transfer-in bureau (转入地): it receives them.
    In,
}

/// Who started the transfer (DOMAIN.md: a person may apply at either bureau).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Initiator {
    /// The person applied at the transfer-in bureau (the usual path).
    TransferIn,
    /// The person applied at the transfer-out bureau.
    TransferOut,
}

/// Either machine's state, as a bureau stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferState {
    /// The transfer-out machine's state.
    Out(OutState),
    /// The transfer-in machine's state.
    In(InState),
}

/// The public stage of a transfer, as people see it (the values of the contract's
/// `common.v1.TransferState`, without `UNSPECIFIED`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Applied at the transfer-in bureau; the request is on its way.
    Applied,
    /// The transfer-out bureau accepted the request.
    Accepted,
    /// The form (and any balance) is on its way to the transfer-in bureau.
    InTransit,
    /// Credited at the transfer-in bureau, waiting for a settlement confirmation (old transfers).
    Credited,
    /// Terminal: the transfer completed.
    Completed,
    /// Terminal: refused by a review.
    Rejected,
    /// Terminal: the transfer did not happen; any balance went back to the account.
    Returned,
    /// The balance is being paid to the person's bank account.
    PayoutPending,
    /// Terminal: the balance was paid to the person's bank account.
    PaidToBank,
    /// An abort was sent and its answer is awaited.
    Aborting,
    /// Terminal: aborted before any credit.
    Aborted,
    /// Transfer-out side: the abort could not be delivered within its bound, or the remittance
    /// was refused and waits to come back; the balance stays in transit until an operator
    /// resolves the transfer (terminal for automation only). Transfer-in side: a remittance
    /// refused and held, or overdue.
    NeedsOperator,
    /// Transfer-in side: the request or the form is overdue; the transfer-out bureau was asked
    /// where the transfer stands, and the answer or the deadline ends it.
    Querying,
    /// Waiting at the transfer-out bureau until the destination joins the national platform.
    AwaitingConnection,
    /// Transfer-out side: the region's review takes working days; decided on its review day.
    UnderReview,
    /// Transfer-in side: the years are credited; the balance waits for its remittance between
    /// the fund accounts (划转).
    AwaitingFunds,
}

impl RefusalReason {
    /// Every reason, for exhaustive tests and tables.
    pub const ALL: [RefusalReason; 14] = [
        Self::UnknownPerson,
        Self::NotStoppedAtTransferOut,
        Self::Arrears,
        Self::NotEnrolledAtTransferIn,
        Self::SamePoolingRegion,
        Self::OpenTransferExists,
        Self::RetireeMustRegisterRelocation,
        Self::BankAccountRequired,
        Self::RegionNotHosted,
        Self::Aborted,
        Self::DeadlineExpired,
        Self::NotKnownAtTransferOut,
        Self::FormMismatch,
        Self::RegionNotConnected,
    ];

    /// The stable code, e.g. `"ARREARS"`.
    pub fn code(self) -> &'static str {
        match self {
            Self::UnknownPerson => "UNKNOWN_PERSON",
            Self::NotStoppedAtTransferOut => "NOT_STOPPED_AT_TRANSFER_OUT",
            Self::Arrears => "ARREARS",
            Self::NotEnrolledAtTransferIn => "NOT_ENROLLED_AT_TRANSFER_IN",
            Self::SamePoolingRegion => "SAME_POOLING_REGION",
            Self::OpenTransferExists => "OPEN_TRANSFER_EXISTS",
            Self::RetireeMustRegisterRelocation => "RETIREE_MUST_REGISTER_RELOCATION",
            Self::BankAccountRequired => "BANK_ACCOUNT_REQUIRED",
            Self::RegionNotHosted => "REGION_NOT_HOSTED",
            Self::Aborted => "ABORTED",
            Self::DeadlineExpired => "DEADLINE_EXPIRED",
            Self::NotKnownAtTransferOut => "NOT_KNOWN_AT_TRANSFER_OUT",
            Self::FormMismatch => "FORM_MISMATCH",
            Self::RegionNotConnected => "REGION_NOT_CONNECTED",
        }
    }

    /// Parses a stable code back into a reason.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|reason| reason.code() == code)
    }

    /// A sentence for the person, free of personal data.
    pub fn message(self) -> &'static str {
        match self {
            Self::UnknownPerson => "the person is not known to this bureau",
            Self::NotStoppedAtTransferOut => {
                "the person has not stopped contributing at the transfer-out region"
            }
            Self::Arrears => "the person owes contributions at the transfer-out region",
            Self::NotEnrolledAtTransferIn => {
                "the person is not enrolled normally at the transfer-in region"
            }
            Self::SamePoolingRegion => {
                "both regions belong to one pooling region: a move between them is not a transfer"
            }
            Self::OpenTransferExists => "the person already has an open transfer",
            Self::RetireeMustRegisterRelocation => {
                "retirees do not transfer: register as a relocated retiree (异地安置退休人员备案)"
            }
            Self::BankAccountRequired => {
                "the balance is paid to the person's bank account and the application names none"
            }
            Self::RegionNotHosted => "the region is not hosted by this bureau",
            Self::Aborted => "the transfer was aborted and will not be credited",
            Self::DeadlineExpired => {
                "the statutory deadline passed without the step it bounds; nothing will be credited"
            }
            Self::NotKnownAtTransferOut => {
                "the transfer-out bureau does not know the transfer: the request never reached it"
            }
            Self::FormMismatch => {
                "the information form does not fit the person's record at the transfer-in region"
            }
            Self::RegionNotConnected => {
                "the other region is not connected to the national platform (未接入)"
            }
        }
    }
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.message())
    }
}

impl TransferState {
    /// Whether the form was credited and the balance waits for its remittance between the fund
    /// accounts (the fund leg): its lateness is the remittance deadline's, not the statutory
    /// days' (the overdue module says why).
    pub fn awaits_remittance(self) -> bool {
        matches!(
            self,
            Self::Out(OutState::RemittanceDue | OutState::Remitted | OutState::RemittanceRefused)
                | Self::In(InState::AwaitingFunds | InState::FundsHeld(_))
        )
    }

    /// Which side's machine this is.
    pub fn side(self) -> Side {
        match self {
            Self::Out(_) => Side::Out,
            Self::In(_) => Side::In,
        }
    }

    /// Whether no event can change this state any more (as the machine says).
    pub fn is_terminal(self) -> bool {
        match self {
            Self::Out(state) => state.is_terminal(),
            Self::In(state) => state.is_terminal(),
        }
    }

    /// The machine state's stable name, as stored and shown (e.g. `"REQUESTED"`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Out(state) => state.name(),
            Self::In(state) => state.name(),
        }
    }

    /// The public stage of this state.
    pub fn stage(self) -> Stage {
        match self {
            Self::Out(state) => match state {
                OutState::InTransit { .. } => Stage::InTransit,
                OutState::Aborting { .. } => Stage::Aborting,
                OutState::NeedsOperator { .. } => Stage::NeedsOperator,
                OutState::AwaitingConnection => Stage::AwaitingConnection,
                OutState::UnderReview { .. } => Stage::UnderReview,
                // The fund leg: the balance is still in transit until the remittance matched.
                OutState::RemittanceDue | OutState::Remitted => Stage::InTransit,
                // Refused at transfer-in and held there: it waits for the money to come back.
                OutState::RemittanceRefused => Stage::NeedsOperator,
                OutState::PayoutPending => Stage::PayoutPending,
                OutState::Completed => Stage::Completed,
                OutState::Rejected(_) => Stage::Rejected,
                OutState::Returned(_) => Stage::Returned,
                OutState::PaidToBank => Stage::PaidToBank,
            },
            Self::In(state) => match state {
                InState::Applied => Stage::Applied,
                InState::Requested => Stage::Accepted,
                InState::Querying => Stage::Querying,
                InState::Credited => Stage::Credited,
                InState::AwaitingFunds => Stage::AwaitingFunds,
                // The remittance did not match or did not come: an operator decides.
                InState::FundsHeld(_) => Stage::NeedsOperator,
                InState::Completed => Stage::Completed,
                InState::Rejected(_) => Stage::Rejected,
                InState::Aborted => Stage::Aborted,
            },
        }
    }

    /// Why the transfer did not happen: the reason of a refused or returned transfer,
    /// [`RefusalReason::Aborted`] for an aborted one, `None` otherwise.
    pub fn refusal(self) -> Option<RefusalReason> {
        match self {
            Self::Out(OutState::Rejected(reason) | OutState::Returned(reason))
            | Self::In(InState::Rejected(reason)) => Some(reason),
            Self::In(InState::Aborted) => Some(RefusalReason::Aborted),
            Self::Out(_) | Self::In(_) => None,
        }
    }
}

impl From<OutState> for TransferState {
    fn from(state: OutState) -> Self {
        Self::Out(state)
    }
}

impl From<InState> for TransferState {
    fn from(state: InState) -> Self {
        Self::In(state)
    }
}

impl Stage {
    /// Every stage, for exhaustive tests and tables.
    pub const ALL: [Stage; 16] = [
        Self::Applied,
        Self::Accepted,
        Self::InTransit,
        Self::Credited,
        Self::Completed,
        Self::Rejected,
        Self::Returned,
        Self::PayoutPending,
        Self::PaidToBank,
        Self::Aborting,
        Self::Aborted,
        Self::NeedsOperator,
        Self::Querying,
        Self::AwaitingConnection,
        Self::UnderReview,
        Self::AwaitingFunds,
    ];

    /// Whether a transfer at this stage has ended.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Rejected | Self::Returned | Self::PaidToBank | Self::Aborted
        )
    }

    /// Every stored machine-state name of either machine.
    pub const STATE_NAMES: [&'static str; 19] = [
        "APPLIED",
        "REQUESTED",
        "QUERYING",
        "IN_TRANSIT",
        "CREDITED",
        "COMPLETED",
        "REJECTED",
        "RETURNED",
        "PAYOUT_PENDING",
        "PAID_TO_BANK",
        "ABORTING",
        "ABORTED",
        "NEEDS_OPERATOR",
        "AWAITING_CONNECTION",
        "UNDER_REVIEW",
        "AWAITING_FUNDS",
        "FUNDS_HELD",
        "REMITTANCE_DUE",
        "REMITTED",
    ];

    /// The stored machine-state names shown as this stage.
    pub fn state_names(self) -> impl Iterator<Item = &'static str> {
        Self::STATE_NAMES
            .into_iter()
            .filter(move |name| Self::of_state_name(name) == Some(self))
    }

    /// The stage of a stored machine-state name (either machine's `name()`); `None` for any
    /// other text.
    pub fn of_state_name(name: &str) -> Option<Stage> {
        Some(match name {
            "APPLIED" => Self::Applied,
            "REQUESTED" => Self::Accepted,
            "IN_TRANSIT" => Self::InTransit,
            "CREDITED" => Self::Credited,
            "COMPLETED" => Self::Completed,
            "REJECTED" => Self::Rejected,
            "RETURNED" => Self::Returned,
            "PAYOUT_PENDING" => Self::PayoutPending,
            "PAID_TO_BANK" => Self::PaidToBank,
            "ABORTING" => Self::Aborting,
            "ABORTED" => Self::Aborted,
            "NEEDS_OPERATOR" => Self::NeedsOperator,
            "QUERYING" => Self::Querying,
            "AWAITING_CONNECTION" => Self::AwaitingConnection,
            "UNDER_REVIEW" => Self::UnderReview,
            "AWAITING_FUNDS" => Self::AwaitingFunds,
            "FUNDS_HELD" => Self::NeedsOperator,
            "REMITTANCE_DUE" | "REMITTED" => Self::InTransit,
            _ => return None,
        })
    }
}

/// An event that the state machine does not accept in its current state. This is an operating
/// error (a confused or malicious peer), reported to the sender, never a panic.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("event {event} is not accepted in state {state}")]
pub struct IllegalEvent {
    /// The state's stable name.
    pub state: &'static str,
    /// The event's stable name.
    pub event: &'static str,
}

/// The result of applying one event: where the machine goes and what the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition<S, A> {
    /// The state after the event.
    pub next: S,
    /// What the driver performs, in order, after persisting `next`.
    pub actions: Vec<A>,
}

impl<S, A> Transition<S, A> {
    fn to(next: S, actions: Vec<A>) -> Self {
        Self { next, actions }
    }

    fn stay(state: S) -> Self {
        Self {
            next: state,
            actions: Vec::new(),
        }
    }
}

/// A transfer's identifier, assigned by the bureau where the person applied: the applying
/// region's code, the application date and a 7-digit sequence of that bureau for that day,
/// e.g. `540100202611230000042` (21 digits). Unique across bureaus because regions are.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct TransferId(String, RegionCode);

/// Why a string is not a transfer id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("transfer_id must be 21 digits: region code, yyyyMMdd, 7-digit sequence")]
pub struct TransferIdError;

impl TransferId {
    /// The number of digits in a transfer id.
    pub const LENGTH: usize = 21;

    /// Builds the id for the `sequence`-th application of `date` at `region`.
    /// Returns `None` when the sequence does not fit in seven digits.
    pub fn new(region: RegionCode, date: chrono::NaiveDate, sequence: u32) -> Option<Self> {
        if sequence > 9_999_999 {
            return None;
        }
        Some(Self(
            format!("{region}{}{sequence:07}", date.format("%Y%m%d")),
            region,
        ))
    }

    /// Parses an id received from outside.
    pub fn parse(text: &str) -> Result<Self, TransferIdError> {
        if text.len() != Self::LENGTH || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TransferIdError);
        }
        let region = RegionCode::parse(&text[..6]).map_err(|_| TransferIdError)?;
        chrono::NaiveDate::parse_from_str(&text[6..14], "%Y%m%d").map_err(|_| TransferIdError)?;
        Ok(Self(text.to_owned(), region))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The region that minted the id (its first six digits).
    pub fn region(&self) -> RegionCode {
        self.1
    }

    /// Whether `region`'s pooling region (as `pooling` groups them) minted the id: only it may
    /// create a transfer under it.
    pub fn minted_by(&self, pooling: &Pooling, region: RegionCode) -> bool {
        pooling.same_pooling_region(self.region(), region)
    }
}

impl fmt::Display for TransferId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for TransferId {
    type Err = TransferIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_minting_pooling_region_may_create_a_transfer_under_an_id() {
        let id = TransferId::parse("540100202611230000042").expect("valid id");
        assert_eq!(id.region().to_string(), "540100");
        let pooling = crate::region::CITY_LEVEL.clone();
        assert!(id.minted_by(&pooling, RegionCode::parse("540100").expect("code")));
        assert!(id.minted_by(&pooling, RegionCode::parse("540102").expect("code")));
        assert!(!id.minted_by(&pooling, RegionCode::parse("150100").expect("code")));
        let tibet = pooling.with_province_level(id.region().province());
        assert!(id.minted_by(&tibet, RegionCode::parse("540000").expect("code")));
        assert!(TransferId::parse("999999202611230000042").is_err());
    }

    #[test]
    fn every_refusal_code_parses_back_to_its_reason() {
        for reason in RefusalReason::ALL {
            assert_eq!(RefusalReason::from_code(reason.code()), Some(reason));
        }
        assert_eq!(RefusalReason::from_code("NOPE"), None);
    }

    #[test]
    fn transfer_ids_round_trip_and_reject_malformed_text() {
        let region = RegionCode::parse("540100").expect("valid region");
        let date = chrono::NaiveDate::from_ymd_opt(2026, 11, 23).expect("valid date");
        let id = TransferId::new(region, date, 42).expect("sequence fits");
        assert_eq!(id.as_str(), "540100202611230000042");
        assert_eq!(TransferId::parse(id.as_str()), Ok(id));
        assert_eq!(
            TransferId::parse("54010020261123000004"),
            Err(TransferIdError)
        );
        assert_eq!(
            TransferId::parse("99010020261123000004x"),
            Err(TransferIdError)
        );
        assert_eq!(
            TransferId::parse("540100202613230000042"),
            Err(TransferIdError)
        );
        assert!(TransferId::new(region, date, 10_000_000).is_none());
    }

    fn every_state() -> Vec<TransferState> {
        use out_side::{AbortFallback, BalanceRoute};
        let mut states = vec![
            OutState::InTransit {
                balance: BalanceRoute::MovesWithForm,
            }
            .into(),
            OutState::Aborting {
                balance: BalanceRoute::ToBankAfterCredit,
                fallback: AbortFallback::PayToBank,
            }
            .into(),
            OutState::NeedsOperator {
                balance: BalanceRoute::MovesWithForm,
                fallback: AbortFallback::ReturnToAccount,
            }
            .into(),
            OutState::AwaitingConnection.into(),
            OutState::UnderReview {
                due_on: chrono::NaiveDate::from_ymd_opt(2026, 3, 16).expect("a day"),
            }
            .into(),
            OutState::RemittanceDue.into(),
            OutState::Remitted.into(),
            OutState::PayoutPending.into(),
            OutState::Completed.into(),
            OutState::Rejected(RefusalReason::Arrears).into(),
            OutState::Returned(RefusalReason::Aborted).into(),
            OutState::PaidToBank.into(),
        ];
        states.extend(
            [
                InState::Applied,
                InState::Requested,
                InState::Querying,
                InState::Credited,
                InState::AwaitingFunds,
                InState::FundsHeld(in_side::FundsProblem::Short),
                InState::FundsHeld(in_side::FundsProblem::Overdue),
                InState::Completed,
                InState::Rejected(RefusalReason::NotEnrolledAtTransferIn),
                InState::Aborted,
            ]
            .map(TransferState::In),
        );
        states
    }

    #[test]
    fn a_refusal_reason_serialises_as_its_stable_code() {
        for reason in RefusalReason::ALL {
            let text = serde_json::to_string(&reason).expect("serialises");
            assert_eq!(text, format!("\"{}\"", reason.code()));
            let back: RefusalReason = serde_json::from_str(&text).expect("deserialises");
            assert_eq!(back, reason);
        }
        assert!(serde_json::from_str::<RefusalReason>("\"arrears\"").is_err());
    }

    #[test]
    fn a_stored_state_survives_a_serde_round_trip() {
        for state in every_state() {
            let text = serde_json::to_string(&state).expect("serialises");
            let back: TransferState = serde_json::from_str(&text).expect("deserialises");
            assert_eq!(back, state, "{text}");
        }
        let rejected = TransferState::Out(OutState::Rejected(RefusalReason::Arrears));
        assert_eq!(
            serde_json::to_string(&rejected).expect("serialises"),
            r#"{"out":{"rejected":"ARREARS"}}"#
        );
        assert_eq!(
            serde_json::to_string(&TransferState::In(InState::Requested)).expect("serialises"),
            r#"{"in":"requested"}"#
        );
        assert_eq!(
            serde_json::to_string(&(Side::Out, Initiator::TransferIn)).expect("serialises"),
            r#"["out","transfer_in"]"#
        );
    }

    #[test]
    fn a_requested_transfer_in_is_shown_as_accepted() {
        assert_eq!(
            TransferState::In(InState::Requested).stage(),
            Stage::Accepted
        );
        assert_eq!(Stage::of_state_name("REQUESTED"), Some(Stage::Accepted));
        assert_eq!(Stage::of_state_name("ACCEPTED"), None);
        assert_eq!(Stage::of_state_name(""), None);
    }

    #[test]
    fn every_state_has_the_stage_of_its_stored_name_and_the_machines_terminality() {
        for state in every_state() {
            assert_eq!(Stage::of_state_name(state.name()), Some(state.stage()));
            assert_eq!(
                state.stage().is_terminal(),
                state.is_terminal(),
                "{state:?}"
            );
        }
        for state in every_state() {
            assert!(Stage::STATE_NAMES.contains(&state.name()), "{state:?}");
            assert!(state.stage().state_names().any(|name| name == state.name()));
        }
        let stages: std::collections::HashSet<Stage> = every_state()
            .into_iter()
            .map(TransferState::stage)
            .collect();
        assert_eq!(stages.len(), Stage::ALL.len(), "every stage is reachable");
    }

    #[test]
    fn only_refused_returned_and_aborted_transfers_have_a_refusal() {
        for state in every_state() {
            let expected = match state {
                TransferState::Out(OutState::Rejected(_)) => Some(RefusalReason::Arrears),
                TransferState::Out(OutState::Returned(_)) | TransferState::In(InState::Aborted) => {
                    Some(RefusalReason::Aborted)
                }
                TransferState::In(InState::Rejected(_)) => {
                    Some(RefusalReason::NotEnrolledAtTransferIn)
                }
                _ => None,
            };
            assert_eq!(state.refusal(), expected, "{state:?}");
        }
        assert_eq!(TransferState::In(InState::Applied).side(), Side::In);
        assert_eq!(TransferState::Out(OutState::Completed).side(), Side::Out);
    }
}
