//! Rendering of a review's result document ([`ExecutorOutput`]) for the
//! forge: the summary comment ([`summary_markdown`]), the inline comments
//! of one round ([`inline_comments`]) and the commit status
//! ([`commit_state`]). Pure functions: no I/O, no clock.
//!
//! Everything that comes from the reviewed change or the model (file
//! names, messages, reasons, the summary text) is treated as untrusted
//! markdown: file names go into code spans that their own backticks cannot
//! close, and `<` outside code is escaped so that no raw HTML (an
//! unterminated `<!--`, a fake [`SUMMARY_MARKER`], a stray `</details>`)
//! can hide or restructure the comment.

use ai_review_executor::checks::{Finding, FindingSource, Severity};
use ai_review_executor::{AiStatus, Assessment, ExecutorOutput, FileReviewStatus, FileStatus};
use ai_review_forge::{CommitState, InlineComment};
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{HashMap, HashSet};

/// First line of every summary comment, so that a later round finds and
/// updates it.
pub const SUMMARY_MARKER: &str = "<!-- ai-review:summary -->";
/// Longest summary comment, in bytes (GitHub accepts 65,536 characters;
/// bytes are never fewer than characters).
pub const MAX_SUMMARY_BYTES: usize = 60_000;
/// Most inline comments posted in one round.
pub const MAX_INLINE_COMMENTS: usize = 50;
/// Longest commit status description, in characters (GitHub's limit).
pub const MAX_STATUS_DESCRIPTION_CHARS: usize = 140;
/// Reason of a finding whose fingerprint an earlier round already posted.
pub const REASON_ALREADY_POSTED: &str = "already posted in an earlier round";
/// Reason of a finding left out because the round's comments ran out.
pub const REASON_COMMENT_LIMIT: &str = "comment limit reached; see the summary";
/// Reason of a second finding with a fingerprint already taken this round.
pub const REASON_DUPLICATE: &str = "duplicate of another finding in this review";

/// Unanchored findings listed one by one before "… and N more".
const MAX_LISTED_UNANCHORED: usize = 30;
/// Not-reviewed files listed one by one before "… and N more".
const MAX_LISTED_NOT_REVIEWED: usize = 100;
/// Above this many not-reviewed entries the list is collapsed.
const COLLAPSE_ABOVE: usize = 10;
/// Byte budgets of the variable sections; with the small fixed parts
/// (each clipped below) they stay under [`MAX_SUMMARY_BYTES`].
const SUMMARY_TEXT_BUDGET: usize = 24_000;
const UNANCHORED_BUDGET: usize = 15_000;
const NOT_REVIEWED_BUDGET: usize = 15_000;
/// Room kept in a list section for its "… and N more" line.
const MORE_LINE_RESERVE: usize = 80;
/// Byte limits of single values inside the summary.
const PATH_BYTES: usize = 300;
const MESSAGE_BYTES: usize = 600;
const REASON_BYTES: usize = 300;
const AI_REASON_BYTES: usize = 1_000;
const NAME_BYTES: usize = 100;
const URL_BYTES: usize = 2_000;
/// Longest message in an inline comment.
const INLINE_MESSAGE_BYTES: usize = 10_000;

/// What the summary needs beyond the result document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SummaryContext {
    /// Review round of the change (1 for the first review).
    pub round: u32,
    /// The review's page on the dashboard.
    pub review_url: Option<String>,
    /// The head commit that was reviewed.
    pub head_sha: String,
    /// Inline comments posted by this round.
    pub new_findings: usize,
    /// Findings not posted again because an earlier round already did.
    pub already_posted: usize,
}

/// A finding that gets no inline comment this round, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SkippedFinding {
    /// The finding's fingerprint.
    pub fingerprint: String,
    /// Why it was not posted.
    pub reason: String,
}

/// The summary comment of a review round (markdown, at most
/// [`MAX_SUMMARY_BYTES`] bytes, [`SUMMARY_MARKER`] on its first line).
///
/// Long lists (unanchored findings, files not reviewed) and a long summary
/// text are cut with an explicit line saying how much was left out.
pub fn summary_markdown(out: &ExecutorOutput, ctx: &SummaryContext) -> String {
    let tail = tail_sections(out, ctx);
    let mut s = String::new();
    s.push_str(SUMMARY_MARKER);
    s.push('\n');
    s.push_str(&title(out, ctx));
    s.push_str("\n\n");
    s.push_str(&counts_section(out, ctx));

    let text = out.summary.trim();
    if !text.is_empty() {
        let budget = section_budget(&s, &tail, SUMMARY_TEXT_BUDGET);
        s.push_str("\n\n");
        s.push_str(&summary_text(text, budget));
    }
    if !out.unanchored.is_empty() {
        let budget = section_budget(&s, &tail, UNANCHORED_BUDGET);
        s.push_str("\n\n");
        s.push_str(&unanchored_section(&out.unanchored, budget));
    }
    let groups = not_reviewed_groups(out);
    if !groups.is_empty() {
        let budget = section_budget(&s, &tail, NOT_REVIEWED_BUDGET);
        s.push_str("\n\n");
        s.push_str(&not_reviewed_section(&groups, budget));
    }
    s.push_str(&tail);
    s.push('\n');
    s
}

