//! An integration test of "your own" transfer-in bureau with yibao playing transfer-out: the
//! pattern a team follows to test its real bureau, with a minimal bureau written here by hand in
//! its place.
//!
//! The bureau below serves `TransferInPlatformService` (platform.proto) for the transfer-in
//! regions of the region directory, single-message RPCs only: `DeliverInsuranceRecord` credits
//! a form's balance in memory exactly once per transfer and answers a repeated msgid with its
//! first answer, `AbortTransfer` settles the question for good, `QueryTransferIn` says where a
//! transfer stands. The batch RPC answers UNIMPLEMENTED, so yibao sends single messages.
//!
//! The test: bind the bureau's listener, start yibao's transfer-out as a
//! [`yibao_harness::Counterpart`] pointed at it, serve the bureau with the certificate the
//! counterpart made for it, let a person apply at yibao for a transfer started there (flow
//! `cross-province-out-initiated`, Hohhot → Lhasa), and wait until yibao's side reaches
//! COMPLETED; the balance the bureau credited must be the person's.
//!
//! ```sh
//! cargo build --bins && cargo run -p yibao-harness --example own_transfer_in
//! ```
//! With `-- serve ADDR CERT KEY CA` it only serves the bureau (with that certificate and key,
//! trusting that CA), so that `yibao conformance --role transfer-in` can be run against it
//! (README, "The conformance suite").
//! `cargo test` runs the same exchange as this example's test.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status};
use yibao_domain::money::Money;
use yibao_domain::population::Flow;
use yibao_harness::tls::TlsPaths;
use yibao_harness::{Counterpart, CounterpartOptions, Side};
use yibao_proto::common::v1::{RefusalReason, TransferState};
use yibao_proto::platform::v1 as platform;
use yibao_proto::platform::v1::transfer_in_platform_service_server::{
    TransferInPlatformService, TransferInPlatformServiceServer,
};
use yibao_runtime::clock::{Clock, china_time};

/// What can go wrong in the example: anything, reported as text.
type Failure = Box<dyn std::error::Error + Send + Sync>;

/// How long the transfer may take to complete at yibao.
const DEADLINE: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() -> Result<(), Failure> {
    // `-- serve ADDR CERT KEY CA`: only serve the bureau, for `yibao conformance` to test it.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [command, address, cert, key, ca] = args.as_slice()
        && command == "serve"
    {
        let listener = TcpListener::bind(address.as_str()).await?;
        println!(
            "the example transfer-in bureau serves on {}",
            listener.local_addr()?
        );
        let tls = TlsPaths {
            ca: ca.into(),
            cert: cert.into(),
            key: key.into(),
        };
        return serve(listener, tls, OwnTransferIn::default()).await;
    }
    let credited = exchange().await?;
    println!(
        "yibao's transfer-out completed transfer {}; the bureau credited {} yuan, the person's \
         balance",
        credited.transfer_id, credited.amount
    );
    Ok(())
}

/// What the exchange ended with.
#[derive(Debug)]
struct Credited {
    /// The transfer.
    transfer_id: String,
    /// The amount the bureau credited.
    amount: Money,
}

