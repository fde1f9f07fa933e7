//! The deadline sweep: opens an abort for every in-transit transfer-out transfer whose
//! whole-process deadline passed. Started by the dispatcher once a second and whenever the test
//! clock moves; the rule itself (what an overdue transfer does) is the state machine's.

use crate::error::Error;
use crate::record::Step;
use crate::services::Services;
use crate::transfer_out;

/// The most overdue transfers one sweep handles; the next sweep takes the rest.
const SWEEP_CHUNK: u32 = 100;

/// Sweeps once: each overdue transfer in a step of its own, so that one that fails holds up
/// no other.
pub async fn sweep_deadlines(services: &Services) {
    let today = services.clock.today();
    let overdue = services
        .store
        .read(move |tx| tx.open_transfers_in_state_due_before("IN_TRANSIT", today, SWEEP_CHUNK))
        .await;
    let overdue = match overdue {
        Ok(rows) if rows.is_empty() => return,
        Ok(rows) => rows,
        Err(error) => {
            tracing::warn!(%error, "deadline sweep could not read overdue transfers");
            return;
        }
    };
    let jobs: Vec<_> = overdue
        .into_iter()
        .map(|row| {
            move |step: &mut Step<'_>| -> Result<bool, Error> {
                transfer_out::deadline_passed(step, &row.transfer_id)
            }
        })
        .collect();
    let mut aborted = 0;
    for result in services.write_each(jobs).await {
        match result {
            Ok(true) => aborted += 1,
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "deadline sweep could not abort a transfer"),
        }
    }
    if aborted > 0 {
        tracing::info!(aborted, "overdue transfers aborted");
    }
}
