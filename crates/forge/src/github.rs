//! GitHub (github.com or Enterprise Server) through the REST API.

use crate::gitlab::same_url;
use crate::http::{self, Api, AuthStyle, RetryPolicy, encode_segment, next_link, truncate};
use crate::{
    ChangeRequest, CloneCredentials, CommentError, CommitState, Forge, ForgeError, ForgeProject,
    ForgeUser, InlineComment, PostedComment, STATUS_CONTEXT, UserRef, WebhookStatus, check_lines,
    marker_fingerprint, render_inline_body,
};
use ai_review_domain::{CommitSha, PlatformType, RepoUrl, SecretString};
use async_trait::async_trait;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

/// Most pages [`GitHub`] follows in one listing.
const MAX_PAGES: u32 = 10_000;

/// A GitHub instance: `https://api.github.com`, or an Enterprise Server's
/// API root `https://HOST/api/v3`. The token (a fine-grained or classic
/// personal access token, or an installation token) goes in
/// `Authorization: Bearer`, with `Accept: application/vnd.github+json`,
/// `X-GitHub-Api-Version: 2022-11-28` and a `User-Agent`.
#[derive(Debug, Clone)]
pub struct GitHub {
    api: Api,
}

impl GitHub {
    /// A client for the API at `base_url`: empty, `https://github.com` or
    /// `https://api.github.com` mean github.com; anything else is taken as
    /// an API root as it is (Enterprise Server: `https://HOST/api/v3`).
    pub fn new(
        base_url: &str,
        token: SecretString,
        http: reqwest::Client,
    ) -> Result<Self, ForgeError> {
        ai_review_protocol::client::ensure_crypto_provider();
        let base = if base_url.trim().is_empty() {
            "https://api.github.com"
        } else {
            base_url
        };
        let u = http::parse_base_url(base)?;
        let root = match u.host_str() {
            Some("github.com" | "www.github.com") => "https://api.github.com".to_owned(),
            _ => http::trimmed(&u),
        };
        Ok(Self {
            api: Api::new(http, root, token, AuthStyle::GitHub),
        })
    }

