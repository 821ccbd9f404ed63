//! `ai-review review`: a local change reviewed end to end on one machine
//! (embedded server, in-process runner, real container), and the errors a
//! user meets first.

use std::path::Path;
use std::process::Command;

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .status()
        .expect("git")
        .success();
    assert!(ok, "git {args:?}");
}

fn repo() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    let p = d.path();
    git(p, &["init", "-q", "-b", "main"]);
    std::fs::write(p.join("lib.rs"), "fn a() {}\n").expect("write");
    std::fs::write(p.join("gone.txt"), "x\n").expect("write");
    git(p, &["add", "."]);
    git(p, &["commit", "-qm", "base"]);
    std::fs::write(p.join("lib.rs"), "fn a() {}\nfn b() {}\n").expect("write");
    std::fs::write(p.join("new.rs"), "pub mod x;\n").expect("write");
    git(p, &["rm", "-q", "gone.txt"]);
    git(p, &["add", "."]);
    git(p, &["commit", "-qm", "head"]);
    d
}

/// `ai-review review` with no model, server or token from the caller's
/// environment.
fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ai-review"));
    c.arg("review").env_remove("RUST_LOG");
    for var in [
        "AI_REVIEW_LLM_PROVIDER",
        "AI_REVIEW_LLM_BASE_URL",
        "AI_REVIEW_LLM_MODEL",
        "AI_REVIEW_LLM_API_KEY",
        "AI_REVIEW_LLM_TOKEN_BUDGET",
        "AI_REVIEW_LLM_MAX_OUTPUT_TOKENS",
        "AI_REVIEW_LLM_TIMEOUT_MS",
        "AI_REVIEW_LLM_TEMPERATURE",
        "AI_REVIEW_SERVER",
        "AI_REVIEW_TOKEN",
    ] {
        c.env_remove(var);
    }
    c
}

fn review(args: &[&str], data: &Path) -> std::process::Output {
    bin()
        .args(args)
        .env("AI_REVIEW_DATA_DIR", data)
        .env(
            "DOCKER_EXECUTOR_IMAGE",
            ai_review_testkit::docker::executor_image(),
        )
        .output()
        .expect("run ai-review review")
}

#[test]
fn reviews_the_last_commit_of_a_local_repository_end_to_end() {
    let r = repo();
    let data = tempfile::tempdir().expect("tempdir");
    let out = review(
        &[r.path().to_str().expect("path"), "--format", "json"],
        data.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json result");
    assert_eq!(v["totals"]["files"], 3, "{v}");
    assert_eq!(v["totals"]["additions"], 2);
    for phase in ["preparing", "cloning", "reviewing", "submitting"] {
        assert!(
            stderr.contains(&format!("● {phase}")),
            "phase {phase} shown live:\n{stderr}"
        );
    }
    assert!(
        !stderr.contains(" INFO "),
        "no server log noise by default:\n{stderr}"
    );

    assert!(
        !stderr.contains("│ computing changes"),
        "the task log is tailed in text mode only:\n{stderr}"
    );

    let text = review(&[r.path().to_str().expect("path")], data.path());
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(text.status.success());
    assert!(stdout.contains("3 files changed, +2 -1"), "{stdout}");
    assert!(
        stdout.contains("A new.rs") && stdout.contains("D gone.txt"),
        "{stdout}"
    );
    assert!(stdout.contains("Usage: no model calls"), "{stdout}");
}

#[test]
fn markdown_and_sarif_reports_of_a_real_review() {
    let r = repo();
    let p = r.path();
    std::fs::write(
        p.join("merge.txt"),
        "a\n<<<<<<< HEAD\nb\n=======\nc\n>>>>>>> x\n",
    )
    .expect("write");
    git(p, &["add", "."]);
    git(p, &["commit", "-qm", "conflict"]);
    let data = tempfile::tempdir().expect("tempdir");
    let md = review(
        &[p.to_str().expect("path"), "--format", "markdown"],
        data.path(),
    );
    let md_out = String::from_utf8_lossy(&md.stdout);
    assert!(
        md.status.success(),
        "{}",
        String::from_utf8_lossy(&md.stderr)
    );
    assert!(md_out.starts_with("## ai-review\n"), "{md_out}");
    assert!(
        md_out.contains("#### `merge.txt`") && md_out.contains("| Line | Severity |"),
        "{md_out}"
    );
    assert!(md_out.contains("AI review skipped"), "{md_out}");

    let sarif = review(
        &[p.to_str().expect("path"), "--format", "sarif"],
        data.path(),
    );
    assert!(sarif.status.success());
    let v: serde_json::Value = serde_json::from_slice(&sarif.stdout).expect("SARIF is JSON");
    assert_eq!(v["version"], "2.1.0");
    assert!(v["$schema"].as_str().is_some_and(|s| s.contains("sarif")));
    assert_eq!(v["runs"][0]["tool"]["driver"]["name"], "ai-review");
    let results = v["runs"][0]["results"].as_array().expect("results");
    assert_eq!(results.len(), 2, "two conflict markers: {v}");
    for res in results {
        assert_eq!(res["level"], "error");
        assert!(res["message"]["text"].is_string());
        let loc = &res["locations"][0]["physicalLocation"];
        assert_eq!(loc["artifactLocation"]["uri"], "merge.txt");
        assert!(loc["region"]["startLine"].as_u64().is_some_and(|l| l >= 2));
        assert!(
            res["partialFingerprints"]
                .as_object()
                .is_some_and(|m| !m.is_empty())
        );
    }
}

#[test]
fn model_settings_are_checked_before_anything_starts() {
    let r = repo();
    let data = tempfile::tempdir().expect("tempdir");
    let secret = "sk-this-must-never-be-printed";
    let out = bin()
        .arg(r.path().to_str().expect("path"))
        .env("AI_REVIEW_DATA_DIR", data.path())
        // Not reached: the settings are refused first.
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .env("AI_REVIEW_LLM_PROVIDER", "openai")
        .env("AI_REVIEW_LLM_API_KEY", secret)
        .env("AI_REVIEW_LLM_TEMPERATURE", "hot")
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("AI_REVIEW_LLM_MODEL is not set")
            && err.contains("AI_REVIEW_LLM_TEMPERATURE must be"),
        "{err}"
    );
    assert!(!err.contains(secret) && !String::from_utf8_lossy(&out.stdout).contains(secret));
    let out = bin()
        .arg(r.path().to_str().expect("path"))
        .env("AI_REVIEW_DATA_DIR", data.path())
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .env("AI_REVIEW_LLM_MODEL", "gpt-test")
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("AI_REVIEW_LLM_PROVIDER is not"), "{err}");
}

