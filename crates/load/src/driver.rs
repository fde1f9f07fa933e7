//! One transfer, start to finish, and the two loops that start them.
//!
//! A transfer is `ApplyTransfer` at the bureau the flow applies at, then `WatchTransfer` there
//! until a terminal state arrives (server push, no polling). Its end-to-end latency runs from its
//! intended start (in an open loop: its slot in the schedule, so a stall that delays starts is
//! counted, not hidden) to the terminal message. Transient statuses are retried a bounded number
//! of times with the same idempotency key; anything else fails the transfer and is counted by
//! status. Against several replicas of a bureau, applications go to each in turn, and a retried
//! call (apply or watch) goes to the next replica: one killed is failed over at the next attempt.
//! RESOURCE_EXHAUSTED (a bureau beyond its capacity refusing at once) is retried apart:
//! after a growing pause with full jitter (up to [`REFUSAL_BACKOFF_MAX`]), for as long as the
//! transfer may take, so that an overloaded pair is offered less, not more.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tonic::Code;
use tonic::transport::Channel;
use yibao_domain::population::{ApplyAt, Flow};
use yibao_domain::region::RegionCode;
use yibao_harness::{code_name, is_terminal, state_name};
use yibao_proto::bureau::v1::bureau_service_client::BureauServiceClient;
use yibao_proto::bureau::v1::{ApplyTransferRequest, WatchTransferRequest};
use yibao_proto::common::v1::TransferState;
use yibao_runtime::directory::RegionDirectory;

use crate::metrics::{Metrics, Rpc};
use crate::options::{Pace, Stop};
use crate::people::{self, Exhausted, Job, People};
use crate::split::Sampler;

/// Attempts of one call before a transient status fails the transfer: six pauses of 50 ms to
/// 1.6 s, 3.15 s in all, long enough for a bureau killed under load to restart.
const MAX_ATTEMPTS: u32 = 7;
/// The first pause before a retry; doubled for each further attempt.
const RETRY_BACKOFF_FIRST: Duration = Duration::from_millis(50);
/// The longest pause after a refusal (RESOURCE_EXHAUSTED); pauses are drawn at random up to
/// `RETRY_BACKOFF_FIRST × 2^n`, capped here, so refused callers spread out.
const REFUSAL_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// The deadline sent with each `ApplyTransfer` (`grpc-timeout`).
const APPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for a watch stream to end after its terminal message.
const STREAM_END_WAIT: Duration = Duration::from_secs(1);

/// How long a watch may stay silent before it is opened again (a new watch starts with the
/// transfer's current state). Every re-opening is counted and shown as a retry
/// (`WatchTransfer: SILENT`), so a stream that should have spoken is visible, not hidden.
const WATCH_SILENCE: Duration = Duration::from_secs(15);

/// What every transfer task shares.
#[derive(Debug)]
pub struct Context {
    /// Clients of the transfer-out bureau, one per connection.
    pub out: Vec<BureauServiceClient<Channel>>,
    /// Clients of the transfer-in bureau, one per connection.
    pub inn: Vec<BureauServiceClient<Channel>>,
    /// Connections per replica: `out` and `inn` hold each replica's connections together, the
    /// first replica's first, so the client `connections` further on is the next replica's.
    pub connections: usize,
    /// Round-robin position over the connections.
    pub turn: AtomicUsize,
    /// What is measured.
    pub metrics: Arc<Metrics>,
    /// Who applies next.
    pub people: People,
    /// Makes idempotency keys unique to this run.
    pub run_id: String,
    /// How long one transfer may take.
    pub transfer_timeout: Duration,
    /// Set when the run must stop starting transfers.
    pub stop: AtomicBool,
    /// Set when a flow ran out of people: which one.
    pub exhausted: std::sync::Mutex<Option<Flow>>,
    /// Whether people are seeded as the run goes (an exhausted flow then waits for them).
    pub topping_up: bool,
    /// In a run that drives one bureau: picks the transfers whose latency is split.
    pub split: Option<Sampler>,
    /// In a run over a topology: which bureau hosts which region, and clients of each (`out`
    /// and `inn` are empty then).
    pub routes: Option<Routes>,
}

