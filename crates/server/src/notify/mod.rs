//! Notifications: the settings (secrets sealed at rest), the events a
//! finished review raises, and the delivery worker.
//!
//! Delivery never blocks a review: finishing a task only inserts one row
//! per event and channel into the store's notification queue (deduplicated
//! by `review:<id>:<event>:<channel>`, so a repeated result or a second
//! replica adds nothing). [`run_notifier`] claims due rows under a lease,
//! sends each with a timeout, and records `sent`, or `pending` again with
//! backoff (2 s, 8 s, 32 s, 128 s), or `failed` with the reason after the
//! fifth try. The same pass queues the daily and weekly summaries once
//! their period is over (once per period and channel across replicas).
//!
//! Channels: `slack`, `webhook`, `dingtalk`, `feishu`, `wechat` (HTTP,
//! [`channels`]), `email` (SMTP with TLS, [`email`]) and `push` (Web Push
//! with VAPID, [`webpush`]). A push notification is queued once per
//! browser subscription (its dedup key ends with the subscription id), so
//! one browser that is offline or gone does not make the others receive
//! it twice.

pub mod channels;
pub mod email;
pub mod webpush;

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::routes::configs::{body as item_body, encode};
use ai_review_domain::{
    ConfigId, ConfigKind, NotificationChannel, NotificationEvent, NotificationId,
    PushSubscriptionId, TaskState, Timestamp, UserId,
};
use ai_review_protocol::notifications::{NotificationConfig, SmtpTls};
use ai_review_store::{NewNotification, Notification, NotificationOutcome, Review, Task};
use channels::Target;
use serde_json::json;
use std::time::Duration;
use tokio::sync::watch;

/// The value answered in place of a stored secret.
pub const MASK: &str = "***";
/// Tries before a delivery is `failed`.
pub const MAX_TRIES: u32 = 5;
/// Deliveries claimed per pass.
const BATCH: u32 = 20;

fn config_id() -> ConfigId {
    // A fixed, valid UUID: there is exactly one notification settings document.
    ConfigId::parse("00000000-0000-7000-8000-000000000002").unwrap_or_else(|_| ConfigId::generate())
}

/// Mutable references to the secret fields of a config.
fn secrets_of(c: &mut NotificationConfig) -> [&mut Option<String>; 8] {
    [
        &mut c.slack_webhook_url,
        &mut c.dingtalk_webhook_url,
        &mut c.feishu_webhook_url,
        &mut c.wechat_webhook_url,
        &mut c.webhook_url,
        &mut c.webhook_secret,
        &mut c.smtp_password,
        &mut c.vapid_private_key,
    ]
}

/// Why a delivery did not happen, and whether another try can help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryError {
    /// What went wrong, for the history (never a URL, key or password).
    pub reason: String,
    /// No later try can succeed (a refused address, a gone subscription):
    /// the delivery is `failed` at once instead of retried.
    pub permanent: bool,
}

impl DeliveryError {
    /// A failure worth retrying.
    pub fn retry(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            permanent: false,
        }
    }

    /// A failure no retry can fix.
    pub fn permanent(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            permanent: true,
        }
    }
}

/// An SMTP server and who receives the email.
#[derive(Debug, Clone)]
pub struct SmtpTarget {
    /// Host name (checked against the certificate).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Encryption.
    pub tls: SmtpTls,
    /// User, when the server wants a login.
    pub username: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// Sender.
    pub from: String,
    /// Recipients.
    pub recipients: Vec<String>,
}

/// The VAPID identity push messages are signed with.
#[derive(Debug, Clone)]
pub struct PushTarget {
    /// Key pair.
    pub keys: webpush::VapidKeys,
    /// `sub` claim.
    pub subject: String,
}

/// Where and how one channel delivers.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// A webhook-style channel.
    Http(Target),
    /// Email.
    Email(SmtpTarget),
    /// Web Push to each subscribed browser.
    Push(PushTarget),
}