/// The inline comments of one round: one per anchored finding that is not
/// in `already_posted` and is at least `min_severity`, sorted by path then
/// line, at most [`MAX_INLINE_COMMENTS`] (the most severe first when there
/// are more). Every finding that gets no comment is returned with its
/// reason: posted earlier, below the minimum severity, a duplicate, an
/// unusable line range, or over the limit.
pub fn inline_comments(
    out: &ExecutorOutput,
    already_posted: &HashSet<String>,
    min_severity: Severity,
) -> (Vec<InlineComment>, Vec<SkippedFinding>) {
    let renamed_from: HashMap<&str, &str> = out
        .files
        .iter()
        .filter(|f| f.status == FileStatus::Renamed)
        .filter_map(|f| Some((f.path.as_str(), f.old_path.as_deref()?)))
        .collect();
    let mut ordered: Vec<&Finding> = out.findings.iter().collect();
    ordered.sort_by(|a, b| position(a).cmp(&position(b)));

    let mut skipped = Vec::new();
    let mut taken: HashSet<&str> = HashSet::new();
    let mut eligible: Vec<&Finding> = Vec::new();
    for f in ordered {
        let reason = if already_posted.contains(&f.fingerprint) {
            Some(REASON_ALREADY_POSTED.to_owned())
        } else if f.severity < min_severity {
            Some(format!(
                "{} is below the minimum severity for inline comments ({})",
                severity_name(f.severity),
                severity_name(min_severity)
            ))
        } else if f.line == 0 || f.end_line < f.line {
            Some(format!(
                "no usable line range ({}–{}); see the summary",
                f.line, f.end_line
            ))
        } else if !taken.insert(f.fingerprint.as_str()) {
            Some(REASON_DUPLICATE.to_owned())
        } else {
            None
        };
        match reason {
            Some(reason) => skipped.push(SkippedFinding {
                fingerprint: f.fingerprint.clone(),
                reason,
            }),
            None => eligible.push(f),
        }
    }

    if eligible.len() > MAX_INLINE_COMMENTS {
        // Keep the most severe findings; the sort is stable, so equal
        // severities keep their path/line order.
        eligible.sort_by_key(|f| Reverse(f.severity));
        for f in eligible.split_off(MAX_INLINE_COMMENTS) {
            skipped.push(SkippedFinding {
                fingerprint: f.fingerprint.clone(),
                reason: REASON_COMMENT_LIMIT.to_owned(),
            });
        }
        eligible.sort_by(|a, b| position(a).cmp(&position(b)));
    }

    let comments = eligible
        .into_iter()
        .map(|f| InlineComment {
            path: f.file.clone(),
            old_path: Some(
                renamed_from
                    .get(f.file.as_str())
                    .copied()
                    .unwrap_or(f.file.as_str())
                    .to_owned(),
            ),
            line: f.line,
            end_line: f.end_line,
            end_old_line: f.old_end_line,
            body: inline_body(f),
            suggestion: f.suggestion.clone(),
            fingerprint: f.fingerprint.clone(),
        })
        .collect();
    (comments, skipped)
}

/// The commit status of a finished review and its description (at most
/// [`MAX_STATUS_DESCRIPTION_CHARS`] characters), e.g. `2 errors, 3
/// warnings · rating 2/5`. Failure when the review requests changes or
/// any finding is an error; success otherwise.
pub fn commit_state(out: &ExecutorOutput) -> (CommitState, String) {
    let all = || out.findings.iter().chain(&out.unanchored);
    let count = |s: Severity| all().filter(|f| f.severity == s).count();
    let (errors, warnings, infos) = (
        count(Severity::Error),
        count(Severity::Warning),
        count(Severity::Info),
    );
    let state = if out.assessment == Some(Assessment::RequestChanges) || errors > 0 {
        CommitState::Failure
    } else {
        CommitState::Success
    };
    let mut counts = Vec::new();
    if errors > 0 {
        counts.push(plural(errors, "error", "errors"));
    }
    if warnings > 0 {
        counts.push(plural(warnings, "warning", "warnings"));
    }
    if infos > 0 {
        counts.push(format!("{infos} info"));
    }
    let mut parts = vec![if counts.is_empty() {
        "No findings".to_owned()
    } else {
        counts.join(", ")
    }];
    if let Some(r) = out.rating {
        parts.push(format!("rating {r}/5"));
    }
    match out.ai.as_ref().map(|a| a.status) {
        Some(AiStatus::Skipped) => parts.push("checks only (no model)".to_owned()),
        Some(AiStatus::Partial) => parts.push("AI review partial".to_owned()),
        Some(AiStatus::Failed) => parts.push("AI review failed".to_owned()),
        Some(AiStatus::Completed) | None => {}
    }
    (
        state,
        clip_chars(&parts.join(" · "), MAX_STATUS_DESCRIPTION_CHARS),
    )
}

// ---------------------------------------------------------------------
// Summary sections

/// `## ai-review · round 2 · Request changes · 2/5`.
fn title(out: &ExecutorOutput, ctx: &SummaryContext) -> String {
    let mut parts = vec!["ai-review".to_owned(), format!("round {}", ctx.round)];
    if let Some(a) = out.assessment {
        parts.push(
            match a {
                Assessment::Approve => "Approve",
                Assessment::Comment => "Comment",
                Assessment::RequestChanges => "Request changes",
            }
            .to_owned(),
        );
    }
    if let Some(r) = out.rating {
        parts.push(format!("{r}/5"));
    }
    format!("## {}", parts.join(" · "))
}

