//! The forge interface: everything the server asks of GitLab or GitHub,
//! behind one object-safe trait, so the orchestrator never names a
//! platform and a third one (Gitea/Forgejo) is one more implementation.
//!
//! * [`Forge`]: the contract (read it before adding an implementation).
//! * [`GitLab`] (REST v4) and [`GitHub`] (REST, github.com or Enterprise
//!   Server): the implementations.
//! * [`forge_for`]: the factory from a platform config's type, base URL and
//!   token.
//! * [`ForgeError`]: typed failures with [`ForgeError::is_retryable`];
//!   [`RetryPolicy`]: what each implementation retries by itself.
//!
//! Tokens live in [`SecretString`]s, travel only in request headers marked
//! sensitive, and appear in no `Debug`, `Display`, error or log line.

mod error;
mod github;
mod gitlab;
mod http;

pub use error::ForgeError;
pub use github::GitHub;
pub use gitlab::GitLab;
pub use http::RetryPolicy;

use ai_review_domain::{CommitSha, PlatformType, RepoUrl, SecretString};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The name under which commit statuses are published (GitHub `context`,
/// GitLab `name`).
pub const STATUS_CONTEXT: &str = "ai-review";

/// A repository the token can see, as the forge describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ForgeProject {
    /// The forge's stable id (GitLab project id, GitHub repository id),
    /// which survives renames.
    pub external_id: String,
    /// `group/sub/name` (GitLab) or `owner/name` (GitHub): what the other
    /// [`Forge`] operations take as `project`.
    pub path: String,
    /// Display name.
    pub name: String,
    /// The project's page.
    pub web_url: String,
    /// The http(s) clone URL (use [`Forge::clone_credentials`] with it).
    pub clone_url: RepoUrl,
    /// The default branch; `None` for an empty repository.
    pub default_branch: Option<String>,
}

/// A user as the forge names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ForgeUser {
    /// Numeric id, as text.
    pub id: String,
    /// Username (GitLab) or login (GitHub).
    pub username: String,
}

/// Who to assign or ask for review, in the form the forge's assignment API
/// takes: a GitLab numeric user id, or a GitHub login. Obtain one from a
/// [`ForgeUser`] with [`Forge::user_ref`], from
/// [`ChangeRequest::assignee_ids`]/[`ChangeRequest::reviewer_ids`], or from
/// a project's configured default reviewers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserRef(pub String);

impl UserRef {
    /// Wraps an id or login.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The id or login.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A merge request (GitLab) or pull request (GitHub).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeRequest {
    /// GitLab `iid`, GitHub `number`: the per-project number.
    pub number: u64,
    /// Title.
    pub title: String,
    /// Who opened it.
    pub author: ForgeUser,
    /// Branch with the changes.
    pub source_branch: String,
    /// Branch it merges into.
    pub target_branch: String,
    /// The commit the diff is computed against (GitLab
    /// `diff_refs.base_sha`, GitHub `base.sha`).
    pub base_sha: CommitSha,
    /// GitLab `diff_refs.start_sha` (the target branch tip when the diff
    /// was computed); GitHub has no such notion and repeats `base_sha`.
    /// Inline comment positions need it on GitLab.
    pub start_sha: CommitSha,
    /// The latest commit of the change.
    pub head_sha: CommitSha,
    /// Draft (work in progress).
    pub draft: bool,
    /// The change's page.
    pub web_url: String,
    /// Current assignees (GitLab ids, GitHub logins).
    pub assignee_ids: Vec<UserRef>,
    /// Current requested reviewers (GitLab ids, GitHub logins).
    pub reviewer_ids: Vec<UserRef>,
}

/// A comment on lines of the new side of a change's diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InlineComment {
    /// File path at the head revision.
    pub path: String,
    /// Path at the base revision, for a renamed file (else the same as
    /// `path` is assumed).
    pub old_path: Option<String>,
    /// First new-side line (1-based); must be a line of the diff.
    pub line: u32,
    /// Last new-side line (equal to `line` for one line); must be a line
    /// of the same hunk. The comment is anchored here.
    pub end_line: u32,
    /// The old-side number of `end_line` when that line is an unchanged
    /// context line; `None` for an added line. GitLab addresses context
    /// lines by both numbers and refuses them without it; GitHub ignores
    /// it.
    pub end_old_line: Option<u32>,
    /// The comment (Markdown).
    pub body: String,
    /// Replacement for lines `line..=end_line`, rendered as the forge's
    /// one-click suggestion block.
    pub suggestion: Option<String>,
    /// The finding's stable fingerprint; embedded in the posted comment as
    /// an invisible marker (`<!-- ai-review:fingerprint=… -->`) so later
    /// rounds can recognise their own comments.
    pub fingerprint: String,
}

