//! The admin API's person calls on an in-memory bureau: each request converted or refused
//! naming a field (fuzzed like every admin request), a refused change writing nothing, and the
//! reviews of a transfer reading what the calls made of a person (a person still contributing
//! is refused NOT_STOPPED, one who owes ARREARS, and accepted once stopped and paid up).

use std::sync::Arc;

use proptest::prelude::*;
use prost::Message;
use tonic::{Code, Request};
use yibao_domain::classify::RetireePayout;
use yibao_domain::id::ResidentId;
use yibao_domain::transfer::{Initiator, RefusalReason};
use yibao_proto::admin::v1 as wire;
use yibao_proto::admin::v1::admin_service_server::AdminService;
use yibao_proto::bureau::v1::PersonRecord;
use yibao_proto::common::v1 as common;
use yibao_runtime::directory::BureauRole;

use super::{enrolment, new_person, payment, retirement, stop};
use crate::api::admin::AdminApi;
use crate::journal::account;
use crate::messages::TransferApplication;
use crate::services::Services;
use crate::testing::{self, byte_edits, converted, edited_bytes};
use crate::transfer_out::{self, Opened};

const CERTNO: &str = "150102198001010014";
const NAME: &str = "赵明";

/// A person at Hohhot since 2015-07, contributing, paid through 2026-02 (the bureau's clock
/// reads March 2026), owing ¥321.09, with ¥1,234.56 in the personal account; before that, 42
/// months at Chongqing brought in by a transfer (as deemed months).
fn creation() -> wire::CreatePersonRequest {
    wire::CreatePersonRequest {
        certno: CERTNO.to_owned(),
        psn_name: NAME.to_owned(),
        insu_admdvs: "150100".to_owned(),
        insutype: common::Scheme::Employee as i32,
        psn_insu_stas: common::EnrolmentState::Normal as i32,
        fst_insu_ym: "201201".to_owned(),
        periods: vec![
            common::ContributionPeriod {
                from_month: "201201".to_owned(),
                to_month: "201506".to_owned(),
                scheme: common::Scheme::Resident as i32,
                region_code: "500000".to_owned(),
            },
            common::ContributionPeriod {
                from_month: "201507".to_owned(),
                to_month: "202602".to_owned(),
                scheme: common::Scheme::Employee as i32,
                region_code: "150100".to_owned(),
            },
        ],
        deemed_months: 42,
        personal_account_balance: "1234.56".to_owned(),
        arrears_amount: "321.09".to_owned(),
        retired: false,
    }
}

fn stopping(from: &str) -> wire::StopContributingRequest {
    wire::StopContributingRequest {
        certno: CERTNO.to_owned(),
        from_month: from.to_owned(),
    }
}

fn paying(amount: &str) -> wire::PayArrearsRequest {
    wire::PayArrearsRequest {
        certno: CERTNO.to_owned(),
        amount: amount.to_owned(),
        ..Default::default()
    }
}

/// A valid request of every person call, encoded.
fn valid_requests() -> Vec<Vec<u8>> {
    vec![
        creation().encode_to_vec(),
        wire::EnrolPersonRequest {
            certno: CERTNO.to_owned(),
            psn_name: NAME.to_owned(),
            insu_admdvs: "150100".to_owned(),
            insutype: common::Scheme::Employee as i32,
            from_month: "202603".to_owned(),
        }
        .encode_to_vec(),
        stopping("202603").encode_to_vec(),
        wire::PayArrearsRequest {
            certno: CERTNO.to_owned(),
            amount: "1.00".to_owned(),
            back_pay_from_month: "202601".to_owned(),
            back_pay_to_month: "202602".to_owned(),
        }
        .encode_to_vec(),
        wire::RetirePersonRequest {
            certno: CERTNO.to_owned(),
            from_month: "202603".to_owned(),
        }
        .encode_to_vec(),
    ]
}

