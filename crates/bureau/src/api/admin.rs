//! The admin API (tests and load runs; only registered when configured): seed the synthetic
//! population, move the test clock, report ledger totals, sample persons of a flow, make the
//! store's commits fail (the storage fault seam), create people and change their lives (the
//! requests converted in `people.rs`, the step in `crate::lifecycle`).

use std::ops::Range;
use std::sync::Arc;

use chrono::TimeDelta;
use tonic::{Request, Response, Status};
use tracing::Instrument;
use yibao_domain::classify::Connectivity;
use yibao_domain::money::Money;
use yibao_domain::population::{self, Flow, SyntheticPerson};
use yibao_domain::scheme::EnrolmentState;
use yibao_domain::transfer::out_side::InCredit;
use yibao_domain::transfer::{Side, Stage};
use yibao_proto::admin::v1 as wire;
use yibao_proto::admin::v1::admin_service_server::AdminService;
use yibao_runtime::clock::MAX_ADVANCE_DAYS;
use yibao_runtime::directory::BureauRole;
use yibao_store::{CommitFault, OutboxMessage, PersonRow, Posting, Tx};

use crate::api::people;
use crate::convert::{self, money_text, timestamp};
use crate::error::Error;
use crate::journal::{account, reason};
use crate::lifecycle::{self, Asked};
use crate::outbox::queue;
use crate::record::{Happening, Step};
use crate::services::Services;
use crate::trace;
use crate::transfer_out::{self, Resolution};

/// The most parked messages one `ListOutboxMessages` or `RetryOutboxMessages` call handles.
const PARKED_LIMIT: u32 = 1_000;
/// The longest operator name or reason, in characters.
const OPERATOR_TEXT_LIMIT: usize = 200;

/// The most persons one `SeedPopulation` call writes.
const SEED_LIMIT: u64 = 1_000_000;
/// Persons written per transaction while seeding.
const SEED_CHUNK: u64 = 5_000;

/// Serves `AdminService`.
#[derive(Debug, Clone)]
pub struct AdminApi {
    services: Arc<Services>,
}

impl AdminApi {
    /// The API over a bureau.
    pub fn new(services: Arc<Services>) -> Self {
        Self { services }
    }

    /// Applies a change to one person's record in one step; the record as it now stands, and
    /// what was paid toward the arrears.
    async fn change_person(
        &self,
        asked: Asked,
    ) -> Result<(yibao_proto::bureau::v1::PersonRecord, Money), Error> {
        self.services
            .write(move |step| -> Result<_, Error> {
                let changed = lifecycle::change(step, &asked)?;
                Ok((
                    people::shown(step.tx, step.ctx.site.directory.pooling(), &asked.certno)?,
                    changed.paid,
                ))
            })
            .await
    }
}

/// This bureau's view of a synthetic person, if it hosts their region on its side.
pub fn materialise(bureau: &Services, person: &SyntheticPerson) -> Option<(PersonRow, u64)> {
    let periods = serde_json::to_string(&person.periods).ok()?;
    // A bureau plays each side for the regions it hosts: the person's record before the move
    // where it hosts the origin, the enrolment awaiting them where it hosts the destination.
    let site = &bureau.site;
    if site.hosts(person.out_region) {
        Some((
            PersonRow {
                certno: person.certno.expose_unmasked().to_owned(),
                psn_name: person.name.clone(),
                insu_admdvs: person.out_region.to_string(),
                insutype: person.out_scheme.code(),
                psn_insu_stas: person.out_state.code(),
                fst_insu_ym: person.first_insured.to_string(),
                retired: person.retired,
                arrears_cents: i64::try_from(person.arrears.cents()).unwrap_or(i64::MAX),
                deemed_months: 0,
                periods_json: periods,
                flow: person.flow.name().to_owned(),
            },
            person.balance.cents(),
        ))
    } else if site.hosts(person.in_region) && person.enrolled_at_transfer_in {
        Some((
            PersonRow {
                certno: person.certno.expose_unmasked().to_owned(),
                psn_name: person.name.clone(),
                insu_admdvs: person.in_region.to_string(),
                insutype: person.in_scheme.code(),
                psn_insu_stas: EnrolmentState::Normal.code(),
                fst_insu_ym: person.in_enrolled_from.to_string(),
                retired: person.retired,
                arrears_cents: 0,
                deemed_months: 0,
                periods_json: "[]".to_owned(),
                flow: person.flow.name().to_owned(),
            },
            0,
        ))
    } else {
        None
    }
}

