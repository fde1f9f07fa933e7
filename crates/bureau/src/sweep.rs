//! The deadline sweep: fires the timer of every non-terminal state whose time came, on the
//! service clock. Started by the dispatcher once a second and whenever the test clock moves.
//! What a timer *does* in each state is the state machine's rule; the sweep only finds the
//! transfers whose deadline passed and hands each to its driver, in a step of its own.
//!
//! | side | state | fires once | event |
//! | --- | --- | --- | --- |
//! | out | `IN_TRANSIT` | the whole-process deadline passed | `DeadlinePassed` → `ABORTING` |
//! | out | `ABORTING` | 5 more working days passed | `AbortOverdue` → `NEEDS_OPERATOR` |
//! | in | `APPLIED`, `REQUESTED` | the transfer-out deadline (the form's) passed | `FormOverdue` → `QUERYING` |
//! | in | `QUERYING`, `CREDITED` | the whole-process deadline passed | `DeadlinePassed` → `REJECTED` / `COMPLETED` |
//!
//! `PAYOUT_PENDING`'s timer is its payout request's own retry schedule in the outbox (the
//! gateway is idempotent by transfer id); `NEEDS_OPERATOR` waits for a person by design.

use chrono::NaiveDate;
use yibao_domain::calendar::StatutoryDeadlines;
use yibao_store::TransferRow;

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

/// Sweeps once: each state's due transfers, each in a step of its own, so that one that fails
/// holds up no other.
pub async fn sweep_deadlines(services: &Services) {
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
    let fire = timer.fire;
    let jobs: Vec<_> = due
        .into_iter()
        .map(|row| {
            move |step: &mut Step<'_>| -> Result<bool, Error> { fire(step, &row.transfer_id) }
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
        tracing::info!(fired, state, "timers moved overdue transfers");
    }
}

fn abort_answer_overdue(
    calendar: &yibao_domain::calendar::WorkingCalendar,
    row: &TransferRow,
    today: NaiveDate,
) -> bool {
    row.whole_process_due_on
        .is_some_and(|due| StatutoryDeadlines::abort_answer_overdue(calendar, due, today))
}
