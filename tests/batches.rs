//! Black-box tests of the platform batches (`SubmitTransferOutRequests`,
//! `SubmitTransferInMessages`): each message of a batch is answered as if it had been sent alone,
//! with the same idempotency, and one bad message does not hold up the others.

use yibao_domain::population::Flow;
use yibao_proto::platform::v1 as platform;
use yibao_proto::platform::v1::transfer_in_platform_service_client::TransferInPlatformServiceClient;
use yibao_proto::platform::v1::transfer_out_platform_service_client::TransferOutPlatformServiceClient;
use yibao_tests::*;

/// An envelope from `sender` to `receiver` with sequence number `sequence`.
fn envelope(
    infno: &str,
    sequence: u32,
    sender: &str,
    receiver: &str,
    transfer_id: &str,
) -> platform::Envelope {
    platform::Envelope {
        infno: infno.to_owned(),
        msgid: format!("B{sender}0000920261123120000{sequence:04}"),
        sender_region_code: sender.to_owned(),
        receiver_region_code: receiver.to_owned(),
        sent_at: None,
        transfer_id: transfer_id.to_owned(),
    }
}

fn infcode(answer: &platform::TransferOutAnswer) -> Option<i32> {
    match &answer.answer {
        Some(platform::transfer_out_answer::Answer::Response(response)) => {
            response.reply.as_ref().map(|reply| reply.infcode)
        }
        _ => None,
    }
}

#[tokio::test]
async fn each_request_of_a_batch_is_answered_as_if_sent_alone() {
    let pair = seeded_pair().await;
    let person = someone(Flow::CrossProvince);
    let transfer_id = "540100202611239000007";
    let request = platform::RequestTransferOutRequest {
        envelope: Some(envelope("9101", 1, "540100", "150100", transfer_id)),
        application: Some(platform::TransferApplication {
            transfer_id: transfer_id.to_owned(),
            certno: person.certno.expose_unmasked().to_owned(),
            psn_name: person.name.clone(),
            trafout_admdvs: "150100".to_owned(),
            trafin_admdvs: "540100".to_owned(),
            ..Default::default()
        }),
    };
    let mut modified = request.clone();
    if let Some(application) = modified.application.as_mut() {
        application.psn_name = "王五".to_owned();
    }
    let mut without_envelope = request.clone();
    without_envelope.envelope = None;
    let mut wrong_receiver = request.clone();
    wrong_receiver.envelope = Some(envelope("9101", 2, "540100", "440300", transfer_id));

    let mut platform =
        TransferOutPlatformServiceClient::new(pair.platform_channel(Side::Out).expect("platform"));
    let answers = platform
        .submit_transfer_out_requests(platform::SubmitTransferOutRequestsRequest {
            requests: vec![
                request.clone(),
                request.clone(),
                modified,
                without_envelope,
                wrong_receiver,
            ],
        })
        .await
        .expect("the batch is answered")
        .into_inner()
        .answers;

    assert_eq!(answers.len(), 5, "one answer per request, in order");
    let accepted = match &answers[0].answer {
        Some(platform::transfer_out_answer::Answer::Response(response)) => response.clone(),
        other => panic!("the first request was not answered: {other:?}"),
    };
    assert_eq!(accepted.reply.as_ref().map(|r| r.infcode), Some(0));
    assert!(matches!(
        accepted.decision,
        Some(platform::request_transfer_out_response::Decision::Accepted(
            _
        ))
    ));
    assert_eq!(
        answers[1], answers[0],
        "a repeat in the same batch gets the first answer"
    );
    // platform.proto, Reply.inf_refmsgid: the receiver's reference, laid out like a msgid with
    // the transfer-out bureau's institution code (B, its first region 150100, instance 00001);
    // the repeat above carried the same. A modified request, kept nowhere, names its msgid.
    let reference = accepted
        .reply
        .as_ref()
        .map(|r| r.inf_refmsgid.clone())
        .unwrap_or_default();
    assert_eq!(reference.len(), 30, "{reference}");
    assert!(reference.starts_with("B15010000001"), "{reference}");
    assert!(
        reference[12..].bytes().all(|b| b.is_ascii_digit()),
        "{reference}"
    );
    assert_eq!(infcode(&answers[2]), Some(1004), "same msgid, other body");
    let refused_reference = match &answers[2].answer {
        Some(platform::transfer_out_answer::Answer::Response(response)) => {
            response.reply.as_ref().map(|r| r.inf_refmsgid.clone())
        }
        _ => None,
    };
    let msgid = request.envelope.as_ref().map(|e| e.msgid.clone());
    assert_eq!(refused_reference, msgid);
    assert_eq!(infcode(&answers[3]), Some(1001), "no envelope");
    assert_eq!(
        infcode(&answers[4]),
        Some(1002),
        "a receiver this bureau does not host"
    );

    // The batch and the single rpc share one inbox: sent alone, the request gets the same answer.
    let alone = platform
        .request_transfer_out(request)
        .await
        .expect("answer")
        .into_inner();
    assert_eq!(alone, accepted);
    assert_eq!(
        cents(&totals(pair.out_endpoint()).await.debited_to_transit_total),
        person.balance.cents(),
        "debited once, not once per copy"
    );

    for size in [0, 1_001] {
        let status = platform
            .submit_transfer_out_requests(platform::SubmitTransferOutRequestsRequest {
                requests: vec![platform::RequestTransferOutRequest::default(); size],
            })
            .await
            .expect_err("a batch of this size is refused");
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(
            status
                .message()
                .starts_with("requests: must hold 1 to 1000"),
            "{}",
            status.message()
        );
    }
    assert_form_of_a_stranger_refused(&pair).await;
}

