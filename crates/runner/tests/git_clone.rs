//! Cloning untrusted repositories: shallow clones that still find an older
//! base commit, submodules never fetched, hooks never run.

use ai_review_runner::git::{CloneRequest, clone};
use ai_review_testkit::git::GitServer;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .expect("git");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test]
async fn a_shallow_clone_deepens_until_the_base_commit_is_present() {
    let server = GitServer::start();
    let repo = server.repo("deep");
    let base = repo.commit("c0", &[("f.txt", "0\n")]);
    for i in 1..12 {
        repo.commit(&format!("c{i}"), &[("f.txt", &format!("{i}\n"))]);
    }
    let head = repo.commit("head", &[("g.txt", "x\n")]);
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("repo");
    let req = CloneRequest {
        url: &repo.url,
        head_sha: &head,
        base_sha: &base,
        branch: Some("main"),
        depth: 2,
        auth_header: None,
    };
    let lines = std::sync::Mutex::new(Vec::new());
    let log = |l: String| lines.lock().expect("lock").push(l);
    clone(
        &target,
        &req,
        Duration::from_secs(60),
        &CancellationToken::new(),
        &log,
    )
    .await
    .expect("clone");
    assert_eq!(
        git(&target, &["rev-parse", "HEAD"]),
        head,
        "head checked out"
    );
    assert_eq!(
        git(&target, &["cat-file", "-t", &base]),
        "commit",
        "base fetched despite depth 2"
    );
    assert_eq!(
        git(&target, &["rev-parse", "--is-shallow-repository"]),
        "true",
        "still shallow, not a full clone"
    );
}

#[tokio::test]
async fn repository_content_cannot_pull_submodules_or_run_hooks() {
    let server = GitServer::start();
    let repo = server.repo("sneaky");
    let base = repo.commit("base", &[("a.txt", "1\n")]);
    let canary = tempfile::tempdir().expect("tempdir");
    let marker = canary.path().join("pwned");
    let head = repo.commit(
        "head",
        &[
            (
                ".gitmodules",
                &format!(
                    "[submodule \"evil\"]\n\tpath = evil\n\turl = file://{}\n",
                    canary.path().display()
                ),
            ),
            (
                ".githooks/post-checkout",
                &format!("#!/bin/sh\ntouch {}\n", marker.display()),
            ),
            ("a.txt", "2\n"),
        ],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("repo");
    let req = CloneRequest {
        url: &repo.url,
        head_sha: &head,
        base_sha: &base,
        branch: None,
        depth: 50,
        auth_header: None,
    };
    clone(
        &target,
        &req,
        Duration::from_secs(60),
        &CancellationToken::new(),
        &|_| {},
    )
    .await
    .expect("clone");
    assert!(
        !target.join("evil").join(".git").exists(),
        "submodule not cloned"
    );
    assert!(!marker.exists(), "no hook ran");
    assert_eq!(
        git(&target, &["config", "--get", "core.hooksPath"]),
        "",
        "nothing persisted in the repo config"
    );
}

#[tokio::test]
async fn a_missing_commit_is_a_clear_error_and_cancellation_stops_the_clone() {
    let server = GitServer::start();
    let repo = server.repo("r");
    let base = repo.commit("base", &[("a.txt", "1\n")]);
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = "f".repeat(40);
    let req = CloneRequest {
        url: &repo.url,
        head_sha: &missing,
        base_sha: &base,
        branch: Some("main"),
        depth: 5,
        auth_header: None,
    };
    let err = clone(
        &dir.path().join("a"),
        &req,
        Duration::from_secs(60),
        &CancellationToken::new(),
        &|_| {},
    )
    .await
    .expect_err("no such commit");
    assert!(err.to_string().contains(&missing), "{err}");
    let cancelled = CancellationToken::new();
    cancelled.cancel();
    let req = CloneRequest {
        head_sha: &base,
        ..req
    };
    let err = clone(
        &dir.path().join("b"),
        &req,
        Duration::from_secs(60),
        &cancelled,
        &|_| {},
    )
    .await
    .expect_err("cancelled");
    assert_eq!(err.to_string(), "cancelled");
}
