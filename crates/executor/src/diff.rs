//! Parsing `git diff` patches into files, hunks and new-side line numbers:
//! what findings are anchored on.

use crate::ExecError;

/// One line of a hunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiffLine {
    /// Unchanged (only with context lines).
    Context(String),
    /// Added on the new side.
    Added(String),
    /// Removed from the old side.
    Removed(String),
}

/// A hunk: `@@ -old_start,old_lines +new_start,new_lines @@`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hunk {
    /// First old line (or the line after which lines are inserted when `old_lines` is 0).
    pub old_start: u32,
    /// Old lines covered.
    pub old_lines: u32,
    /// First new line (or the line after which lines were removed when `new_lines` is 0).
    pub new_start: u32,
    /// New lines covered.
    pub new_lines: u32,
    /// The lines.
    pub lines: Vec<DiffLine>,
}

impl Hunk {
    /// Every line with its new-side number (`None` for removed lines).
    pub fn numbered(&self) -> impl Iterator<Item = (Option<u32>, &DiffLine)> {
        let mut n = self.new_start;
        self.lines.iter().map(move |l| match l {
            DiffLine::Added(_) | DiffLine::Context(_) => {
                n += 1;
                (Some(n - 1), l)
            }
            DiffLine::Removed(_) => (None, l),
        })
    }

    /// The old-side number of new line `new` when that line is unchanged
    /// context (forges such as GitLab need both numbers to comment on it);
    /// `None` for added lines and lines outside the hunk.
    pub fn context_old_line(&self, new: u32) -> Option<u32> {
        let (mut o, mut n) = (self.old_start, self.new_start);
        for l in &self.lines {
            match l {
                DiffLine::Context(_) => {
                    if n == new {
                        return Some(o);
                    }
                    o += 1;
                    n += 1;
                }
                DiffLine::Added(_) => {
                    if n == new {
                        return None;
                    }
                    n += 1;
                }
                DiffLine::Removed(_) => o += 1,
            }
        }
        None
    }

    /// The new-side lines the hunk covers, inclusive; a pure deletion
    /// covers the line it follows (at least line 1).
    pub fn new_range(&self) -> (u32, u32) {
        if self.new_lines == 0 {
            let at = self.new_start.max(1);
            (at, at)
        } else {
            (self.new_start, self.new_start + self.new_lines - 1)
        }
    }

    /// Added plus removed lines.
    pub fn changed_lines(&self) -> u64 {
        self.lines
            .iter()
            .filter(|l| !matches!(l, DiffLine::Context(_)))
            .count() as u64
    }

    /// Text of new-side line `n`, if the hunk shows it.
    pub fn new_line(&self, n: u32) -> Option<&str> {
        self.numbered().find_map(|(k, l)| match l {
            DiffLine::Added(t) | DiffLine::Context(t) if k == Some(n) => Some(t.as_str()),
            _ => None,
        })
    }

    /// Added lines with their new-side line numbers.
    pub fn added(&self) -> impl Iterator<Item = (u32, &str)> {
        let mut n = self.new_start;
        self.lines.iter().filter_map(move |l| match l {
            DiffLine::Added(t) => {
                n += 1;
                Some((n - 1, t.as_str()))
            }
            DiffLine::Context(_) => {
                n += 1;
                None
            }
            DiffLine::Removed(_) => None,
        })
    }
}

/// The patch of one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilePatch {
    /// Path on the old side (`None` for added files).
    pub old_path: Option<String>,
    /// Path on the new side (`None` for deleted files).
    pub new_path: Option<String>,
    /// Binary content (no hunks).
    pub binary: bool,
    /// Git mode on the old side, when the patch states it (`100644`, ...).
    pub old_mode: Option<String>,
    /// Git mode on the new side (`160000` is a submodule).
    pub new_mode: Option<String>,
    /// Hunks in order.
    pub hunks: Vec<Hunk>,
}

impl FilePatch {
    /// The path findings refer to (new side, else old).
    pub fn path(&self) -> &str {
        self.new_path
            .as_deref()
            .or(self.old_path.as_deref())
            .unwrap_or("")
    }

