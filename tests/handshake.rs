//! Black-box tests of the handshake: both services as real processes over gRPC on loopback.

use yibao_domain::population::Flow;
use yibao_proto::bureau::v1::bureau_service_client::BureauServiceClient;
use yibao_proto::bureau::v1::{ApplyTransferRequest, GetPersonRequest};
use yibao_proto::common::v1::{BankAccount, TransferState};
use yibao_proto::platform::v1::transfer_out_platform_service_client::TransferOutPlatformServiceClient;
use yibao_proto::platform::v1::{Envelope, RequestTransferOutRequest, TransferApplication};
use yibao_tests::*;

#[tokio::test]
async fn a_cross_province_transfer_moves_years_and_balance_exactly_once() {
    let pair = seeded_pair().await;
    let person = someone(Flow::CrossProvince);
    let mut bureau_in = BureauServiceClient::new(channel(pair.in_endpoint()).await);
    let applied = bureau_in
        .apply_transfer(application(&person))
        .await
        .expect("accepted")
        .into_inner();
    let id = applied.transfer.expect("transfer").transfer_id;

    let done_in = until_state(pair.in_endpoint(), &id, TransferState::Completed).await;
    let done_out = until_state(pair.out_endpoint(), &id, TransferState::Completed).await;
    assert_eq!(
        cents(&done_in.personal_account_balance),
        person.balance.cents()
    );
    assert_eq!(
        done_out.personal_account_balance,
        done_in.personal_account_balance
    );
    assert!(
        !done_in
            .masked_certno
            .contains(&person.certno.expose_unmasked()[6..14]),
        "masked"
    );

    let mut person_in = BureauServiceClient::new(channel(pair.in_endpoint()).await);
    let record = person_in
        .get_person(GetPersonRequest {
            certno: person.certno.expose_unmasked().to_owned(),
        })
        .await
        .expect("person")
        .into_inner()
        .person
        .expect("person");
    assert_eq!(
        cents(&record.personal_account_balance),
        person.balance.cents()
    );
    assert!(
        record.deemed_months > 0,
        "the years were credited as deemed years"
    );
    // Continuity: paid at Hohhot up to the last month of the periods, enrolled at Lhasa from
    // in_enrolled_from; a gap of at most 3 months may be back-paid, benefits from the payment.
    let last = person
        .periods
        .iter()
        .map(|p| p.to())
        .max()
        .expect("periods");
    let gap = u32::try_from(last.months_until(person.in_enrolled_from) - 1).unwrap_or(0);
    let expected = yibao_proto::bureau::v1::BenefitContinuity {
        gap_months: gap,
        back_pay_allowed: gap <= 3,
        back_pay_months: if gap <= 3 { gap } else { 0 },
        waiting_period_months: if gap > 3 { 6 } else { 0 },
        benefits_start_month: if gap > 3 {
            person
                .in_enrolled_from
                .saturating_plus_months(6)
                .to_string()
        } else {
            person.in_enrolled_from.to_string()
        },
    };
    assert_eq!(done_in.benefit_continuity.as_ref(), Some(&expected));
    assert_eq!(record.benefit_continuity.as_ref(), Some(&expected));
    assert_eq!(
        done_out.benefit_continuity, None,
        "shown where the credit is"
    );
    assert_conserved(&pair).await;

    // A second application while nothing is open any more is fine; an open one is refused.
    let again = bureau_in.apply_transfer(application(&person)).await;
    assert!(
        again.is_ok()
            || again.as_ref().err().map(|s| s.code()) == Some(tonic::Code::FailedPrecondition)
    );
}

#[tokio::test]
async fn not_connected_the_payout_only_on_request_and_it_needs_an_account() {
    let pair = seeded_pair().await;
    let person = someone(Flow::NotConnected);
    let mut bureau_out = BureauServiceClient::new(channel(pair.out_endpoint()).await);
    let mut asked = application(&person);
    asked.payout_requested = true;
    let refused = bureau_out
        .apply_transfer(asked)
        .await
        .expect_err("no bank account");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert!(
        refused.message().contains("BANK_ACCOUNT_REQUIRED"),
        "{}",
        refused.message()
    );

    let mut request = application(&person);
    request.payout_requested = true;
    request.bank_account = Some(BankAccount {
        bank_name: "中国工商银行".to_owned(),
        account_number: person.bank_account_number.clone(),
        account_holder_name: person.name.clone(),
    });
    let id = bureau_out
        .apply_transfer(request)
        .await
        .expect("accepted")
        .into_inner()
        .transfer
        .expect("t")
        .transfer_id;
    let paid = until_state(pair.out_endpoint(), &id, TransferState::PaidToBank).await;
    assert_eq!(
        cents(&paid.personal_account_balance),
        person.balance.cents()
    );
    let out = totals(pair.out_endpoint()).await;
    assert_eq!(cents(&out.paid_to_bank_total), person.balance.cents());
    assert_conserved(&pair).await;
}

