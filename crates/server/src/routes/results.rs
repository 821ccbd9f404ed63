//! What a finished review found, read from the executor's result document
//! (contract version 1) stored with the task:
//! `GET /api/reviews/:id/comments` (filters `file`, `severity`, `limit`,
//! `offset`), `/files`, `/files/progress`.

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiQuery;
use ai_review_domain::{ReviewId, TaskState};
use ai_review_protocol::{Envelope, Pagination};
use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};

async fn result_of(state: &AppState, id: &str) -> ApiResult<(TaskState, serde_json::Value)> {
    let id = ReviewId::parse(id)?;
    let review = state
        .store
        .get_review(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("review {id} not found")))?;
    let task = state
        .store
        .get_task(&review.task_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("task {} not found", review.task_id)))?;
    let result = if task.state == TaskState::Completed {
        task.result.unwrap_or_default()
    } else {
        serde_json::Value::Null
    };
    Ok((task.state, result))
}

/// One review comment (a finding).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Comment {
    /// Stable id: the finding's fingerprint.
    pub id: String,
    /// File (new path).
    pub file: String,
    /// First line (new side).
    pub line: u64,
    /// Last line.
    pub end_line: u64,
    /// `info`, `warning` or `error`.
    pub severity: String,
    /// Category, e.g. `secret`.
    pub category: String,
    /// Rule id.
    pub rule_id: String,
    /// Confidence 0-1.
    pub confidence: f64,
    /// Message.
    pub message: String,
    /// Replacement for the lines, when the reviewer suggested one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<String>,
    /// `check` (deterministic) or `model`.
    pub source: String,
}

/// Query of `/comments`.
#[derive(Debug, Deserialize)]
pub struct CommentsQuery {
    /// Only this file.
    pub file: Option<String>,
    /// Only this severity.
    pub severity: Option<String>,
    /// Page size (1-500, default 100).
    pub limit: Option<u64>,
    /// Rows to skip.
    pub offset: Option<u64>,
}

fn comments_from(result: &serde_json::Value) -> Vec<Comment> {
    result["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| Comment {
            id: f["fingerprint"].as_str().unwrap_or_default().to_owned(),
            file: f["file"].as_str().unwrap_or_default().to_owned(),
            line: f["line"].as_u64().unwrap_or(0),
            end_line: f["endLine"].as_u64().unwrap_or(0),
            severity: f["severity"].as_str().unwrap_or("info").to_owned(),
            category: f["category"].as_str().unwrap_or_default().to_owned(),
            rule_id: f["ruleId"].as_str().unwrap_or_default().to_owned(),
            confidence: f["confidence"].as_f64().unwrap_or(0.0),
            message: f["message"].as_str().unwrap_or_default().to_owned(),
            suggestion: f["suggestion"].as_str().map(str::to_owned),
            source: f["source"].as_str().unwrap_or("check").to_owned(),
        })
        .collect()
}

/// `GET /api/reviews/:id/comments`.
pub async fn comments(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<CommentsQuery>,
) -> ApiResult<Json<Envelope<Vec<Comment>>>> {
    if let Some(s) = &q.severity
        && !matches!(s.as_str(), "info" | "warning" | "error")
    {
        return Err(ApiError::bad_request(
            "severity must be info, warning or error",
        ));
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request("limit must be 1-500"));
    }
    let offset = q.offset.unwrap_or(0);
    let (_, result) = result_of(&state, &id).await?;
    let all: Vec<Comment> = comments_from(&result)
        .into_iter()
        .filter(|c| q.file.as_ref().is_none_or(|f| &c.file == f))
        .filter(|c| q.severity.as_ref().is_none_or(|s| &c.severity == s))
        .collect();
    let total = all.len() as u64;
    let page: Vec<Comment> = all
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .collect();
    Ok(Json(Envelope::paginated(
        page,
        Pagination::new(offset / limit + 1, limit, total),
    )))
}

/// `GET /api/reviews/:id/files`: the changed files with their statistics.
pub async fn files(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Envelope<serde_json::Value>>> {
    let (_, result) = result_of(&state, &id).await?;
    Ok(Json(Envelope::ok(
        result
            .get("files")
            .cloned()
            .unwrap_or_else(|| serde_json::json!([])),
    )))
}

/// Per-file progress of a review.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// `pending` (not finished), `completed`, `failed`, `cancelled`.
    pub status: String,
    /// Files in the change (known once the executor reported).
    pub total_files: u64,
    /// Files fully reviewed.
    pub reviewed_files: u64,
    /// Files partly reviewed (the rest is in the review's `notReviewed`).
    pub partial_files: u64,
    /// Files skipped on purpose (binary, lock, generated, excluded, ...).
    pub skipped_files: u64,
    /// Files that should have been reviewed but were not (budget, model
    /// failure), each with its reason.
    pub not_reviewed_files: u64,
    /// Per file.
    pub files: Vec<FileProgress>,
}

/// Progress of one file.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileProgress {
    /// Path.
    pub path: String,
    /// `reviewed`, `partial`, `skipped` or `not_reviewed`.
    pub status: String,
    /// Why it was skipped or not (fully) reviewed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Changed lines the model reviewed.
    pub reviewed_lines: u64,
}

/// `GET /api/reviews/:id/files/progress`.
pub async fn progress(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Envelope<Progress>>> {
    let (task_state, result) = result_of(&state, &id).await?;
    let files: Vec<FileProgress> = result["files"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            let binary = f["binary"].as_bool().unwrap_or(false);
            // Results written before the review engine carry no status:
            // binary files were skipped, the rest checked.
            let status = f["reviewStatus"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| if binary { "skipped" } else { "reviewed" }.to_owned());
            let reason = f["reason"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| binary.then(|| "binary file".to_owned()));
            FileProgress {
                path: f["path"].as_str().unwrap_or_default().to_owned(),
                status,
                reason,
                reviewed_lines: f["reviewedLines"].as_u64().unwrap_or(0),
            }
        })
        .collect();
    let count = |s: &str| files.iter().filter(|f| f.status == s).count() as u64;
    let status = ai_review_domain::ReviewStatus::from_task_state(task_state)
        .as_str()
        .to_owned();
    Ok(Json(Envelope::ok(Progress {
        status,
        total_files: files.len() as u64,
        reviewed_files: count("reviewed"),
        partial_files: count("partial"),
        skipped_files: count("skipped"),
        not_reviewed_files: count("not_reviewed"),
        files,
    })))
}