/// The whole exchange; fails unless yibao's side completed and the bureau credited the
/// person's balance exactly.
async fn exchange() -> Result<Credited, Failure> {
    // 1. The bureau's platform listener first: its address is what yibao calls.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let peer = format!("https://{}", listener.local_addr()?);

    // 2. yibao plays transfer-out, pointed at it (nothing is sent to it until someone applies).
    let options = CounterpartOptions {
        persons: 200,
        ..CounterpartOptions::new(Side::Out, peer)
    };
    let yibao = Counterpart::start(options).await?;

    // 3. Serve the bureau with the certificate yibao's CA made for it.
    let tls = yibao
        .peer_tls()
        .ok_or("the counterpart made no certificates")?;
    let bureau = OwnTransferIn::default();
    let serving = tokio::spawn(serve(listener, tls.clone(), bureau.clone()));

    // 4. A person applies at yibao for a transfer started at transfer-out.
    let someone = yibao.persons(Flow::CrossProvinceOutInitiated, 1)?.remove(0);
    let transfer = yibao.apply(&someone).await?;
    let id = transfer.transfer_id;
    let done = yibao
        .wait_for_state(&id, TransferState::Completed, DEADLINE)
        .await;
    serving.abort();
    done?;

    // 5. The bureau credited exactly the person's balance, and yibao's books hold.
    let amount = bureau
        .credited(&id)
        .ok_or("the bureau has no credit for the transfer")?;
    if amount != someone.balance {
        return Err(format!(
            "credited {amount}, the person's balance is {}",
            someone.balance
        )
        .into());
    }
    let ledger = yibao.ledger_check().await?;
    if !ledger.holds {
        return Err(format!("yibao's ledger does not hold:\n{ledger}").into());
    }
    Ok(Credited {
        transfer_id: id,
        amount,
    })
}

/// Serves the bureau's platform service on `listener` over mutual TLS: its certificate, and
/// callers' certificates required from the CA.
async fn serve(listener: TcpListener, tls: TlsPaths, bureau: OwnTransferIn) -> Result<(), Failure> {
    let identity = Identity::from_pem(
        tokio::fs::read(&tls.cert).await?,
        tokio::fs::read(&tls.key).await?,
    );
    let ca = Certificate::from_pem(tokio::fs::read(&tls.ca).await?);
    Server::builder()
        .tls_config(ServerTlsConfig::new().identity(identity).client_ca_root(ca))?
        .add_service(TransferInPlatformServiceServer::new(bureau))
        .serve_with_incoming(TcpIncoming::from(listener))
        .await?;
    Ok(())
}

/// The regions this bureau hosts: the transfer-in regions of `deploy/regions.toml`.
const HOSTED: [&str; 4] = ["540100", "440300", "150900", "610100"];

/// The bureau's institution code, with which its answers' reference ids begin.
const INSTITUTION: &str = "B54010000001";

/// A minimal transfer-in bureau, in memory.
#[derive(Clone, Debug, Default)]
struct OwnTransferIn {
    books: Arc<Mutex<Books>>,
}

/// A processed msgid's request and the answer it got, replayed when it comes again.
type Processed<M> = HashMap<String, (M, <M as Once>::Answer)>;

/// What the bureau remembers.
#[derive(Debug, Default)]
struct Books {
    /// Each transfer it has credited or aborted.
    transfers: HashMap<String, Held>,
    /// The forms it answered, by msgid.
    forms: Processed<platform::DeliverInsuranceRecordRequest>,
    /// The aborts it answered, by msgid.
    aborts: Processed<platform::AbortTransferRequest>,
    /// The last reference id's sequence number.
    sequence: u32,
}

/// Where a transfer stands here.
#[derive(Clone, Debug)]
enum Held {
    /// Credited, once: this credit.
    Credited(platform::Credited),
    /// Aborted: nothing was credited, and nothing ever will be.
    Aborted,
}

/// A message that changes something, answered once per msgid: the same request under the same
/// msgid gets the first answer again, another one 1004 (modified request).
trait Once: PartialEq + Sized {
    /// Its answer.
    type Answer: Clone + std::fmt::Debug;
    /// Its infno.
    const INFNO: &'static str;
    /// Its envelope.
    fn envelope(&self) -> Option<&platform::Envelope>;
    /// The transfer its body names, if it has a body.
    fn body_transfer_id(&self) -> Option<&str>;
    /// An answer with only a reply: the message itself was refused.
    fn refused(reply: Option<platform::Reply>) -> Self::Answer;
    /// Where its processed msgids are kept.
    fn processed(books: &mut Books) -> &mut Processed<Self>;
}