/// The findings table by severity and the round's inline comment counts.
fn counts_section(out: &ExecutorOutput, ctx: &SummaryContext) -> String {
    let mut s = String::new();
    if out.findings.is_empty() && out.unanchored.is_empty() {
        s.push_str("**No findings.**\n");
    } else {
        s.push_str("| Severity | On the diff | Not on a diff line |\n| --- | ---: | ---: |\n");
        for sev in [Severity::Error, Severity::Warning, Severity::Info] {
            let on = out.findings.iter().filter(|f| f.severity == sev).count();
            let off = out.unanchored.iter().filter(|f| f.severity == sev).count();
            s.push_str(&format!("| {} | {on} | {off} |\n", badge(sev)));
        }
        s.push_str(&format!(
            "| **Total** | **{}** | **{}** |\n",
            out.findings.len(),
            out.unanchored.len()
        ));
    }
    s.push_str(&format!(
        "\nInline comments: {} new this round, {} already posted in earlier rounds.",
        ctx.new_findings, ctx.already_posted
    ));
    s
}

/// The review's own summary text, shortened to `budget` bytes.
fn summary_text(text: &str, budget: usize) -> String {
    const MORE: usize = 120;
    let whole = escape_html(text);
    if whole.len() <= budget {
        return whole;
    }
    let mut limit = budget.saturating_sub(MORE);
    loop {
        let cut = floor_boundary(text, limit);
        // Cut on a line boundary and close an open code fence, so the
        // rest of the comment is not swallowed by it.
        let cut = text[..cut].rfind('\n').unwrap_or(cut);
        let mut kept = text[..cut].trim_end().to_owned();
        let fences = kept
            .lines()
            .filter(|l| {
                let t = l.trim_start();
                t.starts_with("```") || t.starts_with("~~~")
            })
            .count();
        if !fences.is_multiple_of(2) {
            kept.push_str("\n```");
        }
        let left = text.len() - cut;
        let rendered = format!(
            "{}\n\n*… summary shortened ({left} more bytes; see the dashboard)*",
            escape_html(&kept)
        );
        if rendered.len() <= budget || limit == 0 {
            return rendered;
        }
        // Shrink in proportion: escaping may have grown the text.
        limit = (limit * budget / rendered.len()).min(limit - 1);
    }
}

/// Findings the executor could not place on a line of the diff.
fn unanchored_section(findings: &[Finding], budget: usize) -> String {
    let mut s = format!(
        "### Findings not on a line of the diff ({})\n\n",
        findings.len()
    );
    let mut listed = 0;
    for f in findings {
        let item = format!("- {}\n", unanchored_item(f));
        if listed >= MAX_LISTED_UNANCHORED || s.len() + item.len() + MORE_LINE_RESERVE > budget {
            break;
        }
        s.push_str(&item);
        listed += 1;
    }
    push_more(&mut s, findings.len() - listed);
    s.trim_end().to_owned()
}

fn unanchored_item(f: &Finding) -> String {
    let file = if f.file.trim().is_empty() {
        "(no file)".to_owned()
    } else {
        code_span(&clip(&f.file, PATH_BYTES))
    };
    let lines = match (f.line, f.end_line) {
        (0, _) => String::new(),
        (a, b) if b > a => format!(" lines {a}–{b}"),
        (a, _) => format!(" line {a}"),
    };
    format!(
        "{} · {file}{lines} · {}: {}",
        badge(f.severity),
        code_span(&clip(&f.category, NAME_BYTES)),
        safe_text(&one_line(&f.message), MESSAGE_BYTES)
    )
}

/// One not-reviewed file or part of one.
struct Unreviewed {
    path: String,
    detail: String,
}

/// `notReviewed` entries and skipped / not-reviewed files without one,
/// grouped by reason in order of first appearance.
fn not_reviewed_groups(out: &ExecutorOutput) -> Vec<(String, Vec<Unreviewed>)> {
    let mut groups: Vec<(String, Vec<Unreviewed>)> = Vec::new();
    let mut add = |reason: &str, entry: Unreviewed| {
        let reason = if reason.trim().is_empty() {
            "no reason given"
        } else {
            reason.trim()
        };
        match groups.iter_mut().find(|(r, _)| r == reason) {
            Some((_, v)) => v.push(entry),
            None => groups.push((reason.to_owned(), vec![entry])),
        }
    };
    for n in &out.not_reviewed {
        let ranges: Vec<String> = n
            .lines
            .iter()
            .map(|r| {
                if r.end > r.start {
                    format!("{}–{}", r.start, r.end)
                } else {
                    r.start.to_string()
                }
            })
            .collect();
        let detail = if ranges.is_empty() {
            String::new()
        } else {
            format!(" (lines {})", clip(&ranges.join(", "), REASON_BYTES))
        };
        add(
            &n.reason,
            Unreviewed {
                path: n.path.clone(),
                detail,
            },
        );
    }
    let listed: HashSet<&str> = out.not_reviewed.iter().map(|n| n.path.as_str()).collect();
    for f in &out.files {
        let default = match f.review_status {
            Some(FileReviewStatus::Skipped) => "skipped",
            Some(FileReviewStatus::NotReviewed) => "not reviewed",
            _ => continue,
        };
        if listed.contains(f.path.as_str()) {
            continue;
        }
        add(
            f.reason.as_deref().unwrap_or(default),
            Unreviewed {
                path: f.path.clone(),
                detail: String::new(),
            },
        );
    }
    groups
}

