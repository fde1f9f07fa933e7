//! What a case works with: the target's clients, the suite's counterpart, its people, and the
//! calls that log every message they send and what came back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tonic::transport::Channel;
use tonic::{Code, Status};
use yibao_domain::calendar::WorkingCalendar;
use yibao_domain::money::Money;
use yibao_domain::month::total_months;
use yibao_domain::population::{Flow, SyntheticPerson, index_of, person};
use yibao_domain::scheme::Scheme;
use yibao_harness::AdminClient;
use yibao_proto::admin::v1 as admin;
use yibao_proto::bureau::v1::bureau_service_client::BureauServiceClient;
use yibao_proto::common::v1 as common;
use yibao_proto::platform::v1 as platform;
use yibao_proto::platform::v1::transfer_in_platform_service_client::TransferInPlatformServiceClient;
use yibao_proto::platform::v1::transfer_out_platform_service_client::TransferOutPlatformServiceClient;

use crate::counterpart::{Counterpart, reason_name, state_name};
use crate::exchange::{Exchange, ExchangeLog, Way};
use crate::identity::{Identity, timestamp};
use crate::{Role, Settings};

/// Why a case did not pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The target broke an expectation.
    Fail {
        /// What the contract or DOMAIN.md expects.
        expected: String,
        /// What the target did.
        observed: String,
    },
    /// The case could not run against this target.
    Skip(String),
}

/// A case's result before it is reported.
pub type Checked = Result<(), Verdict>;

/// Fails with `expected` and `observed` unless `holds`.
///
/// # Errors
/// [`Verdict::Fail`] when it does not hold.
pub fn expect(
    holds: bool,
    expected: impl Into<String>,
    observed: impl FnOnce() -> String,
) -> Checked {
    if holds {
        Ok(())
    } else {
        Err(Verdict::Fail {
            expected: expected.into(),
            observed: observed(),
        })
    }
}

/// Fails unless `second` is `first` again, unchanged; the failure names the fields that differ.
///
/// # Errors
/// [`Verdict::Fail`] when they differ.
pub fn same_answer<M: PartialEq + std::fmt::Debug>(
    first: &M,
    second: &M,
    text: impl Fn(&M) -> String,
) -> Checked {
    expect(
        second == first,
        format!("the first answer again, unchanged: {}", text(first)),
        || {
            format!(
                "{}; it differs in {}",
                text(second),
                differences(first, second).join(", ")
            )
        },
    )
}

/// The fields two messages differ in, as `path: first → second`, from their pretty Debug forms.
fn differences<M: std::fmt::Debug>(first: &M, second: &M) -> Vec<String> {
    let first = format!("{first:#?}");
    let second = format!("{second:#?}");
    // (indentation, field name) of the fields enclosing the current line.
    let mut path: Vec<(usize, String)> = Vec::new();
    let mut found = Vec::new();
    for (a, b) in first.lines().zip(second.lines()) {
        let depth = a.len() - a.trim_start().len();
        while path.last().is_some_and(|(d, _)| *d >= depth) {
            path.pop();
        }
        if let Some((key, _)) = a.trim().split_once(": ") {
            path.push((depth, key.to_owned()));
        }
        if a != b && found.len() < 5 {
            let value = |line: &str| {
                line.trim()
                    .split_once(": ")
                    .map_or(line.trim(), |(_, v)| v)
                    .trim_end_matches(',')
                    .to_owned()
            };
            let names: Vec<&str> = path.iter().map(|(_, key)| key.as_str()).collect();
            found.push(format!("{}: {} → {}", names.join("."), value(a), value(b)));
        }
    }
    if found.is_empty() {
        found.push("its shape".to_owned());
    }
    found
}

/// The target: its platform endpoint and, when it has them, yibao's bureau and admin APIs.
#[derive(Clone, Debug)]
pub struct Target {
    /// The target's platform listener.
    pub platform: Channel,
    /// The target's people-facing API (`bureau.proto`), to start applications.
    pub api: Option<Channel>,
    /// The target's admin API (`admin.proto`): clock, seeding, ledger, journal.
    pub admin: Option<AdminClient>,
}

