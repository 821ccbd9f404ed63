//! Platform configs: connections to GitLab and GitHub (self-hosted base
//! URLs, token or OAuth app, webhook secret).
//!
//! | Call | Permission |
//! | --- | --- |
//! | `GET /api/platform-configs` (all), `/enabled`, `/type/:type`, `/default?type=` , `/:id` | signed in |
//! | `POST /api/platform-configs` | `config:create` |
//! | `PATCH` or `PUT /api/platform-configs/:id` | `config:update` |
//! | `DELETE /api/platform-configs/:id` | `config:delete` |
//! | `GET /api/platform-configs/:id/token` (decrypted access token) | admin |
//!
//! Every secret (access token, app secret, webhook secret) is sealed with
//! the server key before it is stored and answered as `***`. Each platform
//! type is its own configuration kind, so "one default per type" is a
//! database constraint.

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::routes::configs::{body, check_name, encode, parse_id, save, write_item};
use ai_review_domain::{ConfigId, ConfigKind, Permission, PlatformAuthType, PlatformType};
use ai_review_protocol::Envelope;
use ai_review_protocol::configs::{
    MASK, PlatformConfigView, PlatformConfigWrite, PlatformTokenView,
};
use ai_review_store::ConfigItem;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

/// The stored body of a platform config.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StoredPlatform {
    /// Base URL.
    pub base_url: String,
    /// Token or OAuth.
    pub auth_type: PlatformAuthType,
    /// Sealed access token.
    pub access_token_sealed: Option<String>,
    /// OAuth app id.
    pub app_id: Option<String>,
    /// Sealed OAuth app secret.
    pub app_secret_sealed: Option<String>,
    /// Sealed webhook secret.
    pub webhook_secret_sealed: Option<String>,
    /// Enabled.
    pub enabled: bool,
}

/// The configuration kind of a platform type.
pub fn kind_of(t: PlatformType) -> ConfigKind {
    match t {
        PlatformType::Gitlab => ConfigKind::GitlabPlatform,
        PlatformType::Github => ConfigKind::GithubPlatform,
    }
}

fn type_of(k: ConfigKind) -> Option<PlatformType> {
    match k {
        ConfigKind::GitlabPlatform => Some(PlatformType::Gitlab),
        ConfigKind::GithubPlatform => Some(PlatformType::Github),
        _ => None,
    }
}

fn default_base_url(t: PlatformType) -> &'static str {
    match t {
        PlatformType::Gitlab => "https://gitlab.com",
        PlatformType::Github => "https://api.github.com",
    }
}

fn check_url(s: &str) -> ApiResult<String> {
    let u = url::Url::parse(s.trim()).map_err(|e| {
        ApiError::bad_request(format!(
            "baseUrl {s:?} is not a URL ({e}); e.g. https://gitlab.example.com or https://github.example.com/api/v3"
        ))
    })?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(ApiError::bad_request(
            "baseUrl must be an http:// or https:// URL with a host",
        ));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(ApiError::bad_request(
            "baseUrl must not contain credentials; put the token in accessToken",
        ));
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(ApiError::bad_request(
            "baseUrl must not have a query or fragment",
        ));
    }
    Ok(u.as_str().trim_end_matches('/').to_owned())
}

fn secret_field(
    state: &AppState,
    name: &str,
    write: Option<Option<String>>,
    current: Option<&String>,
) -> ApiResult<Option<String>> {
    match write {
        None => Ok(current.cloned()),
        Some(Some(v)) if v == MASK => Ok(current.cloned()),
        Some(None) => Ok(None),
        Some(Some(v)) if v.is_empty() => Ok(None),
        Some(Some(v)) => {
            if v.len() > 4096 || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(ApiError::bad_request(format!(
                    "{name} must be at most 4096 characters without spaces or control characters"
                )));
            }
            Ok(Some(state.settings.secrets.seal(&v)))
        }
    }
}

