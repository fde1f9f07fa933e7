//! When to try a cross-bureau message again, and how long to wait first.
//!
//! Every cross-bureau message waits in a durable outbox until the receiver acknowledges it; the
//! dispatcher retries it with exponential backoff and full jitter ("sleep a random time between
//! zero and the capped exponential"), which spreads out a herd of retries after an outage. The
//! randomness is passed in, so a seeded simulation replays the same delays.
//!
//! [`is_retryable`] is the one place that decides, from a gRPC status, whether a failure is
//! transient. Everything else (a refusal, a malformed request, a bug) is an answer, not an outage:
//! retrying it would only repeat it.

use std::time::Duration;

use rand::Rng;

/// The longest delay a [`Backoff`] may be configured to reach.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// The largest growth factor a [`Backoff`] accepts per attempt.
pub const MAX_MULTIPLIER: f64 = 10.0;

/// Exponential backoff with full jitter, capped. Built only through [`Backoff::try_new`], so its
/// limits always hold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The ceiling of the first retry's delay.
    initial: Duration,
    /// No delay exceeds this, however many attempts have failed.
    max: Duration,
    /// How much the ceiling grows with each failed attempt.
    multiplier: f64,
}

/// Why a backoff's limits were refused. Each message names the setting.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BackoffError {
    /// `initial` is zero: retries would hammer the receiver.
    #[error("backoff `initial` must be greater than zero")]
    InitialZero,
    /// `max` is below `initial`.
    #[error("backoff `max` ({max:?}) must be at least `initial` ({initial:?})")]
    MaxBelowInitial {
        /// The `initial` given.
        initial: Duration,
        /// The `max` given.
        max: Duration,
    },
    /// `max` exceeds [`MAX_BACKOFF`].
    #[error("backoff `max` ({max:?}) must be at most {limit:?}")]
    MaxTooLong {
        /// The `max` given.
        max: Duration,
        /// The limit, [`MAX_BACKOFF`].
        limit: Duration,
    },
    /// `multiplier` is not in `(1, MAX_MULTIPLIER]` (or is not a number).
    #[error("backoff `multiplier` is {multiplier}; it must be above 1 and at most {limit}")]
    MultiplierOutOfRange {
        /// The `multiplier` given.
        multiplier: f64,
        /// The limit, [`MAX_MULTIPLIER`].
        limit: f64,
    },
}

impl Backoff {
    /// A backoff whose delay ceiling starts at `initial`, grows by `multiplier` per attempt and
    /// stops at `max`.
    ///
    /// # Errors
    /// If `initial` is zero, `max < initial`, `max` exceeds [`MAX_BACKOFF`], or `multiplier` is
    /// not above 1 and at most [`MAX_MULTIPLIER`].
    pub fn try_new(
        initial: Duration,
        max: Duration,
        multiplier: f64,
    ) -> Result<Self, BackoffError> {
        if initial.is_zero() {
            return Err(BackoffError::InitialZero);
        }
        if max < initial {
            return Err(BackoffError::MaxBelowInitial { initial, max });
        }
        if max > MAX_BACKOFF {
            return Err(BackoffError::MaxTooLong {
                max,
                limit: MAX_BACKOFF,
            });
        }
        // Written so that NaN fails the check too.
        if !(multiplier > 1.0 && multiplier <= MAX_MULTIPLIER) {
            return Err(BackoffError::MultiplierOutOfRange {
                multiplier,
                limit: MAX_MULTIPLIER,
            });
        }
        Ok(Self {
            initial,
            max,
            multiplier,
        })
    }

    /// The ceiling of the first retry's delay.
    #[must_use]
    pub fn initial(&self) -> Duration {
        self.initial
    }

    /// The cap on every delay.
    #[must_use]
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The growth factor per attempt.
    #[must_use]
    pub fn multiplier(&self) -> f64 {
        self.multiplier
    }

    /// The largest delay before retry number `attempt` (counting from 0 for the first retry):
    /// `initial * multiplier^attempt`, capped at `max`.
    #[must_use]
    pub fn ceiling(&self, attempt: u32) -> Duration {
        // Past 64 attempts any multiplier above 1 has long reached any cap we allow (2^64 ns is
        // over 500 years), so clamping keeps `powi` in range without changing the answer.
        let exponent = i32::try_from(attempt.min(64)).unwrap_or(64);
        let seconds = self.initial.as_secs_f64() * self.multiplier.powi(exponent);
        if !seconds.is_finite() || seconds >= self.max.as_secs_f64() {
            self.max
        } else {
            Duration::from_secs_f64(seconds).min(self.max)
        }
    }

    /// How long to wait before retry number `attempt` (from 0): uniformly random between zero
    /// and [`Backoff::ceiling`] ("full jitter"), drawn from `rng` so a simulation can seed it.
    pub fn delay(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(attempt);
        // The ceiling is at most MAX_BACKOFF (3.6e12 ns), far inside u64.
        let ceiling_ns = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rng.random_range(0..=ceiling_ns))
    }
}

