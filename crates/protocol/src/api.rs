//! Bodies of the user-facing API (`/api/reviews`, `/api/api-keys`, ...).

use ai_review_domain::{
    ApiKeyId, Attempt, CommitSha, ConfigId, Phase, RepoUrl, ReviewId, ReviewStatus, Role, RunnerId,
    TaskId, TaskState, Timestamp, UserId,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `POST /api/reviews`: queue a review of one change.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateReviewRequest {
    /// Where runners clone from.
    pub repo_url: RepoUrl,
    /// The revision the change is compared with.
    pub base_sha: CommitSha,
    /// The revision under review.
    pub head_sha: CommitSha,
    /// Branch name, informational.
    #[serde(default)]
    pub branch: Option<String>,
    /// Title, informational.
    #[serde(default)]
    pub title: Option<String>,
    /// Tags a runner must offer to take the task.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The AI config to review with; default: the default AI config, and
    /// with none configured the deterministic checks only.
    #[serde(default)]
    pub ai_config_id: Option<ConfigId>,
    /// The review template; default: the default template, else the
    /// built-in one.
    #[serde(default)]
    pub template_id: Option<ConfigId>,
    /// Project exclude globs (files matching them are skipped with a
    /// reason).
    #[serde(default)]
    pub excludes: Vec<String>,
}

/// A review with its task, as returned by `GET /api/reviews/:id`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReviewView {
    /// Id.
    pub id: ReviewId,
    /// `pending`, `completed`, `failed` or `cancelled`.
    pub status: ReviewStatus,
    /// Clone URL.
    pub repo_url: RepoUrl,
    /// Base revision.
    pub base_sha: CommitSha,
    /// Head revision.
    pub head_sha: CommitSha,
    /// Branch.
    pub branch: Option<String>,
    /// Title.
    pub title: Option<String>,
    /// Creator.
    pub created_by: UserId,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Review round of this merge/pull request (1 for a first review).
    pub round_number: u32,
    /// The project of a forge review.
    #[serde(default)]
    pub project_id: Option<String>,
    /// Merge request iid or pull request number of a forge review.
    #[serde(default)]
    pub change_number: Option<u64>,
    /// The AI config used, if any.
    pub ai_config_id: Option<String>,
    /// The template used, if any (`null`: the built-in one).
    pub template_id: Option<String>,
    /// Rules that applied to at least one reviewed file.
    pub applied_rule_ids: Vec<String>,
    /// Changed lines the model reviewed.
    pub reviewed_lines: u64,
    /// Rating 1-5 once completed.
    pub rating: Option<u8>,
    /// Posting to the merge/pull request (detail view of forge reviews).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<PushView>,
    /// The runner task behind it.
    pub task: TaskView,
}

/// A runner task as shown to users.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskView {
    /// Id.
    pub id: TaskId,
    /// Lifecycle state.
    pub state: TaskState,
    /// Current phase while running.
    pub phase: Option<Phase>,
    /// Claims so far.
    pub attempt: Attempt,
    /// Claims allowed.
    pub max_attempts: u32,
    /// Holder while running.
    pub runner_id: Option<RunnerId>,
    /// Tags required of a runner.
    pub required_tags: Vec<String>,
    /// Lease deadline while running.
    pub lease_expires_at: Option<Timestamp>,
    /// Expiry while pending.
    pub expires_at: Timestamp,
    /// A cancellation was requested.
    pub cancel_requested: bool,
    /// Why it failed, expired or was cancelled.
    pub failure_reason: Option<String>,
    /// The executor's structured output.
    pub result: Option<serde_json::Value>,
    /// Creation time.
    pub created_at: Timestamp,
    /// End time.
    pub finished_at: Option<Timestamp>,
    /// Every claim and how it ended (detail view only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<AttemptView>,
    /// The task's history (detail view only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EventView>,
}

/// One claim of a task.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptView {
    /// Attempt number.
    pub attempt: Attempt,
    /// Runner.
    pub runner_id: RunnerId,
    /// Claim time.
    pub claimed_at: Timestamp,
    /// End time.
    pub finished_at: Option<Timestamp>,
    /// `succeeded`, `failed`, `cancelled` or `lease_expired`.
    pub outcome: Option<String>,
    /// Reason given.
    pub reason: Option<String>,
}

/// One entry of a task's history.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    /// Attempt.
    pub attempt: Attempt,
    /// What happened.
    pub kind: String,
    /// Details.
    pub detail: String,
    /// When.
    pub at: Timestamp,
}

/// A log line as shown to users.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogLineView {
    /// Sequence number; pass the last one seen as `after` to continue.
    pub seq: i64,
    /// Attempt that wrote it.
    pub attempt: Attempt,
    /// `stdout`, `stderr` or `runner`.
    pub stream: String,
    /// Text.
    pub text: String,
    /// When.
    pub at: Timestamp,
}

/// `POST /api/api-keys`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    /// A label (1-100 characters).
    pub name: String,
    /// Days until the key expires; never if absent.
    #[serde(default)]
    pub expires_in_days: Option<u32>,
}

