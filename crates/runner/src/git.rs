//! Cloning untrusted repositories safely.
//!
//! * No hooks (`core.hooksPath=/dev/null`), no submodule recursion, no
//!   `file://` or `ext::` transports (`GIT_ALLOW_PROTOCOL`), no system or
//!   global config (`GIT_CONFIG_NOSYSTEM`, `GIT_CONFIG_GLOBAL=/dev/null`), no
//!   prompts, no fsmonitor.
//! * Credentials, when a task carries them, go only through git's
//!   environment config (`GIT_CONFIG_COUNT`/`KEY_n`/`VALUE_n` as an
//!   `http.extraHeader`): never in the URL, argv, logs or files.
//! * Shallow by `RUNNER_CLONE_DEPTH`; the base commit is fetched too,
//!   deepening until it is present.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

/// Why a clone failed.
#[derive(Debug, thiserror::Error)]
pub enum CloneError {
    /// A git command failed.
    #[error("{0}")]
    Git(String),
    /// The task was cancelled or interrupted meanwhile.
    #[error("cancelled")]
    Cancelled,
    /// It took longer than allowed.
    #[error("the clone took longer than {0:?}")]
    Timeout(Duration),
}

/// How to clone one task's repository.
#[derive(Clone)]
pub struct CloneRequest<'a> {
    /// Clone URL (validated by the server: no credentials, no file://).
    pub url: &'a str,
    /// Commit under review.
    pub head_sha: &'a str,
    /// Commit compared with.
    pub base_sha: &'a str,
    /// Branch, tried when the server refuses to serve a bare SHA.
    pub branch: Option<&'a str>,
    /// History depth (0 = full).
    pub depth: u32,
    /// Extra HTTP header with credentials (e.g. `Authorization: Basic …`).
    pub auth_header: Option<&'a str>,
}

impl std::fmt::Debug for CloneRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloneRequest")
            .field("url", &self.url)
            .field("head_sha", &self.head_sha)
            .field("depth", &self.depth)
            .field("auth_header", &self.auth_header.map(|_| "***"))
            .finish()
    }
}

struct Git<'a> {
    dir: &'a Path,
    req: &'a CloneRequest<'a>,
    cancel: &'a CancellationToken,
    log: &'a (dyn Fn(String) + Send + Sync),
}

impl Git<'_> {
    async fn run(&self, args: &[&str]) -> Result<(), CloneError> {
        let mut cmd = Command::new("git");
        cmd.arg("-C")
            .arg(self.dir)
            .args([
                "-c",
                "core.hooksPath=/dev/null",
                "-c",
                "core.fsmonitor=false",
                "-c",
                "submodule.recurse=false",
                "-c",
                "protocol.file.allow=never",
                "-c",
                "advice.detachedHead=false",
            ])
            .args(args)
            .env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            )
            .env("HOME", "/nonexistent")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ASKPASS", "/bin/false")
            .env("SSH_ASKPASS", "/bin/false")
            .env("GIT_ALLOW_PROTOCOL", "https:http:git:ssh")
            .env(
                "GIT_SSH_COMMAND",
                "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new",
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(h) = self.req.auth_header {
            cmd.env("GIT_CONFIG_COUNT", "1")
                .env("GIT_CONFIG_KEY_0", "http.extraHeader")
                .env("GIT_CONFIG_VALUE_0", h);
        }
        let child = cmd
            .spawn()
            .map_err(|e| CloneError::Git(format!("cannot run git: {e}")))?;
        let out = tokio::select! {
            out = child.wait_with_output() => out.map_err(|e| CloneError::Git(e.to_string()))?,
            _ = self.cancel.cancelled() => return Err(CloneError::Cancelled),
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
            (self.log)(format!("git: {line}"));
        }
        if out.status.success() {
            Ok(())
        } else {
            let last = stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim();
            Err(CloneError::Git(format!(
                "git {} failed: {last}",
                args.first().copied().unwrap_or("")
            )))
        }
    }

    async fn has_commit(&self, sha: &str) -> bool {
        self.run(&["cat-file", "-e", &format!("{sha}^{{commit}}")])
            .await
            .is_ok()
    }
}

/// Clones `req` into `dir` (which must not exist yet), checks out the head
/// commit detached, and makes sure the base commit is present.
pub async fn clone(
    dir: &Path,
    req: &CloneRequest<'_>,
    timeout: Duration,
    cancel: &CancellationToken,
    log: &(dyn Fn(String) + Send + Sync),
) -> Result<(), CloneError> {
    match tokio::time::timeout(timeout, clone_inner(dir, req, cancel, log)).await {
        Ok(r) => r,
        Err(_) => Err(CloneError::Timeout(timeout)),
    }
}

async fn clone_inner(
    dir: &Path,
    req: &CloneRequest<'_>,
    cancel: &CancellationToken,
    log: &(dyn Fn(String) + Send + Sync),
) -> Result<(), CloneError> {
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| CloneError::Git(format!("cannot create {}: {e}", dir.display())))?;
    let g = Git {
        dir,
        req,
        cancel,
        log,
    };
    g.run(&["init", "-q"]).await?;
    g.run(&["remote", "add", "origin", req.url]).await?;
    let depth = (req.depth > 0).then(|| format!("--depth={}", req.depth));
    let fetch = |what: Vec<String>| {
        let mut args: Vec<String> = vec![
            "fetch".into(),
            "-q".into(),
            "--no-tags".into(),
            "--no-recurse-submodules".into(),
        ];
        args.extend(depth.clone());
        args.push("origin".into());
        args.extend(what);
        args
    };
    let run_owned = |args: Vec<String>| {
        let g = &g;
        async move {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            g.run(&refs).await
        }
    };
    // Servers that allow fetching a commit by id (GitHub, GitLab, git
    // http-backend with protocol v2) need one round trip; otherwise fetch the
    // branch, then every branch.
    if run_owned(fetch(vec![req.head_sha.into()])).await.is_err()
        || !g.has_commit(req.head_sha).await
    {
        if let Some(b) = req.branch {
            let _ = run_owned(fetch(vec![format!(
                "+refs/heads/{b}:refs/remotes/origin/{b}"
            )]))
            .await;
        }
        if !g.has_commit(req.head_sha).await {
            run_owned(fetch(vec!["+refs/heads/*:refs/remotes/origin/*".into()])).await?;
        }
        if !g.has_commit(req.head_sha).await {
            return Err(CloneError::Git(format!(
                "the repository has no commit {}; was the branch force-pushed?",
                req.head_sha
            )));
        }
    }
    if !g.has_commit(req.base_sha).await {
        let _ = run_owned(fetch(vec![req.base_sha.into()])).await;
    }
    let mut deepen = 0;
    while !g.has_commit(req.base_sha).await {
        if req.depth == 0 || deepen >= 4 {
            let _ = run_owned(vec![
                "fetch".into(),
                "-q".into(),
                "--no-tags".into(),
                "--unshallow".into(),
                "origin".into(),
            ])
            .await;
            if !g.has_commit(req.base_sha).await {
                return Err(CloneError::Git(format!(
                    "the base commit {} is not reachable from the repository",
                    req.base_sha
                )));
            }
            break;
        }
        deepen += 1;
        let by = format!("--deepen={}", req.depth.saturating_mul(1 << deepen));
        let _ = run_owned(vec![
            "fetch".into(),
            "-q".into(),
            "--no-tags".into(),
            by,
            "origin".into(),
            req.head_sha.into(),
        ])
        .await;
    }
    g.run(&["checkout", "-q", "--detach", req.head_sha]).await?;
    Ok(())
}
