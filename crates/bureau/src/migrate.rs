//! What a new release does once to the data an earlier one left, at start-up, before serving.
//!
//! - **Document format 2.** Transfer documents of the previous release stored the flow and the
//!   balance's disposition as wire enum numbers and the machine state in a mirror of its own;
//!   they are rewritten in the current format ([`TransferDocument`]) in chunks, and a setting
//!   records that it was done. After this, a document that does not decode is an error.
//! - **Transfers left CREDITED.** An earlier version waited in CREDITED for a settlement
//!   confirmation that is no longer sent (the credit completes a transfer now): those complete.

use serde::Deserialize;
use yibao_domain::application::BankAccount;
use yibao_domain::classify::{RetireePayout, Settlement};
use yibao_domain::transfer::in_side::{InEvent, InState};
use yibao_domain::transfer::out_side::{AbortFallback, BalanceRoute, OutState};
use yibao_domain::transfer::{Initiator, RefusalReason, TransferState};
use yibao_store::Tx;

use crate::convert;
use crate::document::TransferDocument;
use crate::error::Error;
use crate::record;
use crate::services::Services;
use crate::transfer_in;

/// The setting that records the document format of a data directory.
pub const FORMAT_SETTING: &str = "transfer_document_format";
/// The current document format.
pub const FORMAT: &str = "2";
/// Transfers rewritten (or completed) per store job.
const CHUNK: u32 = 500;

/// Runs every migration; returns how many documents were rewritten.
pub async fn run(services: &Services) -> Result<u64, Error> {
    let rewritten = upgrade_documents(services).await?;
    if rewritten > 0 {
        tracing::info!(
            rewritten,
            "transfer documents rewritten in the current format"
        );
    }
    complete_credited(services).await?;
    Ok(rewritten)
}

/// Rewrites every document of the previous format, once per data directory.
pub async fn upgrade_documents(services: &Services) -> Result<u64, Error> {
    let done = services.store.read(|tx| tx.setting(FORMAT_SETTING)).await?;
    if done.as_deref() == Some(FORMAT) {
        return Ok(0);
    }
    let mut after = String::new();
    let mut rewritten = 0;
    loop {
        let from = after.clone();
        let (last, count, upgraded) = services
            .store
            .write(move |tx| upgrade_chunk(tx, &from))
            .await?;
        rewritten += upgraded;
        match last {
            Some(last) if count == CHUNK as usize => after = last,
            _ => break,
        }
    }
    services
        .store
        .write(|tx| tx.put_setting(FORMAT_SETTING, FORMAT))
        .await?;
    Ok(rewritten)
}

/// Rewrites the legacy documents among the next chunk of transfers after `after`; returns the
/// last id seen, how many were seen, and how many were rewritten.
fn upgrade_chunk(tx: &mut dyn Tx, after: &str) -> Result<(Option<String>, usize, u64), Error> {
    let rows = tx.transfers_after(after, CHUNK)?;
    let mut upgraded = 0;
    for mut row in rows.iter().cloned() {
        if record::decode_document(&row.document).is_ok() {
            continue;
        }
        // One unreadable row stops the start-up, naming it: serving on with a document that
        // neither release can read would only fail later, at that transfer's next step.
        let document = upgrade(&row.document)
            .map_err(|error| Error::Internal(format!("transfer {}: {error}", row.transfer_id)))?;
        row.document = serde_json::to_string(&document)
            .map_err(|error| Error::Internal(format!("transfer document: {error}")))?;
        tx.update_transfer(&row)?;
        upgraded += 1;
    }
    let last = rows.last().map(|row| row.transfer_id.clone());
    Ok((last, rows.len(), upgraded))
}

/// A document of the previous format, in the current one.
pub fn upgrade(text: &str) -> Result<TransferDocument, Error> {
    let old: legacy::Document = serde_json::from_str(text)
        .map_err(|error| Error::unreadable("stored transfer document, in any format,", &error))?;
    let flow = convert::flow(old.flow_kind);
    Ok(TransferDocument {
        transfer_id: old.transfer_id,
        initiator: old.initiator,
        state: old.state.upgrade(),
        certno: old.certno,
        psn_name: old.psn_name,
        trafout_admdvs: old.trafout_admdvs,
        trafin_admdvs: old.trafin_admdvs,
        flow,
        balance: convert::disposition(old.balance_disposition, flow),
        amount_cents: old.amount_cents,
        contribution_months: old.contribution_months,
        bank_account: old.bank_account,
        retiree_payout: if old.retiree_payout_requested {
            RetireePayout::Requested
        } else {
            RetireePayout::NotRequested
        },
        in_scheme: None,
        // Earlier formats did not keep it; their reviews were decided at once anyway.
        channel: yibao_domain::application::ApplicationChannel::Online,
        continuity: None,
        settlement: if old.instant {
            Settlement::Instant
        } else {
            Settlement::Asynchronous
        },
        applied_on: old.applied_on,
        form_received_on: old.form_received_on,
        remittance_due_on: None,
        remit_on: None,
        trace: None,
        remittance_msgid: None,
        held_cents: 0,
        created_at: old.created_at,
        updated_at: old.updated_at,
    })
}