/// An API key as listed (never the secret).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyView {
    /// Id.
    pub id: ApiKeyId,
    /// Label.
    pub name: String,
    /// Visible start of the key.
    pub prefix: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last use.
    pub last_used_at: Option<Timestamp>,
    /// Expiry.
    pub expires_at: Option<Timestamp>,
    /// Revocation time.
    pub revoked_at: Option<Timestamp>,
}

/// The answer to `POST /api/api-keys`: the only time the key is shown.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedApiKey {
    /// The key in clear. Store it now: it cannot be shown again.
    pub key: String,
    /// The stored record.
    pub api_key: ApiKeyView,
}

/// The authenticated caller, `GET /api/me`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeView {
    /// User id.
    pub id: UserId,
    /// Email.
    pub email: String,
    /// Role.
    pub role: Role,
    /// Permissions in effect.
    pub permissions: Vec<String>,
}

/// `GET /api/health`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthView {
    /// `ok` or `unavailable`.
    pub status: String,
    /// `sqlite` or `postgres`.
    pub database: String,
    /// Server version.
    pub version: String,
}

/// `POST /api/reviews/trigger-manual-review`: review a merge/pull request
/// of a synced project now.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TriggerManualReview {
    /// The project.
    pub project_id: ai_review_domain::ProjectId,
    /// Merge request iid (GitLab) or pull request number (GitHub).
    #[serde(alias = "prNumber")]
    pub mr_iid: u64,
    /// Post the results to the forge (default `true`; `false` keeps them in
    /// the dashboard).
    #[serde(default = "default_true")]
    pub send_to_platform: bool,
    /// Template (else the default).
    #[serde(default)]
    pub template_id: Option<ConfigId>,
}

fn default_true() -> bool {
    true
}

/// What happened to a forge review's push-back.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushView {
    /// `pending`, `sent`, `failed` or `skipped`.
    pub state: String,
    /// Tries so far.
    pub attempts: u32,
    /// The last forge error, or why it was skipped.
    pub error: Option<String>,
}

/// A user, as admins see it (`GET /api/users`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    /// User id.
    pub id: UserId,
    /// Email (login name).
    pub email: String,
    /// Role.
    pub role: Role,
    /// Permissions granted (admins hold all).
    pub permissions: Vec<String>,
    /// Disabled users cannot log in or use their keys.
    pub disabled: bool,
    /// Creation time.
    pub created_at: Timestamp,
}

/// `POST /api/users` (admin).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateUserRequest {
    /// Email (login name).
    pub email: String,
    /// Password (at least 8 characters); stored as an Argon2id hash.
    pub password: String,
    /// `user` (default) or `admin`.
    #[serde(default)]
    pub role: Option<Role>,
    /// Permission strings, e.g. `review:create`.
    #[serde(default)]
    pub permissions: Vec<String>,
}

/// `PATCH /api/users/:id` (admin); absent fields keep their value.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateUserRequest {
    /// New role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// New permission strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
    /// Disable (ends the user's sessions) or enable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// New password (ends the user's sessions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// `GET /api/queuedash`: the queue at a glance.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueDash {
    /// Tasks per state (every state listed, zeros included).
    pub counts: std::collections::BTreeMap<String, u64>,
    /// Age of the oldest pending task (ms), if any is pending.
    pub oldest_pending_age_ms: Option<i64>,
    /// Reviews finished in the last hour, by outcome.
    pub last_hour: QueueThroughput,
    /// Pending tasks, oldest first.
    pub pending: Vec<QueueTask>,
    /// Tasks held by runners, oldest first.
    pub running: Vec<QueueTask>,
    /// Tasks that failed, expired or were cancelled in the last 24 hours,
    /// newest first (the ones a retry may be wanted for).
    pub recent_failures: Vec<QueueTask>,
}

/// Finished tasks over a window.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueThroughput {
    /// Completed.
    pub completed: u64,
    /// Failed, expired or cancelled.
    pub failed: u64,
    /// Completed per minute over the window.
    pub completed_per_minute: f64,
}

/// One task in the queue view.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueTask {
    /// Task id.
    pub task_id: TaskId,
    /// Its review.
    pub review_id: ReviewId,
    /// State.
    pub state: TaskState,
    /// Phase of the current attempt.
    pub phase: Option<Phase>,
    /// Claims so far.
    pub attempt: u32,
    /// Claims allowed.
    pub max_attempts: u32,
    /// Runner holding (or that last held) it.
    pub runner_id: Option<RunnerId>,
    /// Age since it was queued (ms).
    pub age_ms: i64,
    /// Tags a runner needs.
    pub required_tags: Vec<String>,
    /// Why it failed, if it did.
    pub failure_reason: Option<String>,
    /// Whether the caller may cancel it (pending or running).
    pub can_cancel: bool,
    /// Whether the caller may retry it (failed, expired or cancelled, and
    /// not retried yet).
    pub can_retry: bool,
}
