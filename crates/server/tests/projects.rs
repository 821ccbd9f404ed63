//! Projects and global settings through real HTTP on SQLite and
//! PostgreSQL: list, paginated list with every filter, stats, settings
//! overrides with `null` inheriting, the resolved configuration, and
//! permissions. Projects are seeded through the store as a sync would.

use ai_review_domain::{ConfigId, Permission, PlatformType, ProjectId, Role, WebhookStatus};
use ai_review_store::ProjectUpsert;
use ai_review_testkit::{Answer, Backend, Principal, TestApp, on_both_backends};
use serde_json::{Value, json};

on_both_backends!(
    lists_filter_paginate_and_count,
    settings_override_and_inherit_the_global_ones,
    permissions_and_validation,
);

async fn seed(app: &TestApp, cfg: &ConfigId, t: PlatformType, ext: &str, path: &str) -> String {
    let (p, _) = app
        .server
        .state
        .store
        .upsert_project(ProjectUpsert {
            id: ProjectId::generate(),
            platform_config_id: cfg.clone(),
            platform_type: t,
            external_id: ext.into(),
            path: path.into(),
            name: path.rsplit('/').next().unwrap_or(path).into(),
            web_url: format!("https://forge.example/{path}"),
            clone_url: format!("https://forge.example/{path}.git"),
            default_branch: Some("main".into()),
            enabled_if_new: true,
            now: app.clock_now(),
        })
        .await
        .expect("seed");
    p.id.to_string()
}

async fn patch(app: &TestApp, path: &str, who: &Principal, body: &Value) -> Answer {
    app.send(app.request(reqwest::Method::PATCH, path).json(body), who)
        .await
}

fn paths(a: &Answer) -> Vec<String> {
    a.data()
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|p| p["path"].as_str().map(str::to_owned))
        .collect()
}

async fn lists_filter_paginate_and_count(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin.bearer();
    let gl = ConfigId::generate();
    let gh = ConfigId::generate();
    let a = seed(&app, &gl, PlatformType::Gitlab, "1", "group/api").await;
    seed(&app, &gl, PlatformType::Gitlab, "2", "group/web").await;
    let c = seed(&app, &gh, PlatformType::Github, "3", "owner/tools").await;
    app.server
        .state
        .store
        .set_webhook_status(
            &c.parse().expect("id"),
            WebhookStatus::Active,
            app.clock_now(),
        )
        .await
        .expect("hook");
    patch(
        &app,
        &format!("/api/projects/{a}"),
        &admin,
        &json!({"enabled": false}),
    )
    .await
    .expect(200);

    let all = app.get("/api/projects", &admin).await.expect(200);
    assert_eq!(paths(&all), ["group/api", "group/web", "owner/tools"]);
    let page = app
        .get("/api/projects/paginated?page=2&pageSize=2", &admin)
        .await
        .expect(200);
    assert_eq!(paths(&page), ["owner/tools"]);
    assert_eq!(page.body["meta"]["pagination"]["total"], 3);
    assert_eq!(page.body["meta"]["pagination"]["totalPages"], 2);
    for (query, expected) in [
        ("search=WEB", vec!["group/web"]),
        ("platformType=github", vec!["owner/tools"]),
        (
            &*format!("platformConfigId={gl}"),
            vec!["group/api", "group/web"],
        ),
        ("enabled=false", vec!["group/api"]),
        ("webhookStatus=active", vec!["owner/tools"]),
        ("webhookStatus=unknown&enabled=true", vec!["group/web"]),
    ] {
        let a = app
            .get(&format!("/api/projects/paginated?{query}"), &admin)
            .await
            .expect(200);
        assert_eq!(paths(&a), expected, "{query}");
    }
    for bad in [
        "pageSize=0",
        "page=0",
        "platformType=svn",
        "webhookStatus=on",
        "enabled=maybe",
    ] {
        app.get(&format!("/api/projects/paginated?{bad}"), &admin)
            .await
            .expect_error(400, "BAD_REQUEST");
    }
    let stats = app.get("/api/projects/stats", &admin).await.expect(200);
    assert_eq!(
        stats.data().clone(),
        json!({
            "total": 3, "enabled": 2, "disabled": 1,
            "byPlatform": {"github": 1, "gitlab": 2},
            "byWebhookStatus": {"active": 1, "unknown": 2},
        })
    );
    app.stop().await;
}

