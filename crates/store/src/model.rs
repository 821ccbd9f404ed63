//! Records the store reads and writes. These are storage shapes, not wire
//! shapes: the server maps them to `ai-review-protocol` types.

use ai_review_domain::{
    ApiKeyDigest, ApiKeyId, Attempt, CommitSha, ConfigId, ConfigKind, Email, NotificationChannel,
    NotificationEvent, NotificationId, NotificationStatus, Permission, Phase, PlatformType,
    ProjectId, PushSubscriptionId, RepoUrl, ReviewId, ReviewStatus, Role, RunnerId, RunnerStatus,
    TagSet, TaskId, TaskOutcome, TaskState, Timestamp, UserId, WebhookStatus,
};
use sha2::{Digest, Sha256};

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// New id.
    pub id: UserId,
    /// Login name.
    pub email: Email,
    /// Argon2id PHC string (never the password).
    pub password_hash: String,
    /// Role.
    pub role: Role,
    /// Permissions granted (admins implicitly hold all).
    pub permissions: Vec<Permission>,
    /// Creation time.
    pub now: Timestamp,
}

/// A stored user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Id.
    pub id: UserId,
    /// Login name.
    pub email: Email,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Role.
    pub role: Role,
    /// Permissions granted.
    pub permissions: Vec<Permission>,
    /// Disabled users cannot authenticate.
    pub disabled: bool,
    /// Creation time.
    pub created_at: Timestamp,
}

impl User {
    /// Whether the user holds a permission (admins hold all).
    pub fn has(&self, p: Permission) -> bool {
        self.role == Role::Admin || self.permissions.contains(&p)
    }

    /// The permissions in effect (all of them for admins).
    pub fn effective_permissions(&self) -> Vec<Permission> {
        if self.role == Role::Admin {
            Permission::ALL.to_vec()
        } else {
            self.permissions.clone()
        }
    }
}

/// An API key to store.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    /// New id.
    pub id: ApiKeyId,
    /// Owner.
    pub user_id: UserId,
    /// Human label.
    pub name: String,
    /// Displayable start of the key (`air_AbC123`).
    pub prefix: String,
    /// SHA-256 of the whole key.
    pub digest: ApiKeyDigest,
    /// Creation time.
    pub now: Timestamp,
    /// Optional expiry.
    pub expires_at: Option<Timestamp>,
}

/// A stored API key (never the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Id.
    pub id: ApiKeyId,
    /// Owner.
    pub user_id: UserId,
    /// Human label.
    pub name: String,
    /// Displayable start of the key.
    pub prefix: String,
    /// Stored digest.
    pub digest: ApiKeyDigest,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last authenticated use (updated at most about once a minute).
    pub last_used_at: Option<Timestamp>,
    /// Expiry, if any.
    pub expires_at: Option<Timestamp>,
    /// Revocation time, if revoked.
    pub revoked_at: Option<Timestamp>,
}

/// Registration (or re-registration) of a runner.
#[derive(Debug, Clone)]
pub struct RunnerRegistration {
    /// Runner-chosen id.
    pub id: RunnerId,
    /// Display name.
    pub name: String,
    /// Runner software version.
    pub version: String,
    /// Most tasks it runs at once.
    pub max_concurrency: u32,
    /// Tags it offers for routing.
    pub tags: TagSet,
    /// The user whose API key registered it.
    pub owner: UserId,
    /// Registration time.
    pub now: Timestamp,
}

/// A stored runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runner {
    /// Id.
    pub id: RunnerId,
    /// Display name.
    pub name: String,
    /// Software version.
    pub version: String,
    /// Most tasks it runs at once.
    pub max_concurrency: u32,
    /// Tags it offers.
    pub tags: TagSet,
    /// Last reported or derived status.
    pub status: RunnerStatus,
    /// Jobs it reported running in its last heartbeat.
    pub active_jobs: u32,
    /// The user whose key registered it; only that user's keys act for it.
    pub owner: UserId,
    /// First registration.
    pub registered_at: Timestamp,
    /// Last heartbeat (registration counts as one).
    pub last_heartbeat_at: Timestamp,
}

