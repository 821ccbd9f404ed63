//! The diff of a change as the forges see it, and the checks each forge
//! applies to a comment anchored on it.

/// What a diff line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Context,
    Added,
    Removed,
}

/// One line of a hunk with its numbers on each side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Line {
    pub kind: Kind,
    pub old: Option<u64>,
    pub new: Option<u64>,
}

/// One file of the diff. For an added or deleted file both paths are the
/// same, as GitLab and GitHub report them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileDiff {
    pub old_path: String,
    pub new_path: String,
    pub hunks: Vec<Vec<Line>>,
}

/// Pairs the `--name-status -z` listing with the patch of the same diff
/// (git lists files in the same order for both with the same options).
pub(crate) fn parse(name_status_z: &str, patch: &str) -> Vec<FileDiff> {
    let mut files = Vec::new();
    let mut fields = name_status_z.split('\0').filter(|f| !f.is_empty());
    while let Some(status) = fields.next() {
        let renamed = status.starts_with('R') || status.starts_with('C');
        let Some(first) = fields.next() else { break };
        let second = if renamed { fields.next() } else { None };
        let old_path = first.to_owned();
        let new_path = second.unwrap_or(first).to_owned();
        files.push(FileDiff {
            old_path,
            new_path,
            hunks: Vec::new(),
        });
    }
    let mut index: Option<usize> = None;
    let mut old_no = 0;
    let mut new_no = 0;
    for line in patch.lines() {
        if line.starts_with("diff --git ") {
            index = Some(index.map_or(0, |i| i + 1));
            continue;
        }
        let Some(file) = index.and_then(|i| files.get_mut(i)) else {
            continue;
        };
        if let Some(header) = line.strip_prefix("@@ ") {
            if let Some((old, new)) = hunk_start(header) {
                old_no = old;
                new_no = new;
                file.hunks.push(Vec::new());
            }
            continue;
        }
        let Some(hunk) = file.hunks.last_mut() else {
            continue;
        };
        let parsed = match line.as_bytes().first() {
            Some(b' ') => Some(Line {
                kind: Kind::Context,
                old: Some(old_no),
                new: Some(new_no),
            }),
            Some(b'+') => Some(Line {
                kind: Kind::Added,
                old: None,
                new: Some(new_no),
            }),
            Some(b'-') => Some(Line {
                kind: Kind::Removed,
                old: Some(old_no),
                new: None,
            }),
            _ => None,
        };
        if let Some(l) = parsed {
            if l.old.is_some() {
                old_no += 1;
            }
            if l.new.is_some() {
                new_no += 1;
            }
            hunk.push(l);
        }
    }
    files
}

/// `-a,b +c,d @@ …` → `(a, c)`.
fn hunk_start(header: &str) -> Option<(u64, u64)> {
    let mut parts = header.split(' ');
    let old = parts.next()?.strip_prefix('-')?;
    let new = parts.next()?.strip_prefix('+')?;
    let first = |s: &str| s.split(',').next().and_then(|n| n.parse::<u64>().ok());
    Some((first(old)?, first(new)?))
}

/// A GitLab `position` of `position_type: text`, the fields that anchor it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GitLabPosition {
    pub old_path: Option<String>,
    pub new_path: Option<String>,
    pub old_line: Option<u64>,
    pub new_line: Option<u64>,
}

/// GitLab's rule: an added line is addressed by `new_line` alone, a removed
/// line by `old_line` alone, an unchanged line by both (numbers of the same
/// line); the paths name one file of the diff (`old_path` is the file's old
/// path, equal to `new_path` unless it was renamed).
pub(crate) fn check_gitlab(files: &[FileDiff], p: &GitLabPosition) -> Result<(), String> {
    let new_path = p
        .new_path
        .as_deref()
        .ok_or("position.new_path is missing")?;
    let old_path = p
        .old_path
        .as_deref()
        .ok_or("position.old_path is missing")?;
    let file = files
        .iter()
        .find(|f| f.new_path == new_path)
        .ok_or_else(|| format!("{new_path} is not part of the diff"))?;
    if file.old_path != old_path {
        return Err(format!(
            "old_path {old_path} does not match the diff's old path {}",
            file.old_path
        ));
    }
    let found = file.hunks.iter().flatten().find(|l| match l.kind {
        Kind::Added => p.old_line.is_none() && p.new_line == l.new,
        Kind::Removed => p.new_line.is_none() && p.old_line == l.old,
        Kind::Context => p.old_line == l.old && p.new_line == l.new,
    });
    match (found, p.old_line, p.new_line) {
        (Some(_), _, _) => Ok(()),
        (None, None, None) => Err("neither new_line nor old_line is given".into()),
        (None, old, new) => Err(format!(
            "no diff line of {new_path} has old_line {old:?} and new_line {new:?}"
        )),
    }
}

/// A side of a GitHub review comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Left,
    Right,
}

impl Side {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "LEFT" => Some(Side::Left),
            "RIGHT" => Some(Side::Right),
            _ => None,
        }
    }

    fn number(self, l: &Line) -> Option<u64> {
        match self {
            Side::Left => l.old,
            Side::Right => l.new,
        }
    }
}

