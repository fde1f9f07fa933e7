//! The bank gateway payouts go through, behind a trait: the simulated gateway here, and the
//! seam where fault rules (delay, fail) will sit. The gateway is idempotent by transfer id: a
//! payout it already made is recorded in the store, in the step that applies its answer.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::Error;
use crate::record::Step;

/// Why a payout did not go through this time (always worth retrying).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BankUnavailable(pub String);

/// A gateway that pays a balance to a person's bank account.
pub trait BankGateway: Send + Sync + std::fmt::Debug {
    /// Pays `amount_cents` for `transfer_id`. Paying the same transfer again is harmless.
    fn pay(&self, transfer_id: &str, amount_cents: u64) -> Result<(), BankUnavailable>;
}

/// The simulated gateway: pays at once, or fails every n-th call when configured to.
#[derive(Debug, Default)]
pub struct SimulatedBank {
    failure_every: u32,
    calls: AtomicU64,
}

impl SimulatedBank {
    /// A gateway failing every `failure_every`-th call (0 = never).
    pub fn new(failure_every: u32) -> Self {
        Self {
            failure_every,
            calls: AtomicU64::new(0),
        }
    }
}

impl BankGateway for SimulatedBank {
    fn pay(&self, _transfer_id: &str, _amount_cents: u64) -> Result<(), BankUnavailable> {
        let calls = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        let every = u64::from(self.failure_every);
        if every > 0 && calls.is_multiple_of(every) {
            return Err(BankUnavailable(
                "Unavailable: simulated bank gateway failure".to_owned(),
            ));
        }
        Ok(())
    }
}

/// Records, in the step that applies the gateway's answer, that a transfer was paid out; a
/// second record of the same payout changes nothing.
pub fn record_payment(step: &mut Step<'_>, transfer_id: &str) -> Result<(), Error> {
    let key = format!("bank-paid:{transfer_id}");
    if step.tx.setting(&key)?.is_none() {
        step.tx.put_setting(&key, &step.ctx.now.to_rfc3339())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simulated_gateway_fails_exactly_every_nth_call() {
        let bank = SimulatedBank::new(3);
        let results: Vec<bool> = (0..6).map(|_| bank.pay("t", 1).is_ok()).collect();
        assert_eq!(results, vec![true, true, false, true, true, false]);
        let never = SimulatedBank::new(0);
        assert!((0..10).all(|_| never.pay("t", 1).is_ok()));
    }
}