/// Where the applications of a run over a topology go: to the bureau hosting the region the
/// flow applies at.
#[derive(Debug)]
pub struct Routes {
    /// The region directory every bureau reads.
    pub directory: RegionDirectory,
    /// Clients of each bureau, one per connection, by name.
    pub bureaus: Vec<(String, Vec<BureauServiceClient<Channel>>)>,
}

impl Routes {
    /// The name of the bureau hosting `region`, if one does.
    fn bureau_of(&self, region: RegionCode) -> Option<&str> {
        self.directory.bureau_of(region).map(|name| name.as_str())
    }

    /// The pair a person's transfer runs between, `north → west` (`none` for a region no
    /// bureau hosts).
    fn pair(&self, job: &Job) -> String {
        let name = |region| self.bureau_of(region).unwrap_or("none");
        format!(
            "{} → {}",
            name(job.person.out_region),
            name(job.person.in_region)
        )
    }
}

/// How long an application waits for a top-up to seed more people before the run stops.
const TOP_UP_WAIT: Duration = Duration::from_secs(30);

impl Context {
    /// A client of the bureau a flow applies at, taking connections (and replicas) in turn.
    fn client(&self, at: ApplyAt) -> Option<Picked<'_>> {
        let clients = match at {
            ApplyAt::TransferOut => &self.out,
            ApplyAt::TransferIn => &self.inn,
        };
        if clients.is_empty() {
            return None;
        }
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        // Replica after replica, so that consecutive transfers land on different replicas.
        let replicas = (clients.len() / self.connections.max(1)).max(1);
        let (replica, connection) = (turn % replicas, turn / replicas);
        let index = replica * self.connections.max(1) + connection % self.connections.max(1);
        Some(Picked {
            clients,
            index: index % clients.len(),
            stride: self.connections.max(1),
        })
    }

    /// The client (among the replicas' connections) of the bureau `job` applies at, and in a
    /// run over a topology the pair of bureaus its transfer runs between.
    fn route(&self, job: &Job) -> (Result<Picked<'_>, tonic::Status>, Option<String>) {
        let at = people::applies_at(job.flow);
        let Some(routes) = &self.routes else {
            let client = self
                .client(at)
                .ok_or_else(|| tonic::Status::unavailable("no connection"));
            return (client, None);
        };
        let region = match at {
            ApplyAt::TransferOut => job.person.out_region,
            ApplyAt::TransferIn => job.person.in_region,
        };
        let clients = routes.bureau_of(region).and_then(|bureau| {
            routes
                .bureaus
                .iter()
                .find(|(name, _)| name == bureau)
                .map(|(_, clients)| clients)
                .filter(|clients| !clients.is_empty())
        });
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        let picked = clients
            .map(|clients| Picked {
                clients,
                index: turn % clients.len(),
                stride: clients.len(),
            })
            .ok_or_else(|| {
                tonic::Status::unavailable(format!(
                    "no bureau of the topology hosts region {region}, where {} applies",
                    job.flow.name()
                ))
            });
        (picked, Some(routes.pair(job)))
    }

    /// The next application, or `None` (and the run stops) when a flow ran out of people. While
    /// the population is being topped up, an application waits for the next seeded people
    /// rather than end the run (at most [`TOP_UP_WAIT`] without any arriving).
    async fn next_job(&self) -> Option<Job> {
        loop {
            let grown = self.people.grown();
            tokio::pin!(grown);
            grown.as_mut().enable();
            match self.people.next() {
                Ok(job) => return Some(job),
                Err(Exhausted(flow)) => {
                    let waited = self.topping_up
                        && !self.stop.load(Ordering::Relaxed)
                        && tokio::time::timeout(TOP_UP_WAIT, grown).await.is_ok();
                    if waited {
                        continue;
                    }
                    if let Ok(mut exhausted) = self.exhausted.lock() {
                        exhausted.get_or_insert(flow);
                    }
                    self.stop.store(true, Ordering::Relaxed);
                    return None;
                }
            }
        }
    }
}

