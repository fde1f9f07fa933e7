//! The outbox dispatcher: the scheduling loop. It reads the messages that fell due, groups them
//! by the service they go to (up to `batch_limit` a batch), keeps at most `concurrency` batches
//! in flight, and hands each batch to the transport and its outcomes to `settle`. It also starts
//! the deadline sweep once a second, and at once when the test clock moves.
//!
//! While the store cannot commit it sends nothing and sweeps nothing: an answer it could not
//! settle would only be fetched again at once, and a timer could not move a transfer. It waits
//! for the store's health to turn (`crate::health` probes it), and the messages, still due,
//! go out then; a peer answers a repeated msgid with its first answer.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::Context;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use yibao_runtime::retry::Backoff;
use yibao_store::{Health, OutboxMessage};

use crate::messages::Kind;
use crate::outbox::settle::settle_traced;
use crate::outbox::transport::{self, Deliveries, Target};
use crate::record;
use crate::services::Services;
use crate::{sweep, trace};

/// How the dispatcher behaves; from the service configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The most messages in one batch (one round trip).
    pub batch_limit: u32,
    /// The deadline of one delivery attempt.
    pub attempt_timeout: Duration,
    /// Backoff between attempts.
    pub backoff: Backoff,
    /// How long to sleep when nothing is due and nothing wakes us.
    pub idle_poll: Duration,
    /// Batches in flight at once. While they are out, due messages gather for the next ones,
    /// which is what makes batches grow with the load.
    pub concurrency: usize,
}

/// Each message's delivery attempt span (`send <kind>`), a child of its transfer's stored trace
/// context (read here, in one read for the batch); none with traces off.
async fn delivery_spans(services: &Services, batch: &[OutboxMessage]) -> Vec<tracing::Span> {
    if !trace::enabled() {
        return Vec::new();
    }
    let ids: Vec<String> = batch.iter().map(|m| m.transfer_id.clone()).collect();
    let stored = services
        .store
        .read(move |tx| -> Result<Vec<Context>, crate::error::Error> {
            ids.iter()
                .map(
                    |id| Ok(record::load(tx, id)?.map_or_else(Context::new, |d| trace::stored(&d))),
                )
                .collect()
        })
        .await;
    let parents = match stored {
        Ok(parents) => parents,
        Err(error) => {
            // A trace is never a reason to hold a message back: these start traces of their own.
            tracing::warn!(%error, "could not read the transfers' trace contexts");
            Vec::new()
        }
    };
    let mut parents = parents.into_iter();
    batch
        .iter()
        .map(|message| {
            let kind = Kind::parse(&message.kind);
            let parent = parents.next().unwrap_or_default();
            trace::sending(kind, &message.transfer_id, &message.msgid, parent)
        })
        .collect()
}

/// How often overdue transfers are looked for.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// How long a replica's claim on the outbox messages it sends lasts (store shared by replicas):
/// well beyond an attempt (2 s by default), so a live replica's claim does not lapse while its
/// batch is out; a dead replica's messages are sent by another once it lapsed — and a restarted
/// bureau, a new claimant, sends its predecessor's after this long (60 s made a bureau killed and
/// restarted on PostgreSQL wait a minute). A claim that lapses mid-send (a peer slower than this)
/// only lets another replica send the same msgid, which the peer answers with its first answer.
const CLAIM_LEASE: Duration = Duration::from_secs(15);

/// The messages in flight, by outbox id: never read twice while a batch carries them.
type InFlightSet = Arc<Mutex<HashSet<i64>>>;

/// A batch's place among the deliveries in flight, given back when dropped (a panic included:
/// a message must never stay marked in flight, or it would never be sent again).
struct InFlight {
    set: InFlightSet,
    ids: Vec<i64>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        release(&self.set, &self.ids);
    }
}

fn release(set: &Mutex<HashSet<i64>>, ids: &[i64]) {
    if let Ok(mut set) = set.lock() {
        for id in ids {
            set.remove(id);
        }
    }
}

/// The loop's state.
struct Dispatcher {
    services: Arc<Services>,
    settings: Settings,
    in_flight: InFlightSet,
    permits: Arc<Semaphore>,
    batch_limit: usize,
}

/// Runs until `shutdown` says so.
pub async fn run(
    services: Arc<Services>,
    settings: Settings,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let dispatcher = Dispatcher {
        permits: Arc::new(Semaphore::new(settings.concurrency.max(1))),
        batch_limit: settings.batch_limit.max(1) as usize,
        in_flight: InFlightSet::default(),
        services,
        settings,
    };
    let mut clock_ticks = dispatcher.services.clock.subscribe();
    let mut health = dispatcher.services.store.health();
    let mut last_sweep: Option<tokio::time::Instant> = None;
    while !*shutdown.borrow() {
        if *health.borrow_and_update() == Health::Failing {
            tokio::select! {
                changed = health.changed() => if changed.is_err() { break },
                _ = shutdown.changed() => {}
            }
            continue;
        }
        // Wait for a free batch slot first: the longer the batches in flight take, the more
        // messages the next batch carries.
        let permit = tokio::select! {
            permit = dispatcher.permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = shutdown.changed() => continue,
        };
        let started = dispatcher.start_due(permit).await;
        // Deadlines move in days: a sweep a second (and at once when the test clock moves) is
        // plenty, and keeps the sweep's write off the hot path.
        let clock_moved = clock_ticks.has_changed().unwrap_or(false);
        if clock_moved || last_sweep.is_none_or(|at| at.elapsed() >= SWEEP_INTERVAL) {
            clock_ticks.borrow_and_update();
            sweep::sweep_deadlines(&dispatcher.services).await;
            last_sweep = Some(tokio::time::Instant::now());
        }
        if started > 0 {
            continue;
        }
        let wait = dispatcher.idle_wait().await;
        tokio::select! {
            _ = dispatcher.services.dispatch_now.notified() => {}
            _ = clock_ticks.changed() => {
                // Leave the change marked so the next round sweeps at once.
                last_sweep = None;
            }
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => {}
        }
    }
}

