//! The runner against the real Docker engine, a real server (SQLite) and a
//! real git server: end to end, hardening verified from inside, OOM,
//! timeouts, fork bombs, cancellation and drain, and model reviews through
//! the gateway against the fake model server. Needs the executor image
//! (`scripts/build-images.sh`, run by `.ci/run`).

use ai_review_domain::{Role, TaskState};
use ai_review_fake_llm::{FakeLlm, Gate, Reply};
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
        // The request's id follows the review into runner and executor.
        let request_id = format!("req-{id}");
        let queued = f
            .app
            .send(
                f.app
                    .request(reqwest::Method::POST, "/api/reviews")
                    .header("x-request-id", &request_id)
                    .json(&serde_json::json!({
                        "repoUrl": f.repo_url, "baseSha": f.base, "headSha": f.head,
                        "branch": "main", "title": "change",
                    })),
                &f.user.bearer(),
            )
            .await
            .expect(202);
        let review: ai_review_protocol::api::ReviewView =
            serde_json::from_value(queued.data().clone()).expect("review view");
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
        assert_eq!(out["kind"], "review");
        assert_eq!(out["ai"]["status"], "skipped", "no AI config: {out}");
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
            text.contains(&format!("on runner {id} (request {request_id})")),
            "the runner names the request: {text}"
        );
        assert!(
            text.contains(&format!(
                "ai-review-executor: started task {} request {request_id}",
                done.task.id
            )),
            "the executor names the request: {text}"
        );
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

const MODEL_KEY: &str = "sk-e2e-model-key-0123456789abcdef";

async fn fake_model_config(f: &Fixture, llm: &FakeLlm) -> String {
    f.app
        .ai_config(&serde_json::json!({
            "name": "fake-openai",
            "provider": "openai",
            "baseUrl": llm.base_url(),
            "model": "gpt-4o-mini",
            "apiKey": MODEL_KEY,
            "timeoutMs": 60_000,
            "tokenBudget": 200_000,
        }))
        .await
}

