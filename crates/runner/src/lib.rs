//! The ai-review runner.
//!
//! * [`config`]: the seed page's environment variables, validated together.
//! * [`engine`]: the container-engine interface; [`docker`] implements it
//!   over the Docker Engine API, [`fake`] in memory for tests.
//! * [`git`]: per-task workspaces and safe clones of untrusted repositories.
//! * [`gateway`]: the per-task model gateway on the workspace's Unix
//!   socket (provider translation, key, retries, budget, usage, cache).
//! * [`agent`]: registration, heartbeats, the poller, the warm pool, task
//!   execution, leftover reaping and graceful drain.
//! * [`metrics`]: the runner's Prometheus metrics on `RUNNER_METRICS_ADDR`.

pub mod agent;
pub mod config;
pub mod docker;
pub mod engine;
pub mod fake;
pub mod gateway;
pub mod git;
pub mod logs;
pub mod metrics;