/// Files not reviewed, grouped by reason; collapsed when long.
fn not_reviewed_section(groups: &[(String, Vec<Unreviewed>)], budget: usize) -> String {
    let total: usize = groups.iter().map(|(_, v)| v.len()).sum();
    let collapsed = total > COLLAPSE_ABOVE;
    let mut s = if collapsed {
        format!("<details>\n<summary>Files not reviewed ({total})</summary>\n\n")
    } else {
        format!("### Files not reviewed ({total})\n\n")
    };
    let closing = if collapsed { "\n</details>" } else { "" };
    let reserve = MORE_LINE_RESERVE + closing.len();
    let mut listed = 0;
    'groups: for (reason, entries) in groups {
        let mut header = format!(
            "- **{}** ({})\n",
            safe_text(&one_line(reason), REASON_BYTES),
            entries.len()
        );
        for e in entries {
            let item = format!(
                "{header}  - {}{}\n",
                code_span(&clip(&e.path, PATH_BYTES)),
                e.detail
            );
            if listed >= MAX_LISTED_NOT_REVIEWED || s.len() + item.len() + reserve > budget {
                break 'groups;
            }
            s.push_str(&item);
            header.clear();
            listed += 1;
        }
    }
    push_more(&mut s, total - listed);
    let mut s = s.trim_end().to_owned();
    s.push_str(closing);
    s
}

/// The AI status line and the small-print footer (usage, head, link).
fn tail_sections(out: &ExecutorOutput, ctx: &SummaryContext) -> String {
    let mut s = String::new();
    if let Some(ai) = &out.ai {
        let reason = ai
            .reason
            .as_deref()
            .map(|r| safe_text(&one_line(r), AI_REASON_BYTES));
        let line = match (ai.status, reason) {
            (AiStatus::Skipped, _) => {
                "AI review skipped: no model configured; only the deterministic checks ran."
                    .to_owned()
            }
            (AiStatus::Failed, r) => format!(
                "AI review failed: {}",
                r.unwrap_or_else(|| "no reason given".into())
            ),
            (AiStatus::Partial, r) => format!(
                "AI review partial: {}",
                r.unwrap_or_else(|| "no reason given".into())
            ),
            (AiStatus::Completed, Some(r)) => format!("AI review completed: {r}"),
            (AiStatus::Completed, None) => "AI review completed.".to_owned(),
        };
        s.push_str("\n\n");
        s.push_str(&line);
    }

    let mut small = Vec::new();
    if let Some(u) = &out.usage {
        let mut usage = String::from("Model");
        let name = [u.provider.as_str(), u.model.as_str()]
            .iter()
            .filter(|n| !n.is_empty())
            .map(|n| safe_text(&one_line(n), NAME_BYTES))
            .collect::<Vec<_>>()
            .join(" ");
        if !name.is_empty() {
            usage.push(' ');
            usage.push_str(&name);
        }
        usage.push_str(&format!(
            ": {} ({} cached), {} input + {} output tokens",
            plural_u64(u.calls, "call", "calls"),
            u.cached_calls,
            thousands(u.input_tokens),
            thousands(u.output_tokens)
        ));
        if let Some(cost) = u.estimated_cost_usd.filter(|c| c.is_finite() && *c >= 0.0) {
            if cost < 0.01 {
                usage.push_str(&format!(", est. ${cost:.4}"));
            } else {
                usage.push_str(&format!(", est. ${cost:.2}"));
            }
        }
        small.push(usage);
    }
    if !ctx.head_sha.trim().is_empty() {
        small.push(format!(
            "Reviewed head {}",
            code_span(&clip(ctx.head_sha.trim(), NAME_BYTES))
        ));
    }
    if let Some(url) = ctx.review_url.as_deref().filter(|u| !u.trim().is_empty()) {
        small.push(format!("[Open the review]({})", link_target(url)));
    }
    if !small.is_empty() {
        s.push_str("\n\n<sub>");
        s.push_str(&small.join(" · "));
        s.push_str("</sub>");
    }
    s
}

/// Bytes a section may use: its own cap, and never more than what keeps
/// the whole comment (with the tail still to come) within the limit.
fn section_budget(so_far: &str, tail: &str, cap: usize) -> usize {
    // Two bytes for the blank line before the section, one for the final
    // newline.
    cap.min(MAX_SUMMARY_BYTES.saturating_sub(so_far.len() + tail.len() + 3))
}

fn push_more(s: &mut String, more: usize) {
    if more > 0 {
        s.push_str(&format!("- … and {more} more (see the dashboard)\n"));
    }
}

// ---------------------------------------------------------------------
// Inline comments

/// Sort key: path, then line range, then fingerprint (for a stable order).
fn position(f: &Finding) -> (&str, u32, u32, &str) {
    (&f.file, f.line, f.end_line, &f.fingerprint)
}

/// Severity badge, category and message; the rule for deterministic
/// checks. The forge adds the suggestion block and fingerprint marker.
fn inline_body(f: &Finding) -> String {
    let mut body = format!(
        "{} · {}\n\n{}",
        badge(f.severity),
        code_span(&clip(&f.category, NAME_BYTES)),
        safe_text(f.message.trim(), INLINE_MESSAGE_BYTES)
    );
    if f.source == FindingSource::Check {
        body.push_str(&format!(
            "\n\n*Deterministic check {}*",
            code_span(&clip(&f.rule_id, NAME_BYTES))
        ));
    }
    body
}

// ---------------------------------------------------------------------
// Text helpers

fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "info",
    }
}

