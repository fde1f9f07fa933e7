//! The transfer-out side's driver (转出地). Every step reads the same way: gather the facts from
//! the store → ask the domain (`review`, `credit`) → move the machine (`out_side`) → save → perform
//! the actions the machine returned, all inside the caller's [`Step`]. No rule is decided here.

use chrono::NaiveDate;
use yibao_domain::classify::{BankAccountGiven, Connectivity};
use yibao_domain::credit;
use yibao_domain::id::ResidentId;
use yibao_domain::money::Money;
use yibao_domain::region::RegionCode;
use yibao_domain::remittance::RemittanceCheck;
use yibao_domain::review::{self, Refused, RegionFacts, TransferOutRequest};
use yibao_domain::scheme::EnrolmentState;
use yibao_domain::transfer::out_side::{self, InCredit, OutAction, OutEvent, OutState, Review};
use yibao_domain::transfer::{Initiator, TransferState, Transition};

use crate::context::StepContext;
use crate::document::TransferDocument;
use crate::error::Error;
use crate::journal::{Movement, account, reason};
use crate::messages::{
    AbortReason, FormOutcome, InsuranceForm, Kind, Outgoing, TransferApplication,
};
use crate::outbox::queue::{self, BANK_GATEWAY, Route};
use crate::persons::PersonRecord;
use crate::record::{Happening, Step};

/// Why an abort is parked, as its outbox row says.
const ABORT_PARKED: &str = "parked: the transfer waits for an operator (yibao outbox retry)";

/// What a review came to.
#[derive(Debug)]
pub enum Opened {
    /// Accepted: the transfer is open (or already terminal, for a payout that completed).
    Accepted(Box<TransferDocument>),
    /// Refused.
    Refused(Refused),
}

/// Reviews an application for a transfer out and, when accepted, opens the transfer and performs
/// its first actions. A refused request from the transfer-in bureau is remembered through the
/// machine (so a repeat gets the same answer); a refused application made here writes nothing.
pub fn review_and_open(
    step: &mut Step<'_>,
    application: &TransferApplication,
    initiator: Initiator,
) -> Result<Opened, Error> {
    if let Some(existing) = step.load(&application.transfer_id)? {
        return Ok(match existing.state {
            TransferState::Out(OutState::Rejected(reason)) => Opened::Refused(reason.into()),
            _ => Opened::Accepted(Box::new(existing)),
        });
    }
    let (verdict, person) = review(step, application, initiator)?;
    match (verdict, person) {
        (Ok(accepted), Some(person)) => {
            let document = open(step, application, initiator, &person, accepted)?;
            Ok(Opened::Accepted(Box::new(document)))
        }
        (Ok(_), None) => Err(Error::Internal(
            "the review accepted a person it does not know".to_owned(),
        )),
        (Err(refused), _) => {
            if initiator == Initiator::TransferIn {
                remember_refusal(step, application, refused.reason)?;
            }
            Ok(Opened::Refused(refused))
        }
    }
}

/// The transfer-out review of an application with the facts this bureau holds now: the
/// verdict and the person's record. A transfer of the application's own id does not count as
/// the person's other open transfer (a waiting application is reviewed again).
fn review(
    step: &mut Step<'_>,
    application: &TransferApplication,
    initiator: Initiator,
) -> Result<
    (
        Result<review::Accepted, review::Refused>,
        Option<PersonRecord>,
    ),
    Error,
> {
    let certno = application.certno.expose_unmasked();
    let person = step.person(certno)?;
    let open_transfer = step
        .tx
        .open_transfer_of(certno)?
        .filter(|open| *open != application.transfer_id);
    let site = step.ctx.site.clone();
    let request = TransferOutRequest {
        out_region: application.out_region,
        in_region: application.in_region,
        in_scheme: application.in_scheme,
        initiator,
        retiree_payout: application.retiree_payout,
        bank_account: BankAccountGiven::of(application.bank_account.as_ref()),
        payout_requested: application.payout_requested,
    };
    let regions = RegionFacts {
        out_policy: site.policy(application.out_region),
        in_policy: site.policy(application.in_region),
        destination: site.connectivity(application.in_region),
        destination_hosting: site.hosting(application.in_region),
        pooling: site.pooling(),
    };
    // A person this bureau knows must be named as its record names them.
    let identity = match &person {
        Some(person) => review::check_identity(&person.row.psn_name, &application.psn_name),
        None => Ok(()),
    };
    let verdict = identity.and_then(|()| {
        review::review_transfer_out(
            person.as_ref().map(|person| &person.facts),
            open_transfer.as_deref(),
            &request,
            &regions,
        )
    });
    Ok((verdict, person))
}