/// A heartbeat from a runner.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    /// Who.
    pub runner_id: RunnerId,
    /// Reported status.
    pub status: RunnerStatus,
    /// Reported running jobs.
    pub active_jobs: u32,
    /// When.
    pub now: Timestamp,
    /// New lease deadline for every active task it holds.
    pub lease_until: Timestamp,
}

/// What a heartbeat did.
#[derive(Debug, Clone)]
pub struct HeartbeatOutcome {
    /// The runner after the update.
    pub runner: Runner,
    /// Tasks whose leases were renewed.
    pub renewed: Vec<TaskId>,
    /// Tasks the runner must cancel.
    pub cancel: Vec<TaskId>,
}

/// A review to create together with its task.
#[derive(Debug, Clone)]
pub struct NewReview {
    /// Review id.
    pub id: ReviewId,
    /// Task id.
    pub task_id: TaskId,
    /// Clone URL.
    pub repo_url: RepoUrl,
    /// Base revision.
    pub base_sha: CommitSha,
    /// Head revision under review.
    pub head_sha: CommitSha,
    /// Branch name, if known.
    pub branch: Option<String>,
    /// Title, if given.
    pub title: Option<String>,
    /// Who asked for it.
    pub created_by: UserId,
    /// Tags a runner must offer to claim the task.
    pub required_tags: TagSet,
    /// Claims allowed before the task fails.
    pub max_attempts: u32,
    /// When the task expires if nobody claims it.
    pub expires_at: Timestamp,
    /// The forge change it reviews (`None` for API and CLI reviews). Its
    /// round number is one more than the change's last review, and
    /// unfinished earlier reviews of the change are cancelled as superseded.
    pub change: Option<ReviewChange>,
    /// The task specification handed to the runner (opaque to the store).
    pub spec: serde_json::Value,
    /// Creation time.
    pub now: Timestamp,
}

/// A stored review.
#[derive(Debug, Clone, PartialEq)]
pub struct Review {
    /// Id.
    pub id: ReviewId,
    /// Its task.
    pub task_id: TaskId,
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
    /// Status mirrored from the task.
    pub status: ReviewStatus,
    /// Creator.
    pub created_by: UserId,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// The forge change it reviews.
    pub change: Option<ReviewChange>,
    /// 1 for a change's first review, then one more per review.
    pub round_number: u32,
    /// The review queued when this one was retried, if it was.
    pub retried_as: Option<ReviewId>,
}

/// Filter for [`crate::Store::list_reviews`] (and, without its status and
/// paging, for [`crate::Store::review_status_counts`]).
#[derive(Debug, Clone, Default)]
pub struct ReviewFilter {
    /// Only reviews of this project.
    pub project_id: Option<ProjectId>,
    /// Only reviews of this merge/pull request (with `project_id`).
    pub change_number: Option<u64>,
    /// Only this status.
    pub status: Option<ReviewStatus>,
    /// Created at or after.
    pub start: Option<Timestamp>,
    /// Created before.
    pub end: Option<Timestamp>,
    /// Page size.
    pub limit: u32,
    /// Rows to skip.
    pub offset: u64,
}

/// A stored task.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// Id.
    pub id: TaskId,
    /// The review it serves.
    pub review_id: ReviewId,
    /// Lifecycle state.
    pub state: TaskState,
    /// Last reported phase of the current attempt.
    pub phase: Option<Phase>,
    /// Claims so far; the fencing value of the current claim.
    pub attempt: Attempt,
    /// Claims allowed.
    pub max_attempts: u32,
    /// Holder of the current (or last) claim.
    pub runner_id: Option<RunnerId>,
    /// Tags a runner must offer.
    pub required_tags: TagSet,
    /// Lease deadline while active.
    pub lease_expires_at: Option<Timestamp>,
    /// Expiry while pending.
    pub expires_at: Timestamp,
    /// A user asked to cancel it while it ran.
    pub cancel_requested: bool,
    /// Why it failed, expired or was cancelled.
    pub failure_reason: Option<String>,
    /// The successful (or last failed) result's output.
    pub result: Option<serde_json::Value>,
    /// What the runner needs to execute it.
    pub spec: serde_json::Value,
    /// Bytes of log stored.
    pub log_bytes: i64,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Terminal time.
    pub finished_at: Option<Timestamp>,
}

