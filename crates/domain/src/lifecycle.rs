//! People whose lives change: what enrolling (参保), stopping contributions (中止参保 / 停保),
//! paying arrears or back-paying months (补缴) and retiring (退休) do to a person's record at one
//! bureau, what a record created with a history must hold, and when each is refused.
//!
//! A bureau reads the person's record and the facts around it (an open transfer, the month it
//! is, the back-pay window of the person's region), asks [`apply`] or [`create`], and saves
//! what they answer. The reviews of a transfer then read that record, so a person's flow and
//! refusals follow from what happened to them: one who still contributes is refused
//! NOT_STOPPED, one who owes is refused ARREARS, a retiree is handled by the retiree rule.
//!
//! The rules (DOMAIN.md, "Who and what", "The transfer" precondition 1 and "Continuity rules"),
//! each written once here:
//! - **A month is insured once** (不得重复参保): no two periods on record share a month; an
//!   enrolment starts after the last month paid; back-paid months are not on record yet.
//! - **No month is paid before it comes**: a month recorded as paid (an enrolment's first
//!   month, the months a stop or a retirement closes, back-paid months, a created history) is
//!   at most the bureau's current month.
//! - **One open transfer per person**: a person with an open transfer is not changed at all,
//!   since every change here would break what the transfer was reviewed on.
//! - **Enrol**: a person new to the bureau, stopped here (停保), or whose relationship left
//!   (终止参保, after a transfer-out) enrols at a region and a scheme from a month: contributing
//!   normally (正常参保). Someone who already contributes is refused (nobody is enrolled twice);
//!   a retiree is refused (a retiree does not contribute again). A relationship that left took
//!   its months with it, so coming back starts a new record of months.
//! - **Stop**: a person contributing normally stops from a month: the open period closes at the
//!   month before, and the person is suspended (psn_insu_stas 2), the state a transfer-out
//!   needs.
//! - **Pay**: what is owed (欠费) is paid, all of it or an amount no larger; and a gap of at most
//!   the region's back-pay window (3 months at most, nationally) may be back-paid: the months
//!   join the period they touch.
//! - **Retire**: a person retires from a month: contributions end as with a stop, and the record
//!   says retired. A retiree's relationship does not transfer; they register a relocation
//!   (异地安置退休人员备案), or ask for a payout where the policy allows it.
//!
//! **The open period.** Months are not paid one by one here: while a person contributes, the
//! last period at their region under their scheme is open, and its last month is the last
//! month recorded so far (the enrolment's first month, at first). A stop or a retirement closes
//! it at the month before it takes effect, recording every month in between.

use crate::classify::PersonStatus;
use crate::credit::{FormFigure, form_figures_within_caps};
use crate::money::Money;
use crate::month::{ContributionPeriod, YearMonth, total_months};
use crate::region::RegionCode;
use crate::scheme::{EnrolmentState, Scheme};

/// The most contribution periods a created record may hold.
pub const MAX_PERIODS: usize = 100;

/// A person's record at one bureau, as the lifecycle rules read and write it. It holds no
/// personal data (the ID number and name stay with the bureau), so its `Debug` is safe to log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Where the person is enrolled at this bureau (`insu_admdvs`).
    pub region: RegionCode,
    /// The person's scheme here (`insutype`).
    pub scheme: Scheme,
    /// The enrolment state here (`psn_insu_stas`).
    pub enrolment: EnrolmentState,
    /// Working or retired.
    pub status: PersonStatus,
    /// The first month the person was ever insured (`fst_insu_ym`).
    pub first_insured: YearMonth,
    /// The contribution periods on record: those paid here, and those an earlier transfer
    /// brought in from other regions (their months count through `deemed_months`).
    pub periods: Vec<ContributionPeriod>,
    /// What the person owes here (欠费).
    pub arrears: Money,
    /// Months brought in by transfers (视同缴费年限).
    pub deemed_months: u32,
}

/// What the bureau knows around a record when a change is asked.
#[derive(Clone, Copy, Debug)]
pub struct Facts<'a> {
    /// The person's open transfer at this bureau, if any.
    pub open_transfer: Option<&'a str>,
    /// The bureau's current month.
    pub this_month: YearMonth,
    /// The back-pay window of the person's region, already clamped to the national cap.
    pub back_pay_window_months: u8,
}

/// A run of months, `from..=to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Months {
    from: YearMonth,
    to: YearMonth,
}

