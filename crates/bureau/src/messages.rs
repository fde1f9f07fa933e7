//! Platform messages: their kinds and transaction codes, msgid minting, the envelope, and the
//! one helper that queues a message in the outbox inside the caller's transaction.
//!
//! The transaction codes (`infno`) are invented: the national platform publishes none for
//! bureau-to-bureau transfers (see `proto/yibao/platform/v1/platform.proto`).

use chrono::{DateTime, Utc};
use prost::Message;
use sha2::{Digest, Sha256};
use yibao_proto::platform::v1::{Envelope, Reply};
use yibao_store::{NewOutboxMessage, Tx};

use crate::error::Error;
use crate::state::Bureau;

/// The kinds of message a bureau queues in its outbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// IN → OUT: ask for the transfer (infno 9101).
    RequestTransferOut,
    /// OUT → IN: the insurance information form with the balance (9102).
    DeliverForm,
    /// OUT → IN: the balance is settled (9103).
    ConfirmSettlement,
    /// OUT → IN: abort, and say whether you credited (9104).
    Abort,
    /// OUT → its bank gateway: pay the balance in transit to the person's account.
    BankPayout,
}

impl Kind {
    /// The stable name stored in the outbox.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::RequestTransferOut => "REQUEST_TRANSFER_OUT",
            Kind::DeliverForm => "DELIVER_FORM",
            Kind::ConfirmSettlement => "CONFIRM_SETTLEMENT",
            Kind::Abort => "ABORT",
            Kind::BankPayout => "BANK_PAYOUT",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        [
            Kind::RequestTransferOut,
            Kind::DeliverForm,
            Kind::ConfirmSettlement,
            Kind::Abort,
            Kind::BankPayout,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == text)
    }

    /// The invented transaction code.
    pub fn infno(self) -> &'static str {
        match self {
            Kind::RequestTransferOut => "9101",
            Kind::DeliverForm => "9102",
            Kind::ConfirmSettlement => "9103",
            Kind::Abort => "9104",
            Kind::BankPayout => "9201",
        }
    }
}

/// Infcodes of our answers (invented; documented in platform.proto).
pub mod infcode {
    /// Success.
    pub const SUCCESS: i32 = 0;
    /// The message is malformed.
    pub const INVALID_MESSAGE: i32 = 1001;
    /// The receiver does not host the region the message is for.
    pub const WRONG_RECEIVER: i32 = 1002;
    /// The msgid was seen before with a different body.
    pub const MODIFIED_REQUEST: i32 = 1004;
    /// The transfer is unknown here.
    pub const UNKNOWN_TRANSFER: i32 = 1005;
    /// The message does not fit the transfer's state.
    pub const OUT_OF_ORDER: i32 = 1006;
}

/// A reply with `infcode` and a message.
pub fn reply(code: i32, err_msg: impl Into<String>, refmsgid: &str) -> Reply {
    Reply {
        infcode: code,
        err_msg: err_msg.into(),
        inf_refmsgid: refmsgid.to_owned(),
    }
}

/// The SHA-256 of a message body, for duplicate analysis.
pub fn body_hash(message: &impl Message) -> Vec<u8> {
    Sha256::digest(message.encode_to_vec()).to_vec()
}

/// A protobuf timestamp.
pub fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}

/// A chrono time from a protobuf timestamp (the epoch for a missing or invalid one).
pub fn from_timestamp(at: Option<&prost_types::Timestamp>) -> DateTime<Utc> {
    at.and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .unwrap_or_default()
}

/// Mints a 30-character msgid: institution code (12) + yyyyMMddHHmmss (14) + sequence (4).
///
/// The time and sequence come from one durable counter, `second × 10,000 + sequence`, that
/// moves to at least the current second and otherwise by one: ids never repeat, across
/// restarts too, and a burst of more than 10,000 messages in one second borrows the next
/// seconds' numbers instead of wrapping around (the id's time then runs ahead of the clock by
/// at most the burst's excess, and falls back as soon as the rate does).
pub fn mint_msgid(tx: &mut dyn Tx, bureau: &Bureau, at: DateTime<Utc>) -> Result<String, Error> {
    let second = u64::try_from(at.timestamp())
        .map_err(|_| Error::Internal("the clock is before 1970".to_owned()))?;
    let slot = tx.next_sequence_at_least("msgid_slot", second.saturating_mul(10_000))?;
    let stamp = i64::try_from(slot / 10_000)
        .ok()
        .and_then(|second| DateTime::from_timestamp(second, 0))
        .ok_or_else(|| Error::Internal("msgid counter out of range".to_owned()))?;
    Ok(format!(
        "{}{}{:04}",
        bureau.institution,
        stamp.format("%Y%m%d%H%M%S"),
        slot % 10_000
    ))
}

/// Queues a message for `receiver_region` in the outbox, in the caller's transaction. `build`
/// receives the envelope and returns the encoded request.
pub fn enqueue(
    tx: &mut dyn Tx,
    bureau: &Bureau,
    kind: Kind,
    transfer_id: &str,
    sender_region: &str,
    receiver_region: &str,
    build: impl FnOnce(Envelope) -> Vec<u8>,
) -> Result<(), Error> {
    let now = bureau.clock.now();
    let msgid = mint_msgid(tx, bureau, now)?;
    let envelope = Envelope {
        infno: kind.infno().to_owned(),
        msgid: msgid.clone(),
        sender_region_code: sender_region.to_owned(),
        receiver_region_code: receiver_region.to_owned(),
        sent_at: Some(timestamp(now)),
        transfer_id: transfer_id.to_owned(),
    };
    tx.enqueue(&NewOutboxMessage {
        transfer_id: transfer_id.to_owned(),
        kind: kind.as_str().to_owned(),
        peer: receiver_region.to_owned(),
        msgid,
        payload: build(envelope),
        next_attempt_at: now,
        created_at: now,
    })?;
    Ok(())
}