/// An inline comment the forge accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostedComment {
    /// The comment's fingerprint.
    pub fingerprint: String,
    /// The forge's id for it: the GitLab discussion id, or the GitHub
    /// review comment id. `None` when GitHub accepted the review but the
    /// follow-up lookup of its comment ids failed.
    pub id: Option<String>,
}

/// An inline comment the forge did not take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("inline comment {fingerprint} was not posted: {error}")]
pub struct CommentError {
    /// The comment's fingerprint.
    pub fingerprint: String,
    /// Why: typically [`ForgeError::Unprocessable`] for a line outside the
    /// diff.
    pub error: ForgeError,
}

/// The state of a commit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommitState {
    /// Queued, not started (GitLab `pending`, GitHub `pending`).
    Pending,
    /// Under review (GitLab `running`, GitHub `pending`).
    Running,
    /// Done, nothing blocking (`success`).
    Success,
    /// Done, blocking findings (GitLab `failed`, GitHub `failure`).
    Failure,
    /// The review itself failed (GitLab `failed`, GitHub `error`).
    Error,
    /// Cancelled, e.g. superseded by a newer push (GitLab `canceled`,
    /// GitHub `error`).
    Canceled,
}

/// Whether a project's webhook to this server is in place and healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookStatus {
    /// A hook to our URL exists, is enabled and its last delivery (if any)
    /// succeeded.
    Active,
    /// A hook to our URL exists but is switched off, or does not send
    /// merge/pull request events.
    Inactive,
    /// A hook to our URL exists but the forge disabled it or its last
    /// delivery failed.
    Error,
    /// The token may not list hooks (hooks need maintainer/admin rights),
    /// so nothing can be said.
    Unknown,
    /// No hook points at our URL.
    NotConfigured,
}

/// HTTP basic credentials for cloning over http(s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloneCredentials {
    /// `oauth2` (GitLab) or `x-access-token` (GitHub).
    pub username: String,
    /// The access token.
    pub password: SecretString,
}

/// One code-hosting platform, seen from the server.
///
/// # Contract
///
/// Every implementation must behave as described here; the orchestrator
/// relies on nothing else, and never matches on the platform.
///
/// **Projects.** `project` arguments are a project's [`ForgeProject::path`]
/// (`group/name`, `owner/name`); a GitLab implementation also accepts the
/// numeric [`ForgeProject::external_id`]. Paths are encoded by the
/// implementation: callers pass them as they are.
///
/// **Changes.** `number` is the per-project number (GitLab `iid`, GitHub
/// `number`), never a global id.
///
/// **Errors.** Every operation returns a [`ForgeError`]; 401 is
/// [`ForgeError::Unauthorized`], 404 [`ForgeError::NotFound`], a refused
/// request (400/409/422) [`ForgeError::Unprocessable`] with the forge's own
/// message. Implementations retry rate limits, 5xx and transport errors
/// themselves per their [`RetryPolicy`] (honouring the forge's requested
/// wait up to the policy's cap); an error that reaches the caller has
/// already been retried, and [`ForgeError::is_retryable`] says whether
/// re-running the whole job later may help.
///
/// **Idempotence.** Reads, [`Forge::set_status`], [`Forge::assign`] and
/// updating an existing summary are idempotent. Creating comments is not:
/// a create is only retried when the request cannot have reached the forge
/// (connection refused) or the forge answered 429/5xx.
///
/// **Secrets.** The token is sent only in headers, never in URLs, and
/// never logged or formatted; [`Forge::clone_credentials`] is the one way
/// out, for the runner's git credentials.
///
/// **Object safety.** The trait is used as `Box<dyn Forge>`/`Arc<dyn
/// Forge>` and shared between tasks (`Send + Sync`).
#[async_trait]
pub trait Forge: Send + Sync + std::fmt::Debug {
    /// Which platform this is.
    fn platform(&self) -> PlatformType;

    /// The form of `user` that [`Forge::assign`] takes (GitLab: the id;
    /// GitHub: the login).
    fn user_ref(&self, user: &ForgeUser) -> UserRef;

