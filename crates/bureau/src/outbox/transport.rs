//! The outbox's wire side: encodes a queued message into the bytes the outbox stores, sends a
//! batch of stored messages in one round trip to the service they go to (or to the bank
//! gateway), and reads each answer back into a domain [`Answer`] — or into why the message must
//! be sent again later, or parked. Each attempt's round trip to the peer is timed for the
//! message journal (`RoundTrips`).

use std::time::Duration;

use std::collections::HashMap;

use opentelemetry::Context;
use prost::Message;
use tokio::time::Instant;
use yibao_domain::transfer::in_side::TransferOutView;
use yibao_domain::transfer::out_side::InCredit;
use yibao_proto::common::v1 as common;
use yibao_proto::platform::v1 as platform;
use yibao_proto::platform::v1::transfer_in_platform_service_client::TransferInPlatformServiceClient;
use yibao_proto::platform::v1::transfer_out_platform_service_client::TransferOutPlatformServiceClient;
use yibao_runtime::retry::is_retryable;
use yibao_store::OutboxMessage;

use crate::convert;
use crate::exchanges::{Entry, Outcome as Happened, Way};
use crate::faults::{Action, Direction, Seen};
use crate::measure;
use crate::messages::{AbortReason, Answer, Envelope, Kind, Outgoing};
use crate::peer::{Batches, Peer};
use crate::services::Services;

/// What one delivery attempt of one message produced.
#[derive(Debug)]
pub enum Outcome {
    /// The message was answered: apply the answer and acknowledge the message.
    Answered(Answer),
    /// No answer, or one that may change: send again later (a transport failure, UNAVAILABLE…).
    Retry(String),
    /// The answer refused the message itself (a non-zero infcode, a status that retrying cannot
    /// change, an answer without its content): sending the same bytes again cannot help, so
    /// the message is parked.
    Park(String),
}

/// Where a message goes; the messages of one batch share it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The transfer-out bureau's platform service.
    TransferOut,
    /// The transfer-in bureau's platform service.
    TransferIn,
    /// The bank gateway.
    Bank,
    /// The transfer-out bureau's query and return rpcs (one call per message: there is no
    /// batch form).
    TransferOutQuery,
}

impl Target {
    /// Where a stored message of this kind goes (an unknown kind is parked by the bank path's
    /// local check, without a round trip).
    pub fn of(kind: Option<Kind>) -> Self {
        match kind {
            Some(Kind::RequestTransferOut) => Target::TransferOut,
            Some(
                Kind::DeliverForm | Kind::ConfirmSettlement | Kind::Abort | Kind::RemitBalance,
            ) => Target::TransferIn,
            Some(Kind::QueryTransferOut | Kind::ReturnRemittance) => Target::TransferOutQuery,
            Some(Kind::BankPayout) | None => Target::Bank,
        }
    }
}

/// Each message's delivery span context by msgid, which its call carries to the receiver (W3C
/// `traceparent` in the metadata); empty with traces off.
#[derive(Debug, Default)]
pub struct Deliveries(HashMap<String, Context>);

impl Deliveries {
    /// The contexts of `(msgid, context)` pairs.
    pub fn new(contexts: impl IntoIterator<Item = (String, Context)>) -> Self {
        Self(contexts.into_iter().collect())
    }

    /// The context each message of `messages` travels with, in order; nothing at all when no
    /// message has one.
    fn of_each<'a>(&self, messages: impl IntoIterator<Item = &'a OutboxMessage>) -> Vec<Context> {
        if self.0.is_empty() {
            return Vec::new();
        }
        messages
            .into_iter()
            .map(|message| self.0.get(&message.msgid).cloned().unwrap_or_default())
            .collect()
    }
}

/// The bytes the outbox stores for a message: the platform request with its envelope, or for
/// the bank gateway the amount in cents as text.
pub fn encode(envelope: Envelope, message: Outgoing) -> Vec<u8> {
    let transfer_id = envelope.transfer_id.clone();
    let wire_envelope = Some(convert::wire_envelope(envelope));
    match message {
        Outgoing::RequestTransferOut(application) => platform::RequestTransferOutRequest {
            envelope: wire_envelope,
            application: Some(convert::wire_application(*application)),
        }
        .encode_to_vec(),
        Outgoing::DeliverForm(form) => platform::DeliverInsuranceRecordRequest {
            envelope: wire_envelope,
            form: Some(convert::wire_form(*form)),
        }
        .encode_to_vec(),
        Outgoing::Abort(AbortReason::DeadlineExpired) => platform::AbortTransferRequest {
            envelope: wire_envelope,
            transfer_id,
            reason_code: common::RefusalReason::DeadlineExpired as i32,
            reason: "the whole-process deadline passed without a credit".to_owned(),
        }
        .encode_to_vec(),
        Outgoing::BankPayout { amount_cents } => amount_cents.to_string().into_bytes(),
        Outgoing::QueryTransferOut => platform::QueryTransferOutRequest {
            envelope: wire_envelope,
            transfer_id,
        }
        .encode_to_vec(),
        Outgoing::RemitBalance { amount_cents } => platform::RemitBalanceRequest {
            remitted_at: wire_envelope.as_ref().and_then(|e| e.sent_at),
            envelope: wire_envelope,
            transfer_id,
            amount: convert::money_text(amount_cents),
        }
        .encode_to_vec(),
        Outgoing::ReturnRemittance {
            amount_cents,
            remittance_msgid,
            check,
        } => platform::ReturnRemittanceRequest {
            envelope: wire_envelope,
            transfer_id,
            remittance_msgid,
            amount: convert::money_text(amount_cents),
            check: convert::wire_remittance_check(check) as i32,
        }
        .encode_to_vec(),
    }
}