/// Identifies one claim of a task: the caller's runner id and the attempt
/// (fencing value) it was given.
#[derive(Debug, Clone)]
pub struct TaskRef {
    /// Task.
    pub task_id: TaskId,
    /// Calling runner.
    pub runner_id: RunnerId,
    /// Presented attempt.
    pub attempt: Attempt,
}

/// A claim request.
#[derive(Debug, Clone)]
pub struct Claim {
    /// Claiming runner.
    pub runner_id: RunnerId,
    /// Tags it offers.
    pub runner_tags: TagSet,
    /// Most tasks to claim.
    pub limit: u32,
    /// When.
    pub now: Timestamp,
    /// Lease deadline.
    pub lease_until: Timestamp,
}

/// A phase report.
#[derive(Debug, Clone)]
pub struct PhaseReport {
    /// Phase entered.
    pub phase: Phase,
    /// When.
    pub now: Timestamp,
    /// Renewed lease deadline.
    pub lease_until: Timestamp,
}

/// One log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Sequence number (increasing per store; assigned on append).
    pub seq: i64,
    /// Attempt that wrote it.
    pub attempt: Attempt,
    /// `stdout`, `stderr` or `runner`.
    pub stream: String,
    /// Text (no trailing newline).
    pub text: String,
    /// When the runner saw it.
    pub at: Timestamp,
}

/// Lines to append.
#[derive(Debug, Clone)]
pub struct LogAppend {
    /// The lines (their `seq` and `attempt` are ignored and assigned).
    pub lines: Vec<LogLine>,
    /// Per-task cap in bytes.
    pub max_bytes: i64,
    /// When.
    pub now: Timestamp,
}

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogAppendOutcome {
    /// Lines stored.
    pub accepted: u32,
    /// Lines dropped because the task reached its cap.
    pub dropped: u32,
    /// The cap has been reached.
    pub truncated: bool,
}

/// A runner's end-of-attempt report.
#[derive(Debug, Clone)]
pub struct TaskResult {
    /// How it ended.
    pub outcome: TaskOutcome,
    /// Failure reason code and message.
    pub reason: Option<String>,
    /// Whether a failure may be retried on another attempt.
    pub retryable: bool,
    /// Structured output.
    pub output: Option<serde_json::Value>,
    /// When.
    pub now: Timestamp,
    /// Requeued tasks expire at this time if unclaimed.
    pub requeue_expires_at: Timestamp,
}

impl TaskResult {
    /// Digest identifying this result, used to recognise a resubmission.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.outcome.as_str());
        h.update([0]);
        h.update(self.reason.as_deref().unwrap_or(""));
        h.update([0, u8::from(self.retryable)]);
        if let Some(o) = &self.output {
            h.update(o.to_string());
        }
        hex::encode(h.finalize())
    }
}

/// What a result submission did.
#[derive(Debug, Clone)]
pub struct SubmitOutcome {
    /// The task afterwards.
    pub task: Task,
    /// The same result had already been recorded; nothing changed.
    pub duplicate: bool,
}

/// What the lease reaper did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReapReport {
    /// Back to pending for another attempt.
    pub requeued: Vec<TaskId>,
    /// Failed: out of attempts.
    pub failed: Vec<TaskId>,
    /// Cancelled: cancellation was asked and the runner went silent.
    pub cancelled: Vec<TaskId>,
}

/// One entry of a task's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskEvent {
    /// Attempt during which it happened (0 before the first claim).
    pub attempt: Attempt,
    /// What happened: `enqueued`, `claimed`, `phase`, `lease_expired`,
    /// `requeued`, `result`, `cancel_requested`, `cancelled`, `expired`,
    /// `failed`.
    pub kind: String,
    /// Details (phase name, runner id, reason).
    pub detail: String,
    /// When.
    pub at: Timestamp,
}

