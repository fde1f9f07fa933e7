//! The admin API (tests and load runs; only registered when configured): seed the synthetic
//! population, move the test clock, report ledger totals, sample persons of a flow.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use yibao_domain::population::{self, SyntheticPerson};
use yibao_domain::scheme::EnrolmentState;
use yibao_domain::transfer::{Side, Stage};
use yibao_proto::admin::v1 as wire;
use yibao_proto::admin::v1::admin_service_server::AdminService;
use yibao_runtime::directory::BureauRole;
use yibao_store::{PersonRow, Posting, Tx};

use crate::convert::{self, money_text, timestamp};
use crate::error::Error;
use crate::journal::{account, reason};
use crate::services::Services;

/// The most persons one `SeedPopulation` call writes.
const SEED_LIMIT: u64 = 1_000_000;
/// Persons written per transaction while seeding.
const SEED_CHUNK: u64 = 5_000;

/// Serves `AdminService`.
#[derive(Debug, Clone)]
pub struct AdminApi {
    services: Arc<Services>,
}

impl AdminApi {
    /// The API over a bureau.
    pub fn new(services: Arc<Services>) -> Self {
        Self { services }
    }
}

/// This bureau's view of a synthetic person, if it hosts their region on its side.
pub fn materialise(bureau: &Services, person: &SyntheticPerson) -> Option<(PersonRow, u64)> {
    let periods = serde_json::to_string(&person.periods).ok()?;
    match bureau.site.role {
        BureauRole::TransferOut if bureau.site.hosts(person.out_region) => Some((
            PersonRow {
                certno: person.certno.expose_unmasked().to_owned(),
                psn_name: person.name.clone(),
                insu_admdvs: person.out_region.to_string(),
                insutype: person.out_scheme.code(),
                psn_insu_stas: person.out_state.code(),
                fst_insu_ym: person.first_insured.to_string(),
                retired: person.retired,
                arrears_cents: i64::try_from(person.arrears.cents()).unwrap_or(i64::MAX),
                deemed_months: 0,
                periods_json: periods,
                flow: person.flow.name().to_owned(),
            },
            person.balance.cents(),
        )),
        BureauRole::TransferIn
            if bureau.site.hosts(person.in_region) && person.enrolled_at_transfer_in =>
        {
            Some((
                PersonRow {
                    certno: person.certno.expose_unmasked().to_owned(),
                    psn_name: person.name.clone(),
                    insu_admdvs: person.in_region.to_string(),
                    insutype: person.in_scheme.code(),
                    psn_insu_stas: EnrolmentState::Normal.code(),
                    fst_insu_ym: person.in_enrolled_from.to_string(),
                    retired: person.retired,
                    arrears_cents: 0,
                    deemed_months: 0,
                    periods_json: "[]".to_owned(),
                    flow: person.flow.name().to_owned(),
                },
                0,
            ))
        }
        _ => None,
    }
}

