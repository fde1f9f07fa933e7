//! The bureau: what every handler and the dispatcher share.

use std::sync::Arc;
use std::sync::Mutex;

use std::collections::HashMap;

use tokio::sync::Notify;
use tonic::transport::{Channel, Endpoint};
use yibao_domain::calendar::WorkingCalendar;
use yibao_domain::policy::RegionPolicy;
use yibao_domain::region::RegionCode;
use yibao_runtime::clock::Clock;
use yibao_runtime::directory::{BureauRole, RegionDirectory, RegionEntry};
use yibao_store::Store;

use crate::error::Error;

/// One bureau service: its store, clock, directory and the way to its peer.
#[derive(Debug)]
pub struct Bureau {
    /// Which binary this is; decides the default regions and the peer.
    pub role: BureauRole,
    /// The durable ledger.
    pub store: Store,
    /// The service's clock (adjustable in tests).
    pub clock: Clock,
    /// Every region both services know.
    pub directory: Arc<RegionDirectory>,
    /// Working days for statutory deadlines.
    pub calendar: Arc<WorkingCalendar>,
    /// The pooling regions this bureau hosts.
    pub hosted: Vec<RegionCode>,
    /// The 12-character institution code at the head of every msgid this bureau sends.
    pub institution: String,
    /// The peer bureau.
    pub peer: Peer,
    /// Who waits for which transfer to change (`WatchTransfer`, instant mode).
    pub watchers: Arc<Watchers>,
    /// Wakes the outbox dispatcher when a message is queued.
    pub dispatch_now: Notify,
    /// Whether the admin API answers.
    pub admin_enabled: bool,
    /// Simulated bank gateway: fail every n-th payout (0 = never).
    pub bank_failure_every: u32,
    /// Calls made to the simulated bank gateway (to decide simulated failures).
    pub bank_calls: std::sync::atomic::AtomicU64,
}

impl Bureau {
    /// Whether this bureau hosts the pooling region of `code`.
    pub fn hosts(&self, code: RegionCode) -> bool {
        self.hosted.contains(&code.pooling_region())
    }

    /// The directory entry for a pooling region, or an invalid-argument error naming `field`.
    pub fn region(&self, field: &'static str, code: RegionCode) -> Result<&RegionEntry, Error> {
        self.directory.region(code.pooling_region()).ok_or_else(|| {
            Error::invalid(
                field,
                format!("region {code} is not in the region directory"),
            )
        })
    }

    /// The policy of a pooling region (national defaults for unknown regions).
    pub fn policy(&self, code: RegionCode) -> RegionPolicy {
        self.directory
            .region(code.pooling_region())
            .map(|entry| entry.policy.clone())
            .unwrap_or_default()
    }

    /// Tells the watchers of a transfer that it changed, and the dispatcher that the outbox
    /// may hold new messages. Call after the write committed: a wake-up before the commit would
    /// find nothing due and sleep until the next poll.
    pub fn changed(&self, transfer_id: &str) {
        self.watchers.notify(transfer_id);
        self.dispatch_now.notify_one();
    }
}

/// The peer bureau's address and a long-lived HTTP/2 channel to it.
///
/// The address is either `http://host:port` or `file:PATH`, naming a file the peer writes its
/// address to once it listens; the file is read lazily and again after the peer became
/// unreachable, so both services can start on port 0 and restart on new ports.
#[derive(Debug)]
pub struct Peer {
    spec: String,
    channel: Mutex<Option<Channel>>,
}

impl Peer {
    /// A peer at `spec`; nothing is connected yet.
    pub fn new(spec: String) -> Self {
        Self {
            spec,
            channel: Mutex::new(None),
        }
    }

    /// The channel to the peer, connecting lazily.
    pub fn channel(&self) -> Result<Channel, tonic::Status> {
        let mut cached = self
            .channel
            .lock()
            .map_err(|_| tonic::Status::internal("peer lock poisoned"))?;
        if let Some(channel) = cached.as_ref() {
            return Ok(channel.clone());
        }
        let address = self.resolve()?;
        let channel = Endpoint::from_shared(address)
            .map_err(|_| tonic::Status::unavailable("the peer endpoint is not a valid URI"))?
            .tcp_nodelay(true)
            .http2_keep_alive_interval(std::time::Duration::from_secs(30))
            .connect_lazy();
        *cached = Some(channel.clone());
        Ok(channel)
    }

    /// Forgets the channel, so the next call resolves the address again.
    pub fn reset(&self) {
        if self.spec.starts_with("file:")
            && let Ok(mut cached) = self.channel.lock()
        {
            *cached = None;
        }
    }

    fn resolve(&self) -> Result<String, tonic::Status> {
        match self.spec.strip_prefix("file:") {
            None => Ok(self.spec.clone()),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|_| {
                    tonic::Status::unavailable("the peer has not published its address yet")
                })?;
                let address = text.trim();
                if address.is_empty() {
                    return Err(tonic::Status::unavailable(
                        "the peer's address file is empty",
                    ));
                }
                Ok(if address.starts_with("http") {
                    address.to_owned()
                } else {
                    format!("http://{address}")
                })
            }
        }
    }
}