/// One claim of a task and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskAttempt {
    /// Attempt number.
    pub attempt: Attempt,
    /// Runner that held it.
    pub runner_id: RunnerId,
    /// Claim time.
    pub claimed_at: Timestamp,
    /// End time, if ended.
    pub finished_at: Option<Timestamp>,
    /// How it ended: a [`TaskOutcome`] name, `lease_expired` or `cancelled`.
    pub outcome: Option<String>,
    /// Reason given.
    pub reason: Option<String>,
}

/// A configuration item: an AI config, a review template or a review rule.
///
/// These are small documents edited by admins and read on every enqueue,
/// so they share one table: `kind`, `id`, a unique-per-kind `name`, an
/// `is_default` flag (at most one default per kind) and a typed JSON
/// `body` whose schema belongs to the server (secrets inside it are
/// already encrypted).
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigItem {
    /// Kind.
    pub kind: ConfigKind,
    /// Id.
    pub id: ConfigId,
    /// Name, unique within the kind.
    pub name: String,
    /// The default of its kind.
    pub is_default: bool,
    /// The item's fields.
    pub body: serde_json::Value,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// A new or replaced configuration item.
#[derive(Debug, Clone)]
pub struct ConfigItemWrite {
    /// Kind.
    pub kind: ConfigKind,
    /// Id (new for a create, existing for an update).
    pub id: ConfigId,
    /// Name, unique within the kind.
    pub name: String,
    /// Make it the default of its kind (clearing the previous default in
    /// the same transaction).
    pub is_default: bool,
    /// The item's fields.
    pub body: serde_json::Value,
    /// Now.
    pub now: Timestamp,
}

/// A project (GitLab project, GitHub repository) known to the server.
#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    /// Id.
    pub id: ProjectId,
    /// The platform config it was synced through.
    pub platform_config_id: ConfigId,
    /// `gitlab` or `github`.
    pub platform_type: PlatformType,
    /// The forge's id (GitLab project id, GitHub repository id).
    pub external_id: String,
    /// `group/name` or `owner/name`.
    pub path: String,
    /// Display name.
    pub name: String,
    /// Web page.
    pub web_url: String,
    /// HTTP(S) clone URL.
    pub clone_url: String,
    /// Default branch.
    pub default_branch: Option<String>,
    /// Reviews run only for enabled projects.
    pub enabled: bool,
    /// Per-project overrides (JSON owned by the server; `null` fields
    /// inherit the global settings).
    pub settings: serde_json::Value,
    /// Last known webhook state.
    pub webhook_status: WebhookStatus,
    /// First sync.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Last sync that saw it.
    pub synced_at: Timestamp,
}

/// A project as seen by a sync: inserted, or its forge fields refreshed
/// (its settings and `enabled` are kept).
#[derive(Debug, Clone)]
pub struct ProjectUpsert {
    /// Id used if the project is new.
    pub id: ProjectId,
    /// Platform config.
    pub platform_config_id: ConfigId,
    /// Platform type.
    pub platform_type: PlatformType,
    /// Forge id.
    pub external_id: String,
    /// Path.
    pub path: String,
    /// Name.
    pub name: String,
    /// Web page.
    pub web_url: String,
    /// Clone URL.
    pub clone_url: String,
    /// Default branch.
    pub default_branch: Option<String>,
    /// `enabled` of a new project.
    pub enabled_if_new: bool,
    /// Now.
    pub now: Timestamp,
}

/// Filters of the project list.
#[derive(Debug, Clone, Default)]
pub struct ProjectFilter {
    /// Case-insensitive substring of the path or name.
    pub search: Option<String>,
    /// Platform type.
    pub platform_type: Option<PlatformType>,
    /// Platform config.
    pub platform_config_id: Option<ConfigId>,
    /// Enabled or not.
    pub enabled: Option<bool>,
    /// Webhook state.
    pub webhook_status: Option<WebhookStatus>,
    /// Page size.
    pub limit: u32,
    /// Rows to skip.
    pub offset: u64,
}

/// Counts over all projects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectStats {
    /// All projects.
    pub total: u64,
    /// Enabled ones.
    pub enabled: u64,
    /// Per platform type.
    pub by_platform: Vec<(PlatformType, u64)>,
    /// Per webhook status.
    pub by_webhook_status: Vec<(WebhookStatus, u64)>,
}

