//! Notifications through real HTTP to local receivers, on SQLite and
//! PostgreSQL: each platform's payload shape, the generic webhook's HMAC
//! signature, failing and hanging receivers retried and then `failed` with
//! the reason, no effect on review processing, the settings API with
//! secrets masked and sealed, and the history and stats.

use ai_review_domain::{Role, TaskOutcome};
use ai_review_server::notify::{MAX_TRIES, backoff, notify_once};
use ai_review_testkit::{Backend, Principal, TestApp, on_both_backends};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod common;
use common::notify::{finish_review, history, patch_config, put_config};

on_both_backends!(
    every_channel_gets_its_platforms_format_once_per_event,
    failing_receivers_are_retried_then_failed_with_the_reason,
    settings_mask_and_seal_secrets_and_refuse_what_cannot_work,
);

/// What a receiver saw: path, headers, raw body.
type Seen = Arc<Mutex<Vec<(String, HeaderMap, Bytes)>>>;

/// A local receiver: `/ok/{name}` answers like the platform named,
/// `/fail` 500, `/refuse` a DingTalk-style error code, `/hang` never in time.
async fn receiver() -> (String, Seen) {
    let seen: Seen = Arc::default();
    async fn take(
        State(seen): State<Seen>,
        Path(name): Path<String>,
        headers: HeaderMap,
        body: Bytes,
    ) -> String {
        seen.lock()
            .expect("lock")
            .push((name.clone(), headers, body));
        match name.as_str() {
            "slack" => "ok".into(),
            "feishu" => json!({"code": 0, "msg": "success"}).to_string(),
            _ => json!({"errcode": 0, "errmsg": "ok"}).to_string(),
        }
    }
    async fn fail(
        State(seen): State<Seen>,
        headers: HeaderMap,
        body: Bytes,
    ) -> (axum::http::StatusCode, &'static str) {
        seen.lock()
            .expect("lock")
            .push(("fail".into(), headers, body));
        (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "receiver is down",
        )
    }
    async fn refuse(State(seen): State<Seen>, headers: HeaderMap, body: Bytes) -> String {
        seen.lock()
            .expect("lock")
            .push(("refuse".into(), headers, body));
        json!({"errcode": 310000, "errmsg": "keywords not in content"}).to_string()
    }
    async fn hang(State(seen): State<Seen>, headers: HeaderMap, body: Bytes) -> &'static str {
        seen.lock()
            .expect("lock")
            .push(("hang".into(), headers, body));
        tokio::time::sleep(Duration::from_secs(30)).await;
        "late"
    }
    let app = Router::new()
        .route("/ok/{name}", post(take))
        .route("/fail", post(fail))
        .route("/refuse", post(refuse))
        .route("/hang", post(hang))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

