//! The journal's vocabulary: account names, posting reasons, and one movement of money for a
//! transfer. Postings are made through `record::Step::post`, and only where a driver performs
//! a state machine's action (checked by `tests/tidy.rs`).

/// Journal account names.
pub mod account {
    use yibao_domain::region::RegionCode;

    /// Balances that left a personal account and have not arrived.
    pub const TRANSIT: &str = "transit";
    /// Paid to people's bank accounts.
    pub const BANK: &str = "bank";
    /// The source of seeded balances.
    pub const OPENING: &str = "opening";

    /// Remitted money that did not match its form (the fund leg): held apart, credited to no
    /// one, until an operator returns it to the region that sent it.
    pub fn suspense(pooling_region: RegionCode) -> String {
        format!("suspense:{pooling_region}")
    }

    /// The personal account of `certno`.
    pub fn person(certno: &str) -> String {
        format!("person:{certno}")
    }

    /// Settled to a transfer-in pooling region (give the pooling region, as the directory
    /// groups codes: every code of one pooling region settles to one account).
    pub fn settled(pooling_region: RegionCode) -> String {
        format!("settled:{pooling_region}")
    }

    /// Arrived from a transfer-out pooling region over the platform (give the pooling region,
    /// as for [`settled`]).
    pub fn platform(pooling_region: RegionCode) -> String {
        format!("platform:{pooling_region}")
    }
}

/// Posting reasons, summed by the ledger totals.
pub mod reason {
    /// Seeded opening balance.
    pub const OPENING: &str = "opening_balance";
    /// Personal account → in transit.
    pub const DEBIT_TO_TRANSIT: &str = "debit_to_transit";
    /// In transit → settled to the transfer-in region.
    pub const SETTLE: &str = "settle_to_transfer_in";
    /// In transit → back to the personal account.
    pub const REVERSE: &str = "reverse_to_account";
    /// In transit → the person's bank account.
    pub const PAY_TO_BANK: &str = "pay_to_bank";
    /// Arrived from the transfer-out region → personal account (with the form, or on a
    /// matching remittance).
    pub const CREDIT: &str = "credit_from_platform";
    /// Arrived from the transfer-out region on a remittance that did not match its form →
    /// suspense.
    pub const HOLD: &str = "hold_in_suspense";
    /// Held in suspense → back to the transfer-out region's fund (a refused remittance
    /// returned, 退回).
    pub const RETURN_HELD: &str = "return_from_suspense";
}

/// One movement of money for a transfer.
#[derive(Debug)]
pub struct Movement<'a> {
    /// The account debited.
    pub from: String,
    /// The account credited.
    pub to: String,
    /// How much, in cents (nothing is posted for zero).
    pub amount_cents: u64,
    /// The transfer it belongs to.
    pub transfer_id: &'a str,
    /// Why (a [`reason`] constant).
    pub reason: &'static str,
}
