//! Smoke tests of the generated contract: one message per package survives an encode/decode
//! round trip, and the descriptor set served by reflection names every service.

use prost::Message;
use prost_types::{Duration, FileDescriptorSet, Timestamp};
use yibao_proto::{admin, bureau, common, platform};

/// Encodes `message`, decodes it again and checks nothing was lost.
fn assert_round_trip<M: Message + Default + PartialEq + std::fmt::Debug>(message: &M) {
    let bytes = message.encode_to_vec();
    let decoded = M::decode(bytes.as_slice()).expect("decodes what was just encoded");
    assert_eq!(&decoded, message);
}

fn at(seconds: i64) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos: 0 })
}

#[test]
fn common_contribution_period_round_trips() {
    assert_round_trip(&common::v1::ContributionPeriod {
        from_month: "201501".to_owned(),
        to_month: "202512".to_owned(),
        scheme: common::v1::Scheme::Employee.into(),
        region_code: "150100".to_owned(),
    });
}

#[test]
fn platform_delivery_round_trips_with_its_oneof() {
    let request = platform::v1::DeliverInsuranceRecordRequest {
        envelope: Some(platform::v1::Envelope {
            infno: "9102".to_owned(),
            msgid: "B15010000001202603100930050001".to_owned(),
            sender_region_code: "150100".to_owned(),
            receiver_region_code: "540100".to_owned(),
            sent_at: at(1_773_106_205),
            transfer_id: "T-1".to_owned(),
        }),
        form: Some(platform::v1::InsuranceInformationForm {
            transfer_id: "T-1".to_owned(),
            insutype: common::v1::Scheme::Employee.into(),
            periods: vec![common::v1::ContributionPeriod::default()],
            contribution_months: 132,
            personal_account_balance: "1234.50".to_owned(),
            balance_disposition: common::v1::BalanceDisposition::MoveToAccount.into(),
            flow_kind: common::v1::FlowKind::CrossProvince.into(),
            initiator: common::v1::Initiator::TransferInBureau.into(),
            ..Default::default()
        }),
    };
    assert_round_trip(&request);

    let response = platform::v1::DeliverInsuranceRecordResponse {
        reply: Some(platform::v1::Reply {
            infcode: 0,
            err_msg: String::new(),
            inf_refmsgid: "B54010000001202603100930060001".to_owned(),
        }),
        acknowledgement: Some(platform::v1::CreditAcknowledgement {
            outcome: Some(platform::v1::credit_acknowledgement::Outcome::Refused(
                platform::v1::TransferRejection {
                    reason_code: common::v1::RefusalReason::NotEnrolledAtTransferIn.into(),
                    reason: "not enrolled at the transfer-in region".to_owned(),
                },
            )),
        }),
    };
    assert_round_trip(&response);
}

#[test]
fn bureau_transfer_round_trips() {
    assert_round_trip(&bureau::v1::GetTransferResponse {
        transfer: Some(bureau::v1::Transfer {
            transfer_id: "T-1".to_owned(),
            side: common::v1::Side::TransferIn.into(),
            state: common::v1::TransferState::Credited.into(),
            masked_certno: "150102********123X".to_owned(),
            deadlines: Some(bureau::v1::Deadlines {
                whole_process_due_on: "2026-03-31".to_owned(),
                estimated_weekends_only: true,
                ..Default::default()
            }),
            history: vec![bureau::v1::TransferEvent {
                at: at(1_773_106_205),
                kind: "form_credited".to_owned(),
                from_state: common::v1::TransferState::Accepted.into(),
                to_state: common::v1::TransferState::Credited.into(),
                detail: String::new(),
                attempt: 1,
            }],
            ..Default::default()
        }),
    });
}

#[test]
fn admin_clock_request_round_trips() {
    assert_round_trip(&admin::v1::AdvanceClockRequest {
        by: Some(Duration {
            seconds: 86_400,
            nanos: 0,
        }),
    });
}

#[test]
fn enum_numbers_match_the_platform_codes_where_the_contract_says_so() {
    // psn_insu_stas: 1 normal, 2 suspended, 4 terminated.
    assert_eq!(common::v1::EnrolmentState::Normal as i32, 1);
    assert_eq!(common::v1::EnrolmentState::Suspended as i32, 2);
    assert_eq!(common::v1::EnrolmentState::Terminated as i32, 4);
}

#[test]
fn descriptor_set_names_every_service() {
    let descriptor_set = FileDescriptorSet::decode(yibao_proto::FILE_DESCRIPTOR_SET)
        .expect("the embedded descriptor set decodes");
    let services: Vec<String> = descriptor_set
        .file
        .iter()
        .flat_map(|file| {
            file.service
                .iter()
                .map(move |service| format!("{}.{}", file.package(), service.name()))
        })
        .collect();
    for expected in [
        "yibao.platform.v1.TransferOutPlatformService",
        "yibao.platform.v1.TransferInPlatformService",
        "yibao.bureau.v1.BureauService",
        "yibao.admin.v1.AdminService",
    ] {
        assert!(
            services.iter().any(|service| service == expected),
            "{expected} missing from {services:?}"
        );
    }
    // Reflection clients resolve imports, so the well-known types travel with the contract.
    assert!(
        descriptor_set
            .file
            .iter()
            .any(|file| file.name() == "google/protobuf/timestamp.proto")
    );
}
