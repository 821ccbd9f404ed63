//! GitLab and GitHub end to end: the fake forge (real repositories over
//! smart HTTP with basic auth, signed webhooks, recorded API objects), the
//! real server (SQLite), a real runner with the real Docker executor image
//! and the fake model server. Projects come from a real platform sync,
//! reviews from webhooks, results go back through the push-back worker.
//! Needs the executor image (`scripts/build-images.sh`, run by `.ci/run`).

use ai_review_domain::{ReviewStatus, TaskState};
use ai_review_fake_forge::{Delivery, FakeForge, Forge, MrAction, PrAction, Repo};
use ai_review_fake_llm::{FakeLlm, Gate, Reply};
use ai_review_protocol::api::ReviewView;
use ai_review_runner::agent::Agent;
use ai_review_runner::config::RunnerConfig;
use ai_review_runner::docker::DockerEngine;
use ai_review_server::pushback::run::push_once;
use ai_review_testkit::docker::{containers_of, executor_image};
use ai_review_testkit::{Backend, TestApp};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const GL_TOKEN: &str = "glpat-fake-forge-token-e2e1";
const GH_TOKEN: &str = "ghp_fakeforgetokene2e00000000000000000001";
const SECRET: &str = "webhook-secret-e2e";
const MODEL_KEY: &str = "sk-forge-e2e-model-key-0123456789";
const RUNNER: &str = "forge-e2e";
const MARKER: &str = "<!-- ai-review:summary -->";
const MESSAGE: &str = "eval() on user input runs arbitrary code: parse the number instead.";
/// How long one review may take through clone, container and model.
const REVIEW_TIMEOUT: Duration = Duration::from_secs(180);

/// `app.py` on `main`; every branch state below adds line 2.
const BASE: &str = "x = 1\ny = 2\nz = 3\n";
const ROUND1: &str = "x = 1\nv = eval(input())\ny = 2\nz = 3\n";
const ROUND2: &str = "x = 1\nv = eval(input())\ny = 2\nz = 30\n";
const ROUND3: &str = "x = 10\nv = eval(input())\ny = 2\nz = 30\n";
const ROUND4: &str = "x = 10\nv = eval(input())\ny = 20\nz = 30\n";

/// The model's answer: one finding on the added line 2 of `app.py`.
fn model_answer() -> Reply {
    Reply::content(
        json!({
            "summary": "Reads a value with eval().",
            "assessment": "request_changes",
            "rating": 2,
            "findings": [{
                "file": "app.py", "startLine": 2, "endLine": 2,
                "severity": "warning", "category": "bug", "confidence": 0.9,
                "message": MESSAGE,
            }],
        })
        .to_string(),
    )
}

struct Env {
    app: TestApp,
    forge: FakeForge,
    llm: FakeLlm,
    workspaces: tempfile::TempDir,
}

impl Env {
    fn hook(&self, platform: &str) -> String {
        format!("{}/api/webhook/{platform}", self.app.url())
    }

    async fn platform(&self, t: &str, base_url: &str, token: &str) -> String {
        self.app
            .post(
                "/api/platform-configs",
                &self.app.admin.bearer(),
                &json!({"name": t, "platformType": t, "baseUrl": base_url,
                        "accessToken": token, "webhookSecret": SECRET}),
            )
            .await
            .expect(201)
            .data()["id"]
            .as_str()
            .expect("platform config id")
            .to_owned()
    }

    async fn sync(&self, config: &str) {
        let a = self
            .app
            .post(
                "/api/projects/sync/platform",
                &self.app.admin.bearer(),
                &json!({"platformConfigId": config}),
            )
            .await
            .expect(200);
        assert_eq!(
            a.data().clone(),
            json!({"synced": 1, "total": 1, "errors": []}),
            "sync of {config}"
        );
    }

    async fn review_count(&self) -> u64 {
        self.app
            .get("/api/reviews", &self.app.admin.bearer())
            .await
            .expect(200)
            .body["meta"]["pagination"]["total"]
            .as_u64()
            .unwrap_or(0)
    }

    async fn logs(&self, id: &str) -> String {
        self.app
            .get(&format!("/api/reviews/{id}/logs"), &self.app.admin.bearer())
            .await
            .body
            .to_string()
    }