    /// Whether `line` (new side) is an added or context line of a hunk:
    /// the only lines a finding may be anchored on.
    pub fn contains_new_line(&self, line: u32) -> bool {
        self.hunks.iter().any(|h| {
            let mut n = h.new_start;
            h.lines.iter().any(|l| match l {
                DiffLine::Added(_) | DiffLine::Context(_) => {
                    n += 1;
                    n - 1 == line
                }
                DiffLine::Removed(_) => false,
            })
        })
    }
}

/// Undoes git's C-style quoting of paths with special characters.
fn unquote(s: &str) -> String {
    let Some(inner) = s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) else {
        return s.to_owned();
    };
    let mut bytes = Vec::new();
    let mut it = inner.bytes().peekable();
    while let Some(b) = it.next() {
        if b != b'\\' {
            bytes.push(b);
            continue;
        }
        match it.next() {
            Some(b'n') => bytes.push(b'\n'),
            Some(b't') => bytes.push(b'\t'),
            Some(b'r') => bytes.push(b'\r'),
            Some(d @ b'0'..=b'7') => {
                let mut v = u32::from(d - b'0');
                for _ in 0..2 {
                    if let Some(&n @ b'0'..=b'7') = it.peek() {
                        v = v * 8 + u32::from(n - b'0');
                        it.next();
                    }
                }
                bytes.push(u8::try_from(v).unwrap_or(b'?'));
            }
            Some(other) => bytes.push(other),
            None => {}
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn side_path(s: &str, prefix: &str) -> Option<String> {
    let s = s.trim_end_matches('\t');
    if s == "/dev/null" {
        return None;
    }
    let p = unquote(s);
    Some(p.strip_prefix(prefix).map(str::to_owned).unwrap_or(p))
}

fn range(s: &str) -> Result<(u32, u32), ExecError> {
    let bad = || ExecError(format!("bad hunk range {s:?}"));
    let (start, len) = match s.split_once(',') {
        Some((a, b)) => (a, b),
        None => (s, "1"),
    };
    Ok((
        start.parse().map_err(|_| bad())?,
        len.parse().map_err(|_| bad())?,
    ))
}

/// Parses the output of `git diff --no-color --no-ext-diff` (any `-U`).
pub fn parse_patch(text: &str) -> Result<Vec<FilePatch>, ExecError> {
    let mut files: Vec<FilePatch> = Vec::new();
    let mut in_hunk = false;
    let (mut old_left, mut new_left) = (0u32, 0u32);
    for line in text.split('\n') {
        if in_hunk && (old_left > 0 || new_left > 0) {
            let hunk = files
                .last_mut()
                .and_then(|f| f.hunks.last_mut())
                .ok_or_else(|| ExecError("hunk line outside a hunk".into()))?;
            match line.as_bytes().first() {
                Some(b'+') => {
                    hunk.lines.push(DiffLine::Added(line[1..].to_owned()));
                    new_left = new_left.saturating_sub(1);
                    continue;
                }
                Some(b'-') => {
                    hunk.lines.push(DiffLine::Removed(line[1..].to_owned()));
                    old_left = old_left.saturating_sub(1);
                    continue;
                }
                Some(b' ') => {
                    hunk.lines.push(DiffLine::Context(line[1..].to_owned()));
                    old_left = old_left.saturating_sub(1);
                    new_left = new_left.saturating_sub(1);
                    continue;
                }
                Some(b'\\') => continue,
                None if line.is_empty() => {
                    // An empty context line can lose its leading space.
                    hunk.lines.push(DiffLine::Context(String::new()));
                    old_left = old_left.saturating_sub(1);
                    new_left = new_left.saturating_sub(1);
                    continue;
                }
                _ => {
                    return Err(ExecError(format!(
                        "unexpected line inside a hunk: {line:?}"
                    )));
                }
            }
        }
        if line.starts_with('\\') {
            continue;
        }
        in_hunk = false;
        if line.starts_with("diff --git ") {
            files.push(FilePatch::default());
            continue;
        }
        let Some(f) = files.last_mut() else { continue };
        if let Some(rest) = line.strip_prefix("--- ") {
            f.old_path = side_path(rest, "a/");
        } else if let Some(rest) = line.strip_prefix("+++ ") {
            f.new_path = side_path(rest, "b/");
        } else if let Some(rest) = line
            .strip_prefix("rename from ")
            .or_else(|| line.strip_prefix("copy from "))
        {
            f.old_path = Some(unquote(rest));
        } else if let Some(rest) = line
            .strip_prefix("rename to ")
            .or_else(|| line.strip_prefix("copy to "))
        {
            f.new_path = Some(unquote(rest));
        } else if let Some(m) = line
            .strip_prefix("old mode ")
            .or_else(|| line.strip_prefix("deleted file mode "))
        {
            f.old_mode = Some(m.to_owned());
        } else if let Some(m) = line
            .strip_prefix("new mode ")
            .or_else(|| line.strip_prefix("new file mode "))
        {
            f.new_mode = Some(m.to_owned());
        } else if let Some(rest) = line.strip_prefix("index ") {
            // "index abc..def 100644": the mode of an unchanged-mode file.
            if let Some((_, m)) = rest.split_once(' ') {
                f.old_mode.get_or_insert_with(|| m.to_owned());
                f.new_mode.get_or_insert_with(|| m.to_owned());
            }
        } else if line.starts_with("Binary files ") || line == "GIT binary patch" {
            f.binary = true;
        } else if let Some(rest) = line.strip_prefix("@@ -") {
            let mut parts = rest.splitn(3, ' ');
            let old = parts.next().unwrap_or("");
            let new = parts.next().unwrap_or("").trim_start_matches('+');
            let (old_start, old_lines) = range(old)?;
            let (new_start, new_lines) = range(new)?;
            f.hunks.push(Hunk {
                old_start,
                old_lines,
                new_start,
                new_lines,
                lines: Vec::new(),
            });
            in_hunk = true;
            old_left = old_lines;
            new_left = new_lines;
        }
    }
    Ok(files)
}

/// Applies a file's hunks to its old lines, giving the new lines (used to
/// check the parser: old + patch must rebuild new exactly).
pub fn apply(old: &[&str], patch: &FilePatch) -> Result<Vec<String>, ExecError> {
    let mut out = Vec::new();
    let mut pos = 0usize; // next old line to copy (0-based)
    for h in &patch.hunks {
        let start = if h.old_lines == 0 {
            h.old_start as usize
        } else {
            h.old_start as usize - 1
        };
        if start < pos || start > old.len() {
            return Err(ExecError(format!(
                "hunk at old line {} out of order",
                h.old_start
            )));
        }
        out.extend(old[pos..start].iter().map(|s| (*s).to_owned()));
        pos = start;
        for l in &h.lines {
            match l {
                DiffLine::Context(t) => {
                    out.push(t.clone());
                    pos += 1;
                }
                DiffLine::Removed(_) => pos += 1,
                DiffLine::Added(t) => out.push(t.clone()),
            }
        }
    }
    out.extend(old[pos.min(old.len())..].iter().map(|s| (*s).to_owned()));
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn context_lines_know_their_old_numbers() {
        let h = Hunk {
            old_start: 10,
            old_lines: 4,
            new_start: 20,
            new_lines: 4,
            lines: vec![
                DiffLine::Context("a".into()),
                DiffLine::Removed("b".into()),
                DiffLine::Added("B".into()),
                DiffLine::Added("B2".into()),
                DiffLine::Context("c".into()),
                DiffLine::Removed("d".into()),
            ],
        };
        assert_eq!(h.context_old_line(20), Some(10));
        assert_eq!(h.context_old_line(21), None, "added");
        assert_eq!(h.context_old_line(22), None, "added");
        assert_eq!(h.context_old_line(23), Some(12));
        assert_eq!(h.context_old_line(24), None, "outside");
    }

    use super::*;
    use proptest::prelude::*;
    use std::path::Path;
    use std::process::Command;

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@e")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@e")
            .output()
            .expect("git");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn parses_renames_binaries_quoting_and_missing_newlines() {
        let patch = "diff --git a/old.txt b/new name.txt\nsimilarity index 80%\nrename from old.txt\nrename to new name.txt\n--- a/old.txt\n+++ \"b/new name\\tx.txt\"\n@@ -2 +2,2 @@ ctx\n-b\n+B\n+c\n\\ No newline at end of file\ndiff --git a/img.png b/img.png\nBinary files a/img.png and b/img.png differ\ndiff --git a/gone.txt b/gone.txt\ndeleted file mode 100644\n--- a/gone.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-x\n";
        let files = parse_patch(patch).expect("parse");
        assert_eq!(files.len(), 3);
        assert_eq!(files[0].old_path.as_deref(), Some("old.txt"));
        assert_eq!(files[0].new_path.as_deref(), Some("new name\tx.txt"));
        assert_eq!(
            files[0].hunks[0].added().collect::<Vec<_>>(),
            vec![(2, "B"), (3, "c")]
        );
        assert!(files[0].contains_new_line(3) && !files[0].contains_new_line(1));
        assert!(files[1].binary && files[1].hunks.is_empty());
        assert_eq!(
            (files[2].old_path.as_deref(), files[2].new_path.as_deref()),
            (Some("gone.txt"), None)
        );
    }

    #[test]
    fn numbers_lines_and_reads_modes() {
        let patch = "diff --git a/s b/s\nold mode 100644\nnew mode 100755\nindex 1..2\n--- a/s\n+++ b/s\n@@ -4,3 +4,3 @@\n a\n-b\n+B\n c\ndiff --git a/m b/m\nindex 1..2 160000\n--- a/m\n+++ b/m\n@@ -1 +1 @@\n-Subproject commit 1\n+Subproject commit 2\ndiff --git a/d b/d\n--- a/d\n+++ b/d\n@@ -3,2 +2,0 @@\n-x\n-y\n";
        let files = parse_patch(patch).expect("parse");
        assert_eq!(
            (files[0].old_mode.as_deref(), files[0].new_mode.as_deref()),
            (Some("100644"), Some("100755"))
        );
        assert_eq!(files[1].new_mode.as_deref(), Some("160000"));
        let h = &files[0].hunks[0];
        let nums: Vec<_> = h.numbered().map(|(n, _)| n).collect();
        assert_eq!(nums, [Some(4), None, Some(5), Some(6)]);
        assert_eq!((h.new_range(), h.changed_lines()), ((4, 6), 2));
        assert_eq!((h.new_line(5), h.new_line(7)), (Some("B"), None));
        assert_eq!(files[2].hunks[0].new_range(), (2, 2));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Random edits → real `git diff` → parse → rebuild == the new file.
        #[test]
        fn parsing_git_diff_rebuilds_the_new_file(
            old in prop::collection::vec("[a-c]{0,3}", 0..30),
            edits in prop::collection::vec((0usize..40, 0u8..3, "[a-d ]{0,3}"), 0..12),
            context in 0u8..4,
        ) {
            let mut new = old.clone();
            for (at, op, text) in edits {
                let i = if new.is_empty() { 0 } else { at % (new.len() + 1) };
                match op {
                    0 => new.insert(i.min(new.len()), text),
                    1 if i < new.len() => { new.remove(i); }
                    _ if i < new.len() => new[i] = text,
                    _ => new.push(text),
                }
            }
            let d = tempfile::tempdir().expect("tempdir");
            let p = d.path();
            git(p, &["init", "-q"]);
            let body = |v: &[String]| v.iter().map(|l| format!("{l}\n")).collect::<String>();
            std::fs::write(p.join("f.txt"), body(&old)).expect("write");
            git(p, &["add", "."]);
            git(p, &["commit", "-qm", "old", "--allow-empty"]);
            std::fs::write(p.join("f.txt"), body(&new)).expect("write");
            let patch = git(p, &["diff", "--no-color", "--no-ext-diff", &format!("-U{context}"), "--", "f.txt"]);
            let files = parse_patch(&patch).map_err(|e| TestCaseError::fail(e.0))?;
            if old == new {
                prop_assert!(files.is_empty());
            } else {
                prop_assert_eq!(files.len(), 1);
                let old_refs: Vec<&str> = old.iter().map(String::as_str).collect();
                let rebuilt = apply(&old_refs, &files[0]).map_err(|e| TestCaseError::fail(e.0))?;
                prop_assert_eq!(rebuilt, new.clone());
                for h in &files[0].hunks {
                    for (n, text) in h.added() {
                        prop_assert_eq!(new[(n - 1) as usize].as_str(), text, "anchor of an added line");
                    }
                }
            }
        }
    }
}
