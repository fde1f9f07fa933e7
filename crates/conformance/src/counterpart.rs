//! The suite's side of the platform: a scripted bureau of the other role that the target calls.
//! It serves both platform services (a target only calls the one of the role the suite plays),
//! keeps every message it receives, checks each against the contract (infno, msgid, regions,
//! transfer id, retries resent unchanged), and answers as each case planned for the person:
//! credit, credit but lose the answer, or withhold any answer.
//!
//! Its own rules follow `platform.proto` so a conforming target gets conforming answers: a
//! msgid is answered the same every time, a changed body under a used msgid is infcode 1004, a
//! transfer is credited once however often its form comes, and an abort answers definitely.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use prost::Message;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};
use yibao_domain::calendar::WorkingCalendar;
use yibao_domain::money::Money;
use yibao_proto::common::v1::{RefusalReason, Side, TransferState};
use yibao_proto::platform::v1 as platform;
use yibao_proto::platform::v1::transfer_in_platform_service_server::{
    TransferInPlatformService, TransferInPlatformServiceServer,
};
use yibao_proto::platform::v1::transfer_out_platform_service_server::{
    TransferOutPlatformService, TransferOutPlatformServiceServer,
};
use yibao_runtime::tls::PlatformTls;

use crate::exchange::{Exchange, ExchangeLog, Way};
use crate::identity::{Identity, china_date, msgid_problem, timestamp};

/// How the suite answers the forms of one person (set by a case before the target sends).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FormPlan {
    /// Credit the years and the balance once, and answer.
    #[default]
    Credit,
    /// Credit at the first delivery, but answer the first `n` deliveries UNAVAILABLE, as if the
    /// answer were lost on the way back.
    CreditLosingAnswers(u32),
    /// Credit at the first delivery and answer every delivery UNAVAILABLE: the target never
    /// learns of the credit until it asks (by an abort).
    CreditSilently,
    /// Answer every delivery UNAVAILABLE without crediting: the target never gets an answer.
    Withhold,
}

/// How the suite answers the remittances (RemitBalance, 9106) of one person's transfer, when
/// it plays transfer-in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RemitPlan {
    /// Check the amount against the form and answer what it found (MATCHED to the cent).
    #[default]
    Check,
    /// Answer the first remittance SHORT and hold it, as if it had arrived a cent short
    /// (bank charges on the way); check the later ones.
    RefuseFirst,
}

/// One remittance of a transfer: sent by the target (the suite plays transfer-in) or by the
/// suite (it plays transfer-out).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remitted {
    /// The remittance's msgid.
    pub msgid: String,
    /// The amount it carried, as written.
    pub amount: String,
    /// What the transfer-in side found.
    pub check: platform::RemittanceCheck,
}

/// A message the target sent.
#[derive(Clone, Debug)]
pub enum Received {
    /// RequestTransferOut (9101).
    Request(platform::RequestTransferOutRequest),
    /// QueryTransferOut (9105).
    QueryOut(platform::QueryTransferOutRequest),
    /// DeliverInsuranceRecord (9102).
    Form(platform::DeliverInsuranceRecordRequest),
    /// ConfirmSettlement (9103).
    Settlement(platform::ConfirmSettlementRequest),
    /// AbortTransfer (9104).
    Abort(platform::AbortTransferRequest),
    /// QueryTransferIn (9105).
    QueryIn(platform::QueryTransferInRequest),
    /// RemitBalance (9106).
    Remittance(platform::RemitBalanceRequest),
    /// ReturnRemittance (9107).
    Return(platform::ReturnRemittanceRequest),
}

/// One message received, as it came.
#[derive(Clone, Debug)]
pub struct Arrival {
    /// When.
    pub at: DateTime<Utc>,
    /// The envelope's msgid.
    pub msgid: String,
    /// The envelope's transfer id.
    pub transfer_id: String,
    /// The message.
    pub message: Received,
}

/// What the suite holds about one transfer the target told it about.
#[derive(Clone, Debug, Default)]
pub struct Held {
    /// The person's ID number (kept in memory only, never printed).
    certno: String,
    /// The credit made, if any.
    pub credit: Option<platform::Credited>,
    /// Whether the suite promised never to credit (an abort it answered not credited).
    pub aborted: bool,
    /// Whether the suite accepted the request (when it plays transfer-out).
    pub accepted: bool,
    /// Forms delivered so far (every attempt).
    pub deliveries: u32,
    /// The balance a form that said remittance_follows stated: what its remittance must carry.
    pub awaited: Option<String>,
    /// The transfer's remittances, in order.
    pub remittances: Vec<Remitted>,
}

impl Held {
    /// The remittance that matched the form, once one did.
    #[must_use]
    pub fn matched(&self) -> Option<&Remitted> {
        self.remittances
            .iter()
            .find(|r| r.check == platform::RemittanceCheck::Matched)
    }
}