/// The side a bureau reports its state counts under: a bureau named by a role (the default
/// pair's) reports under that role's side, as it always did; any other bureau plays both sides
/// and counts them together (unspecified), since a state name such as COMPLETED is both sides'.
fn reported_side(site: &crate::context::Site) -> yibao_proto::common::v1::Side {
    match site.name.role() {
        Some(BureauRole::TransferOut) => convert::wire_side(Side::Out),
        Some(BureauRole::TransferIn) => convert::wire_side(Side::In),
        None => yibao_proto::common::v1::Side::Unspecified,
    }
}

/// The count of one state among the counts per state.
fn count_in(states: &[(String, u64)], wanted: &str) -> u64 {
    states
        .iter()
        .filter(|(state, _)| state == wanted)
        .map(|(_, count)| count)
        .sum()
}

/// How many messages are parked (counted up to a bound: the admin API reads, it does not scan).
fn parked_count(tx: &mut dyn Tx, now: chrono::DateTime<chrono::Utc>) -> Result<u64, Error> {
    let parked = tx.messages_due_from(queue::parked_from(now), 10 * PARKED_LIMIT)?;
    Ok(parked.len() as u64)
}

/// How many open transfers have missed one of their statutory deadlines
/// ([`Overdue`](yibao_domain::overdue::Overdue)), counted without loading them: those past the
/// whole-process deadline, plus those in a state whose transfer-out duty is outstanding that
/// passed the transfer-out deadline although not yet the whole process's (the store keeps the
/// whole-process day; the domain's cutoff maps one deadline onto the other exactly). A
/// transfer-in deadline adds none: while the form is missing it falls on the whole-process day,
/// and a received form is credited or refused in the step that receives it.
pub(crate) fn count_overdue(
    tx: &mut dyn Tx,
    site: &crate::context::Site,
    states: &[(String, u64)],
    today: chrono::NaiveDate,
) -> Result<u64, Error> {
    let mut overdue = tx.count_open_transfers_due_before(today)?;
    let cutoff = yibao_domain::overdue::transfer_out_overdue_cutoff(&site.calendar, today)
        .map_err(|error| Error::Internal(format!("the transfer-out overdue cutoff: {error}")))?;
    let owing = states.iter().map(|(state, _)| state).filter(|state| {
        Stage::of_state_name(state)
            .is_some_and(|stage| yibao_domain::overdue::Outstanding::at(stage).transfer_out)
    });
    for state in owing {
        overdue += tx.count_open_transfers_in_state_due_between(state, today, cutoff)?;
    }
    Ok(overdue)
}

