//! A fake GitLab and GitHub for tests: an honest protocol peer for the REST
//! subsets the server calls, real git repositories served over smart HTTP,
//! realistic signed webhooks, and failures on demand.
//!
//! # Layout
//!
//! [`FakeForge::start`] listens on `127.0.0.1:0`; one fake is both forges,
//! each under its own path prefix:
//!
//! | | GitLab ([`FakeForge::gitlab_url`]) | GitHub ([`FakeForge::github_url`]) |
//! |---|---|---|
//! | instance / web | `http://127.0.0.1:PORT/gitlab` | `http://127.0.0.1:PORT/github` |
//! | REST API | `{gitlab_url}/api/v4` | `{github_url}/api/v3` ([`FakeForge::github_api_url`], as GitHub Enterprise) |
//! | clone | `{gitlab_url}/<namespace>/<project>.git` | `{github_url}/<owner>/<repo>.git` |
//! | API auth | `PRIVATE-TOKEN: t` or `Authorization: Bearer t` | `Authorization: Bearer t` or `token t`, plus `User-Agent` and an `Accept` of `application/vnd.github+json` or `application/json` |
//! | clone auth | basic `oauth2:t` | basic `x-access-token:t` |
//!
//! # Repositories and changes
//!
//! [`FakeForge::create_repo`] makes a bare repository (branch `main`) in a
//! temporary directory with real `git` commands; [`FakeForge::push_commit`]
//! adds a commit to a branch (a new branch forks from `main`). Clones are
//! served by `git http-backend` as a CGI. [`FakeForge::open_merge_request`]
//! and [`FakeForge::open_pull_request`] open a change between two branches;
//! its heads are always the branches' current tips (GitLab's `diff_refs`:
//! `base_sha` the merge base, `start_sha` the target tip, `head_sha` the
//! source tip), and its diff is `git diff base_sha head_sha` with renames.
//!
//! # REST subset
//!
//! GitLab v4: `GET /projects` (paginated: `X-Page`, `X-Per-Page`,
//! `X-Next-Page`, `X-Prev-Page`, `X-Total`, `X-Total-Pages`, `Link`),
//! `GET /projects/:id` (numeric id or URL-encoded path), `GET`/`PUT
//! /projects/:id/merge_requests/:iid` (`assignee_ids`, `reviewer_ids`),
//! `GET`/`POST /…/notes` (newest first unless `sort=asc`), `PUT
//! /…/notes/:note_id` (the author's notes only, else 403), `POST
//! /…/discussions` with a text `position`, `GET /projects/:id/hooks`,
//! `POST /projects/:id/statuses/:sha` (`name` recorded as the context).
//!
//! GitHub: `GET /user/repos` (paginated with `Link` `next`/`prev`/`first`/
//! `last`), `GET /repos/:o/:r`, `GET /repos/:o/:r/pulls/:n`, `GET`/`POST
//! /repos/:o/:r/pulls/:n/reviews`, `GET`/`POST
//! /repos/:o/:r/issues/:n/comments`, `PATCH /repos/:o/:r/issues/comments/:id`,
//! `POST /repos/:o/:r/statuses/:sha`, `POST /repos/:o/:r/issues/:n/assignees`,
//! `POST /repos/:o/:r/pulls/:n/requested_reviewers` (both recorded in
//! [`FakeForge::assignments`]), `GET /repos/:o/:r/hooks`.
//!
//! What the server sends is validated as the real forge would, and every
//! refusal is also recorded in [`FakeForge::validation_failures`]:
//!
//! * a GitLab discussion `position` must carry the merge request's current
//!   `diff_refs`, name a file of the diff, and address a diff line by
//!   GitLab's rule (an added line by `new_line` only, a removed line by
//!   `old_line` only, an unchanged line by both); otherwise 400 `{"message":
//!   "400 Bad request - Note {:line_code=>[\"can't be blank\", \"must be a
//!   valid line code\"]}"}`;
//! * a GitHub review's `commit_id` must be the head, each comment's `line`
//!   must lie in a hunk on its `side` (RIGHT: added or context, LEFT:
//!   removed or context), and a `start_line` must precede `line` in the
//!   same hunk; otherwise 422 `{"message":"Unprocessable Entity","errors":
//!   ["Line could not be resolved"]}`;
//! * a GitHub status needs a known `state`, an existing commit and a
//!   `description` of at most 140 characters (422 otherwise);
//! * a GitLab status needs a known `state` (400), an existing commit (404
//!   `Commit Not Found`) and a `description` of at most 255 characters
//!   (400); setting a pending or running status (same commit and `name`)
//!   to the state it has answers GitLab's 400 `Cannot transition status
//!   via :run from :running`, which is a conflict, not a validation
//!   failure, and is not recorded as one;
//! * a GitHub assignee or reviewer request needs an array of logins (422);
//!   unknown logins are ignored, and the pull request's author cannot be
//!   requested as its reviewer (422).
//!
//! # Webhooks
//!
//! [`FakeForge::send_gitlab_mr_event`], [`FakeForge::send_gitlab_note_event`],
//! [`FakeForge::send_github_pull_request_event`] and
//! [`FakeForge::send_github_issue_comment_event`] POST the forge's payload
//! for the change's current state with its headers (`X-Gitlab-Token`, or
//! `X-Hub-Signature-256` = HMAC-SHA256 of the raw body) and return the
//! [`Delivery`], answer included; [`FakeForge::redeliver`] sends the same
//! delivery (same id, headers and body) again.
//!
//! # Misbehaviour and recording
//!
//! [`FakeForge::fail`] queues a [`Failure`] for the next request matching a
//! route pattern (`"POST /gitlab/api/v4/projects/*/merge_requests/*/notes"`,
//! `*` is one path segment, a trailing `**` any rest, the method optional);
//! queued failures are consumed in order. Every request is recorded
//! ([`FakeForge::requests`], smart-HTTP bodies left out), and so is every
//! object the API created ([`FakeForge::notes`], [`FakeForge::reviews`], …).
//!
//! ```no_run
//! # async fn demo() {
//! use ai_review_fake_forge::{FakeForge, Forge, MrAction};
//! let forge = FakeForge::start("glpat-test", "ghs_test").await;
//! let repo = forge.create_repo(Forge::GitLab, "acme/app", &[("src/lib.rs", "fn a() {}\n")]);
//! forge.push_commit(&repo, "feature", &[("src/lib.rs", Some("fn a() {}\nfn b() {}\n"))], "Add b");
//! let iid = forge.open_merge_request(&repo, "feature", "main", "Add b", "alice", false);
//! let sent = forge
//!     .send_gitlab_mr_event("http://127.0.0.1:8080/api/webhooks/gitlab", "secret", &repo, iid, MrAction::Open)
//!     .await;
//! assert_eq!(sent.status, Some(200));
//! // ... let the server review, then:
//! assert!(forge.validation_failures().is_empty());
//! assert_eq!(forge.discussions().len(), 1);
//! # }
//! ```

