//! Operations: `/metrics` is valid Prometheus exposition (checked by a
//! strict parser) and counts what happened: requests by route template,
//! claims, results, phase durations, queue and runner gauges; and it can
//! move to its own listener.

use ai_review_domain::{Phase, TaskOutcome};
use ai_review_testkit::prom::{self, Exposition};
use ai_review_testkit::{Backend, Principal, TestApp, on_both_backends};
use serde_json::json;
use std::time::Duration;

on_both_backends!(metrics_count_requests_tasks_phases_and_the_queue);

async fn scrape(url: &str) -> Exposition {
    let r = reqwest::get(format!("{url}/metrics"))
        .await
        .expect("metrics");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = r.text().await.expect("text");
    prom::parse(&text).unwrap_or_else(|e| panic!("invalid exposition: {e}\n{text}"))
}

async fn metrics_count_requests_tasks_phases_and_the_queue(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.get("/api/health", &Principal::Anonymous)
        .await
        .expect(200);
    app.get("/api/nope", &app.admin.bearer())
        .await
        .expect_error(404, "NOT_FOUND");
    let review = app.enqueue(&app.admin, &[]).await;
    app.get(&format!("/api/reviews/{}", review.id), &app.admin.bearer())
        .await
        .expect(200);
    let runner = app.runner(&app.admin, "runner-m", "").await;
    let task = app.claim(&runner).await.expect("claim");
    for (phase, secs) in [
        (Phase::Preparing, 1),
        (Phase::Cloning, 2),
        (Phase::Reviewing, 40),
        (Phase::Submitting, 0),
    ] {
        runner
            .report_phase(&task.task_id, task.attempt, phase)
            .await
            .expect("phase");
        app.advance(Duration::from_secs(secs));
    }
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
    // A second review waits 30 s unclaimed.
    app.enqueue(&app.admin, &[]).await;
    app.advance(Duration::from_secs(30));

    let m = scrape(&app.url()).await;
    for f in ai_review_server::metrics::FAMILIES {
        assert_eq!(
            m.types.get(f.name).map(String::as_str),
            Some(f.kind.as_str()),
            "{}",
            f.name
        );
        assert_eq!(m.help.get(f.name).map(String::as_str), Some(f.help));
    }
    let requests = |route: &str, code: &str| {
        m.value(
            "ai_review_http_requests_total",
            &[("route", route), ("code", code)],
        )
    };
    assert_eq!(requests("/api/health", "200"), Some(1.0));
    assert_eq!(
        requests("/api/reviews/{id}", "200"),
        Some(1.0),
        "route templates, never raw ids"
    );
    assert_eq!(requests("unmatched", "404"), Some(1.0));
    assert!(
        m.samples
            .iter()
            .all(|s| !s.labels.values().any(|v| v.contains(review.id.as_str()))),
        "no id in any label"
    );
    assert_eq!(
        m.value(
            "ai_review_http_request_duration_seconds_count",
            &[("route", "/api/health"), ("method", "GET")]
        ),
        Some(1.0)
    );
    assert_eq!(m.value("ai_review_task_claims_total", &[]), Some(1.0));
    assert_eq!(
        m.value("ai_review_task_results_total", &[("state", "failed")]),
        Some(1.0)
    );
    assert_eq!(
        m.value("ai_review_tasks", &[("state", "failed")]),
        Some(1.0)
    );
    assert_eq!(
        m.value("ai_review_tasks", &[("state", "pending")]),
        Some(1.0)
    );
    assert_eq!(
        m.value("ai_review_tasks", &[("state", "completed")]),
        Some(0.0)
    );
    let age = m
        .value("ai_review_queue_oldest_pending_age_seconds", &[])
        .expect("age");
    assert!((30.0..31.0).contains(&age), "{age}");
    let runners = |s: &str| m.value("ai_review_runners", &[("status", s)]).expect(s);
    // 73 s passed on the server's clock without a heartbeat: past the
    // 60 s timeout, the runner counts as offline even before the reaper
    // marks it.
    assert_eq!(runners("offline"), 1.0);
    assert_eq!(runners("online") + runners("busy"), 0.0);
    assert_eq!(
        m.value(
            "ai_review_task_phase_duration_seconds_sum",
            &[("phase", "reviewing")]
        ),
        Some(40.0)
    );
    assert_eq!(
        m.value(
            "ai_review_task_phase_duration_seconds_bucket",
            &[("phase", "cloning"), ("le", "2.5")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.value(
            "ai_review_task_phase_duration_seconds_bucket",
            &[("phase", "cloning"), ("le", "1")]
        ),
        Some(0.0)
    );
    assert_eq!(m.value("ai_review_task_attempts_count", &[]), Some(1.0));
    // The reaper counts its passes and the leases it saw run out.
    ai_review_server::queue::reap_once(&app.server.state)
        .await
        .expect("reap");
    let m = scrape(&app.url()).await;
    assert_eq!(m.value("ai_review_reaper_runs_total", &[]), Some(1.0));
    // A malformed request is counted with its status too.
    app.post("/api/reviews", &app.admin.bearer(), &json!({"bogus": 1}))
        .await
        .expect_error(400, "BAD_REQUEST");
    let m = scrape(&app.url()).await;
    assert_eq!(
        m.value(
            "ai_review_http_requests_total",
            &[
                ("route", "/api/reviews"),
                ("method", "POST"),
                ("code", "400")
            ]
        ),
        Some(1.0)
    );
}

#[test]
fn every_metric_is_documented_in_the_readme() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README");
    for f in ai_review_server::metrics::FAMILIES {
        assert!(
            readme.contains(&format!("| `{}` |", f.name)),
            "{} is not in the README's metrics table",
            f.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_listen_apart_from_the_api() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.metrics_listen = Some("127.0.0.1:0".parse().expect("addr"));
    })
    .await;
    let addr = app.server.metrics_addr().expect("metrics listener");
    let r = reqwest::get(format!("{}/metrics", app.url()))
        .await
        .expect("main");
    assert_eq!(r.status().as_u16(), 404, "not on the public listener");
    let m = scrape(&format!("http://{addr}")).await;
    assert!(m.types.contains_key("ai_review_tasks"));
}

/// The served OpenAPI document passes an independent validator
/// (`openapi-spec-validator` from PyPI, installed by `.ci/run`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_is_served_and_validates() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let r = reqwest::get(format!("{}/api/openapi.json", app.url()))
        .await
        .expect("openapi");
    assert_eq!(r.status().as_u16(), 200, "public, no login");
    let doc: serde_json::Value = r.json().await.expect("json");
    assert!(doc["paths"]["/api/reviews/{id}"]["get"].is_object());
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, doc.to_string()).expect("write");
    let out = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .expect("python3 (install openapi-spec-validator: see .ci/run)");
    assert!(
        out.status.success(),
        "the validator refused the document:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