/// The client one transfer calls, among the connections to every replica of its bureau.
struct Picked<'a> {
    /// Every connection to the bureau, replica by replica.
    clients: &'a [BureauServiceClient<Channel>],
    /// The one called now.
    index: usize,
    /// Connections per replica.
    stride: usize,
}

impl Picked<'_> {
    /// The client called now.
    fn client(&self) -> BureauServiceClient<Channel> {
        self.clients[self.index % self.clients.len()].clone()
    }

    /// After a transient failure: the same connection of the next replica (with one replica,
    /// the same client).
    fn fail_over(&mut self) {
        self.index = (self.index + self.stride) % self.clients.len();
    }
}

/// How a transfer ended, when nothing failed on the way.
enum Outcome {
    /// A terminal state arrived; for REJECTED, with the refusal reason's name.
    Terminal(TransferState, Option<String>),
    /// The application was refused with FAILED_PRECONDITION.
    RefusedAtApplication,
}

impl Outcome {
    /// The outcome's name in reports: `COMPLETED`, `REJECTED (ARREARS)`, …
    fn name(&self) -> String {
        match self {
            Outcome::Terminal(state, None) => state_name(*state).to_owned(),
            Outcome::Terminal(state, Some(reason)) => format!("{} ({reason})", state_name(*state)),
            Outcome::RefusedAtApplication => "REFUSED_AT_APPLICATION".to_owned(),
        }
    }
}

/// Why a transfer failed.
enum Failure {
    /// A call answered a status that is not retried (or kept answering a transient one).
    Status(Rpc, tonic::Status),
    /// The stream kept ending without a terminal state.
    WatchEnded,
}

/// Whether a status is worth retrying with the same request. The one place that decides it.
/// Every application carries an idempotency key, so repeating one whose fate is unknown is
/// safe (the bureau answers a repeated key with the transfer the first request created); that
/// includes CANCELLED, which a reset HTTP/2 stream surfaces as, and UNKNOWN, which a bureau
/// killed mid-call surfaces as ("transport error").
fn transient(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::Unknown
            | Code::ResourceExhausted
            | Code::DeadlineExceeded
            | Code::Aborted
            | Code::Cancelled
    )
}

/// Whether an outcome is what the flow is built to reach.
fn expected(flow: Flow, outcome: &Outcome) -> bool {
    match outcome {
        Outcome::RefusedAtApplication => people::is_refusal(flow),
        Outcome::Terminal(state, _) if people::is_refusal(flow) => {
            *state == TransferState::Rejected
        }
        Outcome::Terminal(state, _) => {
            matches!(state, TransferState::Completed | TransferState::PaidToBank)
        }
    }
}

