//! The dashboard over real HTTP, on SQLite and PostgreSQL: logged-out
//! redirects, login/logout, first-run setup, cross-site submissions
//! refused on every form, permissions as on the API, keys shown once, the
//! queue view and retry, and cookie-authenticated API calls needing CSRF.

use ai_review_domain::Role;
use ai_review_testkit::web::{WebSession, form_value, set_cookie, set_cookie_header};
use ai_review_testkit::{Backend, Principal, TestApp, on_both_backends};
use serde_json::{Value, json};

on_both_backends!(
    every_page_redirects_to_login_when_logged_out,
    login_sets_a_safe_cookie_and_logout_ends_the_session,
    sessions_slide_with_use_and_end_at_their_maximum_lifetime,
    every_form_refuses_a_cross_site_submission,
    a_viewer_without_permission_cannot_change_settings,
    a_created_key_is_shown_once_and_works,
    queue_view_lists_tasks_and_retries_failures,
    session_api_calls_need_the_csrf_header,
    admins_manage_users_and_keep_an_admin,
    settings_forms_create_and_delete_through_the_api,
    review_pages_show_findings_context_and_log,
    login_attempts_are_throttled_per_address_in_fixed_windows,
    behind_a_trusted_proxy_the_login_throttle_counts_forwarded_clients,
);

/// Every GET page of the dashboard (ids filled in by the test).
const PAGES: &[&str] = &[
    "/",
    "/runners",
    "/runners/live",
    "/queue",
    "/queue/live",
    "/reviews",
    "/reviews/{review}",
    "/reviews/{review}/live",
    "/settings",
    "/settings/api-keys",
    "/settings/users",
    "/settings/platforms",
    "/settings/projects",
    "/settings/ai",
    "/settings/templates",
    "/settings/rules",
    "/settings/notifications",
];

/// Every state-changing form of the dashboard.
const FORMS: &[&str] = &[
    "/logout",
    "/reviews",
    "/queue/tasks/{task}/cancel",
    "/queue/tasks/{task}/retry",
    "/settings/api-keys",
    "/settings/api-keys/{key}/revoke",
    "/settings/users",
    "/settings/users/{user}",
    "/settings/platforms",
    "/settings/platforms/{config}/delete",
    "/settings/projects/sync",
    "/settings/projects/{project}",
    "/settings/ai",
    "/settings/ai/{config}/delete",
    "/settings/templates",
    "/settings/templates/{config}/delete",
    "/settings/rules",
    "/settings/rules/{config}/delete",
    "/settings/notifications",
    "/settings/notifications/test",
];

fn fill(path: &str, ids: &[(&str, String)]) -> String {
    let mut p = path.to_owned();
    for (k, v) in ids {
        p = p.replace(&format!("{{{k}}}"), v);
    }
    p
}

async fn ids(app: &TestApp) -> Vec<(&'static str, String)> {
    let review = app.enqueue(&app.admin, &[]).await;
    vec![
        ("review", review.id.as_str().to_owned()),
        ("task", review.task.id.as_str().to_owned()),
        ("key", app.admin.key_id.as_str().to_owned()),
        ("user", app.admin.user.id.as_str().to_owned()),
        ("config", "0190f000-0000-7000-8000-000000000000".to_owned()),
        ("project", "0190f000-0000-7000-8000-000000000000".to_owned()),
    ]
}

