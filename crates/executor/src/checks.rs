//! Deterministic checks that need no model: high-precision secret
//! detection and merge-conflict markers, run over the added lines of a
//! change. Each finding is anchored on a new-side line of the diff.
//!
//! The review runs them on every non-binary file with added lines,
//! including files excluded from the model review (lock, generated,
//! vendored, excluded by configuration): a secret in a vendored file leaks
//! just the same.

use crate::diff::FilePatch;
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// Severity of a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Should be fixed.
    Warning,
    /// Must be fixed.
    Error,
}

/// Who produced a finding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FindingSource {
    /// A deterministic check of this module.
    #[default]
    Check,
    /// The model review.
    Model,
}

/// A finding anchored on the new side of the diff.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// File (new path).
    pub file: String,
    /// First line (new side, 1-based).
    pub line: u32,
    /// Last line.
    pub end_line: u32,
    /// Severity.
    pub severity: Severity,
    /// `secret`, `merge-conflict`, ...
    pub category: String,
    /// The rule that fired, e.g. `secret/aws-access-key-id`.
    pub rule_id: String,
    /// Confidence from 0 to 1.
    pub confidence: f32,
    /// What is wrong and what to do (never the secret itself).
    pub message: String,
    /// Stable across pushes: rule, file and the normalised line content.
    pub fingerprint: String,
    /// Who produced it (`check` when absent).
    #[serde(default)]
    pub source: FindingSource,
    /// Replacement code for the lines `line..=end_line`, when the model
    /// proposed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<String>,
    /// Old-side number of `end_line` when that line is unchanged context
    /// (GitLab needs it to place a comment there); `None` for added lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_end_line: Option<u32>,
    /// A few new-side lines of the diff around the finding, secrets masked,
    /// so a reader sees the code without opening the forge.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<ContextLine>,
}

/// One new-side line of code shown around a finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContextLine {
    /// New-side line number.
    pub line: u32,
    /// The line's text, with every recognised secret masked.
    pub text: String,
    /// Added by the change (not unchanged context).
    pub changed: bool,
}

/// Lines of context shown before a finding's first line and after its last.
pub const CONTEXT_RADIUS: u32 = 3;
/// Most lines of context kept for one finding.
pub const CONTEXT_MAX_LINES: usize = 20;
/// Longest context line kept (characters); longer lines are cut with `…`.
const CONTEXT_MAX_CHARS: usize = 240;

/// Masks every secret the checks recognise in `text` (keeping a short
/// prefix, as in finding messages), so code shown around findings never
/// repeats a credential.
pub fn mask_secrets(text: &str) -> String {
    let mut out = text.to_owned();
    for rule in secret_rules() {
        let found: Vec<String> = rule
            .re
            .captures_iter(&out)
            .filter_map(|m| m.get(1).map(|m| m.as_str().to_owned()))
            .collect();
        for secret in found {
            out = out.replace(&secret, &redact(&secret));
        }
    }
    out
}

/// Attaches the diff's new-side lines around each finding (the hunk that
/// holds its line, [`CONTEXT_RADIUS`] lines either side, secrets masked).
pub fn attach_context(findings: &mut [Finding], patches: &[FilePatch]) {
    for f in findings {
        let Some(patch) = patches.iter().find(|p| p.path() == f.file) else {
            continue;
        };
        let from = f.line.saturating_sub(CONTEXT_RADIUS);
        let to = f.end_line.max(f.line).saturating_add(CONTEXT_RADIUS);
        f.context = patch
            .hunks
            .iter()
            .filter(|h| {
                let (start, end) = h.new_range();
                start <= to && end >= from
            })
            .flat_map(|h| h.numbered())
            .filter_map(|(n, l)| {
                let n = n.filter(|n| (from..=to).contains(n))?;
                let (text, changed) = match l {
                    crate::diff::DiffLine::Added(t) => (t, true),
                    crate::diff::DiffLine::Context(t) => (t, false),
                    crate::diff::DiffLine::Removed(_) => return None,
                };
                let mut text = mask_secrets(text);
                if text.chars().count() > CONTEXT_MAX_CHARS {
                    text = text.chars().take(CONTEXT_MAX_CHARS).collect::<String>() + "…";
                }
                Some(ContextLine {
                    line: n,
                    text,
                    changed,
                })
            })
            .take(CONTEXT_MAX_LINES)
            .collect();
    }
}

struct SecretRule {
    id: &'static str,
    what: &'static str,
    re: Regex,
}

