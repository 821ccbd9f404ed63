//! GitLab (gitlab.com or self-managed) through REST API v4.

use crate::http::{self, Api, AuthStyle, RetryPolicy, encode_segment, truncate};
use crate::{
    ChangeRequest, CloneCredentials, CommentError, CommitState, Forge, ForgeError, ForgeProject,
    ForgeUser, InlineComment, PostedComment, STATUS_CONTEXT, UserRef, WebhookStatus, check_lines,
    render_inline_body,
};
use ai_review_domain::{CommitSha, PlatformType, RepoUrl, SecretString};
use async_trait::async_trait;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

/// Most pages [`GitLab`] follows in one listing: a guard against a forge
/// that never stops answering `X-Next-Page`.
const MAX_PAGES: u32 = 10_000;

/// A GitLab instance. The API root is `{base_url}/api/v4`; the token goes
/// in `PRIVATE-TOKEN` (personal, project or group access tokens, with the
/// `api` scope).
#[derive(Debug, Clone)]
pub struct GitLab {
    api: Api,
}

impl GitLab {
    /// A client for the instance at `base_url` (e.g.
    /// `https://gitlab.example.com`; a trailing `/api/v4` is accepted;
    /// empty means `https://gitlab.com`).
    pub fn new(
        base_url: &str,
        token: SecretString,
        http: reqwest::Client,
    ) -> Result<Self, ForgeError> {
        ai_review_protocol::client::ensure_crypto_provider();
        let base = if base_url.trim().is_empty() {
            "https://gitlab.com"
        } else {
            base_url
        };
        let u = http::parse_base_url(base)?;
        let root = http::trimmed(&u);
        let root = root.strip_suffix("/api/v4").unwrap_or(&root);
        Ok(Self {
            api: Api::new(http, format!("{root}/api/v4"), token, AuthStyle::GitLab),
        })
    }

    /// Replaces the retry policy.
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.api.set_retry(retry);
        self
    }

    /// The API root (`…/api/v4`).
    pub fn api_root(&self) -> &str {
        self.api.root()
    }

    fn project_segment(project: &str) -> Result<String, ForgeError> {
        let p = project.trim().trim_matches('/');
        if p.is_empty() {
            return Err(ForgeError::InvalidArgument(
                "empty GitLab project (expected an id or group/name)".into(),
            ));
        }
        Ok(encode_segment(p))
    }

    fn mr_path(project: &str, number: u64) -> Result<String, ForgeError> {
        Ok(format!(
            "/projects/{}/merge_requests/{number}",
            Self::project_segment(project)?
        ))
    }

    /// Every item of a paginated listing at `path`, following `X-Next-Page`; `X-Total-Pages` or a short page
    /// end it when the forge omits `X-Next-Page`.
    async fn all_pages<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        per_page: usize,
    ) -> Result<Vec<T>, ForgeError> {
        let mut out = Vec::new();
        let mut page = 1u32;
        loop {
            let sep = if path.contains('?') { '&' } else { '?' };
            let url = self
                .api
                .url(&format!("{path}{sep}per_page={per_page}&page={page}"));
            let answer = self.api.send(Method::GET, &url, None).await?;
            let items: Vec<T> = answer.json(path)?;
            let count = items.len();
            out.extend(items);
            let next = match answer.header("x-next-page").map(str::trim) {
                Some("") => None,
                Some(n) => Some(n.parse::<u32>().map_err(|_| {
                    ForgeError::Malformed(format!("X-Next-Page {n:?} is not a page number"))
                })?),
                None => match answer
                    .header("x-total-pages")
                    .and_then(|t| t.trim().parse::<u32>().ok())
                {
                    Some(total) => (page < total).then_some(page + 1),
                    None => (count == per_page).then_some(page + 1),
                },
            };
            match next {
                Some(n) if n > page && n <= MAX_PAGES => page = n,
                Some(n) if n <= page => {
                    return Err(ForgeError::Malformed(format!(
                        "X-Next-Page went from {page} to {n}"
                    )));
                }
                Some(_) => {
                    return Err(ForgeError::Malformed(format!(
                        "more than {MAX_PAGES} pages at {path}"
                    )));
                }
                None => return Ok(out),
            }
        }
    }

    async fn fetch_mr(&self, project: &str, number: u64) -> Result<MergeRequest, ForgeError> {
        self.api.get(&Self::mr_path(project, number)?).await
    }

    async fn create_note(
        &self,
        project: &str,
        number: u64,
        body: &str,
    ) -> Result<String, ForgeError> {
        let path = format!("{}/notes", Self::mr_path(project, number)?);
        let note: IdOnly = self
            .api
            .send_json(Method::POST, &path, &json!({ "body": body }))
            .await?;
        Ok(note.id.to_string())
    }

    async fn post_discussion(
        &self,
        project: &str,
        change: &ChangeRequest,
        c: &InlineComment,
    ) -> Result<PostedComment, ForgeError> {
        check_lines(c)?;
        // Anchored on the last line, where GitHub also shows a multi-line
        // comment; GitLab suggestions then reach the lines above with
        // `-N`.
        let span = c.end_line - c.line;
        let body = render_inline_body(c, &format!("suggestion:-{span}+0"));
        let path = format!("{}/discussions", Self::mr_path(project, change.number)?);
        let mut req = json!({
            "body": body,
            "position": {
                "position_type": "text",
                "base_sha": change.base_sha.as_str(),
                "start_sha": change.start_sha.as_str(),
                "head_sha": change.head_sha.as_str(),
                "new_path": c.path,
                "old_path": c.old_path.as_deref().unwrap_or(&c.path),
                "new_line": c.end_line,
            }
        });
        if let Some(old) = c.end_old_line {
            req["position"]["old_line"] = json!(old);
        }
        let d: Discussion = self.api.send_json(Method::POST, &path, &req).await?;
        Ok(PostedComment {
            fingerprint: c.fingerprint.clone(),
            id: Some(d.id),
        })
    }
}