/// A message as it came in, before it is checked and answered.
struct Incoming<'a> {
    rpc: &'static str,
    infno: &'static str,
    envelope: Option<&'a platform::Envelope>,
    body_transfer_id: &'a str,
    bytes: Vec<u8>,
    message: Received,
    /// The regions the caller's certificate names (over mutual TLS).
    certified: Option<Vec<String>>,
}

/// A kept answer, replayed for the same msgid.
#[derive(Clone, Debug)]
enum Answer {
    Request(platform::RequestTransferOutResponse),
    QueryOut(platform::QueryTransferOutResponse),
    Form(platform::DeliverInsuranceRecordResponse),
    Settlement(platform::ConfirmSettlementResponse),
    Abort(platform::AbortTransferResponse),
    QueryIn(platform::QueryTransferInResponse),
    Remit(platform::RemitBalanceResponse),
    Return(platform::ReturnRemittanceResponse),
}

#[derive(Debug, Default)]
struct State {
    arrivals: Vec<Arrival>,
    transfers: HashMap<String, Held>,
    form_plans: HashMap<String, FormPlan>,
    remit_plans: HashMap<String, RemitPlan>,
    /// msgid → (the request's bytes, the answer given).
    answers: HashMap<String, (Vec<u8>, Answer)>,
    /// transfer id → what the target did that the contract forbids.
    violations: HashMap<String, Vec<String>>,
}

/// The suite's bureau: shared by its server and the cases.
#[derive(Clone, Debug)]
pub struct Counterpart {
    identity: Arc<Identity>,
    log: ExchangeLog,
    state: Arc<Mutex<State>>,
    calendar: Arc<WorkingCalendar>,
}

/// How often a wait looks at what arrived.
const POLL: Duration = Duration::from_millis(20);

/// The most messages the suite keeps from a target in one run (a run needs a few hundred); a
/// target that sends more is answered RESOURCE_EXHAUSTED.
const MAX_ARRIVALS: usize = 50_000;

