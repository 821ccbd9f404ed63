//! `ai-review-bench`: measures the server's queue through real HTTP on
//! loopback. Run in release mode:
//!
//! ```text
//! cargo run --release -p ai-review-bench -- all
//! cargo run --release -p ai-review-bench -- all --database-url postgres://…
//! ```
//!
//! Scenarios:
//! * `latency`: one runner long-polls; a client enqueues one task at a time;
//!   time from sending the enqueue to the runner receiving the task.
//! * `throughput`: N tasks queued, 16 simulated runners claim and submit
//!   results as fast as they can; completed tasks per second.
//! * `heartbeats`: 16 runners heartbeat as fast as they can; heartbeats per
//!   second and latency.
//! * `rss`: the `ai-review server` binary's resident memory when idle.
//! * `replica-wakeup`, `replica-throughput`: two server replicas on one
//!   PostgreSQL (`--database-url postgres://…`, or a throwaway cluster
//!   started like the test suites'); see [`replicas`].
//!
//! Clients and server share the machine's cores, as they would in any
//! single-host benchmark; results are in `docs/benchmarks.md`.

mod containers;
mod executor;
mod replicas;

use ai_review_domain::{
    ApiKeyId, ApiKeySecret, Email, Permission, Role, RunnerId, RunnerStatus, TaskOutcome,
    Timestamp, UserId,
};
use ai_review_protocol::client::{Registration, RunnerClient};
use ai_review_server::clock::SystemClock;
use ai_review_server::config::Settings;
use ai_review_server::{RunningServer, open_store};
use ai_review_store::{DynStore, NewApiKey, NewUser};
use anyhow::Context;
use clap::{Parser, ValueEnum};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(about = "Benchmarks of the ai-review server")]
struct Args {
    /// Which scenario.
    #[arg(value_enum)]
    scenario: Scenario,
    /// Database URL; default: a fresh SQLite file in a temporary directory.
    #[arg(long, env = "BENCH_DATABASE_URL")]
    database_url: Option<String>,
    /// Repetitions of each scenario (the spread is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Tasks for `latency`.
    #[arg(long, default_value_t = 500)]
    latency_tasks: usize,
    /// Tasks for `throughput`.
    #[arg(long, default_value_t = 5000)]
    throughput_tasks: usize,
    /// Simulated runners for `throughput` and `heartbeats`.
    #[arg(long, default_value_t = 16)]
    runners: usize,
    /// Executor image for `containers`.
    #[arg(long, default_value = "ai-review-executor:latest")]
    image: String,
    /// Rounds of `containers`.
    #[arg(long, default_value_t = 20)]
    container_rounds: usize,
    /// Seconds of heartbeating.
    #[arg(long, default_value_t = 5)]
    heartbeat_secs: u64,
    /// Samples per run of `replica-wakeup`.
    #[arg(long, default_value_t = 200)]
    wakeup_samples: usize,
    /// Tasks per run of `replica-throughput`.
    #[arg(long, default_value_t = 2000)]
    replica_tasks: usize,
    /// Concurrent runner loops of `replica-throughput`.
    #[arg(long, default_value_t = 8)]
    replica_runners: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Latency,
    Throughput,
    Heartbeats,
    Rss,
    /// Executor start latency: warm pool vs cold vs plain `docker run`.
    Containers,
    /// The runner process's memory, idle and with 4 tasks in flight.
    RunnerRss,
    /// Executor overhead (no model) on 1k- and 10k-line changes.
    Executor,
    /// Two replicas on one PostgreSQL: enqueue on A → claim by a runner
    /// long-polling on B (p50/p95/p99/max). PostgreSQL only.
    ReplicaWakeup,
    /// Claim → result throughput, runners on one replica vs split across
    /// two on the same PostgreSQL. PostgreSQL only.
    ReplicaThroughput,
    /// Every scenario above except `containers`, `runner-rss`, `executor`
    /// and the replica ones.
    All,
}

