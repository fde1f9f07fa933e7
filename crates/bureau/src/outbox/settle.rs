//! Settles a batch's outcomes: an answer is applied by the driver of the side it concerns and
//! its message acknowledged, in one store job per message (queued together, so a batch shares
//! a group commit); a message without a usable answer is rescheduled with backoff and jitter, or
//! parked, and its transfer's history says why.

use chrono::{DateTime, Utc};
use opentelemetry::Context;
use rand::SeedableRng;
use yibao_domain::transfer::TransferState;
use yibao_domain::transfer::out_side::OutState;
use yibao_runtime::retry::Backoff;
use yibao_store::OutboxMessage;

use crate::bank;
use crate::error::Error;
use crate::measure;
use crate::messages::{Answer, Kind};
use crate::outbox::queue;
use crate::outbox::transport::Outcome;
use crate::record::{Happening, Step};
use crate::services::Services;
use crate::{trace, transfer_in, transfer_out};

/// What becomes of a message that was not answered usably.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Later {
    /// Sent again after a backoff.
    Retry,
    /// Kept, not sent again: the answer refused the message itself.
    Park,
}

/// Applies a batch's outcomes, one store job per message.
pub async fn settle(
    services: &Services,
    backoff: Backoff,
    batch: Vec<OutboxMessage>,
    outcomes: Vec<Outcome>,
) {
    settle_traced(services, backoff, batch, outcomes, Vec::new()).await;
}

