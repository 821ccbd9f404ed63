//! The executor binary: `scan` over whole files, `run` against a workspace,
//! and its usage errors.

mod common;

use common::{MockGateway, Reply, Repo, answer, find_line, finding, model, task, user};
use std::process::Command;

fn exe() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ai-review-executor"))
}

#[test]
fn scan_reports_findings_as_json_lines() {
    let d = tempfile::tempdir().expect("tempdir");
    let f = d.path().join("config.env");
    std::fs::write(&f, "A=1\nTOKEN=npm_abcdefghijklmnopqrstuvwxyz0123456789\n").expect("write");
    let out = exe().arg("scan").arg(&f).output().expect("run");
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["line"], 2);
    assert_eq!(lines[0]["ruleId"], "secret/npm-token");
    let missing = exe()
        .args(["scan", "/nonexistent/file"])
        .output()
        .expect("run");
    assert!(!missing.status.success());
}

#[test]
fn run_waits_for_the_task_file_and_usage_errors_exit_2() {
    let d = tempfile::tempdir().expect("tempdir");
    let out = exe()
        .args(["run", "--wait-ms", "50", "--workspace"])
        .arg(d.path())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no task file"));
    let usage = exe().arg("dance").output().expect("run");
    assert_eq!(usage.status.code(), Some(2));
}

/// A workspace as the runner lays it out: `repo/` and `task.json`.
fn workspace(repo: &Repo, task: &ai_review_executor::ExecutorTask) -> tempfile::TempDir {
    let ws = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::symlink(repo.path(), ws.path().join("repo")).expect("symlink");
    std::fs::write(
        ws.path().join("task.json"),
        serde_json::to_vec(task).expect("json"),
    )
    .expect("write");
    ws
}

fn small_change() -> (Repo, String, String) {
    let r = Repo::new();
    r.write("a.py", "x = 1\n");
    let base = r.commit("base");
    r.write("a.py", "x = 1\ny = x / 0  # BUG\n");
    let head = r.commit("head");
    (r, base, head)
}

#[test]
fn run_reviews_with_the_gateway_on_the_workspace_socket() {
    let (r, base, head) = small_change();
    let t = task(
        &base,
        &head,
        Some(model(20_000, 500, 50_000)),
        Default::default(),
    );
    let ws = workspace(&r, &t);
    let gw = MockGateway::start_at(&ws.path().join("model.sock"), |_, req| {
        let (file, line) = find_line(user(req), "# BUG").expect("shown");
        Reply::Answer(answer(
            "Divides by zero.",
            "request_changes",
            1,
            vec![finding(
                &file,
                line,
                line,
                "error",
                "bug",
                "Division by zero.",
            )],
        ))
    });
    let out = exe()
        .args(["run", "--wait-ms", "2000", "--workspace"])
        .arg(ws.path())
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(v["kind"], "review");
    assert_eq!(v["ai"]["status"], "completed");
    assert_eq!(v["findings"][0]["line"], 2);
    assert_eq!(v["findings"][0]["source"], "model");
    assert_eq!(v["assessment"], "request_changes");
    assert_eq!(v["usage"]["calls"], 1);
    assert_eq!(gw.requests().len(), 1);
    assert!(
        stderr.contains("model call 1/1") && stderr.contains("review done"),
        "{stderr}"
    );
}

#[test]
fn run_without_a_model_and_with_a_broken_config() {
    let (r, base, head) = small_change();
    let ws = workspace(&r, &task(&base, &head, None, Default::default()));
    let out = exe()
        .args(["run", "--workspace"])
        .arg(ws.path())
        .output()
        .expect("run");
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["ai"]["status"], "skipped");
    assert_eq!(v["rating"], 5);

    r.write(
        ".ai-review.yml",
        "rules:\n  - paths: ['*.py']\n    instructions: x\nexclud: []\n",
    );
    let broken = r.commit("config");
    let ws = workspace(&r, &task(&base, &broken, None, Default::default()));
    let out = exe()
        .args(["run", "--workspace"])
        .arg(ws.path())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error: invalid .ai-review.yml: line 4 column 1: unknown field `exclud`, expected one of `instructions`, `rules`, `exclude`, `minSeverity`"),
        "{stderr}"
    );
}
