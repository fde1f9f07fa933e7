//! The platform API handlers (bureau ⇄ bureau). Each does three things: check the envelope
//! (admission), convert the body into domain values and run one driver step through the
//! exactly-once inbox, convert the answer back. The single-message RPCs and the batch RPCs run
//! the very same steps.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use opentelemetry::Context;
use prost::Message;
use tonic::{Request, Response, Status};
use yibao_domain::transfer::out_side::OutState;
use yibao_domain::transfer::{Initiator, TransferState};
use yibao_proto::platform::v1 as platform;
use yibao_proto::platform::v1::transfer_in_platform_service_server::TransferInPlatformService;
use yibao_proto::platform::v1::transfer_out_platform_service_server::TransferOutPlatformService;
use yibao_runtime::directory::BureauRole;

use crate::admission::{self, Caller, Denied, Minter, Parties};
use crate::convert;
use crate::error::Error;
use crate::exchanges::{Entry, Outcome as Happened, Way};
use crate::faults::{self, Action, Direction, Seen};
use crate::inbox::{self, Admitted, Refusal, Slot};
use crate::measure;
use crate::messages::{
    Addressed, Decision, InsuranceForm, Kind, Remittance, RemittanceReturn, TransferApplication,
};
use crate::record::Step;
use crate::services::Services;
use crate::transfer_out::{self, Opened};
use crate::{trace, transfer_in};

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
trait PlatformMessage: Message + Clone + Send + Sized + 'static {
    type Answer: Message + Default + Send + 'static;
    type Body: Send + 'static;
    /// The kind of message the rpc carries (its `infno`).
    const KIND: Kind;
    /// The role whose bureaus send it.
    const SENDER: BureauRole;
    /// Who may have minted its transfer id.
    const MINTER: Minter = Minter::EitherParty;
    fn envelope(&self) -> Option<&platform::Envelope>;
    /// The body's regions that must be the envelope's sender and receiver, as (field, code).
    fn body_parties(&self) -> Option<[(&'static str, &str); 2]> {
        None
    }
    /// The transfer id the body names, which the envelope's must equal.
    fn body_transfer_id(&self) -> Option<&str>;
    /// The person the body names, if it names one (for fault rules that match a person).
    fn body_certno(&self) -> Option<&str> {
        None
    }
    fn refused(refusal: &Refusal, refmsgid: &str) -> Self::Answer;
    /// The infcode an answer carries (0 when it carries no reply).
    fn infcode(answer: &Self::Answer) -> i32;
    /// The body in domain values; `received_at` is when the message arrived.
    fn body(&self, received_at: DateTime<Utc>) -> Result<Self::Body, Error>;
    fn step(body: Self::Body, step: &mut Step<'_>, refmsgid: &str) -> Result<Self::Answer, Error>;
}

/// The store step of an admitted message, given the reference the inbox minted for its answer:
/// its converted body's step, or — for a body that did not convert — the refusal, recorded with
/// the msgid like any answer (so that a later message under the same msgid with another body
/// is a modified request, as for any message).
fn work<M: PlatformMessage>(
    body: Result<M::Body, Error>,
) -> impl FnOnce(&mut Step<'_>, &str) -> Result<M::Answer, Error> {
    move |step, reference| M::step(body?, step, reference)
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

/// Why a message was not admitted: an answer with a non-zero infcode, or a gRPC status.
enum NotAdmitted<A> {
    Answer(A),
    Status(Status),
}

/// Why an envelope was not admitted: a refusal (with the `inf_refmsgid` it is answered under),
/// or a gRPC status.
enum Blocked {
    Refused(Refusal, String),
    Denied(Status),
}

/// What an rpc expects of its envelopes.
#[derive(Clone, Copy)]
struct Expected<'a> {
    infno: &'a str,
    sender_role: BureauRole,
    minter: Minter,
    /// The transfer id the body names, which the envelope's must equal.
    body_transfer_id: Option<&'a str>,
}

/// The envelope's own shape: a msgid of 30 letters and digits, and fields within their bounds.
fn check_shape(envelope: &platform::Envelope) -> Result<(), Blocked> {
    let msgid = envelope.msgid.as_str();
    if msgid.len() != 30 || !msgid.bytes().all(|b| b.is_ascii_alphanumeric()) {
        let rule = "envelope.msgid: must be 30 ASCII letters and digits".to_owned();
        return Err(Blocked::Refused(Refusal::Invalid(rule), String::new()));
    }
    let bounds = [
        ("envelope.infno", &envelope.infno, convert::bound::INFNO),
        (
            "envelope.sender_region_code",
            &envelope.sender_region_code,
            convert::bound::REGION_CODE,
        ),
        (
            "envelope.transfer_id",
            &envelope.transfer_id,
            convert::bound::TRANSFER_ID,
        ),
    ];
    for (field, text, max_chars) in bounds {
        if let Err(error) = convert::bounded(field, text, max_chars) {
            let rule = error.to_string();
            return Err(Blocked::Refused(Refusal::Invalid(rule), msgid.to_owned()));
        }
    }
    Ok(())
}

/// Checks an envelope and its parties; nothing here touches the store.
fn check_envelope<'e>(
    services: &Services,
    caller: &Caller,
    envelope: Option<&'e platform::Envelope>,
    expected: Expected<'_>,
) -> Result<&'e platform::Envelope, Blocked> {
    let refuse = |refusal: Refusal, refmsgid: &str| Blocked::Refused(refusal, refmsgid.to_owned());
    let Some(envelope) = envelope else {
        return Err(refuse(
            Refusal::Invalid("envelope: required".to_owned()),
            "",
        ));
    };
    check_shape(envelope)?;
    let msgid = envelope.msgid.as_str();
    let receiver = convert::region(
        "envelope.receiver_region_code",
        &envelope.receiver_region_code,
    )
    .ok()
    .filter(|code| services.site.hosts(*code));
    let Some(receiver) = receiver else {
        let rule = "envelope.receiver_region_code: not hosted by this bureau".to_owned();
        return Err(refuse(Refusal::WrongReceiver(rule), msgid));
    };
    if envelope.infno != expected.infno {
        let rule = format!(
            "envelope.infno: {:?} does not belong to this rpc, which takes {}",
            envelope.infno, expected.infno
        );
        return Err(refuse(Refusal::WrongTransactionCode(rule), msgid));
    }
    if expected
        .body_transfer_id
        .is_some_and(|body| body != envelope.transfer_id)
    {
        let rule = "envelope.transfer_id: must equal the transfer_id in the body".to_owned();
        return Err(refuse(Refusal::Invalid(rule), msgid));
    }
    let parties = Parties {
        sender_role: expected.sender_role,
        minted_by: expected.minter,
        msgid,
        sender: &envelope.sender_region_code,
        receiver,
        transfer_id: &envelope.transfer_id,
    };
    match admission::check(&services.site, caller, &parties) {
        Ok(_) => Ok(envelope),
        Err(Denied::NotCertified(rule)) => Err(Blocked::Denied(Status::permission_denied(rule))),
        Err(Denied::Refused(refusal)) => Err(refuse(refusal, msgid)),
    }
}