/// Opens an accepted transfer: the machine's first transition, saved and performed. Where the
/// region's review takes working days, it opens under review until its review day.
fn open(
    step: &mut Step<'_>,
    application: &TransferApplication,
    initiator: Initiator,
    person: &PersonRecord,
    accepted: review::Accepted,
) -> Result<TransferDocument, Error> {
    let certno = application.certno.expose_unmasked();
    let site = step.ctx.site.clone();
    let review_day = review::review_day(
        site.policy(application.out_region),
        application.channel,
        step.ctx.today(),
        &site.calendar,
    )
    .map_err(|error| Error::Internal(format!("the review day: {error}")))?;
    let opening = review::defer_to_review_day(accepted.review, review_day.map(|d| d.due_on));
    let amount_cents = if credit::review_moves_balance(opening) {
        step.balance_of(certno)?
    } else {
        0
    };
    let transition = out_side::open(opening);
    let mut document = TransferDocument {
        certno: certno.to_owned(),
        psn_name: application.psn_name.clone(),
        trafout_admdvs: application.out_region.to_string(),
        trafin_admdvs: application.in_region.to_string(),
        flow: Some(accepted.plan.flow_kind()),
        balance: Some(accepted.plan.balance),
        amount_cents,
        contribution_months: credit::months_on_record(
            &person.periods,
            person.row.deemed_months,
            person.facts.region,
            step.ctx.site.directory.pooling(),
        ),
        bank_account: application.bank_account.clone(),
        retiree_payout: application.retiree_payout,
        in_scheme: application.in_scheme,
        channel: application.channel,
        settlement: accepted.plan.settlement,
        ..TransferDocument::opening(
            application.transfer_id.clone(),
            initiator,
            TransferState::Out(transition.next),
            yibao_runtime::clock::china_date(application.applied_at),
            step.ctx.now,
        )
    };
    let detail = match opening {
        Review::UnderReview { due_on } => format!(
            "received; {}{}",
            review_detail(opening),
            late_note(step, &document, due_on)
        ),
        _ => format!("reviewed and accepted: {}", review_detail(opening)),
    };
    step.insert(
        &mut document,
        Happening {
            kind: "ACCEPTED",
            from_state: "",
            detail,
            attempt: 0,
        },
    )?;
    perform(step, &mut document, Some(person), &transition.actions)?;
    Ok(document)
}

/// Remembers a refused request through the machine (`open(Review::Refused)` → `Rejected`).
fn remember_refusal(
    step: &mut Step<'_>,
    application: &TransferApplication,
    refused: yibao_domain::transfer::RefusalReason,
) -> Result<(), Error> {
    let transition = out_side::open(Review::Refused(refused));
    let mut document = TransferDocument {
        certno: application.certno.expose_unmasked().to_owned(),
        psn_name: application.psn_name.clone(),
        trafout_admdvs: application.out_region.to_string(),
        trafin_admdvs: application.in_region.to_string(),
        retiree_payout: application.retiree_payout,
        ..TransferDocument::opening(
            application.transfer_id.clone(),
            Initiator::TransferIn,
            TransferState::Out(transition.next),
            yibao_runtime::clock::china_date(application.applied_at),
            step.ctx.now,
        )
    };
    let detail = format!("refused: {}", refused.message());
    step.insert(
        &mut document,
        Happening {
            kind: "REJECTED",
            from_state: "",
            detail,
            attempt: 0,
        },
    )
}

