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

pub mod in_side;
pub mod out_side;

use std::fmt;
use std::str::FromStr;

use crate::region::RegionCode;

/// Why a bureau refused a transfer (or part of one). Stable codes travel on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefusalReason {
    /// The person is not known to the bureau that received the message.
    UnknownPerson,
    /// The person still contributes at the transfer-out region (has not stopped, 未中止参保).
    NotStoppedAtTransferOut,
    /// The person owes contributions at the transfer-out region (欠费).
    Arrears,
    /// The person is not enrolled normally at the transfer-in region (未正常参保).
    NotEnrolledAtTransferIn,
    /// Both regions are one pooling region: a move between counties is not a transfer.
    SamePoolingRegion,
    /// The person already has an open transfer (不得重复参保、重复享受待遇).
    OpenTransferExists,
    /// Retirees register as relocated retirees instead of transferring.
    RetireeMustRegisterRelocation,
    /// The balance must be paid to a bank account and the application named none.
    BankAccountRequired,
    /// The region named in the message is not hosted by the bureau that received it.
    RegionNotHosted,
    /// The transfer-in bureau already confirmed an abort of this transfer.
    Aborted,
}

impl RefusalReason {
    /// Every reason, for exhaustive tests and tables.
    pub const ALL: [RefusalReason; 10] = [
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
        }
    }
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.message())
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
pub struct TransferId(String);

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
        Some(Self(format!(
            "{region}{}{sequence:07}",
            date.format("%Y%m%d")
        )))
    }

    /// Parses an id received from outside.
    pub fn parse(text: &str) -> Result<Self, TransferIdError> {
        let valid = text.len() == Self::LENGTH
            && text.bytes().all(|b| b.is_ascii_digit())
            && RegionCode::parse(&text[..6]).is_ok()
            && chrono::NaiveDate::parse_from_str(&text[6..14], "%Y%m%d").is_ok();
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(TransferIdError)
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
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
}