/// A platform config as answered.
pub fn view(item: &ConfigItem) -> ApiResult<PlatformConfigView> {
    let b: StoredPlatform = body(item)?;
    let platform_type = type_of(item.kind)
        .ok_or_else(|| ApiError::not_found(format!("platform config {} not found", item.id)))?;
    let mask = |v: &Option<String>| v.as_ref().map(|_| MASK.to_owned());
    Ok(PlatformConfigView {
        id: item.id.clone(),
        name: item.name.clone(),
        platform_type,
        base_url: b.base_url.clone(),
        auth_type: b.auth_type,
        access_token: mask(&b.access_token_sealed),
        app_id: b.app_id.clone(),
        app_secret: mask(&b.app_secret_sealed),
        webhook_secret: mask(&b.webhook_secret_sealed),
        enabled: b.enabled,
        is_default: item.is_default,
        created_at: item.created_at,
        updated_at: item.updated_at,
    })
}

/// Finds a platform config by id in either kind.
pub async fn find(state: &AppState, id: &ConfigId) -> ApiResult<Option<ConfigItem>> {
    for kind in [ConfigKind::GitlabPlatform, ConfigKind::GithubPlatform] {
        if let Some(item) = state.store.get_config_item(kind, id).await? {
            return Ok(Some(item));
        }
    }
    Ok(None)
}

async fn load(state: &AppState, id: &str) -> ApiResult<ConfigItem> {
    let id = parse_id(id)?;
    find(state, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("platform config {id} not found")))
}

async fn all(state: &AppState) -> ApiResult<Vec<ConfigItem>> {
    let mut items = state
        .store
        .list_config_items(ConfigKind::GitlabPlatform)
        .await?;
    items.extend(
        state
            .store
            .list_config_items(ConfigKind::GithubPlatform)
            .await?,
    );
    items.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(items)
}

fn views(items: &[ConfigItem]) -> ApiResult<Vec<PlatformConfigView>> {
    items.iter().map(view).collect()
}