    /// Replaces the retry policy.
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.api.set_retry(retry);
        self
    }

    /// The API root.
    pub fn api_root(&self) -> &str {
        self.api.root()
    }

    /// `/repos/{owner}/{repo}` from `owner/repo`.
    fn repo_path(project: &str) -> Result<String, ForgeError> {
        let p = project.trim().trim_matches('/');
        match p.split('/').collect::<Vec<_>>()[..] {
            [owner, repo] if !owner.is_empty() && !repo.is_empty() => Ok(format!(
                "/repos/{}/{}",
                encode_segment(owner),
                encode_segment(repo)
            )),
            _ => Err(ForgeError::InvalidArgument(format!(
                "GitHub projects are owner/repo, not {project:?}"
            ))),
        }
    }

    /// Every item of a listing, following `Link: rel="next"`. Next links
    /// must stay under the API root: the token is sent with them.
    async fn all_pages<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
    ) -> Result<Vec<T>, ForgeError> {
        let mut out = Vec::new();
        let mut url = self.api.url(path);
        for _ in 0..MAX_PAGES {
            let answer = self.api.send(Method::GET, &url, None).await?;
            let items: Vec<T> = answer.json(path)?;
            out.extend(items);
            match answer.header("link").and_then(next_link) {
                None => return Ok(out),
                Some(next) => {
                    if !next.starts_with(&format!("{}/", self.api.root())) {
                        return Err(ForgeError::Malformed(format!(
                            "a next-page link leaves the API root: {}",
                            truncate(&next, 200)
                        )));
                    }
                    url = next;
                }
            }
        }
        Err(ForgeError::Malformed(format!(
            "more than {MAX_PAGES} pages at {path}"
        )))
    }

    async fn create_review(
        &self,
        repo: &str,
        change: &ChangeRequest,
        comments: &[&InlineComment],
    ) -> Result<u64, ForgeError> {
        let body_comments: Vec<Value> = comments
            .iter()
            .map(|c| {
                let mut v = json!({
                    "path": c.path,
                    "line": c.end_line,
                    "side": "RIGHT",
                    "body": render_inline_body(c, "suggestion"),
                });
                if c.end_line > c.line {
                    v["start_line"] = json!(c.line);
                    v["start_side"] = json!("RIGHT");
                }
                v
            })
            .collect();
        let n = comments.len();
        let req = json!({
            "commit_id": change.head_sha.as_str(),
            "body": format!("ai-review: {n} inline comment{}", if n == 1 { "" } else { "s" }),
            "event": "COMMENT",
            "comments": body_comments,
        });
        let path = format!("{repo}/pulls/{}/reviews", change.number);
        let review: IdOnly = self.api.send_json(Method::POST, &path, &req).await?;
        Ok(review.id)
    }

    /// Comment ids of a review, by fingerprint marker; empty when the
    /// lookup fails (the comments are posted either way).
    async fn review_comment_ids(
        &self,
        repo: &str,
        number: u64,
        review_id: u64,
    ) -> Vec<(String, String)> {
        let path = format!("{repo}/pulls/{number}/reviews/{review_id}/comments?per_page=100");
        match self.all_pages::<ReviewComment>(&path).await {
            Ok(list) => list
                .into_iter()
                .filter_map(|c| Some((marker_fingerprint(&c.body)?.to_owned(), c.id.to_string())))
                .collect(),
            Err(e) => {
                tracing::warn!(review_id, error = %e, "cannot look up the review's comment ids");
                Vec::new()
            }
        }
    }

    async fn post_review(
        &self,
        repo: &str,
        change: &ChangeRequest,
        comments: &[&InlineComment],
    ) -> Result<Vec<PostedComment>, ForgeError> {
        let review_id = self.create_review(repo, change, comments).await?;
        let mut ids = self
            .review_comment_ids(repo, change.number, review_id)
            .await;
        Ok(comments
            .iter()
            .map(|c| {
                let wanted = crate::fingerprint_marker(&c.fingerprint);
                let id = ids
                    .iter()
                    .position(|(fp, _)| crate::fingerprint_marker(fp) == wanted)
                    .map(|i| ids.remove(i).1);
                PostedComment {
                    fingerprint: c.fingerprint.clone(),
                    id,
                }
            })
            .collect())
    }
}

#[derive(Deserialize)]
struct IdOnly {
    id: u64,
}

#[derive(Deserialize)]
struct ReviewComment {
    id: u64,
    body: String,
}

#[derive(Deserialize)]
struct Repo {
    id: u64,
    full_name: String,
    name: String,
    html_url: String,
    clone_url: String,
    #[serde(default)]
    default_branch: Option<String>,
}

#[derive(Deserialize)]
struct User {
    id: u64,
    login: String,
}

#[derive(Deserialize)]
struct Login {
    login: String,
}

#[derive(Deserialize)]
struct Branch {
    #[serde(rename = "ref")]
    name: String,
    sha: String,
}

#[derive(Deserialize)]
struct Pull {
    number: u64,
    title: String,
    user: User,
    head: Branch,
    base: Branch,
    #[serde(default)]
    draft: bool,
    html_url: String,
    #[serde(default)]
    assignees: Vec<Login>,
    #[serde(default)]
    requested_reviewers: Vec<Login>,
}

#[derive(Deserialize)]
struct HookConfig {
    #[serde(default)]
    url: Option<String>,
}

#[derive(Deserialize)]
struct LastResponse {
    #[serde(default)]
    code: Option<u16>,
    #[serde(default)]
    status: Option<String>,
}

