//! The runner ⇄ server protocol.
//!
//! Every call is under `/api/runners` and authenticated with an API key in
//! `Authorization: Bearer <key>` or `x-api-key: <key>` (the runner's
//! `RUNNER_TOKEN`). A runner id belongs to the user whose key registered it;
//! other users' keys cannot act for it (403).
//!
//! | Call | Body / query | Answer |
//! | --- | --- | --- |
//! | `POST /api/runners/register` | headers `x-runner-id` (required), `x-runner-name` (default: the id), `x-runner-version` (default `unknown`), `x-runner-max-concurrency` (default 5), `x-runner-tags` (comma list) | [`RegisterResponse`] |
//! | `POST /api/runners/:id/heartbeat` | [`HeartbeatRequest`] | [`HeartbeatResponse`]: renewed leases, tasks to cancel |
//! | `GET /api/runners/tasks/pending` | [`PendingQuery`]: `runnerId`, `limit` (default 1), `wait` (ms, long-poll hold) | `[`[`TaskAssignment`]`]`, already claimed for the caller |
//! | `POST /api/runners/tasks/:id/status` | [`PhaseRequest`] | [`TaskStatusResponse`] |
//! | `POST /api/runners/tasks/:id/logs` | [`LogsRequest`] | [`LogsResponse`] |
//! | `POST /api/runners/tasks/:id/result` | [`ResultRequest`] | [`ResultResponse`] (idempotent) |
//! | `GET /api/runners`, `GET /api/runners/:id` | — | [`RunnerView`] list (newest heartbeat first) / one |
//!
//! # Leases and fencing
//!
//! A claim gives the runner a lease of `leaseDurationMs` (from the
//! registration answer). Heartbeats and phase reports renew it; a runner
//! should heartbeat at least three times per lease. Each claim carries an
//! `attempt` number; every task call must send the runner id and that
//! attempt. If the lease expired and the task was re-queued or claimed again,
//! the call is refused with 409 `CONFLICT` and changes nothing: the runner
//! must stop working on the task. 403 means the runner never held the task.
//!
//! # Cancellation
//!
//! When a user cancels a running task, the next heartbeat answer lists it in
//! `cancelTaskIds`; the runner stops it and submits a result with outcome
//! `cancelled`.

use ai_review_domain::{
    Attempt, CommitSha, LlmProvider, Phase, RepoUrl, ReviewId, RunnerId, RunnerStatus,
    SecretString, TaskId, TaskOutcome, TaskState, Timestamp,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Header carrying the runner id on registration.
pub const HEADER_RUNNER_ID: &str = "x-runner-id";
/// Header carrying the display name on registration.
pub const HEADER_RUNNER_NAME: &str = "x-runner-name";
/// Header carrying the runner version on registration.
pub const HEADER_RUNNER_VERSION: &str = "x-runner-version";
/// Header carrying the runner's concurrency on registration.
pub const HEADER_RUNNER_MAX_CONCURRENCY: &str = "x-runner-max-concurrency";
/// Header carrying the runner's tags (comma list) on registration.
pub const HEADER_RUNNER_TAGS: &str = "x-runner-tags";
/// Alternative to `Authorization: Bearer` for the API key.
pub const HEADER_API_KEY: &str = "x-api-key";

/// Default `x-runner-max-concurrency`.
pub const DEFAULT_MAX_CONCURRENCY: u32 = 5;
/// Most tasks one poll may ask for.
pub const MAX_POLL_LIMIT: u32 = 100;
/// Most log lines in one batch.
pub const MAX_LOG_LINES_PER_BATCH: usize = 1000;
/// Longest log line kept (longer ones are cut).
pub const MAX_LOG_LINE_BYTES: usize = 16 * 1024;

/// A runner as returned by the API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunnerView {
    /// Id.
    pub id: RunnerId,
    /// Display name.
    pub name: String,
    /// Software version.
    pub version: String,
    /// Most tasks at once.
    pub max_concurrency: u32,
    /// Routing tags.
    pub tags: Vec<String>,
    /// `online`, `busy` or `offline` (derived from heartbeats).
    pub status: RunnerStatus,
    /// Jobs in its last heartbeat.
    pub active_jobs: u32,
    /// First registration.
    pub registered_at: Timestamp,
    /// Last heartbeat.
    pub last_heartbeat_at: Timestamp,
}