impl Counterpart {
    /// A counterpart speaking as `identity`, logging to `log`.
    #[must_use]
    pub fn new(identity: Arc<Identity>, log: ExchangeLog, calendar: Arc<WorkingCalendar>) -> Self {
        Counterpart {
            identity,
            log,
            state: Arc::default(),
            calendar,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means a handler panicked mid-update; the maps stay usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Plans how the forms of the person with `certno` are answered.
    pub fn plan_forms(&self, certno: &str, plan: FormPlan) {
        self.state().form_plans.insert(certno.to_owned(), plan);
    }

    /// Plans how the remittances for the person with `certno` are answered.
    pub fn plan_remittances(&self, certno: &str, plan: RemitPlan) {
        self.state().remit_plans.insert(certno.to_owned(), plan);
    }

    /// Notes a remittance the suite sent (it plays transfer-out) and what the target found, so
    /// that a return of it is answered as `platform.proto` says.
    pub fn remitted(&self, transfer_id: &str, remitted: Remitted) {
        let mut state = self.state();
        let held = state.transfers.entry(transfer_id.to_owned()).or_default();
        if !held.remittances.contains(&remitted) {
            held.remittances.push(remitted);
        }
    }

    /// Notes a transfer the suite itself opened toward the target (it plays transfer-out and
    /// sent the form), so that the target's aborts and queries about it are answered.
    pub fn hold(&self, transfer_id: &str, certno: &str) {
        self.state()
            .transfers
            .entry(transfer_id.to_owned())
            .or_default()
            .certno = certno.to_owned();
    }

    /// What the suite holds about a transfer.
    #[must_use]
    pub fn held(&self, transfer_id: &str) -> Option<Held> {
        self.state().transfers.get(transfer_id).cloned()
    }

    /// The contract violations seen in the target's messages about a transfer.
    #[must_use]
    pub fn violations(&self, transfer_id: &str) -> Vec<String> {
        self.state()
            .violations
            .get(transfer_id)
            .cloned()
            .unwrap_or_default()
    }

    /// Every message the target sent about a transfer, in order.
    #[must_use]
    pub fn arrivals(&self, transfer_id: &str) -> Vec<Arrival> {
        self.state()
            .arrivals
            .iter()
            .filter(|a| a.transfer_id == transfer_id)
            .cloned()
            .collect()
    }

    /// The transfer id of the first request the target sent for the person with `certno`.
    #[must_use]
    pub fn requested_transfer_of(&self, certno: &str) -> Option<String> {
        self.find(|message| match message {
            Received::Request(r) => r.application.as_ref().is_some_and(|a| a.certno == certno),
            _ => false,
        })
    }

    /// The transfer id of the first form the target sent for the person with `certno`.
    #[must_use]
    pub fn form_transfer_of(&self, certno: &str) -> Option<String> {
        self.find(|message| match message {
            Received::Form(r) => r.form.as_ref().is_some_and(|f| f.certno == certno),
            _ => false,
        })
    }

    fn find(&self, matches: impl Fn(&Received) -> bool) -> Option<String> {
        self.state()
            .arrivals
            .iter()
            .find(|a| matches(&a.message))
            .map(|a| a.transfer_id.clone())
    }

    /// Waits until `check` finds something in what arrived, or `within` passes.
    pub async fn wait_for<T>(
        &self,
        within: Duration,
        check: impl Fn(&Self) -> Option<T>,
    ) -> Option<T> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(found) = check(self) {
                return Some(found);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Serves both platform services on `listener` (over mutual TLS when `tls` is given) until
    /// the task is dropped.
    ///
    /// # Errors
    /// If the server fails.
    pub async fn serve(
        self,
        listener: TcpListener,
        tls: Option<PlatformTls>,
    ) -> Result<(), tonic::transport::Error> {
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = tls {
            builder = builder.tls_config(tls.server())?;
        }
        builder
            .add_service(TransferOutPlatformServiceServer::new(self.clone()))
            .add_service(TransferInPlatformServiceServer::new(self))
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
    }

    /// Binds `address` for [`Counterpart::serve`].
    ///
    /// # Errors
    /// If it cannot be bound.
    pub async fn bind(address: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
        let listener = TcpListener::bind(address).await?;
        let bound = listener.local_addr()?;
        Ok((listener, bound))
    }

    fn reply(&self, infcode: i32, err_msg: &str) -> platform::Reply {
        platform::Reply {
            infcode,
            err_msg: err_msg.to_owned(),
            inf_refmsgid: self.identity.msgid(Utc::now()),
        }
    }

    /// Logs a message the target sent, with what the suite answered and what was wrong in it.
    fn log_arrival(
        &self,
        at: DateTime<Utc>,
        rpc: &'static str,
        envelope: platform::Envelope,
        answer: &Result<Answer, Status>,
        problems: &[String],
    ) {
        let mut outcome = match answer {
            Ok(answer) => describe(answer),
            Err(status) => format!("answered {:?}: {}", status.code(), status.message()),
        };
        for problem in problems {
            outcome.push_str(&format!("; CONTRACT VIOLATION: {problem}"));
        }
        self.log.keep(Exchange {
            at,
            way: Way::FromTarget,
            rpc,
            msgid: envelope.msgid,
            infno: envelope.infno,
            transfer_id: envelope.transfer_id,
            outcome,
        });
    }

    /// What the contract forbids in a message's envelope.
    fn envelope_problems(
        &self,
        rpc: &str,
        infno: &str,
        envelope: &platform::Envelope,
        body_transfer_id: &str,
        certified: Option<Vec<String>>,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        if envelope.infno != infno {
            problems.push(format!(
                "{rpc} sent with infno {:?}, not {infno}",
                envelope.infno
            ));
        }
        // The institution code names a region of the sending bureau: over mutual TLS, one its
        // certificate names; without TLS, the sender region.
        let institutions = certified.unwrap_or_else(|| vec![envelope.sender_region_code.clone()]);
        if let Some(problem) = msgid_problem(&envelope.msgid, &institutions) {
            problems.push(problem);
        }
        if envelope.sender_region_code != self.identity.target_region {
            problems.push(format!(
                "envelope.sender_region_code {:?} is not the target's region {}",
                envelope.sender_region_code, self.identity.target_region
            ));
        }
        if envelope.receiver_region_code != self.identity.own_region {
            problems.push(format!(
                "envelope.receiver_region_code {:?} is not the suite's region {}",
                envelope.receiver_region_code, self.identity.own_region
            ));
        }
        if envelope.transfer_id != body_transfer_id {
            problems.push(format!(
                "envelope.transfer_id {:?} differs from the body's {body_transfer_id:?}",
                envelope.transfer_id
            ));
        }
        if envelope.sent_at.is_none() {
            problems.push("envelope.sent_at is missing".to_owned());
        }
        problems
    }

    /// The common part of every handler: checks the envelope against the contract, keeps the
    /// arrival, replays a used msgid (1004 when the body changed), or answers anew with `fresh`.
    fn handle(
        &self,
        incoming: Incoming<'_>,
        fresh: impl FnOnce(&Self, &mut State) -> Result<Answer, Status>,
        refused: impl FnOnce(platform::Reply) -> Answer,
    ) -> Result<Answer, Status> {
        let Incoming {
            rpc,
            infno,
            envelope,
            body_transfer_id,
            bytes,
            message,
            certified,
        } = incoming;
        let now = Utc::now();
        let envelope = envelope.cloned().unwrap_or_default();
        let transfer_id = envelope.transfer_id.clone();
        let mut problems =
            self.envelope_problems(rpc, infno, &envelope, body_transfer_id, certified);
        let mut state = self.state();
        if state.arrivals.len() >= MAX_ARRIVALS {
            return Err(Status::resource_exhausted(format!(
                "the conformance suite keeps at most {MAX_ARRIVALS} messages of a run"
            )));
        }
        state.arrivals.push(Arrival {
            at: now,
            msgid: envelope.msgid.clone(),
            transfer_id: transfer_id.clone(),
            message,
        });
        let answer = match state.answers.get(&envelope.msgid) {
            Some((first, answer)) if *first == bytes => Ok(answer.clone()),
            Some(_) => {
                problems.push(format!(
                    "msgid {} was resent with a different body: a retry must resend the request unchanged",
                    envelope.msgid
                ));
                Ok(refused(self.reply(
                    1004,
                    "modified request: this msgid was processed with another body",
                )))
            }
            None => {
                let answer = fresh(self, &mut state);
                if let Ok(answer) = &answer {
                    state
                        .answers
                        .insert(envelope.msgid.clone(), (bytes, answer.clone()));
                }
                answer
            }
        };
        if !problems.is_empty() {
            state
                .violations
                .entry(transfer_id.clone())
                .or_default()
                .extend(problems.iter().cloned());
        }
        drop(state);
        self.log_arrival(now, rpc, envelope, &answer, &problems);
        answer
    }

    fn answer_request(
        &self,
        state: &mut State,
        request: &platform::RequestTransferOutRequest,
    ) -> Answer {
        let application = request.application.clone().unwrap_or_default();
        let transfer_id = application.transfer_id.clone();
        let held = state.transfers.entry(transfer_id).or_default();
        held.certno = application.certno.clone();
        held.accepted = true;
        let now = Utc::now();
        let due = self
            .calendar
            .add_working_days(china_date(now), 10)
            .map(|d| d.due_on.to_string())
            .unwrap_or_default();
        Answer::Request(platform::RequestTransferOutResponse {
            reply: Some(self.reply(0, "")),
            decision: Some(platform::request_transfer_out_response::Decision::Accepted(
                platform::TransferAcceptance {
                    accepted_at: Some(timestamp(now)),
                    transfer_out_due_on: due,
                },
            )),
        })
    }

    fn answer_form(
        &self,
        state: &mut State,
        form: &platform::InsuranceInformationForm,
    ) -> Result<Answer, Status> {
        let plan = state
            .form_plans
            .get(&form.certno)
            .copied()
            .unwrap_or_default();
        let held = state.transfers.entry(form.transfer_id.clone()).or_default();
        held.certno = form.certno.clone();
        held.deliveries += 1;
        if held.aborted {
            return Ok(Answer::Form(platform::DeliverInsuranceRecordResponse {
                reply: Some(self.reply(0, "")),
                acknowledgement: Some(platform::CreditAcknowledgement {
                    outcome: Some(platform::credit_acknowledgement::Outcome::Refused(
                        platform::TransferRejection {
                            reason_code: RefusalReason::Aborted as i32,
                            reason: "the transfer was aborted before this form arrived".to_owned(),
                        },
                    )),
                }),
            }));
        }
        if plan == FormPlan::Withhold {
            return Err(Status::unavailable(
                "the suite withholds its answer (planned)",
            ));
        }
        if held.credit.is_none() {
            // With a remittance to follow, the years now and the balance when it arrives.
            let credited_amount = if form.remittance_follows {
                held.awaited = Some(form.personal_account_balance.clone());
                "0.00".to_owned()
            } else {
                form.personal_account_balance.clone()
            };
            held.credit = Some(platform::Credited {
                credited_months: form.contribution_months,
                credited_amount,
                credited_at: Some(timestamp(Utc::now())),
            });
        }
        let lose = match plan {
            FormPlan::CreditLosingAnswers(n) => held.deliveries <= n,
            FormPlan::CreditSilently => true,
            FormPlan::Credit | FormPlan::Withhold => false,
        };
        if lose {
            return Err(Status::unavailable(
                "the suite lost its answer on the way back (planned)",
            ));
        }
        Ok(Answer::Form(platform::DeliverInsuranceRecordResponse {
            reply: Some(self.reply(0, "")),
            acknowledgement: Some(platform::CreditAcknowledgement {
                outcome: held
                    .credit
                    .clone()
                    .map(platform::credit_acknowledgement::Outcome::Credited),
            }),
        }))
    }

    fn answer_abort(&self, state: &mut State, transfer_id: &str) -> Answer {
        let held = state.transfers.entry(transfer_id.to_owned()).or_default();
        let credit = held.credit.clone();
        if credit.is_none() {
            held.aborted = true;
        }
        Answer::Abort(platform::AbortTransferResponse {
            reply: Some(self.reply(0, "")),
            credited: credit.is_some(),
            credit,
        })
    }

    fn snapshot(
        &self,
        state: &State,
        transfer_id: &str,
        side: Side,
    ) -> Option<platform::TransferSnapshot> {
        let held = state.transfers.get(transfer_id)?;
        let awaiting = held.awaited.is_some() && held.matched().is_none();
        let (state, reason) = if awaiting && side == Side::TransferIn {
            (TransferState::AwaitingFunds, RefusalReason::Unspecified)
        } else if awaiting {
            (TransferState::InTransit, RefusalReason::Unspecified)
        } else if held.credit.is_some() || held.matched().is_some() {
            (TransferState::Completed, RefusalReason::Unspecified)
        } else if held.aborted {
            (TransferState::Aborted, RefusalReason::DeadlineExpired)
        } else {
            (TransferState::InTransit, RefusalReason::Unspecified)
        };
        Some(platform::TransferSnapshot {
            transfer_id: transfer_id.to_owned(),
            state: state as i32,
            side: side as i32,
            updated_at: Some(timestamp(Utc::now())),
            refusal_reason: reason as i32,
            refusal_message: String::new(),
        })
    }

    fn received_form(
        &self,
        request: platform::DeliverInsuranceRecordRequest,
        certified: Option<Vec<String>>,
    ) -> Result<Answer, Status> {
        let form = request.form.clone().unwrap_or_default();
        self.handle(
            Incoming {
                rpc: "DeliverInsuranceRecord",
                infno: "9102",
                envelope: request.envelope.as_ref(),
                body_transfer_id: &form.transfer_id,
                bytes: request.encode_to_vec(),
                message: Received::Form(request.clone()),
                certified,
            },
            |me, state| me.answer_form(state, &form),
            |reply| {
                Answer::Form(platform::DeliverInsuranceRecordResponse {
                    reply: Some(reply),
                    acknowledgement: None,
                })
            },
        )
    }

    /// A remittance from the target (the suite plays transfer-in): checked against the form
    /// that said remittance_follows, to the cent; answered as planned for the person.
    fn answer_remit(
        &self,
        state: &mut State,
        request: &platform::RemitBalanceRequest,
        msgid: &str,
    ) -> Answer {
        use platform::RemittanceCheck as Check;
        let answer = |reply, check: Check| {
            Answer::Remit(platform::RemitBalanceResponse {
                reply: Some(reply),
                check: check as i32,
            })
        };
        let Some(held) = state.transfers.get(&request.transfer_id) else {
            return answer(self.reply(1005, "unknown transfer"), Check::Unspecified);
        };
        let plan = state
            .remit_plans
            .get(&held.certno)
            .copied()
            .unwrap_or_default();
        let Some(awaited) = held.awaited.clone().filter(|_| held.credit.is_some()) else {
            return answer(
                self.reply(
                    1006,
                    "the transfer's form did not say remittance_follows, or was not credited",
                ),
                Check::Unspecified,
            );
        };
        if held.matched().is_some() {
            return answer(self.reply(0, ""), Check::Matched);
        }
        let (Ok(remitted), Ok(stated)) = (Money::parse(&request.amount), Money::parse(&awaited))
        else {
            return answer(
                self.reply(
                    1001,
                    "amount: must be a decimal amount in yuan with two places",
                ),
                Check::Unspecified,
            );
        };
        let found = match remitted.cmp(&stated) {
            std::cmp::Ordering::Equal => Check::Matched,
            std::cmp::Ordering::Less => Check::Short,
            std::cmp::Ordering::Greater => Check::Over,
        };
        let refuse = plan == RemitPlan::RefuseFirst && held.remittances.is_empty();
        let check = if refuse { Check::Short } else { found };
        if found != Check::Matched {
            state
                .violations
                .entry(request.transfer_id.clone())
                .or_default()
                .push(format!(
                    "RemitBalance {msgid} carried {} but the form stated a balance of {awaited}",
                    request.amount
                ));
        }
        if let Some(held) = state.transfers.get_mut(&request.transfer_id) {
            held.remittances.push(Remitted {
                msgid: msgid.to_owned(),
                amount: request.amount.clone(),
                check,
            });
        }
        answer(self.reply(0, ""), check)
    }

    /// A return of one of the suite's remittances (the suite plays transfer-out): the suite
    /// remits again when it names its latest remittance of a transfer not yet matched (the case
    /// sends that remittance).
    fn answer_return(&self, state: &State, request: &platform::ReturnRemittanceRequest) -> Answer {
        let answer = |reply, remitting_again| {
            Answer::Return(platform::ReturnRemittanceResponse {
                reply: Some(reply),
                remitting_again,
            })
        };
        let Some(held) = state.transfers.get(&request.transfer_id) else {
            return answer(self.reply(1005, "unknown transfer"), false);
        };
        if held.remittances.is_empty() {
            return answer(
                self.reply(1006, "the suite remitted nothing for this transfer"),
                false,
            );
        }
        let latest = held
            .remittances
            .last()
            .is_some_and(|r| r.msgid == request.remittance_msgid);
        answer(self.reply(0, ""), latest && held.matched().is_none())
    }

    fn received_remit(
        &self,
        request: platform::RemitBalanceRequest,
        certified: Option<Vec<String>>,
    ) -> Result<Answer, Status> {
        let msgid = request
            .envelope
            .as_ref()
            .map(|e| e.msgid.clone())
            .unwrap_or_default();
        self.handle(
            Incoming {
                rpc: "RemitBalance",
                infno: "9106",
                envelope: request.envelope.as_ref(),
                body_transfer_id: &request.transfer_id,
                bytes: request.encode_to_vec(),
                message: Received::Remittance(request.clone()),
                certified,
            },
            |me, state| Ok(me.answer_remit(state, &request, &msgid)),
            |reply| {
                Answer::Remit(platform::RemitBalanceResponse {
                    reply: Some(reply),
                    check: 0,
                })
            },
        )
    }

    fn received_return(
        &self,
        request: platform::ReturnRemittanceRequest,
        certified: Option<Vec<String>>,
    ) -> Result<Answer, Status> {
        self.handle(
            Incoming {
                rpc: "ReturnRemittance",
                infno: "9107",
                envelope: request.envelope.as_ref(),
                body_transfer_id: &request.transfer_id,
                bytes: request.encode_to_vec(),
                message: Received::Return(request.clone()),
                certified,
            },
            |me, state| Ok(me.answer_return(state, &request)),
            |reply| {
                Answer::Return(platform::ReturnRemittanceResponse {
                    reply: Some(reply),
                    remitting_again: false,
                })
            },
        )
    }

    fn received_abort(
        &self,
        request: platform::AbortTransferRequest,
        certified: Option<Vec<String>>,
    ) -> Result<Answer, Status> {
        let transfer_id = request.transfer_id.clone();
        self.handle(
            Incoming {
                rpc: "AbortTransfer",
                infno: "9104",
                envelope: request.envelope.as_ref(),
                body_transfer_id: &transfer_id,
                bytes: request.encode_to_vec(),
                message: Received::Abort(request.clone()),
                certified,
            },
            |me, state| Ok(me.answer_abort(state, &transfer_id)),
            |reply| {
                Answer::Abort(platform::AbortTransferResponse {
                    reply: Some(reply),
                    ..Default::default()
                })
            },
        )
    }

    fn received_settlement(
        &self,
        request: platform::ConfirmSettlementRequest,
        certified: Option<Vec<String>>,
    ) -> Result<Answer, Status> {
        self.handle(
            Incoming {
                rpc: "ConfirmSettlement",
                infno: "9103",
                envelope: request.envelope.as_ref(),
                body_transfer_id: &request.transfer_id,
                bytes: request.encode_to_vec(),
                message: Received::Settlement(request.clone()),
                certified,
            },
            |me, _| {
                Ok(Answer::Settlement(platform::ConfirmSettlementResponse {
                    reply: Some(me.reply(0, "")),
                }))
            },
            |reply| Answer::Settlement(platform::ConfirmSettlementResponse { reply: Some(reply) }),
        )
    }

    fn received_request(
        &self,
        request: platform::RequestTransferOutRequest,
        certified: Option<Vec<String>>,
    ) -> Result<Answer, Status> {
        let transfer_id = request
            .application
            .as_ref()
            .map(|a| a.transfer_id.clone())
            .unwrap_or_default();
        self.handle(
            Incoming {
                rpc: "RequestTransferOut",
                infno: "9101",
                envelope: request.envelope.as_ref(),
                body_transfer_id: &transfer_id,
                bytes: request.encode_to_vec(),
                message: Received::Request(request.clone()),
                certified,
            },
            |me, state| Ok(me.answer_request(state, &request)),
            |reply| {
                Answer::Request(platform::RequestTransferOutResponse {
                    reply: Some(reply),
                    decision: None,
                })
            },
        )
    }
}

fn describe(answer: &Answer) -> String {
    let reply = |reply: &Option<platform::Reply>| {
        let infcode = reply.as_ref().map_or(-1, |r| r.infcode);
        if infcode == 0 {
            String::from("infcode 0")
        } else {
            format!("infcode {infcode}")
        }
    };
    match answer {
        Answer::Request(r) => match &r.decision {
            Some(platform::request_transfer_out_response::Decision::Accepted(a)) => {
                format!(
                    "{}, accepted, due {}",
                    reply(&r.reply),
                    a.transfer_out_due_on
                )
            }
            Some(platform::request_transfer_out_response::Decision::Rejected(j)) => {
                format!(
                    "{}, rejected {}",
                    reply(&r.reply),
                    reason_name(j.reason_code)
                )
            }
            Some(platform::request_transfer_out_response::Decision::UnderReview(u)) => {
                format!("{}, under review until {}", reply(&r.reply), u.decided_on)
            }
            None => reply(&r.reply),
        },
        Answer::Form(r) => match r.acknowledgement.as_ref().and_then(|a| a.outcome.as_ref()) {
            Some(platform::credit_acknowledgement::Outcome::Credited(c)) => format!(
                "{}, credited {} months and {}",
                reply(&r.reply),
                c.credited_months,
                c.credited_amount
            ),
            Some(platform::credit_acknowledgement::Outcome::Refused(j)) => {
                format!(
                    "{}, refused {}",
                    reply(&r.reply),
                    reason_name(j.reason_code)
                )
            }
            None => reply(&r.reply),
        },
        Answer::Abort(r) => format!("{}, credited = {}", reply(&r.reply), r.credited),
        Answer::Settlement(r) => reply(&r.reply),
        Answer::Remit(r) => format!("{}, check {}", reply(&r.reply), check_name(r.check)),
        Answer::Return(r) => format!(
            "{}, remitting_again = {}",
            reply(&r.reply),
            r.remitting_again
        ),
        Answer::QueryOut(r) => format!(
            "{}{}",
            reply(&r.reply),
            r.transfer.as_ref().map(snapshot_text).unwrap_or_default()
        ),
        Answer::QueryIn(r) => format!(
            "{}{}",
            reply(&r.reply),
            r.transfer.as_ref().map(snapshot_text).unwrap_or_default()
        ),
    }
}

fn snapshot_text(snapshot: &platform::TransferSnapshot) -> String {
    format!(", state {}", state_name(snapshot.state))
}

/// The proto name of a transfer state number.
#[must_use]
pub fn state_name(state: i32) -> &'static str {
    TransferState::try_from(state).map_or("UNKNOWN", |s| s.as_str_name())
}

/// The proto name of a remittance check number.
#[must_use]
pub fn check_name(check: i32) -> &'static str {
    platform::RemittanceCheck::try_from(check).map_or("UNKNOWN", |c| c.as_str_name())
}

/// The proto name of a refusal reason number.
#[must_use]
pub fn reason_name(reason: i32) -> &'static str {
    RefusalReason::try_from(reason).map_or("UNKNOWN", |r| r.as_str_name())
}

