//! Overload: the limits a service keeps (`[limits]` in its settings file) and the layer that
//! refuses a call at once, with `RESOURCE_EXHAUSTED`, when too many are in flight.
//!
//! Beyond capacity a service answers early instead of queueing: a queue that grows without
//! bound turns a burst into latency for everyone and memory for the service, and the caller
//! cannot tell a slow answer from a lost one. Every queue between a caller and the store is
//! bounded here or by a setting below, and each bound, when reached, is an immediate refusal
//! that the caller retries after a backoff.
//!
//! Health checks (`grpc.health.v1.Health`) and server reflection are never counted nor
//! refused: a load balancer must learn that a busy service is alive.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Semaphore;
use tonic::codegen::http;

/// The most any count below may be set to.
pub const MAX_LIMIT: u32 = 1_000_000;
/// The largest message size that may be configured (64 MiB).
pub const MAX_MESSAGE_BYTES: u32 = 64 << 20;
/// The longest idle timeout of a watch stream that may be configured (a day).
pub const MAX_WATCH_IDLE_MS: u64 = 86_400_000;

/// A service's overload limits. Every field has a default; a settings file names only what it
/// changes. Counts are per listener (the main one, and the platform one) unless they say
/// otherwise.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// Calls in flight on a listener, over all its connections; one more is refused at once with
    /// RESOURCE_EXHAUSTED. A call counts until its answer (a stream: until its headers). Health
    /// checks are never counted. Default 2,048.
    pub requests_in_flight: u32,
    /// Calls in flight on one connection; one more is refused at once with RESOURCE_EXHAUSTED
    /// (health checks too). Default 1,024.
    pub requests_per_connection: u32,
    /// HTTP/2 streams one connection may hold open (`SETTINGS_MAX_CONCURRENT_STREAMS`): a
    /// client holds further calls back until one ends. Default 2,048.
    pub streams_per_connection: u32,
    /// `WatchTransfer` streams open at once over the whole service; one more is refused with
    /// RESOURCE_EXHAUSTED. Default 8,192.
    pub watch_streams: u32,
    /// `WatchTransfer` streams open at once on one connection. Default 2,048.
    pub watch_streams_per_connection: u32,
    /// A `WatchTransfer` stream that sent nothing for this long ends with UNAVAILABLE (watching
    /// again is safe), so an abandoned watch frees its place. Default 300,000 (5 minutes).
    pub watch_idle_timeout_ms: u64,
    /// The largest platform message (a batch) accepted, in bytes; a larger one is refused
    /// whole with OUT_OF_RANGE. Default 4 MiB (a full batch of 1,000 messages is about 1 MiB,
    /// so a peer's largest batch always fits).
    pub platform_message_bytes: u32,
    /// Steps waiting for the store's writer. Default 4,096.
    pub store_queue: u32,
    /// How long a step may wait for room in a full store queue before it is refused with
    /// RESOURCE_EXHAUSTED (nothing written). Default 250.
    pub store_queue_wait_ms: u64,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            requests_in_flight: 2048,
            requests_per_connection: 1024,
            streams_per_connection: 2048,
            watch_streams: 8192,
            watch_streams_per_connection: 2048,
            watch_idle_timeout_ms: 300_000,
            platform_message_bytes: 4 << 20,
            store_queue: 4096,
            store_queue_wait_ms: 250,
        }
    }
}

/// A limit out of its bounds: the setting (as its file key) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitError {
    /// The file key, `limits.requests_in_flight`.
    pub setting: &'static str,
    /// What is wrong.
    pub message: String,
}

impl LimitSettings {
    /// Checks every limit: counts 1–[`MAX_LIMIT`], sizes and times within their bounds.
    ///
    /// # Errors
    /// The first setting out of bounds.
    pub fn validate(&self) -> Result<(), LimitError> {
        for (setting, value, low, high) in [
            (
                "limits.requests_in_flight",
                self.requests_in_flight,
                1,
                MAX_LIMIT,
            ),
            (
                "limits.requests_per_connection",
                self.requests_per_connection,
                1,
                MAX_LIMIT,
            ),
            (
                "limits.streams_per_connection",
                self.streams_per_connection,
                1,
                MAX_LIMIT,
            ),
            ("limits.watch_streams", self.watch_streams, 1, MAX_LIMIT),
            (
                "limits.watch_streams_per_connection",
                self.watch_streams_per_connection,
                1,
                MAX_LIMIT,
            ),
            (
                "limits.platform_message_bytes",
                self.platform_message_bytes,
                1024,
                MAX_MESSAGE_BYTES,
            ),
            ("limits.store_queue", self.store_queue, 1, MAX_LIMIT),
        ] {
            if !(low..=high).contains(&value) {
                return Err(LimitError {
                    setting,
                    message: format!("is {value}; it must be {low}-{high}"),
                });
            }
        }
        for (setting, value, high) in [
            (
                "limits.watch_idle_timeout_ms",
                self.watch_idle_timeout_ms,
                MAX_WATCH_IDLE_MS,
            ),
            (
                "limits.store_queue_wait_ms",
                self.store_queue_wait_ms,
                60_000,
            ),
        ] {
            if !(1..=high).contains(&value) {
                return Err(LimitError {
                    setting,
                    message: format!("is {value}; it must be 1-{high} ms"),
                });
            }
        }
        Ok(())
    }

