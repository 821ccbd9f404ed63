//! The API surface through real HTTP, on SQLite and PostgreSQL: the auth
//! matrix of every runner endpoint, API keys, the envelope on every error,
//! body and rate limits, health.

use ai_review_domain::{Permission, Role};
use ai_review_testkit::{Backend, Principal, TestApp, on_both_backends};
use serde_json::json;
use std::time::Duration;

on_both_backends!(
    runner_endpoints_auth_matrix,
    a_runner_cannot_act_on_another_runners_task,
    api_keys_are_shown_once_listed_and_revoked_at_once,
    permissions_make_403_and_missing_credentials_401,
    every_error_is_an_envelope,
    health_answers_503_when_the_database_is_gone,
);

/// Every runner endpoint with a request that would succeed for its owner.
fn runner_calls(
    task: &str,
    attempt: u32,
) -> Vec<(reqwest::Method, String, Option<serde_json::Value>)> {
    use reqwest::Method;
    vec![
        (
            Method::POST,
            "/api/runners/r1/heartbeat".into(),
            Some(json!({"status": "online", "activeJobs": 0})),
        ),
        (
            Method::GET,
            "/api/runners/tasks/pending?runnerId=r1&limit=1&wait=0".into(),
            None,
        ),
        (
            Method::POST,
            format!("/api/runners/tasks/{task}/status"),
            Some(json!({"runnerId": "r1", "attempt": attempt, "phase": "cloning"})),
        ),
        (
            Method::POST,
            format!("/api/runners/tasks/{task}/logs"),
            Some(json!({"runnerId": "r1", "attempt": attempt, "lines": [{"text": "hi"}]})),
        ),
        (
            Method::POST,
            format!("/api/runners/tasks/{task}/result"),
            Some(json!({"runnerId": "r1", "attempt": attempt, "outcome": "succeeded"})),
        ),
        (Method::GET, "/api/runners".into(), None),
        (Method::GET, "/api/runners/r1".into(), None),
    ]
}

async fn call(
    app: &TestApp,
    who: &Principal,
    (m, path, body): &(reqwest::Method, String, Option<serde_json::Value>),
) -> ai_review_testkit::Answer {
    let mut rb = app.request(m.clone(), path);
    if let Some(b) = body {
        rb = rb.json(b);
    }
    app.send(rb, who).await
}

async fn runner_endpoints_auth_matrix(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.reviewer("alice@example.com").await;
    let mallory = app.reviewer("mallory@example.com").await;
    let _r1 = app.runner(&alice, "r1", "").await;
    app.enqueue(&alice, &[]).await;
    let task = app
        .claim(&app.runner_client(&alice.key, "r1"))
        .await
        .expect("claim");
    let calls = runner_calls(task.task_id.as_str(), task.attempt.0);

    let register = |who: Principal| {
        let rb = app
            .request(reqwest::Method::POST, "/api/runners/register")
            .header("x-runner-id", "r1");
        (rb, who)
    };
    let malformed = [
        Principal::RawHeader("authorization", "Basic dXNlcjpwYXNz".into()),
        Principal::Bearer("sk-not-ours".into()),
        Principal::XApiKey(format!("air_{}", "!".repeat(40))),
        Principal::Bearer(format!("air_{}", "A".repeat(40))),
    ];
    for c in &calls {
        let a = call(&app, &Principal::Anonymous, c)
            .await
            .expect_error(401, "UNAUTHORIZED");
        assert!(
            a.error_detail().contains("Authorization: Bearer"),
            "{}: {}",
            c.1,
            a.error_detail()
        );
        assert_eq!(
            a.headers
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap_or("")),
            Some("Bearer")
        );
        for bad in &malformed {
            call(&app, bad, c).await.expect_error(401, "UNAUTHORIZED");
        }
    }
    let (rb, who) = register(Principal::Anonymous);
    app.send(rb, &who).await.expect_error(401, "UNAUTHORIZED");

    // Another user's key may read the runner list but not act for r1.
    for c in &calls {
        let a = call(&app, &mallory.bearer(), c).await;
        if c.0 == reqwest::Method::GET && !c.1.contains("pending") {
            a.expect(200);
        } else {
            let a = a.expect_error(403, "FORBIDDEN");
            assert!(
                a.error_detail().contains("another user"),
                "{}",
                a.error_detail()
            );
        }
    }
    let (rb, who) = register(mallory.bearer());
    app.send(rb, &who).await.expect_error(409, "CONFLICT");

    // The owner's key works with either header...
    call(&app, &Principal::XApiKey(alice.key.clone()), &calls[0])
        .await
        .expect(200);
    // ...until it is revoked: then every call is 401 at once.
    app.delete(&format!("/api/api-keys/{}", alice.key_id), &alice.bearer())
        .await
        .expect(200);
    for c in &calls {
        let a = call(&app, &alice.bearer(), c)
            .await
            .expect_error(401, "UNAUTHORIZED");
        assert!(a.error_detail().contains("revoked"), "{}", a.error_detail());
    }
    let (rb, who) = register(alice.bearer());
    app.send(rb, &who).await.expect_error(401, "UNAUTHORIZED");
    app.stop().await;
}