struct Bench {
    server: RunningServer,
    key: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn start(database_url: Option<&str>) -> anyhow::Result<Bench> {
    let dir = tempfile::tempdir()?;
    let url = match database_url {
        Some(u) => u.to_owned(),
        None => format!("sqlite://{}", dir.path().join("bench.db").display()),
    };
    let store = open_store(&url).await?;
    let key = create_key(&store, Role::User, vec![Permission::ReviewCreate]).await?;
    let settings = Settings {
        rate_limit: None,
        ..Settings::default()
    };
    let server = RunningServer::start(settings, store, Arc::new(SystemClock), true).await?;
    Ok(Bench {
        server,
        key,
        http: reqwest::Client::new(),
        _dir: dir,
    })
}

/// A new user (unique e-mail, so a reused database is fine) and an API key
/// of theirs; returns the key's secret.
async fn create_key(
    store: &DynStore,
    role: Role,
    permissions: Vec<Permission>,
) -> anyhow::Result<String> {
    let now = Timestamp::now();
    let email = format!("bench-{}@example.com", UserId::generate());
    let user = store
        .create_user(NewUser {
            id: UserId::generate(),
            email: Email::parse(&email)?,
            password_hash: "unused".into(),
            role,
            permissions,
            now,
        })
        .await?;
    let secret = ApiKeySecret::generate();
    store
        .create_api_key(NewApiKey {
            id: ApiKeyId::generate(),
            user_id: user.id,
            name: "bench".into(),
            prefix: secret.display_prefix(),
            digest: secret.digest(),
            now,
            expires_at: None,
        })
        .await?;
    Ok(secret.expose().to_owned())
}

/// Registers a runner (id unique per call: a reused database keeps earlier
/// runs' runners, owned by earlier runs' users) on the server at `url`.
async fn register_runner(url: &str, key: &str, id: &str) -> anyhow::Result<RunnerClient> {
    let id = format!("{id}-{}", &UserId::generate().as_str()[24..]);
    // Longer than any long-poll the benchmarks hold (30 s).
    let c = RunnerClient::new(url, key, RunnerId::parse(&id)?, Duration::from_secs(60))?;
    c.register(&Registration {
        name: id.clone(),
        version: "bench".into(),
        max_concurrency: 64,
        tags: String::new(),
    })
    .await?;
    Ok(c)
}

/// `POST /api/reviews` of a review that needs nothing from a forge.
async fn enqueue_at(http: &reqwest::Client, url: &str, key: &str) -> anyhow::Result<()> {
    let body = serde_json::json!({
        "repoUrl": "https://git.example.com/g/r.git",
        "baseSha": "a".repeat(40),
        "headSha": "b".repeat(40),
    });
    let resp = http
        .post(format!("{url}/api/reviews"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await?;
    anyhow::ensure!(
        resp.status().as_u16() == 202,
        "enqueue answered {}",
        resp.status()
    );
    Ok(())
}

impl Bench {
    async fn runner(&self, id: &str) -> anyhow::Result<RunnerClient> {
        register_runner(&self.server.url(), &self.key, id).await
    }

    async fn enqueue(&self) -> anyhow::Result<()> {
        enqueue_at(&self.http, &self.server.url(), &self.key).await
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

async fn latency(args: &Args) -> anyhow::Result<(f64, f64)> {
    let b = start(args.database_url.as_deref()).await?;
    let r = b.runner("latency-runner").await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let poller = {
        let r = r.clone();
        let n = args.latency_tasks;
        tokio::spawn(async move {
            let mut got = 0;
            while got < n {
                let tasks = r.poll(1, Duration::from_secs(30)).await?;
                for t in tasks {
                    let _ = tx.send(Instant::now());
                    got += 1;
                    r.submit_result(
                        &t.task_id,
                        t.attempt,
                        TaskOutcome::Succeeded,
                        None,
                        false,
                        None,
                    )
                    .await?;
                }
            }
            anyhow::Ok(())
        })
    };
    let mut samples = Vec::with_capacity(args.latency_tasks);
    for _ in 0..args.latency_tasks {
        // Let the runner get back into its long-poll before the next enqueue.
        tokio::time::sleep(Duration::from_millis(2)).await;
        let t0 = Instant::now();
        b.enqueue().await?;
        let t1 = rx.recv().await.context("poller stopped")?;
        samples.push(t1.saturating_duration_since(t0).as_secs_f64() * 1000.0);
    }
    poller.await??;
    b.server.stop().await?;
    samples.sort_by(f64::total_cmp);
    Ok((percentile(&samples, 0.5), percentile(&samples, 0.99)))
}

async fn throughput(args: &Args) -> anyhow::Result<f64> {
    let b = start(args.database_url.as_deref()).await?;
    for _ in 0..args.throughput_tasks {
        b.enqueue().await?;
    }
    let done = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut handles = Vec::new();
    for i in 0..args.runners {
        let r = b.runner(&format!("tp-{i}")).await?;
        let done = done.clone();
        handles.push(tokio::spawn(async move {
            loop {
                let tasks = r.poll(1, Duration::ZERO).await?;
                if tasks.is_empty() {
                    return anyhow::Ok(());
                }
                for t in tasks {
                    r.submit_result(
                        &t.task_id,
                        t.attempt,
                        TaskOutcome::Succeeded,
                        None,
                        false,
                        Some(serde_json::json!({"ok": true})),
                    )
                    .await?;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for h in handles {
        h.await??;
    }
    let secs = t0.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    anyhow::ensure!(
        n as usize == args.throughput_tasks,
        "completed {n} of {}",
        args.throughput_tasks
    );
    b.server.stop().await?;
    Ok(n as f64 / secs)
}

async fn heartbeats(args: &Args) -> anyhow::Result<(f64, f64, f64)> {
    let b = start(args.database_url.as_deref()).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for i in 0..args.runners {
        let r = b.runner(&format!("hb-{i}")).await?;
        let stop = stop.clone();
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                r.heartbeat(RunnerStatus::Online, 0).await?;
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            anyhow::Ok(lat)
        }));
    }
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.heartbeat_secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await??);
    }
    let secs = t0.elapsed().as_secs_f64();
    b.server.stop().await?;
    all.sort_by(f64::total_cmp);
    Ok((
        all.len() as f64 / secs,
        percentile(&all, 0.5),
        percentile(&all, 0.99),
    ))
}

fn rss_idle() -> anyhow::Result<f64> {
    let exe = std::env::current_exe()?;
    let bin = exe.with_file_name("ai-review");
    anyhow::ensure!(
        bin.exists(),
        "{} not found: build it first (cargo build --release -p ai-review)",
        bin.display()
    );
    let dir = tempfile::tempdir()?;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let mut child = std::process::Command::new(&bin)
        .args(["server", "--host", "127.0.0.1", "--port", &port.to_string()])
        .env("AI_REVIEW_DATA_DIR", dir.path())
        .env_remove("DATABASE_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    std::thread::sleep(Duration::from_secs(3));
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id()))?;
    child.kill()?;
    child.wait()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .context("no VmRSS")?
        .parse()?;
    Ok(kb / 1024.0)
}

fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .context("no VmRSS")?
        .parse()?;
    Ok(kb / 1024.0)
}

/// Starts the `ai-review runner` binary against an in-process server and
/// reads its RSS idle, then with 4 sleeping review containers in flight.
async fn runner_rss() -> anyhow::Result<(f64, f64)> {
    let b = start(None).await?;
    let git = ai_review_testkit::git::GitServer::start();
    let repo = git.repo("bench");
    let base = repo.commit("base", &[("a.txt", "1\n")]);
    let head = repo.commit("head", &[("a.txt", "2\n")]);
    let image = ai_review_testkit::docker::misbehaving_image("sleeper", "sleep 600");
    let ws = tempfile::tempdir()?;
    let id = format!("rss-{}", &UserId::generate().as_str()[24..]);
    let bin = std::env::current_exe()?.with_file_name("ai-review");
    let mut child = std::process::Command::new(&bin)
        .arg("runner")
        .env("RUNNER_SERVER_URL", b.server.url())
        .env("RUNNER_TOKEN", &b.key)
        .env("RUNNER_NAME", &id)
        .env("DOCKER_EXECUTOR_IMAGE", &image)
        .env("DOCKER_WORKSPACE_BASE", ws.path())
        .env("RUNNER_MAX_CONCURRENT_JOBS", "4")
        .env("DOCKER_POOL_SIZE", "1")
        .env("RUNNER_DRAIN_TIMEOUT_MS", "100")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("start {}", bin.display()))?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle = rss_mib(child.id())?;
    for _ in 0..4 {
        let body = serde_json::json!({"repoUrl": repo.url, "baseSha": base, "headSha": head});
        b.http
            .post(format!("{}/api/reviews", b.server.url()))
            .bearer_auth(&b.key)
            .json(&body)
            .send()
            .await?;
    }
    let t0 = Instant::now();
    while ai_review_testkit::docker::containers_of(&id).len() < 5
        && t0.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let busy = rss_mib(child.id())?;
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    child.wait()?;
    b.server.stop().await?;
    Ok((idle, busy))
}

fn spread(v: &[f64]) -> String {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    format!(
        "median {:.2} (min {:.2}, max {:.2}, n={})",
        percentile(&s, 0.5),
        min,
        max,
        v.len()
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ai_review_protocol::client::ensure_crypto_provider();
    let args = Args::parse();
    let replica_scenario = matches!(
        args.scenario,
        Scenario::ReplicaWakeup | Scenario::ReplicaThroughput
    );
    let pg_server = std::env::var(ai_review_pg_testing::SERVER_URL_ENV).unwrap_or_default();
    let backend = match (&args.database_url, replica_scenario) {
        (Some(_), _) => "postgres/external".to_owned(),
        (None, true) if !pg_server.trim().is_empty() => {
            let server = pg_server.split('@').next_back().unwrap_or("");
            format!("postgres/a fresh database per run on {server}")
        }
        (None, true) => "postgres/throwaway cluster, fsync off".to_owned(),
        (None, false) => "sqlite".to_owned(),
    };
    if replica_scenario {
        replicas::require_postgres(args.database_url.as_deref())?;
    }
    println!("# ai-review-bench ({backend}, {} runs)", args.runs);
    let all = args.scenario == Scenario::All;
    if all || args.scenario == Scenario::Latency {
        let (mut p50, mut p99) = (Vec::new(), Vec::new());
        for _ in 0..args.runs {
            let (a, b) = latency(&args).await?;
            p50.push(a);
            p99.push(b);
        }
        println!("enqueue→claim latency p50 ms: {}", spread(&p50));
        println!("enqueue→claim latency p99 ms: {}", spread(&p99));
    }
    if all || args.scenario == Scenario::Throughput {
        let mut tps = Vec::new();
        for _ in 0..args.runs {
            tps.push(throughput(&args).await?);
        }
        println!(
            "claim→result throughput, {} runners, tasks/s: {}",
            args.runners,
            spread(&tps)
        );
    }
    if all || args.scenario == Scenario::Heartbeats {
        let (mut rate, mut p50, mut p99) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..args.runs {
            let (r, a, b) = heartbeats(&args).await?;
            rate.push(r);
            p50.push(a);
            p99.push(b);
        }
        println!("heartbeats/s ({} runners): {}", args.runners, spread(&rate));
        println!("heartbeat latency p50 ms: {}", spread(&p50));
        println!("heartbeat latency p99 ms: {}", spread(&p99));
    }
    if args.scenario == Scenario::Containers {
        let (warm, cold, plain) =
            containers::start_latency(&args.image, args.container_rounds).await?;
        let p50 = |v: &[f64]| {
            let mut s = v.to_vec();
            s.sort_by(f64::total_cmp);
            percentile(&s, 0.5)
        };
        println!("claim→executor running, warm pool ms: {}", spread(&warm));
        println!(
            "claim→executor running, cold container ms: {}",
            spread(&cold)
        );
        println!(
            "plain `docker run --rm` → executor running ms: {}",
            spread(&plain)
        );
        println!(
            "warm/cold = {:.2} (target ≤ 0.3), cold/plain = {:.2} (target ≤ 1.1)",
            p50(&warm) / p50(&cold),
            p50(&cold) / p50(&plain)
        );
    }
    if args.scenario == Scenario::Executor {
        for with_model in [false, true] {
            for lines in [1_000, 10_000] {
                let (secs, calls) = executor::overhead(lines, 5, with_model)?;
                let mode = if with_model {
                    format!("with an instant model gateway ({calls} calls)")
                } else {
                    "checks only".to_owned()
                };
                println!(
                    "executor overhead, {lines} changed lines over 200 files, {mode}, s: {}",
                    spread(&secs)
                );
            }
        }
    }
    if args.scenario == Scenario::ReplicaWakeup {
        let (mut p50, mut p95, mut p99, mut max) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for run in 0..args.runs {
            let url = replicas::database_url(args.database_url.as_deref()).await?;
            let ms = replicas::wakeup(&url, args.wakeup_samples).await?;
            let (a, b, c, d) = replicas::summary(&ms);
            println!(
                "run {}: {} samples, p50 {a:.2} p95 {b:.2} p99 {c:.2} max {d:.2} ms",
                run + 1,
                ms.len()
            );
            p50.push(a);
            p95.push(b);
            p99.push(c);
            max.push(d);
        }
        println!("enqueue on A → claim on B p50 ms: {}", spread(&p50));
        println!("enqueue on A → claim on B p95 ms: {}", spread(&p95));
        println!("enqueue on A → claim on B p99 ms: {}", spread(&p99));
        println!("enqueue on A → claim on B max ms: {}", spread(&max));
    }
    if args.scenario == Scenario::ReplicaThroughput {
        let (mut one, mut two) = (Vec::new(), Vec::new());
        for run in 0..args.runs {
            // Alternated, so a drift in the machine's load hits both alike.
            for (replicas, out) in [(1, &mut one), (2, &mut two)] {
                let url = replicas::database_url(args.database_url.as_deref()).await?;
                let tps =
                    replicas::throughput(&url, replicas, args.replica_runners, args.replica_tasks)
                        .await?;
                println!("run {}: {replicas} replica(s): {tps:.0} tasks/s", run + 1);
                out.push(tps);
            }
        }
        println!(
            "claim→result throughput, {} runners on 1 replica, tasks/s: {}",
            args.replica_runners,
            spread(&one)
        );
        println!(
            "claim→result throughput, {} runners split over 2 replicas, tasks/s: {}",
            args.replica_runners,
            spread(&two)
        );
    }
    if args.scenario == Scenario::RunnerRss {
        let (mut idle, mut busy) = (Vec::new(), Vec::new());
        for _ in 0..args.runs {
            let (i, b) = runner_rss().await?;
            idle.push(i);
            busy.push(b);
        }
        println!("runner RSS idle MiB: {}", spread(&idle));
        println!("runner RSS with 4 tasks in flight MiB: {}", spread(&busy));
    }
    if (all || args.scenario == Scenario::Rss) && args.database_url.is_none() {
        let mut rss = Vec::new();
        for _ in 0..args.runs {
            rss.push(rss_idle()?);
        }
        println!("server RSS idle MiB: {}", spread(&rss));
    }
    Ok(())
}
