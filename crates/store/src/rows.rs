//! Row shapes shared by the SQL backends and their conversion to records.
//!
//! Both backends store the same columns with portable types (TEXT, BIGINT
//! milliseconds, booleans, JSON as TEXT), so one set of `FromRow` structs
//! decodes rows from either; a value that does not parse back into its
//! domain type is reported as [`StoreError::Corrupt`].

use crate::{ApiKey, LogLine, Review, Runner, StoreError, Task, TaskAttempt, TaskEvent, User};
use ai_review_domain::{
    ApiKeyDigest, ApiKeyId, Attempt, CommitSha, Email, Permission, Phase, RepoUrl, ReviewId,
    ReviewStatus, Role, RunnerId, RunnerStatus, TagSet, TaskId, TaskState, Timestamp, UserId,
};

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn ts(v: i64) -> Timestamp {
    Timestamp::from_millis(v)
}

fn attempt(v: i64) -> Result<Attempt, StoreError> {
    u32::try_from(v)
        .map(Attempt)
        .map_err(|e| corrupt("attempt", e))
}

fn u32_col(what: &str, v: i64) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|e| corrupt(what, e))
}

/// Encodes a tag set as the JSON array stored in `tags`/`required_tags`.
pub fn tags_json(t: &TagSet) -> String {
    serde_json::to_string(&t.to_vec()).unwrap_or_else(|_| "[]".into())
}

fn tags_from_json(s: &str) -> Result<TagSet, StoreError> {
    let v: Vec<String> = serde_json::from_str(s).map_err(|e| corrupt("tags", e))?;
    TagSet::try_from(v).map_err(|e| corrupt("tags", e))
}

/// Encodes permissions as the JSON array stored in `users.permissions`.
pub fn permissions_json(p: &[Permission]) -> String {
    serde_json::to_string(p).unwrap_or_else(|_| "[]".into())
}

fn json_opt(s: Option<String>) -> Result<Option<serde_json::Value>, StoreError> {
    s.map(|s| serde_json::from_str(&s).map_err(|e| corrupt("json", e)))
        .transpose()
}

/// `users` row.
#[derive(sqlx::FromRow)]
#[allow(missing_docs)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub password_hash: String,
    pub role: String,
    pub permissions: String,
    pub disabled: bool,
    pub created_at: i64,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(r: UserRow) -> Result<Self, StoreError> {
        Ok(User {
            id: UserId::parse(&r.id).map_err(|e| corrupt("user id", e))?,
            email: Email::parse(&r.email).map_err(|e| corrupt("email", e))?,
            password_hash: r.password_hash,
            role: Role::parse(&r.role).map_err(|e| corrupt("role", e))?,
            permissions: serde_json::from_str(&r.permissions)
                .map_err(|e| corrupt("permissions", e))?,
            disabled: r.disabled,
            created_at: ts(r.created_at),
        })
    }
}

/// `api_keys` row.
#[derive(sqlx::FromRow)]
#[allow(missing_docs)]
pub struct ApiKeyRow {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub prefix: String,
    pub digest: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = StoreError;
    fn try_from(r: ApiKeyRow) -> Result<Self, StoreError> {
        Ok(ApiKey {
            id: ApiKeyId::parse(&r.id).map_err(|e| corrupt("api key id", e))?,
            user_id: UserId::parse(&r.user_id).map_err(|e| corrupt("user id", e))?,
            name: r.name,
            prefix: r.prefix,
            digest: ApiKeyDigest::from_hex(r.digest),
            created_at: ts(r.created_at),
            last_used_at: r.last_used_at.map(ts),
            expires_at: r.expires_at.map(ts),
            revoked_at: r.revoked_at.map(ts),
        })
    }
}

/// A live API key joined with its owner, as read by authentication.
#[derive(sqlx::FromRow)]
#[allow(missing_docs)]
pub struct AuthRow {
    #[sqlx(flatten)]
    pub key: ApiKeyRow,
    pub u_email: String,
    pub u_password_hash: String,
    pub u_role: String,
    pub u_permissions: String,
    pub u_disabled: bool,
    pub u_created_at: i64,
}

