//! The dashboard in a real headless Chromium: log in, create an API key and
//! see it once, watch a runner appear online and go offline, watch a
//! review's phases and log update without reloading, open its findings,
//! and see that a viewer cannot change settings. Screenshots of the main
//! pages go to `target/screenshots/` (or `AI_REVIEW_SCREENSHOTS_DIR`); with
//! `AI_REVIEW_UPDATE_SCREENSHOTS=1` they also replace `docs/screenshots/`.

use ai_review_domain::{Phase, Role, TaskOutcome};
use ai_review_protocol::client::Registration;
use ai_review_protocol::runner::LogLineIn;
use ai_review_testkit::browser::{Browser, WAIT};
use ai_review_testkit::{Backend, TestApp};
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

async fn shot(b: &Browser, name: &str) {
    let png = b.full_screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "{name} is a PNG");
    let dir = std::env::var_os("AI_REVIEW_SCREENSHOTS_DIR")
        .map_or_else(|| workspace().join("target/screenshots"), PathBuf::from);
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    std::fs::write(dir.join(format!("{name}.png")), &png).expect("write screenshot");
    if std::env::var("AI_REVIEW_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        let docs = workspace().join("docs/screenshots");
        std::fs::create_dir_all(&docs).expect("docs/screenshots");
        std::fs::write(docs.join(format!("{name}.png")), &png).expect("write docs screenshot");
    }
}

async fn log_in(b: &Browser, app: &TestApp, email: &str) {
    b.goto(&format!("{}/", app.url())).await;
    assert!(
        b.url().await.contains("/login"),
        "logged out, / goes to the login page"
    );
    b.type_into("#email", email).await;
    b.type_into("#password", "password123").await;
    b.click("form button[type=submit]").await;
    b.wait_for("h1", WAIT, |t| t == "Overview").await;
}

/// Marks the page so a test can tell whether it was reloaded.
async fn mark(b: &Browser) {
    b.execute("window.__notReloaded = true;").await;
}

async fn still_marked(b: &Browser) -> bool {
    b.execute("return window.__notReloaded === true;").await == json!(true)
}