async fn a_runner_cannot_act_on_another_runners_task(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.reviewer("alice@example.com").await;
    let r1 = app.runner(&alice, "r1", "").await;
    let _r2 = app.runner(&alice, "r2", "").await;
    let review = app.enqueue(&alice, &[]).await;
    let t = app.claim(&r1).await.expect("claim");
    for (m, path, body) in runner_calls(t.task_id.as_str(), t.attempt.0)
        .into_iter()
        .filter(|c| c.1.contains("/tasks/") && !c.1.contains("pending"))
    {
        let mut body = body.expect("task calls have bodies");
        body["runnerId"] = json!("r2");
        let a = call(&app, &alice.bearer(), &(m, path.clone(), Some(body)))
            .await
            .expect_error(403, "FORBIDDEN");
        assert!(
            a.error_detail().contains("another runner"),
            "{path}: {}",
            a.error_detail()
        );
    }
    let unknown = json!({"runnerId": "ghost", "attempt": 1, "phase": "cloning"});
    app.post(
        &format!("/api/runners/tasks/{}/status", t.task_id),
        &alice.bearer(),
        &unknown,
    )
    .await
    .expect_error(404, "NOT_FOUND");
    let state = app.review(&review.id).await.task;
    assert_eq!(state.runner_id.map(|r| r.to_string()), Some("r1".into()));
    assert!(
        state.phase.is_none() && state.result.is_none(),
        "nothing changed"
    );
    app.stop().await;
}

async fn api_keys_are_shown_once_listed_and_revoked_at_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.reviewer("alice@example.com").await;
    let bob = app.reviewer("bob@example.com").await;
    let created = app
        .post(
            "/api/api-keys",
            &alice.bearer(),
            &json!({"name": "laptop", "expiresInDays": 30}),
        )
        .await
        .expect(200);
    let key = created.data()["key"]
        .as_str()
        .expect("key shown")
        .to_owned();
    let id = created.data()["apiKey"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert!(key.starts_with("air_") && key.len() == 44, "{key}");
    assert!(key.starts_with(created.data()["apiKey"]["prefix"].as_str().unwrap_or("-")));
    let me = app
        .get("/api/me", &Principal::Bearer(key.clone()))
        .await
        .expect(200);
    assert_eq!(me.data()["email"], "alice@example.com");
    assert_eq!(me.data()["permissions"], json!(["review:create"]));
    let list = app.get("/api/api-keys", &alice.bearer()).await.expect(200);
    let listed = list.data().as_array().cloned().unwrap_or_default();
    assert_eq!(listed.len(), 2);
    assert!(
        !list.body.to_string().contains(&key[8..]),
        "a listed key never shows its secret"
    );
    assert!(listed[0]["expiresAt"].is_string());
    // Bob cannot see or revoke Alice's key; the admin can.
    app.delete(&format!("/api/api-keys/{id}"), &bob.bearer())
        .await
        .expect_error(404, "NOT_FOUND");
    app.delete(&format!("/api/api-keys/{id}"), &app.admin.bearer())
        .await
        .expect(200);
    app.get("/api/me", &Principal::Bearer(key))
        .await
        .expect_error(401, "UNAUTHORIZED");
    app.post("/api/api-keys", &alice.bearer(), &json!({"name": ""}))
        .await
        .expect_error(400, "BAD_REQUEST");
    app.post(
        "/api/api-keys",
        &alice.bearer(),
        &json!({"name": "x", "scopes": ["all"]}),
    )
    .await
    .expect_error(400, "BAD_REQUEST");
    app.delete("/api/api-keys/not-a-uuid", &alice.bearer())
        .await
        .expect_error(400, "BAD_REQUEST");
    app.stop().await;
}

async fn permissions_make_403_and_missing_credentials_401(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let viewer = app.user("viewer@example.com", Role::User, &[]).await;
    let config_only = app
        .user("ops@example.com", Role::User, &[Permission::ConfigCreate])
        .await;
    let body =
        json!({"repoUrl": "https://h/r.git", "baseSha": "a".repeat(40), "headSha": "b".repeat(40)});
    app.post("/api/reviews", &Principal::Anonymous, &body)
        .await
        .expect_error(401, "UNAUTHORIZED");
    let a = app
        .post("/api/reviews", &viewer.bearer(), &body)
        .await
        .expect_error(403, "FORBIDDEN");
    assert!(
        a.error_detail().contains("review:create"),
        "{}",
        a.error_detail()
    );
    app.post("/api/reviews", &config_only.bearer(), &body)
        .await
        .expect_error(403, "FORBIDDEN");
    app.post("/api/reviews", &app.admin.bearer(), &body)
        .await
        .expect(202);
    app.get("/api/reviews", &viewer.bearer()).await.expect(200);
    app.stop().await;
}