/// The settings with secrets in clear (defaults when never saved).
pub async fn load_config(state: &AppState) -> ApiResult<NotificationConfig> {
    let Some(item) = state
        .store
        .get_config_item(ConfigKind::NotificationConfig, &config_id())
        .await?
    else {
        return Ok(NotificationConfig::default());
    };
    let mut c: NotificationConfig = item_body(&item)?;
    for s in secrets_of(&mut c) {
        if let Some(sealed) = s.as_deref() {
            let open = state
                .settings
                .secrets
                .open(sealed)
                .map_err(|e| ApiError::internal(&e))?;
            *s = Some(open.expose().to_owned());
        }
    }
    Ok(c)
}

/// The settings as answered: secrets masked.
pub fn masked(mut c: NotificationConfig) -> NotificationConfig {
    for s in secrets_of(&mut c) {
        if s.is_some() {
            *s = Some(MASK.to_owned());
        }
    }
    c
}

/// Validates `new` (with `***` meaning "keep" from `current`) and stores
/// it with its secrets sealed. Returns the settings in clear.
pub async fn save_config(
    state: &AppState,
    current: &NotificationConfig,
    mut new: NotificationConfig,
) -> ApiResult<NotificationConfig> {
    let mut old = current.clone();
    for (n, o) in secrets_of(&mut new).into_iter().zip(secrets_of(&mut old)) {
        match n.as_deref().map(str::trim) {
            Some(MASK) => *n = o.clone(),
            Some("") => *n = None,
            _ => {}
        }
    }
    if new.email_enabled && !new.channels.contains(&NotificationChannel::Email) {
        new.channels.push(NotificationChannel::Email);
    }
    new.email_enabled = new.channels.contains(&NotificationChannel::Email);
    validate(state, &new)?;
    let mut stored = new.clone();
    for s in secrets_of(&mut stored) {
        if let Some(plain) = s.as_deref() {
            *s = Some(state.settings.secrets.seal(plain));
        }
    }
    crate::routes::configs::save_singleton(
        state,
        ConfigKind::NotificationConfig,
        config_id(),
        "notifications",
        encode(&stored)?,
    )
    .await?;
    if current.vapid_public_key.is_some() && current.vapid_public_key != new.vapid_public_key {
        // Browsers subscribed with the old key as `applicationServerKey`;
        // push services refuse messages signed with another one.
        let n = state.store.delete_all_push_subscriptions().await?;
        tracing::info!(
            count = n,
            "VAPID key changed: push subscriptions removed (browsers must subscribe again)"
        );
    }
    Ok(new)
}

fn check_url(name: &str, v: Option<&String>) -> ApiResult<()> {
    let Some(u) = v else {
        return Err(ApiError::bad_request(format!(
            "{name} is required for the channel you enabled"
        )));
    };
    let parsed = url::Url::parse(u)
        .map_err(|e| ApiError::bad_request(format!("{name} is not a URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ApiError::bad_request(format!(
            "{name} must be an http:// or https:// URL"
        )));
    }
    Ok(())
}

/// The `sub` claim push messages carry: `vapidSubject`, else the public
/// URL when it is https.
fn vapid_subject(state: &AppState, c: &NotificationConfig) -> Option<String> {
    c.vapid_subject
        .clone()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| {
            state
                .settings
                .public_url
                .clone()
                .filter(|u| u.starts_with("https://"))
        })
}

/// A 400 with `m`.
fn bad(m: impl Into<String>) -> ApiError {
    ApiError::bad_request(m)
}

fn validate_email(c: &NotificationConfig) -> ApiResult<()> {
    match c.smtp_host.as_deref().map(str::trim) {
        None | Some("") => {
            return Err(bad(
                "smtpHost is required for the email channel (e.g. smtp.example.com)",
            ));
        }
        Some(h) if h.contains(['/', ' ', ':']) => {
            return Err(bad(format!(
                "smtpHost {h:?} must be a host name or IP address only; put the port in smtpPort"
            )));
        }
        Some(_) => {}
    }
    if c.smtp_port == Some(0) {
        return Err(bad("smtpPort must be 1-65535"));
    }
    let from = c.smtp_from.as_deref().unwrap_or("");
    if from.trim().is_empty() {
        return Err(bad(
            "smtpFrom is required for the email channel (e.g. ai-review <ai-review@example.com>)",
        ));
    }
    email::mailbox("smtpFrom", from).map_err(bad)?;
    if c.email_recipients.is_empty() {
        return Err(bad("emailRecipients needs at least one address"));
    }
    for r in &c.email_recipients {
        email::mailbox("emailRecipients", r).map_err(bad)?;
    }
    if c.smtp_tls == SmtpTls::None && c.smtp_username.is_some() {
        return Err(bad(
            "smtpTls none would send smtpUsername and smtpPassword in clear; use starttls or tls",
        ));
    }
    if c.smtp_username.is_some() != c.smtp_password.is_some() {
        return Err(bad("smtpUsername and smtpPassword go together"));
    }
    Ok(())
}

