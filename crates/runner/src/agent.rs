//! The runner process: registration, heartbeats (health monitor), the
//! poller, the warm pool, per-task execution in a container, leftover
//! reaping after a restart, and graceful drain.

use crate::config::RunnerConfig;
use crate::engine::*;
use crate::gateway::{self, Gateway, GatewayConfig, GatewayStartError, RetryPolicy};
use crate::git::{self, CloneError, CloneRequest};
use crate::logs::LogBuffer;
use crate::metrics::{Gauges, Metrics, StartSource, TaskEnd};
use ai_review_domain::{Attempt, Phase, RunnerStatus, SecretString, TaskId, TaskOutcome};
use ai_review_executor::gateway::GATEWAY_SOCKET;
use ai_review_executor::{
    CONTRACT_VERSION, ExecutorTask, ModelSettings, REPO_DIR, ReviewSettings, RuleSettings,
    TASK_FILE, TemplateSettings,
};
use ai_review_protocol::client::{ClientError, Registration, RunnerClient};
use ai_review_protocol::runner::{AiConfigSpec, RegisterResponse, TaskAssignment, TaskSpec};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// The runner's version, sent at registration.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Most executor stdout kept (the JSON result).
const MAX_STDOUT_BYTES: usize = 32 * 1024 * 1024;
/// Size of the container's writable `/tmp`.
const TMPFS_BYTES: i64 = 64 * 1024 * 1024;
/// The unprivileged user review containers run as.
const CONTAINER_USER: &str = "65534:65534";

/// Why the runner stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The server refused the token.
    #[error(
        "the server refused RUNNER_TOKEN ({0}); create a valid key with `ai-review admin create-api-key` and set RUNNER_TOKEN. Pending tasks stay queued."
    )]
    InvalidToken(String),
    /// Registration failed for a reason retrying cannot fix.
    #[error("registration refused: {0}")]
    Registration(String),
    /// The container engine is not usable.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The metrics listener could not be opened.
    #[error("cannot listen on RUNNER_METRICS_ADDR={addr}: {source}")]
    MetricsListen {
        /// The configured address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// Why a running task is being stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// A user cancelled it (from the heartbeat or phase answer).
    Cancelled,
    /// The runner is draining and the grace period ran out.
    Interrupted,
    /// The server says this runner no longer holds the task.
    LeaseLost,
}

#[derive(Clone, Default)]
struct Stop {
    token: CancellationToken,
    reason: Arc<Mutex<Option<StopReason>>>,
}

impl Stop {
    fn stop(&self, r: StopReason) {
        if let Ok(mut g) = self.reason.lock() {
            g.get_or_insert(r);
        }
        self.token.cancel();
    }
    fn reason(&self) -> Option<StopReason> {
        self.reason.lock().ok().and_then(|g| *g)
    }
}

/// What a claim file records, so a restarted runner can report the task.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClaimRecord {
    task_id: TaskId,
    attempt: Attempt,
}

/// A workspace directory and, when warm, its running container.
struct Slot {
    name: String,
    dir: PathBuf,
    container: Option<String>,
}

/// How a result submission ended.
enum Submitted {
    /// The server recorded it.
    Accepted,
    /// Refused as stale (409/403): another attempt holds the task now.
    NotOurs,
    /// Refused for another reason (a 4xx other than those).
    Refused,
    /// Never delivered: the server stayed unreachable through the retries.
    Undelivered,
}

/// The runner.
pub struct Agent {
    cfg: RunnerConfig,
    client: RunnerClient,
    engine: Arc<dyn ContainerEngine>,
    /// Running tasks: how to stop each, and its `task` span (so lines
    /// logged about it from outside its future still name its request).
    active: Mutex<HashMap<TaskId, (Stop, tracing::Span)>>,
    slots: Arc<Semaphore>,
    running: AtomicU32,
    tasks: TaskTracker,
    pool: Pool,
    model_http: reqwest::Client,
    metrics: Arc<Metrics>,
}

/// A runner started by [`Agent::start`]: its metrics address, and its end.
/// Dropping it detaches the runner, which stops when its `shutdown` token
/// fires.
pub struct RunningRunner {
    metrics_addr: Option<SocketAddr>,
    handle: JoinHandle<Result<(), RunnerError>>,
}

impl RunningRunner {
    /// The bound metrics address (port 0 resolved), when
    /// `RUNNER_METRICS_ADDR` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Waits until the runner has drained and stopped.
    pub async fn wait(self) -> Result<(), RunnerError> {
        match self.handle.await {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(RunnerError::Other(format!(
                "the runner stopped abnormally: {e}"
            ))),
        }
    }
}

/// Exit code for configuration errors.
pub const EXIT_CONFIG: u8 = 2;
/// Exit code for a refused token.
pub const EXIT_AUTH: u8 = 3;

fn runner_dir(cfg: &RunnerConfig) -> PathBuf {
    cfg.workspace_base.join(cfg.id.as_str())
}

/// The model response cache, shared by every runner on the workspace base
/// and outside their directories, so leftover reaping keeps it.
pub fn model_cache_dir(cfg: &RunnerConfig) -> PathBuf {
    cfg.workspace_base.join(gateway::CACHE_DIR)
}

/// What the executor learns about the model: never the key.
pub fn model_settings(ai: &AiConfigSpec) -> ModelSettings {
    ModelSettings {
        provider: ai.provider.as_str().to_owned(),
        model: ai.model.clone(),
        token_budget: ai.token_budget,
        max_output_tokens: ai.max_output_tokens,
        max_input_tokens_per_call: ai.max_input_tokens_per_call,
    }
}