/// A batch message's status for a failed single answer.
fn message_status(status: &Status) -> platform::MessageStatus {
    platform::MessageStatus {
        code: status.code() as i32,
        message: status.message().chars().take(200).collect(),
    }
}

/// The regions the caller's certificate names, when it presented one over mutual TLS.
fn certified_regions<T>(request: &Request<T>) -> Option<Vec<String>> {
    let certificates = request.peer_certs()?;
    let first = certificates.first()?;
    Some(
        yibao_runtime::tls::regions_presented(first.as_ref())
            .iter()
            .map(ToString::to_string)
            .collect(),
    )
}

fn unexpected() -> Status {
    Status::internal("the suite's answer did not match its message kind")
}

#[tonic::async_trait]
impl TransferOutPlatformService for Counterpart {
    async fn request_transfer_out(
        &self,
        request: Request<platform::RequestTransferOutRequest>,
    ) -> Result<Response<platform::RequestTransferOutResponse>, Status> {
        let certified = certified_regions(&request);
        match self.received_request(request.into_inner(), certified)? {
            Answer::Request(r) => Ok(Response::new(r)),
            _ => Err(unexpected()),
        }
    }

    async fn return_remittance(
        &self,
        request: Request<platform::ReturnRemittanceRequest>,
    ) -> Result<Response<platform::ReturnRemittanceResponse>, Status> {
        let certified = certified_regions(&request);
        match self.received_return(request.into_inner(), certified)? {
            Answer::Return(r) => Ok(Response::new(r)),
            _ => Err(unexpected()),
        }
    }

