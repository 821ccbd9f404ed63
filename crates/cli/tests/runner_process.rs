//! `ai-review runner` as a process: a refused token exits non-zero with a
//! clear message and leaves tasks queued; an unreachable server is retried;
//! after `kill -9`, a restarted runner reaps its leftovers and the task is
//! re-queued at once.

use ai_review_domain::{Permission, Role, TaskState};
use ai_review_testkit::docker::{containers_of, misbehaving_image};
use ai_review_testkit::git::GitServer;
use ai_review_testkit::{Backend, TestApp};
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn runner(env: &[(&str, String)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ai-review"));
    c.arg("runner")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("NO_COLOR", "1");
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

fn stderr_of(mut child: Child) -> String {
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut s);
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_exits_non_zero_and_tasks_stay_pending() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.reviewer("alice@example.com").await;
    let review = app.enqueue(&alice, &[]).await;
    let ws = tempfile::tempdir().expect("tempdir");
    let out = runner(&[
        ("RUNNER_SERVER_URL", app.url()),
        ("RUNNER_TOKEN", format!("air_{}", "Z".repeat(40))),
        ("RUNNER_NAME", "badkey".into()),
        (
            "DOCKER_EXECUTOR_IMAGE",
            ai_review_testkit::docker::executor_image(),
        ),
        ("DOCKER_WORKSPACE_BASE", ws.path().display().to_string()),
    ])
    .output()
    .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("refused RUNNER_TOKEN") && err.contains("stay queued"),
        "{err}"
    );
    assert_eq!(app.review(&review.id).await.task.state, TaskState::Pending);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_retried_with_backoff() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let ws = tempfile::tempdir().expect("tempdir");
    let mut child = runner(&[
        ("RUNNER_SERVER_URL", format!("http://127.0.0.1:{port}")),
        ("RUNNER_TOKEN", format!("air_{}", "Z".repeat(40))),
        ("RUNNER_NAME", "unreachable".into()),
        (
            "DOCKER_EXECUTOR_IMAGE",
            ai_review_testkit::docker::executor_image(),
        ),
        ("DOCKER_WORKSPACE_BASE", ws.path().display().to_string()),
    ])
    .stderr(Stdio::piped())
    .stdout(Stdio::null())
    .spawn()
    .expect("spawn");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "the runner keeps retrying instead of exiting"
    );
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().expect("wait");
    let err = stderr_of(child);
    assert!(
        err.matches("cannot register").count() >= 2,
        "retries are logged:\n{err}"
    );
    assert!(err.contains("retrying"), "{err}");
    assert!(status.success(), "SIGTERM while retrying exits 0: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_a_restarted_runner_reaps_leftovers_and_the_task_requeues() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let user = app
        .user("ops@example.com", Role::User, &[Permission::ReviewCreate])
        .await;
    let git = GitServer::start();
    let repo = git.repo("svc");
    let base = repo.commit("base", &[("a.txt", "1\n")]);
    let head = repo.commit("head", &[("a.txt", "2\n")]);
    let ws = tempfile::tempdir().expect("tempdir");
    let image = misbehaving_image("sleeper", "sleep 600");
    let env = vec![
        ("RUNNER_SERVER_URL", app.url()),
        ("RUNNER_TOKEN", user.key.clone()),
        ("RUNNER_NAME", "phoenix".into()),
        ("DOCKER_EXECUTOR_IMAGE", image),
        ("DOCKER_WORKSPACE_BASE", ws.path().display().to_string()),
        ("DOCKER_POOL_SIZE", "1".into()),
        ("RUNNER_POLL_TIMEOUT_MS", "1000".into()),
        ("RUNNER_POLL_INTERVAL_MS", "100".into()),
        ("RUNNER_HEARTBEAT_INTERVAL_MS", "200".into()),
        ("RUNNER_DRAIN_TIMEOUT_MS", "500".into()),
    ];
    let mut first = runner(&env)
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    let review = app.enqueue_change(&user, &repo.url, &base, &head).await;
    let running = app
        .wait_review(&review.id, Duration::from_secs(30), |r| {
            r.task.phase == Some(ai_review_domain::Phase::Reviewing)
        })
        .await;
    assert_eq!(running.task.attempt.0, 1);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        Command::new("kill")
            .args(["-9", &first.id().to_string()])
            .status()
            .expect("kill")
            .success()
    );
    let _ = first.wait();
    assert!(
        !containers_of("phoenix").is_empty(),
        "kill -9 leaves the containers behind"
    );
    assert!(
        std::fs::read_dir(ws.path().join("phoenix"))
            .map(|d| d.count())
            .unwrap_or(0)
            > 0,
        "and the workspaces"
    );

    let restarted_at = Instant::now();
    let mut second = runner(&env)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    let requeued = app
        .wait_review(&review.id, Duration::from_secs(30), |r| {
            r.task.attempt.0 >= 2
        })
        .await;
    assert!(
        requeued.task.attempt.0 >= 2,
        "re-queued and claimed again: {:?}",
        requeued.task
    );
    assert!(
        restarted_at.elapsed() < Duration::from_secs(20),
        "well before the 30 s lease would expire"
    );
    let first_attempt = &requeued.task.attempts[0];
    assert!(
        first_attempt
            .reason
            .as_deref()
            .unwrap_or("")
            .starts_with("runner_restarted"),
        "{first_attempt:?}"
    );

    let _ = Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status();
    let status = second.wait().expect("wait");
    let err = stderr_of(second);
    assert!(status.success(), "{status}: {err}");
    assert!(containers_of("phoenix").is_empty(), "zero containers left");
    let left: Vec<_> = std::fs::read_dir(ws.path().join("phoenix"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "zero workspaces left: {left:?}");
}