/// Template, rules, excludes and context of the review, from the spec.
pub fn review_settings(spec: &TaskSpec) -> ReviewSettings {
    ReviewSettings {
        template: spec.template.as_ref().map(|t| TemplateSettings {
            id: t.id.clone(),
            content: t.content.clone(),
        }),
        rules: spec
            .rules
            .iter()
            .map(|r| RuleSettings {
                id: r.id.clone(),
                name: r.name.clone(),
                paths: r.paths.clone(),
                instructions: r.instructions.clone(),
            })
            .collect(),
        excludes: spec.excludes.clone(),
        title: spec.title.clone(),
        branch: spec.branch.clone(),
        repository: Some(repository_name(spec.repo_url.as_str())),
        since_sha: spec.since_sha.as_ref().map(ToString::to_string),
    }
}

/// `group/project` from a clone URL (`https://host/group/project.git`,
/// `git@host:group/project.git`); the URL itself if it has no path.
pub fn repository_name(url: &str) -> String {
    let path = match url::Url::parse(url) {
        Ok(u) => u.path().to_owned(),
        Err(_) => url.split_once(':').map_or("", |(_, p)| p).to_owned(),
    };
    let name = path.trim_matches('/');
    let name = name.strip_suffix(".git").unwrap_or(name);
    if name.is_empty() {
        url.to_owned()
    } else {
        name.to_owned()
    }
}

fn limits(cfg: &RunnerConfig) -> Limits {
    Limits {
        memory_bytes: cfg.memory_bytes,
        nano_cpus: cfg.nano_cpus,
        pids_limit: cfg.pids_limit,
        network_mode: cfg.network_mode.clone(),
        user: CONTAINER_USER.into(),
        tmpfs_bytes: TMPFS_BYTES,
    }
}

fn new_slot_name(cfg: &RunnerConfig) -> String {
    let r: u64 = rand::random();
    format!("ai-review-{}-{:012x}", cfg.id, r & 0xffff_ffff_ffff)
}

/// Builds the container spec for a slot.
pub fn container_spec(cfg: &RunnerConfig, name: &str, dir: &Path, pool: bool) -> ContainerSpec {
    let mut labels = HashMap::from([
        (LABEL_RUNNER.to_owned(), cfg.id.to_string()),
        (LABEL_SLOT.to_owned(), name.to_owned()),
    ]);
    if pool {
        labels.insert(LABEL_POOL.to_owned(), "true".into());
    }
    ContainerSpec {
        name: name.to_owned(),
        image: cfg.image.clone(),
        entrypoint: None,
        cmd: vec!["run".into()],
        env: vec!["HOME=/tmp".into(), "GIT_OPTIONAL_LOCKS=0".into()],
        labels,
        workspace: dir.to_owned(),
        limits: limits(cfg),
    }
}

async fn make_dir(dir: &Path) -> Result<(), String> {
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| format!("cannot create workspace {}: {e}", dir.display()))?;
    // The container user (nobody) must be able to read the checkout.
    let perms = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    tokio::fs::set_permissions(dir, perms)
        .await
        .map_err(|e| format!("cannot set permissions on {}: {e}", dir.display()))
}

async fn remove_path(p: &Path) {
    let p = p.to_owned();
    let _ = tokio::task::spawn_blocking(move || {
        if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        }
    })
    .await;
}

/// Pre-started containers waiting for their task file.
struct Pool {
    want: usize,
    ready: Mutex<VecDeque<Slot>>,
    refill: Notify,
    stop: CancellationToken,
}

impl Agent {
    /// Checks the engine, registers (retrying while the server is
    /// unreachable), reaps leftovers of an earlier life, then serves until
    /// `shutdown` fires and drains.
    pub async fn run(
        cfg: RunnerConfig,
        engine: Arc<dyn ContainerEngine>,
        shutdown: CancellationToken,
    ) -> Result<(), RunnerError> {
        Self::start(cfg, engine, shutdown).await?.wait().await
    }

    /// Checks the engine and opens the metrics listener (when
    /// `RUNNER_METRICS_ADDR` is set), then runs the rest of [`Agent::run`]
    /// in the background. Errors here are the engine's or the listener's.
    pub async fn start(
        cfg: RunnerConfig,
        engine: Arc<dyn ContainerEngine>,
        shutdown: CancellationToken,
    ) -> Result<RunningRunner, RunnerError> {
        engine.check(&cfg.image).await?;
        let model_http = gateway::http_client()
            .map_err(|e| RunnerError::Other(format!("cannot build the model HTTP client: {e}")))?;
        let client = RunnerClient::new(
            &cfg.server_url,
            &cfg.token,
            cfg.id.clone(),
            cfg.request_timeout,
        )
        .map_err(|e| RunnerError::Other(e.to_string()))?;
        let metrics_at = cfg.metrics_addr;
        let agent = Arc::new(Agent {
            slots: Arc::new(Semaphore::new(cfg.max_concurrent_jobs as usize)),
            pool: Pool {
                want: cfg.pool_size as usize,
                ready: Mutex::new(VecDeque::new()),
                refill: Notify::new(),
                stop: CancellationToken::new(),
            },
            cfg,
            client,
            engine,
            active: Mutex::new(HashMap::new()),
            running: AtomicU32::new(0),
            tasks: TaskTracker::new(),
            model_http,
            metrics: Arc::new(Metrics::default()),
        });
        let metrics_stop = CancellationToken::new();
        let mut metrics_server = None;
        let mut metrics_addr = None;
        if let Some(at) = metrics_at {
            let listen_err = |source| RunnerError::MetricsListen { addr: at, source };
            let listener = tokio::net::TcpListener::bind(at)
                .await
                .map_err(listen_err)?;
            let bound = listener.local_addr().map_err(listen_err)?;
            let a = agent.clone();
            let render: crate::metrics::Render = Arc::new(move || a.render_metrics());
            tracing::info!(metrics.addr = %bound, "runner metrics listening");
            metrics_server = Some(tokio::spawn(crate::metrics::serve(
                listener,
                render,
                metrics_stop.clone(),
            )));
            metrics_addr = Some(bound);
        }
        let handle = tokio::spawn(async move {
            let result = agent.serve(&shutdown).await;
            metrics_stop.cancel();
            if let Some(mut server) = metrics_server {
                // A scraper holding its connection open must not keep
                // the runner from exiting.
                if tokio::time::timeout(Duration::from_secs(2), &mut server)
                    .await
                    .is_err()
                {
                    server.abort();
                }
            }
            result
        });
        Ok(RunningRunner {
            metrics_addr,
            handle,
        })
    }