/// Applies one event to an open transfer-out transfer and performs its actions.
pub fn apply(
    step: &mut Step<'_>,
    transfer_id: &str,
    event: OutEvent,
    detail: String,
    attempt: u32,
) -> Result<TransferDocument, Error> {
    let mut document = step.load_existing(transfer_id)?;
    let TransferState::Out(before) = document.state else {
        return Err(Error::Internal(
            "a transfer-in document got a transfer-out event".to_owned(),
        ));
    };
    let Transition { next, actions } = out_side::apply(before, event)?;
    if next == before && actions.is_empty() {
        return Ok(document);
    }
    document.state = TransferState::Out(next);
    if next == OutState::RemittanceDue && before != next {
        document.remit_on = Some(remittance_day(step.ctx, &document)?);
    }
    if actions.contains(&OutAction::SendRemittance) {
        // A new remittance, a new msgid: its answer, and a return, must name this one.
        document.remittance_msgid = Some(step.mint_msgid()?);
        if event == OutEvent::RemittanceReturned {
            // Remitted again today: its deadline at the transfer-in bureau counts from today.
            document.remit_on = Some(step.ctx.today());
        }
    }
    step.update(
        &mut document,
        Happening {
            kind: event.name(),
            from_state: before.name(),
            detail,
            attempt,
        },
    )?;
    // No event after the opening sends a form, so the person's record is not read (and a
    // person row that no longer decodes cannot hold up an answer or the deadline sweep).
    perform(step, &mut document, None, &actions)?;
    Ok(document)
}

/// Reviews a waiting application again once its destination is connected (DOMAIN.md: the
/// application waits until the region joins the platform): it proceeds as if applied today
/// (its deadlines count from today, the balance of today moves), or is refused if the person's
/// record no longer allows it. Returns whether anything changed.
pub fn resume_if_connected(step: &mut Step<'_>, transfer_id: &str) -> Result<bool, Error> {
    let Some(document) = step.load(transfer_id)? else {
        return Ok(false);
    };
    if document.state != TransferState::Out(OutState::AwaitingConnection) {
        return Ok(false);
    }
    let in_region = RegionCode::parse(&document.trafin_admdvs)
        .map_err(|_| Error::Internal("stored transfer has a bad region".to_owned()))?;
    if step.ctx.site.connectivity(in_region) == Connectivity::NotConnected {
        return Ok(false);
    }
    review_again(step, document, Again::Connected)
}

/// The review day of a transfer under review came (or passed): it is reviewed with the facts
/// of today and proceeds as reviewed (the form goes, the balance with it) or is refused. Its
/// deadlines still count from the application. Returns whether anything changed.
pub fn review_day_came(step: &mut Step<'_>, transfer_id: &str) -> Result<bool, Error> {
    let Some(document) = step.load(transfer_id)? else {
        return Ok(false);
    };
    let TransferState::Out(OutState::UnderReview { due_on }) = document.state else {
        return Ok(false);
    };
    if due_on > step.ctx.today() {
        return Ok(false);
    }
    review_again(step, document, Again::ReviewDay)
}

/// Why a transfer that waited is reviewed again.
#[derive(Clone, Copy)]
enum Again {
    /// Its destination joined the platform: it proceeds as if applied today.
    Connected,
    /// Its review day came.
    ReviewDay,
}

/// Reviews a waiting transfer again with the facts of today, moves its machine by the outcome,
/// saves it and performs the actions (a form, a debit, a payout, or nothing on a refusal).
fn review_again(
    step: &mut Step<'_>,
    mut document: TransferDocument,
    why: Again,
) -> Result<bool, Error> {
    let TransferState::Out(before) = document.state else {
        return Ok(false);
    };
    let application = stored_application(step, &document)?;
    let (verdict, person) = review(step, &application, document.initiator)?;
    let next_review = match &verdict {
        Ok(accepted) => {
            document.flow = Some(accepted.plan.flow_kind());
            document.balance = Some(accepted.plan.balance);
            document.settlement = accepted.plan.settlement;
            if credit::review_moves_balance(accepted.review) {
                document.amount_cents = step.balance_of(&document.certno)?;
            }
            accepted.review
        }
        Err(refused) => Review::Refused(refused.reason),
    };
    let (event, detail) = match why {
        Again::Connected => {
            document.applied_on = step.ctx.today();
            let detail = "the destination joined the national platform; reviewed again";
            (OutEvent::Resumed(next_review), detail)
        }
        Again::ReviewDay => (
            OutEvent::Reviewed(next_review),
            "the review day came; reviewed",
        ),
    };
    let transition = out_side::apply(before, event)?;
    document.state = TransferState::Out(transition.next);
    step.update(
        &mut document,
        Happening {
            kind: event.name(),
            from_state: before.name(),
            detail: format!("{detail}: {}", review_detail(next_review)),
            attempt: 0,
        },
    )?;
    perform(step, &mut document, person.as_ref(), &transition.actions)?;
    Ok(true)
}

