//! The operator's commands: the transfers waiting for a person (`yibao transfers --state`),
//! resolving one (`yibao resolve`), and the outbox's parked messages (`yibao outbox list`,
//! `yibao outbox retry`). Each is one admin or bureau call; the bureau records who and why.

use serde_json::json;
use yibao_harness::Side;
use yibao_proto::admin::v1::{
    ListOutboxMessagesRequest, ResolveOutcome, ResolveTransferRequest, RetryOutboxMessagesRequest,
};
use yibao_proto::bureau::v1::ListTransfersRequest;
use yibao_proto::common::v1::TransferState;

use crate::Outcome;
use crate::args::{OutboxListArgs, OutboxRetryArgs, OutcomeArg, ResolveArgs, TransfersArgs};
use crate::connect::Endpoints;
use crate::error::CliError;
use crate::output::{Output, transfer_brief, transfer_json};

/// `yibao transfers --state STATE`: a bureau's open transfers in one state.
pub async fn transfers(
    args: &TransfersArgs,
    endpoints: &Endpoints,
    output: Output,
) -> Result<Outcome, CliError> {
    let service = Side::from(args.bureau).service();
    let state = TransferState::from_str_name(&format!(
        "TRANSFER_STATE_{}",
        args.state.to_uppercase().replace('-', "_")
    ))
    .ok_or_else(|| CliError::Failed(format!("unknown state {:?}", args.state)))?;
    let answer = endpoints
        .bureau(args.bureau)
        .await?
        .list_transfers(ListTransfersRequest {
            certno: String::new(),
            state: state as i32,
        })
        .await
        .map_err(CliError::rpc(service, "ListTransfers"))?
        .into_inner();
    let values: Vec<_> = answer.transfers.iter().map(transfer_json).collect();
    output.emit(&json!({ "transfers": values }), || {
        if answer.transfers.is_empty() {
            return "no transfer in that state".to_owned();
        }
        let lines: Vec<String> = answer.transfers.iter().map(transfer_brief).collect();
        lines.join("\n")
    });
    Ok(Outcome::Success)
}

/// `yibao resolve`: records an operator's resolution of a transfer waiting for one, at the
/// bureau whose outcome it is: returning a held remittance at the transfer-in bureau, the
/// others at the transfer-out bureau.
pub async fn resolve(
    args: &ResolveArgs,
    endpoints: &Endpoints,
    output: Output,
) -> Result<Outcome, CliError> {
    use crate::args::Bureau;
    let (outcome, bureau) = match args.outcome {
        OutcomeArg::Credited => (ResolveOutcome::Credited, Bureau::Out),
        OutcomeArg::NotCredited => (ResolveOutcome::NotCredited, Bureau::Out),
        OutcomeArg::ReturnRemittance => (ResolveOutcome::ReturnRemittance, Bureau::In),
        OutcomeArg::RemittanceReturned => (ResolveOutcome::RemittanceReturned, Bureau::Out),
    };
    let service = Side::from(bureau).service();
    let answer = endpoints
        .admin(bureau)
        .await?
        .resolve_transfer(ResolveTransferRequest {
            transfer_id: args.transfer_id.clone(),
            operator: args.operator.clone(),
            reason: args.reason.clone(),
            outcome: outcome as i32,
        })
        .await
        .map_err(CliError::rpc(service, "ResolveTransfer"))?
        .into_inner();
    let state = yibao_harness::state_name(answer.state());
    output.emit(
        &json!({"transfer_id": args.transfer_id, "state": state}),
        || format!("{} resolved: now {state}", args.transfer_id),
    );
    Ok(Outcome::Success)
}

/// `yibao outbox list`: a bureau's parked messages.
pub async fn outbox_list(
    args: &OutboxListArgs,
    endpoints: &Endpoints,
    output: Output,
) -> Result<Outcome, CliError> {
    let service = Side::from(args.bureau).service();
    let answer = endpoints
        .admin(args.bureau)
        .await?
        .list_outbox_messages(ListOutboxMessagesRequest {})
        .await
        .map_err(CliError::rpc(service, "ListOutboxMessages"))?
        .into_inner();
    let values: Vec<_> = answer
        .messages
        .iter()
        .map(|message| {
            json!({
                "message_id": message.message_id,
                "transfer_id": message.transfer_id,
                "kind": message.kind,
                "peer": message.peer,
                "msgid": message.msgid,
                "attempts": message.attempts,
                "last_error": message.last_error,
            })
        })
        .collect();
    output.emit(&json!({ "messages": values }), || {
        if answer.messages.is_empty() {
            return format!("{service}: no parked message");
        }
        let lines: Vec<String> = answer
            .messages
            .iter()
            .map(|message| {
                format!(
                    "{:>6}  {}  {:<20} to {:<6}  {} attempts  {}",
                    message.message_id,
                    message.transfer_id,
                    message.kind,
                    message.peer,
                    message.attempts,
                    message.last_error
                )
            })
            .collect();
        lines.join("\n")
    });
    Ok(Outcome::Success)
}

/// `yibao outbox retry`: makes parked messages due now.
pub async fn outbox_retry(
    args: &OutboxRetryArgs,
    endpoints: &Endpoints,
    output: Output,
) -> Result<Outcome, CliError> {
    let service = Side::from(args.bureau).service();
    let answer = endpoints
        .admin(args.bureau)
        .await?
        .retry_outbox_messages(RetryOutboxMessagesRequest {
            message_id: args.message_id.unwrap_or(0),
            all: args.all,
            operator: args.operator.clone(),
        })
        .await
        .map_err(CliError::rpc(service, "RetryOutboxMessages"))?
        .into_inner();
    output.emit(&json!({"retried": answer.retried}), || {
        format!("{service}: {} message(s) due again", answer.retried)
    });
    Ok(Outcome::Success)
}
