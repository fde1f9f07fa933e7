//! The transfer-in side's driver (转入地): take an application, check and credit an arriving
//! form exactly once, answer an abort, read the transfer-out bureau's decision. Each step gathers
//! the facts, asks the domain (`review`, `credit`), moves the machine (`in_side`), saves, and
//! performs the machine's actions inside the caller's [`Step`].

use yibao_domain::application::BankAccount;
use yibao_domain::classify::{self, RetireePayout};
use yibao_domain::credit;
use yibao_domain::id::ResidentId;
use yibao_domain::money::Money;
use yibao_domain::month::{ContributionPeriod, YearMonth};
use yibao_domain::region::RegionCode;
use yibao_domain::remittance::RemittanceCheck;
use yibao_domain::review;
use yibao_domain::scheme::Scheme;
use yibao_domain::transfer::in_side::{self, InAction, InEvent, InState, TransferOutView};
use yibao_domain::transfer::out_side::InCredit;
use yibao_domain::transfer::{Initiator, RefusalReason, TransferId, TransferState, Transition};

use crate::document::TransferDocument;
use crate::error::Error;
use crate::journal::{Movement, account, reason};
use crate::messages::{
    Addressed, Credit, Decision, FormOutcome, InsuranceForm, Kind, Outgoing, Remittance,
    TransferApplication,
};
use crate::outbox::queue::{self, Route};
use crate::record::{Happening, Step};

/// An application made at the transfer-in bureau (the usual path).
#[derive(Debug, Clone)]
pub struct Application {
    /// The person.
    pub certno: ResidentId,
    /// The person's name.
    pub psn_name: String,
    /// Where the person leaves.
    pub out_region: RegionCode,
    /// Where the person is enrolled now (hosted here).
    pub in_region: RegionCode,
    /// A bank account, passed on for payouts.
    pub bank_account: Option<BankAccount>,
    /// Whether a retiree asked for a payout.
    pub retiree_payout: RetireePayout,
    /// How the person applied, passed on: the transfer-out region's review may take longer for
    /// a counter application.
    pub channel: yibao_domain::application::ApplicationChannel,
}

/// Opens a transfer applied for here and queues the request to the transfer-out bureau.
pub fn apply_here(
    step: &mut Step<'_>,
    application: &Application,
) -> Result<TransferDocument, Error> {
    let site = step.ctx.site.clone();
    site.region("trafout_admdvs", application.out_region)?;
    let certno = application.certno.expose_unmasked();
    let person = step.person(certno)?;
    let open_transfer = step.tx.open_transfer_of(certno)?;
    if let Some(person) = &person {
        review::check_identity(&person.row.psn_name, &application.psn_name)?;
    }
    review::review_transfer_in_application(
        person.as_ref().map(|person| &person.facts),
        open_transfer.as_deref(),
        application.out_region,
        application.in_region,
        site.connectivity(application.out_region),
        site.hosting(application.out_region),
        site.pooling(),
    )
    .map_err(Error::from)?;
    let in_scheme = person.map(|person| person.facts.scheme);
    let transfer_id = step.mint_transfer_id(application.in_region)?;
    let Transition { next, actions } = in_side::apply_here();
    // In instant mode (秒到账) the application's answer waits for the exchange.
    let settlement = classify::instant_mode(
        site.policy(application.out_region),
        site.policy(application.in_region),
    );
    let mut document = TransferDocument {
        certno: certno.to_owned(),
        psn_name: application.psn_name.clone(),
        trafout_admdvs: application.out_region.to_string(),
        trafin_admdvs: application.in_region.to_string(),
        bank_account: application.bank_account.clone(),
        retiree_payout: application.retiree_payout,
        channel: application.channel,
        settlement,
        ..TransferDocument::opening(
            transfer_id.clone(),
            Initiator::TransferIn,
            TransferState::In(next),
            step.ctx.today(),
            step.ctx.now,
        )
    };
    step.insert(
        &mut document,
        Happening {
            kind: "APPLIED",
            from_state: "",
            detail: "applied at the transfer-in bureau".to_owned(),
            attempt: 0,
        },
    )?;
    for action in actions {
        if action != InAction::SendTransferOutRequest {
            return Err(Error::Internal(
                "an application asked for more than its request".to_owned(),
            ));
        }
        request_transfer_out(step, &document, application, in_scheme)?;
    }
    Ok(document)
}

