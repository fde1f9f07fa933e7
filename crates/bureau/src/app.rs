//! Starting and stopping a bureau: `Application::build` opens the store, migrates old data,
//! reads the directory, the calendar and the platform's TLS identity, and binds both listeners
//! (so tests can bind port 0); `run_until_stopped` serves until shutdown, with the outbox
//! dispatcher beside it, and the store's health as both listeners' health (`health`).
//!
//! Two listeners: the main one serves the people-facing bureau API and the admin API
//! (plaintext, for `buf curl` and the CLI on loopback); the platform one serves only the
//! bureau-to-bureau services, over mutual TLS unless configured plaintext.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use yibao_domain::region::RegionCode;
use yibao_runtime::clock::Clock;
use yibao_runtime::config::ServiceConfig;
use yibao_runtime::directory::{BureauName, BureauRole, RegionDirectory};
use yibao_runtime::prometheus::PrometheusHandle;
use yibao_runtime::rpc_metrics::RpcMetricsLayer;
use yibao_runtime::server::{Contract, Readiness, ServeOptions, ServerError};
use yibao_runtime::tls::PlatformTls;
use yibao_store::Store;

use crate::admission::Transport;
use crate::bank::SimulatedBank;
use crate::context::{Broken, ConnectivityOverrides, Site};
use crate::faults::FaultRules;
use crate::measure::gauges::StoreGauges;
use crate::outbox::dispatcher;
use crate::peer::{Peer, Peers};
use crate::services::{Admin, Services};
use crate::streams::{StreamLimits, Streams};
use crate::{api, health, migrate};