#[derive(Deserialize)]
struct Hook {
    #[serde(default = "yes")]
    active: bool,
    #[serde(default)]
    events: Vec<String>,
    config: HookConfig,
    #[serde(default)]
    last_response: Option<LastResponse>,
}

fn yes() -> bool {
    true
}

fn parse_sha(s: &str) -> Result<CommitSha, ForgeError> {
    CommitSha::parse(s).map_err(|e| ForgeError::Malformed(e.to_string()))
}

fn github_state(state: CommitState) -> &'static str {
    match state {
        CommitState::Pending | CommitState::Running => "pending",
        CommitState::Success => "success",
        CommitState::Failure => "failure",
        CommitState::Error | CommitState::Canceled => "error",
    }
}

fn hook_status(h: &Hook) -> WebhookStatus {
    let wants_prs = h.events.is_empty()
        || h.events
            .iter()
            .any(|e| matches!(e.as_str(), "pull_request" | "*"));
    if !h.active || !wants_prs {
        return WebhookStatus::Inactive;
    }
    match &h.last_response {
        Some(LastResponse { code: Some(c), .. }) if *c >= 400 => WebhookStatus::Error,
        Some(LastResponse {
            status: Some(s), ..
        }) if !matches!(s.as_str(), "active" | "unused" | "") => WebhookStatus::Error,
        _ => WebhookStatus::Active,
    }
}

#[async_trait]
impl Forge for GitHub {
    fn platform(&self) -> PlatformType {
        PlatformType::Github
    }

    fn user_ref(&self, user: &ForgeUser) -> UserRef {
        UserRef(user.username.clone())
    }

    async fn list_projects(&self) -> Result<Vec<ForgeProject>, ForgeError> {
        let repos: Vec<Repo> = self.all_pages("/user/repos?per_page=100&page=1").await?;
        repos
            .into_iter()
            .map(|r| {
                Ok(ForgeProject {
                    external_id: r.id.to_string(),
                    clone_url: RepoUrl::parse(&r.clone_url)
                        .map_err(|e| ForgeError::Malformed(e.to_string()))?,
                    path: r.full_name,
                    name: r.name,
                    web_url: r.html_url,
                    default_branch: r.default_branch.filter(|b| !b.is_empty()),
                })
            })
            .collect()
    }

    async fn get_change(&self, project: &str, number: u64) -> Result<ChangeRequest, ForgeError> {
        let path = format!("{}/pulls/{number}", Self::repo_path(project)?);
        let pr: Pull = self.api.get(&path).await?;
        let base = parse_sha(&pr.base.sha)?;
        Ok(ChangeRequest {
            number: pr.number,
            title: pr.title,
            author: ForgeUser {
                id: pr.user.id.to_string(),
                username: pr.user.login,
            },
            source_branch: pr.head.name,
            target_branch: pr.base.name,
            start_sha: base.clone(),
            base_sha: base,
            head_sha: parse_sha(&pr.head.sha)?,
            draft: pr.draft,
            web_url: pr.html_url,
            assignee_ids: pr.assignees.into_iter().map(|u| UserRef(u.login)).collect(),
            reviewer_ids: pr
                .requested_reviewers
                .into_iter()
                .map(|u| UserRef(u.login))
                .collect(),
        })
    }

    async fn upsert_summary(
        &self,
        project: &str,
        number: u64,
        existing_id: Option<&str>,
        body_markdown: &str,
    ) -> Result<String, ForgeError> {
        let repo = Self::repo_path(project)?;
        let body = json!({ "body": body_markdown });
        if let Some(id) = existing_id {
            let path = format!("{repo}/issues/comments/{}", encode_segment(id));
            match self
                .api
                .send_json::<IdOnly>(Method::PATCH, &path, &body)
                .await
            {
                Ok(c) => return Ok(c.id.to_string()),
                Err(ForgeError::NotFound { .. }) => {
                    tracing::debug!(comment = id, "summary comment is gone, creating a new one");
                }
                Err(e) => return Err(e),
            }
        }
        let path = format!("{repo}/issues/{number}/comments");
        let c: IdOnly = self.api.send_json(Method::POST, &path, &body).await?;
        Ok(c.id.to_string())
    }

