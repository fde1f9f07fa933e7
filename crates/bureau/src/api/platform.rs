//! The platform API handlers (bureau ⇄ bureau). Each does three things: check the envelope
//! (admission), convert the body into domain values and run one driver step through the
//! exactly-once inbox, convert the answer back. The single-message RPCs and the batch RPCs run
//! the very same steps.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use prost::Message;
use tonic::{Request, Response, Status};
use yibao_domain::transfer::Initiator;
use yibao_domain::transfer::in_side::InEvent;
use yibao_proto::platform::v1 as platform;
use yibao_proto::platform::v1::transfer_in_platform_service_server::TransferInPlatformService;
use yibao_proto::platform::v1::transfer_out_platform_service_server::TransferOutPlatformService;

use crate::convert;
use crate::error::Error;
use crate::inbox::{self, Admitted, Refusal, Refuse, Slot};
use crate::messages::{Decision, InsuranceForm, Kind, TransferApplication};
use crate::record::Step;
use crate::services::Services;
use crate::transfer_in;
use crate::transfer_out::{self, Opened};

/// The most messages one batch may hold.
pub const MAX_BATCH: usize = 1_000;

/// Serves both platform services; each bureau answers what its hosted regions receive.
#[derive(Debug, Clone)]
pub struct PlatformApi {
    services: Arc<Services>,
}

impl PlatformApi {
    /// The API over a bureau.
    pub fn new(services: Arc<Services>) -> Self {
        Self { services }
    }
}

/// A platform request: it carries an envelope, converts into a domain body, and has a step and
/// a refusal answer. The conversion runs in the handler, off the store's single writer thread;
/// only the step runs in the writer.
trait PlatformMessage: Message + Send + Sized + 'static {
    type Answer: Message + Default + Send + 'static;
    type Body: Send + 'static;
    /// The kind of message the rpc carries (its `infno`).
    const KIND: Kind;
    fn envelope(&self) -> Option<&platform::Envelope>;
    /// The transfer id the body names, which the envelope's must equal.
    fn body_transfer_id(&self) -> Option<&str>;
    fn refused(refusal: &Refusal, refmsgid: &str) -> Self::Answer;
    /// The body in domain values; `received_at` is when the message arrived.
    fn body(&self, received_at: DateTime<Utc>) -> Result<Self::Body, Error>;
    fn step(body: Self::Body, step: &mut Step<'_>, refmsgid: &str) -> Result<Self::Answer, Error>;
}

/// The store step of an admitted message: its converted body's step, or — for a body that did
/// not convert — the refusal, recorded with the msgid like any answer (so that a later message
/// under the same msgid with another body is a modified request, as for any message).
fn work<M: PlatformMessage>(
    body: Result<M::Body, Error>,
    refmsgid: String,
) -> impl FnOnce(&mut Step<'_>) -> Result<M::Answer, Error> {
    move |step| M::step(body?, step, &refmsgid)
}

fn reply(code: i32, err_msg: String, refmsgid: &str) -> Option<platform::Reply> {
    Some(platform::Reply {
        infcode: code,
        err_msg,
        inf_refmsgid: refmsgid.to_owned(),
    })
}

fn ok(refmsgid: &str) -> Option<platform::Reply> {
    reply(inbox::infcode::SUCCESS, String::new(), refmsgid)
}

fn refusal_reply(refusal: &Refusal, refmsgid: &str) -> Option<platform::Reply> {
    reply(refusal.infcode(), refusal.message(), refmsgid)
}

/// Checks a message's envelope; nothing here touches the store.
fn admit<M: PlatformMessage>(services: &Services, request: &M) -> Result<Admitted, M::Answer> {
    let refuse: Refuse<M::Answer> = M::refused;
    let Some(envelope) = request.envelope() else {
        return Err(refuse(
            &Refusal::Invalid("envelope: required".to_owned()),
            "",
        ));
    };
    if envelope.msgid.len() != 30 || !envelope.msgid.bytes().all(|b| b.is_ascii_alphanumeric()) {
        let rule = "envelope.msgid: must be 30 ASCII letters and digits".to_owned();
        return Err(refuse(&Refusal::Invalid(rule), ""));
    }
    let receiver = convert::region(
        "envelope.receiver_region_code",
        &envelope.receiver_region_code,
    );
    if !receiver.is_ok_and(|code| services.site.hosts(code)) {
        let rule = "envelope.receiver_region_code: not hosted by this bureau".to_owned();
        return Err(refuse(&Refusal::WrongReceiver(rule), &envelope.msgid));
    }
    if envelope.infno != M::KIND.infno() {
        let rule = format!(
            "envelope.infno: {:?} does not belong to this rpc, which takes {}",
            envelope.infno,
            M::KIND.infno()
        );
        return Err(refuse(
            &Refusal::WrongTransactionCode(rule),
            &envelope.msgid,
        ));
    }
    if request
        .body_transfer_id()
        .is_some_and(|body| body != envelope.transfer_id)
    {
        let rule = "envelope.transfer_id: must equal the transfer_id in the body".to_owned();
        return Err(refuse(&Refusal::Invalid(rule), &envelope.msgid));
    }
    Ok(Admitted {
        msgid: envelope.msgid.clone(),
        body_sha256: inbox::body_hash(request),
        transfer_id: envelope.transfer_id.clone(),
        infno: envelope.infno.clone(),
    })
}