/// Per-transfer change notification: only the watchers of a transfer wake when it changes, so
/// thousands of concurrent watches cost nothing for the transfers nobody watches.
///
/// A watched transfer also keeps its latest committed snapshot, offered by the step that
/// changed it (see `record::write`), so a watcher wakes to the new state without reading it
/// back. Versions are the sequence number of the history event each save appends; a save
/// raises the entry's floor before its commit, so a snapshot older than any save (committed or
/// not) is never handed out — the watcher reads the store instead.
#[derive(Debug, Default)]
pub struct Watchers {
    waiting: Mutex<HashMap<String, Watched>>,
    /// Numbers the entries: a snapshot collected for one entry is never offered to a later
    /// entry of the same transfer (whose floor knows nothing of the saves in between).
    generations: std::sync::atomic::AtomicU64,
    /// Transfers just applied here, kept (at most [`RECENT`]) with their snapshot for the
    /// watch that usually follows an application at once, oldest first.
    recent: Mutex<std::collections::VecDeque<String>>,
}

/// How many just-applied transfers keep their snapshot without a watcher.
const RECENT: usize = 4096;

/// What is kept for one watched transfer.
#[derive(Debug, Default)]
struct Watched {
    generation: u64,
    notifies: Vec<Arc<Notify>>,
    latest: Option<(u32, Arc<yibao_proto::bureau::v1::Transfer>)>,
    floor: u32,
}

/// One registered watcher; unregisters itself when dropped.
#[derive(Debug)]
pub struct Watch {
    watchers: Arc<Watchers>,
    transfer_id: String,
    notify: Arc<Notify>,
}

impl Watchers {
    /// The entry of a transfer, created (with a new generation) if there is none.
    fn entry<'m>(
        &self,
        waiting: &'m mut HashMap<String, Watched>,
        transfer_id: &str,
    ) -> &'m mut Watched {
        waiting
            .entry(transfer_id.to_owned())
            .or_insert_with(|| Watched {
                generation: self
                    .generations
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                    + 1,
                ..Watched::default()
            })
    }

    /// Registers interest in a transfer. A change after this call wakes the watcher even if it
    /// was not yet waiting (the permit is stored).
    pub fn watch(self: &Arc<Self>, transfer_id: &str) -> Watch {
        let notify = Arc::new(Notify::new());
        if let Ok(mut waiting) = self.waiting.lock() {
            self.entry(&mut waiting, transfer_id)
                .notifies
                .push(notify.clone());
        }
        Watch {
            watchers: self.clone(),
            transfer_id: transfer_id.to_owned(),
            notify,
        }
    }

    /// Marks a transfer being applied here as watched for a while (at most `RECENT` such
    /// transfers are kept), because a watch usually follows an application at once: the
    /// steps after it then offer their snapshots, and the application's own snapshot can be
    /// offered after its commit, so that the watch starts without reading the transfer back.
    /// Call it inside the applying job, before the commit, so that no later save can miss it.
    pub fn expect(&self, transfer_id: &str) -> u64 {
        let Ok(mut waiting) = self.waiting.lock() else {
            return 0;
        };
        let generation = self.entry(&mut waiting, transfer_id).generation;
        if let Ok(mut recent) = self.recent.lock() {
            recent.push_back(transfer_id.to_owned());
            while recent.len() > RECENT {
                if let Some(old) = recent.pop_front()
                    && waiting.get(&old).is_some_and(|w| w.notifies.is_empty())
                {
                    waiting.remove(&old);
                }
            }
        }
        generation
    }

    /// Whether anyone watches the transfer (or it was just applied here).
    pub fn is_watched(&self, transfer_id: &str) -> bool {
        self.waiting
            .lock()
            .is_ok_and(|waiting| waiting.contains_key(transfer_id))
    }

    /// A save of version `version` is under way: no snapshot older than it may be handed out.
    /// Returns the entry's generation, to offer the snapshot with; `None` when nobody watches.
    pub fn saving(&self, transfer_id: &str, version: u32) -> Option<u64> {
        let mut waiting = self.waiting.lock().ok()?;
        let watched = waiting.get_mut(transfer_id)?;
        watched.floor = watched.floor.max(version);
        Some(watched.generation)
    }

    /// Offers the committed snapshot of version `version`, collected for entry `generation`;
    /// kept if that entry still exists and the snapshot is its newest.
    pub fn offer(
        &self,
        transfer_id: &str,
        generation: u64,
        version: u32,
        transfer: Arc<yibao_proto::bureau::v1::Transfer>,
    ) {
        if let Ok(mut waiting) = self.waiting.lock()
            && let Some(watched) = waiting.get_mut(transfer_id)
            && watched.generation == generation
            && watched
                .latest
                .as_ref()
                .is_none_or(|(kept, _)| *kept < version)
        {
            watched.latest = Some((version, transfer));
        }
    }

    /// The latest committed snapshot and its version, unless a newer save may exist.
    pub fn latest(
        &self,
        transfer_id: &str,
    ) -> Option<(u32, Arc<yibao_proto::bureau::v1::Transfer>)> {
        let waiting = self.waiting.lock().ok()?;
        let watched = waiting.get(transfer_id)?;
        watched
            .latest
            .as_ref()
            .filter(|(version, _)| *version >= watched.floor)
            .cloned()
    }

    fn notify(&self, transfer_id: &str) {
        if let Ok(waiting) = self.waiting.lock()
            && let Some(watched) = waiting.get(transfer_id)
        {
            for notify in &watched.notifies {
                notify.notify_one();
            }
        }
    }
}