fn validate_push(state: &AppState, c: &NotificationConfig, required: bool) -> ApiResult<()> {
    match (&c.vapid_public_key, &c.vapid_private_key) {
        (Some(public), Some(private)) => {
            webpush::check_vapid_keys(public, private).map_err(|e| bad(e.to_string()))?;
        }
        (None, None) if !required => return Ok(()),
        (None, None) => {
            return Err(bad(
                "the push channel needs a VAPID key pair: POST /api/notifications/config/vapid generates one",
            ));
        }
        _ => {
            return Err(bad(
                "vapidPublicKey and vapidPrivateKey go together (generate a pair with POST /api/notifications/config/vapid)",
            ));
        }
    }
    if let Some(sub) = &c.vapid_subject
        && !(sub.starts_with("mailto:") || sub.starts_with("https://"))
    {
        return Err(bad(format!(
            "vapidSubject {sub:?} must be a mailto: or https: URI (push services use it to reach you)"
        )));
    }
    if required && vapid_subject(state, c).is_none() {
        return Err(bad(
            "the push channel needs vapidSubject (e.g. mailto:ops@example.com) when AI_REVIEW_PUBLIC_URL is not https",
        ));
    }
    Ok(())
}

fn validate(state: &AppState, c: &NotificationConfig) -> ApiResult<()> {
    if !(1..=5).contains(&c.rating_low_threshold) {
        return Err(ApiError::bad_request("ratingLowThreshold must be 1-5"));
    }
    if c.summary_hour_utc > 23 {
        return Err(ApiError::bad_request("summaryHourUtc must be 0-23"));
    }
    for ch in &c.channels {
        match ch {
            NotificationChannel::Slack => {
                check_url("slackWebhookUrl", c.slack_webhook_url.as_ref())?
            }
            NotificationChannel::Dingtalk => {
                check_url("dingtalkWebhookUrl", c.dingtalk_webhook_url.as_ref())?;
            }
            NotificationChannel::Feishu => {
                check_url("feishuWebhookUrl", c.feishu_webhook_url.as_ref())?
            }
            NotificationChannel::Wechat => {
                check_url("wechatWebhookUrl", c.wechat_webhook_url.as_ref())?
            }
            NotificationChannel::Webhook => check_url("webhookUrl", c.webhook_url.as_ref())?,
            NotificationChannel::Email => validate_email(c)?,
            NotificationChannel::Push => {}
        }
    }
    validate_push(state, c, c.channels.contains(&NotificationChannel::Push))
}

/// The delivery target of `channel` under `c`, if it is enabled and set.
pub fn target(
    state: &AppState,
    c: &NotificationConfig,
    channel: NotificationChannel,
) -> Option<Delivery> {
    if !c.channels.contains(&channel) {
        return None;
    }
    let http = |t: Option<Target>| t.map(Delivery::Http);
    match channel {
        NotificationChannel::Slack => http(c.slack_webhook_url.clone().map(Target::Slack)),
        NotificationChannel::Dingtalk => http(c.dingtalk_webhook_url.clone().map(Target::DingTalk)),
        NotificationChannel::Feishu => http(c.feishu_webhook_url.clone().map(Target::Feishu)),
        NotificationChannel::Wechat => http(c.wechat_webhook_url.clone().map(Target::WeChat)),
        NotificationChannel::Webhook => http(c.webhook_url.clone().map(|url| Target::Webhook {
            url,
            secret: c.webhook_secret.clone(),
        })),
        NotificationChannel::Email => {
            let host = c.smtp_host.clone()?.trim().to_owned();
            Some(Delivery::Email(SmtpTarget {
                port: c
                    .smtp_port
                    .unwrap_or_else(|| email::default_port(c.smtp_tls)),
                host,
                tls: c.smtp_tls,
                username: c.smtp_username.clone(),
                password: c.smtp_password.clone(),
                from: c.smtp_from.clone()?,
                recipients: c.email_recipients.clone(),
            }))
        }
        NotificationChannel::Push => Some(Delivery::Push(PushTarget {
            keys: webpush::VapidKeys {
                public_key: c.vapid_public_key.clone()?,
                private_key: c.vapid_private_key.clone()?,
            },
            subject: vapid_subject(state, c)?,
        })),
    }
}