fn secret_rules() -> &'static [SecretRule] {
    static RULES: OnceLock<Vec<SecretRule>> = OnceLock::new();
    RULES.get_or_init(|| {
        let r = |id, what, pat: &str| SecretRule {
            id,
            what,
            re: Regex::new(pat).unwrap_or_else(|e| panic!("rule {id}: {e}")),
        };
        vec![
            r("aws-access-key-id", "an AWS access key id", r"\b((?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[0-9A-Z]{16})\b"),
            r("github-token", "a GitHub token", r"\b((?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36})\b"),
            r("github-fine-grained-token", "a GitHub fine-grained token", r"\b(github_pat_[A-Za-z0-9_]{82})\b"),
            r("gitlab-token", "a GitLab personal access token", r"\b(glpat-[A-Za-z0-9_\-]{20})\b"),
            r("slack-token", "a Slack token", r"\b(xox[baprs]-[0-9]{10,13}-[0-9]{10,13}(?:-[A-Za-z0-9]{24,34})?)\b"),
            r("slack-webhook", "a Slack webhook URL", r"(https://hooks\.slack\.com/services/T[A-Z0-9]{8,12}/B[A-Z0-9]{8,12}/[A-Za-z0-9]{24})"),
            r("stripe-secret-key", "a Stripe secret key", r"\b((?:sk|rk)_live_[0-9a-zA-Z]{24,99})\b"),
            r("google-api-key", "a Google API key", r"\b(AIza[0-9A-Za-z_\-]{35})\b"),
            r("openai-api-key", "an OpenAI API key", r"\b(sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}T3BlbkFJ[A-Za-z0-9_\-]{20,})\b"),
            r("anthropic-api-key", "an Anthropic API key", r"\b(sk-ant-(?:api|admin)\d{2}-[A-Za-z0-9_\-]{80,})\b"),
            r("npm-token", "an npm token", r"\b(npm_[A-Za-z0-9]{36})\b"),
            r("sendgrid-api-key", "a SendGrid API key", r"\b(SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43})\b"),
            r("ai-review-api-key", "an ai-review API key", r"\b(air_[A-Za-z0-9]{40})\b"),
            r("private-key", "a private key", r"(-----BEGIN (?:RSA |EC |DSA |OPENSSH |PGP |ENCRYPTED )?PRIVATE KEY(?: BLOCK)?-----)"),
        ]
    })
}

/// Values that look like keys but are placeholders in docs and tests.
fn is_placeholder(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    [
        "example",
        "xxxxxxxx",
        "placeholder",
        "your_",
        "dummy",
        "redacted",
        "00000000",
    ]
    .iter()
    .any(|p| lower.contains(p))
        || {
            // One character repeated (AKIAAAAAAAAAAAAAAAAA) is never a real key.
            let body: Vec<char> = s.chars().skip(4).collect();
            body.windows(2).all(|w| w[0] == w[1])
        }
}

fn redact(s: &str) -> String {
    let keep: String = s.chars().take(6).collect();
    format!("{keep}…")
}

/// Runs every deterministic check over the added lines of `files`.
pub fn run_checks(files: &[FilePatch]) -> Vec<Finding> {
    let mut out = Vec::new();
    for f in files {
        let path = f.path();
        for h in &f.hunks {
            for (line, text) in h.added() {
                for rule in secret_rules() {
                    for m in rule.re.captures_iter(text) {
                        let Some(secret) = m.get(1).map(|m| m.as_str()) else {
                            continue;
                        };
                        if rule.id != "private-key" && is_placeholder(secret) {
                            continue;
                        }
                        out.push(Finding {
                            file: path.to_owned(),
                            line,
                            end_line: line,
                            severity: Severity::Error,
                            category: "secret".into(),
                            rule_id: format!("secret/{}", rule.id),
                            confidence: 0.95,
                            message: format!(
                                "This line adds what looks like {} ({}). Remove it, revoke it at its provider, and load it from a secret store or environment variable instead.",
                                rule.what,
                                redact(secret)
                            ),
                            fingerprint: fingerprint(&format!("secret/{}", rule.id), path, secret),
                            source: FindingSource::Check,
                            suggestion: None,
                            old_end_line: None,
                            context: Vec::new(),
                        });
                    }
                }
                let conflict = ["<<<<<<< ", ">>>>>>> "].iter().any(|m| text.starts_with(m))
                    || text == "<<<<<<<"
                    || text == ">>>>>>>";
                if conflict {
                    out.push(Finding {
                        file: path.to_owned(),
                        line,
                        end_line: line,
                        severity: Severity::Error,
                        category: "merge-conflict".into(),
                        rule_id: "merge-conflict/marker".into(),
                        confidence: 0.99,
                        message: "Unresolved merge conflict marker: resolve the conflict and remove the markers.".into(),
                        fingerprint: fingerprint("merge-conflict/marker", path, text.trim()),
                        source: FindingSource::Check,
                        suggestion: None,
                        old_end_line: None,
                        context: Vec::new(),
                    });
                }
            }
        }
    }
    out
}

