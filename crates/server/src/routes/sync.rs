//! `POST /api/projects/sync/platform` (`project:create`): pulls every
//! project the platform config's token can see (all pages) and upserts
//! them; new projects start enabled, existing ones keep their settings.
//! Answers `{synced, total, errors}`: a project that could not be stored
//! is listed in `errors` with its reason, never dropped silently.

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::routes::configs::body;
use crate::routes::platforms::{StoredPlatform, find};
use crate::webhooks::orchestrate::forge_of;
use ai_review_domain::{Permission, PlatformType, ProjectId};
use ai_review_protocol::Envelope;
use ai_review_protocol::projects::{SyncRequest, SyncResult};
use ai_review_store::ProjectUpsert;
use axum::Json;
use axum::extract::State;

/// `POST /api/projects/sync/platform`.
pub async fn sync(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<SyncRequest>,
) -> ApiResult<Json<Envelope<SyncResult>>> {
    caller.require(Permission::ProjectCreate)?;
    let item = find(&state, &req.platform_config_id)
        .await?
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "platformConfigId {} does not exist; list them with GET /api/platform-configs",
                req.platform_config_id
            ))
        })?;
    let platform = match item.kind {
        ai_review_domain::ConfigKind::GitlabPlatform => PlatformType::Gitlab,
        _ => PlatformType::Github,
    };
    let stored: StoredPlatform = body(&item)?;
    if !stored.enabled {
        return Err(ApiError::bad_request(format!(
            "platform config {:?} is disabled; enable it first",
            item.name
        )));
    }
    let forge = forge_of(&state, platform, &stored).map_err(ApiError::bad_request)?;
    let projects = forge.list_projects().await.map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::BAD_GATEWAY,
            format!("{platform} refused to list projects: {e}"),
        )
    })?;
    let total = projects.len() as u64;
    let mut synced = 0;
    let mut errors = Vec::new();
    for p in projects {
        let upsert = ProjectUpsert {
            id: ProjectId::generate(),
            platform_config_id: item.id.clone(),
            platform_type: platform,
            external_id: p.external_id.clone(),
            path: p.path.clone(),
            name: p.name.clone(),
            web_url: p.web_url.clone(),
            clone_url: p.clone_url.to_string(),
            default_branch: p.default_branch.clone(),
            enabled_if_new: true,
            now: state.clock.now(),
        };
        match state.store.upsert_project(upsert).await {
            Ok(_) => synced += 1,
            Err(e) => errors.push(format!("{}: {e}", p.path)),
        }
    }
    tracing::info!(config.id = %item.id, synced, total, errors = errors.len(), "projects synced");
    Ok(Json(Envelope::ok(SyncResult {
        synced,
        total,
        errors,
    })))
}
