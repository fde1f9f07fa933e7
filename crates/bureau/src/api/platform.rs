//! The platform API handlers (bureau ⇄ bureau): thin — check the envelope, run one step of the
//! driver inside one transaction together with the processed-message record, answer.
//!
//! Duplicate analysis: the receiver keeps the SHA-256 of each request body with its msgid; the
//! same msgid with the same body gets the first answer again, with a different body infcode 1004.

use std::sync::Arc;

use prost::Message;
use tonic::{Request, Response, Status};
use tracing::Instrument;
use yibao_domain::transfer::in_side::InEvent;
use yibao_proto::platform::v1 as platform;
use yibao_proto::platform::v1::transfer_in_platform_service_server::TransferInPlatformService;
use yibao_proto::platform::v1::transfer_out_platform_service_server::TransferOutPlatformService;
use yibao_store::Tx;

use crate::convert;
use crate::document::Initiator;
use crate::error::Error;
use crate::messages::{self, body_hash, infcode, reply};
use crate::state::Bureau;
use crate::{inn, out, record};

/// Serves both platform services; each bureau answers what its hosted regions receive.
#[derive(Debug, Clone)]
pub struct PlatformApi {
    bureau: Arc<Bureau>,
}

impl PlatformApi {
    /// The API over a bureau.
    pub fn new(bureau: Arc<Bureau>) -> Self {
        Self { bureau }
    }
}

/// The most messages one batch may hold.
pub const MAX_BATCH: usize = 1_000;

/// What a message gets before it reaches the store: an answer at once (a broken envelope, a
/// wrong receiver), or admission with what the store step needs.
enum Admission<Resp> {
    Answered(Resp),
    Admitted {
        msgid: String,
        hash: Vec<u8>,
        transfer_id: String,
        infno: String,
    },
}

/// Checks a message's envelope; nothing here touches the store.
fn admit<Req, Resp>(
    bureau: &Bureau,
    request: &Req,
    answer_with: fn(platform::Reply) -> Resp,
) -> Admission<Resp>
where
    Req: Message + HasEnvelope,
{
    let Some(envelope) = request.envelope() else {
        return Admission::Answered(answer_with(reply(
            infcode::INVALID_MESSAGE,
            "envelope: required",
            "",
        )));
    };
    if envelope.msgid.len() != 30 || !envelope.msgid.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Admission::Answered(answer_with(reply(
            infcode::INVALID_MESSAGE,
            "envelope.msgid: must be 30 ASCII letters and digits",
            "",
        )));
    }
    let receiver = convert::region(
        "envelope.receiver_region_code",
        &envelope.receiver_region_code,
    );
    if !receiver.as_ref().is_ok_and(|code| bureau.hosts(*code)) {
        return Admission::Answered(answer_with(reply(
            infcode::WRONG_RECEIVER,
            "envelope.receiver_region_code: not hosted by this bureau",
            &envelope.msgid,
        )));
    }
    Admission::Admitted {
        msgid: envelope.msgid.clone(),
        hash: body_hash(request),
        transfer_id: envelope.transfer_id.clone(),
        infno: envelope.infno.clone(),
    }
}

/// One step of a message, inside the caller's transaction: a msgid seen before gets its first
/// answer (or infcode 1004 for a different body); otherwise `work` runs and its answer is
/// recorded with the msgid, in the same transaction.
fn process<Req, Resp>(
    tx: &mut dyn Tx,
    bureau: &Bureau,
    msgid: &str,
    hash: &[u8],
    request: &Req,
    answer_with: fn(platform::Reply) -> Resp,
    work: fn(&mut dyn Tx, &Bureau, &Req) -> Result<Resp, Error>,
) -> Result<Resp, Error>
where
    Resp: Message + Default,
{
    if let Some(seen) = tx.processed_message(msgid)? {
        if seen.body_sha256 == hash {
            return Resp::decode(seen.answer.as_slice())
                .map_err(|_| Error::Internal("stored answer does not decode".to_owned()));
        }
        return Ok(answer_with(reply(
            infcode::MODIFIED_REQUEST,
            "envelope.msgid: already used with a different body (modified request)",
            msgid,
        )));
    }
    let answer = match work(tx, bureau, request) {
        Ok(answer) => answer,
        Err(Error::InvalidArgument { field, rule }) => answer_with(reply(
            infcode::INVALID_MESSAGE,
            format!("{field}: {rule}"),
            msgid,
        )),
        Err(Error::NotFound(what)) => answer_with(reply(
            infcode::UNKNOWN_TRANSFER,
            format!("{what} not found"),
            msgid,
        )),
        Err(error) => return Err(error),
    };
    tx.record_processed(msgid, hash, &answer.encode_to_vec(), bureau.clock.now())?;
    Ok(answer)
}

