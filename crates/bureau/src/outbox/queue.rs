//! Queues a platform message in the outbox inside the caller's step: mints its msgid, wraps it
//! in its envelope and stores it encoded, so the dispatcher sends the very bytes the step
//! decided on, however often it retries.

use chrono::DateTime;
use yibao_store::NewOutboxMessage;

use crate::error::Error;
use crate::messages::{Envelope, Kind, Outgoing};
use crate::outbox::transport;
use crate::record::Step;

/// Who sends a message and who receives it: pooling regions, or "bank" for the gateway.
#[derive(Debug, Clone, Copy)]
pub struct Route<'a> {
    /// The sending region.
    pub sender: &'a str,
    /// The receiving region.
    pub receiver: &'a str,
}

/// The receiver named in the outbox for the bank gateway (not the journal's `bank` account).
pub const BANK_GATEWAY: &str = "bank";

/// Queues `message` about `transfer_id` along `route`, in the caller's step.
pub fn enqueue(
    step: &mut Step<'_>,
    transfer_id: &str,
    route: Route<'_>,
    message: Outgoing,
) -> Result<(), Error> {
    let msgid = step.mint_msgid()?;
    enqueue_as(step, transfer_id, route, message, msgid)
}

/// Queues `message` under `msgid`, minted earlier in the caller's step (by
/// [`Step::mint_msgid`]) so that the transfer's document could name it.
pub fn enqueue_as(
    step: &mut Step<'_>,
    transfer_id: &str,
    route: Route<'_>,
    message: Outgoing,
    msgid: String,
) -> Result<(), Error> {
    let now = step.ctx.now;
    let kind = message.kind();
    let envelope = Envelope {
        infno: kind.infno(),
        msgid: msgid.clone(),
        sender_region: route.sender.to_owned(),
        receiver_region: route.receiver.to_owned(),
        sent_at: now,
        transfer_id: transfer_id.to_owned(),
    };
    step.tx.enqueue(&NewOutboxMessage {
        transfer_id: transfer_id.to_owned(),
        kind: kind.as_str().to_owned(),
        peer: route.receiver.to_owned(),
        msgid,
        payload: transport::encode(envelope, message),
        next_attempt_at: now,
        created_at: now,
    })?;
    Ok(())
}

/// How far a parked message's next attempt is pushed: beyond any statutory deadline, so it
/// stays visible in the outbox without being sent again (until an operator retries it).
pub const PARKED_FOR: std::time::Duration = std::time::Duration::from_secs(400 * 86_400);

/// A message whose next attempt is this far away or further is parked: no backoff comes close
/// (the longest is an hour, `yibao_runtime::retry::MAX_BACKOFF`).
const PARKED_BEYOND: chrono::TimeDelta = chrono::TimeDelta::days(30);

/// From when on a message due counts as parked, seen at `now`.
pub fn parked_from(now: DateTime<chrono::Utc>) -> DateTime<chrono::Utc> {
    now + PARKED_BEYOND
}

/// When a message parked at `now` would next be sent: practically never.
pub fn parked_until(now: DateTime<chrono::Utc>) -> DateTime<chrono::Utc> {
    now + chrono::Duration::from_std(PARKED_FOR).unwrap_or(chrono::TimeDelta::days(400))
}

/// Parks the queued messages of one kind for a transfer, in the caller's step.
pub fn park(step: &mut Step<'_>, transfer_id: &str, kind: Kind, why: &str) -> Result<(), Error> {
    let until = parked_until(step.ctx.now);
    step.tx
        .park_messages(transfer_id, kind.as_str(), until, why)?;
    Ok(())
}

/// Withdraws the queued messages of one kind for a transfer (a form an abort supersedes).
pub fn withdraw(step: &mut Step<'_>, transfer_id: &str, kind: Kind) -> Result<(), Error> {
    step.tx.withdraw_messages(transfer_id, kind.as_str())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;
    use yibao_runtime::directory::BureauRole;

    /// DOMAIN.md: every platform date is China time; a msgid's yyyyMMddHHmmss is too.
    #[tokio::test]
    async fn a_msgid_carries_the_china_time_and_never_repeats() {
        let services = testing::services(BureauRole::TransferOut);
        // The tests' clock starts at 02:00 UTC on Monday 2 March 2026: 10:00 in Beijing.
        let minted = services
            .write(|step| Ok::<_, Error>((step.mint_msgid()?, step.mint_msgid()?)))
            .await
            .expect("minted");
        let institution = &services.site.institution;
        assert_eq!(minted.0.len(), 30);
        assert!(minted.0.starts_with(&format!("{institution}202603021000")));
        assert!(minted.1.starts_with(&format!("{institution}202603021000")));
        assert_ne!(minted.0, minted.1, "ids never repeat");
    }
}
