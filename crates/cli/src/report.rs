//! A review's result document ([`ExecutorOutput`]) rendered for people
//! (text), for programs (the JSON document itself), for a merge-request
//! comment (Markdown) and for code-scanning tools (SARIF 2.1.0).

use ai_review_executor::checks::{Finding, FindingSource, Severity};
use ai_review_executor::gateway::ModelUsage;
use ai_review_executor::{
    AiReport, AiStatus, Assessment, ExecutorOutput, FileReviewStatus, FileStat, FileStatus,
    NotReviewed,
};
use anyhow::Context;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// `$schema` of the SARIF documents written.
pub const SARIF_SCHEMA: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";

/// Parses the result a runner stored for a completed review.
pub fn parse(result: &serde_json::Value) -> anyhow::Result<ExecutorOutput> {
    serde_json::from_value(result.clone()).context(
        "the review's result is not a result document this ai-review understands \
         (executor image from another version? rebuild it: scripts/build-images.sh)",
    )
}

/// The most severe finding, anchored or not.
pub fn worst_severity(out: &ExecutorOutput) -> Option<Severity> {
    out.findings
        .iter()
        .chain(&out.unanchored)
        .map(|f| f.severity)
        .max()
}

fn severity_word(s: Severity) -> &'static str {
    match s {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Error => "error",
    }
}

fn status_code(s: FileStatus) -> char {
    match s {
        FileStatus::Added => 'A',
        FileStatus::Modified => 'M',
        FileStatus::Deleted => 'D',
        FileStatus::Renamed => 'R',
        FileStatus::Copied => 'C',
        FileStatus::Typechange => 'T',
    }
}

fn review_status_word(s: FileReviewStatus) -> &'static str {
    match s {
        FileReviewStatus::Reviewed => "reviewed",
        FileReviewStatus::Partial => "partly reviewed",
        FileReviewStatus::Skipped => "skipped",
        FileReviewStatus::NotReviewed => "not reviewed",
    }
}

fn assessment_words(a: Assessment) -> &'static str {
    match a {
        Assessment::Approve => "approve",
        Assessment::Comment => "comment",
        Assessment::RequestChanges => "request changes",
    }
}

fn lines_of(f: &Finding) -> String {
    if f.end_line > f.line {
        format!("{}-{}", f.line, f.end_line)
    } else {
        f.line.to_string()
    }
}

fn file_stats(f: &FileStat) -> String {
    if f.binary {
        "binary".to_owned()
    } else {
        format!("+{} -{}", f.additions, f.deletions)
    }
}

fn file_name(f: &FileStat) -> String {
    match &f.old_path {
        Some(old) => format!("{old} -> {}", f.path),
        None => f.path.clone(),
    }
}

fn file_review(f: &FileStat) -> Option<String> {
    let status = review_status_word(f.review_status?);
    Some(match &f.reason {
        Some(r) => format!("{status}: {r}"),
        None => status.to_owned(),
    })
}

