//! Who the suite speaks as: the bureau of the other role, with its region, its institution code
//! and its own msgids and transfer ids, minted as `platform.proto` lays them out.

use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, NaiveDate, Utc};
use yibao_proto::platform::v1::Envelope;
use yibao_runtime::clock::china_time;

use crate::Role;

/// The institution instance number the suite's msgids carry (`B` + region + these 5 digits):
/// a number no yibao bureau uses, so its messages are told apart in a target's logs.
pub const INSTANCE: &str = "90417";

/// China Standard Time's date of an instant, in which every platform date is written.
pub use yibao_runtime::clock::china_date;

/// The suite's identity in the handshake.
#[derive(Debug)]
pub struct Identity {
    /// The role the suite plays: the other one than the target's.
    pub plays: Role,
    /// The region the suite acts for.
    pub own_region: String,
    /// The region the target hosts and is addressed as.
    pub target_region: String,
    /// The next msgid sequence number.
    sequence: AtomicU32,
    /// The next transfer id sequence number.
    transfers: AtomicU32,
}

impl Identity {
    /// The identity playing `plays` for `own_region`, toward `target_region`; transfer ids start
    /// at `first_transfer` (7 digits, wrapped).
    #[must_use]
    pub fn new(
        plays: Role,
        own_region: String,
        target_region: String,
        first_transfer: u32,
    ) -> Self {
        Identity {
            plays,
            own_region,
            target_region,
            sequence: AtomicU32::new(0),
            transfers: AtomicU32::new(first_transfer % 10_000_000),
        }
    }

    /// A fresh msgid: institution code, China send time, 4-digit sequence.
    pub fn msgid(&self, now: DateTime<Utc>) -> String {
        let n = self.sequence.fetch_add(1, Ordering::Relaxed) % 10_000;
        format!(
            "B{}{INSTANCE}{}{n:04}",
            self.own_region,
            china_time(now).format("%Y%m%d%H%M%S")
        )
    }

    /// A fresh transfer id minted by the suite's region (21 digits).
    pub fn transfer_id(&self, today: NaiveDate) -> String {
        let n = self.transfers.fetch_add(1, Ordering::Relaxed) % 10_000_000;
        format!("{}{}{n:07}", self.own_region, today.format("%Y%m%d"))
    }

    /// An envelope from the suite to the target.
    pub fn envelope(&self, infno: &str, transfer_id: &str, now: DateTime<Utc>) -> Envelope {
        Envelope {
            infno: infno.to_owned(),
            msgid: self.msgid(now),
            sender_region_code: self.own_region.clone(),
            receiver_region_code: self.target_region.clone(),
            sent_at: Some(timestamp(now)),
            transfer_id: transfer_id.to_owned(),
        }
    }
}

/// A protobuf timestamp of an instant.
#[must_use]
pub fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// Whether `msgid` has the layout of `platform.proto` and begins with an institution code of
/// one of `regions` (the sending bureau's): `None` when it does, otherwise what is wrong.
#[must_use]
pub fn msgid_problem(msgid: &str, regions: &[String]) -> Option<String> {
    if msgid.len() != 30 || !msgid.is_ascii() {
        return Some(format!("msgid {msgid:?} is not 30 ASCII characters"));
    }
    if !regions
        .iter()
        .any(|region| msgid.starts_with(&format!("B{region}")))
    {
        return Some(format!(
            "msgid {msgid:?} does not begin with an institution code of the sender (B, one of its regions {}, and 5 digits)",
            regions.join(", ")
        ));
    }
    if !msgid[7..].bytes().all(|b| b.is_ascii_digit()) {
        return Some(format!(
            "msgid {msgid:?}: instance, time and sequence must be digits"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msgids_follow_the_contract_layout_and_never_repeat() {
        let identity = Identity::new(Role::TransferOut, "150100".into(), "540100".into(), 5);
        let now = DateTime::parse_from_rfc3339("2026-03-10T01:30:05Z")
            .expect("time")
            .with_timezone(&Utc);
        let first = identity.msgid(now);
        let second = identity.msgid(now);
        assert_eq!(first, "B15010090417202603100930050000");
        assert_ne!(first, second);
        let hohhot = ["150100".to_owned()];
        assert_eq!(msgid_problem(&first, &hohhot), None);
        assert!(msgid_problem(&first, &["540100".to_owned()]).is_some());
        assert!(msgid_problem("B150100", &hohhot).is_some());
    }

    #[test]
    fn transfer_ids_are_the_suites_region_the_china_date_and_a_sequence() {
        let identity = Identity::new(
            Role::TransferIn,
            "540100".into(),
            "150100".into(),
            12_345_678,
        );
        let day = NaiveDate::from_ymd_opt(2026, 11, 30).expect("date");
        assert_eq!(identity.transfer_id(day), "540100202611302345678");
        assert_eq!(identity.transfer_id(day), "540100202611302345679");
    }
}
