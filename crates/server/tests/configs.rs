//! AI configs, review templates and review rules through real HTTP, on
//! SQLite and PostgreSQL: CRUD, validation, permissions, the key masked in
//! every answer and sealed at rest, and what a review freezes into its task
//! (the runner's claim carries the key in clear; the stored spec never
//! does).

use ai_review_domain::{ConfigId, ConfigKind, Permission, Role};
use ai_review_testkit::{Answer, Backend, Principal, TestApp, on_both_backends};
use serde_json::{Value, json};

on_both_backends!(
    ai_configs_mask_the_key_and_seal_it_at_rest,
    ai_config_validation_names_the_field,
    config_permissions_follow_the_permission_strings,
    templates_and_rules_validate_and_crud,
    a_review_freezes_its_config_and_the_claim_carries_the_key,
    reviews_refuse_unknown_or_disabled_ai_configs,
);

const KEY: &str = "sk-test-0123456789abcdefSECRET";

async fn patch(app: &TestApp, path: &str, who: &Principal, body: &Value) -> Answer {
    app.send(app.request(reqwest::Method::PATCH, path).json(body), who)
        .await
}

fn openai_body(name: &str) -> Value {
    json!({
        "name": name,
        "provider": "openai",
        "baseUrl": "http://127.0.0.1:9/v1/",
        "model": "gpt-4o-mini",
        "apiKey": KEY,
        "temperature": 0.2,
        "tokenBudget": 50000,
        "isDefault": true,
    })
}

async fn stored_body(app: &TestApp, kind: ConfigKind, id: &str) -> Value {
    let id = ConfigId::parse(id).expect("id");
    app.server
        .state
        .store
        .get_config_item(kind, &id)
        .await
        .expect("get")
        .expect("exists")
        .body
}

async fn ai_configs_mask_the_key_and_seal_it_at_rest(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin.bearer();
    let created = app
        .post("/api/ai-configs", &admin, &openai_body("openai"))
        .await
        .expect(201);
    let d = created.data();
    assert_eq!(d["apiKey"], "***");
    assert_eq!(
        d["baseUrl"], "http://127.0.0.1:9/v1",
        "trailing slash trimmed"
    );
    assert_eq!(
        (d["maxOutputTokens"].as_u64(), d["timeoutMs"].as_u64()),
        (Some(4096), Some(120_000)),
        "documented defaults"
    );
    assert_eq!(d["isDefault"], true);
    let id = d["id"].as_str().expect("id").to_owned();
    assert!(!created.body.to_string().contains(KEY));

    for path in [
        "/api/ai-configs".to_owned(),
        format!("/api/ai-configs/{id}"),
    ] {
        let a = app.get(&path, &admin).await.expect(200);
        assert!(!a.body.to_string().contains(KEY), "{path} leaks the key");
        assert!(a.body.to_string().contains("\"***\""), "{path}");
    }

    // At rest: sealed, not in clear; opens with the server's key.
    let body = stored_body(&app, ConfigKind::AiConfig, &id).await;
    assert!(!body.to_string().contains(KEY), "key in clear at rest");
    let sealed = body["apiKeySealed"].as_str().expect("sealed");
    let opened = app
        .server
        .state
        .settings
        .secrets
        .open(sealed)
        .expect("open");
    assert_eq!(opened.expose(), KEY);

    // `***` keeps the key; a change of model keeps it too.
    let a = patch(
        &app,
        &format!("/api/ai-configs/{id}"),
        &admin,
        &json!({"apiKey": "***", "model": "gpt-4.1"}),
    )
    .await
    .expect(200);
    assert_eq!(
        (a.data()["apiKey"].as_str(), a.data()["model"].as_str()),
        (Some("***"), Some("gpt-4.1"))
    );
    let body = stored_body(&app, ConfigKind::AiConfig, &id).await;
    assert_eq!(body["apiKeySealed"].as_str(), Some(sealed), "kept as is");

    // null removes it (local servers need none); temperature null resets.
    let a = patch(
        &app,
        &format!("/api/ai-configs/{id}"),
        &admin,
        &json!({"apiKey": null, "temperature": null}),
    )
    .await
    .expect(200);
    assert!(a.data()["apiKey"].is_null());
    assert!(a.data()["temperature"].is_null());

    // Names are unique; a second default takes over.
    app.post("/api/ai-configs", &admin, &openai_body("openai"))
        .await
        .expect_error(409, "CONFLICT");
    let second = app
        .post(
            "/api/ai-configs",
            &admin,
            &json!({"name": "claude", "provider": "anthropic", "baseUrl": "https://api.anthropic.com/v1", "model": "claude-sonnet-4-5", "isDefault": true}),
        )
        .await
        .expect(201);
    assert!(second.data()["apiKey"].is_null());
    let list = app.get("/api/ai-configs", &admin).await.expect(200);
    let defaults: Vec<&str> = list
        .data()
        .as_array()
        .expect("list")
        .iter()
        .filter(|c| c["isDefault"] == true)
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(defaults, ["claude"]);

    app.delete(&format!("/api/ai-configs/{id}"), &admin)
        .await
        .expect(204);
    app.get(&format!("/api/ai-configs/{id}"), &admin)
        .await
        .expect_error(404, "NOT_FOUND");
    app.stop().await;
}