/// Decodes `bytes` as every person request and converts each that decodes.
fn convert_every_request(bytes: &[u8]) -> Result<(), TestCaseError> {
    let site = testing::site(BureauRole::TransferOut);
    let common = ["certno", "psn_name", "insu_admdvs", "insutype"];
    if let Ok(request) = wire::CreatePersonRequest::decode(bytes) {
        let mut fields = common.to_vec();
        fields.extend(["psn_insu_stas", "fst_insu_ym", "periods"]);
        fields.extend(["personal_account_balance", "arrears_amount"]);
        converted(new_person(&site, &request, testing::day()), &fields)?;
    }
    if let Ok(request) = wire::EnrolPersonRequest::decode(bytes) {
        let mut fields = common.to_vec();
        fields.push("from_month");
        converted(enrolment(&site, &request, testing::day()), &fields)?;
    }
    if let Ok(request) = wire::StopContributingRequest::decode(bytes) {
        converted(stop(&request, testing::day()), &["certno", "from_month"])?;
    }
    if let Ok(request) = wire::PayArrearsRequest::decode(bytes) {
        let fields = [
            "certno",
            "amount",
            "back_pay_from_month",
            "back_pay_to_month",
        ];
        converted(payment(&request, testing::day()), &fields)?;
    }
    if let Ok(request) = wire::RetirePersonRequest::decode(bytes) {
        converted(
            retirement(&request, testing::day()),
            &["certno", "from_month"],
        )?;
    }
    Ok(())
}

#[test]
fn the_valid_requests_convert() {
    let site = testing::site(BureauRole::TransferOut);
    let requests = valid_requests();
    let decode = |index: usize| requests[index].as_slice();
    let create = wire::CreatePersonRequest::decode(decode(0)).expect("decodes");
    let new = new_person(&site, &create, testing::day()).expect("converts");
    assert_eq!(new.balance.to_string(), "1234.56");
    assert_eq!(new.record.periods.len(), 2);
    let enrol = wire::EnrolPersonRequest::decode(decode(1)).expect("decodes");
    assert!(enrolment(&site, &enrol, testing::day()).is_ok());
    let stopped = wire::StopContributingRequest::decode(decode(2)).expect("decodes");
    assert!(stop(&stopped, testing::day()).is_ok());
    let paid = wire::PayArrearsRequest::decode(decode(3)).expect("decodes");
    assert!(payment(&paid, testing::day()).is_ok());
    let retired = wire::RetirePersonRequest::decode(decode(4)).expect("decodes");
    assert!(retirement(&retired, testing::day()).is_ok());
}

#[test]
fn a_region_this_bureau_does_not_host_is_refused_naming_insu_admdvs() {
    let site = testing::site(BureauRole::TransferOut);
    for (code, rule) in [
        ("540100", "region 540100 is not hosted by this bureau"),
        ("500000", "region 500000 is not hosted by this bureau"),
        ("130100", "region 130100 is not in the region directory"),
        ("15010", "region code must be exactly 6 digits"),
    ] {
        let request = wire::CreatePersonRequest {
            insu_admdvs: code.to_owned(),
            ..creation()
        };
        let error = new_person(&site, &request, testing::day())
            .expect_err(code)
            .to_string();
        assert!(
            error.starts_with(&format!("insu_admdvs: {rule}")),
            "{error}"
        );
    }
}

#[test]
fn a_payment_names_the_field_it_cannot_read() {
    for (request, field) in [
        (paying("0.00"), "amount: must be above 0.00"),
        (
            paying("12.345"),
            "amount: an amount must have at most two decimal places",
        ),
        (
            wire::PayArrearsRequest {
                back_pay_from_month: "202601".to_owned(),
                ..paying("")
            },
            "back_pay_to_month: required",
        ),
        (
            wire::PayArrearsRequest {
                back_pay_from_month: "202602".to_owned(),
                back_pay_to_month: "202601".to_owned(),
                ..paying("")
            },
            "back_pay_to_month: must not be before",
        ),
    ] {
        let error = payment(&request, testing::day())
            .expect_err(field)
            .to_string();
        assert!(error.starts_with(field), "{error}");
    }
}

