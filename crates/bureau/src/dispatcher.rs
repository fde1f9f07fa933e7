//! The outbox dispatcher: sends queued messages to the peer (or the bank gateway) in batches —
//! one round trip for every message due to the same service, up to `batch_limit` — applies each
//! answer in the same transaction that removes its message, and retries what the peer did not
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
    /// The most messages in one batch (one round trip).
    pub batch_limit: u32,
    /// The deadline of one delivery attempt.
    pub attempt_timeout: Duration,
    /// Backoff between attempts.
    pub backoff: Backoff,
    /// How long to sleep when nothing is due and nothing wakes us.
    pub idle_poll: Duration,
    /// Batches in flight at once. While they are out, due messages gather for the next ones,
    /// which is what makes batches grow with the load.
    pub concurrency: usize,
}

/// A batch's place among the deliveries in flight, given back when dropped.
struct InFlight {
    set: Arc<Mutex<HashSet<i64>>>,
    ids: Vec<i64>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut set) = self.set.lock() {
            for id in &self.ids {
                set.remove(id);
            }
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

/// What one delivery attempt of one message produced.
enum Outcome {
    /// The message was answered: apply the answer and acknowledge the message.
    Answered(ApplyAnswer),
    /// No answer, or one that may change: send again later (a transport failure, UNAVAILABLE…).
    Retry(String),
    /// The answer refused the message itself (a non-zero infcode, a status that retrying cannot
    /// change, an answer without its content): sending the same bytes again cannot help, so
    /// the message is parked.
    Park(String),
}

/// Where a message goes; the messages of one batch share it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    /// The transfer-out bureau's platform service.
    TransferOut,
    /// The transfer-in bureau's platform service.
    TransferIn,
    /// The simulated bank gateway.
    Bank,
}

impl Target {
    fn of(kind: Option<Kind>) -> Self {
        match kind {
            Some(Kind::RequestTransferOut) => Target::TransferOut,
            Some(Kind::DeliverForm | Kind::ConfirmSettlement | Kind::Abort) => Target::TransferIn,
            // An unknown kind is parked by the bank path's local check, without a round trip.
            Some(Kind::BankPayout) | None => Target::Bank,
        }
    }
}