/// Why a bureau could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration or a file it names is wrong.
    #[error("{0}")]
    Config(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The store could not be opened.
    #[error("store: {0}")]
    Store(#[from] yibao_store::Error),
    /// Data an earlier release left could not be migrated.
    #[error("migration: {0}")]
    Migration(String),
    /// Serving failed.
    #[error("server: {0}")]
    Server(String),
}

/// A bureau bound to its listener, ready to run (mini-redis / zero-to-production shape).
#[derive(Debug)]
pub struct Application {
    services: Arc<Services>,
    listener: TcpListener,
    address: SocketAddr,
    platform_listener: TcpListener,
    platform_address: SocketAddr,
    tls: Option<PlatformTls>,
    /// The metrics listener, when `metrics_listen` is set.
    metrics: Option<Metrics>,
    config: ServiceConfig,
}

/// The Prometheus endpoint of a bureau: its listener and the recorder it renders.
struct Metrics {
    listener: TcpListener,
    address: SocketAddr,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Opens the store (and migrates what an earlier release left), reads the directory and
    /// calendar, binds the listener.
    pub async fn build(config: ServiceConfig) -> Result<Self, StartError> {
        let directory = RegionDirectory::load(&config.directory)
            .map_err(|e| StartError::Config(e.to_string()))?;
        // Before the store opens, so that its writer's first commits are recorded.
        let metrics = metrics(&config).await?;
        let store = open_store(&config)?;
        let clock = open_clock(&config, &store).await?;
        let (calendar, _) =
            yibao_runtime::calendar::load_calendar(config.calendar_dir.as_deref(), clock.today())
                .map_err(|e| StartError::Config(e.to_string()))?;
        let name = BureauName::parse(&config.bureau).map_err(StartError::Config)?;
        let hosted = directory.hosted_by(&name);
        let Some(first) = hosted.first() else {
            return Err(StartError::Config(format!(
                "the region directory gives bureau {name} no region to host (its `bureau` keys \
                 name {})",
                names(&directory)
            )));
        };
        let institution = crate::context::institution_code(&name, *first);
        let tls = platform_tls(&config, &hosted)?;
        let (listener, address) = bind(config.listen).await?;
        let (platform_listener, platform_address) = bind(config.platform_listen).await?;
        let connectivity_overrides =
            Arc::new(ConnectivityOverrides::new(directory.pooling().clone()));
        let site = Site {
            role: config.role,
            name,
            hosted,
            institution,
            directory,
            calendar,
            default_policy: Default::default(),
            connectivity_overrides,
            broken: broken()?,
        };
        let faults = fault_rules(&config, &site)?;
        let services = Arc::new(Services {
            site: Arc::new(site),
            store,
            clock,
            peers: peers(&config, tls.as_ref()),
            bank: Arc::new(SimulatedBank::new(config.bank.failure_every)),
            watchers: Arc::default(),
            streams: Arc::new(Streams::new(stream_limits(&config))),
            dispatch_now: tokio::sync::Notify::new(),
            admin: if config.admin_enabled {
                Admin::Enabled
            } else {
                Admin::Disabled
            },
            admin_token: config.admin_token.clone(),
            faults: faults.clone(),
            exchanges: Arc::default(),
        });
        migrate::run(&services)
            .await
            .map_err(|error| StartError::Migration(error.to_string()))?;
        Ok(Self {
            services,
            listener,
            address,
            platform_listener,
            platform_address,
            tls,
            metrics,
            config,
        })
    }

    /// The bound address of the metrics endpoint, when metrics are on.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|metrics| metrics.address)
    }

    /// The bound address of the bureau and admin APIs (useful with port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The bound address of the platform services.
    pub fn platform_address(&self) -> SocketAddr {
        self.platform_address
    }

    /// Serves until `shutdown` resolves, then stops accepting on both listeners, stops the
    /// dispatcher and closes the store (queued writes finish first).
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), StartError> {
        let settings = dispatcher::Settings {
            batch_limit: self.config.dispatcher.batch_limit,
            attempt_timeout: self.config.dispatcher.attempt_timeout(),
            backoff: self
                .config
                .dispatcher
                .backoff()
                .map_err(|e| StartError::Config(e.to_string()))?,
            idle_poll: self.config.dispatcher.idle_poll(),
            concurrency: self.config.dispatcher.batches_in_flight as usize,
        };
        let (stop_dispatcher, dispatcher_stopped) = tokio::sync::watch::channel(false);
        let dispatcher = tokio::spawn(dispatcher::run(
            self.services.clone(),
            settings,
            dispatcher_stopped.clone(),
        ));
        if self.services.store.shared_by_replicas() {
            tokio::spawn(crate::watchers::poll_shared(
                self.services.watchers.clone(),
                dispatcher_stopped.clone(),
            ));
        }
        let store = self.services.store.clone();
        let (readiness, ready) =
            tokio::sync::watch::channel(health::readiness(*store.health().borrow()));
        let following = tokio::spawn(health::follow(store, readiness, dispatcher_stopped));
        let timeout = self.config.shutdown_timeout();
        let served = self.serve(ready, shutdown).await;
        let _ = stop_dispatcher.send(true);
        let _ = tokio::time::timeout(timeout, dispatcher).await;
        let _ = tokio::time::timeout(timeout, following).await;
        served
    }

    /// Serves both listeners until `shutdown` resolves or either server stops (which stops the
    /// other too); both finish before this returns. Both report `ready` as their health.
    async fn serve(
        self,
        ready: tokio::sync::watch::Receiver<Readiness>,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), StartError> {
        let Application {
            services,
            listener,
            address,
            platform_listener,
            platform_address,
            tls,
            metrics,
            config,
        } = self;
        write_port_files(&config, address, platform_address).await?;
        let transport = if tls.is_some() {
            Transport::MutualTls
        } else {
            Transport::Plaintext
        };
        tracing::info!(
            bureau = %services.site.name, role = %config.role, %address, platform = %platform_address, ?transport,
            regions = ?services.site.hosted,
            metrics = ?metrics.as_ref().map(|m| yibao_runtime::prometheus::url(m.address)),
            "bureau started"
        );
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let rpc_metrics =
            serve_metrics(&config, &services, metrics, stopping(stopped.clone())).await?;
        let (routes, names) = api::routes(&services);
        let options = |tls: Option<_>| ServeOptions {
            tls,
            limits: config.limits.clone(),
            shutdown_timeout: config.shutdown_timeout(),
            rpc_metrics: rpc_metrics.clone(),
        };
        let main = yibao_runtime::server::serve(
            listener,
            routes,
            Contract {
                service_names: &names,
                descriptor_sets: &[api::FILE_DESCRIPTOR_SET],
            },
            options(None),
            ready.clone(),
            stopping(stopped.clone()),
        );
        let message_bytes = config.limits.platform_message_bytes as usize;
        let (platform_routes, platform_names) =
            api::platform_routes(&services, transport, message_bytes);
        let platform = yibao_runtime::server::serve(
            platform_listener,
            platform_routes,
            Contract {
                service_names: &platform_names,
                descriptor_sets: &[api::FILE_DESCRIPTOR_SET],
            },
            options(tls.as_ref().map(PlatformTls::server)),
            ready,
            stopping(stopped),
        );
        let result = until_stopped(main, platform, stop, shutdown).await;
        result.map_err(|e| StartError::Server(e.to_string()))
    }
}

/// The metrics endpoint, when `metrics_listen` is set: the process's recorder, labelled with
/// the bureau's role, and its listener bound.
async fn metrics(config: &ServiceConfig) -> Result<Option<Metrics>, StartError> {
    let Some(listen) = config.metrics_listen else {
        return Ok(None);
    };
    // The `bureau` label: the bureau's name (its role's, for the pair).
    let handle = yibao_runtime::prometheus::install(&config.bureau)
        .map_err(|e| StartError::Config(e.to_string()))?;
    crate::measure::describe();
    let (listener, address) = bind(listen).await?;
    Ok(Some(Metrics {
        listener,
        address,
        handle,
    }))
}

