//! People whose lives change (the admin API's person calls): gather the person's record and the
//! facts around it from the store (their open transfer, this month, their region's back-pay
//! window), ask the domain's lifecycle rules, save the row the answer makes. Each runs as one
//! store job, so a refused change writes nothing.
//!
//! A person the population seeded and a call then changed no longer fits the flow they were
//! made for: their row forgets the flow, so `SamplePersons` stops handing them to load runs.

use yibao_domain::id::ResidentId;
use yibao_domain::lifecycle::{self, Change, Changed, Facts, Record};
use yibao_domain::money::Money;
use yibao_domain::month::YearMonth;
use yibao_domain::review::check_identity;

use crate::error::Error;
use crate::persons::{self, PersonRecord};
use crate::record::Step;

/// A person to create with a history, in domain values.
#[derive(Debug, Clone)]
pub struct NewPerson {
    /// The ID number.
    pub certno: ResidentId,
    /// The name.
    pub psn_name: String,
    /// The record, as asked (the rules check it).
    pub record: Record,
    /// The personal-account balance to open the account with.
    pub balance: Money,
}

/// A change asked for one person.
#[derive(Debug, Clone)]
pub struct Asked {
    /// The ID number.
    pub certno: ResidentId,
    /// The name an enrolment gives: a new person's, or as the record names a known one.
    pub psn_name: Option<String>,
    /// The change.
    pub change: Change,
}

/// Creates a person with a history. The opening balance is for the caller to post, in the same
/// step (the admin API posts it, as it does a seeded person's).
pub fn create(step: &mut Step<'_>, new: &NewPerson) -> Result<(), Error> {
    let certno = new.certno.expose_unmasked();
    let existing = match step.person(certno)? {
        Some(person) => Some(persons::lifecycle_record(&person)?),
        None => None,
    };
    let this_month = this_month(step)?;
    let record = lifecycle::create(
        existing.as_ref(),
        new.record.clone(),
        new.balance,
        this_month,
    )?;
    let row = persons::row_of(certno, &new.psn_name, &record, "")?;
    step.tx.insert_persons(std::slice::from_ref(&row))?;
    tracing::info!(certno = %new.certno, region = %record.region, state = %record.enrolment, "person created");
    Ok(())
}

/// Applies a change to a person's record and saves it; the answer says what was paid.
pub fn change(step: &mut Step<'_>, asked: &Asked) -> Result<Changed, Error> {
    let certno = asked.certno.expose_unmasked();
    let stored: Option<PersonRecord> = step.person(certno)?;
    if let (Some(stored), Some(name)) = (&stored, &asked.psn_name) {
        check_identity(&stored.row.psn_name, name)?;
    }
    let record = stored.as_ref().map(persons::lifecycle_record).transpose()?;
    let site = step.ctx.site.clone();
    let window = match &record {
        Some(record) => site.policy(record.region),
        None => &site.default_policy,
    }
    .effective_back_pay_window_months();
    let open_transfer = step.tx.open_transfer_of(certno)?;
    let facts = Facts {
        open_transfer: open_transfer.as_deref(),
        this_month: this_month(step)?,
        back_pay_window_months: window,
    };
    let changed = lifecycle::apply(record.as_ref(), &facts, &asked.change)?;
    match &stored {
        Some(stored) => {
            let row = persons::row_of(certno, &stored.row.psn_name, &changed.record, "")?;
            step.tx.update_person(&row)?;
        }
        None => {
            let name = asked
                .psn_name
                .as_deref()
                .ok_or_else(|| Error::invalid("psn_name", "required"))?;
            let row = persons::row_of(certno, name, &changed.record, "")?;
            step.tx.insert_persons(std::slice::from_ref(&row))?;
        }
    }
    tracing::info!(certno = %asked.certno, change = name_of(&asked.change), state = %changed.record.enrolment, "person changed");
    Ok(changed)
}

/// The step's month, in China time (the day deadlines count in).
fn this_month(step: &Step<'_>) -> Result<YearMonth, Error> {
    YearMonth::from_date(step.ctx.today())
        .map_err(|_| Error::Internal("the clock reads a year outside 1950-2100".to_owned()))
}

/// A change's name, for the log.
fn name_of(change: &Change) -> &'static str {
    match change {
        Change::Enrol(_) => "enrol",
        Change::Stop { .. } => "stop",
        Change::Pay(_) => "pay",
        Change::Retire { .. } => "retire",
    }
}
