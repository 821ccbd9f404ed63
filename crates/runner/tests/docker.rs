//! The runner against the real Docker engine, a real server (SQLite) and a
//! real git server: end to end, hardening verified from inside, OOM,
//! timeouts, fork bombs, cancellation and drain. Needs the executor image
//! (`scripts/build-images.sh`, run by `.ci/run`).

use ai_review_domain::{Role, TaskState};
use ai_review_runner::agent::{Agent, container_spec};
use ai_review_runner::config::RunnerConfig;
use ai_review_runner::docker::DockerEngine;
use ai_review_runner::engine::{ContainerEngine, OutputStream};
use ai_review_testkit::docker::{containers_of, executor_image, inspect, misbehaving_image};
use ai_review_testkit::git::GitServer;
use ai_review_testkit::{Backend, TestApp, TestUser};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

struct Fixture {
    app: TestApp,
    user: TestUser,
    _git: GitServer,
    repo_url: String,
    base: String,
    head: String,
    workspaces: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let user = app
        .user(
            "runner@example.com",
            Role::User,
            &[ai_review_domain::Permission::ReviewCreate],
        )
        .await;
    let git = GitServer::start();
    let repo = git.repo("service");
    let base = repo.commit(
        "base",
        &[
            ("src/lib.rs", "fn a() {}\nfn b() {}\n"),
            ("README.md", "hello\n"),
            ("old.txt", "bye\n"),
        ],
    );
    repo.remove("old.txt");
    let head = repo.commit(
        "head",
        &[
            ("src/lib.rs", "fn a() {}\nfn b() { todo() }\nfn c() {}\n"),
            ("src/new.rs", "pub mod x;\n"),
        ],
    );
    Fixture {
        app,
        user,
        repo_url: repo.url.clone(),
        _git: git,
        base,
        head,
        workspaces: tempfile::tempdir().expect("tempdir"),
    }
}