/// With metrics on: writes the metrics port file (when configured) and serves `/metrics` until
/// `stopped`, each scrape refreshing the gauges read from the store first. The layer that
/// counts the listeners' calls, on with metrics.
async fn serve_metrics(
    config: &ServiceConfig,
    services: &Arc<Services>,
    metrics: Option<Metrics>,
    stopped: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<RpcMetricsLayer, StartError> {
    let Some(metrics) = metrics else {
        return Ok(RpcMetricsLayer::off());
    };
    if let Some(path) = &config.metrics_port_file {
        yibao_runtime::server::write_port_file(path, metrics.address)
            .await
            .map_err(|e| StartError::Config(format!("metrics port file: {e}")))?;
    }
    let gauges = Arc::new(StoreGauges::default());
    let services = services.clone();
    let refresh: yibao_runtime::prometheus::Refresh = Arc::new(move || {
        let (gauges, services) = (gauges.clone(), services.clone());
        Box::pin(async move { gauges.refresh(&services).await })
    });
    tokio::spawn(yibao_runtime::prometheus::serve(
        metrics.listener,
        metrics.handle,
        refresh,
        stopped,
    ));
    Ok(RpcMetricsLayer::on())
}

/// Opens the store with its queue bounded as `[limits]` says.
fn open_store(config: &ServiceConfig) -> Result<Store, StartError> {
    let options = yibao_store::Options {
        queue_limit: config.limits.store_queue as usize,
        queue_wait_ms: config.limits.store_queue_wait_ms,
        ..yibao_store::Options::default()
    };
    let store = match &config.database_url {
        Some(url) => Store::open_url(url.expose(), &options)?,
        None => Store::open(&config.data_dir.join("bureau.sqlite3"), &options)?,
    };
    Ok(store)
}

/// The limits on watch streams, from `[limits]`.
fn stream_limits(config: &ServiceConfig) -> StreamLimits {
    StreamLimits {
        total: config.limits.watch_streams as usize,
        per_connection: config.limits.watch_streams_per_connection as usize,
        idle: config.limits.watch_idle_timeout(),
    }
}

/// Writes each listener's bound address to its port file, when configured.
async fn write_port_files(
    config: &ServiceConfig,
    address: SocketAddr,
    platform_address: SocketAddr,
) -> Result<(), StartError> {
    for (path, bound) in [
        (&config.port_file, address),
        (&config.platform_port_file, platform_address),
    ] {
        if let Some(path) = path {
            yibao_runtime::server::write_port_file(path, bound)
                .await
                .map_err(|e| StartError::Config(format!("port file: {e}")))?;
        }
    }
    Ok(())
}

/// Runs both servers until `shutdown` resolves or either of them stops (on an error too), then
/// tells both to stop through `stop` and waits for both.
async fn until_stopped(
    main: impl std::future::Future<Output = Result<(), ServerError>>,
    platform: impl std::future::Future<Output = Result<(), ServerError>>,
    stop: tokio::sync::watch::Sender<bool>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServerError> {
    let stop = &stop;
    let both = async {
        let (main, platform) = tokio::join!(
            async {
                let result = main.await;
                let _ = stop.send(true);
                result
            },
            async {
                let result = platform.await;
                let _ = stop.send(true);
                result
            },
        );
        main.and(platform)
    };
    tokio::pin!(both);
    tokio::select! {
        result = &mut both => result,
        () = shutdown => {
            let _ = stop.send(true);
            both.await
        }
    }
}

/// Resolves once `stopped` says stop (or its sender is gone).
async fn stopping(mut stopped: tokio::sync::watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// The fault rules, with those of the configured file in force.
/// The deliberate bug the bureau was started with (`YIBAO_BROKEN_FOR_TESTS`), said loudly.
fn broken() -> Result<Broken, StartError> {
    let broken = Broken::from_env().map_err(StartError::Config)?;
    if broken != Broken::No {
        tracing::error!(
            ?broken,
            "this bureau breaks the platform protocol ON PURPOSE ({}); for conformance tests only",
            crate::context::BROKEN_ENV
        );
    }
    Ok(broken)
}

fn fault_rules(config: &ServiceConfig, site: &Site) -> Result<Arc<FaultRules>, StartError> {
    let faults = Arc::new(FaultRules::new(site.connectivity_overrides.clone()));
    if let Some(path) = &config.faults {
        let added = faults.load_file(path).map_err(StartError::Config)?;
        tracing::warn!(rules = added, file = %path.display(), "fault rules in force");
    }
    Ok(faults)
}

/// The peer, reached over TLS when the platform is, sent batches unless configured not to.
/// The peers: one per bureau `peers` names, and the default (`peer_endpoint`) for the rest.
fn peers(config: &ServiceConfig, tls: Option<&PlatformTls>) -> Peers {
    let peer = |endpoint: &str| {
        let peer = Peer::new(endpoint.to_owned(), tls.map(PlatformTls::client));
        match config.peer_batches {
            yibao_runtime::config::PeerBatches::Auto => peer,
            yibao_runtime::config::PeerBatches::Never => peer.single_messages_only(),
        }
    };
    let named = config
        .peers
        .iter()
        .map(|(name, endpoint)| (name.clone(), peer(endpoint)))
        .collect();
    Peers::named(peer(&config.peer_endpoint), named)
}

/// The bureaus a directory names, for an error message.
fn names(directory: &RegionDirectory) -> String {
    let names: Vec<String> = directory
        .bureaus()
        .iter()
        .map(ToString::to_string)
        .collect();
    if names.is_empty() {
        "no bureau".to_owned()
    } else {
        names.join(", ")
    }
}

/// Binds `address`, naming it in the error.
async fn bind(address: SocketAddr) -> Result<(TcpListener, SocketAddr), StartError> {
    yibao_runtime::server::bind(address)
        .await
        .map_err(|source| StartError::Bind { address, source })
}

/// The platform's TLS identity, unless plaintext; its certificate must name every region this
/// bureau hosts, or the peer would refuse what it sends.
fn platform_tls(
    config: &ServiceConfig,
    hosted: &[RegionCode],
) -> Result<Option<PlatformTls>, StartError> {
    let Some(files) = config.tls_files() else {
        return Ok(None);
    };
    let tls = PlatformTls::load(&files).map_err(|e| StartError::Config(e.to_string()))?;
    let missing: Vec<String> = hosted
        .iter()
        .filter(|region| !tls.regions().contains(region))
        .map(ToString::to_string)
        .collect();
    if !missing.is_empty() {
        return Err(StartError::Config(format!(
            "tls_cert {}: does not name hosted region(s) {} (yibao certs names them as \
             urn:yibao:region:<code>)",
            files.cert.display(),
            missing.join(", ")
        )));
    }
    Ok(Some(tls))
}

/// The entry point of both binaries.
pub async fn main_for(
    role: BureauRole,
    args: yibao_runtime::config::ServiceArgs,
) -> std::process::ExitCode {
    let config = match ServiceConfig::load(role, &args) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{role}: configuration: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    let export = yibao_runtime::telemetry::TraceExport {
        // The service name is the bureau's role.
        service_name: role.as_str().to_owned(),
        otlp_endpoint: config.otlp_endpoint.clone(),
        trace_file: config.trace_file.clone(),
    };
    let telemetry = match yibao_runtime::telemetry::init(config.log_format, &export) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("{role}: traces: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    if config.otlp_endpoint.is_some() || config.trace_file.is_some() {
        tracing::info!(
            otlp_endpoint = config.otlp_endpoint.as_deref().unwrap_or("-"),
            trace_file = %config.trace_file.as_deref().unwrap_or(std::path::Path::new("-")).display(),
            "traces exported"
        );
    }
    let code = run(config).await;
    // Graceful stop: the spans still queued are exported (a SIGKILL loses them).
    telemetry.shutdown();
    code
}

/// Builds the bureau and serves until a shutdown signal.
async fn run(config: ServiceConfig) -> std::process::ExitCode {
    let application = match Application::build(config).await {
        Ok(application) => application,
        Err(error) => {
            tracing::error!(%error, "cannot start");
            return std::process::ExitCode::FAILURE;
        }
    };
    match application
        .run_until_stopped(yibao_runtime::server::shutdown_signal())
        .await
    {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "stopped with an error");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The service clock: the system's, or (when configured) a test clock resuming at the offset
/// it was last moved to.
async fn open_clock(config: &ServiceConfig, store: &Store) -> Result<Clock, StartError> {
    if !config.test_clock {
        return Ok(Clock::system());
    }
    let stored = store.read(|tx| tx.setting("clock_offset_ms")).await?;
    let offset_ms = match stored {
        None => 0,
        Some(text) => text.parse::<i64>().map_err(|_| {
            StartError::Config(format!("stored clock offset {text:?} is not a number"))
        })?,
    };
    Clock::adjustable(chrono::Duration::milliseconds(offset_ms))
        .map_err(|e| StartError::Config(e.to_string()))
}
