//! The bureau's readiness follows its store: both listeners report NOT_SERVING while the store
//! cannot commit (a full or failing disk, or the admin API's storage fault), and a probe — one
//! cheap write transaction every [`PROBE_INTERVAL`] while failing — finds out when it can
//! again, so that health comes back even when nobody writes.
//!
//! Nothing else waits on it: every write keeps going to the store and is answered UNAVAILABLE
//! while commits fail (the next batch is the next attempt), and the outbox dispatcher holds its
//! messages until the store commits (`outbox::dispatcher`).

use std::time::Duration;

use tokio::sync::watch;
use yibao_runtime::server::Readiness;
use yibao_store::{Health, Store};

/// How often a failing store is probed.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(200);

/// The readiness a store's health means.
pub fn readiness(health: Health) -> Readiness {
    match health {
        Health::Committing => Readiness::Serving,
        Health::Failing => Readiness::NotServing,
    }
}

/// Publishes the store's health as `readiness`, probing while it fails, until `stopped` says
/// stop or the store's writer is gone.
pub async fn follow(
    store: Store,
    readiness: watch::Sender<Readiness>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut health = store.health();
    loop {
        let now = *health.borrow_and_update();
        readiness.send_replace(self::readiness(now));
        tokio::select! {
            changed = health.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = probe_while(&store, now) => {}
            _ = stopped.wait_for(|stop| *stop) => return,
        }
    }
}

/// One probe after [`PROBE_INTERVAL`] when the store fails; never resolves while it commits.
async fn probe_while(store: &Store, health: Health) {
    if health == Health::Committing {
        return std::future::pending().await;
    }
    tokio::time::sleep(PROBE_INTERVAL).await;
    if let Err(error) = store.probe().await {
        tracing::debug!(%error, "the store still cannot commit");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yibao_store::CommitFault;

    #[tokio::test]
    async fn readiness_follows_the_store_and_a_probe_brings_it_back_without_traffic() {
        let store = Store::open_in_memory().expect("store");
        let (readiness, mut ready) = watch::channel(Readiness::Serving);
        let (stop, stopped) = watch::channel(false);
        let following = tokio::spawn(follow(store.clone(), readiness, stopped));

        store.set_commit_fault(CommitFault::DiskFull);
        let refused = store.probe().await.expect_err("the commit fails");
        assert!(
            matches!(refused, yibao_store::Error::Unavailable(_)),
            "{refused:?}"
        );
        let deadline = Duration::from_secs(5);
        tokio::time::timeout(deadline, ready.wait_for(|r| *r == Readiness::NotServing))
            .await
            .expect("NOT_SERVING in time")
            .expect("published");

        // Nobody writes: the probe alone finds the store committing again.
        store.set_commit_fault(CommitFault::Off);
        tokio::time::timeout(deadline, ready.wait_for(|r| *r == Readiness::Serving))
            .await
            .expect("SERVING in time")
            .expect("published");

        stop.send_replace(true);
        tokio::time::timeout(deadline, following)
            .await
            .expect("stops when told")
            .expect("joined");
    }
}
