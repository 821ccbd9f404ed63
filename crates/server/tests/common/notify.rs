//! Helpers shared by the notification test files: the settings calls, a
//! review run to a completed result, and the delivery history.

use ai_review_domain::TaskOutcome;
use ai_review_testkit::{Answer, Principal, TestApp};
use serde_json::{Value, json};

pub async fn patch_config(app: &TestApp, who: &Principal, body: &Value) -> Answer {
    app.send(
        app.request(reqwest::Method::PATCH, "/api/notifications/config")
            .json(body),
        who,
    )
    .await
}

pub async fn put_config(app: &TestApp, who: &Principal, body: &Value) -> Answer {
    app.send(
        app.request(reqwest::Method::PUT, "/api/notifications/config")
            .json(body),
        who,
    )
    .await
}

/// Runs one review to a completed result with `rating`.
pub async fn finish_review(
    app: &TestApp,
    rating: u8,
) -> (
    String,
    ai_review_protocol::client::RunnerClient,
    ai_review_protocol::runner::TaskAssignment,
) {
    let review = app.enqueue(&app.admin, &[]).await;
    let runner = app.runner(&app.admin, "runner-n", "").await;
    let task = app.claim(&runner).await.expect("claim");
    let output = json!({
        "version": 1, "kind": "review", "baseSha": "a".repeat(40), "headSha": "b".repeat(40),
        "files": [], "totals": {"files": 1, "additions": 1, "deletions": 0},
        "findings": [
            {"file": "a.rs", "line": 1, "endLine": 1, "severity": "error", "category": "bug", "ruleId": "m/x", "confidence": 0.9, "message": "m", "fingerprint": "f1", "source": "model"},
            {"file": "a.rs", "line": 2, "endLine": 2, "severity": "warning", "category": "bug", "ruleId": "m/y", "confidence": 0.9, "message": "m", "fingerprint": "f2", "source": "model"}
        ],
        "summary": "Two problems.", "rating": rating, "assessment": "request_changes",
        "notReviewed": [], "unanchored": [], "reviewedLines": 1, "appliedRuleIds": []
    });
    runner
        .submit_result(
            &task.task_id,
            task.attempt,
            TaskOutcome::Succeeded,
            None,
            false,
            Some(output),
        )
        .await
        .expect("result");
    (review.id.as_str().to_owned(), runner, task)
}

pub async fn history(app: &TestApp, query: &str) -> Vec<Value> {
    let a = app
        .get(
            &format!("/api/notifications/history?pageSize=100{query}"),
            &app.admin.bearer(),
        )
        .await
        .expect(200);
    a.data().as_array().cloned().expect("items")
}
