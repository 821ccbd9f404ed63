//! Placing the model's findings on lines of the diff it was shown, stable
//! fingerprints, and merging duplicates.
//!
//! A finding is anchored only when its file was in the call and its start
//! line is a new-side line (added or context) of a hunk sent in that call;
//! its end line is clamped to that hunk. Anything else is "unanchored":
//! reported in the summary, never placed on a line it may not be about.

use crate::answer::ModelFinding;
use crate::checks::{Finding, FindingSource, Severity, fingerprint};
use crate::diff::Hunk;

/// A file as sent in one call: its path and the hunks shown.
#[derive(Debug, Clone, Copy)]
pub struct SentFile<'a> {
    /// Path as written in the prompt.
    pub path: &'a str,
    /// Hunks shown.
    pub hunks: &'a [&'a Hunk],
}

/// `bug`, `error-handling`, ...: lowercase, words joined by `-`.
pub fn normalise_category(c: &str) -> String {
    let mut out = String::new();
    for ch in c.trim().chars() {
        if ch.is_ascii_alphanumeric() || matches!(ch, ':' | '/' | '.') {
            out.push(ch.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-').to_owned();
    if out.is_empty() {
        "general".into()
    } else {
        out
    }
}

/// Whitespace-insensitive content of lines, for fingerprints.
fn normalise_lines<'a>(lines: impl Iterator<Item = &'a str>) -> String {
    lines
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

fn to_finding(f: &ModelFinding, line: u32, end_line: u32, content: &str) -> Finding {
    let category = normalise_category(&f.category);
    let rule_id = format!("model/{category}");
    Finding {
        file: f.file.clone(),
        line,
        end_line,
        severity: f.severity,
        fingerprint: fingerprint(&rule_id, &f.file, content),
        category,
        rule_id,
        confidence: f.confidence,
        message: f.message.trim().to_owned(),
        source: FindingSource::Model,
        suggestion: f.suggestion.clone().filter(|s| !s.trim().is_empty()),
        old_end_line: None,
        context: Vec::new(),
    }
}

/// Where a model finding ended up.
#[derive(Debug, Clone, PartialEq)]
pub enum Anchored {
    /// On a line the model was shown.
    Placed(Finding),
    /// Not on a line of the diff: the finding as the model gave it,
    /// fingerprinted on its message.
    Unanchored(Finding),
}

impl Anchored {
    /// The placed finding, if any.
    pub fn placed(self) -> Option<Finding> {
        match self {
            Self::Placed(f) => Some(f),
            Self::Unanchored(_) => None,
        }
    }
}

/// Anchors `f` on the hunks of `sent`.
pub fn anchor(f: &ModelFinding, sent: &[SentFile<'_>]) -> Anchored {
    let path = f.file.trim().trim_start_matches("./");
    let placed = sent.iter().filter(|s| s.path == path).find_map(|s| {
        s.hunks.iter().find_map(|h| {
            h.new_line(f.start_line)?;
            let (_, last) = h.new_range();
            let end = f.end_line.clamp(f.start_line, last);
            let content = normalise_lines((f.start_line..=end).filter_map(|n| h.new_line(n)));
            Some((end, content, h.context_old_line(end)))
        })
    });
    match placed {
        Some((end, content, old_end)) => {
            let mut out = to_finding(f, f.start_line, end, &content);
            out.old_end_line = old_end;
            out.file = path.to_owned();
            out.fingerprint = fingerprint(&out.rule_id, path, &content);
            Anchored::Placed(out)
        }
        None => Anchored::Unanchored(to_finding(
            f,
            f.start_line,
            f.end_line,
            &normalise_lines(std::iter::once(f.message.as_str())),
        )),
    }
}

/// Merges findings with the same fingerprint, keeping the most severe
/// (then the most confident) at the position of the first.
pub fn merge_duplicates(findings: Vec<Finding>) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    for f in findings {
        match out.iter_mut().find(|o| o.fingerprint == f.fingerprint) {
            Some(o) => {
                let better = (f.severity, f.confidence) > (o.severity, o.confidence);
                if better {
                    *o = f;
                }
            }
            None => out.push(f),
        }
    }
    out
}

/// Keeps model findings at or above `min`; check findings always stay.
pub fn filter_severity(findings: Vec<Finding>, min: Option<Severity>) -> Vec<Finding> {
    let Some(min) = min else { return findings };
    findings
        .into_iter()
        .filter(|f| f.source == FindingSource::Check || f.severity >= min)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::{DiffLine, parse_patch};
    use proptest::prelude::*;

    fn finding(file: &str, start: u32, end: u32) -> ModelFinding {
        ModelFinding {
            file: file.into(),
            start_line: start,
            end_line: end,
            severity: Severity::Warning,
            category: "Error Handling".into(),
            confidence: 0.7,
            message: "Handle the error.".into(),
            suggestion: None,
        }
    }

    fn hunk_of(patch: &str) -> Hunk {
        parse_patch(patch).expect("patch").remove(0).hunks.remove(0)
    }

    #[test]
    fn anchors_on_sent_lines_clamps_to_the_hunk_and_rejects_the_rest() {
        let h = hunk_of(
            "diff --git a/a.rs b/a.rs\n--- a/a.rs\n+++ b/a.rs\n@@ -10,3 +10,4 @@\n x\n-y\n+Y\n+z\n w\n",
        );
        let hunks = [&h];
        let sent = [SentFile {
            path: "a.rs",
            hunks: &hunks,
        }];
        let ok = anchor(&finding("./a.rs", 11, 99), &sent)
            .placed()
            .expect("anchored");
        assert_eq!((ok.file.as_str(), ok.line, ok.end_line), ("a.rs", 11, 13));
        assert_eq!(ok.old_end_line, Some(12), "line 13 is unchanged context");
        let added = anchor(&finding("a.rs", 11, 12), &sent)
            .placed()
            .expect("anchored");
        assert_eq!(added.old_end_line, None, "line 12 was added");
        assert_eq!(
            (ok.category.as_str(), ok.rule_id.as_str()),
            ("error-handling", "model/error-handling")
        );
        assert_eq!(ok.source, FindingSource::Model);
        assert!(
            anchor(&finding("a.rs", 9, 10), &sent).placed().is_none(),
            "before the hunk"
        );
        assert!(
            anchor(&finding("a.rs", 14, 14), &sent).placed().is_none(),
            "after the hunk"
        );
        assert!(
            anchor(&finding("b.rs", 11, 11), &sent).placed().is_none(),
            "file not sent"
        );
    }

    #[test]
    fn fingerprints_survive_moved_lines_and_rewording() {
        let before = hunk_of(
            "diff --git a/a.rs b/a.rs\n--- a/a.rs\n+++ b/a.rs\n@@ -1,0 +2,1 @@\n+let v = x.unwrap();\n",
        );
        let after = hunk_of(
            "diff --git a/a.rs b/a.rs\n--- a/a.rs\n+++ b/a.rs\n@@ -1,0 +42,1 @@\n+let  v = x.unwrap();\n",
        );
        let (hb, ha) = ([&before], [&after]);
        let a = anchor(
            &finding("a.rs", 2, 2),
            &[SentFile {
                path: "a.rs",
                hunks: &hb,
            }],
        )
        .placed()
        .expect("a");
        let mut reworded = finding("a.rs", 42, 42);
        reworded.message = "Do not unwrap here.".into();
        let b = anchor(
            &reworded,
            &[SentFile {
                path: "a.rs",
                hunks: &ha,
            }],
        )
        .placed()
        .expect("b");
        assert_eq!(a.fingerprint, b.fingerprint);
        let mut other = finding("a.rs", 42, 42);
        other.category = "performance".into();
        let c = anchor(
            &other,
            &[SentFile {
                path: "a.rs",
                hunks: &ha,
            }],
        )
        .placed()
        .expect("c");
        assert_ne!(a.fingerprint, c.fingerprint);
    }

    #[test]
    fn merges_duplicates_keeping_the_worst_and_filters_model_findings_only() {
        let h = hunk_of("diff --git a/a b/a\n--- a/a\n+++ b/a\n@@ -0,0 +1,1 @@\n+x\n");
        let hs = [&h];
        let sent = [SentFile {
            path: "a",
            hunks: &hs,
        }];
        let w = anchor(&finding("a", 1, 1), &sent).placed().expect("w");
        let mut e = w.clone();
        e.severity = Severity::Error;
        let mut info = w.clone();
        info.fingerprint = "other".into();
        info.severity = Severity::Info;
        let merged = merge_duplicates(vec![w.clone(), e, info.clone()]);
        assert_eq!(
            merged.iter().map(|f| f.severity).collect::<Vec<_>>(),
            [Severity::Error, Severity::Info]
        );
        let mut check = info.clone();
        check.source = FindingSource::Check;
        let kept = filter_severity(vec![w, info, check], Some(Severity::Warning));
        assert_eq!(kept.len(), 2);
        assert_eq!(normalise_category("  "), "general");
    }

    proptest! {
        #[test]
        fn anchored_findings_always_lie_inside_a_sent_hunk(
            hunks in prop::collection::vec((1u32..200, prop::collection::vec(0u8..3, 1..12)), 1..5),
            findings in prop::collection::vec((0u8..3, 0u32..260, 0u32..20), 0..40),
        ) {
            let built: Vec<Hunk> = hunks.iter().map(|(start, kinds)| {
                let lines: Vec<DiffLine> = kinds.iter().map(|k| match k {
                    0 => DiffLine::Added("a".into()),
                    1 => DiffLine::Removed("r".into()),
                    _ => DiffLine::Context("c".into()),
                }).collect();
                let new_lines = lines.iter().filter(|l| !matches!(l, DiffLine::Removed(_))).count() as u32;
                Hunk { old_start: *start, old_lines: 0, new_start: *start, new_lines, lines }
            }).collect();
            let refs: Vec<&Hunk> = built.iter().collect();
            let sent = [SentFile { path: "f.rs", hunks: &refs }];
            for (which, start, len) in findings {
                let file = ["f.rs", "g.rs", "./f.rs"][which as usize];
                let start = start.max(1);
                let f = finding(file, start, start + len);
                let inside = file != "g.rs" && built.iter().any(|h| h.new_line(start).is_some());
                match anchor(&f, &sent) {
                    Anchored::Placed(a) => {
                        prop_assert!(inside);
                        prop_assert_eq!(a.file.as_str(), "f.rs");
                        let home = built.iter().find(|h| h.new_line(a.line).is_some() && h.new_line(a.end_line).is_some());
                        prop_assert!(home.is_some(), "start and end in one sent hunk");
                        prop_assert!(a.line <= a.end_line && a.end_line <= start + len);
                    }
                    Anchored::Unanchored(u) => {
                        prop_assert!(!inside);
                        prop_assert_eq!(u.line, start);
                    }
                }
            }
        }
    }
}