    async fn query_transfer_out(
        &self,
        request: Request<platform::QueryTransferOutRequest>,
    ) -> Result<Response<platform::QueryTransferOutResponse>, Status> {
        let certified = certified_regions(&request);
        let request = request.into_inner();
        let transfer_id = request.transfer_id.clone();
        let answer = self.handle(
            Incoming {
                rpc: "QueryTransferOut",
                infno: "9105",
                envelope: request.envelope.as_ref(),
                body_transfer_id: &transfer_id,
                bytes: request.encode_to_vec(),
                message: Received::QueryOut(request.clone()),
                certified,
            },
            |me, state| {
                Ok(Answer::QueryOut(
                    match me.snapshot(state, &transfer_id, Side::TransferOut) {
                        Some(snapshot) => platform::QueryTransferOutResponse {
                            reply: Some(me.reply(0, "")),
                            transfer: Some(snapshot),
                        },
                        None => platform::QueryTransferOutResponse {
                            reply: Some(me.reply(1005, "unknown transfer")),
                            transfer: None,
                        },
                    },
                ))
            },
            |reply| {
                Answer::QueryOut(platform::QueryTransferOutResponse {
                    reply: Some(reply),
                    transfer: None,
                })
            },
        )?;
        match answer {
            Answer::QueryOut(r) => Ok(Response::new(r)),
            _ => Err(unexpected()),
        }
    }

