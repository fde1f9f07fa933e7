//! The outbox dispatcher: sends queued messages to the peer (or the bank gateway), applies each
//! answer in the same transaction that removes the message, and retries what the peer did not
//! answer with exponential backoff and jitter.
//!
//! **Invariant:** a message leaves the outbox only in the transaction that applies its answer, so
//! a crash at any point resends it with the same msgid, and the peer answers with its first
//! answer. Retries resume after a restart because the schedule lives in the store.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;
use rand::SeedableRng;
use tokio::sync::Semaphore;
use yibao_domain::transfer::in_side::InEvent;
use yibao_domain::transfer::out_side::{InCredit, OutEvent};
use yibao_proto::platform::v1 as platform;
use yibao_proto::platform::v1::transfer_in_platform_service_client::TransferInPlatformServiceClient;
use yibao_proto::platform::v1::transfer_out_platform_service_client::TransferOutPlatformServiceClient;
use yibao_runtime::retry::{Backoff, is_retryable};
use yibao_store::OutboxMessage;

use crate::error::Error;
use crate::messages::Kind;
use crate::state::Bureau;
use crate::{inn, out, record};

/// How the dispatcher behaves; from the service configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Messages fetched per round.
    pub batch_limit: u32,
    /// The deadline of one delivery attempt.
    pub attempt_timeout: Duration,
    /// Backoff between attempts.
    pub backoff: Backoff,
    /// How long to sleep when nothing is due and nothing wakes us.
    pub idle_poll: Duration,
    /// Deliveries in flight at once.
    pub concurrency: usize,
}

/// A message's place among the deliveries in flight, given back when dropped.
struct InFlight {
    set: Arc<Mutex<HashSet<i64>>>,
    id: i64,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut set) = self.set.lock() {
            set.remove(&self.id);
        }
    }
}

/// How far a parked message's next attempt is pushed: beyond any statutory deadline, so it
/// stays visible in the outbox without being sent again.
const PARKED_FOR: Duration = Duration::from_secs(400 * 86_400);

/// How often overdue transfers are looked for.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Applies an answer inside the transaction that acknowledges the message; `Some` is a problem
/// that keeps the message queued.
type ApplyAnswer =
    Box<dyn FnOnce(&mut dyn yibao_store::Tx, &Bureau) -> Result<Option<String>, Error> + Send>;

/// What one delivery attempt produced.
enum Answer {
    /// The message was answered: apply and acknowledge.
    Applied,
    /// The answer was a refusal of the message itself (a non-zero infcode, an answer without
    /// its content): sending the same bytes again cannot help, so the message is parked.
    Refused(String),
    /// The answer could not be applied here (a storage failure): try again.
    NotApplied(String),
}

/// Runs until `shutdown` resolves.
pub async fn run(
    bureau: Arc<Bureau>,
    settings: Settings,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let in_flight: Arc<Mutex<HashSet<i64>>> = Arc::default();
    let permits = Arc::new(Semaphore::new(settings.concurrency.max(1)));
    let mut clock_ticks = bureau.clock.subscribe();
    let mut last_sweep: Option<tokio::time::Instant> = None;
    loop {
        if *shutdown.borrow() {
            break;
        }
        let now = bureau.clock.now();
        let limit = settings.batch_limit;
        let due = bureau
            .store
            .read(move |tx| tx.due_messages(now, limit))
            .await;
        let due: Vec<OutboxMessage> = match due {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(%error, "outbox read failed; retrying");
                Vec::new()
            }
        };
        let mut started = 0;
        for message in due {
            let fresh = in_flight
                .lock()
                .map(|mut set| set.insert(message.id))
                .unwrap_or(false);
            if !fresh {
                continue;
            }
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            started += 1;
            let bureau = bureau.clone();
            let settings = settings.clone();
            let in_flight = in_flight.clone();
            tokio::spawn(async move {
                // Released on every exit, a panic included: a message must never stay marked
                // in flight, or it would never be sent again.
                let _slot = InFlight {
                    set: in_flight,
                    id: message.id,
                    _permit: permit,
                };
                deliver(&bureau, &settings, message).await;
            });
        }
        // Deadlines move in days: a sweep a second (and at once when the test clock moves) is
        // plenty, and keeps the sweep's write off the hot path.
        let clock_moved = clock_ticks.has_changed().unwrap_or(false);
        if clock_moved || last_sweep.is_none_or(|at| at.elapsed() >= SWEEP_INTERVAL) {
            clock_ticks.borrow_and_update();
            sweep_deadlines(&bureau).await;
            last_sweep = Some(tokio::time::Instant::now());
        }
        if started > 0 {
            continue;
        }
        let next_due = bureau
            .store
            .read(|tx| tx.next_due_at())
            .await
            .ok()
            .flatten();
        let wait = next_due
            .map(|at| (at - bureau.clock.now()).to_std().unwrap_or(Duration::ZERO))
            .unwrap_or(settings.idle_poll)
            .min(settings.idle_poll)
            .max(Duration::from_millis(1));
        tokio::select! {
            _ = bureau.dispatch_now.notified() => {}
            _ = clock_ticks.changed() => {
                // Leave the change marked so the next round sweeps at once.
                last_sweep = None;
            }
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => {}
        }
    }
}