    /// Registers, reaps leftovers, serves until `shutdown`, drains.
    async fn serve(self: Arc<Self>, shutdown: &CancellationToken) -> Result<(), RunnerError> {
        let agent = self;
        let Some(reg) = register(&agent.cfg, &agent.client, shutdown).await? else {
            return Ok(());
        };
        tracing::info!(
            runner.id = %reg.runner.id,
            lease_ms = reg.lease_duration_ms,
            "registered with {}", agent.cfg.server_url
        );
        agent.reap_leftovers().await;
        let pruned =
            gateway::prune_cache(&model_cache_dir(&agent.cfg), gateway::CACHE_MAX_AGE).await;
        if pruned > 0 {
            tracing::info!(files = pruned, "pruned old model cache entries");
        }
        let filler = tokio::spawn(agent.clone().fill_pool());
        let hb_stop = CancellationToken::new();
        let hb = tokio::spawn(agent.clone().heartbeats(hb_stop.clone()));
        agent.clone().poll(shutdown).await;
        agent.drain().await;
        hb_stop.cancel();
        let _ = hb.await;
        agent.pool.stop.cancel();
        let _ = filler.await;
        agent.empty_pool().await;
        let _ = agent.client.heartbeat(RunnerStatus::Offline, 0).await;
        tracing::info!("runner stopped");
        Ok(())
    }

    /// The exposition text of this runner's metrics, gauges read now.
    fn render_metrics(&self) -> String {
        let pool_size = self.pool.ready.lock().map(|r| r.len()).unwrap_or(0);
        self.metrics.render(Gauges {
            slots: self.cfg.max_concurrent_jobs,
            slots_in_use: self.active_jobs(),
            pool_size,
        })
    }

    fn active_jobs(&self) -> u32 {
        self.running.load(Ordering::SeqCst)
    }

    /// Removes containers and workspaces this runner id left behind (after a
    /// crash or `kill -9`) and reports their tasks `runner_restarted`, so the
    /// server re-queues them at once instead of waiting for the lease.
    async fn reap_leftovers(&self) {
        match self
            .engine
            .list_labelled(LABEL_RUNNER, self.cfg.id.as_str())
            .await
        {
            Ok(list) => {
                for c in list {
                    tracing::warn!(container.name = %c.name, "removing a container left by an earlier run");
                    if let Err(e) = self.engine.remove(&c.id).await {
                        tracing::error!(container.name = %c.name, error = %e, "cannot remove leftover container");
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot list leftover containers"),
        }
        let dir = runner_dir(&self.cfg);
        let Ok(mut entries) = tokio::fs::read_dir(&dir).await else {
            return;
        };
        while let Ok(Some(entry)) = entries.next_entry().await {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "json")
                && let Ok(raw) = tokio::fs::read(&path).await
                && let Ok(rec) = serde_json::from_slice::<ClaimRecord>(&raw)
            {
                {
                    tracing::warn!(task.id = %rec.task_id, "reporting a task interrupted by a runner restart");
                    let r = self
                        .client
                        .submit_result(
                            &rec.task_id,
                            rec.attempt,
                            TaskOutcome::Failed,
                            Some(
                                "runner_restarted: the runner restarted while the task ran".into(),
                            ),
                            true,
                            None,
                        )
                        .await;
                    self.metrics.task_finished(TaskEnd::RunnerRestarted);
                    if let Err(e) = r {
                        tracing::info!(task.id = %rec.task_id, error = %e, "restart report not accepted (the lease may have expired already)");
                    }
                }
            }
            remove_path(&path).await;
        }
    }

    async fn fill_pool(self: Arc<Self>) {
        if self.pool.want == 0 {
            return;
        }
        loop {
            while self
                .pool
                .ready
                .lock()
                .map(|r| r.len())
                .unwrap_or(usize::MAX)
                < self.pool.want
            {
                if self.pool.stop.is_cancelled() {
                    return;
                }
                match self.warm_slot().await {
                    Ok(slot) => {
                        if let Ok(mut r) = self.pool.ready.lock() {
                            r.push_back(slot);
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot prepare a warm container; retrying in 5 s");
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                            _ = self.pool.stop.cancelled() => return,
                        }
                    }
                }
            }
            tokio::select! {
                _ = self.pool.refill.notified() => {}
                _ = self.pool.stop.cancelled() => return,
            }
        }
    }

    async fn warm_slot(&self) -> Result<Slot, String> {
        let name = new_slot_name(&self.cfg);
        let dir = runner_dir(&self.cfg).join(&name);
        make_dir(&dir).await?;
        let spec = container_spec(&self.cfg, &name, &dir, true);
        let asked = Instant::now();
        let id = match self.engine.create(&spec).await {
            Ok(id) => id,
            Err(e) => {
                remove_path(&dir).await;
                return Err(e.to_string());
            }
        };
        if let Err(e) = self.engine.start(&id).await {
            let _ = self.engine.remove(&id).await;
            remove_path(&dir).await;
            return Err(e.to_string());
        }
        self.metrics
            .container_started(StartSource::Pool, asked.elapsed().as_secs_f64());
        Ok(Slot {
            name,
            dir,
            container: Some(id),
        })
    }

    async fn empty_pool(&self) {
        let slots: Vec<Slot> = self
            .pool
            .ready
            .lock()
            .map(|mut r| r.drain(..).collect())
            .unwrap_or_default();
        for s in slots {
            if let Some(id) = &s.container {
                let _ = self.engine.remove(id).await;
            }
            remove_path(&s.dir).await;
        }
    }

    async fn take_slot(&self) -> Result<Slot, String> {
        let warm = self.pool.ready.lock().ok().and_then(|mut r| r.pop_front());
        if let Some(s) = warm {
            self.metrics.pool_hit();
            self.pool.refill.notify_one();
            return Ok(s);
        }
        self.metrics.pool_miss();
        let name = new_slot_name(&self.cfg);
        let dir = runner_dir(&self.cfg).join(&name);
        make_dir(&dir).await?;
        Ok(Slot {
            name,
            dir,
            container: None,
        })
    }

    async fn heartbeats(self: Arc<Self>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.cfg.heartbeat_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.cancelled() => return,
            }
            let jobs = self.active_jobs();
            let status = if jobs >= self.cfg.max_concurrent_jobs {
                RunnerStatus::Busy
            } else {
                RunnerStatus::Online
            };
            match self.client.heartbeat(status, jobs).await {
                Ok(answer) => {
                    for id in answer.cancel_task_ids {
                        self.stop_task(&id, StopReason::Cancelled);
                    }
                }
                Err(ClientError::Api { status: 404, .. }) => {
                    // The server forgot us (database restored or reset):
                    // register again instead of heartbeating into the void.
                    tracing::warn!("the server does not know this runner; registering again");
                    let reg = Registration {
                        name: self.cfg.name.clone(),
                        version: VERSION.into(),
                        max_concurrency: self.cfg.max_concurrent_jobs,
                        tags: self.cfg.tags.to_vec().join(","),
                    };
                    if let Err(e) = self.client.register(&reg).await {
                        tracing::warn!(error = %e, "re-registration failed; retrying at the next interval");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "heartbeat failed; retrying at the next interval")
                }
            }
        }
    }