impl Once for platform::DeliverInsuranceRecordRequest {
    type Answer = platform::DeliverInsuranceRecordResponse;
    const INFNO: &'static str = "9102";
    fn envelope(&self) -> Option<&platform::Envelope> {
        self.envelope.as_ref()
    }
    fn body_transfer_id(&self) -> Option<&str> {
        self.form.as_ref().map(|form| form.transfer_id.as_str())
    }
    fn refused(reply: Option<platform::Reply>) -> Self::Answer {
        Self::Answer {
            reply,
            acknowledgement: None,
        }
    }
    fn processed(books: &mut Books) -> &mut Processed<Self> {
        &mut books.forms
    }
}

impl Once for platform::AbortTransferRequest {
    type Answer = platform::AbortTransferResponse;
    const INFNO: &'static str = "9104";
    fn envelope(&self) -> Option<&platform::Envelope> {
        self.envelope.as_ref()
    }
    fn body_transfer_id(&self) -> Option<&str> {
        Some(&self.transfer_id)
    }
    fn refused(reply: Option<platform::Reply>) -> Self::Answer {
        Self::Answer {
            reply,
            ..Default::default()
        }
    }
    fn processed(books: &mut Books) -> &mut Processed<Self> {
        &mut books.aborts
    }
}

impl OwnTransferIn {
    /// The amount credited for a transfer, if it was.
    fn credited(&self, transfer_id: &str) -> Option<Money> {
        let books = self.books.lock().ok()?;
        match books.transfers.get(transfer_id)? {
            Held::Credited(credit) => Money::parse(&credit.credited_amount).ok(),
            Held::Aborted => None,
        }
    }

    fn books(&self) -> Result<std::sync::MutexGuard<'_, Books>, Status> {
        self.books
            .lock()
            .map_err(|_| Status::internal("the books are poisoned"))
    }

    /// Answers `request` once per msgid: a repeat gets the first answer, a modified repeat
    /// 1004, a message that is not ours its refusal; otherwise `act` decides, and the answer
    /// is kept with the msgid.
    fn answer_once<M: Once>(
        &self,
        request: M,
        act: impl FnOnce(&mut Books, &M) -> M::Answer,
    ) -> Result<Response<M::Answer>, Status> {
        let envelope = request.envelope().ok_or_else(|| missing("envelope"))?;
        let msgid = envelope.msgid.clone();
        let mut books = self.books()?;
        let seen = M::processed(&mut books)
            .get(&msgid)
            .map(|(first, answer)| (*first == request).then(|| answer.clone()));
        let answer = match (
            seen,
            refusal(envelope, M::INFNO, request.body_transfer_id()),
        ) {
            (Some(Some(first_answer)), _) => return Ok(Response::new(first_answer)),
            (Some(None), _) => {
                let why = "modified request: this msgid was processed with another body";
                return Ok(Response::new(M::refused(books.reply(1004, why))));
            }
            (None, Some((infcode, why))) => M::refused(books.reply(infcode, &why)),
            (None, None) => act(&mut books, &request),
        };
        M::processed(&mut books).insert(msgid, (request, answer.clone()));
        Ok(Response::new(answer))
    }
}

impl Books {
    /// A reply: `infcode` (0 for success), its explanation, and a fresh reference id.
    fn reply(&mut self, infcode: i32, err_msg: &str) -> Option<platform::Reply> {
        self.sequence = (self.sequence + 1) % 10_000;
        // Laid out like a msgid: the time is China time, as every platform time is.
        let now = china_time(Clock::system().now()).format("%Y%m%d%H%M%S");
        Some(platform::Reply {
            infcode,
            err_msg: err_msg.to_owned(),
            inf_refmsgid: format!("{INSTITUTION}{now}{:04}", self.sequence),
        })
    }