async fn deliver(bureau: &Arc<Bureau>, settings: &Settings, message: OutboxMessage) {
    let attempt = message.attempts + 1;
    let answer = attempt_delivery(bureau, settings, &message, attempt).await;
    let (outcome, retryable) = match answer {
        Ok(Answer::Applied) => return,
        Ok(Answer::Refused(why)) => (why, false),
        Ok(Answer::NotApplied(why)) => (why, true),
        Err(status) => {
            if status.code() == tonic::Code::Unavailable {
                bureau.peer.reset();
            }
            let text = format!("{:?}: {}", status.code(), status.message());
            (text, is_retryable(&status))
        }
    };
    // Only a message that may succeed later is retried; one the peer refused (or answered
    // with a status that retrying cannot change) is parked for an operator, visible in the
    // transfer's history, and the statutory deadline takes its course.
    let (delay, happening) = if retryable {
        let mut rng = rand::rngs::StdRng::from_os_rng();
        (settings.backoff.delay(attempt, &mut rng), "DELIVERY_RETRY")
    } else {
        (PARKED_FOR, "DELIVERY_PARKED")
    };
    let next = bureau.clock.now() + chrono::Duration::from_std(delay).unwrap_or_default();
    let id = message.id;
    let transfer_id = message.transfer_id.clone();
    let kind = message.kind.clone();
    let bureau_for_tx = bureau.clone();
    if !retryable {
        tracing::warn!(transfer_id = %transfer_id, %kind, %outcome, "message parked");
    }
    let result = bureau
        .store
        .write(move |tx| -> Result<(), Error> {
            tx.message_retry_later(id, attempt, next, &outcome)?;
            let state = record::load(tx, &transfer_id)?
                .map(|d| d.state.name())
                .unwrap_or("");
            let detail = if retryable {
                format!(
                    "{kind} attempt {attempt} failed ({outcome}); next attempt in {} ms",
                    delay.as_millis()
                )
            } else {
                format!("{kind} attempt {attempt} refused ({outcome}); parked, not retried")
            };
            record::note(
                tx,
                &bureau_for_tx,
                &transfer_id,
                state,
                happening,
                detail,
                attempt,
            )
        })
        .await;
    if let Err(error) = result {
        tracing::warn!(%error, "could not reschedule an outbox message");
    }
}