#[tokio::test]
async fn a_transfer_in_batch_mixes_kinds_and_one_bad_message_holds_up_nothing() {
    use platform::transfer_in_answer::Answer;
    use platform::transfer_in_message::Message;
    let pair = seeded_pair().await;
    let unknown = "150100202611239000009";
    let abort = platform::AbortTransferRequest {
        envelope: Some(envelope("9104", 3, "150100", "540100", unknown)),
        transfer_id: unknown.to_owned(),
        reason: "deadline".to_owned(),
        ..Default::default()
    };
    let confirm_unknown = platform::ConfirmSettlementRequest {
        envelope: Some(envelope(
            "9103",
            4,
            "150100",
            "540100",
            "150100202611239000010",
        )),
        transfer_id: "150100202611239000010".to_owned(),
        settled_at: None,
    };
    let mut platform =
        TransferInPlatformServiceClient::new(pair.platform_channel(Side::In).expect("platform"));
    let answers = platform
        .submit_transfer_in_messages(platform::SubmitTransferInMessagesRequest {
            messages: vec![
                platform::TransferInMessage { message: None },
                platform::TransferInMessage {
                    message: Some(Message::AbortTransfer(abort.clone())),
                },
                platform::TransferInMessage {
                    message: Some(Message::ConfirmSettlement(confirm_unknown)),
                },
            ],
        })
        .await
        .expect("the batch is answered")
        .into_inner()
        .answers;
    assert_eq!(answers.len(), 3);
    match &answers[0].answer {
        Some(Answer::Failed(status)) => {
            assert_eq!(status.code, tonic::Code::InvalidArgument as i32);
            assert_eq!(status.message, "messages[0].message: required");
        }
        other => panic!("an empty message must fail alone: {other:?}"),
    }
    let aborted = match &answers[1].answer {
        Some(Answer::AbortTransfer(response)) => response.clone(),
        other => panic!("the abort was not answered: {other:?}"),
    };
    assert_eq!(aborted.reply.as_ref().map(|r| r.infcode), Some(0));
    assert!(
        !aborted.credited,
        "an unknown transfer is aborted, never credited"
    );
    match &answers[2].answer {
        Some(Answer::ConfirmSettlement(response)) => {
            assert_eq!(response.reply.as_ref().map(|r| r.infcode), Some(1005));
        }
        other => panic!("the confirmation was not answered: {other:?}"),
    }
    // The abort was recorded with its msgid: alone, it gets the same answer, and the transfer
    // is remembered as aborted.
    let again = platform
        .abort_transfer(abort)
        .await
        .expect("answer")
        .into_inner();
    assert_eq!(again, aborted);
    let remembered = transfer(pair.in_endpoint(), unknown)
        .await
        .expect("remembered");
    assert_eq!(
        remembered.state,
        yibao_proto::common::v1::TransferState::Aborted as i32
    );
    assert_conserved(&pair).await;
}

#[tokio::test]
async fn a_wrong_transaction_code_is_1003_and_an_envelope_naming_another_transfer_is_1001() {
    let pair = seeded_pair().await;
    let person = someone(Flow::CrossProvince);
    let transfer_id = "540100202611239000011";
    let application = platform::TransferApplication {
        transfer_id: transfer_id.to_owned(),
        certno: person.certno.expose_unmasked().to_owned(),
        psn_name: person.name.clone(),
        trafout_admdvs: "150100".to_owned(),
        trafin_admdvs: "540100".to_owned(),
        ..Default::default()
    };
    let wrong_code = platform::RequestTransferOutRequest {
        envelope: Some(envelope("9102", 5, "540100", "150100", transfer_id)),
        application: Some(application.clone()),
    };
    let other_transfer = platform::RequestTransferOutRequest {
        envelope: Some(envelope(
            "9101",
            6,
            "540100",
            "150100",
            "540100202611239000012",
        )),
        application: Some(application),
    };
    let mut platform =
        TransferOutPlatformServiceClient::new(pair.platform_channel(Side::Out).expect("platform"));
    let answers = platform
        .submit_transfer_out_requests(platform::SubmitTransferOutRequestsRequest {
            requests: vec![wrong_code.clone(), other_transfer],
        })
        .await
        .expect("the batch is answered")
        .into_inner()
        .answers;
    assert_eq!(
        infcode(&answers[0]),
        Some(1003),
        "infno 9102 on RequestTransferOut"
    );
    assert_eq!(
        infcode(&answers[1]),
        Some(1001),
        "envelope and body disagree"
    );
    let alone = platform
        .request_transfer_out(wrong_code)
        .await
        .expect("answered")
        .into_inner();
    assert_eq!(alone.reply.map(|reply| reply.infcode), Some(1003));
    let out = totals(pair.out_endpoint()).await;
    assert!(
        out.transfers_by_state.is_empty(),
        "nothing written: {out:?}"
    );
    assert_conserved(&pair).await;
}

#[tokio::test]
async fn a_query_with_an_empty_msgid_is_answered_not_a_panic() {
    let pair = seeded_pair().await;
    let mut platform =
        TransferInPlatformServiceClient::new(pair.platform_channel(Side::In).expect("platform"));
    let mut empty = envelope("9106", 7, "150100", "540100", "540100202611239000013");
    empty.msgid = String::new();
    let answer = platform
        .query_transfer_in(platform::QueryTransferInRequest {
            envelope: Some(empty),
            transfer_id: "540100202611239000013".to_owned(),
        })
        .await
        .expect("answered, the stream not reset")
        .into_inner();
    assert_eq!(answer.transfer, None, "no such transfer");
}
