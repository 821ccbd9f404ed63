//! `GET /api/me` and the caller's own API keys:
//! `GET /api/api-keys`, `POST /api/api-keys`, `DELETE /api/api-keys/:id`.
//! Admins may revoke anyone's key.

use crate::app::{AppState, ok};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::routes::views;
use ai_review_domain::{ApiKeyId, ApiKeySecret, Role};
use ai_review_protocol::Envelope;
use ai_review_protocol::api::{ApiKeyView, CreateApiKeyRequest, CreatedApiKey, MeView};
use ai_review_store::NewApiKey;
use axum::Json;
use axum::extract::{Path, State};

/// The caller and their effective permissions.
pub async fn me(caller: Caller) -> Json<Envelope<MeView>> {
    ok(MeView {
        id: caller.user.id.clone(),
        email: caller.user.email.to_string(),
        role: caller.user.role,
        permissions: caller
            .user
            .effective_permissions()
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect(),
    })
}

/// The caller's keys, newest first.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Envelope<Vec<ApiKeyView>>>> {
    let keys = state.store.list_api_keys(&caller.user.id).await?;
    Ok(ok(keys.into_iter().map(views::api_key).collect()))
}

/// Creates a key for the caller; the answer is the only time it is shown.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateApiKeyRequest>,
) -> ApiResult<Json<Envelope<CreatedApiKey>>> {
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::bad_request("name must be 1-100 characters"));
    }
    let now = state.clock.now();
    let expires_at = match req.expires_in_days {
        Some(0) => return Err(ApiError::bad_request("expiresInDays must be at least 1")),
        Some(d) => Some(now.plus_millis(i64::from(d) * 86_400_000)),
        None => None,
    };
    let (secret, key) = issue_key(&state, &caller.user.id, name, expires_at).await?;
    tracing::info!(api_key.id = %key.id, user.id = %caller.user.id, "API key created");
    Ok(ok(CreatedApiKey {
        key: secret.expose().to_owned(),
        api_key: views::api_key(key),
    }))
}

/// Generates and stores a key (shared with the admin CLI).
pub async fn issue_key(
    state: &AppState,
    owner: &ai_review_domain::UserId,
    name: &str,
    expires_at: Option<ai_review_domain::Timestamp>,
) -> ApiResult<(ApiKeySecret, ai_review_store::ApiKey)> {
    let secret = ApiKeySecret::generate();
    let key = state
        .store
        .create_api_key(NewApiKey {
            id: ApiKeyId::generate(),
            user_id: owner.clone(),
            name: name.to_owned(),
            prefix: secret.display_prefix(),
            digest: secret.digest(),
            now: state.clock.now(),
            expires_at,
        })
        .await?;
    Ok((secret, key))
}

/// Revokes one of the caller's keys (any key for admins). Effective at once:
/// the next request with it gets 401.
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Envelope<ApiKeyView>>> {
    let id = ApiKeyId::parse(&id)?;
    let key = state
        .store
        .api_key_by_id(&id)
        .await?
        .filter(|k| k.user_id == caller.user.id || caller.user.role == Role::Admin)
        .ok_or_else(|| ApiError::not_found(format!("API key {id} not found among your keys")))?;
    let revoked = state
        .store
        .revoke_api_key(&key.id, state.clock.now())
        .await?;
    tracing::info!(api_key.id = %id, user.id = %caller.user.id, "API key revoked");
    Ok(ok(views::api_key(revoked)))
}