/// Runs one transfer and records what happened. `intended` is when it should have started.
pub async fn run_transfer(context: Arc<Context>, job: Job, intended: Instant) {
    let metrics = &context.metrics;
    let started = Instant::now();
    metrics
        .schedule_lag
        .record(started.saturating_duration_since(intended));
    metrics.in_flight.fetch_add(1, Ordering::Relaxed);
    let flow = job.flow;
    let request = people::application(&job, &context.run_id);
    let (picked, pair) = context.route(&job);
    let result = match picked {
        Ok(picked) => {
            tokio::time::timeout(
                context.transfer_timeout,
                drive(picked, request, flow, metrics),
            )
            .await
        }
        Err(status) => Ok(Err(Failure::Status(Rpc::Apply, status))),
    };
    let finished = Instant::now();
    count_pair(metrics, pair.as_deref(), flow, &result);
    let failure = match result {
        Ok(Ok((outcome, transfer_id))) if expected(flow, &outcome) => {
            record_success(metrics, flow, &outcome, intended, started, finished);
            if let (Some(split), Outcome::Terminal(state, _), Some(id)) =
                (&context.split, &outcome, &transfer_id)
            {
                split.offer(id, *state, finished.saturating_duration_since(intended));
            }
            None
        }
        Ok(Ok((outcome, _))) => {
            let name = outcome.name();
            metrics.outcome(flow.name(), &name);
            Some((
                Rpc::Transfer,
                format!("unexpected outcome {name} for {}", flow.name()),
                String::new(),
            ))
        }
        Ok(Err(Failure::Status(rpc, status))) => {
            let code = code_name(status.code());
            metrics.outcome(flow.name(), &format!("ERROR {code}"));
            Some((rpc, code.to_owned(), status.message().to_owned()))
        }
        Ok(Err(Failure::WatchEnded)) => {
            metrics.outcome(flow.name(), "ERROR WATCH_ENDED");
            Some((
                Rpc::Watch,
                "stream kept ending before a terminal state".to_owned(),
                String::new(),
            ))
        }
        Err(_elapsed) => {
            metrics.outcome(flow.name(), "ERROR TIMEOUT");
            Some((
                Rpc::Transfer,
                "no terminal state within the transfer timeout".to_owned(),
                String::new(),
            ))
        }
    };
    if let Some((rpc, kind, message)) = failure {
        metrics.error(rpc, &kind, &message);
        metrics.failed.fetch_add(1, Ordering::Relaxed);
    }
    metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
}

/// The result of driving one transfer: its outcome and id, a failure, or the timeout.
type Driven = Result<Result<(Outcome, Option<String>), Failure>, tokio::time::error::Elapsed>;

/// Counts a finished transfer under its pair of bureaus, in a run over a topology: succeeded
/// when it ended as its flow expects, completed when it also moved the person (COMPLETED or
/// PAID_TO_BANK).
fn count_pair(metrics: &Metrics, pair: Option<&str>, flow: Flow, result: &Driven) {
    let Some(pair) = pair else {
        return;
    };
    let (succeeded, completed) = match result {
        Ok(Ok((outcome, _))) if expected(flow, outcome) => (
            true,
            matches!(
                outcome,
                Outcome::Terminal(TransferState::Completed | TransferState::PaidToBank, _)
            ),
        ),
        _ => (false, false),
    };
    metrics.pair_finished(pair, succeeded, completed);
}

/// Records a transfer that ended as its flow expects: its latencies (end to end from when it
/// should have started, service time from when it did), the counts and the outcome.
fn record_success(
    metrics: &Metrics,
    flow: Flow,
    outcome: &Outcome,
    intended: Instant,
    started: Instant,
    finished: Instant,
) {
    metrics
        .end_to_end
        .record(finished.saturating_duration_since(intended));
    metrics
        .interval_end_to_end
        .record(finished.saturating_duration_since(intended));
    metrics
        .service_time
        .record(finished.saturating_duration_since(started));
    metrics.succeeded.fetch_add(1, Ordering::Relaxed);
    if people::is_refusal(flow) {
        metrics.refused.fetch_add(1, Ordering::Relaxed);
    }
    metrics.outcome(flow.name(), &outcome.name());
}

