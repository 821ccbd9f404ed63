//! Wire types of ai-review, shared by the server and its clients.
//!
//! * [`envelope`]: the JSON envelope of every `/api` response.
//! * [`runner`]: the runner ⇄ server protocol (registration, heartbeats,
//!   long-poll claims, phases, logs, results), documented call by call.
//! * [`api`]: request and response bodies of the user-facing API.
//! * [`client`]: a typed HTTP client for the runner protocol.

pub mod api;
pub mod client;
pub mod configs;
pub mod envelope;
pub mod notifications;
pub mod projects;
pub mod runner;

pub use envelope::{ApiErrorBody, Envelope, Meta, Pagination};