mod diff;
mod git;
mod github;
mod gitlab;
mod http;

use axum::Router;
use serde_json::Value;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};
use tokio::sync::{Notify, watch};

/// Which forge a repository, request or delivery belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Forge {
    /// GitLab v4, under `/gitlab`.
    GitLab,
    /// GitHub REST, under `/github`.
    GitHub,
}

impl Forge {
    fn prefix(self) -> &'static str {
        match self {
            Forge::GitLab => "gitlab",
            Forge::GitHub => "github",
        }
    }
}

/// A repository (GitLab project) the fake owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    /// The forge serving it.
    pub forge: Forge,
    /// Numeric id (GitLab project id, GitHub repository id).
    pub id: u64,
    /// `namespace/project` or `owner/repo`.
    pub path: String,
}

/// A GitLab merge request webhook action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MrAction {
    /// `open`.
    Open,
    /// `reopen` (the merge request is open again).
    Reopen,
    /// `update` after new commits: `oldrev` is the head last announced.
    Update,
    /// `update` that only changes assignees/reviewers: `changes` names
    /// them, no `oldrev`.
    UpdateAssigneesOnly,
}

/// A GitHub `pull_request` webhook action; each also applies to the pull
/// request what the event says happened (closed, reopened, ready).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrAction {
    /// `opened`.
    Opened,
    /// `reopened`.
    Reopened,
    /// `synchronize`, with `before` (the head last announced) and `after`.
    Synchronize,
    /// `ready_for_review` (no longer a draft).
    ReadyForReview,
    /// `edited` (the title changed).
    Edited,
    /// `closed` (not merged).
    Closed,
}