/// Who one channel's copy of an event goes to: the channel itself, or for
/// `push` each subscribed browser.
async fn recipients(
    state: &AppState,
    c: &NotificationConfig,
) -> ApiResult<Vec<(NotificationChannel, Option<PushSubscriptionId>)>> {
    let mut out = Vec::new();
    for ch in &c.channels {
        if target(state, c, *ch).is_none() {
            continue;
        }
        if *ch == NotificationChannel::Push {
            for s in state.store.list_push_subscriptions(None).await? {
                out.push((*ch, Some(s.id)));
            }
        } else {
            out.push((*ch, None));
        }
    }
    Ok(out)
}

/// The deduplication key suffix and payload of one recipient's copy.
fn addressed(
    key: String,
    payload: &serde_json::Value,
    to: Option<&PushSubscriptionId>,
) -> (String, serde_json::Value) {
    match to {
        None => (key, payload.clone()),
        Some(id) => {
            let mut p = payload.clone();
            if let Some(o) = p.as_object_mut() {
                o.insert(
                    "recipient".into(),
                    json!({ "pushSubscriptionId": id.as_str() }),
                );
            }
            (format!("{key}:{}", id.as_str()), p)
        }
    }
}

/// The events a finished task raises under `c`.
pub fn events_for(c: &NotificationConfig, task: &Task) -> Vec<NotificationEvent> {
    let rating = task.result.as_ref().and_then(|r| r["rating"].as_u64());
    let mut out = Vec::new();
    match task.state {
        TaskState::Completed => {
            out.push(NotificationEvent::ReviewCompleted);
            if rating.is_some_and(|r| r <= u64::from(c.rating_low_threshold)) {
                out.push(NotificationEvent::RatingLow);
            }
        }
        TaskState::Failed | TaskState::Expired => out.push(NotificationEvent::ReviewFailed),
        _ => {}
    }
    out.retain(|e| c.events.contains(e));
    out
}

/// What a review event carries (channel-independent).
pub fn payload(state: &AppState, review: &Review, task: &Task) -> serde_json::Value {
    let result = task
        .result
        .as_ref()
        .filter(|_| task.state == TaskState::Completed);
    let count = |sev: &str| {
        result
            .and_then(|r| r["findings"].as_array())
            .map_or(0, |f| f.iter().filter(|x| x["severity"] == sev).count())
    };
    let summary: Option<String> = result
        .and_then(|r| r["summary"].as_str())
        .map(|s| s.chars().take(500).collect());
    json!({
        "reviewId": review.id.as_str(),
        "title": review.title,
        "repoUrl": review.repo_url.as_str(),
        "headSha": review.head_sha.as_str(),
        "changeNumber": review.change.as_ref().map(|c| c.number),
        "roundNumber": review.round_number,
        "status": task.state.as_str(),
        "rating": result.and_then(|r| r["rating"].as_u64()),
        "findings": result.map(|_| json!({"error": count("error"), "warning": count("warning"), "info": count("info")})),
        "summary": summary,
        "failureReason": task.failure_reason,
        "link": state.settings.public_url.as_ref().map(|u| format!("{u}/reviews/{}", review.id.as_str())),
    })
}

/// Queues the notifications a finished task raises. Never fails the
/// caller: problems are logged (the review's result is already stored).
pub async fn task_finished(state: &AppState, task: &Task) {
    if let Err(e) = enqueue_for(state, task).await {
        tracing::warn!(task.id = %task.id, error = ?e.detail, "could not queue notifications");
    }
}

