//! Starting and stopping a bureau's gRPC server: tracing, binding, standard services, graceful
//! shutdown with a bound.
//!
//! The entry point takes an already-bound listener and a shutdown future (as mini-redis does), so
//! a test binds port 0, learns the address, and stops the server when it likes. Every server
//! also answers the standard `grpc.health.v1.Health` checks (for load balancers, Kubernetes and
//! `yibao up`) and server reflection (so `buf curl` can call it without the `.proto` files).
//!
//! Health follows a [`Readiness`] the service publishes: a bureau whose store cannot commit
//! reports NOT_SERVING for every name until it can again.
//!
//! Every server keeps the overload limits of [`LimitSettings`]: calls in flight over the whole
//! listener and per connection, and HTTP/2 streams per connection; a call beyond a limit is
//! answered RESOURCE_EXHAUSTED at once (health checks are always answered).
//!
//! Graceful shutdown stops accepting, lets calls in flight finish, and gives up after a timeout:
//! a known hyper issue can leave a connection open forever, and a service that never exits is
//! worse than one that drops a call its client will retry.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Server, ServerTlsConfig};
use tonic_health::ServingStatus;
use tower::layer::util::{Identity, Stack};
use tracing::{info, warn};

use crate::config::LogFormat;
use crate::limits::{InFlightLayer, LimitSettings};
use crate::rpc_metrics::RpcMetricsLayer;

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The reflection service could not read the embedded descriptor set (a build defect).
    #[error("server reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The transport failed while serving.
    #[error("serving gRPC: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Whether a service can do its work now, as its health check reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// SERVING.
    Serving,
    /// NOT_SERVING: up, but every call that needs the missing part fails (UNAVAILABLE) for now.
    NotServing,
}

impl Readiness {
    /// The health service's status for it.
    fn status(self) -> ServingStatus {
        match self {
            Readiness::Serving => ServingStatus::Serving,
            Readiness::NotServing => ServingStatus::NotServing,
        }
    }
}

/// What a server describes besides its routes.
#[derive(Clone, Copy, Debug)]
pub struct Contract<'a> {
    /// The full gRPC names its health check answers for besides `""`, such as
    /// `yibao.platform.v1.Platform`.
    pub service_names: &'a [&'a str],
    /// The encoded descriptor sets of the services, for reflection (health's is added).
    pub descriptor_sets: &'a [&'a [u8]],
}

/// Installs the global tracing subscriber: the `RUST_LOG` filter (default `info`), written as
/// text or JSON lines, exporting no traces ([`crate::telemetry::init`] exports them). A second
/// call, or a call after a test harness installed its own subscriber, leaves the first one in
/// place.
pub fn init_tracing(format: LogFormat) {
    // Without exporters nothing can fail; an error would only mean a subscriber is installed.
    drop(crate::telemetry::init(
        format,
        &crate::telemetry::TraceExport::default(),
    ));
}

/// How many times [`bind`] tries a port that is in use: pauses of 50 ms doubling to 1.6 s, about
/// 6 s in all.
pub const BIND_ATTEMPTS: u32 = 7;

/// Binds `addr` (port 0 picks a free port) and returns the listener with the address it got. A
/// port still in use (a killed predecessor's socket, a client that connected to itself on a port
/// inside the ephemeral range) is tried again, [`BIND_ATTEMPTS`] times in all, so a restarted
/// service binds its configured port.
///
/// # Errors
/// If the address cannot be bound (still in use after every attempt, not permitted).
pub async fn bind(addr: SocketAddr) -> io::Result<(TcpListener, SocketAddr)> {
    bind_within(addr, BIND_ATTEMPTS).await
}

/// [`bind`] with at most `attempts` attempts.
async fn bind_within(addr: SocketAddr, attempts: u32) -> io::Result<(TcpListener, SocketAddr)> {
    let mut pause = Duration::from_millis(50);
    let mut attempt = 1;
    loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => {
                let local = listener.local_addr()?;
                return Ok((listener, local));
            }
            Err(error) if error.kind() == io::ErrorKind::AddrInUse && attempt < attempts => {
                warn!(%addr, attempt, "address in use; binding again shortly");
                tokio::time::sleep(pause).await;
                pause = pause.saturating_mul(2);
                attempt += 1;
            }
            Err(error) => return Err(error),
        }
    }
}

