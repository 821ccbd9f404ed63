//! Platform configs through real HTTP on SQLite and PostgreSQL: every
//! secret masked in every answer and sealed at rest, the admin-only token
//! endpoint, one default per platform type, list filters, validation and
//! permissions.

use ai_review_domain::{ConfigId, ConfigKind, Permission, Role};
use ai_review_testkit::{Answer, Backend, Principal, TestApp, on_both_backends};
use serde_json::{Value, json};

on_both_backends!(
    secrets_are_masked_sealed_and_revealed_only_to_admins,
    defaults_are_per_type_and_lists_filter,
    validation_and_permissions,
);

const TOKEN: &str = "glpat-abcdefghijklmnopqrst";
const HOOK: &str = "hook-secret-123";
const APP_SECRET: &str = "app-secret-456";

async fn send(
    app: &TestApp,
    m: reqwest::Method,
    path: &str,
    who: &Principal,
    body: &Value,
) -> Answer {
    app.send(app.request(m, path).json(body), who).await
}

async fn secrets_are_masked_sealed_and_revealed_only_to_admins(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin.bearer();
    let created = app
        .post(
            "/api/platform-configs",
            &admin,
            &json!({
                "name": "gitlab.example", "platformType": "gitlab",
                "baseUrl": "https://gitlab.example.com/", "accessToken": TOKEN,
                "webhookSecret": HOOK, "authType": "oauth", "appId": "app-1", "appSecret": APP_SECRET,
            }),
        )
        .await
        .expect(201);
    let d = created.data().clone();
    assert_eq!(
        (
            d["accessToken"].as_str(),
            d["webhookSecret"].as_str(),
            d["appSecret"].as_str(),
            d["appId"].as_str(),
            d["baseUrl"].as_str(),
            d["enabled"].as_bool(),
        ),
        (
            Some("***"),
            Some("***"),
            Some("***"),
            Some("app-1"),
            Some("https://gitlab.example.com"),
            Some(true)
        )
    );
    let id = d["id"].as_str().expect("id").to_owned();
    for path in [
        "/api/platform-configs".to_owned(),
        "/api/platform-configs/enabled".to_owned(),
        "/api/platform-configs/type/gitlab".to_owned(),
        format!("/api/platform-configs/{id}"),
    ] {
        let body = app.get(&path, &admin).await.expect(200).body.to_string();
        for secret in [TOKEN, HOOK, APP_SECRET] {
            assert!(!body.contains(secret), "{path} leaks a secret");
        }
    }
    let stored = app
        .server
        .state
        .store
        .get_config_item(
            ConfigKind::GitlabPlatform,
            &ConfigId::parse(&id).expect("id"),
        )
        .await
        .expect("get")
        .expect("stored")
        .body
        .to_string();
    for secret in [TOKEN, HOOK, APP_SECRET] {
        assert!(!stored.contains(secret), "secret in clear at rest");
    }

    // Only admins see the token, in clear.
    let user = app
        .user("ops@example.com", Role::User, Permission::ALL)
        .await;
    app.get(&format!("/api/platform-configs/{id}/token"), &user.bearer())
        .await
        .expect_error(403, "FORBIDDEN");
    let t = app
        .get(&format!("/api/platform-configs/{id}/token"), &admin)
        .await
        .expect(200);
    assert_eq!(t.data()["accessToken"], TOKEN);

    // `***` keeps, null removes, a new value replaces.
    let path = format!("/api/platform-configs/{id}");
    send(
        &app,
        reqwest::Method::PATCH,
        &path,
        &admin,
        &json!({"accessToken": "***", "webhookSecret": null, "name": "renamed"}),
    )
    .await
    .expect(200);
    let t = app
        .get(&format!("/api/platform-configs/{id}/token"), &admin)
        .await
        .expect(200);
    assert_eq!(t.data()["accessToken"], TOKEN);
    let v = app.get(&path, &admin).await.expect(200);
    assert!(v.data()["webhookSecret"].is_null());
    assert_eq!(v.data()["name"], "renamed");
    send(
        &app,
        reqwest::Method::PUT,
        &path,
        &admin,
        &json!({"accessToken": "glpat-new-token-value-000"}),
    )
    .await
    .expect(200);
    let t = app
        .get(&format!("/api/platform-configs/{id}/token"), &admin)
        .await
        .expect(200);
    assert_eq!(t.data()["accessToken"], "glpat-new-token-value-000");
    app.stop().await;
}

