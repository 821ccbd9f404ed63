//! Reviews: `POST /api/reviews` queues one change; `GET /api/reviews`,
//! `GET /api/reviews/:id` (state, phases, attempts, result),
//! `POST /api/reviews/:id/cancel`, `POST /api/reviews/:id/retry`,
//! `GET /api/reviews/:id/logs`.

use crate::app::{AppState, ok};
use crate::auth::Caller;
use crate::config::millis;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::routes::views;
use ai_review_domain::{
    CommitSha, ConfigId, Permission, RepoUrl, ReviewId, ReviewStatus, Role, TagSet, TaskId,
    TaskState, Timestamp, UserId,
};
use ai_review_protocol::api::{CreateReviewRequest, LogLineView, ReviewView};
use ai_review_protocol::runner::{CloneCredentials, TaskSpec};
use ai_review_protocol::{Envelope, Pagination};
use ai_review_store::{NewReview, Review, ReviewChange, ReviewDetail, ReviewFilter, Task};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

/// An optional free-text field: at most `max` printable characters;
/// blank means absent.
pub fn optional_text(name: &str, v: Option<String>, max: usize) -> ApiResult<Option<String>> {
    match v {
        Some(s) if s.chars().count() > max || s.chars().any(char::is_control) => Err(
            ApiError::bad_request(format!("{name} must be at most {max} printable characters")),
        ),
        other => Ok(other.filter(|s| !s.trim().is_empty())),
    }
}

/// Checks exclude globs (at most 200, each valid).
pub fn check_excludes(globs: Vec<String>) -> ApiResult<Vec<String>> {
    if globs.len() > 200 {
        return Err(ApiError::bad_request("at most 200 exclude globs"));
    }
    globs
        .into_iter()
        .map(|g| {
            globset::Glob::new(&g).map_err(|e| {
                ApiError::bad_request(format!("exclude glob {g:?} is invalid: {e}"))
            })?;
            Ok(g)
        })
        .collect()
}

/// Everything a new review needs; [`enqueue`] resolves the configuration,
/// seals the secrets into the spec and queues the task.
#[derive(Debug)]
pub struct Enqueue {
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
    /// Runner tags required.
    pub tags: TagSet,
    /// AI config (else the default).
    pub ai_config_id: Option<ConfigId>,
    /// Template (else the default).
    pub template_id: Option<ConfigId>,
    /// Exclude globs (checked by the caller).
    pub excludes: Vec<String>,
    /// Clone credentials (forge projects).
    pub clone_credentials: Option<CloneCredentials>,
    /// Creator.
    pub created_by: UserId,
    /// The forge change it reviews.
    pub change: Option<ReviewChange>,
    /// Incremental round: the head the change's last completed review saw.
    pub since_sha: Option<CommitSha>,
}

/// Queues a review: resolves the AI config, template and rules, freezes
/// them into the task spec with every secret sealed, writes the review and
/// its task, and wakes long-polling runners.
pub async fn enqueue(state: &AppState, e: Enqueue) -> ApiResult<(Review, Task)> {
    let now = state.clock.now();
    let id = ReviewId::generate();
    let resolved =
        crate::resolve::resolve(state, e.ai_config_id.as_ref(), e.template_id.as_ref()).await?;
    let (ai_config, sealed_key) = match resolved.ai {
        Some((ai, key)) => (Some(ai), key),
        None => (None, None),
    };
    let spec = TaskSpec {
        review_id: id.clone(),
        repo_url: e.repo_url.clone(),
        branch: e.branch.clone(),
        base_sha: e.base_sha.clone(),
        head_sha: e.head_sha.clone(),
        title: e.title.clone(),
        file_changes: Vec::new(),
        ai_config,
        template: resolved.template,
        rules: resolved.rules,
        excludes: e.excludes,
        since_sha: e.since_sha,
        clone_credentials: e.clone_credentials,
        request_id: crate::request_id::current(),
    };
    let spec = crate::resolve::stored_spec(&spec, sealed_key.as_deref(), &state.settings.secrets)?;
    let (review, task) = state
        .store
        .enqueue_review(NewReview {
            id,
            task_id: TaskId::generate(),
            repo_url: e.repo_url,
            base_sha: e.base_sha,
            head_sha: e.head_sha,
            branch: e.branch,
            title: e.title,
            created_by: e.created_by,
            required_tags: e.tags,
            max_attempts: state.settings.max_attempts,
            expires_at: now.plus_millis(millis(state.settings.unclaimed_expiry)),
            spec,
            change: e.change,
            now,
        })
        .await?;
    crate::queue::tasks_ready(state).await;
    tracing::info!(review.id = %review.id, task.id = %task.id, "review queued");
    Ok((review, task))
}