    fn stop_task(&self, id: &TaskId, reason: StopReason) {
        let stop = self.active.lock().ok().and_then(|a| a.get(id).cloned());
        if let Some((s, span)) = stop {
            span.in_scope(|| tracing::info!(task.id = %id, reason = ?reason, "stopping task"));
            s.stop(reason);
        }
    }

    async fn poll(self: Arc<Self>, shutdown: &CancellationToken) {
        let mut failures = 0u32;
        while !shutdown.is_cancelled() {
            let first = tokio::select! {
                p = self.slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
                _ = shutdown.cancelled() => return,
            };
            let mut permits = vec![first];
            while let Ok(p) = self.slots.clone().try_acquire_owned() {
                permits.push(p);
            }
            let limit = u32::try_from(permits.len()).unwrap_or(1);
            let polled = tokio::select! {
                r = self.client.poll(limit, self.cfg.poll_timeout) => r,
                _ = shutdown.cancelled() => return,
            };
            match polled {
                Ok(tasks) => {
                    failures = 0;
                    let empty = tasks.is_empty();
                    for t in tasks {
                        let Some(permit) = permits.pop() else { break };
                        let stop = Stop::default();
                        self.running.fetch_add(1, Ordering::SeqCst);
                        let agent = self.clone();
                        // Every log line about the task, from any of its
                        // futures, names the task, attempt and request.
                        let span = tracing::info_span!(
                            "task",
                            task.id = %t.task_id,
                            task.attempt = t.attempt.0,
                            request.id = t.spec.request_id.as_deref(),
                        );
                        if let Ok(mut a) = self.active.lock() {
                            a.insert(t.task_id.clone(), (stop.clone(), span.clone()));
                        }
                        self.tasks.spawn(
                            async move {
                                let id = t.task_id.clone();
                                agent.execute(t, stop).await;
                                if let Ok(mut a) = agent.active.lock() {
                                    a.remove(&id);
                                }
                                agent.running.fetch_sub(1, Ordering::SeqCst);
                                drop(permit);
                            }
                            .instrument(span),
                        );
                    }
                    drop(permits);
                    if empty {
                        self.pause(self.cfg.poll_interval, shutdown).await;
                    }
                }
                Err(e) => {
                    drop(permits);
                    failures += 1;
                    let backoff = backoff(failures, self.cfg.poll_interval);
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "poll failed");
                    self.pause(backoff, shutdown).await;
                }
            }
        }
    }

    async fn pause(&self, d: Duration, shutdown: &CancellationToken) {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = shutdown.cancelled() => {}
        }
    }

    /// Stops claiming (the poller has returned), lets running tasks finish
    /// within the drain period, then interrupts the rest; they are reported
    /// `interrupted` and re-queued by the server at once.
    async fn drain(&self) {
        self.tasks.close();
        let n = self.active_jobs();
        if n > 0 {
            tracing::info!(
                tasks = n,
                grace_ms = self.cfg.drain_timeout.as_millis() as u64,
                "draining"
            );
        }
        if tokio::time::timeout(self.cfg.drain_timeout, self.tasks.wait())
            .await
            .is_err()
        {
            let ids: Vec<TaskId> = self
                .active
                .lock()
                .map(|a| a.keys().cloned().collect())
                .unwrap_or_default();
            for id in ids {
                self.stop_task(&id, StopReason::Interrupted);
            }
            self.tasks.wait().await;
        }
    }

    async fn execute(self: &Arc<Self>, t: TaskAssignment, stop: Stop) {
        let mut secrets = vec![self.cfg.token.clone()];
        if let Some(key) = t.spec.ai_config.as_ref().and_then(|a| a.api_key.as_ref()) {
            secrets.push(key.expose().to_owned());
        }
        if let Some(header) = clone_auth_header(&t.spec) {
            secrets.push(header.expose().to_owned());
            if let Some(p) = t
                .spec
                .clone_credentials
                .as_ref()
                .and_then(|c| c.password.as_ref())
            {
                secrets.push(p.expose().to_owned());
            }
        }
        let log = Arc::new(LogBuffer::new(secrets));
        log.line(
            "runner",
            &format!(
                "task {} attempt {} on runner {}{}",
                t.task_id,
                t.attempt,
                self.cfg.name,
                t.spec
                    .request_id
                    .as_deref()
                    .map_or_else(String::new, |r| format!(" (request {r})"))
            ),
        );
        let flush_done = CancellationToken::new();
        let flusher = tokio::spawn(
            self.clone()
                .flush_logs(t.clone(), log.clone(), stop.clone(), flush_done.clone())
                .instrument(tracing::Span::current()),
        );
        let mut slot = None;
        let mut model_gateway = None;
        let mut outcome = self
            .execute_inner(&t, &stop, &log, &mut slot, &mut model_gateway)
            .await;
        if let Some(g) = model_gateway {
            let usage = g.stop().await;
            tracing::info!(
                task.id = %t.task_id, model = %usage.model, calls = usage.calls,
                cached_calls = usage.cached_calls, retries = usage.retries,
                input_tokens = usage.input_tokens, output_tokens = usage.output_tokens,
                "model usage"
            );
            // The gateway's records are authoritative, whatever the
            // executor reported.
            if let Ok(out) = &mut outcome
                && let Some(doc) = out.as_object_mut()
            {
                doc.insert(
                    "usage".into(),
                    serde_json::to_value(&usage).unwrap_or_default(),
                );
            }
        }
        if let Some(s) = &slot {
            if let Some(id) = &s.container {
                let _ = self.engine.remove(id).await;
            }
            remove_path(&s.dir).await;
            remove_path(&runner_dir(&self.cfg).join(format!("{}.json", s.name))).await;
        }
        log.finish();
        flush_done.cancel();
        let _ = flusher.await;
        // The last lines explain the outcome: a few tries before giving up.
        for attempt in 0..3 {
            if !self.send_logs(&t, &log).await || !log.has_pending() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
        }
        if stop.reason() == Some(StopReason::LeaseLost) {
            self.metrics.task_finished(TaskEnd::LeaseLost);
            tracing::warn!(task.id = %t.task_id, "lease lost; result not submitted");
            return;
        }
        let (end, outcome, reason, retryable, output) = match (stop.reason(), outcome) {
            (Some(StopReason::Cancelled), _) => (
                TaskEnd::Cancelled,
                TaskOutcome::Cancelled,
                Some("cancelled by user".to_owned()),
                false,
                None,
            ),
            (Some(StopReason::Interrupted), _) => (
                TaskEnd::Interrupted,
                TaskOutcome::Failed,
                Some("interrupted: the runner shut down before the task finished".to_owned()),
                true,
                None,
            ),
            (_, Ok(out)) => (
                TaskEnd::Succeeded,
                TaskOutcome::Succeeded,
                None,
                false,
                Some(out),
            ),
            (_, Err(f)) => (
                TaskEnd::Failed,
                TaskOutcome::Failed,
                Some(f.reason),
                f.retryable,
                None,
            ),
        };
        let _ = self
            .client
            .report_phase(&t.task_id, t.attempt, Phase::Submitting)
            .await;
        // Counted once the server has answered: a result refused as stale
        // (another attempt holds the task now) or never delivered is work
        // lost with the lease, not a success.
        let counted = match self.submit(&t, outcome, reason, retryable, output).await {
            Submitted::Accepted => end,
            Submitted::Refused => TaskEnd::Failed,
            Submitted::NotOurs | Submitted::Undelivered => TaskEnd::LeaseLost,
        };
        self.metrics.task_finished(counted);
    }

    async fn submit(
        &self,
        t: &TaskAssignment,
        outcome: TaskOutcome,
        reason: Option<String>,
        retryable: bool,
        output: Option<serde_json::Value>,
    ) -> Submitted {
        for attempt in 1..=6u32 {
            match self
                .client
                .submit_result(
                    &t.task_id,
                    t.attempt,
                    outcome,
                    reason.clone(),
                    retryable,
                    output.clone(),
                )
                .await
            {
                Ok(r) => {
                    tracing::info!(task.id = %t.task_id, task.state = %r.state, "result submitted");
                    return Submitted::Accepted;
                }
                Err(ClientError::Api { status, .. }) if status < 500 && status != 429 => {
                    tracing::warn!(task.id = %t.task_id, status, "result refused");
                    return if matches!(status, 409 | 403) {
                        Submitted::NotOurs
                    } else {
                        Submitted::Refused
                    };
                }
                Err(e) => {
                    tracing::warn!(task.id = %t.task_id, error = %e, "result submission failed; retrying");
                    tokio::time::sleep(backoff(attempt, Duration::from_millis(500))).await;
                }
            }
        }
        tracing::error!(task.id = %t.task_id, "could not submit the result; the lease will expire and the task re-queue");
        Submitted::Undelivered
    }

    async fn phase(&self, t: &TaskAssignment, p: Phase, stop: &Stop) {
        match self.client.report_phase(&t.task_id, t.attempt, p).await {
            Ok(s) if s.cancel_requested => stop.stop(StopReason::Cancelled),
            Ok(_) => {}
            Err(ClientError::Api {
                status: 409 | 403, ..
            }) => stop.stop(StopReason::LeaseLost),
            Err(e) => tracing::warn!(task.id = %t.task_id, error = %e, "phase report failed"),
        }
    }

    /// Sends waiting log lines in batches that stay far below the server's
    /// body limit; returns `false` if the server says the task is no longer
    /// ours. Once the server reports the task's log full, lines are dropped
    /// here instead of being sent to be dropped there.
    async fn send_logs(&self, t: &TaskAssignment, log: &LogBuffer) -> bool {
        let lines = log.drain();
        if lines.is_empty() || log.is_full() {
            return true;
        }
        let mut pending = batches(lines).into_iter();
        while let Some(batch) = pending.next() {
            // Kept until the server has the batch: a failed send puts it back.
            let unsent = batch.clone();
            match self.client.append_logs(&t.task_id, t.attempt, batch).await {
                Ok(answer) if answer.truncated => {
                    log.mark_full();
                    return true;
                }
                Ok(_) => {}
                Err(ClientError::Api {
                    status: 409 | 403, ..
                }) => return false,
                Err(e) => {
                    tracing::warn!(task.id = %t.task_id, error = %e, "could not send log lines; will retry");
                    log.unread(unsent.into_iter().chain(pending.flatten()).collect());
                    return true;
                }
            }
        }
        true
    }

    /// Sends the task's log every 500 ms until `done`; never interrupted
    /// in the middle of a send, so no drained line is lost.
    async fn flush_logs(
        self: Arc<Self>,
        t: TaskAssignment,
        log: Arc<LogBuffer>,
        stop: Stop,
        done: CancellationToken,
    ) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
                () = done.cancelled() => return,
            }
            if !self.send_logs(&t, &log).await {
                stop.stop(StopReason::LeaseLost);
                return;
            }
        }
    }

    async fn execute_inner(
        &self,
        t: &TaskAssignment,
        stop: &Stop,
        log: &LogBuffer,
        slot_out: &mut Option<Slot>,
        gateway_out: &mut Option<Gateway>,
    ) -> Result<serde_json::Value, Failure> {
        self.phase(t, Phase::Preparing, stop).await;
        let slot = self.take_slot().await.map_err(Failure::retry)?;
        let claim = ClaimRecord {
            task_id: t.task_id.clone(),
            attempt: t.attempt,
        };
        let claim_path = runner_dir(&self.cfg).join(format!("{}.json", slot.name));
        let dir = slot.dir.clone();
        let warm = slot.container.clone();
        let name = slot.name.clone();
        *slot_out = Some(slot);
        tokio::fs::write(&claim_path, serde_json::to_vec(&claim).unwrap_or_default())
            .await
            .map_err(|e| Failure::retry(format!("cannot write {}: {e}", claim_path.display())))?;
        if stop.token.is_cancelled() {
            return Err(Failure::fatal("stopped"));
        }

        self.phase(t, Phase::Cloning, stop).await;
        log.line(
            "runner",
            &format!("cloning {} at {}", t.spec.repo_url, t.spec.head_sha),
        );
        let auth = clone_auth_header(&t.spec);
        let req = CloneRequest {
            url: t.spec.repo_url.as_str(),
            head_sha: t.spec.head_sha.as_str(),
            base_sha: t.spec.base_sha.as_str(),
            branch: t.spec.branch.as_deref(),
            depth: self.cfg.clone_depth,
            auth_header: auth.as_ref().map(SecretString::expose),
        };
        let log_fn = |l: String| log.line("runner", &l);
        match git::clone(
            &dir.join(REPO_DIR),
            &req,
            self.cfg.container_timeout,
            &stop.token,
            &log_fn,
        )
        .await
        {
            Ok(()) => {}
            Err(CloneError::Cancelled) => return Err(Failure::fatal("stopped")),
            Err(e) => return Err(Failure::retry(format!("clone_failed: {e}"))),
        }
        let model = match &t.spec.ai_config {
            Some(ai) => {
                let cfg = GatewayConfig {
                    task_id: t.task_id.to_string(),
                    ai: ai.clone(),
                    cache_dir: Some(model_cache_dir(&self.cfg)),
                    deadline: std::time::Instant::now() + self.cfg.container_timeout,
                    retry: RetryPolicy::default(),
                    http: self.model_http.clone(),
                    metrics: self.metrics.clone(),
                };
                let g = Gateway::start(&dir.join(GATEWAY_SOCKET), cfg)
                    .await
                    .map_err(|e| {
                        let reason = format!("model_gateway_failed: {e}");
                        match e {
                            GatewayStartError::BaseUrl(_) => Failure::fatal(reason),
                            GatewayStartError::Socket { .. } => Failure::retry(reason),
                        }
                    })?;
                *gateway_out = Some(g);
                log.line(
                    "runner",
                    &format!("model gateway ready: {} {}", ai.provider, ai.model),
                );
                Some(model_settings(ai))
            }
            None => None,
        };
        let task_doc = ExecutorTask {
            version: CONTRACT_VERSION,
            task_id: t.task_id.to_string(),
            base_sha: t.spec.base_sha.to_string(),
            head_sha: t.spec.head_sha.to_string(),
            model,
            review: review_settings(&t.spec),
            request_id: t.spec.request_id.clone(),
        };
        let tmp = dir.join(".task.json.tmp");
        let bytes = serde_json::to_vec(&task_doc).map_err(|e| Failure::fatal(e.to_string()))?;
        // Written then renamed: the executor must never read half a file.
        let written = match tokio::fs::write(&tmp, bytes).await {
            Ok(()) => tokio::fs::rename(&tmp, dir.join(TASK_FILE)).await,
            Err(e) => Err(e),
        };
        written.map_err(|e| Failure::retry(format!("cannot write the task file: {e}")))?;

        self.phase(t, Phase::Reviewing, stop).await;
        let container = match warm {
            Some(id) => id,
            None => {
                let spec = container_spec(&self.cfg, &name, &dir, false);
                let asked = Instant::now();
                let id = self
                    .engine
                    .create(&spec)
                    .await
                    .map_err(|e| Failure::retry(e.to_string()))?;
                if let Some(s) = slot_out.as_mut() {
                    s.container = Some(id.clone());
                }
                self.engine
                    .start(&id)
                    .await
                    .map_err(|e| Failure::retry(e.to_string()))?;
                self.metrics
                    .container_started(StartSource::Cold, asked.elapsed().as_secs_f64());
                id
            }
        };
        self.supervise(&container, stop, log).await
    }

    /// Streams the container's output, enforces the timeout and stop
    /// requests, and turns its exit into a result or a failure reason.
    async fn supervise(
        &self,
        id: &str,
        stop: &Stop,
        log: &LogBuffer,
    ) -> Result<serde_json::Value, Failure> {
        let mut output = self.engine.output(id);
        let mut stdout = Vec::new();
        let reader = async {
            while let Some(chunk) = output.next().await {
                match chunk {
                    Ok(c) if c.stream == OutputStream::Stdout => {
                        if stdout.len() + c.bytes.len() <= MAX_STDOUT_BYTES {
                            stdout.extend_from_slice(&c.bytes);
                        }
                    }
                    Ok(c) => log.stderr_bytes(&c.bytes),
                    Err(e) => {
                        log.line("runner", &format!("output stream ended: {e}"));
                        break;
                    }
                }
            }
        };
        let timeout = self.cfg.container_timeout;
        let waited = tokio::select! {
            (_, exit) = futures::future::join(reader, self.engine.wait(id)) => Some(exit),
            _ = tokio::time::sleep(timeout) => None,
            _ = stop.token.cancelled() => {
                let _ = self.engine.kill(id).await;
                return Err(Failure::fatal("stopped"));
            }
        };
        let Some(exit) = waited else {
            let _ = self.engine.kill(id).await;
            return Err(Failure::fatal(format!(
                "timeout: the review container exceeded DOCKER_TIMEOUT_SECONDS={}",
                timeout.as_secs()
            )));
        };
        let exit = exit.map_err(|e| Failure::retry(e.to_string()))?;
        if exit.oom_killed {
            return Err(Failure::fatal(format!(
                "out_of_memory: the review container exceeded DOCKER_MEMORY_LIMIT ({} MiB)",
                self.cfg.memory_bytes / (1024 * 1024)
            )));
        }
        if exit.code != 0 {
            return Err(Failure::fatal(format!(
                "executor_failed: exit code {}; last output:\n{}",
                exit.code,
                log.tail()
            )));
        }
        serde_json::from_slice(&stdout).map_err(|e| {
            Failure::fatal(format!(
                "invalid_output: the executor's result is not valid JSON: {e}"
            ))
        })
    }
}