/// The suite's own account of the money of the transfers it opened or credited.
#[derive(Debug, Default)]
pub struct Tally {
    /// Transfers whose form the suite sent (it plays transfer-out): id → balance sent.
    pub sent: Vec<(String, Money)>,
}

/// Everything a case needs; cheap to clone.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// The run's settings.
    pub settings: Arc<Settings>,
    /// Who the suite speaks as.
    pub identity: Arc<Identity>,
    /// The suite's bureau, which the target calls.
    pub counterpart: Counterpart,
    /// Every message sent and received.
    pub log: ExchangeLog,
    /// The target.
    pub target: Target,
    /// The working-day calendar (the shipped one).
    pub calendar: Arc<WorkingCalendar>,
    /// The next person of each flow to use.
    people: Arc<AtomicU64>,
    /// The transfers this case touched (its report shows their messages).
    tracked: Arc<Mutex<Vec<String>>>,
    /// The money the suite moved.
    pub tally: Arc<Mutex<Tally>>,
    /// Every transfer any case touched.
    all: Arc<Mutex<Vec<String>>>,
    /// The target's ledger totals before the first case, when it has the admin API.
    baseline: Arc<Mutex<Option<admin::LedgerTotals>>>,
}

/// How long one call to the target may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a wait asks the target again.
const POLL: Duration = Duration::from_millis(200);

impl Ctx {
    /// A context for the run.
    #[must_use]
    pub fn new(
        settings: Arc<Settings>,
        identity: Arc<Identity>,
        counterpart: Counterpart,
        log: ExchangeLog,
        target: Target,
        calendar: Arc<WorkingCalendar>,
    ) -> Self {
        Ctx {
            people: Arc::new(AtomicU64::new(settings.first_person)),
            settings,
            identity,
            counterpart,
            log,
            target,
            calendar,
            tracked: Arc::default(),
            tally: Arc::default(),
            all: Arc::default(),
            baseline: Arc::default(),
        }
    }

    /// Reads the target's ledger totals as they are before the first case.
    pub async fn take_baseline(&self) {
        let totals = self.target_totals().await;
        if let Ok(mut baseline) = self.baseline.lock() {
            *baseline = totals;
        }
    }

    /// The target's ledger totals before the first case.
    #[must_use]
    pub fn baseline(&self) -> Option<admin::LedgerTotals> {
        self.baseline.lock().ok().and_then(|b| b.clone())
    }