fn not_reviewed_lines(n: &NotReviewed) -> String {
    n.lines
        .iter()
        .map(|r| {
            if r.end > r.start {
                format!("{}-{}", r.start, r.end)
            } else {
                r.start.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn by_file(findings: &[Finding]) -> BTreeMap<&str, Vec<&Finding>> {
    let mut map: BTreeMap<&str, Vec<&Finding>> = BTreeMap::new();
    for f in findings {
        map.entry(f.file.as_str()).or_default().push(f);
    }
    for list in map.values_mut() {
        list.sort_by_key(|f| (f.line, std::cmp::Reverse(f.severity)));
    }
    map
}

/// One line about the model review. `enable_hint` says how to turn it on
/// where it was skipped (it differs between a local and a remote review).
pub fn ai_line(ai: Option<&AiReport>, enable_hint: &str) -> String {
    let Some(ai) = ai else {
        return "AI review: not reported by the executor (is the executor image older than this \
                ai-review? rebuild it: scripts/build-images.sh)"
            .to_owned();
    };
    let reason = ai.reason.as_deref().unwrap_or("no reason given");
    match ai.status {
        AiStatus::Skipped => {
            format!(
                "AI review skipped: no model configured; deterministic checks only. {enable_hint}"
            )
        }
        AiStatus::Completed => {
            let mut s = "AI review: completed".to_owned();
            if let (Some(p), Some(m)) = (&ai.provider, &ai.model) {
                let _ = write!(s, " with {p} {m}");
            }
            if ai.chunks > 0 {
                let _ = write!(
                    s,
                    " ({} part{})",
                    ai.chunks,
                    if ai.chunks == 1 { "" } else { "s" }
                );
            }
            s
        }
        AiStatus::Partial => format!("AI review: partial: {reason}"),
        AiStatus::Failed => format!("AI review: failed: {reason}"),
    }
}

/// One line about model usage (calls, cache, tokens, cost, latency).
pub fn usage_line(usage: Option<&ModelUsage>) -> String {
    let Some(u) = usage else {
        return "Usage: no model calls".to_owned();
    };
    let cost = match u.estimated_cost_usd {
        Some(c) => format!("est. ${c:.4}"),
        None => "cost unknown (no prices configured)".to_owned(),
    };
    format!(
        "Usage: {} model call{} ({} cached, {} retr{}), {} tokens in / {} out ({} / {} billed), {}, {:.1} s waiting for the model",
        u.calls,
        if u.calls == 1 { "" } else { "s" },
        u.cached_calls,
        u.retries,
        if u.retries == 1 { "y" } else { "ies" },
        u.input_tokens,
        u.output_tokens,
        u.billed_input_tokens,
        u.billed_output_tokens,
        cost,
        u.latency_ms as f64 / 1000.0
    )
}

/// The report for a terminal.
pub fn text(out: &ExecutorOutput, enable_hint: &str) -> String {
    let mut s = String::new();
    let t = &out.totals;
    let _ = writeln!(
        s,
        "{} files changed, +{} -{}",
        t.files, t.additions, t.deletions
    );
    for f in &out.files {
        let _ = write!(
            s,
            "  {} {}  {}",
            status_code(f.status),
            file_name(f),
            file_stats(f)
        );
        if let Some(r) = file_review(f) {
            let _ = write!(s, "  [{r}]");
        }
        s.push('\n');
    }
    if out.findings.is_empty() {
        s.push_str("Findings: none.\n");
    } else {
        let _ = writeln!(s, "Findings ({}):", out.findings.len());
        for (file, items) in by_file(&out.findings) {
            let _ = writeln!(s, "  {file}");
            for f in items {
                let by = match f.source {
                    FindingSource::Check => "",
                    FindingSource::Model => " (AI)",
                };
                let _ = writeln!(
                    s,
                    "    {:>7}  {:<7} {:<15} {}{by}",
                    lines_of(f),
                    severity_word(f.severity),
                    f.category,
                    f.message
                );
                if let Some(sug) = &f.suggestion {
                    s.push_str("             suggestion:\n");
                    for l in sug.lines() {
                        let _ = writeln!(s, "             | {l}");
                    }
                }
            }
        }
    }
    if !out.unanchored.is_empty() {
        let _ = writeln!(s, "Not on a changed line ({}):", out.unanchored.len());
        for f in &out.unanchored {
            let _ = writeln!(
                s,
                "  {}:{}  {:<7} {}",
                f.file,
                f.line,
                severity_word(f.severity),
                f.message
            );
        }
    }
    if !out.summary.trim().is_empty() {
        s.push_str("Summary:\n");
        for l in out.summary.trim().lines() {
            let _ = writeln!(s, "  {l}");
        }
    }
    match (out.assessment, out.rating) {
        (Some(a), Some(r)) => {
            let _ = writeln!(s, "Assessment: {}, rating {r}/5", assessment_words(a));
        }
        (Some(a), None) => {
            let _ = writeln!(s, "Assessment: {}", assessment_words(a));
        }
        (None, Some(r)) => {
            let _ = writeln!(s, "Rating: {r}/5");
        }
        (None, None) => {}
    }
    if !out.not_reviewed.is_empty() {
        let _ = writeln!(s, "Not reviewed ({}):", out.not_reviewed.len());
        for n in &out.not_reviewed {
            let lines = not_reviewed_lines(n);
            if lines.is_empty() {
                let _ = writeln!(s, "  {}: {}", n.path, n.reason);
            } else {
                let _ = writeln!(s, "  {} lines {lines}: {}", n.path, n.reason);
            }
        }
    }
    let _ = writeln!(s, "{}", ai_line(out.ai.as_ref(), enable_hint));
    let _ = writeln!(s, "{}", usage_line(out.usage.as_ref()));
    s
}

/// A Markdown table cell: one line, pipes escaped.
fn cell(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\r', '\n'], " ")
}

/// A code fence longer than any backtick run inside `code`.
fn fenced(code: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in code.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat((longest + 1).max(3));
    format!("{fence}\n{}\n{fence}\n", code.trim_end_matches('\n'))
}

/// The report as a merge-request comment.
pub fn markdown(out: &ExecutorOutput, enable_hint: &str) -> String {
    let mut s = String::from("## ai-review\n\n");
    let t = &out.totals;
    let mut head = Vec::new();
    if let Some(a) = out.assessment {
        let mut w = assessment_words(a).to_owned();
        if let Some(first) = w.get_mut(..1) {
            first.make_ascii_uppercase();
        }
        head.push(format!("**{w}**"));
    }
    if let Some(r) = out.rating {
        head.push(format!("rating {r}/5"));
    }
    head.push(format!(
        "{} file{} changed (+{} −{})",
        t.files,
        if t.files == 1 { "" } else { "s" },
        t.additions,
        t.deletions
    ));
    head.push(format!(
        "{} finding{}",
        out.findings.len(),
        if out.findings.len() == 1 { "" } else { "s" }
    ));
    let _ = writeln!(s, "{}\n", head.join(" · "));
    if !out.summary.trim().is_empty() {
        let _ = writeln!(s, "{}\n", out.summary.trim());
    }
    s.push_str("### Findings\n\n");
    if out.findings.is_empty() {
        s.push_str("None.\n\n");
    }
    for (file, items) in by_file(&out.findings) {
        let _ = writeln!(s, "#### `{}`\n", file.replace('`', "'"));
        s.push_str("| Line | Severity | Category | Message |\n| ---: | --- | --- | --- |\n");
        for f in &items {
            let sev = match f.severity {
                Severity::Error => "**error**".to_owned(),
                other => severity_word(other).to_owned(),
            };
            let by = match f.source {
                FindingSource::Check => "",
                FindingSource::Model => " *(AI)*",
            };
            let _ = writeln!(
                s,
                "| {} | {sev} | {} | {}{by} |",
                lines_of(f),
                cell(&f.category),
                cell(&f.message)
            );
        }
        s.push('\n');
        for f in items {
            if let Some(sug) = &f.suggestion {
                let _ = writeln!(s, "Suggestion for line {}:\n", lines_of(f));
                s.push_str(&fenced(sug));
                s.push('\n');
            }
        }
    }
    if !out.unanchored.is_empty() {
        s.push_str("### Not on a changed line\n\n");
        for f in &out.unanchored {
            let _ = writeln!(
                s,
                "- `{}:{}` {}: {}",
                f.file.replace('`', "'"),
                f.line,
                severity_word(f.severity),
                cell(&f.message)
            );
        }
        s.push('\n');
    }
    let skipped: Vec<&FileStat> = out
        .files
        .iter()
        .filter(|f| f.review_status == Some(FileReviewStatus::Skipped))
        .collect();
    if !out.not_reviewed.is_empty() || !skipped.is_empty() {
        s.push_str("### Not reviewed\n\n");
        for n in &out.not_reviewed {
            let lines = not_reviewed_lines(n);
            let place = if lines.is_empty() {
                format!("`{}`", n.path.replace('`', "'"))
            } else {
                format!("`{}` lines {lines}", n.path.replace('`', "'"))
            };
            let _ = writeln!(s, "- {place}: {}", cell(&n.reason));
        }
        for f in skipped {
            let _ = writeln!(
                s,
                "- `{}` skipped: {}",
                f.path.replace('`', "'"),
                cell(f.reason.as_deref().unwrap_or("excluded"))
            );
        }
        s.push('\n');
    }
    let _ = writeln!(s, "---\n\n{}  ", ai_line(out.ai.as_ref(), enable_hint));
    let _ = writeln!(s, "{}", usage_line(out.usage.as_ref()));
    s
}

fn sarif_level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

/// The report as a SARIF 2.1.0 log: one run, one rule per `ruleId`, one
/// result per anchored finding. Findings not anchored on a line are left
/// out (code-scanning tools need a location); they are in the summary.
pub fn sarif(out: &ExecutorOutput) -> serde_json::Value {
    let mut rules: BTreeMap<&str, &Finding> = BTreeMap::new();
    for f in &out.findings {
        rules.entry(f.rule_id.as_str()).or_insert(f);
    }
    let index: BTreeMap<&str, usize> = rules.keys().enumerate().map(|(i, k)| (*k, i)).collect();
    let rules_json: Vec<serde_json::Value> = rules
        .iter()
        .map(|(id, f)| {
            serde_json::json!({
                "id": id,
                "shortDescription": { "text": format!("{} ({})", f.category, id) },
                "properties": { "category": f.category },
            })
        })
        .collect();
    let results: Vec<serde_json::Value> = out
        .findings
        .iter()
        .map(|f| {
            let mut props = serde_json::json!({
                "category": f.category,
                "confidence": f.confidence,
                "source": match f.source {
                    FindingSource::Check => "check",
                    FindingSource::Model => "model",
                },
            });
            if let Some(sug) = &f.suggestion {
                props["suggestion"] = serde_json::Value::String(sug.clone());
            }
            serde_json::json!({
                "ruleId": f.rule_id,
                "ruleIndex": index.get(f.rule_id.as_str()).copied().unwrap_or(0),
                "level": sarif_level(f.severity),
                "message": { "text": f.message },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": f.file, "uriBaseId": "%SRCROOT%" },
                        "region": { "startLine": f.line.max(1), "endLine": f.end_line.max(f.line).max(1) },
                    }
                }],
                "partialFingerprints": { "aiReviewFingerprint/v1": f.fingerprint },
                "properties": props,
            })
        })
        .collect();
    serde_json::json!({
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "ai-review",
                    "version": env!("CARGO_PKG_VERSION"),
                    "rules": rules_json,
                }
            },
            "results": results,
            "properties": {
                "baseSha": out.base_sha,
                "headSha": out.head_sha,
            },
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ai_review_executor::{LineRange, Totals};

    fn finding(file: &str, line: u32, severity: Severity, rule: &str) -> Finding {
        Finding {
            file: file.into(),
            line,
            end_line: line,
            severity,
            category: rule.split('/').next().unwrap_or("").into(),
            rule_id: rule.into(),
            confidence: 0.9,
            message: format!("{rule} at {line}"),
            fingerprint: format!("fp-{file}-{line}"),
            source: FindingSource::Check,
            suggestion: None,
            old_end_line: None,
            context: Vec::new(),
        }
    }

    fn stat(
        path: &str,
        status: FileStatus,
        rs: FileReviewStatus,
        reason: Option<&str>,
    ) -> FileStat {
        FileStat {
            path: path.into(),
            old_path: None,
            status,
            additions: 2,
            deletions: 1,
            binary: false,
            review_status: Some(rs),
            reason: reason.map(Into::into),
            reviewed_lines: 3,
        }
    }

    /// A fixed result with every part the renderers show.
    fn sample() -> ExecutorOutput {
        let mut model = finding("src/lib.rs", 10, Severity::Warning, "bug/off-by-one");
        model.end_line = 12;
        model.source = FindingSource::Model;
        model.message = "the loop | skips the last item".into();
        model.suggestion = Some("for i in 0..=n {\n    use(i);\n}".into());
        let mut unanchored = finding("src/lib.rs", 99, Severity::Info, "style/naming");
        unanchored.source = FindingSource::Model;
        ExecutorOutput {
            version: 1,
            kind: "review".into(),
            base_sha: "a".repeat(40),
            head_sha: "b".repeat(40),
            files: vec![
                stat(
                    "src/lib.rs",
                    FileStatus::Modified,
                    FileReviewStatus::Reviewed,
                    None,
                ),
                stat(
                    "Cargo.lock",
                    FileStatus::Modified,
                    FileReviewStatus::Skipped,
                    Some("lock file"),
                ),
                stat(
                    "src/big.rs",
                    FileStatus::Added,
                    FileReviewStatus::Partial,
                    Some("token budget exhausted"),
                ),
            ],
            totals: Totals {
                files: 3,
                additions: 6,
                deletions: 3,
            },
            findings: vec![
                model,
                finding("config.py", 2, Severity::Error, "secret/aws-access-key-id"),
                finding("src/lib.rs", 3, Severity::Error, "merge-conflict/marker"),
            ],
            summary: "Adds a loop.\nOne secret.".into(),
            assessment: Some(Assessment::RequestChanges),
            rating: Some(2),
            ai: Some(AiReport {
                status: AiStatus::Partial,
                reason: Some("token budget exhausted".into()),
                provider: Some("openai".into()),
                model: Some("gpt-test".into()),
                chunks: 2,
            }),
            not_reviewed: vec![NotReviewed {
                path: "src/big.rs".into(),
                reason: "token budget exhausted".into(),
                lines: vec![LineRange { start: 40, end: 80 }],
            }],
            unanchored: vec![unanchored],
            reviewed_lines: 9,
            applied_rule_ids: vec![],
            usage: Some(ModelUsage {
                provider: "openai".into(),
                model: "gpt-test".into(),
                calls: 3,
                cached_calls: 1,
                retries: 1,
                input_tokens: 1200,
                output_tokens: 300,
                billed_input_tokens: 800,
                billed_output_tokens: 200,
                latency_ms: 2500,
                token_budget: Some(10_000),
                estimated_cost_usd: Some(0.0123),
            }),
        }
    }

    const HINT: &str = "Set AI_REVIEW_LLM_PROVIDER and AI_REVIEW_LLM_MODEL to enable it.";

    #[test]
    fn text_report_golden() {
        let expected = "\
3 files changed, +6 -3
  M src/lib.rs  +2 -1  [reviewed]
  M Cargo.lock  +2 -1  [skipped: lock file]
  A src/big.rs  +2 -1  [partly reviewed: token budget exhausted]
Findings (3):
  config.py
          2  error   secret          secret/aws-access-key-id at 2
  src/lib.rs
          3  error   merge-conflict  merge-conflict/marker at 3
      10-12  warning bug             the loop | skips the last item (AI)
             suggestion:
             | for i in 0..=n {
             |     use(i);
             | }
Not on a changed line (1):
  src/lib.rs:99  info    style/naming at 99
Summary:
  Adds a loop.
  One secret.
Assessment: request changes, rating 2/5
Not reviewed (1):
  src/big.rs lines 40-80: token budget exhausted
AI review: partial: token budget exhausted
Usage: 3 model calls (1 cached, 1 retry), 1200 tokens in / 300 out (800 / 200 billed), est. $0.0123, 2.5 s waiting for the model
";
        assert_eq!(text(&sample(), HINT), expected);
    }

    #[test]
    fn text_report_says_plainly_when_the_ai_review_was_skipped() {
        let mut out = sample();
        out.ai = Some(AiReport {
            status: AiStatus::Skipped,
            reason: Some("no model configured".into()),
            provider: None,
            model: None,
            chunks: 0,
        });
        out.usage = None;
        out.findings.clear();
        let t = text(&out, HINT);
        assert!(t.contains("Findings: none.\n"), "{t}");
        assert!(
            t.contains(&format!(
                "AI review skipped: no model configured; deterministic checks only. {HINT}\n"
            )),
            "{t}"
        );
        assert!(t.ends_with("Usage: no model calls\n"), "{t}");
        out.ai = None;
        assert!(text(&out, HINT).contains("AI review: not reported by the executor"));
    }

    #[test]
    fn ai_and_usage_lines_cover_every_status() {
        let mut ai = AiReport {
            status: AiStatus::Completed,
            reason: None,
            provider: Some("anthropic".into()),
            model: Some("claude-test".into()),
            chunks: 1,
        };
        assert_eq!(
            ai_line(Some(&ai), HINT),
            "AI review: completed with anthropic claude-test (1 part)"
        );
        ai.status = AiStatus::Failed;
        ai.reason = Some("the provider answered 401".into());
        assert_eq!(
            ai_line(Some(&ai), HINT),
            "AI review: failed: the provider answered 401"
        );
        let usage = ModelUsage {
            calls: 1,
            ..ModelUsage::default()
        };
        assert_eq!(
            usage_line(Some(&usage)),
            "Usage: 1 model call (0 cached, 0 retries), 0 tokens in / 0 out (0 / 0 billed), cost unknown (no prices configured), 0.0 s waiting for the model"
        );
    }

    #[test]
    fn markdown_report_has_a_table_per_file_and_the_rest() {
        let md = markdown(&sample(), HINT);
        assert!(md.starts_with("## ai-review\n\n**Request changes** · rating 2/5 · 3 files changed (+6 −3) · 3 findings\n\nAdds a loop.\nOne secret.\n"), "{md}");
        let config = md.find("#### `config.py`").expect("config.py section");
        let lib = md.find("#### `src/lib.rs`").expect("src/lib.rs section");
        assert!(config < lib, "files in order");
        assert!(md.contains(
            "| Line | Severity | Category | Message |\n| ---: | --- | --- | --- |\n| 2 | **error** | secret | secret/aws-access-key-id at 2 |\n"
        ), "{md}");
        assert!(
            md.contains("| 10-12 | warning | bug | the loop \\| skips the last item *(AI)* |"),
            "pipes escaped: {md}"
        );
        assert!(
            md.contains(
                "Suggestion for line 10-12:\n\n```\nfor i in 0..=n {\n    use(i);\n}\n```\n"
            ),
            "{md}"
        );
        assert!(
            md.contains(
                "### Not on a changed line\n\n- `src/lib.rs:99` info: style/naming at 99\n"
            ),
            "{md}"
        );
        assert!(md.contains("### Not reviewed\n\n- `src/big.rs` lines 40-80: token budget exhausted\n- `Cargo.lock` skipped: lock file\n"), "{md}");
        assert!(
            md.contains("AI review: partial: token budget exhausted  \nUsage: 3 model calls"),
            "{md}"
        );
    }

    #[test]
    fn markdown_fences_outgrow_backticks_in_suggestions() {
        assert_eq!(fenced("a ``` b"), "````\na ``` b\n````\n");
        assert_eq!(fenced("plain\n"), "```\nplain\n```\n");
        assert_eq!(cell("a|b\nc"), "a\\|b c");
    }

    #[test]
    fn sarif_has_the_fields_the_2_1_0_schema_requires() {
        let out = sample();
        let v = sarif(&out);
        assert_eq!(v["version"], "2.1.0");
        assert_eq!(v["$schema"], SARIF_SCHEMA);
        let runs = v["runs"].as_array().expect("runs");
        assert_eq!(runs.len(), 1);
        let driver = &runs[0]["tool"]["driver"];
        assert_eq!(driver["name"], "ai-review");
        let rules = driver["rules"].as_array().expect("rules");
        let ids: Vec<&str> = rules
            .iter()
            .map(|r| r["id"].as_str().expect("id"))
            .collect();
        assert_eq!(
            ids,
            [
                "bug/off-by-one",
                "merge-conflict/marker",
                "secret/aws-access-key-id"
            ]
        );
        let results = runs[0]["results"].as_array().expect("results");
        assert_eq!(
            results.len(),
            out.findings.len(),
            "unanchored ones left out"
        );
        for (r, f) in results.iter().zip(&out.findings) {
            assert!(r["message"]["text"].as_str().is_some_and(|t| !t.is_empty()));
            let idx = r["ruleIndex"].as_u64().expect("ruleIndex") as usize;
            assert_eq!(
                rules[idx]["id"], r["ruleId"],
                "ruleIndex points at its rule"
            );
            let loc = &r["locations"][0]["physicalLocation"];
            assert_eq!(loc["artifactLocation"]["uri"], f.file.as_str());
            assert_eq!(loc["region"]["startLine"], f.line);
            assert_eq!(loc["region"]["endLine"], f.end_line);
            assert_eq!(
                r["partialFingerprints"]["aiReviewFingerprint/v1"],
                f.fingerprint.as_str()
            );
            assert!(["error", "warning", "note"].contains(&r["level"].as_str().expect("level")));
        }
        assert_eq!(results[0]["level"], "warning");
        assert_eq!(results[1]["level"], "error");
        assert_eq!(results[0]["properties"]["source"], "model");
        assert!(results[0]["properties"]["suggestion"].is_string());
        let mut info = out.clone();
        info.findings[0].severity = Severity::Info;
        assert_eq!(sarif(&info)["runs"][0]["results"][0]["level"], "note");
    }

    #[test]
    fn sarif_of_a_clean_review_is_still_a_valid_log() {
        let mut out = sample();
        out.findings.clear();
        let v = sarif(&out);
        assert_eq!(v["runs"][0]["results"], serde_json::json!([]));
        assert_eq!(
            v["runs"][0]["tool"]["driver"]["rules"],
            serde_json::json!([])
        );
    }

    #[test]
    fn parse_reads_the_document_and_worst_severity_counts_unanchored_findings() {
        let out = sample();
        let v = serde_json::to_value(&out).expect("json");
        assert_eq!(parse(&v).expect("parse"), out);
        assert!(parse(&serde_json::json!({"version": 1})).is_err());
        assert_eq!(worst_severity(&out), Some(Severity::Error));
        let mut only_unanchored = out.clone();
        only_unanchored.findings.clear();
        assert_eq!(worst_severity(&only_unanchored), Some(Severity::Info));
        only_unanchored.unanchored.clear();
        assert_eq!(worst_severity(&only_unanchored), None);
    }
}
