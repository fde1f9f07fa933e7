//! The person facts a step reads: a stored person row decoded and checked into the facts the
//! domain's reviews take, and into the record its lifecycle rules change (and back into a row).
//! A row that does not decode is an error naming what is broken.

use yibao_domain::classify::PersonStatus;
use yibao_domain::lifecycle::Record;
use yibao_domain::money::Money;
use yibao_domain::month::{ContributionPeriod, YearMonth};
use yibao_domain::region::RegionCode;
use yibao_domain::review::InsuredPerson;
use yibao_domain::scheme::{EnrolmentState, Scheme};
use yibao_store::{PersonRow, Tx};

use crate::error::Error;

/// A person as this bureau's record has them: the row, the facts a review reads, the periods.
#[derive(Debug, Clone)]
pub struct PersonRecord {
    /// The stored row.
    pub row: PersonRow,
    /// The facts, decoded and checked.
    pub facts: InsuredPerson,
    /// The contribution periods, decoded and checked.
    pub periods: Vec<ContributionPeriod>,
}

/// A stored person, decoded and checked.
pub fn person_record(row: PersonRow) -> Result<PersonRecord, Error> {
    let broken = |what: &str| Error::Internal(format!("stored person has {what}"));
    let region = RegionCode::parse(&row.insu_admdvs).map_err(|_| broken("a malformed region"))?;
    let scheme = Scheme::from_code(row.insutype).map_err(|_| broken("an unknown scheme"))?;
    let enrolment =
        EnrolmentState::from_code(row.psn_insu_stas).map_err(|_| broken("an unknown state"))?;
    let arrears = u64::try_from(row.arrears_cents)
        .ok()
        .and_then(|cents| Money::from_cents(cents).ok())
        .ok_or_else(|| broken("malformed arrears"))?;
    let periods = periods_of(&row)?;
    Ok(PersonRecord {
        facts: InsuredPerson {
            region,
            scheme,
            enrolment,
            status: if row.retired {
                PersonStatus::Retired
            } else {
                PersonStatus::Working
            },
            arrears,
        },
        periods,
        row,
    })
}

/// The contribution periods of a stored person; unreadable ones are an error.
pub fn periods_of(row: &PersonRow) -> Result<Vec<ContributionPeriod>, Error> {
    serde_json::from_str(&row.periods_json)
        .map_err(|error| Error::unreadable("stored contribution periods", &error))
}

/// The record the lifecycle rules read, from a decoded person.
pub fn lifecycle_record(person: &PersonRecord) -> Result<Record, Error> {
    let first_insured = YearMonth::parse(&person.row.fst_insu_ym)
        .map_err(|_| Error::Internal("stored person has a malformed first month".to_owned()))?;
    Ok(Record {
        region: person.facts.region,
        scheme: person.facts.scheme,
        enrolment: person.facts.enrolment,
        status: person.facts.status,
        first_insured,
        periods: person.periods.clone(),
        arrears: person.facts.arrears,
        deemed_months: person.row.deemed_months,
    })
}

/// The row that stores `record` for the person `certno` named `psn_name`, of the population
/// flow `flow` (`""` for a person the population did not make).
pub fn row_of(
    certno: &str,
    psn_name: &str,
    record: &Record,
    flow: &str,
) -> Result<PersonRow, Error> {
    let periods_json = serde_json::to_string(&record.periods)
        .map_err(|error| Error::Internal(format!("contribution periods: {error}")))?;
    let arrears_cents = i64::try_from(record.arrears.cents())
        .map_err(|_| Error::Internal("arrears do not fit the store".to_owned()))?;
    Ok(PersonRow {
        certno: certno.to_owned(),
        psn_name: psn_name.to_owned(),
        insu_admdvs: record.region.to_string(),
        insutype: record.scheme.code(),
        psn_insu_stas: record.enrolment.code(),
        fst_insu_ym: record.first_insured.to_string(),
        retired: record.status == PersonStatus::Retired,
        arrears_cents,
        deemed_months: record.deemed_months,
        periods_json,
        flow: flow.to_owned(),
    })
}

/// A person as the APIs show them: the decoded record and the personal-account balance in
/// cents; `None` for a person this bureau does not know.
pub fn shown(tx: &mut dyn Tx, certno: &str) -> Result<Option<(PersonRecord, u64)>, Error> {
    let Some(row) = tx.person(certno)? else {
        return Ok(None);
    };
    let balance = u64::try_from(tx.balance(&crate::journal::account::person(certno))?)
        .map_err(|_| Error::Internal("a personal account is negative".to_owned()))?;
    Ok(Some((person_record(row)?, balance)))
}