/// One message's attempt with the peer: how long it took, and when (tokio time) it ended.
#[derive(Clone, Copy, Debug)]
struct Trip {
    took: Duration,
    ended: Instant,
}

impl Trip {
    /// The trip of an attempt that started at `started` and ended now.
    fn since(started: Instant) -> Trip {
        let ended = Instant::now();
        Trip {
            took: ended.saturating_duration_since(started),
            ended,
        }
    }
}

/// How long each message of a batch was with the peer in this attempt, for the journal: one
/// figure for a batch sent in one RPC (nothing allocated), one per message for messages sent
/// one RPC each or held back by fault rules.
#[derive(Debug, Default)]
enum RoundTrips {
    /// Nothing went to the peer (the bank gateway, no channel, nothing to send).
    #[default]
    None,
    /// Every message went in one RPC: this trip.
    Batch(Trip),
    /// Each message's trip by its position in the batch; none for one not sent.
    Each(Vec<Option<Trip>>),
}

impl RoundTrips {
    /// The trip of the message at `index` of the batch, if it was sent.
    fn of(&self, index: usize) -> Option<Trip> {
        match self {
            RoundTrips::None => None,
            RoundTrips::Batch(trip) => Some(*trip),
            RoundTrips::Each(trips) => trips.get(index).copied().flatten(),
        }
    }

    /// The trips of the messages sent, `sent` (in order), placed at the positions of a batch
    /// whose `held[i]` says that message `i` was not sent.
    fn placed(held: &[bool], sent: RoundTrips) -> RoundTrips {
        if !held.contains(&true) {
            return sent;
        }
        let mut next = 0;
        let trips = held
            .iter()
            .map(|&was_held| {
                if was_held {
                    return None;
                }
                next += 1;
                sent.of(next - 1)
            })
            .collect();
        RoundTrips::Each(trips)
    }
}

/// Sends one batch (all to `target`) and reads every message's outcome, in the batch's order.
pub async fn send(
    services: &Services,
    attempt_timeout: Duration,
    target: Target,
    batch: &[OutboxMessage],
    deliveries: &Deliveries,
) -> Vec<Outcome> {
    let (outcomes, faults, trips) = if services.faults.is_empty() {
        let sent = send_plain(services, attempt_timeout, target, batch, deliveries).await;
        let (outcomes, trips) = sent;
        (outcomes, Vec::new(), trips)
    } else {
        send_faulted(services, attempt_timeout, target, batch, deliveries).await
    };
    journal_sent(services, batch, &outcomes, &faults, &trips);
    outcomes
}

/// Keeps the messages of a batch just sent in the message journal, with what came of each and
/// its round trip; a message's time is when its own attempt ended.
fn journal_sent(
    services: &Services,
    batch: &[OutboxMessage],
    outcomes: &[Outcome],
    faults: &[Option<Action>],
    trips: &RoundTrips,
) {
    let (now, now_instant) = (services.clock.now(), Instant::now());
    for (index, (message, outcome)) in batch.iter().zip(outcomes).enumerate() {
        let trip = trips.of(index);
        let at = trip.map_or(now, |trip| {
            let since = now_instant.saturating_duration_since(trip.ended);
            now - chrono::TimeDelta::from_std(since).unwrap_or_default()
        });
        let kind = Kind::parse(&message.kind).map_or("UNKNOWN", Kind::as_str);
        measure::platform_message(measure::Direction::Sent, kind, sent_infcode(outcome));
        let outcome = match outcome {
            Outcome::Answered(_) => Happened::Answered,
            Outcome::Retry(why) => Happened::Failed(format!("retry: {why}")),
            Outcome::Park(why) => Happened::Failed(format!("parked: {why}")),
        };
        let fault = faults
            .get(index)
            .and_then(Option::as_ref)
            .map(|action| format!("{action:?}"))
            .unwrap_or_default();
        services.exchanges.keep(Entry {
            at,
            way: Way::Sent,
            kind,
            msgid: message.msgid.clone(),
            sender: String::new(),
            receiver: message.peer.clone(),
            transfer_id: message.transfer_id.clone(),
            attempt: message.attempts.saturating_add(1),
            outcome,
            fault,
            round_trip: trip.map(|trip| trip.took),
        });
    }
}

