//! `/settings/notifications`: channels, events and thresholds, SMTP, Web
//! Push (VAPID keys, this browser's subscription), a test button per
//! channel, and the delivery history. Receiver URLs, the signing secret and
//! the SMTP password are write-only: a blank field keeps the stored value.

use super::{Notice, done, page as settings_page};
use crate::app::AppState;
use crate::dashboard::layout::{badge, csrf, time};
use crate::dashboard::{PageResult, Posted, Viewer};
use crate::extract::{ApiJson, ApiQuery};
use crate::notify::MASK;
use crate::routes::notifications as api;
use ai_review_domain::{NotificationChannel, NotificationEvent, Permission};
use ai_review_protocol::notifications::{NotificationConfig, SmtpTls, TestChannelRequest};
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
        State(state.clone()),
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
    let Json(s) = api::list_subscriptions(State(state), viewer.caller()).await?;
    let subs = s.data.unwrap_or_default();
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
                    legend { "Email (SMTP)" }
                    (check("ch-email", "channels", "email", c.channels.contains(&NotificationChannel::Email), "email"))
                    label for="smtpHost" { "SMTP host" input #smtpHost type="text" name="smtpHost" value=(c.smtp_host.clone().unwrap_or_default()) placeholder="smtp.example.com"; }
                    label for="smtpTls" { "Encryption"
                        select #smtpTls name="smtpTls" {
                            @for (t, label) in [(SmtpTls::Starttls, "STARTTLS (port 587)"), (SmtpTls::Tls, "TLS (port 465)"), (SmtpTls::None, "none (local relay, no login)")] {
                                @if c.smtp_tls == t { option value=(t.as_str()) selected { (label) } } @else { option value=(t.as_str()) { (label) } }
                            }
                        }
                    }
                    label for="smtpPort" { "Port " span.muted { "(blank: the encryption's usual port)" }
                        input #smtpPort type="number" name="smtpPort" min="1" max="65535" value=[c.smtp_port]; }
                    label for="smtpUsername" { "Username" input #smtpUsername type="text" name="smtpUsername" autocomplete="off" value=(c.smtp_username.clone().unwrap_or_default()); }
                    label for="smtpPassword" { "Password " span.muted { "(" (if c.smtp_password.is_some() { "set; blank keeps it" } else { "not set" }) ")" }
                        input #smtpPassword type="password" name="smtpPassword" autocomplete="off"; }
                    label for="smtpFrom" { "From" input #smtpFrom type="text" name="smtpFrom" value=(c.smtp_from.clone().unwrap_or_default()) placeholder="ai-review <ai-review@example.com>"; }
                    label for="emailRecipients" { "Recipients " span.muted { "(one per line)" }
                        textarea #emailRecipients name="emailRecipients" rows="3" { (c.email_recipients.join("\n")) } }
                }
                fieldset {
                    legend { "Browser push" }
                    (check("ch-push", "channels", "push", c.channels.contains(&NotificationChannel::Push), "push"))
                    @if c.vapid_public_key.is_none() {
                        p.muted { "Generate a VAPID key pair below first." }
                    }
                    label for="vapidSubject" { "Contact for push services " span.muted { "(mailto: or https:; blank: the public URL)" }
                        input #vapidSubject type="text" name="vapidSubject" value=(c.vapid_subject.clone().unwrap_or_default()) placeholder="mailto:ops@example.com"; }
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
            (push_panel(&viewer, &c, &subs))
        } @else {
            (push_panel(&viewer, &c, &subs))
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

/// Web Push: the key pair (generate), this browser's subscription (the
/// script does the browser part), and the subscribed browsers.
fn push_panel(
    viewer: &Viewer,
    c: &NotificationConfig,
    subs: &[ai_review_protocol::notifications::PushSubscriptionView],
) -> Markup {
    let can = viewer.can(Permission::ConfigUpdate);
    html! {
        section.panel #push aria-label="Browser push" {
            h2 { "Browser push" }
            @if let Some(k) = &c.vapid_public_key {
                p { "VAPID public key: " code.mono #vapid-public-key { (k) } }
                div.row {
                    button.secondary #push-subscribe type="button" data-key=(k) { "Turn on notifications in this browser" }
                    span #push-status.muted role="status" {}
                }
                (csrf(viewer))
            } @else {
                p.muted { "Web Push is not set up yet." }
            }
            @if can {
                form.row method="post" action="/settings/notifications/vapid" aria-label="Generate VAPID keys" {
                    (csrf(viewer))
                    button.secondary type="submit" { (if c.vapid_public_key.is_some() { "Generate a new key pair (browsers must subscribe again)" } else { "Generate a VAPID key pair" }) }
                }
            }
            @if subs.is_empty() { p.muted { "No browser is subscribed." } } @else {
                table #push-subscriptions {
                    thead { tr { th { "Push service" } th { "Browser" } th { "Since" } th {} } }
                    tbody { @for s in subs { tr {
                        td.mono { (s.push_service) } td { (s.user_agent.clone().unwrap_or_default()) } td { (time(s.created_at)) }
                        td { (super::delete_button(viewer, &format!("/settings/notifications/push/{}/delete", s.id.as_str()), "Unsubscribe")) }
                    } } }
                }
            }
        }
    }
}

/// `POST /settings/notifications/vapid`: generates a key pair and shows
/// the private key this once.
pub async fn generate_vapid(
    State(state): State<AppState>,
    posted: Posted<crate::dashboard::NoFields>,
) -> PageResult {
    let (_, Json(env)) = api::generate_vapid(State(state), posted.viewer.caller()).await?;
    let Some(k) = env.data else {
        return Err(
            crate::error::ApiError::bad_request("no key pair was generated; try again").into(),
        );
    };
    let body = html! {
        section.panel #vapid-keys {
            h2 { "New VAPID key pair" }
            p { "The private key is shown this once. Keep it if you may move this server or run it again elsewhere; it is stored sealed and never shown again." }
            p { "Public key: " code.mono { (k.public_key) } }
            p { "Private key: " code.mono #vapid-private-key { (k.private_key) } }
            @if k.subscriptions_removed > 0 {
                p { (k.subscriptions_removed) " browser subscriptions made for the old key were removed; those browsers must turn notifications on again." }
            }
            p { a href="/settings/notifications" { "Back to notification settings" } }
        }
    };
    Ok(settings_page(
        &posted.viewer,
        "/settings/notifications",
        &Notice::default(),
        body,
    ))
}

/// `POST /settings/notifications/push/{id}/delete`.
pub async fn unsubscribe(
    State(state): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
    posted: Posted<crate::dashboard::NoFields>,
) -> PageResult<Response> {
    let r = api::unsubscribe(
        State(state),
        posted.viewer.caller(),
        axum::extract::Path(id),
    )
    .await;
    done(r.map(|_| ()), "/settings/notifications", "deleted")
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
    #[serde(default)]
    smtp_host: String,
    #[serde(default)]
    smtp_port: String,
    #[serde(default)]
    smtp_tls: SmtpTls,
    #[serde(default)]
    smtp_username: String,
    #[serde(default)]
    smtp_password: String,
    #[serde(default)]
    smtp_from: String,
    #[serde(default)]
    email_recipients: String,
    #[serde(default)]
    vapid_subject: String,
    rating_low_threshold: u8,
    summary_hour_utc: u8,
    #[serde(rename = "_csrf", default)]
    _csrf: Option<String>,
}

fn non_blank(v: &str) -> Option<String> {
    Some(v.trim().to_owned()).filter(|v| !v.is_empty())
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
        email_enabled: f.channels.contains(&NotificationChannel::Email),
        smtp_host: non_blank(&f.smtp_host),
        smtp_port: match f.smtp_port.trim() {
            "" => None,
            p => Some(p.parse().map_err(|_| {
                crate::error::ApiError::bad_request(format!("smtpPort {p:?} must be 1-65535"))
            })?),
        },
        smtp_tls: f.smtp_tls,
        smtp_username: non_blank(&f.smtp_username),
        smtp_password: if f.smtp_username.trim().is_empty() {
            None
        } else {
            keep_blank(&f.smtp_password, current.smtp_password.as_ref())
        },
        smtp_from: non_blank(&f.smtp_from),
        email_recipients: f
            .email_recipients
            .split(['\n', ','])
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect(),
        vapid_subject: non_blank(&f.vapid_subject),
        rating_low_threshold: f.rating_low_threshold,
        summary_hour_utc: f.summary_hour_utc,
        channels: f.channels,
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