async fn enqueue_for(state: &AppState, task: &Task) -> ApiResult<()> {
    let c = load_config(state).await?;
    let events = events_for(&c, task);
    if events.is_empty() || c.channels.is_empty() {
        return Ok(());
    }
    let to = recipients(state, &c).await?;
    let Some(review) = state.store.get_review(&task.review_id).await? else {
        return Ok(());
    };
    let payload = payload(state, &review, task);
    let now = state.clock.now();
    let mut items = Vec::new();
    for e in &events {
        for (ch, sub) in &to {
            let (dedup_key, payload) = addressed(
                format!(
                    "review:{}:{}:{}",
                    review.id.as_str(),
                    e.as_str(),
                    ch.as_str()
                ),
                &payload,
                sub.as_ref(),
            );
            items.push(NewNotification {
                id: NotificationId::generate(),
                event: *e,
                channel: *ch,
                review_id: Some(review.id.clone()),
                dedup_key,
                payload,
                now,
            });
        }
    }
    let queued = state.store.enqueue_notifications(items).await?;
    if !queued.is_empty() {
        tracing::info!(review.id = %review.id, count = queued.len(), "notifications queued");
    }
    Ok(())
}

/// Delay before try `n + 1` after try `n` failed: 2 s, 8 s, 32 s, 128 s.
pub fn backoff(tries: u32) -> Duration {
    Duration::from_secs(2 * 4u64.pow(tries.saturating_sub(1).min(4)))
}

const DAY_MS: i64 = 86_400_000;

/// A summary period due at `now`: its event, dedup label, and
/// `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    /// `daily_summary` or `weekly_summary`.
    pub event: NotificationEvent,
    /// `2026-11-23` or `week-of-2026-11-16`.
    pub label: String,
    /// First instant.
    pub start: Timestamp,
    /// First instant after.
    pub end: Timestamp,
}

fn day_label(t: Timestamp) -> String {
    chrono::DateTime::from_timestamp_millis(t.as_millis())
        .map_or_else(String::new, |d| d.format("%Y-%m-%d").to_string())
}

/// The summaries due at `now` under `c`: from `summary_hour_utc` on, the
/// day before; on Mondays also the week before (Monday to Monday, UTC).
pub fn due_periods(c: &NotificationConfig, now: Timestamp) -> Vec<Period> {
    let ms = now.as_millis();
    let midnight = ms - ms.rem_euclid(DAY_MS);
    if ms - midnight < i64::from(c.summary_hour_utc) * 3_600_000 {
        return Vec::new();
    }
    let mut out = Vec::new();
    if c.events.contains(&NotificationEvent::DailySummary) {
        let start = Timestamp::from_millis(midnight - DAY_MS);
        out.push(Period {
            event: NotificationEvent::DailySummary,
            label: day_label(start),
            start,
            end: Timestamp::from_millis(midnight),
        });
    }
    // 1970-01-01 was a Thursday: day number 4 (mod 7) is a Monday.
    let is_monday = (midnight / DAY_MS).rem_euclid(7) == 4;
    if is_monday && c.events.contains(&NotificationEvent::WeeklySummary) {
        let start = Timestamp::from_millis(midnight - 7 * DAY_MS);
        out.push(Period {
            event: NotificationEvent::WeeklySummary,
            label: format!("week-of-{}", day_label(start)),
            start,
            end: Timestamp::from_millis(midnight),
        });
    }
    out
}

