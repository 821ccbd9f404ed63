//! Notifications: settings (`GET/PUT/PATCH /api/notifications/config`,
//! `POST …/config/test-channel`), delivery history
//! (`GET /api/notifications/history`, `…/history/:id`) and
//! `GET /api/notifications/stats`.

use crate::app::{AppState, ok};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::notify;
use ai_review_domain::{
    NotificationChannel, NotificationEvent, NotificationId, NotificationStatus, Permission,
    ReviewId, Timestamp,
};
use ai_review_protocol::notifications::{
    NotificationConfig, NotificationStatsView, NotificationView, TestChannelRequest,
    TestChannelResult,
};
use ai_review_protocol::{Envelope, Pagination};
use ai_review_store::{Notification, NotificationFilter};
use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;

fn view(n: Notification) -> NotificationView {
    NotificationView {
        id: n.id,
        event: n.event,
        channel: n.channel,
        review_id: n.review_id,
        status: n.status,
        attempts: n.attempts,
        error: n.last_error,
        payload: n.payload,
        created_at: n.created_at,
        sent_at: n.sent_at,
        next_attempt_at: (n.status == NotificationStatus::Pending).then_some(n.next_attempt_at),
    }
}

/// `GET /api/notifications/config`: the settings, secrets masked.
pub async fn get_config(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<Json<Envelope<NotificationConfig>>> {
    Ok(ok(notify::masked(notify::load_config(&state).await?)))
}

/// `PUT /api/notifications/config` (`config:update`): replaces the settings
/// (absent fields take their defaults; `***` keeps a stored secret).
pub async fn put_config(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(c): ApiJson<NotificationConfig>,
) -> ApiResult<Json<Envelope<NotificationConfig>>> {
    caller.require(Permission::ConfigUpdate)?;
    let current = notify::load_config(&state).await?;
    let saved = notify::save_config(&state, &current, c).await?;
    tracing::info!(user.id = %caller.user.id, "notification settings saved");
    Ok(ok(notify::masked(saved)))
}

/// `PATCH /api/notifications/config` (`config:update`): changes only the
/// fields given (`null` clears one).
pub async fn patch_config(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(patch): ApiJson<serde_json::Map<String, serde_json::Value>>,
) -> ApiResult<Json<Envelope<NotificationConfig>>> {
    caller.require(Permission::ConfigUpdate)?;
    let current = notify::load_config(&state).await?;
    let mut merged = serde_json::to_value(notify::masked(current.clone()))
        .map_err(|e| ApiError::internal(&e))?;
    if let Some(obj) = merged.as_object_mut() {
        for (k, v) in patch {
            obj.insert(k, v);
        }
    }
    let new: NotificationConfig = serde_json::from_value(merged)
        .map_err(|e| ApiError::bad_request(format!("invalid notification settings: {e}")))?;
    let saved = notify::save_config(&state, &current, new).await?;
    tracing::info!(user.id = %caller.user.id, "notification settings changed");
    Ok(ok(notify::masked(saved)))
}

/// `POST /api/notifications/config/test-channel` (`config:update`): sends a
/// test message through one channel now and says whether it arrived.
pub async fn test_channel(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<TestChannelRequest>,
) -> ApiResult<Json<Envelope<TestChannelResult>>> {
    caller.require(Permission::ConfigUpdate)?;
    let r = notify::test_channel(&state, req.channel).await?;
    Ok(ok(TestChannelResult {
        channel: req.channel,
        ok: r.is_ok(),
        error: r.err(),
    }))
}

/// Filters of `GET /api/notifications/history`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryQuery {
    /// 1-based page.
    pub page: Option<u64>,
    /// Page size 1-100 (20).
    pub page_size: Option<u32>,
    /// Channel.
    pub channel: Option<String>,
    /// `pending`, `sent` or `failed`.
    pub status: Option<String>,
    /// Event.
    pub event: Option<String>,
    /// Review.
    pub review_id: Option<String>,
    /// Queued at or after.
    pub start_date: Option<String>,
    /// Queued before.
    pub end_date: Option<String>,
}

/// `GET /api/notifications/history`: deliveries, newest first.
pub async fn history(
    State(state): State<AppState>,
    _caller: Caller,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> ApiResult<Json<Envelope<Vec<NotificationView>>>> {
    let page = q.page.unwrap_or(1);
    let page_size = q.page_size.unwrap_or(20);
    if page == 0 || !(1..=100).contains(&page_size) {
        return Err(ApiError::bad_request("page must be ≥ 1 and pageSize 1-100"));
    }
    let filter = NotificationFilter {
        channel: q
            .channel
            .as_deref()
            .map(NotificationChannel::parse)
            .transpose()?,
        status: q
            .status
            .as_deref()
            .map(NotificationStatus::parse)
            .transpose()?,
        event: q
            .event
            .as_deref()
            .map(NotificationEvent::parse)
            .transpose()?,
        review_id: q.review_id.as_deref().map(ReviewId::parse).transpose()?,
        start: q.start_date.as_deref().map(Timestamp::parse).transpose()?,
        end: q.end_date.as_deref().map(Timestamp::parse).transpose()?,
        limit: page_size,
        offset: (page - 1).saturating_mul(u64::from(page_size)),
    };
    let (rows, total) = state.store.list_notifications(&filter).await?;
    Ok(Json(Envelope::paginated(
        rows.into_iter().map(view).collect(),
        Pagination::new(page, u64::from(page_size), total),
    )))
}

/// `GET /api/notifications/history/:id`.
pub async fn history_one(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Envelope<NotificationView>>> {
    let id = NotificationId::parse(&id)?;
    let n = state
        .store
        .get_notification(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("notification {id} not found")))?;
    Ok(ok(view(n)))
}

/// Filters of `GET /api/notifications/stats`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsQuery {
    /// Queued at or after.
    pub start_date: Option<String>,
    /// Queued before.
    pub end_date: Option<String>,
}

/// `GET /api/notifications/stats`: counts per status and channel.
pub async fn stats(
    State(state): State<AppState>,
    _caller: Caller,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> ApiResult<Json<Envelope<NotificationStatsView>>> {
    let start = q.start_date.as_deref().map(Timestamp::parse).transpose()?;
    let end = q.end_date.as_deref().map(Timestamp::parse).transpose()?;
    let s = state.store.notification_stats(start, end).await?;
    let mut out = NotificationStatsView::default();
    for st in NotificationStatus::ALL {
        out.by_status.insert(st.as_str().to_owned(), 0);
    }
    for (ch, st, n) in s.counts {
        out.total += n;
        *out.by_status.entry(st.as_str().to_owned()).or_default() += n;
        *out.by_channel.entry(ch.as_str().to_owned()).or_default() += n;
    }
    Ok(ok(out))
}
