//! The runner's logic against the in-memory engine: result mapping, timeouts,
//! the warm pool, leftover reaping and a missing image, with a real server
//! and a real git server but no Docker daemon.

use ai_review_domain::{Permission, Role, TaskState};
use ai_review_runner::agent::{Agent, RunnerError};
use ai_review_runner::config::RunnerConfig;
use ai_review_runner::engine::{ContainerSpec, LABEL_POOL, LABEL_RUNNER, LABEL_SLOT, Limits};
use ai_review_runner::fake::{Behaviour, FakeEngine};
use ai_review_testkit::git::GitServer;
use ai_review_testkit::{Backend, TestApp, TestUser};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

struct Env {
    app: TestApp,
    user: TestUser,
    _git: GitServer,
    url: String,
    base: String,
    head: String,
    ws: tempfile::TempDir,
}

async fn env() -> Env {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let user = app
        .user("fake@example.com", Role::User, &[Permission::ReviewCreate])
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
    }
}

fn cfg(e: &Env, extra: &[(&str, &str)]) -> RunnerConfig {
    let mut m: HashMap<String, String> = [
        ("RUNNER_SERVER_URL", e.app.url()),
        ("RUNNER_TOKEN", e.user.key.clone()),
        ("RUNNER_NAME", "fake-runner".to_owned()),
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
    for (k, v) in extra {
        m.insert((*k).to_owned(), (*v).to_owned());
    }
    RunnerConfig::from_map(&m).expect("config")
}

async fn review_with(
    e: &Env,
    engine: FakeEngine,
    extra: &[(&str, &str)],
) -> ai_review_protocol::api::ReviewView {
    let stop = CancellationToken::new();
    let run = tokio::spawn(Agent::run(
        cfg(e, extra),
        Arc::new(engine.clone()),
        stop.clone(),
    ));
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
    assert!(
        engine.live().is_empty(),
        "containers left: {:?}",
        engine.live()
    );
    done
}

fn exit(code: i64, stdout: &str, stderr: &str) -> FakeEngine {
    let (stdout, stderr) = (stdout.to_owned(), stderr.to_owned());
    FakeEngine::new(move |_| Behaviour::Exit {
        code,
        stdout: stdout.clone(),
        stderr: stderr.clone(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exits_map_to_results_and_failure_reasons() {
    let e = env().await;
    let ok = review_with(
        &e,
        exit(0, "{\"version\":1,\"kind\":\"diff-stats\"}", "working\n"),
        &[],
    )
    .await;
    assert_eq!(ok.task.state, TaskState::Completed);
    assert_eq!(
        ok.task.result,
        Some(serde_json::json!({"version": 1, "kind": "diff-stats"}))
    );

    let failed = review_with(&e, exit(3, "", "step one\nboom: bad things\n"), &[]).await;
    let reason = failed.task.failure_reason.unwrap_or_default();
    assert!(
        reason.starts_with("executor_failed: exit code 3") && reason.contains("boom: bad things"),
        "{reason}"
    );

    let garbage = review_with(&e, exit(0, "not json", ""), &[]).await;
    assert!(
        garbage
            .task
            .failure_reason
            .unwrap_or_default()
            .starts_with("invalid_output")
    );

    let oom = review_with(&e, FakeEngine::new(|_| Behaviour::OutOfMemory), &[]).await;
    assert!(
        oom.task
            .failure_reason
            .unwrap_or_default()
            .starts_with("out_of_memory")
    );

    let slow = review_with(
        &e,
        FakeEngine::new(|_| Behaviour::Hang),
        &[("DOCKER_TIMEOUT_SECONDS", "1")],
    )
    .await;
    assert!(
        slow.task
            .failure_reason
            .unwrap_or_default()
            .starts_with("timeout")
    );
    assert!(
        std::fs::read_dir(e.ws.path().join("fake-runner"))
            .map(|d| d.count())
            .unwrap_or(0)
            == 0,
        "no workspace left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_warm_pool_is_kept_full_and_emptied_on_shutdown() {
    let e = env().await;
    let engine = exit(0, "{}", "");
    let stop = CancellationToken::new();
    let run = tokio::spawn(Agent::run(
        cfg(&e, &[("DOCKER_POOL_SIZE", "2")]),
        Arc::new(engine.clone()),
        stop.clone(),
    ));
    for _ in 0..100 {
        if engine.live().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(engine.live().len(), 2);
    assert!(
        engine
            .live()
            .iter()
            .all(|s| s.labels.get(LABEL_POOL).map(String::as_str) == Some("true"))
    );
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
    assert_eq!(done.task.state, TaskState::Completed);
    for _ in 0..100 {
        if engine.created() == 3 && engine.live().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        (engine.created(), engine.live().len()),
        (3, 2),
        "one used, one refilled"
    );
    stop.cancel();
    run.await.expect("join").expect("clean exit");
    assert!(engine.live().is_empty(), "the pool is removed on shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leftovers_of_an_earlier_life_are_reaped_and_their_tasks_requeued() {
    let e = env().await;
    // An earlier process of this runner claimed the task, then died.
    let earlier = e.app.runner(&e.user, "fake-runner", "").await;
    let review = e
        .app
        .enqueue_change(&e.user, &e.url, &e.base, &e.head)
        .await;
    let claimed = e.app.claim(&earlier).await.expect("claim");
    let dir = e.ws.path().join("fake-runner");
    std::fs::create_dir_all(dir.join("ai-review-fake-runner-old/repo")).expect("mkdir");
    std::fs::write(
        dir.join("ai-review-fake-runner-old.json"),
        serde_json::json!({"taskId": claimed.task_id, "attempt": claimed.attempt}).to_string(),
    )
    .expect("claim file");
    let engine = FakeEngine::new(|_| Behaviour::Hang);
    let leftover = ContainerSpec {
        name: "ai-review-fake-runner-old".into(),
        image: "fake:latest".into(),
        entrypoint: None,
        cmd: vec![],
        env: vec![],
        labels: HashMap::from([
            (LABEL_RUNNER.to_owned(), "fake-runner".to_owned()),
            (
                LABEL_SLOT.to_owned(),
                "ai-review-fake-runner-old".to_owned(),
            ),
        ]),
        workspace: dir.join("ai-review-fake-runner-old"),
        limits: Limits {
            memory_bytes: 1,
            nano_cpus: 1,
            pids_limit: 1,
            network_mode: "none".into(),
            user: "1:1".into(),
            tmpfs_bytes: 1,
        },
    };
    engine.add_leftover(leftover);
    let stop = CancellationToken::new();
    // No executor will finish (Hang): only the reaping is observed here.
    let run = tokio::spawn(Agent::run(
        cfg(&e, &[("RUNNER_DRAIN_TIMEOUT_MS", "100")]),
        Arc::new(engine.clone()),
        stop.clone(),
    ));
    let after = e
        .app
        .wait_review(&review.id, Duration::from_secs(10), |r| {
            r.task.attempt.0 >= 2
        })
        .await;
    let first = &after.task.attempts[0];
    assert!(
        first
            .reason
            .as_deref()
            .unwrap_or("")
            .starts_with("runner_restarted"),
        "{first:?}"
    );
    assert!(
        !engine
            .live()
            .iter()
            .any(|s| s.name == "ai-review-fake-runner-old"),
        "leftover removed"
    );
    assert!(
        !dir.join("ai-review-fake-runner-old.json").exists()
            && !dir.join("ai-review-fake-runner-old").exists()
    );
    stop.cancel();
    run.await.expect("join").expect("clean exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_executor_image_is_a_clear_startup_error() {
    let e = env().await;
    let err = Agent::run(
        cfg(&e, &[]),
        Arc::new(FakeEngine::default().without_image()),
        CancellationToken::new(),
    )
    .await
    .expect_err("must refuse to start");
    assert!(matches!(err, RunnerError::Engine(_)));
    assert!(err.to_string().contains("scripts/build-images.sh"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_runs_more_tasks_than_its_concurrency() {
    let e = env().await;
    let engine = FakeEngine::new(|_| Behaviour::Hang);
    let stop = CancellationToken::new();
    let run = tokio::spawn(Agent::run(
        cfg(
            &e,
            &[
                ("RUNNER_MAX_CONCURRENT_JOBS", "2"),
                ("RUNNER_DRAIN_TIMEOUT_MS", "100"),
            ],
        ),
        Arc::new(engine.clone()),
        stop.clone(),
    ));
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(
            e.app
                .enqueue_change(&e.user, &e.url, &e.base, &e.head)
                .await
                .id,
        );
    }
    let mut max_live = 0;
    for _ in 0..40 {
        max_live = max_live.max(engine.live().len());
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let mut claimed = 0;
    for id in &ids {
        if e.app.review(id).await.task.state != TaskState::Pending {
            claimed += 1;
        }
    }
    assert_eq!(max_live, 2, "two containers at most");
    assert_eq!(claimed, 2, "the other three stay queued for other runners");
    stop.cancel();
    run.await.expect("join").expect("clean exit");
}
