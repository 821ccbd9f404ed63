//! The runner's model gateway wired into task execution, against the
//! in-memory engine: a stand-in executor reads the task file and calls the
//! gateway on the workspace socket, as the real one does in its container.
//! A real server (the AI config created through its API, the key sealed at
//! rest and opened in the claim), a real git server, the fake model server.

use ai_review_domain::{Permission, Role, TaskState};
use ai_review_fake_llm::FakeLlm;
use ai_review_runner::agent::Agent;
use ai_review_runner::config::RunnerConfig;
use ai_review_runner::fake::{Act, Behaviour, FakeEngine};
use ai_review_testkit::git::GitServer;
use ai_review_testkit::{Backend, TestApp, TestUser};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const KEY: &str = "sk-fake-engine-0123456789abcdef";

struct Env {
    app: TestApp,
    user: TestUser,
    _git: GitServer,
    url: String,
    base: String,
    head: String,
    ws: tempfile::TempDir,
    llm: FakeLlm,
}

async fn env() -> Env {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let user = app
        .user("model@example.com", Role::User, &[Permission::ReviewCreate])
        .await;
    let git = GitServer::start();
    let repo = git.repo("r");
    let base = repo.commit("base", &[("a.txt", "1\n")]);
    let head = repo.commit("head", &[("a.txt", "2\n")]);
    Env {
        app,
        user,
        url: repo.url.clone(),
        _git: git,
        base,
        head,
        ws: tempfile::tempdir().expect("tempdir"),
        llm: FakeLlm::start(KEY).await,
    }
}