impl Months {
    /// The months `from..=to`; `None` when `from` is after `to`.
    pub fn new(from: YearMonth, to: YearMonth) -> Option<Months> {
        (from <= to).then_some(Months { from, to })
    }

    /// The first month.
    pub fn from(self) -> YearMonth {
        self.from
    }

    /// The last month (inclusive).
    pub fn to(self) -> YearMonth {
        self.to
    }

    /// How many months, at least 1.
    pub fn count(self) -> u32 {
        self.from.months_until(self.to).unsigned_abs() + 1
    }
}

/// Enrolment at a region and a scheme, from a month.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Enrolment {
    /// The region (hosted by the bureau: the bureau checks that before asking).
    pub region: RegionCode,
    /// The scheme.
    pub scheme: Scheme,
    /// The first month contributed.
    pub from: YearMonth,
}

/// A payment of what is owed, or of months back-paid, or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Payment {
    /// How much of the arrears is paid; `None` for all of it.
    pub amount: Option<Money>,
    /// The months back-paid (补缴), if any.
    pub months: Option<Months>,
}

/// A change in a person's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Enrol (参保).
    Enrol(Enrolment),
    /// Stop contributing (中止参保) from this month.
    Stop {
        /// The first month not contributed.
        from: YearMonth,
    },
    /// Pay arrears or back-pay months (补缴).
    Pay(Payment),
    /// Retire (退休) from this month.
    Retire {
        /// The first month of retirement.
        from: YearMonth,
    },
}

/// A change applied: the record as it now stands, and what was paid toward the arrears.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Changed {
    /// The record after the change.
    pub record: Record,
    /// What the change paid toward the arrears (zero unless it was a payment).
    pub paid: Money,
}

/// Why a change is refused. The sentences name fields and months, never personal data.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The bureau has no record of the person (only an enrolment creates one).
    #[error("the person is not known at this bureau")]
    Unknown,
    /// The person has an open transfer.
    #[error(
        "the person has an open transfer {0}: nothing about them changes until it ends (one open \
         transfer per person)"
    )]
    OpenTransfer(String),
    /// An enrolment of someone who contributes here already.
    #[error("the person already contributes here (正常参保): nobody is enrolled twice")]
    AlreadyEnrolled,
    /// An enrolment or a back-payment of months by a retiree.
    #[error("the person is retired (退休): a retiree does not contribute again")]
    Retired,
    /// A retirement of a retiree.
    #[error("the person is already retired")]
    AlreadyRetired,
    /// A stop of someone who does not contribute.
    #[error("the person does not contribute here (psn_insu_stas {}): nothing to stop", .0.code())]
    NotContributing(EnrolmentState),
    /// A change at a bureau the relationship left.
    #[error(
        "the person's relationship has left this bureau (终止参保, psn_insu_stas 4): only an \
         enrolment brings it back"
    )]
    RelationshipLeft,
    /// A month that is on record as paid already.
    #[error("{field} {month}: the months up to {last_paid} are on record; a month is insured once")]
    AlreadyPaid {
        /// The request field.
        field: &'static str,
        /// The month named.
        month: YearMonth,
        /// The last month on record that stands in the way.
        last_paid: YearMonth,
    },
    /// A month that has not come yet would be recorded as paid.
    #[error(
        "{field} {month} would record {last} as paid, and this month is {this_month}: no month \
         is paid before it comes"
    )]
    NotYetCome {
        /// The request field.
        field: &'static str,
        /// The month named.
        month: YearMonth,
        /// The last month that would be recorded as paid.
        last: YearMonth,
        /// The bureau's current month.
        this_month: YearMonth,
    },
    /// A payment with nothing to pay.
    #[error("nothing is owed and no months are back-paid: nothing to pay")]
    NothingToPay,
    /// An amount over what is owed.
    #[error("amount is more than the {owed} owed")]
    MoreThanOwed {
        /// What is owed.
        owed: Money,
    },
    /// Months back-paid beyond the region's window.
    #[error(
        "back-paying {months} months: the region's back-pay window is {window} months (a gap of \
         at most 3 months may be back-paid, nationally)"
    )]
    BackPayTooLong {
        /// The months asked for.
        months: u32,
        /// The window.
        window: u8,
    },
    /// Months back-paid that touch no period on record.
    #[error(
        "back-paid months must close a gap: back_pay_from_month must follow a period on record, \
         or back_pay_to_month precede one"
    )]
    BackPayNotJoined,
}