/// The `infcode` label of a sent message's attempt: 0 for an answer read, the infcode of a
/// refusing reply (the parking reasons of [`failed_reply`] and of an infcode fault, which both
/// open `infcode N:`), or none when no reply was read.
fn sent_infcode(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Answered(_) => measure::infcode_label(0),
        Outcome::Park(why) => why
            .strip_prefix("infcode ")
            .and_then(|rest| rest.split(':').next())
            .and_then(|code| code.parse::<i32>().ok())
            .map_or(measure::NO_REPLY, measure::infcode_label),
        Outcome::Retry(_) => measure::NO_REPLY,
    }
}

/// [`send`] with the faults rules inject into the batch's messages: a message a fault answers
/// for is not sent; a delayed one holds the batch; a lost answer is dropped after the send; a
/// second delivery is sent again after the first and its answer dropped.
async fn send_faulted(
    services: &Services,
    attempt_timeout: Duration,
    target: Target,
    batch: &[OutboxMessage],
    deliveries: &Deliveries,
) -> (Vec<Outcome>, Vec<Option<Action>>, RoundTrips) {
    let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(batch.len());
    let mut actions = Vec::with_capacity(batch.len());
    let mut wire = Vec::with_capacity(batch.len());
    for message in batch {
        let action = sent_fault(services, message).await;
        match early_outcome(action.as_ref(), attempt_timeout).await {
            Some(outcome) => outcomes.push(Some(outcome)),
            None => {
                outcomes.push(None);
                wire.push(message.clone());
            }
        }
        actions.push(action);
    }
    let (answers, sent_trips) =
        send_plain(services, attempt_timeout, target, &wire, deliveries).await;
    let mut answers = answers.into_iter();
    let held: Vec<bool> = outcomes.iter().map(Option::is_some).collect();
    let trips = RoundTrips::placed(&held, sent_trips);
    for (outcome, (message, action)) in outcomes.iter_mut().zip(batch.iter().zip(&actions)) {
        if outcome.is_some() {
            continue;
        }
        let answer = answers
            .next()
            .unwrap_or_else(|| Outcome::Retry("no answer".to_owned()));
        *outcome = Some(match action {
            Some(Action::LoseAnswer) => {
                Outcome::Retry("the answer was lost (fault rule)".to_owned())
            }
            Some(Action::DeliverTwice) => {
                let again = std::slice::from_ref(message);
                let _ = send_plain(services, attempt_timeout, target, again, deliveries).await;
                answer
            }
            _ => answer,
        });
    }
    let outcomes = outcomes
        .into_iter()
        .map(|outcome| outcome.unwrap_or_else(|| Outcome::Retry("no answer".to_owned())))
        .collect();
    (outcomes, actions, trips)
}

/// The fault a rule injects into a message this bureau sends, noted in its transfer's history.
async fn sent_fault(services: &Services, message: &OutboxMessage) -> Option<Action> {
    let document = if services.faults.wants_certno() || services.faults.wants_sender() {
        services.document_of(&message.transfer_id).await
    } else {
        None
    };
    let sender = document
        .as_ref()
        .map_or("", |document| match document.state.side() {
            yibao_domain::transfer::Side::Out => &document.trafout_admdvs,
            yibao_domain::transfer::Side::In => &document.trafin_admdvs,
        });
    let seen = Seen {
        direction: Direction::Sending,
        kind: &message.kind,
        sender,
        receiver: &message.peer,
        transfer_id: &message.transfer_id,
        msgid: &message.msgid,
        attempt: message.attempts.saturating_add(1),
        certno: document.as_ref().map(|document| document.certno.as_str()),
    };
    let injected = services.faults.decide(&seen)?;
    let note = injected.note(Direction::Sending);
    services.note_fault(&message.transfer_id, note).await;
    Some(injected.action)
}