impl TryFrom<AuthRow> for (ApiKey, User) {
    type Error = StoreError;
    fn try_from(r: AuthRow) -> Result<Self, StoreError> {
        let user = User::try_from(UserRow {
            id: r.key.user_id.clone(),
            email: r.u_email,
            password_hash: r.u_password_hash,
            role: r.u_role,
            permissions: r.u_permissions,
            disabled: r.u_disabled,
            created_at: r.u_created_at,
        })?;
        Ok((ApiKey::try_from(r.key)?, user))
    }
}

/// Authentication in one query: the live key with this digest (parameter
/// 1) unexpired at time parameter 2, and its enabled owner.
#[macro_export]
macro_rules! authenticate_query {
    ($p1:literal, $p2:literal) => {
        concat!(
            "SELECT k.id, k.user_id, k.name, k.prefix, k.digest, k.created_at, k.last_used_at, \
             k.expires_at, k.revoked_at, u.email AS u_email, u.password_hash AS u_password_hash, \
             u.role AS u_role, u.permissions AS u_permissions, u.disabled AS u_disabled, \
             u.created_at AS u_created_at \
             FROM api_keys k JOIN users u ON u.id = k.user_id \
             WHERE k.digest = ", $p1, " AND k.revoked_at IS NULL \
             AND (k.expires_at IS NULL OR k.expires_at > ", $p2, ") AND NOT u.disabled"
        )
    };
}

/// `runners` row.
#[derive(sqlx::FromRow)]
#[allow(missing_docs)]
pub struct RunnerRow {
    pub id: String,
    pub name: String,
    pub version: String,
    pub max_concurrency: i64,
    pub tags: String,
    pub status: String,
    pub active_jobs: i64,
    pub owner_id: String,
    pub registered_at: i64,
    pub last_heartbeat_at: i64,
}

impl TryFrom<RunnerRow> for Runner {
    type Error = StoreError;
    fn try_from(r: RunnerRow) -> Result<Self, StoreError> {
        Ok(Runner {
            id: RunnerId::parse(&r.id).map_err(|e| corrupt("runner id", e))?,
            name: r.name,
            version: r.version,
            max_concurrency: u32_col("max_concurrency", r.max_concurrency)?,
            tags: tags_from_json(&r.tags)?,
            status: RunnerStatus::parse(&r.status).map_err(|e| corrupt("runner status", e))?,
            active_jobs: u32_col("active_jobs", r.active_jobs)?,
            owner: UserId::parse(&r.owner_id).map_err(|e| corrupt("owner id", e))?,
            registered_at: ts(r.registered_at),
            last_heartbeat_at: ts(r.last_heartbeat_at),
        })
    }
}

/// `reviews` row.
#[derive(sqlx::FromRow)]
#[allow(missing_docs)]
pub struct ReviewRow {
    pub id: String,
    pub task_id: String,
    pub repo_url: String,
    pub base_sha: String,
    pub head_sha: String,
    pub branch: Option<String>,
    pub title: Option<String>,
    pub status: String,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub project_id: Option<String>,
    pub change_number: Option<i64>,
    pub round_number: i64,
    pub send_to_platform: bool,
    pub retried_as: Option<String>,
}