/// Queues the summaries due now on every configured channel. Each is
/// keyed `<event>:<period>:<channel>`, so however many replicas run this,
/// a period's summary is queued once per channel (the store's unique key
/// decides).
pub async fn schedule_summaries(state: &AppState, c: &NotificationConfig) -> ApiResult<usize> {
    let now = state.clock.now();
    let periods = due_periods(c, now);
    if periods.is_empty() {
        return Ok(0);
    }
    let channels = recipients(state, c).await?;
    if channels.is_empty() {
        return Ok(0);
    }
    let mut items = Vec::new();
    for p in periods {
        // Cheap check first: once this period's summaries are queued (by
        // this replica or another), skip reading a day's or week's tasks on
        // every pass.
        let (_, already) = state
            .store
            .list_notifications(&ai_review_store::NotificationFilter {
                event: Some(p.event),
                start: Some(p.end),
                limit: 0,
                ..Default::default()
            })
            .await?;
        if already >= channels.len() as u64 {
            continue;
        }
        let timings = state.store.task_timings(p.start, 100_000).await?;
        let in_period: Vec<_> = timings.iter().filter(|t| t.created_at < p.end).collect();
        let count = |s: TaskState| in_period.iter().filter(|t| t.state == s).count();
        let (completed, failed) = (
            count(TaskState::Completed),
            count(TaskState::Failed) + count(TaskState::Expired),
        );
        let what = if p.event == NotificationEvent::DailySummary {
            format!("Daily summary for {}", p.label)
        } else {
            format!(
                "Weekly summary, {}",
                p.label.replace("week-of-", "week of ")
            )
        };
        let payload = json!({
            "title": what,
            "summary": format!(
                "{} reviews queued: {completed} completed, {failed} failed, {} other.",
                in_period.len(),
                in_period.len() - completed - failed
            ),
            "period": { "start": p.start, "end": p.end },
            "reviews": in_period.len(),
            "completed": completed,
            "failed": failed,
            "link": state.settings.public_url.as_ref().map(|u| format!("{u}/reviews?startDate={}&endDate={}", day_label(p.start), day_label(p.end))),
        });
        for (ch, sub) in &channels {
            let (dedup_key, payload) = addressed(
                format!("{}:{}:{}", p.event.as_str(), p.label, ch.as_str()),
                &payload,
                sub.as_ref(),
            );
            items.push(NewNotification {
                id: NotificationId::generate(),
                event: p.event,
                channel: *ch,
                review_id: None,
                dedup_key,
                payload,
                now,
            });
        }
    }
    let queued = state.store.enqueue_notifications(items).await?;
    if !queued.is_empty() {
        tracing::info!(count = queued.len(), "summaries queued");
    }
    Ok(queued.len())
}

/// One delivery pass: queues due summaries, claims due notifications and
/// sends them concurrently; returns how many were tried.
pub async fn notify_once(state: &AppState) -> ApiResult<usize> {
    let config = load_config(state).await?;
    schedule_summaries(state, &config).await?;
    let now = state.clock.now();
    let timeout = state.settings.notify_timeout;
    let lease = now.plus_millis(crate::config::millis(timeout) * 2 + 5_000);
    let due = state.store.claim_notifications(now, lease, BATCH).await?;
    if due.is_empty() {
        return Ok(0);
    }
    let n = due.len();
    let sends = due.into_iter().map(|d| {
        let config = &config;
        async move {
            let result = match target(state, config, d.channel) {
                Some(t) => deliver(state, &t, &d, now).await,
                None => Err(DeliveryError::retry(format!(
                    "the {} channel is no longer configured",
                    d.channel
                ))),
            };
            let at = state.clock.now();
            let outcome = match result {
                Ok(()) => NotificationOutcome::Sent,
                Err(e) if d.attempts < MAX_TRIES && !e.permanent => NotificationOutcome::Retry {
                    at: at.plus_millis(crate::config::millis(backoff(d.attempts))),
                    error: e.reason,
                },
                Err(e) => NotificationOutcome::Failed { error: e.reason },
            };
            let what = match &outcome {
                NotificationOutcome::Sent => "sent",
                NotificationOutcome::Retry { .. } => "retry",
                NotificationOutcome::Failed { .. } => "failed",
            };
            state.metrics.inc(
                "ai_review_notifications_total",
                vec![("channel", d.channel.as_str().to_owned()), ("outcome", what.to_owned())],
                1,
            );
            match &outcome {
                NotificationOutcome::Sent => {
                    tracing::info!(notification.id = %d.id, channel = %d.channel, "notification sent");
                }
                NotificationOutcome::Retry { error, .. } | NotificationOutcome::Failed { error } => {
                    tracing::warn!(notification.id = %d.id, channel = %d.channel, tries = d.attempts, %error, "notification not delivered");
                }
            }
            if let Err(e) = state.store.finish_notification(&d.id, outcome, at).await {
                tracing::warn!(notification.id = %d.id, error = %e, "could not record a delivery");
            }
        }
    });
    futures::future::join_all(sends).await;
    Ok(n)
}

