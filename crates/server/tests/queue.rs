//! The task queue through real HTTP, on SQLite and PostgreSQL: claims,
//! leases, fencing, idempotent results, cancellation, offline runners, tag
//! routing and long-polls.

use ai_review_domain::{Attempt, Phase, RunnerStatus, TaskOutcome, TaskState};
use ai_review_testkit::{Backend, TestApp, on_both_backends};
use std::time::{Duration, Instant};

on_both_backends!(
    two_runners_race_for_one_task_and_exactly_one_wins,
    expired_lease_requeues_for_a_second_attempt,
    max_attempts_fail_the_task_with_a_reason,
    stale_fencing_value_is_refused_with_409,
    result_submitted_twice_is_recorded_once,
    cancellation_reaches_the_runner_through_its_heartbeat,
    silent_runners_are_marked_offline_and_do_not_block_the_queue,
    tasks_go_only_to_runners_with_the_required_tags,
    long_poll_is_answered_on_enqueue_and_empty_after_wait,
    review_detail_shows_phases_attempts_logs_and_result,
    unclaimed_tasks_expire_with_a_reason,
    findings_are_served_as_comments_files_and_progress,
);

async fn two_runners_race_for_one_task_and_exactly_one_wins(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.reviewer("alice@example.com").await;
    let r1 = app.runner(&alice, "r1", "").await;
    let r2 = app.runner(&alice, "r2", "").await;
    let review = app.enqueue(&alice, &[]).await;
    let (a, b) = tokio::join!(r1.poll(1, Duration::ZERO), r2.poll(1, Duration::ZERO));
    let (a, b) = (a.expect("poll r1"), b.expect("poll r2"));
    assert_eq!(
        a.len() + b.len(),
        1,
        "exactly one runner gets the task: {a:?} {b:?}"
    );
    let won = a.into_iter().chain(b).next().expect("a claim");
    assert_eq!(won.spec.review_id, review.id);
    assert_eq!(won.attempt, Attempt(1));
    assert_eq!(won.spec.head_sha.as_str(), "b".repeat(40));
    assert_eq!(app.review(&review.id).await.task.state, TaskState::PickedUp);
    app.stop().await;
}

async fn expired_lease_requeues_for_a_second_attempt(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.reviewer("alice@example.com").await;
    let r1 = app.runner(&alice, "r1", "").await;
    let r2 = app.runner(&alice, "r2", "").await;
    let review = app.enqueue(&alice, &[]).await;
    let first = app.claim(&r1).await.expect("first claim");
    r1.report_phase(&first.task_id, first.attempt, Phase::Cloning)
        .await
        .expect("phase");
    // r1 dies: no heartbeats. Just before the lease ends nothing happens...
    app.advance(Duration::from_secs(29));
    assert_eq!(app.reap().await.requeued, 0);
    assert!(
        app.claim(&r2).await.is_none(),
        "the task is still leased to r1"
    );
    // ...after it, the task is pending again and r2 gets attempt 2.
    app.advance(Duration::from_secs(2));
    assert_eq!(app.reap().await.requeued, 1);
    let second = app.claim(&r2).await.expect("second claim");
    assert_eq!(
        (second.task_id.clone(), second.attempt),
        (first.task_id.clone(), Attempt(2))
    );
    r2.submit_result(
        &second.task_id,
        second.attempt,
        TaskOutcome::Succeeded,
        None,
        false,
        Some(serde_json::json!({"ok": true})),
    )
    .await
    .expect("result");
    let done = app.review(&review.id).await;
    assert_eq!(done.task.state, TaskState::Completed);
    let outcomes: Vec<_> = done
        .task
        .attempts
        .iter()
        .map(|a| a.outcome.clone().unwrap_or_default())
        .collect();
    assert_eq!(outcomes, ["lease_expired", "succeeded"]);
    app.stop().await;
}

async fn max_attempts_fail_the_task_with_a_reason(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.max_attempts = 2).await;
    let alice = app.reviewer("alice@example.com").await;
    let r1 = app.runner(&alice, "r1", "").await;
    let review = app.enqueue(&alice, &[]).await;
    for attempt in 1..=2 {
        let t = app.claim(&r1).await.expect("claim");
        assert_eq!(t.attempt, Attempt(attempt));
        app.advance(Duration::from_secs(31));
        app.reap().await;
    }
    let failed = app.review(&review.id).await;
    assert_eq!(failed.status.as_str(), "failed");
    assert_eq!(failed.task.state, TaskState::Failed);
    let reason = failed.task.failure_reason.unwrap_or_default();
    assert!(
        reason.starts_with("max_attempts_exceeded") && reason.contains("2 of 2"),
        "{reason}"
    );
    assert!(
        app.claim(&r1).await.is_none(),
        "a failed task is never claimed again"
    );
    app.stop().await;
}

