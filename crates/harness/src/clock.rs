//! Moving both bureaus' test clocks together, so that working-day deadlines fall due in a test
//! (or a demo) without waiting days.
//!
//! A service accepts at most 366 days per `AdvanceClock` call, so a longer move is made in steps
//! of that size. Both services are moved step by step in lockstep: after each step they agree
//! again, give or take the instant between the two calls.

use std::time::Duration;

use prost_types::Timestamp;
use yibao_proto::admin::v1::AdvanceClockRequest;

use crate::HarnessError;
use crate::admin::AdminClient;

/// The largest move one `AdvanceClock` call accepts.
pub const MAX_ADVANCE_PER_CALL: Duration = Duration::from_secs(366 * 24 * 3600);

/// The two clocks' times after a move.
#[derive(Clone, Debug, PartialEq)]
pub struct ClockTimes {
    /// The transfer-out bureau's time.
    pub transfer_out: Timestamp,
    /// The transfer-in bureau's time.
    pub transfer_in: Timestamp,
}

/// Moves both bureaus' test clocks forward by `by`, in steps of at most
/// [`MAX_ADVANCE_PER_CALL`], and returns their times after the last step. Each step calls both
/// bureaus concurrently; a failure at either is an error (and may leave the clocks apart).
pub async fn advance_both(
    admin_out: &mut AdminClient,
    admin_in: &mut AdminClient,
    by: Duration,
) -> Result<ClockTimes, HarnessError> {
    let mut times = None;
    for step in steps(by) {
        let (out, inn) = tokio::join!(
            advance_one("transfer-out", admin_out, step),
            advance_one("transfer-in", admin_in, step),
        );
        times = Some(ClockTimes {
            transfer_out: out?,
            transfer_in: inn?,
        });
    }
    times.ok_or_else(|| unreachable_no_step("transfer-out"))
}

/// Moves one bureau's (`service`'s) test clock forward by `by`, in steps of at most
/// [`MAX_ADVANCE_PER_CALL`], and returns its time after the last step.
pub async fn advance(
    service: &'static str,
    admin: &mut AdminClient,
    by: Duration,
) -> Result<Timestamp, HarnessError> {
    let mut now = None;
    for step in steps(by) {
        now = Some(advance_one(service, admin, step).await?);
    }
    now.ok_or_else(|| unreachable_no_step(service))
}

/// The moves `by` is made of: at least one (a move of zero asks the time), none longer than
/// [`MAX_ADVANCE_PER_CALL`].
fn steps(by: Duration) -> impl Iterator<Item = Duration> {
    let mut remaining = Some(by);
    std::iter::from_fn(move || {
        let left = remaining?;
        let step = left.min(MAX_ADVANCE_PER_CALL);
        remaining = Some(left - step).filter(|rest| !rest.is_zero());
        Some(step)
    })
}

/// [`steps`] always yields a step; should that ever not hold, an error rather than a panic.
fn unreachable_no_step(service: &'static str) -> HarnessError {
    HarnessError::MalformedAnswer {
        service,
        field: "now",
        value: String::new(),
        reason: "no clock move was made".to_owned(),
    }
}

/// One `AdvanceClock` call.
async fn advance_one(
    service: &'static str,
    admin: &mut AdminClient,
    by: Duration,
) -> Result<Timestamp, HarnessError> {
    let request = AdvanceClockRequest {
        by: Some(to_proto_duration(by)),
    };
    let answer = admin
        .advance_clock(request)
        .await
        .map_err(HarnessError::rpc(service, "AdvanceClock"))?
        .into_inner();
    answer.now.ok_or_else(|| HarnessError::MalformedAnswer {
        service,
        field: "now",
        value: String::new(),
        reason: "missing".to_owned(),
    })
}

/// A `google.protobuf.Duration` for a non-negative duration of at most [`MAX_ADVANCE_PER_CALL`].
fn to_proto_duration(by: Duration) -> prost_types::Duration {
    prost_types::Duration {
        // At most 366 days in seconds, far below i64::MAX.
        seconds: i64::try_from(by.as_secs()).unwrap_or(i64::MAX),
        // Sub-second nanoseconds are below 10^9, within i32.
        nanos: i32::try_from(by.subsec_nanos()).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_move_is_made_in_steps_and_a_zero_move_in_one() {
        let long = MAX_ADVANCE_PER_CALL * 2 + Duration::from_secs(1);
        let made: Vec<Duration> = steps(long).collect();
        assert_eq!(
            made,
            [
                MAX_ADVANCE_PER_CALL,
                MAX_ADVANCE_PER_CALL,
                Duration::from_secs(1)
            ]
        );
        assert_eq!(steps(Duration::ZERO).count(), 1);
    }

    #[test]
    fn a_duration_keeps_its_seconds_and_nanoseconds() {
        let proto = to_proto_duration(Duration::new(86_400, 5));
        assert_eq!((proto.seconds, proto.nanos), (86_400, 5));
    }
}
