//! The runner's Prometheus metrics, scraped from `RUNNER_METRICS_ADDR` and
//! read with a strict exposition parser: two runners in one process (one
//! with a warm pool and a model gateway, one starting containers cold)
//! count their own tasks, pool hits and misses, container starts and
//! gateway traffic. Against the in-memory engine, a real server, a real
//! git server and the fake model server. Also: the README lists every
//! family, and a busy address is a clear startup error.

use ai_review_domain::{Permission, Role, TaskState};
use ai_review_fake_llm::FakeLlm;
use ai_review_runner::agent::{Agent, RunnerError, RunningRunner};
use ai_review_runner::config::RunnerConfig;
use ai_review_runner::fake::{Act, Behaviour, FakeEngine};
use ai_review_runner::metrics::FAMILIES;
use ai_review_testkit::git::GitServer;
use ai_review_testkit::prom::{self, Exposition};
use ai_review_testkit::{Backend, TestApp, TestUser};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const KEY: &str = "sk-fake-metrics-0123456789abcdef";

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
        .user(
            "metrics@example.com",
            Role::User,
            &[Permission::ReviewCreate],
        )
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

fn cfg(e: &Env, name: &str, extra: &[(&str, &str)]) -> RunnerConfig {
    let mut m: HashMap<String, String> = [
        ("RUNNER_SERVER_URL", e.app.url()),
        ("RUNNER_TOKEN", e.user.key.clone()),
        ("RUNNER_NAME", name.to_owned()),
        ("DOCKER_EXECUTOR_IMAGE", "fake:latest".to_owned()),
        ("DOCKER_WORKSPACE_BASE", e.ws.path().display().to_string()),
        ("RUNNER_POLL_TIMEOUT_MS", "1000".to_owned()),
        ("RUNNER_POLL_INTERVAL_MS", "50".to_owned()),
        ("RUNNER_HEARTBEAT_INTERVAL_MS", "100".to_owned()),
        ("RUNNER_DRAIN_TIMEOUT_MS", "100".to_owned()),
        ("RUNNER_METRICS_ADDR", "127.0.0.1:0".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (k, v) in extra {
        m.insert((*k).to_owned(), (*v).to_owned());
    }
    RunnerConfig::from_map(&m).expect("config")
}

async fn scrape(addr: SocketAddr) -> Exposition {
    let r = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("metrics");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = r.text().await.expect("text");
    prom::parse(&text).unwrap_or_else(|e| panic!("invalid exposition: {e}\n{text}"))
}

/// Scrapes until `done` holds (10 s at most) and returns the last scrape.
async fn scrape_until(addr: SocketAddr, done: impl Fn(&Exposition) -> bool) -> Exposition {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = scrape(addr).await;
        if done(&m) || Instant::now() > deadline {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn gauge(m: &Exposition, name: &str) -> Option<f64> {
    m.value(name, &[])
}

fn tasks(m: &Exposition) -> Vec<(String, f64)> {
    [
        "succeeded",
        "failed",
        "cancelled",
        "interrupted",
        "lease_lost",
        "runner_restarted",
    ]
    .iter()
    .map(|o| {
        let v = m
            .value("ai_review_runner_tasks_total", &[("outcome", o)])
            .unwrap_or(-1.0);
        ((*o).to_owned(), v)
    })
    .collect()
}

fn starts(m: &Exposition, source: &str) -> Option<f64> {
    m.value(
        "ai_review_runner_container_start_seconds_count",
        &[("source", source)],
    )
}

fn gateway_statuses(m: &Exposition) -> Vec<(String, f64)> {
    m.samples
        .iter()
        .filter(|s| s.name == "ai_review_runner_gateway_requests_total")
        .map(|s| (s.labels["status"].clone(), s.value))
        .collect()
}

fn tokens(m: &Exposition, kind: &str) -> Option<f64> {
    m.value("ai_review_runner_gateway_tokens_total", &[("kind", kind)])
}

fn expect_families(m: &Exposition) {
    for f in FAMILIES {
        assert_eq!(
            m.types.get(f.name).map(String::as_str),
            Some(f.kind.as_str()),
            "{}",
            f.name
        );
        assert_eq!(m.help.get(f.name).map(String::as_str), Some(f.help));
    }
}

/// A stand-in executor: with a model, it asks the gateway the same
/// question twice (the second answer comes from the cache) and succeeds;
/// without one it fails with exit code 3.
fn warm_executor() -> FakeEngine {
    FakeEngine::new(|_| {
        Behaviour::Act(Act(Arc::new(|ws: PathBuf| {
            Box::pin(async move {
                let task: Value = serde_json::from_slice(
                    &std::fs::read(ws.join("task.json")).unwrap_or_default(),
                )
                .unwrap_or(Value::Null);
                if task.get("model").is_none() {
                    return Behaviour::Exit {
                        code: 3,
                        stdout: String::new(),
                        stderr: "no model, no review\n".into(),
                    };
                }
                let socket = ws.join("model.sock");
                let answers = [call(&socket).await, call(&socket).await];
                Behaviour::Exit {
                    code: 0,
                    stdout: json!({"version": 1, "kind": "review", "answers": answers}).to_string(),
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
    let body = json!({"messages": [{"role": "user", "content": "Answer in JSON: the diff"}], "json": true});
    match http.post("http://gateway/v1/chat").json(&body).send().await {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(e) => json!({"error": e.to_string()}),
    }
}

/// The first container runs until killed, every later one succeeds.
fn cold_executor() -> FakeEngine {
    let started = Arc::new(AtomicUsize::new(0));
    FakeEngine::new(move |_| {
        if started.fetch_add(1, Ordering::SeqCst) == 0 {
            Behaviour::Hang
        } else {
            Behaviour::Exit {
                code: 0,
                stdout: "{\"version\":1}".into(),
                stderr: String::new(),
            }
        }
    })
}

async fn review(e: &Env, extra: Value) -> ai_review_protocol::api::ReviewView {
    let r = e
        .app
        .enqueue_change_with(&e.user, &e.url, &e.base, &e.head, &extra)
        .await;
    e.app
        .wait_review(&r.id, Duration::from_secs(20), |r| {
            r.task.state.is_terminal()
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runners_in_one_process_count_their_own_work() {
    let e = env().await;
    let ai = e
        .app
        .ai_config(&json!({
            "name": "fake", "provider": "openai", "baseUrl": e.llm.base_url(),
            "model": "gpt-4o-mini", "apiKey": KEY, "tokenBudget": 50_000,
            "maxOutputTokens": 1000, "timeoutMs": 5000,
        }))
        .await;
    let stop = CancellationToken::new();
    let warm = Agent::start(
        cfg(
            &e,
            "warm-runner",
            &[
                ("RUNNER_TAGS", "warm"),
                ("DOCKER_POOL_SIZE", "1"),
                ("RUNNER_MAX_CONCURRENT_JOBS", "2"),
            ],
        ),
        Arc::new(warm_executor()),
        stop.clone(),
    )
    .await
    .expect("warm runner starts");
    let cold_engine = cold_executor();
    let cold = Agent::start(
        cfg(
            &e,
            "cold-runner",
            &[
                ("RUNNER_TAGS", "cold"),
                ("DOCKER_POOL_SIZE", "0"),
                ("RUNNER_MAX_CONCURRENT_JOBS", "3"),
            ],
        ),
        Arc::new(cold_engine.clone()),
        stop.clone(),
    )
    .await
    .expect("cold runner starts");
    let (wa, ca) = (
        warm.metrics_addr().expect("warm metrics address"),
        cold.metrics_addr().expect("cold metrics address"),
    );
    assert_ne!((wa.port(), ca.port()), (0, 0), "port 0 is resolved");
    assert_ne!(wa, ca);
    let pool_ready = |m: &Exposition| gauge(m, "ai_review_runner_pool_size") == Some(1.0);

    let m = scrape_until(wa, pool_ready).await;
    assert_eq!(gauge(&m, "ai_review_runner_pool_size"), Some(1.0));
    assert_eq!(starts(&m, "pool"), Some(1.0), "the warm container");

    // The warm runner: a review with a model (two gateway calls, one
    // cached), then one that fails; each takes the warm container.
    let ok = review(&e, json!({"tags": ["warm"], "aiConfigId": ai})).await;
    assert_eq!(ok.task.state, TaskState::Completed, "{:?}", ok.task);
    let usage = ok.task.result.clone().expect("result")["usage"].clone();
    assert_eq!(
        (usage["calls"].as_u64(), usage["cachedCalls"].as_u64()),
        (Some(2), Some(1))
    );
    scrape_until(wa, pool_ready).await;
    let failed = review(&e, json!({"tags": ["warm"]})).await;
    assert_eq!(failed.task.state, TaskState::Failed, "{:?}", failed.task);

    // The cold runner: one review cancelled while its container runs,
    // one that succeeds.
    let hanging = e
        .app
        .enqueue_change_with(
            &e.user,
            &e.url,
            &e.base,
            &e.head,
            &json!({"tags": ["cold"]}),
        )
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while cold_engine.live().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(cold_engine.live().len(), 1, "its container runs");
    let m = scrape(ca).await;
    assert_eq!(gauge(&m, "ai_review_runner_slots_in_use"), Some(1.0));
    assert_eq!(gauge(&m, "ai_review_runner_slots"), Some(3.0));
    e.app
        .post(
            &format!("/api/reviews/{}/cancel", hanging.id),
            &e.user.bearer(),
            &json!({}),
        )
        .await
        .expect(200);
    let cancelled = e
        .app
        .wait_review(&hanging.id, Duration::from_secs(20), |r| {
            r.task.state.is_terminal()
        })
        .await;
    assert_eq!(cancelled.task.state, TaskState::Cancelled);
    let second = review(&e, json!({"tags": ["cold"]})).await;
    assert_eq!(second.task.state, TaskState::Completed, "{:?}", second.task);

    let idle = |m: &Exposition| gauge(m, "ai_review_runner_slots_in_use") == Some(0.0);
    let w = scrape_until(wa, |m| idle(m) && pool_ready(m)).await;
    let c = scrape_until(ca, idle).await;
    expect_families(&w);
    expect_families(&c);
    let outcomes = |s: u32, f: u32, c: u32| {
        [
            ("succeeded", s),
            ("failed", f),
            ("cancelled", c),
            ("interrupted", 0),
            ("lease_lost", 0),
            ("runner_restarted", 0),
        ]
        .iter()
        .map(|(o, n)| ((*o).to_owned(), f64::from(*n)))
        .collect::<Vec<_>>()
    };

    assert_eq!(gauge(&w, "ai_review_runner_slots"), Some(2.0));
    assert_eq!(gauge(&w, "ai_review_runner_slots_in_use"), Some(0.0));
    assert_eq!(gauge(&w, "ai_review_runner_pool_size"), Some(1.0));
    assert_eq!(tasks(&w), outcomes(1, 1, 0));
    assert_eq!(gauge(&w, "ai_review_runner_pool_hits_total"), Some(2.0));
    assert_eq!(gauge(&w, "ai_review_runner_pool_misses_total"), Some(0.0));
    assert_eq!(starts(&w, "pool"), Some(3.0), "the first and two refills");
    assert_eq!(starts(&w, "cold"), None);
    assert_eq!(gateway_statuses(&w), [("200".to_owned(), 2.0)]);
    let billed = |k: &str| usage[k].as_u64().map(|n| n as f64);
    assert!(
        billed("billedInputTokens").is_some_and(|n| n > 0.0),
        "{usage}"
    );
    assert_eq!(tokens(&w, "prompt"), billed("billedInputTokens"));
    assert_eq!(tokens(&w, "completion"), billed("billedOutputTokens"));
    assert_eq!(
        gauge(&w, "ai_review_runner_gateway_cache_hits_total"),
        Some(1.0)
    );

    assert_eq!(gauge(&c, "ai_review_runner_slots"), Some(3.0));
    assert_eq!(gauge(&c, "ai_review_runner_slots_in_use"), Some(0.0));
    assert_eq!(gauge(&c, "ai_review_runner_pool_size"), Some(0.0));
    assert_eq!(tasks(&c), outcomes(1, 0, 1));
    assert_eq!(gauge(&c, "ai_review_runner_pool_hits_total"), Some(0.0));
    assert_eq!(gauge(&c, "ai_review_runner_pool_misses_total"), Some(2.0));
    assert_eq!(starts(&c, "cold"), Some(2.0));
    assert_eq!(starts(&c, "pool"), None);
    assert!(gateway_statuses(&c).is_empty());
    assert_eq!(tokens(&c, "prompt"), Some(0.0));
    assert_eq!(tokens(&c, "completion"), Some(0.0));
    assert_eq!(
        gauge(&c, "ai_review_runner_gateway_cache_hits_total"),
        Some(0.0)
    );

    stop.cancel();
    warm.wait().await.expect("clean exit");
    cold.wait().await.expect("clean exit");
    assert!(
        reqwest::get(format!("http://{wa}/metrics")).await.is_err(),
        "the listener closes with the runner"
    );
    assert!(cold_engine.live().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_metrics_address_is_a_clear_startup_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let ws = tempfile::tempdir().expect("tempdir");
    let mut m: HashMap<String, String> = [
        ("RUNNER_SERVER_URL", "http://127.0.0.1:9".to_owned()),
        (
            "RUNNER_TOKEN",
            "air_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        ),
        ("RUNNER_NAME", "busy".to_owned()),
        ("DOCKER_EXECUTOR_IMAGE", "fake:latest".to_owned()),
        ("DOCKER_WORKSPACE_BASE", ws.path().display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let unset = RunnerConfig::from_map(&m).expect("config");
    let stop = CancellationToken::new();
    let running: RunningRunner = Agent::start(unset, Arc::new(FakeEngine::default()), stop.clone())
        .await
        .expect("starts");
    assert_eq!(running.metrics_addr(), None, "no listener unless asked");
    stop.cancel();
    running.wait().await.expect("stops while registering");

    m.insert("RUNNER_METRICS_ADDR".into(), addr.to_string());
    let busy = RunnerConfig::from_map(&m).expect("config");
    let err = Agent::run(
        busy,
        Arc::new(FakeEngine::default()),
        CancellationToken::new(),
    )
    .await
    .expect_err("must refuse to start");
    assert!(matches!(err, RunnerError::MetricsListen { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("cannot listen on RUNNER_METRICS_ADDR={addr}: ")),
        "{err}"
    );
}

#[test]
fn every_runner_metric_is_documented_in_the_readme() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README");
    for f in FAMILIES {
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` |", f.name)))
            .unwrap_or_else(|| panic!("{} is not in the README's metrics tables", f.name));
        let cells: Vec<&str> = row.split(" | ").collect();
        assert_eq!(cells.get(1).copied(), Some(f.kind.as_str()), "{row}");
        let labels = if f.labels.is_empty() {
            "—".to_owned()
        } else {
            f.labels
                .iter()
                .map(|l| format!("`{l}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        assert_eq!(cells.get(2).copied(), Some(labels.as_str()), "{row}");
    }
}
