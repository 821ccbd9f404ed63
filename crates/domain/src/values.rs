use crate::{ParseError, ids::truncate_for_message};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;

/// A full git object name: 40 (SHA-1) or 64 (SHA-256) hex digits, stored
/// lowercase. Abbreviations are refused: a queued review must name exactly
/// one commit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CommitSha(String);

impl CommitSha {
    /// Validates a full commit SHA.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Self(s.to_ascii_lowercase()))
        } else {
            Err(ParseError::new(
                "commit SHA",
                format!(
                    "{:?} must be a full 40- or 64-digit hex object name (git rev-parse HEAD)",
                    truncate_for_message(s)
                ),
            ))
        }
    }

    /// The SHA as lowercase hex.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CommitSha {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        Self::parse(&s)
    }
}
impl From<CommitSha> for String {
    fn from(v: CommitSha) -> String {
        v.0
    }
}
impl fmt::Display for CommitSha {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// On the wire: 40 or 64 hex digits (answers are lowercase).
impl schemars::JsonSchema for CommitSha {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "CommitSha".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^([0-9a-fA-F]{40}|[0-9a-fA-F]{64})$"
        })
    }
}

/// The URL a runner clones from: `https://`, `http://`, `ssh://`, `git://`,
/// or scp-like `user@host:path`. Credentials inside the URL are refused:
/// they would end up in logs and process lists; runners receive clone
/// credentials separately.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RepoUrl(String);

impl RepoUrl {
    /// Validates a clone URL.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let err = |why: &str| {
            ParseError::new(
                "repository URL",
                format!("{:?} {why}", truncate_for_message(s)),
            )
        };
        if s.len() > 2048 || s.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(err(
                "is too long or contains whitespace or control characters",
            ));
        }
        if let Ok(u) = url::Url::parse(s) {
            if !matches!(u.scheme(), "https" | "http" | "ssh" | "git") {
                return Err(err("must use https, http, ssh or git (scheme not allowed)"));
            }
            if u.host_str().is_none_or(str::is_empty) {
                return Err(err("has no host"));
            }
            if u.password().is_some() || (!u.username().is_empty() && u.scheme() != "ssh") {
                return Err(err(
                    "must not embed credentials; configure them on the platform config instead",
                ));
            }
            return Ok(Self(s.to_owned()));
        }
        // scp-like syntax: [user@]host:path, as git accepts it.
        if s.contains("://") {
            return Err(err("is not a valid URL"));
        }
        if let Some((host_part, path)) = s.split_once(':') {
            let host = host_part.rsplit('@').next().unwrap_or_default();
            let host_ok = !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'));
            if host_ok && !path.is_empty() && !path.starts_with('-') && !s.starts_with('-') {
                return Ok(Self(s.to_owned()));
            }
        }
        Err(err(
            "is not a clone URL (https://host/group/repo.git or git@host:group/repo.git)",
        ))
    }

    /// The URL as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RepoUrl {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        Self::parse(&s)
    }
}
impl From<RepoUrl> for String {
    fn from(v: RepoUrl) -> String {
        v.0
    }
}
impl fmt::Display for RepoUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// On the wire: the URL as a string (`https://host/group/repo.git` or
/// `git@host:group/repo.git`; no credentials, no `file:`).
impl schemars::JsonSchema for RepoUrl {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "RepoUrl".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "minLength": 1, "maxLength": 2048})
    }
}

/// A routing tag (`gpu`, `linux`, `team-a`): 1-32 characters of
/// `a-z 0-9 . _ -`, lowercased.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Tag(String);

impl Tag {
    /// Validates (and lowercases) a tag.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let t = s.trim().to_ascii_lowercase();
        if (1..=32).contains(&t.len())
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            Ok(Self(t))
        } else {
            Err(ParseError::new(
                "tag",
                format!(
                    "{:?} must be 1-32 characters of a-z 0-9 . _ -",
                    truncate_for_message(s)
                ),
            ))
        }
    }

    /// The tag as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Tag {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        Self::parse(&s)
    }
}
impl From<Tag> for String {
    fn from(v: Tag) -> String {
        v.0
    }
}

/// A set of tags, ordered and without duplicates, at most 32 of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct TagSet(BTreeSet<Tag>);

