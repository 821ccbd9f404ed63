//! What each channel receives, and sending it. Formats follow each
//! platform's documented incoming-webhook API:
//!
//! * Slack: `{"text": …}` with mrkdwn, link as `<url|title>`; answers `ok`.
//! * DingTalk robot: `{"msgtype":"markdown","markdown":{"title","text"}}`;
//!   answers `{"errcode":0}`.
//! * Feishu bot: `{"msg_type":"text","content":{"text"}}`; answers
//!   `{"code":0}` (or `StatusCode` 0 in older versions).
//! * WeChat Work group robot: `{"msgtype":"markdown","markdown":{"content"}}`;
//!   answers `{"errcode":0}`.
//! * Generic webhook: `{"event", "review": payload, "sentAt"}`, headers
//!   `X-AI-Review-Event` and, with a secret, `X-AI-Review-Signature:
//!   sha256=<hex HMAC-SHA256 of the body>`.

use ai_review_domain::{NotificationChannel, NotificationEvent, Timestamp};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::time::Duration;

/// Where and how one channel delivers.
#[derive(Debug, Clone)]
pub enum Target {
    /// Slack incoming webhook.
    Slack(String),
    /// DingTalk robot.
    DingTalk(String),
    /// Feishu bot.
    Feishu(String),
    /// WeChat Work group robot.
    WeChat(String),
    /// Generic JSON webhook, optionally signed.
    Webhook {
        /// URL.
        url: String,
        /// HMAC key.
        secret: Option<String>,
    },
}

/// A message before channel formatting.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// One line: what happened to which review.
    pub title: String,
    /// Details, one item per line.
    pub lines: Vec<String>,
    /// The review's dashboard page, when the public URL is known.
    pub link: Option<String>,
}

fn event_title(event: NotificationEvent) -> &'static str {
    match event {
        NotificationEvent::ReviewCompleted => "Review completed",
        NotificationEvent::ReviewFailed => "Review failed",
        NotificationEvent::RatingLow => "Low review rating",
        NotificationEvent::DailySummary => "Daily review summary",
        NotificationEvent::WeeklySummary => "Weekly review summary",
    }
}

/// The message for an event from its stored payload.
pub fn message(event: NotificationEvent, payload: &Value) -> Message {
    let name = payload["title"]
        .as_str()
        .filter(|t| !t.is_empty())
        .or_else(|| payload["repoUrl"].as_str())
        .unwrap_or("a review");
    let mut lines = Vec::new();
    if let Some(r) = payload["rating"].as_u64() {
        lines.push(format!("Rating: {r}/5"));
    }
    let f = &payload["findings"];
    if f.is_object() {
        lines.push(format!(
            "Findings: {} errors, {} warnings, {} info",
            f["error"].as_u64().unwrap_or(0),
            f["warning"].as_u64().unwrap_or(0),
            f["info"].as_u64().unwrap_or(0)
        ));
    }
    if let Some(r) = payload["failureReason"].as_str() {
        lines.push(format!("Reason: {r}"));
    }
    if let Some(s) = payload["summary"].as_str().filter(|s| !s.is_empty()) {
        lines.push(s.to_owned());
    }
    Message {
        title: format!("{}: {name}", event_title(event)),
        lines,
        link: payload["link"].as_str().map(str::to_owned),
    }
}

/// The JSON body a channel receives.
pub fn body(target: &Target, event: NotificationEvent, payload: &Value, now: Timestamp) -> Value {
    let m = message(event, payload);
    let plain = || {
        let mut t = m.title.clone();
        for l in &m.lines {
            t.push('\n');
            t.push_str(l);
        }
        if let Some(link) = &m.link {
            t.push('\n');
            t.push_str(link);
        }
        t
    };
    let markdown = || {
        let mut t = match &m.link {
            Some(link) => format!("### [{}]({link})", m.title),
            None => format!("### {}", m.title),
        };
        for l in &m.lines {
            t.push_str("\n\n");
            t.push_str(l);
        }
        t
    };
    match target {
        Target::Slack(_) => {
            let head = match &m.link {
                Some(link) => format!("*<{link}|{}>*", slack_escape(&m.title)),
                None => format!("*{}*", slack_escape(&m.title)),
            };
            let rest: Vec<String> = m.lines.iter().map(|l| slack_escape(l)).collect();
            json!({ "text": std::iter::once(head).chain(rest).collect::<Vec<_>>().join("\n") })
        }
        Target::DingTalk(_) => json!({
            "msgtype": "markdown",
            "markdown": { "title": m.title, "text": markdown() }
        }),
        Target::Feishu(_) => json!({ "msg_type": "text", "content": { "text": plain() } }),
        Target::WeChat(_) => {
            json!({ "msgtype": "markdown", "markdown": { "content": markdown() } })
        }
        Target::Webhook { .. } => json!({
            "event": event.as_str(),
            "title": m.title,
            "review": payload,
            "sentAt": now,
        }),
    }
}

