//! `GET /api/health`: public, for load balancers. 503 when the database
//! does not answer.

use crate::app::AppState;
use crate::error::ApiError;
use ai_review_protocol::Envelope;
use ai_review_protocol::api::HealthView;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::time::Duration;

/// Health check.
pub async fn health(State(state): State<AppState>) -> Response {
    let ping = tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await;
    let view = |status: &str| HealthView {
        status: status.to_owned(),
        database: state.store.backend_name().to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    match ping {
        Ok(Ok(())) => Json(Envelope::ok(view("ok"))).into_response(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "health check: database unreachable");
            unavailable()
        }
        Err(_) => {
            tracing::error!("health check: database did not answer within 2 s");
            unavailable()
        }
    }
}

fn unavailable() -> Response {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the database is unreachable; see the server log",
    )
    .into_response()
}
