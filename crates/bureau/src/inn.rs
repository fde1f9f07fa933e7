//! The transfer-in side's driver: take an application, check and credit an arriving form,
//! confirm settlement, answer an abort — each inside the caller's transaction.

use chrono::{DateTime, Utc};
use prost::Message;
use yibao_domain::id::ResidentId;
use yibao_domain::money::Money;
use yibao_domain::region::RegionCode;
use yibao_domain::scheme::{EnrolmentState, Scheme};
use yibao_domain::transfer::in_side::{self, FormCheck, InAction, InEvent, InState};
use yibao_domain::transfer::{RefusalReason, Transition};
use yibao_proto::platform::v1 as platform;
use yibao_store::Tx;

use crate::convert;
use crate::document::{BankAccount, Initiator, Side, Stored, StoredIn, TransferDocument};
use crate::error::Error;
use crate::messages::{self, Kind};
use crate::record::{self, Happening, person_account, reason};
use crate::state::Bureau;

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
    pub retiree_payout_requested: bool,
}

/// Opens a transfer applied for here and queues the request to the transfer-out bureau.
pub fn apply_here(
    tx: &mut dyn Tx,
    bureau: &Bureau,
    application: &Application,
) -> Result<TransferDocument, Error> {
    let certno = application.certno.expose_unmasked();
    if application
        .out_region
        .same_pooling_region(application.in_region)
    {
        return Err(Error::Refused(RefusalReason::SamePoolingRegion));
    }
    let person = tx.person(certno)?;
    let enrolled = person.as_ref().is_some_and(|person| {
        person.psn_insu_stas == EnrolmentState::Normal.code()
            && RegionCode::parse(&person.insu_admdvs)
                .is_ok_and(|code| code.same_pooling_region(application.in_region))
    });
    let Some(person) = person.filter(|_| enrolled) else {
        return Err(Error::Refused(RefusalReason::NotEnrolledAtTransferIn));
    };
    if let Some(open) = tx.open_transfer_of(certno)? {
        return Err(Error::OpenTransferExists(open));
    }
    let origin = bureau.region("trafout_admdvs", application.out_region)?;
    if !origin.connected || origin.bureau != Some(bureau.role.peer()) {
        return Err(Error::Refused(RefusalReason::RegionNotHosted));
    }
    let now = bureau.clock.now();
    let today = bureau.clock.today();
    let transfer_id = record::mint_transfer_id(tx, bureau, application.in_region)?;
    let Transition { next, actions } = in_side::apply_here();
    // Both regions in instant mode (秒到账): the application's answer waits for the exchange.
    let instant = bureau.policy(application.out_region).instant_mode
        && bureau.policy(application.in_region).instant_mode;
    let mut document = TransferDocument {
        transfer_id: transfer_id.clone(),
        side: Side::In,
        initiator: Initiator::TransferIn,
        state: Stored::In(StoredIn::from_domain(next)),
        certno: certno.to_owned(),
        psn_name: application.psn_name.clone(),
        trafout_admdvs: application.out_region.to_string(),
        trafin_admdvs: application.in_region.to_string(),
        flow_kind: 0,
        balance_disposition: 0,
        amount_cents: 0,
        contribution_months: 0,
        bank_account: application.bank_account.clone(),
        retiree_payout_requested: application.retiree_payout_requested,
        instant,
        applied_on: today,
        form_received_on: None,
        created_at: now,
        updated_at: now,
    };
    let detail = "applied at the transfer-in bureau".to_owned();
    record::save(
        tx,
        bureau,
        &mut document,
        true,
        Happening {
            kind: "APPLIED",
            from_state: "",
            detail,
            attempt: 0,
        },
    )?;
    let in_scheme = convert::wire_scheme(person.insutype) as i32;
    for action in actions {
        if action == InAction::SendTransferOutRequest {
            let application = platform::TransferApplication {
                transfer_id: transfer_id.clone(),
                certno: certno.to_owned(),
                psn_name: document.psn_name.clone(),
                insutype_at_transfer_in: in_scheme,
                trafout_admdvs: document.trafout_admdvs.clone(),
                trafin_admdvs: document.trafin_admdvs.clone(),
                applied_at: Some(messages::timestamp(now)),
                bank_account: document.bank_account.as_ref().map(|account| {
                    yibao_proto::common::v1::BankAccount {
                        bank_name: account.bank_name.clone(),
                        account_number: account.account_number.clone(),
                        account_holder_name: account.account_holder_name.clone(),
                    }
                }),
                retiree_payout_requested: document.retiree_payout_requested,
            };
            messages::enqueue(
                tx,
                bureau,
                Kind::RequestTransferOut,
                &transfer_id,
                &document.trafin_admdvs,
                &document.trafout_admdvs,
                |envelope| {
                    platform::RequestTransferOutRequest {
                        envelope: Some(envelope),
                        application: Some(application),
                    }
                    .encode_to_vec()
                },
            )?;
        }
    }
    Ok(document)
}

