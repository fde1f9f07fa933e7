//! No platform handler panics on any input, and a refused message writes nothing: a property
//! test sends every platform RPC valid messages with random bytes flipped, inserted or cut, and
//! envelopes made of arbitrary and almost-valid fields, from plaintext and certified callers.

use std::sync::Arc;

use proptest::prelude::*;
use prost::Message;
use tonic::Request;
use yibao_domain::region::RegionCode;
use yibao_proto::platform::v1 as platform;
use yibao_proto::platform::v1::transfer_in_platform_service_server::TransferInPlatformService;
use yibao_proto::platform::v1::transfer_out_platform_service_server::TransferOutPlatformService;
use yibao_runtime::directory::BureauRole;

use super::PlatformApi;
use crate::admission::Caller;
use crate::testing;

/// A field that is sometimes right, sometimes nearly right and sometimes anything.
fn field(valid: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(valid).prop_map(str::to_owned),
        Just(String::new()),
        "[0-9]{0,24}",
        "[A-Z0-9]{28,32}",
        any::<String>(),
    ]
}

/// An envelope of arbitrary and almost-valid fields, or none.
fn envelope() -> impl Strategy<Value = Option<platform::Envelope>> {
    let fields = (
        field(&["9101", "9102", "9103", "9104", "9105"]),
        field(&[
            "B54010000002202603100930050001",
            "B15010000001202603100930050001",
        ]),
        field(&["540100", "150100", "440300", "440100"]),
        field(&["150100", "540100", "440100", "440300"]),
        field(&["540100202603100000001", "150100202603100000001"]),
    );
    proptest::option::weighted(
        0.9,
        fields.prop_map(
            |(infno, msgid, sender, receiver, transfer_id)| platform::Envelope {
                infno,
                msgid,
                sender_region_code: sender,
                receiver_region_code: receiver,
                sent_at: None,
                transfer_id,
            },
        ),
    )
}

/// A caller: plaintext, or certified for some regions.
fn caller() -> impl Strategy<Value = Caller> {
    prop_oneof![
        Just(Caller::Plaintext),
        proptest::collection::vec(
            proptest::sample::select(&["540100", "150100", "440300", "110100"][..]),
            0..3
        )
        .prop_map(|codes| {
            let regions: Vec<RegionCode> = codes
                .iter()
                .filter_map(|code| RegionCode::parse(code).ok())
                .collect();
            Caller::Certified(Arc::from(regions))
        }),
    ]
}

/// Random edits of an encoded message: (position, byte, what to do).
fn edits() -> impl Strategy<Value = Vec<(usize, u8, u8)>> {
    proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 0..6)
}

fn edited<M: Message + Default + Clone>(valid: &M, edits: &[(usize, u8, u8)]) -> M {
    let mut bytes = valid.encode_to_vec();
    for &(position, byte, action) in edits {
        let at = position % (bytes.len() + 1);
        match action {
            0 if at < bytes.len() => bytes[at] = byte,
            1 => bytes.insert(at, byte),
            _ if at < bytes.len() => {
                bytes.remove(at);
            }
            _ => {}
        }
    }
    // An edit that breaks the encoding never reaches a handler (tonic refuses it first).
    match M::decode(bytes.as_slice()) {
        Ok(message) => message,
        Err(_) => valid.clone(),
    }
}

fn from<T>(caller: &Caller, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.extensions_mut().insert(caller.clone());
    request
}

/// A valid message of each kind from the shipped pair's regions.
struct Valid {
    request: platform::RequestTransferOutRequest,
    form: platform::DeliverInsuranceRecordRequest,
    abort: platform::AbortTransferRequest,
    confirm: platform::ConfirmSettlementRequest,
    query: platform::QueryTransferOutRequest,
    remit: platform::RemitBalanceRequest,
}

