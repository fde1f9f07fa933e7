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

/// Runs `work` once per msgid, in one transaction with the processed-message record.
async fn once<Req, Resp>(
    bureau: &Arc<Bureau>,
    request: Req,
    answer_with: fn(platform::Reply) -> Resp,
    work: impl FnOnce(&mut dyn Tx, &Bureau, &Req) -> Result<Resp, Error> + Send + 'static,
) -> Result<Response<Resp>, Status>
where
    Req: Message + Send + 'static + HasEnvelope,
    Resp: Message + Default + Send + 'static,
{
    let Some(envelope) = request.envelope().cloned() else {
        return Ok(Response::new(answer_with(reply(
            infcode::INVALID_MESSAGE,
            "envelope: required",
            "",
        ))));
    };
    if envelope.msgid.len() != 30 {
        return Ok(Response::new(answer_with(reply(
            infcode::INVALID_MESSAGE,
            "envelope.msgid: must be 30 characters",
            &envelope.msgid,
        ))));
    }
    let receiver = convert::region(
        "envelope.receiver_region_code",
        &envelope.receiver_region_code,
    );
    if !receiver.as_ref().is_ok_and(|code| bureau.hosts(*code)) {
        return Ok(Response::new(answer_with(reply(
            infcode::WRONG_RECEIVER,
            "envelope.receiver_region_code: not hosted by this bureau",
            &envelope.msgid,
        ))));
    }
    let hash = body_hash(&request);
    let worker = bureau.clone();
    let transfer_id = envelope.transfer_id.clone();
    let span = tracing::info_span!("platform", transfer_id = %transfer_id, infno = %envelope.infno);
    let answer = bureau
        .store
        .write(move |tx| -> Result<Resp, Error> {
            if let Some(seen) = tx.processed_message(&envelope.msgid)? {
                if seen.body_sha256 == hash {
                    return Resp::decode(seen.answer.as_slice())
                        .map_err(|_| Error::Internal("stored answer does not decode".to_owned()));
                }
                return Ok(answer_with(reply(
                    infcode::MODIFIED_REQUEST,
                    "envelope.msgid: already used with a different body (modified request)",
                    &envelope.msgid,
                )));
            }
            let answer = match work(tx, &worker, &request) {
                Ok(answer) => answer,
                Err(Error::InvalidArgument { field, rule }) => answer_with(reply(
                    infcode::INVALID_MESSAGE,
                    format!("{field}: {rule}"),
                    &envelope.msgid,
                )),
                Err(Error::NotFound(what)) => answer_with(reply(
                    infcode::UNKNOWN_TRANSFER,
                    format!("{what} not found"),
                    &envelope.msgid,
                )),
                Err(error) => return Err(error),
            };
            tx.record_processed(
                &envelope.msgid,
                &hash,
                &answer.encode_to_vec(),
                worker.clock.now(),
            )?;
            Ok(answer)
        })
        // Instrument the future, never enter a span across an await: the guard would follow
        // the task to other threads and corrupt the subscriber's span stack.
        .instrument(span)
        .await
        .map_err(Status::from)?;
    bureau.changed(&transfer_id);
    Ok(Response::new(answer))
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

#[tonic::async_trait]
impl TransferOutPlatformService for PlatformApi {
    async fn request_transfer_out(
        &self,
        request: Request<platform::RequestTransferOutRequest>,
    ) -> Result<Response<platform::RequestTransferOutResponse>, Status> {
        once(
            &self.bureau,
            request.into_inner(),
            |reply| platform::RequestTransferOutResponse {
                reply: Some(reply),
                decision: None,
            },
            |tx, bureau, request| {
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
                    out_region: convert::region(
                        "application.trafout_admdvs",
                        &wire.trafout_admdvs,
                    )?,
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
            },
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
            |reply| platform::DeliverInsuranceRecordResponse {
                reply: Some(reply),
                acknowledgement: None,
            },
            |tx, bureau, request| {
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
                    inn::FormOutcome::Refused(reason) => {
                        Outcome::Refused(platform::TransferRejection {
                            reason_code: convert::wire_reason(reason) as i32,
                            reason: reason.message().to_owned(),
                        })
                    }
                };
                Ok(platform::DeliverInsuranceRecordResponse {
                    reply: ok(&reference),
                    acknowledgement: Some(platform::CreditAcknowledgement {
                        outcome: Some(outcome),
                    }),
                })
            },
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
            |reply| platform::ConfirmSettlementResponse { reply: Some(reply) },
            |tx, bureau, request| {
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
            },
        )
        .await
    }

    async fn abort_transfer(
        &self,
        request: Request<platform::AbortTransferRequest>,
    ) -> Result<Response<platform::AbortTransferResponse>, Status> {
        once(
            &self.bureau,
            request.into_inner(),
            |reply| platform::AbortTransferResponse {
                reply: Some(reply),
                credited: false,
                credit: None,
            },
            |tx, bureau, request| {
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
            },
        )
        .await
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