/// Writes the bound address (`127.0.0.1:41234`, no newline) to `path`, atomically: the text goes
/// to a temporary file beside it, which is then renamed, so a reader polling for the file never
/// sees half an address.
///
/// # Errors
/// If the file cannot be written or renamed.
pub async fn write_port_file(path: &Path, addr: SocketAddr) -> io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    tokio::fs::write(&temporary, addr.to_string()).await?;
    tokio::fs::rename(&temporary, path).await
}

/// How a server runs: over TLS or not, within which limits, and how long a graceful shutdown
/// may take.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// The listener's TLS configuration; plaintext when `None`.
    pub tls: Option<ServerTlsConfig>,
    /// The overload limits (calls in flight, per connection, streams per connection).
    pub limits: LimitSettings,
    /// The longest a graceful shutdown waits for calls in flight.
    pub shutdown_timeout: Duration,
    /// Whether every call is counted and timed (`yibao_rpc_total`, `yibao_rpc_seconds`).
    pub rpc_metrics: RpcMetricsLayer,
}

impl ServeOptions {
    /// Plaintext, the default limits, and `shutdown_timeout`.
    #[must_use]
    pub fn plaintext(shutdown_timeout: Duration) -> Self {
        Self {
            tls: None,
            limits: LimitSettings::default(),
            shutdown_timeout,
            rpc_metrics: RpcMetricsLayer::off(),
        }
    }
}

/// Serves `routes` on `listener` (over TLS when `options.tls` is given, within
/// `options.limits`) until `shutdown` resolves, adding the health service (for the whole
/// server, `""`, and for each of the contract's service names) and server reflection (v1) over
/// the contract. Health says what `readiness` says, following each change.
///
/// When `shutdown` resolves, health turns NOT_SERVING, the server stops accepting and waits for
/// calls in flight up to `shutdown_timeout`, then returns regardless.
///
/// # Errors
/// [`ServerError::Reflection`] if a descriptor set is unreadable; [`ServerError::Transport`] if
/// serving fails.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    contract: Contract<'_>,
    options: ServeOptions,
    readiness: watch::Receiver<Readiness>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let ServeOptions {
        tls,
        limits,
        shutdown_timeout,
        rpc_metrics,
    } = options;
    let (health, health_service) = tonic_health::server::health_reporter();
    let mut all_names = vec![""];
    all_names.extend_from_slice(contract.service_names);
    let service_names = contract.service_names;
    // Every name is known before the first call can arrive; `follow` keeps it current.
    let initial = *readiness.borrow();
    report(&health, &all_names, initial).await;
    let routes =
        with_reflection(routes.add_service(health_service), contract.descriptor_sets)?.prepare();

    let local = listener
        .local_addr()
        .map_or_else(|_| String::from("unknown"), |address| address.to_string());
    // Nagle's algorithm would hold small HTTP/2 frames back; gRPC wants them sent at once.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = limited(tls, &limits, rpc_metrics)?
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, async {
            // A dropped sender also means stop.
            let _ = stopped.await;
        });
    tokio::pin!(serving);
    info!(address = %local, services = ?service_names, "serving");

    tokio::select! {
        result = &mut serving => return result.map_err(ServerError::from),
        () = follow(&health, &all_names, readiness) => {}
        () = shutdown => {}
    }
    info!(timeout_ms = shutdown_timeout.as_millis(), "shutting down");
    report(&health, &all_names, Readiness::NotServing).await;
    // The receiver lives inside `serving`, which we still hold, so this cannot fail.
    let _ = stop.send(());
    match tokio::time::timeout(shutdown_timeout, &mut serving).await {
        Ok(result) => {
            info!("stopped");
            result.map_err(ServerError::from)
        }
        Err(_) => {
            warn!(
                timeout_ms = shutdown_timeout.as_millis(),
                "graceful shutdown timed out; dropping open connections"
            );
            Ok(())
        }
    }
}