    async fn submit_transfer_out_requests(
        &self,
        request: Request<platform::SubmitTransferOutRequestsRequest>,
    ) -> Result<Response<platform::SubmitTransferOutRequestsResponse>, Status> {
        let certified = certified_regions(&request);
        let answers = request
            .into_inner()
            .requests
            .into_iter()
            .map(|r| platform::TransferOutAnswer {
                answer: Some(match self.received_request(r, certified.clone()) {
                    Ok(Answer::Request(r)) => platform::transfer_out_answer::Answer::Response(r),
                    Ok(_) => {
                        platform::transfer_out_answer::Answer::Failed(message_status(&unexpected()))
                    }
                    Err(status) => {
                        platform::transfer_out_answer::Answer::Failed(message_status(&status))
                    }
                }),
            })
            .collect();
        Ok(Response::new(platform::SubmitTransferOutRequestsResponse {
            answers,
        }))
    }
}

#[tonic::async_trait]
impl TransferInPlatformService for Counterpart {
    async fn deliver_insurance_record(
        &self,
        request: Request<platform::DeliverInsuranceRecordRequest>,
    ) -> Result<Response<platform::DeliverInsuranceRecordResponse>, Status> {
        let certified = certified_regions(&request);
        match self.received_form(request.into_inner(), certified)? {
            Answer::Form(r) => Ok(Response::new(r)),
            _ => Err(unexpected()),
        }
    }

