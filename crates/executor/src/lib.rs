//! The executor: the program that runs inside each review container, and
//! the contract between it and the runner (version [`CONTRACT_VERSION`]).
//!
//! # Contract
//!
//! The runner bind-mounts a per-task directory read-only at
//! [`WORKSPACE_MOUNT`]. It contains the checkout in [`REPO_DIR`] and, once
//! the checkout is complete, [`TASK_FILE`] (an [`ExecutorTask`], written
//! atomically). The executor waits for the task file (so warm-pool
//! containers can start before the task is known), prints
//! [`STARTED_MARKER`] on stderr, does its work, writes human-readable
//! progress to stderr (streamed to the task log) and exactly one
//! [`ExecutorOutput`] JSON document to stdout, and exits 0. Any other exit
//! is a failure; its stderr tail is the reason.
//!
//! The executor never talks to the server, the forge or the network, and
//! never receives credentials. When the task has a model, it asks for
//! completions through the runner's gateway on the Unix socket
//! [`gateway::GATEWAY_SOCKET`] in the workspace ([`client`]).
//!
//! # Pipeline ([`review::review`])
//!
//! [`load_change`] (git diff with three lines of context, parsed by
//! [`diff`]) → [`config`] (`.ai-review.yml` at the head revision) →
//! [`classify`] (skipped files and why) → [`checks`] (on every file,
//! skipped or not) → [`plan`] (packing under the token limits, sizes from
//! [`prompt::estimate_tokens`]) → [`prompt`] → model calls validated by
//! [`answer`], with one repair → [`anchor`] (findings placed on lines
//! that were sent, fingerprints, duplicates) → verdict and summary.

pub mod anchor;
pub mod answer;
pub mod checks;
pub mod classify;
pub mod client;
pub mod config;
pub mod diff;
pub mod gateway;
pub mod plan;
pub mod prompt;
pub mod review;

use serde::{Deserialize, Serialize};
use std::path::Path;
use std::process::Command;

/// Version of the task/output documents; bumped on incompatible change.
pub const CONTRACT_VERSION: u32 = 1;
/// Where the per-task directory is mounted in the container.
pub const WORKSPACE_MOUNT: &str = "/workspace";
/// The task document inside the workspace.
pub const TASK_FILE: &str = "task.json";
/// The checkout inside the workspace.
pub const REPO_DIR: &str = "repo";
/// Printed on stderr when the executor starts working on a task.
pub const STARTED_MARKER: &str = "ai-review-executor: started";

/// What the runner asks the executor to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutorTask {
    /// Contract version.
    pub version: u32,
    /// The server's task id (for logs).
    pub task_id: String,
    /// Base revision (full SHA).
    pub base_sha: String,
    /// Head revision (full SHA).
    pub head_sha: String,
    /// The model to review with, through the gateway; `None` runs the
    /// deterministic checks only (and says so in the output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelSettings>,
    /// Template, rules, excludes and context of the review.
    #[serde(default)]
    pub review: ReviewSettings,
    /// The request that queued the review (printed in the task log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// What the executor knows about the model (never the key: the gateway
/// adds it outside the container).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelSettings {
    /// `openai` or `anthropic`.
    pub provider: String,
    /// Model name.
    pub model: String,
    /// Tokens (input + output, all calls) this review may use.
    pub token_budget: u64,
    /// Most tokens one answer may have.
    pub max_output_tokens: u32,
    /// Most prompt tokens one call may carry (the model's context minus
    /// room for the answer).
    pub max_input_tokens_per_call: u32,
}

/// A review template: the reviewer's instructions, with `{{variables}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateSettings {
    /// Template id on the server (`builtin` for the default).
    pub id: String,
    /// Text with `{{title}}`, `{{branch}}`, `{{repository}}`,
    /// `{{language}}`, `{{rules}}` and `{{instructions}}` placeholders.
    pub content: String,
}

/// A path-scoped review rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleSettings {
    /// Rule id (server rules: their id; rules from `.ai-review.yml`:
    /// `repo:<n>` or the id given there).
    pub id: String,
    /// Short name.
    #[serde(default)]
    pub name: String,
    /// Globs of the paths it applies to (empty: every path).
    #[serde(default)]
    pub paths: Vec<String>,
    /// What the reviewer must check.
    pub instructions: String,
}

/// Template, rules, excludes and context of a review.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewSettings {
    /// The template; `None` uses the built-in one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<TemplateSettings>,
    /// Rules from the server (project and global).
    #[serde(default)]
    pub rules: Vec<RuleSettings>,
    /// Project exclude globs.
    #[serde(default)]
    pub excludes: Vec<String>,
    /// Title of the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Branch of the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Repository name or URL, for the prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Incremental round: the head reviewed last time. Only hunks with
    /// lines changed since it go to the model; the others are listed in
    /// `notReviewed` as unchanged since then. Ignored (whole change
    /// reviewed, with a note) when the commit is not in the checkout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_sha: Option<String>,
}