#[tokio::test]
async fn not_connected_an_application_waits_until_the_region_joins_then_proceeds() {
    use yibao_proto::admin::v1::SetRegionConnectivityRequest;
    use yibao_proto::bureau::v1::GetPersonRequest;
    let pair = seeded_pair().await;
    let person = someone(Flow::NotConnected);
    let mut bureau_out = BureauServiceClient::new(channel(pair.out_endpoint()).await);
    let id = bureau_out
        .apply_transfer(application(&person))
        .await
        .expect("accepted to wait")
        .into_inner()
        .transfer
        .expect("a transfer")
        .transfer_id;
    let waiting = until_state(pair.out_endpoint(), &id, TransferState::AwaitingConnection).await;
    assert!(
        waiting
            .history
            .iter()
            .any(|e| e.detail.contains("not connected")),
        "the reason is visible: {:?}",
        waiting.history
    );
    let record = bureau_out
        .get_person(GetPersonRequest {
            certno: person.certno.expose_unmasked().to_owned(),
        })
        .await
        .expect("the person")
        .into_inner()
        .person
        .expect("a record");
    assert_eq!(
        cents(&record.personal_account_balance),
        person.balance.cents(),
        "the balance stays in the account while it waits"
    );
    // Zhengzhou joins the platform, at both bureaus: the application proceeds to the form,
    // which the transfer-in bureau (hosting Zhengzhou) answers.
    for side in Side::BOTH {
        pair.admin(side)
            .set_region_connectivity(SetRegionConnectivityRequest {
                region_code: "410100".to_owned(),
                connected: true,
            })
            .await
            .expect("the region joins");
    }
    let ended = until_terminal(pair.out_endpoint(), &id).await;
    assert_eq!(
        ended.state,
        TransferState::Completed as i32,
        "the years and the balance arrived once the region joined"
    );
    assert!(
        ended.history.iter().any(|e| e.kind == "RESUMED"),
        "{:?}",
        ended.history
    );
    assert_conserved(&pair).await;
}

#[tokio::test]
async fn a_repeated_message_gets_the_first_answer_and_a_modified_one_is_refused() {
    let pair = seeded_pair().await;
    let person = someone(Flow::CrossProvince);
    let mut platform =
        TransferOutPlatformServiceClient::new(pair.platform_channel(Side::Out).expect("platform"));
    let request = RequestTransferOutRequest {
        envelope: Some(Envelope {
            infno: "9101".to_owned(),
            msgid: "B54010000009202611231200000001".to_owned(),
            sender_region_code: "540100".to_owned(),
            receiver_region_code: "150100".to_owned(),
            sent_at: None,
            transfer_id: "540100202611239000001".to_owned(),
        }),
        application: Some(TransferApplication {
            transfer_id: "540100202611239000001".to_owned(),
            certno: person.certno.expose_unmasked().to_owned(),
            psn_name: person.name.clone(),
            trafout_admdvs: "150100".to_owned(),
            trafin_admdvs: "540100".to_owned(),
            ..Default::default()
        }),
    };
    let first = platform
        .request_transfer_out(request.clone())
        .await
        .expect("answer")
        .into_inner();
    let second = platform
        .request_transfer_out(request.clone())
        .await
        .expect("answer")
        .into_inner();
    assert_eq!(first, second, "a repeat gets the first answer");
    let debited = cents(&totals(pair.out_endpoint()).await.debited_to_transit_total);
    assert_eq!(debited, person.balance.cents(), "debited once, not twice");

    let mut modified = request;
    if let Some(application) = modified.application.as_mut() {
        application.psn_name = "王五".to_owned();
    }
    let answer = platform
        .request_transfer_out(modified)
        .await
        .expect("answer")
        .into_inner();
    assert_eq!(
        answer.reply.expect("reply").infcode,
        1004,
        "modified request"
    );
    assert_eq!(
        cents(&totals(pair.out_endpoint()).await.debited_to_transit_total),
        debited
    );
    assert_form_of_a_stranger_refused(&pair).await;
}

/// A change that makes one field of an application invalid.
type Spoil = Box<dyn Fn(&mut ApplyTransferRequest)>;

#[tokio::test]
async fn bad_applicant_input_gets_a_clear_status_and_writes_nothing() {
    let pair = seeded_pair().await;
    let person = someone(Flow::CrossProvince);
    let mut bureau_in = BureauServiceClient::new(channel(pair.in_endpoint()).await);
    let cases: Vec<(&str, Spoil)> = vec![
        (
            "certno",
            Box::new(|r| r.certno = "11010519491231002Y".to_owned()),
        ),
        ("psn_name", Box::new(|r| r.psn_name = " ".to_owned())),
        (
            "trafout_admdvs",
            Box::new(|r| r.trafout_admdvs = "15010".to_owned()),
        ),
        (
            "trafin_admdvs",
            Box::new(|r| r.trafin_admdvs = "9x0100".to_owned()),
        ),
        (
            "bank_account.bank_name",
            Box::new(|r| {
                r.bank_account = Some(BankAccount {
                    bank_name: " ".into(),
                    account_number: "6222000011112222333".into(),
                    account_holder_name: "x".into(),
                })
            }),
        ),
        (
            "bank_account.account_number",
            Box::new(|r| {
                r.bank_account = Some(BankAccount {
                    bank_name: "b".into(),
                    account_number: "12ab".into(),
                    account_holder_name: "x".into(),
                })
            }),
        ),
    ];
    for (field, spoil) in cases {
        let mut request = application(&person);
        spoil(&mut request);
        let status = bureau_in.apply_transfer(request).await.expect_err(field);
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{field}");
        assert!(
            status.message().contains(field),
            "{field}: {}",
            status.message()
        );
        assert!(
            !status.message().contains(person.certno.expose_unmasked()),
            "no personal data"
        );
    }
    let inn = totals(pair.in_endpoint()).await;
    assert!(
        inn.transfers_by_state.is_empty(),
        "nothing written: {inn:?}"
    );
    assert_conserved(&pair).await;
}