    /// The credit of a form, or its refusal, from the transfer's state: a transfer is credited
    /// once however often its form arrives.
    fn take_form(
        &mut self,
        form: &platform::InsuranceInformationForm,
    ) -> platform::DeliverInsuranceRecordResponse {
        use platform::credit_acknowledgement::Outcome;
        let outcome = match self.transfers.get(&form.transfer_id) {
            Some(Held::Credited(credit)) => Outcome::Credited(credit.clone()),
            Some(Held::Aborted) => Outcome::Refused(platform::TransferRejection {
                reason_code: RefusalReason::Aborted as i32,
                reason: "the transfer was aborted".to_owned(),
            }),
            None => {
                let credit = platform::Credited {
                    credited_months: form.contribution_months,
                    credited_amount: form.personal_account_balance.clone(),
                    credited_at: Some(timestamp()),
                };
                let held = Held::Credited(credit.clone());
                self.transfers.insert(form.transfer_id.clone(), held);
                Outcome::Credited(credit)
            }
        };
        platform::DeliverInsuranceRecordResponse {
            reply: self.reply(0, ""),
            acknowledgement: Some(platform::CreditAcknowledgement {
                outcome: Some(outcome),
            }),
        }
    }

    /// The answer to an abort: credited (with the credit), or never to be credited from now on.
    fn take_abort(&mut self, transfer_id: &str) -> platform::AbortTransferResponse {
        match self.transfers.get(transfer_id).cloned() {
            Some(Held::Credited(credit)) => platform::AbortTransferResponse {
                reply: self.reply(0, ""),
                credited: true,
                credit: Some(credit),
            },
            Some(Held::Aborted) | None => {
                self.transfers.insert(transfer_id.to_owned(), Held::Aborted);
                platform::AbortTransferResponse {
                    reply: self.reply(0, ""),
                    credited: false,
                    credit: None,
                }
            }
        }
    }
}

/// Why an envelope is refused, as (infcode, explanation); none when it is fine.
fn refusal(
    envelope: &platform::Envelope,
    infno: &str,
    body_transfer_id: Option<&str>,
) -> Option<(i32, String)> {
    if envelope.infno != infno {
        return Some((1003, format!("infno must be {infno}")));
    }
    if !HOSTED.contains(&envelope.receiver_region_code.as_str()) {
        return Some((1002, "receiver_region_code is not hosted here".to_owned()));
    }
    match body_transfer_id {
        None => Some((1001, "the message has no body".to_owned())),
        Some(id) if id != envelope.transfer_id => Some((
            1001,
            "envelope.transfer_id differs from the body's".to_owned(),
        )),
        Some(_) => None,
    }
}

