//! [`Application`]: the listeners, the app factories and the sweeper, built
//! from [`Settings`] and run until a signal stops them.

use std::io;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::{from_fn, Condition};
use actix_web::{web, App, HttpServer};
use secrecy::SecretString;
use stream_limit_core::{spawn_observed_sweeper, LeaseStore, StreamLimiter};
use tokio::task::JoinHandle;

use crate::metrics::requests::count_requests;
use crate::metrics::{InstrumentedStore, Metrics};
use crate::middleware::{access_log, access_log_enabled, json_errors};
use crate::routes::admin::{self, AdminKey};
use crate::routes::health::Readiness;
use crate::settings::{ServerSettings, Settings};
use crate::store::{OpenedStore, StoreSetupError};
use crate::{extract, routes};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The configured store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreSetupError),
    /// The metrics registry could not be set up.
    #[error("could not set up metrics")]
    Metrics(#[source] prometheus::Error),
    /// A listener could not be bound.
    #[error("could not listen on {address}")]
    Bind {
        /// `host:port` as configured.
        address: String,
        /// The operating system's reason.
        #[source]
        source: io::Error,
    },
}

/// The running service: the public listener, the optional admin listener and
/// the background sweeper. Build it, read [`Application::port`], then await
/// [`Application::run_until_stopped`].
pub struct Application {
    port: u16,
    admin_port: Option<u16>,
    server: Server,
    admin: Option<Server>,
    sweeper: AbortOnDrop,
    dispatcher_log: AbortOnDrop,
}

/// Stops an [`Application`] from elsewhere (tests, embedding).
#[derive(Clone)]
pub struct StopHandle(ServerHandle);

impl StopHandle {
    /// Stops the public listener (gracefully: in-flight requests finish within
    /// `server.shutdown_timeout_secs`); the admin listener and the sweeper follow.
    pub async fn stop(&self, graceful: bool) {
        self.0.stop(graceful).await;
    }
}

impl Application {
    /// Opens the store named by `settings` (see [`crate::store::open`]) and binds
    /// the listeners. Port `0` binds a free port.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let opened = crate::store::open(&settings).await?;
        Self::assemble(settings, opened).await
    }

    /// Like [`Application::build`] over a store made by the caller: tests pass
    /// an `InMemoryStore` on a `ManualClock`, or a mock store.
    /// Must run inside a tokio runtime (it spawns the sweeper).
    pub async fn with_store(
        settings: Settings,
        store: Arc<dyn LeaseStore>,
    ) -> Result<Self, StartupError> {
        let opened = OpenedStore {
            store,
            batch_sizes: None,
        };
        Self::assemble(settings, opened).await
    }

    /// The one place the parts are wired: the store, then its
    /// instrumentation, then the limiter and the sweeper over the
    /// instrumented store, then the listeners.
    async fn assemble(settings: Settings, opened: OpenedStore) -> Result<Self, StartupError> {
        // store_up holds a 0 across at least two sweeper ticks, so that an
        // idle instance whose store is gone shows 0 at every scrape.
        let unreachable_hold =
            (settings.sweeper_config().interval * 2).max(Duration::from_secs(60));
        let metrics =
            Metrics::new(opened.batch_sizes, unreachable_hold).map_err(StartupError::Metrics)?;
        // Every store, whatever the caller built, is measured the same way.
        let store: Arc<dyn LeaseStore> =
            Arc::new(InstrumentedStore::new(opened.store, Arc::clone(&metrics)));
        let limiter = web::Data::new(StreamLimiter::new(
            Arc::clone(&store),
            settings.limiter_config(),
        ));
        let observed = Arc::clone(&metrics);
        let metrics = web::Data::new(metrics);
        let sweeper = AbortOnDrop(spawn_observed_sweeper(
            store,
            settings.sweeper_config(),
            move |tick| observed.record_tick(tick),
        ));

        // Bind everything before starting any server, so that a failed bind
        // leaves no worker threads behind.
        let listener = bind(&settings.server.host, settings.server.port)?;
        let port = local_port(&listener, &settings.server.host)?;
        let admin_listener = match &settings.admin.api_key {
            None => {
                tracing::info!("admin.api_key is not set: the admin listener is disabled");
                None
            }
            Some(key) => {
                let admin_listener = bind(&settings.admin.host, settings.admin.port)?;
                let admin_port = local_port(&admin_listener, &settings.admin.host)?;
                Some((admin_listener, admin_port, key.clone()))
            }
        };

        let server = public_server(listener, &settings.server, limiter.clone(), metrics)
            .map_err(|source| bind_error(&settings.server.host, port, source))?;
        let (admin, admin_port) = match admin_listener {
            None => (None, None),
            Some((admin_listener, admin_port, key)) => {
                let admin = admin_server(admin_listener, &settings.server, limiter.clone(), key)
                    .map_err(|source| bind_error(&settings.admin.host, admin_port, source))?;
                (Some(admin), Some(admin_port))
            }
        };
        tracing::info!(
            host = %settings.server.host, port, admin_port,
            limits = ?limiter.config(),
            "stream-limit listening"
        );
        Ok(Self {
            port,
            admin_port,
            server,
            admin,
            sweeper,
            dispatcher_log: AbortOnDrop(tokio::spawn(crate::telemetry::report_dispatcher_errors())),
        })
    }

    /// The public listener's port (the bound one, when configured as `0`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The admin listener's port, or `None` when no `admin.api_key` is set.
    pub fn admin_port(&self) -> Option<u16> {
        self.admin_port
    }

    /// A handle that stops this application.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.server.handle())
    }

    /// Serves until SIGTERM or SIGINT, or a [`StopHandle`]. A signal stops
    /// accepting connections and lets in-flight requests finish (within
    /// `server.shutdown_timeout_secs`); a second signal stops at once. Then
    /// stops the admin listener and the sweeper.
    pub async fn run_until_stopped(self) -> io::Result<()> {
        let Self {
            server,
            admin,
            sweeper,
            dispatcher_log,
            ..
        } = self;
        let admin = admin.map(|admin| (admin.handle(), tokio::spawn(admin)));
        let handles = [
            Some(server.handle()),
            admin.as_ref().map(|(h, _)| h.clone()),
        ];
        let forced = Arc::new(tokio::sync::Notify::new());
        let signals = AbortOnDrop(tokio::spawn(stop_on_signals(
            handles.into_iter().flatten().collect(),
            Arc::clone(&forced),
        )));
        let result = tokio::select! {
            result = server => result,
            // actix-server reads no command while it drains, so a second stop
            // would wait for the drain: return instead, and the process exits
            // with the requests still in flight.
            () = forced.notified() => {
                tracing::warn!("second shutdown signal: stopped without waiting for in-flight requests");
                return Ok(());
            }
        };
        drop(signals);
        if let Some((handle, task)) = admin {
            handle.stop(true).await;
            match task.await {
                Ok(Err(error)) => tracing::error!(%error, "admin listener failed"),
                Err(error) => tracing::error!(%error, "admin listener task failed"),
                Ok(Ok(())) => {}
            }
        }
        drop((sweeper, dispatcher_log));
        tracing::info!("stream-limit stopped");
        result
    }
}