/// Runs one message once per msgid.
async fn single<M: PlatformMessage>(
    services: &Services,
    request: M,
) -> Result<Response<M::Answer>, Status> {
    let admitted = match admit(services, &request) {
        Ok(admitted) => admitted,
        Err(answer) => return Ok(Response::new(answer)),
    };
    let reference = inbox::refmsgid(&admitted.msgid);
    let body = request.body(services.clock.now());
    let answer = inbox::once(services, admitted, M::refused, work::<M>(body, reference)).await?;
    Ok(Response::new(answer))
}

/// Admits one message of a batch, its answer wrapped as `A`.
fn slot<M: PlatformMessage, A: 'static>(
    services: &Services,
    request: M,
    wrap: fn(M::Answer) -> A,
) -> Slot<A> {
    match admit(services, &request) {
        Err(answer) => Slot::Ready(wrap(answer)),
        Ok(admitted) => {
            let body = request.body(services.clock.now());
            let work = work::<M>(body, inbox::refmsgid(&admitted.msgid));
            Slot::Pending(Box::new(move |step| {
                inbox::receive(step, &admitted, M::refused, work).map(wrap)
            }))
        }
    }
}

/// Checks a batch's size before anything else.
fn check_batch(len: usize, field: &'static str) -> Result<(), Status> {
    if (1..=MAX_BATCH).contains(&len) {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "{field}: must hold 1 to {MAX_BATCH} messages, holds {len}"
        )))
    }
}

/// The gRPC status a message would have failed with alone, as a batch answer.
fn message_status(status: Status) -> platform::MessageStatus {
    platform::MessageStatus {
        code: status.code() as i32,
        message: status.message().to_owned(),
    }
}

/// infno 9101 at the transfer-out bureau: review the application and open (or refuse).
impl PlatformMessage for platform::RequestTransferOutRequest {
    type Answer = platform::RequestTransferOutResponse;
    const KIND: Kind = Kind::RequestTransferOut;
    fn envelope(&self) -> Option<&platform::Envelope> {
        self.envelope.as_ref()
    }
    fn body_transfer_id(&self) -> Option<&str> {
        self.application.as_ref().map(|a| a.transfer_id.as_str())
    }
    fn refused(refusal: &Refusal, refmsgid: &str) -> Self::Answer {
        Self::Answer {
            reply: refusal_reply(refusal, refmsgid),
            decision: None,
        }
    }
    type Body = TransferApplication;
    fn body(&self, received_at: DateTime<Utc>) -> Result<Self::Body, Error> {
        convert::application(self.application.as_ref(), received_at)
    }
    fn step(
        application: Self::Body,
        step: &mut Step<'_>,
        refmsgid: &str,
    ) -> Result<Self::Answer, Error> {
        let decision =
            match transfer_out::review_and_open(step, &application, Initiator::TransferIn)? {
                Opened::Accepted(document) => Decision::Accepted {
                    accepted_at: document.created_at,
                    transfer_out_due_on: step
                        .ctx
                        .site
                        .deadlines(document.applied_on, None)
                        .map(|d| d.transfer_out_due.due_on),
                },
                Opened::Refused(refused) => Decision::Refused {
                    reason: refused.reason,
                    open_transfer: refused.open_transfer,
                },
            };
        Ok(Self::Answer {
            reply: ok(refmsgid),
            decision: Some(convert::wire_decision(&decision)),
        })
    }
}