fn config(f: &Fixture, id: &str, image: &str, extra: &[(&str, &str)]) -> RunnerConfig {
    let mut env: HashMap<String, String> = [
        ("RUNNER_SERVER_URL", f.app.url()),
        ("RUNNER_TOKEN", f.user.key.clone()),
        ("RUNNER_NAME", id.to_owned()),
        ("DOCKER_EXECUTOR_IMAGE", image.to_owned()),
        (
            "DOCKER_WORKSPACE_BASE",
            f.workspaces.path().display().to_string(),
        ),
        ("RUNNER_POLL_TIMEOUT_MS", "2000".into()),
        ("RUNNER_POLL_INTERVAL_MS", "100".into()),
        ("RUNNER_HEARTBEAT_INTERVAL_MS", "200".into()),
        ("DOCKER_POOL_SIZE", "0".into()),
        ("DOCKER_MEMORY_LIMIT", "256m".into()),
        ("DOCKER_TIMEOUT_SECONDS", "60".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (k, v) in extra {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    RunnerConfig::from_map(&env).expect("runner config")
}

struct Running {
    stop: CancellationToken,
    handle: tokio::task::JoinHandle<Result<(), ai_review_runner::agent::RunnerError>>,
}

async fn start(cfg: RunnerConfig) -> Running {
    let engine = DockerEngine::connect(&cfg.docker_host)
        .await
        .expect("docker");
    let stop = CancellationToken::new();
    let handle = tokio::spawn(Agent::run(cfg, Arc::new(engine), stop.clone()));
    Running { stop, handle }
}

impl Running {
    async fn shutdown(self) {
        self.stop.cancel();
        self.handle
            .await
            .expect("join")
            .expect("runner exits cleanly");
    }
}

fn workspace_entries(f: &Fixture) -> Vec<String> {
    walk(f.workspaces.path())
}

fn walk(p: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            out.push(e.path().display().to_string());
            if e.path().is_dir() {
                out.extend(walk(&e.path()));
            }
        }
    }
    out.into_iter()
        .filter(|p| !std::path::Path::new(p).is_dir())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reviews_a_change_end_to_end_in_a_cold_and_a_warm_container() {
    let f = fixture().await;
    for (id, pool) in [("e2e-cold", "0"), ("e2e-warm", "1")] {
        let r = start(config(
            &f,
            id,
            &executor_image(),
            &[("DOCKER_POOL_SIZE", pool)],
        ))
        .await;
        let review = f
            .app
            .enqueue_change(&f.user, &f.repo_url, &f.base, &f.head)
            .await;
        let done = f
            .app
            .wait_review(&review.id, Duration::from_secs(60), |r| {
                r.task.state.is_terminal()
            })
            .await;
        assert_eq!(
            done.task.state,
            TaskState::Completed,
            "{id}: {:?}",
            done.task.failure_reason
        );
        let out = done.task.result.clone().expect("result");
        assert_eq!(out["version"], 1);
        assert_eq!(out["kind"], "diff-stats");
        assert_eq!(out["totals"]["files"], 3, "{out}");
        let status_of = |p: &str| {
            out["files"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|x| x["path"] == p)
                .map(|x| x["status"].clone())
        };
        assert_eq!(status_of("src/lib.rs"), Some("modified".into()));
        assert_eq!(status_of("src/new.rs"), Some("added".into()));
        assert_eq!(status_of("old.txt"), Some("deleted".into()));
        let phases: Vec<_> = done
            .task
            .events
            .iter()
            .filter(|e| e.kind == "phase")
            .map(|e| e.detail.clone())
            .collect();
        assert_eq!(
            phases,
            ["preparing", "cloning", "reviewing", "submitting"],
            "{id}"
        );
        let logs = f
            .app
            .get(
                &format!("/api/reviews/{}/logs", review.id),
                &f.user.bearer(),
            )
            .await
            .expect(200);
        let text = logs.body.to_string();
        assert!(text.contains("ai-review-executor: started"), "{text}");
        assert!(
            !text.contains(&f.user.key),
            "the runner token never reaches the log"
        );
        r.shutdown().await;
        assert!(containers_of(id).is_empty(), "{id} left containers behind");
    }
    assert!(
        workspace_entries(&f).is_empty(),
        "workspaces left: {:?}",
        workspace_entries(&f)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_container_is_locked_down_as_seen_from_inside() {
    let f = fixture().await;
    let cfg = config(&f, "probe", &executor_image(), &[]);
    let engine = DockerEngine::connect(&cfg.docker_host)
        .await
        .expect("docker");
    let dir = f.workspaces.path().join("probe");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("visible.txt"), "x").expect("write");
    let mut spec = container_spec(&cfg, "ai-review-probe-test", &dir, false);
    spec.entrypoint = Some(vec!["/bin/sh".into(), "-c".into()]);
    spec.cmd = vec![
        concat!(
            "echo uid=$(id -u); grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; ",
            "touch /rootfs-write 2>/dev/null && echo root=writable || echo root=readonly; ",
            "touch /workspace/w 2>/dev/null && echo ws=writable || echo ws=readonly; ",
            "cat /workspace/visible.txt >/dev/null && echo ws=readable; ",
            "touch /tmp/t && echo tmp=writable; ",
            "echo nets=$(ls /sys/class/net | tr '\\n' ,); env"
        )
        .into(),
    ];
    let id = engine.create(&spec).await.expect("create");
    engine.start(&id).await.expect("start");
    let exit = engine.wait(&id).await.expect("wait");
    let mut out = String::new();
    let mut s = engine.output(&id);
    while let Some(Ok(c)) = s.next().await {
        if c.stream == OutputStream::Stdout {
            out.push_str(&String::from_utf8_lossy(&c.bytes));
        }
    }
    engine.remove(&id).await.expect("remove");
    assert_eq!(exit.code, 0, "{out}");
    for expected in [
        "uid=65534",
        "CapEff:\t0000000000000000",
        "NoNewPrivs:\t1",
        "root=readonly",
        "ws=readonly",
        "ws=readable",
        "tmp=writable",
        "nets=lo,",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    assert!(
        !out.contains("air_"),
        "no API key in the container's environment:\n{out}"
    );
    assert_eq!(inspect("ai-review-probe-test", "{{.Id}}"), "", "removed");
}

async fn run_one_failing(image: &str, id: &str, extra: &[(&str, &str)]) -> (String, Duration) {
    let f = fixture().await;
    let r = start(config(&f, id, image, extra)).await;
    let started = Instant::now();
    let review = f
        .app
        .enqueue_change(&f.user, &f.repo_url, &f.base, &f.head)
        .await;
    let done = f
        .app
        .wait_review(&review.id, Duration::from_secs(60), |r| {
            r.task.state.is_terminal()
        })
        .await;
    let took = started.elapsed();
    r.shutdown().await;
    assert!(containers_of(id).is_empty(), "{id} left containers");
    assert!(workspace_entries(&f).is_empty(), "{id} left workspaces");
    assert_eq!(done.task.state, TaskState::Failed, "{:?}", done.task);
    (done.task.failure_reason.unwrap_or_default(), took)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_hog_is_killed_and_reported_out_of_memory() {
    let image = misbehaving_image("memory-hog", "tail /dev/zero");
    let (reason, _) = run_one_failing(&image, "oom", &[("DOCKER_MEMORY_LIMIT", "32m")]).await;
    assert!(reason.starts_with("out_of_memory"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sleeper_is_killed_at_the_timeout() {
    let image = misbehaving_image("sleeper", "sleep 600");
    let (reason, took) =
        run_one_failing(&image, "sleeper", &[("DOCKER_TIMEOUT_SECONDS", "2")]).await;
    assert!(reason.starts_with("timeout"), "{reason}");
    assert!(took < Duration::from_secs(30), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_bomb_is_contained_by_the_pids_limit() {
    let image = misbehaving_image("fork-bomb", "b(){ b | b & }; b; sleep 600");
    let (reason, took) = run_one_failing(
        &image,
        "forkbomb",
        &[("DOCKER_TIMEOUT_SECONDS", "4"), ("DOCKER_PIDS_LIMIT", "64")],
    )
    .await;
    // Either the shell gives up when the kernel refuses more processes, or
    // the bomb keeps trying until the timeout; the host is fine either way.
    assert!(
        reason.contains("Cannot fork") || reason.starts_with("timeout"),
        "{reason}"
    );
    assert!(
        took < Duration::from_secs(40),
        "the host stayed responsive; took {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_tasks_container_is_gone_within_two_seconds() {
    let f = fixture().await;
    let image = misbehaving_image("sleeper", "sleep 600");
    let r = start(config(&f, "cancel", &image, &[])).await;
    let review = f
        .app
        .enqueue_change(&f.user, &f.repo_url, &f.base, &f.head)
        .await;
    f.app
        .wait_review(&review.id, Duration::from_secs(30), |r| {
            r.task.phase == Some(ai_review_domain::Phase::Reviewing)
        })
        .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while containers_of("cancel").is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        containers_of("cancel").len(),
        1,
        "the review container runs"
    );
    let asked = Instant::now();
    f.app
        .post(
            &format!("/api/reviews/{}/cancel", review.id),
            &f.user.bearer(),
            &serde_json::json!({}),
        )
        .await
        .expect(200);
    while !containers_of("cancel").is_empty() && asked.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let gone_after = asked.elapsed();
    assert!(
        gone_after < Duration::from_secs(2),
        "container gone only after {gone_after:?}"
    );
    let done = f
        .app
        .wait_review(&review.id, Duration::from_secs(10), |r| {
            r.task.state.is_terminal()
        })
        .await;
    assert_eq!(done.task.state, TaskState::Cancelled);
    r.shutdown().await;
    assert!(workspace_entries(&f).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_interrupts_tasks_after_the_grace_period_and_requeues_them() {
    let f = fixture().await;
    let image = misbehaving_image("sleeper", "sleep 600");
    let r = start(config(
        &f,
        "drain",
        &image,
        &[("RUNNER_DRAIN_TIMEOUT_MS", "1000")],
    ))
    .await;
    let review = f
        .app
        .enqueue_change(&f.user, &f.repo_url, &f.base, &f.head)
        .await;
    f.app
        .wait_review(&review.id, Duration::from_secs(30), |r| {
            r.task.phase == Some(ai_review_domain::Phase::Reviewing)
        })
        .await;
    let t0 = Instant::now();
    r.shutdown().await;
    assert!(
        t0.elapsed() < Duration::from_secs(15),
        "drain took {:?}",
        t0.elapsed()
    );
    let after = f.app.review(&review.id).await;
    assert_eq!(
        after.task.state,
        TaskState::Pending,
        "re-queued at once: {:?}",
        after.task
    );
    let last = after.task.attempts.last().expect("an attempt");
    assert!(
        last.reason
            .as_deref()
            .unwrap_or("")
            .starts_with("interrupted"),
        "{last:?}"
    );
    assert!(containers_of("drain").is_empty());
    assert!(workspace_entries(&f).is_empty());
}
