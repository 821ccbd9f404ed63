//! The `email` and `push` notification channels against real protocol
//! peers started by the tests: an SMTP receiver speaking STARTTLS and
//! implicit TLS with a certificate the server must check, and a Web Push
//! service that verifies each VAPID signature and decrypts each message
//! with the subscribing browser's keys (RFC 8291/8292, written
//! independently of the server's sender).

use ai_review_domain::Role;
use ai_review_server::notify::{MAX_TRIES, backoff, notify_once};
use ai_review_testkit::push::PushService;
use ai_review_testkit::smtp::{Security, SmtpReceiver};
use ai_review_testkit::{Backend, Principal, TestApp, on_both_backends};
use serde_json::{Value, json};
use std::time::Duration;

mod common;
use common::notify::{finish_review, history, patch_config, put_config};

on_both_backends!(
    email_goes_out_over_starttls_with_a_login_to_every_recipient,
    push_messages_reach_each_subscribed_browser_encrypted_and_signed,
);

fn email_config(rx: &SmtpReceiver, tls: &str) -> Value {
    json!({
        "channels": ["email"],
        "events": ["review_completed", "rating_low"],
        "smtpHost": "localhost",
        "smtpPort": rx.port(),
        "smtpTls": tls,
        "smtpUsername": "bot",
        "smtpPassword": "SMTP-PASSWORD",
        "smtpFrom": "ai-review <bot@example.com>",
        "emailRecipients": ["dev@example.com", "Lead <lead@example.com>"],
    })
}