/// `POST /api/reviews` (needs `review:create`): 202 with the review and its
/// queued task.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateReviewRequest>,
) -> ApiResult<(StatusCode, Json<Envelope<ReviewView>>)> {
    caller.require(Permission::ReviewCreate)?;
    let (review, task) = enqueue(
        &state,
        Enqueue {
            tags: TagSet::from_items(req.tags.iter().map(String::as_str))?,
            branch: optional_text("branch", req.branch, 255)?,
            title: optional_text("title", req.title, 500)?,
            excludes: check_excludes(req.excludes)?,
            repo_url: req.repo_url,
            base_sha: req.base_sha,
            head_sha: req.head_sha,
            ai_config_id: req.ai_config_id,
            template_id: req.template_id,
            clone_credentials: None,
            created_by: caller.user.id.clone(),
            change: None,
            since_sha: None,
        },
    )
    .await?;
    let spec = task.spec.clone();
    let view = views::review(review, &spec, views::task(task, Vec::new(), Vec::new()));
    Ok((StatusCode::ACCEPTED, ok(view)))
}

pub(crate) async fn load(state: &AppState, id: &str) -> ApiResult<Review> {
    let id = ReviewId::parse(id)?;
    state
        .store
        .get_review(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("review {id} not found")))
}

/// A review with its task, attempts, events and push-back state, read in
/// one snapshot ([`ai_review_store::Store::review_detail`]), so the
/// review's status always agrees with its task's state. 404 if there is no
/// such review.
pub(crate) async fn load_detail(state: &AppState, id: &ReviewId) -> ApiResult<ReviewDetail> {
    state
        .store
        .review_detail(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("review {id} not found")))
}

/// The API view of a review read by [`load_detail`].
pub(crate) fn detail_view(detail: ReviewDetail) -> ReviewView {
    let ReviewDetail {
        review,
        task,
        attempts,
        events,
        push,
    } = detail;
    let spec = task.spec.clone();
    let mut view = views::review(review, &spec, views::task(task, attempts, events));
    view.push = push.state.map(|s| ai_review_protocol::api::PushView {
        state: s,
        attempts: push.attempts,
        error: push.error,
    });
    view
}

/// The API view of review `id`, read in one snapshot: [`load_detail`] then
/// [`detail_view`].
pub(crate) async fn detail(state: &AppState, id: &ReviewId) -> ApiResult<ReviewView> {
    Ok(detail_view(load_detail(state, id).await?))
}

