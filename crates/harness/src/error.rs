//! The one error type of the harness, so that a test can `?` or `expect` every call.
//!
//! Errors about a service process carry the paths of its log files: a failed start or a wait that
//! timed out is diagnosed by reading what the service wrote, and the message says where that is.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use yibao_domain::population::PopulationError;

use crate::process::LogFiles;

/// Why a harness operation failed.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A service binary is not where the harness looked for it.
    #[error(
        "service binary {} not found: build it first (cargo build --workspace --bins) \
         or point YIBAO_BIN_DIR at the directory that holds it",
        binary.display()
    )]
    BinaryMissing {
        /// The path that was tried.
        binary: PathBuf,
    },
    /// The region directory file does not exist.
    #[error("region directory {} not found", path.display())]
    DirectoryMissing {
        /// The path that was tried.
        path: PathBuf,
    },
    /// A file-system or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What the harness was doing, for example "creating data directory /tmp/x".
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A service exited before it reported healthy.
    #[error("{service} exited before it was ready ({status}); {logs}")]
    ExitedEarly {
        /// `transfer-out` or `transfer-in`.
        service: &'static str,
        /// How it exited.
        status: ExitStatus,
        /// Where its output went.
        logs: LogFiles,
    },
    /// A service did not write its port file or answer SERVING in time.
    #[error("{service} was not ready within {waited:?}: {reason}; {logs}")]
    NotReady {
        /// `transfer-out` or `transfer-in`.
        service: &'static str,
        /// How long the harness waited.
        waited: Duration,
        /// The last thing that was missing.
        reason: String,
        /// Where its output went.
        logs: LogFiles,
    },
    /// The operation needs a running service, and this one was killed or stopped.
    #[error("{service} is not running (killed or stopped); restart it first")]
    NotRunning {
        /// `transfer-out` or `transfer-in`.
        service: &'static str,
    },
    /// An endpoint could not be turned into a gRPC channel.
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        /// The endpoint, for example `http://127.0.0.1:50051`.
        endpoint: String,
        /// The transport error.
        #[source]
        source: tonic::transport::Error,
    },
    /// A gRPC call answered with an error status.
    #[error("{service} {call}: {}: {}", code_name(status.code()), status.message())]
    Rpc {
        /// `transfer-out` or `transfer-in`.
        service: &'static str,
        /// The rpc, for example `GetTransfer`.
        call: &'static str,
        /// The status it answered (boxed: a status is large and errors travel often).
        status: Box<tonic::Status>,
    },
    /// A wait for a condition reached its deadline.
    #[error("timed out after {waited:?} waiting for {what}; last seen: {last_seen}; {logs}")]
    Timeout {
        /// What was awaited, for example "transfer T1 at transfer-in to reach COMPLETED".
        what: String,
        /// How long the harness waited.
        waited: Duration,
        /// The last observation, for example a state and the last history step.
        last_seen: String,
        /// The logs of the service that was polled.
        logs: LogFiles,
    },
    /// A transfer reached a terminal state other than the one awaited: it will never change
    /// again, so the wait ended before its deadline.
    #[error("waited for {what}, but it ended otherwise: {last_seen}; {logs}")]
    EndedOtherwise {
        /// What was awaited.
        what: String,
        /// The transfer as last seen: its terminal state and last step.
        last_seen: String,
        /// The logs of the service that was polled.
        logs: LogFiles,
    },
    /// A service answered something the harness cannot read, for example an amount that is
    /// not a valid decimal string.
    #[error("{service} answered a malformed {field} {value:?}: {reason}")]
    MalformedAnswer {
        /// `transfer-out` or `transfer-in`.
        service: &'static str,
        /// The field, for example `credited_total`.
        field: &'static str,
        /// The value as received.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The seeded population holds fewer people of a flow than were asked for.
    #[error(
        "only {found} of the {seeded} seeded persons fit flow {flow}, {wanted} were asked for: \
         seed more (PairOptions::persons)"
    )]
    NotEnoughPersons {
        /// The flow's name.
        flow: &'static str,
        /// How many were asked for.
        wanted: usize,
        /// How many exist among the seeded persons.
        found: usize,
        /// How many persons were seeded.
        seeded: u64,
    },
    /// A person applies at the bureau a counterpart does not play: that bureau is the user's.
    #[error(
        "a person of flow {flow} applies at {applies_at}, and this counterpart plays {plays}: \
         pick a flow that starts at {plays}"
    )]
    WrongSide {
        /// The person's flow.
        flow: &'static str,
        /// The bureau the flow applies at.
        applies_at: &'static str,
        /// The bureau the counterpart plays.
        plays: &'static str,
    },
    /// Replicas of a bureau were asked for without a store they can share.
    #[error(
        "{replicas} replicas of {service} need one shared store: give it a PostgreSQL database \
         (YIBAO_DATABASE_URL in PairOptions::out_env or in_env)"
    )]
    NotShared {
        /// `transfer-out` or `transfer-in`.
        service: &'static str,
        /// How many replicas were asked for.
        replicas: usize,
    },
    /// The population generator refused an index.
    #[error(transparent)]
    Population(#[from] PopulationError),
}

impl HarnessError {
    /// Wraps an I/O error with what the harness was doing.
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> HarnessError {
        let context = context.into();
        move |source| HarnessError::Io { context, source }
    }

    /// Wraps a status answered by `service` to `call`.
    pub(crate) fn rpc(
        service: &'static str,
        call: &'static str,
    ) -> impl FnOnce(tonic::Status) -> HarnessError {
        move |status| HarnessError::Rpc {
            service,
            call,
            status: Box::new(status),
        }
    }

    /// The gRPC status, when the error is one.
    pub fn status(&self) -> Option<&tonic::Status> {
        match self {
            HarnessError::Rpc { status, .. } => Some(status),
            _ => None,
        }
    }
}

/// The canonical name of a gRPC status code (`FAILED_PRECONDITION`), the one the services' RPC
/// metrics use.
pub use yibao_runtime::rpc_metrics::code_name;
