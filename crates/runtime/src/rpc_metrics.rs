//! Every gRPC call a listener answers, counted and timed: `yibao_rpc_total{service,method,code}`
//! and `yibao_rpc_seconds{service,method}`, recorded by a tower layer in front of all its routes
//! (outside the in-flight limit, so its refusals count too; health checks and reflection too).
//!
//! A call's status is in the response headers when it failed before a message (a
//! "trailers-only" answer) and in the trailers otherwise, so the layer wraps the response body
//! and records when the body ends: with the status it saw, or `CANCELLED` when the body was
//! dropped before any (the client went away, or a stream was cut). The time is from the request
//! to the end of the answer; for a stream (`WatchTransfer`), that is how long it lasted.
//!
//! **Labels stay bounded.** The service and method come from the request path, which any client
//! chooses: a path answered UNIMPLEMENTED (no such route) is counted as `unknown`, and beyond
//! [`MAX_METHODS`] distinct paths every new one is `other`. Names are kept once, shared.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use tokio::time::Instant;
use tonic::codegen::http;

/// The counter of calls, by service, method and status code.
pub const RPC_TOTAL: &str = "yibao_rpc_total";
/// The histogram of call durations, by service and method.
pub const RPC_SECONDS: &str = "yibao_rpc_seconds";

/// The most distinct (service, method) pairs labelled by name; later ones are `other`.
pub const MAX_METHODS: usize = 512;

/// A (service, method) pair's labels.
type Names = (Arc<str>, Arc<str>);

/// The layer. [`RpcMetricsLayer::off`] passes calls through untouched (metrics not configured).
#[derive(Clone, Debug)]
pub struct RpcMetricsLayer {
    methods: Option<Arc<Methods>>,
}

impl RpcMetricsLayer {
    /// Records every call.
    #[must_use]
    pub fn on() -> Self {
        Self {
            methods: Some(Arc::default()),
        }
    }

    /// Records nothing.
    #[must_use]
    pub fn off() -> Self {
        Self { methods: None }
    }
}

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> RpcMetrics<S> {
        RpcMetrics {
            inner,
            methods: self.methods.clone(),
        }
    }
}

/// The labels of the paths seen so far.
#[derive(Debug, Default)]
struct Methods {
    known: RwLock<HashMap<String, Names>>,
}

impl Methods {
    /// The labels of `path` (`/package.Service/Method`) answered with `code`.
    fn names(&self, path: &str, code: tonic::Code) -> Names {
        let read = self.known.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(names) = read.get(path) {
            return names.clone();
        }
        drop(read);
        if code == tonic::Code::Unimplemented {
            return (Arc::from("unknown"), Arc::from("unknown"));
        }
        let mut known = self.known.write().unwrap_or_else(PoisonError::into_inner);
        if known.len() >= MAX_METHODS {
            return (Arc::from("other"), Arc::from("other"));
        }
        let (service, method) = path
            .trim_start_matches('/')
            .split_once('/')
            .unwrap_or(("unknown", "unknown"));
        let names: Names = (Arc::from(service), Arc::from(method));
        known.insert(path.to_owned(), names.clone());
        names
    }
}

/// The service [`RpcMetricsLayer`] makes.
#[derive(Clone, Debug)]
pub struct RpcMetrics<S> {
    inner: S,
    methods: Option<Arc<Methods>>,
}

/// The future of a call through [`RpcMetrics`].
type Answer<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

impl<S, B, RB> tower::Service<http::Request<B>> for RpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    RB: Body + Unpin + Send + 'static,
{
    type Response = http::Response<RpcBody<RB>>;
    type Error = S::Error;
    type Future = Answer<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let call = self.methods.clone().map(|methods| Call {
            methods,
            uri: request.uri().clone(),
            started: Instant::now(),
            code: None,
        });
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            let call = call.map(|mut call| {
                call.code = grpc_status(response.headers());
                call
            });
            Ok(response.map(|inner| RpcBody { inner, call }))
        })
    }
}