/// Reports every readiness `readiness` takes, from its current one on, for every name; never
/// resolves (once the sender is gone, the last word stands).
async fn follow(
    health: &tonic_health::server::HealthReporter,
    names: &[&str],
    mut readiness: watch::Receiver<Readiness>,
) {
    loop {
        let now = *readiness.borrow_and_update();
        report(health, names, now).await;
        if readiness.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// Sets every name's health status to `readiness`.
async fn report(
    health: &tonic_health::server::HealthReporter,
    names: &[&str],
    readiness: Readiness,
) {
    for name in names {
        health.set_service_status(*name, readiness.status()).await;
    }
}

/// The layers in front of every route: the call metrics outermost (so refusals count), then the
/// listener's in-flight limit.
type Layers = Stack<InFlightLayer, Stack<RpcMetricsLayer, Identity>>;

/// A server builder within `limits`: per connection, calls beyond the limit are shed
/// (RESOURCE_EXHAUSTED) rather than queued, as are calls beyond the listener's limit.
fn limited(
    tls: Option<ServerTlsConfig>,
    limits: &LimitSettings,
    rpc_metrics: RpcMetricsLayer,
) -> Result<Server<Layers>, ServerError> {
    let mut builder = Server::builder()
        .concurrency_limit_per_connection(limits.requests_per_connection as usize)
        .load_shed(true)
        .max_concurrent_streams(limits.streams_per_connection);
    if let Some(tls) = tls {
        builder = builder.tls_config(tls)?;
    }
    Ok(builder
        .layer(rpc_metrics)
        .layer(InFlightLayer::new(limits.requests_in_flight as usize)))
}

/// Resolves when the process is asked to stop: SIGTERM (on Unix) or Ctrl-C. If a signal handler
/// cannot be installed, that source is logged and ignored rather than stopping the service.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            warn!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(error) => {
                warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => info!("ctrl-c received"),
        () = terminate => info!("SIGTERM received"),
    }
}

/// `routes` with reflection over the given descriptor sets and health's, both v1 and v1alpha
/// (Python's grpcio-reflection and older grpcurl speak only v1alpha).
fn with_reflection(routes: Routes, descriptor_sets: &[&[u8]]) -> Result<Routes, ServerError> {
    let reflection = || {
        let mut builder = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
        for set in descriptor_sets {
            builder = builder.register_encoded_file_descriptor_set(set);
        }
        builder
    };
    Ok(routes
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?))
}

#[cfg(test)]
mod tests {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus as WireStatus;
    use tonic_health::pb::health_client::HealthClient;

    use super::*;

    /// Asks the server at `address` for the health of `service`; the status, or the error code.
    async fn check(address: SocketAddr, service: &str) -> Result<i32, tonic::Code> {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .map_err(|_| tonic::Code::InvalidArgument)?
            .connect()
            .await
            .map_err(|_| tonic::Code::Unavailable)?;
        let response = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .map_err(|status| status.code())?;
        Ok(response.into_inner().status)
    }