impl Watch {
    /// Resolves at the next change of the transfer.
    pub async fn changed(&self) {
        self.notify.notified().await;
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Ok(mut waiting) = self.watchers.waiting.lock()
            && let Some(watched) = waiting.get_mut(&self.transfer_id)
        {
            watched
                .notifies
                .retain(|notify| !Arc::ptr_eq(notify, &self.notify));
            if watched.notifies.is_empty() {
                waiting.remove(&self.transfer_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yibao_proto::bureau::v1::Transfer;

    fn snapshot(updated: i64) -> Arc<Transfer> {
        Arc::new(Transfer {
            transfer_id: "x".to_owned(),
            updated_at: Some(prost_types::Timestamp {
                seconds: updated,
                nanos: 0,
            }),
            ..Default::default()
        })
    }

    #[test]
    fn only_watched_transfers_keep_snapshots_and_only_the_newest() {
        let watchers = Arc::new(Watchers::default());
        assert_eq!(watchers.saving("x", 1), None, "nobody watches");
        watchers.offer("x", 0, 1, snapshot(1));
        assert!(
            watchers.latest("x").is_none(),
            "nobody watches: nothing kept"
        );

        let watch = watchers.watch("x");
        assert!(watchers.is_watched("x"));
        let generation = watchers.saving("x", 3).expect("watched");
        watchers.offer("x", generation, 3, snapshot(3));
        watchers.offer("x", generation, 2, snapshot(2));
        assert_eq!(
            watchers.latest("x").map(|(v, _)| v),
            Some(3),
            "an older offer loses"
        );

        drop(watch);
        assert!(!watchers.is_watched("x"));
        assert!(
            watchers.latest("x").is_none(),
            "the last watcher takes the snapshot along"
        );
    }

    #[test]
    fn a_just_applied_transfer_is_watched_for_a_while() {
        let watchers = Arc::new(Watchers::default());
        let generation = watchers.expect("a");
        assert!(watchers.is_watched("a"), "later saves will offer snapshots");
        // A later save overtook the application's own offer: the older one is not served.
        watchers.saving("a", 2);
        watchers.offer("a", generation, 1, snapshot(1));
        assert!(watchers.latest("a").is_none());
        for n in 0..RECENT {
            watchers.expect(&format!("other{n}"));
        }
        assert!(
            !watchers.is_watched("a"),
            "forgotten after {RECENT} newer ones"
        );
        let _watch = watchers.watch("other0");
        for n in 0..RECENT {
            watchers.expect(&format!("more{n}"));
        }
        assert!(watchers.is_watched("other0"), "kept while someone watches");
    }

    #[test]
    fn a_snapshot_collected_for_an_earlier_watcher_is_never_served_to_a_later_one() {
        let watchers = Arc::new(Watchers::default());
        let first = watchers.watch("x");
        let generation = watchers.saving("x", 5).expect("watched");
        // The first watcher leaves before the snapshot of version 5 is offered; version 6 is
        // saved while nobody watches; a second watcher arrives.
        drop(first);
        assert_eq!(watchers.saving("x", 6), None);
        let _second = watchers.watch("x");
        watchers.offer("x", generation, 5, snapshot(5));
        assert!(
            watchers.latest("x").is_none(),
            "version 5 belongs to the first watcher's entry: the second reads the store"
        );
    }

    #[test]
    fn a_save_under_way_hides_older_snapshots() {
        let watchers = Arc::new(Watchers::default());
        let _watch = watchers.watch("x");
        let generation = watchers.saving("x", 4).expect("watched");
        watchers.offer("x", generation, 4, snapshot(4));
        // A save of version 5 began (its commit may not come, or its offer may come late):
        // handing out version 4 now could hide it, so the watcher must read the store.
        watchers.saving("x", 5);
        assert!(watchers.latest("x").is_none());
        watchers.offer("x", generation, 5, snapshot(5));
        assert_eq!(watchers.latest("x").map(|(v, _)| v), Some(5));
    }
}