#[derive(Deserialize)]
struct IdOnly {
    id: u64,
}

#[derive(Deserialize)]
struct Discussion {
    id: String,
}

#[derive(Deserialize)]
struct Project {
    id: u64,
    path_with_namespace: String,
    name: String,
    web_url: String,
    http_url_to_repo: String,
    #[serde(default)]
    default_branch: Option<String>,
}

#[derive(Deserialize)]
struct User {
    id: u64,
    username: String,
}

#[derive(Deserialize)]
struct UserId {
    id: u64,
}

#[derive(Deserialize)]
struct DiffRefs {
    base_sha: Option<String>,
    start_sha: Option<String>,
    head_sha: Option<String>,
}

#[derive(Deserialize)]
struct MergeRequest {
    iid: u64,
    title: String,
    author: User,
    source_branch: String,
    target_branch: String,
    #[serde(default)]
    sha: Option<String>,
    #[serde(default)]
    draft: Option<bool>,
    #[serde(default)]
    work_in_progress: Option<bool>,
    web_url: String,
    #[serde(default)]
    diff_refs: Option<DiffRefs>,
    #[serde(default)]
    assignees: Vec<UserId>,
    #[serde(default)]
    reviewers: Vec<UserId>,
}

#[derive(Deserialize)]
struct Hook {
    url: String,
    #[serde(default)]
    merge_requests_events: Option<bool>,
    #[serde(default)]
    alert_status: Option<String>,
    #[serde(default)]
    disabled_until: Option<String>,
}

fn sha(what: &str, s: Option<&str>) -> Result<CommitSha, ForgeError> {
    let s =
        s.ok_or_else(|| ForgeError::NotReady(format!("the merge request has no {what} yet")))?;
    CommitSha::parse(s).map_err(|e| ForgeError::Malformed(e.to_string()))
}

fn ids(users: &[UserId]) -> Vec<UserRef> {
    users.iter().map(|u| UserRef(u.id.to_string())).collect()
}

fn numeric_ids(refs: &[UserRef]) -> Result<Vec<u64>, ForgeError> {
    refs.iter()
        .map(|r| {
            r.as_str().trim().parse::<u64>().map_err(|_| {
                ForgeError::InvalidArgument(format!(
                    "GitLab users are assigned by numeric id, not {:?}",
                    r.as_str()
                ))
            })
        })
        .collect()
}

fn merged(current: &[UserId], add: &[u64]) -> Option<Vec<u64>> {
    let mut all: Vec<u64> = current.iter().map(|u| u.id).collect();
    let before = all.len();
    for id in add {
        if !all.contains(id) {
            all.push(*id);
        }
    }
    (all.len() != before).then_some(all)
}

fn gitlab_state(state: CommitState) -> &'static str {
    match state {
        CommitState::Pending => "pending",
        CommitState::Running => "running",
        CommitState::Success => "success",
        CommitState::Failure | CommitState::Error => "failed",
        CommitState::Canceled => "canceled",
    }
}

/// GitLab answers 400 "Cannot transition status via :run from :running"
/// when a status is set to the state it already has.
fn is_same_state(e: &ForgeError) -> bool {
    matches!(e, ForgeError::Unprocessable { status: 400, message }
        if message.contains("Cannot transition status"))
}