/// A failure served instead of the normal answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The status with the forge's error body (`{"message": …}`).
    Status(u16),
    /// 429 with `Retry-After: seconds` (GitLab also sends `RateLimit-*`).
    RetryAfter(u64),
    /// GitHub's primary rate limit: `status` (403 or 429) with
    /// `x-ratelimit-remaining: 0` and `x-ratelimit-reset` in
    /// `reset_in_secs`.
    RateLimitReset {
        /// 403 or 429.
        status: u16,
        /// Seconds from now to the reset time sent.
        reset_in_secs: u64,
    },
    /// Waits, then answers normally.
    Delay(Duration),
    /// Never answers (until the fake is dropped, then 503).
    Hang,
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// Arrival order, from 1.
    pub seq: u64,
    /// The forge whose prefix the path has.
    pub forge: Option<Forge>,
    /// Whether it was a smart-HTTP git request (its body is not kept).
    pub git: bool,
    /// HTTP method.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Query string (`""` if none).
    pub query: String,
    /// Every header, names lower-case.
    pub headers: Vec<(String, String)>,
    /// The body as text (lossy UTF-8).
    pub body: String,
    /// The body as JSON, if it parsed.
    pub json: Option<Value>,
    /// Wall-clock arrival time.
    pub received_at: SystemTime,
    /// Status answered; `None` while pending or never answered.
    pub status: Option<u16>,
}

impl RecordedRequest {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A GitLab note on a merge request (a plain note or a discussion's first
/// note).
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    /// Note id.
    pub id: u64,
    /// Project path.
    pub project: String,
    /// Merge request iid.
    pub mr_iid: u64,
    /// Author's username.
    pub author: String,
    /// Current body.
    pub body: String,
    /// Bodies it had before each `PUT`, oldest first.
    pub previous_bodies: Vec<String>,
    /// The discussion it opened, for diff notes.
    pub discussion_id: Option<String>,
    /// The position as sent, for diff notes.
    pub position: Option<Value>,
}

/// A GitLab discussion the server opened on a diff line.
#[derive(Debug, Clone, PartialEq)]
pub struct Discussion {
    /// Discussion id (40 hex digits).
    pub id: String,
    /// Project path.
    pub project: String,
    /// Merge request iid.
    pub mr_iid: u64,
    /// Its note's id.
    pub note_id: u64,
    /// Its note's body.
    pub body: String,
    /// The position as sent.
    pub position: Value,
}

/// A GitHub pull request review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    /// Review id.
    pub id: u64,
    /// `owner/repo`.
    pub repo: String,
    /// Pull request number.
    pub number: u64,
    /// The commit reviewed.
    pub commit_id: String,
    /// `APPROVED`, `CHANGES_REQUESTED`, `COMMENTED` or `PENDING`.
    pub state: String,
    /// Body (`""` if none).
    pub body: String,
    /// Line comments.
    pub comments: Vec<ReviewComment>,
}

/// One line comment of a GitHub review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewComment {
    /// Comment id.
    pub id: u64,
    /// File path.
    pub path: String,
    /// Last line of the comment.
    pub line: u64,
    /// `LEFT` or `RIGHT`.
    pub side: String,
    /// First line of a multi-line comment.
    pub start_line: Option<u64>,
    /// Side of `start_line`.
    pub start_side: Option<String>,
    /// Text.
    pub body: String,
}

/// A GitHub issue (pull request conversation) comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueComment {
    /// Comment id.
    pub id: u64,
    /// `owner/repo`.
    pub repo: String,
    /// Pull request number.
    pub number: u64,
    /// Author's login.
    pub author: String,
    /// Current body.
    pub body: String,
    /// Bodies it had before each `PATCH`, oldest first.
    pub previous_bodies: Vec<String>,
}

/// A commit status: GitHub's, or a GitLab external commit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitStatus {
    /// Status id.
    pub id: u64,
    /// `owner/repo`, or the GitLab project path.
    pub repo: String,
    /// The commit (resolved to its full SHA).
    pub sha: String,
    /// As sent: GitHub's `error`, `failure`, `pending` or `success`, or
    /// GitLab's `pending`, `running`, `success`, `failed` or `canceled`.
    pub state: String,
    /// Link sent.
    pub target_url: Option<String>,
    /// Description sent.
    pub description: Option<String>,
    /// GitHub's `context`, or GitLab's `name` (`default` if none was
    /// sent).
    pub context: String,
}