/// Why a created record does not hold together, naming the request field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct Invalid {
    /// The request field.
    pub field: &'static str,
    /// The rule it breaks.
    pub rule: String,
}

/// Why a person cannot be created.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CreateError {
    /// The bureau has a record of the person already (nobody is enrolled twice).
    #[error("the person is known at this bureau already: change their record instead")]
    AlreadyKnown,
    /// The record does not hold together.
    #[error(transparent)]
    Invalid(#[from] Invalid),
}

/// Applies a change to a person's record (`None`: unknown at this bureau), or refuses it.
pub fn apply(
    record: Option<&Record>,
    facts: &Facts<'_>,
    change: &Change,
) -> Result<Changed, Refusal> {
    if let Some(open) = facts.open_transfer {
        return Err(Refusal::OpenTransfer(open.to_owned()));
    }
    let unpaid = |record| Changed {
        record,
        paid: Money::ZERO,
    };
    match (change, record) {
        (Change::Enrol(enrolment), record) => enrol(record, enrolment, facts).map(unpaid),
        (_, None) => Err(Refusal::Unknown),
        (Change::Stop { from }, Some(record)) => stop(record, *from, facts).map(unpaid),
        (Change::Pay(payment), Some(record)) => pay(record, payment, facts),
        (Change::Retire { from }, Some(record)) => retire(record, *from, facts).map(unpaid),
    }
}

/// A record created with a history, checked: nobody known here already; periods that share no
/// month; a first insured month at or before every period; no month in the future; no balance
/// under the resident scheme (it has no personal account); figures a form can carry.
pub fn create(
    existing: Option<&Record>,
    mut record: Record,
    balance: Money,
    this_month: YearMonth,
) -> Result<Record, CreateError> {
    if existing.is_some() {
        return Err(CreateError::AlreadyKnown);
    }
    let invalid = |field, rule: String| CreateError::Invalid(Invalid { field, rule });
    if record.periods.len() > MAX_PERIODS {
        return Err(invalid("periods", format!("at most {MAX_PERIODS} periods")));
    }
    if record.first_insured > this_month {
        let rule = format!("must not be after this month, {this_month}");
        return Err(invalid("fst_insu_ym", rule));
    }
    check_history(&record.periods, record.first_insured, this_month)?;
    if !record.scheme.has_personal_account() && !balance.is_zero() {
        let rule = "must be 0.00 under the resident scheme, which has no personal account";
        return Err(invalid("personal_account_balance", rule.to_owned()));
    }
    let months = total_months(&record.periods);
    match form_figures_within_caps(months, record.deemed_months, balance) {
        Ok(()) => {}
        Err(FormFigure::ContributionMonths) => {
            let rule = "hold more months than an information form carries (1,200)";
            return Err(invalid("periods", rule.to_owned()));
        }
        Err(FormFigure::DeemedMonths) => {
            return Err(invalid("deemed_months", "at most 1,200".to_owned()));
        }
        Err(FormFigure::Balance) => {
            let rule = "at most 10000000.00, the most an information form carries";
            return Err(invalid("personal_account_balance", rule.to_owned()));
        }
    }
    record
        .periods
        .sort_by_key(|period| (period.from(), period.to()));
    Ok(record)
}

/// The periods of a created record: none in the future, none before the first insured month,
/// no two sharing a month.
fn check_history(
    periods: &[ContributionPeriod],
    first_insured: YearMonth,
    this_month: YearMonth,
) -> Result<(), Invalid> {
    let invalid = |field, rule: String| Invalid { field, rule };
    for (index, period) in periods.iter().enumerate() {
        if period.to() > this_month {
            let rule = format!(
                "[{index}].to_month is after this month, {this_month}: no month is paid before it comes"
            );
            return Err(invalid("periods", rule));
        }
        if period.from() < first_insured {
            let rule = format!(
                "must be at or before the first month of every period ([{index}] starts {})",
                period.from()
            );
            return Err(invalid("fst_insu_ym", rule));
        }
        if let Some(earlier) = periods[..index]
            .iter()
            .position(|other| shares_months(other, period))
        {
            let rule = format!(
                "[{index}] shares months with [{earlier}]: a month is insured once (不得重复参保)"
            );
            return Err(invalid("periods", rule));
        }
    }
    Ok(())
}