/// Applies an event to a transfer-in transfer (not the form: see [`receive_form`]).
pub fn apply(
    tx: &mut dyn Tx,
    bureau: &Bureau,
    transfer_id: &str,
    event: InEvent,
    detail: String,
    attempt: u32,
) -> Result<TransferDocument, Error> {
    let mut document = record::load(tx, transfer_id)?
        .ok_or_else(|| Error::NotFound(format!("transfer {transfer_id}")))?;
    let Stored::In(stored) = document.state.clone() else {
        return Err(Error::Internal(
            "a transfer-out document got a transfer-in event".to_owned(),
        ));
    };
    let before = stored.to_domain();
    let Transition { next, actions } = in_side::apply(before, event)?;
    if next == before && actions.is_empty() {
        return Ok(document);
    }
    debug_assert!(actions.is_empty(), "only a form credits");
    document.state = Stored::In(StoredIn::from_domain(next));
    record::save(
        tx,
        bureau,
        &mut document,
        false,
        Happening {
            kind: event.name(),
            from_state: before.name(),
            detail,
            attempt,
        },
    )?;
    Ok(document)
}

/// The outcome of a form's arrival, for the answer.
#[derive(Debug)]
pub enum FormOutcome {
    /// Credited (now or before): months and amount.
    Credited {
        months: u32,
        amount_cents: u64,
        at: DateTime<Utc>,
    },
    /// Refused.
    Refused(RefusalReason),
}

/// Checks an arriving form and credits it exactly once.
pub fn receive_form(
    tx: &mut dyn Tx,
    bureau: &Bureau,
    form: &platform::InsuranceInformationForm,
) -> Result<FormOutcome, Error> {
    let existing = record::load(tx, &form.transfer_id)?;
    let in_region = convert::region("form.trafin_admdvs", &form.trafin_admdvs)?;
    let amount = Money::parse(&form.personal_account_balance)
        .map_err(|error| Error::invalid("form.personal_account_balance", error))?;
    let applied_on = match form.applied_on.as_str() {
        "" => None,
        text => Some(
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map_err(|_| Error::invalid("form.applied_on", "must be a day, YYYY-MM-DD"))?,
        ),
    };
    let person = tx.person(&form.certno)?;
    let enrolled = person.as_ref().is_some_and(|person| {
        person.psn_insu_stas == EnrolmentState::Normal.code()
            && RegionCode::parse(&person.insu_admdvs)
                .is_ok_and(|code| code.same_pooling_region(in_region))
    });
    let other_open = match tx.open_transfer_of(&form.certno)? {
        Some(open) => open != form.transfer_id,
        None => false,
    };
    let check = if !enrolled {
        FormCheck::Refuse(RefusalReason::NotEnrolledAtTransferIn)
    } else if other_open {
        FormCheck::Refuse(RefusalReason::OpenTransferExists)
    } else {
        FormCheck::Accept
    };
    let now = bureau.clock.now();
    let (mut document, before, transition, new) = match existing {
        Some(document) => {
            let Stored::In(stored) = document.state.clone() else {
                return Err(Error::Internal(
                    "form for a transfer-out document".to_owned(),
                ));
            };
            let before = stored.to_domain();
            let transition = in_side::apply(before, InEvent::FormArrived(check))?;
            (document, Some(before), transition, false)
        }
        None => {
            let transition = in_side::form_first(check);
            let document = TransferDocument {
                transfer_id: form.transfer_id.clone(),
                side: Side::In,
                initiator: Initiator::TransferOut,
                state: Stored::In(StoredIn::from_domain(transition.next)),
                certno: form.certno.clone(),
                psn_name: form.psn_name.clone(),
                trafout_admdvs: form.trafout_admdvs.clone(),
                trafin_admdvs: form.trafin_admdvs.clone(),
                flow_kind: form.flow_kind,
                balance_disposition: form.balance_disposition,
                amount_cents: 0,
                contribution_months: form.contribution_months,
                bank_account: None,
                retiree_payout_requested: false,
                instant: false,
                // The application day the form carries (a malformed one is refused above).
                applied_on: applied_on.unwrap_or_else(|| bureau.clock.today()),
                form_received_on: None,
                created_at: now,
                updated_at: now,
            };
            (document, None, transition, true)
        }
    };
    let changed = new || before != Some(transition.next) || !transition.actions.is_empty();
    if changed {
        document.state = Stored::In(StoredIn::from_domain(transition.next));
        document.flow_kind = form.flow_kind;
        document.balance_disposition = form.balance_disposition;
        document.form_received_on = Some(bureau.clock.today());
        let credits = transition.actions.contains(&InAction::CreditForm);
        if credits {
            document.amount_cents = amount.cents();
            document.contribution_months = credited_months(bureau, form);
        }
        let detail = match transition.next {
            InState::Credited | InState::Completed => format!(
                "form checked; credited {} months and {}",
                document.contribution_months, amount
            ),
            InState::Rejected(reason) => format!("form refused: {}", reason.message()),
            _ => "form arrived".to_owned(),
        };
        record::save(
            tx,
            bureau,
            &mut document,
            new,
            Happening {
                kind: "FORM_ARRIVED",
                from_state: before.map(InState::name).unwrap_or(""),
                detail,
                attempt: 0,
            },
        )?;
        if credits {
            credit(tx, bureau, &document)?;
        }
    }
    Ok(outcome(&document, now))
}

