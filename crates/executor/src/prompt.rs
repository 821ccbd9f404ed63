//! The prompts sent to the model: the system message (a template with
//! `{{variables}}` plus a fixed output-format section), the user message
//! (the diff with new-side line numbers) and the repair message; and the
//! token estimate that packing relies on.

use crate::answer::{ANSWER_EXAMPLE, ANSWER_SCHEMA};
use crate::diff::{DiffLine, Hunk};
use crate::{FileStat, FileStatus, RuleSettings};
use std::fmt::Write as _;

/// Tokens a text is assumed to take: its UTF-8 length divided by 3,
/// rounded up.
///
/// No tokenizer ships in the container (and none may be downloaded), so
/// this over-estimates on purpose: current BPE tokenizers average about
/// 3.5 to 4.5 bytes per token on code and English, and non-ASCII text has
/// more bytes per character too. Packing against an over-estimate keeps
/// every call under the model's limits. It is sub-additive (the estimate
/// of a concatenation never exceeds the sum of the parts' estimates), so
/// summing the parts of a prompt is safe.
pub fn estimate_tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(3)
}

/// Tokens added per call for message framing (roles, separators).
pub const CALL_OVERHEAD_TOKENS: u64 = 16;

/// The built-in review template.
pub const BUILTIN_TEMPLATE: &str = "\
You are a senior software engineer reviewing a change to {{repository}}.
Title: {{title}}
Branch: {{branch}}
Languages in this part of the change: {{language}}

Review the changed lines (marked `+`) and how they interact with the context shown. Report real problems: bugs, security issues, data loss, concurrency errors, wrong error handling, broken edge cases, performance traps, missing tests for risky logic, and violations of the rules below. Do not comment on formatting a formatter would fix, do not praise, do not restate the change. Prefer a few precise findings over many vague ones; when unsure, lower the confidence rather than guess.

Rules for these files:
{{rules}}

Instructions from the repository:
{{instructions}}
";

/// What the variables of a template are filled with.
#[derive(Debug, Clone, Copy, Default)]
pub struct PromptContext<'a> {
    /// The template (`None`: [`BUILTIN_TEMPLATE`]).
    pub template: Option<&'a str>,
    /// Title of the change.
    pub title: Option<&'a str>,
    /// Branch.
    pub branch: Option<&'a str>,
    /// Repository.
    pub repository: Option<&'a str>,
    /// `.ai-review.yml` instructions.
    pub instructions: Option<&'a str>,
}

/// The fixed output-format section, appended to every system message
/// whatever the template says.
pub fn output_format() -> String {
    format!(
        "\n# Output format (mandatory)\n\n\
Answer with ONE JSON object and nothing else: no prose, no markdown fence. It must match this JSON Schema:\n\n{ANSWER_SCHEMA}\n\n\
- `file`: a path exactly as written after `### File:` in the diff.\n\
- `startLine`, `endLine`: new-side line numbers, as printed at the start of each diff line. Removed lines (`-`) have no number: anchor on the nearest numbered line. Both lines must be in the same hunk, `endLine` >= `startLine`.\n\
- `severity`: `error` must block merging (bugs, security, data loss), `warning` should be fixed, `info` is worth knowing.\n\
- `category`: one short lowercase word or hyphenated words: `bug`, `security`, `performance`, `error-handling`, `concurrency`, `maintainability`, `tests`, `docs`, or a rule id.\n\
- `confidence`: from 0 to 1.\n\
- `suggestion` (optional): replacement code for lines `startLine`..`endLine` exactly, without line numbers or diff markers; omit it when unsure.\n\
- `summary`: one to three sentences on what this part of the change does and its main risk.\n\
- `assessment`: `approve` (nothing blocking), `comment` (remarks, nothing blocking) or `request_changes` (at least one error).\n\
- `rating`: from 1 (serious problems) to 5 (clean).\n\n\
With no problem to report, return an empty `findings` list.\n\nExample:\n{ANSWER_EXAMPLE}\n"
    )
}

