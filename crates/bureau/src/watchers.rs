//! Who waits for which transfer to change (`WatchTransfer`), and the latest committed snapshot
//! of each watched transfer, offered by the step that made it so a watcher need not read it back.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use yibao_store::EventRow;

use crate::document::TransferDocument;

/// A transfer as one committed step left it: its document and its whole history.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The stored document.
    pub document: TransferDocument,
    /// The history, in order.
    pub events: Vec<EventRow>,
}

/// Per-transfer change notification: only the watchers of a transfer wake when it changes, so
/// thousands of concurrent watches cost nothing for the transfers nobody watches.
///
/// A watched transfer also keeps its latest committed snapshot, offered by the step that
/// changed it (see `services::Services::write`), so a watcher wakes to the new state without reading it
/// back. Versions are the sequence number of the history event each save appends; a save
/// raises the entry's floor before its commit, so a snapshot older than any save (committed or
/// not) is never handed out — the watcher reads the store instead.
#[derive(Debug, Default)]
pub struct Watchers {
    waiting: Mutex<HashMap<String, Watched>>,
    /// Numbers the entries: a snapshot collected for one entry is never offered to a later
    /// entry of the same transfer (whose floor knows nothing of the saves in between).
    generations: AtomicU64,
    /// Transfers just applied here, kept (at most [`RECENT`]) with their snapshot for the
    /// watch that usually follows an application at once, oldest first.
    recent: Mutex<VecDeque<String>>,
}

/// How many just-applied transfers keep their snapshot without a watcher.
const RECENT: usize = 4096;

/// What is kept for one watched transfer.
#[derive(Debug, Default)]
struct Watched {
    generation: u64,
    notifies: Vec<Arc<Notify>>,
    latest: Option<(u32, Arc<Snapshot>)>,
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
                generation: self.generations.fetch_add(1, Ordering::Relaxed) + 1,
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
    pub fn offer(&self, transfer_id: &str, generation: u64, version: u32, transfer: Arc<Snapshot>) {
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
    pub fn latest(&self, transfer_id: &str) -> Option<(u32, Arc<Snapshot>)> {
        let waiting = self.waiting.lock().ok()?;
        let watched = waiting.get(transfer_id)?;
        watched
            .latest
            .as_ref()
            .filter(|(version, _)| *version >= watched.floor)
            .cloned()
    }

    /// Wakes every watcher of a transfer (after a commit that changed it).
    pub fn notify(&self, transfer_id: &str) {
        if let Ok(waiting) = self.waiting.lock()
            && let Some(watched) = waiting.get(transfer_id)
        {
            for notify in &watched.notifies {
                notify.notify_one();
            }
        }
    }
}

impl Watchers {
    /// Wakes every watcher of every watched transfer, each of which then reads its transfer and
    /// goes on waiting if it did not change.
    pub fn notify_all(&self) {
        if let Ok(waiting) = self.waiting.lock() {
            for watched in waiting.values() {
                for notify in &watched.notifies {
                    notify.notify_one();
                }
            }
        }
    }
}

/// How often the watchers of a bureau whose store other replicas share look again: a change
/// another replica committed reaches them within this (its own changes, at once).
pub const SHARED_POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// On a store shared by replicas, wakes every watcher each [`SHARED_POLL`] until `shutdown`, so a
/// watch ends even when another replica moved its transfer: bounded, one read per open watch
/// stream per interval (and the streams are bounded, `[limits]`).
pub async fn poll_shared(
    watchers: Arc<Watchers>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(SHARED_POLL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !*shutdown.borrow() {
        tokio::select! {
            _ = ticks.tick() => watchers.notify_all(),
            _ = shutdown.changed() => {}
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
    use crate::document::TransferDocument;
    use yibao_domain::transfer::in_side::InState;
    use yibao_domain::transfer::{Initiator, TransferState};

    fn snapshot(updated: i64) -> Arc<Snapshot> {
        let at = chrono::DateTime::from_timestamp(updated, 0).unwrap_or_default();
        Arc::new(Snapshot {
            document: TransferDocument::opening(
                "x".to_owned(),
                Initiator::TransferOut,
                TransferState::In(InState::Aborted),
                at.date_naive(),
                at,
            ),
            events: Vec::new(),
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
