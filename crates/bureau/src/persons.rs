//! The person facts a step reads: a stored person row decoded and checked into the facts the
//! domain's reviews take. A row that does not decode is an error naming what is broken.

use yibao_domain::classify::PersonStatus;
use yibao_domain::money::Money;
use yibao_domain::month::ContributionPeriod;
use yibao_domain::region::RegionCode;
use yibao_domain::review::InsuredPerson;
use yibao_domain::scheme::{EnrolmentState, Scheme};
use yibao_store::PersonRow;

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