#[tokio::test]
async fn sample_persons_name_the_people_the_population_function_makes() {
    let pair = seeded_pair().await;
    let mut admin = pair.admin_in();
    let sample = admin
        .sample_persons(yibao_proto::admin::v1::SamplePersonsRequest {
            flow: "intra-province-shared".to_owned(),
            limit: 3,
        })
        .await
        .expect("sample")
        .into_inner()
        .persons;
    assert_eq!(sample.len(), 3);
    for sampled in sample {
        let made = yibao_domain::population::person(SEED, sampled.index).expect("in range");
        assert_eq!(made.certno.expose_unmasked(), sampled.certno);
        assert_eq!(made.flow, Flow::IntraProvinceShared);
        assert_eq!(
            (
                sampled.trafout_admdvs.as_str(),
                sampled.trafin_admdvs.as_str()
            ),
            ("440100", "440300")
        );
    }
    let unknown = admin
        .sample_persons(yibao_proto::admin::v1::SamplePersonsRequest {
            flow: "nope".to_owned(),
            limit: 1,
        })
        .await
        .expect_err("unknown flow");
    assert_eq!(unknown.code(), tonic::Code::InvalidArgument);
    assert!(unknown.message().starts_with("flow:"));
}

#[tokio::test]
async fn a_watch_follows_a_transfer_in_order_to_its_terminal_state() {
    use yibao_proto::bureau::v1::WatchTransferRequest;
    let pair = seeded_pair().await;
    let mut bureau_in = BureauServiceClient::new(channel(pair.in_endpoint()).await);
    let people = (0..PERSONS)
        .map(|index| yibao_domain::population::person(SEED, index).expect("in range"))
        .filter(|person| person.flow == Flow::CrossProvince)
        .take(3);
    for person in people {
        let applied = bureau_in
            .apply_transfer(application(&person))
            .await
            .expect("accepted")
            .into_inner();
        let id = applied.transfer.expect("transfer").transfer_id;
        let mut stream = bureau_in
            .watch_transfer(WatchTransferRequest {
                transfer_id: id.clone(),
            })
            .await
            .expect("watching")
            .into_inner();
        let mut seen = Vec::new();
        let ended = tokio::time::timeout(DEADLINE, async {
            while let Some(message) = stream.message().await.expect("a stream message") {
                seen.push(message.transfer.expect("transfer"));
            }
        })
        .await;
        assert!(ended.is_ok(), "the stream ends after the terminal state");
        let last = seen.last().expect("at least one message");
        assert_eq!(last.state, TransferState::Completed as i32);
        assert!(
            last.history
                .iter()
                .any(|event| event.kind == "FORM_ARRIVED"),
            "the last message carries the whole history"
        );
        // Each message is a later state than the one before: never an older snapshot.
        for pair_of in seen.windows(2) {
            assert!(
                pair_of[1].history.len() > pair_of[0].history.len(),
                "history went from {} to {} events",
                pair_of[0].history.len(),
                pair_of[1].history.len()
            );
        }
        let read_back = transfer(pair.in_endpoint(), &id).await.expect("transfer");
        assert_eq!(
            read_back.history.len(),
            last.history.len(),
            "the stream's last word is the store's"
        );
    }
    assert_conserved(&pair).await;
}

#[tokio::test]
async fn a_bureau_lists_the_contract_to_a_v1alpha_reflection_client() {
    // Python's grpcio-reflection and older grpcurl speak only v1alpha (v1 is checked in the
    // runtime crate); this also checks that the bureau hands its contract to reflection.
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
    let pair = seeded_pair().await;
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let answer = ServerReflectionClient::new(channel(pair.in_endpoint()).await)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("v1alpha reflection answers")
        .into_inner()
        .message()
        .await
        .expect("stream open")
        .expect("one answer");
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("expected a service list");
    };
    let names: Vec<String> = list
        .service
        .into_iter()
        .map(|service| service.name)
        .collect();
    for served in [
        "yibao.bureau.v1.BureauService",
        "yibao.platform.v1.TransferInPlatformService",
        "yibao.admin.v1.AdminService",
    ] {
        assert!(
            names.iter().any(|name| name == served),
            "{served} in {names:?}"
        );
    }
}