/// The application a stored transfer was opened from, as of today, for a second review.
fn stored_application(
    step: &Step<'_>,
    document: &TransferDocument,
) -> Result<TransferApplication, Error> {
    let broken = |what: &str| Error::Internal(format!("stored transfer has {what}"));
    Ok(TransferApplication {
        transfer_id: document.transfer_id.clone(),
        certno: ResidentId::parse(&document.certno).map_err(|_| broken("a bad ID number"))?,
        psn_name: document.psn_name.clone(),
        in_scheme: document.in_scheme,
        out_region: RegionCode::parse(&document.trafout_admdvs)
            .map_err(|_| broken("a bad region"))?,
        in_region: RegionCode::parse(&document.trafin_admdvs)
            .map_err(|_| broken("a bad region"))?,
        applied_at: step.ctx.now,
        bank_account: document.bank_account.clone(),
        retiree_payout: document.retiree_payout,
        payout_requested: false,
        channel: document.channel,
    })
}

/// A note for the history when the review day falls after the transfer-out deadline: the
/// deadline will be missed, and the transfer is shown overdue once it has passed.
fn late_note(step: &Step<'_>, document: &TransferDocument, review_day: NaiveDate) -> String {
    match step.ctx.site.deadlines(document.applied_on, None) {
        Some(deadlines) if review_day > deadlines.transfer_out_due.due_on => format!(
            "; the review day is after the transfer-out deadline {}: overdue from then",
            deadlines.transfer_out_due.due_on
        ),
        _ => String::new(),
    }
}

/// The transfer-in bureau answered the form.
pub fn form_answered(
    step: &mut Step<'_>,
    transfer_id: &str,
    outcome: FormOutcome,
    attempt: u32,
) -> Result<(), Error> {
    let (event, detail) = match outcome {
        FormOutcome::Credited(_) => (
            OutEvent::FormCredited,
            "the transfer-in bureau credited the form".to_owned(),
        ),
        FormOutcome::Refused(reason) => (
            OutEvent::FormRefused(reason),
            format!(
                "the transfer-in bureau refused the form: {}",
                reason.message()
            ),
        ),
    };
    apply(step, transfer_id, event, detail, attempt).map(drop)
}

/// The day the balance of a transfer whose form was credited is remitted: the transfer-out
/// region's remittance delay after today, on the working calendar (today when it has none).
fn remittance_day(ctx: &StepContext, document: &TransferDocument) -> Result<NaiveDate, Error> {
    let region = RegionCode::parse(&document.trafout_admdvs)
        .map_err(|_| Error::Internal("stored transfer has a bad region".to_owned()))?;
    let today = ctx.today();
    let day = yibao_domain::remittance::remittance_day(
        ctx.site.policy(region).remittance,
        today,
        &ctx.site.calendar,
    )
    .map_err(|error| Error::Internal(format!("the remittance day: {error}")))?;
    Ok(day.map_or(today, |deadline| deadline.due_on))
}

/// The remittance day of a transfer whose form was credited came (or passed): the balance is
/// remitted. Returns whether anything changed.
pub fn remittance_day_came(step: &mut Step<'_>, transfer_id: &str) -> Result<bool, Error> {
    let Some(document) = step.load(transfer_id)? else {
        return Ok(false);
    };
    if document.remit_on.is_some_and(|day| day > step.ctx.today()) {
        return Ok(false);
    }
    let detail = "the remittance day came: the balance is remitted to the transfer-in fund";
    timer_fired(step, document, OutEvent::RemittanceDay, detail)
}