/// A webhook delivery and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    /// Id.
    pub id: String,
    /// `gitlab` or `github`.
    pub platform: PlatformType,
    /// The forge's delivery id (`X-GitHub-Delivery`, GitLab's
    /// `Idempotency-Key` or `X-Gitlab-Event-UUID`).
    pub delivery_id: Option<String>,
    /// What arrived, e.g. `merge_request/update`, `pull_request/opened`,
    /// `note`, `issue_comment/created`.
    pub event: String,
    /// The platform config whose secret matched.
    pub platform_config_id: Option<ConfigId>,
    /// The forge's project or repository id.
    pub project_external_id: Option<String>,
    /// Merge request iid or pull request number.
    pub change_number: Option<u64>,
    /// `received`, `queued`, `ignored`, `refused` or `failed`.
    pub outcome: String,
    /// Why it was ignored, refused or failed.
    pub reason: Option<String>,
    /// The review it queued.
    pub review_id: Option<ReviewId>,
    /// Arrival.
    pub received_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// Filters of the webhook event list.
#[derive(Debug, Clone, Default)]
pub struct WebhookEventFilter {
    /// Platform.
    pub platform: Option<PlatformType>,
    /// Outcome.
    pub outcome: Option<String>,
    /// Page size.
    pub limit: u32,
    /// Rows to skip.
    pub offset: u64,
}

/// The merge/pull request a review belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewChange {
    /// Project.
    pub project_id: ProjectId,
    /// Merge request iid or pull request number.
    pub number: u64,
    /// Post the results to the forge.
    pub send_to_platform: bool,
}

/// What happened to a forge review's push-back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushState {
    /// `pending`, `sent`, `failed` or `skipped`; `None` when the review is
    /// not posted anywhere.
    pub state: Option<String>,
    /// Tries so far.
    pub attempts: u32,
    /// The last error or the reason it was skipped.
    pub error: Option<String>,
}

/// A review with its task, the task's attempts and history, and the
/// review's push-back state, all read in one snapshot by
/// [`crate::Store::review_detail`]: what `GET /api/reviews/:id` shows.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewDetail {
    /// The review.
    pub review: Review,
    /// Its task.
    pub task: Task,
    /// Every attempt of the task, by attempt number.
    pub attempts: Vec<TaskAttempt>,
    /// The task's history, oldest first.
    pub events: Vec<TaskEvent>,
    /// The review's push-back state.
    pub push: PushState,
}

/// A claimed push-back job.
#[derive(Debug, Clone)]
pub struct PushJob {
    /// The review to post.
    pub review: Review,
    /// Tries including this one.
    pub attempt: u32,
}

/// The state of a merge/pull request's thread on the forge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeThread {
    /// The summary comment to update.
    pub summary_comment_id: Option<String>,
    /// Fingerprints of findings already posted inline.
    pub posted_fingerprints: Vec<String>,
}

/// A change to a user; `None` fields keep their value.
#[derive(Debug, Clone)]
pub struct UserUpdate {
    /// The user.
    pub id: UserId,
    /// New role.
    pub role: Option<Role>,
    /// New permissions.
    pub permissions: Option<Vec<Permission>>,
    /// Disable or enable.
    pub disabled: Option<bool>,
    /// New Argon2id PHC string.
    pub password_hash: Option<String>,
}

/// A browser session to create.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// SHA-256 of the session token.
    pub digest: ApiKeyDigest,
    /// Its user.
    pub user_id: UserId,
    /// Creation time.
    pub now: Timestamp,
    /// Expiry.
    pub expires_at: Timestamp,
}

/// A stored browser session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// SHA-256 of the session token.
    pub digest: ApiKeyDigest,
    /// Its user.
    pub user_id: UserId,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last request seen.
    pub last_seen_at: Timestamp,
    /// Expiry (slides forward with use).
    pub expires_at: Timestamp,
}

/// When a task was created, first claimed and finished, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskTiming {
    /// Task.
    pub task_id: TaskId,
    /// State now.
    pub state: TaskState,
    /// Creation time.
    pub created_at: Timestamp,
    /// First claim, if any.
    pub started_at: Option<Timestamp>,
    /// Terminal time, if finished.
    pub finished_at: Option<Timestamp>,
}

