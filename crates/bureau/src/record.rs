//! Saving and loading transfer documents, their history, deadlines, and the journal accounts.
//!
//! Account names: `person:<certno>` (a personal account), `transit` (balances that left a
//! personal account and have not arrived), `settled:<region>` (settled to a transfer-in region),
//! `bank` (paid to people's bank accounts), `platform:<region>` (what arrived from a transfer-out
//! region), `opening` (the source of seeded balances).

use std::cell::RefCell;
use std::sync::Arc;

use chrono::NaiveDate;
use yibao_domain::calendar::StatutoryDeadlines;
use yibao_store::{EventRow, Posting, TransferRow, Tx};

use crate::document::TransferDocument;
use crate::error::Error;
use crate::state::Bureau;

/// A watched transfer as a step left it: the watchers' entry it was collected for, its version
/// (the seq of the event the save appended), the document and the whole history.
type Changed = (u64, u32, TransferDocument, Vec<EventRow>);

thread_local! {
    /// The watched transfers the current store job saved, in the writer thread: collected by
    /// [`save`], taken at the end of the job by [`write()`] and published after the commit.
    static CHANGED: RefCell<Vec<Changed>> = const { RefCell::new(Vec::new()) };
}

/// Runs `work` as one store job (as `Store::write`) and, once it is committed, hands the
/// watchers of every transfer it saved the new state, so they need not read it back.
pub async fn write<T, E, F>(bureau: &Arc<Bureau>, work: F) -> Result<T, E>
where
    F: FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<yibao_store::Error> + Send + 'static,
{
    let (value, changed) = bureau.store.write(collecting(work)).await?;
    publish(bureau, changed);
    Ok(value)
}

/// As [`write()`], for several independent jobs sharing one group commit (`Store::write_each`).
pub async fn write_each<T, E, F>(bureau: &Arc<Bureau>, works: Vec<F>) -> Vec<Result<T, E>>
where
    F: FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<yibao_store::Error> + Send + 'static,
{
    let jobs: Vec<_> = works.into_iter().map(collecting).collect();
    bureau
        .store
        .write_each(jobs)
        .await
        .into_iter()
        .map(|result| {
            result.map(|(value, changed)| {
                publish(bureau, changed);
                value
            })
        })
        .collect()
}

/// Wraps a job so that it returns the watched transfers it saved.
fn collecting<T, E>(
    work: impl FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
) -> impl FnOnce(&mut dyn Tx) -> Result<(T, Vec<Changed>), E> + Send + 'static {
    move |tx| {
        // Whatever an earlier job left (one that failed, or was not collected) is not ours.
        CHANGED.with(|changed| changed.borrow_mut().clear());
        let value = work(tx)?;
        Ok((value, CHANGED.with(|changed| changed.take())))
    }
}

/// Offers committed snapshots to the watchers.
fn publish(bureau: &Bureau, changed: Vec<Changed>) {
    for (generation, version, document, events) in changed {
        let transfer = crate::convert::wire_transfer(bureau, &document, &events);
        bureau.watchers.offer(
            &document.transfer_id,
            generation,
            version,
            Arc::new(transfer),
        );
    }
}

/// Posting reasons, summed by the ledger totals.
pub mod reason {
    /// Seeded opening balance.
    pub const OPENING: &str = "opening_balance";
    /// Personal account → in transit.
    pub const DEBIT_TO_TRANSIT: &str = "debit_to_transit";
    /// In transit → settled to the transfer-in region.
    pub const SETTLE: &str = "settle_to_transfer_in";
    /// In transit → back to the personal account.
    pub const REVERSE: &str = "reverse_to_account";
    /// In transit → the person's bank account.
    pub const PAY_TO_BANK: &str = "pay_to_bank";
    /// Arrived from the transfer-out region → personal account.
    pub const CREDIT: &str = "credit_from_platform";
}

/// The personal account of `certno`.
pub fn person_account(certno: &str) -> String {
    format!("person:{certno}")
}

/// Posts `amount_cents` from one account to another for a transfer (nothing for zero).
pub fn post(
    tx: &mut dyn Tx,
    bureau: &Bureau,
    from: String,
    to: String,
    amount_cents: u64,
    transfer_id: &str,
    why: &str,
) -> Result<(), Error> {
    if amount_cents == 0 {
        return Ok(());
    }
    let amount = i64::try_from(amount_cents)
        .map_err(|_| Error::Internal("amount does not fit the journal".to_owned()))?;
    tx.post(&Posting {
        from_account: from,
        to_account: to,
        amount_cents: amount,
        transfer_id: Some(transfer_id.to_owned()),
        reason: why.to_owned(),
        at: bureau.clock.now(),
    })?;
    Ok(())
}

