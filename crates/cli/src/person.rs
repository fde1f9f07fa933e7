//! `yibao person create|enrol|stop|pay|retire`: one person's record at one bureau (`--at`),
//! changed through its admin API (CreatePerson, EnrolPerson, StopContributing, PayArrears,
//! RetirePerson). Each prints the record as the bureau now holds it, as `yibao account` does;
//! a refusal is the bureau's status, printed and exit 1.

use serde_json::json;
use yibao_harness::Side;
use yibao_proto::admin::v1::{
    CreatePersonRequest, EnrolPersonRequest, PayArrearsRequest, RetirePersonRequest,
    StopContributingRequest,
};
use yibao_proto::bureau::v1::PersonRecord;
use yibao_proto::common::v1::{ContributionPeriod, EnrolmentState, Scheme};

use crate::Outcome;
use crate::args::{
    PersonCommand, PersonCreateArgs, PersonEnrolArgs, PersonMonthArgs, PersonPayArgs, SchemeArg,
    StateArg,
};
use crate::connect::Endpoints;
use crate::error::CliError;
use crate::output::{Output, person_json, person_text};

/// Runs one `yibao person` command.
pub async fn run(
    command: &PersonCommand,
    endpoints: &Endpoints,
    output: Output,
) -> Result<Outcome, CliError> {
    let (bureau, call) = match command {
        PersonCommand::Create(args) => (args.enrolled.target.at, "CreatePerson"),
        PersonCommand::Enrol(args) => (args.enrolled.target.at, "EnrolPerson"),
        PersonCommand::Stop(args) => (args.target.at, "StopContributing"),
        PersonCommand::Pay(args) => (args.target.at, "PayArrears"),
        PersonCommand::Retire(args) => (args.target.at, "RetirePerson"),
    };
    let service = Side::from(bureau).service();
    let failed = CliError::rpc(service, call);
    let mut admin = endpoints.admin(bureau).await?;
    let (person, paid) = match command {
        PersonCommand::Create(args) => {
            let answer = admin.create_person(creation(args)).await.map_err(failed)?;
            (answer.into_inner().person, None)
        }
        PersonCommand::Enrol(args) => {
            let answer = admin.enrol_person(enrolment(args)).await.map_err(failed)?;
            (answer.into_inner().person, None)
        }
        PersonCommand::Stop(args) => {
            let request = StopContributingRequest {
                certno: args.target.certno.clone(),
                from_month: args.from.clone(),
            };
            let answer = admin.stop_contributing(request).await.map_err(failed)?;
            (answer.into_inner().person, None)
        }
        PersonCommand::Pay(args) => {
            let answer = admin.pay_arrears(payment(args)).await.map_err(failed)?;
            let answer = answer.into_inner();
            (answer.person, Some(answer.paid_amount))
        }
        PersonCommand::Retire(PersonMonthArgs { target, from }) => {
            let request = RetirePersonRequest {
                certno: target.certno.clone(),
                from_month: from.clone(),
            };
            let answer = admin.retire_person(request).await.map_err(failed)?;
            (answer.into_inner().person, None)
        }
    };
    let person =
        person.ok_or_else(|| CliError::Failed(format!("{service} answered without a person")))?;
    print(output, &person, paid.as_deref());
    Ok(Outcome::Success)
}

/// The record, and what a payment paid toward the arrears.
fn print(output: Output, person: &PersonRecord, paid: Option<&str>) {
    let mut value = person_json(person);
    if let Some(paid) = paid {
        value["paid_amount"] = json!(paid);
    }
    output.emit(&value, || match paid {
        Some(paid) => format!("paid {paid}\n{}", person_text(person)),
        None => person_text(person),
    });
}

/// The CreatePerson request of `yibao person create`: the first insured month defaults to the
/// earliest period's first month.
pub fn creation(args: &PersonCreateArgs) -> CreatePersonRequest {
    let earliest = args
        .period
        .iter()
        .map(|period| period.from_month.clone())
        .min();
    let enrolled = &args.enrolled;
    CreatePersonRequest {
        certno: enrolled.target.certno.clone(),
        psn_name: enrolled.name.clone(),
        insu_admdvs: enrolled.region.clone(),
        insutype: scheme(enrolled.scheme) as i32,
        psn_insu_stas: match args.state {
            StateArg::Normal => EnrolmentState::Normal,
            StateArg::Suspended => EnrolmentState::Suspended,
            StateArg::Terminated => EnrolmentState::Terminated,
        } as i32,
        fst_insu_ym: args.first_insured.clone().or(earliest).unwrap_or_default(),
        periods: args
            .period
            .iter()
            .map(|period| ContributionPeriod {
                from_month: period.from_month.clone(),
                to_month: period.to_month.clone(),
                scheme: scheme(period.scheme) as i32,
                region_code: period.region.clone(),
            })
            .collect(),
        deemed_months: args.deemed_months,
        personal_account_balance: args.balance.clone(),
        arrears_amount: args.arrears.clone(),
        retired: args.retired,
    }
}

/// The EnrolPerson request of `yibao person enrol`.
pub fn enrolment(args: &PersonEnrolArgs) -> EnrolPersonRequest {
    let enrolled = &args.enrolled;
    EnrolPersonRequest {
        certno: enrolled.target.certno.clone(),
        psn_name: enrolled.name.clone(),
        insu_admdvs: enrolled.region.clone(),
        insutype: scheme(enrolled.scheme) as i32,
        from_month: args.from.clone(),
    }
}

/// The PayArrears request of `yibao person pay`.
pub fn payment(args: &PersonPayArgs) -> PayArrearsRequest {
    let (from, to) = args.back_pay.clone().unwrap_or_default();
    PayArrearsRequest {
        certno: args.target.certno.clone(),
        amount: args.amount.clone().unwrap_or_default(),
        back_pay_from_month: from,
        back_pay_to_month: to,
    }
}

/// The wire scheme of `--scheme`.
fn scheme(scheme: SchemeArg) -> Scheme {
    match scheme {
        SchemeArg::Employee => Scheme::Employee,
        SchemeArg::Resident => Scheme::Resident,
    }
}