async fn ai_config_validation_names_the_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin.bearer();
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"provider": "openai", "baseUrl": "http://x/v1", "model": "m"}),
            "name is required",
        ),
        (
            json!({"name": "a", "baseUrl": "http://x/v1", "model": "m"}),
            "provider",
        ),
        (
            json!({"name": "a", "provider": "cohere", "baseUrl": "http://x/v1", "model": "m"}),
            "provider",
        ),
        (
            json!({"name": "a", "provider": "openai", "baseUrl": "ftp://x/v1", "model": "m"}),
            "baseUrl",
        ),
        (
            json!({"name": "a", "provider": "openai", "baseUrl": "not a url", "model": "m"}),
            "baseUrl",
        ),
        (
            json!({"name": "a", "provider": "openai", "baseUrl": "https://u:p@x/v1", "model": "m"}),
            "credentials",
        ),
        (
            json!({"name": "a", "provider": "openai", "baseUrl": "http://x/v1"}),
            "model is required",
        ),
        (
            json!({"name": "a", "provider": "openai", "baseUrl": "http://x/v1", "model": "m", "temperature": 3}),
            "temperature",
        ),
        (
            json!({"name": "a", "provider": "openai", "baseUrl": "http://x/v1", "model": "m", "timeoutMs": 5}),
            "timeoutMs",
        ),
        (
            json!({"name": "a", "provider": "openai", "baseUrl": "http://x/v1", "model": "m", "tokenBudget": 2000, "maxOutputTokens": 4000}),
            "tokenBudget",
        ),
        (
            json!({"name": "a", "provider": "openai", "baseUrl": "http://x/v1", "model": "m", "apiKey": "has space"}),
            "apiKey",
        ),
        (
            json!({"name": "a", "provider": "openai", "baseUrl": "http://x/v1", "model": "m", "inputCostPerMtok": -1}),
            "inputCostPerMtok",
        ),
        (
            json!({"name": "a", "provider": "openai", "baseUrl": "http://x/v1", "model": "m", "apikey": "k"}),
            "apikey",
        ),
    ];
    for (body, needle) in cases {
        let a = app
            .post("/api/ai-configs", &admin, &body)
            .await
            .expect_error(400, "BAD_REQUEST");
        assert!(
            a.error_detail().contains(needle),
            "{body}: {:?} should mention {needle}",
            a.error_detail()
        );
    }
    app.stop().await;
}

