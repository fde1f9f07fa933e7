//! The deadline sweep: fires the timer of every non-terminal state whose time came, on the
//! service clock. Started by the dispatcher once a second and whenever the test clock moves.
//! What a timer *does* in each state is the state machine's rule; the sweep only finds the
//! transfers whose deadline passed and hands each to its driver, in a step of its own.
//!
//! | side | state | fires once | event |
//! | --- | --- | --- | --- |
//! | out | `IN_TRANSIT` | the whole-process deadline passed | `DeadlinePassed` → `ABORTING` |
//! | out | `ABORTING` | 5 more working days passed (from the deadline, or from entering `ABORTING` if later) | `AbortOverdue` → `NEEDS_OPERATOR` |
//! | in | `APPLIED`, `REQUESTED` | the transfer-out deadline (the form's) passed | `FormOverdue` → `QUERYING` |
//! | in | `QUERYING`, `CREDITED` | the whole-process deadline passed | `DeadlinePassed` → `REJECTED` / `COMPLETED` |
//! | out | `AWAITING_CONNECTION` | a region's connection changed (and once after start) | `Resumed` → as reviewed again |
//! | out | `UNDER_REVIEW` | its review day came (the region's review time, by channel) | `Reviewed` → as reviewed that day |
//! | out | `REMITTANCE_DUE` | its remittance day came (the region's remittance delay) | `RemittanceDay` → `REMITTED` |
//! | in | `AWAITING_FUNDS` | its remittance deadline passed (the delay plus 5 working days) | `RemittanceOverdue` → `FUNDS_HELD` |
//!
//! `PAYOUT_PENDING`'s timer is its payout request's own retry schedule in the outbox (the
//! gateway is idempotent by transfer id), and so is `REMITTED`'s (its remittance's);
//! `NEEDS_OPERATOR` and `FUNDS_HELD` wait for a person by design, and so does
//! `REMITTANCE_REFUSED` (transfer-out: the transfer-in bureau's operator returns the money,
//! and its ReturnRemittance remits again; or transfer-out's operator records a return).

use chrono::NaiveDate;
use yibao_domain::calendar::StatutoryDeadlines;
use yibao_domain::transfer::TransferState;
use yibao_domain::transfer::out_side::OutState;
use yibao_store::TransferRow;

use crate::document::TransferDocument;
use crate::error::Error;
use crate::record::Step;
use crate::services::Services;
use crate::{transfer_in, transfer_out};

/// The most overdue transfers one sweep handles per state; the next sweep takes the rest.
const SWEEP_CHUNK: u32 = 100;

