//! Webhooks from the fake forge (real repositories over smart HTTP, signed
//! deliveries) through the orchestrator into the queue, on SQLite and
//! PostgreSQL: authentication, event rules, redelivery, every documented
//! refusal with its reason visible in `GET /api/webhook-events`, and what
//! the runner receives (clone URL and clone credentials, the change's
//! SHAs).

use ai_review_domain::{ConfigId, PlatformType, ProjectId};
use ai_review_fake_forge::{FakeForge, Forge, MrAction, PrAction, Repo};
use ai_review_store::ProjectUpsert;
use ai_review_testkit::{Backend, TestApp, on_both_backends};
use serde_json::{Value, json};

on_both_backends!(
    gitlab_merge_request_events_queue_once_with_clone_credentials,
    github_pull_request_events_are_signed_and_follow_the_rules,
    refusals_are_recorded_with_their_reasons,
    sync_pulls_projects_and_keeps_their_settings,
    webhook_checks_ask_the_forge,
    opened_merge_requests_are_assigned_as_configured,
    manual_triggers_and_new_pushes_make_rounds_and_supersede,
    results_are_pushed_back_once_per_finding_across_rounds,
);

const GL_TOKEN: &str = "glpat-fake-forge-token-0001";
const GH_TOKEN: &str = "ghp_fakeforgetoken000000000000000000001";
const SECRET: &str = "webhook-secret-123";

struct Setup {
    app: TestApp,
    forge: FakeForge,
}

async fn setup(backend: Backend) -> Setup {
    let app = TestApp::spawn(backend).await;
    let forge = FakeForge::start(GL_TOKEN, GH_TOKEN).await;
    app.post(
        "/api/ai-configs",
        &app.admin.bearer(),
        &json!({"name": "default", "provider": "openai", "baseUrl": "http://127.0.0.1:9/v1",
                "model": "m", "isDefault": true}),
    )
    .await
    .expect(201);
    Setup { app, forge }
}