/// Answer to `POST /api/runners/register`: the runner record plus the
/// server's timing parameters.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegisterResponse {
    /// The runner record.
    #[serde(flatten)]
    pub runner: RunnerView,
    /// Lease length of each claim; heartbeat well within it.
    pub lease_duration_ms: u64,
    /// Silence after which the server marks the runner offline.
    pub heartbeat_timeout_ms: u64,
    /// Longest long-poll hold the server grants.
    pub max_poll_wait_ms: u64,
}

/// Body of `POST /api/runners/:id/heartbeat`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeartbeatRequest {
    /// `online`, `busy` or `offline` (a runner shutting down).
    pub status: RunnerStatus,
    /// Jobs running now.
    #[serde(default, alias = "currentJobs", alias = "jobCount")]
    pub active_jobs: u32,
}

/// Answer to a heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatResponse {
    /// Status recorded.
    pub status: RunnerStatus,
    /// Tasks whose leases were renewed.
    pub renewed_task_ids: Vec<TaskId>,
    /// Tasks the runner must stop and report `cancelled`.
    pub cancel_task_ids: Vec<TaskId>,
    /// New lease deadline of the renewed tasks.
    pub lease_expires_at: Timestamp,
}

/// Query of `GET /api/runners/tasks/pending`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingQuery {
    /// The polling runner.
    pub runner_id: String,
    /// Most tasks to claim (1 to 100, default 1).
    #[serde(default, alias = "maxTasks")]
    pub limit: Option<u32>,
    /// Milliseconds to hold the request open if nothing is pending
    /// (0 = answer at once; capped by the server).
    #[serde(default)]
    pub wait: Option<u64>,
}

/// What the runner needs to execute a task.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskSpec {
    /// The review this task serves.
    pub review_id: ReviewId,
    /// Clone URL.
    pub repo_url: RepoUrl,
    /// Branch, informational.
    pub branch: Option<String>,
    /// Base revision.
    pub base_sha: CommitSha,
    /// Head revision.
    pub head_sha: CommitSha,
    /// Title, informational.
    pub title: Option<String>,
    /// Changed files when the forge already knows them.
    #[serde(default)]
    pub file_changes: Vec<serde_json::Value>,
    /// Resolved AI configuration; `null` runs the deterministic checks
    /// only. In a claim answer it carries the API key in clear for the
    /// runner's model gateway; the key never enters the container.
    #[serde(default)]
    pub ai_config: Option<AiConfigSpec>,
    /// The review template; `null` uses the executor's built-in one.
    #[serde(default)]
    pub template: Option<TemplateSpec>,
    /// Review rules (path globs + instructions) that may apply.
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
    /// Project exclude globs.
    #[serde(default)]
    pub excludes: Vec<String>,
    /// The head reviewed by the change's last completed round: only what
    /// changed since is sent to the model (the rest is listed with that
    /// reason). `None` reviews the whole change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_sha: Option<CommitSha>,
    /// HTTP basic credentials for the clone only (forge projects). In a
    /// claim answer the password is in clear; the runner hands it to git as
    /// a header, masks it in logs and never passes it into the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone_credentials: Option<CloneCredentials>,
    /// The `x-request-id` of the HTTP request (API call or webhook) that
    /// queued this review: runners put it on their log lines for the task
    /// and pass it to the executor, so one id follows a review through
    /// server, runner and task log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// HTTP basic credentials for cloning.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloneCredentials {
    /// User name (`oauth2` for GitLab tokens, `x-access-token` for GitHub).
    pub username: String,
    /// The token; absent from stored specs (sealed there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretString>,
}