async fn every_page_redirects_to_login_when_logged_out(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ids = ids(&app).await;
    for p in PAGES {
        let path = fill(p, &ids);
        let r = app.page(None, &path).await;
        assert_eq!(r.status().as_u16(), 303, "{path} logged out");
        let to = r.headers()["location"]
            .to_str()
            .expect("location")
            .to_owned();
        assert!(to.starts_with("/login"), "{path} → {to}");
        // A stale or forged cookie is the same as none.
        let r = app
            .page(
                Some("ai_review_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
                &path,
            )
            .await;
        assert_eq!(r.status().as_u16(), 303, "{path} with an unknown session");
    }
    let r = app.page(None, "/reviews?status=failed").await;
    assert_eq!(
        r.headers()["location"],
        "/login?next=%2Freviews%3Fstatus%3Dfailed",
        "the login page brings the user back"
    );
    for p in FORMS {
        let path = fill(p, &ids);
        let r = app.submit_raw(None, &path, &[("_csrf", "x")], &[]).await;
        assert_eq!(r.status().as_u16(), 303, "POST {path} logged out");
    }
    let a = app.get("/api/queuedash", &Principal::Anonymous).await;
    a.expect_error(401, "UNAUTHORIZED");
    // Assets are public (the login page needs them) and embedded.
    let html = app.page_html(None, "/login").await;
    let css = html
        .split("href=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("css link");
    let r = app.page(None, css).await;
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("text/css")
    );
}

async fn sessions_slide_with_use_and_end_at_their_maximum_lifetime(backend: Backend) {
    use std::time::Duration;
    const HOUR: Duration = Duration::from_secs(3600);
    let app = TestApp::spawn_with(backend, |s| {
        s.session.idle = 2 * HOUR;
        s.session.max_lifetime = 5 * HOUR;
    })
    .await;
    // Unused for longer than the idle time: ended.
    let idle = app.login("admin@example.com", "password123").await;
    app.advance(2 * HOUR + Duration::from_secs(60));
    assert_eq!(
        app.page(Some(&idle.cookie), "/").await.status().as_u16(),
        303,
        "idle for longer than AI_REVIEW_SESSION_IDLE_HOURS"
    );
    // Used every 90 minutes it slides past the idle time…
    let s = app.login("admin@example.com", "password123").await;
    for step in 1..=3 {
        app.advance(90 * 60 * Duration::from_secs(1));
        assert_eq!(
            app.page(Some(&s.cookie), "/").await.status().as_u16(),
            200,
            "still logged in after {} minutes of use",
            step * 90
        );
    }
    // …but not past the maximum lifetime (4.5 h used, 5 h cap): the
    // expiry the last request slid forward is capped at 5 h after login.
    app.advance(29 * 60 * Duration::from_secs(1));
    assert_eq!(app.page(Some(&s.cookie), "/").await.status().as_u16(), 200);
    app.advance(2 * 60 * Duration::from_secs(1));
    assert_eq!(
        app.page(Some(&s.cookie), "/").await.status().as_u16(),
        303,
        "5 h after login the session ends however much it is used"
    );
    // A session whose stored expiry outlives the cap (made under a longer
    // one) ends at the cap too.
    let long = app.login("admin@example.com", "password123").await;
    let late = app.clock_now().plus_millis(100 * 3_600_000);
    let token = long
        .cookie
        .strip_prefix("ai_review_session=")
        .expect("session cookie");
    let digest = ai_review_domain::SessionSecret::parse(token)
        .expect("session token")
        .digest();
    app.server
        .state
        .store
        .extend_session(&digest, app.clock_now(), late)
        .await
        .expect("extend");
    app.advance(5 * HOUR);
    assert_eq!(
        app.page(Some(&long.cookie), "/").await.status().as_u16(),
        303,
        "the cap holds whatever expiry is stored"
    );
}

async fn login_sets_a_safe_cookie_and_logout_ends_the_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_eq!(
        app.try_login("admin@example.com", "wrong-password")
            .await
            .err(),
        Some(401)
    );
    assert_eq!(
        app.try_login("nobody@example.com", "password123")
            .await
            .err(),
        Some(401)
    );
    // The session cookie's attributes.
    let r = app
        .login_response("admin@example.com", "password123", "//evil.example/x")
        .await;
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(r.headers()["location"], "/", "no open redirect");
    let header = set_cookie_header(&r, "ai_review_session").expect("session cookie");
    assert!(header.contains("HttpOnly"), "{header}");
    assert!(header.contains("SameSite=Lax"), "{header}");
    assert!(
        !header.contains("Secure"),
        "plain-HTTP test server: {header}"
    );
    // The stored session is a digest: the cookie value is nowhere in the store.
    let s = app.login("admin@example.com", "password123").await;
    let r = app.page(Some(&s.cookie), "/").await;
    assert_eq!(r.status().as_u16(), 200);
    let r = app.submit(&s, "/logout", &[]).await;
    assert_eq!(r.status().as_u16(), 303);
    assert!(
        set_cookie_header(&r, "ai_review_session")
            .expect("cleared")
            .contains("Max-Age=0")
    );
    let r = app.page(Some(&s.cookie), "/").await;
    assert_eq!(
        r.status().as_u16(),
        303,
        "the session ended on the server, not only in the browser"
    );
    // A disabled user's sessions end at once.
    let u = app.user("dana@example.com", Role::User, &[]).await;
    let s = app.login("dana@example.com", "password123").await;
    let admin = app.login("admin@example.com", "password123").await;
    let r = app
        .submit(
            &admin,
            &format!("/settings/users/{}", u.user.id.as_str()),
            &[("role", "user"), ("disabled", "on")],
        )
        .await;
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(app.page(Some(&s.cookie), "/").await.status().as_u16(), 303);
    assert_eq!(
        app.try_login("dana@example.com", "password123").await.err(),
        Some(401)
    );
}