/// The bureau's record of the test person, as GetPerson shows it.
async fn shown(services: &Arc<Services>) -> Option<PersonRecord> {
    let certno = ResidentId::parse(CERTNO).expect("a valid ID number");
    testing::read(services, move |tx| {
        match crate::persons::shown(tx, certno.expose_unmasked())? {
            Some((person, balance)) => Ok(Some(crate::convert::wire_person(
                &person,
                balance,
                &yibao_domain::region::Pooling::city_level(),
            ))),
            None => Ok(None),
        }
    })
    .await
}

/// The transfer-out review of a request from Lhasa for the test person.
async fn review(services: &Arc<Services>, sequence: u32) -> Opened {
    let application = TransferApplication {
        transfer_id: testing::transfer_id("540100", sequence),
        certno: ResidentId::parse(CERTNO).expect("a valid ID number"),
        psn_name: NAME.to_owned(),
        in_scheme: None,
        out_region: testing::region("150100"),
        in_region: testing::region("540100"),
        applied_at: testing::start(),
        bank_account: None,
        retiree_payout: RetireePayout::NotRequested,
        payout_requested: false,
        channel: yibao_domain::application::ApplicationChannel::Online,
    };
    testing::step(services, move |step| {
        transfer_out::review_and_open(step, &application, Initiator::TransferIn)
    })
    .await
    .expect("the review runs")
}

fn refused_for(opened: &Opened) -> Option<RefusalReason> {
    match opened {
        Opened::Refused(refused) => Some(refused.reason),
        Opened::Accepted(_) => None,
    }
}

#[tokio::test]
async fn the_review_of_a_transfer_reads_what_the_person_calls_made_of_the_person() {
    let services = testing::services(BureauRole::TransferOut);
    let api = AdminApi::new(services.clone());
    let created = api
        .create_person(Request::new(creation()))
        .await
        .expect("created");
    let person = created.into_inner().person.expect("a person");
    assert_eq!(person.masked_certno, "150102********0014");
    assert_eq!(person.personal_account_balance, "1234.56");
    assert_eq!(person.contribution_months, 170);
    assert_eq!(
        refused_for(&review(&services, 1).await),
        Some(RefusalReason::NotStoppedAtTransferOut)
    );

    api.stop_contributing(Request::new(stopping("202603")))
        .await
        .expect("stopped");
    assert_eq!(
        refused_for(&review(&services, 2).await),
        Some(RefusalReason::Arrears)
    );

    let paid = api
        .pay_arrears(Request::new(paying("300.00")))
        .await
        .expect("paid part");
    assert_eq!(paid.get_ref().paid_amount, "300.00");
    assert_eq!(
        refused_for(&review(&services, 3).await),
        Some(RefusalReason::Arrears)
    );
    let paid = api
        .pay_arrears(Request::new(paying("")))
        .await
        .expect("paid the rest");
    assert_eq!(paid.get_ref().paid_amount, "21.09");
    let record = shown(&services).await.expect("known");
    assert_eq!(record.arrears_amount, "0.00");
    assert_eq!(
        record.psn_insu_stas,
        common::EnrolmentState::Suspended as i32
    );

    assert_eq!(refused_for(&review(&services, 4).await), None, "accepted");
    let holder = account::person(CERTNO);
    assert_eq!(
        testing::balance(&services, &holder).await,
        0,
        "the balance left with the form"
    );
}

