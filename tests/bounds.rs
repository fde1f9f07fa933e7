//! Black-box tests of the length bounds every string field of the contract documents: an
//! over-long field is refused where the request is converted, naming the field and the bound —
//! INVALID_ARGUMENT on the bureau and admin APIs, infcode 1001 on the platform API — and nothing
//! is written.

use yibao_domain::population::Flow;
use yibao_proto::admin::v1::SamplePersonsRequest;
use yibao_proto::bureau::v1::{IssueCertificateRequest, VerifyCertificateRequest};
use yibao_proto::common::v1::BankAccount;
use yibao_proto::platform::v1 as platform;
use yibao_proto::platform::v1::transfer_in_platform_service_client::TransferInPlatformServiceClient;
use yibao_proto::platform::v1::transfer_out_platform_service_client::TransferOutPlatformServiceClient;
use yibao_tests::*;

/// Asserts an INVALID_ARGUMENT that names `field` and the bound `at most`.
fn assert_bounded(result: Result<impl std::fmt::Debug, tonic::Status>, field: &str, at_most: &str) {
    let status = result.expect_err(field);
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().starts_with(&format!("{field}:")) && status.message().contains(at_most),
        "{field}: {}",
        status.message()
    );
}

/// Asserts a platform reply of infcode 1001 naming `field` and the bound `at most`.
fn assert_refused_1001(reply: Option<platform::Reply>, field: &str, at_most: &str) {
    let reply = reply.expect("a reply");
    assert_eq!(reply.infcode, 1001, "{field}: {reply:?}");
    assert!(
        reply.err_msg.starts_with(&format!("{field}:")) && reply.err_msg.contains(at_most),
        "{field}: {}",
        reply.err_msg
    );
}

/// An envelope from Lhasa's bureau to Hohhot's (or back) for `transfer_id`.
fn envelope(
    infno: &str,
    sequence: u32,
    sender: &str,
    receiver: &str,
    id: &str,
) -> platform::Envelope {
    platform::Envelope {
        infno: infno.to_owned(),
        msgid: format!("B{sender}0000920261123130000{sequence:04}"),
        sender_region_code: sender.to_owned(),
        receiver_region_code: receiver.to_owned(),
        sent_at: None,
        transfer_id: id.to_owned(),
    }
}

#[tokio::test]
async fn over_long_fields_are_refused_on_the_bureau_and_admin_apis() {
    let pair = seeded_pair().await;
    let person = someone(Flow::NotConnected);
    let long_name = "张".repeat(51);

    let mut request = application(&person);
    request.psn_name = long_name.clone();
    let answer = pair.bureau_out().apply_transfer(request).await;
    assert_bounded(answer, "psn_name", "at most 50 characters");

    let mut request = application(&person);
    request.bank_account = Some(BankAccount {
        bank_name: "银".repeat(101),
        account_number: person.bank_account_number.clone(),
        account_holder_name: person.name.clone(),
    });
    let answer = pair.bureau_out().apply_transfer(request).await;
    assert_bounded(answer, "bank_account.bank_name", "at most 100 characters");

    let mut request = application(&person);
    request.certno = format!("{}0", person.certno.expose_unmasked());
    let answer = pair.bureau_out().apply_transfer(request).await;
    assert_bounded(answer, "certno", "18 characters");

    let answer = pair
        .bureau_out()
        .issue_certificate(IssueCertificateRequest {
            certno: person.certno.expose_unmasked().to_owned(),
            psn_name: long_name,
        })
        .await;
    assert_bounded(answer, "psn_name", "at most 50 characters");

    let answer = pair
        .bureau_out()
        .verify_certificate(VerifyCertificateRequest {
            verification_code: "0".repeat(21),
        })
        .await;
    assert_bounded(answer, "verification_code", "20 characters");

    let answer = pair
        .admin_out()
        .sample_persons(SamplePersonsRequest {
            flow: "x".repeat(65),
            limit: 1,
        })
        .await;
    assert_bounded(answer, "flow", "at most 64 characters");

    let out = totals(pair.out_endpoint()).await;
    assert!(
        out.transfers_by_state.is_empty(),
        "nothing written: {out:?}"
    );
}

#[tokio::test]
async fn over_long_fields_of_platform_messages_are_infcode_1001_and_write_nothing() {
    let pair = seeded_pair().await;
    let person = someone(Flow::CrossProvince);
    let transfer_id = "540100202611239000021";
    let application = platform::TransferApplication {
        transfer_id: transfer_id.to_owned(),
        certno: person.certno.expose_unmasked().to_owned(),
        psn_name: "张".repeat(51),
        trafout_admdvs: "150100".to_owned(),
        trafin_admdvs: "540100".to_owned(),
        ..Default::default()
    };
    let mut to_out =
        TransferOutPlatformServiceClient::new(pair.platform_channel(Side::Out).expect("platform"));
    let answer = to_out
        .request_transfer_out(platform::RequestTransferOutRequest {
            envelope: Some(envelope("9101", 1, "540100", "150100", transfer_id)),
            application: Some(application.clone()),
        })
        .await
        .expect("answered")
        .into_inner();
    assert_refused_1001(
        answer.reply,
        "application.psn_name",
        "at most 50 characters",
    );

    let mut named = application;
    named.psn_name = person.name.clone();
    let answer = to_out
        .request_transfer_out(platform::RequestTransferOutRequest {
            envelope: Some(envelope("91010", 2, "540100", "150100", transfer_id)),
            application: Some(named),
        })
        .await
        .expect("answered")
        .into_inner();
    assert_refused_1001(answer.reply, "envelope.infno", "at most 4 characters");

    let form_id = "150100202611239000022";
    let mut to_in =
        TransferInPlatformServiceClient::new(pair.platform_channel(Side::In).expect("platform"));
    let answer = to_in
        .deliver_insurance_record(platform::DeliverInsuranceRecordRequest {
            envelope: Some(envelope("9102", 3, "150100", "540100", form_id)),
            form: Some(platform::InsuranceInformationForm {
                transfer_id: form_id.to_owned(),
                certno: person.certno.expose_unmasked().to_owned(),
                psn_name: person.name.clone(),
                trafout_admdvs: "150100".to_owned(),
                trafin_admdvs: "540100".to_owned(),
                fst_insu_ym: "2015070".to_owned(),
                personal_account_balance: "1.00".to_owned(),
                ..Default::default()
            }),
        })
        .await
        .expect("answered")
        .into_inner();
    assert_refused_1001(answer.reply, "form.fst_insu_ym", "at most 6 characters");

    for side in Side::BOTH {
        let totals = totals(pair.endpoint(side)).await;
        assert!(
            totals.transfers_by_state.is_empty(),
            "nothing written at {}: {totals:?}",
            side.service()
        );
    }
}