async fn forged(app: &TestApp, s: &WebSession, path: &str) -> Vec<(String, u16)> {
    let mut out = Vec::new();
    let no_token = app
        .submit_raw(Some(&s.cookie), path, &[("name", "x")], &[])
        .await;
    out.push(("no token".into(), no_token.status().as_u16()));
    let wrong = app
        .submit_raw(
            Some(&s.cookie),
            path,
            &[
                ("_csrf", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
                ("name", "x"),
            ],
            &[],
        )
        .await;
    out.push(("wrong token".into(), wrong.status().as_u16()));
    let site = app
        .submit_raw(
            Some(&s.cookie),
            path,
            &[("_csrf", &s.csrf), ("name", "x")],
            &[("sec-fetch-site", "cross-site")],
        )
        .await;
    out.push(("Sec-Fetch-Site: cross-site".into(), site.status().as_u16()));
    let origin = app
        .submit_raw(
            Some(&s.cookie),
            path,
            &[("_csrf", &s.csrf), ("name", "x")],
            &[("origin", "https://evil.example")],
        )
        .await;
    out.push(("foreign Origin".into(), origin.status().as_u16()));
    out
}

async fn every_form_refuses_a_cross_site_submission(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ids = ids(&app).await;
    let s = app.login("admin@example.com", "password123").await;
    for p in FORMS {
        let path = fill(p, &ids);
        for (how, status) in forged(&app, &s, &path).await {
            assert_eq!(status, 403, "POST {path} with {how}");
        }
    }
    // Nothing was changed by any of them: still one key, the session lives,
    // the review is still queued.
    let keys = app
        .get("/api/api-keys", &app.admin.bearer())
        .await
        .expect(200);
    assert_eq!(keys.data().as_array().map(Vec::len), Some(1));
    assert_eq!(app.page(Some(&s.cookie), "/").await.status().as_u16(), 200);
    let review = fill("{review}", &ids);
    assert_eq!(app.review(&review).await.task.state.as_str(), "pending");
    // The login and setup forms (no session yet) refuse forgeries too.
    let r = app
        .submit_raw(
            None,
            "/login",
            &[
                ("_form", "x"),
                ("email", "admin@example.com"),
                ("password", "password123"),
            ],
            &[],
        )
        .await;
    assert_eq!(r.status().as_u16(), 403, "login without the form cookie");
    let r = app
        .submit_raw(
            Some("ai_review_form=abc"),
            "/login",
            &[
                ("_form", "abc"),
                ("email", "admin@example.com"),
                ("password", "password123"),
            ],
            &[("sec-fetch-site", "cross-site")],
        )
        .await;
    assert_eq!(r.status().as_u16(), 403, "cross-site login");
    let r = app
        .submit_raw(
            None,
            "/setup",
            &[
                ("_form", "x"),
                ("email", "a@b.example"),
                ("password", "password123"),
                ("confirm", "password123"),
            ],
            &[],
        )
        .await;
    assert_eq!(r.status().as_u16(), 403, "setup without the form cookie");
    // The same-site submission of the same form works.
    let r = app
        .submit(&s, "/settings/api-keys", &[("name", "same-site")])
        .await;
    assert_eq!(r.status().as_u16(), 200);
}

async fn a_viewer_without_permission_cannot_change_settings(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.user("viewer@example.com", Role::User, &[]).await;
    let s = app.login("viewer@example.com", "password123").await;
    // Reading works; forms to change are not offered.
    for p in [
        "/settings/notifications",
        "/settings/ai",
        "/settings/platforms",
        "/settings/templates",
        "/settings/rules",
        "/settings/projects",
        "/queue",
        "/reviews",
    ] {
        let r = app.page(Some(&s.cookie), p).await;
        assert_eq!(r.status().as_u16(), 200, "{p}");
        let html = r.text().await.expect("html");
        assert!(
            !html.contains(&format!("method=\"post\" action=\"{p}\"")),
            "{p} offers a create form to a viewer"
        );
    }
    assert_eq!(
        app.page(Some(&s.cookie), "/settings/users")
            .await
            .status()
            .as_u16(),
        403
    );
    // Submitting anyway is refused exactly as the API refuses.
    let attempts: &[(&str, &[(&str, &str)])] = &[
        (
            "/settings/ai",
            &[
                ("name", "x"),
                ("provider", "openai"),
                ("baseUrl", "http://127.0.0.1:9/v1"),
                ("model", "m"),
            ],
        ),
        (
            "/settings/platforms",
            &[
                ("name", "x"),
                ("platformType", "gitlab"),
                ("baseUrl", "http://127.0.0.1:9"),
            ],
        ),
        (
            "/settings/templates",
            &[("name", "x"), ("content", "Be brief.")],
        ),
        (
            "/settings/rules",
            &[("name", "x"), ("paths", "**"), ("instructions", "Check.")],
        ),
        (
            "/settings/users",
            &[
                ("email", "new@example.com"),
                ("password", "password123"),
                ("role", "admin"),
            ],
        ),
        (
            "/reviews",
            &[
                ("repoUrl", "https://git.example.com/a.git"),
                ("baseSha", &"a".repeat(40)),
                ("headSha", &"b".repeat(40)),
            ],
        ),
    ];
    for (path, fields) in attempts {
        let r = app.submit(&s, path, fields).await;
        assert_eq!(r.status().as_u16(), 403, "POST {path} as a viewer");
        let html = r.text().await.expect("html");
        assert!(
            html.contains("permission") || html.contains("admins"),
            "{path}: {html}"
        );
    }
    for path in [
        "/api/ai-configs",
        "/api/platform-configs",
        "/api/review-templates",
        "/api/review-rules",
    ] {
        let a = app.get(path, &app.admin.bearer()).await.expect(200);
        assert_eq!(
            a.data().as_array().map(Vec::len),
            Some(0),
            "{path}: nothing was created"
        );
    }
    let users = app.get("/api/users", &app.admin.bearer()).await.expect(200);
    assert_eq!(users.data().as_array().map(Vec::len), Some(2));
}

async fn a_created_key_is_shown_once_and_works(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.login("admin@example.com", "password123").await;
    let r = app
        .submit(
            &s,
            "/settings/api-keys",
            &[("name", "ci runner"), ("expiresInDays", "")],
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);
    let html = r.text().await.expect("html");
    let key = html
        .split("id=\"new-key\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .expect("the new key is shown")
        .to_owned();
    assert!(key.starts_with("air_"), "{key}");
    let me = app
        .get("/api/me", &Principal::Bearer(key.clone()))
        .await
        .expect(200);
    assert_eq!(me.data()["email"], "admin@example.com");
    let again = app.page_html(Some(&s.cookie), "/settings/api-keys").await;
    assert!(again.contains("ci runner"));
    assert!(!again.contains(&key), "the key is never shown again");
    assert!(again.contains(&key[..10]), "its prefix identifies it");
    // Revoke through the page: the key stops working.
    let keys = app
        .get("/api/api-keys", &app.admin.bearer())
        .await
        .expect(200);
    let id = keys
        .data()
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["name"] == "ci runner")
        .expect("key")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let r = app
        .submit(&s, &format!("/settings/api-keys/{id}/revoke"), &[])
        .await;
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(r.headers()["location"], "/settings/api-keys?ok=revoked");
    app.get("/api/me", &Principal::Bearer(key))
        .await
        .expect(401);
}

async fn queue_view_lists_tasks_and_retries_failures(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let reviewer = app.reviewer("rita@example.com").await;
    let other = app.reviewer("otto@example.com").await;
    let first = app.enqueue(&reviewer, &[]).await;
    let second = app.enqueue(&other, &["gpu"]).await;
    let runner = app.runner(&app.admin, "runner-q", "").await;
    let claimed = app.claim(&runner).await.expect("claim");
    assert_eq!(claimed.task_id, first.task.id);
    let dash = app
        .get("/api/queuedash", &reviewer.bearer())
        .await
        .expect(200);
    let d = dash.data();
    assert_eq!(d["counts"]["pending"], 1);
    assert_eq!(d["counts"]["picked_up"], 1);
    assert_eq!(d["counts"]["completed"], 0, "every state is listed");
    assert_eq!(d["running"][0]["runnerId"], "runner-q");
    assert_eq!(d["running"][0]["canCancel"], true, "rita's own review");
    assert_eq!(d["pending"][0]["reviewId"], second.id.as_str());
    assert_eq!(d["pending"][0]["requiredTags"], json!(["gpu"]));
    assert_eq!(d["pending"][0]["canCancel"], false, "otto's review");
    assert!(d["oldestPendingAgeMs"].as_i64().is_some());
    // Cancel through the queue page, then retry the cancelled review.
    let s = app.login("rita@example.com", "password123").await;
    let html = app.page_html(Some(&s.cookie), "/queue").await;
    assert!(html.contains(&format!("/queue/tasks/{}/cancel", first.task.id.as_str())));
    assert!(
        !html.contains(&format!("/queue/tasks/{}/cancel", second.task.id.as_str())),
        "no action on others' reviews"
    );
    let r = app
        .submit(
            &s,
            &format!("/queue/tasks/{}/cancel", second.task.id.as_str()),
            &[],
        )
        .await;
    assert_eq!(r.status().as_u16(), 403, "the API's rule: creator or admin");
    runner
        .heartbeat(ai_review_domain::RunnerStatus::Busy, 1)
        .await
        .ok();
    let r = app
        .submit(
            &s,
            &format!("/queue/tasks/{}/cancel", first.task.id.as_str()),
            &[],
        )
        .await;
    assert_eq!(r.status().as_u16(), 303);
    let after = app.review(&first.id).await;
    assert!(after.task.cancel_requested || after.task.state.as_str() == "cancelled");
    // A pending review cancels at once and can be retried as a new review.
    let third = app.enqueue(&reviewer, &["none-has-this"]).await;
    app.post(
        &format!("/api/reviews/{}/cancel", third.id.as_str()),
        &reviewer.bearer(),
        &json!({}),
    )
    .await
    .expect(200);
    let d = app
        .get("/api/queuedash", &reviewer.bearer())
        .await
        .expect(200);
    let failure = d.data()["recentFailures"]
        .as_array()
        .expect("failures")
        .iter()
        .find(|t| t["reviewId"] == third.id.as_str())
        .cloned()
        .expect("listed");
    assert_eq!(failure["canRetry"], true);
    let r = app
        .submit(
            &s,
            &format!("/queue/tasks/{}/retry", third.task.id.as_str()),
            &[],
        )
        .await;
    assert_eq!(r.status().as_u16(), 303);
    let to = r.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let new_id = to.strip_prefix("/reviews/").expect("opens the new review");
    assert_ne!(new_id, third.id.as_str());
    let new = app.review(&new_id.to_owned()).await;
    assert_eq!(new.task.state.as_str(), "pending");
    assert_eq!(new.head_sha, third.head_sha);
    assert_eq!(new.task.required_tags, vec!["none-has-this".to_owned()]);
    // The retried review is not retried twice (a double-click queues one).
    let a = app
        .post(
            &format!("/api/reviews/{}/retry", third.id.as_str()),
            &reviewer.bearer(),
            &json!({}),
        )
        .await;
    let a = a.expect_error(409, "CONFLICT");
    assert!(
        a.error_detail().contains("already retried"),
        "{}",
        a.error_detail()
    );
    let html = app
        .page_html(Some(&s.cookie), &format!("/reviews/{}", third.id.as_str()))
        .await;
    assert!(
        html.contains(&format!("/reviews/{new_id}")),
        "the old review links to its retry"
    );
    let d = app
        .get("/api/queuedash", &reviewer.bearer())
        .await
        .expect(200);
    let listed = d.data()["recentFailures"]
        .as_array()
        .expect("failures")
        .iter()
        .find(|t| t["reviewId"] == third.id.as_str())
        .cloned()
        .expect("listed");
    assert_eq!(listed["canRetry"], false);
    // Retrying a queued review is refused.
    let a = app
        .post(
            &format!("/api/reviews/{new_id}/retry"),
            &reviewer.bearer(),
            &json!({}),
        )
        .await;
    a.expect_error(409, "CONFLICT");
    let _ = other;
}

async fn session_api_calls_need_the_csrf_header(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.login("admin@example.com", "password123").await;
    let c = app.web_client();
    let me: Value = c
        .get(format!("{}/api/me", app.url()))
        .header("cookie", &s.cookie)
        .send()
        .await
        .expect("me")
        .json()
        .await
        .expect("json");
    assert_eq!(
        me["data"]["email"], "admin@example.com",
        "reads work with the cookie"
    );
    let post = |csrf: Option<&str>| {
        let mut rb = c
            .post(format!("{}/api/api-keys", app.url()))
            .header("cookie", &s.cookie)
            .json(&json!({"name": "from-js"}));
        if let Some(t) = csrf {
            rb = rb.header("x-csrf-token", t);
        }
        rb.send()
    };
    assert_eq!(post(None).await.expect("post").status().as_u16(), 403);
    assert_eq!(
        post(Some("nope")).await.expect("post").status().as_u16(),
        403
    );
    assert_eq!(
        post(Some(&s.csrf)).await.expect("post").status().as_u16(),
        200
    );
}

async fn admins_manage_users_and_keep_an_admin(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = app
        .post("/api/users", &app.admin.bearer(), &json!({"email": "pat@example.com", "password": "password123", "permissions": ["review:create"]}))
        .await
        .expect(201);
    let id = created.data()["id"].as_str().expect("id").to_owned();
    assert!(created.data().get("passwordHash").is_none());
    app.post(
        "/api/users",
        &app.admin.bearer(),
        &json!({"email": "x@example.com", "password": "short"}),
    )
    .await
    .expect_error(400, "BAD_REQUEST");
    app.post(
        "/api/users",
        &app.admin.bearer(),
        &json!({"email": "y@example.com", "password": "password123", "permissions": ["root"]}),
    )
    .await
    .expect_error(400, "BAD_REQUEST");
    let admin = app.admin.bearer();
    let patch = |path: String, body: Value| {
        let rb = app.request(reqwest::Method::PATCH, &path).json(&body);
        app.send(rb, &admin)
    };
    let a = patch(
        format!("/api/users/{id}"),
        json!({"permissions": ["review:create", "config:create"]}),
    )
    .await
    .expect(200);
    assert_eq!(
        a.data()["permissions"],
        json!(["review:create", "config:create"])
    );
    let me = app.admin.user.id.as_str().to_owned();
    patch(format!("/api/users/{me}"), json!({"role": "user"}))
        .await
        .expect_error(409, "CONFLICT");
    patch(format!("/api/users/{me}"), json!({"disabled": true}))
        .await
        .expect_error(409, "CONFLICT");
    let pat = app.login("pat@example.com", "password123").await;
    let r = app.page(Some(&pat.cookie), "/settings/users").await;
    assert_eq!(r.status().as_u16(), 403);
    let user = app.reviewer("quinn@example.com").await;
    app.get("/api/users", &user.bearer())
        .await
        .expect_error(403, "FORBIDDEN");
    // Through the page: promote pat to admin.
    let s = app.login("admin@example.com", "password123").await;
    let r = app
        .submit(&s, &format!("/settings/users/{id}"), &[("role", "admin")])
        .await;
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(
        app.page(Some(&pat.cookie), "/settings/users")
            .await
            .status()
            .as_u16(),
        200
    );
}

async fn settings_forms_create_and_delete_through_the_api(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.login("admin@example.com", "password123").await;
    let r = app
        .submit(
            &s,
            "/settings/ai",
            &[
                ("name", "main"),
                ("provider", "openai"),
                ("baseUrl", "http://127.0.0.1:9/v1"),
                ("model", "gpt-x"),
                ("apiKey", "sk-dashboard-SECRET-123"),
                ("isDefault", "on"),
            ],
        )
        .await;
    assert_eq!(r.status().as_u16(), 303);
    let html = app.page_html(Some(&s.cookie), "/settings/ai").await;
    assert!(html.contains("gpt-x"));
    assert!(
        !html.contains("sk-dashboard-SECRET-123"),
        "secrets are never rendered back"
    );
    let r = app
        .submit(
            &s,
            "/settings/platforms",
            &[
                ("name", "gl"),
                ("platformType", "gitlab"),
                ("baseUrl", "http://127.0.0.1:9"),
                ("accessToken", "glpat-SECRET-dashboard"),
                ("webhookSecret", "hook-SECRET"),
            ],
        )
        .await;
    assert_eq!(r.status().as_u16(), 303);
    let html = app.page_html(Some(&s.cookie), "/settings/platforms").await;
    assert!(html.contains("gl") && !html.contains("glpat-SECRET") && !html.contains("hook-SECRET"));
    let r = app
        .submit(
            &s,
            "/settings/templates",
            &[("name", "terse"), ("content", "Be terse.")],
        )
        .await;
    assert_eq!(r.status().as_u16(), 303);
    let r = app
        .submit(
            &s,
            "/settings/rules",
            &[
                ("name", "sql"),
                ("paths", "migrations/**, **/*.sql"),
                ("instructions", "Check locks."),
            ],
        )
        .await;
    assert_eq!(r.status().as_u16(), 303);
    let rules = app
        .get("/api/review-rules", &app.admin.bearer())
        .await
        .expect(200);
    assert_eq!(
        rules.data()[0]["paths"],
        json!(["migrations/**", "**/*.sql"])
    );
    // Invalid input is refused with the API's explanation.
    let r = app
        .submit(
            &s,
            "/settings/ai",
            &[
                ("name", "bad"),
                ("provider", "openai"),
                ("baseUrl", "not a url"),
                ("model", "m"),
            ],
        )
        .await;
    assert_eq!(r.status().as_u16(), 400);
    // Delete through the pages.
    for (list, page) in [
        ("/api/ai-configs", "/settings/ai"),
        ("/api/platform-configs", "/settings/platforms"),
        ("/api/review-templates", "/settings/templates"),
        ("/api/review-rules", "/settings/rules"),
    ] {
        let items = app.get(list, &app.admin.bearer()).await.expect(200);
        let id = items.data()[0]["id"].as_str().expect("id").to_owned();
        let r = app.submit(&s, &format!("{page}/{id}/delete"), &[]).await;
        assert_eq!(r.status().as_u16(), 303, "{page}");
        let items = app.get(list, &app.admin.bearer()).await.expect(200);
        assert_eq!(items.data().as_array().map(Vec::len), Some(0), "{list}");
    }
}

async fn review_pages_show_findings_context_and_log(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    use ai_review_domain::{Phase, TaskOutcome};
    use ai_review_protocol::runner::LogLineIn;
    let review = app.enqueue(&app.admin, &[]).await;
    let runner = app.runner(&app.admin, "runner-r", "").await;
    let task = app.claim(&runner).await.expect("claim");
    let s = app.login("admin@example.com", "password123").await;
    let html = app
        .page_html(Some(&s.cookie), &format!("/reviews/{}", review.id.as_str()))
        .await;
    assert!(
        html.contains("data-live=\"/reviews/"),
        "a running review streams"
    );
    runner
        .report_phase(&task.task_id, task.attempt, Phase::Reviewing)
        .await
        .expect("phase");
    runner
        .append_logs(
            &task.task_id,
            task.attempt,
            vec![LogLineIn {
                text: "checking <b>files</b>".into(),
                stream: Some("stdout".into()),
                at: None,
            }],
        )
        .await
        .expect("logs");
    let result = json!({
        "version": 1, "kind": "review", "baseSha": "a".repeat(40), "headSha": "b".repeat(40),
        "files": [], "totals": {"files": 1, "additions": 3, "deletions": 0},
        "findings": [{
            "file": "src/db.rs", "line": 2, "endLine": 2, "severity": "error", "category": "bug",
            "ruleId": "model/bug", "confidence": 0.9, "message": "Unwrap on a fallible query.",
            "fingerprint": "abc123", "source": "model",
            "context": [{"line": 1, "text": "fn q() {", "changed": false}, {"line": 2, "text": "    db.query().unwrap();", "changed": true}]
        }],
        "summary": "One problem.", "rating": 2, "assessment": "request_changes",
        "notReviewed": [{"path": "Cargo.lock", "reason": "lock file", "lines": []}],
        "unanchored": [], "reviewedLines": 3, "appliedRuleIds": []
    });
    runner
        .submit_result(
            &task.task_id,
            task.attempt,
            TaskOutcome::Succeeded,
            None,
            false,
            Some(result),
        )
        .await
        .expect("result");
    let html = app
        .page_html(Some(&s.cookie), &format!("/reviews/{}", review.id.as_str()))
        .await;
    assert!(
        !html.contains("data-live=\"/reviews/"),
        "a finished review does not stream"
    );
    for needle in [
        "src/db.rs",
        "Unwrap on a fallible query.",
        "db.query().unwrap();",
        "Cargo.lock",
        "lock file",
        "One problem.",
        "rating 2/5",
        "request changes",
        "checking &lt;b&gt;files&lt;/b&gt;",
    ] {
        assert!(html.contains(needle), "missing {needle:?}");
    }
    assert!(!html.contains("<b>files</b>"), "log text is escaped");
    let list = app
        .page_html(Some(&s.cookie), "/reviews?status=completed")
        .await;
    assert!(list.contains(review.id.as_str()));
    let list = app
        .page_html(Some(&s.cookie), "/reviews?status=failed")
        .await;
    assert!(!list.contains(review.id.as_str()));
    let bad = app.page(Some(&s.cookie), "/reviews?status=nope").await;
    assert_eq!(bad.status().as_u16(), 400);
}

#[tokio::test]
async fn first_run_setup_creates_one_admin_then_closes() {
    use ai_review_server::clock::SystemClock;
    use ai_review_server::config::Settings;
    use std::sync::Arc;
    ai_review_protocol::client::ensure_crypto_provider();
    let dir = tempfile::tempdir().expect("tmp");
    let store =
        ai_review_server::open_store(&format!("sqlite://{}", dir.path().join("s.db").display()))
            .await
            .expect("store");
    let server = ai_review_server::RunningServer::start(
        Settings {
            rate_limit: None,
            ..Settings::default()
        },
        store,
        Arc::new(SystemClock),
        false,
    )
    .await
    .expect("server");
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let url = server.url();
    let r = c.get(format!("{url}/login")).send().await.expect("login");
    assert_eq!(
        r.headers()["location"],
        "/setup",
        "no admin yet: the login page sends to setup"
    );
    let page = c.get(format!("{url}/setup")).send().await.expect("setup");
    let cookie = set_cookie(&page, "ai_review_form").expect("form cookie");
    let token = form_value(&page.text().await.expect("html"), "_form").expect("token");
    let post = |fields: Vec<(&'static str, String)>| {
        c.post(format!("{url}/setup"))
            .header("cookie", &cookie)
            .form(&fields)
            .send()
    };
    let r = post(vec![
        ("_form", token.clone()),
        ("email", "root@example.com".into()),
        ("password", "password123".into()),
        ("confirm", "different1".into()),
    ])
    .await
    .expect("post");
    assert_eq!(r.status().as_u16(), 400, "passwords differ");
    let r = post(vec![
        ("_form", token.clone()),
        ("email", "root@example.com".into()),
        ("password", "password123".into()),
        ("confirm", "password123".into()),
    ])
    .await
    .expect("post");
    assert_eq!(r.status().as_u16(), 303);
    let session = set_cookie(&r, "ai_review_session").expect("logged in");
    let r = c
        .get(format!("{url}/settings/users"))
        .header("cookie", &session)
        .send()
        .await
        .expect("users");
    assert_eq!(r.status().as_u16(), 200, "the new account is an admin");
    let r = c
        .get(format!("{url}/setup"))
        .send()
        .await
        .expect("setup again");
    assert_eq!(r.headers()["location"], "/login", "setup is closed");
    let r = post(vec![
        ("_form", token),
        ("email", "second@example.com".into()),
        ("password", "password123".into()),
        ("confirm", "password123".into()),
    ])
    .await
    .expect("post");
    assert_eq!(r.status().as_u16(), 409, "a second admin cannot be set up");
    server.stop().await.expect("stop");
}

#[tokio::test]
async fn the_session_cookie_is_secure_and_strict_when_configured() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.session.secure = true;
        s.session.same_site_strict = true;
    })
    .await;
    let r = app
        .login_response("admin@example.com", "password123", "/")
        .await;
    let header = set_cookie_header(&r, "ai_review_session").expect("session cookie");
    assert!(header.contains("; Secure"), "{header}");
    assert!(header.contains("SameSite=Strict"), "{header}");
    assert!(header.contains("HttpOnly"), "{header}");
}