/// Applies, then watches until a terminal state; the outcome, and the transfer's id when one was
/// created.
async fn drive(
    mut picked: Picked<'_>,
    application: ApplyTransferRequest,
    flow: Flow,
    metrics: &Metrics,
) -> Result<(Outcome, Option<String>), Failure> {
    let mut attempt = 0;
    let mut refusals = 0;
    let transfer = loop {
        attempt += 1;
        let mut request = tonic::Request::new(application.clone());
        request.set_timeout(APPLY_TIMEOUT);
        let sent = Instant::now();
        match picked.client().apply_transfer(request).await {
            Ok(response) => {
                metrics.apply.record(sent.elapsed());
                break response.into_inner().transfer;
            }
            Err(status)
                if status.code() == Code::FailedPrecondition && people::is_refusal(flow) =>
            {
                metrics.apply.record(sent.elapsed());
                return Ok((Outcome::RefusedAtApplication, None));
            }
            Err(status) if status.code() == Code::ResourceExhausted => {
                attempt -= 1;
                refusals += 1;
                refused(metrics, Rpc::Apply, &status, refusals).await;
            }
            Err(status) if transient(status.code()) && attempt < MAX_ATTEMPTS => {
                picked.fail_over();
                retry(metrics, Rpc::Apply, &status, attempt).await;
            }
            Err(status) => return Err(Failure::Status(Rpc::Apply, status)),
        }
    };
    let Some(transfer) = transfer else {
        return Err(Failure::Status(
            Rpc::Apply,
            tonic::Status::internal("the answer carried no transfer"),
        ));
    };
    let state = TransferState::try_from(transfer.state).unwrap_or_default();
    let outcome = if is_terminal(state) {
        terminal(state, transfer.refusal_reason)
    } else {
        watch(picked, &transfer.transfer_id, metrics).await?
    };
    Ok((outcome, Some(transfer.transfer_id)))
}

/// A terminal outcome, naming the refusal reason of a rejection.
fn terminal(state: TransferState, reason: i32) -> Outcome {
    let reason = (state == TransferState::Rejected).then(|| {
        yibao_proto::common::v1::RefusalReason::try_from(reason)
            .map(|r| {
                r.as_str_name()
                    .trim_start_matches("REFUSAL_REASON_")
                    .to_owned()
            })
            .unwrap_or_else(|_| reason.to_string())
    });
    Outcome::Terminal(state, reason)
}

/// Follows a transfer with `WatchTransfer` until a terminal state, watching again (bounded) when
/// the stream breaks. After the terminal message the stream is read to its end, so the client
/// never resets a stream the server is still finishing (HTTP/2 servers count resets).
async fn watch(
    mut picked: Picked<'_>,
    transfer_id: &str,
    metrics: &Metrics,
) -> Result<Outcome, Failure> {
    let mut attempt = 0;
    let mut refusals = 0;
    loop {
        attempt += 1;
        let sent = Instant::now();
        let opened = picked
            .client()
            .watch_transfer(WatchTransferRequest {
                transfer_id: transfer_id.to_owned(),
            })
            .await;
        let mut stream = match opened {
            Ok(response) => response.into_inner(),
            Err(status) if status.code() == Code::ResourceExhausted => {
                attempt -= 1;
                refusals += 1;
                refused(metrics, Rpc::Watch, &status, refusals).await;
                continue;
            }
            Err(status) if transient(status.code()) && attempt < MAX_ATTEMPTS => {
                picked.fail_over();
                retry(metrics, Rpc::Watch, &status, attempt).await;
                continue;
            }
            Err(status) => return Err(Failure::Status(Rpc::Watch, status)),
        };
        let broke = match read_to_terminal(&mut stream, sent, metrics).await? {
            Read::Terminal(outcome) => return Ok(outcome),
            Read::Silent(status) => {
                // Not a failed attempt: the stream is healthy or silently stuck; either way a
                // new watch reads the state afresh.
                attempt -= 1;
                status
            }
            Read::Broke(status) => {
                picked.fail_over();
                status
            }
        };
        if attempt >= MAX_ATTEMPTS {
            return Err(Failure::WatchEnded);
        }
        retry(metrics, Rpc::Watch, &broke, attempt).await;
    }
}

/// How reading a watch stream ended.
enum Read {
    /// At a terminal state.
    Terminal(Outcome),
    /// Silent for [`WATCH_SILENCE`].
    Silent(tonic::Status),
    /// The stream ended or broke before a terminal state (transiently).
    Broke(tonic::Status),
}