/// infno 9102 at the transfer-in bureau: check the form and credit it exactly once.
impl PlatformMessage for platform::DeliverInsuranceRecordRequest {
    type Answer = platform::DeliverInsuranceRecordResponse;
    const KIND: Kind = Kind::DeliverForm;
    fn envelope(&self) -> Option<&platform::Envelope> {
        self.envelope.as_ref()
    }
    fn body_transfer_id(&self) -> Option<&str> {
        self.form.as_ref().map(|f| f.transfer_id.as_str())
    }
    fn refused(refusal: &Refusal, refmsgid: &str) -> Self::Answer {
        Self::Answer {
            reply: refusal_reply(refusal, refmsgid),
            acknowledgement: None,
        }
    }
    type Body = InsuranceForm;
    fn body(&self, _: DateTime<Utc>) -> Result<Self::Body, Error> {
        convert::form(self.form.as_ref())
    }
    fn step(form: Self::Body, step: &mut Step<'_>, refmsgid: &str) -> Result<Self::Answer, Error> {
        let outcome = transfer_in::receive_form(step, &form)?;
        Ok(Self::Answer {
            reply: ok(refmsgid),
            acknowledgement: Some(convert::wire_form_outcome(&outcome)),
        })
    }
}

/// infno 9103 at the transfer-in bureau: the transfer-out bureau settled (earlier versions).
impl PlatformMessage for platform::ConfirmSettlementRequest {
    type Answer = platform::ConfirmSettlementResponse;
    const KIND: Kind = Kind::ConfirmSettlement;
    fn envelope(&self) -> Option<&platform::Envelope> {
        self.envelope.as_ref()
    }
    fn body_transfer_id(&self) -> Option<&str> {
        Some(self.transfer_id.as_str())
    }
    fn refused(refusal: &Refusal, refmsgid: &str) -> Self::Answer {
        Self::Answer {
            reply: refusal_reply(refusal, refmsgid),
        }
    }
    type Body = String;
    fn body(&self, _: DateTime<Utc>) -> Result<Self::Body, Error> {
        convert::transfer_id("transfer_id", &self.transfer_id)
    }
    fn step(
        transfer_id: Self::Body,
        step: &mut Step<'_>,
        refmsgid: &str,
    ) -> Result<Self::Answer, Error> {
        let detail = "the transfer-out bureau settled the balance".to_owned();
        transfer_in::apply(step, &transfer_id, InEvent::SettlementConfirmed, detail, 0)?;
        Ok(Self::Answer {
            reply: ok(refmsgid),
        })
    }
}

/// infno 9104 at the transfer-in bureau: abort unless credited, and say which.
impl PlatformMessage for platform::AbortTransferRequest {
    type Answer = platform::AbortTransferResponse;
    const KIND: Kind = Kind::Abort;
    fn envelope(&self) -> Option<&platform::Envelope> {
        self.envelope.as_ref()
    }
    fn body_transfer_id(&self) -> Option<&str> {
        Some(self.transfer_id.as_str())
    }
    fn refused(refusal: &Refusal, refmsgid: &str) -> Self::Answer {
        Self::Answer {
            reply: refusal_reply(refusal, refmsgid),
            credited: false,
            credit: None,
        }
    }
    type Body = String;
    fn body(&self, _: DateTime<Utc>) -> Result<Self::Body, Error> {
        convert::transfer_id("transfer_id", &self.transfer_id)
    }
    fn step(
        transfer_id: Self::Body,
        step: &mut Step<'_>,
        refmsgid: &str,
    ) -> Result<Self::Answer, Error> {
        let (_, credit) = transfer_in::abort(step, &transfer_id)?;
        Ok(Self::Answer {
            reply: ok(refmsgid),
            credited: credit.is_some(),
            credit: credit.as_ref().map(convert::wire_credit),
        })
    }
}

/// The platform's view of a transfer, for the query RPCs.
async fn snapshot(
    services: &Services,
    transfer_id: String,
) -> Result<Option<platform::TransferSnapshot>, Status> {
    let document = services
        .store
        .read(move |tx| crate::record::load(tx, &transfer_id))
        .await
        .map_err(Status::from)?;
    Ok(document.as_ref().map(convert::wire_snapshot))
}

fn query_reference(envelope: Option<&platform::Envelope>) -> String {
    envelope
        .map(|envelope| inbox::refmsgid(&envelope.msgid))
        .unwrap_or_default()
}

#[tonic::async_trait]
impl TransferOutPlatformService for PlatformApi {
    async fn request_transfer_out(
        &self,
        request: Request<platform::RequestTransferOutRequest>,
    ) -> Result<Response<platform::RequestTransferOutResponse>, Status> {
        single(&self.services, request.into_inner()).await
    }