    /// Every project the token is a member of (GitLab membership, GitHub
    /// repositories the user owns, collaborates on or reaches through an
    /// organisation), all pages followed.
    async fn list_projects(&self) -> Result<Vec<ForgeProject>, ForgeError>;

    /// One merge/pull request with the SHAs a review and its inline
    /// comments need. A GitLab merge request whose diff is still being
    /// computed is [`ForgeError::NotReady`].
    async fn get_change(&self, project: &str, number: u64) -> Result<ChangeRequest, ForgeError>;

    /// Creates the change's summary comment, or replaces the body of the
    /// one with `existing_id`; returns the id to pass next time. A summary
    /// that no longer exists (deleted by a user: 404) is created anew, so
    /// the change always ends up with exactly one current summary.
    async fn upsert_summary(
        &self,
        project: &str,
        number: u64,
        existing_id: Option<&str>,
        body_markdown: &str,
    ) -> Result<String, ForgeError>;

    /// Posts inline comments on the new side of `change`'s diff at
    /// `change.head_sha`. Returns one entry per comment, in input order:
    /// a comment the forge refuses (a line outside the diff, usually
    /// [`ForgeError::Unprocessable`]) is reported in its entry and does
    /// not stop the others. The call as a whole fails only when nothing
    /// was posted and the failure is not about a comment (a refused token,
    /// a missing change, the forge down after retries); a failure of that
    /// kind midway is reported in the entries of the comments not posted.
    /// An empty `comments` posts nothing.
    async fn post_inline_comments(
        &self,
        project: &str,
        change: &ChangeRequest,
        comments: &[InlineComment],
    ) -> Result<Vec<Result<PostedComment, CommentError>>, ForgeError>;

    /// Publishes the commit status [`STATUS_CONTEXT`] on `sha`, replacing
    /// the previous one of that name. `description` is shortened to what
    /// the forge accepts. Setting the state the status already has
    /// succeeds.
    async fn set_status(
        &self,
        project: &str,
        sha: &CommitSha,
        state: CommitState,
        description: &str,
        target_url: Option<&str>,
    ) -> Result<(), ForgeError>;

    /// Adds assignees and requested reviewers to a change, keeping the
    /// existing ones. Empty lists change nothing.
    async fn assign(
        &self,
        project: &str,
        number: u64,
        assignees: &[UserRef],
        reviewers: &[UserRef],
    ) -> Result<(), ForgeError>;

    /// The state of the project's webhook pointing at `webhook_url`
    /// (compared without trailing slashes). A token that may not list
    /// hooks (403) gives [`WebhookStatus::Unknown`], not an error.
    async fn webhook_status(
        &self,
        project: &str,
        webhook_url: &str,
    ) -> Result<WebhookStatus, ForgeError>;

    /// HTTP basic credentials for `git clone` of
    /// [`ForgeProject::clone_url`].
    fn clone_credentials(&self) -> CloneCredentials;
}

/// A forge of `platform` at `base_url` (empty: the public instance,
/// `https://gitlab.com` or `https://api.github.com`), authenticating with
/// `token`, sending through `http` (see [`http_client`]).
pub fn forge_for(
    platform: PlatformType,
    base_url: &str,
    token: SecretString,
    http: reqwest::Client,
) -> Result<Box<dyn Forge>, ForgeError> {
    Ok(match platform {
        PlatformType::Gitlab => Box::new(GitLab::new(base_url, token, http)?),
        PlatformType::Github => Box::new(GitHub::new(base_url, token, http)?),
    })
}

/// An HTTP client suitable for forges: the workspace's TLS provider
/// installed, `timeout` per request, pooled connections.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, ForgeError> {
    ai_review_protocol::client::ensure_crypto_provider();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .pool_idle_timeout(Duration::from_secs(90))
        .build()
        .map_err(|e| ForgeError::Transport(e.to_string()))
}

/// The marker embedded in inline comments.
pub(crate) fn fingerprint_marker(fingerprint: &str) -> String {
    // Only characters that cannot end the HTML comment or break Markdown.
    let clean: String = fingerprint
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '/' | '.' | '-'))
        .collect::<String>()
        .replace("--", "-");
    format!("<!-- ai-review:fingerprint={clean} -->")
}

/// The fingerprint in a posted comment's marker, if any.
pub(crate) fn marker_fingerprint(body: &str) -> Option<&str> {
    let start = body.rfind("<!-- ai-review:fingerprint=")? + "<!-- ai-review:fingerprint=".len();
    let rest = &body[start..];
    Some(rest[..rest.find(" -->")?].trim())
}