impl TagSet {
    /// Most tags a runner or task may carry.
    pub const MAX: usize = 32;

    /// Parses a comma-separated list (`x-runner-tags: gpu, linux`); empty
    /// items are ignored.
    pub fn parse_comma_list(s: &str) -> Result<Self, ParseError> {
        Self::from_items(s.split(',').filter(|t| !t.trim().is_empty()))
    }

    /// Builds a set from individual tags.
    pub fn from_items<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Self, ParseError> {
        let set = items
            .into_iter()
            .map(Tag::parse)
            .collect::<Result<BTreeSet<_>, _>>()?;
        if set.len() > Self::MAX {
            return Err(ParseError::new(
                "tags",
                format!("{} tags given, at most {} allowed", set.len(), Self::MAX),
            ));
        }
        Ok(Self(set))
    }

    /// True when every tag of `self` is in `other`.
    pub fn is_subset(&self, other: &TagSet) -> bool {
        self.0.is_subset(&other.0)
    }

    /// The tags as strings, in order.
    pub fn to_vec(&self) -> Vec<String> {
        self.0.iter().map(|t| t.0.clone()).collect()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The tags, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Tag> {
        self.0.iter()
    }
}

impl TryFrom<Vec<String>> for TagSet {
    type Error = ParseError;
    fn try_from(v: Vec<String>) -> Result<Self, ParseError> {
        Self::from_items(v.iter().map(String::as_str))
    }
}
impl From<TagSet> for Vec<String> {
    fn from(v: TagSet) -> Vec<String> {
        v.to_vec()
    }
}

/// An email address used as a login name: trimmed, lowercased, one `@`
/// with text on both sides, at most 254 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    /// Validates an email address.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let e = s.trim().to_ascii_lowercase();
        let ok = e.len() <= 254
            && e.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && !domain.is_empty() && !domain.contains('@')
            })
            && !e.chars().any(|c| c.is_whitespace() || c.is_control());
        if ok {
            Ok(Self(e))
        } else {
            Err(ParseError::new(
                "email",
                format!("{:?} is not an email address", truncate_for_message(s)),
            ))
        }
    }

    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Email {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        Self::parse(&s)
    }
}
impl From<Email> for String {
    fn from(v: Email) -> String {
        v.0
    }
}
impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The fencing value of a claim: the task's attempt number, starting at 1
/// with the first claim and incremented by every later claim. Every task
/// call a runner makes presents it; a call with an older value is refused.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(transparent)]
pub struct Attempt(pub u32);

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn shas_must_be_full_hex() {
        let sha = "A".repeat(40);
        assert_eq!(CommitSha::parse(&sha).map(|s| s.0), Ok("a".repeat(40)));
        assert!(CommitSha::parse(&"a".repeat(64)).is_ok());
        for bad in ["abc1234", &"g".repeat(40), &"a".repeat(41), ""] {
            assert!(CommitSha::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn repo_urls_accept_clone_forms_and_refuse_credentials() {
        for good in [
            "https://gitlab.example.com/group/repo.git",
            "http://127.0.0.1:8080/repo.git",
            "ssh://git@host:22/repo.git",
            "git://host/repo",
            "git@github.com:org/repo.git",
        ] {
            assert!(RepoUrl::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "https://user:secret@host/repo.git",
            "https://oauth2@host/repo.git",
            "file:///etc",
            "ext::sh -c touch% /tmp/pwned",
            "-uhttps://x/y",
            "https://",
            "host repo",
        ] {
            assert!(RepoUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tag_sets_parse_comma_lists() {
        let t = TagSet::parse_comma_list(" GPU, linux,,").expect("tags");
        assert_eq!(t.to_vec(), vec!["gpu", "linux"]);
        let only_gpu = TagSet::parse_comma_list("gpu").expect("tags");
        assert!(only_gpu.is_subset(&t));
        assert!(!t.is_subset(&only_gpu));
        assert!(TagSet::parse_comma_list("a b").is_err());
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in any::<String>()) {
            let _ = CommitSha::parse(&s);
            let _ = RepoUrl::parse(&s);
            let _ = TagSet::parse_comma_list(&s);
            let _ = Email::parse(&s);
            let _ = crate::RunnerId::parse(&s);
            let _ = crate::Timestamp::parse(&s);
        }
    }
}