/// What a timer does: the driver's step for one transfer; `Ok(true)` when it changed it.
type Fire = fn(&mut Step<'_>, &str) -> Result<bool, Error>;

/// One state's timer.
struct Timer {
    /// The stored state name it watches.
    state: &'static str,
    /// The step it runs for each transfer found.
    fire: Fire,
}

/// How long the timers' lease lasts: a replica that stopped sweeping (it died) is replaced by
/// another within this, and a live one renews it every sweep (once a second).
const SWEEP_LEASE: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether this process runs the timers now: always on a store of its own (SQLite); on a store
/// shared by replicas only while it holds the `sweep` lease, so each timer fires in one replica.
async fn holds_the_timers(services: &Services) -> bool {
    if !services.store.shared_by_replicas() {
        return true;
    }
    let now = services.clock.now();
    let until = now + chrono::Duration::from_std(SWEEP_LEASE).unwrap_or_default();
    let me = crate::replica::id();
    let held = services
        .store
        .write(move |tx| tx.take_lease("sweep", me, now, until))
        .await;
    held.unwrap_or_else(|error: yibao_store::Error| {
        tracing::warn!(%error, "the timers' lease could not be read; not sweeping this time");
        false
    })
}

/// Sweeps once: each state's due transfers, each in a step of its own, so that one that fails
/// holds up no other. On a store shared by replicas, only the replica holding the timers' lease
/// sweeps (a transfer whose change of connectivity was announced here is resumed here).
pub async fn sweep_deadlines(services: &Services) {
    if !holds_the_timers(services).await {
        if services.site.connectivity_overrides.take_change() {
            resume_waiting(services).await;
        }
        return;
    }
    let today = services.clock.today();
    let calendar = &services.site.calendar;
    let form_cutoff = StatutoryDeadlines::form_overdue_cutoff(calendar, today).unwrap_or(today);
    let timers = [
        (
            today,
            Timer {
                state: "IN_TRANSIT",
                fire: transfer_out::deadline_passed,
            },
        ),
        (
            today,
            Timer {
                state: "ABORTING",
                fire: transfer_out::abort_overdue,
            },
        ),
        (
            form_cutoff,
            Timer {
                state: "APPLIED",
                fire: transfer_in::form_overdue,
            },
        ),
        (
            form_cutoff,
            Timer {
                state: "REQUESTED",
                fire: transfer_in::form_overdue,
            },
        ),
        (
            today,
            Timer {
                state: "QUERYING",
                fire: transfer_in::deadline_passed,
            },
        ),
        (
            today,
            Timer {
                state: "CREDITED",
                fire: transfer_in::deadline_passed,
            },
        ),
    ];
    for (cutoff, timer) in timers {
        sweep_state(services, timer, cutoff, today).await;
    }
    if services.site.connectivity_overrides.take_change() {
        resume_waiting(services).await;
    }
    days_due(services, today).await;
}

/// The most transfers of one state looked at per sweep by a timer whose day is in the document
/// (earliest id, so earliest opened, first); the due ones among them fire, each in a step of its
/// own.
const DAY_CHUNK: u32 = 1_000;

/// A timer whose day each transfer's document holds: a review day, a remittance day, a
/// remittance deadline.
struct DayTimer {
    /// The stored state name it watches.
    state: &'static str,
    /// Whether a transfer's day came, from its document and today.
    due: fn(&TransferDocument, NaiveDate) -> bool,
    /// The step it runs for each due transfer.
    fire: Fire,
}

/// `UNDER_REVIEW`'s timer: each transfer whose review day came is reviewed with the facts of
/// today and proceeds or is refused. The fund leg's: `REMITTANCE_DUE` remits on its remittance
/// day; `AWAITING_FUNDS` is flagged once its remittance deadline passed.
async fn days_due(services: &Services, today: NaiveDate) {
    let timers = [
        DayTimer {
            state: "UNDER_REVIEW",
            due: |document, today| match document.state {
                TransferState::Out(OutState::UnderReview { due_on }) => due_on <= today,
                _ => false,
            },
            fire: transfer_out::review_day_came,
        },
        DayTimer {
            state: "REMITTANCE_DUE",
            due: |document, today| document.remit_on.is_none_or(|day| day <= today),
            fire: transfer_out::remittance_day_came,
        },
        DayTimer {
            state: "AWAITING_FUNDS",
            due: |document, today| document.remittance_due_on.is_some_and(|day| day < today),
            fire: transfer_in::remittance_overdue,
        },
    ];
    for timer in timers {
        fire_due(services, timer, today).await;
    }
}

/// Fires one day timer for its transfers whose day came.
async fn fire_due(services: &Services, timer: DayTimer, today: NaiveDate) {
    let state = timer.state;
    let waiting = services
        .store
        .read(move |tx| tx.open_transfers_in_state(state, DAY_CHUNK))
        .await;
    let rows = match waiting {
        Ok(rows) => rows,
        Err(error) => {
            tracing::warn!(%error, state, "the sweep could not read the waiting transfers");
            return;
        }
    };
    let due: Vec<_> = rows
        .into_iter()
        .filter(|row| day_came(row, timer.due, today))
        .collect();
    fire_each(services, due, timer.fire, state).await;
}

/// Whether a stored transfer's day came; a row that does not decode is left to its step, which
/// reports it.
fn day_came(
    row: &TransferRow,
    due: fn(&TransferDocument, NaiveDate) -> bool,
    today: NaiveDate,
) -> bool {
    match crate::record::decode_document(&row.document) {
        Ok(document) => due(&document, today),
        Err(_) => true,
    }
}

/// The most waiting applications reviewed again after one connectivity change.
const RESUME_CHUNK: u32 = 1_000;

/// `AWAITING_CONNECTION`'s timer: after a region's connection changed (and once after start),
/// each waiting application whose destination is now connected is reviewed again and proceeds.
async fn resume_waiting(services: &Services) {
    let waiting = services
        .store
        .read(|tx| tx.open_transfers_in_state("AWAITING_CONNECTION", RESUME_CHUNK))
        .await;
    let rows = match waiting {
        Ok(rows) => rows,
        Err(error) => {
            tracing::warn!(%error, "the sweep could not read the waiting applications");
            return;
        }
    };
    fire_each(
        services,
        rows,
        transfer_out::resume_if_connected,
        "AWAITING_CONNECTION",
    )
    .await;
}

/// Fires one state's timer for its transfers whose whole-process deadline is before `cutoff`.
async fn sweep_state(services: &Services, timer: Timer, cutoff: NaiveDate, today: NaiveDate) {
    let state = timer.state;
    let due = services
        .store
        .read(move |tx| tx.open_transfers_in_state_due_before(state, cutoff, SWEEP_CHUNK))
        .await;
    let mut due = match due {
        Ok(rows) if rows.is_empty() => return,
        Ok(rows) => rows,
        Err(error) => {
            tracing::warn!(%error, state, "deadline sweep could not read due transfers");
            return;
        }
    };
    if state == "ABORTING" {
        // The abort's answer has its own bound after the whole-process deadline; the rows come
        // earliest deadline first, so the overdue ones are a prefix and cannot be crowded out.
        let calendar = &services.site.calendar;
        due.retain(|row| abort_answer_overdue(calendar, row, today));
    }
    fire_each(services, due, timer.fire, state).await;
}

/// Runs `fire` for each transfer, each in a step of its own (one that fails holds up no other),
/// and logs how many it moved.
async fn fire_each(services: &Services, rows: Vec<TransferRow>, fire: Fire, state: &'static str) {
    if rows.is_empty() {
        return;
    }
    let jobs: Vec<_> = rows
        .into_iter()
        .map(|row| {
            // Each timer's step joins its transfer's trace, and its log lines name the transfer.
            let span = crate::trace::timer(state, &row.transfer_id, stored_trace(&row));
            crate::record::within(span, move |step: &mut Step<'_>| -> Result<bool, Error> {
                fire(step, &row.transfer_id)
            })
        })
        .collect();
    let mut fired = 0;
    for result in services.write_each(jobs).await {
        match result {
            Ok(true) => fired += 1,
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, state, "a timer could not move a transfer"),
        }
    }
    if fired > 0 {
        tracing::info!(fired, state, "timers moved transfers");
    }
}