/// `GET /api/reviews/:id`: the review with its task's state, phase,
/// attempts, history and result.
pub async fn get_one(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Envelope<ReviewView>>> {
    let id = ReviewId::parse(&id)?;
    Ok(ok(detail(&state, &id).await?))
}

/// `POST /api/reviews/:id/cancel` (the review's creator with
/// `review:create`, or an admin): a pending task ends at once, a running
/// one is stopped by its runner after its next heartbeat.
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Envelope<ReviewView>>> {
    caller.require(Permission::ReviewCreate)?;
    let review = load(&state, &id).await?;
    if review.created_by != caller.user.id && caller.user.role != Role::Admin {
        return Err(ApiError::forbidden(
            "only the review's creator or an admin may cancel it",
        ));
    }
    state
        .store
        .cancel_task(&review.task_id, state.clock.now())
        .await?;
    tracing::info!(review.id = %review.id, "cancellation requested");
    Ok(ok(detail(&state, &review.id).await?))
}

/// `POST /api/reviews/:id/retry` (the review's creator with
/// `review:create`, or an admin): queues the same review again, with the
/// same frozen specification, as a new review (and, for a merge/pull
/// request, a new round). Only a review that failed, expired or was
/// cancelled can be retried. 202 with the new review.
pub async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Envelope<ReviewView>>)> {
    caller.require(Permission::ReviewCreate)?;
    let review = load(&state, &id).await?;
    if review.created_by != caller.user.id && caller.user.role != Role::Admin {
        return Err(ApiError::forbidden(
            "only the review's creator or an admin may retry it",
        ));
    }
    let task = state
        .store
        .get_task(&review.task_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("task {} not found", review.task_id)))?;
    if let Some(again) = &review.retried_as {
        return Err(ApiError::conflict(format!(
            "review {} was already retried as {again}",
            review.id
        )));
    }
    if !matches!(
        task.state,
        TaskState::Failed | TaskState::Expired | TaskState::Cancelled
    ) {
        return Err(ApiError::conflict(format!(
            "review {} is {}: only a failed, expired or cancelled review can be retried",
            review.id, task.state
        )));
    }
    let now = state.clock.now();
    let new_id = ReviewId::generate();
    let mut spec = task.spec.clone();
    if let Some(obj) = spec.as_object_mut() {
        obj.insert("reviewId".into(), serde_json::json!(new_id.as_str()));
    }
    let (new_review, _) = state
        .store
        .enqueue_retry(
            &review.id,
            NewReview {
                id: new_id,
                task_id: TaskId::generate(),
                repo_url: review.repo_url.clone(),
                base_sha: review.base_sha.clone(),
                head_sha: review.head_sha.clone(),
                branch: review.branch.clone(),
                title: review.title.clone(),
                created_by: caller.user.id.clone(),
                required_tags: task.required_tags.clone(),
                max_attempts: state.settings.max_attempts,
                expires_at: now.plus_millis(millis(state.settings.unclaimed_expiry)),
                spec,
                change: review.change.clone(),
                now,
            },
        )
        .await?;
    crate::queue::tasks_ready(&state).await;
    tracing::info!(review.id = %new_review.id, retry_of = %review.id, "review queued again");
    let view = detail(&state, &new_review.id).await?;
    Ok((StatusCode::ACCEPTED, ok(view)))
}

/// Query of `GET /api/reviews`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    /// 1-based page (default 1).
    pub page: Option<u64>,
    /// Page size, 1-100 (default 20).
    pub page_size: Option<u32>,
    /// `pending`, `completed`, `failed` or `cancelled`.
    pub status: Option<String>,
    /// Created at or after (RFC 3339 or YYYY-MM-DD).
    pub start_date: Option<String>,
    /// Created before (RFC 3339 or YYYY-MM-DD).
    pub end_date: Option<String>,
    /// Only reviews of this project.
    pub project_id: Option<String>,
}

/// Counts per status for the list's stats.
#[derive(Debug, Serialize, Deserialize, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReviewStats {
    /// All reviews matching the date filter.
    pub total: u64,
    /// Queued or running.
    pub pending: u64,
    /// Completed.
    pub completed: u64,
    /// Failed.
    pub failed: u64,
    /// Cancelled.
    pub cancelled: u64,
}

/// The `GET /api/reviews` payload.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReviewList {
    /// This page.
    pub items: Vec<ReviewView>,
    /// Counts per status (date filter applied, status filter not).
    pub stats: ReviewStats,
}