    async fn confirm_settlement(
        &self,
        request: Request<platform::ConfirmSettlementRequest>,
    ) -> Result<Response<platform::ConfirmSettlementResponse>, Status> {
        let certified = certified_regions(&request);
        match self.received_settlement(request.into_inner(), certified)? {
            Answer::Settlement(r) => Ok(Response::new(r)),
            _ => Err(unexpected()),
        }
    }

    async fn abort_transfer(
        &self,
        request: Request<platform::AbortTransferRequest>,
    ) -> Result<Response<platform::AbortTransferResponse>, Status> {
        let certified = certified_regions(&request);
        match self.received_abort(request.into_inner(), certified)? {
            Answer::Abort(r) => Ok(Response::new(r)),
            _ => Err(unexpected()),
        }
    }

    async fn remit_balance(
        &self,
        request: Request<platform::RemitBalanceRequest>,
    ) -> Result<Response<platform::RemitBalanceResponse>, Status> {
        let certified = certified_regions(&request);
        match self.received_remit(request.into_inner(), certified)? {
            Answer::Remit(r) => Ok(Response::new(r)),
            _ => Err(unexpected()),
        }
    }

    async fn query_transfer_in(
        &self,
        request: Request<platform::QueryTransferInRequest>,
    ) -> Result<Response<platform::QueryTransferInResponse>, Status> {
        let certified = certified_regions(&request);
        let request = request.into_inner();
        let transfer_id = request.transfer_id.clone();
        let answer = self.handle(
            Incoming {
                rpc: "QueryTransferIn",
                infno: "9105",
                envelope: request.envelope.as_ref(),
                body_transfer_id: &transfer_id,
                bytes: request.encode_to_vec(),
                message: Received::QueryIn(request.clone()),
                certified,
            },
            |me, state| {
                Ok(Answer::QueryIn(
                    match me.snapshot(state, &transfer_id, Side::TransferIn) {
                        Some(snapshot) => platform::QueryTransferInResponse {
                            reply: Some(me.reply(0, "")),
                            transfer: Some(snapshot),
                        },
                        None => platform::QueryTransferInResponse {
                            reply: Some(me.reply(1005, "unknown transfer")),
                            transfer: None,
                        },
                    },
                ))
            },
            |reply| {
                Answer::QueryIn(platform::QueryTransferInResponse {
                    reply: Some(reply),
                    transfer: None,
                })
            },
        )?;
        match answer {
            Answer::QueryIn(r) => Ok(Response::new(r)),
            _ => Err(unexpected()),
        }
    }

