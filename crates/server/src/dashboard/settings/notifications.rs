//! `/settings/notifications`: channels, events and thresholds, a test
//! button per channel, and the delivery history. Receiver URLs and the
//! signing secret are write-only: a blank field keeps the stored value.

use super::{Notice, done, page as settings_page};
use crate::app::AppState;
use crate::dashboard::layout::{badge, csrf, time};
use crate::dashboard::{PageResult, Posted, Viewer};
use crate::extract::{ApiJson, ApiQuery};
use crate::notify::MASK;
use crate::routes::notifications as api;
use ai_review_domain::{NotificationChannel, NotificationEvent, Permission};
use ai_review_protocol::notifications::{NotificationConfig, TestChannelRequest};
use axum::Json;
use axum::extract::{Query, State};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

/// Channels this version delivers.
const CHANNELS: [(NotificationChannel, &str, &str); 5] = [
    (
        NotificationChannel::Slack,
        "slackWebhookUrl",
        "Slack incoming-webhook URL",
    ),
    (
        NotificationChannel::Webhook,
        "webhookUrl",
        "Generic webhook URL",
    ),
    (
        NotificationChannel::Dingtalk,
        "dingtalkWebhookUrl",
        "DingTalk robot URL",
    ),
    (
        NotificationChannel::Feishu,
        "feishuWebhookUrl",
        "Feishu bot URL",
    ),
    (
        NotificationChannel::Wechat,
        "wechatWebhookUrl",
        "WeChat Work robot URL",
    ),
];

fn url_of(c: &NotificationConfig, ch: NotificationChannel) -> Option<&String> {
    match ch {
        NotificationChannel::Slack => c.slack_webhook_url.as_ref(),
        NotificationChannel::Webhook => c.webhook_url.as_ref(),
        NotificationChannel::Dingtalk => c.dingtalk_webhook_url.as_ref(),
        NotificationChannel::Feishu => c.feishu_webhook_url.as_ref(),
        NotificationChannel::Wechat => c.wechat_webhook_url.as_ref(),
        NotificationChannel::Email | NotificationChannel::Push => None,
    }
}

fn check(id: &str, name: &str, value: &str, on: bool, label: &str) -> Markup {
    html! {
        label.check for=(id) {
            @if on { input id=(id) type="checkbox" name=(name) value=(value) checked; }
            @else { input id=(id) type="checkbox" name=(name) value=(value); }
            (label)
        }
    }
}