/// Checks a message's envelope, its parties and the body's regions; nothing here touches the
/// store.
fn admit<M: PlatformMessage>(
    services: &Services,
    caller: &Caller,
    request: &M,
) -> Result<Admitted, NotAdmitted<M::Answer>> {
    let expected = Expected {
        infno: M::KIND.infno(),
        sender_role: M::SENDER,
        minter: M::MINTER,
        body_transfer_id: request.body_transfer_id(),
    };
    let envelope = match check_envelope(services, caller, request.envelope(), expected) {
        Ok(envelope) => envelope,
        Err(Blocked::Refused(refusal, refmsgid)) => {
            return Err(NotAdmitted::Answer(M::refused(&refusal, &refmsgid)));
        }
        Err(Blocked::Denied(status)) => return Err(NotAdmitted::Status(status)),
    };
    let envelope_parties = [
        (
            "envelope.sender_region_code",
            envelope.sender_region_code.as_str(),
        ),
        (
            "envelope.receiver_region_code",
            envelope.receiver_region_code.as_str(),
        ),
    ];
    for ((field, code), (envelope_field, expected)) in request
        .body_parties()
        .into_iter()
        .flatten()
        .zip(envelope_parties)
    {
        if code != expected {
            let refusal = Refusal::Invalid(format!("{field}: must equal {envelope_field}"));
            return Err(NotAdmitted::Answer(M::refused(&refusal, &envelope.msgid)));
        }
    }
    Ok(Admitted {
        msgid: envelope.msgid.clone(),
        body_sha256: inbox::body_hash(request),
        transfer_id: envelope.transfer_id.clone(),
        infno: envelope.infno.clone(),
    })
}

/// Who called, as the platform guard recorded it; a request the guard did not see is refused.
fn caller_of<T>(request: &Request<T>) -> Result<Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::internal("the platform guard did not see this call"))
}

/// Runs one message once per msgid, with the fault a rule injects into it, if any.
async fn single<M: PlatformMessage>(
    services: &Services,
    request: Request<M>,
) -> Result<Response<M::Answer>, Status> {
    let entry = request
        .get_ref()
        .envelope()
        .map(|envelope| received_entry(services, M::KIND, envelope));
    let mut fault = None;
    let result = answer_single(services, request, &mut fault).await;
    let outcome = match &result {
        Ok(response) => Happened::Infcode(M::infcode(response.get_ref())),
        Err(status) => Happened::Failed(status_text(status)),
    };
    keep(services, entry, outcome, fault.as_ref());
    result
}