/// How a file changed between base and head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileStatus {
    /// New file.
    Added,
    /// Changed content.
    Modified,
    /// Removed.
    Deleted,
    /// Moved (possibly changed).
    Renamed,
    /// Copied.
    Copied,
    /// Type changed (file ↔ symlink ↔ submodule).
    Typechange,
}

/// One changed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileStat {
    /// Path at head (at base for deletions).
    pub path: String,
    /// Previous path of a rename or copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_path: Option<String>,
    /// Kind of change.
    pub status: FileStatus,
    /// Added lines (0 for binary files).
    pub additions: u64,
    /// Deleted lines (0 for binary files).
    pub deletions: u64,
    /// Binary content.
    pub binary: bool,
    /// What the review did with the file (absent in `diff-stats` output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_status: Option<FileReviewStatus>,
    /// Why it was skipped or not (fully) reviewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Changed lines (added + deleted) the model reviewed.
    #[serde(default)]
    pub reviewed_lines: u64,
}

/// What the review did with one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileReviewStatus {
    /// Every hunk went to the model (or, with no model, the checks ran).
    Reviewed,
    /// Some hunks went to the model; the rest are in `notReviewed`.
    Partial,
    /// Excluded on purpose (binary, lock, generated, vendored, deleted,
    /// project or repository exclude); `reason` says which.
    Skipped,
    /// Should have been reviewed but was not (budget, model failure);
    /// `reason` says why.
    NotReviewed,
}

/// Overall verdict of a review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Assessment {
    /// Nothing blocking.
    Approve,
    /// Remarks worth reading, nothing blocking.
    Comment,
    /// At least one problem that should block merging.
    RequestChanges,
}

/// What happened to the model review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AiStatus {
    /// No model configured: deterministic checks only.
    Skipped,
    /// Every reviewable file went to the model.
    Completed,
    /// Some files or hunks were not reviewed (budget, model failures).
    Partial,
    /// No model call produced a usable answer.
    Failed,
}

/// The model review's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AiReport {
    /// Outcome.
    pub status: AiStatus,
    /// Why it was skipped, partial or failed, and how to fix it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Provider used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Model used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Model calls planned for the review (chunks of the diff).
    #[serde(default)]
    pub chunks: u32,
}

/// A file, or part of one, that was not reviewed: never a silent cut.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotReviewed {
    /// File.
    pub path: String,
    /// Why.
    pub reason: String,
    /// New-side line ranges left out, when only part of the file was
    /// left out (empty: the whole file).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<LineRange>,
}

/// An inclusive range of new-side lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LineRange {
    /// First line (1-based).
    pub start: u32,
    /// Last line.
    pub end: u32,
}

/// Totals over all files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    /// Changed files.
    pub files: u64,
    /// Added lines.
    pub additions: u64,
    /// Deleted lines.
    pub deletions: u64,
}

/// The executor's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutorOutput {
    /// Contract version.
    pub version: u32,
    /// What was computed: `review`.
    pub kind: String,
    /// Base revision.
    pub base_sha: String,
    /// Head revision.
    pub head_sha: String,
    /// Changed files, in git's order.
    pub files: Vec<FileStat>,
    /// Totals.
    pub totals: Totals,
    /// Findings, anchored on new-side lines of the diff: the deterministic
    /// checks' (secrets, conflict markers) and the model's, duplicates
    /// merged.
    #[serde(default)]
    pub findings: Vec<checks::Finding>,
    /// Summary of the change and the review (markdown). Mentions findings
    /// that could not be anchored on a line of the diff.
    #[serde(default)]
    pub summary: String,
    /// Overall verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assessment: Option<Assessment>,
    /// Rating from 1 (serious problems) to 5 (clean).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating: Option<u8>,
    /// The model review's outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ai: Option<AiReport>,
    /// Files or parts of files not reviewed, each with its reason.
    #[serde(default)]
    pub not_reviewed: Vec<NotReviewed>,
    /// Model findings that could not be anchored on a line of the diff
    /// (they appear in the summary, never on a wrong line).
    #[serde(default)]
    pub unanchored: Vec<checks::Finding>,
    /// Changed lines (added + deleted) the model reviewed.
    #[serde(default)]
    pub reviewed_lines: u64,
    /// Ids of the rules that applied to at least one reviewed file.
    #[serde(default)]
    pub applied_rule_ids: Vec<String>,
    /// Model usage (filled in by the runner from its gateway's records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<gateway::ModelUsage>,
}

/// Why the executor could not produce a result.
#[derive(Debug)]
pub struct ExecError(pub String);

impl std::fmt::Display for ExecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ExecError {}