fn cfg(e: &Env) -> RunnerConfig {
    let m: HashMap<String, String> = [
        ("RUNNER_SERVER_URL", e.app.url()),
        ("RUNNER_TOKEN", e.user.key.clone()),
        ("RUNNER_NAME", "model-runner".to_owned()),
        ("DOCKER_EXECUTOR_IMAGE", "fake:latest".to_owned()),
        ("DOCKER_WORKSPACE_BASE", e.ws.path().display().to_string()),
        ("RUNNER_POLL_TIMEOUT_MS", "1000".to_owned()),
        ("RUNNER_POLL_INTERVAL_MS", "50".to_owned()),
        ("RUNNER_HEARTBEAT_INTERVAL_MS", "100".to_owned()),
        ("DOCKER_POOL_SIZE", "0".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    RunnerConfig::from_map(&m).expect("config")
}

async fn ai_config(e: &Env, provider: &str) -> String {
    e.app
        .ai_config(&json!({
            "name": format!("fake-{provider}"),
            "provider": provider,
            "baseUrl": e.llm.base_url(),
            "model": "gpt-4o-mini",
            "apiKey": KEY,
            "tokenBudget": 50_000,
            "maxOutputTokens": 1000,
            "timeoutMs": 5000,
        }))
        .await
}

/// What the stand-in executor saw, returned as its "result".
fn executor() -> FakeEngine {
    FakeEngine::new(|_| {
        Behaviour::Act(Act(Arc::new(|ws: PathBuf| {
            Box::pin(async move {
                let task = std::fs::read_to_string(ws.join("task.json")).unwrap_or_default();
                let socket = ws.join("model.sock");
                let mode = {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::metadata(&socket).map_or(0, |m| m.permissions().mode() & 0o777)
                };
                let listing: Vec<String> = std::fs::read_dir(&ws)
                    .map(|rd| {
                        rd.flatten()
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                let answer = call(&socket).await;
                Behaviour::Exit {
                    code: 0,
                    stdout: json!({
                        "version": 1, "kind": "review", "task": task, "socketMode": mode,
                        "listing": listing, "answer": answer, "usage": {"calls": 99},
                    })
                    .to_string(),
                    stderr: String::new(),
                }
            })
        })))
    })
}

async fn call(socket: &Path) -> Value {
    let http = reqwest::Client::builder()
        .unix_socket(socket)
        .build()
        .expect("client");
    let body = json!({
        "messages": [
            {"role": "system", "content": "Answer in JSON."},
            {"role": "user", "content": "the diff"},
        ],
        "json": true,
    });
    match http.post("http://gateway/v1/chat").json(&body).send().await {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(e) => json!({"error": e.to_string()}),
    }
}

fn files_under(p: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            if e.path().is_dir() {
                out.extend(files_under(&e.path()));
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_executor_gets_model_settings_and_a_gateway_but_never_the_key() {
    let e = env().await;
    let ai = ai_config(&e, "openai").await;
    let engine = executor();
    let stop = CancellationToken::new();
    let run = tokio::spawn(Agent::run(cfg(&e), Arc::new(engine.clone()), stop.clone()));
    let review = e
        .app
        .enqueue_change_with(
            &e.user,
            &e.url,
            &e.base,
            &e.head,
            &json!({"aiConfigId": ai, "excludes": ["vendor/**"]}),
        )
        .await;
    let done = e
        .app
        .wait_review(&review.id, Duration::from_secs(20), |r| {
            r.task.state.is_terminal()
        })
        .await;
    stop.cancel();
    run.await.expect("join").expect("clean exit");
    assert_eq!(
        done.task.state,
        TaskState::Completed,
        "{:?}",
        done.task.failure_reason
    );
    let out = done.task.result.clone().expect("result");

    let task_text = out["task"].as_str().unwrap_or("");
    assert!(
        !task_text.contains(KEY),
        "the key never reaches the task file"
    );
    let task: Value = serde_json::from_str(task_text).expect("task.json");
    assert_eq!(
        task["model"],
        json!({
            "provider": "openai", "model": "gpt-4o-mini", "tokenBudget": 50_000,
            "maxOutputTokens": 1000, "maxInputTokensPerCall": 24_000,
        })
    );
    assert_eq!(task["review"]["excludes"], json!(["vendor/**"]));
    assert_eq!(task["review"]["repository"], "r");
    assert_eq!(task["review"]["branch"], "main");
    assert_eq!(task["review"]["title"], "change");
    assert_eq!(out["socketMode"], 0o666);
    assert!(
        out["listing"]
            .as_array()
            .is_some_and(|l| l.contains(&json!("model.sock"))),
        "{out}"
    );

    assert_eq!(
        out["answer"]["content"],
        ai_review_fake_llm::VALID_REVIEW,
        "{out}"
    );
    let seen = e.llm.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(
        seen[0].json.as_ref().map(|b| b["response_format"].clone()),
        Some(json!({"type": "json_object"}))
    );

    let usage = &out["usage"];
    assert_eq!(
        usage["calls"], 1,
        "the gateway's usage replaces the executor's"
    );
    assert_eq!(usage["provider"], "openai");
    assert_eq!(usage["tokenBudget"], 50_000);
    assert!(usage["billedInputTokens"].as_u64().is_some_and(|n| n > 0));
    assert!(usage["estimatedCostUsd"].as_f64().is_some());

    let logs = e
        .app
        .get(
            &format!("/api/reviews/{}/logs", review.id),
            &e.user.bearer(),
        )
        .await
        .expect(200);
    assert!(logs.body.to_string().contains("model gateway ready"));
    assert!(!logs.body.to_string().contains(KEY));

    let left = files_under(e.ws.path());
    assert!(
        left.iter()
            .all(|p| p.parent().is_some_and(|d| d.ends_with("model-cache"))),
        "only the model cache stays: {left:?}"
    );
    assert_eq!(left.len(), 1, "one cached answer: {left:?}");
    assert!(engine.live().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_without_ai_config_gets_no_gateway() {
    let e = env().await;
    let engine = executor();
    let stop = CancellationToken::new();
    let run = tokio::spawn(Agent::run(cfg(&e), Arc::new(engine.clone()), stop.clone()));
    let review = e
        .app
        .enqueue_change(&e.user, &e.url, &e.base, &e.head)
        .await;
    let done = e
        .app
        .wait_review(&review.id, Duration::from_secs(20), |r| {
            r.task.state.is_terminal()
        })
        .await;
    stop.cancel();
    run.await.expect("join").expect("clean exit");
    let out = done.task.result.clone().expect("result");
    let task: Value = serde_json::from_str(out["task"].as_str().unwrap_or("")).expect("task");
    assert!(task.get("model").is_none(), "{task}");
    assert_eq!(out["socketMode"], 0, "no socket");
    assert!(out["answer"]["error"].is_string(), "{out}");
    assert_eq!(
        out["usage"],
        json!({"calls": 99}),
        "left as the executor said"
    );
    assert!(e.llm.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leftover_reaping_removes_a_dead_runners_sockets_but_keeps_the_cache() {
    let e = env().await;
    let slot = e.ws.path().join("model-runner").join("ai-review-old-slot");
    std::fs::create_dir_all(&slot).expect("mkdir");
    let socket = slot.join("model.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
    drop(listener);
    let cache = e.ws.path().join("model-cache");
    std::fs::create_dir_all(&cache).expect("mkdir");
    std::fs::write(cache.join("0123.json"), "{}").expect("write");
    let stop = CancellationToken::new();
    let run = tokio::spawn(Agent::run(
        cfg(&e),
        Arc::new(FakeEngine::new(|_| Behaviour::Hang)),
        stop.clone(),
    ));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while socket.exists() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    run.await.expect("join").expect("clean exit");
    assert!(!socket.exists() && !slot.exists(), "the socket is reaped");
    assert!(cache.join("0123.json").exists(), "fresh cache entries stay");
}