impl TryFrom<ReviewRow> for Review {
    type Error = StoreError;
    fn try_from(r: ReviewRow) -> Result<Self, StoreError> {
        Ok(Review {
            id: ReviewId::parse(&r.id).map_err(|e| corrupt("review id", e))?,
            task_id: TaskId::parse(&r.task_id).map_err(|e| corrupt("task id", e))?,
            repo_url: RepoUrl::parse(&r.repo_url).map_err(|e| corrupt("repo url", e))?,
            base_sha: CommitSha::parse(&r.base_sha).map_err(|e| corrupt("base sha", e))?,
            head_sha: CommitSha::parse(&r.head_sha).map_err(|e| corrupt("head sha", e))?,
            branch: r.branch,
            title: r.title,
            status: ReviewStatus::parse(&r.status).map_err(|e| corrupt("review status", e))?,
            created_by: UserId::parse(&r.created_by).map_err(|e| corrupt("user id", e))?,
            created_at: ts(r.created_at),
            updated_at: ts(r.updated_at),
            change: match (r.project_id, r.change_number) {
                (Some(p), Some(n)) => Some(crate::ReviewChange {
                    project_id: ai_review_domain::ProjectId::parse(&p)
                        .map_err(|e| corrupt("project id", e))?,
                    number: n.unsigned_abs(),
                    send_to_platform: r.send_to_platform,
                }),
                _ => None,
            },
            round_number: u32_col("round number", r.round_number)?,
            retried_as: r
                .retried_as
                .as_deref()
                .map(ReviewId::parse)
                .transpose()
                .map_err(|e| corrupt("retried as", e))?,
        })
    }
}

/// The columns of a task row, in [`TaskRow`] order, as a string literal so
/// backends can `concat!` it into `'static` queries.
#[macro_export]
macro_rules! task_columns {
    () => {
        "id, review_id, state, phase, attempt, max_attempts, runner_id, required_tags, \
         lease_expires_at, expires_at, cancel_requested, failure_reason, result, spec, log_bytes, \
         created_at, updated_at, finished_at"
    };
}

/// The columns of a runner row, in [`RunnerRow`] order.
#[macro_export]
macro_rules! runner_columns {
    () => {
        "id, name, version, max_concurrency, tags, status, active_jobs, owner_id, registered_at, \
         last_heartbeat_at"
    };
}

/// The columns of a review row, in [`ReviewRow`] order.
#[macro_export]
macro_rules! review_columns {
    () => {
        "id, task_id, repo_url, base_sha, head_sha, branch, title, status, created_by, \
         created_at, updated_at, project_id, change_number, round_number, send_to_platform, \
         retried_as"
    };
}

/// The columns of an API key row, in [`ApiKeyRow`] order.
#[macro_export]
macro_rules! api_key_columns {
    () => {
        "id, user_id, name, prefix, digest, created_at, last_used_at, expires_at, revoked_at"
    };
}

/// The columns of a user row, in [`UserRow`] order.
#[macro_export]
macro_rules! user_columns {
    () => {
        "id, email, password_hash, role, permissions, disabled, created_at"
    };
}

