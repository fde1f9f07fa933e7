//! The transfer-out side's driver: review an application, open the transfer, apply events, and
//! perform the actions the state machine asks for — all inside the caller's transaction.

use chrono::{DateTime, Utc};
use prost::Message;
use yibao_domain::classify::{
    self, ApplicationFacts, BalanceDisposition, BankAccountGiven, Connectivity, PayoutReason,
    PersonStatus, Refusal, RetireePayout,
};
use yibao_domain::id::ResidentId;
use yibao_domain::month::ContributionPeriod;
use yibao_domain::region::RegionCode;
use yibao_domain::scheme::{EnrolmentState, Scheme};
use yibao_domain::transfer::out_side::{
    self, AbortFallback, BalanceRoute, OutAction, OutEvent, Review,
};
use yibao_domain::transfer::{RefusalReason, Transition};
use yibao_proto::common::v1 as wire;
use yibao_proto::platform::v1 as platform;
use yibao_store::{PersonRow, Tx};

use crate::document::{self, BankAccount, Initiator, Side, Stored, StoredOut, TransferDocument};
use crate::error::Error;
use crate::messages::{self, Kind};
use crate::record::{self, Happening, person_account, reason};
use crate::state::Bureau;

/// An application as the transfer-out bureau reviews it, from either initiator.
#[derive(Debug, Clone)]
pub struct Application {
    /// The transfer id.
    pub transfer_id: String,
    /// The person.
    pub certno: ResidentId,
    /// The person's name as given.
    pub psn_name: String,
    /// Where the person leaves.
    pub out_region: RegionCode,
    /// Where the person goes.
    pub in_region: RegionCode,
    /// The scheme at the destination, if known (same as here when not).
    pub in_scheme: Option<Scheme>,
    /// A bank account for payouts.
    pub bank_account: Option<BankAccount>,
    /// Whether a retiree asked for a payout.
    pub retiree_payout_requested: bool,
    /// Who applied where.
    pub initiator: Initiator,
    /// When the person applied.
    pub applied_at: DateTime<Utc>,
}

/// The review's outcome.
#[derive(Debug)]
pub enum Decision {
    /// Accepted: the transfer is open (or already terminal, for a payout that completed).
    Accepted(Box<TransferDocument>),
    /// Refused for this reason; `open_transfer` names the blocking transfer when there is one.
    Refused(RefusalReason, Option<String>),
}

