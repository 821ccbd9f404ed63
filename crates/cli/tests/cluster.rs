//! Several hosts on this machine's Docker engine: two server replicas in
//! containers sharing one PostgreSQL, three runner containers, all on a
//! private Docker network, with the replicas behind one network alias
//! (Docker's DNS round-robin stands in for the load balancer). Reviews are
//! queued through both replicas; then one replica is stopped, one runner
//! is stopped, and one runner is cut off the network while it holds a
//! task. Every review must complete exactly once (one accepted result, one
//! succeeded attempt), the reaper must run once per period across the
//! replicas, and no secret may appear in any container's log.
//!
//! The images are the repository's: `scripts/build-images.sh --ai-review`
//! (Dockerfile.prebuilt on the locally made Debian base, fed this test's
//! own `ai-review` binary) and the executor image `.ci/run` builds. The
//! PostgreSQL, the git server and the fake model run on the host,
//! listening on the private network's gateway address only.

use ai_review_fake_llm::{FakeLlm, Gate, Reply};
use ai_review_testkit::docker::executor_image;
use ai_review_testkit::git::GitServer;
use serde_json::{Value, json};
use std::net::IpAddr;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const MODEL_KEY: &str = "sk-cluster-model-key-5f0c2a9e71d34b6a";
const PG_PASSWORD: &str = "cluster-pg-password-8d3e1f";
const ADMIN_PASSWORD: &str = "cluster-admin-pass-4b7a";
/// 32 bytes, base64: the replicas' shared secret key.
const SECRET_KEY: &str = "Y2x1c3Rlci1zZWNyZXQta2V5LTAxMjM0NTY3ODlhYmM=";
const REAPER_INTERVAL_MS: u64 = 500;
const REVIEW_TIMEOUT: Duration = Duration::from_secs(240);

fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run docker")
}

fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Everything the test started in Docker, removed however the test ends.
struct Cluster {
    suffix: String,
    network: String,
    containers: Vec<String>,
    runner_ids: Vec<String>,
}

impl Cluster {
    fn name(&self, role: &str) -> String {
        format!("air-{role}-{}", self.suffix)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let mut all = self.containers.clone();
        for id in &self.runner_ids {
            all.extend(ai_review_testkit::docker::containers_of(id));
        }
        if !all.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(all.iter().map(String::as_str));
            let _ = docker(&args);
        }
        let _ = docker(&["network", "rm", &self.network]);
    }
}

/// One server replica as the test reaches it (its published port).
struct Replica {
    name: String,
    url: String,
    http: reqwest::Client,
    key: String,
}

struct Answer {
    status: u16,
    request_id: Option<String>,
    body: Value,
}