fn hex_sha(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

pub(crate) fn git(repo: &Path, args: &[&str]) -> Result<Vec<u8>, ExecError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["-c", "core.quotepath=false", "-c", "diff.renames=true"])
        .args(args)
        .env("GIT_OPTIONAL_LOCKS", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        // The checkout belongs to the runner's user, not ours.
        .env("GIT_CONFIG_COUNT", "1")
        .env("GIT_CONFIG_KEY_0", "safe.directory")
        .env("GIT_CONFIG_VALUE_0", "*")
        .output()
        .map_err(|e| ExecError(format!("cannot run git: {e}")))?;
    if !out.status.success() {
        return Err(ExecError(format!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out.stdout)
}

/// The change under review: files with line counts, and the parsed patch
/// (three lines of context).
#[derive(Debug, Clone, Default)]
pub struct Change {
    /// Changed files, in git's order.
    pub files: Vec<FileStat>,
    /// Totals.
    pub totals: Totals,
    /// The patch, one entry per file git printed.
    pub patches: Vec<diff::FilePatch>,
}

impl Change {
    /// The patch of `file`: the one whose new path is the file's (old
    /// path for deletions).
    pub fn patch_of(&self, file: &FileStat) -> Option<&diff::FilePatch> {
        self.patches
            .iter()
            .find(|p| p.new_path.as_deref() == Some(file.path.as_str()))
            .or_else(|| {
                self.patches.iter().find(|p| {
                    p.new_path.is_none() && p.old_path.as_deref() == Some(file.path.as_str())
                })
            })
    }
}

/// Checks the task's version and revisions.
pub fn validate_task(task: &ExecutorTask) -> Result<(), ExecError> {
    if task.version != CONTRACT_VERSION {
        return Err(ExecError(format!(
            "task contract version {} is not supported (this executor speaks {CONTRACT_VERSION}); rebuild the executor image",
            task.version
        )));
    }
    if !hex_sha(&task.base_sha) || !hex_sha(&task.head_sha) {
        return Err(ExecError(
            "baseSha and headSha must be full hex SHAs".into(),
        ));
    }
    Ok(())
}

/// Computes the changed files and the patch between the task's base and
/// head in `repo`.
pub fn load_change(repo: &Path, task: &ExecutorTask) -> Result<Change, ExecError> {
    validate_task(task)?;
    let range = [task.base_sha.as_str(), task.head_sha.as_str()];
    let status = git(
        repo,
        &[&["diff", "--name-status", "-z", "-M", "-C"][..], &range].concat(),
    )?;
    let numstat = git(
        repo,
        &[&["diff", "--numstat", "-z", "-M", "-C"][..], &range].concat(),
    )?;
    let mut files = parse_name_status(&status)?;
    let counts = parse_numstat(&numstat)?;
    if counts.len() != files.len() {
        return Err(ExecError(format!(
            "git reported {} files by status but {} by line counts",
            files.len(),
            counts.len()
        )));
    }
    let mut totals = Totals::default();
    for (f, (adds, dels)) in files.iter_mut().zip(counts) {
        match (adds, dels) {
            (Some(a), Some(d)) => {
                f.additions = a;
                f.deletions = d;
            }
            _ => f.binary = true,
        }
        totals.files += 1;
        totals.additions += f.additions;
        totals.deletions += f.deletions;
    }
    let patch = git(
        repo,
        &[
            &["diff", "--no-color", "--no-ext-diff", "-U3", "-M", "-C"][..],
            &range,
        ]
        .concat(),
    )?;
    let patches = diff::parse_patch(&String::from_utf8_lossy(&patch))?;
    Ok(Change {
        files,
        totals,
        patches,
    })
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Parses `git diff --name-status -z` output.
pub fn parse_name_status(out: &[u8]) -> Result<Vec<FileStat>, ExecError> {
    let mut fields = out.split(|b| *b == 0).filter(|f| !f.is_empty());
    let mut files = Vec::new();
    while let Some(code) = fields.next() {
        let letter = code.first().copied().unwrap_or(b'?');
        let mut next = || {
            fields
                .next()
                .map(text)
                .ok_or_else(|| ExecError("truncated git --name-status output".into()))
        };
        let (status, path, old_path) = match letter {
            b'A' => (FileStatus::Added, next()?, None),
            b'M' => (FileStatus::Modified, next()?, None),
            b'D' => (FileStatus::Deleted, next()?, None),
            b'T' => (FileStatus::Typechange, next()?, None),
            b'R' | b'C' => {
                let old = next()?;
                let new = next()?;
                let s = if letter == b'R' {
                    FileStatus::Renamed
                } else {
                    FileStatus::Copied
                };
                (s, new, Some(old))
            }
            other => {
                return Err(ExecError(format!(
                    "unexpected git status {:?}",
                    char::from(other)
                )));
            }
        };
        files.push(FileStat {
            path,
            old_path,
            status,
            additions: 0,
            deletions: 0,
            binary: false,
            review_status: None,
            reason: None,
            reviewed_lines: 0,
        });
    }
    Ok(files)
}

/// Added and deleted lines of one file; `None` for binary files.
pub type LineCounts = (Option<u64>, Option<u64>);

/// Parses `git diff --numstat -z` output into line counts per file, in
/// git's order (binary files show as `-` and count as `None`).
pub fn parse_numstat(out: &[u8]) -> Result<Vec<LineCounts>, ExecError> {
    let mut rest = out;
    let mut counts = Vec::new();
    while !rest.is_empty() {
        // "<adds>\t<dels>\t<path>\0" or, for renames, "<adds>\t<dels>\t\0<old>\0<new>\0".
        let tab1 = rest
            .iter()
            .position(|b| *b == b'\t')
            .ok_or_else(|| ExecError("bad numstat".into()))?;
        let adds = &rest[..tab1];
        rest = &rest[tab1 + 1..];
        let tab2 = rest
            .iter()
            .position(|b| *b == b'\t')
            .ok_or_else(|| ExecError("bad numstat".into()))?;
        let dels = &rest[..tab2];
        rest = &rest[tab2 + 1..];
        let nul = rest
            .iter()
            .position(|b| *b == 0)
            .ok_or_else(|| ExecError("bad numstat".into()))?;
        let path_is_empty = nul == 0;
        rest = &rest[nul + 1..];
        if path_is_empty {
            for _ in 0..2 {
                let n = rest
                    .iter()
                    .position(|b| *b == 0)
                    .ok_or_else(|| ExecError("bad numstat".into()))?;
                rest = &rest[n + 1..];
            }
        }
        let num = |f: &[u8]| {
            std::str::from_utf8(f)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
        };
        counts.push((num(adds), num(dels)));
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(dir: &Path, cmd: &str) {
        let ok = Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@e")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@e")
            .status()
            .expect("sh")
            .success();
        assert!(ok, "{cmd}");
    }

    fn rev(dir: &Path, r: &str) -> String {
        let out = Command::new("git")
            .args(["-C"])
            .arg(dir)
            .args(["rev-parse", r])
            .output()
            .expect("git");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    #[test]
    fn computes_renames_deletions_binaries_and_counts() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path();
        sh(
            p,
            "git init -q -b main . && printf 'a\\nb\\nc\\n' > keep.txt && printf '1\\n2\\n3\\n4\\n5\\n6\\n' > old.txt && echo x > gone.txt && git add . && git commit -qm base",
        );
        let base = rev(p, "HEAD");
        sh(
            p,
            "printf 'a\\nB\\nc\\nd\\n' > keep.txt && git mv old.txt 'new name.txt' && git rm -q gone.txt && printf '\\000\\001\\002' > blob.bin && git add . && git commit -qm head",
        );
        let head = rev(p, "HEAD");
        let out = load_change(
            p,
            &ExecutorTask {
                version: 1,
                task_id: "t".into(),
                base_sha: base,
                head_sha: head,
                model: None,
                review: ReviewSettings::default(),
                request_id: None,
            },
        )
        .expect("diff");
        let by_path = |name: &str| {
            out.files
                .iter()
                .find(|f| f.path == name)
                .cloned()
                .expect(name)
        };
        assert_eq!(out.files.len(), 4, "{:?}", out.files);
        let keep = by_path("keep.txt");
        assert_eq!(
            (keep.status, keep.additions, keep.deletions),
            (FileStatus::Modified, 2, 1)
        );
        let moved = by_path("new name.txt");
        assert_eq!(
            (moved.status, moved.old_path.as_deref()),
            (FileStatus::Renamed, Some("old.txt"))
        );
        assert_eq!(by_path("gone.txt").status, FileStatus::Deleted);
        let bin = by_path("blob.bin");
        assert!(bin.binary && bin.status == FileStatus::Added);
        assert_eq!(
            out.totals,
            Totals {
                files: 4,
                additions: 2,
                deletions: 2
            }
        );
    }

    #[test]
    fn refuses_other_contract_versions_and_bad_shas() {
        let d = tempfile::tempdir().expect("tempdir");
        let t = ExecutorTask {
            version: 2,
            task_id: "t".into(),
            base_sha: "a".repeat(40),
            head_sha: "b".repeat(40),
            model: None,
            review: ReviewSettings::default(),
            request_id: None,
        };
        assert!(
            load_change(d.path(), &t)
                .expect_err("v2")
                .0
                .contains("version 2")
        );
        let t = ExecutorTask {
            version: 1,
            base_sha: "--output=/x".into(),
            ..t
        };
        assert!(load_change(d.path(), &t).is_err());
    }
}