/// Sends one queued notification through its channel.
async fn deliver(
    state: &AppState,
    target: &Delivery,
    n: &Notification,
    now: Timestamp,
) -> Result<(), DeliveryError> {
    let timeout = state.settings.notify_timeout;
    match target {
        Delivery::Http(t) => {
            channels::send(&state.forge_http, t, n.event, &n.payload, now, timeout)
                .await
                .map_err(DeliveryError::retry)
        }
        Delivery::Email(t) => {
            let m = channels::message(n.event, &n.payload);
            email::send(t, state.settings.smtp_extra_roots.as_deref(), &m, timeout).await
        }
        Delivery::Push(t) => {
            let id = n.payload["recipient"]["pushSubscriptionId"]
                .as_str()
                .and_then(|s| PushSubscriptionId::parse(s).ok())
                .ok_or_else(|| {
                    DeliveryError::permanent("the push notification names no subscription")
                })?;
            push_to(state, t, &id, n.event, &n.payload, now).await
        }
    }
}

/// What the dashboard's service worker receives: `{title, body, url, tag,
/// event}`, cut to fit one Web Push record.
pub fn push_payload(event: NotificationEvent, payload: &serde_json::Value) -> Vec<u8> {
    let m = channels::message(event, payload);
    let mut body = m.lines.join("\n");
    loop {
        let v = json!({
            "title": m.title,
            "body": body,
            "url": m.link,
            "tag": payload["reviewId"].as_str().map_or_else(|| event.as_str().to_owned(), |r| format!("{r}:{}", event.as_str())),
            "event": event.as_str(),
        });
        let bytes = serde_json::to_vec(&v).unwrap_or_default();
        if bytes.len() <= webpush::MAX_PLAINTEXT || body.is_empty() {
            return bytes;
        }
        let keep = body.chars().count().saturating_sub(200);
        body = body.chars().take(keep).collect();
    }
}

/// Sends one push message to one subscribed browser. A subscription the
/// push service calls gone (404/410) is removed.
async fn push_to(
    state: &AppState,
    t: &PushTarget,
    id: &PushSubscriptionId,
    event: NotificationEvent,
    payload: &serde_json::Value,
    now: Timestamp,
) -> Result<(), DeliveryError> {
    let store_err = |e: ai_review_store::StoreError| DeliveryError::retry(format!("store: {e}"));
    let Some(sub) = state
        .store
        .get_push_subscription(id)
        .await
        .map_err(store_err)?
    else {
        return Err(DeliveryError::permanent(
            "the browser unsubscribed before this notification went out",
        ));
    };
    let auth = state
        .settings
        .secrets
        .open(&sub.auth)
        .map_err(|e| DeliveryError::permanent(format!("the subscription's secret: {e}")))?;
    let body = push_payload(event, payload);
    let urgency = match event {
        NotificationEvent::ReviewFailed | NotificationEvent::RatingLow => webpush::Urgency::High,
        _ => webpush::Urgency::Normal,
    };
    let msg = webpush::PushMessage {
        endpoint: &sub.endpoint,
        p256dh: &sub.p256dh,
        auth: auth.expose(),
        payload: &body,
        ttl_secs: 24 * 3600,
        urgency,
        topic: None,
    };
    let secs = u64::try_from(now.as_millis() / 1000).unwrap_or(0);
    match webpush::send(
        &state.forge_http,
        &msg,
        &t.keys,
        &t.subject,
        secs,
        state.settings.notify_timeout,
    )
    .await
    {
        Ok(()) => Ok(()),
        Err(e @ webpush::SendError::Gone { .. }) => {
            state
                .store
                .delete_push_subscription(id)
                .await
                .map_err(store_err)?;
            tracing::info!(push_subscription.id = %id, "push subscription gone; removed");
            Err(DeliveryError::permanent(format!(
                "{e}; the subscription was removed"
            )))
        }
        Err(e) if e.is_permanent() => Err(DeliveryError::permanent(e.to_string())),
        Err(e) => Err(DeliveryError::retry(e.to_string())),
    }
}