    /// How long a watch stream may stay silent.
    #[must_use]
    pub fn watch_idle_timeout(&self) -> Duration {
        Duration::from_millis(self.watch_idle_timeout_ms)
    }

    /// How long a step waits for room in the store's queue.
    #[must_use]
    pub fn store_queue_wait(&self) -> Duration {
        Duration::from_millis(self.store_queue_wait_ms)
    }
}

/// Whether a call is exempt from the in-flight limit: health checks and reflection.
fn exempt(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/") || path.starts_with("/grpc.reflection.")
}

/// The answer to a call refused for want of room: RESOURCE_EXHAUSTED, with no body.
fn refusal<B: Default>(limit: usize) -> http::Response<B> {
    tonic::Status::resource_exhausted(format!(
        "the service is at its limit of {limit} calls in flight; retry after a backoff"
    ))
    .into_http()
}

/// A layer that admits at most `limit` calls at once over every connection of a server and
/// refuses the next one at once with RESOURCE_EXHAUSTED (no waiting, no queue).
#[derive(Clone, Debug)]
pub struct InFlightLayer {
    permits: Arc<Semaphore>,
    limit: usize,
}

impl InFlightLayer {
    /// At most `limit` calls in flight (at least one).
    #[must_use]
    pub fn new(limit: usize) -> Self {
        let limit = limit.max(1);
        Self {
            permits: Arc::new(Semaphore::new(limit)),
            limit,
        }
    }
}

impl<S> tower::Layer<S> for InFlightLayer {
    type Service = InFlight<S>;

    fn layer(&self, inner: S) -> InFlight<S> {
        InFlight {
            inner,
            permits: self.permits.clone(),
            limit: self.limit,
        }
    }
}

/// The service [`InFlightLayer`] makes.
#[derive(Clone, Debug)]
pub struct InFlight<S> {
    inner: S,
    permits: Arc<Semaphore>,
    limit: usize,
}

/// The future of a call through [`InFlight`].
type Answer<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

impl<S, B, RB> tower::Service<http::Request<B>> for InFlight<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = http::Response<RB>;
    type Error = S::Error;
    type Future = Answer<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if exempt(request.uri().path()) {
            return Box::pin(self.inner.call(request));
        }
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => {
                let answer = self.inner.call(request);
                Box::pin(async move {
                    let answered = answer.await;
                    drop(permit);
                    answered
                })
            }
            Err(_) => {
                let limit = self.limit;
                Box::pin(async move { Ok(refusal(limit)) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_each_bound_names_its_setting() {
        assert_eq!(LimitSettings::default().validate(), Ok(()));
        let zero = LimitSettings {
            watch_streams: 0,
            ..LimitSettings::default()
        };
        assert_eq!(
            zero.validate().map_err(|e| e.setting),
            Err("limits.watch_streams")
        );
        let tiny = LimitSettings {
            platform_message_bytes: 10,
            ..LimitSettings::default()
        };
        assert_eq!(
            tiny.validate().map_err(|e| e.setting),
            Err("limits.platform_message_bytes")
        );
        let idle = LimitSettings {
            watch_idle_timeout_ms: 0,
            ..LimitSettings::default()
        };
        assert_eq!(
            idle.validate().map_err(|e| e.setting),
            Err("limits.watch_idle_timeout_ms")
        );
    }

    #[test]
    fn health_and_reflection_are_exempt() {
        assert!(exempt("/grpc.health.v1.Health/Check"));
        assert!(exempt(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
        ));
        assert!(!exempt("/yibao.bureau.v1.BureauService/ApplyTransfer"));
    }

    #[tokio::test]
    async fn a_call_beyond_the_limit_is_refused_at_once_and_a_freed_place_admits_again() {
        use tower::{Layer, Service};
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let released = Arc::new(std::sync::Mutex::new(Some(released)));
        // Only the call to `/x.Y/Slow` waits, until `release`.
        let slow = tower::service_fn(move |request: http::Request<()>| {
            let wait = (request.uri().path() == "/x.Y/Slow")
                .then(|| released.lock().ok().and_then(|mut r| r.take()))
                .flatten();
            async move {
                if let Some(wait) = wait {
                    let _ = wait.await;
                }
                Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
            }
        });
        let mut service = InFlightLayer::new(1).layer(slow);
        let request = |path: &str| {
            http::Request::builder()
                .uri(path)
                .body(())
                .expect("a request")
        };
        let first = tokio::spawn(service.call(request("/x.Y/Slow")));
        let refused = service.call(request("/x.Y/Z")).await.expect("answered");
        assert_eq!(
            refused.headers().get("grpc-status").map(|v| v.as_bytes()),
            Some(b"8".as_slice()),
            "RESOURCE_EXHAUSTED"
        );
        let health = service
            .call(request("/grpc.health.v1.Health/Check"))
            .await
            .expect("answered");
        assert!(health.headers().get("grpc-status").is_none());
        let _ = release.send(());
        first.await.expect("joined").expect("answered");
        let again = service.call(request("/x.Y/Z")).await.expect("answered");
        assert!(again.headers().get("grpc-status").is_none());
    }
}