    async fn submit_transfer_in_messages(
        &self,
        request: Request<platform::SubmitTransferInMessagesRequest>,
    ) -> Result<Response<platform::SubmitTransferInMessagesResponse>, Status> {
        use platform::transfer_in_answer::Answer as Out;
        use platform::transfer_in_message::Message as In;
        let certified = certified_regions(&request);
        let answers = request
            .into_inner()
            .messages
            .into_iter()
            .map(|m| {
                let answer = match m.message {
                    Some(In::DeliverInsuranceRecord(r)) => self.received_form(r, certified.clone()),
                    Some(In::ConfirmSettlement(r)) => {
                        self.received_settlement(r, certified.clone())
                    }
                    Some(In::AbortTransfer(r)) => self.received_abort(r, certified.clone()),
                    Some(In::RemitBalance(r)) => self.received_remit(r, certified.clone()),
                    None => Err(Status::invalid_argument(
                        "message: one of its kinds must be set",
                    )),
                };
                platform::TransferInAnswer {
                    answer: Some(match answer {
                        Ok(Answer::Form(r)) => Out::DeliverInsuranceRecord(r),
                        Ok(Answer::Settlement(r)) => Out::ConfirmSettlement(r),
                        Ok(Answer::Abort(r)) => Out::AbortTransfer(r),
                        Ok(Answer::Remit(r)) => Out::RemitBalance(r),
                        Ok(_) => Out::Failed(message_status(&unexpected())),
                        Err(status) => Out::Failed(message_status(&status)),
                    }),
                }
            })
            .collect();
        Ok(Response::new(platform::SubmitTransferInMessagesResponse {
            answers,
        }))
    }
}
