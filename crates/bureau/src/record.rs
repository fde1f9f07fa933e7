//! One protocol step's unit of work ([`Step`]): the store transaction, the step's context, and
//! the changes it made, which the step hands back explicitly to whoever notifies watchers — and
//! what a step reads and writes through it: transfer documents (checked after reading: one that
//! does not decode is an error, never a default), their history, postings, person facts, and
//! the ids it mints (msgids and answer references, transfer ids).

use std::sync::Arc;

use chrono::DateTime;
use yibao_domain::region::RegionCode;
use yibao_domain::transfer::TransferId;
use yibao_runtime::clock::china_time;
use yibao_store::{EventRow, Posting, TransferRow, Tx};

use crate::context::StepContext;
use crate::document::TransferDocument;
use crate::error::Error;
use crate::journal::{Movement, account};
use crate::persons::{PersonRecord, person_record};
use crate::watchers::{Snapshot, Watchers};

/// Whether a step marks the transfers it creates as watched before saving them: an
/// application is usually followed by a watch at once, and a watched transfer's saves offer
/// their snapshots, so the watch starts without reading the transfer back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchHint {
    /// Save as usual.
    Nothing,
    /// Expect a watcher for every transfer this step creates.
    ExpectWatchOfNew,
}

/// A snapshot a step collected for the watchers, offered after its commit.
#[derive(Debug)]
pub struct Offer {
    /// The watchers' entry it was collected for.
    pub generation: u64,
    /// The seq of the history event the save appended.
    pub version: u32,
    /// The transfer as the step left it.
    pub snapshot: Arc<Snapshot>,
}

/// What a committed step changed: who to wake, and which snapshots to offer.
#[derive(Debug, Default)]
pub struct Changes {
    /// Every transfer the step saved or noted, in order (duplicates possible).
    pub touched: Vec<String>,
    /// Snapshots of the watched transfers it saved.
    pub offers: Vec<Offer>,
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

/// How a save writes the transfer row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Write {
    Insert,
    Update,
}

/// One protocol step inside one store job.
pub struct Step<'a> {
    /// The job's transaction.
    pub tx: &'a mut dyn Tx,
    /// The step's time and site.
    pub ctx: &'a StepContext,
    watchers: &'a Watchers,
    hint: WatchHint,
    changes: Changes,
}

impl std::fmt::Debug for Step<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Step")
            .field("now", &self.ctx.now)
            .field("changes", &self.changes)
            .finish_non_exhaustive()
    }
}

impl<'a> Step<'a> {
    /// A step over `tx` (built by `Services`, which publishes its changes after the commit).
    pub(crate) fn new(
        tx: &'a mut dyn Tx,
        ctx: &'a StepContext,
        watchers: &'a Watchers,
        hint: WatchHint,
    ) -> Self {
        Self {
            tx,
            ctx,
            watchers,
            hint,
            changes: Changes::default(),
        }
    }

    /// What the step changed, to hand to the watchers once committed.
    pub fn into_changes(self) -> Changes {
        self.changes
    }

    /// The transfer as this step left it: the snapshot its last save collected for the
    /// watchers, or else the document with its history read back.
    pub fn as_left(&mut self, document: TransferDocument) -> Result<Arc<Snapshot>, Error> {
        let collected = self
            .changes
            .offers
            .iter()
            .rev()
            .find(|offer| offer.snapshot.document.transfer_id == document.transfer_id);
        if let Some(offer) = collected {
            return Ok(offer.snapshot.clone());
        }
        let events = self.tx.events(&document.transfer_id)?;
        Ok(Arc::new(Snapshot { document, events }))
    }

    /// Loads a transfer document.
    pub fn load(&mut self, transfer_id: &str) -> Result<Option<TransferDocument>, Error> {
        load(self.tx, transfer_id)
    }

    /// Loads a transfer that must exist (`NOT_FOUND` otherwise).
    pub fn load_existing(&mut self, transfer_id: &str) -> Result<TransferDocument, Error> {
        self.load(transfer_id)?
            .ok_or_else(|| Error::NotFound(format!("transfer {transfer_id}")))
    }

    /// The person with this ID number, decoded and checked.
    pub fn person(&mut self, certno: &str) -> Result<Option<PersonRecord>, Error> {
        self.tx.person(certno)?.map(person_record).transpose()
    }