/// Reads a watch stream until a terminal state, a silence, or a break; a non-transient error
/// fails the transfer.
async fn read_to_terminal(
    stream: &mut tonic::Streaming<yibao_proto::bureau::v1::WatchTransferResponse>,
    sent: Instant,
    metrics: &Metrics,
) -> Result<Read, Failure> {
    let mut first_at: Option<Instant> = None;
    loop {
        let Ok(next) = tokio::time::timeout(WATCH_SILENCE, stream.message()).await else {
            return Ok(Read::Silent(tonic::Status::deadline_exceeded(format!(
                "SILENT: no message for {WATCH_SILENCE:?}; watching again"
            ))));
        };
        match next {
            Ok(Some(message)) => {
                let now = Instant::now();
                if first_at.is_none() {
                    metrics
                        .watch_first
                        .record(now.saturating_duration_since(sent));
                    first_at = Some(now);
                }
                let (state, reason) = message
                    .transfer
                    .map_or((0, 0), |t| (t.state, t.refusal_reason));
                let state = TransferState::try_from(state).unwrap_or_default();
                if is_terminal(state) {
                    if let Some(first) = first_at {
                        metrics
                            .watch_to_terminal
                            .record(now.saturating_duration_since(first));
                    }
                    // The server ends the stream right after a terminal state.
                    let _ = tokio::time::timeout(STREAM_END_WAIT, stream.message()).await;
                    return Ok(Read::Terminal(terminal(state, reason)));
                }
            }
            Ok(None) => {
                return Ok(Read::Broke(tonic::Status::unavailable(
                    "stream ended before a terminal state",
                )));
            }
            Err(status) if transient(status.code()) => return Ok(Read::Broke(status)),
            Err(status) => return Err(Failure::Status(Rpc::Watch, status)),
        }
    }
}

/// Counts a refused call and waits before it is retried: a random pause up to 50 ms, 100 ms,
/// 200 ms, … at most [`REFUSAL_BACKOFF_MAX`] (full jitter, so refused callers do not return
/// together).
async fn refused(metrics: &Metrics, rpc: Rpc, status: &tonic::Status, refusals: u32) {
    metrics.retries.fetch_add(1, Ordering::Relaxed);
    metrics.retried(rpc, code_name(status.code()), status.message());
    let ceiling = RETRY_BACKOFF_FIRST
        .saturating_mul(2u32.saturating_pow(refusals.saturating_sub(1).min(16)))
        .min(REFUSAL_BACKOFF_MAX);
    let pause = ceiling.mul_f64(rand::random::<f64>());
    tokio::time::sleep(pause).await;
}

/// Counts a retry and waits before it: 50 ms, 100 ms, 200 ms.
async fn retry(metrics: &Metrics, rpc: Rpc, status: &tonic::Status, attempt: u32) {
    metrics.retries.fetch_add(1, Ordering::Relaxed);
    metrics.retried(rpc, code_name(status.code()), status.message());
    tokio::time::sleep(RETRY_BACKOFF_FIRST * 2u32.saturating_pow(attempt.saturating_sub(1))).await;
}

/// Starts transfers until the stop condition, then waits for those in flight.
pub async fn run_loop(context: Arc<Context>, pace: Pace, stop: Stop, start: Instant) {
    let deadline = stop.duration.map(|d| start + d);
    let limit = stop.transfers.unwrap_or(u64::MAX);
    let stopper = deadline.map(|deadline| {
        let context = context.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(deadline).await;
            context.stop.store(true, Ordering::Relaxed);
        })
    });
    match pace {
        Pace::Closed { concurrency } => closed_loop(&context, concurrency, limit).await,
        Pace::Open {
            rate_per_s,
            max_in_flight,
        } => open_loop(&context, rate_per_s, max_in_flight, limit, deadline, start).await,
    }
    if let Some(stopper) = stopper {
        stopper.abort();
    }
}

