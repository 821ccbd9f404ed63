//! The review pipeline: diff, repository configuration, exclusions,
//! deterministic checks, packing, model calls with one repair, anchoring,
//! and the verdict.
//!
//! Every changed file ends up in exactly one state: skipped (with the
//! reason), reviewed, partly reviewed or not reviewed; whatever was not
//! reviewed is listed in `notReviewed` with its reason. The model's
//! failures never fail the review: the deterministic findings are kept and
//! `ai` says what went wrong.

use crate::anchor::{Anchored, SentFile, anchor, filter_severity, merge_duplicates};
use crate::answer::{ModelAnswer, parse_answer};
use crate::checks::{Finding, FindingSource, Severity, run_checks};
use crate::classify::{Excludes, PathMatcher, generated_header, skip_reason};
use crate::client::{CallError, Gateway};
use crate::config::{RepoConfig, load_config};
use crate::diff::{FilePatch, Hunk};
use crate::gateway::{ChatMessage, ChatRequest, ChatRole};
use crate::plan::{FileCost, LeftOutReason, Limits, Plan, pack};
use crate::prompt::{
    CALL_OVERHEAD_TOKENS, PromptContext, USER_PREAMBLE, estimate_tokens, file_header, language_of,
    render_hunk, repair_message, system_prompt, user_message,
};
use crate::{
    AiReport, AiStatus, Assessment, CONTRACT_VERSION, Change, ExecError, ExecutorOutput,
    ExecutorTask, FileReviewStatus, FileStat, LineRange, ModelSettings, NotReviewed, RuleSettings,
    load_change,
};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

/// `ai.reason` when the task has no model.
pub const NO_MODEL_REASON: &str = "no model configured: set AI_REVIEW_LLM_PROVIDER, AI_REVIEW_LLM_BASE_URL, AI_REVIEW_LLM_MODEL and AI_REVIEW_LLM_API_KEY (or configure an AI config on the server) to enable the AI review";

/// Bytes of each file's head read to spot generated-code headers.
const HEADER_BYTES: usize = 2048;

fn say(log: &mut dyn Write, msg: std::fmt::Arguments<'_>) {
    // Progress is best effort: a closed stderr must not fail the review.
    let _ = writeln!(log, "{msg}");
}

/// `18k`, `950`.
fn k(n: u64) -> String {
    if n >= 1000 {
        format!("{}k", n.div_ceil(1000))
    } else {
        n.to_string()
    }
}

/// The first [`HEADER_BYTES`] of each `paths` at revision `rev`, through
/// one `git cat-file --batch`.
fn read_heads(repo: &Path, rev: &str, paths: &[&str]) -> Result<Vec<String>, ExecError> {
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    let err = |e: std::io::Error| ExecError(format!("git cat-file: {e}"));
    let mut child = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["cat-file", "--batch"])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_COUNT", "1")
        .env("GIT_CONFIG_KEY_0", "safe.directory")
        .env("GIT_CONFIG_VALUE_0", "*")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(err)?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| ExecError("git cat-file: no stdin".into()))?;
    let requests: String = paths.iter().map(|p| format!("{rev}:{p}\n")).collect();
    // Written from a thread: git answers while we are still asking, and
    // both pipes would fill up otherwise.
    let writer = std::thread::spawn(move || stdin.write_all(requests.as_bytes()));
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| ExecError("git cat-file: no stdout".into()))?;
    let mut r = BufReader::new(stdout);
    let mut heads = Vec::with_capacity(paths.len());
    for _ in paths {
        let mut line = String::new();
        r.read_line(&mut line).map_err(err)?;
        let size = match line.trim_end().rsplit_once(' ') {
            Some((_, size)) if !line.trim_end().ends_with(" missing") => size
                .parse::<u64>()
                .map_err(|_| ExecError(format!("git cat-file: bad header {line:?}")))?,
            _ => {
                heads.push(String::new());
                continue;
            }
        };
        let mut head = Vec::new();
        (&mut r)
            .take(size.min(HEADER_BYTES as u64))
            .read_to_end(&mut head)
            .map_err(err)?;
        let rest = size.saturating_sub(head.len() as u64) + 1;
        std::io::copy(&mut (&mut r).take(rest), &mut std::io::sink()).map_err(err)?;
        heads.push(String::from_utf8_lossy(&head).into_owned());
    }
    let _ = writer.join();
    let _ = child.wait();
    Ok(heads)
}