async fn config_permissions_follow_the_permission_strings(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let viewer = app.user("viewer@example.com", Role::User, &[]).await;
    let creator = app
        .user(
            "creator@example.com",
            Role::User,
            &[Permission::ConfigCreate],
        )
        .await;
    let body = openai_body("x");
    for (path, valid) in [
        ("/api/ai-configs", body.clone()),
        (
            "/api/review-templates",
            json!({"name": "t", "content": "c"}),
        ),
        (
            "/api/review-rules",
            json!({"name": "r", "instructions": "i"}),
        ),
    ] {
        app.post(path, &viewer.bearer(), &valid)
            .await
            .expect_error(403, "FORBIDDEN");
        app.get(path, &viewer.bearer()).await.expect(200);
        app.get(path, &Principal::Anonymous)
            .await
            .expect_error(401, "UNAUTHORIZED");
    }
    let id = app
        .post("/api/ai-configs", &creator.bearer(), &body)
        .await
        .expect(201)
        .data()["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let path = format!("/api/ai-configs/{id}");
    patch(&app, &path, &creator.bearer(), &json!({"model": "m2"}))
        .await
        .expect_error(403, "FORBIDDEN");
    app.delete(&path, &creator.bearer())
        .await
        .expect_error(403, "FORBIDDEN");
    app.delete(&path, &app.admin.bearer()).await.expect(204);
    app.stop().await;
}

async fn templates_and_rules_validate_and_crud(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin.bearer();
    let bad = app
        .post(
            "/api/review-templates",
            &admin,
            &json!({"name": "t", "content": "Review {{title}} for {{author}}"}),
        )
        .await
        .expect_error(400, "BAD_REQUEST");
    assert!(
        bad.error_detail().contains("{{author}}"),
        "{}",
        bad.error_detail()
    );
    assert!(
        bad.error_detail().contains("{{rules}}"),
        "lists what exists"
    );
    app.post(
        "/api/review-templates",
        &admin,
        &json!({"name": "t", "content": "Review {{title"}),
    )
    .await
    .expect_error(400, "BAD_REQUEST");
    let t = app
        .post(
            "/api/review-templates",
            &admin,
            &json!({"name": "strict", "content": "Review {{ title }} on {{branch}}.\n{{rules}}", "isDefault": true}),
        )
        .await
        .expect(201);
    let tid = t.data()["id"].as_str().expect("id").to_owned();
    let t = patch(
        &app,
        &format!("/api/review-templates/{tid}"),
        &admin,
        &json!({"content": "Be brief. {{instructions}}"}),
    )
    .await
    .expect(200);
    assert_eq!(
        (
            t.data()["content"].as_str(),
            t.data()["isDefault"].as_bool(),
            t.data()["name"].as_str()
        ),
        (
            Some("Be brief. {{instructions}}"),
            Some(true),
            Some("strict")
        )
    );

    let bad = app
        .post(
            "/api/review-rules",
            &admin,
            &json!({"name": "r", "paths": ["src/[a"], "instructions": "x"}),
        )
        .await
        .expect_error(400, "BAD_REQUEST");
    assert!(
        bad.error_detail().contains("src/[a"),
        "{}",
        bad.error_detail()
    );
    app.post(
        "/api/review-rules",
        &admin,
        &json!({"name": "r", "paths": []}),
    )
    .await
    .expect_error(400, "BAD_REQUEST");
    let r = app
        .post(
            "/api/review-rules",
            &admin,
            &json!({"name": "rust", "paths": ["**/*.rs"], "instructions": "No unwrap outside tests."}),
        )
        .await
        .expect(201);
    assert_eq!(r.data()["enabled"], true);
    let rid = r.data()["id"].as_str().expect("id").to_owned();
    let r = patch(
        &app,
        &format!("/api/review-rules/{rid}"),
        &admin,
        &json!({"enabled": false}),
    )
    .await
    .expect(200);
    assert_eq!(
        (r.data()["enabled"].as_bool(), r.data()["paths"][0].as_str()),
        (Some(false), Some("**/*.rs"))
    );
    app.post(
        "/api/review-rules",
        &admin,
        &json!({"name": "rust", "instructions": "dup"}),
    )
    .await
    .expect_error(409, "CONFLICT");
    app.delete(&format!("/api/review-rules/{rid}"), &admin)
        .await
        .expect(204);
    app.delete(&format!("/api/review-rules/{rid}"), &admin)
        .await
        .expect_error(404, "NOT_FOUND");
    app.get("/api/review-rules/not-a-uuid", &admin)
        .await
        .expect_error(400, "BAD_REQUEST");
    app.stop().await;
}

async fn a_review_freezes_its_config_and_the_claim_carries_the_key(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin.bearer();
    let ai = app
        .post("/api/ai-configs", &admin, &openai_body("default"))
        .await
        .expect(201);
    let ai_id = ai.data()["id"].as_str().expect("id").to_owned();
    let t = app
        .post(
            "/api/review-templates",
            &admin,
            &json!({"name": "house", "content": "House style for {{repository}}.", "isDefault": true}),
        )
        .await
        .expect(201);
    let tid = t.data()["id"].as_str().expect("id").to_owned();
    let on = app
        .post(
            "/api/review-rules",
            &admin,
            &json!({"name": "sql", "paths": ["**/*.sql"], "instructions": "Check indexes."}),
        )
        .await
        .expect(201);
    let on_id = on.data()["id"].as_str().expect("id").to_owned();
    app.post(
        "/api/review-rules",
        &admin,
        &json!({"name": "off", "instructions": "Ignored.", "enabled": false}),
    )
    .await
    .expect(201);

    let body = json!({
        "repoUrl": "https://git.example.com/g/r.git",
        "baseSha": "a".repeat(40),
        "headSha": "b".repeat(40),
        "excludes": ["docs/**"],
    });
    let review = app.post("/api/reviews", &admin, &body).await.expect(202);
    assert_eq!(review.data()["aiConfigId"].as_str(), Some(ai_id.as_str()));
    assert_eq!(review.data()["templateId"].as_str(), Some(tid.as_str()));
    assert_eq!(review.data()["roundNumber"], 1);
    assert!(!review.body.to_string().contains(KEY));
    let task_id = review.data()["task"]["id"]
        .as_str()
        .expect("task")
        .to_owned();

    // The stored spec holds the key sealed only.
    let task = app
        .server
        .state
        .store
        .get_task(&task_id.parse().expect("task id"))
        .await
        .expect("get")
        .expect("task");
    assert!(
        !task.spec.to_string().contains(KEY),
        "key in clear in the task spec"
    );

    // Editing the config afterwards does not change the queued review.
    patch(
        &app,
        &format!("/api/ai-configs/{ai_id}"),
        &admin,
        &json!({"model": "changed-model"}),
    )
    .await
    .expect(200);

    let runner = app.runner(&app.admin, "r1", "").await;
    let claimed = app.claim(&runner).await.expect("claimed");
    let ai = claimed.spec.ai_config.expect("ai config");
    assert_eq!(ai.api_key.as_ref().map(|k| k.expose()), Some(KEY));
    assert_eq!(
        (ai.model.as_str(), ai.token_budget, ai.temperature),
        ("gpt-4o-mini", 50_000, Some(0.2))
    );
    assert_eq!(
        claimed.spec.template.map(|t| t.content),
        Some("House style for {{repository}}.".to_owned())
    );
    let rule_ids: Vec<String> = claimed.spec.rules.iter().map(|r| r.id.clone()).collect();
    assert_eq!(rule_ids, [on_id]);
    assert_eq!(claimed.spec.excludes, ["docs/**"]);

    // Without a default AI config a review runs the checks only.
    app.delete(&format!("/api/ai-configs/{ai_id}"), &admin)
        .await
        .expect(204);
    let review = app.post("/api/reviews", &admin, &body).await.expect(202);
    assert!(review.data()["aiConfigId"].is_null());
    let claimed = app.claim(&runner).await.expect("claimed");
    assert!(claimed.spec.ai_config.is_none());
    app.stop().await;
}

async fn reviews_refuse_unknown_or_disabled_ai_configs(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin.bearer();
    let mut disabled = openai_body("off");
    disabled["enabled"] = json!(false);
    let off = app
        .post("/api/ai-configs", &admin, &disabled)
        .await
        .expect(201);
    let off_id = off.data()["id"].as_str().expect("id").to_owned();
    let body = |ai: &str| {
        json!({
            "repoUrl": "https://git.example.com/g/r.git",
            "baseSha": "a".repeat(40),
            "headSha": "b".repeat(40),
            "aiConfigId": ai,
        })
    };
    let a = app
        .post("/api/reviews", &admin, &body(&off_id))
        .await
        .expect_error(400, "BAD_REQUEST");
    assert!(
        a.error_detail().contains("disabled"),
        "{}",
        a.error_detail()
    );
    let a = app
        .post(
            "/api/reviews",
            &admin,
            &body(&ConfigId::generate().to_string()),
        )
        .await
        .expect_error(400, "BAD_REQUEST");
    assert!(
        a.error_detail().contains("does not exist"),
        "{}",
        a.error_detail()
    );
    let mut bad_glob = body(&off_id);
    bad_glob["aiConfigId"] = Value::Null;
    bad_glob["excludes"] = json!(["a/[b"]);
    app.post("/api/reviews", &admin, &bad_glob)
        .await
        .expect_error(400, "BAD_REQUEST");
    app.stop().await;
}