async fn every_channel_gets_its_platforms_format_once_per_event(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.public_url = Some("https://review.example.com".into())
    })
    .await;
    let (url, seen) = receiver().await;
    put_config(
        &app,
        &app.admin.bearer(),
        &json!({
            "channels": ["slack", "webhook", "dingtalk", "feishu", "wechat"],
            "slackWebhookUrl": format!("{url}/ok/slack"),
            "webhookUrl": format!("{url}/ok/hook"),
            "webhookSecret": "hook-secret",
            "dingtalkWebhookUrl": format!("{url}/ok/ding"),
            "feishuWebhookUrl": format!("{url}/ok/feishu"),
            "wechatWebhookUrl": format!("{url}/ok/wechat"),
            "ratingLowThreshold": 2,
            "events": ["review_completed", "review_failed", "rating_low"]
        }),
    )
    .await
    .expect(200);
    let (review_id, runner, task) = finish_review(&app, 2).await;
    assert!(
        seen.lock().expect("lock").is_empty(),
        "the result did not wait for any receiver"
    );
    // A repeated result queues nothing more.
    runner
        .submit_result(
            &task.task_id,
            task.attempt,
            TaskOutcome::Succeeded,
            None,
            false,
            Some(json!({"rating": 2})),
        )
        .await
        .ok();
    let queued = history(&app, "&status=pending").await;
    assert_eq!(
        queued.len(),
        10,
        "completed and rating_low on five channels: {queued:#?}"
    );
    assert_eq!(notify_once(&app.server.state).await.expect("pass"), 10);
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 10);
    let link = format!("https://review.example.com/reviews/{review_id}");
    for (name, headers, body) in &seen {
        let v: Value = serde_json::from_slice(body).expect("json body");
        match name.as_str() {
            "slack" => assert!(
                v["text"]
                    .as_str()
                    .expect("text")
                    .contains(&format!("<{link}|")),
                "{v}"
            ),
            "ding" => {
                assert_eq!(v["msgtype"], "markdown");
                assert!(v["markdown"]["text"].as_str().expect("md").contains(&link));
            }
            "feishu" => {
                assert_eq!(v["msg_type"], "text");
                assert!(
                    v["content"]["text"]
                        .as_str()
                        .expect("text")
                        .contains("Rating: 2/5")
                );
            }
            "wechat" => {
                assert_eq!(v["msgtype"], "markdown");
                assert!(
                    v["markdown"]["content"]
                        .as_str()
                        .expect("content")
                        .contains("1 errors, 1 warnings")
                );
            }
            "hook" => {
                assert_eq!(v["review"]["reviewId"], review_id.as_str());
                assert_eq!(v["review"]["link"], link.as_str());
                let sig = headers["x-ai-review-signature"].to_str().expect("sig");
                assert_eq!(
                    sig,
                    ai_review_server::notify::channels::signature("hook-secret", body)
                );
                assert_eq!(
                    headers["x-ai-review-event"],
                    v["event"].as_str().expect("event")
                );
            }
            other => panic!("unexpected receiver {other}"),
        }
    }
    let sent = history(&app, "&status=sent").await;
    assert_eq!(sent.len(), 10);
    let low = history(&app, &format!("&event=rating_low&reviewId={review_id}")).await;
    assert_eq!(low.len(), 5);
    let one = app
        .get(
            &format!(
                "/api/notifications/history/{}",
                low[0]["id"].as_str().expect("id")
            ),
            &app.admin.bearer(),
        )
        .await
        .expect(200);
    assert_eq!(one.data()["status"], "sent");
    let stats = app
        .get("/api/notifications/stats", &app.admin.bearer())
        .await
        .expect(200);
    assert_eq!(stats.data()["total"], 10);
    assert_eq!(stats.data()["byStatus"]["sent"], 10);
    assert_eq!(stats.data()["byChannel"]["slack"], 2);
    // Nothing more to send.
    assert_eq!(notify_once(&app.server.state).await.expect("pass"), 0);
}