/// An operator's name or reason: 1 to 200 characters, no control characters.
fn operator_text(field: &'static str, text: &str) -> Result<String, Error> {
    let text = text.trim();
    let length = text.chars().count();
    if length == 0 || length > OPERATOR_TEXT_LIMIT {
        return Err(Error::invalid(
            field,
            format!("must be 1 to {OPERATOR_TEXT_LIMIT} characters"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must not hold control characters"));
    }
    Ok(text.to_owned())
}

/// A `ResolveTransfer` request in domain values.
fn resolution(request: &wire::ResolveTransferRequest) -> Result<(String, Resolving), Error> {
    let transfer_id = convert::transfer_id("transfer_id", &request.transfer_id)?;
    let outcome = match wire::ResolveOutcome::try_from(request.outcome) {
        Ok(wire::ResolveOutcome::Credited) => Outcome::Abort(InCredit::Credited),
        Ok(wire::ResolveOutcome::NotCredited) => Outcome::Abort(InCredit::NotCredited),
        Ok(wire::ResolveOutcome::ReturnRemittance) => Outcome::ReturnRemittance,
        Ok(wire::ResolveOutcome::RemittanceReturned) => Outcome::RemittanceReturned,
        Ok(wire::ResolveOutcome::Unspecified) | Err(_) => {
            return Err(Error::invalid(
                "outcome",
                "must be RESOLVE_OUTCOME_CREDITED, RESOLVE_OUTCOME_NOT_CREDITED, \
                 RESOLVE_OUTCOME_RETURN_REMITTANCE or RESOLVE_OUTCOME_REMITTANCE_RETURNED",
            ));
        }
    };
    let resolving = Resolving {
        operator: operator_text("operator", &request.operator)?,
        reason: operator_text("reason", &request.reason)?,
        outcome,
    };
    Ok((transfer_id, resolving))
}

/// What an operator resolving a transfer chose.
#[derive(Clone, Copy, Debug)]
enum Outcome {
    /// Transfer-out: an abort left unanswered, with what the transfer-in bureau confirmed.
    Abort(InCredit),
    /// Transfer-in: return the money held for a refused remittance.
    ReturnRemittance,
    /// Transfer-out: the refused remittance was returned outside the platform.
    RemittanceReturned,
}

/// A resolution, checked: who, why, and what.
#[derive(Clone, Debug)]
struct Resolving {
    operator: String,
    reason: String,
    outcome: Outcome,
}

/// Runs a resolution at a bureau of `role`: the outcome must be one of that role's.
fn resolve(
    step: &mut Step<'_>,
    role: BureauRole,
    transfer_id: &str,
    resolving: Resolving,
) -> Result<crate::document::TransferDocument, Error> {
    let Resolving {
        operator,
        reason,
        outcome,
    } = resolving;
    match (role, outcome) {
        (BureauRole::TransferOut, Outcome::Abort(credit)) => {
            let resolution = Resolution {
                operator,
                reason,
                credit,
            };
            transfer_out::resolve(step, transfer_id, &resolution)
        }
        (BureauRole::TransferOut, Outcome::RemittanceReturned) => {
            transfer_out::remittance_returned_by_operator(step, transfer_id, &operator, &reason)
        }
        (BureauRole::TransferIn, Outcome::ReturnRemittance) => {
            let returning = crate::transfer_in::Returning { operator, reason };
            crate::transfer_in::return_held_remittance(step, transfer_id, &returning)
        }
        (BureauRole::TransferIn, _) => Err(Error::FailedPrecondition(
            "outcome: a transfer-in bureau resolves only RESOLVE_OUTCOME_RETURN_REMITTANCE (a \
             remittance refused and held); the others are the transfer-out bureau's"
                .to_owned(),
        )),
        (BureauRole::TransferOut, Outcome::ReturnRemittance) => Err(Error::FailedPrecondition(
            "outcome: RESOLVE_OUTCOME_RETURN_REMITTANCE is the transfer-in bureau's, which \
             holds the refused remittance"
                .to_owned(),
        )),
    }
}

/// A `SeedPopulationRequest` in domain values: the seed and the indices to write.
fn seeding(request: &wire::SeedPopulationRequest) -> Result<(u64, Range<u64>), Error> {
    if request.count == 0 || request.count > SEED_LIMIT {
        return Err(Error::invalid(
            "count",
            format!("must be 1 to {SEED_LIMIT}"),
        ));
    }
    match request.first_index.checked_add(request.count) {
        Some(end) if end <= population::MAX_INDEX => Ok((request.seed, request.first_index..end)),
        _ => Err(Error::invalid(
            "first_index",
            format!(
                "first_index + count must not exceed {}",
                population::MAX_INDEX
            ),
        )),
    }
}

/// An `AdvanceClockRequest` in domain values: how far to move the test clock, not negative and
/// at most [`MAX_ADVANCE_DAYS`] days (a protobuf `Duration`'s nanos are below one second). The
/// bound is checked here, before any arithmetic: `by.seconds` near `i64::MAX` would overflow
/// `TimeDelta`.
fn advance_by(request: &wire::AdvanceClockRequest) -> Result<TimeDelta, Error> {
    let by = request
        .by
        .as_ref()
        .ok_or_else(|| Error::invalid("by", "required"))?;
    if by.seconds < 0 || by.nanos < 0 {
        return Err(Error::invalid("by", "must not be negative"));
    }
    if by.nanos > 999_999_999 {
        return Err(Error::invalid("by.nanos", "must be below 1,000,000,000"));
    }
    TimeDelta::try_seconds(by.seconds)
        .and_then(|seconds| seconds.checked_add(&TimeDelta::nanoseconds(i64::from(by.nanos))))
        .filter(|by| *by <= TimeDelta::days(MAX_ADVANCE_DAYS))
        .ok_or_else(|| Error::invalid("by", format!("at most {MAX_ADVANCE_DAYS} days")))
}

/// A `SamplePersonsRequest` in domain values: the flow and how many persons (0 is 100; at most
/// 10,000).
fn sampling(request: &wire::SamplePersonsRequest) -> Result<(Flow, u32), Error> {
    let flow = convert::population_flow("flow", &request.flow)?;
    let limit = match request.limit {
        0 => 100,
        n => n.min(10_000),
    };
    Ok((flow, limit))
}

/// A `RetryOutboxMessagesRequest` in domain values: one parked message or all, and who asks.
fn retrying(request: &wire::RetryOutboxMessagesRequest) -> Result<(Option<i64>, String), Error> {
    let only = match (request.message_id, request.all) {
        (0, true) => None,
        (id, false) if id > 0 => Some(id),
        _ => {
            let rule = "give a parked message's id, or all, not both";
            return Err(Error::invalid("message_id", rule));
        }
    };
    Ok((only, operator_text("operator", &request.operator)?))
}

/// A parked outbox message as the admin API lists it.
/// The store fault a `SetStorageFault` request asks for.
fn commit_fault(fault: i32) -> Result<CommitFault, Error> {
    match wire::StorageFault::try_from(fault) {
        Ok(wire::StorageFault::None) => Ok(CommitFault::Off),
        Ok(wire::StorageFault::DiskFull) => Ok(CommitFault::DiskFull),
        Ok(wire::StorageFault::IoError) => Ok(CommitFault::IoError),
        Ok(wire::StorageFault::Unspecified) | Err(_) => Err(Error::invalid(
            "fault",
            "must be STORAGE_FAULT_NONE, _DISK_FULL or _IO_ERROR",
        )),
    }
}

fn wire_outbox_message(message: OutboxMessage) -> wire::OutboxMessage {
    wire::OutboxMessage {
        message_id: message.id,
        transfer_id: message.transfer_id,
        kind: message.kind,
        peer: message.peer,
        msgid: message.msgid,
        attempts: message.attempts,
        last_error: message.last_error.unwrap_or_default(),
        created_at: Some(timestamp(message.created_at)),
    }
}

/// Makes parked messages due now (one, or all of the first [`PARKED_LIMIT`]), noting the
/// operator in each transfer's history; returns how many.
fn retry_parked(step: &mut Step<'_>, only: Option<i64>, operator: &str) -> Result<u32, Error> {
    let now = step.ctx.now;
    let parked = step
        .tx
        .messages_due_from(queue::parked_from(now), PARKED_LIMIT)?;
    let chosen: Vec<OutboxMessage> = parked
        .into_iter()
        .filter(|message| only.is_none_or(|id| id == message.id))
        .collect();
    if let (Some(id), true) = (only, chosen.is_empty()) {
        return Err(Error::NotFound(format!("parked message {id}")));
    }
    for message in &chosen {
        let why = format!("retried by operator {operator}");
        step.tx
            .message_retry_later(message.id, message.attempts, now, &why)?;
        let from = step
            .load(&message.transfer_id)?
            .map(|document| document.state.name())
            .unwrap_or("");
        step.note(
            &message.transfer_id,
            Happening {
                kind: "DELIVERY_RETRIED",
                from_state: from,
                detail: format!(
                    "{} parked after {} attempts; {why}",
                    message.kind, message.attempts
                ),
                attempt: message.attempts,
            },
        )?;
    }
    Ok(u32::try_from(chosen.len()).unwrap_or(u32::MAX))
}

fn seed_chunk(
    tx: &mut dyn Tx,
    bureau: &Services,
    seed: u64,
    first: u64,
    count: u64,
) -> Result<(u64, u64), Error> {
    let mut rows = Vec::new();
    let mut balances = Vec::new();
    for index in first..first.saturating_add(count) {
        let person = population::person(seed, index)
            .map_err(|error| Error::invalid("first_index", error))?;
        if let Some((row, balance)) = materialise(bureau, &person) {
            balances.push((row.certno.clone(), balance));
            rows.push(row);
        }
    }
    let mut written = 0;
    let mut present = 0;
    let now = bureau.clock.now();
    for (row, (certno, balance)) in rows.iter().zip(balances) {
        let counted = tx.insert_persons(std::slice::from_ref(row))?;
        written += counted.written;
        present += counted.already_present;
        if counted.written > 0 {
            open_account(tx, &certno, balance, now)?;
        }
    }
    Ok((written, present))
}

/// Opens a new person's personal account with `cents` (an opening posting, not a transfer: a
/// seeded or created person's balance); nothing for zero.
fn open_account(
    tx: &mut dyn Tx,
    certno: &str,
    cents: u64,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), Error> {
    if cents == 0 {
        return Ok(());
    }
    let amount_cents = i64::try_from(cents)
        .map_err(|_| Error::Internal("an opening balance does not fit the journal".to_owned()))?;
    tx.post(&Posting {
        from_account: account::OPENING.to_owned(),
        to_account: account::person(certno),
        amount_cents,
        transfer_id: None,
        reason: reason::OPENING.to_owned(),
        at,
    })?;
    Ok(())
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn create_person(
        &self,
        request: Request<wire::CreatePersonRequest>,
    ) -> Result<Response<wire::CreatePersonResponse>, Status> {
        let new = people::new_person(
            &self.services.site,
            request.get_ref(),
            self.services.clock.today(),
        )?;
        let person = self
            .services
            .write(move |step| -> Result<_, Error> {
                lifecycle::create(step, &new)?;
                let certno = new.certno.expose_unmasked();
                open_account(step.tx, certno, new.balance.cents(), step.ctx.now)?;
                people::shown(step.tx, step.ctx.site.directory.pooling(), &new.certno)
            })
            .await?;
        Ok(Response::new(wire::CreatePersonResponse {
            person: Some(person),
        }))
    }

    async fn enrol_person(
        &self,
        request: Request<wire::EnrolPersonRequest>,
    ) -> Result<Response<wire::EnrolPersonResponse>, Status> {
        let asked = people::enrolment(
            &self.services.site,
            request.get_ref(),
            self.services.clock.today(),
        )?;
        let (person, _) = self.change_person(asked).await?;
        Ok(Response::new(wire::EnrolPersonResponse {
            person: Some(person),
        }))
    }

    async fn stop_contributing(
        &self,
        request: Request<wire::StopContributingRequest>,
    ) -> Result<Response<wire::StopContributingResponse>, Status> {
        let asked = people::stop(request.get_ref(), self.services.clock.today())?;
        let (person, _) = self.change_person(asked).await?;
        Ok(Response::new(wire::StopContributingResponse {
            person: Some(person),
        }))
    }

    async fn pay_arrears(
        &self,
        request: Request<wire::PayArrearsRequest>,
    ) -> Result<Response<wire::PayArrearsResponse>, Status> {
        let asked = people::payment(request.get_ref(), self.services.clock.today())?;
        let (person, paid) = self.change_person(asked).await?;
        Ok(Response::new(wire::PayArrearsResponse {
            person: Some(person),
            paid_amount: paid.to_string(),
        }))
    }

    async fn retire_person(
        &self,
        request: Request<wire::RetirePersonRequest>,
    ) -> Result<Response<wire::RetirePersonResponse>, Status> {
        let asked = people::retirement(request.get_ref(), self.services.clock.today())?;
        let (person, _) = self.change_person(asked).await?;
        Ok(Response::new(wire::RetirePersonResponse {
            person: Some(person),
        }))
    }

    async fn add_fault_rule(
        &self,
        request: Request<wire::AddFaultRuleRequest>,
    ) -> Result<Response<wire::AddFaultRuleResponse>, Status> {
        let spec = convert::fault_rule(request.get_ref().rule.as_ref())?;
        let rule = self.services.faults.add(spec).map_err(|error| {
            if error.field == "rule" {
                Status::resource_exhausted(error.to_string())
            } else {
                Status::from(Error::invalid(error.field, error.rule).within("rule."))
            }
        })?;
        tracing::warn!(rule = %rule.id, label = %rule.spec.label, fault = ?rule.spec.fault, "fault rule added");
        Ok(Response::new(wire::AddFaultRuleResponse {
            rule: Some(convert::wire_fault_rule(&rule)),
        }))
    }

    async fn get_message_journal(
        &self,
        request: Request<wire::GetMessageJournalRequest>,
    ) -> Result<Response<wire::GetMessageJournalResponse>, Status> {
        let transfer_id = convert::bounded("transfer_id", &request.get_ref().transfer_id, 21)?;
        if transfer_id.is_empty() {
            return Err(Error::invalid("transfer_id", "required").into());
        }
        let entries = self
            .services
            .exchanges
            .of(transfer_id)
            .into_iter()
            .map(convert::wire_journal_entry)
            .collect();
        Ok(Response::new(wire::GetMessageJournalResponse { entries }))
    }

    async fn list_fault_rules(
        &self,
        _request: Request<wire::ListFaultRulesRequest>,
    ) -> Result<Response<wire::ListFaultRulesResponse>, Status> {
        let rules = self.services.faults.list();
        Ok(Response::new(wire::ListFaultRulesResponse {
            rules: rules
                .iter()
                .map(|rule| convert::wire_fault_rule(rule))
                .collect(),
        }))
    }

    async fn clear_fault_rules(
        &self,
        request: Request<wire::ClearFaultRulesRequest>,
    ) -> Result<Response<wire::ClearFaultRulesResponse>, Status> {
        let label = convert::bounded("label", &request.get_ref().label, 64)?;
        let removed = self.services.faults.clear(label);
        tracing::warn!(removed, label, "fault rules cleared");
        Ok(Response::new(wire::ClearFaultRulesResponse {
            removed: u32::try_from(removed).unwrap_or(u32::MAX),
        }))
    }

    async fn seed_population(
        &self,
        request: Request<wire::SeedPopulationRequest>,
    ) -> Result<Response<wire::SeedPopulationResponse>, Status> {
        let request = request.into_inner();
        let (seed, indices) = seeding(&request)?;
        let mut written = 0;
        let mut present = 0;
        let (mut first, end) = (indices.start, indices.end);
        while first < end {
            let count = SEED_CHUNK.min(end - first);
            let bureau = self.services.clone();
            let (w, p) = self
                .services
                .store
                .write(move |tx| seed_chunk(tx, &bureau, seed, first, count))
                .await?;
            written += w;
            present += p;
            first += count;
        }
        Ok(Response::new(wire::SeedPopulationResponse {
            persons_written: written,
            persons_already_present: present,
        }))
    }

    async fn advance_clock(
        &self,
        request: Request<wire::AdvanceClockRequest>,
    ) -> Result<Response<wire::AdvanceClockResponse>, Status> {
        let by = advance_by(&request.into_inner())?;
        let now = self
            .services
            .clock
            .advance(by)
            .map_err(|error| Error::FailedPrecondition(error.to_string()))?;
        let offset = self.services.clock.offset().num_milliseconds().to_string();
        self.services
            .store
            .write(move |tx| -> Result<(), Error> {
                Ok(tx.put_setting("clock_offset_ms", &offset)?)
            })
            .await?;
        self.services.dispatch_now.notify_one();
        Ok(Response::new(wire::AdvanceClockResponse {
            now: Some(timestamp(now)),
        }))
    }

    async fn get_clock(
        &self,
        _: Request<wire::GetClockRequest>,
    ) -> Result<Response<wire::GetClockResponse>, Status> {
        Ok(Response::new(wire::GetClockResponse {
            now: Some(timestamp(self.services.clock.now())),
        }))
    }

    async fn get_ledger_totals(
        &self,
        _: Request<wire::GetLedgerTotalsRequest>,
    ) -> Result<Response<wire::GetLedgerTotalsResponse>, Status> {
        let bureau = self.services.clone();
        let totals = self
            .services
            .store
            .read(move |tx| -> Result<wire::LedgerTotals, Error> {
                let by_reason = tx.totals_by_reason()?;
                let classes = tx.account_class_balances()?;
                let sum = |name: &str| {
                    by_reason
                        .iter()
                        .filter(|(r, _)| r == name)
                        .map(|(_, v)| *v)
                        .sum::<i64>()
                };
                let class = |name: &str| {
                    classes
                        .iter()
                        .filter(|(c, _)| c == name)
                        .map(|(_, v)| *v)
                        .sum::<i64>()
                };
                let text = |cents: i64| money_text(u64::try_from(cents).unwrap_or(0));
                let states = tx.count_transfers_by_state()?;
                let today = bureau.clock.today();
                let overdue = count_overdue(tx, &bureau.site, &states, today)?;
                let open = states
                    .iter()
                    .filter(|(state, _)| {
                        !Stage::of_state_name(state).is_some_and(Stage::is_terminal)
                    })
                    .map(|(_, count)| count)
                    .sum();
                Ok(wire::LedgerTotals {
                    accounts_balance_total: text(class("person")),
                    debited_to_transit_total: text(sum(reason::DEBIT_TO_TRANSIT)),
                    in_transit_total: text(class("transit")),
                    settled_out_total: text(sum(reason::SETTLE)),
                    returned_total: text(sum(reason::REVERSE)),
                    credited_total: text(sum(reason::CREDIT)),
                    paid_to_bank_total: text(sum(reason::PAY_TO_BANK)),
                    held_in_suspense_total: text(class("suspense")),
                    transfers_by_state: states
                        .iter()
                        .map(|(state, count)| wire::StateCount {
                            side: reported_side(&bureau.site) as i32,
                            state: convert::wire_state_of_name(state),
                            count: *count,
                        })
                        .collect(),
                    open_transfers: open,
                    overdue_transfers: overdue,
                    as_of: Some(timestamp(bureau.clock.now())),
                    needs_operator_transfers: count_in(&states, "NEEDS_OPERATOR")
                        + count_in(&states, "FUNDS_HELD"),
                    parked_messages: parked_count(tx, bureau.clock.now())?,
                })
            })
            .await?;
        Ok(Response::new(wire::GetLedgerTotalsResponse {
            totals: Some(totals),
        }))
    }

    async fn sample_persons(
        &self,
        request: Request<wire::SamplePersonsRequest>,
    ) -> Result<Response<wire::SamplePersonsResponse>, Status> {
        let (flow, limit) = sampling(&request.into_inner())?;
        let rows = self
            .services
            .store
            .read(move |tx| -> Result<_, Error> { Ok(tx.sample_persons(flow.name(), limit)?) })
            .await?;
        let (out_region, in_region) = flow.region_codes();
        let persons = rows
            .into_iter()
            .map(|row| {
                // A sampled person was seeded from the population: an ID number that does not
                // map back to an index is a stored row that does not decode.
                let index = yibao_domain::id::ResidentId::parse(&row.certno)
                    .ok()
                    .and_then(|id| population::index_of_certno(&id, flow))
                    .ok_or_else(|| {
                        Error::Internal("a sampled person is not of the population".to_owned())
                    })?;
                Ok(wire::SamplePerson {
                    index,
                    certno: row.certno,
                    psn_name: row.psn_name,
                    flow: row.flow,
                    trafout_admdvs: out_region.to_string(),
                    trafin_admdvs: in_region.to_string(),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(Response::new(wire::SamplePersonsResponse { persons }))
    }

    async fn resolve_transfer(
        &self,
        request: Request<wire::ResolveTransferRequest>,
    ) -> Result<Response<wire::ResolveTransferResponse>, Status> {
        let (transfer_id, resolving) = resolution(request.get_ref())?;
        let parent = if trace::enabled() {
            self.services.document_of(&transfer_id).await
        } else {
            None
        };
        let parent = parent.map_or_else(opentelemetry::Context::new, |d| trace::stored(&d));
        let span = trace::resolve(&transfer_id, parent);
        let role = self.services.site.role;
        let document = self
            .services
            .write(move |step| resolve(step, role, &transfer_id, resolving.clone()))
            .instrument(span)
            .await?;
        tracing::info!(transfer_id = %document.transfer_id, state = document.state.name(), "an operator resolved a transfer");
        self.services.dispatch_now.notify_one();
        Ok(Response::new(wire::ResolveTransferResponse {
            state: convert::wire_stage(document.state.stage()) as i32,
        }))
    }

    async fn list_outbox_messages(
        &self,
        _: Request<wire::ListOutboxMessagesRequest>,
    ) -> Result<Response<wire::ListOutboxMessagesResponse>, Status> {
        let from = queue::parked_from(self.services.clock.now());
        let parked = self
            .services
            .store
            .read(move |tx| -> Result<_, Error> { Ok(tx.messages_due_from(from, PARKED_LIMIT)?) })
            .await?;
        Ok(Response::new(wire::ListOutboxMessagesResponse {
            messages: parked.into_iter().map(wire_outbox_message).collect(),
        }))
    }

    async fn retry_outbox_messages(
        &self,
        request: Request<wire::RetryOutboxMessagesRequest>,
    ) -> Result<Response<wire::RetryOutboxMessagesResponse>, Status> {
        let (only, operator) = retrying(&request.into_inner())?;
        let retried = self
            .services
            .write(move |step| retry_parked(step, only, &operator))
            .await?;
        self.services.dispatch_now.notify_one();
        Ok(Response::new(wire::RetryOutboxMessagesResponse { retried }))
    }

    async fn set_storage_fault(
        &self,
        request: Request<wire::SetStorageFaultRequest>,
    ) -> Result<Response<wire::SetStorageFaultResponse>, Status> {
        let fault = commit_fault(request.into_inner().fault)?;
        let store = &self.services.store;
        store.set_commit_fault(fault);
        // One commit now, so that health follows the change without waiting for traffic.
        let serving = match store.probe().await {
            Ok(()) => true,
            Err(error) => {
                tracing::debug!(%error, "the store does not commit");
                false
            }
        };
        if serving {
            self.services.dispatch_now.notify_one();
        }
        Ok(Response::new(wire::SetStorageFaultResponse { serving }))
    }

    async fn set_region_connectivity(
        &self,
        request: Request<wire::SetRegionConnectivityRequest>,
    ) -> Result<Response<wire::SetRegionConnectivityResponse>, Status> {
        let request = request.into_inner();
        let code = convert::bounded(
            "region_code",
            &request.region_code,
            convert::bound::REGION_CODE,
        )
        .and_then(|text| convert::region("region_code", text))?;
        let site = &self.services.site;
        site.region("region_code", code)?;
        let connectivity = if request.connected {
            Connectivity::Connected
        } else {
            Connectivity::NotConnected
        };
        site.connectivity_overrides.set(code, connectivity);
        tracing::info!(region = %code.pooling_region(), connected = request.connected, "a region's connection to the platform changed");
        // The sweep reviews waiting applications again at its next run; wake it.
        self.services.dispatch_now.notify_one();
        Ok(Response::new(wire::SetRegionConnectivityResponse {
            pooling_region_code: code.pooling_region().to_string(),
            connected: site.connectivity(code) == Connectivity::Connected,
        }))
    }
}

#[cfg(test)]
mod tests;
