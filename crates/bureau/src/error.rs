//! The bureau's error type and its one mapping to `tonic::Status`.
//!
//! Statuses name the field and the rule, never internals (SQL, paths) and never personal data.

use std::borrow::Cow;

use tonic::{Code, Status};
use yibao_domain::transfer::RefusalReason;

/// Everything a bureau handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A field of the request is malformed.
    #[error("{field}: {rule}")]
    InvalidArgument {
        /// The request field, as named in the proto (its full path, e.g.
        /// `application.bank_account.account_number`).
        field: Cow<'static, str>,
        /// What is wrong with it.
        rule: String,
    },
    /// The application is refused for a domain reason.
    #[error("{0}")]
    Refused(RefusalReason),
    /// A certificate is refused for a reason no transfer refusal means.
    #[error("{code}: {0}", code = .0.code())]
    CertificateRefused(yibao_domain::certificate::CertificateRefusal),
    /// The person already has an open transfer.
    #[error("the person already has an open transfer {0}")]
    OpenTransferExists(String),
    /// Nothing with that id.
    #[error("{0} not found")]
    NotFound(String),
    /// What a call would create exists already (a person created twice).
    #[error("{0}")]
    AlreadyExists(String),
    /// The admin API or test clock is disabled, or the call does not fit the configuration.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A storage failure: logged where handled, never shown in detail.
    #[error("storage: {0}")]
    Store(#[from] yibao_store::Error),
    /// An event that does not fit the transfer's state (a message out of order); the state
    /// machine's own sentence, free of personal data.
    #[error("out of order: {0}")]
    OutOfOrder(String),
    /// A limit is reached (watch streams open, say): nothing was done, and the same request may
    /// succeed after a backoff.
    #[error("{0}")]
    Exhausted(String),
    /// A broken invariant.
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    /// A malformed field.
    pub fn invalid(field: &'static str, rule: impl ToString) -> Self {
        Self::InvalidArgument {
            field: Cow::Borrowed(field),
            rule: rule.to_string(),
        }
    }

    /// Stored data that does not decode, named by `what`. Only serde's category and position
    /// are kept, never its message: that quotes the offending value ("invalid type: string
    /// \"…\"", "unknown variant `…`"), which may be an ID number, a name or an account number.
    pub fn unreadable(what: &str, error: &serde_json::Error) -> Self {
        let category = match error.classify() {
            serde_json::error::Category::Io => "an I/O error",
            serde_json::error::Category::Syntax => "not JSON",
            serde_json::error::Category::Data => "a value of the wrong type or shape",
            serde_json::error::Category::Eof => "cut short",
        };
        Self::Internal(format!(
            "{what} unreadable: {category} at line {} column {}",
            error.line(),
            error.column()
        ))
    }

    /// The same error, a malformed field named under `path` (the message that holds it, as
    /// `application.`); any other error unchanged.
    pub fn within(self, path: &str) -> Self {
        match self {
            Self::InvalidArgument { field, rule } => Self::InvalidArgument {
                field: Cow::Owned(format!("{path}{field}")),
                rule,
            },
            other => other,
        }
    }
}

/// A rule of an application broken, naming the field.
impl From<yibao_domain::application::ApplicationError> for Error {
    fn from(error: yibao_domain::application::ApplicationError) -> Self {
        Self::InvalidArgument {
            field: Cow::Borrowed(error.field),
            rule: error.rule,
        }
    }
}

/// A refusal as the bureau API reports it: the blocking transfer's id when there is one.
impl From<yibao_domain::review::Refused> for Error {
    fn from(refused: yibao_domain::review::Refused) -> Self {
        match refused.open_transfer {
            Some(open) => Self::OpenTransferExists(open),
            None => Self::Refused(refused.reason),
        }
    }
}

/// A certificate refusal, as the bureau API reports it: an unknown person and a person still
/// contributing exactly as `ApplyTransfer` refuses them (the same code, message and trailer).
impl From<yibao_domain::certificate::CertificateRefusal> for Error {
    fn from(refusal: yibao_domain::certificate::CertificateRefusal) -> Self {
        use yibao_domain::certificate::CertificateRefusal as R;
        match refusal {
            R::UnknownPerson => Self::Refused(RefusalReason::UnknownPerson),
            R::StillContributing => Self::Refused(RefusalReason::NotStoppedAtTransferOut),
            R::NoContributionRecord => Self::CertificateRefused(refusal),
        }
    }
}

/// A change to a person's record refused: an unknown person is NOT_FOUND, every other refusal
/// a failed precondition with the rule's sentence (which names fields and months, never the
/// person).
impl From<yibao_domain::lifecycle::Refusal> for Error {
    fn from(refusal: yibao_domain::lifecycle::Refusal) -> Self {
        match refusal {
            yibao_domain::lifecycle::Refusal::Unknown => Self::NotFound("person".to_owned()),
            other => Self::FailedPrecondition(other.to_string()),
        }
    }
}

/// A person who cannot be created: known already, or a record that does not hold together
/// (naming the field).
impl From<yibao_domain::lifecycle::CreateError> for Error {
    fn from(error: yibao_domain::lifecycle::CreateError) -> Self {
        use yibao_domain::lifecycle::CreateError;
        match error {
            CreateError::AlreadyKnown => Self::AlreadyExists(error.to_string()),
            CreateError::Invalid(invalid) => Self::InvalidArgument {
                field: Cow::Borrowed(invalid.field),
                rule: invalid.rule,
            },
        }
    }
}