/// The transfer-in bureau checked the remittance sent under `msgid` against the form. The
/// answer to an earlier remittance than the latest (one returned, whose row was withdrawn
/// while its answer was on the way) changes nothing.
pub fn remittance_answered(
    step: &mut Step<'_>,
    transfer_id: &str,
    msgid: &str,
    check: RemittanceCheck,
    attempt: u32,
) -> Result<(), Error> {
    let latest = step.load_existing(transfer_id)?.remittance_msgid;
    if latest.as_deref().is_some_and(|latest| latest != msgid) {
        return Ok(());
    }
    let detail = match check {
        RemittanceCheck::Matches => "the transfer-in bureau found the remittance matches the form",
        RemittanceCheck::Short | RemittanceCheck::Over => {
            "the transfer-in bureau refused the remittance as not matching the form and holds \
             it; an operator must resolve the transfer"
        }
    };
    let event = OutEvent::RemittanceAnswered(check);
    apply(step, transfer_id, event, detail.to_owned(), attempt).map(drop)
}

/// The transfer-in bureau returned a remittance it refused (ReturnRemittance, 9107): when it is
/// the latest remittance of an unsettled transfer, the balance is remitted again (a new
/// message, a new msgid); a return of an earlier remittance, or for a transfer settled or not
/// yet remitted, changes nothing. Returns whether the balance is remitted again.
pub fn remittance_returned(
    step: &mut Step<'_>,
    returned: &crate::messages::RemittanceReturn,
) -> Result<bool, Error> {
    let transfer_id = returned.addressed.transfer_id.as_str();
    let document = step.load_existing(transfer_id)?;
    check_parties(&document, &returned.addressed)?;
    let TransferState::Out(state) = document.state else {
        return Err(Error::Internal(
            "a returned remittance for a transfer-in document".to_owned(),
        ));
    };
    let remitted_apart = document.remit_on.is_some()
        || matches!(
            state,
            OutState::InTransit {
                balance: out_side::BalanceRoute::RemittedApart
            }
        );
    if !remitted_apart {
        return Err(yibao_domain::transfer::IllegalEvent {
            state: state.name(),
            event: OutEvent::RemittanceReturned.name(),
        }
        .into());
    }
    if document.remittance_msgid.as_deref() != Some(returned.remittance_msgid.as_str()) {
        return Ok(false);
    }
    let event = OutEvent::RemittanceReturned;
    let transition = out_side::apply(state, event)?;
    if transition.actions.is_empty() {
        return Ok(false);
    }
    let detail = format!(
        "the transfer-in bureau returned the remittance of {} it refused as {}; the balance is \
         remitted again",
        returned.amount,
        match returned.check {
            RemittanceCheck::Over => "over",
            RemittanceCheck::Short | RemittanceCheck::Matches => "short",
        }
    );
    apply(step, transfer_id, event, detail, 0)?;
    Ok(true)
}

/// A message about a transfer must come from and go to its own two regions.
fn check_parties(
    document: &TransferDocument,
    message: &crate::messages::Addressed,
) -> Result<(), Error> {
    if document.trafin_admdvs != message.in_region {
        return Err(Error::invalid(
            "envelope.sender_region_code",
            "is not the transfer's transfer-in region",
        ));
    }
    if document.trafout_admdvs != message.out_region {
        return Err(Error::invalid(
            "envelope.receiver_region_code",
            "is not the transfer's transfer-out region",
        ));
    }
    Ok(())
}

/// The transfer-in bureau answered the abort: it had credited, or it never will.
pub fn abort_answered(
    step: &mut Step<'_>,
    transfer_id: &str,
    credit: InCredit,
    attempt: u32,
) -> Result<(), Error> {
    let detail = match credit {
        InCredit::Credited => "the transfer-in bureau had credited",
        InCredit::NotCredited => "the transfer-in bureau confirmed it did not and will not credit",
    };
    let event = OutEvent::AbortAnswered(credit);
    apply(step, transfer_id, event, detail.to_owned(), attempt).map(drop)
}

/// The bank gateway confirmed the payout.
pub fn bank_paid(step: &mut Step<'_>, transfer_id: &str, attempt: u32) -> Result<(), Error> {
    let detail = "the bank gateway paid the balance".to_owned();
    apply(step, transfer_id, OutEvent::BankPaid, detail, attempt).map(drop)
}

/// The whole-process deadline of a transfer passed: opens its abort if it is still in transit.
/// Returns whether anything changed.
pub fn deadline_passed(step: &mut Step<'_>, transfer_id: &str) -> Result<bool, Error> {
    let Some(document) = step.load(transfer_id)? else {
        return Ok(false);
    };
    let fallback = credit::abort_fallback(document.bank_account_given());
    let detail = "the whole-process deadline passed without a credit";
    timer_fired(step, document, OutEvent::DeadlinePassed(fallback), detail)
}