#[tokio::test]
async fn a_refused_call_writes_nothing() {
    let services = testing::services(BureauRole::TransferOut);
    let api = AdminApi::new(services.clone());
    api.create_person(Request::new(creation()))
        .await
        .expect("created");
    let before = shown(&services).await;
    let status = api
        .pay_arrears(Request::new(paying("321.10")))
        .await
        .expect_err("too much");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(status.message(), "amount is more than the 321.09 owed");
    let status = api
        .stop_contributing(Request::new(stopping("202602")))
        .await
        .expect_err("paid");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().starts_with("from_month 202602: "),
        "{}",
        status.message()
    );
    let status = api
        .retire_person(Request::new(wire::RetirePersonRequest {
            certno: CERTNO.to_owned(),
            from_month: "202605".to_owned(),
        }))
        .await
        .expect_err("not yet");
    assert_eq!(status.code(), Code::FailedPrecondition);
    let status = api
        .create_person(Request::new(wire::CreatePersonRequest {
            personal_account_balance: "1.00".to_owned(),
            ..creation()
        }))
        .await
        .expect_err("twice");
    assert_eq!(status.code(), Code::AlreadyExists);
    assert_eq!(shown(&services).await, before, "nothing changed");
    let holder = account::person(CERTNO);
    assert_eq!(
        testing::balance(&services, &holder).await,
        123_456,
        "one opening only"
    );

    let unknown = api
        .stop_contributing(Request::new(wire::StopContributingRequest {
            certno: "150102197001010001".to_owned(),
            from_month: "202603".to_owned(),
        }))
        .await
        .expect_err("unknown");
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn an_enrolment_names_the_person_as_the_record_does() {
    let services = testing::services(BureauRole::TransferOut);
    let api = AdminApi::new(services.clone());
    api.create_person(Request::new(wire::CreatePersonRequest {
        psn_insu_stas: common::EnrolmentState::Suspended as i32,
        ..creation()
    }))
    .await
    .expect("created");
    let mut enrol = wire::EnrolPersonRequest {
        certno: CERTNO.to_owned(),
        psn_name: "赵敏".to_owned(),
        insu_admdvs: "440100".to_owned(),
        insutype: common::Scheme::Employee as i32,
        from_month: "202603".to_owned(),
    };
    let status = api
        .enrol_person(Request::new(enrol.clone()))
        .await
        .expect_err("not the name");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(
        status
            .metadata()
            .get("yibao-refusal-reason")
            .and_then(|v| v.to_str().ok()),
        Some("REFUSAL_REASON_UNKNOWN_PERSON")
    );
    enrol.psn_name = NAME.to_owned();
    let enrolled = api
        .enrol_person(Request::new(enrol))
        .await
        .expect("enrolled");
    let person = enrolled.into_inner().person.expect("a person");
    assert_eq!(person.insu_admdvs, "440100");
    assert_eq!(person.psn_insu_stas, common::EnrolmentState::Normal as i32);
    assert_eq!(person.periods.len(), 3);
}

#[tokio::test]
async fn a_seeded_person_changed_no_longer_fits_their_canned_flow() {
    use yibao_domain::population::Flow;
    let services = testing::services(BureauRole::TransferOut);
    let person = testing::seed(&services, Flow::RefusedArrears, 0).await;
    let api = AdminApi::new(services.clone());
    let sample = wire::SamplePersonsRequest {
        flow: Flow::RefusedArrears.name().to_owned(),
        limit: 10,
    };
    let sampled = api
        .sample_persons(Request::new(sample.clone()))
        .await
        .expect("sampled");
    assert_eq!(sampled.get_ref().persons.len(), 1);
    api.pay_arrears(Request::new(wire::PayArrearsRequest {
        certno: person.certno.expose_unmasked().to_owned(),
        ..Default::default()
    }))
    .await
    .expect("paid");
    let sampled = api
        .sample_persons(Request::new(sample))
        .await
        .expect("sampled");
    assert!(
        sampled.get_ref().persons.is_empty(),
        "no longer owes: not a refused-arrears person"
    );
}

proptest! {
    #[test]
    fn fuzz_person_requests_from_arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        convert_every_request(&bytes)?;
    }

    #[test]
    fn fuzz_person_requests_near_valid_ones(which in 0usize..5, edits in byte_edits()) {
        let valid = valid_requests().swap_remove(which);
        convert_every_request(&edited_bytes(valid, &edits))?;
    }
}
