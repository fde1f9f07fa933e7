//! The bureau API handlers (people and operators): convert the request into domain values, run
//! one driver step or read, convert the answer. Personal data is masked in every answer about a
//! transfer or person.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use tracing::Instrument;
use yibao_domain::application::{BankAccount, check_name};
use yibao_domain::classify::RetireePayout;
use yibao_domain::id::ResidentId;
use yibao_domain::region::RegionCode;
use yibao_domain::scheme::Scheme;
use yibao_domain::transfer::{Initiator, Stage};
use yibao_proto::bureau::v1 as wire;
use yibao_proto::bureau::v1::bureau_service_server::BureauService;

use crate::applications::{self, Key};
use crate::certificates;
use crate::convert::{self, Disclosure};
use crate::error::Error;
use crate::inbox;
use crate::messages::TransferApplication;
use crate::record::{self, WatchHint};
use crate::services::Services;
use crate::transfer_in;
use crate::transfer_out::{self, Opened};
use crate::watchers::Snapshot;

/// How long an instant-mode (秒到账) application waits for the exchange to finish.
const INSTANT_WAIT: Duration = Duration::from_secs(5);
/// The most transfers `ListTransfers` returns.
const LIST_LIMIT: usize = 100;

/// Serves `BureauService`.
#[derive(Debug, Clone)]
pub struct BureauApi {
    services: Arc<Services>,
}

impl BureauApi {
    /// The API over a bureau.
    pub fn new(services: Arc<Services>) -> Self {
        Self { services }
    }

    /// A transfer as the API shows it.
    fn show(&self, snapshot: &Snapshot) -> wire::Transfer {
        convert::wire_transfer(
            &self.services.site,
            self.services.clock.today(),
            &snapshot.document,
            &snapshot.events,
        )
    }

    /// The transfer and its history, read from the store.
    async fn read(&self, transfer_id: String) -> Result<Snapshot, Error> {
        self.services
            .store
            .read(move |tx| -> Result<Snapshot, Error> {
                let document = record::load(tx, &transfer_id)?
                    .ok_or_else(|| Error::NotFound(format!("transfer {transfer_id}")))?;
                let events = tx.events(&transfer_id)?;
                Ok(Snapshot { document, events })
            })
            .await
    }

    /// The newest committed state: the snapshot a step offered, or a read.
    async fn latest(&self, transfer_id: &str) -> Result<Arc<Snapshot>, Error> {
        // Another replica sharing the store may have moved the transfer since this one's last
        // snapshot of it: read the store.
        let cached = if self.services.store.shared_by_replicas() {
            None
        } else {
            self.services.watchers.latest(transfer_id)
        };
        match cached {
            Some((_, snapshot)) => Ok(snapshot),
            None => self.read(transfer_id.to_owned()).await.map(Arc::new),
        }
    }