    /// Waits for the review to end and insists it completed, showing the
    /// failure reason, events and task log otherwise.
    async fn completed(&self, id: &str) -> ReviewView {
        let done = self
            .app
            .wait_review(&id, REVIEW_TIMEOUT, |r| {
                r.task.state.is_terminal() && r.status != ReviewStatus::Pending
            })
            .await;
        if done.task.state != TaskState::Completed {
            panic!(
                "review {id} ended {:?} (status {:?}), failureReason {:?}\nevents: {:#?}\nlog: {}",
                done.task.state,
                done.status,
                done.task.failure_reason,
                done.task.events,
                self.logs(id).await
            );
        }
        assert_eq!(done.status, ReviewStatus::Completed, "{id}");
        done
    }
}

fn answer(d: &Delivery) -> Value {
    serde_json::from_str(&d.response).unwrap_or(Value::Null)
}

/// The review a webhook delivery queued.
fn queued(d: &Delivery) -> String {
    assert_eq!(d.status, Some(202), "{}", d.response);
    let a = answer(d);
    assert_eq!(a["data"]["status"], "queued", "{a}");
    a["data"]["reviewId"]
        .as_str()
        .expect("queued review id")
        .to_owned()
}

fn runner_config(env: &Env) -> RunnerConfig {
    let map: HashMap<String, String> = [
        ("RUNNER_SERVER_URL", env.app.url()),
        ("RUNNER_TOKEN", env.app.admin.key.clone()),
        ("RUNNER_NAME", RUNNER.to_owned()),
        ("DOCKER_EXECUTOR_IMAGE", executor_image()),
        (
            "DOCKER_WORKSPACE_BASE",
            env.workspaces.path().display().to_string(),
        ),
        ("RUNNER_POLL_TIMEOUT_MS", "2000".into()),
        ("RUNNER_POLL_INTERVAL_MS", "100".into()),
        ("RUNNER_HEARTBEAT_INTERVAL_MS", "200".into()),
        ("DOCKER_POOL_SIZE", "0".into()),
        ("DOCKER_MEMORY_LIMIT", "256m".into()),
        ("DOCKER_TIMEOUT_SECONDS", "120".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    RunnerConfig::from_map(&map).expect("runner config")
}

/// Notes carrying the summary marker on the merge request.
fn summary_notes(forge: &FakeForge, iid: u64) -> Vec<ai_review_fake_forge::Note> {
    forge
        .notes()
        .into_iter()
        .filter(|n| n.mr_iid == iid && n.discussion_id.is_none() && n.body.contains(MARKER))
        .collect()
}

/// Discussions on `app.py` new line 2 carrying the model's message.
fn finding_discussions(forge: &FakeForge, iid: u64) -> Vec<ai_review_fake_forge::Discussion> {
    forge
        .discussions()
        .into_iter()
        .filter(|d| {
            d.mr_iid == iid
                && d.position["new_path"] == "app.py"
                && d.position["new_line"] == 2
                && d.body.contains(MESSAGE)
        })
        .collect()
}

fn assert_valid(forge: &FakeForge) {
    let failures = forge.validation_failures();
    assert!(failures.is_empty(), "the forge refused: {failures:#?}");
}

async fn gitlab_flow(env: &Env, repo: &Repo) {
    let url = env.hook("gitlab");

    // Round 1: an MR adding line 2, reviewed from its `open` webhook.
    let head1 = env
        .forge
        .push_commit(repo, "feature", &[("app.py", Some(ROUND1))], "read v");
    let iid = env
        .forge
        .open_merge_request(repo, "feature", "main", "Read v", "alice", false);
    let d = env
        .forge
        .send_gitlab_mr_event(&url, SECRET, repo, iid, MrAction::Open)
        .await;
    let round1 = queued(&d);
    let done = env.completed(&round1).await;
    assert_eq!(done.head_sha.as_str(), head1);
    assert_eq!(done.round_number, 1);
    let out = done.task.result.clone().expect("round 1 result");
    assert_eq!(out["ai"]["status"], "completed", "{out}");
    let log = env.logs(&round1).await;
    assert!(log.contains("ai-review-executor: started"), "{log}");
    assert!(
        !log.contains(GL_TOKEN),
        "the clone token never reaches the log"
    );
    assert!(
        env.forge.requests().iter().any(|r| r.git
            && r.path.contains("group/app.git")
            && r.status == Some(200)
            && r.header("authorization").is_some()),
        "the runner cloned over smart HTTP with credentials"
    );

    // A redelivery creates nothing.
    let before = env.review_count().await;
    let again = env.forge.redeliver(&d).await;
    assert_eq!(again.status, Some(200), "{}", again.response);
    assert_eq!(answer(&again)["data"]["status"], "duplicate");
    assert_eq!(env.review_count().await, before);

    let pass = push_once(&env.app.server.state).await;
    assert_eq!(pass.sent, 1, "{pass:?}");
    assert_valid(&env.forge);
    assert_eq!(
        finding_discussions(&env.forge, iid).len(),
        1,
        "one discussion on app.py new_line 2: {:#?}",
        env.forge.discussions()
    );
    let summaries = summary_notes(&env.forge, iid);
    assert_eq!(summaries.len(), 1, "{:#?}", env.forge.notes());
    assert!(
        env.forge
            .statuses()
            .iter()
            .any(|st| st.sha == head1 && st.context == "ai-review"),
        "a GitLab commit status on the reviewed head: {:#?}",
        env.forge.statuses()
    );

    // Round 2: another line changes; the finding (same line content) is
    // not posted again and the summary is updated in place.
    let head2 = env
        .forge
        .push_commit(repo, "feature", &[("app.py", Some(ROUND2))], "z");
    let round2 = queued(
        &env.forge
            .send_gitlab_mr_event(&url, SECRET, repo, iid, MrAction::Update)
            .await,
    );
    let done = env.completed(&round2).await;
    assert_eq!(
        (done.round_number, done.head_sha.as_str()),
        (2, head2.as_str())
    );
    let pass = push_once(&env.app.server.state).await;
    assert_eq!(pass.sent, 1, "{pass:?}");
    assert_valid(&env.forge);
    assert_eq!(
        finding_discussions(&env.forge, iid).len(),
        1,
        "no second discussion for the same finding: {:#?}",
        env.forge.discussions()
    );
    let summaries = summary_notes(&env.forge, iid);
    assert_eq!(summaries.len(), 1, "updated, not added: {summaries:#?}");
    assert!(
        !summaries[0].previous_bodies.is_empty(),
        "the summary was edited: {summaries:#?}"
    );

    // Round 3 is held at the model; a new push supersedes it.
    let gate = Gate::new();
    env.llm.push(Reply::gated(&gate, model_answer()));
    let calls = env.llm.requests().len();
    env.forge
        .push_commit(repo, "feature", &[("app.py", Some(ROUND3))], "x");
    let round3 = queued(
        &env.forge
            .send_gitlab_mr_event(&url, SECRET, repo, iid, MrAction::Update)
            .await,
    );
    let seen = env
        .llm
        .wait_for_requests(calls + 1, REVIEW_TIMEOUT)
        .await
        .len();
    assert!(
        seen > calls,
        "round 3 reached the model; review: {:?}\nlog: {}",
        env.app.review(&round3).await.task,
        env.logs(&round3).await
    );
    let head4 = env
        .forge
        .push_commit(repo, "feature", &[("app.py", Some(ROUND4))], "y");
    let round4 = queued(
        &env.forge
            .send_gitlab_mr_event(&url, SECRET, repo, iid, MrAction::Update)
            .await,
    );
    // `GET /api/reviews/:id` reads the review and its task one after the
    // other: wait until both show the end, so a read between the two
    // cannot pass for the outcome.
    let old = env
        .app
        .wait_review(&round3, REVIEW_TIMEOUT, |r| {
            r.task.state.is_terminal() && r.status != ReviewStatus::Pending
        })
        .await;
    assert_eq!(
        (old.task.state, old.status),
        (TaskState::Cancelled, ReviewStatus::Cancelled),
        "round 3 superseded: {:#?}",
        old.task
    );
    assert!(
        old.task
            .events
            .iter()
            .any(|e| e.detail.contains("superseded")),
        "{:#?}",
        old.task.events
    );
    gate.open();
    let done = env.completed(&round4).await;
    assert_eq!(
        (done.round_number, done.head_sha.as_str()),
        (4, head4.as_str())
    );
    push_once(&env.app.server.state).await;
    assert_valid(&env.forge);
    assert_eq!(finding_discussions(&env.forge, iid).len(), 1);
    assert_eq!(summary_notes(&env.forge, iid).len(), 1);
}

async fn github_flow(env: &Env, repo: &Repo) {
    let head = env
        .forge
        .push_commit(repo, "fix", &[("app.py", Some(ROUND1))], "read v");
    let n = env
        .forge
        .open_pull_request(repo, "fix", "main", "Read v", "bob", false);
    let id = queued(
        &env.forge
            .send_github_pull_request_event(&env.hook("github"), SECRET, repo, n, PrAction::Opened)
            .await,
    );
    let done = env.completed(&id).await;
    assert_eq!(done.head_sha.as_str(), head);
    let pass = push_once(&env.app.server.state).await;
    assert_eq!(pass.sent, 1, "{pass:?}");
    assert_valid(&env.forge);
    let reviews: Vec<_> = env
        .forge
        .reviews()
        .into_iter()
        .filter(|r| r.number == n)
        .collect();
    assert_eq!(reviews.len(), 1, "{reviews:#?}");
    assert_eq!(reviews[0].commit_id, head);
    let comments = &reviews[0].comments;
    assert_eq!(comments.len(), 1, "{comments:#?}");
    assert_eq!(
        (
            comments[0].path.as_str(),
            comments[0].line,
            comments[0].side.as_str()
        ),
        ("app.py", 2, "RIGHT")
    );
    assert!(comments[0].body.contains(MESSAGE), "{}", comments[0].body);
    let summaries: Vec<_> = env
        .forge
        .issue_comments()
        .into_iter()
        .filter(|c| c.number == n && c.body.contains(MARKER))
        .collect();
    assert_eq!(summaries.len(), 1, "{summaries:#?}");
    assert!(
        env.forge.statuses().iter().any(|s| s.sha == head),
        "a commit status on the head: {:#?}",
        env.forge.statuses()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gitlab_and_github_changes_are_reviewed_in_docker_and_pushed_back() {
    let env = Env {
        app: TestApp::spawn(Backend::Sqlite).await,
        forge: FakeForge::start(GL_TOKEN, GH_TOKEN).await,
        llm: FakeLlm::start(MODEL_KEY).await,
        workspaces: tempfile::tempdir().expect("tempdir"),
    };
    env.llm.set_default(|_| model_answer());
    env.app
        .ai_config(&json!({
            "name": "fake-openai", "provider": "openai", "baseUrl": env.llm.base_url(),
            "model": "gpt-4o-mini", "apiKey": MODEL_KEY, "isDefault": true,
            "timeoutMs": 60_000, "tokenBudget": 200_000,
        }))
        .await;
    let gl = env
        .platform("gitlab", &env.forge.gitlab_url(), GL_TOKEN)
        .await;
    let gh = env
        .platform("github", &env.forge.github_api_url(), GH_TOKEN)
        .await;
    let gl_repo = env
        .forge
        .create_repo(Forge::GitLab, "group/app", &[("app.py", BASE)]);
    let gh_repo = env
        .forge
        .create_repo(Forge::GitHub, "owner/tool", &[("app.py", BASE)]);
    env.sync(&gl).await;
    env.sync(&gh).await;

    let cfg = runner_config(&env);
    let engine = DockerEngine::connect(&cfg.docker_host)
        .await
        .expect("docker");
    let stop = CancellationToken::new();
    let runner = tokio::spawn(Agent::run(cfg, Arc::new(engine), stop.clone()));

    gitlab_flow(&env, &gl_repo).await;
    github_flow(&env, &gh_repo).await;

    stop.cancel();
    runner
        .await
        .expect("join runner")
        .expect("runner exits cleanly");
    assert!(
        containers_of(RUNNER).is_empty(),
        "containers left: {:?}",
        containers_of(RUNNER)
    );
    env.app.stop().await;
}
