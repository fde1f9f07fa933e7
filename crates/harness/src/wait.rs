//! Waiting with a deadline: polling a transfer until it reaches a state (or ends otherwise), and
//! the loop under every wait of the harness, which keeps what it last saw for the error.

use std::time::Duration;

use tokio::time::Instant;
use tonic::transport::Channel;
use yibao_proto::bureau::v1::bureau_service_client::BureauServiceClient;
use yibao_proto::bureau::v1::{GetTransferRequest, Transfer};
use yibao_proto::common::v1::TransferState;

use crate::process::LogFiles;
use crate::{HarnessError, code_name};

/// How often a wait looks again.
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// The deadline of one poll's `GetTransfer` call.
const POLL_CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// What one look found.
pub(crate) enum Look<T> {
    /// What was awaited.
    Done(T),
    /// Not yet; what was seen instead, for the error at the deadline.
    Waiting(String),
}

/// Looks until `look` finds what was awaited, or fails with [`HarnessError::Timeout`] (naming
/// `what`, the last thing seen and `logs`) at the deadline; an error of a look ends the wait.
pub(crate) async fn until<T>(
    what: &str,
    logs: &LogFiles,
    deadline: Duration,
    mut look: impl AsyncFnMut() -> Result<Look<T>, HarnessError>,
) -> Result<T, HarnessError> {
    let started = Instant::now();
    loop {
        let last_seen = match look().await? {
            Look::Done(value) => return Ok(value),
            Look::Waiting(seen) => seen,
        };
        if started.elapsed() >= deadline {
            return Err(HarnessError::Timeout {
                what: what.to_owned(),
                waited: deadline,
                last_seen,
                logs: logs.clone(),
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// One bureau whose transfers a wait polls.
#[derive(Debug)]
pub(crate) struct Watched<'a> {
    /// A client of its `BureauService`.
    pub(crate) client: BureauServiceClient<Channel>,
    /// `transfer-out` or `transfer-in`.
    pub(crate) service: &'static str,
    /// Its logs, named in errors.
    pub(crate) logs: &'a LogFiles,
}

impl Watched<'_> {
    /// Polls `GetTransfer` until `predicate` accepts the transfer (see [`Watched::poll`]).
    pub(crate) async fn matching(
        &self,
        transfer_id: &str,
        predicate: impl FnMut(&Transfer) -> bool,
        deadline: Duration,
    ) -> Result<Transfer, HarnessError> {
        let what = format!("transfer {transfer_id} at {} to match", self.service);
        self.poll(transfer_id, &what, predicate, |_| false, deadline)
            .await
    }

    /// Waits until the transfer is in `state`; fails early with
    /// [`HarnessError::EndedOtherwise`] when it reaches a different terminal state.
    pub(crate) async fn state(
        &self,
        transfer_id: &str,
        state: TransferState,
        deadline: Duration,
    ) -> Result<Transfer, HarnessError> {
        let what = format!(
            "transfer {transfer_id} at {} to reach {}",
            self.service,
            state_name(state)
        );
        let elsewhere = |transfer: &Transfer| is_terminal(transfer.state());
        let arrived = |transfer: &Transfer| transfer.state() == state;
        self.poll(transfer_id, &what, arrived, elsewhere, deadline)
            .await
    }

    /// Waits until the transfer is in a terminal state.
    pub(crate) async fn terminal(
        &self,
        transfer_id: &str,
        deadline: Duration,
    ) -> Result<Transfer, HarnessError> {
        let what = format!(
            "transfer {transfer_id} at {} to reach a terminal state",
            self.service
        );
        let terminal = |transfer: &Transfer| is_terminal(transfer.state());
        self.poll(transfer_id, &what, terminal, |_| false, deadline)
            .await
    }

    /// Polls `GetTransfer` until `done` accepts the transfer; fails early with
    /// [`HarnessError::EndedOtherwise`] when `failed` does. `NOT_FOUND` (the transfer has not
    /// reached this bureau yet), `UNAVAILABLE` (it is restarting) and `DEADLINE_EXCEEDED` are
    /// polled through; any other error status ends the wait.
    async fn poll(
        &self,
        transfer_id: &str,
        what: &str,
        mut done: impl FnMut(&Transfer) -> bool,
        mut failed: impl FnMut(&Transfer) -> bool,
        deadline: Duration,
    ) -> Result<Transfer, HarnessError> {
        until(what, self.logs, deadline, async || {
            let mut request = tonic::Request::new(GetTransferRequest {
                transfer_id: transfer_id.to_owned(),
            });
            request.set_timeout(POLL_CALL_TIMEOUT);
            match self.client.clone().get_transfer(request).await {
                Ok(answer) => match answer.into_inner().transfer {
                    Some(transfer) if done(&transfer) => Ok(Look::Done(transfer)),
                    Some(transfer) if failed(&transfer) => Err(HarnessError::EndedOtherwise {
                        what: what.to_owned(),
                        last_seen: describe(&transfer),
                        logs: self.logs.clone(),
                    }),
                    Some(transfer) => Ok(Look::Waiting(describe(&transfer))),
                    None => Ok(Look::Waiting("an answer without a transfer".to_owned())),
                },
                Err(status) if worth_polling_through(status.code()) => Ok(Look::Waiting(format!(
                    "{}: {}",
                    code_name(status.code()),
                    status.message()
                ))),
                Err(status) => Err(HarnessError::rpc(self.service, "GetTransfer")(status)),
            }
        })
        .await
    }
}

/// Whether the poll should keep going after this status.
fn worth_polling_through(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::NotFound | tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
    )
}

/// Whether a transfer in `state` will never change again.
pub fn is_terminal(state: TransferState) -> bool {
    matches!(
        state,
        TransferState::Completed
            | TransferState::Rejected
            | TransferState::Returned
            | TransferState::PaidToBank
            | TransferState::Aborted
    )
}

/// A state's name without the `TRANSFER_STATE_` prefix, for example `COMPLETED`.
pub fn state_name(state: TransferState) -> &'static str {
    let name = state.as_str_name();
    name.strip_prefix("TRANSFER_STATE_").unwrap_or(name)
}

/// A one-line description of a transfer for messages: its state and its last step.
fn describe(transfer: &Transfer) -> String {
    let mut text = format!("state {}", state_name(transfer.state()));
    if let Some(step) = transfer.history.last() {
        text.push_str(&format!(", last step {}", step.kind));
        if !step.detail.is_empty() {
            text.push_str(&format!(" ({})", step.detail));
        }
    }
    if transfer.refusal_reason != 0 {
        text.push_str(&format!(
            ", refusal {}",
            transfer.refusal_reason().as_str_name()
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_states_are_exactly_the_five_of_the_contract() {
        let terminal: Vec<_> = (0..=13)
            .filter_map(|value| TransferState::try_from(value).ok())
            .filter(|state| is_terminal(*state))
            .map(state_name)
            .collect();
        assert_eq!(
            terminal,
            [
                "COMPLETED",
                "REJECTED",
                "RETURNED",
                "PAID_TO_BANK",
                "ABORTED"
            ]
        );
    }

    #[tokio::test]
    async fn a_wait_that_never_sees_its_condition_names_what_it_saw_last() {
        let logs = LogFiles::in_directory(std::path::Path::new("/data"), "transfer-in");
        let error = until::<()>("nothing", &logs, Duration::ZERO, async || {
            Ok(Look::Waiting("still nothing".to_owned()))
        })
        .await
        .expect_err("times out");
        let text = error.to_string();
        assert!(
            text.contains("still nothing") && text.contains("transfer-in.log"),
            "{text}"
        );
    }
}