/// The language of a path, from its extension or name.
pub fn language_of(path: &str) -> Option<&'static str> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let by_name = match name {
        "Dockerfile" | "Containerfile" => Some("Dockerfile"),
        "Makefile" | "GNUmakefile" => Some("Makefile"),
        "CMakeLists.txt" => Some("CMake"),
        _ => None,
    };
    if by_name.is_some() {
        return by_name;
    }
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "rs" => "Rust",
        "py" | "pyi" => "Python",
        "js" | "mjs" | "cjs" | "jsx" => "JavaScript",
        "ts" | "tsx" | "mts" | "cts" => "TypeScript",
        "go" => "Go",
        "java" => "Java",
        "kt" | "kts" => "Kotlin",
        "scala" => "Scala",
        "c" | "h" => "C",
        "cc" | "cpp" | "cxx" | "hpp" | "hh" | "hxx" => "C++",
        "cs" => "C#",
        "fs" | "fsx" => "F#",
        "rb" => "Ruby",
        "php" => "PHP",
        "swift" => "Swift",
        "m" | "mm" => "Objective-C",
        "dart" => "Dart",
        "ex" | "exs" => "Elixir",
        "erl" | "hrl" => "Erlang",
        "hs" => "Haskell",
        "ml" | "mli" => "OCaml",
        "clj" | "cljs" => "Clojure",
        "lua" => "Lua",
        "r" => "R",
        "jl" => "Julia",
        "zig" => "Zig",
        "nim" => "Nim",
        "sh" | "bash" | "zsh" => "Shell",
        "ps1" => "PowerShell",
        "sql" => "SQL",
        "html" | "htm" => "HTML",
        "css" | "scss" | "sass" | "less" => "CSS",
        "vue" => "Vue",
        "svelte" => "Svelte",
        "json" => "JSON",
        "yml" | "yaml" => "YAML",
        "toml" => "TOML",
        "xml" => "XML",
        "md" | "markdown" => "Markdown",
        "proto" => "Protocol Buffers",
        "tf" | "hcl" => "HCL",
        "nix" => "Nix",
        "gradle" => "Gradle",
        _ => return None,
    })
}

/// `{{rules}}`: each rule with its id, name and paths.
pub fn render_rules(rules: &[&RuleSettings]) -> String {
    if rules.is_empty() {
        return "(none)".into();
    }
    let mut out = String::new();
    for r in rules {
        let _ = write!(out, "- [{}]", r.id);
        if !r.name.is_empty() {
            let _ = write!(out, " {}", r.name);
        }
        if !r.paths.is_empty() {
            let _ = write!(out, " (paths: {})", r.paths.join(", "));
        }
        let body = r.instructions.trim().replace('\n', "\n  ");
        let _ = writeln!(out, ": {body}");
    }
    out.trim_end().to_owned()
}

/// The system message for a chunk written in `languages` with `rules`.
pub fn system_prompt(
    ctx: &PromptContext<'_>,
    languages: &[&str],
    rules: &[&RuleSettings],
) -> String {
    let or = |v: Option<&str>, d: &str| {
        v.map(str::trim)
            .filter(|s| !s.is_empty())
            .map_or_else(|| d.to_owned(), str::to_owned)
    };
    let language = if languages.is_empty() {
        "unknown".to_owned()
    } else {
        languages.join(", ")
    };
    let template = ctx
        .template
        .filter(|t| !t.trim().is_empty())
        .unwrap_or(BUILTIN_TEMPLATE);
    let body = template
        .replace("{{title}}", &or(ctx.title, "(no title)"))
        .replace("{{branch}}", &or(ctx.branch, "(unknown branch)"))
        .replace("{{repository}}", &or(ctx.repository, "this repository"))
        .replace("{{language}}", &language)
        .replace("{{rules}}", &render_rules(rules))
        .replace("{{instructions}}", &or(ctx.instructions, "(none)"));
    format!("{}\n{}", body.trim_end(), output_format())
}

