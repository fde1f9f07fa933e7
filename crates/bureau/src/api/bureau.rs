//! The bureau API handlers (people and operators): decode and validate, call one driver
//! function, answer. Personal data is masked in every answer about a transfer or person.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use yibao_domain::id::ResidentId;
use yibao_domain::money::Money;
use yibao_domain::month::{ContributionPeriod, YearMonth};
use yibao_proto::bureau::v1 as wire;
use yibao_proto::bureau::v1::bureau_service_server::BureauService;
use yibao_proto::common::v1 as common;
use yibao_store::{EventRow, Tx};

use crate::convert;
use crate::document::{BankAccount, Initiator, TransferDocument};
use crate::error::Error;
use crate::state::Bureau;
use crate::{inn, out, record};

/// How long an instant-mode (秒到账) application waits for the exchange to finish.
const INSTANT_WAIT: Duration = Duration::from_secs(5);
/// The most transfers `ListTransfers` returns.
const LIST_LIMIT: usize = 100;

/// Serves `BureauService`.
#[derive(Debug, Clone)]
pub struct BureauApi {
    bureau: Arc<Bureau>,
}

impl BureauApi {
    /// The API over a bureau.
    pub fn new(bureau: Arc<Bureau>) -> Self {
        Self { bureau }
    }

    async fn transfer(&self, transfer_id: String) -> Result<wire::Transfer, Error> {
        let bureau = self.bureau.clone();
        self.bureau
            .store
            .read(move |tx| -> Result<wire::Transfer, Error> {
                let document = record::load(tx, &transfer_id)?
                    .ok_or_else(|| Error::NotFound(format!("transfer {transfer_id}")))?;
                let events = tx.events(&transfer_id)?;
                Ok(convert::wire_transfer(&bureau, &document, &events))
            })
            .await
    }