/// What a fault on a sent message decides before sending: the message's outcome, if the fault
/// answers for it (it is then not sent); a delay is waited out here and the message goes on.
async fn early_outcome(action: Option<&Action>, attempt_timeout: Duration) -> Option<Outcome> {
    let fault = |what: &str| Some(Outcome::Retry(format!("{what} (fault rule)")));
    match action? {
        Action::Delay(wait) => {
            tokio::time::sleep(*wait).await;
            None
        }
        Action::Reorder(_) => fault("held back while later messages pass"),
        Action::Status(code, text, _) => Some(failed(&tonic::Status::new(*code, text.clone()))),
        Action::Infcode(code, text) => Some(Outcome::Park(format!(
            "infcode {code}: {text} (fault rule)"
        ))),
        Action::NeverAnswer => {
            tokio::time::sleep(attempt_timeout).await;
            fault("never answered")
        }
        Action::ResetConnection => fault("connection reset"),
        Action::BankFail => fault("the bank gateway failed"),
        Action::BankDelay => fault("the bank gateway answers later"),
        Action::LoseAnswer | Action::DeliverTwice => None,
    }
}

/// Sends a batch as it is.
async fn send_plain(
    services: &Services,
    attempt_timeout: Duration,
    target: Target,
    batch: &[OutboxMessage],
    deliveries: &Deliveries,
) -> (Vec<Outcome>, RoundTrips) {
    if batch.is_empty() {
        return (Vec::new(), RoundTrips::None);
    }
    match target {
        Target::TransferOut => {
            send_to_transfer_out(services, attempt_timeout, batch, deliveries).await
        }
        Target::TransferIn => {
            send_to_transfer_in(services, attempt_timeout, batch, deliveries).await
        }
        Target::Bank => {
            let outcomes = batch
                .iter()
                .map(|message| pay_out(services, message))
                .collect();
            (outcomes, RoundTrips::None)
        }
        Target::TransferOutQuery => {
            let mut outcomes = Vec::with_capacity(batch.len());
            let mut trips = Vec::with_capacity(batch.len());
            for message in batch {
                let contexts = deliveries.of_each([message]);
                let (outcome, trip) = if Kind::parse(&message.kind) == Some(Kind::ReturnRemittance)
                {
                    // The returned remittance (infno 9107).
                    let send = |mut client: TransferOutPlatformServiceClient<_>, call| async move {
                        client.return_remittance(call).await
                    };
                    let read = |response| return_acknowledged(&response);
                    one_to_transfer_out(services, attempt_timeout, message, &contexts, send, read)
                        .await
                } else {
                    let send = |mut client: TransferOutPlatformServiceClient<_>, call| async move {
                        client.query_transfer_out(call).await
                    };
                    one_to_transfer_out(
                        services,
                        attempt_timeout,
                        message,
                        &contexts,
                        send,
                        transfer_out_said,
                    )
                    .await
                };
                outcomes.push(outcome);
                trips.push(trip);
            }
            (outcomes, RoundTrips::Each(trips))
        }
    }
}

/// One message to the transfer-out bureau through a single-message RPC (a query, a returned
/// remittance): `send` makes the call, `read` reads the answer; with its round trip, when it
/// was sent.
async fn one_to_transfer_out<Req, Resp, Fut>(
    services: &Services,
    timeout: Duration,
    message: &OutboxMessage,
    contexts: &[Context],
    send: impl FnOnce(
        TransferOutPlatformServiceClient<tonic::transport::Channel>,
        tonic::Request<Req>,
    ) -> Fut,
    read: impl FnOnce(Resp) -> Outcome,
) -> (Outcome, Option<Trip>)
where
    Req: Message + Default,
    Fut: std::future::Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
{
    let request = match decoded::<Req>(message) {
        Ok(request) => request,
        Err(outcome) => return (outcome, None),
    };
    let peer = services.peer_for(&message.peer);
    let channel = match peer.channel() {
        Ok(channel) => channel,
        Err(status) => return (failed(&status), None),
    };
    let client = TransferOutPlatformServiceClient::new(channel);
    let started = Instant::now();
    let answer = attempt(timeout, request, contexts, |call| send(client, call)).await;
    let trip = Some(Trip::since(started));
    let outcome = match answer {
        Ok(response) => {
            peer.reachable();
            read(response)
        }
        Err(status) => all_failed(peer, &status, 1)
            .pop()
            .unwrap_or_else(|| failed(&status)),
    };
    (outcome, trip)
}

/// The transfer-out bureau's answer to a returned remittance: taken note of, or refused.
pub(crate) fn return_acknowledged(response: &platform::ReturnRemittanceResponse) -> Outcome {
    match failed_reply(response.reply.as_ref()) {
        Some(failure) => Outcome::Park(failure),
        None => Outcome::Answered(Answer::ReturnAcknowledged),
    }
}