/// Slack's three reserved characters.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `sha256=<hex>` of the HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC takes keys of any length, so this never falls back in practice.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn url_of(target: &Target) -> &str {
    match target {
        Target::Slack(u) | Target::DingTalk(u) | Target::Feishu(u) | Target::WeChat(u) => u,
        Target::Webhook { url, .. } => url,
    }
}

/// The channel of a target.
pub fn channel_of(target: &Target) -> NotificationChannel {
    match target {
        Target::Slack(_) => NotificationChannel::Slack,
        Target::DingTalk(_) => NotificationChannel::Dingtalk,
        Target::Feishu(_) => NotificationChannel::Feishu,
        Target::WeChat(_) => NotificationChannel::Wechat,
        Target::Webhook { .. } => NotificationChannel::Webhook,
    }
}

/// Sends one message; `Err` says why the receiver did not take it (never
/// the URL, which embeds the receiver's token).
pub async fn send(
    http: &reqwest::Client,
    target: &Target,
    event: NotificationEvent,
    payload: &Value,
    now: Timestamp,
    timeout: Duration,
) -> Result<(), String> {
    let body = serde_json::to_vec(&body(target, event, payload, now)).map_err(|e| e.to_string())?;
    let mut rb = http
        .post(url_of(target))
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("x-ai-review-event", event.as_str());
    if let Target::Webhook {
        secret: Some(secret),
        ..
    } = target
    {
        rb = rb.header("x-ai-review-signature", signature(secret, &body));
    }
    let resp = rb.body(body).send().await.map_err(|e| {
        if e.is_timeout() {
            format!("no answer within {} ms", timeout.as_millis())
        } else if e.is_connect() {
            "could not connect to the receiver".to_owned()
        } else {
            "the request to the receiver failed".to_owned()
        }
    })?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(format!(
            "the receiver answered HTTP {}{}",
            status.as_u16(),
            snippet(&text)
        ));
    }
    // DingTalk, Feishu and WeCom answer 200 with an error code in the body.
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let code = v
        .get("errcode")
        .or_else(|| v.get("code"))
        .or_else(|| v.get("StatusCode"))
        .and_then(Value::as_i64);
    match (target, code) {
        (Target::DingTalk(_) | Target::Feishu(_) | Target::WeChat(_), Some(c)) if c != 0 => {
            let msg = v
                .get("errmsg")
                .or_else(|| v.get("msg"))
                .and_then(Value::as_str)
                .unwrap_or("");
            Err(format!(
                "the receiver refused the message (code {c}: {msg})"
            ))
        }
        _ => Ok(()),
    }
}

fn snippet(text: &str) -> String {
    let t: String = text.chars().take(200).collect();
    if t.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", t.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload() -> Value {
        json!({
            "reviewId": "r1", "title": "Fix <login> & cache", "repoUrl": "https://git.example.com/a.git",
            "rating": 2, "findings": {"error": 1, "warning": 2, "info": 0},
            "summary": "One error.", "link": "https://review.example.com/reviews/r1"
        })
    }

    #[test]
    fn each_platform_gets_its_own_shape() {
        let now = Timestamp::from_millis(0);
        let p = payload();
        let e = NotificationEvent::ReviewCompleted;
        let slack = body(&Target::Slack(String::new()), e, &p, now);
        let text = slack["text"].as_str().expect("text");
        assert!(text.starts_with("*<https://review.example.com/reviews/r1|Review completed: Fix &lt;login&gt; &amp; cache>*"), "{text}");
        assert!(text.contains("Findings: 1 errors, 2 warnings, 0 info"));
        let ding = body(&Target::DingTalk(String::new()), e, &p, now);
        assert_eq!(ding["msgtype"], "markdown");
        assert!(
            ding["markdown"]["text"]
                .as_str()
                .expect("md")
                .contains("](https://review.example.com/reviews/r1)")
        );
        let feishu = body(&Target::Feishu(String::new()), e, &p, now);
        assert_eq!(feishu["msg_type"], "text");
        assert!(
            feishu["content"]["text"]
                .as_str()
                .expect("text")
                .ends_with("https://review.example.com/reviews/r1")
        );
        let wecom = body(&Target::WeChat(String::new()), e, &p, now);
        assert_eq!(wecom["msgtype"], "markdown");
        assert!(
            wecom["markdown"]["content"]
                .as_str()
                .expect("content")
                .contains("Rating: 2/5")
        );
        let hook = body(
            &Target::Webhook {
                url: String::new(),
                secret: None,
            },
            e,
            &p,
            now,
        );
        assert_eq!(hook["event"], "review_completed");
        assert_eq!(hook["review"], p);
    }

    #[test]
    fn signatures_are_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