/// The current time as a protobuf timestamp.
fn timestamp() -> prost_types::Timestamp {
    let now = Clock::system().now();
    prost_types::Timestamp {
        seconds: now.timestamp(),
        nanos: i32::try_from(now.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

#[tonic::async_trait]
impl TransferInPlatformService for OwnTransferIn {
    async fn deliver_insurance_record(
        &self,
        request: Request<platform::DeliverInsuranceRecordRequest>,
    ) -> Result<Response<platform::DeliverInsuranceRecordResponse>, Status> {
        // A request without a form was refused 1001 before `act` runs.
        self.answer_once(request.into_inner(), |books, request| match &request.form {
            Some(form) => books.take_form(form),
            None => {
                let reply = books.reply(1001, "form: required");
                platform::DeliverInsuranceRecordRequest::refused(reply)
            }
        })
    }

    async fn abort_transfer(
        &self,
        request: Request<platform::AbortTransferRequest>,
    ) -> Result<Response<platform::AbortTransferResponse>, Status> {
        self.answer_once(request.into_inner(), |books, request| {
            books.take_abort(&request.transfer_id)
        })
    }

    async fn remit_balance(
        &self,
        _request: Request<platform::RemitBalanceRequest>,
    ) -> Result<Response<platform::RemitBalanceResponse>, Status> {
        // The directory this example runs with remits the balance with the form.
        Err(Status::unimplemented(
            "this example credits the balance with the form",
        ))
    }

    async fn query_transfer_in(
        &self,
        request: Request<platform::QueryTransferInRequest>,
    ) -> Result<Response<platform::QueryTransferInResponse>, Status> {
        let request = request.into_inner();
        let envelope = request
            .envelope
            .as_ref()
            .ok_or_else(|| missing("envelope"))?;
        let mut books = self.books()?;
        let refused = refusal(envelope, "9105", Some(&request.transfer_id));
        let state = match (refused, books.transfers.get(&request.transfer_id)) {
            (Some((infcode, why)), _) => Err((infcode, why)),
            (None, Some(Held::Credited(_))) => Ok(TransferState::Completed),
            (None, Some(Held::Aborted)) => Ok(TransferState::Aborted),
            (None, None) => Err((1005, "unknown transfer".to_owned())),
        };
        let answer = match state {
            Ok(state) => platform::QueryTransferInResponse {
                reply: books.reply(0, ""),
                transfer: Some(platform::TransferSnapshot {
                    transfer_id: request.transfer_id.clone(),
                    state: state as i32,
                    side: yibao_proto::common::v1::Side::TransferIn as i32,
                    updated_at: Some(timestamp()),
                    ..Default::default()
                }),
            },
            Err((infcode, why)) => platform::QueryTransferInResponse {
                reply: books.reply(infcode, &why),
                transfer: None,
            },
        };
        Ok(Response::new(answer))
    }

    async fn confirm_settlement(
        &self,
        _request: Request<platform::ConfirmSettlementRequest>,
    ) -> Result<Response<platform::ConfirmSettlementResponse>, Status> {
        Err(Status::unimplemented(
            "ConfirmSettlement is deprecated: no longer sent",
        ))
    }

    async fn submit_transfer_in_messages(
        &self,
        _request: Request<platform::SubmitTransferInMessagesRequest>,
    ) -> Result<Response<platform::SubmitTransferInMessagesResponse>, Status> {
        // Batches are yibao's optimisation: answering UNIMPLEMENTED makes it send single
        // messages from now on.
        Err(Status::unimplemented("single messages only"))
    }
}

/// The status of a request without a required field.
fn missing(field: &str) -> Status {
    Status::invalid_argument(format!("{field}: required"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn yibao_completes_a_transfer_with_a_hand_written_transfer_in_bureau() {
        let credited = exchange().await.expect("the exchange completes");
        assert!(credited.amount > Money::ZERO, "{credited:?}");
    }

    fn envelope(msgid: &str) -> platform::Envelope {
        platform::Envelope {
            infno: "9102".to_owned(),
            msgid: msgid.to_owned(),
            sender_region_code: "150100".to_owned(),
            receiver_region_code: "540100".to_owned(),
            sent_at: None,
            transfer_id: "150100202611300000001".to_owned(),
        }
    }

    fn form(balance: &str) -> platform::DeliverInsuranceRecordRequest {
        platform::DeliverInsuranceRecordRequest {
            envelope: Some(envelope("B15010000001202611300000000001")),
            form: Some(platform::InsuranceInformationForm {
                transfer_id: "150100202611300000001".to_owned(),
                personal_account_balance: balance.to_owned(),
                ..Default::default()
            }),
        }
    }

    async fn deliver(
        bureau: &OwnTransferIn,
        request: platform::DeliverInsuranceRecordRequest,
    ) -> platform::DeliverInsuranceRecordResponse {
        bureau
            .deliver_insurance_record(Request::new(request))
            .await
            .expect("answered")
            .into_inner()
    }

    #[tokio::test]
    async fn the_bureau_credits_once_and_replays_its_answers() {
        let bureau = OwnTransferIn::default();
        let first = deliver(&bureau, form("100.00")).await;
        assert_eq!(deliver(&bureau, form("100.00")).await, first, "replayed");
        let modified = deliver(&bureau, form("999.00")).await;
        assert_eq!(modified.reply.map(|reply| reply.infcode), Some(1004));
        let mut again = form("100.00");
        again.envelope = Some(envelope("B15010000001202611300000000002"));
        let second = deliver(&bureau, again).await;
        assert_eq!(second.acknowledgement, first.acknowledgement, "one credit");
        assert_eq!(
            bureau.credited("150100202611300000001"),
            Money::parse("100.00").ok()
        );
    }
}
