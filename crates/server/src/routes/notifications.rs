//! Notifications: settings (`GET/PUT/PATCH /api/notifications/config`,
//! `POST …/config/test-channel`), delivery history
//! (`GET /api/notifications/history`, `…/history/:id`) and
//! `GET /api/notifications/stats`, and Web Push: VAPID keys
//! (`POST …/config/vapid`, `GET …/push/vapid-public-key`) and browser
//! subscriptions (`GET/POST /api/notifications/push/subscriptions`,
//! `DELETE …/subscriptions/:id`).

use crate::app::{AppState, ok};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::notify;
use ai_review_domain::{
    NotificationChannel, NotificationEvent, NotificationId, NotificationStatus, Permission,
    PushSubscriptionId, ReviewId, Timestamp,
};
use ai_review_protocol::notifications::{
    NotificationConfig, NotificationStatsView, NotificationView, PushSubscribeRequest,
    PushSubscriptionView, TestChannelRequest, TestChannelResult, VapidKeysView, VapidPublicKeyView,
};
use ai_review_protocol::{Envelope, Pagination};
use ai_review_store::{NewPushSubscription, PushSubscription};
use ai_review_store::{Notification, NotificationFilter};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
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
    // `emailEnabled` alone switches the email channel, as in the original
    // API; `channels` given in the same patch decides otherwise.
    let email_switch = patch
        .get("emailEnabled")
        .and_then(serde_json::Value::as_bool)
        .filter(|_| !patch.contains_key("channels"));
    if let Some(obj) = merged.as_object_mut() {
        for (k, v) in patch {
            obj.insert(k, v);
        }
        if email_switch == Some(false)
            && let Some(chs) = obj.get_mut("channels").and_then(|c| c.as_array_mut())
        {
            chs.retain(|c| c != "email");
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
    let r = notify::test_channel(&state, req.channel, &caller.user.id).await?;
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

/// `POST /api/notifications/config/vapid` (`config:update`): generates a
/// new VAPID key pair for Web Push. The private key is answered this once.
/// Browsers subscribed with the previous key are unsubscribed (push
/// services refuse messages signed with another key).
pub async fn generate_vapid(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<(
    StatusCode,
    Json<ai_review_protocol::Envelope<VapidKeysView>>,
)> {
    caller.require(Permission::ConfigUpdate)?;
    let (keys, removed) = notify::generate_vapid(&state).await?;
    tracing::info!(user.id = %caller.user.id, subscriptions_removed = removed, "VAPID key pair generated");
    Ok((
        StatusCode::CREATED,
        ok(VapidKeysView {
            public_key: keys.public_key,
            private_key: keys.private_key,
            subscriptions_removed: removed,
        }),
    ))
}

/// `GET /api/notifications/push/vapid-public-key`: the key browsers
/// subscribe with (`applicationServerKey`).
pub async fn vapid_public_key(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<Json<Envelope<VapidPublicKeyView>>> {
    let c = notify::load_config(&state).await?;
    let public_key = c.vapid_public_key.ok_or_else(|| {
        ApiError::not_found(
            "Web Push is not set up: an admin generates a VAPID key pair first (POST /api/notifications/config/vapid)",
        )
    })?;
    Ok(ok(VapidPublicKeyView { public_key }))
}

fn subscription_view(s: PushSubscription) -> PushSubscriptionView {
    let push_service = url::Url::parse(&s.endpoint)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    PushSubscriptionView {
        id: s.id,
        user_id: s.user_id,
        push_service,
        user_agent: s.user_agent,
        created_at: s.created_at,
        updated_at: s.updated_at,
    }
}

/// `POST /api/notifications/push/subscriptions`: stores the caller's
/// browser subscription (the body is `PushSubscription.toJSON()`). The
/// same endpoint again replaces its keys. 201 with the subscription.
pub async fn subscribe(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(req): ApiJson<PushSubscribeRequest>,
) -> ApiResult<(StatusCode, Json<Envelope<PushSubscriptionView>>)> {
    let c = notify::load_config(&state).await?;
    if c.vapid_public_key.is_none() {
        return Err(ApiError::conflict(
            "Web Push is not set up: an admin generates a VAPID key pair first (POST /api/notifications/config/vapid)",
        ));
    }
    notify::webpush::check_subscription(&req.endpoint, &req.keys.p256dh, &req.keys.auth)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let user_agent = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(200).collect());
    let saved = state
        .store
        .save_push_subscription(NewPushSubscription {
            id: PushSubscriptionId::generate(),
            user_id: Some(caller.user.id.clone()),
            endpoint: req.endpoint,
            p256dh: req.keys.p256dh,
            auth: state.settings.secrets.seal(&req.keys.auth),
            user_agent,
            now: state.clock.now(),
        })
        .await?;
    tracing::info!(user.id = %caller.user.id, push_subscription.id = %saved.id, "browser subscribed to push notifications");
    Ok((StatusCode::CREATED, ok(subscription_view(saved))))
}

/// `GET /api/notifications/push/subscriptions`: the caller's browsers;
/// everyone's with `config:update`.
pub async fn list_subscriptions(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Envelope<Vec<PushSubscriptionView>>>> {
    let all = caller.user.has(Permission::ConfigUpdate);
    let subs = state
        .store
        .list_push_subscriptions((!all).then_some(&caller.user.id))
        .await?;
    Ok(ok(subs.into_iter().map(subscription_view).collect()))
}

/// `DELETE /api/notifications/push/subscriptions/:id`: unsubscribes one
/// browser (the caller's own; anyone's with `config:update`). 204.
pub async fn unsubscribe(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = PushSubscriptionId::parse(&id)?;
    let missing = || ApiError::not_found(format!("push subscription {id} not found"));
    let s = state
        .store
        .get_push_subscription(&id)
        .await?
        .ok_or_else(missing)?;
    if s.user_id.as_ref() != Some(&caller.user.id) && !caller.user.has(Permission::ConfigUpdate) {
        // Someone else's subscription is as good as absent to this caller.
        return Err(missing());
    }
    state.store.delete_push_subscription(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}