/// A `PUT` on a GitLab merge request, as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MrUpdate {
    /// Project path.
    pub project: String,
    /// Merge request iid.
    pub iid: u64,
    /// `assignee_ids` if sent.
    pub assignee_ids: Option<Vec<u64>>,
    /// `reviewer_ids` if sent.
    pub reviewer_ids: Option<Vec<u64>>,
}

/// A GitHub `POST …/issues/:n/assignees` or `POST
/// …/pulls/:n/requested_reviewers` the fake accepted, as sent (unknown
/// logins included; GitHub ignores them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// `owner/repo`.
    pub repo: String,
    /// Pull request number.
    pub number: u64,
    /// Logins sent as `assignees` (empty for a reviewer request).
    pub assignees: Vec<String>,
    /// Logins sent as `reviewers` (empty for an assignee request).
    pub reviewers: Vec<String>,
}

/// A request the fake refused because what it carried was wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationFailure {
    /// Forge.
    pub forge: Forge,
    /// HTTP method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Why, in words.
    pub reason: String,
    /// The JSON body, if it parsed.
    pub body: Option<Value>,
}

/// One webhook delivery and its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The forge that sent it.
    pub forge: Forge,
    /// Delivery id (`X-GitHub-Delivery`, or GitLab's `Idempotency-Key`).
    pub id: String,
    /// Where it went.
    pub url: String,
    /// Headers sent.
    pub headers: Vec<(String, String)>,
    /// The raw body sent.
    pub body: String,
    /// Answered status; `None` if no answer came.
    pub status: Option<u16>,
    /// Answered body, or the transport error.
    pub response: String,
}