#[test]
fn cookie_settings_come_from_the_documented_variables() {
    use ai_review_server::ServerConfig;
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        server: ServerConfig,
    }
    let dir = tempfile::tempdir().expect("tmp");
    let data_dir = dir.path().display().to_string();
    let parse = |args: &[&str]| {
        let mut all = vec!["server", "--data-dir", data_dir.as_str()];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).expect("parse").server.settings()
    };
    let s = parse(&[]).expect("defaults");
    assert!(!s.session.secure && !s.session.same_site_strict);
    let s = parse(&["--public-url", "https://review.example.com"]).expect("https");
    assert!(s.session.secure, "auto: Secure behind an https public URL");
    let s = parse(&[
        "--public-url",
        "https://review.example.com",
        "--cookie-secure",
        "false",
    ])
    .expect("off");
    assert!(!s.session.secure);
    let e = parse(&["--cookie-samesite", "none"]).expect_err("none is refused");
    assert!(e.contains("AI_REVIEW_COOKIE_SAMESITE"), "{e}");
    let e = parse(&["--session-idle-hours", "0"]).expect_err("zero");
    assert!(e.contains("AI_REVIEW_SESSION_IDLE_HOURS"), "{e}");
    let e = parse(&["--session-max-hours", "0"]).expect_err("zero");
    assert!(e.contains("AI_REVIEW_SESSION_MAX_HOURS"), "{e}");
    let s = parse(&[]).expect("defaults");
    assert_eq!(s.session.max_lifetime.as_secs(), 720 * 3600);
}