/// A file going to the model.
struct Reviewable<'a> {
    /// Index in `Change::files`.
    index: usize,
    patch: &'a FilePatch,
    language: Option<&'static str>,
    /// Indices into the review's rules.
    rules: Vec<usize>,
}

/// What happened to one hunk.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HunkState {
    Pending,
    Reviewed,
    Left(String),
}

/// Compiles each rule's paths.
fn rule_matchers(rules: &[RuleSettings]) -> Result<Vec<PathMatcher>, ExecError> {
    rules
        .iter()
        .map(|r| PathMatcher::new(&r.paths).map_err(|e| ExecError(format!("rule {}: {e}", r.id))))
        .collect()
}

/// Runs the whole review of `task` on the checkout `repo`, asking
/// `gateway` when the task has a model. Progress goes to `log`.
pub fn review(
    repo: &Path,
    task: &ExecutorTask,
    gateway: Option<&dyn Gateway>,
    log: &mut dyn Write,
) -> Result<ExecutorOutput, ExecError> {
    let change = load_change(repo, task)?;
    say(
        log,
        format_args!(
            "{} files changed, {} insertions(+), {} deletions(-)",
            change.totals.files, change.totals.additions, change.totals.deletions
        ),
    );
    let config = load_config(repo, &task.head_sha)?;
    if let Some(f) = &config.file {
        say(
            log,
            format_args!(
                "using {f}: {} rules, {} excludes",
                config.rules.len(),
                usize::from(!config.exclude.is_empty())
            ),
        );
    }
    let project = PathMatcher::new(&task.review.excludes)
        .map_err(|e| ExecError(format!("invalid project exclude: {e}")))?;
    let mut rules = task.review.rules.clone();
    rules.extend(config.rules.iter().cloned());
    let matchers = rule_matchers(&rules)?;

    let checks = run_checks(&change.patches);
    say(
        log,
        format_args!("deterministic checks: {} findings", checks.len()),
    );

    let mut files = change.files.clone();
    let ex = Excludes {
        project: &project,
        repo: &config.exclude,
        repo_file: config.file.as_deref().unwrap_or(".ai-review.yml"),
    };
    let mut candidates = Vec::new();
    for (i, f) in files.iter_mut().enumerate() {
        let patch = change.patch_of(f);
        match skip_reason(f, patch, ex) {
            Some(reason) => {
                f.review_status = Some(FileReviewStatus::Skipped);
                f.reason = Some(reason);
            }
            None => candidates.push(i),
        }
    }
    let paths: Vec<&str> = candidates.iter().map(|&i| files[i].path.as_str()).collect();
    let heads = read_heads(repo, &task.head_sha, &paths)?;
    let mut reviewable = Vec::new();
    for (&i, head) in candidates.iter().zip(&heads) {
        if let Some(reason) = generated_header(head) {
            files[i].review_status = Some(FileReviewStatus::Skipped);
            files[i].reason = Some(reason);
            continue;
        }
        let Some(patch) = change.patch_of(&files[i]) else {
            continue;
        };
        let path = files[i].path.as_str();
        reviewable.push(Reviewable {
            index: i,
            patch,
            language: language_of(path),
            rules: matchers
                .iter()
                .enumerate()
                .filter(|(_, m)| m.is_empty() || m.first_match(path).is_some())
                .map(|(r, _)| r)
                .collect(),
        });
    }
    let unchanged_hunks = match task.review.since_sha.as_deref() {
        Some(since) => {
            let (unchanged, note) =
                incremental(repo, since, &task.head_sha, &reviewable, &mut files)?;
            say(log, format_args!("{note}"));
            reviewable.retain(|r| files[r.index].review_status != Some(FileReviewStatus::Skipped));
            unchanged
        }
        None => Vec::new(),
    };
    let skipped: Vec<&FileStat> = files
        .iter()
        .filter(|f| f.review_status == Some(FileReviewStatus::Skipped))
        .collect();
    let skip_counts = count_kinds(&skipped);
    let skipped = skipped.len();

    let mut ctx = Context {
        change: &change,
        files,
        reviewable,
        rules,
        config: &config,
        task,
        checks,
        states: Vec::new(),
        answers: Vec::new(),
        model_findings: Vec::new(),
        unanchored: Vec::new(),
    };
    ctx.states = ctx
        .reviewable
        .iter()
        .map(|r| vec![HunkState::Pending; r.patch.hunks.len()])
        .collect();
    for (file_index, hunk, reason) in unchanged_hunks {
        if let Some(ri) = ctx.reviewable.iter().position(|r| r.index == file_index) {
            ctx.states[ri][hunk] = HunkState::Left(reason);
        }
    }

    let ai = match (&task.model, gateway) {
        (Some(model), Some(gw)) => ctx.run_model(model, gw, &skip_counts, log),
        (Some(model), None) => {
            let reason = "model configured but no gateway socket".to_owned();
            ctx.leave_all(&reason);
            AiReport {
                status: if ctx.reviewable.is_empty() {
                    AiStatus::Completed
                } else {
                    AiStatus::Failed
                },
                reason: Some(reason),
                provider: Some(model.provider.clone()),
                model: Some(model.model.clone()),
                chunks: 0,
            }
        }
        (None, _) => {
            say(
                log,
                format_args!(
                    "planning: {} files, {} skipped{}, no model configured: deterministic checks only",
                    ctx.files.len(),
                    skipped,
                    skip_counts
                ),
            );
            for r in &ctx.reviewable {
                ctx.files[r.index].review_status = Some(FileReviewStatus::Reviewed);
            }
            AiReport {
                status: AiStatus::Skipped,
                reason: Some(NO_MODEL_REASON.into()),
                provider: None,
                model: None,
                chunks: 0,
            }
        }
    };
    let usage = gateway
        .filter(|_| task.model.is_some())
        .and_then(|g| g.usage().ok());
    Ok(ctx.finish(ai, usage))
}

