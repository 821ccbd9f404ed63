//! The repository's own review configuration, `.ai-review.yml` (or
//! `.ai-review.yaml`), read from the head revision.
//!
//! It is read from the commit under review (`git cat-file` on the head
//! SHA), never from the working tree, so what is reviewed and how it is
//! reviewed come from the same revision. Anything unexpected (unknown key,
//! wrong type, invalid glob, duplicate rule id) fails the review with an
//! error naming the file, the position and the expected keys: a silently
//! ignored typo in an exclude list would be worse.

use crate::checks::Severity;
use crate::classify::PathMatcher;
use crate::{ExecError, RuleSettings, git};
use serde::Deserialize;
use std::path::Path;

/// File names accepted, in order of preference.
pub const CONFIG_FILES: [&str; 2] = [".ai-review.yml", ".ai-review.yaml"];

/// Keys of the top level, for error messages.
const TOP_KEYS: &str = "`instructions`, `rules`, `exclude`, `minSeverity`";

/// `.ai-review.yml` as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    instructions: Option<String>,
    #[serde(default)]
    rules: Vec<RawRule>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    min_severity: Option<Severity>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    paths: Vec<String>,
    instructions: String,
}

/// The validated repository configuration.
#[derive(Debug, Clone, Default)]
pub struct RepoConfig {
    /// Which file it came from (`None`: the repository has none).
    pub file: Option<String>,
    /// Extra instructions for the reviewer.
    pub instructions: Option<String>,
    /// Rules, with ids `repo:<id>` or `repo:<n>` (1-based position).
    pub rules: Vec<RuleSettings>,
    /// Paths left out of the model review.
    pub exclude: PathMatcher,
    /// Model findings below this severity are dropped (never the checks').
    pub min_severity: Option<Severity>,
}

/// Parses the text of a configuration file named `file` (for messages).
pub fn parse_config(file: &str, text: &str) -> Result<RepoConfig, ExecError> {
    let bad = |what: String| ExecError(format!("invalid {file}: {what}"));
    // An empty or comment-only file is an empty configuration, which YAML
    // would otherwise read as a null document.
    let meaningful = text
        .lines()
        .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#') && l.trim() != "---");
    let raw: RawConfig = if meaningful {
        serde_yaml_ng::from_str(text).map_err(|e| bad(yaml_error(&e)))?
    } else {
        RawConfig::default()
    };
    let exclude = PathMatcher::new(&raw.exclude)
        .map_err(|e| bad(format!("exclude: {e} (expected a list of globs)")))?;
    let mut rules: Vec<RuleSettings> = Vec::new();
    for (i, r) in raw.rules.into_iter().enumerate() {
        let id = match r.id.as_deref().map(str::trim) {
            Some("") => return Err(bad(format!("rules[{i}].id: must not be empty"))),
            Some(id) => format!("repo:{id}"),
            None => format!("repo:{}", i + 1),
        };
        if rules.iter().any(|x| x.id == id) {
            return Err(bad(format!("rules[{i}].id: duplicate rule id `{id}`")));
        }
        PathMatcher::new(&r.paths).map_err(|e| bad(format!("rules[{i}].paths: {e}")))?;
        if r.instructions.trim().is_empty() {
            return Err(bad(format!("rules[{i}].instructions: must not be empty")));
        }
        rules.push(RuleSettings {
            id,
            name: r.name.unwrap_or_default(),
            paths: r.paths,
            instructions: r.instructions,
        });
    }
    Ok(RepoConfig {
        file: Some(file.to_owned()),
        instructions: raw.instructions.filter(|s| !s.trim().is_empty()),
        rules,
        exclude,
        min_severity: raw.min_severity,
    })
}

/// `line L column C: message`, with the expected top-level keys when the
/// parser could not name them.
fn yaml_error(e: &serde_yaml_ng::Error) -> String {
    let full = e.to_string();
    let (pos, msg) = match e.location() {
        Some(loc) => {
            let suffix = format!(" at line {} column {}", loc.line(), loc.column());
            let msg = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
            (
                format!("line {} column {}: ", loc.line(), loc.column()),
                msg,
            )
        }
        None => (String::new(), full),
    };
    if msg.contains("expected one of") || msg.contains("missing field") {
        format!("{pos}{msg}")
    } else {
        format!("{pos}{msg} (top-level keys: {TOP_KEYS})")
    }
}