/// Reviews an application and, when accepted, opens the transfer and performs its first actions.
/// A refusal of a request from the transfer-in bureau is remembered (so a repeat gets the same
/// answer); a refusal of an application made here writes nothing.
pub fn review_and_open(
    tx: &mut dyn Tx,
    bureau: &Bureau,
    application: &Application,
) -> Result<Decision, Error> {
    if let Some(existing) = record::load(tx, &application.transfer_id)? {
        return Ok(match existing.state {
            Stored::Out(StoredOut::Rejected { .. }) => Decision::Refused(
                existing
                    .state
                    .refusal()
                    .unwrap_or(RefusalReason::UnknownPerson),
                None,
            ),
            _ => Decision::Accepted(Box::new(existing)),
        });
    }
    let certno = application.certno.expose_unmasked();
    let refusal = |reason| Ok(Decision::Refused(reason, None));
    let Some(person) = tx.person(certno)? else {
        return refusal(RefusalReason::UnknownPerson);
    };
    let here = RegionCode::parse(&person.insu_admdvs)
        .map_err(|_| Error::Internal("stored person has a malformed region".to_owned()))?;
    if !here.same_pooling_region(application.out_region) {
        return refusal(RefusalReason::UnknownPerson);
    }
    if person.psn_insu_stas != EnrolmentState::Suspended.code() {
        return refusal(RefusalReason::NotStoppedAtTransferOut);
    }
    if person.arrears_cents > 0 {
        return refusal(RefusalReason::Arrears);
    }
    if let Some(open) = tx.open_transfer_of(certno)? {
        return Ok(Decision::Refused(
            RefusalReason::OpenTransferExists,
            Some(open),
        ));
    }
    let out_scheme = Scheme::from_code(person.insutype)
        .map_err(|_| Error::Internal("stored person has an unknown scheme".to_owned()))?;
    let destination = bureau
        .directory
        .region(application.in_region.pooling_region());
    let connected = destination.is_some_and(|entry| entry.connected);
    let out_policy = bureau.policy(application.out_region);
    let in_policy = bureau.policy(application.in_region);
    let facts = ApplicationFacts {
        out_region: application.out_region,
        in_region: application.in_region,
        out_policy: &out_policy,
        in_policy: &in_policy,
        destination: if connected {
            Connectivity::Connected
        } else {
            Connectivity::NotConnected
        },
        out_scheme,
        in_scheme: application.in_scheme.unwrap_or(out_scheme),
        person: if person.retired {
            PersonStatus::Retired
        } else {
            PersonStatus::Working
        },
        retiree_payout: if application.retiree_payout_requested {
            RetireePayout::Requested
        } else {
            RetireePayout::NotRequested
        },
        bank_account: if application.bank_account.is_some() {
            BankAccountGiven::Given
        } else {
            BankAccountGiven::NotGiven
        },
    };
    let plan = match classify::classify(&facts) {
        Ok(plan) => plan,
        Err(Refusal::SamePoolingRegion) => return refusal(RefusalReason::SamePoolingRegion),
        Err(Refusal::RetireeMustRegisterRelocation) => {
            return refusal(RefusalReason::RetireeMustRegisterRelocation);
        }
        Err(Refusal::BankAccountRequired { .. }) => {
            return refusal(RefusalReason::BankAccountRequired);
        }
    };
    let review = match plan.balance {
        BalanceDisposition::MoveToAccount => Review::DeliverForm(BalanceRoute::MovesWithForm),
        BalanceDisposition::PayToBank(
            PayoutReason::DestinationNotConnected | PayoutReason::RetireeRelocated,
        ) => Review::PayToBankOnly,
        BalanceDisposition::PayToBank(
            PayoutReason::RegionPaysOut | PayoutReason::EmployeeToResident,
        ) => Review::DeliverForm(BalanceRoute::ToBankAfterCredit),
        BalanceDisposition::StaysUsableInProvince
        | BalanceDisposition::KeptUsableAtOrigin
        | BalanceDisposition::NoPersonalAccount => Review::DeliverForm(BalanceRoute::StaysPut),
    };
    // A payout-only outcome sends no form, so a transfer-in bureau that asked would wait
    // forever: such people (relocated retirees) apply at the transfer-out bureau.
    if review == Review::PayToBankOnly && application.initiator == Initiator::TransferIn {
        return refusal(RefusalReason::RetireeMustRegisterRelocation);
    }
    if matches!(review, Review::DeliverForm(_))
        && destination.and_then(|entry| entry.bureau) != Some(bureau.role.peer())
    {
        return refusal(RefusalReason::RegionNotHosted);
    }
    let moves_money = !matches!(review, Review::DeliverForm(BalanceRoute::StaysPut));
    let amount_cents = if moves_money {
        u64::try_from(tx.balance(&person_account(certno))?).unwrap_or(0)
    } else {
        0
    };
    let (flow, disposition) = document::wire_flow(&plan);
    let now = bureau.clock.now();
    let transition = out_side::open(review);
    let mut document = TransferDocument {
        transfer_id: application.transfer_id.clone(),
        side: Side::Out,
        initiator: application.initiator,
        state: Stored::Out(StoredOut::from_domain(transition.next)),
        certno: certno.to_owned(),
        psn_name: application.psn_name.clone(),
        trafout_admdvs: application.out_region.to_string(),
        trafin_admdvs: application.in_region.to_string(),
        flow_kind: flow as i32,
        balance_disposition: disposition as i32,
        amount_cents,
        contribution_months: contribution_months(&person),
        bank_account: application.bank_account.clone(),
        retiree_payout_requested: application.retiree_payout_requested,
        instant: plan.settlement == classify::Settlement::Instant,
        applied_on: yibao_runtime::clock::china_date(application.applied_at),
        form_received_on: None,
        created_at: now,
        updated_at: now,
    };
    let detail = format!("reviewed and accepted: {}", review_detail(review));
    record::save(
        tx,
        bureau,
        &mut document,
        true,
        Happening {
            kind: "ACCEPTED",
            from_state: "",
            detail,
            attempt: 0,
        },
    )?;
    perform(tx, bureau, &mut document, &person, &transition.actions)?;
    Ok(Decision::Accepted(Box::new(document)))
}

