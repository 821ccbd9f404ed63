//! `POST /api/webhook/gitlab` and `POST /api/webhook/github`: authenticate
//! the delivery, record it once, apply the event rules ([`parse`]) and hand
//! review requests to the orchestrator ([`orchestrate`]).
//!
//! Authentication (documented by the original):
//! * GitLab: `X-Gitlab-Token` equals the webhook secret of an enabled GitLab
//!   platform config (compared in constant time against each).
//! * GitHub: `X-Hub-Signature-256` is `sha256=` and the HMAC-SHA256 of the
//!   raw body under the webhook secret of an enabled GitHub config (each
//!   tried, constant-time verification).
//!
//! Answers: 401 missing or wrong credentials (nothing recorded); 400 an
//! unrecognised payload; 200 `{status: "ignored" | "refused" | "failed" |
//! "duplicate", reason}`; 202 `{status: "queued", reviewId, taskId}`.
//! A redelivery (same `X-GitHub-Delivery`, or GitLab `Idempotency-Key` /
//! `X-Gitlab-Event-UUID`) creates nothing, unless the first delivery ended
//! `failed` (the forge could not be read): then it is handled again. Every authenticated delivery is
//! listed by `GET /api/webhook-events` with its outcome and reason.

pub mod orchestrate;
pub mod parse;

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiQuery;
use crate::routes::configs::body;
use crate::routes::platforms::{StoredPlatform, kind_of};
use ai_review_domain::{PlatformType, Timestamp};
use ai_review_protocol::{Envelope, Pagination};
use ai_review_store::{ConfigItem, WebhookEvent, WebhookEventFilter};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Answer to a webhook delivery.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAnswer {
    /// `queued`, `ignored`, `refused`, `failed` or `duplicate`.
    pub status: String,
    /// Why it was not queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The queued review.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_id: Option<String>,
    /// Its task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

fn unauthorized(what: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, what.to_owned())
}

/// The enabled configs of `platform` whose webhook secret opens, with it.
async fn secrets_of(
    state: &AppState,
    platform: PlatformType,
) -> ApiResult<Vec<(ConfigItem, StoredPlatform, String)>> {
    let mut out = Vec::new();
    for item in state.store.list_config_items(kind_of(platform)).await? {
        let b: StoredPlatform = body(&item)?;
        if !b.enabled {
            continue;
        }
        let Some(sealed) = &b.webhook_secret_sealed else {
            continue;
        };
        match state.settings.secrets.open(sealed) {
            Ok(secret) => {
                let s = secret.expose().to_owned();
                out.push((item, b, s));
            }
            Err(e) => {
                tracing::error!(config.id = %item.id, error = %e, "cannot open a webhook secret");
            }
        }
    }
    Ok(out)
}