/// The last month on record as paid, if any.
pub fn last_paid(periods: &[ContributionPeriod]) -> Option<YearMonth> {
    periods.iter().map(ContributionPeriod::to).max()
}

/// Enrols a new person, one stopped here, or one whose relationship left.
fn enrol(
    record: Option<&Record>,
    enrolment: &Enrolment,
    facts: &Facts<'_>,
) -> Result<Record, Refusal> {
    let from = enrolment.from;
    not_yet_come("from_month", from, from, facts.this_month)?;
    // One month, from `from` to `from`: a period that cannot be upside down.
    let first =
        ContributionPeriod::new(from, from, enrolment.scheme, enrolment.region).map_err(|_| {
            Refusal::NotYetCome {
                field: "from_month",
                month: from,
                last: from,
                this_month: facts.this_month,
            }
        })?;
    let Some(record) = record else {
        return Ok(Record {
            region: enrolment.region,
            scheme: enrolment.scheme,
            enrolment: EnrolmentState::Normal,
            status: PersonStatus::Working,
            first_insured: from,
            periods: vec![first],
            arrears: Money::ZERO,
            deemed_months: 0,
        });
    };
    if record.status == PersonStatus::Retired {
        return Err(Refusal::Retired);
    }
    if record.enrolment == EnrolmentState::Normal {
        return Err(Refusal::AlreadyEnrolled);
    }
    after_last_paid("from_month", from, &record.periods)?;
    let mut enrolled = record.clone();
    if record.enrolment == EnrolmentState::Terminated {
        // The months on record left with the relationship (and arrive at the new region as
        // deemed months): coming back starts a new record of months.
        enrolled.periods.clear();
        enrolled.deemed_months = 0;
    }
    enrolled.periods.push(first);
    enrolled.region = enrolment.region;
    enrolled.scheme = enrolment.scheme;
    enrolled.enrolment = EnrolmentState::Normal;
    enrolled.first_insured = record.first_insured.min(from);
    Ok(enrolled)
}

/// Stops a person who contributes normally, from a month.
fn stop(record: &Record, from: YearMonth, facts: &Facts<'_>) -> Result<Record, Refusal> {
    match record.enrolment {
        EnrolmentState::Normal => {}
        EnrolmentState::Terminated => return Err(Refusal::RelationshipLeft),
        state @ EnrolmentState::Suspended => return Err(Refusal::NotContributing(state)),
    }
    let mut stopped = record.clone();
    stopped.periods = close_open_period(record, from, facts.this_month)?;
    stopped.enrolment = EnrolmentState::Suspended;
    Ok(stopped)
}

/// Retires a person from a month: contributions end (as with a stop) and the record says
/// retired.
fn retire(record: &Record, from: YearMonth, facts: &Facts<'_>) -> Result<Record, Refusal> {
    if record.status == PersonStatus::Retired {
        return Err(Refusal::AlreadyRetired);
    }
    let mut retired = record.clone();
    match record.enrolment {
        EnrolmentState::Terminated => return Err(Refusal::RelationshipLeft),
        EnrolmentState::Normal => {
            retired.periods = close_open_period(record, from, facts.this_month)?;
        }
        EnrolmentState::Suspended => {
            after_last_paid("from_month", from, &record.periods)?;
            let last = from.plus_months(-1).unwrap_or(from);
            not_yet_come("from_month", from, last, facts.this_month)?;
        }
    }
    retired.enrolment = EnrolmentState::Suspended;
    retired.status = PersonStatus::Retired;
    Ok(retired)
}

/// Pays arrears (all, or an amount no larger) and back-pays months.
fn pay(record: &Record, payment: &Payment, facts: &Facts<'_>) -> Result<Changed, Refusal> {
    if record.enrolment == EnrolmentState::Terminated {
        return Err(Refusal::RelationshipLeft);
    }
    let owed = record.arrears;
    let paid = payment.amount.unwrap_or(owed);
    let arrears = owed
        .checked_sub(paid)
        .ok_or(Refusal::MoreThanOwed { owed })?;
    if paid.is_zero() && payment.months.is_none() {
        return Err(Refusal::NothingToPay);
    }
    let mut after = record.clone();
    after.arrears = arrears;
    if let Some(months) = payment.months {
        if record.status == PersonStatus::Retired {
            return Err(Refusal::Retired);
        }
        after.periods = back_pay(record, months, facts)?;
    }
    Ok(Changed {
        record: after,
        paid,
    })
}