/// `tasks` row.
#[derive(sqlx::FromRow)]
#[allow(missing_docs)]
pub struct TaskRow {
    pub id: String,
    pub review_id: String,
    pub state: String,
    pub phase: Option<String>,
    pub attempt: i64,
    pub max_attempts: i64,
    pub runner_id: Option<String>,
    pub required_tags: String,
    pub lease_expires_at: Option<i64>,
    pub expires_at: i64,
    pub cancel_requested: bool,
    pub failure_reason: Option<String>,
    pub result: Option<String>,
    pub spec: String,
    pub log_bytes: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

impl TryFrom<TaskRow> for Task {
    type Error = StoreError;
    fn try_from(r: TaskRow) -> Result<Self, StoreError> {
        Ok(Task {
            id: TaskId::parse(&r.id).map_err(|e| corrupt("task id", e))?,
            review_id: ReviewId::parse(&r.review_id).map_err(|e| corrupt("review id", e))?,
            state: TaskState::parse(&r.state).map_err(|e| corrupt("task state", e))?,
            phase: r
                .phase
                .as_deref()
                .map(Phase::parse)
                .transpose()
                .map_err(|e| corrupt("phase", e))?,
            attempt: attempt(r.attempt)?,
            max_attempts: u32_col("max_attempts", r.max_attempts)?,
            runner_id: r
                .runner_id
                .as_deref()
                .map(RunnerId::parse)
                .transpose()
                .map_err(|e| corrupt("runner id", e))?,
            required_tags: tags_from_json(&r.required_tags)?,
            lease_expires_at: r.lease_expires_at.map(ts),
            expires_at: ts(r.expires_at),
            cancel_requested: r.cancel_requested,
            failure_reason: r.failure_reason,
            result: json_opt(r.result)?,
            spec: serde_json::from_str(&r.spec).map_err(|e| corrupt("spec", e))?,
            log_bytes: r.log_bytes,
            created_at: ts(r.created_at),
            updated_at: ts(r.updated_at),
            finished_at: r.finished_at.map(ts),
        })
    }
}

/// `task_events` row.
#[derive(sqlx::FromRow)]
#[allow(missing_docs)]
pub struct TaskEventRow {
    pub attempt: i64,
    pub kind: String,
    pub detail: String,
    pub at: i64,
}

impl TryFrom<TaskEventRow> for TaskEvent {
    type Error = StoreError;
    fn try_from(r: TaskEventRow) -> Result<Self, StoreError> {
        Ok(TaskEvent {
            attempt: attempt(r.attempt)?,
            kind: r.kind,
            detail: r.detail,
            at: ts(r.at),
        })
    }
}

/// `task_attempts` row.
#[derive(sqlx::FromRow)]
#[allow(missing_docs)]
pub struct TaskAttemptRow {
    pub attempt: i64,
    pub runner_id: String,
    pub claimed_at: i64,
    pub finished_at: Option<i64>,
    pub outcome: Option<String>,
    pub reason: Option<String>,
}

impl TryFrom<TaskAttemptRow> for TaskAttempt {
    type Error = StoreError;
    fn try_from(r: TaskAttemptRow) -> Result<Self, StoreError> {
        Ok(TaskAttempt {
            attempt: attempt(r.attempt)?,
            runner_id: RunnerId::parse(&r.runner_id).map_err(|e| corrupt("runner id", e))?,
            claimed_at: ts(r.claimed_at),
            finished_at: r.finished_at.map(ts),
            outcome: r.outcome,
            reason: r.reason,
        })
    }
}

/// `task_logs` row.
#[derive(sqlx::FromRow)]
#[allow(missing_docs)]
pub struct LogLineRow {
    pub seq: i64,
    pub attempt: i64,
    pub stream: String,
    pub text: String,
    pub at: i64,
}

impl TryFrom<LogLineRow> for LogLine {
    type Error = StoreError;
    fn try_from(r: LogLineRow) -> Result<Self, StoreError> {
        Ok(LogLine {
            seq: r.seq,
            attempt: attempt(r.attempt)?,
            stream: r.stream,
            text: r.text,
            at: ts(r.at),
        })
    }
}

/// Converts a batch of rows, failing on the first corrupt one.
pub fn convert_all<R, T>(rows: Vec<R>) -> Result<Vec<T>, StoreError>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}

/// Wraps a database error as [`StoreError::Backend`], recognising unique
/// violations as [`StoreError::Conflict`].
pub fn db_error(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(d) = &e
        && d.is_unique_violation()
    {
        return StoreError::Conflict(d.message().to_owned());
    }
    StoreError::Backend(Box::new(e))
}

/// Puts records fetched with `id IN (…)` in the order their ids were asked
/// for: an id with no record is skipped, a repeated id yields its record
/// once, at its first position.
pub fn in_order_of<K, T>(ids: &[K], mut records: Vec<T>, id: impl Fn(&T) -> &K) -> Vec<T>
where
    K: Eq + std::hash::Hash,
{
    let mut position = std::collections::HashMap::with_capacity(ids.len());
    for (i, k) in ids.iter().enumerate() {
        position.entry(k).or_insert(i);
    }
    records.sort_by_key(|r| position.get(id(r)).copied().unwrap_or(usize::MAX));
    records
}

/// The bind values of a [`ReviewFilter`](crate::ReviewFilter), shared by
/// the review list, its count and the status counts.
#[allow(missing_docs)]
pub struct ReviewFilterParams<'a> {
    pub status: Option<&'static str>,
    pub start: Option<i64>,
    pub end: Option<i64>,
    pub project_id: Option<&'a str>,
    pub change_number: Option<i64>,
}

