//! What can go wrong in a command, and the one place it becomes a one-line message (or a JSON
//! object) and exit code 1.
//!
//! A gRPC error reads `transfer-in ApplyTransfer: FAILED_PRECONDITION: <message>` followed by the
//! refusal reason and open transfer the bureau put in its trailers, so a script can match on
//! the code and a person can read the reason.

use serde_json::{Value, json};
use yibao_harness::{HarnessError, code_name};

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A bureau answered with an error status.
    #[error("{}", rpc_line(service, call, status))]
    Rpc {
        /// `transfer-out` or `transfer-in`.
        service: &'static str,
        /// The rpc, for example `ApplyTransfer`.
        call: &'static str,
        /// The status (boxed: it is large).
        status: Box<tonic::Status>,
    },
    /// A bureau could not be reached.
    #[error("cannot connect to {service} at {endpoint}: {detail}")]
    Connect {
        /// `transfer-out` or `transfer-in`.
        service: &'static str,
        /// The endpoint tried.
        endpoint: String,
        /// The transport error and its causes.
        detail: String,
    },
    /// A command could not do what it was asked, for a reason it explains.
    #[error("{0}")]
    Failed(String),
    /// The harness (process control, ledger check, clocks) failed.
    #[error("{0}")]
    Harness(HarnessError),
}

impl From<HarnessError> for CliError {
    fn from(error: HarnessError) -> CliError {
        match error {
            HarnessError::Rpc {
                service,
                call,
                status,
            } => CliError::Rpc {
                service,
                call,
                status,
            },
            other => CliError::Harness(other),
        }
    }
}

impl CliError {
    /// Wraps a status answered by `service` to `call`.
    pub fn rpc(
        service: &'static str,
        call: &'static str,
    ) -> impl FnOnce(tonic::Status) -> CliError {
        move |status| CliError::Rpc {
            service,
            call,
            status: Box::new(status),
        }
    }

    /// The error as one JSON object, `{"error": {...}}`.
    pub fn to_json(&self) -> Value {
        match self {
            CliError::Rpc {
                service,
                call,
                status,
            } => json!({"error": {
                "service": service,
                "call": call,
                "code": code_name(status.code()),
                "message": status.message(),
                "refusal_reason": trailer(status, REFUSAL_REASON_TRAILER),
                "open_transfer_id": trailer(status, OPEN_TRANSFER_TRAILER),
            }}),
            other => json!({"error": {"message": other.to_string()}}),
        }
    }
}

/// The trailer in which a bureau names its refusal reason.
const REFUSAL_REASON_TRAILER: &str = "yibao-refusal-reason";

/// The trailer in which a bureau names the open transfer behind ALREADY_EXISTS.
const OPEN_TRANSFER_TRAILER: &str = "yibao-open-transfer-id";

/// `service call: CODE: message [refusal REASON] [open transfer ID]`.
fn rpc_line(service: &str, call: &str, status: &tonic::Status) -> String {
    let mut line = format!("{service} {call}: {}", code_name(status.code()));
    if !status.message().is_empty() {
        line.push_str(": ");
        line.push_str(status.message());
    }
    if let Some(reason) = trailer(status, REFUSAL_REASON_TRAILER) {
        line.push_str(&format!(" [refusal {reason}]"));
    }
    if let Some(transfer_id) = trailer(status, OPEN_TRANSFER_TRAILER) {
        line.push_str(&format!(" [open transfer {transfer_id}]"));
    }
    line
}

/// A text trailer of the status, if present.
fn trailer(status: &tonic::Status, name: &str) -> Option<String> {
    status
        .metadata()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_one_line_with_code_message_and_reason() {
        let mut status = tonic::Status::failed_precondition("the person owes contributions");
        status.metadata_mut().insert(
            REFUSAL_REASON_TRAILER,
            "REFUSAL_REASON_ARREARS".parse().expect("ascii"),
        );
        let error = CliError::rpc("transfer-in", "ApplyTransfer")(status);
        assert_eq!(
            error.to_string(),
            "transfer-in ApplyTransfer: FAILED_PRECONDITION: the person owes contributions \
             [refusal REFUSAL_REASON_ARREARS]"
        );
        let json = error.to_json();
        assert_eq!(json["error"]["code"], "FAILED_PRECONDITION");
        assert_eq!(json["error"]["refusal_reason"], "REFUSAL_REASON_ARREARS");
    }

    #[test]
    fn an_open_transfer_is_named() {
        let mut status = tonic::Status::already_exists("an open transfer exists");
        status
            .metadata_mut()
            .insert(OPEN_TRANSFER_TRAILER, "T-1".parse().expect("ascii"));
        let line = CliError::rpc("transfer-in", "ApplyTransfer")(status).to_string();
        assert!(line.ends_with("[open transfer T-1]"), "{line}");
        assert!(!line.contains('\n'));
    }
}