fn valid() -> Valid {
    let id = "540100202603100000001";
    let envelope = |infno: &str, sender: &str, receiver: &str| platform::Envelope {
        infno: infno.to_owned(),
        msgid: format!("B{sender}00009202603100930050001"),
        sender_region_code: sender.to_owned(),
        receiver_region_code: receiver.to_owned(),
        sent_at: None,
        transfer_id: id.to_owned(),
    };
    Valid {
        request: platform::RequestTransferOutRequest {
            envelope: Some(envelope("9101", "540100", "150100")),
            application: Some(platform::TransferApplication {
                transfer_id: id.to_owned(),
                certno: "150102197001010001".to_owned(),
                psn_name: "刘娟涛".to_owned(),
                trafout_admdvs: "150100".to_owned(),
                trafin_admdvs: "540100".to_owned(),
                ..Default::default()
            }),
        },
        form: platform::DeliverInsuranceRecordRequest {
            envelope: Some(envelope("9102", "150100", "540100")),
            form: Some(platform::InsuranceInformationForm {
                transfer_id: id.to_owned(),
                certno: "150102197001010001".to_owned(),
                psn_name: "刘娟涛".to_owned(),
                trafout_admdvs: "150100".to_owned(),
                trafin_admdvs: "540100".to_owned(),
                personal_account_balance: "1234.50".to_owned(),
                contribution_months: 120,
                ..Default::default()
            }),
        },
        abort: platform::AbortTransferRequest {
            envelope: Some(envelope("9104", "150100", "540100")),
            transfer_id: id.to_owned(),
            reason: "deadline".to_owned(),
            ..Default::default()
        },
        confirm: platform::ConfirmSettlementRequest {
            envelope: Some(envelope("9103", "150100", "540100")),
            transfer_id: id.to_owned(),
            settled_at: None,
        },
        query: platform::QueryTransferOutRequest {
            envelope: Some(envelope("9105", "540100", "150100")),
            transfer_id: id.to_owned(),
        },
        remit: platform::RemitBalanceRequest {
            envelope: Some(envelope("9106", "150100", "540100")),
            transfer_id: id.to_owned(),
            amount: "1234.50".to_owned(),
            remitted_at: Some(prost_types::Timestamp {
                seconds: 1_772_400_000,
                nanos: 0,
            }),
        },
    }
}