#[test]
fn trusted_proxies_come_from_the_documented_variable() {
    use ai_review_server::ServerConfig;
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        server: ServerConfig,
    }
    let dir = tempfile::tempdir().expect("tmp");
    let data_dir = dir.path().display().to_string();
    let parse = |args: &[&str]| {
        let mut all = vec!["server", "--data-dir", data_dir.as_str()];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).expect("parse").server.settings()
    };
    let s = parse(&[]).expect("defaults");
    assert!(s.trusted_proxies.is_empty(), "nobody is trusted by default");
    let s = parse(&["--trusted-proxies", "10.0.0.0/8, 192.168.1.10,fd00::/8"]).expect("valid");
    for ip in ["10.2.3.4", "192.168.1.10", "fd00::1"] {
        assert!(s.trusted_proxies.contains(ip.parse().expect("ip")), "{ip}");
    }
    let e = parse(&["--trusted-proxies", "10.0.0.0/8,10.0.0.0/40"]).expect_err("bad prefix");
    assert!(e.contains("AI_REVIEW_TRUSTED_PROXIES"), "{e}");
    assert!(e.contains(r#""10.0.0.0/40""#), "{e}");
}

/// A failed login (made-up form token, so 403 unless throttled) claiming
/// to come from `forwarded` through `X-Forwarded-For`; the status.
async fn login_attempt_forwarded_for(app: &TestApp, forwarded: &str) -> u16 {
    app.submit_raw(
        None,
        "/login",
        &[
            ("_form", "x"),
            ("email", "admin@example.com"),
            ("password", "guess"),
        ],
        &[("x-forwarded-for", forwarded)],
    )
    .await
    .status()
    .as_u16()
}

/// A complete login with a wrong password (the form's cookie and token
/// included, so 401 unless throttled) from `forwarded`; the status.
async fn wrong_password_forwarded_for(app: &TestApp, forwarded: &str) -> u16 {
    let page = app.page(None, "/login").await;
    assert_eq!(page.status().as_u16(), 200, "GET /login");
    let cookie = set_cookie(&page, "ai_review_form").expect("form cookie");
    let html = page.text().await.expect("login page");
    let token = form_value(&html, "_form").expect("form token");
    app.submit_raw(
        Some(&cookie),
        "/login",
        &[
            ("_form", token.as_str()),
            ("email", "admin@example.com"),
            ("password", "guess"),
        ],
        &[("x-forwarded-for", forwarded)],
    )
    .await
    .status()
    .as_u16()
}

async fn behind_a_trusted_proxy_the_login_throttle_counts_forwarded_clients(backend: Backend) {
    // The test client connects from 127.0.0.1: the "load balancer".
    let app = TestApp::spawn_with(backend, |s| {
        s.trusted_proxies =
            ai_review_server::config::TrustedProxies::parse("127.0.0.0/8").expect("valid");
    })
    .await;
    for n in 1..=20 {
        assert_eq!(
            login_attempt_forwarded_for(&app, "203.0.113.7").await,
            403,
            "attempt {n}"
        );
    }
    assert_eq!(
        login_attempt_forwarded_for(&app, "203.0.113.7").await,
        429,
        "the 21st attempt from the forwarded client is throttled"
    );
    // Prepending an address does not help: the proxy appended the real one.
    assert_eq!(
        login_attempt_forwarded_for(&app, "203.0.113.8, 203.0.113.7").await,
        429
    );
    // Another client behind the same balancer is not throttled with it.
    assert_eq!(wrong_password_forwarded_for(&app, "203.0.113.8").await, 401);
    // An IPv6 client counts as its /64: rotating addresses inside it buys
    // no fresh count, another /64 is another client.
    for n in 1..=20 {
        assert_eq!(
            login_attempt_forwarded_for(&app, &format!("2001:db8:5:6::{n:x}")).await,
            403,
            "IPv6 attempt {n}"
        );
    }
    assert_eq!(
        login_attempt_forwarded_for(&app, "2001:db8:5:6:ffff::99").await,
        429
    );
    assert_eq!(
        wrong_password_forwarded_for(&app, "2001:db8:5:7::1").await,
        401
    );
    app.stop().await;

    // Without AI_REVIEW_TRUSTED_PROXIES the header changes nothing: the
    // peer is counted, and a forged address buys no fresh count.
    let app = TestApp::spawn(backend).await;
    for n in 1..=20 {
        assert_eq!(
            login_attempt_forwarded_for(&app, &format!("203.0.113.{n}")).await,
            403,
            "attempt {n}"
        );
    }
    assert_eq!(login_attempt_forwarded_for(&app, "203.0.113.7").await, 429);
    assert_eq!(wrong_password_forwarded_for(&app, "203.0.113.8").await, 429);
}

/// Reads an SSE response until `done` holds for the text so far, or
/// the stream ends, or `limit` passes; returns the text and whether the
/// stream ended.
async fn read_sse(
    resp: &mut reqwest::Response,
    limit: std::time::Duration,
    done: impl Fn(&str) -> bool,
) -> (String, bool) {
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, resp.chunk()).await {
            Ok(Ok(Some(c))) => {
                text.push_str(&String::from_utf8_lossy(&c));
                if done(&text) {
                    return (text, false);
                }
            }
            Ok(Ok(None)) | Ok(Err(_)) => return (text, true),
            Err(_) => return (text, false),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_streams_resume_after_the_last_line_and_end_with_the_session() {
    use ai_review_domain::{Phase, TaskOutcome};
    use ai_review_protocol::runner::LogLineIn;
    use std::time::Duration;
    let app = TestApp::spawn(Backend::Sqlite).await;
    let review = app.enqueue(&app.admin, &[]).await;
    let runner = app.runner(&app.admin, "runner-sse", "").await;
    let task = app.claim(&runner).await.expect("claim");
    runner
        .report_phase(&task.task_id, task.attempt, Phase::Reviewing)
        .await
        .expect("phase");
    let lines: Vec<LogLineIn> = (1..=3)
        .map(|i| LogLineIn {
            text: format!("line {i}"),
            stream: Some("stdout".into()),
            at: None,
        })
        .collect();
    runner
        .append_logs(&task.task_id, task.attempt, lines)
        .await
        .expect("logs");
    let logs = app
        .get(
            &format!("/api/reviews/{}/logs", review.id.as_str()),
            &app.admin.bearer(),
        )
        .await
        .expect(200);
    let first_seq = logs.data()[0]["seq"].as_i64().expect("seq");
    let s = app.login("admin@example.com", "password123").await;
    let c = app.web_client();
    let live = format!("{}/reviews/{}/live?after=0", app.url(), review.id.as_str());
    // A reconnect names the last line it saw: only later lines come.
    let mut resp = c
        .get(&live)
        .header("cookie", &s.cookie)
        .header("last-event-id", first_seq.to_string())
        .send()
        .await
        .expect("sse");
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("text/event-stream")
    );
    let (text, _) = read_sse(&mut resp, Duration::from_secs(10), |t| t.contains("line 3")).await;
    assert!(
        text.contains("event: html") && text.contains("review-status"),
        "{text}"
    );
    assert!(!text.contains("line 1"), "already seen: {text}");
    assert!(text.contains("line 2") && text.contains("line 3"), "{text}");
    assert!(
        text.contains(&format!("id: {}", first_seq + 2)),
        "log events carry their seq: {text}"
    );
    // The finished review sends `reload` and the stream ends.
    runner
        .submit_result(
            &task.task_id,
            task.attempt,
            TaskOutcome::Failed,
            Some("boom".into()),
            false,
            None,
        )
        .await
        .expect("result");
    let (text, ended) = read_sse(&mut resp, Duration::from_secs(10), |_| false).await;
    assert!(text.contains("event: reload"), "{text}");
    assert!(ended, "the stream ends after reload");
    // A runners stream ends once the session is logged out.
    let mut runners = c
        .get(format!("{}/runners/live", app.url()))
        .header("cookie", &s.cookie)
        .send()
        .await
        .expect("sse");
    let (text, _) = read_sse(&mut runners, Duration::from_secs(10), |t| {
        t.contains("runner-sse")
    })
    .await;
    assert!(text.contains("runner-sse"), "{text}");
    let r = app.submit(&s, "/logout", &[]).await;
    assert_eq!(r.status().as_u16(), 303);
    let (_, ended) = read_sse(&mut runners, Duration::from_secs(10), |_| false).await;
    assert!(ended, "a logged-out session's stream ends");
}

#[tokio::test]
async fn pages_carry_security_headers() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let r = app.page(None, "/login").await;
    let h = r.headers();
    let csp = h["content-security-policy"].to_str().expect("csp");
    for d in [
        "default-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
        "script-src 'self'",
    ] {
        assert!(csp.contains(d), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let r = app.page(None, "/api/health").await;
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert!(r.headers().get("content-security-policy").is_none());
    // An unknown page is an HTML 404, an unknown API route the JSON envelope.
    let r = app.page(None, "/no-such-page").await;
    assert_eq!(r.status().as_u16(), 404);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("text/html")
    );
    app.get("/api/no-such-route", &Principal::Anonymous)
        .await
        .expect_error(404, "NOT_FOUND");
}

#[tokio::test]
async fn made_up_api_keys_buy_no_fresh_rate_limit_bucket() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.rate_limit = Some(ai_review_server::config::RateLimit {
            per_second: 1,
            burst: 3,
        });
    })
    .await;
    // Inventing a different x-api-key per request does not get a fresh
    // bucket: malformed keys count against the address.
    let mut statuses = Vec::new();
    for i in 0..6 {
        let r = app
            .web_client()
            .get(format!("{}/api/me", app.url()))
            .header("x-api-key", format!("made-up-{i}"))
            .send()
            .await
            .expect("get");
        statuses.push(r.status().as_u16());
    }
    assert!(statuses.contains(&429), "{statuses:?}");
}