/// A call being answered: what its record needs once the answer ends.
#[derive(Debug)]
struct Call {
    methods: Arc<Methods>,
    /// The request's URI (cheap to keep: its parts are shared), for the path.
    uri: http::Uri,
    started: Instant,
    /// The status seen so far, in the headers or the trailers.
    code: Option<tonic::Code>,
}

impl Call {
    /// Counts and times the call.
    fn record(self) {
        let code = self.code.unwrap_or(tonic::Code::Cancelled);
        let (service, method) = self.methods.names(self.uri.path(), code);
        let seconds = self.started.elapsed().as_secs_f64();
        metrics::histogram!(RPC_SECONDS, "service" => service.clone(), "method" => method.clone())
            .record(seconds);
        metrics::counter!(
            RPC_TOTAL, "service" => service, "method" => method, "code" => code_name(code)
        )
        .increment(1);
    }
}

/// A response body that records its call when it ends or is dropped.
#[derive(Debug)]
pub struct RpcBody<B> {
    inner: B,
    call: Option<Call>,
}

impl<B> RpcBody<B> {
    /// Records the call, once.
    fn finish(&mut self) {
        if let Some(call) = self.call.take() {
            call.record();
        }
    }
}

impl<B> Drop for RpcBody<B> {
    fn drop(&mut self) {
        self.finish();
    }
}

impl<B: Body + Unpin> Body for RpcBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    if let Some(call) = this.call.as_mut() {
                        call.code = grpc_status(trailers).or(call.code);
                    }
                    this.finish();
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(call) = this.call.as_mut() {
                    call.code = call.code.or(Some(tonic::Code::Internal));
                }
                this.finish();
            }
            Poll::Ready(None) => this.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The status in `grpc-status`, if the headers (or trailers) carry one.
fn grpc_status(headers: &http::HeaderMap) -> Option<tonic::Code> {
    headers
        .get("grpc-status")
        .map(|value| tonic::Code::from_bytes(value.as_bytes()))
}

/// A status code's canonical name, as gRPC and the contract's documentation spell it
/// (`FAILED_PRECONDITION`); tonic's own `Display` gives a description instead.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_named_once_and_unknown_or_excess_paths_stay_bounded() {
        let methods = Methods::default();
        let (service, method) =
            methods.names("/yibao.bureau.v1.BureauService/Apply", tonic::Code::Ok);
        assert_eq!(
            (&*service, &*method),
            ("yibao.bureau.v1.BureauService", "Apply")
        );
        let (again, _) = methods.names("/yibao.bureau.v1.BureauService/Apply", tonic::Code::Ok);
        assert!(Arc::ptr_eq(&service, &again), "kept once, shared");
        let (unknown, _) = methods.names("/made.Up/Anything", tonic::Code::Unimplemented);
        assert_eq!(&*unknown, "unknown");
        for n in 0..MAX_METHODS {
            methods.names(&format!("/s/m{n}"), tonic::Code::Ok);
        }
        let (other, _) = methods.names("/s/one-too-many", tonic::Code::Ok);
        assert_eq!(&*other, "other");
        let (kept, _) = methods.names("/yibao.bureau.v1.BureauService/Apply", tonic::Code::Ok);
        assert_eq!(
            &*kept, "yibao.bureau.v1.BureauService",
            "known paths keep their names"
        );
    }

    #[test]
    fn the_status_comes_from_the_headers_or_trailers_and_is_named_as_grpc_does() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(grpc_status(&headers), None);
        headers.insert("grpc-status", http::HeaderValue::from_static("8"));
        assert_eq!(grpc_status(&headers), Some(tonic::Code::ResourceExhausted));
        assert_eq!(
            code_name(tonic::Code::ResourceExhausted),
            "RESOURCE_EXHAUSTED"
        );
        assert_eq!(code_name(tonic::Code::Ok), "OK");
    }
}