/// Sends one case to every RPC of both services; each answer is a reply or a status, and
/// whatever happened, the ledger of each bureau still balances (nothing half-written).
async fn every_rpc(
    caller: &Caller,
    envelope: Option<platform::Envelope>,
    edits: &[(usize, u8, u8)],
) {
    let valid = valid();
    let out = PlatformApi::new(testing::services(BureauRole::TransferOut));
    let inn = PlatformApi::new(testing::services(BureauRole::TransferIn));
    let mut request = edited(&valid.request, edits);
    let mut form = edited(&valid.form, edits);
    let mut abort = edited(&valid.abort, edits);
    let mut confirm = edited(&valid.confirm, edits);
    let mut query = edited(&valid.query, edits);
    let mut remit = edited(&valid.remit, edits);
    if let Some(envelope) = envelope {
        remit.envelope = Some(envelope.clone());
        request.envelope = Some(envelope.clone());
        form.envelope = Some(envelope.clone());
        abort.envelope = Some(envelope.clone());
        confirm.envelope = Some(envelope.clone());
        query.envelope = Some(envelope);
    }
    let query_in = platform::QueryTransferInRequest {
        envelope: query.envelope.clone(),
        transfer_id: query.transfer_id.clone(),
    };
    let _ = out
        .request_transfer_out(from(caller, request.clone()))
        .await;
    let _ = out.query_transfer_out(from(caller, query)).await;
    let batch = platform::SubmitTransferOutRequestsRequest {
        requests: vec![request],
    };
    let _ = out.submit_transfer_out_requests(from(caller, batch)).await;
    let _ = inn
        .deliver_insurance_record(from(caller, form.clone()))
        .await;
    let _ = inn.abort_transfer(from(caller, abort.clone())).await;
    let _ = inn.confirm_settlement(from(caller, confirm)).await;
    let _ = inn.query_transfer_in(from(caller, query_in)).await;
    let _ = inn.remit_balance(from(caller, remit.clone())).await;
    let batch = platform::SubmitTransferInMessagesRequest {
        messages: vec![
            platform::TransferInMessage {
                message: Some(platform::transfer_in_message::Message::DeliverInsuranceRecord(form)),
            },
            platform::TransferInMessage {
                message: Some(platform::transfer_in_message::Message::AbortTransfer(abort)),
            },
            platform::TransferInMessage {
                message: Some(platform::transfer_in_message::Message::RemitBalance(remit)),
            },
            platform::TransferInMessage { message: None },
        ],
    };
    let _ = inn.submit_transfer_in_messages(from(caller, batch)).await;
    testing::assert_money_conserved(&out.services, 0).await;
    testing::assert_money_conserved(&inn.services, 0).await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn no_platform_rpc_panics_on_any_input(
        caller in caller(),
        envelope in envelope(),
        edits in edits(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(every_rpc(&caller, envelope, &edits));
    }
}

/// Future birth dates: a request whose applicant was born after today (the tests' clock, China
/// date) is answered infcode 1001 naming application.certno, and opens nothing.
#[tokio::test]
async fn a_certno_born_after_today_is_an_invalid_message_naming_the_field() {
    let services = testing::services(BureauRole::TransferOut);
    let api = PlatformApi::new(services.clone());
    let tomorrow = services.clock.today().succ_opt().expect("a date");
    let region = RegionCode::parse("150102").expect("code");
    let unborn = yibao_domain::id::ResidentId::from_parts(region, tomorrow, 1).expect("parts");
    let mut request = valid().request;
    if let Some(application) = request.application.as_mut() {
        application.certno = unborn.expose_unmasked().to_owned();
    }
    let answer = api
        .request_transfer_out(from(&Caller::Plaintext, request))
        .await
        .expect("answered")
        .into_inner();
    let reply = answer.reply.expect("a reply");
    assert_eq!(reply.infcode, crate::inbox::infcode::INVALID_MESSAGE);
    assert!(
        reply.err_msg.starts_with("application.certno: "),
        "{}",
        reply.err_msg
    );
    assert!(answer.decision.is_none());
    assert!(
        testing::find_document(&services, "540100202603100000001")
            .await
            .is_none(),
        "nothing opened"
    );
}

#[tokio::test]
async fn a_call_the_platform_guard_did_not_see_is_refused() {
    let api = PlatformApi::new(testing::services(BureauRole::TransferOut));
    let status = api
        .request_transfer_out(Request::new(valid().request))
        .await
        .expect_err("no caller recorded");
    assert_eq!(status.code(), tonic::Code::Internal);
}

#[tokio::test]
async fn a_certificate_for_another_region_is_denied_and_nothing_is_written() {
    let services = testing::services(BureauRole::TransferOut);
    let api = PlatformApi::new(services.clone());
    let stranger = Caller::Certified(Arc::from(vec![RegionCode::parse("440300").expect("code")]));
    let status = api
        .request_transfer_out(from(&stranger, valid().request))
        .await
        .expect_err("the certificate does not name 540100");
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    assert!(
        testing::find_document(&services, "540100202603100000001")
            .await
            .is_none(),
        "nothing written"
    );
}

#[tokio::test]
async fn a_query_is_answered_to_the_transfers_parties_only() {
    use yibao_domain::population::Flow;
    use yibao_domain::transfer::Initiator;
    let services = testing::services(BureauRole::TransferOut);
    let person = testing::seed(&services, Flow::CrossProvince, 0).await;
    // Started at transfer-out (Hohhot mints the id), bound for Lhasa.
    let mut application = testing::transfer_out_request(&person, 5);
    application.transfer_id = testing::transfer_id("150100", 5);
    let id = application.transfer_id.clone();
    testing::step(&services, move |step| {
        crate::transfer_out::review_and_open(step, &application, Initiator::TransferOut)
    })
    .await
    .expect("opened");
    let api = PlatformApi::new(services.clone());
    let ask = |sender: &str| {
        let mut query = valid().query;
        query.transfer_id = id.clone();
        if let Some(envelope) = query.envelope.as_mut() {
            envelope.transfer_id = id.clone();
            envelope.sender_region_code = sender.to_owned();
            envelope.msgid = format!("B{sender}00009202603100930050001");
        }
        api.query_transfer_out(from(&Caller::Plaintext, query))
    };
    let lhasa = ask("540100").await.expect("answered").into_inner();
    assert_eq!(lhasa.reply.map(|reply| reply.infcode), Some(0));
    assert_eq!(lhasa.transfer.map(|t| t.transfer_id), Some(id.clone()));
    // Shenzhen's bureau (a transfer-in bureau too) is no party of it: unknown, not disclosed.
    let shenzhen = ask("440300").await.expect("answered").into_inner();
    assert_eq!(shenzhen.reply.map(|reply| reply.infcode), Some(1005));
    assert!(shenzhen.transfer.is_none());
}

/// A transfer-in bureau that serves only the single-message RPCs (as a team's own may).
#[derive(Clone)]
struct SingleOnly(PlatformApi);

#[tonic::async_trait]
impl TransferInPlatformService for SingleOnly {
    async fn deliver_insurance_record(
        &self,
        request: Request<platform::DeliverInsuranceRecordRequest>,
    ) -> Result<tonic::Response<platform::DeliverInsuranceRecordResponse>, tonic::Status> {
        self.0.deliver_insurance_record(request).await
    }
    async fn confirm_settlement(
        &self,
        request: Request<platform::ConfirmSettlementRequest>,
    ) -> Result<tonic::Response<platform::ConfirmSettlementResponse>, tonic::Status> {
        self.0.confirm_settlement(request).await
    }
    async fn abort_transfer(
        &self,
        request: Request<platform::AbortTransferRequest>,
    ) -> Result<tonic::Response<platform::AbortTransferResponse>, tonic::Status> {
        self.0.abort_transfer(request).await
    }
    async fn query_transfer_in(
        &self,
        request: Request<platform::QueryTransferInRequest>,
    ) -> Result<tonic::Response<platform::QueryTransferInResponse>, tonic::Status> {
        self.0.query_transfer_in(request).await
    }
    async fn remit_balance(
        &self,
        request: Request<platform::RemitBalanceRequest>,
    ) -> Result<tonic::Response<platform::RemitBalanceResponse>, tonic::Status> {
        self.0.remit_balance(request).await
    }
    async fn submit_transfer_in_messages(
        &self,
        _request: Request<platform::SubmitTransferInMessagesRequest>,
    ) -> Result<tonic::Response<platform::SubmitTransferInMessagesResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("no batches here"))
    }
}