/// A stable 64-bit FNV-1a fingerprint (hex) of rule, file and content:
/// the same finding on a later push gets the same value wherever its line
/// moved to.
pub fn fingerprint(rule: &str, file: &str, content: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [rule, "\0", file, "\0", content] {
        for b in part.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::parse_patch;

    fn patch(lines: &[&str]) -> Vec<FilePatch> {
        let body: String = lines.iter().map(|l| format!("+{l}\n")).collect();
        let text = format!(
            "diff --git a/f.py b/f.py\n--- a/f.py\n+++ b/f.py\n@@ -0,0 +1,{} @@\n{body}",
            lines.len()
        );
        parse_patch(&text).expect("patch")
    }

    #[test]
    fn context_shows_the_lines_around_a_finding_with_secrets_masked() {
        let key = "AKIAZ7Q2LDHWJ4KX5N3P";
        let lines: Vec<String> = (1..=12)
            .map(|i| {
                if i == 6 {
                    format!("aws = \"{key}\"")
                } else {
                    format!("line {i}")
                }
            })
            .collect();
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let files = patch(&refs);
        let mut f = run_checks(&files);
        attach_context(&mut f, &files);
        let ctx = &f[0].context;
        let numbers: Vec<u32> = ctx.iter().map(|c| c.line).collect();
        assert_eq!(numbers, (3..=9).collect::<Vec<_>>());
        assert!(ctx.iter().all(|c| c.changed));
        assert_eq!(ctx[0].text, "line 3");
        assert!(!ctx[3].text.contains(key), "{}", ctx[3].text);
        assert!(ctx[3].text.starts_with("aws = \"AKIAZ7"));
        let json = serde_json::to_string(&f[0]).expect("json");
        assert!(!json.contains(key), "{json}");
    }

    #[test]
    fn finds_real_looking_secrets_on_the_right_lines_and_never_prints_them() {
        let key = "AKIAZ7Q2LDHWJ4KX5N3P";
        let gh = format!("ghp_{}", "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5");
        let files = patch(&[
            "x = 1",
            &format!("aws = \"{key}\""),
            &format!("token={gh}"),
            "-----BEGIN OPENSSH PRIVATE KEY-----",
        ]);
        let f = run_checks(&files);
        let got: Vec<_> = f.iter().map(|x| (x.line, x.rule_id.as_str())).collect();
        assert_eq!(
            got,
            [
                (2, "secret/aws-access-key-id"),
                (3, "secret/github-token"),
                (4, "secret/private-key")
            ]
        );
        assert!(
            f.iter()
                .all(|x| !x.message.contains(key) && !x.message.contains(&gh))
        );
        assert!(
            f.iter()
                .all(|x| x.severity == Severity::Error && x.file == "f.py")
        );
    }

    #[test]
    fn ignores_placeholders_and_look_alikes() {
        let files = patch(&[
            "aws = \"AKIAIOSFODNN7EXAMPLE\"",
            "AKIAAAAAAAAAAAAAAAAA",
            "ghp_short",
            "sk_test_51H8xYzAbCdEfGhIjKlMnOpQr",
            "const id = 'AKIA-not-a-key';",
            "=======",
        ]);
        assert_eq!(run_checks(&files), Vec::<Finding>::new());
    }

    #[test]
    fn flags_conflict_markers_with_stable_fingerprints() {
        let a = run_checks(&patch(&[
            "<<<<<<< HEAD",
            "mine",
            "=======",
            "theirs",
            ">>>>>>> feature",
        ]));
        assert_eq!(a.iter().map(|f| f.line).collect::<Vec<_>>(), [1, 5]);
        let moved = run_checks(&patch(&["", "", "<<<<<<< HEAD", "x", ">>>>>>> feature"]));
        assert_eq!(
            a[0].fingerprint, moved[0].fingerprint,
            "same finding, moved line, same fingerprint"
        );
        assert_ne!(a[0].fingerprint, a[1].fingerprint);
    }
}