    /// Every transfer any case touched so far.
    #[must_use]
    pub fn all_tracked(&self) -> Vec<String> {
        self.all.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// The same context for the next case, with nothing tracked yet.
    #[must_use]
    pub fn for_case(&self) -> Self {
        Ctx {
            tracked: Arc::default(),
            ..self.clone()
        }
    }

    /// The transfers this case touched.
    #[must_use]
    pub fn tracked(&self) -> Vec<String> {
        self.tracked.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Notes that this case touched `transfer_id`.
    pub fn track(&self, transfer_id: &str) {
        for list in [&self.tracked, &self.all] {
            if let Ok(mut tracked) = list.lock()
                && !tracked.iter().any(|t| t == transfer_id)
            {
                tracked.push(transfer_id.to_owned());
            }
        }
    }

    /// The role the target plays.
    #[must_use]
    pub fn role(&self) -> Role {
        self.settings.role
    }

    /// The next unused person of `flow`, seeded at the target when it has the admin API (a
    /// target without one must hold the same deterministic population).
    ///
    /// # Errors
    /// A failure when the population has no such person.
    pub async fn person(&self, flow: Flow) -> Result<SyntheticPerson, Verdict> {
        let n = self.people.fetch_add(1, Ordering::Relaxed);
        let found =
            person(self.settings.seed, index_of(flow, n)).map_err(|error| Verdict::Fail {
                expected: format!("person {n} of flow {} in the population", flow.name()),
                observed: error.to_string(),
            })?;
        if let Some(mut admin) = self.target.admin.clone() {
            let seeded = admin
                .seed_population(admin::SeedPopulationRequest {
                    seed: self.settings.seed,
                    first_index: found.index,
                    count: 1,
                })
                .await;
            if let Err(status) = seeded
                && status.code() != Code::Unimplemented
            {
                return Err(Verdict::Fail {
                    expected: "the target's AdminService.SeedPopulation seeds the case's person"
                        .into(),
                    observed: status_text(&status),
                });
            }
        }
        Ok(found)
    }

    /// The target's clock when it has the admin API, else this machine's.
    pub async fn now(&self) -> DateTime<Utc> {
        if let Some(mut admin) = self.target.admin.clone()
            && let Ok(clock) = admin.get_clock(admin::GetClockRequest {}).await
            && let Some(now) = clock.into_inner().now
            && let Some(at) =
                DateTime::from_timestamp(now.seconds, u32::try_from(now.nanos).unwrap_or(0))
        {
            return at;
        }
        Utc::now()
    }

    /// Moves the target's test clock forward.
    ///
    /// # Errors
    /// [`Verdict::Skip`] when the target has no admin API or runs on the real clock.
    pub async fn advance_target_clock(&self, by: Duration) -> Checked {
        let Some(mut admin) = self.target.admin.clone() else {
            return Err(Verdict::Skip(
                "the target's clock cannot be moved: give --target-admin (AdminService.AdvanceClock) of a target on a test clock".into(),
            ));
        };
        let by = prost_types::Duration {
            seconds: i64::try_from(by.as_secs()).unwrap_or(i64::MAX),
            nanos: 0,
        };
        match admin
            .advance_clock(admin::AdvanceClockRequest { by: Some(by) })
            .await
        {
            Ok(_) => Ok(()),
            Err(status)
                if matches!(
                    status.code(),
                    Code::Unimplemented | Code::FailedPrecondition | Code::PermissionDenied
                ) =>
            {
                Err(Verdict::Skip(format!(
                    "the target's clock cannot be moved: AdvanceClock answered {}",
                    status_text(&status)
                )))
            }
            Err(status) => Err(Verdict::Fail {
                expected: "AdvanceClock moves the target's test clock".into(),
                observed: status_text(&status),
            }),
        }
    }

    /// Starts an application at the target through its bureau API.
    ///
    /// # Errors
    /// [`Verdict::Skip`] when the target has no bureau API; a failure when it refuses.
    pub async fn apply_at_target(&self, person: &SyntheticPerson) -> Result<String, Verdict> {
        let Some(api) = self.target.api.clone() else {
            return Err(Verdict::Skip(
                "this flow starts with an application at the target: give --target-api (BureauService.ApplyTransfer)".into(),
            ));
        };
        let mut client = BureauServiceClient::new(api);
        match client
            .apply_transfer(yibao_harness::population::apply_request(person))
            .await
        {
            Ok(response) => {
                let id = response
                    .into_inner()
                    .transfer
                    .map(|t| t.transfer_id)
                    .unwrap_or_default();
                self.track(&id);
                Ok(id)
            }
            Err(status) if status.code() == Code::Unimplemented => Err(Verdict::Skip(format!(
                "the target serves no BureauService.ApplyTransfer: {}",
                status_text(&status)
            ))),
            Err(status) => Err(Verdict::Fail {
                expected: "the target accepts the application (BureauService.ApplyTransfer)".into(),
                observed: status_text(&status),
            }),
        }
    }

    /// The target's ledger totals, when it has the admin API.
    pub async fn target_totals(&self) -> Option<admin::LedgerTotals> {
        let mut admin = self.target.admin.clone()?;
        admin
            .get_ledger_totals(admin::GetLedgerTotalsRequest {})
            .await
            .ok()?
            .into_inner()
            .totals
    }

    /// The target's message journal of a transfer, when it has the admin API.
    pub async fn target_journal(
        &self,
        transfer_id: &str,
    ) -> Option<Vec<admin::MessageJournalEntry>> {
        let mut admin = self.target.admin.clone()?;
        Some(
            admin
                .get_message_journal(admin::GetMessageJournalRequest {
                    transfer_id: transfer_id.to_owned(),
                })
                .await
                .ok()?
                .into_inner()
                .entries,
        )
    }

    /// An envelope from the suite.
    pub fn envelope(&self, infno: &str, transfer_id: &str) -> platform::Envelope {
        self.identity.envelope(infno, transfer_id, Utc::now())
    }

    /// A fresh transfer id of the suite's region.
    pub async fn new_transfer_id(&self) -> String {
        let id = self
            .identity
            .transfer_id(crate::identity::china_date(self.now().await));
        self.track(&id);
        id
    }

    /// The information form the suite (as transfer-out) sends for `person`.
    pub async fn form(
        &self,
        person: &SyntheticPerson,
        transfer_id: &str,
    ) -> platform::InsuranceInformationForm {
        let now = self.now().await;
        platform::InsuranceInformationForm {
            transfer_id: transfer_id.to_owned(),
            certno: person.certno.expose_unmasked().to_owned(),
            psn_name: person.name.clone(),
            insutype: wire_scheme(person.out_scheme) as i32,
            trafout_admdvs: self.identity.own_region.clone(),
            trafin_admdvs: self.identity.target_region.clone(),
            fst_insu_ym: person.first_insured.to_string(),
            periods: person
                .periods
                .iter()
                .map(|p| common::ContributionPeriod {
                    from_month: p.from().to_string(),
                    to_month: p.to().to_string(),
                    scheme: wire_scheme(p.scheme()) as i32,
                    region_code: p.region().to_string(),
                })
                .collect(),
            contribution_months: total_months(&person.periods),
            deemed_months: 0,
            personal_account_balance: person.balance.to_string(),
            balance_disposition: common::BalanceDisposition::MoveToAccount as i32,
            flow_kind: common::FlowKind::CrossProvince as i32,
            initiator: common::Initiator::TransferOutBureau as i32,
            issued_at: Some(timestamp(now)),
            issuing_bureau_region_code: self.identity.own_region.clone(),
            applied_on: crate::identity::china_date(now).to_string(),
            // The balance travels on the form, as under the default policy.
            remittance_follows: false,
        }
    }

    /// The application the suite (as transfer-in) sends for `person`.
    pub async fn application(
        &self,
        person: &SyntheticPerson,
        transfer_id: &str,
    ) -> platform::TransferApplication {
        platform::TransferApplication {
            transfer_id: transfer_id.to_owned(),
            certno: person.certno.expose_unmasked().to_owned(),
            psn_name: person.name.clone(),
            insutype_at_transfer_in: wire_scheme(person.in_scheme) as i32,
            trafout_admdvs: self.identity.target_region.clone(),
            trafin_admdvs: self.identity.own_region.clone(),
            applied_at: Some(timestamp(self.now().await)),
            bank_account: None,
            retiree_payout_requested: false,
            channel: common::ApplicationChannel::Online as i32,
        }
    }

    fn keep(
        &self,
        rpc: &'static str,
        envelope: Option<&platform::Envelope>,
        transfer_id: &str,
        outcome: String,
    ) {
        let envelope = envelope.cloned().unwrap_or_default();
        self.track(transfer_id);
        self.log.keep(Exchange {
            at: Utc::now(),
            way: Way::ToTarget,
            rpc,
            msgid: envelope.msgid,
            infno: envelope.infno,
            transfer_id: transfer_id.to_owned(),
            outcome,
        });
    }

    /// Awaits a call to the target and logs what came of it (`text` words an answer).
    async fn logged<R>(
        &self,
        rpc: &'static str,
        envelope: Option<&platform::Envelope>,
        transfer_id: &str,
        call: impl std::future::Future<Output = Result<tonic::Response<R>, Status>>,
        text: impl FnOnce(&R) -> String,
    ) -> Result<R, Status> {
        let answer = call.await.map(tonic::Response::into_inner);
        let outcome = match &answer {
            Ok(r) => text(r),
            Err(status) => status_text(status),
        };
        self.keep(rpc, envelope, transfer_id, outcome);
        answer
    }

    fn to_in(&self) -> TransferInPlatformServiceClient<Channel> {
        TransferInPlatformServiceClient::new(self.target.platform.clone())
    }

    fn to_out(&self) -> TransferOutPlatformServiceClient<Channel> {
        TransferOutPlatformServiceClient::new(self.target.platform.clone())
    }

    /// Sends DeliverInsuranceRecord.
    ///
    /// # Errors
    /// The status the target answered.
    pub async fn deliver(
        &self,
        request: platform::DeliverInsuranceRecordRequest,
    ) -> Result<platform::DeliverInsuranceRecordResponse, Status> {
        let envelope = request.envelope.clone();
        let id = request
            .form
            .as_ref()
            .map(|f| f.transfer_id.clone())
            .unwrap_or_default();
        let mut client = self.to_in();
        let call = client.deliver_insurance_record(timed(request));
        self.logged(
            "DeliverInsuranceRecord",
            envelope.as_ref(),
            &id,
            call,
            form_answer_text,
        )
        .await
    }

    /// Sends AbortTransfer.
    ///
    /// # Errors
    /// The status the target answered.
    pub async fn abort(
        &self,
        request: platform::AbortTransferRequest,
    ) -> Result<platform::AbortTransferResponse, Status> {
        let envelope = request.envelope.clone();
        let id = request.transfer_id.clone();
        let mut client = self.to_in();
        let call = client.abort_transfer(timed(request));
        self.logged("AbortTransfer", envelope.as_ref(), &id, call, |r| {
            format!(
                "{}, credited = {}{}",
                reply_text(r.reply.as_ref()),
                r.credited,
                r.credit
                    .as_ref()
                    .map(|c| format!(", amount {}", c.credited_amount))
                    .unwrap_or_default()
            )
        })
        .await
    }

    /// Sends a batch of transfer-in messages.
    ///
    /// # Errors
    /// The status the target answered.
    pub async fn batch_in(
        &self,
        request: platform::SubmitTransferInMessagesRequest,
    ) -> Result<platform::SubmitTransferInMessagesResponse, Status> {
        let ids: Vec<(Option<platform::Envelope>, String)> = request
            .messages
            .iter()
            .map(|m| match &m.message {
                Some(platform::transfer_in_message::Message::DeliverInsuranceRecord(r)) => (
                    r.envelope.clone(),
                    r.form
                        .as_ref()
                        .map(|f| f.transfer_id.clone())
                        .unwrap_or_default(),
                ),
                Some(platform::transfer_in_message::Message::AbortTransfer(r)) => {
                    (r.envelope.clone(), r.transfer_id.clone())
                }
                Some(platform::transfer_in_message::Message::ConfirmSettlement(r)) => {
                    (r.envelope.clone(), r.transfer_id.clone())
                }
                Some(platform::transfer_in_message::Message::RemitBalance(r)) => {
                    (r.envelope.clone(), r.transfer_id.clone())
                }
                None => (None, String::new()),
            })
            .collect();
        let answer = self
            .to_in()
            .submit_transfer_in_messages(timed(request))
            .await
            .map(tonic::Response::into_inner);
        for (position, (envelope, id)) in ids.iter().enumerate() {
            let outcome = match &answer {
                Ok(r) => match r.answers.get(position).and_then(|a| a.answer.as_ref()) {
                    Some(platform::transfer_in_answer::Answer::DeliverInsuranceRecord(r)) => {
                        form_answer_text(r)
                    }
                    Some(platform::transfer_in_answer::Answer::AbortTransfer(r)) => {
                        format!(
                            "{}, credited = {}",
                            reply_text(r.reply.as_ref()),
                            r.credited
                        )
                    }
                    Some(platform::transfer_in_answer::Answer::ConfirmSettlement(r)) => {
                        reply_text(r.reply.as_ref())
                    }
                    Some(platform::transfer_in_answer::Answer::RemitBalance(r)) => {
                        remit_answer_text(r)
                    }
                    Some(platform::transfer_in_answer::Answer::Failed(s)) => {
                        format!("status {}: {}", s.code, s.message)
                    }
                    None => "no answer at this position".to_owned(),
                },
                Err(status) => status_text(status),
            };
            self.keep(
                "SubmitTransferInMessages",
                envelope.as_ref(),
                id,
                format!("batch #{position}: {outcome}"),
            );
        }
        answer
    }

    /// Sends QueryTransferIn.
    ///
    /// # Errors
    /// The status the target answered.
    pub async fn query_in(
        &self,
        transfer_id: &str,
    ) -> Result<platform::QueryTransferInResponse, Status> {
        let envelope = self.envelope("9105", transfer_id);
        let request = platform::QueryTransferInRequest {
            envelope: Some(envelope.clone()),
            transfer_id: transfer_id.to_owned(),
        };
        let mut client = self.to_in();
        let call = client.query_transfer_in(timed(request));
        self.logged("QueryTransferIn", Some(&envelope), transfer_id, call, |r| {
            query_text(r.reply.as_ref(), r.transfer.as_ref())
        })
        .await
    }

    /// Sends RemitBalance.
    ///
    /// # Errors
    /// The status the target answered.
    pub async fn remit(
        &self,
        request: platform::RemitBalanceRequest,
    ) -> Result<platform::RemitBalanceResponse, Status> {
        let envelope = request.envelope.clone();
        let id = request.transfer_id.clone();
        let mut client = self.to_in();
        let call = client.remit_balance(timed(request));
        self.logged(
            "RemitBalance",
            envelope.as_ref(),
            &id,
            call,
            remit_answer_text,
        )
        .await
    }

    /// Sends ReturnRemittance.
    ///
    /// # Errors
    /// The status the target answered.
    pub async fn return_remittance(
        &self,
        request: platform::ReturnRemittanceRequest,
    ) -> Result<platform::ReturnRemittanceResponse, Status> {
        let envelope = request.envelope.clone();
        let id = request.transfer_id.clone();
        let mut client = self.to_out();
        let call = client.return_remittance(timed(request));
        self.logged("ReturnRemittance", envelope.as_ref(), &id, call, |r| {
            format!(
                "{}, remitting_again = {}",
                reply_text(r.reply.as_ref()),
                r.remitting_again
            )
        })
        .await
    }

    /// The working days after the form the target's directory has balances remitted (the
    /// money leg), from `--remittance`.
    ///
    /// # Errors
    /// [`Verdict::Skip`] when the run was not told the target's regions remit apart.
    pub fn remittance_days(&self) -> Result<u16, Verdict> {
        self.settings.remittance.ok_or_else(|| {
            Verdict::Skip(format!(
                "the money leg is off: give --remittance N when the target's directory has {} remit balances apart N working days after the form (remittance = {{ after_working_days = N }})",
                match self.role() {
                    Role::TransferIn => &self.identity.own_region,
                    Role::TransferOut => &self.identity.target_region,
                }
            ))
        })
    }

    /// Sends RequestTransferOut.
    ///
    /// # Errors
    /// The status the target answered.
    pub async fn request_out(
        &self,
        request: platform::RequestTransferOutRequest,
    ) -> Result<platform::RequestTransferOutResponse, Status> {
        let envelope = request.envelope.clone();
        let id = request
            .application
            .as_ref()
            .map(|a| a.transfer_id.clone())
            .unwrap_or_default();
        let mut client = self.to_out();
        let call = client.request_transfer_out(timed(request));
        self.logged("RequestTransferOut", envelope.as_ref(), &id, call, |r| {
            decision_text(r)
        })
        .await
    }

    /// Sends a batch of transfer requests.
    ///
    /// # Errors
    /// The status the target answered.
    pub async fn batch_out(
        &self,
        request: platform::SubmitTransferOutRequestsRequest,
    ) -> Result<platform::SubmitTransferOutRequestsResponse, Status> {
        let ids: Vec<(Option<platform::Envelope>, String)> = request
            .requests
            .iter()
            .map(|r| {
                (
                    r.envelope.clone(),
                    r.application
                        .as_ref()
                        .map(|a| a.transfer_id.clone())
                        .unwrap_or_default(),
                )
            })
            .collect();
        let answer = self
            .to_out()
            .submit_transfer_out_requests(timed(request))
            .await
            .map(tonic::Response::into_inner);
        for (position, (envelope, id)) in ids.iter().enumerate() {
            let outcome = match &answer {
                Ok(r) => match r.answers.get(position).and_then(|a| a.answer.as_ref()) {
                    Some(platform::transfer_out_answer::Answer::Response(r)) => decision_text(r),
                    Some(platform::transfer_out_answer::Answer::Failed(s)) => {
                        format!("status {}: {}", s.code, s.message)
                    }
                    None => "no answer at this position".to_owned(),
                },
                Err(status) => status_text(status),
            };
            self.keep(
                "SubmitTransferOutRequests",
                envelope.as_ref(),
                id,
                format!("batch #{position}: {outcome}"),
            );
        }
        answer
    }

    /// Sends QueryTransferOut.
    ///
    /// # Errors
    /// The status the target answered.
    pub async fn query_out(
        &self,
        transfer_id: &str,
    ) -> Result<platform::QueryTransferOutResponse, Status> {
        let envelope = self.envelope("9105", transfer_id);
        let request = platform::QueryTransferOutRequest {
            envelope: Some(envelope.clone()),
            transfer_id: transfer_id.to_owned(),
        };
        let mut client = self.to_out();
        let call = client.query_transfer_out(timed(request));
        self.logged(
            "QueryTransferOut",
            Some(&envelope),
            transfer_id,
            call,
            |r| query_text(r.reply.as_ref(), r.transfer.as_ref()),
        )
        .await
    }

    /// The target's state of a transfer, asked over the platform (QueryTransferIn or
    /// QueryTransferOut, by the target's role): `None` when it answered 1005 (unknown).
    ///
    /// # Errors
    /// A failure when the query is not answered.
    pub async fn target_state(
        &self,
        transfer_id: &str,
    ) -> Result<Option<platform::TransferSnapshot>, Verdict> {
        let (reply, snapshot) = match self.role() {
            Role::TransferIn => self
                .query_in(transfer_id)
                .await
                .map(|r| (r.reply, r.transfer)),
            Role::TransferOut => self
                .query_out(transfer_id)
                .await
                .map(|r| (r.reply, r.transfer)),
        }
        .map_err(|status| Verdict::Fail {
            expected: "the target answers a query (9105) about a transfer of this suite".into(),
            observed: status_text(&status),
        })?;
        match reply.map_or(-1, |r| r.infcode) {
            0 => Ok(snapshot),
            1005 => Ok(None),
            other => Err(Verdict::Fail {
                expected: "infcode 0 (or 1005 for an unknown transfer) to a query about the suite's transfer".into(),
                observed: format!("infcode {other}"),
            }),
        }
    }

    /// Asks the target about a transfer until `done` holds for its state, or the run's wait
    /// passes; returns the last state seen.
    ///
    /// # Errors
    /// A failure naming `expected` and the last state seen when the wait passes.
    pub async fn until_target_state(
        &self,
        transfer_id: &str,
        expected: &str,
        done: impl Fn(TransferStateView) -> bool,
    ) -> Result<platform::TransferSnapshot, Verdict> {
        let deadline = tokio::time::Instant::now() + self.settings.wait;
        loop {
            let snapshot = self.target_state(transfer_id).await?;
            if let Some(snapshot) = &snapshot
                && done(TransferStateView(snapshot.state))
            {
                return Ok(snapshot.clone());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Verdict::Fail {
                    expected: format!("within {:?}: {expected}", self.settings.wait),
                    observed: format!(
                        "the target's transfer {transfer_id} is {}",
                        snapshot
                            .map_or("unknown (infcode 1005)".to_owned(), |s| describe_snapshot(
                                &s
                            ))
                    ),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Fails if the target sent anything about `transfer_id` that the contract forbids.
    ///
    /// # Errors
    /// A failure listing the violations.
    pub fn no_violations(&self, transfer_id: &str) -> Checked {
        let violations = self.counterpart.violations(transfer_id);
        expect(
            violations.is_empty(),
            "every message the target sends follows platform.proto (envelope, msgid, regions, retries unchanged)",
            || violations.join("; "),
        )
    }
}

/// A transfer state as a predicate sees it.
#[derive(Clone, Copy, Debug)]
pub struct TransferStateView(pub i32);

impl TransferStateView {
    /// Whether it is this state.
    #[must_use]
    pub fn is(self, state: common::TransferState) -> bool {
        self.0 == state as i32
    }

    /// Whether nothing more will happen to it.
    #[must_use]
    pub fn is_terminal(self) -> bool {
        use common::TransferState as S;
        [
            S::Completed,
            S::Rejected,
            S::Returned,
            S::PaidToBank,
            S::Aborted,
        ]
        .iter()
        .any(|s| self.is(*s))
    }
}

fn timed<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(CALL_TIMEOUT);
    request
}

fn wire_scheme(scheme: Scheme) -> common::Scheme {
    match scheme {
        Scheme::Employee => common::Scheme::Employee,
        Scheme::Resident => common::Scheme::Resident,
    }
}

/// A status as the report shows it.
#[must_use]
pub fn status_text(status: &Status) -> String {
    format!("gRPC status {:?}: {}", status.code(), status.message())
}

/// A reply as the report shows it.
#[must_use]
pub fn reply_text(reply: Option<&platform::Reply>) -> String {
    match reply {
        Some(r) if r.infcode == 0 => "infcode 0".to_owned(),
        Some(r) => format!("infcode {} ({})", r.infcode, r.err_msg),
        None => "no reply header".to_owned(),
    }
}

/// A form's answer as the report shows it.
#[must_use]
pub fn form_answer_text(answer: &platform::DeliverInsuranceRecordResponse) -> String {
    let outcome = match answer
        .acknowledgement
        .as_ref()
        .and_then(|a| a.outcome.as_ref())
    {
        Some(platform::credit_acknowledgement::Outcome::Credited(c)) => {
            format!(
                ", credited {} months and {}",
                c.credited_months, c.credited_amount
            )
        }
        Some(platform::credit_acknowledgement::Outcome::Refused(r)) => {
            format!(", refused {}", reason_name(r.reason_code))
        }
        None => String::new(),
    };
    format!("{}{outcome}", reply_text(answer.reply.as_ref()))
}

/// A remittance's answer as the report shows it.
#[must_use]
pub fn remit_answer_text(answer: &platform::RemitBalanceResponse) -> String {
    if answer.reply.as_ref().is_some_and(|r| r.infcode == 0) {
        format!(
            "{}, check {}",
            reply_text(answer.reply.as_ref()),
            crate::counterpart::check_name(answer.check)
        )
    } else {
        reply_text(answer.reply.as_ref())
    }
}

fn decision_text(answer: &platform::RequestTransferOutResponse) -> String {
    let decision = match &answer.decision {
        Some(platform::request_transfer_out_response::Decision::Accepted(a)) => {
            format!(", accepted, due {}", a.transfer_out_due_on)
        }
        Some(platform::request_transfer_out_response::Decision::Rejected(r)) => {
            format!(", rejected {}", reason_name(r.reason_code))
        }
        Some(platform::request_transfer_out_response::Decision::UnderReview(u)) => {
            format!(", under review until {}", u.decided_on)
        }
        None => String::new(),
    };
    format!("{}{decision}", reply_text(answer.reply.as_ref()))
}

fn query_text(
    reply: Option<&platform::Reply>,
    snapshot: Option<&platform::TransferSnapshot>,
) -> String {
    format!(
        "{}{}",
        reply_text(reply),
        snapshot
            .map(|s| format!(", {}", describe_snapshot(s)))
            .unwrap_or_default()
    )
}

/// A snapshot as the report shows it.
#[must_use]
pub fn describe_snapshot(snapshot: &platform::TransferSnapshot) -> String {
    let reason = if snapshot.refusal_reason == 0 {
        String::new()
    } else {
        format!(" ({})", reason_name(snapshot.refusal_reason))
    };
    format!("{}{reason}", state_name(snapshot.state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_answer_names_the_fields_that_differ() {
        let answer = |nanos: i32| platform::DeliverInsuranceRecordResponse {
            reply: Some(platform::Reply {
                infcode: 0,
                err_msg: String::new(),
                inf_refmsgid: "R1".into(),
            }),
            acknowledgement: Some(platform::CreditAcknowledgement {
                outcome: Some(platform::credit_acknowledgement::Outcome::Credited(
                    platform::Credited {
                        credited_months: 12,
                        credited_amount: "1.00".into(),
                        credited_at: Some(prost_types::Timestamp { seconds: 1, nanos }),
                    },
                )),
            }),
        };
        assert_eq!(
            same_answer(&answer(5), &answer(5), form_answer_text),
            Ok(())
        );
        let Err(Verdict::Fail { observed, .. }) =
            same_answer(&answer(5), &answer(6), form_answer_text)
        else {
            panic!("different answers fail");
        };
        assert!(
            observed.contains("acknowledgement.outcome.credited_at.nanos: 5 → 6"),
            "{observed}"
        );
    }
}