/// The first SIGTERM or SIGINT drains the servers, all at once, so a stop
/// takes at most one `server.shutdown_timeout_secs`; a second signal stops
/// them now. (actix's own handling would stop at once on SIGINT, dropping
/// requests.)
async fn stop_on_signals(servers: Vec<ServerHandle>, forced: Arc<tokio::sync::Notify>) {
    shutdown_signal().await;
    tracing::info!("shutdown signal: draining in-flight requests (a second signal stops at once)");
    // `stop` sends its command at once; the futures only wait for it.
    let stopping: Vec<_> = servers.iter().map(|s| s.stop(true)).collect();
    let drained = async move {
        for stopped in stopping {
            stopped.await;
        }
    };
    tokio::select! {
        () = drained => {}
        () = shutdown_signal() => forced.notify_one(),
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM; only SIGINT stops the server");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

/// Aborts a background task (the sweeper, the signal watcher) when the
/// application goes away, however it goes.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn bind(host: &str, port: u16) -> Result<TcpListener, StartupError> {
    TcpListener::bind((host, port)).map_err(|source| bind_error(host, port, source))
}

fn local_port(listener: &TcpListener, host: &str) -> Result<u16, StartupError> {
    listener
        .local_addr()
        .map(|address| address.port())
        .map_err(|source| bind_error(host, 0, source))
}

fn bind_error(host: &str, port: u16, source: io::Error) -> StartupError {
    StartupError::Bind {
        address: format!("{host}:{port}"),
        source,
    }
}

fn public_server(
    listener: TcpListener,
    server: &ServerSettings,
    limiter: web::Data<StreamLimiter>,
    metrics: web::Data<Arc<Metrics>>,
) -> io::Result<Server> {
    let max_body = server.max_body_bytes;
    let log_requests = access_log_enabled();
    let readiness = web::Data::new(Readiness::default());
    let mut http = HttpServer::new(move || {
        App::new()
            .app_data(limiter.clone())
            .app_data(metrics.clone())
            .app_data(readiness.clone())
            .configure(extract::configure(max_body))
            .configure(routes::configure)
            .wrap(json_errors())
            .wrap(from_fn(count_requests))
            .wrap(Condition::new(log_requests, from_fn(access_log)))
    })
    // Signals are ours (see `stop_on_signals`): both SIGTERM and SIGINT drain.
    .disable_signals()
    .shutdown_timeout(server.shutdown_timeout_secs)
    .listen(listener)?;
    if server.workers > 0 {
        http = http.workers(server.workers);
    }
    Ok(http.run())
}

/// The admin app: one worker, no signal handling of its own
/// ([`Application::run_until_stopped`] stops it after the public listener).
fn admin_server(
    listener: TcpListener,
    server: &ServerSettings,
    limiter: web::Data<StreamLimiter>,
    key: SecretString,
) -> io::Result<Server> {
    let max_body = server.max_body_bytes;
    let key = AdminKey(key);
    let http = HttpServer::new(move || {
        App::new()
            .app_data(limiter.clone())
            .app_data(key.clone())
            .configure(extract::configure(max_body))
            .configure(admin::configure)
            .wrap(from_fn(admin::require_api_key))
            .wrap(json_errors())
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(server.shutdown_timeout_secs)
    .listen(listener)?;
    Ok(http.run())
}
