//! The container engine interface: everything the runner needs from Docker,
//! and nothing more, so the runner's logic can be tested against
//! [`crate::fake::FakeEngine`] without a daemon and run for real against
//! [`crate::docker::DockerEngine`].

use async_trait::async_trait;
use futures::stream::BoxStream;
use std::collections::HashMap;
use std::path::PathBuf;

/// Label carrying the runner id on every container the runner creates.
pub const LABEL_RUNNER: &str = "ai-review.runner";
/// Label carrying the workspace slot name.
pub const LABEL_SLOT: &str = "ai-review.slot";
/// Label marking warm-pool containers.
pub const LABEL_POOL: &str = "ai-review.pool";

/// Hardening and resource limits applied to every review container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Memory limit in bytes (swap limited to the same).
    pub memory_bytes: i64,
    /// CPU limit in nano-CPUs.
    pub nano_cpus: i64,
    /// Maximum number of processes.
    pub pids_limit: i64,
    /// Network mode (`none` by default).
    pub network_mode: String,
    /// `uid:gid` the container runs as (never root).
    pub user: String,
    /// Size of the writable `/tmp` tmpfs, bytes.
    pub tmpfs_bytes: i64,
}

/// One container to create.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    /// Container name (unique per host).
    pub name: String,
    /// Image.
    pub image: String,
    /// Entrypoint override (`None`: the image's, i.e. the executor).
    pub entrypoint: Option<Vec<String>>,
    /// Command (arguments to the entrypoint).
    pub cmd: Vec<String>,
    /// Environment (`KEY=value`); never secrets.
    pub env: Vec<String>,
    /// Labels (runner, slot, pool).
    pub labels: HashMap<String, String>,
    /// Host directory bind-mounted read-only at `/workspace`.
    pub workspace: PathBuf,
    /// Limits and hardening.
    pub limits: Limits,
}

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    /// Standard output (the executor's JSON result).
    Stdout,
    /// Standard error (progress, streamed to the task log).
    Stderr,
}

/// A piece of container output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputChunk {
    /// Stream.
    pub stream: OutputStream,
    /// Bytes as written (not necessarily whole lines).
    pub bytes: Vec<u8>,
}

/// How a container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    /// Exit code (137 after SIGKILL).
    pub code: i64,
    /// The kernel's OOM killer fired in the container.
    pub oom_killed: bool,
}

/// A container found by label (leftovers of an earlier life).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    /// Engine id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: HashMap<String, String>,
}

/// Why an engine call failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The engine does not answer.
    #[error(
        "the Docker engine at {host} does not answer: {detail}; start dockerd or set DOCKER_HOST"
    )]
    Unreachable {
        /// Where we looked.
        host: String,
        /// Why.
        detail: String,
    },
    /// The executor image is missing.
    #[error(
        "the executor image {0} is not present; build it with scripts/build-images.sh (no registry is used)"
    )]
    ImageMissing(String),
    /// Any other engine error.
    #[error("Docker engine error: {0}")]
    Other(String),
}

/// The operations the runner needs from a container engine.
#[async_trait]
pub trait ContainerEngine: Send + Sync + 'static {
    /// Checks the engine answers and `image` exists.
    async fn check(&self, image: &str) -> Result<(), EngineError>;
    /// Creates a container (not started); returns its id.
    async fn create(&self, spec: &ContainerSpec) -> Result<String, EngineError>;
    /// Starts a created container.
    async fn start(&self, id: &str) -> Result<(), EngineError>;
    /// Follows the container's output from its start until it exits.
    fn output(&self, id: &str) -> BoxStream<'static, Result<OutputChunk, EngineError>>;
    /// Waits for the container to exit and reports how.
    async fn wait(&self, id: &str) -> Result<ExitStatus, EngineError>;
    /// Kills the container (no error if it already stopped).
    async fn kill(&self, id: &str) -> Result<(), EngineError>;
    /// Removes the container, killing it if needed (no error if gone).
    async fn remove(&self, id: &str) -> Result<(), EngineError>;
    /// Every container (running or not) with label `key=value`.
    async fn list_labelled(
        &self,
        key: &str,
        value: &str,
    ) -> Result<Vec<ContainerInfo>, EngineError>;
}