/// Mints the id of a transfer applied for today at `region`: the region, the date (China
/// time) and this bureau's durable sequence for the day.
pub fn mint_transfer_id(
    tx: &mut dyn Tx,
    bureau: &Bureau,
    region: yibao_domain::region::RegionCode,
) -> Result<String, Error> {
    let today = bureau.clock.today();
    let sequence = tx.next_sequence(&format!("transfer:{today}"))?;
    u32::try_from(sequence)
        .ok()
        .and_then(|sequence| yibao_domain::transfer::TransferId::new(region, today, sequence))
        .map(|id| id.to_string())
        .ok_or_else(|| Error::FailedPrecondition("too many transfers today".to_owned()))
}

/// The statutory deadlines of a transfer applied on `applied_on`.
pub fn deadlines(
    bureau: &Bureau,
    applied_on: NaiveDate,
    form_received_on: Option<NaiveDate>,
) -> Option<StatutoryDeadlines> {
    StatutoryDeadlines::statutory(&bureau.calendar, applied_on, form_received_on).ok()
}

/// Loads a transfer document.
pub fn load(tx: &mut dyn Tx, transfer_id: &str) -> Result<Option<TransferDocument>, Error> {
    match tx.transfer(transfer_id)? {
        None => Ok(None),
        Some(row) => serde_json::from_str(&row.document)
            .map(Some)
            .map_err(|error| {
                Error::Internal(format!("stored transfer document unreadable: {error}"))
            }),
    }
}

/// What happened, for the history.
#[derive(Debug)]
pub struct Happening<'a> {
    /// The event's stable name.
    pub kind: &'a str,
    /// The state before (empty for a new transfer).
    pub from_state: &'a str,
    /// A sentence without personal data.
    pub detail: String,
    /// The delivery attempt this came from (0 when not a delivery).
    pub attempt: u32,
}

/// Inserts (`new`) or updates a transfer and appends one history event, in the caller's
/// transaction.
pub fn save(
    tx: &mut dyn Tx,
    bureau: &Bureau,
    document: &mut TransferDocument,
    new: bool,
    happening: Happening<'_>,
) -> Result<(), Error> {
    let now = bureau.clock.now();
    document.updated_at = now;
    let due = deadlines(bureau, document.applied_on, document.form_received_on)
        .map(|deadlines| deadlines.whole_process_due.due_on);
    let row = TransferRow {
        transfer_id: document.transfer_id.clone(),
        certno: document.certno.clone(),
        state: document.state.name().to_owned(),
        open: !document.state.is_terminal(),
        whole_process_due_on: due,
        created_at: document.created_at,
        updated_at: now,
        document: serde_json::to_string(document)
            .map_err(|error| Error::Internal(format!("transfer document: {error}")))?,
    };
    if new {
        tx.insert_transfer(&row)?;
    } else {
        tx.update_transfer(&row)?;
    }
    let version = tx.append_event(&EventRow {
        transfer_id: document.transfer_id.clone(),
        seq: 0,
        at: now,
        kind: happening.kind.to_owned(),
        from_state: happening.from_state.to_owned(),
        to_state: document.state.name().to_owned(),
        detail: happening.detail,
        attempt: happening.attempt,
    })?;
    // Before the commit: from now on no older snapshot is handed out, even if this job is
    // undone. After the commit, `write` offers this one.
    if let Some(generation) = bureau.watchers.saving(&document.transfer_id, version) {
        let events = tx.events(&document.transfer_id)?;
        CHANGED.with(|changed| {
            changed
                .borrow_mut()
                .push((generation, version, document.clone(), events));
        });
    }
    Ok(())
}

/// Appends a history event without changing the transfer (delivery attempts, retries).
pub fn note(
    tx: &mut dyn Tx,
    bureau: &Bureau,
    transfer_id: &str,
    state: &str,
    kind: &str,
    detail: String,
    attempt: u32,
) -> Result<(), Error> {
    tx.append_event(&EventRow {
        transfer_id: transfer_id.to_owned(),
        seq: 0,
        at: bureau.clock.now(),
        kind: kind.to_owned(),
        from_state: state.to_owned(),
        to_state: state.to_owned(),
        detail,
        attempt,
    })?;
    Ok(())
}