async fn attempt_delivery(
    bureau: &Arc<Bureau>,
    settings: &Settings,
    message: &OutboxMessage,
    attempt: u32,
) -> Result<Answer, tonic::Status> {
    let Some(kind) = Kind::parse(&message.kind) else {
        return Ok(Answer::Refused(format!(
            "unknown message kind {}",
            message.kind
        )));
    };
    let decode_error = |_| tonic::Status::internal("stored message does not decode");
    let timeout = settings.attempt_timeout;
    let answer: ApplyAnswer = match kind {
        Kind::RequestTransferOut => {
            let request = platform::RequestTransferOutRequest::decode(message.payload.as_slice())
                .map_err(decode_error)?;
            let mut client = TransferOutPlatformServiceClient::new(bureau.peer.channel()?);
            let response = call(timeout, request, |call| async move {
                client.request_transfer_out(call).await
            })
            .await?;
            let transfer_id = message.transfer_id.clone();
            if let Some(failure) = failed_reply(response.reply.as_ref()) {
                return Ok(Answer::Refused(failure));
            }
            Box::new(move |tx, bureau| {
                use platform::request_transfer_out_response::Decision;
                let (event, detail) = match response.decision {
                    Some(Decision::Accepted(_)) => (
                        InEvent::RequestAccepted,
                        "the transfer-out bureau accepted".to_owned(),
                    ),
                    Some(Decision::Rejected(rejection)) => {
                        let reason = crate::convert::domain_reason(rejection.reason_code);
                        (
                            InEvent::RequestRefused(reason),
                            format!("the transfer-out bureau refused: {}", reason.message()),
                        )
                    }
                    None => return Ok(Some("the answer carried no decision".to_owned())),
                };
                inn::apply(tx, bureau, &transfer_id, event, detail, attempt)?;
                Ok(None)
            })
        }
        Kind::DeliverForm => {
            let request =
                platform::DeliverInsuranceRecordRequest::decode(message.payload.as_slice())
                    .map_err(decode_error)?;
            let mut client = TransferInPlatformServiceClient::new(bureau.peer.channel()?);
            let response = call(timeout, request, |call| async move {
                client.deliver_insurance_record(call).await
            })
            .await?;
            if let Some(failure) = failed_reply(response.reply.as_ref()) {
                return Ok(Answer::Refused(failure));
            }
            let transfer_id = message.transfer_id.clone();
            Box::new(move |tx, bureau| {
                let outcome = response.acknowledgement.and_then(|ack| ack.outcome);
                let Some(event) = out::form_answer_event(outcome.as_ref()) else {
                    return Ok(Some("the answer carried no outcome".to_owned()));
                };
                let detail = match event {
                    OutEvent::FormCredited => "the transfer-in bureau credited the form".to_owned(),
                    OutEvent::FormRefused(reason) => format!(
                        "the transfer-in bureau refused the form: {}",
                        reason.message()
                    ),
                    _ => String::new(),
                };
                out::apply(tx, bureau, &transfer_id, event, detail, attempt)?;
                Ok(None)
            })
        }
        Kind::ConfirmSettlement => {
            let request = platform::ConfirmSettlementRequest::decode(message.payload.as_slice())
                .map_err(decode_error)?;
            let mut client = TransferInPlatformServiceClient::new(bureau.peer.channel()?);
            let response = call(timeout, request, |call| async move {
                client.confirm_settlement(call).await
            })
            .await?;
            if let Some(failure) = failed_reply(response.reply.as_ref()) {
                return Ok(Answer::Refused(failure));
            }
            Box::new(|_, _| Ok(None))
        }
        Kind::Abort => {
            let request = platform::AbortTransferRequest::decode(message.payload.as_slice())
                .map_err(decode_error)?;
            let mut client = TransferInPlatformServiceClient::new(bureau.peer.channel()?);
            let response = call(timeout, request, |call| async move {
                client.abort_transfer(call).await
            })
            .await?;
            if let Some(failure) = failed_reply(response.reply.as_ref()) {
                return Ok(Answer::Refused(failure));
            }
            let transfer_id = message.transfer_id.clone();
            Box::new(move |tx, bureau| {
                let (credit, detail) = if response.credited {
                    (InCredit::Credited, "the transfer-in bureau had credited")
                } else {
                    (
                        InCredit::NotCredited,
                        "the transfer-in bureau confirmed it did not and will not credit",
                    )
                };
                out::apply(
                    tx,
                    bureau,
                    &transfer_id,
                    OutEvent::AbortAnswered(credit),
                    detail.to_owned(),
                    attempt,
                )?;
                Ok(None)
            })
        }
        Kind::BankPayout => {
            let calls = bureau
                .bank_calls
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                + 1;
            let every = u64::from(bureau.bank_failure_every);
            if every > 0 && calls.is_multiple_of(every) {
                return Err(tonic::Status::unavailable("simulated bank gateway failure"));
            }
            let transfer_id = message.transfer_id.clone();
            Box::new(move |tx, bureau| {
                // The simulated gateway is idempotent by transfer id.
                let key = format!("bank-paid:{transfer_id}");
                if tx.setting(&key)?.is_none() {
                    tx.put_setting(&key, &bureau.clock.now().to_rfc3339())?;
                }
                out::apply(
                    tx,
                    bureau,
                    &transfer_id,
                    OutEvent::BankPaid,
                    "the bank gateway paid the balance".to_owned(),
                    attempt,
                )?;
                Ok(None)
            })
        }
    };
    let id = message.id;
    let transfer_id = message.transfer_id.clone();
    let worker = bureau.clone();
    let applied = bureau
        .store
        .write(move |tx| -> Result<Option<String>, Error> {
            let problem = answer(tx, &worker)?;
            if problem.is_none() {
                tx.message_acknowledged(id)?;
            }
            Ok(problem)
        })
        .await;
    bureau.changed(&transfer_id);
    match applied {
        Ok(None) => Ok(Answer::Applied),
        Ok(Some(problem)) => Ok(Answer::Refused(problem)),
        Err(error) => {
            tracing::error!(%error, transfer_id = %transfer_id, "could not apply an answer");
            Ok(Answer::NotApplied(
                "the answer could not be applied".to_owned(),
            ))
        }
    }
}