/// Runs one message once per msgid, in one transaction with the processed-message record.
async fn once<Req, Resp>(
    bureau: &Arc<Bureau>,
    request: Req,
    answer_with: fn(platform::Reply) -> Resp,
    work: fn(&mut dyn Tx, &Bureau, &Req) -> Result<Resp, Error>,
) -> Result<Response<Resp>, Status>
where
    Req: Message + Send + 'static + HasEnvelope,
    Resp: Message + Default + Send + 'static,
{
    let (msgid, hash, transfer_id, infno) = match admit(bureau, &request, answer_with) {
        Admission::Answered(answer) => return Ok(Response::new(answer)),
        Admission::Admitted {
            msgid,
            hash,
            transfer_id,
            infno,
        } => (msgid, hash, transfer_id, infno),
    };
    let worker = bureau.clone();
    let span = tracing::info_span!("platform", transfer_id = %transfer_id, infno = %infno);
    let answer = record::write(bureau, move |tx| {
        process(tx, &worker, &msgid, &hash, &request, answer_with, work)
    })
    // Instrument the future, never enter a span across an await: the guard would follow
    // the task to other threads and corrupt the subscriber's span stack.
    .instrument(span)
    .await
    .map_err(Status::from)?;
    bureau.changed(&transfer_id);
    Ok(Response::new(answer))
}

/// A message of a batch, its answer wrapped as `A` (the batch's answer type).
type Step<A> = Box<dyn FnOnce(&mut dyn Tx, &Bureau) -> Result<A, Error> + Send>;

/// One message of a batch: answered at admission, or a step for the store.
enum Slot<A> {
    Ready(A),
    Pending { step: Step<A>, transfer_id: String },
}

/// Admits one message of a batch.
fn slot<Req, Resp, A>(
    bureau: &Bureau,
    request: Req,
    answer_with: fn(platform::Reply) -> Resp,
    work: fn(&mut dyn Tx, &Bureau, &Req) -> Result<Resp, Error>,
    wrap: fn(Resp) -> A,
) -> Slot<A>
where
    A: 'static,
    Req: Message + Send + 'static + HasEnvelope,
    Resp: Message + Default + Send + 'static,
{
    match admit(bureau, &request, answer_with) {
        Admission::Answered(answer) => Slot::Ready(wrap(answer)),
        Admission::Admitted {
            msgid,
            hash,
            transfer_id,
            ..
        } => Slot::Pending {
            step: Box::new(move |tx, bureau| {
                process(tx, bureau, &msgid, &hash, &request, answer_with, work).map(wrap)
            }),
            transfer_id,
        },
    }
}

