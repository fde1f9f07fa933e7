//! The admin API's person calls (`CreatePerson`, `EnrolPerson`, `StopContributing`,
//! `PayArrears`, `RetirePerson`) in domain values: each request converted before anything is
//! read (a field that does not convert is refused, naming it and the rule), and the record an
//! answer shows. The rules themselves are the domain's (`yibao_domain::lifecycle`); the step
//! that applies them is `crate::lifecycle`.

use chrono::NaiveDate;
use yibao_domain::application::check_name;
use yibao_domain::classify::PersonStatus;
use yibao_domain::id::ResidentId;
use yibao_domain::lifecycle::{self, Change, Enrolment, Months, Payment, Record};
use yibao_domain::money::Money;
use yibao_domain::month::YearMonth;
use yibao_domain::region::{Pooling, RegionCode};
use yibao_domain::scheme::{EnrolmentState, Scheme};
use yibao_proto::admin::v1 as wire;
use yibao_proto::bureau::v1 as bureau_wire;
use yibao_store::Tx;

use crate::context::Site;
use crate::convert::{self, bound};
use crate::error::Error;
use crate::lifecycle::{Asked, NewPerson};
use crate::persons;

/// A `CreatePersonRequest` in domain values.
pub fn new_person(
    site: &Site,
    request: &wire::CreatePersonRequest,
    today: NaiveDate,
) -> Result<NewPerson, Error> {
    let certno = convert::certno("certno", &request.certno, today)?;
    check_name(&request.psn_name)?;
    let region = hosted_region(site, "insu_admdvs", &request.insu_admdvs)?;
    if request.periods.len() > lifecycle::MAX_PERIODS {
        let rule = format!("at most {} periods", lifecycle::MAX_PERIODS);
        return Err(Error::invalid("periods", rule));
    }
    let record = Record {
        region,
        scheme: scheme("insutype", request.insutype)?,
        enrolment: enrolment_state("psn_insu_stas", request.psn_insu_stas)?,
        status: if request.retired {
            PersonStatus::Retired
        } else {
            PersonStatus::Working
        },
        first_insured: month("fst_insu_ym", &request.fst_insu_ym)?,
        periods: convert::periods_of("periods", &request.periods)?,
        arrears: amount_or_zero("arrears_amount", &request.arrears_amount)?,
        deemed_months: request.deemed_months,
    };
    Ok(NewPerson {
        certno,
        psn_name: request.psn_name.trim().to_owned(),
        record,
        balance: amount_or_zero(
            "personal_account_balance",
            &request.personal_account_balance,
        )?,
    })
}

/// An `EnrolPersonRequest` in domain values.
pub fn enrolment(
    site: &Site,
    request: &wire::EnrolPersonRequest,
    today: NaiveDate,
) -> Result<Asked, Error> {
    let certno = convert::certno("certno", &request.certno, today)?;
    check_name(&request.psn_name)?;
    let enrolment = Enrolment {
        region: hosted_region(site, "insu_admdvs", &request.insu_admdvs)?,
        scheme: scheme("insutype", request.insutype)?,
        from: month("from_month", &request.from_month)?,
    };
    Ok(Asked {
        certno,
        psn_name: Some(request.psn_name.trim().to_owned()),
        change: Change::Enrol(enrolment),
    })
}

/// A `StopContributingRequest` in domain values.
pub fn stop(request: &wire::StopContributingRequest, today: NaiveDate) -> Result<Asked, Error> {
    Ok(Asked {
        certno: convert::certno("certno", &request.certno, today)?,
        psn_name: None,
        change: Change::Stop {
            from: month("from_month", &request.from_month)?,
        },
    })
}