    async fn post_inline_comments(
        &self,
        project: &str,
        change: &ChangeRequest,
        comments: &[InlineComment],
    ) -> Result<Vec<Result<PostedComment, CommentError>>, ForgeError> {
        let repo = Self::repo_path(project)?;
        let mut out: Vec<Option<Result<PostedComment, CommentError>>> = vec![None; comments.len()];
        let mut valid = Vec::new();
        for (i, c) in comments.iter().enumerate() {
            match check_lines(c) {
                Ok(()) => valid.push(i),
                Err(error) => {
                    out[i] = Some(Err(CommentError {
                        fingerprint: c.fingerprint.clone(),
                        error,
                    }))
                }
            }
        }
        if valid.is_empty() {
            return Ok(out.into_iter().flatten().collect());
        }
        let batch: Vec<&InlineComment> = valid.iter().map(|&i| &comments[i]).collect();
        match self.post_review(&repo, change, &batch).await {
            Ok(posted) => {
                for (&i, p) in valid.iter().zip(posted) {
                    out[i] = Some(Ok(p));
                }
            }
            // GitHub refuses a whole review for one unplaceable comment:
            // post them one per review so the others still land.
            Err(ForgeError::Unprocessable { .. }) if batch.len() > 1 => {
                let mut posted_any = false;
                let mut fatal: Option<ForgeError> = None;
                for &i in &valid {
                    let c = &comments[i];
                    let result = match &fatal {
                        Some(e) => Err(e.clone()),
                        None => self
                            .post_review(&repo, change, &[c])
                            .await
                            .map(|mut p| p.remove(0)),
                    };
                    out[i] = Some(match result {
                        Ok(p) => {
                            posted_any = true;
                            Ok(p)
                        }
                        Err(error) => {
                            if !matches!(error, ForgeError::Unprocessable { .. }) {
                                if !posted_any && fatal.is_none() {
                                    return Err(error);
                                }
                                fatal = Some(error.clone());
                            }
                            Err(CommentError {
                                fingerprint: c.fingerprint.clone(),
                                error,
                            })
                        }
                    });
                }
            }
            Err(e @ ForgeError::Unprocessable { .. }) => {
                out[valid[0]] = Some(Err(CommentError {
                    fingerprint: batch[0].fingerprint.clone(),
                    error: e,
                }));
            }
            Err(e) => return Err(e),
        }
        Ok(out.into_iter().flatten().collect())
    }

    async fn set_status(
        &self,
        project: &str,
        sha: &CommitSha,
        state: CommitState,
        description: &str,
        target_url: Option<&str>,
    ) -> Result<(), ForgeError> {
        let path = format!("{}/statuses/{}", Self::repo_path(project)?, sha.as_str());
        // GitHub refuses descriptions over 140 characters.
        let mut body = json!({
            "state": github_state(state),
            "context": STATUS_CONTEXT,
            "description": truncate(description, 139),
        });
        if let Some(u) = target_url {
            body["target_url"] = Value::String(u.to_owned());
        }
        self.api
            .send_json::<Value>(Method::POST, &path, &body)
            .await?;
        Ok(())
    }

    async fn assign(
        &self,
        project: &str,
        number: u64,
        assignees: &[UserRef],
        reviewers: &[UserRef],
    ) -> Result<(), ForgeError> {
        let repo = Self::repo_path(project)?;
        if !assignees.is_empty() {
            let logins: Vec<&str> = assignees.iter().map(UserRef::as_str).collect();
            self.api
                .send_json::<Value>(
                    Method::POST,
                    &format!("{repo}/issues/{number}/assignees"),
                    &json!({ "assignees": logins }),
                )
                .await?;
        }
        if !reviewers.is_empty() {
            let logins: Vec<&str> = reviewers.iter().map(UserRef::as_str).collect();
            self.api
                .send_json::<Value>(
                    Method::POST,
                    &format!("{repo}/pulls/{number}/requested_reviewers"),
                    &json!({ "reviewers": logins }),
                )
                .await?;
        }
        Ok(())
    }