impl Delivery {
    /// First value of sent header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body sent, parsed.
    pub fn payload(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

#[derive(Debug, Clone)]
struct User {
    id: u64,
    username: String,
}

#[derive(Debug, Clone)]
struct RepoState {
    repo: Repo,
    hooks: Vec<Hook>,
    created_at: String,
}

#[derive(Debug, Clone)]
struct Hook {
    id: u64,
    url: String,
    events: Vec<String>,
}

/// A merge request or pull request.
#[derive(Debug, Clone)]
struct Change {
    forge: Forge,
    repo_id: u64,
    number: u64,
    id: u64,
    title: String,
    source: String,
    target: String,
    author: u64,
    draft: bool,
    open: bool,
    assignees: Vec<u64>,
    reviewers: Vec<u64>,
    announced_head: Option<String>,
    announced_assignees: Vec<u64>,
    announced_reviewers: Vec<u64>,
    created_at: String,
    updated_at: String,
}

struct Fault {
    method: Option<String>,
    segments: Vec<String>,
    failure: Failure,
}

impl Fault {
    fn matches(&self, method: &str, path: &str) -> bool {
        if self.method.as_deref().is_some_and(|m| m != method) {
            return false;
        }
        let mut actual = path.trim_start_matches('/').split('/');
        for want in &self.segments {
            if want == "**" {
                return true;
            }
            match actual.next() {
                Some(got) if want == "*" || want == got => {}
                _ => return false,
            }
        }
        actual.next().is_none()
    }
}

#[derive(Default)]
struct State {
    next_id: u64,
    users: Vec<User>,
    repos: Vec<RepoState>,
    changes: Vec<Change>,
    notes: Vec<(Note, String)>,
    discussions: Vec<Discussion>,
    reviews: Vec<(Review, String)>,
    issue_comments: Vec<(IssueComment, String, String)>,
    statuses: Vec<(CommitStatus, String)>,
    mr_updates: Vec<MrUpdate>,
    assignments: Vec<Assignment>,
    failures: Vec<ValidationFailure>,
    requests: Vec<RecordedRequest>,
    faults: VecDeque<Fault>,
    deliveries: Vec<Delivery>,
}

impl State {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn user_id(&mut self, username: &str) -> u64 {
        if let Some(u) = self.users.iter().find(|u| u.username == username) {
            return u.id;
        }
        let id = self.id();
        self.users.push(User {
            id,
            username: username.to_owned(),
        });
        id
    }

    fn repo(&self, forge: Forge, path: &str) -> Option<&RepoState> {
        self.repos
            .iter()
            .find(|r| r.repo.forge == forge && r.repo.path == path)
    }

    fn change(&self, forge: Forge, repo_id: u64, number: u64) -> Option<&Change> {
        self.changes
            .iter()
            .find(|c| c.forge == forge && c.repo_id == repo_id && c.number == number)
    }

    fn change_mut(&mut self, forge: Forge, repo_id: u64, number: u64) -> Option<&mut Change> {
        self.changes
            .iter_mut()
            .find(|c| c.forge == forge && c.repo_id == repo_id && c.number == number)
    }
}

/// The username the tokens act as, on both forges.
pub const BOT_USERNAME: &str = "ai-review-bot";

struct Shared {
    root: PathBuf,
    base_url: String,
    gitlab_token: String,
    github_token: String,
    state: Mutex<State>,
    changed: Notify,
    shutdown: watch::Receiver<bool>,
    client: reqwest::Client,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock must not hide what
        // was recorded from the other assertions.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn repo_dir(&self, forge: Forge, path: &str) -> PathBuf {
        self.root.join(forge.prefix()).join(format!("{path}.git"))
    }

    fn forge_url(&self, forge: Forge) -> String {
        format!("{}/{}", self.base_url, forge.prefix())
    }

    fn fail_validation(&self, forge: Forge, req: &http::Req, reason: String) {
        self.state().failures.push(ValidationFailure {
            forge,
            method: req.method.clone(),
            path: req.path.clone(),
            reason,
            body: req.json.clone(),
        });
        self.changed.notify_waiters();
    }
}

/// A running fake forge; stops (and deletes its repositories) when dropped.
pub struct FakeForge {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    _root: tempfile::TempDir,
}

impl FakeForge {
    /// Starts a fake accepting `gitlab_token` on its GitLab side and
    /// `github_token` on its GitHub side; both act as [`BOT_USERNAME`].
    ///
    /// # Panics
    /// If no loopback port or temporary directory is available (a broken
    /// test machine).
    pub async fn start(gitlab_token: &str, github_token: &str) -> Self {
        // reqwest is built without a default crypto provider; webhooks go to
        // plain-HTTP loopback but the client still needs one installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let root = tempfile::tempdir().expect("a temporary directory for the fake forge");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake forge on loopback");
        let addr = listener.local_addr().expect("local address");
        let (stop, shutdown) = watch::channel(false);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("an HTTP client for webhooks");
        let mut state = State::default();
        state.user_id(BOT_USERNAME);
        let shared = Arc::new(Shared {
            root: root.path().to_owned(),
            base_url: format!("http://{addr}"),
            gitlab_token: gitlab_token.to_owned(),
            github_token: github_token.to_owned(),
            state: Mutex::new(state),
            changed: Notify::new(),
            shutdown,
            client,
        });
        let app = Router::new()
            .fallback(http::handle)
            .with_state(shared.clone());
        let mut down = shared.shutdown.clone();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = down.wait_for(|v| *v).await;
                })
                .await;
        });
        Self {
            addr,
            shared,
            stop,
            server,
            _root: root,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// The GitLab instance URL (`{base}/gitlab`); its API is under `/api/v4`.
    pub fn gitlab_url(&self) -> String {
        self.shared.forge_url(Forge::GitLab)
    }

    /// The GitHub web and clone URL (`{base}/github`).
    pub fn github_url(&self) -> String {
        self.shared.forge_url(Forge::GitHub)
    }

    /// The GitHub REST base URL (`{base}/github/api/v3`).
    pub fn github_api_url(&self) -> String {
        format!("{}/api/v3", self.github_url())
    }

    /// The port listened on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The clone URL of `repo`, without credentials.
    pub fn clone_url(&self, repo: &Repo) -> String {
        format!("{}/{}.git", self.shared.forge_url(repo.forge), repo.path)
    }

    /// The user id of `username`, registering the user if new.
    pub fn user_id(&self, username: &str) -> u64 {
        self.shared.state().user_id(username)
    }

    /// Creates a repository at `path` (`group/project`, `owner/repo`)
    /// whose `main` branch has one commit holding `files`.
    ///
    /// # Panics
    /// If the path is taken or git fails.
    pub fn create_repo(&self, forge: Forge, path: &str, files: &[(&str, &str)]) -> Repo {
        assert!(
            forge == Forge::GitLab || path.split('/').count() == 2,
            "a GitHub repository is owner/repo"
        );
        assert!(
            !path.split('/').any(|s| s.is_empty() || s.starts_with('.')),
            "invalid repository path {path}"
        );
        let mut state = self.shared.state();
        assert!(state.repo(forge, path).is_none(), "{path} already exists");
        let files: Vec<(&str, Option<&str>)> = files.iter().map(|(p, c)| (*p, Some(*c))).collect();
        git::init(&self.shared.repo_dir(forge, path), &files).expect("create the repository");
        if forge == Forge::GitHub
            && let Some((owner, _)) = path.split_once('/')
        {
            state.user_id(owner);
        }
        let id = state.id();
        let repo = Repo {
            forge,
            id,
            path: path.to_owned(),
        };
        state.repos.push(RepoState {
            repo: repo.clone(),
            hooks: Vec::new(),
            created_at: now(),
        });
        repo
    }

    /// Commits `changes` (`Some(content)` writes a file, `None` deletes
    /// it) on `branch`, creating the branch from `main` if needed; returns
    /// the new commit's SHA.
    ///
    /// # Panics
    /// If git fails.
    pub fn push_commit(
        &self,
        repo: &Repo,
        branch: &str,
        changes: &[(&str, Option<&str>)],
        message: &str,
    ) -> String {
        let dir = self.shared.repo_dir(repo.forge, &repo.path);
        let sha = git::commit(&dir, branch, changes, message).expect("commit");
        let mut state = self.shared.state();
        let stamp = now();
        for c in state
            .changes
            .iter_mut()
            .filter(|c| c.repo_id == repo.id && c.source == branch)
        {
            c.updated_at = stamp.clone();
        }
        sha
    }

    /// The tip of `branch`, if it exists.
    pub fn branch_head(&self, repo: &Repo, branch: &str) -> Option<String> {
        git::rev_parse(
            &self.shared.repo_dir(repo.forge, &repo.path),
            &format!("refs/heads/{branch}"),
        )
    }

    fn open_change(
        &self,
        repo: &Repo,
        source: &str,
        target: &str,
        title: &str,
        author: &str,
        draft: bool,
    ) -> u64 {
        assert!(
            self.branch_head(repo, source).is_some(),
            "no branch {source}"
        );
        assert!(
            self.branch_head(repo, target).is_some(),
            "no branch {target}"
        );
        let mut state = self.shared.state();
        let author = state.user_id(author);
        let number = state
            .changes
            .iter()
            .filter(|c| c.repo_id == repo.id)
            .map(|c| c.number)
            .max()
            .unwrap_or(0)
            + 1;
        let id = state.id();
        let stamp = now();
        state.changes.push(Change {
            forge: repo.forge,
            repo_id: repo.id,
            number,
            id,
            title: title.to_owned(),
            source: source.to_owned(),
            target: target.to_owned(),
            author,
            draft,
            open: true,
            assignees: Vec::new(),
            reviewers: Vec::new(),
            announced_head: None,
            announced_assignees: Vec::new(),
            announced_reviewers: Vec::new(),
            created_at: stamp.clone(),
            updated_at: stamp,
        });
        number
    }

    /// Opens a merge request from `source` into `target` by `author`;
    /// returns its iid.
    ///
    /// # Panics
    /// If `repo` is not a GitLab project or a branch is missing.
    pub fn open_merge_request(
        &self,
        repo: &Repo,
        source: &str,
        target: &str,
        title: &str,
        author: &str,
        draft: bool,
    ) -> u64 {
        assert_eq!(repo.forge, Forge::GitLab, "merge requests are GitLab's");
        self.open_change(repo, source, target, title, author, draft)
    }

    /// Opens a pull request from `head` into `base` by `author`; returns
    /// its number.
    ///
    /// # Panics
    /// If `repo` is not a GitHub repository or a branch is missing.
    pub fn open_pull_request(
        &self,
        repo: &Repo,
        head: &str,
        base: &str,
        title: &str,
        author: &str,
        draft: bool,
    ) -> u64 {
        assert_eq!(repo.forge, Forge::GitHub, "pull requests are GitHub's");
        self.open_change(repo, head, base, title, author, draft)
    }

    /// Registers a webhook on `repo` (what the hooks endpoints list);
    /// `events` are GitLab's (`merge_requests_events`, `note_events`, …)
    /// or GitHub's (`pull_request`, `issue_comment`, …) names.
    pub fn add_hook(&self, repo: &Repo, url: &str, events: &[&str]) -> u64 {
        let mut state = self.shared.state();
        let id = state.id();
        if let Some(r) = state.repos.iter_mut().find(|r| r.repo == *repo) {
            r.hooks.push(Hook {
                id,
                url: url.to_owned(),
                events: events.iter().map(|e| (*e).to_owned()).collect(),
            });
        }
        id
    }

    /// Queues `failure` for the next request matching `route`:
    /// `"[METHOD ]/path/with/*/segments"` (`*` one segment, a trailing
    /// `**` the rest); queued failures are consumed in order.
    pub fn fail(&self, route: &str, failure: Failure) -> &Self {
        let (method, path) = match route.split_once(' ') {
            Some((m, p)) => (Some(m.to_ascii_uppercase()), p),
            None => (None, route),
        };
        self.shared.state().faults.push_back(Fault {
            method,
            segments: path
                .trim_start_matches('/')
                .split('/')
                .map(str::to_owned)
                .collect(),
            failure,
        });
        self
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.state().requests.clone()
    }

    /// Waits until `done` holds for the fake's recorded requests or
    /// `timeout` passed; returns the requests.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        done: impl Fn(&FakeForge) -> bool,
    ) -> Vec<RecordedRequest> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            if done(self) || tokio::time::Instant::now() >= deadline {
                return self.requests();
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }

    /// Every GitLab note, diff notes included, oldest first.
    pub fn notes(&self) -> Vec<Note> {
        self.shared
            .state()
            .notes
            .iter()
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Every GitLab discussion created through the API.
    pub fn discussions(&self) -> Vec<Discussion> {
        self.shared.state().discussions.clone()
    }

    /// Every GitHub review created through the API.
    pub fn reviews(&self) -> Vec<Review> {
        self.shared
            .state()
            .reviews
            .iter()
            .map(|(r, _)| r.clone())
            .collect()
    }

    /// Every GitHub issue comment, oldest first.
    pub fn issue_comments(&self) -> Vec<IssueComment> {
        self.shared
            .state()
            .issue_comments
            .iter()
            .map(|(c, _, _)| c.clone())
            .collect()
    }

    /// Every commit status created, GitHub's and GitLab's, oldest first.
    pub fn statuses(&self) -> Vec<CommitStatus> {
        self.shared
            .state()
            .statuses
            .iter()
            .map(|(s, _)| s.clone())
            .collect()
    }

    /// Every merge request `PUT`, as sent.
    pub fn mr_updates(&self) -> Vec<MrUpdate> {
        self.shared.state().mr_updates.clone()
    }

    /// Every GitHub assignee or reviewer request accepted, as sent.
    pub fn assignments(&self) -> Vec<Assignment> {
        self.shared.state().assignments.clone()
    }

    /// Every request refused for what it carried.
    pub fn validation_failures(&self) -> Vec<ValidationFailure> {
        self.shared.state().failures.clone()
    }

    /// Every webhook delivery sent, redeliveries included.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.state().deliveries.clone()
    }

    /// Sends a GitLab `Merge Request Hook` for merge request `iid`
    /// carrying `X-Gitlab-Token: secret_token`.
    ///
    /// # Panics
    /// If the merge request does not exist.
    pub async fn send_gitlab_mr_event(
        &self,
        target_url: &str,
        secret_token: &str,
        repo: &Repo,
        iid: u64,
        action: MrAction,
    ) -> Delivery {
        let body = gitlab::mr_event(&self.shared, repo, iid, action)
            .await
            .expect("a merge request event");
        self.send_gitlab(target_url, secret_token, "Merge Request Hook", body)
            .await
    }

    /// Sends a GitLab `Note Hook` for a new note `note` by the merge
    /// request's author (the note is added to the merge request).
    ///
    /// # Panics
    /// If the merge request does not exist.
    pub async fn send_gitlab_note_event(
        &self,
        target_url: &str,
        secret_token: &str,
        repo: &Repo,
        iid: u64,
        note: &str,
    ) -> Delivery {
        let body = gitlab::note_event(&self.shared, repo, iid, note)
            .await
            .expect("a note event");
        self.send_gitlab(target_url, secret_token, "Note Hook", body)
            .await
    }

    async fn send_gitlab(&self, url: &str, secret: &str, event: &str, body: Value) -> Delivery {
        let id = uuid::Uuid::new_v4().to_string();
        let headers = vec![
            ("Content-Type".to_owned(), "application/json".to_owned()),
            ("User-Agent".to_owned(), "GitLab/17.11.0".to_owned()),
            ("X-Gitlab-Event".to_owned(), event.to_owned()),
            ("X-Gitlab-Token".to_owned(), secret.to_owned()),
            ("X-Gitlab-Instance".to_owned(), self.gitlab_url()),
            (
                "X-Gitlab-Webhook-UUID".to_owned(),
                uuid::Uuid::new_v4().to_string(),
            ),
            (
                "X-Gitlab-Event-UUID".to_owned(),
                uuid::Uuid::new_v4().to_string(),
            ),
            ("Idempotency-Key".to_owned(), id.clone()),
        ];
        self.deliver(Forge::GitLab, id, url, headers, body.to_string())
            .await
    }

    /// Sends a GitHub `pull_request` event for pull request `number`,
    /// signed with `secret`; the action's effect (closed, reopened, ready)
    /// is applied first.
    ///
    /// # Panics
    /// If the pull request does not exist.
    pub async fn send_github_pull_request_event(
        &self,
        target_url: &str,
        secret: &str,
        repo: &Repo,
        number: u64,
        action: PrAction,
    ) -> Delivery {
        let body = github::pull_request_event(&self.shared, repo, number, action)
            .await
            .expect("a pull request event");
        self.send_github(target_url, secret, "pull_request", repo, body)
            .await
    }

    /// Sends a GitHub `issue_comment` (`created`) event for a new comment
    /// `body` by the pull request's author on pull request `number` (the
    /// comment is added to it), signed with `secret`.
    ///
    /// # Panics
    /// If the pull request does not exist.
    pub async fn send_github_issue_comment_event(
        &self,
        target_url: &str,
        secret: &str,
        repo: &Repo,
        number: u64,
        body: &str,
    ) -> Delivery {
        let payload = github::issue_comment_event(&self.shared, repo, number, body)
            .await
            .expect("an issue comment event");
        self.send_github(target_url, secret, "issue_comment", repo, payload)
            .await
    }

    async fn send_github(
        &self,
        url: &str,
        secret: &str,
        event: &str,
        repo: &Repo,
        body: Value,
    ) -> Delivery {
        let id = uuid::Uuid::new_v4().to_string();
        let body = body.to_string();
        let hook_id = {
            let state = self.shared.state();
            state
                .repo(repo.forge, &repo.path)
                .and_then(|r| r.hooks.first().map(|h| h.id))
                .unwrap_or(1)
        };
        let headers = vec![
            ("Content-Type".to_owned(), "application/json".to_owned()),
            (
                "User-Agent".to_owned(),
                "GitHub-Hookshot/8f3c2a1".to_owned(),
            ),
            ("X-GitHub-Event".to_owned(), event.to_owned()),
            ("X-GitHub-Delivery".to_owned(), id.clone()),
            ("X-GitHub-Hook-ID".to_owned(), hook_id.to_string()),
            (
                "X-GitHub-Hook-Installation-Target-Type".to_owned(),
                "repository".to_owned(),
            ),
            (
                "X-GitHub-Hook-Installation-Target-ID".to_owned(),
                repo.id.to_string(),
            ),
            (
                "X-Hub-Signature-256".to_owned(),
                format!("sha256={}", github::signature(secret, body.as_bytes())),
            ),
        ];
        self.deliver(Forge::GitHub, id, url, headers, body).await
    }

    /// Sends `delivery` again: same id, headers and body.
    pub async fn redeliver(&self, delivery: &Delivery) -> Delivery {
        self.deliver(
            delivery.forge,
            delivery.id.clone(),
            &delivery.url,
            delivery.headers.clone(),
            delivery.body.clone(),
        )
        .await
    }

    async fn deliver(
        &self,
        forge: Forge,
        id: String,
        url: &str,
        headers: Vec<(String, String)>,
        body: String,
    ) -> Delivery {
        let mut request = self.shared.client.post(url).body(body.clone());
        for (k, v) in &headers {
            request = request.header(k, v);
        }
        let (status, response) = match request.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                (Some(status), r.text().await.unwrap_or_default())
            }
            Err(e) => (None, e.to_string()),
        };
        let delivery = Delivery {
            forge,
            id,
            url: url.to_owned(),
            headers,
            body,
            status,
            response,
        };
        self.shared.state().deliveries.push(delivery.clone());
        delivery
    }
}

impl Drop for FakeForge {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.server.abort();
    }
}

/// Now as GitLab and GitHub print it in JSON (`2024-05-01T12:00:00Z`).
fn now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}