fn badge(s: Severity) -> &'static str {
    match s {
        Severity::Error => "🔴 **Error**",
        Severity::Warning => "🟡 **Warning**",
        Severity::Info => "🔵 **Info**",
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn plural_u64(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `12345678` → `12,345,678`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The largest char boundary of `s` at or below `max`.
fn floor_boundary(s: &str, max: usize) -> usize {
    if max >= s.len() {
        return s.len();
    }
    (0..=max)
        .rev()
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(0)
}

/// `s` cut to at most `max` bytes, with `…` when cut.
fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let cut = floor_boundary(s, max.saturating_sub('…'.len_utf8()));
    format!("{}…", &s[..cut])
}

/// `s` cut to at most `max` characters, with `…` when cut.
fn clip_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some(_) => {
            let keep: String = s.chars().take(max.saturating_sub(1)).collect();
            format!("{keep}…")
        }
    }
}

/// Whitespace (newlines included) collapsed to single spaces.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Untrusted markdown, HTML-escaped ([`escape_html`]) and at most `max`
/// bytes. Cut before escaping, so a cut cannot open a code span that
/// would shelter a `<`.
fn safe_text(s: &str, max: usize) -> String {
    let mut limit = max;
    loop {
        let out = escape_html(&clip(s, limit));
        if out.len() <= max || limit == 0 {
            return out;
        }
        limit = (limit * max / out.len()).min(limit - 1);
    }
}

/// Escapes `<` outside code spans, so the text can hold no raw HTML
/// (comments, tags). Code spans (a backtick run closed by a run of the
/// same length) are left as they are: markdown shows them literally.
/// Backslash escapes are skipped, as markdown reads them.
fn escape_html(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'`' => {
                let run = backtick_run(b, i);
                i = match closing_run(b, i + run, run) {
                    Some(close) => close + run,
                    None => i + run,
                };
            }
            b'<' => {
                out.push_str(&s[copied..i]);
                out.push_str("&lt;");
                i += 1;
                copied = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&s[copied..]);
    out
}

fn backtick_run(b: &[u8], from: usize) -> usize {
    b[from..].iter().take_while(|&&c| c == b'`').count()
}

/// Start of the next backtick run of exactly `len` from `from`.
fn closing_run(b: &[u8], from: usize, len: usize) -> Option<usize> {
    let mut j = from;
    while j < b.len() {
        if b[j] == b'`' {
            let run = backtick_run(b, j);
            if run == len {
                return Some(j);
            }
            j += run;
        } else {
            j += 1;
        }
    }
    None
}

/// `s` as an inline code span its own backticks cannot close (control
/// characters shown as spaces).
fn code_span(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.is_empty() {
        return "(empty)".to_owned();
    }
    let longest = s.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    // Markdown strips one space from each side when both are present, and
    // a backtick at either end would merge with the fence.
    let pad = s.starts_with('`')
        || s.ends_with('`')
        || (s.starts_with(' ') && s.ends_with(' ') && !s.trim().is_empty());
    if pad {
        format!("{fence} {s} {fence}")
    } else {
        format!("{fence}{s}{fence}")
    }
}