/// ` (2 lock, 1 binary)`.
fn count_kinds(skipped: &[&FileStat]) -> String {
    let mut kinds: Vec<(&str, usize)> = Vec::new();
    for f in skipped {
        let reason = f.reason.as_deref().unwrap_or("");
        let kind = [
            "lock",
            "binary",
            "deleted",
            "vendored",
            "generated",
            "excluded",
            "submodule",
        ]
        .into_iter()
        .find(|k| reason.starts_with(k))
        .unwrap_or("unchanged");
        match kinds.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => kinds.push((kind, 1)),
        }
    }
    if kinds.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
    format!(" ({})", parts.join(", "))
}

struct Context<'a> {
    change: &'a Change,
    files: Vec<FileStat>,
    reviewable: Vec<Reviewable<'a>>,
    rules: Vec<RuleSettings>,
    config: &'a RepoConfig,
    task: &'a ExecutorTask,
    checks: Vec<Finding>,
    /// Per reviewable file, per hunk.
    states: Vec<Vec<HunkState>>,
    answers: Vec<ModelAnswer>,
    model_findings: Vec<Finding>,
    unanchored: Vec<Finding>,
}

impl<'a> Context<'a> {
    fn prompt_context(&self) -> PromptContext<'_> {
        let r = &self.task.review;
        PromptContext {
            template: r.template.as_ref().map(|t| t.content.as_str()),
            title: r.title.as_deref(),
            branch: r.branch.as_deref(),
            repository: r.repository.as_deref(),
            instructions: self.config.instructions.as_deref(),
        }
    }

    fn file(&self, reviewable: usize) -> &FileStat {
        &self.files[self.reviewable[reviewable].index]
    }

    /// The system message for a set of reviewable files.
    fn system_for(&self, set: &[usize]) -> String {
        let langs: BTreeSet<&str> = set
            .iter()
            .filter_map(|&i| self.reviewable[i].language)
            .collect();
        let rule_ids: BTreeSet<usize> = set
            .iter()
            .flat_map(|&i| self.reviewable[i].rules.iter().copied())
            .collect();
        let rules: Vec<&RuleSettings> = rule_ids.iter().map(|&r| &self.rules[r]).collect();
        let langs: Vec<&str> = langs.into_iter().collect();
        system_prompt(&self.prompt_context(), &langs, &rules)
    }

    fn leave_all(&mut self, reason: &str) {
        for s in self.states.iter_mut().flatten() {
            if *s == HunkState::Pending {
                *s = HunkState::Left(reason.to_owned());
            }
        }
    }

    fn plan(&self, model: &ModelSettings) -> Plan {
        let costs: Vec<FileCost> = self
            .reviewable
            .iter()
            .enumerate()
            .map(|(i, r)| FileCost {
                header: estimate_tokens(&file_header(self.file(i))),
                hunks: r
                    .patch
                    .hunks
                    .iter()
                    .enumerate()
                    // Hunks already settled (unchanged since the last
                    // round) cost nothing and are never sent.
                    .map(|(h, hunk)| {
                        if self.states[i][h] == HunkState::Pending {
                            estimate_tokens(&render_hunk(hunk))
                        } else {
                            0
                        }
                    })
                    .collect(),
            })
            .collect();
        let limits = Limits {
            max_input: u64::from(model.max_input_tokens_per_call),
            max_output: u64::from(model.max_output_tokens),
            budget: model.token_budget,
        };
        let preamble = estimate_tokens(USER_PREAMBLE) + CALL_OVERHEAD_TOKENS;
        pack(&costs, limits, &mut |set| {
            estimate_tokens(&self.system_for(set)) + preamble
        })
    }

    fn run_model(
        &mut self,
        model: &ModelSettings,
        gw: &dyn Gateway,
        skip_counts: &str,
        log: &mut dyn Write,
    ) -> AiReport {
        let plan = self.plan(model);
        let skipped = self.files.len() - self.reviewable.len();
        say(
            log,
            format_args!(
                "planning: {} files, {skipped} skipped{skip_counts}, {} calls, ~{} tokens of {} budget",
                self.files.len(),
                plan.chunks.len(),
                k(plan.planned_tokens),
                k(model.token_budget)
            ),
        );
        for l in &plan.left_out {
            let reason = match l.reason {
                LeftOutReason::TooLarge { tokens } => format!(
                    "hunk too large for one model call (~{tokens} tokens, at most {} per call)",
                    model.max_input_tokens_per_call
                ),
                LeftOutReason::Budget => format!(
                    "token budget exhausted (used ~{} of {} tokens)",
                    plan.planned_tokens, model.token_budget
                ),
            };
            self.states[l.file][l.hunk] = HunkState::Left(reason);
        }
        if !plan.left_out.is_empty() {
            say(
                log,
                format_args!(
                    "{} hunks left out of the model review (see notReviewed)",
                    plan.left_out.len()
                ),
            );
        }
        let n = plan.chunks.len();
        let mut spent = 0u64;
        let mut stop: Option<String> = None;
        for (ci, chunk) in plan.chunks.iter().enumerate() {
            let parts: Vec<(usize, Vec<&'a Hunk>)> = chunk
                .parts
                .iter()
                .map(|p| {
                    let patch: &'a FilePatch = self.reviewable[p.file].patch;
                    let pending = p
                        .hunks
                        .iter()
                        .filter(|&&h| self.states[p.file][h] == HunkState::Pending)
                        .map(|&h| &patch.hunks[h])
                        .collect();
                    (p.file, pending)
                })
                .filter(|(_, hs): &(usize, Vec<&Hunk>)| !hs.is_empty())
                .collect();
            if parts.is_empty() {
                continue;
            }
            let mark = |ctx: &mut Self, state: HunkState| {
                for p in &chunk.parts {
                    for &h in &p.hunks {
                        if ctx.states[p.file][h] == HunkState::Pending {
                            ctx.states[p.file][h] = state.clone();
                        }
                    }
                }
            };
            if let Some(reason) = &stop {
                mark(self, HunkState::Left(reason.clone()));
                continue;
            }
            let set = chunk.files();
            let rendered: Vec<(&FileStat, Vec<&Hunk>)> = parts
                .iter()
                .map(|(f, hs)| (self.file(*f), hs.clone()))
                .collect();
            let mut messages = vec![
                ChatMessage {
                    role: ChatRole::System,
                    content: self.system_for(&set),
                },
                ChatMessage {
                    role: ChatRole::User,
                    content: user_message(&rendered),
                },
            ];
            let input = messages
                .iter()
                .map(|m| estimate_tokens(&m.content))
                .sum::<u64>()
                + CALL_OVERHEAD_TOKENS;
            let what = format!(
                "model call {}/{n}: {} files, {} hunks, ~{} tokens",
                ci + 1,
                set.len(),
                parts.iter().map(|(_, h)| h.len()).sum::<usize>(),
                k(input)
            );
            spent += input + u64::from(model.max_output_tokens);
            let req = ChatRequest {
                messages: messages.clone(),
                max_tokens: Some(model.max_output_tokens),
                json: true,
                label: Some(format!("review {}/{n}", ci + 1)),
            };
            let outcome = match gw.chat(&req) {
                Ok(resp) => match parse_answer(&resp.content) {
                    Ok(a) => {
                        say(
                            log,
                            format_args!(
                                "{what} ... ok{}",
                                if resp.cached { " (cached)" } else { "" }
                            ),
                        );
                        Ok(a)
                    }
                    Err(e) => {
                        say(
                            log,
                            format_args!("{what} ... invalid answer ({})", first_line(&e)),
                        );
                        messages.push(ChatMessage {
                            role: ChatRole::Assistant,
                            content: resp.content.clone(),
                        });
                        messages.push(ChatMessage {
                            role: ChatRole::User,
                            content: repair_message(&e),
                        });
                        let repair_input = messages
                            .iter()
                            .map(|m| estimate_tokens(&m.content))
                            .sum::<u64>()
                            + CALL_OVERHEAD_TOKENS;
                        // Planned calls keep their share of the budget: a
                        // repair only uses what the plan left over.
                        let reserved: u64 = plan.chunks[ci + 1..]
                            .iter()
                            .map(|c| c.input_tokens + u64::from(model.max_output_tokens))
                            .sum();
                        if spent + repair_input + u64::from(model.max_output_tokens) + reserved
                            > model.token_budget
                        {
                            Err((
                                format!(
                                    "model answer invalid and the token budget leaves no room for a repair: {e}"
                                ),
                                false,
                            ))
                        } else {
                            say(
                                log,
                                format_args!("model call {}/{n}: asking for a repair", ci + 1),
                            );
                            spent += repair_input + u64::from(model.max_output_tokens);
                            let repair = ChatRequest {
                                messages,
                                max_tokens: Some(model.max_output_tokens),
                                json: true,
                                label: Some(format!("repair {}/{n}", ci + 1)),
                            };
                            match gw.chat(&repair) {
                                Ok(r2) => match parse_answer(&r2.content) {
                                    Ok(a) => {
                                        say(
                                            log,
                                            format_args!(
                                                "model call {}/{n}: repair ... ok",
                                                ci + 1
                                            ),
                                        );
                                        Ok(a)
                                    }
                                    Err(e2) => Err((
                                        format!("model answer invalid after one repair: {e2}"),
                                        false,
                                    )),
                                },
                                Err(e2) => Err(call_failure(&e2)),
                            }
                        }
                    }
                },
                Err(e) => Err(call_failure(&e)),
            };
            match outcome {
                Ok(answer) => {
                    mark(self, HunkState::Reviewed);
                    self.absorb(answer, &parts);
                }
                Err((reason, fatal)) => {
                    say(
                        log,
                        format_args!("model call {}/{n}: failed: {}", ci + 1, first_line(&reason)),
                    );
                    mark(self, HunkState::Left(reason.clone()));
                    if fatal {
                        stop = Some(reason);
                    }
                }
            }
        }
        let total: usize = self.states.iter().map(Vec::len).sum();
        let reviewed = self
            .states
            .iter()
            .flatten()
            .filter(|s| **s == HunkState::Reviewed)
            .count();
        let mut reasons: Vec<&str> = Vec::new();
        for s in self.states.iter().flatten() {
            if let HunkState::Left(r) = s
                && !reasons.contains(&r.as_str())
            {
                reasons.push(r);
            }
        }
        let (status, reason) = if total == 0 {
            let why = if self.files.is_empty() {
                "no changes to review"
            } else {
                "nothing to review: every changed file was skipped"
            };
            (AiStatus::Completed, Some(why.to_owned()))
        } else if reviewed == total {
            (AiStatus::Completed, None)
        } else if reviewed == 0 {
            (AiStatus::Failed, Some(reasons.join("; ")))
        } else {
            (
                AiStatus::Partial,
                Some(format!(
                    "{} of {total} hunks not reviewed: {}",
                    total - reviewed,
                    reasons.join("; ")
                )),
            )
        };
        AiReport {
            status,
            reason,
            provider: Some(model.provider.clone()),
            model: Some(model.model.clone()),
            chunks: u32::try_from(n).unwrap_or(u32::MAX),
        }
    }

    /// Anchors a chunk's findings on what the chunk carried.
    fn absorb(&mut self, answer: ModelAnswer, parts: &[(usize, Vec<&Hunk>)]) {
        let change: &'a Change = self.change;
        let sent: Vec<SentFile<'_>> = parts
            .iter()
            .map(|(f, hunks)| SentFile {
                path: change.files[self.reviewable[*f].index].path.as_str(),
                hunks: hunks.as_slice(),
            })
            .collect();
        for f in &answer.findings {
            match anchor(f, &sent) {
                Anchored::Placed(a) => self.model_findings.push(a),
                Anchored::Unanchored(u) => self.unanchored.push(u),
            }
        }
        self.answers.push(answer);
    }

    /// Per-file statuses, `notReviewed`, the verdict and the summary.
    fn finish(mut self, ai: AiReport, usage: Option<crate::gateway::ModelUsage>) -> ExecutorOutput {
        let mut not_reviewed = Vec::new();
        let mut reviewed_lines = 0;
        let mut applied = BTreeSet::new();
        if ai.status != AiStatus::Skipped {
            for (ri, r) in self.reviewable.iter().enumerate() {
                let states = &self.states[ri];
                let hunks = &r.patch.hunks;
                let done: Vec<usize> = (0..hunks.len())
                    .filter(|&h| states[h] == HunkState::Reviewed)
                    .collect();
                let lines: u64 = done.iter().map(|&h| hunks[h].changed_lines()).sum();
                let mut groups: Vec<(String, Vec<LineRange>)> = Vec::new();
                for (h, s) in states.iter().enumerate() {
                    if let HunkState::Left(reason) = s {
                        let (start, end) = hunks[h].new_range();
                        let range = LineRange { start, end };
                        match groups.iter_mut().find(|(r, _)| r == reason) {
                            Some((_, v)) => v.push(range),
                            None => groups.push((reason.clone(), vec![range])),
                        }
                    }
                }
                let f = &mut self.files[r.index];
                f.reviewed_lines = lines;
                reviewed_lines += lines;
                if !done.is_empty() {
                    applied.extend(r.rules.iter().map(|&i| self.rules[i].id.clone()));
                }
                let whole = done.is_empty() && groups.len() == 1;
                let reasons: Vec<String> = groups.iter().map(|(r, _)| r.clone()).collect();
                (f.review_status, f.reason) = if groups.is_empty() {
                    (Some(FileReviewStatus::Reviewed), None)
                } else if done.is_empty() {
                    (
                        Some(FileReviewStatus::NotReviewed),
                        Some(reasons.join("; ")),
                    )
                } else {
                    let left: usize = groups.iter().map(|(_, v)| v.len()).sum();
                    (
                        Some(FileReviewStatus::Partial),
                        Some(format!(
                            "{left} of {} hunks not reviewed: {}",
                            hunks.len(),
                            reasons.join("; ")
                        )),
                    )
                };
                for (reason, lines) in groups {
                    not_reviewed.push(NotReviewed {
                        path: f.path.clone(),
                        reason,
                        lines: if whole { Vec::new() } else { lines },
                    });
                }
            }
        }
        let min = self.config.min_severity;
        let mut all = std::mem::take(&mut self.checks);
        all.extend(filter_severity(
            std::mem::take(&mut self.model_findings),
            min,
        ));
        let mut findings = merge_duplicates(all);
        crate::checks::attach_context(&mut findings, &self.change.patches);
        let unanchored =
            merge_duplicates(filter_severity(std::mem::take(&mut self.unanchored), min));
        let worst = findings.iter().map(|f| f.severity).max();
        let (assessment, rating) = if self.answers.is_empty() {
            let a = match worst {
                Some(Severity::Error) => Assessment::RequestChanges,
                Some(_) => Assessment::Comment,
                None => Assessment::Approve,
            };
            let r = match worst {
                Some(Severity::Error) => 2,
                Some(Severity::Warning) => 3,
                Some(Severity::Info) => 4,
                None => 5,
            };
            (a, r)
        } else {
            let from_findings = match worst {
                Some(Severity::Error) => Assessment::RequestChanges,
                Some(Severity::Warning) => Assessment::Comment,
                _ => Assessment::Approve,
            };
            let a = self
                .answers
                .iter()
                .map(|a| a.assessment)
                .fold(from_findings, Ord::max);
            let r = self.answers.iter().map(|a| a.rating).min().unwrap_or(5);
            let r = if worst == Some(Severity::Error) {
                r.min(2)
            } else {
                r
            };
            (a, r)
        };
        let summary = self.summary(&ai, &findings, &unanchored, &not_reviewed);
        ExecutorOutput {
            version: CONTRACT_VERSION,
            kind: "review".into(),
            base_sha: self.task.base_sha.clone(),
            head_sha: self.task.head_sha.clone(),
            files: self.files,
            totals: self.change.totals.clone(),
            findings,
            summary,
            assessment: Some(assessment),
            rating: Some(rating),
            ai: Some(ai),
            not_reviewed,
            unanchored,
            reviewed_lines,
            applied_rule_ids: applied.into_iter().collect(),
            usage,
        }
    }

    fn summary(
        &self,
        ai: &AiReport,
        findings: &[Finding],
        unanchored: &[Finding],
        not_reviewed: &[NotReviewed],
    ) -> String {
        let mut out = String::new();
        match self.answers.as_slice() {
            [] => {}
            [one] => out.push_str(&format!("{}\n\n", one.summary.trim())),
            many => {
                for a in many {
                    out.push_str(&format!("- {}\n", a.summary.trim().replace('\n', " ")));
                }
                out.push('\n');
            }
        }
        match ai.status {
            AiStatus::Skipped => {
                out.push_str("Deterministic checks only: no model is configured.\n\n")
            }
            AiStatus::Failed | AiStatus::Partial => out.push_str(&format!(
                "**AI review {}:** {}\n\n",
                if ai.status == AiStatus::Failed {
                    "failed"
                } else {
                    "partial"
                },
                ai.reason.as_deref().unwrap_or("")
            )),
            AiStatus::Completed => {}
        }
        let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
        let from = |s: FindingSource| findings.iter().filter(|f| f.source == s).count();
        if findings.is_empty() {
            out.push_str("**Findings:** none.\n");
        } else {
            out.push_str(&format!(
                "**Findings:** {} ({} errors, {} warnings, {} info; {} from deterministic checks, {} from the model).\n",
                findings.len(),
                count(Severity::Error),
                count(Severity::Warning),
                count(Severity::Info),
                from(FindingSource::Check),
                from(FindingSource::Model)
            ));
        }
        let status = |s: FileReviewStatus| {
            self.files
                .iter()
                .filter(|f| f.review_status == Some(s))
                .count()
        };
        out.push_str(&format!(
            "**Files:** {} reviewed, {} partly reviewed, {} not reviewed, {} skipped.\n",
            status(FileReviewStatus::Reviewed),
            status(FileReviewStatus::Partial),
            status(FileReviewStatus::NotReviewed),
            status(FileReviewStatus::Skipped)
        ));
        if !not_reviewed.is_empty() {
            out.push_str(&format!(
                "**Not reviewed:** {} files or parts of files, each listed with its reason.\n",
                not_reviewed.len()
            ));
        }
        if !unanchored.is_empty() {
            out.push_str("\n### Findings not on a line of the diff\n\n");
            for f in unanchored {
                out.push_str(&format!(
                    "- `{}` lines {}–{} ({:?}, {}): {}\n",
                    f.file,
                    f.line,
                    f.end_line,
                    f.severity,
                    f.category,
                    f.message.replace('\n', " ")
                ));
            }
        }
        out.trim_end().to_owned()
    }
}