/// A notification to queue: one event to deliver through one channel.
#[derive(Debug, Clone)]
pub struct NewNotification {
    /// New id.
    pub id: NotificationId,
    /// What it is about.
    pub event: NotificationEvent,
    /// Where it goes.
    pub channel: NotificationChannel,
    /// The review it is about (review events only).
    pub review_id: Option<ReviewId>,
    /// Identifies the delivery across server replicas: a notification whose
    /// key is already stored is not queued again. One key per event,
    /// subject and channel, e.g. `review_completed:<review id>:slack` or
    /// `daily_summary:2026-11-24:slack`, so a review event is sent once per
    /// review and channel and a summary once per period and channel.
    pub dedup_key: String,
    /// What to send (rendered by the server's channel senders).
    pub payload: serde_json::Value,
    /// Now: its creation time, and when it is first due.
    pub now: Timestamp,
}

/// A stored notification and its delivery state.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// Id.
    pub id: NotificationId,
    /// What it is about.
    pub event: NotificationEvent,
    /// Where it goes.
    pub channel: NotificationChannel,
    /// The review it is about.
    pub review_id: Option<ReviewId>,
    /// The deduplication key it was queued under.
    pub dedup_key: String,
    /// What to send.
    pub payload: serde_json::Value,
    /// Delivery state.
    pub status: NotificationStatus,
    /// Claims so far (each claim is one delivery try).
    pub attempts: u32,
    /// Not claimed before this time (creation, then each retry's time).
    pub next_attempt_at: Timestamp,
    /// While a sender holds it: the end of its lease. Cleared when the try
    /// is finished; a lease that ran out makes it claimable again.
    pub lease_until: Option<Timestamp>,
    /// The error of the last failed try (cleared once sent).
    pub last_error: Option<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Delivery time, once sent.
    pub sent_at: Option<Timestamp>,
}

/// Filters of the notification history ([`crate::Store::list_notifications`]).
/// `None` fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct NotificationFilter {
    /// Only this channel.
    pub channel: Option<NotificationChannel>,
    /// Only this status.
    pub status: Option<NotificationStatus>,
    /// Only this event.
    pub event: Option<NotificationEvent>,
    /// Only notifications about this review.
    pub review_id: Option<ReviewId>,
    /// Created at or after.
    pub start: Option<Timestamp>,
    /// Created before.
    pub end: Option<Timestamp>,
    /// Page size (0 returns no rows, only the total).
    pub limit: u32,
    /// Rows to skip.
    pub offset: u64,
}

/// How one delivery try of a claimed notification ended
/// ([`crate::Store::finish_notification`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotificationOutcome {
    /// Delivered: `sent`, final.
    Sent,
    /// A retryable error: stays `pending` and is claimable again from `at`.
    Retry {
        /// The next try's time (the caller's backoff).
        at: Timestamp,
        /// What went wrong.
        error: String,
    },
    /// Given up (a permanent error, or out of tries): `failed`, final.
    Failed {
        /// What went wrong.
        error: String,
    },
}

/// Notification counts per channel and status
/// ([`crate::Store::notification_stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotificationStats {
    /// `(channel, status, count)` for every pair with at least one
    /// notification, ordered by channel then status in their declaration
    /// order ([`NotificationChannel::ALL`], [`NotificationStatus::ALL`]).
    /// Pairs with none are omitted.
    pub counts: Vec<(NotificationChannel, NotificationStatus, u64)>,
}

impl NotificationStats {
    /// All notifications counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|(_, _, n)| n).sum()
    }

    /// Notifications in one status, over every channel.
    pub fn with_status(&self, status: NotificationStatus) -> u64 {
        self.counts
            .iter()
            .filter(|(_, s, _)| *s == status)
            .map(|(_, _, n)| n)
            .sum()
    }

    /// Notifications of one channel, in every status.
    pub fn of_channel(&self, channel: NotificationChannel) -> u64 {
        self.counts
            .iter()
            .filter(|(c, _, _)| *c == channel)
            .map(|(_, _, n)| n)
            .sum()
    }

    /// Notifications of one channel in one status.
    pub fn count(&self, channel: NotificationChannel, status: NotificationStatus) -> u64 {
        self.counts
            .iter()
            .find(|(c, s, _)| *c == channel && *s == status)
            .map_or(0, |(_, _, n)| *n)
    }
}

