//! The deadline sweep: opens an abort for every in-transit transfer-out transfer whose
//! whole-process deadline passed. Started by the dispatcher once a second and whenever the test
//! clock moves; the rule itself (what an overdue transfer does) is the state machine's.

use crate::error::Error;
use crate::services::Services;
use crate::transfer_out;

/// The most overdue transfers one sweep handles; the next sweep takes the rest.
const SWEEP_CHUNK: u32 = 100;

/// Sweeps once.
pub async fn sweep_deadlines(services: &Services) {
    let result = services
        .write(move |step| -> Result<usize, Error> {
            let today = step.ctx.today();
            let overdue =
                step.tx
                    .open_transfers_in_state_due_before("IN_TRANSIT", today, SWEEP_CHUNK)?;
            let mut aborted = 0;
            for row in overdue {
                if transfer_out::deadline_passed(step, &row.transfer_id)? {
                    aborted += 1;
                }
            }
            Ok(aborted)
        })
        .await;
    match result {
        Ok(0) => {}
        Ok(aborted) => tracing::info!(aborted, "overdue transfers aborted"),
        Err(error) => tracing::warn!(%error, "deadline sweep failed"),
    }
}
