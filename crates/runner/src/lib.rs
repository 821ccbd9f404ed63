//! The ai-review runner.
//!
//! * [`config`]: the seed page's environment variables, validated together.
//! * [`engine`]: the container-engine interface; [`docker`] implements it
//!   over the Docker Engine API, [`fake`] in memory for tests.
//! * [`git`]: per-task workspaces and safe clones of untrusted repositories.
//! * [`agent`]: registration, heartbeats, the poller, the warm pool, task
//!   execution, leftover reaping and graceful drain.

pub mod agent;
pub mod config;
pub mod docker;
pub mod engine;
pub mod fake;
pub mod git;
pub mod logs;
