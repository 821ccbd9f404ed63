//! The executor binary: `scan` over whole files, `run` against a workspace,
//! and its usage errors.

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
