//! What a running bureau holds: its site, store, clock, peer, bank gateway and watchers — and
//! the one path every protocol step takes through the store: [`Services::write`] runs the step
//! as one store job and, once it is committed, hands its [`Changes`] to the watchers and wakes
//! the dispatcher. Handlers and the outbox hold this; drivers never see it.

use std::sync::Arc;

use tokio::sync::Notify;
use yibao_runtime::clock::Clock;
use yibao_store::{Store, Tx};

use crate::bank::BankGateway;
use crate::context::{Site, StepContext};
use crate::faults::FaultRules;
use crate::peer::{Peer, Peers};
use crate::record::{Changes, Step, WatchHint};
use crate::streams::Streams;
use crate::watchers::Watchers;

/// Whether the admin API answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admin {
    /// Registered (tests, load runs).
    Enabled,
    /// Not registered.
    Disabled,
}

/// One bureau service's shared parts.
#[derive(Debug)]
pub struct Services {
    /// The fixed facts.
    pub site: Arc<Site>,
    /// The durable ledger.
    pub store: Store,
    /// The service's clock (adjustable in tests).
    pub clock: Clock,
    /// The peer bureaus, by name.
    pub peers: Peers,
    /// The bank gateway payouts go through.
    pub bank: Arc<dyn BankGateway>,
    /// Who waits for which transfer to change.
    pub watchers: Arc<Watchers>,
    /// How many watch streams are open, and their limits.
    pub streams: Arc<Streams>,
    /// Wakes the outbox dispatcher when a message is queued.
    pub dispatch_now: Notify,
    /// Whether the admin API answers.
    pub admin: Admin,
    /// The bearer token admin calls must carry; without one, loopback callers only.
    pub admin_token: Option<yibao_runtime::config::AdminToken>,
    /// Fault rules in force (none unless added).
    pub faults: Arc<FaultRules>,
    /// The platform messages sent and received lately (`yibao journal`).
    pub exchanges: Arc<crate::exchanges::MessageJournal>,
}

impl Services {
    /// The peer reaching the bureau that hosts `receiver`, a message's receiving region as the
    /// outbox stores it (the directory says which bureau hosts it).
    pub fn peer_for(&self, receiver: &str) -> &Peer {
        let bureau = yibao_domain::region::RegionCode::parse(receiver)
            .ok()
            .and_then(|code| self.site.directory.bureau_of(code));
        self.peers.of(bureau.map(|name| name.as_str()))
    }

    /// Notes an injected fault in the history of `transfer_id`, when this bureau knows the
    /// transfer (a fault on a message that would create it is counted by its rule only). A
    /// failure to note is logged, never in the way of the fault itself.
    pub async fn note_fault(&self, transfer_id: &str, detail: String) {
        let id = transfer_id.to_owned();
        let noted = self
            .write(move |step| -> Result<(), crate::error::Error> {
                if step.load(&id)?.is_some() {
                    let happening = crate::record::Happening {
                        kind: "FAULT_INJECTED",
                        from_state: "",
                        detail,
                        attempt: 0,
                    };
                    step.note(&id, happening)?;
                }
                Ok(())
            })
            .await;
        if let Err(error) = noted {
            tracing::warn!(%error, transfer_id, "could not note an injected fault");
        }
        tracing::info!(transfer_id, "fault injected");
    }

    /// The certno of a stored transfer, for fault rules that match a person.
    pub async fn certno_of(&self, transfer_id: &str) -> Option<String> {
        self.document_of(transfer_id)
            .await
            .map(|document| document.certno)
    }

    /// A stored transfer, if it is there and reads (for fault rules' matchers).
    pub async fn document_of(
        &self,
        transfer_id: &str,
    ) -> Option<crate::document::TransferDocument> {
        let id = transfer_id.to_owned();
        self.store
            .read(move |tx| crate::record::load(tx, &id))
            .await
            .ok()
            .flatten()
    }

    /// Runs `work` as one protocol step in one store job, then publishes what it changed.
    pub async fn write<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut Step<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<yibao_store::Error> + Send + 'static,
    {
        self.write_hinted(WatchHint::Nothing, work).await
    }

    /// As [`Services::write`], marking the transfers the step creates as watched (an
    /// application, which a watch usually follows at once).
    pub async fn write_hinted<T, E, F>(&self, hint: WatchHint, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut Step<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<yibao_store::Error> + Send + 'static,
    {
        let job = self.job(hint, work);
        let (value, changes) = self.store.write(job).await?;
        self.publish(changes);
        Ok(value)
    }

    /// Several independent steps sharing one group commit (`Store::write_each`); each is undone
    /// alone when it fails.
    pub async fn write_each<T, E, F>(&self, works: Vec<F>) -> Vec<Result<T, E>>
    where
        F: FnOnce(&mut Step<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<yibao_store::Error> + Send + 'static,
    {
        let jobs: Vec<_> = works
            .into_iter()
            .map(|work| self.job(WatchHint::Nothing, work))
            .collect();
        let results = self.store.write_each(jobs).await;
        results
            .into_iter()
            .map(|result| {
                result.map(|(value, changes)| {
                    self.publish(changes);
                    value
                })
            })
            .collect()
    }

    /// Wraps a step as a store job that returns what the step changed.
    fn job<T, E, F>(
        &self,
        hint: WatchHint,
        work: F,
    ) -> impl FnOnce(&mut dyn Tx) -> Result<(T, Changes), E> + Send + 'static
    where
        F: FnOnce(&mut Step<'_>) -> Result<T, E> + Send + 'static,
    {
        let clock = self.clock.clone();
        let site = self.site.clone();
        let watchers = self.watchers.clone();
        // The caller's span (a step's, with its transfer_id) follows the job to the writer.
        let span = tracing::Span::current();
        move |tx| {
            let _entered = span.enter();
            // Read in the writer, when the step runs: steps run in the order they were queued,
            // so their times (history, postings, msgids) follow their order.
            let ctx = StepContext {
                now: clock.now(),
                site,
            };
            let mut step = Step::new(tx, &ctx, &watchers, hint);
            let value = work(&mut step)?;
            Ok((value, step.into_changes()))
        }
    }

    /// Offers a committed step's snapshots, wakes the watchers of every transfer it touched and
    /// the dispatcher (the step may have queued messages). After the commit only: a wake-up
    /// before it would find nothing new.
    pub fn publish(&self, changes: Changes) {
        for offer in changes.offers {
            let transfer_id = offer.snapshot.document.transfer_id.clone();
            self.watchers.offer(
                &transfer_id,
                offer.generation,
                offer.version,
                offer.snapshot,
            );
        }
        for transfer_id in &changes.touched {
            self.watchers.notify(transfer_id);
        }
        if !changes.touched.is_empty() {
            self.dispatch_now.notify_one();
        }
    }
}
