//! Projects and global settings.
//!
//! | Call | Permission |
//! | --- | --- |
//! | `GET /api/projects` (all, by path), `/paginated`, `/stats`, `/:id`, `/:id/config` | signed in |
//! | `PATCH /api/projects/:id` | `project:update` |
//! | `GET /api/settings/global` | signed in |
//! | `PUT`/`PATCH /api/settings/global` | `config:update` |
//!
//! `/paginated` takes `page`, `pageSize` (default 20, at most 100),
//! `search`, `platformType`, `platformConfigId`, `enabled` and
//! `webhookStatus`.

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::routes::configs::{body, encode};
use ai_review_domain::{ConfigId, ConfigKind, Permission, PlatformType, ProjectId, WebhookStatus};
use ai_review_protocol::projects::{
    GlobalSettings, ProjectSettings, ProjectStatsView, ProjectUpdate, ProjectView,
    ResolvedProjectConfig, Source,
};
use ai_review_protocol::{Envelope, Pagination};
use ai_review_store::{Project, ProjectFilter};
use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;

/// The id of the one global-settings item.
fn global_id() -> ConfigId {
    // A fixed, valid UUID: there is exactly one global-settings document.
    ConfigId::parse("00000000-0000-7000-8000-000000000001").unwrap_or_else(|_| ConfigId::generate())
}

/// The global settings (defaults when never saved).
pub async fn global_settings(state: &AppState) -> ApiResult<GlobalSettings> {
    match state
        .store
        .get_config_item(ConfigKind::GlobalSettings, &global_id())
        .await?
    {
        Some(item) => body(&item),
        None => Ok(GlobalSettings::default()),
    }
}

/// A project as answered.
pub fn view(p: Project) -> ApiResult<ProjectView> {
    let settings: ProjectSettings = serde_json::from_value(p.settings.clone()).map_err(|e| {
        ApiError::from(ai_review_store::StoreError::Corrupt(format!(
            "project {} settings: {e}",
            p.id
        )))
    })?;
    Ok(ProjectView {
        id: p.id,
        platform_config_id: p.platform_config_id,
        platform_type: p.platform_type,
        external_id: p.external_id,
        path: p.path,
        name: p.name,
        web_url: p.web_url,
        clone_url: p.clone_url,
        default_branch: p.default_branch,
        enabled: p.enabled,
        settings,
        webhook_status: p.webhook_status,
        created_at: p.created_at,
        updated_at: p.updated_at,
        synced_at: p.synced_at,
    })
}

/// The settings in effect for a project.
pub fn resolve(p: &ProjectView, g: &GlobalSettings) -> ResolvedProjectConfig {
    let mut sources = std::collections::BTreeMap::new();
    let mut pick = |field: &str, project: bool| {
        sources.insert(
            field.to_owned(),
            if project {
                Source::Project
            } else {
                Source::Global
            },
        );
    };
    let s = &p.settings;
    pick("autoReview", s.auto_review.is_some());
    pick("excludes", s.excludes.is_some());
    pick("aiConfigId", s.ai_config_id.is_some());
    pick("defaultReviewerIds", s.default_reviewer_ids.is_some());
    pick("autoAssignAuthor", s.auto_assign_author.is_some());
    ResolvedProjectConfig {
        project_id: p.id.clone(),
        enabled: p.enabled,
        auto_review: s.auto_review.unwrap_or(g.auto_review),
        excludes: s.excludes.clone().unwrap_or_else(|| g.excludes.clone()),
        ai_config_id: s.ai_config_id.clone().or_else(|| g.ai_config_id.clone()),
        default_reviewer_ids: s
            .default_reviewer_ids
            .clone()
            .unwrap_or_else(|| g.default_reviewer_ids.clone()),
        auto_assign_author: s.auto_assign_author.unwrap_or(g.auto_assign_author),
        review_drafts: g.review_drafts,
        sources,
    }
}

async fn load(state: &AppState, id: &str) -> ApiResult<Project> {
    let id = ProjectId::parse(id)?;
    state
        .store
        .get_project(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("project {id} not found")))
}

fn check_globs(field: &str, globs: &[String]) -> ApiResult<()> {
    if globs.len() > 200 {
        return Err(ApiError::bad_request(format!("{field}: at most 200 globs")));
    }
    for g in globs {
        globset::Glob::new(g)
            .map_err(|e| ApiError::bad_request(format!("{field}: glob {g:?} is invalid: {e}")))?;
    }
    Ok(())
}

