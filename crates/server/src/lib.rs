//! The ai-review server.
//!
//! * [`config`]: every setting, from flags and environment variables.
//! * [`app`]: the router, its middleware, and [`app::AppState`].
//! * [`auth`]: API-key and session authentication, permission checks.
//! * [`dashboard`]: the web dashboard (server-rendered pages, SSE).
//! * [`error`]: the one error type handlers return, rendered as the API envelope.
//! * [`routes`]: the handlers, one module per resource.
//! * [`queue`]: long-poll wake-ups and the background reaper.
//! * [`notify`]: notification settings, events and the delivery worker.
//! * [`startup`]: opening the store and running (and stopping) the server.
//! * [`clock`]: the time source (real, or manual in tests).
//! * [`passwords`]: Argon2id password hashing.

pub mod app;
pub mod auth;
pub mod clock;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod notify;
pub mod openapi;
pub mod passwords;
pub mod pushback;
pub mod queue;
pub mod rate_limit;
pub mod request_id;
pub mod resolve;
pub mod routes;
pub mod secrets;
pub mod startup;
pub mod webhooks;

pub use config::ServerConfig;
pub use startup::{RunningServer, open_store, open_store_beside_server};
