//! Prometheus metrics: the process's recorder (the `metrics` facade's, rendered by
//! `metrics-exporter-prometheus`) and the `/metrics` endpoint on a listener of its own.
//!
//! Code anywhere in the process records through the `metrics` macros; until [`install`] runs
//! they record nothing, at the cost of a call. [`install`] sets the recorder once per process,
//! with the bucket layouts of the histograms below (so they render as Prometheus histograms,
//! not summaries) and a `bureau` label on every series. [`serve`] answers `GET /metrics` over
//! HTTP/1.1 (hyper), running the caller's `refresh` first, so that gauges read from the store
//! (transfers by state, outbox depth, ledger totals) are current at every scrape rather than
//! polled on a timer of their own.
//!
//! The endpoint is plain HTTP without authentication, as Prometheus scrapes it: bind it to
//! loopback or a network only the scraper reaches. It serves nothing but the metrics.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
pub use metrics_exporter_prometheus::PrometheusHandle;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tonic::codegen::{Bytes, http};

/// The label every series carries: the bureau's name.
pub const BUREAU_LABEL: &str = "bureau";

/// Bucket upper bounds, in seconds, of latencies of one call or one commit: 100 µs to 10 s.
pub const CALL_SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Bucket upper bounds, in seconds, of a handshake step on the service clock: 5 ms to a week (a
/// test clock moved forward, or a peer down for days, lands in the upper buckets).
pub const STEP_SECONDS_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
    86_400.0, 604_800.0,
];

/// Bucket upper bounds of a count of jobs in one store transaction.
pub const BATCH_SIZE_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];

/// The histograms of this workspace and their buckets; a histogram not named here renders as a
/// summary, so every one recorded must be.
const HISTOGRAMS: &[(&str, &[f64])] = &[
    ("yibao_rpc_seconds", CALL_SECONDS_BUCKETS),
    ("yibao_store_commit_seconds", CALL_SECONDS_BUCKETS),
    ("yibao_store_batch_size", BATCH_SIZE_BUCKETS),
    ("yibao_handshake_step_seconds", STEP_SECONDS_BUCKETS),
];

/// How often histogram samples are folded into their buckets between scrapes, so memory stays
/// bounded when nobody scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The most scrapes served at once; a connection beyond it is closed at once.
const CONNECTIONS_AT_ONCE: usize = 16;

/// How long a scraper may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the recorder could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A recorder with another bureau label is in place already (one bureau per process).
    #[error("metrics are already recorded for bureau {installed:?} in this process")]
    OtherBureau {
        /// The bureau the installed recorder labels series with.
        installed: String,
    },
    /// The exporter refused its configuration, or another recorder was installed.
    #[error("metrics recorder: {0}")]
    Build(String),
}

/// The recorder this process installed, with the bureau it labels series with.
static INSTALLED: Mutex<Option<(String, PrometheusHandle)>> = Mutex::new(None);

/// Installs the process's recorder, labelling every series `bureau="<bureau>"`, and returns the
/// handle that renders it. A second call for the same bureau returns the same handle (a
/// bureau restarted in one test process); for another bureau it is an error.
///
/// # Errors
/// [`MetricsError::OtherBureau`], or [`MetricsError::Build`] if another recorder was set.
pub fn install(bureau: &str) -> Result<PrometheusHandle, MetricsError> {
    let mut installed = INSTALLED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((name, handle)) = installed.as_ref() {
        if name == bureau {
            return Ok(handle.clone());
        }
        return Err(MetricsError::OtherBureau {
            installed: name.clone(),
        });
    }
    let handle = build(bureau)?;
    *installed = Some((bureau.to_owned(), handle.clone()));
    Ok(handle)
}

/// The recorder with this workspace's buckets and the bureau label, installed globally.
fn build(bureau: &str) -> Result<PrometheusHandle, MetricsError> {
    let mut builder = PrometheusBuilder::new().add_global_label(BUREAU_LABEL, bureau);
    for (name, buckets) in HISTOGRAMS {
        builder = builder
            .set_buckets_for_metric(Matcher::Full((*name).to_owned()), buckets)
            .map_err(|e| MetricsError::Build(e.to_string()))?;
    }
    let handle = builder
        .install_recorder()
        .map_err(|e| MetricsError::Build(e.to_string()))?;
    describe();
    Ok(handle)
}