/// Generates a VAPID key pair, stores it in the settings, and removes the
/// push subscriptions made for the previous one. Returns the keys (the
/// only time the private key is shown) and how many subscriptions went.
pub async fn generate_vapid(state: &AppState) -> ApiResult<(webpush::VapidKeys, u64)> {
    let current = load_config(state).await?;
    let keys = webpush::generate_vapid_keys();
    let new = NotificationConfig {
        vapid_public_key: Some(keys.public_key.clone()),
        vapid_private_key: Some(keys.private_key.clone()),
        ..current.clone()
    };
    let before = state.store.list_push_subscriptions(None).await?.len() as u64;
    save_config(state, &current, new).await?;
    let removed = if current.vapid_public_key.is_some() {
        before
    } else {
        0
    };
    Ok((keys, removed))
}

/// Runs [`notify_once`] every `interval` until shutdown.
pub async fn run_notifier(
    state: AppState,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        match notify_once(&state).await {
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = ?e.detail, "notification pass failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

/// Sends a test message through `channel` at once (not queued). For
/// `push`, to each browser `user` subscribed.
pub async fn test_channel(
    state: &AppState,
    channel: NotificationChannel,
    user: &UserId,
) -> ApiResult<Result<(), String>> {
    let c = load_config(state).await?;
    let Some(t) = target(state, &c, channel) else {
        return Err(ApiError::bad_request(format!(
            "the {channel} channel is not enabled or not set up in the notification settings"
        )));
    };
    let payload = json!({
        "title": "Test message from ai-review",
        "summary": "If you can read this, the channel works.",
        "link": state.settings.public_url,
    });
    let now: Timestamp = state.clock.now();
    let event = NotificationEvent::ReviewCompleted;
    let timeout = state.settings.notify_timeout;
    let result = match &t {
        Delivery::Http(h) => {
            channels::send(&state.forge_http, h, event, &payload, now, timeout).await
        }
        Delivery::Email(e) => email::send(
            e,
            state.settings.smtp_extra_roots.as_deref(),
            &channels::message(event, &payload),
            timeout,
        )
        .await
        .map_err(|e| e.reason),
        Delivery::Push(p) => {
            let mine = state.store.list_push_subscriptions(Some(user)).await?;
            if mine.is_empty() {
                return Err(ApiError::bad_request(
                    "you have no browser subscribed to push notifications: turn them on in Settings > Notifications first",
                ));
            }
            let mut errors = Vec::new();
            for s in &mine {
                if let Err(e) = push_to(state, p, &s.id, event, &payload, now).await {
                    errors.push(e.reason);
                }
            }
            if errors.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{} of {} browsers did not receive it: {}",
                    errors.len(),
                    mine.len(),
                    errors.join("; ")
                ))
            }
        }
    };
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_are_due_after_the_hour_and_weekly_on_mondays() {
        let c = NotificationConfig::default();
        // 2026-11-23 is a Monday.
        let monday_8 = Timestamp::parse("2026-11-23T08:59:00Z").expect("ts");
        assert!(
            due_periods(&c, monday_8).is_empty(),
            "before the summary hour"
        );
        let monday_9 = Timestamp::parse("2026-11-23T09:00:00Z").expect("ts");
        let p = due_periods(&c, monday_9);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].label, "2026-11-22");
        assert_eq!(
            p[0].end,
            Timestamp::parse("2026-11-23T00:00:00Z").expect("ts")
        );
        assert_eq!(p[1].label, "week-of-2026-11-16");
        let tuesday = Timestamp::parse("2026-11-24T12:00:00Z").expect("ts");
        let p = due_periods(&c, tuesday);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].label, "2026-11-23");
        let off = NotificationConfig {
            events: vec![NotificationEvent::ReviewCompleted],
            ..NotificationConfig::default()
        };
        assert!(due_periods(&off, monday_9).is_empty());
    }

    #[test]
    fn backoff_grows_by_four() {
        let s: Vec<u64> = (1..=5).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(s, [2, 8, 32, 128, 512]);
    }

    #[test]
    fn secrets_are_masked() {
        let c = NotificationConfig {
            slack_webhook_url: Some("https://hooks.slack.com/services/T/B/secret".into()),
            webhook_secret: Some("s".into()),
            ..NotificationConfig::default()
        };
        let m = masked(c);
        assert_eq!(m.slack_webhook_url.as_deref(), Some(MASK));
        assert_eq!(m.webhook_secret.as_deref(), Some(MASK));
        assert_eq!(m.webhook_url, None);
    }
}
