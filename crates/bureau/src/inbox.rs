//! The exactly-once inbox: an incoming platform message runs once per msgid, in the same store
//! transaction as the record of its msgid, body hash and answer. The same msgid with the same
//! body gets the first answer again; with a different body, infcode 1004 (duplicate analysis as
//! Mojaloop does it). A batch runs each of its messages as its own store job, queued together
//! so they share one group commit, and a message that fails is undone alone.
//!
//! The envelope is checked by the handler before anything reaches the store; this module sees
//! only what it admitted, so it knows no wire type beyond "an encodable answer".
//!
//! Every answer kept with a msgid carries the receiver's own reference (`inf_refmsgid`), minted
//! in the message's step from the same durable counter as this bureau's msgids, so it is laid
//! out like one (this bureau's institution code, China time, a 4-digit sequence), never repeats
//! and is replayed with the stored answer. An answer that is not kept (a modified request here,
//! a refusal of the envelope before the store) names the refused msgid instead.

use prost::Message;
use sha2::{Digest, Sha256};
use tonic::Status;
use tracing::Instrument;

use crate::context::Broken;
use crate::error::Error;
use crate::record::Step;
use crate::services::Services;

/// Infcodes of our answers (invented; documented in platform.proto).
pub mod infcode {
    /// Success.
    pub const SUCCESS: i32 = 0;
    /// The message is malformed.
    pub const INVALID_MESSAGE: i32 = 1001;
    /// The receiver does not host the region the message is for.
    pub const WRONG_RECEIVER: i32 = 1002;
    /// The msgid was seen before with a different body.
    pub const MODIFIED_REQUEST: i32 = 1004;
    /// The infno does not belong to the rpc called.
    pub const WRONG_TRANSACTION_CODE: i32 = 1003;
    /// The transfer is unknown here.
    pub const UNKNOWN_TRANSFER: i32 = 1005;
    /// The message does not fit the transfer's state.
    pub const OUT_OF_ORDER: i32 = 1006;
    /// The sender region is not hosted by a bureau that sends this message, or the msgid does
    /// not carry the sender's institution code.
    pub const UNKNOWN_SENDER: i32 = 1007;
    /// The transfer id was not minted by a party allowed to name it.
    pub const FOREIGN_TRANSFER_ID: i32 = 1008;
}

/// Why a message is answered with a non-zero infcode instead of being applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Malformed: the field and the rule.
    Invalid(String),
    /// Addressed to a region this bureau does not host.
    WrongReceiver(String),
    /// The infno does not belong to the rpc called.
    WrongTransactionCode(String),
    /// The message does not fit the transfer's state.
    OutOfOrder(String),
    /// The msgid was used before with a different body.
    Modified,
    /// The transfer is unknown here.
    UnknownTransfer(String),
    /// The sender is not who may send this message (region directory, institution code).
    UnknownSender(String),
    /// The transfer id was minted by a region that may not name it here.
    ForeignTransferId(String),
    /// A fault rule answers this infcode and message instead (nothing was processed).
    Injected(i32, String),
}

impl Refusal {
    /// The infcode.
    pub fn infcode(&self) -> i32 {
        match self {
            Refusal::Invalid(_) => infcode::INVALID_MESSAGE,
            Refusal::WrongReceiver(_) => infcode::WRONG_RECEIVER,
            Refusal::WrongTransactionCode(_) => infcode::WRONG_TRANSACTION_CODE,
            Refusal::OutOfOrder(_) => infcode::OUT_OF_ORDER,
            Refusal::Modified => infcode::MODIFIED_REQUEST,
            Refusal::UnknownTransfer(_) => infcode::UNKNOWN_TRANSFER,
            Refusal::UnknownSender(_) => infcode::UNKNOWN_SENDER,
            Refusal::ForeignTransferId(_) => infcode::FOREIGN_TRANSFER_ID,
            Refusal::Injected(code, _) => *code,
        }
    }

