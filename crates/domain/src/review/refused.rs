//! The refusal a review answers with, and the first rule every review applies (DOMAIN.md, "The
//! transfer": a move between two counties of the same pooling region is not a transfer). A leaf
//! module, so that both `classify()` and the reviews in its parent can use it.

use crate::region::{Pooling, RegionCode};
use crate::transfer::RefusalReason;

/// A refusal, with the transfer that blocks the person when the reason is
/// [`RefusalReason::OpenTransferExists`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    /// Why.
    pub reason: RefusalReason,
    /// The id of the person's open transfer, for [`RefusalReason::OpenTransferExists`].
    pub open_transfer: Option<String>,
}

impl From<RefusalReason> for Refused {
    fn from(reason: RefusalReason) -> Self {
        Self {
            reason,
            open_transfer: None,
        }
    }
}

impl Refused {
    /// The refusal of a person who already has the open transfer `transfer_id`.
    pub fn open_transfer_exists(transfer_id: &str) -> Self {
        Self {
            reason: RefusalReason::OpenTransferExists,
            open_transfer: Some(transfer_id.to_owned()),
        }
    }
}

/// The pooling-region rule: a move within one pooling region (between counties of one city, or
/// of a province that pools at province level, as `pooling` says) is not a transfer. The one
/// place this refusal is written; `classify()` and both reviews use it.
pub fn regions_differ(
    pooling: &Pooling,
    out_region: RegionCode,
    in_region: RegionCode,
) -> Result<(), Refused> {
    if pooling.same_pooling_region(out_region, in_region) {
        Err(RefusalReason::SamePoolingRegion.into())
    } else {
        Ok(())
    }
}