/// The GitLab config whose secret equals the presented token.
async fn authenticate_gitlab(
    state: &AppState,
    headers: &HeaderMap,
) -> ApiResult<(ConfigItem, StoredPlatform)> {
    let token = header(headers, "x-gitlab-token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| unauthorized("missing X-Gitlab-Token: set the webhook's secret token to the platform config's webhook secret"))?;
    let mut found = None;
    for (item, b, secret) in secrets_of(state, PlatformType::Gitlab).await? {
        // Every candidate is compared, so the time does not say which matched.
        if bool::from(secret.as_bytes().ct_eq(token.as_bytes())) && found.is_none() {
            found = Some((item, b));
        }
    }
    found.ok_or_else(|| unauthorized("X-Gitlab-Token matches no enabled GitLab platform config"))
}

/// The GitHub config whose secret signed the body.
async fn authenticate_github(
    state: &AppState,
    headers: &HeaderMap,
    raw: &[u8],
) -> ApiResult<(ConfigItem, StoredPlatform)> {
    let sig = header(headers, "x-hub-signature-256")
        .ok_or_else(|| unauthorized("missing X-Hub-Signature-256: set the webhook's secret to the platform config's webhook secret"))?;
    let hex_sig = sig
        .strip_prefix("sha256=")
        .ok_or_else(|| unauthorized("X-Hub-Signature-256 must be sha256=<hex>"))?;
    let expected =
        decode_hex(hex_sig).ok_or_else(|| unauthorized("X-Hub-Signature-256 is not hex"))?;
    let mut found = None;
    for (item, b, secret) in secrets_of(state, PlatformType::Github).await? {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
            continue;
        };
        mac.update(raw);
        if mac.verify_slice(&expected).is_ok() && found.is_none() {
            found = Some((item, b));
        }
    }
    found.ok_or_else(|| {
        unauthorized("X-Hub-Signature-256 does not match any enabled GitHub platform config's webhook secret")
    })
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 256 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn parse_json(platform: PlatformType, raw: &[u8]) -> ApiResult<serde_json::Value> {
    serde_json::from_slice(raw).map_err(|e| {
        ApiError::bad_request(format!("unrecognised {platform} payload: not JSON ({e})"))
    })
}

async fn handle(
    state: &AppState,
    platform: PlatformType,
    config: ConfigItem,
    stored: StoredPlatform,
    delivery_id: Option<String>,
    parsed: parse::Parsed,
) -> ApiResult<(StatusCode, Json<Envelope<WebhookAnswer>>)> {
    let now: Timestamp = state.clock.now();
    let (event, trigger) = match &parsed {
        parse::Parsed::Trigger(t) => (t.event.clone(), Some(t.clone())),
        parse::Parsed::Ignored { event, .. } => (event.clone(), None),
    };
    let record = WebhookEvent {
        id: uuid_like(),
        platform,
        delivery_id: delivery_id.filter(|d| !d.is_empty() && d.len() <= 200),
        event,
        platform_config_id: Some(config.id.clone()),
        project_external_id: trigger.as_ref().map(|t| t.project_external_id.clone()),
        change_number: trigger.as_ref().map(|t| t.number),
        outcome: "received".into(),
        reason: None,
        review_id: None,
        received_at: now,
        updated_at: now,
    };
    let Some(record) = state.store.record_webhook_event(record).await? else {
        return Ok(answer(
            StatusCode::OK,
            "duplicate",
            Some("this delivery was already received; nothing was done again".into()),
            None,
        ));
    };
    let outcome = match parsed {
        parse::Parsed::Ignored { reason, .. } => orchestrate::Outcome::Ignored(reason),
        parse::Parsed::Trigger(t) => {
            orchestrate::run(
                state,
                &config,
                &stored,
                &t,
                &orchestrate::Options::default(),
            )
            .await
        }
    };
    let (status, label, reason, review, task) = match outcome {
        orchestrate::Outcome::Queued { review, task } => (
            StatusCode::ACCEPTED,
            "queued",
            None,
            Some(review),
            Some(task),
        ),
        orchestrate::Outcome::Ignored(r) => (StatusCode::OK, "ignored", Some(r), None, None),
        orchestrate::Outcome::Refused(r) => (StatusCode::OK, "refused", Some(r), None, None),
        orchestrate::Outcome::Failed(r) => (StatusCode::OK, "failed", Some(r), None, None),
    };
    state
        .store
        .finish_webhook_event(
            &record.id,
            label,
            reason.as_deref(),
            review.as_ref(),
            state.clock.now(),
        )
        .await?;
    tracing::info!(
        webhook.platform = %platform,
        webhook.event = %record.event,
        webhook.outcome = label,
        reason = reason.as_deref().unwrap_or(""),
        "webhook handled"
    );
    Ok(answer(
        status,
        label,
        reason,
        Some((review.map(|r| r.to_string()), task.map(|t| t.to_string()))),
    ))
}

fn uuid_like() -> String {
    ai_review_domain::ReviewId::generate().to_string()
}

fn answer(
    status: StatusCode,
    label: &str,
    reason: Option<String>,
    ids: Option<(Option<String>, Option<String>)>,
) -> (StatusCode, Json<Envelope<WebhookAnswer>>) {
    let (review_id, task_id) = ids.unwrap_or((None, None));
    (
        status,
        Json(Envelope::ok(WebhookAnswer {
            status: label.to_owned(),
            reason,
            review_id,
            task_id,
        })),
    )
}

/// `POST /api/webhook/gitlab`.
pub async fn gitlab(
    State(state): State<AppState>,
    headers: HeaderMap,
    raw: Bytes,
) -> ApiResult<(StatusCode, Json<Envelope<WebhookAnswer>>)> {
    let (config, stored) = authenticate_gitlab(&state, &headers).await?;
    let json = parse_json(PlatformType::Gitlab, &raw)?;
    let event = header(&headers, "x-gitlab-event").unwrap_or("");
    let parsed = parse::gitlab(event, &json).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let delivery = header(&headers, "idempotency-key")
        .or_else(|| header(&headers, "x-gitlab-event-uuid"))
        .map(str::to_owned);
    handle(
        &state,
        PlatformType::Gitlab,
        config,
        stored,
        delivery,
        parsed,
    )
    .await
}

/// `POST /api/webhook/github`.
pub async fn github(
    State(state): State<AppState>,
    headers: HeaderMap,
    raw: Bytes,
) -> ApiResult<(StatusCode, Json<Envelope<WebhookAnswer>>)> {
    let (config, stored) = authenticate_github(&state, &headers, &raw).await?;
    let json = parse_json(PlatformType::Github, &raw)?;
    let event = header(&headers, "x-github-event").unwrap_or("");
    let parsed = parse::github(event, &json).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let delivery = header(&headers, "x-github-delivery").map(str::to_owned);
    handle(
        &state,
        PlatformType::Github,
        config,
        stored,
        delivery,
        parsed,
    )
    .await
}

/// A delivery as listed.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEventView {
    /// Id.
    pub id: String,
    /// `gitlab` or `github`.
    pub platform: PlatformType,
    /// The forge's delivery id.
    pub delivery_id: Option<String>,
    /// Event, e.g. `merge_request/update`.
    pub event: String,
    /// The platform config that authenticated it.
    pub platform_config_id: Option<String>,
    /// Project or repository id at the forge.
    pub project_external_id: Option<String>,
    /// Merge request iid or pull request number.
    pub change_number: Option<u64>,
    /// `queued`, `ignored`, `refused`, `failed` (or `received` while handled).
    pub outcome: String,
    /// Why.
    pub reason: Option<String>,
    /// The queued review.
    pub review_id: Option<String>,
    /// Arrival.
    pub received_at: Timestamp,
}