pub(crate) fn same_url(a: &str, b: &str) -> bool {
    a.trim().trim_end_matches('/') == b.trim().trim_end_matches('/')
}

#[async_trait]
impl Forge for GitLab {
    fn platform(&self) -> PlatformType {
        PlatformType::Gitlab
    }

    fn user_ref(&self, user: &ForgeUser) -> UserRef {
        UserRef(user.id.clone())
    }

    async fn list_projects(&self) -> Result<Vec<ForgeProject>, ForgeError> {
        let projects: Vec<Project> = self.all_pages("/projects?membership=true", 100).await?;
        projects
            .into_iter()
            .map(|p| {
                Ok(ForgeProject {
                    external_id: p.id.to_string(),
                    clone_url: RepoUrl::parse(&p.http_url_to_repo)
                        .map_err(|e| ForgeError::Malformed(e.to_string()))?,
                    path: p.path_with_namespace,
                    name: p.name,
                    web_url: p.web_url,
                    default_branch: p.default_branch.filter(|b| !b.is_empty()),
                })
            })
            .collect()
    }

    async fn get_change(&self, project: &str, number: u64) -> Result<ChangeRequest, ForgeError> {
        let mr = self.fetch_mr(project, number).await?;
        let refs = mr.diff_refs.as_ref();
        let head = refs
            .and_then(|r| r.head_sha.as_deref())
            .or(mr.sha.as_deref());
        Ok(ChangeRequest {
            number: mr.iid,
            base_sha: sha("diff base", refs.and_then(|r| r.base_sha.as_deref()))?,
            start_sha: sha("diff start", refs.and_then(|r| r.start_sha.as_deref()))?,
            head_sha: sha("head commit", head)?,
            title: mr.title,
            author: ForgeUser {
                id: mr.author.id.to_string(),
                username: mr.author.username,
            },
            source_branch: mr.source_branch,
            target_branch: mr.target_branch,
            draft: mr.draft.or(mr.work_in_progress).unwrap_or(false),
            web_url: mr.web_url,
            assignee_ids: ids(&mr.assignees),
            reviewer_ids: ids(&mr.reviewers),
        })
    }

    async fn upsert_summary(
        &self,
        project: &str,
        number: u64,
        existing_id: Option<&str>,
        body_markdown: &str,
    ) -> Result<String, ForgeError> {
        if let Some(id) = existing_id {
            let path = format!(
                "{}/notes/{}",
                Self::mr_path(project, number)?,
                encode_segment(id)
            );
            match self
                .api
                .send_json::<IdOnly>(Method::PUT, &path, &json!({ "body": body_markdown }))
                .await
            {
                Ok(note) => return Ok(note.id.to_string()),
                Err(ForgeError::NotFound { .. }) => {
                    // The note was deleted; the MR itself is checked by
                    // the create below.
                    tracing::debug!(note = id, "summary note is gone, creating a new one");
                }
                Err(e) => return Err(e),
            }
        }
        self.create_note(project, number, body_markdown).await
    }

    async fn post_inline_comments(
        &self,
        project: &str,
        change: &ChangeRequest,
        comments: &[InlineComment],
    ) -> Result<Vec<Result<PostedComment, CommentError>>, ForgeError> {
        let mut out = Vec::with_capacity(comments.len());
        let mut posted_any = false;
        let mut fatal: Option<ForgeError> = None;
        for c in comments {
            if let Some(e) = &fatal {
                out.push(Err(CommentError {
                    fingerprint: c.fingerprint.clone(),
                    error: e.clone(),
                }));
                continue;
            }
            match self.post_discussion(project, change, c).await {
                Ok(p) => {
                    posted_any = true;
                    out.push(Ok(p));
                }
                Err(e) => {
                    let about_this_comment = matches!(
                        e,
                        ForgeError::Unprocessable { .. } | ForgeError::InvalidArgument(_)
                    );
                    if !about_this_comment {
                        if !posted_any {
                            return Err(e);
                        }
                        fatal = Some(e.clone());
                    }
                    out.push(Err(CommentError {
                        fingerprint: c.fingerprint.clone(),
                        error: e,
                    }));
                }
            }
        }
        Ok(out)
    }