/// Whether a failed call may succeed if sent again unchanged: true only for `UNAVAILABLE`,
/// `DEADLINE_EXCEEDED`, `RESOURCE_EXHAUSTED` and `CANCELLED`. This is the one place that decides.
///
/// `CANCELLED` is what a tonic server answers when the caller's deadline (`grpc-timeout`)
/// passed before its handler finished — a peer slow for a moment, say on a store shared by
/// replicas waiting for a lock — so it is a timeout, not a refusal of the message; no peer
/// cancels a call as its answer.
///
/// A status that tonic made locally from a transport failure (a connection reset when the peer
/// is killed mid-call arrives as `UNKNOWN: transport error`) is `UNAVAILABLE` in disguise: the
/// peer never answered. Such statuses carry the transport error as their source, which a status
/// decoded from a peer's answer never does.
///
/// A retried message is safe because the receiver deduplicates by message id; a timeout is never
/// proof that the receiver did nothing.
#[must_use]
pub fn is_retryable(status: &tonic::Status) -> bool {
    let transport_failure = std::error::Error::source(status).is_some()
        && matches!(status.code(), tonic::Code::Unknown | tonic::Code::Internal);
    transport_failure
        || matches!(
            status.code(),
            tonic::Code::Unavailable
                | tonic::Code::DeadlineExceeded
                | tonic::Code::ResourceExhausted
                | tonic::Code::Cancelled
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn standard() -> Backoff {
        Backoff::try_new(ms(50), ms(10_000), 2.0).expect("valid limits")
    }

    #[test]
    fn a_local_transport_failure_is_retryable_but_a_peers_unknown_is_not() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let local = tonic::Status::from_error(Box::new(io));
        assert_eq!(local.code(), tonic::Code::Unknown);
        assert!(is_retryable(&local));
        assert!(!is_retryable(&tonic::Status::unknown("the peer said so")));
        assert!(!is_retryable(&tonic::Status::invalid_argument("bad")));
        assert!(is_retryable(&tonic::Status::unavailable("down")));
    }

    #[test]
    fn a_peer_whose_deadline_passed_is_asked_again() {
        // What a tonic server answers once the caller's grpc-timeout passed, as it arrives over
        // the wire: CANCELLED, no source.
        let expired = tonic::Status::cancelled(tonic::TimeoutExpired(()).to_string());
        assert!(std::error::Error::source(&expired).is_none());
        assert!(is_retryable(&expired), "a timeout, not a refusal");
    }

    #[test]
    fn limits_outside_the_bounds_are_refused_naming_the_setting() {
        assert_eq!(
            Backoff::try_new(Duration::ZERO, ms(10), 2.0),
            Err(BackoffError::InitialZero)
        );
        assert!(matches!(
            Backoff::try_new(ms(10), ms(5), 2.0),
            Err(BackoffError::MaxBelowInitial { .. })
        ));
        assert!(matches!(
            Backoff::try_new(ms(10), Duration::from_secs(3601), 2.0),
            Err(BackoffError::MaxTooLong { .. })
        ));
        for multiplier in [1.0, 0.5, 10.5, f64::NAN, f64::INFINITY] {
            let err = Backoff::try_new(ms(10), ms(100), multiplier).expect_err("out of range");
            assert!(err.to_string().contains("multiplier"));
        }
        assert!(Backoff::try_new(ms(10), ms(10), 10.0).is_ok());
    }

    #[test]
    fn delays_never_exceed_the_cap() {
        let backoff = standard();
        let mut rng = StdRng::seed_from_u64(7);
        for attempt in 0..200 {
            for _ in 0..20 {
                let delay = backoff.delay(attempt, &mut rng);
                assert!(delay <= backoff.ceiling(attempt));
                assert!(delay <= backoff.max());
            }
        }
        assert_eq!(backoff.ceiling(u32::MAX), backoff.max());
    }

    #[test]
    fn the_ceiling_grows_exponentially_until_the_cap() {
        let backoff = standard();
        assert_eq!(backoff.ceiling(0), ms(50));
        assert_eq!(backoff.ceiling(1), ms(100));
        assert_eq!(backoff.ceiling(3), ms(400));
        assert_eq!(backoff.ceiling(8), ms(10_000));
        assert_eq!(backoff.ceiling(30), ms(10_000));
    }

    #[test]
    fn delays_grow_on_average_with_each_attempt() {
        let backoff = standard();
        let mut rng = StdRng::seed_from_u64(42);
        let mean = |attempt: u32, rng: &mut StdRng| {
            let total: Duration = (0..2000).map(|_| backoff.delay(attempt, rng)).sum();
            total / 2000
        };
        let means: Vec<Duration> = (0..8).map(|attempt| mean(attempt, &mut rng)).collect();
        for pair in means.windows(2) {
            assert!(pair[1] > pair[0], "means should grow: {means:?}");
        }
        // Full jitter: the mean is about half the ceiling.
        let half = backoff.ceiling(5) / 2;
        assert!(means[5] > half.mul_f64(0.9) && means[5] < half.mul_f64(1.1));
    }

    #[test]
    fn the_same_seed_gives_the_same_delays() {
        let backoff = standard();
        let draw = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..50)
                .map(|attempt| backoff.delay(attempt, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(1234), draw(1234));
        assert_ne!(draw(1234), draw(1235));
    }

    #[test]
    fn only_unavailable_deadline_exceeded_resource_exhausted_and_cancelled_are_retryable() {
        use tonic::Code;
        let retryable = [
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::ResourceExhausted,
            Code::Cancelled,
        ];
        let all = [
            Code::Ok,
            Code::Cancelled,
            Code::Unknown,
            Code::InvalidArgument,
            Code::DeadlineExceeded,
            Code::NotFound,
            Code::AlreadyExists,
            Code::PermissionDenied,
            Code::ResourceExhausted,
            Code::FailedPrecondition,
            Code::Aborted,
            Code::OutOfRange,
            Code::Unimplemented,
            Code::Internal,
            Code::Unavailable,
            Code::DataLoss,
            Code::Unauthenticated,
        ];
        for code in all {
            assert_eq!(
                is_retryable(&tonic::Status::new(code, "test")),
                retryable.contains(&code),
                "{code:?}"
            );
        }
    }
}