/// The gRPC status a message would have failed with alone, as a batch answer.
fn message_status(error: Error) -> platform::MessageStatus {
    let status = Status::from(error);
    platform::MessageStatus {
        code: status.code() as i32,
        message: status.message().to_owned(),
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

/// Runs a batch's admitted messages, each as its own store job (so a message that fails is
/// undone alone and answered with its status) queued together so that they share one group
/// commit; answers in the batch's order.
async fn run_batch<A>(
    bureau: &Arc<Bureau>,
    slots: Vec<Slot<A>>,
    failed: fn(platform::MessageStatus) -> A,
) -> Result<Vec<A>, Status>
where
    A: Send + 'static,
{
    let mut answers: Vec<Option<A>> = Vec::with_capacity(slots.len());
    let mut places = Vec::new();
    let mut jobs = Vec::new();
    let mut touched = Vec::new();
    for (index, slot) in slots.into_iter().enumerate() {
        match slot {
            Slot::Ready(answer) => answers.push(Some(answer)),
            Slot::Pending { step, transfer_id } => {
                answers.push(None);
                places.push(index);
                let worker = bureau.clone();
                jobs.push(move |tx: &mut dyn Tx| step(tx, &worker));
                touched.push(transfer_id);
            }
        }
    }
    if !jobs.is_empty() {
        let span = tracing::info_span!("platform_batch", messages = jobs.len());
        let results = record::write_each(bureau, jobs).instrument(span).await;
        for (index, result) in places.into_iter().zip(results) {
            if let Some(place) = answers.get_mut(index) {
                *place = Some(result.unwrap_or_else(|error| failed(message_status(error))));
            }
        }
        for transfer_id in &touched {
            bureau.changed(transfer_id);
        }
    }
    answers
        .into_iter()
        .map(|answer| answer.ok_or_else(|| Status::internal("a batch message went unanswered")))
        .collect()
}

/// Platform requests carry an envelope.
trait HasEnvelope {
    fn envelope(&self) -> Option<&platform::Envelope>;
}

macro_rules! has_envelope {
    ($($t:ty),*) => {$(impl HasEnvelope for $t { fn envelope(&self) -> Option<&platform::Envelope> { self.envelope.as_ref() } })*};
}
has_envelope!(
    platform::RequestTransferOutRequest,
    platform::DeliverInsuranceRecordRequest,
    platform::ConfirmSettlementRequest,
    platform::AbortTransferRequest
);

fn ok(refmsgid: &str) -> Option<platform::Reply> {
    Some(reply(infcode::SUCCESS, "", refmsgid))
}

fn refmsgid(envelope: Option<&platform::Envelope>) -> String {
    envelope
        .map(|e| format!("R{}", &e.msgid[1..]))
        .unwrap_or_default()
}

fn request_transfer_out_failed(reply: platform::Reply) -> platform::RequestTransferOutResponse {
    platform::RequestTransferOutResponse {
        reply: Some(reply),
        decision: None,
    }
}

/// infno 9101 at the transfer-out bureau: review the application and open (or refuse).
fn request_transfer_out_step(
    tx: &mut dyn Tx,
    bureau: &Bureau,
    request: &platform::RequestTransferOutRequest,
) -> Result<platform::RequestTransferOutResponse, Error> {
    use platform::request_transfer_out_response::Decision;
    let reference = refmsgid(request.envelope.as_ref());
    let wire = request
        .application
        .as_ref()
        .ok_or_else(|| Error::invalid("application", "required"))?;
    let application = out::Application {
        transfer_id: yibao_domain::transfer::TransferId::parse(&wire.transfer_id)
            .map_err(|error| Error::invalid("application.transfer_id", error))?
            .to_string(),
        certno: convert::certno("application.certno", &wire.certno)?,
        psn_name: wire.psn_name.clone(),
        out_region: convert::region("application.trafout_admdvs", &wire.trafout_admdvs)?,
        in_region: convert::region("application.trafin_admdvs", &wire.trafin_admdvs)?,
        in_scheme: convert::domain_scheme(wire.insutype_at_transfer_in),
        bank_account: wire
            .bank_account
            .as_ref()
            .map(crate::api::bureau::bank_account),
        retiree_payout_requested: wire.retiree_payout_requested,
        initiator: Initiator::TransferIn,
        applied_at: messages::from_timestamp(wire.applied_at.as_ref()),
    };
    let decision = match out::review_and_open(tx, bureau, &application)? {
        out::Decision::Accepted(document) => {
            let due = record::deadlines(bureau, document.applied_on, None)
                .map(|d| d.transfer_out_due.due_on.to_string())
                .unwrap_or_default();
            Decision::Accepted(platform::TransferAcceptance {
                accepted_at: Some(messages::timestamp(document.created_at)),
                transfer_out_due_on: due,
            })
        }
        out::Decision::Refused(reason, _) => {
            out::remember_refusal(tx, bureau, &application, reason)?;
            Decision::Rejected(platform::TransferRejection {
                reason_code: convert::wire_reason(reason) as i32,
                reason: reason.message().to_owned(),
            })
        }
    };
    Ok(platform::RequestTransferOutResponse {
        reply: ok(&reference),
        decision: Some(decision),
    })
}

fn deliver_failed(reply: platform::Reply) -> platform::DeliverInsuranceRecordResponse {
    platform::DeliverInsuranceRecordResponse {
        reply: Some(reply),
        acknowledgement: None,
    }
}

/// infno 9102 at the transfer-in bureau: check the form and credit it exactly once.
fn deliver_step(
    tx: &mut dyn Tx,
    bureau: &Bureau,
    request: &platform::DeliverInsuranceRecordRequest,
) -> Result<platform::DeliverInsuranceRecordResponse, Error> {
    use platform::credit_acknowledgement::Outcome;
    let reference = refmsgid(request.envelope.as_ref());
    let form = request
        .form
        .as_ref()
        .ok_or_else(|| Error::invalid("form", "required"))?;
    convert::certno("form.certno", &form.certno)?;
    yibao_domain::transfer::TransferId::parse(&form.transfer_id)
        .map_err(|error| Error::invalid("form.transfer_id", error))?;
    let outcome = match inn::receive_form(tx, bureau, form)? {
        inn::FormOutcome::Credited {
            months,
            amount_cents,
            at,
        } => Outcome::Credited(platform::Credited {
            credited_months: months,
            credited_amount: convert::money_text(amount_cents),
            credited_at: Some(messages::timestamp(at)),
        }),
        inn::FormOutcome::Refused(reason) => Outcome::Refused(platform::TransferRejection {
            reason_code: convert::wire_reason(reason) as i32,
            reason: reason.message().to_owned(),
        }),
    };
    Ok(platform::DeliverInsuranceRecordResponse {
        reply: ok(&reference),
        acknowledgement: Some(platform::CreditAcknowledgement {
            outcome: Some(outcome),
        }),
    })
}

fn confirm_failed(reply: platform::Reply) -> platform::ConfirmSettlementResponse {
    platform::ConfirmSettlementResponse { reply: Some(reply) }
}

/// infno 9103 at the transfer-in bureau: the transfer-out bureau settled.
fn confirm_step(
    tx: &mut dyn Tx,
    bureau: &Bureau,
    request: &platform::ConfirmSettlementRequest,
) -> Result<platform::ConfirmSettlementResponse, Error> {
    let reference = refmsgid(request.envelope.as_ref());
    inn::apply(
        tx,
        bureau,
        &request.transfer_id,
        InEvent::SettlementConfirmed,
        "the transfer-out bureau settled the balance".to_owned(),
        0,
    )?;
    Ok(platform::ConfirmSettlementResponse {
        reply: ok(&reference),
    })
}

fn abort_failed(reply: platform::Reply) -> platform::AbortTransferResponse {
    platform::AbortTransferResponse {
        reply: Some(reply),
        credited: false,
        credit: None,
    }
}

/// infno 9104 at the transfer-in bureau: abort unless credited, and say which.
fn abort_step(
    tx: &mut dyn Tx,
    bureau: &Bureau,
    request: &platform::AbortTransferRequest,
) -> Result<platform::AbortTransferResponse, Error> {
    let reference = refmsgid(request.envelope.as_ref());
    let document = inn::abort(tx, bureau, &request.transfer_id, None)?;
    let credited = matches!(
        inn::outcome(&document, bureau.clock.now()),
        inn::FormOutcome::Credited { .. }
    );
    let credit = credited.then(|| platform::Credited {
        credited_months: document.contribution_months,
        credited_amount: convert::money_text(document.amount_cents),
        credited_at: Some(messages::timestamp(document.updated_at)),
    });
    Ok(platform::AbortTransferResponse {
        reply: ok(&reference),
        credited,
        credit,
    })
}

#[tonic::async_trait]
impl TransferOutPlatformService for PlatformApi {
    async fn request_transfer_out(
        &self,
        request: Request<platform::RequestTransferOutRequest>,
    ) -> Result<Response<platform::RequestTransferOutResponse>, Status> {
        once(
            &self.bureau,
            request.into_inner(),
            request_transfer_out_failed,
            request_transfer_out_step,
        )
        .await
    }

    async fn query_transfer_out(
        &self,
        request: Request<platform::QueryTransferOutRequest>,
    ) -> Result<Response<platform::QueryTransferOutResponse>, Status> {
        let request = request.into_inner();
        let snapshot = snapshot(&self.bureau, request.transfer_id.clone()).await?;
        Ok(Response::new(platform::QueryTransferOutResponse {
            reply: ok(&refmsgid(request.envelope.as_ref())),
            transfer: snapshot,
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
                slot(
                    &self.bureau,
                    request,
                    request_transfer_out_failed,
                    request_transfer_out_step,
                    |response| platform::TransferOutAnswer {
                        answer: Some(Answer::Response(response)),
                    },
                )
            })
            .collect();
        let answers = run_batch(&self.bureau, slots, |status| platform::TransferOutAnswer {
            answer: Some(Answer::Failed(status)),
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
        once(
            &self.bureau,
            request.into_inner(),
            deliver_failed,
            deliver_step,
        )
        .await
    }

    async fn confirm_settlement(
        &self,
        request: Request<platform::ConfirmSettlementRequest>,
    ) -> Result<Response<platform::ConfirmSettlementResponse>, Status> {
        once(
            &self.bureau,
            request.into_inner(),
            confirm_failed,
            confirm_step,
        )
        .await
    }

    async fn abort_transfer(
        &self,
        request: Request<platform::AbortTransferRequest>,
    ) -> Result<Response<platform::AbortTransferResponse>, Status> {
        once(&self.bureau, request.into_inner(), abort_failed, abort_step).await
    }

    async fn query_transfer_in(
        &self,
        request: Request<platform::QueryTransferInRequest>,
    ) -> Result<Response<platform::QueryTransferInResponse>, Status> {
        let request = request.into_inner();
        let snapshot = snapshot(&self.bureau, request.transfer_id.clone()).await?;
        Ok(Response::new(platform::QueryTransferInResponse {
            reply: ok(&refmsgid(request.envelope.as_ref())),
            transfer: snapshot,
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
        let bureau = &self.bureau;
        let slots = messages
            .into_iter()
            .enumerate()
            .map(|(index, message)| match message.message {
                Some(Kind::DeliverInsuranceRecord(request)) => {
                    slot(bureau, request, deliver_failed, deliver_step, |response| {
                        platform::TransferInAnswer {
                            answer: Some(Answer::DeliverInsuranceRecord(response)),
                        }
                    })
                }
                Some(Kind::ConfirmSettlement(request)) => {
                    slot(bureau, request, confirm_failed, confirm_step, |response| {
                        platform::TransferInAnswer {
                            answer: Some(Answer::ConfirmSettlement(response)),
                        }
                    })
                }
                Some(Kind::AbortTransfer(request)) => {
                    slot(bureau, request, abort_failed, abort_step, |response| {
                        platform::TransferInAnswer {
                            answer: Some(Answer::AbortTransfer(response)),
                        }
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
        let answers = run_batch(bureau, slots, |status| platform::TransferInAnswer {
            answer: Some(Answer::Failed(status)),
        })
        .await?;
        Ok(Response::new(platform::SubmitTransferInMessagesResponse {
            answers,
        }))
    }
}

async fn snapshot(
    bureau: &Arc<Bureau>,
    transfer_id: String,
) -> Result<Option<platform::TransferSnapshot>, Status> {
    let document = bureau
        .store
        .read(move |tx| record::load(tx, &transfer_id))
        .await
        .map_err(Status::from)?;
    Ok(document.map(|document| {
        let refusal = document.state.refusal();
        platform::TransferSnapshot {
            transfer_id: document.transfer_id.clone(),
            state: document.state.wire() as i32,
            side: match document.side {
                crate::document::Side::Out => yibao_proto::common::v1::Side::TransferOut,
                crate::document::Side::In => yibao_proto::common::v1::Side::TransferIn,
            } as i32,
            updated_at: Some(messages::timestamp(document.updated_at)),
            refusal_reason: refusal
                .map(|r| convert::wire_reason(r) as i32)
                .unwrap_or_default(),
            refusal_message: refusal.map(|r| r.message().to_owned()).unwrap_or_default(),
        }
    }))
}