/// `concurrency` workers, each starting the next transfer when its last one finished.
async fn closed_loop(context: &Arc<Context>, concurrency: usize, limit: u64) {
    let mut workers = JoinSet::new();
    for _ in 0..concurrency {
        let context = context.clone();
        workers.spawn(async move {
            while !context.stop.load(Ordering::Relaxed) {
                if context.metrics.started.fetch_add(1, Ordering::Relaxed) >= limit {
                    context.metrics.started.fetch_sub(1, Ordering::Relaxed);
                    context.stop.store(true, Ordering::Relaxed);
                    break;
                }
                let Some(job) = context.next_job().await else {
                    context.metrics.started.fetch_sub(1, Ordering::Relaxed);
                    break;
                };
                run_transfer(context.clone(), job, Instant::now()).await;
            }
        });
    }
    while workers.join_next().await.is_some() {}
}

/// Starts a transfer every `1 / rate` seconds on a fixed schedule, at most `max_in_flight` at a
/// time; a start delayed by that cap still counts from its slot.
async fn open_loop(
    context: &Arc<Context>,
    rate_per_s: f64,
    max_in_flight: usize,
    limit: u64,
    deadline: Option<Instant>,
    start: Instant,
) {
    let slots = Arc::new(Semaphore::new(max_in_flight));
    let mut tasks = JoinSet::new();
    let mut k: u64 = 0;
    while k < limit && !context.stop.load(Ordering::Relaxed) {
        let intended = start + Duration::from_secs_f64(k as f64 / rate_per_s);
        if deadline.is_some_and(|deadline| intended >= deadline) {
            break;
        }
        tokio::time::sleep_until(intended).await;
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let Some(job) = context.next_job().await else {
            break;
        };
        context.metrics.started.fetch_add(1, Ordering::Relaxed);
        let task_context = context.clone();
        tasks.spawn(async move {
            run_transfer(task_context, job, intended).await;
            drop(slot);
        });
        k += 1;
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_flows_expect_refusals_and_others_a_finished_transfer() {
        assert!(expected(
            Flow::RefusedArrears,
            &Outcome::RefusedAtApplication
        ));
        assert!(expected(
            Flow::RefusedArrears,
            &Outcome::Terminal(TransferState::Rejected, None)
        ));
        assert!(!expected(
            Flow::RefusedArrears,
            &Outcome::Terminal(TransferState::Completed, None)
        ));
        assert!(!expected(
            Flow::CrossProvince,
            &Outcome::RefusedAtApplication
        ));
        assert!(expected(
            Flow::NotConnected,
            &Outcome::Terminal(TransferState::PaidToBank, None)
        ));
        assert!(!expected(
            Flow::CrossProvince,
            &Outcome::Terminal(TransferState::Returned, None)
        ));
    }

    #[tokio::test]
    async fn a_retry_goes_to_the_same_connection_of_the_next_replica() {
        let client = |port: u16| {
            let endpoint =
                tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
                    .expect("a valid endpoint");
            BureauServiceClient::new(endpoint.connect_lazy())
        };
        // Two replicas, two connections each: replica 0's are 0 and 1, replica 1's 2 and 3.
        let clients: Vec<_> = (1..=4).map(client).collect();
        let mut picked = Picked {
            clients: &clients,
            index: 1,
            stride: 2,
        };
        picked.fail_over();
        assert_eq!(picked.index, 3, "connection 1 of replica 1");
        picked.fail_over();
        assert_eq!(picked.index, 1, "and back");
        let mut one_replica = Picked {
            clients: &clients[..2],
            index: 1,
            stride: 2,
        };
        one_replica.fail_over();
        assert_eq!(
            one_replica.index, 1,
            "one replica: the same client, as before"
        );
    }

    #[test]
    fn a_call_whose_fate_is_unknown_is_retried_and_a_refusal_is_not() {
        for code in [
            Code::Unavailable,
            Code::Unknown,
            Code::Cancelled,
            Code::DeadlineExceeded,
        ] {
            assert!(transient(code), "{code:?} is retried with the same key");
        }
        for code in [
            Code::InvalidArgument,
            Code::FailedPrecondition,
            Code::AlreadyExists,
        ] {
            assert!(!transient(code), "{code:?} is an answer");
        }
    }
}