    /// Waits (bounded) until the transfer is terminal, for instant mode.
    async fn settle_instantly(&self, transfer_id: &str) {
        let watch = self.bureau.watchers.watch(transfer_id);
        let deadline = tokio::time::Instant::now() + INSTANT_WAIT;
        loop {
            if let Ok(transfer) = self.transfer(transfer_id.to_owned()).await
                && is_terminal(transfer.state)
            {
                return;
            }
            if tokio::time::timeout_at(deadline, watch.changed())
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

/// A bank account from the wire.
pub fn bank_account(account: &common::BankAccount) -> BankAccount {
    BankAccount {
        bank_name: account.bank_name.clone(),
        account_number: account.account_number.clone(),
        account_holder_name: account.account_holder_name.clone(),
    }
}

fn is_terminal(state: i32) -> bool {
    use common::TransferState as S;
    matches!(
        common::TransferState::try_from(state),
        Ok(S::Completed | S::Rejected | S::Returned | S::PaidToBank | S::Aborted)
    )
}

fn validated_bank_account(
    account: Option<&common::BankAccount>,
) -> Result<Option<BankAccount>, Error> {
    let Some(account) = account else {
        return Ok(None);
    };
    let number = account.account_number.trim();
    if number.len() < 12 || number.len() > 30 || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::invalid(
            "bank_account.account_number",
            "must be 12 to 30 digits",
        ));
    }
    if account.bank_name.trim().is_empty() {
        return Err(Error::invalid(
            "bank_account.bank_name",
            "required when a bank account is given",
        ));
    }
    Ok(Some(bank_account(account)))
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<wire::WatchTransferResponse, Status>> + Send>>;

#[tonic::async_trait]
impl BureauService for BureauApi {
    async fn apply_transfer(
        &self,
        request: Request<wire::ApplyTransferRequest>,
    ) -> Result<Response<wire::ApplyTransferResponse>, Status> {
        let request = request.into_inner();
        let certno = convert::certno("certno", &request.certno)?;
        if request.psn_name.trim().is_empty() || request.psn_name.chars().count() > 50 {
            return Err(Error::invalid("psn_name", "required, at most 50 characters").into());
        }
        let out_region = convert::region("trafout_admdvs", &request.trafout_admdvs)?;
        let in_region = convert::region("trafin_admdvs", &request.trafin_admdvs)?;
        let bank_account = validated_bank_account(request.bank_account.as_ref())?;
        if out_region.same_pooling_region(in_region) {
            return Err(
                Error::Refused(yibao_domain::transfer::RefusalReason::SamePoolingRegion).into(),
            );
        }
        let bureau = self.bureau.clone();
        // Masked only if the line below is written at all.
        let masked_certno = tracing::enabled!(tracing::Level::DEBUG).then(|| certno.masked());
        // The history is read in the writing job (its pages are hot there), so the answer needs
        // no read of its own.
        let (document, events, generation): (TransferDocument, Vec<EventRow>, u64) =
            if bureau.hosts(in_region) && !bureau.hosts(out_region) {
                let application = inn::Application {
                    certno,
                    psn_name: request.psn_name.clone(),
                    out_region,
                    in_region,
                    bank_account,
                    retiree_payout_requested: request.retiree_payout_requested,
                };
                let worker = bureau.clone();
                bureau
                    .store
                    .write(move |tx| -> Result<_, Error> {
                        let document = inn::apply_here(tx, &worker, &application)?;
                        let generation = worker.watchers.expect(&document.transfer_id);
                        let events = tx.events(&document.transfer_id)?;
                        Ok((document, events, generation))
                    })
                    .await?
            } else if bureau.hosts(out_region) {
                bureau.region("trafin_admdvs", in_region)?;
                let worker = bureau.clone();
                let applied_at = bureau.clock.now();
                bureau
                    .store
                    .write(move |tx: &mut dyn Tx| -> Result<_, Error> {
                        let transfer_id = record::mint_transfer_id(tx, &worker, out_region)?;
                        let application = out::Application {
                            transfer_id,
                            certno,
                            psn_name: request.psn_name.clone(),
                            out_region,
                            in_region,
                            in_scheme: None,
                            bank_account,
                            retiree_payout_requested: request.retiree_payout_requested,
                            initiator: Initiator::TransferOut,
                            applied_at,
                        };
                        match out::review_and_open(tx, &worker, &application)? {
                            out::Decision::Accepted(document) => {
                                let generation = worker.watchers.expect(&document.transfer_id);
                                let events = tx.events(&document.transfer_id)?;
                                Ok((*document, events, generation))
                            }
                            out::Decision::Refused(_, Some(open)) => {
                                Err(Error::OpenTransferExists(open))
                            }
                            out::Decision::Refused(reason, None) => Err(Error::Refused(reason)),
                        }
                    })
                    .await?
            } else {
                return Err(Error::invalid(
                    "trafin_admdvs",
                    "neither trafout_admdvs nor trafin_admdvs is hosted by this bureau",
                )
                .into());
            };
        bureau.changed(&document.transfer_id);
        tracing::debug!(transfer_id = %document.transfer_id, certno = masked_certno.as_deref().unwrap_or(""), state = document.state.name(), "transfer applied");
        let transfer = if document.instant {
            self.settle_instantly(&document.transfer_id).await;
            self.transfer(document.transfer_id.clone()).await?
        } else {
            let transfer = convert::wire_transfer(&bureau, &document, &events);
            if let Some(version) = events.last().map(|event| event.seq) {
                bureau.watchers.offer(
                    &document.transfer_id,
                    generation,
                    version,
                    Arc::new(transfer.clone()),
                );
            }
            transfer
        };
        Ok(Response::new(wire::ApplyTransferResponse {
            transfer: Some(transfer),
        }))
    }

    async fn get_transfer(
        &self,
        request: Request<wire::GetTransferRequest>,
    ) -> Result<Response<wire::GetTransferResponse>, Status> {
        let id = request.into_inner().transfer_id;
        yibao_domain::transfer::TransferId::parse(&id)
            .map_err(|error| Error::invalid("transfer_id", error))?;
        let transfer = self.transfer(id).await?;
        Ok(Response::new(wire::GetTransferResponse {
            transfer: Some(transfer),
        }))
    }

    async fn list_transfers(
        &self,
        request: Request<wire::ListTransfersRequest>,
    ) -> Result<Response<wire::ListTransfersResponse>, Status> {
        let certno = convert::certno("certno", &request.into_inner().certno)?;
        let bureau = self.bureau.clone();
        let transfers = self
            .bureau
            .store
            .read(move |tx| -> Result<Vec<wire::Transfer>, Error> {
                let rows = tx.transfers_of(certno.expose_unmasked())?;
                let mut transfers = Vec::new();
                for row in rows.into_iter().take(LIST_LIMIT) {
                    if let Some(document) = record::load(tx, &row.transfer_id)? {
                        transfers.push(convert::wire_transfer(&bureau, &document, &[]));
                    }
                }
                Ok(transfers)
            })
            .await?;
        Ok(Response::new(wire::ListTransfersResponse { transfers }))
    }

    type WatchTransferStream = WatchStream;

    async fn watch_transfer(
        &self,
        request: Request<wire::WatchTransferRequest>,
    ) -> Result<Response<Self::WatchTransferStream>, Status> {
        let id = request.into_inner().transfer_id;
        yibao_domain::transfer::TransferId::parse(&id)
            .map_err(|error| Error::invalid("transfer_id", error))?;
        // Register before the first read, so a change in between is not missed; the first read
        // also says whether the transfer exists.
        let watch = self.bureau.watchers.watch(&id);
        let first = match self.bureau.watchers.latest(&id) {
            Some((_, snapshot)) => (*snapshot).clone(),
            None => self.transfer(id.clone()).await?,
        };
        let api = self.clone();
        let stream = async_stream(move |sender| async move {
            let mut last = first.updated_at;
            let mut terminal = is_terminal(first.state);
            if sender
                .send(Ok(wire::WatchTransferResponse {
                    transfer: Some(first),
                }))
                .await
                .is_err()
            {
                return;
            }
            while !terminal {
                tokio::select! {
                    _ = watch.changed() => {}
                    _ = sender.closed() => return,
                }
                // The snapshot the changing step offered, if it is the newest; else read.
                let transfer = match api.bureau.watchers.latest(&id) {
                    Some((_, snapshot)) => (*snapshot).clone(),
                    None => match api.transfer(id.clone()).await {
                        Ok(transfer) => transfer,
                        Err(_) => return,
                    },
                };
                if transfer.updated_at == last {
                    continue;
                }
                last = transfer.updated_at;
                terminal = is_terminal(transfer.state);
                if sender
                    .send(Ok(wire::WatchTransferResponse {
                        transfer: Some(transfer),
                    }))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        Ok(Response::new(stream))
    }

    async fn get_person(
        &self,
        request: Request<wire::GetPersonRequest>,
    ) -> Result<Response<wire::GetPersonResponse>, Status> {
        let certno = convert::certno("certno", &request.into_inner().certno)?;
        let person = self
            .bureau
            .store
            .read(move |tx| -> Result<wire::PersonRecord, Error> {
                let unmasked = certno.expose_unmasked();
                let person = tx
                    .person(unmasked)?
                    .ok_or_else(|| Error::NotFound("person".to_owned()))?;
                let balance =
                    u64::try_from(tx.balance(&record::person_account(unmasked))?).unwrap_or(0);
                let periods: Vec<ContributionPeriod> =
                    serde_json::from_str(&person.periods_json).unwrap_or_default();
                let region = yibao_domain::region::RegionCode::parse(&person.insu_admdvs).ok();
                Ok(wire::PersonRecord {
                    masked_certno: certno.masked(),
                    masked_psn_name: convert::masked_name(&person.psn_name),
                    poolarea_no: region
                        .map(|r| r.pooling_region().to_string())
                        .unwrap_or_default(),
                    insu_admdvs: person.insu_admdvs.clone(),
                    insutype: convert::wire_scheme(person.insutype) as i32,
                    psn_insu_stas: i32::from(person.psn_insu_stas),
                    fst_insu_ym: person.fst_insu_ym.clone(),
                    contribution_months: yibao_domain::month::total_months(&periods)
                        + person.deemed_months,
                    periods: periods.iter().map(convert::wire_period).collect(),
                    deemed_months: person.deemed_months,
                    personal_account_balance: convert::money_text(balance),
                    arrears_amount: convert::money_text(
                        u64::try_from(person.arrears_cents).unwrap_or(0),
                    ),
                    retired: person.retired,
                })
            })
            .await?;
        Ok(Response::new(wire::GetPersonResponse {
            person: Some(person),
        }))
    }

    async fn issue_certificate(
        &self,
        request: Request<wire::IssueCertificateRequest>,
    ) -> Result<Response<wire::IssueCertificateResponse>, Status> {
        let certno = convert::certno("certno", &request.into_inner().certno)?;
        let bureau = self.bureau.clone();
        let certificate = self
            .bureau
            .store
            .write(move |tx| -> Result<wire::InsuranceCertificate, Error> {
                let unmasked = certno.expose_unmasked();
                let person = tx
                    .person(unmasked)?
                    .ok_or_else(|| Error::NotFound("person".to_owned()))?;
                let balance =
                    u64::try_from(tx.balance(&record::person_account(unmasked))?).unwrap_or(0);
                let money = Money::from_cents(balance).unwrap_or(Money::ZERO);
                let periods: Vec<ContributionPeriod> =
                    serde_json::from_str(&person.periods_json).unwrap_or_default();
                let from = periods.iter().map(|p| p.from()).min();
                let to = periods.iter().map(|p| p.to()).max();
                let region = yibao_domain::region::RegionCode::parse(&person.insu_admdvs).ok();
                let region_name = region
                    .and_then(|code| {
                        bureau
                            .directory
                            .region(code.pooling_region())
                            .map(|e| e.name_zh.clone())
                    })
                    .unwrap_or_default();
                let now = bureau.clock.now();
                let sequence = tx.next_sequence("certificate")?;
                let code = format!(
                    "{}{:08}",
                    bureau.institution.get(1..7).unwrap_or("000000"),
                    sequence
                );
                let benefits_to = to.and_then(|month: YearMonth| month.plus_months(1));
                let certificate = wire::InsuranceCertificate {
                    psn_name: person.psn_name.clone(),
                    certno: unmasked.to_owned(),
                    insutype: convert::wire_scheme(person.insutype) as i32,
                    insuring_region_code: person.insu_admdvs.clone(),
                    insuring_region_name: region_name,
                    insured_from_month: from.map(|m| m.to_string()).unwrap_or_default(),
                    insured_to_month: to.map(|m| m.to_string()).unwrap_or_default(),
                    benefits_from_month: from.map(|m| m.to_string()).unwrap_or_default(),
                    benefits_to_month: benefits_to.map(|m| m.to_string()).unwrap_or_default(),
                    personal_account_balance: money.to_string(),
                    personal_account_balance_in_capitals: money.to_chinese_capital(),
                    issuing_bureau: bureau.institution.clone(),
                    printed_at: Some(crate::messages::timestamp(now)),
                    verification_code: code.clone(),
                };
                let body = serde_json::json!({
                    "psn_name": certificate.psn_name, "certno": certificate.certno,
                    "insutype": certificate.insutype, "region": certificate.insuring_region_code,
                    "region_name": certificate.insuring_region_name,
                    "from": certificate.insured_from_month, "to": certificate.insured_to_month,
                    "benefits_to": certificate.benefits_to_month,
                    "balance": certificate.personal_account_balance,
                    "printed_at": now.to_rfc3339(),
                });
                tx.put_certificate(&code, unmasked, &body.to_string(), now)?;
                Ok(certificate)
            })
            .await?;
        Ok(Response::new(wire::IssueCertificateResponse {
            certificate: Some(certificate),
        }))
    }

    async fn verify_certificate(
        &self,
        request: Request<wire::VerifyCertificateRequest>,
    ) -> Result<Response<wire::VerifyCertificateResponse>, Status> {
        let code = request.into_inner().verification_code;
        if code.len() != 14 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::invalid("verification_code", "must be 14 digits").into());
        }
        let found = self
            .bureau
            .store
            .read(move |tx| -> Result<_, Error> { Ok(tx.certificate(&code)?) })
            .await?;
        let Some(row) = found else {
            return Ok(Response::new(wire::VerifyCertificateResponse {
                valid: false,
                certificate: None,
            }));
        };
        let body: serde_json::Value = serde_json::from_str(&row.body_json).unwrap_or_default();
        let text = |key: &str| {
            body.get(key)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        let balance = Money::parse(&text("balance")).unwrap_or(Money::ZERO);
        let certificate = wire::InsuranceCertificate {
            psn_name: convert::masked_name(&text("psn_name")),
            certno: ResidentId::parse(&row.certno)
                .map(|id| id.masked())
                .unwrap_or_default(),
            insutype: body
                .get("insutype")
                .and_then(|v| v.as_i64())
                .unwrap_or_default() as i32,
            insuring_region_code: text("region"),
            insuring_region_name: text("region_name"),
            insured_from_month: text("from"),
            insured_to_month: text("to"),
            benefits_from_month: text("from"),
            benefits_to_month: text("benefits_to"),
            personal_account_balance: balance.to_string(),
            personal_account_balance_in_capitals: balance.to_chinese_capital(),
            issuing_bureau: self.bureau.institution.clone(),
            printed_at: Some(crate::messages::timestamp(row.issued_at)),
            verification_code: row.code.clone(),
        };
        Ok(Response::new(wire::VerifyCertificateResponse {
            valid: true,
            certificate: Some(certificate),
        }))
    }
}

/// A stream fed by a task through a bounded channel.
fn async_stream<F, Fut>(body: F) -> WatchStream
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<wire::WatchTransferResponse, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (sender, receiver) = tokio::sync::mpsc::channel(16);
    tokio::spawn(body(sender));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver))
}