    async fn set_status(
        &self,
        project: &str,
        sha: &CommitSha,
        state: CommitState,
        description: &str,
        target_url: Option<&str>,
    ) -> Result<(), ForgeError> {
        let path = format!(
            "/projects/{}/statuses/{}",
            Self::project_segment(project)?,
            sha.as_str()
        );
        let mut body = json!({
            "state": gitlab_state(state),
            "name": STATUS_CONTEXT,
            "description": truncate(description, 254),
        });
        if let Some(u) = target_url {
            body["target_url"] = Value::String(u.to_owned());
        }
        match self
            .api
            .send_json::<Value>(Method::POST, &path, &body)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_same_state(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn assign(
        &self,
        project: &str,
        number: u64,
        assignees: &[UserRef],
        reviewers: &[UserRef],
    ) -> Result<(), ForgeError> {
        let add_assignees = numeric_ids(assignees)?;
        let add_reviewers = numeric_ids(reviewers)?;
        if add_assignees.is_empty() && add_reviewers.is_empty() {
            return Ok(());
        }
        // PUT replaces the lists: merge with the current ones first.
        let mr = self.fetch_mr(project, number).await?;
        let mut body = serde_json::Map::new();
        if let Some(a) = merged(&mr.assignees, &add_assignees) {
            body.insert("assignee_ids".into(), json!(a));
        }
        if let Some(r) = merged(&mr.reviewers, &add_reviewers) {
            body.insert("reviewer_ids".into(), json!(r));
        }
        if body.is_empty() {
            return Ok(());
        }
        self.api
            .send_json::<Value>(
                Method::PUT,
                &Self::mr_path(project, number)?,
                &Value::Object(body),
            )
            .await?;
        Ok(())
    }

    async fn webhook_status(
        &self,
        project: &str,
        webhook_url: &str,
    ) -> Result<WebhookStatus, ForgeError> {
        let path = format!("/projects/{}/hooks", Self::project_segment(project)?);
        let hooks: Vec<Hook> = match self.all_pages(&path, 100).await {
            Ok(h) => h,
            Err(ForgeError::Forbidden { .. }) => return Ok(WebhookStatus::Unknown),
            Err(e) => return Err(e),
        };
        let Some(hook) = hooks.iter().find(|h| same_url(&h.url, webhook_url)) else {
            return Ok(WebhookStatus::NotConfigured);
        };
        let disabled = matches!(
            hook.alert_status.as_deref(),
            Some("disabled" | "temporarily_disabled")
        ) || hook.disabled_until.is_some();
        Ok(if disabled {
            WebhookStatus::Error
        } else if hook.merge_requests_events == Some(false) {
            WebhookStatus::Inactive
        } else {
            WebhookStatus::Active
        })
    }

    fn clone_credentials(&self) -> CloneCredentials {
        CloneCredentials {
            username: "oauth2".into(),
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
            ("", "https://gitlab.com/api/v4"),
            (
                "https://gitlab.example.com/",
                "https://gitlab.example.com/api/v4",
            ),
            (
                "https://gitlab.example.com/api/v4",
                "https://gitlab.example.com/api/v4",
            ),
            ("http://host:8080/gitlab", "http://host:8080/gitlab/api/v4"),
        ] {
            let gl = GitLab::new(base, t(), http.clone()).expect("gitlab");
            assert_eq!(gl.api_root(), root, "{base}");
        }
    }

    #[test]
    fn project_paths_are_one_segment() {
        assert_eq!(
            GitLab::mr_path("group/sub/app", 5).expect("path"),
            "/projects/group%2Fsub%2Fapp/merge_requests/5"
        );
        assert_eq!(
            GitLab::mr_path("42", 1).expect("path"),
            "/projects/42/merge_requests/1"
        );
        assert!(GitLab::mr_path(" / ", 1).is_err());
    }

    #[test]
    fn states_map_to_gitlab_names() {
        assert_eq!(gitlab_state(CommitState::Pending), "pending");
        assert_eq!(gitlab_state(CommitState::Running), "running");
        assert_eq!(gitlab_state(CommitState::Success), "success");
        assert_eq!(gitlab_state(CommitState::Failure), "failed");
        assert_eq!(gitlab_state(CommitState::Error), "failed");
        assert_eq!(gitlab_state(CommitState::Canceled), "canceled");
    }

    #[test]
    fn assignment_merges_and_skips_no_ops() {
        let cur = [UserId { id: 1 }, UserId { id: 2 }];
        assert_eq!(merged(&cur, &[2, 3]), Some(vec![1, 2, 3]));
        assert_eq!(merged(&cur, &[1]), None);
        assert!(numeric_ids(&[UserRef::new("ana")]).is_err());
        assert_eq!(numeric_ids(&[UserRef::new("12")]).expect("ids"), vec![12]);
    }
}