fn credited_months(bureau: &Bureau, form: &platform::InsuranceInformationForm) -> u32 {
    let months = form.contribution_months;
    let to_employee = convert::domain_scheme(form.insutype) == Some(Scheme::Resident);
    match RegionCode::parse(&form.trafin_admdvs) {
        Ok(code) if to_employee => match bureau.policy(code).resident_to_employee_months_per_year {
            Some(rate) => yibao_domain::month::convert_resident_months(months, rate),
            None => months,
        },
        _ => months,
    }
}

fn credit(tx: &mut dyn Tx, bureau: &Bureau, document: &TransferDocument) -> Result<(), Error> {
    let from = format!("platform:{}", document.trafout_admdvs);
    record::post(
        tx,
        bureau,
        from,
        person_account(&document.certno),
        document.amount_cents,
        &document.transfer_id,
        reason::CREDIT,
    )?;
    if let Some(mut person) = tx.person(&document.certno)? {
        person.deemed_months = person
            .deemed_months
            .saturating_add(document.contribution_months);
        tx.update_person(&person)?;
    }
    Ok(())
}

/// The answer a form gets from the transfer's current state.
pub fn outcome(document: &TransferDocument, now: DateTime<Utc>) -> FormOutcome {
    match &document.state {
        Stored::In(StoredIn::Credited | StoredIn::Completed) => FormOutcome::Credited {
            months: document.contribution_months,
            amount_cents: document.amount_cents,
            at: now,
        },
        state => FormOutcome::Refused(state.refusal().unwrap_or(RefusalReason::Aborted)),
    }
}

/// Answers an abort: aborts a transfer that has not credited (remembering an unknown one as
/// aborted, so a late form is refused) and says whether it had credited.
pub fn abort(
    tx: &mut dyn Tx,
    bureau: &Bureau,
    transfer_id: &str,
    certno_hint: Option<&str>,
) -> Result<TransferDocument, Error> {
    if record::load(tx, transfer_id)?.is_some() {
        return apply(
            tx,
            bureau,
            transfer_id,
            InEvent::AbortArrived,
            "the transfer-out bureau aborted".to_owned(),
            0,
        );
    }
    let now = bureau.clock.now();
    let mut document = TransferDocument {
        certno: certno_hint.unwrap_or_default().to_owned(),
        ..TransferDocument::opening(
            transfer_id.to_owned(),
            Side::In,
            Initiator::TransferOut,
            Stored::In(StoredIn::Aborted),
            bureau.clock.today(),
            now,
        )
    };
    record::save(
        tx,
        bureau,
        &mut document,
        true,
        Happening {
            kind: "ABORT_ARRIVED",
            from_state: "",
            detail: "aborted before any form arrived".to_owned(),
            attempt: 0,
        },
    )?;
    Ok(document)
}
