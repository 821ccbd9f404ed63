//! Runner benchmarks: how fast the executor is running after a claim, warm
//! pool versus cold container versus plain `docker run`, and the runner's
//! memory.

use ai_review_executor::{STARTED_MARKER, TASK_FILE};
use ai_review_runner::agent::container_spec;
use ai_review_runner::config::RunnerConfig;
use ai_review_runner::docker::DockerEngine;
use ai_review_runner::engine::{ContainerEngine, OutputStream};
use futures::StreamExt;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn config(image: &str, ws: &Path) -> anyhow::Result<RunnerConfig> {
    let env: HashMap<String, String> = [
        ("RUNNER_SERVER_URL", "http://127.0.0.1:9"),
        (
            "RUNNER_TOKEN",
            "air_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ),
        ("RUNNER_NAME", "bench"),
        ("DOCKER_EXECUTOR_IMAGE", image),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .chain([("DOCKER_WORKSPACE_BASE".to_owned(), ws.display().to_string())])
    .collect();
    RunnerConfig::from_map(&env).map_err(|e| anyhow::anyhow!("{e}"))
}

/// A workspace whose task file points at a tiny repository.
fn workspace(dir: &Path, with_task: bool) -> anyhow::Result<Vec<u8>> {
    std::fs::create_dir_all(dir.join("repo"))?;
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(dir.join("repo"))
            .args(args)
            .env("GIT_AUTHOR_NAME", "b")
            .env("GIT_AUTHOR_EMAIL", "b@e")
            .env("GIT_COMMITTER_NAME", "b")
            .env("GIT_COMMITTER_EMAIL", "b@e")
            .output()
    };
    git(&["init", "-q"])?;
    std::fs::write(dir.join("repo/a.txt"), "1\n")?;
    git(&["add", "."])?;
    git(&["commit", "-qm", "a"])?;
    let base = String::from_utf8(git(&["rev-parse", "HEAD"])?.stdout)?
        .trim()
        .to_owned();
    std::fs::write(dir.join("repo/a.txt"), "2\n")?;
    git(&["commit", "-qam", "b"])?;
    let head = String::from_utf8(git(&["rev-parse", "HEAD"])?.stdout)?
        .trim()
        .to_owned();
    Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(dir)
        .status()?;
    let task = serde_json::to_vec(
        &serde_json::json!({"version": 1, "taskId": "bench", "baseSha": base, "headSha": head}),
    )?;
    if with_task {
        std::fs::write(dir.join(TASK_FILE), &task)?;
    }
    Ok(task)
}

async fn until_marker(engine: &DockerEngine, id: &str) -> anyhow::Result<()> {
    let mut out = engine.output(id);
    let mut seen = Vec::new();
    while let Some(chunk) = out.next().await {
        let c = chunk?;
        if c.stream == OutputStream::Stderr {
            seen.extend_from_slice(&c.bytes);
            if String::from_utf8_lossy(&seen).contains(STARTED_MARKER) {
                return Ok(());
            }
        }
    }
    anyhow::bail!(
        "the executor never started: {}",
        String::from_utf8_lossy(&seen)
    )
}

/// Milliseconds to the executor's start marker: (warm, cold, plain docker run).
pub async fn start_latency(
    image: &str,
    rounds: usize,
) -> anyhow::Result<(Vec<f64>, Vec<f64>, Vec<f64>)> {
    let ws = tempfile::tempdir()?;
    let cfg = config(image, ws.path())?;
    let engine = DockerEngine::connect(&cfg.docker_host).await?;
    let (mut warm, mut cold, mut plain) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..rounds {
        // Warm: the container already runs, waiting for its task file.
        let dir = ws.path().join(format!("warm-{i}"));
        let task = workspace(&dir, false)?;
        let name = format!("ai-review-bench-warm-{i}-{}", std::process::id());
        let id = engine
            .create(&container_spec(&cfg, &name, &dir, true))
            .await?;
        engine.start(&id).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let t0 = Instant::now();
        std::fs::write(dir.join(".t"), &task)?;
        std::fs::rename(dir.join(".t"), dir.join(TASK_FILE))?;
        until_marker(&engine, &id).await?;
        warm.push(t0.elapsed().as_secs_f64() * 1000.0);
        engine.remove(&id).await?;

        // Cold: create and start when the task arrives.
        let dir = ws.path().join(format!("cold-{i}"));
        workspace(&dir, true)?;
        let name = format!("ai-review-bench-cold-{i}-{}", std::process::id());
        let t0 = Instant::now();
        let id = engine
            .create(&container_spec(&cfg, &name, &dir, false))
            .await?;
        engine.start(&id).await?;
        until_marker(&engine, &id).await?;
        cold.push(t0.elapsed().as_secs_f64() * 1000.0);
        engine.remove(&id).await?;

        // Plain `docker run --rm` of the same image and workspace.
        let dir = ws.path().join(format!("plain-{i}"));
        workspace(&dir, true)?;
        let t0 = Instant::now();
        let mut child = Command::new("docker")
            .args(["run", "--rm", "--network", "none", "-v"])
            .arg(format!("{}:/workspace:ro", dir.display()))
            .args([image, "run"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stderr"))?;
        for line in BufReader::new(stderr).lines() {
            if line?.contains(STARTED_MARKER) {
                break;
            }
        }
        plain.push(t0.elapsed().as_secs_f64() * 1000.0);
        child.wait()?;
    }
    Ok((warm, cold, plain))
}