fn docker_exec(container: &str, script: &str) -> String {
    let out = std::process::Command::new("docker")
        .args(["exec", container, "/bin/bash", "-c", script])
        .output()
        .expect("docker exec");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Files left under the workspace base, other than model cache entries.
fn non_cache_entries(f: &Fixture) -> Vec<String> {
    workspace_entries(f)
        .into_iter()
        .filter(|p| !p.contains("/model-cache/"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_model_review_goes_through_the_gateway_and_the_container_holds_no_key_nor_network() {
    let f = fixture().await;
    let llm = FakeLlm::start(MODEL_KEY).await;
    let gate = Gate::new();
    llm.push(Reply::gated(&gate, Reply::review()));
    let ai = fake_model_config(&f, &llm).await;
    let r = start(config(&f, "model-e2e", &executor_image(), &[])).await;
    let review = f
        .app
        .enqueue_change_with(
            &f.user,
            &f.repo_url,
            &f.base,
            &f.head,
            &serde_json::json!({"aiConfigId": ai}),
        )
        .await;
    let seen = llm.wait_for_requests(1, Duration::from_secs(60)).await;
    assert_eq!(seen.len(), 1, "the executor called the model");
    let containers = containers_of("model-e2e");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];

    // While the model holds the call, look around inside the container.
    let env = docker_exec(c, "env");
    assert!(env.contains("HOME=/tmp"), "{env}");
    assert!(
        !env.contains(MODEL_KEY),
        "no key in the environment:\n{env}"
    );
    let ws = docker_exec(
        c,
        &format!(
            "test -S /workspace/model.sock && echo socket=yes; \
             grep -rlF --devices=skip '{MODEL_KEY}' /workspace; echo grep_rc=$?; id -u"
        ),
    );
    assert!(ws.contains("socket=yes"), "{ws}");
    assert!(
        ws.contains("grep_rc=1"),
        "the key is nowhere in /workspace:\n{ws}"
    );
    assert!(ws.contains("65534"), "{ws}");
    let port = llm.port();
    let net = docker_exec(
        c,
        &format!(
            "for h in 127.0.0.1 172.17.0.1 10.0.2.2; do \
               (exec 3<>/dev/tcp/$h/{port}) 2>/dev/null && echo connected=$h || echo refused=$h; \
             done; ls /sys/class/net"
        ),
    );
    assert!(!net.contains("connected="), "reached the network:\n{net}");
    for h in ["127.0.0.1", "172.17.0.1", "10.0.2.2"] {
        assert!(net.contains(&format!("refused={h}")), "{net}");
    }
    assert_eq!(net.lines().last(), Some("lo"), "only loopback:\n{net}");

    gate.open();
    let done = f
        .app
        .wait_review(&review.id, Duration::from_secs(60), |r| {
            r.task.state.is_terminal()
        })
        .await;
    assert_eq!(
        done.task.state,
        TaskState::Completed,
        "{:?}",
        done.task.failure_reason
    );
    let out = done.task.result.clone().expect("result");
    let calls = llm.requests();
    assert!(!calls.is_empty());
    for call in &calls {
        assert_eq!(
            call.header("authorization"),
            Some(format!("Bearer {MODEL_KEY}").as_str()),
            "every call carries the key"
        );
        assert!(call.succeeded());
    }
    assert_eq!(out["usage"]["calls"], calls.len(), "{out}");
    assert_eq!(out["usage"]["cachedCalls"], 0, "{out}");
    assert_eq!(out["usage"]["provider"], "openai");
    assert_eq!(out["ai"]["status"], "completed", "{out}");
    let logs = f
        .app
        .get(
            &format!("/api/reviews/{}/logs", review.id),
            &f.user.bearer(),
        )
        .await
        .expect(200);
    assert!(!logs.body.to_string().contains(MODEL_KEY));
    r.shutdown().await;
    assert!(containers_of("model-e2e").is_empty());
    assert!(
        non_cache_entries(&f).is_empty(),
        "workspaces (and the socket) left: {:?}",
        non_cache_entries(&f)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retried_task_gets_the_answers_already_paid_for_from_the_cache() {
    let f = fixture().await;
    let llm = FakeLlm::start(MODEL_KEY).await;
    let gate = Gate::new();
    llm.push(Reply::gated(&gate, Reply::review()));
    let ai = fake_model_config(&f, &llm).await;
    let first = start(config(
        &f,
        "cache-a",
        &executor_image(),
        &[("RUNNER_DRAIN_TIMEOUT_MS", "300")],
    ))
    .await;
    let review = f
        .app
        .enqueue_change_with(
            &f.user,
            &f.repo_url,
            &f.base,
            &f.head,
            &serde_json::json!({"aiConfigId": ai}),
        )
        .await;
    llm.wait_for_requests(1, Duration::from_secs(60)).await;
    // Attempt 1 dies while its model call is in flight: the runner drains
    // and interrupts it, and the task is re-queued.
    first.shutdown().await;
    let after = f.app.review(&review.id).await;
    assert_eq!(after.task.state, TaskState::Pending, "{:?}", after.task);
    // The provider finishes (and bills) the call anyway; the gateway
    // caches the answer although nobody waits for it any more.
    gate.open();
    let cache = f.workspaces.path().join("model-cache");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_dir(&cache).map_or(0, |d| d.count()) == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(std::fs::read_dir(&cache).map_or(0, |d| d.count()), 1);

    let second = start(config(&f, "cache-b", &executor_image(), &[])).await;
    let done = f
        .app
        .wait_review(&review.id, Duration::from_secs(60), |r| {
            r.task.state.is_terminal()
        })
        .await;
    second.shutdown().await;
    assert_eq!(
        done.task.state,
        TaskState::Completed,
        "{:?}",
        done.task.failure_reason
    );
    assert_eq!(done.task.attempts.len(), 2, "{:?}", done.task.attempts);
    let out = done.task.result.clone().expect("result");
    assert!(
        out["usage"]["cachedCalls"].as_u64().is_some_and(|n| n > 0),
        "{out}"
    );
    let calls = llm.requests();
    let mut bodies: Vec<&str> = calls.iter().map(|c| c.body.as_str()).collect();
    let total = bodies.len();
    bodies.sort_unstable();
    bodies.dedup();
    assert_eq!(
        bodies.len(),
        total,
        "the provider saw each distinct call exactly once"
    );
    assert!(calls.iter().all(|c| c.succeeded()));
    // Attempt 2 answered every call of the review, but the provider saw
    // each only once over both attempts.
    assert_eq!(out["usage"]["calls"], total, "{out}");
    let tokens = |k: &str| out["usage"][k].as_u64().unwrap_or(0);
    assert!(
        tokens("billedInputTokens") < tokens("inputTokens"),
        "the cached answer was not billed again: {out}"
    );
    assert!(containers_of("cache-a").is_empty() && containers_of("cache-b").is_empty());
    assert!(
        non_cache_entries(&f).is_empty(),
        "{:?}",
        non_cache_entries(&f)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_warm_pool_container_reaches_the_gateway_created_after_it_started() {
    let f = fixture().await;
    let llm = FakeLlm::start(MODEL_KEY).await;
    let ai = fake_model_config(&f, &llm).await;
    let r = start(config(
        &f,
        "model-warm",
        &executor_image(),
        &[("DOCKER_POOL_SIZE", "1")],
    ))
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while containers_of("model-warm").is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        containers_of("model-warm").len(),
        1,
        "a warm container waits"
    );
    let review = f
        .app
        .enqueue_change_with(
            &f.user,
            &f.repo_url,
            &f.base,
            &f.head,
            &serde_json::json!({"aiConfigId": ai}),
        )
        .await;
    let done = f
        .app
        .wait_review(&review.id, Duration::from_secs(60), |r| {
            r.task.state.is_terminal()
        })
        .await;
    r.shutdown().await;
    assert_eq!(
        done.task.state,
        TaskState::Completed,
        "{:?}",
        done.task.failure_reason
    );
    let out = done.task.result.clone().expect("result");
    assert_eq!(out["usage"]["calls"], llm.succeeded().len(), "{out}");
    assert!(!llm.requests().is_empty());
    assert_eq!(out["ai"]["status"], "completed", "{out}");
    assert!(containers_of("model-warm").is_empty());
    assert!(
        non_cache_entries(&f).is_empty(),
        "{:?}",
        non_cache_entries(&f)
    );
}