/// The transfer-out bureau's answer to a query, as this bureau reads it.
pub(crate) fn transfer_out_said(response: platform::QueryTransferOutResponse) -> Outcome {
    // A bureau that does not host the transfer-out region (1002) never took a request for it
    // either: its admission refuses before anything is written. Both mean "not known there".
    let unknown = response.reply.as_ref().is_some_and(|reply| {
        matches!(
            reply.infcode,
            crate::inbox::infcode::UNKNOWN_TRANSFER | crate::inbox::infcode::WRONG_RECEIVER
        )
    });
    if unknown {
        return Outcome::Answered(Answer::TransferOutSays(TransferOutView::of(None)));
    }
    if let Some(failure) = failed_reply(response.reply.as_ref()) {
        return Outcome::Park(failure);
    }
    match response.transfer.as_ref().map(convert::snapshot_stage) {
        Some(Some(stage)) => {
            Outcome::Answered(Answer::TransferOutSays(TransferOutView::of(Some(stage))))
        }
        Some(None) => Outcome::Park("the answer's state is not one this bureau knows".to_owned()),
        None => Outcome::Park("the answer carried no transfer".to_owned()),
    }
}

/// The peer reaching the bureau a batch goes to (the dispatcher groups a batch by bureau, so
/// its first message's receiver speaks for all).
fn peer_of<'a>(services: &'a Services, batch: &[OutboxMessage]) -> &'a Peer {
    services.peer_for(batch.first().map_or("", |message| message.peer.as_str()))
}

/// The outcome of every message of a batch whose round trip failed as a whole.
fn all_failed(peer: &Peer, status: &tonic::Status, count: usize) -> Vec<Outcome> {
    if status.code() == tonic::Code::Unavailable {
        peer.unreachable();
    }
    (0..count).map(|_| failed(status)).collect()
}

/// A failed call: retried when retrying may help, else parked.
pub(crate) fn failed(status: &tonic::Status) -> Outcome {
    let text = format!(
        "{:?}: {}",
        status.code(),
        crate::convert::peer_text(status.message())
    );
    if is_retryable(status) {
        Outcome::Retry(text)
    } else {
        Outcome::Park(text)
    }
}

/// The outcome of a message the batch answered with a status.
fn failed_message(status: &platform::MessageStatus) -> Outcome {
    failed(&tonic::Status::new(
        tonic::Code::from_i32(status.code),
        status.message.clone(),
    ))
}

/// A stored payload, decoded; one that does not decode is parked.
fn decoded<M: Message + Default>(message: &OutboxMessage) -> Result<M, Outcome> {
    M::decode(message.payload.as_slice())
        .map_err(|_| Outcome::Park("the stored message does not decode".to_owned()))
}

/// The answers of one batch's messages, in order, and each message's own trip when they went
/// one RPC each (none: they went in one batch RPC, timed as a whole).
type Answered<A> = (Vec<A>, Option<Vec<Option<Trip>>>);

/// One batch round trip: `decode` each message (one that cannot be is parked, not sent),
/// `call` with the rest (none, no call), and `read` each answer into its message's outcome. A
/// failed call, or an answer count that does not match, decides for every message sent. The
/// round trips come back with the outcomes.
async fn exchange<M, A, Fut>(
    services: &Services,
    (batch, deliveries): (&[OutboxMessage], &Deliveries),
    decode: impl Fn(&OutboxMessage) -> Result<M, Outcome>,
    call: impl FnOnce(tonic::transport::Channel, Vec<M>, Vec<Context>) -> Fut,
    read: impl Fn(A) -> Outcome,
) -> (Vec<Outcome>, RoundTrips)
where
    Fut: std::future::Future<Output = Result<Answered<A>, tonic::Status>>,
{
    let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(batch.len());
    let mut wire = Vec::with_capacity(batch.len());
    let mut wired = Vec::with_capacity(batch.len());
    for message in batch {
        match decode(message) {
            Ok(item) => {
                wire.push(item);
                wired.push(message);
                outcomes.push(None);
            }
            Err(outcome) => outcomes.push(Some(outcome)),
        }
    }
    let contexts = deliveries.of_each(wired);
    let sent = wire.len();
    let mut trips = RoundTrips::None;
    if sent > 0 {
        let peer = peer_of(services, batch);
        let mut answers: Vec<Outcome> = match peer.channel() {
            // Not dialled (backing off): not another failure of the peer's.
            Err(status) => (0..sent).map(|_| failed(&status)).collect(),
            Ok(channel) => {
                let started = Instant::now();
                let answered = call(channel, wire, contexts).await;
                let whole = Trip::since(started);
                let (answered, each) = match answered {
                    Ok((answers, each)) => (Ok(answers), each),
                    Err(status) => (Err(status), None),
                };
                let held: Vec<bool> = outcomes.iter().map(Option::is_some).collect();
                trips = RoundTrips::placed(
                    &held,
                    each.map_or(RoundTrips::Batch(whole), RoundTrips::Each),
                );
                read_answers(peer, answered, sent, &read)
            }
        };
        answers.reverse();
        for outcome in outcomes.iter_mut().filter(|outcome| outcome.is_none()) {
            *outcome = answers.pop();
        }
    }
    let outcomes = outcomes
        .into_iter()
        .map(|outcome| outcome.unwrap_or_else(|| Outcome::Park("no answer".to_owned())))
        .collect();
    (outcomes, trips)
}

