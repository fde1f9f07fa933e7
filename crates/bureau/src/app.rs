//! Starting and stopping a bureau: `Application::build` opens the store, migrates old data,
//! reads the directory and calendar and binds the listener (so tests can bind port 0);
//! `run_until_stopped` serves until shutdown, with the outbox dispatcher beside it.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use yibao_runtime::clock::Clock;
use yibao_runtime::config::ServiceConfig;
use yibao_runtime::directory::{BureauRole, RegionDirectory};
use yibao_store::Store;

use crate::bank::SimulatedBank;
use crate::context::Site;
use crate::outbox::dispatcher;
use crate::peer::Peer;
use crate::services::{Admin, Services};
use crate::{api, migrate};

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
    config: ServiceConfig,
}

impl Application {
    /// Opens the store (and migrates what an earlier release left), reads the directory and
    /// calendar, binds the listener.
    pub async fn build(config: ServiceConfig) -> Result<Self, StartError> {
        let directory = RegionDirectory::load(&config.directory)
            .map_err(|e| StartError::Config(e.to_string()))?;
        let store = Store::open(
            &config.data_dir.join("bureau.sqlite3"),
            &yibao_store::Options::default(),
        )?;
        let clock = open_clock(&config, &store).await?;
        let (calendar, _) =
            yibao_runtime::calendar::load_calendar(config.calendar_dir.as_deref(), clock.today())
                .map_err(|e| StartError::Config(e.to_string()))?;
        let hosted = directory.hosted_by(config.role);
        let Some(first) = hosted.first() else {
            return Err(StartError::Config(format!(
                "the region directory gives {} no region to host",
                config.role
            )));
        };
        let number = match config.role {
            BureauRole::TransferOut => 1,
            BureauRole::TransferIn => 2,
        };
        let institution = format!("B{first}{number:05}");
        let (listener, address) =
            yibao_runtime::server::bind(config.listen)
                .await
                .map_err(|source| StartError::Bind {
                    address: config.listen,
                    source,
                })?;
        let site = Site {
            role: config.role,
            hosted,
            institution,
            directory,
            calendar,
            default_policy: Default::default(),
        };
        let services = Arc::new(Services {
            site: Arc::new(site),
            store,
            clock,
            peer: Peer::new(config.peer_endpoint.clone()),
            bank: Arc::new(SimulatedBank::new(config.bank.failure_every)),
            watchers: Arc::default(),
            dispatch_now: tokio::sync::Notify::new(),
            admin: if config.admin_enabled {
                Admin::Enabled
            } else {
                Admin::Disabled
            },
            admin_token: config.admin_token.clone(),
        });
        migrate::run(&services)
            .await
            .map_err(|error| StartError::Migration(error.to_string()))?;
        Ok(Self {
            services,
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
            services,
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
            services.clone(),
            settings,
            dispatcher_stopped,
        ));
        let (routes, names) = api::routes(&services);
        if let Some(path) = &config.port_file {
            yibao_runtime::server::write_port_file(path, address)
                .await
                .map_err(|e| StartError::Config(format!("port file: {e}")))?;
        }
        tracing::info!(role = %config.role, %address, regions = ?services.site.hosted, "bureau started");
        let served = yibao_runtime::server::serve(
            listener,
            routes,
            &names,
            &[api::FILE_DESCRIPTOR_SET],
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