    /// Stores a new transfer and its first history event.
    pub fn insert(
        &mut self,
        document: &mut TransferDocument,
        happening: Happening<'_>,
    ) -> Result<(), Error> {
        if self.hint == WatchHint::ExpectWatchOfNew {
            self.watchers.expect(&document.transfer_id);
        }
        self.save(document, Write::Insert, happening)
    }

    /// Stores a changed transfer and one history event.
    pub fn update(
        &mut self,
        document: &mut TransferDocument,
        happening: Happening<'_>,
    ) -> Result<(), Error> {
        self.save(document, Write::Update, happening)
    }

    fn save(
        &mut self,
        document: &mut TransferDocument,
        write: Write,
        happening: Happening<'_>,
    ) -> Result<(), Error> {
        let now = self.ctx.now;
        document.updated_at = now;
        if document.trace.is_none() {
            // The span that opened the transfer here (or the first traced step of one opened
            // with traces off): every later step and message of the transfer joins its trace.
            document.trace = crate::trace::current();
        }
        tracing::debug!(
            event = happening.kind,
            from = happening.from_state,
            to = document.state.name(),
            "transfer saved"
        );
        let row = row_of(self.ctx, document)?;
        match write {
            Write::Insert => self.tx.insert_transfer(&row)?,
            Write::Update => self.tx.update_transfer(&row)?,
        }
        let version = self.tx.append_event(&EventRow {
            transfer_id: document.transfer_id.clone(),
            seq: 0,
            at: now,
            kind: happening.kind.to_owned(),
            from_state: happening.from_state.to_owned(),
            to_state: row.state,
            detail: happening.detail,
            attempt: happening.attempt,
        })?;
        self.changes.touched.push(document.transfer_id.clone());
        // Before the commit: from now on no older snapshot is handed out, even if this job is
        // undone. After the commit, the snapshot collected here is offered.
        if let Some(generation) = self.watchers.saving(&document.transfer_id, version) {
            let events = self.tx.events(&document.transfer_id)?;
            self.changes.offers.push(Offer {
                generation,
                version,
                snapshot: Arc::new(Snapshot {
                    document: document.clone(),
                    events,
                }),
            });
        }
        Ok(())
    }

    /// Appends a history event without changing the transfer (delivery attempts, retries).
    pub fn note(&mut self, transfer_id: &str, happening: Happening<'_>) -> Result<(), Error> {
        self.tx.append_event(&EventRow {
            transfer_id: transfer_id.to_owned(),
            seq: 0,
            at: self.ctx.now,
            kind: happening.kind.to_owned(),
            from_state: happening.from_state.to_owned(),
            to_state: happening.from_state.to_owned(),
            detail: happening.detail,
            attempt: happening.attempt,
        })?;
        self.changes.touched.push(transfer_id.to_owned());
        Ok(())
    }

    /// Posts one movement of money (nothing for zero).
    pub fn post(&mut self, movement: Movement<'_>) -> Result<(), Error> {
        if movement.amount_cents == 0 {
            return Ok(());
        }
        let amount = i64::try_from(movement.amount_cents)
            .map_err(|_| Error::Internal("amount does not fit the journal".to_owned()))?;
        self.tx.post(&Posting {
            from_account: movement.from,
            to_account: movement.to,
            amount_cents: amount,
            transfer_id: Some(movement.transfer_id.to_owned()),
            reason: movement.reason.to_owned(),
            at: self.ctx.now,
        })?;
        Ok(())
    }

    /// The cached balance of a person's account, in cents.
    pub fn balance_of(&mut self, certno: &str) -> Result<u64, Error> {
        let cents = self.tx.balance(&account::person(certno))?;
        u64::try_from(cents)
            .map_err(|_| Error::Internal("a personal account is negative".to_owned()))
    }