/// Each sent message's outcome from the batch's answers (`sent` of them, or the call's failure).
fn read_answers<A>(
    peer: &Peer,
    answered: Result<Vec<A>, tonic::Status>,
    sent: usize,
    read: impl Fn(A) -> Outcome,
) -> Vec<Outcome> {
    match answered {
        Ok(answers) if answers.len() == sent => {
            peer.reachable();
            answers.into_iter().map(read).collect()
        }
        Ok(answers) => {
            let problem = format!(
                "the batch's answer holds {} answers for {sent} messages",
                answers.len()
            );
            (0..sent).map(|_| Outcome::Park(problem.clone())).collect()
        }
        Err(status) => all_failed(peer, &status, sent),
    }
}

async fn send_to_transfer_out(
    services: &Services,
    timeout: Duration,
    batch: &[OutboxMessage],
    deliveries: &Deliveries,
) -> (Vec<Outcome>, RoundTrips) {
    use platform::transfer_out_answer::Answer as Wire;
    exchange(
        services,
        (batch, deliveries),
        decoded::<platform::RequestTransferOutRequest>,
        |channel, requests, contexts| async move {
            let mut client = TransferOutPlatformServiceClient::new(channel);
            if peer_of(services, batch).batches() == Batches::Unsupported {
                let one_by_one = requests_one_by_one(&mut client, timeout, requests, &contexts);
                return Ok(one_by_one.await);
            }
            let request = platform::SubmitTransferOutRequestsRequest {
                requests: requests.clone(),
            };
            let answered = attempt(timeout, request, &contexts, |call| {
                let mut client = client.clone();
                async move { client.submit_transfer_out_requests(call).await }
            })
            .await;
            match answered {
                Err(status) if status.code() == tonic::Code::Unimplemented => {
                    peer_of(services, batch).batches_unsupported();
                    let one_by_one = requests_one_by_one(&mut client, timeout, requests, &contexts);
                    Ok(one_by_one.await)
                }
                other => other.map(|response| (response.answers, None)),
            }
        },
        |answer: platform::TransferOutAnswer| match answer.answer {
            Some(Wire::Response(response)) => request_answered(response),
            Some(Wire::Failed(status)) => failed_message(&status),
            None => Outcome::Park("the answer was empty".to_owned()),
        },
    )
    .await
}

/// A stored transfer-in message as a batch item.
fn transfer_in_item(message: &OutboxMessage) -> Result<platform::TransferInMessage, Outcome> {
    use platform::transfer_in_message::Message as Wire;
    let wire = match Kind::parse(&message.kind) {
        Some(Kind::DeliverForm) => Wire::DeliverInsuranceRecord(decoded(message)?),
        Some(Kind::ConfirmSettlement) => Wire::ConfirmSettlement(decoded(message)?),
        Some(Kind::Abort) => Wire::AbortTransfer(decoded(message)?),
        Some(Kind::RemitBalance) => Wire::RemitBalance(decoded(message)?),
        _ => {
            let why = format!("unknown message kind {}", message.kind);
            return Err(Outcome::Park(why));
        }
    };
    Ok(platform::TransferInMessage {
        message: Some(wire),
    })
}

async fn send_to_transfer_in(
    services: &Services,
    timeout: Duration,
    batch: &[OutboxMessage],
    deliveries: &Deliveries,
) -> (Vec<Outcome>, RoundTrips) {
    use platform::transfer_in_answer::Answer as Wire;
    exchange(
        services,
        (batch, deliveries),
        transfer_in_item,
        |channel, messages, contexts| async move {
            let mut client = TransferInPlatformServiceClient::new(channel);
            if peer_of(services, batch).batches() == Batches::Unsupported {
                let one_by_one = messages_one_by_one(&mut client, timeout, messages, &contexts);
                return Ok(one_by_one.await);
            }
            let request = platform::SubmitTransferInMessagesRequest {
                messages: messages.clone(),
            };
            let answered = attempt(timeout, request, &contexts, |call| {
                let mut client = client.clone();
                async move { client.submit_transfer_in_messages(call).await }
            })
            .await;
            match answered {
                Err(status) if status.code() == tonic::Code::Unimplemented => {
                    peer_of(services, batch).batches_unsupported();
                    let one_by_one = messages_one_by_one(&mut client, timeout, messages, &contexts);
                    Ok(one_by_one.await)
                }
                other => other.map(|response| (response.answers, None)),
            }
        },
        |answer: platform::TransferInAnswer| match answer.answer {
            Some(Wire::DeliverInsuranceRecord(response)) => form_answered(response),
            Some(Wire::ConfirmSettlement(response)) => {
                match failed_reply(response.reply.as_ref()) {
                    Some(failure) => Outcome::Park(failure),
                    None => Outcome::Answered(Answer::SettlementAcknowledged),
                }
            }
            Some(Wire::AbortTransfer(response)) => abort_answered(response),
            Some(Wire::RemitBalance(response)) => remittance_answered(response),
            Some(Wire::Failed(status)) => failed_message(&status),
            None => Outcome::Park("the answer was empty".to_owned()),
        },
    )
    .await
}