fn check_reviewers(field: &str, ids: &[String]) -> ApiResult<()> {
    if ids.len() > 50
        || ids
            .iter()
            .any(|i| i.is_empty() || i.len() > 100 || i.chars().any(char::is_whitespace))
    {
        return Err(ApiError::bad_request(format!(
            "{field}: at most 50 user ids or logins, each 1-100 characters without spaces"
        )));
    }
    Ok(())
}

async fn check_ai_config(state: &AppState, id: Option<&ConfigId>) -> ApiResult<()> {
    if let Some(id) = id
        && state
            .store
            .get_config_item(ConfigKind::AiConfig, id)
            .await?
            .is_none()
    {
        return Err(ApiError::bad_request(format!(
            "aiConfigId {id} does not exist; list them with GET /api/ai-configs"
        )));
    }
    Ok(())
}

/// `GET /api/projects`: every project, by path (at most 1,000; use
/// `/paginated` beyond).
pub async fn list(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<Json<Envelope<Vec<ProjectView>>>> {
    let (items, _) = state
        .store
        .list_projects(&ProjectFilter {
            limit: 1000,
            ..ProjectFilter::default()
        })
        .await?;
    let views = items.into_iter().map(view).collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(Envelope::ok(views)))
}

/// Query of `GET /api/projects/paginated`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageQuery {
    /// 1-based page.
    pub page: Option<u64>,
    /// Page size (1-100, default 20).
    pub page_size: Option<u64>,
    /// Substring of path or name.
    pub search: Option<String>,
    /// `gitlab` or `github`.
    pub platform_type: Option<String>,
    /// Platform config id.
    pub platform_config_id: Option<String>,
    /// `true` or `false`.
    pub enabled: Option<bool>,
    /// `active`, `inactive`, `error`, `unknown`, `not_configured`.
    pub webhook_status: Option<String>,
}

/// `GET /api/projects/paginated`.
pub async fn paginated(
    State(state): State<AppState>,
    _caller: Caller,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Envelope<Vec<ProjectView>>>> {
    let page = q.page.unwrap_or(1);
    let size = q.page_size.unwrap_or(20);
    if page == 0 || !(1..=100).contains(&size) {
        return Err(ApiError::bad_request(
            "page must be at least 1 and pageSize 1-100",
        ));
    }
    let search = q
        .search
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    if search.as_ref().is_some_and(|s| s.chars().count() > 200) {
        return Err(ApiError::bad_request(
            "search must be at most 200 characters",
        ));
    }
    let filter = ProjectFilter {
        search,
        platform_type: q
            .platform_type
            .as_deref()
            .map(PlatformType::parse)
            .transpose()?,
        platform_config_id: q
            .platform_config_id
            .as_deref()
            .map(ConfigId::parse)
            .transpose()?,
        enabled: q.enabled,
        webhook_status: q
            .webhook_status
            .as_deref()
            .map(WebhookStatus::parse)
            .transpose()?,
        limit: u32::try_from(size).unwrap_or(100),
        offset: (page - 1).saturating_mul(size),
    };
    let (items, total) = state.store.list_projects(&filter).await?;
    let views = items.into_iter().map(view).collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(Envelope::paginated(
        views,
        Pagination::new(page, size, total),
    )))
}