/// The not-reviewed reason of a failed call, and whether it stops the
/// review (the budget is gone).
fn call_failure(e: &CallError) -> (String, bool) {
    (e.to_string(), e.code() == Some("budget_exhausted"))
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// A hunk left out of an incremental round: file index, hunk index, reason.
type UnchangedHunk = (usize, usize, String);

/// Incremental rounds: which hunks of the change have no line changed since
/// `since` (the head reviewed last time). Files with none changed become
/// `skipped`; partly changed files keep only their changed hunks for the
/// model, the others are returned as `(file index, hunk, reason)` to be
/// listed in `notReviewed`. When `since` is not in the checkout (a force
/// push rewrote history), nothing is filtered and the note says so.
fn incremental(
    repo: &Path,
    since: &str,
    head: &str,
    reviewable: &[Reviewable<'_>],
    files: &mut [FileStat],
) -> Result<(Vec<UnchangedHunk>, String), ExecError> {
    let short = &since[..since.len().min(12)];
    let valid = since.len() >= 7 && since.bytes().all(|b| b.is_ascii_hexdigit());
    if !valid || crate::git(repo, &["cat-file", "-e", &format!("{since}^{{commit}}")]).is_err() {
        return Ok((
            Vec::new(),
            format!(
                "incremental: {short} is not in the checkout (history rewritten?): reviewing the whole change"
            ),
        ));
    }
    let raw = crate::git(
        repo,
        &[
            "diff",
            "--no-color",
            "--no-ext-diff",
            "-U0",
            "-M",
            since,
            head,
        ],
    )?;
    let patches = crate::diff::parse_patch(&String::from_utf8_lossy(&raw))?;
    // New-side lines touched since the last round, per path.
    let mut touched: std::collections::HashMap<&str, Vec<(u32, u32)>> = Default::default();
    for p in &patches {
        let Some(path) = p.new_path.as_deref() else {
            continue;
        };
        for h in &p.hunks {
            // A pure deletion touches the lines around where it happened.
            let (lo, hi) = if h.new_lines == 0 {
                (h.new_start, h.new_start + 1)
            } else {
                (h.new_start, h.new_start + h.new_lines - 1)
            };
            touched.entry(path).or_default().push((lo, hi));
        }
    }
    let reason = format!("unchanged since the last reviewed head {short}");
    let mut unchanged = Vec::new();
    let mut files_skipped = 0;
    for r in reviewable {
        let f = &mut files[r.index];
        let ranges = touched.get(f.path.as_str());
        let mut any = false;
        let mut left = Vec::new();
        for (hi, h) in r.patch.hunks.iter().enumerate() {
            let (lo, up) = (h.new_start, h.new_start + h.new_lines.max(1) - 1);
            let hit = ranges.is_some_and(|rs| rs.iter().any(|&(a, b)| a <= up && lo <= b));
            if hit {
                any = true;
            } else {
                left.push((r.index, hi, reason.clone()));
            }
        }
        if any {
            unchanged.extend(left);
        } else {
            f.review_status = Some(FileReviewStatus::Skipped);
            f.reason = Some(reason.clone());
            files_skipped += 1;
        }
    }
    Ok((
        unchanged,
        format!(
            "incremental: reviewing what changed since {short}; {files_skipped} files unchanged since then"
        ),
    ))
}