    /// The `err_msg`: the field and the rule, no personal data.
    pub fn message(&self) -> String {
        match self {
            Refusal::Invalid(text)
            | Refusal::WrongReceiver(text)
            | Refusal::WrongTransactionCode(text)
            | Refusal::UnknownSender(text)
            | Refusal::ForeignTransferId(text)
            | Refusal::Injected(_, text) => text.clone(),
            Refusal::OutOfOrder(what) => format!("out of order: {what}"),
            Refusal::Modified => {
                "envelope.msgid: already used with a different body (modified request)".to_owned()
            }
            Refusal::UnknownTransfer(what) => format!("{what} not found"),
        }
    }
}

/// Builds a message's answer for a refusal, given the `inf_refmsgid` it carries: the reference
/// minted in the message's step for a refusal that is kept, otherwise the refused msgid itself
/// (or empty when there is none).
pub type Refuse<Resp> = fn(&Refusal, &str) -> Resp;

/// A message whose envelope was checked: what the store step needs.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// The sender's msgid.
    pub msgid: String,
    /// SHA-256 of the encoded request.
    pub body_sha256: Vec<u8>,
    /// The transfer the envelope names (for the span).
    pub transfer_id: String,
    /// The transaction code (for the span).
    pub infno: String,
}

/// The SHA-256 of a message body, for duplicate analysis.
pub fn body_hash(message: &impl Message) -> Vec<u8> {
    Sha256::digest(message.encode_to_vec()).to_vec()
}

/// Mints the receiver's reference for an answer (`inf_refmsgid`) inside the step: laid out like
/// a msgid of this bureau and drawn from the same durable counter, so that it never repeats
/// and never equals a msgid this bureau sends.
pub fn mint_reference(step: &mut Step<'_>) -> Result<String, Error> {
    step.mint_msgid()
}

/// Receives one admitted message inside the caller's step: a msgid seen before gets its first
/// answer (or infcode 1004 for a different body, naming the msgid); otherwise a reference is
/// minted, `work` runs with it and its answer (or the refusal it ran into, under the same
/// reference) is recorded with the msgid, in the same transaction.
pub fn receive<Resp>(
    step: &mut Step<'_>,
    admitted: &Admitted,
    refuse: Refuse<Resp>,
    work: impl FnOnce(&mut Step<'_>, &str) -> Result<Resp, Error>,
) -> Result<Resp, Error>
where
    Resp: Message + Default,
{
    let msgid = &admitted.msgid;
    let forget = step.ctx.site.broken == Broken::ForgetMsgids;
    if let Some(seen) = step.tx.processed_message(msgid)?.filter(|_| !forget) {
        if seen.body_sha256 == admitted.body_sha256 {
            return Resp::decode(seen.answer.as_slice())
                .map_err(|_| Error::Internal("stored answer does not decode".to_owned()));
        }
        return Ok(refuse(&Refusal::Modified, msgid));
    }
    let reference = mint_reference(step)?;
    let answer = match work(step, &reference) {
        Ok(answer) => answer,
        Err(Error::InvalidArgument { field, rule }) => {
            refuse(&Refusal::Invalid(format!("{field}: {rule}")), &reference)
        }
        Err(Error::NotFound(what)) => refuse(&Refusal::UnknownTransfer(what), &reference),
        Err(Error::OutOfOrder(what)) => refuse(&Refusal::OutOfOrder(what), &reference),
        Err(error) => return Err(error),
    };
    if forget {
        return Ok(answer);
    }
    let now = step.ctx.now;
    step.tx.record_processed(
        &admitted.msgid,
        &admitted.body_sha256,
        &answer.encode_to_vec(),
        now,
    )?;
    Ok(answer)
}

/// A message's store step, answering `A`.
pub type Work<A> = Box<dyn FnOnce(&mut Step<'_>) -> Result<A, Error> + Send>;

/// One message of a batch: answered at admission, or a step for the store.
pub enum Slot<A> {
    /// Answered without the store (a broken envelope, a wrong receiver).
    Ready(A),
    /// Not admitted with a gRPC status it would have failed with alone (a caller whose
    /// certificate does not speak for the sender).
    Failed(Status),
    /// To run once per msgid.
    Pending(Work<A>),
}

impl<A> std::fmt::Debug for Slot<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Slot::Ready(_) => "Slot::Ready",
            Slot::Failed(_) => "Slot::Failed",
            Slot::Pending(_) => "Slot::Pending",
        })
    }
}