/// Query of `GET /api/webhook-events`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventsQuery {
    /// `gitlab` or `github`.
    pub platform: Option<String>,
    /// Outcome.
    pub outcome: Option<String>,
    /// 1-based page.
    pub page: Option<u64>,
    /// Page size (1-100, default 20).
    pub page_size: Option<u64>,
}

/// `GET /api/webhook-events`: deliveries, newest first, with outcomes.
pub async fn events(
    State(state): State<AppState>,
    _caller: Caller,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> ApiResult<Json<Envelope<Vec<WebhookEventView>>>> {
    let page = q.page.unwrap_or(1);
    let size = q.page_size.unwrap_or(20);
    if page == 0 || !(1..=100).contains(&size) {
        return Err(ApiError::bad_request(
            "page must be at least 1 and pageSize 1-100",
        ));
    }
    if let Some(o) = &q.outcome
        && !matches!(
            o.as_str(),
            "received" | "queued" | "ignored" | "refused" | "failed"
        )
    {
        return Err(ApiError::bad_request(
            "outcome must be queued, ignored, refused, failed or received",
        ));
    }
    let (items, total) = state
        .store
        .list_webhook_events(&WebhookEventFilter {
            platform: q.platform.as_deref().map(PlatformType::parse).transpose()?,
            outcome: q.outcome,
            limit: u32::try_from(size).unwrap_or(100),
            offset: (page - 1).saturating_mul(size),
        })
        .await?;
    let views = items
        .into_iter()
        .map(|e| WebhookEventView {
            id: e.id,
            platform: e.platform,
            delivery_id: e.delivery_id,
            event: e.event,
            platform_config_id: e.platform_config_id.map(|c| c.to_string()),
            project_external_id: e.project_external_id,
            change_number: e.change_number,
            outcome: e.outcome,
            reason: e.reason,
            review_id: e.review_id.map(|r| r.to_string()),
            received_at: e.received_at,
        })
        .collect();
    Ok(Json(Envelope::paginated(
        views,
        Pagination::new(page, size, total),
    )))
}

#[cfg(test)]
mod tests {
    use super::decode_hex;

    #[test]
    fn hex_decoding_refuses_odd_long_and_non_hex() {
        assert_eq!(decode_hex("00ff"), Some(vec![0, 255]));
        assert_eq!(decode_hex("0"), None);
        assert_eq!(decode_hex("zz"), None);
        assert_eq!(decode_hex(&"0".repeat(258)), None);
    }
}