/// One RPC attempt with the per-attempt deadline both as `grpc-timeout` (so the peer can give
/// up too) and as a local timeout (so a peer that never answers cannot hold the slot).
async fn call<Req, Resp, Fut>(
    timeout: Duration,
    request: Req,
    send: impl FnOnce(tonic::Request<Req>) -> Fut,
) -> Result<Resp, tonic::Status>
where
    Fut: std::future::Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
{
    let mut call = tonic::Request::new(request);
    call.set_timeout(timeout);
    let response = tokio::time::timeout(timeout, send(call))
        .await
        .map_err(|_| tonic::Status::deadline_exceeded("attempt timed out"))??;
    Ok(response.into_inner())
}

fn failed_reply(reply: Option<&platform::Reply>) -> Option<String> {
    match reply {
        Some(reply) if reply.infcode == 0 => None,
        Some(reply) => Some(format!("infcode {}: {}", reply.infcode, reply.err_msg)),
        None => Some("the answer carried no reply".to_owned()),
    }
}

/// Opens an abort for every in-transit transfer-out transfer whose whole-process deadline passed.
async fn sweep_deadlines(bureau: &Arc<Bureau>) {
    let today = bureau.clock.today();
    let worker = bureau.clone();
    let result = bureau
        .store
        .write(move |tx| -> Result<Vec<String>, Error> {
            let overdue = tx.open_transfers_in_state_due_before("IN_TRANSIT", today, 100)?;
            let mut changed = Vec::new();
            for row in overdue {
                let Some(document) = record::load(tx, &row.transfer_id)? else {
                    continue;
                };
                if let crate::document::Stored::Out(crate::document::StoredOut::InTransit {
                    ..
                }) = document.state
                {
                    let fallback = out::abort_fallback(&document);
                    out::apply(
                        tx,
                        &worker,
                        &row.transfer_id,
                        OutEvent::DeadlinePassed(fallback),
                        "the whole-process deadline passed without a credit".to_owned(),
                        0,
                    )?;
                    changed.push(row.transfer_id);
                }
            }
            Ok(changed)
        })
        .await;
    match result {
        Ok(changed) => {
            for id in changed {
                bureau.changed(&id);
            }
        }
        Err(error) => tracing::warn!(%error, "deadline sweep failed"),
    }
}