/// Remembers a refusal of a request from the transfer-in bureau, so repeats get the same answer.
pub fn remember_refusal(
    tx: &mut dyn Tx,
    bureau: &Bureau,
    application: &Application,
    refused: RefusalReason,
) -> Result<(), Error> {
    let now = bureau.clock.now();
    let mut document = TransferDocument {
        certno: application.certno.expose_unmasked().to_owned(),
        psn_name: application.psn_name.clone(),
        trafout_admdvs: application.out_region.to_string(),
        trafin_admdvs: application.in_region.to_string(),
        retiree_payout_requested: application.retiree_payout_requested,
        ..TransferDocument::opening(
            application.transfer_id.clone(),
            Side::Out,
            application.initiator,
            Stored::Out(StoredOut::Rejected {
                reason: refused.code().to_owned(),
            }),
            yibao_runtime::clock::china_date(application.applied_at),
            now,
        )
    };
    let detail = format!("refused: {}", refused.message());
    record::save(
        tx,
        bureau,
        &mut document,
        true,
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
    tx: &mut dyn Tx,
    bureau: &Bureau,
    transfer_id: &str,
    event: OutEvent,
    detail: String,
    attempt: u32,
) -> Result<TransferDocument, Error> {
    let mut document = record::load(tx, transfer_id)?
        .ok_or_else(|| Error::NotFound(format!("transfer {transfer_id}")))?;
    let Stored::Out(stored) = document.state.clone() else {
        return Err(Error::Internal(
            "a transfer-in document got a transfer-out event".to_owned(),
        ));
    };
    let before = stored.to_domain();
    let Transition { next, actions } = out_side::apply(before, event)?;
    if next == before && actions.is_empty() {
        return Ok(document);
    }
    document.state = Stored::Out(StoredOut::from_domain(next));
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
    if event == OutEvent::BankPaid {
        // The gateway confirmed: the balance in transit is now in the person's bank account.
        let id = document.transfer_id.clone();
        record::post(
            tx,
            bureau,
            "transit".to_owned(),
            "bank".to_owned(),
            document.amount_cents,
            &id,
            reason::PAY_TO_BANK,
        )?;
    }
    let person = tx
        .person(&document.certno)?
        .ok_or_else(|| Error::Internal("the transfer's person vanished".to_owned()))?;
    perform(tx, bureau, &mut document, &person, &actions)?;
    Ok(document)
}

/// The fallback an abort takes if the transfer-in bureau did not credit.
pub fn abort_fallback(document: &TransferDocument) -> AbortFallback {
    if document.bank_account.is_some() {
        AbortFallback::PayToBank
    } else {
        AbortFallback::ReturnToAccount
    }
}

fn perform(
    tx: &mut dyn Tx,
    bureau: &Bureau,
    document: &mut TransferDocument,
    person: &PersonRow,
    actions: &[OutAction],
) -> Result<(), Error> {
    let id = document.transfer_id.clone();
    let amount = document.amount_cents;
    let account = person_account(&document.certno);
    for action in actions {
        match action {
            OutAction::DebitAccountToTransit => {
                record::post(
                    tx,
                    bureau,
                    account.clone(),
                    "transit".to_owned(),
                    amount,
                    &id,
                    reason::DEBIT_TO_TRANSIT,
                )?;
            }
            OutAction::SettleTransitToTransferIn => {
                let to = format!("settled:{}", document.trafin_admdvs);
                record::post(
                    tx,
                    bureau,
                    "transit".to_owned(),
                    to,
                    amount,
                    &id,
                    reason::SETTLE,
                )?;
            }
            OutAction::ReverseTransitToAccount => {
                record::post(
                    tx,
                    bureau,
                    "transit".to_owned(),
                    account.clone(),
                    amount,
                    &id,
                    reason::REVERSE,
                )?;
            }
            OutAction::SendForm => {
                let form = form(bureau, document, person);
                messages::enqueue(
                    tx,
                    bureau,
                    Kind::DeliverForm,
                    &id,
                    &document.trafout_admdvs,
                    &document.trafin_admdvs,
                    |envelope| {
                        platform::DeliverInsuranceRecordRequest {
                            envelope: Some(envelope),
                            form: Some(form),
                        }
                        .encode_to_vec()
                    },
                )?;
            }
            OutAction::PayTransitToBank => {
                messages::enqueue(
                    tx,
                    bureau,
                    Kind::BankPayout,
                    &id,
                    &document.trafout_admdvs,
                    "bank",
                    |_| amount.to_string().into_bytes(),
                )?;
            }
            OutAction::SendAbort => {
                // An undelivered form must not overtake the abort: withdraw it. If it was
                // delivered and only its answer was lost, the abort's answer says "credited".
                tx.withdraw_messages(&id, Kind::DeliverForm.as_str())?;
                messages::enqueue(
                    tx,
                    bureau,
                    Kind::Abort,
                    &id,
                    &document.trafout_admdvs,
                    &document.trafin_admdvs,
                    |envelope| {
                        platform::AbortTransferRequest {
                            envelope: Some(envelope),
                            transfer_id: id.clone(),
                            reason_code: wire::RefusalReason::DeadlineExpired as i32,
                            reason: "the whole-process deadline passed without a credit".to_owned(),
                        }
                        .encode_to_vec()
                    },
                )?;
            }
        }
    }
    // The relationship has left this region once the transfer completed or was paid out.
    if matches!(
        document.state,
        Stored::Out(StoredOut::Completed | StoredOut::PaidToBank)
    ) {
        let mut ended = person.clone();
        ended.psn_insu_stas = EnrolmentState::Terminated.code();
        tx.update_person(&ended)?;
    }
    Ok(())
}

fn periods(person: &PersonRow) -> Vec<ContributionPeriod> {
    serde_json::from_str(&person.periods_json).unwrap_or_default()
}

fn contribution_months(person: &PersonRow) -> u32 {
    yibao_domain::month::total_months(&periods(person)) + person.deemed_months
}

fn form(
    bureau: &Bureau,
    document: &TransferDocument,
    person: &PersonRow,
) -> platform::InsuranceInformationForm {
    let periods = periods(person);
    platform::InsuranceInformationForm {
        transfer_id: document.transfer_id.clone(),
        certno: document.certno.clone(),
        psn_name: person.psn_name.clone(),
        insutype: crate::convert::wire_scheme(person.insutype) as i32,
        trafout_admdvs: document.trafout_admdvs.clone(),
        trafin_admdvs: document.trafin_admdvs.clone(),
        fst_insu_ym: person.fst_insu_ym.clone(),
        contribution_months: yibao_domain::month::total_months(&periods),
        periods: periods.iter().map(crate::convert::wire_period).collect(),
        deemed_months: person.deemed_months,
        // Only a balance that moves with the form is credited at the transfer-in bureau; one
        // paid to the bank after the credit is not on the form.
        personal_account_balance: crate::convert::money_text(
            if document.balance_disposition == wire::BalanceDisposition::MoveToAccount as i32 {
                document.amount_cents
            } else {
                0
            },
        ),
        balance_disposition: document.balance_disposition,
        flow_kind: document.flow_kind,
        initiator: crate::convert::wire_initiator(document.initiator) as i32,
        issued_at: Some(messages::timestamp(bureau.clock.now())),
        issuing_bureau_region_code: document.trafout_admdvs.clone(),
        applied_on: document.applied_on.to_string(),
    }
}

fn review_detail(review: Review) -> &'static str {
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
        Review::PayToBankOnly => "the balance is paid to the person's bank account",
        Review::Refused(_) => "refused",
    }
}

/// The event that the answer to a delivered form means.
pub fn form_answer_event(
    outcome: Option<&platform::credit_acknowledgement::Outcome>,
) -> Option<OutEvent> {
    use platform::credit_acknowledgement::Outcome;
    match outcome? {
        Outcome::Credited(_) => Some(OutEvent::FormCredited),
        Outcome::Refused(rejection) => Some(OutEvent::FormRefused(crate::convert::domain_reason(
            rejection.reason_code,
        ))),
    }
}