/// `InAction::SendTransferOutRequest`: queues the request to the transfer-out bureau.
fn request_transfer_out(
    step: &mut Step<'_>,
    document: &TransferDocument,
    application: &Application,
    in_scheme: Option<yibao_domain::scheme::Scheme>,
) -> Result<(), Error> {
    let request = TransferApplication {
        transfer_id: document.transfer_id.clone(),
        certno: application.certno.clone(),
        psn_name: document.psn_name.clone(),
        in_scheme,
        out_region: application.out_region,
        in_region: application.in_region,
        applied_at: step.ctx.now,
        bank_account: document.bank_account.clone(),
        retiree_payout: document.retiree_payout,
        payout_requested: false,
        channel: application.channel,
    };
    let route = Route {
        sender: &document.trafin_admdvs,
        receiver: &document.trafout_admdvs,
    };
    let message = Outgoing::RequestTransferOut(Box::new(request));
    queue::enqueue(step, &document.transfer_id, route, message)
}

/// Applies an event to a transfer-in transfer (not the form: see [`receive_form`]).
pub fn apply(
    step: &mut Step<'_>,
    transfer_id: &str,
    event: InEvent,
    detail: String,
    attempt: u32,
) -> Result<TransferDocument, Error> {
    let mut document = step.load_existing(transfer_id)?;
    let TransferState::In(before) = document.state else {
        return Err(Error::Internal(
            "a transfer-out document got a transfer-in event".to_owned(),
        ));
    };
    let Transition { next, actions } = in_side::apply(before, event)?;
    if next == before && actions.is_empty() {
        return Ok(document);
    }
    document.state = TransferState::In(next);
    step.update(
        &mut document,
        Happening {
            kind: event.name(),
            from_state: before.name(),
            detail,
            attempt,
        },
    )?;
    for action in actions {
        match action {
            InAction::QueryTransferOut => {
                let route = Route {
                    sender: &document.trafin_admdvs,
                    receiver: &document.trafout_admdvs,
                };
                queue::enqueue(step, transfer_id, route, Outgoing::QueryTransferOut)?;
            }
            InAction::WithdrawRequest => {
                // Nothing more to ask: the transfer ended before its request was answered.
                queue::withdraw(step, transfer_id, Kind::RequestTransferOut)?;
                queue::withdraw(step, transfer_id, Kind::QueryTransferOut)?;
            }
            InAction::CreditForm
            | InAction::CreditYears
            | InAction::CreditBalance
            | InAction::HoldRemittance
            | InAction::ReturnHeld
            | InAction::SendTransferOutRequest => {
                return Err(Error::Internal(format!(
                    "event {} asked for an action only a form or an application may ask for",
                    event.name()
                )));
            }
        }
    }
    Ok(document)
}

/// The form is overdue (the transfer-out bureau's deadline passed): ask it where the transfer
/// stands. Returns whether anything changed.
pub fn form_overdue(step: &mut Step<'_>, transfer_id: &str) -> Result<bool, Error> {
    let detail = "the form is overdue; the transfer-out bureau is asked where the transfer stands";
    timer_fired(step, transfer_id, InEvent::FormOverdue, detail)
}

/// The whole-process deadline passed: a transfer still waiting ends here, and a form arriving
/// later is refused. Returns whether anything changed.
pub fn deadline_passed(step: &mut Step<'_>, transfer_id: &str) -> Result<bool, Error> {
    let detail = "the whole-process deadline passed without the form; nothing will be credited";
    timer_fired(step, transfer_id, InEvent::DeadlinePassed, detail)
}