async fn every_error_is_an_envelope(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.body_limit_bytes = 4096).await;
    let alice = app.reviewer("alice@example.com").await;
    let who = alice.bearer();
    let a = app
        .get("/api/does-not-exist", &who)
        .await
        .expect_error(404, "NOT_FOUND");
    assert!(a.error_detail().contains("/api/does-not-exist"));
    app.delete("/api/reviews", &who)
        .await
        .expect_error(405, "METHOD_NOT_ALLOWED");
    let malformed = app
        .send(
            app.request(reqwest::Method::POST, "/api/reviews")
                .header("content-type", "application/json")
                .body("{\"repoUrl\": "),
            &who,
        )
        .await
        .expect_error(400, "BAD_REQUEST");
    assert!(
        malformed.error_detail().contains("malformed JSON"),
        "{}",
        malformed.error_detail()
    );
    let no_type = app
        .send(
            app.request(reqwest::Method::POST, "/api/reviews")
                .body("{}"),
            &who,
        )
        .await
        .expect_error(400, "BAD_REQUEST");
    assert!(
        no_type.error_detail().contains("Content-Type"),
        "{}",
        no_type.error_detail()
    );
    let bad_sha = app
        .post(
            "/api/reviews",
            &who,
            &json!({"repoUrl": "https://h/r.git", "baseSha": "abc", "headSha": "b".repeat(40)}),
        )
        .await
        .expect_error(400, "BAD_REQUEST");
    assert!(
        bad_sha.error_detail().contains("baseSha") || bad_sha.error_detail().contains("commit SHA"),
        "{}",
        bad_sha.error_detail()
    );
    let big = json!({"repoUrl": "https://h/r.git", "baseSha": "a".repeat(40), "headSha": "b".repeat(40), "title": "t".repeat(10_000)});
    app.post("/api/reviews", &who, &big)
        .await
        .expect_error(413, "PAYLOAD_TOO_LARGE");
    app.get("/api/reviews?page=0", &who)
        .await
        .expect_error(400, "BAD_REQUEST");
    app.get("/api/reviews?status=done", &who)
        .await
        .expect_error(400, "BAD_REQUEST");
    app.get("/api/reviews?startDate=yesterday", &who)
        .await
        .expect_error(400, "BAD_REQUEST");
    app.get("/api/reviews/not-an-id", &who)
        .await
        .expect_error(400, "BAD_REQUEST");
    app.get(
        &format!("/api/reviews/{}", ai_review_domain::ReviewId::generate()),
        &who,
    )
    .await
    .expect_error(404, "NOT_FOUND");
    app.get("/api/runners/tasks/pending?runnerId=r1&limit=0", &who)
        .await
        .expect_error(400, "BAD_REQUEST");
    app.get("/api/runners/tasks/pending?limit=1", &who)
        .await
        .expect_error(400, "BAD_REQUEST");
    app.stop().await;

    let limited = TestApp::spawn_with(backend, |s| {
        s.rate_limit = Some(ai_review_server::config::RateLimit {
            per_second: 1,
            burst: 3,
        })
    })
    .await;
    let who = limited.admin.bearer();
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(limited.get("/api/me", &who).await);
    }
    let limited_answer = statuses
        .into_iter()
        .find(|a| a.status == 429)
        .expect("a 429 within 6 fast requests");
    let limited_answer = limited_answer.expect_error(429, "TOO_MANY_REQUESTS");
    assert!(limited_answer.headers.contains_key("retry-after"));
    limited
        .get("/api/health", &Principal::Anonymous)
        .await
        .expect(200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    limited.get("/api/me", &who).await.expect(200);
    limited.stop().await;
}

async fn health_answers_503_when_the_database_is_gone(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ok = app
        .get("/api/health", &Principal::Anonymous)
        .await
        .expect(200);
    assert_eq!(ok.data()["status"], "ok");
    assert_eq!(
        ok.data()["database"],
        if backend == Backend::Sqlite {
            "sqlite"
        } else {
            "postgres"
        }
    );
    app.server.state.store.close().await;
    let down = app
        .get("/api/health", &Principal::Anonymous)
        .await
        .expect_error(503, "SERVICE_UNAVAILABLE");
    assert!(
        down.error_detail().contains("database"),
        "{}",
        down.error_detail()
    );
    app.stop().await;
}