/// GitHub's rule for a review comment: `line` is a line of a hunk on
/// `side` (RIGHT: added or context, LEFT: removed or context); a multi-line
/// comment's `start_line` (on `start_side`, by default `side`) precedes it
/// in the same hunk.
pub(crate) fn check_github(
    files: &[FileDiff],
    path: &str,
    line: u64,
    side: Side,
    start: Option<(u64, Side)>,
) -> Result<(), String> {
    let file = files
        .iter()
        .find(|f| f.new_path == path)
        .ok_or_else(|| format!("{path} is not part of the diff"))?;
    for hunk in &file.hunks {
        let Some(end) = hunk.iter().position(|l| side.number(l) == Some(line)) else {
            continue;
        };
        let Some((start_line, start_side)) = start else {
            return Ok(());
        };
        return match hunk
            .iter()
            .position(|l| start_side.number(l) == Some(start_line))
        {
            Some(begin) if begin < end => Ok(()),
            Some(_) => Err(format!(
                "start_line {start_line} must precede the end line {line}"
            )),
            None => Err(format!(
                "start_line {start_line} is not in the hunk of line {line}"
            )),
        };
    }
    Err(format!(
        "line {line} of {path} is not in the diff on {side:?}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: &str = "M\0src/a.rs\0R087\0old.txt\0new.txt\0A\0bin.png\0";
    const PATCH: &str = "diff --git a/src/a.rs b/src/a.rs
index 1..2 100644
--- a/src/a.rs
+++ b/src/a.rs
@@ -1,4 +1,4 @@ fn main
 one
-two
+TWO
 three
 four
@@ -10,2 +10,3 @@
 ten
+ten and a half
 eleven
diff --git a/old.txt b/new.txt
similarity index 87%
rename from old.txt
rename to new.txt
--- a/old.txt
+++ b/new.txt
@@ -3 +3 @@
-x
\\ No newline at end of file
+y
diff --git a/bin.png b/bin.png
new file mode 100644
Binary files /dev/null and b/bin.png differ
";

    fn files() -> Vec<FileDiff> {
        parse(NAMES, PATCH)
    }

    #[test]
    fn parses_files_hunks_and_line_numbers() {
        let f = files();
        assert_eq!(f.len(), 3);
        assert_eq!(
            (f[1].old_path.as_str(), f[1].new_path.as_str()),
            ("old.txt", "new.txt")
        );
        assert_eq!(f[2].old_path, "bin.png");
        assert!(f[2].hunks.is_empty());
        assert_eq!(f[0].hunks.len(), 2);
        assert_eq!(
            f[0].hunks[0][2],
            Line {
                kind: Kind::Added,
                old: None,
                new: Some(2)
            }
        );
        assert_eq!(
            f[0].hunks[0][3],
            Line {
                kind: Kind::Context,
                old: Some(3),
                new: Some(3)
            }
        );
        assert_eq!(f[0].hunks[1][1].new, Some(11));
        assert_eq!(
            f[1].hunks[0].len(),
            2,
            "the no-newline marker is not a line"
        );
    }

    fn pos(old: Option<u64>, new: Option<u64>) -> GitLabPosition {
        GitLabPosition {
            old_path: Some("src/a.rs".into()),
            new_path: Some("src/a.rs".into()),
            old_line: old,
            new_line: new,
        }
    }

    #[test]
    fn gitlab_positions_follow_its_line_rules() {
        let f = files();
        assert!(check_gitlab(&f, &pos(None, Some(2))).is_ok(), "added");
        assert!(check_gitlab(&f, &pos(Some(2), None)).is_ok(), "removed");
        assert!(check_gitlab(&f, &pos(Some(3), Some(3))).is_ok(), "context");
        assert!(
            check_gitlab(&f, &pos(Some(1), Some(2))).is_err(),
            "added with old_line"
        );
        assert!(
            check_gitlab(&f, &pos(None, Some(3))).is_err(),
            "context needs both"
        );
        assert!(
            check_gitlab(&f, &pos(None, Some(7))).is_err(),
            "outside hunks"
        );
        assert!(check_gitlab(&f, &pos(None, None)).is_err());
        let renamed = GitLabPosition {
            old_path: Some("new.txt".into()),
            new_path: Some("new.txt".into()),
            old_line: None,
            new_line: Some(3),
        };
        assert!(check_gitlab(&f, &renamed).is_err(), "old_path of a rename");
        let renamed = GitLabPosition {
            old_path: Some("old.txt".into()),
            ..renamed
        };
        assert!(check_gitlab(&f, &renamed).is_ok());
    }

    #[test]
    fn github_comments_follow_its_side_and_range_rules() {
        let f = files();
        assert!(check_github(&f, "src/a.rs", 2, Side::Right, None).is_ok());
        assert!(check_github(&f, "src/a.rs", 2, Side::Left, None).is_ok());
        assert!(
            check_github(&f, "src/a.rs", 11, Side::Left, None).is_ok(),
            "context"
        );
        assert!(check_github(&f, "src/a.rs", 12, Side::Left, None).is_err());
        assert!(check_github(&f, "src/a.rs", 12, Side::Right, None).is_ok());
        assert!(check_github(&f, "src/a.rs", 4, Side::Right, Some((1, Side::Right))).is_ok());
        assert!(
            check_github(&f, "src/a.rs", 4, Side::Right, Some((4, Side::Right))).is_err(),
            "a range must not be empty"
        );
        assert!(
            check_github(&f, "src/a.rs", 11, Side::Right, Some((1, Side::Right))).is_err(),
            "across hunks"
        );
        assert!(check_github(&f, "src/a.rs", 4, Side::Right, Some((2, Side::Left))).is_ok());
        assert!(check_github(&f, "nope.rs", 1, Side::Right, None).is_err());
        assert!(check_github(&f, "bin.png", 1, Side::Right, None).is_err());
    }
}