impl Dispatcher {
    /// Reads what fell due (enough to fill every free slot, leaving out what is in flight),
    /// groups it by target and starts a batch per group while slots last. Returns how many
    /// batches started; `permit` is the slot the first one takes.
    async fn start_due(&self, permit: OwnedSemaphorePermit) -> usize {
        let now = self.services.clock.now();
        let free = self.permits.available_permits() + 1;
        let read_limit = u32::try_from(free.saturating_mul(self.batch_limit)).unwrap_or(u32::MAX);
        let busy: Vec<i64> = self
            .in_flight
            .lock()
            .map(|set| set.iter().copied().collect())
            .unwrap_or_default();
        let store = &self.services.store;
        let due = if store.shared_by_replicas() {
            // Other replicas send from the same outbox: claim what this one sends.
            let until = now + chrono::Duration::from_std(CLAIM_LEASE).unwrap_or_default();
            let me = crate::replica::id();
            store
                .write(move |tx| tx.claim_due_messages(now, read_limit, &busy, me, until))
                .await
        } else {
            store
                .read(move |tx| tx.due_messages_except(now, read_limit, &busy))
                .await
        };
        let due = due.unwrap_or_else(|error| {
            tracing::warn!(%error, "outbox read failed; retrying");
            Vec::new()
        });
        let mut started = 0;
        let mut permit = Some(permit);
        for (target, batch) in self.group(due) {
            let slot = permit
                .take()
                .or_else(|| self.permits.clone().try_acquire_owned().ok());
            let Some(slot) = slot else {
                // No slot left: give the rest back; the next round picks them up.
                let ids: Vec<i64> = batch.iter().map(|message| message.id).collect();
                release(&self.in_flight, &ids);
                continue;
            };
            started += 1;
            self.start(target, batch, slot);
        }
        started
    }

    /// Groups due messages by target, marking each in flight; a message already in flight is
    /// left out.
    fn group(&self, due: Vec<OutboxMessage>) -> Vec<(Target, Vec<OutboxMessage>)> {
        let mut groups: Vec<(Target, Vec<OutboxMessage>)> = Vec::new();
        for message in due {
            let fresh = self
                .in_flight
                .lock()
                .map(|mut set| set.insert(message.id))
                .unwrap_or(false);
            if !fresh {
                continue;
            }
            let target = Target::of(Kind::parse(&message.kind));
            // One batch goes to one bureau: the one hosting its receiving region.
            let bureau = self.bureau_of(&message);
            match groups.iter_mut().find(|(t, batch)| {
                *t == target
                    && batch.len() < self.batch_limit
                    && batch.first().map(|first| self.bureau_of(first)) == Some(bureau)
            }) {
                Some((_, batch)) => batch.push(message),
                None => groups.push((target, vec![message])),
            }
        }
        groups
    }

    /// The bureau hosting a message's receiving region, if the directory names one.
    fn bureau_of(&self, message: &OutboxMessage) -> Option<&str> {
        yibao_domain::region::RegionCode::parse(&message.peer)
            .ok()
            .and_then(|code| self.services.site.directory.bureau_of(code))
            .map(|name| name.as_str())
    }

    /// Sends one batch and settles it, in a task of its own holding `permit`.
    fn start(&self, target: Target, batch: Vec<OutboxMessage>, permit: OwnedSemaphorePermit) {
        let services = self.services.clone();
        let attempt_timeout = self.settings.attempt_timeout;
        let backoff = self.settings.backoff;
        let slot = InFlight {
            set: self.in_flight.clone(),
            ids: batch.iter().map(|message| message.id).collect(),
            _permit: permit,
        };
        tokio::spawn(async move {
            let _slot = slot;
            let spans = delivery_spans(&services, &batch).await;
            let deliveries = Deliveries::new(
                batch
                    .iter()
                    .zip(&spans)
                    .map(|(message, span)| (message.msgid.clone(), trace::context_of(span))),
            );
            let sent = transport::send(&services, attempt_timeout, target, &batch, &deliveries);
            let outcomes = sent.await;
            // The attempts end here; their answers are applied in steps of their own.
            let parents = spans.iter().map(trace::context_of).collect();
            drop(spans);
            settle_traced(&services, backoff, batch, outcomes, parents).await;
            // A finished batch frees a slot and may leave messages due: look again.
            services.dispatch_now.notify_one();
        });
    }

    /// How long to sleep when nothing started. A message due already is one in flight: a
    /// finishing batch wakes us, and polling the outbox every millisecond meanwhile would only
    /// burn CPU. Otherwise sleep until the next message falls due.
    async fn idle_wait(&self) -> Duration {
        let next_due = self
            .services
            .store
            .read(|tx| tx.next_due_at())
            .await
            .ok()
            .flatten();
        let now = self.services.clock.now();
        next_due
            .and_then(|at| (at - now).to_std().ok())
            .filter(|until| !until.is_zero())
            .unwrap_or(self.settings.idle_poll)
            .min(self.settings.idle_poll)
            .max(Duration::from_millis(1))
    }
}