async fn stale_fencing_value_is_refused_with_409(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.reviewer("alice@example.com").await;
    let r1 = app.runner(&alice, "r1", "").await;
    let r2 = app.runner(&alice, "r2", "").await;
    let review = app.enqueue(&alice, &[]).await;
    let old = app.claim(&r1).await.expect("claim");
    app.advance(Duration::from_secs(31));
    app.reap().await;
    let new = app.claim(&r2).await.expect("reclaim");
    for err in [
        r1.report_phase(&old.task_id, old.attempt, Phase::Reviewing)
            .await
            .expect_err("phase"),
        r1.append_logs(&old.task_id, old.attempt, vec![])
            .await
            .expect_err("logs"),
        r1.submit_result(
            &old.task_id,
            old.attempt,
            TaskOutcome::Succeeded,
            None,
            false,
            None,
        )
        .await
        .expect_err("result"),
    ] {
        assert_eq!(err.status(), Some(409), "{err}");
        assert!(err.to_string().contains("lost its lease"), "{err}");
    }
    let now = app.review(&review.id).await.task;
    assert_eq!(
        (now.state, now.attempt, now.runner_id.map(|r| r.to_string())),
        (TaskState::PickedUp, new.attempt, Some("r2".into()))
    );
    assert!(now.result.is_none());
    app.stop().await;
}

async fn result_submitted_twice_is_recorded_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.reviewer("alice@example.com").await;
    let r1 = app.runner(&alice, "r1", "").await;
    let review = app.enqueue(&alice, &[]).await;
    let t = app.claim(&r1).await.expect("claim");
    let output = Some(serde_json::json!({"findings": []}));
    let first = r1
        .submit_result(
            &t.task_id,
            t.attempt,
            TaskOutcome::Succeeded,
            None,
            false,
            output.clone(),
        )
        .await
        .expect("first");
    let again = r1
        .submit_result(
            &t.task_id,
            t.attempt,
            TaskOutcome::Succeeded,
            None,
            false,
            output,
        )
        .await
        .expect("retry");
    assert!(!first.duplicate);
    assert!(again.duplicate);
    assert_eq!(again.state, TaskState::Completed);
    let conflicting = r1
        .submit_result(
            &t.task_id,
            t.attempt,
            TaskOutcome::Failed,
            Some("boom".into()),
            false,
            None,
        )
        .await
        .expect_err("different result");
    assert_eq!(conflicting.status(), Some(409));
    let detail = app.review(&review.id).await;
    assert_eq!(
        detail
            .task
            .events
            .iter()
            .filter(|e| e.kind == "completed")
            .count(),
        1
    );
    assert_eq!(
        detail.task.result,
        Some(serde_json::json!({"findings": []}))
    );
    app.stop().await;
}

async fn cancellation_reaches_the_runner_through_its_heartbeat(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.reviewer("alice@example.com").await;
    let bob = app.reviewer("bob@example.com").await;
    let r1 = app.runner(&alice, "r1", "").await;
    let review = app.enqueue(&alice, &[]).await;
    let t = app.claim(&r1).await.expect("claim");
    let hb = r1
        .heartbeat(RunnerStatus::Busy, 1)
        .await
        .expect("heartbeat");
    assert!(hb.cancel_task_ids.is_empty());
    assert_eq!(hb.renewed_task_ids, vec![t.task_id.clone()]);

    app.post(
        &format!("/api/reviews/{}/cancel", review.id),
        &bob.bearer(),
        &serde_json::json!({}),
    )
    .await
    .expect_error(403, "FORBIDDEN");
    let asked = app
        .post(
            &format!("/api/reviews/{}/cancel", review.id),
            &alice.bearer(),
            &serde_json::json!({}),
        )
        .await
        .expect(200);
    assert_eq!(asked.data()["task"]["cancelRequested"], true);
    let hb = r1
        .heartbeat(RunnerStatus::Busy, 1)
        .await
        .expect("heartbeat");
    assert_eq!(hb.cancel_task_ids, vec![t.task_id.clone()]);
    let status = r1
        .report_phase(&t.task_id, t.attempt, Phase::Reviewing)
        .await
        .expect("phase");
    assert!(
        status.cancel_requested,
        "phase answers carry the request too"
    );
    r1.submit_result(
        &t.task_id,
        t.attempt,
        TaskOutcome::Cancelled,
        Some("cancelled by user".into()),
        false,
        None,
    )
    .await
    .expect("report cancelled");
    let done = app.review(&review.id).await;
    assert_eq!(
        (done.status.as_str(), done.task.state),
        ("cancelled", TaskState::Cancelled)
    );

    // A pending review is cancelled at once.
    let pending = app.enqueue(&alice, &[]).await;
    app.post(
        &format!("/api/reviews/{}/cancel", pending.id),
        &app.admin.bearer(),
        &serde_json::json!({}),
    )
    .await
    .expect(200);
    assert_eq!(
        app.review(&pending.id).await.task.state,
        TaskState::Cancelled
    );
    app.post(
        &format!("/api/reviews/{}/cancel", pending.id),
        &alice.bearer(),
        &serde_json::json!({}),
    )
    .await
    .expect_error(409, "CONFLICT");
    app.stop().await;
}