    /// Waits (bounded) until the transfer is terminal, for instant mode.
    async fn settle_instantly(&self, transfer_id: &str) {
        let watch = self.services.watchers.watch(transfer_id);
        let deadline = tokio::time::Instant::now() + INSTANT_WAIT;
        loop {
            if let Ok(snapshot) = self.latest(transfer_id).await
                && snapshot.document.state.is_terminal()
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

    /// Opens the transfer at whichever side this bureau plays for it; the answer is the
    /// transfer as the application's own step left it.
    // Long because the applicant is checked once and each side's opening reads top to bottom
    // from it; splitting would pass its eight fields around twice.
    async fn open(&self, request: wire::ApplyTransferRequest) -> Result<Arc<Snapshot>, Error> {
        let Applicant {
            certno,
            psn_name,
            out_region,
            in_region,
            bank_account,
            retiree_payout,
            in_scheme,
            payout_requested,
            channel,
            key,
        } = applicant(request, self.services.clock.today())?;
        let site = &self.services.site;
        let hint = WatchHint::ExpectWatchOfNew;
        if site.hosts(in_region) && !site.hosts(out_region) {
            let application = transfer_in::Application {
                certno,
                psn_name,
                out_region,
                in_region,
                bank_account,
                retiree_payout,
                channel,
            };
            return self
                .services
                .write_hinted(hint, move |step| {
                    applications::apply_once(step, key.as_ref(), |step| {
                        transfer_in::apply_here(step, &application)
                    })
                })
                .await;
        }
        if !site.hosts(out_region) {
            return Err(Error::invalid(
                "trafin_admdvs",
                "neither trafout_admdvs nor trafin_admdvs is hosted by this bureau",
            ));
        }
        site.region("trafin_admdvs", in_region)?;
        let in_scheme = in_scheme.ok_or_else(|| {
            Error::invalid(
                "insutype_at_transfer_in",
                "required at the transfer-out bureau: the scheme the person joins at trafin_admdvs",
            )
        })?;
        let applied_at = self.services.clock.now();
        self.services
            .write_hinted(hint, move |step| {
                applications::apply_once(step, key.as_ref(), |step| {
                    let application = TransferApplication {
                        transfer_id: step.mint_transfer_id(out_region)?,
                        certno,
                        psn_name,
                        in_scheme: Some(in_scheme),
                        out_region,
                        in_region,
                        applied_at,
                        bank_account,
                        retiree_payout,
                        payout_requested,
                        channel,
                    };
                    match transfer_out::review_and_open(step, &application, Initiator::TransferOut)?
                    {
                        Opened::Accepted(document) => Ok(*document),
                        Opened::Refused(refused) => Err(refused.into()),
                    }
                })
            })
            .await
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<wire::WatchTransferResponse, Status>> + Send>>;

#[tonic::async_trait]
impl BureauService for BureauApi {
    async fn apply_transfer(
        &self,
        request: Request<wire::ApplyTransferRequest>,
    ) -> Result<Response<wire::ApplyTransferResponse>, Status> {
        // A client's own traceparent is continued: its trace holds the whole transfer.
        let span = crate::trace::application(yibao_runtime::telemetry::extract(request.metadata()));
        let mut snapshot = self
            .open(request.into_inner())
            .instrument(span.clone())
            .await?;
        let transfer_id = snapshot.document.transfer_id.clone();
        // A repeated application minted nothing: its span learns the transfer here.
        span.record("transfer_id", transfer_id.as_str());
        tracing::debug!(parent: &span, %transfer_id, "transfer applied");
        if snapshot.document.settlement == yibao_domain::classify::Settlement::Instant {
            self.settle_instantly(&transfer_id)
                .instrument(span.clone())
                .await;
            snapshot = self.latest(&transfer_id).await?;
        }
        Ok(Response::new(wire::ApplyTransferResponse {
            transfer: Some(self.show(&snapshot)),
        }))
    }

    async fn get_transfer(
        &self,
        request: Request<wire::GetTransferRequest>,
    ) -> Result<Response<wire::GetTransferResponse>, Status> {
        let id = convert::transfer_id("transfer_id", &request.into_inner().transfer_id)?;
        let snapshot = self.read(id).await?;
        Ok(Response::new(wire::GetTransferResponse {
            transfer: Some(self.show(&snapshot)),
        }))
    }

    async fn list_transfers(
        &self,
        request: Request<wire::ListTransfersRequest>,
    ) -> Result<Response<wire::ListTransfersResponse>, Status> {
        let (certno, stage) = listing(&request.into_inner(), self.services.clock.today())?;
        let documents = self
            .services
            .store
            .read(move |tx| -> Result<Vec<_>, Error> {
                let rows = match (&certno, stage) {
                    (Some(certno), _) => tx.transfers_of(certno.expose_unmasked())?,
                    (None, Some(stage)) => {
                        let mut rows = Vec::new();
                        for name in stage.state_names() {
                            rows.extend(tx.open_transfers_in_state(name, LIST_LIMIT as u32)?);
                        }
                        rows
                    }
                    (None, None) => Vec::new(),
                };
                rows.into_iter()
                    .map(|row| record::decode_document(&row.document))
                    .filter(|document| {
                        document.as_ref().map_or(true, |document| {
                            stage.is_none_or(|stage| document.state.stage() == stage)
                        })
                    })
                    .take(LIST_LIMIT)
                    .collect()
            })
            .await?;
        let transfers = documents
            .into_iter()
            .map(|document| {
                self.show(&Snapshot {
                    document,
                    events: Vec::new(),
                })
            })
            .collect();
        Ok(Response::new(wire::ListTransfersResponse { transfers }))
    }

    type WatchTransferStream = WatchStream;

    async fn watch_transfer(
        &self,
        request: Request<wire::WatchTransferRequest>,
    ) -> Result<Response<Self::WatchTransferStream>, Status> {
        // A place among the open streams first: beyond the limits nothing is registered.
        let place = self.services.streams.open(request.remote_addr())?;
        let id = convert::transfer_id("transfer_id", &request.into_inner().transfer_id)?;
        // Register before the first read, so a change in between is not missed; the first read
        // also says whether the transfer exists.
        let watch = self.services.watchers.watch(&id);
        let first = self.latest(&id).await?;
        let api = self.clone();
        let idle = self.services.streams.idle();
        let stream = async_stream(move |sender| async move {
            let _place = place;
            // A change is a new history event or a new save time: two steps of one transfer
            // may commit within the same millisecond (times are stored to the millisecond), so
            // the time alone would hide the second one — and a watcher that skipped the final
            // step would wait in silence for a change that never comes.
            let seen = |snapshot: &Snapshot| (snapshot.events.len(), snapshot.document.updated_at);
            let mut last = seen(&first);
            let mut terminal = first.document.state.is_terminal();
            let response = |snapshot: &Snapshot| wire::WatchTransferResponse {
                transfer: Some(api.show(snapshot)),
            };
            if sender.send(Ok(response(&first))).await.is_err() {
                return;
            }
            let mut silent_until = tokio::time::Instant::now() + idle;
            while !terminal {
                tokio::select! {
                    _ = watch.changed() => {}
                    _ = sender.closed() => return,
                    () = tokio::time::sleep_until(silent_until) => {
                        // Never waits: a stream that idles has room in its buffer, or nobody reads.
                        let _ = sender.try_send(Err(idle_end(idle)));
                        return;
                    }
                }
                let Ok(snapshot) = api.latest(&id).await else {
                    return;
                };
                if seen(&snapshot) == last {
                    continue;
                }
                last = seen(&snapshot);
                terminal = snapshot.document.state.is_terminal();
                if sender.send(Ok(response(&snapshot))).await.is_err() {
                    return;
                }
                silent_until = tokio::time::Instant::now() + idle;
            }
        });
        Ok(Response::new(stream))
    }

    async fn get_person(
        &self,
        request: Request<wire::GetPersonRequest>,
    ) -> Result<Response<wire::GetPersonResponse>, Status> {
        let today = self.services.clock.today();
        let certno = convert::certno("certno", &request.into_inner().certno, today)?;
        let site = self.services.site.clone();
        let person = self
            .services
            .store
            .read(move |tx| -> Result<wire::PersonRecord, Error> {
                let (person, balance) = crate::persons::shown(tx, certno.expose_unmasked())?
                    .ok_or_else(|| Error::NotFound("person".to_owned()))?;
                let mut shown = convert::wire_person(&person, balance, site.directory.pooling());
                shown.benefit_continuity = record::latest_continuity(tx, certno.expose_unmasked())?
                    .as_ref()
                    .map(convert::wire_continuity);
                Ok(shown)
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
        let request = request.into_inner();
        let certno = holder(&request, self.services.clock.today())?;
        let certificate = self
            .services
            .write(move |step| {
                certificates::issue(
                    step,
                    certno.expose_unmasked(),
                    &request.psn_name,
                    |scheme| convert::wire_scheme(scheme) as i32,
                )
            })
            .await?;
        let institution = &self.services.site.institution;
        Ok(Response::new(wire::IssueCertificateResponse {
            certificate: Some(convert::wire_certificate(
                &certificate,
                Disclosure::Full,
                institution,
            )),
        }))
    }

    async fn verify_certificate(
        &self,
        request: Request<wire::VerifyCertificateRequest>,
    ) -> Result<Response<wire::VerifyCertificateResponse>, Status> {
        let code = convert::verification_code(&request.into_inner().verification_code)?;
        let found = self
            .services
            .store
            .read(move |tx| certificates::find(tx, &code))
            .await?;
        let institution = &self.services.site.institution;
        Ok(Response::new(wire::VerifyCertificateResponse {
            valid: found.is_some(),
            certificate: found.map(|certificate| {
                convert::wire_certificate(&certificate, Disclosure::Masked, institution)
            }),
        }))
    }
}

/// An `ApplyTransferRequest` in domain values, every field checked before anything is read.
struct Applicant {
    certno: ResidentId,
    psn_name: String,
    out_region: RegionCode,
    in_region: RegionCode,
    bank_account: Option<BankAccount>,
    retiree_payout: RetireePayout,
    in_scheme: Option<Scheme>,
    payout_requested: bool,
    channel: yibao_domain::application::ApplicationChannel,
    key: Option<Key>,
}

/// Converts an `ApplyTransferRequest` received on `today`; a field that does not convert is
/// refused, naming it.
fn applicant(request: wire::ApplyTransferRequest, today: NaiveDate) -> Result<Applicant, Error> {
    let certno = convert::certno("certno", &request.certno, today)?;
    check_name(&request.psn_name)?;
    let out_region = convert::region("trafout_admdvs", &request.trafout_admdvs)?;
    let in_region = convert::region("trafin_admdvs", &request.trafin_admdvs)?;
    let bank_account = convert::payout_account(request.bank_account.as_ref(), &request.psn_name)?;
    let key = Key::of(&request.client_request_id, || inbox::body_hash(&request))?;
    Ok(Applicant {
        certno,
        psn_name: request.psn_name,
        out_region,
        in_region,
        bank_account,
        retiree_payout: RetireePayout::from(request.retiree_payout_requested),
        in_scheme: convert::scheme(request.insutype_at_transfer_in),
        payout_requested: request.payout_requested,
        channel: convert::channel(request.channel),
        key,
    })
}

/// Converts a `ListTransfersRequest`: whose transfers (`certno`) and in which stage (`state`);
/// a terminal stage needs a person, since only open transfers are listed by state alone.
fn listing(
    request: &wire::ListTransfersRequest,
    today: NaiveDate,
) -> Result<(Option<ResidentId>, Option<Stage>), Error> {
    let stage = match request.state {
        0 => None,
        value => Some(
            convert::stage(value)
                .ok_or_else(|| Error::invalid("state", "must be a TransferState value"))?,
        ),
    };
    let certno = match (request.certno.as_str(), stage) {
        ("", Some(stage)) if stage.is_terminal() => {
            let rule = "a terminal state needs certno (only open transfers are listed by state)";
            return Err(Error::invalid("state", rule));
        }
        ("", Some(_)) => None,
        (certno, _) => Some(convert::certno("certno", certno, today)?),
    };
    Ok((certno, stage))
}

/// Converts an `IssueCertificateRequest` received on `today`: the person's ID number, once the
/// name is checked.
fn holder(request: &wire::IssueCertificateRequest, today: NaiveDate) -> Result<ResidentId, Error> {
    let certno = convert::certno("certno", &request.certno, today)?;
    check_name(&request.psn_name)?;
    Ok(certno)
}

/// How a watch stream that sent nothing for `idle` ends: UNAVAILABLE, since watching again is
/// safe and the contract says a stream may end so.
fn idle_end(idle: Duration) -> Status {
    Status::unavailable(format!(
        "the watch sent nothing for {} ms, its idle limit; watch again",
        idle.as_millis()
    ))
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

#[cfg(test)]
mod tests;