    async fn webhook_status(
        &self,
        project: &str,
        webhook_url: &str,
    ) -> Result<WebhookStatus, ForgeError> {
        let path = format!("{}/hooks?per_page=100", Self::repo_path(project)?);
        let hooks: Vec<Hook> = match self.all_pages(&path).await {
            Ok(h) => h,
            // Hooks need admin rights; GitHub hides them from others
            // behind 404 as well as 403.
            Err(ForgeError::Forbidden { .. } | ForgeError::NotFound { .. }) => {
                return Ok(WebhookStatus::Unknown);
            }
            Err(e) => return Err(e),
        };
        Ok(hooks
            .iter()
            .find(|h| {
                h.config
                    .url
                    .as_deref()
                    .is_some_and(|u| same_url(u, webhook_url))
            })
            .map(hook_status)
            .unwrap_or(WebhookStatus::NotConfigured))
    }

    fn clone_credentials(&self) -> CloneCredentials {
        CloneCredentials {
            username: "x-access-token".into(),
            password: self.api.token().clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_root_is_normalised() {
        let http = crate::http_client(std::time::Duration::from_secs(1)).expect("client");
        let t = || SecretString::new("t");
        for (base, root) in [
            ("", "https://api.github.com"),
            ("https://github.com", "https://api.github.com"),
            ("https://api.github.com/", "https://api.github.com"),
            (
                "https://github.example.com/api/v3/",
                "https://github.example.com/api/v3",
            ),
        ] {
            let gh = GitHub::new(base, t(), http.clone()).expect("github");
            assert_eq!(gh.api_root(), root, "{base}");
        }
    }

    #[test]
    fn repos_are_owner_slash_name() {
        assert_eq!(
            GitHub::repo_path("acme/app").expect("path"),
            "/repos/acme/app"
        );
        for bad in ["acme", "a/b/c", "/app", ""] {
            assert!(GitHub::repo_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn states_map_to_github_names() {
        assert_eq!(github_state(CommitState::Pending), "pending");
        assert_eq!(github_state(CommitState::Running), "pending");
        assert_eq!(github_state(CommitState::Success), "success");
        assert_eq!(github_state(CommitState::Failure), "failure");
        assert_eq!(github_state(CommitState::Error), "error");
        assert_eq!(github_state(CommitState::Canceled), "error");
    }

    #[test]
    fn hook_states() {
        let hook = |v: Value| serde_json::from_value::<Hook>(v).expect("hook");
        let url = json!({"url": "https://x/hook"});
        assert_eq!(
            hook_status(&hook(
                json!({"active": true, "events": ["pull_request"], "config": url, "last_response": {"code": 200, "status": "active"}})
            )),
            WebhookStatus::Active
        );
        assert_eq!(
            hook_status(&hook(
                json!({"active": true, "events": ["*"], "config": url, "last_response": {"code": null, "status": "unused"}})
            )),
            WebhookStatus::Active
        );
        assert_eq!(
            hook_status(&hook(
                json!({"active": false, "events": ["pull_request"], "config": url})
            )),
            WebhookStatus::Inactive
        );
        assert_eq!(
            hook_status(&hook(
                json!({"active": true, "events": ["push"], "config": url})
            )),
            WebhookStatus::Inactive
        );
        assert_eq!(
            hook_status(&hook(
                json!({"active": true, "events": ["pull_request"], "config": url, "last_response": {"code": 502, "status": "misconfigured"}})
            )),
            WebhookStatus::Error
        );
    }
}