    /// Mints a 30-character msgid: institution code (12) + yyyyMMddHHmmss (14) + sequence (4),
    /// for a message this bureau sends (`outbox::queue`) and for the reference of an answer it
    /// gives (`inbox`): one counter for both, so neither ever equals the other.
    ///
    /// The time and sequence come from one durable counter, `second × 10,000 + sequence`, that
    /// moves to at least the current second and otherwise by one: ids never repeat, across
    /// restarts too, and a burst of more than 10,000 ids in one second borrows the next seconds'
    /// numbers instead of wrapping around (the id's time then runs ahead of the clock by at most
    /// the burst's excess, and falls back as soon as the rate does). The counter counts seconds
    /// since the Unix epoch; the id writes its second in China Standard Time, as every platform
    /// date and time is written (DOMAIN.md), so only the rendering is shifted, never the
    /// counter: ids minted before and after this rule still never repeat.
    pub fn mint_msgid(&mut self) -> Result<String, Error> {
        let second = u64::try_from(self.ctx.now.timestamp())
            .map_err(|_| Error::Internal("the clock is before 1970".to_owned()))?;
        let slot = self
            .tx
            .next_sequence_at_least("msgid_slot", second.saturating_mul(10_000))?;
        let stamp = i64::try_from(slot / 10_000)
            .ok()
            .and_then(|second| DateTime::from_timestamp(second, 0))
            .ok_or_else(|| Error::Internal("msgid counter out of range".to_owned()))?;
        Ok(format!(
            "{}{}{:04}",
            self.ctx.site.institution,
            china_time(stamp).format("%Y%m%d%H%M%S"),
            slot % 10_000
        ))
    }

    /// Mints the id of a transfer applied for today at `region`: the region, the date (China
    /// time) and this bureau's durable sequence for the day.
    pub fn mint_transfer_id(&mut self, region: RegionCode) -> Result<String, Error> {
        let today = self.ctx.today();
        let sequence = self.tx.next_sequence(&format!("transfer:{today}"))?;
        u32::try_from(sequence)
            .ok()
            .and_then(|sequence| TransferId::new(region, today, sequence))
            .map(|id| id.to_string())
            .ok_or_else(|| Error::FailedPrecondition("too many transfers today".to_owned()))
            .inspect(|id| {
                // The application's span learns its transfer here.
                tracing::Span::current().record("transfer_id", id.as_str());
            })
    }
}

/// Runs `work` (a step) inside `span` (a step span with its transfer id), on whichever thread
/// runs it: the store's writer, for a job of a batch.
pub fn within<T>(
    span: tracing::Span,
    work: impl FnOnce(&mut Step<'_>) -> T,
) -> impl FnOnce(&mut Step<'_>) -> T {
    move |step| span.in_scope(|| work(step))
}

/// Loads a transfer document; one that does not decode is an error.
pub fn load(tx: &mut dyn Tx, transfer_id: &str) -> Result<Option<TransferDocument>, Error> {
    tx.transfer(transfer_id)?
        .map(|row| decode_document(&row.document))
        .transpose()
}

/// Decodes a stored document.
pub fn decode_document(text: &str) -> Result<TransferDocument, Error> {
    serde_json::from_str(text)
        .map_err(|error| Error::unreadable("stored transfer document", &error))
}

/// The row the store keeps for a document.
fn row_of(ctx: &StepContext, document: &TransferDocument) -> Result<TransferRow, Error> {
    // An application waiting for its region to join the platform has no deadline running: it
    // is neither swept nor counted overdue until it proceeds (its deadlines then count anew).
    let waiting = document.state.stage() == yibao_domain::transfer::Stage::AwaitingConnection;
    // The fund leg: once the balance waits for its remittance, that deadline is the one that
    // counts (domain `overdue`); no sweep timer reads it for those states.
    let due = if document.state.awaits_remittance() {
        document.remittance_deadline(&ctx.site.calendar)
    } else {
        ctx.site
            .deadlines(document.applied_on, document.form_received_on)
            .map(|deadlines| deadlines.whole_process_due.due_on)
            .filter(|_| !waiting)
    };
    Ok(TransferRow {
        transfer_id: document.transfer_id.clone(),
        certno: document.certno.clone(),
        state: document.state.name().to_owned(),
        open: !document.state.is_terminal(),
        whole_process_due_on: due,
        created_at: document.created_at,
        updated_at: document.updated_at,
        document: serde_json::to_string(document)
            .map_err(|error| Error::Internal(format!("transfer document: {error}")))?,
    })
}

/// The benefit continuity of the person's latest transfer credited at this bureau, if any.
pub fn latest_continuity(
    tx: &mut dyn Tx,
    certno: &str,
) -> Result<Option<yibao_domain::continuity::Continuity>, Error> {
    let mut latest = None;
    for row in tx.transfers_of(certno)? {
        let document = decode_document(&row.document)?;
        if let Some(continuity) = document.continuity {
            match &latest {
                Some((at, _)) if *at >= document.updated_at => {}
                _ => latest = Some((document.updated_at, continuity)),
            }
        }
    }
    Ok(latest.map(|(_, continuity)| continuity))
}