impl<'a> From<&'a crate::ReviewFilter> for ReviewFilterParams<'a> {
    fn from(f: &'a crate::ReviewFilter) -> Self {
        ReviewFilterParams {
            status: f.status.map(ReviewStatus::as_str),
            start: f.start.map(Timestamp::as_millis),
            end: f.end.map(Timestamp::as_millis),
            project_id: f
                .project_id
                .as_ref()
                .map(ai_review_domain::ProjectId::as_str),
            change_number: f
                .change_number
                .map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
        }
    }
}

/// The error of an `enqueue_retry` whose `UPDATE … WHERE retried_as IS
/// NULL` changed no row, given the review's `retried_as` read back in the
/// same transaction (`None`: there is no such review).
pub fn retry_refused(of: &ReviewId, retried_as: Option<Option<String>>) -> StoreError {
    match retried_as {
        None => StoreError::not_found("review", of),
        Some(existing) => StoreError::Conflict(format!(
            "review {of} was already retried as {}",
            existing.as_deref().unwrap_or("another review")
        )),
    }
}

/// The fencing check shared by every task call: the presented attempt must
/// be the current one, the task must still be active, and the caller must
/// be its holder. A runner whose lease expired sees `StaleAttempt` (someone
/// claimed it since) or `NotActive` (it went back to pending), never
/// `NotHolder`: that one is reserved for a runner acting on a task it never
/// held.
pub fn check_task_ref(task: &Task, r: &crate::TaskRef) -> Result<(), StoreError> {
    if task.attempt != r.attempt {
        return Err(StoreError::StaleAttempt {
            current: task.attempt,
            presented: r.attempt,
        });
    }
    if !task.state.is_active() {
        return Err(StoreError::NotActive { state: task.state });
    }
    if task.runner_id.as_ref() != Some(&r.runner_id) {
        return Err(StoreError::NotHolder);
    }
    Ok(())
}

/// Columns of `config_items`, in [`ConfigItemRow`] order.
#[macro_export]
macro_rules! config_item_columns {
    () => {
        "kind, id, name, is_default, body, created_at, updated_at"
    };
}