impl Replica {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Answer {
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.key);
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let resp = rb
            .send()
            .await
            .unwrap_or_else(|e| panic!("{} {path}: {e}", self.name));
        let status = resp.status().as_u16();
        let request_id = resp
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = resp.text().await.unwrap_or_default();
        Answer {
            status,
            request_id,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        }
    }

    async fn get(&self, path: &str) -> Value {
        let a = self.call(reqwest::Method::GET, path, None).await;
        assert_eq!(a.status, 200, "{} GET {path}: {}", self.name, a.body);
        a.body
    }

    async fn metrics(&self) -> ai_review_testkit::prom::Exposition {
        let text = self
            .http
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .unwrap_or_else(|e| panic!("{} /metrics: {e}", self.name))
            .text()
            .await
            .unwrap_or_default();
        ai_review_testkit::prom::parse(&text)
            .unwrap_or_else(|e| panic!("{} /metrics: {e}\n{text}", self.name))
    }

    /// Queues a review of `base..head`; returns its id and request id.
    async fn enqueue(&self, repo: &str, base: &str, head: &str, ai: &str) -> (String, String) {
        let a = self
            .call(
                reqwest::Method::POST,
                "/api/reviews",
                Some(&json!({"repoUrl": repo, "baseSha": base, "headSha": head,
                             "branch": "main", "title": "cluster change", "aiConfigId": ai})),
            )
            .await;
        assert_eq!(a.status, 202, "{} enqueue: {}", self.name, a.body);
        let id = a.body["data"]["id"].as_str().expect("review id").to_owned();
        (id, a.request_id.expect("x-request-id on the answer"))
    }

    async fn review(&self, id: &str) -> Value {
        self.get(&format!("/api/reviews/{id}")).await["data"].clone()
    }

    /// Polls until `done` holds for the review, or panics with its state.
    async fn wait_review(&self, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let r = self.review(id).await;
            if done(&r) {
                return r;
            }
            assert!(
                start.elapsed() < REVIEW_TIMEOUT,
                "review {id} never {what}: {r:#}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn task_state(r: &Value) -> &str {
    r["task"]["state"].as_str().unwrap_or_default()
}

/// The runner of a review that is at its model call (held by the gate).
fn running_on(r: &Value) -> Option<&str> {
    (task_state(r) == "executing" && r["task"]["phase"] == "reviewing")
        .then(|| r["task"]["runnerId"].as_str())
        .flatten()
}

fn published_url(container: &str) -> String {
    let port = docker_ok(&["port", container, "3000/tcp"]);
    let port = port.lines().next().unwrap_or_default().to_owned();
    format!("http://{port}")
}

/// Runs `ai-review admin …` on the host against the cluster's database;
/// returns stdout.
fn admin(db: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ai-review"))
        .arg("admin")
        .args(args)
        .env("DATABASE_URL", db)
        .env("AI_REVIEW_SECRET_KEY", SECRET_KEY)
        .env("NO_COLOR", "1")
        .output()
        .expect("run ai-review admin");
    assert!(
        out.status.success(),
        "ai-review admin {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

async fn wait_healthy(url: &str) {
    let http = reqwest::Client::new();
    let start = Instant::now();
    loop {
        if let Ok(r) = http.get(format!("{url}/api/health")).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{url} never became healthy"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until `n` of `ids` are running; returns the runner of each.
async fn wait_running(via: &Replica, ids: &[String], n: usize) -> Vec<(String, String)> {
    let start = Instant::now();
    loop {
        let mut running = Vec::new();
        for id in ids {
            let r = via.review(id).await;
            if let Some(runner) = running_on(&r) {
                running.push((id.clone(), runner.to_owned()));
            }
        }
        if running.len() >= n {
            return running;
        }
        assert!(
            start.elapsed() < REVIEW_TIMEOUT,
            "only {running:?} of {ids:?} are running"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until every review completed, then checks each was completed
/// exactly once: one `completed` event, one succeeded attempt.
async fn all_completed_once(via: &Replica, ids: &[String]) -> Vec<Value> {
    let mut done = Vec::new();
    for id in ids {
        let r = via
            .wait_review(id, "ended", |r| {
                matches!(
                    task_state(r),
                    "completed" | "failed" | "cancelled" | "expired"
                ) && r["status"] != "pending"
            })
            .await;
        assert_eq!(task_state(&r), "completed", "review {id}: {r:#}");
        assert_eq!(r["status"], "completed", "review {id}: {r:#}");
        let events = r["task"]["events"].as_array().cloned().unwrap_or_default();
        let completed = events.iter().filter(|e| e["kind"] == "completed").count();
        assert_eq!(completed, 1, "one accepted result for {id}: {events:#?}");
        let attempts = r["task"]["attempts"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let succeeded = attempts
            .iter()
            .filter(|a| a["outcome"] == "succeeded")
            .count();
        assert_eq!(
            succeeded, 1,
            "one succeeded attempt for {id}: {attempts:#?}"
        );
        done.push(r);
    }
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_and_three_runners_lose_nothing_and_post_nothing_twice() {
    ai_review_protocol::client::ensure_crypto_provider();
    let executor = executor_image();
    let suffix = unique_suffix();
    let mut cluster = Cluster {
        network: format!("air-net-{suffix}"),
        suffix,
        containers: Vec::new(),
        runner_ids: Vec::new(),
    };

    // The image under test, from this test's own binary.
    let image = format!("ai-review:cluster-{}", cluster.suffix);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/build-images.sh");
    let built = Command::new("bash")
        .args([
            script,
            "--ai-review",
            &image,
            env!("CARGO_BIN_EXE_ai-review"),
        ])
        .output()
        .expect("run build-images.sh");
    assert!(
        built.status.success(),
        "build-images.sh --ai-review: {}{}",
        String::from_utf8_lossy(&built.stdout),
        String::from_utf8_lossy(&built.stderr)
    );
    let _image_guard = ImageGuard(image.clone());

    // The private network; host services listen on its gateway only.
    docker_ok(&["network", "create", &cluster.network]);
    let gateway: IpAddr = docker_ok(&[
        "network",
        "inspect",
        "-f",
        "{{(index .IPAM.Config 0).Gateway}}",
        &cluster.network,
    ])
    .parse()
    .expect("gateway address");
    let subnet = docker_ok(&[
        "network",
        "inspect",
        "-f",
        "{{(index .IPAM.Config 0).Subnet}}",
        &cluster.network,
    ]);
    let admin_url = tokio::task::spawn_blocking(move || {
        ai_review_pg_testing::start_cluster_on(gateway, Some(&subnet))
    })
    .await
    .expect("start PostgreSQL");
    // Containers reach it on the gateway; the test over loopback.
    let db = admin_url
        .replacen("postgres@", &format!("postgres:{PG_PASSWORD}@"), 1)
        .strip_suffix("/postgres")
        .map(|server| format!("{server}/ai_review"))
        .expect("an admin URL ending in /postgres");
    let host_admin_url = admin_url.replace(&gateway.to_string(), "127.0.0.1");
    let host_db = db.replace(&gateway.to_string(), "127.0.0.1");
    create_database(&host_admin_url).await;
    admin(
        &host_db,
        &[
            "create-user",
            "--email",
            "ops@example.com",
            "--password",
            ADMIN_PASSWORD,
            "--admin",
        ],
    );
    let key = admin(
        &host_db,
        &[
            "create-api-key",
            "--email",
            "ops@example.com",
            "--name",
            "cluster",
        ],
    )
    .lines()
    .last()
    .expect("key line")
    .to_owned();
    let runner_key = admin(
        &host_db,
        &[
            "create-api-key",
            "--email",
            "ops@example.com",
            "--name",
            "runners",
        ],
    )
    .lines()
    .last()
    .expect("key line")
    .to_owned();

    let git = GitServer::start_on(gateway);
    let repo = git.repo("svc");
    let base = repo.commit("base", &[("app.py", "x = 1\n")]);
    let llm = FakeLlm::start_on((gateway, 0).into(), MODEL_KEY).await;

    // Two replicas behind one alias.
    let mut replicas = Vec::new();
    for role in ["server-a", "server-b"] {
        let name = cluster.name(role);
        let env = [
            format!("DATABASE_URL={db}"),
            format!("AI_REVIEW_SECRET_KEY={SECRET_KEY}"),
            "LOG_FORMAT=json".into(),
            "RUST_LOG=info,ai_review_server=debug,ai_review_store_postgres=debug".into(),
            format!("REAPER_INTERVAL_MS={REAPER_INTERVAL_MS}"),
            "TASK_LEASE_MS=4000".into(),
            "RUNNER_HEARTBEAT_TIMEOUT_MS=4000".into(),
            "MAX_POLL_WAIT_MS=2000".into(),
            "RATE_LIMIT_PER_SECOND=0".into(),
        ];
        let mut args = vec![
            "run".to_owned(),
            "-d".into(),
            "--name".into(),
            name.clone(),
            "--network".into(),
            cluster.network.clone(),
            "--network-alias".into(),
            "ai-review".into(),
            "-p".into(),
            "127.0.0.1::3000".into(),
        ];
        for e in &env {
            args.push("-e".into());
            args.push(e.clone());
        }
        args.push(image.clone());
        args.push("server".into());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        docker_ok(&args);
        cluster.containers.push(name.clone());
        let url = published_url(&name);
        wait_healthy(&url).await;
        replicas.push(Replica {
            name,
            url,
            http: reqwest::Client::new(),
            key: key.clone(),
        });
    }
    let reaper_start = (Instant::now(), reaper_runs(&host_db).await);

    let ai = {
        let a = replicas[0]
            .call(
                reqwest::Method::POST,
                "/api/ai-configs",
                Some(
                    &json!({"name": "fake", "provider": "openai", "baseUrl": llm.base_url(),
                             "model": "gpt-4o-mini", "apiKey": MODEL_KEY, "timeoutMs": 15_000,
                             "tokenBudget": 200_000}),
                ),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.body);
        a.body["data"]["id"]
            .as_str()
            .expect("ai config id")
            .to_owned()
    };

    // Three runners, each with its own workspace directory (its "host").
    let workspaces = tempfile::tempdir().expect("tempdir");
    let mut runners = Vec::new();
    for i in 1..=3 {
        let id = format!("air-runner{i}-{}", cluster.suffix);
        let ws = workspaces.path().join(format!("runner{i}"));
        std::fs::create_dir_all(&ws).expect("workspace dir");
        let ws = ws.display().to_string();
        let env = [
            "RUNNER_SERVER_URL=http://ai-review:3000".to_owned(),
            format!("RUNNER_TOKEN={runner_key}"),
            format!("RUNNER_NAME={id}"),
            format!("RUNNER_ID={id}"),
            format!("DOCKER_EXECUTOR_IMAGE={executor}"),
            format!("DOCKER_WORKSPACE_BASE={ws}"),
            "DOCKER_POOL_SIZE=0".into(),
            "DOCKER_MEMORY_LIMIT=256m".into(),
            "DOCKER_TIMEOUT_SECONDS=120".into(),
            "RUNNER_MAX_CONCURRENT_JOBS=1".into(),
            "RUNNER_POLL_TIMEOUT_MS=2000".into(),
            "RUNNER_POLL_INTERVAL_MS=100".into(),
            "RUNNER_HEARTBEAT_INTERVAL_MS=300".into(),
            "RUNNER_REQUEST_TIMEOUT_MS=3000".into(),
            "RUNNER_DRAIN_TIMEOUT_MS=1000".into(),
            "LOG_FORMAT=json".into(),
            "RUST_LOG=info,ai_review_runner=debug".into(),
            // Inside the container only; read with `docker exec` below.
            "RUNNER_METRICS_ADDR=127.0.0.1:9101".into(),
        ];
        let mut args = vec![
            "run".to_owned(),
            "-d".into(),
            "--name".into(),
            id.clone(),
            "--network".into(),
            cluster.network.clone(),
            "-v".into(),
            "/var/run/docker.sock:/var/run/docker.sock".into(),
            "-v".into(),
            format!("{ws}:{ws}"),
        ];
        for e in &env {
            args.push("-e".into());
            args.push(e.clone());
        }
        args.push(image.clone());
        args.push("runner".into());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        docker_ok(&args);
        cluster.containers.push(id.clone());
        cluster.runner_ids.push(id.clone());
        runners.push(id);
    }
    let (a, b) = (&replicas[0], &replicas[1]);
    let mut all = Vec::new();
    let mut request_ids = Vec::new();
    let change =
        |n: usize| repo.commit(&format!("change {n}"), &[("app.py", &format!("x = {n}\n"))]);

    // 1. Reviews queued through both replicas, all completed once.
    let mut phase = Vec::new();
    for n in 0..6 {
        let head = change(n);
        let via = if n % 2 == 0 { a } else { b };
        let (id, rid) = via.enqueue(&repo.url, &base, &head, &ai).await;
        phase.push(id.clone());
        request_ids.push((id, rid));
    }
    let done = all_completed_once(b, &phase).await;
    let served: std::collections::BTreeSet<String> = done
        .iter()
        .filter_map(|r| r["task"]["runnerId"].as_str().map(str::to_owned))
        .collect();
    assert!(
        served.len() >= 2,
        "the work spread over the runners: {served:?}"
    );
    all.extend(phase);

    // 2. One replica stops while runners hold tasks and others wait.
    let gate = Gate::new();
    let g = gate.clone();
    llm.set_default(move |_| Reply::gated(&g, Reply::review()));
    let mut phase = Vec::new();
    for n in 10..16 {
        let head = change(n);
        let via = if n % 2 == 0 { a } else { b };
        phase.push(via.enqueue(&repo.url, &base, &head, &ai).await.0);
    }
    wait_running(b, &phase, 3).await;
    docker_ok(&["stop", "-t", "20", &a.name]);
    gate.open();
    llm.set_default(|_| Reply::review());
    all_completed_once(b, &phase).await;
    all.extend(phase);

    // 3. A runner container stops while it holds a task.
    let gate = Gate::new();
    let g = gate.clone();
    llm.set_default(move |_| Reply::gated(&g, Reply::review()));
    let mut phase = Vec::new();
    for n in 20..23 {
        let head = change(n);
        phase.push(b.enqueue(&repo.url, &base, &head, &ai).await.0);
    }
    let running = wait_running(b, &phase, 3).await;
    let (stopped_review, stopped_runner) = running[0].clone();
    docker_ok(&["stop", "-t", "30", &stopped_runner]);
    let interrupted = b
        .wait_review(&stopped_review, "was given back", |r| {
            r["task"]["attempts"]
                .as_array()
                .is_some_and(|a| a.first().is_some_and(|a| a["outcome"] != Value::Null))
        })
        .await;
    gate.open();
    llm.set_default(|_| Reply::review());
    let done = all_completed_once(b, &phase).await;
    let again = done
        .iter()
        .find(|r| r["id"] == stopped_review)
        .expect("the interrupted review");
    assert!(
        again["task"]["attempt"].as_u64() >= Some(2) && again["task"]["runnerId"] != stopped_runner,
        "{stopped_review} was finished by another runner: {interrupted:#} then {again:#}"
    );
    all.extend(phase);

    // 4. A runner is cut off the network while it holds a task: its lease
    //    expires, another runner completes the review, and when it comes
    //    back its late result is refused.
    let gate = Gate::new();
    let g = gate.clone();
    llm.set_default(move |_| Reply::gated(&g, Reply::review()));
    let mut phase = Vec::new();
    for n in 30..32 {
        let head = change(n);
        phase.push(b.enqueue(&repo.url, &base, &head, &ai).await.0);
    }
    let running = wait_running(b, &phase, 2).await;
    let (cut_review, cut_runner) = running[0].clone();
    docker_ok(&["network", "disconnect", &cluster.network, &cut_runner]);
    b.wait_review(&cut_review, "lost its lease", |r| {
        r["task"]["attempts"]
            .as_array()
            .and_then(|a| a.first())
            .is_some_and(|a| a["outcome"] == "lease_expired")
    })
    .await;
    gate.open();
    llm.set_default(|_| Reply::review());
    let done = all_completed_once(b, &phase).await;
    let finished = done
        .iter()
        .find(|r| r["id"] == cut_review)
        .expect("the cut-off review")
        .clone();
    assert_ne!(finished["task"]["runnerId"], cut_runner, "{finished:#}");
    docker_ok(&["network", "connect", &cluster.network, &cut_runner]);
    // Back on the network it heartbeats again; the review stays as it was.
    let start = Instant::now();
    loop {
        let r = b.get(&format!("/api/runners/{cut_runner}")).await;
        if r["data"]["status"] != "offline" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{cut_runner} never came back: {r:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The runner, back on the network, finds the task is no longer its
    // own: its late result is refused as stale (409), or a heartbeat or
    // phase report tells it first and it sends none. Either way its own
    // metrics count the work as lost with the lease; only then is "nothing
    // posted twice" proven (the review is checked unchanged below).
    let task_id = finished["task"]["id"].as_str().unwrap_or_default();
    let start = Instant::now();
    loop {
        let out = docker(&["logs", &cut_runner]);
        let cut_log = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        let ended = cut_log
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|l| {
                l["fields"]["task.id"] == task_id
                    && ((l["fields"]["message"] == "result refused"
                        && l["fields"]["status"] == 409)
                        || l["fields"]["message"] == "lease lost; result not submitted")
            });
        let lost = runner_metrics(&cut_runner)
            .value("ai_review_runner_tasks_total", &[("outcome", "lease_lost")]);
        if ended && lost == Some(1.0) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "{cut_runner} never gave up task {task_id} as lost (lease_lost = {lost:?}):\n{cut_log}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let m = runner_metrics(&cut_runner);
    assert_eq!(m.value("ai_review_runner_slots", &[]), Some(1.0));
    assert_eq!(m.value("ai_review_runner_slots_in_use", &[]), Some(0.0));
    assert!(
        ai_review_testkit::docker::containers_of(&cut_runner).is_empty(),
        "{cut_runner} removed the lost task's container"
    );
    all.extend(phase);
    let after = all_completed_once(b, &all).await;
    let cut_after = after
        .iter()
        .find(|r| r["id"] == cut_review)
        .expect("the cut-off review");
    assert_eq!(cut_after["task"]["events"], finished["task"]["events"]);
    assert_eq!(cut_after["task"]["result"], finished["task"]["result"]);

    // The reaper ran once per period across both replicas: fewer passes
    // than periods elapsed (two uncoordinated replicas would make twice as
    // many), but it did run.
    let (t0, runs0) = reaper_start;
    let runs = reaper_runs(&host_db).await - runs0;
    let periods = t0.elapsed().as_millis() as f64 / (REAPER_INTERVAL_MS as f64 * 0.9);
    assert!(
        (runs as f64) <= periods + 2.0 && (runs as f64) >= periods / 4.0,
        "{runs} reaper passes in {:?} ({periods:.1} periods)",
        t0.elapsed()
    );
    let m = b.metrics().await;
    assert!(m.value("ai_review_reaper_runs_total", &[]).unwrap_or(0.0) >= 1.0);

    // No secret in any log, and the request id travelled.
    let container_logs = |c: &str| {
        let out = docker(&["logs", c]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let mut logs: String = cluster
        .containers
        .iter()
        .map(|c| container_logs(c))
        .collect();
    for id in &all {
        logs.push_str(&b.get(&format!("/api/reviews/{id}/logs")).await.to_string());
    }
    let secrets = [
        MODEL_KEY,
        PG_PASSWORD,
        ADMIN_PASSWORD,
        SECRET_KEY,
        key.as_str(),
        runner_key.as_str(),
    ];
    for s in secrets {
        assert!(!logs.contains(s), "a secret ({}…) is in the logs", &s[..6]);
    }
    let (review, rid) = &request_ids[0];
    let server_logs: String = ["server-a", "server-b"]
        .iter()
        .map(|r| container_logs(&cluster.name(r)))
        .collect();
    assert!(
        server_logs.contains(rid.as_str()),
        "request id {rid} in the server logs"
    );
    let task_log = b
        .get(&format!("/api/reviews/{review}/logs"))
        .await
        .to_string();
    assert!(
        task_log.contains(rid.as_str()),
        "request id {rid} in the task log: {task_log}"
    );
}

/// A runner's `/metrics`, read inside its container (the listener is on
/// the container's loopback) with bash's `/dev/tcp`.
fn runner_metrics(container: &str) -> ai_review_testkit::prom::Exposition {
    let raw = docker_ok(&[
        "exec",
        container,
        "bash",
        "-c",
        "exec 3<>/dev/tcp/127.0.0.1/9101 && \
         printf 'GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3 && cat <&3",
    ]);
    let body = raw
        .split_once("\r\n\r\n")
        .map_or(raw.as_str(), |(_, b)| b)
        .to_owned();
    ai_review_testkit::prom::parse(&body)
        .unwrap_or_else(|e| panic!("{container} /metrics: {e}\n{raw}"))
}

/// Removes the test's image at the end.
struct ImageGuard(String);

impl Drop for ImageGuard {
    fn drop(&mut self) {
        let _ = docker(&["rmi", "-f", &self.0]);
    }
}

fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{:x}{:x}", std::process::id(), nanos)
}

async fn create_database(admin_url: &str) {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(admin_url)
        .await
        .expect("connect to the cluster's PostgreSQL");
    sqlx::raw_sql("CREATE DATABASE ai_review")
        .execute(&mut c)
        .await
        .expect("create the database");
}

/// Reaper passes recorded in the shared database.
async fn reaper_runs(db: &str) -> u64 {
    use ai_review_store::Store;
    let store = ai_review_store_postgres::PgStore::connect(db)
        .await
        .expect("connect to the cluster's database");
    store.periodic_runs("reaper").await.expect("reaper runs")
}