    #[tokio::test]
    async fn a_server_on_port_zero_reports_its_readiness_and_stops_within_the_timeout() {
        init_tracing(LogFormat::Text);
        init_tracing(LogFormat::Json);
        let (listener, address) = bind("127.0.0.1:0".parse().expect("address"))
            .await
            .expect("bind");
        assert_ne!(address.port(), 0);
        let (stop, stopped) = oneshot::channel::<()>();
        let (readiness, following) = watch::channel(Readiness::Serving);
        let server = tokio::spawn(serve(
            listener,
            Routes::default(),
            Contract {
                service_names: &["yibao.test.v1.Example"],
                descriptor_sets: &[],
            },
            ServeOptions::plaintext(Duration::from_secs(2)),
            following,
            async {
                let _ = stopped.await;
            },
        ));

        assert_eq!(check(address, "").await, Ok(WireStatus::Serving as i32));
        assert_eq!(
            check(address, "yibao.test.v1.Example").await,
            Ok(WireStatus::Serving as i32)
        );
        assert_eq!(
            check(address, "yibao.test.v1.Unknown").await,
            Err(tonic::Code::NotFound)
        );
        for (now, expected) in [
            (Readiness::NotServing, WireStatus::NotServing),
            (Readiness::Serving, WireStatus::Serving),
        ] {
            readiness.send_replace(now);
            for name in ["", "yibao.test.v1.Example"] {
                let until = tokio::time::Instant::now() + Duration::from_secs(5);
                while check(address, name).await != Ok(expected as i32) {
                    assert!(
                        tokio::time::Instant::now() < until,
                        "{name:?} turns {now:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
        drop(readiness);
        assert_eq!(
            check(address, "").await,
            Ok(WireStatus::Serving as i32),
            "the last word stands once nobody publishes"
        );

        stop.send(()).expect("server is running");
        let finished = tokio::time::timeout(Duration::from_secs(3), server)
            .await
            .expect("shutdown is bounded by its timeout");
        finished.expect("joined").expect("clean stop");
    }

    #[tokio::test]
    async fn shutdown_gives_up_on_a_call_that_never_ends() {
        let (listener, address) = bind("127.0.0.1:0".parse().expect("address"))
            .await
            .expect("bind");
        let (stop, stopped) = oneshot::channel::<()>();
        let timeout = Duration::from_millis(300);
        let server = tokio::spawn(serve(
            listener,
            Routes::default(),
            Contract {
                service_names: &[],
                descriptor_sets: &[],
            },
            ServeOptions::plaintext(timeout),
            watch::channel(Readiness::Serving).1,
            async {
                let _ = stopped.await;
            },
        ));
        // A health Watch is a server stream that stays open until the client leaves, so graceful
        // shutdown would wait for it forever.
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        let mut watch = HealthClient::new(channel)
            .watch(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("watch starts")
            .into_inner();
        let first = watch
            .message()
            .await
            .expect("stream open")
            .expect("an update");
        assert_eq!(first.status, WireStatus::Serving as i32);

        let asked = tokio::time::Instant::now();
        stop.send(()).expect("server is running");
        let finished = tokio::time::timeout(Duration::from_secs(3), server)
            .await
            .expect("shutdown is bounded by its timeout");
        finished
            .expect("joined")
            .expect("a timed-out shutdown is not an error");
        assert!(
            asked.elapsed() >= timeout,
            "the open call was given its time"
        );
    }

    #[tokio::test]
    async fn reflection_lists_the_given_services_and_health() {
        use prost::Message;
        use tonic_reflection::pb::v1::ServerReflectionRequest;
        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

        let (listener, address) = bind("127.0.0.1:0".parse().expect("address"))
            .await
            .expect("bind");
        // A contract of one service, as a bureau passes its own descriptor set.
        let contract = prost_types::FileDescriptorSet {
            file: vec![prost_types::FileDescriptorProto {
                name: Some("yibao/test/v1/example.proto".to_owned()),
                package: Some("yibao.test.v1".to_owned()),
                service: vec![prost_types::ServiceDescriptorProto {
                    name: Some("Example".to_owned()),
                    ..Default::default()
                }],
                syntax: Some("proto3".to_owned()),
                ..Default::default()
            }],
        }
        .encode_to_vec();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            serve(
                listener,
                Routes::default(),
                Contract {
                    service_names: &[],
                    descriptor_sets: &[contract.as_slice()],
                },
                ServeOptions::plaintext(Duration::from_secs(1)),
                watch::channel(Readiness::Serving).1,
                async {
                    let _ = stopped.await;
                },
            )
            .await
        });
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut answers = ServerReflectionClient::new(channel)
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .expect("reflection answers")
            .into_inner();
        let answer = answers
            .message()
            .await
            .expect("stream open")
            .expect("one answer");
        let names: Vec<String> = match answer.message_response {
            Some(MessageResponse::ListServicesResponse(list)) => list
                .service
                .into_iter()
                .map(|service| service.name)
                .collect(),
            other => panic!("expected a service list, got {other:?}"),
        };
        for expected in ["grpc.health.v1.Health", "yibao.test.v1.Example"] {
            assert!(
                names.iter().any(|name| name == expected),
                "{expected} in {names:?}"
            );
        }
        stop.send(()).expect("server is running");
        server.await.expect("joined").expect("clean stop");
    }

    #[tokio::test]
    async fn the_port_file_holds_exactly_the_bound_address() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("port");
        let address: SocketAddr = "127.0.0.1:41234".parse().expect("address");
        write_port_file(&path, address).await.expect("write");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text.parse::<SocketAddr>().expect("an address"), address);
    }

    #[tokio::test]
    async fn a_port_in_use_is_bound_once_it_is_released_and_refused_after_the_last_attempt() {
        let occupied = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        let address = occupied.local_addr().expect("its address");
        let refused = bind_within(address, 2).await.expect_err("still in use");
        assert_eq!(refused.kind(), io::ErrorKind::AddrInUse);
        let binding = tokio::spawn(bind_within(address, BIND_ATTEMPTS));
        drop(occupied);
        let (_listener, bound) = binding.await.expect("joined").expect("bound once released");
        assert_eq!(bound, address, "the configured port, not another");
    }
}