/// Runs until `shutdown` resolves.
pub async fn run(
    bureau: Arc<Bureau>,
    settings: Settings,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let in_flight: Arc<Mutex<HashSet<i64>>> = Arc::default();
    let permits = Arc::new(Semaphore::new(settings.concurrency.max(1)));
    let batch_limit = settings.batch_limit.max(1) as usize;
    let mut clock_ticks = bureau.clock.subscribe();
    let mut last_sweep: Option<tokio::time::Instant> = None;
    complete_credited(&bureau).await;
    loop {
        if *shutdown.borrow() {
            break;
        }
        // Wait for a free batch slot first: the longer the batches in flight take, the more
        // messages the next batch carries.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = shutdown.changed() => continue,
        };
        let now = bureau.clock.now();
        // Enough to fill every free batch slot, leaving out what is in flight already.
        let free = permits.available_permits() + 1;
        let read_limit = u32::try_from(free.saturating_mul(batch_limit)).unwrap_or(u32::MAX);
        let busy: Vec<i64> = in_flight
            .lock()
            .map(|set| set.iter().copied().collect())
            .unwrap_or_default();
        let due = bureau
            .store
            .read(move |tx| tx.due_messages_except(now, read_limit, &busy))
            .await;
        let due: Vec<OutboxMessage> = match due {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(%error, "outbox read failed; retrying");
                Vec::new()
            }
        };
        let mut groups: Vec<(Target, Vec<OutboxMessage>)> = Vec::new();
        for message in due {
            let fresh = in_flight
                .lock()
                .map(|mut set| set.insert(message.id))
                .unwrap_or(false);
            if !fresh {
                continue;
            }
            let target = Target::of(Kind::parse(&message.kind));
            match groups
                .iter_mut()
                .find(|(t, batch)| *t == target && batch.len() < batch_limit)
            {
                Some((_, batch)) => batch.push(message),
                None => groups.push((target, vec![message])),
            }
        }
        let mut started = 0;
        let mut permit = Some(permit);
        for (target, batch) in groups {
            let permit = match permit.take() {
                Some(permit) => Some(permit),
                None => permits.clone().try_acquire_owned().ok(),
            };
            let Some(permit) = permit else {
                // No slot left: give the rest back; the next round picks them up.
                release(&in_flight, &batch);
                continue;
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
                    ids: batch.iter().map(|message| message.id).collect(),
                    _permit: permit,
                };
                deliver_batch(&bureau, &settings, target, batch).await;
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
        drop(permit);
        let next_due = bureau
            .store
            .read(|tx| tx.next_due_at())
            .await
            .ok()
            .flatten();
        // Nothing started, so a message due already is one in flight: a finishing batch wakes
        // us (`dispatch_now`), and polling the outbox every millisecond meanwhile would only
        // burn CPU. Otherwise sleep until the next message falls due.
        let wait = next_due
            .and_then(|at| (at - bureau.clock.now()).to_std().ok())
            .filter(|until| !until.is_zero())
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

fn release(in_flight: &Mutex<HashSet<i64>>, batch: &[OutboxMessage]) {
    if let Ok(mut set) = in_flight.lock() {
        for message in batch {
            set.remove(&message.id);
        }
    }
}

/// Sends one batch and settles every message of it.
async fn deliver_batch(
    bureau: &Arc<Bureau>,
    settings: &Settings,
    target: Target,
    batch: Vec<OutboxMessage>,
) {
    let outcomes = match target {
        Target::TransferOut => send_to_transfer_out(bureau, settings, &batch).await,
        Target::TransferIn => send_to_transfer_in(bureau, settings, &batch).await,
        Target::Bank => batch
            .iter()
            .map(|message| pay_out(bureau, message))
            .collect(),
    };
    settle(bureau, settings, batch, outcomes).await;
}

/// The outcome of every message of a batch whose round trip failed as a whole.
fn all_failed(bureau: &Bureau, status: &tonic::Status, count: usize) -> Vec<Outcome> {
    if status.code() == tonic::Code::Unavailable {
        bureau.peer.reset();
    }
    let text = format!("{:?}: {}", status.code(), status.message());
    let retryable = is_retryable(status);
    (0..count)
        .map(|_| {
            if retryable {
                Outcome::Retry(text.clone())
            } else {
                Outcome::Park(text.clone())
            }
        })
        .collect()
}

/// The outcome of a message the batch answered with a status.
fn failed_status(status: &platform::MessageStatus) -> Outcome {
    let status = tonic::Status::new(tonic::Code::from_i32(status.code), status.message.clone());
    let text = format!("{:?}: {}", status.code(), status.message());
    if is_retryable(&status) {
        Outcome::Retry(text)
    } else {
        Outcome::Park(text)
    }
}

/// A stored payload, decoded; one that does not decode is parked.
fn decoded<M: Message + Default>(message: &OutboxMessage) -> Result<M, Outcome> {
    M::decode(message.payload.as_slice())
        .map_err(|_| Outcome::Park("the stored message does not decode".to_owned()))
}

/// One batch round trip: `decode` each message (one that cannot be is parked, not sent),
/// `send` the rest in one call (none, no call), and `read` each answer into its message's
/// outcome. A failed call, or an answer count that does not match, decides for every message
/// sent.
async fn exchange<M, A, Fut>(
    bureau: &Bureau,
    batch: &[OutboxMessage],
    decode: impl Fn(&OutboxMessage) -> Result<M, Outcome>,
    send: impl FnOnce(tonic::transport::Channel, Vec<M>) -> Fut,
    read: impl Fn(&OutboxMessage, A) -> Outcome,
) -> Vec<Outcome>
where
    Fut: std::future::Future<Output = Result<Vec<A>, tonic::Status>>,
{
    let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(batch.len());
    let mut wire = Vec::with_capacity(batch.len());
    for message in batch {
        match decode(message) {
            Ok(item) => {
                wire.push(item);
                outcomes.push(None);
            }
            Err(outcome) => outcomes.push(Some(outcome)),
        }
    }
    let sent = wire.len();
    if sent > 0 {
        let answers = match bureau.peer.channel() {
            Ok(channel) => send(channel, wire).await,
            Err(status) => Err(status),
        };
        let mut answers: Vec<Result<A, Outcome>> = match answers {
            Ok(answers) if answers.len() == sent => answers.into_iter().map(Ok).collect(),
            Ok(answers) => {
                let problem = format!(
                    "the batch's answer holds {} answers for {sent} messages",
                    answers.len()
                );
                (0..sent)
                    .map(|_| Err(Outcome::Park(problem.clone())))
                    .collect()
            }
            Err(status) => all_failed(bureau, &status, sent)
                .into_iter()
                .map(Err)
                .collect(),
        };
        answers.reverse();
        for (message, outcome) in batch.iter().zip(outcomes.iter_mut()) {
            if outcome.is_none() {
                *outcome = Some(match answers.pop() {
                    Some(Ok(answer)) => read(message, answer),
                    Some(Err(failed)) => failed,
                    None => Outcome::Park("no answer".to_owned()),
                });
            }
        }
    }
    outcomes
        .into_iter()
        .map(|outcome| outcome.unwrap_or_else(|| Outcome::Park("no answer".to_owned())))
        .collect()
}

async fn send_to_transfer_out(
    bureau: &Arc<Bureau>,
    settings: &Settings,
    batch: &[OutboxMessage],
) -> Vec<Outcome> {
    use platform::transfer_out_answer::Answer;
    let timeout = settings.attempt_timeout;
    exchange(
        bureau,
        batch,
        decoded::<platform::RequestTransferOutRequest>,
        |channel, requests| async move {
            let mut client = TransferOutPlatformServiceClient::new(channel);
            let request = platform::SubmitTransferOutRequestsRequest { requests };
            call(timeout, request, |call| async move {
                client.submit_transfer_out_requests(call).await
            })
            .await
            .map(|response| response.answers)
        },
        |message, answer: platform::TransferOutAnswer| match answer.answer {
            Some(Answer::Response(response)) => request_answered(message, response),
            Some(Answer::Failed(status)) => failed_status(&status),
            None => Outcome::Park("the answer was empty".to_owned()),
        },
    )
    .await
}

async fn send_to_transfer_in(
    bureau: &Arc<Bureau>,
    settings: &Settings,
    batch: &[OutboxMessage],
) -> Vec<Outcome> {
    use platform::transfer_in_answer::Answer;
    use platform::transfer_in_message::Message as Wire;
    let timeout = settings.attempt_timeout;
    exchange(
        bureau,
        batch,
        |message| {
            let wire = match Kind::parse(&message.kind) {
                Some(Kind::DeliverForm) => Wire::DeliverInsuranceRecord(decoded(message)?),
                Some(Kind::ConfirmSettlement) => Wire::ConfirmSettlement(decoded(message)?),
                Some(Kind::Abort) => Wire::AbortTransfer(decoded(message)?),
                _ => {
                    let why = format!("unknown message kind {}", message.kind);
                    return Err(Outcome::Park(why));
                }
            };
            Ok(platform::TransferInMessage {
                message: Some(wire),
            })
        },
        |channel, messages| async move {
            let mut client = TransferInPlatformServiceClient::new(channel);
            let request = platform::SubmitTransferInMessagesRequest { messages };
            call(timeout, request, |call| async move {
                client.submit_transfer_in_messages(call).await
            })
            .await
            .map(|response| response.answers)
        },
        |message, answer: platform::TransferInAnswer| match answer.answer {
            Some(Answer::DeliverInsuranceRecord(response)) => form_answered(message, response),
            Some(Answer::ConfirmSettlement(response)) => {
                match failed_reply(response.reply.as_ref()) {
                    Some(failure) => Outcome::Park(failure),
                    None => Outcome::Answered(Box::new(|_, _| Ok(None))),
                }
            }
            Some(Answer::AbortTransfer(response)) => abort_answered(message, response),
            Some(Answer::Failed(status)) => failed_status(&status),
            None => Outcome::Park("the answer was empty".to_owned()),
        },
    )
    .await
}

/// The transfer-out bureau's decision on a request: accepted or refused.
fn request_answered(
    message: &OutboxMessage,
    response: platform::RequestTransferOutResponse,
) -> Outcome {
    use platform::request_transfer_out_response::Decision;
    if let Some(failure) = failed_reply(response.reply.as_ref()) {
        return Outcome::Park(failure);
    }
    let transfer_id = message.transfer_id.clone();
    let attempt = message.attempts + 1;
    Outcome::Answered(Box::new(move |tx, bureau| {
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
    }))
}

/// The transfer-in bureau's acknowledgement of a form: credited or refused.
fn form_answered(
    message: &OutboxMessage,
    response: platform::DeliverInsuranceRecordResponse,
) -> Outcome {
    if let Some(failure) = failed_reply(response.reply.as_ref()) {
        return Outcome::Park(failure);
    }
    let transfer_id = message.transfer_id.clone();
    let attempt = message.attempts + 1;
    Outcome::Answered(Box::new(move |tx, bureau| {
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
    }))
}

/// The transfer-in bureau's answer to an abort: it had credited, or it never will.
fn abort_answered(message: &OutboxMessage, response: platform::AbortTransferResponse) -> Outcome {
    if let Some(failure) = failed_reply(response.reply.as_ref()) {
        return Outcome::Park(failure);
    }
    let transfer_id = message.transfer_id.clone();
    let attempt = message.attempts + 1;
    Outcome::Answered(Box::new(move |tx, bureau| {
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
    }))
}

/// The simulated bank gateway: pays (idempotently by transfer id) or fails as configured.
fn pay_out(bureau: &Bureau, message: &OutboxMessage) -> Outcome {
    if Kind::parse(&message.kind) != Some(Kind::BankPayout) {
        return Outcome::Park(format!("unknown message kind {}", message.kind));
    }
    let calls = bureau
        .bank_calls
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        + 1;
    let every = u64::from(bureau.bank_failure_every);
    if every > 0 && calls.is_multiple_of(every) {
        return Outcome::Retry("Unavailable: simulated bank gateway failure".to_owned());
    }
    let transfer_id = message.transfer_id.clone();
    let attempt = message.attempts + 1;
    Outcome::Answered(Box::new(move |tx, bureau| {
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
    }))
}

/// Applies a batch's outcomes, one store job per message (queued together, so they share a
/// group commit): an answer together with its message's acknowledgement; a message without a
/// usable answer is rescheduled (with backoff) or parked, and its history says why.
async fn settle(
    bureau: &Arc<Bureau>,
    settings: &Settings,
    batch: Vec<OutboxMessage>,
    outcomes: Vec<Outcome>,
) {
    let touched: Vec<String> = batch.iter().map(|m| m.transfer_id.clone()).collect();
    let jobs: Vec<_> = batch
        .into_iter()
        .zip(outcomes)
        .map(|(message, outcome)| {
            let worker = bureau.clone();
            let backoff = settings.backoff;
            move |tx: &mut dyn yibao_store::Tx| settle_one(tx, &worker, &backoff, message, outcome)
        })
        .collect();
    let results = record::write_each(bureau, jobs).await;
    let retries: Vec<Box<OutboxMessage>> = results
        .into_iter()
        .zip(&touched)
        .filter_map(|(result, transfer_id)| match result {
            Ok(()) => None,
            Err(Unsettled { message, error }) => {
                // Nothing of it was kept: the message is retried later, and the peer answers
                // the repeated msgid with its first answer.
                tracing::warn!(%error, transfer_id = %transfer_id, "could not settle an outbox message");
                message
            }
        })
        .collect();
    if !retries.is_empty() {
        let jobs: Vec<_> = retries
            .into_iter()
            .map(|message| {
                let worker = bureau.clone();
                let backoff = settings.backoff;
                move |tx: &mut dyn yibao_store::Tx| -> Result<(), Error> {
                    let why = "the answer could not be applied";
                    reschedule(tx, &worker, &backoff, &message, true, why)
                }
            })
            .collect();
        for result in record::write_each(bureau, jobs).await {
            if let Err(error) = result {
                tracing::warn!(%error, "could not reschedule an outbox message");
            }
        }
    }
    for transfer_id in &touched {
        bureau.changed(transfer_id);
    }
}

/// Why a message could not be settled; its job wrote nothing, and the message (when the step
/// failed, rather than the commit) is rescheduled with backoff by a job of its own.
struct Unsettled {
    message: Option<Box<OutboxMessage>>,
    error: Error,
}

impl From<yibao_store::Error> for Unsettled {
    fn from(error: yibao_store::Error) -> Self {
        Unsettled {
            message: None,
            error: error.into(),
        }
    }
}

/// Settles one message in the caller's job; any failure undoes the job and comes back with the
/// message, so that it is retried with backoff rather than resent at once.
fn settle_one(
    tx: &mut dyn yibao_store::Tx,
    bureau: &Bureau,
    backoff: &Backoff,
    message: OutboxMessage,
    outcome: Outcome,
) -> Result<(), Unsettled> {
    let settled = (|| -> Result<(), Error> {
        let (retryable, why) = match outcome {
            Outcome::Answered(apply) => match apply(tx, bureau)? {
                None => {
                    tx.message_acknowledged(message.id)?;
                    return Ok(());
                }
                Some(problem) => (false, problem),
            },
            Outcome::Retry(why) => (true, why),
            Outcome::Park(why) => (false, why),
        };
        reschedule(tx, bureau, backoff, &message, retryable, &why)
    })();
    settled.map_err(|error| {
        tracing::error!(%error, transfer_id = %message.transfer_id, "could not settle an answer");
        Unsettled {
            message: Some(Box::new(message)),
            error,
        }
    })
}

/// Reschedules (or parks) one message and notes the attempt in its transfer's history.
fn reschedule(
    tx: &mut dyn yibao_store::Tx,
    bureau: &Bureau,
    backoff: &Backoff,
    message: &OutboxMessage,
    retryable: bool,
    outcome: &str,
) -> Result<(), Error> {
    let attempt = message.attempts + 1;
    // Only a message that may succeed later is retried; one the peer refused (or answered with
    // a status that retrying cannot change) is parked for an operator, visible in the
    // transfer's history, and the statutory deadline takes its course.
    let (delay, happening) = if retryable {
        let mut rng = rand::rngs::StdRng::from_os_rng();
        (backoff.delay(attempt, &mut rng), "DELIVERY_RETRY")
    } else {
        tracing::warn!(transfer_id = %message.transfer_id, kind = %message.kind, %outcome, "message parked");
        (PARKED_FOR, "DELIVERY_PARKED")
    };
    let next = bureau.clock.now() + chrono::Duration::from_std(delay).unwrap_or_default();
    tx.message_retry_later(message.id, attempt, next, outcome)?;
    // The outbox row counts every attempt and keeps the last error; the history notes attempts
    // 1, 2, 4, 8, … only, so a peer down for a day (≈ 8,600 attempts at the capped backoff)
    // adds 14 events to a transfer's history, not thousands.
    if retryable && !attempt.is_power_of_two() {
        return Ok(());
    }
    let state = record::load(tx, &message.transfer_id)?
        .map(|d| d.state.name())
        .unwrap_or("");
    let kind = &message.kind;
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
        bureau,
        &message.transfer_id,
        state,
        happening,
        detail,
        attempt,
    )
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

/// Completes the transfer-in transfers an earlier version left in CREDITED, waiting for a
/// settlement confirmation that is no longer sent (the credit completes a transfer now).
async fn complete_credited(bureau: &Arc<Bureau>) {
    const CHUNK: u32 = 100;
    // Any day after every due date (stored as text, so it must be a four-digit year).
    let far = chrono::NaiveDate::from_ymd_opt(9999, 12, 31).unwrap_or_default();
    loop {
        let worker = bureau.clone();
        let result = record::write(bureau, move |tx| -> Result<usize, Error> {
            let credited = tx.open_transfers_in_state_due_before("CREDITED", far, CHUNK)?;
            for row in &credited {
                inn::apply(
                    tx,
                    &worker,
                    &row.transfer_id,
                    InEvent::SettlementConfirmed,
                    "completed: the credit completes the transfer".to_owned(),
                    0,
                )?;
            }
            Ok(credited.len())
        })
        .await;
        match result {
            Ok(count) if count == CHUNK as usize => continue,
            Ok(0) => return,
            Ok(count) => {
                tracing::info!(
                    count,
                    "completed transfers left credited by an earlier version"
                );
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "could not complete credited transfers");
                return;
            }
        }
    }
}

/// Opens an abort for every in-transit transfer-out transfer whose whole-process deadline passed.
async fn sweep_deadlines(bureau: &Arc<Bureau>) {
    let today = bureau.clock.today();
    let worker = bureau.clone();
    let result = record::write(bureau, move |tx| -> Result<Vec<String>, Error> {
        let overdue = tx.open_transfers_in_state_due_before("IN_TRANSIT", today, 100)?;
        let mut changed = Vec::new();
        for row in overdue {
            let Some(document) = record::load(tx, &row.transfer_id)? else {
                continue;
            };
            if let crate::document::Stored::Out(crate::document::StoredOut::InTransit { .. }) =
                document.state
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