/// Applies a timer's event when the machine says it means something in the transfer's state;
/// anything else is left alone. Returns whether anything changed.
fn timer_fired(
    step: &mut Step<'_>,
    transfer_id: &str,
    event: InEvent,
    detail: &str,
) -> Result<bool, Error> {
    let Some(document) = step.load(transfer_id)? else {
        return Ok(false);
    };
    let TransferState::In(state) = document.state else {
        return Ok(false);
    };
    match in_side::apply(state, event) {
        Ok(transition) if transition.next != state || !transition.actions.is_empty() => {
            apply(step, transfer_id, event, detail.to_owned(), 0)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// The transfer-out bureau answered the query about the transfer.
pub fn transfer_out_answered(
    step: &mut Step<'_>,
    transfer_id: &str,
    view: TransferOutView,
    attempt: u32,
) -> Result<(), Error> {
    let detail = match view {
        TransferOutView::Unknown => "the transfer-out bureau does not know the transfer".to_owned(),
        TransferOutView::Refused(reason) => format!(
            "the transfer-out bureau refused the transfer: {}",
            reason.message()
        ),
        TransferOutView::EndedWithoutForm => {
            "the transfer-out bureau ended the transfer without a form (paid out)".to_owned()
        }
        TransferOutView::Open => {
            "the transfer-out bureau is still working on it; waiting for the form".to_owned()
        }
    };
    let event = InEvent::TransferOutAnswered(view);
    if view == TransferOutView::Open {
        // No change of state, but the answer belongs in the history.
        let from = step.load_existing(transfer_id)?.state.name();
        return step.note(
            transfer_id,
            Happening {
                kind: event.name(),
                from_state: from,
                detail,
                attempt,
            },
        );
    }
    apply(step, transfer_id, event, detail, attempt).map(drop)
}

/// The transfer-out bureau decided on the request.
pub fn request_answered(
    step: &mut Step<'_>,
    transfer_id: &str,
    decision: &Decision,
    attempt: u32,
) -> Result<(), Error> {
    let (event, detail) = match decision {
        Decision::Accepted { .. } => (
            InEvent::RequestAccepted,
            "the transfer-out bureau accepted".to_owned(),
        ),
        // Accepted pending: the form comes once the review accepts, and the form's timer counts
        // from the transfer-out deadline as after an acceptance.
        Decision::UnderReview { decided_on, .. } => (
            InEvent::RequestAccepted,
            match decided_on {
                Some(day) => format!("the transfer-out bureau reviews the request until {day}"),
                None => "the transfer-out bureau reviews the request".to_owned(),
            },
        ),
        Decision::Refused { reason, .. } => (
            InEvent::RequestRefused(*reason),
            format!("the transfer-out bureau refused: {}", reason.message()),
        ),
    };
    apply(step, transfer_id, event, detail, attempt).map(drop)
}

/// Checks an arriving form and credits it exactly once.
pub fn receive_form(step: &mut Step<'_>, form: &InsuranceForm) -> Result<FormOutcome, Error> {
    let certno = form.certno.expose_unmasked();
    let existing = step.load(&form.transfer_id)?;
    let person = step.person(certno)?;
    let open_transfer = step.tx.open_transfer_of(certno)?;
    let check = review::check_form(
        person.as_ref().map(|person| &person.facts),
        open_transfer.as_deref(),
        &form.transfer_id,
        form.in_region,
        !form.balance.is_zero(),
        step.ctx.site.pooling(),
    );
    // The fund leg: a form whose balance is remitted apart credits its years only.
    let check = match check {
        in_side::FormCheck::Accept if form.remittance_follows => {
            in_side::FormCheck::AcceptYearsAwaitFunds
        }
        other => other,
    };
    let (mut document, before, transition) = match existing {
        Some(document) => {
            let (before, transition) = form_for_known(&document, form, check)?;
            (document, Some(before), transition)
        }
        // Only a form its sender minted the id of may open a transfer here.
        None if !TransferId::parse(&form.transfer_id)
            .is_ok_and(|id| id.minted_by(step.ctx.site.pooling(), form.out_region)) =>
        {
            return Err(Error::NotFound("transfer".to_owned()));
        }
        None => {
            let transition = in_side::form_first(check);
            (
                first_form_document(step, form, transition.next),
                None,
                transition,
            )
        }
    };
    let changed = before != Some(transition.next) || !transition.actions.is_empty();
    if changed {
        document.state = TransferState::In(transition.next);
        document.flow = form.flow;
        document.balance = form.balance_disposition;
        document.form_received_on = Some(step.ctx.today());
        let mut brought_in = Vec::new();
        if transition
            .actions
            .iter()
            .any(|action| matches!(action, InAction::CreditForm | InAction::CreditYears))
        {
            // The document records what the credit below moves (with a remittance to come, the
            // balance it must match).
            let credit = months_credited(step, form, person.as_ref());
            document.amount_cents = form.balance.cents();
            document.remittance_due_on = remittance_due_on(step, form, transition.next)?;
            document.contribution_months = credit.months;
            document.continuity = continuity(step, form, person.as_ref());
            brought_in = credit.brought_in;
        }
        save_form_arrival(step, &mut document, before, form)?;
        credit_form(step, &document, &transition.actions, &brought_in)?;
    }
    Ok(outcome(&document, step.ctx.now))
}

/// Performs a form's actions: the years, and the balance unless a remittance brings it.
fn credit_form(
    step: &mut Step<'_>,
    document: &TransferDocument,
    actions: &[InAction],
    brought_in: &[ContributionPeriod],
) -> Result<(), Error> {
    for action in actions {
        match action {
            InAction::CreditForm => {
                credit_balance(step, document)?;
                credit_years(step, document, brought_in)?;
            }
            InAction::CreditYears => credit_years(step, document, brought_in)?,
            InAction::CreditBalance
            | InAction::HoldRemittance
            | InAction::ReturnHeld
            | InAction::SendTransferOutRequest
            | InAction::QueryTransferOut
            | InAction::WithdrawRequest => {
                return Err(Error::Internal(
                    "a form asked for more than its credit".to_owned(),
                ));
            }
        }
    }
    Ok(())
}

/// What a form credits: every month of its periods the person's record here does not hold yet,
/// converted as this region's policy says for the scheme the person joins.
fn months_credited(
    step: &Step<'_>,
    form: &InsuranceForm,
    person: Option<&crate::persons::PersonRecord>,
) -> credit::MonthsCredit {
    let in_policy = step.ctx.site.policy(form.in_region);
    let (held, scheme) = person.map_or((&[][..], form.scheme), |p| {
        (p.periods.as_slice(), Some(p.facts.scheme))
    });
    credit::months_to_credit(
        &form.periods,
        held,
        scheme.unwrap_or(Scheme::Employee),
        in_policy,
    )
}

/// When the person's benefits start here after this move (DOMAIN.md, continuity rules), from
/// the form's periods and the person's record here; `None` without either.
fn continuity(
    step: &Step<'_>,
    form: &InsuranceForm,
    person: Option<&crate::persons::PersonRecord>,
) -> Option<yibao_domain::continuity::Continuity> {
    let person = person?;
    let enrolled_from = YearMonth::parse(&person.row.fst_insu_ym).ok()?;
    let input = yibao_domain::continuity::input_of_move(
        &form.periods,
        form.scheme.unwrap_or(person.facts.scheme),
        &person.periods,
        form.in_region,
        enrolled_from,
        person.facts.scheme,
    )?;
    let policy = step.ctx.site.policy(form.in_region);
    Some(yibao_domain::continuity::benefit_start(&input, policy))
}

/// A form for a transfer this bureau knows: from the transfer's own regions, moving its
/// machine; the state before and the transition.
fn form_for_known(
    document: &TransferDocument,
    form: &InsuranceForm,
    check: in_side::FormCheck,
) -> Result<(InState, Transition<InState, InAction>), Error> {
    let addressed = Addressed {
        transfer_id: form.transfer_id.clone(),
        out_region: form.out_region.to_string(),
        in_region: form.in_region.to_string(),
    };
    check_addressed(document, &addressed)?;
    let TransferState::In(before) = document.state else {
        return Err(Error::Internal(
            "form for a transfer-out document".to_owned(),
        ));
    };
    Ok((before, in_side::apply(before, InEvent::FormArrived(check))?))
}

/// The document of a transfer whose first message is its form (started at transfer-out).
fn first_form_document(step: &Step<'_>, form: &InsuranceForm, state: InState) -> TransferDocument {
    TransferDocument {
        certno: form.certno.expose_unmasked().to_owned(),
        psn_name: form.psn_name.clone(),
        trafout_admdvs: form.out_region.to_string(),
        trafin_admdvs: form.in_region.to_string(),
        contribution_months: form.contribution_months,
        ..TransferDocument::opening(
            form.transfer_id.clone(),
            Initiator::TransferOut,
            TransferState::In(state),
            // Deadlines count from the application day the form carries.
            form.applied_on.unwrap_or_else(|| step.ctx.today()),
            step.ctx.now,
        )
    }
}

fn save_form_arrival(
    step: &mut Step<'_>,
    document: &mut TransferDocument,
    before: Option<InState>,
    form: &InsuranceForm,
) -> Result<(), Error> {
    let detail = match document.state {
        TransferState::In(InState::Credited | InState::Completed) => format!(
            "form checked; credited {} months and {}",
            document.contribution_months, form.balance
        ),
        TransferState::In(InState::AwaitingFunds) => format!(
            "form checked; credited {} months; the balance {} is credited when its remittance \
             arrives and matches (due by {})",
            document.contribution_months,
            form.balance,
            document
                .remittance_due_on
                .map_or_else(String::new, |day| day.to_string())
        ),
        TransferState::In(InState::Rejected(reason)) => {
            format!("form refused: {}", reason.message())
        }
        _ => "form arrived".to_owned(),
    };
    let happening = Happening {
        kind: "FORM_ARRIVED",
        from_state: before.map(InState::name).unwrap_or(""),
        detail,
        attempt: 0,
    };
    match before {
        Some(_) => step.update(document, happening),
        None => step.insert(document, happening),
    }
}

/// The last day the remittance of a form credited now is on time, when the machine waits for
/// one: the transfer-out region's delay and a grace, on the working calendar.
fn remittance_due_on(
    step: &Step<'_>,
    form: &InsuranceForm,
    next: InState,
) -> Result<Option<chrono::NaiveDate>, Error> {
    if next != InState::AwaitingFunds {
        return Ok(None);
    }
    let policy = step.ctx.site.policy(form.out_region).remittance;
    yibao_domain::remittance::remittance_deadline(
        Some(policy),
        step.ctx.today(),
        &step.ctx.site.calendar,
    )
    .map(|deadline| Some(deadline.due_on))
    .map_err(|error| Error::Internal(format!("the remittance deadline: {error}")))
}

/// `InAction::CreditForm` and `CreditBalance`: the form's balance from the transfer-out
/// region's fund into the personal account.
fn credit_balance(step: &mut Step<'_>, document: &TransferDocument) -> Result<(), Error> {
    let to = |_| account::person(&document.certno);
    post_from_origin(step, document, to, document.amount_cents, reason::CREDIT)
}

/// Posts `amount_cents` from the transfer's transfer-out pooling region's account to the
/// account `to` names (given that region).
fn post_from_origin(
    step: &mut Step<'_>,
    document: &TransferDocument,
    to: impl FnOnce(RegionCode) -> String,
    amount_cents: u64,
    reason: &'static str,
) -> Result<(), Error> {
    let origin = step
        .ctx
        .site
        .stored_pooling_region("trafout_admdvs", &document.trafout_admdvs)?;
    step.post(Movement {
        from: account::platform(origin),
        to: to(origin),
        amount_cents,
        transfer_id: &document.transfer_id,
        reason,
    })
}

/// `InAction::CreditForm` and `CreditYears`: the months as deemed months, and the periods
/// brought in kept on the person's record (a later transfer's form lists them).
fn credit_years(
    step: &mut Step<'_>,
    document: &TransferDocument,
    brought_in: &[ContributionPeriod],
) -> Result<(), Error> {
    if let Some(mut person) = step.tx.person(&document.certno)? {
        person.deemed_months =
            credit::deemed_months_after_credit(person.deemed_months, document.contribution_months);
        if !brought_in.is_empty() {
            let mut periods = crate::persons::periods_of(&person)?;
            periods.extend_from_slice(brought_in);
            person.periods_json = serde_json::to_string(&periods)
                .map_err(|error| Error::Internal(format!("periods do not encode: {error}")))?;
        }
        step.tx.update_person(&person)?;
    }
    Ok(())
}

/// Checks a remittance of a form's balance (the fund leg, infno 9106) against the form and
/// credits it exactly once when it matches to the cent; a remittance that does not match is
/// held in suspense, crediting no one. Answers what it found (`Matches` again for a transfer
/// already credited in full).
pub fn receive_remittance(
    step: &mut Step<'_>,
    remittance: &Remittance,
) -> Result<RemittanceCheck, Error> {
    let transfer_id = remittance.addressed.transfer_id.as_str();
    let mut document = step.load_existing(transfer_id)?;
    check_addressed(&document, &remittance.addressed)?;
    let TransferState::In(before) = document.state else {
        return Err(Error::Internal(
            "a remittance for a transfer-out document".to_owned(),
        ));
    };
    // Credited in full already: by a matching remittance (answered so again), or with a form
    // that carried the balance (no remittance was ever due: out of order).
    if before.has_credited_balance() {
        return match document.remittance_due_on {
            Some(_) => Ok(RemittanceCheck::Matches),
            None => Err(yibao_domain::transfer::IllegalEvent {
                state: before.name(),
                event: InEvent::RemittanceArrived(RemittanceCheck::Matches).name(),
            }
            .into()),
        };
    }
    let expected = Money::from_cents(document.amount_cents)
        .map_err(|_| Error::Internal("stored transfer has a bad amount".to_owned()))?;
    let check = RemittanceCheck::of(expected, remittance.amount);
    let event = InEvent::RemittanceArrived(check);
    let Transition { next, actions } = in_side::apply(before, event)?;
    document.state = TransferState::In(next);
    let mut detail = remittance_detail(check, expected, remittance.amount);
    let returned = held_to_return(&mut document, before, &actions)?;
    if let Some(held) = &returned {
        detail.push_str(&format!(
            "; the {} held before goes back to the transfer-out region's fund",
            held.amount_text()
        ));
    }
    if actions.contains(&InAction::HoldRemittance) {
        note_held(&mut document, remittance)?;
    }
    let happening = Happening {
        kind: event.name(),
        from_state: before.name(),
        detail,
        attempt: 0,
    };
    step.update(&mut document, happening)?;
    for action in actions {
        match action {
            InAction::CreditBalance => credit_balance(step, &document)?,
            InAction::HoldRemittance => hold_remittance(step, &document, remittance.amount)?,
            InAction::ReturnHeld => {
                let held = returned.as_ref().ok_or_else(|| {
                    Error::Internal("a return asked for with nothing held".to_owned())
                })?;
                return_held(step, &document, held)?;
            }
            other => {
                return Err(Error::Internal(format!("a remittance asked for {other:?}")));
            }
        }
    }
    Ok(check)
}

/// What the history says of a remittance checked against the form's `expected` balance.
fn remittance_detail(check: RemittanceCheck, expected: Money, amount: Money) -> String {
    match check {
        RemittanceCheck::Matches => {
            format!("the remittance of {expected} matched the form; credited")
        }
        RemittanceCheck::Short | RemittanceCheck::Over => format!(
            "the remittance of {amount} does not match the form's {expected}; refused, held in \
             suspense"
        ),
    }
}

/// A remittance held (`InAction::HoldRemittance`): its amount added to what the transfer holds,
/// its msgid kept for the return.
fn note_held(document: &mut TransferDocument, remittance: &Remittance) -> Result<(), Error> {
    document.held_cents = document
        .held_cents
        .checked_add(remittance.amount.cents())
        .ok_or_else(|| Error::Internal("held money overflows".to_owned()))?;
    document.remittance_msgid = Some(remittance.msgid.clone());
    Ok(())
}

/// Money held for a transfer, on its way back to the transfer-out region's fund.
#[derive(Debug)]
struct HeldReturn {
    /// How much, in cents.
    amount_cents: u64,
    /// The remittance it came on (the latest one held).
    remittance_msgid: String,
    /// Why it was refused.
    check: RemittanceCheck,
}

impl HeldReturn {
    fn amount_text(&self) -> String {
        Money::from_cents(self.amount_cents).map_or_else(
            |_| format!("{} cents", self.amount_cents),
            |money| money.to_string(),
        )
    }
}

/// When the machine returns held money (`InAction::ReturnHeld`): what goes back, taken off the
/// document (nothing is held after it).
fn held_to_return(
    document: &mut TransferDocument,
    before: InState,
    actions: &[InAction],
) -> Result<Option<HeldReturn>, Error> {
    if !actions.contains(&InAction::ReturnHeld) {
        return Ok(None);
    }
    let check = match before {
        InState::FundsHeld(in_side::FundsProblem::Over) => RemittanceCheck::Over,
        _ => RemittanceCheck::Short,
    };
    let remittance_msgid = document.remittance_msgid.take().ok_or_else(|| {
        Error::Internal("held money without the msgid of its remittance".to_owned())
    })?;
    let amount_cents = std::mem::take(&mut document.held_cents);
    if amount_cents == 0 {
        return Err(Error::Internal("a return with nothing held".to_owned()));
    }
    Ok(Some(HeldReturn {
        amount_cents,
        remittance_msgid,
        check,
    }))
}

/// `InAction::ReturnHeld`: the held money from suspense back to the transfer-out region's fund,
/// and ReturnRemittance (9107) to tell its bureau, which remits again.
fn return_held(
    step: &mut Step<'_>,
    document: &TransferDocument,
    held: &HeldReturn,
) -> Result<(), Error> {
    let origin = step
        .ctx
        .site
        .stored_pooling_region("trafout_admdvs", &document.trafout_admdvs)?;
    step.post(Movement {
        from: account::suspense(origin),
        to: account::platform(origin),
        amount_cents: held.amount_cents,
        transfer_id: &document.transfer_id,
        reason: reason::RETURN_HELD,
    })?;
    let route = Route {
        sender: &document.trafin_admdvs,
        receiver: &document.trafout_admdvs,
    };
    let message = Outgoing::ReturnRemittance {
        amount_cents: held.amount_cents,
        remittance_msgid: held.remittance_msgid.clone(),
        check: held.check,
    };
    queue::enqueue(step, &document.transfer_id, route, message)
}

/// Who returned held money, and why: recorded in the transfer's history.
#[derive(Debug, Clone)]
pub struct Returning {
    /// The operator's name or staff number.
    pub operator: String,
    /// Why (what the transfer-out bureau was told, and how).
    pub reason: String,
}

/// An operator returns the money held for a transfer whose remittance was refused as short or
/// over (退回): it leaves suspense for the transfer-out region's fund, ReturnRemittance tells the
/// transfer-out bureau (which remits again), and the transfer waits for funds again, its
/// remittance deadline 5 working days from today. A transfer holding nothing is refused
/// (`FAILED_PRECONDITION`, naming its state) and nothing changes, so a repeated call returns
/// nothing twice.
pub fn return_held_remittance(
    step: &mut Step<'_>,
    transfer_id: &str,
    returning: &Returning,
) -> Result<TransferDocument, Error> {
    let mut document = step.load_existing(transfer_id)?;
    let before = match document.state {
        TransferState::In(state @ InState::FundsHeld(problem)) if problem.holds_money() => state,
        state => {
            return Err(Error::FailedPrecondition(format!(
                "outcome: transfer {transfer_id} is {} and holds no remittance; only a transfer \
                 whose remittance was refused as short or over (FUNDS_HELD, money held) has \
                 money to return",
                state.name()
            )));
        }
    };
    let event = InEvent::HeldReturned;
    let Transition { next, actions } = in_side::apply(before, event)?;
    let held = held_to_return(&mut document, before, &actions)?
        .ok_or_else(|| Error::Internal("an operator's return returned nothing".to_owned()))?;
    document.state = TransferState::In(next);
    let deadline = step
        .ctx
        .site
        .calendar
        .add_working_days(
            step.ctx.today(),
            yibao_domain::remittance::REMITTANCE_GRACE_WORKING_DAYS,
        )
        .map_err(|error| Error::Internal(format!("the remittance deadline: {error}")))?;
    document.remittance_due_on = Some(deadline.due_on);
    let detail = format!(
        "returned by operator {}: the {} held goes back to the transfer-out region's fund, \
         which is asked to remit the balance again by {}; {}",
        returning.operator,
        held.amount_text(),
        deadline.due_on,
        returning.reason
    );
    let happening = Happening {
        kind: "OPERATOR_RESOLVED",
        from_state: before.name(),
        detail,
        attempt: 0,
    };
    step.update(&mut document, happening)?;
    return_held(step, &document, &held)?;
    Ok(document)
}

/// `InAction::HoldRemittance`: remitted money that does not match its form, from the
/// transfer-out region's fund into suspense.
fn hold_remittance(
    step: &mut Step<'_>,
    document: &TransferDocument,
    amount: Money,
) -> Result<(), Error> {
    post_from_origin(
        step,
        document,
        account::suspense,
        amount.cents(),
        reason::HOLD,
    )
}

/// The remittance deadline passed without a remittance: the transfer is flagged for an
/// operator (a matching remittance arriving later still completes it). Returns whether
/// anything changed.
pub fn remittance_overdue(step: &mut Step<'_>, transfer_id: &str) -> Result<bool, Error> {
    let detail = "the remittance of the balance did not arrive by its deadline; an operator is \
                  asked to follow it up";
    timer_fired(step, transfer_id, InEvent::RemittanceOverdue, detail)
}

/// The answer a form gets from the transfer's current state.
pub fn outcome(document: &TransferDocument, now: chrono::DateTime<chrono::Utc>) -> FormOutcome {
    match document.state {
        TransferState::In(state) if state.has_credited() => FormOutcome::Credited(Credit {
            months: document.contribution_months,
            // Awaiting its remittance, the balance is not credited yet.
            amount_cents: if state.has_credited_balance() {
                document.amount_cents
            } else {
                0
            },
            at: now,
        }),
        state => FormOutcome::Refused(state.refusal().unwrap_or(RefusalReason::Aborted)),
    }
}

/// Answers an abort: aborts a transfer that has not credited (remembering an unknown one as
/// aborted, so a late form is refused) and says whether it had credited, and what.
pub fn abort(
    step: &mut Step<'_>,
    message: &Addressed,
) -> Result<(InCredit, Option<Credit>), Error> {
    let transfer_id = message.transfer_id.as_str();
    let document = match step.load(transfer_id)? {
        Some(document) => {
            check_addressed(&document, message)?;
            let detail = "the transfer-out bureau aborted".to_owned();
            apply(step, transfer_id, InEvent::AbortArrived, detail, 0)?
        }
        None => abort_unknown(step, message)?,
    };
    Ok(match outcome(&document, document.updated_at) {
        FormOutcome::Credited(credit) => (InCredit::Credited, Some(credit)),
        FormOutcome::Refused(_) => (InCredit::NotCredited, None),
    })
}

/// The settlement of a transfer credited by an earlier version (ConfirmSettlement).
pub fn settlement_confirmed(step: &mut Step<'_>, message: &Addressed) -> Result<(), Error> {
    let document = step.load_existing(&message.transfer_id)?;
    check_addressed(&document, message)?;
    let detail = "the transfer-out bureau settled the balance".to_owned();
    apply(
        step,
        &message.transfer_id,
        InEvent::SettlementConfirmed,
        detail,
        0,
    )?;
    Ok(())
}

/// A message about a transfer must come from its transfer-out region to its transfer-in region
/// (documents of earlier versions that name no regions are taken as they are).
fn check_addressed(document: &TransferDocument, message: &Addressed) -> Result<(), Error> {
    let parties = [
        (
            "envelope.sender_region_code",
            &document.trafout_admdvs,
            &message.out_region,
            "the transfer's transfer-out region",
        ),
        (
            "envelope.receiver_region_code",
            &document.trafin_admdvs,
            &message.in_region,
            "the transfer's transfer-in region",
        ),
    ];
    for (field, stored, named, what) in parties {
        if !stored.is_empty() && stored != named {
            return Err(Error::invalid(field, format!("is not {what}")));
        }
    }
    Ok(())
}

/// An abort for a transfer never seen here: remembered through the machine as aborted, with the
/// regions it came from and went to. Only an id its sender minted may be remembered so: an id
/// this bureau minted and does not know is an unknown transfer (no one else may occupy it).
fn abort_unknown(step: &mut Step<'_>, message: &Addressed) -> Result<TransferDocument, Error> {
    let minted_by_sender = TransferId::parse(&message.transfer_id)
        .ok()
        .zip(RegionCode::parse(&message.out_region).ok())
        .is_some_and(|(id, sender)| id.minted_by(step.ctx.site.pooling(), sender));
    if !minted_by_sender {
        return Err(Error::NotFound("transfer".to_owned()));
    }
    let transition = in_side::abort_first();
    let mut document = TransferDocument::opening(
        message.transfer_id.clone(),
        Initiator::TransferOut,
        TransferState::In(transition.next),
        step.ctx.today(),
        step.ctx.now,
    );
    document.trafout_admdvs = message.out_region.clone();
    document.trafin_admdvs = message.in_region.clone();
    step.insert(
        &mut document,
        Happening {
            kind: "ABORT_ARRIVED",
            from_state: "",
            detail: "aborted before any form arrived".to_owned(),
            attempt: 0,
        },
    )?;
    Ok(document)
}

#[cfg(test)]
mod tests;
