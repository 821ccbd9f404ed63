//! Authentication: API keys in `Authorization: Bearer <key>` or
//! `x-api-key: <key>`, resolved to their owner, whose permissions they
//! carry. (Browser sessions arrive with the dashboard.)
//!
//! * no credential → 401 saying how to send one;
//! * a credential that is not shaped like a key → 401 saying what a key looks like;
//! * an unknown, revoked or expired key, or a disabled owner → 401;
//! * a valid key lacking a permission → 403 naming the permission.

use crate::app::AppState;
use crate::error::ApiError;
use ai_review_domain::{ApiKeySecret, Permission, Role, Timestamp};
use ai_review_protocol::runner::HEADER_API_KEY;
use ai_review_store::{ApiKey, User};
use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

/// `last_used_at` is written at most this often per key, so that
/// authentication stays a read on the hot path (heartbeats, polls).
const TOUCH_INTERVAL_MS: i64 = 60_000;

/// An authenticated caller: a live API key and its owner.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The owner.
    pub user: User,
    /// The key used.
    pub key: ApiKey,
}

impl Caller {
    /// 403 unless the caller holds `p`.
    pub fn require(&self, p: Permission) -> Result<(), ApiError> {
        if self.user.has(p) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this action needs the permission {p}, which the key's owner ({}) does not have",
                self.user.email
            )))
        }
    }

    /// 403 unless the caller is an admin.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.user.role == Role::Admin {
            Ok(())
        } else {
            Err(ApiError::forbidden("this action is for admins only"))
        }
    }
}

/// The raw credential presented, if any: `Authorization: Bearer` first,
/// then `x-api-key`.
pub fn presented_credential(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    if let Some(v) = headers.get(AUTHORIZATION) {
        let v = v
            .to_str()
            .map_err(|_| ApiError::unauthorized("the Authorization header is not valid text"))?;
        let (scheme, rest) = v.split_once(' ').unwrap_or((v, ""));
        if !scheme.eq_ignore_ascii_case("bearer") || rest.trim().is_empty() {
            return Err(ApiError::unauthorized(
                "the Authorization header must be `Bearer <API key>`",
            ));
        }
        return Ok(Some(rest.trim()));
    }
    if let Some(v) = headers.get(HEADER_API_KEY) {
        let v = v
            .to_str()
            .map_err(|_| ApiError::unauthorized("the x-api-key header is not valid text"))?;
        return Ok(Some(v.trim()));
    }
    Ok(None)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let raw = presented_credential(&parts.headers)?.ok_or_else(|| {
            ApiError::unauthorized(
                "authentication required: send an API key as `Authorization: Bearer <key>` or `x-api-key: <key>` (create one with `ai-review admin create-api-key`)",
            )
        })?;
        let secret = ApiKeySecret::parse(raw)
            .map_err(|e| ApiError::unauthorized(format!("malformed API key: {}", e.reason)))?;
        let now = state.clock.now();
        let (key, user) = state
            .store
            .authenticate_api_key(&secret.digest(), now)
            .await?
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "invalid API key: it is unknown, revoked or expired, or its owner is disabled",
                )
            })?;
        touch_if_stale(state, &key, now);
        Ok(Caller { user, key })
    }
}

fn touch_if_stale(state: &AppState, key: &ApiKey, now: Timestamp) {
    let stale = key
        .last_used_at
        .is_none_or(|t| now.millis_since(t) >= TOUCH_INTERVAL_MS);
    if stale {
        let store = state.store.clone();
        let id = key.id.clone();
        tokio::spawn(async move {
            if let Err(e) = store.touch_api_key(&id, now).await {
                tracing::warn!(api_key.id = %id, error = %e, "could not record API key use");
            }
        });
    }
}
