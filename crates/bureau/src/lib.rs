//! A bureau of the transfer handshake: the service both binaries run.
//!
//! The `transfer-out` and `transfer-in` binaries are this crate with a role. **Changed from
//! DESIGN.md:** one crate holds both sides' drivers, because every real bureau is the
//! transfer-out bureau for some people and the transfer-in bureau for others, and almost all of
//! the code (store, outbox, idempotent inbox, queries, admin) is shared. The role decides the
//! default address, the data directory and which regions of the directory the process hosts.
//!
//! Layout: `api/` holds the thin gRPC handlers; `out` and `inn` drive the two state machines
//! inside one store transaction per step; `dispatcher` moves the outbox; `record` and
//! `document` are what is stored; `convert` is the one place wire and domain types meet.

pub mod api;
pub mod convert;
pub mod dispatcher;
pub mod document;
pub mod error;
pub mod inn;
pub mod messages;
pub mod out;
pub mod record;
pub mod state;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use yibao_proto::admin::v1::admin_service_server::AdminServiceServer;
use yibao_proto::bureau::v1::bureau_service_server::BureauServiceServer;
use yibao_proto::platform::v1::transfer_in_platform_service_server::TransferInPlatformServiceServer;
use yibao_proto::platform::v1::transfer_out_platform_service_server::TransferOutPlatformServiceServer;
use yibao_runtime::clock::Clock;
use yibao_runtime::config::ServiceConfig;
use yibao_runtime::directory::{BureauRole, RegionDirectory};
use yibao_store::Store;

use crate::state::{Bureau, Peer};

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
    /// Serving failed.
    #[error("server: {0}")]
    Server(String),
}

/// A bureau bound to its listener, ready to run (mini-redis / zero-to-production shape).
#[derive(Debug)]
pub struct Application {
    bureau: Arc<Bureau>,
    listener: TcpListener,
    address: SocketAddr,
    config: ServiceConfig,
}

impl Application {
    /// Opens the store, reads the directory and calendar, binds the listener.
    pub async fn build(config: ServiceConfig) -> Result<Self, StartError> {
        let directory = RegionDirectory::load(&config.directory)
            .map_err(|e| StartError::Config(e.to_string()))?;
        let store = Store::open(
            &config.data_dir.join("bureau.sqlite3"),
            &yibao_store::Options::default(),
        )?;
        let clock = if config.test_clock {
            let offset_ms = store
                .read(|tx| tx.setting("clock_offset_ms"))
                .await?
                .and_then(|text| text.parse::<i64>().ok())
                .unwrap_or(0);
            Clock::adjustable(chrono::Duration::milliseconds(offset_ms))
                .map_err(|e| StartError::Config(e.to_string()))?
        } else {
            Clock::system()
        };
        let (calendar, _) =
            yibao_runtime::calendar::load_calendar(config.calendar_dir.as_deref(), clock.today())
                .map_err(|e| StartError::Config(e.to_string()))?;
        let hosted = directory.hosted_by(config.role);
        if hosted.is_empty() {
            return Err(StartError::Config(format!(
                "the region directory gives {} no region to host",
                config.role
            )));
        }
        let institution = format!(
            "B{}{:05}",
            hosted[0],
            if config.role == BureauRole::TransferOut {
                1
            } else {
                2
            }
        );
        let (listener, address) =
            yibao_runtime::server::bind(config.listen)
                .await
                .map_err(|source| StartError::Bind {
                    address: config.listen,
                    source,
                })?;
        let bureau = Arc::new(Bureau {
            role: config.role,
            store,
            clock,
            directory: Arc::new(directory),
            calendar: Arc::new(calendar),
            hosted,
            institution,
            peer: Peer::new(config.peer_endpoint.clone()),
            watchers: Arc::default(),
            dispatch_now: tokio::sync::Notify::new(),
            admin_enabled: config.admin_enabled,
            bank_failure_every: config.bank.failure_every,
            bank_calls: std::sync::atomic::AtomicU64::new(0),
        });
        Ok(Self {
            bureau,
            listener,
            address,
            config,
        })
    }

    /// The bound address (useful with port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves until `shutdown` resolves, then stops accepting, stops the dispatcher and closes
    /// the store (queued writes finish first).
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), StartError> {
        let Application {
            bureau,
            listener,
            address,
            config,
        } = self;
        let settings = dispatcher::Settings {
            batch_limit: config.dispatcher.batch_limit,
            attempt_timeout: config.dispatcher.attempt_timeout(),
            backoff: config
                .dispatcher
                .backoff()
                .map_err(|e| StartError::Config(e.to_string()))?,
            idle_poll: config.dispatcher.idle_poll(),
            concurrency: config.dispatcher.batches_in_flight as usize,
        };
        let (stop_dispatcher, dispatcher_stopped) = tokio::sync::watch::channel(false);
        let dispatcher = tokio::spawn(dispatcher::run(
            bureau.clone(),
            settings,
            dispatcher_stopped,
        ));
        let platform = api::platform::PlatformApi::new(bureau.clone());
        let mut routes = tonic::service::Routes::new(BureauServiceServer::new(
            api::bureau::BureauApi::new(bureau.clone()),
        ))
        .add_service(TransferOutPlatformServiceServer::new(platform.clone()))
        .add_service(TransferInPlatformServiceServer::new(platform));
        let mut names = vec![
            "yibao.bureau.v1.BureauService",
            "yibao.platform.v1.TransferOutPlatformService",
            "yibao.platform.v1.TransferInPlatformService",
        ];
        if bureau.admin_enabled {
            routes = routes.add_service(AdminServiceServer::new(api::admin::AdminApi::new(
                bureau.clone(),
            )));
            names.push("yibao.admin.v1.AdminService");
        }
        if let Some(path) = &config.port_file {
            yibao_runtime::server::write_port_file(path, address)
                .await
                .map_err(|e| StartError::Config(format!("port file: {e}")))?;
        }
        tracing::info!(role = %config.role, %address, regions = ?bureau.hosted, "bureau started");
        let served = yibao_runtime::server::serve(
            listener,
            routes,
            &names,
            shutdown,
            config.shutdown_timeout(),
        )
        .await;
        let _ = stop_dispatcher.send(true);
        let _ = tokio::time::timeout(config.shutdown_timeout(), dispatcher).await;
        served.map_err(|e| StartError::Server(e.to_string()))
    }
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
    yibao_runtime::server::init_tracing(config.log_format);
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