/// A resolved AI configuration as a runner receives it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AiConfigSpec {
    /// The AI config's id (`env` for one built from environment variables).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Wire protocol.
    pub provider: LlmProvider,
    /// Base URL, e.g. `https://api.openai.com/v1` or
    /// `http://ollama:11434/v1` (the runner appends `/chat/completions` or
    /// `/messages`).
    pub base_url: String,
    /// Model name.
    pub model: String,
    /// The API key in clear; only in claim answers, never stored in clear.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<SecretString>,
    /// Sampling temperature (provider default when absent).
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Most tokens one answer may have.
    pub max_output_tokens: u32,
    /// Most prompt tokens one call may carry.
    pub max_input_tokens_per_call: u32,
    /// Timeout of one model call.
    pub timeout_ms: u64,
    /// Tokens (input + output, all calls) one review may use.
    pub token_budget: u64,
    /// Price of a million prompt tokens in US dollars, for cost estimates.
    #[serde(default)]
    pub input_cost_per_mtok: Option<f64>,
    /// Price of a million generated tokens in US dollars.
    #[serde(default)]
    pub output_cost_per_mtok: Option<f64>,
}

/// A review template as a runner receives it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateSpec {
    /// Template id.
    pub id: String,
    /// Text with `{{variables}}`.
    pub content: String,
}

/// A review rule as a runner receives it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuleSpec {
    /// Rule id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Path globs (empty: every path).
    pub paths: Vec<String>,
    /// Instructions.
    pub instructions: String,
}

/// A task claimed for the polling runner.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskAssignment {
    /// Task id.
    pub task_id: TaskId,
    /// The fencing value to send with every call about this task.
    pub attempt: Attempt,
    /// Claims allowed in total.
    pub max_attempts: u32,
    /// Lease deadline; renew with heartbeats.
    pub lease_expires_at: Timestamp,
    /// Routing tags the task required.
    pub required_tags: Vec<String>,
    /// What to do.
    #[serde(flatten)]
    pub spec: TaskSpec,
}

/// Body of `POST /api/runners/tasks/:id/status`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PhaseRequest {
    /// The calling runner.
    pub runner_id: RunnerId,
    /// The attempt from the claim.
    pub attempt: Attempt,
    /// `preparing`, `cloning`, `reviewing` or `submitting`.
    pub phase: Phase,
}

/// Answer to a phase report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskStatusResponse {
    /// Task.
    pub task_id: TaskId,
    /// State now.
    pub state: TaskState,
    /// Phase now.
    pub phase: Option<Phase>,
    /// Renewed lease deadline.
    pub lease_expires_at: Option<Timestamp>,
    /// A user asked to cancel: stop and report `cancelled`.
    pub cancel_requested: bool,
}

/// One log line sent by a runner.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogLineIn {
    /// Text without trailing newline (cut at 16 KiB).
    pub text: String,
    /// `stdout`, `stderr` or `runner` (default `stdout`).
    #[serde(default)]
    pub stream: Option<String>,
    /// When the runner saw it (default: arrival time).
    #[serde(default)]
    pub at: Option<Timestamp>,
}

/// Body of `POST /api/runners/tasks/:id/logs`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogsRequest {
    /// The calling runner.
    pub runner_id: RunnerId,
    /// The attempt from the claim.
    pub attempt: Attempt,
    /// Up to 1000 lines.
    pub lines: Vec<LogLineIn>,
}

/// Answer to a log batch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogsResponse {
    /// Lines stored.
    pub accepted: u32,
    /// Lines dropped because the task's log reached its cap.
    pub dropped: u32,
    /// The cap has been reached; further lines will be dropped.
    pub truncated: bool,
}

/// Body of `POST /api/runners/tasks/:id/result`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResultRequest {
    /// The calling runner.
    pub runner_id: RunnerId,
    /// The attempt from the claim.
    pub attempt: Attempt,
    /// `succeeded`, `failed` or `cancelled`.
    pub outcome: TaskOutcome,
    /// Failure reason: a code such as `timeout`, `out_of_memory`,
    /// `runner_restarted`, `interrupted`, optionally followed by `: detail`.
    #[serde(default)]
    pub reason: Option<String>,
    /// A failure another attempt may fix (runner restart, drain).
    #[serde(default)]
    pub retryable: bool,
    /// The executor's structured output.
    #[serde(default)]
    pub output: Option<serde_json::Value>,
}

/// Answer to a result submission.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResultResponse {
    /// Task.
    pub task_id: TaskId,
    /// State after the submission.
    pub state: TaskState,
    /// This exact result had already been recorded; nothing changed.
    pub duplicate: bool,
}