async fn settings_override_and_inherit_the_global_ones(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin.bearer();
    let id = seed(
        &app,
        &ConfigId::generate(),
        PlatformType::Gitlab,
        "9",
        "g/p",
    )
    .await;
    let cfg = app
        .get(&format!("/api/projects/{id}/config"), &admin)
        .await
        .expect(200);
    assert_eq!(
        (
            cfg.data()["autoReview"].as_bool(),
            cfg.data()["autoAssignAuthor"].as_bool(),
            cfg.data()["sources"]["autoReview"].as_str()
        ),
        (Some(true), Some(false), Some("global")),
        "documented defaults"
    );
    let ai = app
        .post(
            "/api/ai-configs",
            &admin,
            &json!({"name": "m", "provider": "openai", "baseUrl": "http://127.0.0.1:9/v1", "model": "x"}),
        )
        .await
        .expect(201);
    let ai_id = ai.data()["id"].as_str().expect("id").to_owned();
    let g = app
        .send(
            app.request(reqwest::Method::PUT, "/api/settings/global")
                .json(&json!({
                    "autoReview": false, "excludes": ["docs/**"], "defaultReviewerIds": ["7"],
                    "autoAssignAuthor": true,
                })),
            &admin,
        )
        .await
        .expect(200);
    assert_eq!(g.data()["reviewDrafts"], false);
    let p = patch(
        &app,
        &format!("/api/projects/{id}"),
        &admin,
        &json!({"autoReview": true, "excludes": ["vendor/**"], "aiConfigId": ai_id}),
    )
    .await
    .expect(200);
    assert_eq!(p.data()["settings"]["autoReview"], true);
    assert!(p.data()["settings"]["autoAssignAuthor"].is_null());
    let cfg = app
        .get(&format!("/api/projects/{id}/config"), &admin)
        .await
        .expect(200);
    let d = cfg.data();
    assert_eq!(
        (
            d["autoReview"].as_bool(),
            d["excludes"].clone(),
            d["aiConfigId"].as_str(),
            d["defaultReviewerIds"].clone(),
            d["autoAssignAuthor"].as_bool(),
        ),
        (
            Some(true),
            json!(["vendor/**"]),
            Some(ai_id.as_str()),
            json!(["7"]),
            Some(true)
        )
    );
    assert_eq!(d["sources"]["excludes"], "project");
    assert_eq!(d["sources"]["defaultReviewerIds"], "global");
    // null inherits again; absent keeps.
    patch(
        &app,
        &format!("/api/projects/{id}"),
        &admin,
        &json!({"autoReview": null}),
    )
    .await
    .expect(200);
    let cfg = app
        .get(&format!("/api/projects/{id}/config"), &admin)
        .await
        .expect(200);
    assert_eq!(cfg.data()["autoReview"], false);
    assert_eq!(cfg.data()["excludes"], json!(["vendor/**"]));
    app.stop().await;
}

async fn permissions_and_validation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = seed(
        &app,
        &ConfigId::generate(),
        PlatformType::Github,
        "1",
        "o/r",
    )
    .await;
    let path = format!("/api/projects/{id}");
    let viewer = app.user("viewer@example.com", Role::User, &[]).await;
    let editor = app
        .user(
            "editor@example.com",
            Role::User,
            &[Permission::ProjectUpdate],
        )
        .await;
    app.get(&path, &viewer.bearer()).await.expect(200);
    patch(&app, &path, &viewer.bearer(), &json!({"enabled": false}))
        .await
        .expect_error(403, "FORBIDDEN");
    patch(&app, &path, &editor.bearer(), &json!({"enabled": false}))
        .await
        .expect(200);
    app.send(
        app.request(reqwest::Method::PUT, "/api/settings/global")
            .json(&json!({})),
        &editor.bearer(),
    )
    .await
    .expect_error(403, "FORBIDDEN");
    for (body, needle) in [
        (json!({"excludes": ["a/[b"]}), "excludes"),
        (
            json!({"aiConfigId": ConfigId::generate()}),
            "does not exist",
        ),
        (
            json!({"defaultReviewerIds": ["has space"]}),
            "defaultReviewerIds",
        ),
        (json!({"autoreview": true}), "autoreview"),
    ] {
        let a = patch(&app, &path, &editor.bearer(), &body)
            .await
            .expect_error(400, "BAD_REQUEST");
        assert!(
            a.error_detail().contains(needle),
            "{body}: {}",
            a.error_detail()
        );
    }
    app.get(
        &format!("/api/projects/{}", ProjectId::generate()),
        &viewer.bearer(),
    )
    .await
    .expect_error(404, "NOT_FOUND");
    app.get("/api/projects", &Principal::Anonymous)
        .await
        .expect_error(401, "UNAUTHORIZED");
    app.stop().await;
}