/// [`single`]'s answer; the fault a rule injected comes back in `fault`.
async fn answer_single<M: PlatformMessage>(
    services: &Services,
    request: Request<M>,
    fault: &mut Option<Action>,
) -> Result<Response<M::Answer>, Status> {
    let caller = caller_of(&request)?;
    let hold = caller_deadline(&request);
    let parent = yibao_runtime::telemetry::extract(request.metadata());
    let request = request.into_inner();
    let admitted = match admit(services, &caller, &request) {
        Ok(admitted) => admitted,
        Err(NotAdmitted::Answer(answer)) => return Ok(Response::new(answer)),
        Err(NotAdmitted::Status(status)) => return Err(status),
    };
    *fault = received_fault(services, &request).await;
    let action = fault.clone();
    if let Some(early) = before_processing::<M>(action.as_ref(), hold, &admitted.msgid).await {
        return early.map(Response::new);
    }
    let body = request.body(services.clock.now());
    let again = admitted.clone();
    let span = trace::received(M::KIND, &admitted.transfer_id, &admitted.msgid, parent);
    let answer = inbox::once(
        services,
        admitted,
        span.clone(),
        M::refused,
        work::<M>(body),
    );
    let answer = answer.await?;
    match action {
        Some(Action::LoseAnswer) => Err(lost_answer()),
        Some(Action::DeliverTwice) => {
            let body = request.body(services.clock.now());
            let answer = inbox::once(services, again, span, M::refused, work::<M>(body));
            Ok(Response::new(answer.await?))
        }
        _ => Ok(Response::new(answer)),
    }
}

/// Keeps the messages of a transfer-in batch in the message journal, with their answers.
fn journal_transfer_in_batch(
    services: &Services,
    entries: Vec<Option<Entry>>,
    answers: &[platform::TransferInAnswer],
    after: &After<platform::TransferInAnswer>,
) {
    use platform::transfer_in_answer::Answer;
    for (index, (entry, answer)) in entries.into_iter().zip(answers).enumerate() {
        let outcome = match &answer.answer {
            Some(Answer::DeliverInsuranceRecord(r)) => reply_infcode(r.reply.as_ref()),
            Some(Answer::ConfirmSettlement(r)) => reply_infcode(r.reply.as_ref()),
            Some(Answer::AbortTransfer(r)) => reply_infcode(r.reply.as_ref()),
            Some(Answer::RemitBalance(r)) => reply_infcode(r.reply.as_ref()),
            Some(Answer::Failed(status)) => message_status_text(status),
            None => Happened::Failed(String::new()),
        };
        keep(services, entry, outcome, after.fault_of(index));
    }
}

/// The journal entry of one message of a transfer-in batch (its outcome to come).
fn batch_item_entry(services: &Services, item: &platform::TransferInMessage) -> Option<Entry> {
    use platform::transfer_in_message::Message as Item;
    let (kind, envelope) = match item.message.as_ref()? {
        Item::DeliverInsuranceRecord(r) => (Kind::DeliverForm, r.envelope.as_ref()?),
        Item::ConfirmSettlement(r) => (Kind::ConfirmSettlement, r.envelope.as_ref()?),
        Item::AbortTransfer(r) => (Kind::Abort, r.envelope.as_ref()?),
        Item::RemitBalance(r) => (Kind::RemitBalance, r.envelope.as_ref()?),
    };
    Some(received_entry(services, kind, envelope))
}

/// The infcode of a reply, as a journal outcome.
fn reply_infcode(reply: Option<&platform::Reply>) -> Happened {
    Happened::Infcode(reply.map_or(0, |reply| reply.infcode))
}

/// A batch answer's status, as a journal outcome.
fn message_status_text(status: &platform::MessageStatus) -> Happened {
    Happened::Failed(format!("status {}: {}", status.code, status.message))
}