/// Sends transfer requests one RPC each, to a peer that serves no batches (a team's own bureau
/// need implement only the single-message RPCs); each answer as a batch would have given it,
/// with each request's own round trip.
async fn requests_one_by_one(
    client: &mut TransferOutPlatformServiceClient<tonic::transport::Channel>,
    timeout: Duration,
    requests: Vec<platform::RequestTransferOutRequest>,
    contexts: &[Context],
) -> Answered<platform::TransferOutAnswer> {
    use platform::transfer_out_answer::Answer as Wire;
    let mut answers = Vec::with_capacity(requests.len());
    let mut trips = Vec::with_capacity(requests.len());
    for (index, request) in requests.into_iter().enumerate() {
        let started = Instant::now();
        let context = contexts.get(index..=index).unwrap_or_default();
        let answered = attempt(timeout, request, context, |call| {
            let mut client = client.clone();
            async move { client.request_transfer_out(call).await }
        })
        .await;
        trips.push(Some(Trip::since(started)));
        answers.push(platform::TransferOutAnswer {
            answer: Some(match answered {
                Ok(response) => Wire::Response(response),
                Err(status) => Wire::Failed(as_message_status(&status)),
            }),
        });
    }
    (answers, Some(trips))
}

/// Sends transfer-in messages one RPC each, as [`requests_one_by_one`] does.
async fn messages_one_by_one(
    client: &mut TransferInPlatformServiceClient<tonic::transport::Channel>,
    timeout: Duration,
    messages: Vec<platform::TransferInMessage>,
    contexts: &[Context],
) -> Answered<platform::TransferInAnswer> {
    use platform::transfer_in_answer::Answer as Wire;
    use platform::transfer_in_message::Message as Item;
    let mut answers = Vec::with_capacity(messages.len());
    let mut trips = Vec::with_capacity(messages.len());
    for (index, message) in messages.into_iter().enumerate() {
        let client = client.clone();
        let started = Instant::now();
        let context = contexts.get(index..=index).unwrap_or_default();
        let answer = match message.message {
            Some(Item::DeliverInsuranceRecord(form)) => attempt(timeout, form, context, |call| {
                let mut client = client.clone();
                async move { client.deliver_insurance_record(call).await }
            })
            .await
            .map(Wire::DeliverInsuranceRecord),
            Some(Item::ConfirmSettlement(settled)) => attempt(timeout, settled, context, |call| {
                let mut client = client.clone();
                async move { client.confirm_settlement(call).await }
            })
            .await
            .map(Wire::ConfirmSettlement),
            Some(Item::AbortTransfer(abort)) => attempt(timeout, abort, context, |call| {
                let mut client = client.clone();
                async move { client.abort_transfer(call).await }
            })
            .await
            .map(Wire::AbortTransfer),
            Some(Item::RemitBalance(remittance)) => attempt(timeout, remittance, context, |call| {
                let mut client = client.clone();
                async move { client.remit_balance(call).await }
            })
            .await
            .map(Wire::RemitBalance),
            None => Err(tonic::Status::invalid_argument("message: required")),
        };
        trips.push(Some(Trip::since(started)));
        answers.push(platform::TransferInAnswer {
            answer: Some(answer.unwrap_or_else(|status| Wire::Failed(as_message_status(&status)))),
        });
    }
    (answers, Some(trips))
}

/// A status as a batch answer carries it.
fn as_message_status(status: &tonic::Status) -> platform::MessageStatus {
    platform::MessageStatus {
        code: status.code() as i32,
        message: status.message().to_owned(),
    }
}

/// The transfer-out bureau's decision on a request.
pub(crate) fn request_answered(response: platform::RequestTransferOutResponse) -> Outcome {
    if let Some(failure) = failed_reply(response.reply.as_ref()) {
        return Outcome::Park(failure);
    }
    match response.decision {
        Some(decision) => Outcome::Answered(Answer::Decided(convert::decision(&decision))),
        None => Outcome::Park("the answer carried no decision".to_owned()),
    }
}