async fn silent_runners_are_marked_offline_and_do_not_block_the_queue(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.reviewer("alice@example.com").await;
    let quiet = app.runner(&alice, "quiet", "").await;
    let live = app.runner(&alice, "live", "").await;
    let review = app.enqueue(&alice, &[]).await;
    let held = app.claim(&quiet).await.expect("claim");
    app.advance(Duration::from_secs(45));
    live.heartbeat(RunnerStatus::Online, 0)
        .await
        .expect("heartbeat");
    app.advance(Duration::from_secs(20));
    let pass = app.reap().await;
    assert_eq!((pass.runners_offline, pass.requeued), (1, 1));
    let listed = app.get("/api/runners", &alice.bearer()).await.expect(200);
    let rows = listed.data().as_array().cloned().unwrap_or_default();
    assert_eq!(rows[0]["id"], "live", "newest heartbeat first: {rows:?}");
    assert_eq!(rows[0]["status"], "online");
    assert_eq!(rows[1]["status"], "offline");
    let one = app
        .get("/api/runners/quiet", &alice.bearer())
        .await
        .expect(200);
    assert_eq!(one.data()["status"], "offline");
    let taken = app
        .claim(&live)
        .await
        .expect("the live runner takes the task over");
    assert_eq!((taken.task_id, taken.attempt), (held.task_id, Attempt(2)));
    assert_eq!(
        app.review(&review.id)
            .await
            .task
            .runner_id
            .map(|r| r.to_string()),
        Some("live".into())
    );
    app.stop().await;
}

async fn tasks_go_only_to_runners_with_the_required_tags(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.reviewer("alice@example.com").await;
    let plain = app.runner(&alice, "plain", "").await;
    let gpu = app.runner(&alice, "gpu-box", "gpu, linux").await;
    let tagged = app.enqueue(&alice, &["gpu"]).await;
    let untagged = app.enqueue(&alice, &[]).await;
    let got = app.claim(&plain).await.expect("plain runner claim");
    assert_eq!(
        got.spec.review_id, untagged.id,
        "the plain runner skips the gpu task"
    );
    assert!(app.claim(&plain).await.is_none());
    let got = app.claim(&gpu).await.expect("gpu claim");
    assert_eq!(got.spec.review_id, tagged.id);
    assert_eq!(got.required_tags, vec!["gpu"]);
    app.post("/api/reviews", &alice.bearer(), &serde_json::json!({
        "repoUrl": "https://h/r.git", "baseSha": "a".repeat(40), "headSha": "b".repeat(40), "tags": ["not ok"]
    })).await.expect_error(400, "BAD_REQUEST");
    app.stop().await;
}