async fn platform(s: &Setup, t: &str, base_url: &str, token: &str) -> String {
    s.app
        .post(
            "/api/platform-configs",
            &s.app.admin.bearer(),
            &json!({"name": t, "platformType": t, "baseUrl": base_url,
                    "accessToken": token, "webhookSecret": SECRET}),
        )
        .await
        .expect(201)
        .data()["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

async fn seed_project(s: &Setup, config: &str, t: PlatformType, repo: &Repo) -> String {
    let (p, _) = s
        .app
        .server
        .state
        .store
        .upsert_project(ProjectUpsert {
            id: ProjectId::generate(),
            platform_config_id: ConfigId::parse(config).expect("config id"),
            platform_type: t,
            external_id: repo.id.to_string(),
            path: repo.path.clone(),
            name: repo.path.clone(),
            web_url: format!("{}/{}", s.forge.base_url(), repo.path),
            clone_url: s.forge.clone_url(repo),
            default_branch: Some("main".into()),
            enabled_if_new: true,
            now: s.app.clock_now(),
        })
        .await
        .expect("project");
    p.id.to_string()
}

fn hook_url(s: &Setup, platform: &str) -> String {
    format!("{}/api/webhook/{platform}", s.app.url())
}

fn answer(d: &ai_review_fake_forge::Delivery) -> Value {
    serde_json::from_str(&d.response).unwrap_or(Value::Null)
}

async fn events(s: &Setup) -> Vec<Value> {
    s.app
        .get("/api/webhook-events?pageSize=100", &s.app.admin.bearer())
        .await
        .expect(200)
        .data()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn review_count(s: &Setup) -> u64 {
    s.app
        .get("/api/reviews", &s.app.admin.bearer())
        .await
        .expect(200)
        .body["meta"]["pagination"]["total"]
        .as_u64()
        .unwrap_or(0)
}

async fn gitlab_merge_request_events_queue_once_with_clone_credentials(backend: Backend) {
    let s = setup(backend).await;
    let cfg = platform(&s, "gitlab", &s.forge.gitlab_url(), GL_TOKEN).await;
    let repo = s
        .forge
        .create_repo(Forge::GitLab, "group/app", &[("src/lib.rs", "fn a() {}\n")]);
    seed_project(&s, &cfg, PlatformType::Gitlab, &repo).await;
    let head = s.forge.push_commit(
        &repo,
        "feature",
        &[("src/lib.rs", Some("fn a() {}\nfn b() {}\n"))],
        "add b",
    );
    let iid = s
        .forge
        .open_merge_request(&repo, "feature", "main", "Add b", "alice", false);

    let d = s
        .forge
        .send_gitlab_mr_event(&hook_url(&s, "gitlab"), SECRET, &repo, iid, MrAction::Open)
        .await;
    assert_eq!(d.status, Some(202), "{}", d.response);
    let a = answer(&d);
    assert_eq!(a["data"]["status"], "queued");
    let review_id = a["data"]["reviewId"].as_str().expect("review").to_owned();
    let review = s.app.review(&review_id).await;
    assert_eq!(review.head_sha.as_str(), head);
    assert_eq!(review.repo_url.as_str(), s.forge.clone_url(&repo));
    assert_eq!(review.branch.as_deref(), Some("feature"));

    // A redelivery creates nothing.
    let again = s.forge.redeliver(&d).await;
    assert_eq!(again.status, Some(200));
    assert_eq!(answer(&again)["data"]["status"], "duplicate");
    assert_eq!(review_count(&s).await, 1);

    // An assignee-only update is ignored with its reason.
    let d = s
        .forge
        .send_gitlab_mr_event(
            &hook_url(&s, "gitlab"),
            SECRET,
            &repo,
            iid,
            MrAction::UpdateAssigneesOnly,
        )
        .await;
    assert_eq!(d.status, Some(200));
    assert_eq!(answer(&d)["data"]["status"], "ignored");
    assert_eq!(review_count(&s).await, 1);

    // The runner gets the clone credentials; the stored spec never holds
    // the token in clear.
    let runner = s.app.runner(&s.app.admin, "r1", "").await;
    let claimed = s.app.claim(&runner).await.expect("claim");
    let creds = claimed.spec.clone_credentials.expect("credentials");
    assert_eq!(creds.username, "oauth2");
    assert_eq!(creds.password.as_ref().map(|p| p.expose()), Some(GL_TOKEN));
    let task = s
        .app
        .server
        .state
        .store
        .get_task(&claimed.task_id)
        .await
        .expect("task")
        .expect("exists");
    assert!(!task.spec.to_string().contains(GL_TOKEN));

    // Wrong or missing tokens are 401 and recorded nowhere.
    let before = events(&s).await.len();
    let d = s
        .forge
        .send_gitlab_mr_event(
            &hook_url(&s, "gitlab"),
            "wrong",
            &repo,
            iid,
            MrAction::Update,
        )
        .await;
    assert_eq!(d.status, Some(401), "{}", d.response);
    let raw = s
        .app
        .send(
            s.app
                .request(reqwest::Method::POST, "/api/webhook/gitlab")
                .header("x-gitlab-event", "Merge Request Hook")
                .body("{}"),
            &ai_review_testkit::Principal::Anonymous,
        )
        .await
        .expect_error(401, "UNAUTHORIZED");
    assert!(raw.error_detail().contains("X-Gitlab-Token"));
    assert_eq!(events(&s).await.len(), before);

    // A payload that is not JSON is 400.
    s.app
        .send(
            s.app
                .request(reqwest::Method::POST, "/api/webhook/gitlab")
                .header("x-gitlab-token", SECRET)
                .header("x-gitlab-event", "Merge Request Hook")
                .body("not json"),
            &ai_review_testkit::Principal::Anonymous,
        )
        .await
        .expect_error(400, "BAD_REQUEST");
    s.app.stop().await;
}

async fn github_pull_request_events_are_signed_and_follow_the_rules(backend: Backend) {
    let s = setup(backend).await;
    let cfg = platform(&s, "github", &s.forge.github_api_url(), GH_TOKEN).await;
    let repo = s
        .forge
        .create_repo(Forge::GitHub, "owner/tool", &[("main.py", "print(1)\n")]);
    seed_project(&s, &cfg, PlatformType::Github, &repo).await;
    let head = s
        .forge
        .push_commit(&repo, "fix", &[("main.py", Some("print(2)\n"))], "fix");
    let n = s
        .forge
        .open_pull_request(&repo, "fix", "main", "Fix", "bob", false);
    let url = hook_url(&s, "github");
    let d = s
        .forge
        .send_github_pull_request_event(&url, SECRET, &repo, n, PrAction::Opened)
        .await;
    assert_eq!(d.status, Some(202), "{}", d.response);
    let review = s
        .app
        .review(&answer(&d)["data"]["reviewId"].as_str().expect("review"))
        .await;
    assert_eq!(review.head_sha.as_str(), head);

    // A wrong signature is 401.
    let d = s
        .forge
        .send_github_pull_request_event(&url, "other-secret", &repo, n, PrAction::Synchronize)
        .await;
    assert_eq!(d.status, Some(401), "{}", d.response);

    for (action, expected) in [(PrAction::Edited, "ignored"), (PrAction::Closed, "ignored")] {
        let d = s
            .forge
            .send_github_pull_request_event(&url, SECRET, &repo, n, action)
            .await;
        assert_eq!(answer(&d)["data"]["status"], expected, "{action:?}");
    }
    // A comment command on the pull request queues a review.
    s.forge
        .send_github_pull_request_event(&url, SECRET, &repo, n, PrAction::Reopened)
        .await;
    let d = s
        .forge
        .send_github_issue_comment_event(&url, SECRET, &repo, n, "/ai-review")
        .await;
    assert_eq!(answer(&d)["data"]["status"], "queued", "{}", d.response);
    let runner = s.app.runner(&s.app.admin, "r1", "").await;
    let claimed = s.app.claim(&runner).await.expect("claim");
    assert_eq!(
        claimed
            .spec
            .clone_credentials
            .map(|c| (c.username, c.password.map(|p| p.expose().to_owned()))),
        Some(("x-access-token".to_owned(), Some(GH_TOKEN.to_owned())))
    );
    s.app.stop().await;
}

async fn refusals_are_recorded_with_their_reasons(backend: Backend) {
    let s = setup(backend).await;
    let cfg = platform(&s, "gitlab", &s.forge.gitlab_url(), GL_TOKEN).await;
    let url = hook_url(&s, "gitlab");
    let admin = s.app.admin.bearer();

    // Not synced.
    let unknown = s
        .forge
        .create_repo(Forge::GitLab, "group/unknown", &[("a", "1\n")]);
    s.forge
        .push_commit(&unknown, "f", &[("a", Some("2\n"))], "c");
    let iid = s
        .forge
        .open_merge_request(&unknown, "f", "main", "t", "alice", false);
    let d = s
        .forge
        .send_gitlab_mr_event(&url, SECRET, &unknown, iid, MrAction::Open)
        .await;
    let a = answer(&d);
    assert_eq!(a["data"]["status"], "refused");
    assert!(
        a["data"]["reason"].as_str().unwrap_or("").contains("sync"),
        "{a}"
    );

    // Auto-review off: refused, but a /ai-review command still queues.
    let repo = s
        .forge
        .create_repo(Forge::GitLab, "group/app", &[("a", "1\n")]);
    let pid = seed_project(&s, &cfg, PlatformType::Gitlab, &repo).await;
    s.forge.push_commit(&repo, "f", &[("a", Some("2\n"))], "c");
    let iid = s
        .forge
        .open_merge_request(&repo, "f", "main", "t", "alice", false);
    s.app
        .send(
            s.app
                .request(reqwest::Method::PATCH, &format!("/api/projects/{pid}"))
                .json(&json!({"autoReview": false})),
            &admin,
        )
        .await
        .expect(200);
    let d = s
        .forge
        .send_gitlab_mr_event(&url, SECRET, &repo, iid, MrAction::Open)
        .await;
    let a = answer(&d);
    assert_eq!(a["data"]["status"], "refused");
    assert!(
        a["data"]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("auto-review is off")
    );
    let d = s
        .forge
        .send_gitlab_note_event(&url, SECRET, &repo, iid, "/ai-review")
        .await;
    assert_eq!(answer(&d)["data"]["status"], "queued", "{}", d.response);

    // Drafts are skipped on webhook events.
    s.app
        .send(
            s.app
                .request(reqwest::Method::PATCH, &format!("/api/projects/{pid}"))
                .json(&json!({"autoReview": true})),
            &admin,
        )
        .await
        .expect(200);
    s.forge
        .push_commit(&repo, "wip", &[("a", Some("3\n"))], "wip");
    let draft = s
        .forge
        .open_merge_request(&repo, "wip", "main", "WIP", "alice", true);
    let d = s
        .forge
        .send_gitlab_mr_event(&url, SECRET, &repo, draft, MrAction::Open)
        .await;
    assert_eq!(answer(&d)["data"]["status"], "ignored", "{}", d.response);

    // Disabled project.
    s.app
        .send(
            s.app
                .request(reqwest::Method::PATCH, &format!("/api/projects/{pid}"))
                .json(&json!({"enabled": false})),
            &admin,
        )
        .await
        .expect(200);
    let d = s
        .forge
        .send_gitlab_mr_event(&url, SECRET, &repo, iid, MrAction::Reopen)
        .await;
    assert!(
        answer(&d)["data"]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("disabled")
    );

    // No AI config resolves.
    s.app
        .send(
            s.app
                .request(reqwest::Method::PATCH, &format!("/api/projects/{pid}"))
                .json(&json!({"enabled": true})),
            &admin,
        )
        .await
        .expect(200);
    let ai: Vec<Value> = s
        .app
        .get("/api/ai-configs", &admin)
        .await
        .expect(200)
        .data()
        .as_array()
        .cloned()
        .unwrap_or_default();
    for c in ai {
        s.app
            .delete(
                &format!("/api/ai-configs/{}", c["id"].as_str().unwrap_or("")),
                &admin,
            )
            .await
            .expect(204);
    }
    s.forge
        .push_commit(&repo, "f", &[("a", Some("4\n"))], "more");
    let d = s
        .forge
        .send_gitlab_mr_event(&url, SECRET, &repo, iid, MrAction::Update)
        .await;
    assert!(
        answer(&d)["data"]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("no AI config"),
        "{}",
        d.response
    );

    // Everything above is listed with its outcome and reason.
    let listed = events(&s).await;
    let outcomes: Vec<&str> = listed
        .iter()
        .filter_map(|e| e["outcome"].as_str())
        .collect();
    assert_eq!(
        outcomes,
        [
            "refused", "refused", "ignored", "queued", "refused", "refused"
        ],
        "{listed:#?}"
    );
    assert!(listed.iter().all(|e| e["platform"] == "gitlab"));
    let refused = s
        .app
        .get("/api/webhook-events?outcome=refused", &admin)
        .await
        .expect(200);
    assert_eq!(refused.body["meta"]["pagination"]["total"], 4);
    s.app.stop().await;
}

async fn sync_pulls_projects_and_keeps_their_settings(backend: Backend) {
    let s = setup(backend).await;
    let admin = s.app.admin.bearer();
    let cfg = platform(&s, "gitlab", &s.forge.gitlab_url(), GL_TOKEN).await;
    for name in ["group/a", "group/b", "other/c"] {
        s.forge.create_repo(Forge::GitLab, name, &[("f", "1\n")]);
    }
    let body = json!({"platformConfigId": cfg});
    let a = s
        .app
        .post("/api/projects/sync/platform", &admin, &body)
        .await
        .expect(200);
    assert_eq!(
        a.data().clone(),
        json!({"synced": 3, "total": 3, "errors": []})
    );
    let list = s.app.get("/api/projects", &admin).await.expect(200);
    let projects = list.data().as_array().cloned().unwrap_or_default();
    assert_eq!(projects.len(), 3);
    let a_id = projects[0]["id"].as_str().expect("id").to_owned();
    assert_eq!(projects[0]["path"], "group/a");
    assert!(
        projects[0]["cloneUrl"]
            .as_str()
            .unwrap_or("")
            .starts_with(&s.forge.gitlab_url())
    );
    s.app
        .send(
            s.app
                .request(reqwest::Method::PATCH, &format!("/api/projects/{a_id}"))
                .json(&json!({"enabled": false, "excludes": ["docs/**"]})),
            &admin,
        )
        .await
        .expect(200);
    let repo = s
        .forge
        .create_repo(Forge::GitLab, "group/d", &[("f", "1\n")]);
    let a = s
        .app
        .post("/api/projects/sync/platform", &admin, &body)
        .await
        .expect(200);
    assert_eq!(
        (a.data()["synced"].as_u64(), a.data()["total"].as_u64()),
        (Some(4), Some(4))
    );
    let kept = s
        .app
        .get(&format!("/api/projects/{a_id}"), &admin)
        .await
        .expect(200);
    assert_eq!(
        (
            kept.data()["enabled"].as_bool(),
            kept.data()["settings"]["excludes"].clone()
        ),
        (Some(false), json!(["docs/**"]))
    );

    // A synced project takes webhooks without seeding.
    s.forge.push_commit(&repo, "x", &[("f", Some("2\n"))], "c");
    let iid = s
        .forge
        .open_merge_request(&repo, "x", "main", "t", "alice", false);
    let d = s
        .forge
        .send_gitlab_mr_event(&hook_url(&s, "gitlab"), SECRET, &repo, iid, MrAction::Open)
        .await;
    assert_eq!(d.status, Some(202), "{}", d.response);

    // Errors say what to do.
    let viewer = s
        .app
        .user("viewer@example.com", ai_review_domain::Role::User, &[])
        .await;
    s.app
        .post("/api/projects/sync/platform", &viewer.bearer(), &body)
        .await
        .expect_error(403, "FORBIDDEN");
    s.app
        .post(
            "/api/projects/sync/platform",
            &admin,
            &json!({"platformConfigId": ConfigId::generate()}),
        )
        .await
        .expect_error(400, "BAD_REQUEST");
    let bad = platform(&s, "github", &s.forge.github_api_url(), "ghp_wrong").await;
    let a = s
        .app
        .post(
            "/api/projects/sync/platform",
            &admin,
            &json!({"platformConfigId": bad}),
        )
        .await
        .expect_error(502, "BAD_GATEWAY");
    assert!(a.error_detail().contains("github"), "{}", a.error_detail());
    s.app.stop().await;
}

async fn manual_triggers_and_new_pushes_make_rounds_and_supersede(backend: Backend) {
    let s = setup(backend).await;
    let admin = s.app.admin.bearer();
    let cfg = platform(&s, "gitlab", &s.forge.gitlab_url(), GL_TOKEN).await;
    let repo = s
        .forge
        .create_repo(Forge::GitLab, "group/app", &[("a.txt", "1\n")]);
    let pid = seed_project(&s, &cfg, PlatformType::Gitlab, &repo).await;
    s.forge
        .push_commit(&repo, "f", &[("a.txt", Some("2\n"))], "one");
    let iid = s
        .forge
        .open_merge_request(&repo, "f", "main", "t", "alice", false);
    s.app
        .send(
            s.app
                .request(reqwest::Method::PATCH, &format!("/api/projects/{pid}"))
                .json(&json!({"autoReview": false})),
            &admin,
        )
        .await
        .expect(200);

    let first = s
        .app
        .post(
            "/api/reviews/trigger-manual-review",
            &admin,
            &json!({"projectId": pid, "mrIid": iid}),
        )
        .await
        .expect(202);
    assert_eq!(first.data()["roundNumber"], 1);
    assert_eq!(first.data()["projectId"].as_str(), Some(pid.as_str()));
    assert_eq!(first.data()["changeNumber"], iid);
    let first_id = first.data()["id"].as_str().expect("id").to_owned();

    // A new push reviewed by a command: round 2 supersedes round 1.
    let head = s
        .forge
        .push_commit(&repo, "f", &[("a.txt", Some("3\n"))], "two");
    let d = s
        .forge
        .send_gitlab_note_event(&hook_url(&s, "gitlab"), SECRET, &repo, iid, "/review")
        .await;
    let second = s
        .app
        .review(&answer(&d)["data"]["reviewId"].as_str().expect("queued"))
        .await;
    assert_eq!(
        (second.round_number, second.head_sha.as_str()),
        (2, head.as_str())
    );
    let old = s.app.review(&first_id).await;
    assert_eq!(old.status.as_str(), "cancelled");
    assert!(
        old.task
            .events
            .iter()
            .any(|e| e.detail.contains("superseded by review")),
        "{:?}",
        old.task.events
    );
    let listed = s
        .app
        .get(&format!("/api/reviews?projectId={pid}"), &admin)
        .await
        .expect(200);
    assert_eq!(listed.body["meta"]["pagination"]["total"], 2);
    assert_eq!(listed.data()["stats"]["cancelled"], 1);

    // Refusals and forge failures say why.
    let viewer = s
        .app
        .user("viewer@example.com", ai_review_domain::Role::User, &[])
        .await;
    s.app
        .post(
            "/api/reviews/trigger-manual-review",
            &viewer.bearer(),
            &json!({"projectId": pid, "mrIid": iid}),
        )
        .await
        .expect_error(403, "FORBIDDEN");
    s.app
        .post(
            "/api/reviews/trigger-manual-review",
            &admin,
            &json!({"projectId": ProjectId::generate(), "mrIid": iid}),
        )
        .await
        .expect_error(404, "NOT_FOUND");
    let missing = s
        .app
        .post(
            "/api/reviews/trigger-manual-review",
            &admin,
            &json!({"projectId": pid, "mrIid": 999, "sendToPlatform": false}),
        )
        .await
        .expect_error(502, "BAD_GATEWAY");
    assert!(
        missing.error_detail().contains("999"),
        "{}",
        missing.error_detail()
    );
    s.app
        .send(
            s.app
                .request(reqwest::Method::PATCH, &format!("/api/projects/{pid}"))
                .json(&json!({"enabled": false})),
            &admin,
        )
        .await
        .expect(200);
    let refused = s
        .app
        .post(
            "/api/reviews/trigger-manual-review",
            &admin,
            &json!({"projectId": pid, "mrIid": iid}),
        )
        .await
        .expect_error(400, "BAD_REQUEST");
    assert!(refused.error_detail().contains("disabled"));
    s.app.stop().await;
}

fn finding(file: &str, line: u64, severity: &str, fp: &str, msg: &str) -> Value {
    json!({"file": file, "line": line, "endLine": line, "severity": severity,
           "category": "bug", "ruleId": "model/bug", "confidence": 0.9,
           "message": msg, "fingerprint": fp, "source": "model"})
}

fn output(base: &str, head: &str, findings: Vec<Value>) -> Value {
    json!({
        "version": 1, "kind": "review", "baseSha": base, "headSha": head,
        "files": [{"path": "main.py", "status": "modified", "additions": 2, "deletions": 1,
                   "binary": false, "reviewStatus": "reviewed", "reviewedLines": 3}],
        "totals": {"files": 1, "additions": 2, "deletions": 1},
        "findings": findings,
        "summary": "Two small problems.",
        "assessment": "request_changes",
        "rating": 2,
        "ai": {"status": "completed", "chunks": 1},
        "unanchored": [finding("main.py", 0, "info", "u1", "Consider a docstring.")],
        "reviewedLines": 3,
    })
}

async fn finish(
    s: &Setup,
    runner: &ai_review_protocol::client::RunnerClient,
    findings: Vec<Value>,
) -> Option<String> {
    let t = s.app.claim(runner).await.expect("claim");
    let out = output(t.spec.base_sha.as_str(), t.spec.head_sha.as_str(), findings);
    runner
        .submit_result(
            &t.task_id,
            t.attempt,
            ai_review_domain::TaskOutcome::Succeeded,
            None,
            false,
            Some(out),
        )
        .await
        .expect("result");
    t.spec.since_sha.map(|s| s.to_string())
}

async fn results_are_pushed_back_once_per_finding_across_rounds(backend: Backend) {
    use ai_review_server::pushback::run::push_once;
    let s = setup(backend).await;
    let cfg = platform(&s, "github", &s.forge.github_api_url(), GH_TOKEN).await;
    let repo = s.forge.create_repo(
        Forge::GitHub,
        "owner/tool",
        &[("main.py", "a = 1\nb = 2\nc = 3\n")],
    );
    seed_project(&s, &cfg, PlatformType::Github, &repo).await;
    let head1 = s.forge.push_commit(
        &repo,
        "fix",
        &[("main.py", Some("a = 10\nb = 2\nc = 30\n"))],
        "one",
    );
    let n = s
        .forge
        .open_pull_request(&repo, "fix", "main", "Fix", "bob", false);
    let url = hook_url(&s, "github");
    let runner = s.app.runner(&s.app.admin, "r1", "").await;
    let d = s
        .forge
        .send_github_pull_request_event(&url, SECRET, &repo, n, PrAction::Opened)
        .await;
    let review1 = answer(&d)["data"]["reviewId"]
        .as_str()
        .expect("queued")
        .to_owned();
    // Nothing is posted while the review runs.
    assert_eq!(push_once(&s.app.server.state).await.sent, 0);
    finish(
        &s,
        &runner,
        vec![finding("main.py", 1, "error", "fp1", "a is wrong")],
    )
    .await;

    // The forge keeps failing past the client's own retries: the job is
    // retried later, nothing lost.
    for _ in 0..4 {
        s.forge.fail(
            "POST /github/api/v3/repos/*/*/pulls/*/reviews",
            ai_review_fake_forge::Failure::Status(502),
        );
    }
    let pass = push_once(&s.app.server.state).await;
    assert_eq!((pass.sent, pass.retried), (0, 1), "{pass:?}");
    let waiting = s.app.review(&review1).await.push.expect("push state");
    assert_eq!(waiting.state, "pending");
    assert!(
        waiting.error.as_deref().unwrap_or("").contains("502"),
        "{waiting:?}"
    );
    s.app.advance(std::time::Duration::from_secs(600));
    let pass = push_once(&s.app.server.state).await;
    assert_eq!(pass.sent, 1, "{pass:?}");
    let reviews = s.forge.reviews();
    let comments: Vec<_> = reviews.iter().flat_map(|r| r.comments.clone()).collect();
    assert_eq!(comments.len(), 1, "{reviews:#?}");
    assert_eq!(
        (comments[0].path.as_str(), comments[0].line),
        ("main.py", 1)
    );
    assert!(comments[0].body.contains("a is wrong"));
    let summaries = s.forge.issue_comments();
    assert_eq!(summaries.len(), 1);
    assert!(summaries[0].body.contains("ai-review:summary"));
    assert!(
        summaries[0].body.contains("Consider a docstring"),
        "unanchored findings go to the summary"
    );
    let statuses = s.forge.statuses();
    assert_eq!(
        statuses
            .last()
            .map(|st| (st.sha.as_str(), st.state.as_str())),
        Some((head1.as_str(), "failure"))
    );
    assert!(
        s.forge.validation_failures().is_empty(),
        "{:?}",
        s.forge.validation_failures()
    );
    let sent = s.app.review(&review1).await;
    assert_eq!(sent.status.as_str(), "completed");
    let push = sent.push.expect("push state");
    assert_eq!((push.state.as_str(), push.attempts), ("sent", 2));

    // Round 2: the same finding is not posted again; the summary is updated.
    let head2 = s.forge.push_commit(
        &repo,
        "fix",
        &[("main.py", Some("a = 10\nb = 20\nc = 30\n"))],
        "two",
    );
    let d = s
        .forge
        .send_github_pull_request_event(&url, SECRET, &repo, n, PrAction::Synchronize)
        .await;
    assert_eq!(answer(&d)["data"]["status"], "queued", "{}", d.response);
    let since = finish(
        &s,
        &runner,
        vec![
            finding("main.py", 1, "error", "fp1", "a is wrong"),
            finding("main.py", 2, "warning", "fp2", "b too"),
        ],
    )
    .await;
    assert_eq!(
        since.as_deref(),
        Some(head1.as_str()),
        "round 2 reviews what changed since round 1"
    );
    // The same head again (e.g. a title edit) is not reviewed twice.
    let d = s
        .forge
        .send_github_pull_request_event(&url, SECRET, &repo, n, PrAction::Synchronize)
        .await;
    assert_eq!(answer(&d)["data"]["status"], "ignored", "{}", d.response);
    assert_eq!(push_once(&s.app.server.state).await.sent, 1);
    let comments: Vec<_> = s
        .forge
        .reviews()
        .iter()
        .flat_map(|r| r.comments.clone())
        .collect();
    assert_eq!(comments.len(), 2, "fp1 once, fp2 once: {comments:#?}");
    assert_eq!(
        (comments[1].path.as_str(), comments[1].line),
        ("main.py", 2)
    );
    let summaries = s.forge.issue_comments();
    assert_eq!(summaries.len(), 1, "updated, not added");
    assert!(
        summaries[0].body.contains("round 2"),
        "{}",
        summaries[0].body
    );
    assert_eq!(
        s.forge.statuses().last().map(|st| st.sha.clone()),
        Some(head2.clone())
    );

    // sendToPlatform=false keeps the results in the dashboard only.
    let quiet = s
        .app
        .post(
            "/api/reviews/trigger-manual-review",
            &s.app.admin.bearer(),
            &json!({"projectId": s.app.review(&review1).await.project_id, "mrIid": n, "sendToPlatform": false}),
        )
        .await
        .expect(202);
    assert!(quiet.data()["id"].is_string());
    finish(
        &s,
        &runner,
        vec![finding("main.py", 3, "error", "fp3", "c")],
    )
    .await;
    assert_eq!(push_once(&s.app.server.state).await, Default::default());
    assert_eq!(s.forge.issue_comments().len(), 1);
    s.app.stop().await;
}

async fn webhook_checks_ask_the_forge(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.public_url = Some("https://ai-review.example.com".into());
    })
    .await;
    let forge = FakeForge::start(GL_TOKEN, GH_TOKEN).await;
    let s = Setup { app, forge };
    let admin = s.app.admin.bearer();
    let cfg = platform(&s, "gitlab", &s.forge.gitlab_url(), GL_TOKEN).await;
    let hooked = s
        .forge
        .create_repo(Forge::GitLab, "group/hooked", &[("a", "1\n")]);
    let bare = s
        .forge
        .create_repo(Forge::GitLab, "group/bare", &[("a", "1\n")]);
    s.forge.add_hook(
        &hooked,
        "https://ai-review.example.com/api/webhook/gitlab",
        &["merge_requests_events", "note_events"],
    );
    let with_hook = seed_project(&s, &cfg, PlatformType::Gitlab, &hooked).await;
    let without = seed_project(&s, &cfg, PlatformType::Gitlab, &bare).await;
    let a = s
        .app
        .post(
            &format!("/api/projects/{with_hook}/webhook/check"),
            &admin,
            &json!({}),
        )
        .await
        .expect(200);
    assert_eq!(
        a.data()["webhookUrl"],
        "https://ai-review.example.com/api/webhook/gitlab"
    );
    let b = s
        .app
        .post(
            &format!("/api/projects/{without}/webhook/check"),
            &admin,
            &json!({}),
        )
        .await
        .expect(200);
    assert_eq!(b.data()["status"], "not_configured");
    let recorded = s
        .app
        .get(&format!("/api/projects/{with_hook}"), &admin)
        .await
        .expect(200);
    assert_eq!(recorded.data()["webhookStatus"], a.data()["status"]);
    assert_ne!(a.data()["status"], "not_configured");
    s.app.stop().await;
}

async fn opened_merge_requests_are_assigned_as_configured(backend: Backend) {
    let s = setup(backend).await;
    let admin = s.app.admin.bearer();
    let cfg = platform(&s, "gitlab", &s.forge.gitlab_url(), GL_TOKEN).await;
    let repo = s
        .forge
        .create_repo(Forge::GitLab, "group/app", &[("a", "1\n")]);
    seed_project(&s, &cfg, PlatformType::Gitlab, &repo).await;
    let carol = s.forge.user_id("carol");
    s.app
        .send(
            s.app
                .request(reqwest::Method::PUT, "/api/settings/global")
                .json(&json!({
                    "autoAssignAuthor": true, "defaultReviewerIds": [carol.to_string()],
                })),
            &admin,
        )
        .await
        .expect(200);
    s.forge.push_commit(&repo, "f", &[("a", Some("2\n"))], "c");
    let iid = s
        .forge
        .open_merge_request(&repo, "f", "main", "t", "alice", false);
    let url = hook_url(&s, "gitlab");
    let d = s
        .forge
        .send_gitlab_mr_event(&url, SECRET, &repo, iid, MrAction::Open)
        .await;
    assert_eq!(answer(&d)["data"]["status"], "queued", "{}", d.response);
    let updates = s.forge.mr_updates();
    let alice = s.forge.user_id("alice");
    assert!(
        updates.iter().any(|u| u.iid == iid
            && u.assignee_ids
                .as_deref()
                .is_some_and(|a| a.contains(&alice))
            && u.reviewer_ids
                .as_deref()
                .is_some_and(|r| r.contains(&carol))),
        "{updates:?}"
    );
    // An update (new push) does not assign again.
    let before = s.forge.mr_updates().len();
    s.forge.push_commit(&repo, "f", &[("a", Some("3\n"))], "c2");
    s.forge
        .send_gitlab_mr_event(&url, SECRET, &repo, iid, MrAction::Update)
        .await;
    assert_eq!(s.forge.mr_updates().len(), before);

    // GitHub takes logins: the author and the default reviewers.
    s.app
        .send(
            s.app
                .request(reqwest::Method::PUT, "/api/settings/global")
                .json(&json!({
                    "autoAssignAuthor": true, "defaultReviewerIds": ["carol"],
                })),
            &admin,
        )
        .await
        .expect(200);
    let gh = platform(&s, "github", &s.forge.github_api_url(), GH_TOKEN).await;
    let tool = s
        .forge
        .create_repo(Forge::GitHub, "owner/tool", &[("m.py", "1\n")]);
    seed_project(&s, &gh, PlatformType::Github, &tool).await;
    s.forge
        .push_commit(&tool, "fix", &[("m.py", Some("2\n"))], "fix");
    let n = s
        .forge
        .open_pull_request(&tool, "fix", "main", "Fix", "bob", false);
    let d = s
        .forge
        .send_github_pull_request_event(&hook_url(&s, "github"), SECRET, &tool, n, PrAction::Opened)
        .await;
    assert_eq!(answer(&d)["data"]["status"], "queued", "{}", d.response);
    let assigned = s.forge.assignments();
    assert!(
        assigned
            .iter()
            .any(|a| a.number == n && a.assignees == ["bob"]),
        "{assigned:?}"
    );
    assert!(
        assigned
            .iter()
            .any(|a| a.number == n && a.reviewers == ["carol"]),
        "{assigned:?}"
    );
    assert!(
        s.forge.validation_failures().is_empty(),
        "{:?}",
        s.forge.validation_failures()
    );
    s.app.stop().await;
}