/// `GET /settings/notifications`.
pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(n): Query<Notice>,
) -> PageResult {
    let Json(env) = api::get_config(State(state.clone()), viewer.caller()).await?;
    let c = env.data.unwrap_or_default();
    let Json(h) = api::history(
        State(state),
        viewer.caller(),
        ApiQuery(api::HistoryQuery {
            page: Some(1),
            page_size: Some(50),
            channel: None,
            status: None,
            event: None,
            review_id: None,
            start_date: None,
            end_date: None,
        }),
    )
    .await?;
    let history = h.data.unwrap_or_default();
    let can = viewer.can(Permission::ConfigUpdate);
    let body = html! {
        @if can {
            form.stack.panel method="post" action="/settings/notifications" aria-label="Notification settings" {
                (csrf(&viewer))
                fieldset {
                    legend { "Channels" }
                    @for (ch, field, label) in CHANNELS {
                        (check(&format!("ch-{ch}"), "channels", ch.as_str(), c.channels.contains(&ch), ch.as_str()))
                        label for=(field) {
                            (label) " "
                            span.muted { "(" (if url_of(&c, ch).is_some() { "set; blank keeps it" } else { "not set" }) ")" }
                            input id=(field) type="password" name=(field) autocomplete="off";
                        }
                    }
                    label for="webhookSecret" {
                        "Webhook signing secret " span.muted { "(" (if c.webhook_secret.is_some() { "set; blank keeps it" } else { "not set" }) ")" }
                        input #webhookSecret type="password" name="webhookSecret" autocomplete="off";
                    }
                }
                fieldset {
                    legend { "Events" }
                    @for e in NotificationEvent::ALL {
                        (check(&format!("ev-{e}"), "events", e.as_str(), c.events.contains(e), &e.as_str().replace('_', " ")))
                    }
                }
                label for="ratingLowThreshold" { "Low rating at or below (1-5)"
                    input #ratingLowThreshold type="number" name="ratingLowThreshold" min="1" max="5" value=(c.rating_low_threshold); }
                label for="summaryHourUtc" { "Send summaries from (hour, UTC)"
                    input #summaryHourUtc type="number" name="summaryHourUtc" min="0" max="23" value=(c.summary_hour_utc); }
                button type="submit" { "Save" }
            }
            @if !c.channels.is_empty() {
                form.row.panel method="post" action="/settings/notifications/test" aria-label="Send a test message" {
                    (csrf(&viewer))
                    label for="test-channel" { "Send a test message to"
                        select #test-channel name="channel" {
                            @for ch in &c.channels { option value=(ch.as_str()) { (ch.as_str()) } }
                        }
                    }
                    button.secondary type="submit" { "Send test" }
                }
            }
        } @else {
            p.panel { "Channels in use: " (c.channels.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")) ". Changing them needs config:update." }
        }
        h2 { "Recent deliveries" }
        @if history.is_empty() { p.muted { "Nothing sent yet." } } @else {
            table #notifications {
                thead { tr { th { "Queued" } th { "Event" } th { "Channel" } th { "Status" } th.num { "Tries" } th { "Error" } th { "Review" } } }
                tbody { @for d in &history { tr {
                    td { (time(d.created_at)) } td { (d.event.as_str().replace('_', " ")) } td { (d.channel.as_str()) }
                    td { (badge(d.status.as_str())) } td.num { (d.attempts) }
                    td { (d.error.clone().unwrap_or_default()) }
                    td { @if let Some(r) = &d.review_id { a.mono href={ "/reviews/" (r.as_str()) } { "open" } } }
                } } }
            }
        }
    };
    Ok(settings_page(&viewer, "/settings/notifications", &n, body))
}

/// The settings form.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingsForm {
    #[serde(default)]
    channels: Vec<NotificationChannel>,
    #[serde(default)]
    events: Vec<NotificationEvent>,
    #[serde(default)]
    slack_webhook_url: String,
    #[serde(default)]
    webhook_url: String,
    #[serde(default)]
    dingtalk_webhook_url: String,
    #[serde(default)]
    feishu_webhook_url: String,
    #[serde(default)]
    wechat_webhook_url: String,
    #[serde(default)]
    webhook_secret: String,
    rating_low_threshold: u8,
    summary_hour_utc: u8,
    #[serde(rename = "_csrf", default)]
    _csrf: Option<String>,
}

/// A blank secret field keeps what is stored.
fn keep_blank(v: &str, stored: Option<&String>) -> Option<String> {
    match (v.trim(), stored) {
        ("", Some(_)) => Some(MASK.to_owned()),
        ("", None) => None,
        (s, _) => Some(s.to_owned()),
    }
}

/// `POST /settings/notifications`: the API's `PUT`, as the viewer.
pub async fn save(
    State(state): State<AppState>,
    posted: Posted<SettingsForm>,
) -> PageResult<Response> {
    let Json(env) = api::get_config(State(state.clone()), posted.viewer.caller()).await?;
    let current = env.data.unwrap_or_default();
    let f = posted.form;
    let new = NotificationConfig {
        channels: f.channels,
        events: f.events,
        slack_webhook_url: keep_blank(&f.slack_webhook_url, current.slack_webhook_url.as_ref()),
        webhook_url: keep_blank(&f.webhook_url, current.webhook_url.as_ref()),
        dingtalk_webhook_url: keep_blank(
            &f.dingtalk_webhook_url,
            current.dingtalk_webhook_url.as_ref(),
        ),
        feishu_webhook_url: keep_blank(&f.feishu_webhook_url, current.feishu_webhook_url.as_ref()),
        wechat_webhook_url: keep_blank(&f.wechat_webhook_url, current.wechat_webhook_url.as_ref()),
        webhook_secret: keep_blank(&f.webhook_secret, current.webhook_secret.as_ref()),
        rating_low_threshold: f.rating_low_threshold,
        summary_hour_utc: f.summary_hour_utc,
        ..current
    };
    let r = api::put_config(State(state), posted.viewer.caller(), ApiJson(new)).await;
    done(r, "/settings/notifications", "updated")
}

/// The test form.
#[derive(Debug, Deserialize)]
pub struct TestForm {
    channel: NotificationChannel,
}

/// `POST /settings/notifications/test`: sends a test message now.
pub async fn test(State(state): State<AppState>, posted: Posted<TestForm>) -> PageResult<Response> {
    let Json(env) = api::test_channel(
        State(state),
        posted.viewer.caller(),
        ApiJson(TestChannelRequest {
            channel: posted.form.channel,
        }),
    )
    .await?;
    match env.data {
        Some(r) if r.ok => done(Ok(()), "/settings/notifications", "tested"),
        Some(r) => Err(crate::error::ApiError::new(
            axum::http::StatusCode::BAD_GATEWAY,
            format!(
                "the test message to {} was not delivered: {}",
                r.channel,
                r.error.unwrap_or_default()
            ),
        )
        .into()),
        None => done(Ok(()), "/settings/notifications", "tested"),
    }
}

#[cfg(test)]
mod tests {
    use super::keep_blank;

    #[test]
    fn blank_secret_fields_keep_the_stored_value() {
        let stored = "***".to_owned();
        assert_eq!(keep_blank("", Some(&stored)).as_deref(), Some("***"));
        assert_eq!(keep_blank("  ", None), None);
        assert_eq!(
            keep_blank("https://x", Some(&stored)).as_deref(),
            Some("https://x")
        );
    }
}
