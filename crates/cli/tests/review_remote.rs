//! `ai-review review --server URL --token KEY`: a change queued on a
//! running server, followed and printed like a local review; refusals
//! (token, permission, request) shown with the server's own detail; clone
//! URLs the runners could not use refused before anything is sent.

use ai_review_domain::{Permission, Phase, Role, TaskOutcome};
use ai_review_protocol::runner::LogLineIn;
use ai_review_testkit::git::{GitServer, TestRepo};
use ai_review_testkit::{Backend, Principal, TestApp};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A change pushed to `repo` and a clone of it whose `origin` is the
/// server's git URL.
fn pushed_change(repo: &TestRepo) -> tempfile::TempDir {
    repo.commit("base", &[("lib.rs", "fn a() {}\n")]);
    repo.commit(
        "add b",
        &[
            ("lib.rs", "fn a() {}\nfn b() {}\n"),
            (
                "merge.txt",
                "x\n<<<<<<< HEAD\ny\n=======\nz\n>>>>>>> other\n",
            ),
        ],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let clone = dir.path().join("clone");
    git(
        dir.path(),
        &["clone", "-q", &repo.url, clone.to_str().expect("path")],
    );
    dir
}

/// Two commits in a repository with no remote.
fn local_change() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path().join("work");
    std::fs::create_dir(&work).expect("mkdir");
    git(&work, &["init", "-q", "-b", "main"]);
    std::fs::write(work.join("a"), "1\n").expect("write");
    git(&work, &["add", "."]);
    git(&work, &["commit", "-qm", "one"]);
    std::fs::write(work.join("a"), "2\n").expect("write");
    git(&work, &["commit", "-qam", "two"]);
    dir
}

