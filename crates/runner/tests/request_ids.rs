//! The runner's own log lines about a task carry the task's id, attempt
//! and the request id the server put in the task, including lines written
//! by the task's spawned helpers (the model gateway's provider call).
//!
//! One test in its own binary: it installs the process-wide subscriber
//! (JSON into a buffer), as the binary does with `LOG_FORMAT=json`.

use ai_review_domain::{Permission, Role, TaskState};
use ai_review_fake_llm::FakeLlm;
use ai_review_runner::agent::Agent;
use ai_review_runner::config::RunnerConfig;
use ai_review_runner::fake::{Act, Behaviour, FakeEngine};
use ai_review_testkit::TestApp;
use ai_review_testkit::git::GitServer;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const KEY: &str = "sk-fake-request-ids-0123456789";
const REQUEST_ID: &str = "req-trace-0042";
const CANCELLED_REQUEST_ID: &str = "req-trace-0043";

/// Log output collected in memory.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buffer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buffer {
    type Writer = Buffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Buffer {
    fn lines(&self) -> Vec<Value> {
        let bytes = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

/// The first container calls the gateway once and succeeds; later ones
/// hang until stopped.
fn executor() -> FakeEngine {
    let started = std::sync::atomic::AtomicUsize::new(0);
    FakeEngine::new(move |_| {
        if started.fetch_add(1, std::sync::atomic::Ordering::SeqCst) > 0 {
            return Behaviour::Hang;
        }
        Behaviour::Act(Act(Arc::new(|ws: PathBuf| {
            Box::pin(async move {
                let http = reqwest::Client::builder()
                    .unix_socket(ws.join("model.sock"))
                    .build()
                    .expect("client");
                let body = json!({"messages": [{"role": "user", "content": "diff"}]});
                let answered = http
                    .post("http://gateway/v1/chat")
                    .json(&body)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                Behaviour::Exit {
                    code: i64::from(!answered),
                    stdout: "{\"version\":1}".into(),
                    stderr: String::new(),
                }
            })
        })))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_log_lines_about_a_task_name_its_request() {
    let logs = Buffer::default();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::INFO)
            .with_writer(logs.clone())
            .finish(),
    )
    .expect("the only subscriber in this binary");

    let app = TestApp::spawn(ai_review_testkit::Backend::Sqlite).await;
    let user = app
        .user("ids@example.com", Role::User, &[Permission::ReviewCreate])
        .await;
    let git = GitServer::start();
    let repo = git.repo("r");
    let base = repo.commit("base", &[("a.txt", "1\n")]);
    let head = repo.commit("head", &[("a.txt", "2\n")]);
    let llm = FakeLlm::start(KEY).await;
    let ai = app
        .ai_config(&json!({
            "name": "fake", "provider": "openai", "baseUrl": llm.base_url(),
            "model": "gpt-4o-mini", "apiKey": KEY, "tokenBudget": 50_000,
            "maxOutputTokens": 1000, "timeoutMs": 5000,
        }))
        .await;
    let ws = tempfile::tempdir().expect("tempdir");
    let env: HashMap<String, String> = [
        ("RUNNER_SERVER_URL", app.url()),
        ("RUNNER_TOKEN", user.key.clone()),
        ("RUNNER_NAME", "ids-runner".to_owned()),
        ("DOCKER_EXECUTOR_IMAGE", "fake:latest".to_owned()),
        ("DOCKER_WORKSPACE_BASE", ws.path().display().to_string()),
        ("RUNNER_POLL_TIMEOUT_MS", "1000".to_owned()),
        ("RUNNER_POLL_INTERVAL_MS", "50".to_owned()),
        ("RUNNER_HEARTBEAT_INTERVAL_MS", "100".to_owned()),
        ("DOCKER_POOL_SIZE", "0".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let stop = CancellationToken::new();
    let run = tokio::spawn(Agent::run(
        RunnerConfig::from_map(&env).expect("config"),
        Arc::new(executor()),
        stop.clone(),
    ));

    let queued = app
        .send(
            app.request(reqwest::Method::POST, "/api/reviews")
                .header("x-request-id", REQUEST_ID)
                .json(&json!({
                    "repoUrl": repo.url, "baseSha": base, "headSha": head, "aiConfigId": ai,
                })),
            &user.bearer(),
        )
        .await
        .expect(202);
    let review_id = queued.data()["id"].as_str().expect("review id").to_owned();
    let done = app
        .wait_review(&review_id, Duration::from_secs(20), |r| {
            r.task.state.is_terminal()
        })
        .await;

    // A second review, cancelled while it runs: the runner's "stopping
    // task" line comes from its heartbeat loop, outside the task's future,
    // and still names the task's request.
    let queued = app
        .send(
            app.request(reqwest::Method::POST, "/api/reviews")
                .header("x-request-id", CANCELLED_REQUEST_ID)
                .json(&json!({"repoUrl": repo.url, "baseSha": base, "headSha": head})),
            &user.bearer(),
        )
        .await
        .expect(202);
    let cancelled_id = queued.data()["id"].as_str().expect("review id").to_owned();
    // At its last phase, so only a heartbeat can bring the cancellation
    // (a phase report's answer would carry it too, without that line).
    app.wait_review(&cancelled_id, Duration::from_secs(20), |r| {
        r.task.phase == Some(ai_review_domain::Phase::Reviewing)
    })
    .await;
    app.post(
        &format!("/api/reviews/{cancelled_id}/cancel"),
        &user.bearer(),
        &json!({}),
    )
    .await
    .expect(200);
    let cancelled = app
        .wait_review(&cancelled_id, Duration::from_secs(20), |r| {
            r.task.state.is_terminal()
        })
        .await;
    stop.cancel();
    run.await.expect("join").expect("clean exit");
    assert_eq!(done.task.state, TaskState::Completed, "{:?}", done.task);
    let task_id = done.task.id.to_string();

    let runner_lines: Vec<Value> = logs
        .lines()
        .into_iter()
        .filter(|l| {
            l["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("ai_review_runner"))
        })
        .collect();
    let about_task: Vec<&Value> = runner_lines
        .iter()
        .filter(|l| {
            l["fields"]["task.id"] == task_id.as_str() || l["span"]["task.id"] == task_id.as_str()
        })
        .collect();
    let messages: Vec<&str> = about_task
        .iter()
        .filter_map(|l| l["fields"]["message"].as_str())
        .collect();
    for want in ["model call", "model usage", "result submitted"] {
        assert!(
            messages.contains(&want),
            "no {want:?} line about the task in {messages:?}"
        );
    }
    for l in &about_task {
        let span = &l["span"];
        assert_eq!(span["name"], "task", "{l}");
        assert_eq!(span["task.id"], task_id.as_str(), "{l}");
        assert_eq!(span["task.attempt"], 1, "{l}");
        assert_eq!(span["request.id"], REQUEST_ID, "{l}");
    }

    assert_eq!(
        cancelled.task.state,
        TaskState::Cancelled,
        "{:?}",
        cancelled.task
    );
    let cancelled_task = cancelled.task.id.to_string();
    let stopping: Vec<&Value> = runner_lines
        .iter()
        .filter(|l| {
            l["fields"]["message"] == "stopping task"
                && l["fields"]["task.id"] == cancelled_task.as_str()
        })
        .collect();
    assert!(!stopping.is_empty(), "a stopping line: {runner_lines:#?}");
    for l in stopping {
        assert_eq!(l["span"]["request.id"], CANCELLED_REQUEST_ID, "{l}");
        assert_eq!(l["span"]["task.id"], cancelled_task.as_str(), "{l}");
    }
}