/// The periods after back-paying `months` (补缴): at most the window, not on record yet, not in
/// the future, touching a period on record (unless there is none); they join the periods of the
/// same scheme and region they touch.
fn back_pay(
    record: &Record,
    months: Months,
    facts: &Facts<'_>,
) -> Result<Vec<ContributionPeriod>, Refusal> {
    let window = facts.back_pay_window_months;
    if months.count() > u32::from(window) {
        return Err(Refusal::BackPayTooLong {
            months: months.count(),
            window,
        });
    }
    not_yet_come("back_pay_to_month", months.to, months.to, facts.this_month)?;
    // `Months` is never upside down, so neither is the period.
    let paid = ContributionPeriod::new(months.from, months.to, record.scheme, record.region)
        .map_err(|_| Refusal::BackPayNotJoined)?;
    if let Some(on_record) = record
        .periods
        .iter()
        .find(|period| shares_months(period, &paid))
    {
        return Err(Refusal::AlreadyPaid {
            field: "back_pay_from_month",
            month: months.from,
            last_paid: on_record.to(),
        });
    }
    let touches = |period: &ContributionPeriod| {
        period.to().plus_months(1) == Some(months.from)
            || months.to.plus_months(1) == Some(period.from())
    };
    if !record.periods.is_empty() && !record.periods.iter().any(touches) {
        return Err(Refusal::BackPayNotJoined);
    }
    let mut periods = record.periods.clone();
    periods.push(paid);
    Ok(joined(periods))
}

/// The periods with adjacent ones of the same scheme and region joined, oldest first.
fn joined(mut periods: Vec<ContributionPeriod>) -> Vec<ContributionPeriod> {
    periods.sort_by_key(|period| (period.from(), period.to()));
    let mut joined: Vec<ContributionPeriod> = Vec::with_capacity(periods.len());
    for period in periods {
        let adjacent = joined.last().filter(|last| {
            last.scheme() == period.scheme()
                && last.region() == period.region()
                && last.to().plus_months(1) == Some(period.from())
        });
        match adjacent.map(|last| {
            ContributionPeriod::new(last.from(), period.to(), last.scheme(), last.region())
        }) {
            Some(Ok(longer)) => {
                joined.pop();
                joined.push(longer);
            }
            _ => joined.push(period),
        }
    }
    joined
}

/// The periods after the open period closes at the month before `from` (a stop or a
/// retirement): `from` after every month on record, the month before it come already.
fn close_open_period(
    record: &Record,
    from: YearMonth,
    this_month: YearMonth,
) -> Result<Vec<ContributionPeriod>, Refusal> {
    after_last_paid("from_month", from, &record.periods)?;
    let last = from.plus_months(-1).unwrap_or(from);
    not_yet_come("from_month", from, last, this_month)?;
    let mut periods = record.periods.clone();
    // The open period is the latest one, when it is at the person's region under their scheme;
    // a record whose latest months were paid elsewhere has none to close.
    let open = periods
        .iter_mut()
        .max_by_key(|period| period.to())
        .filter(|period| {
            period.scheme() == record.scheme && period.region().same_pooling_region(record.region)
        });
    if let Some(open) = open
        && let Ok(closed) = ContributionPeriod::new(open.from(), last, open.scheme(), open.region())
    {
        *open = closed;
    }
    Ok(periods)
}

/// `month` after every month on record.
fn after_last_paid(
    field: &'static str,
    month: YearMonth,
    periods: &[ContributionPeriod],
) -> Result<(), Refusal> {
    match last_paid(periods) {
        Some(last_paid) if month <= last_paid => Err(Refusal::AlreadyPaid {
            field,
            month,
            last_paid,
        }),
        _ => Ok(()),
    }
}

/// `last`, the last month `month` would record as paid, is not after this month.
fn not_yet_come(
    field: &'static str,
    month: YearMonth,
    last: YearMonth,
    this_month: YearMonth,
) -> Result<(), Refusal> {
    if last > this_month {
        return Err(Refusal::NotYetCome {
            field,
            month,
            last,
            this_month,
        });
    }
    Ok(())
}

/// Whether two periods share a month.
fn shares_months(a: &ContributionPeriod, b: &ContributionPeriod) -> bool {
    a.from() <= b.to() && b.from() <= a.to()
}

#[cfg(test)]
mod tests;