/// `GET /api/reviews`: paginated, newest first, with stats.
pub async fn list(
    State(state): State<AppState>,
    _caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Envelope<ReviewList>>> {
    let page = q.page.unwrap_or(1);
    let page_size = q.page_size.unwrap_or(20);
    if page == 0 || !(1..=100).contains(&page_size) {
        return Err(ApiError::bad_request("page must be ≥ 1 and pageSize 1-100"));
    }
    let status = q.status.as_deref().map(ReviewStatus::parse).transpose()?;
    let start = q.start_date.as_deref().map(Timestamp::parse).transpose()?;
    let end = q.end_date.as_deref().map(Timestamp::parse).transpose()?;
    let project_id = q
        .project_id
        .as_deref()
        .map(ai_review_domain::ProjectId::parse)
        .transpose()?;
    let filter = ReviewFilter {
        project_id,
        change_number: None,
        status,
        start,
        end,
        limit: page_size,
        offset: (page - 1).saturating_mul(u64::from(page_size)),
    };
    let (rows, total) = state.store.list_reviews(&filter).await?;
    let ids: Vec<TaskId> = rows.iter().map(|r| r.task_id.clone()).collect();
    let tasks = state.store.get_tasks(&ids).await?;
    let mut items = Vec::with_capacity(rows.len());
    for r in rows {
        let task = tasks
            .iter()
            .find(|t| t.id == r.task_id)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("task {} not found", r.task_id)))?;
        let spec = task.spec.clone();
        items.push(views::review(
            r,
            &spec,
            views::task(task, Vec::new(), Vec::new()),
        ));
    }
    let mut stats = ReviewStats::default();
    for (s, n) in state.store.review_status_counts(&filter).await? {
        stats.total += n;
        match s {
            ReviewStatus::Pending => stats.pending = n,
            ReviewStatus::Completed => stats.completed = n,
            ReviewStatus::Failed => stats.failed = n,
            ReviewStatus::Cancelled => stats.cancelled = n,
        }
    }
    Ok(Json(Envelope::paginated(
        ReviewList { items, stats },
        Pagination::new(page, u64::from(page_size), total),
    )))
}

/// Query of `GET /api/reviews/:id/logs`.
#[derive(Debug, Deserialize)]
pub struct LogsQuery {
    /// Only lines after this sequence number (default 0).
    pub after: Option<i64>,
    /// Most lines (1-5000, default 1000).
    pub limit: Option<u32>,
}

/// `GET /api/reviews/:id/logs`: the task log, in order.
pub async fn logs(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<LogsQuery>,
) -> ApiResult<Json<Envelope<Vec<LogLineView>>>> {
    let limit = q.limit.unwrap_or(1000);
    if !(1..=5000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be 1-5000"));
    }
    let review = load(&state, &id).await?;
    let lines = state
        .store
        .task_logs(&review.task_id, q.after.unwrap_or(0), limit)
        .await?;
    Ok(ok(lines.into_iter().map(views::log_line).collect()))
}

/// `POST /api/reviews/trigger-manual-review` (`review:create`): the same
/// checks as a `/ai-review` comment (auto-review and draft rules do not
/// apply), then 202 with the queued review. A refusal is 400 with its
/// reason, a forge failure 502.
pub async fn trigger_manual(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<ai_review_protocol::api::TriggerManualReview>,
) -> ApiResult<(StatusCode, Json<Envelope<ReviewView>>)> {
    use crate::webhooks::orchestrate::{Options, Outcome, run};
    caller.require(Permission::ReviewCreate)?;
    let project = state
        .store
        .get_project(&req.project_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("project {} not found", req.project_id)))?;
    let config = crate::routes::platforms::find(&state, &project.platform_config_id)
        .await?
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "the project's platform config {} no longer exists",
                project.platform_config_id
            ))
        })?;
    let stored: crate::routes::platforms::StoredPlatform = crate::routes::configs::body(&config)?;
    let trigger = crate::webhooks::parse::Trigger {
        platform: project.platform_type,
        event: "manual".into(),
        project_external_id: project.external_id.clone(),
        project_path: project.path.clone(),
        number: req.mr_iid,
        manual: true,
        opened: false,
        draft: false,
    };
    let opts = Options {
        send_to_platform: req.send_to_platform,
        template_id: req.template_id,
    };
    match run(&state, &config, &stored, &trigger, &opts).await {
        Outcome::Queued { review, .. } => {
            let view = detail(&state, &review).await?;
            Ok((StatusCode::ACCEPTED, ok(view)))
        }
        Outcome::Refused(r) | Outcome::Ignored(r) => Err(ApiError::bad_request(r)),
        Outcome::Failed(r) => Err(ApiError::new(StatusCode::BAD_GATEWAY, r)),
    }
}