/// The transfer-in bureau's acknowledgement of a form: credited or refused.
pub(crate) fn form_answered(response: platform::DeliverInsuranceRecordResponse) -> Outcome {
    if let Some(failure) = failed_reply(response.reply.as_ref()) {
        return Outcome::Park(failure);
    }
    match response.acknowledgement.and_then(|ack| ack.outcome) {
        Some(outcome) => Outcome::Answered(Answer::FormAnswered(convert::form_outcome(&outcome))),
        None => Outcome::Park("the answer carried no outcome".to_owned()),
    }
}

/// The transfer-in bureau's answer to an abort: it had credited, or it never will.
pub(crate) fn abort_answered(response: platform::AbortTransferResponse) -> Outcome {
    if let Some(failure) = failed_reply(response.reply.as_ref()) {
        return Outcome::Park(failure);
    }
    Outcome::Answered(Answer::AbortAnswered(if response.credited {
        InCredit::Credited
    } else {
        InCredit::NotCredited
    }))
}

/// The transfer-in bureau's answer to a remittance: what it found against the form.
pub(crate) fn remittance_answered(response: platform::RemitBalanceResponse) -> Outcome {
    if let Some(failure) = failed_reply(response.reply.as_ref()) {
        return Outcome::Park(failure);
    }
    match convert::remittance_check(response.check) {
        Some(check) => Outcome::Answered(Answer::RemittanceChecked(check)),
        None => Outcome::Park("the answer to the remittance names no check".to_owned()),
    }
}

/// One payout through the bank gateway.
fn pay_out(services: &Services, message: &OutboxMessage) -> Outcome {
    if Kind::parse(&message.kind) != Some(Kind::BankPayout) {
        return Outcome::Park(format!("unknown message kind {}", message.kind));
    }
    let amount = std::str::from_utf8(&message.payload)
        .ok()
        .and_then(|text| text.parse::<u64>().ok());
    let Some(amount_cents) = amount else {
        return Outcome::Park("the stored payout amount does not decode".to_owned());
    };
    match services.bank.pay(&message.transfer_id, amount_cents) {
        Ok(()) => Outcome::Answered(Answer::BankPaid),
        Err(unavailable) => Outcome::Retry(unavailable.to_string()),
    }
}

/// One RPC attempt with the per-attempt deadline both as `grpc-timeout` (so the peer can give
/// up too) and as a local timeout (so a peer that never answers cannot hold the slot), and its
/// messages' trace contexts (`contexts`, in the request's order) in the metadata.
async fn attempt<Req, Resp, Fut>(
    timeout: Duration,
    request: Req,
    contexts: &[Context],
    send: impl FnOnce(tonic::Request<Req>) -> Fut,
) -> Result<Resp, tonic::Status>
where
    Fut: std::future::Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
{
    let mut call = tonic::Request::new(request);
    call.set_timeout(timeout);
    yibao_runtime::telemetry::inject_each(contexts, call.metadata_mut());
    let response = tokio::time::timeout(timeout, send(call))
        .await
        .map_err(|_| tonic::Status::deadline_exceeded("attempt timed out"))??;
    Ok(response.into_inner())
}

fn failed_reply(reply: Option<&platform::Reply>) -> Option<String> {
    match reply {
        Some(reply) if reply.infcode == 0 => None,
        Some(reply) => Some(format!(
            "infcode {}: {}",
            reply.infcode,
            crate::convert::peer_text(&reply.err_msg)
        )),
        None => Some("the answer carried no reply".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trip(millis: u64) -> Trip {
        Trip {
            took: Duration::from_millis(millis),
            ended: Instant::now(),
        }
    }

    #[test]
    fn a_batch_sent_whole_shares_its_trip_and_held_messages_have_none() {
        let all_sent = RoundTrips::placed(&[false, false], RoundTrips::Batch(trip(5)));
        assert!(matches!(all_sent, RoundTrips::Batch(_)), "{all_sent:?}");
        assert_eq!(
            all_sent.of(1).map(|t| t.took),
            Some(Duration::from_millis(5))
        );

        let one_held = RoundTrips::placed(&[false, true, false], RoundTrips::Batch(trip(5)));
        let took: Vec<_> = (0..3).map(|i| one_held.of(i).map(|t| t.took)).collect();
        let five = Some(Duration::from_millis(5));
        assert_eq!(took, [five, None, five]);
    }

    #[test]
    fn messages_sent_one_by_one_keep_their_own_trips_in_place() {
        let each = RoundTrips::Each(vec![Some(trip(1)), Some(trip(2))]);
        let placed = RoundTrips::placed(&[true, false, false], each);
        let took: Vec<_> = (0..4).map(|i| placed.of(i).map(|t| t.took)).collect();
        let ms = |n| Some(Duration::from_millis(n));
        assert_eq!(took, [None, ms(1), ms(2), None]);
        assert!(RoundTrips::None.of(0).is_none());
    }
}