impl From<yibao_domain::transfer::IllegalEvent> for Error {
    fn from(error: yibao_domain::transfer::IllegalEvent) -> Self {
        Self::OutOfOrder(error.to_string())
    }
}

/// The trailer naming a refusal's reason: the contract's name of its `RefusalReason` value
/// (bureau.proto, "Status codes").
pub const REFUSAL_REASON_TRAILER: &str = "yibao-refusal-reason";

/// The value of the [`REFUSAL_REASON_TRAILER`] for `reason`: the name of its `RefusalReason`
/// value in the contract, e.g. `REFUSAL_REASON_ARREARS` (convert.rs checks every reason against
/// the generated enum). A certificate refusal that no `RefusalReason` means is named the same
/// way, e.g. `REFUSAL_REASON_NO_CONTRIBUTION_RECORD` (bureau.proto, IssueCertificate).
pub fn refusal_trailer(reason: RefusalReason) -> String {
    format!("REFUSAL_REASON_{}", reason.code())
}

/// `status` with the ASCII trailer `name: value` (a value that is not a valid header value is
/// left out rather than sent garbled; every value here is an enum name or a transfer id).
fn with_trailer(mut status: Status, name: &'static str, value: &str) -> Status {
    if let Ok(value) = value.parse() {
        status.metadata_mut().insert(name, value);
    }
    status
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidArgument { .. } => Status::invalid_argument(error.to_string()),
            Error::Refused(reason) => with_trailer(
                Status::failed_precondition(reason.to_string()),
                REFUSAL_REASON_TRAILER,
                &refusal_trailer(reason),
            ),
            Error::CertificateRefused(refusal) => with_trailer(
                Status::failed_precondition(error.to_string()),
                REFUSAL_REASON_TRAILER,
                &format!("REFUSAL_REASON_{}", refusal.code()),
            ),
            Error::OpenTransferExists(ref id) => {
                let status = with_trailer(
                    Status::already_exists(error.to_string()),
                    REFUSAL_REASON_TRAILER,
                    &refusal_trailer(RefusalReason::OpenTransferExists),
                );
                with_trailer(status, "yibao-open-transfer-id", id)
            }
            Error::NotFound(_) => Status::not_found(error.to_string()),
            Error::AlreadyExists(message) => Status::already_exists(message),
            Error::FailedPrecondition(_) | Error::OutOfOrder(_) => {
                Status::failed_precondition(error.to_string())
            }
            Error::Exhausted(message) => Status::resource_exhausted(message),
            Error::Store(yibao_store::Error::Busy) => Status::resource_exhausted(
                "the bureau is busy: its store's queue is full; nothing was changed, retry after \
                 a backoff",
            ),
            Error::Store(yibao_store::Error::Closed) => {
                Status::unavailable("the bureau is shutting down")
            }
            Error::Store(ref inner) => {
                // The step's writes were undone (or never committed): nothing changed, and the
                // same request may succeed later, which is what UNAVAILABLE tells a sender.
                tracing::error!(error = %inner, "storage failure");
                Status::new(Code::Unavailable, "storage failure; nothing was changed")
            }
            Error::Internal(ref message) => {
                tracing::error!(%message, "broken invariant");
                Status::internal("internal error")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trailer(status: &Status, name: &str) -> Option<String> {
        status
            .metadata()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    }

    /// bureau.proto, "Status codes": FAILED_PRECONDITION carries the RefusalReason value name,
    /// and ALREADY_EXISTS carries REFUSAL_REASON_OPEN_TRANSFER_EXISTS and the open transfer.
    #[test]
    fn the_refusal_reason_trailer_is_the_refusal_reason_value_name() {
        let arrears = Status::from(Error::Refused(RefusalReason::Arrears));
        assert_eq!(arrears.code(), Code::FailedPrecondition);
        assert_eq!(
            trailer(&arrears, REFUSAL_REASON_TRAILER).as_deref(),
            Some("REFUSAL_REASON_ARREARS")
        );
        let open = Status::from(Error::OpenTransferExists(
            "540100202603020000001".to_owned(),
        ));
        assert_eq!(open.code(), Code::AlreadyExists);
        assert_eq!(
            trailer(&open, REFUSAL_REASON_TRAILER).as_deref(),
            Some("REFUSAL_REASON_OPEN_TRANSFER_EXISTS")
        );
        assert_eq!(
            trailer(&open, "yibao-open-transfer-id").as_deref(),
            Some("540100202603020000001")
        );
    }

    #[test]
    fn unreadable_stored_data_is_named_without_quoting_its_values() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)] // Only decoded, to make serde fail.
        enum Scheme {
            Employee,
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)] // Only decoded, to make serde fail.
        struct Row {
            amount_cents: i64,
            scheme: Scheme,
        }
        for (text, value) in [
            (
                r#"{"amount_cents": "150102197001010001", "scheme": "Employee"}"#,
                "150102197001010001",
            ),
            (r#"{"amount_cents": 1, "scheme": "张三"}"#, "张三"),
        ] {
            let error = serde_json::from_str::<Row>(text).expect_err("does not decode");
            assert!(
                error.to_string().contains(value),
                "serde quotes it: {error}"
            );
            let shown = Error::unreadable("stored row", &error).to_string();
            assert!(shown.starts_with("internal: stored row unreadable: a value of the wrong type or shape at line 1 column "), "{shown}");
            assert!(!shown.contains(value), "{shown}");
        }
    }
}