async fn defaults_are_per_type_and_lists_filter(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin.bearer();
    let mk = |name: &str, t: &str, default: bool, enabled: bool| json!({"name": name, "platformType": t, "isDefault": default, "enabled": enabled});
    for (name, t, default, enabled) in [
        ("gl-a", "gitlab", true, true),
        ("gl-b", "gitlab", true, true),
        ("gh-a", "github", true, false),
    ] {
        app.post(
            "/api/platform-configs",
            &admin,
            &mk(name, t, default, enabled),
        )
        .await
        .expect(201);
    }
    let gl = app
        .get("/api/platform-configs/default?type=gitlab", &admin)
        .await
        .expect(200);
    assert_eq!(gl.data()["name"], "gl-b", "the newest default wins");
    assert_eq!(gl.data()["baseUrl"], "https://gitlab.com");
    let gh = app
        .get("/api/platform-configs/default?type=github", &admin)
        .await
        .expect(200);
    assert_eq!(gh.data()["name"], "gh-a");
    assert_eq!(gh.data()["baseUrl"], "https://api.github.com");
    let names = |a: &Answer| -> Vec<String> {
        a.data()
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|c| c["name"].as_str().map(str::to_owned))
            .collect()
    };
    let all = app.get("/api/platform-configs", &admin).await.expect(200);
    assert_eq!(names(&all), ["gh-a", "gl-a", "gl-b"]);
    let enabled = app
        .get("/api/platform-configs/enabled", &admin)
        .await
        .expect(200);
    assert_eq!(names(&enabled), ["gl-a", "gl-b"]);
    let github = app
        .get("/api/platform-configs/type/github", &admin)
        .await
        .expect(200);
    assert_eq!(names(&github), ["gh-a"]);
    app.get("/api/platform-configs/type/gitea", &admin)
        .await
        .expect_error(400, "BAD_REQUEST");
    app.get("/api/platform-configs/default?type=gitlab&x=1", &admin)
        .await
        .expect(200);
    app.stop().await;
}

async fn validation_and_permissions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin.bearer();
    for (body, needle) in [
        (json!({"name": "x"}), "platformType"),
        (json!({"platformType": "gitlab"}), "name"),
        (
            json!({"name": "x", "platformType": "bitbucket"}),
            "platformType",
        ),
        (
            json!({"name": "x", "platformType": "gitlab", "baseUrl": "gitlab.example.com"}),
            "baseUrl",
        ),
        (
            json!({"name": "x", "platformType": "gitlab", "baseUrl": "https://u:p@gitlab.example.com"}),
            "credentials",
        ),
        (
            json!({"name": "x", "platformType": "gitlab", "accessToken": "two words"}),
            "accessToken",
        ),
        (
            json!({"name": "x", "platformType": "gitlab", "token": "t"}),
            "token",
        ),
    ] {
        let a = app
            .post("/api/platform-configs", &admin, &body)
            .await
            .expect_error(400, "BAD_REQUEST");
        assert!(
            a.error_detail().contains(needle),
            "{body}: {}",
            a.error_detail()
        );
    }
    let id = app
        .post(
            "/api/platform-configs",
            &admin,
            &json!({"name": "gl", "platformType": "gitlab"}),
        )
        .await
        .expect(201)
        .data()["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let path = format!("/api/platform-configs/{id}");
    let a = send(
        &app,
        reqwest::Method::PATCH,
        &path,
        &admin,
        &json!({"platformType": "github"}),
    )
    .await
    .expect_error(400, "BAD_REQUEST");
    assert!(
        a.error_detail().contains("cannot change"),
        "{}",
        a.error_detail()
    );
    app.post(
        "/api/platform-configs",
        &admin,
        &json!({"name": "gl", "platformType": "gitlab"}),
    )
    .await
    .expect_error(409, "CONFLICT");

    let viewer = app.user("viewer@example.com", Role::User, &[]).await;
    app.get("/api/platform-configs", &viewer.bearer())
        .await
        .expect(200);
    app.post(
        "/api/platform-configs",
        &viewer.bearer(),
        &json!({"name": "v", "platformType": "github"}),
    )
    .await
    .expect_error(403, "FORBIDDEN");
    send(
        &app,
        reqwest::Method::PATCH,
        &path,
        &viewer.bearer(),
        &json!({"name": "v"}),
    )
    .await
    .expect_error(403, "FORBIDDEN");
    app.delete(&path, &viewer.bearer())
        .await
        .expect_error(403, "FORBIDDEN");
    app.get("/api/platform-configs", &Principal::Anonymous)
        .await
        .expect_error(401, "UNAUTHORIZED");
    app.delete(&path, &admin).await.expect(204);
    app.get(&path, &admin).await.expect_error(404, "NOT_FOUND");
    app.stop().await;
}
