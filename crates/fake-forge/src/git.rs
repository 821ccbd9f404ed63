//! Real git: bare repositories written with plumbing commands, diffs, and
//! `git http-backend` run as a CGI for smart HTTP.

use crate::diff::{self, FileDiff};
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The environment every git command runs with: no user or system
/// configuration leaks in, and commits are attributed to the fake.
const ENV: &[(&str, &str)] = &[
    ("GIT_CONFIG_NOSYSTEM", "1"),
    ("GIT_CONFIG_GLOBAL", "/dev/null"),
    ("GIT_AUTHOR_NAME", "Fake Forge"),
    ("GIT_AUTHOR_EMAIL", "fake-forge@example.invalid"),
    ("GIT_COMMITTER_NAME", "Fake Forge"),
    ("GIT_COMMITTER_EMAIL", "fake-forge@example.invalid"),
    ("LC_ALL", "C"),
];

/// Runs git in `dir` (blocking), returning trimmed stdout.
pub(crate) fn run(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &Path)],
    stdin: Option<&[u8]>,
) -> Result<String, String> {
    use std::io::Write;
    let mut cmd = std::process::Command::new("git");
    cmd.current_dir(dir)
        .args(args)
        .envs(ENV.iter().copied())
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("git {args:?}: {e}"))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input)
            .map_err(|e| format!("git {args:?}: stdin: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("git {args:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Runs git in `dir` without blocking the runtime, returning raw stdout.
pub(crate) async fn run_async(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = tokio::process::Command::new("git")
        .current_dir(dir)
        .args(args)
        .envs(ENV.iter().copied())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("git {args:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Creates a bare repository at `dir` whose `main` holds `files`.
pub(crate) fn init(dir: &Path, files: &[(&str, Option<&str>)]) -> Result<String, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    run(
        dir,
        &["init", "--quiet", "--bare", "--initial-branch=main"],
        &[],
        None,
    )?;
    commit(dir, "main", files, "Initial commit")
}

/// Writes one commit on `branch` (created from `main` when missing) that
/// applies `changes` (`Some(content)` writes, `None` deletes), through a
/// private index so the bare repository needs no worktree.
pub(crate) fn commit(
    dir: &Path,
    branch: &str,
    changes: &[(&str, Option<&str>)],
    message: &str,
) -> Result<String, String> {
    let reference = format!("refs/heads/{branch}");
    let parent = match rev_parse(dir, &reference) {
        Some(sha) => Some(sha),
        None => rev_parse(dir, "refs/heads/main"),
    };
    let index = tempfile::NamedTempFile::new_in(dir).map_err(|e| format!("index file: {e}"))?;
    let index_path: PathBuf = index.path().to_owned();
    // git refuses an empty file as an index; it must not exist.
    drop(index);
    let env = [("GIT_INDEX_FILE", index_path.as_path())];
    let result = (|| {
        match &parent {
            Some(p) => run(dir, &["read-tree", p], &env, None)?,
            None => run(dir, &["read-tree", "--empty"], &env, None)?,
        };
        for (path, content) in changes {
            match content {
                Some(text) => {
                    let blob = run(
                        dir,
                        &["hash-object", "-w", "--stdin"],
                        &env,
                        Some(text.as_bytes()),
                    )?;
                    let info = format!("100644,{blob},{path}");
                    run(
                        dir,
                        &["update-index", "--add", "--cacheinfo", &info],
                        &env,
                        None,
                    )?;
                }
                None => {
                    run(
                        dir,
                        &["update-index", "--force-remove", "--", path],
                        &env,
                        None,
                    )?;
                }
            }
        }
        let tree = run(dir, &["write-tree"], &env, None)?;
        let mut args = vec!["commit-tree", tree.as_str(), "-m", message];
        if let Some(p) = &parent {
            args.extend(["-p", p.as_str()]);
        }
        let sha = run(dir, &args, &env, None)?;
        run(dir, &["update-ref", &reference, &sha], &env, None)?;
        Ok(sha)
    })();
    let _ = std::fs::remove_file(&index_path);
    result
}

/// The commit a name resolves to, if any.
pub(crate) fn rev_parse(dir: &Path, name: &str) -> Option<String> {
    let spec = format!("{name}^{{commit}}");
    run(dir, &["rev-parse", "--verify", "--quiet", &spec], &[], None).ok()
}

/// The commit a name resolves to, without blocking.
pub(crate) async fn rev_parse_async(dir: &Path, name: &str) -> Option<String> {
    let spec = format!("{name}^{{commit}}");
    run_async(dir, &["rev-parse", "--verify", "--quiet", &spec])
        .await
        .ok()
        .map(|s| s.trim().to_owned())
}

/// The SHAs of a change from `source` into `target`: GitLab's
/// `diff_refs` (`base` is the merge base, `start` the target's tip,
/// `head` the source's tip).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Heads {
    pub base: String,
    pub start: String,
    pub head: String,
}

/// Resolves the heads of a change.
pub(crate) async fn heads(dir: &Path, source: &str, target: &str) -> Result<Heads, String> {
    let head = rev_parse_async(dir, &format!("refs/heads/{source}"))
        .await
        .ok_or_else(|| format!("source branch {source} does not exist"))?;
    let start = rev_parse_async(dir, &format!("refs/heads/{target}"))
        .await
        .ok_or_else(|| format!("target branch {target} does not exist"))?;
    let base = run_async(dir, &["merge-base", &start, &head])
        .await?
        .trim()
        .to_owned();
    Ok(Heads { base, start, head })
}

/// The diff between two commits as the forge shows it (renames detected,
/// three lines of context).
pub(crate) async fn diff(dir: &Path, base: &str, head: &str) -> Result<Vec<FileDiff>, String> {
    let names = run_async(
        dir,
        &[
            "diff",
            "--no-ext-diff",
            "-M",
            "--name-status",
            "-z",
            base,
            head,
        ],
    )
    .await?;
    let patch = run_async(
        dir,
        &[
            "-c",
            "core.quotePath=false",
            "diff",
            "--no-ext-diff",
            "--no-color",
            "-M",
            "-U3",
            base,
            head,
        ],
    )
    .await?;
    Ok(diff::parse(&names, &patch))
}

/// What the CGI needs from one smart-HTTP request.
pub(crate) struct CgiRequest<'a> {
    pub project_root: &'a Path,
    pub path_info: String,
    pub method: &'a str,
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub remote_user: &'a str,
}

const HEADER_LIMIT: usize = 64 * 1024;

/// Runs `git http-backend` for one request: the body is streamed to its
/// stdin, its CGI headers (`Status:` included) become the response's, and
/// the rest of its stdout is streamed back.
pub(crate) async fn http_backend(req: CgiRequest<'_>, body: Body) -> Response {
    let header = |name: &str| {
        req.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let mut cmd = tokio::process::Command::new("git");
    cmd.arg("http-backend")
        .envs(ENV.iter().copied())
        .env("GIT_PROJECT_ROOT", req.project_root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", &req.path_info)
        .env("REQUEST_METHOD", req.method)
        .env("QUERY_STRING", req.query)
        .env("CONTENT_TYPE", header("content-type"))
        .env("REMOTE_USER", req.remote_user)
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let length = header("content-length");
    if !length.is_empty() {
        cmd.env("CONTENT_LENGTH", length);
    }
    // http-backend inflates gzip request bodies itself when told so.
    let encoding = header("content-encoding");
    if !encoding.is_empty() {
        cmd.env("HTTP_CONTENT_ENCODING", encoding);
    }
    // Protocol v2 is negotiated through this header.
    let protocol = header("git-protocol");
    if !protocol.is_empty() {
        cmd.env("HTTP_GIT_PROTOCOL", protocol);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return cgi_error(&format!("spawn git http-backend: {e}")),
    };
    if let Some(mut stdin) = child.stdin.take() {
        tokio::spawn(async move {
            let mut chunks = body.into_data_stream();
            while let Some(Ok(chunk)) = chunks.next().await {
                if stdin.write_all(&chunk).await.is_err() {
                    break;
                }
            }
        });
    }
    let Some(mut stdout) = child.stdout.take() else {
        return cgi_error("git http-backend has no stdout");
    };
    let mut head = Vec::new();
    let split = loop {
        if let Some(at) = find(&head, b"\r\n\r\n").map(|i| (i, 4)) {
            break at;
        }
        if let Some(at) = find(&head, b"\n\n").map(|i| (i, 2)) {
            break at;
        }
        if head.len() > HEADER_LIMIT {
            return cgi_error("git http-backend sent oversized headers");
        }
        let mut buf = [0u8; 8192];
        match stdout.read(&mut buf).await {
            Ok(0) | Err(_) => return cgi_error("git http-backend ended before its headers"),
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    };
    let rest = head.split_off(split.0 + split.1);
    head.truncate(split.0);
    let mut status = StatusCode::OK;
    let mut headers = HeaderMap::new();
    for line in String::from_utf8_lossy(&head).lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            status = value
                .split(' ')
                .next()
                .and_then(|c| c.parse::<u16>().ok())
                .and_then(|c| StatusCode::from_u16(c).ok())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        } else if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(n, v);
        }
    }
    let first = futures::stream::iter((!rest.is_empty()).then(|| Ok(Bytes::from(rest))));
    let tail = futures::stream::unfold(Some((stdout, child)), |state| async move {
        let (mut out, mut child) = state?;
        let mut buf = vec![0u8; 32 * 1024];
        match out.read(&mut buf).await {
            Ok(0) => {
                let _ = child.wait().await;
                None
            }
            Ok(n) => {
                buf.truncate(n);
                Some((
                    Ok::<_, std::io::Error>(Bytes::from(buf)),
                    Some((out, child)),
                ))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    let mut response = Body::from_stream(first.chain(tail)).into_response();
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn cgi_error(message: &str) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, message.to_owned()).into_response()
}

/// What webhooks say about a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommitInfo {
    pub title: String,
    pub message: String,
    pub timestamp: String,
    pub author_name: String,
    pub author_email: String,
}

/// Reads a commit's message, date and author.
pub(crate) async fn commit_info(dir: &Path, sha: &str) -> Result<CommitInfo, String> {
    let out = run_async(
        dir,
        &["show", "-s", "--format=%s%x00%B%x00%aI%x00%an%x00%ae", sha],
    )
    .await?;
    let mut f = out.trim_end_matches('\n').split('\0');
    let mut next = || f.next().unwrap_or("").to_owned();
    Ok(CommitInfo {
        title: next(),
        message: next(),
        timestamp: next(),
        author_name: next(),
        author_email: next(),
    })
}