/// The abort's bound passed without an answer: the transfer waits for an operator, its abort
/// parked. Returns whether anything changed.
pub fn abort_overdue(step: &mut Step<'_>, transfer_id: &str) -> Result<bool, Error> {
    let Some(document) = step.load(transfer_id)? else {
        return Ok(false);
    };
    let detail = "the abort went unanswered past its bound; an operator must resolve the transfer";
    timer_fired(step, document, OutEvent::AbortOverdue, detail)
}

/// Applies a timer's event when the machine says it means something in the transfer's state
/// (for example a deadline opens an abort only while the form is in transit); anything else is
/// left alone. Returns whether anything changed.
fn timer_fired(
    step: &mut Step<'_>,
    document: TransferDocument,
    event: OutEvent,
    detail: &str,
) -> Result<bool, Error> {
    let TransferState::Out(state) = document.state else {
        return Ok(false);
    };
    match out_side::apply(state, event) {
        Ok(transition) if transition.next != state || !transition.actions.is_empty() => {
            apply(step, &document.transfer_id, event, detail.to_owned(), 0)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Who resolved a transfer that needed an operator, and why: recorded in its history.
#[derive(Debug, Clone)]
pub struct Resolution {
    /// The operator's name or staff number.
    pub operator: String,
    /// What the transfer-in bureau confirmed, and how.
    pub reason: String,
    /// What it confirmed: credited, or not and never.
    pub credit: InCredit,
}

/// An operator resolves a transfer waiting for one (`NeedsOperator`): the machine moves as for
/// the answer the operator was given, and the history records who and why. A transfer in any
/// other state is refused (`FAILED_PRECONDITION`) and nothing changes.
pub fn resolve(
    step: &mut Step<'_>,
    transfer_id: &str,
    resolution: &Resolution,
) -> Result<TransferDocument, Error> {
    let document = step.load_existing(transfer_id)?;
    if document.state == TransferState::Out(OutState::RemittanceRefused) {
        return Err(Error::FailedPrecondition(format!(
            "outcome: transfer {transfer_id} is REMITTANCE_REFUSED: its form was credited and \
             its remittance refused; once the transfer-in bureau returned it, resolve with \
             RESOLVE_OUTCOME_REMITTANCE_RETURNED"
        )));
    }
    if !matches!(
        document.state,
        TransferState::Out(OutState::NeedsOperator { .. })
    ) {
        return Err(Error::FailedPrecondition(format!(
            "transfer {transfer_id} is {}, not waiting for an operator",
            document.state.name()
        )));
    }
    let said = match resolution.credit {
        InCredit::Credited => "the transfer-in bureau credited",
        InCredit::NotCredited => "the transfer-in bureau did not and will not credit",
    };
    let detail = format!(
        "resolved by operator {}: {said}; {}",
        resolution.operator, resolution.reason
    );
    let event = OutEvent::OperatorResolved(resolution.credit);
    let document = apply(step, transfer_id, event, detail, 0)?;
    // The parked abort has its answer now; an operator must not be offered it again.
    queue::withdraw(step, transfer_id, Kind::Abort)?;
    Ok(document)
}

/// An operator records that the transfer-in bureau returned a remittance it refused outside the
/// platform (no ReturnRemittance came): the balance, still in transit, is remitted again under
/// a new msgid, so a late ReturnRemittance of the old one changes nothing. Only a transfer whose
/// remittance was refused (`REMITTANCE_REFUSED`) can be; any other is refused
/// (`FAILED_PRECONDITION`) and nothing changes.
pub fn remittance_returned_by_operator(
    step: &mut Step<'_>,
    transfer_id: &str,
    operator: &str,
    reason: &str,
) -> Result<TransferDocument, Error> {
    let document = step.load_existing(transfer_id)?;
    if document.state != TransferState::Out(OutState::RemittanceRefused) {
        return Err(Error::FailedPrecondition(format!(
            "outcome: transfer {transfer_id} is {}; only a transfer whose remittance the \
             transfer-in bureau refused (REMITTANCE_REFUSED) can be recorded as returned",
            document.state.name()
        )));
    }
    let detail = format!(
        "resolved by operator {operator}: the transfer-in bureau returned the refused \
         remittance; the balance is remitted again; {reason}"
    );
    apply(step, transfer_id, OutEvent::RemittanceReturned, detail, 0)
}

/// The journal account a transfer's balance is settled to: its transfer-in pooling region's, as
/// the directory groups codes.
fn settled_account(ctx: &StepContext, document: &TransferDocument) -> Result<String, Error> {
    let region = ctx
        .site
        .stored_pooling_region("trafin_admdvs", &document.trafin_admdvs)?;
    Ok(account::settled(region))
}

/// Long because it is one arm per action of the machine, each a line or two: the one place
/// where the machine's actions become postings and messages.
///
/// Performs the machine's actions, in order, in the caller's step. `person` is the record the
/// opening step read (only sending the form needs it).
fn perform(
    step: &mut Step<'_>,
    document: &mut TransferDocument,
    person: Option<&PersonRecord>,
    actions: &[OutAction],
) -> Result<(), Error> {
    let id = document.transfer_id.clone();
    let amount_cents = document.amount_cents;
    let person_account = account::person(&document.certno);
    let to_peer = Route {
        sender: &document.trafout_admdvs,
        receiver: &document.trafin_admdvs,
    };
    let movement = |from: String, to: String, reason| Movement {
        from,
        to,
        amount_cents,
        transfer_id: &id,
        reason,
    };
    for action in actions {
        match action {
            OutAction::DebitAccountToTransit => step.post(movement(
                person_account.clone(),
                account::TRANSIT.to_owned(),
                reason::DEBIT_TO_TRANSIT,
            ))?,
            OutAction::SettleTransitToTransferIn => step.post(movement(
                account::TRANSIT.to_owned(),
                settled_account(step.ctx, document)?,
                reason::SETTLE,
            ))?,
            OutAction::ReverseTransitToAccount => step.post(movement(
                account::TRANSIT.to_owned(),
                person_account.clone(),
                reason::REVERSE,
            ))?,
            OutAction::PostTransitToBank => step.post(movement(
                account::TRANSIT.to_owned(),
                account::BANK.to_owned(),
                reason::PAY_TO_BANK,
            ))?,
            OutAction::SendForm => {
                let person = person.ok_or_else(|| {
                    Error::Internal("a form is sent only by the opening step".to_owned())
                })?;
                let form = Outgoing::DeliverForm(Box::new(form(step, document, person)?));
                queue::enqueue(step, &id, to_peer, form)?;
            }
            OutAction::PayTransitToBank => {
                let route = Route {
                    sender: &document.trafout_admdvs,
                    receiver: BANK_GATEWAY,
                };
                queue::enqueue(step, &id, route, Outgoing::BankPayout { amount_cents })?;
            }
            OutAction::SendAbort => {
                // An undelivered form must not overtake the abort: withdraw it. If it was
                // delivered and only its answer was lost, the abort's answer says "credited".
                queue::withdraw(step, &id, Kind::DeliverForm)?;
                let abort = Outgoing::Abort(AbortReason::DeadlineExpired);
                queue::enqueue(step, &id, to_peer, abort)?;
            }
            OutAction::ParkAbort => queue::park(step, &id, Kind::Abort, ABORT_PARKED)?,
            OutAction::SendRemittance => {
                // Only the latest remittance is ever due: an earlier one still queued (its
                // answer lost, then returned) must not follow it.
                queue::withdraw(step, &id, Kind::RemitBalance)?;
                let msgid = document
                    .remittance_msgid
                    .clone()
                    .ok_or_else(|| Error::Internal("a remittance without its msgid".to_owned()))?;
                let amount_cents = remitted_amount(step, &id, amount_cents)?;
                let remittance = Outgoing::RemitBalance { amount_cents };
                queue::enqueue_as(step, &id, to_peer, remittance, msgid)?;
            }
        }
    }
    end_relationship_if_done(step, document)
}

/// The amount a remittance carries: the balance in transit — except at a bureau started with
/// the test-only `YIBAO_BROKEN_FOR_TESTS=remit-short`, whose first remittance of a transfer is
/// one cent short (one sent again after a return is exact), so that tests can drive a short
/// remittance end to end.
fn remitted_amount(step: &mut Step<'_>, transfer_id: &str, in_transit: u64) -> Result<u64, Error> {
    if step.ctx.site.broken != crate::context::Broken::RemitShort {
        return Ok(in_transit);
    }
    let returned_before = step
        .tx
        .events(transfer_id)?
        .iter()
        .any(|event| event.kind == OutEvent::RemittanceReturned.name());
    Ok(if returned_before {
        in_transit
    } else {
        in_transit.saturating_sub(1)
    })
}

/// The relationship leaves this region once the transfer completed or was paid out: the
/// person's enrolment state becomes terminated (the rest of the row is left as it is).
fn end_relationship_if_done(step: &mut Step<'_>, document: &TransferDocument) -> Result<(), Error> {
    let TransferState::Out(state) = document.state else {
        return Ok(());
    };
    if !credit::relationship_ends_at_origin(state, document.balance) {
        return Ok(());
    }
    let mut row = step
        .tx
        .person(&document.certno)?
        .ok_or_else(|| Error::Internal("the transfer's person vanished".to_owned()))?;
    row.psn_insu_stas = EnrolmentState::Terminated.code();
    step.tx.update_person(&row)?;
    Ok(())
}

/// The insurance information form for a transfer.
fn form(
    step: &Step<'_>,
    document: &TransferDocument,
    person: &PersonRecord,
) -> Result<InsuranceForm, Error> {
    let broken = |what: &str| Error::Internal(format!("stored transfer has {what}"));
    let balance = Money::from_cents(document.amount_cents).map_err(|_| broken("a bad amount"))?;
    let disposition = document
        .balance
        .ok_or_else(|| broken("no balance disposition"))?;
    Ok(InsuranceForm {
        transfer_id: document.transfer_id.clone(),
        certno: ResidentId::parse(&document.certno).map_err(|_| broken("a bad ID number"))?,
        psn_name: person.row.psn_name.clone(),
        scheme: Some(person.facts.scheme),
        out_region: RegionCode::parse(&document.trafout_admdvs)
            .map_err(|_| broken("a bad region"))?,
        in_region: RegionCode::parse(&document.trafin_admdvs)
            .map_err(|_| broken("a bad region"))?,
        first_insured: person.row.fst_insu_ym.clone(),
        contribution_months: credit::months_on_record(
            &person.periods,
            person.row.deemed_months,
            person.facts.region,
            step.ctx.site.directory.pooling(),
        ),
        periods: person.periods.clone(),
        deemed_months: person.row.deemed_months,
        balance: credit::balance_on_form(disposition, balance),
        balance_disposition: Some(disposition),
        flow: document.flow,
        initiator: document.initiator,
        issued_at: step.ctx.now,
        applied_on: Some(document.applied_on),
        remittance_follows: matches!(
            document.state,
            TransferState::Out(OutState::InTransit {
                balance: out_side::BalanceRoute::RemittedApart
            })
        ),
    })
}

fn review_detail(review: Review) -> &'static str {
    use out_side::BalanceRoute;
    match review {
        Review::DeliverForm(BalanceRoute::MovesWithForm) => {
            "the form goes to the transfer-in bureau with the balance"
        }
        Review::DeliverForm(BalanceRoute::ToBankAfterCredit) => {
            "the form goes to the transfer-in bureau; the balance is paid to the bank after the credit"
        }
        Review::DeliverForm(BalanceRoute::StaysPut) => {
            "the form goes to the transfer-in bureau; no money moves"
        }
        Review::DeliverForm(BalanceRoute::RemittedApart) => {
            "the form goes to the transfer-in bureau; the balance is remitted apart on the \
             region's remittance day"
        }
        Review::PayToBankOnly => "the balance is paid to the person's bank account",
        Review::AwaitConnection => {
            "waiting: the destination region is not connected to the national platform; the \
             application proceeds when it joins (the record, the years and the balance stay here \
             meanwhile)"
        }
        Review::UnderReview { .. } => {
            "under review: the region's review takes working days; nothing moves until it is decided"
        }
        Review::Refused(_) => "refused",
    }
}

#[cfg(test)]
mod tests;