async fn failing_receivers_are_retried_then_failed_with_the_reason(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.notify_timeout = Duration::from_millis(300)).await;
    let (url, seen) = receiver().await;
    put_config(
        &app,
        &app.admin.bearer(),
        &json!({
            "channels": ["webhook", "dingtalk", "slack"],
            "webhookUrl": format!("{url}/fail"),
            "dingtalkWebhookUrl": format!("{url}/refuse"),
            "slackWebhookUrl": format!("{url}/hang"),
            "events": ["review_completed"]
        }),
    )
    .await
    .expect(200);
    let (review_id, _, _) = finish_review(&app, 5).await;
    let review = app.review(&review_id).await;
    assert_eq!(
        review.task.state.as_str(),
        "completed",
        "the review is done whatever the receivers do"
    );
    for tries in 1..=MAX_TRIES {
        assert_eq!(
            notify_once(&app.server.state).await.expect("pass"),
            3,
            "try {tries}"
        );
        let items = history(&app, "").await;
        for n in &items {
            assert_eq!(n["attempts"], tries);
            let error = n["error"].as_str().expect("error");
            match n["channel"].as_str().expect("channel") {
                "webhook" => assert!(
                    error.contains("HTTP 500") && error.contains("receiver is down"),
                    "{error}"
                ),
                "dingtalk" => assert!(
                    error.contains("310000") && error.contains("keywords"),
                    "{error}"
                ),
                "slack" => assert!(error.contains("no answer within 300 ms"), "{error}"),
                other => panic!("{other}"),
            }
            assert!(
                !error.contains(&url),
                "the receiver's URL (a secret) is not in the error"
            );
            let expected = if tries < MAX_TRIES {
                "pending"
            } else {
                "failed"
            };
            assert_eq!(n["status"], expected, "try {tries}: {n}");
        }
        // Not due again before the backoff has passed.
        assert_eq!(notify_once(&app.server.state).await.expect("pass"), 0);
        app.advance(backoff(tries));
    }
    assert_eq!(
        notify_once(&app.server.state).await.expect("pass"),
        0,
        "failed is final"
    );
    assert_eq!(seen.lock().expect("lock").len(), 3 * MAX_TRIES as usize);
    let stats = app
        .get("/api/notifications/stats", &app.admin.bearer())
        .await
        .expect(200);
    assert_eq!(stats.data()["byStatus"]["failed"], 3);
}

async fn settings_mask_and_seal_secrets_and_refuse_what_cannot_work(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (url, seen) = receiver().await;
    let slack = format!("{url}/ok/slack?token=SLACK-SECRET");
    let a = put_config(
        &app,
        &app.admin.bearer(),
        &json!({
            "channels": ["slack", "webhook"], "slackWebhookUrl": slack,
            "webhookUrl": format!("{url}/ok/hook"), "webhookSecret": "HOOK-SECRET"
        }),
    )
    .await
    .expect(200);
    assert_eq!(a.data()["slackWebhookUrl"], "***");
    assert_eq!(a.data()["webhookSecret"], "***");
    let got = app
        .get("/api/notifications/config", &app.admin.bearer())
        .await
        .expect(200);
    assert!(!got.body.to_string().contains("SECRET"), "{}", got.body);
    // Sealed at rest: the stored document holds no secret in clear.
    let item = app
        .server
        .state
        .store
        .list_config_items(ai_review_domain::ConfigKind::NotificationConfig)
        .await
        .expect("items");
    let stored = item[0].body.to_string();
    assert!(
        !stored.contains("SLACK-SECRET") && !stored.contains("HOOK-SECRET"),
        "{stored}"
    );
    // PATCH changes one field; `***` and absent fields keep the secrets.
    patch_config(
        &app,
        &app.admin.bearer(),
        &json!({"ratingLowThreshold": 3, "webhookSecret": "***"}),
    )
    .await
    .expect(200);
    let got = app
        .get("/api/notifications/config", &app.admin.bearer())
        .await
        .expect(200);
    assert_eq!(got.data()["ratingLowThreshold"], 3);
    assert_eq!(
        got.data()["channels"],
        json!(["slack", "webhook"]),
        "untouched fields kept"
    );
    let r = app
        .post(
            "/api/notifications/config/test-channel",
            &app.admin.bearer(),
            &json!({"channel": "webhook"}),
        )
        .await
        .expect(200);
    assert_eq!(r.data()["ok"], true, "{}", r.body);
    let (_, headers, body) = seen
        .lock()
        .expect("lock")
        .last()
        .cloned()
        .expect("test message");
    assert_eq!(
        headers["x-ai-review-signature"].to_str().expect("sig"),
        ai_review_server::notify::channels::signature("HOOK-SECRET", &body),
        "the kept secret still signs"
    );
    // What cannot work is refused with the reason.
    for (body, needle) in [
        (json!({"channels": ["email"]}), "smtpHost is required"),
        (json!({"channels": ["push"]}), "VAPID key pair"),
        (
            json!({"channels": ["dingtalk"]}),
            "dingtalkWebhookUrl is required",
        ),
        (
            json!({"channels": ["feishu"], "feishuWebhookUrl": "javascript:alert(1)"}),
            "http",
        ),
        (json!({"ratingLowThreshold": 9}), "1-5"),
    ] {
        let a = put_config(&app, &app.admin.bearer(), &body)
            .await
            .expect_error(400, "BAD_REQUEST");
        assert!(
            a.error_detail().contains(needle),
            "{body}: {}",
            a.error_detail()
        );
    }
    put_config(&app, &app.admin.bearer(), &json!({"bogus": 1}))
        .await
        .expect_error(400, "BAD_REQUEST");
    let r = app
        .post(
            "/api/notifications/config/test-channel",
            &app.admin.bearer(),
            &json!({"channel": "feishu"}),
        )
        .await
        .expect_error(400, "BAD_REQUEST");
    assert!(
        r.error_detail().contains("not enabled"),
        "{}",
        r.error_detail()
    );
    // Changing settings needs config:update; reading needs a login.
    let viewer = app.user("v@example.com", Role::User, &[]).await;
    put_config(&app, &viewer.bearer(), &json!({}))
        .await
        .expect_error(403, "FORBIDDEN");
    patch_config(&app, &viewer.bearer(), &json!({"channels": []}))
        .await
        .expect_error(403, "FORBIDDEN");
    app.get("/api/notifications/config", &viewer.bearer())
        .await
        .expect(200);
    app.get("/api/notifications/config", &Principal::Anonymous)
        .await
        .expect_error(401, "UNAUTHORIZED");
    app.get("/api/notifications/history?status=nope", &viewer.bearer())
        .await
        .expect_error(400, "BAD_REQUEST");
}