/// A status, in words.
fn status_text(status: &Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

/// The journal entry of a received message, taken before the message is consumed (its
/// outcome and fault to come).
fn received_entry(services: &Services, kind: Kind, envelope: &platform::Envelope) -> Entry {
    Entry {
        at: services.clock.now(),
        way: Way::Received,
        kind: kind.as_str(),
        msgid: envelope.msgid.clone(),
        sender: envelope.sender_region_code.clone(),
        receiver: envelope.receiver_region_code.clone(),
        transfer_id: envelope.transfer_id.clone(),
        attempt: 0,
        outcome: Happened::Answered,
        fault: String::new(),
        round_trip: None,
    }
}

/// Keeps a received message's entry in the message journal, with what came of it.
fn keep(services: &Services, entry: Option<Entry>, outcome: Happened, fault: Option<&Action>) {
    if let Some(mut entry) = entry {
        let infcode = match &outcome {
            Happened::Infcode(code) => measure::infcode_label(*code),
            Happened::Answered | Happened::Failed(_) => measure::NO_REPLY,
        };
        measure::platform_message(measure::Direction::Received, entry.kind, infcode);
        entry.outcome = outcome;
        if let Some(action) = fault {
            entry.fault = format!("{action:?}");
        }
        services.exchanges.keep(entry);
    }
}

/// The fault a rule injects into a received message, noted in its transfer's history.
async fn received_fault<M: PlatformMessage>(services: &Services, request: &M) -> Option<Action> {
    let envelope = request.envelope()?;
    let looked_up = match request.body_certno() {
        None if services.faults.wants_certno() => services.certno_of(&envelope.transfer_id).await,
        _ => None,
    };
    let seen = Seen {
        direction: Direction::Receiving,
        kind: M::KIND.as_str(),
        sender: &envelope.sender_region_code,
        receiver: &envelope.receiver_region_code,
        transfer_id: &envelope.transfer_id,
        msgid: &envelope.msgid,
        attempt: 0,
        certno: request.body_certno().or(looked_up.as_deref()),
    };
    let injected = services.faults.decide(&seen)?;
    let note = injected.note(Direction::Receiving);
    services.note_fault(&envelope.transfer_id, note).await;
    Some(injected.action)
}

/// What a fault does before the message is processed: waits (and goes on), or answers in its
/// place.
async fn before_processing<M: PlatformMessage>(
    action: Option<&Action>,
    hold: Duration,
    msgid: &str,
) -> Option<Result<M::Answer, Status>> {
    match action? {
        Action::Delay(wait) | Action::Reorder(wait) => {
            tokio::time::sleep(*wait).await;
            None
        }
        Action::Status(code, message, details) => Some(Err(Status::with_details(
            *code,
            message.clone(),
            tonic::codegen::Bytes::from(details.clone()),
        ))),
        Action::Infcode(code, message) => {
            let refusal = Refusal::Injected(*code, message.clone());
            Some(Ok(M::refused(&refusal, msgid)))
        }
        Action::NeverAnswer => {
            tokio::time::sleep(hold).await;
            Some(Err(Status::deadline_exceeded(
                "never answered (fault rule)",
            )))
        }
        Action::ResetConnection => Some(Err(Status::unavailable("connection reset (fault rule)"))),
        Action::LoseAnswer | Action::DeliverTwice | Action::BankFail | Action::BankDelay => None,
    }
}

/// The status a lost answer leaves the sender with.
fn lost_answer() -> Status {
    Status::unavailable("the answer was lost (fault rule); the message was applied")
}

/// How long a never-answering fault holds a call: the caller's deadline (`grpc-timeout`), at
/// most [`faults::NEVER_ANSWER_HOLD`].
fn caller_deadline<T>(request: &Request<T>) -> Duration {
    let timeout = request
        .metadata()
        .get("grpc-timeout")
        .and_then(|value| value.to_str().ok())
        .and_then(|text| {
            let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
            let amount: u64 = digits.parse().ok()?;
            Some(match unit {
                "H" => Duration::from_secs(amount.saturating_mul(3600)),
                "M" => Duration::from_secs(amount.saturating_mul(60)),
                "S" => Duration::from_secs(amount),
                "m" => Duration::from_millis(amount),
                "u" => Duration::from_micros(amount),
                "n" => Duration::from_nanos(amount),
                _ => return None,
            })
        });
    timeout.map_or(faults::NEVER_ANSWER_HOLD, |timeout| {
        timeout.min(faults::NEVER_ANSWER_HOLD)
    })
}

/// Admits one message of a batch, its answer wrapped as `A`; its step runs in a span of its
/// own, a child of `parent` (the sender's context for this message).
fn slot<M: PlatformMessage, A: 'static>(
    services: &Services,
    caller: &Caller,
    (request, parent): (M, Context),
    wrap: fn(M::Answer) -> A,
) -> Slot<A> {
    match admit(services, caller, &request) {
        Err(NotAdmitted::Answer(answer)) => Slot::Ready(wrap(answer)),
        Err(NotAdmitted::Status(status)) => Slot::Failed(status),
        Ok(admitted) => {
            let body = request.body(services.clock.now());
            let work = work::<M>(body);
            let span = trace::received(M::KIND, &admitted.transfer_id, &admitted.msgid, parent);
            Slot::Pending(Box::new(crate::record::within(span, move |step| {
                inbox::receive(step, &admitted, M::refused, work).map(wrap)
            })))
        }
    }
}

/// What a batch's faults do after it ran: answers to lose, and second deliveries to run (whose
/// answers are dropped: the first delivery's answer stands).
struct After<A> {
    lost: Vec<usize>,
    again: Vec<Slot<A>>,
    /// The faults injected, by message index (for the message journal).
    faults: Vec<(usize, Action)>,
}