/// The login form has its own, stricter throttle, counted in the store (so
/// shared by replicas, see tests/replicas.rs): 20 attempts per address in
/// each two-minute window, whatever the general limit, then 429 with the
/// seconds left in the window; setup counts against the same address; the
/// next window starts afresh; the reaper deletes expired windows.
async fn login_attempts_are_throttled_per_address_in_fixed_windows(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let limit = ai_review_server::rate_limit::SharedLimit::LOGIN;
    assert_eq!(
        (limit.max, limit.window),
        (20, std::time::Duration::from_secs(120))
    );
    let attempt = |path: &'static str| {
        let app = &app;
        async move {
            app.submit_raw(
                None,
                path,
                &[
                    ("_form", "x"),
                    ("email", "admin@example.com"),
                    ("password", "guess"),
                ],
                &[],
            )
            .await
        }
    };
    for n in 1..=20 {
        // Let through to the form check, which refuses the made-up token.
        assert_eq!(
            attempt("/login").await.status().as_u16(),
            403,
            "attempt {n}"
        );
    }
    let r = attempt("/login").await;
    assert_eq!(r.status().as_u16(), 429, "the 21st attempt is throttled");
    // Retry-After: whole seconds (rounded up) until the window ends.
    let window_ms = 120_000;
    let left_ms = window_ms - app.clock_now().as_millis().rem_euclid(window_ms);
    let retry_after: i64 = r.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert_eq!(retry_after, (left_ms + 999) / 1000);
    assert!(
        r.text()
            .await
            .expect("body")
            .contains(&format!("try again in {retry_after} s"))
    );
    // Setup attempts count against the same address.
    assert_eq!(attempt("/setup").await.status().as_u16(), 429);
    // Refused attempts counted too, yet the next window starts afresh.
    app.advance(std::time::Duration::from_millis(
        u64::try_from(left_ms).expect("positive"),
    ));
    assert_eq!(attempt("/login").await.status().as_u16(), 403);
    // Two windows later both windows are expired, and the reaper deletes
    // them (nothing is left for another sweep).
    app.advance(std::time::Duration::from_millis(2 * 120_000));
    app.reap().await;
    assert_eq!(
        app.server
            .state
            .store
            .delete_expired_rate_limit_windows(app.clock_now())
            .await
            .expect("sweep"),
        0,
        "the reaper pass deleted the expired windows"
    );
}