/// [`settle`], each message's step in a span (`answer <kind>`, with its transfer id) whose
/// parent is that message's delivery attempt (`parents`, in the batch's order; a message
/// beyond them starts from nothing).
pub async fn settle_traced(
    services: &Services,
    backoff: Backoff,
    batch: Vec<OutboxMessage>,
    outcomes: Vec<Outcome>,
    parents: Vec<Context>,
) {
    let mut parents = parents.into_iter();
    // The step each answered message completes, timed from when it was queued once its answer
    // is committed.
    let answered: Vec<Option<(&'static str, DateTime<Utc>)>> = batch
        .iter()
        .zip(&outcomes)
        .map(|(message, outcome)| match outcome {
            Outcome::Answered(_) => Some((measure::step_of(&message.kind)?, message.created_at)),
            Outcome::Retry(_) | Outcome::Park(_) => None,
        })
        .collect();
    let jobs: Vec<_> = batch
        .into_iter()
        .zip(outcomes)
        .map(|(message, outcome)| {
            let kind = Kind::parse(&message.kind);
            let parent = parents.next().unwrap_or_default();
            let span = trace::answer(kind, &message.transfer_id, &message.msgid, parent);
            crate::record::within(span, move |step: &mut Step<'_>| {
                settle_one(step, &backoff, message, outcome)
            })
        })
        .collect();
    let results = services.write_each(jobs).await;
    let now = services.clock.now();
    let unsettled: Vec<OutboxMessage> = results
        .into_iter()
        .zip(answered)
        .filter_map(|(result, answered)| match result {
            Ok(()) => {
                if let Some((step, queued_at)) = answered {
                    measure::handshake_step(step, (now - queued_at).to_std().unwrap_or_default());
                }
                None
            }
            Err(Unsettled { message, error }) => {
                // Nothing of it was kept: the message is retried later, and the peer answers
                // the repeated msgid with its first answer.
                tracing::warn!(%error, "could not settle an outbox message");
                message.map(|message| *message)
            }
        })
        .collect();
    if unsettled.is_empty() {
        return;
    }
    let jobs: Vec<_> = unsettled
        .into_iter()
        .map(|message| {
            let kind = Kind::parse(&message.kind);
            let span = trace::answer(kind, &message.transfer_id, &message.msgid, Context::new());
            crate::record::within(span, move |step: &mut Step<'_>| -> Result<(), Error> {
                let why = "the answer could not be applied";
                reschedule(step, &backoff, &message, Later::Retry, why)
            })
        })
        .collect();
    for result in services.write_each(jobs).await {
        if let Err(error) = result {
            tracing::warn!(%error, "could not reschedule an outbox message");
        }
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

/// Settles one message in the caller's step; any failure undoes the step and comes back with
/// the message, so that it is retried with backoff rather than resent at once.
fn settle_one(
    step: &mut Step<'_>,
    backoff: &Backoff,
    message: OutboxMessage,
    outcome: Outcome,
) -> Result<(), Unsettled> {
    let settled = match outcome {
        Outcome::Answered(answer) => apply_answer(step, &message, answer)
            .and_then(|()| Ok(step.tx.message_acknowledged(message.id)?)),
        Outcome::Retry(why) => reschedule(step, backoff, &message, Later::Retry, &why),
        Outcome::Park(why) => refused_later(step, &message)
            .and_then(|later| reschedule(step, backoff, &message, later, &why)),
    };
    settled.map_err(|error| {
        tracing::error!(%error, transfer_id = %message.transfer_id, "could not settle an answer");
        Unsettled {
            message: Some(Box::new(message)),
            error,
        }
    })
}

/// What becomes of a message its receiver refused: parked — except an abort while its transfer
/// is still aborting, which is retried with backoff (the receiver's configuration may be put
/// right), until the transfer's own bound hands it to an operator and parks it.
fn refused_later(step: &mut Step<'_>, message: &OutboxMessage) -> Result<Later, Error> {
    if Kind::parse(&message.kind) != Some(Kind::Abort) {
        return Ok(Later::Park);
    }
    let aborting = step.load(&message.transfer_id)?.is_some_and(|document| {
        matches!(
            document.state,
            TransferState::Out(OutState::Aborting { .. })
        )
    });
    Ok(if aborting { Later::Retry } else { Later::Park })
}

/// Hands an answer to the driver of the side it concerns.
fn apply_answer(step: &mut Step<'_>, message: &OutboxMessage, answer: Answer) -> Result<(), Error> {
    let attempt = message.attempts + 1;
    let transfer_id = &message.transfer_id;
    match answer {
        Answer::Decided(decision) => {
            transfer_in::request_answered(step, transfer_id, &decision, attempt)
        }
        Answer::FormAnswered(outcome) => {
            transfer_out::form_answered(step, transfer_id, outcome, attempt)
        }
        Answer::AbortAnswered(credit) => {
            transfer_out::abort_answered(step, transfer_id, credit, attempt)
        }
        Answer::BankPaid => {
            bank::record_payment(step, transfer_id)?;
            transfer_out::bank_paid(step, transfer_id, attempt)
        }
        Answer::SettlementAcknowledged => Ok(()),
        Answer::TransferOutSays(view) => {
            transfer_in::transfer_out_answered(step, transfer_id, view, attempt)
        }
        Answer::RemittanceChecked(check) => {
            transfer_out::remittance_answered(step, transfer_id, &message.msgid, check, attempt)
        }
        // The transfer-in bureau's own step already moved the money and the state; the
        // transfer-out bureau's answer only says it took note.
        Answer::ReturnAcknowledged => Ok(()),
    }
}

/// The random source of a retry's jitter, seeded from the message and its attempt: messages
/// that failed together still spread out (each msgid draws its own delays), and a run replayed
/// from the same messages waits the same delays (the deterministic simulation's replay).
fn jitter_source(msgid: &str, attempt: u32) -> rand::rngs::StdRng {
    use std::hash::{Hash, Hasher};
    // SipHash with fixed keys: the same on every run, unlike a HashMap's per-process keys.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (msgid, attempt).hash(&mut hasher);
    rand::rngs::StdRng::seed_from_u64(hasher.finish())
}

/// Reschedules (or parks) one message and notes the attempt in its transfer's history.
fn reschedule(
    step: &mut Step<'_>,
    backoff: &Backoff,
    message: &OutboxMessage,
    later: Later,
    outcome: &str,
) -> Result<(), Error> {
    let attempt = message.attempts + 1;
    let (delay, happening) = match later {
        Later::Retry => {
            measure::retried(Kind::parse(&message.kind).map_or("UNKNOWN", Kind::as_str));
            let mut rng = jitter_source(&message.msgid, attempt);
            (backoff.delay(attempt, &mut rng), "DELIVERY_RETRY")
        }
        Later::Park => {
            tracing::warn!(transfer_id = %message.transfer_id, kind = %message.kind, %outcome, "message parked");
            (queue::PARKED_FOR, "DELIVERY_PARKED")
        }
    };
    let next = step.ctx.now + chrono::Duration::from_std(delay).unwrap_or_default();
    step.tx
        .message_retry_later(message.id, attempt, next, outcome)?;
    // The outbox row counts every attempt and keeps the last error; the history notes attempts
    // 1, 2, 4, 8, … only, so a peer down for a day (≈ 8,600 attempts at the capped backoff)
    // adds 14 events to a transfer's history, not thousands.
    if later == Later::Retry && !attempt.is_power_of_two() {
        return Ok(());
    }
    let state = step
        .load(&message.transfer_id)?
        .map(|document| document.state.name())
        .unwrap_or("");
    let kind = &message.kind;
    let detail = match later {
        Later::Retry => format!(
            "{kind} attempt {attempt} failed ({outcome}); next attempt in {} ms",
            delay.as_millis()
        ),
        Later::Park => format!("{kind} attempt {attempt} refused ({outcome}); parked, not retried"),
    };
    step.note(
        &message.transfer_id,
        Happening {
            kind: happening,
            from_state: state,
            detail,
            attempt,
        },
    )
}

#[cfg(test)]
mod tests;