#[tokio::test]
async fn a_peer_without_batches_gets_every_message_through_its_single_rpcs() {
    use yibao_domain::population::Flow;
    use yibao_domain::transfer::Initiator;
    use yibao_proto::platform::v1::transfer_in_platform_service_server::TransferInPlatformServiceServer;
    let inn = testing::services(BureauRole::TransferIn);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let service = TransferInPlatformServiceServer::with_interceptor(
        SingleOnly(PlatformApi::new(inn.clone())),
        crate::api::platform_guard(crate::admission::Transport::Plaintext),
    );
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let out = testing::services_with_peer(BureauRole::TransferOut, &format!("http://{address}"));
    let mut forms = Vec::new();
    for n in 0..2 {
        let person = testing::seed(&out, Flow::CrossProvince, n).await;
        testing::seed_if_known(&inn, &person).await;
        let mut application = testing::transfer_out_request(&person, 10 + n as u32);
        application.transfer_id = testing::transfer_id("150100", 10 + n as u32);
        forms.push(application.transfer_id.clone());
        testing::step(&out, move |step| {
            crate::transfer_out::review_and_open(step, &application, Initiator::TransferOut)
        })
        .await
        .expect("opened, its form queued");
    }
    let queued = testing::outbox(&out).await;
    assert_eq!(queued.len(), 2, "two forms queued");
    let outcomes = crate::outbox::transport::send(
        &out,
        std::time::Duration::from_secs(5),
        crate::outbox::transport::Target::TransferIn,
        &queued,
        &crate::outbox::transport::Deliveries::default(),
    )
    .await;
    assert_eq!(
        out.peers.of(None).batches(),
        crate::peer::Batches::Unsupported,
        "remembered"
    );
    for outcome in &outcomes {
        assert!(
            matches!(outcome, crate::outbox::transport::Outcome::Answered(_)),
            "answered through the single rpc: {outcome:?}"
        );
    }
    for id in &forms {
        let credited = testing::find_document(&inn, id)
            .await
            .expect("the form arrived");
        assert_eq!(credited.state.name(), "COMPLETED");
    }
    assert_timed_one_by_one(&out, &forms);
    server.abort();
}

/// Each message went in an RPC of its own, timed on its own: the second left after the first's
/// answer, so their journal times are in order, at least the second's round trip apart.
fn assert_timed_one_by_one(out: &crate::services::Services, transfers: &[String]) {
    let sent: Vec<_> = transfers
        .iter()
        .flat_map(|id| out.exchanges.of(id))
        .collect();
    assert_eq!(sent.len(), 2, "{sent:?}");
    let trips: Vec<std::time::Duration> = sent
        .iter()
        .map(|entry| entry.round_trip.expect("a sent message's round trip"))
        .collect();
    assert!(trips.iter().all(|trip| !trip.is_zero()), "{trips:?}");
    let gap = (sent[1].at - sent[0].at)
        .to_std()
        .expect("the second ended later");
    assert!(gap >= trips[1], "{gap:?} < {trips:?}");
}

/// The fund leg's message at the platform edge: a remittance for a transfer the receiver does
/// not know is 1005, a malformed amount is 1001 naming the field, and neither moves money.
#[tokio::test]
async fn a_remittance_for_an_unknown_transfer_or_with_a_malformed_amount_is_refused() {
    let services = testing::services(BureauRole::TransferIn);
    let api = PlatformApi::new(services.clone());
    let unknown = api
        .remit_balance(from(&Caller::Plaintext, valid().remit))
        .await
        .expect("answered")
        .into_inner();
    assert_eq!(unknown.reply.expect("a reply").infcode, 1005);
    let mut malformed = valid().remit;
    // An id the sender minted, so the receiver reads the body before it looks for the transfer.
    let sender_minted = "150100202603100000001";
    malformed.amount = "1,234.50".to_owned();
    malformed.transfer_id = sender_minted.to_owned();
    if let Some(envelope) = malformed.envelope.as_mut() {
        envelope.msgid = "B15010000009202603100930050002".to_owned();
        envelope.transfer_id = sender_minted.to_owned();
    }
    let reply = api
        .remit_balance(from(&Caller::Plaintext, malformed))
        .await
        .expect("answered")
        .into_inner()
        .reply
        .expect("a reply");
    assert_eq!(reply.infcode, 1001);
    assert!(reply.err_msg.contains("amount"), "{}", reply.err_msg);
    testing::assert_money_conserved(&services, 0).await;
}
