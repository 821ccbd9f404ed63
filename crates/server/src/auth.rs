//! Authentication: API keys in `Authorization: Bearer <key>` or
//! `x-api-key: <key>`, or the dashboard's session cookie, resolved to their
//! owner, whose permissions they carry.
//!
//! * no credential → 401 saying how to send one;
//! * a credential that is not shaped like a key → 401 saying what a key looks like;
//! * an unknown, revoked or expired key or session, or a disabled owner → 401;
//! * a valid credential lacking a permission → 403 naming the permission;
//! * a state-changing API call authenticated by the session cookie must
//!   also carry the session's CSRF token in `x-csrf-token` and must not come
//!   from another site (`Sec-Fetch-Site` / `Origin`) → else 403.

use crate::app::AppState;
use crate::error::ApiError;
use ai_review_domain::{ApiKeySecret, Permission, Role, SessionSecret, Timestamp};
use ai_review_protocol::runner::HEADER_API_KEY;
use ai_review_store::{ApiKey, Session, User};
use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};

/// The dashboard's session cookie.
pub const SESSION_COOKIE: &str = "ai_review_session";

/// The header carrying the CSRF token on cookie-authenticated API calls.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A session's `last_seen_at`/expiry is written at most this often.
const SESSION_TOUCH_INTERVAL_MS: i64 = 60_000;

/// `last_used_at` is written at most this often per key, so that
/// authentication stays a read on the hot path (heartbeats, polls).
const TOUCH_INTERVAL_MS: i64 = 60_000;

/// An authenticated caller: a live API key or dashboard session, and its
/// owner.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The owner.
    pub user: User,
    /// The key used (`None` for a session).
    pub key: Option<ApiKey>,
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
        let Some(raw) = presented_credential(&parts.headers)? else {
            return session_caller(parts, state).await;
        };
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
        Ok(Caller {
            user,
            key: Some(key),
        })
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

/// A caller authenticated by the session cookie; for methods that change
/// state, the CSRF header and the same-site check are required too.
async fn session_caller(parts: &Parts, state: &AppState) -> Result<Caller, ApiError> {
    let missing = || {
        ApiError::unauthorized(
            "authentication required: send an API key as `Authorization: Bearer <key>` or `x-api-key: <key>` (create one under Settings → API keys or with `ai-review admin create-api-key`), or log in to the dashboard",
        )
    };
    let secret = session_cookie(&parts.headers).ok_or_else(missing)?;
    let (_, user) = live_session(state, &secret)
        .await?
        .ok_or_else(|| ApiError::unauthorized("your dashboard session has ended: log in again"))?;
    if !is_safe_method(&parts.method) {
        if is_cross_site(&parts.headers) {
            return Err(ApiError::forbidden(
                "cross-site request refused: this call must come from the dashboard itself",
            ));
        }
        let token = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !secret.csrf_matches(token) {
            return Err(ApiError::forbidden(format!(
                "missing or wrong {CSRF_HEADER} header: a call authenticated by the session cookie must carry the page's CSRF token (or use an API key)"
            )));
        }
    }
    Ok(Caller { user, key: None })
}

/// GET, HEAD and OPTIONS change nothing and need no CSRF token.
pub fn is_safe_method(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The value of cookie `name` in the `Cookie` header(s), if present.
pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.trim())
}

/// The session token from the `Cookie` header(s), if one is there and well
/// formed.
pub fn session_cookie(headers: &HeaderMap) -> Option<SessionSecret> {
    cookie_value(headers, SESSION_COOKIE).and_then(|v| SessionSecret::parse(v).ok())
}

/// The live session for `secret` and its user, sliding its expiry forward
/// (at most one write per minute per session) but never past the maximum
/// lifetime after login (`AI_REVIEW_SESSION_MAX_HOURS`).
pub async fn live_session(
    state: &AppState,
    secret: &SessionSecret,
) -> Result<Option<(Session, User)>, ApiError> {
    let now = state.clock.now();
    let digest = secret.digest();
    let Some((session, user)) = state.store.session_user(&digest, now).await? else {
        return Ok(None);
    };
    let end = session
        .created_at
        .plus_millis(crate::config::millis(state.settings.session.max_lifetime));
    // The stored expiry can be later: sessions made under a longer limit.
    if now >= end {
        return Ok(None);
    }
    if now.millis_since(session.last_seen_at) >= SESSION_TOUCH_INTERVAL_MS {
        let expires_at = now
            .plus_millis(crate::config::millis(state.settings.session.idle))
            .min(end);
        state.store.extend_session(&digest, now, expires_at).await?;
    }
    Ok(Some((session, user)))
}

/// Whether the browser says this request comes from another site:
/// `Sec-Fetch-Site` other than `same-origin`/`none`, or else an `Origin`
/// whose host is not the `Host` the request was sent to. Requests with
/// neither header (non-browser clients) pass this check; the CSRF token is
/// the defence that never relies on the browser.
pub fn is_cross_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return !matches!(site, "same-origin" | "none");
    }
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest);
    origin == "null" || !origin_host.eq_ignore_ascii_case(host)
}