#[test]
fn explains_what_is_wrong_with_the_input() {
    let data = tempfile::tempdir().expect("tempdir");
    let not_repo = tempfile::tempdir().expect("tempdir");
    let out = review(&[not_repo.path().to_str().expect("path")], data.path());
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not inside a git repository"));

    let r = repo();
    let out = review(
        &[r.path().to_str().expect("path"), "--base", "no-such-ref"],
        data.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"no-such-ref\" is not a commit"));
    let out = review(
        &[r.path().to_str().expect("path"), "--base", "HEAD"],
        data.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to review"));
    let out = review(
        &[r.path().to_str().expect("path"), "--ai-config", "x"],
        data.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("give --server"));
    let out = bin()
        .args([r.path().to_str().expect("path"), "--no-build"])
        .env("AI_REVIEW_DATA_DIR", data.path())
        .env("DOCKER_EXECUTOR_IMAGE", "ai-review-no-such-image:none")
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("ai-review-no-such-image:none is not present")
            && err.contains("scripts/build-images.sh ai-review-no-such-image:none"),
        "{err}"
    );
    let out = bin()
        .arg(r.path().to_str().expect("path"))
        .env("AI_REVIEW_DATA_DIR", data.path())
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("does not answer") && err.contains("install Docker"),
        "{err}"
    );
}

#[test]
fn reports_secrets_and_conflict_markers_and_fails_ci_on_request() {
    let r = repo();
    let p = r.path();
    let key = "AKIAZ7Q2LDHWJ4KX5N3P";
    std::fs::write(
        p.join("settings.py"),
        format!("DEBUG = False\nAWS_KEY = \"{key}\"\n"),
    )
    .expect("write");
    std::fs::write(
        p.join("merge.txt"),
        "a\n<<<<<<< HEAD\nmine\n=======\ntheirs\n>>>>>>> other\n",
    )
    .expect("write");
    git(p, &["add", "."]);
    git(p, &["commit", "-qm", "oops"]);
    let data = tempfile::tempdir().expect("tempdir");
    let out = review(
        &[p.to_str().expect("path"), "--fail-on", "error"],
        data.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "--fail-on error fails on an error finding:\n{stdout}"
    );
    assert!(stdout.contains("Findings (3):"), "{stdout}");
    assert!(
        stdout.contains("settings.py") && stdout.contains("AWS access key id"),
        "{stdout}"
    );
    assert!(!stdout.contains(key), "the secret itself is never printed");
    assert!(stdout.contains("merge-conflict"), "{stdout}");
    assert!(
        stdout.contains("AI review skipped: no model configured")
            && stdout.contains("AI_REVIEW_LLM_PROVIDER"),
        "says plainly how to enable it: {stdout}"
    );
    let json = review(
        &[p.to_str().expect("path"), "--format", "json"],
        data.path(),
    );
    assert!(
        json.status.success(),
        "without --fail-on findings do not fail the run"
    );
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    let lines: Vec<_> = v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                f["file"].as_str().unwrap_or("").to_owned(),
                f["line"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert!(lines.contains(&("settings.py".to_owned(), 2)), "{lines:?}");
    assert!(
        lines.contains(&("merge.txt".to_owned(), 2))
            && lines.contains(&("merge.txt".to_owned(), 6)),
        "{lines:?}"
    );
}
