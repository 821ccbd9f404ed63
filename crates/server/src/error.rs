//! The error type every handler returns, rendered as the API envelope.
//!
//! Policy: client mistakes (4xx) carry a `detail` that says what was wrong
//! and what to do. Server faults (5xx) answer an opaque
//! `INTERNAL_SERVER_ERROR` and log the full cause chain with the request.

use ai_review_domain::ParseError;
use ai_review_protocol::Envelope;
use ai_review_store::StoreError;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// An API error: status, machine title, human detail.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Human explanation (`None` for opaque server errors).
    pub detail: Option<String>,
    /// Extra headers (e.g. `WWW-Authenticate`, `Retry-After`).
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl ApiError {
    /// An error with a status and a detail.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: Some(detail.into()),
            headers: Vec::new(),
        }
    }

    /// 400 Bad Request.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    /// 401 Unauthorized, with `WWW-Authenticate: Bearer`.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, detail);
        e.headers
            .push((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        e
    }

    /// 403 Forbidden.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, detail)
    }

    /// 404 Not Found.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    /// 409 Conflict.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, detail)
    }

    /// 500 with the cause logged, not shown.
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> Self {
        let mut chain = cause.to_string();
        let mut src = cause.source();
        while let Some(s) = src {
            chain.push_str(": ");
            chain.push_str(&s.to_string());
            src = s.source();
        }
        tracing::error!(error.chain = %chain, "internal error");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            detail: None,
            headers: Vec::new(),
        }
    }
}

/// The envelope title for a status: `NOT_FOUND`, `TOO_MANY_REQUESTS`, ...
pub fn title_for(status: StatusCode) -> String {
    status
        .canonical_reason()
        .unwrap_or("ERROR")
        .to_ascii_uppercase()
        .replace([' ', '-'], "_")
        .replace('\'', "")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Envelope::error(&title_for(self.status), self.status.as_u16(), self.detail);
        let mut resp = (self.status, Json(body)).into_response();
        for (k, v) in self.headers {
            resp.headers_mut().insert(k, v);
        }
        resp
    }
}

impl From<ParseError> for ApiError {
    fn from(e: ParseError) -> Self {
        ApiError::bad_request(e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { entity, id } => {
                ApiError::not_found(format!("{entity} {id} not found"))
            }
            StoreError::Conflict(m) => ApiError::conflict(m),
            StoreError::StaleAttempt { current, presented } => ApiError::conflict(format!(
                "stale attempt {presented}: the task was claimed again (attempt {current}); \
                 this runner lost its lease and must stop working on it"
            )),
            StoreError::NotActive { state } => ApiError::conflict(format!(
                "the task is {state}: this runner no longer holds it and must stop working on it"
            )),
            StoreError::NotHolder => ApiError::forbidden("this task is held by another runner"),
            e @ (StoreError::Corrupt(_) | StoreError::Backend(_)) => ApiError::internal(&e),
        }
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