/// `GET /api/platform-configs`.
pub async fn list(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<Json<Envelope<Vec<PlatformConfigView>>>> {
    Ok(Json(Envelope::ok(views(&all(&state).await?)?)))
}

/// `GET /api/platform-configs/enabled`.
pub async fn enabled(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<Json<Envelope<Vec<PlatformConfigView>>>> {
    let v = views(&all(&state).await?)?
        .into_iter()
        .filter(|c| c.enabled)
        .collect();
    Ok(Json(Envelope::ok(v)))
}

/// `GET /api/platform-configs/type/:type`.
pub async fn by_type(
    State(state): State<AppState>,
    _caller: Caller,
    Path(t): Path<String>,
) -> ApiResult<Json<Envelope<Vec<PlatformConfigView>>>> {
    let t = PlatformType::parse(&t)?;
    let items = state.store.list_config_items(kind_of(t)).await?;
    Ok(Json(Envelope::ok(views(&items)?)))
}

/// Query of `GET /api/platform-configs/default`.
#[derive(Debug, Deserialize)]
pub struct DefaultQuery {
    /// `gitlab` or `github`.
    #[serde(rename = "type")]
    pub platform_type: String,
}

/// `GET /api/platform-configs/default?type=gitlab`.
pub async fn default(
    State(state): State<AppState>,
    _caller: Caller,
    ApiQuery(q): ApiQuery<DefaultQuery>,
) -> ApiResult<Json<Envelope<PlatformConfigView>>> {
    let t = PlatformType::parse(&q.platform_type)?;
    let item = state
        .store
        .default_config_item(kind_of(t))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no default {t} platform config")))?;
    Ok(Json(Envelope::ok(view(&item)?)))
}

/// `GET /api/platform-configs/:id`.
pub async fn get_one(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Envelope<PlatformConfigView>>> {
    Ok(Json(Envelope::ok(view(&load(&state, &id).await?)?)))
}

fn merge(
    state: &AppState,
    platform_type: PlatformType,
    current: Option<(&ConfigItem, &StoredPlatform)>,
    w: PlatformConfigWrite,
) -> ApiResult<(String, bool, StoredPlatform)> {
    let name = match (&w.name, current) {
        (Some(n), _) => check_name(n)?,
        (None, Some((item, _))) => item.name.clone(),
        (None, None) => return Err(ApiError::bad_request("name is required")),
    };
    let cur = current.map(|c| c.1);
    let base_url = match (&w.base_url, cur) {
        (Some(u), _) => check_url(u)?,
        (None, Some(c)) => c.base_url.clone(),
        (None, None) => default_base_url(platform_type).to_owned(),
    };
    let app_id = match w.app_id {
        None => cur.and_then(|c| c.app_id.clone()),
        Some(v) => v
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().to_owned()),
    };
    if app_id.as_ref().is_some_and(|a| a.len() > 200) {
        return Err(ApiError::bad_request(
            "appId must be at most 200 characters",
        ));
    }
    let stored = StoredPlatform {
        base_url,
        auth_type: w
            .auth_type
            .or(cur.map(|c| c.auth_type))
            .unwrap_or(PlatformAuthType::Token),
        access_token_sealed: secret_field(
            state,
            "accessToken",
            w.access_token,
            cur.and_then(|c| c.access_token_sealed.as_ref()),
        )?,
        app_id,
        app_secret_sealed: secret_field(
            state,
            "appSecret",
            w.app_secret,
            cur.and_then(|c| c.app_secret_sealed.as_ref()),
        )?,
        webhook_secret_sealed: secret_field(
            state,
            "webhookSecret",
            w.webhook_secret,
            cur.and_then(|c| c.webhook_secret_sealed.as_ref()),
        )?,
        enabled: w.enabled.or(cur.map(|c| c.enabled)).unwrap_or(true),
    };
    let is_default = w
        .is_default
        .or(current.map(|c| c.0.is_default))
        .unwrap_or(false);
    Ok((name, is_default, stored))
}

/// `POST /api/platform-configs` (`config:create`).
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(w): ApiJson<PlatformConfigWrite>,
) -> ApiResult<(StatusCode, Json<Envelope<PlatformConfigView>>)> {
    caller.require(Permission::ConfigCreate)?;
    let t = w
        .platform_type
        .ok_or_else(|| ApiError::bad_request("platformType is required (gitlab or github)"))?;
    let (name, is_default, b) = merge(&state, t, None, w)?;
    let item = save(
        &state,
        write_item(
            kind_of(t),
            ConfigId::generate(),
            name,
            is_default,
            encode(&b)?,
            state.clock.now(),
        ),
        true,
    )
    .await?;
    tracing::info!(config.id = %item.id, platform = %t, user.id = %caller.user.id, "platform config created");
    Ok((StatusCode::CREATED, Json(Envelope::ok(view(&item)?))))
}

/// `PATCH`/`PUT /api/platform-configs/:id` (`config:update`).
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(w): ApiJson<PlatformConfigWrite>,
) -> ApiResult<Json<Envelope<PlatformConfigView>>> {
    caller.require(Permission::ConfigUpdate)?;
    let item = load(&state, &id).await?;
    let t = type_of(item.kind)
        .ok_or_else(|| ApiError::not_found(format!("platform config {id} not found")))?;
    if let Some(requested) = w.platform_type
        && requested != t
    {
        return Err(ApiError::bad_request(format!(
            "platformType cannot change ({t} → {requested}); create a new platform config instead"
        )));
    }
    let current: StoredPlatform = body(&item)?;
    let (name, is_default, b) = merge(&state, t, Some((&item, &current)), w)?;
    let item = save(
        &state,
        write_item(
            item.kind,
            item.id,
            name,
            is_default,
            encode(&b)?,
            state.clock.now(),
        ),
        false,
    )
    .await?;
    Ok(Json(Envelope::ok(view(&item)?)))
}

/// `DELETE /api/platform-configs/:id` (`config:delete`).
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Permission::ConfigDelete)?;
    let item = load(&state, &id).await?;
    state.store.delete_config_item(item.kind, &item.id).await?;
    tracing::info!(config.id = %item.id, user.id = %caller.user.id, "platform config deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/platform-configs/:id/token` (admins only): the decrypted
/// access token, for migrating or checking a connection.
pub async fn token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Envelope<PlatformTokenView>>> {
    caller.require_admin()?;
    let item = load(&state, &id).await?;
    let b: StoredPlatform = body(&item)?;
    let access_token = match &b.access_token_sealed {
        Some(sealed) => Some(
            state
                .settings
                .secrets
                .open(sealed)
                .map_err(|e| ApiError::conflict(e.to_string()))?
                .expose()
                .to_owned(),
        ),
        None => None,
    };
    tracing::warn!(config.id = %item.id, user.id = %caller.user.id, "platform access token revealed to an admin");
    Ok(Json(Envelope::ok(PlatformTokenView {
        id: item.id,
        access_token,
    })))
}
