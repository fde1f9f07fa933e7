//! What a bureau measures as it works, recorded through the `metrics` facade (a no-op unless the
//! service was started with `metrics_listen`; `yibao_runtime::prometheus` renders them):
//!
//! | metric | type | labels | recorded where |
//! | --- | --- | --- | --- |
//! | `yibao_platform_messages_total` | counter | `direction` (`sent`, `received`), `kind`, `infcode` | `outbox::transport` (one per delivery attempt), `api::platform` (one per message received) |
//! | `yibao_platform_messages_retried_total` | counter | `kind` | `outbox::settle`: an attempt rescheduled with backoff |
//! | `yibao_handshake_step_seconds` | histogram | `step` | `outbox::settle`: a message's answer applied, timed from when it was queued |
//! | `yibao_faults_injected_total` | counter | `rule` (its id) | `faults`: a rule fired |
//!
//! The gauges read from the store at each scrape are in [`gauges`].
//!
//! **Labels are bounded** enumerations: message kinds, the infcodes of `inbox::infcode` (any
//! other is `other`; `none` when no reply was read: a transport failure, a gRPC status, a fault
//! that held the message back), steps, and the ids of the fault rules an operator added. Never a
//! transfer id, msgid or person.

pub mod gauges;

use std::time::Duration;

/// Platform messages by direction, kind and answering infcode.
pub const PLATFORM_MESSAGES: &str = "yibao_platform_messages_total";
/// Delivery attempts rescheduled with backoff, by kind.
pub const PLATFORM_MESSAGES_RETRIED: &str = "yibao_platform_messages_retried_total";
/// How long each handshake step took, by step.
pub const HANDSHAKE_STEP_SECONDS: &str = "yibao_handshake_step_seconds";
/// Faults injected, by rule.
pub const FAULTS_INJECTED: &str = "yibao_faults_injected_total";

/// The help lines of the bureau's metrics (call once, after the recorder is installed).
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_histogram};
    describe_counter!(
        PLATFORM_MESSAGES,
        "platform messages sent (per delivery attempt) and received, by kind and answering infcode"
    );
    describe_counter!(
        PLATFORM_MESSAGES_RETRIED,
        "delivery attempts rescheduled with backoff, by kind"
    );
    describe_histogram!(
        HANDSHAKE_STEP_SECONDS,
        Unit::Seconds,
        "a handshake step, from its message queued to its answer applied (service clock)"
    );
    describe_counter!(FAULTS_INJECTED, "faults injected, by fault rule id");
    gauges::describe();
}

/// Which way a platform message went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// This bureau sent it (one count per delivery attempt).
    Sent,
    /// This bureau received it.
    Received,
}

impl Direction {
    fn label(self) -> &'static str {
        match self {
            Direction::Sent => "sent",
            Direction::Received => "received",
        }
    }
}

/// Counts one platform message sent or received, with the infcode label of its answer.
pub fn platform_message(direction: Direction, kind: &'static str, infcode: &'static str) {
    metrics::counter!(
        PLATFORM_MESSAGES,
        "direction" => direction.label(),
        "kind" => kind,
        "infcode" => infcode
    )
    .increment(1);
}

/// Counts one delivery attempt of `kind` that will be made again after a backoff.
pub fn retried(kind: &'static str) {
    metrics::counter!(PLATFORM_MESSAGES_RETRIED, "kind" => kind).increment(1);
}

/// Records how long a handshake step took.
pub fn handshake_step(step: &'static str, took: Duration) {
    metrics::histogram!(HANDSHAKE_STEP_SECONDS, "step" => step).record(took.as_secs_f64());
}

/// Counts one fault injected by the rule `rule_id`.
pub fn fault_injected(rule_id: &str) {
    metrics::counter!(FAULTS_INJECTED, "rule" => rule_id.to_owned()).increment(1);
}

/// The `infcode` label of a reply's infcode: one of the infcodes this platform defines
/// (`inbox::infcode`: 0 and 1001 to 1008), or `other` (a peer may answer anything; the label
/// set stays bounded).
pub fn infcode_label(infcode: i32) -> &'static str {
    const DEFINED: [&str; 8] = [
        "1001", "1002", "1003", "1004", "1005", "1006", "1007", "1008",
    ];
    match infcode {
        0 => "0",
        1001..=1008 => usize::try_from(infcode - 1001)
            .ok()
            .and_then(|index| DEFINED.get(index).copied())
            .unwrap_or("other"),
        _ => "other",
    }
}

/// The `infcode` label of a message for which no reply was read.
pub const NO_REPLY: &str = "none";

/// The `step` label of an answer applied to a message of `kind` (the outbox spelling), or
/// `None` for a kind this bureau does not know.
pub fn step_of(kind: &str) -> Option<&'static str> {
    use crate::messages::Kind;
    Some(match Kind::parse(kind)? {
        Kind::RequestTransferOut => "request",
        Kind::DeliverForm => "form",
        Kind::ConfirmSettlement => "confirm_settlement",
        Kind::Abort => "abort",
        Kind::BankPayout => "payout",
        Kind::QueryTransferOut => "query",
        Kind::RemitBalance => "remittance",
        Kind::ReturnRemittance => "return_remittance",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infcodes_outside_the_platforms_own_are_one_label() {
        assert_eq!(infcode_label(0), "0");
        assert_eq!(infcode_label(1006), "1006");
        assert_eq!(infcode_label(4242), "other");
        assert_eq!(infcode_label(-1), "other");
        use crate::inbox::infcode as code;
        for defined in [
            code::SUCCESS,
            code::INVALID_MESSAGE,
            code::WRONG_RECEIVER,
            code::WRONG_TRANSACTION_CODE,
            code::MODIFIED_REQUEST,
            code::UNKNOWN_TRANSFER,
            code::OUT_OF_ORDER,
            code::UNKNOWN_SENDER,
            code::FOREIGN_TRANSFER_ID,
        ] {
            assert_eq!(infcode_label(defined), defined.to_string());
        }
    }

    #[test]
    fn every_message_kind_is_a_step() {
        for kind in crate::messages::Kind::ALL {
            assert!(step_of(kind.as_str()).is_some(), "{kind:?}");
        }
        assert_eq!(step_of("DELIVER_FORM"), Some("form"));
        assert_eq!(step_of("NOT_A_KIND"), None);
    }
}