/// Two server processes' states on one PostgreSQL, each running its own
/// delivery passes at the same moment: each summary is queued and sent
/// once per period and channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summaries_fire_once_per_period_with_two_servers_on_one_postgres() {
    use ai_review_domain::Timestamp;
    use ai_review_server::clock::ManualClock;
    use ai_review_server::config::Settings;
    use ai_review_server::{RunningServer, open_store};
    ai_review_protocol::client::ensure_crypto_provider();
    let url = ai_review_pg_testing::fresh_database_url().await;
    // 2026-11-23 is a Monday: the daily and the weekly summary are due.
    let monday = Timestamp::parse("2026-11-23T10:00:00Z").expect("ts");
    let settings = Settings {
        rate_limit: None,
        ..Settings::default()
    };
    let mut servers = Vec::new();
    for _ in 0..2 {
        let store = open_store(&url).await.expect("store");
        let clock = Arc::new(ManualClock::new(monday));
        servers.push(
            RunningServer::start(settings.clone(), store, clock, false)
                .await
                .expect("server"),
        );
    }
    let (recv, seen) = receiver().await;
    let a = &servers[0].state;
    let config = ai_review_protocol::notifications::NotificationConfig {
        channels: vec![
            ai_review_domain::NotificationChannel::Slack,
            ai_review_domain::NotificationChannel::Webhook,
        ],
        slack_webhook_url: Some(format!("{recv}/ok/slack")),
        webhook_url: Some(format!("{recv}/ok/hook")),
        ..Default::default()
    };
    ai_review_server::notify::save_config(a, &Default::default(), config)
        .await
        .expect("save");
    for _ in 0..3 {
        let (x, y) = tokio::join!(
            notify_once(&servers[0].state),
            notify_once(&servers[1].state)
        );
        x.expect("pass a");
        y.expect("pass b");
    }
    let seen = seen.lock().expect("lock").clone();
    let mut events: Vec<(String, String)> = seen
        .iter()
        .map(|(name, headers, _)| {
            (
                name.clone(),
                headers["x-ai-review-event"]
                    .to_str()
                    .expect("event")
                    .to_owned(),
            )
        })
        .collect();
    events.sort();
    assert_eq!(
        events,
        [
            ("hook".to_owned(), "daily_summary".to_owned()),
            ("hook".to_owned(), "weekly_summary".to_owned()),
            ("slack".to_owned(), "daily_summary".to_owned()),
            ("slack".to_owned(), "weekly_summary".to_owned()),
        ],
        "each summary once per channel"
    );
    let hook = seen
        .iter()
        .find(|(n, h, _)| n == "hook" && h["x-ai-review-event"] == "daily_summary")
        .expect("daily");
    let v: Value = serde_json::from_slice(&hook.2).expect("json");
    assert_eq!(v["review"]["title"], "Daily summary for 2026-11-22");
    for s in servers {
        s.stop().await.expect("stop");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_settings_page_saves_keeps_secrets_and_sends_a_test() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (url, seen) = receiver().await;
    let s = app.login("admin@example.com", "password123").await;
    let hook = format!("{url}/ok/hook");
    let r = app
        .submit(
            &s,
            "/settings/notifications",
            &[
                ("channels", "webhook"),
                ("webhookUrl", &hook),
                ("webhookSecret", "FORM-SECRET"),
                ("events", "review_completed"),
                ("ratingLowThreshold", "3"),
                ("summaryHourUtc", "7"),
            ],
        )
        .await;
    assert_eq!(r.status().as_u16(), 303);
    let html = app
        .page_html(Some(&s.cookie), "/settings/notifications")
        .await;
    assert!(
        !html.contains("FORM-SECRET") && !html.contains(&hook),
        "secrets are not rendered"
    );
    assert!(html.contains("set; blank keeps it"));
    // Saving again with blank secret fields keeps them.
    let r = app
        .submit(
            &s,
            "/settings/notifications",
            &[
                ("channels", "webhook"),
                ("events", "review_completed"),
                ("ratingLowThreshold", "4"),
                ("summaryHourUtc", "7"),
            ],
        )
        .await;
    assert_eq!(r.status().as_u16(), 303);
    let r = app
        .submit(
            &s,
            "/settings/notifications/test",
            &[("channel", "webhook")],
        )
        .await;
    assert_eq!(r.status().as_u16(), 303, "the test message was delivered");
    let (_, headers, body) = seen
        .lock()
        .expect("lock")
        .last()
        .cloned()
        .expect("test message");
    assert_eq!(
        headers["x-ai-review-signature"].to_str().expect("sig"),
        ai_review_server::notify::channels::signature("FORM-SECRET", &body)
    );
    let got = app
        .get("/api/notifications/config", &app.admin.bearer())
        .await
        .expect(200);
    assert_eq!(got.data()["ratingLowThreshold"], 4);
    assert_eq!(got.data()["webhookUrl"], "***");
    // A receiver that refuses makes the test fail with the reason.
    put_config(
        &app,
        &app.admin.bearer(),
        &json!({"channels": ["webhook"], "webhookUrl": format!("{url}/fail")}),
    )
    .await
    .expect(200);
    let r = app
        .submit(
            &s,
            "/settings/notifications/test",
            &[("channel", "webhook")],
        )
        .await;
    assert_eq!(r.status().as_u16(), 502);
    assert!(r.text().await.expect("html").contains("HTTP 500"));
    // A viewer reads but gets no form.
    app.user("nv@example.com", Role::User, &[]).await;
    let v = app.login("nv@example.com", "password123").await;
    let html = app
        .page_html(Some(&v.cookie), "/settings/notifications")
        .await;
    assert!(!html.contains("method=\"post\" action=\"/settings/notifications\""));
    let r = app
        .submit(
            &v,
            "/settings/notifications",
            &[("ratingLowThreshold", "2"), ("summaryHourUtc", "9")],
        )
        .await;
    assert_eq!(r.status().as_u16(), 403);
}