/// Opening of every user message.
pub const USER_PREAMBLE: &str = "Review this change. Each diff line starts with its new-side line number (empty for removed lines), then `+` (added), `-` (removed) or a space (unchanged context).\n";

/// The heading of one file in the user message.
pub fn file_header(file: &FileStat) -> String {
    let how = match (file.status, file.old_path.as_deref()) {
        (FileStatus::Added, _) => "added".to_owned(),
        (FileStatus::Renamed, Some(old)) => format!("renamed from {old}"),
        (FileStatus::Copied, Some(old)) => format!("copied from {old}"),
        (FileStatus::Typechange, _) => "type changed".to_owned(),
        _ => "modified".to_owned(),
    };
    format!("\n### File: {} ({how})\n", file.path)
}

/// One hunk with new-side line numbers.
pub fn render_hunk(h: &Hunk) -> String {
    let mut out = format!(
        "@@ -{},{} +{},{} @@\n",
        h.old_start, h.old_lines, h.new_start, h.new_lines
    );
    for (n, line) in h.numbered() {
        let num = n.map(|n| n.to_string()).unwrap_or_default();
        let (mark, text) = match line {
            DiffLine::Added(t) => ('+', t),
            DiffLine::Removed(t) => ('-', t),
            DiffLine::Context(t) => (' ', t),
        };
        let line = format!("{num:>6} {mark} {text}");
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

/// The user message: the preamble, then each file's header and hunks.
pub fn user_message(parts: &[(&FileStat, Vec<&Hunk>)]) -> String {
    let mut out = USER_PREAMBLE.to_owned();
    for (file, hunks) in parts {
        out.push_str(&file_header(file));
        for h in hunks {
            out.push_str(&render_hunk(h));
        }
    }
    out
}

/// The repair request after an invalid answer.
pub fn repair_message(error: &str) -> String {
    format!(
        "Your answer is not valid: {error}\nAnswer again with the corrected JSON object only, matching the schema in the instructions, with no other text."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_conservatively_and_sub_additively() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("abc"), 1);
        assert_eq!(estimate_tokens("abcd"), 2);
        assert_eq!(estimate_tokens("é"), 1);
        let (a, b) = ("fn main() {}\n", "let x = 1;\n");
        assert!(estimate_tokens(&format!("{a}{b}")) <= estimate_tokens(a) + estimate_tokens(b));
    }

    #[test]
    fn substitutes_every_variable_and_always_appends_the_output_format() {
        let rule = RuleSettings {
            id: "repo:sql".into(),
            name: "SQL".into(),
            paths: vec!["db/**".into()],
            instructions: "Parameterise\nqueries.".into(),
        };
        let ctx = PromptContext {
            template: Some(
                "{{title}}|{{branch}}|{{repository}}|{{language}}|{{rules}}|{{instructions}}|{{other}}",
            ),
            title: Some("Fix"),
            branch: Some("dev"),
            repository: Some("acme/app"),
            instructions: None,
        };
        let p = system_prompt(&ctx, &["Rust", "SQL"], &[&rule]);
        assert!(p.starts_with(
            "Fix|dev|acme/app|Rust, SQL|- [repo:sql] SQL (paths: db/**): Parameterise\n  queries.|(none)|{{other}}\n"
        ), "{p}");
        assert!(p.contains(ANSWER_SCHEMA) && p.ends_with(&format!("{ANSWER_EXAMPLE}\n")));
        let builtin = system_prompt(&PromptContext::default(), &[], &[]);
        assert!(
            builtin.contains("reviewing a change to this repository")
                && builtin.contains(ANSWER_SCHEMA)
        );
    }

    #[test]
    fn knows_common_languages() {
        assert_eq!(language_of("src/lib.rs"), Some("Rust"));
        assert_eq!(language_of("a/Dockerfile"), Some("Dockerfile"));
        assert_eq!(language_of("x.TSX"), Some("TypeScript"));
        assert_eq!(language_of("LICENSE"), None);
    }
}