/// The help lines of the metrics recorded in this crate and the store's writer.
fn describe() {
    use metrics::{Unit, describe_counter, describe_histogram};
    describe_counter!(
        crate::rpc_metrics::RPC_TOTAL,
        "gRPC calls answered, by service, method and status code"
    );
    describe_histogram!(
        crate::rpc_metrics::RPC_SECONDS,
        Unit::Seconds,
        "gRPC call duration, request to the end of the answer, by service and method"
    );
    describe_histogram!(
        "yibao_store_commit_seconds",
        Unit::Seconds,
        "one store transaction (a group commit), BEGIN to COMMIT returned"
    );
    describe_histogram!(
        "yibao_store_batch_size",
        "jobs (protocol steps) committed in one store transaction"
    );
}

/// What runs before each render: reads that set gauges (boxed, since the bureau's reads are
/// async and this crate does not know them).
pub type Refresh = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Serves `GET /metrics` on `listener` until `shutdown` resolves: `refresh` runs, then the
/// recorder renders in Prometheus text format (version 0.0.4). Any other path is 404, any other
/// method 405. Histogram samples are folded in every few seconds meanwhile.
pub async fn serve(
    listener: TcpListener,
    handle: PrometheusHandle,
    refresh: Refresh,
    shutdown: impl Future<Output = ()>,
) {
    let upkeep = {
        let handle = handle.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(UPKEEP_EVERY);
            loop {
                every.tick().await;
                handle.run_upkeep();
            }
        })
    };
    let room = Arc::new(Semaphore::new(CONNECTIONS_AT_ONCE));
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else {
            // A connection that failed before it was accepted concerns only its scraper.
            continue;
        };
        let Ok(place) = room.clone().try_acquire_owned() else {
            continue;
        };
        let (handle, refresh) = (handle.clone(), refresh.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                answer(request, handle.clone(), refresh.clone())
            });
            let served = http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(error) = served {
                tracing::debug!(%error, "a metrics connection ended with an error");
            }
            drop(place);
        });
    }
    upkeep.abort();
}

/// The answer to one HTTP request.
async fn answer(
    request: http::Request<Incoming>,
    handle: PrometheusHandle,
    refresh: Refresh,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let plain = |status: http::StatusCode, text: &'static str| {
        let mut response = http::Response::new(Full::new(Bytes::from_static(text.as_bytes())));
        *response.status_mut() = status;
        response
    };
    if request.uri().path() != "/metrics" {
        return Ok(plain(
            http::StatusCode::NOT_FOUND,
            "not found; the metrics are at /metrics\n",
        ));
    }
    if request.method() != http::Method::GET && request.method() != http::Method::HEAD {
        return Ok(plain(
            http::StatusCode::METHOD_NOT_ALLOWED,
            "only GET /metrics\n",
        ));
    }
    refresh().await;
    let mut response = http::Response::new(Full::new(Bytes::from(handle.render())));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}

/// Where the endpoint of a bound listener is, for people: `http://ADDR/metrics`.
#[must_use]
pub fn url(address: SocketAddr) -> String {
    format!("http://{address}/metrics")
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn get(address: SocketAddr, request_line: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        let request = format!("{request_line} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("read");
        answer
    }

    #[tokio::test]
    async fn each_scrape_refreshes_first_and_renders_histograms_with_their_buckets() {
        let handle = install("test-bureau").expect("installed");
        assert!(install("test-bureau").is_ok(), "the same bureau again");
        assert!(matches!(
            install("another"),
            Err(MetricsError::OtherBureau { .. })
        ));
        let scrapes = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = scrapes.clone();
        let refresh: Refresh = Arc::new(move || {
            let n = counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            Box::pin(async move { metrics::gauge!("yibao_test_scrapes").set(n as f64) })
        });
        metrics::histogram!("yibao_store_batch_size").record(3.0);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(serve(listener, handle, refresh, async {
            let _ = stopped.await;
        }));
        let page = get(address, "GET /metrics").await;
        assert!(page.starts_with("HTTP/1.1 200"), "{page}");
        assert!(page.contains("text/plain; version=0.0.4"), "{page}");
        assert!(
            page.contains("yibao_test_scrapes{bureau=\"test-bureau\"} 1"),
            "{page}"
        );
        assert!(
            page.contains("yibao_store_batch_size_bucket{bureau=\"test-bureau\",le=\"4\"} 1"),
            "{page}"
        );
        let again = get(address, "GET /metrics").await;
        assert!(again.contains("yibao_test_scrapes{bureau=\"test-bureau\"} 2"));
        assert!(get(address, "GET /").await.starts_with("HTTP/1.1 404"));
        assert!(
            get(address, "POST /metrics")
                .await
                .starts_with("HTTP/1.1 405")
        );
        let _ = stop.send(());
        served.await.expect("the endpoint stops");
    }
}
