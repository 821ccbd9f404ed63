//! Executor overhead without model time: a change of N changed lines over
//! 200 files, the executor run on the host (no container) end to end:
//! read the task file, diff, parse, checks, result.

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

/// Seconds per executor run (one value per run) for a change of
/// `changed_lines` lines spread over 200 files.
pub fn overhead(changed_lines: usize, runs: usize) -> anyhow::Result<Vec<f64>> {
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
    std::fs::write(
        ws.path().join("task.json"),
        serde_json::to_vec(
            &serde_json::json!({"version": 1, "taskId": "bench", "baseSha": base, "headSha": head}),
        )?,
    )?;
    let exe = std::env::current_exe()?.with_file_name("ai-review-executor");
    anyhow::ensure!(
        exe.exists(),
        "{} not found: cargo build --release -p ai-review-executor",
        exe.display()
    );
    let mut secs = Vec::new();
    for _ in 0..runs {
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
    }
    Ok(secs)
}