/// A `PayArrearsRequest` in domain values: an amount above zero when given, and both back-pay
/// months or neither, in order.
pub fn payment(request: &wire::PayArrearsRequest, today: NaiveDate) -> Result<Asked, Error> {
    let certno = convert::certno("certno", &request.certno, today)?;
    let amount = match request.amount.as_str() {
        "" => None,
        text => match convert::money("amount", text)? {
            zero if zero.is_zero() => {
                return Err(Error::invalid(
                    "amount",
                    "must be above 0.00, or empty for all owed",
                ));
            }
            amount => Some(amount),
        },
    };
    let months = match (
        request.back_pay_from_month.as_str(),
        request.back_pay_to_month.as_str(),
    ) {
        ("", "") => None,
        ("", _) => {
            return Err(Error::invalid(
                "back_pay_from_month",
                "required with back_pay_to_month",
            ));
        }
        (_, "") => {
            return Err(Error::invalid(
                "back_pay_to_month",
                "required with back_pay_from_month",
            ));
        }
        (from, to) => {
            let from = month("back_pay_from_month", from)?;
            let to = month("back_pay_to_month", to)?;
            let months = Months::new(from, to).ok_or_else(|| {
                Error::invalid(
                    "back_pay_to_month",
                    "must not be before back_pay_from_month",
                )
            })?;
            Some(months)
        }
    };
    Ok(Asked {
        certno,
        psn_name: None,
        change: Change::Pay(Payment { amount, months }),
    })
}

/// A `RetirePersonRequest` in domain values.
pub fn retirement(request: &wire::RetirePersonRequest, today: NaiveDate) -> Result<Asked, Error> {
    Ok(Asked {
        certno: convert::certno("certno", &request.certno, today)?,
        psn_name: None,
        change: Change::Retire {
            from: month("from_month", &request.from_month)?,
        },
    })
}

/// The person's record as the answers show it (personal data masked).
pub fn shown(
    tx: &mut dyn Tx,
    pooling: &Pooling,
    certno: &ResidentId,
) -> Result<bureau_wire::PersonRecord, Error> {
    let (person, balance) = persons::shown(tx, certno.expose_unmasked())?
        .ok_or_else(|| Error::Internal("a person just saved is not there".to_owned()))?;
    Ok(convert::wire_person(&person, balance, pooling))
}

/// A region this bureau hosts: a region code, in the directory, whose pooling region this
/// bureau hosts.
fn hosted_region(site: &Site, field: &'static str, text: &str) -> Result<RegionCode, Error> {
    let region = convert::region(field, text)?;
    site.region(field, region)?;
    if !site.hosts(region) {
        let hosted: Vec<String> = site.hosted.iter().map(ToString::to_string).collect();
        let rule = format!(
            "region {region} is not hosted by this bureau (it hosts {})",
            hosted.join(", ")
        );
        return Err(Error::invalid(field, rule));
    }
    Ok(region)
}

/// A month, `YYYYMM`.
fn month(field: &'static str, text: &str) -> Result<YearMonth, Error> {
    YearMonth::parse(convert::bounded(field, text, bound::MONTH)?)
        .map_err(|error| Error::invalid(field, error))
}

/// An amount of money; empty is zero.
fn amount_or_zero(field: &'static str, text: &str) -> Result<Money, Error> {
    match text {
        "" => Ok(Money::ZERO),
        text => convert::money(field, text),
    }
}

/// A scheme; unspecified or unknown is refused.
fn scheme(field: &'static str, value: i32) -> Result<Scheme, Error> {
    convert::scheme(value)
        .ok_or_else(|| Error::invalid(field, "must be SCHEME_EMPLOYEE or SCHEME_RESIDENT"))
}

/// An enrolment state; the wire's numbers are the platform's codes. Unspecified or unknown is
/// refused.
fn enrolment_state(field: &'static str, value: i32) -> Result<EnrolmentState, Error> {
    u8::try_from(value)
        .ok()
        .and_then(|code| EnrolmentState::from_code(code).ok())
        .ok_or_else(|| {
            Error::invalid(
                field,
                "must be ENROLMENT_STATE_NORMAL, ENROLMENT_STATE_SUSPENDED or \
                 ENROLMENT_STATE_TERMINATED",
            )
        })
}

#[cfg(test)]
mod tests;