fn review_result() -> serde_json::Value {
    json!({
        "version": 1, "kind": "review", "baseSha": "a".repeat(40), "headSha": "b".repeat(40),
        "files": [
            {"path": "src/db.rs", "status": "modified", "additions": 3, "deletions": 1, "binary": false, "reviewStatus": "reviewed", "reviewedLines": 4},
            {"path": "Cargo.lock", "status": "modified", "additions": 40, "deletions": 12, "binary": false, "reviewStatus": "skipped", "reason": "lock file", "reviewedLines": 0}
        ],
        "totals": {"files": 2, "additions": 43, "deletions": 13},
        "findings": [
            {
                "file": "src/db.rs", "line": 12, "endLine": 12, "severity": "error", "category": "bug",
                "ruleId": "model/error-handling", "confidence": 0.9,
                "message": "`unwrap()` on a query result panics the worker when the database is unavailable; return the error instead.",
                "fingerprint": "f1", "source": "model", "suggestion": "    let rows = db.query(sql)?;",
                "context": [
                    {"line": 10, "text": "fn load(db: &Db, sql: &str) -> Result<Vec<Row>> {", "changed": false},
                    {"line": 11, "text": "    let started = Instant::now();", "changed": true},
                    {"line": 12, "text": "    let rows = db.query(sql).unwrap();", "changed": true},
                    {"line": 13, "text": "    metrics::record(started.elapsed());", "changed": true},
                    {"line": 14, "text": "    Ok(rows)", "changed": false}
                ]
            },
            {
                "file": "src/db.rs", "line": 13, "endLine": 13, "severity": "info", "category": "style",
                "ruleId": "model/naming", "confidence": 0.6,
                "message": "Consider naming the metric so dashboards can tell queries apart.",
                "fingerprint": "f2", "source": "model",
                "context": [{"line": 13, "text": "    metrics::record(started.elapsed());", "changed": true}]
            }
        ],
        "summary": "Adds query timing to `load`. One error: a panic path on database failure.",
        "assessment": "request_changes", "rating": 2,
        "ai": {"status": "completed", "provider": "openai", "model": "gpt-test", "chunks": 1},
        "notReviewed": [{"path": "Cargo.lock", "reason": "lock file (generated)", "lines": []}],
        "unanchored": [], "reviewedLines": 4, "appliedRuleIds": [],
        "usage": {"provider": "openai", "model": "gpt-test", "calls": 1, "cachedCalls": 0, "retries": 0,
                  "inputTokens": 1820, "outputTokens": 240, "billedInputTokens": 1820, "billedOutputTokens": 240,
                  "latencyMs": 2300, "estimatedCostUsd": 0.0042}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_works_in_a_real_browser() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.user("viewer@example.com", Role::User, &[]).await;
    let b = Browser::start().await;

    // Log in; the login page first.
    b.goto(&format!("{}/reviews", app.url())).await;
    b.wait_for("h1", WAIT, |t| t == "Log in").await;
    shot(&b, "login").await;
    log_in(&b, &app, "admin@example.com").await;

    // Create an API key: shown once.
    b.goto(&format!("{}/settings/api-keys", app.url())).await;
    b.type_into("#key-name", "runner on build-01").await;
    b.click("form[action='/settings/api-keys'] button[type=submit]")
        .await;
    let key = b
        .wait_for("#new-key", WAIT, |t| t.starts_with("air_"))
        .await;
    b.goto(&format!("{}/settings/api-keys", app.url())).await;
    b.wait_for("#keys", WAIT, |t| t.contains("runner on build-01"))
        .await;
    assert!(
        !b.source().await.contains(&key),
        "the key is shown only once"
    );
    shot(&b, "settings-api-keys").await;

    // Register a runner with it and watch it appear online, live.
    b.goto(&format!("{}/runners", app.url())).await;
    b.wait_for("#runners", WAIT, |t| t.contains("No runner"))
        .await;
    mark(&b).await;
    let runner = app.runner_client(&key, "build-01");
    runner
        .register(&Registration {
            name: "build-01".into(),
            version: "0.1.0".into(),
            max_concurrency: 2,
            tags: "linux,docker".into(),
        })
        .await
        .expect("register");
    b.wait_for("tr[data-runner='build-01']", WAIT, |t| t.contains("online"))
        .await;
    assert!(
        still_marked(&b).await,
        "the runner appeared without a reload"
    );
    shot(&b, "runners").await;

    // A review: queued, claimed, phases and log live, then findings.
    let review = app.enqueue(&app.admin, &[]).await;
    app.advance(Duration::from_secs(3));
    let task = app.claim(&runner).await.expect("claim");
    b.goto(&format!("{}/reviews/{}", app.url(), review.id.as_str()))
        .await;
    b.wait_for("#review-status", WAIT, |t| t.contains("picked up"))
        .await;
    mark(&b).await;
    for (phase, line) in [
        (Phase::Preparing, "container ready (pool hit)"),
        (
            Phase::Cloning,
            "cloned https://git.example.com/group/repo.git at bbbbbbbbbb",
        ),
        (Phase::Reviewing, "reviewing 2 files, 56 changed lines"),
    ] {
        app.advance(Duration::from_secs(7));
        runner
            .report_phase(&task.task_id, task.attempt, phase)
            .await
            .expect("phase");
        b.wait_for("#review-status li.current", WAIT, |t| {
            t.starts_with(phase.as_str())
        })
        .await;
        runner
            .append_logs(
                &task.task_id,
                task.attempt,
                vec![LogLineIn {
                    text: line.into(),
                    stream: Some("stdout".into()),
                    at: None,
                }],
            )
            .await
            .expect("log");
        b.wait_for("#log", WAIT, |t| t.contains(line)).await;
    }
    assert!(
        still_marked(&b).await,
        "phases and log updated without a reload"
    );
    shot(&b, "review-running").await;
    app.advance(Duration::from_secs(20));
    runner
        .report_phase(&task.task_id, task.attempt, Phase::Submitting)
        .await
        .expect("phase");
    runner
        .submit_result(
            &task.task_id,
            task.attempt,
            TaskOutcome::Succeeded,
            None,
            false,
            Some(review_result()),
        )
        .await
        .expect("result");
    // The finished review reloads itself once to show its findings.
    b.wait_for("#findings-h", WAIT, |t| t.contains("Findings (2)"))
        .await;
    let finding = b.text(&b.get("article.finding.s-error").await).await;
    assert!(finding.contains("panics the worker"), "{finding}");
    assert!(
        finding.contains("db.query(sql).unwrap()"),
        "code context: {finding}"
    );
    let nr = b.text(&b.get("#not-reviewed").await).await;
    assert!(
        nr.contains("Cargo.lock") && nr.contains("lock file"),
        "{nr}"
    );
    shot(&b, "review-detail").await;

    // More history for the overview, queue and list: one failed review.
    let failed = app.enqueue(&app.admin, &[]).await;
    let t2 = app.claim(&runner).await.expect("claim 2");
    runner
        .submit_result(
            &t2.task_id,
            t2.attempt,
            TaskOutcome::Failed,
            Some("clone failed: repository not found".into()),
            false,
            None,
        )
        .await
        .expect("fail");
    app.enqueue(&app.admin, &["gpu"]).await;
    b.goto(&format!("{}/reviews", app.url())).await;
    b.wait_for("#reviews", WAIT, |t| {
        t.contains("completed") && t.contains("failed")
    })
    .await;
    shot(&b, "reviews").await;
    b.goto(&format!("{}/queue", app.url())).await;
    b.wait_for("#queue", WAIT, |t| t.contains(&failed.id.as_str()[..13]))
        .await;
    shot(&b, "queue").await;
    b.goto(&format!("{}/", app.url())).await;
    b.wait_for("#failure-rate", WAIT, |t| t == "50.0 %").await;
    shot(&b, "overview").await;

    // The runner goes offline once its heartbeats stop for longer than the timeout.
    b.goto(&format!("{}/runners", app.url())).await;
    mark(&b).await;
    app.advance(Duration::from_secs(61));
    b.wait_for("tr[data-runner='build-01']", WAIT, |t| {
        t.contains("offline")
    })
    .await;
    assert!(still_marked(&b).await, "went offline without a reload");

    // A viewer without permission cannot change settings.
    b.click("form[action='/logout'] button").await;
    b.wait_for("h1", WAIT, |t| t == "Log in").await;
    log_in(&b, &app, "viewer@example.com").await;
    b.goto(&format!("{}/settings/ai", app.url())).await;
    b.wait_for("h1", WAIT, |t| t.contains("AI configs")).await;
    assert!(
        b.find("form[action='/settings/ai']").await.is_none(),
        "no create form"
    );
    b.goto(&format!("{}/settings/users", app.url())).await;
    b.wait_for("h1", WAIT, |t| t == "Not allowed").await;
    // Forging the form from the page's own script still hits the API's check.
    b.goto(&format!("{}/settings/ai", app.url())).await;
    b.execute(
        "const f = document.createElement('form'); f.method = 'post'; f.action = '/settings/ai';
         const add = (n, v) => { const i = document.createElement('input'); i.name = n; i.value = v; f.appendChild(i); };
         add('_csrf', document.querySelector('input[name=_csrf]').value);
         add('name', 'sneaky'); add('provider', 'openai'); add('baseUrl', 'http://127.0.0.1:9/v1'); add('model', 'm');
         document.body.appendChild(f); f.submit();",
    )
    .await;
    b.wait_for("h1", WAIT, |t| t == "Not allowed").await;
    let list = app
        .get("/api/ai-configs", &app.admin.bearer())
        .await
        .expect(200);
    assert_eq!(list.data().as_array().map(Vec::len), Some(0));

    b.quit().await;
}
