//! Bodies of the notification API (`/api/notifications/...`).

use ai_review_domain::{
    NotificationChannel, NotificationEvent, NotificationId, NotificationStatus, ReviewId, Timestamp,
};
use serde::{Deserialize, Serialize};

/// The notification settings (`GET/PUT/PATCH /api/notifications/config`).
/// Webhook URLs (they embed the receiver's token), the signing secret and
/// the SMTP password are write-only: answered as `***`, and `***` sent back
/// keeps the stored value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct NotificationConfig {
    /// Channels in use.
    pub channels: Vec<NotificationChannel>,
    /// Events sent (default: all).
    pub events: Vec<NotificationEvent>,
    /// Email on or off (with `email` in `channels`).
    pub email_enabled: bool,
    /// Slack incoming-webhook URL.
    pub slack_webhook_url: Option<String>,
    /// DingTalk robot URL.
    pub dingtalk_webhook_url: Option<String>,
    /// Feishu bot URL.
    pub feishu_webhook_url: Option<String>,
    /// WeChat Work (WeCom) group robot URL.
    pub wechat_webhook_url: Option<String>,
    /// Generic JSON webhook URL.
    pub webhook_url: Option<String>,
    /// When set, generic webhook bodies are signed:
    /// `X-AI-Review-Signature: sha256=<hex HMAC-SHA256 of the body>`.
    pub webhook_secret: Option<String>,
    /// SMTP server.
    pub smtp_host: Option<String>,
    /// SMTP port (default 587).
    pub smtp_port: Option<u16>,
    /// SMTP user.
    pub smtp_username: Option<String>,
    /// SMTP password.
    pub smtp_password: Option<String>,
    /// Sender address.
    pub smtp_from: Option<String>,
    /// Email recipients.
    pub email_recipients: Vec<String>,
    /// A completed review rated at or below this sends `rating_low` (1-5).
    pub rating_low_threshold: u8,
    /// Hour of the day (UTC, 0-23) from which the daily summary of the day
    /// before, and on Mondays the weekly summary of the week before, is sent.
    pub summary_hour_utc: u8,
}

impl Default for NotificationConfig {
    fn default() -> Self {
        Self {
            channels: Vec::new(),
            events: NotificationEvent::ALL.to_vec(),
            email_enabled: false,
            slack_webhook_url: None,
            dingtalk_webhook_url: None,
            feishu_webhook_url: None,
            wechat_webhook_url: None,
            webhook_url: None,
            webhook_secret: None,
            smtp_host: None,
            smtp_port: None,
            smtp_username: None,
            smtp_password: None,
            smtp_from: None,
            email_recipients: Vec::new(),
            rating_low_threshold: 2,
            summary_hour_utc: 9,
        }
    }
}

/// `POST /api/notifications/config/test-channel`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestChannelRequest {
    /// The channel to send a test message through.
    pub channel: NotificationChannel,
}

/// The outcome of a test message.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestChannelResult {
    /// The channel.
    pub channel: NotificationChannel,
    /// Whether the receiver accepted it.
    pub ok: bool,
    /// Why not.
    pub error: Option<String>,
}

/// One delivery in the history.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationView {
    /// Id.
    pub id: NotificationId,
    /// Event.
    pub event: NotificationEvent,
    /// Channel.
    pub channel: NotificationChannel,
    /// The review it is about.
    pub review_id: Option<ReviewId>,
    /// `pending`, `sent` or `failed`.
    pub status: NotificationStatus,
    /// Tries so far.
    pub attempts: u32,
    /// The last error.
    pub error: Option<String>,
    /// What was (or will be) sent, before channel formatting.
    pub payload: serde_json::Value,
    /// Queued at.
    pub created_at: Timestamp,
    /// Delivered at.
    pub sent_at: Option<Timestamp>,
    /// Next try (pending only).
    pub next_attempt_at: Option<Timestamp>,
}

/// `GET /api/notifications/stats`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationStatsView {
    /// All deliveries counted.
    pub total: u64,
    /// Per status.
    pub by_status: std::collections::BTreeMap<String, u64>,
    /// Per channel.
    pub by_channel: std::collections::BTreeMap<String, u64>,
}
