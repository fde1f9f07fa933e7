//! Why a load run could not be carried out. A run that finishes with errors counted or a ledger
//! that does not hold is not a [`LoadError`]: it is a [`crate::Report`] that says so.

use std::path::PathBuf;

/// Why a load run could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A setting is out of range or malformed; the message names it.
    #[error("{0}")]
    Options(String),
    /// The pair could not be started.
    #[error("starting the services: {0}")]
    Spawn(String),
    /// A service could not be reached.
    #[error("connecting to {endpoint}: {message}")]
    Connect {
        /// The endpoint.
        endpoint: String,
        /// What went wrong.
        message: String,
    },
    /// A setup or check call (seeding, ledger totals) failed.
    #[error("{call} at {endpoint}: {status}")]
    Call {
        /// The RPC.
        call: &'static str,
        /// The endpoint.
        endpoint: String,
        /// The status the service answered.
        status: Box<tonic::Status>,
    },
    /// A report could not be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl LoadError {
    /// A failed setup or check call.
    pub(crate) fn call(call: &'static str, endpoint: &str, status: tonic::Status) -> LoadError {
        LoadError::Call {
            call,
            endpoint: endpoint.to_owned(),
            status: Box::new(status),
        }
    }
}