impl<A> Default for After<A> {
    fn default() -> Self {
        Self {
            lost: Vec::new(),
            again: Vec::new(),
            faults: Vec::new(),
        }
    }
}

impl<A> After<A> {
    /// The fault injected into message `index`, if any.
    fn fault_of(&self, index: usize) -> Option<&Action> {
        self.faults
            .iter()
            .find(|(at, _)| *at == index)
            .map(|(_, action)| action)
    }
}

/// One message of a batch, with the fault a rule injects into it (see [`single`]).
async fn faulted_slot<M: PlatformMessage, A: 'static>(
    services: &Services,
    caller: &Caller,
    hold: Duration,
    ((index, parent), request): ((usize, Context), M),
    wrap: fn(M::Answer) -> A,
    after: &mut After<A>,
) -> Slot<A> {
    if services.faults.is_empty() || admit(services, caller, &request).is_err() {
        return slot(services, caller, (request, parent), wrap);
    }
    let action = received_fault(services, &request).await;
    if let Some(action) = &action {
        after.faults.push((index, action.clone()));
    }
    let msgid = request
        .envelope()
        .map(|envelope| envelope.msgid.clone())
        .unwrap_or_default();
    match before_processing::<M>(action.as_ref(), hold, &msgid).await {
        Some(Ok(answer)) => return Slot::Ready(wrap(answer)),
        Some(Err(status)) => return Slot::Failed(status),
        None => {}
    }
    match action {
        Some(Action::LoseAnswer) => after.lost.push(index),
        Some(Action::DeliverTwice) => {
            let again = (request.clone(), parent.clone());
            after.again.push(slot(services, caller, again, wrap));
        }
        _ => {}
    }
    slot(services, caller, (request, parent), wrap)
}

