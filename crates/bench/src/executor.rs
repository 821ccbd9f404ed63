//! Executor overhead without model time: a change of N changed lines over
//! 200 files, the executor run on the host (no container) end to end:
//! read the task file, diff, parse, checks, result. With `with_model`, the
//! task also configures a model and an instant gateway answers every call
//! on the workspace's socket, so the figure includes exclusions, prompt
//! building, packing under the budget, the socket round trips, answer
//! validation and anchoring, but no model time.

use ai_review_executor::gateway::GATEWAY_SOCKET;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixListener;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "b")
        .env("GIT_AUTHOR_EMAIL", "b@e")
        .env("GIT_COMMITTER_NAME", "b")
        .env("GIT_COMMITTER_EMAIL", "b@e")
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Serves the gateway protocol on `listener`, answering every chat call at
/// once with an empty, valid review; counts the calls.
fn instant_gateway(listener: UnixListener, calls: std::sync::Arc<std::sync::atomic::AtomicU64>) {
    let answer = serde_json::json!({
        "content": serde_json::json!({
            "summary": "Looks fine.", "assessment": "approve", "rating": 5, "findings": []
        }).to_string(),
        "usage": {"inputTokens": 1000, "outputTokens": 20},
        "cached": false,
        "model": "instant",
    })
    .to_string();
    for stream in listener.incoming() {
        let Ok(stream) = stream else { return };
        let mut reader = BufReader::new(stream);
        let mut len = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            continue;
        }
        calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut stream = reader.into_inner();
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
            answer.len()
        );
    }
}

/// Seconds per executor run (one value per run) for a change of
/// `changed_lines` lines spread over 200 files, and the model calls of the
/// last run (0 without a model).
pub fn overhead(
    changed_lines: usize,
    runs: usize,
    with_model: bool,
) -> anyhow::Result<(Vec<f64>, u64)> {
    let ws = tempfile::tempdir()?;
    let repo = ws.path().join("repo");
    std::fs::create_dir_all(&repo)?;
    git(&repo, &["init", "-q"])?;
    let files = 200;
    let per_file = changed_lines.div_ceil(files);
    for f in 0..files {
        let body: String = (0..per_file * 2)
            .map(|i| format!("fn f{f}_{i}() {{ let x = {i}; }}\n"))
            .collect();
        std::fs::write(repo.join(format!("f{f}.rs")), body)?;
    }
    git(&repo, &["add", "."])?;
    git(&repo, &["commit", "-qm", "base"])?;
    let base = git(&repo, &["rev-parse", "HEAD"])?;
    for f in 0..files {
        let body: String = (0..per_file * 2)
            .map(|i| {
                if i % 2 == 0 {
                    format!("fn f{f}_{i}() {{ let y = {i} * 2; }}\n")
                } else {
                    format!("fn f{f}_{i}() {{ let x = {i}; }}\n")
                }
            })
            .collect();
        std::fs::write(repo.join(format!("f{f}.rs")), body)?;
    }
    git(&repo, &["commit", "-qam", "head"])?;
    let head = git(&repo, &["rev-parse", "HEAD"])?;
    let mut task =
        serde_json::json!({"version": 1, "taskId": "bench", "baseSha": base, "headSha": head});
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    if with_model {
        task["model"] = serde_json::json!({
            "provider": "openai", "model": "instant", "tokenBudget": 100_000_000u64,
            "maxOutputTokens": 2_000, "maxInputTokensPerCall": 24_000,
        });
        let listener = UnixListener::bind(ws.path().join(GATEWAY_SOCKET))?;
        let calls = calls.clone();
        std::thread::spawn(move || instant_gateway(listener, calls));
    }
    std::fs::write(ws.path().join("task.json"), serde_json::to_vec(&task)?)?;
    let exe = std::env::current_exe()?.with_file_name("ai-review-executor");
    anyhow::ensure!(
        exe.exists(),
        "{} not found: cargo build --release -p ai-review-executor",
        exe.display()
    );
    let mut secs = Vec::new();
    let mut last_calls = 0;
    for _ in 0..runs {
        let before = calls.load(std::sync::atomic::Ordering::Relaxed);
        let t0 = Instant::now();
        let out = Command::new(&exe)
            .args(["run", "--workspace"])
            .arg(ws.path())
            .output()?;
        secs.push(t0.elapsed().as_secs_f64());
        anyhow::ensure!(
            out.status.success(),
            "executor failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        anyhow::ensure!(v["totals"]["files"] == files, "unexpected result {v}");
        if with_model {
            anyhow::ensure!(
                v["ai"]["status"] == "completed",
                "model review did not complete: {}",
                v["ai"]
            );
        }
        last_calls = calls.load(std::sync::atomic::Ordering::Relaxed) - before;
    }
    Ok((secs, last_calls))
}