/// Most lines per log request.
const LOG_BATCH_LINES: usize = 500;
/// Most bytes of text per log request.
const LOG_BATCH_BYTES: usize = 1024 * 1024;

/// `Authorization: Basic …` for the clone, from the task's credentials
/// (the value only: git gets it as an extra header).
fn clone_auth_header(spec: &TaskSpec) -> Option<SecretString> {
    use base64::Engine;
    let c = spec.clone_credentials.as_ref()?;
    let password = c.password.as_ref()?;
    let raw = format!("{}:{}", c.username, password.expose());
    Some(SecretString::new(format!(
        "Authorization: Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )))
}

fn batches(
    lines: Vec<ai_review_protocol::runner::LogLineIn>,
) -> Vec<Vec<ai_review_protocol::runner::LogLineIn>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut bytes = 0;
    for l in lines {
        if !cur.is_empty()
            && (cur.len() == LOG_BATCH_LINES || bytes + l.text.len() > LOG_BATCH_BYTES)
        {
            out.push(std::mem::take(&mut cur));
            bytes = 0;
        }
        bytes += l.text.len();
        cur.push(l);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// A task failure reason and whether another attempt may help.
#[derive(Debug)]
struct Failure {
    reason: String,
    retryable: bool,
}

impl Failure {
    fn retry(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            retryable: true,
        }
    }
    fn fatal(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            retryable: false,
        }
    }
}

/// Capped exponential backoff with full jitter: up to `base · 2^n`, at most 30 s.
pub fn backoff(failures: u32, base: Duration) -> Duration {
    let cap = Duration::from_secs(30);
    let exp = base.saturating_mul(1u32 << failures.min(10)).min(cap);
    let ms = u64::try_from(exp.as_millis()).unwrap_or(30_000).max(1);
    Duration::from_millis(rand::random_range(ms / 2..=ms))
}

async fn register(
    cfg: &RunnerConfig,
    client: &RunnerClient,
    shutdown: &CancellationToken,
) -> Result<Option<RegisterResponse>, RunnerError> {
    let reg = Registration {
        name: cfg.name.clone(),
        version: VERSION.into(),
        max_concurrency: cfg.max_concurrent_jobs,
        tags: cfg.tags.to_vec().join(","),
    };
    let mut failures = 0;
    loop {
        match client.register(&reg).await {
            Ok(r) => return Ok(Some(r)),
            Err(ClientError::Api {
                status: 401,
                detail,
                ..
            }) => {
                return Err(RunnerError::InvalidToken(detail.unwrap_or_default()));
            }
            Err(ClientError::Api {
                status,
                title,
                detail,
            }) if (400..500).contains(&status) && status != 429 => {
                return Err(RunnerError::Registration(format!(
                    "{status} {title}: {}",
                    detail.unwrap_or_default()
                )));
            }
            Err(e) => {
                failures += 1;
                let wait = backoff(failures, Duration::from_secs(1));
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "cannot register with {}; retrying", cfg.server_url);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.cancelled() => return Ok(None),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_batches_respect_line_and_byte_caps() {
        let line = |n: usize| ai_review_protocol::runner::LogLineIn {
            text: "x".repeat(n),
            stream: None,
            at: None,
        };
        let b = batches((0..1200).map(|_| line(1)).collect());
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), [500, 500, 200]);
        let b = batches((0..5).map(|_| line(400 * 1024)).collect());
        assert!(
            b.iter()
                .all(|v| v.iter().map(|l| l.text.len()).sum::<usize>() <= LOG_BATCH_BYTES)
        );
        assert_eq!(b.iter().map(Vec::len).sum::<usize>(), 5);
        assert!(batches(Vec::new()).is_empty());
    }

    #[test]
    fn repository_names_come_from_clone_urls() {
        for (url, name) in [
            ("https://git.example.com/group/repo.git", "group/repo"),
            ("git://127.0.0.1:9418/r.git", "r"),
            ("git@github.com:org/sub/project.git", "org/sub/project"),
            ("ssh://git@host/x/y", "x/y"),
            ("https://host/", "https://host/"),
        ] {
            assert_eq!(repository_name(url), name, "{url}");
        }
    }

    #[test]
    fn the_executor_gets_the_model_and_review_settings_but_never_the_key() {
        use ai_review_protocol::runner::{RuleSpec, TemplateSpec};
        let ai = AiConfigSpec {
            id: "c".into(),
            name: "n".into(),
            provider: ai_review_domain::LlmProvider::Anthropic,
            base_url: "https://api.anthropic.com/v1".into(),
            model: "claude-sonnet-4-0".into(),
            api_key: Some(ai_review_domain::SecretString::new("sk-ant-secret")),
            temperature: None,
            max_output_tokens: 4096,
            max_input_tokens_per_call: 24_000,
            timeout_ms: 1000,
            token_budget: 200_000,
            input_cost_per_mtok: None,
            output_cost_per_mtok: None,
        };
        let m = model_settings(&ai);
        assert_eq!(
            (m.provider.as_str(), m.model.as_str(), m.token_budget),
            ("anthropic", "claude-sonnet-4-0", 200_000)
        );
        assert_eq!(
            (m.max_output_tokens, m.max_input_tokens_per_call),
            (4096, 24_000)
        );
        assert!(
            !serde_json::to_string(&m)
                .unwrap_or_default()
                .contains("sk-ant")
        );
        let spec = TaskSpec {
            review_id: ai_review_domain::ReviewId::generate(),
            repo_url: ai_review_domain::RepoUrl::parse("https://h/g/p.git").expect("url"),
            branch: Some("feat".into()),
            base_sha: ai_review_domain::CommitSha::parse(&"a".repeat(40)).expect("sha"),
            head_sha: ai_review_domain::CommitSha::parse(&"b".repeat(40)).expect("sha"),
            title: Some("Add".into()),
            file_changes: Vec::new(),
            ai_config: Some(ai),
            template: Some(TemplateSpec {
                id: "t1".into(),
                content: "Review {{title}}".into(),
            }),
            rules: vec![RuleSpec {
                id: "r1".into(),
                name: "sql".into(),
                paths: vec!["**/*.sql".into()],
                instructions: "check indexes".into(),
            }],
            excludes: vec!["dist/**".into()],
            since_sha: None,
            clone_credentials: None,
            request_id: None,
        };
        assert!(clone_auth_header(&spec).is_none());
        let mut with_creds = spec.clone();
        with_creds.clone_credentials = Some(ai_review_protocol::runner::CloneCredentials {
            username: "oauth2".into(),
            password: Some(SecretString::new("tok")),
        });
        assert_eq!(
            clone_auth_header(&with_creds).map(|h| h.expose().to_owned()),
            // base64("oauth2:tok")
            Some("Authorization: Basic b2F1dGgyOnRvaw==".to_owned())
        );
        let r = review_settings(&spec);
        assert_eq!(
            r.template,
            Some(TemplateSettings {
                id: "t1".into(),
                content: "Review {{title}}".into()
            })
        );
        assert_eq!(
            r.rules,
            vec![RuleSettings {
                id: "r1".into(),
                name: "sql".into(),
                paths: vec!["**/*.sql".into()],
                instructions: "check indexes".into(),
            }]
        );
        assert_eq!(r.excludes, ["dist/**"]);
        assert_eq!(
            (
                r.title.as_deref(),
                r.branch.as_deref(),
                r.repository.as_deref()
            ),
            (Some("Add"), Some("feat"), Some("g/p"))
        );
    }

    #[test]
    fn backoff_is_capped_and_jittered() {
        for n in 0..40 {
            let d = backoff(n, Duration::from_secs(1));
            assert!(d <= Duration::from_secs(30), "{d:?}");
            assert!(d >= Duration::from_millis(500), "{d:?}");
        }
    }
}