/// Runs a batch's slots and then its faults' after-effects.
async fn run_faulted<A: Send + 'static>(
    services: &Services,
    mut slots: Vec<Slot<A>>,
    after: &mut After<A>,
    failed: fn(Status) -> A,
) -> Result<Vec<A>, Status> {
    let originals = slots.len();
    slots.append(&mut after.again);
    let mut answers = inbox::run_batch(services, slots, failed).await?;
    answers.truncate(originals);
    for &index in &after.lost {
        if let Some(answer) = answers.get_mut(index) {
            *answer = failed(lost_answer());
        }
    }
    Ok(answers)
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
    fn infcode(answer: &Self::Answer) -> i32 {
        answer.reply.as_ref().map_or(0, |reply| reply.infcode)
    }
    const KIND: Kind = Kind::RequestTransferOut;
    const SENDER: BureauRole = BureauRole::TransferIn;
    const MINTER: Minter = Minter::Sender;
    fn envelope(&self) -> Option<&platform::Envelope> {
        self.envelope.as_ref()
    }
    fn body_parties(&self) -> Option<[(&'static str, &str); 2]> {
        self.application.as_ref().map(|a| {
            [
                ("application.trafin_admdvs", a.trafin_admdvs.as_str()),
                ("application.trafout_admdvs", a.trafout_admdvs.as_str()),
            ]
        })
    }
    fn body_transfer_id(&self) -> Option<&str> {
        self.application.as_ref().map(|a| a.transfer_id.as_str())
    }
    fn body_certno(&self) -> Option<&str> {
        self.application.as_ref().map(|a| a.certno.as_str())
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
                Opened::Accepted(document) => {
                    let transfer_out_due_on = step
                        .ctx
                        .site
                        .deadlines(document.applied_on, None)
                        .map(|d| d.transfer_out_due.due_on);
                    match document.state {
                        TransferState::Out(OutState::UnderReview { due_on }) => {
                            Decision::UnderReview {
                                received_at: document.created_at,
                                decided_on: Some(due_on),
                                transfer_out_due_on,
                            }
                        }
                        _ => Decision::Accepted {
                            accepted_at: document.created_at,
                            transfer_out_due_on,
                        },
                    }
                }
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
    fn infcode(answer: &Self::Answer) -> i32 {
        answer.reply.as_ref().map_or(0, |reply| reply.infcode)
    }
    const KIND: Kind = Kind::DeliverForm;
    const SENDER: BureauRole = BureauRole::TransferOut;
    fn envelope(&self) -> Option<&platform::Envelope> {
        self.envelope.as_ref()
    }
    fn body_parties(&self) -> Option<[(&'static str, &str); 2]> {
        self.form.as_ref().map(|f| {
            [
                ("form.trafout_admdvs", f.trafout_admdvs.as_str()),
                ("form.trafin_admdvs", f.trafin_admdvs.as_str()),
            ]
        })
    }
    fn body_transfer_id(&self) -> Option<&str> {
        self.form.as_ref().map(|f| f.transfer_id.as_str())
    }
    fn body_certno(&self) -> Option<&str> {
        self.form.as_ref().map(|f| f.certno.as_str())
    }
    fn refused(refusal: &Refusal, refmsgid: &str) -> Self::Answer {
        Self::Answer {
            reply: refusal_reply(refusal, refmsgid),
            acknowledgement: None,
        }
    }
    type Body = InsuranceForm;
    fn body(&self, received_at: DateTime<Utc>) -> Result<Self::Body, Error> {
        convert::form(self.form.as_ref(), received_at)
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
    fn infcode(answer: &Self::Answer) -> i32 {
        answer.reply.as_ref().map_or(0, |reply| reply.infcode)
    }
    const KIND: Kind = Kind::ConfirmSettlement;
    const SENDER: BureauRole = BureauRole::TransferOut;
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
    type Body = Addressed;
    fn body(&self, _: DateTime<Utc>) -> Result<Self::Body, Error> {
        convert::addressed(self.envelope.as_ref(), &self.transfer_id)
    }
    fn step(
        message: Self::Body,
        step: &mut Step<'_>,
        refmsgid: &str,
    ) -> Result<Self::Answer, Error> {
        transfer_in::settlement_confirmed(step, &message)?;
        Ok(Self::Answer {
            reply: ok(refmsgid),
        })
    }
}

/// infno 9104 at the transfer-in bureau: abort unless credited, and say which.
impl PlatformMessage for platform::AbortTransferRequest {
    type Answer = platform::AbortTransferResponse;
    fn infcode(answer: &Self::Answer) -> i32 {
        answer.reply.as_ref().map_or(0, |reply| reply.infcode)
    }
    const KIND: Kind = Kind::Abort;
    const SENDER: BureauRole = BureauRole::TransferOut;
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
    type Body = Addressed;
    fn body(&self, _: DateTime<Utc>) -> Result<Self::Body, Error> {
        convert::bounded("reason", &self.reason, convert::bound::TEXT)?;
        convert::addressed(self.envelope.as_ref(), &self.transfer_id)
    }
    fn step(
        message: Self::Body,
        step: &mut Step<'_>,
        refmsgid: &str,
    ) -> Result<Self::Answer, Error> {
        let (_, credit) = transfer_in::abort(step, &message)?;
        Ok(Self::Answer {
            reply: ok(refmsgid),
            credited: credit.is_some(),
            credit: credit.as_ref().map(convert::wire_credit),
        })
    }
}

/// infno 9106 at the transfer-in bureau: a remittance of a form's balance (the fund leg),
/// checked against the form and credited when it matches.
impl PlatformMessage for platform::RemitBalanceRequest {
    type Answer = platform::RemitBalanceResponse;
    fn infcode(answer: &Self::Answer) -> i32 {
        answer.reply.as_ref().map_or(0, |reply| reply.infcode)
    }
    const KIND: Kind = Kind::RemitBalance;
    const SENDER: BureauRole = BureauRole::TransferOut;
    fn envelope(&self) -> Option<&platform::Envelope> {
        self.envelope.as_ref()
    }
    fn body_transfer_id(&self) -> Option<&str> {
        Some(self.transfer_id.as_str())
    }
    fn refused(refusal: &Refusal, refmsgid: &str) -> Self::Answer {
        Self::Answer {
            reply: refusal_reply(refusal, refmsgid),
            check: platform::RemittanceCheck::Unspecified as i32,
        }
    }
    type Body = Remittance;
    fn body(&self, _: DateTime<Utc>) -> Result<Self::Body, Error> {
        convert::remittance(self)
    }
    fn step(
        remittance: Self::Body,
        step: &mut Step<'_>,
        refmsgid: &str,
    ) -> Result<Self::Answer, Error> {
        let check = transfer_in::receive_remittance(step, &remittance)?;
        Ok(Self::Answer {
            reply: ok(refmsgid),
            check: convert::wire_remittance_check(check) as i32,
        })
    }
}

/// infno 9107 at the transfer-out bureau: a refused remittance came back to its fund; the
/// balance is remitted again when it was the latest remittance.
impl PlatformMessage for platform::ReturnRemittanceRequest {
    type Answer = platform::ReturnRemittanceResponse;
    fn infcode(answer: &Self::Answer) -> i32 {
        answer.reply.as_ref().map_or(0, |reply| reply.infcode)
    }
    const KIND: Kind = Kind::ReturnRemittance;
    const SENDER: BureauRole = BureauRole::TransferIn;
    fn envelope(&self) -> Option<&platform::Envelope> {
        self.envelope.as_ref()
    }
    fn body_transfer_id(&self) -> Option<&str> {
        Some(self.transfer_id.as_str())
    }
    fn refused(refusal: &Refusal, refmsgid: &str) -> Self::Answer {
        Self::Answer {
            reply: refusal_reply(refusal, refmsgid),
            remitting_again: false,
        }
    }
    type Body = RemittanceReturn;
    fn body(&self, _: DateTime<Utc>) -> Result<Self::Body, Error> {
        convert::remittance_return(self)
    }
    fn step(
        returned: Self::Body,
        step: &mut Step<'_>,
        refmsgid: &str,
    ) -> Result<Self::Answer, Error> {
        let remitting_again = transfer_out::remittance_returned(step, &returned)?;
        Ok(Self::Answer {
            reply: ok(refmsgid),
            remitting_again,
        })
    }
}

/// The infno of both query RPCs.
const QUERY_INFNO: &str = "9105";

/// Answers a query (infno 9105) sent by a bureau of `sender_role`: the envelope is checked as
/// any message's, and a transfer is shown only to a party of it (to anyone else it is unknown,
/// 1005). Queries change nothing, so they are not kept by msgid; the answer's reference is
/// minted like any other (one small write: queries are sent only for an overdue form).
async fn query(
    services: &Services,
    caller: &Caller,
    envelope: Option<&platform::Envelope>,
    transfer_id: &str,
    sender_role: BureauRole,
) -> Result<(Option<platform::Reply>, Option<platform::TransferSnapshot>), Status> {
    let expected = Expected {
        infno: QUERY_INFNO,
        sender_role,
        minter: Minter::EitherParty,
        body_transfer_id: Some(transfer_id),
    };
    let envelope = match check_envelope(services, caller, envelope, expected) {
        Ok(envelope) => envelope,
        Err(Blocked::Refused(refusal, refmsgid)) => {
            return Ok((refusal_reply(&refusal, &refmsgid), None));
        }
        Err(Blocked::Denied(status)) => return Err(status),
    };
    let id = transfer_id.to_owned();
    let (reference, document) = services
        .write(move |step| -> Result<_, Error> {
            let reference = inbox::mint_reference(step)?;
            Ok((reference, crate::record::load(step.tx, &id)?))
        })
        .await
        .map_err(Status::from)?;
    let sender = &envelope.sender_region_code;
    let party = |stored: &str| {
        let pooled = |text: &str| {
            yibao_domain::region::RegionCode::parse(text)
                .ok()
                .map(|code| services.site.directory.pooling_region(code))
        };
        pooled(stored).is_some_and(|region| pooled(sender) == Some(region))
    };
    match document.filter(|d| party(&d.trafin_admdvs) || party(&d.trafout_admdvs)) {
        Some(document) => Ok((ok(&reference), Some(convert::wire_snapshot(&document)))),
        None => {
            let refusal = Refusal::UnknownTransfer("transfer_id".to_owned());
            Ok((refusal_reply(&refusal, &reference), None))
        }
    }
}

#[tonic::async_trait]
impl TransferOutPlatformService for PlatformApi {
    async fn request_transfer_out(
        &self,
        request: Request<platform::RequestTransferOutRequest>,
    ) -> Result<Response<platform::RequestTransferOutResponse>, Status> {
        single(&self.services, request).await
    }

    async fn query_transfer_out(
        &self,
        request: Request<platform::QueryTransferOutRequest>,
    ) -> Result<Response<platform::QueryTransferOutResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let (reply, transfer) = query(
            &self.services,
            &caller,
            request.envelope.as_ref(),
            &request.transfer_id,
            BureauRole::TransferIn,
        )
        .await?;
        Ok(Response::new(platform::QueryTransferOutResponse {
            reply,
            transfer,
        }))
    }

    async fn return_remittance(
        &self,
        request: Request<platform::ReturnRemittanceRequest>,
    ) -> Result<Response<platform::ReturnRemittanceResponse>, Status> {
        single(&self.services, request).await
    }

    async fn submit_transfer_out_requests(
        &self,
        request: Request<platform::SubmitTransferOutRequestsRequest>,
    ) -> Result<Response<platform::SubmitTransferOutRequestsResponse>, Status> {
        use platform::transfer_out_answer::Answer;
        let caller = caller_of(&request)?;
        let hold = caller_deadline(&request);
        let count = request.get_ref().requests.len();
        let parents = yibao_runtime::telemetry::extract_each(request.metadata(), count);
        let requests = request.into_inner().requests;
        check_batch(requests.len(), "requests")?;
        let mut after = After::default();
        let mut slots = Vec::with_capacity(requests.len());
        let entries: Vec<_> = requests
            .iter()
            .map(|r| {
                r.envelope
                    .as_ref()
                    .map(|e| received_entry(&self.services, Kind::RequestTransferOut, e))
            })
            .collect();
        for ((index, message), parent) in requests.into_iter().enumerate().zip(parents) {
            let message = ((index, parent), message);
            let wrap = |response| platform::TransferOutAnswer {
                answer: Some(Answer::Response(response)),
            };
            let slot = faulted_slot(&self.services, &caller, hold, message, wrap, &mut after);
            slots.push(slot.await);
        }
        let failed = |status| platform::TransferOutAnswer {
            answer: Some(Answer::Failed(message_status(status))),
        };
        let answers = run_faulted(&self.services, slots, &mut after, failed).await?;
        for (index, (entry, answer)) in entries.into_iter().zip(&answers).enumerate() {
            let outcome = match &answer.answer {
                Some(Answer::Response(response)) => reply_infcode(response.reply.as_ref()),
                Some(Answer::Failed(status)) => message_status_text(status),
                None => Happened::Failed(String::new()),
            };
            keep(&self.services, entry, outcome, after.fault_of(index));
        }
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
        single(&self.services, request).await
    }

    async fn confirm_settlement(
        &self,
        request: Request<platform::ConfirmSettlementRequest>,
    ) -> Result<Response<platform::ConfirmSettlementResponse>, Status> {
        single(&self.services, request).await
    }

    async fn abort_transfer(
        &self,
        request: Request<platform::AbortTransferRequest>,
    ) -> Result<Response<platform::AbortTransferResponse>, Status> {
        single(&self.services, request).await
    }

    async fn remit_balance(
        &self,
        request: Request<platform::RemitBalanceRequest>,
    ) -> Result<Response<platform::RemitBalanceResponse>, Status> {
        single(&self.services, request).await
    }

    async fn query_transfer_in(
        &self,
        request: Request<platform::QueryTransferInRequest>,
    ) -> Result<Response<platform::QueryTransferInResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let (reply, transfer) = query(
            &self.services,
            &caller,
            request.envelope.as_ref(),
            &request.transfer_id,
            BureauRole::TransferOut,
        )
        .await?;
        Ok(Response::new(platform::QueryTransferInResponse {
            reply,
            transfer,
        }))
    }

    async fn submit_transfer_in_messages(
        &self,
        request: Request<platform::SubmitTransferInMessagesRequest>,
    ) -> Result<Response<platform::SubmitTransferInMessagesResponse>, Status> {
        use platform::transfer_in_answer::Answer;
        use platform::transfer_in_message::Message as Kind;
        let caller = caller_of(&request)?;
        let hold = caller_deadline(&request);
        let count = request.get_ref().messages.len();
        let parents = yibao_runtime::telemetry::extract_each(request.metadata(), count);
        let messages = request.into_inner().messages;
        check_batch(messages.len(), "messages")?;
        let services = &self.services;
        let mut after = After::default();
        let mut slots = Vec::with_capacity(messages.len());
        let entries: Vec<_> = messages
            .iter()
            .map(|item| batch_item_entry(services, item))
            .collect();
        for ((index, message), parent) in messages.into_iter().enumerate().zip(parents) {
            let at = (index, parent);
            let slot = match message.message {
                Some(Kind::DeliverInsuranceRecord(request)) => {
                    let wrap = |r| platform::TransferInAnswer {
                        answer: Some(Answer::DeliverInsuranceRecord(r)),
                    };
                    faulted_slot(services, &caller, hold, (at, request), wrap, &mut after).await
                }
                Some(Kind::ConfirmSettlement(request)) => {
                    let wrap = |r| platform::TransferInAnswer {
                        answer: Some(Answer::ConfirmSettlement(r)),
                    };
                    faulted_slot(services, &caller, hold, (at, request), wrap, &mut after).await
                }
                Some(Kind::AbortTransfer(request)) => {
                    let wrap = |r| platform::TransferInAnswer {
                        answer: Some(Answer::AbortTransfer(r)),
                    };
                    faulted_slot(services, &caller, hold, (at, request), wrap, &mut after).await
                }
                Some(Kind::RemitBalance(request)) => {
                    let wrap = |r| platform::TransferInAnswer {
                        answer: Some(Answer::RemitBalance(r)),
                    };
                    faulted_slot(services, &caller, hold, (at, request), wrap, &mut after).await
                }
                None => Slot::Ready(platform::TransferInAnswer {
                    answer: Some(Answer::Failed(platform::MessageStatus {
                        code: tonic::Code::InvalidArgument as i32,
                        message: format!("messages[{index}].message: required"),
                    })),
                }),
            };
            slots.push(slot);
        }
        let failed = |status| platform::TransferInAnswer {
            answer: Some(Answer::Failed(message_status(status))),
        };
        let answers = run_faulted(services, slots, &mut after, failed).await?;
        journal_transfer_in_batch(services, entries, &answers, &after);
        Ok(Response::new(platform::SubmitTransferInMessagesResponse {
            answers,
        }))
    }
}

#[cfg(test)]
mod tests;