/// Reads the configuration from revision `head` of `repo`; an empty one
/// when the revision has no configuration file.
pub fn load_config(repo: &Path, head: &str) -> Result<RepoConfig, ExecError> {
    let listing = git(
        repo,
        &[
            "ls-tree",
            "-z",
            "--name-only",
            head,
            "--",
            CONFIG_FILES[0],
            CONFIG_FILES[1],
        ],
    )?;
    let present: Vec<String> = listing
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    let file = match present.as_slice() {
        [] => return Ok(RepoConfig::default()),
        [one] => one.clone(),
        _ => {
            return Err(ExecError(format!(
                "both {} and {} exist at the head revision: keep one",
                CONFIG_FILES[0], CONFIG_FILES[1]
            )));
        }
    };
    let blob = git(repo, &["cat-file", "blob", &format!("{head}:{file}")])?;
    let text = String::from_utf8(blob)
        .map_err(|_| ExecError(format!("invalid {file}: not UTF-8 text")))?;
    parse_config(&file, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = ".ai-review.yml";

    #[test]
    fn parses_every_key_and_numbers_rules() {
        let c = parse_config(
            FILE,
            "instructions: Be strict.\nrules:\n  - paths: ['src/**/*.rs']\n    instructions: No unwrap.\n  - id: sql\n    name: SQL\n    instructions: Parameterise queries.\nexclude: ['docs/**', '*.snap']\nminSeverity: warning\n",
        )
        .expect("valid");
        assert_eq!(c.instructions.as_deref(), Some("Be strict."));
        let ids: Vec<_> = c.rules.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["repo:1", "repo:sql"]);
        assert_eq!(c.rules[1].name, "SQL");
        assert_eq!(c.exclude.first_match("docs/a/b.md"), Some("docs/**"));
        assert_eq!(c.exclude.first_match("x/y.snap"), Some("*.snap"));
        assert_eq!(c.min_severity, Some(Severity::Warning));
    }

    #[test]
    fn empty_and_comment_only_files_are_empty_configs() {
        for text in ["", "# nothing yet\n", "---\n"] {
            let c = parse_config(FILE, text).expect(text);
            assert!(c.rules.is_empty() && c.instructions.is_none());
        }
    }

    #[test]
    fn errors_name_the_file_the_position_and_the_expected_keys() {
        let e = parse_config(FILE, "instructions: x\nrules: []\nexclud: []\n")
            .expect_err("typo")
            .0;
        assert!(
            e.starts_with("invalid .ai-review.yml: line 3 column 1: "),
            "{e}"
        );
        assert!(
            e.contains(
                "unknown field `exclud`, expected one of `instructions`, `rules`, `exclude`, `minSeverity`"
            ),
            "{e}"
        );
        let e = parse_config(FILE, "exclude: docs\n").expect_err("type").0;
        assert!(
            e.contains("line 1") && e.contains("expected a sequence"),
            "{e}"
        );
        let e = parse_config(FILE, "minSeverity: fatal\n")
            .expect_err("enum")
            .0;
        assert!(e.contains("`info`, `warning`, `error`"), "{e}");
        let e = parse_config(FILE, "rules:\n  - paths: [x]\n    instruction: y\n")
            .expect_err("rule key")
            .0;
        assert!(
            e.contains("rules[0]") && e.contains("unknown field `instruction`"),
            "{e}"
        );
        let e = parse_config(FILE, "exclude: ['src/[a']\n")
            .expect_err("glob")
            .0;
        assert!(e.contains("invalid glob `src/[a`"), "{e}");
        let e = parse_config(
            FILE,
            "rules:\n  - {id: a, instructions: x}\n  - {id: a, instructions: y}\n",
        )
        .expect_err("dup")
        .0;
        assert!(e.contains("duplicate rule id `repo:a`"), "{e}");
        let e = parse_config(FILE, "- a\n- b\n").expect_err("list").0;
        assert!(
            e.contains("invalid .ai-review.yml") && e.contains(TOP_KEYS),
            "{e}"
        );
    }
}