/// An inline comment's full body: the text, the suggestion block in the
/// forge's syntax (`fence_info` is `suggestion` or GitLab's
/// `suggestion:-N+0`), and the fingerprint marker.
pub(crate) fn render_inline_body(c: &InlineComment, fence_info: &str) -> String {
    let mut out = c.body.trim_end().to_owned();
    if let Some(s) = &c.suggestion {
        // A fence longer than any backtick run inside the suggestion.
        let longest = s.split(|ch| ch != '`').map(str::len).max().unwrap_or(0);
        let fence = "`".repeat(longest.max(2) + 1);
        out.push_str(&format!(
            "\n\n{fence}{fence_info}\n{}",
            s.trim_end_matches('\n')
        ));
        out.push_str(&format!("\n{fence}"));
    }
    out.push_str("\n\n");
    out.push_str(&fingerprint_marker(&c.fingerprint));
    out
}

/// Checks the lines of an inline comment before any call.
pub(crate) fn check_lines(c: &InlineComment) -> Result<(), ForgeError> {
    if c.line == 0 || c.end_line < c.line {
        return Err(ForgeError::InvalidArgument(format!(
            "inline comment on {} has lines {}..{}; lines are 1-based and end_line >= line",
            c.path, c.line, c.end_line
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comment(suggestion: Option<&str>) -> InlineComment {
        InlineComment {
            path: "src/a.rs".into(),
            old_path: None,
            line: 3,
            end_line: 4,
            end_old_line: None,
            body: "Use `?` here.\n".into(),
            suggestion: suggestion.map(str::to_owned),
            fingerprint: "abc123".into(),
        }
    }

    #[test]
    fn renders_suggestions_and_markers() {
        let body = render_inline_body(&comment(Some("let x = f()?;\n")), "suggestion");
        assert_eq!(
            body,
            "Use `?` here.\n\n```suggestion\nlet x = f()?;\n```\n\n<!-- ai-review:fingerprint=abc123 -->"
        );
        assert_eq!(marker_fingerprint(&body), Some("abc123"));
        let plain = render_inline_body(&comment(None), "suggestion");
        assert_eq!(
            plain,
            "Use `?` here.\n\n<!-- ai-review:fingerprint=abc123 -->"
        );
    }

    #[test]
    fn suggestion_fences_outgrow_backticks_inside() {
        let body = render_inline_body(&comment(Some("/// ```\n/// x\n/// ```")), "suggestion");
        assert!(
            body.contains("\n````suggestion\n/// ```\n/// x\n/// ```\n````\n"),
            "{body}"
        );
    }

    #[test]
    fn markers_cannot_be_broken_out_of() {
        assert_eq!(
            fingerprint_marker("a --> <b>"),
            "<!-- ai-review:fingerprint=a-b -->"
        );
        assert_eq!(marker_fingerprint("no marker"), None);
    }

    #[test]
    fn lines_are_checked() {
        let mut c = comment(None);
        assert!(check_lines(&c).is_ok());
        c.end_line = 2;
        assert!(matches!(
            check_lines(&c),
            Err(ForgeError::InvalidArgument(_))
        ));
        c.line = 0;
        c.end_line = 0;
        assert!(check_lines(&c).is_err());
    }

    #[test]
    fn factory_builds_each_platform() {
        let http = http_client(Duration::from_secs(5)).expect("client");
        let gl = forge_for(
            PlatformType::Gitlab,
            "",
            SecretString::new("t"),
            http.clone(),
        )
        .expect("gitlab");
        assert_eq!(gl.platform(), PlatformType::Gitlab);
        assert_eq!(gl.clone_credentials().username, "oauth2");
        let gh = forge_for(
            PlatformType::Github,
            "",
            SecretString::new("t"),
            http.clone(),
        )
        .expect("github");
        assert_eq!(gh.platform(), PlatformType::Github);
        assert_eq!(gh.clone_credentials().username, "x-access-token");
        assert!(
            forge_for(
                PlatformType::Github,
                "ftp://x",
                SecretString::new("t"),
                http
            )
            .is_err()
        );
        let user = ForgeUser {
            id: "7".into(),
            username: "ana".into(),
        };
        assert_eq!(gl.user_ref(&user).as_str(), "7");
        assert_eq!(gh.user_ref(&user).as_str(), "ana");
    }
}