fn review(dir: &Path, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ai-review"));
    c.arg("review").arg(dir).args(args).env_remove("RUST_LOG");
    for var in [
        "AI_REVIEW_LLM_PROVIDER",
        "AI_REVIEW_LLM_MODEL",
        "AI_REVIEW_LLM_API_KEY",
        "AI_REVIEW_LLM_BASE_URL",
        "AI_REVIEW_SERVER",
        "AI_REVIEW_TOKEN",
    ] {
        c.env_remove(var);
    }
    c.output().expect("run ai-review review")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_refusals_are_shown_with_the_servers_detail_and_exit_2() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let git_server = GitServer::start();
    let repo = git_server.repo("svc");
    let dir = pushed_change(&repo);
    let clone = dir.path().join("clone");
    let url = app.url();

    let bad = format!("air_{}", "Z".repeat(40));
    let detail = app
        .get("/api/me", &Principal::Bearer(bad.clone()))
        .await
        .expect(401)
        .error_detail()
        .to_owned();
    assert!(!detail.is_empty());
    let out = review(&clone, &["--server", &url, "--token", &bad]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("refused the token (401") && err.contains(&detail) && err.contains("--token"),
        "{err}"
    );

    let viewer = app.user("viewer@example.com", Role::User, &[]).await;
    let out = review(&clone, &["--server", &url, "--token", &viewer.key]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("(403: ") && err.contains("review:create"),
        "{err}"
    );
    assert!(!err.contains(&viewer.key), "the token is never printed");

    let alice = app.reviewer("alice@example.com").await;
    let out = review(
        &clone,
        &[
            "--server",
            &url,
            "--token",
            &alice.key,
            "--ai-config",
            "0190a0b4-0000-7000-8000-000000000000",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("refused the request (400: "), "{err}");

    let out = review(&clone, &["--server", &url]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--token KEY"), "{err}");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let out = review(
        &clone,
        &[
            "--server",
            &format!("http://127.0.0.1:{port}"),
            "--token",
            &alice.key,
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("does not answer"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clone_urls_runners_cannot_use_are_refused_before_queueing() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.reviewer("alice@example.com").await;
    let url = app.url();
    let dir = local_change();
    let work = dir.path().join("work");

    let out = review(&work, &["--server", &url, "--token", &alice.key]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("no `origin` remote") && err.contains("--repo-url"),
        "{err}"
    );

    git(&work, &["remote", "add", "origin", "/srv/git/work.git"]);
    let out = review(&work, &["--server", &url, "--token", &alice.key]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("is a local path"), "{err}");

    let out = review(
        &work,
        &[
            "--server",
            &url,
            "--token",
            &alice.key,
            "--repo-url",
            "file:///srv/git/work.git",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is a local path"));
    let listed = app.get("/api/reviews", &alice.bearer()).await.expect(200);
    assert_eq!(
        listed.data()["items"].as_array().map(Vec::len),
        Some(0),
        "nothing was queued: {:#}",
        listed.data()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reviews_a_pushed_change_on_a_running_server_and_its_runner() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app
        .user("ci@example.com", Role::User, &[Permission::ReviewCreate])
        .await;
    let git_server = GitServer::start();
    let repo = git_server.repo("svc");
    let dir = pushed_change(&repo);
    let clone = dir.path().join("clone");
    let ws = tempfile::tempdir().expect("tempdir");
    let mut runner = Command::new(env!("CARGO_BIN_EXE_ai-review"))
        .arg("runner")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUNNER_SERVER_URL", app.url())
        .env("RUNNER_TOKEN", &alice.key)
        .env("RUNNER_NAME", "remote-review")
        .env(
            "DOCKER_EXECUTOR_IMAGE",
            ai_review_testkit::docker::executor_image(),
        )
        .env("DOCKER_WORKSPACE_BASE", ws.path().display().to_string())
        .env("DOCKER_POOL_SIZE", "0")
        .env("RUNNER_POLL_TIMEOUT_MS", "1000")
        .env("RUNNER_HEARTBEAT_INTERVAL_MS", "500")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the runner");

    let out = review(
        &clone,
        &[
            "--server",
            &app.url(),
            "--token",
            &alice.key,
            "--fail-on",
            "error",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let _ = Command::new("kill")
        .args(["-TERM", &runner.id().to_string()])
        .status();
    let _ = runner.wait();
    assert_eq!(
        out.status.code(),
        Some(1),
        "conflict markers are errors and --fail-on error fails:\n{stdout}\n{stderr}"
    );
    assert!(stderr.contains("queued review"), "{stderr}");
    assert!(
        stderr.contains("● cloning") && stderr.contains("● reviewing"),
        "phases shown live:\n{stderr}"
    );
    assert!(
        !stderr.contains("warning: "),
        "the head is pushed: no warning:\n{stderr}"
    );
    assert!(stdout.contains("2 files changed"), "{stdout}");
    assert!(stdout.contains("merge.txt"), "{stdout}");
    assert!(
        stdout.contains("AI review skipped") && stdout.contains("--ai-config"),
        "the remote hint names --ai-config: {stdout}"
    );
}

/// A runner driven by the test: it claims the task, writes two log lines
/// and submits a result, while `ai-review review --server` follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_task_log_is_tailed_live_in_text_mode_only() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.reviewer("alice@example.com").await;
    let runner = app.runner(&alice, "scripted", "").await;
    let dir = local_change();
    let work = dir.path().join("work");
    let head = git(&work, &["rev-parse", "HEAD"]);
    let base = git(&work, &["rev-parse", "HEAD~1"]);
    for (format, tailed) in [("text", true), ("json", false)] {
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ai-review"))
            .arg("review")
            .arg(&work)
            .args([
                "--server",
                &app.url(),
                "--token",
                &alice.key,
                "--repo-url",
                "https://git.example.com/group/svc.git",
                "--format",
                format,
            ])
            .env_remove("RUST_LOG")
            .env_remove("AI_REVIEW_LLM_PROVIDER")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn ai-review review");
        let started = Instant::now();
        let task = loop {
            if let Some(t) = app.claim(&runner).await {
                break t;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the review was queued"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        runner
            .report_phase(&task.task_id, task.attempt, Phase::Reviewing)
            .await
            .expect("phase");
        let line = |text: &str| LogLineIn {
            text: text.into(),
            stream: Some("stderr".into()),
            at: None,
        };
        runner
            .append_logs(
                &task.task_id,
                task.attempt,
                vec![
                    line("model call 1/2: 812 tokens in"),
                    line("model call 2/2: 640 tokens in"),
                ],
            )
            .await
            .expect("logs");
        let result = serde_json::json!({
            "version": 1, "kind": "review", "baseSha": base, "headSha": head,
            "files": [{"path": "a", "status": "modified", "additions": 1, "deletions": 1, "binary": false}],
            "totals": {"files": 1, "additions": 1, "deletions": 1},
        });
        runner
            .submit_result(
                &task.task_id,
                task.attempt,
                TaskOutcome::Succeeded,
                None,
                false,
                Some(result),
            )
            .await
            .expect("result");
        let out = child.wait_with_output().await.expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        let first = stderr.find("    │ model call 1/2: 812 tokens in");
        let second = stderr.find("    │ model call 2/2: 640 tokens in");
        if tailed {
            assert!(
                first.is_some_and(|f| second.is_some_and(|s| f < s)),
                "log lines in order with their prefix:\n{stderr}"
            );
            assert!(stderr.contains("● reviewing"), "{stderr}");
        } else {
            assert!(
                first.is_none() && second.is_none(),
                "no log tail outside text mode:\n{stderr}"
            );
        }
    }
}