async fn email_goes_out_over_starttls_with_a_login_to_every_recipient(backend: Backend) {
    let rx = SmtpReceiver::start(Security::StartTls).await;
    rx.require_auth("bot", "SMTP-PASSWORD");
    let ca = rx.ca_pem();
    let app = TestApp::spawn_with(backend, |s| {
        s.public_url = Some("https://review.example.com".into());
        s.smtp_extra_roots = Some(ca);
    })
    .await;
    let a = put_config(&app, &app.admin.bearer(), &email_config(&rx, "starttls"))
        .await
        .expect(200);
    assert_eq!(a.data()["smtpPassword"], "***");
    assert_eq!(
        a.data()["emailEnabled"],
        true,
        "emailEnabled mirrors the channel"
    );
    let (review_id, _, _) = finish_review(&app, 2).await;
    assert_eq!(notify_once(&app.server.state).await.expect("pass"), 2);
    let got = rx.wait_for(2, Duration::from_secs(10)).await;
    let mut subjects: Vec<String> = got.iter().map(|m| m.subject()).collect();
    subjects.sort();
    assert!(
        subjects[0].starts_with("Low review rating: "),
        "{subjects:?}"
    );
    assert!(
        subjects[1].starts_with("Review completed: "),
        "{subjects:?}"
    );
    for m in &got {
        assert!(m.tls, "sent only after STARTTLS");
        assert_eq!(m.auth_user.as_deref(), Some("bot"));
        assert_eq!(m.mail_from, "bot@example.com");
        let mut to = m.rcpt_to.clone();
        to.sort();
        assert_eq!(to, ["dev@example.com", "lead@example.com"]);
        let text = m.text_body();
        assert!(text.contains("Rating: 2/5"), "{text}");
        assert!(
            text.contains(&format!("https://review.example.com/reviews/{review_id}")),
            "{text}"
        );
        let html = m.html_body().expect("an HTML part");
        assert!(html.contains("Open the review"), "{html}");
    }
    let items = history(&app, "&channel=email").await;
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|n| n["status"] == "sent"), "{items:?}");
    // The password is sealed at rest and never answered.
    let stored = app
        .server
        .state
        .store
        .list_config_items(ai_review_domain::ConfigKind::NotificationConfig)
        .await
        .expect("items")[0]
        .body
        .to_string();
    assert!(!stored.contains("SMTP-PASSWORD"), "{stored}");
    // A repeated pass sends nothing more.
    assert_eq!(notify_once(&app.server.state).await.expect("pass"), 0);
    assert_eq!(rx.messages().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_over_implicit_tls_and_what_the_smtp_server_refuses_or_defers() {
    let rx = SmtpReceiver::start(Security::Implicit).await;
    rx.require_auth("bot", "SMTP-PASSWORD");
    let ca = rx.ca_pem();
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.smtp_extra_roots = Some(ca);
        s.notify_timeout = Duration::from_millis(800);
    })
    .await;
    put_config(&app, &app.admin.bearer(), &email_config(&rx, "tls"))
        .await
        .expect(200);
    let r = app
        .post(
            "/api/notifications/config/test-channel",
            &app.admin.bearer(),
            &json!({"channel": "email"}),
        )
        .await
        .expect(200);
    assert_eq!(r.data()["ok"], true, "{}", r.body);
    let m = &rx.wait_for(1, Duration::from_secs(10)).await[0];
    assert!(m.tls);
    assert_eq!(m.subject(), "Review completed: Test message from ai-review");

    // A permanent refusal (5xx) fails the delivery at once, with the reply.
    rx.fail_next(1, "550 5.1.1 Mailbox unavailable");
    finish_review(&app, 5).await;
    assert_eq!(notify_once(&app.server.state).await.expect("pass"), 1);
    let n = &history(&app, "&channel=email").await[0];
    assert_eq!(n["status"], "failed", "{n}");
    assert_eq!(n["attempts"], 1);
    let error = n["error"].as_str().expect("error");
    assert!(
        error.contains("550") && error.contains("Mailbox unavailable"),
        "{error}"
    );
    assert!(!error.contains("SMTP-PASSWORD"));

    // A deferral (4xx) is retried after the backoff and then goes out.
    rx.fail_next(1, "451 4.3.0 Try again later");
    finish_review(&app, 5).await;
    assert_eq!(notify_once(&app.server.state).await.expect("pass"), 1);
    let n = history(&app, "&channel=email&status=pending").await;
    assert_eq!(n.len(), 1);
    assert!(
        n[0]["error"].as_str().expect("error").contains("451"),
        "{}",
        n[0]
    );
    app.advance(backoff(1));
    assert_eq!(notify_once(&app.server.state).await.expect("pass"), 1);
    assert_eq!(history(&app, "&channel=email&status=sent").await.len(), 1);

    // A server that never greets is given up on after the timeout, and
    // the review is not held up: it completed before any try.
    rx.hang(true);
    let (review_id, _, _) = finish_review(&app, 5).await;
    assert_eq!(
        app.review(&review_id).await.task.state.as_str(),
        "completed"
    );
    for tries in 1..=MAX_TRIES {
        assert_eq!(notify_once(&app.server.state).await.expect("pass"), 1);
        app.advance(backoff(tries));
    }
    let n = &history(&app, "&channel=email&status=failed").await[0];
    assert_eq!(n["attempts"], MAX_TRIES);
    let error = n["error"].as_str().expect("error");
    assert!(
        error.contains("in time") || error.contains("within"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_refuses_an_unknown_certificate_a_missing_starttls_and_settings_that_cannot_work() {
    // No extra roots: the receiver's self-signed certificate is not trusted.
    let rx = SmtpReceiver::start(Security::StartTls).await;
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.notify_timeout = Duration::from_secs(3);
    })
    .await;
    put_config(&app, &app.admin.bearer(), &email_config(&rx, "starttls"))
        .await
        .expect(200);
    let r = app
        .post(
            "/api/notifications/config/test-channel",
            &app.admin.bearer(),
            &json!({"channel": "email"}),
        )
        .await
        .expect(200);
    assert_eq!(r.data()["ok"], false);
    let error = r.data()["error"].as_str().expect("error").to_owned();
    assert!(error.contains("NOTIFY_SMTP_CA_FILE"), "{error}");
    assert!(rx.messages().is_empty(), "nothing was sent without TLS");

    // A server that offers no STARTTLS is not talked to in clear.
    let plain = SmtpReceiver::start(Security::Plain).await;
    put_config(&app, &app.admin.bearer(), &email_config(&plain, "starttls"))
        .await
        .expect(200);
    let r = app
        .post(
            "/api/notifications/config/test-channel",
            &app.admin.bearer(),
            &json!({"channel": "email"}),
        )
        .await
        .expect(200);
    assert_eq!(r.data()["ok"], false, "{}", r.body);
    assert!(plain.messages().is_empty());

    // ...unless the settings say so, for a relay without a login.
    let mut relay = email_config(&plain, "none");
    relay["smtpUsername"] = Value::Null;
    relay["smtpPassword"] = Value::Null;
    put_config(&app, &app.admin.bearer(), &relay)
        .await
        .expect(200);
    let r = app
        .post(
            "/api/notifications/config/test-channel",
            &app.admin.bearer(),
            &json!({"channel": "email"}),
        )
        .await
        .expect(200);
    assert_eq!(r.data()["ok"], true, "{}", r.body);
    assert!(!plain.wait_for(1, Duration::from_secs(10)).await[0].tls);

    for (patch, needle) in [
        (json!({"smtpHost": null}), "smtpHost is required"),
        (json!({"smtpHost": "smtp.example.com:587"}), "smtpPort"),
        (json!({"smtpFrom": "nobody"}), "smtpFrom"),
        (
            json!({"emailRecipients": ["ok@example.com", "not an address"]}),
            "emailRecipients",
        ),
        (json!({"emailRecipients": []}), "at least one"),
        (
            json!({"smtpTls": "none", "smtpUsername": "bot", "smtpPassword": "x"}),
            "in clear",
        ),
        (json!({"smtpTls": "ssl"}), "smtpTls"),
    ] {
        let mut body = email_config(&rx, "starttls");
        for (k, v) in patch.as_object().expect("object") {
            body[k] = v.clone();
        }
        let a = put_config(&app, &app.admin.bearer(), &body)
            .await
            .expect_error(400, "BAD_REQUEST");
        assert!(
            a.error_detail().contains(needle),
            "{patch}: {}",
            a.error_detail()
        );
    }
    // PATCH emailEnabled alone switches the channel, as in the original.
    let a = patch_config(&app, &app.admin.bearer(), &json!({"emailEnabled": false}))
        .await
        .expect(200);
    assert_eq!(a.data()["channels"], json!([]));
    assert_eq!(a.data()["emailEnabled"], false);
}