fn seed_chunk(
    tx: &mut dyn Tx,
    bureau: &Services,
    seed: u64,
    first: u64,
    count: u64,
) -> Result<(u64, u64), Error> {
    let mut rows = Vec::new();
    let mut balances = Vec::new();
    for index in first..first.saturating_add(count) {
        let person = population::person(seed, index)
            .map_err(|error| Error::invalid("first_index", error))?;
        if let Some((row, balance)) = materialise(bureau, &person) {
            balances.push((row.certno.clone(), balance));
            rows.push(row);
        }
    }
    let mut written = 0;
    let mut present = 0;
    let now = bureau.clock.now();
    for (row, (certno, balance)) in rows.iter().zip(balances) {
        let counted = tx.insert_persons(std::slice::from_ref(row))?;
        written += counted.written;
        present += counted.already_present;
        if counted.written > 0 && balance > 0 {
            tx.post(&Posting {
                from_account: account::OPENING.to_owned(),
                to_account: account::person(&certno),
                amount_cents: i64::try_from(balance).unwrap_or(0),
                transfer_id: None,
                reason: reason::OPENING.to_owned(),
                at: now,
            })?;
        }
    }
    Ok((written, present))
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn seed_population(
        &self,
        request: Request<wire::SeedPopulationRequest>,
    ) -> Result<Response<wire::SeedPopulationResponse>, Status> {
        let request = request.into_inner();
        if request.count == 0 || request.count > SEED_LIMIT {
            return Err(Error::invalid("count", format!("must be 1 to {SEED_LIMIT}")).into());
        }
        if request.first_index.saturating_add(request.count) > population::MAX_INDEX {
            return Err(Error::invalid(
                "first_index",
                format!(
                    "first_index + count must not exceed {}",
                    population::MAX_INDEX
                ),
            )
            .into());
        }
        let mut written = 0;
        let mut present = 0;
        let mut first = request.first_index;
        let end = request.first_index + request.count;
        while first < end {
            let count = SEED_CHUNK.min(end - first);
            let bureau = self.services.clone();
            let seed = request.seed;
            let (w, p) = self
                .services
                .store
                .write(move |tx| seed_chunk(tx, &bureau, seed, first, count))
                .await?;
            written += w;
            present += p;
            first += count;
        }
        Ok(Response::new(wire::SeedPopulationResponse {
            persons_written: written,
            persons_already_present: present,
        }))
    }

    async fn advance_clock(
        &self,
        request: Request<wire::AdvanceClockRequest>,
    ) -> Result<Response<wire::AdvanceClockResponse>, Status> {
        let by = request
            .into_inner()
            .by
            .ok_or_else(|| Error::invalid("by", "required"))?;
        if by.seconds < 0 || by.nanos < 0 {
            return Err(Error::invalid("by", "must not be negative").into());
        }
        let by = chrono::Duration::seconds(by.seconds)
            + chrono::Duration::nanoseconds(i64::from(by.nanos));
        let now = self
            .services
            .clock
            .advance(by)
            .map_err(|error| Error::FailedPrecondition(error.to_string()))?;
        let offset = self.services.clock.offset().num_milliseconds().to_string();
        self.services
            .store
            .write(move |tx| -> Result<(), Error> {
                Ok(tx.put_setting("clock_offset_ms", &offset)?)
            })
            .await?;
        self.services.dispatch_now.notify_one();
        Ok(Response::new(wire::AdvanceClockResponse {
            now: Some(timestamp(now)),
        }))
    }

    async fn get_clock(
        &self,
        _: Request<wire::GetClockRequest>,
    ) -> Result<Response<wire::GetClockResponse>, Status> {
        Ok(Response::new(wire::GetClockResponse {
            now: Some(timestamp(self.services.clock.now())),
        }))
    }

    async fn get_ledger_totals(
        &self,
        _: Request<wire::GetLedgerTotalsRequest>,
    ) -> Result<Response<wire::GetLedgerTotalsResponse>, Status> {
        let bureau = self.services.clone();
        let totals = self
            .services
            .store
            .read(move |tx| -> Result<wire::LedgerTotals, Error> {
                let by_reason = tx.totals_by_reason()?;
                let classes = tx.account_class_balances()?;
                let sum = |name: &str| {
                    by_reason
                        .iter()
                        .filter(|(r, _)| r == name)
                        .map(|(_, v)| *v)
                        .sum::<i64>()
                };
                let class = |name: &str| {
                    classes
                        .iter()
                        .filter(|(c, _)| c == name)
                        .map(|(_, v)| *v)
                        .sum::<i64>()
                };
                let text = |cents: i64| money_text(u64::try_from(cents).unwrap_or(0));
                let states = tx.count_transfers_by_state()?;
                let today = bureau.clock.today();
                let overdue = tx.count_open_transfers_due_before(today)?;
                let open = states
                    .iter()
                    .filter(|(state, _)| {
                        !Stage::of_state_name(state).is_some_and(Stage::is_terminal)
                    })
                    .map(|(_, count)| count)
                    .sum();
                Ok(wire::LedgerTotals {
                    accounts_balance_total: text(class("person")),
                    debited_to_transit_total: text(sum(reason::DEBIT_TO_TRANSIT)),
                    in_transit_total: text(class("transit")),
                    settled_out_total: text(sum(reason::SETTLE)),
                    returned_total: text(sum(reason::REVERSE)),
                    credited_total: text(sum(reason::CREDIT)),
                    paid_to_bank_total: text(sum(reason::PAY_TO_BANK)),
                    transfers_by_state: states
                        .iter()
                        .map(|(state, count)| wire::StateCount {
                            // Each bureau plays one side for the transfers it holds.
                            side: convert::wire_side(match bureau.site.role {
                                BureauRole::TransferOut => Side::Out,
                                BureauRole::TransferIn => Side::In,
                            }) as i32,
                            state: convert::wire_state_of_name(state),
                            count: *count,
                        })
                        .collect(),
                    open_transfers: open,
                    overdue_transfers: overdue,
                    as_of: Some(timestamp(bureau.clock.now())),
                })
            })
            .await?;
        Ok(Response::new(wire::GetLedgerTotalsResponse {
            totals: Some(totals),
        }))
    }

    async fn sample_persons(
        &self,
        request: Request<wire::SamplePersonsRequest>,
    ) -> Result<Response<wire::SamplePersonsResponse>, Status> {
        let request = request.into_inner();
        let flow = convert::population_flow("flow", &request.flow)?;
        let limit = match request.limit {
            0 => 100,
            n => n.min(10_000),
        };
        let rows = self
            .services
            .store
            .read(move |tx| -> Result<_, Error> { Ok(tx.sample_persons(flow.name(), limit)?) })
            .await?;
        let (out_region, in_region) = flow.region_codes();
        let persons = rows
            .into_iter()
            .map(|row| {
                // A sampled person was seeded from the population: an ID number that does not
                // map back to an index is a stored row that does not decode.
                let index = yibao_domain::id::ResidentId::parse(&row.certno)
                    .ok()
                    .and_then(|id| population::index_of_certno(&id, flow))
                    .ok_or_else(|| {
                        Error::Internal("a sampled person is not of the population".to_owned())
                    })?;
                Ok(wire::SamplePerson {
                    index,
                    certno: row.certno,
                    psn_name: row.psn_name,
                    flow: row.flow,
                    trafout_admdvs: out_region.to_string(),
                    trafin_admdvs: in_region.to_string(),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(Response::new(wire::SamplePersonsResponse { persons }))
    }
}