/// `GET /api/projects/stats`.
pub async fn stats(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<Json<Envelope<ProjectStatsView>>> {
    let s = state.store.project_stats().await?;
    Ok(Json(Envelope::ok(ProjectStatsView {
        total: s.total,
        enabled: s.enabled,
        disabled: s.total - s.enabled,
        by_platform: s
            .by_platform
            .into_iter()
            .map(|(k, v)| (k.as_str().to_owned(), v))
            .collect(),
        by_webhook_status: s
            .by_webhook_status
            .into_iter()
            .map(|(k, v)| (k.as_str().to_owned(), v))
            .collect(),
    })))
}

/// `GET /api/projects/:id`.
pub async fn get_one(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Envelope<ProjectView>>> {
    Ok(Json(Envelope::ok(view(load(&state, &id).await?)?)))
}

/// `GET /api/projects/:id/config`.
pub async fn config(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Envelope<ResolvedProjectConfig>>> {
    let p = view(load(&state, &id).await?)?;
    let g = global_settings(&state).await?;
    Ok(Json(Envelope::ok(resolve(&p, &g))))
}

/// `PATCH /api/projects/:id` (`project:update`).
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(u): ApiJson<ProjectUpdate>,
) -> ApiResult<Json<Envelope<ProjectView>>> {
    caller.require(Permission::ProjectUpdate)?;
    let current = view(load(&state, &id).await?)?;
    let mut s = current.settings.clone();
    if let Some(v) = u.auto_review {
        s.auto_review = v;
    }
    if let Some(v) = u.excludes {
        if let Some(globs) = &v {
            check_globs("excludes", globs)?;
        }
        s.excludes = v;
    }
    if let Some(v) = u.ai_config_id {
        check_ai_config(&state, v.as_ref()).await?;
        s.ai_config_id = v;
    }
    if let Some(v) = u.default_reviewer_ids {
        if let Some(ids) = &v {
            check_reviewers("defaultReviewerIds", ids)?;
        }
        s.default_reviewer_ids = v;
    }
    if let Some(v) = u.auto_assign_author {
        s.auto_assign_author = v;
    }
    let p = state
        .store
        .update_project(
            &current.id,
            u.enabled.unwrap_or(current.enabled),
            encode(&s)?,
            state.clock.now(),
        )
        .await?;
    tracing::info!(project.id = %p.id, user.id = %caller.user.id, "project settings updated");
    Ok(Json(Envelope::ok(view(p)?)))
}

/// `GET /api/settings/global`.
pub async fn get_global(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<Json<Envelope<GlobalSettings>>> {
    Ok(Json(Envelope::ok(global_settings(&state).await?)))
}

/// `PUT /api/settings/global` (`config:update`): replaces the settings
/// (absent fields take their defaults).
pub async fn put_global(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(g): ApiJson<GlobalSettings>,
) -> ApiResult<Json<Envelope<GlobalSettings>>> {
    caller.require(Permission::ConfigUpdate)?;
    check_globs("excludes", &g.excludes)?;
    check_reviewers("defaultReviewerIds", &g.default_reviewer_ids)?;
    check_ai_config(&state, g.ai_config_id.as_ref()).await?;
    let saved = crate::routes::configs::save_singleton(
        &state,
        ConfigKind::GlobalSettings,
        global_id(),
        "global",
        encode(&g)?,
    )
    .await?;
    tracing::info!(user.id = %caller.user.id, "global settings saved");
    Ok(Json(Envelope::ok(body(&saved)?)))
}

/// Answer of a webhook check.
#[derive(
    Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct WebhookCheck {
    /// `active`, `inactive`, `error`, `unknown` or `not_configured`.
    pub status: WebhookStatus,
    /// The URL the forge's webhook must point at.
    pub webhook_url: String,
}

/// `POST /api/projects/:id/webhook/check` (`project:update`): asks the
/// forge whether a webhook points at this server and records the answer.
pub async fn check_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Envelope<WebhookCheck>>> {
    caller.require(Permission::ProjectUpdate)?;
    let project = load(&state, &id).await?;
    let base = state.settings.public_url.clone().ok_or_else(|| {
        ApiError::bad_request(
            "set AI_REVIEW_PUBLIC_URL to the URL forges reach this server at; webhooks are checked against <url>/api/webhook/<platform>",
        )
    })?;
    let webhook_url = format!("{base}/api/webhook/{}", project.platform_type);
    let config = crate::routes::platforms::find(&state, &project.platform_config_id)
        .await?
        .ok_or_else(|| ApiError::bad_request("the project's platform config no longer exists"))?;
    let stored: crate::routes::platforms::StoredPlatform = body(&config)?;
    let forge = crate::webhooks::orchestrate::forge_of(&state, project.platform_type, &stored)
        .map_err(ApiError::bad_request)?;
    let pref = crate::webhooks::orchestrate::project_ref(
        project.platform_type,
        &project.external_id,
        &project.path,
    );
    let status = match forge.webhook_status(&pref, &webhook_url).await {
        Ok(s) => match s {
            ai_review_forge::WebhookStatus::Active => WebhookStatus::Active,
            ai_review_forge::WebhookStatus::Inactive => WebhookStatus::Inactive,
            ai_review_forge::WebhookStatus::Error => WebhookStatus::Error,
            ai_review_forge::WebhookStatus::Unknown => WebhookStatus::Unknown,
            ai_review_forge::WebhookStatus::NotConfigured => WebhookStatus::NotConfigured,
        },
        Err(e) => {
            tracing::warn!(project.id = %project.id, error = %e, "webhook check failed");
            WebhookStatus::Error
        }
    };
    state
        .store
        .set_webhook_status(&project.id, status, state.clock.now())
        .await?;
    Ok(Json(Envelope::ok(WebhookCheck {
        status,
        webhook_url,
    })))
}
