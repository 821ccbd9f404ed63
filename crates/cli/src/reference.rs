//! `docs/configuration.md`, generated from the code: every environment
//! variable of every component with its default and meaning. The server's,
//! the admin tools' and the local review's come from their clap
//! definitions, the runner's from its variable table, the model's from
//! [`crate::model_env::DOCS`]. `ai-review config-reference` prints it; a
//! test fails when the committed file differs, and another when a
//! variable read anywhere in the sources is missing from it.

use clap::CommandFactory;
use std::fmt::Write as _;

/// Escapes a table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// One table row per argument of `cmd` that has an environment variable.
fn clap_rows(cmd: &clap::Command, out: &mut String) {
    for arg in cmd.get_arguments() {
        let Some(env) = arg.get_env() else { continue };
        let default: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        let default = if default.is_empty() {
            "—".to_owned()
        } else {
            format!("`{}`", default.join(","))
        };
        let flag = arg
            .get_long()
            .map_or_else(String::new, |l| format!("`--{l}`"));
        let help = arg
            .get_long_help()
            .or_else(|| arg.get_help())
            .map(ToString::to_string)
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            env.to_string_lossy(),
            default,
            flag,
            cell(&help)
        );
    }
}

/// Variables only the test suite and the benchmarks read.
const DEV: [(&str, &str, &str); 5] = [
    (
        "AI_REVIEW_TEST_EXECUTOR_IMAGE",
        "`ai-review-executor:latest`",
        "executor image the Docker tests use (build it with scripts/build-images.sh)",
    ),
    (
        "AI_REVIEW_SCREENSHOTS_DIR",
        "`target/screenshots`",
        "where the browser tests write their screenshots",
    ),
    (
        "AI_REVIEW_UPDATE_SCREENSHOTS",
        "—",
        "`1`: the browser tests also replace docs/screenshots/",
    ),
    (
        "AI_REVIEW_UPDATE_DOCS",
        "—",
        "set: the reference test rewrites this file",
    ),
    (
        "BENCH_DATABASE_URL",
        "a fresh SQLite file in a temporary directory",
        "database the benchmarks run against (`ai-review-bench`)",
    ),
];

const HEAD: &str = "| Variable | Default | Flag | Meaning |\n| --- | --- | --- | --- |\n";

/// The whole reference, as committed in `docs/configuration.md`.
pub fn configuration_markdown() -> String {
    let cli = crate::Cli::command();
    let sub = |name: &'static str| {
        cli.find_subcommand(name)
            .cloned()
            .unwrap_or_else(|| clap::Command::new(name))
    };
    let mut s = String::from(
        "# Configuration reference\n\n\
         Every environment variable of every component, with its default. \
         Generated from the code by `ai-review config-reference`; a test \
         fails when this file differs from it, or when a variable read in \
         the sources is missing here. Flags, where given, do the same as \
         the variable.\n\n\
         ## Every command\n\n",
    );
    s.push_str(HEAD);
    clap_rows(&cli, &mut s);
    s.push_str(
        "| `RUST_LOG` | `info` (`warn` for `review`) | — | log filter in `tracing` syntax, e.g. `info,ai_review_server=debug` |\n",
    );
    s.push_str("\n## Server (`ai-review server`)\n\n");
    s.push_str(HEAD);
    clap_rows(&sub("server"), &mut s);
    s.push_str("\n## Runner (`ai-review runner`)\n\nEnvironment variables only; missing or malformed values stop the runner with exit code 2 and a message naming the variable.\n\n| Variable | Default | Meaning |\n| --- | --- | --- |\n");
    for v in ai_review_runner::config::VARS {
        let d = match v.default {
            None => "required".to_owned(),
            Some("") => "empty".to_owned(),
            Some(d) => format!("`{d}`"),
        };
        let _ = writeln!(s, "| `{}` | {} | {} |", v.name, d, cell(v.help));
    }
    s.push_str("\n## Admin tools (`ai-review admin`)\n\n");
    s.push_str(HEAD);
    clap_rows(&sub("admin"), &mut s);
    s.push_str("\n## Local reviews (`ai-review review`)\n\n");
    s.push_str(HEAD);
    clap_rows(&sub("review"), &mut s);
    s.push_str("\nThe model, for local reviews (with `--server`, the server's AI configs apply):\n\n| Variable | Default | Meaning |\n| --- | --- | --- |\n");
    for (name, default, help) in crate::model_env::DOCS {
        let d = if default.is_empty() {
            "—".to_owned()
        } else {
            format!("`{default}`")
        };
        let _ = writeln!(s, "| `{name}` | {d} | {} |", cell(help));
    }
    s.push_str(
        "\n## Development and tests\n\n| Variable | Default | Meaning |\n| --- | --- | --- |\n",
    );
    for (name, default, help) in DEV {
        let _ = writeln!(s, "| `{name}` | {default} | {} |", cell(help));
    }
    s.push_str("\n## Executor\n\nThe executor inside the review container reads no environment variable of its own: the runner hands it the task on a mounted file and sets only `HOME`, `GIT_OPTIONAL_LOCKS` and `GIT_CONFIG_NOSYSTEM` for git.\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn repo() -> &'static Path {
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
    }

    #[test]
    fn docs_configuration_md_is_current() {
        let want = configuration_markdown();
        let path = repo().join("docs/configuration.md");
        if std::env::var_os("AI_REVIEW_UPDATE_DOCS").is_some() {
            std::fs::write(&path, &want).expect("write docs/configuration.md");
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "docs/configuration.md is out of date: run `cargo run -q -p ai-review -- config-reference > docs/configuration.md` (or AI_REVIEW_UPDATE_DOCS=1 cargo nextest run -p ai-review reference)"
        );
    }

    /// Every variable named in `env = "…"`, `env::var("…")`,
    /// `env::var_os("…")` or a runner `VarSpec` anywhere in the sources is
    /// in the reference.
    #[test]
    fn every_variable_read_in_the_sources_is_documented() {
        let doc = configuration_markdown();
        // Read for defaults of the platform, not configuration.
        let platform = ["HOME", "XDG_DATA_HOME", "PATH"];
        let re = regex::Regex::new(
            r#"(?:env\s*=\s*|env::var(?:_os)?\(\s*|name:\s*)"([A-Z][A-Z0-9_]{2,})""#,
        )
        .expect("regex");
        let mut missing = Vec::new();
        let mut found = 0;
        let crates = repo().join("crates");
        let mut stack = vec![crates];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).expect("read dir").flatten() {
                let p = e.path();
                if p.is_dir() {
                    if !p.ends_with("tests") && !p.ends_with("target") {
                        stack.push(p);
                    }
                    continue;
                }
                if p.extension().is_none_or(|x| x != "rs") {
                    continue;
                }
                let src = std::fs::read_to_string(&p).expect("read");
                // Only the code before the unit tests.
                let src = src.split("#[cfg(test)]").next().unwrap_or("");
                for c in re.captures_iter(src) {
                    let var = &c[1];
                    found += 1;
                    if !platform.contains(&var) && !doc.contains(&format!("`{var}`")) {
                        missing.push(format!("{var} ({})", p.display()));
                    }
                }
            }
        }
        assert!(found > 40, "the scan found only {found} variables");
        assert!(missing.is_empty(), "undocumented variables: {missing:?}");
    }
}
