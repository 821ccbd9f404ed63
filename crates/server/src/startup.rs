//! Opening the store and running the server (and stopping it) — the same
//! path for `ai-review server` and the tests.

use crate::app::{AppState, router};
use crate::clock::DynClock;
use crate::config::Settings;
use crate::queue::run_reaper;
use ai_review_store::{DynStore, StoreError};
use ai_review_store_postgres::PgStore;
use ai_review_store_sqlite::SqliteStore;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenStoreError {
    /// The URL names no supported database.
    #[error("DATABASE_URL must start with sqlite:// or postgres:// (got {0:?})")]
    UnsupportedUrl(String),
    /// The data directory could not be created.
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The database refused or failed.
    #[error("cannot open the {backend} database: {source}")]
    Store {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// Why.
        #[source]
        source: StoreError,
    },
}

/// Opens the store named by `url` (`sqlite://…` or `postgres://…`),
/// creating the SQLite file's directory if needed, and runs migrations.
pub async fn open_store(url: &str) -> Result<DynStore, OpenStoreError> {
    open(url, true).await
}

/// Like [`open_store`], but a SQLite database is opened without taking
/// its server lock: for short-lived admin commands (`ai-review admin …`)
/// that may run beside the server. Never for a server.
pub async fn open_store_beside_server(url: &str) -> Result<DynStore, OpenStoreError> {
    open(url, false).await
}

async fn open(url: &str, lock: bool) -> Result<DynStore, OpenStoreError> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let file = path.split('?').next().unwrap_or(path);
        if let Some(dir) = Path::new(file)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|source| OpenStoreError::DataDir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let s = if lock {
            SqliteStore::connect(url).await
        } else {
            SqliteStore::connect_unlocked(url).await
        }
        .map_err(|source| OpenStoreError::Store {
            backend: "sqlite",
            source,
        })?;
        Ok(Arc::new(s))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let s = PgStore::connect(url)
            .await
            .map_err(|source| OpenStoreError::Store {
                backend: "postgres",
                source,
            })?;
        Ok(Arc::new(s))
    } else {
        let shown = url.split('@').next_back().unwrap_or("").to_owned();
        Err(OpenStoreError::UnsupportedUrl(shown))
    }
}

/// A server running in this process.
pub struct RunningServer {
    /// The bound address (port 0 resolved).
    pub addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    /// The shared state (tests drive the reaper through it).
    pub state: AppState,
    shutdown: watch::Sender<bool>,
    http: JoinHandle<std::io::Result<()>>,
    reaper: Option<JoinHandle<()>>,
}

impl RunningServer {
    /// Binds `settings.listen` and serves. With `background_reaper` false
    /// neither the reaper nor the push-back and notification workers run by
    /// themselves; call [`crate::queue::reap_once`],
    /// [`crate::pushback::run::push_once`] and [`crate::notify::notify_once`]
    /// (tests).
    pub async fn start(
        settings: Settings,
        store: DynStore,
        clock: DynClock,
        background_reaper: bool,
    ) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(settings.listen).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = watch::channel(false);
        let state = AppState::new(settings, store, clock, rx.clone());
        let app = router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let mut stop = rx.clone();
        let metrics = match state.settings.metrics_listen {
            Some(at) => {
                let l = tokio::net::TcpListener::bind(at).await?;
                let metrics_addr = l.local_addr()?;
                let app = axum::Router::new()
                    .route("/metrics", axum::routing::get(crate::app::metrics_page))
                    .with_state(state.clone());
                let mut stop = rx.clone();
                tracing::info!(metrics.addr = %metrics_addr, "metrics listening");
                tokio::spawn(async move {
                    let _ = axum::serve(l, app)
                        .with_graceful_shutdown(async move {
                            let _ = stop.wait_for(|s| *s).await;
                        })
                        .await;
                });
                Some(metrics_addr)
            }
            None => None,
        };
        let http = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await
        });
        // Long-polls need other replicas' wake-ups whether or not this
        // process runs the background workers.
        tokio::spawn(crate::queue::relay_announcements(state.clone()));
        let reaper = background_reaper.then(|| {
            let pusher = tokio::spawn(crate::pushback::run::run_pusher(
                state.clone(),
                std::time::Duration::from_secs(1),
                rx.clone(),
            ));
            let notifier = tokio::spawn(crate::notify::run_notifier(
                state.clone(),
                std::time::Duration::from_secs(1),
                rx.clone(),
            ));
            let reaper = tokio::spawn(run_reaper(state.clone()));
            tokio::spawn(async move {
                let _ = pusher.await;
                let _ = notifier.await;
                let _ = reaper.await;
            })
        });
        tracing::info!(listen.addr = %addr, database = state.store.backend_name(), "server listening");
        Ok(Self {
            addr,
            metrics_addr: metrics,
            state,
            shutdown: tx,
            http,
            reaper,
        })
    }

    /// The metrics listener's address, when `METRICS_ADDR` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, ends long-polls, waits for in-flight requests.
    pub async fn stop(self) -> std::io::Result<()> {
        let _ = self.shutdown.send(true);
        if let Some(r) = self.reaper {
            let _ = r.await;
        }
        self.http.await.map_err(std::io::Error::other)?
    }

    /// Waits until the server stops by itself (it does not unless stopped).
    pub async fn wait(&mut self) -> std::io::Result<()> {
        (&mut self.http).await.map_err(std::io::Error::other)?
    }

    /// A handle that triggers shutdown (for signal handlers).
    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }
}
