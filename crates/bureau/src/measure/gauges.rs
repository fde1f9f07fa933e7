//! The gauges read from the store at each scrape, right before the exporter renders (nothing
//! polls on a timer of its own, and the figures are as fresh as the scrape):
//!
//! | metric | labels | what |
//! | --- | --- | --- |
//! | `yibao_transfers` | `state`, `flow` | transfers in each state; `flow` is `all` (the flow kind lives in each transfer's document, not in a column the store can group by) |
//! | `yibao_overdue_transfers` | — | open transfers that missed a statutory deadline, counted as `GetLedgerTotals` counts them |
//! | `yibao_outbox_depth` | — | messages in the outbox, parked ones included |
//! | `yibao_outbox_oldest_age_seconds` | — | age of the oldest message in the outbox (service clock), parked ones included; 0 when empty |
//! | `yibao_platform_messages_parked` | `kind` | messages parked in the outbox now (a gauge; counted up to [`PARKED_COUNTED`]) |
//! | `yibao_ledger_balance_cents` | `account_class` | the sum of the balances of each account class (`person`, `transit`, `bank`, `opening`, `settled`, `platform`, `suspense`), as `GetLedgerTotals` reads them |
//!
//! A state or account class that no longer has a row is set to 0, not left at its last value.

use std::collections::BTreeSet;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, NaiveDate, Utc};
use yibao_store::Tx;

use crate::context::Site;
use crate::error::Error;
use crate::messages::Kind;
use crate::outbox::queue;
use crate::services::Services;

/// The most parked messages a scrape counts.
pub const PARKED_COUNTED: u32 = 1_000;

/// Transfers by state and flow.
pub const TRANSFERS: &str = "yibao_transfers";
/// Open transfers past a statutory deadline.
pub const OVERDUE_TRANSFERS: &str = "yibao_overdue_transfers";
/// Messages in the outbox.
pub const OUTBOX_DEPTH: &str = "yibao_outbox_depth";
/// The oldest outbox message's age.
pub const OUTBOX_OLDEST_AGE_SECONDS: &str = "yibao_outbox_oldest_age_seconds";
/// Parked messages by kind.
pub const PLATFORM_MESSAGES_PARKED: &str = "yibao_platform_messages_parked";
/// Ledger balances by account class.
pub const LEDGER_BALANCE_CENTS: &str = "yibao_ledger_balance_cents";

/// The help lines of the gauges.
pub fn describe() {
    use metrics::describe_gauge;
    describe_gauge!(TRANSFERS, "transfers by state (flow: all)");
    describe_gauge!(
        OVERDUE_TRANSFERS,
        "open transfers past a statutory deadline"
    );
    describe_gauge!(OUTBOX_DEPTH, "messages in the outbox, parked ones included");
    describe_gauge!(
        OUTBOX_OLDEST_AGE_SECONDS,
        metrics::Unit::Seconds,
        "age of the oldest message in the outbox (service clock)"
    );
    describe_gauge!(
        PLATFORM_MESSAGES_PARKED,
        "messages parked in the outbox now, by kind"
    );
    describe_gauge!(
        LEDGER_BALANCE_CENTS,
        "sum of the account balances of each account class, in cents"
    );
}

/// The store's figures at one scrape.
#[derive(Debug)]
struct Figures {
    states: Vec<(String, u64)>,
    classes: Vec<(String, i64)>,
    overdue: u64,
    depth: u64,
    oldest: Option<DateTime<Utc>>,
    parked: Vec<String>,
}

/// The labels set at the last scrape, so that one gone is set to 0.
#[derive(Debug, Default)]
struct Seen {
    states: BTreeSet<String>,
    classes: BTreeSet<String>,
}

/// The store's gauges of one bureau.
#[derive(Debug, Default)]
pub struct StoreGauges {
    seen: Mutex<Seen>,
}

impl StoreGauges {
    /// Reads the store and sets every gauge; a read that fails is logged and leaves the gauges
    /// as they were (the scrape still answers).
    pub async fn refresh(&self, services: &Services) {
        let now = services.clock.now();
        let today = services.clock.today();
        let site = services.site.clone();
        let read = services
            .store
            .read(move |tx| figures(tx, &site, now, today))
            .await;
        match read {
            Ok(figures) => self.set(&figures, now),
            Err(error) => tracing::warn!(%error, "metrics: could not read the store's gauges"),
        }
    }

    fn set(&self, figures: &Figures, now: DateTime<Utc>) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let states = zeroed(&mut seen.states, &figures.states);
        for (state, count) in states {
            metrics::gauge!(TRANSFERS, "state" => state, "flow" => "all").set(count as f64);
        }
        let classes = zeroed(&mut seen.classes, &figures.classes);
        for (class, cents) in classes {
            metrics::gauge!(LEDGER_BALANCE_CENTS, "account_class" => class).set(cents as f64);
        }
        metrics::gauge!(OVERDUE_TRANSFERS).set(figures.overdue as f64);
        metrics::gauge!(OUTBOX_DEPTH).set(figures.depth as f64);
        let age = figures.oldest.map_or(0.0, |created_at| {
            (now - created_at).num_milliseconds().max(0) as f64 / 1000.0
        });
        metrics::gauge!(OUTBOX_OLDEST_AGE_SECONDS).set(age);
        for kind in Kind::ALL {
            let parked = figures
                .parked
                .iter()
                .filter(|parked| *parked == kind.as_str())
                .count();
            metrics::gauge!(PLATFORM_MESSAGES_PARKED, "kind" => kind.as_str()).set(parked as f64);
        }
    }
}

/// `now` with every label of `before` it lacks at 0; `before` becomes its labels.
fn zeroed<V: Copy + Default>(
    before: &mut BTreeSet<String>,
    now: &[(String, V)],
) -> Vec<(String, V)> {
    let mut all: Vec<(String, V)> = now.to_vec();
    for gone in before.iter() {
        if !now.iter().any(|(label, _)| label == gone) {
            all.push((gone.clone(), V::default()));
        }
    }
    *before = now.iter().map(|(label, _)| label.clone()).collect();
    all
}

/// One read of everything the gauges show.
fn figures(
    tx: &mut dyn Tx,
    site: &Site,
    now: DateTime<Utc>,
    today: NaiveDate,
) -> Result<Figures, Error> {
    let states = tx.count_transfers_by_state()?;
    let overdue = crate::api::admin::count_overdue(tx, site, &states, today)?;
    let oldest = tx
        .messages_due_from(DateTime::<Utc>::UNIX_EPOCH, 1)?
        .first()
        .map(|message| message.created_at);
    let parked = tx
        .messages_due_from(queue::parked_from(now), PARKED_COUNTED)?
        .into_iter()
        .map(|message| message.kind)
        .collect();
    Ok(Figures {
        classes: tx.account_class_balances()?,
        overdue,
        depth: tx.pending_messages()?,
        oldest,
        parked,
        states,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_gone_since_the_last_scrape_is_set_to_zero_once() {
        let mut seen = BTreeSet::new();
        let first = zeroed(&mut seen, &[("A".to_owned(), 2_u64), ("B".to_owned(), 1)]);
        assert_eq!(first.len(), 2);
        let second = zeroed(&mut seen, &[("B".to_owned(), 3_u64)]);
        assert_eq!(second, [("B".to_owned(), 3), ("A".to_owned(), 0)]);
        let third = zeroed(&mut seen, &[("B".to_owned(), 3_u64)]);
        assert_eq!(third, [("B".to_owned(), 3)]);
    }
}