async fn long_poll_is_answered_on_enqueue_and_empty_after_wait(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.reviewer("alice@example.com").await;
    let r1 = app.runner(&alice, "r1", "").await;

    let started = Instant::now();
    let empty = r1.poll(1, Duration::from_millis(400)).await.expect("poll");
    let held = started.elapsed();
    assert!(empty.is_empty());
    assert!(held >= Duration::from_millis(400), "held only {held:?}");
    assert!(held < Duration::from_secs(5), "held {held:?}");

    let waiting = {
        let r1 = r1.clone();
        tokio::spawn(async move {
            let t0 = Instant::now();
            let got = r1.poll(1, Duration::from_secs(20)).await;
            (got, t0.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let enqueued_at = Instant::now();
    let review = app.enqueue(&alice, &[]).await;
    let (got, total) = waiting.await.expect("join");
    let got = got.expect("poll");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].spec.review_id, review.id);
    assert!(
        total < Duration::from_secs(5),
        "answered after {total:?}, not at once"
    );
    assert!(enqueued_at.elapsed() < Duration::from_secs(2));
    // Never more than asked.
    for _ in 0..3 {
        app.enqueue(&alice, &[]).await;
    }
    assert_eq!(r1.poll(2, Duration::ZERO).await.expect("poll").len(), 2);
    app.stop().await;
}

async fn review_detail_shows_phases_attempts_logs_and_result(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.task_log_max_bytes = 64).await;
    let alice = app.reviewer("alice@example.com").await;
    let r1 = app.runner(&alice, "r1", "").await;
    let review = app.enqueue(&alice, &[]).await;
    let t = app.claim(&r1).await.expect("claim");
    for phase in Phase::ALL {
        let s = r1
            .report_phase(&t.task_id, t.attempt, *phase)
            .await
            .expect("phase");
        assert_eq!((s.state, s.phase), (TaskState::Executing, Some(*phase)));
    }
    let line = |text: &str| ai_review_protocol::runner::LogLineIn {
        text: text.into(),
        stream: None,
        at: None,
    };
    let out = r1
        .append_logs(
            &t.task_id,
            t.attempt,
            vec![line("cloning"), line(&"x".repeat(100)), line("after")],
        )
        .await
        .expect("logs");
    assert_eq!((out.accepted, out.dropped, out.truncated), (1, 2, true));
    r1.submit_result(
        &t.task_id,
        t.attempt,
        TaskOutcome::Succeeded,
        None,
        false,
        Some(serde_json::json!({"filesChanged": 2})),
    )
    .await
    .expect("result");
    let d = app.review(&review.id).await;
    assert_eq!(d.status.as_str(), "completed");
    let phases: Vec<_> = d
        .task
        .events
        .iter()
        .filter(|e| e.kind == "phase")
        .map(|e| e.detail.clone())
        .collect();
    assert_eq!(phases, ["preparing", "cloning", "reviewing", "submitting"]);
    assert_eq!(d.task.attempts.len(), 1);
    assert_eq!(d.task.result, Some(serde_json::json!({"filesChanged": 2})));
    let logs = app
        .get(&format!("/api/reviews/{}/logs", review.id), &alice.bearer())
        .await
        .expect(200);
    let texts: Vec<_> = logs
        .data()
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|l| l["text"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(texts[0], "cloning");
    assert!(texts[1].contains("log truncated"), "{texts:?}");
    let list = app
        .get("/api/reviews?pageSize=1&status=completed", &alice.bearer())
        .await
        .expect(200);
    assert_eq!(list.data()["items"][0]["id"], review.id.to_string());
    assert_eq!(list.data()["stats"]["completed"], 1);
    assert_eq!(list.body["meta"]["pagination"]["total"], 1);
    app.stop().await;
}

async fn unclaimed_tasks_expire_with_a_reason(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.unclaimed_expiry = Duration::from_secs(600)).await;
    let alice = app.reviewer("alice@example.com").await;
    let review = app.enqueue(&alice, &["arm64"]).await;
    app.advance(Duration::from_secs(601));
    assert_eq!(app.reap().await.expired, 1);
    let d = app.review(&review.id).await;
    assert_eq!(
        (d.status.as_str(), d.task.state),
        ("failed", TaskState::Expired)
    );
    assert!(d.task.failure_reason.unwrap_or_default().contains("arm64"));
    app.stop().await;
}

async fn findings_are_served_as_comments_files_and_progress(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.reviewer("alice@example.com").await;
    let r1 = app.runner(&alice, "r1", "").await;
    let review = app.enqueue(&alice, &[]).await;
    let base = format!("/api/reviews/{}", review.id);
    let early = app
        .get(&format!("{base}/files/progress"), &alice.bearer())
        .await
        .expect(200);
    assert_eq!(early.data()["status"], "pending");
    assert_eq!(
        app.get(&format!("{base}/comments"), &alice.bearer())
            .await
            .expect(200)
            .data(),
        &serde_json::json!([])
    );
    let t = app.claim(&r1).await.expect("claim");
    let finding = |file: &str, line: u64, severity: &str, fp: &str| {
        serde_json::json!({
            "file": file, "line": line, "endLine": line, "severity": severity, "category": "secret",
            "ruleId": "secret/x", "confidence": 0.9, "message": "m", "fingerprint": fp,
        })
    };
    let mut model_finding = finding("b.py", 7, "error", "f3");
    model_finding["source"] = "model".into();
    model_finding["suggestion"] = "let x = 1;".into();
    let output = serde_json::json!({
        "version": 1, "kind": "review", "baseSha": "a".repeat(40), "headSha": "b".repeat(40),
        "files": [
            {"path": "a.py", "status": "modified", "additions": 3, "deletions": 1, "binary": false,
             "reviewStatus": "reviewed", "reviewedLines": 4},
            {"path": "b.py", "status": "added", "additions": 9, "deletions": 0, "binary": false,
             "reviewStatus": "not_reviewed", "reason": "token budget exhausted"},
            {"path": "logo.png", "status": "added", "additions": 0, "deletions": 0, "binary": true}
        ],
        "totals": {"files": 3, "additions": 12, "deletions": 1},
        "findings": [finding("a.py", 2, "error", "f1"), finding("a.py", 3, "warning", "f2"), model_finding],
        "appliedRuleIds": ["rule-1"], "reviewedLines": 4, "rating": 3,
    });
    r1.submit_result(
        &t.task_id,
        t.attempt,
        TaskOutcome::Succeeded,
        None,
        false,
        Some(output),
    )
    .await
    .expect("result");

    let all = app
        .get(&format!("{base}/comments"), &alice.bearer())
        .await
        .expect(200);
    assert_eq!(all.data().as_array().map(Vec::len), Some(3));
    assert_eq!(all.body["meta"]["pagination"]["total"], 3);
    assert_eq!(all.data()[0]["id"], "f1");
    let in_a = app
        .get(&format!("{base}/comments?file=a.py"), &alice.bearer())
        .await
        .expect(200);
    assert_eq!(in_a.data().as_array().map(Vec::len), Some(2));
    let errors = app
        .get(&format!("{base}/comments?severity=error"), &alice.bearer())
        .await
        .expect(200);
    let ids: Vec<_> = errors
        .data()
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["id"].clone())
        .collect();
    assert_eq!(ids, [serde_json::json!("f1"), serde_json::json!("f3")]);
    let page = app
        .get(
            &format!("{base}/comments?limit=1&offset=1"),
            &alice.bearer(),
        )
        .await
        .expect(200);
    assert_eq!(page.data()[0]["id"], "f2");
    assert_eq!(page.body["meta"]["pagination"]["total"], 3);
    app.get(&format!("{base}/comments?severity=fatal"), &alice.bearer())
        .await
        .expect_error(400, "BAD_REQUEST");
    app.get(&format!("{base}/comments?limit=0"), &alice.bearer())
        .await
        .expect_error(400, "BAD_REQUEST");
    let files = app
        .get(&format!("{base}/files"), &alice.bearer())
        .await
        .expect(200);
    assert_eq!(files.data().as_array().map(Vec::len), Some(3));
    let progress = app
        .get(&format!("{base}/files/progress"), &alice.bearer())
        .await
        .expect(200);
    assert_eq!(progress.data()["status"], "completed");
    assert_eq!(
        (
            progress.data()["reviewedFiles"].as_u64(),
            progress.data()["skippedFiles"].as_u64(),
            progress.data()["notReviewedFiles"].as_u64(),
        ),
        (Some(1), Some(1), Some(1))
    );
    assert_eq!(progress.data()["files"][0]["reviewedLines"], 4);
    assert_eq!(
        progress.data()["files"][1]["reason"],
        "token budget exhausted"
    );
    assert_eq!(progress.data()["files"][2]["reason"], "binary file");
    assert_eq!(
        (
            errors.data()[1]["source"].as_str(),
            errors.data()[1]["suggestion"].as_str()
        ),
        (Some("model"), Some("let x = 1;"))
    );
    assert_eq!(errors.data()[0]["source"], "check");
    let view = app.review(&review.id).await;
    assert_eq!(
        (
            view.applied_rule_ids,
            view.reviewed_lines,
            view.rating,
            view.round_number
        ),
        (vec!["rule-1".to_owned()], 4, Some(3), 1)
    );
    app.get(
        &format!(
            "/api/reviews/{}/comments",
            ai_review_domain::ReviewId::generate()
        ),
        &alice.bearer(),
    )
    .await
    .expect_error(404, "NOT_FOUND");
    app.stop().await;
}