/// Runs one message once per msgid as its own store step, inside `span` (the message's step
/// span, with its transfer id).
pub async fn once<Resp>(
    services: &Services,
    admitted: Admitted,
    span: tracing::Span,
    refuse: Refuse<Resp>,
    work: impl FnOnce(&mut Step<'_>, &str) -> Result<Resp, Error> + Send + 'static,
) -> Result<Resp, Status>
where
    Resp: Message + Default + Send + 'static,
{
    services
        .write(move |step| receive(step, &admitted, refuse, work))
        // Instrument the future, never enter a span across an await: the guard would follow
        // the task to other threads and corrupt the subscriber's span stack.
        .instrument(span)
        .await
        .map_err(Status::from)
}

/// Runs a batch's admitted messages, each as its own store job queued together so that they
/// share one group commit; answers in the batch's order (a message that failed is answered
/// with the status it would have failed with alone, through `failed`).
pub async fn run_batch<A>(
    services: &Services,
    slots: Vec<Slot<A>>,
    failed: fn(Status) -> A,
) -> Result<Vec<A>, Status>
where
    A: Send + 'static,
{
    let mut answers: Vec<Option<A>> = Vec::with_capacity(slots.len());
    let mut places = Vec::new();
    let mut jobs = Vec::new();
    for (index, slot) in slots.into_iter().enumerate() {
        match slot {
            Slot::Ready(answer) => answers.push(Some(answer)),
            Slot::Failed(status) => answers.push(Some(failed(status))),
            Slot::Pending(work) => {
                answers.push(None);
                places.push(index);
                jobs.push(work);
            }
        }
    }
    if !jobs.is_empty() {
        let span = tracing::info_span!("platform_batch", messages = jobs.len());
        let results = services.write_each(jobs).instrument(span).await;
        for (index, result) in places.into_iter().zip(results) {
            if let Some(place) = answers.get_mut(index) {
                *place = Some(result.unwrap_or_else(|error| failed(Status::from(error))));
            }
        }
    }
    answers
        .into_iter()
        .map(|answer| answer.ok_or_else(|| Status::internal("a batch message went unanswered")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;
    use yibao_runtime::directory::BureauRole;

    /// A stand-in answer: its infcode and `inf_refmsgid`.
    #[derive(Clone, PartialEq, prost::Message)]
    struct Answer {
        #[prost(int32, tag = "1")]
        infcode: i32,
        #[prost(string, tag = "2")]
        refmsgid: String,
    }

    fn refused(refusal: &Refusal, refmsgid: &str) -> Answer {
        Answer {
            infcode: refusal.infcode(),
            refmsgid: refmsgid.to_owned(),
        }
    }

    const MSGID: &str = "B540100000022026113012000000001";

    fn admitted(msgid: &str, body: &[u8]) -> Admitted {
        Admitted {
            msgid: msgid.to_owned(),
            body_sha256: Sha256::digest(body).to_vec(),
            transfer_id: "540100202611300000001".to_owned(),
            infno: "9102".to_owned(),
        }
    }

    /// Receives `body` under `msgid` once, with a step that refuses its field (or answers 0).
    async fn receive_as(
        services: &Services,
        msgid: &str,
        body: &'static [u8],
        malformed: bool,
    ) -> Answer {
        let admitted = admitted(msgid, body);
        services
            .write(move |step| {
                receive(step, &admitted, refused, |_, reference| {
                    if malformed {
                        Err(Error::invalid("form.certno", "must be 18 characters"))
                    } else {
                        Ok(Answer {
                            infcode: 0,
                            refmsgid: reference.to_owned(),
                        })
                    }
                })
            })
            .await
            .expect("the step runs")
    }

    async fn receive_once(services: &Services, body: &'static [u8], malformed: bool) -> Answer {
        receive_as(services, MSGID, body, malformed).await
    }

    /// A reference is one of this bureau's: its institution code, China time, 4 digits.
    fn assert_ours(services: &Services, reference: &str) {
        assert_eq!(reference.len(), 30, "{reference}");
        assert!(
            reference.starts_with(&services.site.institution),
            "{reference}"
        );
        assert!(reference[12..].bytes().all(|b| b.is_ascii_digit()));
        // The tests' clock: 10:00 on 2 March 2026 in Beijing (02:00 UTC).
        assert!(reference[12..].starts_with("202603021000"), "{reference}");
    }

    #[tokio::test]
    async fn a_message_out_of_place_is_answered_1006_and_the_answer_is_kept() {
        let services = testing::services(BureauRole::TransferIn);
        let admitted = admitted(MSGID, b"confirm");
        let answer = services
            .write(move |step| {
                receive(step, &admitted, refused, |_, _| {
                    let out_of_place = yibao_domain::transfer::IllegalEvent {
                        state: "APPLIED",
                        event: "SETTLEMENT_CONFIRMED",
                    };
                    Err::<Answer, _>(Error::from(out_of_place))
                })
            })
            .await
            .expect("answered, not failed");
        assert_eq!(answer.infcode, infcode::OUT_OF_ORDER);
        assert_ours(&services, &answer.refmsgid);
        let again = receive_once(&services, b"confirm", false).await;
        assert_eq!(again, answer, "the refusal was recorded with the msgid");
    }

    #[tokio::test]
    async fn a_refused_message_is_kept_under_a_reference_and_a_modified_one_names_its_msgid() {
        let services = testing::services(BureauRole::TransferIn);
        let first = receive_once(&services, b"body", true).await;
        assert_eq!(first.infcode, infcode::INVALID_MESSAGE);
        assert_ours(&services, &first.refmsgid);
        // The same msgid and body again: the first answer, even though the step would now pass.
        let again = receive_once(&services, b"body", false).await;
        assert_eq!(again, first);
        // The same msgid with another body: a modified request, kept nowhere, naming the msgid.
        let modified = receive_once(&services, b"other body", false).await;
        assert_eq!(modified.infcode, infcode::MODIFIED_REQUEST);
        assert_eq!(modified.refmsgid, MSGID);
    }

    /// platform.proto, Reply.inf_refmsgid: the receiver's reference, laid out like a msgid with
    /// the receiver's institution code, unique, and repeated by a replayed answer.
    #[tokio::test]
    async fn an_answers_reference_is_the_receivers_unique_and_replayed() {
        let services = testing::services(BureauRole::TransferIn);
        let first = receive_as(&services, MSGID, b"one", false).await;
        let second = receive_as(&services, "B540100000022026113012000000002", b"two", false).await;
        assert_ours(&services, &first.refmsgid);
        assert_ours(&services, &second.refmsgid);
        assert_ne!(first.refmsgid, second.refmsgid, "unique");
        let replayed = receive_as(&services, MSGID, b"one", false).await;
        assert_eq!(replayed.refmsgid, first.refmsgid, "a replay repeats it");
        // A msgid this bureau sends next is not a reference it gave.
        let sent = services
            .write(|step| step.mint_msgid())
            .await
            .expect("minted");
        assert!(sent != first.refmsgid && sent != second.refmsgid);
    }
}