/// Completes the transfer-in transfers an earlier version left in CREDITED.
pub async fn complete_credited(services: &Services) -> Result<(), Error> {
    loop {
        let completed = services
            .write(move |step| -> Result<usize, Error> {
                // Due date or not: an earlier release may have stored a transfer without one.
                let credited = step.tx.open_transfers_in_state("CREDITED", CHUNK)?;
                for row in &credited {
                    let detail = "completed: the credit completes the transfer".to_owned();
                    let event = InEvent::SettlementConfirmed;
                    transfer_in::apply(step, &row.transfer_id, event, detail, 0)?;
                }
                Ok(credited.len())
            })
            .await?;
        if completed > 0 {
            tracing::info!(
                completed,
                "completed transfers left credited by an earlier version"
            );
        }
        if completed < CHUNK as usize {
            return Ok(());
        }
    }
}

/// The previous release's document, read only here.
mod legacy {
    use chrono::{DateTime, NaiveDate, Utc};

    use super::*;

    #[derive(Deserialize)]
    pub(super) struct Document {
        pub transfer_id: String,
        pub initiator: Initiator,
        pub state: Stored,
        pub certno: String,
        pub psn_name: String,
        pub trafout_admdvs: String,
        pub trafin_admdvs: String,
        pub flow_kind: i32,
        pub balance_disposition: i32,
        pub amount_cents: u64,
        pub contribution_months: u32,
        pub bank_account: Option<BankAccount>,
        pub retiree_payout_requested: bool,
        pub instant: bool,
        pub applied_on: NaiveDate,
        pub form_received_on: Option<NaiveDate>,
        pub created_at: DateTime<Utc>,
        pub updated_at: DateTime<Utc>,
    }

    #[derive(Deserialize)]
    #[serde(tag = "state", rename_all = "snake_case")]
    pub(super) enum Stored {
        Out(StoredOut),
        In(StoredIn),
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub(super) enum StoredOut {
        InTransit { route: Route },
        Aborting { route: Route, pay_to_bank: bool },
        PayoutPending,
        Completed,
        Rejected { reason: String },
        Returned { reason: String },
        PaidToBank,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub(super) enum StoredIn {
        Applied,
        Requested,
        Credited,
        Completed,
        Rejected { reason: String },
        Aborted,
    }

    #[derive(Clone, Copy, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub(super) enum Route {
        MovesWithForm,
        ToBankAfterCredit,
        StaysPut,
    }

    /// A stored reason code; the previous release read an unknown one as "aborted".
    fn reason(code: &str) -> RefusalReason {
        RefusalReason::from_code(code).unwrap_or(RefusalReason::Aborted)
    }

    impl Route {
        fn upgrade(self) -> BalanceRoute {
            match self {
                Route::MovesWithForm => BalanceRoute::MovesWithForm,
                Route::ToBankAfterCredit => BalanceRoute::ToBankAfterCredit,
                Route::StaysPut => BalanceRoute::StaysPut,
            }
        }
    }

    impl Stored {
        pub(super) fn upgrade(self) -> TransferState {
            match self {
                Stored::Out(out) => TransferState::Out(match out {
                    StoredOut::InTransit { route } => OutState::InTransit {
                        balance: route.upgrade(),
                    },
                    StoredOut::Aborting { route, pay_to_bank } => OutState::Aborting {
                        balance: route.upgrade(),
                        fallback: match pay_to_bank {
                            true => AbortFallback::PayToBank,
                            false => AbortFallback::ReturnToAccount,
                        },
                    },
                    StoredOut::PayoutPending => OutState::PayoutPending,
                    StoredOut::Completed => OutState::Completed,
                    StoredOut::Rejected { reason: code } => OutState::Rejected(reason(&code)),
                    StoredOut::Returned { reason: code } => OutState::Returned(reason(&code)),
                    StoredOut::PaidToBank => OutState::PaidToBank,
                }),
                Stored::In(state) => TransferState::In(match state {
                    StoredIn::Applied => InState::Applied,
                    StoredIn::Requested => InState::Requested,
                    StoredIn::Credited => InState::Credited,
                    StoredIn::Completed => InState::Completed,
                    StoredIn::Rejected { reason: code } => InState::Rejected(reason(&code)),
                    StoredIn::Aborted => InState::Aborted,
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests;