/// A browser's Web Push subscription to save
/// ([`crate::Store::save_push_subscription`]): what the browser's
/// `PushManager.subscribe()` returned, and who subscribed.
#[derive(Debug, Clone)]
pub struct NewPushSubscription {
    /// New id (kept only if the endpoint is new).
    pub id: PushSubscriptionId,
    /// The signed-in user who subscribed, if any.
    pub user_id: Option<UserId>,
    /// The push service URL the browser registered; unique per browser
    /// subscription, and the key the subscription is saved under.
    pub endpoint: String,
    /// The browser's P-256 ECDH public key (`keys.p256dh`, base64url).
    pub p256dh: String,
    /// The browser's authentication secret (`keys.auth`), already sealed by
    /// the server: the store keeps it as given.
    pub auth: String,
    /// The browser's `User-Agent`, to tell subscriptions apart in a list.
    pub user_agent: Option<String>,
    /// Now: the creation time of a new subscription, the update time of an
    /// existing one.
    pub now: Timestamp,
}

/// A stored Web Push subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushSubscription {
    /// Id (the first one saved for its endpoint).
    pub id: PushSubscriptionId,
    /// The user who last subscribed with this endpoint, if any.
    pub user_id: Option<UserId>,
    /// The push service URL (unique).
    pub endpoint: String,
    /// The browser's P-256 ECDH public key.
    pub p256dh: String,
    /// The browser's authentication secret, sealed.
    pub auth: String,
    /// The browser's `User-Agent` when it last subscribed.
    pub user_agent: Option<String>,
    /// When the endpoint was first saved.
    pub created_at: Timestamp,
    /// When it was last saved.
    pub updated_at: Timestamp,
}

/// What a shared rate limit counts against ([`crate::Store::hit_rate_limit`]):
/// the SHA-256 digest (lowercase hex) of the limit's name and the client's
/// identity, so the store never holds an address, an email or a credential,
/// and two limits never share a counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RateLimitKey(String);

impl RateLimitKey {
    /// The key of `subject` (an address, a credential's digest…) under the
    /// limit named `limit` (e.g. `login`).
    pub fn new(limit: &str, subject: &[u8]) -> Self {
        let mut h = Sha256::new();
        h.update(b"ai-review rate limit v1\0");
        // Length-prefixed, so no (limit, subject) pair can pass for another.
        h.update((limit.len() as u64).to_be_bytes());
        h.update(limit.as_bytes());
        h.update(subject);
        Self(hex::encode(h.finalize()))
    }

    /// The digest as lowercase hex, as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One fixed window of a shared rate limit and the attempts counted in it
/// ([`crate::Store::hit_rate_limit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitWindow {
    /// When the window started: a multiple of its length since the Unix
    /// epoch, so every replica computes the same windows.
    pub start: Timestamp,
    /// When it ends, and the next window starts counting from zero.
    pub end: Timestamp,
    /// Attempts counted in it, the one just counted included.
    pub hits: u64,
}

impl RateLimitWindow {
    /// The window of `window_ms` milliseconds (values below 1 count as 1)
    /// that contains `now`, with no hits yet.
    pub fn containing(now: Timestamp, window_ms: i64) -> Self {
        let len = window_ms.max(1);
        let start = now.as_millis() - now.as_millis().rem_euclid(len);
        Self {
            start: Timestamp::from_millis(start),
            end: Timestamp::from_millis(start.saturating_add(len)),
            hits: 0,
        }
    }

    /// Until when the store keeps the window's row: one more window past
    /// its end, so a replica whose clock lags a little behind still counts
    /// into the same row instead of starting it afresh.
    pub fn kept_until(&self) -> Timestamp {
        self.end.plus_millis(self.end.millis_since(self.start))
    }
}