    async fn query_transfer_out(
        &self,
        request: Request<platform::QueryTransferOutRequest>,
    ) -> Result<Response<platform::QueryTransferOutResponse>, Status> {
        let request = request.into_inner();
        let transfer = snapshot(&self.services, request.transfer_id.clone()).await?;
        let reference = query_reference(request.envelope.as_ref());
        // An unknown transfer is an answer, infcode 1005: the asking bureau ends its transfer.
        let reply = match transfer {
            Some(_) => ok(&reference),
            None => refusal_reply(
                &Refusal::UnknownTransfer(format!("transfer {}", request.transfer_id)),
                &reference,
            ),
        };
        Ok(Response::new(platform::QueryTransferOutResponse {
            reply,
            transfer,
        }))
    }

    async fn submit_transfer_out_requests(
        &self,
        request: Request<platform::SubmitTransferOutRequestsRequest>,
    ) -> Result<Response<platform::SubmitTransferOutRequestsResponse>, Status> {
        use platform::transfer_out_answer::Answer;
        let requests = request.into_inner().requests;
        check_batch(requests.len(), "requests")?;
        let slots = requests
            .into_iter()
            .map(|request| {
                slot(&self.services, request, |response| {
                    platform::TransferOutAnswer {
                        answer: Some(Answer::Response(response)),
                    }
                })
            })
            .collect();
        let answers = inbox::run_batch(&self.services, slots, |status| {
            platform::TransferOutAnswer {
                answer: Some(Answer::Failed(message_status(status))),
            }
        })
        .await?;
        Ok(Response::new(platform::SubmitTransferOutRequestsResponse {
            answers,
        }))
    }
}

#[tonic::async_trait]
impl TransferInPlatformService for PlatformApi {
    async fn deliver_insurance_record(
        &self,
        request: Request<platform::DeliverInsuranceRecordRequest>,
    ) -> Result<Response<platform::DeliverInsuranceRecordResponse>, Status> {
        single(&self.services, request.into_inner()).await
    }

    async fn confirm_settlement(
        &self,
        request: Request<platform::ConfirmSettlementRequest>,
    ) -> Result<Response<platform::ConfirmSettlementResponse>, Status> {
        single(&self.services, request.into_inner()).await
    }

    async fn abort_transfer(
        &self,
        request: Request<platform::AbortTransferRequest>,
    ) -> Result<Response<platform::AbortTransferResponse>, Status> {
        single(&self.services, request.into_inner()).await
    }

    async fn query_transfer_in(
        &self,
        request: Request<platform::QueryTransferInRequest>,
    ) -> Result<Response<platform::QueryTransferInResponse>, Status> {
        let request = request.into_inner();
        let transfer = snapshot(&self.services, request.transfer_id.clone()).await?;
        Ok(Response::new(platform::QueryTransferInResponse {
            reply: ok(&query_reference(request.envelope.as_ref())),
            transfer,
        }))
    }

    async fn submit_transfer_in_messages(
        &self,
        request: Request<platform::SubmitTransferInMessagesRequest>,
    ) -> Result<Response<platform::SubmitTransferInMessagesResponse>, Status> {
        use platform::transfer_in_answer::Answer;
        use platform::transfer_in_message::Message as Kind;
        let messages = request.into_inner().messages;
        check_batch(messages.len(), "messages")?;
        let services = &self.services;
        let slots = messages
            .into_iter()
            .enumerate()
            .map(|(index, message)| match message.message {
                Some(Kind::DeliverInsuranceRecord(request)) => {
                    slot(services, request, |r| platform::TransferInAnswer {
                        answer: Some(Answer::DeliverInsuranceRecord(r)),
                    })
                }
                Some(Kind::ConfirmSettlement(request)) => {
                    slot(services, request, |r| platform::TransferInAnswer {
                        answer: Some(Answer::ConfirmSettlement(r)),
                    })
                }
                Some(Kind::AbortTransfer(request)) => {
                    slot(services, request, |r| platform::TransferInAnswer {
                        answer: Some(Answer::AbortTransfer(r)),
                    })
                }
                None => Slot::Ready(platform::TransferInAnswer {
                    answer: Some(Answer::Failed(platform::MessageStatus {
                        code: tonic::Code::InvalidArgument as i32,
                        message: format!("messages[{index}].message: required"),
                    })),
                }),
            })
            .collect();
        let answers = inbox::run_batch(services, slots, |status| platform::TransferInAnswer {
            answer: Some(Answer::Failed(message_status(status))),
        })
        .await?;
        Ok(Response::new(platform::SubmitTransferInMessagesResponse {
            answers,
        }))
    }
}