/// The trace context a stored transfer keeps, when traces are exported; none when it keeps
/// none or does not decode (its step reports that).
fn stored_trace(row: &TransferRow) -> opentelemetry::Context {
    if !crate::trace::enabled() {
        return opentelemetry::Context::new();
    }
    match crate::record::decode_document(&row.document) {
        Ok(document) => crate::trace::stored(&document),
        Err(_) => opentelemetry::Context::new(),
    }
}

fn abort_answer_overdue(
    calendar: &yibao_domain::calendar::WorkingCalendar,
    row: &TransferRow,
    today: NaiveDate,
) -> bool {
    // The abort's answer is given its bound from when the abort could first be sent: the
    // whole-process deadline, or the day before the transfer entered ABORTING when that was
    // later (a bureau that was down, or a clock moved far at once, still tries the abort before
    // it calls for an operator). The row changes only with the transfer's state.
    // An abort opened on time opens the day after the deadline: both count from the deadline.
    let entered = yibao_runtime::clock::china_date(row.updated_at);
    let opened_late_from = entered.pred_opt().unwrap_or(entered);
    row.whole_process_due_on.is_some_and(|due| {
        StatutoryDeadlines::abort_answer_overdue(calendar, due.max(opened_late_from), today)
    })
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use yibao_domain::calendar::WorkingCalendar;

    use super::*;

    fn aborting(due: NaiveDate, entered: chrono::DateTime<Utc>) -> TransferRow {
        TransferRow {
            transfer_id: "150100202611300000001".into(),
            certno: String::new(),
            state: "ABORTING".into(),
            open: true,
            whole_process_due_on: Some(due),
            created_at: entered,
            updated_at: entered,
            document: String::new(),
        }
    }

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("a day")
    }

    #[test]
    fn an_aborts_answer_gets_its_bound_from_the_deadline() {
        let calendar = WorkingCalendar::shipped().expect("calendar");
        // Due Mon 2026-11-02, aborting the next day: 5 working days run to Mon 11-09.
        let row = aborting(
            day(2026, 11, 2),
            Utc.with_ymd_and_hms(2026, 11, 3, 2, 0, 0).unwrap(),
        );
        assert!(!abort_answer_overdue(&calendar, &row, day(2026, 11, 9)));
        assert!(abort_answer_overdue(&calendar, &row, day(2026, 11, 10)));
    }

    #[test]
    fn an_abort_opened_long_after_the_deadline_is_tried_before_an_operator_is_called() {
        let calendar = WorkingCalendar::shipped().expect("calendar");
        // The bureau was down (or its clock moved) for weeks: it entered ABORTING on Tue 12-01,
        // four weeks past the deadline, and its abort still has five working days (counted
        // from Mon 11-30, as an abort opened on time counts from its deadline).
        let row = aborting(
            day(2026, 11, 2),
            Utc.with_ymd_and_hms(2026, 12, 1, 2, 0, 0).unwrap(),
        );
        assert!(!abort_answer_overdue(&calendar, &row, day(2026, 12, 1)));
        assert!(!abort_answer_overdue(&calendar, &row, day(2026, 12, 7)));
        assert!(abort_answer_overdue(&calendar, &row, day(2026, 12, 8)));
    }
}