async fn push_messages_reach_each_subscribed_browser_encrypted_and_signed(backend: Backend) {
    let service = PushService::start().await;
    let app = TestApp::spawn_with(backend, |s| {
        s.public_url = Some("https://review.example.com".into());
    })
    .await;
    // Before any key pair: no public key, no subscriptions, no push channel.
    app.get(
        "/api/notifications/push/vapid-public-key",
        &app.admin.bearer(),
    )
    .await
    .expect_error(404, "NOT_FOUND");
    let a = put_config(&app, &app.admin.bearer(), &json!({"channels": ["push"]}))
        .await
        .expect_error(400, "BAD_REQUEST");
    assert!(a.error_detail().contains("VAPID"), "{}", a.error_detail());

    // Generating keys needs config:update and shows the private key once.
    let viewer = app.user("viewer@example.com", Role::User, &[]).await;
    app.post(
        "/api/notifications/config/vapid",
        &viewer.bearer(),
        &json!({}),
    )
    .await
    .expect_error(403, "FORBIDDEN");
    let keys = app
        .post(
            "/api/notifications/config/vapid",
            &app.admin.bearer(),
            &json!({}),
        )
        .await
        .expect(201);
    let public = keys.data()["publicKey"]
        .as_str()
        .expect("public")
        .to_owned();
    let private = keys.data()["privateKey"]
        .as_str()
        .expect("private")
        .to_owned();
    let config = app
        .get("/api/notifications/config", &app.admin.bearer())
        .await
        .expect(200);
    assert_eq!(config.data()["vapidPublicKey"], public.as_str());
    assert_eq!(config.data()["vapidPrivateKey"], "***");
    assert!(!config.body.to_string().contains(&private));
    let k = app
        .get("/api/notifications/push/vapid-public-key", &viewer.bearer())
        .await
        .expect(200);
    assert_eq!(k.data()["publicKey"], public.as_str());
    put_config(
        &app,
        &app.admin.bearer(),
        &json!({"channels": ["push"], "vapidPublicKey": public, "vapidPrivateKey": "***", "events": ["review_completed", "review_failed"]}),
    )
    .await
    .expect(200);

    // Three browsers: two of the admin's, one of the viewer's.
    let browsers = [
        service.subscribe(&public),
        service.subscribe(&public),
        service.subscribe(&public),
    ];
    let mut ids = Vec::new();
    for (i, b) in browsers.iter().enumerate() {
        let who = if i < 2 {
            app.admin.bearer()
        } else {
            viewer.bearer()
        };
        let a = app
            .send(
                app.request(
                    reqwest::Method::POST,
                    "/api/notifications/push/subscriptions",
                )
                .header("user-agent", format!("TestBrowser/{i}"))
                .json(&b.to_json()),
                &who,
            )
            .await
            .expect(201);
        assert!(!a.body.to_string().contains(&b.auth), "the secret stays");
        ids.push(a.data()["id"].as_str().expect("id").to_owned());
    }
    // Subscribing the same browser again replaces it, not adds one.
    app.post(
        "/api/notifications/push/subscriptions",
        &viewer.bearer(),
        &browsers[2].to_json(),
    )
    .await
    .expect(201);
    let mine = app
        .get("/api/notifications/push/subscriptions", &viewer.bearer())
        .await
        .expect(200);
    assert_eq!(mine.data().as_array().expect("list").len(), 1);
    assert_eq!(mine.data()[0]["id"], ids[2].as_str(), "same id");
    assert_eq!(mine.data()[0]["pushService"], service.url());
    let all = app
        .get("/api/notifications/push/subscriptions", &app.admin.bearer())
        .await
        .expect(200);
    assert_eq!(all.data().as_array().expect("list").len(), 3);
    assert_eq!(all.data()[0]["userAgent"], "TestBrowser/0");

    // A review finishes: each browser receives it, signed and decryptable.
    let (review_id, _, _) = finish_review(&app, 4).await;
    assert_eq!(notify_once(&app.server.state).await.expect("pass"), 3);
    let got = service.wait_for(3, Duration::from_secs(10)).await;
    assert!(
        service.rejections().is_empty(),
        "{:?}",
        service.rejections()
    );
    for m in &got {
        let v: Value = serde_json::from_slice(&m.plaintext).expect("JSON payload");
        assert!(
            v["title"]
                .as_str()
                .expect("title")
                .starts_with("Review completed"),
            "{v}"
        );
        assert_eq!(
            v["url"],
            format!("https://review.example.com/reviews/{review_id}")
        );
        assert_eq!(m.vapid_sub, "https://review.example.com");
        assert!(m.ttl > 0);
    }
    let mut endpoints: Vec<&str> = got
        .iter()
        .map(|m| m.subscription_endpoint.as_str())
        .collect();
    endpoints.sort_unstable();
    endpoints.dedup();
    assert_eq!(endpoints.len(), 3, "once per browser");

    // A browser that unsubscribed at the push service (410) is removed; a
    // push service error (500) is retried; the others are not sent twice.
    service.gone(&browsers[1].endpoint);
    service.fail_next(1, 500);
    finish_review(&app, 4).await;
    assert_eq!(notify_once(&app.server.state).await.expect("pass"), 3);
    let failed = history(&app, "&channel=push&status=failed").await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0]["error"]
            .as_str()
            .expect("error")
            .contains("removed"),
        "{}",
        failed[0]
    );
    assert_eq!(failed[0]["attempts"], 1, "gone is final at once");
    let pending = history(&app, "&channel=push&status=pending").await;
    assert_eq!(pending.len(), 1, "the 500 is retried");
    assert!(pending[0]["error"].as_str().expect("error").contains("500"));
    app.advance(backoff(1));
    assert_eq!(notify_once(&app.server.state).await.expect("pass"), 1);
    assert!(
        history(&app, "&channel=push&status=pending")
            .await
            .is_empty()
    );
    assert_eq!(service.received_all().len(), 5);
    let all = app
        .get("/api/notifications/push/subscriptions", &app.admin.bearer())
        .await
        .expect(200);
    assert_eq!(all.data().as_array().expect("list").len(), 2);

    // Unsubscribing: someone else's is not found, one's own goes.
    app.delete(
        &format!("/api/notifications/push/subscriptions/{}", ids[0]),
        &viewer.bearer(),
    )
    .await
    .expect_error(404, "NOT_FOUND");
    app.delete(
        &format!("/api/notifications/push/subscriptions/{}", ids[2]),
        &viewer.bearer(),
    )
    .await
    .expect(204);

    // The test button sends to the caller's own browsers now.
    let r = app
        .post(
            "/api/notifications/config/test-channel",
            &app.admin.bearer(),
            &json!({"channel": "push"}),
        )
        .await
        .expect(200);
    assert_eq!(r.data()["ok"], true, "{}", r.body);
    assert_eq!(service.received_all().len(), 6);

    // A new key pair unsubscribes the browsers made for the old one.
    let again = app
        .post(
            "/api/notifications/config/vapid",
            &app.admin.bearer(),
            &json!({}),
        )
        .await
        .expect(201);
    assert_eq!(again.data()["subscriptionsRemoved"], 1);
    assert_ne!(again.data()["publicKey"], public.as_str());
    let all = app
        .get("/api/notifications/push/subscriptions", &app.admin.bearer())
        .await
        .expect(200);
    assert!(all.data().as_array().expect("list").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_refuses_bad_subscriptions_and_mismatched_keys() {
    let service = PushService::start().await;
    let app = TestApp::spawn(Backend::Sqlite).await;
    let b = service.subscribe(&ai_review_server::notify::webpush::generate_vapid_keys().public_key);
    // No key pair yet: subscribing says what to do.
    let a = app
        .post(
            "/api/notifications/push/subscriptions",
            &app.admin.bearer(),
            &b.to_json(),
        )
        .await
        .expect_error(409, "CONFLICT");
    assert!(a.error_detail().contains("VAPID"), "{}", a.error_detail());
    let keys = app
        .post(
            "/api/notifications/config/vapid",
            &app.admin.bearer(),
            &json!({}),
        )
        .await
        .expect(201);
    let public = keys.data()["publicKey"]
        .as_str()
        .expect("public")
        .to_owned();
    for (body, needle) in [
        (
            json!({"endpoint": "http://push.example.com/x", "keys": {"p256dh": b.p256dh, "auth": b.auth}}),
            "endpoint",
        ),
        (
            json!({"endpoint": b.endpoint, "keys": {"p256dh": "AAAA", "auth": b.auth}}),
            "p256dh",
        ),
        (
            json!({"endpoint": b.endpoint, "keys": {"p256dh": b.p256dh, "auth": "c2hvcnQ"}}),
            "auth",
        ),
    ] {
        let a = app
            .post(
                "/api/notifications/push/subscriptions",
                &app.admin.bearer(),
                &body,
            )
            .await
            .expect_error(400, "BAD_REQUEST");
        assert!(
            a.error_detail().contains(needle),
            "{body}: {}",
            a.error_detail()
        );
    }
    app.post(
        "/api/notifications/push/subscriptions",
        &app.admin.bearer(),
        &json!({"endpoint": b.endpoint}),
    )
    .await
    .expect_error(400, "BAD_REQUEST");
    app.post(
        "/api/notifications/push/subscriptions",
        &Principal::Anonymous,
        &b.to_json(),
    )
    .await
    .expect_error(401, "UNAUTHORIZED");
    // Importing a key pair whose halves do not match is refused.
    let other = app
        .post(
            "/api/notifications/config/vapid",
            &app.admin.bearer(),
            &json!({}),
        )
        .await
        .expect(201);
    let a = put_config(
        &app,
        &app.admin.bearer(),
        &json!({"channels": ["push"], "vapidSubject": "mailto:ops@example.com", "vapidPublicKey": public, "vapidPrivateKey": other.data()["privateKey"]}),
    )
    .await
    .expect_error(400, "BAD_REQUEST");
    assert!(
        a.error_detail().contains("vapid") || a.error_detail().contains("VAPID"),
        "{}",
        a.error_detail()
    );
    // Without an https public URL the contact must be given.
    let a = put_config(
        &app,
        &app.admin.bearer(),
        &json!({"channels": ["push"], "vapidPublicKey": other.data()["publicKey"], "vapidPrivateKey": "***"}),
    )
    .await
    .expect_error(400, "BAD_REQUEST");
    assert!(
        a.error_detail().contains("vapidSubject"),
        "{}",
        a.error_detail()
    );
    let a = put_config(
        &app,
        &app.admin.bearer(),
        &json!({"channels": ["push"], "vapidPublicKey": other.data()["publicKey"], "vapidPrivateKey": "***", "vapidSubject": "ops@example.com"}),
    )
    .await
    .expect_error(400, "BAD_REQUEST");
    assert!(a.error_detail().contains("mailto:"), "{}", a.error_detail());
    put_config(
        &app,
        &app.admin.bearer(),
        &json!({"channels": ["push"], "vapidPublicKey": other.data()["publicKey"], "vapidPrivateKey": "***", "vapidSubject": "mailto:ops@example.com"}),
    )
    .await
    .expect(200);
    // The service worker the dashboard registers is served from the root.
    let sw = reqwest::get(format!("{}/sw.js", app.url()))
        .await
        .expect("sw.js");
    assert_eq!(sw.status().as_u16(), 200);
    assert!(
        sw.headers()["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/javascript")
    );
    assert!(sw.text().await.expect("body").contains("showNotification"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_settings_page_sets_up_smtp_and_push() {
    let rx = SmtpReceiver::start(Security::StartTls).await;
    let ca = rx.ca_pem();
    let app = TestApp::spawn_with(Backend::Sqlite, |s| s.smtp_extra_roots = Some(ca)).await;
    let s = app.login("admin@example.com", "password123").await;
    let port = rx.port().to_string();
    let form = |password: &'static str| {
        vec![
            ("channels", "email".to_owned()),
            ("events", "review_completed".to_owned()),
            ("smtpHost", "localhost".to_owned()),
            ("smtpPort", port.clone()),
            ("smtpTls", "starttls".to_owned()),
            ("smtpUsername", "bot".to_owned()),
            ("smtpPassword", password.to_owned()),
            ("smtpFrom", "bot@example.com".to_owned()),
            (
                "emailRecipients",
                "dev@example.com\r\nlead@example.com".to_owned(),
            ),
            ("ratingLowThreshold", "2".to_owned()),
            ("summaryHourUtc", "9".to_owned()),
        ]
    };
    let fields = form("FORM-SMTP-PASSWORD");
    let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = app.submit(&s, "/settings/notifications", &pairs).await;
    assert_eq!(r.status().as_u16(), 303);
    let html = app
        .page_html(Some(&s.cookie), "/settings/notifications")
        .await;
    assert!(
        !html.contains("FORM-SMTP-PASSWORD"),
        "the password is not rendered"
    );
    assert!(html.contains("value=\"localhost\""));
    assert!(html.contains("dev@example.com\nlead@example.com"));
    // Saving with a blank password keeps it: the test email still logs in.
    rx.require_auth("bot", "FORM-SMTP-PASSWORD");
    let fields = form("");
    let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = app.submit(&s, "/settings/notifications", &pairs).await;
    assert_eq!(r.status().as_u16(), 303);
    let r = app
        .submit(&s, "/settings/notifications/test", &[("channel", "email")])
        .await;
    assert_eq!(r.status().as_u16(), 303, "the test email went out");
    let m = &rx.wait_for(1, Duration::from_secs(10)).await[0];
    assert_eq!(m.auth_user.as_deref(), Some("bot"));
    assert_eq!(m.rcpt_to.len(), 2);

    // Push: the key pair is generated from the page, its private key shown
    // once; then the page offers this browser's subscription.
    let html = app
        .page_html(Some(&s.cookie), "/settings/notifications")
        .await;
    assert!(html.contains("Web Push is not set up yet"));
    let r = app.submit(&s, "/settings/notifications/vapid", &[]).await;
    assert_eq!(r.status().as_u16(), 200);
    let shown = r.text().await.expect("html");
    assert!(shown.contains("vapid-private-key"), "{shown}");
    let config = app
        .get("/api/notifications/config", &app.admin.bearer())
        .await
        .expect(200);
    let public = config.data()["vapidPublicKey"]
        .as_str()
        .expect("public")
        .to_owned();
    let html = app
        .page_html(Some(&s.cookie), "/settings/notifications")
        .await;
    assert!(html.contains("id=\"push-subscribe\""), "{html}");
    assert!(html.contains(&format!("data-key=\"{public}\"")));
    assert!(!html.contains("vapid-private-key"), "shown once only");
    // A subscribed browser is listed and can be unsubscribed from the page.
    let service = PushService::start().await;
    let b = service.subscribe(&public);
    let sub = app
        .post(
            "/api/notifications/push/subscriptions",
            &app.admin.bearer(),
            &b.to_json(),
        )
        .await
        .expect(201);
    let id = sub.data()["id"].as_str().expect("id").to_owned();
    let html = app
        .page_html(Some(&s.cookie), "/settings/notifications")
        .await;
    assert!(html.contains("id=\"push-subscriptions\""));
    assert!(!html.contains(&b.endpoint), "the endpoint is a capability");
    let r = app
        .submit(
            &s,
            &format!("/settings/notifications/push/{id}/delete"),
            &[],
        )
        .await;
    assert_eq!(r.status().as_u16(), 303);
    let all = app
        .get("/api/notifications/push/subscriptions", &app.admin.bearer())
        .await
        .expect(200);
    assert!(all.data().as_array().expect("list").is_empty());
}