/// `config_items` row.
#[derive(sqlx::FromRow)]
#[allow(missing_docs)]
pub struct ConfigItemRow {
    pub kind: String,
    pub id: String,
    pub name: String,
    pub is_default: bool,
    pub body: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl TryFrom<ConfigItemRow> for crate::ConfigItem {
    type Error = StoreError;
    fn try_from(r: ConfigItemRow) -> Result<Self, StoreError> {
        Ok(crate::ConfigItem {
            kind: r.kind.parse().map_err(|e| corrupt("config kind", e))?,
            id: ai_review_domain::ConfigId::parse(&r.id).map_err(|e| corrupt("config id", e))?,
            name: r.name,
            is_default: r.is_default,
            body: serde_json::from_str(&r.body).map_err(|e| corrupt("config body", e))?,
            created_at: ts(r.created_at),
            updated_at: ts(r.updated_at),
        })
    }
}

/// Columns of `projects`, in [`ProjectRow`] order.
#[macro_export]
macro_rules! project_columns {
    () => {
        "id, platform_config_id, platform_type, external_id, path, name, web_url, clone_url, \
         default_branch, enabled, settings, webhook_status, created_at, updated_at, synced_at"
    };
}

/// `projects` row.
#[derive(sqlx::FromRow)]
#[allow(missing_docs)]
pub struct ProjectRow {
    pub id: String,
    pub platform_config_id: String,
    pub platform_type: String,
    pub external_id: String,
    pub path: String,
    pub name: String,
    pub web_url: String,
    pub clone_url: String,
    pub default_branch: Option<String>,
    pub enabled: bool,
    pub settings: String,
    pub webhook_status: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub synced_at: i64,
}

impl TryFrom<ProjectRow> for crate::Project {
    type Error = StoreError;
    fn try_from(r: ProjectRow) -> Result<Self, StoreError> {
        Ok(crate::Project {
            id: ai_review_domain::ProjectId::parse(&r.id).map_err(|e| corrupt("project id", e))?,
            platform_config_id: ai_review_domain::ConfigId::parse(&r.platform_config_id)
                .map_err(|e| corrupt("platform config id", e))?,
            platform_type: r
                .platform_type
                .parse()
                .map_err(|e| corrupt("platform type", e))?,
            external_id: r.external_id,
            path: r.path,
            name: r.name,
            web_url: r.web_url,
            clone_url: r.clone_url,
            default_branch: r.default_branch,
            enabled: r.enabled,
            settings: serde_json::from_str(&r.settings).map_err(|e| corrupt("settings", e))?,
            webhook_status: r
                .webhook_status
                .parse()
                .map_err(|e| corrupt("webhook status", e))?,
            created_at: ts(r.created_at),
            updated_at: ts(r.updated_at),
            synced_at: ts(r.synced_at),
        })
    }
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern and wraps it
/// in `%…%`, lower-cased.
pub fn like_pattern(search: &str) -> String {
    let mut out = String::from("%");
    for c in search.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Columns of `webhook_events`, in [`WebhookEventRow`] order.
#[macro_export]
macro_rules! webhook_event_columns {
    () => {
        "id, platform, delivery_id, event, platform_config_id, project_external_id, \
         change_number, outcome, reason, review_id, received_at, updated_at"
    };
}

/// `webhook_events` row.
#[derive(sqlx::FromRow)]
#[allow(missing_docs)]
pub struct WebhookEventRow {
    pub id: String,
    pub platform: String,
    pub delivery_id: Option<String>,
    pub event: String,
    pub platform_config_id: Option<String>,
    pub project_external_id: Option<String>,
    pub change_number: Option<i64>,
    pub outcome: String,
    pub reason: Option<String>,
    pub review_id: Option<String>,
    pub received_at: i64,
    pub updated_at: i64,
}

impl TryFrom<WebhookEventRow> for crate::WebhookEvent {
    type Error = StoreError;
    fn try_from(r: WebhookEventRow) -> Result<Self, StoreError> {
        Ok(crate::WebhookEvent {
            id: r.id,
            platform: r.platform.parse().map_err(|e| corrupt("platform", e))?,
            delivery_id: r.delivery_id,
            event: r.event,
            platform_config_id: r
                .platform_config_id
                .map(|c| ai_review_domain::ConfigId::parse(&c))
                .transpose()
                .map_err(|e| corrupt("platform config id", e))?,
            project_external_id: r.project_external_id,
            change_number: r.change_number.map(i64::unsigned_abs),
            outcome: r.outcome,
            reason: r.reason,
            review_id: r
                .review_id
                .map(|c| ReviewId::parse(&c))
                .transpose()
                .map_err(|e| corrupt("review id", e))?,
            received_at: ts(r.received_at),
            updated_at: ts(r.updated_at),
        })
    }
}

/// A review row with its push-back attempt count (`RETURNING <review
/// columns>, push_attempts`).
#[derive(sqlx::FromRow)]
#[allow(missing_docs)]
pub struct PushJobRow {
    #[sqlx(flatten)]
    pub review: ReviewRow,
    pub push_attempts: i64,
}

impl TryFrom<PushJobRow> for crate::PushJob {
    type Error = StoreError;
    fn try_from(r: PushJobRow) -> Result<Self, StoreError> {
        Ok(crate::PushJob {
            review: Review::try_from(r.review)?,
            attempt: u32_col("push attempts", r.push_attempts)?,
        })
    }
}

/// Columns of `notifications`, in [`NotificationRow`] order.
#[macro_export]
macro_rules! notification_columns {
    () => {
        "id, event, channel, review_id, dedup_key, payload, status, attempts, next_attempt_at, \
         lease_until, last_error, created_at, updated_at, sent_at"
    };
}

/// `notifications` row.
#[derive(sqlx::FromRow)]
#[allow(missing_docs)]
pub struct NotificationRow {
    pub id: String,
    pub event: String,
    pub channel: String,
    pub review_id: Option<String>,
    pub dedup_key: String,
    pub payload: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub lease_until: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub sent_at: Option<i64>,
}

impl TryFrom<NotificationRow> for crate::Notification {
    type Error = StoreError;
    fn try_from(r: NotificationRow) -> Result<Self, StoreError> {
        Ok(crate::Notification {
            id: ai_review_domain::NotificationId::parse(&r.id)
                .map_err(|e| corrupt("notification id", e))?,
            event: r
                .event
                .parse()
                .map_err(|e| corrupt("notification event", e))?,
            channel: r
                .channel
                .parse()
                .map_err(|e| corrupt("notification channel", e))?,
            review_id: r
                .review_id
                .as_deref()
                .map(ReviewId::parse)
                .transpose()
                .map_err(|e| corrupt("review id", e))?,
            dedup_key: r.dedup_key,
            payload: serde_json::from_str(&r.payload)
                .map_err(|e| corrupt("notification payload", e))?,
            status: r
                .status
                .parse()
                .map_err(|e| corrupt("notification status", e))?,
            attempts: u32_col("notification attempts", r.attempts)?,
            next_attempt_at: ts(r.next_attempt_at),
            lease_until: r.lease_until.map(ts),
            last_error: r.last_error,
            created_at: ts(r.created_at),
            updated_at: ts(r.updated_at),
            sent_at: r.sent_at.map(ts),
        })
    }
}

/// The bind values of a [`NotificationFilter`](crate::NotificationFilter),
/// shared by the history page and its count.
#[allow(missing_docs)]
pub struct NotificationFilterParams<'a> {
    pub channel: Option<&'static str>,
    pub status: Option<&'static str>,
    pub event: Option<&'static str>,
    pub review_id: Option<&'a str>,
    pub start: Option<i64>,
    pub end: Option<i64>,
}

impl<'a> From<&'a crate::NotificationFilter> for NotificationFilterParams<'a> {
    fn from(f: &'a crate::NotificationFilter) -> Self {
        NotificationFilterParams {
            channel: f.channel.map(ai_review_domain::NotificationChannel::as_str),
            status: f.status.map(ai_review_domain::NotificationStatus::as_str),
            event: f.event.map(ai_review_domain::NotificationEvent::as_str),
            review_id: f.review_id.as_ref().map(ReviewId::as_str),
            start: f.start.map(Timestamp::as_millis),
            end: f.end.map(Timestamp::as_millis),
        }
    }
}

/// Columns of `push_subscriptions`, in [`PushSubscriptionRow`] order.
#[macro_export]
macro_rules! push_subscription_columns {
    () => {
        "id, user_id, endpoint, p256dh, auth, user_agent, created_at, updated_at"
    };
}

/// `push_subscriptions` row.
#[derive(sqlx::FromRow)]
#[allow(missing_docs)]
pub struct PushSubscriptionRow {
    pub id: String,
    pub user_id: Option<String>,
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
    pub user_agent: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl TryFrom<PushSubscriptionRow> for crate::PushSubscription {
    type Error = StoreError;
    fn try_from(r: PushSubscriptionRow) -> Result<Self, StoreError> {
        Ok(crate::PushSubscription {
            id: ai_review_domain::PushSubscriptionId::parse(&r.id)
                .map_err(|e| corrupt("push subscription id", e))?,
            user_id: r
                .user_id
                .as_deref()
                .map(UserId::parse)
                .transpose()
                .map_err(|e| corrupt("user id", e))?,
            endpoint: r.endpoint,
            p256dh: r.p256dh,
            auth: r.auth,
            user_agent: r.user_agent,
            created_at: ts(r.created_at),
            updated_at: ts(r.updated_at),
        })
    }
}