/// A link target that cannot end the link early or break the line.
fn link_target(url: &str) -> String {
    let mut out = String::new();
    for c in clip(url.trim(), URL_BYTES).chars() {
        match c {
            '<' => out.push_str("%3C"),
            '>' => out.push_str("%3E"),
            ' ' => out.push_str("%20"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    format!("<{out}>")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ai_review_executor::gateway::ModelUsage;
    use ai_review_executor::{AiReport, FileStat, LineRange, NotReviewed, Totals};

    fn finding(file: &str, line: u32, severity: Severity, fp: &str) -> Finding {
        Finding {
            file: file.into(),
            line,
            end_line: line,
            severity,
            category: "bug".into(),
            rule_id: "model/bug".into(),
            confidence: 0.9,
            message: format!("problem at {file}:{line}"),
            fingerprint: fp.into(),
            source: FindingSource::Model,
            suggestion: None,
            old_end_line: None,
            context: Vec::new(),
        }
    }

    fn file(path: &str) -> FileStat {
        FileStat {
            path: path.into(),
            old_path: None,
            status: FileStatus::Modified,
            additions: 3,
            deletions: 1,
            binary: false,
            review_status: Some(FileReviewStatus::Reviewed),
            reason: None,
            reviewed_lines: 4,
        }
    }

    fn output() -> ExecutorOutput {
        let mut secret = finding("src/config.rs", 7, Severity::Error, "fp-secret");
        secret.category = "secret".into();
        secret.rule_id = "secret/aws-access-key-id".into();
        secret.source = FindingSource::Check;
        secret.message = "An AWS access key id is committed; revoke it.".into();
        let mut renamed = file("src/new_name.rs");
        renamed.status = FileStatus::Renamed;
        renamed.old_path = Some("src/old_name.rs".into());
        let mut lock = file("Cargo.lock");
        lock.review_status = Some(FileReviewStatus::Skipped);
        lock.reason = Some("lock file".into());
        let mut logo = file("logo.png");
        logo.binary = true;
        logo.review_status = Some(FileReviewStatus::Skipped);
        logo.reason = Some("binary file".into());
        let mut big = file("src/big.rs");
        big.review_status = Some(FileReviewStatus::Partial);
        let mut unanchored = finding("src/lib.rs", 120, Severity::Warning, "fp-un");
        unanchored.message = "The new API is not documented anywhere.".into();
        ExecutorOutput {
            version: 1,
            kind: "review".into(),
            base_sha: "a".repeat(40),
            head_sha: "b".repeat(40),
            files: vec![
                file("src/lib.rs"),
                file("src/config.rs"),
                renamed,
                lock,
                logo,
                big,
            ],
            totals: Totals {
                files: 6,
                additions: 18,
                deletions: 6,
            },
            findings: vec![
                finding("src/lib.rs", 30, Severity::Warning, "fp-w2"),
                finding("src/lib.rs", 10, Severity::Warning, "fp-w1"),
                secret,
                finding("src/new_name.rs", 3, Severity::Info, "fp-info"),
                finding("src/lib.rs", 12, Severity::Warning, "fp-w3"),
            ],
            summary: "Adds configuration loading.\n\nLooks mostly fine.".into(),
            assessment: Some(Assessment::RequestChanges),
            rating: Some(2),
            ai: Some(AiReport {
                status: AiStatus::Partial,
                reason: Some("1 of 4 hunks not reviewed: token budget exhausted".into()),
                provider: Some("openai".into()),
                model: Some("gpt-4o".into()),
                chunks: 2,
            }),
            not_reviewed: vec![NotReviewed {
                path: "src/big.rs".into(),
                reason: "token budget exhausted".into(),
                lines: vec![LineRange { start: 40, end: 90 }],
            }],
            unanchored: vec![unanchored],
            reviewed_lines: 20,
            applied_rule_ids: vec![],
            usage: Some(ModelUsage {
                provider: "openai".into(),
                model: "gpt-4o".into(),
                calls: 2,
                cached_calls: 1,
                retries: 0,
                input_tokens: 12_345,
                output_tokens: 678,
                billed_input_tokens: 6_000,
                billed_output_tokens: 300,
                latency_ms: 1_500,
                token_budget: Some(100_000),
                estimated_cost_usd: Some(0.0123),
            }),
        }
    }

    fn ctx() -> SummaryContext {
        SummaryContext {
            round: 2,
            review_url: Some("https://review.example/reviews/42".into()),
            head_sha: "b".repeat(40),
            new_findings: 4,
            already_posted: 1,
        }
    }

    #[test]
    fn summary_starts_with_the_marker_and_states_the_verdict() {
        let md = summary_markdown(&output(), &ctx());
        assert!(md.starts_with("<!-- ai-review:summary -->\n"), "{md}");
        assert!(
            md.contains("## ai-review · round 2 · Request changes · 2/5"),
            "{md}"
        );
        assert!(md.contains("Adds configuration loading.\n\nLooks mostly fine."));
        assert!(md.contains(&format!("Reviewed head `{}`", "b".repeat(40))));
        assert!(md.contains("[Open the review](<https://review.example/reviews/42>)"));
        assert!(md.contains("Inline comments: 4 new this round, 1 already posted"));
        assert_eq!(md.matches(SUMMARY_MARKER).count(), 1);
    }

    #[test]
    fn summary_counts_findings_by_severity() {
        let md = summary_markdown(&output(), &ctx());
        assert!(md.contains("| 🔴 **Error** | 1 | 0 |"), "{md}");
        assert!(md.contains("| 🟡 **Warning** | 3 | 1 |"), "{md}");
        assert!(md.contains("| 🔵 **Info** | 1 | 0 |"), "{md}");
        assert!(md.contains("| **Total** | **5** | **1** |"), "{md}");

        let mut clean = output();
        clean.findings.clear();
        clean.unanchored.clear();
        let md = summary_markdown(&clean, &ctx());
        assert!(md.contains("**No findings.**") && !md.contains("| Severity"));
    }

    #[test]
    fn summary_lists_unanchored_findings() {
        let md = summary_markdown(&output(), &ctx());
        assert!(
            md.contains(
                "- 🟡 **Warning** · `src/lib.rs` line 120 · `bug`: The new API is not documented anywhere."
            ),
            "{md}"
        );
    }

    #[test]
    fn summary_lists_files_not_reviewed_by_reason() {
        let md = summary_markdown(&output(), &ctx());
        assert!(md.contains("### Files not reviewed (3)"), "{md}");
        assert!(
            md.contains("- **token budget exhausted** (1)\n  - `src/big.rs` (lines 40–90)"),
            "{md}"
        );
        assert!(md.contains("- **lock file** (1)\n  - `Cargo.lock`"), "{md}");
        assert!(md.contains("- **binary file** (1)\n  - `logo.png`"), "{md}");
        assert!(!md.contains("<details>"), "short lists stay open");

        let mut many = output();
        for i in 0..12 {
            let mut f = file(&format!("vendor/lib{i}.js"));
            f.review_status = Some(FileReviewStatus::Skipped);
            f.reason = Some("vendored".into());
            many.files.push(f);
        }
        let md = summary_markdown(&many, &ctx());
        assert!(
            md.contains("<details>\n<summary>Files not reviewed (15)</summary>"),
            "{md}"
        );
        assert!(md.contains("- **vendored** (12)"));
        assert!(md.contains("</details>"));
    }

    #[test]
    fn summary_says_how_the_ai_review_went() {
        let md = summary_markdown(&output(), &ctx());
        assert!(
            md.contains("AI review partial: 1 of 4 hunks not reviewed: token budget exhausted")
        );
        assert!(md.contains(
            "<sub>Model openai gpt-4o: 2 calls (1 cached), 12,345 input + 678 output tokens, est. $0.01"
        ), "{md}");

        let mut none = output();
        none.ai = Some(AiReport {
            status: AiStatus::Skipped,
            reason: Some("no model configured: set AI_REVIEW_LLM_PROVIDER".into()),
            provider: None,
            model: None,
            chunks: 0,
        });
        none.usage = None;
        let md = summary_markdown(
            &none,
            &SummaryContext {
                review_url: None,
                ..ctx()
            },
        );
        assert!(
            md.contains("AI review skipped: no model configured"),
            "{md}"
        );
        assert!(!md.contains("Model openai") && !md.contains("Open the review"));

        let mut failed = output();
        if let Some(ai) = failed.ai.as_mut() {
            ai.status = AiStatus::Failed;
            ai.reason = Some("the provider answered 401".into());
        }
        let md = summary_markdown(&failed, &ctx());
        assert!(md.contains("AI review failed: the provider answered 401"));
    }

    #[test]
    fn long_lists_are_cut_with_an_explicit_line_and_the_limit_holds() {
        let mut huge = output();
        huge.summary = "long summary line\n".repeat(5_000);
        huge.unanchored = (0..500)
            .map(|i| {
                let mut f = finding(&format!("src/f{i}.rs"), i + 1, Severity::Warning, "x");
                f.message = "m".repeat(2_000);
                f
            })
            .collect();
        huge.not_reviewed = (0..5_000)
            .map(|i| NotReviewed {
                path: format!("gen/{}{i}.rs", "p".repeat(200)),
                reason: "token budget exhausted".into(),
                lines: vec![],
            })
            .collect();
        let md = summary_markdown(&huge, &ctx());
        assert!(md.len() <= MAX_SUMMARY_BYTES, "{}", md.len());
        assert!(md.contains("summary shortened"), "text cut is said");
        let shown = md.matches("- 🟡 **Warning** · `src/f").count();
        assert!(shown > 0 && shown <= MAX_LISTED_UNANCHORED);
        assert!(md.contains(&format!("- … and {} more (see the dashboard)", 500 - shown)));
        // The generated files, then Cargo.lock and logo.png of `output()`.
        let listed = md.matches("  - `gen/").count();
        assert!(listed > 0 && listed <= MAX_LISTED_NOT_REVIEWED);
        assert!(md.contains(&format!(
            "- … and {} more (see the dashboard)",
            5_002 - listed
        )));
        assert!(md.ends_with("</sub>\n"), "the footer survives the cut");
        assert!(md.contains("</details>"));
    }

    #[test]
    fn hostile_text_cannot_break_out() {
        let mut evil = output();
        evil.summary = "<!-- ai-review:summary --> `<kept>` <details>".into();
        evil.unanchored[0].file = "we`ird<name>.rs".into();
        evil.unanchored[0].message = "line one\n# heading <!-- hide".into();
        evil.not_reviewed[0].path = "`tick`".into();
        let md = summary_markdown(&evil, &ctx());
        assert_eq!(md.matches("<!--").count(), 1, "{md}");
        assert!(md.contains("&lt;!-- ai-review:summary --> `<kept>` &lt;details>"));
        assert!(md.contains("``we`ird<name>.rs``"), "{md}");
        assert!(md.contains(": line one # heading &lt;!-- hide"), "{md}");
        assert!(md.contains("`` `tick` ``"), "{md}");

        // Huge hostile text of `<` still fits its budget after escaping.
        let escaped = safe_text(&"<".repeat(5_000), 600);
        assert!(escaped.len() <= 600 && escaped.starts_with("&lt;&lt;"));
        assert_eq!(escape_html("a \\`<b>` c"), "a \\`&lt;b>` c");
        assert_eq!(escape_html("unclosed ` <x>"), "unclosed ` &lt;x>");
    }

    #[test]
    fn the_summary_text_cut_closes_an_open_fence() {
        let text = format!("intro\n```rust\n{}```\n", "let x = 1;\n".repeat(200));
        let cut = summary_text(&text, 500);
        assert!(cut.len() <= 500);
        assert!(
            cut.contains("```rust") && cut.matches("```").count() == 2,
            "{cut}"
        );
        assert!(cut.ends_with("more bytes; see the dashboard)*"));
    }

    #[test]
    fn inline_comments_sorted_deduped_and_filtered() {
        let out = output();
        let posted: HashSet<String> = ["fp-w2".to_owned()].into();
        let (comments, skipped) = inline_comments(&out, &posted, Severity::Warning);
        let keys: Vec<(&str, u32)> = comments.iter().map(|c| (c.path.as_str(), c.line)).collect();
        assert_eq!(
            keys,
            [("src/config.rs", 7), ("src/lib.rs", 10), ("src/lib.rs", 12)]
        );
        assert!(
            comments.iter().all(|c| c.fingerprint != "fp-w2"),
            "posted before"
        );
        assert_eq!(
            skipped,
            vec![
                SkippedFinding {
                    fingerprint: "fp-w2".into(),
                    reason: REASON_ALREADY_POSTED.into(),
                },
                SkippedFinding {
                    fingerprint: "fp-info".into(),
                    reason: "info is below the minimum severity for inline comments (warning)"
                        .into(),
                },
            ]
        );
        assert!(
            comments.iter().all(|c| c.fingerprint != "fp-un"),
            "unanchored findings get no inline comment"
        );

        let (all, skipped) = inline_comments(&out, &HashSet::new(), Severity::Info);
        assert_eq!(all.len(), 5);
        assert!(skipped.is_empty());
    }

    #[test]
    fn inline_comment_fields() {
        let mut out = output();
        out.findings[1].suggestion = Some("let x = 2;".into());
        out.findings[1].end_line = 11;
        let (comments, _) = inline_comments(&out, &HashSet::new(), Severity::Info);
        let by_fp = |fp: &str| {
            comments
                .iter()
                .find(|c| c.fingerprint == fp)
                .cloned()
                .expect(fp)
        };
        let secret = by_fp("fp-secret");
        assert_eq!(
            secret.body,
            "🔴 **Error** · `secret`\n\nAn AWS access key id is committed; revoke it.\n\n*Deterministic check `secret/aws-access-key-id`*"
        );
        assert_eq!(secret.old_path.as_deref(), Some("src/config.rs"));
        assert_eq!(secret.end_old_line, None);
        assert_eq!(secret.suggestion, None);

        let w1 = by_fp("fp-w1");
        assert_eq!((w1.line, w1.end_line), (10, 11));
        assert_eq!(w1.suggestion.as_deref(), Some("let x = 2;"));
        assert_eq!(
            w1.body,
            "🟡 **Warning** · `bug`\n\nproblem at src/lib.rs:10"
        );

        let renamed = by_fp("fp-info");
        assert_eq!(renamed.path, "src/new_name.rs");
        assert_eq!(renamed.old_path.as_deref(), Some("src/old_name.rs"));
    }

    #[test]
    fn inline_comments_are_capped_keeping_the_most_severe() {
        let mut out = output();
        out.findings = (0..60)
            .map(|i| finding("a.rs", i + 1, Severity::Warning, &format!("w{i}")))
            .collect();
        out.findings
            .push(finding("z.rs", 1, Severity::Error, "the-error"));
        let (comments, skipped) = inline_comments(&out, &HashSet::new(), Severity::Info);
        assert_eq!(comments.len(), MAX_INLINE_COMMENTS);
        assert_eq!(skipped.len(), 11);
        assert!(skipped.iter().all(|s| s.reason == REASON_COMMENT_LIMIT));
        assert_eq!(
            comments.last().map(|c| c.fingerprint.as_str()),
            Some("the-error")
        );
        let lines: Vec<u32> = comments.iter().map(|c| c.line).collect();
        assert_eq!(lines[..49], (1..=49).collect::<Vec<_>>()[..]);
        assert_eq!(skipped[0].fingerprint, "w49");
    }

    #[test]
    fn inline_comments_skip_duplicates_and_unusable_ranges() {
        let mut out = output();
        out.findings = vec![
            finding("a.rs", 3, Severity::Warning, "same"),
            finding("a.rs", 5, Severity::Warning, "same"),
            finding("a.rs", 0, Severity::Warning, "zero"),
        ];
        let (comments, skipped) = inline_comments(&out, &HashSet::new(), Severity::Info);
        assert_eq!(comments.len(), 1);
        assert_eq!(comments[0].line, 3);
        assert_eq!(
            skipped,
            vec![
                SkippedFinding {
                    fingerprint: "zero".into(),
                    reason: "no usable line range (0–0); see the summary".into(),
                },
                SkippedFinding {
                    fingerprint: "same".into(),
                    reason: REASON_DUPLICATE.into(),
                },
            ]
        );
    }

    #[test]
    fn commit_state_maps_the_verdict() {
        let (state, desc) = commit_state(&output());
        assert_eq!(state, CommitState::Failure);
        assert_eq!(
            desc,
            "1 error, 4 warnings, 1 info · rating 2/5 · AI review partial"
        );

        let mut ok = output();
        ok.findings.retain(|f| f.severity != Severity::Error);
        ok.assessment = Some(Assessment::Comment);
        ok.rating = Some(4);
        ok.ai = None;
        assert_eq!(
            commit_state(&ok),
            (
                CommitState::Success,
                "4 warnings, 1 info · rating 4/5".to_owned()
            )
        );

        let mut clean = output();
        clean.findings.clear();
        clean.unanchored.clear();
        clean.assessment = Some(Assessment::Approve);
        clean.rating = Some(5);
        if let Some(ai) = clean.ai.as_mut() {
            ai.status = AiStatus::Skipped;
        }
        assert_eq!(
            commit_state(&clean),
            (
                CommitState::Success,
                "No findings · rating 5/5 · checks only (no model)".to_owned()
            )
        );

        let mut blocked = clean.clone();
        blocked.assessment = Some(Assessment::RequestChanges);
        assert_eq!(commit_state(&blocked).0, CommitState::Failure);
    }

    #[test]
    fn commit_description_fits_140_characters() {
        let mut many = output();
        many.rating = Some(u8::MAX);
        if let Some(ai) = many.ai.as_mut() {
            ai.status = AiStatus::Failed;
        }
        for sev in [Severity::Error, Severity::Warning, Severity::Info] {
            many.findings
                .extend((0..1_000).map(|i| finding("a.rs", i + 1, sev, "f")));
        }
        let (state, desc) = commit_state(&many);
        assert_eq!(state, CommitState::Failure);
        assert_eq!(
            desc,
            "1001 errors, 1004 warnings, 1001 info · rating 255/5 · AI review failed"
        );
        assert!(desc.chars().count() <= MAX_STATUS_DESCRIPTION_CHARS);

        let long = "é".repeat(300);
        let cut = clip_chars(&long, MAX_STATUS_DESCRIPTION_CHARS);
        assert_eq!(cut.chars().count(), MAX_STATUS_DESCRIPTION_CHARS);
        assert!(cut.ends_with("é…"));
        assert_eq!(clip_chars("short", 140), "short");
    }

    #[test]
    fn helpers() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(12_345_678), "12,345,678");
        assert_eq!(code_span("a b"), "`a b`");
        assert_eq!(code_span(" a "), "`  a  `");
        assert_eq!(code_span("x\ny"), "`x y`");
        assert_eq!(clip("héllo", 5), "h…");
        assert_eq!(clip("héllo", 3), "…");
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(link_target("https://x/a b<c>"), "<https://x/a%20b%3Cc%3E>");
    }
}
